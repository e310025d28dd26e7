"""Plain NumPy reference of the AnyLoss models, for the tests.

Slow and obvious on purpose, and independent of the package (it imports
nothing from ``sk_anyloss``): each backend's kernels are tested against it.
The metrics are their textbook definitions; their partial derivatives come from
complex-step differentiation of those definitions, not from the package's
analytic formulas. Conventions: ``theta = [w, b]``, confusion matrices in the
order ``(tn, fp, fn, tp)``, sample weights normalised to sum to one.
"""

import numpy as np
from scipy.optimize import minimize

_STEP = 1e-30  # complex step: exact to rounding, no cancellation


def _ratio(num, den):
    """``num / den``, 0 where ``den`` is 0 (the ``zero_division=0`` rule)."""
    return num / den if den.real != 0 else 0.0 * num


def metric_value(name, tn, fp, fn, tp, beta=1.0):
    """A metric of a (soft) confusion matrix, from its textbook definition."""
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    precision = _ratio(tp, tp + fp)
    if name == "accuracy":
        return (tp + tn) / (tp + tn + fp + fn)
    if name == "balanced_accuracy":
        return (recall + specificity) / 2
    if name in ("f1", "fbeta"):
        b2 = 1.0 if name == "f1" else beta**2
        return _ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)
    if name == "gmean":
        return np.sqrt(recall * specificity)
    if name == "mcc":
        return _ratio(
            tp * tn - fp * fn, np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        )
    if name == "jaccard":
        return _ratio(tp, tp + fp + fn)
    if name == "cohen_kappa":
        total = tp + tn + fp + fn
        observed = (tp + tn) / total
        expected = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / total**2
        return _ratio(observed - expected, 1 - expected)
    if name == "fowlkes_mallows":
        return np.sqrt(precision * recall)
    raise ValueError(name)


def metric_partials(name, cm, beta=1.0):
    """``d metric / d (tn, fp, fn, tp)`` at ``cm`` by the complex step."""
    out = np.empty(4)
    for k in range(4):
        z = np.array(cm, dtype=complex)
        z[k] += 1j * _STEP
        out[k] = np.imag(metric_value(name, *z, beta)) / _STEP
    return out


def amplified(z, amplifier):
    """``a = sigmoid(L (sigmoid(z) - 1/2))`` and ``da/dz``, written naively."""
    p = 1.0 / (1.0 + np.exp(-z))
    a = 1.0 / (1.0 + np.exp(-amplifier * (p - 0.5)))
    return a, amplifier * a * (1.0 - a) * p * (1.0 - p)


def _weights(n, sample_weight):
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    return s / s.sum()


def soft_confusion(X, y01, sample_weight, theta, amplifier):
    """``(tn, fp, fn, tp)`` of the linear model's amplified scores."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y01).astype(bool)
    s = _weights(X.shape[0], sample_weight)
    a, _ = amplified(X @ theta[:-1] + theta[-1], amplifier)
    tp, fp = np.sum(s[y] * a[y]), np.sum(s[~y] * a[~y])
    return np.sum(s[~y]) - fp, fp, np.sum(s[y]) - tp, tp


def loss_and_gradient(
    X, y01, sample_weight, theta, metric="f1", beta=1.0, amplifier=73.0, alpha=0.0,
    fit_intercept=True,
):  # fmt: skip
    """Loss ``1 - M + alpha/2 |w|^2`` and its gradient with respect to ``theta``."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    y = np.asarray(y01).astype(bool)
    s = _weights(n, sample_weight)
    w, b = theta[:d], theta[d]
    a, dadz = amplified(X @ w + b, amplifier)
    cm = soft_confusion(X, y01, sample_weight, theta, amplifier)
    d_tn, d_fp, d_fn, d_tp = metric_partials(metric, cm, beta)
    dz = -np.where(y, d_tp - d_fn, d_fp - d_tn) * s * dadz
    grad = np.append(X.T @ dz + alpha * w, dz.sum() if fit_intercept else 0.0)
    return 1.0 - metric_value(metric, *cm, beta) + 0.5 * alpha * (w @ w), grad


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
    s = _weights(n, sample_weight)
    c = np.where(y, 0.5 / s[y].sum(), 0.5 / s[~y].sum()) * s
    w, b = theta[:d], theta[d]
    z = X @ w + b
    p = 1.0 / (1.0 + np.exp(-z))
    # -log p = log(1 + exp(-z)), -log(1 - p) = log(1 + exp(z))
    loss = np.sum(c * np.logaddexp(0.0, np.where(y, -z, z)))
    dz = c * (p - y)
    grad = np.append(X.T @ dz + alpha * w, dz.sum() if fit_intercept else 0.0)
    return loss + 0.5 * alpha * (w @ w), grad


