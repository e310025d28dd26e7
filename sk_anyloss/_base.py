"""What the AnyLoss estimators share: parameter constraints, target and
sample-weight handling, and turning raw scores into predictions.

Label encoding: ``classes_`` is sorted (``np.unique``); for a binary target the
positive class is ``classes_[1]``.  A multiclass target is split one-vs-rest:
problem ``k`` has ``y == classes_[k]`` as its positive class.
"""

from numbers import Integral, Real
from textwrap import dedent

import numpy as np
from scipy.special import expit, log_expit, logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from ._backend import DEVICES
from ._metrics import METRIC_NAMES

# The parameters both estimators have, with the same meaning and range.
SHARED_PARAMETER_CONSTRAINTS = {
    "metric": [StrOptions(set(METRIC_NAMES)), callable],
    "beta": [Interval(Real, 0, None, closed="neither")],
    "amplifier": [Interval(Real, 0, None, closed="neither")],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "beta_1": [Interval(Real, 0, 1, closed="left")],
    "beta_2": [Interval(Real, 0, 1, closed="left")],
    "epsilon": [Interval(Real, 0, None, closed="neither")],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "device": [StrOptions(set(DEVICES))],
}


# Numpydoc fragments that several public docstrings share (see fill_doc).
DOC_FRAGMENTS = {
    "X_parameters": """
        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.
    """,
    "sample_weight": """
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; each sample counts ``sample_weight[i]`` times
            in the confusion matrix (a weight of 2 is a repeated row).
    """,
    "fit_returns": """
        Returns
        -------
        self : object
            Fitted estimator.
    """,
    "device": """
        device : {"cpu", "cuda", "auto"}, default="cpu"
            Where to train. ``"cuda"`` trains on an NVIDIA GPU (needs the ``cuda``
            extra, ``pip install sk_anyloss[cuda]``, and raises an error if no GPU
            is usable); ``"auto"`` uses a GPU when one is usable and the CPU
            otherwise. The fitted attributes are NumPy arrays either way:
            prediction always runs on the CPU.
    """,
    "classes_": """
        classes_ : ndarray of shape (n_classes,)
            Class labels.
    """,
    "features_in": """
        n_features_in_ : int
            Number of features seen during fit.

        feature_names_in_ : ndarray of shape (`n_features_in_`,)
            Names of features seen during fit, when ``X`` has string column
            names.
    """,
    "user_metric": """
        A function ``f(tn, fp, fn, tp) -> float`` of the (weighted) counts of
        the confusion matrix, as ``confusion_matrix(...).ravel()`` gives them,
        is a metric too: written with arithmetic, comparisons, ``if``
        statements and ``math`` or NumPy functions, it is differentiated
        exactly by the package (no derivative to write), and a division by
        zero in it gives 0. Score models with it through
        :func:`sk_anyloss.metrics.get_scorer`. See the user guide.
    """,
    "labels": """
        y_true : array-like of shape (n_samples,)
            Ground truth labels, at most two distinct values.

        y_pred : array-like of shape (n_samples,)
            Predicted labels.
    """,
}


def fill_doc(obj):
    """Replace each docstring line ``{name}`` of ``obj`` by the fragment
    ``DOC_FRAGMENTS[name]``, indented as that line; returns ``obj``."""
    lines = []
    for line in obj.__doc__.splitlines():
        key = line.strip()
        if key.startswith("{") and key.endswith("}") and key[1:-1] in DOC_FRAGMENTS:
            indent = line[: len(line) - len(line.lstrip())]
            fragment = dedent(DOC_FRAGMENTS[key[1:-1]]).strip("\n")
            lines.extend(indent + f if f else f for f in fragment.splitlines())
        else:
            lines.append(line)
    obj.__doc__ = "\n".join(lines)
    return obj


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
    if sample_weight is None:
        return np.ones(X.shape[0])
    return _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )


def binary_problems(y_index, n_classes):
    """The 0/1 targets to fit: one for a binary target, one per class otherwise."""
    if n_classes == 2:
        return [(y_index == 1).astype(np.uint8)]
    return [(y_index == k).astype(np.uint8) for k in range(n_classes)]


def scaled_weights(sample_weight):
    """``(w, e)``: the weights times ``2**-e``, with ``e`` the exponent of the
    largest, so that ``w`` lies in (0, 1] and its sum neither overflows nor
    underflows. Scaling by a power of two is exact: ``w / w.sum()`` has the
    bits of ``sample_weight / sample_weight.sum()`` wherever that is finite.
    """
    _, e = np.frexp(sample_weight.max())
    return np.ldexp(sample_weight, -e), int(e)


