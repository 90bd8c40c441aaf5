"""Parameter checks run on every ``fit`` and ``partial_fit``, and what a diverged fit says.

scikit-learn validates the constraints in ``_fit_context``, which skips them for
``partial_fit`` on a fitted model and inside meta-estimators that ask it to; the
estimators here call :func:`check_parameters` on every call instead, so that a
``set_params`` between two ``partial_fit`` calls is checked like a new ``fit``.
"""

from __future__ import annotations

import functools
import math
import warnings
import weakref
from numbers import Real

import numpy as np
from sklearn.utils._param_validation import validate_parameter_constraints

from ._backend import is_sparse, to_namespace
from ._core.schedules import make_schedule
from ._core.types import overflow_message

# the parameters each live estimator last passed the checks with; kept beside the
# estimator, not in it, so that a call that fails later leaves its attributes as they were
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# a step whose decay factor |1 - eta * decay| exceeds one makes the weights grow
MAX_STABLE_DECAY_STEP = 2.0
# no standardised input comes near this; a larger one is named as the cause
UNSCALED_MAGNITUDE = 1e15


def check_parameters(estimator) -> None:
    """The declared constraints and the checks of values the constraints cannot express.

    Parameters that passed on an earlier call and are unchanged since (a
    stream of ``partial_fit`` calls) are not checked again.
    """
    # get_params(deep=False), without reading the constructor's signature on every call
    params = {name: getattr(estimator, name) for name in _parameter_names(type(estimator))}
    if _unchanged(_CHECKED.get(estimator), params):
        return
    validate_parameter_constraints(
        estimator._parameter_constraints, params, caller_name=type(estimator).__name__
    )
    class_weight = getattr(estimator, "class_weight", None)
    if isinstance(class_weight, dict):
        _check_class_weight(class_weight)
    # dicts are copied: one changed in place is a changed parameter
    _CHECKED[estimator] = {
        name: dict(value) if isinstance(value, dict) else value for name, value in params.items()
    }


def _unchanged(checked: dict | None, params: dict) -> bool:
    """Whether every parameter equals, in type and value, the one checked before."""
    if checked is None or checked.keys() != params.keys():
        return False
    for name, value in params.items():
        before = checked[name]
        if before is value:
            continue
        try:
            if type(before) is not type(value) or not bool(before == value):
                return False
        except (TypeError, ValueError):  # values without a plain equality
            return False
    return True


@functools.cache
def _parameter_names(estimator_class) -> tuple[str, ...]:
    """The constructor's parameter names, as ``get_params`` finds them (once per class)."""
    return tuple(estimator_class._get_param_names())


def _check_class_weight(class_weight: dict) -> None:
    for label, weight in class_weight.items():
        if isinstance(weight, bool) or not isinstance(weight, Real):
            raise ValueError(
                f"class_weight must map each class to a number; got {weight!r} for class {label!r}."
            )
        if not math.isfinite(weight):
            raise ValueError(f"class_weight must be finite; got {weight!r} for class {label!r}.")


def warn_deprecated_parameters(estimator) -> None:
    """scikit-learn 1.9's deprecation warnings of ``fit``, with its condition and words."""
    if estimator.power_t < 0:
        warnings.warn(
            "Negative values for `power_t` are deprecated in version 1.8 "
            "and will raise an error in 1.10. "
            "Use values in the range [0.0, inf) instead.",
            FutureWarning,
            stacklevel=3,
        )


def divergence_message(estimator, loss, magnitudes: dict, epoch: int | None = None) -> str:
    """Why the weights left the float range, naming the parameter that most likely did it.

    scikit-learn's message first (:func:`overflow_message`, with the epoch
    where known), then ours. Checked in order: a coupled decay that alone
    overshoots (``weight_decay``, ``alpha``; only through momentum, since
    without it the shrink is clamped at zero as in scikit-learn), a growing
    'invscaling' rate (negative ``power_t``), inputs far outside any scaled
    range (``magnitudes``: the largest absolute value of ``X``,
    ``sample_weight``, ``class_weight``), then the learning rate.
    """
    start = overflow_message(epoch) + " The weights overflowed to inf/NaN: "
    rate = _first_learning_rate(estimator, loss)
    l2_share = {"l2": 1.0, "elasticnet": 1.0 - (estimator.l1_ratio or 0.0)}
    through_momentum = estimator.momentum > 0
    l2 = estimator.alpha * l2_share.get(estimator.penalty, 0.0) if through_momentum else 0.0
    coupled_decay = (
        estimator.weight_decay if through_momentum and not estimator.decoupled_weight_decay else 0.0
    )
    if rate * coupled_decay > MAX_STABLE_DECAY_STEP:
        return start + (
            f"weight_decay={estimator.weight_decay} times the learning rate ({rate:.3g}) "
            f"exceeds {MAX_STABLE_DECAY_STEP:g}, so every step overshoots zero by more than "
            "it started. Lower weight_decay."
        )
    if rate * l2 > MAX_STABLE_DECAY_STEP or not math.isfinite(rate * l2):
        return start + (
            f"alpha={estimator.alpha} times the learning rate ({rate:.3g}) exceeds "
            f"{MAX_STABLE_DECAY_STEP:g}, so the L2 penalty overshoots zero at every step. "
            "Lower alpha."
        )
    if estimator.learning_rate == "invscaling" and estimator.power_t < 0:
        return start + (
            f"power_t={estimator.power_t} makes the 'invscaling' rate eta0 / t**power_t "
            "grow with every step. Use a power_t >= 0."
        )
    for name, largest in magnitudes.items():
        if largest > UNSCALED_MAGNITUDE:
            advice = "scale X (e.g. with StandardScaler)" if name == "X" else f"scale {name}"
            return start + f"{name} holds values up to {largest:.3g}; {advice}."
    if estimator.learning_rate == "optimal":
        rate = f"learning_rate='optimal', 1 / (alpha (t0 + t)) with alpha={estimator.alpha}"
        advice = "Raise alpha, choose another learning_rate"
    else:
        rate = f"learning_rate={estimator.learning_rate!r}, eta0={estimator.eta0}"
        advice = "Lower eta0, choose a decaying learning_rate"
    return start + (
        f"the learning rate ({rate}) is too large for this data. {advice}, or scale X "
        "(e.g. with StandardScaler)."
    )


def input_magnitudes(X, sample_weight, class_weight) -> dict:
    """The largest absolute value of each training input, for :func:`divergence_message`."""
    found = {"X": _largest(X), "sample_weight": _largest(sample_weight)}
    if isinstance(class_weight, dict) and class_weight:
        found["class_weight"] = _largest(list(class_weight.values()))
    return {name: value for name, value in found.items() if value is not None}


def _largest(values) -> float | None:
    if values is None:
        return None
    if is_sparse(values):
        values = values.data
    try:
        host = np.abs(np.asarray(to_namespace(values, np), dtype=np.float64))
    except (TypeError, ValueError):  # inputs the checks rejected never reach here
        return None
    return float(np.max(host)) if host.size else None


def _first_learning_rate(estimator, loss) -> float:
    """The rate of the first step (the largest, but for a growing 'invscaling')."""
    try:
        schedule = make_schedule(
            estimator.learning_rate,
            float(estimator.eta0),
            float(estimator.alpha),
            float(estimator.power_t),
            loss,
        )
        return float(schedule.learning_rate(1))
    except ArithmeticError:
        return math.inf
