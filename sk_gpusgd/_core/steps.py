"""One minibatch step's numerics, shared by the dense and sparse array-API epochs.

The loss and its weighted, clipped derivative; the penalty of the weights; the
update (clipping, decay, momentum, L1), the intercept's step, the running average,
the step's rate and the sample clock.
"""

from __future__ import annotations

import numpy as np
from array_api_compat import device as array_device

from .._backend import is_sparse
from .optim import OptimizerConfig, clip_gradient, is_set, l1_truncate, momentum_step
from .types import MAX_DLOSS, EngineConfig, TrainingData, TrainingState


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
        weights = true_class_weights(xp, targets, weights, getattr(config.loss, "blocks", 1))
    if weights is not None:
        derivative = derivative * weights
    return column_sums(xp, loss_values), derivative


def true_class_weights(xp, targets, weights, blocks: int = 1):
    """The weight of each row's true class, per softmax block of columns.

    ``blocks`` coupled models side by side (a batched search's candidates) each take
    their own true class's weight; with one block this is a column of shape (batch, 1).
    """
    picked = xp.where(targets > 0, weights, 0.0)
    if blocks == 1:
        return xp.sum(picked, axis=1, keepdims=True)
    n_rows, n_columns = picked.shape
    width = n_columns // blocks
    per_block = xp.sum(xp.reshape(picked, (n_rows, blocks, width)), axis=2, keepdims=True)
    return xp.reshape(xp.broadcast_to(per_block, (n_rows, blocks, width)), (n_rows, n_columns))


def penalty_columns(xp, coef, optimizer: OptimizerConfig):
    """The penalty of each output column: ``l2 / 2 ||w_k||^2 + l1 ||w_k||_1``.

    ``l2`` and ``l1`` are floats, or arrays of one value per column (a batched search).
    """
    value = None
    if is_set(optimizer.l2):
        value = (0.5 * optimizer.l2) * xp.sum(coef * coef, axis=0)
    if is_set(optimizer.l1):
        l1 = optimizer.l1 * xp.sum(xp.abs(coef), axis=0)
        value = l1 if value is None else value + l1
    return value


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
        if is_set(opt.l2):
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
    if is_set(opt.l1):
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
    rate = average_rate(counted, state.n_averaged, config.average_decay)
    state.average_coef = state.average_coef + rate * (state.coef - state.average_coef)
    state.average_intercept = state.average_intercept + rate * (
        state.intercept - state.average_intercept
    )


def average_rate(counted: int, n_averaged: int, decay: float) -> float:
    """The weight of a step's iterate in the running average of the iterates.

    ``counted`` samples of the step are averaged, ``n_averaged`` so far
    (these included). With ``decay = 0`` every sample's iterate weighs the
    same (Polyak-Ruppert, scikit-learn's ``average``). With ``decay = eta > 0``
    it is Shamir and Zhang's polynomial-decay average (2013): per sample
    ``(eta + 1) / (t + eta)``, so the average forgets its early iterates at the
    rate that suffix averaging has, without knowing when the fit will stop.
    """
    if not decay:
        return counted / n_averaged
    return min(1.0, (decay + 1.0) * counted / (n_averaged + decay * counted))


def keep_the_better_of_average_and_iterate(xp, state: TrainingState, data: TrainingData, config):
    """Where the last iterate has the lower objective than the average, keep it instead.

    Averaging reduces the noise of iterates that oscillate around the optimum;
    an iterate still travelling towards it (a loss whose derivative is bounded,
    far from its optimum, moves at a bounded speed) is ahead of its own
    average. The objective of the fit (mean weighted loss plus penalty) at both
    decides, per one-vs-rest column (all columns together for a coupled loss):
    the iterate is kept where its objective is lower by more than ``tol`` (an
    improvement the stopping rule counts), and its column of the average is
    set to it.
    """
    if state.average_coef is None or state.n_averaged == 0:
        return
    average = state.to_model(state.average_coef, state.average_intercept)
    last = state.to_model(state.coef, state.intercept)
    n_outputs = int(state.coef.shape[1])
    X = data.X
    if config.compute_dtype is not None:
        X = xp.astype(X, config.compute_dtype)
    both = xp.concat([average[0], last[0]], axis=1)
    decision = X @ both + xp.concat([average[1], last[1]])
    weights = batch_weights(xp, data.targets, data.sample_weight, data)
    objectives = []
    for columns, (coef, _) in zip(
        (slice(0, n_outputs), slice(n_outputs, 2 * n_outputs)), (average, last), strict=True
    ):
        values, _ = config.loss.value_and_derivative(xp, decision[:, columns], data.targets)
        if weights is not None:
            values = values * weights
        objective = column_sums(xp, values) / data.n_samples
        penalty = penalty_columns(xp, coef, config.optimizer)
        if penalty is not None:
            objective = objective + penalty
        if config.loss.joint:
            # coupled columns decide together: per candidate's block in a batched search
            blocks = xp.reshape(objective, (config.n_candidates, -1))
            total = xp.sum(blocks, axis=1, keepdims=True) + xp.zeros_like(blocks)
            objective = xp.reshape(total, (-1,))
        objectives.append(objective)
    # better by an improvement the stopping rule would count (tol), or at all without one
    iterate_better = objectives[1] < objectives[0] - _tolerance(xp, config.tol, objectives[0])
    if not bool(xp.any(iterate_better)):
        return
    state.average_coef = xp.where(iterate_better, state.coef, state.average_coef)
    state.average_intercept = xp.where(iterate_better, state.intercept, state.average_intercept)


def _tolerance(xp, tol, like):
    """``tol`` as an improvement threshold: 0 for None (one per column in a batched
    search, where ``-inf`` stands for None)."""
    if tol is None:
        return 0.0
    if isinstance(tol, (int, float)):
        return float(tol)
    values = np.where(np.isfinite(np.asarray(tol, dtype=np.float64)), tol, 0.0)
    return xp.asarray(values, dtype=like.dtype)


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
    if isinstance(eta, np.ndarray):
        # per-column schedule parameters (a batched search): the rate in float64 on the
        # host, as a single fit computes its float, then one array in the weights' dtype
        eta = config.step_rate(np, eta, n_rows)
        return xp.asarray(eta, dtype=state.coef.dtype, device=array_device(state.coef))
    return config.step_rate(xp, eta, n_rows)


def advance_clock(state: TrainingState, n_rows: int) -> None:
    """Count a finished step over ``n_rows`` rows."""
    state.steps += 1
    state.samples_seen += n_rows


def column_sums(xp, derivative):
    """Sum over the batch of each column (a product is faster than an axis-0 reduction)."""
    return xp.ones_like(derivative[:, 0]) @ derivative
