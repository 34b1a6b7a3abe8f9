"""CS231n assignment 2's ``layers`` module on cydrop's kernels.

Every ``*_forward`` returns ``(out, cache)``, every ``*_backward(dout, cache)`` the gradients of
its inputs, as in the assignment. Dropout is cydrop's (:func:`cydrop.dropout_forward`: ``p`` is
the KEEP probability; a given ``seed`` gives the same mask on every call; no seed draws one from
NumPy's global random state). The affine, ReLU and softmax helpers are
:mod:`cydrop.nn.functional`'s (one implementation), batch and layer normalisation
:mod:`cydrop.nn.normalization`'s.
"""

import numpy as np

from cydrop import _validation
from cydrop._cs231n import dropout_backward, dropout_forward
from cydrop.nn import functional as _F
from cydrop.nn.normalization import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
)

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "dropout_forward", "dropout_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward",
    "softmax_loss", "svm_loss",
]

def affine_forward(x, w, b):
    """Affine layer: ``out = x.reshape(N, D) @ w + b``; cache ``(x, w, b)``.

    Parameters
    ----------
    x : ndarray of shape (N, d_1, ..., d_k)
    w : ndarray of shape (D, M)
    b : ndarray of shape (M,)

    Returns
    -------
    out : ndarray of shape (N, M)
    cache : tuple
    """
    x = _validation.as_float_array(x, "x")
    return _F.affine_forward(x, w, b)


def affine_backward(dout, cache):
    """Gradients of :func:`affine_forward`: ``(dx, dw, db)``.

    Parameters
    ----------
    dout : ndarray of shape (N, M)
    cache : tuple
        ``(x, w, b)``.

    Returns
    -------
    dx : ndarray, ``x``'s shape
    dw : ndarray of shape (D, M)
    db : ndarray of shape (M,)
    """
    return _F.affine_backward(dout, cache)


def relu_forward(x):
    """ReLU, ``max(x, 0)``; the cache is ``x``.

    Parameters
    ----------
    x : ndarray

    Returns
    -------
    out : ndarray
    cache : ndarray
    """
    x = _validation.as_float_array(x, "x")
    return _F.relu_forward(x)


def relu_backward(dout, cache):
    """Gradient of :func:`relu_forward`: ``dout`` where ``x > 0``, else 0.

    Parameters
    ----------
    dout : ndarray
    cache : ndarray

    Returns
    -------
    dx : ndarray
    """
    return _F.relu_backward(dout, cache)


def softmax_loss(x, y):
    """Mean softmax cross-entropy loss and its gradient.

    Parameters
    ----------
    x : ndarray of shape (N, C)
        Class scores.
    y : ndarray of shape (N,)
        Labels, ``0 <= y[i] < C``.

    Returns
    -------
    loss : float
    dx : ndarray of shape (N, C)
    """
    return _F.softmax_cross_entropy(_validation.as_float_array(x, "x"), y)


def svm_loss(x, y):
    """Mean multiclass SVM (hinge, margin 1) loss and its gradient.

    Parameters
    ----------
    x : ndarray of shape (N, C)
    y : ndarray of shape (N,)

    Returns
    -------
    loss : float
    dx : ndarray of shape (N, C)
    """
    x = _validation.as_float_array(x, "x")
    y = np.asarray(y)
    n = x.shape[0]
    rows = np.arange(n)
    margins = np.maximum(0, x - x[rows, y][:, None] + 1.0)
    margins[rows, y] = 0
    loss = float(margins.sum() / n)
    dx = (margins > 0).astype(x.dtype)
    dx[rows, y] -= dx.sum(axis=1)
    dx /= n
    return loss, dx
