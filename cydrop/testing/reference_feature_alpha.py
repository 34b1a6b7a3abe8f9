"""NumPy twin of :func:`cydrop.feature_alpha_dropout`, bit for bit: channel-wise alpha dropout.

The reduced mask is :func:`cydrop.testing.reference.keep_mask` of the mask shape, broadcast
over ``x``; the constants are ``alpha_constants`` (of ``cydrop._variant_params``) in ``x``'s
precision, as in :func:`cydrop.testing.reference_variants.alpha_dropout`.
"""

import numpy as np

from cydrop._variant_params import alpha_constants
from cydrop.testing import reference as _ref

__all__ = ["feature_alpha_dropout", "feature_alpha_dropout_backward", "feature_mask_shape"]


def feature_mask_shape(shape):
    """``(N, C, 1, ..., 1)``: one decision per (sample, channel) of ``(N, C, *spatial)``."""
    return tuple(shape[:2]) + (1,) * (len(shape) - 2)


def _keep(shape, mask_shape, rate, seed, offset):
    mask_shape = feature_mask_shape(shape) if mask_shape is None else tuple(mask_shape)
    size = int(np.prod(mask_shape, dtype=np.int64))
    return _ref.keep_mask(size, rate, seed, offset).reshape(mask_shape).astype(bool)


def feature_alpha_dropout(x, rate, seed, offset=0, mask_shape=None):
    """``where(keep, a x + b, c)`` with ``keep`` one decision per element of ``mask_shape``
    (default one per (N, C)) broadcast over ``x``; constants in ``x``'s precision, no FMA.

    Returns
    -------
    out : ndarray like ``x``
    keep : ndarray of bool, the mask shape
    """
    x = np.asarray(x)
    t = x.dtype.type
    _, a, b, c = alpha_constants(rate)
    keep = _keep(x.shape, mask_shape, rate, seed, offset)
    with np.errstate(over="ignore", invalid="ignore"):
        y = (t(a) * x) + t(b)
    return np.where(keep, y, t(c)).astype(x.dtype, copy=False), keep


def feature_alpha_dropout_backward(dout, rate, seed, offset=0, mask_shape=None):
    """``where(keep, dout * a, +0.0)`` with the forward's broadcast mask."""
    dout = np.asarray(dout)
    _, a, _, _ = alpha_constants(rate)
    keep = _keep(dout.shape, mask_shape, rate, seed, offset)
    with np.errstate(over="ignore", invalid="ignore"):
        y = dout * dout.dtype.type(a)
    return np.where(keep, y, dout.dtype.type(0.0))
