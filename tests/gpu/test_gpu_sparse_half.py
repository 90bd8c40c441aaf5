"""cupyx.scipy.sparse and float16 CuPy input on the GPU.

Skipped with a reason where CuPy or a CUDA device is absent: ``conftest.py``
marks and skips this folder, and the ``cupy`` fixture below checks again so that
the file also skips when run on its own.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import config_context

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor
from sk_gpusgd._backend import CUPY_INSTALL_HINT, NO_DEVICE_HINT

pytestmark = pytest.mark.gpu

ESTIMATORS = [GPUSGDClassifier, GPUSGDRegressor]


@pytest.fixture(scope="module")
def cupy():
    """CuPy, or a skip when it is missing or sees no CUDA device."""
    cupy = pytest.importorskip("cupy", reason=f"CuPy is not installed; {CUPY_INSTALL_HINT}")
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # any driver failure means no usable GPU
        pytest.skip(f"CuPy cannot reach a CUDA device ({error}): {NO_DEVICE_HINT}")
    if n_devices < 1:
        pytest.skip(f"CuPy sees no CUDA device: {NO_DEVICE_HINT}")
    return cupy


@pytest.fixture(scope="module")
def cupyx_sparse(cupy):
    import cupyx.scipy.sparse

    return cupyx.scipy.sparse


def _problem(n_samples=160, n_features=40, density=0.2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_samples, n_features) * (rng.rand(n_samples, n_features) < density)
    scores = X @ rng.randn(n_features)
    return X, (scores > 0).astype(int), scores + 0.1 * rng.randn(n_samples)


def _target(cls, problem):
    return problem[1] if cls is GPUSGDClassifier else problem[2]


def _decision(est, X):
    if isinstance(est, GPUSGDClassifier):
        return est.decision_function(X)
    return est.predict(X)


def _params(cls, **params):
    defaults = dict(random_state=0, max_iter=5, tol=None, alpha=1e-3)
    if cls is GPUSGDRegressor:
        defaults["eta0"] = 0.01
    return {**defaults, **params}


@pytest.mark.parametrize(
    "options",
    [
        {"penalty": "l2", "shuffle": False},
        {"penalty": "l1", "shuffle": False},
        {"penalty": None, "shuffle": False},
        {"penalty": "l2", "shuffle": False, "average": True},
        {"penalty": "l2", "shuffle": False, "momentum": 0.9},
    ],
    ids=["l2", "l1", "none", "average", "momentum"],
)
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_cupy_sparse_fit_equals_scipy_sparse(cupy, cupyx_sparse, cls, options):
    """Same lazy algorithm on both sides, so momentum and the intercept compare too.

    Without shuffling only: CuPy draws its permutations on the device.
    """
    problem = _problem()
    X_host = sp.csr_matrix(problem[0])
    y = _target(cls, problem)
    cpu = cls(device="cpu", **_params(cls, **options)).fit(X_host, y)

    X_gpu = cupyx_sparse.csr_matrix(X_host)
    gpu = cls(**_params(cls, **options)).fit(X_gpu, cupy.asarray(y))
    assert gpu.device_.startswith("cuda")
    assert isinstance(gpu.coef_, cupy.ndarray)
    assert isinstance(gpu.intercept_, cupy.ndarray)
    assert gpu.coef_.dtype == cupy.float64
    assert_allclose(cupy.asnumpy(gpu.coef_), cpu.coef_, rtol=0, atol=1e-6)
    assert_allclose(cupy.asnumpy(gpu.intercept_), cpu.intercept_, rtol=0, atol=1e-6)

    decision = _decision(gpu, X_gpu)
    assert isinstance(decision, cupy.ndarray)
    assert_allclose(cupy.asnumpy(decision), _decision(cpu, X_host), rtol=0, atol=1e-5)
    if cls is GPUSGDClassifier:
        predicted = gpu.predict(X_gpu)
        assert isinstance(predicted, cupy.ndarray)
        assert_array_equal(cupy.asnumpy(predicted), cpu.predict(X_host))


@pytest.mark.parametrize("fmt", ["csc_matrix", "coo_matrix"])
def test_cupy_sparse_other_formats_are_converted(cupy, cupyx_sparse, fmt):
    problem = _problem()
    X_host = sp.csr_matrix(problem[0])
    params = _params(GPUSGDClassifier, shuffle=False)
    reference = GPUSGDClassifier(device="cpu", **params).fit(X_host, problem[1])
    X_gpu = getattr(cupyx_sparse, fmt)(getattr(sp, fmt)(problem[0]))
    est = GPUSGDClassifier(**params).fit(X_gpu, cupy.asarray(problem[1]))
    assert_allclose(cupy.asnumpy(est.coef_), reference.coef_, rtol=0, atol=1e-6)
    decision = est.decision_function(X_gpu)
    assert isinstance(decision, cupy.ndarray)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_cupy_sparse_partial_fit(cupy, cupyx_sparse, cls):
    problem = _problem()
    X_host = sp.csr_matrix(problem[0])
    y = _target(cls, problem)
    extra = {"classes": np.array([0, 1])} if cls is GPUSGDClassifier else {}
    cpu = cls(device="cpu", **_params(cls, shuffle=False))
    gpu = cls(**_params(cls, shuffle=False))
    for _ in range(2):
        cpu.partial_fit(X_host, y, **extra)
        gpu.partial_fit(cupyx_sparse.csr_matrix(X_host), cupy.asarray(y), **extra)
    assert isinstance(gpu.coef_, cupy.ndarray)
    assert_allclose(cupy.asnumpy(gpu.coef_), cpu.coef_, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cupy_keeps_float64_float32(cupy, cupyx_sparse, dtype, sparse):
    problem = _problem()
    X = cupy.asarray(problem[0].astype(dtype))
    if sparse:
        X = cupyx_sparse.csr_matrix(X)
    est = GPUSGDRegressor(**_params(GPUSGDRegressor)).fit(X, cupy.asarray(problem[2]))
    assert est.coef_.dtype == dtype
    prediction = est.predict(X)
    assert isinstance(prediction, cupy.ndarray)
    assert prediction.dtype == dtype


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_cupy_float16_trains_float32_master_weights(cupy, cls, engine_inputs):
    rng = np.random.RandomState(0)
    X = rng.randn(2000, 10)
    y_class = (X[:, 0] + X[:, 1] > 0).astype(int)
    y = y_class if cls is GPUSGDClassifier else X[:, 0] - 2.0 * X[:, 1]
    X16 = cupy.asarray(X.astype(np.float16))
    params = {"random_state": 0}
    if cls is GPUSGDClassifier:
        params["loss"] = "log_loss"
    est = cls(**params).fit(X16, cupy.asarray(y))
    received = engine_inputs[-1]
    assert isinstance(received["X"], cupy.ndarray)
    assert received["X"].dtype == cupy.float16
    assert received["X"].data.ptr == X16.data.ptr  # no float32 copy of the whole X
    assert received["coef_dtype"] == cupy.float32
    assert isinstance(est.coef_, cupy.ndarray)
    assert est.coef_.dtype == cupy.float32
    decision = _decision(est, X16)
    assert isinstance(decision, cupy.ndarray)
    assert decision.dtype == cupy.float32

    float32 = cls(**params).fit(cupy.asarray(X.astype(np.float32)), cupy.asarray(y))
    if cls is GPUSGDClassifier:
        with config_context(array_api_dispatch=True):
            scores = [model.score(X16, cupy.asarray(y)) for model in (est, float32)]
        assert abs(scores[0] - scores[1]) <= 0.005
    else:
        assert_allclose(cupy.asnumpy(est.coef_), cupy.asnumpy(float32.coef_), atol=0.05)


def test_cupy_float16_multi_precision_false_converts(cupy, engine_inputs):
    rng = np.random.RandomState(0)
    X16 = cupy.asarray(rng.randn(200, 5).astype(np.float16))
    est = GPUSGDRegressor(random_state=0, multi_precision=False)
    est.fit(X16, cupy.asarray(rng.randn(200)))
    assert engine_inputs[-1]["X"].dtype == cupy.float32
    assert est.coef_.dtype == cupy.float32


def test_cupy_float16_decisions_do_not_overflow(cupy):
    rng = np.random.RandomState(0)
    X16 = cupy.asarray(rng.randn(100, 10).astype(np.float16))
    est = GPUSGDRegressor(random_state=0, max_iter=2, tol=None)
    est.fit(X16, cupy.asarray(rng.randn(100)))
    est.coef_ = cupy.full_like(est.coef_, 200.0)
    X_big = cupy.full((3, 10), 200.0, dtype=cupy.float16)
    # 10 * 200 * 200 = 400000 overflows float16 (max 65504)
    prediction = est.predict(X_big)
    assert isinstance(prediction, cupy.ndarray)
    assert prediction.dtype == cupy.float32
    assert bool(cupy.isfinite(prediction).all())
    expected = 400000.0 + float(est.intercept_[0])
    assert_allclose(cupy.asnumpy(prediction), expected, rtol=1e-6)
