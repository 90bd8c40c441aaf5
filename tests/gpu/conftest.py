"""GPU tests: marked ``gpu`` and skipped, with the reason, where CuPy or a device is missing."""

import pytest


def _gpu_skip_reason():
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install 'sk-gpusgd[cuda13]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no CUDA device"
    except Exception as error:  # noqa: BLE001 - any driver failure means no usable GPU
        return f"CuPy cannot reach a CUDA device: {error}"
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
