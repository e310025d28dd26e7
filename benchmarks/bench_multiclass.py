"""Multiclass and multilabel quality: AnyLoss estimators against log-loss
baselines on the real datasets of ``multiclass_suite.py`` (bench extra).

Every model sees the same preprocessing (``suite.preprocessing``: impute,
one-hot encode, standardise), fitted on the training fold; scores are at each
model's own decision rule (``predict``); the fit time is the model's own
``fit`` on the preprocessed training fold.

- multiclass (``--models linear`` / ``mlp``): 5-fold
  ``StratifiedKFold(shuffle=True, random_state=0)``; macro-F1 and balanced
  accuracy of every model; datasets over ``--max-rows`` rows are first cut to
  ``--max-rows`` by a stratified subsample (seed 0);
- multilabel (``--models multilabel``): nmes1988, doctor_aus and
  ``synthetic_multilabel(0)``, 5-fold ``KFold(shuffle=True, random_state=0)``,
  macro-F1 (``f1_score(average="macro")``).

Every fold's record is appended to the CSV (``--out``) as soon as it is
measured, so an interrupted run loses nothing; ``--summary`` prints the
tables of a CSV without running anything.

    python benchmarks/bench_multiclass.py --split dev --models linear
    python benchmarks/bench_multiclass.py --summary benchmarks/results/x.csv
"""

import argparse
import csv
import os
import sys
import time
import warnings
from datetime import date

import multiclass_suite as ms
import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.utils.class_weight import compute_sample_weight

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier

import suite

HERE = os.path.dirname(os.path.abspath(__file__))
SYNTHETIC = "synthetic_multilabel"
MULTILABEL_KEYS = [*ms.MULTILABEL, SYNTHETIC]
FIELDS = [
    "family",
    "split",
    "dataset",
    "n",
    "n_used",
    "classes",
    "model",
    "fold",
    "macro_f1",
    "balanced_accuracy",
    "fit_s",
    "warnings",
    "error",
]


def _mlp_hidden():
    # The baseline MLP gets the same hidden layers as ours (both (100,) in
    # scikit-learn 1.9 and sk_anyloss 0.x; read, not assumed).
    return AnyLossMLPClassifier().get_params()["hidden_layer_sizes"]


def models(family):
    """``[(label, estimator, sample-weighted), ...]`` of a family."""
    if family == "linear":
        return [
            ("AnyLoss f1", AnyLossClassifier(metric="f1", random_state=0), False),
            (
                "AnyLoss balanced_accuracy",
                AnyLossClassifier(metric="balanced_accuracy", random_state=0),
                False,
            ),
            ("LR", LogisticRegression(max_iter=1000), False),
            (
                "LR balanced",
                LogisticRegression(max_iter=1000, class_weight="balanced"),
                False,
            ),
            (
                "OvR AnyLoss f1",
                OneVsRestClassifier(AnyLossClassifier(metric="f1", random_state=0)),
                False,
            ),
        ]
    if family == "mlp":
        hidden = _mlp_hidden()
        return [
            (
                "AnyLoss MLP f1",
                AnyLossMLPClassifier(metric="f1", random_state=0),
                False,
            ),
            (
                "AnyLoss MLP balanced_accuracy",
                AnyLossMLPClassifier(metric="balanced_accuracy", random_state=0),
                False,
            ),
            (
                "MLPClassifier",
                MLPClassifier(hidden_layer_sizes=hidden, random_state=0),
                False,
            ),
            (
                "MLPClassifier balanced weights",
                MLPClassifier(hidden_layer_sizes=hidden, random_state=0),
                True,
            ),
        ]
    if family == "multilabel":
        return [
            (
                "AnyLoss f1 macro",
                AnyLossClassifier(metric="f1", average="macro", random_state=0),
                False,
            ),
            (
                "AnyLoss MLP f1 macro",
                AnyLossMLPClassifier(metric="f1", average="macro", random_state=0),
                False,
            ),
            (
                "MultiOutput LR",
                MultiOutputClassifier(LogisticRegression(max_iter=1000)),
                False,
            ),
            (
                "MLPClassifier",
                MLPClassifier(hidden_layer_sizes=_mlp_hidden(), random_state=0),
                False,
            ),
        ]
    raise ValueError(family)


