"""Epochs to a target held-out accuracy, for each optimizer variant.

A 10-class problem (``make_classification(n_samples=20000, n_features=40,
n_informative=30, n_classes=10, n_clusters_per_class=1, random_state=0)``),
standardised on a 75/25 split. Every variant trains epoch by epoch with
``partial_fit`` (log_loss, constant learning rate 0.01, batch_size 256, CPU)
and the held-out accuracy is measured after each epoch. The target is
``--target-fraction`` (0.99) of the best accuracy plain SGD reaches in its
first ``--reference-epochs`` (50) epochs; the table gives the first epoch at
which each variant reaches it (at most ``--max-epochs``, 100).

Why 0.99: one-vs-rest logistic regression saturates near 0.60 held-out
accuracy on this problem, and plain SGD passes 0.95 of that in its second
epoch, which tells the variants apart by nothing; 0.99 of it takes plain SGD
about 20-30 epochs.

Run from the repository root::

    python benchmarks/epochs_to_accuracy.py

Prints a Markdown table and writes
``benchmarks/results/epochs-to-accuracy-<YYYYMMDD>.json``.
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
    markdown_table,
    now_iso,
    result_paths,
    today,
    versions,
    write_json,
)

DATASET = dict(
    n_samples=20000,
    n_features=40,
    n_informative=30,
    n_classes=10,
    n_clusters_per_class=1,
    random_state=0,
)
TRAINING = dict(
    loss="log_loss",
    learning_rate="constant",
    eta0=0.01,
    batch_size=256,
    device="cpu",
)
VARIANTS = {
    "plain": {},
    "momentum 0.9": {"momentum": 0.9},
    "momentum 0.9 + dampening 0.5": {"momentum": 0.9, "dampening": 0.5},
    "Nesterov 0.9": {"momentum": 0.9, "nesterov": True},
    "Nesterov 0.9, velocity form": {
        "momentum": 0.9,
        "nesterov": True,
        "momentum_form": "velocity",
    },
    "decoupled weight decay 1e-3": {"weight_decay": 1e-3, "decoupled_weight_decay": True},
    "clip_norm 1.0": {"clip_norm": 1.0},
}


def load_problem():
    """Standardised 75/25 split of the 10-class problem."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(**DATASET)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def accuracy_curve(params: dict, data, n_epochs: int, seed: int) -> tuple[list[float], float]:
    """Held-out accuracy after each of ``n_epochs`` partial_fit epochs, and the seconds taken."""
    from sk_gpusgd import GPUSGDClassifier

    X_train, X_test, y_train, y_test = data
    classes = np.unique(y_train)
    # a RandomState instance (not an int) so that every epoch draws a new permutation
    model = GPUSGDClassifier(**TRAINING, **params, random_state=np.random.RandomState(seed))
    curve, seconds = [], 0.0
    for _ in range(n_epochs):
        start = time.perf_counter()
        model.partial_fit(X_train, y_train, classes=classes)
        seconds += time.perf_counter() - start
        curve.append(float(model.score(X_test, y_test)))
    return curve, seconds


def first_epoch_reaching(curve: list[float], target: float) -> int | None:
    return next((epoch for epoch, acc in enumerate(curve, start=1) if acc >= target), None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--reference-epochs", type=int, default=50)
    parser.add_argument("--target-fraction", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffling")
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default: results/)")
    args = parser.parse_args(argv)

    data = load_problem()
    curves, seconds = {}, {}
    for name, params in VARIANTS.items():
        curves[name], seconds[name] = accuracy_curve(params, data, args.max_epochs, args.seed)
        print(f"{name}: best accuracy {max(curves[name]):.4f}", file=sys.stderr)

    reference_best = max(curves["plain"][: args.reference_epochs])
    target = args.target_fraction * reference_best
    rows, results = [], {}
    for name, params in VARIANTS.items():
        curve = curves[name]
        epochs = first_epoch_reaching(curve, target)
        results[name] = {
            "params": params,
            "epochs_to_target": epochs,
            "best_accuracy": max(curve),
            "final_accuracy": curve[-1],
            "seconds": seconds[name],
            "accuracy_curve": curve,
        }
        rows.append(
            [
                name,
                epochs if epochs is not None else f"> {args.max_epochs}",
                f"{max(curve):.4f}",
                f"{curve[-1]:.4f}",
                f"{seconds[name]:.1f}",
            ]
        )

    headers = [
        "variant",
        f"epochs to {target:.4f}",
        f"best accuracy ({args.max_epochs} ep.)",
        f"accuracy at epoch {args.max_epochs}",
        "training s (CPU)",
    ]
    print(
        f"Target: {args.target_fraction:g} x {reference_best:.4f} (best held-out accuracy of "
        f"plain SGD in {args.reference_epochs} epochs) = {target:.4f}\n"
    )
    print(markdown_table(headers, rows))

    json_path = args.output or result_paths("epochs-to-accuracy", None, today())[0]
    write_json(
        json_path,
        {
            "benchmark": "epochs_to_accuracy",
            "date": now_iso(),
            "command": " ".join(
                ["python benchmarks/epochs_to_accuracy.py", *(argv or sys.argv[1:])]
            ),
            "device": device_info(use_gpu=False),
            "versions": versions(),
            "dataset": {"make_classification": DATASET, "test_size": 0.25, "standardised": True},
            "training": {**TRAINING, "shuffle_seed": args.seed},
            "max_epochs": args.max_epochs,
            "reference_epochs": args.reference_epochs,
            "target_fraction": args.target_fraction,
            "reference_best_accuracy": reference_best,
            "target_accuracy": target,
            "variants": results,
        },
    )
    print(f"\nwrote {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
