"""The CPU engine's compiled epoch: the NumPy step in C, one call per epoch.

The reference engine (:mod:`._engine`, :mod:`._sparse`) costs about thirty
NumPy calls per step, whatever the batch: tens of microseconds of overhead
that dominate small batches, few features and sparse rows, where
scikit-learn's per-sample Cython loop spends well under a microsecond a row.
``sgd_cpu.c`` (beside this module) runs the same step, operation for operation, over
a whole epoch in one call (arithmetic in float64, weights stored in their own
dtype), so the CPU pays the cost of the rows, not of Python.

It covers what the estimators' defaults and most fits use: every loss but the
multinomial one, every schedule, L2/L1/elasticnet, decoupled weight decay,
class and sample weights, averaging, preconditioning, dense float32/float64 and
CSR. Momentum, gradient clipping, half-precision X and the multinomial loss run
in NumPy (:func:`unsupported_reason` names why). ``SK_GPUSGD_COMPILED=0`` turns
the compiled epoch off, and a build without a C compiler leaves it out; the
NumPy engine then runs everything, with the same results up to rounding.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os

import numpy as np
import scipy.sparse as sp

from ..._core.types import EpochTotals

ENV_SWITCH = "SK_GPUSGD_COMPILED"
# codes of sgd_cpu.c's enums
LOSS_CODES = {
    "hinge": 0,
    "perceptron": 0,
    "squared_hinge": 1,
    "log_loss": 2,
    "modified_huber": 3,
    "squared_error": 4,
    "huber": 5,
    "epsilon_insensitive": 6,
    "squared_epsilon_insensitive": 7,
}
SCHEDULE_CODES = {
    "constant": 0,
    "optimal": 1,
    "invscaling": 2,
    "adaptive": 3,
    "pa1": 4,
    "pa2": 5,
}
COMPILED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_int64 = ctypes.c_int64
_double = ctypes.c_double
_pointer = ctypes.c_void_p


class _Config(ctypes.Structure):
    """``SgdConfig`` of sgd_cpu.c."""

    _fields_ = [
        (name, _int64)
        for name in (
            "n_samples",
            "n_features",
            "n_outputs",
            "batch_size",
            "average_start",
            "loss",
            "schedule",
            "fit_intercept",
            "scaled",
            "with_penalty",
            "bounded",
            "pa_sign_from_target",
        )
    ] + [
        (name, _double)
        for name in (
            "loss_parameter",
            "eta0",
            "alpha",
            "power_t",
            "optimal_offset",
            "mean_squared_norm",
            "top_eigenvalue",
            "curvature",
            "l2",
            "l1",
            "decay",
            "intercept_scale",
            "average_decay",
            "gain_floor",
        )
    ]


class _Arrays(ctypes.Structure):
    """``SgdArrays`` of sgd_cpu.c: pointers, NULL for an absent array."""

    _fields_ = [
        (name, _pointer)
        for name in (
            "X_data",
            "X_indices",
            "X_indptr",
            "order",
            "targets",
            "sample_weight",
            "positive_weight",
            "negative_weight",
            "mask",
            "coef",
            "intercept",
            "adaptive_eta",
            "mean",
            "inv_scale",
            "average_coef",
            "average_intercept",
            "l1_applied",
            "l1_total",
            "loss_total",
            "penalty_total",
            "counters",
            "loss_product",
        )
    ]


@functools.lru_cache(maxsize=1)
def _library():
    """The built extension as a ctypes library, or None where it was not built."""
    spec = importlib.util.find_spec("sk_gpusgd._engines.compiled._sgd_cpu")
    if spec is None or not spec.origin:
        return None
    try:
        library = ctypes.CDLL(spec.origin)
    except OSError:
        return None
    try:
        _declare(library)
    except AttributeError:  # a build older than this module (an editable install not rebuilt)
        return None
    return library


def _declare(library) -> None:
    """The argument and result types of the library's functions."""
    library.sgd_epoch.argtypes = [ctypes.POINTER(_Config), ctypes.POINTER(_Arrays), _int64, _int64]
    library.sgd_epoch.restype = ctypes.c_int
    library.sgd_permutation.argtypes = [ctypes.POINTER(ctypes.c_uint64), _int64, _pointer]
    library.sgd_permutation.restype = None
    moment = library.sgd_sampled_second_moment
    moment.argtypes = [_pointer] * 4 + [_int64] * 3 + [_double] + [_pointer] * 3
    moment.restype = None


