"""The demonstration: AnyLoss against log-loss baselines on real data.

    python -m sk_anyloss [--metric f1 gmean ...] [--models linear mlp]
                         [--suite | --quick] [--folds 5] [--plot out.png]

By default trains on scikit-learn's bundled breast-cancer data (positive
class: malignant); ``--suite`` runs the whole offline benchmark suite and
``--quick`` its small datasets (both need the ``bench`` extra). For each
metric, the AnyLoss estimators trained for it are compared, with stratified
cross-validation and the same preprocessing, against log-loss models, their
class-weighted versions and log-loss models with a decision threshold tuned
for the metric.
"""

import argparse
import time

import numpy as np

from . import _suite
from ._metrics import METRIC_NAMES

DEFAULT_METRICS = ("f1", "balanced_accuracy", "gmean", "mcc")


def summary_table(records, metric):
    """Markdown table: each model's mean test ``metric`` and fit time.

    Means over the datasets of ``records``; the AnyLoss rows and the
    tuned-threshold rows are the models trained or tuned for ``metric``.
    """
    lines = [
        f"| model | {metric} (mean over datasets) | fit time per fold (ms) |",
        "|---|---|---|",
    ]
    families = list(dict.fromkeys(r["family"] for r in records))
    for family in families:
        for model in _suite.MODEL_FAMILIES[family]():
            got = [
                r
                for r in records
                if r["family"] == family
                and r["model"] == model.label
                and r["trained_for"] in (None, metric)
            ]
            if not got:
                continue
            label = f"**{model.label}**" if model.anyloss else model.label
            score = np.mean([r["scores"][metric] for r in got])
            fit_ms = 1e3 * np.mean([r["fit_s"] for r in got])
            lines.append(f"| {label} | {score:.4f} | {fit_ms:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="sk-anyloss",
        description="Compare AnyLoss classifiers with log-loss baselines on real data.",
    )
    parser.add_argument(
        "--metric",
        nargs="+",
        default=list(DEFAULT_METRICS),
        choices=METRIC_NAMES,
        help="metrics to train for and report (default: %(default)s)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(_suite.MODEL_FAMILIES),
        choices=list(_suite.MODEL_FAMILIES),
        help="model families to compare (default: %(default)s)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--suite",
        action="store_true",
        help="every dataset of the benchmark suite (bench extra; long)",
    )
    where.add_argument(
        "--quick", action="store_true", help="the suite's small datasets (bench extra)"
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    parser.add_argument("--plot", metavar="PATH", help="save the plot to PATH (png)")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")

    if args.suite or args.quick:
        keys = [k for k, d in _suite.DATASETS.items() if d.quick or args.suite]
    else:
        keys = ["breast_cancer"]
    try:
        if args.plot:
            _suite.require("matplotlib")
        datasets = {k: _suite.load(k) for k in keys}
    except ImportError as exc:
        parser.exit(2, f"sk-anyloss: error: {exc}\n")
    print(
        f"{len(keys)} dataset(s): {', '.join(keys)}; {args.folds}-fold stratified "
        "CV, the same preprocessing (impute, one-hot, standardise) for every "
        "model; scores at each model's own decision rule\n"
    )

    start = time.perf_counter()
    _suite.warm_up()
    print(
        f"first fits in this process: {time.perf_counter() - start:.2f} s (compile "
        "the kernels on the first run, then load them from Numba's disk cache); "
        "not counted in the fit times below\n"
    )
    records = _suite.run(
        keys,
        args.metric,
        args.models,
        n_folds=args.folds,
        log=lambda line: print(line, flush=True),
        loaded=datasets,
    )
    for metric in args.metric:
        print(f"\n{summary_table(records, metric)}")
    if args.plot:
        _suite.plot(records, args.metric, args.plot)
        print(f"\nplot saved to {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
