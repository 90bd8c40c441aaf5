"""Importing the package must not import CuPy (or any other optional dependency)."""

import subprocess
import sys

# pandas is left out: scikit-learn itself imports it when installed.
OPTIONAL = ("cupy", "cupyx", "torch", "dask", "matplotlib")


def test_import_does_not_load_optional_dependencies():
    code = (
        "import sys, sk_gpusgd\n"
        "from sk_gpusgd import GPUSGDClassifier\n"
        "import numpy as np\n"
        "GPUSGDClassifier(device='cpu').fit(np.eye(4), [0, 1, 0, 1])\n"
        f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_numpy_fits_streaming_and_the_dask_helpers_do_not_load_dask():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import sk_gpusgd.dask\n"
        "from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor\n"
        "X = np.random.default_rng(0).normal(size=(400, 5))\n"
        "y = (X[:, 0] > 0).astype(int)\n"
        "model = GPUSGDClassifier(device='cpu', max_device_memory=8000).fit(X, y)\n"
        "model.predict(X), model.decision_function(X), model.score(X, y)\n"
        "GPUSGDRegressor(device='cpu').fit(X, X[:, 1]).predict(X)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dask', 'distributed', 'dask_ml')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
