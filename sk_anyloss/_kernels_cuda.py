"""numba.cuda kernels, and the CUDA backends of the two models: the GPU
siblings of ``_kernels_cpu``, with the same names and protocol.

This is the only module that imports ``numba.cuda``; it is imported only once
a ``device`` parameter has resolved to ``"cuda"`` (see ``_backend``).

Conventions are those of ``_kernels_cpu``: ``X`` (n_samples, n_features) is
float32 or float64 and is never upcast, per-row arithmetic and every
accumulator is float64, ``y`` / ``Y`` hold 0/1 as uint8, sample weights are
a float64 array, the parameters are one float64 vector ``theta``.  What
follows a pass (the confusion matrix, the loss and its gradient, the
optimiser's step and the stopping rule), the amplification, the dot product
and the output unit's terms are compiled from the CPU kernels' source
(:func:`_device_function`), and the optimiser from ``_optim``'s, so the two
backends cannot drift apart.

numba.cuda has no first-class functions: the metric is compiled into the
small kernels that apply it (:func:`device_metric_call`), once per metric and
process: one thread after a pass, or one thread per row for
``average="samples"`` (each row's own metric); the kernels that read ``X``
do not depend on it.

Data go to the GPU once per backend; the training loops run there, and only
the parameters, the loss curve and a status word come back.

Determinism: every sum is a fixed tree.  The linear epoch runs on a grid
whose size depends on ``n_samples`` only (never on the GPU model); each block
walks its tiles of rows in a fixed order, reduces in shared memory, and
writes its partial sums to its own row of ``part``, which a second kernel adds
in block order.  Matrix products give each output element to one thread that
sums in index order.  No float atomics anywhere, so the same data, seed and
settings give the same model run to run.
"""

import math
import types
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import NamedTuple

import numpy as np
from numba import cuda, float64, uint8

from . import _kernels_cpu, _optim
from ._kernels_cpu import (
    RUNNING,
    STATUS,
    ClassesTarget,
    make_target,
    mlp_weights,
    normalised_weights,
)
from ._metrics_multi import LABELS, MATRIX, work_size
from ._settings import SOFTMAX

# Launch geometry.  Module constants, read at each fit: the tests lower them so
# that the multi-block and grid-stride paths run on the CUDA simulator.
THREADS_PER_BLOCK = 256  # a power of two
MAX_BLOCKS = 1024  # fixed, so that the sums' tree never depends on the GPU
TILE = 16  # matrix products: TILE x TILE threads per block
# Iterations between the host's looks at the linear solver's status; epochs
# queued after the loop has stopped return at once.
CHECK_EVERY = 32

_device_jit = cuda.jit(device=True)
_step_size, _update_at, _update, _track_best = _optim.build(_device_jit)


@_device_jit
def _exp(x):
    return math.exp(x)


def _device_function(cpu_function, **replace):
    """Compile the Python source of a CPU helper as a CUDA device function.

    ``replace`` swaps globals of that source for their CUDA builds; the CPU's
    vectorisable ``exp_neg`` is always the GPU's ``exp``.
    """
    fn = cpu_function.py_func
    env = dict(fn.__globals__)
    env["exp_neg"] = _exp
    env.update(replace)
    rebuilt = types.FunctionType(
        fn.__code__, env, fn.__name__, fn.__defaults__, fn.__closure__
    )
    return _device_jit(rebuilt)


amplified = _device_function(_kernels_cpu.amplified)
_sigmoid_softplus = _device_function(_kernels_cpu._sigmoid_softplus)
_dot = _device_function(_kernels_cpu._dot)
_binary_cm = _device_function(_kernels_cpu._binary_cm)
_gradient = _device_function(_kernels_cpu._gradient)
_rows_gradient = _device_function(_kernels_cpu._rows_gradient)
_label_width = _device_function(_kernels_cpu.label_width)
_labels_cms = _device_function(
    _kernels_cpu._labels_cms, label_width=_label_width, _binary_cm=_binary_cm
)
_labels_metric_loss = _device_function(
    _kernels_cpu._labels_metric_loss, label_width=_label_width, _gradient=_gradient
)
_log_loss = _device_function(
    _kernels_cpu._log_loss, label_width=_label_width, _gradient=_gradient
)
_softmax = _device_function(_kernels_cpu.softmax)
_softmax_jvp = _device_function(_kernels_cpu.softmax_jvp)
_amplified_softmax = _device_function(_kernels_cpu.amplified_softmax, softmax=_softmax)
_softmax_metric_dz = _device_function(
    _kernels_cpu.softmax_metric_dz, softmax_jvp=_softmax_jvp
)
_end_iteration = _device_function(
    _kernels_cpu._end_iteration, _update=_update, _track_best=_track_best
)
_log_loss_terms = _device_function(
    _kernels_cpu._log_loss_terms, _sigmoid_softplus=_sigmoid_softplus
)
_output_terms = _device_function(
    _kernels_cpu._output_terms, amplified=amplified, _log_loss_terms=_log_loss_terms
)
_output_row = _device_function(_kernels_cpu._output_row, _output_terms=_output_terms)
_log_loss_weights = _device_function(_kernels_cpu._log_loss_weights)


@cache
def device_metric(metric):
    """``metric`` (a ``_metrics.Metric``) as a device function of its binary
    array form, ``value = f(cm, scale, params, partials)``; compiled once per
    process."""
    return metric.array_form(_device_jit, f"device_metric_{metric.key}")


@cache
def device_metric_call(metric):
    """``metric`` in either layout of ``_metrics_multi``, as the loops call
    it: ``f(layout, k, cm, cm2, scale, params, partials, partials2, work)``
    with ``cm`` and ``partials`` flat and ``cm2``, ``partials2`` the same
    memory as (k, k) matrices (the ``MATRIX`` layout), ``work`` scratch of
    ``_metrics_multi.work_size(layout, k)`` entries; and the ``MATRIX``
    form itself, ``g(C, scale, params, D, work)``."""
    binary = device_metric(metric)
    labels, matrix = metric.forms(_device_jit, f"device_metric_{metric.key}")

    @_device_jit
    def call(layout, k, cm, cm2, scale, params, partials, partials2, work):
        if layout == LABELS:
            if k == 1:
                return binary(cm, scale, params, partials)
            return labels(cm, scale, params, partials, work)
        return matrix(cm2, scale, params, partials2, work)

    return call, matrix


class MetricBuffers(NamedTuple):
    """Device buffers of a metric's counts, partials and scratch: flat
    (``cm``, ``partials``) and, for the ``MATRIX`` layout, the same memory as
    (k, k) matrices (``cm2``, ``partials2``)."""

    cm: object
    cm2: object
    partials: object
    partials2: object
    work: object


