"""Small MLP stack on top of cydrop's dropout kernels.

A CS231n-style functional core (:mod:`cydrop.nn.functional`), PyTorch-form
layers (:mod:`cydrop.nn.layers`), optimizers (:mod:`cydrop.nn.optim`),
CS231n's ``FullyConnectedNet`` and a ``Solver``, and numerical gradient
helpers. The dropout argument is ``rate`` (the probability of zeroing)
everywhere except ``FullyConnectedNet(dropout_keep_ratio=...)``, which
keeps CS231n's keep ratio at its boundary.
"""

from . import functional
from .gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from .layers import Dense, Dropout, Linear, Module, ReLU, Sequential, SoftmaxCrossEntropy
from .models import FullyConnectedNet, accuracy, mlp
from .optim import SGD, Adam, Optimizer, make_optimizer
from .progress import Progress
from .solver import Solver

__all__ = [
    "functional",
    "Module",
    "Dense",
    "Linear",
    "ReLU",
    "Dropout",
    "SoftmaxCrossEntropy",
    "Sequential",
    "FullyConnectedNet",
    "mlp",
    "accuracy",
    "Optimizer",
    "SGD",
    "Adam",
    "make_optimizer",
    "Solver",
    "Progress",
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "rel_error",
]
