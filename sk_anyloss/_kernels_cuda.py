"""numba.cuda kernels: the GPU sibling of ``_kernels_cpu``.

This is the only module that imports ``numba.cuda``; it is imported only once
a ``device`` parameter has resolved to ``"cuda"`` (see ``_device``).

Conventions are those of ``_kernels_cpu``: ``X`` (n_samples, n_features) is
float32 or float64 and is never upcast, per-row arithmetic and every
accumulator is float64, ``y`` / ``Y`` hold 0/1 as uint8, sample weights are
normalised to sum to one, the parameters are one float64 vector ``theta``.
The metric formulas, the amplification ``amplified``, the linear model's dot
product and its loss-and-gradient step are compiled from the CPU kernels'
source (:func:`_device_function`), so the two backends cannot drift apart.

Data go to the GPU once per ``fit``; the training loops run there, and only
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
from functools import lru_cache

import numpy as np
from numba import cuda, float64, uint8

from . import _kernels_cpu
from ._metrics import build_metric_function

# Launch geometry.  Module constants, read at each fit: the tests lower them so
# that the multi-block and grid-stride paths run on the CUDA simulator.
THREADS_PER_BLOCK = 256  # a power of two
MAX_BLOCKS = 1024  # fixed, so that the sums' tree never depends on the GPU
TILE = 16  # matrix products: TILE x TILE threads per block
# Iterations between the host's looks at the linear solver's stopping flag;
# epochs queued after the flag is set return at once.
CHECK_EVERY = 32

_device_jit = cuda.jit(device=True)
_metric_and_partials = build_metric_function(_device_jit)


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
_loss_and_gradient = _device_function(
    _kernels_cpu._loss_and_gradient, _metric_and_partials=_metric_and_partials
)
_log_loss_terms = _device_function(
    _kernels_cpu._log_loss_terms, _sigmoid_softplus=_sigmoid_softplus
)
_output_terms = _device_function(
    _kernels_cpu._output_terms, amplified=amplified, _log_loss_terms=_log_loss_terms
)
_output_weights = _device_function(
    _kernels_cpu._output_weights, _metric_and_partials=_metric_and_partials
)


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


# --------------------------------------------------------------------------
# Linear model


@lru_cache
def _linear_kernels(tpb):
    """The linear model's kernels for blocks of ``tpb`` threads."""
    _check_power_of_two(tpb)

    @cuda.jit
    def epoch(X, y, sw, weighted, theta, amplifier, logistic, part, state):
        """Block ``k``'s sums over its tiles into ``part[k]`` (see ``_epoch_impl``).

        ``part`` (n_blocks, 2 d + 4): ``[sum_{y=1} h x, sum_{y=0} h x,
        sum_{y=1} h, sum_{y=0} h, TP, FP]``; with ``logistic``, the sums of
        the log-loss warm-up instead, as on the CPU.
        """
        if state[0] != 0:
            return
        t = cuda.threadIdx.x
        blk = cuda.blockIdx.x
        n, d = X.shape
        unit = 1.0 / n
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
                s = sw[i] if weighted else unit
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
        stride = tpb // 2
        while stride > 0:
            if t < stride:
                for q in range(4):
                    red[q, t] += red[q, t + stride]
            cuda.syncthreads()
            stride //= 2
        if t == 0:
            for q in range(4):
                part[blk, 2 * d + q] = red[q, 0]

    @cuda.jit
    def reduce_part(part, total, state):
        """``total[k] = sum over blocks of part[:, k]``; one block per column."""
        if state[0] != 0:
            return
        t = cuda.threadIdx.x
        k = cuda.blockIdx.x
        red = cuda.shared.array(tpb, float64)
        s = 0.0
        for c in range(t, part.shape[0], tpb):
            s += part[c, k]
        red[t] = s
        cuda.syncthreads()
        stride = tpb // 2
        while stride > 0:
            if t < stride:
                red[t] += red[t + stride]
            cuda.syncthreads()
            stride //= 2
        if t == 0:
            total[k] = red[0]

    @cuda.jit
    def step(
        total,
        theta,
        grad,
        m,
        v,
        state,
        best,
        loss_curve,
        pos,
        neg,
        code,
        beta,
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
    ):
        """One iteration of ``_kernels_cpu._fit_source`` after its epoch.

        ``state = [status, iterations run, iterations without improvement]``;
        status 0 is running, 1 finished, ``-k`` diverged at iteration ``k``.
        """
        if state[0] != 0:
            return
        d = theta.shape[0] - 1
        it = state[1]
        loss = _loss_and_gradient(
            total, d, pos, neg, code, beta, alpha, fit_intercept, theta, grad
        )
        finite = math.isfinite(loss)
        for j in range(d + 1):
            finite = finite and math.isfinite(grad[j])
        if not finite:
            state[0] = -(it + 1)
            return
        loss_curve[it] = loss
        state[1] = it + 1
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
            state[0] = -(it + 1)
            return
        if use_tol:
            if loss > best[0] - tol:
                state[2] += 1
            else:
                state[2] = 0
            if loss < best[0]:
                best[0] = loss
            if state[2] >= n_iter_no_change:
                state[0] = 1
        if it + 1 >= max_iter:
            state[0] = 1

    return types.SimpleNamespace(epoch=epoch, reduce_part=reduce_part, step=step)


