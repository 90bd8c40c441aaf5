"""A batched search's training: the candidates of one fold as column blocks of one fit.

Candidates that differ only in parameters that change no decision of the fit plan
and no row a step sees (:data:`BATCHED_PARAMETERS`) form a group. A group trains
on a fold as one state with one block of output columns per candidate: the targets
repeated per candidate, the candidates' numbers as per-column arrays in the
:class:`~._core.types.EngineConfig` (see :mod:`._core.columns`), one plan (the
first candidate's, which every candidate of the group shares), one run of the epoch
loop on the batched engine the plan names (:func:`._plan.batched_engine`). Each
column keeps its own stopping rule, so each candidate stops on its own epoch, and
each candidate's block is then published as the fitted estimator a separate fit
gives.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state

from ._backend import resolve_compute_namespace, to_namespace
from ._core.columns import BlockLoss, per_column
from ._core.schedules import Schedule
from ._core.steps import keep_the_better_of_average_and_iterate
from ._core.types import DivergenceError, RunReport, TrainingData, TrainingState
from ._engines.loop import train
from ._params import warn_deprecated_parameters
from ._plan import (
    batched_engine,
    compiled_covers_fit,
    finish_plan,
    plan_fit,
    trains_candidates_together,
)

# parameters that only change a step's numbers, never which rows it sees
BATCHED_PARAMETERS = frozenset(
    {"alpha", "l1_ratio", "penalty", "eta0", "power_t", "class_weight", "tol", "max_iter",
     "weight_decay"}
)  # fmt: skip
# the plan's rule: where the compiled C epoch covers a fit, its candidates train one by one
# (False trains every group together, as the tests of the batched numerics do)
COMPILED_FIRST = True


def group_key(estimator, X) -> str | None:
    """What a candidate must share with the others of its group; None: train it alone."""
    try:
        estimator._validate_params()
        estimator._more_validate_params()
    except (ValueError, TypeError):
        return None  # its own fit raises what scikit-learn reports
    params = estimator.get_params(deep=False)
    if params["early_stopping"] or params["verbose"] or params["warm_start"]:
        return None
    if params["learning_rate"] in ("pa1", "pa2"):
        return None
    if COMPILED_FIRST:
        try:
            xp = resolve_compute_namespace(estimator.device, X)
            if not trains_candidates_together(estimator, X, xp):
                return None
        except (TypeError, ValueError, AttributeError):
            return None
    shared = {name: value for name, value in params.items() if name not in BATCHED_PARAMETERS}
    # the automatic batch size is measured where the compiled epoch runs the fit
    covered = compiled_covers_fit(estimator, X) if params["batch_size"] == "auto" else None
    return f"{type(estimator).__qualname__}{sorted(shared.items())!r}{covered}"


def group_candidates(estimator, candidates: list[dict], X) -> list[list[int]]:
    """Candidate indices by group, in order of first appearance; singletons alone."""
    groups: dict = {}
    alone = []
    for index, parameters in enumerate(candidates):
        key = group_key(clone(estimator).set_params(**parameters), X)
        if key is None:
            alone.append([index])
        else:
            groups.setdefault(key, []).append(index)
    return list(groups.values()) + alone


def fit_group(estimator, candidates: list[dict], X, y, sample_weight=None):
    """The fitted estimators of ``candidates`` on ``(X, y)``, trained together.

    None when the group cannot train together here (streamed data, a diverging
    candidate): each candidate is then fitted on its own, by its own ``fit``.
    """
    models = [clone(estimator).set_params(**parameters) for parameters in candidates]
    try:
        with np.errstate(all="ignore"):
            return _fit_together(models, X, y, sample_weight)
    except (DivergenceError, ArithmeticError, _NotBatched):
        return None


class _NotBatched(Exception):
    """This group trains candidate by candidate."""


def _fit_together(models, X, y, sample_weight):
    template = models[0]
    X, y = template._validate_training_input(X, y, reset=True)
    xp = resolve_compute_namespace(template.device, X)
    sample_weight = template._checked_sample_weight(sample_weight, X)
    plan, X = plan_fit(
        template, X, y, xp, partial=False, fitted=False, classes=None,
        has_sample_weight=sample_weight is not None,
    )  # fmt: skip
    if plan.chunk_rows is not None:
        raise _NotBatched("streamed data")
    single = template._training_data(plan, X, y, sample_weight, None, False)
    n_outputs = int(single.targets.shape[1])
    n_models = len(models)
    dtype = plan.compute_dtype
    # the other candidates' labels and class weights (their encoding is the template's)
    for model in models[1:]:
        for name in ("n_features_in_", "feature_names_in_", "classes_"):
            if hasattr(template, name):
                setattr(model, name, getattr(template, name))
    positive, negative = _class_weights(xp, models, single, y, n_outputs, dtype)
    targets = xp.concat([single.targets] * n_models, axis=1) if n_models > 1 else single.targets
    data = TrainingData(
        X=single.X,
        targets=targets,
        sample_weight=single.sample_weight,
        positive_weight=positive,
        negative_weight=negative,
    )
    device = None if plan.data_namespace is not xp else _device(xp, data.X)
    state = template._initial_state(
        xp, (int(data.X.shape[1]), n_outputs * n_models), dtype, device, None, None, False
    )
    config = finish_plan(plan, template, state, data)
    config = _batched_config(xp, config, models, plan, n_outputs, state.coef)
    max_epochs = max(int(model.max_iter) for model in models)
    engine = batched_engine(plan)
    l1_totals = []
    epoch = engine.epoch_runner

    def recorded(xp, state, *arguments):
        totals = epoch(xp, state, *arguments)
        # the cumulative L1 of each epoch: a candidate publishes the one of its last
        l1_totals.append(state.l1_total)
        return totals

    engine.epoch_runner = recorded
    report = train(
        engine,
        xp,
        state,
        data,
        config,
        max_epochs=max_epochs,
        random_state=check_random_state(template.random_state),
    )
    if plan.automatic_average:
        # as a single fit: the automatic average only where it lowers the objective
        with np.errstate(all="ignore"):
            keep_the_better_of_average_and_iterate(xp, state, data, config)
    for index, model in enumerate(models):
        block = slice(index * n_outputs, (index + 1) * n_outputs)
        _publish(xp, model, plan, state, report, block, X, l1_totals)
    return models


def _device(xp, X):
    if xp is np:
        return None
    from ._base import _device_of

    return _device_of(xp, X)


def _class_weights(xp, models, single, y, n_outputs, dtype):
    """The +1 / -1 rows' weights of every column, or None when all are one."""
    weights = []
    for index, model in enumerate(models):
        own = getattr(model, "class_weight", None)
        if index == 0 or own == getattr(models[0], "class_weight", None):
            weights.append((single.positive_weight, single.negative_weight))
            continue
        n_classes = len(model.classes_)
        positive, negative = model._class_weight_vectors(y, n_classes)
        if positive is not None:
            like = single.targets
            positive = xp.astype(to_namespace(np.asarray(positive), xp, like), dtype)
            negative = xp.astype(to_namespace(np.asarray(negative), xp, like), dtype)
        weights.append((positive, negative))
    if all(positive is None for positive, _ in weights):
        return None, None
    ones = xp.ones_like(single.targets[0])
    positive = [ones if pair[0] is None else pair[0] for pair in weights]
    negative = [ones if pair[1] is None else pair[1] for pair in weights]
    return xp.concat(positive), xp.concat(negative)


