"""What a hostile user found, one regression test each.

Each test failed before its fix; they use the public API only (and the one
helper that turns scores into probabilities), so they run against any version
of the package. Setup of the reports: 200 rows, 3 standard normal features,
``y = X[:, 0] > 0``.
"""

import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
from sk_anyloss._base import proba_from_scores


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    return X, (X[:, 0] > 0).astype(int)


def _quiet(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit()


# 1. A warm_start refit with early_stopping learns the new data.
def test_warm_start_refit_with_early_stopping_learns_the_new_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 3))
    y = (X[:, 0] > 0).astype(int)
    X_b = rng.normal(size=(1000, 3))
    y_b = (X_b[:, 1] > 0).astype(int)  # another rule
    params = dict(
        hidden_layer_sizes=(8,), early_stopping=True, warm_start=True, random_state=0
    )
    model = _quiet(lambda: AnyLossMLPClassifier(**params).fit(X, y))
    before = [W.copy() for W in model.coefs_]
    epochs_a = model.n_iter_
    _quiet(lambda: model.fit(X_b, y_b))
    assert model.n_iter_ - epochs_a > 1  # more than one epoch on the new data
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.coefs_))
    assert model.score(X_b, y_b) > 0.9  # the first fit's weights score 0.5
    assert len(model.validation_scores_) == model.n_iter_ - epochs_a


# 2. Plain gradient descent that must diverge is refused, not reported as
# converged.
@pytest.mark.parametrize("alpha", [100.0, 2.0 / 0.03])
def test_diverging_gradient_descent_is_refused(data, alpha):
    X, y = data
    with pytest.raises(ValueError, match=r'solver="gd" diverges.*below'):
        AnyLossClassifier(solver="gd", alpha=alpha, learning_rate_init=0.03).fit(X, y)
    # Just below the bound it trains.
    model = AnyLossClassifier(solver="gd", alpha=1.9 / 0.03, learning_rate_init=0.03)
    assert np.all(np.isfinite(_quiet(lambda: model.fit(X, y)).coef_))


# 3. float32 weights that overflow the cast are an error, not inf / NaN.
def test_float32_weights_that_overflow_are_an_error(data):
    X, y = data
    # Ten Adam steps of about 1e38 each: finite in float64, not in float32.
    model = AnyLossClassifier(
        warmup_iter=0, learning_rate_init=1e38, max_iter=10, tol=None
    )
    # Which check stops it depends on the floating-point environment: the
    # weights leave float32's range, or the float32 products overflow first
    # and the loop stops on a non-finite loss. Either way an error, no model.
    with pytest.raises(
        ValueError, match="beyond the range of float32|became non-finite"
    ):
        model.fit(X.astype(np.float32), y)
    assert np.all(np.isfinite(model.fit(X, y).coef_))  # float64 keeps them


def test_mlp_float32_weights_that_overflow_are_an_error(data):
    X, y = data
    with pytest.raises(ValueError, match="beyond the range of float32"):
        _quiet(
            lambda: AnyLossMLPClassifier(
                hidden_layer_sizes=(2,),
                solver="sgd",
                momentum=0.0,
                learning_rate_init=1e38,
                alpha=0.0,
                max_iter=2,
                random_state=0,
            ).fit(X.astype(np.float32) * np.float32(1e30), y)
        )


# 4. Multiclass probabilities sum to one at any score and dtype.
def test_probabilities_of_saturated_scores_sum_to_one():
    proba = np.exp(proba_from_scores(np.full((1, 3), -1e17), "multiclass"))
    np.testing.assert_allclose(proba, [[1 / 3, 1 / 3, 1 / 3]])
    rng = np.random.default_rng(2)
    scores = (rng.normal(size=(100, 4)) * 1e6).astype(np.float32)
    np.testing.assert_allclose(
        np.exp(proba_from_scores(scores, "multiclass")).sum(axis=1), 1.0
    )


