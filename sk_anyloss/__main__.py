"""The demonstration: AnyLoss against log-loss baselines on real data.

    python -m sk_anyloss [--metric f1 gmean ...] [--folds 5]

Trains on scikit-learn's bundled breast-cancer data (positive class:
malignant) with stratified cross-validation and prints, for each metric, the
test score and fit time of ``AnyLossClassifier`` trained for that metric
against logistic regression, class-weighted logistic regression and logistic
regression with a decision threshold tuned for the metric.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer
from sklearn.model_selection import StratifiedKFold, TunedThresholdClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._linear import AnyLossClassifier
from ._metrics import METRIC_NAMES, score_labels

DEFAULT_METRICS = ("f1", "balanced_accuracy", "gmean", "mcc")


def _models(metric):
    scorer = make_scorer(score_labels, metric=metric)
    return {
        f"AnyLossClassifier({metric!r})": AnyLossClassifier(metric),
        "LogisticRegression()": LogisticRegression(),
        "LogisticRegression(balanced)": LogisticRegression(class_weight="balanced"),
        "TunedThreshold(LogisticRegression)": TunedThresholdClassifierCV(
            LogisticRegression(), scoring=scorer, random_state=0
        ),
    }


def compare(X, y, metrics, n_folds=5, seed=0):
    """Cross-validated score and fit time of every model for every metric.

    Returns a list of ``(metric, model, mean score, std score, mean fit s)``.
    """
    cv = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    rows = []
    for metric in metrics:
        for label, model in _models(metric).items():
            scores, times = [], []
            for train, test in cv.split(X, y):
                pipe = make_pipeline(StandardScaler(), model)
                start = time.perf_counter()
                pipe.fit(X[train], y[train])
                times.append(time.perf_counter() - start)
                scores.append(
                    score_labels(y[test], pipe.predict(X[test]), metric=metric)
                )
            rows.append(
                (metric, label, np.mean(scores), np.std(scores), np.mean(times))
            )
    return rows


def format_table(rows):
    lines = [
        "| metric | model | test score (mean +- std) | fit time (ms) |",
        "|---|---|---|---|",
    ]
    for metric, label, mean, std, fit_s in rows:
        lines.append(
            f"| {metric} | {label} | {mean:.4f} +- {std:.4f} | {1e3 * fit_s:.1f} |"
        )
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
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")

    X, y = load_breast_cancer(return_X_y=True)
    y = 1 - y  # positive class = malignant (37 %)
    print(
        f"breast cancer: {X.shape[0]} samples, {X.shape[1]} features, "
        f"{100 * y.mean():.1f} % positive; {args.folds}-fold stratified CV, "
        "StandardScaler in front of every model\n"
    )
    start = time.perf_counter()
    AnyLossClassifier(max_iter=1, tol=None).fit(X, y)
    print(
        f"first fit in this process: {time.perf_counter() - start:.2f} s (compiles "
        "the kernels on the first run, then loads them from Numba's disk cache); "
        "not counted in the fit times below\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        rows = compare(X, y, args.metric, args.folds)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
