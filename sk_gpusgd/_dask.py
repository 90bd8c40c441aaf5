"""Data-parallel training on a dask.distributed cluster, and chunk-wise prediction.

The fit runs in synchronous rounds. In every round each row block (partition)
of the training data trains a copy of the global model where the block lives,
with the engine, for one local epoch over its rows (or ``k`` optimizer steps,
see :func:`sk_gpusgd.dask.fit`); a reduce task then averages the copies into
the next global model:

- ``coef``, ``intercept``, the momentum buffers and the L1 records are averaged
  weighted by the rows each block trained in the round (momentum is averaged,
  not reset, so it carries over rounds as it carries over epochs);
- the schedule's clock (``steps``, ``samples_seen``) advances by the steps and
  rows of all blocks together, so the learning rate after a round is the rate a
  single process reaches after the same amount of data;
- averaged SGD (``average=``) keeps the running mean of the synchronised models
  (one term per round) once ``average`` samples were seen;
- the stopping rule watches the mean loss of all rows over an epoch (plus the
  penalty of the averaged model), as a single fit does.

Each block's shuffling is seeded from ``random_state``, the block's index and
the round, never from worker identity or timing, so the same data, chunking
and ``random_state`` give the same model whatever the number of workers. Only
the model (a few arrays) comes back to the client, once per round.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
from sklearn.utils.validation import validate_data

from ._backend import (
    device_name,
    dtype_name,
    is_device_array,
    namespace_of,
    resolve_compute_namespace,
    to_namespace,
)
from ._core.types import TrainingData, TrainingState
from ._engines.rounds import EpochRule
from ._plan import batch_size_for, preconditioner_for
from ._runs import run

SYNC_EPOCH = "epoch"
_OPTIONS = contextvars.ContextVar("sk_gpusgd_dask_options", default=None)


@dataclasses.dataclass(frozen=True)
class DaskOptions:
    """How a Dask fit synchronises: ``sync_every`` ('epoch' or steps) and the client."""

    sync_every: int | str = SYNC_EPOCH
    client: object = None


@contextlib.contextmanager
def dask_options(options: DaskOptions):
    """Use ``options`` for the Dask fits started inside the block."""
    token = _OPTIONS.set(options)
    try:
        yield
    finally:
        _OPTIONS.reset(token)


# ------------------------------------------------------------------ inputs
def _to_dask_array(value, name):
    """A Dask (or NumPy) value as a Dask array; DataFrames keep unknown row counts."""
    import dask
    import dask.array as da

    if value is None:
        return None
    if dask.is_dask_collection(value):
        if hasattr(value, "to_dask_array"):  # DataFrame or Series
            return value.to_dask_array(lengths=True)
        if not isinstance(value, da.Array):
            raise TypeError(f"{name} must be a Dask array, DataFrame or Series; got {type(value)}")
        return value
    return value


def _row_blocks(X, y, sample_weight):
    """X, y and sample_weight as Dask arrays with the same row blocks, X in one column block."""
    import dask.array as da

    X, y, sample_weight = (
        _to_dask_array(X, "X"),
        _to_dask_array(y, "y"),
        _to_dask_array(sample_weight, "sample_weight"),
    )
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    reference = next(v for v in (X, y, sample_weight) if isinstance(v, da.Array))
    rows = reference.chunks[0]
    if any(np.isnan(size) for size in rows):
        raise ValueError(
            "The row blocks of the Dask input have unknown sizes; call "
            "X.compute_chunk_sizes() (or to_dask_array(lengths=True)) first."
        )
    if not isinstance(X, da.Array):
        X = da.from_array(np.asarray(X), chunks=(rows, -1))
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D Dask array for X, got {X.ndim}D.")
    if X.shape[0] != reference.shape[0]:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: "
            f"[{X.shape[0]}, {reference.shape[0]}]"
        )
    if X.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    X = X.rechunk({0: rows, 1: -1})
    aligned = []
    for value, name in ((y, "y"), (sample_weight, "sample_weight")):
        if value is None:
            aligned.append(None)
            continue
        if not isinstance(value, da.Array):
            value = da.from_array(np.asarray(value), chunks=rows)
        if value.ndim == 2 and value.shape[1] == 1:
            value = value[:, 0]
        if value.ndim != 1 or value.shape[0] != X.shape[0]:
            raise ValueError(
                f"{name} must be 1D with one value per row of X ({X.shape[0]}); "
                f"got shape {value.shape}."
            )
        aligned.append(value.rechunk((rows,)))
    return X, aligned[0], aligned[1]


def _client(options: DaskOptions):
    if options.client is not None:
        return options.client
    from distributed import default_client

    try:
        return default_client()
    except ValueError as error:
        raise RuntimeError(
            "Fitting on Dask collections trains on a dask.distributed cluster, and no "
            "Client was found. Start one first, e.g. `from distributed import Client; "
            "client = Client()` (see the sk_gpusgd Dask guide)."
        ) from error


def _compute_dtype_of(X):
    name = np.dtype(X.dtype).name
    if name in ("float32", "float16"):
        return np.float32
    return np.float64


# ------------------------------------------------------------ worker tasks
@dataclasses.dataclass
class _Partition:
    """A row block validated and encoded for the engine, held by the worker that has it."""

    index: int
    xp_name: str
    data: TrainingData

    def namespace(self):
        if self.xp_name == "numpy":
            return np
        import importlib

        return importlib.import_module(self.xp_name)


def _prepare_partition(index, X, y, sample_weight, encoder):
    """Check and encode one row block, in the namespace it trains in (CuPy on GPU workers)."""
    X, y = encoder._validate_training_input(X, y, reset=True)
    X = _in_owned_memory(X)
    xp = resolve_compute_namespace(encoder.device, X)
    sample_weight = encoder._checked_sample_weight(sample_weight, X)
    X_train = to_namespace(X, xp)
    dtype = xp.float32 if dtype_name(X_train) in ("float16", "bfloat16", "float32") else xp.float64
    targets, positive, negative = encoder._encode_targets(y, xp, dtype, None, True, X_train)
    if sample_weight is not None:
        sample_weight = xp.astype(to_namespace(sample_weight, xp, X_train), dtype)
    data = TrainingData(X_train, targets, sample_weight, positive, negative)
    return _Partition(index=index, xp_name=xp.__name__, data=data)


def _in_owned_memory(X):
    """A NumPy block that views a received network buffer, copied into NumPy's own memory.

    Blocks deserialised from a transfer view the receive buffer; the engine's
    row gathers over such memory measured about 25 times slower than over a
    copy, so the block is copied once, when the fit prepares it.
    """
    if not isinstance(X, np.ndarray):
        return X
    base = X
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return X if isinstance(base, np.ndarray) else np.array(X, copy=True)


def _block_scaling(partition: _Partition, fit_intercept: bool, mean=None, inv_scale=None):
    """The batch gain's statistics of one block (:func:`._core.scaling.measure_scaling`)."""
    from ._core.scaling import measure_scaling
    from ._engines.compiled import sampled_second_moment

    return measure_scaling(
        partition.data.X, fit_intercept, mean, inv_scale, second_moment=sampled_second_moment
    )


