"""Kernel tests on the CPU: the CUDA source built against the host emulation (g++).

The library is compiled once per test session into a temporary directory.
"""

import shutil

import pytest


@pytest.fixture(scope="session")
def emulated():
    """The emulated backend (one g++ build per session)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to build the kernel emulation")
    from sk_gpusgd._engines.cuda.launcher import EmulatedBackend

    return EmulatedBackend()


@pytest.fixture
def kernel_runs(monkeypatch):
    """Count the fits the CUDA kernels trained (emulated or on a GPU)."""
    from sk_gpusgd._engines.cuda import driver

    calls = []
    original = driver.CudaEngine.start

    def counting_start(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(driver.CudaEngine, "start", counting_start)
    return calls
