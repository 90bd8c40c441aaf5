"""
Streaming data with partial_fit
===============================

When the data arrives in chunks (read from disk, a queue, a database cursor)
``partial_fit`` trains one epoch over each chunk and keeps the weights, the
momentum buffers and the learning-rate clock between calls. The first call
must name every class of the stream.

This example streams 20 chunks of 1,000 rows into
:class:`~sk_gpusgd.GPUSGDClassifier` (batches of 32 rows, with and without
weight averaging) and into scikit-learn's per-sample
:class:`~sklearn.linear_model.SGDClassifier`, and draws the held-out accuracy
after each chunk.
"""

# %%
# A stream of chunks
# ------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier

from sk_gpusgd import GPUSGDClassifier

X, y = make_classification(
    n_samples=25_000,
    n_features=30,
    n_informative=15,
    n_classes=3,
    n_clusters_per_class=1,
    random_state=0,
)
X_test, y_test = X[20_000:], y[20_000:]
classes = np.unique(y)


def chunks(size=1_000):
    """What reading a large file chunk by chunk would give."""
    for start in range(0, 20_000, size):
        yield X[start : start + size], y[start : start + size]


# %%
# One partial_fit per chunk
# -------------------------
# With the default 'optimal' schedule the last iterate of a minibatch model is
# noisy; ``average=True`` predicts with the running mean of the weights instead.
models = {
    "GPUSGDClassifier, batch 32": GPUSGDClassifier(batch_size=32, random_state=0),
    "GPUSGDClassifier, batch 32, average=True": GPUSGDClassifier(
        batch_size=32, average=True, random_state=0
    ),
    "scikit-learn SGDClassifier": SGDClassifier(random_state=0),
}
accuracy = {name: [] for name in models}
for X_chunk, y_chunk in chunks():
    for name, model in models.items():
        model.partial_fit(X_chunk, y_chunk, classes=classes)
        accuracy[name].append(model.score(X_test, y_test))
for name, scores in accuracy.items():
    print(f"{name:>41}: held-out accuracy {scores[-1]:.3f} after {len(scores)} chunks")

# %%
# Held-out accuracy as the stream goes on
# ---------------------------------------
fig, ax = plt.subplots(figsize=(7, 4))
for (name, scores), style in zip(accuracy.items(), ["o-", "^-", "s--"], strict=True):
    ax.plot(np.arange(1, len(scores) + 1) * 1_000, scores, style, label=name)
ax.set_xlabel("rows streamed")
ax.set_ylabel("held-out accuracy")
ax.legend()
ax.set_title("partial_fit, one call per chunk of 1,000 rows")
fig.tight_layout()
plt.show()
