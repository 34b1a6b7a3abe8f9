"""DropBlock (Ghiasi et al. 2018) for (N, C, H, W) and (N, C, D, H, W) feature maps, with
torchvision's ``drop_block2d`` / ``drop_block3d`` semantics:

1. ``gamma = rate * prod(S) / (b**d * prod(S - b + 1))``, ``S`` the spatial shape, ``b`` the
   block size clipped to the smallest spatial size, ``d`` the number of spatial axes;
2. a seed mask over the ``(N, C, *(S - b + 1))`` grid: seed ``j`` is set when draw
   ``offset + j`` of cydrop's generator is below ``threshold(gamma)`` (gamma to 2**-16);
3. each seed at grid position ``i`` drops the block ``[i, i + b)`` along every spatial axis
   (torchvision's pad + max-pool for odd ``b``; the same rule for even ``b``);
4. the kept values are scaled by ``numel / (eps + kept)``, the inverse of the kept fraction.

The mask is a pure function of (seed, offset, shape, rate, block size); the backward rebuilds it
from the seed instead of storing it.
"""

import math

import numpy as np

from cydrop import _cache, _common, _contract, _validation
from cydrop import _variants as _v
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed

__all__ = ["BlockCache", "drop_block", "drop_block_backward"]


def drop_block_gamma(rate, spatial, block_size):
    """The seed probability of DropBlock: ``rate * prod(S) / (b**d * prod(S - b + 1))``.

    Parameters
    ----------
    rate : float
    spatial : tuple of int
        The spatial shape ``S`` (each >= 1).
    block_size : int
        Already clipped to ``min(S)``.

    Returns
    -------
    gamma : float
    """
    b, d = block_size, len(spatial)
    return rate * math.prod(spatial) / (b ** d * math.prod(s - b + 1 for s in spatial))


def _block_keep(shape, seed, offset, rate, block_size, threads):
    """(keep as bool of ``shape``, scale numerator/denominator parts): the block mask."""
    spatial = shape[2:]
    b = min(block_size, *spatial)
    gamma = drop_block_gamma(rate, spatial, b)
    grid = shape[:2] + tuple(s - b + 1 for s in spatial)
    size = math.prod(grid)
    seeds = np.empty(size, dtype=np.uint8)
    if size:
        _v.keep_mask(size, seed, offset, _contract.threshold(gamma), seeds, threads)
    seeds = seeds.reshape(grid).astype(bool)
    blocked = seeds
    for ax in range(2, len(shape)):          # dilate along each spatial axis: [i, i + b)
        n_out = shape[ax]
        acc = np.zeros(blocked.shape[:ax] + (n_out,) + blocked.shape[ax + 1:], dtype=bool)
        g = blocked.shape[ax]
        for k in range(b):
            idx = [slice(None)] * len(shape)
            idx[ax] = slice(k, k + g)
            acc[tuple(idx)] |= blocked
        blocked = acc
    return ~blocked


class BlockCache(_cache.Cache):
    """What :func:`drop_block_backward` needs: scalars (the mask is rebuilt from the seed);
    made only by cydrop.

    Attributes
    ----------
    rate, seed, offset, block_size, eps
        The forward call's (``seed`` and ``offset`` None when nothing was dropped).
    shape, dtype, mask_shape
        The input's; ``nbytes`` is 0.
    """

    __slots__ = ("rate", "seed", "offset", "shape", "dtype", "block_size", "eps")
    _FIELDS = __slots__

    def __init__(self, rate, seed, offset, shape, dtype, block_size, eps):
        self.rate, self.seed, self.offset = rate, seed, offset
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.block_size, self.eps = block_size, eps

    nbytes = property(lambda self: 0, doc="0: the cache keeps no array")

    def keep_mask(self):
        """The forward call's keep mask: uint8 0/1 of the input's shape, 1 = let through.

        Returns
        -------
        keep : ndarray of uint8
        """
        st = self._state()
        if st.seed is None:
            return np.ones(st.shape, dtype=np.uint8)
        keep = _block_keep(st.shape, st.seed, st.offset, st.rate, st.k,
                           effective_n_threads(None))
        return keep.astype(np.uint8)

    def __repr__(self):
        return (f"BlockCache(rate={self.rate!r}, seed={self.seed!r}, offset={self.offset!r}, "
                f"block_size={self.block_size!r}, shape={self.shape}, dtype={self.dtype})")

    def _state(self):
        shape = _validation.check_shape(self.shape, "cache shape")
        if len(shape) not in (4, 5) or 0 in shape[2:]:
            raise ValueError(f"cache shape must be (N, C, H, W) or (N, C, D, H, W) with "
                             f"non-empty spatial axes, got {shape}")
        dtype = _validation.check_native_float_dtype(self.dtype, "cache dtype")
        rate = _validation.check_probability(self.rate, "cache rate")
        b = _check_block_size(self.block_size, "cache block_size")
        eps = _validation.check_real(self.eps, "cache eps", low=0.0)
        random = self.seed is not None
        grid = shape[:2] + tuple(s - min(b, *shape[2:]) + 1 for s in shape[2:])
        seed, offset = _cache.check_randomness(
            f"a BlockCache {'with' if random else 'without'} a seed", rate, self.seed,
            self.offset, math.prod(grid), random=random)
        return _cache.CacheState(shape=shape, dtype=dtype, rate=rate, seed=seed, offset=offset,
                                 k=b, sigma=eps)


