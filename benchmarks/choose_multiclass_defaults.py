"""Choosing defaults for multiclass targets: candidate parameters of
``AnyLossClassifier`` / ``AnyLossMLPClassifier`` on the multiclass suite of
``bench_multiclass.py`` (bench extra).

The data, the stratified subsample (``--max-rows``), the folds
(``StratifiedKFold(5, shuffle=True, random_state=0)``), the preprocessing
(``suite.preprocessing``, fitted on each training fold) and the scores
(macro-F1, balanced accuracy at ``predict``; fit time of the model's own
``fit``) are those of ``bench_multiclass.py``, whose functions this script
imports. Only the AnyLoss models run here; the baselines (logistic
regression, MLPClassifier) do not depend on the package, and their scores
are read from a ``bench_multiclass.py`` CSV (``--baselines``).

A candidate is a JSON object of estimator parameters with a ``metric``;
``random_state=0`` is added. The candidate of a metric with no other
parameter is the package default it is compared with. The protocol: a
candidate is chosen on ``--split dev`` only; only the DEV winner(s) and the
default then run on ``--split confirm``, and a candidate is adopted only if
it wins there too.

    python benchmarks/choose_multiclass_defaults.py --family mlp --split dev \\
        --candidates '[{"metric": "f1"}, {"metric": "f1", "log_loss_weight": 1.0}]'
    python benchmarks/choose_multiclass_defaults.py \\
        --summary benchmarks/results/choose_multiclass.csv

Every fold's record is appended to ``--out`` as soon as it is measured; a
(dataset, candidate) whose five folds are already in ``--out`` is skipped, so
a run can be resumed or extended.
"""

import argparse
import csv
import json
import os
import sys
import time
import warnings
from datetime import date

import bench_multiclass as bm
import multiclass_suite as ms
import numpy as np
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier

import suite

HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS = [
    "family",
    "split",
    "dataset",
    "n",
    "n_used",
    "classes",
    "model",
    "params",
    "fold",
    "macro_f1",
    "balanced_accuracy",
    "fit_s",
    "n_iter",
    "predicted_classes",
    "warnings",
    "error",
]
ESTIMATORS = {"linear": AnyLossClassifier, "mlp": AnyLossMLPClassifier}
BASELINES = {
    "linear": ["LR", "LR balanced"],
    "mlp": ["MLPClassifier", "MLPClassifier balanced weights"],
}
#: The score a metric is judged by (column of the CSV).
SCORE = {"f1": "macro_f1", "balanced_accuracy": "balanced_accuracy"}


def label(family, params):
    """``"mlp balanced_accuracy log_loss_weight=1.0"``; the default of a
    metric is ``"mlp balanced_accuracy default"``."""
    rest = {k: v for k, v in sorted(params.items()) if k != "metric"}
    tail = " ".join(f"{k}={v}" for k, v in rest.items()) or "default"
    return f"{family} {params['metric']} {tail}"


def fit_score(estimator, X_train, y_train, X_test, y_test):
    """``bench_multiclass._fit_score`` (unweighted) plus the number of
    iterations and of distinct predicted classes."""
    model = clone(estimator)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            start = time.perf_counter()
            model.fit(X_train, y_train)
            fit_s = time.perf_counter() - start
            predicted = model.predict(X_test)
        except Exception as exc:  # reported, not hidden: the run goes on
            nan = np.nan
            return nan, nan, nan, nan, nan, "", f"{type(exc).__name__}: {exc}"
    texts = sorted(
        {
            f"{w.category.__name__}: {str(w.message).splitlines()[0][:120]}"
            for w in caught
        }
    )
    return (
        f1_score(y_test, predicted, average="macro", zero_division=0),
        balanced_accuracy_score(y_test, predicted),
        fit_s,
        getattr(model, "n_iter_", np.nan),
        len(np.unique(predicted)),
        " | ".join(texts),
        "",
    )


def done_folds(path):
    """``{(split, dataset, model): folds}`` already in the CSV."""
    if not os.path.exists(path):
        return {}
    counts = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["split"], row["dataset"], row["model"])
            counts[key] = counts.get(key, 0) + 1
    return counts


