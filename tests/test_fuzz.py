"""Generated bad inputs and parameter values, thrown at both estimators.

Every call must end in a ValueError / TypeError raised by a check (in this package,
scikit-learn or SciPy, never deep in NumPy arithmetic) or in a finite model; never
another exception, a leaked RuntimeWarning, a NaN output, or a model changed by a
failed or interrupted call. The profile is derandomized and database-less, so
every run throws the same 1,050 cases (about 15 s on a 2-core CPU).
"""

import contextlib
import copy
import io
import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning

# imported here, not in an example: a first torch import outlasts the deadline
try:
    import torch
except ImportError:  # the input kinds that need it are left out
    torch = None
try:
    import array_api_strict
except ImportError:
    array_api_strict = None
try:
    import pandas as pd
except ImportError:
    pd = None

import sk_gpusgd._core.steps
import sk_gpusgd._engines.loop
import sk_gpusgd._engines.sparse
from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

settings.register_profile(
    "contract-fuzz",
    derandomize=True,
    database=None,
    deadline=3000,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("contract-fuzz")
N_FEATURES = 3
PACKAGES = ("sk_gpusgd", "sklearn", "scipy")
FLOAT_MAX = float(np.finfo(np.float64).max)

# ----------------------------------------------------------------- inputs
X_DEFECTS = [
    "nan",
    "inf",
    "huge",
    "huge_pair",
    "tiny",
    "int64",
    "uint8",
    "bool",
    "float16",
    "float32",
    "complex",
    "object_floats",
    "object_strings",
    "object_none",
    "strings",
    "datetime",
    "structured",
    "one_d",
    "three_d",
    "no_features",
    "no_rows",
    "list",
    "csr",
    "csc",
    "coo",
    "bsr",
    "lil",
    "dok",
    "dia",
    "csr_array",
    "sparse_duplicates",
    "sparse_explicit_zeros",
    "sparse_nan",
    "sparse_int",
    "extra_feature",
    *(["torch", "torch_nan", "torch_int"] if torch is not None else []),
    *(["array_api_strict"] if array_api_strict is not None else []),
    *(["dataframe", "dataframe_object"] if pd is not None else []),
]
Y_DEFECTS = [
    "nan",
    "inf",
    "huge",
    "short",
    "long",
    "two_columns",
    "column",
    "strings",
    "object_none",
    "single_class",
    "continuous",
    "structured",
    "datetime",
    "complex",
    "bool",
    "empty",
]
WEIGHT_DEFECTS = [
    "negative",
    "nan",
    "inf",
    "zeros",
    "short",
    "two_d",
    "object_none",
    "strings",
    "huge",
    "tiny",
    "scalar",
    "list",
]


def _base_data(seed, n_samples, classifier):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_samples, N_FEATURES)
    if classifier:
        y = np.arange(n_samples) % 3 if seed % 2 else np.arange(n_samples) % 2
    else:
        y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.randn(n_samples)
    return X, y


def _sparse(X, fmt):
    return getattr(sp, f"{fmt}_matrix")(X)


