"""Dropout variants as kernel-level features: validation here, then the C kernels.

Every variant is deterministic by ``(seed, offset)``, gives the same bits for any
``n_threads``, keeps float32 as float32, and has a NumPy twin in
:mod:`cydrop.reference_variants`. All read the counter-based draw field of the core
(``draw(seed, position)``, see :mod:`cydrop.reference`):

==========================  ==============================  ===============================
variant                     element ``i`` reads             ``offset`` counts
==========================  ==============================  ===============================
:func:`dropout_nd`          ``draw(offset + j)``, ``j`` the  mask elements (16-bit draws)
(noise_shape, spatial,      C-order index in the REDUCED
locked)                     mask
:func:`dropconnect_forward` ``draw(offset + j)``, ``j`` the  weights (16-bit draws)
                            C-order index in ``W``
:func:`exact_k_dropout`     u32 word ``offset + r n + j``    u32 words (2 draws each)
:func:`alpha_dropout`       ``draw(offset + i)``             elements (16-bit draws)
:func:`gaussian_dropout`    u64 word ``offset + i``          u64 words (4 draws each)
==========================  ==============================  ===============================

The drop probability is always ``rate``. Functions return ``(out, cache)``; pass the cache to
the matching ``*_backward`` or to :func:`backward`. Every backward validates the cache's state
(it is a plain, picklable Python object) before a kernel sees it. ``n_threads`` accepts any
nonzero int and is capped at the usable cores; inputs of any layout, alignment or ndarray
subclass are read through an aligned C-contiguous base-class array, and results are plain
ndarrays.
"""

import functools
import math
import numbers

import numpy as np

from cydrop import _contract, _kernels, _validation
from cydrop import _variants as _v
from cydrop._openmp import effective_n_threads
from cydrop._seeds import SeedStream, resolve_seed

__all__ = [
    "ALPHA_PRIME",
    "MCPrediction",
    "SequentialMC",
    "VariantCache",
    "alpha_dropout",
    "alpha_dropout_backward",
    "backward",
    "dropconnect_backward",
    "dropconnect_forward",
    "dropout_nd",
    "dropout_nd_backward",
    "exact_k_count",
    "exact_k_dropout",
    "exact_k_dropout_backward",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "gaussian_noise",
    "locked_dropout",
    "mc_predict",
    "mc_sample_seed",
    "spatial_dropout",
]

ALPHA_PRIME = -1.7580993408473766   # -lambda * alpha of SELU, PyTorch's alpha'
_UINT64 = 2**64
_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = _UINT64 - 1


# ------------------------------------------------------------------------------------------
# shared helpers
# ------------------------------------------------------------------------------------------

class VariantCache:
    """What a variant's backward needs from its forward call; made only by cydrop.

    A plain Python object: it can be pickled (the state is validated again when it is loaded),
    and every backward validates its whole state as strictly as a forward call validates its
    arguments before a kernel sees it, so a cache rebuilt or changed by hand is a
    ``TypeError``/``ValueError`` naming the field, never a crash or a silently wrong gradient.

    Attributes
    ----------
    kind : str
        ``'nd'``, ``'dropconnect'``, ``'exact_k'``, ``'alpha'``, ``'gaussian'`` or
        ``'identity'`` (no randomness was applied).
    rate : float
    seed, offset : int or None
    shape : tuple of int
        Shape of the forward input (for DropConnect, of ``x``).
    dtype : numpy.dtype
    keep : ndarray of uint8 or None
        The stored 0/1 mask (read-only): the reduced mask for ``'nd'`` (shape ``mask_shape``),
        the full mask for ``'exact_k'``; None for the variants that regenerate it from the seed.
    """

    __slots__ = ("kind", "rate", "seed", "offset", "shape", "dtype", "keep", "_aux")

    def __init__(self, kind, rate, seed, offset, shape, dtype, keep=None, **aux):
        self.kind, self.rate, self.seed, self.offset = kind, rate, seed, offset
        self.shape, self.dtype, self.keep, self._aux = shape, dtype, keep, aux

    def keep_mask(self):
        """The stored keep mask (uint8 0/1), or None if this variant regenerates it."""
        return self.keep

    def __repr__(self):
        return (f"VariantCache(kind={self.kind!r}, rate={self.rate!r}, seed={self.seed!r}, "
                f"offset={self.offset!r}, shape={self.shape!r}, dtype={self.dtype})")

    def __reduce__(self):
        # Rebuilt through _restore_variant_cache, which validates the state: a pickle is data
        # from outside, and the backward kernels index memory with what the cache says.
        aux = self._aux if isinstance(self._aux, dict) else {}
        return (_restore_variant_cache, (self.kind, self.rate, self.seed, self.offset,
                                         self.shape, self.dtype, self.keep, dict(aux)))


def _restore_variant_cache(kind, rate, seed, offset, shape, dtype, keep, aux):
    """Unpickle a :class:`VariantCache`, refusing any state a forward call could not have made.

    The stored mask (if any) is copied into a fresh C-contiguous, read-only array."""
    if not isinstance(aux, dict):
        raise TypeError(f"cache _aux must be a dict, got {type(aux).__name__}")
    cache = VariantCache(kind, rate, seed, offset, shape, dtype, keep, **aux)
    st = _cache_state(cache, "a pickled VariantCache")
    if st.keep is not None:
        keep = np.array(st.keep, dtype=np.uint8, order="C", copy=True)
        keep.flags.writeable = False
        cache.keep = keep
    cache.kind, cache.rate, cache.seed, cache.offset = st.kind, st.rate, st.seed, st.offset
    cache.shape, cache.dtype = st.shape, st.dtype
    return cache


_KINDS = ("nd", "dropconnect", "exact_k", "alpha", "gaussian", "identity")