def fit(
    X, y01, sample_weight=None, metric="f1", beta=1.0, amplifier=73.0, alpha=0.0,
    fit_intercept=True, learning_rate=0.01, max_iter=1000, beta_1=0.9, beta_2=0.999,
    epsilon=1e-8, solver="adam", warmup_iter=0, warmup_gtol=1e-4,
):  # fmt: skip
    """Full-batch training from zero, ``max_iter`` iterations; returns ``theta``.

    With ``warmup_iter``, at most that many L-BFGS iterations (gradient
    tolerance ``warmup_gtol``) on the class-balanced log-loss with penalty
    ``1 / total weight`` come first.
    """
    theta = np.zeros(X.shape[1] + 1)
    if warmup_iter:
        total = X.shape[0] if sample_weight is None else np.sum(sample_weight)
        result = minimize(
            lambda t: balanced_log_loss_and_gradient(
                X, y01, sample_weight, t, 1.0 / total, fit_intercept
            ),
            theta,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": warmup_iter, "gtol": warmup_gtol},
        )
        theta = result.x
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t in range(1, max_iter + 1):
        _, grad = loss_and_gradient(
            X, y01, sample_weight, theta, metric, beta, amplifier, alpha, fit_intercept
        )
        if solver == "gd":
            theta = theta - learning_rate * grad
            continue
        m = beta_1 * m + (1 - beta_1) * grad
        v = beta_2 * v + (1 - beta_2) * grad * grad
        step = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        theta = theta - step * m / (np.sqrt(v) + epsilon)
    return theta


# --------------------------------------------------------------------------
# Several classes or labels. Parameters ``Theta`` (n_outputs, d + 1), one row
# ``[w_k, b_k]`` per output; gradients by the complex step through the whole
# loss (the model, the soft matrices and the metric's textbook definition).

_PER_CLASS = ("f1", "fbeta", "jaccard", "fowlkes_mallows")


def _per_class_value(name, tn, fp, fn, tp, beta):
    return metric_value(name, tn, fp, fn, tp, beta)


def multiclass_metric(name, C, beta=1.0, average="macro"):
    """A metric of a K x K confusion matrix ``C[true, predicted]``, from its
    textbook definition (complex entries allowed)."""
    C = np.asarray(C)
    K = C.shape[0]
    n = C.sum()
    R = C.sum(axis=1)  # true counts
    P = C.sum(axis=0)  # predicted counts
    trace = np.trace(C)
    if name == "accuracy":
        return trace / n
    if name == "balanced_accuracy":
        return sum(C[k, k] / R[k] for k in range(K)) / K
    if name == "gmean":
        return np.prod([C[k, k] / R[k] for k in range(K)]) ** (1.0 / K)
    if name == "mcc":
        return (trace * n - R @ P) / np.sqrt((n * n - P @ P) * (n * n - R @ R))
    if name == "cohen_kappa":
        po = trace / n
        pe = (R @ P) / n**2
        return (po - pe) / (1 - pe)
    # one-vs-rest matrices of the classes, averaged
    cms = [(n - R[k] - P[k] + C[k, k], P[k] - C[k, k], R[k] - C[k, k], C[k, k])
           for k in range(K)]  # fmt: skip
    return averaged_binary(name, cms, beta, average)


def averaged_binary(name, cms, beta=1.0, average="macro"):
    """The binary metric of each ``(tn, fp, fn, tp)`` of ``cms``, averaged."""
    if average == "micro":
        return metric_value(name, *[sum(cm[q] for cm in cms) for q in range(4)], beta)
    values = [metric_value(name, *cm, beta) for cm in cms]
    if average == "weighted":
        support = [cm[2] + cm[3] for cm in cms]
        return sum(v * s for v, s in zip(values, support)) / sum(support)
    return sum(values) / len(values)


