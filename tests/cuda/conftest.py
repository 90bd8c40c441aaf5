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
