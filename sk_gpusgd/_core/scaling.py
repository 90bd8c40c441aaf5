"""How far a minibatch step may go: the batch gain from the data's curvature.

Per-sample SGD at rate ``eta`` moves the weights ``B`` times while it reads
``B`` rows. A minibatch step reads the same rows once, so to make the same
progress per sample it must take a larger step: ``gain(B) * eta`` on the batch
mean gradient. How large is safe depends on how much the rows of a batch agree.
For a linear model with the Hessian ``E[x x^T]`` (times the loss' curvature),
Ma, Bassily and Belkin (2018, "The power of interpolation", Theorem 2) show
that the best step for batches of ``m`` rows is ``m / (beta + lam (m - 1))``
times the loss' inverse curvature, where ``beta`` bounds ``||x||^2`` and
``lam`` is the largest eigenvalue of ``E[x x^T]``. Relative to one row
(``m = 1``) that is

    gain(m) = m * beta / (beta + lam * (m - 1)),

linear in ``m`` (Goyal et al. 2017's linear scaling rule) while
``m << beta / lam``, the batch size past which the rows' gradients mostly
agree, and saturating at ``beta / lam`` beyond it, where a bigger batch only
averages out noise. The loss' curvature cancels in the ratio, so one gain
serves every loss and schedule, and ``gain(1) = 1`` keeps ``batch_size=1``
scikit-learn's per-sample step exactly.

``beta`` is the mean squared row norm (the mean rather than the maximum, so one
outlying row does not slow every step) and ``lam`` is found by power
iteration; both include the intercept's constant feature when one is fitted.
They are measured once per fit on at most ``SAMPLE_ROWS`` evenly spaced rows.
On sparse X the power iteration runs over the columns those rows touch only
(``E[x x^T]`` of the sample is zero elsewhere), so that measuring costs the
sample's non-zeros, not ``n_features``: hashed text has 2^18 to 2^24 columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._backend import dtype_name, is_sparse, namespace_of, to_namespace

SAMPLE_ROWS = 4096
POWER_ITERATIONS = 30
# relative change of the eigenvalue estimate at which the power iteration stops
POWER_TOLERANCE = 1e-3


@dataclass(frozen=True)
class BatchScaling:
    """Data statistics that set the batch gain.

    Parameters
    ----------
    mean_squared_norm : float
        ``beta``: the mean of ``||x||^2`` over the rows (plus 1 for the intercept).
    top_eigenvalue : float
        ``lam``: the largest eigenvalue of ``E[x x^T]``, ``0 <= lam <= beta``.
    """

    mean_squared_norm: float
    top_eigenvalue: float

    def gain(self, n_rows: int) -> float:
        """``n_rows * beta / (beta + lam * (n_rows - 1))``, between 1 and ``n_rows``."""
        beta, lam = self.mean_squared_norm, self.top_eigenvalue
        if n_rows <= 1 or not beta > 0:
            return 1.0
        return n_rows * beta / (beta + lam * (n_rows - 1))

    def step_rate(self, xp, eta, n_rows: int, curvature: float, gain_floor: bool = False):
        """The rate of a step over ``n_rows`` rows, from the per-sample rate ``eta``.

        The linear scaling rule, ``n_rows * eta`` (the step does the work of
        ``n_rows`` per-sample steps), capped at the largest step the batch's
        curvature allows, ``eta*(m) = gain(m) / (curvature * beta)``; never
        below ``eta`` itself (a batch does not step shorter than one sample
        would). Late in a fit, when rates are small, the cap is inactive and a
        batch is worth ``n_rows`` samples; early, with the large initial rates
        of 'optimal', the cap keeps the batch stable. With one row this is
        ``eta``. With ``gain_floor`` (sparse rows) the floor is ``gain(m) * eta``:
        rows that share few features are ``gain(m)`` per-sample steps, each at
        the per-sample rate.
        """
        if not self.mean_squared_norm > 0:
            # rows of zeros: no curvature caps the step
            best = math.inf
        else:
            best = self.gain(n_rows) / (curvature * self.mean_squared_norm)
        floor = self.gain(n_rows) if gain_floor else 1.0
        if isinstance(eta, float):
            return min(n_rows * eta, max(floor * eta, best))
        return xp.minimum(n_rows * eta, xp.maximum(floor * eta, best))

    @property
    def critical_batch_size(self) -> float:
        """``beta / lam``: the batch size where the gain stops growing linearly."""
        if not self.top_eigenvalue > 0:
            return math.inf
        return self.mean_squared_norm / self.top_eigenvalue


def measure_scaling(
    X,
    fit_intercept: bool,
    mean=None,
    inv_scale=None,
    intercept_scale: float = 1.0,
    second_moment=None,
) -> BatchScaling:
    """``beta`` and ``lam`` of the rows of X; no gain (1) where they overflow.

    The intercept is a constant feature whose step is multiplied by
    ``intercept_scale`` (0.01 on sparse X, as scikit-learn damps it): a
    diagonal preconditioner, so it counts as a feature of value
    ``sqrt(intercept_scale)``. ``second_moment(X, stride, intercept)``, where given
    (the compiled extension's), reads host CSR rows in place; it returns None for
    input it does not take.
    """
    intercept = math.sqrt(intercept_scale) if fit_intercept else 0.0
    with np.errstate(all="ignore"):
        return _measure_scaling(X, intercept, mean, inv_scale, second_moment)


def _measure_scaling(X, intercept: float, mean, inv_scale, second_moment) -> BatchScaling:
    """``beta`` and ``lam`` of the rows of X (dense or CSR, any namespace).

    With ``mean`` and ``inv_scale`` (preconditioning), of the rows
    ``(x - mean) * inv_scale`` that the steps see.
    """
    n_rows, width, second_moment_times, sum_of_squares = _sampled_second_moment(
        X, intercept, mean, inv_scale, second_moment
    )
    if n_rows == 0:
        return BatchScaling(1.0, 1.0)

    # power iteration from the all-ones direction (the mean direction, usually dominant)
    vector = np.ones(width + 1)
    vector[-1] = intercept
    lam = 0.0
    for _ in range(POWER_ITERATIONS):
        norm = np.linalg.norm(vector)
        if not norm > 0:
            break
        vector = vector / norm
        image = second_moment_times(vector)
        previous, lam = lam, float(vector @ image)
        vector = image
        if abs(lam - previous) <= POWER_TOLERANCE * lam:
            # settled: the gain needs lam to a few digits, not to the last
            break
    beta = sum_of_squares() / n_rows + intercept * intercept
    lam = min(max(lam, 0.0), beta)
    if not (math.isfinite(beta) and math.isfinite(lam)):
        return BatchScaling(1.0, 1.0)
    # to 7 digits: the same data measured in other memory (another Dask worker, other
    # alignment) gives the same gain, so the same fit twice gives the same model
    return BatchScaling(float(f"{beta:.7g}"), float(f"{lam:.7g}"))


def _sampled_second_moment(X, intercept: float, mean=None, inv_scale=None, in_place=None):
    """``(n_rows, width, times, sum_of_squares)`` of at most ``SAMPLE_ROWS`` evenly spaced rows.

    ``times(v)`` is ``E[x x^T] v`` for ``x = [row, intercept]`` over the
    sample's ``width`` columns (``v`` has ``width + 1`` entries) and
    ``sum_of_squares()`` the rows' sum of squared values, known once ``times``
    has run. Dense rows keep all of X's columns; sparse rows only the columns
    they touch (see :func:`sampled_csr_rows`), multiplied by ``in_place`` (the
    compiled extension's product) where given. The sampled rows are brought to the host in
    float64 otherwise (once per fit).
    """
    stride = max(1, -(-X.shape[0] // SAMPLE_ROWS))
    if is_sparse(X):
        rows = sampled_csr_rows(X, stride)
        measured = None if in_place is None else in_place(rows, 1, intercept)
        if measured is not None:
            n_rows, times, sum_of_squares = measured
            return n_rows, rows.shape[1], times, sum_of_squares
        rows = rows.astype(np.float64, copy=False)
    else:
        rows = X[::stride] if stride > 1 else X
        # half precision first becomes float32 in its own namespace (torch's bfloat16
        # has no NumPy counterpart); at most SAMPLE_ROWS rows
        xp = namespace_of(rows)
        if dtype_name(rows) in ("float16", "bfloat16"):
            rows = xp.astype(rows, xp.float32)
        rows = np.asarray(to_namespace(rows, np), dtype=np.float64)
        if inv_scale is not None:
            mean = np.asarray(to_namespace(mean, np), dtype=np.float64)
            rows = (rows - mean) * np.asarray(to_namespace(inv_scale, np), dtype=np.float64)
    n_rows = rows.shape[0]

    def sum_of_squares():
        return float(rows.data @ rows.data if is_sparse(rows) else np.einsum("ij,ij->", rows, rows))

    def times(vector):
        # one product with the rows and one with their transpose
        projected = rows @ vector[:-1] + intercept * vector[-1]
        return (
            np.concatenate([np.asarray(rows.T @ projected).ravel(), [intercept * projected.sum()]])
            / n_rows
        )

    return n_rows, rows.shape[1], times, sum_of_squares


def sampled_csr_rows(X, stride: int):
    """The CSR rows ``0, stride, 2 stride, ...`` of sparse X, over the columns they touch.

    A host SciPy CSR matrix with X's values (float32 stays float32) and int32
    column indices numbering the sample's distinct columns in X's order. It is
    the same matrix whatever other columns X has, so the statistics do not
    depend on the width of a hashing space, and it is built from the sample's
    non-zeros (a table of X's columns only while there are fewer columns than
    sampled non-zeros). A copy of the sampled rows, at most ``SAMPLE_ROWS``.
    """
    import scipy.sparse as sp

    if hasattr(X, "get"):  # CuPy: only the sampled rows come to the host
        X, stride = (X[::stride] if stride > 1 else X).get(), 1
    starts = X.indptr[:-1:stride].astype(np.int64)
    lengths = X.indptr[1::stride].astype(np.int64) - starts
    new_indptr = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(lengths)])
    # each sampled value's position in X: its row's start plus its place in the row
    positions = np.repeat(starts - new_indptr[:-1], lengths) + np.arange(new_indptr[-1])
    data, columns = X.data[positions], X.indices[positions]
    n_features = X.shape[1]
    if n_features <= columns.size:
        # a table of the columns: cheaper than a sort while X is narrow
        touched = np.zeros(n_features, dtype=bool)
        touched[columns] = True
        local = (np.cumsum(touched) - 1)[columns]
        width = int(np.count_nonzero(touched))
    else:
        distinct, local = np.unique(columns, return_inverse=True)
        width = distinct.size
    return sp.csr_matrix(
        (data, local.astype(np.int32).ravel(), new_indptr), shape=(len(starts), width)
    )


# 'auto' batch sizes: rows per step where one step's fixed cost (a few NumPy calls
# per step in the NumPy engine, a kernel launch on a GPU) stops mattering next to its
# arithmetic
CPU_BATCH_SIZE = 256
GPU_BATCH_SIZE = 2048
# an epoch has at least this many steps, so that the stopping rule, which compares
# epochs, watches a trajectory rather than a handful of steps
MIN_STEPS_PER_EPOCH = 16


def auto_batch_is_one_row(n_samples: int) -> bool:
    """Whether ``batch_size='auto'`` takes one row a step whatever the data: fewer than
    ``2 * MIN_STEPS_PER_EPOCH`` rows (see :func:`auto_batch_size`)."""
    return n_samples // MIN_STEPS_PER_EPOCH <= 1


def auto_batch_size(
    n_samples: int, on_gpu: bool, critical_batch: float | None = None, min_batch: int = 1
) -> int:
    """The batch size ``batch_size='auto'`` picks for ``n_samples`` training rows.

    Without ``critical_batch``: ``min(device batch, n_samples // 16)``, at
    least 1: 256 rows on a CPU and 2048 on a GPU once the data has enough rows
    for 16 steps an epoch. These batches amortise a step's fixed cost (NumPy
    calls, a kernel launch); the capped linear-scaling step
    (:meth:`BatchScaling.step_rate`) keeps each sample's contribution.

    ``critical_batch`` (``beta / lam``, :attr:`BatchScaling.critical_batch_size`)
    is given where a step's fixed cost is small: the compiled CPU epoch. The
    batch is then the critical batch size, rounded down, the largest batch
    whose step still does the work of as many per-sample steps (Ma, Bassily and
    Belkin 2018), so that an epoch makes the progress of a per-sample epoch;
    but at least ``min_batch``, the batch past which the step's fixed cost is
    small next to its rows' (see :data:`COMPILED_MIN_BATCH`).
    """
    device_batch = GPU_BATCH_SIZE if on_gpu else CPU_BATCH_SIZE
    if critical_batch is not None and critical_batch >= 1:
        # an infinite critical batch (rows with no spread, e.g. one standardised row)
        # leaves the device batch
        device_batch = min(device_batch, max(min_batch, int(min(critical_batch, device_batch))))
    return max(1, min(device_batch, n_samples // MIN_STEPS_PER_EPOCH))


# The compiled CPU epoch's smallest useful batch. A dense step costs about
# 4 * n_features * n_outputs operations besides its rows (the model's weights, the
# shrink and step of every weight, the average), a row about 2 * n_features *
# n_outputs: with 16 rows the fixed part is 1/8 of the step. A sparse step's lazy
# update costs only the batch's non-zeros, so any batch size is cheap.
COMPILED_MIN_BATCH = {"dense": 16, "sparse": 1}
