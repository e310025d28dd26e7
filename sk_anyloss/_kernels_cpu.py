"""Numba CPU kernels, and the CPU backends of the two models.

Shapes and conventions: ``X`` is C-contiguous ``(n_samples, n_features)``,
float32 or float64, and is never copied or upcast; per-row arithmetic and all
accumulators are float64.  ``y`` holds 0/1 as uint8.  Sample weights are a
float64 array, always (ones when the user gave none); each backend scales
them as its kernels need.  The parameters are one float64 vector ``theta``.

Linear model: ``p = sigmoid(z)``, ``z = X w + b``, ``theta = [w, b]``; the
amplified score is ``a = sigmoid(L (p - 1/2))``.  With
``h_i = s_i L a_i (1 - a_i) p_i (1 - p_i)`` the gradient of ``1 - M`` is
``-(g1 S1 + g0 S0)``, where ``S1``, ``S0`` are the class-wise sums of
``h_i x_i`` and ``g1 = dM/dTP - dM/dFN``, ``g0 = dM/dFP - dM/dTN`` depend only
on the soft confusion matrix.  So the pass over ``X`` does not depend on the
metric (:func:`_linear_pass`): it returns the sums, and the metric's value and
partials are applied after it (:func:`_metric_step`).

Metrics reach the compiled loops as first-class functions (:func:`cpu_metric`,
a ``cfunc`` of one signature): the loops are compiled once, whatever the
metric, and loaded from Numba's disk cache afterwards.

Every kernel is compiled with NumPy's error model: a division by zero gives
an infinity or a NaN, which the loops' finiteness checks report, instead of
raising from inside compiled code.

Determinism: rows are cut into chunks of ``CHUNK_ROWS`` (a constant, not a
function of the thread count); each chunk's partial sums go to their own row of
``part`` and the rows are added in order.  The parallel and the serial build
of each kernel are compiled from the same source, so they give bit-identical
results, and so does any number of threads.
"""

import math
import types
from contextlib import contextmanager
from functools import cache
from typing import NamedTuple

import numpy as np
from numba import carray, cfunc, njit, prange
from numba import types as nbtypes

from . import _optim
from ._backend import compiled_for, cpu_kernel, one_blas_thread
from ._base import scaled_weights, weight_total

CHUNK_ROWS = 1024
BLOCK_ROWS = 16

# A compiled training loop returns to Python after this many entries of ``X``
# have been read (a few tenths of a second), so that Ctrl-C interrupts a fit.
ENTRIES_PER_CALL = 1 << 28

_inline = njit(inline="always")
_step_size, _update_at, _update, _track_best = _optim.build(_inline)
# The step over all parameters as a function of its own: inlined into the
# epoch's IR it ran about 15 % slower (measured, benchmarks/README.md).
_update = njit(error_model="numpy")(_update.py_func)

# --------------------------------------------------------------------------
# Metrics as first-class functions
#
# ``metric(cm, k, scale, params, partials) -> value``: ``cm`` points to the
# k x k confusion matrix (2 x 2, ``[tn, fp, fn, tp]``, for a binary target),
# normalised to sum to one, ``scale`` is its total weight (a user's function
# sees counts, ``cm * scale``), ``params`` points to the metric's parameters,
# ``partials`` receives dM/dcm.

_POINTER = nbtypes.CPointer(nbtypes.float64)
METRIC_SIGNATURE = nbtypes.float64(
    _POINTER, nbtypes.intp, nbtypes.float64, _POINTER, _POINTER
)


def _binary_metric(cm, k, scale, params, partials):
    # ``array_form`` is a global of each build (see cpu_metric).
    return array_form(  # noqa: F821
        carray(cm, (4,)), scale, carray(params, (1,)), carray(partials, (4,))
    )


@cache
def cpu_array_form(metric):
    """``metric``'s array form compiled for the CPU: a function of its own,
    which the ``cfunc`` of :func:`cpu_metric` calls."""
    # Called from compiled code only: no Python wrapper to generate, which
    # halves the time a user's metric takes to compile.
    jit = njit(
        error_model="numpy",
        cache=metric.cacheable,
        no_cpython_wrapper=True,
        no_cfunc_wrapper=True,
    )
    return metric.array_form(jit, f"cpu_metric_{metric.key}_array_form")


