"""Where kernels run: the one place that decides the device, the threads and
the threading layer, and makes the backend an estimator trains with.

An estimator asks :func:`linear_backend` or :func:`mlp_backend` for a backend
of its data and never branches on the device itself.  Every backend of a model
has the same small protocol (``_kernels_cpu.LinearBackend`` and
``_kernels_cuda.LinearBackend``, ...): it takes the data once, hides how its
kernels run, and is handed the fit's settings record and metric.

Devices: ``"cpu"`` never touches CUDA (not even an import of ``numba.cuda``).
``"cuda"`` needs the ``numba-cuda`` package (the ``cuda`` extra) and a usable
GPU, or Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``); without them it
raises an error that says why, and never falls back.  ``"auto"`` is
``"cuda"`` where that would work and ``"cpu"`` otherwise.

Threads: Numba's threading layers differ in exactly the two situations a scikit-learn
user meets, and in what a parallel region costs to start:

* ``omp`` (GNU OpenMP, the default pick of Numba's pip wheels on Linux) is
  thread-safe, but a process forked after it has run (``multiprocessing``'s
  default start method on Linux) is killed on its next parallel region;
* ``workqueue`` survives ``fork``, but aborts the whole process when two Python
  threads enter parallel regions at once, and starting a region costs about
  70 us (under 2 us with ``omp``; measured on 2 cores, benchmarks/README.md);
* ``tbb`` is safe in both cases, but is an extra package.

Policy: sk_anyloss leaves the choice to Numba (``tbb``, then ``omp``, then
``workqueue``, unless the user has chosen) and makes every layer safe.  On
``omp`` in a forked child the serial build runs.  On ``workqueue`` only one
thread at a time runs a parallel kernel (a thread that finds it busy runs the
serial build instead), and only for passes large enough to repay the start.
Serial and parallel builds give bit-identical results, so this choice never
changes a model.
"""

import importlib.util
import os
import threading
from contextlib import contextmanager, nullcontext
from functools import lru_cache

import numba
from scipy.sparse import issparse
from threadpoolctl import ThreadpoolController

# Below this many matrix entries per epoch, starting threads costs more than
# it saves. On 2 cores with nothing else running the crossover measured
# between 20,000 and 30,000 entries with ``omp`` (an empty parallel region:
# 1.7 us) and above 800,000 with ``workqueue`` (71 us)
# (benchmarks/parallel_threshold.py, figures in benchmarks/README.md);
# re-measure on larger machines.
PARALLEL_MIN_ENTRIES = 32_768
WORKQUEUE_MIN_ENTRIES = 1_000_000

_parallel_lock = threading.Lock()
_forked_child = False


def _after_fork_in_child():
    global _forked_child, _parallel_lock
    _forked_child = True
    _parallel_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _active_layer():
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet in this process
        return None


@contextmanager
def cpu_kernel(variants, n_entries, *, serial_blas=False):
    """Yield the build of ``variants`` (serial or parallel) to call now.

    With ``serial_blas``, BLAS runs on one thread while the parallel build is
    in use: for callers that alternate the kernel with small BLAS calls
    (SciPy's L-BFGS-B). OpenBLAS's threads keep spinning for a while after
    each call, on the cores the kernel's threads need; on 2 cores that made
    each parallel pass of the warm-up about twice as slow
    (benchmarks/README.md).
    """
    layer = _active_layer()
    minimum = WORKQUEUE_MIN_ENTRIES if layer == "workqueue" else PARALLEL_MIN_ENTRIES
    if n_entries < minimum or numba.get_num_threads() == 1:
        yield variants.serial
        return
    if layer == "omp" and _forked_child:
        yield variants.serial
        return
    if layer in ("tbb", "omp"):
        lock = nullcontext(True)
    else:
        lock = _try_lock(_parallel_lock)
    with lock as acquired:
        if not acquired:
            yield variants.serial
            return
        with one_blas_thread() if serial_blas else nullcontext():
            yield variants.parallel


@contextmanager
def _try_lock(lock):
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def compiled_for(dispatcher, args):
    """The compiled code of ``dispatcher`` for the types of ``args``, to call
    again with arguments of the same types.

    Calling it skips the dispatcher's typing of the arguments, which costs
    tens of microseconds a call for record arguments (settings, states): for
    kernels called once an epoch.
    """
    return dispatcher.compile(tuple(numba.typeof(a) for a in args))


_blas_controller = None


def one_blas_thread():
    """Context limiting the BLAS libraries loaded now to one thread."""
    global _blas_controller
    if _blas_controller is None:
        # Finds the loaded BLAS libraries once (a few ms); each limit() after
        # that costs tens of microseconds.
        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


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


def _kernels(device, X):
    """The kernel module of ``device`` and ``X`` (imported on first use
    only): the sparse kernels for a SciPy sparse ``X``, on the CPU."""
    if issparse(X):
        if device == "cuda":
            raise ValueError(
                'device="cuda" takes dense X only; X is a sparse matrix '
                f"({X.format.upper()}, {X.shape[0]} x {X.shape[1]}, {X.nnz} "
                'nonzeros). Train on the CPU (device="cpu" or "auto" train '
                "sparse X without densifying it), or pass X.toarray() if the "
                "dense matrix fits in the GPU's memory."
            )
        from . import _kernels_sparse

        return _kernels_sparse
    if resolve_device(device) == "cuda":
        from . import _kernels_cuda

        return _kernels_cuda
    from . import _kernels_cpu

    return _kernels_cpu


def linear_backend(device, X, sample_weight):
    """The backend that trains the linear model on ``X`` on ``device``.

    ``sample_weight`` is a float64 array (ones for an unweighted fit); ``X``
    a C-contiguous array, or a SciPy CSR or CSC matrix (trained on the CPU).
    """
    return _kernels(device, X).LinearBackend(X, sample_weight)


def mlp_backend(device, X, Y, sample_weight):
    """The backend that trains the MLP on ``(X, Y)`` on ``device``."""
    return _kernels(device, X).MLPBackend(X, Y, sample_weight)
