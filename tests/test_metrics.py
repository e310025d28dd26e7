import itertools
import math

import numpy as np
import pytest
from numba import njit
from sklearn import metrics as skm

from sk_anyloss._metrics import (
    FORMULAS,
    METRIC_NAMES,
    build_formulas,
    check_metric_name,
    confusion_sums,
    metric_value,
)

compiled = build_formulas(njit)
BUILDS = {"python": FORMULAS, "numba": compiled}


def _sklearn_value(name, y, y_pred, sw, beta):
    if name == "accuracy":
        return skm.accuracy_score(y, y_pred, sample_weight=sw)
    if name == "balanced_accuracy":
        return skm.balanced_accuracy_score(y, y_pred, sample_weight=sw)
    if name == "f1":
        return skm.f1_score(y, y_pred, sample_weight=sw)
    if name == "fbeta":
        return skm.fbeta_score(y, y_pred, beta=beta, sample_weight=sw)
    if name == "mcc":
        return skm.matthews_corrcoef(y, y_pred, sample_weight=sw)
    if name == "jaccard":
        return skm.jaccard_score(y, y_pred, sample_weight=sw)
    if name == "cohen_kappa":
        return skm.cohen_kappa_score(y, y_pred, sample_weight=sw)
    recall = skm.recall_score(y, y_pred, sample_weight=sw)
    if name == "gmean":
        specificity = skm.recall_score(1 - y, 1 - y_pred, sample_weight=sw)
        return math.sqrt(recall * specificity)
    assert name == "fowlkes_mallows"
    return math.sqrt(skm.precision_score(y, y_pred, sample_weight=sw) * recall)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("name", METRIC_NAMES)
@pytest.mark.parametrize("weighted", [False, True])
def test_hard_labels_match_sklearn(build, name, weighted):
    rng = np.random.default_rng(METRIC_NAMES.index(name))
    f = BUILDS[build]
    beta = 2.0
    for _ in range(20):
        n = int(rng.integers(8, 60))
        y = (rng.random(n) < rng.uniform(0.1, 0.6)).astype(int)
        y_pred = np.where(rng.random(n) < 0.7, y, 1 - y)
        y[:2], y_pred[:2] = [0, 1], [1, 0]  # every cell of the matrix non-empty
        y[2:4], y_pred[2:4] = [0, 1], [0, 1]
        sw = rng.uniform(0.1, 3.0, n) if weighted else None
        cm = confusion_sums(y, y_pred, sw)
        got = f[name](*cm, beta)[0]
        assert got == pytest.approx(
            _sklearn_value(name, y, y_pred, sw, beta), rel=1e-12
        )


@pytest.mark.parametrize("name", METRIC_NAMES)
@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_partials_match_finite_differences(name, beta):
    rng = np.random.default_rng(7)
    for _ in range(25):
        cm = rng.uniform(0.5, 50.0, 4)
        _, *partials = compiled[name](*cm, beta)
        for k in range(4):
            step = 1e-6 * cm[k]
            up, down = cm.copy(), cm.copy()
            up[k] += step
            down[k] -= step
            fd = (compiled[name](*up, beta)[0] - compiled[name](*down, beta)[0]) / (
                2 * step
            )
            assert partials[k] == pytest.approx(fd, rel=1e-5, abs=1e-9), (k, cm)


def test_builds_agree():
    rng = np.random.default_rng(3)
    for name in METRIC_NAMES:
        for _ in range(10):
            cm = rng.uniform(0.0, 5.0, 4)
            np.testing.assert_allclose(
                compiled[name](*cm, 1.5),
                FORMULAS[name](*cm, 1.5),
                rtol=1e-13,
                atol=1e-300,
            )


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_degenerate_points_are_finite(name):
    # Every matrix with zero cells, including all zeros: no NaN, no inf.
    for cm in itertools.product([0.0, 1.0], repeat=4):
        for build in BUILDS.values():
            out = build[name](*cm, 1.0)
            assert all(math.isfinite(v) for v in out), (cm, out)
            assert -1.0 <= out[0] <= 1.0


@pytest.mark.parametrize(
    "name, cm, expected",
    [
        # No predicted positives: sklearn's zero_division=0 gives 0.
        ("f1", (5, 0, 3, 0), 0.0),
        ("jaccard", (5, 0, 3, 0), 0.0),
        ("mcc", (5, 0, 3, 0), 0.0),
        ("fowlkes_mallows", (5, 0, 3, 0), 0.0),
        ("gmean", (5, 0, 3, 0), 0.0),
        ("balanced_accuracy", (5, 0, 3, 0), 0.5),
        ("accuracy", (5, 0, 3, 0), 5 / 8),
        ("cohen_kappa", (5, 0, 3, 0), 0.0),
        # Perfect predictions.
        ("mcc", (4, 0, 0, 2), 1.0),
        ("cohen_kappa", (4, 0, 0, 2), 1.0),
        ("gmean", (4, 0, 0, 2), 1.0),
    ],
)
def test_table_of_values(name, cm, expected):
    assert metric_value(name, *cm) == pytest.approx(expected, abs=1e-12)


def test_metric_values_in_soft_range():
    # fbeta with beta=1 is f1; fbeta weights recall more for beta > 1.
    cm = (50.0, 5.0, 10.0, 20.0)
    assert metric_value("fbeta", *cm, beta=1.0) == metric_value("f1", *cm)
    assert metric_value("fbeta", *cm, beta=2.0) < metric_value("fbeta", *cm, beta=0.5)


def test_unknown_metric_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown metric 'auc'") as exc:
        check_metric_name("auc")
    for name in METRIC_NAMES:
        assert name in str(exc.value)
