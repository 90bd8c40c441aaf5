"""The minibatch loop: epochs, shuffling, batches, stopping.

A pure function over arrays of one array-API namespace: it never sees an
estimator. Values stay in the namespace (on the device) inside an epoch; the
loop synchronises with the host once per epoch, to test convergence and
divergence.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from ._backend import is_cupy_namespace, is_sparse, to_namespace
from ._losses import Loss
from ._optim import OptimizerConfig, clip_gradient, l1_truncate, momentum_step
from ._precondition import preconditioned_gradient, to_internal, to_model
from ._progress import FitProgress
from ._scaling import BatchScaling
from ._schedules import ADAPTIVE_DIVISOR, MIN_ADAPTIVE_ETA, Schedule

# scikit-learn clips each sample's loss derivative to this magnitude
MAX_DLOSS = 1e12


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
    scaling : BatchScaling or None
        How a batch's step grows with its row count; None is the plain batch
        mean at the per-sample rate (the gain is 1).
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
    scaling: BatchScaling | None = None

    def step_rate(self, xp, eta, n_rows: int):
        """The rate of a step over ``n_rows`` rows from the per-sample rate ``eta``.

        See :meth:`BatchScaling.step_rate`; ``eta`` itself without scaling.
        """
        if self.scaling is None or n_rows <= 1:
            return eta
        return self.scaling.step_rate(xp, eta, n_rows, self.loss.curvature)


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
    class. ``steps`` counts optimizer steps and ``samples_seen`` rows; the
    schedule's clock is scikit-learn's, ``t = samples_seen + 1``, whatever the
    batch size. ``adaptive_eta`` holds
    one 'adaptive' rate per output column (each one-vs-rest problem divides its
    own rate), ``scaling`` the batch gain measured on the first data seen.
    """

    coef: Any
    intercept: Any
    coef_buffer: Any = None
    intercept_buffer: Any = None
    l1_applied: Any = None
    l1_total: Any = 0.0
    average_coef: Any = None
    average_intercept: Any = None
    n_averaged: int = 0
    steps: int = 0
    samples_seen: int = 0
    adaptive_eta: tuple | None = None
    scaling: BatchScaling | None = None
    feature_mean: Any = None
    feature_inv_scale: Any = None

    @property
    def preconditioned(self) -> bool:
        """Whether ``coef``/``intercept`` hold the preconditioned ``(v, c)``."""
        return self.feature_inv_scale is not None

    def model_weights(self):
        """``(coef, intercept)`` the model predicts with: the averages once averaging began."""
        if self.average_coef is not None and self.n_averaged > 0:
            return self.to_model(self.average_coef, self.average_intercept)
        return self.to_model(self.coef, self.intercept)

    def precondition(self, mean, inv_scale) -> None:
        """Switch to preconditioned weights for a new fit (the optimizer state starts afresh)."""
        self.feature_mean, self.feature_inv_scale = mean, inv_scale
        self.coef, self.intercept = to_internal(self.coef, self.intercept, mean, inv_scale)
        self.coef_buffer = self.intercept_buffer = None

    def to_model(self, coef, intercept):
        """Internal weights to the model's (the identity without preconditioning)."""
        if not self.preconditioned:
            return coef, intercept
        return to_model(coef, intercept, self.feature_mean, self.feature_inv_scale)

    def arrays(self) -> dict:
        """The array fields, by name (for moving the state between namespaces)."""
        return {name: value for name, value in vars(self).items() if hasattr(value, "shape")}

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
    """The weights overflowed to inf or NaN; ``epoch``: in which epoch (from 1), when known."""

    def __init__(self, message: str, epoch: int | None = None):
        super().__init__(message)
        self.epoch = epoch


