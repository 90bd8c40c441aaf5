"""Update rules: clipping, weight decay, momentum, Nesterov, L1 truncation.

Pure functions of arrays and scalars; the minibatch loop (``_engine``) calls
them once per step. The order inside a step is documented in
``OPTIMIZERS.md`` of the design notes and in the estimators' docstrings:

1. clip the loss gradient (by global norm, or element-wise by value);
2. add coupled L2 (``penalty='l2'``/``'elasticnet'`` and ``weight_decay``
   without ``decoupled_weight_decay``) to the clipped gradient;
3. apply decoupled weight decay to the weights (``w -= lr * wd * w``);
4. momentum / Nesterov in the chosen form, then the step;
5. L1 by the cumulative truncated penalty (Tsuruoka et al. 2009).
"""

from __future__ import annotations

from dataclasses import dataclass

MOMENTUM_FORMS = ("buffer", "velocity")


@dataclass(frozen=True)
class OptimizerConfig:
    """Hyper-parameters of one update rule.

    Parameters
    ----------
    momentum, dampening : float
        PyTorch's ``momentum`` and ``dampening``.
    nesterov : bool
        Nesterov momentum.
    momentum_form : {'buffer', 'velocity'}
        'buffer' is PyTorch's (buffer starts at the first gradient, the learning
        rate multiplies the buffer); 'velocity' is MXNet's / Keras' /
        PuzzleLib's (velocity starts at zero and holds the learning rate).
    l2 : float
        Coupled L2 strength, added to the gradient before momentum.
    decoupled_decay : float
        Decoupled weight decay, ``w -= lr * decoupled_decay * w`` before the step.
    l1 : float
        L1 strength of the cumulative truncated penalty.
    clip_value, clip_norm : float or None
        Element-wise and global-norm gradient clipping.
    """

    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    momentum_form: str = "buffer"
    l2: float = 0.0
    decoupled_decay: float = 0.0
    l1: float = 0.0
    clip_value: float | None = None
    clip_norm: float | None = None

    @property
    def uses_momentum(self) -> bool:
        return self.momentum != 0.0


def clip_gradient(xp, grad_coef, grad_intercept, config: OptimizerConfig):
    """Clip the loss gradient of (coef, intercept) together, before any decay.

    ``clip_norm`` rescales both so that their joint L2 norm is at most
    ``clip_norm`` (Keras ``global_clipnorm``, ``torch.nn.utils.clip_grad_norm_``);
    ``clip_value`` clips every component to ``[-clip_value, clip_value]``
    (MXNet ``clip_gradient``, Keras ``clipvalue``).
    """
    if config.clip_norm is not None:
        squared = xp.sum(grad_coef * grad_coef) + xp.sum(grad_intercept * grad_intercept)
        norm = xp.sqrt(squared)
        # Keras' formula g * c / max(|g|, c): no change when the norm is below c
        scale = config.clip_norm / xp.maximum(norm, config.clip_norm)
        grad_coef = grad_coef * scale
        grad_intercept = grad_intercept * scale
    if config.clip_value is not None:
        grad_coef = xp.clip(grad_coef, -config.clip_value, config.clip_value)
        grad_intercept = xp.clip(grad_intercept, -config.clip_value, config.clip_value)
    return grad_coef, grad_intercept


def shrink_factor(xp, learning_rate, decay: float):
    """``max(0, 1 - lr * decay)``: scikit-learn zeroes weights rather than flip their sign.

    ``learning_rate`` is a float, or an array of one rate per output column.
    """
    if isinstance(learning_rate, float) and isinstance(decay, float):
        return max(0.0, 1.0 - learning_rate * decay)
    return xp.maximum(1.0 - learning_rate * decay, 0.0)


def shrinks_within_batch(config: OptimizerConfig) -> bool:
    """Whether a step's decays are shrinks (no momentum), clamped at zero."""
    return not config.uses_momentum and (is_set(config.l2) or is_set(config.decoupled_decay))


