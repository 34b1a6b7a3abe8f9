"""Small MLP stack on top of cydrop's dropout kernels.

A CS231n-style functional core (:mod:`cydrop.nn.functional`); PyTorch-form layers on one
:class:`Module` base (:mod:`cydrop.nn.module`): :mod:`~cydrop.nn.linear` (``Dense``,
``DropConnectDense``), :mod:`~cydrop.nn.activation`, :mod:`~cydrop.nn.loss`, every dropout layer
in :mod:`~cydrop.nn.dropout`, the :class:`Sequential` container (:mod:`~cydrop.nn.container`),
which runs ``Dense, ReLU[, Dropout]`` as one fused step (:mod:`~cydrop.nn.fuse`); Monte Carlo
dropout (:mod:`~cydrop.nn.mc`); optimizers (:mod:`~cydrop.nn.optim`), CS231n's
``FullyConnectedNet`` and a ``Solver``, and numerical gradient helpers. The dropout argument is
``rate`` (the probability of dropping) everywhere except
``FullyConnectedNet(dropout_keep_ratio=...)``, which keeps CS231n's keep ratio at its boundary.
"""

from . import functional
from .activation import ReLU
from .container import Sequential
from .dropout import (
    AlphaDropout,
    BroadcastDropout,
    Dropout,
    DropoutBase,
    ExactKDropout,
    GaussianDropout,
    LockedDropout,
    SpatialDropout,
)
from .fuse import FusedDenseReLUDropout
from .gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from .linear import Dense, DropConnectDense, Linear
from .loss import SoftmaxCrossEntropy
from .mc import MCPrediction, SequentialMC, mc_predict, mc_sample_seed
from .models import FullyConnectedNet, accuracy, mlp
from .modern import DropBlock2d, DropBlock3d, DropoutAdd, DropPath, SoftmaxDropout, drop_path_rates
from .module import Module
from .optim import SGD, Adam, Optimizer, make_optimizer
from .progress import Progress
from .schedules import (
    ConstantRate,
    CosineRate,
    EarlyDropout,
    LinearRate,
    RateSchedule,
    parse_schedule,
)
from .solver import Solver

__all__ = [
    "functional",
    "Module",
    "Dense",
    "Linear",
    "DropConnectDense",
    "ReLU",
    "DropoutBase",
    "Dropout",
    "BroadcastDropout",
    "SpatialDropout",
    "LockedDropout",
    "ExactKDropout",
    "AlphaDropout",
    "GaussianDropout",
    "SoftmaxCrossEntropy",
    "Sequential",
    "FusedDenseReLUDropout",
    "mc_predict",
    "mc_sample_seed",
    "MCPrediction",
    "SequentialMC",
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
    "DropoutAdd",
    "DropPath",
    "SoftmaxDropout",
    "DropBlock2d",
    "DropBlock3d",
    "drop_path_rates",
    "RateSchedule",
    "ConstantRate",
    "LinearRate",
    "CosineRate",
    "EarlyDropout",
    "parse_schedule",
]
