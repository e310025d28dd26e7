import os
import subprocess
import sys

import numpy as np
import pytest

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier, _device


@pytest.fixture
def no_cuda_package(monkeypatch):
    """Pretend the cuda extra is not installed."""
    find_spec = _device.importlib.util.find_spec
    monkeypatch.setattr(
        _device.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "numba_cuda" else find_spec(name, *args),
    )
    _device.cuda_unusable_reason.cache_clear()
    yield
    _device.cuda_unusable_reason.cache_clear()


def test_cpu_resolves_without_looking_for_cuda(no_cuda_package):
    assert _device.resolve_device("cpu") == "cpu"


def test_auto_falls_back_to_cpu(no_cuda_package):
    assert _device.resolve_device("auto") == "cpu"


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


def _run(code, **env_changes):
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
    out = _run(code, CUDA_VISIBLE_DEVICES="")
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
    out = _run(code)
    assert out.returncode == 0, out.stderr
