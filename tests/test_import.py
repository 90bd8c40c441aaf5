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