def _weights_on_device(sw):
    """Sample weights on the GPU and whether there are any (a 1-element dummy
    stands in for "unweighted")."""
    if sw is None or sw.shape[0] == 0:
        return cuda.to_device(np.zeros(1)), False
    return cuda.to_device(np.ascontiguousarray(sw, dtype=np.float64)), True


class LinearFit:
    """Full-batch training of the linear model on the GPU.

    ``LinearFit(X, sw)`` copies the data to the GPU; each call trains one
    binary problem with the arguments and the result of
    ``_kernels_cpu.fit_linear``, whose algorithm it follows step for step.
    """

    def __init__(self, X, sw):
        self._X_host = X
        self._X = cuda.to_device(X)
        self._sw, self._weighted = _weights_on_device(sw)
        self._y_host = self._y = None

    def loss_grad(
        self, X, y, sw, theta, pos, neg, code, beta, amplifier, alpha, fit_intercept
    ):
        """``_kernels_cpu.loss_grad_linear`` on the data already on the GPU
        (the warm-up's L-BFGS calls it once per evaluation; ``y`` is copied
        once per binary problem)."""
        if X is not self._X_host:
            raise ValueError("LinearFit was built for another X.")
        if y is not self._y_host:
            self._y_host = y
            self._y = cuda.to_device(np.ascontiguousarray(y, dtype=np.uint8))
        return _loss_grad_on_device(
            self._X, self._y, self._sw, self._weighted, theta, pos, neg, code,
            beta, amplifier, alpha, fit_intercept,
        )  # fmt: skip

    def __call__(
        self,
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
        if X is not self._X_host:
            raise ValueError("LinearFit was built for another X.")
        tpb = THREADS_PER_BLOCK
        kernels = _linear_kernels(tpb)
        n, d = X.shape
        width = 2 * d + 4
        n_blocks = min((n + tpb - 1) // tpb, MAX_BLOCKS)
        stream = cuda.stream()
        y_d = cuda.to_device(np.ascontiguousarray(y, dtype=np.uint8), stream=stream)
        theta_d = cuda.to_device(theta, stream=stream)
        part = cuda.device_array((n_blocks, width), np.float64, stream=stream)
        total = cuda.device_array(width, np.float64, stream=stream)
        grad = cuda.device_array(d + 1, np.float64, stream=stream)
        m = cuda.to_device(np.zeros(d + 1), stream=stream)
        v = cuda.to_device(np.zeros(d + 1), stream=stream)
        state = cuda.to_device(np.zeros(3, np.int64), stream=stream)
        best = cuda.to_device(np.full(1, np.inf), stream=stream)
        curve = cuda.device_array(max_iter, np.float64, stream=stream)
        epoch = kernels.epoch[n_blocks, tpb, stream]
        logistic = code == _kernels_cpu.WARM_UP
        reduce_part = kernels.reduce_part[width, tpb, stream]
        step = kernels.step[1, 1, stream]
        for it in range(max_iter):
            epoch(
                self._X, y_d, self._sw, self._weighted, theta_d, amplifier, logistic,
                part, state,
            )  # fmt: skip
            reduce_part(part, total, state)
            step(
                total,
                theta_d,
                grad,
                m,
                v,
                state,
                best,
                curve,
                pos,
                neg,
                code,
                beta,
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
            )
            if (it + 1) % CHECK_EVERY == 0 and state.copy_to_host(stream=stream)[0]:
                break
        status, n_iter, _ = state.copy_to_host(stream=stream)
        theta_d.copy_to_host(theta, stream=stream)
        curve.copy_to_host(loss_curve[:max_iter], stream=stream)
        stream.synchronize()
        return int(status) if status < 0 else int(n_iter)


@cuda.jit
def _loss_and_gradient_kernel(
    total, theta, grad, out, pos, neg, code, beta, alpha, fit_intercept
):
    out[0] = _loss_and_gradient(
        total,
        theta.shape[0] - 1,
        pos,
        neg,
        code,
        beta,
        alpha,
        fit_intercept,
        theta,
        grad,
    )


def _loss_grad_on_device(
    X_d, y_d, sw_d, weighted, theta, pos, neg, code, beta, amplifier, alpha,
    fit_intercept,
):  # fmt: skip
    tpb = THREADS_PER_BLOCK
    kernels = _linear_kernels(tpb)
    n, d = X_d.shape
    width = 2 * d + 4
    n_blocks = min((n + tpb - 1) // tpb, MAX_BLOCKS)
    theta_d = cuda.to_device(np.asarray(theta, dtype=np.float64))
    part = cuda.device_array((n_blocks, width), np.float64)
    total = cuda.device_array(width, np.float64)
    grad = cuda.device_array(d + 1, np.float64)
    out = cuda.device_array(1, np.float64)
    state = cuda.to_device(np.zeros(3, np.int64))
    logistic = code == _kernels_cpu.WARM_UP
    kernels.epoch[n_blocks, tpb](
        X_d, y_d, sw_d, weighted, theta_d, amplifier, logistic, part, state
    )
    kernels.reduce_part[width, tpb](part, total, state)
    _loss_and_gradient_kernel[1, 1](
        total, theta_d, grad, out, pos, neg, code, beta, alpha, fit_intercept
    )
    return float(out.copy_to_host()[0]), grad.copy_to_host(), total.copy_to_host()


def loss_grad_linear(
    X, y, sw, theta, pos, neg, code, beta, amplifier, alpha, fit_intercept
):
    """Loss, gradient and the epoch's sums at ``theta`` (no update): the GPU
    build of ``_kernels_cpu.loss_grad_linear``, for tests and benchmarks.

    ``X`` may already be on the GPU.
    """
    X_d = X if hasattr(X, "copy_to_host") else cuda.to_device(X)
    sw_d, weighted = _weights_on_device(sw)
    y_d = cuda.to_device(np.ascontiguousarray(y, dtype=np.uint8))
    return _loss_grad_on_device(
        X_d, y_d, sw_d, weighted, theta, pos, neg, code, beta, amplifier, alpha,
        fit_intercept,
    )  # fmt: skip


# --------------------------------------------------------------------------
# Multi-layer perceptron
#
# Same layout as the CPU kernels: one float64 ``theta``; layer ``l`` holds
# ``W_l`` (dims[l], dims[l + 1]) row-major and then ``b_l``, so ``[W_l; b_l]``
# is one (dims[l] + 1, dims[l + 1]) matrix.  Activations and deltas are flat
# row-major float64 buffers of one mini-batch.


@lru_cache
def _mlp_kernels(tile, tpb):
    """The MLP's kernels: matrix products on ``tile`` x ``tile`` blocks,
    reductions on blocks of ``tpb`` threads."""
    _check_power_of_two(tpb)

    @cuda.jit
    def gather(X, order, start, rows, out):
        """``out[r] = X[order[start + r]]`` as float64."""
        d = X.shape[1]
        for e in range(cuda.grid(1), rows * d, cuda.gridsize(1)):
            r = e // d
            out[e] = X[order[start + r], e - r * d]

    @cuda.jit
    def forward(A, rows, theta, offset, n_in, n_out, hidden, activation, Z):
        """``Z = f(A @ W + b)`` for one layer (``f`` only if ``hidden``)."""
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        r = cuda.blockIdx.y * tile + ty
        j = cuda.blockIdx.x * tile + tx
        a_tile = cuda.shared.array((tile, tile), float64)
        w_tile = cuda.shared.array((tile, tile), float64)
        acc = 0.0
        for k0 in range(0, n_in, tile):
            k = k0 + tx
            a_tile[ty, tx] = A[r * n_in + k] if r < rows and k < n_in else 0.0
            k = k0 + ty
            w_tile[ty, tx] = (
                theta[offset + k * n_out + j] if k < n_in and j < n_out else 0.0
            )
            cuda.syncthreads()
            for kk in range(tile):
                acc += a_tile[ty, kk] * w_tile[kk, tx]
            cuda.syncthreads()
        if r < rows and j < n_out:
            z = acc + theta[offset + n_in * n_out + j]
            Z[r * n_out + j] = _activate(z, activation) if hidden else z

    @cuda.jit
    def output(
        Z,
        rows,
        Y,
        sw,
        weighted,
        order,
        start,
        mass,
        code,
        beta,
        amplifier,
        log_loss,
        delta,
        out_loss,
    ):
        """Output unit ``k`` (block ``k``): the batch's sums (soft confusion
        matrix, class masses and log-losses), ``delta[:, k] = d loss / d z_k``
        and ``out_loss[k]``, the unit's share of the loss."""
        t = cuda.threadIdx.x
        k = cuda.blockIdx.x
        K = Y.shape[1]
        red = cuda.shared.array((6, tpb), float64)
        g = cuda.shared.array(4, float64)
        tp = 0.0
        fp = 0.0
        pos = 0.0
        neg = 0.0
        log_pos = 0.0
        log_neg = 0.0
        for r in range(t, rows, tpb):
            i = order[start + r]
            s = (sw[i] if weighted else 1.0) / mass
            a, dadz, ll, _ = _output_terms(Z[r * K + k], Y[i, k], amplifier, log_loss)
            delta[r * K + k] = s * dadz
            if Y[i, k]:
                tp += s * a
                pos += s
                log_pos += s * ll
            else:
                fp += s * a
                neg += s
                log_neg += s * ll
        red[0, t] = tp
        red[1, t] = fp
        red[2, t] = pos
        red[3, t] = neg
        red[4, t] = log_pos
        red[5, t] = log_neg
        cuda.syncthreads()
        stride = tpb // 2
        while stride > 0:
            if t < stride:
                for q in range(6):
                    red[q, t] += red[q, t + stride]
            cuda.syncthreads()
            stride //= 2
        if t == 0:
            loss, g1, g0, w1, w0 = _output_weights(
                red[0, 0],
                red[1, 0],
                red[2, 0],
                red[3, 0],
                red[4, 0],
                red[5, 0],
                code,
                beta,
                log_loss,
                K,
            )
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
            s = (sw[i] if weighted else 1.0) / mass
            if Y[i, k]:
                delta[r * K + k] = g[0] * delta[r * K + k] + g[2] * (s * dll)
            else:
                delta[r * K + k] = g[1] * delta[r * K + k] + g[3] * (s * dll)

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
    def delta_back(delta, rows, theta, offset, n_in, n_out, A, activation, out):
        """``out = (delta @ W^T) * f'`` with ``f'`` from the layer's input ``A``."""
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        r = cuda.blockIdx.y * tile + ty
        i = cuda.blockIdx.x * tile + tx
        d_tile = cuda.shared.array((tile, tile), float64)
        w_tile = cuda.shared.array((tile, tile), float64)
        i_load = cuda.blockIdx.x * tile + ty
        acc = 0.0
        for j0 in range(0, n_out, tile):
            j = j0 + tx
            d_tile[ty, tx] = delta[r * n_out + j] if r < rows and j < n_out else 0.0
            w_tile[ty, tx] = (
                theta[offset + i_load * n_out + j]
                if i_load < n_in and j < n_out
                else 0.0
            )
            cuda.syncthreads()
            for kk in range(tile):
                acc += d_tile[ty, kk] * w_tile[tx, kk]
            cuda.syncthreads()
        if r < rows and i < n_in:
            out[r * n_in + i] = _scale_by_derivative(acc, A[r * n_in + i], activation)

    @cuda.jit
    def batch_loss(theta, weight_ranges, out_loss, l2, losses, batch, status):
        """``losses[batch] = sum_k out_loss[k] + l2 / 2 * sum |W|^2``; one block."""
        t = cuda.threadIdx.x
        red = cuda.shared.array(tpb, float64)
        s = 0.0
        for layer in range(weight_ranges.shape[0] - 1, -1, -1):
            start = weight_ranges[layer, 0]
            for e in range(start + t, weight_ranges[layer, 1], tpb):
                s += theta[e] * theta[e]
        red[t] = s
        cuda.syncthreads()
        stride = tpb // 2
        while stride > 0:
            if t < stride:
                red[t] += red[t + stride]
            cuda.syncthreads()
            stride //= 2
        if t == 0:
            loss = 0.0
            for k in range(out_loss.shape[0]):
                loss += out_loss[k]
            loss += 0.5 * l2 * red[0]
            losses[batch] = loss
            if not math.isfinite(loss):
                status[0] = 1

    @cuda.jit
    def update(
        theta,
        grad,
        m,
        v,
        solver,
        step,
        learning_rate,
        momentum,
        beta_1,
        beta_2,
        epsilon,
        status,
    ):
        """Adam (``solver`` 0, ``step`` bias-corrected) or SGD with momentum."""
        for j in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
            if solver == 0:
                m[j] = beta_1 * m[j] + (1.0 - beta_1) * grad[j]
                v[j] = beta_2 * v[j] + (1.0 - beta_2) * grad[j] * grad[j]
                theta[j] -= step * m[j] / (math.sqrt(v[j]) + epsilon)
            else:
                m[j] = momentum * m[j] - learning_rate * grad[j]
                theta[j] += m[j]
            if not math.isfinite(theta[j]):
                status[0] = 1  # every writer stores the same value

    return types.SimpleNamespace(
        gather=gather,
        forward=forward,
        output=output,
        weight_grad=weight_grad,
        delta_back=delta_back,
        batch_loss=batch_loss,
        update=update,
    )


def _grid(count, threads):
    return min((count + threads - 1) // threads, MAX_BLOCKS)


class MLPEpoch:
    """Mini-batch epochs of the MLP on the GPU.

    ``MLPEpoch(X, Y, sw)`` copies the data to the GPU once; each call runs one
    epoch with the arguments and the result of ``_kernels_cpu.mlp_epoch``,
    whose algorithm it follows batch for batch.  ``theta``, ``m`` and ``v``
    are host arrays, copied in and updated in place.
    """

    def __init__(self, X, Y, sw):
        self._X_host = X
        self._X = cuda.to_device(X)
        self._Y = cuda.to_device(np.ascontiguousarray(Y, dtype=np.uint8))
        self._sw, self._weighted = _weights_on_device(sw)

    def __call__(
        self,
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
        if X is not self._X_host:
            raise ValueError("MLPEpoch was built for another X.")
        tile, tpb = TILE, THREADS_PER_BLOCK
        kernels = _mlp_kernels(tile, tpb)
        n = order.shape[0]
        dims = [int(w) for w in dims]
        n_layers = len(dims) - 1
        K = dims[-1]
        weighted = self._weighted
        offsets = np.zeros(n_layers + 1, dtype=np.int64)
        for layer in range(n_layers):
            offsets[layer + 1] = offsets[layer] + (dims[layer] + 1) * dims[layer + 1]
        weight_ranges = np.column_stack(
            [offsets[:-1], offsets[:-1] + np.multiply(dims[:-1], dims[1:])]
        ).astype(np.int64)
        starts = np.arange(0, n, batch_size)
        if weighted:
            masses = np.add.reduceat(np.asarray(sw)[order], starts)
        else:
            masses = np.minimum(batch_size, n - starts).astype(np.float64)

        stream = cuda.stream()
        order_d = cuda.to_device(np.ascontiguousarray(order, np.int64), stream=stream)
        theta_d = cuda.to_device(theta, stream=stream)
        m_d = cuda.to_device(m, stream=stream)
        v_d = cuda.to_device(v, stream=stream)
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
            l2 = alpha / (mass * weight_total if weighted else mass)
            kernels.gather[_grid(rows * dims[0], tpb), tpb, stream](
                self._X, order_d, start, rows, acts[0]
            )
            for layer in range(n_layers):
                n_in, n_out = dims[layer], dims[layer + 1]
                grid = ((n_out + tile - 1) // tile, (rows + tile - 1) // tile)
                kernels.forward[grid, block2, stream](
                    acts[layer],
                    rows,
                    theta_d,
                    int(offsets[layer]),
                    n_in,
                    n_out,
                    layer < n_layers - 1,
                    activation,
                    acts[layer + 1],
                )
            delta = deltas[0]
            kernels.output[K, tpb, stream](
                acts[n_layers],
                rows,
                self._Y,
                self._sw,
                weighted,
                order_d,
                start,
                mass,
                code,
                beta,
                amplifier,
                log_loss,
                delta,
                out_loss,
            )
            for layer in range(n_layers - 1, -1, -1):
                n_in, n_out = dims[layer], dims[layer + 1]
                grid = ((n_out + tile - 1) // tile, (n_in + tile) // tile)
                kernels.weight_grad[grid, block2, stream](
                    acts[layer],
                    delta,
                    rows,
                    theta_d,
                    int(offsets[layer]),
                    n_in,
                    n_out,
                    l2,
                    grad,
                )
                if layer > 0:
                    back = deltas[1] if delta is deltas[0] else deltas[0]
                    grid = ((n_in + tile - 1) // tile, (rows + tile - 1) // tile)
                    kernels.delta_back[grid, block2, stream](
                        delta,
                        rows,
                        theta_d,
                        int(offsets[layer]),
                        n_in,
                        n_out,
                        acts[layer],
                        activation,
                        back,
                    )
                    delta = back
            kernels.batch_loss[1, tpb, stream](
                theta_d, ranges_d, out_loss, l2, losses, batch, status
            )
            t += 1
            step = learning_rate * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
            kernels.update[_grid(theta.shape[0], tpb), tpb, stream](
                theta_d,
                grad,
                m_d,
                v_d,
                solver,
                step,
                learning_rate,
                momentum,
                beta_1,
                beta_2,
                epsilon,
                status,
            )
            used.append((batch, rows))
        theta_d.copy_to_host(theta, stream=stream)
        m_d.copy_to_host(m, stream=stream)
        v_d.copy_to_host(v, stream=stream)
        batch_losses = losses.copy_to_host(stream=stream)
        failed = status.copy_to_host(stream=stream)[0]
        stream.synchronize()
        if failed:
            return np.nan, t
        total = 0.0
        for batch, rows in used:
            total += batch_losses[batch] * rows
        return total / n, t
