"""Numba CPU kernels, and the CPU backends of the two models.

Shapes and conventions: ``X`` is C-contiguous ``(n_samples, n_features)``,
float32 or float64, and is never copied or upcast; per-row arithmetic and all
accumulators are float64, except the linear labels pass's two matrix
products, which run in the data's precision (see :func:`_labels_pass`).
``y`` holds 0/1 as uint8.  Sample weights are a float64 array, always (ones
when the user gave none); each backend scales them as its kernels need.
The parameters are one float64 vector ``theta``.

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
from numba.extending import overload

from . import _optim
from ._backend import compiled_for, cpu_kernel, one_blas_thread
from ._base import scaled_weights, weight_total
from ._blas import matmul, matmul_nt, matmul_tn, vecmat
from ._metrics_multi import LABELS, MATRIX, work_size
from ._settings import SIGMOID, SOFTMAX
from ._vmath import exp_neg

CHUNK_ROWS = 1024
BLOCK_ROWS = 16
# Entries of X per block of a labels pass (see block_rows): 512 KiB of
# float64, which stays in a core's L2 cache between the two products.
BLOCK_ENTRIES = 1 << 16
# A labels pass's class-wise sums ``H X_b`` (2 L rows) are one vector-matrix
# product per row of ``H`` up to this many rows, else one matrix product:
# OpenBLAS's matrix product with 2 to 6 rows ran 1.3-7x slower than as many
# vector-matrix products (d = 20 to 200, float32 and float64), and faster
# from 20 rows (benchmarks/README.md).
SUMS_BY_ROWS = 6

# A compiled training loop returns to Python after this many entries of ``X``
# have been read (a few tenths of a second), so that Ctrl-C interrupts a fit.
ENTRIES_PER_CALL = 1 << 28

_inline = njit(inline="always")
# A function called from compiled code, compiled once and called, not copied
# into each caller: Numba's inlining (``inline="always"``) copies the callee's
# code at every call site, and copying a large function took seconds of a
# cold first fit.  For functions that run once a batch or an iteration; the
# per-row helpers stay inlined, for LLVM to vectorise their loops.
_called = njit(error_model="numpy")
_step_size, _update_at, _update, _track_best = _optim.build(_inline)
# The step over all parameters as a function of its own: inlined into the
# epoch's IR it ran about 15 % slower (measured, benchmarks/README.md).
_update = njit(error_model="numpy")(_update.py_func)

# --------------------------------------------------------------------------
# Metrics as first-class functions
#
# ``metric(cm, k, scale, params, partials) -> value`` in one of the two
# layouts of ``_metrics_multi``: ``LABELS``, ``cm`` points to ``k`` binary
# matrices ``[tn, fp, fn, tp]`` (a binary target is one label), or
# ``MATRIX``, ``cm`` points to a k x k multiclass matrix.  Each matrix is
# normalised to sum to one, ``scale`` is its total weight (a user's function
# sees counts, ``cm * scale``), ``params`` points to the metric's parameters
# (``[beta, average code]``), ``partials`` receives dM/dcm.

_POINTER = nbtypes.CPointer(nbtypes.float64)
METRIC_SIGNATURE = nbtypes.float64(
    _POINTER, nbtypes.intp, nbtypes.float64, _POINTER, _POINTER
)


def _labels_metric(cm, k, scale, params, partials):
    # ``binary`` and ``labels`` are globals of each build (see cpu_metric).
    p = carray(params, (2,))
    if k == 1:  # one label: the binary metric itself, no scratch space
        return binary(carray(cm, (4,)), scale, p, carray(partials, (4,)))  # noqa: F821
    return labels(  # noqa: F821
        carray(cm, (4 * k,)), scale, p, carray(partials, (4 * k,)),
        np.empty(work_size(LABELS, k)),
    )  # fmt: skip


def _binary_metric(cm, k, scale, params, partials):
    # ``binary`` is a global of each build (see cpu_metric); ``k`` is 1.
    p = carray(params, (2,))
    return binary(carray(cm, (4,)), scale, p, carray(partials, (4,)))  # noqa: F821


def _matrix_metric(cm, k, scale, params, partials):
    # ``matrix`` is a global of each build (see cpu_metric).
    return matrix(  # noqa: F821
        carray(cm, (k, k)), scale, carray(params, (2,)), carray(partials, (k, k)),
        np.empty(work_size(MATRIX, k)),
    )  # fmt: skip


@cache
def cpu_forms(metric):
    """``metric``'s ``(binary, labels, matrix)`` forms compiled for the CPU:
    functions of their own, which the ``cfunc`` of :func:`cpu_metric`
    calls."""
    # Called from compiled code only: no Python wrapper to generate, which
    # halves the time a user's metric takes to compile.
    jit = njit(error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)
    qualname = f"cpu_metric_{metric.key}_array_form"
    array_form = metric.array_form(jit, qualname)  # one build for the three
    return (array_form, *metric.forms(jit, qualname, array_form))


def cpu_metric(metric, layout=LABELS, k=None):
    """``metric`` (a ``_metrics.Metric``) compiled as the loops call it in
    ``layout``: a ``cfunc`` of ``METRIC_SIGNATURE``, compiled once per
    process and layout (and cached on disk, where the metric is
    ``cacheable``).

    ``k`` is the ``k`` the loop calls it with, where it is known: for one
    label (``LABELS`` and 1: a binary target) the build holds the binary
    metric alone, not the average over several labels, which is most of
    what a metric compiles (about 0.8 s of a cold first fit).
    """
    if layout == LABELS and k == 1:
        return _compiled_metric(metric, "binary", _binary_metric)
    if layout == LABELS:
        return _compiled_metric(metric, "labels", _labels_metric)
    return _compiled_metric(metric, "matrix", _matrix_metric)


@cache
def _compiled_metric(metric, kind, source):
    qualname = f"cpu_metric_{metric.key}_{kind}"
    env = dict(source.__globals__)
    env["binary"], env["labels"], env["matrix"] = cpu_forms(metric)
    fn = types.FunctionType(source.__code__, env, qualname)
    fn.__qualname__ = qualname
    return cfunc(METRIC_SIGNATURE, cache=metric.cacheable, error_model="numpy")(fn)


# --------------------------------------------------------------------------
# Linear model: one pass over X
#
# Parameters: one row ``[w_k, b_k]`` (d + 1 entries) per output, row-major in
# ``theta``: one output for a binary target, one per label for a multilabel
# target, one per class for a multiclass target.


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


def _make_amplified(one):
    """``amplified`` computed in the precision of ``one`` (1.0 or
    ``np.float32(1.0)``): one source for both builds."""
    half = one / 2
    zero = one - one

    @njit(inline="always")
    def amplified(z, amplifier):
        """Return ``(a, h)`` with ``a = A(sigmoid(z))`` and ``h = dA/dz``.

        Written so that nothing cancels: with ``q = exp(-|z|)``,
        ``p (1 - p) = q / (1 + q)^2`` and ``|p - 1/2| = (1 - q) / (2 (1 + q))``;
        with ``e = exp(-|u|)``, ``a (1 - a) = e / (1 + e)^2``.  Any amplifier
        works in float32 and float64, and ``a >= 1/2`` exactly where
        ``sigmoid(z) >= 1/2`` in floating point (the rule ``predict`` applies).
        """
        z = z * one
        q = exp_neg(-abs(z))
        r = one / (one + q)
        u = half * amplifier * (one - q) * r
        e = exp_neg(-u)
        ra = one / (one + e)
        a = ra if z >= zero else e * ra
        return a, amplifier * (e * ra * ra) * (q * r * r)

    return amplified


amplified = _make_amplified(1.0)
# float32 arithmetic (the amplifier must be float32 too): the labels pass of
# float32 data, whose scores are float32 products.
amplified32 = _make_amplified(np.float32(1.0))


def _amplified_as(z, amplifier):
    """``amplified`` in the precision of ``z``."""


@overload(_amplified_as, inline="always")
def _amplified_as_impl(z, amplifier):
    if z == nbtypes.float32:
        return lambda z, amplifier: amplified32(z, amplifier)
    return lambda z, amplifier: amplified(z, amplifier)


@njit(inline="always")
def _sigmoid_softplus(t):
    """``(sigmoid(t), log(1 + exp(t)))`` without overflow or cancellation."""
    q = exp_neg(-abs(t))
    r = 1.0 / (1.0 + q)
    return (r if t >= 0.0 else q * r), max(t, 0.0) + math.log1p(q)


@njit(inline="always")
def softmax(z, K, out):
    """``out[:K] = softmax(z[:K])`` (``out`` may be ``z``); returns ``(top,
    total)``: the index of the largest score (the first on ties) and
    ``sum_k exp(z_k - z_top)``, so that ``log softmax(z)_k = z_k - z_top -
    log(total)``."""
    top = 0
    for k in range(1, K):
        if z[k] > z[top]:
            top = k
    largest = z[top]
    total = 0.0
    for k in range(K):
        e = math.exp(z[k] - largest)
        out[k] = e
        total += e
    inv = 1.0 / total
    for k in range(K):
        out[k] *= inv
    return top, total


@njit(inline="always")
def softmax_jvp(q, v, top, K, out):
    """``out = (diag(q) - q q^T) v``: the Jacobian of the softmax (symmetric)
    at the probabilities ``q`` times ``v``.  Entry ``top`` (the largest
    ``q``) is computed as ``q_top sum_{m != top} q_m (v_top - v_m)``: nothing
    cancels where ``q_top`` rounds to 1."""
    r = 0.0
    for m in range(K):
        r += q[m] * v[m]
    rest = 0.0
    for m in range(K):
        if m != top:
            out[m] = q[m] * (v[m] - r)
            rest += q[m] * (v[top] - v[m])
    out[top] = q[top] * rest


@njit(inline="always")
def amplified_softmax(z, K, amplifier, p, a):
    """``p = softmax(z)`` and the soft class assignment ``a = softmax(c p)``
    with ``c = amplifier / 2`` (for two classes, the binary ``A``); returns
    the top class, the largest entry of ``z``, ``p`` and ``a`` alike."""
    top, _ = softmax(z, K, p)
    c = 0.5 * amplifier
    for k in range(K):
        a[k] = c * p[k]
    softmax(a, K, a)
    return top


@njit(inline="always")
def softmax_metric_dz(p, a, top, v, K, amplifier, u, out):
    """``out = d M / d z`` of a row with probabilities ``p``, assignment
    ``a`` and ``v = dM/dC[y, :]`` (its true class's row): the Jacobians of
    both softmaxes, ``J_p (c J_a v)``; ``u`` is scratch."""
    softmax_jvp(a, v, top, K, u)
    c = 0.5 * amplifier
    for k in range(K):
        u[k] *= c
    softmax_jvp(p, u, top, K, out)


# --------------------------------------------------------------------------
# Softmax rows by blocks, class-major: vectorised over rows
#
# The linear model's CPU passes hold a block of rows' scores as a K x m
# array (``Z[k, i]``: row ``i``'s score for class ``k``), so that every loop
# over a class runs over the rows on SIMD lanes, with the package's
# vectorisable ``exp`` (a row's loop over its K classes is too short to
# vectorise).  Each function is compiled on its own, not inlined into the
# ``prange`` bodies that call it: inlined there, LLVM did not vectorise its
# loops (see :func:`_label_terms`).  The arithmetic is that of the per-row
# functions above (:func:`amplified_softmax`, :func:`softmax_metric_dz`, which
# the MLP and the GPU use), operation for operation, with ``exp_neg`` for
# ``math.exp``.


@njit(inline="always")
def _block_top(Z, m, top, big):
    """``top[i]``, ``big[i]``: row ``i``'s largest entry of ``Z[:, i]`` and
    its class (the first on ties)."""
    K = Z.shape[0]
    for i in range(m):
        big[i] = Z[0, i]
        top[i] = 0
    for k in range(1, K):
        for i in range(m):
            bigger = Z[k, i] > big[i]
            big[i] = Z[k, i] if bigger else big[i]
            top[i] = k if bigger else top[i]


@njit(inline="always")
def _block_softmax(Z, m, scale, big, out, total, inv):
    """``out[:, i] = softmax(scale Z[:, i])`` given ``big[i]``, the largest
    ``scale Z[k, i]``; ``total[i]`` receives the softmax's denominator ``sum_k
    exp(scale Z[k, i] - big[i])``, ``inv`` is scratch.  ``out`` must not be
    ``Z``: LLVM's run-time check of the loops' arrays for overlap would then
    take the loop that is not vectorised."""
    K = Z.shape[0]
    for i in range(m):
        total[i] = 0.0
    for k in range(K):
        for i in range(m):
            e = exp_neg(scale * Z[k, i] - big[i])
            out[k, i] = e
            total[i] += e
    for i in range(m):
        inv[i] = 1.0 / total[i]
    for k in range(K):
        for i in range(m):
            out[k, i] *= inv[i]


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_block_counts(Z, m, t, s, amplifier, P, A, top, acc):
    """The first ``m`` rows (columns) of a class-major block of scores ``Z``
    (K x m or wider): ``P`` receives the probabilities ``p = softmax(z)``,
    ``A`` the assignments ``a = softmax(amplifier / 2 p)``, ``top`` each
    row's top class; each row (class ``t[i]``, weight ``s[i]``) adds ``s a``
    to row ``t`` of the soft confusion matrix ``acc`` (K x K, flat)."""
    K = Z.shape[0]
    big = np.empty(m)
    total = np.empty(m)
    inv = np.empty(m)
    _block_top(Z, m, top, big)
    _block_softmax(Z, m, 1.0, big, P, total, inv)
    c = 0.5 * amplifier
    for i in range(m):
        big[i] = 0.0
    for k in range(K):
        for i in range(m):
            big[i] = max(big[i], c * P[k, i])
    _block_softmax(P, m, c, big, A, total, inv)
    for i in range(m):
        o = t[i] * K
        si = s[i]
        for k in range(K):
            acc[o + k] += si * A[k, i]


@njit(inline="always")
def _block_jvp(q, top, m, v, r, rest, vt):
    """``v[:, i] = (diag(q_i) - q_i q_i^T) v[:, i]`` for the first ``m``
    columns (:func:`softmax_jvp`, the top class's entry without
    cancellation); ``r``, ``rest``, ``vt`` are scratch."""
    K = q.shape[0]
    for i in range(m):
        r[i] = 0.0
        rest[i] = 0.0
        vt[i] = v[top[i], i]
    for k in range(K):
        for i in range(m):
            r[i] += q[k, i] * v[k, i]
    # The top class's own term in ``rest`` is q_top (v_top - v_top) = 0.
    for k in range(K):
        for i in range(m):
            vk = v[k, i]
            rest[i] += q[k, i] * (vt[i] - vk)
            v[k, i] = q[k, i] * (vk - r[i])
    for i in range(m):
        v[top[i], i] = q[top[i], i] * rest[i]


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_block_terms(P, A, top, m, t, s, amplifier, D, H):
    """Each row's coefficients of ``x_i`` in the gradient, class-major:
    ``H[:, i] = s_i dM/dz_i`` through both softmaxes (:func:`softmax_metric_dz`)
    from the probabilities ``P``, assignments ``A`` and top classes ``top``
    of :func:`softmax_block_counts` and ``D = dM/dC`` (row ``t[i]`` for row
    ``i``)."""
    K = P.shape[0]
    r = np.empty(m)
    rest = np.empty(m)
    vt = np.empty(m)
    for k in range(K):
        for i in range(m):
            H[k, i] = D[t[i], k]
    _block_jvp(A, top, m, H, r, rest, vt)
    c = 0.5 * amplifier
    for k in range(K):
        for i in range(m):
            H[k, i] *= c
    _block_jvp(P, top, m, H, r, rest, vt)
    for k in range(K):
        for i in range(m):
            H[k, i] *= s[i]


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_block_log_loss(Z, m, t, s, weights, H):
    """The warm-up's terms of a class-major block of scores ``Z``: ``H[:, i]
    = w_i (p_i - e_{t_i})``, the gradient of row ``i``'s log-loss ``-w_i log
    p_{i, t_i}`` (``p_i = softmax(z_i)``, ``w_i = s_i weights[t_i]``); returns
    the block's log-loss.  ``H`` must not be ``Z`` (see
    :func:`_block_softmax`)."""
    K = Z.shape[0]
    big = np.empty(m)
    total = np.empty(m)
    inv = np.empty(m)
    top = np.empty(m, dtype=np.int64)
    w = np.empty(m)
    zt = np.empty(m)
    rest = np.empty(m)
    _block_top(Z, m, top, big)
    for i in range(m):
        w[i] = s[i] * weights[t[i]]
        zt[i] = Z[t[i], i]
    _block_softmax(Z, m, 1.0, big, H, total, inv)
    loss = 0.0
    for i in range(m):
        loss += w[i] * (math.log(total[i]) + (big[i] - zt[i]))
    # d/dz of -log p_t is p - e_t; p_t - 1 = -sum_{k != t} p_k
    for i in range(m):
        rest[i] = 0.0
    for k in range(K):
        for i in range(m):
            rest[i] += H[k, i] if k != t[i] else 0.0
    for k in range(K):
        for i in range(m):
            H[k, i] *= w[i]
    for i in range(m):
        H[t[i], i] = -w[i] * rest[i]
    return loss


@njit(inline="always")
def n_chunks(n):
    """Number of row chunks (rows of ``part``) of a pass over ``n`` rows."""
    return (n + CHUNK_ROWS - 1) // CHUNK_ROWS


@njit(inline="always")
def label_width(d):
    """Entries of one label's sums in a row of ``part`` (see _labels_pass)."""
    return 2 * d + 4


