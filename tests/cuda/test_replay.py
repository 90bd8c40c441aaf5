"""Graph replay: recorded chunks of launches give bit-for-bit the eager result."""

import numpy as np
import pytest
from kernel_helpers import SMALL_LAUNCH, fresh_state, make_config, make_problem

from sk_gpusgd._core.types import TrainingData
from sk_gpusgd._engines.cuda import driver, launcher
from sk_gpusgd._runs import run_kernels

STATE_ARRAYS = ("coef", "intercept", "coef_buffer", "intercept_buffer", "average_coef")


def _fit(backend, graphs, monkeypatch, shuffle="order", seed=0, epochs=4):
    monkeypatch.setenv(driver.ENV_GRAPHS, graphs)
    monkeypatch.setenv(driver.ENV_SHUFFLE, shuffle)
    X, Y = make_problem(k=3)
    config = make_config(
        loss="log_loss", schedule="optimal", average_start=5, optimizer={"momentum": 0.9}
    )
    state = fresh_state(20, 3)
    report = run_kernels(
        np,
        state,
        TrainingData(X=X, targets=Y),
        config,
        max_epochs=epochs,
        random_state=np.random.RandomState(seed),
        backend=backend,
        launch_options=SMALL_LAUNCH,  # 5 steps per epoch: two chunks of 2 and a remainder
    )
    return state, report


@pytest.mark.parametrize("shuffle", ["order", "bijection"])
def test_graph_replay_equals_eager_launches_bitwise(emulated, monkeypatch, shuffle):
    eager, eager_report = _fit(emulated, "0", monkeypatch, shuffle)
    replayed, replay_report = _fit(emulated, "always", monkeypatch, shuffle)
    for name in STATE_ARRAYS:
        assert np.array_equal(getattr(eager, name), getattr(replayed, name)), name
    assert eager_report.loss_curve == replay_report.loss_curve
    assert eager.steps == replayed.steps == 20


def test_capture_records_without_running_and_replays_each_time(emulated):
    X, Y = make_problem(k=3)
    config = make_config(loss="hinge", schedule="constant")
    fit = driver.FusedFit(
        emulated,
        fresh_state(20, 3),
        TrainingData(X=X, targets=Y),
        config,
        shuffle_mode=0,
        seed=0,
        **SMALL_LAUNCH,
    )
    fit.capture()
    assert not fit.W.any()  # recording launched nothing
    fit.epoch_steps(use_graphs=True)
    after_one = fit.W.copy()
    assert after_one.any()
    fit.end_epoch()
    fit.epoch_steps(use_graphs=True)
    assert not np.array_equal(fit.W, after_one)  # the same graph, fresh per-step values
    assert fit.backend.to_host(fit.ctx)[launcher.constants()["CTX_STEPS"]] == 10


@pytest.mark.parametrize("shuffle", ["order", "bijection"])
def test_same_random_state_same_model(emulated, monkeypatch, shuffle):
    first, _ = _fit(emulated, "auto", monkeypatch, shuffle, seed=3)
    second, _ = _fit(emulated, "auto", monkeypatch, shuffle, seed=3)
    other, _ = _fit(emulated, "auto", monkeypatch, shuffle, seed=4)
    assert np.array_equal(first.coef, second.coef)
    assert not np.array_equal(first.coef, other.coef)


def test_sparse_graph_replay_equals_eager_launches(emulated, monkeypatch):
    """Bit for bit on the CPU, where the scatter's atomics run in launch order."""
    import scipy.sparse as sp

    X, Y = make_problem(k=3)
    data = TrainingData(X=sp.csr_matrix(X * (np.abs(X) > 0.7)), targets=Y)
    config = make_config(loss="hinge", optimizer={"momentum": 0.9, "l1": 1e-3})
    states = []
    for mode in ("0", "always"):
        monkeypatch.setenv(driver.ENV_GRAPHS, mode)
        state = fresh_state(20, 3)
        run_kernels(
            np,
            state,
            data,
            config,
            max_epochs=3,
            random_state=np.random.RandomState(0),
            backend=emulated,
            launch_options=SMALL_LAUNCH,
        )
        states.append(state)
    for name in ("coef", "intercept", "coef_buffer", "l1_applied"):
        assert np.array_equal(getattr(states[0], name), getattr(states[1], name)), name
