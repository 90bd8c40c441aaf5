"""The automatic choices (batch size, preconditioner, averaging) against independent references.

Each case is a default fit where an automatic choice used to change the
result: the model class without an intercept, one-row batches and streams,
the L2 clamp of large penalties, and the convergence of the automatic average.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier

from sk_gpusgd import GPUSGDClassifier


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _cases():
    """``benchmarks/defaults_cases.py``: the named cases' data, shared with the suite."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import defaults_cases

    return defaults_cases


# ---------------------------------------------------------- the model class


def _constant_column_problem():
    """``[x, 3.0]``, ``y = x > 1``: the bias can only ride on the constant column."""
    return _cases().constant_column()


def _one_hot_problem():
    """Two one-hot blocks (each sums to 1) whose labels need a bias."""
    return _cases().one_hot()


@pytest.mark.parametrize("problem", [_constant_column_problem, _one_hot_problem])
def test_without_intercept_the_default_keeps_the_constant_direction(problem):
    X, y = problem()
    reference = LogisticRegression(fit_intercept=False).fit(X, y).score(X, y)
    model = GPUSGDClassifier(loss="log_loss", fit_intercept=False, random_state=0).fit(X, y)
    assert model.preconditioner_ == "standardize"
    assert model.score(X, y) >= reference - 0.01
    assert np.all(model.intercept_ == 0)


def test_without_intercept_the_constant_column_gets_a_weight():
    X, y = _constant_column_problem()
    reference = LogisticRegression(fit_intercept=False).fit(X, y).coef_
    coef = GPUSGDClassifier(loss="log_loss", fit_intercept=False, random_state=0).fit(X, y).coef_
    # the bias of the no-intercept model lives on the constant column, with the sign
    # and about the size of the exact solver's
    assert coef[0, 1] < 0
    ratio = coef[0, 1] / coef[0, 0]
    assert abs(ratio - reference[0, 1] / reference[0, 0]) < 0.1


def _stream_problem(n):
    rng = np.random.RandomState(0)
    X = rng.randn(n, 2)
    y = (X @ [1.0, -2.0] > 0).astype(int)
    return X, y


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_a_stream_of_single_rows_trains_as_scikit_learns(fit_intercept):
    X, y = _stream_problem(1000)
    ours = GPUSGDClassifier(fit_intercept=fit_intercept, random_state=0)
    theirs = SGDClassifier(fit_intercept=fit_intercept, random_state=0)
    for i in range(len(y)):
        ours.partial_fit(X[i : i + 1], y[i : i + 1], classes=[0, 1])
        theirs.partial_fit(X[i : i + 1], y[i : i + 1], classes=[0, 1])
    assert np.all(np.isfinite(ours.coef_))
    X_test, y_test = _stream_problem(3000)
    assert ours.score(X_test, y_test) >= theirs.score(X_test, y_test) - 0.01


def test_a_one_row_first_chunk_then_larger_chunks():
    X, y = _stream_problem(1000)
    model = GPUSGDClassifier(fit_intercept=False, random_state=0)
    model.partial_fit(X[:1], y[:1], classes=[0, 1])
    for start in range(1, 1000, 100):
        model.partial_fit(X[start : start + 100], y[start : start + 100])
    assert np.all(np.isfinite(model.coef_))
    assert model.score(X, y) >= 0.95


@pytest.mark.parametrize("preconditioner", ["auto", "standardize"])
def test_one_row_first_call_without_intercept(preconditioner):
    # the one-row standardisation has no spread: no division by it
    model = GPUSGDClassifier(fit_intercept=False, preconditioner=preconditioner, random_state=0)
    model.partial_fit([[2.0]], [1], classes=[0, 1])
    assert np.all(np.isfinite(model.coef_)) and model.coef_[0, 0] > 0


# ------------------------------------------------------------ the L2 clamp


def _iris_with_a_last_row(kind):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    weights = np.ones(len(y))
    if kind == "weightless":
        weights[-1] = 0.0
    else:  # an empty last row
        X = np.vstack([X, np.zeros((1, X.shape[1]))])
        y = np.append(y, 2)
        weights = np.append(weights, 1.0)
    return X, y, weights


@pytest.mark.parametrize("last_row", ["weightless", "empty"])
@pytest.mark.parametrize("preconditioner", [None, "standardize"])
@pytest.mark.parametrize("batch_size", [8, 32])
@pytest.mark.parametrize("storage", ["dense", "csr"])
def test_a_huge_penalty_clamps_every_batch_to_zero(last_row, preconditioner, batch_size, storage):
    """A clamped shrink leaves only the last row's update, as scikit-learn's per-sample loop.

    Where that row moves nothing (no weight, or no values), the weights are exactly zero.
    """
    import scipy.sparse as sp

    if storage == "csr" and preconditioner is not None:
        pytest.skip("sparse X is not standardised")
    if last_row == "empty" and preconditioner is not None:
        pytest.skip("a centred empty row has values")
    X, y, weights = _iris_with_a_last_row(last_row)
    params = dict(
        alpha=1e5, learning_rate="constant", eta0=0.1, shuffle=False, tol=None, max_iter=6
    )
    theirs = SGDClassifier(**params).fit(X, y, sample_weight=weights)
    assert np.all(theirs.coef_ == 0)
    data = sp.csr_matrix(X) if storage == "csr" else X
    ours = GPUSGDClassifier(batch_size=batch_size, preconditioner=preconditioner, **params)
    ours.fit(data, y, sample_weight=weights)
    assert np.all(ours.coef_ == 0)


