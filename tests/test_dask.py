"""Training and prediction on Dask collections, on a real two-process LocalCluster."""

import signal
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import sk_gpusgd.dask as sk_dask  # noqa: E402
from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor  # noqa: E402

TEST_TIMEOUT_S = 90
# log loss at a constant rate: little last-iterate noise, so one fit's accuracy
# tells about the method rather than the seed
STEADY = dict(loss="log_loss", learning_rate="constant", eta0=0.01, max_iter=10, tol=None)


@pytest.fixture(autouse=True)
def fail_instead_of_hanging():
    """A test that hangs on the cluster fails after TEST_TIMEOUT_S instead of blocking CI."""

    def on_timeout(signum, frame):
        raise TimeoutError(f"Dask test ran longer than {TEST_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, on_timeout)
    signal.alarm(TEST_TIMEOUT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _local_cluster(**config):
    import dask

    with dask.config.set(config):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            worker_dashboard_address=":0",
        )
    return cluster, distributed.Client(cluster, timeout=30)


@pytest.fixture(scope="module")
def client():
    cluster, client = _local_cluster()
    yield client
    client.close()
    cluster.close()


def _blocks(X, y, n_blocks=2, weights=None):
    rows = -(-X.shape[0] // n_blocks)
    out = [da.from_array(X, chunks=(rows, -1)), da.from_array(y, chunks=rows)]
    if weights is not None:
        out.append(da.from_array(weights, chunks=rows))
    return out


def _split(n_classes, n_samples=4000):
    X, y = make_classification(
        n_samples=n_samples,
        n_features=20,
        n_informative=15,
        n_redundant=0,
        n_classes=n_classes,
        class_sep=2.0,
        flip_y=0,
        random_state=0,
    )
    return train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)


@pytest.mark.parametrize("n_classes", [2, 10])
def test_accuracy_is_within_one_point_of_a_single_process_fit(client, n_classes):
    X_train, X_test, y_train, y_test = _split(n_classes)
    single = GPUSGDClassifier(random_state=0, device="cpu", **STEADY).fit(X_train, y_train)
    X_dask, y_dask = _blocks(X_train, y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray warnings from the cluster path
        model = GPUSGDClassifier(random_state=0, device="cpu", **STEADY).fit(X_dask, y_dask)
    assert model.device_ == "dask:cpu"
    assert model.n_iter_ == 10 and len(model.loss_curve_) == 10
    assert abs(model.score(X_test, y_test) - single.score(X_test, y_test)) <= 0.01
    np.testing.assert_array_equal(model.classes_, np.arange(n_classes))

    again = GPUSGDClassifier(random_state=0, device="cpu", **STEADY).fit(X_dask, y_dask)
    np.testing.assert_array_equal(again.coef_, model.coef_)
    np.testing.assert_array_equal(again.intercept_, model.intercept_)


def test_every_block_trains_where_it_lives(client):
    X_train, _, y_train, _ = _split(2, n_samples=2000)
    X_dask, y_dask = _blocks(X_train, y_train)
    X_dask, y_dask = client.persist([X_dask, y_dask])
    distributed.wait([X_dask, y_dask])
    holders = {
        key: next(iter(workers)) for key, workers in client.who_has(X_dask).items() if workers
    }
    with distributed.get_task_stream(client) as stream:
        GPUSGDClassifier(random_state=0, device="cpu", max_iter=2, tol=None).fit(X_dask, y_dask)
    workers = {task["worker"] for task in stream.data if "_local_round" in task["key"]}
    # two blocks on two workers: both train, each block where its rows are
    assert len(set(holders.values())) == 2
    assert workers == set(holders.values())


@pytest.mark.parametrize("partial", [False, True])
def test_one_block_without_shuffling_is_the_single_process_fit(client, partial):
    X, y = make_classification(
        n_samples=600, n_features=8, n_informative=6, n_classes=3, random_state=1
    )
    weights = np.random.default_rng(0).uniform(0.2, 2.0, size=y.shape[0])
    params = dict(
        shuffle=False,
        momentum=0.9,
        penalty="elasticnet",
        tol=None,
        max_iter=3,
        device="cpu",
        class_weight=None if partial else "balanced",
        # an explicit batch size: the automatic regime's tail averaging is per sample
        # in one process and per round on Dask
        batch_size=32,
    )
    X_dask, y_dask, w_dask = _blocks(X, y, n_blocks=1, weights=weights)
    single, distributed_model = GPUSGDClassifier(**params), GPUSGDClassifier(**params)
    if partial:
        for _ in range(2):
            single.partial_fit(X, y, classes=[0, 1, 2], sample_weight=weights)
            distributed_model.partial_fit(X_dask, y_dask, classes=[0, 1, 2], sample_weight=w_dask)
    else:
        single.fit(X, y, sample_weight=weights)
        distributed_model.fit(X_dask, y_dask, sample_weight=w_dask)
    np.testing.assert_allclose(distributed_model.coef_, single.coef_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(distributed_model.intercept_, single.intercept_, atol=1e-12)
    assert distributed_model.t_ == single.t_
    np.testing.assert_allclose(distributed_model.loss_curve_, single.loss_curve_, rtol=1e-12)


def test_one_round_is_the_row_weighted_mean_of_the_blocks_models(client):
    X, y = make_regression(n_samples=500, n_features=6, noise=1.0, random_state=0)
    params = dict(shuffle=False, tol=None, max_iter=1, batch_size=10, device="cpu")
    # unequal blocks: 300 and 200 rows
    X_dask = da.from_array(X, chunks=((300, 200), (6,)))
    y_dask = da.from_array(y, chunks=((300, 200),))
    model = GPUSGDRegressor(**params).fit(X_dask, y_dask)
    first = GPUSGDRegressor(**params).fit(X[:300], y[:300])
    second = GPUSGDRegressor(**params).fit(X[300:], y[300:])
    expected = (300 * first.coef_ + 200 * second.coef_) / 500
    np.testing.assert_allclose(model.coef_, expected, rtol=1e-12)
    np.testing.assert_allclose(
        model.intercept_, (300 * first.intercept_ + 200 * second.intercept_) / 500, rtol=1e-12
    )
    # the clock counts the rows of both blocks: 300 + 200, plus one (scikit-learn's t_)
    assert model.t_ == 501.0


def test_averaged_sgd_keeps_the_mean_of_the_synchronised_models(client):
    X, y = make_regression(n_samples=300, n_features=5, noise=1.0, random_state=0)
    X_dask, y_dask = _blocks(X, y, n_blocks=1)
    params = dict(
        shuffle=False, tol=None, device="cpu", learning_rate="constant", eta0=0.01, batch_size=32
    )
    averaged = GPUSGDRegressor(average=True, max_iter=3, **params).fit(X_dask, y_dask)
    # one block, no shuffling: the model after round r is plain SGD after r epochs
    plain = GPUSGDRegressor(**params)
    after_each_round = []
    for _ in range(3):
        plain.partial_fit(X, y)
        after_each_round.append(plain.coef_.copy())
    np.testing.assert_allclose(averaged.coef_, np.mean(after_each_round, axis=0), rtol=1e-12)


def test_sync_every_k_steps_averages_more_often(client):
    X_train, X_test, y_train, y_test = _split(2, n_samples=2000)
    X_dask, y_dask = _blocks(X_train, y_train)
    k = 25
    model = GPUSGDClassifier(random_state=0, device="cpu", batch_size=8, **STEADY)
    sk_dask.fit(model, X_dask, y_dask, sync_every=k, client=client)
    # blocks of 500 rows, 25 steps of 8 rows per round: round(500 / 200) = 2 rounds an epoch
    rounds = 10 * 2
    assert model.t_ == rounds * 2 * k * 8 + 1
    single = GPUSGDClassifier(random_state=0, device="cpu", batch_size=8, **STEADY)
    single.fit(X_train, y_train)
    assert abs(model.score(X_test, y_test) - single.score(X_test, y_test)) <= 0.02
    with pytest.raises(ValueError, match="sync_every must be 'epoch' or a positive"):
        sk_dask.fit(GPUSGDClassifier(), X_dask, y_dask, sync_every=0)


def test_dataframes_series_and_feature_names(client):
    import pandas as pd

    X, y = make_regression(n_samples=400, n_features=5, noise=1.0, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    X_frame = dd.from_pandas(frame, npartitions=2, sort=False)
    y_series = dd.from_pandas(pd.Series(y), npartitions=2, sort=False)
    params = dict(random_state=0, max_iter=5, tol=None, device="cpu")
    from_frame = GPUSGDRegressor(**params).fit(X_frame, y_series)
    sizes = tuple(X_frame.map_partitions(len).compute())
    X_dask = da.from_array(X, chunks=(sizes, (5,)))
    from_array = GPUSGDRegressor(**params).fit(X_dask, da.from_array(y, chunks=(sizes,)))
    np.testing.assert_array_equal(from_frame.coef_, from_array.coef_)
    np.testing.assert_array_equal(from_frame.feature_names_in_, frame.columns)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named blocks: no feature-name warning
        lazy = from_frame.predict(X_frame)
        predicted = lazy.compute()
    np.testing.assert_allclose(predicted, from_frame.predict(frame), rtol=1e-12)
    expected_r2 = r2_score(y, from_frame.predict(frame))
    # reduced on the cluster (estimator.score is scikit-learn's own)
    assert sk_dask.score(from_frame, X_frame, y_series) == pytest.approx(expected_r2, rel=1e-10)


def test_prediction_is_lazy_and_blockwise(client):
    X_train, X_test, y_train, y_test = _split(10, n_samples=1000)
    model = GPUSGDClassifier(random_state=0, device="cpu", **STEADY).fit(X_train, y_train)
    X_dask = da.from_array(X_test, chunks=(125, -1))
    for name in ("predict", "decision_function", "predict_proba", "predict_log_proba"):
        lazy = getattr(model, name)(X_dask)
        assert isinstance(lazy, da.Array)
        # one output block per input block, no work done yet
        assert lazy.numblocks[0] == X_dask.numblocks[0]
        assert lazy.chunks[0] == X_dask.chunks[0]
        np.testing.assert_allclose(lazy.compute(), getattr(model, name)(X_test), rtol=1e-12)
    y_dask = da.from_array(y_test, chunks=125)
    weights = np.linspace(0.5, 1.5, y_test.shape[0])
    assert model.score(X_dask, y_dask) == pytest.approx(model.score(X_test, y_test), abs=1e-12)
    expected = np.average(model.predict(X_test) == y_test, weights=weights)
    assert model.score(X_dask, y_dask, sample_weight=weights) == pytest.approx(expected)


def test_works_inside_dask_ml_incremental(client):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X_train, X_test, y_train, y_test = _split(2, n_samples=2000)
    X_dask, y_dask = _blocks(X_train, y_train, n_blocks=4)
    params = dict(random_state=0, device="cpu", loss="log_loss")
    incremental = wrappers.Incremental(
        GPUSGDClassifier(**params), scoring="accuracy", shuffle_blocks=False
    )
    incremental.fit(X_dask, y_dask, classes=[0, 1])
    # Incremental feeds the blocks, in order, to partial_fit
    sequential = GPUSGDClassifier(**params)
    block = X_dask.chunks[0][0]
    for start in range(0, X_train.shape[0], block):
        rows = slice(start, start + block)
        sequential.partial_fit(X_train[rows], y_train[rows], classes=[0, 1])
    np.testing.assert_array_equal(incremental.estimator_.coef_, sequential.coef_)

    X_test_dask, y_test_dask = _blocks(X_test, y_test, n_blocks=4)
    predicted = incremental.predict(X_test_dask)
    assert isinstance(predicted, da.Array)
    np.testing.assert_array_equal(predicted.compute(), sequential.predict(X_test))
    expected = sequential.score(X_test, y_test)
    assert incremental.score(X_test_dask, y_test_dask) == pytest.approx(expected, abs=1e-12)


def test_bad_dask_input_is_a_clear_error_and_leaves_the_model(client):
    X, y = make_classification(n_samples=200, n_features=4, n_informative=2, random_state=0)
    model = GPUSGDClassifier(random_state=0, device="cpu", max_iter=3, tol=None).fit(X, y)
    coef = model.coef_.copy()
    X_dask, y_dask = _blocks(X, y)
    with pytest.raises(ValueError, match="early_stopping=True is not supported with Dask"):
        GPUSGDClassifier(early_stopping=True).fit(X_dask, y_dask)
    bad = X.copy()
    bad[150, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(_blocks(bad, y)[0], y_dask)
    with pytest.raises(ValueError, match="one value per row of X .200.; got shape .150,."):
        model.fit(X_dask, y_dask[:150])
    with pytest.raises(ValueError, match="0 sample"):
        model.fit(X_dask[:0], y_dask[:0])
    with pytest.raises(ValueError, match="unknown sizes"):
        model.fit(X_dask[X_dask[:, 0] > 0], y_dask[X_dask[:, 0] > 0])
    np.testing.assert_array_equal(model.coef_, coef)


# ------------------------------------------------------------------ faults
def _kill_a_worker_mid_fit(client, fit, lock_path, after_rounds=2):
    """Run ``fit()``; the first worker process to start its ``after_rounds``-th round dies.

    The kill happens while the worker runs the task, so the scheduler always sees a
    task lost with its worker (a kill timed from outside can land between tasks,
    which Dask recovers from without counting a failure). Every worker is armed,
    wherever the scheduler puts the blocks; the lock file lets only one die.
    """

    def arm(limit, lock):
        import os
        import signal

        import sk_gpusgd._dask as module

        original = getattr(module, "_original_local_round", module._local_round)
        module._original_local_round = original
        calls = [0]

        def round_that_dies(*args, **kwargs):
            calls[0] += 1
            if calls[0] >= limit:
                try:
                    os.close(os.open(lock, os.O_CREAT | os.O_EXCL))
                except FileExistsError:  # another worker died already
                    pass
                else:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        # tasks name the function by module and name, so the worker runs this one
        module._local_round = round_that_dies

    client.run(arm, after_rounds, str(lock_path))
    try:
        return fit()
    finally:
        # also when the fit raised: its error must come from the kill
        assert lock_path.exists(), "no worker was killed during the fit"


def _fault_data():
    X, y = make_classification(n_samples=20_000, n_features=20, random_state=0)
    return X, y, *_blocks(X, y)


def test_a_killed_worker_is_recovered_and_the_model_is_the_same(tmp_path):
    cluster, client = _local_cluster()
    try:
        X, y, X_dask, y_dask = _fault_data()
        params = dict(random_state=0, device="cpu", max_iter=12, tol=None)
        reference = GPUSGDClassifier(**params).fit(X_dask, y_dask)
        model = GPUSGDClassifier(**params)
        # one lost task is within Dask's default retries (3): lost blocks and
        # rounds are recomputed from the same seeds
        _kill_a_worker_mid_fit(client, lambda: model.fit(X_dask, y_dask), tmp_path / "killed")
        assert np.all(np.isfinite(model.coef_))
        np.testing.assert_array_equal(model.coef_, reference.coef_)
    finally:
        client.close()
        cluster.close()


def test_a_fit_that_loses_its_worker_raises_and_keeps_the_previous_model(tmp_path):
    # no retries: the task on the killed worker fails the fit
    cluster, client = _local_cluster(**{"distributed.scheduler.allowed-failures": 0})
    try:
        X, y, X_dask, y_dask = _fault_data()
        model = GPUSGDClassifier(random_state=0, device="cpu", max_iter=3, tol=None).fit(X, y)
        before = {name: np.copy(getattr(model, name)) for name in ("coef_", "intercept_")}
        n_iter = model.n_iter_
        model.set_params(max_iter=6)
        with pytest.raises(RuntimeError, match="The Dask cluster failed during the fit"):
            _kill_a_worker_mid_fit(client, lambda: model.fit(X_dask, y_dask), tmp_path / "killed")
        for name, value in before.items():
            np.testing.assert_array_equal(getattr(model, name), value)
        assert model.n_iter_ == n_iter and model.device_ == "cpu"
    finally:
        client.close()
        cluster.close()
