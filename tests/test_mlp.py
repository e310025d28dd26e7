import warnings

import numpy as np
import pytest
from scipy.special import expit
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_wine,
    make_classification,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sk_anyloss import METRIC_NAMES, AnyLossMLPClassifier
from sk_anyloss._kernels_cpu import cpu_metric, mlp_forward, mlp_loss_grad
from sk_anyloss._metrics import Metric
from sk_anyloss._metrics_multi import JOINT, LABELS, MATRIX
from sk_anyloss._mlp import (
    _AUTO_LOG_LOSS_WEIGHT,
    _auto_log_loss_weight,
    _stratified_order,
)
from sk_anyloss._optim import Optimizer
from sk_anyloss._settings import ACTIVATION_CODES, SIGMOID, SOFTMAX, MLPSettings

ACTIVATIONS = list(ACTIVATION_CODES)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), 1 - y


def _small(**params):
    return AnyLossMLPClassifier(
        **{"hidden_layer_sizes": (8,), "random_state": 0, **params}
    )


def _assert_gradient_is_finite_differences(X, Y, s, theta, args):
    grad = np.empty_like(theta)
    mlp_loss_grad(X, Y, s, theta, *args, grad)
    scratch = np.empty_like(theta)
    for k in range(theta.shape[0]):
        up, down = theta.copy(), theta.copy()
        up[k] += 1e-6
        down[k] -= 1e-6
        fd = (
            mlp_loss_grad(X, Y, s, up, *args, scratch)
            - mlp_loss_grad(X, Y, s, down, *args, scratch)
        ) / 2e-6
        assert grad[k] == pytest.approx(fd, rel=1e-5, abs=1e-8), k


def _args(dims, activation, metric, beta, amplifier, log_loss, l2, average=None,
          softmax=False):  # fmt: skip
    """``mlp_loss_grad``'s arguments after ``theta`` (the optimiser is unused):
    sigmoid output units, the metric averaged over them by ``average``, or a
    softmax output."""
    K = int(dims[-1])
    layout = MATRIX if softmax else LABELS
    settings = MLPSettings(
        ACTIVATION_CODES[activation], SOFTMAX if softmax else SIGMOID, layout, K,
        average == "samples", amplifier, log_loss, 0.0, 1,
        Optimizer(0, 0.0, 0.0, 0.9, 0.999, 1e-8),
    )  # fmt: skip
    m = Metric(metric, beta, average)
    return (dims, settings, cpu_metric(m, layout), m.params, l2, 1.0)


def _network(rng, dims):
    size = sum((dims[i] + 1) * dims[i + 1] for i in range(len(dims) - 1))
    return 0.5 * rng.standard_normal(size)


@pytest.mark.parametrize("log_loss_weight", [0.0, 0.7])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_gradient_matches_finite_differences(activation, metric, log_loss_weight):
    rng = np.random.default_rng(METRIC_NAMES.index(metric))
    dims = np.array([4, 5, 3, 2])
    theta = _network(rng, dims)
    n = 40
    X = rng.standard_normal((n, 4))
    Y = (rng.random((n, 2)) < 0.3).astype(np.uint8)
    s = rng.uniform(0.5, 1.5, n)
    s /= s.sum()
    args = _args(dims, activation, metric, 1.5, 10.0, log_loss_weight, 0.3)
    _assert_gradient_is_finite_differences(X, Y, s, theta, args)


