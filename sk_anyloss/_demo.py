"""The main job's comparison: AnyLoss against log-loss baselines.

What ``python -m sk_anyloss`` runs, and what the benchmark suite
(``benchmarks/suite.py``) runs on each of its datasets: stratified
cross-validation of the AnyLoss estimators, trained for a metric, against
log-loss models, their class-weighted versions and log-loss models whose
decision threshold is tuned for the metric, every model after the same
preprocessing and scored at its own decision rule (``predict``). The fit time
is the model's own ``fit`` on the preprocessed training folds.

The demonstration's data, :func:`demo_data`, install with scikit-learn: the
handwritten digits, one digit against the rest (10 % positives).
"""

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer
from sklearn.model_selection import StratifiedKFold, TunedThresholdClassifierCV
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils import _safe_indexing
from sklearn.utils.class_weight import compute_sample_weight

from ._linear import AnyLossClassifier
from ._metrics import score_labels
from ._mlp import AnyLossMLPClassifier

#: Metrics reported for every model (each at the model's decision rule).
REPORTED_METRICS = ("f1", "balanced_accuracy", "gmean", "mcc")

#: How the main job names the metrics.
METRIC_LABELS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "f1": "F1",
    "fbeta": "F-beta",
    "gmean": "G-mean",
    "mcc": "MCC",
    "jaccard": "Jaccard",
    "cohen_kappa": "Cohen's kappa",
    "fowlkes_mallows": "Fowlkes-Mallows",
}

#: Every abbreviation the main job prints, defined.
GLOSSARY = {
    "LR": "LogisticRegression(), log-loss, decision at probability 0.5",
    "LR balanced": 'LogisticRegression(class_weight="balanced")',
    "LR tuned threshold": "TunedThresholdClassifierCV(LogisticRegression(), "
    "scoring=<the metric>): the decision threshold chosen by internal CV",
    "AnyLoss": "AnyLossClassifier(metric=<the metric>), defaults",
    "MLP": "MLPClassifier(), log-loss",
    "MLP balanced": "MLPClassifier() fitted with balanced sample weights",
    "MLP tuned threshold": "TunedThresholdClassifierCV(MLPClassifier(), "
    "scoring=<the metric>)",
    "AnyLoss MLP": "AnyLossMLPClassifier(metric=<the metric>), defaults",
    "F1": "harmonic mean of precision and recall of the positive class",
    "balanced accuracy": "mean of the recalls of the two classes",
    "G-mean": "geometric mean of the recalls of the two classes",
    "MCC": "Matthews correlation coefficient, from -1 to 1",
}

DEMO_DIGIT = 8


def demo_data():
    """``(X, y)``: scikit-learn's handwritten digits (1,797 images of 8 x 8
    pixels), ``y = 1`` for the digit 8 and 0 for the nine others.

    The 8 is the digit a logistic regression tells apart from the others
    worst (lowest cross-validated F1), so the task is not trivial.
    """
    X, digit = load_digits(return_X_y=True)
    return X, (digit == DEMO_DIGIT).astype(int)


def _scorer(metric):
    return make_scorer(score_labels, metric=metric)


@dataclass(frozen=True)
class Model:
    """A model of the comparison; ``make(metric)`` builds a fresh estimator.

    ``per_metric`` is False for models that do not depend on the metric
    (fitted once, scored on every metric); ``balanced_weights`` fits with
    ``compute_sample_weight("balanced", y)``.
    """

    label: str
    make: callable = field(repr=False)
    per_metric: bool = True
    balanced_weights: bool = False
    anyloss: bool = False


def linear_models():
    return [
        Model("LR", lambda m: LogisticRegression(), per_metric=False),
        Model(
            "LR balanced",
            lambda m: LogisticRegression(class_weight="balanced"),
            per_metric=False,
        ),
        Model(
            "LR tuned threshold",
            lambda m: TunedThresholdClassifierCV(
                LogisticRegression(), scoring=_scorer(m), random_state=0
            ),
        ),
        Model("AnyLoss", lambda m: AnyLossClassifier(m), anyloss=True),
    ]


