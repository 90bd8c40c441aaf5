"""Wide sparse set-up: a fit on 2^24 hashed features against the same rows in 2^14 columns.

Hashed text has 2^18 to 2^24 columns of which a row touches a few dozen. The
rows here are the same at every width: NNZ_PER_ROW values of +-1/sqrt(50) per
row in 2^14 distinct columns, which a wider matrix holds scattered over its
columns (an order-keeping random injection, as a hash spreads tokens) and,
as a second layout, packed into its first 2^14 columns (the epochs then
touch the same weights as at 2^14, which leaves their passes over every
weight), so every width has the same rows, non-zeros and arithmetic. Each fit
(``GPUSGDClassifier()`` defaults, ``max_iter=2, tol=None``, float64 CSR) is
split into

- set-up: from ``fit`` to the first epoch (validation, the batch statistics,
  the weights' allocation),
- epochs: the training loop,
- publish: ``coef_`` and the other attributes,

and the batch statistics (part of the set-up) are also timed alone. The
weights' own cost at each width is measured beside it: ``np.zeros((d, 1))``
with every page touched, and one copy (``coef_``). The target: the set-up
at 2^24 is the set-up at 2^14 plus at most that, and the epochs cost what
they cost at 2^14 plus their passes over the weights.

    python benchmarks/wide_sparse_bench.py           # 100k rows, 2^14 and 2^24
    python benchmarks/wide_sparse_bench.py --exponents 14 18 20 24

Writes benchmarks/results/wide-sparse-<device>-<date>.json/.md. CPU only (the
statistics are measured on the host for every device).
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    device_info,
    device_slug,
    environment_markdown,
    fmt_ratio,
    fmt_seconds,
    markdown_table,
    now_iso,
    quiet_warnings,
    save_report,
    today,
    versions,
)

BASE_EXPONENT = 14
NNZ_PER_ROW = 50


def base_rows(n_rows: int, seed: int):
    """(data, indices, indptr) of n_rows rows with NNZ_PER_ROW distinct columns of 2^14."""
    rng = np.random.default_rng(seed)
    width = 2**BASE_EXPONENT
    # distinct sorted columns per row: NNZ_PER_ROW draws of one stride each
    stride = width // NNZ_PER_ROW
    offsets = rng.integers(0, stride, size=(n_rows, NNZ_PER_ROW))
    indices = (np.arange(NNZ_PER_ROW) * stride + offsets).ravel()
    data = rng.choice([-1.0, 1.0], size=n_rows * NNZ_PER_ROW) / math.sqrt(NNZ_PER_ROW)
    indptr = np.arange(n_rows + 1, dtype=np.int64) * NNZ_PER_ROW
    w = rng.standard_normal(width)
    labels = (np.add.reduceat(data * w[indices], indptr[:-1]) > 0).astype(np.int64)
    return data, indices, indptr, labels


def spread(indices: np.ndarray, exponent: int, seed: int) -> np.ndarray:
    """The 2^14 columns scattered over 2^exponent, order kept (the identity at 2^14)."""
    base = 2**BASE_EXPONENT
    if exponent == BASE_EXPONENT:
        return indices.astype(np.int32)
    rng = np.random.default_rng(seed + exponent)
    candidates = np.unique(rng.integers(0, 2**exponent, size=4 * base))
    places = np.sort(rng.choice(candidates, base, replace=False))
    return places[indices].astype(np.int32)


def phases_of_one_fit(X, y, seed: int) -> dict:
    """Seconds of a fit's set-up, epochs and publishing, and of its batch statistics."""
    import sk_gpusgd._base as base
    from sk_gpusgd import GPUSGDClassifier

    marks = {}
    select_engine, measure_scaling = base.select_engine, base.measure_scaling

    def timed_select(*args, **kwargs):
        runner = select_engine(*args, **kwargs)

        def timed_runner(*run_args, **run_kwargs):
            marks["epochs_start"] = time.perf_counter()
            try:
                return runner(*run_args, **run_kwargs)
            finally:
                marks["epochs_end"] = time.perf_counter()

        return timed_runner

    def timed_scaling(*args, **kwargs):
        start = time.perf_counter()
        try:
            return measure_scaling(*args, **kwargs)
        finally:
            marks["statistics"] = marks.get("statistics", 0.0) + time.perf_counter() - start

    base.select_engine, base.measure_scaling = timed_select, timed_scaling
    try:
        model = GPUSGDClassifier(max_iter=2, tol=None, random_state=seed)
        with quiet_warnings():
            start = time.perf_counter()
            model.fit(X, y)
            end = time.perf_counter()
    finally:
        base.select_engine, base.measure_scaling = select_engine, measure_scaling
    return {
        "fit": end - start,
        "setup": marks["epochs_start"] - start,
        "statistics": marks.get("statistics", 0.0),
        "epochs": marks["epochs_end"] - marks["epochs_start"],
        "publish": end - marks["epochs_end"],
        "batch_size": int(model.batch_size_),
        "accuracy": float(np.mean(model.predict(X) == y)),
    }


