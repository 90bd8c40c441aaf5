"""BaseSGD: the parameters and the fit / partial_fit plumbing both estimators share."""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, replace
from functools import partial as partial_function
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
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
    free_device_bytes,
    is_cupy_array,
    is_cupy_namespace,
    is_cupy_sparse,
    is_device_array,
    is_sparse,
    namespace_of,
    resolve_compute_namespace,
    to_namespace,
)
from ._compiled import covers as compiled_covers
from ._cuda.driver import select_engine
from ._engine import DivergenceError, EngineConfig, TrainingData, TrainingState, run
from ._lazy_dask import is_dask_input
from ._losses import make_loss
from ._optim import MOMENTUM_FORMS, OptimizerConfig
from ._params import (
    check_parameters,
    divergence_message,
    input_magnitudes,
    warn_deprecated_parameters,
)
from ._precondition import feature_statistics, to_internal
from ._scaling import COMPILED_MIN_BATCH, BatchScaling, auto_batch_size, measure_scaling
from ._schedules import make_schedule
from ._sparse_coef import SparseCoefMixin
from ._streaming import (
    FREE_MEMORY_SHARE,
    data_bytes,
    plan_chunk_rows,
    stream_run,
)
from ._validation import (
    check_device_features,
    check_device_labels,
    check_device_target,
    check_in_float32_range,
    dtype_name,
)