def _where_held(client, function, partition, *args):
    """``function(partition, *args)`` on the worker that holds the block.

    Never elsewhere: a block copied to another worker would leave a replica
    there, and rounds scheduled on a replica train on network buffers.
    """
    holders = list(client.who_has([partition]).get(partition.key, ()))
    if not holders:
        return client.submit(function, partition, *args)
    return client.submit(function, partition, *args, workers=holders, allow_other_workers=False)


def _block_sum(partition: _Partition, mean=None):
    """Per-feature sum of a block's rows, or of their squared deviations from ``mean``."""
    xp = partition.namespace()
    X = xp.astype(partition.data.X, xp.float64)
    if mean is not None:
        centred = X - xp.asarray(mean)
        X = centred * centred
    return np.asarray(to_namespace(xp.sum(X, axis=0), np))


def _mean_and_inverse_scale(mean, variance):
    """What :func:`sk_gpusgd._core.precondition.feature_statistics` gives, from pooled sums."""
    from ._core.precondition import inverse_scale

    return mean, inverse_scale(np, mean, np.sqrt(variance))


def _round_seed(seed: int, partition: int, position: int) -> np.random.RandomState:
    """The shuffling source of one block in one round (or local epoch)."""
    entropy = np.random.SeedSequence([seed, partition, position]).generate_state(1)[0]
    return np.random.RandomState(int(entropy))


