"""AnyLossClassifier: a linear model trained on a confusion-matrix metric."""

import warnings
from contextlib import nullcontext
from numbers import Integral, Real

import numpy as np
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from ._backend import PARALLEL_MIN_ENTRIES, linear_backend, one_blas_thread
from ._base import (
    SHARED_PARAMETER_CONSTRAINTS,
    AnyLossEstimator,
    check_finite_parameters,
    check_target_weights,
    fill_doc,
    is_dask,
    read_target,
    sample_weight_array,
    weight_share,
    weight_total,
)
from ._metrics import resolve_metric
from ._settings import linear_settings

# The warm-up minimises the objective of scikit-learn's
# ``LogisticRegression(class_weight="balanced")`` at C = 1: the class-balanced
# mean log-loss plus ``1 / (2 n) |w|^2``, by L-BFGS with scikit-learn's
# default gradient tolerance. Chosen on the benchmark suite
# (docs/solver-defaults.md).
WARM_UP_C = 1.0
WARM_UP_GTOL = 1e-4


_DIVERGED = (
    "Training diverged: the loss, its gradient or the weights became non-finite "
    "{where}. Standardise the features (e.g. with StandardScaler) or lower "
    "learning_rate_init."
)


#: ``amplifier="auto"``: 7 for a binary target trained on a metric that
#: averages the two classes' recalls, 20 otherwise. Chosen on the development
#: half of the suite and confirmed on the other (docs/solver-defaults.md).
AUTO_AMPLIFIER = 20.0
RECALL_AMPLIFIER = 7.0
RECALL_METRICS = ("balanced_accuracy", "gmean")


def default_amplifier(amplifier, metric, problem):
    """The amplifier a fit uses: ``amplifier`` itself, or for ``"auto"`` the
    default of ``metric`` (the estimator's parameter) on ``problem``."""
    if not isinstance(amplifier, str):
        return float(amplifier)
    recalls = isinstance(metric, str) and metric in RECALL_METRICS
    if recalls and problem.kind == "binary" and problem.average is None:
        return RECALL_AMPLIFIER
    return AUTO_AMPLIFIER


def warm_up_penalty(total):
    """L2 strength of the warm-up's objective: ``1 / (C n)``, with ``n`` the
    total sample weight (the number of rows when unweighted), so that an
    integer weight acts as a repeated row. Capped at ``1 / tiny`` (the largest
    finite inverse of a float): weights whose total is below the smallest
    normal float give the same start as ones with that total, coefficients of
    about zero, instead of an infinite penalty."""
    return 1.0 / (WARM_UP_C * max(total, np.finfo(np.float64).tiny))


def lbfgs_warm_up(loss_and_gradient, theta, max_iter):
    """Minimise the warm-up objective from ``theta`` with at most ``max_iter``
    L-BFGS iterations; returns the new ``theta`` and the loss there (also
    used by the NumPy reference, so that both run the same optimiser)."""
    result = minimize(
        loss_and_gradient,
        theta,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": WARM_UP_GTOL},
    )
    return result.x, result.fun


# The largest max_iter (80 MB of loss curve).
MAX_ITER = 10_000_000