class _State:
    """A cache's state after validation, with what the kernels need derived from it (never
    read from the cache: a derived field there could disagree with the rest)."""

    seed = offset = keep = thr = scale = cshape = mstride = a = b = c = sigma = k = None
    x = W_eff = None

    def __init__(self, kind, rate, shape, size, dtype):
        self.kind, self.rate, self.shape, self.size, self.dtype = kind, rate, shape, size, dtype


def _no_mask(keep, kind):
    if keep is not None:
        raise ValueError(f"a {kind!r} cache stores no mask (cache keep must be None), got "
                         f"{type(keep).__name__}")


def _cache_state(cache, fn, kinds=None):
    """Validate ``cache`` as strictly as a forward call validates its arguments.

    ``fn`` names the calling function in messages; ``kinds`` (if given) are the kinds it
    accepts. Returns a :class:`_State`. Raises TypeError/ValueError naming the field.
    """
    if not isinstance(cache, VariantCache):
        raise TypeError(f"cache must be the VariantCache returned by cydrop.variants.{fn}, "
                        f"got {type(cache).__name__}")
    kind = cache.kind
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"cache kind must be one of {_KINDS}, got {_validation._short(kind)}")
    if kinds is not None and kind not in kinds:
        raise ValueError(f"cydrop.variants.{fn} needs a cache of kind "
                         f"{' or '.join(repr(k) for k in kinds)}, got kind {kind!r} "
                         f"(cydrop.variants.backward picks the matching backward)")
    aux = cache._aux
    if not isinstance(aux, dict):
        raise TypeError(f"cache _aux must be a dict, got {type(aux).__name__}")
    shape, size = _validation.check_dims(cache.shape, "cache shape")
    dtype = _validation.check_native_float_dtype(cache.dtype, "cache dtype")
    rate = _validation.check_probability(cache.rate, "cache rate")
    st = _State(kind=kind, rate=rate, shape=shape, size=size, dtype=dtype)
    keep = cache.keep
    if kind == "identity":
        if rate != 0.0 or cache.seed is not None or cache.offset is not None:
            raise ValueError(f"an 'identity' cache must have rate=0 and seed=offset=None, got "
                             f"rate={rate!r}, seed={_validation._short(cache.seed)}, "
                             f"offset={_validation._short(cache.offset)}")
        _no_mask(keep, kind)
        return st
    if kind == "dropconnect":
        return _dropconnect_state(cache, st, aux)
    if rate == 0.0:
        raise ValueError(f"a {kind!r} cache needs 0 < rate <= 1 (a forward call at rate 0 "
                         f"makes an 'identity' cache), got cache rate=0.0")
    st.seed = _validation.check_uint64(cache.seed, "cache seed")
    if kind == "nd":
        if type(keep) is np.ndarray and (keep.ndim != len(shape) or any(
                m not in (1, s) for m, s in zip(keep.shape, shape))):
            raise ValueError(f"cache keep must have one entry per axis of shape {shape}, each "
                             f"1 or that axis's length (the mask shape of dropout_nd), got "
                             f"shape {keep.shape}")
        mshape = keep.shape if type(keep) is np.ndarray else shape
        st.keep = _validation.check_mask_array(keep, mshape, "cache keep")
        st.offset = _validation.check_offset(cache.offset, st.keep.size, "cache offset")
        st.thr, st.scale = _contract.threshold_and_scale(rate)
        st.cshape, st.mstride = _collapse_cached(shape, tuple(st.keep.shape))
    elif kind == "exact_k":
        if not shape:
            raise ValueError("an 'exact_k' cache needs a shape of at least 1 dimension, got ()")
        n = shape[-1]
        if n >= 2**32:
            raise ValueError(f"cache shape[-1] must be < 2**32 for exact-k dropout, got {n}")
        st.k = exact_k_count(n, rate)
        if st.k == 0:
            raise ValueError(f"an 'exact_k' cache must drop at least one unit per row, but "
                             f"cache rate={rate!r} drops none of {n}")
        st.keep = _validation.check_mask_array(keep, shape, "cache keep")
        st.offset = _check_offset_units(cache.offset, size, 2, "cache offset")
        st.scale = n / (n - st.k) if st.k < n else 0.0
    elif kind == "alpha":
        _no_mask(keep, kind)
        st.offset = _validation.check_offset(cache.offset, size, "cache offset")
        st.thr, st.a, st.b, st.c = _alpha_constants(rate)
    else:   # gaussian
        _no_mask(keep, kind)
        if rate == 1.0:
            raise ValueError("cache rate must satisfy 0 < cache rate < 1 for Gaussian dropout, "
                             "got 1.0")
        st.offset = _check_offset_units(cache.offset, size, 4, "cache offset")
        st.sigma = math.sqrt(rate / (1.0 - rate))
    return st


def _dropconnect_state(cache, st, aux):
    x, W_eff = aux.get("x"), aux.get("W_eff")
    for name, a in (("x", x), ("W_eff", W_eff)):
        if type(a) is not np.ndarray:
            raise TypeError(f"cache {name} must be a numpy.ndarray, got {type(a).__name__}")
        if a.dtype != st.dtype:
            raise TypeError(f"cache {name} must have the cache dtype {st.dtype}, got {a.dtype}")
    if x.shape != st.shape or x.ndim < 1:
        raise ValueError(f"cache x must have the cache shape {st.shape} (at least 1-D), got "
                         f"{x.shape}")
    features = math.prod(st.shape[1:])
    if W_eff.ndim != 2 or W_eff.shape[0] != features:
        raise ValueError(f"cache W_eff must be 2-D with {features} rows (x's features per "
                         f"example), got shape {W_eff.shape}")
    _no_mask(cache.keep, "dropconnect")
    st.x, st.W_eff = x, W_eff
    if cache.seed is None:      # training=False or rate 0: the plain affine map
        if st.rate != 0.0 or cache.offset is not None:
            raise ValueError(f"a 'dropconnect' cache without a seed must have rate=0 and "
                             f"offset=None, got rate={st.rate!r}, "
                             f"offset={_validation._short(cache.offset)}")
        return st
    if st.rate == 0.0:
        raise ValueError("a 'dropconnect' cache with a seed needs 0 < rate <= 1, got cache "
                         "rate=0.0")
    st.seed = _validation.check_uint64(cache.seed, "cache seed")
    st.offset = _validation.check_offset(cache.offset, W_eff.size, "cache offset")
    st.thr, st.scale = _contract.threshold_and_scale(st.rate)
    return st


