"""CSR input with lazy updates: a step costs the batch's non-zeros, not n_features.

Which parts are lazy, and what that changes:

- L2 (coupled, without momentum) and decoupled weight decay multiply every
  weight, so they live in one scalar weight scale (``w = scale * v``), as in
  scikit-learn: exact, same result as the dense path.
- L1 uses the cumulative truncated penalty: a row's pending penalty is applied
  when the row next appears (and to every row at the end of the epoch). Exact
  for ``penalty='l1'``; with ``elasticnet`` (or L1 with ``weight_decay``) the
  scale and the truncation commute only up to O(eta^2 alpha^2), as in
  scikit-learn's own sparse path.
- Momentum follows MXNet's ``lazy_update``: only rows present in the batch
  get coupled weight decay, a momentum decay and a step. Rows absent from a
  batch keep their buffer and do not move. Every row's buffer starts at zero,
  so with ``dampening > 0`` a row's first step is damped (PyTorch starts the
  buffer at the first gradient). This is a different trajectory from dense
  momentum, which moves every row every step.
- Each epoch puts the CSR rows in its order once (one row-indexing pass), so
  every batch is a contiguous slice of the CSR arrays. On CuPy, cutting a
  batch (its bounds, the distinct columns) needs the batch's non-zero count
  on the host: one small synchronisation per batch, unlike the dense path's
  one per epoch.
- Weight averaging (``average``) updates the full average every step; it is
  not lazy, so with averaging a step costs O(n_features * n_outputs). Once
  averaging has started every step folds the scale into the weights and
  applies every row's pending L1, so the average equals the dense one.
"""

from __future__ import annotations

import importlib

from .._backend import is_cupy_namespace
from .._core.optim import (
    clamped_within_batch,
    clip_gradient,
    is_set,
    l1_truncate,
    momentum_step,
    shrink_factor,
    shrinks_within_batch,
    within_batch_gradient,
)
from .._core.steps import (
    advance_clock,
    batch_weights,
    column_sums,
    current_learning_rate,
    loss_gradient,
    step_intercept,
    update_average,
)
from .._core.types import EngineConfig, EpochTotals, FrozenColumns, TrainingData, TrainingState

# Renormalise the weight scale before it underflows.
MIN_WEIGHT_SCALE = 1e-9


def sparse_module_for(xp):
    """scipy.sparse for NumPy, cupyx.scipy.sparse for CuPy."""
    if is_cupy_namespace(xp):
        return importlib.import_module("cupyx.scipy.sparse")
    return importlib.import_module("scipy.sparse")


class CsrBatches:
    """Minibatches of a CSR matrix, re-indexed onto the columns they touch.

    Costs O(non-zeros of the batch): the rows are slices of the CSR arrays
    and the columns compacted through a persistent column-to-slot table (a
    scatter and two gathers, no sort); nothing of size n_features is touched
    per batch. The distinct columns come in order of first appearance.
    """

    def __init__(self, xp, X):
        self.xp = xp
        self.X = X
        self.sparse_module = sparse_module_for(xp)
        # slot of each column in the current batch; -1 outside it (reset after use)
        self.slot = xp.full((X.shape[1],), -1, dtype=xp.int64)

    def batch(self, rows: slice):
        """``(columns, compact)``: rows ``start:stop`` on their distinct columns.

        The rows are a contiguous range of the CSR arrays (the epoch permutes
        the matrix once), so the batch is three slices, with no row indexing.
        """
        xp = self.xp
        X = self.X
        first, last = int(X.indptr[rows.start]), int(X.indptr[rows.stop])
        indices = X.indices[first:last]
        data = X.data[first:last]
        indptr = X.indptr[rows.start : rows.stop + 1] - first
        positions = xp.arange(indices.shape[0], dtype=xp.int64)
        # every occurrence writes its position; the one that stuck marks its column once
        self.slot[indices] = positions
        columns = indices[self.slot[indices] == positions]
        self.slot[columns] = xp.arange(columns.shape[0], dtype=xp.int64)
        inverse = self.slot[indices]
        self.slot[columns] = -1
        compact = self.sparse_module.csr_matrix(
            # cupyx wants the index dtype of the batch (int32)
            (data, inverse.astype(indices.dtype), indptr),
            shape=(rows.stop - rows.start, int(columns.shape[0])),
        )
        return columns, compact