@cache
def _compiled_metric(metric):
    qualname = f"cpu_metric_{metric.key}"
    env = dict(_binary_metric.__globals__)
    env["array_form"] = cpu_array_form(metric)
    fn = types.FunctionType(_binary_metric.__code__, env, qualname)
    fn.__qualname__ = qualname
    return cfunc(METRIC_SIGNATURE, cache=metric.cacheable, error_model="numpy")(fn)


def cpu_metric(metric):
    """``metric`` (a ``_metrics.Metric``) compiled as the loops call it:
    a ``cfunc`` of ``METRIC_SIGNATURE``, compiled once per process (and
    cached on disk)."""
    return _compiled_metric(metric)


# --------------------------------------------------------------------------
# Linear model: the pass over X


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
def n_chunks(n):
    """Number of row chunks (rows of ``part``) of a pass over ``n`` rows."""
    return (n + CHUNK_ROWS - 1) // CHUNK_ROWS


@njit(inline="always")
def _linear_pass(X, y, sw, theta, amplifier, logistic, part):
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
    w = theta[:d].copy()  # a private copy: no aliasing with the outputs
    b = theta[d]
    for c in prange(part.shape[0]):
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
                s = sw[i]
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


# --------------------------------------------------------------------------
# Linear model: what follows a pass (also compiled for the GPU)


@njit(inline="always")
def _binary_cm(tp, fp, pos, neg, cm):
    """``cm = [tn, fp, fn, tp]`` from the soft positives and the class masses."""
    cm[0] = max(neg - fp, 0.0)
    cm[1] = fp
    cm[2] = max(pos - tp, 0.0)
    cm[3] = tp


@njit(inline="always")
def _gradient(total, d, g1, g0, alpha, fit_intercept, theta, grad):
    """``grad = -(g1 S1 + g0 S0) + alpha [w, 0]`` from a pass's sums;
    returns ``|w|^2``."""
    squares = 0.0
    for j in range(d):
        grad[j] = -(g1 * total[j] + g0 * total[d + j]) + alpha * theta[j]
        squares += theta[j] * theta[j]
    if fit_intercept:
        grad[d] = -(g1 * total[2 * d] + g0 * total[2 * d + 1])
    else:
        grad[d] = 0.0
    return squares


@njit(inline="always")
def _metric_loss(total, value, partials, alpha, fit_intercept, theta, grad):
    """Loss ``1 - M + alpha/2 |w|^2`` and its gradient (into ``grad``) from a
    pass's sums, ``M``'s value and its partials ``[d_tn, d_fp, d_fn, d_tp]``."""
    d = theta.shape[0] - 1
    g1 = partials[3] - partials[2]
    g0 = partials[1] - partials[0]
    squares = _gradient(total, d, g1, g0, alpha, fit_intercept, theta, grad)
    return 1.0 - value + 0.5 * alpha * squares


@njit(inline="always")
def _log_loss(total, target, alpha, fit_intercept, theta, grad):
    """The warm-up's loss from a logistic pass's sums: the class-balanced
    log-loss ``L1 / (2 pos) + L0 / (2 neg)`` plus ``alpha/2 |w|^2``, and its
    gradient (into ``grad``)."""
    d = theta.shape[0] - 1
    pos = target.pos
    neg = target.neg
    value = 1.0 - (total[2 * d + 2] / (2.0 * pos) + total[2 * d + 3] / (2.0 * neg))
    squares = _gradient(
        total, d, 0.5 / pos, -0.5 / neg, alpha, fit_intercept, theta, grad
    )
    return 1.0 - value + 0.5 * alpha * squares


# Slots of ``LoopState.counts``.
NO_IMPROVEMENT = 0
STATUS = 1
RUNNING = 0
STOPPED = 1  # a negative status -k: non-finite loss or weights at iteration k