def overflow_message(epoch: int | None) -> str:
    """scikit-learn's words for weights that left the float range, which its users grep for."""
    where = f" at epoch #{epoch}" if epoch is not None else ""
    return (
        f"Floating-point under-/overflow occurred{where}. Scaling input data with "
        "StandardScaler or MinMaxScaler might help."
    )


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
    """Per-column loss of the batch and the weighted derivative of each decision.

    The loss is summed over the rows of each output column, unweighted, as
    scikit-learn's stopping rule sums it. The derivative is clipped to
    ``[-MAX_DLOSS, MAX_DLOSS]`` as scikit-learn clips it, then multiplied by the
    sample and class weights.

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
    elif not config.loss.bounded:
        derivative = xp.clip(derivative, -MAX_DLOSS, MAX_DLOSS)
    if weights is not None and config.loss.joint:
        # a coupled (softmax) row takes the weight of its true class
        weights = xp.sum(xp.where(targets > 0, weights, 0.0), axis=1, keepdims=True)
    if weights is not None:
        derivative = derivative * weights
    return column_sums(xp, loss_values), derivative


def penalty_columns(xp, coef, optimizer: OptimizerConfig):
    """The penalty of each output column: ``l2 / 2 ||w_k||^2 + l1 ||w_k||_1``."""
    value = None
    if optimizer.l2:
        value = (0.5 * optimizer.l2) * xp.sum(coef * coef, axis=0)
    if optimizer.l1:
        l1 = optimizer.l1 * xp.sum(xp.abs(coef), axis=0)
        value = l1 if value is None else value + l1
    return value


def default_epoch(xp, state: TrainingState, data: TrainingData, config, order, frozen, memo=None):
    """One pass: the compiled epoch where it covers the fit, else the NumPy pass.

    Both give the same result up to rounding; :mod:`._compiled` says what the
    compiled one covers. ``memo``, a dict kept across one fit's epochs, lets
    the compiled epoch prepare its fixed inputs once.
    """
    from . import _compiled
    from ._sparse import sparse_epoch

    if _compiled.unsupported_reason(xp, state, data, config) is None:
        return _compiled.compiled_epoch(xp, state, data, config, order, frozen, memo)
    numpy_pass = sparse_epoch if is_sparse(data.X) else _dense_epoch
    return numpy_pass(xp, state, data, config, order, frozen)


class EpochTotals:
    """What an epoch adds up for the stopping rule, per output column, on the device.

    ``loss`` sums each row's (unweighted) loss; ``penalty`` sums the penalty of
    the weights each row met, i.e. ``n_rows * penalty(w)`` per step, so that
    with ``batch_size=1`` the objective is scikit-learn's sample by sample. The
    passive-aggressive rates watch the loss alone, as scikit-learn's do.
    """

    def __init__(self, config: EngineConfig):
        self.optimizer = config.optimizer
        # only the stopping rule and the verbose output read the penalty
        self.with_penalty = (
            not config.schedule.passive_aggressive
            and (config.tol is not None or config.verbose > 0)
            and bool(config.optimizer.l2 or config.optimizer.l1)
        )
        self.loss = 0.0
        self.penalty = 0.0

    def merge(self, other: EpochTotals) -> None:
        """Add the totals of another part of the same epoch."""
        self.loss = self.loss + other.loss
        self.penalty = self.penalty + other.penalty

    def add(self, batch_loss, n_rows: int, penalty=None) -> None:
        """Add one batch: its per-column loss, and the penalty of the weights before the step."""
        self.loss = self.loss + batch_loss
        if penalty is not None:
            self.penalty = self.penalty + n_rows * penalty


def apply_step(xp, state: TrainingState, grad_coef, grad_intercept, eta, config):
    """Clip, decay, momentum and L1 on the full weights, then the averages.

    With preconditioning the penalties act on the model's weights
    ``v * inv_scale``: per feature, L2 is ``l2 * inv_scale**2`` and the L1
    threshold ``l1 * inv_scale`` on ``v``.
    """
    opt = config.optimizer
    grad_coef, grad_intercept = clip_gradient(xp, grad_coef, grad_intercept, opt)
    l2, l1_factor = opt.l2, 1.0
    if state.preconditioned:
        l1_factor = state.feature_inv_scale[:, None]
        if opt.l2:
            l2 = opt.l2 * (l1_factor * l1_factor)
    state.coef, state.coef_buffer = momentum_step(
        xp,
        state.coef,
        grad_coef,
        state.coef_buffer,
        eta,
        opt,
        l2=l2,
        decay=opt.decoupled_decay,
    )
    step_intercept(xp, state, grad_intercept, eta, config)
    if opt.l1:
        state.l1_total = state.l1_total + eta * opt.l1
        if state.l1_applied is None:
            state.l1_applied = xp.zeros_like(state.coef)
        state.coef, state.l1_applied = l1_truncate(
            xp, state.coef, state.l1_applied, state.l1_total * l1_factor
        )


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


def update_average(xp, state: TrainingState, config: EngineConfig, n_rows: int) -> None:
    """Running mean of the weights, per sample, once ``average_start`` samples were seen.

    A step's weights stand for each of its ``n_rows`` samples, so with
    ``batch_size=1`` this is scikit-learn's average of the per-sample weights.
    """
    if not config.average_start or state.samples_seen < config.average_start:
        return
    # the samples of this step that come after the averaging start
    counted = min(n_rows, state.samples_seen - config.average_start + 1)
    state.n_averaged += counted
    if state.average_coef is None:
        state.average_coef = xp.zeros_like(state.coef)
        state.average_intercept = xp.zeros_like(state.intercept)
    rate = counted / state.n_averaged
    state.average_coef = state.average_coef + rate * (state.coef - state.average_coef)
    state.average_intercept = state.average_intercept + rate * (
        state.intercept - state.average_intercept
    )


def current_learning_rate(xp, state: TrainingState, config: EngineConfig, n_rows: int):
    """The rate of the next step, over ``n_rows`` rows: the gain times the per-sample rate.

    The schedule's clock is scikit-learn's, ``t = samples_seen + 1``. A float, or one
    rate per output column (xp array) once 'adaptive' columns have diverged.
    """
    adaptive = state.adaptive_eta
    if adaptive is not None and len(set(adaptive)) == 1:
        adaptive = adaptive[0]
    if adaptive is not None and not isinstance(adaptive, float):
        adaptive = xp.asarray(
            np.asarray(adaptive), dtype=state.coef.dtype, device=array_device(state.coef)
        )
    eta = config.schedule.learning_rate(state.samples_seen + 1, adaptive)
    return config.step_rate(xp, eta, n_rows)


def advance_clock(state: TrainingState, n_rows: int) -> None:
    """Count a finished step over ``n_rows`` rows."""
    state.steps += 1
    state.samples_seen += n_rows


def column_sums(xp, derivative):
    """Sum over the batch of each column (a product is faster than an axis-0 reduction)."""
    return xp.ones_like(derivative[:, 0]) @ derivative


def _batch_rows(xp, array, order, start, stop):
    if array is None:
        return None
    if order is None:
        return array[start:stop, ...]
    return xp.take(array, order[start:stop], axis=0)


def _dense_epoch(xp, state: TrainingState, data: TrainingData, config, order, frozen):
    """One pass over the rows; returns the epoch's :class:`EpochTotals`."""
    n_samples = data.n_samples
    # small per-row arrays are put in epoch order once; X is gathered batch by batch
    targets_all = _in_order(xp, data.targets, order)
    sample_weight_all = _in_order(xp, data.sample_weight, order)
    totals = EpochTotals(config)
    for start in range(0, n_samples, config.batch_size):
        stop = min(start + config.batch_size, n_samples)
        X_batch = _batch_rows(xp, data.X, order, start, stop)
        if config.compute_dtype is not None:
            X_batch = xp.astype(X_batch, config.compute_dtype)
        targets = targets_all[start:stop, ...]
        sample_weight = None if sample_weight_all is None else sample_weight_all[start:stop]
        weights = frozen.masked(batch_weights(xp, targets, sample_weight, data))
        coef, intercept = state.to_model(state.coef, state.intercept)
        decision = X_batch @ coef + intercept
        batch_loss, derivative = loss_gradient(xp, decision, targets, weights, X_batch, config)
        n_rows = stop - start
        penalty = penalty_columns(xp, coef, config.optimizer) if totals.with_penalty else None
        totals.add(batch_loss, n_rows, penalty)
        # the batch mean: scale the (batch, outputs) derivative, not the gradients
        derivative = derivative * (1.0 / n_rows)
        if state.preconditioned:
            grad_coef, grad_intercept = preconditioned_gradient(
                xp, X_batch, derivative, state.feature_mean, state.feature_inv_scale
            )
        else:
            grad_coef, grad_intercept = X_batch.T @ derivative, column_sums(xp, derivative)
        apply_step(
            xp,
            state,
            grad_coef,
            grad_intercept,
            current_learning_rate(xp, state, config, n_rows),
            config,
        )
        advance_clock(state, n_rows)
        update_average(xp, state, config, n_rows)
    return totals


