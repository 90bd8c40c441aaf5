"""scikit-learn's contract: parameters checked on every call, accepted values train or
raise a clear error, scikit-learn 1.9's deprecations, ``sparsify`` / ``densify``, and
``score`` inherited from scikit-learn's mixins."""

import pickle
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import config_context
from sklearn.base import ClassifierMixin, RegressorMixin, clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.metrics import accuracy_score

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor
from sk_gpusgd._core.losses import make_loss
from sk_gpusgd._params import divergence_message


@pytest.fixture(scope="module")
def classification():
    X, y = make_classification(n_samples=120, n_features=8, n_informative=4, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=120, n_features=8, noise=1.0, random_state=0)
    return X / X.std(axis=0), y / y.std()


def _data(estimator_class, classification, regression):
    return classification if estimator_class is GPUSGDClassifier else regression


ESTIMATORS = [GPUSGDClassifier, GPUSGDRegressor]
QUICK = dict(max_iter=3, tol=None, random_state=0)

# values scikit-learn's constraints reject, set after a first fit
BAD_VALUES = [
    ("batch_size", 0),
    ("batch_size", -1),
    ("tol", "1e-3"),
    ("clip_norm", "1"),
    ("learning_rate", "foo"),
    ("penalty", "l3"),
    ("momentum", 1.5),
    ("alpha", -1.0),
    ("eta0", 0.0),
    ("max_iter", 0),
    ("validation_fraction", 1.0),
    ("average", -1),
    ("device", "tpu"),
]


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("name, value", BAD_VALUES)
def test_partial_fit_after_set_params_validates_again(
    estimator_class, name, value, classification, regression
):
    X, y = _data(estimator_class, classification, regression)
    model = estimator_class(**QUICK).partial_fit(X, y, **_classes(estimator_class, y))
    coef = np.array(model.coef_, copy=True)
    model.set_params(**{name: value})
    with pytest.raises(ValueError, match=f"'{name}' parameter of {estimator_class.__name__}"):
        model.partial_fit(X, y)
    np.testing.assert_array_equal(model.coef_, coef)  # a failed call changes nothing


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_fit_validates_even_where_scikit_learn_skips(estimator_class, classification, regression):
    X, y = _data(estimator_class, classification, regression)
    with config_context(skip_parameter_validation=True):
        with pytest.raises(ValueError, match="'batch_size' parameter"):
            estimator_class(batch_size=0).fit(X, y)


def _classes(estimator_class, y):
    return {"classes": np.unique(y)} if estimator_class is GPUSGDClassifier else {}


def test_large_power_t_trains_as_scikit_learn(classification):
    # t**1000 leaves the float range after the first steps: the rate is 0, as in C
    X, y = classification
    params = dict(
        learning_rate="invscaling", power_t=1000, eta0=0.1, max_iter=2, tol=None, shuffle=False
    )
    ours = GPUSGDClassifier(batch_size=1, **params).fit(X, y)
    theirs = SGDClassifier(**params).fit(X, y)
    assert np.all(np.isfinite(ours.coef_))
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-10)


def test_huber_with_huge_epsilon_is_squared_error(regression):
    # a clip at 1e300 never acts: huber's steps are squared error's
    X, y = regression
    huber = GPUSGDRegressor(loss="huber", epsilon=1e300, **QUICK).fit(X, y)
    squared = GPUSGDRegressor(loss="squared_error", **QUICK).fit(X, y)
    np.testing.assert_array_equal(huber.coef_, squared.coef_)
    np.testing.assert_allclose(huber.loss_curve_, squared.loss_curve_, rtol=1e-12)


@pytest.mark.parametrize(
    "estimator_class, params, named",
    [
        (GPUSGDClassifier, dict(learning_rate="invscaling", power_t=-1000), "power_t=-1000"),
        (GPUSGDRegressor, dict(learning_rate="invscaling", power_t=-1000), "power_t=-1000"),
        # coupled decay passes through momentum, where no clamp can stop it
        (GPUSGDClassifier, dict(weight_decay=1e300, momentum=0.9), "weight_decay=1e\\+300"),
        (GPUSGDRegressor, dict(weight_decay=1e300, momentum=0.9), "weight_decay=1e\\+300"),
    ],
)
def test_divergence_names_its_parameter(estimator_class, params, named, classification, regression):
    X, y = _data(estimator_class, classification, regression)
    model = estimator_class(**QUICK, **params)
    with pytest.raises(ValueError, match=named):
        model.fit(X, y)
    assert not hasattr(model, "coef_")


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_huge_alpha_trains_or_names_alpha(estimator_class, classification, regression):
    X, y = _data(estimator_class, classification, regression)
    for learning_rate in ("optimal", "constant"):
        model = estimator_class(alpha=1e22, learning_rate=learning_rate, **QUICK)
        try:
            model.fit(X, y)
        except ValueError as error:
            assert "alpha=1e+22" in str(error)
        else:
            assert np.all(np.isfinite(model.coef_))


