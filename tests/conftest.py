"""Test configuration: enable scikit-learn's array-API checks; GPU detection."""

import os

import pytest

# scikit-learn runs its array-API estimator checks only with SciPy's array-API
# mode on, and SciPy reads this once, at import.
os.environ.setdefault("SCIPY_ARRAY_API", "1")


@pytest.fixture
def engine_inputs(monkeypatch):
    """Record what the training loop receives, whichever engine the plan chose."""
    import sk_gpusgd._base

    seen = []
    train = sk_gpusgd._base.train

    def recording_train(engine, xp, state, data, config, **kwargs):
        seen.append({"X": data.X, "coef_dtype": state.coef.dtype, "config": config})
        return train(engine, xp, state, data, config, **kwargs)

    monkeypatch.setattr(sk_gpusgd._base, "train", recording_train)
    return seen
