"""GPUSGDClassifier: labels, class weights, decision_function, predict_proba."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
)

from ._backend import dtype_name, is_device_array, namespace_of, to_namespace
from ._base import DEFAULT_BATCH_SIZE, BaseSGD, _device_of
from ._core.losses import CLASSIFICATION_LOSSES, LOSS_FUNCTIONS, REGRESSION_LOSSES
from ._lazy_dask import chunkwise_on_dask


def _sigmoid(xp, values):
    """1 / (1 + exp(-x)) without overflow."""
    e = xp.exp(-xp.abs(values))
    return xp.where(values >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check_proba(estimator) -> bool:
    if estimator.loss not in ("log_loss", "modified_huber"):
        raise AttributeError(f"probability estimates are not available for loss={estimator.loss!r}")
    return True


class GPUSGDClassifier(ClassifierMixin, BaseSGD):
    """Linear classifiers (SVM, logistic regression, ...) trained by minibatch SGD.

    A drop-in replacement for :class:`sklearn.linear_model.SGDClassifier`: every
    parameter of scikit-learn's has the same name, default and meaning. The
    model is trained on minibatches of ``batch_size`` rows, on the GPU (CuPy)
    when the data or ``device`` says so and on the CPU (NumPy) otherwise, and
    adds the deep-learning optimizer variants of PyTorch, MXNet and Keras.
    Multiclass problems are one-vs-rest, with every class trained at once: one
    matrix product per batch serves all classes.

    Each step takes the batch-mean gradient of the loss, scaled per sample by
    ``sample_weight`` and ``class_weight``; in order, a step (1) clips that
    gradient (``clip_norm`` or ``clip_value``), (2) adds coupled L2 (``alpha``
    with ``penalty='l2'``/``'elasticnet'``, and ``weight_decay`` unless
    ``decoupled_weight_decay``), (3) applies decoupled weight decay
    ``w -= lr * weight_decay * w`` when ``decoupled_weight_decay=True``,
    (4) applies momentum / Nesterov and the step, (5) applies L1 by the
    cumulative truncated penalty. The intercept follows steps 1 and 4 only.

    Parameters
    ----------
    loss : {'hinge', 'log_loss', 'modified_huber', 'squared_hinge', \
            'perceptron', 'squared_error', 'huber', 'epsilon_insensitive', \
            'squared_epsilon_insensitive'}, default='hinge'
        The loss. 'hinge' is a linear SVM, 'log_loss' logistic regression,
        'modified_huber' a smooth hinge that also gives probabilities. The
        regression losses are fitted to the +1/-1 encoded labels.
    penalty : {'l2', 'l1', 'elasticnet'} or None, default='l2'
        Regularisation. 'l2' is coupled L2 (added to the gradient before
        momentum, like PyTorch's ``weight_decay``); 'l1' and 'elasticnet' use
        the cumulative truncated L1 penalty (Tsuruoka et al. 2009).
    alpha : float, default=0.0001
        Strength of the penalty; also sets the 'optimal' learning rate.
    l1_ratio : float, default=0.15
        Elastic-net mixing, 0 <= l1_ratio <= 1; used with 'elasticnet'.
    fit_intercept : bool, default=True
        Learn an intercept (unpenalised).
    max_iter : int, default=1000
        Maximum number of epochs of ``fit``.
    tol : float or None, default=1e-3
        Stopping rule, scikit-learn's: an epoch makes no progress when its
        objective (the mean unweighted loss plus the penalty of the weights
        each row met) is above the best so far minus ``tol``; after
        ``n_iter_no_change`` such epochs the fit stops. Each one-vs-rest
        problem stops on its own, as in scikit-learn (its weights then stay as
        they were), and ``n_iter_`` is the largest epoch count. With
        ``batch_size=1`` and ``shuffle=False`` the fit stops at scikit-learn's
        epoch. None disables the rule.
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
    n_jobs : int or None, default=None
        Accepted for compatibility; all classes already train together in one
        matrix product, so there is nothing to parallelise over.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling and the validation split.
    learning_rate : {'optimal', 'constant', 'invscaling', 'adaptive', \
            'pa1', 'pa2'}, default='optimal'
        Schedule, as scikit-learn's, with scikit-learn's clock ``t``: the
        number of samples seen, plus one. 'constant' ``eta0``; 'optimal'
        ``1 / (alpha (t0 + t - 1))``; 'invscaling' ``eta0 / t**power_t``;
        'adaptive' ``eta0``, divided by 5 after ``n_iter_no_change`` epochs
        without improvement (per one-vs-rest problem); 'pa1'/'pa2' the
        passive-aggressive steps (loss='hinge' only). These are per-sample
        rates; see ``scale_learning_rate`` for how a batch uses them.
    eta0 : float, default=0.01
        Initial learning rate ('constant', 'invscaling', 'adaptive'), or the
        aggressiveness of 'pa1'/'pa2'.
    power_t : float, default=0.5
        Exponent of 'invscaling'.

        .. deprecated:: 1.8 (scikit-learn)
            Negative values warn (FutureWarning) in ``fit``, as scikit-learn 1.8+
            does; scikit-learn will reject them from 1.10.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified) and stop when
        the validation accuracy stops improving by ``tol``.
    validation_fraction : float, default=0.1
        Share of the rows held out by ``early_stopping``.
    n_iter_no_change : int, default=5
        Epochs without improvement before stopping.
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, multiplied into each sample's gradient; in the
        one-vs-rest problem of class k, class k's rows get weight
        ``class_weight[k]`` and the other rows weight 1 (as scikit-learn).
    warm_start : bool, default=False
        Start ``fit`` from the previous solution, and keep its momentum buffers.
    average : bool or int, default=False
        Averaged SGD: ``coef_`` is the running mean of the weights once
        ``average`` samples have been seen (True means from the start).
    batch_size : int or 'auto', default='auto'
        Rows per optimizer step. 'auto' picks ``batch_size_`` for each fit,
        between 1 and ``n_samples // 16`` (an epoch keeps at least 16 steps).
        On a CPU, where the compiled epoch runs the whole fit, it is the
        data's critical batch size ``beta / lam`` (mean squared row norm over
        the largest eigenvalue of ``E[x x^T]``: past it a larger batch does no
        more work per step), at least 16 rows for dense X and at most 256.
        Where the fit runs in NumPy instead (momentum, gradient clipping, the
        multinomial loss, half-precision X) it is 256, and 2048 on a GPU:
        rows that amortise a step's fixed cost. When it picks more than one
        row, X is dense and ``average`` is False, the model is also the
        running mean of the iterates from the second epoch on (averaged SGD,
        Polyak and Juditsky 1992): batch steps stay at their largest stable
        size for many epochs, where the last iterate keeps oscillating.
        ``batch_size=1`` reproduces scikit-learn's per-sample updates step for
        step.
    momentum : float, default=0.0
        Momentum factor, 0 <= momentum < 1.
    dampening : float, default=0.0
        PyTorch's dampening of the momentum buffer (not with Nesterov).
    nesterov : bool, default=False
        Nesterov momentum; needs momentum > 0 and dampening 0.
    momentum_form : {'buffer', 'velocity'}, default='buffer'
        'buffer' is PyTorch's: ``b = mu b + (1 - dampening) g`` with ``b`` the
        first gradient at the first step, then ``w -= lr b`` (or
        ``w -= lr (g + mu b)`` with Nesterov). 'velocity' is MXNet's, Keras' and
        PuzzleLib's: ``v = mu v - lr g`` from ``v = 0``, then ``w += v`` (or
        ``w += mu v - lr g``). The two agree while the learning rate is
        constant; when it changes, 'buffer' rescales the whole history by the
        new rate while 'velocity' keeps the old rates inside ``v``.
    weight_decay : float, default=0.0
        Weight decay of the coefficients (never the intercept). Coupled by
        default: ``weight_decay * w`` is added to the clipped gradient before
        momentum, exactly PyTorch's / MXNet's ``weight_decay`` (and adds to
        ``alpha`` of ``penalty='l2'``).
    decoupled_weight_decay : bool, default=False
        Make ``weight_decay`` decoupled (Keras ``weight_decay``, SGDW):
        ``w -= lr * weight_decay * w`` before the step, outside momentum.
    clip_value : float or None, default=None
        Clip every component of the loss gradient to ``[-clip_value,
        clip_value]`` (MXNet ``clip_gradient``, Keras ``clipvalue``), before
        weight decay.
    clip_norm : float or None, default=None
        Rescale the loss gradient of coefficients and intercept together so
        that its L2 norm is at most ``clip_norm`` (Keras ``global_clipnorm``),
        before weight decay.
    multi_precision : bool, default=True
        Dense float16 / bfloat16 ``X`` trains with float32 master weights and
        float32 optimizer state (MXNet's ``multi_precision``) without a float32
        copy of ``X`` (each batch is converted as it is used); decision values
        are computed in float32. False converts such ``X`` to float32 first.
        Sparse input is float32 or float64 (scipy and cupyx have no float16).
    multi_class : {'ovr', 'multinomial'}, default='ovr'
        'ovr' is scikit-learn's one-vs-rest: one binary problem per class,
        each stopping on its own, probabilities normalised across them.
        'multinomial' (with loss='log_loss' and more than two classes) trains
        one softmax model, multinomial logistic regression, over all classes
        with the same single product per batch; ``predict_proba`` is the
        softmax, its rows sum to one, and the stopping rule watches the total
        loss. With two classes both are the binary logistic model.
    scale_learning_rate : bool, default=True
        True: the schedule's rate is scikit-learn's per-sample rate, and a step
        over ``m`` rows takes ``m`` times it on the batch-mean gradient (the
        linear scaling rule, Goyal et al. 2017), capped at the largest step
        the batch's curvature allows, ``gain(m) / (c * beta)`` (Ma, Bassily and
        Belkin 2018; ``beta`` is the mean squared row norm, ``c`` the loss'
        curvature), and never below the per-sample rate. Larger batches then
        keep scikit-learn's progress per epoch. False: the rate multiplies the
        batch-mean gradient as in PyTorch, Keras and MXNet.
    preconditioner : {'auto', 'standardize'} or None, default='auto'
        'standardize' trains as if the features were standardised, with the
        same objective: internal weights ``v`` with the decision
        ``((x - mean) / std) @ v + c``, mapped back to ``coef_ = v / std``,
        ``intercept_ = c - mean @ coef_``, and the penalty kept on ``coef_``.
        Raw features of very different scales then train as well as scaled
        ones. 'auto' uses it for dense X when ``batch_size='auto'`` picks more
        than one row, and not otherwise (explicit batch sizes get plain SGD;
        sparse X is never centred). None: never.
    device : {'auto', 'cpu', 'cuda'}, default='auto'
        Where to train. 'auto' follows the data: CuPy input on its GPU; NumPy
        and scipy input on the GPU when CuPy and a device are present and the
        data holds at least 2**21 values (stored values for sparse X), else on
        the CPU, where a smaller fit is faster than the GPU's fixed start-up
        cost.
    max_device_memory : int or None, default=None
        Device bytes a fit may use for its data. NumPy / SciPy training data
        larger than this (or, on the GPU without a cap, than 80% of the free
        device memory) stays on the host and streams through the device in
        chunks: pinned host buffers, the copy of the next chunk overlapping the
        training on the current one. Each epoch still draws one permutation of
        all rows and the chunks hold whole batches, so on NumPy a streamed fit
        equals the in-memory fit (same batches in the same order; the epoch's
        mean loss is summed chunk by chunk, so it may differ in the last bits).
        On the GPU the streamed order is drawn on the host, while the
        in-memory fit draws it on the device: the two orders differ. The
        stopping rule is the whole-model rule described under ``tol``, applied
        once per epoch. On NumPy the cap only sets the chunk size (this is how
        the streaming path runs without a GPU); data already on the device is
        never streamed. None: no cap.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Weights, in the namespace of the data given to ``fit``.
    intercept_ : ndarray of shape (1,) or (n_classes,)
        Intercepts.
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    t_ : float
        Samples seen plus one (scikit-learn's ``t_``, the schedule's clock).
    batch_size_ : int
        The batch size the last fit used (``batch_size``, or the 'auto' choice).
    preconditioner_ : {'standardize'} or None
        The preconditioner the last fit used.
    loss_curve_ : list of float
        Mean training loss (summed over one-vs-rest columns) of every epoch.
    device_ : str
        Where the training ran: 'cpu', 'cuda:0', ...
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names, when ``X`` had string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_gpusgd import GPUSGDClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), GPUSGDClassifier(random_state=0))
    >>> model.fit(X, y).score(X, y) > 0.85
    True
    """

    _parameter_constraints: dict = {
        **BaseSGD._parameter_constraints,
        "loss": [StrOptions(set(CLASSIFICATION_LOSSES + REGRESSION_LOSSES))],
        "n_jobs": [Integral, None],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "multi_class": [StrOptions({"ovr", "multinomial"})],
    }
    # scikit-learn's attribute: the losses by name, with their class and arguments
    loss_functions = dict(LOSS_FUNCTIONS)
    _is_classifier_estimator = True
    _passive_aggressive_loss = "hinge"

    def __init__(
        self,
        loss="hinge",
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
        n_jobs=None,
        random_state=None,
        learning_rate="optimal",
        eta0=0.01,
        power_t=0.5,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        class_weight=None,
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
        multi_class="ovr",
        scale_learning_rate=True,
        preconditioner="auto",
        device="auto",
        max_device_memory=None,
    ):
        self._store_parameters(locals())

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Fit the model by minibatch SGD.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data: NumPy, pandas, scipy.sparse, CuPy, cupyx sparse,
            another array-API array, or a Dask array / DataFrame (trained on the
            dask.distributed cluster, see :mod:`sk_gpusgd.dask`).
        y : array-like of shape (n_samples,)
            Class labels.
        coef_init : array of shape (n_classes, n_features), optional
            Initial coefficients (``(1, n_features)`` or ``(n_features,)`` for
            two classes).
        intercept_init : array of shape (n_classes,), optional
            Initial intercepts.
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights, multiplied into each sample's gradient.

        Returns
        -------
        self : GPUSGDClassifier
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
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one epoch of SGD over ``(X, y)``, continuing the previous state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A chunk of training data.
        y : array-like of shape (n_samples,)
            Its labels.
        classes : array-like of shape (n_classes,), optional
            Every class of the stream; required on the first call.
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights.

        Returns
        -------
        self : GPUSGDClassifier
            The updated estimator.
        """
        self._more_validate_params(for_partial_fit=True)
        if self.class_weight == "balanced":
            # scikit-learn 1.9's words
            raise ValueError(
                "class_weight 'balanced' is not supported for partial_fit. In order "
                "to use 'balanced' weights, use compute_class_weight('balanced', "
                "classes=classes, y=y). In place of y you can use a large enough "
                "sample of the full training set target to properly estimate the "
                "class frequency distributions. Pass the resulting weights as the "
                "class_weight parameter."
            )
        return self._fit(
            X,
            y,
            coef_init=None,
            intercept_init=None,
            sample_weight=sample_weight,
            classes=classes,
            partial=True,
        )

    @property
    def _multinomial(self) -> bool:
        """A softmax model: multi_class='multinomial' with more than two classes."""
        classes = getattr(self, "classes_", None)
        return self.multi_class == "multinomial" and classes is not None and len(classes) > 2

    def _more_validate_params(self, for_partial_fit: bool = False) -> None:
        super()._more_validate_params(for_partial_fit)
        if self.multi_class == "multinomial" and self.loss != "log_loss":
            raise ValueError(
                "multi_class='multinomial' trains a softmax (multinomial logistic) model "
                f"and needs loss='log_loss'; got loss={self.loss!r}."
            )

    # ------------------------------------------------------- label handling
    def _encode_targets(self, y, xp, dtype, classes, partial, like):
        """+1/-1 one-vs-rest targets in ``xp``, and the class-weight vectors."""
        y_xp = namespace_of(y)
        if y_xp is np and y.dtype.kind == "V":
            raise ValueError(
                f"Unknown label type: y has the structured dtype {y.dtype}; class labels "
                "are numbers, strings or booleans, one per sample."
            )
        # a stream's later chunks: labels that are all in classes_ need no type check
        # (classes_ passed it); the check runs below only when some are not
        continuing = partial and hasattr(self, "classes_")
        if y_xp is np and not continuing:
            _check_label_type(y)
        elif y_xp is not np and dtype_name(y) == "bool":
            # device libraries cannot sort or search booleans: classes_ become 0 / 1
            y = y_xp.astype(y, y_xp.int64)
        if partial:
            if classes is not None and is_device_array(classes):
                classes = to_namespace(classes, np)
            if not (continuing and _same_classes(self.classes_, classes)):
                _check_partial_fit_first_call(self, classes)
        else:
            self.classes_ = _sorted_unique(y_xp, y)
        classes_in_y = to_namespace(self.classes_, y_xp, y) if _numeric(self.classes_) else None
        n_classes = int(self.classes_.shape[0])
        if n_classes < 2:
            raise ValueError(
                f"The number of classes has to be greater than one; got {n_classes} class"
            )
        try:
            if classes_in_y is None:
                indices = np.searchsorted(self.classes_, y)
                known = np.take(self.classes_, np.minimum(indices, n_classes - 1)) == y
            else:
                indices = y_xp.searchsorted(classes_in_y, y)
                clipped = y_xp.minimum(indices, n_classes - 1)
                known = y_xp.take(classes_in_y, clipped) == y
        except TypeError as error:  # e.g. dates against numeric classes_
            raise ValueError(
                f"y has labels of dtype {dtype_name(y)} that cannot be compared with "
                f"classes_ of dtype {dtype_name(self.classes_)}."
            ) from error
        if not bool(y_xp.all(known)):
            if y_xp is np and continuing:
                _check_label_type(y)
            unknown = np.setdiff1d(to_namespace(y, np), to_namespace(self.classes_, np))
            raise ValueError(
                f"y contains labels {unknown.tolist()} that are not in classes_ "
                f"{to_namespace(self.classes_, np).tolist()}."
            )
        indices = to_namespace(indices, xp, like)
        if n_classes == 2:
            is_positive = (indices == 1)[:, None]
        else:
            columns = xp.arange(n_classes, device=_device_of(xp, indices))
            is_positive = indices[:, None] == columns[None, :]
        targets = 2.0 * xp.astype(is_positive, dtype) - 1.0
        positive, negative = self._class_weight_vectors(y, n_classes)
        if positive is not None:
            positive = xp.astype(to_namespace(positive, xp, targets), dtype)
            negative = xp.astype(to_namespace(negative, xp, targets), dtype)
        return targets, positive, negative

    def _class_weight_vectors(self, y, n_classes):
        if self.class_weight is None:
            return None, None
        classes = to_namespace(self.classes_, np)
        weights = compute_class_weight(self.class_weight, classes=classes, y=to_namespace(y, np))
        if n_classes == 2:
            return np.asarray([weights[1]]), np.asarray([weights[0]])
        return weights, np.ones(n_classes)

    def _coef_from_weights(self, coef, intercept):
        xp = namespace_of(coef)
        return xp.asarray(coef.T, copy=True), xp.asarray(intercept, copy=True)

    def _validation_splitter(self):
        return StratifiedShuffleSplit(
            test_size=self.validation_fraction, random_state=self.random_state
        )

    def _validation_score(self, xp, decision, targets, sample_weight):
        """Validation accuracy of each one-vs-rest problem, as scikit-learn scores each.

        One value per output column: the weighted share of rows whose decision
        has the sign of their +1/-1 target (binary problems have one column).
        With the multinomial loss, one value for all columns: the accuracy of
        the predicted class.
        """
        if self._multinomial:
            correct = xp.argmax(decision, axis=1) == xp.argmax(targets, axis=1)
            return _accuracy(xp, xp.astype(correct, decision.dtype), sample_weight)
        correct = xp.astype((decision > 0) == (targets > 0), decision.dtype)
        if sample_weight is None:
            per_column = xp.mean(correct, axis=0)
        else:
            per_column = (sample_weight @ correct) / xp.sum(sample_weight)
        return np.asarray(to_namespace(per_column, np), dtype=np.float64)

    # ------------------------------------------------------------ predicting
    @chunkwise_on_dask
    def decision_function(self, X):
        """Signed distance to the hyperplane of each class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : array of shape (n_samples,) or (n_samples, n_classes)
            In the namespace of ``X``.
        """
        decision, _ = self._decision(X, "decision_function")
        if decision.shape[1] == 1:
            return decision[:, 0]
        return decision

    @chunkwise_on_dask
    def predict(self, X):
        """Predict the class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        labels : array of shape (n_samples,)
            In the namespace of ``X`` (NumPy for string labels).
        """
        decision, xp = self._decision(X, "predict")
        if decision.shape[1] == 1:
            indices = xp.astype(decision[:, 0] > 0, xp.int64)
        else:
            indices = xp.argmax(decision, axis=1)
        if not _numeric(self.classes_):
            return np.take(self.classes_, to_namespace(indices, np))
        return xp.take(to_namespace(self.classes_, xp, indices), indices)

    @available_if(_check_proba)
    @chunkwise_on_dask
    def predict_proba(self, X):
        """Probability of each class (loss='log_loss' or 'modified_huber').

        Binary problems use the sigmoid of the decision ('log_loss') or
        ``(clip(decision, -1, 1) + 1) / 2`` ('modified_huber'); with several
        classes the one-vs-rest probabilities are normalised to sum to one, as
        scikit-learn does, and a ``multi_class='multinomial'`` model gives the
        softmax of its decisions.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : array of shape (n_samples, n_classes)
            In the namespace of ``X``.
        """
        decision, xp = self._decision(X, "predict_proba")
        if self._multinomial:
            exponentials = xp.exp(decision - xp.max(decision, axis=1, keepdims=True))
            return exponentials / xp.sum(exponentials, axis=1, keepdims=True)
        if self.loss == "log_loss":
            positive = _sigmoid(xp, decision)
        else:
            positive = (xp.clip(decision, -1.0, 1.0) + 1.0) / 2.0
        if positive.shape[1] == 1:
            return xp.concat([1.0 - positive, positive], axis=1)
        total = xp.sum(positive, axis=1, keepdims=True)
        n_classes = positive.shape[1]
        safe_total = xp.where(total == 0, 1.0, total)
        return xp.where(total == 0, 1.0 / n_classes, positive / safe_total)

    @available_if(_check_proba)
    @chunkwise_on_dask
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : array of shape (n_samples, n_classes)
            In the namespace of ``X``.
        """
        proba = self.predict_proba(X)
        xp = namespace_of(proba)
        with np.errstate(divide="ignore"):
            return xp.log(proba)


def _accuracy(xp, correct, sample_weight):
    """(Weighted) mean of a 0/1 vector, as a Python float."""
    if sample_weight is None:
        return float(xp.mean(correct))
    return float(xp.sum(correct * sample_weight) / xp.sum(sample_weight))


def _numeric(array) -> bool:
    """True when labels can live on a device (numbers or booleans)."""
    name = dtype_name(array)
    return name.startswith(("int", "uint", "float", "bool"))


def _sorted_unique(xp, y):
    """Sorted distinct labels, in ``y``'s namespace."""
    if xp is np or not hasattr(xp, "unique_values"):
        return xp.unique(y)
    return xp.sort(xp.unique_values(y))


def _check_label_type(y) -> None:
    """scikit-learn's check that host labels are classes (not continuous, not multilabel)."""
    # labels past the int64 range make scikit-learn's integer test cast with a warning
    with np.errstate(invalid="ignore", over="ignore"):
        check_classification_targets(y)


def _same_classes(known, classes) -> bool:
    """Whether ``classes`` names exactly the fitted ``classes_`` (the cheap form of the check).

    False whenever in doubt, so that scikit-learn's own check runs and gives its message.
    """
    if classes is None:
        return False
    try:
        return bool(np.array_equal(known, np.unique(np.asarray(classes))))
    except (TypeError, ValueError):
        return False