@pytest.mark.parametrize("weight", [np.nan, np.inf, -np.inf, "1"])
def test_class_weight_must_be_a_finite_number(weight, classification):
    X, y = classification
    with pytest.raises(ValueError, match="class_weight"):
        GPUSGDClassifier(class_weight={0: weight, 1: 1.0}, **QUICK).fit(X, y)


@pytest.mark.parametrize(
    "ours, theirs, data",
    [(GPUSGDClassifier, SGDClassifier, "classification"), (GPUSGDRegressor, SGDRegressor, "r")],
)
def test_negative_power_t_warns_as_scikit_learn(ours, theirs, data, classification, regression):
    X, y = classification if data == "classification" else regression
    with pytest.warns(FutureWarning) as reference:
        theirs(power_t=-0.5, max_iter=3, tol=None).fit(X, y)
    expected = [str(w.message) for w in reference if w.category is FutureWarning]
    with pytest.warns(FutureWarning) as record:
        ours(power_t=-0.5, **QUICK).fit(X, y)
    assert [str(w.message) for w in record if w.category is FutureWarning] == expected
    assert "power_t" in expected[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        ours(power_t=0.0, **QUICK).fit(X, y)  # zero is no longer negative
        # scikit-learn warns in fit only, not in partial_fit
        ours(power_t=-0.5, **QUICK).partial_fit(X, y, **_classes(ours, y))


# ------------------------------------------------------------- sparsify
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_sparsify_keeps_predictions_and_densify_restores(
    estimator_class, classification, regression
):
    X, y = _data(estimator_class, classification, regression)
    model = estimator_class(penalty="l1", alpha=0.05, **QUICK).fit(X, y)
    dense = np.array(model.coef_, copy=True)
    predicted = model.predict(X)
    model.sparsify()
    assert sp.issparse(model.coef_) and model.coef_.format == "csr"
    assert model.coef_.shape == (dense.reshape(-1, X.shape[1]).shape)
    assert model.coef_.nnz == np.count_nonzero(dense)
    np.testing.assert_array_equal(model.predict(X), predicted)
    np.testing.assert_allclose(model.predict(sp.csr_matrix(X)), predicted, rtol=1e-12)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), predicted)
    assert model.densify() is model
    assert isinstance(model.coef_, np.ndarray)
    np.testing.assert_array_equal(model.coef_, dense)


def test_sparse_coef_has_scikit_learns_type(classification):
    X, y = classification
    ours = GPUSGDClassifier(**QUICK).fit(X, y).sparsify()
    theirs = SGDClassifier(max_iter=3, tol=None).fit(X, y).sparsify()
    assert type(ours.coef_) is type(theirs.coef_)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_fitting_after_sparsify_continues_densely(estimator_class, classification, regression):
    X, y = _data(estimator_class, classification, regression)
    extra = _classes(estimator_class, y)
    plain = estimator_class(**QUICK).partial_fit(X, y, **extra)
    sparse = clone(plain).partial_fit(X, y, **extra).sparsify()
    plain.partial_fit(X, y)
    sparse.partial_fit(X, y)
    assert isinstance(sparse.coef_, np.ndarray)
    np.testing.assert_array_equal(sparse.coef_, plain.coef_)
    warm = estimator_class(warm_start=True, **QUICK)
    reference = clone(warm).fit(X, y).fit(X, y)
    warm.fit(X, y).sparsify().fit(X, y)
    assert isinstance(warm.coef_, np.ndarray)
    np.testing.assert_array_equal(warm.coef_, reference.coef_)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_sparsify_needs_a_fitted_model(estimator_class):
    with pytest.raises(NotFittedError, match="must be fitted before sparsifying"):
        estimator_class().sparsify()
    with pytest.raises(NotFittedError, match="must be fitted before densifying"):
        estimator_class().densify()


def test_sparsify_refuses_namespaces_without_csr(classification):
    torch = pytest.importorskip("torch")
    X, y = classification
    model = GPUSGDClassifier(**QUICK).fit(torch.asarray(X), torch.asarray(y))
    with pytest.raises(TypeError, match="NumPy or CuPy"):
        model.sparsify()
    assert isinstance(model.coef_, torch.Tensor)


# ---------------------------------------------------------------- score
def test_score_is_scikit_learns_own():
    # dask-ml (and other wrappers) pick a chunk-wise scorer when score is the mixin's
    assert GPUSGDClassifier.score is ClassifierMixin.score
    assert GPUSGDRegressor.score is RegressorMixin.score


