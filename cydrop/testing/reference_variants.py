"""Pure-NumPy twins of cydrop's dropout variants, bit for bit.

Every function here reproduces a kernel of ``src/cydrop_variants_impl.h`` (through
:mod:`cydrop.variants`) exactly, from the same 16-bit draw field as :mod:`cydrop.testing.reference`:
``draw(seed, p)`` for global position ``p``. The variants read that field at three widths:

=====================  ===========================================================
u16 draw of element g  ``draw(g)``: broadcast masks, DropConnect, AlphaDropout
u32 word ``h``         ``draw(2h) | draw(2h + 1) << 16``: exact-k keys
u64 word ``h``         ``draw(4h) | ... | draw(4h + 3) << 48`` (the h-th 64-bit lane
                       output): GaussianDropout
=====================  ===========================================================

These functions are slow (Python loops over blocks, and over elements for the Gaussian) and
meant for tests and for anyone who wants to check a variant without trusting the C.
"""

import math

import numpy as np

from cydrop import _contract

# AlphaDropout's constants are scalar formulas, not kernel arithmetic: the twins use cydrop's
# one definition (tests/variants/test_variants.py holds it to PyTorch's formula) and check
# the kernels' arithmetic with them.
from cydrop._variant_params import ALPHA_PRIME, alpha_constants
from cydrop.testing import reference as _ref

__all__ = [
    "ALPHA_PRIME",
    "alpha_constants",
    "alpha_dropout",
    "alpha_dropout_backward",
    "draws16",
    "dropconnect_backward",
    "dropconnect_forward",
    "dropout_nd",
    "exact_k_count",
    "exact_k_keep",
    "exact_k_dropout",
    "gaussian_dropout",
    "gaussian_noise",
    "mc_sample_seed",
    "normal_from_word",
    "words32",
    "words64",
]



def _key(seed):
    return np.uint64(_contract.seed_key(int(seed)))


def draws16(seed, p0, count):
    """The 16-bit draws of positions ``p0`` to ``p0 + count - 1`` (uint16 array)."""
    p0, count = int(p0), int(count)
    if count == 0:
        return np.zeros(0, dtype=np.uint16)
    first, last = p0 // _ref.BLOCK, (p0 + count - 1) // _ref.BLOCK
    d = _ref._block_words(_key(seed), np.arange(first, last + 1, dtype=np.uint64)).reshape(-1)
    start = p0 - first * _ref.BLOCK
    return d[start:start + count].copy()


def words32(seed, h0, count):
    """u32 words ``h0`` to ``h0 + count - 1``: ``draw(2h) | draw(2h + 1) << 16``."""
    d = draws16(seed, 2 * int(h0), 2 * int(count)).astype(np.uint32)
    return d[0::2] | (d[1::2] << np.uint32(16))


def words64(seed, h0, count):
    """u64 words ``h0`` to ``h0 + count - 1``: four consecutive draws, little-endian."""
    d = draws16(seed, 4 * int(h0), 4 * int(count)).astype(np.uint64).reshape(-1, 4)
    return (d[:, 0] | (d[:, 1] << np.uint64(16)) | (d[:, 2] << np.uint64(32))
            | (d[:, 3] << np.uint64(48)))


def normal_from_word(w):
    """The standard normal of one u64 word: Box-Muller, cosine branch, in double.

    ``u1 = ((w >> 32) + 0.5) / 2**32`` (in (0, 1)), ``u2 = (w & 0xffffffff) / 2**32``,
    ``z = sqrt(-2 log u1) * cos(6.283185307179586 * u2)``, with the platform libm's log and cos
    (Python's :mod:`math`, as the C kernel).
    """
    w = int(w)
    u1 = (float(w >> 32) + 0.5) / 4294967296.0
    u2 = float(w & 0xFFFFFFFF) / 4294967296.0
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


