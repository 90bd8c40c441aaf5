"""Diagonal preconditioning: SGD as if the features were standardised, same objective.

Minibatch SGD on raw features is slow and unstable when the features have
different scales or large means: the Hessian ``E[x x^T]`` is then dominated by
one direction (the mean, or the widest feature), the rows of a batch all agree
in it, and the batch gain (:mod:`._scaling`) collapses to one. scikit-learn
recommends standardising X for SGD for this reason.

The engine can instead train internal weights ``v`` and intercept ``c`` with
the decision ``((x - mean) / scale) @ v + c``, where ``mean`` and ``scale`` are
the features' means and standard deviations measured once per fit, and map
them back to the model's weights

    coef = v / scale,    intercept = c - mean @ coef.

The penalty stays the model's own, ``alpha * R(coef)``: in terms of ``v`` the
L2 strength of feature ``j`` is ``l2 / scale_j**2`` and its L1 strength
``l1 / scale_j``. The fitted model therefore minimises the same objective as
without preconditioning (a fixed point of the preconditioned step is a
stationary point of the original objective); only the path to it changes, as
with any diagonally preconditioned gradient method. Without an intercept the
mean is taken as 0 and the scale is the root mean square: a pure rescaling, so
the model class (every linear function of X) is unchanged. Dense X only:
centring would make a sparse X dense.
"""

from __future__ import annotations

import numpy as np

# rows per pass when measuring the statistics of half-precision X (no full float32 copy)
CHUNK_ROWS = 65536


def feature_statistics(xp, X, dtype, centre: bool = True):
    """Per-feature mean and ``1 / std`` of X (1 where a feature is constant), in ``dtype``.

    With ``centre=False`` (a model without an intercept) the mean is 0 and the
    scale the root mean square ``sqrt(E[x^2])``: the steps then see
    ``x / scale``, a rescaling of every column that keeps every linear function
    of X reachable (centring would remove the constant direction, which only
    an intercept can restore). A column of zeros keeps a scale of 1.

    Where the statistics overflow (values near the float range), the feature is
    left as it is: mean 0, scale 1.
    """
    with np.errstate(all="ignore"):
        mean, inv_scale = _feature_statistics(xp, X, dtype, centre)
    usable = xp.isfinite(mean) & xp.isfinite(inv_scale) & (inv_scale > 0)
    return xp.where(usable, mean, 0.0), xp.where(usable, inv_scale, 1.0)


def _feature_statistics(xp, X, dtype, centre: bool = True):
    n_samples = X.shape[0]
    total = None
    for chunk in _chunks(xp, X, dtype):
        # a product with ones: BLAS, faster than a reduction over axis 0
        part = xp.ones_like(chunk[:, 0]) @ chunk
        total = part if total is None else total + part
    mean = total / n_samples if centre else xp.zeros_like(total)
    squares = None
    for chunk in _chunks(xp, X, dtype):
        centred = chunk - mean if centre else chunk
        part = xp.ones_like(chunk[:, 0]) @ (centred * centred)
        squares = part if squares is None else squares + part
    return mean, inverse_scale(xp, mean, xp.sqrt(squares / n_samples))


def _chunks(xp, X, dtype):
    """X in blocks of CHUNK_ROWS rows, in ``dtype`` (no copy when X already is)."""
    n_samples = X.shape[0]
    for start in range(0, n_samples, CHUNK_ROWS):
        # an in-bounds stop: the array API leaves out-of-bounds slices unspecified
        yield xp.astype(X[start : min(start + CHUNK_ROWS, n_samples), ...], dtype, copy=False)


def inverse_scale(xp, mean, std):
    """``1 / std`` per feature, 1 where a feature is constant (up to rounding)."""
    # a constant feature needs no scaling; its weight is driven by the penalty alone
    tiny = 1e3 * xp.finfo(std.dtype).eps * (1.0 + xp.abs(mean))
    return xp.where(std > tiny, 1.0 / xp.where(std > tiny, std, 1.0), 1.0)


def to_internal(coef, intercept, mean, inv_scale):
    """Model weights ``(coef, intercept)`` to the engine's ``(v, c)``."""
    return coef / inv_scale[:, None], intercept + mean @ coef


def to_model(v, c, mean, inv_scale):
    """The engine's ``(v, c)`` to the model's ``(coef, intercept)``."""
    coef = v * inv_scale[:, None]
    return coef, c - mean @ coef


def preconditioned_gradient(xp, X_batch, derivative, mean, inv_scale):
    """``((X_b - mean) / scale)^T d`` without forming the centred batch, and ``sum(d)``."""
    column_sum = xp.ones_like(derivative[:, 0]) @ derivative
    raw = X_batch.T @ derivative
    return (raw - mean[:, None] * column_sum[None, :]) * inv_scale[:, None], column_sum
