"""The kernels (host emulation) against the reference engine, option by option.

float64, the same row order on both sides (the reference engine's permutations), ragged
shapes: 37 rows in batches of 8 (a last batch of 5), forward blocks of 3 rows (a block
with 2 rows and one with none), 1, 3 and 10 outputs. Agreement to 1e-5 relative.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from kernel_helpers import assert_same_training, make_config, make_problem, train_both

from sk_gpusgd._core.types import TrainingData
from sk_gpusgd._runs import run_kernels

CLASSIFICATION_LOSSES = ["hinge", "perceptron", "log_loss", "modified_huber", "squared_hinge"]
REGRESSION_LOSSES = ["squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"]


def _data(task, k, **kwargs):
    X, Y = make_problem(k=k, task=task, **kwargs)
    return TrainingData(X=X, targets=Y)


@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("loss", CLASSIFICATION_LOSSES + REGRESSION_LOSSES)
def test_every_loss_and_output_count(emulated, loss, k):
    task = "classification" if loss in CLASSIFICATION_LOSSES else "regression"
    eta0 = 0.05 if task == "classification" else 0.01
    config = make_config(loss=loss, eta0=eta0, optimizer={"l2": 1e-3})
    assert_same_training(*train_both(_data(task, k), config, backend=emulated))


@pytest.mark.parametrize(
    "schedule, loss, options",
    [
        ("constant", "hinge", {}),
        ("optimal", "log_loss", {}),
        ("invscaling", "modified_huber", {}),
        ("pa1", "hinge", {}),
        ("pa2", "hinge", {}),
        ("pa1", "epsilon_insensitive", {}),
        ("pa2", "squared_epsilon_insensitive", {}),
        # the adaptive rate drops during the fit (tol reached every epoch)
        ("adaptive", "log_loss", {"tol": 1e9, "n_iter_no_change": 1}),
    ],
)
def test_every_schedule(emulated, schedule, loss, options):
    task = "regression" if "epsilon" in loss else "classification"
    config = make_config(loss=loss, schedule=schedule, eta0=0.02, **options)
    reference, kernels = train_both(_data(task, 3), config, epochs=4, backend=emulated)
    assert_same_training(reference, kernels)
    if schedule == "adaptive":
        assert max(kernels[0].adaptive_eta) < 0.02 / 5 / 5


OPTIMIZERS = {
    "l2": {"l2": 1e-2},
    "decoupled": {"decoupled_decay": 1e-1},
    "l1": {"l1": 1e-2},
    "elasticnet": {"l1": 5e-3, "l2": 5e-3},
    "momentum": {"momentum": 0.9, "l2": 1e-3},
    "dampening": {"momentum": 0.9, "dampening": 0.3},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "momentum-decoupled": {"momentum": 0.5, "decoupled_decay": 1e-1, "l2": 1e-3},
    "velocity": {"momentum": 0.9, "momentum_form": "velocity"},
    "velocity-nesterov": {"momentum": 0.9, "nesterov": True, "momentum_form": "velocity"},
    "clip-value": {"clip_value": 0.05},
    "clip-norm": {"clip_norm": 0.1},
    "clip-norm-momentum-l1": {"clip_norm": 0.1, "momentum": 0.5, "l1": 1e-3},
    # the shrink is clamped at zero: only each batch's last row moves the weights
    "clamped-shrink": {"l2": 20.0},
    "clamped-decay": {"decoupled_decay": 9.0, "l2": 1e-3},
}


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_option(emulated, name, k):
    config = make_config(loss="log_loss", eta0=0.1, optimizer=OPTIMIZERS[name])
    assert_same_training(*train_both(_data("classification", k), config, backend=emulated))


@pytest.mark.parametrize("average_decay", [0.0, 1.0])
@pytest.mark.parametrize("average_start", [1, 20, 100])
def test_averaging_from_any_sample(emulated, average_start, average_decay):
    config = make_config(
        loss="squared_error",
        eta0=0.02,
        average_start=average_start,
        average_decay=average_decay,
    )
    assert_same_training(*train_both(_data("regression", 3), config, backend=emulated))


def test_sample_and_class_weights(emulated):
    X, Y = make_problem(k=3)
    rng = np.random.default_rng(1)
    data = TrainingData(
        X=X,
        targets=Y,
        sample_weight=rng.uniform(0.0, 3.0, X.shape[0]),
        positive_weight=np.array([1.0, 2.0, 0.5]),
        negative_weight=np.array([0.7, 1.0, 3.0]),
    )
    config = make_config(loss="modified_huber", optimizer={"momentum": 0.5})
    assert_same_training(*train_both(data, config, backend=emulated))


@pytest.mark.parametrize(
    "options",
    [{"fit_intercept": False}, {"intercept_scale": 0.01}, {"shuffle": False}],
    ids=["no-intercept", "intercept-scale", "no-shuffle"],
)
def test_loop_options(emulated, options):
    config = make_config(loss="hinge", optimizer={"momentum": 0.9}, **options)
    assert_same_training(*train_both(_data("classification", 3), config, backend=emulated))


@pytest.mark.parametrize("batch_size", [1, 5, 37, 64])
def test_batch_sizes(emulated, batch_size):
    config = make_config(loss="log_loss", batch_size=batch_size, optimizer={"l2": 1e-3})
    assert_same_training(*train_both(_data("classification", 3), config, backend=emulated))


@pytest.mark.parametrize("threads, rows", [(32, 1), (64, 8), (128, 32)])
def test_launch_shapes(emulated, threads, rows):
    launch = {"threads": threads, "max_rows_per_block": rows, "chunk_steps": 3}
    config = make_config(loss="squared_hinge", optimizer={"momentum": 0.9, "clip_norm": 1.0})
    data = _data("classification", 10, n=53, d=7)
    assert_same_training(*train_both(data, config, launch=launch, backend=emulated))


def test_continuing_state_keeps_momentum_and_clock(emulated):
    """A second call continues the first (partial_fit): buffers, clock, L1 and averages."""
    from kernel_helpers import SMALL_LAUNCH, fresh_state

    from sk_gpusgd._runs import run

    data = _data("classification", 3)
    config = make_config(loss="log_loss", average_start=10, optimizer={"momentum": 0.9, "l1": 1e-3})
    reference, kernels = fresh_state(20, 3), fresh_state(20, 3)
    for call in range(3):
        run(np, reference, data, config, max_epochs=1, random_state=np.random.RandomState(call))
        run_kernels(
            np,
            kernels,
            data,
            config,
            max_epochs=1,
            random_state=np.random.RandomState(call),
            backend=emulated,
            launch_options=SMALL_LAUNCH,
        )
    assert kernels.steps == 15 and kernels.samples_seen == 111
    for name in ("coef", "intercept", "coef_buffer", "l1_applied", "average_coef"):
        np.testing.assert_allclose(getattr(kernels, name), getattr(reference, name), rtol=1e-5)


def test_float32_matches_reference_in_float32(emulated):
    X, Y = make_problem(k=3, dtype=np.float32)
    config = make_config(loss="log_loss", optimizer={"momentum": 0.9, "l2": 1e-3})
    reference, kernels = train_both(TrainingData(X=X, targets=Y), config, backend=emulated)
    assert kernels[0].coef.dtype == np.float32
    assert_same_training(reference, kernels, rtol=2e-4, atol=1e-6)


def test_float16_x_with_float32_master_weights(emulated):
    X, Y = make_problem(k=3, dtype=np.float32)
    data = TrainingData(X=X.astype(np.float16), targets=Y)
    config = make_config(loss="hinge", compute_dtype=np.float32, optimizer={"momentum": 0.5})
    reference, kernels = train_both(data, config, backend=emulated)
    assert kernels[0].coef.dtype == np.float32
    assert_same_training(reference, kernels, rtol=2e-4, atol=1e-6)


def test_divergence_is_reported(emulated):
    from sk_gpusgd._core.types import DivergenceError

    X, Y = make_problem(k=1, task="regression")
    config = make_config(loss="squared_error", schedule="constant", eta0=1e30)
    from kernel_helpers import SMALL_LAUNCH, fresh_state

    with pytest.raises(DivergenceError, match="overflowed"):
        run_kernels(
            np,
            fresh_state(20, 1),
            TrainingData(X=X * 1e100, targets=Y),
            config,
            max_epochs=5,
            random_state=np.random.RandomState(0),
            backend=emulated,
            launch_options=SMALL_LAUNCH,
        )


def _sparse_data(k, task="classification", density=0.3, **weights):
    import scipy.sparse as sp

    X, Y = make_problem(k=k, task=task)
    mask = np.random.default_rng(2).random(X.shape) < density
    mask[5] = False  # a row without any stored value
    return TrainingData(X=sp.csr_matrix(X * mask), targets=Y, **weights)


SPARSE_OPTIMIZERS = {
    "plain": {},
    "l2": {"l2": 1e-2},
    "l1": {"l1": 1e-2},
    "elasticnet-decay": {"l1": 1e-3, "l2": 1e-3, "decoupled_decay": 1e-2},
    "momentum": {"momentum": 0.9, "l2": 1e-3},
    "dampening": {"momentum": 0.9, "dampening": 0.5, "l1": 1e-3},
    "velocity-nesterov": {"momentum": 0.9, "momentum_form": "velocity", "nesterov": True},
    "clip-value": {"clip_value": 0.05, "l2": 1e-3},
    # the weight scale falls below 1e-9 within the fit: renormalised on the device
    "renormalised": {"decoupled_decay": 9.0},
    "clip-norm": {"clip_norm": 0.05, "momentum": 0.5},
    "clip-norm-l1": {"clip_norm": 0.05, "l1": 1e-3},
    "clamped-shrink": {"l2": 20.0},
}


@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("name", list(SPARSE_OPTIMIZERS))
def test_sparse_lazy_updates(emulated, name, k):
    config = make_config(
        loss="log_loss", eta0=0.1, optimizer=SPARSE_OPTIMIZERS[name], intercept_scale=0.01
    )
    assert_same_training(*train_both(_sparse_data(k), config, backend=emulated))


@pytest.mark.parametrize(
    "loss, schedule",
    [
        ("hinge", "optimal"),
        ("modified_huber", "invscaling"),
        ("pa1", None),
        ("squared_error", "invscaling"),
        ("huber", "constant"),
        ("epsilon_insensitive", "pa2"),
    ],
)
def test_sparse_losses_and_schedules(emulated, loss, schedule):
    if loss == "pa1":
        loss, schedule = "hinge", "pa1"
    task = "regression" if loss in REGRESSION_LOSSES else "classification"
    config = make_config(loss=loss, schedule=schedule, eta0=0.02, optimizer={"momentum": 0.5})
    assert_same_training(*train_both(_sparse_data(3, task), config, backend=emulated))


def test_sparse_sample_and_class_weights(emulated):
    rng = np.random.default_rng(3)
    data = _sparse_data(
        3,
        sample_weight=rng.uniform(0, 2, 37),
        positive_weight=np.array([1.0, 3.0, 0.5]),
        negative_weight=np.array([2.0, 1.0, 1.0]),
    )
    config = make_config(loss="squared_hinge", optimizer={"l1": 1e-3})
    assert_same_training(*train_both(data, config, backend=emulated))


@pytest.mark.parametrize("average_decay", [0.0, 1.0])
@pytest.mark.parametrize("average_start", [1, 20, 100])
@pytest.mark.parametrize("optimizer", [{}, {"l1": 1e-3, "l2": 1e-3}, {"momentum": 0.9}])
def test_sparse_averaging(emulated, average_start, optimizer, average_decay):
    config = make_config(
        loss="hinge", average_start=average_start, optimizer=optimizer, average_decay=average_decay
    )
    assert_same_training(*train_both(_sparse_data(3), config, backend=emulated))


def test_sparse_adaptive_rate_falls_back():
    from sk_gpusgd._engines.cuda import driver

    config = make_config(schedule="adaptive")
    assert "adaptive" in driver.fused_reason(np, _sparse_data(3), config)


def test_what_is_not_fused_falls_back(monkeypatch):
    from sk_gpusgd._engines.array_api import ArrayApiEngine
    from sk_gpusgd._engines.cuda import driver
    from sk_gpusgd._plan import engine_for

    monkeypatch.setenv(driver.ENV_EMULATE, "1")  # NumPy input asks for the kernels
    X, Y = make_problem(n=10, d=20_000, k=1)  # a row wider than one block's shared memory
    data = TrainingData(X=X, targets=Y)
    config = make_config()
    plan = SimpleNamespace(chunk_rows=None)
    engine, note = engine_for(plan, np, data, config)
    assert isinstance(engine, ArrayApiEngine) and "shared memory" in note
    narrow = TrainingData(X=X[:, :20], targets=Y)
    engine, note = engine_for(plan, np, narrow, config)
    assert isinstance(engine, driver.CudaEngine) and note is None
    assert isinstance(engine.fallback, ArrayApiEngine)


def _scaling(data, fit_intercept=True):
    from sk_gpusgd._core.scaling import measure_scaling

    return measure_scaling(data.X, fit_intercept)


@pytest.mark.parametrize("loss", ["log_loss", "hinge", "squared_hinge", "modified_huber"])
@pytest.mark.parametrize("batch_size", [4, 16])
def test_batch_step_rate(emulated, loss, batch_size):
    """The capped linear-scaling rate from the data's statistics, per batch size."""
    data = _data("classification", 3)
    config = make_config(
        loss=loss, schedule="optimal", batch_size=batch_size, scaling=_scaling(data)
    )
    assert_same_training(*train_both(data, config, backend=emulated))


