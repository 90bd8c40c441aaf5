"""The types every engine and the loop share: configuration, data, state, epoch totals.

Plain containers and their small algebra (the preconditioned weights' view, the
stopped one-vs-rest columns); no loop and no engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from .._backend import to_namespace
from .losses import Loss
from .optim import OptimizerConfig, is_set
from .precondition import to_internal, to_model
from .scaling import BatchScaling
from .schedules import Schedule

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
    average_decay : float
        0: every averaged iterate weighs the same; above 0, the polynomial-decay
        average (see :func:`average_rate`).
    compute_dtype : dtype or None
        Dtype of the arithmetic when X is stored in half precision.
    verbose : int
        Print one line per epoch when positive.
    scaling : BatchScaling or None
        How a batch's step grows with its row count; None is the plain batch
        mean at the per-sample rate (the gain is 1).
    gain_floor : bool
        A batch's step is at least ``gain(m)`` per-sample rates (sparse rows),
        else at least one (see :meth:`BatchScaling.step_rate`).
    column_max_epochs : ndarray or None
        One epoch limit per output column (a batched search's ``max_iter``): a
        column stops once it ran that many epochs. None: ``max_epochs`` for all.
    n_candidates : int
        Models trained side by side as blocks of columns (a batched search); 1 for a fit.

    A batched search (several candidates side by side as column blocks) gives
    ``tol``, the schedule's and the optimizer's numbers as arrays of one value per
    column; ``tol=-inf`` in a column is ``tol=None`` there.
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
    average_decay: float = 0.0
    compute_dtype: Any = None
    verbose: int = 0
    scaling: BatchScaling | None = None
    gain_floor: bool = False
    column_max_epochs: Any = None
    n_candidates: int = 1

    def step_rate(self, xp, eta, n_rows: int):
        """The rate of a step over ``n_rows`` rows from the per-sample rate ``eta``.

        See :meth:`BatchScaling.step_rate`; ``eta`` itself without scaling.
        """
        if self.scaling is None or n_rows <= 1:
            return eta
        return self.scaling.step_rate(xp, eta, n_rows, self.loss.curvature, self.gain_floor)


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
    # per output column: the epochs it trained, whether its stopping rule stopped it,
    # and each epoch's mean loss (what a batched search publishes per candidate)
    column_epochs: Any = None
    column_converged: Any = None
    column_losses: list = field(default_factory=list)


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
            and (is_set(config.optimizer.l2) or is_set(config.optimizer.l1))
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


class FrozenColumns:
    """One-vs-rest columns that met the stopping rule, kept as they were.

    scikit-learn trains each one-vs-rest problem on its own and stops each when
    its objective stops improving. Here all columns share one matrix product,
    so a converged column gets a zero loss derivative (it no longer enters the
    gradient or a global clipping norm) and, at the end of every epoch, its
    weights and optimizer state are put back as they were when it stopped.
    """

    def __init__(self, xp, state: TrainingState, active, running=()):
        # ``running``: state fields that go on for stopped columns, as a single fit's
        # shared float clock does (a batched search's per-column ``l1_total``)
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
            if value.ndim >= 1 and value.shape[-1] == self.active.shape[0] and name not in running
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
