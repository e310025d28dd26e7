"""Choosing defaults without fitting the suite: the development / confirmation
protocol.

The suite's datasets of 300 to 300,000 rows are split once, at random with the
recorded seed ``SPLIT_SEED``, into a development half and a confirmation half
(``halves()``). A candidate default is adopted only if it beats the current
default on the development half on each of the three CV seeds ``CV_SEEDS``
*and* on the confirmation half, which plays no part in choosing it. Every
candidate tried is recorded in ``docs/solver-defaults.md``, adopted or not.

Every model sees the suite's preprocessing (fitted on each training fold) and
5-fold stratified CV; a score is the mean test score at the model's own
decision rule (``predict``), a fit time the mean ``fit`` time per fold. The
AnyLoss models and the tuned thresholds are trained for each metric;
``LogisticRegression()`` and its class-weighted form once, scored on both.

Results are kept in ``results/protocol_<family>.json`` (one record per
dataset, CV seed, model and metric): a run computes only what is missing, so
a new candidate costs its own fits only. ``--refresh`` recomputes a model.

    python benchmarks/protocol.py --half dev --candidates default
    python benchmarks/protocol.py --half confirm --candidates default
    python benchmarks/protocol.py --report            # tables of what is stored
"""

import argparse
import json
import os
import platform
import subprocess
import time
import warnings
from datetime import date

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, TunedThresholdClassifierCV
from sklearn.neural_network import MLPClassifier

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
from sk_anyloss._demo import Model, _fit_score, _scorer
from sk_anyloss._metrics import metric_value

import suite

HERE = os.path.dirname(os.path.abspath(__file__))
SPLIT_SEED = 20261201
CV_SEEDS = (0, 1, 2)
#: The metrics of the targets; G-mean is run on request (``--metrics``).
METRICS = ("f1", "balanced_accuracy")
ALL_METRICS = METRICS + ("gmean",)
#: Suite datasets outside the protocol's 300 to 300,000 rows.
EXCLUDED = {"flights_cancelled": "336,776 rows"}
#: The MLP family runs on the datasets of at most this many rows (the tuned
#: threshold's six MLPClassifier fits per fold are too slow above).
MLP_MAX_ROWS = 10_000


def protocol_keys():
    return [k for k in suite.DATASETS if k not in EXCLUDED]


def halves(seed=SPLIT_SEED):
    """``{"dev": [...], "confirm": [...]}``: the protocol's datasets split at
    random with ``seed`` (each half sorted; dev gets the smaller half)."""
    keys = sorted(protocol_keys())
    order = np.random.default_rng(seed).permutation(len(keys))
    half = len(keys) // 2
    return {
        "dev": sorted(keys[i] for i in order[:half]),
        "confirm": sorted(keys[i] for i in order[half:]),
    }


# --- models -------------------------------------------------------------------
# A model is (make(metric) -> estimator, per_metric, balanced_weights).


def _tuned(make):
    return lambda m: TunedThresholdClassifierCV(
        make(), scoring=_scorer(m), random_state=0
    )


BASELINES = {
    "linear": {
        "LR": (lambda m: LogisticRegression(), False, False),
        "LR balanced": (
            lambda m: LogisticRegression(class_weight="balanced"),
            False,
            False,
        ),
        "LR tuned threshold": (_tuned(LogisticRegression), True, False),
    },
    "mlp": {
        "MLP": (lambda m: MLPClassifier(random_state=0), False, False),
        "MLP balanced": (lambda m: MLPClassifier(random_state=0), False, True),
        "MLP tuned threshold": (
            _tuned(lambda: MLPClassifier(random_state=0)),
            True,
            False,
        ),
    },
}

#: The peers of the targets: the better of the two, per metric and seed.
PEERS = {
    "linear": ("LR tuned threshold", "LR balanced"),
    "mlp": ("MLP tuned threshold", "MLP balanced"),
}


