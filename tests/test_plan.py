"""The fit plan: each decision of a few typical fits, checked against its documented rule.

The plan of a fit is caught where the estimator finishes it (``finish_plan``), printed
(every decision on its own line), and compared with the rules the user guide states:
``batch_size='auto'`` picks at most ``n // 16`` rows and at least one; dense X with an
automatic batch is standardised and averaged from the second epoch; CSR is neither;
half-precision X computes in float32; host data beyond ``max_device_memory`` streams
in chunks of whole batches; a ``partial_fit`` stream keeps its first call's decisions;
early stopping holds out ``ceil(validation_fraction * n)`` rows.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification

import sk_gpusgd._base
from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor
from sk_gpusgd._engines.array_api import ArrayApiEngine
from sk_gpusgd._engines.cuda import driver
from sk_gpusgd._engines.streaming import StreamingEngine

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def plans(monkeypatch):
    """The plans of the fits a test makes, as the estimator finished them."""
    seen = []
    finish = sk_gpusgd._base.finish_plan

    def recording(plan, *args, **kwargs):
        config = finish(plan, *args, **kwargs)
        seen.append(plan)
        return config

    monkeypatch.setattr(sk_gpusgd._base, "finish_plan", recording)
    return seen


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    return X, y


def test_a_dense_fit_standardises_and_averages_with_its_automatic_batch(plans, data):
    X, y = data
    model = GPUSGDClassifier(random_state=0, max_iter=3).fit(X, y)
    (plan,) = plans
    printed = str(plan)
    for name in ("namespace", "batch_size", "chunk_rows", "preconditioner", "engine"):
        assert f"{name}=" in printed
    assert plan.namespace is np and plan.data_namespace is np
    assert plan.n_train == 2000 and not plan.continuing
    assert 1 <= plan.batch_size <= 2000 // 16 and plan.batch_size == model.batch_size_
    assert plan.chunk_rows is None
    assert plan.compute_dtype == np.float64 and not plan.half_precision and not plan.sparse
    assert plan.preconditioner == "standardize" == model.preconditioner_
    assert plan.average_start == plan.n_train  # from the second epoch on
    assert plan.step_scaling
    assert isinstance(plan.engine, ArrayApiEngine) and plan.engine_note is None


def test_an_explicit_batch_keeps_scikit_learns_plain_steps(plans, data):
    X, y = data
    GPUSGDClassifier(batch_size=32, random_state=0, max_iter=2).fit(X, y)
    (plan,) = plans
    assert plan.batch_size == 32
    assert plan.preconditioner is None and plan.average_start == 0


def test_a_csr_fit_is_neither_standardised_nor_averaged(plans, data):
    X, y = data
    GPUSGDClassifier(random_state=0, max_iter=2).fit(sp.csr_matrix(X * (X > 1)), y)
    (plan,) = plans
    assert plan.sparse and plan.preconditioner is None and plan.average_start == 0
    assert isinstance(plan.engine, ArrayApiEngine)


def test_half_precision_computes_in_float32(plans, data):
    X, y = data
    GPUSGDRegressor(multi_precision=True, random_state=0, max_iter=2).fit(
        X.astype(np.float16), y.astype(float)
    )
    (plan,) = plans
    assert plan.half_precision and plan.compute_dtype == np.float32


def test_data_beyond_the_device_budget_streams_in_whole_batches(plans, data):
    X, y = data
    budget = X.nbytes // 3
    GPUSGDClassifier(max_device_memory=budget, random_state=0, max_iter=2).fit(X, y)
    (plan,) = plans
    assert plan.chunk_rows is not None and plan.chunk_rows % plan.batch_size == 0
    assert plan.chunk_rows < plan.n_train
    assert plan.data_namespace is np and isinstance(plan.engine, StreamingEngine)


def test_a_partial_fit_stream_keeps_its_first_decisions(plans, data):
    X, y = data
    model = GPUSGDClassifier(random_state=0)
    model.partial_fit(X[:1000], y[:1000], classes=[0, 1])
    model.partial_fit(sp.csr_matrix(X[1000:1200]), y[1000:1200])
    first, second = plans
    assert not first.continuing and second.continuing
    assert second.batch_size == first.batch_size == model.batch_size_
    assert second.preconditioner == first.preconditioner == model.preconditioner_
    assert second.average_start == first.average_start


def test_early_stopping_holds_out_its_fraction(plans, data):
    X, y = data
    GPUSGDClassifier(early_stopping=True, validation_fraction=0.15, random_state=0).fit(X, y)
    (plan,) = plans
    assert plan.n_train == 2000 - int(np.ceil(0.15 * 2000))


def test_input_that_asks_for_the_kernels_gets_them_with_a_fallback(plans, data, monkeypatch):
    X, y = data
    monkeypatch.setenv(driver.ENV_EMULATE, "1")
    GPUSGDClassifier(batch_size=64, random_state=0, max_iter=2).fit(X, y)
    (plan,) = plans
    assert isinstance(plan.engine, driver.CudaEngine)
    assert isinstance(plan.engine.fallback, ArrayApiEngine)