def _batched_config(xp, config, models, plan, n_outputs, like):
    """The group's config: the template's, with per-column numbers where candidates differ."""
    sparse = plan.sparse
    own = [model._engine_config(plan.compute_dtype if plan.half_precision else None, sparse)
           for model in models]  # fmt: skip
    schedule = config.schedule
    schedule = Schedule(
        schedule.kind,
        per_column([c.schedule.eta0 for c in own], n_outputs),
        per_column([c.schedule.alpha for c in own], n_outputs),
        per_column([c.schedule.power_t for c in own], n_outputs),
        per_column([c.schedule.optimal_offset for c in own], n_outputs),
    )

    def on_device(values):
        value = per_column(values, n_outputs)
        if isinstance(value, float):
            return value
        return xp.asarray(value, dtype=like.dtype, device=_array_device(like))

    optimizer = replace(
        config.optimizer,
        l2=on_device([c.optimizer.l2 for c in own]),
        l1=on_device([c.optimizer.l1 for c in own]),
        decoupled_decay=on_device([c.optimizer.decoupled_decay for c in own]),
    )
    tols = [c.tol for c in own]
    if all(tol is None for tol in tols):
        tol = None
    else:
        tol = per_column([-math.inf if t is None else t for t in tols], n_outputs)
    max_iters = [int(model.max_iter) for model in models]
    column_max_epochs = None
    if len(set(max_iters)) > 1:
        column_max_epochs = np.repeat(np.asarray(max_iters), n_outputs)
    loss = config.loss
    if loss.joint and len(models) > 1:
        loss = BlockLoss(loss.name, inner=loss, blocks=len(models))
    return replace(
        config,
        n_candidates=len(models),
        loss=loss,
        schedule=schedule,
        optimizer=optimizer,
        tol=tol,
        column_max_epochs=column_max_epochs,
    )


