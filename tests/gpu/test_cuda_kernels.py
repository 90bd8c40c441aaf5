"""The CUDA engine on a GPU: kernels vs the NumPy engine, graphs vs eager, memory, choice.

Skipped, with the reason, without CuPy or a device (``conftest.py``). The CPU tier
(``tests/cuda``) runs the same kernel source through the host emulation.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from sk_gpusgd import GPUSGDClassifier
from sk_gpusgd._core.losses import make_loss
from sk_gpusgd._core.optim import OptimizerConfig
from sk_gpusgd._core.schedules import make_schedule
from sk_gpusgd._core.types import EngineConfig, TrainingData, TrainingState
from sk_gpusgd._engines.cuda import driver, launcher
from sk_gpusgd._runs import run, run_kernels

OPTIONS = {
    "hinge-l2": ("hinge", "invscaling", {"l2": 1e-3}, {}),
    "log-nesterov": ("log_loss", "optimal", {"momentum": 0.9, "nesterov": True}, {}),
    "huber-velocity": ("huber", "constant", {"momentum": 0.9, "momentum_form": "velocity"}, {}),
    "clip-norm-l1": ("squared_hinge", "invscaling", {"clip_norm": 0.1, "l1": 1e-3}, {}),
    "pa2": ("hinge", "pa2", {}, {}),
    "average-decoupled": ("log_loss", "invscaling", {"decoupled_decay": 0.1}, {"average": 7}),
    "epsilon-clip-value": ("epsilon_insensitive", "invscaling", {"clip_value": 0.05}, {}),
    "dampening": ("modified_huber", "invscaling", {"momentum": 0.9, "dampening": 0.5}, {}),
}
REGRESSION = ("huber", "epsilon_insensitive", "squared_error")


@pytest.fixture
def backend(cupy):
    return launcher.CupyBackend()


def _config(loss, schedule, optimizer, average=0, batch_size=64, shuffle=True):
    loss_object = make_loss(loss, 0.1)
    return EngineConfig(
        loss=loss_object,
        schedule=make_schedule(schedule, 0.02, 1e-3, 0.5, loss_object),
        optimizer=OptimizerConfig(**optimizer),
        batch_size=batch_size,
        shuffle=shuffle,
        tol=None,
        average_start=average,
    )


def _problem(n=3001, d=37, k=10, regression=False, dtype=np.float64):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(dtype)
    scores = X @ rng.standard_normal((d, k))
    Y = scores if regression else np.where(scores > 0, 1.0, -1.0)
    return X, Y.astype(dtype)


def _state(xp, d, k, dtype=np.float64):
    return TrainingState(coef=xp.zeros((d, k), dtype=dtype), intercept=xp.zeros(k, dtype=dtype))


class BijectionOrders:
    """A random_state giving the reference engine the kernels' own epoch orders."""

    def __init__(self, backend, seed):
        self.backend, self.seed, self.epoch = backend, seed, 0

    def randint(self, high):
        return self.seed

    def permutation(self, n):
        order = driver.epoch_order(self.backend, n, self.seed, self.epoch)
        self.epoch += 1
        return order


def _kernel_fit(cupy, backend, X, Y, config, random_state, epochs=3):
    state = _state(cupy, X.shape[1], Y.shape[1], Y.dtype)
    data = TrainingData(X=cupy.asarray(X), targets=cupy.asarray(Y))
    run_kernels(
        cupy, state, data, config, max_epochs=epochs, random_state=random_state, backend=backend
    )
    return state


