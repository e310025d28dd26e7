"""Where the parallel build of the linear epoch starts to pay off.

Times one pass over ``X`` (``linear_pass``, the epoch's whole cost) of the
serial and the parallel build at d = 20 and growing n, median of 200 calls
each, and what starting an empty parallel region costs on the threading layer
in use (median of 2,000).  Run it once per layer:

    NUMBA_THREADING_LAYER=omp python benchmarks/parallel_threshold.py
    NUMBA_THREADING_LAYER=workqueue python benchmarks/parallel_threshold.py
"""

import time

import numba
import numpy as np
from numba import njit, prange

from sk_anyloss._kernels_cpu import linear_pass


@njit(parallel=True)
def _empty_region(out):
    for c in prange(out.shape[0]):
        out[c] += 1.0


def region_start_us():
    """Median time (us) of a parallel region with next to nothing to do."""
    out = np.zeros(numba.get_num_threads())
    _empty_region(out)
    samples = []
    for _ in range(2000):
        start = time.perf_counter()
        _empty_region(out)
        samples.append(time.perf_counter() - start)
    return 1e6 * np.median(samples)


def main():
    rng = np.random.default_rng(0)
    d = 20
    rows = []
    for n in [1000, 1500, 2000, 2500, 5000, 10000, 20000, 25000, 30000, 40000]:
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
        rows.append(
            f"| {n * d:,} | {times['serial']:.1f} | {times['parallel']:.1f} "
            f"| {times['parallel'] / times['serial']:.2f} |"
        )
    print(
        f"Threading layer `{numba.threading_layer()}`, "
        f"{numba.get_num_threads()} threads; an empty parallel region: "
        f"{region_start_us():.1f} us\n"
    )
    print("| n x d | serial us | parallel us | parallel / serial |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
