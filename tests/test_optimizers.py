"""Step-by-step parity of the optimizer variants with PyTorch, MXNet, Keras and PuzzleLib.

Every reference is written here from the update rules in the design notes
(``OPTIMIZERS.md``), in NumPy, without calling ``sk_gpusgd``'s internals; the
PyTorch references also run ``torch.optim.SGD`` itself. The parity runs are
full batch (``batch_size = n_samples``, ``shuffle=False``) in float64, so one
``partial_fit`` is one optimizer step and the estimator must follow the
reference trajectory to 1e-10 after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

N_STEPS = 8
ETA0 = 0.1
POWER_T = 0.5
TOLERANCE = {"rtol": 1e-10, "atol": 1e-10}


# --------------------------------------------------------------------- problems
@dataclass(frozen=True)
class Problem:
    """A small full-batch problem and how its labels are encoded as +1/-1 columns."""

    name: str
    estimator: type
    loss: str
    X: np.ndarray
    y: np.ndarray
    targets: np.ndarray = field(repr=False)
    classes: np.ndarray | None = None

    def make(self, **params):
        base = dict(
            loss=self.loss,
            penalty=None,
            batch_size=self.X.shape[0],
            shuffle=False,
            learning_rate="constant",
            eta0=ETA0,
            power_t=POWER_T,
            tol=None,
            random_state=0,
            # the references apply the rate to the batch-mean gradient, as PyTorch does
            scale_learning_rate=False,
        )
        return self.estimator(**{**base, **params})

    def partial_fit(self, model):
        if self.classes is None:
            return model.partial_fit(self.X, self.y)
        return model.partial_fit(self.X, self.y, classes=self.classes)

    def weights(self, model):
        """(coef, intercept) of a fitted model in the layout (n_features, n_outputs)."""
        coef = np.asarray(model.coef_, dtype=np.float64)
        coef = coef[:, None] if coef.ndim == 1 else coef.T
        return coef, np.asarray(model.intercept_, dtype=np.float64)


def _regression() -> Problem:
    X, y = make_regression(n_samples=30, n_features=4, noise=5.0, bias=3.0, random_state=0)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std() + 0.5
    return Problem("regression", GPUSGDRegressor, "squared_error", X, y, y[:, None])


def _classification(loss: str, n_classes: int) -> Problem:
    X, y = make_classification(
        n_samples=40,
        n_features=4,
        n_informative=3,
        n_redundant=0,
        n_classes=n_classes,
        n_clusters_per_class=1,
        flip_y=0.1,
        random_state=1,
    )
    X = StandardScaler().fit_transform(X)
    classes = np.unique(y)
    if n_classes == 2:
        targets = np.where(y == classes[1], 1.0, -1.0)[:, None]
    else:
        targets = np.where(y[:, None] == classes[None, :], 1.0, -1.0)
    name = f"{loss}-{n_classes}-class"
    return Problem(name, GPUSGDClassifier, loss, X, y, targets, classes)


PROBLEMS = {
    p.name: p
    for p in (
        _regression(),
        _classification("log_loss", 2),
        _classification("hinge", 2),
        _classification("log_loss", 3),
    )
}


@pytest.fixture(params=list(PROBLEMS), ids=list(PROBLEMS))
def problem(request) -> Problem:
    return PROBLEMS[request.param]


def loss_derivative(loss: str, decision: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """d loss / d decision, per sample and one-vs-rest column."""
    if loss == "squared_error":
        return decision - targets
    if loss == "log_loss":
        return -targets / (np.exp(targets * decision) + 1.0)
    if loss == "hinge":
        return np.where(targets * decision <= 1.0, -targets, 0.0)
    raise ValueError(loss)


def learning_rates(schedule: str, n_steps: int, problem: Problem) -> list[float]:
    """The learning rate of each full-batch step.

    The schedule's clock is scikit-learn's sample count: step k (from 0)
    starts at t = k * n_samples + 1.
    """
    if schedule == "constant":
        return [ETA0] * n_steps
    n_rows = problem.X.shape[0]
    return [ETA0 / (k * n_rows + 1) ** POWER_T for k in range(n_steps)]


# ------------------------------------------------------- reference update rules
# One parameter at a time: ``step(w, g, state, lr, **hyper) -> w``; ``state`` is a
# dict the rule keeps its buffer in. Clipping is joint over all parameters and
# happens before (see ``clip``).


def pytorch_sgd(w, g, state, lr, mu=0.0, tau=0.0, nesterov=False, wd=0.0, decay=0.0):
    """torch.optim.SGD; ``decay`` adds SGDW's decoupled decay (Keras' formula) before it."""
    g = g + wd * w
    w = w - lr * decay * w
    if mu:
        if "buf" not in state:
            state["buf"] = g  # no dampening on the first step
        else:
            state["buf"] = mu * state["buf"] + (1.0 - tau) * g
        g = g + mu * state["buf"] if nesterov else state["buf"]
    return w - lr * g


def mxnet_sgd(w, g, state, lr, mu=0.0, nesterov=False, wd=0.0):
    """MXNet SGD (nesterov=False) and NAG (nesterov=True), after clip_gradient."""
    g = g + wd * w
    if not mu:
        return w - lr * g
    mom = mu * state.get("mom", 0.0) - lr * g
    state["mom"] = mom
    return w + mu * mom - lr * g if nesterov else w + mom


def keras_sgd(w, g, state, lr, mu=0.0, nesterov=False, decay=0.0):
    """Keras SGD with decoupled ``weight_decay``, after clipnorm / clipvalue."""
    w = w - lr * decay * w
    m = mu * state.get("m", 0.0) - lr * g
    state["m"] = m
    return w + mu * m - lr * g if nesterov else w + m


def puzzlelib_sgd(w, g, state, lr, mu=0.0, nesterov=False):
    """PuzzleLib SGD / MomentumSGD / NesterovSGD, in its own sign convention."""
    grad = -g  # PuzzleLib stores the negative gradient and adds updates
    if not mu:
        return w + lr * grad
    mom = mu * state.get("mom", 0.0) + lr * grad
    state["mom"] = mom
    return w + mu * mom + lr * grad if nesterov else w + mom


def clip(grads, clip_value=None, clip_norm=None):
    """Keras' global clipnorm ``g * c / max(|g|, c)`` or element-wise clip by value."""
    if clip_norm is not None:
        norm = np.sqrt(sum(np.sum(g * g) for g in grads))
        grads = [g * clip_norm / max(norm, clip_norm) for g in grads]
    if clip_value is not None:
        grads = [np.clip(g, -clip_value, clip_value) for g in grads]
    return grads


