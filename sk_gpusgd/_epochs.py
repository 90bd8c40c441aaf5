"""The per-epoch stopping rule, for training loops that call the engine piecewise.

The streamed fit (chunks of the data through the device) and the Dask fit
(rounds of local training and averaging) run :func:`sk_gpusgd._engine.run` on
pieces of an epoch, so the engine's own stopping rule never sees a whole
epoch. :class:`EpochRule` applies the rule once per whole epoch, to the whole
model: mean loss plus the penalty of the epoch's final weights (or the mean of
the validation scores) must improve by ``tol`` within ``n_iter_no_change``
epochs; the 'adaptive' rate is divided by 5 instead of stopping while it is
above its floor. Unlike the in-memory engine, the one-vs-rest columns stop
together and the penalty is not summed row by row.
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
    penalty_columns,
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
        coef, intercept = state.model_weights()
        penalty_per_column = penalty_columns(xp, coef, config.optimizer)
        penalty = 0.0 if penalty_per_column is None else xp.sum(penalty_per_column)
        summary = xp.stack(
            [xp.asarray(penalty, dtype=coef.dtype), xp.sum(state.coef) + xp.sum(intercept)]
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
            # one rule for the whole model: the mean of the per-column scores
            score = float(np.mean(self.validation_score(state)))
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
        if config.schedule.kind == "adaptive":
            current = state.adaptive_eta or (float(config.schedule.eta0),)
            if max(current) > MIN_ADAPTIVE_ETA:
                n_outputs = int(state.coef.shape[1])
                state.adaptive_eta = (max(current) / ADAPTIVE_DIVISOR,) * n_outputs
                self._no_improvement = 0
                return False
        self.report.converged = True
        if config.verbose:
            print(f"Convergence after {epoch} epochs")
        return True
