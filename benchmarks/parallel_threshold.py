"""Where the parallel build of the linear epoch starts to pay off.

Times one pass over ``X`` (``linear_pass``, the epoch's whole cost) of the
serial and the parallel build at d = 20 and growing n; median of 200 calls
each.

    python benchmarks/parallel_threshold.py
"""

import time

import numpy as np

import sk_anyloss  # noqa: F401  (sets the threading-layer policy)
from sk_anyloss._kernels_cpu import linear_pass


def main():
    rng = np.random.default_rng(0)
    d = 20
    print("| n x d | serial us | parallel us |\n|---|---|---|")
    for n in [1000, 2500, 5000, 10000, 20000, 25000, 30000, 40000]:
        X = rng.standard_normal((n, d))
        y = (rng.random(n) < 0.2).astype(np.uint8)
        theta = np.full(d + 1, 0.01)
        args = (X, y[:, None], np.full(n, 1.0 / n), theta, 73.0, False)
        times = {}
        for variant in ("serial", "parallel"):
            kernel = getattr(linear_pass, variant)
            kernel(*args)
            samples = []
            for _ in range(200):
                start = time.perf_counter()
                kernel(*args)
                samples.append(time.perf_counter() - start)
            times[variant] = 1e6 * np.median(samples)
        print(f"| {n * d:,} | {times['serial']:.1f} | {times['parallel']:.1f} |")


if __name__ == "__main__":
    main()