def sparse_epoch(
    xp,
    state: TrainingState,
    data: TrainingData,
    config: EngineConfig,
    order,
    frozen: FrozenColumns,
) -> EpochTotals:
    """One pass over CSR rows with lazy updates; returns the epoch's totals."""
    opt = config.optimizer
    X = data.X
    n_samples = X.shape[0]
    # Without momentum coupled L2 is a pure rescaling too, so it joins the scale.
    lazy_decay = opt.decoupled_decay + (0.0 if opt.uses_momentum else opt.l2)
    coupled_l2 = opt.l2 if opt.uses_momentum else 0.0
    coef = state.coef
    if opt.uses_momentum and state.coef_buffer is None:
        state.coef_buffer = xp.zeros_like(coef)
    if is_set(opt.l1) and state.l1_applied is None:
        state.l1_applied = xp.zeros_like(coef)
    # one scale per output column: 'adaptive' columns can have their own rates
    scale = 1.0
    totals = EpochTotals(config)
    norms = LazyNorms(xp, coef, opt) if totals.with_penalty else None
    # the epoch's row order, once: every batch is then a contiguous range of rows
    targets_all, sample_weight_all = data.targets, data.sample_weight
    if order is not None:
        X = X[order]
        targets_all = xp.take(targets_all, order, axis=0)
        if sample_weight_all is not None:
            sample_weight_all = xp.take(sample_weight_all, order, axis=0)
    batches = CsrBatches(xp, X)
    for start in range(0, n_samples, config.batch_size):
        stop = min(start + config.batch_size, n_samples)
        rows = slice(start, stop)
        targets = targets_all[rows]
        sample_weight = None if sample_weight_all is None else sample_weight_all[rows]
        columns, compact = batches.batch(rows)
        weights_true = scale * xp.take(coef, columns, axis=0)
        if is_set(opt.l1):
            # bring the rows' pending L1 up to date before they are used
            weights_true, state.l1_applied[columns] = l1_truncate(
                xp, weights_true, state.l1_applied[columns], state.l1_total
            )
        decision = compact @ weights_true + state.intercept
        batch_loss, derivative = loss_gradient(
            xp,
            decision,
            targets,
            frozen.masked(batch_weights(xp, targets, sample_weight, data)),
            compact,
            config,
        )
        n_rows = stop - start
        totals.add(batch_loss, n_rows, norms.penalty(scale) if totals.with_penalty else None)
        # the batch mean, folded into the derivative as in the dense step
        derivative = derivative * (1.0 / n_rows)
        grad_rows = compact.T @ derivative
        grad_intercept = column_sums(xp, derivative)
        eta = current_learning_rate(xp, state, config, n_rows)
        clamped = None
        if n_rows > 1 and shrinks_within_batch(opt):
            clamped = clamped_within_batch(xp, eta, lazy_decay)
        if clamped is not None:
            # a clamped shrink: the last row's share alone, as in the dense step
            last = xp.asarray(compact[n_rows - 1 :].T @ derivative[n_rows - 1 :, ...])
            grad_rows = within_batch_gradient(grad_rows, last, clamped)
        grad_rows, grad_intercept = clip_gradient(xp, grad_rows, grad_intercept, opt)

        buffer_rows = None
        if opt.uses_momentum:
            buffer_rows = state.coef_buffer[columns]
        new_scale = scale * shrink_factor(xp, eta, lazy_decay)
        weights_true, buffer_rows = momentum_step(
            xp,
            weights_true,
            grad_rows,
            buffer_rows,
            eta,
            opt,
            l2=coupled_l2,
            decay=lazy_decay,
        )
        if opt.uses_momentum:
            state.coef_buffer[columns] = buffer_rows
        if is_set(opt.l1):
            state.l1_total = state.l1_total + eta * opt.l1
            weights_true, state.l1_applied[columns] = l1_truncate(
                xp, weights_true, state.l1_applied[columns], state.l1_total
            )
        step_intercept(xp, state, grad_intercept, eta, config)
        scale = new_scale
        if _below(xp, scale, MIN_WEIGHT_SCALE):
            # also where the shrink was clamped to zero: every weight becomes 0, as in scikit-learn
            coef *= scale
            scale = 1.0
            if norms is not None:
                norms.reset(coef)
        new_rows = weights_true / scale
        if norms is not None:
            norms.replace(xp.take(coef, columns, axis=0), new_rows)
        coef[columns] = new_rows
        advance_clock(state, n_rows)
        if config.average_start and state.samples_seen >= config.average_start:
            # The average needs every row's true weight: fold the scale in and
            # bring every row's pending L1 up to date, as the dense step does.
            coef = coef * scale
            scale = 1.0
            if is_set(opt.l1):
                coef, state.l1_applied = l1_truncate(xp, coef, state.l1_applied, state.l1_total)
            state.coef = coef
            if norms is not None:
                norms.reset(coef)
            update_average(xp, state, config, n_rows)
    coef *= scale
    if is_set(opt.l1):
        coef[...], state.l1_applied = l1_truncate(xp, coef, state.l1_applied, state.l1_total)
    state.coef = coef
    return totals


class LazyNorms:
    """Per-column ``||v||^2`` and ``||v||_1`` of the stored weights ``v``, in O(nnz) a step.

    The stopping rule needs the penalty of the weights every step; recomputing
    it would cost O(n_features) a step, so the norms follow the rows a step
    changes. The true weights are ``scale * v``; rows whose cumulative L1 is
    pending count with their stored value until they next appear.
    """

    def __init__(self, xp, coef, optimizer):
        self.xp = xp
        self.l2 = optimizer.l2
        self.l1 = optimizer.l1
        self.reset(coef)

    def reset(self, coef) -> None:
        """Recompute from all of ``coef``, after a change to every row."""
        xp = self.xp
        self.squares = xp.sum(coef * coef, axis=0)
        self.absolute = xp.sum(xp.abs(coef), axis=0)

    def replace(self, old_rows, new_rows) -> None:
        """Account for rows changing from ``old_rows`` to ``new_rows``."""
        xp = self.xp
        self.squares = self.squares + xp.sum(new_rows * new_rows - old_rows * old_rows, axis=0)
        self.absolute = self.absolute + xp.sum(xp.abs(new_rows) - xp.abs(old_rows), axis=0)

    def penalty(self, scale):
        """The penalty of each column of ``scale * v``."""
        value = 0.0
        if is_set(self.l2):
            value = value + (0.5 * self.l2) * (scale * scale) * self.squares
        if is_set(self.l1):
            value = value + self.l1 * scale * self.absolute
        return value


def _below(xp, scale, bound: float) -> bool:
    """Whether the weight scale (a float, or one per column) is below ``bound`` anywhere."""
    if isinstance(scale, float):
        return scale < bound
    return bool(xp.any(scale < bound))
