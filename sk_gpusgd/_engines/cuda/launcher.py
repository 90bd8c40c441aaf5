"""Compile and launch the kernels of ``kernels.cu`` on a GPU (CuPy) or on the CPU (emulation).

Both backends take the same calls: ``launch(name, grid, block, shared_bytes, args)`` with
arrays of the backend's namespace, ``None`` for a null pointer and NumPy scalars for
values; ``capture(body)`` records the launches ``body`` makes and returns a graph whose
``replay()`` runs them again with the same arguments (a CUDA graph on the GPU, a recorded
list on the CPU); ``with ordered():`` brackets a fit, so that its uploads, launches and
reads run in order after the caller's queued work and before the caller's next
(see :meth:`CupyBackend.ordered`). ``errors`` are the exceptions that mean "the kernels
cannot run this fit" (compile, launch, memory): the driver then falls back to the
array-API engine. Nothing here imports CuPy unless :class:`CupyBackend` is built.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from importlib import resources
from pathlib import Path

import numpy as np

# CUDA C type of each storage dtype of X, and of each compute dtype.
C_TYPES = {
    "float16": "__half",
    "bfloat16": "__nv_bfloat16",
    "float32": "float",
    "float64": "double",
}
# (X storage, compute) pairs the engine instantiates.
TYPE_PAIRS = (
    ("float32", "float32"),
    ("float64", "float64"),
    ("float16", "float32"),
    ("bfloat16", "float32"),
)
COMPUTE_DTYPES = ("float32", "float64")
HOT_KERNELS = ("sgd_forward", "sgd_update", "sgd_sparse_forward", "sgd_sparse_update")

# NVRTC options matching what the CuPy backend compiles with.
NVRTC_OPTIONS = ("-std=c++17", "-ftz=true", "--device-as-default-execution-space")


def source_path() -> Path:
    """Where ``kernels.cu`` is installed (package data)."""
    return Path(str(resources.files("sk_gpusgd._engines.cuda").joinpath("kernels.cu")))


def emulation_dir() -> Path:
    return Path(str(resources.files("sk_gpusgd._engines.cuda").joinpath("emulation")))


@functools.lru_cache(maxsize=1)
def kernel_source() -> str:
    return source_path().read_text()


@functools.lru_cache(maxsize=1)
def constants() -> dict[str, int]:
    """The integer ``#define`` constants of the kernel source (one definition for both sides)."""
    found = re.findall(r"^#define\s+([A-Z][A-Z0-9_]*)\s+(-?\d+)\b", kernel_source(), re.MULTILINE)
    return {name: int(value) for name, value in found}


def forward_name(x_dtype: str, dtype: str) -> str:
    return f"sgd_forward<{C_TYPES[x_dtype]}, {C_TYPES[dtype]}>"


def update_name(dtype: str) -> str:
    return f"sgd_update<{C_TYPES[dtype]}>"


def end_epoch_name(dtype: str) -> str:
    return f"sgd_end_epoch<{C_TYPES[dtype]}>"


def sparse_names(dtype: str) -> dict[str, str]:
    """The sparse step's kernels (CSR values in the compute dtype)."""
    c_type = C_TYPES[dtype]
    return {
        "forward": f"sgd_sparse_forward<{c_type}, {c_type}>",
        "update": f"sgd_sparse_update<{c_type}>",
        "average": f"sgd_sparse_average<{c_type}>",
        "fold": f"sgd_sparse_fold<{c_type}>",
    }


ORDER_KERNEL = "sgd_epoch_order"


def name_expressions() -> tuple[str, ...]:
    """Every kernel instantiation the engine can launch."""
    names = [forward_name(x, t) for x, t in TYPE_PAIRS]
    names += [update_name(t) for t in COMPUTE_DTYPES]
    names += [end_epoch_name(t) for t in COMPUTE_DTYPES]
    names += [name for t in COMPUTE_DTYPES for name in sparse_names(t).values()]
    names.append(ORDER_KERNEL)
    return tuple(names)


def sparse_forward_shared_bytes(rows: int, k: int, itemsize: int) -> int:
    """Dynamic shared memory of ``sgd_sparse_forward``."""
    return 8 * rows + 2 * rows * k * itemsize


def forward_shared_bytes(rows: int, d: int, k: int, threads: int, itemsize: int) -> int:
    """Dynamic shared memory of ``sgd_forward`` (its carving of SHARED_MEMORY, in bytes)."""
    pairs = rows * k
    slots = rows * d + max(pairs, threads) + 3 * pairs + rows
    return 8 * rows + slots * itemsize


