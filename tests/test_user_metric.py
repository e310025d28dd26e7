"""Users' own metrics: exact partials, training, scoring, scikit-learn's
machinery, and clear errors for functions that cannot be trained on."""

import ctypes
import math
import pickle
import sys

import cloudpickle
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
from sk_anyloss._kernels_cpu import cpu_metric
from sk_anyloss._metrics import FORMULAS, resolve_metric
from sk_anyloss._user_metric import UserMetric
from sk_anyloss.metrics import get_scorer

# The built-in metrics written as a user would, without zero guards.


def accuracy(tn, fp, fn, tp):
    return (tp + tn) / (tp + tn + fp + fn)


def balanced_accuracy(tn, fp, fn, tp):
    return (tp / (tp + fn) + tn / (tn + fp)) / 2


def f1(tn, fp, fn, tp):
    return 2 * tp / (2 * tp + fp + fn)


def fbeta(tn, fp, fn, tp):
    b2 = 1.5**2
    return (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp)


def gmean(tn, fp, fn, tp):
    return math.sqrt(tp / (tp + fn) * tn / (tn + fp))


def mcc(tn, fp, fn, tp):
    return (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))


def jaccard(tn, fp, fn, tp):
    return tp / (tp + fp + fn)


def cohen_kappa(tn, fp, fn, tp):
    n = tn + fp + fn + tp
    observed = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / n**2
    return (observed - expected) / (1 - expected)


def fowlkes_mallows(tn, fp, fn, tp):
    return (tp / (tp + fp) * tp / (tp + fn)) ** 0.5


BUILT_INS = {
    f.__name__: f
    for f in (accuracy, balanced_accuracy, f1, fbeta, gmean, mcc, jaccard)
    + (cohen_kappa, fowlkes_mallows)
}


def youden(tn, fp, fn, tp):
    return tp / (tp + fn) + tn / (tn + fp) - 1


def markedness(tn, fp, fn, tp):
    return tp / (tp + fp) + tn / (tn + fn) - 1


def utility(tn, fp, fn, tp):
    return tp - 5 * fp - 2 * fn


def f2_with_precision_floor(tn, fp, fn, tp):
    precision = tp / (tp + fp)
    f2 = 5 * tp / (5 * tp + 4 * fn + fp)
    if precision >= 0.3:
        return f2
    return f2 - 10 * (0.3 - precision) ** 2


def smooth(tn, fp, fn, tp):
    """Every supported operation once."""
    x = math.log1p(tp / (tp + fn)) + np.exp(-fp / (fp + tn))
    y = max(tp, fn) / (tp + fn) + min(fp, tn, 7.0) ** 2 / (fp + tn) ** 2
    y += math.hypot(tp, fp) / (tp + fp) - abs(tn - 3 * fp) / (tn + fp)
    z = math.tanh(x) * math.atan(y) + np.log(1.0 + tp) - math.expm1(-1.0)
    return z / math.pi + (x if x > y else -y) + pow(tp + 1.0, 0.5) / float(tp + 1)


def _partials(metric, cm):
    """``(value, dM/dcm)`` from the compiled form the loops call."""
    scale = cm.sum()
    partials = np.empty(4)
    shares = cm / scale

    def pointer(a):
        return a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))

    value = cpu_metric(metric).ctypes(
        pointer(shares), 1, scale, pointer(metric.params), pointer(partials)
    )
    return value, partials / scale  # per count


def _central_differences(function, cm, step=1e-6):
    out = np.empty(4)
    for k in range(4):
        h = step * cm[k]
        up, down = cm.copy(), cm.copy()
        up[k] += h
        down[k] -= h
        out[k] = (function(*up) - function(*down)) / (2 * h)
    return out


