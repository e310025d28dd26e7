"""The linear model on Dask arrays: the passes map the CPU kernels over the
blocks of rows, on the cluster's workers; the optimiser runs on the client.

This module is the only one that imports dask; it is imported only when an
estimator receives a Dask collection (see ``_base.is_dask``).

One iteration of the linear model needs the soft confusion matrix and the
class-wise gradient sums: each a sum over rows. So a pass is a map-reduce:
every block of rows (persisted on the workers once per fit) runs the same
compiled pass as an in-memory fit (``_kernels_cpu``), reduces its chunks'
sums in their order, and sends that small vector back; the client adds the
blocks' vectors in block order and runs what follows a pass (the metric, the
gradient, the optimiser's step, the stopping rule: ``_kernels_cpu``'s code).
``X`` never leaves the workers. The model equals the in-memory one up to the
order of the sums (the blocks' totals are added where the in-memory pass adds
its chunks'), and does not depend on the number of workers or threads.
"""

from contextlib import contextmanager

import dask
import dask.array as da
import numpy as np
from sklearn.utils.validation import check_array

from . import _kernels_cpu as cpu
from ._backend import cpu_kernel
from ._base import (
    Problem,
    check_indicator,
    check_target_masses,
    encode_target,
    resolve_average,
)
from ._kernels_cpu import (
    RUNNING,
    STATUS,
    ClassesTarget,
    LabelsTarget,
    cpu_metric,
    new_loop_state,
)
from ._metrics import _python_forms
from ._metrics_multi import MATRIX, work_size

DTYPES = (np.float64, np.float32)


