"""Load every dataset of ``multiclass_suite`` and print a table of them.

    python benchmarks/check_multiclass_datasets.py

Multiclass: key, split (DEV / CONFIRM), rows, columns, classes, smallest class
share, largest / smallest class ratio, load time. Multilabel: key, rows,
columns, labels, each label's share of rows, load time. Checks the class rule,
the order by size and the split on the way.
"""

import sys
import time
from datetime import date

import multiclass_suite as ms
import numpy as np


def main():
    print(f"{date.today()}: python benchmarks/check_multiclass_datasets.py")
    print()
    print("| key | split | n | d | K | smallest class % | largest/smallest | load s |")
    print("|---|---|---|---|---|---|---|---|")
    sizes, total = [], 0.0
    for key in ms.MULTICLASS:
        start = time.perf_counter()
        X, y = ms.load(key)
        seconds = time.perf_counter() - start
        total += seconds
        counts = np.bincount(y)
        assert np.array_equal(X.index, np.arange(len(y))), key
        assert counts.min() >= ms.MIN_CLASS_SIZE and len(counts) >= 3, key
        sizes.append(len(y))
        split = "DEV" if key in ms.DEV_KEYS else "CONFIRM"
        mark = " (balanced)" if key in ms.MODERATELY_BALANCED else ""
        print(
            f"| {key}{mark} | {split} | {len(y):,} | {X.shape[1]} | {len(counts)} | "
            f"{100 * counts.min() / len(y):.2f} | {counts.max() / counts.min():.1f} | "
            f"{seconds:.2f} |"
        )
    assert sizes == sorted(sizes), "MULTICLASS is not ordered by size"
    assert not set(ms.DEV_KEYS) & set(ms.CONFIRM_KEYS)
    assert set(ms.DEV_KEYS) | set(ms.CONFIRM_KEYS) == set(ms.MULTICLASS)
    print()
    print("(balanced): in MODERATELY_BALANCED (ratio under 4.5; digits the control)")
    print(f"{len(ms.MULTICLASS)} multiclass datasets loaded in {total:.1f} s")
    print(f"DEV ({len(ms.DEV_KEYS)}): {', '.join(ms.DEV_KEYS)}")
    print(f"CONFIRM ({len(ms.CONFIRM_KEYS)}): {', '.join(ms.CONFIRM_KEYS)}")
    print()
    print("| multilabel key | n | d | L | label % (each label) | load s |")
    print("|---|---|---|---|---|---|")
    sets = [(key, lambda key=key: ms.load_multilabel(key)) for key in ms.MULTILABEL]
    sets.append(("synthetic (random_state=0)", lambda: ms.synthetic_multilabel(0)))
    for key, loader in sets:
        start = time.perf_counter()
        X, Y = loader()
        seconds = time.perf_counter() - start
        rates = Y.mean(axis=0)
        assert Y.shape[0] == X.shape[0] and set(np.unique(Y)) == {0, 1}
        assert np.all((rates > 0) & (rates < 1)), key
        shares = ", ".join(f"{100 * r:.1f}" for r in rates)
        print(
            f"| {key} | {len(Y):,} | {X.shape[1]} | {Y.shape[1]} | {shares} | "
            f"{seconds:.2f} |"
        )
    for key, names in ms.LABEL_NAMES.items():
        print(f"{key} labels: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
