"""Device buffers, launch arguments and graphs of one fit on the CUDA engine's kernels."""

from __future__ import annotations

import numpy as np

from ..._backend import dtype_name, is_sparse
from . import launcher
from .plan import (
    MAX_ROWS_PER_BLOCK,
    KernelPlanError,
    config_vector,
    kernel_constant,
    launch_threads,
    make_plan,
    sparse_plan,
)

CHUNK_STEPS = 64


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
        Threads per block (default: :func:`.plan.launch_threads` of the backend, the
        shape :func:`.plan.fused_reason` checked).
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
            threads = launch_threads(backend.name)
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
            raise KernelPlanError(
                f"a row of {self.d} features and {self.k} outputs does not fit the shared "
                f"memory of a block of {threads} threads"
            )
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
        self.mean = self.inv_scale = None
        if getattr(state, "feature_inv_scale", None) is not None:  # preconditioned (dense)
            self.mean = xp.ascontiguousarray(xp.asarray(state.feature_mean), dtype=self.Y.dtype)
            self.inv_scale = xp.ascontiguousarray(
                xp.asarray(state.feature_inv_scale), dtype=self.Y.dtype
            )
        penalty_flag = config_vector(config, 1, 0, 0)[kernel_constant("CFG_WITH_PENALTY")]
        self.with_penalty = bool(penalty_flag)
        self.column_state = xp.asarray(self._column_state(state, config))
        self.summary = xp.zeros(
            (kernel_constant("SUMMARY_COLUMN_FIELDS") * k + kernel_constant("SUMMARY_TAIL"),),
            dtype=xp.float64,
        )
        self.order = (
            xp.zeros((self.n,), dtype=xp.int64)
            if shuffle_mode == kernel_constant("SHUFFLE_ORDER")
            else None
        )
        self.cfg = xp.asarray(config_vector(config, self.n, shuffle_mode, seed))
        ctx = np.zeros(kernel_constant("CTX_SIZE"), dtype=np.float64)
        ctx[kernel_constant("CTX_STEPS")] = state.steps
        ctx[kernel_constant("CTX_SAMPLES")] = state.samples_seen
        ctx[kernel_constant("CTX_N_AVERAGED")] = state.n_averaged
        started = state.intercept_buffer if self.sparse else state.coef_buffer
        self.started_before = started is not None
        self.initial_steps = state.steps
        ctx[kernel_constant("CTX_MOMENTUM_STARTED")] = self.started_before
        ctx[kernel_constant("CTX_SCALE")] = 1.0
        ctx[kernel_constant("CTX_NORMS_STALE")] = 1.0
        self.ctx = xp.asarray(ctx)

        self.steps_per_epoch = -(-self.n // config.batch_size)
        self.chunk_steps = chunk_steps
        self._graphs = None
        self._prepare_launches()

    def _column_state(self, state, config) -> np.ndarray:
        """Per output column: adaptive rate, L1 totals (both parities), epoch loss, penalty."""
        k = self.k
        column_state = np.zeros((kernel_constant("COLUMN_FIELDS"), k), dtype=np.float64)
        adaptive = state.adaptive_eta
        column_state[kernel_constant("COLUMN_ADAPTIVE_ETA")] = (
            config.schedule.eta0 if adaptive is None else np.asarray(adaptive, dtype=np.float64)
        )
        l1_total = np.asarray(_to_host(state.l1_total), dtype=np.float64)
        row = kernel_constant("COLUMN_L1_TOTAL")
        column_state[row : row + 2] = l1_total  # a scalar or one per column
        return column_state

    def _prepare_launches(self) -> None:
        plan, d, k = self.plan, self.d, self.k
        storage = dtype_name(self.X)
        self.forward_name = launcher.forward_name(storage, self.dtype)
        self.update_name = launcher.update_name(self.dtype)
        self.end_name = launcher.end_epoch_name(self.dtype)
        i32 = np.int32
        self.forward_args = (
            self.X, self.Y, self.sample_weight, self.positive_weight, self.negative_weight,
            self.order, self.mean, self.inv_scale, self.W, self.b, self.active, self.partial,
            self.partial_b, self.loss_part, self.cfg, self.ctx, self.column_state, i32(d),
            i32(k), i32(plan.rows_per_block), i32(plan.blocks),
        )  # fmt: skip
        self.update_args = (
            self.W, self.b, self.buffer, self.buffer_b, self.l1_applied, self.average,
            self.average_b, self.inv_scale, self.partial, self.partial_b, self.loss_part,
            self.active, self.cfg, self.ctx, self.column_state, i32(d), i32(k), i32(plan.blocks),
        )  # fmt: skip
        self.end_args = (
            self.W, self.b, self.column_state, self.summary, self.ctx, i32(d), i32(k)
        )  # fmt: skip
        # one more forward block adds the step's penalty to the epoch's objective
        self.forward_grid = plan.blocks + (1 if self.with_penalty else 0)
        self.forward_shared = max(plan.forward_shared, 16 * plan.threads)  # penalty scratch

    # ------------------------------------------------------------------ launches
    def step(self) -> None:
        """One optimizer step: two launches, every changing value read on the device."""
        plan = self.plan
        self.backend.launch(
            self.forward_name, self.forward_grid, plan.threads, self.forward_shared,
            self.forward_args,
        )  # fmt: skip
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
        self.restore_frozen()
        threads = self.plan.end_threads
        self.backend.launch(self.end_name, 1, threads, threads * 8, self.end_args)
        return self.backend.to_host(self.summary)

    def set_adaptive_eta(self, rates) -> None:
        """The 'adaptive' rate of each column (changed by the host between epochs)."""
        row = kernel_constant("COLUMN_ADAPTIVE_ETA")
        self.column_state[row] = self.xp.asarray(np.asarray(rates, dtype=np.float64))

    def set_active(self, active) -> None:
        """Which output columns still train: the others get a zero loss derivative."""
        self.active[...] = self.xp.asarray(np.asarray(active, dtype=self.Y.dtype))

    def column_arrays(self) -> dict:
        """The arrays with one slice per output column, by name."""
        names = ("W", "b", "buffer", "buffer_b", "l1_applied", "average", "average_b")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def freeze(self, active) -> None:
        """Stop the columns not in ``active``, as the reference engine stops them.

        Their loss derivative becomes zero, and after every epoch their weights and
        optimizer state are put back as they are now (decay and momentum still touch
        them within an epoch, as in the reference engine, and are undone).
        """
        self.set_active(active)
        self._inactive = self.xp.asarray(np.flatnonzero(~np.asarray(active, dtype=bool)))
        self._frozen = {
            name: self.xp.array(array, copy=True) for name, array in self.column_arrays().items()
        }

    def restore_frozen(self) -> None:
        """Put the stopped columns back (per epoch, outside the graphs)."""
        if not getattr(self, "_frozen", None):
            return
        for name, array in self.column_arrays().items():
            array[..., self._inactive] = self._frozen[name][..., self._inactive]

    # -------------------------------------------------------------- state sync
    def store(self, state, summary: np.ndarray) -> None:
        """Point ``state`` at the fit's buffers and copy the clock from ``summary``."""
        k = self.k
        tail = summary[kernel_constant("SUMMARY_COLUMN_FIELDS") * k :]
        state.coef, state.intercept = self.W, self.b
        state.steps = int(tail[kernel_constant("SUMMARY_STEPS")])
        state.samples_seen = int(tail[kernel_constant("SUMMARY_SAMPLES")])
        fields = kernel_constant("SUMMARY_COLUMN_FIELDS")
        l1_totals = summary[: fields * k].reshape(k, fields)[:, kernel_constant("SUMMARY_L1_TOTAL")]
        # one float while every column shares it (the reference engine's type), else per column
        state.l1_total = (
            float(l1_totals[0])
            if np.all(l1_totals == l1_totals[0])
            else self.xp.asarray(l1_totals.astype(self.Y.dtype))
        )
        state.n_averaged = int(tail[kernel_constant("SUMMARY_N_AVERAGED")])
        if self.buffer is not None and state.steps > 0:
            state.coef_buffer = self.buffer
            state.intercept_buffer = self.buffer_b if self.config.fit_intercept else None
        if self.l1_applied is not None:
            state.l1_applied = self.l1_applied
        if self.average is not None and state.n_averaged > 0:
            state.average_coef, state.average_intercept = self.average, self.average_b


class SparseFusedFit(FusedFit):
    """:class:`FusedFit` over CSR rows: two launches per step (``sgd_sparse_forward``,
    ``sgd_sparse_update``) and the lazy updates of the reference
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
        shape = sparse_plan(
            self.config.batch_size, self.n, k, itemsize, self.threads, self.max_rows_per_block
        )
        if shape is None:
            raise KernelPlanError(f"{k} outputs do not fit the shared memory of one block")
        rows, blocks, shared = shape
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
        self.fold_name, self.average_name = names["fold"], names["average"]
        self.end_name = launcher.end_epoch_name(self.dtype)
        self.forward_args = (
            self.indptr, self.indices, self.values, self.Y, self.sample_weight,
            self.positive_weight, self.negative_weight, self.order, self.W, self.b,
            self.l1_applied, self.active, self.g_rows, self.loss_part, self.gradient,
            self.stamp, self.touched, self.counters, self.cfg, self.ctx, self.column_state,
            i32(d), i32(k), i32(rows), i32(blocks),
        )  # fmt: skip
        self.forward_grid = blocks + (1 if self.with_penalty else 0)
        self.forward_shared = max(shared, 16 * self.threads)
        self.update_args = (
            self.W, self.b, self.buffer, self.buffer_b, self.l1_applied, self.gradient,
            self.g_rows, self.touched, self.stamp, self.counters, self.loss_part, self.active,
            self.cfg, self.ctx, self.column_state, i32(d), i32(k), i32(blocks),
        )  # fmt: skip
        self.wide_grid = max(1, min(-(-d * k // self.threads), 1024))
        self.fold_args = (self.W, self.l1_applied, self.ctx, self.column_state, i32(d), i32(k))
        self.average_args = (
            self.W, self.b, self.l1_applied, self.average, self.average_b, self.ctx,
            self.column_state, i32(d), i32(k),
        )  # fmt: skip
        clip_norm = self.config.optimizer.clip_norm is not None
        self.update_grid = 1 if clip_norm else self.wide_grid
        self.update_shared = self.threads * itemsize if clip_norm else 0
        self.end_args = (
            self.W, self.b, self.column_state, self.summary, self.ctx, i32(d), i32(k)
        )  # fmt: skip

    def step(self) -> None:
        """One lazy sparse step: two launches (three with averaging), no host work."""
        launch, threads = self.backend.launch, self.threads
        launch(
            self.forward_name, self.forward_grid, threads, self.forward_shared, self.forward_args
        )
        launch(self.update_name, self.update_grid, threads, self.update_shared, self.update_args)
        if self.average is not None:
            launch(self.average_name, self.wide_grid, threads, 0, self.average_args)

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


def epoch_order(backend, n_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The row order the kernels use in ``epoch`` under the bijection, on the host.

    Its buffers and its launch go to the backend's stream, in the caller's order.
    """
    xp = backend.xp
    cfg = np.zeros(kernel_constant("CFG_SIZE"), dtype=np.float64)
    cfg[kernel_constant("CFG_N_SAMPLES")] = n_samples
    cfg[kernel_constant("CFG_SHUFFLE")] = kernel_constant("SHUFFLE_BIJECTION")
    cfg[kernel_constant("CFG_SEED")] = seed
    ctx = np.zeros(kernel_constant("CTX_SIZE"), dtype=np.float64)
    ctx[kernel_constant("CTX_EPOCH")] = epoch
    threads = launch_threads(backend.name)
    grid = max(1, min(-(-n_samples // threads), 1024))
    with backend.ordered():
        out = xp.zeros((n_samples,), dtype=xp.int64)
        args = (out, xp.asarray(cfg), xp.asarray(ctx), np.int64(n_samples))
        backend.launch(launcher.ORDER_KERNEL, grid, threads, 0, args)
        return np.asarray(backend.to_host(out))


def _to_host(value):
    """A float, or a NumPy / CuPy array, on the host."""
    return value.get() if hasattr(value, "get") else value