def test_score_with_weights_is_weighted_accuracy(classification):
    X, y = classification
    model = GPUSGDClassifier(**QUICK).fit(X, y)
    weights = np.linspace(0.0, 2.0, len(y))
    correct = model.predict(X) == y
    assert model.score(X, y, sample_weight=weights) == pytest.approx(
        np.sum(weights * correct) / np.sum(weights)
    )


def test_dask_ml_incremental_scores_chunk_by_chunk(classification, monkeypatch):
    dask_array = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    import dask

    X, y = classification
    dX, dy = dask_array.from_array(X, chunks=40), dask_array.from_array(y, chunks=40)
    with dask.config.set(scheduler="synchronous"):
        wrapped = wrappers.Incremental(GPUSGDClassifier(**QUICK)).fit(dX, dy, classes=[0, 1])
        seen = []
        predict = GPUSGDClassifier.predict

        def recording_predict(self, X):
            seen.append(type(X))
            return predict(self, X)

        monkeypatch.setattr(GPUSGDClassifier, "predict", recording_predict)
        score = wrapped.score(dX, dy)
    assert seen and all(kind is np.ndarray for kind in seen)  # chunks, never a Dask array
    expected = accuracy_score(y, predict(wrapped.estimator_, X))
    assert score == pytest.approx(expected)


# ------------------------------------------- inputs the fuzz test found
@pytest.mark.parametrize(
    "make_weights, named",
    [
        (lambda n: np.full(n, 1e300), "sample_weight holds values up to 1e\\+300"),
        (lambda n: None, "X holds values up to 1e\\+200"),
    ],
)
def test_divergence_from_unscaled_inputs_names_them(make_weights, named, regression):
    X, y = regression
    X = X.copy()
    weights = make_weights(len(y))
    if weights is None:
        X[0, 0] = 1e200
    with pytest.raises(ValueError, match=named):
        GPUSGDRegressor(learning_rate="constant", **QUICK).fit(X, y, sample_weight=weights)


@pytest.mark.parametrize(
    "params",
    [dict(weight_decay=1e300), dict(weight_decay=1e300, decoupled_weight_decay=True)],
    ids=["coupled", "decoupled"],
)
def test_overwhelming_decay_without_momentum_trains_to_almost_nothing(params, regression):
    # the shrink max(0, 1 - lr * decay) is clamped, as scikit-learn clamps its L2 shrink:
    # every step starts from zero, so the weights are one step's worth, finite and small
    X, y = regression
    model = GPUSGDRegressor(**params, **QUICK).fit(X, y)
    plain = GPUSGDRegressor(**QUICK).fit(X, y)
    assert np.all(np.isfinite(model.coef_))
    assert np.abs(model.coef_).max() < 0.05 * np.abs(plain.coef_).max()


def test_optimal_rate_divergence_speaks_of_alpha_not_eta0():
    # the loss derivative is clipped at 1e12, as scikit-learn's, so a fit rarely gets
    # here; the message for 'optimal' must still point at alpha, which sets its rate
    model = GPUSGDRegressor(learning_rate="optimal", alpha=1e-8, penalty=None)
    message = divergence_message(model, make_loss("squared_error", 0.1), {})
    assert re.search("learning_rate='optimal'.*alpha=1e-08", message)
    assert "eta0" not in message


def test_structured_and_incomparable_labels_are_input_errors(classification):
    X, y = classification
    with pytest.raises(ValueError, match="structured dtype"):
        GPUSGDClassifier(**QUICK).fit(X, np.zeros(len(y), dtype=[("a", float)]))
    model = GPUSGDClassifier(**QUICK).partial_fit(X, y, classes=[0, 1])
    dates = (np.arange(len(y)) % 2).astype("datetime64[D]")
    with pytest.raises(ValueError, match="cannot be compared with classes_"):
        model.partial_fit(X, dates)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_float32_fit_rejects_weights_past_float32(estimator_class, classification, regression):
    X, y = _data(estimator_class, classification, regression)
    X32 = X.astype(np.float32)
    with pytest.raises(ValueError, match="sample_weight holds values up to 1e\\+300"):
        estimator_class(**QUICK).fit(X32, y, sample_weight=np.full(len(y), 1e300))
    # float64 X computes in float64, where 1e300 is a weight like any other
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            estimator_class(**QUICK).fit(X, y, sample_weight=np.full(len(y), 1e300))
        except ValueError as error:
            assert "sample_weight" in str(error)


def test_float32_regressor_rejects_targets_past_float32(regression):
    X, y = regression
    y = y.copy()
    y[0] = 1e300
    with pytest.raises(ValueError, match="y holds values up to 1e\\+300"):
        GPUSGDRegressor(**QUICK).fit(X.astype(np.float32), y)


