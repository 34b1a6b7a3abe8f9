"""Feature (channel-wise) alpha dropout: AlphaDropout with one keep decision per channel.

PyTorch's ``nn.FeatureAlphaDropout``: for an ``(N, C, *spatial)`` input, each (sample, channel)
is kept or set to SELU's saturation as a whole, then the result is transformed affinely as in
:func:`cydrop.variants.alpha_dropout`. The mask is the reduced mask of
:func:`cydrop.variants.dropout_nd` (mask element ``j`` in C order of ``noise_shape`` is kept when
``draw(seed, offset + j) < round((1 - rate) 65536)``); the constants are those of
:func:`cydrop.variants.alpha_dropout`. Its NumPy twin is
:mod:`cydrop.testing.reference_feature_alpha`.
"""

import numpy as np

from cydrop import _cache, _validation
from cydrop import _variant_params as _p
from cydrop import _variants as _v
from cydrop._common import broadcast as _broadcast
from cydrop._common import op_args
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed

__all__ = ["FeatureAlphaCache", "feature_alpha_dropout", "feature_alpha_dropout_backward"]


class FeatureAlphaCache(_cache.Cache):
    """What feature alpha dropout's backward needs from its forward; made only by cydrop.

    :func:`feature_alpha_dropout` returns it; pass it to :func:`feature_alpha_dropout_backward`.

    Attributes
    ----------
    rate : float
        The drop probability (0.0 for an identity call).
    seed, offset : int or None
        None for an identity call (``training=False`` or ``rate == 0``).
    shape : tuple of int
        The forward input's shape.
    dtype : numpy.dtype
    keep : ndarray of uint8 or None
        The reduced 0/1 mask (read-only), of the mask shape; None for an identity call.
    """

    __slots__ = ("rate", "seed", "offset", "shape", "dtype", "keep")
    _FIELDS = __slots__

    def __init__(self, rate, seed, offset, shape, dtype, keep):
        self.rate, self.seed, self.offset = rate, seed, offset
        self.shape, self.dtype, self.keep = shape, dtype, keep

    @property
    def mask_shape(self):
        """Shape of :meth:`keep_mask`'s array: the reduced mask's (``x``'s for an identity)."""
        return tuple(self.shape) if self.keep is None else tuple(self.keep.shape)

    @property
    def nbytes(self):
        """Bytes of the arrays the cache keeps alive for backward (the reduced mask)."""
        return 0 if self.keep is None else self.keep.nbytes

    def keep_mask(self):
        """The forward call's keep mask: uint8 0/1 of :attr:`mask_shape`, 1 = let through."""
        st = self._state()
        return np.ones(st.shape, np.uint8) if st.keep is None else st.keep.copy()

    def _state(self):
        shape, size = _validation.check_dims(self.shape, "cache shape")
        dtype = _validation.check_native_float_dtype(self.dtype, "cache dtype")
        rate = _validation.check_probability(self.rate, "cache rate")
        keep = self.keep
        if keep is None:
            return _cache.CacheState(kind="identity", rate=rate, shape=shape, dtype=dtype)
        if (type(keep) is not np.ndarray or keep.dtype != np.uint8 or keep.ndim != len(shape)
                or any(m not in (1, s) for m, s in zip(keep.shape, shape))):
            raise ValueError(f"cache keep must be a uint8 array with one entry per axis of "
                             f"shape {shape}, each 1 or that axis's length, got "
                             f"{_validation._short(keep)}")
        thr, a, b, c = _p.alpha_constants(rate)
        cshape, mstride = _p.collapse(shape, keep.shape)
        return _cache.CacheState(kind="feature_alpha", rate=rate, shape=shape, dtype=dtype,
                                 keep=np.ascontiguousarray(keep), thr=thr, a=a, b=b, c=c,
                                 cshape=cshape, mstride=mstride)

    def __repr__(self):
        return (f"FeatureAlphaCache(rate={self.rate!r}, seed={self.seed!r}, "
                f"offset={self.offset!r}, shape={self.shape!r}, dtype={self.dtype})")


