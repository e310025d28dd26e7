import pickle
import threading

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.datasets import load_breast_cancer, load_wine, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler

from sk_anyloss import METRIC_NAMES, AnyLossClassifier
from sk_anyloss._backend import PARALLEL_MIN_ENTRIES
from sk_anyloss._linear import WARM_UP_GTOL

import naive


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), 1 - y  # 1 = malignant


def _imbalanced(n=6000, seed=0):
    X, y = make_classification(
        n_samples=n,
        n_features=12,
        n_informative=6,
        weights=[0.93],
        flip_y=0.02,
        class_sep=0.8,
        random_state=seed,
    )
    return train_test_split(X, y, stratify=y, test_size=0.5, random_state=seed)


def test_f1_model_beats_logistic_regression_on_f1():
    X_train, X_test, y_train, y_test = _imbalanced()
    anyloss = AnyLossClassifier(metric="f1").fit(X_train, y_train)
    logreg = LogisticRegression().fit(X_train, y_train)
    f1_anyloss = f1_score(y_test, anyloss.predict(X_test))
    f1_logreg = f1_score(y_test, logreg.predict(X_test))
    assert f1_anyloss > f1_logreg + 0.05, (f1_anyloss, f1_logreg)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_every_metric_trains_and_lowers_its_loss(cancer, metric):
    X, y = cancer
    clf = AnyLossClassifier(metric=metric, beta=2.0).fit(X, y)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X, y) > 0.95
    assert clf.coef_.shape == (1, X.shape[1]) and clf.intercept_.shape == (1,)
    # From zero weights (no warm-up) the metric loss does all the work.
    cold = AnyLossClassifier(metric=metric, beta=2.0, warmup_iter=0).fit(X, y)
    assert cold.loss_curve_[-1] < 0.5 * cold.loss_curve_[0]
    assert cold.score(X, y) > 0.95


@pytest.mark.parametrize("warmup_iter", [0, 7])
@pytest.mark.parametrize("weighted", [False, True])
def test_fit_is_the_reference_warm_up_then_training(warmup_iter, weighted):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 4))
    y = (X[:, 0] + rng.standard_normal(300) > 1.0).astype(int)
    sw = rng.uniform(0.5, 2.0, 300) if weighted else None
    clf = AnyLossClassifier(
        warmup_iter=warmup_iter, max_iter=30, tol=None, alpha=0.01
    ).fit(X, y, sample_weight=sw)
    ref = naive.fit(
        X,
        y,
        sw,
        amplifier=20.0,
        alpha=0.01,
        max_iter=30,
        learning_rate=clf.learning_rate_init,
        warmup_iter=warmup_iter,
        warmup_gtol=WARM_UP_GTOL,
    )
    np.testing.assert_allclose(np.r_[clf.coef_[0], clf.intercept_], ref, rtol=1e-8)


def test_predict_is_proba_at_one_half(cancer):
    X, y = cancer
    clf = AnyLossClassifier().fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), (proba[:, 1] >= 0.5).astype(int))
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba)
    assert np.array_equal(clf.decision_function(X) >= 0, proba[:, 1] >= 0.5)


def test_tol_none_runs_exactly_max_iter(cancer):
    X, y = cancer
    clf = AnyLossClassifier(max_iter=37, tol=None).fit(X, y)
    assert clf.n_iter_ == 37 and len(clf.loss_curve_) == 37


def test_tolerance_stops_and_max_iter_warns(cancer):
    X, y = cancer
    assert AnyLossClassifier(max_iter=5000).fit(X, y).n_iter_ < 5000
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        AnyLossClassifier(max_iter=3).fit(X, y)


