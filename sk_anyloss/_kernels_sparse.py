"""Numba CPU kernels for sparse ``X`` (CSR / CSC), and the sparse backends of
the two models: the protocol of ``_kernels_cpu``'s backends.

A dense pass reads a row once and adds ``h_i x_i`` into per-chunk partial
sums of ``d`` entries; with ``d`` in the hundreds of thousands (one-hot
features, text), per-chunk vectors of ``d`` entries would take more memory
than the data.  So a sparse iteration reads the nonzeros twice, as
``X @ w`` and ``X.T @ g`` do, both times by rows (CSR):

1. **scores and terms** (parallel over rows): each row's scores ``z_i``, then
   each row's terms, ``H`` (n, q), the coefficients of ``x_i`` in the
   gradient sums, and the small per-chunk sums (soft counts, class masses,
   ``sum h``) that the dense passes add up too;
2. **the transposed product** ``X.T @ H``, scattered from the rows into one
   accumulator per partition of the rows (:func:`_transposed_product`).

The sums are laid out as the dense passes lay out theirs, so what follows a
pass (the metric, the loss and its gradient, the optimiser's step, the
stopping rule) is ``_kernels_cpu``'s own code.  Every sum runs in a fixed
order (chunks of ``CHUNK_ROWS`` rows; partitions fixed by the shape): the
model does not depend on the number of threads.  It equals the dense fit up
to the order of the terms of each sum.

A CSC matrix is converted to CSR once per fit (one copy of the nonzeros); a
CSR one is used as it is.
"""

import math
import types
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from . import _kernels_cpu as cpu
from ._kernels_cpu import (
    CHUNK_ROWS,
    RUNNING,
    STATUS,
    _chunk,
    _end_iteration,
    _log_loss,
    _metric_step,
    _reduce_chunks,
    _rows_gradient,
    _sigmoid_softplus,
    _update,
    _Variants,
    amplified,
    batch_targets,
    label_width,
    n_chunks,
    per_output,
    samples_row,
    softmax_block_counts,
    softmax_block_log_loss,
    softmax_block_terms,
    softmax_scratch,
    upper_loss_grads,
)


