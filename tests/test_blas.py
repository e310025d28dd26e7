"""The kernels' matrix products (``_blas``): the bits of Numba's ``np.dot``,
every shape class, and cacheable kernels."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from sk_anyloss._blas import matmul, matmul_nt, matmul_tn, vecmat


@njit
def _products(A, B, C, D, x):
    """Ours and Numba's ``np.dot`` for ``A B^T``, ``A C``, ``D^T C`` and
    ``x C`` (A: m x k, B: n x k, C: k x n, D: k x m, x: k)."""
    m, n = A.shape[0], B.shape[0]
    nt = np.empty((m, n), A.dtype)
    matmul_nt(A, B, nt)
    nn = np.empty((m, C.shape[1]), A.dtype)
    matmul(A, C, nn)
    tn = np.empty((m, C.shape[1]), A.dtype)
    matmul_tn(D, C, tn)
    vm = np.empty(C.shape[1], A.dtype)
    vecmat(x, C, vm)
    ours = (nt, nn, tn, vm)
    theirs = (np.dot(A, B.T), np.dot(A, C), np.dot(D.T, C), np.dot(x, C))
    return ours, theirs


# m x k times k x n: each class of shape that BLAS is called differently for
SHAPES = [
    (5, 7, 3),  # matrix product
    (1, 7, 3),  # one row on the left: matrix-vector
    (5, 7, 1),  # one column on the right: matrix-vector
    (1, 7, 1),  # both: dot product
    (1024, 20, 2),
    (2, 1024, 20),
    (5, 0, 3),  # empty inner dimension: zeros
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_products_equal_numbas_np_dot_bit_for_bit(m, k, n, dtype):
    rng = np.random.default_rng(m * 100 + k * 10 + n)

    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    A, B, C, D, x = draw(m, k), draw(n, k), draw(k, n), draw(k, m), draw(k)
    ours, theirs = _products(A, B, C, D, x)
    for got, expected in zip(ours, theirs):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)
    # and NumPy's products, to rounding
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for got, expected in zip(ours, (A @ B.T, A @ C, D.T @ C, x @ C)):
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * max(k, 1))


def test_products_with_no_rows_leave_an_empty_output():
    A = np.empty((0, 4))
    ours, theirs = _products(
        A, np.ones((3, 4)), np.ones((4, 3)), np.ones((4, 0)), np.ones(4)
    )
    assert [o.shape for o in ours] == [t.shape for t in theirs]


def test_mixed_precisions_and_strided_operands_are_refused_at_compile_time():
    @njit
    def product(A, B):
        out = np.empty((A.shape[0], B.shape[1]))
        matmul(A, B, out)
        return out

    with pytest.raises(TypingError, match="share float64 or float32"):
        product(np.ones((2, 2)), np.ones((2, 2), np.float32))
    with pytest.raises(TypingError, match="C-contiguous"):
        product(np.ones((2, 4))[:, ::2], np.ones((2, 2)))


def test_a_cached_kernel_calling_blas_runs_in_a_new_process(tmp_path):
    """The products call BLAS by a symbol registered at import, not by an
    address written into the code: a kernel loaded from Numba's disk cache
    by another process (another address of SciPy's BLAS) still runs."""
    module = tmp_path / "cached_product.py"
    module.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from numba import njit
            from sk_anyloss._blas import matmul_nt

            @njit(cache=True)
            def product(A, B):
                out = np.empty((A.shape[0], B.shape[0]))
                matmul_nt(A, B, out)
                return out
            """
        )
    )
    script = textwrap.dedent(
        """
        import numpy as np
        from cached_product import product
        A = np.arange(12.0).reshape(3, 4)
        B = np.arange(8.0).reshape(2, 4)
        assert np.array_equal(product(A, B), A @ B.T)
        print(len(product.stats.cache_hits), len(product.stats.cache_misses))
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout.split() == ["0", "1"]  # compiled, written to the cache
    assert runs[1].stdout.split() == ["1", "0"]  # loaded from the cache
