"""Test configuration: enable scikit-learn's array-API checks; GPU detection."""

import os

# scikit-learn runs its array-API estimator checks only with SciPy's array-API
# mode on, and SciPy reads this once, at import.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
