"""The public metrics module: scorers equal the registry and scikit-learn, and
``anyloss`` is the training loss."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.metrics import get_scorer as sklearn_get_scorer

from sk_anyloss import METRIC_NAMES, AnyLossClassifier
from sk_anyloss._metrics import score_labels
from sk_anyloss.metrics import (
    anyloss,
    fowlkes_mallows_index_score,
    fowlkes_mallows_index_scorer,
    get_scorer,
    get_scorer_names,
    gmean_score,
    gmean_scorer,
)

import naive


class _Fixed(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose predictions are given."""

    def __init__(self, y_pred, classes=(0, 1)):
        self.y_pred = y_pred
        self.classes = classes
        self.classes_ = np.asarray(classes)

    def predict(self, X):
        return np.asarray(self.y_pred)


def _label_cases():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    yield "random", y, rng.integers(0, 2, 60)
    yield "perfect", y, y.copy()
    yield "no predicted positive", y, np.zeros(60, int)
    yield "all predicted positive", y, np.ones(60, int)
    yield "one class in y_true", np.zeros(60, int), rng.integers(0, 2, 60)


@pytest.mark.parametrize("metric", METRIC_NAMES)
@pytest.mark.parametrize("weighted", [False, True])
def test_scorer_equals_registry(metric, weighted):
    # Where scikit-learn has the metric, this checks that its function and the
    # registry the estimators train on agree, at the edge cases too.
    rng = np.random.default_rng(1)
    for case, y_true, y_pred in _label_cases():
        sw = rng.uniform(0.1, 3.0, y_true.shape[0]) if weighted else None
        scorer = get_scorer(metric, beta=2.0)
        if metric == "balanced_accuracy" and np.unique(y_true).shape[0] == 1:
            # scikit-learn averages the recall of the classes in y_true only
            # (and warns); the registry counts the missing class's recall as 0
            with pytest.warns(UserWarning, match="classes not in y_true"):
                got = scorer(_Fixed(y_pred), None, y_true, sample_weight=sw)
            assert got == pytest.approx(np.average(y_pred == 0, weights=sw))
            continue
        got = scorer(_Fixed(y_pred), None, y_true, sample_weight=sw)
        expected = score_labels(
            y_true, y_pred, metric=metric, beta=2.0, sample_weight=sw
        )
        assert got == pytest.approx(expected, abs=1e-12), case


@pytest.mark.parametrize(
    "metric, name",
    [
        ("accuracy", "accuracy"),
        ("balanced_accuracy", "balanced_accuracy"),
        ("f1", "f1"),
        ("mcc", "matthews_corrcoef"),
        ("jaccard", "jaccard"),
    ],
)
def test_scorer_equals_sklearn_scorer(metric, name):
    X, y = make_classification(n_samples=200, weights=[0.8], random_state=0)
    clf = AnyLossClassifier(max_iter=50, tol=None).fit(X, y)
    assert get_scorer(metric)(clf, X, y) == pytest.approx(
        sklearn_get_scorer(name)(clf, X, y)
    )


def test_pos_label_with_string_labels():
    y_true = np.array(["no", "no", "yes", "yes", "yes"])
    y_pred = np.array(["no", "yes", "yes", "yes", "no"])
    # precision 2/3, recall 2/3 for "yes"; precision 1/2, recall 1/2 for "no"
    assert get_scorer("f1", pos_label="yes")(
        _Fixed(y_pred, ("no", "yes")), None, y_true
    ) == (pytest.approx(2 / 3))
    assert fowlkes_mallows_index_score(y_true, y_pred, pos_label="yes") == (
        pytest.approx(2 / 3)
    )
    assert fowlkes_mallows_index_score(y_true, y_pred, pos_label="no") == (
        pytest.approx(1 / 2)
    )
    # symmetric in the classes
    assert gmean_score(y_true, y_pred, pos_label="yes") == pytest.approx(
        gmean_score(y_true, y_pred, pos_label="no")
    )
    # ... so a pos_label that is not a label changes nothing either
    assert gmean_score(y_true, y_pred) == gmean_score(y_true, y_pred, pos_label="no")
    with pytest.raises(ValueError, match="pos_label=1 is not a valid label"):
        fowlkes_mallows_index_score(y_true, y_pred)


def test_a_pos_label_that_is_not_a_class_is_refused_on_any_fold():
    # A fold whose truth and predictions hold one label must not score a typo.
    only_no = np.array(["no"] * 5)
    for scorer in (get_scorer("f1", pos_label="Yes"), get_scorer(_tp_rate)):
        with pytest.raises(ValueError, match="pos_label"):
            scorer(_Fixed(only_no, ("no", "yes")), None, only_no)


