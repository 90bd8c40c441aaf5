"""Export a fitted model as scikit-learn's own ``SGDClassifier`` / ``SGDRegressor``.

The exported estimator holds NumPy weights only, so it serves where neither
this package nor CuPy is installed, and it goes wherever scikit-learn models
go: pickle, skops, ONNX (skl2onnx), model registries.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.utils.validation import check_is_fitted

from ._backend import to_namespace

# Fitted attributes copied as they are (after moving them to the host).
_ARRAY_ATTRIBUTES = ("coef_", "intercept_", "classes_", "feature_names_in_")
_SCALAR_ATTRIBUTES = ("n_features_in_", "t_", "n_iter_")


def to_sklearn(estimator):
    """A fitted scikit-learn SGD estimator with ``estimator``'s weights.

    Parameters
    ----------
    estimator : GPUSGDClassifier or GPUSGDRegressor
        A fitted model, trained on any device and namespace.

    Returns
    -------
    sklearn.linear_model.SGDClassifier or sklearn.linear_model.SGDRegressor
        (``LogisticRegression`` for ``multi_class='multinomial'``, whose
        softmax probabilities it shares). Every constructor parameter
        scikit-learn knows is copied (the
        minibatch and optimizer parameters it has no equivalent for are
        dropped); the fitted attributes are NumPy arrays, so ``predict``,
        ``decision_function`` and ``predict_proba`` give this model's values.
    """
    check_is_fitted(estimator)
    if estimator._multinomial:
        return _to_logistic_regression(estimator)
    target = SGDClassifier if estimator._is_classifier_estimator else SGDRegressor
    ours = estimator.get_params(deep=False)
    # set_params, not the constructor: scikit-learn validates them only in fit,
    # so a schedule an older scikit-learn lacks ('pa1') still exports
    exported = target()
    known = target().get_params(deep=False)
    exported.set_params(**{name: ours[name] for name in known if name in ours})
    for name in _ARRAY_ATTRIBUTES:
        if hasattr(estimator, name):
            setattr(exported, name, _host_copy(getattr(estimator, name)))
    for name in _SCALAR_ATTRIBUTES:
        if hasattr(estimator, name):
            setattr(exported, name, getattr(estimator, name))
    return exported


def _to_logistic_regression(estimator):
    """A softmax model has no SGDClassifier counterpart: LogisticRegression predicts alike."""
    from sklearn.linear_model import LogisticRegression

    exported = LogisticRegression(fit_intercept=estimator.fit_intercept)
    for name in _ARRAY_ATTRIBUTES:
        if hasattr(estimator, name):
            setattr(exported, name, _host_copy(getattr(estimator, name)))
    exported.n_features_in_ = estimator.n_features_in_
    exported.n_iter_ = np.asarray([estimator.n_iter_])
    return exported


def _host_copy(array):
    """A NumPy copy of ``array`` (CuPy, torch or any array-API array)."""
    return np.array(to_namespace(array, np), copy=True)
