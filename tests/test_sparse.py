"""Sparse X (SciPy CSR / CSC matrices and arrays): the same models as on
the dense matrix, without densifying it."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
from sk_anyloss import _kernels_sparse as sparse_kernels
from sk_anyloss._base import Problem
from sk_anyloss._kernels_cpu import linear_pass, make_target, reduce_chunks
from sk_anyloss._metrics import METRIC_NAMES


def _data(n=300, d=25, density=0.2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * (rng.random((n, d)) < density)
    s = X @ rng.standard_normal(d)
    targets = {
        "binary": (s > 0.4).astype(int),
        "multiclass": np.digitize(s, np.quantile(s, [0.3, 0.7])),
        "multilabel": np.column_stack([s > 0, X[:, 1] > 0, X[:, 2] < 0]).astype(int),
    }
    return X, targets, rng.uniform(0.5, 2.0, n)


def _fit(model, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of short fits
        return model.fit(X, y, **kwargs)


def _params(model):
    if isinstance(model, AnyLossClassifier):
        return [model.coef_, model.intercept_]
    return model.coefs_ + model.intercepts_


def _assert_same_model(a, b, X_dense, X_sparse, proba_rtol=1e-10, rtol=1e-10):
    for p, q in zip(_params(a), _params(b)):
        np.testing.assert_allclose(p, q, rtol=rtol, atol=1e-12 * rtol / 1e-10)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
    np.testing.assert_array_equal(a.predict(X_dense), b.predict(X_sparse))
    np.testing.assert_allclose(
        a.predict_proba(X_dense), b.predict_proba(X_sparse), rtol=proba_rtol,
        atol=1e-14,
    )  # fmt: skip


@pytest.mark.parametrize("metric", METRIC_NAMES)
@pytest.mark.parametrize("weighted", [False, True])
def test_linear_sparse_fit_is_the_dense_fit(metric, weighted):
    X, targets, sw = _data()
    sw = sw if weighted else None
    params = dict(metric=metric, max_iter=40, tol=None)
    dense = _fit(AnyLossClassifier(**params), X, targets["binary"], sample_weight=sw)
    Xs = sp.csr_matrix(X)
    fitted = _fit(AnyLossClassifier(**params), Xs, targets["binary"], sample_weight=sw)
    _assert_same_model(dense, fitted, X, Xs)
    np.testing.assert_allclose(
        dense.decision_function(X), fitted.decision_function(Xs), rtol=1e-10
    )


@pytest.mark.parametrize("Estimator", [AnyLossClassifier, AnyLossMLPClassifier])
@pytest.mark.parametrize(
    "kind, average",
    [("binary", None), ("binary", "macro"), ("multiclass", None),
     ("multiclass", "weighted"), ("multilabel", None), ("multilabel", "micro"),
     ("multilabel", "samples")],
)  # fmt: skip
@pytest.mark.parametrize("layout", ["csr_matrix", "csc_matrix", "csr_array"])
def test_every_target_and_format_fits_as_dense(Estimator, kind, average, layout):
    X, targets, sw = _data(seed=1)
    y = targets[kind]
    if Estimator is AnyLossClassifier:
        params = dict(max_iter=25, tol=None, average=average)
    else:
        params = dict(hidden_layer_sizes=(6,), max_iter=4, batch_size=64,
                      random_state=0, average=average)  # fmt: skip
    Xs = getattr(sp, layout)(X)
    dense = _fit(Estimator(**params), X, y, sample_weight=sw)
    fitted = _fit(Estimator(**params), Xs, y, sample_weight=sw)
    _assert_same_model(dense, fitted, X, Xs)


@pytest.mark.parametrize("Estimator", [AnyLossClassifier, AnyLossMLPClassifier])
def test_float32_sparse_fits_as_float32_dense(Estimator):
    X, targets, _ = _data(seed=2)
    X = X.astype(np.float32)
    params = (
        dict(max_iter=20, tol=None)
        if Estimator is AnyLossClassifier
        else dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    )
    dense = _fit(Estimator(**params), X, targets["binary"])
    Xs = sp.csr_matrix(X)
    assert Xs.dtype == np.float32
    fitted = _fit(Estimator(**params), Xs, targets["binary"])
    # prediction multiplies float32 data by float32 coefficients: a dense and
    # a sparse product round differently there. The MLP trains in float64 on
    # both; the dense linear pass multiplies float32 data in float32 (the
    # sparse one in float64), so its models agree to float32's rounding.
    linear = Estimator is AnyLossClassifier
    _assert_same_model(
        dense, fitted, X, Xs, proba_rtol=1e-4 if linear else 1e-5,
        rtol=1e-4 if linear else 1e-10,
    )  # fmt: skip


@pytest.mark.parametrize("metric", ["f1", "mcc"])
def test_mlp_sparse_fit_is_the_dense_fit_for_each_metric(metric):
    X, targets, sw = _data(seed=3)
    params = dict(metric=metric, hidden_layer_sizes=(5, 3), max_iter=5, random_state=0)
    dense = _fit(AnyLossMLPClassifier(**params), X, targets["binary"], sample_weight=sw)
    Xs = sp.csr_matrix(X)
    fitted = _fit(AnyLossMLPClassifier(**params), Xs, targets["binary"],
                  sample_weight=sw)  # fmt: skip
    _assert_same_model(dense, fitted, X, Xs)


@pytest.mark.parametrize("logistic", [False, True])
def test_sparse_pass_is_the_dense_pass_and_ignores_the_thread_count(logistic):
    rng = np.random.default_rng(4)
    n, d, L = 5000, 40, 3  # several chunks of rows
    X = rng.standard_normal((n, d)) * (rng.random((n, d)) < 0.1)
    Y = (rng.random((n, L)) < 0.3).astype(np.uint8)
    sw = np.full(n, 1.0 / n)
    theta = 0.1 * rng.standard_normal(L * (d + 1))
    R = sparse_kernels.rows_of(sp.csc_matrix(X))
    serial = sparse_kernels.linear_pass.serial(R, Y, sw, theta, 20.0, logistic)
    parallel = sparse_kernels.linear_pass.parallel(R, Y, sw, theta, 20.0, logistic)
    np.testing.assert_array_equal(serial, parallel)
    dense = reduce_chunks(linear_pass.serial(X, Y, sw, theta, 20.0, logistic))
    np.testing.assert_allclose(serial, dense, rtol=1e-12, atol=1e-15)


@pytest.mark.long
def test_a_matrix_too_large_to_densify_trains():
    # 2,000 x 4,000,000: 64 GB dense; 20,000 nonzeros
    rng = np.random.default_rng(5)
    n, d = 2000, 4_000_000
    rows = np.repeat(np.arange(n), 10)
    cols = rng.integers(0, d, rows.shape[0])
    cols[::10] = rng.integers(0, 50, n)  # a few shared, informative columns
    X = sp.csr_matrix((rng.standard_normal(rows.shape[0]), (rows, cols)), shape=(n, d))
    y = (X[:, :50] @ rng.standard_normal(50) > 0).astype(int)
    model = _fit(AnyLossClassifier(max_iter=20), X, y)
    assert model.coef_.shape == (1, d)
    assert model.score(X, y) > 0.6


def test_one_hot_pipeline():
    rng = np.random.default_rng(6)
    cats = rng.integers(0, 30, size=(600, 3)).astype(str)
    y = ((cats[:, 0] == "1") | (cats[:, 1] == "2") | (cats[:, 2] == "3")).astype(int)
    model = make_pipeline(OneHotEncoder(), AnyLossClassifier(metric="f1"))
    _fit(model, cats, y)
    assert sp.issparse(model[0].transform(cats))
    assert model.score(cats, y) > 0.9


def test_cuda_says_it_takes_dense_input():
    X, targets, _ = _data()
    with pytest.raises(ValueError, match=r'device="cuda" takes dense X only'):
        AnyLossClassifier(device="cuda").fit(sp.csr_matrix(X), targets["binary"])
    # "auto" trains sparse X on the CPU
    model = _fit(AnyLossClassifier(device="auto", max_iter=5), sp.csr_matrix(X),
                 targets["binary"])  # fmt: skip
    assert model.coef_.shape == (1, X.shape[1])


def test_sparse_problem_target_is_the_dense_one():
    X, targets, sw = _data()
    problem = Problem("binary", targets["binary"][:, None], targets["binary"], None)
    dense = make_target(problem, sw)
    backend = sparse_kernels.LinearBackend(sp.csr_matrix(X), sw)
    got = backend.target(problem)
    np.testing.assert_array_equal(got.pos, dense.pos)
    assert got.scale == dense.scale


@pytest.mark.parametrize(
    "kind, average",
    [
        ("binary", None),
        pytest.param("multiclass", None, marks=pytest.mark.long),
        pytest.param("multilabel", "samples", marks=pytest.mark.long),
    ],
)
def test_sparse_fits_do_not_depend_on_the_thread_count(kind, average):
    import numba

    # 20,000 rows of 15 nonzeros: above the parallel threshold
    X, targets, sw = _data(n=20_000, d=60, density=0.25, seed=7)
    Xs = sp.csr_matrix(X)
    models = []
    for threads in (numba.config.NUMBA_NUM_THREADS, 1):
        numba.set_num_threads(threads)
        try:
            model = AnyLossClassifier(max_iter=5, tol=None, average=average)
            models.append(_fit(model, Xs, targets[kind], sample_weight=sw))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(models[0].coef_, models[1].coef_)
    np.testing.assert_array_equal(models[0].loss_curve_, models[1].loss_curve_)
