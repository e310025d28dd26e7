"""Dask arrays on a real cluster (a LocalCluster of two worker processes,
started here): the linear model's passes run on the workers and give the
in-memory model; predictions are lazy Dask arrays; the MLP trains through
dask-ml's Incremental; GridSearchCV runs on the cluster through joblib."""

import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _data(n=3000, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    s = X @ rng.standard_normal(d)
    targets = {
        "binary": (s > 0.5).astype(int),
        "multiclass": np.digitize(s, np.quantile(s, [0.3, 0.6])),
        "multilabel": np.column_stack([s > 0, X[:, 1] > 0, X[:, 2] < 0]).astype(int),
    }
    return X, targets, rng.uniform(0.5, 2.0, n)


def _blocks(a, rows=700):
    return da.from_array(a, chunks=(rows,) + a.shape[1:])


def _quiet_fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args, **kwargs)


@pytest.mark.parametrize(
    "kind, average",
    [("binary", None), ("multilabel", None),
     pytest.param("multiclass", None, marks=pytest.mark.long),
     pytest.param("multilabel", "samples", marks=pytest.mark.long)],
)  # fmt: skip
def test_fit_on_the_cluster_is_the_in_memory_fit(client, kind, average):
    X, targets, sw = _data()
    y = targets[kind]
    params = dict(max_iter=25, tol=None, average=average)
    memory = _quiet_fit(AnyLossClassifier(**params), X, y, sample_weight=sw)
    dask_model = _quiet_fit(
        AnyLossClassifier(**params), _blocks(X), _blocks(y), sample_weight=_blocks(sw)
    )
    assert type(dask_model.coef_) is np.ndarray
    np.testing.assert_allclose(dask_model.coef_, memory.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(dask_model.loss_curve_, memory.loss_curve_, rtol=1e-8)
    np.testing.assert_array_equal(dask_model.classes_, memory.classes_)
    predicted = dask_model.predict(_blocks(X))
    assert isinstance(predicted, da.Array)  # lazy, by blocks
    np.testing.assert_array_equal(predicted.compute(), memory.predict(X))
    np.testing.assert_allclose(
        dask_model.predict_proba(_blocks(X)).compute(), memory.predict_proba(X),
        rtol=1e-7,
    )  # fmt: skip


def test_dataframes_and_the_decision_function(client):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, targets, _ = _data(seed=1)
    frame = dd.from_pandas(pd.DataFrame(X, columns=list("abcde")), npartitions=3)
    labels = dd.from_pandas(pd.Series(targets["binary"]), npartitions=3)
    model = _quiet_fit(AnyLossClassifier(max_iter=10), frame, labels)
    memory = _quiet_fit(AnyLossClassifier(max_iter=10), X, targets["binary"])
    np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(model.feature_names_in_, list("abcde"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        predicted = model.predict(frame).compute()
    np.testing.assert_array_equal(predicted, memory.predict(X))
    scores = model.decision_function(frame)
    assert isinstance(scores, da.Array) and scores.shape == (X.shape[0],)
    np.testing.assert_allclose(scores.compute(), memory.decision_function(X))


def test_bad_blocks_say_what_is_wrong(client):
    X, targets, _ = _data(seed=2)
    with pytest.raises(ValueError, match=r"chunked along its columns"):
        AnyLossClassifier().fit(da.from_array(X, chunks=(500, 2)), targets["binary"])
    bad = X.copy()
    bad[2500, 1] = np.nan
    with pytest.raises(ValueError) as in_memory:
        AnyLossClassifier().fit(bad, targets["binary"])
    with pytest.raises(ValueError) as on_cluster:
        AnyLossClassifier().fit(_blocks(bad), _blocks(targets["binary"]))
    assert str(on_cluster.value) == str(in_memory.value)
    not_indicator = np.column_stack([targets["binary"], 2 * targets["binary"]])
    with pytest.raises(ValueError, match=r"indicator y must hold only 0 and 1"):
        AnyLossClassifier().fit(_blocks(X), _blocks(not_indicator))
    for y in (targets["binary"][:-7], np.int64(1)):  # in memory, not matching X
        with pytest.raises(ValueError, match=r"y has (\d+|no) rows; X has"):
            AnyLossClassifier().fit(_blocks(X), y)
    with pytest.raises(ValueError, match=r'device="cuda" takes in-memory data'):
        AnyLossClassifier(device="cuda").fit(_blocks(X), _blocks(targets["binary"]))
    with pytest.raises(TypeError, match=r"Incremental"):
        AnyLossMLPClassifier().fit(_blocks(X), _blocks(targets["binary"]))


@pytest.mark.long
def test_a_worker_killed_during_a_fit(client):
    X, targets, _ = _data(n=20_000, seed=3)
    Xd, yd = _blocks(X, 2000), _blocks(targets["binary"], 2000)
    model = AnyLossClassifier(max_iter=300, tol=None)
    outcome = {}

    def fit():
        try:
            _quiet_fit(model, Xd, yd)
            outcome["ok"] = True
        except Exception as exc:  # the fit may fail: it must say why
            outcome["error"] = exc

    thread = threading.Thread(target=fit)
    thread.start()
    time.sleep(3.0)
    worker = list(client.scheduler_info()["workers"])[0]
    try:
        client.run(os._exit, 1, workers=[worker])  # the worker process dies
    except (OSError, distributed.comm.core.CommClosedError):
        pass  # it dies before it answers
    thread.join(timeout=120)
    assert not thread.is_alive(), "the fit hung after a worker died"
    if "ok" in outcome:
        memory = _quiet_fit(AnyLossClassifier(max_iter=300, tol=None), X,
                            targets["binary"])  # fmt: skip
        np.testing.assert_allclose(model.coef_, memory.coef_, rtol=1e-8, atol=1e-12)
    else:
        assert str(outcome["error"])
        assert not hasattr(model, "coef_")  # no partial model
    client.wait_for_workers(2, timeout=60)


@pytest.mark.long
def test_grid_search_on_the_cluster(client):
    joblib = pytest.importorskip("joblib")
    from sklearn.model_selection import GridSearchCV

    X, targets, _ = _data(n=600, seed=4)
    search = GridSearchCV(
        AnyLossClassifier(max_iter=20), {"amplifier": [10.0, 30.0]}, cv=3, n_jobs=-1
    )
    with joblib.parallel_backend("dask"):
        _quiet_fit(search, X, targets["binary"])
    local = _quiet_fit(
        GridSearchCV(AnyLossClassifier(max_iter=20), {"amplifier": [10.0, 30.0]}, cv=3),
        X, targets["binary"],
    )  # fmt: skip
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )


@pytest.mark.long
def test_mlp_through_incremental(client):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, targets, _ = _data(seed=5)
    model = wrappers.Incremental(
        AnyLossMLPClassifier(hidden_layer_sizes=(8,), random_state=0),
        shuffle_blocks=False,
    )
    model.fit(_blocks(X), _blocks(targets["binary"]), classes=[0, 1])
    fitted = model.estimator_
    assert fitted.n_iter_ == 5  # one partial_fit (one epoch) per block
    # the same as partial_fit on the blocks in memory, in order
    manual = AnyLossMLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    for start in range(0, X.shape[0], 700):
        block = slice(start, start + 700)
        manual.partial_fit(X[block], targets["binary"][block], classes=[0, 1])
    for a, b in zip(fitted.coefs_, manual.coefs_):
        np.testing.assert_array_equal(a, b)
    predicted = model.predict(_blocks(X))
    np.testing.assert_array_equal(np.asarray(predicted), manual.predict(X))


def test_in_memory_fits_never_import_dask():
    code = (
        "import sys, numpy as np\n"
        "from sk_anyloss import AnyLossClassifier\n"
        "X = np.random.default_rng(0).standard_normal((50, 3))\n"
        "AnyLossClassifier(max_iter=3).fit(X, X[:, 0] > 0).predict(X)\n"
        "assert not any(m.split('.')[0] == 'dask' for m in sys.modules), 'dask'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
