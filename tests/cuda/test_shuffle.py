"""The kernels' shuffle: a keyed Feistel bijection of the row positions."""

import itertools
import math

import numpy as np
import pytest
from kernel_helpers import (
    SMALL_LAUNCH,
    assert_same_training,
    fresh_state,
    make_config,
    make_problem,
)
from scipy.stats import chisquare

from sk_gpusgd._core.types import TrainingData
from sk_gpusgd._engines.cuda import driver
from sk_gpusgd._runs import run, run_kernels


@pytest.mark.parametrize("n", [1, 2, 3, 5, 37, 64, 1000, 4097])
def test_every_epoch_order_is_a_permutation(emulated, n):
    for epoch in range(3):
        order = driver.epoch_order(emulated, n, seed=12345, epoch=epoch)
        assert sorted(order.tolist()) == list(range(n))


def test_orders_change_with_epoch_and_seed(emulated):
    first = driver.epoch_order(emulated, 1000, seed=1, epoch=0)
    assert not np.array_equal(first, driver.epoch_order(emulated, 1000, seed=1, epoch=1))
    assert not np.array_equal(first, driver.epoch_order(emulated, 1000, seed=2, epoch=0))
    assert np.array_equal(first, driver.epoch_order(emulated, 1000, seed=1, epoch=0))


def test_all_permutations_of_four_rows_are_equally_likely(emulated):
    """Chi-square over the 24 orders of 4 rows, 4800 epochs (few rounds fail this)."""
    index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = np.zeros(len(index))
    for epoch in range(4800):
        counts[index[tuple(driver.epoch_order(emulated, 4, seed=7, epoch=epoch))]] += 1
    assert chisquare(counts).pvalue > 1e-3


def test_every_row_reaches_every_position_uniformly(emulated):
    n, epochs = 11, 2200
    positions = np.zeros((n, n))
    for epoch in range(epochs):
        order = driver.epoch_order(emulated, n, seed=99, epoch=epoch)
        positions[order, np.arange(n)] += 1
    # one chi-square per position, Bonferroni over the n positions
    pvalues = [chisquare(positions[:, j]).pvalue for j in range(n)]
    assert min(pvalues) > 1e-3 / n
    assert math.isclose(positions.sum(), n * epochs)


class BijectionOrders:
    """A random_state whose permutations are the kernels' bijection orders, epoch by epoch."""

    def __init__(self, backend, seed):
        self.backend, self.seed, self.epoch = backend, seed, 0

    def randint(self, high):
        return self.seed

    def permutation(self, n):
        order = driver.epoch_order(self.backend, n, self.seed, self.epoch)
        self.epoch += 1
        return order


def test_training_on_the_bijection_matches_the_reference_in_that_order(emulated, monkeypatch):
    monkeypatch.setenv(driver.ENV_SHUFFLE, "bijection")
    X, Y = make_problem(k=3)
    data = TrainingData(X=X, targets=Y)
    config = make_config(loss="log_loss", optimizer={"momentum": 0.9})
    reference, kernels = fresh_state(20, 3), fresh_state(20, 3)
    ref_report = run(
        np, reference, data, config, max_epochs=3, random_state=BijectionOrders(emulated, 4321)
    )
    ker_report = run_kernels(
        np,
        kernels,
        data,
        config,
        max_epochs=3,
        random_state=BijectionOrders(emulated, 4321),
        backend=emulated,
        launch_options=SMALL_LAUNCH,
    )
    assert_same_training((reference, ref_report), (kernels, ker_report))
