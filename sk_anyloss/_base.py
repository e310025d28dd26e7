"""What the AnyLoss estimators share: parameter constraints, target and
sample-weight handling, and turning raw scores into predictions.

Targets (:func:`read_target`, the one place that decides what a fit trains
on):

* **binary**: ``classes_`` sorted (``np.unique``), the positive class
  ``classes_[1]``; one output, ``p = sigmoid(z)``, predicted positive where
  ``p >= 1/2``;
* **multiclass**: one output per class of ``classes_``, ``p = softmax(z)``,
  the top class predicted; trained jointly on the K x K confusion matrix;
* **multilabel**: an indicator matrix ``y`` (n_samples, n_labels),
  ``classes_ = arange(n_labels)``; one output per label,
  ``p_l = sigmoid(z_l)``, label ``l`` predicted where ``p_l >= 1/2``;
  trained jointly on the per-label confusion matrices, averaged.
"""

from numbers import Integral, Real
from textwrap import dedent
from typing import NamedTuple

import numpy as np
from scipy.sparse import issparse
from scipy.special import expit, log_expit, log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._backend import DEVICES
from ._metrics import METRIC_NAMES
from ._metrics_multi import JOINT, LABELS, MATRIX

AVERAGES = ("macro", "micro", "weighted", "samples")

