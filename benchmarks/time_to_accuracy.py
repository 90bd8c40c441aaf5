"""Time to a target held-out accuracy, each competitor at its best learning rate.

Every competitor trains epoch by epoch on the same data; after each epoch its
held-out accuracy is measured (outside the timed region) next to the training
time so far. Competitors:

- sk_gpusgd with its defaults (no tuning: what a user gets),
- sk_gpusgd tuned: ``learning_rate='constant'``, batch 1024, its best ``eta0``
  (and, with several classes, the softmax model the PyTorch loop trains:
  ``multi_class='multinomial'``),
- scikit-learn's SGDClassifier with its defaults, and with 'constant' at its
  best ``eta0`` (per-sample SGD and minibatch SGD do not share an eta0),
- a hand-written PyTorch minibatch loop (batch 1024, its best ``lr``) when torch
  is installed.

The "best" rate is the one of a small grid with the highest final held-out
accuracy after ``--epochs`` epochs. The target is ``--target-share`` (99 % by
default) of the best accuracy any competitor reached; the headline is each
competitor's time to first reach it.

    python benchmarks/time_to_accuracy.py --rows 200000 --features 100
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import device_info, device_slug, environment_markdown, save_report, today, versions
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier

ETA_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def _curve(make, fit_epoch, score, epochs):
    """(seconds so far, held-out accuracy) after each epoch."""
    model = make()
    spent, curve = 0.0, []
    for _ in range(epochs):
        started = time.perf_counter()
        fit_epoch(model)
        spent += time.perf_counter() - started
        curve.append((spent, score(model)))
    return curve


def _estimator_curve(make, data, epochs, classes):
    X_train, X_test, y_train, y_test = data

    def fit_epoch(model):
        model.partial_fit(X_train, y_train, classes=classes)

    return _curve(make, fit_epoch, lambda model: model.score(X_test, y_test), epochs)


def _default_curve(estimator_class, data, epochs):
    """A default fit's own stopping rule, timed once; one point at its end."""
    X_train, X_test, y_train, y_test = data
    started = time.perf_counter()
    model = estimator_class(random_state=0).fit(X_train, y_train)
    return [(time.perf_counter() - started, model.score(X_test, y_test))]


def _torch_curve(lr, data, epochs, n_classes, batch_size=1024):
    import torch

    X_train, X_test, y_train, y_test = (torch.as_tensor(a) for a in data)
    X_train, X_test = X_train.float(), X_test.float()
    layer = torch.nn.Linear(X_train.shape[1], n_classes)
    optimizer = torch.optim.SGD(layer.parameters(), lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)

    def fit_epoch(_):
        order = torch.randperm(X_train.shape[0], generator=generator)
        for start in range(0, X_train.shape[0], batch_size):
            rows = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(layer(X_train[rows]), y_train[rows])
            loss.backward()
            optimizer.step()

    def score(_):
        with torch.no_grad():
            return float((layer(X_test).argmax(1) == y_test).float().mean())

    return _curve(lambda: None, fit_epoch, score, epochs)


def _best(curves_by_rate):
    """The rate whose last epoch scored best, and its curve."""
    rate = max(curves_by_rate, key=lambda r: curves_by_rate[r][-1][1])
    return rate, curves_by_rate[rate]


def _time_to(curve, target):
    return next((seconds for seconds, accuracy in curve if accuracy >= target), None)