def _defective_X(X, defect, seed):
    if X.shape[1] == 0:
        return X
    rng = np.random.RandomState(seed)
    n = X.shape[0]
    cell = (rng.randint(max(n, 1)), rng.randint(N_FEATURES))
    if defect in ("nan", "inf", "huge", "tiny") and n:
        X = X.copy()
        X[cell] = {"nan": np.nan, "inf": -np.inf, "huge": FLOAT_MAX, "tiny": 5e-324}[defect]
        return X
    if defect == "huge_pair" and n:
        X = X.copy()
        X[0, :2] = [FLOAT_MAX, -FLOAT_MAX]
        return X
    simple = {
        "int64": lambda: (X * 10).astype(np.int64),
        "uint8": lambda: np.abs(X * 10).astype(np.uint8),
        "bool": lambda: X > 0,
        "float16": lambda: X.astype(np.float16),
        "float32": lambda: X.astype(np.float32),
        "complex": lambda: X + 1j,
        "object_floats": lambda: X.astype(object),
        "object_strings": lambda: np.full(X.shape, "a", dtype=object),
        "object_none": lambda: np.where(X > 0, X, None).astype(object),
        "strings": lambda: X.astype(str),
        "datetime": lambda: (X * 100).astype(np.int64).astype("datetime64[D]"),
        "structured": lambda: np.zeros(n, dtype=[("a", float), ("b", float), ("c", float)]),
        "one_d": lambda: X[:, 0],
        "three_d": lambda: X[:, :, None],
        "no_features": lambda: X[:, :0],
        "no_rows": lambda: X[:0],
        "list": lambda: X.tolist(),
        "csr_array": lambda: sp.csr_array(X),
        "extra_feature": lambda: np.hstack([X, X[:, :1]]),
    }
    if defect in simple:
        return simple[defect]()
    if defect in ("csr", "csc", "coo", "bsr", "lil", "dok", "dia"):
        sparse_X = X.copy()
        sparse_X[np.abs(sparse_X) < 0.5] = 0.0
        return _sparse(sparse_X, defect)
    if defect == "sparse_duplicates":
        rows, cols = np.nonzero(np.ones_like(X))
        values = X[rows, cols] / 2.0
        # every entry stored twice: the matrix is X, its COO form has duplicates
        return sp.coo_matrix(
            (np.r_[values, values], (np.r_[rows, rows], np.r_[cols, cols])), shape=X.shape
        )
    if defect == "sparse_explicit_zeros":
        matrix = sp.csr_matrix(X)
        matrix.data[::2] = 0.0  # stored zeros, not eliminated
        return matrix
    if defect == "sparse_nan":
        matrix = sp.csr_matrix(X)
        if matrix.nnz:
            matrix.data[0] = np.nan
        return matrix
    if defect == "sparse_int":
        return sp.csr_matrix((X * 10).astype(np.int64))
    return _other_library_X(X, defect)


def _other_library_X(X, defect):
    """Array-API and pandas inputs (test dependencies), some with defects."""
    if defect.startswith("torch"):
        if defect == "torch_nan" and X.shape[0]:
            X = X.copy()
            X[0, 0] = np.nan
        return torch.asarray((X * 10).astype(np.int64) if defect == "torch_int" else X)
    if defect == "array_api_strict":
        return array_api_strict.asarray(X)
    if defect.startswith("dataframe"):
        frame = pd.DataFrame(X, columns=["a", "b", "c"])
        if defect == "dataframe_object":
            frame["b"] = frame["b"].astype(str)
        return frame
    return X


def _defective_y(y, defect, classifier):
    n = y.shape[0]
    if defect in ("nan", "inf", "huge") and n:
        y = y.astype(float)
        y[0] = {"nan": np.nan, "inf": np.inf, "huge": FLOAT_MAX}[defect]
        return y
    table = {
        "short": lambda: y[:-1],
        "long": lambda: np.r_[y, y[:1]],
        "two_columns": lambda: np.c_[y, y],
        "column": lambda: y[:, None],
        "strings": lambda: y.astype(str),
        "object_none": lambda: np.where(np.arange(n) % 2, y, None).astype(object),
        "single_class": lambda: np.zeros_like(y),
        "continuous": lambda: y + 0.5 * np.arange(n) / max(n, 1),
        "structured": lambda: np.zeros(n, dtype=[("a", float)]),
        "datetime": lambda: np.arange(n).astype("datetime64[D]"),
        "complex": lambda: y + 1j,
        "bool": lambda: y > np.median(y) if n else y.astype(bool),
        "empty": lambda: y[:0],
    }
    return table[defect]() if defect in table else y


def _defective_weight(n, defect):
    weights = np.linspace(0.5, 1.5, n)
    table = {
        "negative": lambda: -weights,
        "nan": lambda: np.where(np.arange(n) == 0, np.nan, weights),
        "inf": lambda: np.where(np.arange(n) == 0, np.inf, weights),
        "zeros": lambda: np.zeros(n),
        "short": lambda: weights[:-1],
        "two_d": lambda: weights[:, None],
        "object_none": lambda: np.array([None] * n, dtype=object),
        "strings": lambda: weights.astype(str),
        "huge": lambda: np.full(n, 1e300),
        "tiny": lambda: np.full(n, 5e-324),
        "scalar": lambda: 2.0,
        "list": lambda: [None] * n,
    }
    return table[defect]()