def run_dataset(key, family, candidates, max_rows, writer, done, log):
    split = "DEV" if key in ms.DEV_KEYS else "CONFIRM"
    todo = [
        (lab, params)
        for lab, params in candidates
        if done.get((split, key, lab), 0) < 5
    ]
    if not todo:
        log(f"{family} {key}: already measured")
        return
    X, y = ms.load(key)
    n = len(y)
    X, y = bm.subsample(X, y, max_rows)
    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
    classes = len(np.unique(y))
    for fold, (train, test) in enumerate(folds):
        prep = suite.preprocessing(X)
        X_train = prep.fit_transform(X.iloc[train])
        X_test = prep.transform(X.iloc[test])
        for lab, params in todo:
            estimator = ESTIMATORS[family](random_state=0, **params)
            f1, ba, fit_s, n_iter, n_pred, texts, error = fit_score(
                estimator, X_train, y[train], X_test, y[test]
            )
            writer(
                dict(
                    family=family,
                    split=split,
                    dataset=key,
                    n=n,
                    n_used=len(y),
                    classes=classes,
                    model=lab,
                    params=json.dumps(params, sort_keys=True),
                    fold=fold,
                    macro_f1=f1,
                    balanced_accuracy=ba,
                    fit_s=fit_s,
                    n_iter=n_iter,
                    predicted_classes=n_pred,
                    warnings=texts,
                    error=error,
                )
            )
            if error:
                log(f"  ERROR {key} {lab} fold {fold}: {error}")
    log(f"{family} {key}: done")


# --- summaries -------------------------------------------------------------


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for name in ("macro_f1", "balanced_accuracy", "fit_s", "n_iter"):
            if name in row:
                value = row[name]
                row[name] = float(value) if value not in ("", "nan") else np.nan
    return rows


def _means(rows):
    """``{(family, split, dataset, model): {column: fold mean}}`` plus the
    smallest number of predicted classes over the folds."""
    groups = {}
    for row in rows:
        key = (row["family"], row["split"], row["dataset"], row["model"])
        groups.setdefault(key, []).append(row)
    out = {}
    for key, group in groups.items():
        out[key] = {
            name: float(np.mean([r[name] for r in group]))
            for name in ("macro_f1", "balanced_accuracy", "fit_s")
        }
        out[key]["folds"] = len(group)
        out[key]["classes"] = int(group[0]["classes"])
        if "predicted_classes" in group[0]:
            out[key]["n_iter"] = float(np.mean([r["n_iter"] for r in group]))
            out[key]["min_predicted"] = min(int(r["predicted_classes"]) for r in group)
            out[key]["convergence"] = sum(
                "ConvergenceWarning" in r["warnings"] for r in group
            )
    return out


def summary(path, baselines_path):
    """The tables of a CSV; ``baselines_path``: ``bench_multiclass.py`` CSVs."""
    rows = _read(path)
    table = _means(rows)
    base = {}
    for one in baselines_path:  # later files replace earlier ones' records
        if os.path.exists(one):
            base.update(_means(_read(one)))
    parts = []
    for family in ("linear", "mlp"):
        for split in ("DEV", "CONFIRM"):
            models = list(
                dict.fromkeys(k[3] for k in table if k[:2] == (family, split))
            )
            for metric in SCORE:
                labels = [m for m in models if m.startswith(f"{family} {metric} ")]
                if labels:
                    parts.append(
                        _metric_tables(table, base, family, split, metric, labels)
                    )
    errors = sorted(
        {(r["dataset"], r["model"], r["error"]) for r in rows if r["error"]}
    )
    if errors:
        parts += ["", "Errors:"] + [f"- {d}, {m}: {e}" for d, m, e in errors]
    return "\n".join(parts)