class LoopState(NamedTuple):
    """The linear loop's state between iterations (and between calls of the
    compiled loop): the optimiser's, the best loss so far, and ``counts``
    (``NO_IMPROVEMENT``, ``STATUS``)."""

    optimizer: _optim.OptimizerState
    best: np.ndarray
    counts: np.ndarray


def new_loop_state(n_parameters):
    return LoopState(
        _optim.new_state(n_parameters), np.full(1, np.inf), np.zeros(2, np.int64)
    )


@njit(inline="always")
def _end_iteration(loss, theta, grad, settings, state, curve):
    """The optimiser's step and the stopping rule after an iteration's loss
    and gradient; sets ``state.counts[STATUS]``."""
    it = state.optimizer.steps[0]
    finite = math.isfinite(loss)
    for j in range(theta.shape[0]):
        finite = finite and math.isfinite(grad[j])
    if finite:
        curve[it] = loss
        finite = _update(settings.optimizer, theta, grad, state.optimizer)
    if not finite:
        state.counts[STATUS] = -(it + 1)
        return
    if settings.use_tol:
        state.best[0], state.counts[NO_IMPROVEMENT] = _track_best(
            loss, state.best[0], state.counts[NO_IMPROVEMENT], settings.tol
        )
        if state.counts[NO_IMPROVEMENT] >= settings.n_iter_no_change:
            state.counts[STATUS] = STOPPED
    if it + 1 >= settings.max_iter:
        state.counts[STATUS] = STOPPED


@njit(inline="always")
def _metric_loss_grad(total, target, theta, grad, metric, params, alpha,
                      fit_intercept):  # fmt: skip
    """The metric loss and its gradient (into ``grad``) from a pass's sums."""
    d = theta.shape[0] - 1
    cm = np.empty(4)
    partials = np.empty(4)
    _binary_cm(total[2 * d + 2], total[2 * d + 3], target.pos, target.neg, cm)
    value = metric(cm.ctypes, 2, target.scale, params.ctypes, partials.ctypes)
    return _metric_loss(total, value, partials, alpha, fit_intercept, theta, grad)


@njit(inline="always")
def _metric_step(total, target, theta, grad, settings, metric, params, state, curve):
    """One iteration after its pass: the metric, the loss and its gradient,
    the optimiser's step and the stopping rule."""
    loss = _metric_loss_grad(
        total, target, theta, grad, metric, params, settings.alpha,
        settings.fit_intercept,
    )  # fmt: skip
    _end_iteration(loss, theta, grad, settings, state, curve)


def _pass_source(X, y, sw, theta, amplifier, logistic):
    """One pass over ``X`` at ``theta``: the per-chunk sums ``part``."""
    part = np.empty((n_chunks(X.shape[0]), 2 * X.shape[1] + 4))
    _linear_pass(X, y, sw, theta, amplifier, logistic, part)
    return part


def _log_loss_grad_source(X, target, sw, theta, alpha, fit_intercept, grad):
    """The warm-up's loss at ``theta`` (one pass), its gradient into ``grad``.

    Returns a float only: a kernel that returns arrays builds Python objects
    on its way out, and a Ctrl-C arriving then surfaced as a ``SystemError``
    instead of a ``KeyboardInterrupt``.
    """
    part = np.empty((n_chunks(X.shape[0]), 2 * X.shape[1] + 4))
    total = np.empty(part.shape[1])
    _linear_pass(X, target.y, sw, theta, 1.0, True, part)
    _reduce_chunks(part, total)
    return _log_loss(total, target, alpha, fit_intercept, theta, grad)


def _fit_source(X, target, sw, theta, settings, metric, params, state, curve,
                max_calls):  # fmt: skip
    """Iterations of the metric loop from ``state``, updating ``theta`` in
    place, until the loop stops or ``max_calls`` iterations have run; returns
    the status (``RUNNING`` if the loop was only paused)."""
    part = np.empty((n_chunks(X.shape[0]), 2 * X.shape[1] + 4))
    total = np.empty(part.shape[1])
    grad = np.empty(theta.shape[0])
    for _ in range(max_calls):
        if state.counts[STATUS] != RUNNING:
            break
        _linear_pass(X, target.y, sw, theta, settings.amplifier, False, part)
        _reduce_chunks(part, total)
        _metric_step(total, target, theta, grad, settings, metric, params, state, curve)
    return state.counts[STATUS]


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
    return njit(parallel=parallel, nogil=True, cache=True, error_model="numpy")(fn)