def _check_block_size(block_size, name="block_size"):
    if isinstance(block_size, (bool, np.bool_)) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 1, got {_validation._short(block_size)} of "
                        f"type {type(block_size).__name__}")
    if block_size < 1:
        raise ValueError(f"{name} must be an int >= 1, got {block_size}")
    return int(block_size)


def _apply(x, keep, scale, dst):
    """dst := where(keep, x * scale, +0.0)."""
    with np.errstate(over="ignore", invalid="ignore"):
        np.multiply(x, scale, out=dst)
    dst[~keep] = 0.0
    return dst


def drop_block(x, rate, *, block_size, training, seed=None, offset=0, eps=1e-6, out=None,
               inplace=False, n_threads=None):
    """DropBlock: drop contiguous ``block_size`` blocks of (N, C, H, W) or (N, C, D, H, W) maps.

    Parameters
    ----------
    x : array_like of float32 or float64, 4-D or 5-D
    rate : float
        ``0 <= rate <= 1``: torchvision's ``p``, the expected fraction of dropped positions
        (before blocks overlap).
    block_size : int
        Side of the dropped blocks, ``>= 1``; clipped to the smallest spatial size.
    training : bool
        Keyword-only and required. ``False`` (or ``rate == 0``) returns ``x``.
    seed : int or None, default=None
    offset : int, default=0
        Global index of the seed grid's first position.
    eps : float, default=1e-6
        Added to the kept count in the rescale, as in torchvision.
    out : ndarray or None, default=None
    inplace : bool, default=False
    n_threads : int or None, default=None

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
        ``where(keep, x * scale, +0.0)``, ``scale = numel / (eps + kept)``.
    cache : BlockCache

    Raises
    ------
    TypeError, ValueError
        Bad ``x`` (not 4-D or 5-D), ``rate``, ``block_size``, ``training``, ``seed``,
        ``offset``, ``eps``, ``out`` or ``inplace``.
    """
    x, rate, training, seed, threads = _common.op_args(x, rate, training, seed, n_threads)
    given = x
    if x.ndim not in (4, 5):
        raise ValueError(f"x must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W), got shape "
                         f"{x.shape}")
    b = _check_block_size(block_size)
    eps = _validation.check_real(eps, "eps", low=0.0)
    inplace = _validation.check_bool(inplace, "inplace")
    if not training or rate == 0.0 or x.size == 0:
        if inplace:
            _common.check_inplace_target(given, x, "x", out)
        return _common.identity_result(x, out, inplace), BlockCache(
            0.0, None, None, x.shape, x.dtype, b, eps)
    grid = x.shape[:2] + tuple(s - min(b, *x.shape[2:]) + 1 for s in x.shape[2:])
    offset = _validation.check_offset(offset, math.prod(grid))
    if inplace:
        _common.check_inplace_target(given, x, "x", out)
    src, dst, writeback = _common.prepare_output(x, out, inplace, "x", "out")
    seed = resolve_seed(seed)
    keep = _block_keep(x.shape, seed, offset, rate, b, threads)
    scale = x.dtype.type(keep.size / (eps + np.count_nonzero(keep)))
    _apply(src, keep, scale, dst)
    result = _common.finish(dst, writeback)
    result = given if inplace else (out if out is not None else result)
    return result, BlockCache(rate, seed, offset, x.shape, x.dtype, b, eps)


def drop_block_backward(dout, cache):
    """Gradient of :func:`drop_block`: ``dout`` masked and scaled as the forward, the mask
    rebuilt from the cache's seed.

    Parameters
    ----------
    dout : ndarray
    cache : BlockCache

    Returns
    -------
    dx : ndarray
    """
    st = _cache.check_cache(cache, (BlockCache,), "cydrop.drop_block")
    dout = _validation.check_dout(_validation.as_float_array(dout, "dout"), st.shape, st.dtype,
                                  of="forward output")
    if st.seed is None:
        return dout
    keep = _block_keep(st.shape, st.seed, st.offset, st.rate, st.k, effective_n_threads(None))
    scale = st.dtype.type(keep.size / (st.sigma + np.count_nonzero(keep)))
    return _apply(dout, keep, scale, np.empty(st.shape, dtype=st.dtype))
