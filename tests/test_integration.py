"""The estimators inside scikit-learn's (and imbalanced-learn's) machinery."""

import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from imblearn.over_sampling import RandomOverSampler
from imblearn.pipeline import make_pipeline as make_imblearn_pipeline
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.impute import SimpleImputer
from sklearn.metrics import f1_score, log_loss, make_scorer
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_validate,
    train_test_split,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
from sk_anyloss.metrics import get_scorer, gmean_score, gmean_scorer

# short fits keep the tests fast; whether they converge is not the point here
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = [
    AnyLossClassifier(),
    AnyLossMLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
]


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X, 1 - y  # positive = malignant, the minority


@pytest.fixture(scope="module")
def imbalanced():
    return make_classification(
        n_samples=1200,
        n_features=10,
        n_informative=4,
        weights=[0.93],
        n_clusters_per_class=1,
        class_sep=0.3,
        flip_y=0.02,
        random_state=0,
    )


def test_pipeline_with_column_transformer():
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame(
        {
            "age": rng.normal(50, 10, n),
            "income": rng.lognormal(10, 1, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "region": rng.choice(["north", "south"], n),
        }
    )
    logit = 0.08 * (df["age"] - 50) + 1.5 * (df["plan"] == "pro") - 1.5
    y = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-logit)), "churn", "stay")
    df.loc[rng.choice(n, 40, replace=False), "age"] = np.nan
    pre = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(SimpleImputer(), StandardScaler()),
                ["age", "income"],
            ),
            ("cat", OneHotEncoder(), ["plan", "region"]),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", AnyLossClassifier(metric="f1"))])
    X_tr, X_te, y_tr, y_te = train_test_split(df, y, stratify=y, random_state=0)
    model.fit(X_tr, y_tr)
    clf = model.named_steps["clf"]
    assert clf.n_features_in_ == 2 + 3 + 2
    # "stay" > "churn": the positive class is classes_[1] = "stay"
    assert list(clf.classes_) == ["churn", "stay"]
    y_pred = model.predict(X_te)
    assert set(y_pred) <= {"churn", "stay"}
    assert f1_score(y_te, y_pred, pos_label="stay") > 0.6
    assert get_scorer("f1", pos_label="stay")(model, X_te, y_te) == pytest.approx(
        f1_score(y_te, y_pred, pos_label="stay")
    )


@pytest.mark.parametrize(
    "scoring",
    [make_scorer(f1_score), get_scorer("f1")],
    ids=["make_scorer", "get_scorer"],
)
def test_grid_search(imbalanced, scoring):
    X, y = imbalanced
    param_grid = {
        "clf__metric": ["f1", "accuracy"],
        "clf__amplifier": [10.0, 73.0],
        "clf__alpha": [0.0, 0.1],
    }
    # The paper's method (no log-loss warm-up): the metric alone decides.
    pipe = Pipeline(
        [("scale", StandardScaler()), ("clf", AnyLossClassifier(warmup_iter=0))]
    )
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, param_grid, scoring=scoring, cv=cv, n_jobs=2)
    search.fit(X, y)
    results = search.cv_results_
    assert len(results["params"]) == 8
    assert search.best_score_ == np.max(results["mean_test_score"])
    # On 7 % positives, the model trained on F1 wins F1 over the one
    # trained on accuracy.
    assert search.best_params_["clf__metric"] == "f1"
    f1_trained = np.array([p["clf__metric"] == "f1" for p in results["params"]])
    scores = results["mean_test_score"]
    assert scores[f1_trained].mean() > scores[~f1_trained].mean()
    # refit on all the data with the best parameters
    best = search.best_estimator_.named_steps["clf"]
    assert best.metric == "f1"
    assert best.amplifier == search.best_params_["clf__amplifier"]
    assert scoring(search, X, y) == f1_score(y, search.predict(X))


def test_grid_search_scorers_agree(imbalanced):
    X, y = imbalanced
    pipe = make_pipeline(StandardScaler(), AnyLossClassifier(max_iter=200))
    grid = {"anylossclassifier__amplifier": [5.0, 40.0]}
    cv = StratifiedKFold(3, shuffle=True, random_state=1)
    a = GridSearchCV(pipe, grid, scoring=make_scorer(f1_score), cv=cv).fit(X, y)
    b = GridSearchCV(pipe, grid, scoring=get_scorer("f1"), cv=cv).fit(X, y)
    np.testing.assert_allclose(
        a.cv_results_["mean_test_score"], b.cv_results_["mean_test_score"]
    )


def test_cross_validate_with_several_scorers(imbalanced):
    X, y = imbalanced
    model = make_pipeline(StandardScaler(), AnyLossClassifier(metric="gmean"))
    scoring = {
        "gmean": gmean_scorer,
        "mcc": get_scorer("mcc"),
        "recall": "recall",
        "roc_auc": "roc_auc",
    }
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    res = cross_validate(
        model,
        X,
        y,
        scoring=scoring,
        cv=cv,
        return_estimator=True,
        return_indices=True,
        n_jobs=2,
    )
    for name in scoring:
        assert res[f"test_{name}"].shape == (4,)
        assert np.all(res[f"test_{name}"] > 0.5), name
    # each fold's score is the metric of that fold's predictions
    for est, idx, score in zip(
        res["estimator"], res["indices"]["test"], res["test_gmean"]
    ):
        assert score == gmean_score(y[idx], est.predict(X[idx]))
    # training on G-mean balances the two rates: recall far above the
    # 7 % base rate
    assert res["test_recall"].mean() > 0.6


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_clone(estimator, cancer):
    X, y = cancer
    est = clone(estimator).set_params(metric="mcc", amplifier=30.0)
    est.fit(StandardScaler().fit_transform(X), y)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "classes_")
    assert hasattr(est, "classes_")


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_pickle_and_joblib_round_trips(estimator, cancer):
    X, y = cancer
    model = make_pipeline(StandardScaler(), clone(estimator)).fit(X, y)
    expected_proba = model.predict_proba(X)
    expected = model.predict(X)

    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), expected)
    np.testing.assert_array_equal(restored.predict_proba(X), expected_proba)

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    restored = joblib.load(buffer)
    np.testing.assert_array_equal(restored.predict(X), expected)
    np.testing.assert_array_equal(restored.predict_proba(X), expected_proba)
    # a restored model can be refitted
    restored.fit(X[:300], y[:300])


