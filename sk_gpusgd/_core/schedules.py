"""Learning-rate schedules, with scikit-learn's formulas.

The clock ``t`` is scikit-learn's: the number of samples seen, plus one,
whatever the batch size. The rates are per-sample rates; how a step over a
batch uses them is :meth:`.scaling.BatchScaling.step_rate`'s business. With
``batch_size=1`` every schedule is scikit-learn's exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .losses import Loss

MIN_ADAPTIVE_ETA = 1e-6
ADAPTIVE_DIVISOR = 5.0


@dataclass(frozen=True)
class Schedule:
    """A per-sample learning rate as a function of the sample clock ``t`` (1-based).

    Parameters
    ----------
    kind : {'constant', 'optimal', 'invscaling', 'adaptive', 'pa1', 'pa2'}
        The schedule's name.
    eta0 : float
        Initial learning rate (constant, invscaling, adaptive); the
        aggressiveness ``C`` for the passive-aggressive rates.
    alpha : float
        Regularisation strength, used by 'optimal'.
    power_t : float
        Exponent of 'invscaling'.
    optimal_offset : float
        ``t0`` of the 'optimal' schedule.
    """

    kind: str
    eta0: float
    alpha: float = 0.0
    power_t: float = 0.5
    optimal_offset: float = 1.0

    def learning_rate(self, t: int, adaptive_eta: float | None = None) -> float:
        """The per-sample rate at clock ``t`` (``adaptive_eta``: the current adaptive value)."""
        if self.kind == "optimal":
            return 1.0 / (self.alpha * (self.optimal_offset + t - 1))
        if self.kind == "invscaling":
            try:
                return self.eta0 / t**self.power_t
            except OverflowError:  # t**power_t past the float range: the rate is 0, as in C
                return 0.0
        if self.kind == "adaptive":
            return self.eta0 if adaptive_eta is None else adaptive_eta
        return self.eta0

    @property
    def passive_aggressive(self) -> bool:
        return self.kind in ("pa1", "pa2")


def make_schedule(kind: str, eta0: float, alpha: float, power_t: float, loss: Loss) -> Schedule:
    """Build the schedule; 'optimal' takes Bottou's heuristic initial step from the loss."""
    offset = 1.0
    if kind == "optimal":
        typical_weight = math.sqrt(1.0 / math.sqrt(alpha))
        # scikit-learn divides by the signed derivative at y=1, p=-typical_weight
        initial_eta = typical_weight / max(1.0, loss.derivative_scalar(-typical_weight, 1.0))
        offset = 1.0 / (initial_eta * alpha)
    return Schedule(kind, eta0, alpha, power_t, offset)
