"""BaseSGD: the parameters and the fit / partial_fit plumbing both estimators share."""

from __future__ import annotations

import inspect
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

try:  # scikit-learn >= 1.8
    from sklearn.utils._array_api import check_same_namespace
except ImportError:  # pragma: no cover - older scikit-learn has no such rule
    check_same_namespace = None


from ._backend import (
    DEVICE_OPTIONS,
    cuda_available,
    cupy_namespace,
    device_name,
    dtype_name,
    is_cupy_array,
    is_cupy_namespace,
    is_cupy_sparse,
    is_device_array,
    is_sparse,
    namespace_of,
    resolve_compute_namespace,
    to_namespace,
)
from ._core.losses import make_loss
from ._core.optim import MOMENTUM_FORMS, OptimizerConfig
from ._core.precondition import to_internal
from ._core.schedules import make_schedule
from ._core.steps import keep_the_better_of_average_and_iterate
from ._core.types import DivergenceError, EngineConfig, TrainingData, TrainingState
from ._engines.loop import train
from ._lazy_dask import is_dask_input
from ._params import (
    check_parameters,
    divergence_message,
    input_magnitudes,
    warn_deprecated_parameters,
)
from ._plan import (
    HALF_DTYPES,
    SPARSE_INTERCEPT_SCALE,
    finish_plan,
    plan_fit,
    warn_engine_note,
)
from ._prefit import take as take_prefitted
from ._sparse_coef import SparseCoefMixin
from ._validation import (
    check_device_features,
    check_device_labels,
    check_device_target,
    check_in_float32_range,
)

# scikit-learn >= 1.8 rejects all-zero sample weights itself unless told not to
_ALL_ZERO_ALLOWED = (
    {"allow_all_zero_weights": True}
    if "allow_all_zero_weights" in inspect.signature(_check_sample_weight).parameters
    else {}
)
DEFAULT_BATCH_SIZE = "auto"


