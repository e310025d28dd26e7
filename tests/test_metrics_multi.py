"""Metrics of several classes (K x K matrix) or labels (per-label 2 x 2
matrices): values of hard labels against scikit-learn (and imbalanced-learn's
G-mean), partials against finite differences, the binary case as a special
case."""

import itertools

import numpy as np
import pytest
from imblearn.metrics import geometric_mean_score
from numba import njit
from sklearn import metrics as skm

from sk_anyloss._metrics import FORMULAS, METRIC_NAMES, Metric, resolve_metric
from sk_anyloss._metrics_multi import JOINT, LABELS, MATRIX, work_size

AVERAGES = ("macro", "micro", "weighted")
CASES = [
    (name, average)
    for name in METRIC_NAMES
    for average in (["macro"] if name in JOINT else AVERAGES)
]


def _f1(tn, fp, fn, tp):
    return 2 * tp / (2 * tp + fp + fn)


@pytest.fixture(scope="module")
def compiled():
    """The two layouts of every metric compiled with Numba."""
    return {
        name: Metric(name).forms(njit, f"test_multi_{name}") for name in METRIC_NAMES
    }


def _matrix(form, metric, C):
    K = C.shape[0]
    D = np.empty((K, K))
    scale = C.sum()
    value = form(C / scale, scale, metric.params, D, np.empty(work_size(MATRIX, K)))
    return value, D / scale


def _labels(form, metric, cms):
    L = cms.shape[0]
    partials = np.empty(4 * L)
    scale = cms[0].sum()
    value = form(
        (cms / scale).ravel(), scale, metric.params, partials,
        np.empty(work_size(LABELS, L)),
    )  # fmt: skip
    return value, partials.reshape(L, 4) / scale


def _sklearn_multiclass(name, y, y_pred, sw, beta, average):
    kwargs = dict(sample_weight=sw)
    if name == "accuracy":
        return skm.accuracy_score(y, y_pred, **kwargs)
    if name == "balanced_accuracy":
        return skm.balanced_accuracy_score(y, y_pred, **kwargs)
    if name == "mcc":
        return skm.matthews_corrcoef(y, y_pred, **kwargs)
    if name == "cohen_kappa":
        return skm.cohen_kappa_score(y, y_pred, **kwargs)
    if name == "gmean":
        return geometric_mean_score(y, y_pred, average="multiclass", **kwargs)
    return _sklearn_averaged(name, y, y_pred, sw, beta, average)


def _sklearn_averaged(name, y, y_pred, sw, beta, average):
    """F1, F-beta, Jaccard (sklearn) and Fowlkes-Mallows (the geometric mean
    of sklearn's precision and recall) of each class or label, averaged."""
    kwargs = dict(sample_weight=sw, average=average, zero_division=0)
    if name == "f1":
        return skm.f1_score(y, y_pred, **kwargs)
    if name == "fbeta":
        return skm.fbeta_score(y, y_pred, beta=beta, **kwargs)
    if name == "jaccard":
        return skm.jaccard_score(y, y_pred, **kwargs)
    assert name == "fowlkes_mallows"
    if average == "micro":
        kwargs["average"] = "micro"
        p = skm.precision_score(y, y_pred, **kwargs)
        r = skm.recall_score(y, y_pred, **kwargs)
        return np.sqrt(p * r)
    kwargs["average"] = None
    per_class = np.sqrt(
        skm.precision_score(y, y_pred, **kwargs) * skm.recall_score(y, y_pred, **kwargs)
    )
    if average == "macro":
        return per_class.mean()
    support = skm.multilabel_confusion_matrix(y, y_pred, sample_weight=sw)[:, 1].sum(1)
    return np.sum(per_class * support) / support.sum()


def _random_labels(rng, K, n):
    y = rng.integers(0, K, n)
    y_pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, K, n))
    y[:K] = np.arange(K)  # every class in both
    y_pred[:K] = np.arange(K)
    return y, y_pred


