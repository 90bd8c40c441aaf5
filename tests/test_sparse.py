"""Sparse (CSR) input: same results as the dense path, lazy updates, intercept damping.

Equality with the dense path is checked with ``fit_intercept=False``: on sparse
data the intercept's step is damped by 0.01 (as scikit-learn), which has its own
test below. Momentum on sparse data is lazy (MXNet ``lazy_update``), so it is
checked for its own semantics instead of equality.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils import get_tags

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor
from sk_gpusgd._core.types import FrozenColumns, TrainingData, TrainingState
from sk_gpusgd._engines.sparse import CsrBatches, sparse_epoch

N_SAMPLES, N_FEATURES, DENSITY = 120, 30, 0.2
ATOL = 1e-6


def _sparse_dense(seed=0, n_samples=N_SAMPLES, n_features=N_FEATURES, density=DENSITY):
    rng = np.random.RandomState(seed)
    mask = rng.rand(n_samples, n_features) < density
    return rng.randn(n_samples, n_features) * mask


@pytest.fixture(scope="module")
def X():
    return _sparse_dense()


# (estimator class, loss, target kind)
PROBLEMS = {
    "binary-hinge": (GPUSGDClassifier, "hinge", "binary"),
    "multiclass-log": (GPUSGDClassifier, "log_loss", "multiclass"),
    "regression": (GPUSGDRegressor, "squared_error", "regression"),
}


def _target(X, kind, seed=1):
    rng = np.random.RandomState(seed)
    scores = X @ rng.randn(X.shape[1], 3)
    if kind == "binary":
        return (scores[:, 0] > 0).astype(int)
    if kind == "multiclass":
        return np.argmax(scores, axis=1)
    return scores[:, 0] + 0.1 * rng.randn(X.shape[0])


def _make(problem, **params):
    cls, loss, _ = PROBLEMS[problem]
    defaults = dict(
        loss=loss,
        alpha=1e-3,
        fit_intercept=False,
        random_state=0,
        max_iter=5,
        tol=None,
        device="cpu",
        # an explicit batch size: no preconditioning, which only dense X would get
        batch_size=8,
    )
    if cls is GPUSGDRegressor:
        defaults["eta0"] = 0.01
    defaults.update(params)
    return cls(**defaults)


def _decision(est, X):
    if isinstance(est, GPUSGDClassifier):
        return est.decision_function(X)
    return est.predict(X)


def _assert_same_model(dense, sparse, X, atol=ATOL):
    assert type(sparse.coef_) is np.ndarray
    assert_allclose(sparse.coef_, dense.coef_, rtol=0, atol=atol)
    assert_allclose(sparse.intercept_, dense.intercept_, rtol=0, atol=atol)
    decision = _decision(sparse, sp.csr_matrix(X))
    assert type(decision) is np.ndarray
    assert_allclose(decision, _decision(dense, X), rtol=0, atol=10 * atol)
    if isinstance(sparse, GPUSGDClassifier):
        assert_array_equal(sparse.predict(sp.csr_matrix(X)), dense.predict(X))


@pytest.mark.parametrize("penalty", ["l2", "l1", None])
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_sparse_fit_equals_dense(X, problem, penalty):
    y = _target(X, PROBLEMS[problem][2])
    dense = _make(problem, penalty=penalty).fit(X, y)
    sparse = _make(problem, penalty=penalty).fit(sp.csr_matrix(X), y)
    _assert_same_model(dense, sparse, X)


@pytest.mark.parametrize(
    "options",
    [
        {"learning_rate": "constant", "eta0": 0.05},
        {"learning_rate": "invscaling", "eta0": 0.05},
        {"weight_decay": 0.01},
        {"weight_decay": 0.01, "decoupled_weight_decay": True},
        {"clip_norm": 0.5},
        {"clip_value": 0.1},
        {"batch_size": 1, "max_iter": 2},
        {"batch_size": 1000},
    ],
    ids=lambda options: "-".join(f"{k}={v}" for k, v in options.items()),
)
@pytest.mark.parametrize("penalty", ["l2", "l1", None])
def test_sparse_fit_equals_dense_optimizer_options(X, penalty, options):
    if penalty == "l1" and options.get("weight_decay"):
        # any weight decay is a scale, and scale and L1 truncation commute only
        # approximately (as elasticnet): see test_sparse_l1_with_a_scale_is_close_to_dense
        penalty = "l2"
    y = _target(X, "binary")
    dense = _make("binary-hinge", penalty=penalty, **options).fit(X, y)
    sparse = _make("binary-hinge", penalty=penalty, **options).fit(sp.csr_matrix(X), y)
    _assert_same_model(dense, sparse, X)


@pytest.mark.parametrize(
    "fmt", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array", "coo_array"]
)
@pytest.mark.parametrize("problem", ["multiclass-log", "regression"])
def test_sparse_partial_fit_equals_dense(X, problem, fmt):
    to_sparse = getattr(sp, fmt)
    y = _target(X, PROBLEMS[problem][2])
    dense = _make(problem, penalty="l1")
    sparse = _make(problem, penalty="l1")
    extra = {"classes": np.unique(y)} if problem != "regression" else {}
    for _ in range(3):
        dense.partial_fit(X, y, **extra)
        sparse.partial_fit(to_sparse(X), y, **extra)
    _assert_same_model(dense, sparse, X)
    # every accepted format predicts like CSR
    assert_allclose(_decision(sparse, to_sparse(X)), _decision(dense, X), rtol=0, atol=1e-5)
    if problem != "regression":
        assert_array_equal(sparse.predict(to_sparse(X)), dense.predict(X))


@pytest.mark.parametrize("average", [True, 50])
@pytest.mark.parametrize("penalty", ["l2", "l1", None])
def test_sparse_average_equals_dense(X, penalty, average):
    y = _target(X, "binary")
    dense = _make("binary-hinge", penalty=penalty, average=average).fit(X, y)
    sparse = _make("binary-hinge", penalty=penalty, average=average).fit(sp.csr_matrix(X), y)
    assert sparse._state.n_averaged > 0
    _assert_same_model(dense, sparse, X)


@pytest.mark.parametrize(
    "params",
    [
        {"penalty": "elasticnet", "l1_ratio": 0.5},
        {"penalty": "l1", "weight_decay": 0.01},
        {"penalty": "l1", "weight_decay": 0.01, "decoupled_weight_decay": True},
    ],
    ids=["elasticnet", "l1-coupled-decay", "l1-decoupled-decay"],
)
def test_sparse_l1_with_a_scale_is_close_to_dense(X, params):
    """Lazy weight scale and L1 truncation commute only up to O(eta^2 alpha^2)."""
    y = _target(X, "binary")
    dense = _make("binary-hinge", **params).fit(X, y)
    sparse = _make("binary-hinge", **params).fit(sp.csr_matrix(X), y)
    assert_allclose(sparse.coef_, dense.coef_, rtol=0, atol=1e-3)


@pytest.mark.parametrize("penalty", ["l2", "l1", None])
def test_sparse_float32_close_to_dense_float32(X, penalty):
    X32 = X.astype(np.float32)
    y = _target(X, "binary")
    dense = _make("binary-hinge", penalty=penalty, average=True).fit(X32, y)
    sparse = _make("binary-hinge", penalty=penalty, average=True).fit(sp.csr_matrix(X32), y)
    assert sparse.coef_.dtype == np.float32
    scale = np.abs(dense.coef_).max()
    assert_allclose(sparse.coef_, dense.coef_, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("problem", ["binary-hinge", "regression"])
def test_sparse_intercept_step_is_damped(X, problem):
    """One full-batch step from zero: the sparse intercept moves 0.01x the dense one."""
    eta0 = 0.1
    y = _target(X, PROBLEMS[problem][2])
    params = dict(
        penalty=None,
        fit_intercept=True,
        learning_rate="constant",
        eta0=eta0,
        batch_size=X.shape[0],
        shuffle=False,
        # the expected step below is the rate times the batch-mean gradient
        scale_learning_rate=False,
    )
    dense = _make(problem, **params).partial_fit(X, y, **_classes(problem, y))
    sparse = _make(problem, **params).partial_fit(sp.csr_matrix(X), y, **_classes(problem, y))
    # at w = 0, b = 0 the loss derivative is -t (hinge margin 0 <= 1; squared error 0 - y)
    t = np.where(y == 1, 1.0, -1.0) if problem == "binary-hinge" else y
    expected_intercept = eta0 * t.mean()
    expected_coef = eta0 * (X.T @ t) / X.shape[0]
    assert expected_intercept != 0
    assert_allclose(dense.intercept_, [expected_intercept], rtol=1e-12)
    assert_allclose(sparse.intercept_, [0.01 * expected_intercept], rtol=1e-12)
    # the coefficients' step is not damped
    assert_allclose(dense.coef_.ravel(), expected_coef, rtol=1e-12, atol=1e-15)
    assert_allclose(sparse.coef_.ravel(), expected_coef, rtol=1e-12, atol=1e-15)


def _classes(problem, y):
    return {} if problem == "regression" else {"classes": np.unique(y)}


# ----------------------------------------------------------------- momentum

BATCH = 16
ABSENT, FIRST_ONLY = 0, 1
MOMENTUM_OPTIONS = [
    {"momentum": 0.9},
    {"momentum": 0.9, "nesterov": True},
    {"momentum": 0.9, "dampening": 0.5},
    {"momentum": 0.9, "momentum_form": "velocity"},
]
MOMENTUM_IDS = ["buffer", "nesterov", "dampening", "velocity"]


@pytest.fixture(scope="module")
def lazy_data(X):
    """Feature ABSENT is zero in every row; FIRST_ONLY is non-zero only in the first batch."""
    X = X.copy()
    X[:, ABSENT] = 0.0
    X[:, FIRST_ONLY] = 0.0
    X[:BATCH, FIRST_ONLY] = 1.0 + np.arange(BATCH) / BATCH
    return X, _target(X, "binary")


@pytest.mark.parametrize("options", MOMENTUM_OPTIONS, ids=MOMENTUM_IDS)
@pytest.mark.parametrize("penalty", ["l2", "l1", None])
def test_sparse_momentum_absent_feature_stays_zero(lazy_data, penalty, options):
    X, y = lazy_data
    est = _make("binary-hinge", penalty=penalty, shuffle=True, batch_size=BATCH, **options)
    est.fit(sp.csr_matrix(X), y)
    assert est.coef_[0, ABSENT] == 0.0
    assert np.all(est._state.coef_buffer[ABSENT] == 0.0)
    # the other features did train
    assert np.count_nonzero(est.coef_) > N_FEATURES // 2


@pytest.mark.parametrize("options", MOMENTUM_OPTIONS, ids=MOMENTUM_IDS)
@pytest.mark.parametrize("penalty", ["l2", None])
def test_sparse_momentum_feature_stops_after_its_last_batch(lazy_data, penalty, options):
    """Lazy momentum: FIRST_ONLY moves in the first batch, then neither it nor its buffer."""
    X, y = lazy_data
    params = dict(penalty=penalty, shuffle=False, batch_size=BATCH, **options)
    one_batch = _make("binary-hinge", **params)
    one_batch.partial_fit(sp.csr_matrix(X[:BATCH]), y[:BATCH], classes=[0, 1])
    full = _make("binary-hinge", **params)
    full.partial_fit(sp.csr_matrix(X), y, classes=[0, 1])
    moved = one_batch.coef_[0, FIRST_ONLY]
    assert moved != 0.0
    assert full.coef_[0, FIRST_ONLY] == moved
    assert_array_equal(
        full._state.coef_buffer[FIRST_ONLY], one_batch._state.coef_buffer[FIRST_ONLY]
    )
    # dense momentum keeps moving every row every step: a different trajectory
    dense = _make("binary-hinge", **params).partial_fit(X, y, classes=[0, 1])
    assert dense.coef_[0, FIRST_ONLY] != moved


# ------------------------------------------------------- cost per batch: O(nnz)


def test_batches_span_only_the_batch_columns():
    n_features = 1_000_000
    rng = np.random.RandomState(0)
    columns_used = rng.choice(n_features, size=40, replace=False)
    rows, cols = rng.randint(0, 30, 200), rng.choice(columns_used, 200)
    X = sp.csr_matrix((rng.randn(200), (rows, cols)), shape=(30, n_features))
    X.sum_duplicates()
    weights = rng.randn(n_features, 3)
    # an epoch permutes the rows once; a batch is then a contiguous range of them
    order = np.array([3, 17, 0, 29, 3, 8, *range(10, 18)])
    batches = CsrBatches(np, X[order])
    for selected, rows in ((order[:6], slice(0, 6)), (np.arange(10, 18), slice(6, 14))):
        X_batch = X[selected]
        columns, compact = batches.batch(rows)
        distinct = np.unique(X_batch.indices)
        assert_array_equal(np.sort(columns), distinct)
        assert compact.shape == (selected.size, distinct.size)
        assert compact.nnz == X_batch.nnz
        assert_allclose(compact @ weights[columns], X_batch @ weights, rtol=1e-12)
        assert_allclose(compact.toarray(), X_batch[:, columns].toarray())


WIDE_FEATURES, WIDE_BATCH = 200_000, 8
LAZY_OPTIONS = [
    {"penalty": None},
    {"penalty": "l2"},
    {"penalty": "l1"},
    {"penalty": "l2", "momentum": 0.9},
    {"penalty": "l1", "momentum": 0.9, "nesterov": True},
    {"penalty": None, "weight_decay": 0.01, "decoupled_weight_decay": True},
    {"penalty": "l2", "clip_norm": 0.1},
]
LAZY_IDS = ["none", "l2", "l1", "l2-momentum", "l1-nesterov", "decoupled-decay", "clip-norm"]


@pytest.fixture(scope="module")
def wide_problem():
    """12 informative features scattered among WIDE_FEATURES, and the same rows on 12 only."""
    narrow = sp.csr_matrix(_sparse_dense(n_samples=64, n_features=12, density=0.4))
    y = _target(narrow.toarray(), "regression")
    used = np.sort(np.random.RandomState(3).choice(WIDE_FEATURES, 12, replace=False))
    wide = sp.csr_matrix((narrow.data, used[narrow.indices], narrow.indptr), (64, WIDE_FEATURES))
    return wide, narrow, used, y


def _wide_run(wide_problem, options, coef_fill):
    wide, _, used, y = wide_problem
    est = _make(
        "regression",
        shuffle=False,
        max_iter=1,
        batch_size=WIDE_BATCH,
        scale_learning_rate=False,
        **options,
    )
    config = est._engine_config(None, sparse=True)
    state = TrainingState(
        coef=np.full((WIDE_FEATURES, 1), coef_fill), intercept=np.zeros(1, dtype=float)
    )
    state.coef[used] = 0.0
    if est.momentum:
        state.coef_buffer = np.full((WIDE_FEATURES, 1), coef_fill)
        state.coef_buffer[used] = 0.0
    with np.errstate(invalid="ignore"):
        sparse_epoch(
            np,
            state,
            TrainingData(X=wide, targets=y[:, None]),
            config,
            None,
            FrozenColumns(np, state, [True]),
        )
    return state


@pytest.mark.parametrize("options", LAZY_OPTIONS, ids=LAZY_IDS)
def test_sparse_step_arrays_span_only_the_batch_columns(wide_problem, options, monkeypatch):
    """Every per-step update works on (distinct columns of the batch, n_outputs) arrays.

    The update helpers are wrapped (not replaced) to record the shapes they see:
    a step's cost follows the batch's non-zeros, never n_features. Only the
    once-per-epoch flush of pending L1 spans every row.
    """
    import sk_gpusgd._engines.sparse as sparse_module

    shapes = []

    def recording(function):
        def wrapper(xp, weights, *args, **kwargs):
            if weights.ndim == 2:  # the coefficients, not the intercept
                shapes.append((function.__name__, weights.shape[0]))
            return function(xp, weights, *args, **kwargs)

        return wrapper

    for name in ("momentum_step", "l1_truncate"):
        monkeypatch.setattr(sparse_module, name, recording(getattr(sparse_module, name)))
    _wide_run(wide_problem, options, 0.0)

    wide = wide_problem[0]
    per_step = [
        ("momentum_step", _distinct_columns(wide, start)) for start in range(0, 64, WIDE_BATCH)
    ]
    if options["penalty"] == "l1":
        per_step = [
            (name, size)
            for _, size in per_step
            for name in ("l1_truncate", "momentum_step", "l1_truncate")
        ]
        per_step.append(("l1_truncate", WIDE_FEATURES))  # end of epoch, once
    assert shapes == per_step
    assert all(size <= 12 for name, size in shapes if name == "momentum_step")


def _distinct_columns(X, start):
    return np.unique(X[start : start + WIDE_BATCH].indices).size


@pytest.mark.parametrize("options", LAZY_OPTIONS, ids=LAZY_IDS)
def test_sparse_result_does_not_depend_on_absent_features(wide_problem, options):
    """Weights of the features absent from the data start as NaN and must not spread.

    A step that read them into anything shared (a decision, a gradient norm) would
    make the other weights NaN. The features present come out equal to a fit on
    those 12 features alone.
    """
    _, narrow, used, y = wide_problem
    state = _wide_run(wide_problem, options, np.nan)
    assert np.all(np.isfinite(state.coef[used]))
    assert np.isnan(np.delete(state.coef, used, axis=0)).all()
    # the same lazy trajectory as on the 12 features alone (equal to dense without momentum)
    reference = _make(
        "regression",
        shuffle=False,
        max_iter=1,
        batch_size=WIDE_BATCH,
        scale_learning_rate=False,
        **options,
    )
    reference.fit(narrow, y)
    assert_allclose(state.coef[used, 0], reference.coef_, rtol=0, atol=ATOL)


@pytest.mark.parametrize("estimator", [GPUSGDClassifier(), GPUSGDRegressor()])
def test_tags_declare_sparse_support(estimator):
    assert get_tags(estimator).input_tags.sparse


@pytest.mark.parametrize("estimator_class", [GPUSGDClassifier, GPUSGDRegressor])
def test_a_wide_sparse_fit_allocates_the_weights_and_coef_only(estimator_class):
    """2^22 hashed columns, 20 non-zeros a row: at most two arrays of n_features values.

    The weights and ``coef_`` at the peak: the check for a user's later edit of
    ``coef_`` keeps no copy of it. (The batch statistics, which run before the
    weights exist, never hold a vector of n_features values either: see
    test_compiled.py's 2^31-column test.)
    """
    import tracemalloc

    rng = np.random.RandomState(0)
    n_features = 2**22
    columns = np.sort(rng.randint(0, n_features, size=(2000, 20)), axis=1)
    X = sp.csr_matrix(
        (rng.normal(size=40000), columns.ravel().astype(np.int32), np.arange(2001) * 20),
        shape=(2000, n_features),
    )
    y = rng.randint(0, 2, 2000)
    model = estimator_class(max_iter=2, tol=None, random_state=0)
    tracemalloc.start()
    try:
        model.fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    weights_bytes = 8 * n_features
    assert peak < 2.25 * weights_bytes, peak / weights_bytes
