"""CUDA kernels against the CPU kernels and the NumPy reference.

Runs on a GPU when one is usable, and anywhere else on Numba's CUDA simulator,
which must be switched on before numba is imported::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda.py

Launch geometry is shrunk (a few threads per block, a few blocks) so that the
multi-block, grid-stride and partial-tile paths all run on tiny inputs.
"""

import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the cuda extra (numba-cuda) is not installed")

from sk_anyloss._backend import cuda_unusable_reason  # noqa: E402

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
from sk_anyloss._base import read_target  # noqa: E402
from sk_anyloss._metrics import (  # noqa: E402
    FORMULAS,
    METRIC_NAMES,
    Metric,
    resolve_metric,
)
from sk_anyloss._metrics_multi import LABELS, MATRIX  # noqa: E402
from sk_anyloss._optim import Optimizer, new_state  # noqa: E402
from sk_anyloss._settings import (  # noqa: E402
    ACTIVATION_CODES,
    SIGMOID,
    SOFTMAX,
    LinearSettings,
    MLPSettings,
)

RTOL = 1e-9


@pytest.fixture(autouse=True)
def small_launches(monkeypatch):
    monkeypatch.setattr(gpu, "THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(gpu, "MAX_BLOCKS", 3)
    monkeypatch.setattr(gpu, "TILE", 4)
    monkeypatch.setattr(gpu, "CHECK_EVERY", 4)


def _target_of(y, metric="f1", average=None):
    """The ``_base.Problem`` of labels ``y``, as an estimator reads them."""
    return read_target(y, metric, average)[1]


def _problem(n=53, d=3, dtype=np.float64, weighted=False, seed=0):
    # 53 rows: 7 tiles of 8 on 3 blocks (grid-stride), the last tile partial.
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = (rng.random(n) < 0.3).astype(np.uint8)
    sw = rng.uniform(0.0, 2.0, n) if weighted else np.ones(n)
    theta = 0.3 * rng.standard_normal(d + 1)
    return X, y, sw, theta


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_metric_device_function_is_the_registry(name):
    cases = np.array(
        [
            [0.4, 0.1, 0.2, 0.3],
            [0.9, 0.0, 0.1, 0.0],  # no predicted positives
            [0.0, 0.0, 0.0, 1.0],  # positives only
            [0.25, 0.25, 0.25, 0.25],
        ]
    )
    metric = Metric(name, 2.0)
    f = gpu.device_metric(metric)
    out = np.empty((cases.shape[0], 5))

    @cuda.jit
    def evaluate(cases, params, out):
        row = cuda.grid(1)
        if row < out.shape[0]:
            partials = cuda.local.array(4, np.float64)
            out[row, 0] = f(cases[row], 1.0, params, partials)
            for q in range(4):
                out[row, q + 1] = partials[q]

    evaluate[1, 8](cases, metric.params, out)
    for row, case in enumerate(cases):
        expected = FORMULAS[name](*case, 2.0)
        np.testing.assert_allclose(out[row], expected, rtol=RTOL, atol=1e-12)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_linear_pass_and_warm_up_match_the_cpu(dtype, weighted):
    X, y, sw, theta = _problem(dtype=dtype, weighted=weighted)
    problem = _target_of(y)
    cpu_backend, gpu_backend = cpu.LinearBackend(X, sw), gpu.LinearBackend(X, sw)
    target = cpu_backend.target(problem)
    gpu_target = gpu_backend.target(problem)
    np.testing.assert_array_equal(gpu_target.Y.copy_to_host(), target.Y)
    np.testing.assert_array_equal(gpu_target.pos.copy_to_host(), target.pos)
    assert gpu_target.scale == target.scale
    # The CPU multiplies float32 data in float32 (its products and
    # amplification); the GPU kernels compute in float64.
    rtol, atol = (RTOL, 1e-15) if dtype == np.float64 else (1e-5, 1e-9)
    for logistic in (False, True):
        total = gpu_backend.pass_sums(gpu_target, theta, 73.0, logistic)
        part = cpu.linear_pass.serial(X, target.Y, sw / sw.sum(), theta, 73.0, logistic)
        np.testing.assert_allclose(total, cpu.reduce_chunks(part), rtol=rtol, atol=atol)
    with cpu_backend.log_loss(target, 0.1, True) as f:
        expected = f(theta)
    with gpu_backend.log_loss(gpu_target, 0.1, True) as f:
        got = f(theta)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def _multi_problem(kind, n=53, d=3, weighted=True, seed=1):
    """Data with a multiclass (3 classes) or multilabel (3 labels) target."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    s = X @ np.array([1.5, -1.0, 0.5])
    if kind == "multiclass":
        y = np.digitize(s, np.quantile(s, [0.25, 0.6]))
    else:
        y = np.column_stack([s > 0, X[:, 1] > 0.3, X[:, 2] < -0.5]).astype(int)
    sw = rng.uniform(0.0, 2.0, n) if weighted else np.ones(n)
    return X, y, sw


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_multi_output_warm_up_matches_the_cpu(kind):
    X, y, sw = _multi_problem(kind)
    problem = _target_of(y)
    rng = np.random.default_rng(3)
    theta = 0.3 * rng.standard_normal(problem.n_outputs * (X.shape[1] + 1))
    results = []
    for kernels in (cpu, gpu):
        backend = kernels.LinearBackend(X, sw)
        with backend.log_loss(backend.target(problem), 0.1, True) as f:
            results.append(f(theta))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-15)


def _linear_settings(solver, max_iter, tol):
    return LinearSettings(
        amplifier=73.0,
        alpha=0.01,
        fit_intercept=True,
        optimizer=Optimizer(0 if solver == "adam" else 1, 0.05, 0.0, 0.9, 0.999, 1e-8),
        max_iter=max_iter,
        use_tol=tol is not None,
        tol=0.0 if tol is None else tol,
        n_iter_no_change=3,
    )


@pytest.mark.parametrize(
    "solver, weighted, tol, metric",
    [
        ("adam", False, None, "f1"),
        ("gd", True, None, "mcc"),
        ("adam", True, 0.05, "f1"),
    ],
)
def test_linear_fit_follows_the_cpu_loop(solver, weighted, tol, metric):
    # float64 data: the CPU multiplies float32 data in float32, the GPU in
    # float64 (the passes on float32 data are compared above).
    X, y, sw, _ = _problem(dtype=np.float64, weighted=weighted)
    settings = _linear_settings(solver, 10, tol)
    results = []
    for kernels in (cpu, gpu):
        backend = kernels.LinearBackend(X, sw)
        theta = np.zeros(X.shape[1] + 1)
        status, curve = backend.fit(
            backend.target(_target_of(y)), theta, settings, Metric(metric, 2.0)
        )
        results.append((status, theta, curve))
    (status_c, theta_c, curve_c), (status_g, theta_g, curve_g) = results
    assert status_g == status_c == cpu.STOPPED
    assert len(curve_g) == len(curve_c)
    if tol is not None:
        assert len(curve_c) < 10  # the stopping rule ran, on the device
    np.testing.assert_allclose(theta_g, theta_c, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(curve_g, curve_c, rtol=1e-9)


def youden(tn, fp, fn, tp):
    if tp > 2 * fp:
        return tp / (tp + fn) + tn / (tn + fp) - 1
    return math.sqrt(tp / (tp + fn) * tn / (tn + fp)) - 0.5


@pytest.mark.parametrize("weighted", [False, True])
def test_user_metric_fits_follow_the_cpu(weighted):
    X, y, sw, _ = _problem(dtype=np.float64, weighted=weighted)
    settings = _linear_settings("adam", 8, None)
    results = []
    for kernels in (cpu, gpu):
        backend = kernels.LinearBackend(X, sw)
        theta = np.zeros(X.shape[1] + 1)
        metric = resolve_metric(youden)
        status, curve = backend.fit(
            backend.target(_target_of(y)), theta, settings, metric
        )
        results.append((theta, curve))
    # Sums in another order: Adam's first steps, m / sqrt(v), magnify the last
    # bits of small gradient components.
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-9)
    X, Y, sw, rng = _mlp_problem(9, 3, 1, weighted, np.float64)
    dims = np.array([3, 2, 1], dtype=np.int64)
    theta = 0.5 * rng.standard_normal(int(((dims[:-1] + 1) * dims[1:]).sum()))
    settings = _mlp_settings(2, 0.5, 9, 0, "binary", 1)
    out = []
    for kernels in (cpu, gpu):
        state = new_state(theta.shape[0])
        t = theta.copy()
        loss = kernels.MLPBackend(X, Y, sw).epoch(
            np.arange(9), t, dims, settings, resolve_metric(youden), state
        )
        out.append((t, loss))
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=1e-8, atol=1e-12)
    assert out[1][1] == pytest.approx(out[0][1], rel=1e-9)


def test_linear_fit_reports_divergence():
    X, y, sw, _ = _problem()
    backend = gpu.LinearBackend(X, sw)
    theta = np.full(X.shape[1] + 1, np.nan)
    status, curve = backend.fit(
        backend.target(_target_of(y)), theta, _linear_settings("adam", 5, None),
        Metric("f1"),
    )  # fmt: skip
    assert status == -1 and len(curve) == 0


def _mlp_problem(n, d, K, weighted, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    Y = (rng.random((n, K)) < 0.4).astype(np.uint8)
    sw = rng.uniform(0.0, 2.0, n) if weighted else np.ones(n)
    return X, Y, sw, rng


# Output layers: sigmoid units with the metric of each label's matrix
# averaged ("macro", ...) or of each row ("samples"), the binary target's 2 x 2
# matrix averaged over both classes ("binary-macro"), a softmax ("softmax").
HEADS = ["macro", "micro", "weighted", "samples", "binary-macro", "softmax"]


def _mlp_settings(activation, log_loss, batch_size, solver, head, K):
    layout = MATRIX if head in ("softmax", "binary-macro") else LABELS
    return MLPSettings(
        activation, SOFTMAX if head == "softmax" else SIGMOID, layout,
        2 if head == "binary-macro" else K, head == "samples", 20.0, log_loss,
        0.5, batch_size, Optimizer(solver, 0.01, 0.9, 0.9, 0.999, 1e-8),
    )  # fmt: skip


def _head_metric(metric, head):
    average = {"binary": None, "softmax": "macro", "binary-macro": "macro"}
    return Metric(metric, 2.0, average.get(head, head))


def _mlp_epochs(backend, theta, dims, activation, solver, batch_size, orders,
                metric="mcc", log_loss=0.7, head="macro"):  # fmt: skip
    theta = theta.copy()
    settings = _mlp_settings(
        ACTIVATION_CODES[activation], log_loss, batch_size, solver, head,
        int(dims[-1]),
    )  # fmt: skip
    m = _head_metric(metric, head)
    state = new_state(theta.shape[0])
    losses = [backend.epoch(order, theta, dims, settings, m, state) for order in orders]
    return theta, state.m, state.v, state.steps[0], losses


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
        theta, dims, activation, {"adam": 0, "sgd": 1}[solver], batch_size, orders,
        "mcc", log_loss,
    )  # fmt: skip
    expected = _mlp_epochs(cpu.MLPBackend(X, Y, sw), *args)
    got = _mlp_epochs(gpu.MLPBackend(X, Y, sw), *args)
    for a, b in zip(got[:3], expected[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    assert got[3] == expected[3]
    np.testing.assert_allclose(got[4], expected[4], rtol=1e-9)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_mlp_epoch_follows_the_cpu_epoch_for_every_metric(metric):
    X, Y, sw, rng = _mlp_problem(9, 3, 1, True, np.float32)
    dims = np.array([3, 2, 1], dtype=np.int64)
    theta = 0.5 * rng.standard_normal(int(((dims[:-1] + 1) * dims[1:]).sum()))
    args = (theta, dims, "tanh", 0, 9, [np.arange(9)], metric)
    expected = _mlp_epochs(cpu.MLPBackend(X, Y, sw), *args)
    got = _mlp_epochs(gpu.MLPBackend(X, Y, sw), *args)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got[4], expected[4], rtol=1e-9)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("metric", ["f1", "mcc"])
def test_mlp_epoch_of_every_output_layer_follows_the_cpu(head, metric):
    n, K = 13, 1 if head == "binary-macro" else 3
    X, Y, sw, rng = _mlp_problem(n, 4, K, True, np.float32)
    if head == "softmax":
        Y = np.eye(K, dtype=np.uint8)[rng.integers(0, K, n)]
    dims = np.array([4, 5, K], dtype=np.int64)
    theta = 0.5 * rng.standard_normal(int(((dims[:-1] + 1) * dims[1:]).sum()))
    orders = [rng.permutation(n) for _ in range(2)]
    args = (theta, dims, "tanh", 0, 5, orders, metric, 0.7, head)
    expected = _mlp_epochs(cpu.MLPBackend(X, Y, sw), *args)
    got = _mlp_epochs(gpu.MLPBackend(X, Y, sw), *args)
    for a, b in zip(got[:3], expected[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got[4], expected[4], rtol=1e-9)


def test_mlp_softmax_epoch_with_a_weightless_class_in_a_batch_follows_the_cpu():
    # The first batch holds class 2 at weight 0 only: the log-loss term must
    # skip those rows (their class's mass in the batch is 0), not give NaN.
    n, K = 13, 3
    X, _, sw, rng = _mlp_problem(n, 4, K, True, np.float32)
    y = np.concatenate([[2, 2, 2], rng.integers(0, 2, n - 3)])
    Y = np.eye(K, dtype=np.uint8)[y]
    sw[1:3] = 0.0
    dims = np.array([4, 5, K], dtype=np.int64)
    theta = 0.5 * rng.standard_normal(int(((dims[:-1] + 1) * dims[1:]).sum()))
    orders = [np.r_[1, 2, 3, 4, 5, 0, 6:n]]
    args = (theta, dims, "tanh", 0, 5, orders, "f1", 0.7, "softmax")
    expected = _mlp_epochs(cpu.MLPBackend(X, Y, sw), *args)
    got = _mlp_epochs(gpu.MLPBackend(X, Y, sw), *args)
    assert np.all(np.isfinite(expected[0])) and np.all(np.isfinite(expected[4]))
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got[4], expected[4], rtol=1e-9)


@pytest.mark.parametrize(
    "kind, metric, average",
    [
        ("multiclass", "f1", None),
        ("multiclass", "mcc", None),
        ("multiclass", "jaccard", "weighted"),
        ("multilabel", "f1", None),
        ("multilabel", "f1", "micro"),
        ("multilabel", "fbeta", "weighted"),
        ("multilabel", "f1", "samples"),
        ("binary", "f1", "macro"),
    ],
)
def test_multi_output_fit_follows_the_cpu_loop(kind, metric, average):
    X, y, sw = _multi_problem("multiclass" if kind == "binary" else kind)
    if kind == "binary":
        y = (y == 2).astype(int)
    problem = _target_of(y, metric, average)
    settings = _linear_settings("adam", 6, None)
    m = resolve_metric(metric, 2.0, problem.average)
    results = []
    for kernels in (cpu, gpu):
        backend = kernels.LinearBackend(X, sw)
        theta = np.zeros(problem.n_outputs * (X.shape[1] + 1))
        status, curve = backend.fit(backend.target(problem), theta, settings, m)
        results.append((status, theta, curve))
    (status_c, theta_c, curve_c), (status_g, theta_g, curve_g) = results
    assert status_g == status_c == cpu.STOPPED
    np.testing.assert_allclose(theta_g, theta_c, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(curve_g, curve_c, rtol=1e-9)


def test_mlp_epoch_reports_divergence():
    X, Y, sw, rng = _mlp_problem(9, 5, 1, False, np.float64)
    dims = np.array([5, 2, 1], dtype=np.int64)
    theta = np.full(int(((dims[:-1] + 1) * dims[1:]).sum()), np.nan)
    got = _mlp_epochs(gpu.MLPBackend(X, Y, sw), theta, dims, "relu", 0, 9, [
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


@pytest.mark.parametrize("n_classes", [2, 3, "multilabel"])
def test_linear_classifier_on_cuda_predicts_as_on_cpu(n_classes):
    X, y = _data(n_classes=2 if n_classes == "multilabel" else n_classes)
    if n_classes == "multilabel":
        y = np.column_stack([y, X[:, 1] > 0, X[:, 2] < 0]).astype(int)
    params = _short(dict(max_iter=12 if n_classes == 2 else 4, tol=None, metric="f1"))
    sw = np.linspace(0.5, 1.5, X.shape[0])
    cpu_model = AnyLossClassifier(**params).fit(X, y, sample_weight=sw)
    gpu_model = AnyLossClassifier(device="cuda", **params).fit(X, y, sample_weight=sw)
    assert gpu_model.device == "cuda"  # the parameter is never rewritten
    np.testing.assert_array_equal(gpu_model.predict(X), cpu_model.predict(X))
    np.testing.assert_allclose(gpu_model.coef_, cpu_model.coef_, rtol=1e-8)
    np.testing.assert_allclose(gpu_model.loss_curve_, cpu_model.loss_curve_, rtol=1e-9)
    assert type(gpu_model.coef_) is np.ndarray


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_mlp_classifier_on_cuda_predicts_as_on_cpu(kind):
    X, y = _data(n=24, n_classes=3 if kind == "multiclass" else 2)
    if kind == "multilabel":
        y = np.column_stack([y, X[:, 1] > 0]).astype(int)
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
