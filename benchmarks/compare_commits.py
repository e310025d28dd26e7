"""Fit times of the working tree against an earlier commit, side by side.

The package of ``REV`` is exported (``git archive``) into a temporary folder
under another name and imported next to the working tree's package, in the
same process; each case then alternates the two, so that both see the same
machine at the same moments (a shared machine's speed drifts between runs
more than the differences sought). Only the public API is used, so any two
commits compare.

A caveat: Numba's dispatcher caches argument types by a fingerprint that
does not tell two NamedTuple classes of the same fields apart, so where both
packages pass such a record (a target, settings) from Python to a kernel,
the package that calls second takes Numba's slow typing path on every call
(tens of microseconds). Calls from Python on every warm-up step made fits of
breast cancer look 2x slower here (3.7 against 6.6 ms) when they were not
(3.0-3.2 against 3.1-4.8 ms, each package in a process of its own): check a
difference in small fits in separate processes.

    python benchmarks/compare_commits.py 896d53a [--repeats 3]
"""

import argparse
import importlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_revision(rev, folder):
    """The package ``sk_anyloss`` of commit ``rev``, imported as another name."""
    archive = subprocess.run(
        ["git", "archive", rev, "sk_anyloss"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    name = "sk_anyloss_" + rev.replace("-", "_").replace("~", "_").replace("^", "_")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    os.rename(os.path.join(folder, "sk_anyloss"), os.path.join(folder, name))
    sys.path.insert(0, folder)
    return importlib.import_module(name)


def data(n, d, seed=0):
    """Standard normal ``X`` and 20 % positives from a noisy linear rule."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    score = X @ rng.standard_normal(d) / np.sqrt(d) + 0.5 * rng.standard_normal(n)
    return X, (score > np.quantile(score, 0.8)).astype(int)


def cases(scale):
    X_bc, y_bc = load_breast_cancer(return_X_y=True)
    X_bc = (X_bc - X_bc.mean(0)) / X_bc.std(0)
    X2k, y2k = data(2000, 20)
    w2k = np.random.default_rng(1).uniform(0.5, 2.0, 2000)
    Xb, yb = data(int(1_000_000 * scale), 50)
    Xb32 = Xb.astype(np.float32)
    X5k, y5k = data(5000, 20)
    Xm, ym = data(int(100_000 * scale), 20)
    fixed = dict(warmup_iter=0, amplifier=73.0, learning_rate_init=0.01, tol=None)
    mlp = dict(hidden_layer_sizes=(64,), batch_size=256, tol=0, n_iter_no_change=10**6)
    big = f"{Xb.shape[0]:,} x 50"
    return {
        "linear, breast cancer, defaults": (
            lambda P: P.AnyLossClassifier().fit(X_bc, y_bc),
            100,
        ),
        "linear, 2,000 x 20, 1000 iterations": (
            lambda P: P.AnyLossClassifier(max_iter=1000, **fixed).fit(X2k, y2k),
            10,
        ),
        "linear, 2,000 x 20, weighted, defaults": (
            lambda P: P.AnyLossClassifier().fit(X2k, y2k, sample_weight=w2k),
            100,
        ),
        f"linear, {big} float64, 20 iterations": (
            lambda P: P.AnyLossClassifier(max_iter=20, **fixed).fit(Xb, yb),
            7,
        ),
        f"linear, {big} float32, 20 iterations": (
            lambda P: P.AnyLossClassifier(max_iter=20, **fixed).fit(Xb32, yb),
            7,
        ),
        "MLP, breast cancer, defaults": (
            lambda P: P.AnyLossMLPClassifier(random_state=0).fit(X_bc, y_bc),
            5,
        ),
        "MLP, 5,000 x 20, hidden 64, 20 epochs": (
            lambda P: P.AnyLossMLPClassifier(max_iter=20, random_state=0, **mlp).fit(
                X5k, y5k
            ),
            5,
        ),
        f"MLP, {Xm.shape[0]:,} x 20, hidden 64, 5 epochs": (
            lambda P: P.AnyLossMLPClassifier(max_iter=5, random_state=0, **mlp).fit(
                Xm, ym
            ),
            3,
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the earlier commit")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    import sk_anyloss as after

    with tempfile.TemporaryDirectory() as folder:
        before = import_revision(args.rev, folder)
        print(f"| case | {args.rev} ms | working tree ms | ratio |")
        print("|---|---|---|---|")
        for name, (fit, repeats) in cases(0.1 if args.quick else 1.0).items():
            fit(before)
            fit(after)  # compile, or load from the cache
            times = {"before": [], "after": []}
            for _ in range(repeats if not args.quick else 2):
                for key, package in (("before", before), ("after", after)):
                    start = time.perf_counter()
                    fit(package)
                    times[key].append(time.perf_counter() - start)
            b, a = (1e3 * np.median(times[k]) for k in ("before", "after"))
            print(f"| {name} | {b:.1f} | {a:.1f} | {a / b:.2f} |", flush=True)


if __name__ == "__main__":
    main()
