"""Which AnyLossMLPClassifier settings win on the suite, over several CV splits?

Every candidate is scored on the benchmark suite's datasets of at most
``--max-rows`` rows, for each CV split of ``--seeds`` (5-fold stratified, the
suite's preprocessing), test score of the metric at the model's own decision
rule. One line per candidate and split (mean over datasets, fit time of all
folds), then the mean over splits: MLP defaults move only on a gain that
holds across splits, since one split's spread between datasets is as large as
the differences sought (``docs/mlp-notes.md``).

    python benchmarks/explore_mlp_settings.py --metric f1 --seeds 0 1 2
"""

import argparse
import warnings
from functools import partial

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sk_anyloss import AnyLossMLPClassifier

import suite
from explore_mlp_defaults import FORMER

# Every candidate of the first round changes one setting of the defaults
# before this comparison (FORMER). ``alpha`` is scaled per batch as in
# MLPClassifier (``alpha / (2 * batch size)``), so the larger batches are also
# tried with ``alpha`` scaled up to keep the penalty's strength per epoch.

# The second defaults (amplifier 10, step 0.003, the metric loss alone), the
# starting point of the third round.
SECOND = {"log_loss_weight": 0.0}

CANDIDATES = {
    "amplifier 20, step 0.01 (former defaults)": FORMER,
    "batch 500": {**FORMER, "batch_size": 500},
    "batch 500, alpha 2.5": {**FORMER, "batch_size": 500, "alpha": 2.5},
    "batch 1000, alpha 5": {**FORMER, "batch_size": 1000, "alpha": 5.0},
    "amplifier 10": {**FORMER, "amplifier": 10.0},
    "amplifier 40": {**FORMER, "amplifier": 40.0},
    "alpha 0.3": {**FORMER, "alpha": 0.3},
    "alpha 3": {**FORMER, "alpha": 3.0},
    "step 0.003": {**FORMER, "learning_rate_init": 0.003},
    "tol 1e-3": {**FORMER, "tol": 1e-3},
    "n_iter_no_change 20": {**FORMER, "n_iter_no_change": 20},
    # Second round: the two leaders of the first, combined and extended.
    "amplifier 5": {**FORMER, "amplifier": 5.0},
    "step 0.001": {**FORMER, "learning_rate_init": 0.001},
    "amplifier 10, alpha 3": {**FORMER, "amplifier": 10.0, "alpha": 3.0},
    "amplifier 10, step 0.003, alpha 3": {**SECOND, "alpha": 3.0},
    # The winner of the first two rounds.
    "amplifier 10, step 0.003 (second defaults)": SECOND,
    # Third round: a class-balanced log-loss added to the metric loss, with
    # weights around the one the prototypes chose.
    "log-loss weight 0.1": {"log_loss_weight": 0.1},
    "log-loss weight 0.25": {"log_loss_weight": 0.25},
    "log-loss weight 0.5": {"log_loss_weight": 0.5},
    "log-loss weight 1": {"log_loss_weight": 1.0},
    "log-loss weight 2": {"log_loss_weight": 2.0},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="f1")
    parser.add_argument("--beta", type=float, default=1.0, help="of metric fbeta")
    parser.add_argument(
        "--per-dataset",
        action="store_true",
        help="also print each dataset's mean over splits",
    )
    parser.add_argument("--max-rows", type=int, default=7_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", help="candidate labels to run")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    # A batch larger than a small training fold is cut to the fold (warned).
    warnings.filterwarnings("ignore", "Got batch_size", UserWarning)
    labels = [k for k in CANDIDATES if not args.only or k in args.only]
    means = {label: [] for label in labels}
    per_dataset = {label: {} for label in labels}
    beta = f", beta = {args.beta}" if args.metric == "fbeta" else ""
    print(f"metric = {args.metric}{beta}; CV seeds {args.seeds}")
    print()
    print("| candidate | split | mean | fit s |")
    print("|---|---|---|---|")
    for seed in args.seeds:
        data = suite.prepared_datasets(args.max_rows, seed)
        for label in labels:
            make = partial(
                AnyLossMLPClassifier, args.metric, beta=args.beta, random_state=0
            )
            scores, fit_s = suite.explore_scores(
                partial(make, **CANDIDATES[label]), data, args.metric, args.beta
            )
            means[label].append(np.mean(scores))
            for (key, _), score in zip(data, scores):
                per_dataset[label].setdefault(key, []).append(score)
            elapsed = sum(fit_s)
            print(f"| {label} | {seed} | {means[label][-1]:.4f} | {elapsed:.0f} |")
    print()
    print("| candidate | " + " | ".join(f"split {s}" for s in args.seeds) + " | mean |")
    print("|---" * (len(args.seeds) + 2) + "|")
    for label in labels:
        row = " | ".join(f"{m:.4f}" for m in means[label])
        print(f"| {label} | {row} | {np.mean(means[label]):.4f} |")
    if args.per_dataset:
        keys = list(per_dataset[labels[0]])
        print()
        print("Mean over splits per dataset:")
        print()
        print("| candidate | " + " | ".join(keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for label in labels:
            row = " | ".join(f"{np.mean(per_dataset[label][k]):.3f}" for k in keys)
            print(f"| {label} | {row} |")


if __name__ == "__main__":
    main()
