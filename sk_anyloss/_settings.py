"""The settings of one fit, as the kernels see them.

An estimator builds its record once per fit from its parameters
(:func:`linear_settings`, :func:`mlp_settings`) and hands it to its backend,
which passes it on to the compiled code unchanged: an immutable record of
codes and floats (a ``NamedTuple``, which Numba and numba.cuda both take as
one argument) instead of long positional argument lists.
"""

from typing import NamedTuple

from ._optim import ADAM, SGD, Optimizer

ACTIVATION_CODES = {"identity": 0, "logistic": 1, "tanh": 2, "relu": 3}

# Output layers of the MLP: one sigmoid unit per label (a binary target is
# one label), or a softmax over the classes.
SIGMOID, SOFTMAX = 0, 1


class LinearSettings(NamedTuple):
    """The linear model's metric loop: loss, optimiser and stopping rule.

    The loss is ``1 - M + alpha / 2 * |w|^2`` with the approximation's
    ``amplifier``; the loop stops after ``max_iter`` iterations or, with
    ``use_tol``, once the loss has not improved by ``tol`` for
    ``n_iter_no_change`` iterations.
    """

    amplifier: float
    alpha: float
    fit_intercept: bool
    optimizer: Optimizer
    max_iter: int
    use_tol: bool
    tol: float
    n_iter_no_change: int


class MLPSettings(NamedTuple):
    """The MLP's epochs: hidden activation code, output layer, loss and
    optimiser.

    The batch loss is ``1 - M`` of the batch's soft confusion matrices (the
    metric is called in ``layout`` with ``metric_k``; with ``samples``, the
    mean over rows of each row's metric over its units) plus ``log_loss`` times the
    class-balanced log-loss, plus ``alpha / (2 b) |W|^2`` with ``b`` the
    batch's total weight.
    """

    activation: int
    output: int
    layout: int
    metric_k: int
    samples: bool
    amplifier: float
    log_loss: float
    alpha: float
    batch_size: int
    optimizer: Optimizer


def _optimizer(estimator, solver):
    return Optimizer(
        solver=solver,
        learning_rate=float(estimator.learning_rate_init),
        momentum=float(getattr(estimator, "momentum", 0.0)),
        beta_1=float(estimator.beta_1),
        beta_2=float(estimator.beta_2),
        epsilon=float(estimator.epsilon),
    )


def linear_settings(estimator, amplifier):
    """:class:`LinearSettings` of an ``AnyLossClassifier`` with the
    ``amplifier`` its fit resolved; its solver ``"gd"`` is SGD with momentum
    0, a plain gradient step."""
    solver = ADAM if estimator.solver == "adam" else SGD
    return LinearSettings(
        amplifier=float(amplifier),
        alpha=float(estimator.alpha),
        fit_intercept=bool(estimator.fit_intercept),
        optimizer=_optimizer(estimator, solver),
        max_iter=int(estimator.max_iter),
        use_tol=estimator.tol is not None,
        tol=0.0 if estimator.tol is None else float(estimator.tol),
        n_iter_no_change=int(estimator.n_iter_no_change),
    )


def mlp_settings(estimator, problem, batch_size, log_loss, amplifier):
    """:class:`MLPSettings` of an ``AnyLossMLPClassifier`` fitting
    ``problem`` (a ``_base.Problem``) with the batch size, log-loss weight
    and amplifier that its fit resolved."""
    return MLPSettings(
        activation=ACTIVATION_CODES[estimator.activation],
        output=SOFTMAX if problem.kind == "multiclass" else SIGMOID,
        layout=problem.layout,
        metric_k=problem.metric_k,
        samples=problem.average == "samples",
        amplifier=float(amplifier),
        log_loss=float(log_loss),
        alpha=float(estimator.alpha),
        batch_size=int(batch_size),
        optimizer=_optimizer(estimator, ADAM if estimator.solver == "adam" else SGD),
    )