class BaseSGD(SparseCoefMixin, BaseEstimator):
    """Shared parameters, validation and training plumbing of the SGD estimators.

    Subclasses supply label handling: ``_encode_targets``, ``_coef_from_weights``,
    ``_validation_score`` and ``_split_validation``.
    """

    _parameter_constraints: dict = {
        "penalty": [StrOptions({"l2", "l1", "elasticnet"}), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both"), None],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "shuffle": ["boolean"],
        "verbose": ["verbose"],
        "epsilon": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "learning_rate": [
            StrOptions({"constant", "optimal", "invscaling", "adaptive", "pa1", "pa2"})
        ],
        "eta0": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, None, None, closed="neither")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "average": [Interval(Integral, 0, None, closed="neither"), "boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "dampening": [Interval(Real, 0, 1, closed="both")],
        "nesterov": ["boolean"],
        "momentum_form": [StrOptions(set(MOMENTUM_FORMS))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "decoupled_weight_decay": ["boolean"],
        "clip_value": [Interval(Real, 0, None, closed="neither"), None],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
        "multi_precision": ["boolean"],
        "preconditioner": [StrOptions({"auto", "standardize"}), None],
        "scale_learning_rate": ["boolean"],
        "device": [StrOptions(set(DEVICE_OPTIONS))],
        "max_device_memory": [Interval(Integral, 1, None, closed="left"), None],
    }

    def _store_parameters(self, parameters: dict) -> None:
        """What every ``__init__`` does, and all it does: store its arguments.

        Subclasses spell out their parameters in their own ``__init__``
        signatures (scikit-learn reads them there) and pass ``locals()`` here.
        """
        for name in self._get_param_names():
            setattr(self, name, parameters[name])

    # ------------------------------------------------------------------ checks
    def _more_validate_params(self, for_partial_fit: bool = False) -> None:
        """Every constraint, on every call, and the rules that tie two parameters together."""
        check_parameters(self)
        if self.early_stopping and for_partial_fit:
            raise ValueError("early_stopping should be False with partial_fit")
        if self.learning_rate == "optimal" and self.alpha == 0:
            raise ValueError(
                "alpha must be > 0 since learning_rate is 'optimal'. alpha is used "
                "to compute the optimal learning rate."
            )
        if self.penalty == "elasticnet" and self.l1_ratio is None:
            raise ValueError("l1_ratio must be set when penalty is 'elasticnet'")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                "Nesterov momentum requires a momentum > 0 and zero dampening "
                f"(got momentum={self.momentum}, dampening={self.dampening})."
            )
        if self.momentum_form == "velocity" and self.dampening != 0:
            raise ValueError(
                "dampening is defined for momentum_form='buffer' (PyTorch) only; "
                f"got dampening={self.dampening} with momentum_form='velocity'."
            )
        if self.clip_value is not None and self.clip_norm is not None:
            raise ValueError(
                "Set at most one of clip_value and clip_norm "
                f"(got clip_value={self.clip_value}, clip_norm={self.clip_norm})."
            )
        if self.learning_rate in ("pa1", "pa2"):
            expected = self._passive_aggressive_loss
            if self.loss != expected:
                raise ValueError(
                    f"Learning rate '{self.learning_rate}' only works with loss '{expected}'."
                )

    @property
    def _multinomial(self) -> bool:
        """Whether this fit trains one softmax model (classifiers with several classes)."""
        return False

    # --------------------------------------------------------------- configs
    def _optimizer_config(self) -> OptimizerConfig:
        penalty = self.penalty
        alpha = self.alpha if penalty is not None else 0.0
        if penalty == "l1":
            l1_ratio = 1.0
        elif penalty == "elasticnet":
            l1_ratio = self.l1_ratio
        else:
            l1_ratio = 0.0
        coupled_decay = 0.0 if self.decoupled_weight_decay else self.weight_decay
        return OptimizerConfig(
            momentum=float(self.momentum),
            dampening=float(self.dampening),
            nesterov=bool(self.nesterov),
            momentum_form=self.momentum_form,
            l2=float(alpha * (1.0 - l1_ratio) + coupled_decay),
            decoupled_decay=float(self.weight_decay if self.decoupled_weight_decay else 0.0),
            l1=float(alpha * l1_ratio),
            clip_value=self.clip_value,
            clip_norm=self.clip_norm,
        )

    def _engine_config(self, compute_dtype, sparse: bool) -> EngineConfig:
        loss = make_loss(self.loss, float(self.epsilon), multinomial=self._multinomial)
        # floats: a huge int power_t would make t**power_t an endless integer power
        schedule = make_schedule(
            self.learning_rate, float(self.eta0), float(self.alpha), float(self.power_t), loss
        )
        return EngineConfig(
            loss=loss,
            schedule=schedule,
            optimizer=self._optimizer_config(),
            # 'auto' is resolved once the data is known
            batch_size=1 if self.batch_size == "auto" else int(self.batch_size),
            fit_intercept=bool(self.fit_intercept),
            intercept_scale=SPARSE_INTERCEPT_SCALE if sparse else 1.0,
            shuffle=bool(self.shuffle),
            tol=self.tol,
            n_iter_no_change=int(self.n_iter_no_change),
            average_start=int(self.average),
            compute_dtype=compute_dtype,
            verbose=int(self.verbose),
        )

    # ------------------------------------------------------------ validation
    def _validate_training_input(self, X, y, reset: bool):
        """Check X and y; returns them in their own namespace (host or device)."""
        if is_device_array(X):
            validate_data(self, X, skip_check_array=True, reset=reset)
            X = check_device_features(X)
            y = self._check_target_of_device_features(y, X.shape[0])
        else:
            X, y = validate_data(
                self,
                X,
                y,
                reset=reset,
                accept_sparse="csr",
                dtype=[np.float64, np.float32, np.float16],
                order="C",
                accept_large_sparse=False,
                y_numeric=not self._is_classifier_estimator,
            )
        # scipy and cupyx sparse have no half precision: only dense X gets here
        if dtype_name(X) in HALF_DTYPES and not self.multi_precision:
            X = namespace_of(X).astype(X, namespace_of(X).float32)
        return X, y

    def _check_target_of_device_features(self, y, n_samples):
        """The checks scikit-learn gives y, for y given with device X (y anywhere)."""
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        if is_device_array(y):
            y = check_device_target(y, n_samples, numeric=not self._is_classifier_estimator)
        else:
            y = column_or_1d(y, warn=True)
            if not self._is_classifier_estimator:
                y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
            check_consistent_length(np.empty((n_samples, 0)), y)
        if self._is_classifier_estimator:
            check_device_labels(y)
        return y

    def _validate_prediction_input(self, X):
        """Check X at predict time; returns it in its own namespace."""
        check_is_fitted(self)
        if is_device_array(X):
            validate_data(self, X, skip_check_array=True, reset=False)
            return check_device_features(X)
        X = validate_data(
            self,
            X,
            reset=False,
            accept_sparse="csr",
            dtype=[np.float64, np.float32, np.float16],
            accept_large_sparse=False,
        )
        return X

    # -------------------------------------------------------------- training
    def _fit(self, X, y, **options):
        """Train; a fit that fails or is interrupted leaves the estimator as it was."""
        if not options["partial"] and options["coef_init"] is None:
            # inside a batched search: the model of these parameters on these rows
            prefitted = take_prefitted(self, X, y, options["sample_weight"])
            if prefitted is not None and options["intercept_init"] is None:
                self.__dict__.update(prefitted.__dict__)
                return self
        before = dict(self.__dict__)
        try:
            self._densify_before_fit()
            self._train(X, y, **options)
        except (DivergenceError, ArithmeticError) as error:
            self.__dict__.clear()
            self.__dict__.update(before)
            # Python float arithmetic of a schedule raises where C would give inf
            loss = make_loss(self.loss, float(self.epsilon), multinomial=self._multinomial)
            weights = options["sample_weight"]
            magnitudes = input_magnitudes(X, weights, getattr(self, "class_weight", None))
            epoch = getattr(error, "epoch", None)
            message = divergence_message(self, loss, magnitudes, epoch)
            raise DivergenceError(message, epoch=epoch) from error
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        if not options["partial"]:
            warn_deprecated_parameters(self)
        return self

    def _train(self, X, y, *, coef_init, intercept_init, sample_weight, classes, partial):
        """validate -> plan -> data and state -> train -> publish."""
        if is_dask_input(X, y, sample_weight):
            from ._dask import train_on_dask

            return train_on_dask(
                self, X, y, coef_init=coef_init, intercept_init=intercept_init,
                sample_weight=sample_weight, classes=classes, partial=partial,
            )  # fmt: skip
        fitted = hasattr(self, "_state")
        continuing = partial and fitted
        X, y = self._validate_training_input(X, y, reset=not continuing)
        xp = self._compute_namespace() if continuing else resolve_compute_namespace(self.device, X)
        sample_weight = self._checked_sample_weight(sample_weight, X)
        plan, X = plan_fit(
            self, X, y, xp, partial=partial, fitted=fitted, classes=classes,
            has_sample_weight=sample_weight is not None,
        )  # fmt: skip
        self.batch_size_ = plan.batch_size
        data = self._training_data(plan, X, y, sample_weight, classes, partial)
        state = self._initial_state(
            xp,
            (int(data.X.shape[1]), int(data.targets.shape[1])),
            plan.compute_dtype,
            _device_of(xp, data.X) if plan.data_namespace is xp else None,
            coef_init,
            intercept_init,
            partial,
        )
        data, validation_score = self._held_out(plan, data, y, partial)
        config = finish_plan(plan, self, state, data)
        if not plan.continuing:
            self.preconditioner_ = plan.preconditioner
            self._auto_average_start = plan.average_start if not self.average else 0
        warn_engine_note(plan)
        report = train(
            plan.engine,
            xp,
            state,
            data,
            config,
            max_epochs=1 if partial else int(self.max_iter),
            # the epochs' orders are drawn from it (one seed per fit)
            random_state=check_random_state(self.random_state),
            validation_score=validation_score,
            use_stopping_rule=not partial,
        )
        if not partial and plan.chunk_rows is None and plan.automatic_average:
            # the automatic average only where it lowers the objective (see the function);
            # an objective that overflows (huge sample weights) keeps the average
            with np.errstate(all="ignore"):
                keep_the_better_of_average_and_iterate(xp, state, data, config)
        if not partial:
            self._warn_if_not_converged(report)
        self._store_fit(xp, state, report, partial, output_like=X)
        return self

    def _training_data(self, plan, X, y, sample_weight, classes, partial) -> TrainingData:
        """The rows in the plan's data namespace and compute dtype, targets encoded."""
        data_xp, compute_dtype = plan.data_namespace, plan.compute_dtype
        X_train = to_namespace(X, data_xp)
        values = X_train.data if plan.sparse else X_train
        if not plan.half_precision and values.dtype != compute_dtype:
            # a stream keeps the dtype of its first chunk: later chunks are converted
            X_train = (
                X_train.astype(compute_dtype)
                if plan.sparse
                else data_xp.astype(X_train, compute_dtype)
            )
        encoded = self._encode_targets(y, data_xp, compute_dtype, classes, partial, X_train)
        targets, positive_weight, negative_weight = encoded
        if sample_weight is not None:
            sample_weight = to_namespace(sample_weight, data_xp, X_train)
            sample_weight = data_xp.astype(sample_weight, compute_dtype)
        return TrainingData(
            X=X_train,
            targets=targets,
            sample_weight=sample_weight,
            positive_weight=positive_weight,
            negative_weight=negative_weight,
        )

    def _held_out(self, plan, data, y, partial):
        """``(training data, validation_score)``: the early-stopping split, if any."""
        if not (self.early_stopping and not partial):
            return data, None
        data, validation_score = self._split_validation(plan.data_namespace, data, y)
        if plan.data_namespace is not plan.namespace:
            host_score = validation_score
            return data, lambda state: host_score(state.moved_to(np))
        return data, validation_score

    def _warn_if_not_converged(self, report) -> None:
        if self.tol is not None and not report.converged and report.n_epochs == self.max_iter:
            warnings.warn(
                "Maximum number of iteration reached before convergence. Consider "
                "increasing max_iter to improve the fit.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _checked_sample_weight(self, sample_weight, X):
        """scikit-learn's sample_weight checks, and a range the fit's float type holds."""
        checked = self._sample_weight_checks(sample_weight, X)
        if checked is not None:
            values = X.data if is_sparse(X) else X
            compute = "float32" if dtype_name(values) in HALF_DTYPES else dtype_name(values)
            check_in_float32_range(checked, compute, "sample_weight")
        return checked

    def _sample_weight_checks(self, sample_weight, X):
        """scikit-learn's sample_weight checks, in the namespace of the weights."""
        if sample_weight is None:
            return None
        # with early stopping, all-zero weights get the validation split's error
        zero_allowed = bool(self.early_stopping)
        if not is_device_array(sample_weight):
            host_X = np.empty((X.shape[0], 0))
            checked = _check_sample_weight(
                sample_weight, host_X, ensure_non_negative=True, **_ALL_ZERO_ALLOWED
            )
            if not zero_allowed and not np.any(checked != 0):
                raise ValueError("Sample weights must contain at least one non-zero number.")
            return checked
        xp = namespace_of(sample_weight)
        if sample_weight.ndim != 1 or sample_weight.shape[0] != X.shape[0]:
            raise ValueError(
                f"sample_weight.shape == {tuple(sample_weight.shape)}, expected ({X.shape[0]},)!"
            )
        if not bool(xp.all(xp.isfinite(sample_weight))):
            raise ValueError("Input sample_weight contains NaN or infinity.")
        if bool(xp.any(sample_weight < 0)):
            raise ValueError("Negative values in data passed to `sample_weight`.")
        if not zero_allowed and not bool(xp.any(sample_weight > 0)):
            raise ValueError("Sample weights must contain at least one non-zero number.")
        return sample_weight

    def _initial_state(self, xp, shape, dtype, device, coef_init, intercept_init, partial):
        """Fresh, warm-started or continued weights and optimizer state."""
        fitted = hasattr(self, "_state")
        if partial and fitted:
            state = self._state.moved_to(xp).copied(xp)
            if self._weights_set_by_user() and not self.average:
                # scikit-learn continues from coef_ / intercept_ (its averaged runs
                # from their unaveraged weights), so a user's edit takes effect
                coef, intercept = self._public_weights(xp, state.coef)
                if state.preconditioned:
                    coef, intercept = to_internal(
                        coef, intercept, state.feature_mean, state.feature_inv_scale
                    )
                state.coef, state.intercept = coef, intercept
            return state
        n_features, n_outputs = shape
        placement = {} if device is None else {"device": device}
        coef = xp.zeros((n_features, n_outputs), dtype=dtype, **placement)
        intercept = xp.zeros((n_outputs,), dtype=dtype, **placement)
        previous = None
        if coef_init is None and self.warm_start and fitted:
            previous = self._state.moved_to(xp).copied(xp)
            # the public weights, so that a user's edit of coef_ takes effect
            warm_coef, warm_intercept = self._public_weights(xp, previous.coef)
            if tuple(warm_coef.shape) != (n_features, n_outputs):
                raise ValueError(
                    "warm_start=True continues the previous fit, whose weights have "
                    f"shape {tuple(warm_coef.shape)[::-1]}; this data needs "
                    f"{(n_outputs, n_features)}. Use warm_start=False to start afresh."
                )
            coef = xp.astype(warm_coef, dtype)
            intercept = xp.astype(warm_intercept, dtype)
        if coef_init is not None:
            coef = self._checked_init(
                xp, coef_init, (n_features, n_outputs), dtype, "coef_init", coef
            )
        if intercept_init is not None:
            intercept = self._checked_init(
                xp, intercept_init, (n_outputs,), dtype, "intercept_init", coef
            )
        state = TrainingState(coef=coef, intercept=intercept)
        if previous is not None and previous.coef.shape == coef.shape:
            # warm_start keeps the momentum buffers (in this fit's dtype); a plain fit
            # starts them afresh
            for name in ("coef_buffer", "intercept_buffer"):
                buffer = getattr(previous, name)
                setattr(state, name, None if buffer is None else xp.astype(buffer, dtype))
        return state

    def _public_weights(self, xp, like):
        """``coef_`` / ``intercept_`` in the internal layout (n_features, n_outputs)."""
        coef = to_namespace(self.coef_, xp, like)
        intercept = to_namespace(self.intercept_, xp, like)
        coef = xp.reshape(coef, (-1, 1)) if coef.ndim == 1 else coef.T
        intercept = xp.reshape(intercept, (-1,))
        return xp.astype(coef, like.dtype), xp.astype(intercept, like.dtype)

    def _weights_set_by_user(self) -> bool:
        """Whether ``coef_`` or ``intercept_`` differ from what the last fit published."""
        published = getattr(self, "_published_weights", None)
        if published is None:
            return False
        coef_shape, stored_intercept = published
        intercept = np.asarray(to_namespace(self.intercept_, np))
        if intercept.shape != stored_intercept.shape or not np.array_equal(
            intercept, stored_intercept
        ):
            return True
        current = np.asarray(to_namespace(self.coef_, np))
        if current.shape != coef_shape:
            return True
        # what was published: the state's model coefficients, an elementwise product of
        # its arrays (the same on every device), so recomputed here rather than kept
        fitted, _ = self._state.model_weights()
        fitted = np.asarray(to_namespace(fitted, np))
        return not np.array_equal(current, np.reshape(fitted.T, coef_shape))

    def _checked_init(self, xp, value, shape, dtype, name, like):
        """A user's ``coef_init`` / ``intercept_init`` in the internal layout, checked."""
        if not (is_device_array(value) or isinstance(value, np.ndarray)):
            value = np.asarray(value, dtype=np.float64)
        value = self._init_to_internal(xp, to_namespace(value, xp, like), shape, name)
        value = xp.astype(value, dtype)
        if not bool(xp.all(xp.isfinite(value))):
            raise ValueError(f"{name} contains NaN or infinity.")
        return xp.asarray(value, copy=True)

    def _init_to_internal(self, xp, value, shape, name):
        """Reshape a user ``coef_init`` / ``intercept_init`` to the internal layout."""
        n_features, n_outputs = shape[0], shape[-1]
        if name == "coef_init":
            if value.ndim == 1 and n_outputs == 1 and value.shape[0] == n_features:
                return xp.reshape(value, (n_features, 1))
            if value.ndim == 2 and tuple(value.shape) == (n_outputs, n_features):
                return value.T
            expected = (n_outputs, n_features)
        else:
            if value.ndim == 0 and n_outputs == 1:
                return xp.reshape(value, (1,))
            if value.ndim == 1 and value.shape[0] == n_outputs:
                return value
            expected = (n_outputs,)
        raise ValueError(
            f"Provided {name} does not match dataset: expected shape {expected}, "
            f"got {tuple(value.shape)}."
        )

    def _split_validation(self, xp, data: TrainingData, y):
        """Hold out ``validation_fraction`` of the rows; returns (train data, scorer)."""
        y_host = to_namespace(y, np)
        splitter = self._validation_splitter()
        train_rows, validation_rows = next(splitter.split(np.zeros((y_host.shape[0], 1)), y_host))
        # the rows keep their order (scikit-learn skips validation rows in place)
        train_rows, validation_rows = np.sort(train_rows), np.sort(validation_rows)
        if data.sample_weight is not None:
            weights_host = to_namespace(data.sample_weight, np)
            if not np.any(weights_host[validation_rows] > 0):
                raise ValueError(
                    "The sample weights for validation set are all zero, consider using a"
                    " different random state."
                )

        def rows(array, selected):
            if array is None:
                return None
            if is_sparse(array):
                return array[to_namespace(selected, xp)]
            return xp.take(array, to_namespace(selected, xp, array), axis=0)

        train = TrainingData(
            X=rows(data.X, train_rows),
            targets=rows(data.targets, train_rows),
            sample_weight=rows(data.sample_weight, train_rows),
            positive_weight=data.positive_weight,
            negative_weight=data.negative_weight,
        )
        X_val = rows(data.X, validation_rows)
        targets_val = rows(data.targets, validation_rows)
        weights_val = rows(data.sample_weight, validation_rows)

        def validation_score(state: TrainingState) -> float:
            coef, intercept = state.model_weights()
            features = X_val
            if not is_sparse(features) and features.dtype != coef.dtype:
                features = xp.astype(features, coef.dtype)
            decision = features @ coef + intercept
            return self._validation_score(xp, decision, targets_val, weights_val)

        return train, validation_score

    def _store_fit(self, xp, state: TrainingState, report, partial, output_like):
        """Publish the fitted attributes, in the namespace of the training input."""
        out_xp = namespace_of(output_like) if is_device_array(output_like) else np
        coef, intercept = state.model_weights()
        self._state = state
        self._compute_namespace_name = xp.__name__
        self.coef_, self.intercept_ = self._coef_from_weights(
            to_namespace(coef, out_xp), to_namespace(intercept, out_xp)
        )
        # what was published, to notice a user's later edit (in place or by assignment):
        # coef_'s shape and the intercept; the coefficients are not copied once more (on
        # hashed features they are the fit's largest array) but recomputed from the state
        self._published_weights = (
            tuple(self.coef_.shape),
            np.array(to_namespace(self.intercept_, np), copy=True),
        )
        self.n_iter_ = report.n_epochs
        self.t_ = float(state.samples_seen + 1)
        previous = list(getattr(self, "loss_curve_", [])) if partial else []
        self.loss_curve_ = previous + report.loss_curve
        self.device_ = device_name(xp, state.coef)

    def _compute_namespace(self):
        name = self._compute_namespace_name
        if name == "numpy":
            return np
        import importlib

        return importlib.import_module(name)

    # ------------------------------------------------------------ prediction
    def _decision(self, X, method: str):
        """X @ coef_.T + intercept_ in X's namespace, (n_samples, n_outputs).

        Outputs follow the namespace of ``X``. Under scikit-learn's
        ``array_api_dispatch=True`` its stricter rule applies instead: ``X``
        must share the namespace and device of the fitted attributes.
        """
        if check_same_namespace is not None:
            check_same_namespace(X, self, attribute="coef_", method=method)
        X = self._validate_prediction_input(X)
        xp = namespace_of(X)
        like = X.data if is_sparse(X) else X
        # a sparsified coef_ (sparsify) predicts exactly as the dense one
        coef = self.coef_.toarray() if is_sparse(self.coef_) else self.coef_
        coef = to_namespace(coef, xp, like)
        intercept = to_namespace(self.intercept_, xp, like)
        if coef.ndim == 1:
            coef = xp.reshape(coef, (1, -1))
        # NumPy's promotion: half-precision X meets float32 weights in float32, so
        # decisions never overflow; float64 X with float32 weights gives float64
        values = X.data if is_sparse(X) else X
        dtype = xp.result_type(values.dtype, coef.dtype)
        if values.dtype != dtype:
            X = X.astype(dtype) if is_sparse(X) else xp.astype(X, dtype)
        if coef.dtype != dtype:
            coef, intercept = xp.astype(coef, dtype), xp.astype(intercept, dtype)
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            decision = xp.asarray(X @ coef.T + intercept)
        if not bool(xp.all(decision == decision)):  # NaN: X @ coef_.T overflowed both ways
            raise ValueError(
                "The decision values X @ coef_.T + intercept_ overflowed to NaN: X holds "
                "values too large for this model's weights. Scale X (e.g. with StandardScaler)."
            )
        return decision, xp

    # ---------------------------------------------------------------- export
    def to_sklearn(self):
        """This fitted model as scikit-learn's ``SGDClassifier`` / ``SGDRegressor``.

        For serving where this package is not installed, and for the tools that
        know scikit-learn's models (skops, skl2onnx). The weights are copied to
        NumPy, whatever device the model was trained on.

        Returns
        -------
        sklearn.linear_model.SGDClassifier or sklearn.linear_model.SGDRegressor
            A fitted estimator with the same ``predict``, ``decision_function``
            and ``predict_proba`` as this one; the parameters scikit-learn
            has no equivalent for (``batch_size``, ``momentum``, ...) are
            dropped.
        """
        from ._export import to_sklearn

        return to_sklearn(self)

    # ------------------------------------------------------------------ misc
    def __getstate__(self):
        """Pickle GPU arrays as NumPy so that the model loads without CuPy."""
        state = dict(super().__getstate__())
        on_gpu = []
        for name, value in list(state.items()):
            if is_cupy_array(value) or is_cupy_sparse(value):
                state[name] = value.get()
                on_gpu.append(name)
        if "_state" in state and self._compute_namespace_name.endswith("cupy"):
            state["_state"] = state["_state"].moved_to(np)
            state["_compute_namespace_name"] = "numpy"
            on_gpu.append("_state")
        state["_cupy_attributes"] = on_gpu
        return state

    def __setstate__(self, state):
        """Put what was on the GPU back there when this machine has one."""
        on_gpu = state.pop("_cupy_attributes", [])
        super().__setstate__(state)
        if not on_gpu or not cuda_available():
            return
        xp = cupy_namespace()
        for name in on_gpu:
            if name == "_state":
                self._state = self._state.moved_to(xp)
                self._compute_namespace_name = xp.__name__
            else:
                setattr(self, name, to_namespace(getattr(self, name), xp))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags


def _device_of(xp, X):
    """Where new arrays go: X's device for array-API inputs, the default otherwise."""
    if xp is np or is_cupy_namespace(xp):
        return None
    from array_api_compat import device

    return device(X)
