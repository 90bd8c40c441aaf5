"""The reference engine: the dense array-API epoch, which defines the results.

A pure function over arrays of one array-API namespace: it never sees an
estimator. Values stay in the namespace (on the device) inside an epoch; the
epoch's summary is the one host synchronisation per epoch.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import device as array_device

from .._backend import to_namespace
from .._core.optim import clamped_within_batch, shrinks_within_batch, within_batch_gradient
from .._core.precondition import preconditioned_gradient
from .._core.steps import (
    advance_clock,
    apply_step,
    batch_weights,
    column_sums,
    current_learning_rate,
    loss_gradient,
    penalty_columns,
    update_average,
)
from .._core.types import EpochTotals, TrainingData, TrainingState


def _batch_rows(xp, array, order, start, stop):
    if array is None:
        return None
    if order is None:
        return array[start:stop, ...]
    return xp.take(array, order[start:stop], axis=0)


def dense_epoch(xp, state: TrainingState, data: TrainingData, config, order, frozen):
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
        eta = current_learning_rate(xp, state, config, n_rows)
        if n_rows > 1 and shrinks_within_batch(config.optimizer):
            grad_coef = _rows_shrunk(xp, state, X_batch, derivative, grad_coef, eta, config)
        apply_step(xp, state, grad_coef, grad_intercept, eta, config)
        advance_clock(state, n_rows)
        update_average(xp, state, config, n_rows)
    return totals


def _rows_shrunk(xp, state, X_batch, derivative, grad_coef, eta, config):
    """The batch gradient, the last row's share alone where the shrink is clamped.

    See :func:`.._core.optim.within_batch_gradient`; ``derivative`` holds the batch
    mean's share of each row.
    """
    opt = config.optimizer
    decay = opt.l2 + opt.decoupled_decay
    if state.preconditioned:
        inv_scale = state.feature_inv_scale[:, None]
        decay = opt.l2 * (inv_scale * inv_scale) + opt.decoupled_decay
    clamped = clamped_within_batch(xp, eta, decay)
    if clamped is None:
        return grad_coef
    last_row, last_derivative = X_batch[-1:, ...], derivative[-1:, ...]
    if state.preconditioned:
        last, _ = preconditioned_gradient(
            xp, last_row, last_derivative, state.feature_mean, state.feature_inv_scale
        )
    else:
        last = last_row.T @ last_derivative
    return within_batch_gradient(grad_coef, last, clamped)


def _in_order(xp, array, order):
    """``array`` with its rows in epoch order (itself when there is no shuffling)."""
    if array is None or order is None:
        return array
    return xp.take(array, order, axis=0)


def epoch_summary(xp, state: TrainingState, totals: EpochTotals, n_samples):
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
