"""With batch_size=1 every step is one sample: the trajectory is scikit-learn's.

scikit-learn's SGD is the independent reference here: same data, no shuffling,
a fixed number of epochs, and the coefficients must agree to rounding error.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

CLASSIFICATION_LOSSES = ["hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron"]
REGRESSION_LOSSES = ["squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"]


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _fit_both(reference_class, our_class, X, y, **params):
    common = dict(shuffle=False, tol=None, max_iter=3, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = reference_class(**common).fit(X, y)
        ours = our_class(batch_size=1, **common).fit(X, y)
    return reference, ours


# squared_hinge with the 'optimal' rate overflows on iris in both libraries.
LOSS_AND_RATE = [
    (loss, rate)
    for loss in CLASSIFICATION_LOSSES
    for rate in ["optimal", "invscaling", "constant"]
    if (loss, rate) != ("squared_hinge", "optimal")
]


@pytest.mark.parametrize("loss, learning_rate", LOSS_AND_RATE)
@pytest.mark.parametrize("penalty", ["l2", "l1", "elasticnet", None])
def test_classifier_per_sample_steps_match_sklearn(iris, loss, learning_rate, penalty):
    X, y = iris
    reference, ours = _fit_both(
        SGDClassifier,
        GPUSGDClassifier,
        X,
        y,
        loss=loss,
        learning_rate=learning_rate,
        eta0=0.05,
        penalty=penalty,
    )
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=1e-9, atol=1e-9)
    assert ours.t_ == reference.t_


@pytest.mark.parametrize("loss", REGRESSION_LOSSES)
@pytest.mark.parametrize("learning_rate", ["invscaling", "constant"])
@pytest.mark.parametrize("average", [False, True, 50])
def test_regressor_per_sample_steps_match_sklearn(diabetes, loss, learning_rate, average):
    X, y = diabetes
    reference, ours = _fit_both(
        SGDRegressor,
        GPUSGDRegressor,
        X,
        y,
        loss=loss,
        learning_rate=learning_rate,
        eta0=0.01,
        average=average,
    )
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("learning_rate", ["pa1", "pa2"])
def test_passive_aggressive_rates_match_sklearn(iris, diabetes, learning_rate):
    X, y = iris
    reference, ours = _fit_both(
        SGDClassifier,
        GPUSGDClassifier,
        X,
        y,
        loss="hinge",
        learning_rate=learning_rate,
        eta0=0.1,
        penalty=None,
    )
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9)
    X, y = diabetes
    reference, ours = _fit_both(
        SGDRegressor,
        GPUSGDRegressor,
        X,
        y,
        loss="epsilon_insensitive",
        learning_rate=learning_rate,
        eta0=0.1,
    )
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9)


def test_class_and_sample_weights_match_sklearn(iris):
    X, y = iris
    sample_weight = np.linspace(0.5, 2.0, len(y))
    params = dict(class_weight={0: 2.0, 1: 0.5, 2: 1.0}, learning_rate="constant", eta0=0.02)
    common = dict(shuffle=False, tol=None, max_iter=2, **params)
    reference = SGDClassifier(**common).fit(X, y, sample_weight=sample_weight)
    ours = GPUSGDClassifier(batch_size=1, **common).fit(X, y, sample_weight=sample_weight)
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9)


def test_partial_fit_continues_like_sklearn(iris):
    X, y = iris
    params = dict(shuffle=False, learning_rate="invscaling", eta0=0.05)
    reference = SGDClassifier(**params)
    ours = GPUSGDClassifier(batch_size=1, **params)
    for chunk in np.array_split(np.arange(len(y)), 3):
        reference.partial_fit(X[chunk], y[chunk], classes=np.unique(y))
        ours.partial_fit(X[chunk], y[chunk], classes=np.unique(y))
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9)
    assert ours.t_ == reference.t_


@pytest.mark.parametrize("learning_rate", ["optimal", "invscaling", "constant"])
def test_squared_hinge_follows_sklearns_derivative_clip(iris, learning_rate):
    # squared_hinge's derivative explodes with a large early rate; scikit-learn clips it
    # at 1e12 per sample, and so must we to stay on its trajectory
    X, y = iris
    reference, ours = _fit_both(
        SGDClassifier,
        GPUSGDClassifier,
        X,
        y,
        loss="squared_hinge",
        learning_rate=learning_rate,
        eta0=10.0,
        alpha=1e-6,
    )
    assert np.all(np.isfinite(reference.coef_))
    np.testing.assert_allclose(
        ours.coef_, reference.coef_, rtol=1e-9, atol=1e-9 * np.abs(reference.coef_).max()
    )


@pytest.mark.parametrize(
    "params",
    [
        dict(learning_rate="constant", eta0=1.0, alpha=3.0),
        dict(learning_rate="optimal", alpha=1e5),
        dict(learning_rate="constant", eta0=0.5, alpha=10.0, penalty="elasticnet"),
    ],
    ids=["eta-alpha-above-one", "huge-alpha", "elasticnet"],
)
def test_overwhelming_l2_shrink_is_clamped_like_sklearn(iris, params):
    # scikit-learn scales the weights by max(0, 1 - eta alpha): never past zero
    X, y = iris
    reference, ours = _fit_both(SGDClassifier, GPUSGDClassifier, X, y, **params)
    assert np.abs(reference.coef_).max() < 10
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=1e-9, atol=1e-12)


def _binary_cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("problem", ["binary", "multiclass"])
@pytest.mark.parametrize(
    "loss, early_stopping",
    # (log_loss with early stopping would need penalty=None, below, whose growing
    # weights make the trajectory chaotic: rounding decides the stopping epoch)
    [("hinge", False), ("log_loss", False), ("hinge", True)],
    ids=["hinge-objective", "log_loss-objective", "hinge-validation"],
)
def test_stopping_rule_stops_at_sklearns_epoch(iris, problem, early_stopping, loss):
    """tol / n_iter_no_change at batch_size=1: the same epoch, the same weights.

    scikit-learn stops each one-vs-rest problem on its own; n_iter_ is the last
    to stop. (shuffle=False: scikit-learn shuffles each problem with its own seed.)
    """
    X, y = _binary_cancer() if problem == "binary" else iris
    # scikit-learn scores the validation rows with its stored weights before their
    # L2 scale is applied; without a penalty the scale stays 1 and the scores agree
    penalty = None if early_stopping else "l2"
    common = dict(
        penalty=penalty,
        loss=loss,
        shuffle=False,
        tol=1e-3,
        n_iter_no_change=3,
        max_iter=200,
        early_stopping=early_stopping,
        random_state=0,
        # enough regularisation that the trajectory is not chaotic: rounding
        # differences must not grow into a different stopping epoch
        alpha=1e-3,
    )
    reference = SGDClassifier(**common).fit(X, y)
    ours = GPUSGDClassifier(batch_size=1, **common).fit(X, y)
    assert reference.n_iter_ < common["max_iter"]
    assert ours.n_iter_ == reference.n_iter_
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("learning_rate", ["invscaling", "constant"])
@pytest.mark.parametrize("tol", [1e-3, 1e-1])
def test_regressor_stopping_rule_stops_at_sklearns_epoch(diabetes, learning_rate, tol):
    X, y = diabetes
    common = dict(
        shuffle=False,
        tol=tol,
        n_iter_no_change=3,
        max_iter=200,
        random_state=0,
        learning_rate=learning_rate,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = SGDRegressor(**common).fit(X, y)
        ours = GPUSGDRegressor(batch_size=1, **common).fit(X, y)
    assert ours.n_iter_ == reference.n_iter_
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("learning_rate", ["pa1", "pa2"])
def test_passive_aggressive_batch_step_sums_the_per_sample_steps(iris, learning_rate):
    """A batch takes the sum of its rows' PA steps (not their mean), from the same weights.

    From w = 0, b = 0 every hinge loss is 1, so the PA-I step of row i is
    min(C, 1 / ||x_i||^2) and the PA-II step 1 / (||x_i||^2 + 1 / (2 C)); the
    batch moves w by the sum of step_i * y_i * x_i (within the batch's
    curvature cap, which a small C keeps clear of).
    """
    X, y = iris
    binary = y > 0
    X, y = X[:16], np.where(binary[:16], 1.0, -1.0)
    y[::2] *= -1  # both classes in the batch
    C = 0.01
    model = GPUSGDClassifier(
        loss="hinge",
        learning_rate=learning_rate,
        eta0=C,
        penalty=None,
        batch_size=16,
        shuffle=False,
        fit_intercept=False,
        max_iter=1,
        tol=None,
    ).partial_fit(X, (y > 0).astype(int), classes=[0, 1])
    norms = np.sum(X * X, axis=1)
    steps = np.minimum(C, 1.0 / norms) if learning_rate == "pa1" else 1.0 / (norms + 0.5 / C)
    expected = (steps * y) @ X
    np.testing.assert_allclose(model.coef_.ravel(), expected, rtol=1e-10, atol=1e-12)