def weights_cost(n_features: int) -> dict:
    """Seconds to allocate and touch a (n_features, 1) float64 array, and to copy it."""
    start = time.perf_counter()
    weights = np.zeros((n_features, 1))
    weights[:] = 0.0  # every page touched, as the first epoch does
    allocated = time.perf_counter()
    copy = weights.T.copy()
    copied = time.perf_counter()
    del weights, copy
    return {"allocate_and_touch": allocated - start, "copy": copied - allocated}


def best_of(runs: list[dict]) -> dict:
    """Each phase's minimum over the runs (a loaded machine only adds time)."""
    return {
        key: (min(run[key] for run in runs) if isinstance(runs[0][key], float) else runs[0][key])
        for key in runs[0]
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--exponents", type=int, nargs="+", default=[14, 24], help="n_features = 2**e"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="fits per width and layout, best kept"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    import scipy.sparse as sp

    info = device_info(use_gpu=False)
    date = today()
    print(f"device: {info['name']}", flush=True)
    data, indices, indptr, y = base_rows(args.rows, args.seed)
    # one warm-up fit: imports, the compiled extension, first-call costs
    warm = sp.csr_matrix((data, indices.astype(np.int32), indptr), shape=(args.rows, 2**14))
    phases_of_one_fit(warm, y, args.seed)
    del warm

    layouts = []
    for exponent in args.exponents:
        layouts.append((exponent, "scattered"))
        if exponent > BASE_EXPONENT:
            layouts.append((exponent, "packed"))
    matrices = {
        (exponent, layout): sp.csr_matrix(
            (
                data,
                spread(indices, exponent, args.seed)
                if layout == "scattered"
                else indices.astype(np.int32),
                indptr,
            ),
            shape=(args.rows, 2**exponent),
        )
        for exponent, layout in layouts
    }
    # the widths take turns, so that other work on the machine hits them alike
    runs = {key: [] for key in layouts}
    weight_runs = {key: [] for key in layouts}
    for _ in range(args.repeats):
        for key in layouts:
            gc.collect()
            runs[key].append(phases_of_one_fit(matrices[key], y, args.seed))
            weight_runs[key].append(weights_cost(2 ** key[0]))
    cases = []
    for exponent, layout in layouts:
        fit = best_of(runs[exponent, layout])
        weights = best_of(weight_runs[exponent, layout])
        cases.append(
            {
                "exponent": exponent,
                "layout": layout,
                "n_features": 2**exponent,
                "rows": args.rows,
                "nnz": int(matrices[exponent, layout].nnz),
                "fit": fit,
                "weights": weights,
            }
        )
        print(
            f"2^{exponent:<3} {layout:<9} fit {fit['fit']:.3f} s: set-up {fit['setup']:.3f} "
            f"(statistics {fit['statistics']:.4f}), epochs {fit['epochs']:.3f}, "
            f"publish {fit['publish']:.3f}; weights: allocate+touch "
            f"{weights['allocate_and_touch']:.3f}, copy {weights['copy']:.3f}",
            flush=True,
        )
    del matrices
    gc.collect()
    scattered = [case for case in cases if case["layout"] == "scattered"]

    first, last = scattered[0], scattered[-1]
    extra_setup = last["fit"]["setup"] - first["fit"]["setup"]
    weights_budget = last["weights"]["allocate_and_touch"] + last["weights"]["copy"]
    summary = {
        "setup_difference_seconds": extra_setup,
        "fit_difference_seconds": last["fit"]["fit"] - first["fit"]["fit"],
        "weights_budget_seconds": weights_budget,
        "statistics_ratio": last["fit"]["statistics"] / first["fit"]["statistics"],
        "setup_within_weights_budget": bool(extra_setup <= weights_budget),
    }
    found = versions()
    payload = {
        "benchmark": "wide_sparse_bench",
        "date": date,
        "timestamp": now_iso(),
        "command": " ".join(["python", "benchmarks/wide_sparse_bench.py", *(argv or sys.argv[1:])]),
        "device": info,
        "versions": found,
        "settings": {
            "rows": args.rows,
            "nnz_per_row": NNZ_PER_ROW,
            "distinct_columns": 2**BASE_EXPONENT,
            "repeats": args.repeats,
            "estimator": "GPUSGDClassifier(max_iter=2, tol=None), float64 CSR, other "
            "parameters default",
        },
        "cases": cases,
        "summary": summary,
        "total_seconds": time.perf_counter() - started,
    }
    table = []
    for case in cases:
        fit, weights = case["fit"], case["weights"]
        table.append(
            [
                f"2^{case['exponent']}",
                case["layout"] if case["exponent"] > BASE_EXPONENT else "-",
                fmt_seconds(fit["fit"]),
                fmt_seconds(fit["setup"]),
                fmt_seconds(fit["statistics"]),
                fmt_seconds(fit["epochs"]),
                fmt_seconds(fit["publish"]),
                fmt_seconds(weights["allocate_and_touch"]),
                fmt_seconds(weights["copy"]),
                fit["batch_size"],
            ]
        )
    headers = [
        "n_features",
        "columns",
        "fit",
        "set-up",
        "of which statistics",
        "2 epochs",
        "publish",
        "weights: zeros + touch",
        "weights: one copy",
        "batch_size_",
    ]
    lo, hi = first["exponent"], last["exponent"]
    verdict = "met" if summary["setup_within_weights_budget"] else "missed"
    markdown = "\n".join(
        [
            "# Wide sparse set-up: the same rows in 2^14 and 2^24 columns",
            "",
            environment_markdown(info, found, date),
            f"- Command: `{payload['command']}`",
            f"- {args.rows} rows x {NNZ_PER_ROW} non-zeros (float64 CSR) in 2^14 distinct "
            "columns, in the wider widths scattered (as a hash spreads them: the epochs "
            "also meet the cache misses of weights spread over the whole width) or packed "
            "into the first 2^14 (what is left is the passes over every weight); "
            + payload["settings"]["estimator"]
            + f"; the widths take turns, best of {args.repeats} per phase. A loaded "
            "machine: indicative numbers.",
            "",
            markdown_table(headers, table),
            "",
            f"- set-up(2^{hi}) - set-up(2^{lo}) = {fmt_seconds(extra_setup)}; the weights' "
            f"own cost at 2^{hi} (zeros + touch + one copy) = {fmt_seconds(weights_budget)} "
            f"(target: within it: **{verdict}**)",
            f"- fit(2^{hi}) - fit(2^{lo}) = {fmt_seconds(summary['fit_difference_seconds'])}",
            f"- statistics(2^{hi}) / statistics(2^{lo}) = {fmt_ratio(summary['statistics_ratio'])}",
            "",
        ]
    )
    print(markdown)
    save_report("wide-sparse", device_slug(info), date, False, payload, markdown, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
