"""scikit-learn's estimator checks: every one must pass."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier


@parametrize_with_checks([AnyLossClassifier(), AnyLossMLPClassifier()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