@pytest.mark.parametrize("name", list(OPTIONS))
def test_kernels_match_the_numpy_engine_in_float64(cupy, backend, monkeypatch, name):
    monkeypatch.setenv(driver.ENV_SHUFFLE, "bijection")
    loss, schedule, optimizer, extra = OPTIONS[name]
    regression = loss in REGRESSION
    X, Y = _problem(k=1 if regression else 10, regression=regression)
    config = _config(loss, schedule, optimizer, **extra)
    reference = _state(np, X.shape[1], Y.shape[1])
    run(np, reference, TrainingData(X=X, targets=Y), config, max_epochs=3,
        random_state=BijectionOrders(backend, 99))  # fmt: skip
    kernels = _kernel_fit(cupy, backend, X, Y, config, BijectionOrders(backend, 99))
    np.testing.assert_allclose(cupy.asnumpy(kernels.coef), reference.coef, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(cupy.asnumpy(kernels.intercept), reference.intercept, rtol=1e-5)
    assert kernels.steps == reference.steps


def test_float16_x_matches_the_numpy_engine(cupy, backend):
    X, Y = _problem(k=3, dtype=np.float32)
    X16 = X.astype(np.float16)
    loss = make_loss("log_loss", 0.1)
    config = EngineConfig(
        loss=loss,
        schedule=make_schedule("invscaling", 0.05, 1e-3, 0.5, loss),
        optimizer=OptimizerConfig(momentum=0.5),
        batch_size=64,
        shuffle=False,
        tol=None,
        compute_dtype=np.float32,
    )
    reference = _state(np, X.shape[1], 3, np.float32)
    run(np, reference, TrainingData(X=X16, targets=Y), config, max_epochs=2,
        random_state=np.random.RandomState(0))  # fmt: skip
    kernels = _kernel_fit(cupy, backend, X16, Y, config, np.random.RandomState(0), epochs=2)
    assert kernels.coef.dtype == cupy.float32
    np.testing.assert_allclose(cupy.asnumpy(kernels.coef), reference.coef, rtol=2e-4, atol=1e-5)


def test_graph_replay_equals_eager_launches_bitwise(cupy, backend, monkeypatch):
    X, Y = _problem(n=10_000, d=64)  # 157 steps per epoch: two chunks and a remainder
    config = _config("log_loss", "optimal", {"momentum": 0.9}, average=100)
    states = {}
    for mode in ("0", "always"):
        monkeypatch.setenv(driver.ENV_GRAPHS, mode)
        states[mode] = _kernel_fit(cupy, backend, X, Y, config, np.random.RandomState(1))
    for name in ("coef", "intercept", "coef_buffer", "average_coef"):
        cupy.testing.assert_array_equal(getattr(states["0"], name), getattr(states["always"], name))


def test_same_random_state_same_model(cupy, backend):
    X, Y = _problem()
    config = _config("hinge", "optimal", {"momentum": 0.5})
    first = _kernel_fit(cupy, backend, X, Y, config, np.random.RandomState(5))
    second = _kernel_fit(cupy, backend, X, Y, config, np.random.RandomState(5))
    other = _kernel_fit(cupy, backend, X, Y, config, np.random.RandomState(6))
    cupy.testing.assert_array_equal(first.coef, second.coef)
    assert not bool(cupy.array_equal(first.coef, other.coef))


def test_replayed_epochs_do_not_grow_the_memory_pool(cupy, backend):
    X, Y = _problem(n=20_000, d=64, dtype=np.float32)
    config = _config("hinge", "constant", {})
    data = TrainingData(X=cupy.asarray(X), targets=cupy.asarray(Y))
    pool = cupy.get_default_memory_pool()
    with backend.ordered():
        fit = driver.FusedFit(
            backend, _state(cupy, 64, 10, np.float32), data, config,
            launcher.constants()["SHUFFLE_BIJECTION"], seed=1,
        )  # fmt: skip
        fit.epoch_steps(use_graphs=True)
        fit.end_epoch()
        before = pool.used_bytes(), pool.total_bytes()
        for _ in range(30):
            fit.epoch_steps(use_graphs=True)
            fit.end_epoch()
        after = pool.used_bytes(), pool.total_bytes()
    assert before == after


def test_estimator_picks_the_kernels_for_cupy_dense_and_sparse(cupy, monkeypatch):
    import cupyx.scipy.sparse

    calls = []
    original = driver.CudaEngine.start
    monkeypatch.setattr(
        driver.CudaEngine, "start", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    X, Y = _problem(n=500, d=10, k=1)
    y = cupy.asarray((Y[:, 0] > 0).astype(int))
    GPUSGDClassifier(max_iter=2, tol=None).fit(cupy.asarray(X), y)
    assert len(calls) == 1
    X_sparse = cupyx.scipy.sparse.csr_matrix(cupy.asarray(sp.random(500, 10, 0.2).toarray()))
    model = GPUSGDClassifier(max_iter=2, tol=None).fit(X_sparse, y)
    assert len(calls) == 2
    assert isinstance(model.coef_, cupy.ndarray)
    wide = cupy.asarray(np.ones((20, 20_000)))  # a row too wide for shared memory
    with pytest.warns(driver.FusedEngineFallbackWarning, match="shared memory"):
        GPUSGDClassifier(max_iter=2, tol=None).fit(wide, y[:20])
    assert len(calls) == 2  # trained by the reference engine


def test_sparse_kernels_match_the_numpy_engine(cupy, backend):
    import cupyx.scipy.sparse

    X, Y = _problem(n=2001, d=300, k=3)
    X = X * (np.random.default_rng(1).random(X.shape) < 0.05)
    config = _config("log_loss", "optimal", {"momentum": 0.9, "l1": 1e-4}, shuffle=False)
    reference = _state(np, 300, 3)
    run(np, reference, TrainingData(X=sp.csr_matrix(X), targets=Y), config, max_epochs=3,
        random_state=np.random.RandomState(0))  # fmt: skip
    state = _state(cupy, 300, 3)
    data = TrainingData(X=cupyx.scipy.sparse.csr_matrix(sp.csr_matrix(X)), targets=cupy.asarray(Y))
    run_kernels(cupy, state, data, config, max_epochs=3, random_state=np.random.RandomState(0),
               backend=backend)  # fmt: skip
    np.testing.assert_allclose(cupy.asnumpy(state.coef), reference.coef, rtol=1e-5, atol=1e-9)
