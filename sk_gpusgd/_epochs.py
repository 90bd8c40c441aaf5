"""The per-epoch stopping rule, for training loops that call the engine piecewise.

The streamed fit (chunks of the data through the device) and the Dask fit
(rounds of local training and averaging) run :func:`sk_gpusgd._engine.run` on
pieces of an epoch, so the engine's own stopping rule never sees a whole
epoch. :class:`EpochRule` applies the same rule once per whole epoch: mean loss
plus penalty (or the validation score) must improve by ``tol`` within
``n_iter_no_change`` epochs; the 'adaptive' rate is divided by 5 instead of
stopping while it is above its floor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from ._backend import to_namespace
from ._engine import (
    DivergenceError,
    EngineConfig,
    RunReport,
    TrainingState,
    current_learning_rate,
    penalty_value,
)
from ._schedules import ADAPTIVE_DIVISOR, MIN_ADAPTIVE_ETA


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
    """

    def __init__(
        self,
        config: EngineConfig,
        validation_score: Callable[[TrainingState], float] | None = None,
        use_stopping_rule: bool = True,
    ):
        self.config = config
        self.validation_score = validation_score
        self.use_stopping_rule = use_stopping_rule
        self.report = RunReport()
        self._best_objective = math.inf
        self._best_score = -math.inf
        self._no_improvement = 0
        self._started = time.perf_counter()

    def end_epoch(self, xp, state: TrainingState, loss_sum: float, n_samples: int) -> bool:
        """Record one whole epoch; True when the fit should stop.

        Raises
        ------
        DivergenceError
            When the weights or the loss stopped being finite.
        """
        config = self.config
        epoch = self.report.n_epochs + 1
        mean_loss = float(loss_sum) / n_samples
        summary = xp.stack(
            [
                penalty_value(xp, state.coef, config.optimizer),
                xp.sum(state.coef) + xp.sum(state.intercept),
            ]
        )
        penalty, probe = (float(v) for v in to_namespace(summary, np))
        if not (math.isfinite(mean_loss) and math.isfinite(probe)):
            raise DivergenceError(
                f"The weights overflowed to inf/NaN at epoch {epoch}: the learning rate "
                f"(learning_rate={config.schedule.kind!r}, eta0={config.schedule.eta0}) is "
                "too large for this data. Lower eta0, choose a decaying learning_rate, or "
                "scale X (e.g. with StandardScaler)."
            )
        self.report.n_epochs = epoch
        self.report.loss_curve.append(mean_loss)
        objective = mean_loss + penalty
        score = None
        if self.validation_score is not None:
            score = self.validation_score(state)
            improved = config.tol is None or score >= self._best_score + config.tol
            self._best_score = max(self._best_score, score)
        else:
            improved = config.tol is None or objective <= self._best_objective - config.tol
            self._best_objective = min(self._best_objective, objective)
        if config.verbose:
            extra = "" if score is None else f", validation score: {score:.6f}"
            print(
                f"-- Epoch {epoch}: avg. loss {mean_loss:.6f}, objective {objective:.6f}, "
                f"steps {state.steps}{extra}, {time.perf_counter() - self._started:.2f} s"
            )
        if not self.use_stopping_rule or config.tol is None:
            return False
        self._no_improvement = 0 if improved else self._no_improvement + 1
        if self._no_improvement < config.n_iter_no_change:
            return False
        eta = current_learning_rate(state, config)
        if config.schedule.kind == "adaptive" and eta > MIN_ADAPTIVE_ETA:
            state.adaptive_eta = eta / ADAPTIVE_DIVISOR
            self._no_improvement = 0
            return False
        self.report.converged = True
        if config.verbose:
            print(f"Convergence after {epoch} epochs")
        return True