@pytest.mark.parametrize(
    "function",
    [youden, markedness, utility, f2_with_precision_floor, smooth, *BUILT_INS.values()],
)
def test_partials_are_central_differences(function):
    metric = UserMetric(function)
    rng = np.random.default_rng(0)
    for _ in range(20):
        cm = rng.uniform(1.0, 100.0, 4)
        value, partials = _partials(metric, cm)
        assert value == pytest.approx(function(*cm), rel=1e-12, abs=1e-12)
        fd = _central_differences(function, cm)
        np.testing.assert_allclose(partials, fd, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", list(BUILT_INS))
def test_a_built_in_written_by_hand_has_the_built_in_partials(name):
    metric = UserMetric(BUILT_INS[name])
    rng = np.random.default_rng(1)
    for _ in range(20):
        cm = rng.uniform(0.5, 50.0, 4)
        value, partials = _partials(metric, cm)
        expected = FORMULAS[name](*cm, 1.5)
        assert value == pytest.approx(expected[0], rel=1e-13)
        np.testing.assert_allclose(partials, expected[1:], rtol=1e-11, atol=1e-15)


def loop(tn, fp, fn, tp):
    total = 0.0
    for x in (tn, fp, fn, tp):
        total += x
    return tp / total


def helper(x, y):
    return x / (x + y)


def calls_a_helper(tn, fp, fn, tp):
    return helper(tp, fn) * helper(tn, fp)


@pytest.mark.parametrize("function", [loop, calls_a_helper])
def test_loops_and_helpers_are_traced_through(function):
    metric = UserMetric(function)
    cm = np.array([10.0, 2.0, 3.0, 4.0])
    value, partials = _partials(metric, cm)
    assert value == pytest.approx(function(*cm))
    np.testing.assert_allclose(partials, _central_differences(function, cm), rtol=1e-7)


def test_the_source_is_not_needed():
    # As a function shipped by value to another process (cloudpickle drops
    # its file name), or typed at the interactive prompt.
    namespace = {}
    exec(
        "def from_nowhere(tn, fp, fn, tp):\n    return tp / (tp + fp + fn)\n",
        namespace,
    )
    metric = UserMetric(namespace["from_nowhere"])
    assert _partials(metric, np.array([1.0, 1.0, 1.0, 1.0]))[0] == 1 / 3


def test_lambdas_and_closures_train_too():
    cost = 5.0

    def make(penalty):
        return lambda tn, fp, fn, tp: tp - penalty * fp - cost * fn

    metric = UserMetric(make(3.0))
    value, partials = _partials(metric, np.array([10.0, 2.0, 3.0, 4.0]))
    assert value == 4.0 - 3.0 * 2.0 - 5.0 * 3.0
    np.testing.assert_allclose(partials, [0.0, -3.0, -5.0, 1.0])


def test_zero_denominators_give_zero_and_finite_partials():
    metric = UserMetric(f1)
    value, partials = _partials(metric, np.array([5.0, 0.0, 0.0, 0.0]))
    assert value == 0.0 and np.all(np.isfinite(partials))
    assert metric.value(5.0, 0.0, 0.0, 0.0) == 0.0


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), 1 - y


@pytest.mark.parametrize("Estimator", [AnyLossClassifier, AnyLossMLPClassifier])
def test_f1_by_hand_trains_the_built_in_model(cancer, Estimator):
    X, y = cancer
    params = dict(max_iter=30, random_state=0)
    if Estimator is AnyLossMLPClassifier:
        params.update(hidden_layer_sizes=(8,), log_loss_weight=0.0)
    built_in = Estimator(metric="f1", **params).fit(X, y)
    by_hand = Estimator(metric=f1, **params).fit(X, y)
    np.testing.assert_allclose(by_hand.loss_curve_, built_in.loss_curve_, rtol=1e-12)
    np.testing.assert_array_equal(by_hand.predict(X), built_in.predict(X))


def test_the_function_sees_weighted_counts(cancer):
    X, y = cancer
    w = np.random.default_rng(2).uniform(0.5, 3.0, y.shape[0])

    def total(tn, fp, fn, tp):
        return (tn + fp + fn + tp) / 1000

    model = AnyLossClassifier(metric=total, warmup_iter=0, max_iter=1, tol=None)
    model.fit(X, y, sample_weight=w)
    assert model.loss_curve_[0] == pytest.approx(1 - w.sum() / 1000, rel=1e-12)


def test_a_business_utility_trades_errors_as_asked(cancer):
    X, y = cancer

    def cheap_false_negatives(tn, fp, fn, tp):
        return tp - 5 * fp - 0.2 * fn

    def cheap_false_positives(tn, fp, fn, tp):
        return tp - 0.2 * fp - 5 * fn

    a = AnyLossClassifier(metric=cheap_false_negatives).fit(X, y)
    b = AnyLossClassifier(metric=cheap_false_positives).fit(X, y)
    fp_a = np.sum((a.predict(X) == 1) & (y == 0))
    fp_b = np.sum((b.predict(X) == 1) & (y == 0))
    fn_a = np.sum((a.predict(X) == 0) & (y == 1))
    fn_b = np.sum((b.predict(X) == 0) & (y == 1))
    assert fp_a < fp_b and fn_a > fn_b


