"""CS231n assignment 2's ``layers`` module on cydrop's kernels.

Every ``*_forward`` returns ``(out, cache)``, every ``*_backward(dout, cache)`` the gradients of
its inputs, as in the assignment. Dropout is cydrop's (:func:`cydrop.dropout_forward`: ``p`` is
the KEEP probability; a given ``seed`` gives the same mask on every call; no seed draws one from
NumPy's global random state). The affine, ReLU and softmax helpers are
:mod:`cydrop.nn.functional`'s (one implementation); batch and layer normalisation are here.
"""

import numpy as np

from cydrop import _validation
from cydrop._core import dropout_backward, dropout_forward
from cydrop.nn import functional as _F

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "dropout_forward", "dropout_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward",
    "softmax_loss", "svm_loss",
]

_BN_MODES = ("train", "test")


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


def _norm_param(param, name):
    if not isinstance(param, dict):
        raise TypeError(f"{name} must be a dict, got {type(param).__name__}")
    eps = _validation.check_real(param.get("eps", 1e-5), f"{name}['eps']", low=0.0,
                                 low_inclusive=False)
    return eps


def _check_affine_params(x, gamma, beta, axis_len, what):
    x = _validation.as_float_array(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (N, D) for {what}, got shape {x.shape}")
    for name, v in (("gamma", gamma), ("beta", beta)):
        if np.shape(v) != (axis_len,):
            raise ValueError(f"{name} must have shape ({axis_len},) to match x of shape "
                             f"{x.shape}, got {np.shape(v)}")
    return x


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation over the minibatch, with running statistics for test mode.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    gamma, beta : ndarray of shape (D,)
        Scale and shift.
    bn_param : dict
        ``'mode'`` (``'train'`` or ``'test'``, required), ``'eps'`` (1e-5), ``'momentum'``
        (0.9), ``'running_mean'`` and ``'running_var'`` (zeros of shape (D,), created and
        updated in the dict in train mode: ``running = momentum * running + (1 - momentum) *
        batch statistic``).

    Returns
    -------
    out : ndarray of shape (N, D)
    cache : tuple
        For :func:`batchnorm_backward` (None in test mode).

    Raises
    ------
    ValueError
        A mode other than 'train' or 'test', ``eps <= 0``, ``momentum`` outside [0, 1],
        mismatched shapes.
    """
    eps = _norm_param(bn_param, "bn_param")
    mode = bn_param.get("mode")
    if not isinstance(mode, str) or mode not in _BN_MODES:
        raise ValueError(f"Invalid forward batchnorm mode {mode!r}; bn_param['mode'] must be "
                         f"'train' or 'test'")
    momentum = _validation.check_real(bn_param.get("momentum", 0.9), "bn_param['momentum']",
                                      low=0.0, high=1.0)
    x = _check_affine_params(x, gamma, beta, np.shape(x)[-1] if np.ndim(x) else 0,
                             "batchnorm")
    d = x.shape[1]
    running_mean = bn_param.get("running_mean", np.zeros(d, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(d, dtype=x.dtype))
    if mode == "train":
        mu = x.mean(axis=0)
        var = x.var(axis=0)
        std = np.sqrt(var + eps)
        xhat = (x - mu) / std
        out = gamma * xhat + beta
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mu
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * var
        return out, (xhat, gamma, std)
    out = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
    bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
    return out, None


def _normalised_backward(dout, cache, axis):
    xhat, gamma, std = cache
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=axis, keepdims=True)
          - xhat * (dxhat * xhat).mean(axis=axis, keepdims=True)) / std
    return dx, dgamma, dbeta


def batchnorm_backward(dout, cache):
    """Gradients of :func:`batchnorm_forward` (train mode): ``(dx, dgamma, dbeta)``.

    Parameters
    ----------
    dout : ndarray of shape (N, D)
    cache : tuple

    Returns
    -------
    dx : ndarray of shape (N, D)
    dgamma, dbeta : ndarray of shape (D,)
    """
    if cache is None:
        raise ValueError("batchnorm_backward needs the cache of a train-mode batchnorm_forward, "
                         "got None (a test-mode cache)")
    return _normalised_backward(dout, cache, axis=0)


def batchnorm_backward_alt(dout, cache):
    """The same gradients as :func:`batchnorm_backward` (the assignment's simplified form,
    which this already is)."""
    return batchnorm_backward(dout, cache)


def layernorm_forward(x, gamma, beta, ln_param):
    """Layer normalisation: each example normalised over its features (same in train and test).

    Parameters
    ----------
    x : ndarray of shape (N, D)
    gamma, beta : ndarray of shape (D,)
    ln_param : dict
        ``'eps'`` (1e-5); other keys (a ``'mode'`` set by the network) are ignored.

    Returns
    -------
    out : ndarray of shape (N, D)
    cache : tuple
    """
    eps = _norm_param(ln_param, "ln_param")
    x = _check_affine_params(x, gamma, beta, np.shape(x)[-1] if np.ndim(x) else 0,
                             "layernorm")
    mu = x.mean(axis=1, keepdims=True)
    std = np.sqrt(x.var(axis=1, keepdims=True) + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (xhat, gamma, std)


def layernorm_backward(dout, cache):
    """Gradients of :func:`layernorm_forward`: ``(dx, dgamma, dbeta)``.

    Parameters
    ----------
    dout : ndarray of shape (N, D)
    cache : tuple

    Returns
    -------
    dx : ndarray of shape (N, D)
    dgamma, dbeta : ndarray of shape (D,)
    """
    return _normalised_backward(dout, cache, axis=1)
