"""What the AnyLoss estimators share: parameter constraints, target and
sample-weight handling, and turning raw scores into predictions.

Label encoding: ``classes_`` is sorted (``np.unique``); for a binary target the
positive class is ``classes_[1]``.  A multiclass target is split one-vs-rest:
problem ``k`` has ``y == classes_[k]`` as its positive class.
"""

from numbers import Real

import numpy as np
from scipy.special import expit, log_expit, logsumexp
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight

from ._metrics import METRIC_NAMES

METRIC_PARAMETER_CONSTRAINTS = {
    "metric": [StrOptions(set(METRIC_NAMES))],
    "beta": [Interval(Real, 0, None, closed="neither")],
    "amplifier": [Interval(Real, 0, None, closed="neither")],
}


def encode_target(y):
    """Return ``classes_`` and ``y`` as indices into it.

    Raises a ``ValueError`` for targets that are not classification targets or
    have fewer than two classes.
    """
    try:
        classes, y_index = np.unique(y, return_inverse=True)
    except TypeError:  # labels that do not sort, e.g. strings mixed with numbers
        check_classification_targets(y)
        raise
    # The unique values decide the target type: checking them instead of ``y``
    # saves a second sort of the whole target.
    check_classification_targets(classes)
    if classes.shape[0] < 2:
        raise ValueError(
            "AnyLoss needs samples of at least two classes in the data; got only "
            f"one class: {classes[0]!r}."
        )
    return classes, y_index


def sample_weight_array(sample_weight, X):
    """The validated sample weights as a float64 array, ones when
    ``sample_weight`` is None: the one form in which the backends take them."""
    return _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )


def binary_problems(y_index, n_classes):
    """The 0/1 targets to fit: one for a binary target, one per class otherwise."""
    if n_classes == 2:
        return [(y_index == 1).astype(np.uint8)]
    return [(y_index == k).astype(np.uint8) for k in range(n_classes)]


def check_class_weights(y01, sample_weight, label):
    """Raise a ``ValueError`` unless both sides of a 0/1 problem (positive:
    ``label``) carry a positive share of the sample weight."""
    mask = y01.astype(bool)
    if not sample_weight[mask].sum() > 0:
        raise ValueError(
            f"Class {label!r} has zero total sample_weight; every class needs a "
            "positive total weight."
        )
    if not sample_weight[~mask].sum() > 0:
        raise ValueError(
            f"All the sample_weight is on class {label!r}; at least two classes "
            "need a positive total weight."
        )


def proba_from_scores(scores):
    """``predict_log_proba`` from raw scores ``z`` (n,) or (n, n_classes).

    Binary: ``[log sigmoid(-z), log sigmoid(z)]``.  One-vs-rest: the per-class
    probabilities ``sigmoid(z_k)`` normalised to sum to one, in the log domain so
    that saturated scores give no NaN.
    """
    if scores.ndim == 1:
        return np.column_stack([log_expit(-scores), log_expit(scores)])
    log_p = log_expit(scores)
    return log_p - logsumexp(log_p, axis=1, keepdims=True)


def labels_from_scores(scores, classes):
    """Predicted labels: ``sigmoid(z) >= 1/2`` (binary) or the top score."""
    if scores.ndim == 1:
        return classes[(expit(scores) >= 0.5).astype(np.intp)]
    return classes[np.argmax(scores, axis=1)]


class ScorePredictionsMixin:
    """``predict``, ``predict_proba`` and ``predict_log_proba`` of both
    estimators, from the raw output scores ``self._scores(X)``."""

    def predict(self, X):
        """Predict class labels: the positive class where ``p >= 0.5``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted labels; for a multiclass target, the class with the
            highest one-vs-rest score.
        """
        return labels_from_scores(self._scores(X), self.classes_)

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            ``[1 - p, p]`` with ``p = sigmoid(z)`` of the output score ``z`` for
            a binary target; the normalised one-vs-rest probabilities otherwise.
        """
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed without underflow.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities of the classes, in the order of ``classes_``.
        """
        return proba_from_scores(self._scores(X))
