"""Activation layers: :class:`ReLU`."""

from . import functional as F
from .module import Module

__all__ = ["ReLU"]


class ReLU(Module):
    """Rectified linear unit, ``max(x, 0)``.

    Attributes
    ----------
    fusion : str
        ``'relu'``: the second layer of a fused run (see :mod:`cydrop.nn.fuse`).

    Examples
    --------
    >>> import numpy as np
    >>> ReLU().forward(np.array([[-1.0, 2.0]]))
    array([[0., 2.]])
    """

    fusion = "relu"

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        """Return ``np.maximum(x, 0)``.

        Parameters
        ----------
        x : ndarray

        Returns
        -------
        out : ndarray
        """
        out, self._cache = F.relu_forward(x)
        return out

    def backward(self, dout):
        """Pass ``dout`` where the forward input was positive.

        Parameters
        ----------
        dout : ndarray

        Returns
        -------
        dx : ndarray

        Raises
        ------
        RuntimeError
            If called before :meth:`forward`.
        """
        return F.relu_backward(dout, self._last_cache("ReLU"))