def run(rows, features, n_classes, epochs, target_share, with_torch):
    X, y = make_classification(
        n_samples=rows,
        n_features=features,
        n_informative=features // 2,
        n_classes=n_classes,
        random_state=0,
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(X_train)
    data = (
        scaler.transform(X_train).astype(np.float32),
        scaler.transform(X_test).astype(np.float32),
        y_train,
        y_test,
    )
    classes = np.unique(y)
    results = {}
    results["sk_gpusgd defaults"] = (None, _default_curve(GPUSGDClassifier, data, epochs))
    results["scikit-learn defaults"] = (None, _default_curve(SGDClassifier, data, epochs))
    ours = {
        eta: _estimator_curve(
            lambda eta=eta: GPUSGDClassifier(
                learning_rate="constant", eta0=eta, batch_size=1024, random_state=0
            ),
            data,
            epochs,
            classes,
        )
        for eta in ETA_GRID
    }
    results["sk_gpusgd tuned (batch 1024)"] = _best(ours)
    if len(classes) > 2:
        # the PyTorch loop trains a softmax model: the same model here
        multinomial = {
            eta: _estimator_curve(
                lambda eta=eta: GPUSGDClassifier(
                    loss="log_loss",
                    multi_class="multinomial",
                    learning_rate="constant",
                    eta0=eta,
                    batch_size=1024,
                    random_state=0,
                ),
                data,
                epochs,
                classes,
            )
            for eta in ETA_GRID
        }
        results["sk_gpusgd multinomial tuned (batch 1024)"] = _best(multinomial)
    theirs = {
        eta: _estimator_curve(
            lambda eta=eta: SGDClassifier(learning_rate="constant", eta0=eta, random_state=0),
            data,
            epochs,
            classes,
        )
        for eta in ETA_GRID
    }
    results["scikit-learn tuned"] = _best(theirs)
    if with_torch:
        torch_curves = {
            lr: _torch_curve(lr, data, epochs, len(classes)) for lr in (1e-2, 1e-1, 1.0)
        }
        results["PyTorch loop (CPU, batch 1024)"] = _best(torch_curves)
    best = max(curve[-1][1] for _, curve in results.values())
    target = target_share * best
    table = []
    for name, (rate, curve) in results.items():
        table.append(
            {
                "competitor": name,
                "best rate": rate,
                "final accuracy": curve[-1][1],
                "seconds to target": _time_to(curve, target),
                "seconds total": curve[-1][0],
                "epochs": len(curve),
            }
        )
    return target, table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--classes", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the tuned runs")
    parser.add_argument("--target-share", type=float, default=0.99)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--output-prefix", default="time-to-accuracy")
    args = parser.parse_args()
    started = time.perf_counter()
    info, found, date = device_info(use_gpu=False), versions(), today()
    try:
        import torch  # noqa: F401

        with_torch = not args.no_torch
    except ImportError:
        with_torch = False
    lines, records = [], []
    for n_classes in args.classes:
        target, table = run(
            args.rows, args.features, n_classes, args.epochs, args.target_share, with_torch
        )
        lines.append(
            f"\n### {n_classes} classes, {args.rows} x {args.features}, target accuracy "
            f"{target:.4f} ({args.target_share:.0%} of the best)\n"
        )
        lines.append("| competitor | best rate | final accuracy | s to target | s total | epochs |")
        lines.append("|---|---|---|---|---|---|")
        for row in table:
            to_target = row["seconds to target"]
            lines.append(
                f"| {row['competitor']} | {row['best rate'] or 'default'} | "
                f"{row['final accuracy']:.4f} | "
                f"{'not reached' if to_target is None else f'{to_target:.2f}'} | "
                f"{row['seconds total']:.2f} | {row['epochs']} |"
            )
        records.append({"classes": n_classes, "target": target, "table": table})
    text = "\n".join(lines)
    print(text)
    command = "python benchmarks/time_to_accuracy.py " + " ".join(sys.argv[1:])
    markdown = "\n".join(
        [
            "# Time to a target accuracy, each competitor at its best learning rate",
            "",
            environment_markdown(info, found, date),
            f"- Command: `{command.strip()}`",
            "- Defaults: one fit with its own stopping rule (one point: its end). Tuned: "
            f"epoch by epoch, the rate of {ETA_GRID} (torch: 0.01, 0.1, 1) with the best "
            "final held-out accuracy; accuracy is measured outside the timed region.",
            text,
        ]
    )
    payload = {"info": info, "versions": found, "command": command, "results": records}
    save_report(args.output_prefix, device_slug(info), date, False, payload, markdown, started)


if __name__ == "__main__":
    main()
