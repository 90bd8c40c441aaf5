"""Data-parallel fits on Dask: 1 vs 2 CPU workers; streaming and several GPUs where present.

CPU: the same Dask data (generated on the workers, two row blocks) is fitted on
a LocalCluster of one worker process and of two (one thread each, so BLAS is
single-threaded); both train the same blocks with the same seeds, so they give
the same model and the speed-up is the cluster's alone. A single-process fit
of the same rows (one BLAS thread) stands beside them.

GPU, when CuPy sees a device: (a) a host array streamed through the device by
``max_device_memory`` (bytes of X per second of an epoch, as a share of the
measured pinned host-to-device copy rate); (b) with dask-cuda and two or more
GPUs, a ``LocalCUDACluster`` of every GPU against one GPU worker.

    python benchmarks/dask_bench.py --quick   # CPU, under a minute
    python benchmarks/dask_bench.py           # CPU 400k x 256, and the GPU cases

Writes benchmarks/results/dask-<device-slug>-<YYYYMMDD>[-quick].json and .md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    cupy_or_none,
    device_info,
    device_slug,
    environment_markdown,
    fmt_bool,
    fmt_bytes,
    fmt_float,
    fmt_ratio,
    fmt_seconds,
    markdown_table,
    now_iso,
    quiet_warnings,
    ratio,
    save_report,
    today,
    versions,
)

N_CLASSES = 10
# Dask starts workers with MALLOC_TRIM_THRESHOLD_ set, which also freezes glibc's
# mmap threshold: every batch-sized temporary is then mmap'ed and faulted in anew,
# which halves the engine's speed. A 16 MiB mmap threshold gives it back (see the
# Dask guide).
MMAP_THRESHOLD = {"MALLOC_MMAP_THRESHOLD_": 16 * 2**20}


def worker_environ() -> dict:
    """Dask's worker environment (one BLAS thread, ...) plus the mmap threshold."""
    import dask

    key = "distributed.nanny.pre-spawn-environ"
    return {key: {**dask.config.get(key, {}), **MMAP_THRESHOLD}}


def _labels(block, weights, noise_seed):
    """Argmax of a fixed linear model plus noise: a 10-class problem with a known ceiling."""
    scores = block @ weights
    rng = np.random.default_rng([noise_seed, int(abs(float(block[0, 0])) * 1e6)])
    scores = scores + 0.5 * rng.standard_normal(scores.shape, dtype=scores.dtype)
    return np.argmax(scores, axis=1).astype(np.int64)


def dask_data(rows: int, features: int, n_blocks: int, seed: int):
    """X (float32) and y as lazy Dask arrays, generated block by block on the workers."""
    import dask.array as da

    chunk = math.ceil(rows / n_blocks)
    X = da.random.default_rng(seed).standard_normal(
        (rows, features), chunks=(chunk, features), dtype=np.float32
    )
    weights = np.random.default_rng(seed + 1).standard_normal((features, N_CLASSES))
    weights = (weights / math.sqrt(features)).astype(np.float32)
    y = X.map_blocks(_labels, weights, seed, drop_axis=1, dtype=np.int64)
    return X, y, weights


def host_test_set(rows: int, features: int, weights, seed: int):
    X = np.random.default_rng(seed + 2).standard_normal((rows, features), dtype=np.float32)
    return X, _labels(X, weights, seed + 3)


def estimator(args, device: str):
    from sk_gpusgd import GPUSGDClassifier

    return GPUSGDClassifier(
        loss="log_loss",
        learning_rate="constant",
        eta0=args.eta0,
        batch_size=args.batch_size,
        max_iter=args.epochs,
        tol=None,
        random_state=args.seed,
        device=device,
    )


