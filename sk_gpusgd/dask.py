"""Data-parallel training on a dask.distributed cluster.

``GPUSGDClassifier.fit(X, y)`` and ``GPUSGDRegressor.fit(X, y)`` with Dask
arrays, DataFrames or Series train on the cluster of the current
``distributed.Client``: every row block trains a copy of the model where it
lives (NumPy blocks on CPU workers, CuPy blocks, or any block on a GPU worker,
on that worker's GPU), and the copies are averaged, weighted by rows trained,
after every local epoch. :func:`fit` and :func:`partial_fit` choose another
synchronisation interval or client. Prediction on Dask input is lazy and block
by block. See the user guide (``docs/user_guide/dask.rst``) for the rules.

Importing this module does not import Dask; fitting on Dask input does.
"""

from __future__ import annotations

from ._dask import SYNC_EPOCH, DaskOptions, dask_options

__all__ = ["fit", "partial_fit", "score"]


def fit(estimator, X, y, *, sync_every=SYNC_EPOCH, client=None, **fit_params):
    """Fit ``estimator`` on Dask collections, averaging the workers' models every interval.

    Parameters
    ----------
    estimator : GPUSGDClassifier or GPUSGDRegressor
        The estimator to fit (in place).
    X : dask array or dask DataFrame of shape (n_samples, n_features)
        Training data; its row blocks are the units of parallel work.
    y : dask array or dask Series of shape (n_samples,)
        Targets, with the row blocks of ``X`` (rechunked to them otherwise).
    sync_every : 'epoch' or int, default='epoch'
        'epoch': every block trains one local epoch over its rows per round.
        An int ``k``: every block trains ``k`` optimizer steps (``k *
        batch_size`` rows of its own shuffled sequence) per round, so the
        models are averaged more often; about ``rows per block / (k *
        batch_size)`` rounds make one epoch of the stopping rule.
    client : distributed.Client, optional
        The client whose cluster trains; the default client when None.
    **fit_params
        Passed to ``estimator.fit`` (``sample_weight``, ``coef_init``,
        ``intercept_init``).

    Returns
    -------
    estimator
        The fitted estimator.
    """
    with dask_options(DaskOptions(sync_every=sync_every, client=client)):
        return estimator.fit(X, y, **fit_params)


def partial_fit(estimator, X, y, *, sync_every=SYNC_EPOCH, client=None, **fit_params):
    """One epoch of ``estimator.partial_fit`` on Dask collections (see :func:`fit`).

    Parameters
    ----------
    estimator : GPUSGDClassifier or GPUSGDRegressor
        The estimator to update (in place).
    X : dask array or dask DataFrame of shape (n_samples, n_features)
        Training data.
    y : dask array or dask Series of shape (n_samples,)
        Targets.
    sync_every : 'epoch' or int, default='epoch'
        As in :func:`fit`.
    client : distributed.Client, optional
        The client whose cluster trains; the default client when None.
    **fit_params
        Passed to ``estimator.partial_fit`` (``classes``, ``sample_weight``).

    Returns
    -------
    estimator
        The updated estimator.
    """
    with dask_options(DaskOptions(sync_every=sync_every, client=client)):
        return estimator.partial_fit(X, y, **fit_params)


def score(estimator, X, y, sample_weight=None):
    """Accuracy (classifier) or R^2 (regressor) of a fitted model on Dask collections.

    Reduced on the cluster, chunk by chunk: only two numbers reach the client.
    ``estimator.score`` itself is scikit-learn's own (so that tools such as
    dask-ml's ``Incremental`` recognise it and use their chunk-wise scorers); on
    Dask collections it would bring the predictions and ``y`` to the client.

    Parameters
    ----------
    estimator : GPUSGDClassifier or GPUSGDRegressor
        A fitted model.
    X : dask.array.Array or dask.dataframe.DataFrame
        Samples.
    y : dask.array.Array, dask.dataframe.Series or array-like
        True labels or targets.
    sample_weight : dask.array.Array or array-like, optional
        Sample weights.

    Returns
    -------
    float
    """
    from ._dask import _score

    return _score(estimator, X, y, sample_weight)
