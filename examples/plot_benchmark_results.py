"""
Benchmark results, plotted from the committed JSON
==================================================

The scripts in ``benchmarks/`` write their results as JSON to
``benchmarks/results/``; this example draws the latest of three of them, so
the figures always match the committed numbers (nothing is timed here):

- ``bench.py``: seconds per epoch of this package, scikit-learn's SGD and a
  PyTorch minibatch loop on the same data, side by side;
- ``accuracy_vs_sklearn.py``: held-out accuracy (R^2 for regression) with
  default parameters against scikit-learn's, over five seeds;
- ``epochs_to_accuracy.py``: held-out accuracy per epoch of each optimizer
  variant.

Each figure names the machine the JSON says it was measured on.
"""

# %%
# Reading the results
# -------------------
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

try:
    HERE = Path(__file__).resolve().parent
except NameError:  # run in an interactive session from the examples folder
    HERE = Path.cwd()
RESULTS = HERE.parent / "benchmarks" / "results"


def latest(pattern):
    """The newest results file whose name matches ``pattern``, by the date it records."""
    found = []
    for path in RESULTS.glob(pattern):
        with open(path) as file:
            data = json.load(file)
        found.append((str(data.get("timestamp", data.get("date", ""))), path.name, data))
    if not found:
        raise SystemExit(f"no {pattern} in {RESULTS}: run the benchmark first")
    _, name, data = max(found, key=lambda item: item[:2])
    return name, data


# %%
# Seconds per epoch, side by side
# -------------------------------
# The full-size CPU run (1M rows x 128 features, batch 256). Lower is better.
name, speed = latest("bench-cpu-1m-*.json")
cases = speed["cases"]
competitors = speed["settings"]["competitors"]
fig, ax = plt.subplots(figsize=(7, 4))
width = 0.8 / len(competitors)
for index, competitor in enumerate(competitors):
    values = [
        case["results"].get(competitor, {}).get("seconds_per_epoch", np.nan) for case in cases
    ]
    positions = np.arange(len(cases)) + (index - (len(competitors) - 1) / 2) * width
    ax.bar(positions, values, width, label=competitor)
ax.set_xticks(range(len(cases)), [case["task"] for case in cases])
ax.set_ylabel("seconds per epoch")
first = cases[0]
ax.set_title(
    f"{first['n_train']:,} x {first['d']}, batch {first['batch_size']}, {speed['device']['name']}"
)
ax.legend()
fig.tight_layout()
print(f"{name}: {len(cases)} cases, competitors {', '.join(competitors)}")

# %%
# Accuracy against scikit-learn, default parameters
# -------------------------------------------------
# Mean and standard deviation over the seeds; the regression problem reports
# R^2.
name, accuracy = latest("accuracy-*.json")
problems = accuracy["problems"]
fig, ax = plt.subplots(figsize=(7, 4))
for offset, who in ((-0.2, "sk_gpusgd"), (0.2, "sklearn")):
    means = [problem[who]["mean"] for problem in problems]
    spreads = [problem[who]["std"] for problem in problems]
    ax.bar(np.arange(len(problems)) + offset, means, 0.4, yerr=spreads, capsize=3, label=who)
ax.set_xticks(
    range(len(problems)),
    [f"{p['name']}\n({p['metric']})" for p in problems],
    rotation=20,
    fontsize=8,
)
ax.set_ylabel("held-out score")
ax.set_title(f"default parameters, seeds {accuracy['settings']['seeds']}")
ax.legend()
fig.tight_layout()
print(f"{name}: {len(problems)} problems")

# %%
# Held-out accuracy per epoch of each optimizer variant
# -----------------------------------------------------
# The dashed line is the target the benchmark counts epochs to.
name, epochs = latest("epochs-to-accuracy-*.json")
fig, ax = plt.subplots(figsize=(7, 4))
for variant, result in epochs["variants"].items():
    curve = result["accuracy_curve"]
    ax.plot(np.arange(1, len(curve) + 1), curve, label=variant)
ax.axhline(epochs["target_accuracy"], color="k", ls="--", lw=1, label="target")
ax.set_xscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("held-out accuracy")
training = epochs["training"]
ax.set_title(
    f"{training['loss']}, {training['learning_rate']} eta0={training['eta0']}, "
    f"batch {training['batch_size']}"
)
ax.legend(fontsize=7)
fig.tight_layout()
print(f"{name}: {len(epochs['variants'])} variants")
plt.show()