@pytest.mark.parametrize("scale", [1e6, 1e7])
def test_float32_multiclass_predict_proba_sums_to_one(scale):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    X32 = (X * scale).astype(np.float32)
    model = _quiet(lambda: AnyLossClassifier(max_iter=5).fit(X32, y))
    np.testing.assert_allclose(model.predict_proba(X32).sum(axis=1), 1.0, rtol=1e-6)


# 5. Early stopping on a DataFrame does not warn about feature names.
def test_early_stopping_on_a_dataframe_is_silent(data):
    X, y = data
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        AnyLossMLPClassifier(
            hidden_layer_sizes=(4,), early_stopping=True, max_iter=5, random_state=0
        ).fit(frame, y)


# 6. partial_fit and warm_start after an early-stopping fit.
def test_partial_fit_with_early_stopping_is_a_clear_error(data):
    X, y = data
    model = _quiet(
        lambda: AnyLossMLPClassifier(
            hidden_layer_sizes=(4,), early_stopping=True, max_iter=3, random_state=0
        ).fit(X, y)
    )
    with pytest.raises(ValueError, match="partial_fit does not support early_stop"):
        model.partial_fit(X, y)
    model.set_params(early_stopping=False).partial_fit(X, y)  # then it trains on
    assert np.isfinite(model.loss_curve_[-1]) and model.best_loss_ is not None


def test_warm_start_refit_without_early_stopping_after_one_with_it(data):
    X, y = data
    model = _quiet(
        lambda: AnyLossMLPClassifier(
            hidden_layer_sizes=(4,),
            early_stopping=True,
            warm_start=True,
            max_iter=3,
            random_state=0,
        ).fit(X, y)
    )
    _quiet(lambda: model.set_params(early_stopping=False).fit(X, y))
    assert model.best_validation_score_ is None and np.isfinite(model.best_loss_)
    _quiet(lambda: model.set_params(early_stopping=True).fit(X, y))
    assert model.best_loss_ is None and len(model.validation_scores_) > 0


# 7. Early stopping that leaves no weight to train on is refused.
def test_early_stopping_without_training_weight_is_refused():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 3))
    y = np.tile([0, 1], 20)
    sw = np.zeros(40)
    sw[:4] = 1.0
    for seed in range(20):  # a split that puts the four weighted rows aside
        model = AnyLossMLPClassifier(
            early_stopping=True, validation_fraction=0.5, random_state=seed
        )
        try:
            _quiet(lambda model=model: model.fit(X, y, sample_weight=sw))
        except ValueError as exc:
            assert "validation_fraction" in str(exc)
            assert "zero total sample_weight" in str(exc)
            break
        assert np.any(np.array(model.loss_curve_) > 0)  # it trained
    else:
        pytest.fail("no split left the training part without weight")


