"""Experiment: train the MLP's output layer on the metric, the rest on log-loss?

Prototypes on the benchmark suite's datasets of at most ``--max-rows`` rows
(5-fold stratified CV, seed 0, the suite's preprocessing), test score of the
metric at each model's own decision rule, mean over datasets:

* ``MLPClassifier`` fitted with balanced sample weights for ``epochs`` epochs,
  then a linear ``AnyLossClassifier`` (its defaults) trained on the last
  hidden layer's activations in place of the output layer ("head");
* the same from an ``AnyLossMLPClassifier`` (head refitted after training);
* the balanced ``MLPClassifier``'s weights continued by
  ``AnyLossMLPClassifier`` (whole network on the metric).

    python benchmarks/explore_mlp_head.py --metric f1
"""

import argparse
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import make_scorer
from sklearn.model_selection import TunedThresholdClassifierCV
from sklearn.neural_network import MLPClassifier
from sklearn.utils.class_weight import compute_sample_weight

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
from sk_anyloss._metrics import score_labels

import suite
from explore_mlp_defaults import FORMER

# The AnyLoss MLP's defaults of the time (FORMER), pinned so that the tables in
# docs/mlp-notes.md reproduce.


def _hidden(coefs, intercepts, X):
    H = X
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        H = np.maximum(H @ W + b, 0.0)  # relu, the default activation
    return H


class _Prototype:
    def __init__(self, metric, start, epochs=200, then="head"):
        self.metric, self.start, self.epochs, self.then = metric, start, epochs, then

    def fit(self, X, y):
        if self.start == "anyloss":
            net = AnyLossMLPClassifier(self.metric, random_state=0, **FORMER).fit(X, y)
        else:
            sw = (
                compute_sample_weight("balanced", y)
                if self.start == "balanced"
                else None
            )
            net = MLPClassifier(random_state=0, max_iter=self.epochs)
            net.fit(X, y, sample_weight=sw)
        if self.then == "network":
            cont = AnyLossMLPClassifier(
                self.metric, random_state=0, warm_start=True, max_iter=1, **FORMER
            ).fit(X, y)
            cont.coefs_ = [W.copy() for W in net.coefs_]
            cont.intercepts_ = [b.copy() for b in net.intercepts_]
            self.net_ = cont.set_params(max_iter=200).fit(X, y)
            self.head_ = None
        else:
            self.net_ = net
            self.head_ = AnyLossClassifier(self.metric).fit(
                _hidden(net.coefs_, net.intercepts_, X), y
            )
        return self

    def predict(self, X):
        if self.head_ is None:
            return self.net_.predict(X)
        H = _hidden(self.net_.coefs_, self.net_.intercepts_, X)
        return self.head_.predict(H)


def candidates(metric):
    return {
        "AnyLoss MLP (defaults)": lambda: AnyLossMLPClassifier(
            metric, random_state=0, **FORMER
        ),
        "MLP tuned threshold": lambda: TunedThresholdClassifierCV(
            MLPClassifier(random_state=0),
            scoring=make_scorer(score_labels, metric=metric),
            random_state=0,
        ),
        "AnyLoss MLP, head refitted": lambda: _Prototype(metric, "anyloss"),
        "balanced MLP 10 epochs + head": lambda: _Prototype(metric, "balanced", 10),
        "balanced MLP 30 epochs + head": lambda: _Prototype(metric, "balanced", 30),
        "balanced MLP 200 epochs + head": lambda: _Prototype(metric, "balanced", 200),
        "plain MLP 200 epochs + head": lambda: _Prototype(metric, "plain", 200),
        "balanced MLP 30 epochs, then AnyLoss MLP": lambda: _Prototype(
            metric, "balanced", 30, then="network"
        ),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="f1")
    parser.add_argument("--max-rows", type=int, default=7_000)
    parser.add_argument("--only", nargs="*", help="candidate labels to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the CV split")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    data = suite.prepared_datasets(args.max_rows, args.seed)
    names = [k for k, _ in data]
    print(f"metric = {args.metric}; CV seed {args.seed}; datasets: {', '.join(names)}")
    print()
    print("| candidate | " + " | ".join(names) + " | mean | fit s |")
    print("|---" * (len(names) + 3) + "|")
    for label, make in candidates(args.metric).items():
        if args.only and label not in args.only:
            continue
        means, fit_s = suite.explore_scores(make, data, args.metric)
        row = " | ".join(f"{s:.3f}" for s in means)
        elapsed = sum(fit_s)
        print(f"| {label} | {row} | {np.mean(means):.4f} | {elapsed:.0f} |", flush=True)


if __name__ == "__main__":
    main()
