"""Array namespaces and devices: where the work runs and how arrays move there.

The package never imports CuPy at import time; every function here imports it
lazily, only when an array or a request names the GPU.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp
from array_api_compat import array_namespace
from array_api_compat import device as array_device
from array_api_compat import is_cupy_namespace as _is_cupy_namespace
from array_api_compat import to_device as array_to_device

DEVICE_OPTIONS = ("auto", "cpu", "cuda")
FLOAT_DTYPE_NAMES = ("float64", "float32", "float16", "bfloat16")

# CuPy ships one wheel per CUDA major version; the driver's version picks it.
CUPY_INSTALL_HINT = (
    "install the CuPy wheel that matches your CUDA version: run `nvidia-smi` and read "
    "'CUDA Version' in its header, then `pip install cupy-cuda12x` for 12.x or "
    "`pip install cupy-cuda13x` for 13.x (from a clone of sk_gpusgd: "
    'pip install -e ".[cuda12]" or -e ".[cuda13]")'
)
NO_DEVICE_HINT = (
    "check that `nvidia-smi` lists a GPU (no output or an error means the NVIDIA "
    "driver is missing or cannot reach the device) and that CUDA_VISIBLE_DEVICES "
    "does not hide it"
)


def dtype_name(array) -> str:
    """'float32', 'int64', ... for any namespace's array."""
    return str(array.dtype).rsplit(".", 1)[-1]


def _cupy_module():
    """Return the already-imported ``cupy`` module, or None."""
    return sys.modules.get("cupy")


def is_cupy_namespace(xp) -> bool:
    """True for CuPy or array-api-compat's CuPy wrapper (the namespace the engine uses)."""
    return xp is not np and _is_cupy_namespace(xp)


def cupy_namespace():
    """array-api-compat's CuPy namespace: CuPy with the array-API function names."""
    return importlib.import_module("array_api_compat.cupy")


def is_cupy_array(array: Any) -> bool:
    """True for a CuPy ndarray (without importing CuPy)."""
    cupy = _cupy_module()
    return cupy is not None and isinstance(array, cupy.ndarray)


def is_cupy_sparse(array: Any) -> bool:
    """True for a cupyx.scipy.sparse matrix (without importing CuPy)."""
    module = sys.modules.get("cupyx.scipy.sparse")
    return module is not None and module.issparse(array)


def is_sparse(array: Any) -> bool:
    """True for a scipy.sparse or cupyx.scipy.sparse matrix or array."""
    return sp.issparse(array) or is_cupy_sparse(array)


def is_device_array(array: Any) -> bool:
    """True for an array-API array that is not NumPy (CuPy, torch, ...)."""
    if array is None or isinstance(array, np.ndarray) or sp.issparse(array):
        return False
    if is_cupy_sparse(array):
        return True
    if not hasattr(array, "__array_namespace__") and not _is_torch(array):
        return False
    return True


