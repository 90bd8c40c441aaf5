"""Dtypes end to end: float64 / float32 kept, half precision with float32 master weights."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

ESTIMATORS = [GPUSGDClassifier, GPUSGDRegressor]


def _easy_problem(n_samples=600, n_features=10, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_samples, n_features)
    y_class = (X[:, 0] + X[:, 1] > 0).astype(int)
    y_reg = X[:, 0] - 2.0 * X[:, 1] + 0.1 * rng.randn(n_samples)
    return X, y_class, y_reg


@pytest.fixture(scope="module")
def problem():
    return _easy_problem()


def _fit(cls, X, problem, **params):
    _, y_class, y_reg = problem
    y = y_class if cls is GPUSGDClassifier else y_reg
    params = {"random_state": 0, "device": "cpu", **params}
    return cls(**params).fit(X, y)


def _decision(est, X):
    if isinstance(est, GPUSGDClassifier):
        return est.decision_function(X)
    return est.predict(X)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_float64_float32_keep_their_dtype(problem, cls, dtype, sparse, engine_inputs):
    X = problem[0].astype(dtype)
    if sparse:
        X = sp.csr_matrix(X)
    est = _fit(cls, X, problem)
    assert engine_inputs[-1]["X"].dtype == dtype
    assert engine_inputs[-1]["coef_dtype"] == dtype
    assert est.coef_.dtype == dtype
    assert est.intercept_.dtype == dtype
    assert _decision(est, X).dtype == dtype
    if cls is GPUSGDClassifier:
        est.partial_fit(X, problem[1])
        assert est.coef_.dtype == dtype


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_float16_trains_float32_master_weights_on_the_float16_array(problem, cls, engine_inputs):
    X16 = problem[0].astype(np.float16)
    est = _fit(cls, X16, problem)
    received = engine_inputs[-1]
    # the engine gets the float16 array itself (no float32 copy of X), float32 weights
    assert received["X"].dtype == np.float16
    assert np.shares_memory(received["X"], X16)
    assert received["coef_dtype"] == np.float32
    assert received["config"].compute_dtype == np.float32
    assert est.coef_.dtype == np.float32
    assert est.intercept_.dtype == np.float32
    assert _decision(est, X16).dtype == np.float32


@pytest.mark.parametrize(
    "learning_rate",
    ["optimal", "pa1"],
)
def test_float16_training_allocates_no_float32_copy_of_X(learning_rate):
    """Peak traced memory during fit stays below one float32 copy of X (2 * X16.nbytes)."""
    rng = np.random.RandomState(0)
    X16 = rng.randn(32768, 64).astype(np.float16)
    y = (X16[:, 0] > 0).astype(int)
    params = dict(
        loss="hinge",
        learning_rate=learning_rate,
        batch_size=256,
        max_iter=1,
        tol=None,
        random_state=0,
        device="cpu",
    )
    GPUSGDClassifier(**params).fit(X16[:100], y[:100])  # warm up imports and caches
    tracemalloc.start()
    try:
        GPUSGDClassifier(**params).fit(X16, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X16.nbytes, f"peak {peak} B for a {X16.nbytes} B float16 X"


@pytest.mark.parametrize(
    "params", [{"loss": "log_loss"}, {"loss": "hinge", "average": True}], ids=["log", "asgd"]
)
def test_float16_accuracy_close_to_float32(params):
    """Same seed, same rows: float16 X costs at most 0.5 point of held-out accuracy.

    (The last iterate of plain hinge SGD jitters by about a point either way
    between any two nearby inputs, so the comparison uses a smooth loss or ASGD.)
    """
    X, y, _ = _easy_problem(n_samples=3000, seed=1)
    X_test, y_test, _ = _easy_problem(n_samples=2000, seed=2)
    scores = {}
    # one batch size for both ('auto' picks per engine, and float16 X runs in NumPy)
    params = dict(params, batch_size=64)
    for dtype in (np.float32, np.float16):
        est = GPUSGDClassifier(random_state=0, device="cpu", **params).fit(X.astype(dtype), y)
        assert est.coef_.dtype == np.float32
        scores[dtype] = est.score(X_test.astype(dtype), y_test)
    assert scores[np.float32] > 0.95
    assert abs(scores[np.float16] - scores[np.float32]) <= 0.005


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_multi_precision_false_converts_to_float32(problem, cls, engine_inputs, monkeypatch):
    # both casts on the NumPy engine (half-precision X never reaches the compiled epoch),
    # so that they compare to float32 rounding
    monkeypatch.setenv("SK_GPUSGD_COMPILED", "0")
    X16 = problem[0].astype(np.float16)
    off = _fit(cls, X16, problem, multi_precision=False)
    assert engine_inputs[-1]["X"].dtype == np.float32
    assert engine_inputs[-1]["config"].compute_dtype is None
    assert off.coef_.dtype == np.float32
    # the same as training on the float32 values of X ...
    converted = _fit(cls, X16.astype(np.float32), problem)
    assert_array_equal(off.coef_, converted.coef_)
    # ... and as multi_precision=True, which casts each batch instead of the whole X
    on = _fit(cls, X16, problem, multi_precision=True)
    assert_allclose(on.coef_, off.coef_, rtol=1e-6)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_float16_decisions_do_not_overflow(problem, cls):
    _, y_class, y_reg = problem
    X16 = problem[0].astype(np.float16)
    y = y_class if cls is GPUSGDClassifier else y_reg
    est = cls(random_state=0, device="cpu", max_iter=2, tol=None).fit(X16, y)
    assert est.coef_.dtype == np.float32
    est.coef_ = np.full_like(est.coef_, 200.0)
    X_big = np.full((3, X16.shape[1]), 200.0, dtype=np.float16)
    # 10 features * 200 * 200 = 400000 > 65504, the float16 maximum
    with np.errstate(over="ignore"):
        assert np.isinf(X_big @ est.coef_.T.astype(np.float16)).all()
    decision = _decision(est, X_big)
    assert decision.dtype == np.float32
    assert np.isfinite(decision).all()
    expected = X_big.astype(np.float64) @ est.coef_.T.astype(np.float64) + est.intercept_
    assert_allclose(decision, expected.reshape(decision.shape), rtol=1e-6)


# ------------------------------------------------------------------- torch


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_torch_half_trains_float32_master_weights(problem, cls, half, engine_inputs):
    torch = pytest.importorskip("torch")
    X_np, y_class, y_reg = problem
    X = torch.asarray(X_np).to(getattr(torch, half))
    y = torch.asarray(y_class if cls is GPUSGDClassifier else y_reg)
    on = cls(random_state=0).fit(X, y)
    assert engine_inputs[-1]["X"].dtype == getattr(torch, half)
    assert engine_inputs[-1]["X"].data_ptr() == X.data_ptr()
    assert engine_inputs[-1]["coef_dtype"] == torch.float32
    assert isinstance(on.coef_, torch.Tensor)
    assert on.coef_.dtype == torch.float32
    assert _decision(on, X).dtype == torch.float32
    off = cls(random_state=0, multi_precision=False).fit(X, y)
    assert engine_inputs[-1]["X"].dtype == torch.float32
    assert_allclose(on.coef_.numpy(), off.coef_.numpy(), rtol=1e-6)
    if cls is GPUSGDClassifier:
        assert on.score(X, y) > 0.95


def test_torch_float16_decisions_do_not_overflow(problem):
    torch = pytest.importorskip("torch")
    X = torch.asarray(problem[0]).to(torch.float16)
    est = GPUSGDRegressor(random_state=0, max_iter=2, tol=None).fit(X, torch.asarray(problem[2]))
    est.coef_ = torch.full_like(est.coef_, 200.0)
    X_big = torch.full((3, X.shape[1]), 200.0, dtype=torch.float16)
    prediction = est.predict(X_big)
    assert prediction.dtype == torch.float32
    assert torch.isfinite(prediction).all()
    assert_allclose(prediction.numpy(), 10 * 200.0 * 200.0 + float(est.intercept_[0]), rtol=1e-6)


def test_prediction_dtype_follows_numpy_promotion_for_dense_and_sparse():
    """A float32 model on float64 X answers in float64, whatever the storage of X."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] > 0).astype(int)
    model = GPUSGDClassifier(random_state=0).fit(X.astype(np.float32), y)
    assert model.coef_.dtype == np.float32
    for X_in in (X, sp.csr_matrix(X)):
        assert model.decision_function(X_in).dtype == np.float64
    for X_in in (X.astype(np.float16), X.astype(np.float32), sp.csr_matrix(X.astype(np.float32))):
        assert model.decision_function(X_in).dtype == np.float32