def subsample(X, y, max_rows, seed=0):
    """A stratified subsample of ``max_rows`` rows (seed ``seed``) when larger."""
    if max_rows is None or len(y) <= max_rows:
        return X, y
    index, _ = train_test_split(
        np.arange(len(y)), train_size=max_rows, stratify=y, random_state=seed
    )
    index = np.sort(index)
    return X.iloc[index].reset_index(drop=True), y[index]


def warm_up():
    """Compile (or load from Numba's cache) every kernel the run uses, the
    multiclass and multilabel ones too, before any timing."""
    suite.warm_up()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.arange(60) % 3
    Y = (rng.random((60, 3)) < 0.4).astype(int)
    Y[:3] = np.eye(3, dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for metric in ("f1", "balanced_accuracy"):
            AnyLossClassifier(metric=metric, max_iter=2).fit(X, y)
            AnyLossMLPClassifier(metric=metric, max_iter=2).fit(X, y)
        AnyLossClassifier(average="macro", max_iter=2).fit(X, Y)
        AnyLossMLPClassifier(average="macro", max_iter=2).fit(X, Y)


def _fit_score(estimator, weighted, X_train, y_train, X_test, y_test, multilabel):
    """``(macro_f1, balanced_accuracy, fit_s, warning texts, error)``."""
    model = clone(estimator)
    fit_params = {}
    if weighted:
        # The same as make_pipeline(preprocessing, MLPClassifier()).fit(X, y,
        # mlpclassifier__sample_weight=w): the preprocessing is fitted once a
        # fold here and shared by every model.
        fit_params["sample_weight"] = compute_sample_weight("balanced", y_train)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            start = time.perf_counter()
            model.fit(X_train, y_train, **fit_params)
            fit_s = time.perf_counter() - start
            predicted = model.predict(X_test)
        except Exception as exc:  # reported, not hidden: the run goes on
            return np.nan, np.nan, np.nan, "", f"{type(exc).__name__}: {exc}"
    texts = sorted(
        {
            f"{w.category.__name__}: {str(w.message).splitlines()[0][:120]}"
            for w in caught
        }
    )
    macro_f1 = f1_score(y_test, predicted, average="macro", zero_division=0)
    balanced = np.nan if multilabel else balanced_accuracy_score(y_test, predicted)
    return macro_f1, balanced, fit_s, " | ".join(texts), ""


def run_dataset(key, family, max_rows, writer, log):
    multilabel = family == "multilabel"
    if multilabel:
        X, y = (
            ms.synthetic_multilabel(0) if key == SYNTHETIC else ms.load_multilabel(key)
        )
        n = len(y)
        split = "multilabel"
        folds = KFold(5, shuffle=True, random_state=0).split(X)
        classes = y.shape[1]
    else:
        X, y = ms.load(key)
        n = len(y)
        X, y = subsample(X, y, max_rows)
        split = "DEV" if key in ms.DEV_KEYS else "CONFIRM"
        folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
        classes = len(np.unique(y))
    candidates = models(family)
    for fold, (train, test) in enumerate(folds):
        prep = suite.preprocessing(X)
        X_train = prep.fit_transform(X.iloc[train])
        X_test = prep.transform(X.iloc[test])
        for label, estimator, weighted in candidates:
            f1, ba, fit_s, texts, error = _fit_score(
                estimator, weighted, X_train, y[train], X_test, y[test], multilabel
            )
            writer(
                dict(
                    family=family,
                    split=split,
                    dataset=key,
                    n=n,
                    n_used=len(y),
                    classes=classes,
                    model=label,
                    fold=fold,
                    macro_f1=f1,
                    balanced_accuracy=ba,
                    fit_s=fit_s,
                    warnings=texts,
                    error=error,
                )
            )
            if error:
                log(f"  ERROR {key} {label} fold {fold}: {error}")
    log(f"{family} {key}: done")


# --- summaries -------------------------------------------------------------


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for name in ("macro_f1", "balanced_accuracy", "fit_s"):
            row[name] = float(row[name]) if row[name] not in ("", "nan") else np.nan
    return rows


def per_dataset(rows):
    """``{(family, split, dataset, model): (macro_f1, balanced, fit_s, n_used,
    classes)}``: means over the folds (NaN when a fold failed)."""
    groups = {}
    for row in rows:
        key = (row["family"], row["split"], row["dataset"], row["model"])
        groups.setdefault(key, []).append(row)
    out = {}
    for key, group in groups.items():
        out[key] = tuple(
            float(np.mean([r[name] for r in group]))
            for name in ("macro_f1", "balanced_accuracy", "fit_s")
        ) + (group[0]["n_used"], group[0]["classes"], len(group))
    return out


def _models_of(table, family):
    return list(dict.fromkeys(k[3] for k in table if k[0] == family))


def dataset_table(table, family, split):
    keys = list(dict.fromkeys(k[2] for k in table if k[:2] == (family, split)))
    labels = _models_of(table, family)
    multilabel = family == "multilabel"
    lines = []
    metrics = [("macro-F1", 0)] + ([] if multilabel else [("balanced accuracy", 1)])
    metrics.append(("fit time per fold (ms)", 2))
    for name, i in metrics:
        where = family if multilabel else f"{family}, {split}"
        lines += ["", f"{where}: {name} (5-fold mean)", ""]
        width = "L" if multilabel else "K"
        lines.append(f"| dataset | n used | {width} | " + " | ".join(labels) + " |")
        lines.append("|---" * (len(labels) + 3) + "|")
        for key in keys:
            first = next(v for k, v in table.items() if k[:3] == (family, split, key))
            cells = [
                table.get((family, split, key, m), (np.nan,) * 3)[i] for m in labels
            ]
            lines.append(
                f"| {key} | {first[3]} | {first[4]} | "
                + " | ".join(f"{1e3 * c:.1f}" if i == 2 else f"{c:.3f}" for c in cells)
                + " |"
            )
    return "\n".join(lines)


def split_means(table, family, split):
    """``{model: (mean macro-F1, mean balanced accuracy, mean fit s, datasets)}``
    over the datasets where every model of the family has a score."""
    labels = _models_of(table, family)
    keys = list(dict.fromkeys(k[2] for k in table if k[:2] == (family, split)))
    complete = [
        key
        for key in keys
        if all(
            (family, split, key, m) in table
            and not np.isnan(table[(family, split, key, m)][0])
            for m in labels
        )
    ]
    return {
        m: tuple(
            float(np.mean([table[(family, split, key, m)][i] for key in complete]))
            for i in range(3)
        )
        + (len(complete),)
        for m in labels
    }, [k for k in keys if k not in complete]


def mean_table(table, family, split):
    means, dropped = split_means(table, family, split)
    if not means:
        return ""
    n = next(iter(means.values()))[3]
    lines = [
        "",
        f"{family}, {split}: mean over {n} datasets",
        "",
        "| model | macro-F1 | balanced accuracy | fit time per fold (ms) |",
        "|---|---|---|---|",
    ]
    for m, (f1, ba, fit_s, _) in means.items():
        lines.append(f"| {m} | {f1:.3f} | {ba:.3f} | {1e3 * fit_s:.1f} |")
    if dropped:
        lines.append(f"\n(left out, a model failed there: {', '.join(dropped)})")
    return "\n".join(lines)


#: family -> (AnyLoss for macro-F1, AnyLoss for balanced accuracy, baselines)
TARGETS = {
    "linear": ("AnyLoss f1", "AnyLoss balanced_accuracy", ["LR", "LR balanced"]),
    "mlp": (
        "AnyLoss MLP f1",
        "AnyLoss MLP balanced_accuracy",
        ["MLPClassifier", "MLPClassifier balanced weights"],
    ),
}


def target_table(table, family, split):
    """The differences asked for: AnyLoss minus the better baseline (the
    baseline with the higher mean on this split for that metric), and the
    fit-time ratio AnyLoss / that baseline."""
    means, _ = split_means(table, family, split)
    if not means:
        return ""
    ours_f1, ours_ba, baselines = TARGETS[family]
    lines = [
        "",
        f"{family}, {split}: AnyLoss minus the better baseline",
        "",
        "| metric | AnyLoss model | better baseline | AnyLoss | baseline "
        "| difference | target +0.01 met | fit-time ratio AnyLoss / baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, i, ours in (("macro-F1", 0, ours_f1), ("balanced accuracy", 1, ours_ba)):
        best = max(baselines, key=lambda m: means[m][i])
        diff = means[ours][i] - means[best][i]
        ratio = means[ours][2] / means[best][2]
        lines.append(
            f"| {name} | {ours} | {best} | {means[ours][i]:.3f} | "
            f"{means[best][i]:.3f} | {diff:+.3f} | {'yes' if diff >= 0.01 else 'no'} "
            f"| {ratio:.2f} |"
        )
    return "\n".join(lines)


def multilabel_summary(table):
    means, _ = split_means(table, "multilabel", "multilabel")
    if not means:
        return ""
    lines = [
        "",
        "multilabel: mean over the datasets",
        "",
        "| model | macro-F1 | fit time per fold (ms) |",
        "|---|---|---|",
    ]
    for m, (f1, _, fit_s, _) in means.items():
        lines.append(f"| {m} | {f1:.3f} | {1e3 * fit_s:.1f} |")
    baselines = ["MultiOutput LR", "MLPClassifier"]
    for ours in ("AnyLoss f1 macro", "AnyLoss MLP f1 macro"):
        if ours in means and all(b in means for b in baselines):
            diffs = ", ".join(
                f"{means[ours][0] - means[b][0]:+.3f} vs {b} "
                f"(fit-time ratio {means[ours][2] / means[b][2]:.2f})"
                for b in baselines
            )
            met = all(means[ours][0] > means[b][0] for b in baselines)
            lines.append(f"\n{ours}: {diffs}; above both: {'yes' if met else 'no'}")
    return "\n".join(lines)


def summary(path):
    rows = read(path)
    table = per_dataset(rows)
    parts = []
    for family in ("linear", "mlp"):
        for split in ("DEV", "CONFIRM"):
            if any(k[:2] == (family, split) for k in table):
                parts += [
                    dataset_table(table, family, split),
                    mean_table(table, family, split),
                    target_table(table, family, split),
                ]
    if any(k[0] == "multilabel" for k in table):
        parts += [
            dataset_table(table, "multilabel", "multilabel"),
            multilabel_summary(table),
        ]
    errors = sorted(
        {(r["dataset"], r["model"], r["error"]) for r in rows if r["error"]}
    )
    if errors:
        parts += ["", "Errors:"] + [f"- {d}, {m}: {e}" for d, m, e in errors]
    warned = {}
    for r in rows:
        for text in filter(None, r["warnings"].split(" | ")):
            folds = warned.setdefault((r["family"], r["model"], text), {})
            folds[r["dataset"]] = folds.get(r["dataset"], 0) + 1
    if warned:
        parts += ["", "Warnings (family, model: warning: dataset (folds of 5)):"]
        parts += [
            f"- {f}, {m}: {t}: " + ", ".join(f"{d} ({c})" for d, c in ds.items())
            for (f, m, t), ds in sorted(warned.items())
        ]
    return "\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keys",
        nargs="+",
        default=None,
        choices=[*ms.MULTICLASS, *MULTILABEL_KEYS],
        help="datasets (default: all of the split; multilabel: all three)",
    )
    parser.add_argument("--split", default="all", choices=["dev", "confirm", "all"])
    parser.add_argument(
        "--models", default="all", choices=["linear", "mlp", "multilabel", "all"]
    )
    parser.add_argument("--max-rows", type=int, default=10000)
    parser.add_argument(
        "--out",
        default=os.path.join(HERE, "results", "bench_multiclass.csv"),
        help="CSV of every fold's record (appended to when it exists)",
    )
    parser.add_argument("--summary", metavar="CSV", help="print the tables only")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(args.summary))
        return 0

    split_keys = {
        "dev": ms.DEV_KEYS,
        "confirm": ms.CONFIRM_KEYS,
        "all": list(ms.MULTICLASS),
    }[args.split]
    families = (
        ["linear", "mlp", "multilabel"] if args.models == "all" else [args.models]
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    new = not os.path.exists(args.out)
    start = time.perf_counter()
    warm_up()
    with open(args.out, "a", newline="") as f:
        out = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            out.writeheader()

        def writer(record):
            out.writerow(record)
            f.flush()

        print(
            f"{date.today()}: python "
            + " ".join([os.path.relpath(__file__), *sys.argv[1:]])
        )
        for family in families:
            if family == "multilabel":
                keys = [
                    k for k in MULTILABEL_KEYS if args.keys is None or k in args.keys
                ]
            else:
                keys = [k for k in split_keys if args.keys is None or k in args.keys]
            for key in keys:
                t0 = time.perf_counter()
                run_dataset(key, family, args.max_rows, writer, print)
                print(f"  {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"{(time.perf_counter() - start) / 60:.1f} min in all")
    print(summary(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
