"""AnyLossMLPClassifier: a multi-layer perceptron trained on a metric."""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.sparse import issparse
from scipy.special import expit
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import validate_data

from ._backend import mlp_backend
from ._base import (
    SHARED_PARAMETER_CONSTRAINTS,
    AnyLossEstimator,
    check_finite_parameters,
    check_target_weights,
    fill_doc,
    is_dask,
    outputs_of_scores,
    read_target,
    sample_weight_array,
    weight_share,
    weight_total,
)
from ._kernels_cpu import stratified_merge
from ._metrics import resolve_metric
from ._optim import SOLVER_CODES, new_state, track_best_py
from ._settings import ACTIVATION_CODES, mlp_settings

# ``log_loss_weight="auto"``: measured on the benchmark suite over CV splits
# (docs/mlp-notes.md); the metrics not listed train on the metric alone.
_AUTO_LOG_LOSS_WEIGHT = {"f1": 0.5, "jaccard": 0.5, "mcc": 0.5, "cohen_kappa": 0.5}
# Multiclass targets, where they differ: chosen on the DEV half of the
# multiclass suite and confirmed on the other (benchmarks/README.md,
# "Choosing multiclass defaults"). Without the term, the balanced-accuracy
# network stopped predicting some classes of the many-class datasets.
_AUTO_LOG_LOSS_WEIGHT_MULTICLASS = {"balanced_accuracy": 1.0}


# ``amplifier="auto"``: 10 (chosen over 20 on the benchmark suite,
# docs/mlp-notes.md); 40 for F1 on a multiclass target, chosen on the DEV half
# of the multiclass suite and confirmed on the other (benchmarks/README.md,
# "Choosing multiclass defaults"): a sample's soft assignment is
# softmax(amplifier / 2 * p), which stays far from one-hot at 10 when there
# are many classes.
_AUTO_AMPLIFIER = 10.0
_AUTO_AMPLIFIER_MULTICLASS = {"f1": 40.0}


def _resolve_amplifier(amplifier, metric, kind):
    """The amplifier a fit uses: ``amplifier`` itself, or for ``"auto"`` the
    default of ``metric`` on a ``kind`` target."""
    if not isinstance(amplifier, str):
        return float(amplifier)
    if kind == "multiclass" and isinstance(metric, str):
        return _AUTO_AMPLIFIER_MULTICLASS.get(metric, _AUTO_AMPLIFIER)
    return _AUTO_AMPLIFIER


def _auto_log_loss_weight(metric, kind):
    """``log_loss_weight="auto"`` for ``metric`` on a ``kind`` target (a
    metric function gets 0; it may not even be hashable)."""
    if not isinstance(metric, str):
        return 0.0
    if kind == "multiclass" and metric in _AUTO_LOG_LOSS_WEIGHT_MULTICLASS:
        return _AUTO_LOG_LOSS_WEIGHT_MULTICLASS[metric]
    return _AUTO_LOG_LOSS_WEIGHT.get(metric, 0.0)


