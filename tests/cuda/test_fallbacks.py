"""What the kernels cannot take trains on the array-API engine, with one warning.

Each limit of the CUDA engine (shared memory, 32-bit indices, device memory, partial
gradients, a compile or launch failure) is forced on the CPU emulation backend
(``SK_GPUSGD_CUDA_EMULATE=1``), and the fit must warn once, naming the cause, and give
the model the reference engine gives on the same data and random state. The launch
shape the plan checks is the one the fit uses, for the GPU's threads per block too.
"""

import warnings

import numpy as np
import pytest
from kernel_helpers import make_config
from sklearn.datasets import make_classification

from sk_gpusgd import GPUSGDClassifier
from sk_gpusgd._core.types import TrainingData, TrainingState
from sk_gpusgd._engines.cuda import driver, launcher, plan

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(n_samples=120, n_features=10, n_classes=3, n_informative=5,
                               random_state=0)  # fmt: skip
    return X, y


def _estimator():
    return GPUSGDClassifier(batch_size=16, max_iter=6, random_state=0, preconditioner=None)


def _reference_model(X, y):
    """The model of the reference engine (no kernels asked for)."""
    model = _estimator().fit(X, y)
    return model.coef_.copy(), model.intercept_.copy(), model.n_iter_


def _fallback_fit(monkeypatch, X, y, match):
    monkeypatch.setenv(driver.ENV_EMULATE, "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _estimator().fit(X, y)
    monkeypatch.delenv(driver.ENV_EMULATE)  # the reference fits after it ask for no kernels
    fallbacks = [w for w in caught if issubclass(w.category, driver.FusedEngineFallbackWarning)]
    assert len(fallbacks) == 1, [str(w.message) for w in caught]
    assert match in str(fallbacks[0].message)
    return model


def _assert_reference(model, X, y):
    coef, intercept, n_iter = _reference_model(X, y)
    np.testing.assert_array_equal(model.coef_, coef)
    np.testing.assert_array_equal(model.intercept_, intercept)
    assert model.n_iter_ == n_iter


def test_the_kernels_train_without_a_warning(problem, monkeypatch, kernel_runs):
    X, y = problem
    monkeypatch.setenv(driver.ENV_EMULATE, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", driver.FusedEngineFallbackWarning)
        model = _estimator().fit(X, y)
    assert kernel_runs == [1]
    coef, intercept, _ = _reference_model(X, y)
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(
    "limit, value, match",
    [
        ("MAX_SHARED_BYTES", 256, "shared memory"),
        ("MAX_FLAT_INDEX", 20, "32-bit indices"),
        ("MAX_PARTIAL_RATIO", 0, "partial gradients"),
    ],
)
def test_a_shape_beyond_a_limit_falls_back(problem, monkeypatch, limit, value, match):
    X, y = problem
    monkeypatch.setattr(plan, limit, value)
    _assert_reference(_fallback_fit(monkeypatch, X, y, match), X, y)


def test_buffers_beyond_the_free_device_memory_fall_back(problem, monkeypatch):
    X, y = problem
    monkeypatch.setattr(plan, "device_budget", lambda xp: 1000)
    _assert_reference(_fallback_fit(monkeypatch, X, y, "1000 bytes free"), X, y)


def test_a_kernel_that_does_not_compile_falls_back(problem, monkeypatch):
    X, y = problem

    def failing_build():
        raise launcher.KernelBuildError("nvrtc: error: identifier 'half2' is undefined")

    monkeypatch.setattr(driver, "emulated_backend", failing_build)
    model = _fallback_fit(monkeypatch, X, y, "KernelBuildError: nvrtc: error")
    _assert_reference(model, X, y)


class LaunchFailure(RuntimeError):
    """Stands for CuPy's CUDADriverError (e.g. too many resources requested for launch)."""


class FailingBackend:
    """The emulated backend, whose ``fail_at``-th launch fails (after whole epochs ran)."""

    def __init__(self, backend, fail_at):
        self.backend, self.fail_at, self.launches = backend, fail_at, 0
        self.name, self.xp, self.errors = backend.name, backend.xp, (LaunchFailure,)

    def launch(self, *args):
        self.launches += 1
        if self.launches == self.fail_at:
            raise LaunchFailure("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES")
        self.backend.launch(*args)

    def __getattr__(self, name):
        return getattr(self.backend, name)


def test_a_launch_failing_mid_fit_restarts_on_the_reference_engine(problem, monkeypatch):
    """The state and the random state are put back: the model is the reference's."""
    X, y = problem
    failing = FailingBackend(driver.emulated_backend(), fail_at=40)  # in the third epoch
    monkeypatch.setattr(driver, "_backend_for", lambda xp: failing)
    model = _fallback_fit(monkeypatch, X, y, "LaunchFailure: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES")
    assert failing.launches == 40
    _assert_reference(model, X, y)


def test_an_error_that_is_no_engine_limit_is_raised(problem, monkeypatch):
    X, y = problem

    def broken(*args, **kwargs):
        raise LookupError("a bug, not a limit")

    monkeypatch.setattr(driver.CudaEngine, "start", broken)
    monkeypatch.setenv(driver.ENV_EMULATE, "1")
    with pytest.raises(LookupError, match="a bug"):
        _estimator().fit(X, y)


# ---------------------------------------------------------------- the plan is the fit's
def _dense(d, k, dtype, n=64):
    X = np.broadcast_to(np.zeros((), dtype=dtype), (n, d))  # a shape without memory
    return TrainingData(X=X, targets=np.zeros((n, k), dtype=dtype))


def _fit_constructs(backend, data, config, threads):
    """Whether the fit's own buffers and launch shape can be built at ``threads``."""
    state = TrainingState(
        coef=np.zeros((data.X.shape[1], data.targets.shape[1]), dtype=data.targets.dtype),
        intercept=np.zeros(data.targets.shape[1], dtype=data.targets.dtype),
    )
    real = TrainingData(X=np.zeros(data.X.shape, dtype=data.X.dtype), targets=data.targets)
    try:
        driver.FusedFit(backend, state, real, config, 0, 0, threads=threads)
    except plan.KernelPlanError:
        return False
    return True


@pytest.mark.parametrize(
    "dtype, widths",
    [
        (np.float32, range(11_900, 12_400, 25)),  # the border at 256 threads: about 12,030
        (np.float64, range(5_800, 6_200, 25)),
    ],
)
def test_the_plan_checks_the_shape_the_gpu_fit_uses(emulated, dtype, widths):
    """At the GPU's 256 threads per block, the plan accepts exactly the widths the fit
    can build; at the emulation's 32 threads some of them fit, so the thread count is
    what decides (a plan checked at 32 threads would accept widths a GPU fit refuses)."""
    config = make_config(batch_size=64)
    gpu_threads = plan.launch_threads("cupy")
    emulation_only = 0
    for d in widths:
        data = _dense(d, 1, dtype)
        accepted = plan.fused_reason(np, data, config, backend_name="cupy") is None
        assert accepted == _fit_constructs(emulated, data, config, gpu_threads), d
        emulated_accepts = plan.fused_reason(np, data, config, backend_name="emulated") is None
        emulation_only += emulated_accepts and not accepted
    assert emulation_only > 0


def test_partial_gradients_are_bounded_at_the_gpu_shape():
    """d=11,000, 100 outputs, batch 8,192 (float32): one row per block would need
    8,192 partial slices of 1.1M weights (36 GB); the plan refuses it."""
    data = _dense(11_000, 100, np.float32, n=8192)
    reason = plan.fused_reason(np, data, make_config(batch_size=8192), backend_name="cupy")
    assert reason is not None and "partial gradients" in reason


def test_weights_beyond_32_bit_indices_are_refused_before_any_allocation():
    data = _dense(2**28, 8, np.float32, n=4)
    reason = plan.fused_reason(np, data, make_config(batch_size=4), backend_name="cupy")
    assert reason is not None and "32-bit indices" in reason


def test_a_batch_larger_than_the_data_is_the_data_in_the_kernels_config():
    config = make_config(batch_size=2**64)
    cfg = plan.config_vector(config, 30, 0, 0)
    assert cfg[plan.kernel_constant("CFG_BATCH_SIZE")] == 30
