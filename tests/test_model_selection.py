"""The batched searches: each candidate's model equals its own fit; scores equal scikit-learn's."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import model_selection as sk_model_selection
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor, _search
from sk_gpusgd._search import fit_group, group_candidates
from sk_gpusgd.model_selection import GridSearchCV, RandomizedSearchCV

RTOL = 1e-6

GRID = {"alpha": [1e-5, 1e-3, 1e-1], "eta0": [0.01, 0.1]}
MIXED = [
    {"alpha": 1e-4, "penalty": "elasticnet", "l1_ratio": 0.3},
    {"alpha": 1e-3, "penalty": "l1", "tol": None, "max_iter": 7},
    {"alpha": 1e-3, "power_t": 0.3, "learning_rate": "invscaling", "eta0": 0.05},
    {"alpha": 1e-3, "power_t": 0.6, "learning_rate": "invscaling", "eta0": 0.05},
    {"alpha": 1e-3, "weight_decay": 1e-3, "max_iter": 3},
]


@pytest.fixture(autouse=True)
def every_group_batched(monkeypatch):
    """Train every group together, also where the plan trains compiled fits one by one."""
    monkeypatch.setattr(_search, "COMPILED_FIRST", False)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.RandomState(0)
    X = rng.randn(600, 12)
    # noisy labels: a problem whose trajectory does not amplify rounding (on separable
    # data with a tiny alpha the weights grow without bound and two fits that differ
    # by one rounding of a matrix product drift apart, batched or not)
    score = X @ rng.randn(12) + rng.randn(600)
    return {
        "X": X,
        "binary": (score > 0).astype(int),
        "multiclass": np.digitize(score, [-1.0, 1.0]),
        "regression": score + 0.1 * rng.randn(600),
    }


def _sparse(X):
    return sp.csr_matrix(np.where(np.abs(X) > 0.8, X, 0.0))


def _close(batched, single):
    scale = max(float(np.max(np.abs(single))), 1e-12)
    return float(np.max(np.abs(np.asarray(batched) - np.asarray(single)))) / scale


def _candidates(classifier: bool):
    candidates = [dict(alpha=a, eta0=e) for a in GRID["alpha"] for e in GRID["eta0"]] + MIXED
    if classifier:
        candidates += [
            {"alpha": 1e-3, "class_weight": "balanced"},
            {"alpha": 1e-3, "class_weight": {0: 2.0}, "max_iter": 4},
        ]
    return candidates


CASES = [
    ("binary", GPUSGDClassifier(random_state=0)),
    ("multiclass", GPUSGDClassifier(random_state=0)),
    ("multiclass", GPUSGDClassifier(random_state=0, multi_class="multinomial", loss="log_loss")),
    ("regression", GPUSGDRegressor(random_state=0)),
    ("binary", GPUSGDClassifier(random_state=0, learning_rate="adaptive", eta0=0.1)),
]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("target, estimator", CASES, ids=lambda case: str(case)[:40])
def test_each_candidate_equals_its_own_fit(problem, target, estimator, sparse):
    X = _sparse(problem["X"]) if sparse else problem["X"]
    y = problem[target]
    candidates = _candidates(isinstance(estimator, GPUSGDClassifier))
    if estimator.learning_rate == "adaptive":
        candidates = [c for c in candidates if "learning_rate" not in c]
    if estimator.multi_class == "multinomial" if target != "regression" else False:
        # softmax with alpha=1e-5 and the 'optimal' rate amplifies one rounding of the
        # matrix product to 1e-2 within ten epochs, for two single fits alike
        candidates = [c for c in candidates if c["alpha"] >= 1e-4]
    groups = group_candidates(estimator, candidates, X)
    assert max(len(group) for group in groups) >= 9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for group in groups:
            chosen = [candidates[i] for i in group]
            models = fit_group(estimator, chosen, X, y)
            assert models is not None
            for parameters, model in zip(chosen, models, strict=False):
                single = clone(estimator).set_params(**parameters).fit(X, y)
                assert model.n_iter_ == single.n_iter_, parameters
                assert _close(model.coef_, single.coef_) < RTOL, parameters
                assert _close(model.intercept_, single.intercept_) < RTOL, parameters
                assert model.t_ == single.t_
                assert model.batch_size_ == single.batch_size_
                np.testing.assert_allclose(model.loss_curve_, single.loss_curve_, rtol=RTOL)
                method = "predict" if target == "regression" else "decision_function"
                np.testing.assert_allclose(
                    getattr(model, method)(X[:50]),
                    getattr(single, method)(X[:50]),
                    rtol=RTOL,
                    atol=1e-9,
                )


def test_compiled_fits_train_one_by_one(problem, monkeypatch):
    monkeypatch.setattr(_search, "COMPILED_FIRST", True)
    X, y = problem["X"], problem["multiclass"]
    candidates = [{"alpha": 1e-3}, {"alpha": 1e-2}]
    # the compiled epoch covers one-vs-rest on NumPy: one by one
    assert len(group_candidates(GPUSGDClassifier(), candidates, X)) == 2
    # softmax runs the array-API epoch anyway: together
    softmax = GPUSGDClassifier(multi_class="multinomial", loss="log_loss")
    assert len(group_candidates(softmax, candidates, X)) == 1
    search = GridSearchCV(GPUSGDClassifier(random_state=0), {"alpha": [1e-3, 1e-2]}, cv=2)
    search.fit(X, y)
    assert search.search_groups_ == []


def test_candidates_that_change_the_rows_train_apart(problem):
    estimator = GPUSGDClassifier(random_state=0)
    candidates = [{"alpha": 1e-3}, {"alpha": 1e-2}, {"batch_size": 32}, {"random_state": 1}]
    groups = group_candidates(estimator, candidates, problem["X"])
    assert sorted(map(sorted, groups)) == [[0, 1], [2], [3]]


def _compare(ours, theirs, keys=("mean_test_score", "std_test_score", "rank_test_score")):
    assert set(ours.cv_results_) == set(theirs.cv_results_)
    for key in keys:
        np.testing.assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], rtol=1e-9)
    for key in ours.cv_results_:
        if key.startswith("split") and "test" in key:
            np.testing.assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], rtol=1e-9)
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_index_ == theirs.best_index_
    best, their_best = ours.best_estimator_, theirs.best_estimator_
    if hasattr(best, "steps"):
        best, their_best = best[-1], their_best[-1]
    np.testing.assert_allclose(best.coef_, their_best.coef_)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize(
    "target, estimator",
    [
        ("binary", GPUSGDClassifier(random_state=0)),
        ("multiclass", GPUSGDClassifier(random_state=0, multi_class="multinomial", loss="log_loss")),  # noqa: E501
        ("regression", GPUSGDRegressor(random_state=0)),
    ],
    ids=["binary", "multinomial", "regressor"],
)  # fmt: skip
def test_cv_results_equal_scikit_learns(problem, target, estimator, sparse):
    X = _sparse(problem["X"]) if sparse else problem["X"]
    y = problem[target]
    grid = dict(GRID, tol=[1e-3, None], max_iter=[30])
    if target == "multiclass":
        grid["alpha"] = [1e-4, 1e-3, 1e-1]
    cv = KFold(3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = GridSearchCV(estimator, grid, cv=cv, return_train_score=True).fit(X, y)
        theirs = sk_model_selection.GridSearchCV(
            estimator, grid, cv=cv, return_train_score=True
        ).fit(X, y)
    assert ours.search_groups_ and all(len(g["candidates"]) == 12 for g in ours.search_groups_)
    _compare(ours, theirs, ("mean_test_score", "mean_train_score", "rank_test_score"))


def test_pipeline_and_multimetric(problem):
    X, y = problem["X"] * 5.0 + 3.0, problem["multiclass"]
    pipeline = make_pipeline(StandardScaler(), GPUSGDClassifier(random_state=0))
    grid = {
        "gpusgdclassifier__alpha": [1e-4, 1e-2],
        "gpusgdclassifier__class_weight": [None, "balanced"],
        "standardscaler__with_mean": [True, False],
    }
    scoring = {"accuracy": "accuracy", "f1": "f1_macro"}
    cv = StratifiedKFold(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = GridSearchCV(pipeline, grid, cv=cv, scoring=scoring, refit="f1").fit(X, y)
        theirs = sk_model_selection.GridSearchCV(
            pipeline, grid, cv=cv, scoring=scoring, refit="f1"
        ).fit(X, y)
    # one group per scaler setting and fold
    assert len(ours.search_groups_) == 6
    assert ours.multimetric_
    _compare(ours, theirs, ("mean_test_accuracy", "mean_test_f1", "rank_test_f1"))
    assert ours.best_score_ == theirs.best_score_


def test_randomized_search_groups_and_error_score(problem):
    X, y = problem["X"], problem["binary"]
    distributions = {"alpha": [1e-5, 1e-4, 1e-3, 1e-2], "eta0": [0.01, 0.1, 1.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = RandomizedSearchCV(
            GPUSGDClassifier(random_state=0), distributions, n_iter=6, cv=3, random_state=0
        ).fit(X, y)
        theirs = sk_model_selection.RandomizedSearchCV(
            GPUSGDClassifier(random_state=0), distributions, n_iter=6, cv=3, random_state=0
        ).fit(X, y)
    _compare(ours, theirs)
    # an invalid candidate fails in its own fit, as in scikit-learn
    grid = {"alpha": [0.0, 1e-3, 1e-2], "learning_rate": ["optimal"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(GPUSGDClassifier(random_state=0), grid, cv=3, error_score=np.nan)
        search.fit(X, y)
    assert np.isnan(search.cv_results_["mean_test_score"][0])
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"][1:]))


def test_sample_weight_and_other_estimators(problem):
    X, y = problem["X"], problem["binary"]
    weights = np.random.RandomState(1).uniform(0.5, 2.0, size=len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = GridSearchCV(GPUSGDClassifier(random_state=0), GRID, cv=3).fit(
            X, y, sample_weight=weights
        )
        theirs = sk_model_selection.GridSearchCV(GPUSGDClassifier(random_state=0), GRID, cv=3).fit(
            X, y, sample_weight=weights
        )
    assert ours.search_groups_
    _compare(ours, theirs)
    from sklearn.linear_model import Ridge

    search = GridSearchCV(Ridge(), {"alpha": [0.1, 1.0]}, cv=3).fit(X, y)
    assert not hasattr(search, "search_groups_") and search.best_params_
