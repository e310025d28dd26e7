"""Numba CPU kernels for the linear AnyLoss model.

Shapes and conventions: ``X`` is C-contiguous ``(n_samples, n_features)``,
float32 or float64, and is never copied or upcast; per-row arithmetic and all
accumulators are float64.  ``y`` holds 0/1 as uint8.  ``sw`` holds sample
weights normalised to sum to one, or is empty, meaning ``1 / n_samples`` each.
The parameters are one float64 vector ``theta = [w_0 .. w_{d-1}, b]``.

The model is ``p = sigmoid(z)``, ``z = X w + b``; the amplified score is
``a = sigmoid(L (p - 1/2))``.  With ``h_i = s_i L a_i (1 - a_i) p_i (1 - p_i)``
the gradient of ``1 - M`` is ``-(g1 S1 + g0 S0)``, where ``S1``, ``S0`` are the
class-wise sums of ``h_i x_i`` and ``g1 = dM/dTP - dM/dFN``,
``g0 = dM/dFP - dM/dTN`` depend only on the soft confusion matrix.  So one pass
over ``X`` yields everything an epoch needs (see ``_epoch_impl``).

Determinism: rows are cut into chunks of ``CHUNK_ROWS`` (a constant, not a
function of the thread count); each chunk's partial sums go to their own row of
``part`` and the rows are added in order.  The parallel and the serial build
of each kernel are compiled from the same source, so they give bit-identical
results, and so does any number of threads.
"""

import math
import types

import numpy as np
from numba import njit, prange

from ._metrics import build_metric_function

CHUNK_ROWS = 1024
BLOCK_ROWS = 16

# Solver codes understood by the training loop.
SOLVER_CODES = {"adam": 0, "gd": 1}

# Loss code of the warm-up, the class-balanced log-loss (not a metric).
WARM_UP = -1

_metric_and_partials = build_metric_function(njit)


@njit(inline="always")
def _dot(x, w, d):
    # Eight independent partial sums added in a fixed order: instruction-level
    # parallelism (and SIMD) without fastmath, identical on every machine.
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    j = 0
    while j + 8 <= d:
        s0 += x[j] * w[j]
        s1 += x[j + 1] * w[j + 1]
        s2 += x[j + 2] * w[j + 2]
        s3 += x[j + 3] * w[j + 3]
        s4 += x[j + 4] * w[j + 4]
        s5 += x[j + 5] * w[j + 5]
        s6 += x[j + 6] * w[j + 6]
        s7 += x[j + 7] * w[j + 7]
        j += 8
    while j < d:
        s0 += x[j] * w[j]
        j += 1
    return ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))


@njit(inline="always")
def amplified(z, amplifier):
    """Return ``(a, h)`` with ``a = A(sigmoid(z))`` and ``h = dA/dz``.

    Written so that nothing cancels: with ``q = exp(-|z|)``,
    ``p (1 - p) = q / (1 + q)^2`` and ``|p - 1/2| = (1 - q) / (2 (1 + q))``; with
    ``e = exp(-|u|)``, ``a (1 - a) = e / (1 + e)^2``.  Any amplifier works in
    float32 and float64, and ``a >= 1/2`` exactly where ``sigmoid(z) >= 1/2`` in
    floating point (the rule ``predict`` applies).
    """
    q = math.exp(-abs(z))
    r = 1.0 / (1.0 + q)
    u = 0.5 * amplifier * (1.0 - q) * r
    e = math.exp(-u)
    ra = 1.0 / (1.0 + e)
    a = ra if z >= 0.0 else e * ra
    return a, amplifier * (e * ra * ra) * (q * r * r)


@njit(inline="always")
def _sigmoid_softplus(t):
    """``(sigmoid(t), log(1 + exp(t)))`` without overflow or cancellation."""
    q = math.exp(-abs(t))
    r = 1.0 / (1.0 + q)
    return (r if t >= 0.0 else q * r), max(t, 0.0) + math.log1p(q)