def _metric_tables(table, base, family, split, metric, labels):
    score = SCORE[metric]
    default = f"{family} {metric} default"
    keys = list(dict.fromkeys(k[2] for k in table if k[:2] == (family, split)))
    complete = [
        k
        for k in keys
        if all(table.get((family, split, k, m), {}).get("folds") == 5 for m in labels)
        and not any(np.isnan(table[(family, split, k, m)][score]) for m in labels)
    ]
    baselines = [
        b
        for b in BASELINES[family]
        if all((family, split, k, b) in base for k in complete)
    ]
    cols = labels + baselines
    source = {**table, **{k: v for k, v in base.items() if k[3] in baselines}}

    def mean(m, name):
        return float(np.mean([source[(family, split, k, m)][name] for k in complete]))

    name = "macro-F1" if metric == "f1" else "balanced accuracy"
    lines = ["", f"{family}, {split}, metric={metric}: {name} (5-fold mean)", ""]
    lines.append("| dataset | K | " + " | ".join(cols) + " |")
    lines.append("|---" * (len(cols) + 2) + "|")
    for k in complete:
        cells = [f"{source[(family, split, k, m)][score]:.3f}" for m in cols]
        lines.append(
            f"| {k} | {table[(family, split, k, labels[0])]['classes']} | "
            + " | ".join(cells)
            + " |"
        )
    better = max(baselines, key=lambda b: mean(b, score)) if baselines else None
    lines += [
        "",
        f"{family}, {split}, metric={metric}: mean over {len(complete)} datasets"
        + (
            f"; better baseline {better} {mean(better, score):.3f}, "
            f"{1e3 * mean(better, 'fit_s'):.1f} ms"
            if better
            else ""
        ),
        "",
        f"| candidate | {name} | - default | W/T/L vs default (0.005) "
        "| - better baseline | fit ms | fit / default | fit / baseline "
        "| epochs | min classes predicted (datasets short) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    have_default = default in labels
    for m in labels:
        s, t = mean(m, score), mean(m, "fit_s")
        if have_default:
            d = [
                table[(family, split, k, m)][score]
                - table[(family, split, k, default)][score]
                for k in complete
            ]
            wtl = (
                f"{sum(x > 0.005 for x in d)}/{sum(abs(x) <= 0.005 for x in d)}"
                f"/{sum(x < -0.005 for x in d)}"
            )
            vs_default = f"{s - mean(default, score):+.4f}"
            ratio_default = f"{t / mean(default, 'fit_s'):.2f}"
        else:
            wtl = vs_default = ratio_default = "-"
        vs_base = f"{s - mean(better, score):+.4f}" if better else "-"
        ratio_base = f"{t / mean(better, 'fit_s'):.2f}" if better else "-"
        short = [
            f"{k} {table[(family, split, k, m)]['min_predicted']}/"
            f"{table[(family, split, k, m)]['classes']}"
            for k in complete
            if table[(family, split, k, m)].get("min_predicted", 0)
            < table[(family, split, k, m)]["classes"]
        ]
        lines.append(
            f"| {m} | {s:.4f} | {vs_default} | {wtl} | {vs_base} | {1e3 * t:.1f} "
            f"| {ratio_default} | {ratio_base} | {mean(m, 'n_iter'):.0f} "
            f"| {', '.join(short) or '-'} |"
        )
    dropped = [k for k in keys if k not in complete]
    if dropped:
        lines.append(f"\n(left out, incomplete or failed: {', '.join(dropped)})")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=list(ESTIMATORS))
    parser.add_argument("--split", default="dev", choices=["dev", "confirm"])
    parser.add_argument(
        "--candidates",
        help='JSON list of parameter objects, each with a "metric"',
    )
    parser.add_argument("--keys", nargs="+", default=None, choices=list(ms.MULTICLASS))
    parser.add_argument("--max-rows", type=int, default=10000)
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results", "choose_multiclass.csv")
    )
    parser.add_argument(
        "--baselines",
        nargs="+",
        default=[os.path.join(HERE, "results", "bench_multiclass.csv")],
        help="bench_multiclass.py CSV(s) with the baselines' scores; a later "
        "file's (split, dataset, model) replaces an earlier one's",
    )
    parser.add_argument("--summary", metavar="CSV", help="print the tables only")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(args.summary, args.baselines))
        return 0
    if not args.family or not args.candidates:
        parser.error("--family and --candidates are needed unless --summary")
    params = json.loads(args.candidates)
    if any("metric" not in p for p in params):
        parser.error('every candidate needs a "metric"')
    candidates = [(label(args.family, p), p) for p in params]
    keys = {"dev": ms.DEV_KEYS, "confirm": ms.CONFIRM_KEYS}[args.split]
    keys = [k for k in keys if args.keys is None or k in args.keys]

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    done = done_folds(args.out)
    new = not os.path.exists(args.out)
    start = time.perf_counter()
    bm.warm_up()
    print(
        f"{date.today()}: python "
        + " ".join([os.path.relpath(__file__), *sys.argv[1:]])
    )
    with open(args.out, "a", newline="") as f:
        out = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            out.writeheader()

        def writer(record):
            out.writerow(record)
            f.flush()

        for key in keys:
            t0 = time.perf_counter()
            run_dataset(
                key, args.family, candidates, args.max_rows, writer, done, print
            )
            print(f"  {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"{(time.perf_counter() - start) / 60:.1f} min in all")
    print(summary(args.out, args.baselines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