def cpu_cases(args, rows, features):
    """Seconds per epoch and accuracy on 1 and 2 worker processes, and in one process."""
    import dask
    from distributed import Client, LocalCluster
    from threadpoolctl import threadpool_limits

    results = {}
    for n_workers in (1, 2):
        with dask.config.set(worker_environ()):
            cluster = LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
        with cluster, Client(cluster) as client:
            X, y, weights = dask_data(rows, features, args.blocks, args.seed)
            X, y = client.persist([X, y])
            X_test, y_test = host_test_set(args.test_rows, features, weights, args.seed)
            with quiet_warnings():
                warm = estimator(args, "cpu").set_params(max_iter=1)
                warm.fit(X, y)
                seconds = math.inf
                for _ in range(args.repeats):
                    model = estimator(args, "cpu")
                    start = time.perf_counter()
                    model.fit(X, y)
                    seconds = min(seconds, time.perf_counter() - start)
            results[f"{n_workers} worker" + ("s" if n_workers > 1 else "")] = {
                "workers": n_workers,
                "seconds_per_epoch": seconds / args.epochs,
                "accuracy": float(model.score(X_test, y_test)),
                "coef": model.coef_,
            }
            if n_workers == 1:
                X_host, y_host = client.compute([X, y], sync=True)
    with threadpool_limits(1), quiet_warnings():
        seconds = math.inf
        for _ in range(args.repeats):
            model = estimator(args, "cpu")
            start = time.perf_counter()
            model.fit(X_host, y_host)
            seconds = min(seconds, time.perf_counter() - start)
    results["single process (no Dask)"] = {
        "workers": 0,
        "seconds_per_epoch": seconds / args.epochs,
        "accuracy": float(model.score(X_test, y_test)),
    }
    one, two = results["1 worker"], results["2 workers"]
    two["speedup_vs_1_worker"] = ratio(one["seconds_per_epoch"], two["seconds_per_epoch"])
    two["same_model_as_1_worker"] = bool(np.array_equal(one.pop("coef"), two.pop("coef")))
    return results