@fill_doc
class AnyLossMLPClassifier(AnyLossEstimator):
    """Multi-layer perceptron trained to maximise a confusion-matrix metric.

    The network is scikit-learn's :class:`~sklearn.neural_network.MLPClassifier`
    (same layers, activations and initialisation); its output unit gives
    ``p = sigmoid(z)``. Training minimises ``1 - M(TN, FP, FN, TP)`` of the
    soft confusion matrix of each mini-batch, made differentiable with the
    AnyLoss approximation ``a = sigmoid(amplifier * (p - 0.5))``, plus, for
    some metrics, a class-balanced log-loss term (``log_loss_weight``).

    A multiclass target gets a softmax output layer trained jointly on the
    soft K x K confusion matrix of the assignments
    ``a = softmax(amplifier / 2 * p)`` and predicts the top class. A
    multilabel target (an indicator matrix) gets one sigmoid unit per label,
    trained on the metric averaged over the labels' matrices (``average``),
    and predicts each label where its probability is at least 0.5, as
    ``MLPClassifier`` does.

    Mini-batches are stratified: every batch holds the classes in the
    proportions of the training data, so the soft confusion matrix of a batch
    always has positives to count (a batch without positives gives F1 no
    gradient at all).

    A sample is predicted positive when ``predict_proba(X)[:, 1] >= 0.5``.

    Parameters
    ----------
    metric : {"accuracy", "balanced_accuracy", "f1", "fbeta", "gmean", "mcc", \
            "jaccard", "cohen_kappa", "fowlkes_mallows"} or callable, default="f1"
        The metric to maximise; the positive class is ``classes_[1]``.

        {user_metric}

    beta : float, default=1.0
        Weight of recall against precision; used by ``metric="fbeta"`` only.

    {average}

    amplifier : float or "auto", default="auto"
        The amplifying scale ``L`` of the approximation function. ``"auto"``
        is 10, lower than the paper's 73: a network saturates its outputs
        quickly, and a gentler approximation keeps a gradient on samples
        that are on the wrong side. 10 was chosen over 20 on the benchmark
        suite, over five CV splits (``docs/mlp-notes.md``). For F1 on a
        multiclass target ``"auto"`` is 40: a sample's soft assignment
        ``softmax(amplifier / 2 * p)`` stays far from one-hot at 10 when
        there are many classes (chosen on half of a multiclass suite and
        confirmed on the other, ``benchmarks/README.md``). The value used is
        ``amplifier_``.

    log_loss_weight : float or "auto", default="auto"
        Weight of a class-balanced log-loss added to the loss ``1 - M`` (each
        class's mean log-loss, averaged over the two classes; for a
        multiclass target the multinomial log-loss, each class's mean
        averaged over the classes; for a multilabel target, averaged over the
        labels). It gives every sample a gradient that
        grows with how wrong it is, where the metric alone weighs a class's
        samples alike. 0 trains on the metric alone, as in the AnyLoss
        paper. ``"auto"`` is 0.5 for the metrics it was measured to improve
        on the benchmark suite (F1, Jaccard, MCC, Cohen's kappa) and 0 for
        the others (balanced accuracy, G-mean, accuracy, Fowlkes-Mallows,
        and F-beta for any ``beta``, 1 included: it lost at beta 2); see
        ``docs/mlp-notes.md``. For a multiclass target, ``"auto"`` is 1.0 for
        balanced accuracy (without the term the network stopped predicting
        some classes of many-class datasets; chosen on half of a multiclass
        suite and confirmed on the other, ``benchmarks/README.md``). The
        term is part of ``loss_curve_`` and of the loss that ``tol``
        watches. Not an ``MLPClassifier`` parameter.

    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Number of units in each hidden layer.

    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers.

    solver : {"adam", "sgd"}, default="adam"
        Adam, or stochastic gradient descent with momentum.

    alpha : float, default=1.0
        Strength of the L2 penalty, scaled as in ``MLPClassifier``
        (``alpha / (2 * batch size) * ||W||^2``). Larger than MLPClassifier's
        default: a metric loss fits the training set's confusion matrix
        closely, and the penalty keeps that from overfitting (measured in
        ``docs/mlp-notes.md``).

    batch_size : int or "auto", default="auto"
        Mini-batch size; ``"auto"`` is ``min(200, n_samples)``.

    learning_rate_init : float, default=0.003
        Step size. Three times MLPClassifier's default; chosen with
        ``amplifier`` on the benchmark suite over five CV splits
        (``docs/mlp-notes.md``): 0.001 was no better and took twice as long,
        0.01 scored lower F1.

    max_iter : int, default=200
        Maximum number of epochs.

    shuffle : bool, default=True
        Whether to shuffle the samples (within each class) every epoch.

    random_state : int, RandomState instance or None, default=None
        Seed of the weight initialisation, the shuffling and the validation
        split.

    tol : float, default=1e-4
        Training stops when the loss (or the validation score, with
        ``early_stopping``) has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive epochs.

    verbose : bool, default=False
        Print the loss of each epoch.

    warm_start : bool, default=False
        Reuse the weights of the previous fit as the starting point.

    momentum : float, default=0.9
        Momentum of ``solver="sgd"``.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified) and stop when
        the metric on it stops improving; the best weights are kept.

    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.

    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and its numerical-stability term.

    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.

    {device}

    Attributes
    ----------
    {classes_}

    coefs_ : list of ndarray
        Weight matrix of each layer, shape ``(n_in, n_out)``.

    intercepts_ : list of ndarray
        Bias vector of each layer.

    n_iter_ : int
        Number of epochs run.

    t_ : int
        Number of training samples seen.

    loss_curve_ : list of float
        Mean mini-batch loss of each epoch (the log-loss and L2 terms
        included).

    best_loss_ : float or None
        Smallest epoch loss; ``None`` with ``early_stopping``.

    validation_scores_ : list of float or None
        Metric on the validation set after each epoch (``early_stopping``).

    best_validation_score_ : float or None
        Best validation score (``early_stopping``).

    n_layers_ : int
        Number of layers, input and output included.

    n_outputs_ : int
        Number of output units: 1 for a binary target, one per class of a
        multiclass target, one per label of a multilabel target.

    out_activation_ : str
        ``"softmax"`` for a multiclass target, ``"logistic"`` otherwise.

    {features_in}

    See Also
    --------
    AnyLossClassifier : The linear model.
    sklearn.neural_network.MLPClassifier : The same network on log-loss.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.pipeline import make_pipeline
    >>> from sk_anyloss import AnyLossMLPClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = make_pipeline(
    ...     StandardScaler(),
    ...     AnyLossMLPClassifier(hidden_layer_sizes=(16,), random_state=0),
    ... )
    >>> clf.fit(X, y).score(X, y) > 0.95
    True
    """

    _parameter_constraints = {
        **SHARED_PARAMETER_CONSTRAINTS,
        "log_loss_weight": [
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="left"),
        ],
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATION_CODES))],
        "solver": [StrOptions(set(SOLVER_CODES))],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "shuffle": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        metric="f1",
        *,
        beta=1.0,
        average=None,
        amplifier="auto",
        log_loss_weight="auto",
        hidden_layer_sizes=(100,),
        activation="relu",
        solver="adam",
        alpha=1.0,
        batch_size="auto",
        learning_rate_init=0.003,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        device="cpu",
    ):
        self.metric = metric
        self.beta = beta
        self.average = average
        self.amplifier = amplifier
        self.log_loss_weight = log_loss_weight
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.device = device

    # -- public API --------------------------------------------------------

    @fill_doc
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one epoch over ``(X, y)``, continuing from the current weights.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; sparse as in :meth:`fit`.

        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Target labels, or a multilabel indicator matrix.

        classes : array-like of shape (n_classes,), default=None
            All the classes that will ever be seen; required on the first call.
            For a multilabel target the labels are the columns of ``y``:
            ``classes`` must still be given on the first call, as for
            ``MLPClassifier``, but its values are not read.

        {sample_weight}

        {fit_returns}
        """
        if self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: each call runs "
                "one epoch on the data it is given, with no validation split. Set "
                "early_stopping=False, or use fit."
            )
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    # -- internals ---------------------------------------------------------

    def _forward(self, X):
        """The output scores of validated data ``X``: in float64, as in
        training, and by blocks of rows so that the hidden layers' memory does
        not grow with ``n``."""
        layers = [
            (W.astype(np.float64, copy=False), b.astype(np.float64, copy=False))
            for W, b in zip(self.coefs_, self.intercepts_)
        ]
        rows = max(1, _FORWARD_BLOCK_ENTRIES // max(W.shape[1] for W, _ in layers))
        K = layers[-1][0].shape[1]
        if issparse(X):
            X = X.tocsr()  # blocks of rows
        out = np.empty((X.shape[0], K))
        for start in range(0, X.shape[0], rows):
            z = X[start : start + rows].astype(np.float64, copy=False)
            for layer, (W, b) in enumerate(layers):
                z = z @ W + b
                if layer < len(layers) - 1:
                    z = _ACTIVATIONS[self.activation](z)
            out[start : start + rows] = z
        return out.ravel() if self._target_kind == "binary" else out

    def _known_classes(self, y, classes):
        """The classes a ``partial_fit`` call's target must fall in: those of
        the first call (``classes``), or None for a first multilabel call."""
        multilabel = y.ndim == 2 and y.shape[1] > 1
        if hasattr(self, "classes_"):
            if multilabel != (self._target_kind == "multilabel"):
                raise ValueError(
                    f"partial_fit got a {'multilabel' if multilabel else '1d'} "
                    f"target after a {self._target_kind} one; every call must "
                    "have the same kind of target."
                )
            if (
                classes is not None
                and not multilabel
                and not np.array_equal(unique_labels(classes), self.classes_)
            ):
                raise ValueError(
                    f"classes={classes!r} differs from the classes of the first "
                    f"call, {self.classes_!r}."
                )
            return self.classes_
        if multilabel:
            return None
        known = unique_labels(classes)
        if known.shape[0] < 2:
            raise ValueError("classes must hold at least two classes.")
        return known

    def _fit(self, X, y, sample_weight, incremental=False, classes=None):
        hidden = np.atleast_1d(np.asarray(self.hidden_layer_sizes))
        if (
            hidden.ndim != 1
            or not np.issubdtype(hidden.dtype, np.integer)
            or np.any(hidden < 1)
        ):
            raise ValueError(
                "hidden_layer_sizes must be positive integers, got "
                f"{self.hidden_layer_sizes!r}."
            )
        if is_dask(X):
            raise TypeError(
                "AnyLossMLPClassifier does not train on Dask arrays directly: wrap "
                "it in dask_ml.wrappers.Incremental, which calls partial_fit on "
                "each block (see the user guide's scaling-out page). Prediction "
                "takes Dask arrays."
            )
        # A fit that continues the network (partial_fit, warm_start) checks X
        # against the features it was trained on, as MLPClassifier does, and
        # leaves the model as it was if they differ.
        continues = (incremental or self.warm_start) and hasattr(self, "coefs_")
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
            order="C", reset=not continues, multi_output=True,
        )  # fmt: skip
        known = self._known_classes(y, classes) if incremental else None
        classes_, problem = read_target(y, self.metric, self.average, known)
        if (
            continues
            and not incremental
            and not (
                problem.kind == self._target_kind
                and np.array_equal(classes_, self.classes_)
            )
        ):
            raise ValueError(
                "warm_start=True continues the previous fit, whose target was "
                f"{self._target_kind} with the classes {self.classes_!r}; this y is "
                f"{problem.kind} with the classes {classes_!r}. Fit with the same "
                "classes, or set warm_start=False to train a new network."
            )
        self.classes_ = classes_
        self._target_kind = problem.kind
        K = problem.n_outputs
        Y = problem.Y
        strata = _strata(problem)
        sw = sample_weight_array(sample_weight, X)
        if not incremental:
            check_target_weights(problem, sw, self.classes_)
        if self.alpha > 0 and not np.isfinite(
            self.alpha * X.shape[0] / weight_total(sw)
        ):
            raise ValueError(
                f"sample_weight sums to {weight_total(sw):.3g}, too little to train "
                f"with alpha={self.alpha}: the L2 penalty is alpha / (2 x a batch's "
                "total weight), as in MLPClassifier, and overflows. Multiply "
                "sample_weight by a constant (the metric does not depend on the "
                "weights' scale), or set alpha=0."
            )

        rng = check_random_state(self.random_state)
        dims = np.array([X.shape[1], *hidden.tolist(), K], dtype=np.int64)
        if continues:
            widths = [W.shape[0] for W in self.coefs_] + [self.coefs_[-1].shape[1]]
            if widths != dims.tolist():
                raise ValueError(
                    "The network of the previous fit has another shape; use "
                    "warm_start=False or the same hidden_layer_sizes and classes."
                )
            # Continue from the public weights, as MLPClassifier does.
            self._theta = np.concatenate(
                [
                    np.concatenate([W.ravel(), b])
                    for W, b in zip(self.coefs_, self.intercepts_)
                ]
            ).astype(np.float64)
        else:
            self._initialize(dims, rng)
        if not (incremental and continues) or self.best_loss_ is None:
            # Each fit watches its own data: the stopping rule starts afresh
            # (also after an early-stopping fit, for partial_fit).
            self._reset_stopping(self.early_stopping and not incremental)
        theta = self._theta

        X_val = y_val = sw_val = None
        if self.early_stopping and not incremental:
            stratify = strata if np.min(np.bincount(strata)) >= 2 else None
            split = train_test_split(
                np.arange(X.shape[0]),
                test_size=self.validation_fraction,
                random_state=rng,
                stratify=stratify,
            )
            train, val = split
            X_val, y_val, sw_val = X[val], Y[val], sw[val]
            X, Y, strata, sw = X[train], Y[train], strata[train], sw[train]
            if X_val.shape[0] < 2:
                raise ValueError(
                    "validation_fraction leaves fewer than two samples for early "
                    "stopping; raise it or turn early_stopping off."
                )
            try:
                check_target_weights(problem._replace(Y=Y), sw, self.classes_)
            except ValueError as exc:
                raise ValueError(
                    f"Early stopping set aside validation_fraction="
                    f"{self.validation_fraction} of the samples, and the rest "
                    f"cannot be trained on: {exc} Lower validation_fraction, or "
                    "turn early_stopping off."
                ) from None
            try:
                check_target_weights(problem._replace(Y=y_val), sw_val, self.classes_)
            except ValueError as exc:
                # The metric of the split then ignores that class (F1 of a
                # binary target is 0 whatever the model): no signal to stop on.
                warnings.warn(
                    f"Early stopping's validation split (validation_fraction="
                    f"{self.validation_fraction}) does not hold every class: {exc} "
                    "Its score may not move, and training may stop after its first "
                    "epochs. Raise validation_fraction, or turn early_stopping off.",
                    UserWarning,
                    stacklevel=3,
                )

        n = X.shape[0]
        batch_size = min(200, n) if self.batch_size == "auto" else self.batch_size
        if batch_size > n:
            warnings.warn(
                f"Got batch_size={batch_size} larger than the number of samples "
                f"({n}); using {n}.",
                UserWarning,
                stacklevel=2,
            )
            batch_size = n
        max_iter = 1 if incremental else self.max_iter

        log_loss_weight = (
            _auto_log_loss_weight(self.metric, problem.kind)
            if self.log_loss_weight == "auto"
            else float(self.log_loss_weight)
        )
        self.amplifier_ = _resolve_amplifier(self.amplifier, self.metric, problem.kind)
        settings = mlp_settings(
            self, problem, batch_size, log_loss_weight, self.amplifier_
        )
        metric = resolve_metric(self.metric, self.beta, problem.average)
        # Checked at a batch's total weight and the first output's classes.
        metric.check(weight_total(sw) * batch_size / n, weight_share(Y[:, 0], sw))
        backend = mlp_backend(self.device, X, Y, sw)
        seed = rng.randint(np.iinfo(np.int32).max)
        order_rng = np.random.RandomState(seed)
        for _ in range(max_iter):
            order = _stratified_order(strata, self.shuffle, order_rng)
            loss = backend.epoch(
                order, theta, dims, settings, metric, self._optimizer_state
            )
            if not np.isfinite(loss):
                raise ValueError(
                    "Training diverged: the loss, its gradient or the weights became "
                    "non-finite. Standardise the features (e.g. with StandardScaler) "
                    "or lower learning_rate_init."
                )
            self.n_iter_ += 1
            self.t_ += n
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if self._update_no_improvement(
                loss, X_val, y_val, sw_val, dims, metric, problem.kind
            ):
                break
        else:
            if not incremental:
                warnings.warn(
                    f"AnyLossMLPClassifier: maximum iterations ({self.max_iter}) "
                    "reached and the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=2,
                )
        if X_val is not None:
            theta[:] = self._best_theta
        self._set_layers(theta, dims, X.dtype)
        self._check_training_scores(X)
        return self

    def _update_no_improvement(self, loss, X_val, Y_val, sw_val, dims, metric, kind):
        """Track the best loss or validation score; True when training should stop.

        The validation score (the metric of the validation samples' hard
        predictions, weighted) is tracked as a negative loss, by the stopping
        rule of every training loop of the package.
        """
        if X_val is not None:
            self._set_layers(self._theta, dims, np.float64)
            Y_pred = outputs_of_scores(self._forward(X_val), kind)
            score = metric.of_predictions(kind, Y_val, Y_pred, sw_val)
            self.validation_scores_.append(score)
            if score > self.best_validation_score_:
                self._best_theta = self._theta.copy()
            best, self._no_improvement_count = track_best_py(
                -score, -self.best_validation_score_, self._no_improvement_count,
                self.tol,
            )  # fmt: skip
            self.best_validation_score_ = -best
        else:
            self.best_loss_, self._no_improvement_count = track_best_py(
                loss, self.best_loss_, self._no_improvement_count, self.tol
            )
        return self._no_improvement_count >= self.n_iter_no_change

    def _initialize(self, dims, rng):
        # Glorot uniform, as MLPClassifier (factor 2 for the logistic activation).
        factor = 2.0 if self.activation == "logistic" else 6.0
        parts = []
        for n_in, n_out in zip(dims[:-1], dims[1:]):
            bound = np.sqrt(factor / (n_in + n_out))
            parts.append(rng.uniform(-bound, bound, (n_in, n_out)).ravel())
            parts.append(rng.uniform(-bound, bound, n_out))
        self._theta = np.concatenate(parts)
        self._optimizer_state = new_state(self._theta.shape[0])
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.t_ = 0

    def _reset_stopping(self, early_stopping):
        """Fresh bookkeeping for the stopping rule (each ``fit`` starts one)."""
        self._no_improvement_count = 0
        self._best_theta = None
        self.best_loss_ = None if early_stopping else np.inf
        self.validation_scores_ = [] if early_stopping else None
        self.best_validation_score_ = -np.inf if early_stopping else None

    def _set_layers(self, theta, dims, dtype):
        check_finite_parameters(theta, dtype)
        self.coefs_, self.intercepts_ = [], []
        start = 0
        for n_in, n_out in zip(dims[:-1], dims[1:]):
            self.coefs_.append(
                theta[start : start + n_in * n_out].reshape(n_in, n_out).astype(dtype)
            )
            start += n_in * n_out
            self.intercepts_.append(theta[start : start + n_out].astype(dtype))
            start += n_out
        self.n_layers_ = len(dims)
        self.n_outputs_ = int(dims[-1])
        self.out_activation_ = (
            "softmax" if self._target_kind == "multiclass" else "logistic"
        )


def _strata(problem):
    """Each sample's stratum for the mini-batches and the validation split:
    its class; for a multilabel target, its rarest positive label (the
    number of labels if it has none), so that every batch holds each rare
    label's positives in proportion."""
    if problem.kind != "multilabel":
        return problem.y
    Y = problem.Y
    rarity = np.argsort(np.argsort(Y.sum(axis=0), kind="stable"), kind="stable")
    ranks = np.where(Y.astype(bool), rarity, Y.shape[1])
    rarest = ranks.min(axis=1)
    # back from rank to label index, with "none" last
    label_of_rank = np.append(np.argsort(rarity, kind="stable"), Y.shape[1])
    return label_of_rank[rarest]


def _stratified_order(strata, shuffle, rng):
    """A permutation whose every stretch holds the strata in proportion."""
    members = [np.flatnonzero(strata == c) for c in np.unique(strata)]
    if shuffle:
        members = [rng.permutation(m) for m in members]
    offsets = np.cumsum([0] + [m.shape[0] for m in members])
    return stratified_merge(np.concatenate(members), offsets)


# Rows x widest layer per block of ``_forward``: 2**21 float64, 16 MB.
_FORWARD_BLOCK_ENTRIES = 1 << 21


_ACTIVATIONS = {
    "identity": lambda z: z,
    "logistic": expit,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
}
