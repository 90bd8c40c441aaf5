"""
Minibatch SGD on two blobs: loss per epoch and the decision boundary
====================================================================

A well-known NumPy tutorial on stochastic gradient descent trains a logistic
unit on 400 points of two Gaussian blobs with minibatches of 32 rows, a
learning rate of 0.01 and 100 epochs, then draws two pictures: the training
loss of every epoch, and the line that separates the two classes.

Here :class:`~sk_gpusgd.GPUSGDClassifier` runs that loop. ``loss='log_loss'``
is the logistic unit, ``learning_rate='constant'`` with ``eta0=0.01`` the fixed
step, ``batch_size=32`` the minibatch, ``scale_learning_rate=False`` the
tutorial's step of the rate times the batch-mean gradient (by default the rate
is scikit-learn's per-sample rate, which a batch scales up), ``penalty=None``
no regularisation and ``tol=None`` all 100 epochs. (The tutorial measures a squared error of the
sigmoid and folds the bias into the weights; the log loss and a learned
intercept are the standard choice.)
"""

# %%
# The data and the model
# ----------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs

from sk_gpusgd import GPUSGDClassifier

X, y = make_blobs(n_samples=400, n_features=2, centers=2, cluster_std=2.5, random_state=95)

model = GPUSGDClassifier(
    loss="log_loss",
    penalty=None,
    learning_rate="constant",
    eta0=0.01,
    batch_size=32,
    scale_learning_rate=False,
    max_iter=100,
    tol=None,
    shuffle=False,  # the tutorial walks the rows in order
    device="cpu",
).fit(X, y)
print(f"training accuracy {model.score(X, y):.3f} after {model.n_iter_} epochs")

# %%
# The same loop, written out in NumPy
# -----------------------------------
# One epoch walks the rows in batches of 32; each batch takes one step along
# the batch-mean gradient of the log loss (labels as +1 / -1). Without
# shuffling, the estimator's weights are exactly these.
signs = np.where(y == 1, 1.0, -1.0)
w, b = np.zeros(2), 0.0
for _ in range(100):
    for start in range(0, len(X), 32):
        X_batch, s_batch = X[start : start + 32], signs[start : start + 32]
        derivative = -s_batch / (np.exp(s_batch * (X_batch @ w + b)) + 1.0)
        w -= 0.01 * X_batch.T @ derivative / len(X_batch)
        b -= 0.01 * derivative.mean()
print("NumPy loop weights:", w.round(6), round(b, 6))
print("estimator weights: ", model.coef_[0].round(6), model.intercept_[0].round(6))

# %%
# Loss per epoch, and the line between the classes
# ------------------------------------------------
# ``loss_curve_`` holds the mean training loss of every epoch. The boundary is
# where the decision ``w0 x0 + w1 x1 + b`` is zero.
fig, (loss_ax, data_ax) = plt.subplots(1, 2, figsize=(10, 4))
loss_ax.plot(np.arange(1, model.n_iter_ + 1), model.loss_curve_)
loss_ax.set_xlabel("epoch")
loss_ax.set_ylabel("mean training loss")
loss_ax.set_title("Training loss")

data_ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", s=12, edgecolor="k", linewidth=0.3)
(w0, w1), b = model.coef_[0], model.intercept_[0]
x0 = np.linspace(X[:, 0].min(), X[:, 0].max(), 2)
data_ax.plot(x0, -(w0 * x0 + b) / w1, "k-", label="decision boundary")
data_ax.set_ylim(X[:, 1].min() - 1, X[:, 1].max() + 1)
data_ax.set_xlabel("x0")
data_ax.set_ylabel("x1")
data_ax.set_title("Two blobs and the learned line")
data_ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
