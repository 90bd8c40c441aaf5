"""Step rules of the kernels written out by hand: the batch step rate, the sample clock, the
bound on the loss derivative and the active columns (one epoch, formulas in the test)."""

import numpy as np
import pytest
from kernel_helpers import SMALL_LAUNCH, fresh_state, make_config, make_problem

from sk_gpusgd._core.types import TrainingData
from sk_gpusgd._engines.cuda import driver, launcher


def _fit(emulated, X, Y, config, **cfg_values):
    fit = driver.FusedFit(
        emulated, fresh_state(X.shape[1], Y.shape[1]), TrainingData(X=X, targets=Y), config,
        shuffle_mode=0, seed=0, **SMALL_LAUNCH,
    )  # fmt: skip
    for name, value in cfg_values.items():
        fit.cfg[launcher.constants()[name]] = value
    return fit


def _by_hand(X, Y, batch, eta_of, bound, active):
    """Plain SGD on squared error, batch-mean gradient, |dloss| <= bound, frozen columns."""
    W, b = np.zeros((X.shape[1], Y.shape[1])), np.zeros(Y.shape[1])
    seen = 0
    for start in range(0, len(X), batch):
        rows = slice(start, start + batch)
        m = len(X[rows])
        dloss = np.clip(X[rows] @ W + b - Y[rows], -bound, bound) * active
        eta = eta_of(m, seen)
        W -= eta * X[rows].T @ dloss / m
        b -= eta * dloss.mean(axis=0)
        seen += m
    return W, b


@pytest.mark.parametrize(
    "beta, lam, curvature", [(0.0, 0.0, 1.0), (2.0, 0.5, 1.0), (9.0, 1.0, 0.25)]
)
def test_step_rate_and_sample_clock(emulated, beta, lam, curvature):
    """invscaling at t = samples seen + 1, then min(m eta, max(eta, gain(m) / (c beta)))."""
    X, Y = make_problem(n=10, d=4, k=2, task="regression")
    config = make_config(loss="squared_error", schedule="invscaling", eta0=0.1, batch_size=4)
    fit = _fit(
        emulated, X, Y, config,
        CFG_GAIN_BETA=beta, CFG_GAIN_LAMBDA=lam, CFG_CURVATURE=curvature, CFG_CLIP_DLOSS=0.5,
    )  # fmt: skip
    fit.epoch_steps(use_graphs=False)

    def eta_of(m, seen):
        eta = 0.1 / (seen + 1) ** 0.5
        if beta == 0 or m == 1:
            return eta
        gain = m * beta / (beta + lam * (m - 1))
        return min(m * eta, max(eta, gain / (curvature * beta)))

    W, b = _by_hand(X, Y, 4, eta_of, 0.5, np.ones(2))
    np.testing.assert_allclose(fit.W, W, rtol=1e-12)
    np.testing.assert_allclose(fit.b, b, rtol=1e-12)


def test_a_batch_of_one_has_gain_one(emulated):
    X, Y = make_problem(n=5, d=3, k=1, task="regression")
    config = make_config(loss="squared_error", schedule="constant", eta0=0.05, batch_size=1)
    gained = _fit(emulated, X, Y, config, CFG_GAIN_BETA=3.0, CFG_GAIN_LAMBDA=7.0)
    plain = _fit(emulated, X, Y, config)
    gained.epoch_steps(use_graphs=False)
    plain.epoch_steps(use_graphs=False)
    assert np.array_equal(gained.W, plain.W)


def test_inactive_columns_get_no_gradient(emulated):
    """A masked column only decays: w * (1 - eta l2) per step, the intercept stays."""
    X, Y = make_problem(n=10, d=4, k=3, task="regression")
    config = make_config(
        loss="squared_error", schedule="constant", eta0=0.1, batch_size=4, optimizer={"l2": 1e-2}
    )
    fit = _fit(emulated, X, Y, config)
    fit.W[:] = 0.5
    fit.b[:] = 0.25
    fit.set_active([1.0, 0.0, 1.0])
    fit.epoch_steps(use_graphs=False)  # 3 steps
    np.testing.assert_allclose(fit.W[:, 1], 0.5 * (1 - 0.1 * 1e-2) ** 3, rtol=1e-14)
    assert fit.b[1] == 0.25
    assert np.all(fit.W[:, [0, 2]] != fit.W[0, 1])


def test_frozen_columns_are_put_back_after_each_epoch(emulated):
    X, Y = make_problem(n=10, d=4, k=3, task="regression")
    config = make_config(
        loss="squared_error", schedule="constant", eta0=0.1, batch_size=4,
        optimizer={"momentum": 0.9, "l1": 1e-3, "l2": 1e-2},
    )  # fmt: skip
    fit = _fit(emulated, X, Y, config)
    fit.W[:] = 0.5
    fit.b[:] = 0.25
    fit.freeze(np.array([True, False, True]))
    for _ in range(2):
        fit.epoch_steps(use_graphs=False)
        fit.end_epoch()
        assert np.all(fit.W[:, 1] == 0.5) and fit.b[1] == 0.25
        assert not np.any(fit.buffer[:, 1]) and not np.any(fit.l1_applied[:, 1])
    assert np.all(fit.W[:, [0, 2]] != 0.5)