def _identity_cache(x, rate=0.0, kind="identity"):
    return VariantCache(kind, rate, None, None, x.shape, x.dtype)


def _contig(x):
    """``x`` as an aligned C-contiguous array (a copy only when it is not one already):
    ``np.ascontiguousarray`` keeps a contiguous but unaligned array unaligned, and the kernels
    need aligned float pointers."""
    return _validation.aligned_contiguous(x)


def _check_offset_units(offset, size, per, name="offset"):
    """``offset`` in units that each use ``per`` draws: needs ``per * (offset + size) <= 2**64``."""
    offset = _validation.check_uint64(offset, name)
    if per * (offset + size) > _UINT64:
        raise ValueError(
            f"{name} + size must be <= 2**64 / {per} (this variant reads {per} draws per "
            f"element), got {name}={offset} with size={size}")
    return offset


def _check_dout(dout, st):
    dout = _validation.as_float_array(dout, "dout")
    _check_dout_like(dout, st.shape, st.dtype)
    return dout


def _check_dout_like(dout, shape, dtype):
    if dout.shape != shape:
        raise ValueError(f"dout must have the forward output's shape {shape}, got {dout.shape}")
    if dout.dtype != dtype:
        raise TypeError(f"dout must have the forward input's dtype {dtype}, got {dout.dtype}")


def _common(x, rate, training, seed, n_threads):
    x = _validation.as_float_array(x, "x")
    rate = _validation.check_probability(rate, "rate")
    training = _validation.check_bool(training, "training")
    seed = None if seed is None else _validation.check_uint64(seed, "seed")
    return x, rate, training, seed, effective_n_threads(n_threads)


# ------------------------------------------------------------------------------------------
# noise_shape / broadcast masks
# ------------------------------------------------------------------------------------------

def _normalize_axes(axes, ndim, name):
    if isinstance(axes, numbers.Integral) and not isinstance(axes, bool):
        axes = (axes,)
    try:
        axes = tuple(axes)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {axes!r}") from None
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError(f"{name} must be an int or a tuple of ints, got {axes!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{name} entries must satisfy -{ndim} <= axis < {ndim} for x of "
                             f"{ndim} dimensions, got {a}")
        a = int(a) % ndim
        if a in out:
            raise ValueError(f"{name} must not repeat an axis, got {axes!r}")
        out.append(a)
    return tuple(sorted(out))


def _mask_shape(shape, noise_shape, broadcast_axes):
    if noise_shape is not None and broadcast_axes is not None:
        raise ValueError("give noise_shape or broadcast_axes, not both")
    if broadcast_axes is not None:
        axes = _normalize_axes(broadcast_axes, len(shape), "broadcast_axes")
        return tuple(1 if d in axes else s for d, s in enumerate(shape))
    if noise_shape is None:
        return tuple(shape)
    try:
        ns = tuple(noise_shape)
    except TypeError:
        raise TypeError(f"noise_shape must be a tuple of ints (or None entries), got "
                        f"{noise_shape!r}") from None
    if len(ns) != len(shape):
        raise ValueError(f"noise_shape must have x.ndim={len(shape)} entries, got {ns!r}")
    out = []
    for d, (m, s) in enumerate(zip(ns, shape)):
        if m is None:
            m = s
        if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m not in (1, s):
            raise ValueError(f"noise_shape[{d}] must be 1 or x.shape[{d}]={s} (or None), "
                             f"got {m!r}")
        out.append(int(m))
    return tuple(out)


def _collapse(shape, mask_shape):
    """Collapsed (shape, mask strides) for the broadcast kernel; axes of size 1 dropped."""
    mstr, acc = [0] * len(shape), 1
    for d in range(len(shape) - 1, -1, -1):
        mstr[d] = acc if mask_shape[d] != 1 else 0
        acc *= mask_shape[d]
    dims = [(s, m) for s, m in zip(shape, mstr) if s != 1]
    if not dims:
        return np.array([1], np.int64), np.array([0], np.int64)
    cs, cm = [dims[0][0]], [dims[0][1]]
    for s, m in dims[1:]:
        if (m == 0 and cm[-1] == 0) or (m != 0 and cm[-1] == m * s):
            cs[-1] *= s
            cm[-1] = m
        else:
            cs.append(s)
            cm.append(m)
    return np.array(cs, np.int64), np.array(cm, np.int64)


@functools.lru_cache(maxsize=256)
def _collapse_cached(shape, mask_shape):
    """:func:`_collapse` of two tuples of ints, memoised (backward calls repeat the same
    geometry every step); the arrays are read-only, since they are shared."""
    cs, cm = _collapse(shape, mask_shape)
    cs.flags.writeable = cm.flags.writeable = False
    return cs, cm


