"""Pure-NumPy reference implementation of cydrop's masks and kernels.

Every function here reproduces the compiled kernels bit for bit, one line of NumPy for each line
of ``src/cydrop_rng.h``. It is slow (it makes whole blocks in Python-level loops over steps) and
meant for tests and for anyone who wants to check a mask without trusting the C.

The mapping from (seed, global element index ``g``) to a keep decision is::

    key     = mix64(seed + GOLDEN)                  # first splitmix64 output of seed
    block   = g // 4096
    bkey    = mix64(key ^ (block * GOLDEN))
    w[i]    = mix64(bkey + (i + 1) * GOLDEN)        # i = 0..31
    lane j  = xoshiro256++ with state w[4j], w[4j+1], w[4j+2], w[4j+3]   (j = 0..7)
    e       = g % 4096; step = e // 32; r = e % 32
    u       = bits 16*(r % 4) .. 16*(r % 4) + 15 of lane (r // 4)'s output number `step`
              (a step's eight lane outputs, read as 32 little-endian uint16, are its draws)
    keep    = u < threshold,  threshold = round((1 - rate) * 65536)

As in :func:`cydrop.dropout`, every function takes ``rate``, the probability of DROPPING an
element. The constants and the splitmix64 mix are ``cydrop._contract``'s (applied here to
whole uint64 arrays); the generator's steps are written out below.
"""

import numpy as np

from cydrop import _contract

__all__ = ["bias_relu_dropout", "keep_mask", "dropout", "dropout_backward",
           "threshold_and_scale"]

BLOCK = _contract.BLOCK
LANES = 8
PER_STEP = 32
GOLDEN = np.uint64(_contract.GOLDEN)


def _u64(a):
    return np.asarray(a, dtype=np.uint64)


def _mix64(z):
    """:func:`cydrop._contract.mix64` of every element of a uint64 array (wrapping products)."""
    with np.errstate(over="ignore"):
        return _contract.mix64(np.array(z, dtype=np.uint64))   # a copy: mix64 works in place


def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


def threshold_and_scale(rate, dtype=np.float64):
    """Return the integer threshold and the output scale for a drop probability.

    Parameters
    ----------
    rate : float
        Drop probability, ``0 <= rate <= 1``.
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64
        Precision of the returned scale.

    Returns
    -------
    threshold : int
        ``round((1 - rate) * 65536)``; an element is kept when its 16 random bits are below it.
    scale : numpy.floating
        ``65536 / threshold`` (0 when nothing is kept), the inverse of the realised keep
        probability, so the expected output equals the input.
    """
    thr, scale = _contract.threshold_and_scale(rate)
    return thr, np.dtype(dtype).type(scale)


def _block_words(key, blocks):
    """The 16-bit draws of whole blocks: an array of shape (len(blocks), 4096)."""
    blocks = _u64(blocks)
    with np.errstate(over="ignore"):
        bkey = _mix64(np.uint64(key) ^ (blocks * GOLDEN))
        i = np.arange(1, 33, dtype=np.uint64)
        w = _mix64(bkey[:, None] + i[None, :] * GOLDEN)          # (B, 32)
        w = w.reshape(-1, LANES, 4)                               # lane j uses w[4j .. 4j+3]
        s0, s1, s2, s3 = (w[:, :, k].copy() for k in range(4))
        outs = np.empty((len(blocks), BLOCK // PER_STEP, LANES), dtype="<u8")
        for step in range(BLOCK // PER_STEP):
            out = _rotl(s0 + s3, 23) + s0
            t = s1 << np.uint64(17)
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = _rotl(s3, 45)
            outs[:, step, :] = out
    return outs.view("<u2").reshape(len(blocks), BLOCK)


def keep_mask(size, rate, seed, offset=0):
    """Keep decisions of global elements ``offset`` to ``offset + size - 1``.

    Parameters
    ----------
    size : int
        Number of elements.
    rate : float
        Drop probability, as in :func:`cydrop.dropout_mask`.
    seed : int
        Seed, ``0 <= seed < 2**64``.
    offset : int, default=0
        Global index of the first element.

    Returns
    -------
    mask : ndarray of bool, shape (size,)
    """
    size, offset = int(size), int(offset)
    thr, _ = threshold_and_scale(rate)
    if size == 0:
        return np.zeros(0, dtype=bool)
    key = np.uint64(_contract.seed_key(int(seed)))
    first, last = offset // BLOCK, (offset + size - 1) // BLOCK
    blocks = np.arange(first, last + 1, dtype=np.uint64)
    draws = _block_words(key, blocks).reshape(-1)
    start = offset - first * BLOCK
    return draws[start:start + size].astype(np.uint32) < thr


def _is_16bit(dtype):
    """float16, or ml_dtypes' bfloat16 (recognised without importing ml_dtypes)."""
    return dtype.itemsize == 2 and (dtype.kind == "f" or dtype.name == "bfloat16")


def _scaled(x, scale32):
    """``T(float32(x) * scale32)`` for a 16-bit ``x``: one float32 multiply, then NumPy's (or
    ml_dtypes') conversion, round to nearest even; overflow gives inf, a NaN stays NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        return (x.astype(np.float32) * scale32).astype(x.dtype)


def dropout(x, rate, seed, offset=0):
    """Inverted dropout of ``x`` in C order: ``x * scale`` where kept, ``+0.0`` elsewhere.

    Parameters
    ----------
    x : ndarray of float32, float64, float16 or bfloat16 (``ml_dtypes.bfloat16``)
        A 16-bit ``x`` is computed in float32: a kept element is ``dtype(float32(x) * scale)``
        with the float32 scale, rounded to nearest even.
    rate : float
        Drop probability, as in :func:`cydrop.dropout`.
    seed : int
    offset : int, default=0

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    """
    x = np.asarray(x)
    m = keep_mask(x.size, rate, seed, offset).reshape(x.shape)
    zero = np.zeros((), dtype=x.dtype)
    if _is_16bit(x.dtype):
        _, scale = threshold_and_scale(rate, np.float32)
        return np.where(m, _scaled(x, scale), zero)
    _, scale = threshold_and_scale(rate, x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        y = x * scale
    return np.where(m, y, zero)


def bias_relu_dropout(z, b, rate, seed, offset=0):
    """:func:`cydrop.fused.bias_relu_dropout` for a 16-bit ``z`` (float32 ``b``): in float32,
    ``v = float32(z) + b``, ``r = v if v > 0 else 0`` (NaN gives 0), then kept elements are
    ``dtype(r * scale)`` and dropped ones ``+0.0``; ``rate == 0`` keeps all with scale 1."""
    z = np.asarray(z)
    b = np.asarray(b, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        v = z.astype(np.float32) + b
        r = np.where(v > 0, v, np.float32(0))
        if rate == 0:
            return r.astype(z.dtype)
        _, scale = threshold_and_scale(rate, np.float32)
        y = (r * scale).astype(z.dtype)
    m = keep_mask(z.size, rate, seed, offset).reshape(z.shape)
    return np.where(m, y, np.zeros((), dtype=z.dtype))


def dropout_backward(dout, rate, seed, offset=0):
    """Gradient of :func:`dropout` with respect to ``x``: the same mask applied to ``dout``."""
    return dropout(dout, rate, seed, offset)
