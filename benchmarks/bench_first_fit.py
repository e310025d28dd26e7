"""The first fit on a new machine: both estimators with an empty Numba cache.

Each measurement is a fresh interpreter with an empty ``NUMBA_CACHE_DIR``
(a new install, a fresh container, a new Dask worker host) that imports
``sk_anyloss`` and fits the estimator twice with default parameters on the
standardised breast-cancer data; then a second interpreter on the cache the
first one filled (the warm case). Reported: the import, the first fit (cold:
mostly compilation) and the second fit, wall-clock and CPU seconds, medians
over ``--repeats``.

With ``--against REV``, the package of commit ``REV`` (exported with ``git
archive``) is measured too, alternating with the working tree's run by run,
so that both see the same machine at the same moments: a shared machine's
speed drifts between runs by more than the differences sought.

    python benchmarks/bench_first_fit.py [--repeats 3] [--against 4009ee8]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("AnyLossClassifier", "AnyLossMLPClassifier")

SCRIPT = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from sklearn.datasets import load_breast_cancer
X, y = load_breast_cancer(return_X_y=True)
X = (X - X.mean(axis=0)) / X.std(axis=0)
times = []
times.append((time.perf_counter(), time.process_time()))
import sk_anyloss
times.append((time.perf_counter(), time.process_time()))
Estimator = getattr(sk_anyloss, sys.argv[1])
for _ in range(2):
    Estimator().fit(X, y)
    times.append((time.perf_counter(), time.process_time()))
names = ("import", "first_fit", "second_fit")
out = {"file": sk_anyloss.__file__}
for k, name in enumerate(names):
    out[name] = times[k + 1][0] - times[k][0]
    out[name + "_cpu"] = times[k + 1][1] - times[k][1]
print(json.dumps(out))
"""


def export(rev, folder):
    """Commit ``rev``'s package under ``folder``; returns the path to import it."""
    archive = subprocess.run(
        ["git", "archive", rev, "sk_anyloss"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def run(path, model, cache_dir):
    """One fresh interpreter importing ``sk_anyloss`` from ``path``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=path)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, model],
        env=env,
        cwd=cache_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    where = os.path.dirname(os.path.dirname(result.pop("file")))
    if os.path.realpath(where) != os.path.realpath(path):
        raise RuntimeError(f"imported sk_anyloss from {where}, not {path}")
    return result


def measure(trees, repeats):
    """``{(tree, model, cache): [runs]}``, the trees alternating run by run."""
    runs = {}
    for _ in range(repeats):
        for model in MODELS:
            for name, path in trees.items():
                with tempfile.TemporaryDirectory() as cache_dir:
                    for cache in ("cold", "warm"):
                        key = (name, model, cache)
                        runs.setdefault(key, []).append(run(path, model, cache_dir))
    return runs


def report(runs, repeats):
    fields = ("import", "first_fit", "second_fit")
    lines = [
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, medians of {repeats}",
        "",
        "| tree | estimator | cache | import s | first fit s (CPU) | second fit s |",
        "|---|---|---|---|---|---|",
    ]
    for (name, model, cache), rs in runs.items():
        med = {f: statistics.median(r[f] for r in rs) for f in fields}
        cpu = statistics.median(r["first_fit_cpu"] for r in rs)
        lines.append(
            f"| {name} | {model} | {cache} | {med['import']:.2f} | "
            f"{med['first_fit']:.2f} ({cpu:.2f}) | {med['second_fit']:.3f} |"
        )
    names = list(dict.fromkeys(name for name, _, _ in runs))
    if len(names) == 2:
        ours, other = names
        lines += [
            "",
            f"Cold first fit, {ours} / {other}, run by run (each pair measured "
            "back to back):",
            "",
        ]
        for model in MODELS:
            pairs = zip(runs[(ours, model, "cold")], runs[(other, model, "cold")])
            ratios = [a["first_fit"] / b["first_fit"] for a, b in pairs]
            shown = ", ".join(f"{r:.2f}" for r in ratios)
            lines.append(f"- {model}: median {statistics.median(ratios):.2f} ({shown})")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="also measure commit REV")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        trees = {"working tree": ROOT}
        if args.against:
            trees[args.against] = export(args.against, folder)
        start = time.perf_counter()
        runs = measure(trees, args.repeats)
    print(report(runs, args.repeats))
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