def _channel_shape(shape):
    if len(shape) < 2:
        raise ValueError(f"x must have at least 2 dimensions (N, C, *spatial) for feature alpha "
                         f"dropout, got shape {shape}")
    return tuple(shape[:2]) + (1,) * (len(shape) - 2)


def feature_alpha_dropout(x, rate=0.5, *, noise_shape=None, training=True, seed=None, offset=0,
                          n_threads=None):
    """Alpha dropout that keeps or drops whole channels (PyTorch's ``FeatureAlphaDropout``).

    Parameters
    ----------
    x : array_like of float32 or float64, at least 2-D, ``(N, C, *spatial)``
    rate : float, default=0.5
        Probability of DROPPING a channel, ``0 <= rate <= 1``. ``rate == 1`` zeros the output,
        as PyTorch does.
    noise_shape : tuple or None, default=None
        Shape of the mask, as in :func:`cydrop.variants.dropout_nd` (each entry 1 or the axis's
        length). None means one decision per (sample, channel): ``(N, C, 1, ..., 1)``.
    training : bool, default=True
        ``False`` (or ``rate == 0``) returns ``x`` unchanged.
    seed : int or None, default=None
        ``0 <= seed < 2**64``; None draws a fresh one from the OS (kept in the cache).
    offset : int, default=0
        Global index of mask element 0: mask element ``j`` (C order within the mask) is kept
        when ``draw(seed, offset + j) < round((1 - rate) 65536)``.
    n_threads : int or None, default=None
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    out : ndarray like ``x``
        ``a * x + b`` in kept channels, ``c = a alpha' + b`` in dropped ones, with the
        constants of :func:`cydrop.variants.alpha_dropout` (rounded to ``x``'s precision).
    cache : FeatureAlphaCache
        For :func:`feature_alpha_dropout_backward`; ``cache.keep`` is the reduced mask.

    Raises
    ------
    TypeError, ValueError
        Bad ``x`` (fewer than 2 dimensions), ``rate``, ``noise_shape``, ``seed`` or ``offset``.

    See Also
    --------
    cydrop.variants.alpha_dropout : one decision per element (equal to this function with
        ``noise_shape=x.shape``).

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.zeros((2, 3, 4), dtype=np.float32)
    >>> y, cache = cydrop.feature_alpha_dropout(x, 0.5, seed=0)
    >>> cache.keep.shape, bool((y == y[:, :, :1]).all())
    ((2, 3, 1), True)
    """
    x, rate, training, seed, threads = op_args(x, rate, training, seed, n_threads)
    mshape = _channel_shape(x.shape) if noise_shape is None else _p.mask_shape(
        x.shape, noise_shape, None)
    msize = int(np.prod(mshape, dtype=object))
    offset = _validation.check_offset(offset, msize)
    if not training or rate == 0.0:
        return x, FeatureAlphaCache(0.0, None, None, x.shape, x.dtype, None)
    seed = resolve_seed(seed)
    thr, a, b, c = _p.alpha_constants(rate)
    keep = np.empty(msize, dtype=np.uint8)
    _v.keep_mask(msize, seed, offset, thr, keep, threads)
    keep = keep.reshape(mshape)
    out = _broadcast(x, keep, *_p.collapse(x.shape, mshape), a, threads)   # a x, or +0.0
    t = x.dtype.type
    with np.errstate(over="ignore", invalid="ignore"):
        np.add(out, np.where(keep != 0, t(b), t(c)), out=out)
    keep.flags.writeable = False
    return out, FeatureAlphaCache(rate, seed, offset, x.shape, x.dtype, keep)


def feature_alpha_dropout_backward(dout, cache, *, n_threads=None):
    """Gradient of :func:`feature_alpha_dropout`: ``a * dout`` in kept channels, ``+0.0`` in
    dropped ones.

    Parameters
    ----------
    dout : ndarray of float32 or float64, the forward input's shape and dtype
    cache : FeatureAlphaCache
    n_threads : int or None, default=None
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    dx : ndarray like ``dout``
    """
    st = _cache.check_cache(cache, (FeatureAlphaCache,), "cydrop.feature_alpha_dropout")
    dout = _validation.check_dout(dout, st.shape, st.dtype)
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        return dout
    return _broadcast(dout, st.keep, st.cshape, st.mstride, st.a, threads)