def dropout_nd(x, rate=0.5, *, noise_shape=None, broadcast_axes=None, training=True, seed=None,
               offset=0, n_threads=None):
    """Dropout whose mask is shared along chosen axes (Keras ``noise_shape``, Flax
    ``broadcast_dims``).

    Parameters
    ----------
    x : array_like of float32 or float64, any shape
    rate : float, default=0.5
        Probability of DROPPING a mask element, ``0 <= rate <= 1``. Kept elements are scaled
        by ``65536 / round((1 - rate) * 65536)``, the inverse of the realised keep probability.
    noise_shape : tuple or None, default=None
        Shape of the mask, one entry per axis of ``x``: ``1`` shares one mask value along that
        axis, ``x.shape[d]`` (or None) draws one per index. Keras's convention.
    broadcast_axes : int, tuple of int or None, default=None
        The axes along which the mask is shared (Flax's ``broadcast_dims``). Give this or
        ``noise_shape``, not both; neither means an ordinary element-wise mask.
    training : bool, default=True
        ``False`` (or ``rate == 0``) returns ``x`` unchanged.
    seed : int or None, default=None
        ``0 <= seed < 2**64``; None draws a fresh one from the OS (kept in the cache).
    offset : int, default=0
        Global index of mask element 0.
    n_threads : int or None, default=None
        Threads for the kernels (see :func:`cydrop.effective_n_threads`): any nonzero int,
        capped at the usable cores. Never changes the result.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : VariantCache
        For :func:`dropout_nd_backward`; ``cache.keep`` is the reduced 0/1 mask.

    Raises
    ------
    TypeError, ValueError
        Bad ``x``, ``rate``, ``noise_shape`` / ``broadcast_axes``, ``seed`` or ``offset``.

    Notes
    -----
    The reduced mask (shape ``noise_shape``) is drawn exactly as :func:`cydrop.dropout_mask`
    draws a mask of that shape: mask element ``j`` in C order is kept when
    ``draw(seed, offset + j) < round((1 - rate) * 65536)``. So the mask is a pure function of
    (seed, offset, reduced-mask index), and with no broadcast axes the result equals
    :func:`cydrop.dropout`'s. The kernel then applies it with broadcasting (collapsed axes,
    one pass over ``x``).

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.variants import dropout_nd
    >>> x = np.ones((2, 3, 4), dtype=np.float32)
    >>> y, cache = dropout_nd(x, 0.5, broadcast_axes=2, seed=0)
    >>> cache.keep.shape, bool((y == y[:, :, :1]).all())
    ((2, 3, 1), True)
    """
    x, rate, training, seed, threads = _common(x, rate, training, seed, n_threads)
    mshape = _mask_shape(x.shape, noise_shape, broadcast_axes)
    msize = int(np.prod(mshape, dtype=object))
    offset = _validation.check_offset(offset, msize)
    if not training or rate == 0.0:
        return x, _identity_cache(x)
    seed = resolve_seed(seed)
    thr, scale = _contract.threshold_and_scale(rate)
    keep = np.empty(msize, dtype=np.uint8)
    _v.keep_mask(msize, seed, offset, thr, keep, threads)
    shape, mstride = _collapse(x.shape, mshape)
    src = _contig(x)
    out = np.empty(x.shape, dtype=x.dtype)
    _v.bcast(src.reshape(-1), out.reshape(-1), keep, shape, mstride, scale, threads)
    keep = keep.reshape(mshape)
    keep.flags.writeable = False
    return out, VariantCache("nd", rate, seed, offset, x.shape, x.dtype, keep)


def dropout_nd_backward(dout, cache, *, n_threads=None):
    """Gradient of :func:`dropout_nd` (and :func:`spatial_dropout`, :func:`locked_dropout`).

    Parameters
    ----------
    dout : ndarray of float32 or float64, the forward input's shape and dtype
    cache : VariantCache
    n_threads : int or None, default=None
        Threads for the kernels (see :func:`cydrop.effective_n_threads`): any nonzero int,
        capped at the usable cores. Never changes the result.

    Returns
    -------
    dx : ndarray
        ``dout`` masked (broadcast) and scaled exactly as the forward input was.
    """
    st = _cache_state(cache, "dropout_nd", ("nd", "identity"))
    dout = _check_dout(dout, st)
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        return dout
    dx = np.empty(dout.shape, dtype=dout.dtype)
    _v.bcast(_contig(dout).reshape(-1), dx.reshape(-1), st.keep.reshape(-1), st.cshape,
             st.mstride, st.scale, threads)
    return dx


def spatial_dropout(x, rate=0.5, *, training=True, seed=None, offset=0, n_threads=None):
    """Channel ("spatial") dropout: zero whole channels of (N, C, L), (N, C, H, W) or
    (N, C, D, H, W) inputs, like PyTorch's Dropout1d / Dropout2d / Dropout3d.

    Same as ``dropout_nd(x, rate, broadcast_axes=(2, ..., x.ndim - 1))``: one mask value per
    (sample, channel), mask element ``n * C + c``. Parameters and returns as :func:`dropout_nd`;
    the backward is :func:`dropout_nd_backward`.

    Raises
    ------
    ValueError
        If ``x`` does not have 3, 4 or 5 dimensions.
    """
    x = _validation.as_float_array(x, "x")
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"x must have 3, 4 or 5 dimensions (N, C, *spatial) for spatial "
                         f"dropout, got shape {x.shape}")
    return dropout_nd(x, rate, broadcast_axes=tuple(range(2, x.ndim)), training=training,
                      seed=seed, offset=offset, n_threads=n_threads)


def locked_dropout(x, rate=0.5, *, time_axis=0, training=True, seed=None, offset=0,
                   n_threads=None):
    """Locked (variational) dropout: the same mask at every time step of a sequence.

    For ``(T, N, F)`` inputs use ``time_axis=0``, for ``(N, T, F)`` ``time_axis=1`` (Gal and
    Ghahramani 2016; Merity et al.'s ``LockedDropout``). Same as
    ``dropout_nd(x, rate, broadcast_axes=time_axis)``; backward is :func:`dropout_nd_backward`.

    Raises
    ------
    ValueError
        If ``x`` has fewer than 2 dimensions or ``time_axis`` is out of range.
    """
    x = _validation.as_float_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (time and features) for locked "
                         f"dropout, got shape {x.shape}")
    return dropout_nd(x, rate, broadcast_axes=time_axis, training=training, seed=seed,
                      offset=offset, n_threads=n_threads)


