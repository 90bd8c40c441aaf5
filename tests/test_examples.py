"""The example scripts run as a user would run them, and do what they say.

The ``plot_*.py`` scripts are also the documentation's gallery (the docs build
runs them again); each takes a few seconds.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(script, *args, cwd):
    # this checkout's package, whatever else is installed; figures to no display
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"},
    ).stdout


def test_quickstart(tmp_path):
    output = _run("quickstart.py", cwd=tmp_path)
    assert "GPUSGDClassifier: held-out accuracy" in output
    accuracy = float(output.split("GPUSGDClassifier: held-out accuracy ")[1].split(",")[0])
    assert accuracy > 0.9


def test_optimizer_curves_writes_a_png(tmp_path):
    target = tmp_path / "curves.png"
    _run("plot_optimizer_curves.py", "--output", str(target), cwd=tmp_path)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tutorial_estimator_equals_the_numpy_loop(tmp_path):
    output = _run("plot_minibatch_sgd_tutorial.py", cwd=tmp_path).splitlines()
    numpy_line = next(line for line in output if line.startswith("NumPy loop weights:"))
    ours_line = next(line for line in output if line.startswith("estimator weights:"))
    assert numpy_line.split(":", 1)[1].split() == ours_line.split(":", 1)[1].split()


# what each gallery script prints once it has done its work
EXPECTED_OUTPUT = {
    "plot_batch_size.py": "scikit-learn SGDClassifier: accuracy",
    "plot_grid_search.py": "held-out accuracy",
    "plot_partial_fit_streaming.py": "after 20 chunks",
    "plot_benchmark_results.py": "variants",
    "plot_search_validation_curve.py": "groups trained together",
}
DEDICATED_TESTS = {"plot_optimizer_curves.py", "plot_minibatch_sgd_tutorial.py"}


@pytest.mark.parametrize(
    "script",
    sorted(p.name for p in EXAMPLES.glob("plot_*.py") if p.name not in DEDICATED_TESTS),
)
def test_gallery_script_runs(script, tmp_path):
    output = _run(script, cwd=tmp_path)
    assert EXPECTED_OUTPUT.get(script, "") in output and output.strip()
