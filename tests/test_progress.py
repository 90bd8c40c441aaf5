"""What ``verbose`` prints during a fit, checked against the fitted model."""

import math
import re

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression

from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor
from sk_gpusgd._engines.progress import _rate

EPOCH = re.compile(
    r"^-- Epoch (\d+)/(\d+): loss ([-\d.e+]+), objective ([-\d.e+]+)"
    r"(?:, validation score ([\d.]+))?, ([\d.]+)([kMG]?) samples/s, ([\d.]+) s elapsed$"
)
WEIGHTS = re.compile(
    r"^   norm ([\d.e+-]+), non-zeros (\d+)/(\d+)(?:, learning rate ([\d.e+-]+))?, steps (\d+)$"
)
END = re.compile(
    r"^Fit: (\d+) epochs? of (\d+) samples in ([\d.]+) s on (\S+), "
    r"batch_size=(\d+) \((\d+) steps/epoch\)$"
)
N_SAMPLES = 203  # not a multiple of the batch size: the last batch is short


def _classification():
    X, y = make_classification(n_samples=N_SAMPLES, n_features=5, random_state=0)
    return X, y


def _regression():
    X, y = make_regression(n_samples=N_SAMPLES, n_features=5, noise=1.0, random_state=0)
    return X / 3.0, y / 100.0


def _parse(output):
    epochs, weights, ends, other = [], [], [], []
    for line in output.splitlines():
        for pattern, found in ((EPOCH, epochs), (WEIGHTS, weights), (END, ends)):
            match = pattern.match(line)
            if match:
                found.append(match.groups())
                break
        else:
            other.append(line)
    return epochs, weights, ends, other


@pytest.mark.parametrize(
    "estimator, data",
    [(GPUSGDClassifier, _classification), (GPUSGDRegressor, _regression)],
)
def test_verbose_zero_prints_nothing(estimator, data, capsys):
    X, y = data()
    model = estimator(random_state=0, max_iter=3, tol=None).fit(X, y)
    model.partial_fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_one_line_per_epoch_and_a_summary(capsys):
    X, y = _classification()
    model = GPUSGDClassifier(penalty=None, max_iter=4, tol=None, random_state=0, verbose=1)
    model.fit(X, y)
    epochs, weights, ends, other = _parse(capsys.readouterr().out)
    assert other == [] and weights == []
    assert [int(e[0]) for e in epochs] == [1, 2, 3, 4]
    assert {int(e[1]) for e in epochs} == {4}  # out of max_iter
    for (_, _, loss, objective, score, rate, _, _), expected in zip(
        epochs, model.loss_curve_, strict=True
    ):
        assert float(loss) == pytest.approx(expected, abs=1e-6)
        assert objective == loss  # no penalty: the objective is the loss
        assert score is None
        assert float(rate) > 0
    elapsed = [float(e[7]) for e in epochs]
    assert elapsed == sorted(elapsed)
    ((n_epochs, n_samples, seconds, device, batch_size, steps),) = ends
    assert int(n_epochs) == 4 and int(n_samples) == N_SAMPLES
    assert float(seconds) >= elapsed[-1]
    assert device == model.device_ == "cpu"
    assert int(batch_size) == model.batch_size_
    assert int(steps) == math.ceil(N_SAMPLES / model.batch_size_)


def test_objective_adds_the_l2_penalty(capsys):
    X, y = _regression()
    alpha = 0.01
    # full batch, in order: epoch 3 is one step from the weights two epochs leave
    params = dict(alpha=alpha, batch_size=len(y), shuffle=False, tol=None, random_state=0)
    before = GPUSGDRegressor(max_iter=2, **params).fit(X, y)
    GPUSGDRegressor(max_iter=3, verbose=1, **params).fit(X, y)
    epochs, _, _, _ = _parse(capsys.readouterr().out)
    last_loss, last_objective = float(epochs[-1][2]), float(epochs[-1][3])
    # scikit-learn's objective: each row's loss plus the penalty of the weights it met
    penalty = 0.5 * alpha * float(np.sum(before.coef_**2))
    assert last_objective == pytest.approx(last_loss + penalty, abs=2e-6)


def test_convergence_is_announced(capsys):
    X, y = _classification()
    model = GPUSGDClassifier(random_state=0, verbose=1).fit(X, y)
    epochs, _, _, other = _parse(capsys.readouterr().out)
    assert len(epochs) == model.n_iter_ < model.max_iter
    assert other == [f"Convergence after {model.n_iter_} epochs"]


def test_verbose_two_shows_weights_rate_and_nonzeros(capsys):
    X, y = _classification()
    X = sp.csr_matrix(np.where(np.abs(X) > 0.3, X, 0.0))
    eta0 = 0.05
    model = GPUSGDClassifier(
        penalty="l1",
        alpha=0.05,
        learning_rate="constant",
        eta0=eta0,
        batch_size=16,
        scale_learning_rate=False,  # the printed rate is then eta0 itself
        max_iter=3,
        tol=None,
        random_state=0,
        verbose=2,
    ).fit(X, y)
    epochs, weights, ends, _ = _parse(capsys.readouterr().out)
    assert len(epochs) == len(weights) == 3 and len(ends) == 1
    steps_per_epoch = math.ceil(N_SAMPLES / 16)
    for epoch, (_, _, size, rate, steps) in enumerate(weights, start=1):
        assert int(size) == 5
        assert float(rate) == eta0
        assert int(steps) == epoch * steps_per_epoch
    norm, nonzeros = float(weights[-1][0]), int(weights[-1][1])
    assert norm == pytest.approx(np.linalg.norm(model.coef_), rel=1e-5)
    assert nonzeros == np.count_nonzero(model.coef_) < 5  # the L1 penalty zeroed some


def test_verbose_two_learning_rate_follows_the_schedule(capsys):
    X, y = _regression()
    eta0, power_t = 0.02, 0.25
    GPUSGDRegressor(eta0=eta0, power_t=power_t, batch_size=1, max_iter=2, tol=None, verbose=2).fit(
        X, y
    )
    _, weights, _, _ = _parse(capsys.readouterr().out)
    for _, _, _, rate, steps in weights:
        # invscaling: the next step's rate, with the clock t = samples seen + 1
        expected = eta0 / (int(steps) + 1) ** power_t
        assert float(rate) == pytest.approx(expected, rel=1e-5)


def test_validation_score_is_shown_with_early_stopping(capsys):
    X, y = _classification()
    GPUSGDClassifier(early_stopping=True, max_iter=3, tol=None, random_state=0, verbose=1).fit(X, y)
    epochs, _, ends, _ = _parse(capsys.readouterr().out)
    assert len(epochs) == 3
    assert all(0.0 <= float(e[4]) <= 1.0 for e in epochs)
    # the held-out rows are not trained on
    assert int(ends[0][1]) == N_SAMPLES - math.ceil(0.1 * N_SAMPLES)


def test_partial_fit_reports_its_one_epoch(capsys):
    X, y = _classification()
    GPUSGDClassifier(verbose=1, random_state=0).partial_fit(X, y, classes=[0, 1])
    epochs, _, ends, other = _parse(capsys.readouterr().out)
    assert [(e[0], e[1]) for e in epochs] == [("1", "1")]
    assert ends[0][0] == "1" and other == []


@pytest.mark.parametrize(
    "rate, text",
    [
        (950.4, "950"),
        (12_345.0, "12.3k"),
        (4_560_000.0, "4.56M"),
        (2.5e9, "2.5G"),
        (math.inf, "inf"),
    ],
)
def test_rate_formatting(rate, text):
    assert _rate(rate) == text