# ------------------------------------------------------------------------------------------
# DropConnect
# ------------------------------------------------------------------------------------------

def dropconnect_forward(x, W, b, rate=0.5, *, training=True, seed=None, offset=0,
                        n_threads=None):
    """Affine layer with DropConnect: drop WEIGHTS, not activations (Wan et al. 2013).

    Parameters
    ----------
    x : ndarray of shape (N, d_1, ..., d_k), float32 or float64
        Flattened to (N, D) as in CS231n's ``affine_forward``.
    W : ndarray of shape (D, M), same dtype
    b : ndarray of shape (M,), same dtype
    rate : float, default=0.5
        Probability of dropping each weight.
    training : bool, default=True
        ``False`` (or ``rate == 0``) computes the plain ``x @ W + b`` (the mask's expectation).
    seed, offset : int
        Weight ``W[d, m]`` is kept when ``draw(seed, offset + d * M + m) < round((1 - rate)
        65536)``: one mask for the whole batch (per-step, not per-sample).
    n_threads : int or None, default=None
        Threads for the kernels (see :func:`cydrop.effective_n_threads`): any nonzero int,
        capped at the usable cores. Never changes the result.

    Returns
    -------
    out : ndarray of shape (N, M)
        ``x @ W_eff + b`` with ``W_eff = where(keep, W * scale, 0)``, ``scale = 65536 / thr``.
    cache : VariantCache
        For :func:`dropconnect_backward`.
    """
    x, rate, training, seed, threads = _common(x, rate, training, seed, n_threads)
    W = _validation.as_float_array(W, "W")
    b = _validation.as_float_array(b, "b")
    if x.ndim < 1 or W.ndim != 2 or b.shape != (W.shape[1],):
        raise ValueError(f"W must have shape (D, M) and b shape (M,), got W {W.shape} and "
                         f"b {b.shape}")
    n = x.shape[0] if x.ndim else 0
    x2 = x.reshape(n, -1)
    if x2.shape[1] != W.shape[0]:
        raise ValueError(f"x must have {W.shape[0]} features per example to match W of shape "
                         f"{W.shape}, got x of shape {x.shape}")
    if not x.dtype == W.dtype == b.dtype:
        raise TypeError(f"x, W and b must share one dtype, got {x.dtype}, {W.dtype}, {b.dtype}")
    offset = _validation.check_offset(offset, W.size)
    if not training or rate == 0.0:
        return x2 @ W + b, VariantCache("dropconnect", 0.0, None, None, x.shape, x.dtype,
                                        x=x, W_eff=W)
    seed = resolve_seed(seed)
    thr, scale = _contract.threshold_and_scale(rate)
    W_eff = np.empty(W.shape, dtype=W.dtype)
    _v.dropout(_contig(W).reshape(-1), W_eff.reshape(-1), seed, offset, thr, scale, threads)
    return x2 @ W_eff + b, VariantCache("dropconnect", rate, seed, offset, x.shape, x.dtype,
                                        x=x, W_eff=W_eff)


def dropconnect_backward(dout, cache, *, n_threads=None):
    """Gradients of :func:`dropconnect_forward`.

    Returns
    -------
    dx : ndarray of the forward ``x``'s shape
        ``dout @ W_eff.T``.
    dW : ndarray of shape (D, M)
        ``(x @ ... ).T @ dout`` masked and scaled by the same weight mask.
    db : ndarray of shape (M,)
    """
    st = _cache_state(cache, "dropconnect_forward", ("dropconnect",))
    x, W_eff = st.x, st.W_eff
    dout = _validation.as_float_array(dout, "dout")
    _check_dout_like(dout, (st.shape[0], W_eff.shape[1]), st.dtype)
    threads = effective_n_threads(n_threads)
    x2 = x.reshape(st.shape[0], -1)
    dx = (dout @ W_eff.T).reshape(st.shape)
    dW = _contig(x2.T @ dout)
    if st.seed is not None:
        _v.dropout(dW.reshape(-1), dW.reshape(-1), st.seed, st.offset, st.thr, st.scale,
                   threads)
    return dx, dW, dout.sum(axis=0)


# ------------------------------------------------------------------------------------------
# exact-k
# ------------------------------------------------------------------------------------------

def exact_k_count(n, rate):
    """Units dropped per row of ``n``: ``k = floor(rate * n + 0.5)`` (halves round up)."""
    rate = _validation.check_probability(rate, "rate")
    return int(math.floor(rate * int(n) + 0.5))