@pytest.mark.parametrize("python", [False, True], ids=["numba", "python"])
@pytest.mark.parametrize("name, average", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_matrix_hard_labels_match_sklearn(compiled, python, name, average, weighted):
    rng = np.random.default_rng(METRIC_NAMES.index(name))
    metric = Metric(name, 2.0, average)
    for K in (3, 5):
        for _ in range(8):
            n = int(rng.integers(30, 90))
            y, y_pred = _random_labels(rng, K, n)
            sw = rng.uniform(0.1, 3.0, n) if weighted else None
            C = skm.confusion_matrix(y, y_pred, sample_weight=sw)
            if python:
                got = metric.matrix_value(C)
            else:
                got, _ = _matrix(compiled[name][1], metric, C.astype(float))
            expected = _sklearn_multiclass(name, y, y_pred, sw, 2.0, average)
            assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("name, average", CASES)
def test_matrix_partials_match_finite_differences(compiled, name, average):
    rng = np.random.default_rng(11)
    metric = Metric(name, 1.5, average)
    form = compiled[name][1]
    for K in (2, 3, 4):
        for _ in range(4):
            C = rng.uniform(0.5, 20.0, (K, K))
            _, D = _matrix(form, metric, C)
            for t, k in itertools.product(range(K), range(K)):
                step = 1e-6 * C[t, k]
                up, down = C.copy(), C.copy()
                up[t, k] += step
                down[t, k] -= step
                fd = (_matrix(form, metric, up)[0] - _matrix(form, metric, down)[0]) / (
                    2 * step
                )
                assert D[t, k] == pytest.approx(fd, rel=1e-5, abs=1e-9), (K, t, k)


@pytest.mark.parametrize("name", METRIC_NAMES)
@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("weighted", [False, True])
def test_labels_hard_labels_match_sklearn(compiled, name, average, weighted):
    # A multilabel target: the binary metric of each label, averaged.
    rng = np.random.default_rng(7)
    metric = Metric(name, 2.0, average)
    for L in (1, 3, 6):
        for _ in range(6):
            n = int(rng.integers(30, 90))
            Y = (rng.random((n, L)) < rng.uniform(0.1, 0.6, L)).astype(int)
            P = np.where(rng.random((n, L)) < 0.7, Y, 1 - Y)
            Y[:2], P[:2] = [[0] * L, [1] * L], [[0] * L, [1] * L]
            sw = rng.uniform(0.1, 3.0, n) if weighted else None
            cms = np.array(
                [
                    skm.confusion_matrix(
                        Y[:, lab], P[:, lab], labels=[0, 1], sample_weight=sw
                    ).ravel()
                    for lab in range(L)
                ]
            )
            got = metric.labels_value(cms)
            got_compiled, _ = _labels(compiled[name][0], metric, cms.astype(float))
            assert got_compiled == pytest.approx(got, rel=1e-12)
            if L > 1 and name in ("f1", "fbeta", "jaccard", "fowlkes_mallows"):
                expected = _sklearn_averaged(name, Y, P, sw, 2.0, average)
            elif average == "micro":
                expected = FORMULAS[name](*cms.sum(0), 2.0)[0]
            else:
                per_label = [FORMULAS[name](*cm, 2.0)[0] for cm in cms]
                support = cms[:, 2] + cms[:, 3]
                weights = support if average == "weighted" else np.ones(L)
                expected = np.dot(per_label, weights) / weights.sum()
            assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("name", METRIC_NAMES)
@pytest.mark.parametrize("average", AVERAGES)
def test_labels_partials_match_finite_differences(compiled, name, average):
    rng = np.random.default_rng(3)
    metric = Metric(name, 0.7, average)
    form = compiled[name][0]
    for L in (1, 2, 4):
        cms = rng.uniform(0.5, 20.0, (L, 4))
        cms *= 30.0 / cms.sum(1, keepdims=True)  # every label's total is n
        _, D = _labels(form, metric, cms)
        for lab, q in itertools.product(range(L), range(4)):
            # Move one cell and keep the label's total: d/dq - d/d(other).
            other = (q + 1) % 4
            step = 1e-6 * cms[lab, q]
            up, down = cms.copy(), cms.copy()
            up[lab, q] += step
            up[lab, other] -= step
            down[lab, q] -= step
            down[lab, other] += step
            fd = (_labels(form, metric, up)[0] - _labels(form, metric, down)[0]) / (
                2 * step
            )
            got = D[lab, q] - D[lab, other]
            assert got == pytest.approx(fd, rel=1e-5, abs=1e-9), (L, lab, q)


@pytest.mark.parametrize("name, average", CASES)
def test_degenerate_matrices_are_finite(compiled, name, average):
    metric = Metric(name, 1.0, average)
    labels, matrix = compiled[name]
    for K in (2, 3):
        for cells in itertools.product([0.0, 1.0], repeat=K * K):
            C = np.array(cells).reshape(K, K)
            if not C.any():
                continue
            value, D = _matrix(matrix, metric, C)
            assert np.isfinite(value) and np.all(np.isfinite(D)), (C, value)
    # Labels: every pair of 0/1 matrices of two samples.
    matrices = [c for c in itertools.product([0.0, 1.0, 2.0], repeat=4) if sum(c) == 2]
    for first, second in itertools.product(matrices, repeat=2):
        value, D = _labels(labels, metric, np.array([first, second]))
        assert np.isfinite(value) and np.all(np.isfinite(D)), (first, second)


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_one_label_and_two_classes_are_the_binary_metric(compiled, name):
    # The labels layout with one label is the binary metric; so is the matrix
    # layout of two classes for the metrics with one multiclass definition,
    # and the mean over both classes as positive for the averaged ones.
    cm = np.array([50.0, 5.0, 10.0, 20.0])
    expected, *partials = FORMULAS[name](*cm, 2.0)
    metric = Metric(name, 2.0)
    labels, matrix = compiled[name]
    value, D = _labels(labels, metric, cm.reshape(1, 4))
    assert value == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(D.ravel(), partials, rtol=1e-10)
    value, D = _matrix(matrix, metric, cm.reshape(2, 2))
    if name in JOINT:
        np.testing.assert_allclose(D.ravel(), partials, rtol=1e-10)
    else:
        flipped = FORMULAS[name](*cm[::-1], 2.0)[0]
        expected = 0.5 * (expected + flipped)
    assert value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("average", AVERAGES)
def test_a_users_function_is_averaged_as_the_builtin(average):
    # F1 written by a user, averaged over classes or labels, is sklearn's.
    rng = np.random.default_rng(5)
    user = resolve_metric(_f1, average=average)
    builtin = Metric("f1", average=average)
    y, y_pred = _random_labels(rng, 4, 80)
    C = skm.confusion_matrix(y, y_pred)
    assert user.matrix_value(C) == pytest.approx(builtin.matrix_value(C), rel=1e-12)
    expected = skm.f1_score(y, y_pred, average=average)
    assert user.matrix_value(C) == pytest.approx(expected, rel=1e-12)
    cms = skm.multilabel_confusion_matrix(y, y_pred).reshape(-1, 4)
    assert user.labels_value(cms) == pytest.approx(expected, rel=1e-12)
    # The average is data: the same compiled metric serves every average.
    assert user == resolve_metric(_f1) and user.average == average