class KernelBuildError(RuntimeError):
    """The kernels could not be compiled (NVRTC on a GPU, g++ for the emulation)."""


# ------------------------------------------------------------------------ CPU backend
class EmulatedGraph:
    """Recorded launches; ``replay`` runs them again with the arguments they had."""

    def __init__(self, nodes):
        self.nodes = nodes

    def replay(self) -> None:
        for function, grid, block, shared, _keep, params in self.nodes:
            function(grid, block, shared, params)


def _pack(args):
    """ctypes objects for each argument and the ``void**`` array pointing at them."""
    objects = []
    for arg in args:
        if arg is None:
            objects.append(ctypes.c_void_p(None))
        elif isinstance(arg, np.ndarray):
            if not arg.flags.c_contiguous:
                raise ValueError("kernel arrays must be C-contiguous")
            objects.append(ctypes.c_void_p(arg.ctypes.data))
        elif isinstance(arg, np.generic):
            objects.append(np.ctypeslib.as_ctypes(np.asarray(arg)))
        else:
            raise TypeError(f"kernel argument of type {type(arg).__name__}: pass a NumPy scalar")
    params = (ctypes.c_void_p * len(objects))(*[ctypes.addressof(o) for o in objects])
    return objects, params


class EmulatedBackend:
    """The kernels compiled by g++ against the host emulation header, on NumPy arrays.

    Parameters
    ----------
    sanitize : str, optional
        Build with ``-fsanitize=<sanitize>`` (and real OS threads per CUDA thread).
    os_threads : bool
        One OS thread per CUDA thread instead of fibers.
    """

    name = "emulated"
    xp = np
    errors = (KernelBuildError,)

    def __init__(self, sanitize: str | None = None, os_threads: bool = False):
        self.library = ctypes.CDLL(str(build_emulation(sanitize=sanitize, os_threads=os_threads)))
        self.names = name_expressions()
        self._recording = None

    def launch(self, name: str, grid: int, block: int, shared_bytes: int, args) -> None:
        function = getattr(self.library, f"emulated_kernel_{self.names.index(name)}")
        function.restype = None
        keep, params = _pack(args)
        node = (function, ctypes.c_uint(grid), ctypes.c_uint(block), ctypes.c_size_t(shared_bytes))
        if self._recording is not None:
            self._recording.append((*node, keep, params))
        else:
            function(*node[1:], params)

    def capture(self, body) -> EmulatedGraph:
        self._recording = []
        try:
            body()
            return EmulatedGraph(self._recording)
        finally:
            self._recording = None

    def to_host(self, array):
        return np.array(array, copy=True)

    def ordered(self):
        """Launches run in call order on the CPU: nothing to order."""
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        """Launches are synchronous on the CPU."""


def emulation_flags(sanitize: str | None, os_threads: bool) -> list[str]:
    flags = ["-std=c++20", "-shared", "-fPIC", "-pthread"]
    if sanitize:
        flags += ["-O1", "-g", "-fno-omit-frame-pointer", f"-fsanitize={sanitize}"]
        if sanitize == "undefined":
            flags.append("-fno-sanitize-recover=all")
    else:
        flags.append("-O2")
    if os_threads or sanitize in ("thread", "address"):
        flags.append("-DEMULATION_OS_THREADS")
    return flags


def emulation_cpp() -> str:
    """The C++ translation unit: the kernels plus one C entry point per instantiation."""
    lines = ['#include "cuda_emulation.h"', f'#include "{source_path()}"', 'extern "C" {']
    for index, name in enumerate(name_expressions()):
        lines.append(
            f"void emulated_kernel_{index}(unsigned grid, unsigned block, size_t shared, "
            f"void** params) {{ emulated_launch_params(&{name}, grid, block, shared, params); }}"
        )
    return "\n".join([*lines, "}", ""])


_BUILD_DIR: Path | None = None


