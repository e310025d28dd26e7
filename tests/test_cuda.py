"""CUDA kernels against the CPU kernels and the NumPy reference.

Runs on a GPU when one is usable, and anywhere else on Numba's CUDA simulator,
which must be switched on before numba is imported::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda.py

Launch geometry is shrunk (a few threads per block, a few blocks) so that the
multi-block, grid-stride and partial-tile paths all run on tiny inputs.
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the cuda extra (numba-cuda) is not installed")

from sk_anyloss._device import cuda_unusable_reason  # noqa: E402

if cuda_unusable_reason() is not None:
    pytest.skip(
        f"CUDA is not usable ({cuda_unusable_reason()}); run these tests under "
        "Numba's CUDA simulator with NUMBA_ENABLE_CUDASIM=1",
        allow_module_level=True,
    )

from numba import cuda  # noqa: E402

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier  # noqa: E402
from sk_anyloss import _kernels_cpu as cpu  # noqa: E402
from sk_anyloss import _kernels_cuda as gpu  # noqa: E402
from sk_anyloss._metrics import (  # noqa: E402
    METRIC_CODES,
    METRIC_NAMES,
    metric_and_partials_py,
    metric_code,
)
from sk_anyloss._reference import loss_and_gradient  # noqa: E402

RTOL = 1e-9


@pytest.fixture(autouse=True)
def small_launches(monkeypatch):
    monkeypatch.setattr(gpu, "THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(gpu, "MAX_BLOCKS", 3)
    monkeypatch.setattr(gpu, "TILE", 4)
    monkeypatch.setattr(gpu, "CHECK_EVERY", 4)


def _problem(n=53, d=3, dtype=np.float64, weighted=False, seed=0):
    # 53 rows: 7 tiles of 8 on 3 blocks (grid-stride), the last tile partial.
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = (rng.random(n) < 0.3).astype(np.uint8)
    sw = None
    if weighted:
        sw = rng.uniform(0.0, 2.0, n)
        sw /= sw.sum()
    theta = 0.3 * rng.standard_normal(d + 1)
    return X, y, sw, theta


def _totals(y, sw):
    s = np.full(y.shape[0], 1.0 / y.shape[0]) if sw is None else sw
    return s[y == 1].sum(), s[y == 0].sum()


def test_metric_device_function_is_the_registry():
    cases = np.array(
        [
            [0.4, 0.1, 0.2, 0.3],
            [0.9, 0.0, 0.1, 0.0],  # no predicted positives
            [0.0, 0.0, 0.0, 1.0],  # positives only
            [0.25, 0.25, 0.25, 0.25],
        ]
    )
    codes = sorted(METRIC_CODES.values())
    out = np.empty((len(codes), cases.shape[0], 5))

    @cuda.jit
    def evaluate(cases, beta, out):
        c = cuda.grid(1)
        if c < out.shape[0] * out.shape[1]:
            code = c // out.shape[1]
            row = c - code * out.shape[1]
            r = gpu._metric_and_partials(
                code, cases[row, 0], cases[row, 1], cases[row, 2], cases[row, 3], beta
            )
            for q in range(5):
                out[code, row, q] = r[q]

    evaluate[3, 16](cases, 2.0, out)
    for code in codes:
        for row, case in enumerate(cases):
            expected = metric_and_partials_py(code, *case, 2.0)
            np.testing.assert_allclose(out[code, row], expected, rtol=RTOL, atol=1e-12)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_linear_epoch_matches_cpu_and_reference(dtype, weighted):
    X, y, sw, theta = _problem(dtype=dtype, weighted=weighted)
    pos, neg = _totals(y, sw)
    sw_kernel = np.empty(0) if sw is None else sw
    for metric in METRIC_NAMES:
        args = (pos, neg, metric_code(metric), 2.0, 73.0, 0.1, True)
        loss, grad, total = gpu.loss_grad_linear(X, y, sw_kernel, theta, *args)
        loss_c, grad_c, total_c = cpu.loss_grad_linear.serial(
            X, y, sw_kernel, theta, *args
        )
        loss_r, grad_r = loss_and_gradient(
            X, y, sw, theta, metric, 2.0, 73.0, alpha=0.1
        )
        np.testing.assert_allclose(total, total_c, rtol=RTOL, atol=1e-15)
        np.testing.assert_allclose(loss, loss_c, rtol=RTOL)
        np.testing.assert_allclose(grad, grad_c, rtol=RTOL, atol=1e-14)
        np.testing.assert_allclose(loss, loss_r, rtol=1e-7)
        np.testing.assert_allclose(grad, grad_r, rtol=1e-6, atol=1e-12)
    # The log-loss warm-up of the linear model goes through the same kernels.
    args = (pos, neg, cpu.WARM_UP, 1.0, 1.0, 0.1, True)
    got = gpu.loss_grad_linear(X, y, sw_kernel, theta, *args)
    expected = cpu.loss_grad_linear.serial(X, y, sw_kernel, theta, *args)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-15)


def _fit_args(X, y, sw, metric, solver, max_iter, tol):
    pos, neg = _totals(y, sw)
    return [
        X,
        y,
        np.empty(0) if sw is None else sw,
        np.zeros(X.shape[1] + 1),
        pos,
        neg,
        metric_code(metric),
        1.0,
        73.0,
        0.01,
        True,
        cpu.SOLVER_CODES[solver],
        0.05,
        0.9,
        0.999,
        1e-8,
        max_iter,
        tol is not None,
        0.0 if tol is None else tol,
        3,
        np.full(max_iter, np.nan),
    ]


@pytest.mark.parametrize(
    "solver, weighted, tol, metric",
    [
        ("adam", False, None, "f1"),
        ("gd", True, None, "mcc"),
        ("adam", True, 0.05, "f1"),
    ],
)
def test_linear_fit_follows_the_cpu_loop(solver, weighted, tol, metric):
    X, y, sw, _ = _problem(dtype=np.float32, weighted=weighted)
    cpu_args = _fit_args(X, y, sw, metric, solver, 10, tol)
    gpu_args = _fit_args(X, y, sw, metric, solver, 10, tol)
    n_cpu = cpu.fit_linear.serial(*cpu_args)
    n_gpu = gpu.LinearFit(X, gpu_args[2])(*gpu_args)
    assert n_gpu == n_cpu
    if tol is not None:
        assert n_cpu < 10  # the stopping rule ran, on the device
    np.testing.assert_allclose(gpu_args[3], cpu_args[3], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(gpu_args[-1][:n_gpu], cpu_args[-1][:n_cpu], rtol=1e-9)


def test_linear_fit_reports_divergence():
    X, y, sw, _ = _problem()
    args = _fit_args(X, y, sw, "f1", "adam", 5, None)
    args[3][:] = np.nan
    assert gpu.LinearFit(X, args[2])(*args) == -1


def _mlp_problem(n, d, K, weighted, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    Y = (rng.random((n, K)) < 0.4).astype(np.uint8)
    sw = np.empty(0)
    if weighted:
        sw = rng.uniform(0.0, 2.0, n)
        sw /= sw.sum()
    return X, Y, sw, rng


def _mlp_epochs(
    epoch,
    X,
    Y,
    sw,
    theta,
    dims,
    activation,
    solver,
    batch_size,
    orders,
    metric="mcc",
    log_loss=0.7,
):
    theta = theta.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    t = 0
    losses = []
    for order in orders:
        loss, t = epoch(
            X, Y, sw, order, theta, dims, activation, metric_code(metric), 2.0,
            20.0, log_loss, 0.5, batch_size, solver, 0.01, 0.9, 0.9, 0.999, 1e-8,
            m, v, t,
            3.0 if sw.shape[0] else float(X.shape[0]),
        )  # fmt: skip
        losses.append(loss)
    return theta, m, v, t, losses


@pytest.mark.parametrize(
    "activation, dtype, weighted, solver, K, n, batch_size, epochs, log_loss",
    [
        ("identity", np.float64, False, "adam", 1, 9, 9, 1, 0.7),
        ("logistic", np.float32, False, "adam", 1, 9, 9, 1, 0.0),
        ("tanh", np.float64, True, "sgd", 1, 9, 9, 1, 0.7),
        ("relu", np.float32, True, "adam", 2, 13, 5, 2, 0.7),  # partial last batch
    ],
)
def test_mlp_epoch_follows_the_cpu_epoch(
    activation, dtype, weighted, solver, K, n, batch_size, epochs, log_loss
):
    X, Y, sw, rng = _mlp_problem(n, 5, K, weighted, dtype)
    dims = np.array([5, 6, K], dtype=np.int64)
    theta = 0.5 * rng.standard_normal(int(((dims[:-1] + 1) * dims[1:]).sum()))
    orders = [rng.permutation(n) for _ in range(epochs)]
    args = (
        theta, dims, cpu.ACTIVATION_CODES[activation], {"adam": 0, "sgd": 1}[solver],
        batch_size, orders, "mcc", log_loss,
    )  # fmt: skip
    expected = _mlp_epochs(cpu.mlp_epoch, X, Y, sw, *args)
    got = _mlp_epochs(gpu.MLPEpoch(X, Y, sw), X, Y, sw, *args)
    for a, b in zip(got[:3], expected[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    assert got[3] == expected[3]
    np.testing.assert_allclose(got[4], expected[4], rtol=1e-9)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_mlp_epoch_follows_the_cpu_epoch_for_every_metric(metric):
    X, Y, sw, rng = _mlp_problem(9, 3, 1, True, np.float32)
    dims = np.array([3, 2, 1], dtype=np.int64)
    theta = 0.5 * rng.standard_normal(int(((dims[:-1] + 1) * dims[1:]).sum()))
    args = (theta, dims, 2, 0, 9, [np.arange(9)], metric)
    expected = _mlp_epochs(cpu.mlp_epoch, X, Y, sw, *args)
    got = _mlp_epochs(gpu.MLPEpoch(X, Y, sw), X, Y, sw, *args)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got[4], expected[4], rtol=1e-9)


def test_mlp_epoch_reports_divergence():
    X, Y, sw, rng = _mlp_problem(9, 5, 1, False, np.float64)
    dims = np.array([5, 2, 1], dtype=np.int64)
    theta = np.full(int(((dims[:-1] + 1) * dims[1:]).sum()), np.nan)
    got = _mlp_epochs(gpu.MLPEpoch(X, Y, sw), X, Y, sw, theta, dims, 3, 0, 9, [
        np.arange(9)
    ])  # fmt: skip
    assert np.isnan(got[4][0])


def _short(params):
    """Few iterations of everything, a warm-up included, for the simulator."""
    return {**params, "warmup_iter": 2}


def _data(n=60, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    scores = X @ np.array([1.5, -1.0, 0.5])
    y = np.digitize(scores, np.quantile(scores, np.linspace(0, 1, n_classes + 1)[1:-1]))
    return X, y


@pytest.mark.parametrize("n_classes", [2, 3])
def test_linear_classifier_on_cuda_predicts_as_on_cpu(n_classes):
    X, y = _data(n_classes=n_classes)
    params = _short(dict(max_iter=12 if n_classes == 2 else 4, tol=None, metric="f1"))
    sw = np.linspace(0.5, 1.5, X.shape[0])
    cpu_model = AnyLossClassifier(**params).fit(X, y, sample_weight=sw)
    gpu_model = AnyLossClassifier(device="cuda", **params).fit(X, y, sample_weight=sw)
    assert gpu_model.device == "cuda"  # the parameter is never rewritten
    np.testing.assert_array_equal(gpu_model.predict(X), cpu_model.predict(X))
    np.testing.assert_allclose(gpu_model.coef_, cpu_model.coef_, rtol=1e-8)
    np.testing.assert_allclose(gpu_model.loss_curve_, cpu_model.loss_curve_, rtol=1e-9)
    assert type(gpu_model.coef_) is np.ndarray


def test_mlp_classifier_on_cuda_predicts_as_on_cpu():
    X, y = _data(n=24)
    params = dict(hidden_layer_sizes=(3,), batch_size=12, max_iter=2, random_state=0)
    cpu_model = AnyLossMLPClassifier(**params).fit(X, y)
    gpu_model = AnyLossMLPClassifier(device="cuda", **params).fit(X, y)
    np.testing.assert_array_equal(gpu_model.predict(X), cpu_model.predict(X))
    for a, b in zip(gpu_model.coefs_, cpu_model.coefs_):
        assert type(a) is np.ndarray
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(gpu_model.loss_curve_, cpu_model.loss_curve_, rtol=1e-9)


def test_model_trained_on_cuda_predicts_without_cuda(tmp_path):
    X, y = _data()
    model = AnyLossClassifier(device="cuda", **_short(dict(max_iter=3, tol=None)))
    model.fit(X, y)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    np.save(tmp_path / "X.npy", X)
    code = (
        "import pickle, sys, numpy as np\n"
        f"model = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"print(model.predict(np.load({str(tmp_path / 'X.npy')!r})).tolist())\n"
        "assert 'numba.cuda' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert eval(out.stdout) == model.predict(X).tolist()
