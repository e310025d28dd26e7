"""Which device trains a model: the one place that resolves ``device``.

``"cpu"`` never touches CUDA (not even an import of ``numba.cuda``).
``"cuda"`` needs the ``numba-cuda`` package (the ``cuda`` extra) and a usable
GPU, or Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``); without them it
raises an error that says why, and never falls back.  ``"auto"`` is
``"cuda"`` where that would work and ``"cpu"`` otherwise.
"""

import importlib.util
import os
from functools import lru_cache

DEVICES = ("cpu", "cuda", "auto")

_INSTALL_HINT = (
    'Install the CUDA backend with pip install "sk_anyloss[cuda]"; the CUDA '
    "libraries come with the NVIDIA driver and, for example, pip install "
    '"numba-cuda[cu12]" (or "[cu13]", to match the driver). Or use device="cpu".'
)


@lru_cache(maxsize=1)
def cuda_unusable_reason():
    """Why the CUDA backend cannot run here, or ``None`` if it can."""
    if importlib.util.find_spec("numba_cuda") is None:
        return "the numba-cuda package is not installed."
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - a broken installation
        return f"numba.cuda cannot be imported ({exc})."
    if cuda.is_available():
        return None
    error = cuda.cuda_error()
    detail = " ".join(str(error).split()) if error else "no CUDA GPU was found."
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        detail += " (CUDA_VISIBLE_DEVICES is set to an empty string.)"
    return detail


def resolve_device(device):
    """``"cpu"`` or ``"cuda"``: where an estimator with ``device`` trains."""
    if device == "cpu":
        return "cpu"
    reason = cuda_unusable_reason()
    if reason is None:
        return "cuda"
    if device == "auto":
        return "cpu"
    raise RuntimeError(
        f'device="cuda" was requested, but CUDA cannot be used: {reason} '
        + _INSTALL_HINT
    )


def cuda_kernels():
    """The CUDA kernels module (imported on first use only)."""
    from . import _kernels_cuda

    return _kernels_cuda