def pinned_copy_rate(cupy, nbytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Bytes/s of a pinned host-to-device copy."""
    import cupyx

    host = cupyx.empty_pinned((nbytes // 4,), dtype=np.float32)
    host[...] = 1.0
    device = cupy.empty_like(host)
    best = math.inf
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        device.set(host)
        stop.record()
        stop.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return nbytes / best


def streaming_case(args, cupy):
    """A host X larger than the cap streamed through the GPU, against the copy rate."""
    rows, features = args.stream_rows, args.features
    X = np.random.default_rng(args.seed).standard_normal((rows, features), dtype=np.float32)
    weights = np.random.default_rng(args.seed + 1).standard_normal((features, N_CLASSES))
    y = _labels(X, (weights / math.sqrt(features)).astype(np.float32), args.seed)
    cap = X.nbytes // 4
    model = estimator(args, "cuda").set_params(batch_size=8192, max_device_memory=cap)
    with quiet_warnings():
        model.set_params(max_iter=1).fit(X, y)
        model.set_params(max_iter=2)
        start = time.perf_counter()
        model.fit(X, y)
        seconds = (time.perf_counter() - start) / 2
    streamed_rate = X.nbytes / seconds
    copy_rate = pinned_copy_rate(cupy)
    return {
        "rows": rows,
        "features": features,
        "x_nbytes": X.nbytes,
        "max_device_memory": cap,
        "seconds_per_epoch": seconds,
        "streamed_bytes_per_s": streamed_rate,
        "pinned_h2d_bytes_per_s": copy_rate,
        "share_of_copy_rate": streamed_rate / copy_rate,
    }


def multi_gpu_case(args, cupy):
    """Every GPU (dask-cuda) against one GPU worker, CuPy blocks, same data."""
    n_gpus = cupy.cuda.runtime.getDeviceCount()
    if n_gpus < 2:
        return {"status": "skipped", "reason": f"{n_gpus} GPU: needs two or more"}
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        return {"status": "skipped", "reason": "dask-cuda is not installed"}
    from distributed import Client

    results = {}
    for n_workers in (1, n_gpus):
        visible = ",".join(str(i) for i in range(n_workers))
        with LocalCUDACluster(CUDA_VISIBLE_DEVICES=visible) as cluster, Client(cluster) as client:
            X, y, _ = dask_data(args.gpu_rows, args.features, n_gpus, args.seed)
            X = X.map_blocks(_to_cupy, dtype=np.float32)
            X, y = client.persist([X, y])
            with quiet_warnings():
                estimator(args, "cuda").set_params(max_iter=1, batch_size=4096).fit(X, y)
                model = estimator(args, "cuda").set_params(batch_size=4096)
                start = time.perf_counter()
                model.fit(X, y)
            results[f"{n_workers} GPU workers"] = (time.perf_counter() - start) / args.epochs
    return {
        "seconds_per_epoch": results,
        "speedup": ratio(*results.values()),
    }


def _to_cupy(block):
    import cupy

    return cupy.asarray(block)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CPU only, 100k x 256")
    parser.add_argument("--rows", type=int, help="CPU training rows (default 400k; quick 100k)")
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=2, help="row blocks of the Dask data")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, help="timed epochs (default 5; quick 3)")
    parser.add_argument("--eta0", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=2, help="timed fits, best kept")
    parser.add_argument("--test-rows", type=int, default=20_000)
    parser.add_argument("--stream-rows", type=int, default=4_000_000, help="GPU streaming rows")
    parser.add_argument("--gpu-rows", type=int, default=4_000_000, help="multi-GPU rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-gpu", action="store_true")
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 400_000)
    args.epochs = args.epochs or (3 if args.quick else 5)
    started = time.perf_counter()
    cupy = None if (args.quick or args.no_gpu) else cupy_or_none()
    info = device_info(use_gpu=cupy is not None)
    date = today()
    print(f"device: {info['name']}", flush=True)

    cpu = cpu_cases(args, rows, args.features)
    for name, rec in cpu.items():
        print(
            f"{name:<28}{fmt_seconds(rec['seconds_per_epoch']):>10}/epoch  acc "
            f"{rec['accuracy']:.4f}",
            flush=True,
        )
    gpu = {}
    if cupy is not None:
        for name, case in (("streaming", streaming_case), ("multi_gpu", multi_gpu_case)):
            try:
                gpu[name] = case(args, cupy)
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                gpu[name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
            print(name, gpu[name], flush=True)

    found = versions()
    for module in ("dask", "distributed"):
        found[module] = getattr(__import__(module), "__version__", "unknown")
    payload = {
        "benchmark": "dask_bench",
        "date": date,
        "timestamp": now_iso(),
        "command": " ".join(["python", "benchmarks/dask_bench.py", *(argv or sys.argv[1:])]),
        "device": info,
        "versions": found,
        "settings": {
            "rows": rows,
            "features": args.features,
            "classes": N_CLASSES,
            "blocks": args.blocks,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "eta0": args.eta0,
            "repeats": args.repeats,
            "worker_environ": worker_environ(),
            "test_rows": args.test_rows,
            "seed": args.seed,
        },
        "cpu": cpu,
        "gpu": gpu or None,
        "total_seconds": time.perf_counter() - started,
    }
    table = [
        [
            name,
            fmt_seconds(rec["seconds_per_epoch"]),
            fmt_ratio(rec.get("speedup_vs_1_worker")),
            fmt_float(rec["accuracy"]),
        ]
        for name, rec in cpu.items()
    ]
    lines = [
        "# Dask: data-parallel fits",
        "",
        environment_markdown(info, found, date),
        f"- Command: `{payload['command']}`",
        f"- {rows} x {args.features} float32 rows in {args.blocks} Dask blocks, "
        f"{N_CLASSES} classes from a noisy linear model, {args.test_rows} held-out rows; "
        f"GPUSGDClassifier(loss='log_loss', learning_rate='constant', eta0={args.eta0}, "
        f"batch_size={args.batch_size}, tol=None), {args.epochs} epochs timed after a "
        f"1-epoch warm-up, best of {args.repeats} fits; models averaged after every local "
        "epoch.",
        "- Worker processes have one thread each and MALLOC_MMAP_THRESHOLD_=16 MiB (see the "
        "Dask guide). The single-process fit runs with one BLAS "
        "thread. 1 and 2 workers train the same blocks with the same seeds: same model "
        f"(identical: {fmt_bool(cpu['2 workers']['same_model_as_1_worker'])}).",
        "",
        markdown_table(["case", "s/epoch", "speed-up vs 1 worker", "accuracy"], table),
        "",
    ]
    streaming = gpu.get("streaming", {})
    if "share_of_copy_rate" in streaming:
        lines += [
            "## GPU streaming (max_device_memory = X / 4)",
            "",
            markdown_table(
                ["X", "s/epoch", "streamed bytes/s", "pinned H2D bytes/s", "share"],
                [
                    [
                        fmt_bytes(streaming["x_nbytes"]),
                        fmt_seconds(streaming["seconds_per_epoch"]),
                        fmt_bytes(streaming["streamed_bytes_per_s"]) + "/s",
                        fmt_bytes(streaming["pinned_h2d_bytes_per_s"]) + "/s",
                        f"{streaming['share_of_copy_rate']:.0%}",
                    ]
                ],
            ),
            "",
        ]
    if gpu.get("multi_gpu"):
        lines += ["## Several GPU workers", "", f"`{gpu['multi_gpu']}`", ""]
    markdown = "\n".join(lines)
    print(markdown)
    save_report("dask", device_slug(info), date, args.quick, payload, markdown, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