def best_threshold(y, scores, metric):
    """The threshold on ``scores`` that maximises the hard ``metric`` of
    ``scores >= threshold`` on ``(y, scores)`` (midway between two distinct
    scores; ties broken towards fewer positive predictions)."""
    order = np.argsort(-scores, kind="stable")
    s, ys = scores[order], y[order]
    n, pos = len(y), ys.sum()
    # Cut after k rows, k = 0..n, only where the score changes.
    k = np.concatenate([[0], np.flatnonzero(s[1:] != s[:-1]) + 1, [n]])
    tp = np.concatenate([[0], np.cumsum(ys)])[k]
    fp = k - tp
    fn, tn = pos - tp, n - pos - fp
    value = [metric_value(metric, *cm) for cm in zip(tn, fp, fn, tp)]
    best = k[int(np.argmax(value))]
    if best == 0:
        return s[0] + 1.0
    if best == n:
        return s[-1] - 1.0
    return (s[best - 1] + s[best]) / 2


class RefinedIntercept(ClassifierMixin, BaseEstimator):
    """A candidate: the AnyLoss model, then its intercept moved to the
    threshold that maximises the hard metric on the training data."""

    def __init__(self, metric="f1", estimator=None):
        self.metric = metric
        self.estimator = estimator

    def fit(self, X, y):
        self.model_ = clone(self.estimator).set_params(metric=self.metric)
        self.model_.fit(X, y)
        self.threshold_ = best_threshold(
            y, self.model_.decision_function(X), self.metric
        )
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        above = self.model_.decision_function(X) >= self.threshold_
        return self.classes_[above.astype(int)]


class AveragedWeights(ClassifierMixin, BaseEstimator):
    """A candidate: the AnyLoss model fitted on ``n_fits`` stratified
    subsamples of ``fraction`` of the rows; its weights and intercept are the
    means of theirs (one linear model)."""

    def __init__(self, metric="f1", estimator=None, n_fits=5, fraction=0.8):
        self.metric = metric
        self.estimator = estimator
        self.n_fits = n_fits
        self.fraction = fraction

    def fit(self, X, y):
        split = StratifiedShuffleSplit(
            self.n_fits, train_size=self.fraction, random_state=0
        )
        coefs, intercepts = [], []
        for part, _ in split.split(X, y):
            m = clone(self.estimator).set_params(metric=self.metric)
            m.fit(X[part], y[part])
            coefs.append(m.coef_)
            intercepts.append(m.intercept_)
        self.coef_ = np.mean(coefs, axis=0)
        self.intercept_ = np.mean(intercepts, axis=0)
        self.classes_ = m.classes_
        return self

    def predict(self, X):
        scores = np.asarray(X @ self.coef_.T).ravel() + self.intercept_[0]
        return self.classes_[(scores >= 0).astype(int)]


def _anyloss(**params):
    return (lambda m: AnyLossClassifier(m, **params), True, False)


def _anyloss_mlp(**params):
    return (
        lambda m: AnyLossMLPClassifier(m, **{"random_state": 0, **params}),
        True,
        False,
    )


#: Candidates: a label, and the model.  "default" is the current default;
#: "amplifier=20" the default before the protocol (for every metric).
CANDIDATES = {
    "linear": {
        "default": _anyloss(),
        "amplifier=20": _anyloss(amplifier=20.0),
        "amplifier=5": _anyloss(amplifier=5.0),
        "amplifier=7": _anyloss(amplifier=7.0),
        "amplifier=10": _anyloss(amplifier=10.0),
        "amplifier=14": _anyloss(amplifier=14.0),
        "amplifier=10, alpha=1e-3": _anyloss(amplifier=10.0, alpha=1e-3),
        "amplifier=40": _anyloss(amplifier=40.0),
        "alpha=1e-4": _anyloss(alpha=1e-4),
        "alpha=1e-3": _anyloss(alpha=1e-3),
        "alpha=1e-2": _anyloss(alpha=1e-2),
        "warmup_iter=100": _anyloss(warmup_iter=100),
        "learning_rate_init=0.01": _anyloss(learning_rate_init=0.01),
        "tol=1e-2": _anyloss(tol=1e-2),
        "refined intercept": (
            lambda m: RefinedIntercept(m, AnyLossClassifier()),
            True,
            False,
        ),
        "averaged weights of 5 fits on 80 %": (
            lambda m: AveragedWeights(m, AnyLossClassifier()),
            True,
            False,
        ),
    },
    "mlp": {
        "default": _anyloss_mlp(),
    },
}


