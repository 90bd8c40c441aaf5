"""The one epoch loop: stopping, divergence, the adaptive rate, early stopping, progress.

Every engine trains through :func:`train`. An engine implements one epoch and the
few calls the loop makes around it (:class:`Engine`, :class:`EpochRunner`); the loop
owns everything decided between epochs, for every engine alike: the stopping rule
per output column, divergence, the 'adaptive' rate, early stopping, stopping
columns, the progress output, and the fall back to another engine when one cannot
run a fit.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .._backend import to_namespace
from .._core.schedules import ADAPTIVE_DIVISOR, MIN_ADAPTIVE_ETA
from .._core.steps import current_learning_rate
from .._core.types import (
    DivergenceError,
    EngineConfig,
    RunReport,
    TrainingData,
    TrainingState,
    overflow_message,
)
from .progress import FitProgress


class EpochRunner(Protocol):
    """A started fit of one engine (a context manager: entered for the whole fit)."""

    def run_epoch(self, state: TrainingState):
        """One pass over the rows in the engine's order; returns ``(mean_loss,
        objective, finite)``, NumPy arrays per output column and a bool."""

    def freeze(self, state: TrainingState, active) -> None:
        """Stop the output columns not in ``active``: keep them as they are now."""

    def adaptive_changed(self, state: TrainingState) -> None:
        """``state.adaptive_eta`` changed between epochs."""


class Engine(Protocol):
    """One way to train: ``start`` prepares a fit, the loop runs its epochs.

    An engine with a ``fallback`` also has ``errors``, the exceptions that mean "this
    engine cannot run this fit" (a compile, launch or allocation failure), and
    ``warn_fallback(cause)``: when one is raised, the loop puts the state and the random
    state back, warns, and trains on ``fallback`` instead. An engine without one (its
    ``fallback`` None) needs neither.
    """

    errors: tuple
    fallback: Engine | None

    def start(self, xp, state, data, config, random_state, max_epochs) -> EpochRunner: ...

    def warn_fallback(self, cause: str) -> None: ...


def train(
    engine: Engine,
    xp,
    state: TrainingState,
    data: TrainingData,
    config: EngineConfig,
    *,
    max_epochs: int,
    random_state: np.random.RandomState,
    validation_score=None,
    use_stopping_rule: bool = True,
) -> RunReport:
    """Train ``state`` in place for up to ``max_epochs`` epochs on ``engine``.

    Parameters
    ----------
    engine : Engine
        What runs each epoch (chosen by the fit plan).
    xp : module
        The namespace of every array in ``state`` (and of ``data``, but for streamed
        host data).
    state : TrainingState
        Weights and optimizer state, updated in place.
    data : TrainingData
        The training rows.
    config : EngineConfig
        Loss, schedule, optimizer and loop settings.
    max_epochs : int
        Upper bound on the number of epochs.
    random_state : numpy.random.RandomState
        Source of the engine's per-epoch orders.
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
    options = dict(
        max_epochs=max_epochs,
        random_state=random_state,
        validation_score=validation_score,
        use_stopping_rule=use_stopping_rule,
    )
    if getattr(engine, "fallback", None) is None:
        return _train_on(engine, xp, state, data, config, **options)
    start_state = copy.copy(state)  # engines replace the state's arrays, never write them
    start_random = random_state.get_state()
    try:
        return _train_on(engine, xp, state, data, config, **options)
    except engine.errors as error:
        vars(state).update(vars(start_state))
        random_state.set_state(start_random)
        engine.warn_fallback(f"{type(error).__name__}: {error}".splitlines()[0])
        return train(engine.fallback, xp, state, data, config, **options)


def _train_on(
    engine, xp, state, data, config, *, max_epochs, random_state, validation_score,
    use_stopping_rule,
) -> RunReport:  # fmt: skip
    report = RunReport()
    n_outputs = int(data.targets.shape[1])
    rule = StoppingRule(config, n_outputs, early_stopping=validation_score is not None)
    if state.adaptive_eta is None and config.schedule.kind == "adaptive":
        # eta0 is a float, or one value per column (a batched search)
        eta0 = np.broadcast_to(np.asarray(config.schedule.eta0, dtype=np.float64), (n_outputs,))
        state.adaptive_eta = tuple(float(value) for value in eta0)
    progress = FitProgress(config.verbose, max_epochs, data.n_samples)
    with engine.start(xp, state, data, config, random_state, max_epochs) as epochs:
        for _ in range(max_epochs):
            epoch = report.n_epochs + 1
            try:
                summary = epochs.run_epoch(state)
                outcome = close_epoch(
                    xp, state, config, report, progress, rule, summary, validation_score,
                    use_stopping_rule,
                )  # fmt: skip
            except ArithmeticError as error:
                # Python float arithmetic of a schedule raises where C would give inf
                raise DivergenceError(str(error), epoch=epoch) from error
            if outcome.adaptive_changed:
                epochs.adaptive_changed(state)
            if not outcome.converged and config.column_max_epochs is not None:
                outcome = stop_expired_columns(rule, config, epoch, outcome)
            if outcome.converged:
                break
            if outcome.froze:
                epochs.freeze(state, rule.active)
    progress.finished(xp, state, config.batch_size)
    report.column_epochs = rule.epochs.copy()
    report.column_converged = rule.converged.copy()
    return report


def stop_expired_columns(rule: StoppingRule, config: EngineConfig, epoch: int, outcome):
    """Stop the columns that ran their own epoch limit (``config.column_max_epochs``)."""
    expired = rule.active & (epoch >= np.asarray(config.column_max_epochs))
    if not expired.any():
        return outcome
    rule.active &= ~expired
    if not rule.active.any():
        return EpochOutcome(converged=True, adaptive_changed=outcome.adaptive_changed)
    return EpochOutcome(froze=True, adaptive_changed=outcome.adaptive_changed)


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
    rule.epochs[rule.active] = epoch
    report.column_losses.append(np.array(mean_loss, dtype=np.float64))
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
        # coupled columns converge together: one rule on their total (per block of
        # columns when a batched search trains several coupled models side by side)
        blocks = getattr(config.loss, "blocks", 1)
        if blocks > 1 and score is None:
            totals = np.sum(np.reshape(objective, (blocks, -1)), axis=1)
            watched = np.repeat(totals, objective.shape[0] // blocks)
        else:
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
        rule.converged |= newly_stopped
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
        # per column: the epochs it trained, and whether this rule stopped it
        self.epochs = np.zeros(n_outputs, dtype=int)
        self.converged = np.zeros(n_outputs, dtype=bool)

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