def test_string_labels_and_positive_class(cancer):
    X, y = cancer
    names = np.array(["benign", "malignant"])
    clf = AnyLossClassifier().fit(X, names[y])
    numeric = AnyLossClassifier().fit(X, y)
    assert list(clf.classes_) == ["benign", "malignant"]
    np.testing.assert_array_equal(clf.coef_, numeric.coef_)
    np.testing.assert_array_equal(clf.predict(X), names[numeric.predict(X)])
    # The positive class is classes_[1]: relabelling so that "benign" sorts
    # last optimises F1 of benign instead, which is a different model.
    flipped = AnyLossClassifier().fit(X, np.array(["z_benign", "malignant"])[y])
    assert flipped.classes_[1] == "z_benign"
    assert not np.allclose(flipped.coef_, -numeric.coef_)
    assert f1_score(y == 0, flipped.predict(X) == "z_benign") > 0.95


def test_multiclass_is_one_joint_model():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = AnyLossClassifier(metric="f1").fit(X, y)
    assert clf.coef_.shape == (3, 13) and clf.intercept_.shape == (3,)
    assert len(clf.loss_curve_) == clf.n_iter_ and np.isscalar(clf.loss_curve_[0])
    scores = clf.decision_function(X)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba, softmax(scores, axis=1), rtol=1e-12)
    assert clf.score(X, y) > 0.95
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[scores.argmax(axis=1)])
    # One-vs-rest stays available: each of its models is the binary model of
    # its class against the rest.
    ovr = OneVsRestClassifier(AnyLossClassifier(metric="f1")).fit(X, y)
    binary = AnyLossClassifier(metric="f1").fit(X, y == 2)
    np.testing.assert_array_equal(ovr.estimators_[2].coef_, binary.coef_)


def test_float32_stays_float32(cancer):
    X, y = cancer
    clf32 = AnyLossClassifier().fit(X.astype(np.float32), y)
    clf64 = AnyLossClassifier().fit(X, y)
    assert clf32.coef_.dtype == np.float32 and clf64.coef_.dtype == np.float64
    np.testing.assert_allclose(clf32.coef_, clf64.coef_, rtol=1e-3, atol=1e-3)


def test_integer_sample_weights_equal_repetition(cancer):
    X, y = cancer
    rng = np.random.default_rng(0)
    sw = rng.integers(1, 4, X.shape[0])
    weighted = AnyLossClassifier(tol=None, max_iter=200).fit(X, y, sample_weight=sw)
    repeated = AnyLossClassifier(tol=None, max_iter=200).fit(
        np.repeat(X, sw, axis=0), np.repeat(y, sw)
    )
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-6, atol=1e-9)