def mlp_models():
    return [
        Model("MLP", lambda m: MLPClassifier(random_state=0), per_metric=False),
        Model(
            "MLP balanced",
            lambda m: MLPClassifier(random_state=0),
            per_metric=False,
            balanced_weights=True,
        ),
        Model(
            "MLP tuned threshold",
            lambda m: TunedThresholdClassifierCV(
                MLPClassifier(random_state=0), scoring=_scorer(m), random_state=0
            ),
        ),
        Model(
            "AnyLoss MLP",
            lambda m: AnyLossMLPClassifier(m, random_state=0),
            anyloss=True,
        ),
    ]


MODEL_FAMILIES = {"linear": linear_models, "mlp": mlp_models}
FAMILY_TITLES = {"linear": "Linear models", "mlp": "Multi-layer perceptrons"}


def cv_folds(X, y, n_folds=5, seed=0):
    """``(train, test)`` index pairs of a stratified, shuffled CV."""
    return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(X, y))


def prepared_folds(X, y, folds, preprocessing=StandardScaler):
    """``(X_train, y_train, X_test, y_test)`` for each ``(train, test)`` pair,
    with ``preprocessing(X)`` (a transformer) fitted on the training part.
    ``preprocessing`` is a callable of ``X`` or a transformer class."""
    for train, test in folds:
        prep = _make(preprocessing, X).fit(_safe_indexing(X, train))
        X_train = prep.transform(_safe_indexing(X, train))
        X_test = prep.transform(_safe_indexing(X, test))
        yield X_train, y[train], X_test, y[test]


def _make(preprocessing, X):
    return preprocessing() if isinstance(preprocessing, type) else preprocessing(X)


def _fit_score(model, metric, folds, reported):
    scores = {m: [] for m in reported}
    fit_times = []
    for X_train, y_train, X_test, y_test in folds:
        estimator = model.make(metric)
        fit_params = {}
        if model.balanced_weights:
            fit_params["sample_weight"] = compute_sample_weight("balanced", y_train)
        start = time.perf_counter()
        estimator.fit(X_train, y_train, **fit_params)
        fit_times.append(time.perf_counter() - start)
        predicted = estimator.predict(X_test)
        for m in reported:
            scores[m].append(score_labels(y_test, predicted, metric=m))
    return {m: float(np.mean(s)) for m, s in scores.items()}, float(np.mean(fit_times))


def compare(
    X, y, metrics, families=("linear",), n_folds=5, seed=0, preprocessing=StandardScaler
):
    """Cross-validate every model of ``families`` on ``(X, y)``.

    Returns a list of records (dicts): family, model, whether it is an AnyLoss
    model, the metric it was trained or tuned for (None for metric-free
    models), its mean test score on each of ``REPORTED_METRICS`` and
    ``metrics``, and its mean fit time in seconds.
    """
    reported = tuple(dict.fromkeys(REPORTED_METRICS + tuple(metrics)))
    # The preprocessing is fitted outside the timed region: the fit time is
    # the model's own.
    folds = list(prepared_folds(X, y, cv_folds(X, y, n_folds, seed), preprocessing))
    records = []
    for family in families:
        for model in MODEL_FAMILIES[family]():
            for metric in metrics if model.per_metric else [None]:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    scores, fit_s = _fit_score(model, metric, folds, reported)
                records.append(
                    dict(
                        family=family,
                        model=model.label,
                        anyloss=model.anyloss,
                        trained_for=metric,
                        scores=scores,
                        fit_s=fit_s,
                    )
                )
    return records


def score_of(records, family, model, metric):
    """``(score on metric, fit seconds)`` of ``model`` trained for ``metric``
    (or metric-free), or None."""
    for r in records:
        if (
            r["family"] == family
            and r["model"] == model
            and r["trained_for"] in (None, metric)
        ):
            return r["scores"][metric], r["fit_s"]
    return None