def _in_order(xp, array, order):
    """``array`` with its rows in epoch order (itself when there is no shuffling)."""
    if array is None or order is None:
        return array
    return xp.take(array, order, axis=0)


class FrozenColumns:
    """One-vs-rest columns that met the stopping rule, kept as they were.

    scikit-learn trains each one-vs-rest problem on its own and stops each when
    its objective stops improving. Here all columns share one matrix product,
    so a converged column gets a zero loss derivative (it no longer enters the
    gradient or a global clipping norm) and, at the end of every epoch, its
    weights and optimizer state are put back as they were when it stopped.
    """

    def __init__(self, xp, state: TrainingState, active):
        self.active = np.asarray(active, dtype=bool)
        self.mask = None
        self.saved = {}
        if self.active.all():
            return
        like = state.coef
        self.mask = xp.asarray(
            self.active.astype(np.float64), dtype=like.dtype, device=array_device(like)
        )
        self.saved = {
            name: xp.asarray(value, copy=True)
            for name, value in state.arrays().items()
            if value.ndim >= 1 and value.shape[-1] == self.active.shape[0]
        }

    def masked(self, weights):
        """Per-row weights with the converged columns' derivative set to zero."""
        if self.mask is None:
            return weights
        return self.mask[None, :] if weights is None else weights * self.mask

    def restore(self, xp, state: TrainingState) -> None:
        """Put the converged columns back, after an epoch."""
        if self.mask is None:
            return
        keep = self.mask > 0
        for name, saved in self.saved.items():
            setattr(state, name, xp.where(keep, getattr(state, name), saved))


