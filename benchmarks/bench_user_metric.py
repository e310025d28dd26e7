"""A metric of the user's against the built-in one it equals.

1. Fit time with ``metric=f1`` (a Python function equal to F1) against
   ``metric="f1"``, alternated in one process, at n = 100,000, d = 20: the
   linear model (20 iterations, no warm-up) and the MLP (default batch size,
   5 epochs). The models are compared too.
2. The first fit with a new function, against a first fit with a built-in
   metric, each in a fresh process with a warm Numba cache (the package's
   kernels compiled): what reading, differentiating and compiling the user's
   function costs.

    python benchmarks/bench_user_metric.py [--quick]
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

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier


def f1(tn, fp, fn, tp):
    return 2 * tp / (2 * tp + fp + fn)


FIRST_FIT = """
import json, sys, time
import numpy as np
from sklearn.datasets import load_breast_cancer
X, y = load_breast_cancer(return_X_y=True)
X = (X - X.mean(0)) / X.std(0)
import sk_anyloss
from sk_anyloss import {estimator}
def f1(tn, fp, fn, tp):
    return 2 * tp / (2 * tp + fp + fn)
metric = f1 if sys.argv[1] == "function" else "f1"
t = time.perf_counter()
{estimator}(metric=metric, max_iter=5).fit(X, y)
print(json.dumps({{"first_fit": time.perf_counter() - t}}))
"""


def data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    score = X @ rng.standard_normal(d) / np.sqrt(d) + 0.5 * rng.standard_normal(n)
    return X, (score > np.quantile(score, 0.8)).astype(int)


def side_by_side(make, X, y, repeats):
    """Median fit times of ``make("f1")`` and ``make(f1)``, alternated."""
    times = {"built-in": [], "function": []}
    models = {}
    for key, metric in (("built-in", "f1"), ("function", f1)):
        models[key] = make(metric).fit(X, y)  # compile, or load from the cache
    for _ in range(repeats):
        for key, metric in (("built-in", "f1"), ("function", f1)):
            start = time.perf_counter()
            make(metric).fit(X, y)
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}, models


def first_fit(estimator, which, repeats):
    script = FIRST_FIT.format(estimator=estimator)
    times = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", script, which],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(json.loads(out.stdout.strip().splitlines()[-1])["first_fit"])
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    n = 10_000 if args.quick else 100_000
    repeats = 2 if args.quick else 7
    X, y = data(n, 20)
    print(f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"- Command: `python {' '.join(sys.argv)}`")
    print(f"- Machine: {platform.machine()}, {os.cpu_count()} logical CPUs")
    print()
    print(f"### Fit time, n = {n:,}, d = 20 (median of {repeats}, alternated)")
    print()
    print("| model | `metric=\"f1\"` s | `metric=f1` (a function) s | ratio "
          "| largest weight difference |")  # fmt: skip
    print("|---|---|---|---|---|")
    cases = {
        "linear, 20 iterations": lambda m: AnyLossClassifier(
            m, warmup_iter=0, tol=None, max_iter=20
        ),
        "MLP, 5 epochs": lambda m: AnyLossMLPClassifier(
            m, max_iter=5, random_state=0, log_loss_weight=0.0
        ),
    }
    for name, make in cases.items():
        times, models = side_by_side(make, X, y, repeats)
        a, b = models["built-in"], models["function"]
        if hasattr(a, "coef_"):
            diff = np.max(np.abs(a.coef_ - b.coef_))
        else:
            diff = max(np.max(np.abs(p - q)) for p, q in zip(a.coefs_, b.coefs_))
        ratio = times["function"] / times["built-in"]
        print(
            f"| {name} | {times['built-in']:.3f} | {times['function']:.3f} "
            f"| {ratio:.2f} | {diff:.1e} |"
        )
    print()
    print(
        "### First fit in a fresh process, warm Numba cache (breast cancer, "
        f"5 iterations; median of {3 if not args.quick else 1})"
    )
    print()
    print("| estimator | built-in metric s | a new function s | difference s |")
    print("|---|---|---|---|")
    for estimator in ("AnyLossClassifier", "AnyLossMLPClassifier"):
        r = 1 if args.quick else 3
        first_fit(estimator, "function", 1)  # fill the cache of the kernels
        built_in = first_fit(estimator, "built-in", r)
        function = first_fit(estimator, "function", r)
        print(
            f"| {estimator} | {built_in:.3f} | {function:.3f} "
            f"| {function - built_in:+.3f} |"
        )


if __name__ == "__main__":
    main()