# 8. Ctrl-C stops a long fit within a second, as a KeyboardInterrupt.
INTERRUPTED_FIT = textwrap.dedent(
    """
    import sys, numpy as np
    from sk_anyloss import AnyLossClassifier
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400_000, 50))
    y = (X[:, 0] + 0.01 * X[:, 1] > 1).astype(int)
    stage = sys.argv[1]
    params = (
        dict(warmup_iter=10**6, max_iter=1)
        if stage == "warm-up"
        else dict(warmup_iter=0, tol=None, max_iter=10**6)
    )
    AnyLossClassifier(**params).fit(X[:10], y[:10])  # compile first
    print("fitting", flush=True)
    AnyLossClassifier(**params).fit(X, y)
    print("finished", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT: POSIX")
@pytest.mark.parametrize("stage", ["warm-up", "metric loop"])
def test_ctrl_c_interrupts_a_long_fit(stage):
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_FIT, stage],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "fitting"
        time.sleep(0.3)  # well inside the fit (over a second either way)
        start = time.perf_counter()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        elapsed = time.perf_counter() - start
    finally:
        process.kill()  # a fit that ignored the signal does not outlive the test
    assert "finished" not in out, "the fit ended before the signal"
    assert "KeyboardInterrupt" in err and "SystemError" not in err, err[-2000:]
    assert elapsed < 2.0


# Smaller ones.
@pytest.mark.parametrize("Estimator", [AnyLossClassifier, AnyLossMLPClassifier])
@pytest.mark.parametrize(
    "weights", [np.full(200, 1e308), np.r_[np.full(100, 1e308), np.ones(100)]]
)
def test_huge_weights_train(data, Estimator, weights):
    X, y = data
    model = _quiet(lambda: Estimator(random_state=0).fit(X, y, sample_weight=weights))
    assert model.score(X, y) > 0.9


def test_tiny_weights_train_or_say_why(data):
    X, y = data
    tiny = np.full(200, 5e-324)
    model = _quiet(lambda: AnyLossClassifier().fit(X, y, sample_weight=tiny))
    assert model.score(X, y) > 0.9
    with pytest.raises(ValueError, match="too little to train with alpha"):
        AnyLossMLPClassifier().fit(X, y, sample_weight=tiny)
    model = _quiet(
        lambda: AnyLossMLPClassifier(alpha=0.0, random_state=0).fit(
            X, y, sample_weight=tiny
        )
    )
    assert model.score(X, y) > 0.9


def test_labels_read_as_python_values_in_messages(data):
    X, y = data
    with pytest.raises(ValueError, match=r"^Class 1 has zero total sample_weight"):
        AnyLossClassifier().fit(X, y, sample_weight=(y == 0).astype(float))


def test_mlp_predicts_by_blocks_of_rows(data, monkeypatch):
    from sk_anyloss import _mlp

    X, y = data
    model = _quiet(lambda: AnyLossMLPClassifier(random_state=0).fit(X, y))
    whole = model.predict_proba(X)
    monkeypatch.setattr(_mlp, "_FORWARD_BLOCK_ENTRIES", 7 * 100)  # 7 rows a block
    # BLAS rounds a product of 7 rows differently from one of 200.
    np.testing.assert_allclose(model.predict_proba(X), whole, rtol=1e-12)


def test_mlp_does_not_depend_on_the_blas_thread_count():
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(5)
    X = rng.normal(size=(6000, 50))
    y = (X[:, 0] + rng.normal(size=6000) > 1).astype(int)
    coefs = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            model = AnyLossMLPClassifier(batch_size=2000, max_iter=3, random_state=0)
            coefs.append(_quiet(lambda model=model: model.fit(X, y)).coefs_)
    for a, b in zip(*coefs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_agrees_with_predict_proba_at_the_boundary(data, dtype):
    # float32 sigmoid rounds to exactly 1/2 for |z| up to about 1e-7: the
    # decision must be taken as predict_proba computes it.
    X, y = data
    model = _quiet(lambda: AnyLossClassifier(max_iter=20).fit(X.astype(dtype), y))
    w, b = model.coef_.ravel(), model.intercept_[0]
    near = np.zeros((2001, 3), dtype=dtype)
    near[:, 0] = (np.linspace(-1e-6, 1e-6, 2001) - b) / w[0]
    positive = model.predict_proba(near)[:, 1] >= 0.5
    np.testing.assert_array_equal(model.predict(near), positive.astype(int))


def test_max_iter_beyond_what_the_loss_curve_can_hold_is_a_clear_error(data):
    X, y = data
    with pytest.raises(ValueError, match=r"'max_iter' .* range \[1, 10000000\]"):
        AnyLossClassifier(max_iter=10**10).fit(X, y)


def test_unscaled_features_that_defeat_the_steps_are_warned_about():
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)  # features up to ~4,000
    with pytest.warns(ConvergenceWarning, match="Standardise the features"):
        AnyLossClassifier().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        AnyLossClassifier().fit(StandardScaler().fit_transform(X), y)
