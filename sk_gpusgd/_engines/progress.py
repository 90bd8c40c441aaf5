"""What ``verbose`` prints during a fit: one line per epoch and one at the end.

``verbose=1`` prints, per epoch, the epoch out of ``max_iter``, the mean loss
and the objective the stopping rule watches, samples per second and the time
elapsed; at the end, the total time, the device and the batch size, as
scikit-learn's own SGD does in spirit. ``verbose>=2`` adds what helps debug
convergence: the norm of the weights, the learning rate of the next step, the
non-zero weights and the steps taken. Those need one more small host read per
epoch; ``verbose=0`` prints nothing and costs nothing.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .._backend import device_name, to_namespace


class FitProgress:
    """Formats and prints the progress of one call of the training loop.

    Parameters
    ----------
    verbose : int
        The estimator's ``verbose``; 0 prints nothing.
    max_epochs : int
        Epochs this call may run (``max_iter``, or 1 for ``partial_fit``).
    n_samples : int
        Rows per epoch.
    """

    def __init__(self, verbose: int, max_epochs: int, n_samples: int):
        self.verbose = int(verbose)
        self.max_epochs = int(max_epochs)
        self.n_samples = int(n_samples)
        self.started = self.last = time.perf_counter()
        self.n_epochs = 0

    def epoch(
        self,
        xp,
        state,
        mean_loss: float,
        objective: float,
        validation_score: float | None = None,
        learning_rate: float | None = None,
    ) -> None:
        """Print the line of the epoch that just ended (two with ``verbose >= 2``)."""
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        self.n_epochs += 1
        if not self.verbose:
            return
        print(
            epoch_line(
                self.n_epochs,
                self.max_epochs,
                mean_loss,
                objective,
                self.n_samples / seconds if seconds > 0 else math.inf,
                now - self.started,
                validation_score,
            ),
            flush=True,
        )
        if self.verbose >= 2:
            print(weights_line(xp, state, learning_rate), flush=True)

    def converged(self) -> None:
        """Print that the stopping rule ended the fit."""
        if self.verbose:
            print(f"Convergence after {self.n_epochs} epochs", flush=True)

    def finished(self, xp, state, batch_size: int) -> None:
        """Print the end-of-fit summary: epochs, total time, device, batch size."""
        if self.verbose:
            print(
                end_line(
                    self.n_epochs,
                    time.perf_counter() - self.started,
                    device_name(xp, state.coef),
                    batch_size,
                    self.n_samples,
                ),
                flush=True,
            )


def epoch_line(
    epoch: int,
    max_epochs: int,
    mean_loss: float,
    objective: float,
    samples_per_second: float,
    elapsed: float,
    validation_score: float | None = None,
) -> str:
    """``-- Epoch 3/1000: loss 0.284512, objective 0.290001, ...`` (one line)."""
    score = "" if validation_score is None else f", validation score {validation_score:.6f}"
    return (
        f"-- Epoch {epoch}/{max_epochs}: loss {mean_loss:.6f}, objective {objective:.6f}"
        f"{score}, {_rate(samples_per_second)} samples/s, {elapsed:.2f} s elapsed"
    )


def weights_line(xp, state, learning_rate: float | None) -> str:
    """``   norm 4.213, non-zeros 60/64, learning rate 0.00123, steps 225``."""
    coef, _ = state.model_weights()
    norm_and_nonzeros = xp.stack(
        [
            xp.sqrt(xp.sum(coef * coef)),
            xp.sum(xp.astype(coef != 0, coef.dtype)),
        ]
    )
    norm, nonzeros = (float(v) for v in to_namespace(norm_and_nonzeros, np))
    size = math.prod(int(n) for n in coef.shape)
    rate = "" if learning_rate is None else f", learning rate {learning_rate:.6g}"
    return f"   norm {norm:.6g}, non-zeros {int(nonzeros)}/{size}{rate}, steps {state.steps}"


def end_line(n_epochs: int, seconds: float, device: str, batch_size: int, n_samples: int) -> str:
    """``Fit: 9 epochs of 1797 samples in 0.12 s on cpu, batch_size=84 (17 steps/epoch)``."""
    steps = -(-n_samples // batch_size)
    return (
        f"Fit: {n_epochs} epoch{'s' if n_epochs != 1 else ''} of {n_samples} samples in "
        f"{seconds:.2f} s on {device}, batch_size={batch_size} ({steps} steps/epoch)"
    )


def _rate(samples_per_second: float) -> str:
    """Samples per second, readable at any size: 950, 12.3k, 4.56M."""
    if not math.isfinite(samples_per_second):
        return "inf"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if samples_per_second >= factor:
            return f"{samples_per_second / factor:.3g}{suffix}"
    return f"{samples_per_second:.0f}"