# --- runs -----------------------------------------------------------------------


def _store_path(family):
    return os.path.join(HERE, "results", f"protocol_{family}.json")


def load_store(family):
    path = _store_path(family)
    if not os.path.exists(path):
        return {"runs": [], "records": {}}
    with open(path) as f:
        return json.load(f)


def save_store(family, store):
    os.makedirs(os.path.dirname(_store_path(family)), exist_ok=True)
    with open(_store_path(family), "w") as f:
        json.dump(store, f, indent=0, sort_keys=True)


def record_key(dataset, seed, model, metric):
    return f"{dataset}|{seed}|{model}|{metric}"


def _commit():
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            cwd=HERE,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fit_scores(spec, metric, folds):
    """Mean test scores on ``ALL_METRICS`` and mean fit seconds of one model
    (the main job's fold loop)."""
    make, per_metric, balanced = spec
    model = Model("", make, per_metric, balanced)
    return _fit_score(model, metric, folds, ALL_METRICS)


def run(family, keys, models, seeds=CV_SEEDS, refresh=(), log=print, metrics=METRICS):
    """Compute and store every missing record of ``models`` (labels of
    ``BASELINES`` or ``CANDIDATES``) on ``keys`` over ``seeds`` and
    ``metrics``."""
    specs = {**BASELINES[family], **CANDIDATES[family]}
    store = load_store(family)
    commit = _commit()
    records = store["records"]
    store["runs"].append(
        dict(
            date=str(date.today()),
            machine=f"{platform.machine()}, {os.cpu_count()} logical CPUs",
            commit=commit,
            models=list(models),
        )
    )
    for key in keys:
        data = None
        for seed in seeds:
            # A metric-free model is fitted once and scored on every metric.
            todo = [
                (label, metric)
                for label in models
                for metric in (metrics if specs[label][1] else metrics[:1])
                if label in refresh
                or any(
                    record_key(key, seed, label, m) not in records
                    for m in ((metric,) if specs[label][1] else ALL_METRICS)
                )
            ]
            if not todo:
                continue
            if data is None:
                data = suite.load(key)
            X, y = data
            folds = list(
                suite.prepared_folds(
                    X, y, suite.cv_folds(X, y, seed=seed), suite.preprocessing
                )
            )
            start = time.perf_counter()
            for label, metric in todo:
                spec = specs[label]
                scores, seconds = _fit_scores(spec, metric, folds)
                for m in ALL_METRICS if not spec[1] else (metric,):
                    records[record_key(key, seed, label, m)] = dict(
                        score=scores[m], fit_s=seconds, commit=commit
                    )
            save_store(family, store)
            log(
                f"{key} seed {seed}: {len(todo)} fits of 5 folds, "
                f"{time.perf_counter() - start:.1f} s"
            )
    return store


# --- report ---------------------------------------------------------------------


def _mean(records, keys, seed, label, metric, field="score"):
    values = [records.get(record_key(k, seed, label, metric)) for k in keys]
    if any(v is None for v in values):
        return None
    return float(np.mean([v[field] for v in values]))


def margins(records, family, keys, label, metric, seeds=CV_SEEDS):
    """Per seed: (candidate's mean score, its margin over the better peer,
    its mean fit time over the tuned threshold's), or None where missing."""
    out = []
    for seed in seeds:
        ours = _mean(records, keys, seed, label, metric)
        peers = [_mean(records, keys, seed, p, metric) for p in PEERS[family]]
        if ours is None or None in peers:
            out.append(None)
            continue
        tuned_s = _mean(records, keys, seed, PEERS[family][0], metric, "fit_s")
        ours_s = _mean(records, keys, seed, label, metric, "fit_s")
        out.append((ours, ours - max(peers), ours_s / tuned_s))
    return out