def _softmax(Z):
    E = np.exp(Z)  # moderate scores only: no shift, so the complex step works
    return E / E.sum(axis=1, keepdims=True)


def _complex_step_gradient(f, Theta):
    grad = np.empty(Theta.shape)
    for index in np.ndindex(Theta.shape):
        T = Theta.astype(complex)
        T[index] += 1j * _STEP
        grad[index] = np.imag(f(T)) / _STEP
    return grad


def _penalty(Theta, alpha):
    W = Theta[:, :-1]
    return 0.5 * alpha * np.sum(W * W)


def multiclass_loss_and_gradient(
    X, y, sample_weight, Theta, metric="f1", beta=1.0, amplifier=20.0, alpha=0.0,
    average="macro",
):  # fmt: skip
    """Loss ``1 - M(C) + alpha/2 sum |w_k|^2`` of the softmax model, with
    ``C[t, :] = sum_{y = t} s a``, ``a = softmax(L/2 softmax(z))``, and its
    gradient with respect to ``Theta`` (K, d + 1)."""
    X = np.asarray(X, dtype=np.float64)
    s = _weights(X.shape[0], sample_weight)
    K = Theta.shape[0]

    def loss(T):
        Z = X @ T[:, :-1].T + T[:, -1]
        A = _softmax(0.5 * amplifier * _softmax(Z))
        C = np.array([(s[y == t, None] * A[y == t]).sum(axis=0) for t in range(K)])
        return 1.0 - multiclass_metric(metric, C, beta, average) + _penalty(T, alpha)

    return loss(Theta).real, _complex_step_gradient(loss, Theta)


def multilabel_loss_and_gradient(
    X, Y, sample_weight, Theta, metric="f1", beta=1.0, amplifier=20.0, alpha=0.0,
    average="macro",
):  # fmt: skip
    """Loss of independent sigmoid outputs, one per label: ``1 - M`` of each
    label's soft matrix, averaged (or, ``"samples"``, the weighted mean of
    each row's metric over its labels), and its gradient."""
    X = np.asarray(X, dtype=np.float64)
    s = _weights(X.shape[0], sample_weight)
    Y = np.asarray(Y, dtype=float)

    def loss(T):
        Z = X @ T[:, :-1].T + T[:, -1]
        P = 1.0 / (1.0 + np.exp(-Z))
        A = 1.0 / (1.0 + np.exp(-amplifier * (P - 0.5)))
        if average == "samples":
            tp = (Y * A).sum(1)
            fp = ((1 - Y) * A).sum(1)
            fn = (Y * (1 - A)).sum(1)
            tn = ((1 - Y) * (1 - A)).sum(1)
            values = [metric_value(metric, *cm, beta) for cm in zip(tn, fp, fn, tp)]
            value = sum(v * w for v, w in zip(values, s))
        else:
            tp = s @ (Y * A)
            fp = s @ ((1 - Y) * A)
            fn = s @ (Y * (1 - A))
            tn = s @ ((1 - Y) * (1 - A))
            value = averaged_binary(metric, list(zip(tn, fp, fn, tp)), beta, average)
        return 1.0 - value + _penalty(T, alpha)

    return loss(Theta).real, _complex_step_gradient(loss, Theta)


def multinomial_balanced_log_loss_and_gradient(X, y, sample_weight, Theta, alpha):
    """The multiclass warm-up's loss: the mean over classes of each class's
    mean log-loss, plus ``alpha/2 sum |w_k|^2``; and its gradient."""
    X = np.asarray(X, dtype=np.float64)
    s = _weights(X.shape[0], sample_weight)
    K = Theta.shape[0]
    mass = np.array([s[y == t].sum() for t in range(K)])
    c = s / (K * mass[y])

    def loss(T):
        Z = X @ T[:, :-1].T + T[:, -1]
        log_p = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        return -np.sum(c * log_p[np.arange(len(y)), y]) + _penalty(T, alpha)

    return loss(Theta).real, _complex_step_gradient(loss, Theta)
