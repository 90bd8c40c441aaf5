"""Losses: value and derivative with respect to the decision value, over a batch.

Every loss is a function of the decision ``p`` (batch, n_outputs) and the target
``y`` of the same shape. Classification targets are encoded as +1 / -1 per
one-vs-rest column, as in scikit-learn. Formulas follow scikit-learn's
``_sgd_fast`` so that a step of batch size one is scikit-learn's step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loss:
    """Base class: ``value_and_derivative`` is vectorised over a batch."""

    name: str = ""
    # bound on the second derivative in the decision (1 for the piecewise-linear
    # losses: the step that moves a row's margin by one unit)
    curvature = 1.0
    # the output columns are coupled (one stopping rule for all of them)
    joint = False
    # |derivative| <= 4 whatever the decision: scikit-learn's 1e12 clip never acts
    bounded = True

    def value_and_derivative(self, xp, decision, target):
        """The loss and its derivative with respect to the decision, elementwise."""
        raise NotImplementedError

    def derivative_scalar(self, decision: float, target: float) -> float:
        """Derivative at one point, in float64 (used by the 'optimal' schedule)."""
        import numpy as np

        _, value = self.value_and_derivative(np, np.asarray([decision]), np.asarray([target]))
        return float(value[0])


@dataclass(frozen=True)
class Hinge(Loss):
    """max(0, threshold - y p); threshold 1 is the SVM hinge, 0 the perceptron."""

    threshold: float = 1.0

    def value_and_derivative(self, xp, decision, target):
        margin = self.threshold - target * decision
        active = xp.astype(margin >= 0.0, decision.dtype)
        return xp.maximum(margin, 0.0), -target * active


@dataclass(frozen=True)
class SquaredHinge(Loss):
    """max(0, 1 - y p)^2."""

    bounded = False

    curvature = 2.0

    def value_and_derivative(self, xp, decision, target):
        margin = xp.maximum(1.0 - target * decision, 0.0)
        return margin * margin, -2.0 * target * margin


@dataclass(frozen=True)
class LogLoss(Loss):
    """log(1 + exp(-y p)), computed without overflow."""

    curvature = 0.25

    def value_and_derivative(self, xp, decision, target):
        z = target * decision
        e = xp.exp(-xp.abs(z))
        # log(1 + exp(-z)) = max(-z, 0) + log1p(exp(-|z|)); sigmoid(-z) from the same e
        value = xp.maximum(-z, 0.0) + xp.log1p(e)
        sigmoid_neg_z = xp.where(z >= 0, e / (1.0 + e), 1.0 / (1.0 + e))
        return value, -target * sigmoid_neg_z


@dataclass(frozen=True)
class Multinomial(Loss):
    """Softmax cross-entropy over all classes: ``log(sum_k exp(p_k)) - p_y``.

    ``target`` holds the +1/-1 one-vs-rest encoding (+1 in the true class's
    column). The loss of a row is returned in its true class's column (zeros
    elsewhere), so that summing over columns gives the total; the derivative
    is ``softmax(p) - onehot(y)``. The classes are coupled, so the stopping
    rule watches their sum (``joint``).
    """

    curvature = 0.5
    joint = True

    def value_and_derivative(self, xp, decision, target):
        onehot = (target + 1.0) * 0.5
        shifted = decision - xp.max(decision, axis=1, keepdims=True)
        exponentials = xp.exp(shifted)
        total = xp.sum(exponentials, axis=1, keepdims=True)
        log_total = xp.log(total)
        row_loss = log_total - xp.sum(shifted * onehot, axis=1, keepdims=True)
        return row_loss * onehot, exponentials / total - onehot

    def derivative_scalar(self, decision: float, target: float) -> float:
        """The binary log loss' derivative: the 'optimal' schedule's heuristic start."""
        return LogLoss("log_loss").derivative_scalar(decision, target)


@dataclass(frozen=True)
class ModifiedHuber(Loss):
    """Quadratically smoothed hinge (Zhang 2004)."""

    curvature = 2.0

    def value_and_derivative(self, xp, decision, target):
        z = target * decision
        value = xp.where(z >= 1.0, 0.0, xp.where(z >= -1.0, (1.0 - z) ** 2, -4.0 * z))
        derivative = xp.where(
            z >= 1.0, 0.0, xp.where(z >= -1.0, -2.0 * target * (1.0 - z), -4.0 * target)
        )
        return value, derivative


@dataclass(frozen=True)
class SquaredError(Loss):
    """(p - y)^2 / 2."""

    bounded = False

    def value_and_derivative(self, xp, decision, target):
        residual = decision - target
        return 0.5 * residual * residual, residual


@dataclass(frozen=True)
class Huber(Loss):
    """Squared error up to ``epsilon``, linear beyond."""

    # the derivative is bounded by epsilon, which may be huge
    bounded = False

    epsilon: float = 0.1

    def value_and_derivative(self, xp, decision, target):
        residual = decision - target
        absolute = xp.abs(residual)
        value = xp.where(
            absolute <= self.epsilon,
            0.5 * residual * residual,
            self.epsilon * absolute - 0.5 * self.epsilon * self.epsilon,  # ** raises on overflow
        )
        return value, xp.clip(residual, -self.epsilon, self.epsilon)


@dataclass(frozen=True)
class EpsilonInsensitive(Loss):
    """max(0, |y - p| - epsilon), the SVR loss."""

    epsilon: float = 0.1

    def value_and_derivative(self, xp, decision, target):
        residual = target - decision
        below = xp.astype(residual < -self.epsilon, decision.dtype)
        above = xp.astype(residual > self.epsilon, decision.dtype)
        return xp.maximum(xp.abs(residual) - self.epsilon, 0.0), below - above


@dataclass(frozen=True)
class SquaredEpsilonInsensitive(Loss):
    """max(0, |y - p| - epsilon)^2."""

    bounded = False

    curvature = 2.0

    epsilon: float = 0.1

    def value_and_derivative(self, xp, decision, target):
        residual = target - decision
        excess = xp.maximum(xp.abs(residual) - self.epsilon, 0.0)
        derivative = xp.where(
            residual > self.epsilon,
            -2.0 * (residual - self.epsilon),
            xp.where(residual < -self.epsilon, -2.0 * (residual + self.epsilon), 0.0),
        )
        return excess * excess, derivative


CLASSIFICATION_LOSSES = (
    "hinge",
    "log_loss",
    "modified_huber",
    "squared_hinge",
    "perceptron",
)
REGRESSION_LOSSES = (
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
)


# scikit-learn's table of the losses (``SGDClassifier.loss_functions``): each name's
# class and default arguments; the epsilon of the last three is the estimator's
LOSS_FUNCTIONS = {
    "hinge": (Hinge, 1.0),
    "squared_hinge": (SquaredHinge,),
    "perceptron": (Hinge, 0.0),
    "log_loss": (LogLoss,),
    "modified_huber": (ModifiedHuber,),
    "squared_error": (SquaredError,),
    "huber": (Huber, 0.1),
    "epsilon_insensitive": (EpsilonInsensitive, 0.1),
    "squared_epsilon_insensitive": (SquaredEpsilonInsensitive, 0.1),
}
EPSILON_LOSSES = ("huber", "epsilon_insensitive", "squared_epsilon_insensitive")


def make_loss(name: str, epsilon: float, multinomial: bool = False) -> Loss:
    """Turn a loss name into its object, once per fit."""
    if multinomial:
        return Multinomial("log_loss")
    loss_class, *arguments = LOSS_FUNCTIONS[name]
    if name in EPSILON_LOSSES:
        arguments = [epsilon]
    return loss_class(name, *arguments)
