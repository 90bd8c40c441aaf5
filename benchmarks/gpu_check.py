"""GPU checks of the CUDA engine (run by benchmarks/gpu_check.sh on a machine with a GPU).

    python benchmarks/gpu_check.py checks --out DIR   # parity, replay, memory, timings -> JSON
    python benchmarks/gpu_check.py tiny-fit           # a small fit (compute-sanitizer, ncu)
    python benchmarks/gpu_check.py checks --dry-run   # the same code, emulated kernels, tiny sizes
    python benchmarks/gpu_check.py tiny-fit --dry-run

``checks`` compares the CUDA kernels with the NumPy reference engine (float64, same row
order) for a set of options, graph replay with eager launches (bitwise), watches the
CuPy memory pool over many replayed epochs, and times whole epochs (every step replayed
from the graphs, then the end-of-epoch launch and summary read, as a fit runs them):
microseconds per step at batch 256 and the fraction of copy bandwidth at batch 8192.
Each timed epoch must take every row (the samples clock advances by n), else the check
fails rather than report a time.

``--dry-run`` needs no GPU and no CuPy: the same checks run on the CPU emulation of the
kernels (``launcher.EmulatedBackend``, NumPy arrays) at sizes of a few thousand rows, so
that a CPU machine shows that every set-up step works before the GPU run.
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

from sk_gpusgd._core.losses import make_loss  # noqa: E402
from sk_gpusgd._core.optim import OptimizerConfig  # noqa: E402
from sk_gpusgd._core.schedules import make_schedule  # noqa: E402
from sk_gpusgd._core.types import EngineConfig, TrainingData, TrainingState  # noqa: E402
from sk_gpusgd._engines.cuda import driver, launcher  # noqa: E402
from sk_gpusgd._runs import run, run_kernels  # noqa: E402

# Sizes of the GPU run and of the dry run (the emulation runs a few thousand steps a second).
SIZES = {
    "gpu": {
        "parity": (3001, 37, 10),
        "replay": (10_000, 64, 10),
        "memory": (50_000, 128, 10, 256, 50),
        "timings": (2_000_000, 256, 10, (256, 1024, 8192), 5),
        "copy_bytes": 1 << 30,
    },
    "dry": {
        "parity": (301, 37, 10),
        "replay": (1000, 16, 3),
        "memory": (2000, 16, 3, 256, 3),
        "timings": (20_000, 16, 3, (256, 1024, 8192), 2),
        "copy_bytes": 1 << 24,
    },
}

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
    if np.dtype(dtype) == np.float32:  # drawn in float32: no float64 copy of a large X
        X = rng.standard_normal((n, d), dtype=np.float32)
    else:
        X = rng.standard_normal((n, d)).astype(dtype)
    scores = X @ rng.standard_normal((d, k)).astype(dtype)
    Y = scores if regression else np.where(scores > 0, 1.0, -1.0).astype(dtype)
    return X, Y.astype(dtype)


class Device:
    """The backend and its array namespace: CuPy on a GPU, NumPy on the emulated kernels."""

    def __init__(self, dry_run: bool):
        self.dry_run = dry_run
        self.sizes = SIZES["dry" if dry_run else "gpu"]
        if dry_run:
            self.backend = driver.emulated_backend()
            self.xp = np
            self.name = "CPU emulation of the kernels (dry run)"
            self.version = None
        else:
            import cupy

            self.backend = launcher.CupyBackend()
            self.xp = cupy
            props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
            name = props["name"]
            self.name = name.decode() if isinstance(name, bytes) else str(name)
            self.version = cupy.__version__

    def asnumpy(self, array):
        return np.asarray(array) if self.dry_run else self.xp.asnumpy(array)

    def synchronize(self) -> None:
        if not self.dry_run:
            self.xp.cuda.Device().synchronize()


def engine_stream(backend):
    """The backend's stream made current and ordered after the caller's work (its buffers
    were filled on the caller's stream), or nothing to do (emulation)."""
    return backend.ordered()


def state_on(xp, d, k, dtype):
    return TrainingState(coef=xp.zeros((d, k), dtype=dtype), intercept=xp.zeros(k, dtype=dtype))


def kernel_fit(device, X, Y, config, epochs=3, seed=0):
    xp = device.xp
    state = state_on(xp, X.shape[1], Y.shape[1], Y.dtype)
    data = TrainingData(X=xp.asarray(X), targets=xp.asarray(Y))
    report = run_kernels(
        xp, state, data, config, max_epochs=epochs, random_state=np.random.RandomState(seed),
        backend=device.backend,
    )  # fmt: skip
    return state, report


def parity(device) -> dict:
    n, d, k = device.sizes["parity"]
    results = {}
    for name, (loss, schedule, optimizer, extra) in PARITY_CASES.items():
        regression = loss in ("squared_error", "huber")
        X, Y = problem(n, d, 1 if regression else k, regression)
        config = config_for(loss, schedule, optimizer, **extra)
        reference = state_on(np, X.shape[1], Y.shape[1], Y.dtype)
        run(np, reference, TrainingData(X=X, targets=Y), config, max_epochs=3,
            random_state=np.random.RandomState(0))  # fmt: skip
        kernels, _ = kernel_fit(device, X, Y, config)
        coef = device.asnumpy(kernels.coef)
        scale = np.abs(reference.coef).max()
        error = float(np.abs(coef - reference.coef).max() / scale)
        results[name] = {"max_relative_error": error, "passed": error <= 1e-5}
    return results


def graph_versus_eager(device) -> dict:
    n, d, k = device.sizes["replay"]
    X, Y = problem(n, d, k, False)
    config = config_for("log_loss", "optimal", {"momentum": 0.9}, average=100, shuffle=True)
    states = {}
    previous = os.environ.get(driver.ENV_GRAPHS)
    try:
        for mode in ("0", "always"):
            os.environ[driver.ENV_GRAPHS] = mode
            states[mode], _ = kernel_fit(device, X, Y, config, epochs=3, seed=1)
    finally:
        if previous is None:
            os.environ.pop(driver.ENV_GRAPHS, None)
        else:
            os.environ[driver.ENV_GRAPHS] = previous
    xp = device.xp
    equal = all(
        bool(xp.array_equal(getattr(states["0"], name), getattr(states["always"], name)))
        for name in ("coef", "intercept", "coef_buffer", "average_coef")
    )
    return {"bitwise_equal": equal, "passed": equal}


def fused_fit(device, n, d, k, batch, dtype=np.float32, data=None):
    """A :class:`FusedFit` on random data (or ``data``): hinge, constant rate, device shuffle."""
    xp = device.xp
    if data is None:
        X, Y = problem(n, d, k, False, dtype=dtype)
        data = TrainingData(X=xp.asarray(X), targets=xp.asarray(Y))
    config = config_for("hinge", "constant", {}, batch_size=batch, shuffle=True)
    state = state_on(xp, d, k, dtype)
    shuffle = launcher.constants()["SHUFFLE_BIJECTION"]
    return driver.FusedFit(device.backend, state, data, config, shuffle, seed=1)


def memory_growth(device) -> dict:
    n, d, k, batch, epochs = device.sizes["memory"]
    fit = fused_fit(device, n, d, k, batch)
    if device.dry_run:  # NumPy has no pool: run the same epochs, nothing to compare
        pool_bytes = lambda: (0, 0)  # noqa: E731
    else:
        pool = device.xp.get_default_memory_pool()
        pool_bytes = lambda: (pool.used_bytes(), pool.total_bytes())  # noqa: E731
    with engine_stream(device.backend):
        fit.epoch_steps(use_graphs=True)
        fit.end_epoch()
        before = pool_bytes()
        for _ in range(epochs):
            fit.epoch_steps(use_graphs=True)
            fit.end_epoch()
        after = pool_bytes()
    return {
        "epochs": epochs,
        "used_bytes": [before[0], after[0]],
        "total_bytes": [before[1], after[1]],
        "passed": before == after,
    }


def samples_seen(fit, summary) -> int:
    """The fit's samples clock in an end-of-epoch summary (rows taken so far)."""
    tail = summary[launcher.constants()["SUMMARY_COLUMN_FIELDS"] * fit.k :]
    return int(tail[launcher.constants()["SUMMARY_SAMPLES"]])


def epoch_seconds(backend, fit, epochs=5) -> tuple[float, list[int]]:
    """Seconds per whole epoch and the rows each timed epoch took.

    After one untimed epoch (graph capture, warm-up), ``epochs`` epochs are timed as the
    driver runs them: every step replayed from the graphs, then ``end_epoch`` (the launch
    that closes the epoch and rewinds the row cursor, and the epoch's one summary read).
    Without ``end_epoch`` the next epoch would start at the end of the rows and take
    none. Raises ``RuntimeError`` when a timed epoch did not take all ``fit.n`` rows.
    """
    with engine_stream(backend):
        fit.epoch_steps(use_graphs=True)  # capture and warm up
        seen = samples_seen(fit, fit.end_epoch())
        backend.synchronize()
        summaries = []
        start = time.perf_counter()
        for _ in range(epochs):
            fit.epoch_steps(use_graphs=True)
            summaries.append(fit.end_epoch())
        backend.synchronize()
        seconds = (time.perf_counter() - start) / epochs
    rows = []
    for summary in summaries:
        now = samples_seen(fit, summary)
        rows.append(now - seen)
        seen = now
    if any(taken != fit.n for taken in rows):
        raise RuntimeError(f"timed epochs took {rows} rows, not {fit.n} each")
    return seconds, rows


def copy_bandwidth(device, nbytes) -> float:
    xp = device.xp
    src = xp.ones(nbytes // 4, dtype=xp.float32)
    dst = xp.empty_like(src)
    dst[...] = src
    device.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        dst[...] = src
    device.synchronize()
    return 2 * nbytes * 10 / (time.perf_counter() - start)


def timings(device) -> dict:
    out = {}
    n, d, k, batches, epochs = device.sizes["timings"]
    X, Y = problem(n, d, k, False, dtype=np.float32)  # one data set for every batch size
    data = TrainingData(X=device.xp.asarray(X), targets=device.xp.asarray(Y))
    del X, Y
    for batch in batches:
        fit = fused_fit(device, n, d, k, batch, data=data)
        seconds, rows = epoch_seconds(device.backend, fit, epochs=epochs)
        out[f"batch_{batch}"] = {
            "seconds_per_epoch": seconds,
            "us_per_step": 1e6 * seconds / fit.steps_per_epoch,
            "x_gb_per_s": n * d * 4 / seconds / 1e9,
            "rows_per_timed_epoch": rows,
        }
        del fit
    out["shape"] = {"n": n, "d": d, "k": k, "timed_epochs": epochs}
    bandwidth = copy_bandwidth(device, device.sizes["copy_bytes"])
    out["copy_gb_per_s"] = bandwidth / 1e9
    out["fraction_of_bandwidth_batch_8192"] = out["batch_8192"]["x_gb_per_s"] * 1e9 / bandwidth
    out["targets"] = {
        "us_per_step_le_5_at_batch_256": out["batch_256"]["us_per_step"] <= 5.0,
        "ge_60pct_bandwidth_at_batch_8192": out["fraction_of_bandwidth_batch_8192"] >= 0.6,
    }
    return out


def checks(out_dir: Path, dry_run: bool = False) -> int:
    device = Device(dry_run)
    payload = {"device": device.name, "cupy": device.version, "dry_run": dry_run}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ("gpu-check-kernels-dry-run.json" if dry_run else "gpu-check-kernels.json")
    for name, check in (
        ("parity_float64", parity),
        ("graph_versus_eager", graph_versus_eager),
        ("memory_pool_growth", memory_growth),
        ("timings", timings),
    ):
        try:
            payload[name] = check(device)
        except Exception as error:  # noqa: BLE001 - record and go on to the next check
            payload[name] = {"error": f"{type(error).__name__}: {error}", "passed": False}
        print(name, json.dumps(payload[name], default=float)[:400], flush=True)
        # after every check: a run stopped by its time limit keeps what it measured
        path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    passed = [
        all(case["passed"] for case in payload["parity_float64"].values())
        if "error" not in payload["parity_float64"]
        else False,
        payload["graph_versus_eager"].get("passed", False),
        payload["memory_pool_growth"].get("passed", False),
    ]
    if "error" in payload["timings"]:  # e.g. epochs that took no rows: the times mean nothing
        passed.append(False)
    payload["passed"] = all(passed)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print("wrote", path)
    return 0 if payload["passed"] else 1


def tiny_fit(rows: int, features: int, classes: int, batch: int, dry_run: bool = False) -> int:
    """A small estimator fit on CuPy data (for compute-sanitizer and ncu).

    The accuracy is counted on the host from ``predict`` (no scikit-learn scorer on CuPy
    arrays, which would need array-API dispatch). ``dry_run``: NumPy data on the CPU
    emulation of the kernels (``SK_GPUSGD_CUDA_EMULATE=1``), the same estimator path.
    """
    from sk_gpusgd import GPUSGDClassifier

    if dry_run:
        os.environ[driver.ENV_EMULATE] = "1"
        xp, to_numpy, sync = np, np.asarray, lambda: None
    else:
        import cupy

        xp, to_numpy = cupy, cupy.asnumpy
        sync = cupy.cuda.Device().synchronize
    X, _ = problem(rows, features, 1, False, dtype=np.float32)
    y = np.random.default_rng(0).integers(0, classes, rows)
    model = GPUSGDClassifier(
        max_iter=3, tol=None, batch_size=batch, momentum=0.9, average=True, random_state=0
    )
    model.fit(xp.asarray(X), xp.asarray(y))
    sync()
    accuracy = float(np.mean(to_numpy(model.predict(xp.asarray(X))) == y))
    print("tiny fit done:", model.device_, f"training accuracy {accuracy:.3f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("checks")
    default_out = os.environ.get("OUT", str(Path(__file__).resolve().parent / "results"))
    check.add_argument("--out", type=Path, default=Path(default_out))
    dry_help = "no GPU: the CPU emulation of the kernels at small sizes"
    check.add_argument("--dry-run", action="store_true", help=dry_help)
    tiny = commands.add_parser("tiny-fit")
    tiny.add_argument("--dry-run", action="store_true", help=dry_help)
    tiny.add_argument("--rows", type=int, default=1000)
    tiny.add_argument("--features", type=int, default=20)
    tiny.add_argument("--classes", type=int, default=3)
    tiny.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    if args.command == "checks":
        return checks(args.out, args.dry_run)
    return tiny_fit(args.rows, args.features, args.classes, args.batch, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