def _local_round(partition: _Partition, model: TrainingState, spec: dict):
    """Train a copy of the global model on one block; returns (state, loss sum, rows, device)."""
    xp = partition.namespace()
    data = partition.data
    state = dataclasses.replace(
        model, average_coef=None, average_intercept=None, n_averaged=0
    ).moved_to(xp)
    state = state.copied(xp)
    config = spec["config"]
    steps = spec["steps"]
    if steps is None:
        rng = _round_seed(spec["seed"], partition.index, spec["round"])
        report = run(
            xp, state, data, config, max_epochs=1, random_state=rng, use_stopping_rule=False
        )
        rows = data.n_samples
    else:
        data = _steps_subset(xp, data, partition.index, spec, config.shuffle)
        config = dataclasses.replace(config, shuffle=False)
        report = run(
            xp,
            state,
            data,
            config,
            max_epochs=1,
            random_state=np.random.RandomState(0),
            use_stopping_rule=False,
        )
        rows = data.n_samples
    loss_sum = report.loss_curve[0] * rows
    return state.moved_to(np), loss_sum, rows, device_name(xp, state.coef)


def _steps_subset(xp, data: TrainingData, index: int, spec: dict, shuffle: bool):
    """The rows of ``steps`` batches, continuing the block's sequence of epoch permutations."""
    n_rows = data.n_samples
    per_round = spec["steps"] * spec["config"].batch_size
    positions = np.arange(spec["round"] * per_round, (spec["round"] + 1) * per_round)
    epochs, offsets = np.divmod(positions, n_rows)
    rows = np.empty_like(positions)
    for epoch in np.unique(epochs):
        chosen = epochs == epoch
        order = (
            _round_seed(spec["seed"], index, int(epoch)).permutation(n_rows)
            if shuffle
            else np.arange(n_rows)
        )
        rows[chosen] = order[offsets[chosen]]

    def take(array):
        if array is None:
            return None
        return xp.take(array, to_namespace(rows, xp, array), axis=0)

    return TrainingData(
        take(data.X),
        take(data.targets),
        take(data.sample_weight),
        data.positive_weight,
        data.negative_weight,
    )


def _merge(model: TrainingState, average_start: int, *results):
    """Average the blocks' models weighted by rows trained; returns (state, loss sum, rows)."""
    total_rows = sum(rows for _, _, rows, _ in results)
    shares = [rows / total_rows for _, _, rows, _ in results]
    states = [state for state, _, _, _ in results]

    def mean(name):
        values = [getattr(state, name) for state in states]
        if any(value is None for value in values):
            return getattr(model, name)
        return sum(share * value for share, value in zip(shares, values, strict=True))

    merged = dataclasses.replace(
        model,
        coef=mean("coef"),
        intercept=mean("intercept"),
        coef_buffer=mean("coef_buffer"),
        intercept_buffer=mean("intercept_buffer"),
        l1_applied=mean("l1_applied"),
        l1_total=float(sum(s * state.l1_total for s, state in zip(shares, states, strict=True))),
        steps=model.steps + sum(state.steps - model.steps for state in states),
        samples_seen=model.samples_seen + total_rows,
    )
    if average_start and merged.samples_seen >= average_start:
        merged.n_averaged += 1
        if merged.average_coef is None:
            merged.average_coef = np.zeros_like(merged.coef)
            merged.average_intercept = np.zeros_like(merged.intercept)
        rate = 1.0 / merged.n_averaged
        merged.average_coef = merged.average_coef + rate * (merged.coef - merged.average_coef)
        merged.average_intercept = merged.average_intercept + rate * (
            merged.intercept - merged.average_intercept
        )
    loss_sum = float(sum(loss for _, loss, _, _ in results))
    devices = sorted({device for _, _, _, device in results})
    return merged, loss_sum, total_rows, devices


