"""The engine runs in any array-API namespace; outputs follow the input's namespace."""

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_regression
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

PARAMS = dict(
    learning_rate="constant",
    eta0=0.05,
    shuffle=True,
    random_state=0,
    tol=None,
    max_iter=4,
    momentum=0.5,
    batch_size=16,
)


def _namespaces():
    found = []
    try:
        import array_api_strict

        found.append(pytest.param(array_api_strict, id="array_api_strict"))
    except ImportError:
        found.append(
            pytest.param(None, id="array_api_strict", marks=pytest.mark.skip("not installed"))
        )
    try:
        import torch

        found.append(pytest.param(torch, id="torch"))
    except ImportError:
        found.append(pytest.param(None, id="torch", marks=pytest.mark.skip("torch not installed")))
    return found


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _to_numpy(array):
    if hasattr(array, "detach"):
        return array.detach().cpu().numpy()
    return np.asarray(array)


@pytest.mark.parametrize("xp", _namespaces())
def test_classifier_in_namespace_equals_numpy(iris, xp):
    X, y = iris
    reference = GPUSGDClassifier(**PARAMS).fit(X, y)
    model = GPUSGDClassifier(**PARAMS).fit(xp.asarray(X), xp.asarray(y))
    X_xp = xp.asarray(X)
    assert type(model.coef_) is type(X_xp)
    decision = model.decision_function(X_xp)
    assert type(decision) is type(X_xp)
    np.testing.assert_allclose(_to_numpy(model.coef_), reference.coef_, rtol=1e-10)
    np.testing.assert_allclose(_to_numpy(decision), reference.decision_function(X), rtol=1e-10)
    np.testing.assert_array_equal(_to_numpy(model.predict(X_xp)), reference.predict(X))
    assert model.score(X_xp, xp.asarray(y)) == pytest.approx(reference.score(X, y))


@pytest.mark.parametrize("xp", _namespaces())
def test_regressor_in_namespace_equals_numpy(xp):
    X, y = make_regression(n_samples=100, n_features=4, noise=1.0, random_state=0)
    reference = GPUSGDRegressor(**PARAMS).fit(X, y)
    model = GPUSGDRegressor(**PARAMS).fit(xp.asarray(X), xp.asarray(y))
    predicted = model.predict(xp.asarray(X))
    assert type(predicted) is type(xp.asarray(X))
    np.testing.assert_allclose(_to_numpy(predicted), reference.predict(X), rtol=1e-9)


@pytest.mark.parametrize("xp", _namespaces())
def test_float32_stays_float32(iris, xp):
    X, y = iris
    X32 = xp.asarray(X.astype(np.float32))
    model = GPUSGDClassifier(**PARAMS).fit(X32, xp.asarray(y))
    assert str(model.coef_.dtype).endswith("float32")
    assert str(model.decision_function(X32).dtype).endswith("float32")


def test_numpy_in_numpy_out_after_fit_in_another_namespace(iris):
    torch = pytest.importorskip("torch")
    X, y = iris
    model = GPUSGDClassifier(**PARAMS).fit(torch.asarray(X), torch.asarray(y))
    assert isinstance(model.predict(X), np.ndarray)
    assert isinstance(model.decision_function(X), np.ndarray)
