"""AnyLossClassifier on a Dask cluster: scale, time per pass against dask-ml,
and the client round trip.

Printed as a markdown report:

1. **Larger than a worker.** ``X`` (default 40,000,000 x 50 float32, 8 GB)
   is made on the workers of a ``LocalCluster`` of two worker processes, each
   limited to ``--memory-limit`` (default 6 GB, less than the array), and
   persisted there. ``AnyLossClassifier(metric="f1")`` is fitted with its
   defaults; the time of one iteration is measured as the difference of two
   fits (``max_iter`` = ``--iters`` and twice that, ``tol=None``,
   ``warmup_iter=0``) over ``--iters``.
2. **In memory.** The same iteration on an in-memory array of
   ``--memory-rows`` rows (in this process, all cores), scaled to the rows of
   the Dask array.
3. **dask-ml.** One pass of ``dask_ml.linear_model.LogisticRegression(
   solver="lbfgs")`` on the same persisted array: its objective's loss and
   gradient, computed as its solver computes them at every evaluation
   (``dask_glm``'s ``pointwise_loss`` and ``pointwise_gradient``), median of
   3; then both models fitted with their defaults and their F1 on the
   training data at their own decision rule.
4. **The round trip.** One iteration on a tiny array (one block of 1,000
   rows per worker), at 1 and at 2 workers: what an iteration costs besides
   the pass.

    python benchmarks/bench_dask.py [--rows N] [--d D] [--block B]
"""

import argparse
import os
import platform
import statistics
import time
import warnings
from datetime import datetime, timezone

import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait

from sk_anyloss import AnyLossClassifier

SEED = 0


def make_data(rows, d, block, seed=SEED):
    """``X`` N(0, 1) float32 made on the workers, labels from a linear
    signal plus noise (about 10 % positive)."""
    rng = da.random.default_rng(seed)
    X = rng.standard_normal((rows, d), chunks=(block, d), dtype=np.float32)
    w = np.random.default_rng(seed).standard_normal(d).astype(np.float32)
    noise = rng.standard_normal(rows, chunks=block, dtype=np.float32)
    y = ((X @ w + 2.0 * noise) > 3.0 * np.sqrt(d) / 2.5).astype(np.int8)
    return X, y


def iteration_time(X, y, iters):
    """Seconds per iteration of the metric loop: two fits' difference."""

    def fit(max_iter):
        model = AnyLossClassifier(max_iter=max_iter, tol=None, warmup_iter=0)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y)
        return time.perf_counter() - start

    fit(2)  # compile, warm the cluster
    return (fit(2 * iters) - fit(iters)) / iters


def dask_ml_pass(X, y, repeats=3):
    from dask_glm.families import Logistic

    beta = np.full(X.shape[1], 0.01)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dask.compute(
            Logistic.pointwise_loss(beta, X, y), Logistic.pointwise_gradient(beta, X, y)
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def f1_of(model, X, y):
    predicted = model.predict(X)
    tp, fp, fn = dask.compute(
        ((predicted == 1) & (y == 1)).sum(),
        ((predicted == 1) & (y == 0)).sum(),
        ((predicted == 0) & (y == 1)).sum(),
    )
    return 2 * tp / (2 * tp + fp + fn)


def round_trip(workers, iters):
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        X, y = make_data(1000 * workers, 50, 1000)
        X, y = client.persist([X, y])
        return iteration_time(X, y, iters)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000_000)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--block", type=int, default=1_000_000)
    parser.add_argument("--memory-limit", default="6GB")
    parser.add_argument("--memory-rows", type=int, default=4_000_000)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    rows, d = args.rows, args.d
    nbytes = rows * d * 4
    # No spilling: the point is a fit whose data live in the workers' memory.
    dask.config.set(
        {
            "distributed.worker.memory.target": False,
            "distributed.worker.memory.spill": False,
            "distributed.worker.memory.pause": 0.95,
        }
    )
    report = []
    with LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit=args.memory_limit,
        dashboard_address=None,
    ) as cluster, Client(cluster) as client:  # fmt: skip
        X, y = make_data(rows, d, args.block)
        start = time.perf_counter()
        X, y = client.persist([X, y])
        wait([X, y])
        made = time.perf_counter() - start
        per_iteration = iteration_time(X, y, args.iters)
        dask_ml = dask_ml_pass(X, y)

        from dask_ml.linear_model import LogisticRegression

        start = time.perf_counter()
        ours = AnyLossClassifier(metric="f1")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours.fit(X, y)
        ours_fit = time.perf_counter() - start
        start = time.perf_counter()
        theirs = LogisticRegression(solver="lbfgs").fit(X, y)
        theirs_fit = time.perf_counter() - start
        f1_ours, f1_theirs = f1_of(ours, X, y), f1_of(theirs, X, y)
        positive = float(y.mean().compute())

    X_mem, y_mem = dask.compute(*make_data(args.memory_rows, d, args.block))
    in_memory = iteration_time(X_mem, y_mem, args.iters) * rows / args.memory_rows
    del X_mem, y_mem
    trips = {w: round_trip(w, 20) for w in (1, 2)}

    report.append(
        f"### Dask: {rows:,} x {d} float32 ({nbytes / 1e9:.1f} GB), blocks of "
        f"{args.block:,} rows, 2 workers of {args.memory_limit} each\n"
    )
    report.append(
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on "
        f"{platform.machine()}, {os.cpu_count()} cores (client and workers on one "
        f"machine, one thread per worker); dask {dask.__version__}; command: "
        f"`python benchmarks/bench_dask.py --rows {rows} --d {d} --block "
        f"{args.block} --memory-limit {args.memory_limit} --memory-rows "
        f"{args.memory_rows} --iters {args.iters}`. {100 * positive:.1f} % "
        f"positive; the data were made and persisted in {made:.0f} s.\n"
    )
    report.append("| | s per pass |\n|---|---|")
    report.append(f"| AnyLoss, one iteration on the cluster | {per_iteration:.2f} |")
    report.append(
        f"| AnyLoss, the same iteration in memory (measured on "
        f"{args.memory_rows:,} rows, scaled) | {in_memory:.2f} |"
    )
    report.append(f"| dask-ml lbfgs, one loss + gradient evaluation | {dask_ml:.2f} |")
    report.append(
        f"\nPer pass, AnyLoss / dask-ml: **{per_iteration / dask_ml:.2f}**. "
        f"Whole fits with defaults: AnyLoss {ours_fit:.0f} s "
        f"({len(ours.loss_curve_)} iterations after a {ours.warmup_iter}-step "
        f"warm-up), F1 {f1_ours:.4f}; dask-ml `LogisticRegression(solver='lbfgs')` "
        f"{theirs_fit:.0f} s, F1 {f1_theirs:.4f} (training data, each at its own "
        "decision rule).\n"
    )
    report.append("| workers | s per iteration on a tiny array (the round trip) |")
    report.append("|---|---|")
    for w, t in trips.items():
        report.append(f"| {w} | {t * 1e3:.1f} ms |")
    report.append(
        f"\nThe round trip is {trips[2] / per_iteration:.1%} of an iteration on "
        "the large array (2 workers)."
    )
    print("\n".join(report))


if __name__ == "__main__":
    main()
