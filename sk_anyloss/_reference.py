"""Plain NumPy reference of the linear AnyLoss model.

Slow and obvious on purpose: the compiled kernels are tested against it, and
the benchmarks use :func:`fit_reference` as the vectorised NumPy baseline (the
way the AnyLoss paper's authors trained their models).  Same conventions as
``_kernels_cpu``: ``theta = [w, b]``, sample weights normalised to sum to one.
"""

import numpy as np

from ._metrics import metric_and_partials_py, metric_code


def amplified_naive(z, amplifier):
    """``a = sigmoid(L (sigmoid(z) - 1/2))`` and ``da/dz``, written naively."""
    p = 1.0 / (1.0 + np.exp(-z))
    a = 1.0 / (1.0 + np.exp(-amplifier * (p - 0.5)))
    return a, amplifier * a * (1.0 - a) * p * (1.0 - p)


def loss_and_gradient(
    X,
    y01,
    sample_weight,
    theta,
    metric="f1",
    beta=1.0,
    amplifier=73.0,
    alpha=0.0,
    fit_intercept=True,
):
    """Loss ``1 - M + alpha/2 |w|^2`` and its gradient with respect to ``theta``."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    y = np.asarray(y01).astype(bool)
    s = np.full(n, 1.0 / n) if sample_weight is None else np.asarray(sample_weight)
    w, b = theta[:d], theta[d]
    z = X @ w + b
    a, dadz = amplified_naive(z, amplifier)
    tp = np.sum(s[y] * a[y])
    fp = np.sum(s[~y] * a[~y])
    fn = max(np.sum(s[y]) - tp, 0.0)
    tn = max(np.sum(s[~y]) - fp, 0.0)
    value, d_tn, d_fp, d_fn, d_tp = metric_and_partials_py(
        metric_code(metric), tn, fp, fn, tp, beta
    )
    # d loss / d z_i
    dz = -np.where(y, d_tp - d_fn, d_fp - d_tn) * s * dadz
    grad = np.empty(d + 1)
    grad[:d] = X.T @ dz + alpha * w
    grad[d] = dz.sum() if fit_intercept else 0.0
    return 1.0 - value + 0.5 * alpha * (w @ w), grad


def balanced_log_loss_and_gradient(
    X, y01, sample_weight, theta, alpha=0.0, fit_intercept=True
):
    """The warm-up's loss: class-balanced log-loss ``+ alpha/2 |w|^2``.

    Each class carries half the total weight: ``sum_{y=1} s (-log p) / (2 P)
    + sum_{y=0} s (-log(1 - p)) / (2 N)``, ``P``, ``N`` the class weights.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    y = np.asarray(y01).astype(bool)
    s = np.full(n, 1.0 / n) if sample_weight is None else np.asarray(sample_weight)
    c = np.where(y, 0.5 / s[y].sum(), 0.5 / s[~y].sum()) * s
    w, b = theta[:d], theta[d]
    z = X @ w + b
    p = 1.0 / (1.0 + np.exp(-z))
    # -log p = log(1 + exp(-z)), -log(1 - p) = log(1 + exp(z))
    loss = np.sum(c[y] * np.logaddexp(0.0, -z[y])) + np.sum(
        c[~y] * np.logaddexp(0.0, z[~y])
    )
    dz = c * (p - y)
    grad = np.empty(d + 1)
    grad[:d] = X.T @ dz + alpha * w
    grad[d] = dz.sum() if fit_intercept else 0.0
    return loss + 0.5 * alpha * (w @ w), grad


def _adam(loss_and_grad, theta, learning_rate, n_steps, beta_1, beta_2, epsilon):
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t in range(1, n_steps + 1):
        _, grad = loss_and_grad(theta)
        m = beta_1 * m + (1 - beta_1) * grad
        v = beta_2 * v + (1 - beta_2) * grad * grad
        step = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        theta = theta - step * m / (np.sqrt(v) + epsilon)
    return theta


def fit_reference(
    X,
    y01,
    sample_weight=None,
    metric="f1",
    beta=1.0,
    amplifier=73.0,
    alpha=0.0,
    fit_intercept=True,
    learning_rate=0.01,
    max_iter=1000,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    solver="adam",
    warmup_iter=0,
    weight_total=None,
):
    """Full-batch training from zero, ``max_iter`` iterations; returns ``theta``.

    With ``warmup_iter``, at most that many L-BFGS iterations on the
    class-balanced log-loss (penalty ``1 / weight_total``, by default
    ``1 / n_samples``) come first, with the estimator's optimiser settings.
    """
    # Imported here: the estimator module is not needed for the NumPy loss.
    from ._linear import lbfgs_warm_up, warm_up_penalty

    theta = np.zeros(X.shape[1] + 1)
    if warmup_iter:
        penalty = warm_up_penalty(weight_total or X.shape[0])
        theta, _ = lbfgs_warm_up(
            lambda t: balanced_log_loss_and_gradient(
                X, y01, sample_weight, t, penalty, fit_intercept
            ),
            theta,
            warmup_iter,
        )

    def metric_loss(t):
        return loss_and_gradient(
            X, y01, sample_weight, t, metric, beta, amplifier, alpha, fit_intercept
        )

    if solver == "adam":
        return _adam(
            metric_loss, theta, learning_rate, max_iter, beta_1, beta_2, epsilon
        )
    for _ in range(max_iter):
        theta = theta - learning_rate * metric_loss(theta)[1]
    return theta