# Hyper-parameters that apply to the coefficients only, never to the intercept.
COEF_ONLY = ("wd", "decay")


def reference_trajectory(problem: Problem, rule, hyper: dict, rates: list[float]):
    """[(coef, intercept) after each step] of ``rule`` on ``problem``, full batch."""
    hyper = dict(hyper)
    clipping = {k: hyper.pop(k) for k in ("clip_value", "clip_norm") if k in hyper}
    intercept_hyper = {k: v for k, v in hyper.items() if k not in COEF_ONLY}
    X, targets = problem.X, problem.targets
    coef = np.zeros((X.shape[1], targets.shape[1]))
    intercept = np.zeros(targets.shape[1])
    coef_state, intercept_state = {}, {}
    trajectory = []
    for lr in rates:
        derivative = loss_derivative(problem.loss, X @ coef + intercept, targets)
        grads = [X.T @ derivative / X.shape[0], derivative.mean(axis=0)]
        grad_coef, grad_intercept = clip(grads, **clipping)
        coef = rule(coef, grad_coef, coef_state, lr, **hyper)
        intercept = rule(intercept, grad_intercept, intercept_state, lr, **intercept_hyper)
        trajectory.append((coef, intercept))
    return trajectory


def estimator_trajectory(problem: Problem, n_steps: int, **params):
    model = problem.make(**params)
    trajectory = []
    for _ in range(n_steps):
        problem.partial_fit(model)
        trajectory.append(problem.weights(model))
    return trajectory


def assert_same_trajectory(actual, expected, label=""):
    assert len(actual) == len(expected)
    for step, ((coef, intercept), (ref_coef, ref_intercept)) in enumerate(
        zip(actual, expected, strict=True), start=1
    ):
        np.testing.assert_allclose(
            coef, ref_coef, **TOLERANCE, err_msg=f"{label} coef, step {step}"
        )
        np.testing.assert_allclose(
            intercept, ref_intercept, **TOLERANCE, err_msg=f"{label} intercept, step {step}"
        )


def trajectory_distance(a, b) -> float:
    return max(
        max(np.max(np.abs(ca - cb)), np.max(np.abs(ia - ib)))
        for (ca, ia), (cb, ib) in zip(a, b, strict=True)
    )


