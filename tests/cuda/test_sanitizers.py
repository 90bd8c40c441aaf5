"""AddressSanitizer, UndefinedBehaviorSanitizer and ThreadSanitizer builds of the emulation.

Each builds tests/cuda/sanitize_main.cpp (every kernel, every storage type, options on and
off, ragged shapes) with g++ and runs it: about 10 s per sanitizer on 2 cores. Address and
thread run one OS thread per CUDA thread (real concurrency between a block's threads and
between blocks), undefined runs the fibers.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sk_gpusgd._engines.cuda import launcher

HERE = Path(__file__).resolve().parent
SANITIZERS = {
    "address": ["-fsanitize=address", "-fno-omit-frame-pointer", "-DEMULATION_OS_THREADS"],
    "undefined": ["-fsanitize=undefined", "-fno-sanitize-recover=all"],
    "thread": ["-fsanitize=thread", "-DEMULATION_OS_THREADS"],
}
REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "WARNING: ThreadSanitizer")


def sanitizer_command(sanitizer: str, output: Path) -> list[str]:
    return [
        os.environ.get("CXX", "g++"),
        "-std=c++20",
        "-O1",
        "-g",
        "-pthread",
        *SANITIZERS[sanitizer],
        "-I",
        str(launcher.emulation_dir()),
        f'-DKERNELS="{launcher.source_path()}"',
        str(HERE / "sanitize_main.cpp"),
        "-o",
        str(output),
    ]


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("sanitizer", list(SANITIZERS))
def test_kernels_run_clean_under_sanitizer(sanitizer, tmp_path):
    binary = tmp_path / f"sanitize_{sanitizer}"
    build = subprocess.run(sanitizer_command(sanitizer, binary), capture_output=True, text=True)
    if build.returncode != 0 and "cannot find" in build.stderr and "lib" in build.stderr:
        pytest.skip(f"the {sanitizer} sanitizer runtime is not installed: {build.stderr[-200:]}")
    assert build.returncode == 0, build.stderr
    options = {"ASAN_OPTIONS": "detect_leaks=1", "TSAN_OPTIONS": "halt_on_error=1"}
    environment = {**os.environ, **options}
    result = subprocess.run([str(binary)], capture_output=True, text=True, env=environment)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not any(report in output for report in REPORTS), output
    assert output.count(" ok") == 6, output
