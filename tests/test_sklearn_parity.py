"""With batch_size=1 every step is one sample: the trajectory is scikit-learn's.

scikit-learn's SGD is the independent reference here: same data, no shuffling,
a fixed number of epochs, and the coefficients must agree to rounding error.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

CLASSIFICATION_LOSSES = ["hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron"]
REGRESSION_LOSSES = ["squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"]


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _fit_both(reference_class, our_class, X, y, **params):
    common = dict(shuffle=False, tol=None, max_iter=3, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = reference_class(**common).fit(X, y)
        ours = our_class(batch_size=1, **common).fit(X, y)
    return reference, ours


# squared_hinge with the 'optimal' rate overflows on iris in both libraries.
LOSS_AND_RATE = [
    (loss, rate)
    for loss in CLASSIFICATION_LOSSES
    for rate in ["optimal", "invscaling", "constant"]
    if (loss, rate) != ("squared_hinge", "optimal")
]


@pytest.mark.parametrize("loss, learning_rate", LOSS_AND_RATE)
@pytest.mark.parametrize("penalty", ["l2", "l1", "elasticnet", None])
def test_classifier_per_sample_steps_match_sklearn(iris, loss, learning_rate, penalty):
    X, y = iris
    reference, ours = _fit_both(
        SGDClassifier,
        GPUSGDClassifier,
        X,
        y,
        loss=loss,
        learning_rate=learning_rate,
        eta0=0.05,
        penalty=penalty,
    )
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=1e-9, atol=1e-9)
    assert ours.t_ == reference.t_


@pytest.mark.parametrize("loss", REGRESSION_LOSSES)
@pytest.mark.parametrize("learning_rate", ["invscaling", "constant"])
@pytest.mark.parametrize("average", [False, True, 50])
def test_regressor_per_sample_steps_match_sklearn(diabetes, loss, learning_rate, average):
    X, y = diabetes
    reference, ours = _fit_both(
        SGDRegressor,
        GPUSGDRegressor,
        X,
        y,
        loss=loss,
        learning_rate=learning_rate,
        eta0=0.01,
        average=average,
    )
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("learning_rate", ["pa1", "pa2"])
def test_passive_aggressive_rates_match_sklearn(iris, diabetes, learning_rate):
    X, y = iris
    reference, ours = _fit_both(
        SGDClassifier,
        GPUSGDClassifier,
        X,
        y,
        loss="hinge",
        learning_rate=learning_rate,
        eta0=0.1,
        penalty=None,
    )
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9)
    X, y = diabetes
    reference, ours = _fit_both(
        SGDRegressor,
        GPUSGDRegressor,
        X,
        y,
        loss="epsilon_insensitive",
        learning_rate=learning_rate,
        eta0=0.1,
    )
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9)


def test_class_and_sample_weights_match_sklearn(iris):
    X, y = iris
    sample_weight = np.linspace(0.5, 2.0, len(y))
    params = dict(class_weight={0: 2.0, 1: 0.5, 2: 1.0}, learning_rate="constant", eta0=0.02)
    common = dict(shuffle=False, tol=None, max_iter=2, **params)
    reference = SGDClassifier(**common).fit(X, y, sample_weight=sample_weight)
    ours = GPUSGDClassifier(batch_size=1, **common).fit(X, y, sample_weight=sample_weight)
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9)


def test_partial_fit_continues_like_sklearn(iris):
    X, y = iris
    params = dict(shuffle=False, learning_rate="invscaling", eta0=0.05)
    reference = SGDClassifier(**params)
    ours = GPUSGDClassifier(batch_size=1, **params)
    for chunk in np.array_split(np.arange(len(y)), 3):
        reference.partial_fit(X[chunk], y[chunk], classes=np.unique(y))
        ours.partial_fit(X[chunk], y[chunk], classes=np.unique(y))
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9)
    assert ours.t_ == reference.t_