# scikit-learn >= 1.8 rejects all-zero sample weights itself unless told not to
_ALL_ZERO_ALLOWED = (
    {"allow_all_zero_weights": True}
    if "allow_all_zero_weights" in inspect.signature(_check_sample_weight).parameters
    else {}
)
# scikit-learn damps the intercept's step on sparse data.
SPARSE_INTERCEPT_SCALE = 0.01
DEFAULT_BATCH_SIZE = "auto"
HALF_DTYPES = ("float16", "bfloat16")


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

    def _resolved_batch_size(self, xp, n_samples: int, continuing: bool, X=None) -> int:
        """``batch_size``, or the 'auto' choice for this data and device.

        On the CPU, where the compiled epoch runs every epoch of the fit, the
        choice follows the data's critical batch size (see
        :func:`._scaling.auto_batch_size`); what it measured is kept for the
        fit (``_batch_statistics``).
        """
        self._batch_statistics = None
        if self.batch_size != "auto":
            return int(self.batch_size)
        if continuing and hasattr(self, "batch_size_"):
            # partial_fit keeps the batch size of its first call: chunks of a stream differ
            return self.batch_size_
        on_gpu = is_cupy_namespace(xp)
        if X is None or xp is not np or not self._compiled_covers(X):
            return auto_batch_size(n_samples, on_gpu)
        statistics = self._batch_statistics = self._measure_statistics(X)
        kind = "sparse" if sp.issparse(X) else "dense"
        return auto_batch_size(
            n_samples,
            on_gpu,
            critical_batch=statistics.scaling.critical_batch_size,
            min_batch=COMPILED_MIN_BATCH[kind],
        )

    def _compiled_covers(self, X) -> bool:
        """Whether the compiled CPU epoch runs every epoch of this fit on host ``X``."""
        loss = make_loss(self.loss, float(self.epsilon), multinomial=self._multinomial)
        return compiled_covers(self._optimizer_config(), loss, X)

    def _measure_statistics(self, X) -> BatchStatistics:
        """The batch gain of X's rows as the steps will see them (standardised or not)."""
        sparse = sp.issparse(X)
        mean = inv_scale = None
        if not sparse and self.preconditioner in ("auto", "standardize"):
            mean, inv_scale = feature_statistics(np, X, _compute_dtype(np, X))
        scaling = measure_scaling(
            X,
            bool(self.fit_intercept),
            mean,
            inv_scale,
            intercept_scale=SPARSE_INTERCEPT_SCALE if sparse else 1.0,
        )
        return BatchStatistics(X, mean, inv_scale, scaling)

    def _averages_automatically(self, sparse: bool) -> bool:
        """Whether an automatic batch also averages the iterates after the first epoch.

        A minibatch step stays at the batch's largest stable step for many
        epochs (see :mod:`._scaling`), where the last iterate keeps oscillating;
        the running mean of the iterates (Polyak and Juditsky 1992), from the
        second epoch on, removes that noise. Only when ``batch_size='auto'``
        picks more than one row, ``average`` is left at False and X is dense
        (on sparse X the average is not lazy: it would cost O(n_features) a step).
        """
        return (
            self.batch_size == "auto" and self.batch_size_ > 1 and not self.average and not sparse
        )

    def _resolved_preconditioner(self, sparse: bool):
        """'standardize' or None: 'auto' standardises dense X when the batch size is automatic."""
        if self.preconditioner != "auto":
            return self.preconditioner
        if self.batch_size == "auto" and self.batch_size_ > 1 and not sparse:
            return "standardize"
        return None

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
        if is_dask_input(X, y, sample_weight):
            from ._dask import train_on_dask

            return train_on_dask(
                self,
                X,
                y,
                coef_init=coef_init,
                intercept_init=intercept_init,
                sample_weight=sample_weight,
                classes=classes,
                partial=partial,
            )
        fitted = hasattr(self, "_state")
        first_call = not (partial and fitted)
        X, y = self._validate_training_input(X, y, reset=first_call)
        if first_call:
            xp = resolve_compute_namespace(self.device, X)
        else:
            xp = self._compute_namespace()
        sample_weight = self._checked_sample_weight(sample_weight, X)

        continuing = partial and fitted
        n_train = X.shape[0]
        if self.early_stopping and not partial:
            n_train -= int(np.ceil(self.validation_fraction * n_train))
        self.batch_size_ = self._resolved_batch_size(xp, n_train, continuing, X)
        # data that does not fit on the device stays on the host and is streamed
        chunk_rows = self._stream_chunk_rows(xp, X, y, classes, sample_weight is not None)
        data_xp = xp if chunk_rows is None else np
        X_train = to_namespace(X, data_xp)
        compute_dtype = _compute_dtype(xp, X_train)
        if partial and fitted and compute_dtype != self._state.coef.dtype:
            # a stream keeps the dtype of its first chunk: later chunks are converted
            compute_dtype = self._state.coef.dtype
            if dtype_name(X_train.data if is_sparse(X_train) else X_train) not in HALF_DTYPES:
                X_train = (
                    X_train.astype(compute_dtype)
                    if is_sparse(X_train)
                    else data_xp.astype(X_train, compute_dtype)
                )
        encoded = self._encode_targets(y, data_xp, compute_dtype, classes, partial, X_train)
        targets, positive_weight, negative_weight = encoded
        if sample_weight is not None:
            sample_weight = to_namespace(sample_weight, data_xp, X_train)
            sample_weight = data_xp.astype(sample_weight, compute_dtype)
        sparse = is_sparse(X_train)
        half_input = dtype_name(X_train.data if sparse else X_train) in HALF_DTYPES
        config = self._engine_config(compute_dtype if half_input else None, sparse)
        data = TrainingData(
            X=X_train,
            targets=targets,
            sample_weight=sample_weight,
            positive_weight=positive_weight,
            negative_weight=negative_weight,
        )

        n_features = X_train.shape[1]
        n_outputs = int(targets.shape[1])
        state = self._initial_state(
            xp,
            (n_features, n_outputs),
            compute_dtype,
            _device_of(xp, X_train) if data_xp is xp else None,
            coef_init,
            intercept_init,
            partial,
        )
        validation_score = None
        if self.early_stopping and not partial:
            data, validation_score = self._split_validation(data_xp, data, y)
            if data_xp is not xp:
                host_score = validation_score
                validation_score = lambda state: host_score(state.moved_to(np))  # noqa: E731
        if not continuing:
            self.preconditioner_ = self._resolved_preconditioner(sparse)
            standardize = self.preconditioner_ == "standardize"
            known = self._batch_statistics
            self._batch_statistics = None
            if known is not None and not known.describes(data.X, standardize):
                known = None
            if standardize:
                mean, inv_scale = (
                    (known.mean, known.inv_scale)
                    if known is not None
                    else feature_statistics(data_xp, data.X, compute_dtype)
                )
                state.precondition(to_namespace(mean, xp), to_namespace(inv_scale, xp))
            state.scaling = (
                known.scaling
                if known is not None
                else measure_scaling(
                    data.X,
                    bool(self.fit_intercept),
                    state.feature_mean,
                    state.feature_inv_scale,
                    intercept_scale=config.intercept_scale,
                )
            )
        if not continuing:
            self._auto_average_start = n_train if self._averages_automatically(sparse) else 0
        config = replace(
            config,
            batch_size=self.batch_size_,
            scaling=state.scaling if self.scale_learning_rate else None,
            average_start=int(self.average) or getattr(self, "_auto_average_start", 0),
        )

        # the epochs' orders are drawn from it (one seed per fit, see permutation_source)
        random_state = check_random_state(self.random_state)
        runner = (
            select_engine(xp, data, config, reference=run)
            if chunk_rows is None
            else partial_function(stream_run, chunk_rows=chunk_rows)
        )
        report = runner(
            xp,
            state,
            data,
            config,
            max_epochs=1 if partial else int(self.max_iter),
            random_state=random_state,
            validation_score=validation_score,
            use_stopping_rule=not partial,
        )
        if (
            not partial
            and self.tol is not None
            and not report.converged
            and report.n_epochs == self.max_iter
        ):
            warnings.warn(
                "Maximum number of iteration reached before convergence. Consider "
                "increasing max_iter to improve the fit.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._store_fit(xp, state, report, partial, output_like=X)
        return self

    def _stream_chunk_rows(self, xp, X, y, classes, has_sample_weight):
        """Rows per streamed chunk when host ``X`` does not fit on the device, else None.

        The budget is ``max_device_memory`` when set, else (CuPy only) a share of
        the free device memory; NumPy without a cap and device input never stream.
        """
        if is_device_array(X) or not (xp is np or is_cupy_namespace(xp)):
            return None
        budget = self.max_device_memory
        if budget is None:
            budget = free_device_bytes(xp)
            if budget is None:
                return None
            budget = int(budget * FREE_MEMORY_SHARE)
        if data_bytes(X) * 4 <= budget:
            # far below the budget: skip counting the classes (a sort of y)
            return None
        if self._is_classifier_estimator:
            known = classes if classes is not None else getattr(self, "classes_", None)
            n_classes = len(np.unique(to_namespace(y, np))) if known is None else len(known)
            n_outputs = 1 if n_classes <= 2 else n_classes
        else:
            n_outputs = 1
        itemsize = np.dtype(_compute_dtype(np, X)).itemsize
        return plan_chunk_rows(
            X, n_outputs, itemsize, int(self.batch_size_), budget, has_sample_weight
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


@dataclass
class BatchStatistics:
    """What the 'auto' batch size measured on the rows ``X``: kept for the fit on them."""

    X: Any
    mean: Any
    inv_scale: Any
    scaling: BatchScaling

    def describes(self, X, standardized: bool) -> bool:
        """Whether these describe the rows ``X`` as the fit sees them (standardised or not)."""
        return self.X is X and (self.mean is not None) == standardized


def _compute_dtype(xp, X):
    """float64 and float32 stay; half precision computes with float32 master weights."""
    name = dtype_name(X.data if is_sparse(X) else X)
    if name in HALF_DTYPES:
        return xp.float32
    return getattr(xp, name)


def _device_of(xp, X):
    """Where new arrays go: X's device for array-API inputs, the default otherwise."""
    if xp is np or is_cupy_namespace(xp):
        return None
    from array_api_compat import device

    return device(X)