@pytest.mark.parametrize(
    "optimizer",
    [{"l2": 1e-2}, {"l1": 1e-2}, {"momentum": 0.9, "l2": 1e-3, "l1": 1e-3}, {"l2": 1.0}],
    # the last: the shrink is clamped for the narrow features only (per-feature L2)
    ids=["l2", "l1", "momentum-elasticnet", "clamped-per-feature"],
)
def test_preconditioned_features(emulated, optimizer):
    X, Y = make_problem(k=3)
    X = X * np.linspace(0.1, 10, 20) + np.linspace(-5, 5, 20)  # scales and means differ
    data = TrainingData(X=X, targets=Y)
    config = make_config(
        loss="log_loss", schedule="optimal", optimizer=optimizer, scaling=_scaling(data)
    )
    reference, kernels = train_both(data, config, backend=emulated, precondition=True)
    assert_same_training(reference, kernels)
    np.testing.assert_allclose(
        kernels[0].model_weights()[0], reference[0].model_weights()[0], rtol=1e-5, atol=1e-10
    )


@pytest.mark.parametrize("k", [3, 10])
@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": {"l2": 1e-2}},
        {"optimizer": {"l1": 1e-3, "l2": 1e-3}},
        {"optimizer": {"momentum": 0.5}, "average_start": 30},
    ],
    ids=["l2", "elasticnet", "momentum-average"],
)
def test_columns_stop_on_their_own(emulated, k, options):
    """tol reached at different epochs per column: stopped columns keep their weights."""
    data = _data("classification", k)
    config = make_config(loss="hinge", tol=1e-2, n_iter_no_change=2, **options)
    reference, kernels = train_both(data, config, epochs=30, backend=emulated)
    assert_same_training(reference, kernels)
    assert reference[1].converged and 2 < reference[1].n_epochs < 30