# ------------------------------------------------------------ formula parity
MU = 0.9
CLIP_VALUE = 0.05
CLIP_NORM = 0.1
VELOCITY = {"momentum_form": "velocity"}

# id: (estimator parameters, reference rule, reference hyper-parameters)
FORMULA_CASES = {
    "plain": ({}, pytorch_sgd, {}),
    "momentum": ({"momentum": MU}, pytorch_sgd, {"mu": MU}),
    "momentum-dampening": (
        {"momentum": MU, "dampening": 0.5},
        pytorch_sgd,
        {"mu": MU, "tau": 0.5},
    ),
    "nesterov": ({"momentum": MU, "nesterov": True}, pytorch_sgd, {"mu": MU, "nesterov": True}),
    "coupled-l2-and-weight-decay": (
        {"momentum": MU, "penalty": "l2", "alpha": 0.05, "weight_decay": 0.02},
        pytorch_sgd,
        {"mu": MU, "wd": 0.07},
    ),
    "decoupled-weight-decay-buffer": (
        {"momentum": MU, "weight_decay": 0.1, "decoupled_weight_decay": True},
        pytorch_sgd,
        {"mu": MU, "decay": 0.1},
    ),
    "l2-and-decoupled-weight-decay": (
        {
            "momentum": MU,
            "nesterov": True,
            "penalty": "l2",
            "alpha": 0.05,
            "weight_decay": 0.1,
            "decoupled_weight_decay": True,
        },
        pytorch_sgd,
        {"mu": MU, "nesterov": True, "wd": 0.05, "decay": 0.1},
    ),
    "clip-value-buffer": (
        {"momentum": MU, "clip_value": CLIP_VALUE},
        pytorch_sgd,
        {"mu": MU, "clip_value": CLIP_VALUE},
    ),
    "clip-norm-buffer-l2": (
        {"momentum": MU, "clip_norm": CLIP_NORM, "penalty": "l2", "alpha": 0.05},
        pytorch_sgd,
        {"mu": MU, "clip_norm": CLIP_NORM, "wd": 0.05},
    ),
    "mxnet-sgd": (
        {**VELOCITY, "momentum": MU, "weight_decay": 0.02},
        mxnet_sgd,
        {"mu": MU, "wd": 0.02},
    ),
    "mxnet-nag": (
        {**VELOCITY, "momentum": MU, "nesterov": True, "weight_decay": 0.02},
        mxnet_sgd,
        {"mu": MU, "nesterov": True, "wd": 0.02},
    ),
    "mxnet-clip-gradient-wd-unclipped": (
        {**VELOCITY, "momentum": MU, "clip_value": CLIP_VALUE, "penalty": "l2", "alpha": 0.5},
        mxnet_sgd,
        {"mu": MU, "clip_value": CLIP_VALUE, "wd": 0.5},
    ),
    "keras-momentum": ({**VELOCITY, "momentum": MU}, keras_sgd, {"mu": MU}),
    "keras-nesterov": (
        {**VELOCITY, "momentum": MU, "nesterov": True},
        keras_sgd,
        {"mu": MU, "nesterov": True},
    ),
    "keras-decoupled-weight-decay": (
        {**VELOCITY, "momentum": MU, "weight_decay": 0.1, "decoupled_weight_decay": True},
        keras_sgd,
        {"mu": MU, "decay": 0.1},
    ),
    "keras-nesterov-clipnorm": (
        {**VELOCITY, "momentum": MU, "nesterov": True, "clip_norm": CLIP_NORM},
        keras_sgd,
        {"mu": MU, "nesterov": True, "clip_norm": CLIP_NORM},
    ),
    "keras-clipvalue-no-momentum": (
        {**VELOCITY, "clip_value": CLIP_VALUE, "weight_decay": 0.1, "decoupled_weight_decay": True},
        keras_sgd,
        {"clip_value": CLIP_VALUE, "decay": 0.1},
    ),
    "puzzlelib-sgd": ({**VELOCITY}, puzzlelib_sgd, {}),
    "puzzlelib-momentum": ({**VELOCITY, "momentum": MU}, puzzlelib_sgd, {"mu": MU}),
    "puzzlelib-nesterov": (
        {**VELOCITY, "momentum": MU, "nesterov": True},
        puzzlelib_sgd,
        {"mu": MU, "nesterov": True},
    ),
}


