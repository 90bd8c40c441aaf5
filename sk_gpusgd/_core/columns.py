"""Several models side by side as blocks of output columns (a batched search).

The candidates of a search that see the same rows in the same batches train as one
state whose columns are the candidates' columns, block after block. Their numbers
(``alpha``, ``eta0``, ``tol``, ...) become arrays of one value per column, which the
step's arithmetic broadcasts; every column's arithmetic is the one a single fit does.
What does not broadcast by itself is a coupled loss: :class:`BlockLoss` applies the
softmax within each block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .losses import Loss


@dataclass(frozen=True)
class BlockLoss(Loss):
    """A coupled (softmax) loss applied within each of ``blocks`` blocks of columns."""

    inner: Loss = None
    blocks: int = 1

    @property
    def curvature(self):  # noqa: D102 - the inner loss'
        return self.inner.curvature

    @property
    def joint(self):  # noqa: D102
        return self.inner.joint

    @property
    def bounded(self):  # noqa: D102
        return self.inner.bounded

    def value_and_derivative(self, xp, decision, target):
        """The inner loss on every block, rows of blocks stacked: (batch * blocks, width)."""
        n_rows, n_columns = decision.shape
        width = n_columns // self.blocks
        shape = (n_rows * self.blocks, width)
        value, derivative = self.inner.value_and_derivative(
            xp, xp.reshape(decision, shape), xp.reshape(target, shape)
        )
        return xp.reshape(value, (n_rows, n_columns)), xp.reshape(derivative, (n_rows, n_columns))

    def derivative_scalar(self, decision: float, target: float) -> float:
        return self.inner.derivative_scalar(decision, target)


def per_column(values, width: int, dtype=np.float64):
    """One value per candidate to one per column (``width`` columns a candidate).

    A float when every candidate has the same value, so that a group whose
    candidates agree runs exactly a single fit's arithmetic.
    """
    values = np.asarray(values, dtype=np.float64)
    if np.all(values == values[0]):
        return float(values[0])
    return np.repeat(values, width).astype(dtype)