@njit(inline="always")
def _epoch_impl(X, y, sw, theta, amplifier, logistic, part):
    """One pass over ``X``: per-chunk sums into ``part`` (n_chunks, 2 d + 4).

    Row ``c`` of ``part`` receives, over the rows of chunk ``c``:
    ``[sum_{y=1} h x (d), sum_{y=0} h x (d), sum_{y=1} h, sum_{y=0} h,
    TP = sum_{y=1} s a, FP = sum_{y=0} s a]``.

    With ``logistic`` the same sums serve the log-loss of the warm-up:
    ``h = s sigmoid(-z)`` for positives and ``s sigmoid(z)`` for negatives
    (minus and plus the derivative of the row's log-loss), and the last two
    slots hold the class-wise log-loss sums instead of TP and FP.
    """
    n, d = X.shape
    n_chunks = part.shape[0]
    weighted = sw.shape[0] > 0
    unit = 1.0 / n
    w = theta[:d].copy()  # a private copy: no aliasing with the outputs
    b = theta[d]
    for c in prange(n_chunks):
        # Chunk-local accumulators, written to ``part`` once at the end.
        acc1 = np.zeros(d)
        acc0 = np.zeros(d)
        h1 = 0.0
        h0 = 0.0
        tp = 0.0
        fp = 0.0
        hb = np.empty(BLOCK_ROWS)
        start = c * CHUNK_ROWS
        stop = min(start + CHUNK_ROWS, n)
        # Blocks of rows in three stages (scores, amplification, accumulation)
        # so that independent rows overlap instead of waiting on exp's latency.
        for i0 in range(start, stop, BLOCK_ROWS):
            i1 = min(i0 + BLOCK_ROWS, stop)
            for i in range(i0, i1):
                hb[i - i0] = b + _dot(X[i], w, d)
            for i in range(i0, i1):
                s = sw[i] if weighted else unit
                if logistic:
                    z = hb[i - i0]
                    dadz, a = _sigmoid_softplus(-z if y[i] else z)
                else:
                    a, dadz = amplified(hb[i - i0], amplifier)
                hb[i - i0] = s * dadz
                if y[i]:
                    tp += s * a
                else:
                    fp += s * a
            for i in range(i0, i1):
                xi = X[i]
                h = hb[i - i0]
                if y[i]:
                    h1 += h
                    for j in range(d):
                        acc1[j] += h * xi[j]
                else:
                    h0 += h
                    for j in range(d):
                        acc0[j] += h * xi[j]
        part[c, :d] = acc1
        part[c, d : 2 * d] = acc0
        part[c, 2 * d] = h1
        part[c, 2 * d + 1] = h0
        part[c, 2 * d + 2] = tp
        part[c, 2 * d + 3] = fp


@njit(inline="always")
def _reduce_chunks(part, total):
    total[:] = 0.0
    for c in range(part.shape[0]):
        for k in range(part.shape[1]):
            total[k] += part[c, k]


@njit(inline="always")
def _loss_and_gradient(
    total, d, pos, neg, code, beta, alpha, fit_intercept, theta, grad
):
    """Loss ``1 - M + alpha/2 |w|^2`` and its gradient from the epoch's sums.

    ``pos`` and ``neg`` are the total weights of the two classes. With
    ``code == WARM_UP``, ``1 - M`` is replaced by the class-balanced log-loss
    ``L1 / (2 pos) + L0 / (2 neg)`` (``L1``, ``L0`` the class-wise sums).
    """
    tp = total[2 * d + 2]
    fp = total[2 * d + 3]
    if code == WARM_UP:
        value = 1.0 - (tp / (2.0 * pos) + fp / (2.0 * neg))
        g1 = 0.5 / pos
        g0 = -0.5 / neg
    else:
        fn = max(pos - tp, 0.0)
        tn = max(neg - fp, 0.0)
        value, d_tn, d_fp, d_fn, d_tp = _metric_and_partials(code, tn, fp, fn, tp, beta)
        g1 = d_tp - d_fn
        g0 = d_fp - d_tn
    penalty = 0.0
    for j in range(d):
        grad[j] = -(g1 * total[j] + g0 * total[d + j]) + alpha * theta[j]
        penalty += theta[j] * theta[j]
    if fit_intercept:
        grad[d] = -(g1 * total[2 * d] + g0 * total[2 * d + 1])
    else:
        grad[d] = 0.0
    return 1.0 - value + 0.5 * alpha * penalty