def _array_device(array):
    from array_api_compat import device

    return device(array)


def _publish(xp, model, plan, state, report, block, X, l1_totals):
    """Candidate ``model``'s columns of the group's state, as its own fit publishes them."""
    epochs = int(np.max(report.column_epochs[block]))
    converged = bool(np.all(report.column_converged[block]))
    samples_seen = epochs * plan.n_train
    average_start = plan.average_start
    n_averaged = 0
    if average_start and samples_seen >= average_start:
        n_averaged = samples_seen - average_start + 1

    def columns(value):
        if value is None or not hasattr(value, "shape") or value.ndim == 0:
            return value
        return xp.asarray(value[..., block], copy=True)

    l1_total = l1_totals[epochs - 1] if l1_totals else state.l1_total
    if hasattr(l1_total, "shape") and l1_total.ndim == 1:
        # a single fit's float: its columns share one rate (its longest column's value)
        values = np.asarray(to_namespace(l1_total[block], np), dtype=np.float64)
        last = int(np.argmax(report.column_epochs[block]))
        l1_total = float(values[last]) if len(set(values.tolist())) > 1 else float(values[0])
    adaptive = state.adaptive_eta
    if adaptive is not None:
        adaptive = tuple(adaptive[block])
    own = TrainingState(
        coef=columns(state.coef),
        intercept=columns(state.intercept),
        coef_buffer=columns(state.coef_buffer),
        intercept_buffer=columns(state.intercept_buffer),
        l1_applied=columns(state.l1_applied),
        l1_total=l1_total,
        average_coef=columns(state.average_coef) if n_averaged else None,
        average_intercept=columns(state.average_intercept) if n_averaged else None,
        n_averaged=n_averaged,
        steps=epochs * math.ceil(plan.n_train / plan.batch_size),
        samples_seen=samples_seen,
        adaptive_eta=adaptive,
        scaling=state.scaling,
        feature_mean=state.feature_mean,
        feature_inv_scale=state.feature_inv_scale,
    )
    own_report = RunReport(
        n_epochs=epochs,
        loss_curve=[float(np.sum(losses[block])) for losses in report.column_losses[:epochs]],
        converged=converged,
    )
    model.batch_size_ = plan.batch_size
    model.preconditioner_ = plan.preconditioner
    model._auto_average_start = plan.average_start if not model.average else 0
    model._warn_if_not_converged(own_report)
    model._store_fit(xp, own, own_report, False, output_like=X)
    warn_deprecated_parameters(model)
