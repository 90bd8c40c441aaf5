"""
Plain SGD, momentum and Nesterov: training-loss curves
=======================================================

Trains :class:`sk_gpusgd.GPUSGDClassifier` (logistic regression) on the
standardised digits with the same constant learning rate three times: plain
minibatch SGD, heavy-ball momentum 0.9 and Nesterov momentum 0.9, and plots the
mean training loss of every epoch (``loss_curve_``). A second panel shows where
PyTorch's momentum (``momentum_form='buffer'``) and Keras' / MXNet's
(``momentum_form='velocity'``) part: when the learning rate changes.

Run it as a script (``--output`` saves the figure instead of showing it)::

    python examples/plot_optimizer_curves.py --output optimizer_curves.png
"""

# %%
# Setup
# -----
import argparse

from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sk_gpusgd import GPUSGDClassifier

try:
    import matplotlib.pyplot as plt
except ImportError as error:
    raise SystemExit(
        "This example plots with matplotlib, which is not installed: "
        "pip install matplotlib (or pip install 'sk-gpusgd[examples]')."
    ) from error

parser = argparse.ArgumentParser(description="Loss curves of the optimizer variants")
parser.add_argument("--output", default=None, help="save the figure to this PNG file")
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
# Buffer or velocity: the same until the learning rate moves
# -----------------------------------------------------------
# With a decaying schedule ('invscaling') PyTorch's buffer form rescales the
# whole momentum history by the new, smaller rate, while the velocity form of
# Keras, MXNet and PuzzleLib keeps each past step at the rate it was taken with.
decaying = dict(common, learning_rate="invscaling", eta0=0.05, power_t=0.5, momentum=0.9)
forms = {}
for form in ("buffer", "velocity"):
    model = GPUSGDClassifier(**decaying, momentum_form=form).fit(X, y)
    forms[form] = model.loss_curve_
    print(f"momentum_form={form!r:>10}: final training loss {model.loss_curve_[-1]:.4f}")

# %%
# Plot
# ----
fig, (ax, form_ax) = plt.subplots(1, 2, figsize=(11, 4))
for name, curve in curves.items():
    ax.plot(range(1, len(curve) + 1), curve, variants[name][1], label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("mean training loss (sum over classes)")
ax.set_yscale("log")
ax.set_title("constant eta0=0.01, batch_size=64")
ax.legend()
for form, curve in forms.items():
    form_ax.plot(range(1, len(curve) + 1), curve, label=f"momentum_form={form!r}")
form_ax.set_xlabel("epoch")
form_ax.set_yscale("log")
form_ax.set_title("invscaling eta0=0.05, momentum 0.9")
form_ax.legend()
fig.suptitle("digits, log_loss")
fig.tight_layout()
if args.output:
    fig.savefig(args.output, dpi=120)
    print(f"saved {args.output}")
else:
    plt.show()
