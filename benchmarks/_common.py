"""Helpers shared by the benchmark scripts: devices, versions, timing, data, reports.

Nothing here imports CuPy or PyTorch at import time; both are loaded lazily,
only when a benchmark asks for the GPU or for the PyTorch competitor.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
# SK_GPUSGD_RESULTS_DIR sends results elsewhere (benchmarks/gpu_check.sh sets it from $OUT)
RESULTS_DIR = Path(os.environ.get("SK_GPUSGD_RESULTS_DIR", BENCH_DIR / "results"))
REPO_ROOT = BENCH_DIR.parent

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))


# ----------------------------------------------------------------- devices
def cupy_or_none():
    """The ``cupy`` module when it imports and sees a CUDA device, else None."""
    if importlib.util.find_spec("cupy") is None:
        return None
    try:
        cupy = importlib.import_module("cupy")
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # noqa: BLE001 - a broken driver or toolkit means "no GPU"
        return None


def torch_or_none():
    """The ``torch`` module when it imports, else None."""
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        return importlib.import_module("torch")
    except Exception:  # noqa: BLE001
        return None


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform's best guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_count() -> int:
    """CPU cores usable by this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def total_ram_bytes() -> int:
    """Physical memory in bytes (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 0


def gpu_info(cupy) -> dict:
    """Name and memory of CUDA device 0."""
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    if isinstance(name, bytes):
        name = name.decode()
    _free, total = cupy.cuda.runtime.memGetInfo()
    return {"name": name, "memory_bytes": int(total), "compute_capability": _cc(props)}


def _cc(props) -> str:
    try:
        return f"{props['major']}.{props['minor']}"
    except (KeyError, TypeError):
        return "unknown"


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (other work on the machine skews CPU timings)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):  # pragma: no cover
        return None


def device_info(use_gpu: bool = True) -> dict:
    """What the benchmark ran on: the GPU when present (and wanted), and the CPU."""
    info = {
        "cpu": {"model": cpu_model(), "cores": cpu_count(), "ram_bytes": total_ram_bytes()},
        "gpu": None,
        "load_average_at_start": load_average(),
    }
    cupy = cupy_or_none() if use_gpu else None
    if cupy is not None:
        info["gpu"] = gpu_info(cupy)
        info["name"] = info["gpu"]["name"]
    else:
        info["name"] = f"{info['cpu']['model']} ({info['cpu']['cores']} cores)"
    return info


def slugify(text: str, max_length: int = 48) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_length].strip("-") or "unknown"


def device_slug(info: dict) -> str:
    """File-name slug of the device: the GPU name, or the CPU model and core count."""
    if info.get("gpu"):
        return slugify(info["gpu"]["name"])
    return f"{slugify(info['cpu']['model'], 40)}-{info['cpu']['cores']}c"


def versions() -> dict:
    """Versions of Python and of the libraries compared, when importable."""
    found = {"python": platform.python_version()}
    modules = {
        "numpy": "numpy",
        "scipy": "scipy",
        "scikit-learn": "sklearn",
        "sk_gpusgd": "sk_gpusgd",
        "cupy": "cupy",
        "torch": "torch",
        "cuml": "cuml",
        "snapml": "snapml",
    }
    for label, module in modules.items():
        if importlib.util.find_spec(module) is None:
            found[label] = None
            continue
        try:
            version = getattr(importlib.import_module(module), "__version__", None)
        except Exception as exc:  # noqa: BLE001
            found[label] = f"import failed: {type(exc).__name__}"
            continue
        if version is None:  # snapml has no __version__: its distribution's metadata
            try:
                version = importlib.metadata.version(label)
            except importlib.metadata.PackageNotFoundError:
                version = "unknown"
        found[label] = version
    return found


def today() -> str:
    """YYYYMMDD of today (local time)."""
    return _dt.date.today().strftime("%Y%m%d")


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# ------------------------------------------------------------------ timing
def synchronize(cupy=None, torch=None) -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    if cupy is not None:
        cupy.cuda.Device().synchronize()
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], sync: Callable[[], None] | None = None) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` (synchronised before and after), and its result."""
    if sync is not None:
        sync()
    start = time.perf_counter()
    result = fn()
    if sync is not None:
        sync()
    return time.perf_counter() - start, result