@pytest.mark.parametrize("log_loss_weight", [0.0, 0.7])
@pytest.mark.parametrize("metric", METRIC_NAMES)
@pytest.mark.parametrize("head", ["micro", "weighted", "samples", "softmax"])
def test_gradient_of_each_output_layer_matches_finite_differences(
    metric, head, log_loss_weight
):
    # Sigmoid units with the metric averaged jointly (macro above), or a
    # softmax over three classes.
    rng = np.random.default_rng(METRIC_NAMES.index(metric) + 20)
    dims = np.array([4, 5, 3])
    theta = _network(rng, dims)
    n = 40
    X = rng.standard_normal((n, 4))
    softmax = head == "softmax"
    if softmax:
        Y = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, n)]
        average = None if metric in JOINT else "macro"
    else:
        Y = (rng.random((n, 3)) < 0.3).astype(np.uint8)
        average = head
    s = rng.uniform(0.5, 1.5, n)
    s /= s.sum()
    args = _args(dims, "tanh", metric, 1.5, 10.0, log_loss_weight, 0.3, average,
                 softmax)  # fmt: skip
    _assert_gradient_is_finite_differences(X, Y, s, theta, args)


def test_gradient_of_a_batch_without_positives():
    # The log-loss term of an absent class is left out, not divided by zero.
    rng = np.random.default_rng(5)
    dims = np.array([3, 4, 1])
    theta = _network(rng, dims)
    X = rng.standard_normal((12, 3))
    s = np.full(12, 1 / 12)
    args = _args(dims, "tanh", "f1", 1.0, 10.0, 0.5, 0.1)
    for Y in (np.zeros((12, 1), np.uint8), np.ones((12, 1), np.uint8)):
        assert np.isfinite(mlp_loss_grad(X, Y, s, theta, *args, np.empty_like(theta)))
        _assert_gradient_is_finite_differences(X, Y, s, theta, args)


@pytest.mark.parametrize("K", [1, 3])
def test_log_loss_term_is_the_class_balanced_log_loss(K):
    # loss(weight w) - loss(weight 0) = w * the mean over outputs of
    # sklearn's log_loss with each class carrying half the sample weight.
    rng = np.random.default_rng(K)
    dims = np.array([3, 4, K])
    theta = _network(rng, dims)
    n = 30
    X = rng.standard_normal((n, 3))
    Y = (rng.random((n, K)) < 0.25).astype(np.uint8)
    s = rng.uniform(0.5, 1.5, n)
    s /= s.sum()
    scratch = np.empty_like(theta)
    with_term = mlp_loss_grad(
        X, Y, s, theta, *_args(dims, "relu", "f1", 1.0, 10.0, 0.8, 0.2), scratch
    )
    alone = mlp_loss_grad(
        X, Y, s, theta, *_args(dims, "relu", "f1", 1.0, 10.0, 0.0, 0.2), scratch
    )
    proba = expit(mlp_forward(X, theta, dims, ACTIVATION_CODES["relu"])[-1])
    expected = 0.0
    for k in range(K):
        y = Y[:, k].astype(bool)
        balance = np.where(y, 0.5 / s[y].sum(), 0.5 / s[~y].sum())
        expected += log_loss(y, proba[:, k], sample_weight=s * balance) / K
    assert with_term - alone == pytest.approx(0.8 * expected, rel=1e-10)


def test_log_loss_weight_reaches_the_kernel_and_auto_follows_the_metric(cancer):
    X, y = cancer

    def curve(**params):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return _small(max_iter=4, **params).fit(X, y).loss_curve_

    assert curve(log_loss_weight=0.5) != curve(log_loss_weight=0.0)
    assert curve(metric="f1") == curve(metric="f1", log_loss_weight=0.5)
    assert curve(metric="mcc") == curve(metric="mcc", log_loss_weight=0.5)
    ba = "balanced_accuracy"
    assert curve(metric=ba) == curve(metric=ba, log_loss_weight=0.0)
    assert curve(metric="fbeta", beta=1.0) == curve(metric="f1", log_loss_weight=0.0)
    assert set(_AUTO_LOG_LOSS_WEIGHT) <= set(METRIC_NAMES)


