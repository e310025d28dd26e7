"""Where kernels run: the one place that decides threads and threading layers.

Numba's threading layers differ in exactly the two situations a scikit-learn
user meets:

* ``omp`` (GNU OpenMP, the default pick of Numba's pip wheels on Linux) is
  thread-safe, but a process forked after it has run (``multiprocessing``'s
  default start method on Linux) is killed on its next parallel region;
* ``workqueue`` survives ``fork``, but aborts the whole process when two Python
  threads enter parallel regions at once;
* ``tbb`` is safe in both cases, but is an extra package.

Policy: unless the user has chosen a layer (``NUMBA_THREADING_LAYER`` or
``NUMBA_THREADING_LAYER_PRIORITY``), importing sk_anyloss asks Numba to prefer
``tbb``, then ``workqueue``, then ``omp``.  On ``workqueue`` only one thread at
a time runs a parallel kernel; a thread that finds it busy runs the serial
build instead.  On ``omp`` in a forked child the serial build runs.  Serial and
parallel builds give bit-identical results, so this choice never changes a
model.
"""

import os
import threading
from contextlib import contextmanager, nullcontext

import numba
from threadpoolctl import ThreadpoolController

# Below this many matrix entries per epoch, starting threads costs more than
# it saves. On 2 cores with nothing else running the crossover measured
# between 400,000 and 500,000 entries (benchmarks/parallel_threshold.py,
# figures in benchmarks/README.md); re-measure on larger machines.
PARALLEL_MIN_ENTRIES = 500_000

_parallel_lock = threading.Lock()
_forked_child = False


def _after_fork_in_child():
    global _forked_child, _parallel_lock
    _forked_child = True
    _parallel_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def configure_threading_layer():
    """Prefer fork- and thread-safe layers unless the user chose one."""
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    if "NUMBA_THREADING_LAYER_PRIORITY" in os.environ:
        return
    if numba.config.THREADING_LAYER != "default":
        return
    numba.config.THREADING_LAYER_PRIORITY = ["tbb", "workqueue", "omp"]


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
    if n_entries < PARALLEL_MIN_ENTRIES or numba.get_num_threads() == 1:
        yield variants.serial
        return
    layer = _active_layer()
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
        with _one_blas_thread() if serial_blas else nullcontext():
            yield variants.parallel


@contextmanager
def _try_lock(lock):
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


_blas_controller = None


def _one_blas_thread():
    """Context limiting the BLAS libraries loaded now to one thread."""
    global _blas_controller
    if _blas_controller is None:
        # Finds the loaded BLAS libraries once (a few ms); each limit() after
        # that costs tens of microseconds.
        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")
