"""The minibatch loop: epochs, shuffling, batches, stopping.

A pure function over arrays of one array-API namespace: it never sees an
estimator. Values stay in the namespace (on the device) inside an epoch; the
loop synchronises with the host once per epoch, to test convergence and
divergence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from ._backend import is_cupy_namespace, is_sparse, to_namespace
from ._losses import Loss
from ._optim import OptimizerConfig, clip_gradient, l1_truncate, momentum_step
from ._progress import FitProgress
from ._schedules import ADAPTIVE_DIVISOR, MIN_ADAPTIVE_ETA, Schedule


@dataclass(frozen=True)
class EngineConfig:
    """Everything the loop needs besides the data, fixed for one fit.

    Parameters
    ----------
    loss : Loss
        The loss object.
    schedule : Schedule
        The learning-rate schedule.
    optimizer : OptimizerConfig
        Update rule, penalties and clipping.
    batch_size : int
        Rows per step.
    fit_intercept : bool
        Learn the intercept.
    intercept_scale : float
        Factor on the intercept's step (0.01 on sparse data, as scikit-learn).
    shuffle : bool
        Reshuffle the rows every epoch.
    tol : float or None
        Improvement threshold of the stopping rule; None disables it.
    n_iter_no_change : int
        Epochs without improvement before stopping (or dividing the adaptive rate).
    average_start : int
        Average the weights once this many samples were seen; 0 disables averaging.
    compute_dtype : dtype or None
        Dtype of the arithmetic when X is stored in half precision.
    verbose : int
        Print one line per epoch when positive.
    """

    loss: Loss
    schedule: Schedule
    optimizer: OptimizerConfig
    batch_size: int
    fit_intercept: bool = True
    intercept_scale: float = 1.0
    shuffle: bool = True
    tol: float | None = 1e-3
    n_iter_no_change: int = 5
    average_start: int = 0
    compute_dtype: Any = None
    verbose: int = 0


@dataclass
class TrainingData:
    """Training arrays, all in the compute namespace.

    ``targets`` is (n_samples, n_outputs): +1/-1 per one-vs-rest column for
    classification, the target values for regression. ``positive_weight`` and
    ``negative_weight`` (n_outputs,) are the class weights of the +1 and -1 rows
    of every column; None when all class weights are one.
    """

    X: Any
    targets: Any
    sample_weight: Any = None
    positive_weight: Any = None
    negative_weight: Any = None

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])


@dataclass
class TrainingState:
    """Weights and optimizer state; persists across ``partial_fit`` calls.

    ``coef`` is (n_features, n_outputs) so that one matrix product serves every
    class. ``steps`` counts optimizer steps (the schedule clock is steps + 1).
    """

    coef: Any
    intercept: Any
    coef_buffer: Any = None
    intercept_buffer: Any = None
    l1_applied: Any = None
    l1_total: float = 0.0
    average_coef: Any = None
    average_intercept: Any = None
    n_averaged: int = 0
    steps: int = 0
    samples_seen: int = 0
    adaptive_eta: float | None = None

    def model_weights(self):
        """``(coef, intercept)`` the model predicts with: the averages once averaging began."""
        if self.average_coef is not None and self.n_averaged > 0:
            return self.average_coef, self.average_intercept
        return self.coef, self.intercept

    def arrays(self) -> dict:
        """The array fields, by name (for moving the state between namespaces)."""
        return {
            name: value
            for name, value in vars(self).items()
            if value is not None and not isinstance(value, int | float)
        }

    def moved_to(self, xp) -> TrainingState:
        """A copy of the state with every array in namespace ``xp``."""
        fields = dict(vars(self))
        for name, value in self.arrays().items():
            fields[name] = to_namespace(value, xp)
        return TrainingState(**fields)

    def copied(self, xp) -> TrainingState:
        """A copy whose arrays can be changed without touching this state."""
        fields = dict(vars(self))
        for name, value in self.arrays().items():
            fields[name] = xp.asarray(value, copy=True)
        return TrainingState(**fields)


@dataclass
class RunReport:
    """What one call of :func:`run` did."""

    n_epochs: int = 0
    loss_curve: list = field(default_factory=list)
    converged: bool = False


class DivergenceError(ValueError):
    """The weights overflowed to inf or NaN."""


def batch_weights(xp, targets, sample_weight, data: TrainingData):
    """Per-sample (and per-class) weights of a batch, or None when all are one."""
    weights = None
    if data.positive_weight is not None:
        weights = xp.where(targets > 0, data.positive_weight, data.negative_weight)
    if sample_weight is not None:
        column = sample_weight[:, None]
        weights = column if weights is None else weights * column
    return weights


def squared_row_norms(xp, X_batch):
    """||x_i||^2 of each row of a batch, (batch, 1), dense or sparse."""
    if is_sparse(X_batch):
        squared = X_batch.multiply(X_batch).sum(axis=1)
        return xp.reshape(xp.asarray(squared), (-1, 1))
    return xp.sum(X_batch * X_batch, axis=1)[:, None]


def loss_gradient(xp, decision, targets, weights, X_batch, config: EngineConfig):
    """Weighted loss of the batch (0-d) and the weighted derivative of each decision.

    The loss is weighted like the gradient (sample and class weights), so that
    the stopping rule watches the objective the steps minimise.

    For the passive-aggressive rates the derivative is replaced by the
    per-sample PA step divided by eta0, so that ``eta0 * derivative`` is the
    step scikit-learn takes.
    """
    loss_values, derivative = config.loss.value_and_derivative(xp, decision, targets)
    schedule = config.schedule
    if schedule.passive_aggressive:
        # per batch, so half-precision X never gets a float32 copy
        squared_norms = xp.astype(squared_row_norms(xp, X_batch), decision.dtype)
        if schedule.kind == "pa1":
            step = xp.minimum(loss_values / squared_norms, schedule.eta0)
            step = xp.where(squared_norms > 0, step, 0.0)
        else:
            step = loss_values / (squared_norms + 0.5 / schedule.eta0)
        if config.loss.name == "hinge":
            sign = targets
        else:
            sign = 1.0 - 2.0 * xp.astype(targets - decision < 0, decision.dtype)
        derivative = -(step * sign) / schedule.eta0
    if weights is not None:
        derivative = derivative * weights
        loss_values = loss_values * weights
    return xp.sum(loss_values), derivative


def apply_step(xp, state: TrainingState, grad_coef, grad_intercept, eta, config):
    """Clip, decay, momentum and L1 on the full weights, then the averages."""
    opt = config.optimizer
    grad_coef, grad_intercept = clip_gradient(xp, grad_coef, grad_intercept, opt)
    state.coef, state.coef_buffer = momentum_step(
        xp,
        state.coef,
        grad_coef,
        state.coef_buffer,
        eta,
        opt,
        l2=opt.l2,
        decay=opt.decoupled_decay,
    )
    step_intercept(xp, state, grad_intercept, eta, config)
    if opt.l1:
        state.l1_total += eta * opt.l1
        if state.l1_applied is None:
            state.l1_applied = xp.zeros_like(state.coef)
        state.coef, state.l1_applied = l1_truncate(xp, state.coef, state.l1_applied, state.l1_total)


def step_intercept(xp, state: TrainingState, grad_intercept, eta, config) -> None:
    """The intercept's step: clipped gradient and momentum, never decay or penalty."""
    if config.fit_intercept:
        state.intercept, state.intercept_buffer = momentum_step(
            xp,
            state.intercept,
            grad_intercept,
            state.intercept_buffer,
            eta * config.intercept_scale,
            config.optimizer,
        )