@functools.cache
def build_emulation(sanitize: str | None = None, os_threads: bool = False) -> Path:
    """Compile the emulation library once per process into a temporary directory."""
    global _BUILD_DIR
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise KernelBuildError(
            f"the kernel emulation needs a C++20 compiler ({compiler} not found)"
        )
    if _BUILD_DIR is None:
        _BUILD_DIR = Path(tempfile.mkdtemp(prefix="sk_gpusgd_emulation_"))
        atexit.register(shutil.rmtree, _BUILD_DIR, ignore_errors=True)
    flags = emulation_flags(sanitize, os_threads)
    tag = hashlib.sha256((kernel_source() + " ".join(flags)).encode()).hexdigest()[:12]
    cpp = _BUILD_DIR / f"kernels_{tag}.cpp"
    library = _BUILD_DIR / f"kernels_{tag}.so"
    cpp.write_text(emulation_cpp())
    command = [compiler, *flags, "-I", str(emulation_dir()), str(cpp), "-o", str(library)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise KernelBuildError(f"emulation build failed:\n{' '.join(command)}\n{result.stderr}")
    return library


# ------------------------------------------------------------------------ GPU backend
class CupyGraph:
    """A captured CUDA graph and the stream it replays on."""

    def __init__(self, graph, stream):
        self.graph = graph
        self.stream = stream

    def replay(self) -> None:
        self.graph.launch(self.stream)


class CupyBackend:
    """The kernels compiled by NVRTC through CuPy, launched on the engine's own stream.

    The stream is non-blocking (CUDA graphs cannot be captured on the legacy default
    stream) and one per thread and device, so that CuPy's memory pool, which keeps freed
    blocks per stream, only hands a fit's freed buffers to later work of the same
    stream. :meth:`ordered` ties it to the caller's stream at both ends of a fit.
    """

    name = "cupy"

    def __init__(self):
        import cupy

        self.cupy = cupy
        self.xp = cupy
        self.stream = _engine_stream()
        self.errors = _cupy_errors()

    def function(self, name: str):
        """The kernel ``name``, looked up once per process (a lookup builds a RawKernel)."""
        return _cupy_function(name)

    def launch(self, name: str, grid: int, block: int, shared_bytes: int, args) -> None:
        packed = tuple(np.uint64(0) if a is None else a for a in args)
        self.function(name)((grid,), (block,), packed, shared_mem=shared_bytes, stream=self.stream)

    def capture(self, body) -> CupyGraph:
        for name in name_expressions():  # module loads are not allowed while capturing
            self.function(name).kernel  # noqa: B018 - loads the module on this device
        self.stream.begin_capture()
        try:
            body()
        finally:
            graph = self.stream.end_capture()
        return CupyGraph(graph, self.stream)

    @contextlib.contextmanager
    def ordered(self):
        """Run a fit on the engine's stream, in order with the caller's current stream.

        On entry the engine's stream waits for an event recorded on the caller's stream
        (so the caller's queued copies of X, y and the state have landed before the
        first upload or launch reads them); inside, the engine's stream is current, so
        every CuPy allocation, fill and copy of the fit goes to it; on exit the caller's
        stream waits for the engine's (so the caller's next work sees the trained
        weights, and memory the fit frees is not reused under it).
        """
        cupy = self.cupy
        caller = cupy.cuda.get_current_stream()
        self.stream.wait_event(caller.record())
        try:
            with self.stream:
                yield self.stream
        finally:
            caller.wait_event(self.stream.record())

    def to_host(self, array):
        """A blocking copy to the host on the engine's stream."""
        return array.get(stream=self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()


_STREAMS = threading.local()


def _engine_stream():
    """The engine's non-blocking stream of this thread on the current device."""
    import cupy

    device = cupy.cuda.Device().id
    streams = getattr(_STREAMS, "by_device", None)
    if streams is None:
        streams = _STREAMS.by_device = {}
    if device not in streams:
        streams[device] = cupy.cuda.Stream(non_blocking=True)
    return streams[device]


def _cupy_errors() -> tuple:
    """CuPy's exceptions for a kernel that cannot compile, launch or allocate."""
    import cupy

    return (
        KernelBuildError,
        cupy.cuda.compiler.CompileException,
        cupy.cuda.driver.CUDADriverError,
        cupy.cuda.runtime.CUDARuntimeError,
        cupy.cuda.memory.OutOfMemoryError,
    )


@functools.cache
def _cupy_function(name: str):
    return _cupy_module().get_function(name)


@functools.lru_cache(maxsize=1)
def _cupy_module():
    import cupy

    options = list(NVRTC_OPTIONS)
    try:  # the CUDA headers from the nvidia-cuda-runtime wheel, when installed
        from cuda.pathfinder import find_nvidia_header_directory

        include = find_nvidia_header_directory("cudart")
        if include:
            options.append(f"-I{include}")
    except ImportError:
        pass
    return cupy.RawModule(
        code=kernel_source(), options=tuple(options), name_expressions=name_expressions()
    )