def warm_up(metrics=("f1",)):
    """Compile the kernels and each of ``metrics`` (or load them from Numba's
    cache) before timing: a metric's first fit in a new environment compiles
    it, which would otherwise count in the fit times."""
    X, y = demo_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for metric in metrics:
            AnyLossClassifier(metric, max_iter=2).fit(X, y)
            AnyLossMLPClassifier(metric, max_iter=2).fit(X, y)


def summary_table(records, metrics):
    """Markdown table: a row per model, its mean test score on each metric
    (trained or tuned for that metric) and its mean fit time per fold."""
    header = " | ".join(METRIC_LABELS[m] for m in metrics)
    lines = [f"| model | {header} | fit time per fold (ms) |"]
    lines.append("|---" * (len(metrics) + 2) + "|")
    for family in dict.fromkeys(r["family"] for r in records):
        for model in MODEL_FAMILIES[family]():
            got = [score_of(records, family, model.label, m) for m in metrics]
            if any(g is None for g in got):
                continue
            label = f"**{model.label}**" if model.anyloss else model.label
            cells = " | ".join(f"{score:.3f}" for score, _ in got)
            fit_ms = 1e3 * np.mean([t for _, t in got])
            lines.append(f"| {label} | {cells} | {fit_ms:.1f} |")
    return "\n".join(lines)


def plot(records, metrics, path, title=None):
    """Grouped bars, one row of panels per model family: each metric's
    models side by side (AnyLoss highlighted), and the models' fit times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(r["family"] for r in records))
    fig, axes = plt.subplots(
        len(families),
        2,
        figsize=(12, 4.2 * len(families)),
        gridspec_kw={"width_ratios": [3, 1.3]},
        squeeze=False,
    )
    greys = ["#c8c8c8", "#9a9a9a", "#5f5f5f"]
    for row, family in enumerate(families):
        models = MODEL_FAMILIES[family]()
        scores_ax, time_ax = axes[row]
        width = 0.8 / len(models)
        colours = []
        for k, model in enumerate(models):
            colour = "#d95f02" if model.anyloss else greys[k % len(greys)]
            colours.append(colour)
            got = [score_of(records, family, model.label, m) for m in metrics]
            x = np.arange(len(metrics)) + (k - (len(models) - 1) / 2) * width
            values = [g[0] for g in got]
            bars = scores_ax.bar(
                x,
                values,
                width,
                color=colour,
                label=model.label,
                edgecolor="black" if model.anyloss else "none",
            )
            scores_ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
        low = min(
            score_of(records, family, m.label, metric)[0]
            for m in models
            for metric in metrics
        )
        scores_ax.set_ylim(max(0.0, low - 0.1), 1.02)
        scores_ax.set_xticks(np.arange(len(metrics)))
        scores_ax.set_xticklabels([METRIC_LABELS[m] for m in metrics])
        scores_ax.set_ylabel("mean test score (cross-validation)")
        scores_ax.set_title(
            f"{FAMILY_TITLES[family]}: each trained or tuned for the metric below"
        )
        scores_ax.legend(
            fontsize=8,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.09),
            ncol=len(models),
            frameon=False,
        )
        fit_ms = [
            1e3 * np.mean([score_of(records, family, m.label, x)[1] for x in metrics])
            for m in models
        ]
        y = np.arange(len(models))
        bars = time_ax.barh(y, fit_ms, color=colours, edgecolor="black", linewidth=0.3)
        time_ax.bar_label(bars, fmt="%.0f ms", fontsize=7, padding=2)
        time_ax.set_yticks(y)
        time_ax.set_yticklabels([m.label for m in models], fontsize=8)
        time_ax.invert_yaxis()
        time_ax.set_xscale("log")
        time_ax.set_xlim(min(fit_ms) / 2, max(fit_ms) * 8)
        time_ax.set_xlabel("mean fit time per fold (ms, log scale)")
        time_ax.set_title("fit time")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
