"""Launch shapes and the per-fit configuration buffer of the CUDA engine's kernels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..._backend import dtype_name, free_device_bytes, is_cupy_namespace, is_sparse
from ..._core.types import MAX_DLOSS, EpochTotals
from . import launcher

# Dynamic shared memory a block may take without opting in (cudaFuncSetAttribute).
MAX_SHARED_BYTES = 48 * 1024
MAX_ROWS_PER_BLOCK = 32
# Forward blocks a batch is cut into, at least (fewer rows per block for small batches):
# more blocks read X faster, fewer write fewer partial gradients. To be tuned on a GPU.
TARGET_FORWARD_BLOCKS = 64
# Threads per block: 256 on a GPU; 32 in the CPU emulation, where each thread is a fiber.
GPU_THREADS = 256
EMULATED_THREADS = 32
# The kernels index the (n_features + 1) x n_outputs weights with 32-bit integers, and a
# grid-stride loop steps up to 1024 blocks x 256 threads past its last index: the margin
# keeps every such index below 2**31.
MAX_FLAT_INDEX = 2**31 - 2**20
# The forward blocks' partial gradients (one n_features x n_outputs slice each) may hold
# at most this many times the batch's own values of X: beyond it the update, which sums
# them every step, reads more than the array-API engine's one matrix product does.
MAX_PARTIAL_RATIO = 4
# Share of the free device memory the kernels' own buffers may take.
DEVICE_MEMORY_SHARE = 0.8


class KernelPlanError(RuntimeError):
    """A fit's shape does not fit the kernels' launch plan (the fit then falls back)."""


def launch_threads(backend_name: str) -> int:
    """Threads per block of every launch: one value for the plan and the fit."""
    return EMULATED_THREADS if backend_name == "emulated" else GPU_THREADS


def backend_name_for(xp) -> str:
    """The backend a namespace's fit runs its kernels on."""
    return "cupy" if is_cupy_namespace(xp) else "emulated"


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


def fused_reason(xp, data, config, backend_name: str | None = None) -> str | None:
    """Why this fit cannot run on the kernels (None when it can).

    Decided with the launch shape the fit will use (:func:`launch_threads` of the
    backend: ``backend_name``, by default the one ``xp`` runs on), the 32-bit index
    range of the kernels, and the device memory their buffers need.
    """
    compute = dtype_name(data.targets)
    if compute not in launcher.COMPUTE_DTYPES:
        return f"compute dtype {compute} has no kernel"
    threads = launch_threads(backend_name or backend_name_for(xp))
    n, d = (int(size) for size in data.X.shape)
    k = int(data.targets.shape[1])
    if (d + 1) * k > MAX_FLAT_INDEX:
        return (
            f"{d} features x {k} outputs is beyond the kernels' 32-bit indices "
            f"(at most {MAX_FLAT_INDEX} weights)"
        )
    itemsize = 8 if compute == "float64" else 4
    batch = min(int(config.batch_size), n)
    if is_sparse(data.X):
        reason = sparse_fused_reason(data, config, threads)
        needed = sparse_device_bytes(data.X, k, batch, itemsize)
    else:
        storage = dtype_name(data.X)
        if storage not in STORAGE_DTYPES:
            return f"X of dtype {storage} has no kernel"
        plan = make_plan(n, d, k, batch, itemsize, False, threads)
        if plan is None:
            return (
                f"a row of {d} features and {k} outputs does not fit in one block's "
                f"{MAX_SHARED_BYTES} bytes of shared memory"
            )
        partial = plan.blocks * d * k
        if partial > MAX_PARTIAL_RATIO * batch * d:
            return (
                f"{plan.blocks} forward blocks of {plan.rows_per_block} rows would write "
                f"{partial} partial gradients per step, more than {MAX_PARTIAL_RATIO}x the "
                f"batch's {batch * d} values"
            )
        reason = None
        needed = dense_device_bytes(n, d, k, plan, itemsize)
    if reason is not None:
        return reason
    budget = device_budget(xp)
    if budget is not None and needed > budget:
        return f"the kernels' buffers need {needed} bytes, more than the {budget} bytes free"
    return None