def _loss_grad_source(
    X, y, sw, theta, pos, neg, code, beta, amplifier, alpha, fit_intercept
):
    """Loss and gradient at ``theta`` (one epoch, no update)."""
    n, d = X.shape
    part = np.empty(((n + CHUNK_ROWS - 1) // CHUNK_ROWS, 2 * d + 4))
    total = np.empty(2 * d + 4)
    grad = np.empty(d + 1)
    _epoch_impl(X, y, sw, theta, amplifier, code == WARM_UP, part)
    _reduce_chunks(part, total)
    loss = _loss_and_gradient(
        total, d, pos, neg, code, beta, alpha, fit_intercept, theta, grad
    )
    return loss, grad, total


def _fit_source(
    X,
    y,
    sw,
    theta,
    pos,
    neg,
    code,
    beta,
    amplifier,
    alpha,
    fit_intercept,
    solver,
    learning_rate,
    beta_1,
    beta_2,
    epsilon,
    max_iter,
    use_tol,
    tol,
    n_iter_no_change,
    loss_curve,
):
    """Full-batch training loop, updating ``theta`` in place.

    With ``code == WARM_UP`` it minimises the class-balanced log-loss instead
    of ``1 - M``. Returns the number of iterations run, or ``-k``
    if the loss, the gradient or the parameters became non-finite at
    iteration ``k``.
    """
    n, d = X.shape
    part = np.empty(((n + CHUNK_ROWS - 1) // CHUNK_ROWS, 2 * d + 4))
    total = np.empty(2 * d + 4)
    grad = np.empty(d + 1)
    m = np.zeros(d + 1)
    v = np.zeros(d + 1)
    best = np.inf
    no_improvement = 0
    n_iter = 0
    logistic = code == WARM_UP
    for it in range(max_iter):
        _epoch_impl(X, y, sw, theta, amplifier, logistic, part)
        _reduce_chunks(part, total)
        loss = _loss_and_gradient(
            total, d, pos, neg, code, beta, alpha, fit_intercept, theta, grad
        )
        finite = math.isfinite(loss)
        for j in range(d + 1):
            finite = finite and math.isfinite(grad[j])
        if not finite:
            return -(it + 1)
        loss_curve[it] = loss
        n_iter = it + 1
        if solver == 0:
            t = it + 1
            step = learning_rate * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
            for j in range(d + 1):
                m[j] = beta_1 * m[j] + (1.0 - beta_1) * grad[j]
                v[j] = beta_2 * v[j] + (1.0 - beta_2) * grad[j] * grad[j]
                theta[j] -= step * m[j] / (math.sqrt(v[j]) + epsilon)
        else:
            for j in range(d + 1):
                theta[j] -= learning_rate * grad[j]
        for j in range(d + 1):
            finite = finite and math.isfinite(theta[j])
        if not finite:
            return -(it + 1)
        if use_tol:
            if loss > best - tol:
                no_improvement += 1
            else:
                no_improvement = 0
            if loss < best:
                best = loss
            if no_improvement >= n_iter_no_change:
                break
    return n_iter


def _jit_variant(source, parallel):
    """Compile ``source`` once per variant under its own name.

    Numba's on-disk cache is keyed by the function's qualified name, so each
    variant gets a distinct one.
    """
    suffix = "_parallel" if parallel else "_serial"
    fn = types.FunctionType(
        source.__code__,
        source.__globals__,
        source.__name__ + suffix,
        source.__defaults__,
        source.__closure__,
    )
    fn.__qualname__ = source.__qualname__ + suffix
    fn.__doc__ = source.__doc__
    return njit(parallel=parallel, nogil=True, cache=True)(fn)


class _Variants:
    """The serial and the parallel build of one kernel."""

    def __init__(self, source):
        self.serial = _jit_variant(source, parallel=False)
        self.parallel = _jit_variant(source, parallel=True)


fit_linear = _Variants(_fit_source)
loss_grad_linear = _Variants(_loss_grad_source)


# --------------------------------------------------------------------------
# Multi-layer perceptron
#
# Layer widths ``dims = [n_features, h_1, ..., h_k, n_outputs]``.  All weights
# and biases live in one float64 vector ``theta``: for layer ``l`` the matrix
# ``W_l`` (dims[l], dims[l + 1]), row-major, then the bias ``b_l``.  Matrix
# products call BLAS through ``np.dot``; for large batches BLAS runs them on
# several threads and partitions the output, so results do not depend on the
# thread count.  Output unit ``k`` gives ``p_k = sigmoid(z_k)`` and is trained
# on ``1 - M`` of its own soft confusion matrix (one-vs-rest) plus
# ``log_loss`` times the batch's class-balanced log-loss (the mean over the
# two classes of each class's mean log-loss); the batch loss is the mean over
# outputs plus ``alpha / (2 b) * sum |W_l|^2``, as in
# scikit-learn's MLPClassifier, with ``b`` the batch's total sample weight (its
# size when unweighted), so that a weight of 2 acts as a repeated row.

ACTIVATION_CODES = {"identity": 0, "logistic": 1, "tanh": 2, "relu": 3}


@njit(inline="always")
def _layer_offsets(dims):
    n_layers = dims.shape[0] - 1
    offsets = np.empty(n_layers + 1, dtype=np.int64)
    offsets[0] = 0
    for layer in range(n_layers):
        offsets[layer + 1] = offsets[layer] + (dims[layer] + 1) * dims[layer + 1]
    return offsets


@njit(inline="always")
def _weights(theta, dims, offsets, layer):
    start = offsets[layer]
    n_in = dims[layer]
    n_out = dims[layer + 1]
    W = theta[start : start + n_in * n_out].reshape((n_in, n_out))
    b = theta[start + n_in * n_out : offsets[layer + 1]]
    return W, b


@njit(inline="always")
def _activate(Z, code):
    """Apply the hidden activation in place.

    One loop per activation, so that each loop is branch-free and vectorises.
    """
    flat = Z.reshape(-1)
    if code == 1:
        for i in range(flat.shape[0]):
            # exp(-|z|) never overflows; both branches give sigmoid(z).
            e = math.exp(-abs(flat[i]))
            r = 1.0 / (1.0 + e)
            flat[i] = r if flat[i] >= 0.0 else e * r
    elif code == 2:
        for i in range(flat.shape[0]):
            flat[i] = math.tanh(flat[i])
    elif code == 3:
        for i in range(flat.shape[0]):
            flat[i] = max(flat[i], 0.0)


@njit(inline="always")
def _scale_by_derivative(delta, A, code):
    """``delta *= f'(z)``, with ``f'`` written in terms of ``A = f(z)``."""
    flat_d = delta.reshape(-1)
    flat_a = A.reshape(-1)
    if code == 1:
        for i in range(flat_d.shape[0]):
            flat_d[i] *= flat_a[i] * (1.0 - flat_a[i])
    elif code == 2:
        for i in range(flat_d.shape[0]):
            flat_d[i] *= 1.0 - flat_a[i] * flat_a[i]
    elif code == 3:
        for i in range(flat_d.shape[0]):
            flat_d[i] = flat_d[i] if flat_a[i] > 0.0 else 0.0


@njit(inline="always")
def _log_loss_terms(z, positive):
    """``(log-loss, d log-loss/dz)`` of one row with score ``z``."""
    if positive:
        sig, softplus = _sigmoid_softplus(-z)
        return softplus, -sig
    sig, softplus = _sigmoid_softplus(z)
    return softplus, sig


@njit(inline="always")
def _output_terms(z, positive, amplifier, log_loss):
    """``(A, dA/dz, log-loss, d log-loss/dz)`` of one row of an output unit
    with score ``z``; the log-loss terms are 0 when ``log_loss`` is 0."""
    a, dadz = amplified(z, amplifier)
    if log_loss == 0.0:
        return a, dadz, 0.0, 0.0
    ll, dll = _log_loss_terms(z, positive)
    return a, dadz, ll, dll


@njit(inline="always")
def _output_weights(tp, fp, pos, neg, log_pos, log_neg, code, beta, log_loss, K):
    """An output unit's ``(loss, g1, g0, w1, w0)`` from its batch sums.

    The sums are the soft TP and FP, the positive and negative masses and the
    weighted log-losses of the positives and the negatives.  The loss is
    ``(1 - M + log_loss * class-balanced log-loss) / K``; a row's
    ``d loss / dz`` is ``s * (g dA/dz + w d(log-loss)/dz)`` with the ``g``,
    ``w`` of its class (1 positive, 0 negative).  A class absent from the
    batch has no log-loss term.
    """
    value, d_tn, d_fp, d_fn, d_tp = _metric_and_partials(
        code, max(neg - fp, 0.0), fp, max(pos - tp, 0.0), tp, beta
    )
    w1 = 0.5 * log_loss / (pos * K) if pos > 0.0 else 0.0
    w0 = 0.5 * log_loss / (neg * K) if neg > 0.0 else 0.0
    loss = (1.0 - value) / K + w1 * log_pos + w0 * log_neg
    return loss, -(d_tp - d_fn) / K, -(d_fp - d_tn) / K, w1, w0


@njit(cache=True, nogil=True)
def mlp_forward(X, theta, dims, activation):
    """Output scores ``z`` (n, n_outputs) and the list of layer activations."""
    offsets = _layer_offsets(dims)
    n_layers = dims.shape[0] - 1
    acts = [X]
    for layer in range(n_layers):
        W, b = _weights(theta, dims, offsets, layer)
        Z = np.dot(acts[layer], W)
        Z += b
        if layer < n_layers - 1:
            _activate(Z, activation)
        acts.append(Z)
    return acts


@njit(cache=True, nogil=True)
def mlp_loss_grad(
    X, Y, s, theta, dims, activation, code, beta, amplifier, log_loss, l2, grad
):
    """Batch loss and its gradient (into ``grad``) with respect to ``theta``.

    ``X`` (b, d) float64, ``Y`` (b, n_outputs) 0/1 uint8, ``s`` (b,) weights
    summing to one; ``log_loss`` weighs the class-balanced log-loss; the
    penalty is ``l2 / 2 * sum |W_l|^2``.
    """
    offsets = _layer_offsets(dims)
    n_layers = dims.shape[0] - 1
    acts = mlp_forward(X, theta, dims, activation)
    Z = acts[n_layers]
    b, K = Z.shape
    delta = np.empty((b, K))
    d_log = np.empty(b)
    loss = 0.0
    for k in range(K):
        tp = 0.0
        fp = 0.0
        pos = 0.0
        neg = 0.0
        log_pos = 0.0
        log_neg = 0.0
        for i in range(b):
            a, dadz, ll, dll = _output_terms(Z[i, k], Y[i, k], amplifier, log_loss)
            delta[i, k] = s[i] * dadz
            d_log[i] = s[i] * dll
            if Y[i, k]:
                tp += s[i] * a
                pos += s[i]
                log_pos += s[i] * ll
            else:
                fp += s[i] * a
                neg += s[i]
                log_neg += s[i] * ll
        value, g1, g0, w1, w0 = _output_weights(
            tp, fp, pos, neg, log_pos, log_neg, code, beta, log_loss, K
        )
        for i in range(b):
            if Y[i, k]:
                delta[i, k] = g1 * delta[i, k] + w1 * d_log[i]
            else:
                delta[i, k] = g0 * delta[i, k] + w0 * d_log[i]
        loss += value
    penalty = 0.0
    for layer in range(n_layers - 1, -1, -1):
        W, _ = _weights(theta, dims, offsets, layer)
        gW, gb = _weights(grad, dims, offsets, layer)
        gW[:, :] = np.dot(acts[layer].T, delta) + l2 * W
        penalty += np.sum(W * W)
        for j in range(gb.shape[0]):
            gb[j] = np.sum(delta[:, j])
        if layer > 0:
            delta = np.dot(delta, W.T)
            _scale_by_derivative(delta, acts[layer], activation)
    return loss + 0.5 * l2 * penalty


@njit(cache=True, nogil=True)
def stratified_merge(members, offsets):
    """Merge the classes' sample lists so that every stretch holds the classes
    in proportion.

    Class ``c`` holds ``members[offsets[c]:offsets[c + 1]]``; its ``j``-th
    sample gets the key ``(j + 0.5) / n_c``.  Returns the samples ordered by
    key, ties by sample index: ``np.argsort(keys, kind="stable")`` of the
    keys indexed by sample, in one linear pass instead of a sort.
    """
    n_classes = offsets.shape[0] - 1
    n = offsets[n_classes]
    nexts = offsets[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for p in range(n):
        best = -1
        best_key = 0.0
        for c in range(n_classes):
            j = nexts[c]
            if j == offsets[c + 1]:
                continue
            size = offsets[c + 1] - offsets[c]
            key = (j - offsets[c] + 0.5) / size
            if (
                best < 0
                or key < best_key
                or (key == best_key and members[j] < members[nexts[best]])
            ):
                best = c
                best_key = key
        order[p] = members[nexts[best]]
        nexts[best] += 1
    return order


@njit(cache=True, nogil=True)
def mlp_epoch(
    X,
    Y,
    sw,
    order,
    theta,
    dims,
    activation,
    code,
    beta,
    amplifier,
    log_loss,
    alpha,
    batch_size,
    solver,
    learning_rate,
    momentum,
    beta_1,
    beta_2,
    epsilon,
    m,
    v,
    t,
    weight_total,
):
    """One pass over the rows ``order`` in mini-batches, updating ``theta``.

    ``solver`` 0 is Adam (moments ``m``, ``v``; ``t`` steps so far), 1 is SGD
    with momentum (velocity ``m``).  ``weight_total`` is the sum of the raw
    sample weights (``sw`` is normalised to sum to one).  Returns
    ``(mean batch loss, t)``, or a NaN loss if the loss, the gradient or the
    weights became non-finite.
    """
    n = order.shape[0]
    d = X.shape[1]
    K = Y.shape[1]
    weighted = sw.shape[0] > 0
    grad = np.empty_like(theta)
    total = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        b = stop - start
        Xb = np.empty((b, d))
        Yb = np.empty((b, K), dtype=np.uint8)
        sb = np.empty(b)
        for r in range(b):
            i = order[start + r]
            for j in range(d):
                Xb[r, j] = X[i, j]
            for k in range(K):
                Yb[r, k] = Y[i, k]
            sb[r] = sw[i] if weighted else 1.0
        mass = np.sum(sb)
        if not mass > 0.0:
            continue  # every sample of this batch has zero weight
        sb /= mass
        l2 = alpha / (mass * weight_total if weighted else mass)
        loss = mlp_loss_grad(
            Xb,
            Yb,
            sb,
            theta,
            dims,
            activation,
            code,
            beta,
            amplifier,
            log_loss,
            l2,
            grad,
        )
        t += 1
        finite = math.isfinite(loss)
        if solver == 0:
            step = learning_rate * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
            for j in range(theta.shape[0]):
                m[j] = beta_1 * m[j] + (1.0 - beta_1) * grad[j]
                v[j] = beta_2 * v[j] + (1.0 - beta_2) * grad[j] * grad[j]
                theta[j] -= step * m[j] / (math.sqrt(v[j]) + epsilon)
                finite = finite and math.isfinite(theta[j])
        else:
            for j in range(theta.shape[0]):
                m[j] = momentum * m[j] - learning_rate * grad[j]
                theta[j] += m[j]
                finite = finite and math.isfinite(theta[j])
        if not finite:
            return np.nan, t
        total += loss * b
    return total / n, t
