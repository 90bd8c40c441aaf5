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


def pytest_collection_modifyitems(config, items):
    """scikit-learn's suite (test_sklearn_suite.py): skip what does not apply, xfail the gaps."""
    for item in items:
        module = getattr(item, "module", None)
        if module is None or not module.__name__.endswith("test_sklearn_suite"):
            continue
        reason = module.reason_not_applicable(item.name)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"not applicable: {reason}"))
            continue
        gap = module.known_gap(item.name)
        if gap is not None:
            item.add_marker(pytest.mark.xfail(reason=gap, strict=module.STRICT))
