"""to_sklearn(): a fitted scikit-learn SGD model that predicts what ours predicts.

The exported model is checked against ours through scikit-learn's own
prediction code, through ONNX (skl2onnx + onnxruntime) and through skops.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import SGDClassifier, SGDRegressor

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor


def _classification(n_classes, dtype=np.float64, random_state=0):
    X, y = make_classification(
        n_samples=240,
        n_features=6,
        n_informative=4,
        n_classes=n_classes,
        random_state=random_state,
    )
    return X.astype(dtype), y


def _regression(dtype=np.float64):
    X, y = make_regression(n_samples=240, n_features=6, noise=1.0, random_state=0)
    return X.astype(dtype), y


def _assert_same_classifier(ours, exported, X):
    assert type(exported) is SGDClassifier
    assert_array_equal(exported.predict(X), ours.predict(X))
    assert_array_equal(exported.decision_function(X), ours.decision_function(X))
    if ours.loss in ("log_loss", "modified_huber"):
        assert_allclose(exported.predict_proba(X), ours.predict_proba(X), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", ["hinge", "log_loss", "modified_huber", "perceptron"])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_classifier_predictions_equal(loss, n_classes):
    X, y = _classification(n_classes)
    ours = GPUSGDClassifier(loss=loss, random_state=0).fit(X, y)
    exported = ours.to_sklearn()
    _assert_same_classifier(ours, exported, X)
    assert exported.coef_.shape == ours.coef_.shape == (1 if n_classes == 2 else n_classes, 6)


@pytest.mark.parametrize("loss", ["squared_error", "huber", "epsilon_insensitive"])
def test_regressor_predictions_equal(loss):
    X, y = _regression()
    ours = GPUSGDRegressor(loss=loss, max_iter=20, tol=None, random_state=0).fit(X, y)
    exported = ours.to_sklearn()
    assert type(exported) is SGDRegressor
    assert_array_equal(exported.predict(X), ours.predict(X))
    assert exported.coef_.shape == (6,)


def test_every_sklearn_parameter_and_fitted_attribute_is_copied():
    X, y = _classification(3)
    ours = GPUSGDClassifier(
        loss="modified_huber",
        penalty="elasticnet",
        alpha=1e-3,
        l1_ratio=0.3,
        max_iter=7,
        tol=None,
        epsilon=0.2,
        learning_rate="invscaling",
        eta0=0.05,
        power_t=0.4,
        n_iter_no_change=3,
        class_weight={0: 2.0, 1: 1.0, 2: 0.5},
        average=10,
        random_state=3,
        batch_size=16,
        momentum=0.9,
    ).fit(X, y)
    exported = ours.to_sklearn()
    ours_params = ours.get_params()
    for name, value in exported.get_params().items():
        assert value == ours_params[name], name
    assert set(exported.get_params()) == set(SGDClassifier().get_params())
    assert_array_equal(exported.classes_, ours.classes_)
    assert exported.n_features_in_ == 6
    assert exported.t_ == ours.t_ and exported.n_iter_ == ours.n_iter_ == 7
    # averaged weights are what both predict with
    _assert_same_classifier(ours, exported, X)


def test_regressor_parameters_copied():
    X, y = _regression()
    ours = GPUSGDRegressor(
        loss="huber", epsilon=0.5, alpha=1e-3, learning_rate="constant", eta0=1e-3, max_iter=5
    )
    exported = ours.set_params(tol=None, random_state=1).fit(X, y).to_sklearn()
    ours_params = ours.get_params()
    assert set(exported.get_params()) == set(SGDRegressor().get_params())
    for name, value in exported.get_params().items():
        assert value == ours_params[name], name
    assert exported.t_ == ours.t_ and exported.n_iter_ == 5


def test_string_labels_and_feature_names():
    X, y = _classification(3)
    names = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    labels = np.array(["cat", "dog", "owl"])[y]
    ours = GPUSGDClassifier(loss="log_loss", random_state=0).fit(frame, labels)
    exported = ours.to_sklearn()
    assert_array_equal(exported.feature_names_in_, names)
    assert_array_equal(exported.predict(frame), ours.predict(frame))
    assert set(exported.predict(frame)) <= {"cat", "dog", "owl"}


def test_no_feature_names_when_fitted_without():
    X, y = _classification(2)
    exported = GPUSGDClassifier(random_state=0).fit(X, y).to_sklearn()
    assert not hasattr(exported, "feature_names_in_")


def test_sparse_and_float32_training():
    X, y = _classification(3, dtype=np.float32)
    X_sparse = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    ours = GPUSGDClassifier(random_state=0).fit(X_sparse, y)
    exported = ours.to_sklearn()
    assert exported.coef_.dtype == np.float32
    _assert_same_classifier(ours, exported, X_sparse)
    _assert_same_classifier(ours, exported, X)


def test_model_trained_on_array_api_input_exports_numpy():
    import torch

    X, y = _classification(3, dtype=np.float32)
    ours = GPUSGDClassifier(loss="log_loss", random_state=0).fit(torch.asarray(X), torch.asarray(y))
    assert isinstance(ours.coef_, torch.Tensor)
    exported = ours.to_sklearn()
    assert isinstance(exported.coef_, np.ndarray)
    assert isinstance(exported.classes_, np.ndarray)
    assert_array_equal(exported.coef_, ours.coef_.numpy())
    assert_array_equal(exported.predict(X), ours.predict(torch.asarray(X)).numpy())


def test_export_is_a_copy():
    X, y = _classification(2)
    ours = GPUSGDClassifier(random_state=0).fit(X, y)
    exported = ours.to_sklearn()
    exported.coef_[...] = 0.0
    assert np.any(ours.coef_ != 0.0)


def test_unfitted_model_cannot_be_exported():
    with pytest.raises(NotFittedError):
        GPUSGDRegressor().to_sklearn()


def test_exported_pickle_does_not_need_this_package():
    X, y = _classification(2)
    exported = GPUSGDClassifier(random_state=0).fit(X, y).to_sklearn()
    payload = pickle.dumps(exported)
    assert b"sk_gpusgd" not in payload
    assert_array_equal(pickle.loads(payload).predict(X), exported.predict(X))


# ------------------------------------------------------------------- ONNX
def _onnx_session(model, X):
    import onnxruntime
    from skl2onnx import to_onnx

    options = {"zipmap": False} if isinstance(model, SGDClassifier) else None
    onx = to_onnx(model, X[:1], options=options, target_opset=17)
    session = onnxruntime.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return lambda data: session.run(None, {session.get_inputs()[0].name: data})


@pytest.mark.parametrize("n_classes", [2, 3])
def test_onnx_log_loss_probabilities(n_classes):
    X, y = _classification(n_classes, dtype=np.float32)
    ours = GPUSGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    labels, probabilities = _onnx_session(ours.to_sklearn(), X)(X)
    assert_array_equal(labels, ours.predict(X))
    assert_allclose(probabilities, ours.predict_proba(X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_onnx_modified_huber_probabilities(n_classes):
    X, y = _classification(n_classes, dtype=np.float32)
    ours = GPUSGDClassifier(loss="modified_huber", random_state=0).fit(X, y)
    _, probabilities = _onnx_session(ours.to_sklearn(), X)(X)
    # skl2onnx labels ties of clipped probabilities its own way: compare probabilities
    assert_allclose(probabilities, ours.predict_proba(X), rtol=1e-5, atol=1e-5)


def test_onnx_hinge_labels_and_scores():
    X, y = _classification(3, dtype=np.float32)
    ours = GPUSGDClassifier(loss="hinge", random_state=0).fit(X, y)
    labels, scores = _onnx_session(ours.to_sklearn(), X)(X)
    assert_array_equal(labels, ours.predict(X))
    assert_allclose(scores, ours.decision_function(X), rtol=1e-5, atol=1e-5)


def test_onnx_regressor():
    X, y = _regression(dtype=np.float32)
    ours = GPUSGDRegressor(random_state=0).fit(X, y)
    (predictions,) = _onnx_session(ours.to_sklearn(), X)(X)
    assert_allclose(predictions[:, 0], ours.predict(X), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ skops
@pytest.mark.parametrize(
    "estimator", [GPUSGDClassifier(loss="log_loss", random_state=0), GPUSGDRegressor()]
)
def test_skops_round_trip(estimator):
    import skops.io as sio

    if isinstance(estimator, GPUSGDClassifier):
        X, y = _classification(3)
    else:
        X, y = _regression()
    ours = estimator.fit(X, y)
    payload = sio.dumps(ours.to_sklearn())
    # every type in the file is one skops trusts by default: loading needs no opt-in
    assert sio.get_untrusted_types(data=payload) == []
    loaded = sio.loads(payload)
    assert_array_equal(loaded.predict(X), ours.predict(X))
    assert_array_equal(loaded.coef_, ours.coef_)