def _epoch_summary(xp, state: TrainingState, totals: EpochTotals, n_samples):
    """One host sync: mean loss and objective per column, and whether the weights are finite."""
    coef = state.coef
    n_outputs = coef.shape[1]
    if xp is np:
        # the same sums in NumPy itself, without the array-API calls a device needs
        shape, dtype = (n_outputs,), coef.dtype
        loss = np.broadcast_to(np.asarray(totals.loss, dtype=dtype), shape) / n_samples
        penalty = np.broadcast_to(np.asarray(totals.penalty, dtype=dtype), shape) / n_samples
        mean_loss = loss.astype(np.float64)
        objective = mean_loss + penalty.astype(np.float64)
        probe = float(coef.sum() + state.intercept.sum())
        finite = bool(np.isfinite(objective).all()) and math.isfinite(probe)
        return mean_loss, objective, finite
    finite_probe = xp.sum(coef) + xp.sum(state.intercept)
    zeros = xp.zeros((n_outputs,), dtype=coef.dtype, device=array_device(coef))
    loss = xp.astype(totals.loss + zeros, coef.dtype)
    penalty = xp.astype(totals.penalty + zeros, coef.dtype)
    summary = to_namespace(
        xp.concat([loss / n_samples, penalty / n_samples, xp.reshape(finite_probe, (1,))]), np
    )
    summary = np.asarray(summary, dtype=np.float64)
    mean_loss = summary[:n_outputs]
    objective = mean_loss + summary[n_outputs : 2 * n_outputs]
    finite = bool(np.isfinite(summary).all())
    return mean_loss, objective, finite


