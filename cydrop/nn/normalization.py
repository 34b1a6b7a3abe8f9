"""Batch and layer normalisation in CS231n's functional form (``(out, cache)`` forwards).

The network of :mod:`cydrop.nn.fc_net` uses them; ``cydrop.compat.cs231n.layers`` exports them
under the assignment's names.
"""

import numpy as np

from cydrop import _validation

__all__ = ["batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
           "layernorm_forward", "layernorm_backward"]

_BN_MODES = ("train", "test")


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
    which this already is).

    Parameters
    ----------
    dout : ndarray of shape (N, D)
        Upstream gradient.
    cache : tuple
        The cache ``batchnorm_forward`` returned in training mode.
    """
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
