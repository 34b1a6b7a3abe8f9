"""Pure-NumPy twins of cydrop's modern dropout ops, bit for bit.

Each function reproduces a kernel of ``src/cydrop_modern_impl.h`` (through
:mod:`cydrop.residual`, :mod:`cydrop.attention`) or the NumPy of :mod:`cydrop.blocks`, from the
same draw field as :mod:`cydrop.testing.reference`. :func:`drop_block` is written the way
torchvision writes ``drop_block2d``: pad, max-pool, invert, rescale, so it checks cydrop's
block rule independently.
"""

import math

import numpy as np

from cydrop import _contract
from cydrop.testing import reference as _ref

__all__ = ["dropout_add", "drop_path", "exp_neg", "softmax", "softmax_dropout",
           "softmax_dropout_backward", "drop_block", "drop_block_gamma"]


def _scale(rate, dtype, scale_by_keep=True):
    thr, scale = _contract.threshold_and_scale(rate)
    return thr, np.dtype(dtype).type(scale if scale_by_keep else 1.0)


def _select(keep, v):
    return np.where(keep, v, v.dtype.type(0.0))


def dropout_add(x, residual, rate, seed, offset=0, bias=None, per_sample=False):
    """``residual + where(keep, (x + bias) * scale, +0.0)``; ``residual`` None adds nothing."""
    x = np.asarray(x)
    _, scale = _scale(rate, x.dtype)
    v = x if bias is None else x + bias
    with np.errstate(over="ignore", invalid="ignore"):
        v = v * scale
    if per_sample:
        keep = _ref.keep_mask(x.shape[0], rate, seed, offset).reshape(
            (x.shape[0],) + (1,) * (x.ndim - 1))
    else:
        keep = _ref.keep_mask(x.size, rate, seed, offset).reshape(x.shape)
    y = _select(keep, v)
    return y if residual is None else residual + y


def drop_path(x, rate, seed, offset=0, scale_by_keep=True):
    """Stochastic depth: sample ``r`` kept when draw ``offset + r`` is, scaled by ``1/keep``."""
    x = np.asarray(x)
    _, scale = _scale(rate, x.dtype, scale_by_keep)
    keep = _ref.keep_mask(x.shape[0], rate, seed, offset).reshape(
        (x.shape[0],) + (1,) * (x.ndim - 1))
    with np.errstate(over="ignore", invalid="ignore"):
        return _select(keep, x * scale)


_C = [2.505210838544172e-08, 2.755731922398589e-07, 2.755731922398589e-06,
      2.48015873015873e-05, 0.0001984126984126984, 0.001388888888888889, 0.008333333333333333,
      0.041666666666666664, 0.16666666666666666, 0.5, 1.0, 1.0]
_MAGIC = 6755399441055744.0
_MAGIC_BITS = 0x4338000000000000


def exp_neg(x):
    """cydrop's exponential of float64 ``x <= 0`` (``cydrop_exp_neg``): 0 below -708."""
    x = np.asarray(x, dtype=np.float64)
    ok = x >= -708.0
    xc = np.where(ok, x, -708.0)
    t = xc * 1.4426950408889634 + _MAGIC
    n = t - _MAGIC
    r = (xc - n * 0.693147180369123816490) - n * 1.90821492927058770002e-10
    p = np.full_like(r, _C[0])
    for c in _C[1:]:
        p = p * r
        p = p + c
    k = t.view(np.int64) - _MAGIC_BITS
    s = ((k + 1023).astype(np.uint64) << np.uint64(52)).view(np.float64)
    return np.where(ok, p * s, 0.0)


def softmax(z):
    """cydrop's softmax along the last axis: the row maximum first; the exponentials in double
    summed in eight lanes (lane k adds elements j % 8 == k in order), combined as
    ``((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))``; then ``e * (1 / sum)``."""
    z = np.asarray(z)
    m = z.max(axis=-1, keepdims=True).astype(np.float64)
    e = exp_neg(z.astype(np.float64) - m)
    inv = 1.0 / _lane_sum(e)[..., None]
    return (e * inv).astype(z.dtype)


def _lane_sum(e):
    """The kernels' row sum of float64 ``e`` along the last axis: eight lanes (lane k adds the
    elements j % 8 == k in order, from +0.0), combined as
    ``((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))``."""
    L = e.shape[-1]
    pad = np.zeros(e.shape[:-1] + ((-L) % 8,))
    lanes = np.concatenate([e, pad], axis=-1).reshape(e.shape[:-1] + (-1, 8))
    s = np.cumsum(lanes, axis=-2)[..., -1, :]
    return ((s[..., 0] + s[..., 1]) + (s[..., 2] + s[..., 3])) + (
        (s[..., 4] + s[..., 5]) + (s[..., 6] + s[..., 7]))


