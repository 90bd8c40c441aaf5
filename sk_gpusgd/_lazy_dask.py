"""Recognising Dask input without importing Dask, and handing it over.

A Dask collection can only exist once Dask was imported, so the checks look in
``sys.modules`` first: importing sk_gpusgd, or fitting NumPy data, never
imports Dask.
"""

from __future__ import annotations

import functools
import sys


def is_dask_collection(value) -> bool:
    """True for a Dask array, DataFrame or Series (never imports Dask)."""
    if value is None or "dask" not in sys.modules:
        return False
    return sys.modules["dask"].is_dask_collection(value)


def is_dask_input(*values) -> bool:
    """True when any of ``values`` is a Dask collection."""
    return any(is_dask_collection(value) for value in values)


def chunkwise_on_dask(method):
    """Run ``method`` block by block, lazily, when ``X`` is a Dask collection.

    The wrapped method keeps its behaviour on every other input; on Dask input
    it returns a lazy Dask array built with ``map_blocks`` (``score`` returns
    the float, computed where the blocks live).
    """

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if is_dask_input(X, *args, *kwargs.values()):
            from ._dask import dask_method

            return dask_method(self, method.__name__, X, *args, **kwargs)
        return method(self, X, *args, **kwargs)

    return wrapper
