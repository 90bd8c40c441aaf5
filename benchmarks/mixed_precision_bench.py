"""float16 vs float32 X: accuracy after the same epochs, bytes of X and time per epoch.

GPUSGDClassifier trains on float32 X, on float16 X with the default
multi_precision=True (float32 master weights, no float32 copy of X) and on
float16 X with multi_precision=False (X converted to float32 first), with the
same seed and settings; on the CPU always and on the GPU when CuPy sees one.

    python benchmarks/mixed_precision_bench.py --quick   # CPU, seconds
    python benchmarks/mixed_precision_bench.py           # 1M x 256

Writes benchmarks/results/mixed-precision-<device-slug>-<YYYYMMDD>.json and .md.
"""

from __future__ import annotations

import argparse
import gc
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
    fmt_bytes,
    fmt_float,
    fmt_ratio,
    fmt_seconds,
    linear_targets,
    markdown_table,
    now_iso,
    quiet_warnings,
    ratio,
    save_report,
    standard_normal_float32,
    synchronize,
    timed,
    to_host,
    today,
    versions,
)

TASKS = ("binary", "multiclass")
CONFIGS = (
    ("float32", np.float32, True),
    ("float16", np.float16, True),
    ("float16, multi_precision=False", np.float16, False),
)


def make_estimator(args, batch_size: int, epochs: int, device: str, multi_precision: bool):
    from sk_gpusgd import GPUSGDClassifier

    return GPUSGDClassifier(
        loss=args.loss,
        penalty="l2",
        alpha=args.alpha,
        learning_rate="constant",
        eta0=args.eta0,
        max_iter=epochs,
        tol=None,
        shuffle=True,
        batch_size=batch_size,
        random_state=args.seed,
        multi_precision=multi_precision,
        device=device,
    )


