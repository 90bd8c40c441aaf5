"""Host data larger than the device cap streams through the GPU; Dask with CuPy blocks."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

import sk_gpusgd._engines.streaming
from sk_gpusgd import GPUSGDClassifier

# float64 X of 6000 x 20 is 960,000 bytes: this cap streams it in several chunks
CAP = 300_000


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=8000, n_features=20, n_informative=12, n_classes=4, random_state=0
    )
    return train_test_split(X, y, train_size=6000, random_state=0)


@pytest.fixture
def pinned_chunks(monkeypatch):
    """Rows of every chunk the pinned, double-buffered feeder delivers."""
    seen = []
    chunks = sk_gpusgd._engines.streaming._PinnedFeeder.chunks

    def recording_chunks(self, order):
        for chunk in chunks(self, order):
            seen.append(chunk.n_samples)
            yield chunk

    monkeypatch.setattr(sk_gpusgd._engines.streaming._PinnedFeeder, "chunks", recording_chunks)
    return seen


def test_unshuffled_epoch_streamed_through_the_gpu_equals_the_in_memory_fit(
    cupy, data, pinned_chunks
):
    X_train, _, y_train, _ = data
    params = dict(shuffle=False, max_iter=1, tol=None, batch_size=32, momentum=0.9)
    in_memory = GPUSGDClassifier(device="cuda", **params).fit(X_train, y_train)
    streamed = GPUSGDClassifier(device="cuda", max_device_memory=CAP, **params)
    streamed.fit(X_train, y_train)
    assert len(pinned_chunks) > 2 and sum(pinned_chunks) == X_train.shape[0]
    assert streamed.device_.startswith("cuda")
    np.testing.assert_allclose(streamed.coef_, in_memory.coef_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(streamed.intercept_, in_memory.intercept_, rtol=1e-10, atol=1e-10)


def test_shuffled_streamed_fit_reaches_the_in_memory_accuracy(cupy, data, pinned_chunks):
    X_train, X_test, y_train, y_test = data
    params = dict(random_state=0, loss="log_loss", average=True, max_iter=20, batch_size=64)
    in_memory = GPUSGDClassifier(device="cuda", **params).fit(X_train, y_train)
    streamed = GPUSGDClassifier(device="cuda", max_device_memory=CAP, **params)
    streamed.fit(X_train, y_train)
    assert len(pinned_chunks) > streamed.n_iter_
    # the GPU in-memory fit shuffles on the device, the streamed one on the host
    assert abs(streamed.score(X_test, y_test) - in_memory.score(X_test, y_test)) <= 0.01
    same_seed = GPUSGDClassifier(device="cuda", max_device_memory=CAP, **params)
    np.testing.assert_array_equal(same_seed.fit(X_train, y_train).coef_, streamed.coef_)


def test_dask_fit_trains_cupy_blocks_on_the_gpu(cupy, data):
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    X_train, X_test, y_train, y_test = data
    with distributed.Client(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
    ):
        X_dask = da.from_array(X_train, chunks=(3000, -1)).map_blocks(cupy.asarray)
        y_dask = da.from_array(y_train, chunks=3000)
        model = GPUSGDClassifier(random_state=0, max_iter=5, tol=None).fit(X_dask, y_dask)
    assert model.device_ == "dask:cuda"
    single = GPUSGDClassifier(random_state=0, max_iter=5, tol=None, device="cpu")
    single.fit(X_train, y_train)
    assert model.score(X_test, y_test) > single.score(X_test, y_test) - 0.05
