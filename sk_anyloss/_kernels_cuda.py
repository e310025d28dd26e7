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

numba.cuda has no first-class functions: the metric is compiled into the one
small kernel that applies it (:func:`device_metric`), once per metric and
process; the kernels that read the data do not depend on it.

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

import numpy as np
from numba import cuda, float64, uint8

from . import _kernels_cpu, _optim
from ._base import weight_total
from ._kernels_cpu import (
    RUNNING,
    STATUS,
    class_masses,
    mlp_weights,
    normalised_weights,
)

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


def _device_function(cpu_function, **replace):
    """Compile the Python source of a CPU helper as a CUDA device function.

    ``replace`` swaps globals of that source for their CUDA builds.
    """
    fn = cpu_function.py_func
    env = dict(fn.__globals__)
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
_metric_loss = _device_function(_kernels_cpu._metric_loss, _gradient=_gradient)
_log_loss = _device_function(_kernels_cpu._log_loss, _gradient=_gradient)
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
_output_weights = _device_function(_kernels_cpu._output_weights)


@cache
def device_metric(metric):
    """``metric`` (a ``_metrics.Metric``) as a device function of its array
    form, ``value = f(cm, params, partials)``; compiled once per process."""
    return metric.array_form(_device_jit, f"device_metric_{metric.key}")


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


@lru_cache
def _linear_kernels(tpb):
    """The linear model's metric-free kernels for blocks of ``tpb`` threads."""
    _check_power_of_two(tpb)

    @cuda.jit
    def epoch(X, y, sw, theta, amplifier, logistic, part, counts):
        """Block ``k``'s sums over its tiles into ``part[k]`` (see
        ``_kernels_cpu._linear_pass``).

        ``part`` (n_blocks, 2 d + 4): ``[sum_{y=1} h x, sum_{y=0} h x,
        sum_{y=1} h, sum_{y=0} h, TP, FP]``; with ``logistic``, the sums of
        the log-loss warm-up instead, as on the CPU.
        """
        if counts[STATUS] != RUNNING:
            return
        t = cuda.threadIdx.x
        blk = cuda.blockIdx.x
        n, d = X.shape
        h_tile = cuda.shared.array(tpb, float64)
        y_tile = cuda.shared.array(tpb, uint8)
        red = cuda.shared.array((4, tpb), float64)
        # Column j of this block's row of ``part`` belongs to thread j % tpb.
        for j in range(t, d, tpb):
            part[blk, j] = 0.0
            part[blk, d + j] = 0.0
        h1 = 0.0
        h0 = 0.0
        tp = 0.0
        fp = 0.0
        b = theta[d]
        n_tiles = (n + tpb - 1) // tpb
        for tile in range(blk, n_tiles, cuda.gridDim.x):
            i0 = tile * tpb
            i = i0 + t
            h = 0.0
            yi = uint8(0)
            if i < n:
                z = b + _dot(X[i], theta, d)
                yi = y[i]
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
                part[blk, j] += acc1
                part[blk, d + j] += acc0
            cuda.syncthreads()
        red[0, t] = h1
        red[1, t] = h0
        red[2, t] = tp
        red[3, t] = fp
        cuda.syncthreads()
        _block_sums(red, t)
        if t == 0:
            for q in range(4):
                part[blk, 2 * d + q] = red[q, 0]

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

    return types.SimpleNamespace(
        epoch=epoch, reduce_part=reduce_part, log_loss=log_loss
    )


