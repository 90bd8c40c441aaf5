"""Bad input gets a clear error that names the problem; nothing silently becomes NaN."""

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_regression

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor
from sk_gpusgd._backend import cuda_available

ESTIMATORS = [GPUSGDClassifier, GPUSGDRegressor]


@pytest.fixture(scope="module")
def data():
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features(data, estimator, bad):
    X, y = data
    X = X.copy()
    X[3, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        estimator().fit(X, y)


def test_non_finite_regression_target():
    X, y = make_regression(n_samples=20, n_features=3, random_state=0)
    y[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GPUSGDRegressor().fit(X, y)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_empty_input(estimator):
    with pytest.raises(ValueError, match="0 sample"):
        estimator().fit(np.empty((0, 3)), np.empty(0))
    with pytest.raises(ValueError, match="0 feature"):
        estimator().fit(np.empty((5, 0)), np.arange(5) % 2)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_one_dimensional_X(estimator):
    with pytest.raises(ValueError, match="2D array"):
        estimator().fit(np.arange(10.0), np.arange(10) % 2)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_mismatched_lengths(data, estimator):
    X, y = data
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        estimator().fit(X, y[:-1])


def test_string_targets_for_the_regressor():
    X = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.raises(ValueError, match="could not convert string to float|numeric"):
        GPUSGDRegressor().fit(X, np.array(["a", "b", "a", "b", "a", "b"]))


def test_single_class(data):
    X, _ = data
    with pytest.raises(ValueError, match="greater than one"):
        GPUSGDClassifier().fit(X, np.zeros(len(X)))


def test_continuous_labels_for_the_classifier(data):
    X, _ = data
    with pytest.raises(ValueError, match="Unknown label type"):
        GPUSGDClassifier().fit(X, np.linspace(0, 1, len(X)))


def test_a_streams_later_chunks_are_checked_like_its_first(data):
    """Later partial_fit calls skip the label-type check only for labels already known."""
    X, y = data
    model = GPUSGDClassifier(random_state=0).partial_fit(X, y, classes=np.unique(y))
    coef = model.coef_.copy()
    with pytest.raises(ValueError, match="Unknown label type"):
        model.partial_fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes_"):
        model.partial_fit(X, np.full(len(X), 7))
    with pytest.raises(ValueError, match="is not the same as on last call to partial_fit"):
        model.partial_fit(X, y, classes=np.unique(y)[:1])
    np.testing.assert_array_equal(model.coef_, coef)
    # the same classes, in another order or as a list, are the same classes
    model.partial_fit(X, y, classes=list(np.unique(y)[::-1]))
    assert model.t_ > 1


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_wrong_number_of_features_at_predict_and_partial_fit(data, estimator):
    X, y = data
    model = estimator().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:, :3], y)


def test_partial_fit_needs_classes_first(data):
    X, y = data
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        GPUSGDClassifier().partial_fit(X, y)
    model = GPUSGDClassifier().partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not in classes_"):
        model.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="classes"):
        model.partial_fit(X, y, classes=[0, 1, 2, 3])


@pytest.mark.parametrize(
    "params, message",
    [
        ({"loss": "hinj"}, "loss"),
        ({"penalty": "l3"}, "penalty"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"device": "tpu"}, "device"),
        ({"momentum_form": "torch"}, "momentum_form"),
        ({"batch_size": 0}, "batch_size"),
        ({"momentum": 1.5}, "momentum"),
        ({"eta0": 0.0}, "eta0"),
        ({"clip_norm": -1.0}, "clip_norm"),
        ({"learning_rate": "optimal", "alpha": 0.0}, "alpha must be > 0"),
        ({"penalty": "elasticnet", "l1_ratio": None}, "l1_ratio"),
        ({"learning_rate": "pa1", "loss": "log_loss"}, "only works with loss 'hinge'"),
    ],
)
def test_invalid_parameters_name_the_parameter(data, params, message):
    X, y = data
    with pytest.raises(ValueError, match=message):
        GPUSGDClassifier(**params).fit(X, y)


def test_early_stopping_with_partial_fit(data):
    X, y = data
    with pytest.raises(ValueError, match="early_stopping"):
        GPUSGDClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_balanced_class_weight_with_partial_fit(data):
    X, y = data
    with pytest.raises(ValueError, match="balanced"):
        GPUSGDClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def test_negative_sample_weight(data):
    X, y = data
    with pytest.raises(ValueError, match="(?i)negative"):
        GPUSGDClassifier().fit(X, y, sample_weight=-np.ones(len(y)))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_predict_before_fit(data, estimator):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        estimator().predict(data[0])


def test_divergence_names_the_learning_rate_and_keeps_the_previous_model():
    X, y = make_regression(n_samples=200, n_features=5, random_state=0)
    X *= 1e3
    model = GPUSGDRegressor(learning_rate="constant", eta0=0.001, max_iter=5, tol=None)
    model.fit(X / 1e3, y)
    previous = model.coef_.copy()
    # the loss derivative is clipped at 1e12 (as scikit-learn's), so only a rate past
    # ~1e296 can overflow the weights
    with pytest.raises(ValueError, match="learning rate.*eta0=1e\\+300"):
        model.set_params(eta0=1e300, penalty=None).fit(X, y)
    np.testing.assert_array_equal(model.coef_, previous)
    assert np.all(np.isfinite(model.coef_))


@pytest.mark.skipif(cuda_available(), reason="a GPU is present: device='cuda' is valid here")
def test_cuda_requested_without_a_gpu(data):
    X, y = data
    with pytest.raises(RuntimeError, match="device='cuda'.*CuPy"):
        GPUSGDClassifier(device="cuda").fit(X, y)
    # 'auto' falls back to the CPU
    assert GPUSGDClassifier(device="auto").fit(X, y).device_ == "cpu"
