"""Speed benchmarks of the linear AnyLoss model (AnyLossClassifier).

Three measurements, printed as a markdown report:

1. Epoch time.  One epoch of the compiled kernel (loss and gradient, one pass
   over ``X``), parallel and serial build, against two floors: the time to
   stream ``X`` once with ``X.sum()`` (NumPy, one thread) and with a parallel
   sum on every core this process may use (:func:`parallel_sum`, the
   memory floor of a pass that reads ``X`` once).  Also
   ``AnyLossClassifier(tol=None, max_iter=K).fit`` divided by ``K``, the epoch
   time inside the training loop, and a fit with ``max_iter=1``, which shows
   the fixed cost of a fit (input checks, label encoding).
2. Fit time against two implementations of the same model, loss, optimiser
   (full-batch Adam from zero) and iteration count, float64 and float32: the
   lean loop a competent user writes in NumPy (vectorised over the rows, in
   the data's precision, with no temporary it can avoid: :func:`fit_numpy`)
   and PyTorch autograd on the CPU.  The learned weights are compared too.
3. First ``fit`` in a fresh process, with a cold and a warm Numba cache.

Times are medians over repeats, each after one untimed warm-up run.  Every
implementation may use all the cores available to the process.

    python benchmarks/bench_linear.py [--quick] [--output FILE]

Needs the ``bench`` extra (PyTorch).
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from functools import partial

import numba
import numpy as np
import scipy
import sklearn
from numba import njit, prange
from threadpoolctl import threadpool_info

import sk_anyloss
from sk_anyloss import AnyLossClassifier
from sk_anyloss._base import Problem
from sk_anyloss._kernels_cpu import (
    cpu_metric,
    linear_pass,
    make_target,
    metric_loss_grad,
    reduce_chunks,
)
from sk_anyloss._metrics import Metric

SEED = 0
METRIC = "f1"
AMPLIFIER = 73.0
LEARNING_RATE = 0.01
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-8

FULL = {
    "epoch_size": (1_000_000, 50),
    "epoch_repeats": 7,
    "epoch_fit_iter": 20,
    "fit_cases": [(1_000_000, 50, 20, 3), (100_000, 20, 200, 5), (2_000, 20, 1000, 7)],
    "first_fit_repeats": 3,
}
QUICK = {
    "epoch_size": (100_000, 50),
    "epoch_repeats": 3,
    "epoch_fit_iter": 5,
    "fit_cases": [(100_000, 50, 5, 2), (2_000, 20, 100, 2)],
    "first_fit_repeats": 1,
}

# Run in a fresh interpreter: time ``import sk_anyloss`` and the first two fits.
FIRST_FIT_SCRIPT = """
import json, time
from sklearn.datasets import load_breast_cancer
X, y = load_breast_cancer(return_X_y=True)
X = (X - X.mean(axis=0)) / X.std(axis=0)
t0 = time.perf_counter()
import sk_anyloss
t1 = time.perf_counter()
sk_anyloss.AnyLossClassifier().fit(X, y)
t2 = time.perf_counter()
sk_anyloss.AnyLossClassifier().fit(X, y)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first_fit": t2 - t1, "second_fit": t3 - t2}))
"""


def n_cores():
    """Number of CPU cores this process may run on."""
    return len(os.sched_getaffinity(0))


def make_data(n, d, seed=SEED):
    """Standard normal ``X`` and a 0/1 ``y`` (uint8) from a noisy linear rule.

    The rule is thresholded at its 80th percentile: 20% positives.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    score = X @ (rng.standard_normal(d) / np.sqrt(d)) + 0.5 * rng.standard_normal(n)
    y = (score > np.quantile(score, 0.8)).astype(np.uint8)
    return X, y


def timed(fn, repeats):
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up run,
    and the result of the last run."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def median_time(fn, repeats):
    """Median wall time of ``fn()`` (see :func:`timed`)."""
    return timed(fn, repeats)[0]


