"""The benchmark suite (benchmarks/suite.py): loaders, preprocessing, runner,
tables and plot."""

import numpy as np
import pytest

import suite

# rows, positive %: the documented shape of each dataset.
EXPECTED = {
    "haberman": (306, 26.5),
    "ecoli1": (336, 22.9),
    "ecoli3": (336, 10.4),
    "ionosphere": (351, 35.9),
    "led7digit": (443, 8.35),
    "saheart": (462, 34.6),
    "cm1": (498, 9.84),
    "breast_cancer": (569, 37.3),
    "wisconsin": (683, 35.0),
    "abalone9_18": (731, 5.75),
    "pima": (768, 34.9),
    "vehicle0": (846, 23.5),
    "vehicle2": (846, 25.8),
    "winequality_white_3_vs_7": (900, 2.22),
    "vowel0": (988, 9.11),
    "flaref": (1066, 4.03),
    "pc1": (1109, 6.9),
    "attrition": (1470, 16.1),
    "yeast1": (1484, 28.9),
    "yeast3": (1484, 11.0),
    "yeast4": (1484, 3.4),
    "yeast6": (1484, 2.36),
    "winequality_red_4": (1599, 3.31),
    "cells": (2019, 35.6),
    "poker_8_9_vs_5": (2075, 1.20),
    "kc1": (2109, 15.5),
    "abalone_17_vs_7_8_9_10": (2338, 2.48),
    "hmda": (2380, 12.0),
    "ada": (4147, 24.8),
    "abalone19": (4174, 0.77),
    "credit_data": (4454, 28.2),
    "mlc_churn": (5000, 14.1),
    "page_blocks0": (5472, 10.2),
    "stackoverflow_remote": (5594, 10.3),
    "caravan": (5822, 5.98),
    "satimage": (6435, 9.7),
    "wa_churn": (7043, 26.5),
    "lending_club": (9857, 5.25),
    "default": (10000, 3.3),
    "sylva": (13086, 6.15),
    "trump_tweets": (20761, 22.4),
    "diamonds_fair": (53940, 2.98),
    "fars": (100968, 8.6),
    "flights_cancelled": (336776, 2.45),
}


def test_the_suite_is_the_documented_one():
    assert list(suite.DATASETS) == list(EXPECTED)


@pytest.mark.parametrize("key", list(EXPECTED))
def test_dataset_loads_with_the_minority_as_one(key):
    X, y = suite.load(key)
    n, percent = EXPECTED[key]
    assert X.shape[0] == y.shape[0] == n
    assert set(np.unique(y)) == {0, 1}
    assert 100 * y.mean() == pytest.approx(percent, abs=0.06)


def test_identifiers_and_split_indicators_are_dropped():
    X, _ = suite.load("cells")
    assert "case" not in X.columns and "class" not in X.columns
    X, _ = suite.load("attrition")
    assert "Attrition" not in X.columns


def test_leak_columns_are_dropped():
    X, _ = suite.load("fars")
    assert not {"RACE", "HISPANIC_ORIGIN", "INJURY_SEVERITY"} & set(X.columns)
    X, _ = suite.load("flights_cancelled")
    assert set(X.columns) == {
        "month",
        "day",
        "sched_dep_time",
        "sched_arr_time",
        "carrier",
        "origin",
        "dest",
        "distance",
        "hour",
        "minute",
    }


def test_preprocessing_imputes_encodes_and_standardises():
    X, y = suite.load("mlc_churn")
    X = X.copy()
    X.iloc[::7, 0] = None  # a categorical column with holes
    X.iloc[::5, 5] = np.nan  # and a numeric one
    Z = suite.preprocessing(X).fit_transform(X)
    assert Z.dtype == np.float64 and np.isfinite(Z).all()
    assert Z.shape[1] > X.shape[1]  # the categoricals became indicator columns
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-9)


def test_text_dataset_becomes_sparse_tf_idf_features():
    X, y = suite.load("trump_tweets")
    assert X.ndim == 1 and isinstance(X[0], str)
    features = suite.preprocessing(X).fit_transform(X[:2000])
    assert features.format == "csr" and features.shape[0] == 2000
    assert features.nnz < 0.01 * features.shape[0] * features.shape[1]


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown dataset 'iris'; the suite has"):
        suite.load("iris")


def test_run_tables_and_plot(tmp_path):
    records = suite.run(["haberman", "pima"], ["f1"], ("linear",), n_folds=2)
    # Metric-free baselines once per dataset, the others once per metric.
    assert len(records) == 2 * 4
    assert all(np.isfinite(list(r["scores"].values())).all() for r in records)
    table = suite.tables(records, "f1", "linear")
    lines = table.splitlines()
    assert lines[2].startswith("| haberman | 306 | 26.5 |")
    wins = lines[-2].split("|")[4:7]
    assert all(sum(map(int, cell.split("/"))) == 2 for cell in wins)
    suite.plot(records, ["f1"], tmp_path / "suite.png")
    assert (tmp_path / "suite.png").stat().st_size > 10_000


def test_explore_scores_are_the_mean_fold_scores_per_dataset():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, fbeta_score

    X, y = suite.load("haberman")
    data = [("haberman", list(suite.prepared_folds(X, y, suite.cv_folds(X, y))))]
    means, fit_s = suite.explore_scores(
        lambda: LogisticRegression(class_weight="balanced"), data, "f1"
    )
    folds = data[0][1]
    expected = np.mean(
        [
            f1_score(
                y_te,
                LogisticRegression(class_weight="balanced").fit(X, y).predict(X_te),
            )
            for X, y, X_te, y_te in folds
        ]
    )
    assert means == [pytest.approx(expected)]
    assert len(fit_s) == len(folds) and all(t > 0 for t in fit_s)
    # F-beta with its beta, in the model's scorer as in sklearn's
    means, _ = suite.explore_scores(
        lambda: LogisticRegression(class_weight="balanced"), data, "fbeta", 2.0
    )
    expected = np.mean(
        [
            fbeta_score(
                y_te,
                LogisticRegression(class_weight="balanced").fit(X, y).predict(X_te),
                beta=2.0,
            )
            for X, y, X_te, y_te in folds
        ]
    )
    assert means == [pytest.approx(expected)]