def update_average(xp, state: TrainingState, config: EngineConfig) -> None:
    """Running mean of the weights once ``average_start`` samples were seen."""
    if not config.average_start or state.samples_seen < config.average_start:
        return
    state.n_averaged += 1
    if state.average_coef is None:
        state.average_coef = xp.zeros_like(state.coef)
        state.average_intercept = xp.zeros_like(state.intercept)
    rate = 1.0 / state.n_averaged
    state.average_coef = state.average_coef + rate * (state.coef - state.average_coef)
    state.average_intercept = state.average_intercept + rate * (
        state.intercept - state.average_intercept
    )


def current_learning_rate(state: TrainingState, config: EngineConfig) -> float:
    """The schedule's rate for the next step; PA steps use eta0 for the penalty."""
    return config.schedule.learning_rate(state.steps + 1, state.adaptive_eta)


def column_sums(xp, derivative):
    """Sum over the batch of each column (a product is faster than an axis-0 reduction)."""
    return xp.ones_like(derivative[:, 0]) @ derivative


def _batch_rows(xp, array, order, start, stop):
    if array is None:
        return None
    if order is None:
        return array[start:stop, ...]
    return xp.take(array, order[start:stop], axis=0)


def _dense_epoch(xp, state: TrainingState, data: TrainingData, config, order):
    """One pass over the rows; returns the summed loss as a 0-d device array."""
    n_samples = data.n_samples
    # small per-row arrays are put in epoch order once; X is gathered batch by batch
    targets_all = _in_order(xp, data.targets, order)
    sample_weight_all = _in_order(xp, data.sample_weight, order)
    loss_sum = 0.0
    for start in range(0, n_samples, config.batch_size):
        stop = min(start + config.batch_size, n_samples)
        X_batch = _batch_rows(xp, data.X, order, start, stop)
        if config.compute_dtype is not None:
            X_batch = xp.astype(X_batch, config.compute_dtype)
        targets = targets_all[start:stop, ...]
        sample_weight = None if sample_weight_all is None else sample_weight_all[start:stop]
        weights = batch_weights(xp, targets, sample_weight, data)
        decision = X_batch @ state.coef + state.intercept
        batch_loss, derivative = loss_gradient(xp, decision, targets, weights, X_batch, config)
        loss_sum = loss_sum + batch_loss
        n_rows = stop - start
        # the batch mean: scale the (batch, outputs) derivative, not the gradients
        derivative = derivative * (1.0 / n_rows)
        apply_step(
            xp,
            state,
            X_batch.T @ derivative,
            column_sums(xp, derivative),
            current_learning_rate(state, config),
            config,
        )
        state.steps += 1
        state.samples_seen += n_rows
        update_average(xp, state, config)
    return loss_sum


