"""Input checks for arrays that scikit-learn's ``check_array`` does not handle.

Host input (NumPy, pandas, lists, scipy.sparse) goes through scikit-learn's
``validate_data``; device and array-API input (CuPy, cupyx.scipy.sparse, torch,
array-api-strict) gets the same checks here, without leaving its device.
"""

from __future__ import annotations

from ._backend import FLOAT_DTYPE_NAMES, dtype_name, is_cupy_sparse, namespace_of

FLOAT32_MAX = 3.4028234663852886e38


def check_device_features(X, *, what: str = "X"):
    """Validate a 2-D device array or cupyx sparse matrix; returns it (CSR, float)."""
    if is_cupy_sparse(X):
        X = X.tocsr()
        values = X.data
    else:
        values = X
    xp = namespace_of(values)
    if len(X.shape) != 2:
        raise ValueError(
            f"Expected a 2D array for {what}, got a {len(X.shape)}D array instead. Reshape "
            "your data with X.reshape(-1, 1) for a single feature or "
            "X.reshape(1, -1) for a single sample."
        )
    n_samples, n_features = X.shape
    if n_samples < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum "
            "of 1 is required."
        )
    if n_features < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum "
            "of 1 is required."
        )
    if dtype_name(values) not in FLOAT_DTYPE_NAMES:
        if is_cupy_sparse(X):
            X = X.astype(xp.float64)
            values = X.data
        else:
            X = xp.astype(X, xp.float64) if hasattr(xp, "astype") else X.astype("float64")
            values = X
    if values.shape[0] and not bool(xp.all(xp.isfinite(values))):
        raise ValueError(f"Input {what} contains NaN or infinity.")
    return X


def check_device_target(y, n_samples: int, *, numeric: bool):
    """Validate a device target vector; returns it 1-D."""
    xp = namespace_of(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = xp.reshape(y, (-1,))
    if y.ndim != 1:
        raise ValueError(f"y should be a 1d array, got an array of shape {tuple(y.shape)}.")
    if y.shape[0] != n_samples:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"[{n_samples}, {y.shape[0]}]"
        )
    if numeric and dtype_name(y) in FLOAT_DTYPE_NAMES:
        if not bool(xp.all(xp.isfinite(y))):
            raise ValueError("Input y contains NaN or infinity.")
    return y


def check_device_labels(y):
    """Class labels must be discrete: reject non-integral floats, as scikit-learn does."""
    xp = namespace_of(y)
    if dtype_name(y) in FLOAT_DTYPE_NAMES and not bool(xp.all(y == xp.floor(y))):
        raise ValueError(
            "Unknown label type: continuous. Maybe you are trying to fit a classifier, "
            "which expects discrete classes on a regression target with continuous values."
        )


def check_in_float32_range(values, compute_dtype_name: str, what: str) -> None:
    """Per-sample values a float32 fit casts to float32 must not overflow there."""
    if compute_dtype_name != "float32" or values.shape[0] == 0:
        return
    xp = namespace_of(values)
    largest = float(xp.max(xp.abs(values)))
    if largest > FLOAT32_MAX:
        raise ValueError(
            f"{what} holds values up to {largest:.3g}, beyond the float32 range "
            f"({FLOAT32_MAX:.3g}) this fit computes in (X is float32 or half precision). "
            f"Scale {what}, or give X as float64."
        )