def softmax_dropout(z, rate, seed, offset=0, axis=-1):
    """``where(keep, softmax(z) * scale, +0.0)``, the mask over ``z`` with ``axis`` moved last."""
    z = np.asarray(z)
    zm = np.ascontiguousarray(np.moveaxis(z, axis, -1))
    p = softmax(zm)
    _, scale = _scale(rate, z.dtype)
    keep = _ref.keep_mask(zm.size, rate, seed, offset).reshape(zm.shape)
    y = _select(keep, p * scale)
    return np.ascontiguousarray(np.moveaxis(y, -1, axis))


def softmax_dropout_backward(dout, probs, rate, seed, offset=0, axis=-1):
    """The gradient of :func:`softmax_dropout` from the forward's ``probs`` (the softmax, in the
    scores' layout): ``gp = where(keep, dout * scale, +0.0) * probs`` in the dtype, ``s`` its
    ``_lane_sum`` in float64, ``dz = dtype(gp - probs * s)`` in float64. ``seed`` None: no
    dropout (the evaluation-mode forward)."""
    dout, probs = np.asarray(dout), np.asarray(probs)
    g = np.ascontiguousarray(np.moveaxis(dout, axis, -1))
    p = np.ascontiguousarray(np.moveaxis(probs, axis, -1))
    if seed is not None:
        _, scale = _scale(rate, g.dtype)
        keep = _ref.keep_mask(g.size, rate, seed, offset).reshape(g.shape)
        with np.errstate(over="ignore", invalid="ignore"):
            g = _select(keep, g * scale)
    with np.errstate(over="ignore", invalid="ignore"):
        gp = (g * p).astype(np.float64)
        dz = (gp - p.astype(np.float64) * _lane_sum(gp)[..., None]).astype(g.dtype)
    return np.ascontiguousarray(np.moveaxis(dz, -1, axis))


def _draws(size, seed, offset):
    """The 16-bit draws of positions ``offset .. offset + size - 1``."""
    if size == 0:
        return np.zeros(0, dtype=np.uint32)
    key = np.uint64(_contract.seed_key(int(seed)))
    first, last = offset // _ref.BLOCK, (offset + size - 1) // _ref.BLOCK
    words = _ref._block_words(key, np.arange(first, last + 1, dtype=np.uint64)).reshape(-1)
    start = offset - first * _ref.BLOCK
    return words[start:start + size].astype(np.uint32)


def drop_block_gamma(rate, spatial, block_size):
    """torchvision's gamma: ``p * prod(S) / (b**d * prod(S - b + 1))``."""
    return rate * math.prod(spatial) / (block_size ** len(spatial)
                                        * math.prod(s - block_size + 1 for s in spatial))


def drop_block(x, rate, seed, block_size, offset=0, eps=1e-6):
    """torchvision's ``drop_block2d``/``3d`` on cydrop's draws: pad the seed grid, max-pool
    with a ``b`` window (a seed at grid position ``i`` covers ``[i, i + b)``, what torchvision's
    pad ``b // 2`` + pool padding ``b // 2`` give for odd ``b``), invert, rescale by
    ``numel / (eps + kept)``."""
    x = np.asarray(x)
    spatial = x.shape[2:]
    b = min(block_size, *spatial)
    gamma = drop_block_gamma(rate, spatial, b)
    grid = x.shape[:2] + tuple(s - b + 1 for s in spatial)
    noise = (_draws(math.prod(grid), seed, offset) < _contract.threshold(gamma)).reshape(grid)
    noise = noise.astype(np.uint8)
    pad = [(0, 0), (0, 0)] + [(b - 1, b - 1)] * len(spatial)
    padded = np.pad(noise, pad)
    win = np.lib.stride_tricks.sliding_window_view(padded, (b,) * len(spatial),
                                                   axis=tuple(range(2, x.ndim)))
    pooled = win.max(axis=tuple(range(x.ndim, 2 * x.ndim - 2)))
    keep = pooled == 0
    scale = x.dtype.type(keep.size / (eps + np.count_nonzero(keep)))
    with np.errstate(over="ignore", invalid="ignore"):
        return _select(keep, x * scale)
