"""Problems, configurations and comparisons shared by the kernel tests."""

from __future__ import annotations

import numpy as np

from sk_gpusgd._core.losses import make_loss
from sk_gpusgd._core.optim import OptimizerConfig
from sk_gpusgd._core.schedules import make_schedule
from sk_gpusgd._core.types import EngineConfig, TrainingData, TrainingState
from sk_gpusgd._runs import run_kernels

# Small, ragged launch shapes: several forward blocks, a last block with fewer rows (or
# none), rows not a multiple of the batch, threads fewer and more than (row, column) pairs.
SMALL_LAUNCH = {"threads": 32, "max_rows_per_block": 3, "chunk_steps": 2}


def make_problem(n=37, d=20, k=3, task="classification", seed=0, dtype=np.float64):
    """Rows, +-1 targets per column (classification) or real targets, standardised X."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if task == "classification":
        Y = np.sign(X @ rng.standard_normal((d, k)) + 0.5 * rng.standard_normal((n, k)))
        Y[Y == 0] = 1.0
    else:
        Y = X @ rng.standard_normal((d, k)) + 0.1 * rng.standard_normal((n, k))
    return X.astype(dtype), Y.astype(dtype)


def make_config(
    loss="hinge",
    schedule="invscaling",
    eta0=0.05,
    alpha=1e-3,
    power_t=0.5,
    batch_size=8,
    epsilon=0.1,
    optimizer=None,
    **options,
):
    loss_object = make_loss(loss, epsilon)
    return EngineConfig(
        loss=loss_object,
        schedule=make_schedule(schedule, eta0, alpha, power_t, loss_object),
        optimizer=OptimizerConfig(**(optimizer or {})),
        batch_size=batch_size,
        tol=options.pop("tol", None),
        **options,
    )


def fresh_state(d, k, dtype=np.float64):
    return TrainingState(coef=np.zeros((d, k), dtype=dtype), intercept=np.zeros(k, dtype=dtype))


def train_both(
    data: TrainingData,
    config,
    epochs=3,
    seed=0,
    launch=SMALL_LAUNCH,
    backend=None,
    precondition=False,
):
    """The same fit by the reference engine and by the kernels; returns both states and reports.

    ``precondition`` standardises the features inside the engines (as ``_base`` does for
    ``preconditioner='standardize'``).
    """
    from sk_gpusgd._core.precondition import feature_statistics
    from sk_gpusgd._runs import run

    d, k = data.X.shape[1], data.targets.shape[1]
    dtype = data.targets.dtype
    reference, kernels = fresh_state(d, k, dtype), fresh_state(d, k, dtype)
    if precondition:
        for state in (reference, kernels):
            state.precondition(*feature_statistics(np, data.X, dtype))
    reference_report = run(
        np, reference, data, config, max_epochs=epochs, random_state=np.random.RandomState(seed)
    )
    kernel_report = run_kernels(
        np,
        kernels,
        data,
        config,
        max_epochs=epochs,
        random_state=np.random.RandomState(seed),
        backend=backend,
        launch_options=launch,
    )
    return (reference, reference_report), (kernels, kernel_report)


def assert_same_training(reference, kernels, rtol=1e-5, atol=1e-10):
    """Every array and counter of two states agree (arrays to ``rtol``)."""
    (ref_state, ref_report), (ker_state, ker_report) = reference, kernels
    for name in (
        "coef",
        "intercept",
        "coef_buffer",
        "intercept_buffer",
        "l1_applied",
        "average_coef",
        "average_intercept",
    ):
        expected, actual = getattr(ref_state, name), getattr(ker_state, name)
        if expected is None:
            assert actual is None or name == "l1_applied", name
            continue
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=name)
    for name in ("steps", "samples_seen", "n_averaged"):
        assert getattr(ker_state, name) == getattr(ref_state, name), name
    if ref_state.adaptive_eta is not None:
        np.testing.assert_allclose(ker_state.adaptive_eta, ref_state.adaptive_eta, rtol=1e-12)
    np.testing.assert_allclose(ker_state.l1_total, ref_state.l1_total, rtol=1e-9)
    assert ker_report.n_epochs == ref_report.n_epochs
    np.testing.assert_allclose(ker_report.loss_curve, ref_report.loss_curve, rtol=rtol)
