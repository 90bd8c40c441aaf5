"""The per-epoch stopping rule, for training loops that call the engine piecewise.

The Dask fit (rounds of local training and averaging) runs
:func:`sk_gpusgd._engines.loop.run` on pieces of an epoch, so the engine's own
stopping rule never sees a whole epoch. :class:`EpochRule` closes each whole
epoch with the engine's own :func:`sk_gpusgd._engines.loop.close_epoch`, for the
whole model: mean loss plus the penalty of the epoch's final weights (or the
mean of the validation scores) must improve by ``tol`` within
``n_iter_no_change`` epochs; the 'adaptive' rate is divided by 5 instead of
stopping while it is above its floor. Unlike the in-memory engine, the
one-vs-rest columns stop together and the penalty is not summed row by row.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .._backend import to_namespace
from .._core.steps import penalty_columns
from .._core.types import EngineConfig, RunReport, TrainingState
from .loop import StoppingRule, close_epoch
from .progress import FitProgress


class EpochRule:
    """Stopping rule and report of a loop that runs the engine in pieces.

    Parameters
    ----------
    config : EngineConfig
        The fit's configuration (its ``tol``, ``n_iter_no_change``, schedule).
    validation_score : callable, optional
        ``validation_score(state) -> float``, watched instead of the objective.
    use_stopping_rule : bool
        False for ``partial_fit``: never stop early.
    max_epochs : int
        Epochs the loop may run (for the progress output).
    """

    def __init__(
        self,
        config: EngineConfig,
        validation_score: Callable[[TrainingState], float] | None = None,
        use_stopping_rule: bool = True,
        max_epochs: int = 1,
    ):
        self.config = config
        self.validation_score = validation_score
        self.use_stopping_rule = use_stopping_rule
        self.max_epochs = max_epochs
        self.report = RunReport()
        self._rule = None
        self._progress = None

    def end_epoch(self, xp, state: TrainingState, loss_sum: float, n_samples: int) -> bool:
        """Record one whole epoch; True when the fit should stop.

        Raises
        ------
        DivergenceError
            When the weights or the loss stopped being finite.
        """
        config = self.config
        n_outputs = int(state.coef.shape[1])
        if self._rule is None:
            early = self.validation_score is not None
            self._rule = StoppingRule(config, n_outputs, early_stopping=early)
            self._progress = FitProgress(config.verbose, self.max_epochs, n_samples)
        if state.adaptive_eta is None and config.schedule.kind == "adaptive":
            state.adaptive_eta = (float(config.schedule.eta0),) * n_outputs
        coef, intercept = state.model_weights()
        penalty_per_column = penalty_columns(xp, coef, config.optimizer)
        penalty = 0.0 if penalty_per_column is None else xp.sum(penalty_per_column)
        summary = xp.stack(
            [xp.asarray(penalty, dtype=coef.dtype), xp.sum(state.coef) + xp.sum(intercept)]
        )
        penalty, probe = (float(v) for v in to_namespace(summary, np))
        mean_loss = float(loss_sum) / n_samples
        # the whole model as one column: the loss and penalty in the first, zeros elsewhere
        losses = np.zeros(n_outputs)
        losses[0] = mean_loss
        objectives = losses.copy()
        objectives[0] += penalty
        finite = math.isfinite(mean_loss) and math.isfinite(probe)
        outcome = close_epoch(
            xp,
            state,
            config,
            self.report,
            self._progress,
            self._rule,
            (losses, objectives, finite),
            self.validation_score,
            self.use_stopping_rule,
            joint=True,
        )
        return outcome.converged
