"""One cache protocol for every op: what a forward call hands its backward.

Every cache cydrop makes is a :class:`Cache`: :class:`cydrop.DropoutCache` (a compiled class,
registered as a virtual subclass), :class:`FusedCache`, :class:`VariantCache`, the sharded
call's ``cydrop._shard.ShardCache`` and the dask adapter's ``DaskDropoutCache``. They share one
surface:

``rate``, ``seed``, ``offset``
    The drop probability (0 when nothing was dropped), the seed and the global index of the
    first draw (both None when nothing was dropped).
``shape``, ``dtype``
    The forward input's shape and dtype.
``mask_shape``
    The shape of the keep mask: ``shape``, except for :func:`cydrop.variants.dropout_nd` (the
    reduced mask) and DropConnect (the weight matrix's shape). :class:`cydrop.DropoutCache` has
    no such attribute; its mask is always of ``shape`` (:func:`mask_shape` answers for any cache).
``nbytes``
    Bytes of the arrays the cache keeps alive for backward (0 when it keeps only scalars).
``keep_mask()``
    A new uint8 array of ``mask_shape``: 1 where the op let the position through, 0 where it
    dropped it; all ones when nothing was dropped (and for Gaussian dropout, which multiplies
    every element by noise and drops none). Stored masks are copied, others are regenerated
    from (seed, offset).

Caches pickle through :func:`restore`, which validates the state as strictly as a forward call
validates its arguments; every backward validates its cache through :func:`check_cache` before a
kernel sees it. Kernel parameters (threshold, scale, constants, geometry) are always derived
again from the validated ``rate`` and shapes through :mod:`cydrop._contract`, never read back.
"""

import abc
import math

import numpy as np

from cydrop import _contract, _kernels, _validation
from cydrop import _variant_params as _p
from cydrop._kernels import DropoutCache
from cydrop._openmp import effective_n_threads

__all__ = ["Cache", "CacheState", "FusedCache", "VARIANT_KINDS", "VariantCache", "check_cache",
           "check_randomness", "mask_shape", "restore"]

VARIANT_KINDS = ("nd", "dropconnect", "exact_k", "alpha", "gaussian", "identity")
_short = _validation._short


class CacheState:
    """A cache's state after validation, with the kernel parameters derived from it."""

    kind = seed = offset = keep = thr = scale = cshape = mstride = None
    a = b = c = sigma = k = x = W_eff = out = stored = None
    block = None            # a sharded call's cydrop._shard.Block

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)


class Cache(abc.ABC):
    """The protocol every cydrop cache follows (see the module docstring)."""

    __slots__ = ()
    _FIELDS = ()            # constructor arguments, in order: what pickling saves

    @property
    def mask_shape(self):
        """Shape of :meth:`keep_mask`'s array."""
        return tuple(self.shape)

    @property
    @abc.abstractmethod
    def nbytes(self):
        """Bytes of the arrays the cache keeps alive for backward."""

    @abc.abstractmethod
    def keep_mask(self):
        """The forward call's keep mask: uint8 0/1 of :attr:`mask_shape`, 1 = let through."""

    @abc.abstractmethod
    def _state(self):
        """Validate the whole state as strictly as a forward call; return a CacheState."""

    def _restored(self, st):  # noqa: B027  (a hook: does nothing unless a subclass needs it)
        """Normalise the fields of an unpickled cache from its validated state."""

    def __reduce__(self):
        # Rebuilt through restore(), which validates the state: a pickle is data from
        # outside, and the backward kernels index memory with what the cache says.
        return (restore, (type(self), tuple(getattr(self, f) for f in self._FIELDS)))


Cache.register(DropoutCache)


def restore(cls, state):
    """Unpickle a Python cache of type ``cls`` from its fields, refusing any state a forward
    call could not have made (TypeError/ValueError naming the field)."""
    if not (isinstance(cls, type) and issubclass(cls, Cache) and Cache in cls.__mro__
            and cls._FIELDS):
        raise TypeError(f"cannot restore a cydrop cache of type {_short(cls)}")
    if not isinstance(state, tuple) or len(state) != len(cls._FIELDS):
        raise TypeError(f"a pickled {cls.__name__} must hold {len(cls._FIELDS)} fields, got "
                        f"{_short(state)}")
    cache = cls.__new__(cls)
    for name, value in zip(cls._FIELDS, state):
        setattr(cache, name, value)
    cache._restored(cache._state())
    return cache


def mask_shape(cache):
    """``cache.mask_shape`` for any cache (a :class:`cydrop.DropoutCache`'s mask has its shape)."""
    return tuple(cache.shape) if isinstance(cache, DropoutCache) else cache.mask_shape