def test_adaptive_rates_per_column(emulated):
    data = _data("classification", 10)
    config = make_config(
        loss="log_loss", schedule="adaptive", eta0=0.5, tol=1e-2, n_iter_no_change=1,
        optimizer={"l1": 1e-4},
    )  # fmt: skip
    reference, kernels = train_both(data, config, epochs=12, backend=emulated)
    assert len(set(reference[0].adaptive_eta)) > 1  # the columns' rates went their own ways
    assert_same_training(reference, kernels)


@pytest.mark.parametrize("optimizer", [{"l2": 1e-2}, {"l1": 1e-3}, {"decoupled_decay": 9.0}])
def test_sparse_stopping_rule_and_step_rate(emulated, optimizer):
    data = _sparse_data(3)
    config = make_config(
        loss="log_loss", tol=1e-3, n_iter_no_change=2, optimizer=optimizer, scaling=_scaling(data)
    )
    assert_same_training(*train_both(data, config, epochs=20, backend=emulated))


def _multinomial_config(**options):
    from dataclasses import replace

    from sk_gpusgd._core.losses import make_loss

    config = make_config(loss="log_loss", **options)
    return replace(config, loss=make_loss("log_loss", 0.1, multinomial=True))


def _one_class_per_row(k, **weights):
    X, Y = make_problem(k=k)
    labels = np.argmax(X[:, :k] + 0.3 * np.random.default_rng(4).standard_normal((37, k)), axis=1)
    Y = np.where(np.arange(k)[None, :] == labels[:, None], 1.0, -1.0)
    return TrainingData(X=X, targets=Y, **weights)