@njit(parallel=True, fastmath=True)
def _parallel_sum(X, parts):
    n = X.shape[0]
    sums = np.zeros(parts)
    for k in prange(parts):
        s = 0.0
        for i in range(k * n // parts, (k + 1) * n // parts):
            row = X[i]
            for j in range(row.shape[0]):
                s += row[j]
        sums[k] = s
    return sums.sum()


def parallel_sum(X):
    """The sum of ``X``, its rows split into one block per thread and each
    block summed on SIMD lanes (``fastmath``): the memory floor of a pass
    that reads ``X`` once on every core."""
    return _parallel_sum(X, numba.get_num_threads())


def fit_ours(X, y, max_iter):
    """``theta = [w, b]`` learned by AnyLossClassifier with a fixed iteration count."""
    clf = AnyLossClassifier(
        METRIC,
        amplifier=AMPLIFIER,
        warmup_iter=0,  # the same loop as the references: no warm-up
        learning_rate_init=LEARNING_RATE,
        beta_1=BETA_1,
        beta_2=BETA_2,
        epsilon=EPSILON,
        tol=None,
        max_iter=max_iter,
    ).fit(X, y)
    return np.concatenate([clf.coef_.ravel(), clf.intercept_]).astype(np.float64)


def fit_numpy(X, y, max_iter):
    """``theta = [w, b]`` learned by the lean loop a user writes in NumPy.

    Vectorised over the rows and in the data's precision: ``z = X @ w + b``,
    ``p`` and ``a`` with ``np.exp`` on the whole vector (in place, no
    temporary that can be avoided), F1's partial derivatives, then
    ``X.T @ dz``; the same Adam update as ours (on float64 parameters).
    """
    n, d = X.shape
    dtype = X.dtype
    yf = y.astype(dtype)
    positives = float(yf.sum()) / n
    theta = np.zeros(d + 1)
    w = np.zeros(d, dtype=dtype)
    m = np.zeros(d + 1)
    v = np.zeros(d + 1)
    grad = np.empty(d + 1)
    p = np.empty(n, dtype=dtype)
    a = np.empty(n, dtype=dtype)
    t1 = np.empty(n, dtype=dtype)
    for t in range(1, max_iter + 1):
        np.dot(X, w, out=p)
        p += dtype.type(theta[d])
        np.negative(p, out=p)
        np.exp(p, out=p)
        p += 1.0
        np.reciprocal(p, out=p)  # p = sigmoid(z)
        np.subtract(p, 0.5, out=a)
        a *= -AMPLIFIER
        np.exp(a, out=a)
        a += 1.0
        np.reciprocal(a, out=a)  # a = sigmoid(L (p - 1/2))
        tp = float(a @ yf) / n
        fp = float(a.sum()) / n - tp
        fn = positives - tp
        den = 2.0 * tp + fp + fn
        d_tp, d_fp_fn = 2.0 * (fp + fn) / den**2, -2.0 * tp / den**2
        g1, g0 = d_tp - d_fp_fn, d_fp_fn  # dF1/dTP - dF1/dFN, dF1/dFP - dF1/dTN
        # dz = -(g0 + (g1 - g0) y) L / n a (1 - a) p (1 - p)
        np.subtract(1.0, a, out=t1)
        a *= t1
        np.subtract(1.0, p, out=t1)
        p *= t1
        a *= p
        np.multiply(yf, g1 - g0, out=t1)
        t1 += g0
        t1 *= -AMPLIFIER / n
        a *= t1
        grad[:d] = X.T @ a
        grad[d] = a.sum()
        m *= BETA_1
        m += (1.0 - BETA_1) * grad
        v *= BETA_2
        v += (1.0 - BETA_2) * grad * grad
        step = LEARNING_RATE * np.sqrt(1.0 - BETA_2**t) / (1.0 - BETA_1**t)
        theta -= step * m / (np.sqrt(v) + EPSILON)
        w[:] = theta[:d]
    return theta


def fit_torch(X, y, max_iter):
    """``theta = [w, b]`` learned with PyTorch autograd (CPU, in the data's
    precision).

    The soft confusion matrix and F1 are written out as in the AnyLoss paper;
    the Adam update is written out to match AnyLossClassifier's exactly
    (``torch.optim.Adam`` places ``epsilon`` after the bias correction).
    """
    import torch

    torch.set_num_threads(n_cores())
    n, d = X.shape
    Xt = torch.from_numpy(X)
    is_pos = torch.from_numpy(y.astype(X.dtype))
    is_neg = 1.0 - is_pos
    pos = is_pos.sum() / n
    w = torch.zeros(d, dtype=Xt.dtype, requires_grad=True)
    b = torch.zeros((), dtype=Xt.dtype, requires_grad=True)
    params = (w, b)
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    for t in range(1, max_iter + 1):
        p = torch.sigmoid(Xt @ w + b)
        a = torch.sigmoid(AMPLIFIER * (p - 0.5))
        tp = (a @ is_pos) / n
        fp = (a @ is_neg) / n
        fn = pos - tp
        loss = 1.0 - 2.0 * tp / (2.0 * tp + fp + fn)
        grads = torch.autograd.grad(loss, params)
        step = LEARNING_RATE * np.sqrt(1.0 - BETA_2**t) / (1.0 - BETA_1**t)
        with torch.no_grad():
            for param, grad, (m, v) in zip(params, grads, moments, strict=True):
                m.mul_(BETA_1).add_((1.0 - BETA_1) * grad)
                v.mul_(BETA_2).add_((1.0 - BETA_2) * grad * grad)
                param.sub_(step * m / (v.sqrt() + EPSILON))
    return torch.cat([w.detach(), b.detach().reshape(1)]).numpy().astype(np.float64)


def bench_epoch(n, d, repeats, fit_iter):
    """Epoch times (seconds) per dtype and method, and the floor ``X.sum()``."""
    X64, y = make_data(n, d)
    theta = 0.1 * np.random.default_rng(SEED + 1).standard_normal(d + 1)
    sw = np.full(n, 1.0 / n)
    metric = Metric(METRIC)
    compiled = cpu_metric(metric)
    y_int = y.astype(np.int64)

    target = make_target(Problem("binary", y[:, None], y, None), np.ones(n))

    def epoch(variant, X):
        # One pass, its sums added up and the metric's loss and gradient.
        total = reduce_chunks(variant(X, target.Y, sw, theta, AMPLIFIER, False))
        grad = np.empty(d + 1)
        args = (compiled, metric.params, 0.0, True)
        return metric_loss_grad(total, target, theta, grad, *args)

    results = {}
    for dtype in (np.float64, np.float32):
        X = np.ascontiguousarray(X64, dtype=dtype)
        parallel_sum(X)  # compile
        results[np.dtype(dtype).name] = {
            "floor": median_time(X.sum, repeats),
            "floor_parallel": median_time(partial(parallel_sum, X), repeats),
            "parallel": median_time(partial(epoch, linear_pass.parallel, X), repeats),
            "serial": median_time(partial(epoch, linear_pass.serial, X), repeats),
            "fit": median_time(partial(fit_ours, X, y_int, fit_iter), repeats)
            / fit_iter,
            "fit_1": median_time(partial(fit_ours, X, y_int, 1), repeats),
        }
    return results


def bench_fit(n, d, max_iter, repeats, dtype):
    """Fit times (seconds) of the three implementations, and weight differences."""
    X, y = make_data(n, d)
    X = np.ascontiguousarray(X, dtype=dtype)
    y_int = y.astype(np.int64)
    row = {"n": n, "d": d, "max_iter": max_iter, "repeats": repeats}
    row["dtype"] = np.dtype(dtype).name
    row["ours"], theta = timed(partial(fit_ours, X, y_int, max_iter), repeats)
    for name, fit in (("numpy", fit_numpy), ("torch", fit_torch)):
        row[name], theta_other = timed(partial(fit, X, y, max_iter), repeats)
        row[name + "_diff"] = float(np.max(np.abs(theta_other - theta)))
    return row


def run_first_fit(cache_dir):
    """Timings of a fresh interpreter whose Numba cache is ``cache_dir``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", FIRST_FIT_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_first_fit(repeats):
    """Median timings with a cold cache (empty) and a warm one (filled by a run)."""
    cold, warm = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache_dir:
            cold.append(run_first_fit(cache_dir))
            warm.append(run_first_fit(cache_dir))

    def medians(runs):
        return {key: statistics.median(r[key] for r in runs) for key in runs[0]}

    return {"cold": medians(cold), "warm": medians(warm)}


def source_version():
    """``sk_anyloss`` version and git commit, flagged if the package is modified."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(sk_anyloss.__file__)))

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    if git("status", "--porcelain", "--", "sk_anyloss"):
        commit += ", with uncommitted changes to sk_anyloss"
    return f"sk_anyloss {sk_anyloss.__version__} ({commit})"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_report(load_at_start):
    import torch

    blas = "; ".join(
        sorted(
            {
                f"{lib['prefix']} {lib['version']} ({lib['num_threads']} threads)"
                for lib in threadpool_info()
                if lib["user_api"] == "blas"
            }
        )
    )
    lines = [
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- Command: `{shlex.join(['python', *sys.argv])}`",
        f"- Code: {source_version()}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores "
        f"({n_cores()} usable by this process)",
        f"- Numba {numba.__version__}: threading layer "
        f"`{numba.threading_layer()}`, {numba.get_num_threads()} threads",
        f"- Python {platform.python_version()}, NumPy {np.__version__} "
        f"(BLAS: {blas}), SciPy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}, PyTorch {torch.__version__} "
        f"({torch.get_num_threads()} threads)",
        "- Load average (1, 5, 15 min) when the benchmark started: "
        + ", ".join(f"{x:.2f}" for x in load_at_start),
    ]
    return "\n".join(lines)


def epoch_report(n, d, fit_iter, repeats, results):
    labels = {
        "floor": "floor: `X.sum()` (one thread)",
        "floor_parallel": "floor: `parallel_sum(X)` (every core)",
        "parallel": "`linear_pass.parallel` and the metric's loss and gradient",
        "serial": "`linear_pass.serial` and the metric's loss and gradient",
        "fit": f"`AnyLossClassifier(tol=None, max_iter={fit_iter}).fit` / {fit_iter}",
        "fit_1": "`AnyLossClassifier(tol=None, max_iter=1).fit` (one epoch "
        "plus the per-fit input checks)",
    }
    dtypes = list(results)
    lines = [
        f"### 1. Epoch time, n={n:,}, d={d} (median of {repeats})",
        "",
        "| method | "
        + " | ".join(f"{t} ms | {t} x parallel floor" for t in dtypes)
        + " |",
        "|---" * (1 + 2 * len(dtypes)) + "|",
    ]
    for key, label in labels.items():
        cells = []
        for t in dtypes:
            seconds = results[t][key]
            floor = results[t]["floor_parallel"]
            cells += [f"{1e3 * seconds:.2f}", f"{seconds / floor:.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fit_report(rows):
    lines = [
        "### 2. Fit time, same model, loss, optimiser and iteration count",
        "",
        f"Adam (learning rate {LEARNING_RATE}, betas {BETA_1}/{BETA_2}, epsilon "
        f"{EPSILON}) from zero, full batch, metric {METRIC}, amplifier {AMPLIFIER:g}. "
        "Weight diff: max abs difference of `[coef, intercept]` from ours.",
        "",
        "| n | d | dtype | iterations | repeats | ours s | NumPy s | PyTorch s "
        "| NumPy / ours | PyTorch / ours | weight diff NumPy | weight diff PyTorch |",
        "|---" * 12 + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['d']} | {r['dtype']} | {r['max_iter']} "
            f"| {r['repeats']} "
            f"| {r['ours']:.4f} "
            f"| {r['numpy']:.4f} | {r['torch']:.4f} "
            f"| {r['numpy'] / r['ours']:.2f} | {r['torch'] / r['ours']:.2f} "
            f"| {r['numpy_diff']:.1e} | {r['torch_diff']:.1e} |"
        )
    return "\n".join(lines)


def first_fit_report(results, repeats):
    lines = [
        "### 3. First fit in a fresh process (breast cancer, 569 x 30, "
        f"default parameters; median of {repeats})",
        "",
        "| Numba cache | `import sk_anyloss` s | first fit s | second fit s |",
        "|---|---|---|---|",
    ]
    for cache, r in results.items():
        lines.append(
            f"| {cache} | {r['import']:.3f} | {r['first_fit']:.3f} "
            f"| {r['second_fit']:.3f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--output", help="also write the report to this file")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    load_at_start = os.getloadavg()

    n, d = config["epoch_size"]
    epoch = bench_epoch(n, d, config["epoch_repeats"], config["epoch_fit_iter"])
    fits = [
        bench_fit(*case, dtype)
        for case in config["fit_cases"]
        for dtype in (np.float64, np.float32)
    ]
    first = bench_first_fit(config["first_fit_repeats"])

    report = (
        "\n\n".join(
            [
                "## Benchmark: linear AnyLoss model",
                machine_report(load_at_start),
                epoch_report(
                    n, d, config["epoch_fit_iter"], config["epoch_repeats"], epoch
                ),
                fit_report(fits),
                first_fit_report(first, config["first_fit_repeats"]),
            ]
        )
        + "\n"
    )
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