# ----------------------------------------------------------------- training
def train_on_dask(estimator, X, y, *, coef_init, intercept_init, sample_weight, classes, partial):
    """Fit ``estimator`` on Dask collections (called by ``BaseSGD._train``)."""
    import dask

    options = _OPTIONS.get() or DaskOptions()
    sync_every = _checked_sync_every(options.sync_every)
    if estimator.early_stopping and not partial:
        raise ValueError(
            "early_stopping=True is not supported with Dask input: hold out a validation "
            "set yourself and score it, or fit without early stopping."
        )
    client = _client(options)
    features_meta = X._meta if hasattr(X, "columns") else None
    X, y, sample_weight = _row_blocks(X, y, sample_weight)
    fitted = hasattr(estimator, "_state")
    first_call = not (partial and fitted)
    meta = features_meta if features_meta is not None else np.empty((0, X.shape[1]))
    validate_data(estimator, meta, skip_check_array=True, reset=first_call)

    encoder = _encoder(estimator, client, y, classes, partial)
    n_outputs = _n_outputs(estimator)
    dtype = _compute_dtype_of(X)
    state = estimator._initial_state(
        np, (X.shape[1], n_outputs), dtype, None, coef_init, intercept_init, partial
    )
    half = np.dtype(X.dtype).name == "float16" and estimator.multi_precision
    config = estimator._engine_config(np.float32 if half else None, sparse=False)
    # the batch size of a single-process fit on all the rows
    estimator.batch_size_, _ = batch_size_for(
        estimator, np, int(sum(X.chunks[0])), continuing=partial and fitted
    )
    config = dataclasses.replace(config, batch_size=estimator.batch_size_)
    local_config = dataclasses.replace(config, average_start=0, tol=None, verbose=0)

    blocks = zip(
        X.to_delayed().ravel(),
        y.to_delayed().ravel(),
        [None] * len(X.chunks[0]) if sample_weight is None else sample_weight.to_delayed().ravel(),
        strict=True,
    )
    # keys of their own: a later fit never shares (or cancels) this fit's blocks
    prepare = dask.delayed(_prepare_partition, pure=False)
    nonempty = [i for i, size in enumerate(X.chunks[0]) if size > 0]
    delayed_parts = [prepare(i, Xb, yb, wb, encoder) for i, (Xb, yb, wb) in enumerate(blocks)]
    partitions = client.compute([delayed_parts[i] for i in nonempty])
    block_rows = [X.chunks[0][i] for i in nonempty]
    if first_call and partitions:
        estimator.preconditioner_ = preconditioner_for(
            estimator, estimator.batch_size_, sparse=False
        )
        if estimator.preconditioner_ == "standardize":
            # two passes over the blocks where they live; only feature vectors move
            n_rows = sum(block_rows)
            sums = client.gather([_where_held(client, _block_sum, part) for part in partitions])
            mean = np.sum(sums, axis=0) / n_rows
            if not estimator.fit_intercept:
                # scaled, not centred: without an intercept the constant direction stays
                mean = np.zeros_like(mean)
            squares = client.gather(
                [_where_held(client, _block_sum, part, mean) for part in partitions]
            )
            mean, inv_scale = _mean_and_inverse_scale(mean, np.sum(squares, axis=0) / n_rows)
            dtype = state.coef.dtype
            state.precondition(mean.astype(dtype), inv_scale.astype(dtype))
        # the batch gain, measured where the first block lives (only two numbers move)
        state.scaling = _where_held(
            client,
            _block_scaling,
            partitions[0],
            bool(estimator.fit_intercept),
            state.feature_mean,
            state.feature_inv_scale,
        ).result()
    if estimator.scale_learning_rate:
        config = dataclasses.replace(config, scaling=state.scaling)
        local_config = dataclasses.replace(local_config, scaling=state.scaling)

    random_state = check_random_state(estimator.random_state)
    seed = int(random_state.randint(np.iinfo(np.int32).max))
    if partial:
        # a new partial_fit call continues the rounds' seeds where the last one stopped
        seed = int(np.random.SeedSequence([seed, state.samples_seen]).generate_state(1)[0])
    max_epochs = 1 if partial else int(estimator.max_iter)
    rule = EpochRule(config, None, use_stopping_rule=not partial, max_epochs=max_epochs)
    rounds_per_epoch = _rounds_per_epoch(sync_every, block_rows, config.batch_size)
    devices: list = []
    try:
        round_index = 0
        for _ in range(max_epochs):
            loss_sum, rows = 0.0, 0
            for _ in range(rounds_per_epoch):
                # the model enters as a task, not scattered data: the scheduler keeps
                # what it needs to recompute it when the worker that holds it is lost
                model = client.submit(_global_model, state, pure=False)
                spec = {
                    "config": local_config,
                    "steps": None if sync_every == SYNC_EPOCH else sync_every,
                    "round": round_index,
                    "seed": seed,
                }
                local = [client.submit(_local_round, part, model, spec) for part in partitions]
                merged = client.submit(_merge, model, int(config.average_start), *local)
                state, round_loss, round_rows, devices = merged.result()
                loss_sum, rows = loss_sum + round_loss, rows + round_rows
                round_index += 1
            if rule.end_epoch(np, state, loss_sum, rows):
                break
    except Exception as error:
        _reraise_cluster_failure(error)
    finally:
        client.cancel(partitions)
    report = rule.report
    if not partial and config.tol is not None and not report.converged:
        warnings.warn(
            "Maximum number of iteration reached before convergence. Consider "
            "increasing max_iter to improve the fit.",
            ConvergenceWarning,
            stacklevel=4,
        )
    estimator._store_fit(np, state, report, partial, output_like=np.empty(0))
    kinds = sorted({"cuda" if device.startswith("cuda") else device for device in devices})
    estimator.device_ = "dask:" + "+".join(kinds or ["cpu"])
    return estimator