def permutation_source(xp, random_state: np.random.RandomState, X) -> Callable[[int], Any]:
    """A function giving a fresh permutation of ``range(n)`` per epoch, in ``xp``."""
    if is_cupy_namespace(xp):
        import cupy

        seed = int(random_state.randint(np.iinfo(np.int32).max))
        device_generator = cupy.random.RandomState(seed)
        return device_generator.permutation
    from ._compiled import permutation_source as compiled_permutations

    host_source = None
    if isinstance(random_state, np.random.RandomState):
        # anything else that has a permutation() (a test's fixed orders) is used as it is
        host_source = compiled_permutations(random_state)
    host_source = host_source or random_state.permutation
    if xp is np or is_sparse(X):
        return host_source
    device = array_device(X)
    return lambda n: xp.asarray(host_source(n), device=device)


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
    epoch_runner: Callable | None = None,
    next_permutation: Callable[[int], Any] | None = None,
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
    epoch_runner : callable, optional
        ``epoch_runner(xp, state, data, config, order, frozen) -> EpochTotals``,
        one pass over the rows in ``order``; :func:`default_epoch` by default
        (the streamed fit passes one that walks the data chunk by chunk).
    next_permutation : callable, optional
        ``next_permutation(n) -> order``; by default from ``random_state``, on
        the device of ``data``.

    Returns
    -------
    RunReport

    Raises
    ------
    DivergenceError
        When the weights or the loss stop being finite.
    """
    report = RunReport()
    n_samples = data.n_samples
    n_outputs = int(state.coef.shape[1])
    if next_permutation is None:
        next_permutation = permutation_source(xp, random_state, data.X)
    if epoch_runner is None:
        epoch_runner = functools.partial(default_epoch, memo={})
    rule = StoppingRule(config, n_outputs, early_stopping=validation_score is not None)
    if state.adaptive_eta is None and config.schedule.kind == "adaptive":
        state.adaptive_eta = (float(config.schedule.eta0),) * n_outputs
    frozen = FrozenColumns(xp, state, rule.active)
    progress = FitProgress(config.verbose, max_epochs, n_samples)
    with np.errstate(all="ignore"):
        for _ in range(max_epochs):
            epoch = report.n_epochs + 1
            try:
                order = next_permutation(n_samples) if config.shuffle else None
                totals = epoch_runner(xp, state, data, config, order, frozen)
                frozen.restore(xp, state)
                mean_loss, objective, finite = _epoch_summary(xp, state, totals, n_samples)
                outcome = close_epoch(
                    xp,
                    state,
                    config,
                    report,
                    progress,
                    rule,
                    (mean_loss, objective, finite),
                    validation_score,
                    use_stopping_rule,
                )
            except ArithmeticError as error:
                # Python float arithmetic of a schedule raises where C would give inf
                raise DivergenceError(str(error), epoch=epoch) from error
            if outcome.converged:
                break
            if outcome.froze:
                frozen = FrozenColumns(xp, state, rule.active)
    progress.finished(xp, state, config.batch_size)
    return report


@dataclass
class EpochOutcome:
    """What the end of an epoch decided (see :func:`close_epoch`)."""

    converged: bool = False
    froze: bool = False
    adaptive_changed: bool = False


def close_epoch(
    xp,
    state: TrainingState,
    config: EngineConfig,
    report: RunReport,
    progress,
    rule: StoppingRule,
    summary,
    validation_score,
    use_stopping_rule: bool,
    joint: bool | None = None,
) -> EpochOutcome:
    """The end of an epoch, shared by every engine: report, progress, stopping rule.

    ``summary`` is ``(mean_loss, objective, finite)`` per output column;
    ``joint`` (default: the loss') stops all columns together on their total. Raises
    :class:`DivergenceError` when the weights are no longer finite; otherwise
    records the epoch, prints its progress, and applies scikit-learn's rule to
    each column: divide a stalled 'adaptive' rate, or stop the column.
    """
    mean_loss, objective, finite = summary
    epoch = report.n_epochs + 1
    report.n_epochs = epoch
    if not finite:
        raise DivergenceError(
            f"{overflow_message(epoch)} The weights overflowed to inf/NaN: the "
            f"learning rate (learning_rate={config.schedule.kind!r}, "
            f"eta0={config.schedule.eta0}) is too large for this data. Lower "
            "eta0, choose a decaying learning_rate, or scale X (e.g. with "
            "StandardScaler).",
            epoch=epoch,
        )
    report.loss_curve.append(float(mean_loss.sum()))
    score = validation_score(state) if validation_score is not None else None
    eta = None
    if config.verbose >= 2:
        eta = current_learning_rate(xp, state, config, config.batch_size)
        eta = eta if isinstance(eta, float) else float(np.max(to_namespace(eta, np)))
    progress.epoch(
        xp,
        state,
        float(mean_loss.sum()),
        float(objective.sum()),
        None if score is None else float(np.mean(score)),
        eta,
    )
    outcome = EpochOutcome()
    if not use_stopping_rule or config.tol is None:
        return outcome
    watched = objective if score is None else np.atleast_1d(score)
    if config.loss.joint if joint is None else joint:
        # coupled columns converge together: one rule on their total
        watched = np.sum(objective) if score is None else np.mean(score)
    stalled = rule.update(watched)
    newly_stopped = np.zeros(rule.active.shape, dtype=bool)
    adaptive = None if state.adaptive_eta is None else list(state.adaptive_eta)
    for column in np.flatnonzero(stalled):
        if adaptive is not None and adaptive[column] > MIN_ADAPTIVE_ETA:
            adaptive[column] /= ADAPTIVE_DIVISOR
            rule.no_improvement[column] = 0
        else:
            newly_stopped[column] = True
    if adaptive is not None and tuple(adaptive) != state.adaptive_eta:
        state.adaptive_eta = tuple(adaptive)
        outcome.adaptive_changed = True
    if newly_stopped.any():
        rule.active &= ~newly_stopped
        if not rule.active.any():
            outcome.converged = True
            report.converged = True
            progress.converged()
        else:
            outcome.froze = True
    return outcome


class StoppingRule:
    """scikit-learn's stopping rule, kept for each output column on its own.

    A column makes no progress in an epoch when its objective (mean loss plus
    penalty) is above its best minus ``tol``, or, with early stopping, when its
    validation score is below its best plus ``tol``; after
    ``n_iter_no_change`` such epochs in a row it stops (or, with the
    'adaptive' rate, divides its rate by 5).
    """

    def __init__(self, config: EngineConfig, n_outputs: int, early_stopping: bool):
        self.tol = config.tol
        self.patience = config.n_iter_no_change
        self.early_stopping = early_stopping
        self.best = np.full(n_outputs, -math.inf if early_stopping else math.inf)
        self.no_improvement = np.zeros(n_outputs, dtype=int)
        self.active = np.ones(n_outputs, dtype=bool)

    def update(self, values) -> np.ndarray:
        """Record an epoch's per-column values; returns the active columns out of patience."""
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), self.best.shape)
        if self.early_stopping:
            improved = values >= self.best + self.tol
            self.best = np.maximum(self.best, values)
        else:
            improved = values <= self.best - self.tol
            self.best = np.minimum(self.best, values)
        self.no_improvement = np.where(improved, 0, self.no_improvement + 1)
        return self.active & (self.no_improvement >= self.patience)
