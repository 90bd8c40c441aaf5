"""The fit plan: every decision of one fit, made once, from the parameters and the data.

:func:`plan_fit` decides, before any array is converted, where the fit computes and
where its rows live, the batch size, whether the host data is streamed through the
device, the compute dtype, the preconditioner and when averaging starts;
:func:`finish_plan` then measures what the decisions need (the preconditioner's
feature statistics, the batch step's curvature statistics) and picks the engine,
and returns the fit's :class:`~._core.types.EngineConfig`. The estimator only
validates, converts the data as the plan says, builds the state, runs
:func:`~._engines.loop.train` on ``plan.engine`` and publishes the result. A plan
prints as one line per decision (``print(plan)``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._backend import (
    dtype_name,
    free_device_bytes,
    is_cupy_array,
    is_cupy_namespace,
    is_cupy_sparse,
    is_device_array,
    is_sparse,
    namespace_of,
    to_namespace,
)
from ._core.losses import make_loss
from ._core.precondition import feature_statistics
from ._core.scaling import (
    COMPILED_MIN_BATCH,
    BatchScaling,
    auto_batch_is_one_row,
    auto_batch_size,
    measure_scaling,
)
from ._core.types import EngineConfig, TrainingData, TrainingState
from ._engines import compiled
from ._engines.array_api import ArrayApiEngine
from ._engines.cuda.driver import CudaEngine, fused_reason, kernels_wanted, warn_fallback
from ._engines.reference import dense_epoch
from ._engines.sparse import sparse_epoch
from ._engines.streaming import (
    FREE_MEMORY_SHARE,
    StreamingEngine,
    data_bytes,
    plan_chunk_rows,
)

# scikit-learn damps the intercept's step on sparse data.
SPARSE_INTERCEPT_SCALE = 0.01
HALF_DTYPES = ("float16", "bfloat16")
# below this share of non-zero values X trains as CSR with automatic choices, above it
# as a dense array, whatever its container: the lazy sparse step costs a few times a
# dense step's work per stored value (an index and an indirect load besides the value)
SPARSE_DENSITY = 0.25
# the automatic average weighs each iterate by its sample count t (Lacoste-Julien, Schmidt
# and Bach 2012): the polynomial-decay average with eta = 1, see _core.steps.average_rate
AUTO_AVERAGE_DECAY = 1.0


@dataclass
class BatchStatistics:
    """What ``batch_size='auto'`` measured on host X, kept for the fit that follows."""

    X: Any
    mean: Any
    inv_scale: Any
    scaling: BatchScaling

    def describes(self, X, standardized: bool) -> bool:
        """Whether these describe the rows ``X`` as the fit sees them (standardised or not)."""
        return self.X is X and (self.mean is not None) == standardized


@dataclass
class FitPlan:
    """Every decision of one ``fit`` or ``partial_fit`` call.

    Attributes
    ----------
    namespace : module
        Where the weights live and the fit computes (``numpy``, ``cupy``, ...).
    data_namespace : module
        Where the training rows live during the fit: ``namespace``, or NumPy when the
        host data is streamed through the device.
    n_train : int
        Training rows (after the early-stopping hold-out).
    batch_size : int
        Rows per step (``batch_size_``).
    chunk_rows : int or None
        Rows per streamed chunk; None when the data fits on the device.
    compute_dtype : dtype
        The weights' and the arithmetic's dtype (float32 for half-precision X).
    half_precision : bool
        X is stored in float16 / bfloat16 and widened batch by batch.
    sparse : bool
        X is CSR.
    continuing : bool
        A ``partial_fit`` call after the first: the state and its decisions carry on.
    preconditioner : {'standardize'} or None
        ``preconditioner_``: dense X trained as if standardised, same objective.
    average_start : int
        Samples after which the iterates are averaged; 0 never.
    automatic_average : bool
        The average is the automatic one (``average`` left at False): weighted by
        sample count, and kept after the fit only where it lowers the objective.
    step_scaling : bool
        A batch's step grows with its rows (``scale_learning_rate``).
    engine : Engine or None
        What runs the epochs (set by :func:`finish_plan`).
    engine_note : str or None
        Why the CUDA kernels do not train a fit that asked for them (warned once).
    statistics : BatchStatistics or None
        The host measurements the automatic batch size took, reused by the fit.
    """

    namespace: Any
    data_namespace: Any
    n_train: int
    batch_size: int
    chunk_rows: int | None
    compute_dtype: Any
    half_precision: bool
    sparse: bool
    continuing: bool
    preconditioner: str | None = None
    average_start: int = 0
    automatic_average: bool = False
    step_scaling: bool = True
    engine: Any = None
    engine_note: str | None = None
    statistics: BatchStatistics | None = None

    def __str__(self) -> str:
        lines = ["FitPlan("]
        for item in fields(self):
            if item.name == "statistics":
                continue
            value = getattr(self, item.name)
            if item.name in ("namespace", "data_namespace"):
                value = value.__name__
            elif item.name == "compute_dtype":
                value = str(value).rsplit(".", 1)[-1].strip("'>")
            elif item.name == "engine":
                value = type(value).__name__ if value is not None else None
            lines.append(f"    {item.name}={value!r},")
        return "\n".join([*lines, ")"])


# ---------------------------------------------------------------- first stage
def stored_as_its_values(estimator, X, continuing: bool, n_train: int):
    """X in the storage its values call for, when the fit's choices are automatic.

    With ``batch_size='auto'`` and ``preconditioner='auto'`` what is decided
    for the fit (batch size, preconditioning, averaging, the intercept's
    damping) follows the data, not its container: X whose share of non-zero
    values is below :data:`SPARSE_DENSITY` trains as CSR (the lazy sparse
    engine, scikit-learn's sparse rules), denser X as a dense array, so that
    dense and CSR copies of the same X give the same model. A stream keeps
    the storage of its first call (``_training_storage``). Host NumPy / SciPy and
    CuPy / cupyx X only; half precision stays dense (no sparse half precision).

    Where the automatic batch is one row (fewer than 32 training rows, or a stream
    whose first call had them) the fit is scikit-learn's own per-sample algorithm,
    and the container keeps scikit-learn's meaning (the sparse intercept damping).
    """
    if estimator.batch_size != "auto" or estimator.preconditioner != "auto":
        return X
    one_row = (
        getattr(estimator, "batch_size_", None) == 1
        if continuing
        else auto_batch_is_one_row(n_train)
    )
    if one_row:
        return X
    host = isinstance(X, np.ndarray) or sp.issparse(X)
    if not (host or is_cupy_array(X) or is_cupy_sparse(X)):
        return X
    values = X.data if is_sparse(X) else X
    if dtype_name(values) in HALF_DTYPES:
        return X
    if continuing and hasattr(estimator, "_training_storage"):
        storage = estimator._training_storage
    else:
        storage = "sparse" if value_density(X) < SPARSE_DENSITY else "dense"
        estimator._training_storage = storage
    if storage == "sparse" and not is_sparse(X):
        if host:
            return sp.csr_matrix(X)
        import cupyx.scipy.sparse as cupy_sparse

        return cupy_sparse.csr_matrix(X)
    if storage == "dense" and is_sparse(X):
        return X.toarray()
    return X


def value_density(X) -> float:
    """The share of X's entries that are non-zero, dense or sparse (1 for empty X)."""
    size = int(X.shape[0]) * int(X.shape[1])
    if size == 0:
        return 1.0
    values = X.data if is_sparse(X) else X
    xp = np if isinstance(values, np.ndarray) else namespace_of(values)
    nonzero = np.count_nonzero(values) if xp is np else int(xp.count_nonzero(values))
    return float(nonzero) / size


def plan_fit(estimator, X, y, xp, *, partial, fitted, classes, has_sample_weight):
    """``(plan, X)``: the decisions that come before the data is converted (see
    :class:`FitPlan`), and X in the storage the plan chose (:func:`stored_as_its_values`).

    ``X`` and ``y`` are validated, in their own namespace; ``xp`` is the compute
    namespace the call resolved; ``fitted`` says whether a previous call left a
    state (a ``partial_fit`` stream continues it).
    """
    continuing = partial and fitted
    n_train = int(X.shape[0])
    if estimator.early_stopping and not partial:
        n_train -= int(np.ceil(estimator.validation_fraction * n_train))
    X = stored_as_its_values(estimator, X, continuing, n_train)
    batch_size, statistics = batch_size_for(estimator, xp, n_train, continuing, X)
    chunk_rows = chunk_rows_for(estimator, xp, X, y, classes, has_sample_weight, batch_size)
    data_xp = xp if chunk_rows is None else np
    sparse = is_sparse(X)
    storage = dtype_name(X.data if sparse else X)
    compute_dtype = compute_dtype_of(data_xp, X)
    if continuing and compute_dtype != estimator._state.coef.dtype:
        # a stream keeps the dtype of its first chunk: later chunks are converted
        compute_dtype = estimator._state.coef.dtype
    if continuing:
        preconditioner = estimator.preconditioner_
        average_start = int(estimator.average) or getattr(estimator, "_auto_average_start", 0)
        automatic = not estimator.average and average_start > 0
    else:
        preconditioner = preconditioner_for(estimator, batch_size, sparse)
        automatic = averages_automatically(estimator, batch_size, sparse)
        average_start = int(estimator.average) or (n_train if automatic else 0)
    plan = FitPlan(
        namespace=xp,
        data_namespace=data_xp,
        n_train=n_train,
        batch_size=batch_size,
        chunk_rows=chunk_rows,
        compute_dtype=compute_dtype,
        half_precision=storage in HALF_DTYPES,
        sparse=sparse,
        continuing=continuing,
        preconditioner=preconditioner,
        average_start=average_start,
        automatic_average=automatic,
        step_scaling=bool(estimator.scale_learning_rate),
        statistics=statistics,
    )
    return plan, X


def batch_size_for(estimator, xp, n_samples: int, continuing: bool, X=None):
    """``(batch_size, statistics)``: ``batch_size``, or the 'auto' choice for this data.

    On the CPU, where the compiled epoch runs every epoch of the fit, the choice
    follows the data's critical batch size (see :func:`._core.scaling.auto_batch_size`);
    what it measured is returned for the fit to reuse.
    """
    if estimator.batch_size != "auto":
        return int(estimator.batch_size), None
    if continuing and hasattr(estimator, "batch_size_"):
        # partial_fit keeps the batch size of its first call: chunks of a stream differ
        return estimator.batch_size_, None
    on_gpu = is_cupy_namespace(xp)
    if X is None or xp is not np or not compiled_covers_fit(estimator, X):
        return auto_batch_size(n_samples, on_gpu), None
    statistics = measure_batch_statistics(estimator, X)
    kind = "sparse" if sp.issparse(X) else "dense"
    batch = auto_batch_size(
        n_samples,
        on_gpu,
        critical_batch=statistics.scaling.critical_batch_size,
        min_batch=COMPILED_MIN_BATCH[kind],
    )
    return batch, statistics


def compiled_covers_fit(estimator, X) -> bool:
    """Whether the compiled CPU epoch runs every epoch of this fit on host ``X``."""
    loss = make_loss(estimator.loss, float(estimator.epsilon), multinomial=estimator._multinomial)
    return compiled.covers(estimator._optimizer_config(), loss, X)


def measure_batch_statistics(estimator, X) -> BatchStatistics:
    """The batch gain of X's rows as the steps will see them (standardised or not)."""
    sparse = sp.issparse(X)
    mean = inv_scale = None
    if not sparse and estimator.preconditioner in ("auto", "standardize"):
        mean, inv_scale = feature_statistics(
            np, X, compute_dtype_of(np, X), centre=bool(estimator.fit_intercept)
        )
    scaling = measure_scaling(
        X,
        bool(estimator.fit_intercept),
        mean,
        inv_scale,
        intercept_scale=SPARSE_INTERCEPT_SCALE if sparse else 1.0,
        second_moment=compiled.sampled_second_moment,
    )
    return BatchStatistics(X, mean, inv_scale, scaling)


def averages_automatically(estimator, batch_size: int, sparse: bool) -> bool:
    """Whether an automatic batch also averages the iterates after the first epoch.

    A minibatch step stays at the batch's largest stable step for many
    epochs (see :mod:`._core.scaling`), where the last iterate keeps oscillating;
    the running mean of the iterates (Polyak and Juditsky 1992), from the
    second epoch on, removes that noise. Only when ``batch_size='auto'``
    picks more than one row, ``average`` is left at False and X is dense
    (on sparse X the average is not lazy: it would cost O(n_features) a step).
    """
    return (
        estimator.batch_size == "auto" and batch_size > 1 and not estimator.average and not sparse
    )


def preconditioner_for(estimator, batch_size: int, sparse: bool):
    """'standardize' or None: 'auto' standardises dense X when the batch size is automatic."""
    if estimator.preconditioner != "auto":
        return estimator.preconditioner
    if estimator.batch_size == "auto" and batch_size > 1 and not sparse:
        return "standardize"
    return None


def chunk_rows_for(estimator, xp, X, y, classes, has_sample_weight, batch_size):
    """Rows per streamed chunk when host ``X`` does not fit on the device, else None.

    The budget is ``max_device_memory`` when set, else (CuPy only) a share of
    the free device memory; NumPy without a cap and device input never stream.
    """
    if is_device_array(X) or not (xp is np or is_cupy_namespace(xp)):
        return None
    budget = estimator.max_device_memory
    if budget is None:
        budget = free_device_bytes(xp)
        if budget is None:
            return None
        budget = int(budget * FREE_MEMORY_SHARE)
    if data_bytes(X) * 4 <= budget:
        # far below the budget: skip counting the classes (a sort of y)
        return None
    if estimator._is_classifier_estimator:
        known = classes if classes is not None else getattr(estimator, "classes_", None)
        n_classes = len(np.unique(to_namespace(y, np))) if known is None else len(known)
        n_outputs = 1 if n_classes <= 2 else n_classes
    else:
        n_outputs = 1
    itemsize = np.dtype(compute_dtype_of(np, X)).itemsize
    return plan_chunk_rows(X, n_outputs, itemsize, int(batch_size), budget, has_sample_weight)


def compute_dtype_of(xp, X):
    """float64 and float32 stay; half precision computes with float32 master weights."""
    name = dtype_name(X.data if is_sparse(X) else X)
    if name in HALF_DTYPES:
        return xp.float32
    return getattr(xp, name)


# --------------------------------------------------------------- second stage
def finish_plan(plan: FitPlan, estimator, state: TrainingState, data: TrainingData) -> EngineConfig:
    """Measure what the plan's decisions need, pick the engine; the fit's config.

    A first call standardises the state's weights when the plan says so (feature
    statistics of the training rows, reused from the batch-size measurement where it
    saw the same rows) and measures the batch step's statistics; a continuing
    ``partial_fit`` keeps the state's. The engine: the CUDA kernels where the input
    asks for them and they can take the fit (else the array-API engine, with
    ``engine_note`` saying why), the streaming engine for host data larger than the
    device.
    """
    xp = plan.namespace
    config = estimator._engine_config(
        plan.compute_dtype if plan.half_precision else None, plan.sparse
    )
    if not plan.continuing:
        standardize = plan.preconditioner == "standardize"
        known = plan.statistics
        if known is not None and not known.describes(data.X, standardize):
            known = None
        if standardize:
            mean, inv_scale = (
                (known.mean, known.inv_scale)
                if known is not None
                else feature_statistics(
                    plan.data_namespace,
                    data.X,
                    plan.compute_dtype,
                    centre=bool(estimator.fit_intercept),
                )
            )
            state.precondition(to_namespace(mean, xp), to_namespace(inv_scale, xp))
        state.scaling = (
            known.scaling
            if known is not None
            else measure_scaling(
                data.X,
                bool(estimator.fit_intercept),
                state.feature_mean,
                state.feature_inv_scale,
                intercept_scale=config.intercept_scale,
                second_moment=compiled.sampled_second_moment,
            )
        )
    plan.statistics = None  # measured once; the plan keeps no reference to X
    config = replace(
        config,
        batch_size=plan.batch_size,
        scaling=state.scaling if plan.step_scaling else None,
        average_start=plan.average_start,
        average_decay=AUTO_AVERAGE_DECAY if plan.automatic_average else 0.0,
        # an automatic choice: sparse-valued rows (see stored_as_its_values) share few
        # features, so a batch of them steps at least gain(m) per-sample rates
        gain_floor=plan.sparse and estimator.batch_size == "auto",
    )
    plan.engine, plan.engine_note = engine_for(plan, xp, data, config)
    return config


def engine_for(plan: FitPlan, xp, data: TrainingData, config: EngineConfig):
    """``(engine, note)``: what runs the epochs, and why the kernels do not, if asked."""
    if plan.chunk_rows is not None:
        return StreamingEngine(plan.chunk_rows), None
    reference = ArrayApiEngine()
    if not kernels_wanted(xp):
        return reference, None
    reason = fused_reason(xp, data, config)
    if reason is not None:
        return reference, reason
    return CudaEngine(fallback=reference), None


def trains_candidates_together(estimator, X, xp) -> bool:
    """Whether a batched search trains this candidate's group as one fit (else one by one).

    Together wherever the fit would run the array-API epoch anyway (CuPy and other
    device namespaces, softmax models, options the compiled epoch lacks): one pass
    over the rows then serves every candidate. Not where the compiled C epoch covers
    the fit on NumPy: it runs a whole epoch in C, faster than the array-API epoch over
    all candidates' columns (which steps from Python), until the C epoch takes
    per-column numbers itself.
    """
    if getattr(estimator, "multi_class", None) == "multinomial":
        return True  # the softmax (more than two classes) has no compiled epoch
    return not (xp is np and compiled_covers_fit(estimator, X) and compiled.available())


def batched_engine(plan: FitPlan) -> ArrayApiEngine:
    """The engine of a batched search's group (candidates as column blocks of one fit).

    The array-API epoch (:mod:`._engines.reference` for dense X, :mod:`._engines.sparse`
    for CSR), in the plan's namespace: NumPy on the CPU, CuPy on the GPU. Its numbers
    broadcast per column; the compiled C epoch and the CUDA kernels take one value
    of each number per fit, so they train a group only when it has one candidate.
    """
    epoch = sparse_epoch if plan.sparse else dense_epoch
    return ArrayApiEngine(epoch_runner=epoch)


def warn_engine_note(plan: FitPlan) -> None:
    """The one warning of a fit the kernels were asked for and cannot take."""
    if plan.engine_note is not None:
        warn_fallback(plan.engine_note)