def _epoch_function():
    """``sgd_epoch`` of the built extension, or None where it was not built."""
    library = _library()
    return None if library is None else library.sgd_epoch


def permutation_source(random_state: np.random.RandomState):
    """``next(n) -> order``: a fresh permutation per call, shuffled in C; None if not built.

    One 64-bit seed is drawn from ``random_state``; the orders then follow from
    it (Fisher-Yates over SplitMix64), about four times faster than
    ``RandomState.permutation``. Used whatever ``SK_GPUSGD_COMPILED`` says, so
    that the compiled and the NumPy epochs see the same orders.
    """
    library = _library()
    if library is None:
        return None
    state = ctypes.c_uint64(int(random_state.randint(np.iinfo(np.int64).max, dtype=np.int64)))

    def next_permutation(n: int):
        order = np.empty(n, dtype=np.int64)
        library.sgd_permutation(ctypes.byref(state), n, order.ctypes.data)
        return order

    return next_permutation


def sampled_second_moment(X, stride: int, intercept: float):
    """``(n_rows, times, sum_of_squares)`` of the CSR rows ``0, stride, 2 stride, ...`` of X.

    The batch-size statistics of :func:`sk_gpusgd._core.scaling.measure_scaling`, read in
    place from host CSR arrays (no sampled copy): ``times(v)`` is ``E[x x^T]
    v`` for ``x = [row, intercept]``, ``sum_of_squares()`` the rows' sum of
    squared values (summed by each call of ``times``). None where the
    extension is not built or X is not a float32/float64 NumPy CSR matrix with
    int32 column indices. Like the shuffle, used whatever
    ``SK_GPUSGD_COMPILED`` says, so that both engines see the same statistics.
    """
    library = _library()
    if (
        library is None
        or not sp.issparse(X)
        or X.format != "csr"
        or not isinstance(X.data, np.ndarray)
        or X.dtype not in COMPILED_DTYPES
        or X.indices.dtype != np.int32
    ):
        # 64-bit indices would need a copy of all of them: NumPy copies the sampled rows only
        return None
    data = np.ascontiguousarray(X.data)
    indices = np.ascontiguousarray(X.indices)
    starts = np.ascontiguousarray(X.indptr[:-1:stride], dtype=np.int64)
    ends = np.ascontiguousarray(X.indptr[1::stride], dtype=np.int64)
    n_rows, n_features = len(starts), X.shape[1]
    squares = ctypes.c_double(0.0)

    def times(vector):
        vector = np.ascontiguousarray(vector, dtype=np.float64)
        if vector.shape != (n_features + 1,):
            raise ValueError(f"expected a vector of {n_features + 1} values; got {vector.shape}")
        image = np.empty(n_features + 1)
        library.sgd_sampled_second_moment(
            data.ctypes.data,
            indices.ctypes.data,
            starts.ctypes.data,
            ends.ctypes.data,
            n_rows,
            n_features,
            int(data.dtype == np.float32),
            float(intercept),
            vector.ctypes.data,
            image.ctypes.data,
            ctypes.byref(squares),
        )
        return image

    return n_rows, times, lambda: squares.value


def available() -> bool:
    """Whether the compiled epoch is built and not turned off."""
    return os.environ.get(ENV_SWITCH, "1") != "0" and _epoch_function() is not None


def option_reason(optimizer, loss) -> str | None:
    """Which of the fit's options the compiled epoch leaves to NumPy, or None."""
    if optimizer.uses_momentum:
        return "momentum"
    if optimizer.clip_norm is not None or optimizer.clip_value is not None:
        return "gradient clipping"
    if loss.name not in LOSS_CODES or loss.joint:
        return "the multinomial loss"
    return None


def covers(optimizer, loss, X) -> bool:
    """Whether every epoch of a fit with these options on host ``X`` runs compiled."""
    values = X.data if sp.issparse(X) else X
    return (
        available()
        and isinstance(values, np.ndarray)
        and values.dtype in COMPILED_DTYPES
        and option_reason(optimizer, loss) is None
    )


