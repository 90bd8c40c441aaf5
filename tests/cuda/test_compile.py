"""Every kernel instantiation compiles with NVRTC for sm_80 and sm_90, without a GPU.

NVRTC and the CUDA runtime headers come from NVIDIA's wheels (the ``kernels`` and ``test``
extras: cuda-core, cuda-bindings, nvidia-cuda-nvrtc, nvidia-cuda-runtime), never from a
toolkit that happens to be installed. ptxas' verbose report must show no spills and no
stack frame in the hot kernels.
"""

import io
import re

import pytest

from sk_gpusgd._engines.cuda import launcher

cuda_core = pytest.importorskip("cuda.core", reason="install the 'kernels' extra")
pathfinder = pytest.importorskip("cuda.pathfinder", reason="install the 'kernels' extra")


def _compile(source, arch, names, logs=None):
    options = cuda_core.ProgramOptions(
        std="c++17",
        arch=arch,
        ftz=True,
        device_as_default_execution_space=True,
        include_path=[pathfinder.find_nvidia_header_directory("cudart")],
        ptxas_options=["-v"],
    )
    program = cuda_core.Program(source, code_type="c++", options=options)
    return program.compile("cubin", name_expressions=names, logs=logs)


def _function_reports(log: str) -> dict[str, str]:
    """ptxas' 'Function properties' line for each mangled kernel name."""
    found = re.findall(r"Function properties for (\S+)\nptxas\s+\.\s+(.*)", log)
    return dict(found)


@pytest.fixture(scope="module", params=["sm_80", "sm_90"])
def compiled(request):
    log = io.StringIO()
    code = _compile(launcher.kernel_source(), request.param, launcher.name_expressions(), log)
    return code, log.getvalue()


def test_every_instantiation_compiles(compiled):
    code, _ = compiled
    mapping = code.symbol_mapping
    assert set(mapping) == set(launcher.name_expressions())
    assert all(mapping[name] for name in mapping)
    assert len(code.code) > 10_000  # a cubin, not an empty module


def test_hot_kernels_neither_spill_nor_use_a_stack(compiled):
    code, log = compiled
    reports = _function_reports(log)
    hot = [n for n in launcher.name_expressions() if n.startswith(launcher.HOT_KERNELS)]
    assert len(hot) == 10  # dense forward x4 storage types, update x2; sparse x2 each
    for name in hot:
        mangled = code.symbol_mapping[name].decode()
        report = reports[mangled]
        assert "0 bytes stack frame" in report, (name, report)
        assert "0 bytes spill stores" in report and "0 bytes spill loads" in report, (name, report)


def test_a_compile_error_names_the_line():
    broken = launcher.kernel_source() + "\n__global__ void broken() { undefined_name += 1; }\n"
    with pytest.raises(Exception, match="undefined_name"):
        _compile(broken, "sm_90", ("broken",))