@pytest.mark.parametrize("schedule", ["constant", "invscaling"])
@pytest.mark.parametrize("case", list(FORMULA_CASES))
def test_formula_parity(problem, case, schedule):
    params, rule, hyper = FORMULA_CASES[case]
    rates = learning_rates(schedule, N_STEPS, problem)
    expected = reference_trajectory(problem, rule, hyper, rates)
    if "clip_value" in hyper or "clip_norm" in hyper:
        # the clip must bind, or this case tests nothing beyond its unclipped twin
        unclipped = {k: v for k, v in hyper.items() if not k.startswith("clip")}
        assert trajectory_distance(expected, reference_trajectory(problem, rule, unclipped, rates))
    actual = estimator_trajectory(problem, N_STEPS, learning_rate=schedule, **params)
    assert_same_trajectory(actual, expected, f"{problem.name} {case} {schedule}")


# --------------------------------------------------------- torch.optim.SGD
TORCH_CASES = {
    "plain": ({}, {}),
    "momentum": ({"momentum": MU}, {"momentum": MU}),
    "momentum-dampening": ({"momentum": MU, "dampening": 0.5}, {"momentum": MU, "dampening": 0.5}),
    "nesterov": ({"momentum": MU, "nesterov": True}, {"momentum": MU, "nesterov": True}),
    "coupled-weight-decay": (
        {"momentum": MU, "nesterov": True, "penalty": "l2", "alpha": 0.05, "weight_decay": 0.02},
        {"momentum": MU, "nesterov": True, "weight_decay": 0.07},
    ),
    "decoupled-weight-decay": (
        {"momentum": MU, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"momentum": MU, "decay": 0.1},
    ),
    "clip-value": (
        {"momentum": MU, "clip_value": CLIP_VALUE},
        {"momentum": MU, "clip_value": CLIP_VALUE},
    ),
    "clip-norm": (
        {"momentum": MU, "dampening": 0.5, "clip_norm": CLIP_NORM},
        {"momentum": MU, "dampening": 0.5, "clip_norm": CLIP_NORM},
    ),
}