@pytest.mark.parametrize("shuffle", [True, False])
def test_stratified_order_is_the_sorted_class_ranks(shuffle):
    # The definition: the j-th sample of class c (in the class's shuffled
    # order) gets the key (j + 0.5) / n_c; the order sorts the keys, ties by
    # sample index. Equal class sizes give ties.
    rng = np.random.default_rng(3)
    cases = [np.repeat(np.arange(3), 40), np.r_[np.zeros(90), np.ones(10)]]
    cases += [rng.integers(0, k, n) for k, n in [(2, 7), (2, 301), (5, 257)]]
    for y in cases:
        y = rng.permutation(y).astype(np.int64)
        expected_rng, rng_used = np.random.RandomState(0), np.random.RandomState(0)
        keys = np.empty(y.shape[0])
        for c in np.unique(y):
            members = np.flatnonzero(y == c)
            if shuffle:
                members = expected_rng.permutation(members)
            keys[members] = (np.arange(members.shape[0]) + 0.5) / members.shape[0]
        order = _stratified_order(y, shuffle, rng_used)
        np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
        # every batch of 10 holds the classes within one of their share
        for start in range(0, y.shape[0] - 9, 10):
            counts = np.bincount(y[order[start : start + 10]], minlength=y.max() + 1)
            share = 10 * np.bincount(y) / y.shape[0]
            assert np.all(np.abs(counts - share) <= 1.5), (start, counts, share)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_pass_is_mlpclassifiers(cancer, activation):
    X, y = cancer
    ours = _small(activation=activation, hidden_layer_sizes=(7, 5), max_iter=3)
    ours.fit(X, y)
    theirs = MLPClassifier(hidden_layer_sizes=(7, 5), activation=activation, max_iter=1)
    with pytest.warns(Warning):
        theirs.fit(X, y)
    theirs.coefs_ = [W.copy() for W in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    np.testing.assert_allclose(
        ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9, atol=1e-15
    )


def test_f1_model_beats_mlpclassifier_on_f1():
    # Ten imbalanced tasks (one digit against the rest: 10 % positives), the
    # same network for both; AnyLoss trained for F1, MLPClassifier on log-loss.
    X, digit = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ours, theirs = [], []
    for positive in range(10):
        y = (digit == positive).astype(int)
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, stratify=y, test_size=0.5, random_state=0
        )
        for scores, model in [
            (ours, AnyLossMLPClassifier(hidden_layer_sizes=(32,), random_state=0)),
            (theirs, MLPClassifier(hidden_layer_sizes=(32,), random_state=0)),
        ]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X_tr, y_tr)
            scores.append(f1_score(y_te, model.predict(X_te)))
    ours, theirs = np.array(ours), np.array(theirs)
    assert ours.mean() > theirs.mean() + 0.005, (ours.mean(), theirs.mean())
    assert np.sum(ours > theirs) >= 6, (ours, theirs)


def test_predict_is_proba_at_one_half(cancer):
    X, y = cancer
    clf = _small().fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict(X), (proba[:, 1] >= 0.5).astype(int))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.score(X, y) > 0.95
    assert (
        clf.n_layers_ == 3 and clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    )
    assert [W.shape for W in clf.coefs_] == [(30, 8), (8, 1)]
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.validation_scores_ is None
    assert clf.t_ == clf.n_iter_ * X.shape[0]


def test_multiclass_has_a_softmax_output():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = _small().fit(X, y)
    assert clf.n_outputs_ == 3 and clf.out_activation_ == "softmax"
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) > 0.95


def test_same_seed_same_model_and_any_blas_thread_count(cancer):
    X, y = cancer
    with threadpool_limits(1):
        one = _small(max_iter=20).fit(X, y)
    with threadpool_limits(2):
        two = _small(max_iter=20).fit(X, y)
    for a, b in zip(one.coefs_, two.coefs_):
        np.testing.assert_array_equal(a, b)
    other = AnyLossMLPClassifier(hidden_layer_sizes=(8,), random_state=1, max_iter=20)
    assert not np.array_equal(other.fit(X, y).coefs_[0], one.coefs_[0])


