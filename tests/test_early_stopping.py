"""Early stopping and the ``tol`` rule, checked against splits and stopping rules computed here.

The held-out rows are the ones scikit-learn's own splitters choose
(``StratifiedShuffleSplit`` for the classifier, ``ShuffleSplit`` for the
regressor, seeded by ``random_state``). A fit with early stopping must train on
exactly the other rows, score on exactly these, and stop where the rule
``score < best + tol`` for ``n_iter_no_change`` epochs in a row says.
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

SEED = 3
FRACTION = 0.3


def _classification():
    X, y = make_classification(
        n_samples=240, n_features=6, n_informative=4, flip_y=0.05, random_state=0
    )
    return X, y


def _regression():
    X, y = make_regression(n_samples=240, n_features=6, noise=5.0, random_state=0)
    return X / X.std(axis=0), y / y.std()


def _split(estimator_class, y):
    splitter = StratifiedShuffleSplit if estimator_class is GPUSGDClassifier else ShuffleSplit
    cv = splitter(test_size=FRACTION, random_state=SEED)
    train, validation = next(cv.split(np.zeros((len(y), 1)), y))
    # the training rows keep their order, as scikit-learn skips validation rows in place
    return np.sort(train), np.sort(validation)


CASES = [
    (GPUSGDClassifier, _classification, accuracy_score, "predict"),
    (GPUSGDRegressor, _regression, r2_score, "predict"),
]
COMMON = dict(
    random_state=SEED,
    learning_rate="constant",
    eta0=0.01,
    batch_size=4,
    validation_fraction=FRACTION,
    max_iter=60,
)


def _stop_epoch(scores, tol, n_iter_no_change):
    """The epoch (1-based) at which ``score < best + tol`` held n_iter_no_change times in a row."""
    best, misses = -np.inf, 0
    for epoch, score in enumerate(scores, start=1):
        misses = misses + 1 if score < best + tol else 0
        best = max(best, score)
        if misses >= n_iter_no_change:
            return epoch
    return None


@pytest.mark.parametrize("estimator_class, make_data, metric, method", CASES)
def test_model_is_trained_on_the_training_rows_only(estimator_class, make_data, metric, method):
    X, y = make_data()
    train, validation = _split(estimator_class, y)
    # validation rows whose features would pull the model elsewhere if trained on
    # (X, unlike y, does not move the stratified split)
    X = X.copy()
    X[validation] *= -3.0
    stopped = estimator_class(early_stopping=True, tol=1e-3, **COMMON).fit(X, y)
    assert 1 < stopped.n_iter_ < COMMON["max_iter"]
    params = dict(COMMON, max_iter=stopped.n_iter_)
    reference = estimator_class(tol=None, **params).fit(X[train], y[train])
    np.testing.assert_allclose(stopped.coef_, reference.coef_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(stopped.intercept_, reference.intercept_, rtol=1e-12, atol=1e-14)
    everything = estimator_class(tol=None, **params).fit(X, y)
    assert not np.allclose(everything.coef_, reference.coef_, rtol=1e-3)


@pytest.mark.parametrize("estimator_class, make_data, metric, method", CASES)
@pytest.mark.parametrize("tol", [0.0, 0.002, 0.02])
def test_stops_where_the_validation_scores_say(estimator_class, make_data, metric, method, tol):
    X, y = make_data()
    train, validation = _split(estimator_class, y)
    n_iter_no_change = 3
    # the validation score after each epoch, from models trained on the training rows only
    scores = []
    for n_epochs in range(1, COMMON["max_iter"] + 1):
        params = dict(COMMON, max_iter=n_epochs)
        model = estimator_class(tol=None, **params).fit(X[train], y[train])
        scores.append(metric(y[validation], getattr(model, method)(X[validation])))
        if _stop_epoch(scores, tol, n_iter_no_change) is not None:
            break
    expected = _stop_epoch(scores, tol, n_iter_no_change)
    assert expected is not None
    stopped = estimator_class(
        early_stopping=True, tol=tol, n_iter_no_change=n_iter_no_change, **COMMON
    ).fit(X, y)
    assert stopped.n_iter_ == expected


def test_tol_sets_where_the_validation_rule_stops():
    # a slowly improving R^2: the stops computed by hand differ for these tols,
    # so a rule that ignored tol would get at least two of them wrong
    X, y = _regression()
    train, validation = _split(GPUSGDRegressor, y)
    params = dict(COMMON, eta0=0.003, n_iter_no_change=3)
    scores = []
    for n_epochs in range(1, 41):
        model = GPUSGDRegressor(tol=None, **dict(params, max_iter=n_epochs))
        model.fit(X[train], y[train])
        scores.append(r2_score(y[validation], model.predict(X[validation])))
    stops = {tol: _stop_epoch(scores, tol, 3) for tol in (1e-4, 1e-3, 1e-2)}
    assert None not in stops.values() and len(set(stops.values())) == 3, stops
    for tol, expected in stops.items():
        model = GPUSGDRegressor(early_stopping=True, tol=tol, **params).fit(X, y)
        assert model.n_iter_ == expected, tol


@pytest.mark.parametrize("estimator_class, make_data", [(c[0], c[1]) for c in CASES])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_huge_tol_stops_after_n_iter_no_change_more_epochs(
    estimator_class, make_data, early_stopping
):
    # the first epoch always improves on -inf / +inf; no later one improves by 1e9
    X, y = make_data()
    # a seed whose validation score keeps improving for a few epochs at tol=0 (the
    # `patient` fits below check it)
    params = dict(COMMON, random_state=1)
    for n_iter_no_change in (2, 5):
        model = estimator_class(
            early_stopping=early_stopping, tol=1e9, n_iter_no_change=n_iter_no_change, **params
        ).fit(X, y)
        assert model.n_iter_ == n_iter_no_change + 1
        # the same data keep improving for longer than that when tol is 0
        patient = estimator_class(
            early_stopping=early_stopping, tol=0.0, n_iter_no_change=n_iter_no_change, **params
        ).fit(X, y)
        assert patient.n_iter_ > n_iter_no_change + 1


@pytest.mark.parametrize("estimator_class, make_data", [(c[0], c[1]) for c in CASES])
def test_training_objective_rule_with_tol(estimator_class, make_data):
    # with penalty=None the objective the rule watches is the epoch's mean loss,
    # loss_curve_; the rule `loss > best - tol` n_iter_no_change times must end the fit
    X, y = make_data()
    params = dict(COMMON, penalty=None, n_iter_no_change=3)
    long_run = estimator_class(tol=None, **params).fit(X, y).loss_curve_
    negated = [-value for value in long_run]
    stops = {tol: _stop_epoch(negated, tol, 3) for tol in (0.0, 1e-3, 1e-2, 1e-1)}
    assert len(set(stops.values())) > 1, stops
    for tol, expected in stops.items():
        model = estimator_class(tol=tol, **params).fit(X, y)
        assert model.n_iter_ == (expected or params["max_iter"]), tol
        np.testing.assert_allclose(model.loss_curve_, long_run[: model.n_iter_], rtol=1e-12)


@pytest.mark.parametrize(
    "ours, theirs, make_data",
    [
        (GPUSGDClassifier, SGDClassifier, _classification),
        (GPUSGDRegressor, SGDRegressor, _regression),
    ],
)
def test_all_zero_validation_weights_get_scikit_learns_error(ours, theirs, make_data):
    X, y = make_data()
    _, validation = _split(ours, y)
    weights = np.ones(len(y))
    weights[validation] = 0.0
    params = dict(early_stopping=True, validation_fraction=FRACTION, random_state=SEED)
    with pytest.raises(ValueError) as reference:
        theirs(**params).fit(X, y, sample_weight=weights)
    message = "The sample weights for validation set are all zero, consider using a"
    assert message in str(reference.value)
    with pytest.raises(ValueError, match=message):
        ours(**params).fit(X, y, sample_weight=weights)
    # all-zero weights everywhere: scikit-learn leaves the message to the split too
    with pytest.raises(ValueError, match=message):
        ours(**params).fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="at least one non-zero"):
        ours(random_state=SEED).fit(X, y, sample_weight=np.zeros(len(y)))
    # one weighted validation row is enough
    weights[validation[0]] = 1.0
    ours(max_iter=3, tol=None, **params).fit(X, y, sample_weight=weights)
