"""Quickstart: GPUSGDClassifier as a drop-in for scikit-learn's SGDClassifier.

Runs on the GPU when CuPy and a CUDA device are present and the data is large
enough to pay for it, on the CPU otherwise. What it prints, line by line:

1. scikit-learn's SGDClassifier and ours, both with their defaults, on the
   digits (1,347 training rows): held-out accuracy, epochs and fit time. Ours
   trains on minibatches (``batch_size_``, chosen per fit from the data: 16
   rows here) with scikit-learn's per-sample rates scaled to the batch and the
   iterates averaged, so it needs fewer epochs; at this size both fits take a
   few tenths of a second or less, and the timing mostly shows fixed costs.
   The speed difference shows from tens of thousands of rows (see the README's
   tables).
2. The same model with Nesterov momentum and the log loss, in PyTorch's terms
   (``scale_learning_rate=False``: the rate multiplies the batch-mean gradient).
3. The class probabilities of one test digit.
"""

# %%
import time

from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

# %%
# Same parameters, same meaning: swap the class, keep the pipeline.
for estimator in (SGDClassifier(random_state=0), GPUSGDClassifier(random_state=0)):
    model = make_pipeline(StandardScaler(), estimator)
    started = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - started
    sgd = model[-1]
    where = getattr(sgd, "device_", "cpu")
    batch = f", batch_size_={sgd.batch_size_}" if hasattr(sgd, "batch_size_") else ""
    print(
        f"{type(sgd).__name__:>17}: held-out accuracy {model.score(X_test, y_test):.3f}, "
        f"{sgd.n_iter_} epochs{batch}, {seconds:.2f} s on {where}"
    )

# %%
# The deep-learning optimizer variants are parameters too.
nesterov = make_pipeline(
    StandardScaler(),
    GPUSGDClassifier(
        loss="log_loss",
        learning_rate="constant",
        eta0=0.01,
        momentum=0.9,
        nesterov=True,
        batch_size=64,
        scale_learning_rate=False,
        random_state=0,
    ),
).fit(X_train, y_train)
print(f"Nesterov momentum, log_loss: held-out accuracy {nesterov.score(X_test, y_test):.3f}")
print("class probabilities of the first test digit:", nesterov.predict_proba(X_test[:1]).round(2))