def test_verbose_prints_the_loss(cancer, capsys):
    X, y = cancer
    AnyLossClassifier(max_iter=3, tol=None, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("loss = ") == 3 and "Iteration 3" in out


def test_pickle_round_trip(cancer):
    X, y = cancer
    clf = AnyLossClassifier().fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def _large_problem():
    rng = np.random.default_rng(5)
    n = PARALLEL_MIN_ENTRIES // 4 + 1000
    X = rng.standard_normal((n, 8))
    y = (X[:, 0] + rng.standard_normal(n) > 1.5).astype(int)
    return X, y


def test_same_model_for_any_thread_count():
    numba = pytest.importorskip("numba")
    X, y = _large_problem()
    coefs = []
    for n_threads in sorted({1, 2, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(n_threads)
        try:
            coefs.append(AnyLossClassifier(max_iter=50, tol=None).fit(X, y).coef_)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for coef in coefs[1:]:
        np.testing.assert_array_equal(coef, coefs[0])


def test_fits_from_several_threads_at_once():
    X, y = _large_problem()
    expected = AnyLossClassifier(max_iter=50, tol=None).fit(X, y).coef_
    results, errors = [None] * 4, []

    def work(k):
        try:
            results[k] = AnyLossClassifier(max_iter=50, tol=None).fit(X, y).coef_
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for coef in results:
        np.testing.assert_array_equal(coef, expected)


# --- bad input -------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X_is_rejected(cancer, bad):
    X, y = cancer
    X = X.copy()
    X[3, 2] = bad
    with pytest.raises(ValueError, match="Input X contains"):
        AnyLossClassifier().fit(X, y)


def test_wrong_shapes_are_rejected(cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="2D array"):
        AnyLossClassifier().fit(X[:, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        AnyLossClassifier().fit(X, y[:-1])


def test_single_class_is_rejected(cancer):
    X, _ = cancer
    with pytest.raises(ValueError, match="at least two classes"):
        AnyLossClassifier().fit(X, np.ones(X.shape[0]))


def test_continuous_target_is_rejected(cancer):
    X, _ = cancer
    with pytest.raises(ValueError, match="Unknown label type"):
        AnyLossClassifier().fit(X, np.linspace(0, 1, X.shape[0]))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"metric": "auc"}, "'metric' parameter .* must be a str among"),
        ({"beta": 0.0}, "'beta' parameter"),
        ({"beta": -1.0}, "'beta' parameter"),
        ({"amplifier": 0.0}, "'amplifier' parameter"),
        ({"amplifier": "steep"}, "'amplifier' parameter .* or a str among {'auto'}"),
        ({"alpha": -0.1}, "'alpha' parameter"),
        ({"max_iter": 0}, "'max_iter' parameter"),
        ({"solver": "lbfgs"}, "'solver' parameter"),
    ],
)
def test_bad_parameters_are_rejected(cancer, params, match):
    X, y = cancer
    with pytest.raises(ValueError, match=match):
        AnyLossClassifier(**params).fit(X, y)


@pytest.mark.parametrize(
    "metric, expected",
    [
        ("balanced_accuracy", 7.0),
        ("gmean", 7.0),
        ("f1", 20.0),
        ("mcc", 20.0),
        (lambda tn, fp, fn, tp: tp / (tp + fp + fn), 20.0),
    ],
)
def test_auto_amplifier_is_the_metric_default_and_equals_passing_it(
    cancer, metric, expected
):
    X, y = cancer
    auto = AnyLossClassifier(metric, max_iter=30).fit(X, y)
    assert auto.amplifier == "auto" and auto.amplifier_ == expected
    pinned = AnyLossClassifier(metric, amplifier=expected, max_iter=30).fit(X, y)
    assert pinned.amplifier_ == expected
    np.testing.assert_array_equal(auto.coef_, pinned.coef_)
    np.testing.assert_array_equal(auto.intercept_, pinned.intercept_)


def test_auto_amplifier_keeps_20_for_multilabel_and_multiclass_targets(cancer):
    X, y = cancer
    Y = np.column_stack([y, X[:, 0] > 0.5])
    multilabel = AnyLossClassifier("balanced_accuracy", average="macro", max_iter=5)
    assert multilabel.fit(X, Y).amplifier_ == 20.0
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    multi = AnyLossClassifier("balanced_accuracy", max_iter=5).fit(X, y)
    assert multi.amplifier_ == 20.0


def test_unknown_metric_message_lists_valid_names(cancer):
    X, y = cancer
    with pytest.raises(ValueError) as exc:
        AnyLossClassifier(metric="auc").fit(X, y)
    for name in METRIC_NAMES:
        assert name in str(exc.value)


def test_bad_sample_weights_are_rejected(cancer):
    X, y = cancer
    sw = np.ones(X.shape[0])
    sw[0] = -1
    with pytest.raises(ValueError, match="Negative values"):
        AnyLossClassifier().fit(X, y, sample_weight=sw)
    with pytest.raises(ValueError, match="non-zero"):
        AnyLossClassifier().fit(X, y, sample_weight=np.zeros(X.shape[0]))
    with pytest.raises(ValueError, match="zero total sample_weight"):
        AnyLossClassifier().fit(X, y, sample_weight=(y == 0).astype(float))


def test_predict_checks_fit_and_feature_count(cancer):
    X, y = cancer
    with pytest.raises(NotFittedError):
        AnyLossClassifier().predict(X)
    clf = AnyLossClassifier().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :5])


def test_diverging_training_raises_a_clear_error():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)) * 1e300  # X @ w overflows
    y = (rng.random(40) < 0.3).astype(int)
    with pytest.raises(ValueError, match="non-finite.*StandardScaler"):
        AnyLossClassifier(solver="gd", learning_rate_init=1e10).fit(X, y)
