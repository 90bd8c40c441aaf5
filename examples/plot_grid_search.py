"""
Pipeline and GridSearchCV: tuning batch size and learning rate
==============================================================

:class:`~sk_gpusgd.GPUSGDClassifier` is a scikit-learn estimator: it goes in a
:class:`~sklearn.pipeline.Pipeline`, is cloned by
:class:`~sklearn.model_selection.GridSearchCV`, and its minibatch parameters
are searched like any other. Here a scaler and the classifier are tuned over
``batch_size`` and a constant learning rate ``eta0`` on the digits, with
Nesterov momentum.
"""

# %%
# The search
# ----------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

pipeline = make_pipeline(
    StandardScaler(),
    GPUSGDClassifier(
        loss="log_loss",
        learning_rate="constant",
        momentum=0.9,
        nesterov=True,
        max_iter=15,
        tol=None,
        random_state=0,
        device="cpu",
    ),
)
grid = {
    "gpusgdclassifier__batch_size": [8, 64, 512],
    "gpusgdclassifier__eta0": [0.001, 0.01, 0.1],
}
search = GridSearchCV(pipeline, grid, cv=3).fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"cross-validated accuracy {search.best_score_:.3f}")
print(f"held-out accuracy {search.score(X_test, y_test):.3f}")

# %%
# Mean cross-validated accuracy of every pair
# -------------------------------------------
# Larger batches take fewer steps per epoch and want a larger learning rate;
# small batches tolerate (and prefer) a small one.
batch_sizes = grid["gpusgdclassifier__batch_size"]
rates = grid["gpusgdclassifier__eta0"]
scores = np.asarray(search.cv_results_["mean_test_score"]).reshape(len(batch_sizes), len(rates))

fig, ax = plt.subplots(figsize=(5, 4))
image = ax.imshow(scores, cmap="viridis", vmin=scores.min(), vmax=1.0)
ax.set_xticks(range(len(rates)), [str(rate) for rate in rates])
ax.set_yticks(range(len(batch_sizes)), [str(size) for size in batch_sizes])
ax.set_xlabel("eta0")
ax.set_ylabel("batch_size")
for row in range(len(batch_sizes)):
    for column in range(len(rates)):
        ax.text(column, row, f"{scores[row, column]:.3f}", ha="center", va="center", color="w")
fig.colorbar(image, label="mean CV accuracy")
ax.set_title("digits, 15 epochs, Nesterov 0.9")
fig.tight_layout()
plt.show()