def report(family, half_keys, labels, metrics=METRICS):
    """Markdown: per half and metric, every model's mean per CV seed; for
    the candidates the margin over the better peer and the time ratio."""
    records = load_store(family)["records"]
    lines = []
    peers = list(BASELINES[family])
    for half, keys in half_keys.items():
        for metric in metrics:
            lines += [
                "",
                f"#### {family}, {metric}, {half} half ({len(keys)} datasets)",
                "",
            ]
            head = "| model | " + " | ".join(f"seed {s}" for s in CV_SEEDS)
            lines.append(
                head + " | mean | margin over the better peer | "
                "fit time / tuned threshold |"
            )
            lines.append("|---" * (len(CV_SEEDS) + 4) + "|")
            for label in peers + list(labels):
                means = [_mean(records, keys, s, label, metric) for s in CV_SEEDS]
                if all(m is None for m in means):
                    continue
                cells = ["" if m is None else f"{m:.4f}" for m in means]
                got = [m for m in means if m is not None]
                extra = ["", ""]
                if label not in peers:
                    ms = [x for x in margins(records, family, keys, label, metric) if x]
                    if ms:
                        extra = [
                            " / ".join(f"{x[1]:+.4f}" for x in ms),
                            f"1/{1 / np.mean([x[2] for x in ms]):.1f}",
                        ]
                lines.append(
                    f"| {label} | "
                    + " | ".join(cells)
                    + f" | {np.mean(got):.4f} | "
                    + " | ".join(extra)
                    + " |"
                )
    return "\n".join(lines)


def _warm_up_sparse(metrics):
    """Compile (or load) the sparse kernels too: the text dataset's first
    fit would otherwise count their compilation."""
    X, y = load_digits(return_X_y=True)
    X, y = sparse.csr_matrix(X), (y == 8).astype(int)
    for metric in metrics:
        AnyLossClassifier(metric, max_iter=2).fit(X, y)


def dataset_table():
    """Markdown: every suite dataset, its size, positive rate, source and
    protocol half."""
    parts = halves()
    half = {k: h for h, keys in parts.items() for k in keys}
    lines = [
        "| dataset | rows | columns | positive % | half | source |",
        "|---|---|---|---|---|---|",
    ]
    for key, dataset in suite.DATASETS.items():
        X, y = dataset.load()
        d = X.shape[1] if X.ndim == 2 else "text"
        lines.append(
            f"| {key} | {len(y):,} | {d} | {100 * np.mean(y):.2f} | "
            f"{half.get(key, 'excluded: ' + EXCLUDED.get(key, ''))} | "
            f"{dataset.source} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=list(BASELINES), default="linear")
    parser.add_argument("--half", choices=["dev", "confirm", "both"], default="dev")
    parser.add_argument("--candidates", nargs="*", default=["default"])
    parser.add_argument(
        "--metrics", nargs="+", choices=ALL_METRICS, default=list(METRICS)
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=list(CV_SEEDS))
    parser.add_argument("--refresh", nargs="*", default=[])
    parser.add_argument("--report", action="store_true", help="tables only")
    parser.add_argument(
        "--datasets", action="store_true", help="the table of datasets only"
    )
    args = parser.parse_args(argv)

    if args.datasets:
        print(dataset_table())
        return
    parts = halves()
    if args.half != "both":
        parts = {args.half: parts[args.half]}
    if args.family == "mlp":
        sizes = {k: len(suite.load(k)[1]) for p in parts.values() for k in p}
        parts = {
            h: [k for k in p if sizes[k] <= MLP_MAX_ROWS] for h, p in parts.items()
        }
    unknown = set(args.candidates) - set(CANDIDATES[args.family])
    if unknown:
        parser.error(f"unknown candidates {sorted(unknown)}")
    if not args.report:
        # The peers' own warnings (LogisticRegression's lbfgs stopping at its
        # default max_iter on a few datasets) are what a user would get.
        warnings.simplefilter("ignore", ConvergenceWarning)
        suite.warm_up(args.metrics)
        _warm_up_sparse(args.metrics)
        models = list(BASELINES[args.family]) + list(args.candidates)
        start = time.perf_counter()
        for keys in parts.values():
            run(
                args.family,
                keys,
                models,
                tuple(args.seeds),
                set(args.refresh),
                metrics=tuple(args.metrics),
            )
        print(f"{(time.perf_counter() - start) / 60:.1f} min")
    print(report(args.family, parts, args.candidates, args.metrics))


if __name__ == "__main__":
    main()
