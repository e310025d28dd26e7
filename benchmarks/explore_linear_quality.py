"""Which change to the linear model's defaults wins on the suite as a whole?

Candidates are scored on every suite dataset of at most ``--max-rows`` rows
(5-fold stratified CV, seed 0, the suite's preprocessing), for each metric;
the table gives the mean over datasets and the mean fit time per fold, next
to the tuned-threshold and class-weighted logistic regressions.

    python benchmarks/explore_linear_quality.py --metric f1

Written for the code of commit 896d53a, before the estimators and the kernels
were restructured (it overrides the starting point of each binary problem,
a hook that is gone, and uses the NumPy reference that moved to the tests):
to reproduce its table, run it from that commit.
"""

import argparse
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TunedThresholdClassifierCV

from sk_anyloss import AnyLossClassifier, _suite
from sk_anyloss._linear import lbfgs_warm_up
from sk_anyloss._reference import balanced_log_loss_and_gradient


class _LogisticStart(AnyLossClassifier):
    """Starts from a logistic regression's coefficients (the experiment)."""

    def __init__(self, metric="f1", *, start=None, **params):
        super().__init__(metric, **params)
        self.start = start

    def _initial_theta(self, X, y01, sw):
        lr = LogisticRegression(**self.start).fit(X, y01)
        return np.r_[lr.coef_.ravel(), lr.intercept_]


class _AdamStart(AnyLossClassifier):
    """Starts from ``steps`` Adam steps on the class-balanced log-loss
    (with the L2 penalty ``1 / (C n)`` when ``penalty_c`` is given)."""

    def __init__(
        self, metric="f1", *, steps=100, step_size=0.1, penalty_c=None, **params
    ):
        super().__init__(metric, **params)
        self.steps = steps
        self.step_size = step_size
        self.penalty_c = penalty_c

    def _initial_theta(self, X, y01, sw):
        n, d = X.shape
        c = np.where(y01 == 1, 0.5 / y01.sum(), 0.5 / (n - y01.sum()))
        alpha = 0.0 if self.penalty_c is None else 1.0 / (self.penalty_c * n)
        theta, m, v = np.zeros(d + 1), np.zeros(d + 1), np.zeros(d + 1)
        for t in range(1, self.steps + 1):
            p = 1.0 / (1.0 + np.exp(-(X @ theta[:d] + theta[d])))
            r = c * (p - y01)
            g = np.r_[X.T @ r + alpha * theta[:d], r.sum()]
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            mh, vh = m / (1 - 0.9**t), v / (1 - 0.999**t)
            theta -= self.step_size * mh / (np.sqrt(vh) + 1e-8)
        return theta


class _LBFGSStart(AnyLossClassifier):
    """Starts from at most ``max_iter`` L-BFGS iterations on the class-balanced
    log-loss with the L2 penalty ``penalty`` (NumPy loss, SciPy optimiser)."""

    def __init__(self, metric="f1", *, max_iter=100, penalty=0.0, **params):
        super().__init__(metric, **params)
        self.max_iter = max_iter
        self.penalty = penalty

    def _initial_theta(self, X, y01, sw):
        theta, _ = lbfgs_warm_up(
            lambda t: balanced_log_loss_and_gradient(X, y01, None, t, self.penalty),
            np.zeros(X.shape[1] + 1),
            self.max_iter,
        )
        return theta


