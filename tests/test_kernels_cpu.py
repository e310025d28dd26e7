"""The CPU kernels against the NumPy reference (``naive``)."""

import math
import re

import numba
import numpy as np
import pytest
from scipy.special import expit

from sk_anyloss import _optim
from sk_anyloss._base import Problem
from sk_anyloss._kernels_cpu import (
    CHUNK_ROWS,
    RUNNING,
    STOPPED,
    LinearBackend,
    amplified,
    cpu_metric,
    fit_linear,
    linear_pass,
    log_loss_grad,
    make_target,
    metric_loss_grad,
    new_loop_state,
    reduce_chunks,
)
from sk_anyloss._metrics import METRIC_NAMES, Metric
from sk_anyloss._settings import LinearSettings
from sk_anyloss._vmath import exp_neg

import naive

VARIANTS = ["serial", "parallel"]

# Relative tolerances against the float64 NumPy reference: ``(loss, gradient)``.
# float32 data are multiplied in float32 (the pass's two matrix products), so
# the sums carry float32 rounding (see ``_kernels_cpu._labels_pass``).
TOLERANCE = {np.float64: (1e-10, 1e-8), np.float32: (1e-6, 1e-4)}


def _problem(n=3 * CHUNK_ROWS + 17, d=7, dtype=np.float64, weighted=False, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = (rng.random(n) < 0.2).astype(np.uint8)
    sw = rng.uniform(0.0, 2.0, n) if weighted else None
    theta = 0.3 * rng.standard_normal(d + 1)
    return X, y, sw, theta


def _binary(y):
    return Problem("binary", y[:, None], y, None)


def _normalised(y, sw):
    """Weights normalised to sum to one and the binary target, as the backend
    makes them."""
    raw = np.ones(y.shape[0]) if sw is None else sw
    return raw / raw.sum(), make_target(_binary(y), raw)


def _kernel_loss_grad(
    variant, X, y, sw, theta, metric, beta=1.0, amp=73.0, alpha=0.0, fit_intercept=True
):
    s, target = _normalised(y, sw)
    grad = np.empty_like(theta)
    if metric == "warm-up":
        kernel = getattr(log_loss_grad, variant)
        return kernel(X, target, s, theta, alpha, fit_intercept, grad), grad
    total = reduce_chunks(
        getattr(linear_pass, variant)(X, target.Y, s, theta, amp, False)
    )
    m = Metric(metric, beta)
    loss = metric_loss_grad(
        total, target, theta, grad, cpu_metric(m), m.params, alpha, fit_intercept
    )
    return loss, grad


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_warm_up_loss_matches_numpy_reference(variant, dtype, weighted, fit_intercept):
    X, y, sw, theta = _problem(dtype=dtype, weighted=weighted)
    theta *= 10.0  # large scores: the log-loss must not overflow
    loss, grad = _kernel_loss_grad(
        variant, X, y, sw, theta, "warm-up", alpha=0.1, fit_intercept=fit_intercept
    )
    ref_loss, ref_grad = naive.balanced_log_loss_and_gradient(
        X, y, sw, theta, alpha=0.1, fit_intercept=fit_intercept
    )
    rel_loss, rel_grad = TOLERANCE[dtype]
    assert np.isfinite(loss) and loss == pytest.approx(ref_loss, rel=rel_loss)
    np.testing.assert_allclose(grad, ref_grad, rtol=rel_grad, atol=1e-12)


def test_warm_up_gradient_matches_finite_differences():
    X, y, sw, theta = _problem(n=500, d=5, weighted=True, seed=5)
    _, grad = _kernel_loss_grad("serial", X, y, sw, theta, "warm-up", alpha=0.05)
    for k in range(theta.shape[0]):
        step = np.zeros_like(theta)
        step[k] = 1e-6
        up, _ = _kernel_loss_grad(
            "serial", X, y, sw, theta + step, "warm-up", alpha=0.05
        )
        down, _ = _kernel_loss_grad(
            "serial", X, y, sw, theta - step, "warm-up", alpha=0.05
        )
        assert grad[k] == pytest.approx((up - down) / 2e-6, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("metric", METRIC_NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_pass_and_metric_match_numpy_reference(variant, metric, dtype, weighted):
    X, y, sw, theta = _problem(dtype=dtype, weighted=weighted)
    args = dict(metric=metric, beta=0.7, amplifier=20.0, alpha=0.1)
    loss, grad = _kernel_loss_grad(variant, X, y, sw, theta, metric, 0.7, 20.0, 0.1)
    ref_loss, ref_grad = naive.loss_and_gradient(X, y, sw, theta, **args)
    rel_loss, rel_grad = TOLERANCE[dtype]
    assert loss == pytest.approx(ref_loss, rel=rel_loss)
    np.testing.assert_allclose(grad, ref_grad, rtol=rel_grad, atol=1e-12)


@pytest.mark.parametrize("metric", METRIC_NAMES)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gradient_matches_finite_differences(metric, fit_intercept):
    X, y, sw, theta = _problem(n=500, d=5, weighted=True, seed=1)
    theta *= 0.2  # keep the steep amplified sigmoid well resolved
    if not fit_intercept:
        theta[-1] = 0.0
    amp = 10.0

    def loss_grad(t):
        return _kernel_loss_grad(
            "serial", X, y, sw, t, metric, 1.5, amp, 0.05, fit_intercept
        )

    _, grad = loss_grad(theta)
    for k in range(theta.shape[0] - (0 if fit_intercept else 1)):
        step = 1e-6
        up, down = theta.copy(), theta.copy()
        up[k] += step
        down[k] -= step
        fd = (loss_grad(up)[0] - loss_grad(down)[0]) / (2 * step)
        assert grad[k] == pytest.approx(fd, rel=1e-5, abs=1e-8), k
    if not fit_intercept:
        assert grad[-1] == 0.0


@numba.njit
def _amplified_many(z, amp):
    a = np.empty_like(z)
    h = np.empty_like(z)
    for i in range(z.shape[0]):
        a[i], h[i] = amplified(z[i], amp)
    return a, h


@pytest.mark.parametrize("amp", [1.0, 73.0, 500.0, 5000.0])
def test_amplified_is_stable_and_exact(amp):
    z = np.concatenate([np.linspace(-40, 40, 2001), [0.0, 1e-300, -1e-300]])
    a, h = _amplified_many(z, amp)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(h))
    assert np.all((a >= 0.5) == (expit(z) >= 0.5))
    assert np.all(h >= 0)
    if amp <= 73.0:  # where the naive formula is still accurate
        a_ref, h_ref = naive.amplified(z, amp)
        np.testing.assert_allclose(a, a_ref, rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(h, h_ref, rtol=1e-6, atol=1e-15)


def test_amplified_keeps_gradient_where_naive_underflows():
    # For L >= 74 the naive a (1 - a) rounds to 0 at p = 1; ours stays positive.
    z = np.array([40.0])
    _, h_naive = naive.amplified(z, 100.0)
    _, h = _amplified_many(z, 100.0)
    assert h_naive[0] == 0.0
    assert h[0] > 0.0


def _settings(max_iter, solver="adam", tol=None, learning_rate=0.01):
    return LinearSettings(
        amplifier=73.0,
        alpha=0.0,
        fit_intercept=True,
        optimizer=_optim.Optimizer(
            _optim.SOLVER_CODES["adam" if solver == "adam" else "sgd"],
            learning_rate,
            0.0,
            0.9,
            0.999,
            1e-8,
        ),  # fmt: skip
        max_iter=max_iter,
        use_tol=tol is not None,
        tol=0.0 if tol is None else tol,
        n_iter_no_change=10,
    )


def _fit(variant, X, y, sw, max_iter=200, metric="f1", solver="adam", tol=None):
    s, target = _normalised(y, sw)
    theta = np.zeros(X.shape[1] + 1)
    state = new_loop_state(theta.shape[0])
    curve = np.empty(max_iter)
    m = Metric(metric)
    status = getattr(fit_linear, variant)(
        X, target, s, theta, _settings(max_iter, solver, tol), cpu_metric(m),
        m.params, state, curve, max_iter,
    )  # fmt: skip
    assert status == STOPPED
    n_iter = state.optimizer.steps[0]
    return theta, n_iter, curve[:n_iter]


@pytest.mark.parametrize("solver", ["adam", "gd"])
@pytest.mark.parametrize("weighted", [False, True])
def test_training_loop_matches_numpy_reference(solver, weighted):
    X, y, sw, _ = _problem(n=2000, d=6, weighted=weighted, seed=2)
    theta, n_iter, curve = _fit("serial", X, y, sw, max_iter=150, solver=solver)
    ref = naive.fit(X, y, sw, max_iter=150, solver=solver, learning_rate=0.01)
    assert n_iter == 150
    np.testing.assert_allclose(theta, ref, rtol=1e-7, atol=1e-9)
    assert curve[-1] < curve[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_serial_parallel_and_thread_counts_are_bit_identical(dtype):
    X, y, sw, _ = _problem(n=20 * CHUNK_ROWS + 5, d=9, dtype=dtype, weighted=True)
    serial, _, _ = _fit("serial", X, y, sw)
    results = []
    for n_threads in sorted({1, 2, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(n_threads)
        try:
            results.append(_fit("parallel", X, y, sw)[0])
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for theta in results:
        assert np.array_equal(theta, serial)


def test_tolerance_stops_early():
    X, y, sw, _ = _problem(n=2000, d=4, seed=3)
    _, n_iter, curve = _fit("serial", X, y, sw, max_iter=5000, tol=1e-4)
    assert n_iter < 5000
    assert len(curve) == n_iter


def test_loop_paused_and_resumed_is_the_loop_run_at_once():
    X, y, sw, _ = _problem(n=1000, d=4, seed=4)
    s, target = _normalised(y, sw)
    m = Metric("mcc")
    results = []
    for per_call in (100, 7):
        theta = np.zeros(5)
        state = new_loop_state(5)
        curve = np.empty(100)
        calls = 0
        status = RUNNING
        while status == RUNNING:
            status = fit_linear.serial(
                X, target, s, theta, _settings(100), cpu_metric(m), m.params,
                state, curve, per_call,
            )  # fmt: skip
            calls += 1
        results.append((theta, curve.copy(), calls))
    assert results[0][2] == 1 and results[1][2] == 15  # ceil(100 / 7)
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])


def test_backend_runs_the_loop_of_the_kernels():
    X, y, sw, _ = _problem(n=1500, d=5, weighted=True, seed=6)
    backend = LinearBackend(X, sw)
    target = backend.target(_binary(y))
    theta = np.zeros(6)
    status, curve = backend.fit(target, theta, _settings(80), Metric("f1"))
    expected, n_iter, expected_curve = _fit("serial", X, y, sw, max_iter=80)
    assert status == STOPPED and len(curve) == n_iter == 80
    assert np.array_equal(theta, expected)
    assert np.array_equal(curve, expected_curve)


@numba.njit
def _exp_neg_many(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = exp_neg(x[i])
    return out


def test_exp_neg_is_within_an_ulp_of_the_c_library():
    rng = np.random.default_rng(0)
    x = -np.concatenate(
        [
            np.linspace(0.0, 708.0, 200_001),
            708.0 * rng.random(200_000) ** 4,  # dense near 0, where exp ~ 1
            [0.0, 5e-324, 1e-300, 1e-17, 0.5 * np.log(2.0), np.log(2.0)],
        ]
    )
    ours = _exp_neg_many(x)
    libm = np.array([math.exp(v) for v in x])
    assert np.all(np.abs(ours - libm) <= np.spacing(libm))
    assert _exp_neg_many(np.array([0.0]))[0] == 1.0


def test_float32_exp_neg_is_within_an_ulp_of_the_c_library():
    x = -np.concatenate(
        [
            np.linspace(0.0, 87.0, 200_001),
            87.0 * np.random.default_rng(1).random(1000) ** 4,
        ]
    ).astype(np.float32)
    ours = _exp_neg_many(x)
    assert ours.dtype == np.float32
    libm = np.exp(x.astype(np.float64)).astype(np.float32)  # correctly rounded
    assert np.all(np.abs(ours - libm) <= np.spacing(libm))
    out = _exp_neg_many(np.array([-88.0, -np.inf, np.nan], dtype=np.float32))
    assert np.all(out[:2] == _exp_neg_many(np.array([-87.0], dtype=np.float32))[0])
    assert np.isnan(out[2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_neg_converts_no_float_to_an_integer(dtype):
    # n and 2**n come from the bits of a shifted sum: a conversion from float
    # to integer (which AVX2 cannot do on vectors) would leave lanes idle.
    kernel = numba.njit(_exp_neg_many.py_func)
    kernel(np.zeros(4, dtype))
    ir = kernel.inspect_llvm(kernel.signatures[0])
    assert "fptosi" not in ir and "fptoui" not in ir


def test_exp_neg_below_its_range_and_at_nan():
    out = _exp_neg_many(np.array([-709.0, -800.0, -np.inf, np.nan]))
    # Below -708 the result is exp(-708) (normal), not a subnormal or zero.
    assert np.all(out[:3] == _exp_neg_many(np.array([-708.0]))[0])
    assert 0.0 < out[0] < 4e-308
    assert np.isnan(out[3])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_amplification_runs_on_simd_lanes(dtype):
    # The rows' terms of a labels pass (two exps and two divisions a row)
    # must vectorise: LLVM's IR then divides whole vectors of the data's type.
    from sk_anyloss._kernels_cpu import _label_terms

    kernel = numba.njit(error_model="numpy")(_label_terms.py_func)
    m = 64
    z = np.zeros(m, dtype)
    out = [np.empty(m, dtype), np.empty(m, dtype), np.empty(m)]
    kernel(z, dtype(0.1), np.zeros(m, np.uint8), np.ones(m), dtype(20.0), False, *out)
    ir = kernel.inspect_llvm(kernel.signatures[0])
    element = "double" if dtype == np.float64 else "float"
    assert re.search(rf"fdiv [^<]*<\d+ x {element}>", ir), "not vectorised"