def check_cache(cache, expected_types, name, kinds=None, *, validate=True):
    """Validate the cache a backward call got; return its :class:`CacheState`.

    Parameters
    ----------
    cache : object
    expected_types : tuple of type
        The cache types the backward accepts.
    name : str
        The forward call(s) that make them, for the message.
    kinds : tuple of str or None
        For a :class:`VariantCache`, the kinds the backward accepts.
    validate : bool, default=True
        ``False`` checks only the type and the kind and returns the cache itself (for a
        dispatcher whose callee validates).

    Raises
    ------
    TypeError, ValueError
        A cache of another type, of another kind, or in a state no forward call makes.
    """
    if not isinstance(cache, expected_types):
        names = " or ".join(t.__name__ for t in expected_types)
        raise TypeError(f"cache must be the {names} returned by {name}, got "
                        f"{type(cache).__name__}")
    if isinstance(cache, DropoutCache) and validate:
        # compiled, read-only fields, validated when it was made or unpickled
        mode = cache.mask_mode
        thr, scale = _contract.threshold_and_scale(cache.rate)
        return CacheState(kind=mode, rate=cache.rate, seed=cache.seed, offset=cache.offset,
                          shape=tuple(cache.shape), dtype=np.dtype(cache.dtype), thr=thr,
                          scale=scale, stored=cache.stored_mask)
    if kinds is not None:
        kind = cache.kind
        if not isinstance(kind, str) or kind not in VARIANT_KINDS:
            raise ValueError(f"cache kind must be one of {VARIANT_KINDS}, got {_short(kind)}")
        if kind not in kinds:
            raise ValueError(f"{name} needs a cache of kind "
                             f"{' or '.join(repr(k) for k in kinds)}, got kind {kind!r} "
                             f"(cydrop.variants.backward picks the matching backward)")
    return cache._state() if validate else cache


def check_randomness(what, rate, seed, offset, size, *, random, per=1):
    """The (seed, offset) of a cache, validated against its validated ``rate``.

    ``random`` says whether the cache should carry randomness. Without: ``rate`` must be 0 and
    seed and offset None. With: ``0 < rate``, a uint64 seed, and an offset whose ``size``
    elements (of ``per`` draws each) fit in 2**64. ``what`` names the cache in messages.
    """
    if not random:
        if rate != 0.0 or seed is not None or offset is not None:
            raise ValueError(f"{what} must have rate=0 and seed=offset=None (nothing was "
                             f"dropped), got rate={rate!r}, seed={_short(seed)}, "
                             f"offset={_short(offset)}")
        return None, None
    if rate == 0.0:
        raise ValueError(f"{what} needs 0 < rate <= 1 (a forward call at rate 0 keeps no "
                         f"seed), got cache rate=0.0")
    seed = _validation.check_uint64(seed, "cache seed")
    return seed, _validation.check_offset_units(offset, size, per, "cache offset")


def _regenerate(shape, seed, offset, thr):
    """The 0/1 keep mask ``draw(seed, offset + j) < thr`` of ``shape`` (all ones without a seed)."""
    size = math.prod(shape)
    if seed is None:
        return np.ones(shape, dtype=np.uint8)
    out = np.empty(size, dtype=np.uint8)
    _kernels.mask(size, seed, offset, thr, None, out, effective_n_threads(None))
    return out.reshape(shape)


def _read_only_copy(mask):
    mask = np.array(mask, dtype=np.uint8, order="C", copy=True)
    mask.flags.writeable = False
    return mask


