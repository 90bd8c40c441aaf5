"""The CUDA engine's stream ordering and per-fit launch cost, on a real device.

The CPU emulation runs every launch synchronously, so it cannot show these: a fit on
the engine's own stream must wait for the caller's queued work (here a kernel that
spins before it writes X) and hand its weights back in the caller's order, and the
kernels are looked up once per process, not once per launch.
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification

from sk_gpusgd import GPUSGDClassifier
from sk_gpusgd._engines.cuda import launcher

PARAMS = dict(batch_size=64, shuffle=False, learning_rate="constant", eta0=0.05, tol=None,
              max_iter=3, preconditioner=None)  # fmt: skip

SLOW_COPY = r"""
extern "C" __global__ void slow_copy(const double* src, double* dst, long long n,
                                     long long spin) {
    long long start = clock64();
    while (clock64() - start < spin) {}
    for (long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += gridDim.x * blockDim.x)
        dst[i] = src[i];
}
"""


@pytest.fixture(scope="module")
def problem():
    return make_classification(n_samples=4000, n_features=32, random_state=0)


def test_a_fit_waits_for_the_work_the_caller_queued(cupy, problem):
    X, y = problem
    expected = GPUSGDClassifier(**PARAMS).fit(cupy.asarray(X), cupy.asarray(y))
    slow_copy = cupy.RawKernel(SLOW_COPY, "slow_copy")
    caller = cupy.cuda.Stream(non_blocking=True)
    with caller:
        source = cupy.asarray(X)
        X_gpu = cupy.zeros_like(source)
        y_gpu = cupy.asarray(y)
        caller.synchronize()
        # about 0.1 s of spinning before X lands: a fit that does not wait reads zeros
        slow_copy((64,), (256,), (source, X_gpu, np.int64(X.size), np.int64(2 * 10**8)))
        model = GPUSGDClassifier(**PARAMS).fit(X_gpu, y_gpu)
        coef = model.coef_.copy()  # queued on the caller's stream after the fit
    caller.synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(coef), cupy.asnumpy(expected.coef_))


class CountingModule:
    """The compiled module, counting its kernel lookups (each builds a RawKernel)."""

    def __init__(self, module):
        self.module, self.lookups = module, []

    def get_function(self, name):
        self.lookups.append(name)
        return self.module.get_function(name)


def test_kernels_are_looked_up_once_per_process(cupy, problem, monkeypatch):
    X, y = problem
    counting = CountingModule(launcher._cupy_module())
    monkeypatch.setattr(launcher, "_cupy_module", lambda: counting)
    launcher._cupy_function.cache_clear()
    try:
        for _ in range(2):
            GPUSGDClassifier(**PARAMS).fit(cupy.asarray(X), cupy.asarray(y))
    finally:
        launcher._cupy_function.cache_clear()  # drop the lookups made through the proxy
    assert counting.lookups, "the fits did not run on the kernels"
    assert len(counting.lookups) == len(set(counting.lookups))
