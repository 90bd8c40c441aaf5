"""Streaming ``partial_fit``: time per call and held-out accuracy, against scikit-learn.

A stream is the training rows cut into chunks of ``--chunk-rows`` and passed
to ``partial_fit`` one after the other (one pass, ``classes`` given on every
call as an out-of-core loop does), with default parameters and
``random_state=0`` in both libraries. Data:

- dense: ``make_classification`` 20,000 x 20, binary, standardized;
- sparse: the defaults suite's tf-idf bag of words, 20,000 x 2^14, binary
  (CSR, the out-of-core text case).

Each stream is timed as the fastest of ``--repeats`` runs, the two libraries
taking turns; reported: milliseconds per ``partial_fit`` call, the ratio ours
/ scikit-learn, and the held-out accuracy after the pass.

    python benchmarks/stream_bench.py
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import (
    device_info,
    device_slug,
    environment_markdown,
    markdown_table,
    save_report,
    today,
    versions,
)
from defaults_suite import bag_of_words
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier

N_ROWS = 20_000


def data_sets():
    """(name, X_train, X_test, y_train, y_test) for the dense and the sparse stream."""
    X, y = make_classification(N_ROWS, 20, n_informative=10, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(X_train)
    yield "make_classification 20k x 20 (standardized)", scaler.transform(X_train), scaler.transform(X_test), y_train, y_test  # noqa: E501  # fmt: skip
    X, y = bag_of_words(N_ROWS, 2**14, 2, seed=N_ROWS + 2)
    yield "bag of words 20k x 2^14 (CSR)", *train_test_split(X, y, test_size=0.25, random_state=0)


def stream(model, X, y, chunk_rows: int, classes) -> tuple[float, int]:
    """Seconds for one pass of partial_fit calls, and the number of calls."""
    starts = range(0, X.shape[0], chunk_rows)
    started = time.perf_counter()
    for start in starts:
        rows = slice(start, start + chunk_rows)
        model.partial_fit(X[rows], y[rows], classes=classes)
    return time.perf_counter() - started, len(starts)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[100, 400, 2000])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--output-prefix", default="stream")
    args = parser.parse_args(argv)
    started, date = time.perf_counter(), today()
    info = device_info(use_gpu=False)
    makers = {"sk_gpusgd": GPUSGDClassifier, "sklearn": SGDClassifier}
    records = []
    for name, X_train, X_test, y_train, y_test in data_sets():
        classes = np.unique(y_train)
        for chunk_rows in args.chunk_rows:
            best = {label: np.inf for label in makers}
            scores = {}
            for repeat in range(args.repeats):
                order = list(makers) if repeat % 2 == 0 else list(makers)[::-1]
                for label in order:
                    model = makers[label](random_state=0)
                    seconds, calls = stream(model, X_train, y_train, chunk_rows, classes)
                    best[label] = min(best[label], seconds)
                    scores[label] = float(model.score(X_test, y_test))
            record = {"data": name, "chunk_rows": chunk_rows, "calls": calls}
            for label in makers:
                record[label] = {"ms_per_call": 1e3 * best[label] / calls, "score": scores[label]}
            record["time_ratio"] = best["sk_gpusgd"] / best["sklearn"]
            records.append(record)
            print(
                f"{name}, chunks of {chunk_rows}: ours {record['sk_gpusgd']['ms_per_call']:.3f} "
                f"ms/call, scikit-learn {record['sklearn']['ms_per_call']:.3f} ms/call "
                f"(ratio {record['time_ratio']:.2f}); accuracy {scores['sk_gpusgd']:.4f} / "
                f"{scores['sklearn']:.4f}"
            )
    command = " ".join(["python", "benchmarks/stream_bench.py", *(argv or sys.argv[1:])])
    rows = [
        (
            r["data"],
            r["chunk_rows"],
            r["calls"],
            f"{r['sk_gpusgd']['ms_per_call']:.3f}",
            f"{r['sklearn']['ms_per_call']:.3f}",
            f"{r['time_ratio']:.2f}",
            f"{r['sk_gpusgd']['score']:.4f} / {r['sklearn']['score']:.4f}",
        )
        for r in records
    ]
    headers = ("data", "chunk rows", "calls", "ours ms/call", "sklearn ms/call", "ratio", "accuracy ours / sklearn")  # noqa: E501  # fmt: skip
    found = versions()
    markdown = "\n".join(
        [
            "# Streaming partial_fit: sk_gpusgd vs scikit-learn",
            "",
            environment_markdown(info, found, date),
            f"- Command: `{command}`",
            f"- One pass over the training rows in chunks, classes given on every call; each "
            f"stream the fastest of {args.repeats} runs, the libraries taking turns.",
            "",
            markdown_table(headers, rows),
            "",
        ]
    )
    payload = {
        "benchmark": "stream",
        "date": date,
        "command": command,
        "device": info,
        "versions": found,
    }
    payload["records"] = records
    save_report(args.output_prefix, device_slug(info), date, False, payload, markdown, started)


if __name__ == "__main__":
    main()
