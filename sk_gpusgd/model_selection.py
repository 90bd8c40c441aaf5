"""Hyper-parameter searches that train the candidates of a fold together.

:class:`GridSearchCV` and :class:`RandomizedSearchCV` are scikit-learn's, with the
same constructor, attributes, scoring, refit, ``error_score``, ``groups`` and
metadata routing: they subclass scikit-learn's classes and run scikit-learn's own
``fit``. What changes is how the candidates' models are trained when the estimator
is a :class:`~sk_gpusgd.GPUSGDClassifier` / :class:`~sk_gpusgd.GPUSGDRegressor`, or a
:class:`~sklearn.pipeline.Pipeline` ending in one: before scikit-learn fits and
scores each (candidate, fold), the candidates that differ only in parameters that
change no row a step sees (``alpha``, ``l1_ratio``, ``penalty``, ``eta0``,
``power_t``, ``class_weight``, ``tol``, ``max_iter``, ``weight_decay``) are trained
on each fold together, as extra output columns of one fit. Each candidate's model
equals the one its own ``fit`` gives on that fold; scikit-learn's ``fit`` call for
it then takes that model instead of training again, and scores it as usual. See
:ref:`model_selection`.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn import model_selection as _sklearn
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils import indexable
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.validation import _check_method_params

from ._base import BaseSGD
from ._prefit import file_model, filed
from ._search import fit_group, group_candidates

__all__ = ["GridSearchCV", "RandomizedSearchCV"]

# the group's weights and their optimizer state (coef, buffers, average, L1, gradient,
# the batch's decisions): a group with more columns is split in several
_GROUP_MEMORY = 2**30
_ARRAYS_PER_COLUMN = 8


class _FixedSplits:
    """The splits the batched training used, given to scikit-learn's evaluation as they are."""

    def __init__(self, splits):
        self.splits = splits

    def split(self, X=None, y=None, groups=None, **params):
        yield from self.splits

    def get_n_splits(self, X=None, y=None, groups=None, **params):
        return len(self.splits)


def _final_estimator(estimator):
    """``(estimator this package trains, its parameters' prefix)`` or ``(None, None)``."""
    if isinstance(estimator, BaseSGD):
        return estimator, ""
    if isinstance(estimator, Pipeline) and estimator.steps:
        name, last = estimator.steps[-1]
        if isinstance(last, BaseSGD):
            return last, f"{name}__"
    return None, None


class _BatchedSearch:
    """What both searches add to scikit-learn's: the batched training of each fold."""

    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters (scikit-learn's ``fit``).

        The candidates' models are trained fold by fold, those of a group together
        (see :ref:`model_selection`); fitting and scoring then proceed as in
        scikit-learn, which takes the trained models.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training vectors.
        y : array-like of shape (n_samples,), default=None
            Targets.
        **params : dict
            Parameters of the estimator's ``fit``, the scorer and the splitter.

        Returns
        -------
        self : object
            The fitted search.
        """
        final, _ = _final_estimator(self.estimator)
        if final is None:
            return super().fit(X, y, **params)
        n_jobs = self.n_jobs
        self._batched_inputs = (X, y, params)
        self.search_groups_ = []
        try:
            # the trained models are handed over in this process
            self.n_jobs = None
            return super().fit(X, y, **params)
        finally:
            self.n_jobs = n_jobs
            del self._batched_inputs

    def _run_search(self, evaluate_candidates, callback_ctx=None):
        # scikit-learn >= 1.9 passes its callback context, earlier versions do not
        options = {} if callback_ctx is None else {"callback_ctx": callback_ctx}
        inputs = getattr(self, "_batched_inputs", None)
        if inputs is None:
            return super()._run_search(evaluate_candidates, **options)

        def batched(candidate_params, cv=None, more_results=None, **options):
            candidate_params = list(candidate_params)
            X, y, params = inputs
            X, y = indexable(X, y)
            params = _check_method_params(X, params=params)
            routed = self._get_routed_params_for_fit(params)
            cv = cv or self._checked_cv_orig
            splits = list(cv.split(X, y, **routed.splitter.split))
            models = {}
            self._train_batched(candidate_params, splits, X, y, routed.estimator.fit, models)
            with filed(models):
                return evaluate_candidates(
                    candidate_params, cv=_FixedSplits(splits), more_results=more_results,
                    **options,
                )  # fmt: skip

        return super()._run_search(batched, **options)

    def _train_batched(self, candidate_params, splits, X, y, fit_params, models):
        """Train the groups of candidates on every split; file their models."""
        final, prefix = _final_estimator(self.estimator)
        weight_name = "sample_weight" if not prefix else None
        if set(fit_params) - {weight_name}:
            return  # other fit parameters: scikit-learn fits every candidate itself
        # candidates by the parameters outside the final estimator (a pipeline's steps)
        outer: dict = {}
        for index, parameters in enumerate(candidate_params):
            own, rest = {}, {}
            for name, value in parameters.items():
                inner = name[len(prefix) :] if name.startswith(prefix) else None
                if inner is not None and "__" not in inner:
                    own[inner] = value
                else:
                    rest[name] = value
            outer.setdefault(repr(sorted(rest.items())), (rest, []))[1].append((index, own))
        for rest, members in outer.values():
            estimator = clone(self.estimator).set_params(**rest)
            final, _ = _final_estimator(estimator)
            if final is None or len(members) < 2:
                continue
            for train, _test in splits:
                X_train, y_train = _safe_split(estimator, X, y, train)
                weights = None
                if fit_params:
                    routed = _check_method_params(X, params=fit_params, indices=train)
                    weights = routed.get("sample_weight")
                started = time.perf_counter()
                X_final = X_train
                if prefix:
                    X_final = clone(estimator)[:-1].fit_transform(X_train, y_train)
                own = [parameters for _, parameters in members]
                for group in _memory_groups(group_candidates(final, own, X_final), X_final):
                    if len(group) < 2:
                        continue
                    fitted = fit_group(final, [own[i] for i in group], X_final, y_train, weights)
                    if fitted is None:
                        continue
                    for model in fitted:
                        file_model(models, model, X_final, y_train, weights)
                    self.search_groups_.append(
                        {
                            "candidates": [members[i][0] for i in group],
                            "n_train": int(X_final.shape[0]),
                            "train_time": time.perf_counter() - started,
                        }
                    )
                    started = time.perf_counter()


def _memory_groups(groups, X):
    """Split groups whose columns would take more than the group memory budget."""
    n_features = max(int(X.shape[1]), 1)
    most = max(1, _GROUP_MEMORY // (n_features * _ARRAYS_PER_COLUMN * np.dtype("float64").itemsize))
    return [group[start : start + most] for group in groups for start in range(0, len(group), most)]


class GridSearchCV(_BatchedSearch, _sklearn.GridSearchCV):
    __doc__ = (
        "scikit-learn's :class:`~sklearn.model_selection.GridSearchCV`, with the\n"
        "candidates of each fold trained together (see :mod:`sk_gpusgd.model_selection`).\n\n"
        "Besides scikit-learn's attributes, ``search_groups_`` lists the groups trained\n"
        "together: their candidates' indices, training rows and time.\n"
    )


class RandomizedSearchCV(_BatchedSearch, _sklearn.RandomizedSearchCV):
    __doc__ = (
        "scikit-learn's :class:`~sklearn.model_selection.RandomizedSearchCV`, with the\n"
        "candidates of each fold trained together (see :mod:`sk_gpusgd.model_selection`).\n\n"
        "Besides scikit-learn's attributes, ``search_groups_`` lists the groups trained\n"
        "together: their candidates' indices, training rows and time.\n"
    )
