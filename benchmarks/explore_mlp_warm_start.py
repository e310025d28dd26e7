"""Experiment: does a short log-loss fit help the AnyLoss MLP as a start?

The same eight tasks and protocol as ``explore_mlp_defaults.py``. Each fold
first fits ``MLPClassifier`` (the same architecture and seed) for a few
epochs, copies its weights into an ``AnyLossMLPClassifier`` with the default
settings (``warm_start=True`` continues from ``coefs_`` and ``intercepts_``),
and continues on the metric loss.

    python benchmarks/explore_mlp_warm_start.py
"""

import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from sk_anyloss import AnyLossMLPClassifier

from explore_mlp_defaults import FORMER, tasks


def warm_started(X, y, log_loss_epochs, **params):
    base = MLPClassifier(random_state=0, max_iter=log_loss_epochs).fit(X, y)
    # "AnyLoss defaults" are those of the time (FORMER), pinned.
    params = {**FORMER, **params}
    model = AnyLossMLPClassifier(random_state=0, warm_start=True, max_iter=1, **params)
    model.fit(X, y)  # builds the network of the same shape
    # warm_start continues from coefs_ and intercepts_; a fresh optimizer state
    # is not exposed, so the Adam moments of that one epoch carry over.
    model.coefs_ = [W.copy() for W in base.coefs_]
    model.intercepts_ = [b.copy() for b in base.intercepts_]
    return model.set_params(max_iter=200).fit(X, y)


CANDIDATES = {
    "10 log-loss epochs, then AnyLoss defaults": dict(log_loss_epochs=10),
    "30 log-loss epochs, then AnyLoss defaults": dict(log_loss_epochs=30),
    "30 log-loss epochs, then AnyLoss with step 0.001": dict(
        log_loss_epochs=30, learning_rate_init=0.001
    ),
}


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    data = list(tasks())
    print("| model | " + " | ".join(n for n, _, _ in data) + " | mean | fit s |")
    print("|---" * (len(data) + 3) + "|")
    for label, params in CANDIDATES.items():
        scores, elapsed = [], 0.0
        for _, X, y in data:
            folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
            fold_scores = []
            for train, test in folds:
                scaler = StandardScaler().fit(X[train])
                start = time.perf_counter()
                model = warm_started(scaler.transform(X[train]), y[train], **params)
                elapsed += time.perf_counter() - start
                y_pred = model.predict(scaler.transform(X[test]))
                fold_scores.append(f1_score(y[test], y_pred))
            scores.append(np.mean(fold_scores))
        row = " | ".join(f"{s:.3f}" for s in scores)
        print(
            f"| {label} | {row} | {np.mean(scores):.3f} | {elapsed:.1f} |", flush=True
        )


if __name__ == "__main__":
    main()