class Compressed(NamedTuple):
    """A CSR (or CSC) matrix as the kernels take it: row (column) pointers,
    column (row) indices, values; ``n_cols`` the length of the other axis."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_cols: int


def compressed(matrix):
    """:class:`Compressed` of a SciPy CSR or CSC matrix or array."""
    return Compressed(
        matrix.indptr, matrix.indices, matrix.data,
        matrix.shape[1] if matrix.format == "csr" else matrix.shape[0],
    )  # fmt: skip


def rows_of(X):
    """``X`` as CSR (:class:`Compressed`), converted once if it is CSC."""
    return compressed(X if X.format == "csr" else X.tocsr())


# --------------------------------------------------------------------------
# Passes


@njit(inline="always")
def _row_dot(R, i, theta, o):
    """``theta[o + d] + sum_p data[p] theta[o + indices[p]]`` over row ``i``."""
    s = theta[o + R.n_cols]
    for p in range(R.indptr[i], R.indptr[i + 1]):
        s += R.data[p] * theta[o + R.indices[p]]
    return s


@njit(inline="always")
def _scores(R, theta, Z):
    """``Z[i, k] = b_k + x_i . w_k`` for every row (``theta`` laid out as
    ``[w_k, b_k]`` rows)."""
    n, m = Z.shape
    d1 = R.n_cols + 1
    for i in prange(n):
        for k in range(m):
            Z[i, k] = _row_dot(R, i, theta, k * d1)


# The transposed product is scattered from the rows into one accumulator per
# partition of the rows (each ``q d`` entries), added in partition order: a
# fixed number of partitions, from the shape alone (never the thread count),
# with at most ``PARTITION_ENTRIES`` accumulator entries in all.
MAX_PARTITIONS = 16
PARTITION_ENTRIES = 1 << 20


@njit(inline="always")
def n_partitions(n, q, d):
    """Partitions of the rows of a transposed product (see above)."""
    by_memory = PARTITION_ENTRIES // max(q * d, 1)
    return max(1, min(MAX_PARTITIONS, by_memory, n_chunks(n)))


@njit(inline="always")
def _transposed_product(R, H, out):
    """``out[k, j] = sum_i H[i, k] X[i, j]`` (``X.T @ H``, transposed): each
    partition of the rows scatters its rows' nonzeros, in row order, into its
    own accumulator; the partitions run in parallel and are added in order.
    SciPy's ``X.T @ g`` on CSR scatters likewise (one accumulator)."""
    n, q = H.shape
    d = out.shape[1]
    P = n_partitions(n, q, d)
    per = ((n_chunks(n) + P - 1) // P) * CHUNK_ROWS
    acc = np.zeros((P, d * q))
    for part in prange(P):
        a = acc[part]
        for i in range(part * per, min((part + 1) * per, n)):
            for p in range(R.indptr[i], R.indptr[i + 1]):
                o = R.indices[p] * q
                v = R.data[p]
                for k in range(q):
                    a[o + k] += H[i, k] * v
    for j in range(d):
        for k in range(q):
            s = 0.0
            for part in range(P):
                s += acc[part, j * q + k]
            out[k, j] = s


@njit(inline="always")
def _labels_rows(R, Y, sw, theta, amplifier, logistic, part, acc):
    """A labels pass in one read of the nonzeros (see
    ``_kernels_cpu._labels_pass``): each row's score, its ``h`` (``s dA/dz``,
    or the log-loss's with ``logistic``), and ``h x_i`` scattered at once
    into its partition's accumulator ``acc[p]`` (two rows of ``d`` per
    label: ``sum_{y=1} h x``, ``sum_{y=0} h x``); per chunk, label ``l``'s
    ``[sum_{y=1} h, sum_{y=0} h, TP, FP]`` in ``part[c, 4 l : 4 l + 4]``."""
    n, L = Y.shape
    d = R.n_cols
    P = acc.shape[0]
    per = (part.shape[0] + P - 1) // P
    for pt in prange(P):
        a_p = acc[pt]
        a_p[:] = 0.0
        hb = np.empty((CHUNK_ROWS, L))
        for c in range(pt * per, min((pt + 1) * per, part.shape[0])):
            sums = np.zeros(4 * L)
            start = c * CHUNK_ROWS
            stop = min(start + CHUNK_ROWS, n)
            # Two stages per chunk: the rows' h (reads only), then the
            # scatter; fused in one row loop, every load waited on the
            # previous row's stores (measured twice as slow).
            for i in range(start, stop):
                s = sw[i]
                for lab in range(L):
                    z = _row_dot(R, i, theta, lab * (d + 1))
                    if logistic:
                        dadz, a = _sigmoid_softplus(-z if Y[i, lab] else z)
                    else:
                        a, dadz = amplified(z, amplifier)
                    h = s * dadz
                    hb[i - start, lab] = h
                    if Y[i, lab]:
                        sums[4 * lab] += h
                        sums[4 * lab + 2] += s * a
                    else:
                        sums[4 * lab + 1] += h
                        sums[4 * lab + 3] += s * a
            for i in range(start, stop):
                for lab in range(L):
                    h = hb[i - start, lab]
                    slot = 2 * lab if Y[i, lab] else 2 * lab + 1
                    row = a_p[slot]
                    for p in range(R.indptr[i], R.indptr[i + 1]):
                        row[R.indices[p]] += h * R.data[p]
            part[c] = sums


@njit(inline="always")
def _labels_total(acc, sums, d, total):
    """The dense labels pass's sums (``_kernels_cpu._labels_pass``, added
    up) from the partitions' accumulators, added in order, and the chunks'
    sums."""
    L = sums.shape[0] // 4
    width = label_width(d)
    for lab in range(L):
        o = lab * width
        for j in range(d):
            s1 = 0.0
            s0 = 0.0
            for pt in range(acc.shape[0]):
                s1 += acc[pt, 2 * lab, j]
                s0 += acc[pt, 2 * lab + 1, j]
            total[o + j] = s1
            total[o + d + j] = s0
        for k in range(4):
            total[o + 2 * d + k] = sums[4 * lab + k]


@njit(inline="always")
def _rows_total(out, sums, d, total):
    """The dense rows passes' sums (laid out as ``theta``, then the value if
    ``total`` has room) from ``X.T @ H`` and the chunks' sums (``sum_i H[i,
    k]`` for each output, then the value)."""
    m = out.shape[0]
    for k in range(m):
        o = k * (d + 1)
        for j in range(d):
            total[o + j] = out[k, j]
        total[o + d] = sums[k]
    if total.shape[0] > m * (d + 1):
        total[m * (d + 1)] = sums[m]


@njit(inline="always")
def _samples_terms(Z, Y, sw, amplifier, metric, params, H, part):
    """Each row's terms for ``average="samples"`` (see
    ``_kernels_cpu._samples_pass``): ``H[i, l] = s_i dM_i/dz_il``; per chunk,
    ``sum H[:, l]`` and ``sum s_i M_i``."""
    n, L = Z.shape
    for c in prange(part.shape[0]):
        start = c * CHUNK_ROWS
        stop = min(start + CHUNK_ROWS, n)
        acc = np.zeros(L + 1)
        cm = np.empty(4)
        partials = np.empty(4)
        for i in range(start, stop):
            acc[L] += samples_row(Z[i], Y[i], sw[i], amplifier, metric, params, cm,
                                  partials, H[i])  # fmt: skip
            for lab in range(L):
                acc[lab] += H[i, lab]
        part[c] = acc


@njit(inline="always")
def _class_major(Z, start, m):
    """Rows ``start`` to ``start + m`` of ``Z``, transposed (a copy)."""
    K = Z.shape[1]
    out = np.empty((K, m))
    for i in range(m):
        for k in range(K):
            out[k, i] = Z[start + i, k]
    return out


@njit(inline="always")
def _softmax_counts(Z, y, sw, amplifier, P, A, tops, part):
    """``_kernels_cpu.softmax_counts`` from the scores ``Z`` (rows): each
    chunk's scores transposed, then ``_kernels_cpu.softmax_block_counts``."""
    n, K = Z.shape
    for c in prange(part.shape[0]):
        start, stop, m = _chunk(c, n)
        acc = np.zeros(K * K)
        softmax_block_counts(_class_major(Z, start, m), m, y[start:stop],
                             sw[start:stop], amplifier, P[c], A[c], tops[c],
                             acc)  # fmt: skip
        part[c] = acc


@njit(inline="always")
def _rows_of_block(Hc, start, H, acc):
    """A chunk's class-major terms ``Hc`` into rows ``start`` on of ``H``;
    ``acc[k]`` receives ``sum Hc[k, :]``."""
    K, m = Hc.shape
    for k in range(K):
        total = 0.0
        for i in range(m):
            H[start + i, k] = Hc[k, i]
            total += Hc[k, i]
        acc[k] = total


@njit(inline="always")
def _softmax_terms(P, A, tops, y, sw, amplifier, D, H, part):
    """Each row's gradient terms into ``H`` (rows), from
    ``_kernels_cpu.softmax_block_terms`` (``P``, ``A``, ``tops`` of
    :func:`_softmax_counts`); per chunk, ``sum H[:, k]``."""
    n, K = H.shape
    for c in prange(part.shape[0]):
        start, stop, m = _chunk(c, n)
        Hc = np.empty((K, m))
        softmax_block_terms(P[c], A[c], tops[c], m, y[start:stop], sw[start:stop],
                            amplifier, D, Hc)  # fmt: skip
        _rows_of_block(Hc, start, H, part[c])


@njit(inline="always")
def _softmax_log_loss_terms(Z, y, sw, weights, H, part):
    """The warm-up's terms of the scores ``Z`` into ``H`` (rows), from
    ``_kernels_cpu.softmax_block_log_loss``; per chunk, ``sum H[:, k]``,
    then the log-loss."""
    n, K = H.shape
    for c in prange(part.shape[0]):
        start, stop, m = _chunk(c, n)
        Hc = np.empty((K, m))
        loss = softmax_block_log_loss(_class_major(Z, start, m), m, y[start:stop],
                                      sw[start:stop], weights, Hc)  # fmt: skip
        _rows_of_block(Hc, start, H, part[c])
        part[c, K] = loss


# --------------------------------------------------------------------------
# Compiled loops


@njit(inline="always")
def _labels_pass(R, Y, sw, theta, amplifier, logistic, part, sums, acc, total):
    """One sparse labels pass at ``theta``: ``total`` as the dense pass's
    sums; the other arrays are scratch (see :func:`_labels_scratch`)."""
    _labels_rows(R, Y, sw, theta, amplifier, logistic, part, acc)
    _reduce_chunks(part, sums)
    _labels_total(acc, sums, R.n_cols, total)


@njit(inline="always")
def _labels_scratch(R, Y):
    """Scratch of a labels pass: the chunks' sums and their total, the
    partitions' accumulators and the pass's sums."""
    n, L = Y.shape
    d = R.n_cols
    return (
        np.empty((n_chunks(n), 4 * L)), np.empty(4 * L),
        np.empty((n_partitions(n, 2 * L, d), 2 * L, d)),
        np.empty(L * label_width(d)),
    )  # fmt: skip


def _fit_labels_source(R, target, sw, theta, settings, metric, params, state,
                       curve, max_calls):  # fmt: skip
    """``_kernels_cpu._fit_source`` on sparse ``X``."""
    part, sums, acc, total = _labels_scratch(R, target.Y)
    grad = np.empty(theta.shape[0])
    for _ in range(max_calls):
        if state.counts[STATUS] != RUNNING:
            break
        _labels_pass(R, target.Y, sw, theta, settings.amplifier, False, part, sums,
                     acc, total)  # fmt: skip
        _metric_step(total, target, theta, grad, settings, metric, params, state,
                     curve)  # fmt: skip
    return state.counts[STATUS]


def _labels_log_loss_grad_source(R, target, sw, theta, alpha, fit_intercept, grad):
    """``_kernels_cpu._log_loss_grad_source`` on sparse ``X``."""
    part, sums, acc, total = _labels_scratch(R, target.Y)
    _labels_pass(R, target.Y, sw, theta, 1.0, True, part, sums, acc, total)
    return _log_loss(total, target, alpha, fit_intercept, theta, grad)


def _fit_samples_source(R, target, sw, theta, settings, metric, params, state,
                        curve, max_calls):  # fmt: skip
    """``_kernels_cpu._fit_samples_source`` on sparse ``X``."""
    n, L = target.Y.shape
    d = R.n_cols
    Z = np.empty((n, L))
    H = np.empty((n, L))
    part = np.empty((n_chunks(n), L + 1))
    sums = np.empty(L + 1)
    out = np.empty((L, d))
    total = np.empty(L * (d + 1) + 1)
    grad = np.empty(theta.shape[0])
    for _ in range(max_calls):
        if state.counts[STATUS] != RUNNING:
            break
        _scores(R, theta, Z)
        _samples_terms(Z, target.Y, sw, settings.amplifier, metric, params, H, part)
        _reduce_chunks(part, sums)
        _transposed_product(R, H, out)
        _rows_total(out, sums, d, total)
        squares = _rows_gradient(
            total, d, -1.0, settings.alpha, settings.fit_intercept, theta, grad
        )
        loss = 1.0 - total[L * (d + 1)] + 0.5 * settings.alpha * squares
        _end_iteration(loss, theta, grad, settings, state, curve)
    return state.counts[STATUS]


def _fit_softmax_source(R, target, sw, theta, settings, metric, params, state,
                        curve, max_calls, scratch):  # fmt: skip
    """``_kernels_cpu._fit_softmax_source`` on sparse ``X``: the scores, the
    counts and the gradient's terms from them, then ``X.T @ H``; the
    nonzeros are read twice an iteration.  ``scratch``: the scores ``Z``, the
    arrays of ``_kernels_cpu.softmax_scratch`` and ``H`` (see
    :meth:`LinearBackend._scratch`)."""
    K = target.weights.shape[0]
    n = target.y.shape[0]
    d = R.n_cols
    Z, P, A, tops, H = scratch
    counts = np.empty((n_chunks(n), K * K))
    part = np.empty((n_chunks(n), K))
    sums = np.empty(K)
    out = np.empty((K, d))
    total = np.empty(K * (d + 1))
    Cm = np.empty(K * K)
    D = np.empty((K, K))
    grad = np.empty(theta.shape[0])
    amplifier = settings.amplifier
    for _ in range(max_calls):
        if state.counts[STATUS] != RUNNING:
            break
        _scores(R, theta, Z)
        _softmax_counts(Z, target.y, sw, amplifier, P, A, tops, counts)
        _reduce_chunks(counts, Cm)
        value = metric(Cm.ctypes, K, target.scale, params.ctypes, D.ctypes)
        _softmax_terms(P, A, tops, target.y, sw, amplifier, D, H, part)
        _reduce_chunks(part, sums)
        _transposed_product(R, H, out)
        _rows_total(out, sums, d, total)
        squares = _rows_gradient(
            total, d, -1.0, settings.alpha, settings.fit_intercept, theta, grad
        )
        loss = 1.0 - value + 0.5 * settings.alpha * squares
        _end_iteration(loss, theta, grad, settings, state, curve)
    return state.counts[STATUS]


def _softmax_log_loss_grad_source(R, target, sw, theta, alpha, fit_intercept,
                                  grad):  # fmt: skip
    """``_kernels_cpu._softmax_log_loss_grad_source`` on sparse ``X``."""
    K = target.weights.shape[0]
    n = target.y.shape[0]
    d = R.n_cols
    Z = np.empty((n, K))
    H = np.empty((n, K))
    part = np.empty((n_chunks(n), K + 1))
    sums = np.empty(K + 1)
    out = np.empty((K, d))
    total = np.empty(K * (d + 1) + 1)
    _scores(R, theta, Z)
    _softmax_log_loss_terms(Z, target.y, sw, target.weights, H, part)
    _reduce_chunks(part, sums)
    _transposed_product(R, H, out)
    _rows_total(out, sums, d, total)
    squares = _rows_gradient(total, d, 1.0, alpha, fit_intercept, theta, grad)
    return total[K * (d + 1)] + 0.5 * alpha * squares


def _labels_pass_source(R, Y, sw, theta, amplifier, logistic):
    """One sparse labels pass: the dense pass's sums (for tests)."""
    part, sums, acc, total = _labels_scratch(R, Y)
    _labels_pass(R, Y, sw, theta, amplifier, logistic, part, sums, acc, total)
    return total


fit_linear = _Variants(_fit_labels_source)
fit_samples = _Variants(_fit_samples_source)
fit_softmax = _Variants(_fit_softmax_source)
log_loss_grad = _Variants(_labels_log_loss_grad_source)
softmax_log_loss_grad = _Variants(_softmax_log_loss_grad_source)
linear_pass = _Variants(_labels_pass_source)


class LinearBackend(cpu.LinearBackend):
    """The linear model's full-batch passes over one sparse ``X`` (a SciPy
    CSR or CSC matrix or array), on the CPU: ``_kernels_cpu.LinearBackend``
    with the sparse loops."""

    KERNELS = types.SimpleNamespace(
        labels=fit_linear, samples=fit_samples, classes=fit_softmax,
        log_loss=log_loss_grad, classes_log_loss=softmax_log_loss_grad,
    )  # fmt: skip
    _data = staticmethod(rows_of)

    @staticmethod
    def _pass_entries(R):
        # two entries a nonzero: its value and its index
        return 2 * int(R.data.shape[0])

    def _scratch(self, target):
        """The dense backend's work arrays, with the scores ``Z`` before
        them and the rows' terms ``H`` after (see ``_fit_softmax_source``)."""
        n = self._sw.shape[0]
        K = target.weights.shape[0]
        return (np.empty((n, K)),) + softmax_scratch(n, K) + (np.empty((n, K)),)


# --------------------------------------------------------------------------
# Multi-layer perceptron: the first layer's products on sparse rows


@njit(inline="always")
def _first_layer(R, order, start, stop, theta, n_out, out):
    """``out = X[rows] @ W_1 + b_1`` for the rows ``order[start:stop]``
    (``W_1`` (d, n_out), then ``b_1``, at the start of ``theta``), from the
    rows' nonzeros."""
    b0 = R.n_cols * n_out
    for r in range(stop - start):
        i = order[start + r]
        for k in range(n_out):
            out[r, k] = theta[b0 + k]
        for p in range(R.indptr[i], R.indptr[i + 1]):
            v = R.data[p]
            o = R.indices[p] * n_out
            for k in range(n_out):
                out[r, k] += v * theta[o + k]


@njit(inline="always")
def _first_layer_grad(R, order, start, stop, delta, theta, n_out, l2, grad):
    """The first layer's gradient ``[X[rows], 1].T @ delta + l2 [W_1, 0]``
    into ``grad``, scattered from the rows' nonzeros in row order."""
    b0 = R.n_cols * n_out
    for e in range(b0):
        grad[e] = l2 * theta[e]
    for r in range(stop - start):
        i = order[start + r]
        for p in range(R.indptr[i], R.indptr[i + 1]):
            v = R.data[p]
            o = R.indices[p] * n_out
            for k in range(n_out):
                grad[o + k] += v * delta[r, k]
    for k in range(n_out):
        s = 0.0
        for r in range(stop - start):
            s += delta[r, k]
        grad[b0 + k] = s


def _mlp_epoch_source(R, Y, sw, scale, order, theta, dims, settings, metric, params,
                      state):  # fmt: skip
    """``_kernels_cpu._mlp_epoch_source`` on sparse rows ``R`` (CSR): the first
    layer's products from the nonzeros, the layers above as on dense data."""
    n = order.shape[0]
    n_out = dims[1]
    batch_size = settings.batch_size
    grad = np.empty_like(theta)
    total = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        Yb, sb, mass = batch_targets(Y, sw, order, start, stop)
        if not mass > 0.0:
            continue  # every sample of this batch has zero weight
        count = mass * scale
        l2 = settings.alpha / count
        Z1 = np.empty((stop - start, n_out))
        _first_layer(R, order, start, stop, theta, n_out, Z1)
        loss, delta = upper_loss_grad(  # noqa: F821 (a global of each build: per_output)
            Z1, Yb, sb, theta, dims, settings, metric, params, l2, count, grad
        )
        _first_layer_grad(R, order, start, stop, delta, theta, n_out, l2, grad)
        finite = _update(settings.optimizer, theta, grad, state)
        if not (finite and math.isfinite(loss)):
            return np.nan
        total += loss * (stop - start)
    return total / n


mlp_epochs = per_output(
    _mlp_epoch_source,
    njit(cache=True, nogil=True, error_model="numpy"),
    lambda code: {"upper_loss_grad": upper_loss_grads[code]},
)


class MLPBackend(cpu.MLPBackend):
    """The MLP's mini-batch epochs over one sparse ``(X, Y)``, on the CPU:
    ``_kernels_cpu.MLPBackend`` with the sparse epoch."""

    EPOCHS = mlp_epochs
    _data = staticmethod(rows_of)
