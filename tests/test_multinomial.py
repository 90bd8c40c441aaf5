"""multi_class='multinomial': one softmax model over all classes, against LogisticRegression."""

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier

ALPHA = 1e-2


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_full_batch_reaches_the_multinomial_logistic_optimum(iris):
    # mean cross-entropy + alpha/2 ||W||^2  <=>  LogisticRegression with C = 1 / (alpha n)
    X, y = iris
    reference = LogisticRegression(C=1.0 / (ALPHA * len(y)), tol=1e-12, max_iter=10_000)
    reference.fit(X, y)
    model = GPUSGDClassifier(
        loss="log_loss",
        multi_class="multinomial",
        alpha=ALPHA,
        batch_size=len(y),
        learning_rate="constant",
        eta0=1.0,
        scale_learning_rate=False,
        shuffle=False,
        tol=None,
        max_iter=2000,
    ).fit(X, y)
    scale = np.linalg.norm(reference.coef_)
    assert np.linalg.norm(model.coef_ - reference.coef_) <= 1e-4 * scale
    np.testing.assert_allclose(model.intercept_, reference.intercept_, atol=1e-4 * scale)
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X), atol=1e-4)


def test_probabilities_are_the_softmax_and_sum_to_one(iris):
    X, y = iris
    model = GPUSGDClassifier(loss="log_loss", multi_class="multinomial", random_state=0)
    proba = model.fit(X, y).predict_proba(X)
    decision = model.decision_function(X)
    expected = np.exp(decision) / np.exp(decision).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(proba, expected, rtol=1e-10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), model.classes_[np.argmax(proba, axis=1)])
    assert model.score(X, y) > 0.9


def test_default_stays_one_vs_rest(iris):
    X, y = iris
    ovr = GPUSGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    assert ovr.multi_class == "ovr"
    # one-vs-rest probabilities are normalised sigmoids, not a softmax
    decision = ovr.decision_function(X)
    sigmoid = 1.0 / (1.0 + np.exp(-decision))
    np.testing.assert_allclose(
        ovr.predict_proba(X), sigmoid / sigmoid.sum(axis=1, keepdims=True), rtol=1e-10
    )


def test_class_weight_weights_each_row_by_its_class(iris):
    # class weights are row weights for the softmax: weight 3 on class 2 equals its
    # rows repeated three times (full batch, constant rate: the same gradient)
    X, y = iris
    params = dict(
        loss="log_loss",
        multi_class="multinomial",
        batch_size=10_000,
        learning_rate="constant",
        eta0=0.5,
        scale_learning_rate=False,
        shuffle=False,
        tol=None,
        max_iter=50,
    )
    weighted = GPUSGDClassifier(class_weight={2: 3.0}, **params).fit(X, y)
    repeat = np.where(y == 2, 3, 1)
    sample = GPUSGDClassifier(**params).fit(X, y, sample_weight=repeat.astype(float))
    np.testing.assert_allclose(weighted.coef_, sample.coef_, rtol=1e-10)


def test_multinomial_needs_the_log_loss(iris):
    X, y = iris
    with pytest.raises(ValueError, match="multinomial.*log_loss"):
        GPUSGDClassifier(loss="hinge", multi_class="multinomial").fit(X, y)


def test_two_classes_is_the_binary_logistic_model():
    X, y = make_classification(n_samples=200, n_features=5, random_state=0)
    params = dict(loss="log_loss", random_state=0, max_iter=5, tol=None)
    binary = GPUSGDClassifier(**params).fit(X, y)
    multinomial = GPUSGDClassifier(multi_class="multinomial", **params).fit(X, y)
    np.testing.assert_array_equal(multinomial.coef_, binary.coef_)


def test_export_is_a_logistic_regression_with_the_same_probabilities(iris):
    X, y = iris
    model = GPUSGDClassifier(loss="log_loss", multi_class="multinomial", random_state=0)
    exported = model.fit(X, y).to_sklearn()
    assert isinstance(exported, LogisticRegression)
    np.testing.assert_allclose(exported.predict_proba(X), model.predict_proba(X), rtol=1e-10)
