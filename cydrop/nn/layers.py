"""Deprecated: the layers moved to :mod:`cydrop.nn.module`, :mod:`~cydrop.nn.linear`,
:mod:`~cydrop.nn.activation`, :mod:`~cydrop.nn.dropout`, :mod:`~cydrop.nn.loss` and
:mod:`~cydrop.nn.container`; import them from :mod:`cydrop.nn`."""

import warnings

from .activation import ReLU
from .container import Sequential
from .dropout import Dropout
from .linear import Dense, Linear
from .loss import SoftmaxCrossEntropy
from .module import Module

__all__ = ["Module", "Dense", "Linear", "ReLU", "Dropout", "SoftmaxCrossEntropy", "Sequential"]

warnings.warn("cydrop.nn.layers is deprecated: import the layers from cydrop.nn",
              DeprecationWarning, stacklevel=2)
