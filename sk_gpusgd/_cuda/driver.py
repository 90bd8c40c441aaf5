"""The CUDA engine's epoch driver: same contract as :func:`sk_gpusgd._engine.run`.

Per dense step two kernel launches (``sgd_forward``, ``sgd_update``), no allocation and no
host synchronisation; per epoch one more launch (``sgd_end_epoch``) and one host read of
a small summary (loss per column, penalty terms, a finiteness probe, the clock). Every
value that changes between steps lives in device memory, so the steps of an epoch are
captured once per fit as CUDA graphs (a chunk of ``CHUNK_STEPS`` steps and a remainder)
and replayed every epoch. Single ``partial_fit`` calls and tiny fits launch the same
kernels eagerly; ``SK_GPUSGD_CUDA_GRAPHS=0`` turns graphs off for debugging.

Rows are shuffled on the device: by default with a keyed Feistel bijection of the row
positions (no memory, no per-epoch work), so CuPy's row order differs from NumPy's; with
``SK_GPUSGD_CUDA_SHUFFLE=order`` from a device permutation drawn outside the graph per
epoch by the reference engine's permutation source (the emulated backend's default, so
that it reproduces the reference engine's row order exactly).

Fused: every loss, the passive-aggressive rates, every schedule (adaptive: its rate is in
device memory and the host changes it between epochs), sample and class weights, coupled
L2 and decoupled decay, momentum, dampening and Nesterov in both forms, clipping by value
and by global norm (the update then runs as one block), cumulative L1, averaging, float32
and float64, float16 / bfloat16 X with float32 master weights, any number of outputs.

Sparse CSR X runs on its own kernels (:class:`SparseFusedFit`): three launches per step
and the reference engine's lazy updates (weight scale, pending L1, momentum on the touched
columns), with no host work per batch.

Not fused, and trained by the reference engine instead (same results, slower);
:func:`fused_reason` names the reason:

- averaging or ``clip_norm`` with sparse X;
- a dense row too wide for one block's shared memory (more than about 12,000 float32
  features, 6,000 float64);
- any namespace other than CuPy (NumPy too, unless ``SK_GPUSGD_CUDA_EMULATE=1`` asks for
  the CPU emulation of the kernels, which the tests use).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import is_cupy_namespace, is_sparse
from .._engine import DivergenceError, RunReport, permutation_source
from .._schedules import ADAPTIVE_DIVISOR, MIN_ADAPTIVE_ETA
from .._validation import dtype_name
from . import launcher

ENV_GRAPHS = "SK_GPUSGD_CUDA_GRAPHS"
ENV_SHUFFLE = "SK_GPUSGD_CUDA_SHUFFLE"
ENV_EMULATE = "SK_GPUSGD_CUDA_EMULATE"
CHUNK_STEPS = 64
# Fits with fewer steps than this run eagerly: capturing would cost more than it saves.
MIN_GRAPH_STEPS = 2 * CHUNK_STEPS
MAX_SHARED_BYTES = 48 * 1024
MAX_ROWS_PER_BLOCK = 32
# Forward blocks a batch is cut into, at least (fewer rows per block for small batches):
# more blocks read X faster, fewer write fewer partial gradients. To be tuned on a GPU.
TARGET_FORWARD_BLOCKS = 64

LOSS_IDS = {
    "hinge": "LOSS_HINGE",
    "perceptron": "LOSS_HINGE",
    "log_loss": "LOSS_LOG",
    "modified_huber": "LOSS_MODIFIED_HUBER",
    "squared_hinge": "LOSS_SQUARED_HINGE",
    "squared_error": "LOSS_SQUARED_ERROR",
    "huber": "LOSS_HUBER",
    "epsilon_insensitive": "LOSS_EPSILON_INSENSITIVE",
    "squared_epsilon_insensitive": "LOSS_SQUARED_EPSILON_INSENSITIVE",
}
SCHEDULE_IDS = {
    "constant": "SCHEDULE_CONSTANT",
    "optimal": "SCHEDULE_OPTIMAL",
    "invscaling": "SCHEDULE_INVSCALING",
    "adaptive": "SCHEDULE_ADAPTIVE",
    "pa1": "SCHEDULE_PA1",
    "pa2": "SCHEDULE_PA2",
}
STORAGE_DTYPES = {"float16", "bfloat16", "float32", "float64"}


@dataclass(frozen=True)
class LaunchPlan:
    """Grid shapes of one fit (fixed, so the launches can be captured)."""

    threads: int
    rows_per_block: int
    blocks: int
    forward_shared: int
    update_grid: int
    update_threads: int
    update_shared: int
    end_threads: int


def make_plan(
    n_samples,
    n_features,
    n_outputs,
    batch_size,
    itemsize,
    clip_norm,
    threads,
    max_rows_per_block=MAX_ROWS_PER_BLOCK,
):
    """Rows per block and grids; None when one row does not fit in shared memory."""
    batch = min(batch_size, n_samples)
    rows = min(max_rows_per_block, batch, max(4, -(-batch // TARGET_FORWARD_BLOCKS)))
    while rows > 0:
        shared = launcher.forward_shared_bytes(rows, n_features, n_outputs, threads, itemsize)
        if shared <= MAX_SHARED_BYTES:
            break
        rows //= 2
    if rows == 0:
        return None
    total = n_features * n_outputs + n_outputs
    return LaunchPlan(
        threads=threads,
        rows_per_block=rows,
        blocks=-(-batch // rows),
        forward_shared=shared,
        update_grid=1 if clip_norm else max(1, min(-(-total // threads), 1024)),
        update_threads=threads,
        update_shared=threads * itemsize if clip_norm else 0,
        end_threads=threads,
    )


def fused_reason(xp, data, config) -> str | None:
    """Why this fit cannot run on the kernels (None when it can)."""
    compute = dtype_name(data.targets)
    if compute not in launcher.COMPUTE_DTYPES:
        return f"compute dtype {compute} has no kernel"
    if is_sparse(data.X):
        return sparse_fused_reason(data, config)
    storage = dtype_name(data.X)
    if storage not in STORAGE_DTYPES:
        return f"X of dtype {storage} has no kernel"
    n, d = data.X.shape
    itemsize = 8 if compute == "float64" else 4
    plan = make_plan(n, d, int(data.targets.shape[1]), config.batch_size, itemsize, False, 32)
    if plan is None:
        return f"a row of {d} features does not fit in one block's shared memory"
    return None


def sparse_plan(batch_size, n_samples, n_outputs, itemsize, threads, max_rows=MAX_ROWS_PER_BLOCK):
    """(rows per block, blocks, shared bytes) of the sparse forward; None when it cannot fit."""
    rows = min(max_rows, batch_size, n_samples)
    while rows > 0 and launcher.sparse_forward_shared_bytes(rows, n_outputs, itemsize) > (
        MAX_SHARED_BYTES
    ):
        rows //= 2
    if rows == 0:
        return None
    blocks = -(-min(batch_size, n_samples) // rows)
    return rows, blocks, launcher.sparse_forward_shared_bytes(rows, n_outputs, itemsize)


def sparse_fused_reason(data, config) -> str | None:
    """Why a CSR fit cannot run on the sparse kernels (None when it can)."""
    if config.average_start:
        return "averaging on sparse X is trained by the reference engine"
    if config.optimizer.clip_norm is not None:
        return "clip_norm on sparse X is trained by the reference engine"
    if dtype_name(data.X.data) != dtype_name(data.targets):
        return "sparse X values must have the compute dtype"
    if data.X.nnz >= 2**31 or data.X.shape[1] >= 2**31:
        return "sparse X too large for 32-bit indices"
    itemsize = data.targets.dtype.itemsize
    plan = sparse_plan(config.batch_size, data.X.shape[0], int(data.targets.shape[1]), itemsize, 32)
    if plan is None:
        return "too many outputs for one block's shared memory"
    return None


def select_engine(xp, data, config, reference):
    """The CUDA driver for CuPy (or emulated NumPy) input it can fuse, else ``reference``."""
    if fused_reason(xp, data, config) is not None:
        return reference
    if is_cupy_namespace(xp):
        return run
    if xp is np and os.environ.get(ENV_EMULATE) == "1":
        return run
    return reference


def _backend_for(xp):
    if is_cupy_namespace(xp):
        return launcher.CupyBackend()
    return emulated_backend()


_EMULATED = None


def emulated_backend():
    """One emulated backend per process (its library is built once)."""
    global _EMULATED
    if _EMULATED is None:
        _EMULATED = launcher.EmulatedBackend()
    return _EMULATED


def _constant(name: str) -> int:
    return launcher.constants()[name]


def config_vector(config, n_samples: int, shuffle_mode: int, seed: int) -> np.ndarray:
    """The ``cfg`` buffer of one fit (indices from the kernel source's CFG_* defines)."""
    cfg = np.zeros(_constant("CFG_SIZE"), dtype=np.float64)
    loss, schedule, opt = config.loss, config.schedule, config.optimizer

    def put(name, value):
        cfg[_constant(name)] = float(value)

    put("CFG_LOSS", _constant(LOSS_IDS[loss.name]))
    put("CFG_LOSS_PARAM", getattr(loss, "threshold", getattr(loss, "epsilon", 0.0)))
    put("CFG_SCHEDULE", _constant(SCHEDULE_IDS[schedule.kind]))
    put("CFG_ETA0", schedule.eta0)
    put("CFG_ALPHA", schedule.alpha)
    put("CFG_POWER_T", schedule.power_t)
    put("CFG_OPTIMAL_OFFSET", schedule.optimal_offset)
    put("CFG_L2", opt.l2)
    put("CFG_DECAY", opt.decoupled_decay)
    put("CFG_L1", opt.l1)
    put("CFG_MOMENTUM", opt.momentum)
    put("CFG_DAMPENING", opt.dampening)
    put("CFG_NESTEROV", opt.nesterov)
    put("CFG_VELOCITY_FORM", opt.momentum_form == "velocity")
    put("CFG_CLIP_VALUE", opt.clip_value or 0.0)
    put("CFG_CLIP_NORM", opt.clip_norm or 0.0)
    put("CFG_FIT_INTERCEPT", config.fit_intercept)
    put("CFG_INTERCEPT_SCALE", config.intercept_scale)
    put("CFG_AVERAGE_START", config.average_start)
    put("CFG_BATCH_SIZE", config.batch_size)
    put("CFG_N_SAMPLES", n_samples)
    put("CFG_SHUFFLE", shuffle_mode)
    put("CFG_SEED", seed)
    put("CFG_GAIN_BETA", getattr(config, "gain_beta", 0.0) or 0.0)
    put("CFG_GAIN_LAMBDA", getattr(config, "gain_lambda", 0.0) or 0.0)
    put("CFG_CLOCK_SAMPLES", getattr(config, "clock_counts_samples", False))
    put("CFG_CLIP_DLOSS", getattr(config, "max_dloss", 0.0) or 0.0)
    return cfg


class FusedFit:
    """Device buffers, launch arguments and graphs of one fit.

    Parameters
    ----------
    backend : CupyBackend or EmulatedBackend
        Where the kernels run.
    state : TrainingState
        Initial weights and optimizer state (copied into the fit's buffers).
    data : TrainingData
        Training rows, in the backend's namespace.
    config : EngineConfig
        Loss, schedule, optimizer and loop settings.
    shuffle_mode : int
        SHUFFLE_NONE, SHUFFLE_ORDER or SHUFFLE_BIJECTION.
    seed : int
        Key of the bijection.
    threads : int, optional
        Threads per block (default: 256 on a GPU, 32 in the emulation).
    max_rows_per_block : int
        Upper bound on the batch rows one forward block takes.
    chunk_steps : int
        Steps per captured graph.
    """

    sparse = False

    def __new__(cls, backend, state, data, *args, **kwargs):
        if cls is FusedFit and is_sparse(data.X):
            return super().__new__(SparseFusedFit)
        return super().__new__(cls)

    def __init__(
        self,
        backend,
        state,
        data,
        config,
        shuffle_mode,
        seed,
        threads=None,
        max_rows_per_block=MAX_ROWS_PER_BLOCK,
        chunk_steps=CHUNK_STEPS,
    ):
        self.backend = backend
        xp = backend.xp
        self.xp = xp
        self.config = config
        opt = config.optimizer
        self.X = data.X if self.sparse else xp.ascontiguousarray(data.X)
        self.Y = xp.ascontiguousarray(data.targets)
        self.dtype = dtype_name(self.Y)
        self.n, self.d = (int(s) for s in self.X.shape)
        self.k = int(self.Y.shape[1])
        itemsize = self.Y.dtype.itemsize
        if threads is None:
            threads = 32 if backend.name == "emulated" else 256
        self.threads = threads
        self.max_rows_per_block = max_rows_per_block
        plan = make_plan(
            self.n,
            1 if self.sparse else self.d,  # sparse rows never go to shared memory
            self.k,
            config.batch_size,
            itemsize,
            opt.clip_norm is not None,
            threads,
            max_rows_per_block,
        )
        if plan is None:
            raise ValueError("this shape does not fit the kernels' shared-memory plan")
        self.plan = plan

        def own(array, shape):
            if array is None:
                return xp.zeros(shape, dtype=self.Y.dtype)
            return xp.array(xp.reshape(xp.asarray(array), shape), dtype=self.Y.dtype, copy=True)

        def optional(array):
            return None if array is None else xp.ascontiguousarray(array, dtype=self.Y.dtype)

        d, k = self.d, self.k
        self.sample_weight = optional(data.sample_weight)
        self.positive_weight = optional(data.positive_weight)
        self.negative_weight = optional(data.negative_weight)
        self.W = own(state.coef, (d, k))
        self.b = own(state.intercept, (k,))
        momentum = opt.uses_momentum
        self.buffer = own(state.coef_buffer, (d, k)) if momentum else None
        self.buffer_b = own(state.intercept_buffer, (k,)) if momentum else None
        self.l1_applied = own(state.l1_applied, (d, k)) if opt.l1 else None
        averaging = bool(config.average_start)
        self.average = own(state.average_coef, (d, k)) if averaging else None
        self.average_b = own(state.average_intercept, (k,)) if averaging else None
        self.active = xp.ones((k,), dtype=self.Y.dtype)
        if not self.sparse:
            self.partial = xp.zeros((plan.blocks, d, k), dtype=self.Y.dtype)
            self.partial_b = xp.zeros((plan.blocks, k), dtype=self.Y.dtype)
            self.loss_part = xp.zeros((plan.blocks, k), dtype=self.Y.dtype)
        self.loss_total = xp.zeros((k,), dtype=xp.float64)
        self.summary = xp.zeros(
            (_constant("SUMMARY_COLUMN_FIELDS") * k + _constant("SUMMARY_TAIL"),),
            dtype=xp.float64,
        )
        self.order = (
            xp.zeros((self.n,), dtype=xp.int64)
            if shuffle_mode == _constant("SHUFFLE_ORDER")
            else None
        )
        self.cfg = xp.asarray(config_vector(config, self.n, shuffle_mode, seed))
        ctx = np.zeros(_constant("CTX_SIZE"), dtype=np.float64)
        ctx[_constant("CTX_STEPS")] = state.steps
        ctx[_constant("CTX_SAMPLES")] = state.samples_seen
        ctx[_constant("CTX_L1_TOTAL")] = state.l1_total
        ctx[_constant("CTX_N_AVERAGED")] = state.n_averaged
        started = state.intercept_buffer if self.sparse else state.coef_buffer
        self.started_before = started is not None
        self.initial_steps = state.steps
        ctx[_constant("CTX_MOMENTUM_STARTED")] = self.started_before
        ctx[_constant("CTX_SCALE")] = 1.0
        eta = state.adaptive_eta if state.adaptive_eta is not None else config.schedule.eta0
        ctx[_constant("CTX_ADAPTIVE_ETA")] = eta
        self.ctx = xp.asarray(ctx)

        self.steps_per_epoch = -(-self.n // config.batch_size)
        self.chunk_steps = chunk_steps
        self._graphs = None
        self._prepare_launches()

    def _prepare_launches(self) -> None:
        plan, d, k = self.plan, self.d, self.k
        storage = dtype_name(self.X)
        self.forward_name = launcher.forward_name(storage, self.dtype)
        self.update_name = launcher.update_name(self.dtype)
        self.end_name = launcher.end_epoch_name(self.dtype)
        i32 = np.int32
        self.forward_args = (
            self.X, self.Y, self.sample_weight, self.positive_weight, self.negative_weight,
            self.order, self.W, self.b, self.active, self.partial, self.partial_b,
            self.loss_part, self.cfg, self.ctx, i32(d), i32(k), i32(plan.rows_per_block),
        )  # fmt: skip
        self.update_args = (
            self.W, self.b, self.buffer, self.buffer_b, self.l1_applied, self.average,
            self.average_b, self.partial, self.partial_b, self.loss_part, self.active,
            self.loss_total, self.cfg, self.ctx, i32(d), i32(k), i32(plan.blocks),
        )  # fmt: skip
        self.end_args = (self.W, self.b, self.loss_total, self.summary, self.ctx, i32(d), i32(k))

    # ------------------------------------------------------------------ launches
    def step(self) -> None:
        """One optimizer step: two launches, every changing value read on the device."""
        plan = self.plan
        self.backend.launch(
            self.forward_name, plan.blocks, plan.threads, plan.forward_shared, self.forward_args
        )
        self.backend.launch(
            self.update_name, plan.update_grid, plan.update_threads, plan.update_shared,
            self.update_args,
        )  # fmt: skip

    def steps(self, count: int) -> None:
        for _ in range(count):
            self.step()

    def capture(self):
        """Graphs of a chunk of steps and of the remainder, recorded once per fit."""
        chunk = min(self.chunk_steps, self.steps_per_epoch)
        full, rest = divmod(self.steps_per_epoch, chunk)
        chunk_graph = self.backend.capture(lambda: self.steps(chunk))
        rest_graph = self.backend.capture(lambda: self.steps(rest)) if rest else None
        self._graphs = (chunk_graph, full, rest_graph)

    def epoch_steps(self, use_graphs: bool) -> None:
        """Every step of one epoch, replayed from graphs or launched eagerly."""
        if not use_graphs:
            self.steps(self.steps_per_epoch)
            return
        if self._graphs is None:
            self.capture()
        chunk_graph, full, rest_graph = self._graphs
        for _ in range(full):
            chunk_graph.replay()
        if rest_graph is not None:
            rest_graph.replay()

    def end_epoch(self) -> np.ndarray:
        """The epoch summary: one launch and the epoch's one host read."""
        threads = self.plan.end_threads
        self.backend.launch(self.end_name, 1, threads, threads * 8, self.end_args)
        return self.backend.to_host(self.summary)

    def set_adaptive_eta(self, eta: float) -> None:
        self.ctx[_constant("CTX_ADAPTIVE_ETA")] = eta

    # -------------------------------------------------------------- state sync
    def store(self, state, summary: np.ndarray) -> None:
        """Point ``state`` at the fit's buffers and copy the clock from ``summary``."""
        k = self.k
        tail = summary[_constant("SUMMARY_COLUMN_FIELDS") * k :]
        state.coef, state.intercept = self.W, self.b
        state.steps = int(tail[_constant("SUMMARY_STEPS")])
        state.samples_seen = int(tail[_constant("SUMMARY_SAMPLES")])
        state.l1_total = float(tail[_constant("SUMMARY_L1_TOTAL")])
        state.n_averaged = int(tail[_constant("SUMMARY_N_AVERAGED")])
        if self.buffer is not None and state.steps > 0:
            state.coef_buffer = self.buffer
            state.intercept_buffer = self.buffer_b if self.config.fit_intercept else None
        if self.l1_applied is not None:
            state.l1_applied = self.l1_applied
        if self.average is not None and state.n_averaged > 0:
            state.average_coef, state.average_intercept = self.average, self.average_b


class SparseFusedFit(FusedFit):
    """:class:`FusedFit` over CSR rows: three launches per step (``sgd_sparse_forward``,
    ``sgd_sparse_update``, ``sgd_sparse_rescale``) and the lazy updates of the reference
    engine's sparse path, with no host work per batch.

    The gradient of a column shared by several rows of a batch is summed with float
    atomics: in launch order on the CPU emulation, in any order on a GPU, so there graph
    replay and eager launches agree to rounding, not bit for bit.
    """

    sparse = True

    def _prepare_launches(self) -> None:
        xp, d, k, i32 = self.xp, self.d, self.k, np.int32
        X = self.X
        self.indptr = xp.ascontiguousarray(X.indptr, dtype=xp.int32)
        self.indices = xp.ascontiguousarray(X.indices, dtype=xp.int32)
        self.values = xp.ascontiguousarray(X.data, dtype=self.Y.dtype)
        itemsize = self.Y.dtype.itemsize
        rows, blocks, shared = sparse_plan(
            self.config.batch_size, self.n, k, itemsize, self.threads, self.max_rows_per_block
        )
        self.sparse_rows, self.sparse_blocks, self.sparse_shared = rows, blocks, shared
        self.gradient = xp.zeros((d, k), dtype=self.Y.dtype)
        self.stamp = xp.full((d,), -1, dtype=xp.int32)
        self.touched = xp.zeros((d,), dtype=xp.int32)
        self.counters = xp.zeros((2,), dtype=xp.int32)
        self.g_rows = xp.zeros((min(self.config.batch_size, self.n), k), dtype=self.Y.dtype)
        self.loss_part = xp.zeros((blocks, k), dtype=self.Y.dtype)
        if self.config.optimizer.uses_momentum and self.buffer is None:
            self.buffer = xp.zeros((d, k), dtype=self.Y.dtype)
        names = launcher.sparse_names(self.dtype)
        self.forward_name, self.update_name = names["forward"], names["update"]
        self.rescale_name, self.fold_name = names["rescale"], names["fold"]
        self.end_name = launcher.end_epoch_name(self.dtype)
        self.forward_args = (
            self.indptr, self.indices, self.values, self.Y, self.sample_weight,
            self.positive_weight, self.negative_weight, self.order, self.W, self.b,
            self.l1_applied, self.active, self.g_rows, self.loss_part, self.gradient,
            self.stamp, self.touched, self.counters, self.cfg, self.ctx, i32(d), i32(k),
            i32(rows),
        )  # fmt: skip
        self.update_args = (
            self.W, self.b, self.buffer, self.buffer_b, self.l1_applied, self.gradient,
            self.g_rows, self.touched, self.counters, self.loss_part, self.active,
            self.loss_total, self.cfg, self.ctx, i32(d), i32(k), i32(blocks),
        )  # fmt: skip
        self.rescale_args = (self.W, self.stamp, self.ctx, i32(d), i32(k))
        self.fold_args = (self.W, self.l1_applied, self.ctx, i32(d), i32(k))
        self.end_args = (self.W, self.b, self.loss_total, self.summary, self.ctx, i32(d), i32(k))
        self.wide_grid = max(1, min(-(-d * k // self.threads), 1024))

    def step(self) -> None:
        """One lazy sparse step: three launches, no host work."""
        launch, threads, grid = self.backend.launch, self.threads, self.wide_grid
        launch(
            self.forward_name, self.sparse_blocks, threads, self.sparse_shared, self.forward_args
        )
        launch(self.update_name, grid, threads, 0, self.update_args)
        launch(self.rescale_name, grid, threads, 0, self.rescale_args)

    def end_epoch(self) -> np.ndarray:
        self.backend.launch(self.fold_name, self.wide_grid, self.threads, 0, self.fold_args)
        return super().end_epoch()

    def store(self, state, summary: np.ndarray) -> None:
        super().store(state, summary)
        if self.buffer is not None:  # lazy buffers exist from the start, as the reference's
            state.coef_buffer = self.buffer
            started = self.started_before or state.steps > self.initial_steps
            fit_intercept = self.config.fit_intercept and started
            state.intercept_buffer = self.buffer_b if fit_intercept else None


def epoch_report(summary: np.ndarray, k: int, n_samples: int, optimizer):
    """(mean loss, objective, finite) from the summary, as the reference engine computes them."""
    fields = _constant("SUMMARY_COLUMN_FIELDS")
    columns = summary[: fields * k].reshape(k, fields)
    mean_loss = float(columns[:, _constant("SUMMARY_LOSS")].sum()) / n_samples
    penalty = 0.0
    if optimizer.l2:
        penalty += 0.5 * optimizer.l2 * float(columns[:, _constant("SUMMARY_SQUARES")].sum())
    if optimizer.l1:
        penalty += optimizer.l1 * float(columns[:, _constant("SUMMARY_ABSOLUTE")].sum())
    probe = float(summary[fields * k + _constant("SUMMARY_PROBE")])
    finite = math.isfinite(probe) and math.isfinite(mean_loss)
    return mean_loss, mean_loss + penalty, finite


def _shuffle_mode(config, backend) -> int:
    if not config.shuffle:
        return _constant("SHUFFLE_NONE")
    default = "order" if backend.name == "emulated" else "bijection"
    choice = os.environ.get(ENV_SHUFFLE, default)
    if choice not in ("order", "bijection"):
        raise ValueError(f"{ENV_SHUFFLE} must be 'order' or 'bijection', got {choice!r}")
    return _constant("SHUFFLE_ORDER" if choice == "order" else "SHUFFLE_BIJECTION")


def graphs_enabled(total_steps: int) -> bool:
    """``SK_GPUSGD_CUDA_GRAPHS``: '0' never, 'always' always, else for fits big enough."""
    mode = os.environ.get(ENV_GRAPHS, "auto")
    if mode not in ("0", "1", "auto", "always"):
        raise ValueError(f"{ENV_GRAPHS} must be '0', '1', 'auto' or 'always', got {mode!r}")
    if mode == "0":
        return False
    return mode == "always" or total_steps >= MIN_GRAPH_STEPS


def run(
    xp,
    state,
    data,
    config,
    *,
    max_epochs: int,
    random_state: np.random.RandomState,
    validation_score=None,
    use_stopping_rule: bool = True,
    backend: Any = None,
    launch_options: dict | None = None,
) -> RunReport:
    """Train ``state`` in place on the kernels; the contract of :func:`sk_gpusgd._engine.run`.

    ``backend`` defaults to CuPy for CuPy input and to the CPU emulation for NumPy input;
    ``launch_options`` (``threads``, ``max_rows_per_block``, ``chunk_steps``) reshape the
    grids and graphs (tests use small ones). The stopping rule, the adaptive schedule,
    early stopping and the divergence check are the reference engine's, applied to the
    per-epoch summary.
    """
    backend = backend if backend is not None else _backend_for(xp)
    shuffle_mode = _shuffle_mode(config, backend)
    next_permutation, seed = None, 0
    if shuffle_mode == _constant("SHUFFLE_ORDER"):
        # the reference engine's source, drawn first: the same order for the same seed
        next_permutation = permutation_source(backend.xp, random_state, data.X)
    elif shuffle_mode == _constant("SHUFFLE_BIJECTION"):
        seed = int(random_state.randint(np.iinfo(np.int32).max))
    fit = FusedFit(backend, state, data, config, shuffle_mode, seed, **(launch_options or {}))
    use_graphs = graphs_enabled(fit.steps_per_epoch * max_epochs)
    report = RunReport()
    best_objective, best_score = math.inf, -math.inf
    no_improvement = 0
    adaptive_eta = state.adaptive_eta
    started = time.perf_counter()
    activate = getattr(backend, "activate", contextlib.nullcontext)
    with activate():
        for epoch in range(max_epochs):
            if next_permutation is not None:
                fit.order[...] = next_permutation(fit.n)
            fit.epoch_steps(use_graphs)
            summary = fit.end_epoch()
            fit.store(state, summary)
            state.adaptive_eta = adaptive_eta
            mean_loss, objective, finite = epoch_report(summary, fit.k, fit.n, config.optimizer)
            report.n_epochs = epoch + 1
            if not finite:
                raise DivergenceError(
                    f"The weights overflowed to inf/NaN at epoch {epoch + 1}: the "
                    f"learning rate (learning_rate={config.schedule.kind!r}, "
                    f"eta0={config.schedule.eta0}) is too large for this data. Lower "
                    "eta0, choose a decaying learning_rate, or scale X (e.g. with "
                    "StandardScaler)."
                )
            report.loss_curve.append(mean_loss)
            if validation_score is not None:
                score = validation_score(state)
                improved = config.tol is None or score >= best_score + config.tol
                best_score = max(best_score, score)
            else:
                score = None
                improved = config.tol is None or objective <= best_objective - config.tol
                best_objective = min(best_objective, objective)
            if config.verbose:
                extra = "" if score is None else f", validation score: {score:.6f}"
                print(
                    f"-- Epoch {epoch + 1}: avg. loss {mean_loss:.6f}, objective "
                    f"{objective:.6f}, steps {state.steps}{extra}, "
                    f"{time.perf_counter() - started:.2f} s"
                )
            if not use_stopping_rule or config.tol is None:
                continue
            no_improvement = 0 if improved else no_improvement + 1
            if no_improvement >= config.n_iter_no_change:
                eta = config.schedule.learning_rate(state.steps + 1, adaptive_eta)
                if config.schedule.kind == "adaptive" and eta > MIN_ADAPTIVE_ETA:
                    adaptive_eta = eta / ADAPTIVE_DIVISOR
                    state.adaptive_eta = adaptive_eta
                    fit.set_adaptive_eta(adaptive_eta)
                    no_improvement = 0
                else:
                    report.converged = True
                    if config.verbose:
                        print(f"Convergence after {epoch + 1} epochs")
                    break
    return report


def epoch_order(backend, n_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The row order the kernels use in ``epoch`` under the bijection, on the host."""
    xp = backend.xp
    cfg = np.zeros(_constant("CFG_SIZE"), dtype=np.float64)
    cfg[_constant("CFG_N_SAMPLES")] = n_samples
    cfg[_constant("CFG_SHUFFLE")] = _constant("SHUFFLE_BIJECTION")
    cfg[_constant("CFG_SEED")] = seed
    ctx = np.zeros(_constant("CTX_SIZE"), dtype=np.float64)
    ctx[_constant("CTX_EPOCH")] = epoch
    out = xp.zeros((n_samples,), dtype=xp.int64)
    threads = 32 if backend.name == "emulated" else 256
    grid = max(1, min(-(-n_samples // threads), 1024))
    args = (out, xp.asarray(cfg), xp.asarray(ctx), np.int64(n_samples))
    backend.launch(launcher.ORDER_KERNEL, grid, threads, 0, args)
    return np.asarray(backend.to_host(out))