def test_imbalanced_learn_pipeline_with_sampler(imbalanced):
    X, y = imbalanced
    X_tr, X_te, y_tr, _ = train_test_split(X, y, stratify=y, random_state=0)
    # Without the class-balanced warm-up, so that the sampler's effect shows.
    model = AnyLossClassifier(metric="accuracy", warmup_iter=0)
    plain = make_pipeline(StandardScaler(), model)
    sampled = make_imblearn_pipeline(
        StandardScaler(), RandomOverSampler(random_state=0), clone(model)
    )
    sampled.fit(X_tr, y_tr)
    # the sampler acts in fit only: predictions cover every test sample
    assert sampled.predict(X_te).shape == (X_te.shape[0],)
    # trained on balanced data, accuracy favours the minority class more
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    recall_plain = cross_validate(plain, X, y, scoring="recall", cv=cv)
    recall_sampled = cross_validate(sampled, X, y, scoring="recall", cv=cv)
    assert (
        recall_sampled["test_score"].mean() > recall_plain["test_score"].mean() + 0.05
    )
    res = cross_validate(sampled, X, y, scoring=get_scorer("gmean"), cv=3)
    assert res["test_score"].mean() > 0.6


def test_calibrated_classifier(cancer):
    X, y = cancer
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, stratify=y, random_state=0)
    # The paper's method: zero start, steep amplifier, saturated probabilities.
    raw = make_pipeline(
        StandardScaler(), AnyLossClassifier(metric="f1", warmup_iter=0, amplifier=73)
    )
    calibrated = CalibratedClassifierCV(raw, method="sigmoid", cv=3)
    raw.fit(X_tr, y_tr)
    calibrated.fit(X_tr, y_tr)
    proba = calibrated.predict_proba(X_te)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert len(calibrated.calibrated_classifiers_) == 3
    # AnyLoss pushes probabilities towards 0 and 1; calibration gives a much
    # better log-loss with about the same decisions
    assert log_loss(y_te, proba) < 0.8 * log_loss(y_te, raw.predict_proba(X_te))
    assert f1_score(y_te, calibrated.predict(X_te)) > 0.9


def test_metadata_routing_of_sample_weight(imbalanced):
    X, y = imbalanced
    rng = np.random.default_rng(0)
    # zero weight on a third of the samples: the same as dropping them
    sw = rng.choice([0.0, 1.0, 2.0], size=y.shape[0])
    keep = sw > 0
    with sklearn.config_context(enable_metadata_routing=True):
        clf = AnyLossClassifier(max_iter=300).set_fit_request(sample_weight=True)
        scaler = StandardScaler().set_fit_request(sample_weight=False)
        pipe = make_pipeline(scaler, clf)
        pipe.fit(X, y, sample_weight=sw)
        # the scaler declines the weights: it sees every row alike
        scaled = StandardScaler().fit(X).transform(X)
        direct = AnyLossClassifier(max_iter=300).fit(scaled, y, sample_weight=sw)
        np.testing.assert_allclose(pipe[-1].coef_, direct.coef_)
        dropped = AnyLossClassifier(max_iter=300).fit(
            scaled[keep], y[keep], sample_weight=sw[keep]
        )
        np.testing.assert_allclose(direct.coef_, dropped.coef_, rtol=1e-7)

        scorer = get_scorer("f1").set_score_request(sample_weight=True)
        search = GridSearchCV(
            pipe,
            {"anylossclassifier__alpha": [0.0, 1.0]},
            scoring=scorer,
            cv=StratifiedKFold(3, shuffle=True, random_state=0),
        )
        search.fit(X, y, sample_weight=sw)
        # the refit saw the weights
        best_alpha = search.best_params_["anylossclassifier__alpha"]
        np.testing.assert_allclose(
            search.best_estimator_[-1].coef_,
            AnyLossClassifier(max_iter=300, alpha=best_alpha)
            .fit(scaled, y, sample_weight=sw)
            .coef_,
        )
        # the scorer saw the weights: the fold scores are weighted F1
        cv = StratifiedKFold(3, shuffle=True, random_state=0)
        alpha = search.cv_results_["params"][0]["anylossclassifier__alpha"]
        for k, (tr, te) in enumerate(cv.split(X, y)):
            fold = clone(pipe).set_params(anylossclassifier__alpha=alpha)
            fold.fit(X[tr], y[tr], sample_weight=sw[tr])
            expected = f1_score(y[te], fold.predict(X[te]), sample_weight=sw[te])
            assert search.cv_results_[f"split{k}_test_score"][0] == pytest.approx(
                expected
            )
        # without the request, routing refuses the weights instead of ignoring
        with pytest.raises(ValueError, match="sample_weight"):
            make_pipeline(StandardScaler(), AnyLossClassifier()).fit(
                X, y, sample_weight=sw
            )
