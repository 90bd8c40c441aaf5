"""The CUDA engine's epoch driver: same contract as :func:`sk_gpusgd._engines.loop.run`.

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

Fused: every loss (the multinomial softmax too, on dense X), the passive-aggressive
rates, every schedule at scikit-learn's sample clock with the batch step-rate rule
(adaptive: one rate per column in device memory, changed by the host between epochs),
sample and class weights, coupled L2 and decoupled decay, momentum, dampening and
Nesterov in both forms, clipping by value and by global norm (the update then runs as one
block), cumulative L1, averaging, diagonal preconditioning, per-column stopping, float32
and float64, float16 / bfloat16 X with float32 master weights, any number of outputs.

Sparse CSR X runs on its own kernels (:class:`SparseFusedFit`): two launches per step
(three once averaging has begun) and the reference engine's lazy updates (weight scale,
pending L1, momentum on the touched columns), with no host work per batch.

Not fused, and trained by the reference engine on the same device instead (same
results, slower), with one :class:`FusedEngineFallbackWarning` that names the cause
(:func:`fused_reason` decides before the fit, with the launch shape the fit will use):

- a dense row too wide for one block's shared memory (at 256 threads, more than about
  12,000 float32 features, 5,800 float64, fewer with many outputs);
- partial gradients of more than ``MAX_PARTIAL_RATIO`` times the batch's values (wide
  rows with many outputs), weights beyond the kernels' 32-bit indices, or buffers larger
  than the free device memory;
- sparse X with the adaptive rate or the multinomial loss, whose values are not in the
  compute dtype, or too large for 32-bit indices;
- a kernel that fails to compile (NVRTC), launch or allocate during the fit: the state
  and the random state are put back as they were and the reference engine trains from
  there.

Any namespace other than CuPy trains on the reference engine without a warning (NumPy
too, unless ``SK_GPUSGD_CUDA_EMULATE=1`` asks for the CPU emulation of the kernels, which
the tests use).

Ordering: a fit runs on the engine's own non-blocking stream, bracketed by
:meth:`.launcher.CupyBackend.ordered`: the stream waits for the caller's stream at the
start (the caller's ``cupy.asarray(X)`` may still be copying) and the caller's stream
waits for it at the end; every upload and fill of the fit's buffers is made inside.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np

from ..._backend import is_cupy_namespace
from ..array_api import permutation_source
from . import launcher
from .fit import CHUNK_STEPS, FusedFit, SparseFusedFit, epoch_order
from .plan import KernelPlanError, fused_reason, kernel_constant

__all__ = [
    "CudaEngine",
    "FusedEngineFallbackWarning",
    "FusedFit",
    "SparseFusedFit",
    "epoch_order",
    "fused_reason",
    "kernels_wanted",
]

ENV_GRAPHS = "SK_GPUSGD_CUDA_GRAPHS"
ENV_SHUFFLE = "SK_GPUSGD_CUDA_SHUFFLE"
ENV_EMULATE = "SK_GPUSGD_CUDA_EMULATE"
# Fits with fewer steps than this run eagerly: capturing would cost more than it saves.
MIN_GRAPH_STEPS = 2 * CHUNK_STEPS


class FusedEngineFallbackWarning(UserWarning):
    """A fit the CUDA kernels cannot take trains on the array-API engine instead."""


def kernels_wanted(xp) -> bool:
    """Whether a fit in ``xp`` asks for the kernels: CuPy, or NumPy under the emulation."""
    return is_cupy_namespace(xp) or (xp is np and os.environ.get(ENV_EMULATE) == "1")


def warn_fallback(cause: str) -> None:
    """The one warning of a fit the kernels cannot take."""
    warnings.warn(
        f"The CUDA kernels cannot train this fit ({cause}); it trains on the array-API "
        "engine on the same device instead (same model, slower).",
        FusedEngineFallbackWarning,
        stacklevel=6,
    )


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


def epoch_report(summary: np.ndarray, k: int, n_samples: int):
    """(mean loss, objective, finite) per output column, as the reference engine's summary."""
    fields = kernel_constant("SUMMARY_COLUMN_FIELDS")
    columns = summary[: fields * k].reshape(k, fields)
    mean_loss = columns[:, kernel_constant("SUMMARY_LOSS")] / n_samples
    objective = mean_loss + columns[:, kernel_constant("SUMMARY_PENALTY")] / n_samples
    probe = summary[fields * k + kernel_constant("SUMMARY_PROBE")]
    finite = bool(np.isfinite(mean_loss).all() and np.isfinite(objective).all())
    return mean_loss, objective, finite and math.isfinite(probe)


