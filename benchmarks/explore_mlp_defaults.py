"""First look at AnyLossMLPClassifier's defaults against MLPClassifier.

Two imbalanced one-vs-rest tasks on scikit-learn's bundled digits (the digit
8, then 9, against the rest: 10 % positives), hidden layer (8,), 5-fold
stratified CV (seed 0), test F1 averaged over tasks and folds.

    python benchmarks/explore_mlp_defaults.py
"""

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from sk_anyloss import AnyLossMLPClassifier

CANDIDATES = {
    "MLPClassifier(max_iter=500)": lambda: MLPClassifier(
        hidden_layer_sizes=(8,), random_state=0, max_iter=500
    ),
    **{
        f"AnyLossMLPClassifier({', '.join(f'{k}={v!r}' for k, v in kw.items())})": (
            lambda kw=kw: AnyLossMLPClassifier(
                hidden_layer_sizes=(8,), random_state=0, **kw
            )
        )
        for kw in [
            dict(learning_rate_init=0.001),
            dict(learning_rate_init=0.003, n_iter_no_change=50),
            dict(learning_rate_init=0.01),
            dict(learning_rate_init=0.01, tol=0.0, max_iter=300),
            dict(learning_rate_init=0.01, amplifier=20.0),
            dict(learning_rate_init=0.01, amplifier=10.0),
            dict(learning_rate_init=0.01, batch_size=64),
            dict(learning_rate_init=0.01, activation="tanh"),
        ]
    },
}


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, digit = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    print("| model | mean test F1 | fit s (total) |\n|---|---|---|")
    for label, make in CANDIDATES.items():
        scores, elapsed = [], 0.0
        for positive in (8, 9):
            y = (digit == positive).astype(int)
            for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
                model = make()
                start = time.perf_counter()
                model.fit(X[tr], y[tr])
                elapsed += time.perf_counter() - start
                scores.append(f1_score(y[te], model.predict(X[te])))
        print(f"| {label} | {np.mean(scores):.3f} | {elapsed:.1f} |")


if __name__ == "__main__":
    main()
