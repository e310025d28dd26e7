"""The CPU kernels of several classes (softmax) and labels (sigmoid outputs,
averaged metrics) against the NumPy reference (``naive``)."""

import numba
import numpy as np
import pytest
from numba import njit
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

from sk_anyloss import _optim
from sk_anyloss._base import Problem
from sk_anyloss._kernels_cpu import (
    CHUNK_ROWS,
    COUNTS,
    GRADIENT,
    STOPPED,
    LinearBackend,
    amplified,
    amplified_softmax,
    cpu_metric,
    fit_samples,
    fit_softmax,
    linear_pass,
    make_target,
    metric_loss_grad,
    new_loop_state,
    reduce_chunks,
    rows_gradient,
    softmax_jvp,
    softmax_log_loss_grad,
    softmax_metric_dz,
    softmax_pass,
    softmax_scratch,
)
from sk_anyloss._metrics import METRIC_NAMES, Metric
from sk_anyloss._metrics_multi import JOINT, MATRIX
from sk_anyloss._settings import LinearSettings

import naive

VARIANTS = ["serial", "parallel"]
MULTICLASS_CASES = [
    (name, average)
    for name in METRIC_NAMES
    for average in ([None] if name in JOINT else ["macro", "micro", "weighted"])
]


def _multiclass(n=2 * CHUNK_ROWS + 37, d=5, K=4, dtype=np.float64, weighted=False,
                seed=0):  # fmt: skip
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    true = rng.standard_normal((K, d))
    y = np.argmax(X @ true.T + rng.gumbel(size=(n, K)) + [1.0, 0.0, -0.5, -1.5][:K], 1)
    sw = rng.uniform(0.0, 2.0, n) if weighted else None
    Theta = 0.3 * rng.standard_normal((K, d + 1))
    return X, y, sw, Theta


def _multilabel(n=2 * CHUNK_ROWS + 37, d=5, L=3, dtype=np.float64, weighted=False,
                seed=0):  # fmt: skip
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    scores = X @ rng.standard_normal((d, L)) + rng.standard_normal((n, L))
    cuts = [np.quantile(scores[:, j], q) for j, q in enumerate([0.7, 0.85, 0.95][:L])]
    Y = (scores > cuts).astype(np.uint8)
    sw = rng.uniform(0.0, 2.0, n) if weighted else None
    Theta = 0.3 * rng.standard_normal((L, d + 1))
    return X, Y, sw, Theta


def _weights(n, sw):
    raw = np.ones(n) if sw is None else sw
    return raw, raw / raw.sum()


@njit
def _call(metric, C, k, scale, params, D):
    return metric(C.ctypes, k, scale, params.ctypes, D.ctypes)


def _softmax_loss_grad(variant, X, y, sw, Theta, metric, average, amp, alpha):
    K, d1 = Theta.shape
    raw, s = _weights(X.shape[0], sw)
    Y = (y[:, None] == np.arange(K)).astype(np.uint8)
    target = make_target(Problem("multiclass", Y, y, average), raw)
    m = Metric(metric, 0.7, average)
    theta = Theta.ravel().copy()
    kernel = getattr(softmax_pass, variant)
    D = np.empty((K, K))
    C = reduce_chunks(kernel(X, target.y, s, theta, K, amp, COUNTS, D, target.weights))
    value = _call(cpu_metric(m, MATRIX), C, K, target.scale, m.params, D)
    total = reduce_chunks(
        kernel(X, target.y, s, theta, K, amp, GRADIENT, D, target.weights)
    )
    grad = np.empty_like(theta)
    squares = rows_gradient(total, d1 - 1, -1.0, alpha, True, theta, grad)
    return 1.0 - value + 0.5 * alpha * squares, grad.reshape(K, d1)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("metric, average", MULTICLASS_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_loss_matches_numpy_reference(
    variant, metric, average, dtype, weighted
):
    X, y, sw, Theta = _multiclass(dtype=dtype, weighted=weighted)
    loss, grad = _softmax_loss_grad(
        variant, X, y, sw, Theta, metric, average, 20.0, 0.1
    )
    ref_loss, ref_grad = naive.multiclass_loss_and_gradient(
        X, y, sw, Theta, metric, 0.7, 20.0, 0.1, average or "macro"
    )
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-7, atol=1e-11)