@contextlib.contextmanager
def quiet_warnings():
    """Silence ConvergenceWarning and friends while timing fits with tol=None."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def cpu_copy_bandwidth(nbytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Bytes/s of a NumPy array copy (read + write counted: 2 * nbytes / time)."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2.0 * src.nbytes / best


def gpu_copy_bandwidth(cupy, nbytes: int = 2 * 2**30, repeats: int = 10) -> float:
    """Bytes/s of a device-to-device CuPy copy (2 * nbytes / time)."""
    free, _total = cupy.cuda.runtime.memGetInfo()
    nbytes = int(min(nbytes, free // 4))
    src = cupy.ones(nbytes // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    dst[...] = src
    cupy.cuda.Device().synchronize()
    start_event, stop_event = cupy.cuda.Event(), cupy.cuda.Event()
    best = math.inf
    for _ in range(repeats):
        start_event.record()
        dst[...] = src
        stop_event.record()
        stop_event.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(start_event, stop_event) / 1e3)
    del src, dst
    cupy.get_default_memory_pool().free_all_blocks()
    return 2.0 * nbytes / best


# -------------------------------------------------------------------- data
def standard_normal_float32(n_rows: int, n_cols: int, seed: int, chunk_rows: int = 262_144):
    """An (n_rows, n_cols) float32 standard-normal matrix, filled by threads in chunks."""
    out = np.empty((n_rows, n_cols), dtype=np.float32)
    starts = list(range(0, n_rows, chunk_rows))
    seeds = np.random.SeedSequence(seed).spawn(len(starts))

    def fill(job):
        start, child = job
        stop = min(start + chunk_rows, n_rows)
        np.random.default_rng(child).standard_normal(
            (stop - start, n_cols), dtype=np.float32, out=out[start:stop]
        )

    with ThreadPoolExecutor(max_workers=max(1, cpu_count())) as pool:
        list(pool.map(fill, zip(starts, seeds, strict=True)))
    return out


def linear_targets(X: np.ndarray, task: str, seed: int, noise: float = 0.5, n_classes: int = 10):
    """Labels from a random linear model plus noise.

    'binary': sign of X w + noise (0/1); 'multiclass': argmax of X W + noise over
    ``n_classes``; 'regression': X w + noise with w scaled so that Var(X w) is 1.
    """
    rng = np.random.default_rng(seed + 7919)
    d = X.shape[1]
    if task == "multiclass":
        W = rng.standard_normal((d, n_classes), dtype=np.float32) / np.float32(math.sqrt(d))
        scores = X @ W
        scores += noise * rng.standard_normal(scores.shape, dtype=np.float32)
        return np.argmax(scores, axis=1).astype(np.int64)
    w = rng.standard_normal(d, dtype=np.float32) / np.float32(math.sqrt(d))
    values = X @ w
    values += noise * rng.standard_normal(values.shape, dtype=np.float32)
    if task == "binary":
        return (values > 0).astype(np.int64)
    if task == "regression":
        return values.astype(np.float32)
    raise ValueError(f"unknown task {task!r}")


# ----------------------------------------------------------------- reports
def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(payload), indent=2) + "\n", encoding="utf-8")
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def result_paths(
    prefix: str, slug: str | None, date: str, quick: bool = False
) -> tuple[Path, Path]:
    """benchmarks/results/<prefix>-<slug>-<date>[-quick].json and .md (slug may be None).

    ``--quick`` runs get their own ``-quick`` files, so that they never overwrite
    a full run of the same day on the same device.
    """
    stem = f"{prefix}-{slug}-{date}" if slug else f"{prefix}-{date}"
    if quick:
        stem += "-quick"
    return RESULTS_DIR / f"{stem}.json", RESULTS_DIR / f"{stem}.md"


def save_report(
    prefix: str,
    slug: str | None,
    date: str,
    quick: bool,
    payload: dict,
    markdown: str,
    started: float,
) -> None:
    """Write the JSON and Markdown results and say where they went."""
    json_path, md_path = result_paths(prefix, slug, date, quick)
    write_json(json_path, payload)
    write_text(md_path, markdown)
    print(f"wrote {json_path}\nwrote {md_path}\ntotal {time.perf_counter() - started:.1f} s")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def environment_markdown(info: dict, found_versions: dict, date: str) -> str:
    """The header of every Markdown report: device, versions, date."""
    gpu = info.get("gpu")
    lines = [
        f"- Date: {date}",
        f"- Device: {info['name']}",
        f"- CPU: {info['cpu']['model']}, {info['cpu']['cores']} cores, "
        f"{fmt_bytes(info['cpu']['ram_bytes'])} RAM",
    ]
    if gpu:
        lines.append(f"- GPU memory: {fmt_bytes(gpu['memory_bytes'])}")
    start, end = info.get("load_average_at_start"), load_average()
    if start or end:
        lines.append(
            f"- Load average (1/5/15 min) at start {start}, at end {end} "
            f"({info['cpu']['cores']} cores): a load above the core count means other "
            "processes shared the CPU and CPU timings are pessimistic"
        )
    lines.append(
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in found_versions.items() if v is not None)
    )
    missing = [k for k, v in found_versions.items() if v is None]
    if missing:
        lines.append("- Not installed: " + ", ".join(missing))
    return "\n".join(lines)


# -------------------------------------------------------------- formatting
def fmt_seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value >= 1:
        return f"{value:.3f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.2f} ms"
    return f"{value * 1e6:.1f} us"


def fmt_ratio(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def fmt_float(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def fmt_rate(value: float | None) -> str:
    """Samples per second, 1.2M style."""
    if value is None or not math.isfinite(value):
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def fmt_bytes(value: float | None) -> str:
    if not value:
        return "-"
    for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= scale:
            return f"{value / scale:.2f} {suffix}"
    return f"{value:.0f} B"


def fmt_bool(value: bool | None) -> str:
    if value is None:
        return "n/a"
    return "yes" if value else "NO"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, None when either is missing."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def to_host(array):
    """A NumPy copy of a NumPy, CuPy or torch array."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "get"):
        return array.get()
    if hasattr(array, "detach"):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def held_out_log_loss(y_true, proba, n_classes: int) -> float | None:
    """Log loss of predicted probabilities (columns: classes 0..n_classes-1), None if invalid."""
    from sklearn.metrics import log_loss

    # the dtype kept: scikit-learn checks that rows sum to one to that dtype's precision
    y_true, proba = to_host(y_true), np.asarray(to_host(proba))
    if proba.ndim != 2 or not np.isfinite(proba).all():
        return None
    return float(log_loss(y_true, proba, labels=np.arange(n_classes)))


def score(task: str, y_true, y_pred) -> float:
    """Accuracy (classification) or R^2 (regression) on host arrays."""
    y_true, y_pred = to_host(y_true), to_host(y_pred)
    if task == "regression":
        from sklearn.metrics import r2_score

        return float(r2_score(y_true, y_pred))
    return float(np.mean(y_true == y_pred))
