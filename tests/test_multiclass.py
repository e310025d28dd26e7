"""Multiclass and multilabel targets at the estimators' level: what a user
sees (predictions, probabilities, errors, scorers), and the properties every
fit must have (weights as repetitions, one joint model)."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_multilabel_classification
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    jaccard_score,
    matthews_corrcoef,
)
from sklearn.model_selection import GridSearchCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
from sk_anyloss.metrics import get_scorer

ESTIMATORS = [AnyLossClassifier, AnyLossMLPClassifier]


def _quick(Estimator, **params):
    if Estimator is AnyLossMLPClassifier:
        params = {"hidden_layer_sizes": (8,), "max_iter": 100, **params}
    else:
        params = {"max_iter": 60, **params}
    return Estimator(random_state=0, **params)


def _fit(model, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of short fits
        return model.fit(X, y, **kwargs)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def multilabel():
    X, Y = make_multilabel_classification(
        n_samples=150, n_features=6, n_classes=4, n_labels=1, random_state=0
    )
    return StandardScaler().fit_transform(X), Y


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_multiclass_predictions_follow_the_probabilities(Estimator, iris):
    X, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model = _fit(_quick(Estimator), X, labels)
    proba = model.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict(X), model.classes_[proba.argmax(1)])
    assert f1_score(labels, model.predict(X), average="macro") > 0.85


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_multilabel_predicts_an_indicator_matrix(Estimator, multilabel):
    X, Y = multilabel
    model = _fit(_quick(Estimator), X, Y)
    np.testing.assert_array_equal(model.classes_, np.arange(4))
    proba = model.predict_proba(X)
    assert proba.shape == Y.shape and np.all((proba >= 0) & (proba <= 1))
    pred = model.predict(X)
    assert pred.shape == Y.shape
    np.testing.assert_array_equal(pred, (proba >= 0.5).astype(pred.dtype))
    assert f1_score(Y, pred, average="macro") > 0.6


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_a_weight_of_two_is_a_repeated_row(Estimator, kind, iris, multilabel):
    X, y = iris if kind == "multiclass" else multilabel
    X, y = X[::3], y[::3]
    weights = np.tile([1, 2], X.shape[0])[: X.shape[0]]
    repeat = np.repeat(np.arange(X.shape[0]), weights)
    params = {"tol": None, "max_iter": 15}
    if Estimator is AnyLossMLPClassifier:
        params["tol"] = 0.0
        # one batch of all rows, so that a batch is the same set either way
        params.update(batch_size=1000, shuffle=False, log_loss_weight=0.5)
    weighted = _fit(_quick(Estimator, **params), X, y, sample_weight=weights)
    repeated = _fit(_quick(Estimator, **params), X[repeat], y[repeat])
    if Estimator is AnyLossMLPClassifier:
        pairs = zip(weighted.coefs_, repeated.coefs_)
    else:
        pairs = [(weighted.coef_, repeated.coef_)]
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-9)


def test_the_multiclass_linear_model_is_one_softmax_model(iris):
    X, y = iris
    model = _fit(_quick(AnyLossClassifier), X, y)
    assert model.coef_.shape == (3, 4) and model.intercept_.shape == (3,)
    z = X @ model.coef_.T + model.intercept_
    np.testing.assert_allclose(model.decision_function(X), z)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(X), p / p.sum(1, keepdims=True))


@pytest.mark.parametrize("average", ["macro", "micro", "weighted", "samples"])
def test_every_multilabel_average_trains_and_scores(average, multilabel):
    X, Y = multilabel
    model = _fit(_quick(AnyLossClassifier, average=average), X, Y)
    pred = model.predict(X)
    scorer = get_scorer("f1", average=average)
    assert scorer(model, X, Y) == pytest.approx(
        f1_score(Y, pred, average=average, zero_division=0.0)
    )


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_binary_target_with_an_average_trains_both_classes(average):
    X, y = load_iris(return_X_y=True)
    X, y = StandardScaler().fit_transform(X[50:]), y[50:]
    model = _fit(_quick(AnyLossClassifier, average=average), X, y)
    pred = model.predict(X)
    assert set(np.unique(pred)) <= {1, 2}
    assert get_scorer("f1", average=average)(model, X, y) == pytest.approx(
        f1_score(y, pred, average=average)
    )


def test_multiclass_scorers_equal_scikit_learns(iris):
    X, y = iris
    model = _fit(_quick(AnyLossClassifier, max_iter=3), X, y)
    pred = model.predict(X)
    w = np.linspace(0.5, 2.0, y.shape[0])
    cases = [
        ("f1", "macro", lambda t, p, **k: f1_score(t, p, average="macro", **k)),
        ("f1", "weighted", lambda t, p, **k: f1_score(t, p, average="weighted", **k)),
        ("jaccard", "micro", lambda t, p, **k: jaccard_score(
            t, p, average="micro", **k)),
        ("mcc", None, matthews_corrcoef),
        ("balanced_accuracy", None, balanced_accuracy_score),
    ]  # fmt: skip
    for metric, average, reference in cases:
        scorer = get_scorer(metric, average=average)
        assert scorer(model, X, y) == pytest.approx(reference(y, pred))
        assert scorer(model, X, y, sample_weight=w) == pytest.approx(
            reference(y, pred, sample_weight=w)
        )


def test_scorer_in_a_grid_search_on_a_multiclass_target(iris):
    X, y = iris
    search = GridSearchCV(
        make_pipeline(StandardScaler(), AnyLossClassifier(max_iter=30)),
        {"anylossclassifier__amplifier": [5.0, 20.0]},
        scoring=get_scorer("f1", average="macro"),
        cv=3,
    )
    _fit(search, X, y)
    assert search.best_score_ > 0.85


def test_one_vs_rest_stays_available(iris):
    X, y = iris
    ovr = _fit(OneVsRestClassifier(_quick(AnyLossClassifier)), X, y)
    assert len(ovr.estimators_) == 3
    assert f1_score(y, ovr.predict(X), average="macro") > 0.8


def test_partial_fit_on_multiclass_and_multilabel_batches(iris, multilabel):
    X, y = iris
    order = np.random.default_rng(0).permutation(150)
    model = AnyLossMLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    first = order[:40]
    first = first[y[first] != 2]  # a first batch without class 2
    model.partial_fit(X[first], y[first], classes=[0, 1, 2])
    for batch in np.array_split(order[40:], 4):
        model.partial_fit(X[batch], y[batch])
    assert model.predict_proba(X).shape == (150, 3)
    assert np.all(np.isfinite(model.coefs_[0]))
    with pytest.raises(ValueError, match=r"not in the classes"):
        model.partial_fit(X[:5], np.array([0, 1, 2, 3, 0]))
    X2, Y2 = multilabel
    ml = AnyLossMLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    for batch in np.array_split(np.arange(150), 3):
        ml.partial_fit(X2[batch], Y2[batch], classes=np.arange(4))
    assert ml.predict(X2).shape == Y2.shape
    with pytest.raises(
        ValueError, match=r"y has 3 labels; the first partial_fit had 4"
    ):
        ml.partial_fit(X2[:10], Y2[:10, :3])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bad_targets_and_averages_say_what_is_allowed(Estimator, iris, multilabel):
    X, y = iris
    X2, Y2 = multilabel
    cases = [
        ({"average": "samples"}, X, y, None, r'average="samples" .* multilabel'),
        ({"metric": "mcc", "average": "macro"}, X, y, None, r"average does not apply"),
        ({}, X, y, np.where(y == 1, 0.0, 1.0), r"zero|weight"),
        ({}, X2, np.column_stack([Y2, np.ones(150, int)]), None, r"Label 4 .* always"),
        ({"average": "median"}, X, y, None, r"average"),
        # two-valued, so scikit-learn calls them multilabel indicators
        ({}, X2, 2 * Y2 - 1, None, r"only 0 and 1 .* got the values \[-1, 1\]"),
        ({}, X2, 2 * Y2, None, r"only 0 and 1 .* got the values \[0, 2\]"),
    ]
    for params, Xc, yc, sw, message in cases:
        with pytest.raises(ValueError, match=message):
            _fit(_quick(Estimator, **params), Xc, yc, sample_weight=sw)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_sparse_indicator_target_is_the_dense_one(Estimator, multilabel):
    # scikit-learn's validation passes a sparse y through (MLPClassifier
    # trains on one); so do the scorers.
    from scipy import sparse

    X, Y = multilabel
    dense = _fit(_quick(Estimator), X, Y)
    for Ys in (sparse.csr_matrix(Y), sparse.csc_matrix(Y)):
        model = _fit(_quick(Estimator), X, Ys)
        np.testing.assert_array_equal(model.predict_proba(X), dense.predict_proba(X))
        scorer = get_scorer("f1", average="macro")
        assert scorer(model, X, Ys) == scorer(dense, X, Y)


def test_scorer_rejects_bad_averages(iris):
    X, y = iris
    model = _fit(_quick(AnyLossClassifier, max_iter=2), X, y)
    with pytest.raises(ValueError, match=r"average must be None or one of"):
        get_scorer("f1", average="median")
    with pytest.raises(ValueError, match=r"multilabel targets only"):
        get_scorer("f1", average="samples")(model, X, y)
    with pytest.raises(ValueError, match=r"average does not apply"):
        get_scorer("mcc", average="macro")(model, X, y)


def test_auto_log_loss_weight_of_multiclass_targets():
    from sk_anyloss._mlp import _auto_log_loss_weight

    assert _auto_log_loss_weight("balanced_accuracy", "multiclass") == 1.0
    assert _auto_log_loss_weight("balanced_accuracy", "binary") == 0.0
    assert _auto_log_loss_weight("f1", "multiclass") == 0.5
    assert _auto_log_loss_weight(lambda tn, fp, fn, tp: tp, "multiclass") == 0.0