def dropout_nd(x, rate, mask_shape, seed, offset=0):
    """Dropout with a mask of ``mask_shape`` broadcast against ``x``.

    Mask element ``j`` (C order within ``mask_shape``) is kept when ``draw(offset + j) <
    round((1 - rate) * 65536)``; kept elements are scaled by ``65536 / threshold``.

    Returns
    -------
    out : ndarray like ``x``
    keep : ndarray of bool, shape ``mask_shape``
    """
    x = np.asarray(x)
    size = int(np.prod(mask_shape, dtype=np.int64))
    keep = _ref.keep_mask(size, rate, seed, offset).reshape(mask_shape)
    _, scale = _ref.threshold_and_scale(rate, x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        y = x * scale
    return np.where(keep, y, x.dtype.type(0.0)), keep


def dropconnect_forward(x, W, b, rate, seed, offset=0):
    """``x @ W_eff + b`` with ``W_eff`` = dropout of ``W`` (mask over W's C-order elements)."""
    W_eff = _ref.dropout(W, rate, seed, offset)
    x2 = x.reshape(x.shape[0], -1)
    return x2 @ W_eff + b, W_eff


def dropconnect_backward(dout, x, W_eff, rate, seed, offset=0):
    """``(dx, dW, db)`` of :func:`dropconnect_forward`."""
    x2 = x.reshape(x.shape[0], -1)
    dx = (dout @ W_eff.T).reshape(x.shape)
    dW = _ref.dropout(x2.T @ dout, rate, seed, offset)
    return dx, dW, dout.sum(axis=0)


def exact_k_count(n, rate):
    """``k = floor(rate * n + 0.5)``: units dropped per row of ``n``."""
    return int(math.floor(float(rate) * int(n) + 0.5))


def exact_k_keep(rows, n, rate, seed, offset=0):
    """Exact-k keep mask of shape (rows, n).

    Unit ``j`` of row ``r`` gets the 64-bit key ``(u32word(offset + r * n + j) << 32) | j``;
    the ``k`` units with the smallest keys are dropped (keys are distinct, so exactly ``k``).
    """
    rows, n = int(rows), int(n)
    k = exact_k_count(n, rate)
    keep = np.ones((rows, n), dtype=bool)
    if rows == 0 or n == 0 or k == 0:
        return keep
    if k >= n:
        return np.zeros((rows, n), dtype=bool)
    w = words32(seed, offset, rows * n).astype(np.uint64).reshape(rows, n)
    keys = (w << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    kth = np.partition(keys, k - 1, axis=1)[:, k - 1:k]
    return keys > kth


def exact_k_dropout(x, rate, seed, offset=0):
    """Exact-k dropout along the last axis; kept units scaled by ``n / (n - k)``.

    Returns
    -------
    out : ndarray like ``x``
    keep : ndarray of bool like ``x``
    """
    x = np.asarray(x)
    n = x.shape[-1] if x.ndim else 1
    rows = x.size // n if n else 0
    k = exact_k_count(n, rate)
    keep = exact_k_keep(rows, n, rate, seed, offset).reshape(x.shape)
    scale = x.dtype.type(n / (n - k) if k < n else 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        y = x * scale
    return np.where(keep, y, x.dtype.type(0.0)), keep


def alpha_dropout(x, rate, seed, offset=0):
    """``where(keep, a x + b, c)`` with the constants in ``x``'s precision (no FMA)."""
    x = np.asarray(x)
    t = x.dtype.type
    thr, a, b, c = alpha_constants(rate)
    keep = draws16(seed, offset, x.size).reshape(x.shape).astype(np.uint32) < thr
    with np.errstate(over="ignore", invalid="ignore"):
        y = (t(a) * x) + t(b)
    return np.where(keep, y, t(c)).astype(x.dtype, copy=False)


def alpha_dropout_backward(dout, rate, seed, offset=0):
    """``where(keep, dout * a, +0.0)``."""
    dout = np.asarray(dout)
    thr, a, _, _ = alpha_constants(rate)
    keep = draws16(seed, offset, dout.size).reshape(dout.shape).astype(np.uint32) < thr
    with np.errstate(over="ignore", invalid="ignore"):
        y = dout * dout.dtype.type(a)
    return np.where(keep, y, dout.dtype.type(0.0))


def gaussian_noise(size, rate, seed, offset=0, dtype=np.float64):
    """Multiplicative factors ``1 + sigma z`` of u64 words from ``offset`` on, rounded to ``dtype``.

    ``sigma = sqrt(rate / (1 - rate))`` (Keras's GaussianDropout), ``z`` from
    :func:`normal_from_word`.
    """
    sigma = math.sqrt(rate / (1.0 - rate))
    w = words64(seed, offset, size)
    eps = np.array([1.0 + sigma * normal_from_word(v) for v in w.tolist()], dtype=np.float64)
    return eps.astype(dtype)


def gaussian_dropout(x, rate, seed, offset=0):
    """``x * gaussian_noise(...)`` in ``x``'s precision (also its own backward on ``dout``)."""
    x = np.asarray(x)
    eps = gaussian_noise(x.size, rate, seed, offset, x.dtype).reshape(x.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        return x * eps


def mc_sample_seed(seed, sample):
    """Seed of Monte Carlo sample ``sample``: ``mix64(mix64(seed + G) ^ ((sample + 1) G))``."""
    G, mix64 = _contract.GOLDEN, _contract.mix64
    return mix64(_contract.seed_key(int(seed)) ^ (((int(sample) + 1) * G) & _contract.UINT64_MAX))