class _Variants:
    """The serial and the parallel build of one kernel."""

    def __init__(self, source):
        self.serial = _jit_variant(source, parallel=False)
        self.parallel = _jit_variant(source, parallel=True)


linear_pass = _Variants(_pass_source)
log_loss_grad = _Variants(_log_loss_grad_source)
fit_linear = _Variants(_fit_source)

# What follows a pass, for code that runs passes from the host (the tests,
# the Dask backend).
metric_loss_grad = njit(cache=True, error_model="numpy")(_metric_loss_grad.py_func)
metric_step = njit(cache=True, error_model="numpy")(_metric_step.py_func)


@njit(cache=True, error_model="numpy")
def reduce_chunks(part):
    """``part``'s rows added in order: the sums of a whole pass."""
    total = np.empty(part.shape[1])
    _reduce_chunks(part, total)
    return total


class BinaryTarget(NamedTuple):
    """One binary problem of a linear fit: 0/1 labels, the class masses (the
    shares of the total weight) and the total weight (the number of rows
    when unweighted): the scale of the counts a user's metric sees."""

    y: np.ndarray
    pos: float
    neg: float
    scale: float


def normalised_weights(sample_weight):
    """The sample weights divided by their sum (without overflow or
    underflow, see ``_base.scaled_weights``)."""
    w, _ = scaled_weights(sample_weight)
    return w / w.sum()


def class_masses(y01, sample_weight):
    """Shares ``(pos, neg)`` of the total weight on the positives and the
    negatives; exact class proportions for uniform weights."""
    w, _ = scaled_weights(sample_weight)
    mask = y01.astype(bool)
    total = w.sum()
    return float(w[mask].sum() / total), float(w[~mask].sum() / total)


