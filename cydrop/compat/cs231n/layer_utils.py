"""CS231n's ``layer_utils``: the affine-ReLU sandwich layers (fully connected part)."""

from . import layers as _layers
from .layers import *  # noqa: F401,F403  (the assignment's layer_utils re-exports the layers)
from .layers import affine_backward, affine_forward, relu_backward, relu_forward

__all__ = ["affine_relu_forward", "affine_relu_backward"] + list(_layers.__all__)


def affine_relu_forward(x, w, b):
    """Affine then ReLU; returns ``(out, (fc_cache, relu_cache))``.

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
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Gradients of :func:`affine_relu_forward`: ``(dx, dw, db)``.

    Parameters
    ----------
    dout : ndarray
        Upstream gradient of the ReLU output.
    cache : tuple
        The cache :func:`affine_relu_forward` returned.
    """
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)
