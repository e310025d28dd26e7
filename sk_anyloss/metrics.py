"""Scorers for the AnyLoss metrics, and the AnyLoss loss as a plain function.

Every metric an estimator can be trained on (``METRIC_NAMES``) can also score
it: :func:`get_scorer` turns a metric name into the matching scikit-learn
scorer, so that :class:`~sklearn.model_selection.GridSearchCV` or
:func:`~sklearn.model_selection.cross_validate` select a model on the very
metric it was trained for. Where scikit-learn has the metric the scorer wraps
the scikit-learn function; the two it lacks for binary labels, the geometric
mean of the true positive and true negative rates and the Fowlkes-Mallows index
of a classifier, are :func:`gmean_score` and
:func:`fowlkes_mallows_index_score`.

:func:`anyloss` computes the training loss itself, ``1 - M`` of the soft
confusion matrix of predicted probabilities, for use outside scikit-learn.

The metrics are those of a binary confusion matrix, and, for multiclass and
multilabel targets, their averages over classes or labels (``average``) or
their multiclass definitions, as the estimators train them; a denominator of
zero gives the value 0, as scikit-learn's functions with ``zero_division=0``.
"""

from numbers import Real

import numpy as np
from numba import njit
from scipy.sparse import issparse
from scipy.special import logit
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    f1_score,
    fbeta_score,
    jaccard_score,
    make_scorer,
    matthews_corrcoef,
)
from sklearn.utils import check_consistent_length, column_or_1d
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight

from ._base import AVERAGES, check_indicator, fill_doc, resolve_average
from ._kernels_cpu import amplified
from ._metrics import (
    METRIC_NAMES,
    check_metric_name,
    metric_value,
    resolve_metric,
    score_labels,
)

__all__ = [
    "anyloss",
    "fowlkes_mallows_index_score",
    "fowlkes_mallows_index_scorer",
    "get_scorer",
    "get_scorer_names",
    "gmean_score",
    "gmean_scorer",
]


def _binary_labels(y_true, y_pred, pos_label, sample_weight, symmetric=False):
    """Validated ``y_true == pos_label``, ``y_pred == pos_label`` and weights.

    For a ``symmetric`` metric, whose value does not depend on which class is
    positive, a ``pos_label`` that is not one of the labels stands for the
    larger label instead of being an error."""
    check_consistent_length(y_true, y_pred, sample_weight)
    y_true = column_or_1d(y_true)
    y_pred = column_or_1d(y_pred)
    labels = unique_labels(y_true, y_pred)
    if labels.shape[0] > 2 or type_of_target(labels) not in ("binary", "multiclass"):
        raise ValueError(
            f"The metric is defined for binary targets; got the labels {labels!r}."
        )
    if symmetric and pos_label not in labels:
        pos_label = labels[-1]
    if labels.shape[0] == 2 and pos_label not in labels:
        raise ValueError(
            f"pos_label={pos_label!r} is not a valid label; it should be one of "
            f"{labels.tolist()!r}."
        )
    if sample_weight is not None:
        sample_weight = column_or_1d(sample_weight).astype(np.float64)
    return y_true == pos_label, y_pred == pos_label, sample_weight


def _function_score(y_true, y_pred, *, metric, pos_label=1, sample_weight=None):
    """A user's metric function of hard labels, from the weighted counts."""
    t, p, s = _binary_labels(y_true, y_pred, pos_label, sample_weight)
    return float(score_labels(t, p, metric=resolve_metric(metric), sample_weight=s))


def _registry_score(metric, y_true, y_pred, pos_label, sample_weight, beta=1.0,
                    symmetric=False):  # fmt: skip
    t, p, s = _binary_labels(y_true, y_pred, pos_label, sample_weight, symmetric)
    return float(score_labels(t, p, metric=metric, beta=beta, sample_weight=s))