def test_decision_overflowing_to_nan_is_an_input_error(regression):
    X, y = regression
    model = GPUSGDRegressor(learning_rate="constant", **QUICK).fit(X, 100 * y)
    first, second = np.argsort(-np.abs(model.coef_))[:2]
    assert min(abs(model.coef_[first]), abs(model.coef_[second])) > 1
    # two finite features whose products are +inf and -inf: the decision is inf - inf
    row = np.zeros((1, X.shape[1]))
    row[0, first] = np.sign(model.coef_[first]) * np.finfo(float).max
    row[0, second] = -np.sign(model.coef_[second]) * np.finfo(float).max
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning leaks from the overflow
        # a dense product may fuse and end at inf; the sparse one adds inf and -inf
        assert np.all(np.isinf(model.predict(row)))
        with pytest.raises(ValueError, match="overflowed to NaN"):
            model.predict(sp.csr_matrix(row))


def test_cuda_without_a_gpu_is_a_value_error(classification):
    from sk_gpusgd._backend import cuda_available

    if cuda_available():
        pytest.skip("this machine has a GPU, so device='cuda' trains")
    X, y = classification
    with pytest.raises(ValueError, match="device='cuda'"):
        GPUSGDClassifier(device="cuda", **QUICK).fit(X, y)


# scikit-learn 1.9's messages, as its own tests match them
SKLEARN_OVERFLOW = (
    r"Floating-point under-/overflow occurred at epoch #.*"
    " Scaling input data with StandardScaler or MinMaxScaler"
    " might help."
)
SKLEARN_BALANCED_PARTIAL_FIT = (
    r"class_weight 'balanced' is not supported for "
    r"partial_fit\. In order to use 'balanced' weights, "
    r"use compute_class_weight\('balanced', classes=classes, y=y\). "
    r"In place of y you can use a large enough sample "
    r"of the full training set target to properly "
    r"estimate the class frequency distributions\. "
    r"Pass the resulting weights as the class_weight "
    r"parameter\."
)


@pytest.mark.parametrize("estimator_class", [SGDClassifier, GPUSGDClassifier])
def test_overflow_starts_with_sklearns_words(estimator_class):
    """Hugely unscaled features overflow the weights: scikit-learn's message, then ours."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 10))
    X[:, :2] *= 1e300
    y = (rng.normal(size=100) > 0).astype(np.int32)
    model = estimator_class(alpha=0.1, loss="squared_hinge", max_iter=500)
    with pytest.raises(ValueError, match=SKLEARN_OVERFLOW) as raised:
        model.fit(X, y)
    if estimator_class is GPUSGDClassifier:
        message = str(raised.value)
        assert message.startswith("Floating-point under-/overflow occurred at epoch #1. ")
        assert "X holds values up to" in message  # ours: the cause


def test_overflow_message_names_the_epoch_it_happened_in():
    """A rate that grows each step overflows in a later epoch; the message names it."""
    X, y = make_regression(n_samples=50, n_features=3, random_state=0)
    # t**100 leaves the float range once t passes about 1200: 50 rows an epoch, a later epoch
    model = GPUSGDRegressor(
        learning_rate="invscaling", eta0=1e-300, power_t=-100.0, penalty=None, tol=None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # negative power_t
        with pytest.raises(ValueError, match=SKLEARN_OVERFLOW) as raised:
            model.fit(X / X.std(axis=0), y / y.std())
    epoch = int(re.search("at epoch #([0-9]+)", str(raised.value)).group(1))
    assert epoch > 20 and raised.value.epoch == epoch
    assert "power_t=-100.0 makes the 'invscaling' rate" in str(raised.value)


@pytest.mark.parametrize("estimator_class", [SGDClassifier, GPUSGDClassifier])
def test_balanced_partial_fit_error_is_sklearns(estimator_class, classification):
    X, y = classification
    with pytest.raises(ValueError, match=SKLEARN_BALANCED_PARTIAL_FIT):
        estimator_class(class_weight="balanced").partial_fit(X, y, classes=np.unique(y))


@pytest.mark.parametrize(
    "ours, theirs", [(GPUSGDClassifier, SGDClassifier), (GPUSGDRegressor, SGDRegressor)]
)
def test_loss_functions_lists_sklearns_losses(ours, theirs):
    """``loss_functions``: scikit-learn's names, with epsilon's default where it has one."""
    assert list(ours.loss_functions) == list(theirs.loss_functions)
    for name, (loss_class, *arguments) in ours.loss_functions.items():
        # the same default arguments (our squared hinge has no threshold argument)
        assert arguments == list(theirs.loss_functions[name][1 : 1 + len(arguments)]), name
        assert type(make_loss(name, 0.1)) is loss_class