def as_array(X, name):
    """A Dask array of a Dask array, DataFrame or Series (numeric columns),
    with known block sizes."""
    if hasattr(X, "to_dask_array"):
        X = X.to_dask_array(lengths=True)
    if not isinstance(X, da.Array):
        raise TypeError(f"{name} must be a Dask array or DataFrame; got {type(X)}.")
    if any(np.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()
    return X


def rows_of(X, like, name):
    """``X`` (a Dask or NumPy array, DataFrame or Series) as a Dask array
    blocked along rows as ``like``."""
    lazy = hasattr(X, "to_dask_array") or isinstance(X, da.Array)
    X = as_array(X, name) if lazy else np.asarray(X)
    if X.ndim == 0 or X.shape[0] != like.shape[0]:
        raise ValueError(
            f"{name} has {X.shape[0] if X.ndim else 'no'} rows; X has "
            f"{like.shape[0]}: they must match."
        )
    if not lazy:  # in memory: blocked as X is, once its length is known
        X = da.from_array(X, chunks=(like.chunks[0],) + X.shape[1:])
    return X.rechunk((like.chunks[0],) + tuple((s,) for s in X.shape[1:]))


def _check_block(block, estimator):
    """A block of ``X`` validated as an in-memory ``X`` is (finite, numeric):
    the same errors."""
    return check_array(
        block, dtype=list(DTYPES), order="C", estimator=estimator, input_name="X"
    )


def _check_weights(block):
    if not np.all(np.isfinite(block)) or np.any(block < 0):
        raise ValueError(
            "sample_weight must be finite and non-negative; a block of it is not."
        )
    return block


def _validated_X(estimator, X):
    X = as_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2d X; got a Dask array of shape {X.shape}.")
    if len(X.chunks[1]) != 1:
        raise ValueError(
            f"X is chunked along its columns (chunks {X.chunks[1]}); the AnyLoss "
            "estimators take Dask arrays blocked along rows only. Rechunk with "
            "X.rechunk({1: -1})."
        )
    name = type(estimator).__name__
    dtype = X.dtype if X.dtype in DTYPES else np.float64
    return X.map_blocks(_check_block, name, dtype=dtype)


def _check_indicator(block):
    """A block of a 2d ``y``: a multilabel indicator matrix of 0 and 1, as
    an in-memory ``y`` must be."""
    check_indicator(block, "y")
    return block.astype(np.uint8)


def _block_classes(block):
    return np.unique(block)


def _class_index(block, classes):
    return np.searchsorted(classes, block).astype(np.int32)


def _block_sums(w_block, Y_block, e):
    """A block's scaled weight total and its weight on each output's
    positives."""
    w = np.ldexp(w_block, -e)
    return np.concatenate([[w.sum()], w @ Y_block])


class DaskData:
    """A fit's data on the cluster: ``X``, the outputs' 0/1 targets ``Y``,
    the class indices ``y`` (multiclass), the normalised weights, all
    persisted and blocked alike; the classes, the ``Problem`` and the weight
    sums the checks and the targets need."""

    def __init__(self, estimator, X, y, sample_weight):
        X = _validated_X(estimator, X)
        self.n_features = X.shape[1]
        y = rows_of(y, X, "y")
        if sample_weight is None:
            sw = da.ones(X.shape[0], chunks=(X.chunks[0],))
        else:
            sw = rows_of(sample_weight, X, "sample_weight").astype(np.float64)
            if sw.ndim != 1:
                raise ValueError("sample_weight must be 1d.")
            sw = sw.map_blocks(_check_weights, dtype=np.float64)
        X, y, sw = dask.persist(X, y, sw)
        multilabel = y.ndim == 2 and y.shape[1] > 1
        if multilabel:
            self.classes = np.arange(y.shape[1])
            Y = y.map_blocks(_check_indicator, dtype=np.uint8)
            index = None
            kind = "multilabel"
        else:
            if y.ndim == 2:
                y = y[:, 0]
            blocks = [dask.delayed(_block_classes)(b) for b in y.to_delayed().ravel()]
            uniques = dask.compute(*blocks)
            self.classes, _ = encode_target(np.concatenate(uniques))
            K = self.classes.shape[0]
            index = y.map_blocks(_class_index, self.classes, dtype=np.int32)
            kind = "binary" if K == 2 else "multiclass"
            if kind == "binary":
                Y = (index == 1).astype(np.uint8)[:, None]
            else:
                Y = (index[:, None] == np.arange(K)).astype(np.uint8)
        average = resolve_average(kind, estimator.metric, estimator.average)
        Y, index = dask.persist(Y, index) if index is not None else (Y.persist(), None)
        self.problem = Problem(kind, Y, index, average)
        # The weight sums, scaled by the largest weight's power of two (as
        # _base.scaled_weights), added in block order.
        largest = float(sw.max().compute())
        _, e = np.frexp(largest)
        e = int(e)
        parts = dask.compute(
            *[
                dask.delayed(_block_sums)(w, Yb, e)
                for w, Yb in zip(sw.to_delayed().ravel(), Y.to_delayed().ravel())
            ]
        )
        sums = np.zeros_like(parts[0])
        for part in parts:
            sums += part
        total = sums[0]
        self.pos = sums[1:] / total
        self.neg = (total - sums[1:]) / total
        check_target_masses(kind, self.pos, self.neg, self.classes)
        self.total = float(np.ldexp(total, e))
        self.X = X
        self.sw = (sw.map_blocks(np.ldexp, -e, dtype=np.float64) / total).persist()

    def share(self):
        """The weight share of the first output's positives."""
        return float(self.pos[0])


def _block_labels_pass(X, Y, sw, theta, amplifier, logistic):
    with cpu_kernel(cpu.linear_pass, X.size * Y.shape[1]) as kernel:
        with cpu.one_blas_thread():
            part = kernel(X, Y, sw, theta, amplifier, logistic)
    return cpu.reduce_chunks(part)


def _block_softmax_pass(X, y, sw, theta, K, amplifier, mode, D, weights):
    with cpu_kernel(cpu.softmax_pass, X.size * K, serial_blas=True) as kernel:
        with cpu.one_blas_thread():
            part = kernel(X, y, sw, theta, K, amplifier, mode, D, weights)
    return cpu.reduce_chunks(part)


def _block_samples_pass(X, Y, sw, theta, amplifier, metric):
    compiled = cpu_metric(metric)
    with cpu_kernel(cpu.samples_pass, X.size * Y.shape[1]) as kernel:
        part = kernel(X, Y, sw, theta, amplifier, compiled, metric.params)
    return cpu.reduce_chunks(part)


class LinearBackend:
    """The linear model's passes over a :class:`DaskData`: the protocol of
    ``_kernels_cpu.LinearBackend``, each pass one map over the blocks."""

    def __init__(self, data):
        self._data = data
        self._X = data.X.to_delayed().ravel()
        self._sw = data.sw.to_delayed().ravel()
        self._Y = data.problem.Y.to_delayed().ravel()
        y = data.problem.y
        self._y = None if y is None else y.to_delayed().ravel()

    def target(self, problem):
        """The client's target of ``problem`` (the labels stay on the
        workers)."""
        data = self._data
        if problem.kind == "multiclass":
            K = problem.n_outputs
            return ClassesTarget(
                np.zeros(0, np.int32), 1.0 / (K * data.pos), data.total
            )
        L = problem.n_outputs
        return LabelsTarget(
            np.zeros((0, L), np.uint8), data.pos, data.neg, data.total,
            problem.metric_k, problem.layout, problem.average == "samples",
        )  # fmt: skip

    def _sum(self, tasks):
        """The blocks' results added in block order."""
        parts = dask.compute(*tasks)
        total = np.array(parts[0], dtype=np.float64)
        for part in parts[1:]:
            total += part
        return total

    def _labels_pass(self, theta, amplifier, logistic):
        return self._sum(
            dask.delayed(_block_labels_pass)(X, Y, sw, theta, amplifier, logistic)
            for X, Y, sw in zip(self._X, self._Y, self._sw)
        )

    def _softmax_pass(self, theta, target, amplifier, mode, D):
        K = target.weights.shape[0]
        return self._sum(
            dask.delayed(_block_softmax_pass)(
                X, y, sw, theta, K, amplifier, mode, D, target.weights
            )
            for X, y, sw in zip(self._X, self._y, self._sw)
        )

    @contextmanager
    def log_loss(self, target, alpha, fit_intercept):
        """Context yielding ``loss_grad(theta) -> (loss, grad)``, the warm-up's
        objective, each call one pass over the blocks."""
        d = self._data.n_features

        def loss_grad(theta):
            grad = np.empty(theta.shape[0])
            if isinstance(target, ClassesTarget):
                K = target.weights.shape[0]
                total = self._softmax_pass(
                    theta, target, 1.0, cpu.LOGISTIC, np.empty((1, K))
                )
                squares = cpu.rows_gradient(total, d, 1.0, alpha, fit_intercept,
                                            theta, grad)  # fmt: skip
                return total[K * (d + 1)] + 0.5 * alpha * squares, grad
            total = self._labels_pass(theta, 1.0, True)
            loss = cpu.log_loss_from_sums(total, target, alpha, fit_intercept, theta,
                                          grad)  # fmt: skip
            return loss, grad

        yield loss_grad

    def fit(self, target, theta, settings, metric):
        """Run the metric loop from ``theta`` (updated in place), each
        iteration a map over the blocks (two for a multiclass target);
        returns ``(status, loss_curve)``."""
        d = self._data.n_features
        state = new_loop_state(theta.shape[0])
        curve = np.empty(settings.max_iter)
        grad = np.empty(theta.shape[0])
        amplifier = settings.amplifier
        if isinstance(target, ClassesTarget):
            K = target.weights.shape[0]
            _, matrix = _python_forms(metric)
            D = np.empty((K, K))
            work = np.empty(work_size(MATRIX, K))
        else:
            compiled = cpu_metric(metric, target.layout, target.k)
        while state.counts[STATUS] == RUNNING:
            if isinstance(target, ClassesTarget):
                C = self._softmax_pass(theta, target, amplifier, cpu.COUNTS, D)
                value = matrix(C.reshape(K, K), target.scale, metric.params, D, work)
                total = self._softmax_pass(theta, target, amplifier, cpu.GRADIENT, D)
            elif target.samples:
                total = self._sum(
                    dask.delayed(_block_samples_pass)(
                        X, Y, sw, theta, amplifier, metric
                    )  # fmt: skip
                    for X, Y, sw in zip(self._X, self._Y, self._sw)
                )
                value = total[theta.shape[0]]
            else:
                total = self._labels_pass(theta, amplifier, False)
                cpu.metric_step(total, target, theta, grad, settings, compiled,
                                metric.params, state, curve)  # fmt: skip
                continue
            squares = cpu.rows_gradient(
                total, d, -1.0, settings.alpha, settings.fit_intercept, theta, grad
            )
            loss = 1.0 - value + 0.5 * settings.alpha * squares
            cpu.end_iteration(loss, theta, grad, settings, state, curve)
        return int(state.counts[STATUS]), curve[: state.optimizer.steps[0]]


def _apply(block, method, columns=None):
    if columns is not None:  # a DataFrame's block: predict with its names
        import pandas as pd

        block = pd.DataFrame(block, columns=columns)
    return method(block)


def map_rows(estimator, X, method):
    """``estimator.<method>(X)`` of a Dask ``X``: a Dask array, computed by
    blocks of rows on the workers (lazily)."""
    columns = getattr(estimator, "feature_names_in_", None)
    if columns is not None and hasattr(X, "columns"):
        columns = list(X.columns)
    else:
        columns = None
    X = as_array(X, "X")
    if X.ndim == 2 and len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    function = getattr(estimator, method)
    sample = _apply(np.zeros((1, X.shape[1]), dtype=X.dtype), function, columns)
    if sample.ndim == 1:
        return X.map_blocks(
            _apply, function, columns, drop_axis=1, dtype=sample.dtype,
            meta=np.empty((0,), sample.dtype),
        )  # fmt: skip
    return X.map_blocks(
        _apply, function, columns, chunks=(X.chunks[0], sample.shape[1:]),
        dtype=sample.dtype, meta=np.empty((0, 0), sample.dtype),
    )  # fmt: skip
