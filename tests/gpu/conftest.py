"""GPU tests: marked ``gpu`` and skipped, with the reason, where CuPy or a device is missing."""

import pytest

from sk_gpusgd._backend import CUPY_INSTALL_HINT, NO_DEVICE_HINT


def _gpu_skip_reason():
    try:
        import cupy
    except ImportError:
        return f"CuPy is not installed; to run these tests, {CUPY_INSTALL_HINT}"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return f"CuPy sees no CUDA device: {NO_DEVICE_HINT}"
    except Exception as error:  # noqa: BLE001 - any driver failure means no usable GPU
        return f"CuPy cannot reach a CUDA device ({error}): {NO_DEVICE_HINT}"
    return None


GPU_SKIP_REASON = _gpu_skip_reason()


def pytest_collection_modifyitems(config, items):
    """Mark every test in this folder ``gpu``; skip them all when there is no device."""
    for item in items:
        if "tests/gpu/" not in str(item.fspath).replace("\\", "/"):
            continue
        item.add_marker(pytest.mark.gpu)
        if GPU_SKIP_REASON is not None:
            item.add_marker(pytest.mark.skip(reason=GPU_SKIP_REASON))


@pytest.fixture
def cupy():
    """The CuPy module (tests using it are skipped above when there is no GPU)."""
    import cupy

    return cupy