def test_scorer_scores_with_the_same_function(cancer):
    X, y = cancer
    model = AnyLossClassifier(metric=youden).fit(X, y)
    w = np.random.default_rng(3).uniform(0.5, 2.0, y.shape[0])
    tn, fp, fn, tp = confusion_matrix(y, model.predict(X), sample_weight=w).ravel()
    score = get_scorer(youden)(model, X, y, sample_weight=w)
    assert score == pytest.approx(youden(tn, fp, fn, tp), rel=1e-12)
    labels = np.where(y == 1, "yes", "no")
    model = AnyLossClassifier(metric=youden).fit(X, labels)
    assert get_scorer(youden, pos_label="yes")(model, X, labels) == pytest.approx(
        youden(*confusion_matrix(labels, model.predict(X)).ravel())
    )


def test_clone_grid_search_and_cross_validate(cancer):
    # The workers cannot import this test module by its name: its functions
    # travel by value, as those of a script's __main__ do.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    X, y = cancer
    model = make_pipeline(StandardScaler(), AnyLossClassifier(metric=youden))
    assert clone(model).get_params()["anylossclassifier__metric"] is youden
    search = GridSearchCV(
        model,
        {"anylossclassifier__metric": ["f1", youden, utility, "mcc"]},
        scoring=get_scorer(youden),
        cv=3,
        n_jobs=2,
    ).fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    results = cross_validate(
        model, X, y, cv=3, scoring={"youden": get_scorer(youden), "f1": "f1"}
    )
    assert np.all(results["test_youden"] > 0.8)


def test_pickling(cancer, tmp_path):
    X, y = cancer
    model = AnyLossClassifier(metric=youden, max_iter=5).fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert again.metric is youden
    # A lambda: the standard pickle refuses it, as any object holding one;
    # cloudpickle (joblib's, so GridSearchCV(n_jobs=2)) takes it.
    model = AnyLossClassifier(metric=lambda tn, fp, fn, tp: tp - fp, max_iter=5)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(model.fit(X, y))
    again = cloudpickle.loads(cloudpickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_resolved_once_per_function():
    assert resolve_metric(youden) is resolve_metric(youden)
    assert pickle.loads(pickle.dumps(resolve_metric(youden))) is resolve_metric(youden)
    macro = pickle.loads(pickle.dumps(resolve_metric(youden, average="macro")))
    assert macro.average == "macro" and macro.function is youden


COST_OF_A_FALSE_ALARM = 1.0


def utility(tn, fp, fn, tp):
    return 10 * tp - COST_OF_A_FALSE_ALARM * fp - 3 * fn


def test_a_global_that_changed_is_read_again(cancer, monkeypatch):
    # The trace writes the global's value into the expression: a new value
    # must give a new trace (and new compiled forms), as a call would see it.
    X, y = cancer
    cheap = resolve_metric(utility)
    assert resolve_metric(utility) is cheap
    positives = AnyLossClassifier(metric=utility).fit(X, y).predict(X).sum()
    monkeypatch.setitem(globals(), "COST_OF_A_FALSE_ALARM", 200.0)
    dear = resolve_metric(utility)
    assert dear is not cheap and dear != cheap
    assert dear.value(10.0, 20.0, 30.0, 40.0) == utility(10.0, 20.0, 30.0, 40.0)
    model = AnyLossClassifier(metric=utility).fit(X, y)
    assert model.predict(X).sum() < positives
    tn, fp, fn, tp = confusion_matrix(y, model.predict(X)).ravel()
    assert get_scorer(utility)(model, X, y) == pytest.approx(utility(tn, fp, fn, tp))


CALLS = []
CYCLE = []
CYCLE.append(CYCLE)


def logged(tn, fp, fn, tp):
    CALLS.append(len(CYCLE))  # a list changed in place: compared by identity
    return tp / (tp + fp + fn)


def test_traces_are_reused_and_bounded(monkeypatch):
    first = resolve_metric(logged)
    logged(1.0, 2.0, 3.0, 4.0)
    assert resolve_metric(logged) is first  # no new trace, no new compilation
    cheap = resolve_metric(utility)
    monkeypatch.setitem(globals(), "COST_OF_A_FALSE_ALARM", 7.0)
    dear = resolve_metric(utility)
    monkeypatch.setitem(globals(), "COST_OF_A_FALSE_ALARM", 1.0)
    assert resolve_metric(utility) is cheap  # values that alternate: kept
    monkeypatch.setitem(globals(), "COST_OF_A_FALSE_ALARM", 7.0)
    assert resolve_metric(utility) is dear


def phi_squared(tn, fp, fn, tp):
    return (tp * tn - fp * fn) ** 2 / ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))