def test_a_huge_penalty_keeps_no_memory():
    # every step's weights are one row's update: at most eta * |dloss| * |x| per weight
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    params = dict(alpha=1e5, learning_rate="constant", eta0=0.1, tol=None, max_iter=6)
    model = GPUSGDClassifier(batch_size=16, random_state=0, **params).fit(X, y)
    assert np.all(np.abs(model.coef_) <= 0.1 * np.abs(X).max(axis=0) + 1e-12)


@pytest.mark.parametrize(
    "params",
    [
        dict(alpha=20.0, learning_rate="constant", eta0=0.1, batch_size=8),
        dict(alpha=2.0, learning_rate="constant", eta0=0.1, preconditioner="standardize"),
        dict(alpha=20.0, learning_rate="constant", eta0=0.1, batch_size=8, sparse=True),
        dict(
            penalty="elasticnet",
            alpha=5.0,
            eta0=0.1,
            learning_rate="constant",
            batch_size=8,
            sparse=True,
        ),
    ],
    ids=["dense", "preconditioned", "sparse", "sparse-l1"],
)
def test_clamped_steps_compiled_as_in_numpy(params, monkeypatch):
    import scipy.sparse as sp
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    # features of different widths: the per-feature shrink clamps for some only
    X = X * [0.2, 1.0, 3.0, 10.0]
    params = dict(params)
    if params.pop("sparse", False):
        X = sp.csr_matrix(X)
    fits = []
    for compiled in ("1", "0"):
        monkeypatch.setenv("SK_GPUSGD_COMPILED", compiled)
        fits.append(GPUSGDClassifier(random_state=0, max_iter=5, tol=None, **params).fit(X, y))
    np.testing.assert_allclose(fits[0].coef_, fits[1].coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fits[0].intercept_, fits[1].intercept_, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------ the automatic average


@pytest.mark.parametrize("max_iter, bound", [(100, 1.2e-2), (300, 5e-3)])
def test_the_automatic_average_converges_to_the_optimum(max_iter, bound):
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    alpha = 0.01
    # mean log-loss + alpha/2 ||w||^2  <=>  C * sum log-loss + 1/2 ||w||^2, C = 1/(alpha n)
    exact = LogisticRegression(C=1.0 / (alpha * len(y)), tol=1e-12, max_iter=10_000).fit(X, y)
    optimum = np.r_[exact.coef_.ravel(), exact.intercept_]
    model = GPUSGDClassifier(
        loss="log_loss", alpha=alpha, max_iter=max_iter, tol=None, random_state=0
    ).fit(X, y)
    assert model._state.n_averaged > 0
    fitted = np.r_[model.coef_.ravel(), model.intercept_]
    assert np.linalg.norm(fitted - optimum) / np.linalg.norm(optimum) < bound


def test_an_explicit_average_stays_scikit_learns():
    # average=True keeps the uniform average of every iterate (scikit-learn's ASGD)
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    params = dict(average=True, batch_size=1, max_iter=3, tol=None, shuffle=False)
    ours = GPUSGDClassifier(**params).fit(X, y)
    theirs = SGDClassifier(
        **{k: v for k, v in params.items() if k != "batch_size"}, random_state=0
    ).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("storage", ["dense", "csr"])
def test_the_weighted_average_compiled_as_in_numpy(storage, monkeypatch):
    import scipy.sparse as sp
    from sklearn.datasets import load_breast_cancer

    import sk_gpusgd._plan

    X, y = load_breast_cancer(return_X_y=True)
    X = X / X.std(axis=0)
    if storage == "csr":
        X = sp.csr_matrix(X)
    # the same automatic batch for both engines, so that both average automatically
    monkeypatch.setattr(sk_gpusgd._plan, "auto_batch_size", lambda *args, **kwargs: 16)
    monkeypatch.setattr(sk_gpusgd._plan, "averages_automatically", lambda *args: True)
    fits = []
    for compiled in ("1", "0"):
        monkeypatch.setenv("SK_GPUSGD_COMPILED", compiled)
        model = GPUSGDClassifier(loss="log_loss", random_state=0, max_iter=5, tol=None).fit(X, y)
        assert model._state.n_averaged > 0
        fits.append(model)
    # the sparse engines fold their weight scale at different steps: rounding apart
    np.testing.assert_allclose(fits[0].coef_, fits[1].coef_, rtol=1e-7, atol=1e-12)


# ------------------------------------------------------------ robust regression losses


@pytest.mark.parametrize(
    "loss", ["huber", "epsilon_insensitive", "squared_epsilon_insensitive", "squared_error"]
)
def test_default_regression_losses_score_as_scikit_learns(loss):
    """A bounded derivative moves the iterate at a bounded speed: its average lags behind."""
    from sklearn.datasets import make_regression
    from sklearn.linear_model import SGDRegressor

    from sk_gpusgd import GPUSGDRegressor

    X, y = make_regression(2000, 10, noise=5, random_state=0)
    theirs = SGDRegressor(loss=loss, random_state=0).fit(X, y).score(X, y)
    ours = GPUSGDRegressor(loss=loss, random_state=0).fit(X, y).score(X, y)
    assert ours >= theirs - 0.01


# ------------------------------------------------------------ storage


CLASSIFIER_LOSSES = ["hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron"]
REGRESSOR_LOSSES = [
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
]


def _storage_problem(density, regression, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(400, 30) * (rng.rand(400, 30) < density) * rng.uniform(0.5, 5.0, 30)
    score = X @ rng.randn(30)
    return X, (score if regression else (score > 0).astype(int))


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("density", [0.2, 1.0], ids=["sparse-values", "dense-values"])
@pytest.mark.parametrize("loss", CLASSIFIER_LOSSES + REGRESSOR_LOSSES)
def test_the_model_is_a_function_of_the_values_not_the_container(loss, density, fit_intercept):
    import scipy.sparse as sp

    from sk_gpusgd import GPUSGDRegressor

    regression = loss in REGRESSOR_LOSSES
    X, y = _storage_problem(density, regression)
    cls = GPUSGDRegressor if regression else GPUSGDClassifier
    params = dict(loss=loss, random_state=0, fit_intercept=fit_intercept)
    dense = cls(**params).fit(X, y)
    csr = cls(**params).fit(sp.csr_matrix(X), y)
    assert dense.batch_size_ == csr.batch_size_
    assert dense.preconditioner_ == csr.preconditioner_
    assert dense.n_iter_ == csr.n_iter_
    np.testing.assert_allclose(csr.coef_, dense.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(csr.intercept_, dense.intercept_, rtol=1e-9, atol=1e-12)


def test_a_stream_keeps_the_storage_of_its_first_chunk():
    import scipy.sparse as sp

    X, y = _storage_problem(0.2, regression=False)
    dense, mixed = GPUSGDClassifier(random_state=0), GPUSGDClassifier(random_state=0)
    for start in range(0, 400, 100):
        chunk = slice(start, start + 100)
        dense.partial_fit(X[chunk], y[chunk], classes=[0, 1])
        part = sp.csr_matrix(X[chunk]) if start % 200 else X[chunk]
        mixed.partial_fit(part, y[chunk], classes=[0, 1])
    np.testing.assert_allclose(mixed.coef_, dense.coef_, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------ small sparse text


def _topic_texts():
    return _cases().topic_texts(n_docs=600)


def test_sparse_batches_step_as_their_rows_per_sample_steps():
    from sk_gpusgd._core.scaling import BatchScaling

    # nearly orthogonal rows (gain 15.9 of 16): the floor is gain * eta, not eta
    scaling = BatchScaling(1.0, 0.001)
    assert scaling.step_rate(np, 100.0, 16, 0.25) == 100.0
    assert scaling.step_rate(np, 100.0, 16, 0.25, gain_floor=True) == pytest.approx(
        100.0 * scaling.gain(16)
    )
    # never above the linear scaling rule
    assert scaling.step_rate(np, 0.01, 16, 0.25, gain_floor=True) == pytest.approx(0.16)


def test_probabilities_on_small_sparse_text():
    """The gallery's semi-supervised newsgroups set-up: tiny alpha, few labelled rows."""
    from sklearn.model_selection import train_test_split

    X, y = _topic_texts()
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    labelled = np.random.RandomState(0).rand(len(y_train)) < 0.2
    params = dict(alpha=1e-5, loss="log_loss", random_state=0)
    ours = GPUSGDClassifier(**params).fit(X_train[labelled], y_train[labelled])
    theirs = SGDClassifier(**params).fit(X_train[labelled], y_train[labelled])
    top = [m.predict_proba(X_train[~labelled]).max(axis=1).mean() for m in (ours, theirs)]
    # within 10 % of scikit-learn's confidence (the goal, 2 %, is not met yet)
    assert top[0] >= 0.9 * top[1]


@pytest.mark.parametrize("loss", ["log_loss", "hinge"])
def test_sparse_floor_compiled_as_in_numpy(loss, monkeypatch):
    X, y = _topic_texts()
    monkeypatch.setattr("sk_gpusgd._plan.auto_batch_size", lambda *args, **kwargs: 12, raising=True)
    fits = []
    for compiled in ("1", "0"):
        monkeypatch.setenv("SK_GPUSGD_COMPILED", compiled)
        model = GPUSGDClassifier(loss=loss, alpha=1e-5, random_state=0, max_iter=5, tol=None)
        fits.append(model.fit(X, y))
    np.testing.assert_allclose(fits[0].coef_, fits[1].coef_, rtol=1e-7, atol=1e-10)
