"""
Plain SGD, momentum and Nesterov: training-loss curves
=======================================================

Trains :class:`sk_gpusgd.GPUSGDClassifier` (logistic regression) on the
standardised digits with the same constant learning rate three times: plain
minibatch SGD, heavy-ball momentum 0.9 and Nesterov momentum 0.9, and plots the
mean training loss of every epoch (``loss_curve_``).

Run it as a script::

    python examples/optimizer_curves.py --output optimizer_curves.png
"""

# %%
# Setup
# -----
import argparse

from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier

try:
    import matplotlib
except ImportError as error:
    raise SystemExit(
        "This example plots with matplotlib, which is not installed: "
        "pip install matplotlib (or pip install 'sk-gpusgd[examples]')."
    ) from error
matplotlib.use("Agg")  # write a file; no display needed
import matplotlib.pyplot as plt  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
parser.add_argument("--output", default="optimizer_curves.png", help="where to save the PNG figure")
args, _ = parser.parse_known_args()  # tolerate the extra arguments of gallery runners

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)

# %%
# Three optimizers, same learning rate
# ------------------------------------
common = dict(
    loss="log_loss",
    learning_rate="constant",
    eta0=0.01,
    batch_size=64,
    tol=None,
    max_iter=30,
    random_state=0,
    device="cpu",
)
# name: (extra parameters, line style); at this small rate Nesterov and momentum
# nearly coincide, hence the dashes
variants = {
    "plain SGD": ({}, "-"),
    "momentum 0.9": ({"momentum": 0.9}, "-"),
    "Nesterov 0.9": ({"momentum": 0.9, "nesterov": True}, "--"),
}
curves = {}
for name, (params, _) in variants.items():
    model = GPUSGDClassifier(**common, **params).fit(X, y)
    curves[name] = model.loss_curve_
    print(
        f"{name:>14}: final training loss {model.loss_curve_[-1]:.4f}, "
        f"training accuracy {model.score(X, y):.3f}"
    )

# %%
# Plot
# ----
fig, ax = plt.subplots(figsize=(6, 4))
for name, curve in curves.items():
    ax.plot(range(1, len(curve) + 1), curve, variants[name][1], label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("mean training loss (sum over classes)")
ax.set_yscale("log")
ax.set_title("digits, log_loss, eta0=0.01, batch_size=64")
ax.legend()
fig.tight_layout()
fig.savefig(args.output, dpi=120)
print(f"saved {args.output}")