@pytest.mark.parametrize("k", [3, 10])
@pytest.mark.parametrize(
    "options",
    [{}, {"optimizer": {"momentum": 0.9, "l2": 1e-3}}, {"schedule": "optimal", "average_start": 9}],
    ids=["plain", "momentum", "optimal-average"],
)
def test_multinomial_softmax(emulated, k, options):
    config = _multinomial_config(**options)
    assert_same_training(*train_both(_one_class_per_row(k), config, backend=emulated))


def test_multinomial_weights_and_joint_stopping(emulated):
    rng = np.random.default_rng(5)
    data = _one_class_per_row(
        4,
        sample_weight=rng.uniform(0.2, 2.0, 37),
        positive_weight=np.array([1.0, 2.0, 0.5, 1.5]),
        negative_weight=np.ones(4),
    )
    config = _multinomial_config(tol=1e-2, n_iter_no_change=2, optimizer={"l2": 1e-2})
    reference, kernels = train_both(data, config, epochs=30, backend=emulated)
    assert reference[1].converged
    assert_same_training(reference, kernels)


def test_sparse_multinomial_falls_back():
    from sk_gpusgd._engines.cuda import driver

    assert "multinomial" in driver.fused_reason(np, _sparse_data(3), _multinomial_config())


def test_sparse_stopping_rule_with_averaging(emulated):
    """Averaging folds every weight each step: the penalty norms are recomputed, not tracked."""
    data = _sparse_data(3)
    config = make_config(
        loss="hinge", tol=1e-3, n_iter_no_change=2, average_start=50, optimizer={"l1": 1e-3}
    )
    assert_same_training(*train_both(data, config, epochs=20, backend=emulated))


@pytest.mark.parametrize("gain_floor", [False, True])
@pytest.mark.parametrize("loss", ["log_loss", "hinge"])
def test_sparse_batch_scaling_and_its_floor(emulated, loss, gain_floor):
    # 'optimal' starts above the curvature cap: the floor gain(m) * eta decides there
    data = _sparse_data(3)
    config = make_config(
        loss=loss,
        schedule="optimal",
        alpha=1e-5,
        scaling=_scaling(data),
        gain_floor=gain_floor,
        intercept_scale=0.01,
    )
    assert_same_training(*train_both(data, config, backend=emulated))
