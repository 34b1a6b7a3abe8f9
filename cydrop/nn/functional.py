"""Functional core of the small MLP stack, in CS231n form.

Every ``*_forward`` function returns ``(out, cache)`` and every
``*_backward(dout, cache)`` returns the gradient(s) with respect to its
inputs. The classes in :mod:`cydrop.nn.layers` wrap these functions; the
dropout step itself lives in the core (:func:`cydrop.dropout`).

All functions keep the floating dtype of their inputs: float32 in, float32
out.
"""

import numpy as np

__all__ = [
    "affine_forward",
    "affine_backward",
    "relu_forward",
    "relu_backward",
    "softmax",
    "softmax_cross_entropy",
]


def affine_forward(x, w, b):
    """Compute the forward pass of an affine (fully connected) layer.

    Parameters
    ----------
    x : ndarray of shape (N, d_1, ..., d_k)
        Input minibatch; each example is flattened to ``D = d_1 * ... * d_k``.
    w : ndarray of shape (D, M)
        Weights.
    b : ndarray of shape (M,)
        Biases.

    Returns
    -------
    out : ndarray of shape (N, M)
        ``x.reshape(N, D) @ w + b``.
    cache : tuple
        ``(x, w, b)``, for :func:`affine_backward`.

    Raises
    ------
    ValueError
        If the flattened input width does not match ``w.shape[0]``.

    Examples
    --------
    >>> import numpy as np
    >>> out, _ = affine_forward(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4))
    >>> out.shape
    (2, 4)
    """
    x2 = x.reshape(x.shape[0], -1)
    if x2.shape[1] != w.shape[0]:
        raise ValueError(
            f"x must have {w.shape[0]} features per example to match w of shape "
            f"{w.shape}, got x of shape {x.shape}"
        )
    out = x2 @ w
    out += b
    return out, (x, w, b)


def affine_backward(dout, cache, need_dx=True):
    """Compute the backward pass of an affine layer.

    Parameters
    ----------
    dout : ndarray of shape (N, M)
        Upstream gradient.
    cache : tuple
        ``(x, w, b)`` as returned by :func:`affine_forward`.
    need_dx : bool, default=True
        ``False`` skips the input gradient (a network's first layer needs none), saving one
        matrix product.

    Returns
    -------
    dx : ndarray of shape (N, d_1, ..., d_k), or None
        Gradient with respect to ``x`` (None when ``need_dx`` is False).
    dw : ndarray of shape (D, M)
        Gradient with respect to ``w``.
    db : ndarray of shape (M,)
        Gradient with respect to ``b``.
    """
    x, w, _ = cache
    x2 = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape) if need_dx else None
    dw = x2.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    """Compute the forward pass of a rectified linear unit, ``max(x, 0)``.

    Parameters
    ----------
    x : ndarray of any shape
        Input.

    Returns
    -------
    out : ndarray of the same shape and dtype as ``x``
        ``np.maximum(x, 0)``.
    cache : ndarray
        ``x``, for :func:`relu_backward`.
    """
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """Compute the backward pass of a rectified linear unit.

    Parameters
    ----------
    dout : ndarray
        Upstream gradient, same shape as the forward input.
    cache : ndarray
        The forward input ``x``.

    Returns
    -------
    dx : ndarray
        ``dout`` where ``x > 0``, zero elsewhere.
    """
    x = cache
    return np.where(x > 0, dout, 0).astype(dout.dtype, copy=False)


def softmax(scores):
    """Row-wise softmax, stabilised by subtracting each row's maximum.

    Parameters
    ----------
    scores : ndarray of shape (N, C)
        Unnormalised class scores.

    Returns
    -------
    probs : ndarray of shape (N, C)
        Class probabilities; each row sums to one.
    """
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def softmax_cross_entropy(scores, y):
    """Fused softmax and mean cross-entropy loss with its gradient.

    The softmax is computed after subtracting each row's maximum and the
    log-probabilities through ``log-sum-exp``, so large scores neither
    overflow nor produce ``log(0)``.

    Parameters
    ----------
    scores : ndarray of shape (N, C)
        Unnormalised class scores.
    y : ndarray of shape (N,) of int, or (N, C) one-hot
        Class labels, ``0 <= y[i] < C``.

    Returns
    -------
    loss : float
        Mean cross-entropy over the ``N`` examples.
    dscores : ndarray of shape (N, C)
        Gradient of ``loss`` with respect to ``scores`` (same dtype):
        ``(softmax(scores) - onehot(y)) / N``.

    Raises
    ------
    ValueError
        If ``scores`` is not 2-D, or ``y`` has the wrong length or labels
        outside ``[0, C)``.

    Examples
    --------
    >>> import numpy as np
    >>> loss, d = softmax_cross_entropy(np.zeros((4, 10)), np.arange(4))
    >>> round(loss, 6) == round(float(np.log(10)), 6)
    True
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (N, C), got shape {scores.shape}")
    n, c = scores.shape
    y = np.asarray(y)
    if y.ndim == 2:  # one-hot labels, as nnfs accepts
        y = y.argmax(axis=1)
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match scores, got {y.shape}")
    if n and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"y must satisfy 0 <= y < {c}, got labels in [{y.min()}, {y.max()}]")
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    log_probs_y = shifted[rows, y] - np.log(sum_exp[:, 0])
    loss = float(-log_probs_y.mean()) if n else 0.0
    dscores = exp
    dscores /= sum_exp
    dscores[rows, y] -= 1
    dscores /= max(n, 1)
    return loss, dscores