def exact_k_dropout(x, rate=0.5, *, training=True, seed=None, offset=0, n_threads=None):
    """Drop exactly ``k = floor(rate * n + 0.5)`` of the ``n`` units of every row.

    Rows are the last axis of ``x`` (``x.shape[-1] == n``); kept units are scaled by
    ``n / (n - k)`` so every row keeps its expected sum.

    Parameters
    ----------
    x : array_like of float32 or float64, at least 1-D
    rate : float, default=0.5
    training : bool, default=True
    seed : int or None, default=None
    offset : int, default=0
        Index of row 0's first u32 word: row ``r`` reads u32 words ``offset + r n .. offset +
        r n + n - 1`` (draws ``2 (offset + r n)`` onwards), so rows are independent and
        ``exact_k_dropout(x[a:b], offset=offset + a * n)`` equals rows ``a:b`` of the whole.
    n_threads : int or None, default=None
        Threads for the kernels (see :func:`cydrop.effective_n_threads`): any nonzero int,
        capped at the usable cores. Never changes the result.

    Returns
    -------
    out : ndarray like ``x``
    cache : VariantCache
        ``cache.keep`` holds the 0/1 mask (``x.size`` bytes).

    Notes
    -----
    Unit ``j`` of row ``r`` gets the 64-bit key ``(u32word(offset + r n + j) << 32) | j`` and
    the ``k`` smallest keys are dropped: a uniformly random k-subset (up to ties in 32 random
    bits, broken by index). The kernel finds them per row with a quickselect; NumPy reproduces
    it with ``np.partition`` (see :func:`cydrop.reference_variants.exact_k_keep`).
    """
    x, rate, training, seed, threads = _common(x, rate, training, seed, n_threads)
    if x.ndim < 1:
        raise ValueError(f"x must have at least 1 dimension (rows along the last axis), got "
                         f"shape {x.shape}")
    n = x.shape[-1]
    if n >= 2**32:
        raise ValueError(f"x.shape[-1] must be < 2**32 for exact-k dropout, got {n}")
    offset = _check_offset_units(offset, x.size, 2)
    k = exact_k_count(n, rate)
    if not training or k == 0:
        return x, _identity_cache(x)
    seed = resolve_seed(seed)
    rows = x.size // n if n else 0
    keep = np.empty(x.size, dtype=np.uint8)
    scratch = np.empty(max(threads, 1) * max(n, 1), dtype=np.uint64)
    _v.exactk_mask(rows, n, k, seed, offset, keep, scratch, threads)
    scale = n / (n - k) if k < n else 0.0
    out = np.empty(x.shape, dtype=x.dtype)
    one = np.array([x.size if x.size else 1], np.int64)
    _v.bcast(_contig(x).reshape(-1), out.reshape(-1), keep, one, np.ones(1, np.int64), scale,
             threads)
    keep = keep.reshape(x.shape)
    keep.flags.writeable = False
    return out, VariantCache("exact_k", rate, seed, offset, x.shape, x.dtype, keep)


def exact_k_dropout_backward(dout, cache, *, n_threads=None):
    """Gradient of :func:`exact_k_dropout`: ``dout`` under the same mask and scale."""
    st = _cache_state(cache, "exact_k_dropout", ("exact_k", "identity"))
    dout = _check_dout(dout, st)
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        return dout
    dx = np.empty(dout.shape, dtype=dout.dtype)
    one = np.array([dout.size if dout.size else 1], np.int64)
    _v.bcast(_contig(dout).reshape(-1), dx.reshape(-1), st.keep.reshape(-1), one,
             np.ones(1, np.int64), st.scale, threads)
    return dx


# ------------------------------------------------------------------------------------------
# AlphaDropout, GaussianDropout
# ------------------------------------------------------------------------------------------

def _alpha_constants(rate):
    thr = _v.threshold(1.0 - rate)
    if thr == 0:
        return 0, 0.0, 0.0, 0.0
    q = thr / 65536.0
    a = (q + ALPHA_PRIME * ALPHA_PRIME * q * (1.0 - q)) ** -0.5
    b = -a * (1.0 - q) * ALPHA_PRIME
    return thr, a, b, a * ALPHA_PRIME + b


def alpha_dropout(x, rate=0.5, *, training=True, seed=None, offset=0, n_threads=None):
    """AlphaDropout for SELU networks: keeps zero mean and unit variance (Klambauer et al.).

    A dropped unit is set to SELU's negative saturation ``alpha' = -1.7580993408473766`` and
    the result is transformed affinely: ``out = a * (keep ? x : alpha') + b`` with
    ``q = thr / 65536`` the realised keep probability, ``a = (q + alpha'^2 q (1 - q))^-1/2``
    and ``b = -a (1 - q) alpha'``, PyTorch's ``nn.AlphaDropout`` formula.

    Parameters
    ----------
    x : array_like of float32 or float64
    rate : float, default=0.5
        Drop probability. ``rate == 1`` (threshold 0) zeros the output, as PyTorch does.
    training : bool, default=True
    seed : int or None, default=None
    offset : int, default=0
        Element ``i`` is kept when ``draw(seed, offset + i) < round((1 - rate) 65536)``.
    n_threads : int or None, default=None
        Threads for the kernels (see :func:`cydrop.effective_n_threads`): any nonzero int,
        capped at the usable cores. Never changes the result.

    Returns
    -------
    out : ndarray like ``x``
        ``a * x + b`` where kept (two roundings in ``x``'s precision, ``a`` and ``b`` rounded to
        it first), ``a alpha' + b`` where dropped.
    cache : VariantCache
    """
    x, rate, training, seed, threads = _common(x, rate, training, seed, n_threads)
    offset = _validation.check_offset(offset, x.size)
    if not training or rate == 0.0:
        return x, _identity_cache(x)
    seed = resolve_seed(seed)
    thr, a, b, c = _alpha_constants(rate)
    out = np.empty(x.shape, dtype=x.dtype)
    _v.alpha(_contig(x).reshape(-1), out.reshape(-1), seed, offset, thr, a, b, c, threads)
    return out, VariantCache("alpha", rate, seed, offset, x.shape, x.dtype)


def alpha_dropout_backward(dout, cache, *, n_threads=None):
    """Gradient of :func:`alpha_dropout`: ``a * dout`` where kept, ``+0.0`` where dropped."""
    st = _cache_state(cache, "alpha_dropout", ("alpha", "identity"))
    dout = _check_dout(dout, st)
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        return dout
    dx = np.empty(dout.shape, dtype=dout.dtype)
    _v.dropout(_contig(dout).reshape(-1), dx.reshape(-1), st.seed, st.offset, st.thr, st.a,
               threads)
    return dx


def _check_gauss_rate(rate):
    rate = _validation.check_probability(rate, "rate")
    if rate == 1.0:
        raise ValueError(f"rate must satisfy 0 <= rate < 1 for Gaussian dropout (the noise "
                         f"variance rate / (1 - rate) is infinite at 1), got {rate!r}")
    return rate