def _is_torch(array: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(array, torch.Tensor)


@lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        if importlib.util.find_spec("cupy") is None:
            return False
        cupy = importlib.import_module("cupy")
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - a broken driver means "no GPU"
        return False


def _why_no_cuda() -> str:
    """What is missing for the GPU path, and how to add it."""
    if importlib.util.find_spec("cupy") is None:
        return f"CuPy is not installed: {CUPY_INSTALL_HINT}."
    return f"CuPy is installed but sees no CUDA device: {NO_DEVICE_HINT}."


def namespace_of(*arrays: Any):
    """The array namespace of ``arrays`` (NumPy for scipy.sparse input)."""
    dense = []
    for array in arrays:
        if array is None:
            continue
        if sp.issparse(array):
            return np
        if is_cupy_sparse(array):
            return cupy_namespace()
        dense.append(array)
    if not dense:
        return np
    xp = array_namespace(*dense)
    if xp.__name__.endswith("numpy") and "array_api_compat" in xp.__name__:
        return np
    return xp


class DeviceUnavailableError(ValueError, RuntimeError):
    """``device='cuda'`` where no GPU is usable: a parameter value this machine cannot serve."""


def resolve_compute_namespace(device: str, X: Any):
    """Pick the namespace the training runs in.

    Parameters
    ----------
    device : {'auto', 'cpu', 'cuda'}
        The estimator's ``device`` parameter.
    X : array-like
        The validated training data.

    Returns
    -------
    xp : module
        NumPy, CuPy, or the input's own array-API namespace.
    """
    xp_in = namespace_of(X)
    if xp_in is np:
        if device == "cuda" or (device == "auto" and _pays_on_gpu(X) and cuda_available()):
            if not cuda_available():
                raise DeviceUnavailableError(
                    "device='cuda' was requested but no CUDA device is usable. "
                    f"{_why_no_cuda()} Or use device='cpu'."
                )
            return cupy_namespace()
        return np
    if is_cupy_array(X) or is_cupy_sparse(X):
        return np if device == "cpu" else xp_in
    # Other array-API libraries (torch, array-api-strict) compute where the data is.
    return xp_in


# host data smaller than this (values, or stored values of a sparse matrix) trains on the
# CPU with device='auto': a CPU epoch then takes milliseconds, less than the GPU's fixed
# cost of a fit (context, kernel compilation, transfers)
MIN_GPU_VALUES = 2**21


def _pays_on_gpu(X) -> bool:
    """Whether host data is large enough for ``device='auto'`` to move it to the GPU."""
    values = X.nnz if is_sparse(X) else int(np.prod(X.shape))
    return values >= MIN_GPU_VALUES


def device_name(xp, array: Any = None) -> str:
    """Human-readable name of where ``xp`` computes, for ``device_``."""
    if xp is np:
        return "cpu"
    if is_cupy_namespace(xp):
        return f"cuda:{sys.modules['cupy'].cuda.Device().id}"
    if array is not None:
        try:
            return str(array_device(array))
        except Exception:  # noqa: BLE001
            pass
    return xp.__name__


def to_namespace(array: Any, xp, like: Any = None):
    """Move ``array`` into namespace ``xp``; no copy when it is already there.

    Parameters
    ----------
    array : array or None
        NumPy, CuPy, scipy / cupyx sparse, or any array-API array.
    xp : module
        The target namespace.
    like : array, optional
        An array of ``xp`` whose device the result must share (torch CUDA
        tensors, array-api-strict devices); NumPy and CuPy need none.
    """
    if array is None:
        return None
    if sp.issparse(array):
        if xp is np:
            return array
        cupyx_sparse = importlib.import_module("cupyx.scipy.sparse")
        return cupyx_sparse.csr_matrix(array)
    if is_cupy_sparse(array):
        return array.get() if xp is np else array
    device = None
    if like is not None and not (xp is np or is_cupy_namespace(xp)):
        device = array_device(like)
    src = namespace_of(array)
    if src is xp:
        if device is not None and array_device(array) != device:
            return array_to_device(array, device)
        return array
    if xp is np:
        if is_cupy_array(array):
            return array.get()
        if _is_torch(array):
            return array.detach().cpu().numpy()
        try:
            return np.asarray(array)
        except (RuntimeError, TypeError, ValueError):
            # array-API arrays on a non-default device (array-api-strict's
            # test devices) convert only from their CPU device
            return np.asarray(array.to_device(src.Device("CPU_DEVICE")))
    if is_cupy_namespace(xp):
        return sys.modules["cupy"].asarray(to_namespace(array, np))
    host = to_namespace(array, np)
    return xp.asarray(host, device=device) if device is not None else xp.asarray(host)


def free_device_bytes(xp) -> int | None:
    """Free memory of the current CUDA device (plus CuPy's cached blocks); None off CuPy."""
    if not is_cupy_namespace(xp):
        return None
    import cupy

    free, _total = cupy.cuda.runtime.memGetInfo()
    return int(free + cupy.get_default_memory_pool().free_bytes())