class FusedCache(Cache):
    """What :func:`cydrop.fused.bias_relu_dropout_backward` needs: the forward output; made
    only by cydrop.

    Attributes
    ----------
    out : ndarray, shape (rows, units)
        The forward output (kept by reference, not copied: do not modify it before backward).
    scale : float
        The dropout scale (1.0 when nothing was dropped); checked against ``rate``.
    rate : float
    seed, offset : int or None
    shape, dtype, mask_shape, nbytes
        As every cydrop cache: those of ``out``.
    """

    __slots__ = ("out", "scale", "rate", "seed", "offset")
    _FIELDS = __slots__

    def __init__(self, out, scale, rate, seed, offset):
        self.out, self.scale, self.rate, self.seed, self.offset = out, scale, rate, seed, offset

    shape = property(lambda self: getattr(self.out, "shape", None), doc="the output's shape")
    dtype = property(lambda self: getattr(self.out, "dtype", None), doc="the output's dtype")
    nbytes = property(lambda self: getattr(self.out, "nbytes", 0), doc="bytes of ``out``")

    def keep_mask(self):
        st = self._state()
        return _regenerate(st.shape, st.seed, st.offset, st.thr)

    def __repr__(self):
        return (f"FusedCache(rate={self.rate!r}, seed={self.seed!r}, offset={self.offset!r}, "
                f"shape={self.shape}, dtype={self.dtype})")

    def _state(self):
        a = self.out
        if type(a) is not np.ndarray:
            raise TypeError(f"cache out must be a numpy.ndarray (the forward output), got "
                            f"{type(a).__name__}")
        _validation.check_native_float_dtype(a.dtype, "cache out's dtype", half=True)
        if a.ndim != 2:
            raise ValueError(f"cache out must be 2-D (rows, units), got shape {a.shape}")
        a = _validation.aligned_contiguous(a)
        rate = _validation.check_probability(self.rate, "cache rate")
        scale = _validation.check_real(self.scale, "cache scale", low=0.0)
        random = self.seed is not None
        what = f"a FusedCache {'with' if random else 'without'} a seed"
        seed, offset = check_randomness(what, rate, self.seed, self.offset, a.size,
                                        random=random)
        thr, expected = (_contract.threshold_and_scale(rate) if random
                         else (_contract.THRESHOLD_ONE, 1.0))
        if scale != expected:
            raise ValueError(f"cache scale must follow from cache rate={rate!r} ({expected!r}), "
                             f"got {scale!r}")
        return CacheState(out=a, shape=a.shape, dtype=a.dtype, rate=rate, seed=seed,
                          offset=offset, thr=thr, scale=expected)

    def _restored(self, st):
        self.out, self.scale, self.rate = st.out, st.scale, st.rate
        self.seed, self.offset = st.seed, st.offset


