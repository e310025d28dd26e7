"""Speed of the joint multiclass linear model: one iteration at K classes
against the binary one, one-vs-rest, a NumPy loop and the floor.

One iteration of ``AnyLossClassifier`` on a K-class target (n = 1,000,000,
d = 50, K = 10 by default) is two passes over ``X`` (the soft K x K matrix,
then the gradient through ``dM/dC``; see the user guide).  Printed as a
markdown report, medians of ``--repeats`` runs after one untimed run:

- ``floor``: ``X.sum()``, one read of ``X`` (NumPy, one thread);
- ``binary``: one iteration on a binary target (one pass), the compiled loop
  (``fit_linear``) divided by its iteration count;
- ``joint``: one iteration on the K-class target, ``fit_softmax`` likewise;
- ``one-vs-rest``: K binary iterations, what training the K classes one
  against the rest costs (the model before joint training);
- ``numpy``: the same joint iteration written in NumPy as a user would,
  vectorised, BLAS for the two products with ``X`` (``numpy_iteration``),
  using every core BLAS has;
- ``fit``: ``AnyLossClassifier(tol=None, max_iter=I, warmup_iter=0).fit``
  divided by ``I``, the iteration inside a whole fit;
- the two products with ``X`` alone (the scores ``X W^T``, then ``H^T X``
  for a K x n matrix ``H``), which bound a joint iteration from below:
  ``products, per chunk``, BLAS's products per chunk of rows (one thread
  each) in parallel over the chunks, as the kernels call them;
  ``products, NumPy``, ``X @ W.T`` and ``H.T @ X`` with BLAS on every core.

    python benchmarks/bench_multiclass_speed.py [--n N] [--d D] [--k K]
"""

import argparse
import os
import platform
import statistics
import time
from datetime import datetime, timezone

import numba
import numpy as np
from numba import njit, prange
from threadpoolctl import threadpool_limits

from sk_anyloss import AnyLossClassifier
from sk_anyloss._backend import cpu_kernel
from sk_anyloss._base import Problem
from sk_anyloss._kernels_cpu import (
    CHUNK_ROWS,
    ENTRIES_PER_CALL,
    cpu_metric,
    fit_linear,
    fit_softmax,
    make_target,
    new_loop_state,
    softmax_scratch,
)
from sk_anyloss._metrics import Metric
from sk_anyloss._metrics_multi import LABELS, MATRIX
from sk_anyloss._optim import Optimizer
from sk_anyloss._settings import LinearSettings

SEED = 0
AMPLIFIER = 20.0


def make_data(n, d, K, seed=SEED):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((K, d))
    y = np.argmax(X @ W.T + rng.gumbel(size=(n, K)), axis=1)
    return X, y


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def settings(iters):
    return LinearSettings(
        amplifier=AMPLIFIER, alpha=0.0, fit_intercept=True,
        optimizer=Optimizer(0, 0.01, 0.0, 0.9, 0.999, 1e-8), max_iter=iters,
        use_tol=False, tol=0.0, n_iter_no_change=10,
    )  # fmt: skip


def loop_iteration(kernels, X, target, metric, layout, n_outputs, iters):
    """Seconds per iteration of a compiled metric loop (parallel build)."""
    d = X.shape[1]
    sw = np.full(X.shape[0], 1.0 / X.shape[0])
    compiled = cpu_metric(metric, layout)

    def run():
        theta = np.zeros(n_outputs * (d + 1))
        state = new_loop_state(theta.shape[0])
        curve = np.empty(iters)
        softmax = kernels is fit_softmax
        scratch = (softmax_scratch(X.shape[0], n_outputs),) if softmax else ()
        with cpu_kernel(kernels, ENTRIES_PER_CALL) as kernel:
            kernel(X, target, sw, theta, settings(iters), compiled, metric.params,
                   state, curve, iters, *scratch)  # fmt: skip
        assert state.optimizer.steps[0] == iters

    return run


