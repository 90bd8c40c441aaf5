"""The GPU check's epoch timing, on the emulated kernels: every timed epoch takes every row."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

GPU_CHECK = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def device(gpu_check, emulated):
    device = gpu_check.Device(dry_run=True)
    device.backend = emulated
    return device


def test_each_timed_epoch_takes_every_row(gpu_check, device):
    fit = gpu_check.fused_fit(device, n=1000, d=8, k=3, batch=64)
    seconds, rows = gpu_check.epoch_seconds(device.backend, fit, epochs=3)
    assert rows == [1000, 1000, 1000]
    assert seconds > 0
    # the clock counts the warm-up epoch and the three timed ones
    assert gpu_check.samples_seen(fit, fit.end_epoch()) == 4 * 1000


def test_replay_without_end_epoch_takes_no_rows(gpu_check, device):
    """Why the timing closes each epoch: the cursor rewinds only in ``end_epoch``."""
    fit = gpu_check.fused_fit(device, n=500, d=8, k=2, batch=64)
    fit.epoch_steps(use_graphs=True)
    first = gpu_check.samples_seen(fit, fit.end_epoch())
    fit.epoch_steps(use_graphs=True)
    coef = np.array(fit.W, copy=True)
    fit.epoch_steps(use_graphs=True)  # no end_epoch before it: the cursor is at the end
    np.testing.assert_array_equal(fit.W, coef)
    assert gpu_check.samples_seen(fit, fit.end_epoch()) == 2 * first


def test_an_epoch_short_of_rows_fails_the_timing(gpu_check, device, monkeypatch):
    fit = gpu_check.fused_fit(device, n=500, d=8, k=2, batch=64)
    calls = []
    real_end_epoch = fit.end_epoch

    def end_epoch_skipping_the_second():
        calls.append(None)
        if len(calls) == 2:  # the first timed epoch is not closed: the next takes no rows
            return fit.backend.to_host(fit.summary)
        return real_end_epoch()

    monkeypatch.setattr(fit, "end_epoch", end_epoch_skipping_the_second)
    with pytest.raises(RuntimeError, match="rows"):
        gpu_check.epoch_seconds(device.backend, fit, epochs=3)


def test_dry_run_checks_pass(gpu_check, device, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check.driver, "emulated_backend", lambda: device.backend)
    assert gpu_check.checks(tmp_path, dry_run=True) == 0
    assert (tmp_path / "gpu-check-kernels-dry-run.json").exists()
