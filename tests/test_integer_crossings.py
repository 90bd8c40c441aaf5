"""Integers on their way into compiled code are checked or clamped, never wrapped.

ctypes converts a Python int that does not fit a C field silently (2**64 becomes 0):
``batch_size=2**64`` used to hang the compiled epoch forever (a zero batch never
advances), and ``average=2**64 + 5`` to start averaging after 5 samples into arrays
that were never allocated. A batch larger than the data is the data; an averaging
start no fit reaches never starts. The CUDA side's crossings are in
tests/cuda/test_fallbacks.py (the launch plan's index bounds).
"""

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from sk_gpusgd._core.losses import make_loss
from sk_gpusgd._core.optim import OptimizerConfig
from sk_gpusgd._core.schedules import make_schedule
from sk_gpusgd._core.types import EngineConfig
from sk_gpusgd._engines import compiled as _compiled


def _run_isolated(code: str, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter: a hang in C fails the test instead of the run."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("sparse", [False, True])
def test_a_batch_beyond_64_bits_trains_as_one_batch_of_all_rows(sparse):
    out = _run_isolated(
        f"""
        import numpy as np, scipy.sparse as sp
        from sk_gpusgd import GPUSGDClassifier
        rng = np.random.default_rng(0)
        X = rng.standard_normal((30, 4))
        y = (X[:, 0] > 0).astype(int)
        X = sp.csr_matrix(X) if {sparse} else X
        huge = GPUSGDClassifier(batch_size=2**64, random_state=0).fit(X, y)
        whole = GPUSGDClassifier(batch_size=30, random_state=0).fit(X, y)
        assert huge.batch_size_ == 2**64  # the parameter as given; its steps take all rows
        np.testing.assert_array_equal(huge.coef_, whole.coef_)
        np.testing.assert_array_equal(huge.intercept_, whole.intercept_)
        assert huge.n_iter_ == whole.n_iter_
        print("same model")
        """
    )
    assert "same model" in out


def test_an_averaging_start_beyond_64_bits_never_starts():
    out = _run_isolated(
        """
        import numpy as np
        from sk_gpusgd import GPUSGDClassifier
        rng = np.random.default_rng(0)
        X = rng.standard_normal((30, 4))
        y = (X[:, 0] > 0).astype(int)
        late = GPUSGDClassifier(average=2**64 + 5, batch_size=4, random_state=0).fit(X, y)
        plain = GPUSGDClassifier(average=False, batch_size=4, random_state=0).fit(X, y)
        np.testing.assert_array_equal(late.coef_, plain.coef_)
        print("never averaged")
        """
    )
    assert "never averaged" in out


def test_a_shape_beyond_64_bits_is_refused_by_name():
    """The config builder names the field instead of letting ctypes wrap it."""
    data = SimpleNamespace(
        n_samples=10,
        X=SimpleNamespace(shape=(10, 2**64)),
        targets=SimpleNamespace(shape=(10, 1)),
    )
    loss = make_loss("hinge", 0.1)
    config = EngineConfig(
        loss=loss,
        schedule=make_schedule("optimal", 0.0, 1e-4, 0.5, loss),
        optimizer=OptimizerConfig(),
        batch_size=4,
    )
    with pytest.raises(ValueError, match="n_features=18446744073709551616"):
        _compiled._config(data, config)
