"""to_sklearn() of a model trained on the GPU: NumPy weights, the same predictions."""

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import SGDClassifier, SGDRegressor

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor


def test_cupy_trained_classifier_exports_numpy(cupy):
    X, y = make_classification(
        n_samples=500, n_features=8, n_classes=3, n_informative=5, random_state=0
    )
    ours = GPUSGDClassifier(loss="log_loss", batch_size=64, random_state=0)
    ours.fit(cupy.asarray(X), cupy.asarray(y))
    assert ours.device_.startswith("cuda") and isinstance(ours.coef_, cupy.ndarray)
    exported = ours.to_sklearn()
    assert type(exported) is SGDClassifier
    for name in ("coef_", "intercept_", "classes_"):
        assert isinstance(getattr(exported, name), np.ndarray), name
    assert_array_equal(exported.coef_, cupy.asnumpy(ours.coef_))
    # NumPy in, NumPy out: our GPU-trained model predicts NumPy for NumPy input
    assert_array_equal(exported.predict(X), ours.predict(X))
    assert_allclose(exported.predict_proba(X), ours.predict_proba(X), rtol=1e-12, atol=1e-15)


def test_numpy_input_trained_on_the_gpu_exports(cupy):
    X, y = make_regression(n_samples=500, n_features=8, noise=1.0, random_state=0)
    ours = GPUSGDRegressor(device="cuda", batch_size=64, random_state=0).fit(X / 10, y / 100)
    assert ours.device_.startswith("cuda")
    exported = ours.to_sklearn()
    assert type(exported) is SGDRegressor
    assert_array_equal(exported.predict(X / 10), ours.predict(X / 10))