@fill_doc
class AnyLossClassifier(AnyLossEstimator):
    """Linear classifier trained to maximise a confusion-matrix metric.

    The model is ``p = sigmoid(X @ w + b)``. Training minimises
    ``1 - M(TN, FP, FN, TP)`` where the confusion matrix is made differentiable
    with the AnyLoss approximation ``a = sigmoid(amplifier * (p - 0.5))``
    (Han, Moniz and Chawla, 2024), plus an L2 penalty ``alpha / 2 * ||w||^2``.
    It starts from a class-balanced logistic regression (the warm-up, at most
    ``warmup_iter`` L-BFGS iterations from zero weights). Every iteration is
    full-batch and reads ``X`` once, in compiled code.

    A sample is predicted positive when ``predict_proba(X)[:, 1] >= 0.5``,
    the decision rule the metric was optimised for.

    A multiclass target is one joint model: ``p = softmax(X @ W.T + b)``,
    trained on the soft K x K confusion matrix of the assignments
    ``a = softmax(amplifier / 2 * p)`` (each iteration reads ``X`` twice),
    and predicts the top class. A multilabel target (an indicator matrix)
    has one sigmoid output per label, trained jointly on the metric
    averaged over the labels' matrices (``average``), and predicts each
    label where its probability is at least 0.5. One-vs-rest training of
    independent binary models remains available as
    ``OneVsRestClassifier(AnyLossClassifier())``.

    Parameters
    ----------
    metric : {"accuracy", "balanced_accuracy", "f1", "fbeta", "gmean", "mcc", \
            "jaccard", "cohen_kappa", "fowlkes_mallows"} or callable, default="f1"
        The metric to maximise. The positive class is ``classes_[1]``, the
        larger label in sorted order (as for scikit-learn's linear models): to
        make, say, ``"yes"`` the positive class of ``{"no", "yes"}`` nothing is
        needed; otherwise pass ``y == positive_label``.

        {user_metric}

    beta : float, default=1.0
        Weight of recall against precision; used by ``metric="fbeta"`` only.

    {average}

    amplifier : float or "auto", default="auto"
        The amplifying scale ``L`` of the approximation function. Larger values
        make the soft confusion matrix closer to the hard one and the loss
        surface steeper. Must be positive. ``"auto"``: 7 for a binary target
        and ``metric="balanced_accuracy"`` or ``"gmean"``, which average the
        two classes' recalls, 20 otherwise. The paper uses 73; after the
        warm-up these score higher, chosen on half of the benchmark suite and
        confirmed on the other half (``docs/solver-defaults.md``). The value
        used is ``amplifier_``.

    alpha : float, default=0.0
        Strength of the L2 penalty on the coefficients (not the intercept).

    warmup_iter : int, default=15
        Maximum number of L-BFGS iterations of the warm-up, which fits the
        class-balanced logistic regression of
        ``LogisticRegression(class_weight="balanced")`` (``C=1``, L2 penalty
        ``1 / (2 n_samples) ||w||^2`` on the mean log-loss) from zero
        weights before training on the metric: a good ranking to start from,
        which the metric loss then moves to its own decision rule. ``0``
        starts the metric loss from zero weights, the paper's method. The
        warm-up is not counted in ``n_iter_`` or ``loss_curve_``; ``alpha``
        applies to the metric loss only.

    fit_intercept : bool, default=True
        Whether to fit an intercept ``b``.

    solver : {"adam", "gd"}, default="adam"
        ``"adam"``: full-batch Adam. ``"gd"``: plain full-batch gradient
        descent with a fixed step, the AnyLoss paper's optimiser.

    learning_rate_init : float, default=0.03
        Step size of the solver. The defaults of ``learning_rate_init``,
        ``tol`` and ``warmup_iter`` were chosen together on the benchmark
        suite (``docs/solver-defaults.md``): after the warm-up a few dozen
        Adam steps of 0.03 reach what smaller steps and a tighter tolerance
        reach, in half the passes over the data. Without the warm-up
        (``warmup_iter=0``), 0.01 was the better step.

    max_iter : int, default=1000
        Maximum number of iterations (full passes over the data), at most
        10,000,000: the loss of every iteration is kept (``loss_curve_``),
        in memory allocated when the fit starts.

    tol : float or None, default=1e-3
        Training stops when the loss (``1 - metric``, between 0 and 1, plus
        the penalty) has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive iterations. With ``None``, exactly
        ``max_iter`` iterations run.

    n_iter_no_change : int, default=10
        Number of iterations without improvement before stopping.

    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and its numerical-stability term.

    random_state : int, RandomState instance or None, default=None
        Accepted for compatibility with scikit-learn's API. The solver starts
        from zero weights and is deterministic, so it has no effect.

    verbose : int, default=0
        If positive, print the loss of every iteration once training ends.

    {device}

    Attributes
    ----------
    {classes_}

    coef_ : ndarray of shape (1, n_features) or (n_outputs, n_features)
        Coefficients; one row for a binary problem, one per class of a
        multiclass target (the rows of the joint softmax model), one per label
        of a multilabel target. Same dtype as the training data.

    intercept_ : ndarray of shape (1,) or (n_outputs,)
        Intercepts.

    amplifier_ : float
        The amplifier used: ``amplifier``, or the one ``"auto"`` chose.

    n_iter_ : int
        Number of iterations run.

    loss_curve_ : list of float
        Training loss at each iteration, before the update.

    {features_in}

    See Also
    --------
    sklearn.linear_model.LogisticRegression : Linear model trained on log-loss.
    sklearn.model_selection.TunedThresholdClassifierCV : Tunes the decision
        threshold of a probabilistic classifier for a metric.

    References
    ----------
    .. [1] D. Han, N. Moniz and N. V. Chawla, "AnyLoss: Transforming
       Classification Metrics into Loss Functions", KDD 2024.
       https://arxiv.org/abs/2405.14745

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.pipeline import make_pipeline
    >>> from sk_anyloss import AnyLossClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), AnyLossClassifier(metric="f1"))
    >>> clf.fit(X, y).score(X, y) > 0.95
    True
    """

    _parameter_constraints = {
        **SHARED_PARAMETER_CONSTRAINTS,
        # The backends keep the loss of every iteration (loss_curve_) in an
        # array allocated for max_iter of them.
        "max_iter": [Interval(Integral, 1, MAX_ITER, closed="both")],
        "warmup_iter": [Interval(Integral, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "solver": [StrOptions({"adam", "gd"})],
        "tol": [Interval(Real, 0, None, closed="left"), None],
    }

    def __init__(
        self,
        metric="f1",
        *,
        beta=1.0,
        average=None,
        amplifier="auto",
        alpha=0.0,
        warmup_iter=15,
        fit_intercept=True,
        solver="adam",
        learning_rate_init=0.03,
        max_iter=1000,
        tol=1e-3,
        n_iter_no_change=10,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        random_state=None,
        verbose=0,
        device="cpu",
    ):
        self.metric = metric
        self.beta = beta
        self.average = average
        self.amplifier = amplifier
        self.alpha = alpha
        self.warmup_iter = warmup_iter
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    def _fit(self, X, y, sample_weight):
        if self.solver == "gd" and self.learning_rate_init * self.alpha >= 2:
            raise ValueError(
                'solver="gd" diverges when learning_rate_init * alpha >= 2: the L2 '
                "term alone multiplies the weights by 1 - learning_rate_init * alpha "
                f"at every step (got learning_rate_init={self.learning_rate_init}, "
                f"alpha={self.alpha}). Lower learning_rate_init below "
                f'{2 / self.alpha:.3g}, or use solver="adam".'
            )
        if is_dask(X):
            X, backend, problem, total, share, d = self._dask_data(X, y, sample_weight)
        else:
            X, y = validate_data(
                self, X, y, accept_sparse=["csr", "csc"],
                dtype=[np.float64, np.float32], order="C", multi_output=True,
            )  # fmt: skip
            self.classes_, problem = read_target(y, self.metric, self.average)
            sw = sample_weight_array(sample_weight, X)
            check_target_weights(problem, sw, self.classes_)
            total, share = weight_total(sw), weight_share(problem.Y[:, 0], sw)
            backend = linear_backend(self.device, X, sw)
            d = X.shape[1]

        metric = resolve_metric(self.metric, self.beta, problem.average)
        self.amplifier_ = default_amplifier(self.amplifier, self.metric, problem)
        settings = linear_settings(self, self.amplifier_)
        metric.check(total, share)
        target = backend.target(problem)
        theta = np.zeros(problem.n_outputs * (d + 1))
        if self.warmup_iter:
            penalty = warm_up_penalty(total)
            with backend.log_loss(target, penalty, settings.fit_intercept) as f:
                theta, loss = lbfgs_warm_up(f, theta, int(self.warmup_iter))
            if not (np.isfinite(loss) and np.all(np.isfinite(theta))):
                raise ValueError(_DIVERGED.format(where="during the warm-up"))
        status, curve = backend.fit(target, theta, settings, metric)
        if status < 0:
            if np.all(np.isfinite(theta)):
                # float32 data are multiplied by float32 weights in the passes:
                # weights beyond float32's range stop the loop there.
                check_finite_parameters(theta, X.dtype)
            raise ValueError(
                _DIVERGED.format(where=f"at iteration {-status} of training")
            )

        check_finite_parameters(theta, X.dtype)
        rows = theta.reshape(problem.n_outputs, d + 1)
        self.coef_ = rows[:, :d].astype(X.dtype)
        self.intercept_ = rows[:, d].astype(X.dtype)
        self._target_kind = problem.kind
        self._check_training_scores(X)
        self.n_iter_ = len(curve)
        self.loss_curve_ = curve.tolist()
        if self.verbose:
            for it, loss in enumerate(self.loss_curve_, 1):
                print(f"Iteration {it}, loss = {loss:.8f}")
        if self.tol is not None and self.n_iter_ == self.max_iter:
            warnings.warn(
                f"AnyLossClassifier: maximum iterations ({self.max_iter}) reached "
                "and the loss has not converged yet. Increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        first, last = (curve[0], curve[-1]) if len(curve) else (0.0, 0.0)
        if last > first + 0.01 * max(1.0, abs(first)):
            # The steps overshoot: typically features on large scales, where a
            # step of learning_rate_init saturates the soft predictions.
            warnings.warn(
                f"AnyLossClassifier: the metric loop ended at a loss ({last:.4g}) "
                f"above the one it started from ({first:.4g}): its steps are too "
                "large for the scale of the features. Standardise the features "
                "(e.g. with StandardScaler) or lower learning_rate_init.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _dask_data(self, X, y, sample_weight):
        """Read a Dask ``(X, y, sample_weight)`` on the cluster (see
        ``_kernels_dask``): the validated, persisted ``X``, the backend, the
        problem, the total weight, the first output's positive share and the
        number of features."""
        if self.device == "cuda":
            raise ValueError(
                'device="cuda" takes in-memory data; Dask arrays train on the '
                'workers\' CPUs: use device="cpu" (or "auto").'
            )
        from ._kernels_dask import DaskData, LinearBackend

        names = list(getattr(X, "columns", []))
        if names and all(isinstance(name, str) for name in names):
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        data = DaskData(self, X, y, sample_weight)
        self.n_features_in_ = data.n_features
        self.classes_ = data.classes
        return (
            data.X, LinearBackend(data), data.problem, data.total, data.share(),
            data.n_features,
        )  # fmt: skip

    @fill_doc
    def decision_function(self, X):
        """Raw scores ``X @ coef_.T + intercept_``.

        {X_parameters}

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For a binary problem, the score of ``classes_[1]``; positive scores
            mean ``predict_proba >= 0.5``.
        """
        if is_dask(X):
            return self._dask_rows(X, "decision_function")
        return self._scores(X)

    def _forward(self, X):
        # BLAS on one thread for products big enough to start its threads:
        # they spin for a while after the call, on the cores that the next
        # fit's compiled kernels need (measured on 2 cores: a parallel pass
        # right after a 2-thread product ran at half speed for ~0.1 s,
        # benchmarks/README.md). The product is memory-bound either way.
        large = X.shape[0] * X.shape[1] >= PARALLEL_MIN_ENTRIES
        with one_blas_thread() if large else nullcontext():
            scores = X @ self.coef_.T + self.intercept_
        return scores.ravel() if self._target_kind == "binary" else scores