@fill_doc
def gmean_score(y_true, y_pred, *, pos_label=1, sample_weight=None):
    """Geometric mean of the true positive rate and the true negative rate.

    ``sqrt(TP / (TP + FN) * TN / (TN + FP))``: the square root of
    sensitivity times specificity, the ``"gmean"`` metric of the estimators.
    Each rate with a zero denominator is 0, and so is the score.

    Parameters
    ----------
    {labels}

    pos_label : int, float, bool or str, default=1
        The positive class. The score is symmetric in the two classes, so
        ``pos_label`` changes nothing (a value that is not one of the labels
        is ignored).

    {sample_weight}

    Returns
    -------
    score : float
        The G-mean, between 0 and 1.

    See Also
    --------
    get_scorer : Scorer of any metric the estimators train on.
    sklearn.metrics.balanced_accuracy_score : The arithmetic mean of the two
        rates.

    Examples
    --------
    >>> from sk_anyloss.metrics import gmean_score
    >>> y_true = [0, 0, 0, 0, 1, 1]
    >>> y_pred = [0, 0, 0, 1, 1, 0]
    >>> round(gmean_score(y_true, y_pred), 4)  # sqrt(3/4 * 1/2)
    0.6124
    """
    return _registry_score(
        "gmean", y_true, y_pred, pos_label, sample_weight, symmetric=True
    )


@fill_doc
def fowlkes_mallows_index_score(y_true, y_pred, *, pos_label=1, sample_weight=None):
    """Fowlkes-Mallows index of binary predictions.

    ``TP / sqrt((TP + FP) * (TP + FN))``: the geometric mean of precision and
    recall of the positive class, the ``"fowlkes_mallows"`` metric of the
    estimators. A zero denominator gives 0.

    This is not :func:`sklearn.metrics.fowlkes_mallows_score`, which compares
    two clusterings by counting pairs of samples and ignores which label is
    which.

    Parameters
    ----------
    {labels}

    pos_label : int, float, bool or str, default=1
        The positive class.

    {sample_weight}

    Returns
    -------
    score : float
        The index, between 0 and 1.

    See Also
    --------
    get_scorer : Scorer of any metric the estimators train on.
    sklearn.metrics.f1_score : The harmonic mean of precision and recall.

    Examples
    --------
    >>> from sk_anyloss.metrics import fowlkes_mallows_index_score
    >>> y_true = [0, 0, 1, 1, 1, 1]
    >>> y_pred = [0, 1, 1, 1, 1, 0]
    >>> round(fowlkes_mallows_index_score(y_true, y_pred), 4)  # sqrt(3/4 * 3/4)
    0.75
    """
    return _registry_score("fowlkes_mallows", y_true, y_pred, pos_label, sample_weight)


gmean_scorer = make_scorer(gmean_score)
fowlkes_mallows_index_scorer = make_scorer(fowlkes_mallows_index_score)

# metric name -> (score function, whether it takes pos_label, fixed arguments).
# The arguments make scikit-learn's functions return 0 where a denominator is
# zero, as the estimators' metrics do.
_SCORE_FUNCTIONS = {
    "accuracy": (accuracy_score, False, {}),
    "balanced_accuracy": (balanced_accuracy_score, False, {}),
    "f1": (f1_score, True, {"zero_division": 0.0}),
    "fbeta": (fbeta_score, True, {"zero_division": 0.0}),
    "gmean": (gmean_score, False, {}),
    "mcc": (matthews_corrcoef, False, {}),
    "jaccard": (jaccard_score, True, {"zero_division": 0.0}),
    "cohen_kappa": (cohen_kappa_score, False, {"replace_undefined_by": 0.0}),
    "fowlkes_mallows": (fowlkes_mallows_index_score, True, {}),
}


def get_scorer_names():
    """Names of the metrics :func:`get_scorer` accepts.

    They are the values of the estimators' ``metric`` parameter.

    Returns
    -------
    names : list of str
        The metric names.

    Examples
    --------
    >>> from sk_anyloss.metrics import get_scorer_names
    >>> get_scorer_names()[:3]
    ['accuracy', 'balanced_accuracy', 'f1']
    """
    return list(METRIC_NAMES)


