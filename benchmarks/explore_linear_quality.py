"""Which change to the linear model's defaults wins on the suite as a whole?

Candidates are scored on every suite dataset of at most ``--max-rows`` rows
(5-fold stratified CV, seed 0, the suite's preprocessing), for each metric;
the table gives the mean over datasets and the mean fit time per fold, next
to the tuned-threshold and class-weighted logistic regressions.

    python benchmarks/explore_linear_quality.py --metric f1
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, TunedThresholdClassifierCV
from sklearn.utils import _safe_indexing

from sk_anyloss import AnyLossClassifier, _suite
from sk_anyloss._metrics import score_labels


class _LogisticStart(AnyLossClassifier):
    """Starts from a logistic regression's coefficients (the experiment)."""

    def __init__(self, metric="f1", *, start=None, **params):
        super().__init__(metric, **params)
        self.start = start

    def _initial_theta(self, X, y01, sw):
        lr = LogisticRegression(**self.start).fit(X, y01)
        return np.r_[lr.coef_.ravel(), lr.intercept_]


def candidates(metric):
    def anyloss(**params):
        return lambda: AnyLossClassifier(metric, **params)

    return {
        "LR balanced": lambda: LogisticRegression(class_weight="balanced"),
        "LR tuned threshold": lambda: TunedThresholdClassifierCV(
            LogisticRegression(), scoring=_suite._scorer(metric), random_state=0
        ),
        "defaults (L=73, alpha=0)": anyloss(),
        "alpha=1e-3": anyloss(alpha=1e-3),
        "alpha=1e-2": anyloss(alpha=1e-2),
        "alpha=1e-1": anyloss(alpha=1e-1),
        "L=10": anyloss(amplifier=10.0),
        "L=20": anyloss(amplifier=20.0),
        "L=30": anyloss(amplifier=30.0),
        "L=20, alpha=1e-2": anyloss(amplifier=20.0, alpha=1e-2),
        "lr=0.001": anyloss(learning_rate_init=0.001),
        "lr=0.1": anyloss(learning_rate_init=0.1),
        "tol=None (1000 iterations)": anyloss(tol=None),
        "n_iter_no_change=50": anyloss(n_iter_no_change=50),
        "start at LR": lambda: _LogisticStart(metric, start={}),
        "start at LR balanced": lambda: _LogisticStart(
            metric, start={"class_weight": "balanced"}
        ),
        "start at LR balanced, L=20": lambda: _LogisticStart(
            metric, start={"class_weight": "balanced"}, amplifier=20.0
        ),
        "start at LR balanced (10 lbfgs steps), L=20": lambda: _LogisticStart(
            metric, start={"class_weight": "balanced", "max_iter": 10}, amplifier=20.0
        ),
        "start at LR balanced, L=10": lambda: _LogisticStart(
            metric, start={"class_weight": "balanced"}, amplifier=10.0
        ),
        "start at LR balanced, L=20, alpha=1e-2": lambda: _LogisticStart(
            metric, start={"class_weight": "balanced"}, amplifier=20.0, alpha=1e-2
        ),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="f1")
    parser.add_argument("--max-rows", type=int, default=20_000)
    parser.add_argument("--only", nargs="*", help="candidate labels to run")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)

    data = []
    for key in _suite.DATASETS:
        X, y = _suite.load(key)
        if len(y) > args.max_rows:
            continue
        folds = []
        for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
            prep = _suite.preprocessing(X).fit(_safe_indexing(X, train))
            folds.append(
                (
                    prep.transform(_safe_indexing(X, train)),
                    y[train],
                    prep.transform(_safe_indexing(X, test)),
                    y[test],
                )
            )
        data.append((key, folds))
    AnyLossClassifier(max_iter=2).fit(*data[0][1][0][:2])  # compile / load

    names = [k for k, _ in data]
    print(f"metric = {args.metric}; datasets: {', '.join(names)}\n")
    print("| candidate | " + " | ".join(names) + " | mean | fit s / fold |")
    print("|---" * (len(names) + 3) + "|")
    for label, make in candidates(args.metric).items():
        if args.only and label not in args.only:
            continue
        means, fit_s = [], []
        for _, folds in data:
            scores = []
            for X_tr, y_tr, X_te, y_te in folds:
                model = make()
                start = time.perf_counter()
                model.fit(X_tr, y_tr)
                fit_s.append(time.perf_counter() - start)
                scores.append(
                    score_labels(y_te, model.predict(X_te), metric=args.metric)
                )
            means.append(np.mean(scores))
        row = " | ".join(f"{s:.3f}" for s in means)
        print(
            f"| {label} | {row} | {np.mean(means):.4f} | {np.mean(fit_s):.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