def _shuffle_mode(config, backend) -> int:
    if not config.shuffle:
        return kernel_constant("SHUFFLE_NONE")
    default = "order" if backend.name == "emulated" else "bijection"
    choice = os.environ.get(ENV_SHUFFLE, default)
    if choice not in ("order", "bijection"):
        raise ValueError(f"{ENV_SHUFFLE} must be 'order' or 'bijection', got {choice!r}")
    return kernel_constant("SHUFFLE_ORDER" if choice == "order" else "SHUFFLE_BIJECTION")


def graphs_enabled(total_steps: int) -> bool:
    """``SK_GPUSGD_CUDA_GRAPHS``: '0' never, 'always' always, else for fits big enough."""
    mode = os.environ.get(ENV_GRAPHS, "auto")
    if mode not in ("0", "1", "auto", "always"):
        raise ValueError(f"{ENV_GRAPHS} must be '0', '1', 'auto' or 'always', got {mode!r}")
    if mode == "0":
        return False
    return mode == "always" or total_steps >= MIN_GRAPH_STEPS


class CudaEngine:
    """The fused kernels as an engine of :func:`.loop.train`.

    Parameters
    ----------
    fallback : Engine, optional
        Trains the fit instead, from the state it started with, when a kernel fails to
        compile, launch or allocate (see :meth:`errors`).
    backend : CupyBackend or EmulatedBackend, optional
        Default: CuPy for CuPy input, the CPU emulation for NumPy input.
    launch_options : dict, optional
        ``threads``, ``max_rows_per_block``, ``chunk_steps`` of :class:`FusedFit`
        (tests use small ones).
    """

    def __init__(self, fallback=None, backend: Any = None, launch_options: dict | None = None):
        self.fallback = fallback
        self.backend = backend
        self.launch_options = launch_options or {}

    @property
    def errors(self) -> tuple:
        """The exceptions that mean the kernels cannot run this fit."""
        errors = (KernelPlanError, launcher.KernelBuildError)
        return errors + tuple(getattr(self.backend, "errors", ()))

    def warn_fallback(self, cause: str) -> None:
        warn_fallback(cause)

    def start(self, xp, state, data, config, random_state, max_epochs):
        if self.backend is None:
            self.backend = _backend_for(xp)
        epochs = _CudaEpochs(self.backend, state, data, config, random_state, self.launch_options)
        epochs.max_epochs = max_epochs
        return epochs


class _CudaEpochs:
    """One fit on the kernels, on the backend's stream (see :class:`.loop.EpochRunner`).

    Entered for the whole fit: every upload, launch and read runs inside
    ``backend.ordered()``, in order with the caller's stream.
    """

    def __init__(self, backend, state, data, config, random_state, launch_options):
        self.backend, self.state, self.data, self.config = backend, state, data, config
        self.random_state, self.launch_options = random_state, launch_options
        self._ordered = backend.ordered()

    def __enter__(self):
        self._ordered.__enter__()
        try:
            self._prepare()
        except BaseException:
            self._ordered.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        return self._ordered.__exit__(*exc)

    def _prepare(self) -> None:
        backend, config, random_state = self.backend, self.config, self.random_state
        shuffle_mode = _shuffle_mode(config, backend)
        self.next_permutation, seed = None, 0
        if shuffle_mode == kernel_constant("SHUFFLE_ORDER"):
            # the reference engine's source, drawn first: the same order for the same seed
            self.next_permutation = permutation_source(backend.xp, random_state, self.data.X)
        elif shuffle_mode == kernel_constant("SHUFFLE_BIJECTION"):
            seed = int(random_state.randint(np.iinfo(np.int32).max))
        self.fit = FusedFit(
            backend, self.state, self.data, config, shuffle_mode, seed, **self.launch_options
        )
        self.use_graphs = graphs_enabled(self.fit.steps_per_epoch * self.max_epochs)

    def run_epoch(self, state):
        fit = self.fit
        if self.next_permutation is not None:
            fit.order[...] = self.next_permutation(fit.n)
        fit.epoch_steps(self.use_graphs)
        summary = fit.end_epoch()
        fit.store(state, summary)
        return epoch_report(summary, fit.k, fit.n)

    def freeze(self, state, active) -> None:
        self.fit.freeze(active)

    def adaptive_changed(self, state) -> None:
        self.fit.set_adaptive_eta(state.adaptive_eta)