def _multi_target(y_true, y_pred):
    """``(kind, Y_true, Y_pred)``: the target kind of hard labels and both
    as 0/1 outputs (n, n_outputs), or ``None`` for a target of at most two
    classes (the binary metrics' own validation applies there)."""
    check_consistent_length(y_true, y_pred)
    y_true = y_true.toarray() if issparse(y_true) else np.asarray(y_true)
    y_pred = y_pred.toarray() if issparse(y_pred) else np.asarray(y_pred)
    if y_true.ndim == 2 and y_true.shape[1] > 1:
        if type_of_target(y_true) != "multilabel-indicator" or (
            y_pred.shape != y_true.shape
        ):
            raise ValueError(
                "A 2d y_true must be a multilabel indicator matrix of 0 and 1 and "
                f"y_pred one of the same shape; got {type_of_target(y_true)} of "
                f"shape {y_true.shape} and y_pred of shape {y_pred.shape}."
            )
        check_indicator(y_true, "y_true")
        return "multilabel", y_true, (y_pred != 0).astype(np.float64)
    y_true = column_or_1d(y_true)
    y_pred = column_or_1d(y_pred)
    labels = unique_labels(y_true, y_pred)
    if labels.shape[0] <= 2:
        return None
    one_hot = labels[None, :]
    return "multiclass", y_true[:, None] == one_hot, y_pred[:, None] == one_hot


def _score(y_true, y_pred, *, metric, beta=1.0, pos_label=1, average=None,
           sample_weight=None):  # fmt: skip
    """The metric of hard labels of any target, as the estimators train it."""
    multi = _multi_target(y_true, y_pred)
    if multi is None:
        if average is None:
            if callable(metric):
                return _function_score(
                    y_true, y_pred, metric=metric, pos_label=pos_label,
                    sample_weight=sample_weight,
                )  # fmt: skip
            func, takes_pos_label, kwargs = _SCORE_FUNCTIONS[metric]
            kwargs = dict(kwargs)
            if takes_pos_label:
                kwargs["pos_label"] = pos_label
            if metric == "fbeta":
                kwargs["beta"] = beta
            return float(func(y_true, y_pred, sample_weight=sample_weight, **kwargs))
        # Averaged over both classes: which one is positive changes nothing.
        t, p, sample_weight = _binary_labels(
            y_true, y_pred, pos_label, sample_weight, symmetric=True
        )
        kind, Y_true, Y_pred = "binary", t[:, None], p[:, None]
    else:
        kind, Y_true, Y_pred = multi
    if sample_weight is not None:
        sample_weight = _check_sample_weight(sample_weight, Y_true)
    average = resolve_average(kind, metric, average)
    m = resolve_metric(metric, beta, average)
    return m.of_predictions(kind, Y_true, Y_pred, sample_weight)


def _score_any_labels(y_true, y_pred, *, metric, beta=1.0, average=None,
                      sample_weight=None):  # fmt: skip
    """:func:`_score` of a metric that does not depend on which class is
    positive (a symmetric one, or an average over the classes). It has no
    ``pos_label`` parameter: scikit-learn's scorers check one (or its
    default) against the estimator's classes, which refused binary labels
    without 1."""
    return _score(
        y_true, y_pred, metric=metric, beta=beta, pos_label=None, average=average,
        sample_weight=sample_weight,
    )  # fmt: skip


