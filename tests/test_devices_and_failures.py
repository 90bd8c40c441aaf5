"""Arrays on a non-default device, mixed host/device inputs, and failed fits.

array-api-strict's ``Device("device1")`` stands in for a GPU: arrays there refuse
to mix with arrays on the default device, as torch CUDA tensors do with CPU ones.
"""

import numpy as np
import pytest
from sklearn import config_context
from sklearn.datasets import load_iris, make_regression
from sklearn.metrics import r2_score

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

xp = pytest.importorskip("array_api_strict")
OTHER_DEVICE = xp.Device("device1")
PARAMS = dict(learning_rate="constant", eta0=0.05, shuffle=False, tol=None, max_iter=3)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def _on_device(array):
    return xp.asarray(array, device=OTHER_DEVICE)


def _host(array):
    return np.asarray(array.to_device(xp.Device("CPU_DEVICE")))


def test_device_features_with_host_labels_weights_and_init(iris):
    X, y = iris
    weights = np.linspace(0.5, 1.5, len(y))
    coef_init = np.full((3, 4), 0.1)
    reference = GPUSGDClassifier(class_weight={0: 2.0, 1: 1.0, 2: 1.0}, **PARAMS)
    reference.fit(X, y, coef_init=coef_init, sample_weight=weights)
    model = GPUSGDClassifier(class_weight={0: 2.0, 1: 1.0, 2: 1.0}, **PARAMS)
    model.fit(_on_device(X), y, coef_init=coef_init, sample_weight=weights)
    assert model.coef_.device == OTHER_DEVICE
    np.testing.assert_allclose(_host(model.coef_), reference.coef_, rtol=1e-12)
    predicted = model.predict(_on_device(X))
    assert predicted.device == OTHER_DEVICE
    np.testing.assert_array_equal(_host(predicted), reference.predict(X))
    # score is scikit-learn's own: device arrays go through its array-API dispatch
    with config_context(array_api_dispatch=True):
        assert model.score(_on_device(X), y) == pytest.approx(reference.score(X, y))


def test_host_fitted_model_predicts_on_another_device(iris):
    X, y = iris
    model = GPUSGDClassifier(**PARAMS).fit(X, y)
    predicted = model.predict(_on_device(X))
    assert predicted.device == OTHER_DEVICE
    np.testing.assert_array_equal(_host(predicted), model.predict(X))
    regressor = GPUSGDRegressor(**PARAMS).fit(X, y.astype(float))
    on_device = regressor.predict(_on_device(X))
    assert r2_score(y, _host(on_device)) == pytest.approx(regressor.score(X, y))


def test_device_labels_must_be_discrete(iris):
    X, _ = iris
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        GPUSGDClassifier().fit(_on_device(X), _on_device(X[:, 0]))


def test_boolean_device_labels(iris):
    torch = pytest.importorskip("torch")
    X, y = iris
    model = GPUSGDClassifier(**PARAMS).fit(torch.asarray(X), torch.asarray(y == 0))
    reference = GPUSGDClassifier(**PARAMS).fit(X, (y == 0).astype(int))
    np.testing.assert_allclose(model.coef_.numpy(), reference.coef_, rtol=1e-12)


@pytest.mark.parametrize(
    "estimator, y, message",
    [
        (GPUSGDRegressor, np.r_[np.nan, np.ones(149)], "NaN"),
        (GPUSGDRegressor, np.array(["a", "b"] * 75), "could not convert"),
        (GPUSGDClassifier, np.ones((150, 2)), "1d array"),
        (GPUSGDClassifier, np.ones(149), "inconsistent numbers of samples"),
    ],
)
def test_host_labels_of_device_features_are_checked(iris, estimator, y, message):
    X, _ = iris
    with pytest.raises(ValueError, match=message):
        estimator().fit(_on_device(X), y)


def test_device_sample_weights_are_checked(iris):
    X, y = iris
    with pytest.raises(ValueError, match="at least one non-zero"):
        GPUSGDClassifier().fit(_on_device(X), y, sample_weight=_on_device(np.zeros(150)))
    with pytest.raises(ValueError, match="Negative"):
        GPUSGDClassifier().fit(_on_device(X), y, sample_weight=_on_device(-np.ones(150)))


def test_initial_weights_from_lists_and_scalars_and_their_checks():
    X, y = make_regression(n_samples=50, n_features=3, random_state=0)
    from_list = GPUSGDRegressor(**PARAMS).fit(X, y, coef_init=[0.5, 0.5, 0.5], intercept_init=1.0)
    from_array = GPUSGDRegressor(**PARAMS).fit(
        X, y, coef_init=np.full(3, 0.5), intercept_init=np.ones(1)
    )
    np.testing.assert_array_equal(from_list.coef_, from_array.coef_)
    with pytest.raises(ValueError, match="coef_init contains NaN"):
        GPUSGDRegressor().fit(X, y, coef_init=[np.nan, 0.0, 0.0])


def test_failed_refit_leaves_the_fitted_model_as_it_was(iris):
    X, y = iris
    model = GPUSGDClassifier(**PARAMS).fit(X, y)
    coef, classes = model.coef_.copy(), model.classes_.copy()
    rng = np.random.default_rng(0)
    X_wide = rng.normal(size=(40, 8)) * 1e3
    y_other = rng.integers(5, 7, size=40)
    with pytest.raises(ValueError, match="learning rate"):
        model.set_params(loss="squared_hinge", eta0=1e300, max_iter=50).fit(X_wide, y_other)
    np.testing.assert_array_equal(model.coef_, coef)
    np.testing.assert_array_equal(model.classes_, classes)
    assert model.n_features_in_ == 4
    assert model.predict(X).shape == (150,)


def test_warm_start_with_other_features_is_an_error(iris):
    X, y = iris
    model = GPUSGDClassifier(warm_start=True, **PARAMS).fit(X, y)
    with pytest.raises(ValueError, match="warm_start"):
        model.fit(X[:, :3], y)
    assert model.n_features_in_ == 4