def squared_youden(tn, fp, fn, tp):
    return (tp / (tp + fn) + tn / (tn + fp) - 1) ** 2


def weighted_jaccard(tn, fp, fn, tp, *, weight=2.0):
    return weight * tp / (tp + fp + fn)


def numpy_floats(tn, fp, fn, tp):
    return np.float64(2 * tp) / np.float64(2 * tp + fp + fn)


@pytest.mark.parametrize(
    "function", [phi_squared, squared_youden, weighted_jaccard, numpy_floats]
)
def test_smooth_functions_train(cancer, function):
    # phi^2 and J^2 have zero partials where training starts (the check of
    # differentiability must not take curvature for a kink); a keyword-only
    # default must survive the tracing; NumPy's float types convert symbols.
    X, y = cancer
    model = AnyLossClassifier(metric=function, max_iter=20).fit(X, y)
    assert np.all(np.isfinite(model.coef_))
    metric = resolve_metric(function)
    assert metric.value(10.0, 20.0, 30.0, 40.0) == pytest.approx(
        function(10.0, 20.0, 30.0, 40.0)
    )


# -- functions that cannot be trained on -----------------------------------


def boom(tn, fp, fn, tp):
    raise RuntimeError("no")


def not_a_number(tn, fp, fn, tp):
    return math.nan


def infinite(tn, fp, fn, tp):
    return tp / 0.0 + math.inf


def a_pair(tn, fp, fn, tp):
    return (tp, fp)


def three(tn, fp, fn):
    return tn + fp + fn


def kink(tn, fp, fn, tp):
    return abs(tp - fn)  # training starts where tp == fn


def worst_recall(tn, fp, fn, tp):
    return min(tp / (tp + fn), tn / (tn + fp))  # 0.5 and 0.5 at the start


def rounds(tn, fp, fn, tp):
    return round(tp) / (tp + fp)


def endless(tn, fp, fn, tp):
    while tp > 0:
        tp = tp - 1
    return tp


def unknown_function(tn, fp, fn, tp):
    return np.arcsinh(tp / (tp + fp))


@pytest.mark.parametrize(
    "function, message",
    [
        (boom, r"boom cannot be trained on: at the confusion matrix tn=.* raised "),
        (not_a_number, r"not_a_number .*returned nan"),
        (infinite, r"infinite .*returned inf"),
        (a_pair, r"a_pair cannot be trained on: it returns .*, not a number"),
        (three, r"must take the four cells of the confusion matrix"),
        (kink, r"kink .*tn=.*not differentiable there"),
        (worst_recall, r"worst_recall .*not differentiable there"),
        (rounds, r"rounds cannot be trained on: .*plain number"),
        (endless, r"endless cannot be trained on: .*more than 64 branches"),
        (unknown_function, r"unknown_function cannot be trained on: .*arcsinh"),
    ],
)
def test_functions_that_cannot_train_are_clear_errors_before_training(
    cancer, function, message
):
    X, y = cancer
    for Estimator in (AnyLossClassifier, AnyLossMLPClassifier):
        with pytest.raises(ValueError, match=message):
            Estimator(metric=function, max_iter=1).fit(X, y)


class _Cost:
    # A callable object, not a function (and not hashable, as a dataclass).
    __hash__ = None

    def __call__(self, tn, fp, fn, tp):
        return tp - fp


@pytest.mark.parametrize("Estimator", [AnyLossClassifier, AnyLossMLPClassifier])
def test_a_callable_object_is_a_clear_error(Estimator):
    X, y = make_classification(200, 5, n_informative=3, n_classes=3, random_state=0)
    for target in (y, y % 2):
        with pytest.raises(ValueError, match="must be a Python function"):
            Estimator(metric=_Cost(), max_iter=1).fit(X, target)


def test_a_name_that_is_not_a_metric_still_lists_the_names(cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="must be a str among .* or a callable"):
        AnyLossClassifier(metric="auc").fit(X, y)


def test_imbalanced_f2_with_a_floor_beats_the_plain_f2_on_its_own_metric():
    X, y = make_classification(
        n_samples=3000, weights=[0.9], n_informative=5, random_state=0
    )
    X = StandardScaler().fit_transform(X)
    scorer = get_scorer(f2_with_precision_floor)
    floor = AnyLossClassifier(metric=f2_with_precision_floor).fit(X, y)
    plain = AnyLossClassifier(metric="fbeta", beta=2.0).fit(X, y)
    assert scorer(floor, X, y) >= scorer(plain, X, y) - 1e-9