def _in_order(xp, array, order):
    """``array`` with its rows in epoch order (itself when there is no shuffling)."""
    if array is None or order is None:
        return array
    return xp.take(array, order, axis=0)


def penalty_value(xp, coef, optimizer: OptimizerConfig):
    """alpha * ((1 - l1_ratio) / 2 ||w||^2 + l1_ratio ||w||_1), as scikit-learn's objective."""
    value = 0.0 * xp.sum(coef)
    if optimizer.l2:
        value = value + 0.5 * optimizer.l2 * xp.sum(coef * coef)
    if optimizer.l1:
        value = value + optimizer.l1 * xp.sum(xp.abs(coef))
    return value


def _epoch_summary(xp, state: TrainingState, loss_sum, n_samples, optimizer):
    """One host sync: mean loss, objective, and whether the weights are finite."""
    coef = state.coef
    finite_probe = xp.sum(coef) + xp.sum(state.intercept)
    summary = xp.stack(
        [
            xp.astype(loss_sum, coef.dtype) / n_samples,
            penalty_value(xp, coef, optimizer),
            xp.astype(finite_probe, coef.dtype),
        ]
    )
    mean_loss, penalty, probe = (float(v) for v in to_namespace(summary, np))
    return (
        mean_loss,
        mean_loss + penalty,
        math.isfinite(probe) and math.isfinite(mean_loss),
    )