# The parameters both estimators have, with the same meaning and range.
SHARED_PARAMETER_CONSTRAINTS = {
    "metric": [StrOptions(set(METRIC_NAMES)), callable],
    "beta": [Interval(Real, 0, None, closed="neither")],
    "average": [StrOptions(set(AVERAGES)), None],
    "amplifier": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
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
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples; a SciPy CSR or CSC matrix or array is not densified.
    """,
    "sample_weight": """
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; each sample counts ``sample_weight[i]`` times
            in the confusion matrix (a weight of 2 is a repeated row).
    """,
    "y": """
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Target labels, at least two classes; or a multilabel indicator
            matrix of 0 and 1, one column per label.
    """,
    "average": """
        average : {"macro", "micro", "weighted", "samples"} or None, \
                default=None
            How the metric is averaged over classes or labels, as in
            ``sklearn.metrics.f1_score``. A multiclass target is trained
            jointly on its K x K confusion matrix: accuracy, balanced
            accuracy, MCC, Cohen's kappa and G-mean have one multiclass
            definition each (``average`` must be None), while F1, F-beta,
            Jaccard, Fowlkes-Mallows and metric functions are averaged over
            the classes, ``"macro"`` by default. A multilabel target averages
            the binary metric of each label (``"macro"`` by default);
            ``"samples"`` averages the metric of each sample's labels. For a
            binary target, None trains the metric of the positive class and
            an average trains the average over both classes.
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


class Problem(NamedTuple):
    """What a fit trains on (see the module's docstring).

    ``kind`` is ``"binary"``, ``"multiclass"`` or ``"multilabel"``; ``Y``
    (n, n_outputs) the 0/1 target of each output (the positive class; one
    column per class; one per label), ``y`` the class indices (None for a
    multilabel target), ``average`` how the metric is averaged (None: the
    binary metric of the positive class, or a multiclass metric with one
    definition).
    """

    kind: str
    Y: np.ndarray
    y: np.ndarray
    average: object

    @property
    def n_outputs(self):
        return self.Y.shape[1]

    @property
    def layout(self):
        """The metric's layout (``_metrics_multi``): a K x K matrix for a
        multiclass target and for an averaged binary one, else per label."""
        if self.kind == "multiclass" or (
            self.kind == "binary" and self.average is not None
        ):
            return MATRIX
        return LABELS

    @property
    def metric_k(self):
        """The ``k`` the metric is called with: classes or labels."""
        if self.kind == "binary" and self.average is not None:
            return 2
        return self.n_outputs


def resolve_average(kind, metric, average):
    """The average a fit of a ``kind`` target uses, or a ``ValueError``
    where ``average`` does not apply."""
    joint = isinstance(metric, str) and metric in JOINT
    if kind == "multilabel":
        return average or "macro"
    if average == "samples":
        raise ValueError(
            'average="samples" is the mean over samples of the metric of each '
            "sample's labels: it applies to multilabel targets only (an indicator "
            f"y of shape (n_samples, n_labels)); this target is {kind}. Use "
            '"macro", "micro", "weighted" or None.'
        )
    if joint and average is not None:
        raise ValueError(
            f"metric={metric!r} has one definition for any number of classes: "
            f"average does not apply to it (got average={average!r}) except with a "
            'multilabel target. average applies to "f1", "fbeta", "jaccard", '
            '"fowlkes_mallows" and metric functions. Leave average=None.'
        )
    if kind == "multiclass" and not joint:
        return average or "macro"
    return average


def check_indicator(Y, name):
    """A ``ValueError`` unless the multilabel indicator matrix ``Y`` holds
    only 0 and 1 (scikit-learn's ``type_of_target`` calls any two-valued
    integer matrix, such as -1/1, a multilabel indicator)."""
    if not ((Y == 0) | (Y == 1)).all():
        values = np.unique(Y)
        raise ValueError(
            f"A multilabel indicator {name} must hold only 0 and 1 (1: the sample "
            f"has the label); got the values {values.tolist()!r}."
        )


def read_target(y, metric, average, classes=None):
    """``(classes_, Problem)`` of a validated target ``y`` for an estimator
    with ``metric`` and ``average``; with ``classes``, the classes of a
    previous ``partial_fit`` (labels outside them are an error)."""
    if issparse(y):
        # A sparse indicator matrix (scikit-learn's validation lets one
        # through): the kernels read the labels dense, one byte each.
        y = y.toarray()
    if y.ndim == 2 and y.shape[1] > 1:
        target_type = type_of_target(y)
        if target_type != "multilabel-indicator":
            raise ValueError(
                f"y of shape {y.shape} is a {target_type} target; the AnyLoss "
                "estimators take a 1d target (binary or multiclass) or a "
                "multilabel indicator matrix of 0 and 1 (n_samples, n_labels)."
            )
        check_indicator(y, "y")
        Y = np.ascontiguousarray(y, dtype=np.uint8)
        if classes is not None and classes.shape[0] != Y.shape[1]:
            raise ValueError(
                f"y has {Y.shape[1]} labels; the first partial_fit had "
                f"{classes.shape[0]}."
            )
        problem = Problem(
            "multilabel", Y, None, resolve_average("multilabel", metric, average)
        )
        return np.arange(Y.shape[1]), problem
    y = column_or_1d(y, warn=True)
    if classes is None:
        classes, y_index = encode_target(y)
    else:
        unknown = np.setdiff1d(np.unique(y), classes)
        if unknown.size:
            raise ValueError(
                f"y has labels {unknown!r} that are not in the classes {classes!r} "
                "given to the first partial_fit."
            )
        y_index = np.searchsorted(classes, y)
    K = classes.shape[0]
    kind = "binary" if K == 2 else "multiclass"
    if kind == "binary":
        Y = (y_index == 1).astype(np.uint8)[:, None]
    else:
        Y = (y_index[:, None] == np.arange(K)).astype(np.uint8)
    return classes, Problem(kind, Y, y_index, resolve_average(kind, metric, average))


def check_target_weights(problem, sample_weight, classes):
    """Raise a ``ValueError`` unless every class (every label's positives and
    negatives) carries a positive share of the sample weight."""
    w, _ = scaled_weights(sample_weight)
    on = problem.Y.astype(bool)
    check_target_masses(problem.kind, w @ on, w @ ~on, classes)


def check_target_masses(kind, pos, neg, classes):
    """:func:`check_target_weights` from each output's weight on its
    positives ``pos`` and its negatives ``neg`` (any common scale)."""
    if kind == "multilabel":
        for j, (on, off) in enumerate(zip(pos > 0, neg > 0)):
            if not (on and off):
                raise ValueError(
                    f"Label {j} of the multilabel target is {1 if on else 0} for "
                    "every sample with positive sample_weight: a label that is "
                    "always on or always off cannot be learned, and its metric is "
                    "undefined. Every label needs positive and negative samples; "
                    "drop such columns, e.g. y[:, y.min(axis=0) != y.max(axis=0)]."
                )
        return
    labels = [classes[1]] if kind == "binary" else classes
    for on, off, label in zip(pos, neg, labels):
        if not on > 0:
            raise ValueError(
                f"Class {label_text(label)} has zero total sample_weight; every "
                "class needs a positive total weight."
            )
        if not off > 0:
            raise ValueError(
                f"All the sample_weight is on class {label_text(label)}; at least "
                "two classes need a positive total weight."
            )


def sample_weight_array(sample_weight, X):
    """The validated sample weights as a float64 array, ones when
    ``sample_weight`` is None: the one form in which the backends take them."""
    if sample_weight is None:
        return np.ones(X.shape[0])
    return _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )


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


def is_dask(X):
    """Whether ``X`` is a Dask collection (without importing dask)."""
    return type(X).__module__.split(".")[0] == "dask"


def weight_share(column, sample_weight):
    """The weighted share of the rows where ``column`` is 1, computed from the
    scaled weights so that huge weights do not overflow the total."""
    w, _ = scaled_weights(sample_weight)
    return float(np.dot(column, w) / w.sum())