def test_sample_weight_equals_repetition_full_batch(cancer):
    X, y = cancer
    sw = np.random.default_rng(0).integers(1, 4, X.shape[0])
    Xr, yr = np.repeat(X, sw, axis=0), np.repeat(y, sw)
    params = dict(batch_size=len(yr), shuffle=False, max_iter=10, tol=0.0)
    weighted = _small(**params).fit(X, y, sample_weight=sw)
    repeated = _small(**params).fit(Xr, yr)
    np.testing.assert_allclose(
        weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-5
    )
    unweighted = _small(**params).fit(X, y)  # the weights do make a difference
    assert not np.allclose(
        weighted.predict_proba(X), unweighted.predict_proba(X), rtol=1e-3
    )


def test_float32_stays_float32(cancer):
    X, y = cancer
    clf = _small().fit(X.astype(np.float32), y)
    assert all(W.dtype == np.float32 for W in clf.coefs_)


def test_early_stopping_keeps_the_best_validation_model(cancer):
    X, y = cancer
    clf = _small(early_stopping=True, n_iter_no_change=5).fit(X, y)
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_partial_fit_and_warm_start(cancer):
    X, y = cancer
    clf = _small()
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    for _ in range(30):
        clf.partial_fit(X, y, classes=[0, 1])
    assert clf.n_iter_ == 30 and clf.score(X, y) > 0.95
    with pytest.raises(ValueError, match="differs"):
        clf.partial_fit(X, y, classes=[0, 2])
    warm = _small(max_iter=5, warm_start=True)
    with pytest.warns(Warning):
        warm.fit(X, y)
    first = warm.coefs_[0].copy()
    with pytest.warns(Warning):
        warm.fit(X, y)
    assert warm.n_iter_ == 10 and not np.array_equal(first, warm.coefs_[0])


@pytest.mark.parametrize("hidden", [(0,), (-3,), (2.5,), "ten", ((3, 4),)])
def test_bad_hidden_layer_sizes(cancer, hidden):
    X, y = cancer
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        AnyLossMLPClassifier(hidden_layer_sizes=hidden).fit(X, y)


@pytest.mark.parametrize("batch_size", [0, -5, 2.5, "big"])
def test_bad_batch_size(cancer, batch_size):
    X, y = cancer
    with pytest.raises(ValueError, match="batch_size"):
        AnyLossMLPClassifier(batch_size=batch_size).fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"metric": "auc"}, "'metric' parameter"),
        ({"beta": 0.0}, "'beta' parameter"),
        ({"amplifier": -1.0}, "'amplifier' parameter"),
        ({"log_loss_weight": -0.5}, "'log_loss_weight' parameter"),
        ({"log_loss_weight": "on"}, "'log_loss_weight' parameter"),
        ({"activation": "gelu"}, "'activation' parameter"),
        ({"solver": "lbfgs"}, "'solver' parameter"),
    ],
)
def test_bad_parameters(cancer, params, match):
    X, y = cancer
    with pytest.raises(ValueError, match=match):
        AnyLossMLPClassifier(**params).fit(X, y)


def test_bad_data(cancer):
    X, y = cancer
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _small().fit(bad, y)
    with pytest.raises(ValueError, match="at least two classes"):
        _small().fit(X, np.zeros(X.shape[0]))
    with pytest.raises(ValueError, match="Negative values"):
        _small().fit(X, y, sample_weight=-np.ones(X.shape[0]))
    with pytest.raises(NotFittedError):
        _small().predict(X)
    with pytest.raises(ValueError, match="features"):
        _small(max_iter=2).fit(X, y).predict(X[:, :3])


def test_warm_start_with_other_classes_or_layers_is_a_clear_error():
    X, y = make_classification(300, 6, n_informative=4, n_classes=3, random_state=0)
    for first, second in ((y % 2, y), (y, y % 2), (y, y + 3)):
        clf = _small(max_iter=2, warm_start=True)
        with pytest.warns(Warning):
            clf.fit(X, first)
        with pytest.raises(ValueError, match="warm_start=True continues"):
            clf.fit(X, second)
    with pytest.raises(ValueError, match="has 7 features, but .* expecting 6"):
        clf.fit(np.column_stack([X, X[:, 0]]), y)
    assert clf.n_features_in_ == 6  # the model is as it was
    assert clf.predict(X).shape == (300,)
    clf.set_params(hidden_layer_sizes=(clf.coefs_[0].shape[1] + 1,))
    with pytest.raises(ValueError, match="another shape"):
        clf.fit(X, y)