def _global_model(state: TrainingState) -> TrainingState:
    """The round's starting model, as a task result (see ``train_on_dask``)."""
    return state


def _checked_sync_every(value):
    if value == SYNC_EPOCH:
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ValueError(f"sync_every must be 'epoch' or a positive number of steps; got {value!r}.")


def _rounds_per_epoch(sync_every, block_rows, batch_size) -> int:
    """Rounds that make about one pass over the data (one with local epochs)."""
    if sync_every == SYNC_EPOCH:
        return 1
    mean_rows = sum(block_rows) / len(block_rows)
    return max(1, round(mean_rows / (sync_every * batch_size)))


def _n_outputs(estimator) -> int:
    if not estimator._is_classifier_estimator:
        return 1
    n_classes = len(estimator.classes_)
    return 1 if n_classes == 2 else n_classes


def _encoder(estimator, client, y, classes, partial):
    """A parameter copy of ``estimator`` that checks and encodes blocks on the workers.

    It holds the global ``classes_`` and, for class_weight='balanced', the
    weights computed from the counts of all blocks.
    """
    encoder = clone(estimator)
    if not estimator._is_classifier_estimator:
        return encoder
    import dask.array as da

    if partial:
        if classes is not None and is_device_array(classes):
            classes = to_namespace(classes, np)
        _check_partial_fit_first_call(estimator, classes)
        found, counts = estimator.classes_, None
    else:
        found, counts = client.gather(client.compute(list(da.unique(y, return_counts=True))))
        check_classification_targets(found)
        estimator.classes_ = found
    n_classes = len(estimator.classes_)
    if n_classes < 2:
        raise ValueError(f"The number of classes has to be greater than one; got {n_classes} class")
    if estimator.class_weight == "balanced":
        # scikit-learn's 'balanced': n_samples / (n_classes * count of the class)
        weights = counts.sum() / (n_classes * counts.astype(np.float64))
        encoder.set_params(class_weight=dict(zip(found.tolist(), weights.tolist(), strict=True)))
    encoder.classes_ = estimator.classes_
    return encoder