class VariantCache(Cache):
    """What a variant's backward needs from its forward call; made only by cydrop.

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
        the full mask for ``'exact_k'``; None for the kinds that regenerate it from the seed.
    x, W_eff : ndarray or None
        DropConnect only: the forward input and the masked, scaled weights.
    """

    __slots__ = ("kind", "rate", "seed", "offset", "shape", "dtype", "keep", "x", "W_eff")
    _FIELDS = __slots__

    def __init__(self, kind, rate, seed, offset, shape, dtype, keep=None, *, x=None, W_eff=None):
        self.kind, self.rate, self.seed, self.offset = kind, rate, seed, offset
        self.shape, self.dtype, self.keep, self.x, self.W_eff = shape, dtype, keep, x, W_eff

    @property
    def mask_shape(self):
        st = self._state()
        if st.keep is not None:
            return tuple(st.keep.shape)
        return tuple(st.W_eff.shape) if st.kind == "dropconnect" else st.shape

    @property
    def nbytes(self):
        return sum(a.nbytes for a in (self.keep, self.x, self.W_eff) if a is not None)

    def keep_mask(self):
        st = self._state()
        if st.keep is not None:
            return st.keep.copy()
        if st.kind == "dropconnect":
            return _regenerate(st.W_eff.shape, st.seed, st.offset, st.thr)
        if st.kind == "alpha":
            return _regenerate(st.shape, st.seed, st.offset, st.thr)
        return np.ones(st.shape, dtype=np.uint8)        # identity, gaussian

    def __repr__(self):
        return (f"VariantCache(kind={self.kind!r}, rate={self.rate!r}, seed={self.seed!r}, "
                f"offset={self.offset!r}, shape={self.shape!r}, dtype={self.dtype})")

    def _state(self):
        kind = self.kind
        if not isinstance(kind, str) or kind not in VARIANT_KINDS:
            raise ValueError(f"cache kind must be one of {VARIANT_KINDS}, got {_short(kind)}")
        shape, size = _validation.check_dims(self.shape, "cache shape")
        dtype = _validation.check_native_float_dtype(self.dtype, "cache dtype",
                                                     half=kind in ("nd", "identity"))
        rate = _validation.check_probability(self.rate, "cache rate")
        st = CacheState(kind=kind, rate=rate, shape=shape, size=size, dtype=dtype)
        if kind == "dropconnect":
            return self._dropconnect_state(st)
        for name in ("x", "W_eff"):
            if getattr(self, name) is not None:
                raise ValueError(f"a {kind!r} cache stores no {name} (cache {name} must be "
                                 f"None), got {type(getattr(self, name)).__name__}")
        keep = self.keep
        if kind in ("identity", "alpha", "gaussian") and keep is not None:
            raise ValueError(f"a {kind!r} cache stores no mask (cache keep must be None), got "
                             f"{type(keep).__name__}")
        if kind == "nd":
            if type(keep) is np.ndarray and (keep.ndim != len(shape) or any(
                    m not in (1, s) for m, s in zip(keep.shape, shape))):
                raise ValueError(f"cache keep must have one entry per axis of shape {shape}, "
                                 f"each 1 or that axis's length (the mask shape of dropout_nd), "
                                 f"got shape {keep.shape}")
            mshape = keep.shape if type(keep) is np.ndarray else shape
            st.keep = _validation.check_mask_array(keep, mshape, "cache keep")
            size = st.keep.size
        elif kind == "exact_k":
            self._exact_k_params(st)
            st.keep = _validation.check_mask_array(keep, shape, "cache keep")
        elif kind == "gaussian" and rate == 1.0:
            raise ValueError("cache rate must satisfy 0 < cache rate < 1 for Gaussian dropout, "
                             "got 1.0")
        per = {"exact_k": 2, "gaussian": 4}.get(kind, 1)
        st.seed, st.offset = check_randomness(f"a {kind!r} cache", rate, self.seed, self.offset,
                                              size, random=kind != "identity", per=per)
        if kind == "nd":
            st.thr, st.scale = _contract.threshold_and_scale(rate)
            st.cshape, st.mstride = _p.collapse_cached(shape, tuple(st.keep.shape))
        elif kind == "alpha":
            st.thr, st.a, st.b, st.c = _p.alpha_constants(rate)
        elif kind == "gaussian":
            st.sigma = _p.gaussian_sigma(rate)
        return st

    @staticmethod
    def _exact_k_params(st):
        if not st.shape:
            raise ValueError("an 'exact_k' cache needs a shape of at least 1 dimension, got ()")
        n = st.shape[-1]
        if n >= 2**32:
            raise ValueError(f"cache shape[-1] must be < 2**32 for exact-k dropout, got {n}")
        st.k = _p.exact_k_count(n, st.rate)
        if st.k == 0:
            raise ValueError(f"an 'exact_k' cache must drop at least one unit per row, but "
                             f"cache rate={st.rate!r} drops none of {n}")
        st.scale = _p.exact_k_scale(n, st.k)

    def _dropconnect_state(self, st):
        x, W_eff = self.x, self.W_eff
        for name, a in (("x", x), ("W_eff", W_eff)):
            if type(a) is not np.ndarray:
                raise TypeError(f"cache {name} must be a numpy.ndarray, got {type(a).__name__}")
            if a.dtype != st.dtype:
                raise TypeError(f"cache {name} must have the cache dtype {st.dtype}, got "
                                f"{a.dtype}")
        if x.shape != st.shape or x.ndim < 1:
            raise ValueError(f"cache x must have the cache shape {st.shape} (at least 1-D), got "
                             f"{x.shape}")
        features = math.prod(st.shape[1:])
        if W_eff.ndim != 2 or W_eff.shape[0] != features:
            raise ValueError(f"cache W_eff must be 2-D with {features} rows (x's features per "
                             f"example), got shape {W_eff.shape}")
        if self.keep is not None:
            raise ValueError(f"a 'dropconnect' cache stores no mask (cache keep must be None), "
                             f"got {type(self.keep).__name__}")
        st.x, st.W_eff = x, W_eff
        random = self.seed is not None      # training=False or rate 0: the plain affine map
        what = f"a 'dropconnect' cache {'with' if random else 'without'} a seed"
        st.seed, st.offset = check_randomness(what, st.rate, self.seed, self.offset, W_eff.size,
                                              random=random)
        if random:
            st.thr, st.scale = _contract.threshold_and_scale(st.rate)
        return st

    def _restored(self, st):
        # the stored mask is copied into a fresh C-contiguous, read-only array
        self.keep = None if st.keep is None else _read_only_copy(st.keep)
        self.kind, self.rate, self.seed, self.offset = st.kind, st.rate, st.seed, st.offset
        self.shape, self.dtype = st.shape, st.dtype


# Restorers of the pickles cydrop 0.1 wrote (their module paths are kept as aliases).

def restore_fused_v01(out, scale, rate, seed, offset):
    """Unpickle a FusedCache of cydrop 0.1, validated as :func:`restore` validates."""
    return restore(FusedCache, (out, scale, rate, seed, offset))


def restore_variant_v01(kind, rate, seed, offset, shape, dtype, keep, aux):
    """Unpickle a VariantCache of cydrop 0.1 (DropConnect's arrays came in a dict)."""
    if not isinstance(aux, dict):
        raise TypeError(f"cache _aux must be a dict, got {type(aux).__name__}")
    return restore(VariantCache, (kind, rate, seed, offset, shape, dtype, keep, aux.get("x"),
                                  aux.get("W_eff")))
