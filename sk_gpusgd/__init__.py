"""Minibatch SGD linear models for scikit-learn, on the GPU (CuPy) or the CPU (NumPy).

Importing this package never imports CuPy: it is loaded only when an input or
``device='cuda'`` asks for the GPU.
"""

from .classifier import GPUSGDClassifier
from .regressor import GPUSGDRegressor

__all__ = ["GPUSGDClassifier", "GPUSGDRegressor"]
__version__ = "0.1.0"
