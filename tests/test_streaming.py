"""max_device_memory: data larger than the cap streams through the device in chunks.

On NumPy the streamed loop runs whenever the cap is below the data's size, so
these tests compare it with the in-memory fit on the CPU.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import InvalidParameterError

import sk_gpusgd._engines.streaming
from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

# float64 X of 1200 x 20: 192,000 bytes; this cap holds a few thousand rows' worth
# of model and batch, and chunks of well under half the data.
SMALL_CAP = 60_000


@pytest.fixture
def chunk_sizes(monkeypatch):
    """Rows of every chunk the streamed loop hands to the engine."""
    seen = []
    default_epoch = sk_gpusgd._engines.streaming.default_epoch

    def recording_pass(xp, state, data, *args):
        seen.append(data.X.shape[0])
        return default_epoch(xp, state, data, *args)

    monkeypatch.setattr(sk_gpusgd._engines.streaming, "default_epoch", recording_pass)
    return seen


@pytest.fixture(scope="module")
def multiclass():
    X, y = make_classification(
        n_samples=1200, n_features=20, n_informative=12, n_classes=10, random_state=0
    )
    return X, y


def _assert_same_model(streamed, in_memory):
    np.testing.assert_allclose(streamed.coef_, in_memory.coef_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(streamed.intercept_, in_memory.intercept_, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("batch_size", [8, 24])
def test_one_unshuffled_epoch_equals_the_in_memory_fit(multiclass, chunk_sizes, batch_size):
    X, y = multiclass
    params = dict(
        shuffle=False, max_iter=1, tol=None, batch_size=batch_size, momentum=0.9, device="cpu"
    )
    in_memory = GPUSGDClassifier(**params).fit(X, y)
    assert chunk_sizes == []
    streamed = GPUSGDClassifier(**params, max_device_memory=SMALL_CAP).fit(X, y)
    assert len(chunk_sizes) > 1
    assert sum(chunk_sizes) == X.shape[0]
    # whole batches per chunk, so the streamed batches are the in-memory batches
    assert all(rows % batch_size == 0 for rows in chunk_sizes[:-1])
    # two chunks of X (8 bytes a value) fit under the cap
    assert 2 * max(chunk_sizes) * X.shape[1] * 8 <= SMALL_CAP
    _assert_same_model(streamed, in_memory)


def test_shuffled_fit_with_stopping_rule_equals_the_in_memory_fit(multiclass, chunk_sizes):
    X, y = multiclass
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    # 'adaptive' divides its rate before stopping: both parts of the rule run
    params = dict(
        random_state=3,
        batch_size=16,
        average=True,
        learning_rate="adaptive",
        n_iter_no_change=2,
        max_iter=100,
        device="cpu",
    )
    in_memory = GPUSGDClassifier(**params).fit(X_train, y_train)
    streamed = GPUSGDClassifier(**params, max_device_memory=SMALL_CAP).fit(X_train, y_train)
    assert len(chunk_sizes) > streamed.n_iter_
    # one permutation of all rows per epoch, drawn as the in-memory fit draws it
    _assert_same_model(streamed, in_memory)
    assert streamed.n_iter_ == in_memory.n_iter_ < 100
    np.testing.assert_allclose(streamed.loss_curve_, in_memory.loss_curve_, rtol=1e-9)
    assert abs(streamed.score(X_test, y_test) - in_memory.score(X_test, y_test)) < 1e-12


def test_weights_and_class_weights_stream_with_their_rows(multiclass, chunk_sizes):
    X, y = multiclass
    weights = np.random.default_rng(0).uniform(0.1, 2.0, size=y.shape[0])
    params = dict(
        random_state=0,
        class_weight="balanced",
        loss="log_loss",
        max_iter=4,
        tol=None,
        batch_size=8,
    )
    in_memory = GPUSGDClassifier(**params, device="cpu").fit(X, y, sample_weight=weights)
    streamed = GPUSGDClassifier(**params, device="cpu", max_device_memory=SMALL_CAP)
    streamed.fit(X, y, sample_weight=weights)
    assert len(chunk_sizes) > 4
    _assert_same_model(streamed, in_memory)


def test_sparse_regression_streams(chunk_sizes):
    X, y = make_regression(n_samples=1000, n_features=30, noise=1.0, random_state=0)
    X[np.abs(X) < 1.0] = 0.0
    X = sp.csr_matrix(X)
    params = dict(
        random_state=0, max_iter=5, tol=None, penalty="elasticnet", device="cpu", batch_size=8
    )
    in_memory = GPUSGDRegressor(**params).fit(X, y)
    streamed = GPUSGDRegressor(**params, max_device_memory=20_000).fit(X, y)
    assert len(chunk_sizes) > 5
    _assert_same_model(streamed, in_memory)


def test_partial_fit_and_early_stopping_stream(multiclass, chunk_sizes):
    X, y = multiclass
    classes = np.unique(y)
    in_memory = GPUSGDClassifier(random_state=0, device="cpu", batch_size=8)
    streamed = GPUSGDClassifier(
        random_state=0, device="cpu", batch_size=8, max_device_memory=SMALL_CAP
    )
    for start in (0, 600):
        rows = slice(start, start + 600)
        in_memory.partial_fit(X[rows], y[rows], classes=classes)
        streamed.partial_fit(X[rows], y[rows], classes=classes)
    _assert_same_model(streamed, in_memory)

    params = dict(
        random_state=0, early_stopping=True, n_iter_no_change=2, device="cpu", batch_size=8
    )
    in_memory = GPUSGDClassifier(**params).fit(X, y)
    streamed = GPUSGDClassifier(**params, max_device_memory=SMALL_CAP).fit(X, y)
    assert streamed.n_iter_ == in_memory.n_iter_
    _assert_same_model(streamed, in_memory)


def test_data_under_the_cap_is_not_streamed(multiclass, chunk_sizes):
    X, y = multiclass
    GPUSGDClassifier(max_iter=2, tol=None, device="cpu", max_device_memory=10**9).fit(X, y)
    assert chunk_sizes == []


def test_a_cap_too_small_for_one_batch_is_a_clear_error(multiclass):
    X, y = multiclass
    model = GPUSGDClassifier(batch_size=64, device="cpu", max_device_memory=1000)
    with pytest.raises(ValueError, match="budget of 1000 bytes .max_device_memory"):
        model.fit(X, y)
    assert not hasattr(model, "coef_")


@pytest.mark.parametrize("value", [0, -5, 1.5, "1GB"])
def test_invalid_cap_is_rejected(multiclass, value):
    X, y = multiclass
    with pytest.raises(InvalidParameterError, match="max_device_memory"):
        GPUSGDClassifier(max_device_memory=value).fit(X, y)


def test_divergence_while_streaming_names_the_epoch(multiclass):
    X, y = multiclass
    model = GPUSGDRegressor(
        learning_rate="constant",
        eta0=1e300,
        penalty=None,
        device="cpu",
        batch_size=8,
        max_device_memory=40_000,
    )
    with pytest.raises(ValueError, match="learning rate.*eta0=1e\\+300"):
        model.fit(X * 1e3, y.astype(float))
