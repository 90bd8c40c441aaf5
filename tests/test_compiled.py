"""The compiled CPU epoch against the NumPy engine it reimplements.

``sk_gpusgd/_engines/compiled/sgd_cpu.c`` runs the NumPy engine's step, operation for
operation, one epoch per call. Every fit here runs twice, with the compiled
epoch and with ``SK_GPUSGD_COMPILED=0`` (the NumPy engine), and the fitted
models must agree: in float64 to rounding, stopping epoch included; in float32
(where the C code accumulates in float64 and NumPy in float32) over a fixed
number of epochs.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification, make_regression

import sk_gpusgd._plan
from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor
from sk_gpusgd._engines import compiled as _compiled


def _fit_both(monkeypatch, cls, X, y, fit="fit", **params):
    """The same fit on the compiled epoch and on the NumPy engine.

    The NumPy run keeps the batch size 'auto' picks for the compiled engine.
    """
    models = []
    for switch in ("1", "0"):
        monkeypatch.setenv(_compiled.ENV_SWITCH, switch)
        if switch == "0":
            monkeypatch.setattr(sk_gpusgd._plan, "compiled_covers_fit", lambda *args: True)
        model = cls(random_state=0, **params)
        if fit == "partial_fit":
            extra = {"classes": np.unique(y)} if cls is GPUSGDClassifier else {}
            for chunk in np.array_split(np.arange(X.shape[0]), 3):
                model.partial_fit(X[chunk], y[chunk], **extra)
        else:
            model.fit(X, y)
        models.append(model)
    return models


def _assert_same_model(compiled, reference, rtol):
    assert compiled.n_iter_ == reference.n_iter_
    assert compiled.t_ == reference.t_
    scale = np.max(np.abs(reference.coef_)) + np.max(np.abs(reference.intercept_))
    assert_allclose(compiled.coef_, reference.coef_, rtol=rtol, atol=rtol * scale)
    assert_allclose(compiled.intercept_, reference.intercept_, rtol=rtol, atol=rtol * scale)


@pytest.fixture(scope="module")
def classification():
    X, y = make_classification(600, 12, n_informative=6, n_classes=3, random_state=0)
    # raw features on different scales, so that preconditioning has work to do
    X = X * np.linspace(0.5, 20, 12) + np.linspace(-3, 8, 12)
    return X, y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(500, 8, noise=2.0, random_state=1)
    return X, y


def test_the_extension_is_built():
    """The install builds the compiled epoch (a C compiler is part of the test set-up)."""
    assert _compiled.available(), "sk_gpusgd._sgd_cpu was not built: fits run in NumPy"


CLASSIFIER_CASES = [
    {},
    {"loss": "log_loss"},
    {"loss": "modified_huber", "penalty": "l1", "alpha": 1e-3},
    {"loss": "squared_hinge", "learning_rate": "invscaling", "eta0": 0.01},
    {"loss": "perceptron", "penalty": "elasticnet", "batch_size": 16},
    {"average": True},
    {"average": 50, "batch_size": 8},
    {"learning_rate": "adaptive", "eta0": 0.1, "batch_size": 32},
    {"learning_rate": "pa1", "eta0": 0.5},
    {"learning_rate": "pa2", "eta0": 0.5, "class_weight": "balanced"},
    {"batch_size": 1},
    {"class_weight": "balanced", "loss": "log_loss"},
    {"weight_decay": 1e-3, "decoupled_weight_decay": True, "penalty": None},
    {"preconditioner": None, "learning_rate": "constant", "eta0": 1e-4},
    {"fit_intercept": False},
    {"early_stopping": True, "n_iter_no_change": 3},
]


REGRESSOR_CASES = [
    {},
    {"loss": "huber", "epsilon": 1.0},
    {"loss": "epsilon_insensitive", "penalty": "l1"},
    {"loss": "squared_epsilon_insensitive", "batch_size": 1, "max_iter": 3, "tol": None},
    {"learning_rate": "pa2", "loss": "epsilon_insensitive", "eta0": 0.1},
    {"average": True, "batch_size": 4},
]


@pytest.mark.parametrize(
    "cls, problem, params",
    [(GPUSGDClassifier, "classification", params) for params in CLASSIFIER_CASES]
    + [(GPUSGDRegressor, "regression", params) for params in REGRESSOR_CASES],
    ids=lambda value: value.__name__ if isinstance(value, type) else str(value),
)
def test_dense_fits_match_the_numpy_engine(monkeypatch, request, cls, problem, params):
    X, y = request.getfixturevalue(problem)
    compiled, reference = _fit_both(monkeypatch, cls, X, y, **params)
    _assert_same_model(compiled, reference, rtol=1e-9)


def test_sample_weights_and_partial_fit_match(monkeypatch, classification):
    X, y = classification
    weights = np.random.RandomState(0).uniform(0.1, 3.0, X.shape[0])
    models = []
    for switch in ("1", "0"):
        monkeypatch.setenv(_compiled.ENV_SWITCH, switch)
        if switch == "0":
            monkeypatch.setattr(sk_gpusgd._plan, "compiled_covers_fit", lambda *args: True)
        model = GPUSGDClassifier(random_state=0, loss="log_loss").fit(X, y, sample_weight=weights)
        models.append(model)
    _assert_same_model(*models, rtol=1e-9)
    streamed = _fit_both(monkeypatch, GPUSGDClassifier, X, y, fit="partial_fit", average=True)
    _assert_same_model(*streamed, rtol=1e-9)


SPARSE_CASES = [
    {},
    {"loss": "log_loss"},
    {"penalty": "l1", "alpha": 1e-3},
    {"penalty": "elasticnet", "average": True},
    {"learning_rate": "adaptive", "eta0": 0.1},
    {"batch_size": 1, "max_iter": 4, "tol": None},
    # a shrink that reaches the scale's renormalisation threshold every few steps
    {"learning_rate": "constant", "eta0": 0.5, "alpha": 1.0, "max_iter": 3, "tol": None},
]


def _sparse_problem(dtype=np.float64):
    X = sp.random(800, 300, density=0.03, format="csr", random_state=0, dtype=dtype)
    return X, np.digitize(X @ np.random.RandomState(0).randn(300), [-0.3, 0.3])


@pytest.mark.parametrize("params", SPARSE_CASES, ids=str)
def test_sparse_matches_the_numpy_engine(monkeypatch, params):
    X, y = _sparse_problem()
    # 'auto' picks another batch size where the compiled epoch is off
    params = {"batch_size": 16, **params}
    compiled, reference = _fit_both(monkeypatch, GPUSGDClassifier, X, y, **params)
    _assert_same_model(compiled, reference, rtol=1e-9)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("params", [{"loss": "log_loss"}, {"loss": "hinge", "average": True}])
def test_float32_matches_to_float32_rounding(monkeypatch, classification, sparse, params):
    X, y = _sparse_problem(np.float32) if sparse else classification
    if not sparse:
        # standardised: on raw features (no preconditioning at a fixed batch size) the
        # float32 trajectories of any two summation orders part by more than rounding
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    X = X.astype(np.float32)
    compiled, reference = _fit_both(
        monkeypatch, GPUSGDClassifier, X, y, max_iter=4, tol=None, batch_size=32, **params
    )
    assert compiled.coef_.dtype == np.float32
    _assert_same_model(compiled, reference, rtol=2e-4)


def test_per_column_stopping_matches(monkeypatch):
    """One-vs-rest columns stop on their own (frozen columns pass through the C epoch)."""
    X, y = make_classification(900, 10, n_informative=5, n_classes=4, random_state=3)
    compiled, reference = _fit_both(monkeypatch, GPUSGDClassifier, X, y, max_iter=200)
    _assert_same_model(compiled, reference, rtol=1e-9)


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"momentum": 0.9}, "momentum"),
        ({"clip_norm": 1.0}, "gradient clipping"),
        ({"multi_class": "multinomial", "loss": "log_loss"}, "the multinomial loss"),
    ],
)
def test_what_the_compiled_epoch_leaves_to_numpy(monkeypatch, classification, params, reason):
    """Options it does not cover run in NumPy, for the reason named."""
    X, y = classification
    seen = []
    original = _compiled.unsupported_reason

    def recording(*args):
        seen.append(original(*args))
        return seen[-1]

    monkeypatch.setattr(_compiled, "unsupported_reason", recording)
    GPUSGDClassifier(random_state=0, max_iter=2, tol=None, **params).fit(X, y)
    assert seen and all(found == reason for found in seen)


def test_half_precision_and_the_switch_run_in_numpy(monkeypatch, classification):
    X, y = classification
    seen = []
    original = _compiled.unsupported_reason
    monkeypatch.setattr(
        _compiled, "unsupported_reason", lambda *args: seen.append(original(*args)) or seen[-1]
    )
    GPUSGDClassifier(random_state=0, max_iter=1, tol=None).fit(X.astype(np.float16), y)
    assert seen[-1] == "half-precision X"
    monkeypatch.setenv(_compiled.ENV_SWITCH, "0")
    GPUSGDClassifier(random_state=0, max_iter=1, tol=None).fit(X, y)
    assert seen[-1] == f"turned off by {_compiled.ENV_SWITCH}=0"


def test_int64_csr_indices_match(classification):
    """CSR with 64-bit indices (refused by scikit-learn's validation, not by the engine)."""
    from sk_gpusgd._core.losses import make_loss
    from sk_gpusgd._core.optim import OptimizerConfig
    from sk_gpusgd._core.schedules import make_schedule
    from sk_gpusgd._core.types import EngineConfig, FrozenColumns, TrainingData, TrainingState
    from sk_gpusgd._engines.sparse import sparse_epoch

    X, labels = _sparse_problem()
    wide = X.copy()
    wide.indices, wide.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
    targets = np.where(labels[:, None] == np.arange(3), 1.0, -1.0)
    loss = make_loss("log_loss", 0.1)
    config = EngineConfig(
        loss=loss,
        schedule=make_schedule("optimal", 0.0, 1e-4, 0.5, loss),
        optimizer=OptimizerConfig(l2=1e-4, l1=1e-5),
        batch_size=16,
        intercept_scale=0.01,
    )
    order = np.random.RandomState(0).permutation(X.shape[0])
    results = []
    for epoch, matrix in ((_compiled.compiled_epoch, wide), (sparse_epoch, X)):
        state = TrainingState(coef=np.zeros((300, 3)), intercept=np.zeros(3))
        data = TrainingData(X=matrix, targets=targets)
        totals = epoch(np, state, data, config, order, FrozenColumns(np, state, [True] * 3))
        results.append((state.coef, state.intercept, np.asarray(totals.loss)))
    for compiled, reference in zip(*results, strict=True):
        assert_allclose(compiled, reference, rtol=1e-10, atol=1e-12)


def test_sparse_auto_batch_is_the_critical_batch_size(monkeypatch):
    """On CSR the compiled epoch has no per-step cost to amortise: 'auto' takes beta / lam.

    beta (mean squared row norm) and lam (top eigenvalue of E[x x^T]) are
    computed here from their definitions, the intercept as a feature of
    sqrt(0.01) (its damped step on sparse data).
    """
    X, y = _sparse_problem()
    dense = np.hstack([X.toarray(), np.full((X.shape[0], 1), 0.1)])
    beta = np.mean(np.sum(dense**2, axis=1))
    lam = np.linalg.eigvalsh(dense.T @ dense / X.shape[0])[-1]
    expected = max(1, min(256, int(beta / lam), X.shape[0] // 16))
    model = GPUSGDClassifier(random_state=0, max_iter=2, tol=None).fit(X, y)
    assert 1 < model.batch_size_ < 256
    assert model.batch_size_ == expected
    # the NumPy engine pays per step, so it keeps the larger CPU batch
    monkeypatch.setenv(_compiled.ENV_SWITCH, "0")
    model = GPUSGDClassifier(random_state=0, max_iter=2, tol=None).fit(X, y)
    assert model.batch_size_ == min(256, X.shape[0] // 16)


@pytest.mark.parametrize("n_features", [12, 80])
def test_dense_auto_batch_follows_the_critical_batch_size(n_features):
    """Dense X: the critical batch size of the standardised rows, but at least 16 rows.

    beta and lam are computed here from their definitions on the rows the
    preconditioned steps see, ``(x - mean) / std`` and the intercept's 1. With
    12 correlated features the floor of 16 rows applies; with 80 nearly
    independent ones the critical batch size is above it.
    """
    X, y = make_classification(3000, n_features, n_informative=n_features // 2, random_state=0)
    X = X * np.linspace(0.5, 20, n_features)
    rows = np.hstack([(X - X.mean(axis=0)) / X.std(axis=0), np.ones((X.shape[0], 1))])
    beta = np.mean(np.sum(rows**2, axis=1))
    lam = np.linalg.eigvalsh(rows.T @ rows / X.shape[0])[-1]
    model = GPUSGDClassifier(random_state=0, max_iter=2, tol=None).fit(X, y)
    assert (int(beta / lam) > 16) == (n_features == 80)
    assert model.batch_size_ == min(256, max(16, int(beta / lam)), X.shape[0] // 16)
    assert model.preconditioner_ == "standardize"


def test_compiled_shuffle_is_a_uniform_permutation():
    """Fisher-Yates over SplitMix64: bijections, reproducible, uniform over (position, value)."""
    from scipy.stats import chisquare

    first = _compiled.permutation_source(np.random.RandomState(7))
    second = _compiled.permutation_source(np.random.RandomState(7))
    orders = [first(1000) for _ in range(3)]
    for order in orders:
        assert np.array_equal(np.sort(order), np.arange(1000))
    assert not np.array_equal(orders[0], orders[1])
    assert all(np.array_equal(order, second(1000)) for order in orders)
    n, draws = 6, 30000
    counts = np.zeros((n, n))
    for _ in range(draws):
        counts[np.arange(n), first(n)] += 1
    # a biased shuffle (say, swapping with any index instead of one not yet placed) fails this
    assert chisquare(counts.ravel()).pvalue > 1e-4


@pytest.mark.parametrize("sparse", [False, True])
def test_in_place_epochs_never_touch_the_callers_arrays(classification, sparse):
    """The C epoch updates its state in place: arrays the caller holds must not move."""
    X, y = classification
    X = sp.csr_matrix(X) if sparse else X
    coef_init = np.ones((3, X.shape[1]))
    intercept_init = np.zeros(3)
    kept = coef_init.copy(), intercept_init.copy()
    model = GPUSGDClassifier(random_state=0, max_iter=3, tol=None, warm_start=True)
    model.fit(X, y, coef_init=coef_init, intercept_init=intercept_init)
    assert np.array_equal(coef_init, kept[0]) and np.array_equal(intercept_init, kept[1])
    fitted = model.coef_
    fitted_copy = fitted.copy()
    user = np.full_like(model.coef_, 0.5)
    model.coef_ = user
    model.partial_fit(X, y)
    model.fit(X, y)
    assert np.array_equal(user, np.full_like(user, 0.5))
    assert np.array_equal(fitted, fitted_copy)


def _log_loss_epoch_at_rest(X, targets, coef, intercept):
    """One compiled log-loss epoch at a rate of 1e-300 (the weights stay); its totals, state."""
    from sk_gpusgd._core.losses import make_loss
    from sk_gpusgd._core.optim import OptimizerConfig
    from sk_gpusgd._core.schedules import make_schedule
    from sk_gpusgd._core.types import EngineConfig, FrozenColumns, TrainingData, TrainingState

    loss = make_loss("log_loss", 0.1)
    config = EngineConfig(
        loss=loss,
        schedule=make_schedule("constant", 1e-300, 1e-4, 0.5, loss),
        optimizer=OptimizerConfig(),
        batch_size=16,
    )
    state = TrainingState(coef=coef.copy(), intercept=intercept.copy())
    frozen = FrozenColumns(np, state, [True] * targets.shape[1])
    totals = _compiled.compiled_epoch(
        np, state, TrainingData(X=X, targets=targets), config, None, frozen
    )
    return totals, state


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_loss_epoch_total_is_the_sum_of_row_losses(sparse, dtype):
    """The C epoch sums log loss without a log per row; the total is still sum log(1 + e^-yp).

    A rate of 1e-300 leaves the weights as they are, so every row's loss is
    written out here from the fixed model. 4,000 rows near the boundary make
    the running product of the C code pass 2**512 several times; a few rows
    far on the wrong side (z = -50) have losses of 50.
    """
    rng = np.random.RandomState(0)
    X = rng.normal(size=(4000, 6)).astype(dtype)
    X[:40] *= 400.0
    coef = rng.normal(scale=0.05, size=(6, 2)).astype(dtype)
    coef[:, 1] *= 0.1
    intercept = np.array([0.1, -0.2], dtype=dtype)
    targets = np.where(rng.rand(4000, 2) < 0.5, 1.0, -1.0).astype(dtype)
    z = targets * (X.astype(np.float64) @ coef.astype(np.float64) + intercept)
    expected = np.logaddexp(0.0, -z).sum(axis=0)
    assert np.max(-z) > 30 and np.sum(np.abs(z) < 1) > 3000
    totals, state = _log_loss_epoch_at_rest(
        sp.csr_matrix(X) if sparse else X, targets, coef, intercept
    )
    assert_allclose(state.coef, coef)
    assert_allclose(totals.loss, expected, rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("stride, intercept", [(1, 0.0), (3, 0.1), (7, 1.0)])
def test_sampled_second_moment_reads_the_csr_rows_in_place(dtype, stride, intercept):
    """E[x x^T] v over rows 0, stride, ... with the intercept's feature, written out densely."""
    X = sp.random(200, 40, density=0.2, format="csr", random_state=0, dtype=dtype)
    rows = np.hstack([X.toarray()[::stride], np.full((len(range(0, 200, stride)), 1), intercept)])
    vector = np.random.RandomState(1).normal(size=41)
    n_rows, times, sum_of_squares = _compiled.sampled_second_moment(X, stride, intercept)
    assert n_rows == rows.shape[0]
    assert_allclose(times(vector), rows.T @ (rows @ vector) / n_rows, rtol=1e-12, atol=1e-14)
    assert_allclose(sum_of_squares(), np.sum(rows[:, :-1].astype(np.float64) ** 2), rtol=1e-12)


def test_batch_statistics_are_the_same_with_and_without_the_extension(monkeypatch):
    """The in-place C product and the NumPy product on the sampled rows measure the same."""
    from sk_gpusgd._core.scaling import SAMPLE_ROWS, measure_scaling

    X, _ = _sparse_problem()
    X = sp.vstack([X] * (2 * SAMPLE_ROWS // X.shape[0] + 1)).tocsr()
    assert X.shape[0] > SAMPLE_ROWS  # rows are sampled with a stride
    in_place = _compiled.sampled_second_moment
    compiled = measure_scaling(X, True, intercept_scale=0.01, second_moment=in_place)
    reference = measure_scaling(X, True, intercept_scale=0.01)
    assert compiled.mean_squared_norm == pytest.approx(reference.mean_squared_norm, rel=1e-6)
    assert compiled.top_eigenvalue == pytest.approx(reference.top_eigenvalue, rel=1e-6)


def _widened(X, width, seed=0):
    """X's rows in ``width`` columns: X's columns scattered in order, the rest empty."""
    rng = np.random.RandomState(seed)
    candidates = np.unique(rng.randint(0, width, size=4 * X.shape[1]))
    places = np.sort(rng.choice(candidates, X.shape[1], replace=False))
    return sp.csr_matrix(
        (X.data, places[X.indices].astype(np.int32), X.indptr), shape=(X.shape[0], width)
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("extension", [True, False])
def test_batch_statistics_of_sparse_rows_ignore_the_empty_columns(monkeypatch, dtype, extension):
    """The statistics of X and of X spread over 2^24 columns (hashed-text widths) are equal.

    The power iteration runs over the sampled rows' columns only, so the width
    of X neither changes the statistics nor costs anything.
    """
    from sk_gpusgd._core.scaling import SAMPLE_ROWS, measure_scaling, sampled_csr_rows

    in_place = _compiled.sampled_second_moment if extension else None
    X = sp.random(3 * SAMPLE_ROWS, 500, density=0.02, format="csr", random_state=0, dtype=dtype)
    X.data[X.indices == 7] = 0.0  # a column no sampled row touches
    X.eliminate_zeros()
    wide = _widened(X, 2**24)
    for fit_intercept in (True, False):
        options = dict(intercept_scale=0.01, second_moment=in_place)
        assert measure_scaling(X, fit_intercept, **options) == measure_scaling(
            wide, fit_intercept, **options
        )
    narrow, compressed = sampled_csr_rows(X, 3), sampled_csr_rows(wide, 3)
    assert compressed.shape == narrow.shape == (SAMPLE_ROWS, 499)
    assert compressed.dtype == dtype and compressed.indices.dtype == np.int32
    assert (compressed != narrow).nnz == 0
    touched = np.flatnonzero(np.diff(X[::3].tocsc().indptr))
    assert (narrow != X[::3][:, touched]).nnz == 0


def test_batch_statistics_cost_the_sampled_non_zeros_not_the_width():
    """2^31 - 1 columns: a vector over them would take 16 GiB; the sample has 2000 non-zeros."""
    from sk_gpusgd._core.scaling import measure_scaling

    X, _ = _sparse_problem()
    narrow = sp.csr_matrix(X[:200])
    wide = _widened(narrow, 2**31 - 1)
    in_place = _compiled.sampled_second_moment
    assert measure_scaling(wide, True, second_moment=in_place) == measure_scaling(
        narrow, True, second_moment=in_place
    )


def test_a_fit_prepares_the_fixed_inputs_of_its_epochs_once(monkeypatch):
    """X's arrays (an int64 copy of CSR row pointers), targets and config: once a fit."""
    built = []
    original = _compiled._FixedInputs.__init__

    def counting(self, *args):
        built.append(1)
        original(self, *args)

    monkeypatch.setattr(_compiled._FixedInputs, "__init__", counting)
    X, y = _sparse_problem()
    model = GPUSGDClassifier(random_state=0, max_iter=5, tol=None).fit(X, y)
    assert model.n_iter_ == 5 and len(built) == 1
    GPUSGDClassifier(random_state=0, max_iter=5, tol=None).fit(X.toarray(), y)
    assert len(built) == 2


@pytest.mark.parametrize("margin", [5.0, 20.0, 40.0])
def test_log_loss_epoch_total_keeps_the_losses_of_well_classified_rows(margin):
    """Rows far on the right side have losses of about exp(-z); their sum keeps its digits.

    At z = 40, 1 + exp(-z) rounds to 1, so a product alone would lose them.
    """
    rng = np.random.RandomState(0)
    targets = np.where(rng.rand(3000, 1) < 0.5, 1.0, -1.0)
    X = targets * rng.uniform(margin, margin + 1.0, size=(3000, 1))
    coef, intercept = np.ones((1, 1)), np.zeros(1)
    expected = np.logaddexp(0.0, -(targets * X).ravel()).sum()
    totals, _ = _log_loss_epoch_at_rest(X, targets, coef, intercept)
    assert_allclose(totals.loss, [expected], rtol=1e-12)