def candidates(metric):
    def paper(**params):
        # The paper's start (zero weights, L = 73), one setting changed.
        params = {"amplifier": 73.0, "warmup_iter": 0, **params}
        return lambda: AnyLossClassifier(metric, **params)

    def start_at(start, **params):
        params = {"amplifier": 73.0, "warmup_iter": 0, **params}
        return lambda: _LogisticStart(metric, start=start, **params)

    def adam_start(steps, step_size, amplifier, penalty_c=None):
        return lambda: _AdamStart(
            metric,
            steps=steps,
            step_size=step_size,
            penalty_c=penalty_c,
            amplifier=amplifier,
            warmup_iter=0,
        )

    def lbfgs_start(max_iter, penalty):
        return lambda: _LBFGSStart(
            metric, max_iter=max_iter, penalty=penalty, warmup_iter=0
        )

    def ours(**params):
        # The L-BFGS warm-up's first settings (step 0.01, tol 1e-4, 30
        # iterations), one or more changed; "defaults" is the estimator's own.
        params = {
            "warmup_iter": 30,
            "learning_rate_init": 0.01,
            "tol": 1e-4,
            **params,
        }
        return lambda: AnyLossClassifier(metric, **params)

    balanced = {"class_weight": "balanced"}
    return {
        "LR balanced": lambda: LogisticRegression(class_weight="balanced"),
        "LR tuned threshold": lambda: TunedThresholdClassifierCV(
            LogisticRegression(), scoring=_suite._scorer(metric), random_state=0
        ),
        # Without a warm-up (the defaults before the warm-up was added).
        "paper start (L=73, alpha=0)": paper(),
        "alpha=1e-3": paper(alpha=1e-3),
        "alpha=1e-2": paper(alpha=1e-2),
        "alpha=1e-1": paper(alpha=1e-1),
        "L=10": paper(amplifier=10.0),
        "L=20": paper(amplifier=20.0),
        "L=30": paper(amplifier=30.0),
        "L=20, alpha=1e-2": paper(amplifier=20.0, alpha=1e-2),
        "lr=0.001": paper(learning_rate_init=0.001),
        "lr=0.1": paper(learning_rate_init=0.1),
        "tol=None (1000 iterations)": paper(tol=None),
        "n_iter_no_change=50": paper(n_iter_no_change=50),
        # Starting points, prototyped outside the kernels.
        "start at LR": start_at({}),
        "start at LR balanced": start_at(balanced),
        "start at LR balanced, L=20": start_at(balanced, amplifier=20.0),
        "start at LR balanced (10 lbfgs steps), L=20": start_at(
            {**balanced, "max_iter": 10}, amplifier=20.0
        ),
        "start at LR balanced, L=10": start_at(balanced, amplifier=10.0),
        "start at LR balanced, L=20, alpha=1e-2": start_at(
            balanced, amplifier=20.0, alpha=1e-2
        ),
        "Adam start 100 x 0.1, L=20": adam_start(100, 0.1, 20.0),
        "Adam start 50 x 0.1, L=20": adam_start(50, 0.1, 20.0),
        "Adam start 200 x 0.05, L=20": adam_start(200, 0.05, 20.0),
        "Adam start 100 x 0.1, L=30": adam_start(100, 0.1, 30.0),
        "Adam start 50 x 0.1 (penalty 1/n), L=20": adam_start(50, 0.1, 20.0, 1),
        "Adam start 200 x 0.1 (penalty 1/n), L=20": adam_start(200, 0.1, 20.0, 1),
        "L-BFGS start 100 (no penalty), L=20": lbfgs_start(100, 0.0),
        # The compiled warm-up: L-BFGS on the balanced log-loss, penalty 1/n.
        "L-BFGS warm-up 30, L=20": ours(),
        "L-BFGS warm-up 15, L=20": ours(warmup_iter=15),
        "L-BFGS warm-up 100, L=20": ours(warmup_iter=100),
        "L-BFGS warm-up 30, L=25": ours(amplifier=25.0),
        "L-BFGS warm-up 30, L=15": ours(amplifier=15.0),
        # Fewer metric iterations (the fit-time target).
        "L-BFGS warm-up 30, lr=0.03": ours(learning_rate_init=0.03),
        "L-BFGS warm-up 30, lr=0.1": ours(learning_rate_init=0.1),
        "L-BFGS warm-up 30, n_iter_no_change=5": ours(n_iter_no_change=5),
        "L-BFGS warm-up 30, tol=1e-3": ours(tol=1e-3),
        "L-BFGS warm-up 30, lr=0.03, tol=1e-3": ours(learning_rate_init=0.03, tol=1e-3),
        "L-BFGS warm-up 15, lr=0.03, tol=1e-3": ours(
            warmup_iter=15, learning_rate_init=0.03, tol=1e-3
        ),
        "L-BFGS warm-up 30, lr=0.03, tol=1e-3, n_iter_no_change=5": ours(
            learning_rate_init=0.03, tol=1e-3, n_iter_no_change=5
        ),
        "defaults": lambda: AnyLossClassifier(metric),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="f1")
    parser.add_argument("--max-rows", type=int, default=20_000)
    parser.add_argument("--only", nargs="*", help="candidate labels to run")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the CV split (the suite uses 0)"
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)

    data = _suite.prepared_datasets(args.max_rows, args.seed)
    AnyLossClassifier(max_iter=2).fit(*data[0][1][0][:2])  # compile / load

    names = [k for k, _ in data]
    print(f"metric = {args.metric}; CV seed {args.seed}; datasets: {', '.join(names)}")
    print()
    print("| candidate | " + " | ".join(names) + " | mean | fit s / fold |")
    print("|---" * (len(names) + 3) + "|")
    for label, make in candidates(args.metric).items():
        if args.only and label not in args.only:
            continue
        means, fit_s = _suite.explore_scores(make, data, args.metric)
        row = " | ".join(f"{s:.3f}" for s in means)
        print(
            f"| {label} | {row} | {np.mean(means):.4f} | {np.mean(fit_s):.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
