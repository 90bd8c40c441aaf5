"""GPUSGDRegressor: the shared SGD core with numeric targets."""

from __future__ import annotations

from sklearn.base import RegressorMixin, _fit_context
from sklearn.model_selection import ShuffleSplit
from sklearn.utils._param_validation import StrOptions

from ._backend import namespace_of, to_namespace
from ._base import DEFAULT_BATCH_SIZE, BaseSGD
from ._core.losses import LOSS_FUNCTIONS, REGRESSION_LOSSES
from ._lazy_dask import chunkwise_on_dask
from ._validation import check_in_float32_range


class GPUSGDRegressor(RegressorMixin, BaseSGD):
    """Linear regression trained by minibatch SGD, on the GPU or the CPU.

    A drop-in replacement for :class:`sklearn.linear_model.SGDRegressor`: every
    parameter of scikit-learn's has the same name, default and meaning, plus
    the minibatch and optimizer parameters documented in
    :class:`GPUSGDClassifier` (``batch_size``, ``momentum``, ``dampening``,
    ``nesterov``, ``momentum_form``, ``weight_decay``,
    ``decoupled_weight_decay``, ``clip_value``, ``clip_norm``,
    ``multi_precision``, ``scale_learning_rate``, ``preconditioner``,
    ``device``), with the same step order.

    Parameters
    ----------
    loss : {'squared_error', 'huber', 'epsilon_insensitive', \
            'squared_epsilon_insensitive'}, default='squared_error'
        The loss; 'squared_error' is ``(p - y)^2 / 2``.
    penalty : {'l2', 'l1', 'elasticnet'} or None, default='l2'
        Regularisation (coupled L2; cumulative truncated L1).
    alpha : float, default=0.0001
        Strength of the penalty.
    l1_ratio : float, default=0.15
        Elastic-net mixing.
    fit_intercept : bool, default=True
        Learn an intercept (unpenalised).
    max_iter : int, default=1000
        Maximum number of epochs of ``fit``.
    tol : float or None, default=1e-3
        Stop when the epoch objective (scikit-learn's: the mean unweighted
        loss plus the penalty of the weights each row met) does not improve by
        ``tol`` for ``n_iter_no_change`` epochs; None disables it.
    shuffle : bool, default=True
        Reshuffle the rows before every epoch.
    verbose : int, default=0
        0 prints nothing. 1 prints a line per epoch (the epoch out of
        ``max_iter``, mean loss, the objective the stopping rule watches,
        samples per second, time elapsed) and a summary at the end (epochs,
        total time, device, batch size). 2 adds, per epoch, the norm and the
        non-zeros of the weights, the learning rate and the steps taken.
    epsilon : float, default=0.1
        Width of the 'huber' and epsilon-insensitive losses.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling and the validation split.
    learning_rate : {'invscaling', 'constant', 'optimal', 'adaptive', \
            'pa1', 'pa2'}, default='invscaling'
        Schedule, scikit-learn's, with its clock ``t``: samples seen plus one.
        'pa1'/'pa2' need loss='epsilon_insensitive'.
    eta0 : float, default=0.01
        Initial learning rate.
    power_t : float, default=0.25
        Exponent of 'invscaling'.

        .. deprecated:: 1.8 (scikit-learn)
            Negative values warn (FutureWarning) in ``fit``, as scikit-learn 1.8+
            does; scikit-learn will reject them from 1.10.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows and stop when their R^2
        stops improving by ``tol``.
    validation_fraction : float, default=0.1
        Share of the rows held out by ``early_stopping``.
    n_iter_no_change : int, default=5
        Epochs without improvement before stopping.
    warm_start : bool, default=False
        Start ``fit`` from the previous solution and momentum buffers.
    average : bool or int, default=False
        Averaged SGD from ``average`` samples on.
    batch_size : int or 'auto', default='auto'
        Rows per optimizer step (see :class:`GPUSGDClassifier`).
    momentum, dampening, nesterov, momentum_form, weight_decay, \
decoupled_weight_decay, clip_value, clip_norm, multi_precision, \
scale_learning_rate, preconditioner, device
        As in :class:`GPUSGDClassifier`.
    max_device_memory : int or None, default=None
        Device bytes a fit may use for its data; larger NumPy / SciPy data
        streams through the device in chunks (see :class:`GPUSGDClassifier`).
        None: no cap.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Weights, in the namespace of the data given to ``fit``.
    intercept_ : ndarray of shape (1,)
        Intercept.
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    t_ : float
        Samples seen plus one (scikit-learn's ``t_``).
    batch_size_ : int
        The batch size the last fit used.
    preconditioner_ : {'standardize'} or None
        The preconditioner the last fit used.
    loss_curve_ : list of float
        Mean training loss of every epoch.
    device_ : str
        Where the training ran.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names, when ``X`` had string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_gpusgd import GPUSGDRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), GPUSGDRegressor(random_state=0))
    >>> model.fit(X, y).score(X, y) > 0.45
    True
    """

    _parameter_constraints: dict = {
        **BaseSGD._parameter_constraints,
        "loss": [StrOptions(set(REGRESSION_LOSSES))],
    }
    # scikit-learn's attribute: the losses by name, with their class and arguments
    loss_functions = {name: LOSS_FUNCTIONS[name] for name in REGRESSION_LOSSES}
    _is_classifier_estimator = False
    _coef_is_vector = True
    _passive_aggressive_loss = "epsilon_insensitive"

    def __init__(
        self,
        loss="squared_error",
        *,
        penalty="l2",
        alpha=0.0001,
        l1_ratio=0.15,
        fit_intercept=True,
        max_iter=1000,
        tol=1e-3,
        shuffle=True,
        verbose=0,
        epsilon=0.1,
        random_state=None,
        learning_rate="invscaling",
        eta0=0.01,
        power_t=0.25,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        warm_start=False,
        average=False,
        batch_size=DEFAULT_BATCH_SIZE,
        momentum=0.0,
        dampening=0.0,
        nesterov=False,
        momentum_form="buffer",
        weight_decay=0.0,
        decoupled_weight_decay=False,
        clip_value=None,
        clip_norm=None,
        multi_precision=True,
        scale_learning_rate=True,
        preconditioner="auto",
        device="auto",
        max_device_memory=None,
    ):
        self._store_parameters(locals())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Fit the model by minibatch SGD.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, as for :class:`GPUSGDClassifier` (Dask collections
            train on the dask.distributed cluster, see :mod:`sk_gpusgd.dask`).
        y : array-like of shape (n_samples,)
            Numeric targets.
        coef_init : array of shape (n_features,), optional
            Initial coefficients.
        intercept_init : array of shape (1,), optional
            Initial intercept.
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights.

        Returns
        -------
        self : GPUSGDRegressor
            The fitted estimator.
        """
        self._more_validate_params()
        return self._fit(
            X,
            y,
            coef_init=coef_init,
            intercept_init=intercept_init,
            sample_weight=sample_weight,
            classes=None,
            partial=False,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Run one epoch of SGD over ``(X, y)``, continuing the previous state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A chunk of training data.
        y : array-like of shape (n_samples,)
            Its targets.
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights.

        Returns
        -------
        self : GPUSGDRegressor
            The updated estimator.
        """
        self._more_validate_params(for_partial_fit=True)
        return self._fit(
            X,
            y,
            coef_init=None,
            intercept_init=None,
            sample_weight=sample_weight,
            classes=None,
            partial=True,
        )

    def _encode_targets(self, y, xp, dtype, classes, partial, like):
        name = getattr(dtype, "__name__", str(dtype)).rsplit(".", 1)[-1]
        check_in_float32_range(y, name, "y")
        targets = xp.astype(to_namespace(y, xp, like), dtype)
        return targets[:, None], None, None

    def _coef_from_weights(self, coef, intercept):
        xp = namespace_of(coef)
        return xp.asarray(coef[:, 0], copy=True), xp.asarray(intercept, copy=True)

    def _validation_splitter(self):
        return ShuffleSplit(test_size=self.validation_fraction, random_state=self.random_state)

    @staticmethod
    def _validation_score(xp, decision, targets, sample_weight):
        """R^2 of the decision."""
        return _r2(xp, decision[:, 0], targets[:, 0], sample_weight)

    @chunkwise_on_dask
    def predict(self, X):
        """Predict the target of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : array of shape (n_samples,)
            In the namespace of ``X``.
        """
        decision, _ = self._decision(X, "predict")
        return decision[:, 0]


def _r2(xp, predicted, target, sample_weight):
    if sample_weight is None:
        sample_weight = xp.ones_like(target)
    total = xp.sum(sample_weight)
    mean = xp.sum(sample_weight * target) / total
    residual = xp.sum(sample_weight * (target - predicted) ** 2)
    spread = xp.sum(sample_weight * (target - mean) ** 2)
    if float(spread) == 0.0:
        return 1.0 if float(residual) == 0.0 else 0.0
    return float(1.0 - residual / spread)
