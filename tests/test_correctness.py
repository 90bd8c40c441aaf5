"""Optima against closed-form or exact solvers, and default accuracy against scikit-learn."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    make_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier, SGDRegressor
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

ALPHA = 1e-2


def _relative_error(actual, expected):
    return np.linalg.norm(np.ravel(actual) - np.ravel(expected)) / np.linalg.norm(expected)


@pytest.fixture(scope="module")
def binary_problem():
    X, y = make_classification(n_samples=300, n_features=5, n_informative=3, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression_problem():
    X, y = make_regression(n_samples=300, n_features=5, noise=10.0, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def logistic_optimum(binary_problem):
    # mean log-loss + alpha/2 ||w||^2  <=>  C * sum log-loss + 1/2 ||w||^2 with C = 1/(alpha n)
    X, y = binary_problem
    return LogisticRegression(C=1.0 / (ALPHA * len(y)), tol=1e-12, max_iter=10_000).fit(X, y)


@pytest.mark.parametrize(
    "params, tolerance",
    [
        # full batch with a decaying rate: gradient descent to the exact optimum
        (
            dict(batch_size=300, learning_rate="invscaling", eta0=1.0, power_t=0.1, max_iter=3000),
            1e-6,
        ),
        # minibatches, 'optimal' schedule, averaged iterates
        (dict(batch_size=30, learning_rate="optimal", max_iter=500, average=True), 1e-3),
    ],
    ids=["full-batch", "minibatch-averaged"],
)
def test_log_loss_reaches_logistic_regression_optimum(
    binary_problem, logistic_optimum, params, tolerance
):
    X, y = binary_problem
    model = GPUSGDClassifier(loss="log_loss", alpha=ALPHA, tol=None, random_state=0, **params)
    model.fit(X, y)
    assert _relative_error(model.coef_, logistic_optimum.coef_) <= tolerance
    np.testing.assert_allclose(model.intercept_, logistic_optimum.intercept_, atol=10 * tolerance)


@pytest.mark.parametrize(
    "params, tolerance",
    [
        (
            dict(batch_size=300, learning_rate="invscaling", eta0=0.5, power_t=0.1, max_iter=2000),
            1e-6,
        ),
        # minibatches; averaging starts after 10 epochs, past the transient
        (
            dict(batch_size=30, learning_rate="invscaling", eta0=0.1, max_iter=200, average=3000),
            1e-3,
        ),
    ],
    ids=["full-batch", "minibatch-averaged"],
)
def test_squared_error_reaches_ridge_optimum(regression_problem, params, tolerance):
    # mean (p - y)^2 / 2 + alpha/2 ||w||^2  <=>  ||y - Xw||^2 + (alpha n) ||w||^2
    X, y = regression_problem
    ridge = Ridge(alpha=ALPHA * len(y), tol=1e-12).fit(X, y)
    model = GPUSGDRegressor(alpha=ALPHA, tol=None, random_state=0, **params).fit(X, y)
    assert _relative_error(model.coef_, ridge.coef_) <= tolerance


def _held_out(X, y, seed, stratify, standardise=True):
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, random_state=seed, stratify=y if stratify else None
    )
    if not standardise:
        return X_train, X_test, y_train, y_test
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


CLASSIFICATION_SETS = {
    "digits": lambda: load_digits(return_X_y=True),
    "breast_cancer": lambda: load_breast_cancer(return_X_y=True),
    "10-class": lambda: make_classification(
        n_samples=5000,
        n_features=20,
        n_informative=15,
        n_classes=10,
        n_clusters_per_class=1,
        random_state=0,
    ),
}


@pytest.mark.parametrize("standardise", [True, False], ids=["standardised", "raw"])
@pytest.mark.parametrize("name", list(CLASSIFICATION_SETS))
def test_default_accuracy_matches_sklearn(name, standardise):
    """Mean held-out accuracy, both libraries with their defaults.

    Over 10 splits below 2,000 rows (one held-out row of breast_cancer is worth
    0.7 points), 3 above, as in ``benchmarks/defaults_suite.py``.
    """
    X, y = CLASSIFICATION_SETS[name]()
    ours, theirs = [], []
    for seed in range(10 if len(y) < 2000 else 3):
        X_train, X_test, y_train, y_test = _held_out(X, y, seed, True, standardise)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            theirs.append(
                SGDClassifier(random_state=seed).fit(X_train, y_train).score(X_test, y_test)
            )
            ours.append(
                GPUSGDClassifier(random_state=seed).fit(X_train, y_train).score(X_test, y_test)
            )
    assert np.mean(ours) >= np.mean(theirs) - 0.01


def test_default_r2_matches_sklearn():
    X, y = load_diabetes(return_X_y=True)
    ours, theirs = [], []
    for seed in range(3):
        X_train, X_test, y_train, y_test = _held_out(X, y, seed, stratify=False)
        theirs.append(SGDRegressor(random_state=seed).fit(X_train, y_train).score(X_test, y_test))
        ours.append(GPUSGDRegressor(random_state=seed).fit(X_train, y_train).score(X_test, y_test))
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.01