@njit(inline="always")
def block_rows(d):
    """Rows of ``X`` per block of a labels pass: a chunk, or fewer so that a
    block (``BLOCK_ENTRIES`` entries) stays in the core's cache between the
    two products that read it."""
    return max(8, min(CHUNK_ROWS, BLOCK_ENTRIES // max(d, 1)))


@njit(inline="always")
def _add4(acc, w):
    return (acc[0] + w[0], acc[1] + w[1], acc[2] + w[2], acc[3] + w[3])


@njit(inline="always")
def _weigh_row(i, y, s, h1, h0):
    """Row ``i``'s terms, weighted in float64 and split by class: ``h1[i]``
    and ``h0[i]`` become ``h = s dA/dz`` or zero (they held ``dA/dz`` and
    ``a``); returns the row's share of ``(sum h1, sum h0, TP, FP)``."""
    h = s[i] * h1[i]
    sa = s[i] * h0[i]
    # Selects, not branches: LLVM then packs the four rows of a step into
    # vectors (with float32 terms, branches left them scalar, 2.5x slower).
    pos = y[i] != 0
    hp = h if pos else 0.0
    hn = 0.0 if pos else h
    h1[i] = hp
    h0[i] = hn
    return (hp, hn, sa if pos else 0.0, 0.0 if pos else sa)


@njit(cache=True, nogil=True, error_model="numpy")
def _label_terms(z, bias, y, s, amplifier, logistic, h1, h0, sa):
    """Each row's terms of one label in a block of rows: ``h = s dA/dz`` at
    the score ``z + bias`` into ``h1`` (positives) or ``h0`` (negatives,
    zero in the other); returns ``(sum h1, sum h0, TP, FP)`` (see
    :func:`_labels_pass`; with ``logistic``, the log-loss's terms, in
    float64, with ``s a`` in ``sa``).  ``z``, ``bias`` and ``amplifier``
    share a precision, the amplification's.

    Compiled on its own, not inlined: in a ``prange`` body LLVM did not
    vectorise the amplification loop (each row's ``exp`` on SIMD lanes,
    :func:`exp_neg`), and that loop is most of a pass's arithmetic.  The
    amplification runs in the data's precision alone (float32 data fill
    twice as many lanes as float64), then a second loop weighs the rows and
    sums them in float64, row ``i`` into the ``i % 4``-th of four partial
    sums, which LLVM can vectorise (one running sum cannot be: each addition
    waits for the one before).
    """
    m = z.shape[0]
    if logistic:
        for i in range(m):
            t = float(z[i]) + float(bias)
            pos = y[i] != 0
            dadz, a = _sigmoid_softplus(-t if pos else t)
            h = s[i] * dadz
            h1[i] = h if pos else 0.0
            h0[i] = 0.0 if pos else h
            sa[i] = s[i] * a
        sum1 = 0.0
        sum0 = 0.0
        tp = 0.0
        fp = 0.0
        for i in range(m):
            pos = y[i] != 0
            sum1 += h1[i]
            sum0 += h0[i]
            tp += sa[i] if pos else 0.0
            fp += 0.0 if pos else sa[i]
        return sum1, sum0, tp, fp
    for i in range(m):
        a, dadz = _amplified_as(z[i] + bias, amplifier)
        h1[i] = dadz
        h0[i] = a
    lane0 = lane1 = lane2 = lane3 = (0.0, 0.0, 0.0, 0.0)
    whole = m - m % 4
    for i in range(0, whole, 4):
        lane0 = _add4(lane0, _weigh_row(i, y, s, h1, h0))
        lane1 = _add4(lane1, _weigh_row(i + 1, y, s, h1, h0))
        lane2 = _add4(lane2, _weigh_row(i + 2, y, s, h1, h0))
        lane3 = _add4(lane3, _weigh_row(i + 3, y, s, h1, h0))
    for i in range(whole, m):
        lane0 = _add4(lane0, _weigh_row(i, y, s, h1, h0))
    return _add4(_add4(lane0, lane1), _add4(lane2, lane3))


def _labels_pass(X, Y, sw, theta, amplifier, logistic, part):
    """One pass over ``X`` for independent sigmoid outputs, one per column
    of ``Y``: per-chunk sums into ``part`` (n_chunks, L (2 d + 4)).

    Label ``l``'s block of row ``c`` of ``part`` receives, over the rows of
    chunk ``c``: ``[sum_{y=1} h x (d), sum_{y=0} h x (d), sum_{y=1} h,
    sum_{y=0} h, TP = sum_{y=1} s a, FP = sum_{y=0} s a]``, with
    ``h = s dA/dz``.

    With ``logistic`` the same sums serve the log-loss of the warm-up:
    ``h = s sigmoid(-z)`` for positives and ``s sigmoid(z)`` for negatives
    (minus and plus the derivative of the row's log-loss), and the last two
    slots hold the class-wise log-loss sums instead of TP and FP.

    Each block of rows (:func:`block_rows`) is read twice while it is in
    cache: the scores of all labels are one matrix product ``W X_b^T``, the
    rows' terms are computed label by label on SIMD lanes
    (:func:`_label_terms`), and the class-wise sums of ``h x`` are a second
    product ``H X_b`` (by rows of ``H`` up to ``SUMS_BY_ROWS`` rows); both
    products are BLAS's, in the data's precision
    (float32 data: float32 products, each over at most one chunk's rows),
    and so is the amplification (``amplified32`` for float32 data); the
    weights, the counts and every sum over rows are float64.
    """
    n, d = X.shape
    L = Y.shape[1]
    width = label_width(d)
    rows = block_rows(d)
    W = np.empty((L, d), dtype=X.dtype)
    bias = np.empty(L, dtype=X.dtype)
    amp = X.dtype.type(amplifier)
    for lab in range(L):
        o = lab * (d + 1)
        for j in range(d):
            W[lab, j] = theta[o + j]
        bias[lab] = theta[o + d]
    Yt = np.ascontiguousarray(Y.T)
    for c in prange(part.shape[0]):
        start = c * CHUNK_ROWS
        stop = min(start + CHUNK_ROWS, n)
        acc = np.zeros((2 * L, d))
        sums = np.zeros((L, 4))
        sa = np.empty(rows)
        G = np.empty((2 * L, d), dtype=X.dtype)
        for i0 in range(start, stop, rows):
            i1 = min(i0 + rows, stop)
            Xb = X[i0:i1]
            Z = np.empty((L, i1 - i0), dtype=X.dtype)
            matmul_nt(W, Xb, Z)
            H = np.empty((2 * L, i1 - i0), dtype=X.dtype)
            for lab in range(L):
                terms = _label_terms(
                    Z[lab], bias[lab], Yt[lab, i0:i1], sw[i0:i1], amp,
                    logistic, H[2 * lab], H[2 * lab + 1], sa,
                )  # fmt: skip
                for k in range(4):
                    sums[lab, k] += terms[k]
            if 2 * L <= SUMS_BY_ROWS:
                for r in range(2 * L):
                    vecmat(H[r], Xb, G[r])
            else:
                matmul(H, Xb, G)
            for r in range(2 * L):
                for j in range(d):
                    acc[r, j] += G[r, j]
        for lab in range(L):
            o = lab * width
            for j in range(d):
                part[c, o + j] = acc[2 * lab, j]
                part[c, o + d + j] = acc[2 * lab + 1, j]
            for k in range(4):
                part[c, o + 2 * d + k] = sums[lab, k]


@njit(inline="always")
def samples_row(z, y, s, amplifier, metric, params, cm, partials, h):
    """A row's part of ``average="samples"``: the metric of its own matrix
    over its ``L`` labels (scores ``z``, labels ``y``), times its weight
    ``s`` (returned), and ``h = d (s M) / d z`` (``h`` may be ``z``);
    ``cm`` and ``partials`` are scratch of 4 entries."""
    L = z.shape[0]
    for q in range(4):
        cm[q] = 0.0
    for lab in range(L):
        a, _ = amplified(z[lab], amplifier)
        if y[lab]:
            cm[3] += a
            cm[2] += 1.0 - a
        else:
            cm[1] += a
            cm[0] += 1.0 - a
    for q in range(4):
        cm[q] /= L
    value = metric(cm.ctypes, 1, L, params.ctypes, partials.ctypes)
    for lab in range(L):
        _, dadz = amplified(z[lab], amplifier)
        if y[lab]:
            g = partials[3] - partials[2]
        else:
            g = partials[1] - partials[0]
        h[lab] = s * g * dadz / L
    return s * value


@njit(inline="always")
def _samples_pass(X, Y, sw, theta, amplifier, metric, params, part):
    """One pass over ``X`` for ``average="samples"``: the metric of each
    row's own matrix over its labels, weighted by the row's weight, and its
    gradient, into ``part`` (n_chunks, L (d + 1) + 1): label ``l``'s
    ``d M / d [w_l, b_l]``, then ``M``'s share of the chunk's rows."""
    n, d = X.shape
    L = Y.shape[1]
    W = theta[: L * (d + 1)].reshape((L, d + 1)).copy()
    for c in prange(part.shape[0]):
        start = c * CHUNK_ROWS
        stop = min(start + CHUNK_ROWS, n)
        acc = np.zeros(part.shape[1])
        zb = np.empty((BLOCK_ROWS, L))
        cm = np.empty(4)
        partials = np.empty(4)
        for i0 in range(start, stop, BLOCK_ROWS):
            i1 = min(i0 + BLOCK_ROWS, stop)
            for lab in range(L):
                w = W[lab]
                for i in range(i0, i1):
                    zb[i - i0, lab] = w[d] + _dot(X[i], w, d)
            for i in range(i0, i1):
                zi = zb[i - i0]
                acc[L * (d + 1)] += samples_row(zi, Y[i], sw[i], amplifier, metric,
                                                params, cm, partials, zi)  # fmt: skip
            for i in range(i0, i1):
                xi = X[i]
                for lab in range(L):
                    h = zb[i - i0, lab]
                    o = lab * (d + 1)
                    for j in range(d):
                        acc[o + j] += h * xi[j]
                    acc[o + d] += h
        part[c] = acc


# Modes of a softmax pass.
COUNTS, GRADIENT, LOGISTIC = 0, 1, 2


@njit(inline="always")
def softmax_width(mode, K, d):
    """Entries of a row of ``part`` of a softmax pass in ``mode``."""
    if mode == COUNTS:
        return K * K
    return K * (d + 1) + (1 if mode == LOGISTIC else 0)


def _rows64(X, start, stop):
    """``X[start:stop]`` as float64 for BLAS: a view of float64 ``X``, a
    copy of float32 ``X``."""


@overload(_rows64)
def _rows64_impl(X, start, stop):
    if X.dtype == nbtypes.float64:
        return lambda X, start, stop: X[start:stop]

    def copy(X, start, stop):
        out = np.empty((stop - start, X.shape[1]))
        out[:, :] = X[start:stop]
        return out

    return copy


@njit(inline="always")
def _softmax_weights(theta, K, d):
    """``(W, b)``: the ``K x d`` weights and the ``K`` biases in ``theta``."""
    T = theta[: K * (d + 1)].reshape((K, d + 1))
    return np.ascontiguousarray(T[:, :d]), T[:, d].copy()


@njit(inline="always")
def _chunk(c, n):
    """The first row, the end and the number of rows of chunk ``c``."""
    start = c * CHUNK_ROWS
    stop = min(start + CHUNK_ROWS, n)
    return start, stop, stop - start


@njit(inline="always")
def _block_scores(Xc, W, b):
    """``W Xc^T + b``: the class-major scores (K x m) of the ``m`` rows of
    ``Xc`` (one BLAS product, on one thread: see :class:`LinearBackend`)."""
    S = np.empty((W.shape[0], Xc.shape[0]), dtype=Xc.dtype)
    matmul_nt(W, Xc, S)
    K, m = S.shape
    for k in range(K):
        for i in range(m):
            S[k, i] += b[k]
    return S


@njit(inline="always")
def _block_gradient(H, Xc, out):
    """``out``, laid out as ``theta``, receives ``[H Xc, H 1]``: each
    class's sums ``sum_i H[k, i] x_i`` and ``sum_i H[k, i]``."""
    K, m = H.shape
    d = Xc.shape[1]
    G = np.empty((K, d), dtype=Xc.dtype)
    matmul(H, Xc, G)
    for k in range(K):
        o = k * (d + 1)
        for j in range(d):
            out[o + j] = G[k, j]
        total = 0.0
        for i in range(m):
            total += H[k, i]
        out[o + d] = total


@njit(inline="always")
def softmax_counts(X, theta, y, sw, amplifier, P, A, tops, part):
    """Per chunk ``c`` of rows, the soft confusion matrix of the scores at
    ``theta`` into ``part[c]`` (K x K, flat); the chunk's probabilities,
    assignments and top classes (class-major) into ``P[c]``, ``A[c]``,
    ``tops[c]``, for the gradient's pass."""
    n, d = X.shape
    K = P.shape[1]
    W, b = _softmax_weights(theta, K, d)
    for c in prange(part.shape[0]):
        start, stop, m = _chunk(c, n)
        S = _block_scores(_rows64(X, start, stop), W, b)
        acc = np.zeros(K * K)
        softmax_block_counts(S, m, y[start:stop], sw[start:stop], amplifier,
                             P[c], A[c], tops[c], acc)  # fmt: skip
        part[c] = acc


@njit(inline="always")
def _softmax_gradient(X, P, A, tops, y, sw, amplifier, D, part):
    """Per chunk of rows, the gradient sums ``sum_i h_i [x_i, 1]`` laid out
    as ``theta``, ``h_i`` from :func:`softmax_block_terms` (the chunk's
    ``P``, ``A``, ``tops`` of :func:`softmax_counts` and ``D = dM/dC``); the
    ``x`` part is one matrix product ``H X_c`` a chunk."""
    n, d = X.shape
    K = P.shape[1]
    for c in prange(part.shape[0]):
        start, stop, m = _chunk(c, n)
        H = np.empty((K, m))
        softmax_block_terms(P[c], A[c], tops[c], m, y[start:stop], sw[start:stop],
                            amplifier, D, H)  # fmt: skip
        _block_gradient(H, _rows64(X, start, stop), part[c])


@njit(inline="always")
def _softmax_log_loss_pass(X, theta, K, y, sw, weights, part):
    """Per chunk of rows, the warm-up's gradient sums laid out as ``theta``
    (:func:`softmax_block_log_loss`), then its log-loss."""
    n, d = X.shape
    W, b = _softmax_weights(theta, K, d)
    for c in prange(part.shape[0]):
        start, stop, m = _chunk(c, n)
        Xc = _rows64(X, start, stop)
        S = _block_scores(Xc, W, b)
        H = np.empty((K, m))
        loss = softmax_block_log_loss(S, m, y[start:stop], sw[start:stop], weights, H)
        _block_gradient(H, Xc, part[c])
        part[c, K * (d + 1)] = loss


@njit(cache=True)
def softmax_scratch(n, K):
    """Where a softmax pass over ``n`` rows keeps the probabilities,
    assignments and top classes of its chunks (class-major) for the
    gradient."""
    rows = n_chunks(n)
    return (
        np.empty((rows, K, CHUNK_ROWS)), np.empty((rows, K, CHUNK_ROWS)),
        np.empty((rows, CHUNK_ROWS), dtype=np.int64),
    )  # fmt: skip


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
    """``grad = -(g1 S1 + g0 S0) + alpha [w, 0]`` from a label's sums;
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
def _rows_gradient(total, d, sign, alpha, fit_intercept, theta, grad):
    """``grad = sign * total + alpha [w_k, 0]`` from a pass's gradient sums
    ``total``, laid out as ``theta`` (a ``[w_k, b_k]`` row of ``d + 1``
    entries per output); returns ``sum_k |w_k|^2``."""
    squares = 0.0
    for o in range(0, theta.shape[0], d + 1):
        for j in range(o, o + d):
            grad[j] = sign * total[j] + alpha * theta[j]
            squares += theta[j] * theta[j]
        grad[o + d] = sign * total[o + d] if fit_intercept else 0.0
    return squares


@njit(inline="always")
def _labels_cms(total, target, d, cms):
    """Each label's ``[tn, fp, fn, tp]`` from a pass's sums, into ``cms``."""
    width = label_width(d)
    for lab in range(target.Y.shape[1]):
        o = lab * width
        _binary_cm(
            total[o + 2 * d + 2], total[o + 2 * d + 3], target.pos[lab],
            target.neg[lab], cms[4 * lab : 4 * lab + 4],
        )  # fmt: skip


@njit(inline="always")
def _labels_metric_loss(total, value, partials, alpha, fit_intercept, theta, grad):
    """Loss ``1 - M + alpha/2 sum |w_l|^2`` and its gradient (into ``grad``)
    from a pass's sums, ``M``'s value and its partials (4 per label)."""
    L = partials.shape[0] // 4
    d = theta.shape[0] // L - 1
    width = label_width(d)
    squares = 0.0
    for lab in range(L):
        g1 = partials[4 * lab + 3] - partials[4 * lab + 2]
        g0 = partials[4 * lab + 1] - partials[4 * lab]
        o = lab * (d + 1)
        squares += _gradient(
            total[lab * width : (lab + 1) * width], d, g1, g0, alpha, fit_intercept,
            theta[o : o + d + 1], grad[o : o + d + 1],
        )  # fmt: skip
    return 1.0 - value + 0.5 * alpha * squares


@njit(inline="always")
def _log_loss(total, target, alpha, fit_intercept, theta, grad):
    """The warm-up's loss from a logistic pass's sums: each label's
    class-balanced log-loss ``L1 / (2 pos) + L0 / (2 neg)``, summed over the
    labels, plus ``alpha/2 sum |w_l|^2``, and its gradient (into ``grad``):
    each label's term is the objective of its own logistic regression."""
    L = target.Y.shape[1]
    d = theta.shape[0] // L - 1
    width = label_width(d)
    loss = 0.0
    for lab in range(L):
        t = total[lab * width : (lab + 1) * width]
        pos = target.pos[lab]
        neg = target.neg[lab]
        value = 1.0 - (t[2 * d + 2] / (2.0 * pos) + t[2 * d + 3] / (2.0 * neg))
        o = lab * (d + 1)
        squares = _gradient(
            t, d, 0.5 / pos, -0.5 / neg, alpha, fit_intercept, theta[o : o + d + 1],
            grad[o : o + d + 1],
        )  # fmt: skip
        loss += 1.0 - value + 0.5 * alpha * squares
    return loss


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
    """The metric loss and its gradient (into ``grad``) from a labels
    pass's sums."""
    L = target.Y.shape[1]
    d = theta.shape[0] // L - 1
    cms = np.empty(4 * L)
    partials = np.empty(4 * L)
    _labels_cms(total, target, d, cms)
    value = metric(cms.ctypes, target.k, target.scale, params.ctypes, partials.ctypes)
    return _labels_metric_loss(
        total, value, partials, alpha, fit_intercept, theta, grad
    )


@_called
def _metric_step(total, target, theta, grad, settings, metric, params, state, curve):
    """One iteration after its labels pass: the metric, the loss and its
    gradient, the optimiser's step and the stopping rule."""
    loss = _metric_loss_grad(
        total, target, theta, grad, metric, params, settings.alpha,
        settings.fit_intercept,
    )  # fmt: skip
    _end_iteration(loss, theta, grad, settings, state, curve)


@njit(inline="always")
def _plain(flag):
    """``flag`` as a plain boolean: Numba compiles a function once per
    literal value it is called with, and ``bool()`` drops the literal."""
    return bool(flag)


def _pass_source(X, Y, sw, theta, amplifier, logistic):
    """One labels pass over ``X`` at ``theta``: the per-chunk sums ``part``."""
    part = np.empty((n_chunks(X.shape[0]), Y.shape[1] * label_width(X.shape[1])))
    _labels_pass(X, Y, sw, theta, amplifier, logistic, part)
    return part


def _softmax_pass_source(X, y, sw, theta, K, amplifier, mode, D, weights):
    """One softmax pass over ``X`` at ``theta``: the per-chunk sums ``part``
    (the counts, the gradient through ``D`` or the warm-up's)."""
    n, d = X.shape
    if mode == LOGISTIC:
        part = np.empty((n_chunks(n), softmax_width(LOGISTIC, K, d)))
        _softmax_log_loss_pass(X, theta, K, y, sw, weights, part)
        return part
    P, A, tops = softmax_scratch(n, K)
    counts = np.empty((n_chunks(n), K * K))
    softmax_counts(X, theta, y, sw, amplifier, P, A, tops, counts)
    if mode == COUNTS:
        return counts
    part = np.empty((n_chunks(n), softmax_width(GRADIENT, K, d)))
    _softmax_gradient(X, P, A, tops, y, sw, amplifier, D, part)
    return part


def _log_loss_from_part(part, target, alpha, fit_intercept, theta, grad):
    """The warm-up's loss from a logistic pass's per-chunk sums ``part``, its
    gradient into ``grad`` (see :class:`_WarmUp`).

    Returns a float only: a kernel that returns arrays builds Python objects
    on its way out, and a Ctrl-C arriving then surfaced as a ``SystemError``
    instead of a ``KeyboardInterrupt``.
    """
    total = np.empty(part.shape[1])
    _reduce_chunks(part, total)
    return _log_loss(total, target, alpha, fit_intercept, theta, grad)


def _softmax_log_loss_grad_source(X, target, sw, theta, alpha, fit_intercept, grad):
    """The multinomial warm-up's loss at ``theta`` (one pass), its gradient
    into ``grad``: the class-balanced mean log-loss, each class's mean
    weighted alike, plus ``alpha/2 sum |w_k|^2``."""
    K = target.weights.shape[0]
    n, d = X.shape
    part = np.empty((n_chunks(n), softmax_width(LOGISTIC, K, d)))
    total = np.empty(part.shape[1])
    _softmax_log_loss_pass(X, theta, K, target.y, sw, target.weights, part)
    _reduce_chunks(part, total)
    squares = _rows_gradient(total, d, 1.0, alpha, fit_intercept, theta, grad)
    return total[K * (d + 1)] + 0.5 * alpha * squares


def _fit_source(X, target, sw, theta, settings, metric, params, state, curve,
                max_calls):  # fmt: skip
    """Iterations of the metric loop of a labels target from ``state``,
    updating ``theta`` in place, until the loop stops or ``max_calls``
    iterations have run; returns the status (``RUNNING`` if the loop was
    only paused)."""
    part = np.empty((n_chunks(X.shape[0]), target.Y.shape[1] * label_width(X.shape[1])))
    total = np.empty(part.shape[1])
    grad = np.empty(theta.shape[0])
    for _ in range(max_calls):
        if state.counts[STATUS] != RUNNING:
            break
        _labels_pass(X, target.Y, sw, theta, settings.amplifier, _plain(False), part)
        _reduce_chunks(part, total)
        _metric_step(total, target, theta, grad, settings, metric, params, state, curve)
    return state.counts[STATUS]


def _fit_samples_source(X, target, sw, theta, settings, metric, params, state, curve,
                        max_calls):  # fmt: skip
    """``_fit_source`` for ``average="samples"``: one pass an iteration."""
    L = target.Y.shape[1]
    d = X.shape[1]
    part = np.empty((n_chunks(X.shape[0]), L * (d + 1) + 1))
    total = np.empty(part.shape[1])
    grad = np.empty(theta.shape[0])
    for _ in range(max_calls):
        if state.counts[STATUS] != RUNNING:
            break
        _samples_pass(X, target.Y, sw, theta, settings.amplifier, metric, params, part)
        _reduce_chunks(part, total)
        squares = _rows_gradient(
            total, d, -1.0, settings.alpha, settings.fit_intercept, theta, grad
        )
        loss = 1.0 - total[L * (d + 1)] + 0.5 * settings.alpha * squares
        _end_iteration(loss, theta, grad, settings, state, curve)
    return state.counts[STATUS]


def _fit_softmax_source(X, target, sw, theta, settings, metric, params, state, curve,
                        max_calls, scratch):  # fmt: skip
    """``_fit_source`` for a classes target: the scores (one product with
    ``X``) and the soft confusion matrix from them (the probabilities and
    assignments kept for the gradient, in ``scratch``, from
    :func:`softmax_scratch`: allocated once a fit, not once a call), the
    metric's ``dM/dC`` there, then the gradient (a second product with
    ``X``)."""
    K = target.weights.shape[0]
    n, d = X.shape
    rows = n_chunks(n)
    P, A, tops = scratch
    counts = np.empty((rows, K * K))
    C = np.empty(K * K)
    D = np.empty((K, K))
    part = np.empty((rows, softmax_width(GRADIENT, K, d)))
    total = np.empty(part.shape[1])
    grad = np.empty(theta.shape[0])
    amplifier = settings.amplifier
    for _ in range(max_calls):
        if state.counts[STATUS] != RUNNING:
            break
        softmax_counts(X, theta, target.y, sw, amplifier, P, A, tops, counts)
        _reduce_chunks(counts, C)
        value = metric(C.ctypes, K, target.scale, params.ctypes, D.ctypes)
        _softmax_gradient(X, P, A, tops, target.y, sw, amplifier, D, part)
        _reduce_chunks(part, total)
        squares = _rows_gradient(
            total, d, -1.0, settings.alpha, settings.fit_intercept, theta, grad
        )
        loss = 1.0 - value + 0.5 * settings.alpha * squares
        _end_iteration(loss, theta, grad, settings, state, curve)
    return state.counts[STATUS]


def _samples_pass_source(X, Y, sw, theta, amplifier, metric, params):
    """One ``average="samples"`` pass at ``theta``: the per-chunk sums."""
    part = np.empty((n_chunks(X.shape[0]), Y.shape[1] * (X.shape[1] + 1) + 1))
    _samples_pass(X, Y, sw, theta, amplifier, metric, params, part)
    return part


def _bound(source, suffix, bindings):
    """A copy of the function ``source`` named with ``suffix`` appended, in
    which the global names ``bindings`` maps stand for its values (the other
    globals are ``source``'s).

    Numba's on-disk cache is keyed by the function's qualified name: each
    copy compiled gets a cache entry of its own.
    """
    env = source.__globals__
    if bindings:
        env = dict(env)
        env.update(bindings)
    fn = types.FunctionType(
        source.__code__,
        env,
        source.__name__ + suffix,
        source.__defaults__,
        source.__closure__,
    )
    fn.__qualname__ = source.__qualname__ + suffix
    fn.__doc__ = source.__doc__
    return fn


def _jit_variant(source, parallel, calls=None):
    """Compile ``source`` once per variant under its own name.

    Numba's on-disk cache is keyed by the function's qualified name, so each
    variant gets a distinct one.  ``calls`` maps names of functions that
    ``source`` calls to their ``_Variants``: each build of ``source`` calls
    the build of the same kind (compiled once, not inlined).
    """
    kind = "parallel" if parallel else "serial"
    bindings = {name: getattr(v, kind) for name, v in (calls or {}).items()}
    fn = _bound(source, "_" + kind, bindings)
    # A kernel whose parallel work is all in the builds it calls is compiled
    # without ``parallel``: there is nothing left for it to parallelise.
    parallel = parallel and not calls
    return njit(parallel=parallel, nogil=True, cache=True, error_model="numpy")(fn)


class _Variants:
    """The serial and the parallel build of one kernel."""

    def __init__(self, source, calls=None):
        self.serial = _jit_variant(source, parallel=False, calls=calls)
        self.parallel = _jit_variant(source, parallel=True, calls=calls)


# The labels pass is the bulk of the code of the kernels that run it: each
# build of those calls one compiled build of it instead of inlining its own
# copy, and its compiled callers pass ``logistic`` through ``_plain`` (the
# warm-up, :class:`_WarmUp`, calls it from Python): one build for the
# warm-up and the metric loop.
labels_pass_into = _Variants(_labels_pass)
_labels = {"_labels_pass": labels_pass_into}

linear_pass = _Variants(_pass_source, _labels)
softmax_pass = _Variants(_softmax_pass_source)
samples_pass = _Variants(_samples_pass_source)
softmax_log_loss_grad = _Variants(_softmax_log_loss_grad_source)
fit_linear = _Variants(_fit_source, _labels)
fit_samples = _Variants(_fit_samples_source)
fit_softmax = _Variants(_fit_softmax_source)

# What follows a pass, for code that runs passes from the host (the tests,
# the Dask backend).
metric_loss_grad = njit(cache=True, error_model="numpy")(_metric_loss_grad.py_func)
metric_step = njit(cache=True, error_model="numpy")(_metric_step.py_func)
rows_gradient = njit(cache=True, error_model="numpy")(_rows_gradient.py_func)
end_iteration = njit(cache=True, error_model="numpy")(_end_iteration.py_func)
log_loss_from_sums = njit(cache=True, error_model="numpy")(_log_loss.py_func)


log_loss_from_part = njit(cache=True, error_model="numpy")(_log_loss_from_part)


class _WarmUp:
    """The warm-up's loss at ``theta`` (one logistic labels pass), its
    gradient into ``grad``, called as the compiled loops are: a build of the
    labels pass, then :func:`log_loss_from_part`.

    Composed here, not compiled as one kernel: the warm-up is driven from
    Python (SciPy's L-BFGS-B) anyway, a kernel of its own compiled the labels
    pass into it once more (a second of a cold first fit), and the two calls
    cost about 3 us more than one.
    """

    def __init__(self, labels_pass):
        self._pass = labels_pass

    def __call__(self, X, target, sw, theta, alpha, fit_intercept, grad):
        n, d = X.shape
        width = target.Y.shape[1] * label_width.py_func(d)
        part = np.empty((n_chunks.py_func(n), width))
        self._pass(X, target.Y, sw, theta, 1.0, True, part)
        return log_loss_from_part(part, target, alpha, fit_intercept, theta, grad)


log_loss_grad = types.SimpleNamespace(
    serial=_WarmUp(labels_pass_into.serial), parallel=_WarmUp(labels_pass_into.parallel)
)


@njit(cache=True, error_model="numpy")
def reduce_chunks(part):
    """``part``'s rows added in order: the sums of a whole pass."""
    total = np.empty(part.shape[1])
    _reduce_chunks(part, total)
    return total


class LabelsTarget(NamedTuple):
    """Independent sigmoid outputs, one per column of ``Y`` (a binary target
    is one label): the 0/1 labels ``Y`` (n, L) uint8, each label's class
    masses ``pos``, ``neg`` (L,) (shares of the total weight), the total
    weight ``scale`` (the number of rows when unweighted: the scale of the
    counts a user's metric sees), the metric's ``layout`` and the ``k`` it is
    called with (``LABELS`` and ``L``; or ``MATRIX`` and 2 for a binary
    target's 2 x 2 matrix, where the metric averages over both classes) and
    ``samples`` (the metric of each row's labels, averaged over rows)."""

    Y: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    scale: float
    k: int
    layout: int
    samples: bool


class ClassesTarget(NamedTuple):
    """A softmax output over ``K`` classes: the rows' class indices ``y``
    (n,) int32, each class's weight in the warm-up's class-balanced
    log-loss, ``1 / (K share)`` (K,), and the total weight ``scale``."""

    y: np.ndarray
    weights: np.ndarray
    scale: float


def normalised_weights(sample_weight):
    """The sample weights divided by their sum (without overflow or
    underflow, see ``_base.scaled_weights``)."""
    w, _ = scaled_weights(sample_weight)
    return w / w.sum()


def class_masses(Y, sample_weight):
    """Each column's shares ``(pos, neg)`` of the total weight on its
    positives and its negatives (arrays); exact class proportions for
    uniform weights."""
    w, _ = scaled_weights(sample_weight)
    total = w.sum()
    pos = np.array([w[column.astype(bool)].sum() for column in Y.T]) / total
    neg = np.array([w[~column.astype(bool)].sum() for column in Y.T]) / total
    return pos, neg


def make_target(problem, sample_weight, device_array=np.ascontiguousarray):
    """The kernels' target of ``problem`` (a ``_base.Problem``), its labels
    placed by ``device_array`` (a CPU array, or a copy on the GPU)."""
    total = weight_total(sample_weight)
    if problem.kind == "multiclass":
        w, _ = scaled_weights(sample_weight)
        K = problem.n_outputs
        shares = np.bincount(problem.y, weights=w, minlength=K) / w.sum()
        return ClassesTarget(
            device_array(problem.y.astype(np.int32)), 1.0 / (K * shares), total
        )
    Y = np.ascontiguousarray(problem.Y, dtype=np.uint8)
    pos, neg = class_masses(Y, sample_weight)
    return LabelsTarget(
        device_array(Y), pos, neg, total, problem.metric_k, problem.layout,
        problem.average == "samples",
    )  # fmt: skip


class LinearBackend:
    """The linear model's full-batch passes over one ``X``, on the CPU.

    ``LinearBackend(X, sample_weight)`` keeps the data; :meth:`target` makes
    a problem's target, :meth:`log_loss` evaluates the warm-up's loss and
    :meth:`fit` runs the metric loop. Whether a pass runs serially or on
    several threads is decided here, by ``_backend.cpu_kernel``.
    """

    #: The compiled loops it calls: another data layout (the sparse
    #: backend) swaps them, with :meth:`_data` and :meth:`_pass_entries`.
    KERNELS = types.SimpleNamespace(
        labels=fit_linear, samples=fit_samples, classes=fit_softmax,
        log_loss=log_loss_grad, classes_log_loss=softmax_log_loss_grad,
    )  # fmt: skip

    def __init__(self, X, sample_weight):
        self._X = self._data(X)
        self._sw = normalised_weights(sample_weight)
        self._sample_weight = sample_weight
        self._entries = self._pass_entries(self._X)

    @staticmethod
    def _data(X):
        """``X`` as the kernels take it."""
        return X

    @staticmethod
    def _pass_entries(X):
        """What a pass reads, in entries of ``X`` (the parallel threshold's
        unit)."""
        return X.shape[0] * X.shape[1]

    def target(self, problem):
        """The target of ``problem`` (a ``_base.Problem``)."""
        return make_target(problem, self._sample_weight)

    def _scratch(self, target):
        """The metric loop's work arrays for a classes target (see
        ``_fit_softmax_source``): allocated once a fit, since a call of the
        loop may run a single iteration and touching new memory costs as
        much as a pass."""
        return softmax_scratch(self._sw.shape[0], _outputs(target))

    @contextmanager
    def log_loss(self, target, alpha, fit_intercept):
        """Context yielding ``loss_grad(theta) -> (loss, grad)``, the warm-up's
        objective; BLAS runs on one thread inside it (see ``cpu_kernel``)."""
        k = self.KERNELS
        kernels = k.classes_log_loss if _is_classes(target) else k.log_loss
        entries = self._entries * _outputs(target)
        with (
            _blas_policy(target),
            cpu_kernel(kernels, entries, serial_blas=True) as kernel,
        ):

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
        k = self.KERNELS
        if _is_classes(target):
            kernels, layout, metric_k = k.classes, MATRIX, None
        else:
            kernels = k.samples if target.samples else k.labels
            layout, metric_k = target.layout, target.k
        compiled = cpu_metric(metric, layout, metric_k)
        scratch = (self._scratch(target),) if _is_classes(target) else ()
        state = new_loop_state(theta.shape[0])
        curve = np.empty(settings.max_iter)
        entries = self._entries * _outputs(target)
        per_call = max(1, ENTRIES_PER_CALL // max(entries, 1))
        args = (
            self._X, target, self._sw, theta, settings, compiled, metric.params,
            state, curve, per_call,
        ) + scratch  # fmt: skip
        status = RUNNING
        with _blas_policy(target), cpu_kernel(kernels, entries) as kernel:
            while status == RUNNING:
                status = kernel(*args)
        return int(status), curve[: state.optimizer.steps[0]]


def _blas_policy(target):
    """BLAS on one thread while the linear kernels run: their matrix
    products are per chunk (or block) of rows, so that the sums do not
    depend on the thread count, and the chunks already run in parallel."""
    return one_blas_thread()


def _is_classes(target):
    return isinstance(target, ClassesTarget)


def _outputs(target):
    """Number of outputs (rows of parameters) of a target."""
    return target.weights.shape[0] if _is_classes(target) else target.Y.shape[1]


# --------------------------------------------------------------------------
# Multi-layer perceptron
#
# Layer widths ``dims = [n_features, h_1, ..., h_k, n_outputs]``.  All weights
# and biases live in one float64 vector ``theta``: for layer ``l`` the matrix
# ``W_l`` (dims[l], dims[l + 1]), row-major, then the bias ``b_l``.  Matrix
# products call BLAS (``_blas``), held to one thread during an epoch:
# on several threads BLAS may split a product's sums differently (measured:
# the last bit of the weights at batches of 2,000), and the model must not
# depend on the thread count.  The output layer is sigmoid units (a binary
# target, one per label of a multilabel target; ``_sigmoid_output``) or a
# softmax (a multiclass target; ``_softmax_output``), trained on ``1 - M`` of
# the batch's soft confusion matrices plus ``log_loss`` times a
# class-balanced log-loss, plus ``alpha / (2 b) * sum |W_l|^2``, as in
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
def _add_bias(Z, b):
    """``Z += b`` row by row.  The MLP's array arithmetic is written as loops:
    an array expression compiles NumPy's broadcasting and its error messages,
    seconds of a first fit's compilation."""
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            Z[i, j] += b[j]


@njit(inline="always")
def _penalised_gradient(gW, G, l2, W):
    """``gW = G + l2 W`` (see :func:`_add_bias`)."""
    for i in range(gW.shape[0]):
        for j in range(gW.shape[1]):
            gW[i, j] = G[i, j] + l2 * W[i, j]


@njit(inline="always")
def _squares(W):
    """``sum(W * W)`` in ``W``'s order (see :func:`_add_bias`)."""
    total = 0.0
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            total += W[i, j] * W[i, j]
    return total


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
def _log_loss_weights(pos, neg, log_loss, K):
    """``(w1, w0)``: the weights of an output unit's positives' and
    negatives' log-losses in the loss, ``log_loss / (2 K)`` over each class's
    mass (each class's mean log-loss, averaged over the two classes and the
    ``K`` units); a class absent from the batch has no log-loss term."""
    w1 = 0.5 * log_loss / (pos * K) if pos > 0.0 else 0.0
    w0 = 0.5 * log_loss / (neg * K) if neg > 0.0 else 0.0
    return w1, w0


@_called
def _sigmoid_output(Z, Y, s, settings, metric, params, count, delta):
    """The loss of sigmoid output units (a binary target, or one unit per
    label) and ``delta = d loss / d Z``.

    The loss is ``1 - M`` of the batch's soft confusion matrices, one per
    unit, averaged by the metric (``settings.metric_k``, ``params``), or,
    with ``settings.samples``, the weighted mean of each row's metric over
    its units; plus ``log_loss`` times the mean over units of each unit's
    class-balanced log-loss.
    """
    b, K = Z.shape
    amplifier = settings.amplifier
    log_loss = settings.log_loss
    d_log = np.empty((b, K))
    cms = np.empty(4 * K)
    partials = np.empty(4 * K)
    masses = np.empty((K, 4))
    for k in range(K):
        sums = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for i in range(b):
            sums, delta[i, k], d_log[i, k] = _output_row(
                sums, Z[i, k], Y[i, k], s[i], amplifier, log_loss
            )
        tp, fp, pos, neg, log_pos, log_neg = sums
        _binary_cm(tp, fp, pos, neg, cms[4 * k : 4 * k + 4])
        masses[k, 0] = pos
        masses[k, 1] = neg
        masses[k, 2] = log_pos
        masses[k, 3] = log_neg
    if settings.samples:
        value = 0.0
        cm = np.empty(4)
        for i in range(b):
            for q in range(4):
                cm[q] = 0.0
            for k in range(K):
                a, _ = amplified(Z[i, k], amplifier)
                if Y[i, k]:
                    cm[3] += a / K
                    cm[2] += (1.0 - a) / K
                else:
                    cm[1] += a / K
                    cm[0] += (1.0 - a) / K
            value += s[i] * metric(cm.ctypes, 1, K, params.ctypes, partials.ctypes)
            for k in range(K):
                # delta holds s dA/dz; the row's metric has weight s_i and
                # each unit enters its matrix with weight 1 / K.
                if Y[i, k]:
                    g = partials[3] - partials[2]
                else:
                    g = partials[1] - partials[0]
                delta[i, k] *= -g / K
    else:
        value = metric(cms.ctypes, settings.metric_k, count, params.ctypes,
                       partials.ctypes)  # fmt: skip
    loss = 1.0 - value
    for k in range(K):
        w1, w0 = _log_loss_weights(masses[k, 0], masses[k, 1], log_loss, K)
        loss = loss + w1 * masses[k, 2] + w0 * masses[k, 3]
        g1 = 0.0
        g0 = 0.0
        if not settings.samples:
            g1 = -(partials[4 * k + 3] - partials[4 * k + 2])
            g0 = -(partials[4 * k + 1] - partials[4 * k])
        for i in range(b):
            if settings.samples:
                g = 1.0
                w = w1 if Y[i, k] else w0
            elif Y[i, k]:
                g = g1
                w = w1
            else:
                g = g0
                w = w0
            delta[i, k] = g * delta[i, k] + w * d_log[i, k]
    return loss


@_called
def _softmax_output(Z, Y, s, settings, metric, params, count, delta):
    """The loss of a softmax output over ``K`` classes (``Y`` one-hot) and
    ``delta = d loss / d Z``: ``1 - M`` of the batch's K x K soft confusion
    matrix, plus ``log_loss`` times the class-balanced multinomial log-loss
    (each present class's mean log-loss, averaged over the ``K`` classes)."""
    b, K = Z.shape
    amplifier = settings.amplifier
    log_loss = settings.log_loss
    C = np.zeros(K * K)
    D = np.empty((K, K))
    P = np.empty((b, K))
    A = np.empty((b, K))
    tops = np.empty(b, dtype=np.int64)
    classes = np.empty(b, dtype=np.int64)
    mass = np.zeros(K)
    u = np.empty(K)
    for i in range(b):
        t = 0
        for k in range(K):
            if Y[i, k]:
                t = k
        classes[i] = t
        tops[i] = amplified_softmax(Z[i], K, amplifier, P[i], A[i])
        for k in range(K):
            C[t * K + k] += s[i] * A[i, k]
        mass[t] += s[i]
    value = metric(C.ctypes, K, count, params.ctypes, D.ctypes)
    loss = 1.0 - value
    for i in range(b):
        t = classes[i]
        softmax_metric_dz(P[i], A[i], tops[i], D[t], K, amplifier, u, delta[i])
        for k in range(K):
            delta[i, k] *= -s[i]
        if log_loss != 0.0 and s[i] > 0.0:
            # -log p_t and its gradient p - e_t (p_t - 1 = -sum_{m != t} p_m);
            # a row of weight 0 adds nothing (its class's mass may be 0).
            w = log_loss * s[i] / (K * mass[t])
            z = Z[i]
            top, total = softmax(z, K, u)
            loss += w * (math.log(total) + (z[top] - z[t]))
            rest = 0.0
            for k in range(K):
                if k != t:
                    delta[i, k] += w * u[k]
                    rest += u[k]
            delta[i, t] -= w * rest
    return loss


@njit(cache=True, nogil=True, error_model="numpy")
def mlp_forward(X, theta, dims, activation):
    """Output scores ``z`` (n, n_outputs) and the list of layer activations."""
    offsets = _layer_offsets(dims)
    n_layers = dims.shape[0] - 1
    acts = [X]
    for layer in range(n_layers):
        W, b = _weights(theta, dims, offsets, layer)
        Z = np.empty((X.shape[0], W.shape[1]))
        matmul(acts[layer], W, Z)
        _add_bias(Z, b)
        if layer < n_layers - 1:
            _activate(Z, activation)
        acts.append(Z)
    return acts


def _upper_loss_grad_source(Z1, Y, s, theta, dims, settings, metric, params, l2,
                            count, grad):  # fmt: skip
    """The batch loss and its gradient with respect to every layer but the
    first (into ``grad``), from the first layer's affine output ``Z1 = X W_1
    + b_1`` (overwritten); returns ``(loss, delta_1)``, ``delta_1 = d loss /
    d Z1``, from which the caller computes the first layer's gradient (on
    dense or sparse ``X``). The loss includes every layer's penalty."""
    offsets = _layer_offsets(dims)
    n_layers = dims.shape[0] - 1
    # acts[l] is the output of layer l + 1 (activated, but for the last)
    acts = [Z1]
    if n_layers > 1:
        _activate(Z1, settings.activation)
    for layer in range(1, n_layers):
        W, b = _weights(theta, dims, offsets, layer)
        Z = np.empty((Z1.shape[0], W.shape[1]))
        matmul(acts[layer - 1], W, Z)
        _add_bias(Z, b)
        if layer < n_layers - 1:
            _activate(Z, settings.activation)
        acts.append(Z)
    Z = acts[n_layers - 1]
    delta = np.empty(Z.shape)
    # ``_output_layer`` is a global of each build (see ``per_output``).
    loss = _output_layer(Z, Y, s, settings, metric, params, count, delta)  # noqa: F821
    penalty = 0.0
    for layer in range(n_layers - 1, 0, -1):
        W, _ = _weights(theta, dims, offsets, layer)
        gW, gb = _weights(grad, dims, offsets, layer)
        product = np.empty(W.shape)
        matmul_tn(acts[layer - 1], delta, product)
        _penalised_gradient(gW, product, l2, W)
        penalty += _squares(W)
        for j in range(gb.shape[0]):
            gb[j] = np.sum(delta[:, j])
        below = np.empty((delta.shape[0], W.shape[0]))
        matmul_nt(delta, W, below)
        delta = below
        _scale_by_derivative(delta, acts[layer - 1], settings.activation)
    W, _ = _weights(theta, dims, offsets, 0)
    penalty += _squares(W)
    return loss + 0.5 * l2 * penalty, delta


def _mlp_loss_grad_source(X, Y, s, theta, dims, settings, metric, params, l2, count,
                          grad):  # fmt: skip
    """Batch loss and its gradient (into ``grad``) with respect to ``theta``.

    ``X`` (b, d) float64, ``Y`` (b, n_outputs) 0/1 uint8, ``s`` (b,) weights
    summing to one and ``count`` their raw total (the batch's size when
    unweighted); ``settings`` an ``MLPSettings``, ``metric`` the metric's
    first-class function and ``params`` its parameters; the penalty is
    ``l2 / 2 * sum |W_l|^2``.
    """
    offsets = _layer_offsets(dims)
    W, b = _weights(theta, dims, offsets, 0)
    Z1 = np.empty((X.shape[0], W.shape[1]))
    matmul(X, W, Z1)
    _add_bias(Z1, b)
    loss, delta = upper_loss_grad(  # noqa: F821 (a global of each build: per_output)
        Z1, Y, s, theta, dims, settings, metric, params, l2, count, grad
    )
    gW, gb = _weights(grad, dims, offsets, 0)
    product = np.empty(W.shape)
    matmul_tn(X, delta, product)
    _penalised_gradient(gW, product, l2, W)
    for j in range(gb.shape[0]):
        gb[j] = np.sum(delta[:, j])
    return loss


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


@njit(inline="always")
def batch_targets(Y, sw, order, start, stop):
    """``(Yb, sb, mass)``: the targets and weights of the rows
    ``order[start:stop]``, the weights divided by their sum ``mass``."""
    b = stop - start
    K = Y.shape[1]
    Yb = np.empty((b, K), dtype=np.uint8)
    sb = np.empty(b)
    for r in range(b):
        i = order[start + r]
        for k in range(K):
            Yb[r, k] = Y[i, k]
        sb[r] = sw[i]
    mass = np.sum(sb)
    if mass > 0.0:
        sb /= mass
    return Yb, sb, mass


def _mlp_epoch_source(X, Y, sw, scale, order, theta, dims, settings, metric, params,
                      state):  # fmt: skip
    """One pass over the rows ``order`` in mini-batches, updating ``theta``
    and the optimiser's ``state`` in place.

    ``sw`` are the sample weights divided by ``scale``. Returns the mean batch
    loss, or NaN if the loss, the gradient or the weights became non-finite.
    """
    n = order.shape[0]
    d = X.shape[1]
    batch_size = settings.batch_size
    grad = np.empty_like(theta)
    total = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        Yb, sb, mass = batch_targets(Y, sw, order, start, stop)
        if not mass > 0.0:
            continue  # every sample of this batch has zero weight
        b = stop - start
        Xb = np.empty((b, d))
        for r in range(b):
            i = order[start + r]
            for j in range(d):
                Xb[r, j] = X[i, j]
        count = mass * scale
        loss = mlp_loss_grad(  # a global of each build (per_output)
            Xb, Yb, sb, theta, dims, settings, metric, params, settings.alpha / count,
            count, grad,
        )  # fmt: skip
        finite = _update(settings.optimizer, theta, grad, state)
        if not (finite and math.isfinite(loss)):
            return np.nan
        total += loss * b
    return total / n


# Each output layer gets builds of its own of the functions that run it: the
# first fit compiles the layer it trains (a run-time branch compiled both).
_OUTPUT_LAYERS = {
    SIGMOID: ("_sigmoid", _sigmoid_output),
    SOFTMAX: ("_softmax", _softmax_output),
}
_KERNEL = njit(cache=True, nogil=True, error_model="numpy")


def per_output(source, jit, bindings):
    """``{output code: build}``: ``source`` compiled by ``jit`` once per output
    layer, with the globals ``bindings(code)`` (see :func:`_bound`)."""
    return {
        code: jit(_bound(source, suffix, {"_output_layer": layer, **bindings(code)}))
        for code, (suffix, layer) in _OUTPUT_LAYERS.items()
    }


# The layers above the first are compiled once and called (the sparse epoch
# calls them too); the first layer's product is inlined into the epoch (a
# kernel of its own there compiled the layers above into it once more) and
# compiled as a kernel for the callers of ``mlp_loss_grad`` (tests, benchmarks).
upper_loss_grads = per_output(_upper_loss_grad_source, _called, lambda code: {})
_mlp_loss_grads = per_output(
    _mlp_loss_grad_source,
    _KERNEL,
    lambda code: {"upper_loss_grad": upper_loss_grads[code]},
)
_mlp_loss_grads_inline = per_output(
    _mlp_loss_grad_source,
    _inline,
    lambda code: {"upper_loss_grad": upper_loss_grads[code]},
)
mlp_epochs = per_output(
    _mlp_epoch_source,
    _KERNEL,
    lambda code: {"mlp_loss_grad": _mlp_loss_grads_inline[code]},
)


def mlp_loss_grad(X, Y, s, theta, dims, settings, *args):
    """The batch loss and its gradient (see ``_mlp_loss_grad_source``), by the
    build of ``settings.output``'s layer."""
    return _mlp_loss_grads[settings.output](X, Y, s, theta, dims, settings, *args)


def mlp_weights(sample_weight):
    """``(w, scale)``: the sample weights divided by their largest value, and
    that value (``inf`` where it overflows a float, see ``_mlp_epoch_source``)."""
    scale = float(sample_weight.max())
    return sample_weight / scale, scale


class MLPBackend:
    """The MLP's mini-batch epochs over one ``(X, Y)``, on the CPU.

    ``Y`` (n, n_outputs) holds each output unit's 0/1 target. Sample weights
    are divided by their largest value (the batch's share of the weight is
    what the loss uses; ``scale`` keeps the L2 penalty's scale).
    """

    #: The compiled epochs, by output layer (``MLPSettings.output``): the
    #: sparse backend swaps them, with :meth:`_data`.
    EPOCHS = mlp_epochs

    def __init__(self, X, Y, sample_weight):
        self._X = self._data(X)
        self._Y = np.ascontiguousarray(Y, dtype=np.uint8)
        self._sw, self._scale = mlp_weights(sample_weight)
        self._kernel = None

    @staticmethod
    def _data(X):
        """``X`` as the epoch takes it."""
        return X

    def epoch(self, order, theta, dims, settings, metric, state):
        """One epoch over the rows ``order``; returns its mean batch loss
        (NaN if training diverged)."""
        args = (
            self._X, self._Y, self._sw, self._scale, order, theta, dims, settings,
            cpu_metric(metric, settings.layout, settings.metric_k), metric.params,
            state,
        )  # fmt: skip
        if self._kernel is None:
            self._kernel = compiled_for(self.EPOCHS[settings.output], args)
        # BLAS on several threads may split a product's sums differently:
        # one thread keeps the model independent of the thread count.
        with one_blas_thread():
            return self._kernel(*args)
