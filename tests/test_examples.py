"""The example scripts run as a user would run them, and do what they say."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script, *args, cwd):
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=300,
    ).stdout


def test_quickstart(tmp_path):
    output = _run("quickstart.py", cwd=tmp_path)
    assert "GPUSGDClassifier: held-out accuracy" in output
    accuracy = float(output.split("GPUSGDClassifier: held-out accuracy ")[1].split(",")[0])
    assert accuracy > 0.9


def test_optimizer_curves_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "curves.png"
    _run("optimizer_curves.py", "--output", str(target), cwd=tmp_path)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
