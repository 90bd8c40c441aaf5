"""
A validation curve over alpha from one batched search
=====================================================

:class:`sk_gpusgd.model_selection.GridSearchCV` is scikit-learn's search; for this
package's estimators it trains the candidates of each fold together, as extra
output columns of one fit, and each candidate's model is the one its own ``fit``
would give. Here a softmax model (``multi_class='multinomial'``) is searched over
``alpha`` and ``eta0``: the 8 candidates of each of the 5 folds are one fit, and the
scores equal those of scikit-learn's own ``GridSearchCV``. The plot is the
validation curve over ``alpha``, read from ``cv_results_``.
"""

# %%
# The search
# ----------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_classification

from sk_gpusgd import GPUSGDClassifier
from sk_gpusgd.model_selection import GridSearchCV

X, y = make_classification(
    n_samples=2000, n_features=20, n_informative=10, n_classes=4, random_state=0
)
alphas = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
grid = {"alpha": alphas, "eta0": [0.01, 0.1], "learning_rate": ["invscaling"]}
estimator = GPUSGDClassifier(multi_class="multinomial", loss="log_loss", random_state=0)
started = time.perf_counter()
search = GridSearchCV(estimator, grid, cv=5, return_train_score=True).fit(X, y)
print(f"{len(search.cv_results_['params'])} candidates x 5 folds in "
      f"{time.perf_counter() - started:.2f} s; groups trained together: "
      f"{len(search.search_groups_)}")  # fmt: skip
print("best", search.best_params_, f"accuracy {search.best_score_:.3f}")

# %%
# The validation curve
# --------------------
results = search.cv_results_
fig, ax = plt.subplots(figsize=(6, 4))
for eta0 in grid["eta0"]:
    chosen = np.asarray(results["param_eta0"]) == eta0
    order = np.argsort(np.asarray(results["param_alpha"], dtype=float)[chosen])
    alpha = np.asarray(results["param_alpha"], dtype=float)[chosen][order]
    for kind, style in (("test", "-"), ("train", ":")):
        mean = results[f"mean_{kind}_score"][chosen][order]
        std = results[f"std_{kind}_score"][chosen][order]
        (line,) = ax.semilogx(alpha, mean, style, marker="o", label=f"{kind}, eta0={eta0}")
        ax.fill_between(alpha, mean - std, mean + std, alpha=0.15, color=line.get_color())
ax.set_xlabel("alpha")
ax.set_ylabel("accuracy (5-fold)")
ax.set_title("Validation curve from one batched search")
ax.legend()
fig.tight_layout()
plt.show()