def metric_buffers(layout, k, stream=0):
    """:class:`MetricBuffers` of a metric called in ``layout`` with ``k``."""
    size = k * k if layout == MATRIX else 4 * k
    side = k if layout == MATRIX else 1
    cm = cuda.device_array(size, np.float64, stream=stream)
    partials = cuda.device_array(size, np.float64, stream=stream)
    return MetricBuffers(
        cm, cm.reshape(side, size // side), partials,
        partials.reshape(side, size // side),
        cuda.device_array(work_size(layout, k), np.float64, stream=stream),
    )  # fmt: skip


@_device_jit
def _activate(z, code):
    """Hidden activation of one value (codes of ``ACTIVATION_CODES``)."""
    if code == 1:
        e = math.exp(-abs(z))
        r = 1.0 / (1.0 + e)
        return r if z >= 0.0 else e * r
    elif code == 2:
        return math.tanh(z)
    elif code == 3:
        return max(z, 0.0)
    return z


@_device_jit
def _scale_by_derivative(delta, a, code):
    """``delta * f'(z)``, with ``f'`` written in terms of ``a = f(z)``."""
    if code == 1:
        return delta * (a * (1.0 - a))
    elif code == 2:
        return delta * (1.0 - a * a)
    elif code == 3:
        return delta if a > 0.0 else 0.0
    return delta


def _check_power_of_two(threads):
    if threads < 1 or threads & (threads - 1):
        raise ValueError(f"THREADS_PER_BLOCK must be a power of two, got {threads}.")


def _grid(count, threads):
    return min((count + threads - 1) // threads, MAX_BLOCKS)


@_device_jit
def _block_sums(red, t):
    """Add up ``red[q, :]`` for every ``q`` into ``red[q, 0]``: a fixed tree
    over the block's threads (``red.shape[1]``, a power of two); ``t`` is
    this thread's index."""
    stride = red.shape[1] // 2
    while stride > 0:
        if t < stride:
            for q in range(red.shape[0]):
                red[q, t] += red[q, t + stride]
        cuda.syncthreads()
        stride //= 2


# --------------------------------------------------------------------------
# Linear model
#
# A labels target (binary, multilabel) has a fused pass, as on the CPU: one
# kernel per pass reads ``X``, scores the rows and adds up the class-wise
# sums, with blocks along ``y`` for the labels.  The other targets (a
# softmax over classes, ``average="samples"``) go through the rows' scores
# ``Z`` (n, m): a kernel computes them, kernels of one thread per row turn
# them into each row's ``d loss / d z`` (``H``, and ``V`` a row's share of
# the loss where the pass needs it), and :func:`gradient_sums` adds up
# ``H^T [X, 1]``.  So such an iteration reads ``X`` twice, as the CPU's.


@lru_cache
def _linear_kernels(tpb):
    """The linear model's metric-free kernels for blocks of ``tpb`` threads."""
    _check_power_of_two(tpb)

    @cuda.jit
    def labels_pass(X, Y, sw, theta, amplifier, logistic, part, counts):
        """Block ``(k, l)``'s sums of label ``l`` over its tiles into
        ``part[k]`` (see ``_kernels_cpu._labels_pass``): label ``l``'s
        ``2 d + 4`` entries ``[sum_{y=1} h x, sum_{y=0} h x, sum_{y=1} h,
        sum_{y=0} h, TP, FP]``; with ``logistic``, the sums of the log-loss
        warm-up instead, as on the CPU."""
        if counts[STATUS] != RUNNING:
            return
        t = cuda.threadIdx.x
        blk = cuda.blockIdx.x
        lab = cuda.blockIdx.y
        n, d = X.shape
        o = lab * (2 * d + 4)
        w = theta[lab * (d + 1) : (lab + 1) * (d + 1)]
        h_tile = cuda.shared.array(tpb, float64)
        y_tile = cuda.shared.array(tpb, uint8)
        red = cuda.shared.array((4, tpb), float64)
        # Column j of this block's row of ``part`` belongs to thread j % tpb.
        for j in range(t, d, tpb):
            part[blk, o + j] = 0.0
            part[blk, o + d + j] = 0.0
        h1 = 0.0
        h0 = 0.0
        tp = 0.0
        fp = 0.0
        b = w[d]
        n_tiles = (n + tpb - 1) // tpb
        for tile in range(blk, n_tiles, cuda.gridDim.x):
            i0 = tile * tpb
            i = i0 + t
            h = 0.0
            yi = uint8(0)
            if i < n:
                z = b + _dot(X[i], w, d)
                yi = Y[i, lab]
                if logistic:
                    dadz, a = _sigmoid_softplus(-z if yi else z)
                else:
                    a, dadz = amplified(z, amplifier)
                s = sw[i]
                h = s * dadz
                if yi:
                    h1 += h
                    tp += s * a
                else:
                    h0 += h
                    fp += s * a
            h_tile[t] = h
            y_tile[t] = yi
            cuda.syncthreads()
            rows = min(tpb, n - i0)
            for j in range(t, d, tpb):
                acc1 = 0.0
                acc0 = 0.0
                for r in range(rows):
                    v = h_tile[r] * X[i0 + r, j]
                    if y_tile[r]:
                        acc1 += v
                    else:
                        acc0 += v
                part[blk, o + j] += acc1
                part[blk, o + d + j] += acc0
            cuda.syncthreads()
        red[0, t] = h1
        red[1, t] = h0
        red[2, t] = tp
        red[3, t] = fp
        cuda.syncthreads()
        _block_sums(red, t)
        if t == 0:
            for q in range(4):
                part[blk, o + 2 * d + q] = red[q, 0]

    @cuda.jit
    def reduce_part(part, total, counts):
        """``total[k] = sum over blocks of part[:, k]``; one block per column."""
        if counts[STATUS] != RUNNING:
            return
        t = cuda.threadIdx.x
        k = cuda.blockIdx.x
        red = cuda.shared.array((1, tpb), float64)
        s = 0.0
        for c in range(t, part.shape[0], tpb):
            s += part[c, k]
        red[0, t] = s
        cuda.syncthreads()
        _block_sums(red, t)
        if t == 0:
            total[k] = red[0, 0]

    @cuda.jit
    def log_loss(total, theta, grad, target, alpha, fit_intercept, out):
        """The warm-up's loss (``out[0]``) and gradient from a logistic pass."""
        out[0] = _log_loss(total, target, alpha, fit_intercept, theta, grad)

    @cuda.jit
    def scores(X, theta, Z, counts):
        """``Z[i, k] = b_k + x_i . w_k``; one thread per row."""
        if counts[STATUS] != RUNNING:
            return
        n, d = X.shape
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            for k in range(Z.shape[1]):
                o = k * (d + 1)
                Z[i, k] = theta[o + d] + _dot(X[i], theta[o : o + d + 1], d)

    @cuda.jit
    def gradient_sums(X, H, V, part, counts):
        """Block ``k``'s sums over its tiles of rows into ``part[k]``:
        ``sum_i H[i, o] [x_i, 1]`` for each output ``o`` (laid out as
        ``theta``), then, if ``part`` has one more column, ``sum_i V[i]``.
        Each entry is one thread's, summed in row order."""
        if counts[STATUS] != RUNNING:
            return
        t = cuda.threadIdx.x
        blk = cuda.blockIdx.x
        n, d = X.shape
        width = part.shape[1]
        outputs = H.shape[1] * (d + 1)
        for e in range(t, width, tpb):
            part[blk, e] = 0.0
        n_tiles = (n + tpb - 1) // tpb
        for tile in range(blk, n_tiles, cuda.gridDim.x):
            i0 = tile * tpb
            rows = min(tpb, n - i0)
            for e in range(t, width, tpb):
                acc = 0.0
                if e < outputs:
                    k = e // (d + 1)
                    j = e - k * (d + 1)
                    if j < d:
                        for r in range(rows):
                            acc += H[i0 + r, k] * X[i0 + r, j]
                    else:
                        for r in range(rows):
                            acc += H[i0 + r, k]
                else:
                    for r in range(rows):
                        acc += V[i0 + r]
                part[blk, e] += acc

    @cuda.jit
    def softmax_rows(Z, y, amplifier, P, A, tops, counts):
        """Each row's ``p = softmax(z)``, ``a = softmax(L/2 p)`` and top
        class (``_kernels_cpu.amplified_softmax``)."""
        if counts[STATUS] != RUNNING:
            return
        n, K = Z.shape
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            tops[i] = _amplified_softmax(Z[i], K, amplifier, P[i], A[i])

    @cuda.jit
    def class_sums(A, y, sw, part, counts):
        """Block ``k``'s soft confusion matrix over its tiles of rows,
        ``C[y_i, :] += s_i a_i`` (K x K, flat) into ``part[k]``."""
        if counts[STATUS] != RUNNING:
            return
        t = cuda.threadIdx.x
        blk = cuda.blockIdx.x
        n, K = A.shape
        for e in range(t, K * K, tpb):
            part[blk, e] = 0.0
        n_tiles = (n + tpb - 1) // tpb
        for tile in range(blk, n_tiles, cuda.gridDim.x):
            i0 = tile * tpb
            rows = min(tpb, n - i0)
            for e in range(t, K * K, tpb):
                c = e // K
                k = e - c * K
                acc = 0.0
                for r in range(rows):
                    if y[i0 + r] == c:
                        acc += sw[i0 + r] * A[i0 + r, k]
                part[blk, e] += acc

    @cuda.jit
    def softmax_gradient_rows(P, A, tops, y, sw, D, amplifier, U, H, counts):
        """``H[i] = s_i d M / d z_i`` through both softmaxes, ``D`` the
        metric's ``dM/dC``."""
        if counts[STATUS] != RUNNING:
            return
        n, K = P.shape
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            _softmax_metric_dz(P[i], A[i], tops[i], D[y[i]], K, amplifier, U[i], H[i])
            for k in range(K):
                H[i, k] *= sw[i]

    @cuda.jit
    def softmax_log_loss_rows(Z, y, sw, weights, P, H, V, counts):
        """The warm-up's class-balanced multinomial log-loss of each row
        (``V``) and its gradient (``H``), as ``_kernels_cpu._softmax_pass``."""
        if counts[STATUS] != RUNNING:
            return
        n, K = Z.shape
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            t = y[i]
            weight = sw[i] * weights[t]
            top, total = _softmax(Z[i], K, P[i])
            V[i] = weight * (math.log(total) + (Z[i, top] - Z[i, t]))
            rest = 0.0
            for k in range(K):
                H[i, k] = weight * P[i, k]
                if k != t:
                    rest += P[i, k]
            H[i, t] = -weight * rest

    @cuda.jit
    def rows_step(total, value, use_value, d, theta, grad, settings, state, curve):
        """One iteration after a rows pass: the loss ``1 - M + alpha/2
        sum |w|^2`` with ``M = value[0]`` if ``use_value``, else the pass's
        last sum (``average="samples"``); its gradient; the optimiser's step
        and the stopping rule."""
        if state.counts[STATUS] != RUNNING:
            return
        squares = _rows_gradient(
            total, d, -1.0, settings.alpha, settings.fit_intercept, theta, grad
        )
        m = value[0] if use_value else total[theta.shape[0]]
        loss = 1.0 - m + 0.5 * settings.alpha * squares
        _end_iteration(loss, theta, grad, settings, state, curve)

    @cuda.jit
    def rows_log_loss(total, theta, grad, d, alpha, fit_intercept, out):
        """The softmax warm-up's loss (``out[0]``) and gradient."""
        squares = _rows_gradient(total, d, 1.0, alpha, fit_intercept, theta, grad)
        out[0] = total[theta.shape[0]] + 0.5 * alpha * squares

    return types.SimpleNamespace(
        labels_pass=labels_pass,
        reduce_part=reduce_part,
        log_loss=log_loss,
        scores=scores,
        gradient_sums=gradient_sums,
        softmax_rows=softmax_rows,
        class_sums=class_sums,
        softmax_gradient_rows=softmax_gradient_rows,
        softmax_log_loss_rows=softmax_log_loss_rows,
        rows_step=rows_step,
        rows_log_loss=rows_log_loss,
    )


@cache
def _linear_metric_kernels(metric):
    """The kernels that apply ``metric``: one thread after a labels pass
    (``labels_step``, ``_kernels_cpu._metric_step``), one thread after a
    softmax counts pass (``matrix_metric``), and one thread per row for
    ``average="samples"`` (``samples_rows``)."""
    call, matrix = device_metric_call(metric)
    binary = device_metric(metric)

    @cuda.jit
    def labels_step(total, target, theta, grad, settings, params, state, curve, buf):
        if state.counts[STATUS] != RUNNING:
            return
        d = theta.shape[0] // target.Y.shape[1] - 1
        _labels_cms(total, target, d, buf.cm)
        value = call(
            target.layout, target.k, buf.cm, buf.cm2, target.scale, params,
            buf.partials, buf.partials2, buf.work,
        )  # fmt: skip
        loss = _labels_metric_loss(
            total, value, buf.partials, settings.alpha, settings.fit_intercept,
            theta, grad,
        )  # fmt: skip
        _end_iteration(loss, theta, grad, settings, state, curve)

    @cuda.jit
    def matrix_metric(C, scale, params, D, work, value, counts):
        """``value[0] = M(C)`` and ``D = dM/dC`` (K x K)."""
        if counts[STATUS] != RUNNING:
            return
        value[0] = matrix(C, scale, params, D, work)

    @cuda.jit
    def samples_rows(Z, Y, sw, amplifier, params, H, V, counts):
        """Each row's metric over its labels (``V``, times its weight) and
        ``H = d (s M_i) / d z_i`` (see ``_kernels_cpu._samples_pass``)."""
        if counts[STATUS] != RUNNING:
            return
        n, L = Z.shape
        cm = cuda.local.array(4, float64)
        partials = cuda.local.array(4, float64)
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            for q in range(4):
                cm[q] = 0.0
            for lab in range(L):
                a, _ = amplified(Z[i, lab], amplifier)
                if Y[i, lab]:
                    cm[3] += a
                    cm[2] += 1.0 - a
                else:
                    cm[1] += a
                    cm[0] += 1.0 - a
            for q in range(4):
                cm[q] /= L
            s = sw[i]
            V[i] = s * binary(cm, float64(L), params, partials)
            for lab in range(L):
                _, dadz = amplified(Z[i, lab], amplifier)
                if Y[i, lab]:
                    g = partials[3] - partials[2]
                else:
                    g = partials[1] - partials[0]
                H[i, lab] = s * g * dadz / L

    return types.SimpleNamespace(
        labels_step=labels_step, matrix_metric=matrix_metric, samples_rows=samples_rows
    )


class LinearBackend:
    """The linear model's full-batch passes over one ``X``, on the GPU: the
    protocol of ``_kernels_cpu.LinearBackend``.

    ``X`` and the sample weights are copied to the GPU once; :meth:`target`
    copies a problem's labels once.
    """

    def __init__(self, X, sample_weight):
        self._X = cuda.to_device(X)
        self._sw = cuda.to_device(normalised_weights(sample_weight))
        self._sample_weight = sample_weight

    def target(self, problem):
        """The target of ``problem`` (a ``_base.Problem``), on the GPU."""
        target = make_target(problem, self._sample_weight, cuda.to_device)
        if isinstance(target, ClassesTarget):
            return target._replace(weights=cuda.to_device(target.weights))
        return target._replace(pos=cuda.to_device(target.pos),
                               neg=cuda.to_device(target.neg))  # fmt: skip

    def _blocks(self):
        tpb = THREADS_PER_BLOCK
        return tpb, _grid(self._X.shape[0], tpb)

    def _rows(self, target, theta_d, counts, stream, buffers):
        """Device scratch of a rows pass, and the first step of every one:
        the scores ``Z`` at ``theta_d``."""
        tpb, n_blocks = self._blocks()
        n, d = self._X.shape
        m = _outputs(target)
        Z = buffers.get("Z")
        if Z is None:
            for name in ("Z", "P", "A", "U", "H"):
                buffers[name] = cuda.device_array((n, m), np.float64, stream=stream)
            buffers["V"] = cuda.device_array(n, np.float64, stream=stream)
            buffers["tops"] = cuda.device_array(n, np.int64, stream=stream)
            Z = buffers["Z"]
        _linear_kernels(tpb).scores[n_blocks, tpb, stream](self._X, theta_d, Z, counts)
        return buffers

    def _labels_pass(self, target, theta_d, amplifier, logistic, counts, part, total,
                     stream=0):  # fmt: skip
        tpb, n_blocks = self._blocks()
        kernels = _linear_kernels(tpb)
        L = target.Y.shape[1]
        kernels.labels_pass[(n_blocks, L), tpb, stream](
            self._X, target.Y, self._sw, theta_d, amplifier, logistic, part, counts
        )
        kernels.reduce_part[total.shape[0], tpb, stream](part, total, counts)

    def _gradient_sums(self, buffers, width, counts, stream=0):
        """``sum_i H[i, o] [x_i, 1]`` (and ``sum_i V[i]`` when ``width`` has
        room for it) over all rows."""
        tpb, n_blocks = self._blocks()
        kernels = _linear_kernels(tpb)
        part = buffers.get(("part", width))
        if part is None:
            part = cuda.device_array((n_blocks, width), np.float64, stream=stream)
            buffers[("part", width)] = part
            buffers[("total", width)] = cuda.device_array(
                width, np.float64, stream=stream
            )
        total = buffers[("total", width)]
        kernels.gradient_sums[n_blocks, tpb, stream](
            self._X, buffers["H"], buffers["V"], part, counts
        )
        kernels.reduce_part[width, tpb, stream](part, total, counts)
        return total

    def pass_sums(self, target, theta, amplifier, logistic):
        """The sums of one labels pass at ``theta`` (``_kernels_cpu``'s
        ``part`` rows added up), for tests."""
        tpb, n_blocks = self._blocks()
        width = target.Y.shape[1] * (2 * self._X.shape[1] + 4)
        counts = cuda.to_device(np.zeros(2, np.int64))
        part = cuda.device_array((n_blocks, width), np.float64)
        total = cuda.device_array(width, np.float64)
        theta_d = cuda.to_device(np.asarray(theta, dtype=np.float64))
        self._labels_pass(target, theta_d, amplifier, logistic, counts, part, total)
        return total.copy_to_host()

    @contextmanager
    def log_loss(self, target, alpha, fit_intercept):
        """Context yielding ``loss_grad(theta) -> (loss, grad)``, the warm-up's
        objective, each call one pass on the GPU."""
        tpb, n_blocks = self._blocks()
        kernels = _linear_kernels(tpb)
        d = self._X.shape[1]
        theta_size = _outputs(target) * (d + 1)
        grad = cuda.device_array(theta_size, np.float64)
        out = cuda.device_array(1, np.float64)
        counts = cuda.to_device(np.zeros(2, np.int64))
        buffers = {}

        def classes_loss_grad(theta):
            theta_d = cuda.to_device(np.asarray(theta, dtype=np.float64))
            self._rows(target, theta_d, counts, 0, buffers)
            kernels.softmax_log_loss_rows[n_blocks, tpb](
                buffers["Z"], target.y, self._sw, target.weights, buffers["P"],
                buffers["H"], buffers["V"], counts,
            )  # fmt: skip
            total = self._gradient_sums(buffers, theta_size + 1, counts)
            kernels.rows_log_loss[1, 1](total, theta_d, grad, d, alpha,
                                        fit_intercept, out)  # fmt: skip
            return float(out.copy_to_host()[0]), grad.copy_to_host()

        def labels_loss_grad(theta):
            theta_d = cuda.to_device(np.asarray(theta, dtype=np.float64))
            width = target.Y.shape[1] * (2 * d + 4)
            part = cuda.device_array((n_blocks, width), np.float64)
            total = cuda.device_array(width, np.float64)
            self._labels_pass(target, theta_d, 1.0, True, counts, part, total)
            kernels.log_loss[1, 1](
                total, theta_d, grad, target, alpha, fit_intercept, out
            )
            return float(out.copy_to_host()[0]), grad.copy_to_host()

        yield classes_loss_grad if _is_classes(target) else labels_loss_grad

    def fit(self, target, theta, settings, metric):
        """Run the metric loop from ``theta`` (updated in place) on the GPU;
        returns ``(status, loss_curve)`` as ``_kernels_cpu.LinearBackend.fit``."""
        stream = cuda.stream()
        theta_d = cuda.to_device(theta, stream=stream)
        params = cuda.to_device(metric.params, stream=stream)
        grad = cuda.device_array(theta.shape[0], np.float64, stream=stream)
        host_state = _kernels_cpu.new_loop_state(theta.shape[0])
        state = _kernels_cpu.LoopState(
            _optim.OptimizerState(
                *(cuda.to_device(a, stream=stream) for a in host_state.optimizer)
            ),
            cuda.to_device(host_state.best, stream=stream),
            cuda.to_device(host_state.counts, stream=stream),
        )
        curve = cuda.device_array(settings.max_iter, np.float64, stream=stream)
        if _is_classes(target):
            iteration = self._softmax_iteration
        elif target.samples:
            iteration = self._samples_iteration
        else:
            iteration = self._labels_iteration
        step = iteration(target, theta_d, grad, settings, metric, params, state,
                         curve, stream)  # fmt: skip
        counts = state.counts
        for it in range(settings.max_iter):
            step()
            if (it + 1) % CHECK_EVERY == 0 and counts.copy_to_host(stream=stream)[
                STATUS
            ]:
                break
        status = counts.copy_to_host(stream=stream)[STATUS]
        n_iter = state.optimizer.steps.copy_to_host(stream=stream)[0]
        theta_d.copy_to_host(theta, stream=stream)
        loss_curve = curve.copy_to_host(stream=stream)
        stream.synchronize()
        return int(status), loss_curve[:n_iter]

    def _labels_iteration(self, target, theta_d, grad, settings, metric, params,
                          state, curve, stream):  # fmt: skip
        tpb, n_blocks = self._blocks()
        width = target.Y.shape[1] * (2 * self._X.shape[1] + 4)
        part = cuda.device_array((n_blocks, width), np.float64, stream=stream)
        total = cuda.device_array(width, np.float64, stream=stream)
        buf = metric_buffers(target.layout, target.k, stream)
        step = _linear_metric_kernels(metric).labels_step[1, 1, stream]
        amplifier = settings.amplifier

        def iteration():
            self._labels_pass(target, theta_d, amplifier, False, state.counts, part,
                              total, stream)  # fmt: skip
            step(total, target, theta_d, grad, settings, params, state, curve, buf)

        return iteration

    def _samples_iteration(self, target, theta_d, grad, settings, metric, params,
                           state, curve, stream):  # fmt: skip
        tpb, n_blocks = self._blocks()
        kernels = _linear_kernels(tpb)
        rows = _linear_metric_kernels(metric).samples_rows[n_blocks, tpb, stream]
        step = kernels.rows_step[1, 1, stream]
        no_value = cuda.device_array(1, np.float64, stream=stream)
        buffers = {}
        counts = state.counts

        def iteration():
            self._rows(target, theta_d, counts, stream, buffers)
            rows(buffers["Z"], target.Y, self._sw, settings.amplifier, params,
                 buffers["H"], buffers["V"], counts)  # fmt: skip
            total = self._gradient_sums(buffers, theta_d.shape[0] + 1, counts, stream)
            step(total, no_value, False, self._X.shape[1], theta_d, grad, settings,
                 state, curve)  # fmt: skip

        return iteration

    def _softmax_iteration(self, target, theta_d, grad, settings, metric, params,
                           state, curve, stream):  # fmt: skip
        tpb, n_blocks = self._blocks()
        kernels = _linear_kernels(tpb)
        K = target.weights.shape[0]
        part = cuda.device_array((n_blocks, K * K), np.float64, stream=stream)
        C = cuda.device_array(K * K, np.float64, stream=stream)
        D = cuda.device_array((K, K), np.float64, stream=stream)
        work = cuda.device_array(work_size(MATRIX, K), np.float64, stream=stream)
        value = cuda.device_array(1, np.float64, stream=stream)
        metric_kernel = _linear_metric_kernels(metric).matrix_metric[1, 1, stream]
        step = kernels.rows_step[1, 1, stream]
        buffers = {}
        counts = state.counts
        amplifier = settings.amplifier

        def iteration():
            b = self._rows(target, theta_d, counts, stream, buffers)
            kernels.softmax_rows[n_blocks, tpb, stream](
                b["Z"], target.y, amplifier, b["P"], b["A"], b["tops"], counts
            )
            kernels.class_sums[n_blocks, tpb, stream](
                b["A"], target.y, self._sw, part, counts
            )
            kernels.reduce_part[K * K, tpb, stream](part, C, counts)
            metric_kernel(C.reshape(K, K), target.scale, params, D, work, value,
                          counts)  # fmt: skip
            kernels.softmax_gradient_rows[n_blocks, tpb, stream](
                b["P"], b["A"], b["tops"], target.y, self._sw, D, amplifier, b["U"],
                b["H"], counts,
            )  # fmt: skip
            total = self._gradient_sums(b, theta_d.shape[0], counts, stream)
            step(total, value, True, self._X.shape[1], theta_d, grad, settings,
                 state, curve)  # fmt: skip

        return iteration


def _is_classes(target):
    return isinstance(target, ClassesTarget)


def _outputs(target):
    """Number of outputs (rows of parameters) of a target."""
    return target.weights.shape[0] if _is_classes(target) else target.Y.shape[1]


# --------------------------------------------------------------------------
# Multi-layer perceptron
#
# Same layout as the CPU kernels: one float64 ``theta``; layer ``l`` holds
# ``W_l`` (dims[l], dims[l + 1]) row-major and then ``b_l``, so ``[W_l; b_l]``
# is one (dims[l] + 1, dims[l + 1]) matrix.  Activations and deltas are flat
# row-major float64 buffers of one mini-batch.


@lru_cache
def _mlp_kernels(tile, tpb):
    """The MLP's metric-free kernels: matrix products on ``tile`` x ``tile``
    blocks, reductions on blocks of ``tpb`` threads."""
    _check_power_of_two(tpb)

    @cuda.jit
    def gather(X, order, start, rows, out):
        """``out[r] = X[order[start + r]]`` as float64."""
        d = X.shape[1]
        for e in range(cuda.grid(1), rows * d, cuda.gridsize(1)):
            r = e // d
            out[e] = X[order[start + r], e - r * d]

    @cuda.jit
    def layer_product(left, rows, theta, offset, n_in, n_out, backward, A,
                      activation, out):  # fmt: skip
        """A layer's matrix product, forward or backward.

        Forward: ``out = f(left @ W + b)`` with ``left`` the layer's input
        (rows, n_in). Backward: ``out = (left @ W^T) * f'`` with ``left`` the
        deltas (rows, n_out) and ``f'`` from the layer's input ``A``.
        ``W`` (n_in, n_out) and ``b`` start at ``theta[offset]``.
        """
        inner = n_out if backward else n_in
        width = n_in if backward else n_out
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        r = cuda.blockIdx.y * tile + ty
        c = cuda.blockIdx.x * tile + tx
        l_tile = cuda.shared.array((tile, tile), float64)
        w_tile = cuda.shared.array((tile, tile), float64)
        acc = 0.0
        for k0 in range(0, inner, tile):
            k = k0 + tx
            l_tile[ty, tx] = left[r * inner + k] if r < rows and k < inner else 0.0
            # w_tile[kk, tx] holds the factor of l_tile[ty, kk] for column c;
            # both loads read consecutive entries of theta across tx.
            if backward:
                i = cuda.blockIdx.x * tile + ty
                w_tile[tx, ty] = (
                    theta[offset + i * n_out + k] if i < n_in and k < n_out else 0.0
                )
            else:
                k = k0 + ty
                w_tile[ty, tx] = (
                    theta[offset + k * n_out + c] if k < n_in and c < n_out else 0.0
                )
            cuda.syncthreads()
            for kk in range(tile):
                acc += l_tile[ty, kk] * w_tile[kk, tx]
            cuda.syncthreads()
        if r < rows and c < width:
            if backward:
                out[r * n_in + c] = _scale_by_derivative(
                    acc, A[r * n_in + c], activation
                )
            else:
                out[r * n_out + c] = _activate(
                    acc + theta[offset + n_in * n_out + c], activation
                )

    @cuda.jit
    def weight_grad(A, delta, rows, theta, offset, n_in, n_out, l2, grad):
        """``[gW; gb] = [A, 1]^T @ delta`` plus ``l2 * W`` for one layer."""
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        i0 = cuda.blockIdx.y * tile
        j0 = cuda.blockIdx.x * tile
        a_tile = cuda.shared.array((tile, tile), float64)
        d_tile = cuda.shared.array((tile, tile), float64)
        acc = 0.0
        for r0 in range(0, rows, tile):
            r = r0 + ty
            i = i0 + tx
            a = 0.0
            if r < rows:
                if i < n_in:
                    a = A[r * n_in + i]
                elif i == n_in:
                    a = 1.0
            a_tile[ty, tx] = a
            j = j0 + tx
            d_tile[ty, tx] = delta[r * n_out + j] if r < rows and j < n_out else 0.0
            cuda.syncthreads()
            for kk in range(tile):
                acc += a_tile[kk, ty] * d_tile[kk, tx]
            cuda.syncthreads()
        i = i0 + ty
        j = j0 + tx
        if i <= n_in and j < n_out:
            e = offset + i * n_out + j
            grad[e] = acc + l2 * theta[e] if i < n_in else acc

    @cuda.jit
    def batch_loss(theta, weight_ranges, out_loss, l2, losses, batch, status):
        """``losses[batch] = sum_k out_loss[k] + l2 / 2 * sum |W|^2``; one block."""
        t = cuda.threadIdx.x
        red = cuda.shared.array((1, tpb), float64)
        s = 0.0
        for layer in range(weight_ranges.shape[0] - 1, -1, -1):
            start = weight_ranges[layer, 0]
            for e in range(start + t, weight_ranges[layer, 1], tpb):
                s += theta[e] * theta[e]
        red[0, t] = s
        cuda.syncthreads()
        _block_sums(red, t)
        if t == 0:
            loss = 0.0
            for k in range(out_loss.shape[0]):
                loss += out_loss[k]
            loss += 0.5 * l2 * red[0, 0]
            losses[batch] = loss
            if not math.isfinite(loss):
                status[0] = 1

    @cuda.jit
    def update(theta, grad, m, v, optimizer, step, status):
        """The optimiser's step (``step`` is Adam's bias-corrected rate) on
        every parameter."""
        for j in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
            if not _update_at(optimizer, step, theta, grad, m, v, j):
                status[0] = 1  # every writer stores the same value

    return types.SimpleNamespace(
        gather=gather,
        layer_product=layer_product,
        weight_grad=weight_grad,
        batch_loss=batch_loss,
        update=update,
    )


@lru_cache
def _output_kernels(tpb):
    """The output layer's metric-free kernels (see ``_kernels_cpu``'s
    ``_sigmoid_output`` and ``_softmax_output``): sums on blocks of ``tpb``
    threads, row terms on one thread per row."""
    _check_power_of_two(tpb)

    @cuda.jit
    def unit_sums(Z, rows, Y, sw, order, start, mass, settings, delta, d_log, sums):
        """Sigmoid unit ``k`` (block ``k``): the batch's ``sums[k] = (tp, fp,
        pos, neg, log_pos, log_neg)``, each row's ``s dA/dz`` (``delta``) and
        ``s d(log-loss)/dz`` (``d_log``)."""
        t = cuda.threadIdx.x
        k = cuda.blockIdx.x
        K = Y.shape[1]
        red = cuda.shared.array((6, tpb), float64)
        acc = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for r in range(t, rows, tpb):
            i = order[start + r]
            acc, delta[r * K + k], d_log[r * K + k] = _output_row(
                acc, Z[r * K + k], Y[i, k], sw[i] / mass, settings.amplifier,
                settings.log_loss,
            )  # fmt: skip
        for q in range(6):
            red[q, t] = acc[q]
        cuda.syncthreads()
        _block_sums(red, t)
        if t == 0:
            for q in range(6):
                sums[k, q] = red[q, 0]

    @cuda.jit
    def unit_deltas(rows, Y, order, start, G, delta, d_log):
        """``delta = g dA/dz + w d(log-loss)/dz`` with ``G[k] = (g1, g0, w1,
        w0)`` chosen by each row's label."""
        K = Y.shape[1]
        for e in range(cuda.grid(1), rows * K, cuda.gridsize(1)):
            r = e // K
            k = e - r * K
            q = 0 if Y[order[start + r], k] else 1
            delta[e] = G[k, q] * delta[e] + G[k, q + 2] * d_log[e]

    @cuda.jit
    def row_sum(V, rows, out, slot):
        """``out[slot] = sum_{r < rows} V[r]``: a fixed tree on one block."""
        t = cuda.threadIdx.x
        red = cuda.shared.array((1, tpb), float64)
        s = 0.0
        for r in range(t, rows, tpb):
            s += V[r]
        red[0, t] = s
        cuda.syncthreads()
        _block_sums(red, t)
        if t == 0:
            out[slot] = red[0, 0]

    @cuda.jit
    def softmax_rows(Z, rows, Y, order, start, amplifier, P, A, tops, classes):
        """Each row's class, probabilities, soft assignment and top class."""
        K = Y.shape[1]
        for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
            i = order[start + r]
            c = 0
            for k in range(K):
                if Y[i, k]:
                    c = k
            classes[r] = c
            o = r * K
            tops[r] = _amplified_softmax(
                Z[o : o + K], K, amplifier, P[o : o + K], A[o : o + K]
            )

    @cuda.jit
    def softmax_sums(A, rows, classes, sw, order, start, mass, C, masses):
        """The batch's soft confusion matrix ``C`` (K x K) and class masses,
        each entry one thread's, summed in row order; one block."""
        K = masses.shape[0]
        for e in range(cuda.threadIdx.x, K * K + K, tpb):
            acc = 0.0
            if e < K * K:
                c = e // K
                k = e - c * K
                for r in range(rows):
                    if classes[r] == c:
                        acc += sw[order[start + r]] / mass * A[r * K + k]
                C[c, k] = acc
            else:
                c = e - K * K
                for r in range(rows):
                    if classes[r] == c:
                        acc += sw[order[start + r]] / mass
                masses[c] = acc

    @cuda.jit
    def softmax_deltas(Z, rows, classes, sw, order, start, mass, P, A, tops, D,
                       amplifier, log_loss, masses, U, delta, V):  # fmt: skip
        """``delta = d loss / d z`` of each row through both softmaxes, plus
        the class-balanced log-loss's; ``V`` each row's log-loss term."""
        K = masses.shape[0]
        for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
            o = r * K
            t = classes[r]
            s = sw[order[start + r]] / mass
            out = delta[o : o + K]
            u = U[o : o + K]
            _softmax_metric_dz(P[o : o + K], A[o : o + K], tops[r], D[t], K,
                               amplifier, u, out)  # fmt: skip
            for k in range(K):
                out[k] *= -s
            V[r] = 0.0
            if log_loss != 0.0 and s > 0.0:
                # A row of weight 0 adds nothing (its class's mass may be 0).
                w = log_loss * s / (K * masses[t])
                z = Z[o : o + K]
                top, total = _softmax(z, K, u)
                V[r] = w * (math.log(total) + (z[top] - z[t]))
                rest = 0.0
                for k in range(K):
                    if k != t:
                        out[k] += w * u[k]
                        rest += u[k]
                out[t] -= w * rest

    return types.SimpleNamespace(
        unit_sums=unit_sums,
        unit_deltas=unit_deltas,
        row_sum=row_sum,
        softmax_rows=softmax_rows,
        softmax_sums=softmax_sums,
        softmax_deltas=softmax_deltas,
    )


@cache
def _output_metric_kernels(metric):
    """The output layer's kernels with ``metric`` compiled in."""
    call, matrix = device_metric_call(metric)
    binary = device_metric(metric)

    @cuda.jit
    def sigmoid_loss(sums, settings, count, params, buf, samples_value, G, out_loss):
        """One thread: the loss of the sigmoid units (``out_loss[0]``) and
        each unit's ``G[k] = (g1, g0, w1, w0)``, the factors of its rows'
        ``dA/dz`` and ``d(log-loss)/dz`` by label; with ``settings.samples``
        the metric is ``samples_value[0]`` and ``delta`` already holds its
        part."""
        K = sums.shape[0]
        for k in range(K):
            _binary_cm(sums[k, 0], sums[k, 1], sums[k, 2], sums[k, 3],
                       buf.cm[4 * k : 4 * k + 4])  # fmt: skip
        if settings.samples:
            value = samples_value[0]
        else:
            value = call(
                settings.layout, settings.metric_k, buf.cm, buf.cm2, count, params,
                buf.partials, buf.partials2, buf.work,
            )  # fmt: skip
        loss = 1.0 - value
        for k in range(K):
            w1, w0 = _log_loss_weights(sums[k, 2], sums[k, 3], settings.log_loss, K)
            loss = loss + w1 * sums[k, 4] + w0 * sums[k, 5]
            if settings.samples:
                G[k, 0] = 1.0
                G[k, 1] = 1.0
            else:
                G[k, 0] = -(buf.partials[4 * k + 3] - buf.partials[4 * k + 2])
                G[k, 1] = -(buf.partials[4 * k + 1] - buf.partials[4 * k])
            G[k, 2] = w1
            G[k, 3] = w0
        out_loss[0] = loss
        out_loss[1] = 0.0

    @cuda.jit
    def samples_rows(Z, rows, Y, sw, order, start, mass, amplifier, params, delta,
                     V):  # fmt: skip
        """Each row's metric over its units, times its weight (``V``), and
        ``delta *= -g / K`` (``delta`` holding ``s dA/dz``)."""
        K = Y.shape[1]
        cm = cuda.local.array(4, float64)
        partials = cuda.local.array(4, float64)
        for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
            i = order[start + r]
            for q in range(4):
                cm[q] = 0.0
            for k in range(K):
                a, _ = amplified(Z[r * K + k], amplifier)
                if Y[i, k]:
                    cm[3] += a / K
                    cm[2] += (1.0 - a) / K
                else:
                    cm[1] += a / K
                    cm[0] += (1.0 - a) / K
            V[r] = sw[i] / mass * binary(cm, float64(K), params, partials)
            for k in range(K):
                if Y[i, k]:
                    g = partials[3] - partials[2]
                else:
                    g = partials[1] - partials[0]
                delta[r * K + k] *= -g / K

    @cuda.jit
    def matrix_loss(C, count, params, D, work, out_loss):
        """One thread: ``out_loss[0] = 1 - M(C)``, ``D = dM/dC``."""
        out_loss[0] = 1.0 - matrix(C, count, params, D, work)

    return types.SimpleNamespace(
        sigmoid_loss=sigmoid_loss, samples_rows=samples_rows, matrix_loss=matrix_loss
    )


class _OutputLayer:
    """The output layer's loss and ``delta`` of each batch, on the GPU."""

    def __init__(self, batch_size, K, settings, metric, stream):
        self.K = K
        self.settings = settings
        self.kernels = _output_kernels(THREADS_PER_BLOCK)
        self.metric = _output_metric_kernels(metric)
        self.stream = stream
        self.params = cuda.to_device(metric.params, stream=stream)
        scratch = batch_size * K
        self.d_log = cuda.device_array(scratch, np.float64, stream=stream)
        self.V = cuda.device_array(batch_size, np.float64, stream=stream)
        self.out_loss = cuda.device_array(2, np.float64, stream=stream)
        if settings.output == SOFTMAX:
            self.P = cuda.device_array(scratch, np.float64, stream=stream)
            self.A = cuda.device_array(scratch, np.float64, stream=stream)
            self.U = cuda.device_array(scratch, np.float64, stream=stream)
            self.tops = cuda.device_array(batch_size, np.int64, stream=stream)
            self.classes = cuda.device_array(batch_size, np.int64, stream=stream)
            self.C = cuda.device_array((K, K), np.float64, stream=stream)
            self.D = cuda.device_array((K, K), np.float64, stream=stream)
            self.masses = cuda.device_array(K, np.float64, stream=stream)
            self.work = cuda.device_array(work_size(MATRIX, K), np.float64,
                                          stream=stream)  # fmt: skip
        else:
            self.sums = cuda.device_array((K, 6), np.float64, stream=stream)
            self.G = cuda.device_array((K, 4), np.float64, stream=stream)
            self.buf = metric_buffers(settings.layout, settings.metric_k, stream)
            self.samples_value = cuda.device_array(1, np.float64, stream=stream)

    def __call__(self, Z, rows, Y, sw, order, start, mass, count, delta):
        """Fill ``delta`` (rows x K, flat) with ``d loss / d Z`` and
        ``out_loss`` with the batch loss's terms."""
        k, m, st, settings = self.kernels, self.metric, self.stream, self.settings
        tpb = THREADS_PER_BLOCK
        grid = _grid(rows, tpb)
        K = self.K
        if settings.output == SOFTMAX:
            k.softmax_rows[grid, tpb, st](Z, rows, Y, order, start,
                                          settings.amplifier, self.P, self.A,
                                          self.tops, self.classes)  # fmt: skip
            k.softmax_sums[1, tpb, st](self.A, rows, self.classes, sw, order, start,
                                       mass, self.C, self.masses)  # fmt: skip
            m.matrix_loss[1, 1, st](self.C, count, self.params, self.D, self.work,
                                    self.out_loss)  # fmt: skip
            k.softmax_deltas[grid, tpb, st](
                Z, rows, self.classes, sw, order, start, mass, self.P, self.A,
                self.tops, self.D, settings.amplifier, settings.log_loss,
                self.masses, self.U, delta, self.V,
            )  # fmt: skip
            k.row_sum[1, tpb, st](self.V, rows, self.out_loss, 1)
            return
        k.unit_sums[K, tpb, st](Z, rows, Y, sw, order, start, mass, settings, delta,
                                self.d_log, self.sums)  # fmt: skip
        if settings.samples:
            m.samples_rows[grid, tpb, st](Z, rows, Y, sw, order, start, mass,
                                          settings.amplifier, self.params, delta,
                                          self.V)  # fmt: skip
            k.row_sum[1, tpb, st](self.V, rows, self.samples_value, 0)
        m.sigmoid_loss[1, 1, st](self.sums, settings, count, self.params, self.buf,
                                 self.samples_value, self.G, self.out_loss)  # fmt: skip
        k.unit_deltas[_grid(rows * K, tpb), tpb, st](rows, Y, order, start, self.G,
                                                     delta, self.d_log)  # fmt: skip


class MLPBackend:
    """The MLP's mini-batch epochs over one ``(X, Y)``, on the GPU: the
    protocol of ``_kernels_cpu.MLPBackend``, batch for batch.

    The data are copied to the GPU once; ``theta`` and the optimiser's state
    are host arrays, copied in and updated in place at each epoch.
    """

    def __init__(self, X, Y, sample_weight):
        self._X = cuda.to_device(X)
        self._Y = cuda.to_device(np.ascontiguousarray(Y, dtype=np.uint8))
        self._sw_host, self._scale = mlp_weights(sample_weight)
        self._sw = cuda.to_device(self._sw_host)

    def epoch(self, order, theta, dims, settings, metric, state):
        """One epoch over the rows ``order``; returns its mean batch loss
        (NaN if training diverged)."""
        tile, tpb = TILE, THREADS_PER_BLOCK
        kernels = _mlp_kernels(tile, tpb)
        batch_size = settings.batch_size
        n = order.shape[0]
        dims = [int(w) for w in dims]
        n_layers = len(dims) - 1
        K = dims[-1]
        offsets = np.zeros(n_layers + 1, dtype=np.int64)
        for layer in range(n_layers):
            offsets[layer + 1] = offsets[layer] + (dims[layer] + 1) * dims[layer + 1]
        weight_ranges = np.column_stack(
            [offsets[:-1], offsets[:-1] + np.multiply(dims[:-1], dims[1:])]
        ).astype(np.int64)
        starts = np.arange(0, n, batch_size)
        masses = np.add.reduceat(self._sw_host[order], starts)

        stream = cuda.stream()
        order_d = cuda.to_device(np.ascontiguousarray(order, np.int64), stream=stream)
        theta_d = cuda.to_device(theta, stream=stream)
        m_d = cuda.to_device(state.m, stream=stream)
        v_d = cuda.to_device(state.v, stream=stream)
        output = _OutputLayer(batch_size, K, settings, metric, stream)
        grad = cuda.device_array(theta.shape[0], np.float64, stream=stream)
        ranges_d = cuda.to_device(weight_ranges, stream=stream)
        acts = [
            cuda.device_array(batch_size * w, np.float64, stream=stream) for w in dims
        ]
        widest = max(dims[1:])
        deltas = [
            cuda.device_array(batch_size * widest, np.float64, stream=stream)
            for _ in range(2)
        ]
        losses = cuda.to_device(np.zeros(starts.shape[0]), stream=stream)
        status = cuda.to_device(np.zeros(1, np.int64), stream=stream)
        block2 = (tile, tile)
        used = []
        for batch, start in enumerate(starts.tolist()):
            rows = min(start + batch_size, n) - start
            mass = float(masses[batch])
            if not mass > 0.0:
                continue  # every sample of this batch has zero weight
            count = mass * self._scale
            l2 = settings.alpha / count
            kernels.gather[_grid(rows * dims[0], tpb), tpb, stream](
                self._X, order_d, start, rows, acts[0]
            )
            for layer in range(n_layers):
                n_in, n_out = dims[layer], dims[layer + 1]
                grid = ((n_out + tile - 1) // tile, (rows + tile - 1) // tile)
                hidden = layer < n_layers - 1
                kernels.layer_product[grid, block2, stream](
                    acts[layer], rows, theta_d, int(offsets[layer]), n_in, n_out,
                    False, acts[layer], settings.activation if hidden else 0,
                    acts[layer + 1],
                )  # fmt: skip
            delta = deltas[0]
            output(acts[n_layers], rows, self._Y, self._sw, order_d, start, mass,
                   count, delta)  # fmt: skip
            for layer in range(n_layers - 1, -1, -1):
                n_in, n_out = dims[layer], dims[layer + 1]
                grid = ((n_out + tile - 1) // tile, (n_in + tile) // tile)
                kernels.weight_grad[grid, block2, stream](
                    acts[layer], delta, rows, theta_d, int(offsets[layer]), n_in,
                    n_out, l2, grad,
                )  # fmt: skip
                if layer > 0:
                    back = deltas[1] if delta is deltas[0] else deltas[0]
                    grid = ((n_in + tile - 1) // tile, (rows + tile - 1) // tile)
                    kernels.layer_product[grid, block2, stream](
                        delta, rows, theta_d, int(offsets[layer]), n_in, n_out,
                        True, acts[layer], settings.activation, back,
                    )  # fmt: skip
                    delta = back
            kernels.batch_loss[1, tpb, stream](
                theta_d, ranges_d, output.out_loss, l2, losses, batch, status
            )
            state.steps[0] += 1
            step = _optim.step_size_py(settings.optimizer, int(state.steps[0]))
            kernels.update[_grid(theta.shape[0], tpb), tpb, stream](
                theta_d, grad, m_d, v_d, settings.optimizer, step, status
            )
            used.append((batch, rows))
        theta_d.copy_to_host(theta, stream=stream)
        m_d.copy_to_host(state.m, stream=stream)
        v_d.copy_to_host(state.v, stream=stream)
        batch_losses = losses.copy_to_host(stream=stream)
        failed = status.copy_to_host(stream=stream)[0]
        stream.synchronize()
        if failed:
            return np.nan
        total = 0.0
        for batch, rows in used:
            total += batch_losses[batch] * rows
        return total / n
