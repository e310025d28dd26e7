"""Property-based tests: generated inputs for both estimators.

Whatever the data and parameters, a fit either raises a ``ValueError`` or
``TypeError`` that says what is wrong, or returns a model with finite
parameters whose ``predict_proba`` rows are finite and sum to one and whose
``predict`` returns labels of ``classes_``; the caller's arrays are left as
they were, and the same fit twice gives the same model.

The default profile keeps the run short (a fixed number of examples, the
same ones on every run); ``HYPOTHESIS_PROFILE=fuzz python -m pytest
tests/test_fuzz.py`` runs thousands of fresh ones.
"""

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from sk_anyloss import METRIC_NAMES, AnyLossClassifier, AnyLossMLPClassifier

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

LABEL_SETS = [
    np.array([0, 1]),
    np.array([-1, 1]),
    np.array([False, True]),
    np.array(["no", "yes"]),
    np.array([3, 7, 11]),
    np.array(["a", "b", "c", "d"]),
]


@st.composite
def datasets(draw):
    """``(X, y, sample_weight)``: shapes, dtypes, scales, labels and weights."""
    n = draw(st.integers(2, 40))
    d = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    scale = draw(st.sampled_from([1e-6, 1.0, 1e3, 1e6]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * scale
    if draw(st.booleans()):
        X[:, 0] = np.round(X[:, 0])  # ties
    if draw(st.booleans()):
        X[:, -1] = X[0, -1]  # a constant column
    labels = draw(st.sampled_from(LABEL_SETS))
    y = labels[rng.integers(0, labels.shape[0], n)]
    kind = draw(st.sampled_from(["none", "uniform", "zeros", "integers", "extreme"]))
    if kind == "none":
        sw = None
    elif kind == "uniform":
        sw = rng.uniform(0.0, 3.0, n)
    elif kind == "zeros":
        sw = rng.uniform(0.0, 3.0, n) * (rng.random(n) < 0.5)
    elif kind == "integers":
        sw = rng.integers(0, 4, n).astype(float)
    else:
        sw = rng.choice([1e-300, 1e-8, 1.0, 1e8, 1e300], n)
    return X.astype(dtype), y, sw


LINEAR_PARAMS = st.fixed_dictionaries(
    {
        "metric": st.sampled_from(METRIC_NAMES),
        "beta": st.sampled_from([0.5, 1.0, 3.0]),
        "amplifier": st.sampled_from([1.0, 20.0, 73.0, 500.0]),
        "alpha": st.sampled_from([0.0, 1e-3, 1.0, 100.0]),
        "warmup_iter": st.sampled_from([0, 3, 15]),
        "solver": st.sampled_from(["adam", "gd"]),
        "learning_rate_init": st.sampled_from([1e-3, 0.03, 1.0, 100.0]),
        "max_iter": st.integers(1, 30),
        "tol": st.sampled_from([None, 1e-3]),
        "fit_intercept": st.booleans(),
    }
)

MLP_PARAMS = st.fixed_dictionaries(
    {
        "metric": st.sampled_from(METRIC_NAMES),
        "amplifier": st.sampled_from([1.0, 10.0, 73.0]),
        "alpha": st.sampled_from([0.0, 1.0, 1e3]),
        "hidden_layer_sizes": st.sampled_from([(1,), (4,), (3, 2)]),
        "activation": st.sampled_from(["identity", "logistic", "tanh", "relu"]),
        "solver": st.sampled_from(["adam", "sgd"]),
        "batch_size": st.sampled_from(["auto", 1, 7]),
        "learning_rate_init": st.sampled_from([1e-3, 0.1, 10.0]),
        "max_iter": st.integers(1, 5),
        "early_stopping": st.booleans(),
        "validation_fraction": st.sampled_from([0.1, 0.5]),
        "log_loss_weight": st.sampled_from(["auto", 0.0, 2.0]),
        "random_state": st.integers(0, 3),
    }
)


def _check_fit(make, X, y, sw):
    copies = [None if a is None else a.copy() for a in (X, y, sw)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # e.g. batch_size > n
        try:
            model = make().fit(X, y, sample_weight=sw)
        except (ValueError, TypeError) as exc:
            assert str(exc), "an error without a message"
            return
        again = make().fit(X, y, sample_weight=sw)
    for a, b in zip((X, y, sw), copies):
        if a is not None:
            np.testing.assert_array_equal(a, b)  # the caller's data untouched
    params = _parameters(model)
    assert all(np.all(np.isfinite(p)) for p in params)
    for p, q in zip(params, _parameters(again)):
        assert np.array_equal(p, q)  # the same model twice
    proba = model.predict_proba(X)
    assert proba.shape == (X.shape[0], model.classes_.shape[0])
    assert np.all(np.isfinite(proba)) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(model.predict(X)) <= set(model.classes_)


def _parameters(model):
    if hasattr(model, "coef_"):
        return [model.coef_, model.intercept_]
    return [*model.coefs_, *model.intercepts_]


@given(data=datasets(), params=LINEAR_PARAMS)
def test_linear_model_on_generated_inputs(data, params):
    _check_fit(lambda: AnyLossClassifier(**params), *data)


@given(data=datasets(), params=MLP_PARAMS)
def test_mlp_on_generated_inputs(data, params):
    _check_fit(lambda: AnyLossMLPClassifier(**params), *data)


@pytest.mark.parametrize("Estimator", [AnyLossClassifier, AnyLossMLPClassifier])
@given(data=datasets())
@settings(max_examples=20)
def test_default_parameters_on_generated_inputs(Estimator, data):
    # The same model twice needs a fixed seed (the MLP's initialisation).
    _check_fit(lambda: Estimator(random_state=0), *data)