def unsupported_reason(xp, state, data, config) -> str | None:
    """Why this epoch must run in NumPy, or None when the compiled epoch can run it."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"turned off by {ENV_SWITCH}=0"
    if _epoch_function() is None:
        return "the compiled extension sk_gpusgd._engines.compiled._sgd_cpu is not built"
    if xp is not np:
        return "not NumPy data"
    reason = option_reason(config.optimizer, config.loss)
    if reason is not None:
        return reason
    if config.compute_dtype is not None:
        return "half-precision X"
    coef = state.coef
    if not isinstance(coef, np.ndarray) or coef.dtype not in COMPILED_DTYPES:
        return "weights that are not float32/float64 NumPy arrays"
    X = data.X
    if sp.issparse(X):
        if X.format != "csr" or X.dtype != coef.dtype or state.preconditioned:
            return "sparse X that is not CSR in the weights' dtype"
        if X.shape[1] >= 2**31:
            return "more than 2**31 - 1 sparse columns"
    elif not isinstance(X, np.ndarray) or X.dtype != coef.dtype or X.ndim != 2:
        return "X that is not a NumPy array in the weights' dtype"
    return None


def _pointer_of(array) -> int | None:
    return None if array is None else array.ctypes.data


def _contiguous(array, dtype):
    """A C-contiguous array of ``dtype`` (itself when it already is one), or None."""
    if array is None:
        return None
    return np.ascontiguousarray(array, dtype=dtype)


class _FixedInputs:
    """What a fit's epochs pass to C unchanged: X's arrays, targets, weights, the config.

    Built once per fit (``memo``) rather than every epoch: the int64 row pointers
    of a CSR matrix with int32 ones are a copy, and every pointer and the config
    struct cost microseconds of Python each.
    """

    def __init__(self, data, config, dtype):
        self.data, self.config, self.dtype = data, config, dtype
        X = data.X
        self.sparse = sp.issparse(X)
        if self.sparse:
            # column indices as int32 (n_features < 2**31), row pointers as int64: one loop in C
            X_arrays = (
                np.ascontiguousarray(X.data),
                np.ascontiguousarray(X.indices, dtype=np.int32),
                np.ascontiguousarray(X.indptr, dtype=np.int64),
            )
        else:
            X_arrays = (np.ascontiguousarray(X), None, None)
        weights = (data.targets, data.sample_weight, data.positive_weight, data.negative_weight)
        # kept alive with this object: the pointers below point into them
        self.arrays = X_arrays + tuple(_contiguous(array, dtype) for array in weights)
        self.pointers = tuple(_pointer_of(array) for array in self.arrays)
        self.cfg = _config(data, config)

    def serves(self, data, config, dtype) -> bool:
        return self.data is data and self.config is config and self.dtype == dtype


# ctypes wraps a Python int that does not fit its field silently (2**64 becomes 0).
_INT64_MAX = 2**63 - 1
# A sample count no fit reaches: averaging that starts later never starts.
_NEVER = 2**62


def _int64_field(name: str, value) -> int:
    """``value`` for an int64 field of ``SgdConfig``; a ValueError where it would wrap."""
    value = int(value)
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise ValueError(f"{name}={value} does not fit the compiled epoch's 64-bit integers")
    return value


def _config(data, config) -> _Config:
    """The ``SgdConfig`` of a fit; every integer checked or clamped on its way into C."""
    loss, schedule, scaling, opt = config.loss, config.schedule, config.scaling, config.optimizer
    n_samples = _int64_field("n_samples", data.n_samples)
    return _Config(
        n_samples=n_samples,
        n_features=_int64_field("n_features", data.X.shape[1]),
        n_outputs=_int64_field("n_outputs", data.targets.shape[1]),
        # a batch larger than the data is the data (one step per epoch either way)
        batch_size=max(1, min(int(config.batch_size), n_samples)),
        average_start=min(int(config.average_start), _NEVER),
        loss=LOSS_CODES[loss.name],
        schedule=SCHEDULE_CODES[schedule.kind],
        fit_intercept=int(config.fit_intercept),
        scaled=int(scaling is not None),
        with_penalty=int(EpochTotals(config).with_penalty),
        bounded=int(loss.bounded),
        pa_sign_from_target=int(loss.name == "hinge"),
        loss_parameter=float(getattr(loss, "threshold", getattr(loss, "epsilon", 0.0))),
        eta0=float(schedule.eta0),
        alpha=float(schedule.alpha),
        power_t=float(schedule.power_t),
        optimal_offset=float(schedule.optimal_offset),
        mean_squared_norm=0.0 if scaling is None else float(scaling.mean_squared_norm),
        top_eigenvalue=0.0 if scaling is None else float(scaling.top_eigenvalue),
        curvature=float(loss.curvature),
        l2=float(opt.l2),
        l1=float(opt.l1),
        decay=float(opt.decoupled_decay),
        intercept_scale=float(config.intercept_scale),
        average_decay=float(config.average_decay),
        gain_floor=float(config.gain_floor),
    )


def compiled_epoch(xp, state, data, config, order, frozen, memo=None) -> EpochTotals:
    """One pass over the rows in ``order``, in C; the engine's epoch signature.

    Updates ``state`` as the NumPy pass would and returns the epoch's totals.
    ``memo``, a dict kept for the whole fit, keeps the inputs that do not
    change between its epochs.
    """
    coef = state.coef
    dtype = coef.dtype
    n_outputs = coef.shape[1]
    opt = config.optimizer
    fixed = None if memo is None else memo.get("compiled")
    if fixed is None or not fixed.serves(data, config, dtype):
        fixed = _FixedInputs(data, config, dtype)
        if memo is not None:
            memo["compiled"] = fixed
    totals = EpochTotals(config)
    # the C code writes in place: the state's arrays must be contiguous and its own
    state.coef = coef = np.ascontiguousarray(coef)
    state.intercept = intercept = np.ascontiguousarray(state.intercept, dtype=dtype)
    if opt.l1 and state.l1_applied is None:
        state.l1_applied = np.zeros_like(coef)
    l1_total = np.ascontiguousarray(np.broadcast_to(state.l1_total, (n_outputs,)), np.float64)
    if config.average_start and state.average_coef is None:
        if state.samples_seen + data.n_samples >= config.average_start:
            state.average_coef = np.zeros_like(coef)
            state.average_intercept = np.zeros_like(intercept)
    for name in ("average_coef", "average_intercept", "l1_applied"):
        value = getattr(state, name)
        if value is not None:
            setattr(state, name, np.ascontiguousarray(value, dtype=dtype))
    counters = np.array([state.samples_seen, state.steps, state.n_averaged], dtype=np.int64)
    loss_total = np.zeros(n_outputs)
    penalty_total = np.zeros(n_outputs)
    # log loss: the C epoch multiplies the rows' 1 + exp(-|z|) here; its log joins the total
    loss_product = np.ones(n_outputs)
    adaptive = None
    if config.schedule.kind == "adaptive" and state.adaptive_eta is not None:
        adaptive = np.asarray(state.adaptive_eta, dtype=np.float64)
    keep = []  # the arrays whose pointers the call uses, alive until it returns

    def address(array):
        keep.append(array)
        return _pointer_of(array)

    X_data, X_indices, X_indptr, targets, sample_weight, positive, negative = fixed.pointers
    arrays = _Arrays(
        X_data=X_data,
        X_indices=X_indices,
        X_indptr=X_indptr,
        order=address(None if order is None else np.ascontiguousarray(order, dtype=np.int64)),
        targets=targets,
        sample_weight=sample_weight,
        positive_weight=positive,
        negative_weight=negative,
        mask=address(_contiguous(frozen.mask, dtype)),
        coef=address(coef),
        intercept=address(intercept),
        adaptive_eta=address(adaptive),
        mean=address(_contiguous(state.feature_mean, dtype)),
        inv_scale=address(_contiguous(state.feature_inv_scale, dtype)),
        average_coef=address(state.average_coef),
        average_intercept=address(state.average_intercept),
        l1_applied=address(state.l1_applied),
        l1_total=address(l1_total),
        loss_total=address(loss_total),
        penalty_total=address(penalty_total),
        counters=address(counters),
        loss_product=address(loss_product),
    )
    cfg = fixed.cfg
    status = _epoch_function()(
        ctypes.byref(cfg), ctypes.byref(arrays), int(dtype == np.float32), int(fixed.sparse)
    )
    if status != 0:
        raise MemoryError("the compiled SGD epoch could not allocate its work buffers")
    state.samples_seen, state.steps, state.n_averaged = (int(value) for value in counters)
    if opt.l1:
        # one total per column; a float while every column shares one rate
        same = np.all(l1_total == l1_total[0])
        state.l1_total = float(l1_total[0]) if same and np.ndim(state.l1_total) == 0 else l1_total
    totals.loss = (loss_total + np.log(loss_product)).astype(dtype)
    if totals.with_penalty:
        totals.penalty = penalty_total.astype(dtype)
    return totals