@njit(parallel=True)
def products_blas(X, W, b, out):
    """Both products of a joint iteration, per chunk (the chunk's scores
    stand in for its ``H``)."""
    n, d = X.shape
    K = W.shape[0]
    for c in prange(out.shape[0]):
        start = c * CHUNK_ROWS
        stop = min(n, start + CHUNK_ROWS)
        S = np.dot(W, X[start:stop].T)
        G = np.dot(S, X[start:stop])
        for k in range(K):
            out[c, k * (d + 1)] = G[k, 0] + b[k]


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def numpy_iteration(X, Y, s, W, b, amplifier):
    """Macro-F1 loss ``1 - M`` of the soft K x K matrix and its gradient with
    respect to ``W``, ``b``: the vectorised NumPy a user would write."""
    c = 0.5 * amplifier
    P = _softmax(X @ W.T + b)
    A = _softmax(c * P)
    C = (Y * s[:, None]).T @ A
    R = C.sum(axis=1)
    Pc = C.sum(axis=0)
    tp = np.diag(C)
    den = R + Pc
    f1 = 2 * tp / den
    K = C.shape[0]
    # dF1_k: d/dtp = 2/den - 2 tp/den^2 * 2 ... through R_k and P_k
    d_tp = 2 / den
    d_den = -2 * tp / den**2
    D = (d_den[:, None] + d_den[None, :]) / K  # C[t, j] enters R_t and P_j
    D[np.arange(K), np.arange(K)] += d_tp / K
    V = D[Y.argmax(axis=1)]  # each row's dM/dC[y_i, :]
    U = c * A * (V - np.sum(A * V, axis=1, keepdims=True))
    G = -s[:, None] * P * (U - np.sum(P * U, axis=1, keepdims=True))
    return 1 - f1.mean(), G.T @ X, G.sum(axis=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, d, K, iters, repeats = args.n, args.d, args.k, args.iters, args.repeats

    X, y = make_data(n, d, K)
    yb = (y == 0).astype(np.int64)
    ones = np.ones(n)
    binary = make_target(
        Problem("binary", yb[:, None].astype(np.uint8), yb, None), ones
    )
    Y = (y[:, None] == np.arange(K)).astype(np.uint8)
    joint = make_target(Problem("multiclass", Y, y, "macro"), ones)
    f1 = Metric("f1")
    macro = Metric("f1", 1.0, "macro")

    times = {"floor": median_time(X.sum, repeats)}
    run = loop_iteration(fit_linear, X, binary, f1, LABELS, 1, iters)
    times["binary"] = median_time(run, repeats) / iters
    run = loop_iteration(fit_softmax, X, joint, macro, MATRIX, K, iters)
    times["joint"] = median_time(run, repeats) / iters
    times["one-vs-rest"] = K * times["binary"]
    s = np.full(n, 1.0 / n)
    rng = np.random.default_rng(1)
    W, b = 0.01 * rng.standard_normal((K, d)), np.zeros(K)
    Yf = Y.astype(np.float64)
    times["numpy"] = median_time(
        lambda: numpy_iteration(X, Yf, s, W, b, AMPLIFIER), repeats
    )
    out = np.empty(((n + CHUNK_ROWS - 1) // CHUNK_ROWS, K * (d + 1)))
    with threadpool_limits(1, user_api="blas"):
        times["products, per chunk"] = median_time(
            lambda: products_blas(X, W, b, out), repeats
        )
    H = np.ascontiguousarray((X[:, :K] * 0.5).T)
    times["products, NumPy"] = median_time(lambda: (X @ W.T, H @ X), repeats)
    model = AnyLossClassifier(tol=None, max_iter=iters, warmup_iter=0)
    times["fit"] = median_time(lambda: model.fit(X, y), max(1, repeats // 2)) / iters

    print(f"### K = {K} joint iteration, n = {n:,}, d = {d} (float64)\n")
    print(
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Numba {numba.__version__} with {numba.get_num_threads()} threads; "
        f"command: `python benchmarks/bench_multiclass_speed.py --n {n} --d {d} "
        f"--k {K} --iters {iters} --repeats {repeats}`; medians of {repeats}.\n"
    )
    print("| | ms per iteration | / binary | / floor |\n|---|---|---|---|")
    for key in times:
        t = times[key]
        print(
            f"| {key} | {1e3 * t:.1f} | {t / times['binary']:.2f} | "
            f"{t / times['floor']:.1f} |"
        )


if __name__ == "__main__":
    main()
