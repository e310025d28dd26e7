"""The benchmark suite: AnyLoss estimators against log-loss baselines.

5-fold stratified CV (seed 0) on the real datasets of ``suite.py``
(bench extra), the same preprocessing for every model; for each metric asked,
the AnyLoss model and the tuned-threshold baseline are trained for that
metric. Writes the raw records (JSON), one markdown table per metric and
family, and the plot.

    python benchmarks/runsuite.py --quick              # small sets, < 2 min
    python benchmarks/runsuite.py --models linear mlp  # the whole suite
"""

import argparse
import json
import os
import platform
import sys
import time
from datetime import date

import suite

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small datasets only")
    parser.add_argument("--datasets", nargs="+", choices=list(suite.DATASETS))
    parser.add_argument(
        "--metric",
        nargs="+",
        default=["f1", "balanced_accuracy", "gmean"],
        choices=list(suite.REPORTED_METRICS),
    )
    parser.add_argument(
        "--models", nargs="+", default=["linear"], choices=list(suite.MODEL_FAMILIES)
    )
    parser.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help="skip datasets with more rows than this (e.g. for the MLP family)",
    )
    parser.add_argument("--name", default=None, help="file stem of the outputs")
    args = parser.parse_args(argv)

    keys = args.datasets or [
        k for k, d in suite.DATASETS.items() if d.quick or not args.quick
    ]
    if args.max_rows is not None:
        keys = [k for k in keys if len(suite.load(k)[1]) <= args.max_rows]
    name = args.name or ("suite_quick" if args.quick else "suite") + "_" + "_".join(
        args.models
    )
    start = time.perf_counter()
    # The first fit compiles the kernels (or loads them from Numba's cache):
    # keep it out of the timings.
    suite.warm_up()
    records = suite.run(keys, args.metric, args.models, log=print)
    elapsed = time.perf_counter() - start

    out = os.path.join(HERE, "results")
    os.makedirs(out, exist_ok=True)
    meta = dict(
        date=str(date.today()),
        machine=f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs",
        command="python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:]),
        elapsed_s=round(elapsed, 1),
    )
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(dict(meta=meta, records=records), f, indent=1)
    lines = [
        f"{meta['date']}, {meta['machine']}, `{meta['command']}`, "
        f"{elapsed / 60:.1f} min in all."
    ]
    for family in args.models:
        for metric in args.metric:
            lines += ["", f"#### {family}: {metric}", ""]
            lines.append(suite.tables(records, metric, family))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(text)
    suite.plot(records, args.metric, os.path.join(out, f"{name}.png"))
    print(text)


if __name__ == "__main__":
    main()
