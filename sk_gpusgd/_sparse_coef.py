"""``sparsify`` / ``densify``: ``coef_`` as a CSR matrix, as scikit-learn's linear models offer."""

from __future__ import annotations

import importlib

import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._backend import is_cupy_array, is_sparse

try:  # scikit-learn >= 1.9 follows its ``sparse_interface`` setting
    from sklearn.utils._sparse import _align_api_if_sparse
except ImportError:  # pragma: no cover - older scikit-learn returns a csr_matrix

    def _align_api_if_sparse(matrix):
        return sp.csr_matrix(matrix)


class SparseCoefMixin:
    """Convert ``coef_`` to and from a CSR matrix (scipy.sparse, or cupyx for CuPy)."""

    # the regressor's dense coef_ is (n_features,); its sparse form is (1, n_features)
    _coef_is_vector = False

    def densify(self):
        """Convert ``coef_`` back to a dense array (a no-op when it is dense).

        ``fit`` and ``partial_fit`` densify ``coef_`` themselves.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        check_is_fitted(self, msg="Estimator, %(name)s, must be fitted before densifying.")
        if is_sparse(self.coef_):
            dense = self.coef_.toarray()
            self.coef_ = dense.reshape(-1) if self._coef_is_vector else dense
        return self

    def sparsify(self):
        """Convert ``coef_`` to a CSR matrix; predictions do not change.

        NumPy coefficients become a ``scipy.sparse`` CSR matrix (or array, as
        scikit-learn's ``sparse_interface`` setting says), CuPy coefficients a
        ``cupyx.scipy.sparse.csr_matrix``; ``intercept_`` stays dense. This saves
        memory when most coefficients are zero (L1 or elastic-net penalties).

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        TypeError
            When ``coef_`` is neither NumPy nor CuPy (torch, array-api-strict):
            those namespaces have no CSR matrix.
        """
        check_is_fitted(self, msg="Estimator, %(name)s, must be fitted before sparsifying.")
        coef = self.coef_
        if getattr(coef, "ndim", 2) == 1:
            coef = coef.reshape(1, -1)
        if is_sparse(coef):
            return self
        if is_cupy_array(coef):
            cupyx_sparse = importlib.import_module("cupyx.scipy.sparse")
            self.coef_ = cupyx_sparse.csr_matrix(coef)
            return self
        if type(coef).__module__.split(".")[0] != "numpy":
            raise TypeError(
                "sparsify needs NumPy or CuPy coefficients; coef_ is a "
                f"{type(coef).__module__}.{type(coef).__name__}. Fit on NumPy or CuPy "
                "data to store coef_ as a sparse matrix."
            )
        self.coef_ = _align_api_if_sparse(sp.csr_array(coef))
        return self

    def _densify_before_fit(self) -> None:
        """``fit`` and ``partial_fit`` work on dense weights, as scikit-learn's do."""
        if is_sparse(getattr(self, "coef_", None)):
            self.densify()