# -------------------------------------------------------------- parameters
COMMON_EDGES = {
    "penalty": ["l2", "l1", "elasticnet", None, "l3", 1],
    "alpha": [0.0, 5e-324, 1e-300, 1e22, 1e300, FLOAT_MAX, -1e-300, np.nan, np.inf, "1"],
    "l1_ratio": [0.0, 1.0, None, -0.1, 1.1, np.nan],
    "fit_intercept": [True, False, "yes"],
    "max_iter": [1, 2, 0, -1, 2.5, None],
    "tol": [None, 0.0, 1e-300, 1e300, np.inf, -1.0, np.nan, "1e-3"],
    "shuffle": [True, False, "no"],
    "verbose": [0, 1, "loud"],
    "epsilon": [0.0, 5e-324, 1e300, FLOAT_MAX, -1.0, np.nan],
    "random_state": [0, 2**32 - 1, -1, "seed"],
    "learning_rate": ["constant", "optimal", "invscaling", "adaptive", "pa1", "pa2", "foo"],
    "eta0": [5e-324, 1e-300, 1e300, FLOAT_MAX, 0.0, -1.0, np.nan],
    "power_t": [-1000, -1.0, 0.0, 1000, 1e300, -1e300, np.nan, np.inf],
    "early_stopping": [True, False],
    "validation_fraction": [1e-300, 0.5, 1 - 1e-16, 0.0, 1.0, np.nan],
    "n_iter_no_change": [1, 10**9, 0, 1.5],
    "warm_start": [True, False],
    "average": [0, 1, 10**18, True, False, -1, 1.5],
    "batch_size": [1, 10**18, 0, -1, 2.5, "8"],
    "momentum": [0.0, 0.5, 1 - 1e-16, 1.0, -0.1, np.nan],
    "dampening": [0.0, 1.0, 1.1, np.nan],
    "nesterov": [True, False],
    "momentum_form": ["buffer", "velocity", "x"],
    "weight_decay": [0.0, 1e-300, 1e300, FLOAT_MAX, -1.0, np.nan],
    "decoupled_weight_decay": [True, False],
    "clip_value": [None, 5e-324, 1e300, 0.0, -1.0, np.nan],
    "clip_norm": [None, 5e-324, 1e300, 0.0, -1.0, np.nan],
    "multi_precision": [True, False],
    "device": ["auto", "cpu", "cuda", "tpu"],
}
CLASSIFIER_EDGES = {
    **COMMON_EDGES,
    "loss": [
        "hinge",
        "log_loss",
        "modified_huber",
        "squared_hinge",
        "perceptron",
        "squared_error",
        "huber",
        "epsilon_insensitive",
        "squared_epsilon_insensitive",
        "foo",
    ],
    "class_weight": [
        None,
        "balanced",
        {0: np.nan},
        {0: 1e300},
        {0: 0.0, 1: 0.0, 2: 0.0},
        {7: 1.0},
        {0: -1.0},
        "heavy",
    ],
    "n_jobs": [None, 1, -1, "all"],
}
REGRESSOR_EDGES = {
    **COMMON_EDGES,
    "loss": [
        "squared_error",
        "huber",
        "epsilon_insensitive",
        "squared_epsilon_insensitive",
        "hinge",
    ],
}


@st.composite
def parameter_sets(draw, edges):
    names = draw(st.lists(st.sampled_from(sorted(edges)), min_size=1, max_size=4, unique=True))
    return {name: draw(st.sampled_from(edges[name])) for name in names}


