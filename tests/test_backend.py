"""The backends' policy: devices, the threading layer (fork after a fit, fits
from several threads), BLAS threads."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier, _backend

FORK_SCRIPT = textwrap.dedent(
    """
    import multiprocessing
    import numba
    import numpy as np
    from sk_anyloss import AnyLossClassifier
    from sk_anyloss._backend import WORKQUEUE_MIN_ENTRIES

    rng = np.random.default_rng(0)
    n = WORKQUEUE_MIN_ENTRIES // 4 + 1000  # parallel on every layer
    X = rng.standard_normal((n, 8))
    y = (X[:, 0] + rng.standard_normal(n) > 1.5).astype(int)

    def fit(_):
        return AnyLossClassifier(max_iter=20, tol=None).fit(X, y).coef_

    parent = fit(None)  # a parallel region runs in the parent first
    print("layer", numba.threading_layer())
    with multiprocessing.get_context("fork").Pool(2) as pool:
        children = pool.map(fit, range(2))
    assert all(np.array_equal(c, parent) for c in children), "child differs"
    print("fork ok")
    """
)


def _run(script, **env):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREAD")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", script],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method: Linux only")
@pytest.mark.parametrize("layer", [None, "omp", "workqueue"])
def test_fit_in_forked_child_after_fit_in_parent(layer):
    env = {} if layer is None else {"NUMBA_THREADING_LAYER": layer}
    result = _run(FORK_SCRIPT, **env)
    if layer == "omp" and "No threading layer could be loaded" in result.stderr:
        pytest.skip("this Numba build has no OpenMP layer")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fork ok" in result.stdout
    if layer is None:  # Numba's own choice
        assert any(
            f"layer {name}" in result.stdout for name in ("tbb", "omp", "workqueue")
        )
    else:
        assert f"layer {layer}" in result.stdout


def test_import_leaves_numbas_choice_of_layer_alone():
    script = "import numba; before = list(numba.config.THREADING_LAYER_PRIORITY); "
    script += "import sk_anyloss; "
    script += "assert numba.config.THREADING_LAYER_PRIORITY == before; print('ok')"
    result = _run(script)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_user_choice_of_layer_is_respected():
    result = _run(
        "import numba, sk_anyloss; print(numba.config.THREADING_LAYER_PRIORITY)",
        NUMBA_THREADING_LAYER_PRIORITY="omp tbb workqueue",
    )
    assert result.returncode == 0, result.stderr
    assert "['omp', 'tbb', 'workqueue']" in result.stdout


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_warm_up_holds_blas_to_one_thread_while_the_parallel_kernel_runs(
    monkeypatch,
):
    import numba

    from sk_anyloss import _linear
    from sk_anyloss._backend import PARALLEL_MIN_ENTRIES

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one CPU: the parallel kernel never runs")
    before = _blas_threads()
    seen = []
    original = _linear.lbfgs_warm_up

    def spy(loss_and_gradient, theta, max_iter):
        seen.append(_blas_threads())
        return original(loss_and_gradient, theta, max_iter)

    monkeypatch.setattr(_linear, "lbfgs_warm_up", spy)
    rng = np.random.default_rng(0)
    n = PARALLEL_MIN_ENTRIES // 4 + 1000
    X = rng.standard_normal((n, 4))
    y = (X[:, 0] + rng.standard_normal(n) > 1).astype(int)
    numba.set_num_threads(2)
    try:
        AnyLossClassifier(max_iter=3).fit(X, y)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert seen and all(t == 1 for t in seen[0]), seen
    assert _blas_threads() == before  # restored afterwards


# --- devices ---------------------------------------------------------------


@pytest.fixture
def no_cuda_package(monkeypatch):
    """Pretend the cuda extra is not installed."""
    find_spec = _backend.importlib.util.find_spec
    monkeypatch.setattr(
        _backend.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "numba_cuda" else find_spec(name, *args),
    )
    _backend.cuda_unusable_reason.cache_clear()
    yield
    _backend.cuda_unusable_reason.cache_clear()


def test_cpu_resolves_without_looking_for_cuda(no_cuda_package):
    assert _backend.resolve_device("cpu") == "cpu"


def test_auto_falls_back_to_cpu(no_cuda_package):
    assert _backend.resolve_device("auto") == "cpu"


@pytest.mark.parametrize("Estimator", [AnyLossClassifier, AnyLossMLPClassifier])
def test_cuda_without_the_extra_says_how_to_fix_it(no_cuda_package, Estimator):
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    model = Estimator(device="cuda")
    with pytest.raises(RuntimeError, match=r"numba-cuda package is not installed"):
        model.fit(X, y)
    assert model.device == "cuda"
    model.set_params(device="auto").fit(X, y)  # trains on the CPU
    assert model.device == "auto"


def _run_without_cudasim(code, **env_changes):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(env_changes)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )


def test_cuda_without_a_gpu_raises_a_clear_error():
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this holds on every machine.
    code = """
import numpy as np
from sk_anyloss import AnyLossClassifier
X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
AnyLossClassifier(device="auto").fit(X, y)
try:
    AnyLossClassifier(device="cuda").fit(X, y)
except RuntimeError as exc:
    print(exc)
else:
    raise SystemExit("no error")
"""
    out = _run_without_cudasim(code, CUDA_VISIBLE_DEVICES="")
    assert out.returncode == 0, out.stderr
    message = out.stdout
    assert 'device="cuda" was requested, but CUDA cannot be used' in message
    assert "sk_anyloss[cuda]" in message and "driver" in message
    assert 'device="cpu"' in message


def test_cpu_training_never_imports_numba_cuda():
    code = """
import sys
import numpy as np
from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
AnyLossClassifier(max_iter=5).fit(X, y).predict(X)
AnyLossMLPClassifier(hidden_layer_sizes=(2,), max_iter=2).fit(X, y).predict(X)
assert "numba.cuda" not in sys.modules, "numba.cuda was imported"
assert "sk_anyloss._kernels_cuda" not in sys.modules
"""
    out = _run_without_cudasim(code)
    assert out.returncode == 0, out.stderr
