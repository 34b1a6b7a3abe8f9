"""Loss layers: :class:`SoftmaxCrossEntropy`."""

from . import functional as F
from .module import Module

__all__ = ["SoftmaxCrossEntropy"]


class SoftmaxCrossEntropy(Module):
    """Fused softmax + mean cross-entropy loss (stable, max-subtracted).

    Examples
    --------
    >>> import numpy as np
    >>> crit = SoftmaxCrossEntropy()
    >>> round(crit.forward(np.zeros((2, 4)), np.array([0, 3])), 4)
    1.3863
    >>> crit.backward().shape
    (2, 4)
    """

    def __init__(self):
        super().__init__()
        self._dscores = None

    def forward(self, scores, y):
        """Return the mean loss and keep its gradient for :meth:`backward`.

        Parameters
        ----------
        scores : ndarray of shape (N, C)
        y : ndarray of shape (N,) of int

        Returns
        -------
        loss : float
        """
        loss, self._dscores = F.softmax_cross_entropy(scores, y)
        return loss

    def __call__(self, scores, y):
        return self.forward(scores, y)

    def backward(self, dout=1.0):
        """Return ``dout * d loss / d scores``.

        Parameters
        ----------
        dout : float, default=1.0
            Upstream gradient of the scalar loss.

        Returns
        -------
        dscores : ndarray of shape (N, C)
        """
        if self._dscores is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        return self._dscores if dout == 1.0 else self._dscores * dout
