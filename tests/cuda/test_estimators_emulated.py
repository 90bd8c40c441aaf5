"""The estimators end to end through the kernel driver on the CPU backend.

``SK_GPUSGD_CUDA_EMULATE=1`` makes NumPy dense input train on the emulated kernels (the
same driver, launches and graphs as on a GPU); the reference engine trains the same
estimator without it. Same row order (the driver draws the reference engine's
permutations on this backend), so the models agree to 1e-5.
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor
from sk_gpusgd._engines.cuda import driver

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def classification():
    X, y = make_classification(
        n_samples=150, n_features=12, n_informative=6, n_classes=4, random_state=0
    )
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=150, n_features=12, noise=5.0, random_state=0)
    return StandardScaler().fit_transform(X), y / 50


def _fit_both(estimator, X, y, monkeypatch, kernel_runs, **fit_params):
    reference = estimator.fit(X, y, **fit_params)
    reference_coef = reference.coef_.copy(), reference.intercept_.copy()
    reference_state = reference.n_iter_, list(reference.loss_curve_)
    monkeypatch.setenv(driver.ENV_EMULATE, "1")
    kernels = estimator.fit(X, y, **fit_params)
    monkeypatch.delenv(driver.ENV_EMULATE)
    assert len(kernel_runs) == 1, "the kernel driver did not train this fit"
    np.testing.assert_allclose(kernels.coef_, reference_coef[0], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(kernels.intercept_, reference_coef[1], rtol=1e-5, atol=1e-9)
    assert kernels.n_iter_ == reference_state[0]
    np.testing.assert_allclose(kernels.loss_curve_, reference_state[1], rtol=1e-5)


CLASSIFIERS = {
    "defaults": {},
    # scikit-learn's stopping rule per column, batch_size='auto', preconditioning
    "stopping-rule": {"tol": 1e-3, "max_iter": 40},
    "stopping-rule-elasticnet-average": {
        "tol": 1e-3,
        "max_iter": 40,
        "penalty": "elasticnet",
        "l1_ratio": 0.5,
        "average": 50,
    },
    "multinomial": {"loss": "log_loss", "multi_class": "multinomial", "tol": 1e-3, "max_iter": 30},
    "adaptive-per-column": {"learning_rate": "adaptive", "eta0": 0.1, "tol": 1e-2, "max_iter": 30},
    "log-nesterov": {"loss": "log_loss", "momentum": 0.9, "nesterov": True, "batch_size": 16},
    "balanced-average": {"class_weight": "balanced", "average": 10},
    "elasticnet-clip": {"penalty": "elasticnet", "l1_ratio": 0.3, "clip_norm": 1.0},
    "adaptive-velocity": {
        "learning_rate": "adaptive",
        "eta0": 0.05,
        "momentum": 0.5,
        "momentum_form": "velocity",
        "n_iter_no_change": 1,
        "tol": 10.0,
    },
    "pa1": {"learning_rate": "pa1", "eta0": 0.1},
    "early-stopping": {"early_stopping": True, "validation_fraction": 0.2},
    "decoupled": {"weight_decay": 0.01, "decoupled_weight_decay": True, "clip_value": 0.5},
}


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classifier_through_the_kernels(name, classification, monkeypatch, kernel_runs):
    X, y = classification
    params = {"random_state": 0, "max_iter": 6, "tol": None, **CLASSIFIERS[name]}
    estimator = GPUSGDClassifier(**params)
    _fit_both(estimator, X, y, monkeypatch, kernel_runs)


def test_classifier_sample_weight_binary(classification, monkeypatch, kernel_runs):
    X, y = classification
    weights = np.random.default_rng(0).uniform(0.1, 2.0, len(y))
    estimator = GPUSGDClassifier(random_state=0, max_iter=5, tol=None, loss="modified_huber")
    _fit_both(estimator, X, y % 2, monkeypatch, kernel_runs, sample_weight=weights)


REGRESSORS = {
    "defaults": {},
    "huber-momentum": {"loss": "huber", "momentum": 0.9, "batch_size": 32},
    "pa2": {"loss": "epsilon_insensitive", "learning_rate": "pa2", "eta0": 0.01},
    "l1-average": {"penalty": "l1", "alpha": 1e-3, "average": True},
    "stopping-rule": {"tol": 1e-3, "max_iter": 30},
}


@pytest.mark.parametrize("name", list(REGRESSORS))
def test_regressor_through_the_kernels(name, regression, monkeypatch, kernel_runs):
    X, y = regression
    params = {"random_state": 0, "max_iter": 6, "tol": None, **REGRESSORS[name]}
    _fit_both(GPUSGDRegressor(**params), X, y, monkeypatch, kernel_runs)


def test_partial_fit_through_the_kernels(classification, monkeypatch, kernel_runs):
    X, y = classification
    classes = np.unique(y)
    models = []
    for emulate in (False, True):
        if emulate:
            monkeypatch.setenv(driver.ENV_EMULATE, "1")
        model = GPUSGDClassifier(random_state=0, momentum=0.9, average=20)
        for start in range(0, 150, 50):
            model.partial_fit(X[start : start + 50], y[start : start + 50], classes=classes)
        models.append(model)
    assert len(kernel_runs) == 3
    np.testing.assert_allclose(models[1].coef_, models[0].coef_, rtol=1e-5, atol=1e-9)
    assert models[1].t_ == models[0].t_


def test_float32_input_stays_float32(regression, monkeypatch, kernel_runs):
    X, y = regression
    monkeypatch.setenv(driver.ENV_EMULATE, "1")
    model = GPUSGDRegressor(random_state=0, max_iter=3, tol=None).fit(X.astype(np.float32), y)
    assert len(kernel_runs) == 1
    assert model.coef_.dtype == np.float32


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"penalty": "l1", "alpha": 1e-3},
        {"momentum": 0.9, "batch_size": 16},
        {"tol": 1e-3, "max_iter": 30, "average": 40},
    ],
    ids=["defaults", "l1", "momentum", "stopping-rule-average"],
)
def test_sparse_input_through_the_kernels(params, classification, monkeypatch, kernel_runs):
    import scipy.sparse as sp

    X, y = classification
    X_sparse = sp.csr_matrix(X * (np.abs(X) > 0.8))
    estimator = GPUSGDClassifier(**{"random_state": 0, "max_iter": 5, "tol": None, **params})
    _fit_both(estimator, X_sparse, y, monkeypatch, kernel_runs)