def label_text(label):
    """A label as it reads in a message: ``1``, not ``np.int64(1)``."""
    return repr(label.item() if isinstance(label, np.generic) else label)


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


def proba_from_scores(scores, kind):
    """``predict_log_proba`` from raw scores ``z`` of a ``kind`` target, in
    float64 whatever the scores' dtype, without overflow or NaN.

    Binary: ``[log sigmoid(-z), log sigmoid(z)]``.  Multiclass: the log of
    the softmax of each row.  Multilabel: ``log sigmoid(z_l)`` of each label.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if kind == "binary":
        return np.column_stack([log_expit(-scores), log_expit(scores)])
    if kind == "multiclass":
        return log_softmax(scores, axis=1)
    return log_expit(scores)


def outputs_of_scores(scores, kind):
    """The 0/1 outputs (n, n_outputs) the decision rule gives to raw scores of
    a ``kind`` target, encoded as ``Problem.Y`` encodes the target."""
    if kind == "multiclass":
        Y = np.zeros(scores.shape, dtype=np.uint8)
        Y[np.arange(scores.shape[0]), np.argmax(scores, axis=1)] = 1
        return Y
    return _positive(scores).reshape(scores.shape[0], -1).astype(np.uint8)


def _positive(scores):
    """``sigmoid(z) >= 1/2``, in float64 as ``predict_proba`` computes: in
    float32, ``sigmoid`` rounds to exactly 1/2 for ``|z|`` up to about 1e-7,
    and ``predict`` disagreed there with ``predict_proba``."""
    return expit(np.asarray(scores, dtype=np.float64)) >= 0.5


def labels_from_scores(scores, classes, kind):
    """Predicted labels of a ``kind`` target: ``sigmoid(z) >= 1/2`` (binary,
    each label of a multilabel target, as an indicator matrix) or the top
    score (multiclass): the decision rules the models are trained for."""
    if kind == "multiclass":
        return classes[np.argmax(scores, axis=1)]
    positive = _positive(scores)
    if kind == "binary":
        return classes[positive.astype(np.intp)]
    return positive.astype(int)


class AnyLossEstimator(ClassifierMixin, BaseEstimator):
    """What both estimators share: ``fit``, and ``predict``,
    ``predict_proba`` and ``predict_log_proba`` from the raw output scores.

    A subclass implements ``_fit(X, y, sample_weight)`` and ``_forward(X)``,
    the raw output scores of validated data, and sets ``_target_kind`` (see
    :class:`Problem`) when it fits.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags

    def _dask_rows(self, X, method):
        """``method`` of a Dask ``X``, lazily by blocks of rows (a Dask
        array)."""
        check_is_fitted(self)
        from ._kernels_dask import map_rows

        return map_rows(self, X, method)

    def _scores(self, X):
        check_is_fitted(self)
        X = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc"],
            dtype=[np.float64, np.float32],
            reset=False,
        )
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
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. float32 data is trained in float32 storage (never
            upcast); other numeric data is converted to float64. A SciPy CSR
            or CSC matrix or array trains without being densified (on the
            CPU only: ``device="cuda"`` takes dense data).

        {y}

        {sample_weight}

        {fit_returns}
        """
        return self._fit(X, y, sample_weight)

    @fill_doc
    def predict(self, X):
        """Predict class labels with the decision rule trained for.

        {X_parameters}

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Binary target: the positive class where ``p >= 0.5``. Multiclass:
            the most probable class. Multilabel: the indicator matrix of the
            labels with ``p >= 0.5``.
        """
        if is_dask(X):
            return self._dask_rows(X, "predict")
        return labels_from_scores(self._scores(X), self.classes_, self._target_kind)

    @fill_doc
    def predict_proba(self, X):
        """Class probabilities.

        {X_parameters}

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes) or (n_samples, n_labels)
            Binary target: ``[1 - p, p]`` with ``p = sigmoid(z)`` of the
            output score ``z``. Multiclass: ``softmax(z)`` of the scores, rows
            summing to one. Multilabel: ``sigmoid(z_l)``, each label's
            probability.
        """
        if is_dask(X):
            return self._dask_rows(X, "predict_proba")
        return np.exp(self.predict_log_proba(X))

    @fill_doc
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed without underflow.

        {X_parameters}

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes) or \
                (n_samples, n_labels)
            Log-probabilities, in the order of ``classes_``.
        """
        if is_dask(X):
            return self._dask_rows(X, "predict_log_proba")
        return proba_from_scores(self._scores(X), self._target_kind)