def test_softmax_gradient_matches_finite_differences():
    X, y, sw, Theta = _multiclass(n=400, d=3, K=3, weighted=True, seed=4)
    _, grad = _softmax_loss_grad("serial", X, y, sw, Theta, "mcc", None, 10.0, 0.05)
    for index in np.ndindex(Theta.shape):
        up, down = Theta.copy(), Theta.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        fd = (
            _softmax_loss_grad("serial", X, y, sw, up, "mcc", None, 10.0, 0.05)[0]
            - _softmax_loss_grad("serial", X, y, sw, down, "mcc", None, 10.0, 0.05)[0]
        ) / 2e-6
        assert grad[index] == pytest.approx(fd, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("weighted", [False, True])
def test_multinomial_warm_up_matches_numpy_reference(variant, weighted):
    X, y, sw, Theta = _multiclass(weighted=weighted)
    Theta *= 10.0  # large scores: the log-loss must not overflow
    raw, s = _weights(X.shape[0], sw)
    K = Theta.shape[0]
    Y = (y[:, None] == np.arange(K)).astype(np.uint8)
    target = make_target(Problem("multiclass", Y, y, None), raw)
    grad = np.empty(Theta.size)
    kernel = getattr(softmax_log_loss_grad, variant)
    loss = kernel(X, target, s, Theta.ravel().copy(), 0.1, True, grad)
    ref_loss, ref_grad = naive.multinomial_balanced_log_loss_and_gradient(
        X, y, sw, Theta / 10.0, 0.1
    )
    # the reference has no shift in its softmax: compare at moderate scores
    loss_small = kernel(X, target, s, Theta.ravel() / 10.0, 0.1, True, grad)
    assert np.isfinite(loss)
    assert loss_small == pytest.approx(ref_loss, rel=1e-10)
    np.testing.assert_allclose(grad.reshape(K, -1), ref_grad, rtol=1e-8, atol=1e-12)


def test_multinomial_warm_up_is_balanced_logistic_regression():
    # The warm-up minimises LogisticRegression(class_weight="balanced")'s
    # objective at C = 1: at convergence, the same coefficients.
    X, y, _, Theta = _multiclass(n=3000, d=4, K=4, seed=3)
    backend = LinearBackend(X, np.ones(X.shape[0]))
    Y = (y[:, None] == np.arange(4)).astype(np.uint8)
    target = backend.target(Problem("multiclass", Y, y, None))
    with backend.log_loss(target, 1.0 / X.shape[0], True) as f:
        result = minimize(f, np.zeros(Theta.size), jac=True, method="L-BFGS-B",
                          options={"gtol": 1e-10, "maxiter": 1000})  # fmt: skip
    lr = LogisticRegression(class_weight="balanced", tol=1e-10, max_iter=1000)
    lr.fit(X, y)
    rows = result.x.reshape(4, -1)
    np.testing.assert_allclose(rows[:, :-1], lr.coef_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rows[:, -1], lr.intercept_, rtol=1e-4, atol=1e-5)


def _labels_loss_grad(variant, X, Y, sw, Theta, metric, average, amp, alpha):
    L, d1 = Theta.shape
    raw, s = _weights(X.shape[0], sw)
    target = make_target(Problem("multilabel", Y, None, average), raw)
    m = Metric(metric, 0.7, average)
    theta = Theta.ravel().copy()
    grad = np.empty_like(theta)
    total = reduce_chunks(getattr(linear_pass, variant)(X, Y, s, theta, amp, False))
    loss = metric_loss_grad(
        total, target, theta, grad, cpu_metric(m), m.params, alpha, True
    )
    return loss, grad.reshape(L, d1)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("metric", METRIC_NAMES)
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
@pytest.mark.parametrize("weighted", [False, True])
def test_labels_loss_matches_numpy_reference(variant, metric, average, weighted):
    X, Y, sw, Theta = _multilabel(weighted=weighted)
    loss, grad = _labels_loss_grad(variant, X, Y, sw, Theta, metric, average, 20.0, 0.1)
    ref_loss, ref_grad = naive.multilabel_loss_and_gradient(
        X, Y, sw, Theta, metric, 0.7, 20.0, 0.1, average
    )
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-7, atol=1e-11)