@fill_doc
def get_scorer(metric, *, beta=1.0, pos_label=1, average=None):
    """Scorer of the metric an AnyLoss estimator is trained on.

    Pass ``scoring=get_scorer(estimator.metric, average=estimator.average)``
    to :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_validate` and the like to select
    models on the metric they optimise. The scorer calls ``predict``: it scores
    hard labels, the decision rule the metric was trained for. It scores
    binary, multiclass and multilabel targets, each as the estimators train on
    it.

    Parameters
    ----------
    metric : str or callable
        A metric name, one of :func:`get_scorer_names`, or a function
        ``f(tn, fp, fn, tp) -> float`` of the weighted counts of the confusion
        matrix: the values of the estimators' ``metric`` parameter. A
        function scores as it trains (a division by zero gives 0).

    beta : float, default=1.0
        Weight of recall against precision; used by ``metric="fbeta"`` only.

    pos_label : int, float, bool or str, default=1
        The positive class, for the metrics that depend on which class is
        positive (``"f1"``, ``"fbeta"``, ``"jaccard"``, ``"fowlkes_mallows"``,
        metric functions). The estimators' positive class is ``classes_[1]``,
        the larger label: pass it here when the labels are not ``{0, 1}``.
        The other metrics are symmetric in the two classes. Unused with
        ``average`` (which averages over both classes of a binary target) and
        for multiclass and multilabel targets.

    {average}

    Returns
    -------
    scorer : callable
        A scorer made by :func:`sklearn.metrics.make_scorer`, called as
        ``scorer(estimator, X, y, sample_weight=None)``. On a binary target
        with ``average=None`` it calls the scikit-learn function where
        scikit-learn has the metric (``f1_score``, ``matthews_corrcoef``, ...)
        and :func:`gmean_score` or :func:`fowlkes_mallows_index_score`
        otherwise. On the other targets it computes the metric of the
        confusion matrices of the predictions, the hard-label value of what
        the estimators train: it equals ``f1_score(average="macro")``,
        ``matthews_corrcoef``, ``balanced_accuracy_score`` and the like, and
        for ``"gmean"`` of a multiclass target imbalanced-learn's
        ``geometric_mean_score`` (the geometric mean of the recalls).

    Raises
    ------
    ValueError
        If ``metric`` is not one of :func:`get_scorer_names`, or ``average``
        is not one of ``None``, ``"macro"``, ``"micro"``, ``"weighted"``,
        ``"samples"``, or ``beta`` is not a positive finite number; when
        scoring, if ``average`` does not apply to the metric or the target
        (as for the estimators).

    Notes
    -----
    The scikit-learn functions agree with the metric the estimators train on
    (to rounding), with one exception: when ``y_true`` holds a single class,
    :func:`~sklearn.metrics.balanced_accuracy_score` averages the recall of
    that class alone (and warns), while the training metric counts the recall
    of the missing class as 0.

    See Also
    --------
    sklearn.metrics.get_scorer : scikit-learn's scorers, by scikit-learn's
        names.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_anyloss import AnyLossClassifier
    >>> from sk_anyloss.metrics import get_scorer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), AnyLossClassifier(metric="mcc"))
    >>> scores = cross_val_score(model, X, y, scoring=get_scorer("mcc"))
    >>> bool(scores.mean() > 0.85)
    True

    A multiclass target, macro-averaged F1 (the default average of a
    multiclass target for ``"f1"``):

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), AnyLossClassifier(metric="f1"))
    >>> scores = cross_val_score(model, X, y, scoring=get_scorer("f1", average="macro"))
    >>> bool(scores.mean() > 0.9)
    True
    """
    if callable(metric):
        resolve_metric(metric)  # a clear error now, for a function it cannot use
    else:
        check_metric_name(metric)  # a clear error for unknown names
    if average is not None and average not in AVERAGES:
        raise ValueError(
            f"average must be None or one of {list(AVERAGES)!r}; got {average!r}."
        )
    if not (isinstance(beta, Real) and 0 < beta < np.inf):
        raise ValueError(f"beta must be a positive finite number; got {beta!r}.")
    if average is None and (callable(metric) or _SCORE_FUNCTIONS[metric][1]):
        return make_scorer(
            _score, metric=metric, beta=beta, pos_label=pos_label, average=average
        )
    return make_scorer(_score_any_labels, metric=metric, beta=beta, average=average)


@njit(cache=True)
def _soft_positives(y01, z, s, amplifier):
    """Soft ``TP`` and ``FP``: the weighted sums of ``A(sigmoid(z))`` per class."""
    tp = 0.0
    fp = 0.0
    for i in range(z.shape[0]):
        a = amplified(z[i], amplifier)[0]
        if y01[i]:
            tp += s[i] * a
        else:
            fp += s[i] * a
    return tp, fp