def torch_trajectory(problem: Problem, hyper: dict, rates: list[float]):
    """The trajectory of torch.optim.SGD on ``problem``: float64, loss = batch mean."""
    torch = pytest.importorskip("torch")
    hyper = dict(hyper)
    clip_value = hyper.pop("clip_value", None)
    clip_norm = hyper.pop("clip_norm", None)
    decay = hyper.pop("decay", 0.0)
    weight_decay = hyper.pop("weight_decay", 0.0)
    X = torch.tensor(problem.X, dtype=torch.float64)
    targets = torch.tensor(problem.targets, dtype=torch.float64)
    coef = torch.zeros(X.shape[1], targets.shape[1], dtype=torch.float64, requires_grad=True)
    intercept = torch.zeros(targets.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD(
        [
            {"params": [coef], "weight_decay": weight_decay},
            {"params": [intercept], "weight_decay": 0.0},
        ],
        lr=rates[0],
        **hyper,
    )
    trajectory = []
    for lr in rates:
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        decision = X @ coef + intercept
        if problem.loss == "squared_error":
            per_sample = 0.5 * (decision - targets) ** 2
        elif problem.loss == "log_loss":
            per_sample = torch.logaddexp(-targets * decision, torch.zeros(()).double())
        else:
            per_sample = torch.clamp(1.0 - targets * decision, min=0.0)
        per_sample.sum(dim=1).mean().backward()
        if clip_value is not None:
            torch.nn.utils.clip_grad_value_([coef, intercept], clip_value)
        if clip_norm is not None:
            # Keras' formula: clip_grad_norm_ divides by (norm + 1e-6), off by ~1e-6
            norm = torch.sqrt(coef.grad.pow(2).sum() + intercept.grad.pow(2).sum())
            for parameter in (coef, intercept):
                parameter.grad.mul_(clip_norm / torch.clamp(norm, min=clip_norm))
        if decay:
            with torch.no_grad():
                coef.mul_(1.0 - lr * decay)  # SGDW: decoupled decay before the step
        optimizer.step()
        trajectory.append((coef.detach().numpy().copy(), intercept.detach().numpy().copy()))
    return trajectory


@pytest.mark.parametrize("schedule", ["constant", "invscaling"])
@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_torch_sgd_parity(problem, case, schedule):
    params, hyper = TORCH_CASES[case]
    rates = learning_rates(schedule, N_STEPS, problem)
    expected = torch_trajectory(problem, hyper, rates)
    actual = estimator_trajectory(problem, N_STEPS, learning_rate=schedule, **params)
    assert_same_trajectory(actual, expected, f"torch {problem.name} {case} {schedule}")


# ------------------------------------------------- velocity form vs buffer form
@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_velocity_form_equals_buffer_form_only_at_constant_rate(nesterov):
    """MXNet / Keras / PuzzleLib keep old rates inside the velocity; PyTorch does not."""
    problem = PROBLEMS["log_loss-2-class"]
    hyper = {"mu": MU, "nesterov": nesterov}
    params = {"momentum": MU, "nesterov": nesterov}
    n_steps = 12
    trajectories = {}
    for schedule in ("constant", "invscaling"):
        rates = learning_rates(schedule, n_steps, problem)
        buffer_form = {
            "pytorch": reference_trajectory(problem, pytorch_sgd, hyper, rates),
            "estimator-buffer": estimator_trajectory(
                problem, n_steps, learning_rate=schedule, **params
            ),
        }
        velocity_form = {
            name: reference_trajectory(problem, rule, hyper, rates)
            for name, rule in [
                ("mxnet", mxnet_sgd),
                ("keras", keras_sgd),
                ("puzzlelib", puzzlelib_sgd),
            ]
        }
        velocity_form["estimator-velocity"] = estimator_trajectory(
            problem, n_steps, learning_rate=schedule, momentum_form="velocity", **params
        )
        trajectories[schedule] = (buffer_form, velocity_form)

    buffer_form, velocity_form = trajectories["constant"]
    for name, trajectory in {**buffer_form, **velocity_form}.items():
        assert_same_trajectory(trajectory, buffer_form["pytorch"], f"constant {name}")

    buffer_form, velocity_form = trajectories["invscaling"]
    for name, trajectory in buffer_form.items():
        assert_same_trajectory(trajectory, buffer_form["pytorch"], f"invscaling {name}")
    for name, trajectory in velocity_form.items():
        assert_same_trajectory(trajectory, velocity_form["mxnet"], f"invscaling {name}")
    for name, trajectory in velocity_form.items():
        assert trajectory_distance(trajectory, buffer_form["pytorch"]) > 1e-3, name


# ------------------------------------------------ optimizer state across calls
STATEFUL_CASES = {
    "momentum-dampening": (
        {"momentum": MU, "dampening": 0.5},
        pytorch_sgd,
        {"mu": MU, "tau": 0.5},
    ),
    "nesterov-velocity": (
        {**VELOCITY, "momentum": MU, "nesterov": True},
        keras_sgd,
        {"mu": MU, "nesterov": True},
    ),
}


def _by_partial_fit(problem, model, n_steps):
    for _ in range(n_steps):
        problem.partial_fit(model)
        yield problem.weights(model)


def _by_warm_start_fit(problem, model, n_steps):
    model.set_params(warm_start=True, max_iter=1)
    for _ in range(n_steps):
        model.fit(problem.X, problem.y)
        yield problem.weights(model)


def _by_fit_then_partial_fit(problem, model, n_steps):
    model.set_params(max_iter=3)
    model.fit(problem.X, problem.y)
    yield from [None] * 2  # the first three steps happen inside fit
    yield problem.weights(model)
    yield from _by_partial_fit(problem, model, n_steps - 3)


DRIVERS = {
    "partial_fit": _by_partial_fit,
    "warm_start_fit": _by_warm_start_fit,
    "fit_then_partial_fit": _by_fit_then_partial_fit,
}


@pytest.mark.parametrize("driver", list(DRIVERS))
@pytest.mark.parametrize("case", list(STATEFUL_CASES))
def test_momentum_buffers_persist(case, driver):
    problem = PROBLEMS["log_loss-3-class"]
    params, rule, hyper = STATEFUL_CASES[case]
    expected = reference_trajectory(
        problem, rule, hyper, learning_rates("constant", N_STEPS, problem)
    )
    actual = list(DRIVERS[driver](problem, problem.make(**params), N_STEPS))
    pairs = [(a, e) for a, e in zip(actual, expected, strict=True) if a is not None]
    assert_same_trajectory([a for a, _ in pairs], [e for _, e in pairs], f"{case} {driver}")


@pytest.mark.parametrize("case", list(STATEFUL_CASES))
def test_new_fit_resets_momentum_buffers(case):
    problem = PROBLEMS["regression"]
    params, rule, hyper = STATEFUL_CASES[case]
    n_steps = 4
    expected = reference_trajectory(
        problem, rule, hyper, learning_rates("constant", n_steps, problem)
    )
    model = problem.make(max_iter=n_steps, **params)
    for _ in range(2):
        model.fit(problem.X, problem.y)
        assert_same_trajectory([problem.weights(model)], expected[-1:], f"{case} refit")
    # partial_fit, then a fresh fit: the fit starts from zero weights and buffers
    problem.partial_fit(model)
    model.fit(problem.X, problem.y)
    assert_same_trajectory([problem.weights(model)], expected[-1:], f"{case} fit after partial")


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize("estimator", [GPUSGDClassifier, GPUSGDRegressor])
@pytest.mark.parametrize(
    "params, message",
    [
        ({"nesterov": True, "momentum": 0.0}, "Nesterov"),
        ({"nesterov": True, "momentum": 0.9, "dampening": 0.5}, "Nesterov"),
        ({"momentum_form": "velocity", "momentum": 0.9, "dampening": 0.5}, "dampening"),
        ({"clip_value": 1.0, "clip_norm": 1.0}, "clip_value"),
    ],
)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_invalid_combinations_raise(estimator, params, message, method):
    X = np.random.RandomState(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    model = estimator(**params)
    kwargs = (
        {"classes": [0, 1]} if method == "partial_fit" and estimator is GPUSGDClassifier else {}
    )
    with pytest.raises(ValueError, match=message):
        getattr(model, method)(X, y, **kwargs)


# ------------------------------------------- every variant with every feature
VARIANTS = {
    "plain": {},
    "momentum": {"momentum": MU},
    "momentum-dampening": {"momentum": MU, "dampening": 0.5},
    "nesterov": {"momentum": MU, "nesterov": True},
    "velocity-momentum": {**VELOCITY, "momentum": MU},
    "velocity-nesterov": {**VELOCITY, "momentum": MU, "nesterov": True},
    "coupled-weight-decay": {"momentum": MU, "weight_decay": 1e-3},
    "decoupled-weight-decay": {
        "momentum": MU,
        "weight_decay": 1e-3,
        "decoupled_weight_decay": True,
    },
    "clip-value": {"momentum": MU, "clip_value": 0.5},
    "clip-norm": {"momentum": MU, "nesterov": True, "clip_norm": 1.0},
}
FEATURES = {
    "optimal": {"learning_rate": "optimal"},
    "invscaling": {"learning_rate": "invscaling", "eta0": 0.05},
    "adaptive": {"learning_rate": "adaptive", "tol": 1e-3},
    "early_stopping": {"early_stopping": True, "tol": 1e-3, "n_iter_no_change": 3},
    "class_weight": {"class_weight": "balanced"},
    "sample_weight": {},
    "average": {"average": True},
    "l1": {"penalty": "l1", "alpha": 1e-3},
    "elasticnet": {"penalty": "elasticnet", "alpha": 1e-3, "l1_ratio": 0.5},
}
# squared_error under 'optimal' (a step of 1/(alpha t0) ~ 100) diverges in
# scikit-learn's SGDRegressor too; class weights are for classifiers.
REGRESSOR_FEATURES = [f for f in FEATURES if f not in ("optimal", "class_weight")]


def _easy_split(estimator):
    if estimator is GPUSGDClassifier:
        X, y = make_classification(
            n_samples=400, n_features=10, n_informative=5, class_sep=2.0, random_state=0
        )
    else:
        X, y = make_regression(n_samples=400, n_features=10, noise=1.0, random_state=0)
        y = y / y.std()
    X = StandardScaler().fit_transform(X)
    return train_test_split(X, y, test_size=0.25, random_state=0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "estimator, feature, bound",
    [(GPUSGDClassifier, f, 0.9) for f in FEATURES]
    + [(GPUSGDRegressor, f, 0.9) for f in REGRESSOR_FEATURES],
)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_with_feature(estimator, feature, bound, variant):
    X_train, X_test, y_train, y_test = _easy_split(estimator)
    params = dict(
        learning_rate="constant",
        eta0=0.01,
        batch_size=16,
        max_iter=20,
        tol=None,
        random_state=0,
        **VARIANTS[variant],
    )
    params.update(FEATURES[feature])
    sample_weight = None
    if feature == "sample_weight":
        sample_weight = np.random.RandomState(0).uniform(0.5, 2.0, size=len(y_train))
    model = estimator(**params).fit(X_train, y_train, sample_weight=sample_weight)
    assert np.all(np.isfinite(model.coef_)) and np.all(np.isfinite(model.intercept_))
    assert model.score(X_test, y_test) > bound