# ---------------------------------------------------------------- checking
@contextlib.contextmanager
def _strict_warnings():
    """Warnings are errors, but for the ones a user is meant to see."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for expected in (ConvergenceWarning, FutureWarning, DataConversionWarning):
            warnings.simplefilter("ignore", expected)
        # scikit-learn's hint that many distinct labels may be a regression target
        warnings.filterwarnings("ignore", message="The number of unique classes is greater")
        # scikit-learn's notes on feature names (a DataFrame in one call, an array in another)
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        warnings.filterwarnings("ignore", message="X has feature names")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def _snapshot(model):
    return copy.deepcopy({k: v for k, v in vars(model).items()})


def _same(before, after):
    if type(before) is not type(after):
        return False
    if isinstance(before, dict):
        return before.keys() == after.keys() and all(_same(before[k], after[k]) for k in before)
    if isinstance(before, list | tuple):
        return len(before) == len(after) and all(map(_same, before, after))
    if isinstance(before, np.ndarray):
        return before.shape == after.shape and np.array_equal(before, after, equal_nan=True)
    if hasattr(before, "__dataclass_fields__"):
        return _same(vars(before), vars(after))
    if isinstance(before, float) and np.isnan(before):
        return np.isnan(after)
    try:
        return bool(before == after)
    except Exception:  # noqa: BLE001 - objects without equality compare by identity
        return before is after


def _raised_by_a_check(error):
    """The error comes from a check, not from arithmetic deep in NumPy or Python."""
    frame = error.__traceback__
    origin = None
    while frame is not None:
        origin = frame.tb_frame.f_code.co_filename
        frame = frame.tb_next
    origin = origin.replace(os.sep, "/")
    return any(f"/{package}/" in origin for package in PACKAGES)


def _finite(array):
    if hasattr(array, "detach"):  # torch
        array = array.detach().cpu().numpy()
    values = array.toarray() if sp.issparse(array) else np.asarray(array)
    return bool(np.all(np.isfinite(values.astype(float))))


def _check_call(model, call):
    """Run ``call``; it raises a clear ValueError/TypeError, or leaves a finite model."""
    before = _snapshot(model)
    try:
        with _strict_warnings():
            call()
    except (ValueError, TypeError) as error:
        assert str(error), "an error without a message"
        assert _raised_by_a_check(error), f"raw error {type(error).__name__}: {error}"
        assert _same(before, vars(model)), "a failed call changed the model"
        return False
    assert _finite(model.coef_) and _finite(model.intercept_), "a non-finite model"
    clean = np.random.RandomState(1).randn(5, model.n_features_in_)
    with _strict_warnings():
        outputs = [model.predict(clean)]
        if isinstance(model, GPUSGDClassifier):
            outputs.append(model.decision_function(clean))
            if model.loss in ("log_loss", "modified_huber"):
                outputs.append(model.predict_proba(clean))
    for output in outputs:
        if np.asarray(output).dtype.kind == "f":
            assert _finite(output), "a NaN or infinite prediction"
    return True


def _estimator(classifier, **params):
    return (GPUSGDClassifier if classifier else GPUSGDRegressor)(**params)


QUICK = dict(max_iter=2, tol=None, random_state=0)

# ------------------------------------------------------------------ tests
inputs = st.fixed_dictionaries(
    {
        "classifier": st.booleans(),
        "seed": st.integers(0, 2**16),
        "n_samples": st.sampled_from([1, 2, 7, 16]),
        "X_defects": st.lists(st.sampled_from(X_DEFECTS), max_size=2),
        "y_defect": st.none() | st.sampled_from(Y_DEFECTS),
        "weight_defect": st.none() | st.sampled_from(WEIGHT_DEFECTS),
        "method": st.sampled_from(["fit", "partial_fit"]),
    }
)


def _build(case):
    with np.errstate(all="ignore"):  # building dates and NaNs from floats warns
        return _build_defective(case)


def _build_defective(case):
    X, y = _base_data(case["seed"], case["n_samples"], case["classifier"])
    for defect in case["X_defects"]:
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype == np.float64 and X.size:
            X = _defective_X(X, defect, case["seed"])
    if case["y_defect"]:
        y = _defective_y(y, case["y_defect"], case["classifier"])
    weight = None
    if case["weight_defect"]:
        weight = _defective_weight(case["n_samples"], case["weight_defect"])
    return X, y, weight


@settings(FUZZ, max_examples=350)
@given(case=inputs)
def test_fit_on_bad_inputs(case):
    X, y, weight = _build(case)
    model = _estimator(case["classifier"], **QUICK)
    extra = {}
    if case["method"] == "partial_fit" and case["classifier"]:
        extra["classes"] = np.unique(_base_data(0, 6, True)[1])
    if _check_call(
        model, lambda: getattr(model, case["method"])(X, y, sample_weight=weight, **extra)
    ):
        return
    assert not hasattr(model, "coef_")


@settings(FUZZ, max_examples=250)
@given(case=inputs)
def test_fitted_model_given_bad_inputs(case):
    clean_X, clean_y = _base_data(case["seed"], 16, case["classifier"])
    if not case["classifier"]:
        clean_y = clean_y * 1e3  # weights above 1, which overflow with huge X
    model = _estimator(case["classifier"], **QUICK).fit(clean_X, clean_y)
    X, y, weight = _build(case)
    before = _snapshot(model)
    if case["method"] == "partial_fit":
        _check_call(model, lambda: model.partial_fit(X, y, sample_weight=weight))
        return
    # prediction methods: a clear error or finite output, and the model untouched
    for method in ("predict", "decision_function", "predict_proba"):
        if not hasattr(model, method):
            continue
        try:
            with _strict_warnings():
                output = getattr(model, method)(X)
        except (ValueError, TypeError) as error:
            assert _raised_by_a_check(error), f"raw error {type(error).__name__}: {error}"
        else:
            # finite X near the float limit may overflow to +-inf, never to NaN
            if np.asarray(output).dtype.kind == "f":
                assert not np.any(np.isnan(np.asarray(output))), "a NaN output"
        assert _same(before, vars(model))


@settings(FUZZ, max_examples=350)
@given(
    classifier=st.booleans(),
    data=st.data(),
    continue_fitted=st.booleans(),
    sparse_X=st.booleans(),
)
def test_parameters_at_and_past_their_limits(classifier, data, continue_fitted, sparse_X):
    params = data.draw(parameter_sets(CLASSIFIER_EDGES if classifier else REGRESSOR_EDGES))
    X, y = _base_data(3, 30, classifier)
    if sparse_X:
        X = sp.csr_matrix(np.where(np.abs(X) < 0.5, 0.0, X))
    params = {"max_iter": 3, **params}
    if continue_fitted:
        # scikit-learn skips validation here; every parameter must still be checked
        model = _estimator(classifier, max_iter=2, tol=None, random_state=0)
        extra = {"classes": np.unique(y)} if classifier else {}
        model.partial_fit(X, y, **extra)
        model.set_params(**params)
        _check_call(model, lambda: model.partial_fit(X, y))
        return
    model = _estimator(classifier, **params)
    if not _check_call(model, lambda: model.fit(X, y)):
        assert not hasattr(model, "coef_")


class Interrupt(KeyboardInterrupt):
    """Stands for a user's Ctrl-C in the middle of an epoch."""