def measure(args, X, y, X_test, y_test, batch_size, device, multi_precision, sync) -> dict:
    def fit(epochs):
        def go():
            with quiet_warnings():
                return make_estimator(args, batch_size, epochs, device, multi_precision).fit(X, y)

        return go

    warmup, _ = timed(fit(1), sync)
    best, model = float("inf"), None
    for _ in range(args.repeats):
        model = None
        gc.collect()
        seconds, model = timed(fit(args.epochs), sync)
        best = min(best, seconds)
    accuracy = float(np.mean(to_host(model.predict(X_test)) == y_test))
    return {
        "warmup_seconds": warmup,
        "fit_seconds": best,
        "seconds_per_epoch": best / args.epochs,
        "accuracy": accuracy,
        "coef_dtype": str(model.coef_.dtype),
        "x_nbytes": int(X.nbytes),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k x 128, CPU only")
    parser.add_argument("--rows", type=int, help="training rows (default 1M; quick 200k)")
    parser.add_argument("--features", type=int, help="default 256; quick 128")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default 1024 8192; quick 256")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, help="timed fits, best kept (default 3; quick 2)")
    parser.add_argument("--loss", choices=("hinge", "log_loss"), default="hinge")
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--eta0", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-gpu", action="store_true")
    args = parser.parse_args(argv)
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    d = args.features or (128 if args.quick else 256)
    batch_sizes = args.batch_sizes or ([256] if args.quick else [1024, 8192])
    args.repeats = args.repeats or (2 if args.quick else 3)
    started = time.perf_counter()

    cupy = None if (args.quick or args.no_gpu) else cupy_or_none()
    info = device_info(use_gpu=cupy is not None)
    date = today()
    devices = ["cpu"] + (["cuda"] if cupy is not None else [])
    print(f"device: {info['name']}", flush=True)

    n_test = max(rows // 10, 5_000)
    X_all = standard_normal_float32(rows + n_test, d, args.seed)
    cases = []
    for task in args.tasks:
        y_all = linear_targets(X_all, task, args.seed)
        y, y_test = y_all[:rows], y_all[rows:]
        for device in devices:
            for batch_size in batch_sizes:
                record = {
                    "task": task,
                    "device": device if device == "cpu" else "cuda:0",
                    "rows": rows,
                    "features": d,
                    "batch_size": batch_size,
                    "epochs": args.epochs,
                    "results": {},
                }
                for label, dtype, multi_precision in CONFIGS:
                    X = X_all[:rows].astype(dtype, copy=dtype is not np.float32)
                    X_test = X_all[rows:].astype(dtype)
                    sync = None
                    if device == "cuda":
                        X, X_test = cupy.asarray(X), cupy.asarray(X_test)
                        yc = cupy.asarray(y)
                        sync = lambda: synchronize(cupy)  # noqa: E731
                    else:
                        yc = y
                    try:
                        rec = measure(
                            args, X, yc, X_test, y_test, batch_size, device, multi_precision, sync
                        )
                    except Exception as exc:  # noqa: BLE001
                        traceback.print_exc()
                        rec = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
                    record["results"][label] = rec
                    del X, X_test
                    if cupy is not None:
                        gc.collect()
                        cupy.get_default_memory_pool().free_all_blocks()
                    print(
                        f"{task:<10} {record['device']:<7} b{batch_size:<5} {label:<32}"
                        + (
                            f"{fmt_seconds(rec['seconds_per_epoch']):>10}/epoch  acc "
                            f"{rec['accuracy']:.4f}  X {fmt_bytes(rec['x_nbytes'])}"
                            if "accuracy" in rec
                            else rec["status"]
                        ),
                        flush=True,
                    )
                base = record["results"].get("float32", {})
                for rec in record["results"].values():
                    if "accuracy" in rec and "accuracy" in base:
                        rec["accuracy_minus_float32"] = rec["accuracy"] - base["accuracy"]
                        rec["speedup_vs_float32"] = ratio(
                            base["seconds_per_epoch"], rec["seconds_per_epoch"]
                        )
                cases.append(record)

    found = versions()
    payload = {
        "benchmark": "mixed_precision_bench",
        "date": date,
        "timestamp": now_iso(),
        "command": " ".join(
            ["python", "benchmarks/mixed_precision_bench.py", *(argv or sys.argv[1:])]
        ),
        "device": info,
        "versions": found,
        "settings": {
            "rows": rows,
            "test_rows": n_test,
            "features": d,
            "batch_sizes": batch_sizes,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "loss": args.loss,
            "alpha": args.alpha,
            "eta0": args.eta0,
            "learning_rate": "constant",
            "seed": args.seed,
        },
        "cases": cases,
        "total_seconds": time.perf_counter() - started,
    }
    table_rows = []
    for case in cases:
        for label, rec in case["results"].items():
            name = f"{case['task']}, {case['device']}, batch {case['batch_size']}"
            if "accuracy" not in rec:
                table_rows.append([name, label, rec.get("status", "-")] + ["-"] * 4)
                continue
            table_rows.append(
                [
                    name,
                    label,
                    fmt_bytes(rec["x_nbytes"]),
                    fmt_seconds(rec["seconds_per_epoch"]),
                    fmt_ratio(rec.get("speedup_vs_float32")),
                    fmt_float(rec["accuracy"]),
                    f"{rec.get('accuracy_minus_float32', 0.0):+.4f}",
                ]
            )
    markdown = "\n".join(
        [
            "# Mixed precision: float16 vs float32 X",
            "",
            environment_markdown(info, found, date),
            f"- Command: `{payload['command']}`",
            f"- {rows} x {d} standard-normal training rows ({n_test} held out, same dtype as "
            f"training), {args.epochs} epochs timed after a 1-epoch warm-up, best of "
            f"{args.repeats}; GPUSGDClassifier(loss={args.loss!r}, alpha={args.alpha}, "
            f"learning_rate='constant', eta0={args.eta0}, tol=None, random_state={args.seed}).",
            "- X nbytes is the array given to fit; with multi_precision=False fit first makes "
            "a float32 copy (twice those bytes, its time included in s/epoch), with "
            "multi_precision=True each batch is cast to float32 as it is used.",
            "",
            markdown_table(
                [
                    "case",
                    "X dtype",
                    "X nbytes",
                    "s/epoch",
                    "speed-up vs float32",
                    "accuracy",
                    "acc - float32",
                ],
                table_rows,
            ),
            "",
        ]
    )
    print(markdown)
    save_report("mixed-precision", device_slug(info), date, args.quick, payload, markdown, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
