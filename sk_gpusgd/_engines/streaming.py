"""Training on host data larger than the device: the rows go through it chunk by chunk.

The training data stays on the host; each epoch draws one permutation of all
rows (as the in-memory fit does), cuts it into chunks of ``chunk_rows`` rows (a
multiple of ``batch_size``, so the batches are the in-memory fit's batches) and
runs the engine over one chunk at a time with the rows already in order. On
CuPy, two pinned host buffers and a second (non-blocking) CUDA stream copy the
next chunk while the current one trains. On NumPy the same loop runs (the
"device" is the host), which is how it is tested without a GPU.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._backend import is_cupy_namespace, is_sparse, to_namespace
from .._core.types import EpochTotals, TrainingData
from .array_api import ArrayApiEngine, ArrayApiEpochs, default_epoch, permutation_source

# Share of the free device memory a fit plans to use when no cap is given.
FREE_MEMORY_SHARE = 0.8
# Arrays of the size of coef the state and a step may hold at once
# (coef, momentum buffer, average, L1 record, gradient, temporaries).
STATE_COPIES = 8


def data_bytes(X) -> int:
    """Bytes of a dense or CSR host array."""
    if is_sparse(X):
        return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)
    return int(X.nbytes)


def plan_chunk_rows(
    X,
    n_outputs: int,
    itemsize: int,
    batch_size: int,
    budget: int,
    has_sample_weight: bool,
) -> int | None:
    """Rows per chunk when the data does not fit in ``budget`` bytes, else None.

    Parameters
    ----------
    X : ndarray or CSR matrix
        The host training data.
    n_outputs : int
        Columns of the targets (one-vs-rest classes, or 1).
    itemsize : int
        Bytes per value of the compute dtype.
    batch_size : int
        Rows per step; a chunk holds a whole number of batches.
    budget : int
        Device bytes the fit may use.
    has_sample_weight : bool
        Whether a weight per row travels with the data.

    Raises
    ------
    ValueError
        When the budget cannot hold the state and two chunks of one batch.
    """
    n_samples, n_features = X.shape
    per_row = data_bytes(X) / max(n_samples, 1)
    per_row += itemsize * (n_outputs + (1 if has_sample_weight else 0))
    fixed = STATE_COPIES * itemsize * (n_features + 1) * n_outputs
    fixed += 4 * batch_size * itemsize * (n_features + n_outputs)
    if fixed + per_row * n_samples <= budget:
        return None
    # two chunks live at once: the one training and the next one arriving
    rows = int((budget - fixed) // (2 * per_row)) // batch_size * batch_size
    if rows < batch_size:
        needed = int(fixed + 2 * per_row * batch_size)
        raise ValueError(
            f"A device memory budget of {budget} bytes (max_device_memory, or "
            f"{FREE_MEMORY_SHARE:.0%} of the free device memory when it is None) is too "
            "small for this data: the model and "
            f"two chunks of one batch ({batch_size} rows) need about {needed} bytes. "
            "Raise max_device_memory or lower batch_size."
        )
    return rows


class StreamingEngine(ArrayApiEngine):
    """The array-API engine over host data streamed through the device in chunks.

    ``state`` lives in the compute namespace; the data stays NumPy / SciPy. Each
    epoch walks one permutation of all rows, drawn on the host, chunk by chunk: the
    same batches in the same order as in memory.
    """

    def __init__(self, chunk_rows: int):
        super().__init__()
        self.chunk_rows = chunk_rows

    def start(self, xp, state, data, config, random_state, max_epochs):
        feeder = _feeder(xp, data, self.chunk_rows)

        def streamed_epoch(xp, state, data, config, order, frozen):
            totals = EpochTotals(config)
            for chunk in feeder.chunks(order):
                # the rows arrive in epoch order: no shuffling inside a chunk
                totals.merge(default_epoch(xp, state, chunk, config, None, frozen))
            return totals

        epochs = _StreamedEpochs(
            xp, state, data, config, streamed_epoch, permutation_source(np, random_state, data.X)
        )
        epochs.feeder = feeder
        return epochs


class _StreamedEpochs(ArrayApiEpochs):
    def __exit__(self, *exc):
        self.feeder.close()
        return super().__exit__(*exc)


def _bounds(n_samples: int, chunk_rows: int):
    return [
        (start, min(start + chunk_rows, n_samples)) for start in range(0, n_samples, chunk_rows)
    ]


def _host_rows(array, order, start, stop):
    """Rows ``start:stop`` of the epoch order of a host array (a view without order)."""
    if array is None:
        return None
    if order is None:
        return array[start:stop]
    if is_sparse(array):
        return array[order[start:stop]]
    return np.take(array, order[start:stop], axis=0)


def _feeder(xp, data: TrainingData, chunk_rows: int):
    if is_cupy_namespace(xp) and not is_sparse(data.X):
        return _PinnedFeeder(data, chunk_rows)
    return _PlainFeeder(xp, data, chunk_rows)


class _PlainFeeder:
    """Chunks moved to ``xp`` one after the other (NumPy, and sparse data on CuPy)."""

    def __init__(self, xp, data: TrainingData, chunk_rows: int):
        self.xp = xp
        self.data = data
        self.chunk_rows = chunk_rows
        self.positive_weight = to_namespace(data.positive_weight, xp)
        self.negative_weight = to_namespace(data.negative_weight, xp)

    def chunks(self, order):
        data, xp = self.data, self.xp
        for start, stop in _bounds(data.n_samples, self.chunk_rows):
            yield TrainingData(
                X=to_namespace(_host_rows(data.X, order, start, stop), xp),
                targets=to_namespace(_host_rows(data.targets, order, start, stop), xp),
                sample_weight=to_namespace(_host_rows(data.sample_weight, order, start, stop), xp),
                positive_weight=self.positive_weight,
                negative_weight=self.negative_weight,
            )

    def close(self):
        pass


class _PinnedFeeder:  # pragma: no cover - needs a CUDA device (tests/gpu/)
    """Double-buffered host-to-device copies of dense chunks on a second CUDA stream.

    A worker thread gathers the next chunk's rows into a pinned host buffer and
    queues its copy on the copy stream while the engine trains on the current
    chunk. Each of the two slots is guarded by two events, since no host sync
    separates the chunks (the engine queues a chunk's steps and returns):

    - the compute stream waits for the slot's *copied* event before it trains on
      the chunk, and the host waits for it before it rewrites the pinned buffer
      (an asynchronous copy may still be reading it);
    - the copy stream waits for the slot's *used* event, recorded on the compute
      stream once the engine has queued every step of the chunk, before it writes
      the slot's device buffers again (the steps may still be reading them).
    """

    def __init__(self, data: TrainingData, chunk_rows: int):
        import cupy
        import cupyx

        self.cupy = cupy
        self.data = data
        self.chunk_rows = chunk_rows
        shape = (chunk_rows, *data.X.shape[1:])
        self.pinned = [cupyx.empty_pinned(shape, dtype=data.X.dtype) for _ in range(2)]
        self.device = [cupy.empty(shape, dtype=data.X.dtype) for _ in range(2)]
        self.copy_stream = cupy.cuda.Stream(non_blocking=True)
        self.device_id = cupy.cuda.Device().id
        self.positive_weight = to_namespace(data.positive_weight, cupy)
        self.negative_weight = to_namespace(data.negative_weight, cupy)
        self.copied = [None, None]  # per slot: the copy stream's event after its last copy
        self.used = [None, None]  # per slot: the compute stream's event after its last chunk
        self.worker = ThreadPoolExecutor(max_workers=1)

    def _stage(self, slot, order, start, stop):
        cupy, data = self.cupy, self.data
        n_rows = stop - start
        pinned = self.pinned[slot][:n_rows]
        if self.copied[slot] is not None:
            self.copied[slot].synchronize()  # the last copy out of this pinned buffer is done
        if order is None:
            np.copyto(pinned, data.X[start:stop])
        else:
            np.take(data.X, order[start:stop], axis=0, out=pinned)
        with cupy.cuda.Device(self.device_id), self.copy_stream:
            if self.used[slot] is not None:
                # the steps of the chunk this slot held before are done with it
                self.copy_stream.wait_event(self.used[slot])
            device_X = self.device[slot][:n_rows]
            device_X.set(pinned, stream=self.copy_stream)
            targets = cupy.asarray(_host_rows(data.targets, order, start, stop))
            weights = _host_rows(data.sample_weight, order, start, stop)
            weights = None if weights is None else cupy.asarray(weights)
            self.copied[slot] = self.copy_stream.record()
        return device_X, targets, weights, self.copied[slot]

    def chunks(self, order):
        bounds = _bounds(self.data.n_samples, self.chunk_rows)
        pending = self.worker.submit(self._stage, 0, order, *bounds[0])
        for index in range(len(bounds)):
            slot = index % 2
            device_X, targets, weights, copied = pending.result()
            if index + 1 < len(bounds):
                # the other slot's last chunk (index - 1) was queued and its event recorded
                pending = self.worker.submit(self._stage, 1 - slot, order, *bounds[index + 1])
            compute_stream = self.cupy.cuda.get_current_stream()
            compute_stream.wait_event(copied)
            yield TrainingData(
                X=device_X,
                targets=targets,
                sample_weight=weights,
                positive_weight=self.positive_weight,
                negative_weight=self.negative_weight,
            )
            self.used[slot] = compute_stream.record()

    def close(self):
        self.worker.shutdown(wait=True)
        self.copy_stream.synchronize()