@cache
def _linear_step(metric):
    """The kernel of one iteration after its pass, with ``metric`` compiled in:
    ``_kernels_cpu._metric_step`` on one thread."""
    metric_function = device_metric(metric)

    @cuda.jit
    def step(total, target, theta, grad, settings, params, state, curve):
        if state.counts[STATUS] != RUNNING:
            return
        d = theta.shape[0] - 1
        cm = cuda.local.array(4, float64)
        partials = cuda.local.array(4, float64)
        _binary_cm(total[2 * d + 2], total[2 * d + 3], target.pos, target.neg, cm)
        value = metric_function(cm, target.scale, params, partials)
        loss = _metric_loss(
            total, value, partials, settings.alpha, settings.fit_intercept, theta, grad
        )
        _end_iteration(loss, theta, grad, settings, state, curve)

    return step


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
        self._total = weight_total(sample_weight)

    def target(self, y01):
        """The binary problem with labels ``y01`` (0/1), labels on the GPU."""
        pos, neg = class_masses(y01, self._sample_weight)
        y = cuda.to_device(np.ascontiguousarray(y01, dtype=np.uint8))
        return BinaryTarget(y, pos, neg, self._total)

    def _geometry(self):
        tpb = THREADS_PER_BLOCK
        n, d = self._X.shape
        return tpb, min((n + tpb - 1) // tpb, MAX_BLOCKS), 2 * d + 4

    def pass_sums(self, target, theta, amplifier, logistic):
        """The sums of one pass at ``theta`` (``_kernels_cpu``'s ``part``
        rows added up), for tests."""
        tpb, n_blocks, width = self._geometry()
        kernels = _linear_kernels(tpb)
        counts = cuda.to_device(np.zeros(2, np.int64))
        part = cuda.device_array((n_blocks, width), np.float64)
        total = cuda.device_array(width, np.float64)
        theta_d = cuda.to_device(np.asarray(theta, dtype=np.float64))
        kernels.epoch[n_blocks, tpb](
            self._X, target.y, self._sw, theta_d, amplifier, logistic, part, counts
        )
        kernels.reduce_part[width, tpb](part, total, counts)
        return total, theta_d

    @contextmanager
    def log_loss(self, target, alpha, fit_intercept):
        """Context yielding ``loss_grad(theta) -> (loss, grad)``, the warm-up's
        objective, each call one pass on the GPU."""
        kernels = _linear_kernels(THREADS_PER_BLOCK)
        grad = cuda.device_array(self._X.shape[1] + 1, np.float64)
        out = cuda.device_array(1, np.float64)

        def loss_grad(theta):
            total, theta_d = self.pass_sums(target, theta, 1.0, True)
            kernels.log_loss[1, 1](
                total, theta_d, grad, target, alpha, fit_intercept, out
            )
            return float(out.copy_to_host()[0]), grad.copy_to_host()

        yield loss_grad

    def fit(self, target, theta, settings, metric):
        """Run the metric loop from ``theta`` (updated in place) on the GPU;
        returns ``(status, loss_curve)`` as ``_kernels_cpu.LinearBackend.fit``."""
        tpb, n_blocks, width = self._geometry()
        kernels = _linear_kernels(tpb)
        step = _linear_step(metric)
        d1 = theta.shape[0]
        stream = cuda.stream()
        theta_d = cuda.to_device(theta, stream=stream)
        params = cuda.to_device(metric.params, stream=stream)
        part = cuda.device_array((n_blocks, width), np.float64, stream=stream)
        total = cuda.device_array(width, np.float64, stream=stream)
        grad = cuda.device_array(d1, np.float64, stream=stream)
        host_state = _kernels_cpu.new_loop_state(d1)
        state = _kernels_cpu.LoopState(
            _optim.OptimizerState(
                *(cuda.to_device(a, stream=stream) for a in host_state.optimizer)
            ),
            cuda.to_device(host_state.best, stream=stream),
            cuda.to_device(host_state.counts, stream=stream),
        )
        curve = cuda.device_array(settings.max_iter, np.float64, stream=stream)
        epoch = kernels.epoch[n_blocks, tpb, stream]
        reduce_part = kernels.reduce_part[width, tpb, stream]
        step = step[1, 1, stream]
        X, y, sw, counts = self._X, target.y, self._sw, state.counts
        amplifier = settings.amplifier
        for it in range(settings.max_iter):
            epoch(X, y, sw, theta_d, amplifier, False, part, counts)
            reduce_part(part, total, counts)
            step(total, target, theta_d, grad, settings, params, state, curve)
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


@cache
def _mlp_output(tpb, metric):
    """The output layer's kernel with ``metric`` compiled in."""
    _check_power_of_two(tpb)
    metric_function = device_metric(metric)

    @cuda.jit
    def output(
        Z, rows, Y, sw, order, start, mass, count, settings, params, delta, out_loss
    ):
        """Output unit ``k`` (block ``k``): the batch's sums (soft confusion
        matrix, class masses and log-losses), ``delta[:, k] = d loss / d z_k``
        and ``out_loss[k]``, the unit's share of the loss."""
        t = cuda.threadIdx.x
        k = cuda.blockIdx.x
        K = Y.shape[1]
        amplifier = settings.amplifier
        log_loss = settings.log_loss
        red = cuda.shared.array((6, tpb), float64)
        g = cuda.shared.array(4, float64)
        sums = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for r in range(t, rows, tpb):
            i = order[start + r]
            sums, delta[r * K + k], _ = _output_row(
                sums, Z[r * K + k], Y[i, k], sw[i] / mass, amplifier, log_loss
            )
        for q in range(6):
            red[q, t] = sums[q]
        cuda.syncthreads()
        _block_sums(red, t)
        if t == 0:
            cm = cuda.local.array(4, float64)
            partials = cuda.local.array(4, float64)
            _binary_cm(red[0, 0], red[1, 0], red[2, 0], red[3, 0], cm)
            value = metric_function(cm, count, params, partials)
            loss, g1, g0, w1, w0 = _output_weights(
                value, partials, red[2, 0], red[3, 0], red[4, 0], red[5, 0],
                log_loss, K,
            )  # fmt: skip
            out_loss[k] = loss
            g[0] = g1
            g[1] = g0
            g[2] = w1
            g[3] = w0
        cuda.syncthreads()
        for r in range(t, rows, tpb):
            i = order[start + r]
            dll = 0.0
            if log_loss != 0.0:
                _, dll = _log_loss_terms(Z[r * K + k], Y[i, k])
            s = sw[i] / mass
            if Y[i, k]:
                delta[r * K + k] = g[0] * delta[r * K + k] + g[2] * (s * dll)
            else:
                delta[r * K + k] = g[1] * delta[r * K + k] + g[3] * (s * dll)

    return output


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
        output = _mlp_output(tpb, metric)
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
        params = cuda.to_device(metric.params, stream=stream)
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
        out_loss = cuda.device_array(K, np.float64, stream=stream)
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
            output[K, tpb, stream](
                acts[n_layers], rows, self._Y, self._sw, order_d, start, mass, count,
                settings, params, delta, out_loss,
            )  # fmt: skip
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
                theta_d, ranges_d, out_loss, l2, losses, batch, status
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
