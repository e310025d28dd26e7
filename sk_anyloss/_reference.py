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
):
    """Full-batch training from zero, ``max_iter`` iterations; returns ``theta``."""
    d = X.shape[1]
    theta = np.zeros(d + 1)
    m = np.zeros(d + 1)
    v = np.zeros(d + 1)
    for t in range(1, max_iter + 1):
        _, grad = loss_and_gradient(
            X, y01, sample_weight, theta, metric, beta, amplifier, alpha, fit_intercept
        )
        if solver == "adam":
            m = beta_1 * m + (1 - beta_1) * grad
            v = beta_2 * v + (1 - beta_2) * grad * grad
            step = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
            theta = theta - step * m / (np.sqrt(v) + epsilon)
        else:
            theta = theta - learning_rate * grad
    return theta
