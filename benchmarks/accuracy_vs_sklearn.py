"""Held-out accuracy (R^2) of sk_gpusgd vs scikit-learn, both with default parameters.

GPUSGDClassifier vs SGDClassifier on digits (raw, and standardised), breast
cancer (standardised) and a 10-class make_classification problem; GPUSGDRegressor vs SGDRegressor on
diabetes (standardised). Mean over 5 seeds of train_test_split (stratified for
classification); the estimators get random_state=seed. CPU only.

    python benchmarks/accuracy_vs_sklearn.py

Writes benchmarks/results/accuracy-<YYYYMMDD>.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    device_info,
    environment_markdown,
    fmt_float,
    markdown_table,
    now_iso,
    quiet_warnings,
    save_report,
    today,
    versions,
)


def load_problems():
    """(name, task, X, y, standardise) of every problem."""
    from sklearn.datasets import (
        load_breast_cancer,
        load_diabetes,
        load_digits,
        make_classification,
    )

    X_mc, y_mc = make_classification(
        n_samples=5000,
        n_features=20,
        n_informative=15,
        n_classes=10,
        n_clusters_per_class=1,
        random_state=0,
    )
    return [
        ("digits", "classification", *load_digits(return_X_y=True), False),
        # the same, standardised: raw pixel values 0..16 make the final iterate noisy
        ("digits_standardised", "classification", *load_digits(return_X_y=True), True),
        ("breast_cancer", "classification", *load_breast_cancer(return_X_y=True), True),
        ("make_classification_10c", "classification", X_mc, y_mc, False),
        ("diabetes", "regression", *load_diabetes(return_X_y=True), True),
    ]


def evaluate(task: str, X, y, standardise: bool, seed: int, test_size: float) -> dict:
    from sklearn.linear_model import SGDClassifier, SGDRegressor
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

    stratify = y if task == "classification" else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=stratify
    )
    if standardise:
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    if task == "classification":
        ours = GPUSGDClassifier(random_state=seed, device="cpu")
        theirs = SGDClassifier(random_state=seed)
    else:
        ours = GPUSGDRegressor(random_state=seed, device="cpu")
        theirs = SGDRegressor(random_state=seed)
    out = {}
    for label, model in (("sk_gpusgd", ours), ("sklearn", theirs)):
        start = time.perf_counter()
        with quiet_warnings():
            model.fit(X_train, y_train)
        out[label] = {
            "score": float(model.score(X_test, y_test)),
            "n_iter": int(model.n_iter_),
            "fit_seconds": time.perf_counter() - start,
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--test-size", type=float, default=0.25)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    date = today()
    seeds = list(range(args.seeds))
    problems = []
    for name, task, X, y, standardise in load_problems():
        runs = [evaluate(task, X, y, standardise, seed, args.test_size) for seed in seeds]
        record = {
            "name": name,
            "task": task,
            "metric": "accuracy" if task == "classification" else "r2",
            "n_samples": int(X.shape[0]),
            "n_features": int(X.shape[1]),
            "n_classes": int(np.unique(y).size) if task == "classification" else None,
            "standardised": standardise,
            "per_seed": runs,
        }
        for label in ("sk_gpusgd", "sklearn"):
            scores = np.array([r[label]["score"] for r in runs])
            record[label] = {
                "mean": float(scores.mean()),
                "std": float(scores.std()),
                "mean_n_iter": float(np.mean([r[label]["n_iter"] for r in runs])),
                "mean_fit_seconds": float(np.mean([r[label]["fit_seconds"] for r in runs])),
            }
        diffs = np.array([r["sk_gpusgd"]["score"] - r["sklearn"]["score"] for r in runs])
        record["difference"] = {"mean": float(diffs.mean()), "std": float(diffs.std())}
        problems.append(record)
        print(
            f"{name:<26} ours {record['sk_gpusgd']['mean']:.4f}  sklearn "
            f"{record['sklearn']['mean']:.4f}  diff {record['difference']['mean']:+.4f}",
            flush=True,
        )

    info = device_info(use_gpu=False)
    found = versions()
    payload = {
        "benchmark": "accuracy_vs_sklearn",
        "date": date,
        "timestamp": now_iso(),
        "command": " ".join(
            ["python", "benchmarks/accuracy_vs_sklearn.py", *(argv or sys.argv[1:])]
        ),
        "device": info,
        "versions": found,
        "settings": {
            "seeds": seeds,
            "test_size": args.test_size,
            "estimators": "default parameters; random_state=seed; sk_gpusgd device='cpu'",
        },
        "problems": problems,
        "total_seconds": time.perf_counter() - started,
    }
    rows = [
        [
            p["name"],
            p["metric"],
            f"{p['n_samples']} x {p['n_features']}",
            "yes" if p["standardised"] else "no",
            f"{fmt_float(p['sk_gpusgd']['mean'])} ± {fmt_float(p['sk_gpusgd']['std'])}",
            f"{fmt_float(p['sklearn']['mean'])} ± {fmt_float(p['sklearn']['std'])}",
            f"{p['difference']['mean']:+.4f} ± {p['difference']['std']:.4f}",
            f"{p['sk_gpusgd']['mean_n_iter']:.1f} / {p['sklearn']['mean_n_iter']:.1f}",
        ]
        for p in problems
    ]
    table = markdown_table(
        [
            "data set",
            "metric",
            "shape",
            "standardised",
            "sk_gpusgd",
            "scikit-learn",
            "ours - sklearn",
            "epochs (ours / sklearn)",
        ],
        rows,
    )
    markdown = "\n".join(
        [
            "# Held-out accuracy: sk_gpusgd vs scikit-learn, default parameters",
            "",
            environment_markdown(info, found, date),
            f"- Command: `{payload['command']}`",
            f"- Mean ± std over seeds {seeds} of train_test_split(test_size={args.test_size}, "
            "stratified for classification, random_state=seed); estimators get "
            "random_state=seed; StandardScaler fit on the train split where marked.",
            "",
            table,
            "",
        ]
    )
    print()
    print(table)
    save_report("accuracy", None, date, False, payload, markdown, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
