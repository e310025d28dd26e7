"""Speed and memory of the linear model on sparse X.

Three measurements, printed as a markdown report:

1. **Epoch time** on a random CSR matrix (default 1,000,000 rows, 200,000
   columns, 20 nonzeros a row, float64: 240 MB), against the floor of a
   sparse epoch, SciPy's ``X @ w`` plus ``X.T @ g`` on the same matrix (one
   read of the nonzeros by rows, one by columns). ``ours`` is one iteration
   of the compiled metric loop (``_kernels_sparse.fit_linear``, the parallel
   build) divided by its iteration count; ``fit`` is
   ``AnyLossClassifier(tol=None, max_iter=I, warmup_iter=0).fit`` divided by
   ``I`` (the conversion to CSC and the checks included).
2. **Peak memory** of a default ``fit`` on that matrix, in a fresh process:
   the peak resident set size during the fit (Linux's ``VmHWM``, reset just
   before it) minus the resident set size before it, against the matrix's own
   size.
3. **Fit time on text** (the suite's ``trump_tweets``: TF-IDF of 20,761
   tweets) against ``LogisticRegression(solver="saga")`` and
   ``SGDClassifier(loss="log_loss")``, each fitted on the same features,
   median of ``--repeats``, with the F1 each reaches on a held-out third.

    python benchmarks/bench_sparse.py [--n N] [--d D] [--nnz K]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone

import numba
import numpy as np
import scipy
import scipy.sparse as sp

from sk_anyloss import AnyLossClassifier

SEED = 0


def make_data(n, d, nnz, seed=SEED):
    """A CSR matrix of ``nnz`` nonzeros a row, values N(0, 1); labels from a
    sparse linear signal (about 10 % positive)."""
    rng = np.random.default_rng(seed)
    indptr = np.arange(0, (n + 1) * nnz, nnz, dtype=np.int64)
    indices = rng.integers(0, d, n * nnz).astype(np.int32)
    data = rng.standard_normal(n * nnz)
    X = sp.csr_matrix((data, indices, indptr), shape=(n, d))
    w = rng.standard_normal(d) * (rng.random(d) < 0.05)
    z = X @ w
    y = (z > np.quantile(z, 0.9)).astype(np.int64)
    return X, y


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_epoch(X, y, iters, repeats):
    from sk_anyloss._backend import cpu_kernel
    from sk_anyloss._base import Problem
    from sk_anyloss._kernels_cpu import ENTRIES_PER_CALL, cpu_metric, new_loop_state
    from sk_anyloss._kernels_sparse import fit_linear, rows_of
    from sk_anyloss._metrics import Metric
    from sk_anyloss._optim import Optimizer
    from sk_anyloss._settings import LinearSettings

    n, d = X.shape
    w = np.random.default_rng(1).standard_normal(d)
    g = np.random.default_rng(2).standard_normal(n)
    results = {"floor": median_time(lambda: (X @ w, X.T @ g), repeats)}
    R = rows_of(X)
    from sk_anyloss._kernels_cpu import make_target

    target = make_target(Problem("binary", y[:, None].astype(np.uint8), y, None),
                         np.ones(n))  # fmt: skip
    metric = Metric("f1")
    compiled = cpu_metric(metric)
    settings = LinearSettings(
        amplifier=20.0, alpha=0.0, fit_intercept=True,
        optimizer=Optimizer(0, 0.01, 0.0, 0.9, 0.999, 1e-8), max_iter=iters,
        use_tol=False, tol=0.0, n_iter_no_change=10,
    )  # fmt: skip
    sw = np.full(n, 1.0 / n)

    def run():
        theta = np.zeros(d + 1)
        state = new_loop_state(d + 1)
        curve = np.empty(iters)
        with cpu_kernel(fit_linear, ENTRIES_PER_CALL) as kernel:
            kernel(R, target, sw, theta, settings, compiled, metric.params, state,
                   curve, iters)  # fmt: skip

    results["ours"] = median_time(run, repeats) / iters
    model = AnyLossClassifier(tol=None, max_iter=iters, warmup_iter=0)
    results["fit"] = median_time(lambda: model.fit(X, y), max(1, repeats // 2)) / iters
    return results


MEMORY_SCRIPT = """
import json, sys, warnings
sys.path.insert(0, {here!r})
from bench_sparse import make_data
from sk_anyloss import AnyLossClassifier

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

