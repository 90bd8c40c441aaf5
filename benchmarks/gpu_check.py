"""GPU checks of the CUDA engine (run by benchmarks/gpu_check.sh on a machine with a GPU).

    python benchmarks/gpu_check.py checks --out DIR   # parity, replay, memory, timings -> JSON
    python benchmarks/gpu_check.py tiny-fit           # a small fit (compute-sanitizer, ncu)

``checks`` compares the CUDA kernels with the NumPy reference engine (float64, same row
order) for a set of options, graph replay with eager launches (bitwise), watches the
CuPy memory pool over many replayed epochs, and times steps: microseconds per step at
batch 256 and the fraction of copy bandwidth at batch 8192.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sk_gpusgd._core.losses import make_loss
from sk_gpusgd._core.optim import OptimizerConfig
from sk_gpusgd._core.schedules import make_schedule
from sk_gpusgd._core.types import EngineConfig, TrainingData, TrainingState
from sk_gpusgd._engines.cuda import driver, launcher
from sk_gpusgd._runs import run, run_kernels

PARITY_CASES = {
    "hinge-l2": ("hinge", "invscaling", {"l2": 1e-3}, {}),
    "log-momentum-nesterov": ("log_loss", "optimal", {"momentum": 0.9, "nesterov": True}, {}),
    "modified-huber-velocity": (
        "modified_huber",
        "constant",
        {"momentum": 0.9, "momentum_form": "velocity"},
        {},
    ),
    "squared-hinge-clip-norm-l1": (
        "squared_hinge",
        "invscaling",
        {"clip_norm": 0.1, "l1": 1e-3},
        {},
    ),
    "hinge-pa1": ("hinge", "pa1", {}, {}),
    "log-average-decoupled": ("log_loss", "invscaling", {"decoupled_decay": 0.1}, {"average": 7}),
    "squared-error": ("squared_error", "invscaling", {"clip_value": 0.5}, {}),
    "huber-dampening": ("huber", "invscaling", {"momentum": 0.9, "dampening": 0.5}, {}),
}


def config_for(loss, schedule, optimizer, average=0, batch_size=64, shuffle=False):
    loss_object = make_loss(loss, 0.1)
    return EngineConfig(
        loss=loss_object,
        schedule=make_schedule(schedule, 0.02, 1e-3, 0.5, loss_object),
        optimizer=OptimizerConfig(**optimizer),
        batch_size=batch_size,
        shuffle=shuffle,
        tol=None,
        average_start=average,
    )


def problem(n, d, k, regression, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    scores = X @ rng.standard_normal((d, k)).astype(dtype)
    Y = scores if regression else np.where(scores > 0, 1.0, -1.0).astype(dtype)
    return X, Y.astype(dtype)


def state_on(xp, d, k, dtype):
    return TrainingState(coef=xp.zeros((d, k), dtype=dtype), intercept=xp.zeros(k, dtype=dtype))


def kernel_fit(cupy, backend, X, Y, config, epochs=3, seed=0):
    state = state_on(cupy, X.shape[1], Y.shape[1], Y.dtype)
    data = TrainingData(X=cupy.asarray(X), targets=cupy.asarray(Y))
    report = run_kernels(
        cupy, state, data, config, max_epochs=epochs, random_state=np.random.RandomState(seed),
        backend=backend,
    )  # fmt: skip
    return state, report


def parity(cupy, backend) -> dict:
    results = {}
    for name, (loss, schedule, optimizer, extra) in PARITY_CASES.items():
        regression = loss in ("squared_error", "huber")
        X, Y = problem(3001, 37, 1 if regression else 10, regression)
        config = config_for(loss, schedule, optimizer, **extra)
        reference = state_on(np, X.shape[1], Y.shape[1], Y.dtype)
        run(np, reference, TrainingData(X=X, targets=Y), config, max_epochs=3,
            random_state=np.random.RandomState(0))  # fmt: skip
        kernels, _ = kernel_fit(cupy, backend, X, Y, config)
        coef = cupy.asnumpy(kernels.coef)
        scale = np.abs(reference.coef).max()
        error = float(np.abs(coef - reference.coef).max() / scale)
        results[name] = {"max_relative_error": error, "passed": error <= 1e-5}
    return results


def graph_versus_eager(cupy, backend) -> dict:
    X, Y = problem(10_000, 64, 10, False)
    config = config_for("log_loss", "optimal", {"momentum": 0.9}, average=100, shuffle=True)
    states = {}
    for mode in ("0", "always"):
        os.environ[driver.ENV_GRAPHS] = mode
        states[mode], _ = kernel_fit(cupy, backend, X, Y, config, epochs=3, seed=1)
    os.environ.pop(driver.ENV_GRAPHS)
    equal = all(
        bool(cupy.array_equal(getattr(states["0"], name), getattr(states["always"], name)))
        for name in ("coef", "intercept", "coef_buffer", "average_coef")
    )
    return {"bitwise_equal": equal, "passed": equal}


def fused_fit(cupy, backend, n, d, k, batch, dtype=np.float32):
    X, Y = problem(n, d, k, False, dtype=dtype)
    config = config_for("hinge", "constant", {}, batch_size=batch, shuffle=True)
    data = TrainingData(X=cupy.asarray(X), targets=cupy.asarray(Y))
    state = state_on(cupy, d, k, dtype)
    shuffle = launcher.constants()["SHUFFLE_BIJECTION"]
    return driver.FusedFit(backend, state, data, config, shuffle, seed=1)


def memory_growth(cupy, backend) -> dict:
    fit = fused_fit(cupy, backend, 50_000, 128, 10, 256)
    pool = cupy.get_default_memory_pool()
    with backend.stream:
        fit.epoch_steps(use_graphs=True)
        fit.end_epoch()
        before = (pool.used_bytes(), pool.total_bytes())
        for _ in range(50):
            fit.epoch_steps(use_graphs=True)
            fit.end_epoch()
        after = (pool.used_bytes(), pool.total_bytes())
    return {
        "used_bytes": [before[0], after[0]],
        "total_bytes": [before[1], after[1]],
        "passed": before == after,
    }


def epoch_seconds(cupy, backend, fit, epochs=5) -> float:
    with backend.stream:
        fit.epoch_steps(use_graphs=True)  # capture and warm up
        fit.end_epoch()
        backend.synchronize()
        start = time.perf_counter()
        for _ in range(epochs):
            fit.epoch_steps(use_graphs=True)
        backend.synchronize()
    return (time.perf_counter() - start) / epochs


def copy_bandwidth(cupy, nbytes=1 << 30) -> float:
    src = cupy.empty(nbytes // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    cupy.cuda.Device().synchronize()
    start = time.perf_counter()
    for _ in range(10):
        dst[...] = src
    cupy.cuda.Device().synchronize()
    return 2 * nbytes * 10 / (time.perf_counter() - start)


def timings(cupy, backend) -> dict:
    out = {}
    n, d, k = 2_000_000, 256, 10
    for batch in (256, 1024, 8192):
        fit = fused_fit(cupy, backend, n, d, k, batch)
        seconds = epoch_seconds(cupy, backend, fit)
        out[f"batch_{batch}"] = {
            "seconds_per_epoch": seconds,
            "us_per_step": 1e6 * seconds / fit.steps_per_epoch,
            "x_gb_per_s": n * d * 4 / seconds / 1e9,
        }
        del fit
    bandwidth = copy_bandwidth(cupy)
    out["copy_gb_per_s"] = bandwidth / 1e9
    out["fraction_of_bandwidth_batch_8192"] = out["batch_8192"]["x_gb_per_s"] * 1e9 / bandwidth
    out["targets"] = {
        "us_per_step_le_5_at_batch_256": out["batch_256"]["us_per_step"] <= 5.0,
        "ge_60pct_bandwidth_at_batch_8192": out["fraction_of_bandwidth_batch_8192"] >= 0.6,
    }
    return out


def checks(out_dir: Path) -> int:
    import cupy

    backend = launcher.CupyBackend()
    device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    device = device.decode() if isinstance(device, bytes) else str(device)
    payload = {"device": device, "cupy": cupy.__version__}
    for name, check in (
        ("parity_float64", parity),
        ("graph_versus_eager", graph_versus_eager),
        ("memory_pool_growth", memory_growth),
        ("timings", timings),
    ):
        try:
            payload[name] = check(cupy, backend)
        except Exception as error:  # noqa: BLE001 - record and go on to the next check
            payload[name] = {"error": f"{type(error).__name__}: {error}", "passed": False}
        print(name, json.dumps(payload[name], default=float)[:400], flush=True)
    passed = [
        all(case["passed"] for case in payload["parity_float64"].values())
        if "error" not in payload["parity_float64"]
        else False,
        payload["graph_versus_eager"].get("passed", False),
        payload["memory_pool_growth"].get("passed", False),
    ]
    payload["passed"] = all(passed)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "gpu-check-kernels.json"
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print("wrote", path)
    return 0 if payload["passed"] else 1


def tiny_fit(rows: int, features: int, classes: int, batch: int) -> int:
    """A small estimator fit on CuPy data (for compute-sanitizer and ncu)."""
    import cupy

    from sk_gpusgd import GPUSGDClassifier

    X, Y = problem(rows, features, 1, False, dtype=np.float32)
    y = np.random.default_rng(0).integers(0, classes, rows)
    model = GPUSGDClassifier(
        max_iter=3, tol=None, batch_size=batch, momentum=0.9, average=True, random_state=0
    )
    model.fit(cupy.asarray(X), cupy.asarray(y))
    cupy.cuda.Device().synchronize()
    print("tiny fit done:", model.device_, float(model.score(cupy.asarray(X), cupy.asarray(y))))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("checks")
    default_out = os.environ.get("OUT", str(Path(__file__).resolve().parent / "results"))
    check.add_argument("--out", type=Path, default=Path(default_out))
    tiny = commands.add_parser("tiny-fit")
    tiny.add_argument("--rows", type=int, default=1000)
    tiny.add_argument("--features", type=int, default=20)
    tiny.add_argument("--classes", type=int, default=3)
    tiny.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    if args.command == "checks":
        return checks(args.out)
    return tiny_fit(args.rows, args.features, args.classes, args.batch)


if __name__ == "__main__":
    sys.exit(main())
