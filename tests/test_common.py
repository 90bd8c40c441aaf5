"""scikit-learn's estimator contract, over every public estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

# scikit-learn's own SGDClassifier / SGDRegressor expect the same failures: a
# stochastic optimizer that shuffles rows cannot make a weight of 2 identical to
# a repeated row (scikit-learn meta-issue #16298).
SAMPLE_WEIGHT_REASON = "sample_weight is not equivalent to removing/repeating samples."
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_REASON,
    "check_sample_weight_equivalence_on_sparse_data": SAMPLE_WEIGHT_REASON,
}


@parametrize_with_checks(
    [GPUSGDClassifier(), GPUSGDRegressor()],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