def _settings(max_iter, amplifier=20.0):
    return LinearSettings(
        amplifier=amplifier,
        alpha=0.01,
        fit_intercept=True,
        optimizer=_optim.Optimizer(
            _optim.SOLVER_CODES["adam"], 0.03, 0.0, 0.9, 0.999, 1e-8
        ),  # fmt: skip
        max_iter=max_iter,
        use_tol=False,
        tol=0.0,
        n_iter_no_change=10,
    )


@pytest.mark.parametrize("metric", ["f1", "mcc", "jaccard"])
@pytest.mark.parametrize("weighted", [False, True])
def test_samples_average_matches_numpy_reference(metric, weighted):
    # One iteration of plain gradient descent with step 1 is theta - grad.
    X, Y, sw, Theta = _multilabel(weighted=weighted, seed=2)
    raw, s = _weights(X.shape[0], sw)
    target = make_target(Problem("multilabel", Y, None, "samples"), raw)
    m = Metric(metric, 0.7, "samples")
    settings = _settings(1)._replace(
        optimizer=_optim.Optimizer(
            _optim.SOLVER_CODES["sgd"], 1.0, 0.0, 0.9, 0.999, 1e-8
        ),  # fmt: skip
    )
    theta = Theta.ravel().copy()
    curve = np.empty(1)
    status = fit_samples.serial(
        X, target, s, theta, settings, cpu_metric(m), m.params,
        new_loop_state(theta.size), curve, 1,
    )  # fmt: skip
    ref_loss, ref_grad = naive.multilabel_loss_and_gradient(
        X, Y, sw, Theta, metric, 0.7, 20.0, 0.01, "samples"
    )
    assert status == STOPPED
    assert curve[0] == pytest.approx(ref_loss, rel=1e-10)
    np.testing.assert_allclose(Theta.ravel() - theta, ref_grad.ravel(), rtol=1e-7,
                               atol=1e-11)  # fmt: skip


def _fit(kernels, variant, X, target, s, m, layout, n_params, max_iter=30):
    theta = np.zeros(n_params)
    state = new_loop_state(n_params)
    curve = np.empty(max_iter)
    softmax = kernels is fit_softmax
    scratch = (softmax_scratch(X.shape[0], target.weights.shape[0]),) if softmax else ()
    status = getattr(kernels, variant)(
        X, target, s, theta, _settings(max_iter), cpu_metric(m, layout), m.params,
        state, curve, max_iter, *scratch,
    )  # fmt: skip
    assert status == STOPPED
    return theta, curve


