"""One engine's run in one call: :func:`~._engines.loop.train` with that engine.

For the Dask rounds (each block trains on the array-API engine), the tests and the
benchmarks, which run an engine without an estimator around it. It sits beside the
plan, above the loop and the engines, so that neither imports the other.
"""

from __future__ import annotations

from typing import Any

from ._core.types import RunReport
from ._engines.array_api import ArrayApiEngine
from ._engines.cuda.driver import CudaEngine
from ._engines.loop import train
from ._engines.streaming import StreamingEngine


def run(xp, state, data, config, *, epoch_runner=None, next_permutation=None, **loop_options):
    """Train on the array-API engine; ``epoch_runner`` and ``next_permutation`` replace
    its epoch and its row orders (see :class:`~._engines.array_api.ArrayApiEngine`)."""
    engine = ArrayApiEngine(epoch_runner, next_permutation)
    return train(engine, xp, state, data, config, **loop_options)


def run_kernels(
    xp,
    state,
    data,
    config,
    *,
    backend: Any = None,
    launch_options: dict | None = None,
    **loop_options,
) -> RunReport:
    """Train on the CUDA kernels, with no fall-back (a failure is raised).

    ``backend`` defaults to CuPy for CuPy input and to the CPU emulation for NumPy input.
    """
    engine = CudaEngine(backend=backend, launch_options=launch_options)
    return train(engine, xp, state, data, config, **loop_options)


def stream_run(xp, state, data, config, *, chunk_rows: int, **loop_options) -> RunReport:
    """Train on host ``data`` streamed through ``xp``'s device in chunks of ``chunk_rows``."""
    return train(StreamingEngine(chunk_rows), xp, state, data, config, **loop_options)
