"""The array-API engine: one epoch on any namespace's arrays, dense or CSR.

The compiled C epoch where it covers the fit (NumPy and SciPy input), else the
array-API dense pass (:mod:`.reference`, which defines the results) or the lazy
sparse pass (:mod:`.sparse`); and the per-epoch row orders, drawn on the host (by
the compiled shuffle where the extension is built) or on the GPU for CuPy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from .._backend import is_cupy_namespace, is_sparse
from .._core.types import FrozenColumns, TrainingData, TrainingState
from . import compiled
from .reference import dense_epoch, epoch_summary
from .sparse import sparse_epoch


def default_epoch(xp, state: TrainingState, data: TrainingData, config, order, frozen, memo=None):
    """One pass: the compiled epoch where it covers the fit, else the NumPy pass.

    Both give the same result up to rounding; :mod:`.compiled` says what the
    compiled one covers. ``memo``, a dict kept across one fit's epochs, lets
    the compiled epoch prepare its fixed inputs once.
    """
    if compiled.unsupported_reason(xp, state, data, config) is None:
        return compiled.compiled_epoch(xp, state, data, config, order, frozen, memo)
    numpy_pass = sparse_epoch if is_sparse(data.X) else dense_epoch
    return numpy_pass(xp, state, data, config, order, frozen)


def permutation_source(xp, random_state: np.random.RandomState, X) -> Callable[[int], Any]:
    """A function giving a fresh permutation of ``range(n)`` per epoch, in ``xp``."""
    if is_cupy_namespace(xp):
        import cupy

        seed = int(random_state.randint(np.iinfo(np.int32).max))
        device_generator = cupy.random.RandomState(seed)
        return device_generator.permutation
    host_source = None
    if isinstance(random_state, np.random.RandomState):
        # anything else that has a permutation() (a test's fixed orders) is used as it is
        host_source = compiled.permutation_source(random_state)
    host_source = host_source or random_state.permutation
    if xp is np or is_sparse(X):
        return host_source
    device = array_device(X)
    return lambda n: xp.asarray(host_source(n), device=device)


class ArrayApiEngine:
    """The array-API engine: every namespace, dense and CSR, host and device.

    Each epoch is :func:`default_epoch` (the compiled C epoch where it covers the
    fit, else the array-API dense or sparse pass) over a fresh order from
    :func:`permutation_source`; ``epoch_runner`` and ``next_permutation`` replace
    them (the streamed fit walks host chunks, tests pass fixed orders).
    """

    fallback = None  # it runs every fit

    def __init__(self, epoch_runner=None, next_permutation=None):
        self.epoch_runner = epoch_runner
        self.next_permutation = next_permutation

    def start(self, xp, state, data, config, random_state, max_epochs):
        next_permutation = self.next_permutation
        if next_permutation is None:
            next_permutation = permutation_source(xp, random_state, data.X)
        runner = self.epoch_runner or functools.partial(default_epoch, memo={})
        return ArrayApiEpochs(xp, state, data, config, runner, next_permutation)


class ArrayApiEpochs:
    """One fit on the array-API engine (see :class:`.loop.EpochRunner`)."""

    def __init__(self, xp, state, data, config, runner, next_permutation):
        self.xp, self.data, self.config = xp, data, config
        self.runner, self.next_permutation = runner, next_permutation
        self.frozen = FrozenColumns(xp, state, np.ones(int(data.targets.shape[1]), dtype=bool))
        self._errstate = np.errstate(all="ignore")

    def __enter__(self):
        self._errstate.__enter__()
        return self

    def __exit__(self, *exc):
        return self._errstate.__exit__(*exc)

    def run_epoch(self, state):
        xp, data, config = self.xp, self.data, self.config
        order = self.next_permutation(data.n_samples) if config.shuffle else None
        totals = self.runner(xp, state, data, config, order, self.frozen)
        self.frozen.restore(xp, state)
        return epoch_summary(xp, state, totals, data.n_samples)

    def freeze(self, state, active) -> None:
        running = ("l1_total",) if self.config.n_candidates > 1 else ()
        self.frozen = FrozenColumns(self.xp, state, active, running=running)

    def adaptive_changed(self, state) -> None:
        """The epochs read ``state.adaptive_eta`` themselves."""