class LinearBackend:
    """The linear model's full-batch passes over one ``X``, on the CPU.

    ``LinearBackend(X, sample_weight)`` keeps the data; :meth:`target` makes
    a binary problem of it, :meth:`log_loss` evaluates the warm-up's loss and
    :meth:`fit` runs the metric loop. Whether a pass runs serially or on
    several threads is decided here, by ``_backend.cpu_kernel``.
    """

    def __init__(self, X, sample_weight):
        self._X = X
        self._sw = normalised_weights(sample_weight)
        self._sample_weight = sample_weight
        self._total = weight_total(sample_weight)
        self._entries = X.shape[0] * X.shape[1]

    def target(self, y01):
        """The binary problem with labels ``y01`` (0/1)."""
        pos, neg = class_masses(y01, self._sample_weight)
        y = np.ascontiguousarray(y01, dtype=np.uint8)
        return BinaryTarget(y, pos, neg, self._total)

    @contextmanager
    def log_loss(self, target, alpha, fit_intercept):
        """Context yielding ``loss_grad(theta) -> (loss, grad)``, the warm-up's
        objective; BLAS runs on one thread inside it (see ``cpu_kernel``)."""
        with cpu_kernel(log_loss_grad, self._entries, serial_blas=True) as kernel:

            def loss_grad(theta):
                grad = np.empty(theta.shape[0])
                loss = kernel(
                    self._X, target, self._sw, theta, alpha, fit_intercept, grad
                )
                return loss, grad

            yield loss_grad

    def fit(self, target, theta, settings, metric):
        """Run the metric loop from ``theta`` (updated in place); returns
        ``(status, loss_curve)``, status ``STOPPED`` or ``-k`` if the loss or
        the weights became non-finite at iteration ``k``."""
        compiled = cpu_metric(metric)
        state = new_loop_state(theta.shape[0])
        curve = np.empty(settings.max_iter)
        per_call = max(1, ENTRIES_PER_CALL // max(self._entries, 1))
        args = (
            self._X, target, self._sw, theta, settings, compiled, metric.params,
            state, curve, per_call,
        )  # fmt: skip
        status = RUNNING
        with cpu_kernel(fit_linear, self._entries) as kernel:
            while status == RUNNING:
                status = kernel(*args)
        return int(status), curve[: state.optimizer.steps[0]]


# --------------------------------------------------------------------------
# Multi-layer perceptron
#
# Layer widths ``dims = [n_features, h_1, ..., h_k, n_outputs]``.  All weights
# and biases live in one float64 vector ``theta``: for layer ``l`` the matrix
# ``W_l`` (dims[l], dims[l + 1]), row-major, then the bias ``b_l``.  Matrix
# products call BLAS through ``np.dot``, held to one thread during an epoch:
# on several threads BLAS may split a product's sums differently (measured:
# the last bit of the weights at batches of 2,000), and the model must not
# depend on the thread count.  Output unit ``k`` gives ``p_k = sigmoid(z_k)``
# and is trained on ``1 - M`` of its own soft confusion matrix (one-vs-rest) plus
# ``log_loss`` times the batch's class-balanced log-loss (the mean over the
# two classes of each class's mean log-loss); the batch loss is the mean over
# outputs plus ``alpha / (2 b) * sum |W_l|^2``, as in
# scikit-learn's MLPClassifier, with ``b`` the batch's total sample weight (its
# size when unweighted), so that a weight of 2 acts as a repeated row.


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
def _output_row(sums, z, positive, s, amplifier, log_loss):
    """Add a row with score ``z`` and weight ``s`` to an output unit's sums
    ``(tp, fp, pos, neg, log_pos, log_neg)`` (the soft positives, the class
    masses and the weighted log-losses of each class); returns the new sums
    and the row's ``s dA/dz`` and ``s d(log-loss)/dz``."""
    a, dadz, ll, dll = _output_terms(z, positive, amplifier, log_loss)
    tp, fp, pos, neg, log_pos, log_neg = sums
    if positive:
        tp += s * a
        pos += s
        log_pos += s * ll
    else:
        fp += s * a
        neg += s
        log_neg += s * ll
    return (tp, fp, pos, neg, log_pos, log_neg), s * dadz, s * dll


@njit(inline="always")
def _output_weights(value, partials, pos, neg, log_pos, log_neg, log_loss, K):
    """An output unit's ``(loss, g1, g0, w1, w0)`` from its batch sums.

    ``value`` and ``partials`` are the metric and its partials at the unit's
    soft confusion matrix; ``pos``, ``neg`` the class masses and ``log_pos``,
    ``log_neg`` the weighted log-losses of the positives and the negatives.
    The loss is ``(1 - M + log_loss * class-balanced log-loss) / K``; a row's
    ``d loss / dz`` is ``s * (g dA/dz + w d(log-loss)/dz)`` with the ``g``,
    ``w`` of its class (1 positive, 0 negative).  A class absent from the
    batch has no log-loss term.
    """
    w1 = 0.5 * log_loss / (pos * K) if pos > 0.0 else 0.0
    w0 = 0.5 * log_loss / (neg * K) if neg > 0.0 else 0.0
    loss = (1.0 - value) / K + w1 * log_pos + w0 * log_neg
    g1 = -(partials[3] - partials[2]) / K
    g0 = -(partials[1] - partials[0]) / K
    return loss, g1, g0, w1, w0


@njit(cache=True, nogil=True, error_model="numpy")
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


@njit(cache=True, nogil=True, error_model="numpy")
def mlp_loss_grad(X, Y, s, theta, dims, settings, metric, params, l2, count, grad):
    """Batch loss and its gradient (into ``grad``) with respect to ``theta``.

    ``X`` (b, d) float64, ``Y`` (b, n_outputs) 0/1 uint8, ``s`` (b,) weights
    summing to one and ``count`` their raw total (the batch's size when
    unweighted); ``settings`` an ``MLPSettings``, ``metric`` the metric's
    first-class function and ``params`` its parameters; the penalty is
    ``l2 / 2 * sum |W_l|^2``.
    """
    offsets = _layer_offsets(dims)
    n_layers = dims.shape[0] - 1
    acts = mlp_forward(X, theta, dims, settings.activation)
    Z = acts[n_layers]
    b, K = Z.shape
    delta = np.empty((b, K))
    d_log = np.empty(b)
    cm = np.empty(4)
    partials = np.empty(4)
    loss = 0.0
    for k in range(K):
        sums = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for i in range(b):
            sums, delta[i, k], d_log[i] = _output_row(
                sums, Z[i, k], Y[i, k], s[i], settings.amplifier, settings.log_loss
            )
        tp, fp, pos, neg, log_pos, log_neg = sums
        _binary_cm(tp, fp, pos, neg, cm)
        value = metric(cm.ctypes, 2, count, params.ctypes, partials.ctypes)
        unit_loss, g1, g0, w1, w0 = _output_weights(
            value, partials, pos, neg, log_pos, log_neg, settings.log_loss, K
        )
        for i in range(b):
            if Y[i, k]:
                delta[i, k] = g1 * delta[i, k] + w1 * d_log[i]
            else:
                delta[i, k] = g0 * delta[i, k] + w0 * d_log[i]
        loss += unit_loss
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
            _scale_by_derivative(delta, acts[layer], settings.activation)
    return loss + 0.5 * l2 * penalty


@njit(cache=True, nogil=True, error_model="numpy")
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


@njit(cache=True, nogil=True, error_model="numpy")
def mlp_epoch(X, Y, sw, scale, order, theta, dims, settings, metric, params, state):
    """One pass over the rows ``order`` in mini-batches, updating ``theta``
    and the optimiser's ``state`` in place.

    ``sw`` are the sample weights divided by ``scale``. Returns the mean batch
    loss, or NaN if the loss, the gradient or the weights became non-finite.
    """
    n = order.shape[0]
    d = X.shape[1]
    K = Y.shape[1]
    batch_size = settings.batch_size
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
            sb[r] = sw[i]
        mass = np.sum(sb)
        if not mass > 0.0:
            continue  # every sample of this batch has zero weight
        sb /= mass
        count = mass * scale
        loss = mlp_loss_grad(
            Xb, Yb, sb, theta, dims, settings, metric, params, settings.alpha / count,
            count, grad,
        )  # fmt: skip
        finite = _update(settings.optimizer, theta, grad, state)
        if not (finite and math.isfinite(loss)):
            return np.nan
        total += loss * b
    return total / n


def mlp_weights(sample_weight):
    """``(w, scale)``: the sample weights divided by their largest value, and
    that value (``inf`` where it overflows a float, see ``mlp_epoch``)."""
    scale = float(sample_weight.max())
    return sample_weight / scale, scale


class MLPBackend:
    """The MLP's mini-batch epochs over one ``(X, Y)``, on the CPU.

    ``Y`` (n, n_outputs) holds each output unit's 0/1 target. Sample weights
    are divided by their largest value (the batch's share of the weight is
    what the loss uses; ``scale`` keeps the L2 penalty's scale).
    """

    def __init__(self, X, Y, sample_weight):
        self._X = X
        self._Y = np.ascontiguousarray(Y, dtype=np.uint8)
        self._scale = float(sample_weight.max())
        self._sw = sample_weight / self._scale
        self._kernel = None

    def epoch(self, order, theta, dims, settings, metric, state):
        """One epoch over the rows ``order``; returns its mean batch loss
        (NaN if training diverged)."""
        args = (
            self._X, self._Y, self._sw, self._scale, order, theta, dims, settings,
            cpu_metric(metric), metric.params, state,
        )  # fmt: skip
        if self._kernel is None:
            self._kernel = compiled_for(mlp_epoch, args)
        # BLAS on several threads may split a product's sums differently:
        # one thread keeps the model independent of the thread count.
        with one_blas_thread():
            return self._kernel(*args)
