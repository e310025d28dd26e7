"""The demonstration: AnyLoss against log-loss baselines on an imbalanced task.

    python -m sk_anyloss [--metric f1 gmean ...] [--models linear mlp]
                         [--folds 5] [--plot out.png]

Trains on scikit-learn's handwritten digits, the digit 8 against the nine
others (10 % positives). For each metric, the AnyLoss estimators trained for
it are compared, with stratified cross-validation and the same
standardisation, against log-loss models, their class-weighted versions and
log-loss models with a decision threshold tuned for the metric. The benchmark
suite of real datasets is ``benchmarks/run_suite.py``.
"""

import argparse
import os
import time

from . import _demo
from ._metrics import METRIC_NAMES


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="sk-anyloss",
        description="Compare AnyLoss classifiers with log-loss baselines on an "
        "imbalanced task (handwritten digits: 8 against the rest).",
    )
    parser.add_argument(
        "--metric",
        nargs="+",
        default=list(_demo.REPORTED_METRICS),
        choices=METRIC_NAMES,
        help="metrics to train for and report (default: %(default)s)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(_demo.MODEL_FAMILIES),
        choices=list(_demo.MODEL_FAMILIES),
        help="model families to compare (default: %(default)s)",
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    parser.add_argument("--plot", metavar="PATH", help="save the plot to PATH (png)")
    args = parser.parse_args(argv)
    X, y = _demo.demo_data()
    smallest = int(min(y.sum(), (1 - y).sum()))
    if not 2 <= args.folds <= smallest:
        parser.error(
            f"--folds must be between 2 and {smallest} (the images of the "
            "smaller class: each fold needs one)"
        )
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.exit(2, "sk-anyloss: error: --plot needs matplotlib\n")
        folder = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(folder):
            parser.error(f"--plot: the folder {folder} does not exist")
    print(
        f"Data: scikit-learn's handwritten digits, {X.shape[0]} images of "
        f"{X.shape[1]} pixels; the positive class is the digit "
        f"{_demo.DEMO_DIGIT} ({100 * y.mean():.1f} % of the images).\n"
        f"{args.folds}-fold stratified cross-validation, the same standardisation "
        "for every model; each model is scored at its own decision rule "
        "(predict).\n"
    )
    start = time.perf_counter()
    _demo.warm_up(args.metric)
    print(
        f"First fits in this process: {time.perf_counter() - start:.2f} s (the "
        "kernels compile on the first run, then load from Numba's disk cache); "
        "not counted in the fit times below.\n"
    )
    records = _demo.compare(X, y, args.metric, args.models, n_folds=args.folds)
    print(_demo.summary_table(records, args.metric))
    labels = {r["model"] for r in records} | {
        _demo.METRIC_LABELS[m] for m in args.metric
    }
    print("\nAbbreviations:")
    for name, meaning in _demo.GLOSSARY.items():
        if name in labels:
            print(f"  {name}: {meaning}")
    if args.plot:
        _demo.plot(
            records,
            args.metric,
            args.plot,
            title=f"Digits: {_demo.DEMO_DIGIT} against the rest "
            f"({100 * y.mean():.0f} % positives), {args.folds}-fold CV",
        )
        print(f"\nPlot saved to {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