def device_budget(xp) -> int | None:
    """Bytes the kernels' buffers may take on the device of ``xp`` (None: unchecked)."""
    free = free_device_bytes(xp)
    return None if free is None else int(free * DEVICE_MEMORY_SHARE)


def dense_device_bytes(n: int, d: int, k: int, plan: LaunchPlan, itemsize: int) -> int:
    """The dense fit's own buffers: weights, momentum, L1, average, partial gradients,
    and a row order (int64) when the rows are shuffled from a drawn permutation."""
    model = (d + 1) * k
    return itemsize * (4 * model + plan.blocks * model + 2 * plan.blocks * k) + 8 * n


def sparse_device_bytes(X, k: int, batch: int, itemsize: int) -> int:
    """The sparse fit's own buffers: five weight-sized arrays, per-column stamps, CSR copies."""
    n, d = (int(size) for size in X.shape)
    model = (d + 1) * k
    csr = 4 * (n + 1) + (4 + itemsize) * int(X.nnz)  # int32 copies, values in the compute type
    return itemsize * (5 * model + batch * k) + 8 * d + 8 * n + csr


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


def sparse_fused_reason(data, config, threads: int) -> str | None:
    """Why a CSR fit cannot run on the sparse kernels (None when it can)."""
    if config.schedule.kind == "adaptive":
        return "the adaptive rate on sparse X (one weight scale per column) is not fused"
    if getattr(config.loss, "joint", False):
        return "the multinomial loss on sparse X is not fused"
    if dtype_name(data.X.data) != dtype_name(data.targets):
        return "sparse X values must have the compute dtype"
    if data.X.nnz >= 2**31 or data.X.shape[1] >= 2**31:
        return "sparse X too large for 32-bit indices"
    itemsize = data.targets.dtype.itemsize
    k = int(data.targets.shape[1])
    plan = sparse_plan(config.batch_size, data.X.shape[0], k, itemsize, threads)
    if plan is None:
        return f"{k} outputs do not fit in one block's {MAX_SHARED_BYTES} bytes of shared memory"
    return None


def kernel_constant(name: str) -> int:
    return launcher.constants()[name]


def config_vector(config, n_samples: int, shuffle_mode: int, seed: int) -> np.ndarray:
    """The ``cfg`` buffer of one fit (indices from the kernel source's CFG_* defines)."""
    cfg = np.zeros(kernel_constant("CFG_SIZE"), dtype=np.float64)
    loss, schedule, opt = config.loss, config.schedule, config.optimizer

    def put(name, value):
        cfg[kernel_constant(name)] = float(value)

    put("CFG_LOSS", kernel_constant(LOSS_IDS[loss.name]))
    put("CFG_LOSS_PARAM", getattr(loss, "threshold", getattr(loss, "epsilon", 0.0)))
    put("CFG_SCHEDULE", kernel_constant(SCHEDULE_IDS[schedule.kind]))
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
    put("CFG_AVERAGE_DECAY", config.average_decay)
    put("CFG_GAIN_FLOOR", config.gain_floor)
    put("CFG_BATCH_SIZE", min(int(config.batch_size), n_samples))  # a larger batch is the data
    put("CFG_N_SAMPLES", n_samples)
    put("CFG_SHUFFLE", shuffle_mode)
    put("CFG_SEED", seed)
    if config.scaling is not None:  # the batch scaling rule's statistics (_core/scaling.py)
        put("CFG_GAIN_BETA", config.scaling.mean_squared_norm)
        put("CFG_GAIN_LAMBDA", config.scaling.top_eigenvalue)
    put("CFG_CURVATURE", loss.curvature)
    put("CFG_CLIP_DLOSS", MAX_DLOSS)
    put("CFG_WITH_PENALTY", EpochTotals(config).with_penalty)
    put("CFG_MULTINOMIAL", getattr(loss, "joint", False))
    return cfg