def gaussian_dropout(x, rate=0.5, *, training=True, seed=None, offset=0, n_threads=None):
    """Multiplicative Gaussian noise ``x * eps``, ``eps ~ N(1, rate / (1 - rate))`` (Keras).

    Parameters
    ----------
    x : array_like of float32 or float64
    rate : float, default=0.5
        ``0 <= rate < 1``; the noise standard deviation is ``sqrt(rate / (1 - rate))``, the
        variance of inverted Bernoulli dropout at the same rate.
    training : bool, default=True
    seed : int or None, default=None
    offset : int, default=0
        Element ``i`` reads the 64-bit word ``offset + i`` of the draw field (draws
        ``4 (offset + i) .. 4 (offset + i) + 3``); needs ``4 (offset + x.size) <= 2**64``.
    n_threads : int or None, default=None
        Threads for the kernels (see :func:`cydrop.effective_n_threads`): any nonzero int,
        capped at the usable cores. Never changes the result.

    Returns
    -------
    out : ndarray like ``x``
    cache : VariantCache

    Notes
    -----
    ``eps = 1 + sigma * z`` in double, rounded to ``x``'s dtype, with ``z`` from the
    word ``w`` by Box-Muller (cosine branch): ``u1 = ((w >> 32) + 0.5) / 2**32``,
    ``u2 = (w & 0xffffffff) / 2**32``, ``z = sqrt(-2 ln u1) cos(2 pi u2)``. The word is one
    whole xoshiro256++ lane output, so ``u1``, ``u2`` carry 32 bits each (|z| <= 6.66). Bits
    are identical for any thread count; across platforms they depend on libm's ``log`` and
    ``cos``.
    """
    x, _, training, seed, threads = _common(x, 0.0, training, seed, n_threads)
    rate = _check_gauss_rate(rate)
    offset = _check_offset_units(offset, x.size, 4)
    if not training or rate == 0.0:
        return x, _identity_cache(x)
    seed = resolve_seed(seed)
    sigma = math.sqrt(rate / (1.0 - rate))
    out = np.empty(x.shape, dtype=x.dtype)
    _v.gauss(_contig(x).reshape(-1), out.reshape(-1), seed, offset, sigma, threads)
    return out, VariantCache("gaussian", rate, seed, offset, x.shape, x.dtype)


def gaussian_dropout_backward(dout, cache, *, n_threads=None):
    """Gradient of :func:`gaussian_dropout`: ``dout * eps`` with the same (regenerated) noise."""
    st = _cache_state(cache, "gaussian_dropout", ("gaussian", "identity"))
    dout = _check_dout(dout, st)
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        return dout
    dx = np.empty(dout.shape, dtype=dout.dtype)
    _v.gauss(_contig(dout).reshape(-1), dx.reshape(-1), st.seed, st.offset, st.sigma, threads)
    return dx


def gaussian_noise(shape, rate=0.5, *, seed, offset=0, dtype=np.float64, n_threads=None):
    """The factors ``eps`` :func:`gaussian_dropout` multiplies by, as an array of ``shape``."""
    dtype = np.dtype(dtype)
    _validation.check_float_dtype(dtype, "dtype")
    ones = np.ones(_validation.check_shape(shape), dtype=dtype)
    out, _ = gaussian_dropout(ones, rate, seed=seed, offset=offset, n_threads=n_threads)
    return out


_BACKWARD = {
    "nd": dropout_nd_backward,
    "dropconnect": dropconnect_backward,
    "exact_k": exact_k_dropout_backward,
    "alpha": alpha_dropout_backward,
    "gaussian": gaussian_dropout_backward,
    "identity": dropout_nd_backward,
}


def backward(dout, cache, *, n_threads=None):
    """Backward of any variant, chosen by ``cache.kind`` (DropConnect returns (dx, dW, db)).

    The cache's state is validated first (a ``TypeError``/``ValueError`` naming the field);
    ``n_threads`` is any nonzero int, capped at the usable cores.
    """
    if not isinstance(cache, VariantCache):
        raise TypeError(f"cache must be a VariantCache from cydrop.variants, got "
                        f"{type(cache).__name__}")
    kind = cache.kind
    if not isinstance(kind, str) or kind not in _BACKWARD:
        raise ValueError(f"cache kind must be one of {_KINDS}, got {_validation._short(kind)}")
    return _BACKWARD[kind](dout, cache, n_threads=n_threads)


# ------------------------------------------------------------------------------------------
# MC dropout
# ------------------------------------------------------------------------------------------

def _mix64(z):
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def mc_sample_seed(seed, sample):
    """Seed of Monte Carlo sample ``sample``: ``mix64(mix64(seed + G) ^ ((sample + 1) G))``.

    ``G = 0x9e3779b97f4a7c15``; ``mix64`` is splitmix64's finaliser. Each sample's masks are a
    pure function of (seed, sample index).
    """
    seed = _validation.check_uint64(seed, "seed")
    sample = _validation.check_uint64(sample, "sample")
    return _mix64(_mix64(seed + _GOLDEN) ^ (((sample + 1) * _GOLDEN) & _MASK64))


class MCPrediction(tuple):
    """``(mean, std, samples)`` of :func:`mc_predict`; ``samples`` is None unless asked for."""

    __slots__ = ()

    def __new__(cls, mean, std, samples=None):
        return super().__new__(cls, (mean, std, samples))

    mean = property(lambda self: self[0], doc="mean over samples, shape of one output")
    std = property(lambda self: self[1], doc="standard deviation over samples (ddof=0)")
    samples = property(lambda self: self[2], doc="(K, ...) stack of outputs, or None")