def permutation_source(xp, random_state: np.random.RandomState, X) -> Callable[[int], Any]:
    """A function giving a fresh permutation of ``range(n)`` per epoch, in ``xp``."""
    if is_cupy_namespace(xp):
        import cupy

        seed = int(random_state.randint(np.iinfo(np.int32).max))
        device_generator = cupy.random.RandomState(seed)
        return device_generator.permutation
    if xp is np or is_sparse(X):
        return random_state.permutation
    device = array_device(X)
    return lambda n: xp.asarray(random_state.permutation(n), device=device)


def run(
    xp,
    state: TrainingState,
    data: TrainingData,
    config: EngineConfig,
    *,
    max_epochs: int,
    random_state: np.random.RandomState,
    validation_score: Callable[[TrainingState], float] | None = None,
    use_stopping_rule: bool = True,
) -> RunReport:
    """Train ``state`` in place for up to ``max_epochs`` epochs.

    Parameters
    ----------
    xp : module
        The namespace of every array in ``state`` and ``data``.
    state : TrainingState
        Weights and optimizer state, updated in place.
    data : TrainingData
        The training rows.
    config : EngineConfig
        Loss, schedule, optimizer and loop settings.
    max_epochs : int
        Upper bound on the number of epochs.
    random_state : numpy.random.RandomState
        Source of the per-epoch permutations: drawn on the host for NumPy and
        other array-API namespaces (same order for the same seed), on the GPU
        from a generator seeded by it for CuPy (no host work or transfer per
        epoch, so CuPy's shuffled order differs from NumPy's).
    validation_score : callable, optional
        ``validation_score(state) -> float``; when given, the stopping rule
        watches it instead of the training objective (early stopping).
    use_stopping_rule : bool
        False for ``partial_fit``: run exactly ``max_epochs`` epochs.

    Returns
    -------
    RunReport

    Raises
    ------
    DivergenceError
        When the weights or the loss stop being finite.
    """
    from ._sparse import sparse_epoch

    report = RunReport()
    n_samples = data.n_samples
    next_permutation = permutation_source(xp, random_state, data.X)
    epoch_runner = sparse_epoch if is_sparse(data.X) else _dense_epoch
    best_objective, best_score = math.inf, -math.inf
    no_improvement = 0
    progress = FitProgress(config.verbose, max_epochs, n_samples)
    with np.errstate(all="ignore"):
        for epoch in range(max_epochs):
            order = next_permutation(n_samples) if config.shuffle else None
            loss_sum = epoch_runner(xp, state, data, config, order)
            mean_loss, objective, finite = _epoch_summary(
                xp, state, loss_sum, n_samples, config.optimizer
            )
            report.n_epochs = epoch + 1
            if not finite:
                raise DivergenceError(
                    f"The weights overflowed to inf/NaN at epoch {epoch + 1}: the "
                    f"learning rate (learning_rate={config.schedule.kind!r}, "
                    f"eta0={config.schedule.eta0}) is too large for this data. Lower "
                    "eta0, choose a decaying learning_rate, or scale X (e.g. with "
                    "StandardScaler)."
                )
            report.loss_curve.append(mean_loss)
            if validation_score is not None:
                score = validation_score(state)
                improved = config.tol is None or score >= best_score + config.tol
                best_score = max(best_score, score)
            else:
                score = None
                improved = config.tol is None or objective <= best_objective - config.tol
                best_objective = min(best_objective, objective)
            eta = current_learning_rate(state, config) if config.verbose >= 2 else None
            progress.epoch(xp, state, mean_loss, objective, score, eta)
            if not use_stopping_rule or config.tol is None:
                continue
            no_improvement = 0 if improved else no_improvement + 1
            if no_improvement >= config.n_iter_no_change:
                eta = current_learning_rate(state, config)
                if config.schedule.kind == "adaptive" and eta > MIN_ADAPTIVE_ETA:
                    state.adaptive_eta = eta / ADAPTIVE_DIVISOR
                    no_improvement = 0
                else:
                    report.converged = True
                    progress.converged()
                    break
    progress.finished(xp, state, config.batch_size)
    return report