@pytest.mark.parametrize("incremental", [False, True])
def test_zero_weights_leave_no_trace_in_multiclass_batches(incremental):
    # Batches holding only zero-weight rows of a class: that class's mass in
    # the batch is 0, and the log-loss term (on by default for F1) must skip
    # the rows, not divide 0 by 0. Zero-weight rows change nothing at all.
    X, y = make_classification(
        400, 8, n_informative=5, n_classes=3, weights=[0.6, 0.38, 0.02],
        random_state=0,
    )  # fmt: skip
    sw = np.random.default_rng(0).integers(0, 2, 400).astype(float)
    rare = np.flatnonzero(y == 2)
    sw[rare] = 0.0
    sw[rare[0]] = 1.0  # every batch but one holds the rare class at weight 0
    moved = X.copy()
    moved[sw == 0] = np.random.default_rng(1).standard_normal(moved[sw == 0].shape)
    models = []
    for data in (X, moved):
        clf = AnyLossMLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if incremental:
                for _ in range(5):
                    clf.partial_fit(data, y, classes=[0, 1, 2], sample_weight=sw)
            else:
                clf.fit(data, y, sample_weight=sw)
        models.append(clf)
    assert _auto_log_loss_weight("f1", "multiclass") > 0
    for a, b in zip(models[0].coefs_, models[1].coefs_, strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)


def test_warm_start_continues_from_the_public_weights(cancer):
    X, y = cancer
    clf = _small(max_iter=2, warm_start=True)
    with pytest.warns(Warning):
        clf.fit(X, y)
    clf.coefs_ = [np.zeros_like(W) for W in clf.coefs_]
    clf.intercepts_ = [np.zeros_like(b) for b in clf.intercepts_]
    clf.set_params(max_iter=1, learning_rate_init=1e-12)
    with pytest.warns(Warning):
        clf.fit(X, y)
    # One step of size ~1e-12 from zero weights: still (almost) zero.
    assert all(np.abs(W).max() < 1e-9 for W in clf.coefs_)


@pytest.mark.parametrize(
    "metric, target, expected",
    [
        ("f1", "binary", 10.0),
        ("balanced_accuracy", "binary", 10.0),
        ("f1", "multiclass", 40.0),
        ("balanced_accuracy", "multiclass", 10.0),
        ("f1", "multilabel", 10.0),
    ],
)
def test_auto_amplifier_is_the_target_default_and_equals_passing_it(
    metric, target, expected
):
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    if target == "binary":
        y = (y == 0).astype(int)
    elif target == "multilabel":
        y = np.column_stack([y == 0, y == 1])
    average = "macro" if target == "multilabel" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        auto = _small(metric=metric, average=average, max_iter=3).fit(X, y)
        pinned = _small(
            metric=metric, average=average, max_iter=3, amplifier=expected
        ).fit(X, y)
    assert auto.amplifier == "auto" and auto.amplifier_ == expected
    assert pinned.amplifier_ == expected
    for a, b in zip(auto.coefs_, pinned.coefs_):
        np.testing.assert_array_equal(a, b)


def test_a_validation_split_without_a_class_is_warned_about():
    rng = np.random.RandomState(0)
    X = rng.randn(1000, 4)
    y = np.zeros(1000, int)
    y[:4] = 1  # too few positives for the 10 % validation split to hold one
    X[:4, 0] += 4
    with pytest.warns(UserWarning, match="validation split .* does not hold every"):
        _small(early_stopping=True, max_iter=3).fit(X, y)