def weight_total(sample_weight):
    """The total raw weight (the number of rows when unweighted), computed
    from the scaled weights: ``inf`` only if the total itself overflows."""
    w, e = scaled_weights(sample_weight)
    return float(np.ldexp(w.sum(), e))


def label_text(label):
    """A label as it reads in a message: ``1``, not ``np.int64(1)``."""
    return repr(label.item() if isinstance(label, np.generic) else label)


def check_class_weights(y01, sample_weight, label):
    """Raise a ``ValueError`` unless both sides of a 0/1 problem (positive:
    ``label``) carry a positive share of the sample weight."""
    mask = y01.astype(bool)
    w, _ = scaled_weights(sample_weight)
    if not w[mask].sum() > 0:
        raise ValueError(
            f"Class {label_text(label)} has zero total sample_weight; every class "
            "needs a positive total weight."
        )
    if not w[~mask].sum() > 0:
        raise ValueError(
            f"All the sample_weight is on class {label_text(label)}; at least two "
            "classes need a positive total weight."
        )


def check_finite_parameters(theta, dtype):
    """Raise a ``ValueError`` unless the parameters ``theta`` are finite once
    cast to ``dtype``, the dtype the fitted attributes keep (weights of a
    float32 model can be finite in the float64 training and overflow the
    cast)."""
    if not np.all(np.isfinite(np.asarray(theta).astype(dtype))):
        largest = np.max(np.abs(theta))
        raise ValueError(
            f"Training diverged: the weights reached {largest:.3g}, beyond the "
            f"range of {np.dtype(dtype).name}, the dtype of X and of the fitted "
            "weights. Standardise the features (e.g. with StandardScaler), lower "
            "learning_rate_init or raise alpha, or fit on float64 data."
        )


def proba_from_scores(scores):
    """``predict_log_proba`` from raw scores ``z`` (n,) or (n, n_classes).

    Binary: ``[log sigmoid(-z), log sigmoid(z)]``.  One-vs-rest: the per-class
    probabilities ``sigmoid(z_k)`` normalised to sum to one, in the log domain
    and in float64 whatever the scores' dtype, each row shifted by its
    largest value first, so that saturated scores give no NaN and rows that
    sum to one.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        return np.column_stack([log_expit(-scores), log_expit(scores)])
    log_p = log_expit(scores)
    log_p -= log_p.max(axis=1, keepdims=True)
    return log_p - logsumexp(log_p, axis=1, keepdims=True)


def labels_from_scores(scores, classes):
    """Predicted labels: ``sigmoid(z) >= 1/2`` (binary) or the top score."""
    if scores.ndim == 1:
        return classes[(expit(scores) >= 0.5).astype(np.intp)]
    return classes[np.argmax(scores, axis=1)]


class AnyLossEstimator(ClassifierMixin, BaseEstimator):
    """What both estimators share: ``fit``, and ``predict``,
    ``predict_proba`` and ``predict_log_proba`` from the raw output scores.

    A subclass implements ``_fit(X, y, sample_weight)`` and ``_forward(X)``,
    the raw output scores of validated data.
    """

    def _scores(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self._forward(X)

    def _check_training_scores(self, X):
        """Raise a ``ValueError`` if the fitted model's scores on its training
        data are not finite (weights that are finite but overflow there)."""
        if not np.all(np.isfinite(self._forward(X))):
            raise ValueError(
                "Training diverged: the fitted model's scores on the training data "
                "are not finite. Standardise the features (e.g. with "
                "StandardScaler), lower learning_rate_init or raise alpha."
            )

    @fill_doc
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to maximise ``metric`` on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. float32 data is trained in float32 storage (never
            upcast); other numeric data is converted to float64.

        y : array-like of shape (n_samples,)
            Target labels, at least two classes.

        {sample_weight}

        {fit_returns}
        """
        return self._fit(X, y, sample_weight)

    @fill_doc
    def predict(self, X):
        """Predict class labels: the positive class where ``p >= 0.5``.

        {X_parameters}

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted labels; for a multiclass target, the class with the
            highest one-vs-rest score.
        """
        return labels_from_scores(self._scores(X), self.classes_)

    @fill_doc
    def predict_proba(self, X):
        """Class probabilities.

        {X_parameters}

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            ``[1 - p, p]`` with ``p = sigmoid(z)`` of the output score ``z`` for
            a binary target; the normalised one-vs-rest probabilities otherwise.
        """
        return np.exp(self.predict_log_proba(X))

    @fill_doc
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed without underflow.

        {X_parameters}

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities of the classes, in the order of ``classes_``.
        """
        return proba_from_scores(self._scores(X))
