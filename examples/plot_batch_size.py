"""
Batch size against accuracy and time
====================================

Every step of :class:`~sk_gpusgd.GPUSGDClassifier` applies the mean gradient
of ``batch_size`` rows. Larger batches mean fewer, cheaper-per-row steps: one
matrix product does the work of many samples, so an epoch takes less time, but
for the same number of epochs the model takes fewer steps and, with the default
schedule, ends at a different learning rate.

This example trains for a fixed 5 epochs at several batch sizes and draws the
held-out accuracy and the fit time of each, with scikit-learn's per-sample
:class:`~sklearn.linear_model.SGDClassifier` as the reference. The data is small
so that the example runs in seconds on a laptop CPU: the times show the trend,
not the speed on a large problem (see the benchmark example for that).
"""

# %%
# Data
# ----
import time

import matplotlib.pyplot as plt
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier

X, y = make_classification(
    n_samples=4000,
    n_features=40,
    n_informative=20,
    n_classes=4,
    n_clusters_per_class=1,
    class_sep=1.5,
    random_state=0,
)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

# %%
# Five epochs at each batch size
# ------------------------------
common = dict(max_iter=5, tol=None, random_state=0)


def timed_fit(model):
    started = time.perf_counter()
    model.fit(X_train, y_train)
    return time.perf_counter() - started, model.score(X_test, y_test)


batch_sizes = [1, 4, 16, 64, 256, 1024]
seconds, accuracy = [], []
for batch_size in batch_sizes:
    fit_seconds, score = timed_fit(GPUSGDClassifier(batch_size=batch_size, device="cpu", **common))
    seconds.append(fit_seconds)
    accuracy.append(score)
    print(f"batch_size={batch_size:>5}: accuracy {score:.3f}, {fit_seconds:.3f} s")
sklearn_seconds, sklearn_accuracy = timed_fit(SGDClassifier(**common))
print(f"scikit-learn SGDClassifier: accuracy {sklearn_accuracy:.3f}, {sklearn_seconds:.3f} s")

# %%
# Plot
# ----
# ``batch_size=1`` takes scikit-learn's per-sample steps but pays a Python-level
# step for each row; with a few hundred rows per batch an epoch costs less than
# scikit-learn's compiled per-sample loop, and the time per epoch keeps falling
# until the matrix products dominate. The accuracy after a fixed budget of
# epochs moves much less: the default 'optimal' schedule advances once per
# step, so large batches end at a larger learning rate (a noisier last
# iterate, which ``average=True`` smooths) after fewer, better-aimed steps.
# On a GPU the time curve keeps falling to much larger batches (1024-8192).
fig, (acc_ax, time_ax) = plt.subplots(1, 2, figsize=(10, 4))
acc_ax.plot(batch_sizes, accuracy, "o-", label="GPUSGDClassifier")
acc_ax.axhline(sklearn_accuracy, color="gray", ls="--", label="scikit-learn SGDClassifier")
acc_ax.set_xlabel("batch_size")
acc_ax.set_ylabel("held-out accuracy after 5 epochs")
acc_ax.legend()
time_ax.plot(batch_sizes, seconds, "o-", label="GPUSGDClassifier (CPU)")
time_ax.set_yscale("log")
time_ax.axhline(sklearn_seconds, color="gray", ls="--", label="scikit-learn SGDClassifier")
time_ax.set_xlabel("batch_size")
time_ax.set_ylabel("fit time for 5 epochs (s)")
time_ax.legend()
for ax in (acc_ax, time_ax):
    ax.set_xscale("log", base=2)
    ax.set_xticks(batch_sizes, [str(size) for size in batch_sizes])
fig.suptitle(f"{X_train.shape[0]} rows x {X_train.shape[1]} features, 4 classes")
fig.tight_layout()
plt.show()