def anyloss(
    y_true,
    y_prob,
    *,
    metric="f1",
    beta=1.0,
    amplifier=73.0,
    pos_label=1,
    sample_weight=None,
):
    """AnyLoss: one minus a metric of the soft confusion matrix.

    Each probability ``p`` is amplified to ``a = sigmoid(amplifier * (p -
    0.5))``, which is close to 0 or 1 unless ``p`` is near the threshold; the
    soft confusion matrix sums ``a`` (and ``1 - a``) over the samples of each
    class, and the loss is ``1 - M(TN, FP, FN, TP)``. It is the training loss
    of :class:`~sk_anyloss.AnyLossClassifier` (without the penalty), computed
    with the same compiled function, for evaluating or monitoring models
    trained elsewhere.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.

    y_prob : array-like of shape (n_samples,)
        Predicted probability of the positive class.

    metric : str, default="f1"
        The metric ``M``, one of :data:`sk_anyloss.METRIC_NAMES`.

    beta : float, default=1.0
        Weight of recall against precision; used by ``metric="fbeta"`` only.

    amplifier : float, default=73.0
        The amplifying scale ``L``; larger values bring the soft confusion
        matrix closer to the hard one at threshold 0.5. Must be positive.

    pos_label : int, float, bool or str, default=1
        The label of the positive class in ``y_true``; every other label is
        negative.

    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights: sample ``i`` counts ``sample_weight[i]`` times.

    Returns
    -------
    loss : float
        ``1 - M`` of the soft confusion matrix, between 0 and 1 for metrics
        with values in [0, 1] and up to 2 for ``"mcc"`` and ``"cohen_kappa"``.

    Raises
    ------
    ValueError
        If ``metric`` is unknown, ``amplifier`` is not positive and finite or
        ``y_prob`` is not a vector of probabilities.

    See Also
    --------
    get_scorer : The metric of hard predictions, as a scorer.

    Examples
    --------
    >>> from sk_anyloss.metrics import anyloss
    >>> y_true = [0, 0, 1, 1]
    >>> round(anyloss(y_true, [0.1, 0.4, 0.6, 0.9]), 3)  # all on the right side
    0.0
    >>> round(anyloss(y_true, [0.1, 0.6, 0.4, 0.9]), 3)  # one FP, one FN: F1 = 1/2
    0.5

    A small amplifier counts probabilities near 0.5 as partly right and
    partly wrong:

    >>> round(anyloss(y_true, [0.1, 0.45, 0.55, 0.9], amplifier=5), 3)
    0.279
    """
    check_metric_name(metric)  # a clear error for unknown names
    if not 0 < amplifier < np.inf:
        raise ValueError(f"amplifier must be positive and finite; got {amplifier!r}.")
    y_true = column_or_1d(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim != 1:
        raise ValueError(
            "y_prob must be the 1-D probability of the positive class; got an "
            f"array of shape {y_prob.shape}."
        )
    check_consistent_length(y_true, y_prob, sample_weight)
    if not np.all((y_prob >= 0.0) & (y_prob <= 1.0)):
        raise ValueError("y_prob must hold probabilities in [0, 1].")
    y01 = (y_true == pos_label).astype(np.uint8)
    s = _check_sample_weight(sample_weight, y_prob, ensure_non_negative=True)
    s = s / s.sum()
    # The kernel takes the raw score z; logit(0) and logit(1) are -inf and
    # inf, which it maps to a = A(0) and A(1) exactly.
    tp, fp = _soft_positives(y01, logit(y_prob), s, float(amplifier))
    pos = float(s[y01 == 1].sum())
    neg = float(s[y01 == 0].sum())
    tn, fn = max(neg - fp, 0.0), max(pos - tp, 0.0)
    return 1.0 - float(metric_value(metric, tn, fp, fn, tp, beta))
