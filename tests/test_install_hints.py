"""Errors and skip reasons say which CuPy wheel to install and how to pick it."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sk_gpusgd import GPUSGDClassifier
from sk_gpusgd._backend import cuda_available

pytestmark = pytest.mark.skipif(
    cuda_available(), reason="a GPU is present: device='cuda' works and the GPU tests run"
)
ROOT = Path(__file__).resolve().parents[1]


def _cuda_error(monkeypatch, cupy_installed):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "cupy":
            return object() if cupy_installed else None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    X = np.random.RandomState(0).normal(size=(20, 3))
    with pytest.raises(RuntimeError) as error:
        GPUSGDClassifier(device="cuda").fit(X, X[:, 0] > 0)
    return str(error.value)


def test_missing_cupy_names_the_wheels_and_how_to_choose(monkeypatch):
    message = _cuda_error(monkeypatch, cupy_installed=False)
    assert "device='cuda'" in message and "CuPy is not installed" in message
    for needed in ("pip install cupy-cuda12x", "pip install cupy-cuda13x", "nvidia-smi"):
        assert needed in message
    assert "CUDA Version" in message
    assert '".[cuda12]"' in message and '".[cuda13]"' in message
    assert "device='cpu'" in message


def test_cupy_without_a_device_points_at_the_driver(monkeypatch):
    message = _cuda_error(monkeypatch, cupy_installed=True)
    assert "sees no CUDA device" in message
    assert "nvidia-smi" in message and "CUDA_VISIBLE_DEVICES" in message
    assert "cupy-cuda12x" not in message  # CuPy is there: no reinstall advice


def test_gpu_tests_skip_with_the_install_hint():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/gpu", "-q", "-rs", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips
    for line in skips:
        if importlib.util.find_spec("cupy") is None:
            assert "cupy-cuda12x" in line and "cupy-cuda13x" in line
        assert "nvidia-smi" in line