def test_scorers_refuse_indicators_other_than_0_1():
    y_true = np.array([[0, 2], [2, 0], [2, 2]])
    with pytest.raises(ValueError, match=r"only 0 and 1 .*\[0, 2\]"):
        get_scorer("f1")(_Fixed(y_true // 2), None, y_true)


def test_an_average_over_both_classes_takes_any_labels():
    y_true = np.array(["no", "no", "yes", "yes", "yes"])
    y_pred = np.array(["no", "yes", "yes", "yes", "no"])
    value = get_scorer("f1", average="macro")(
        _Fixed(y_pred, ("no", "yes")), None, y_true
    )
    assert value == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def _tp_rate(tn, fp, fn, tp):
    return tp / (tp + fn)


@pytest.mark.parametrize(
    "name", ["accuracy", "balanced_accuracy", "mcc", "cohen_kappa", "gmean"]
)
def test_symmetric_scorers_take_any_labels(name):
    # scikit-learn's scorers check a pos_label argument against the classes,
    # even for metrics that do not use it: the symmetric metrics must score
    # labels without 1 with the default pos_label (inside cross_val_score an
    # error would become a NaN score).
    y_true = np.array(["no", "no", "yes", "yes", "yes"])
    y_pred = np.array(["no", "yes", "yes", "yes", "no"])
    scorer = get_scorer(name)
    value = scorer(_Fixed(y_pred, ("no", "yes")), None, y_true)
    flipped = {"no": "yes", "yes": "no"}
    swap = np.vectorize(flipped.get)
    assert value == pytest.approx(
        scorer(_Fixed(swap(y_pred), ("no", "yes")), None, swap(y_true))
    )
    codes = (y_true == "yes").astype(int) * 2  # labels {0, 2}
    assert value == pytest.approx(
        scorer(_Fixed((y_pred == "yes").astype(int) * 2, (0, 2)), None, codes)
    )


def test_gmean_and_fowlkes_mallows_by_definition():
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.integers(0, 2, 100), rng.integers(0, 2, 100)
    sw = rng.uniform(0.5, 2.0, 100)
    tpr = recall_score(y_true, y_pred, sample_weight=sw)
    tnr = recall_score(y_true, y_pred, pos_label=0, sample_weight=sw)
    ppv = precision_score(y_true, y_pred, sample_weight=sw)
    assert gmean_score(y_true, y_pred, sample_weight=sw) == pytest.approx(
        np.sqrt(tpr * tnr)
    )
    assert fowlkes_mallows_index_score(
        y_true, y_pred, sample_weight=sw
    ) == pytest.approx(np.sqrt(ppv * tpr))
    est = _Fixed(y_pred)
    assert gmean_scorer(est, None, y_true) == gmean_score(y_true, y_pred)
    assert fowlkes_mallows_index_scorer(est, None, y_true) == (
        fowlkes_mallows_index_score(y_true, y_pred)
    )


def test_gmean_equals_imbalanced_learn():
    imblearn_metrics = pytest.importorskip("imblearn.metrics")
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 2, 100), rng.integers(0, 2, 100)
    assert gmean_score(y_true, y_pred) == pytest.approx(
        imblearn_metrics.geometric_mean_score(y_true, y_pred)
    )


def test_binary_only():
    with pytest.raises(ValueError, match="binary targets"):
        gmean_score([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="binary targets"):
        fowlkes_mallows_index_score(["a", "b", "c"], ["a", "b", "b"], pos_label="a")


def test_names_and_bad_name():
    assert get_scorer_names() == list(METRIC_NAMES)
    with pytest.raises(ValueError, match="Unknown metric 'f2'.*gmean, mcc"):
        get_scorer("f2")
    with pytest.raises(ValueError, match="Unknown metric"):
        anyloss([0, 1], [0.2, 0.8], metric="roc_auc")


@pytest.mark.parametrize("metric", METRIC_NAMES)
@pytest.mark.parametrize("weighted", [False, True])
def test_anyloss_is_the_training_loss(metric, weighted):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + rng.normal(size=300) > 1.0).astype(int)
    theta = rng.normal(size=6)
    sw = rng.uniform(0.1, 2.0, 300) if weighted else None
    expected, _ = naive.loss_and_gradient(
        X,
        y,
        sw,
        theta,
        metric=metric,
        beta=0.5,
        amplifier=20.0,
    )
    y_prob = 1.0 / (1.0 + np.exp(-(X @ theta[:5] + theta[5])))
    got = anyloss(y, y_prob, metric=metric, beta=0.5, amplifier=20.0, sample_weight=sw)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_anyloss_of_a_fitted_model_and_string_labels():
    X, y = make_classification(n_samples=300, weights=[0.85], random_state=0)
    labels = np.array(["ham", "spam"])[y]
    clf = AnyLossClassifier(metric="f1", max_iter=1, tol=None, warmup_iter=0)
    clf.fit(X, labels)
    # one iteration from zero weights: the recorded loss is at p = 1/2
    assert anyloss(labels, np.full(300, 0.5), pos_label="spam") == pytest.approx(
        clf.loss_curve_[0]
    )


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_anyloss_tends_to_the_hard_metric(metric):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 200)
    p = np.clip(rng.uniform(size=200), 0.0, 1.0)
    p[np.abs(p - 0.5) < 0.05] = 0.9  # nothing close to the threshold
    hard = score_labels(y, (p >= 0.5).astype(int), metric=metric)
    assert anyloss(y, p, metric=metric, amplifier=1e4) == pytest.approx(
        1.0 - hard, abs=1e-9
    )
    # extreme probabilities and amplifiers stay finite
    assert np.isfinite(anyloss(y, (p > 0.5).astype(float), amplifier=1e6))


def test_anyloss_bad_input():
    with pytest.raises(ValueError, match="amplifier must be positive"):
        anyloss([0, 1], [0.2, 0.8], amplifier=0)
    with pytest.raises(ValueError, match="1-D probability"):
        anyloss([0, 1], [[0.8, 0.2], [0.2, 0.8]])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        anyloss([0, 1], [0.2, 1.5])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        anyloss([0, 1, 1], [0.2, 0.8])