def _reraise_cluster_failure(error):
    """Errors of the data pass through; failures of the cluster get a clear message."""
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    if isinstance(error, KilledWorker | FutureCancelledError | OSError | TimeoutError):
        raise RuntimeError(
            f"The Dask cluster failed during the fit ({type(error).__name__}: {error}). "
            "The estimator is left as it was before this fit."
        ) from error
    raise error


# --------------------------------------------------------------- prediction
def dask_method(estimator, name, X, *args, **kwargs):
    """``estimator.<name>(X)`` on Dask input: lazy and block by block (``score``: a float)."""
    if name == "score":
        return _score(estimator, X, *args, **kwargs)
    return _blockwise(estimator, name, X, lengths=False)


def _blockwise(estimator, name, X, lengths):
    """A lazy Dask array of ``estimator.<name>`` applied to every row block of ``X``."""
    import dask.array as da

    names = hasattr(X, "columns")
    if names:
        X = X.to_dask_array(lengths=True if lengths else None)
    elif not isinstance(X, da.Array):
        raise TypeError(f"X must be a Dask array or DataFrame; got {type(X)}")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D Dask array for X, got {X.ndim}D.")
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    meta_xp = namespace_of(X._meta)
    probe = _block_method(meta_xp.zeros((1, X.shape[1]), dtype=X.dtype), estimator, name, names)
    meta = probe[:0]
    if probe.ndim == 1:
        return X.map_blocks(
            _block_method, estimator, name, names, dtype=probe.dtype, drop_axis=1, meta=meta
        )
    return X.map_blocks(
        _block_method,
        estimator,
        name,
        names,
        dtype=probe.dtype,
        chunks=(X.chunks[0], (probe.shape[1],)),
        meta=meta,
    )


def _block_method(block, estimator, name, names):
    if names:
        import pandas as pd

        block = pd.DataFrame(block, columns=estimator.feature_names_in_)
    return getattr(estimator, name)(block)


def _score(estimator, X, y, sample_weight=None):
    """Accuracy (classifier) or R^2 (regressor), reduced on the cluster."""
    import dask
    import dask.array as da

    predicted = _blockwise(estimator, "predict", X, lengths=True)
    y = _to_dask_array(y, "y")
    if not isinstance(y, da.Array):
        y = da.from_array(np.asarray(y), chunks=predicted.chunks)
    y = y.rechunk(predicted.chunks) if not np.isnan(predicted.chunks[0]).any() else y
    weights = _to_dask_array(sample_weight, "sample_weight")
    if weights is None:
        weights = da.ones_like(y, dtype=np.float64)
    elif not isinstance(weights, da.Array):
        weights = da.from_array(np.asarray(weights), chunks=predicted.chunks)
    if estimator._is_classifier_estimator:
        correct = (predicted == y).astype(np.float64)
        total, hits = dask.compute(weights.sum(), (weights * correct).sum())
        return float(hits / total)
    y = y.astype(np.float64)
    total, weighted_sum = dask.compute(weights.sum(), (weights * y).sum())
    mean = weighted_sum / total
    residual, spread = dask.compute(
        (weights * (y - predicted) ** 2).sum(), (weights * (y - mean) ** 2).sum()
    )
    if spread == 0:
        return 1.0 if residual == 0 else 0.0
    return float(1.0 - residual / spread)
