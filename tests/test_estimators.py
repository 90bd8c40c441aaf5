"""What a scikit-learn user relies on: meta-estimators, persistence, streaming, attributes."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def stream():
    X, y = make_classification(
        n_samples=40_000, n_features=20, n_informative=10, n_classes=3, random_state=0
    )
    return train_test_split(StandardScaler().fit_transform(X), y, random_state=0)


def test_every_sklearn_parameter_with_the_same_default():
    for ours, theirs in [(GPUSGDClassifier, SGDClassifier), (GPUSGDRegressor, SGDRegressor)]:
        expected = theirs().get_params()
        actual = ours().get_params()
        for name, value in expected.items():
            assert name in actual, f"{ours.__name__} lacks scikit-learn's {name!r}"
            assert actual[name] == value, f"{ours.__name__}.{name} default differs"


def test_pipeline_with_scaler():
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), GPUSGDClassifier(random_state=0)).fit(X, y)
    assert model.score(X, y) > 0.85


def test_grid_search_over_alpha_loss_and_batch_size(iris):
    X, y = iris
    search = GridSearchCV(
        GPUSGDClassifier(random_state=0),
        {"alpha": [1e-4, 1e-2], "loss": ["hinge", "log_loss"], "batch_size": [8, 64]},
        cv=3,
        n_jobs=2,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 8
    assert search.best_score_ > 0.85
    assert set(search.best_params_) == {"alpha", "loss", "batch_size"}


def test_clone_keeps_parameters_and_drops_fit():
    model = GPUSGDClassifier(alpha=0.01, momentum=0.9, batch_size=8).fit(
        *load_iris(return_X_y=True)
    )
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "coef_")


@pytest.mark.parametrize("estimator", [GPUSGDClassifier, GPUSGDRegressor])
def test_pickle_round_trip_predicts_the_same(iris, estimator):
    X, y = iris
    model = estimator(random_state=0, momentum=0.5).fit(X, y)
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    # the optimizer state travels too: partial_fit continues identically
    loaded.partial_fit(X, y)
    model.partial_fit(X, y)
    np.testing.assert_array_equal(loaded.coef_, model.coef_)


def test_dataframe_input_keeps_feature_names(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    model = GPUSGDClassifier(random_state=0).fit(frame, y)
    np.testing.assert_array_equal(model.feature_names_in_, frame.columns)
    assert model.predict(frame).shape == (len(y),)
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame.rename(columns={"sepal_l": "other"}))


def test_partial_fit_stream_reaches_fit_accuracy(stream):
    """One pass over 20 chunks, each seen once, against many epochs of fit.

    Averaged SGD is the single-pass tool: the last iterate of plain hinge SGD
    after one pass is noisy in scikit-learn too.
    """
    X_train, X_test, y_train, y_test = stream
    classes = np.unique(y_train)
    streamed = GPUSGDClassifier(random_state=0, average=True)
    chunks = zip(np.array_split(X_train, 20), np.array_split(y_train, 20), strict=True)
    for X_chunk, y_chunk in chunks:
        streamed.partial_fit(X_chunk, y_chunk, classes=classes)
    fitted = GPUSGDClassifier(random_state=0).fit(X_train, y_train)
    assert streamed.score(X_test, y_test) >= fitted.score(X_test, y_test) - 0.02
    assert len(streamed.loss_curve_) == 20


def test_warm_start_continues_from_previous_solution(iris):
    X, y = iris
    params = dict(learning_rate="constant", eta0=0.01, shuffle=False, tol=None, batch_size=10)
    once = GPUSGDClassifier(max_iter=6, **params).fit(X, y)
    twice = GPUSGDClassifier(max_iter=3, warm_start=True, **params).fit(X, y)
    twice.fit(X, y)
    # a constant rate without momentum: 3 + 3 warm-started epochs are 6 epochs
    np.testing.assert_allclose(twice.coef_, once.coef_, rtol=1e-12)
    cold = GPUSGDClassifier(max_iter=3, **params).fit(X, y)
    cold.fit(X, y)
    assert not np.allclose(cold.coef_, once.coef_)


def test_coef_init_and_intercept_init_are_used(iris):
    X, y = iris
    start = GPUSGDClassifier(random_state=0).fit(X, y)
    params = dict(learning_rate="constant", eta0=1e-12, max_iter=1, tol=None)
    resumed = GPUSGDClassifier(**params).fit(
        X, y, coef_init=start.coef_, intercept_init=start.intercept_
    )
    np.testing.assert_allclose(resumed.coef_, start.coef_, atol=1e-9)
    with pytest.raises(ValueError, match="coef_init"):
        GPUSGDClassifier().fit(X, y, coef_init=np.zeros((2, 4)))


def test_multiclass_is_one_vs_rest_trained_together(iris):
    """Each column of the joint model is the binary model of 'class k vs rest'."""
    X, y = iris
    params = dict(learning_rate="constant", eta0=0.05, shuffle=False, tol=None, max_iter=5)
    joint = GPUSGDClassifier(**params).fit(X, y)
    assert joint.coef_.shape == (3, 4)
    for k in range(3):
        binary = GPUSGDClassifier(**params).fit(X, (y == k).astype(int))
        np.testing.assert_allclose(joint.coef_[k], binary.coef_[0], rtol=1e-12)
        np.testing.assert_allclose(joint.intercept_[k], binary.intercept_[0], rtol=1e-12)


def test_class_weight_equals_per_sample_weight_in_binary_problems(iris):
    X, y = iris
    y = (y == 0).astype(int)
    params = dict(learning_rate="constant", eta0=0.05, shuffle=False, tol=None, max_iter=5)
    by_class = GPUSGDClassifier(class_weight={0: 3.0, 1: 0.5}, **params).fit(X, y)
    by_sample = GPUSGDClassifier(**params).fit(X, y, sample_weight=np.where(y == 0, 3.0, 0.5))
    np.testing.assert_allclose(by_class.coef_, by_sample.coef_, rtol=1e-12)


def test_balanced_class_weight_is_sklearns_formula(iris):
    X, y = iris
    keep = np.r_[0:50, 50:70, 100:150]
    X, y = X[keep], y[keep]
    params = dict(learning_rate="constant", eta0=0.05, shuffle=False, tol=None, max_iter=3)
    counts = np.bincount(y)
    weights = {k: len(y) / (3 * counts[k]) for k in range(3)}
    balanced = GPUSGDClassifier(class_weight="balanced", **params).fit(X, y)
    explicit = GPUSGDClassifier(class_weight=weights, **params).fit(X, y)
    np.testing.assert_allclose(balanced.coef_, explicit.coef_, rtol=1e-12)


def test_probabilities(iris):
    X, y = iris
    assert not hasattr(GPUSGDClassifier(loss="hinge"), "predict_proba")
    binary = GPUSGDClassifier(loss="log_loss", random_state=0).fit(X, y == 0)
    proba = binary.predict_proba(X)
    expected = 1.0 / (1.0 + np.exp(-binary.decision_function(X)))
    np.testing.assert_allclose(proba[:, 1], expected, rtol=1e-12)
    np.testing.assert_allclose(np.exp(binary.predict_log_proba(X)), proba, rtol=1e-12)
    for loss in ["modified_huber", "log_loss"]:
        model = GPUSGDClassifier(loss=loss, random_state=0).fit(X, y)
        proba = model.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert np.all((proba >= 0) & (proba <= 1))
    # log_loss probabilities are monotone in the decision: same ranking as predict
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X))


def test_string_labels(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = GPUSGDClassifier(random_state=0).fit(X, names)
    np.testing.assert_array_equal(model.classes_, ["setosa", "versicolor", "virginica"])
    assert set(model.predict(X)) <= set(names)


def test_fitted_attributes(iris):
    X, y = iris
    model = GPUSGDClassifier(random_state=0, batch_size=10).fit(X, y)
    assert len(model.loss_curve_) == model.n_iter_
    # scikit-learn's t_: samples seen plus one, whatever the batch size
    assert model.t_ == model.n_iter_ * 150 + 1
    assert model.device_ == "cpu"
    assert model.n_features_in_ == 4
    assert model.intercept_.shape == (3,)
    regressor = GPUSGDRegressor(random_state=0).fit(*make_regression(n_features=3, random_state=0))
    assert regressor.coef_.shape == (3,) and regressor.intercept_.shape == (1,)


def test_convergence_warning_when_max_iter_is_reached(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        GPUSGDClassifier(max_iter=1).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        GPUSGDClassifier(max_iter=1, tol=None).fit(X, y)


def test_tol_stops_early(iris):
    X, y = iris
    model = GPUSGDClassifier(random_state=0, max_iter=1000).fit(X, y)
    assert model.n_iter_ < 1000


def test_early_stopping_uses_a_validation_split(stream):
    X_train, _, y_train, _ = stream
    model = GPUSGDClassifier(early_stopping=True, random_state=0, max_iter=200).fit(
        X_train, y_train
    )
    assert model.n_iter_ < 200
    regressor = GPUSGDRegressor(early_stopping=True, random_state=0, max_iter=200)
    X, y = make_regression(n_samples=2000, n_features=5, noise=1.0, random_state=0)
    assert regressor.fit(X, y).n_iter_ < 200


def test_adaptive_rate_keeps_training_after_plateaus(iris):
    X, y = iris
    adaptive = GPUSGDClassifier(learning_rate="adaptive", eta0=0.5, random_state=0).fit(X, y)
    constant = GPUSGDClassifier(learning_rate="constant", eta0=0.5, random_state=0).fit(X, y)
    # each plateau divides the rate by 5 instead of stopping, until it falls below 1e-6
    assert adaptive.n_iter_ > constant.n_iter_
    assert max(adaptive._state.adaptive_eta) < 1e-6


def test_n_jobs_is_accepted():
    X, y = load_iris(return_X_y=True)
    assert GPUSGDClassifier(n_jobs=4).fit(X, y).get_params()["n_jobs"] == 4


@pytest.mark.parametrize("estimator_class", ["classifier", "regressor"])
def test_partial_fit_and_warm_start_continue_from_a_user_set_coef(iris, estimator_class):
    # scikit-learn continues from coef_ / intercept_: an edit made between calls counts
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    from sk_gpusgd import GPUSGDRegressor

    X, y = iris
    ours_class, their_class = (
        (GPUSGDClassifier, SGDClassifier)
        if estimator_class == "classifier"
        else (GPUSGDRegressor, SGDRegressor)
    )
    params = dict(batch_size=1, shuffle=False, random_state=0)
    their_params = dict(shuffle=False, random_state=0)
    ours = ours_class(**params).partial_fit(
        X, y, **({"classes": [0, 1, 2]} if estimator_class == "classifier" else {})
    )
    theirs = their_class(**their_params).partial_fit(
        X, y, **({"classes": [0, 1, 2]} if estimator_class == "classifier" else {})
    )
    ours.coef_ = ours.coef_ * 0.5
    theirs.coef_ = theirs.coef_ * 0.5
    ours.intercept_[...] = 1.0
    theirs.intercept_[...] = 1.0
    ours.partial_fit(X, y)
    theirs.partial_fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-9, atol=1e-12)
    # warm_start, too
    common = dict(warm_start=True, max_iter=2, tol=None)
    ours.set_params(**common)
    theirs.set_params(**common)
    ours.coef_ = np.zeros_like(ours.coef_)
    theirs.coef_ = np.zeros_like(theirs.coef_)
    ours.fit(X, y)
    theirs.fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("estimator_class", [GPUSGDClassifier, GPUSGDRegressor])
@pytest.mark.parametrize("sparse", [False, True])
def test_an_in_place_edit_of_coef_counts_as_an_assignment(iris, estimator_class, sparse):
    """partial_fit notices coef_ changed in place (dense X: preconditioned weights)."""
    import scipy.sparse as sp

    X, y = iris
    X = sp.csr_matrix(X) if sparse else X
    extra = {"classes": np.unique(y)} if estimator_class is GPUSGDClassifier else {}
    models = [estimator_class(random_state=0).partial_fit(X, y, **extra) for _ in range(3)]
    edited, assigned, untouched = models
    edited.coef_ *= 0.5
    assigned.coef_ = assigned.coef_ * 0.5
    for model in models:
        model.partial_fit(X, y)
    np.testing.assert_array_equal(edited.coef_, assigned.coef_)
    np.testing.assert_array_equal(edited.intercept_, assigned.intercept_)
    assert not np.array_equal(edited.coef_, untouched.coef_)


@pytest.mark.parametrize("continue_with", ["partial_fit", "warm_start"])
def test_dtype_never_drifts(iris, continue_with):
    X, y = iris
    X32 = X.astype(np.float32)
    model = GPUSGDClassifier(momentum=0.9, random_state=0, max_iter=3, tol=None)
    if continue_with == "partial_fit":
        model.partial_fit(X32, y, classes=[0, 1, 2])
        model.partial_fit(X.astype(np.float64), y)
        expected = np.float32
    else:
        model.set_params(warm_start=True).fit(X, y)
        model.fit(X32, y)
        expected = np.float32
    assert model.coef_.dtype == expected and model.intercept_.dtype == expected
    assert model._state.coef_buffer.dtype == expected
