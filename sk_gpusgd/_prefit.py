"""Models a batched search trained ahead of scikit-learn's calls to ``fit``.

:mod:`sk_gpusgd.model_selection` trains the candidates of a fold together, then lets
scikit-learn's own search fit and score every candidate as it always does. Each
model trained ahead is filed here under its parameters and a fingerprint of its
training data; a ``fit`` call with the same parameters on the same data (inside
the search, on the thread that runs it) takes the filed model instead of training
again. Anything that does not match trains as usual.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib

import numpy as np
import scipy.sparse as sp

_FILED: contextvars.ContextVar = contextvars.ContextVar("sk_gpusgd_prefit", default=None)

# rows of dense X that enter the fingerprint, besides its shape and the targets
_SAMPLED_ROWS = 16


def fingerprint(X, y, sample_weight) -> str | None:
    """A digest of the training data; None for data it does not know (no match)."""
    digest = hashlib.blake2b(digest_size=16)
    if sp.issparse(X):
        X = X.tocsr() if X.format != "csr" else X
        digest.update(repr((X.shape, str(X.dtype), X.nnz)).encode())
        digest.update(np.ascontiguousarray(X.indptr).tobytes())
        digest.update(np.ascontiguousarray(X.data[:4096]).tobytes())
        digest.update(np.ascontiguousarray(X.indices[:4096]).tobytes())
    else:
        if hasattr(X, "to_numpy"):
            X = X.to_numpy()
        if not isinstance(X, np.ndarray) or X.ndim != 2:
            return None
        digest.update(repr((X.shape, str(X.dtype))).encode())
        rows = np.unique(np.linspace(0, X.shape[0] - 1, _SAMPLED_ROWS).astype(int))
        digest.update(np.ascontiguousarray(X[rows]).tobytes())
    for values in (y, sample_weight):
        if values is None:
            digest.update(b"none")
            continue
        values = np.asarray(values)
        if values.dtype == object:
            values = values.astype(str)
        digest.update(repr((values.shape, str(values.dtype))).encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def parameters_key(estimator) -> str:
    """The estimator's class and parameters, as a key."""
    params = estimator.get_params(deep=False)
    return f"{type(estimator).__qualname__}{sorted(params.items())!r}"


@contextlib.contextmanager
def filed(models: dict):
    """Within the block, ``fit`` calls take the models of ``models`` that match."""
    token = _FILED.set(models)
    try:
        yield models
    finally:
        _FILED.reset(token)


def file_model(models: dict, fitted, X, y, sample_weight) -> None:
    """File a fitted model under its parameters and its training data."""
    print_key = fingerprint(X, y, sample_weight)
    if print_key is not None:
        models.setdefault((parameters_key(fitted), print_key), []).append(fitted)


def take(estimator, X, y, sample_weight):
    """The filed model that ``estimator.fit(X, y, sample_weight)`` would train, or None."""
    models = _FILED.get()
    if not models:
        return None
    try:
        print_key = fingerprint(X, y, sample_weight)
    except (TypeError, ValueError):
        return None
    if print_key is None:
        return None
    found = models.get((parameters_key(estimator), print_key))
    if not found:
        return None
    return found.pop()
