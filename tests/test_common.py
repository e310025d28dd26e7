"""scikit-learn's estimator checks."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier


def _expected_failures(estimator):
    if isinstance(estimator, AnyLossMLPClassifier):
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "Mini-batch training: a weight of 2 and a repeated row fall into "
                "different mini-batches, so the two fits differ by design (as for "
                "MLPClassifier's stochastic solvers). With one full batch they are "
                "equivalent: see tests/test_mlp.py, "
                "test_sample_weight_equals_repetition_full_batch."
            ),
        }
    return {}


@parametrize_with_checks(
    [AnyLossClassifier(), AnyLossMLPClassifier()],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