X, y = make_data({n}, {d}, {nnz})
AnyLossClassifier(max_iter=2).fit(X[:1000], y[:1000])  # compile first
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident set size to the current one
before = status("VmRSS")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    AnyLossClassifier().fit(X, y)
after = status("VmHWM")
size = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
print(json.dumps(dict(before=before, after=after, size=size)))
"""


def bench_memory(n, d, nnz):
    here = os.path.dirname(os.path.abspath(__file__))
    code = MEMORY_SCRIPT.format(here=here, n=n, d=d, nnz=nnz)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_text(repeats):
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    import suite

    X, y = suite.load("trump_tweets")
    train, test = train_test_split(
        np.arange(y.shape[0]), test_size=1 / 3, stratify=y, random_state=SEED
    )
    prep = suite.preprocessing(X).fit(X[train])
    X_train, X_test = prep.transform(X[train]), prep.transform(X[test])
    models = {
        "AnyLossClassifier(metric='f1')": AnyLossClassifier(metric="f1"),
        "LogisticRegression(solver='saga')": LogisticRegression(
            solver="saga", max_iter=1000
        ),
        "SGDClassifier(loss='log_loss')": SGDClassifier(
            loss="log_loss", random_state=SEED
        ),
    }
    rows = []
    for name, model in models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds = median_time(
                lambda model=model: model.fit(X_train, y[train]), repeats
            )
        rows.append((name, seconds, f1_score(y[test], model.predict(X_test))))
    return X_train.shape, X_train.nnz, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=200_000)
    parser.add_argument("--nnz", type=int, default=20)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, d, nnz = args.n, args.d, args.nnz

    X, y = make_data(n, d, nnz)
    size = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    epoch = bench_epoch(X, y, args.iters, args.repeats)
    del X
    memory = bench_memory(n, d, nnz)
    shape, text_nnz, text_rows = bench_text(args.repeats)

    print(f"### Sparse X: {n:,} x {d:,}, {nnz} nonzeros a row ({size / 1e6:.0f} MB)\n")
    print(
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on "
        f"{platform.machine()}, {os.cpu_count()} cores, Numba {numba.__version__} "
        f"with {numba.get_num_threads()} threads, SciPy {scipy.__version__}; "
        f"command: `python benchmarks/bench_sparse.py --n {n} --d {d} --nnz {nnz} "
        f"--iters {args.iters} --repeats {args.repeats}`; medians of "
        f"{args.repeats}.\n"
    )
    print("| | ms per epoch | / floor |\n|---|---|---|")
    for key, label in [
        ("floor", "SciPy `X @ w` + `X.T @ g` (the floor)"),
        ("ours", "ours, one iteration of the compiled loop"),
        ("fit", "ours, `fit` / iterations"),
    ]:
        t = epoch[key]
        print(f"| {label} | {1e3 * t:.1f} | {t / epoch['floor']:.2f} |")
    growth = memory["after"] - memory["before"]
    print(
        f"\nPeak memory of a default `fit`: +{growth / 1e6:.0f} MB "
        f"({growth / memory['size']:.2f}x the matrix's {memory['size'] / 1e6:.0f} "
        f"MB; resident {memory['before'] / 1e6:.0f} MB before the fit, at most "
        f"{memory['after'] / 1e6:.0f} MB during it).\n"
    )
    print(
        f"Text: `trump_tweets` TF-IDF, training part {shape[0]:,} x {shape[1]:,}, "
        f"{text_nnz:,} nonzeros; F1 on the held-out third.\n"
    )
    print("| model | fit s | F1 |\n|---|---|---|")
    for name, seconds, score in text_rows:
        print(f"| `{name}` | {seconds:.3f} | {score:.3f} |")


if __name__ == "__main__":
    main()