@pytest.mark.parametrize(
    "dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.long)]
)
def test_fits_are_bit_identical_across_thread_counts(dtype):
    X, y, sw, Theta = _multiclass(n=12 * CHUNK_ROWS + 5, dtype=dtype, weighted=True)
    raw, s = _weights(X.shape[0], sw)
    K = Theta.shape[0]
    Y = (y[:, None] == np.arange(K)).astype(np.uint8)
    classes = make_target(Problem("multiclass", Y, y, "macro"), raw)
    labels = make_target(Problem("multilabel", Y, None, "samples"), raw)
    cases = [
        (fit_softmax, classes, Metric("f1", average="macro"), MATRIX),
        (fit_samples, labels, Metric("f1", average="samples"), 0),
    ]
    for kernels, target, m, layout in cases:
        serial, curve = _fit(kernels, "serial", X, target, s, m, layout, Theta.size)
        assert curve[-1] < curve[0]
        for n_threads in sorted({1, 2, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(n_threads)
            try:
                parallel, _ = _fit(kernels, "parallel", X, target, s, m, layout,
                                   Theta.size)  # fmt: skip
            finally:
                numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            assert np.array_equal(parallel, serial)


@njit
def _softmax_rows(Z, amplifier):
    n, K = Z.shape
    P = np.empty((n, K))
    A = np.empty((n, K))
    tops = np.empty(n, dtype=np.int64)
    for i in range(n):
        tops[i] = amplified_softmax(Z[i], K, amplifier, P[i], A[i])
    return P, A, tops


@njit
def _dz_rows(Z, V, amplifier):
    n, K = Z.shape
    out = np.empty((n, K))
    p = np.empty(K)
    a = np.empty(K)
    u = np.empty(K)
    for i in range(n):
        top = amplified_softmax(Z[i], K, amplifier, p, a)
        softmax_metric_dz(p, a, top, V[i], K, amplifier, u, out[i])
    return out


@njit
def _amplified_rows(z, amplifier):
    a = np.empty_like(z)
    h = np.empty_like(z)
    for i in range(z.shape[0]):
        a[i], h[i] = amplified(z[i], amplifier)
    return a, h


def test_two_classes_are_the_binary_approximation():
    # a = softmax(L/2 softmax(z)) of two classes is A(sigmoid(z1 - z0)), and
    # d a_1 / d z_1 its derivative.
    rng = np.random.default_rng(0)
    Z = np.column_stack([np.zeros(200), rng.uniform(-8, 8, 200)])
    for amplifier in (5.0, 20.0, 73.0):
        _, A, tops = _softmax_rows(Z, amplifier)
        a, h = _amplified_rows(Z[:, 1], amplifier)
        np.testing.assert_allclose(A[:, 1], a, rtol=1e-12, atol=1e-300)
        assert np.array_equal(tops == 1, a >= 0.5)
        dz = _dz_rows(Z, np.tile([0.0, 1.0], (200, 1)), amplifier)
        np.testing.assert_allclose(dz[:, 1], h, rtol=1e-9, atol=1e-300)


def test_softmax_jacobian_is_exact_where_a_probability_rounds_to_one():
    # Scores far apart: p_top rounds to 1, yet J v keeps the tiny terms that
    # 1 - p_top would lose.
    z = np.array([50.0, 0.0, -3.0])
    q = np.exp(z - z.max())
    q /= q.sum()
    v = np.array([1.0, 0.0, 2.0])
    out = np.empty(3)
    njit(lambda q, v, out: softmax_jvp(q, v, 0, 3, out))(q, v, out)
    exact = q * (v - q @ v)
    exact[0] = q[0] * (q[1] * (v[0] - v[1]) + q[2] * (v[0] - v[2]))
    assert out[0] != 0.0
    np.testing.assert_allclose(out, exact, rtol=1e-12)
    assert out.sum() == pytest.approx(0.0, abs=1e-30)


def test_extreme_scores_give_finite_gradients():
    Z = np.array([[1e3, -1e3, 0.0], [-700.0, 700.0, 699.0], [0.0, 0.0, 0.0]])
    for amplifier in (1.0, 20.0, 1e4):
        P, A, _ = _softmax_rows(Z, amplifier)
        dz = _dz_rows(Z, np.ones((3, 3)) * [1.0, -2.0, 0.5], amplifier)
        assert np.all(np.isfinite(P)) and np.all(np.isfinite(A))
        assert np.all(np.isfinite(dz))
        np.testing.assert_allclose(A.sum(1), 1.0)