@settings(FUZZ, max_examples=100)
@given(
    classifier=st.booleans(),
    after_steps=st.integers(1, 12),
    method=st.sampled_from(["fit", "partial_fit", "warm_fit"]),
    sparse_X=st.booleans(),
    momentum=st.sampled_from([0.0, 0.9]),
    average=st.sampled_from([False, 2]),
    compiled=st.booleans(),
)
def test_interrupted_fit_leaves_the_model_as_it_was(
    classifier, after_steps, method, sparse_X, momentum, average, compiled
):
    """Ctrl-C in the middle of a fit leaves the fitted model as it was.

    The NumPy engine is interrupted between two steps of an epoch; the
    compiled epoch (one C call) can only be interrupted between epochs, so
    there the interruption comes at the end of the first one.
    """
    X, y = _base_data(5, 40, classifier)
    if sparse_X:
        X = sp.csr_matrix(X)
    params = dict(QUICK, momentum=momentum, average=average, batch_size=4, penalty="elasticnet")
    model = _estimator(classifier, warm_start=method == "warm_fit", **params).fit(X, y)
    before = _snapshot(model)
    calls = {"n": 0}
    hooks = [(sk_gpusgd._engines.loop, "close_epoch")]
    if not compiled:
        hooks = [
            (sk_gpusgd._core.steps, "momentum_step"),
            (sk_gpusgd._engines.sparse, "momentum_step"),
        ]
    original = getattr(*hooks[0])
    threshold = 1 if compiled else after_steps

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= threshold:
            raise Interrupt
        return original(*args, **kwargs)

    call = model.partial_fit if method == "partial_fit" else model.fit
    with pytest.MonkeyPatch.context() as patch:
        if not compiled:
            patch.setenv("SK_GPUSGD_COMPILED", "0")
        for module, name in hooks:
            patch.setattr(module, name, interrupting)
        with pytest.raises(Interrupt):
            call(X, y)
    assert _same(before, vars(model)), "an interrupted fit changed the model"
    # and the model still trains afterwards
    call(X, y)
    assert _finite(model.coef_)