def clamped_within_batch(xp, learning_rate, decay):
    """Where a step's shrink ``max(0, 1 - lr decay)`` is clamped to zero, or None if nowhere.

    ``decay`` is a float or one strength per feature, ``learning_rate`` a float
    or one rate per output column; the result broadcasts like their product.
    """
    if isinstance(learning_rate, float) and isinstance(decay, float):
        return True if learning_rate * decay >= 1.0 else None
    clamped = learning_rate * decay >= 1.0
    return clamped if bool(xp.any(clamped)) else None


def within_batch_gradient(grad, last, clamped):
    """A batch's gradient once its shrink is clamped: the last row's share of it alone.

    A step over ``m`` rows stands for ``m`` per-sample steps. While its shrink
    ``max(0, 1 - lr decay)`` is above zero the rows share the batch-mean
    gradient (a full batch is gradient descent, with the objective's own fixed
    point). Once it is clamped, each row's update is wiped by the shrinks of
    the rows after it, as in scikit-learn's per-sample loop, where a clamped
    shrink zeroes the weights before every sample's update: only the last
    row's share of the gradient moves the weights (``last``, with ``clamped``
    from :func:`clamped_within_batch`). Huge penalties then give the
    memoryless weights of scikit-learn, zero where the last row's loss is flat.
    """
    if clamped is True:
        return last
    import array_api_compat

    xp = array_api_compat.array_namespace(grad)
    return xp.where(clamped, last, grad)


def is_set(value) -> bool:
    """Whether a penalty is on: a nonzero float, or an array (one value per column or
    feature; a zero entry is an exact no-op where it is applied)."""
    if isinstance(value, (int, float)):
        return value != 0
    return True


def momentum_step(xp, weights, grad, buffer, learning_rate, config, l2=0.0, decay=0.0):  # noqa: PLR0913
    """One update of ``weights`` from ``grad``; returns ``(weights, buffer)``.

    Parameters
    ----------
    weights, grad : array
        Parameters and their (clipped) loss gradient, same shape.
    buffer : array or None
        Momentum buffer (form 'buffer') or velocity (form 'velocity'); None
        before the first step.
    learning_rate : float
        This step's learning rate.
    config : OptimizerConfig
        Momentum settings.
    l2 : float or array
        Coupled L2, added to the gradient (so it passes through momentum); an
        array gives one strength per feature (preconditioning).
    decay : float
        Decoupled weight decay, applied to the weights before the step.
    """
    mu = config.momentum
    if mu == 0.0:
        # max(0, 1 - lr (l2 + decay)) w - lr g: both decays fold into one rescaling
        if is_set(l2) or is_set(decay):
            weights = weights * shrink_factor(xp, learning_rate, l2 + decay)
        return weights - learning_rate * grad, None
    if is_set(l2):
        grad = grad + l2 * weights
    if is_set(decay):
        weights = weights * shrink_factor(xp, learning_rate, decay)
    if config.momentum_form == "buffer":
        if buffer is None:
            # PyTorch: no dampening on the first step
            buffer = grad
        else:
            buffer = mu * buffer + (1.0 - config.dampening) * grad
        direction = grad + mu * buffer if config.nesterov else buffer
        return weights - learning_rate * direction, buffer
    velocity = -learning_rate * grad if buffer is None else mu * buffer - learning_rate * grad
    if config.nesterov:
        return weights + mu * velocity - learning_rate * grad, velocity
    return weights + velocity, velocity


def l1_truncate(xp, weights, applied, total):
    """Cumulative L1 penalty: move each weight toward 0, never across it.

    Parameters
    ----------
    weights : array
        Current weights.
    applied : array
        Penalty already applied to each weight (``q`` in Tsuruoka et al.).
    total : float
        Penalty each weight could have received so far (``u``).

    Returns
    -------
    weights, applied : array
    """
    positive = xp.maximum(weights - (total + applied), 0.0)
    negative = xp.minimum(weights + (total - applied), 0.0)
    truncated = xp.where(weights > 0, positive, xp.where(weights < 0, negative, weights))
    return truncated, applied + (truncated - weights)