def _softmax(s):
    z = s - s.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class SequentialMC:
    """SequentialMC(model)

    Adapter that turns a :class:`cydrop.nn.Sequential` into the callable
    ``f(X, seed, offset, fixed_mask=False)`` that :func:`mc_predict` expects.

    One call runs every layer once: deterministic layers (``Dense``, ``ReLU``, ...) in
    evaluation mode, and every dropout layer stochastically with masks from
    ``SeedStream(seed)`` started at ``offset``, taken in layer order, so a sample is a pure
    function of (seed, offset). ``cydrop.nn.Dropout`` layers are applied with
    :func:`cydrop.dropout` (with ``fixed_mask``, :func:`dropout_nd` broadcast over the batch
    axis, so all inputs share one mask); layers of :mod:`cydrop.variants_layers` through their
    ``mc_forward(x, stream, fixed_mask)`` hook. The model's own mask streams, modes and
    parameters are left as they were.
    """

    def __init__(self, model):
        if not hasattr(model, "layers"):
            raise TypeError(f"model must be a cydrop.nn.Sequential (with .layers), got "
                            f"{type(model).__name__}")
        self.model = model

    supports_fixed_mask = True

    def __call__(self, X, seed, offset=0, fixed_mask=False):
        import cydrop
        from cydrop import nn
        stream = SeedStream(seed)
        if offset:
            stream.set_state({"seed": seed, "offset": offset})
        model = self.model
        was_training = [(l, l.training) for l in _walk(model)]
        model.eval()
        try:
            x = X
            for layer in model.layers:
                if hasattr(layer, "mc_forward"):
                    x = layer.mc_forward(x, stream, fixed_mask)
                elif isinstance(layer, nn.Dropout):
                    if layer.rate == 0.0:
                        continue
                    if fixed_mask:
                        s, o = stream.next(int(np.prod(x.shape[1:], dtype=np.int64)))
                        x, _ = dropout_nd(x, layer.rate, broadcast_axes=0, seed=s, offset=o,
                                          n_threads=layer.n_threads)
                    else:
                        s, o = stream.next(x.size)
                        x, _ = cydrop.dropout(x, layer.rate, seed=s, offset=o,
                                              n_threads=layer.n_threads)
                else:
                    x = layer.forward(x)
            return x
        finally:
            for layer, mode in was_training:
                layer.training = mode


def _walk(module):
    yield module
    for child in getattr(module, "children", lambda: ())():
        yield from _walk(child)


def mc_predict(f, X, mc_samples=20, *, seed=None, offset=0, fixed_mask=False, transform=None,
               return_samples=False):
    """Monte Carlo dropout prediction: mean and spread of ``mc_samples`` stochastic passes.

    Parameters
    ----------
    f : callable or cydrop.nn.Sequential
        ``f(X, seed, offset)`` runs ONE stochastic forward pass whose masks are a pure function
        of ``(seed, offset)`` and returns an array. A model with ``.layers`` (the trainer's
        ``Sequential``) is wrapped in :class:`SequentialMC`.
    X : ndarray of shape (N, ...)
    mc_samples : int, default=20
        Number of passes ``K >= 1``.
    seed : int or None, default=None
        Sample ``s`` runs ``f(X, mc_sample_seed(seed, s), offset)``, so any sample can be
        replayed alone. None draws a fresh seed from the OS (pass a seed to reproduce).
    offset : int, default=0
        Passed to every call.
    fixed_mask : bool, default=False
        Hold one mask fixed across all inputs of a sample (every row of ``X`` sees the same
        dropped units). Uses ``f(X, seed, offset, fixed_mask=True)`` when ``f`` has a true
        ``supports_fixed_mask`` attribute (as :class:`SequentialMC` does); otherwise calls
        ``f`` on each row separately with the same seed, which any pure ``f`` satisfies.
    transform : None, 'softmax' or callable, default=None
        Applied to each pass's output before averaging (``'softmax'`` turns class scores into
        probabilities).
    return_samples : bool, default=False
        Also return the (K, ...) stack of transformed outputs.

    Returns
    -------
    MCPrediction
        ``(mean, std, samples)``: mean and standard deviation (ddof=0) over samples, and the
        stack or None.

    Raises
    ------
    ValueError, TypeError
        For a bad ``mc_samples``, ``seed``, ``offset`` or ``transform``.

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.variants import mc_predict, dropout_nd
    >>> f = lambda X, seed, offset: dropout_nd(X, 0.5, seed=seed, offset=offset)[0]
    >>> mean, std, _ = mc_predict(f, np.ones((2, 3)), 8, seed=0)
    >>> mean.shape, std.shape
    ((2, 3), (2, 3))
    """
    if hasattr(f, "layers"):
        f = SequentialMC(f)
    if not callable(f):
        raise TypeError(f"f must be callable as f(X, seed, offset), got {type(f).__name__}")
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, numbers.Integral) \
            or mc_samples < 1:
        raise ValueError(f"mc_samples must be an integer >= 1, got {mc_samples!r}")
    seed = resolve_seed(seed)
    offset = _validation.check_uint64(offset, "offset")
    fixed_mask = _validation.check_bool(fixed_mask, "fixed_mask")
    return_samples = _validation.check_bool(return_samples, "return_samples")
    if transform == "softmax":
        transform = _softmax
    elif transform is None:
        transform = lambda s: s  # noqa: E731
    elif not callable(transform):
        raise ValueError(f"transform must be None, 'softmax' or a callable, got {transform!r}")
    native = fixed_mask and bool(getattr(f, "supports_fixed_mask", False))
    outs = []
    for s in range(int(mc_samples)):
        ss = mc_sample_seed(seed, s)
        if native:
            y = f(X, ss, offset, fixed_mask=True)
        elif fixed_mask:
            y = np.concatenate([np.asarray(f(X[i:i + 1], ss, offset)) for i in range(len(X))])
        else:
            y = f(X, ss, offset)
        outs.append(np.asarray(transform(np.asarray(y))))
    stack = np.stack(outs)
    return MCPrediction(stack.mean(axis=0), stack.std(axis=0),
                        stack if return_samples else None)
