"""Softmax and dropout of attention probabilities in one pass.

``softmax_dropout(scores, rate, axis=-1, training=...)`` is ``cydrop.dropout(softmax(scores))``
with cydrop's own numerically stable softmax (the row maximum subtracted first; cydrop's
exponential, see ``src/cydrop_modern_impl.h``), computed by one kernel that reads the scores
once and writes the dropped probabilities and the softmax.

What the cache keeps
--------------------
The softmax ``P`` (and the seed). With ``y = D * P * s`` (``D`` the 0/1 mask, ``s`` the scale)
the gradient is ``dz = dy * y - P * sum(dy * y)`` along the axis: its second term needs ``P`` at
the dropped positions too, where ``y`` is 0, so the dropped output alone cannot give it back.
``P`` is kept (one array of the scores' size), the mask is regenerated from the seed.
"""

import numpy as np

from cydrop import _cache, _common, _contract, _modern, _validation
from cydrop import _variants as _v
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed

__all__ = ["SoftmaxDropoutCache", "softmax_dropout", "softmax_dropout_backward"]


class SoftmaxDropoutCache(_cache.Cache):
    """What :func:`softmax_dropout_backward` needs, the softmax and the seed; made only by cydrop.

    Attributes
    ----------
    probs : ndarray
        The softmax, with ``axis`` moved last (C order): kept by reference.
    axis : int
        The softmax axis of the forward input (non-negative).
    rate : float
    seed, offset : int or None
        The mask is that of the scores with ``axis`` moved last, from element ``offset``.
    shape, dtype, mask_shape, nbytes
        The forward input's shape and dtype; ``nbytes`` those of ``probs``.
    """

    __slots__ = ("probs", "axis", "rate", "seed", "offset")
    _FIELDS = __slots__

    def __init__(self, probs, axis, rate, seed, offset):
        self.probs, self.axis, self.rate, self.seed, self.offset = probs, axis, rate, seed, offset

    @property
    def shape(self):
        """The forward input's shape."""
        p = self.probs
        if not isinstance(p, np.ndarray) or not isinstance(self.axis, int) or p.ndim < 1:
            return None
        return _moved_back(p.shape, self.axis)

    dtype = property(lambda self: getattr(self.probs, "dtype", None), doc="the input's dtype")
    nbytes = property(lambda self: getattr(self.probs, "nbytes", 0), doc="bytes of ``probs``")

    def keep_mask(self):
        """The forward call's keep mask: uint8 0/1 of the input's shape, 1 = let through.

        Returns
        -------
        keep : ndarray of uint8
        """
        st = self._state()
        if st.seed is None:
            return np.ones(st.shape, dtype=np.uint8)
        keep = np.empty(st.out.size, dtype=np.uint8)
        _v.keep_mask(keep.size, st.seed, st.offset, st.thr, keep, effective_n_threads(None))
        return np.ascontiguousarray(np.moveaxis(keep.reshape(st.out.shape), -1, st.k))

    def __repr__(self):
        return (f"SoftmaxDropoutCache(rate={self.rate!r}, seed={self.seed!r}, "
                f"offset={self.offset!r}, axis={self.axis!r}, shape={self.shape}, "
                f"dtype={self.dtype})")

    def _state(self):
        p = self.probs
        if type(p) is not np.ndarray:
            raise TypeError(f"cache probs must be a numpy.ndarray (the softmax), got "
                            f"{type(p).__name__}")
        _validation.check_native_float_dtype(p.dtype, "cache probs' dtype")
        if p.ndim < 1 or not p.flags.c_contiguous:
            raise ValueError(f"cache probs must be a C-contiguous array of 1 or more axes, got "
                             f"shape {p.shape}")
        axis = _validation.check_uint64(self.axis, "cache axis")
        if axis >= p.ndim:
            raise ValueError(f"cache axis must be < probs.ndim={p.ndim}, got {axis}")
        rate = _validation.check_probability(self.rate, "cache rate")
        random = self.seed is not None
        seed, offset = _cache.check_randomness(
            f"a SoftmaxDropoutCache {'with' if random else 'without'} a seed", rate, self.seed,
            self.offset, p.size, random=random)
        thr, scale = (_contract.threshold_and_scale(rate) if random
                      else (_contract.THRESHOLD_ONE, 1.0))
        return _cache.CacheState(out=_validation.aligned_contiguous(p),
                                 shape=_moved_back(p.shape, axis), dtype=p.dtype, rate=rate,
                                 seed=seed, offset=offset, thr=thr, scale=scale, k=axis)


def _moved_back(shape, axis):
    shape = tuple(shape)
    return shape[:axis] + shape[-1:] + shape[axis:-1]


def softmax_dropout(scores, rate, *, training, axis=-1, seed=None, offset=0, out=None,
                    n_threads=None):
    """``dropout(softmax(scores, axis), rate)`` in one pass: attention-probability dropout.

    Parameters
    ----------
    scores : array_like of float32 or float64, at least 1-D
        Attention logits. ``-inf`` entries (masked positions) get probability 0; a row of only
        ``-inf`` gives NaN, as PyTorch's softmax does.
    rate : float
        Probability of dropping a probability, ``0 <= rate <= 1``.
    training : bool
        Keyword-only and REQUIRED, with no default: dropout left on in evaluation is a bug
        users report. ``False`` (or ``rate == 0``) returns the softmax.
    axis : int, default=-1
        The softmax axis. The kernel works on the last axis; another axis is moved last (one
        copy) and back, and the mask is then that of the moved array.
    seed : int or None, default=None
    offset : int, default=0
        Global index of the first element (in the layout with ``axis`` last).
    out : ndarray or None, default=None
        C-contiguous output of the scores' shape and dtype, not overlapping them.
    n_threads : int or None, default=None

    Returns
    -------
    out : ndarray, same shape and dtype as ``scores``
        ``where(keep, softmax * scale, +0.0)``, ``keep`` and ``scale`` as in
        :func:`cydrop.dropout`.
    cache : SoftmaxDropoutCache
        Holds the softmax (see the module docstring): for :func:`softmax_dropout_backward`.

    Raises
    ------
    TypeError, ValueError
        Bad ``scores``, ``rate``, ``training`` (also when it is missing), ``axis``, ``seed``,
        ``offset``, ``out`` or ``n_threads``.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> p, _ = cydrop.softmax_dropout(np.zeros((2, 4)), 0.5, training=False)
    >>> p.tolist()
    [[0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]]
    """
    z, rate, training, seed, threads = _common.op_args(scores, rate, training, seed, n_threads)
    if z.ndim == 0:
        raise ValueError("scores must have at least 1 axis, got a 0-d array")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {_validation._short(axis)} of type "
                        f"{type(axis).__name__}")
    if not -z.ndim <= axis < z.ndim:
        raise ValueError(f"axis must satisfy {-z.ndim} <= axis < {z.ndim} for scores of shape "
                         f"{z.shape}, got {axis}")
    axis = int(axis) % z.ndim
    offset = _validation.check_offset(offset, z.size)
    last = axis == z.ndim - 1
    zm = _validation.aligned_contiguous(z) if last else np.ascontiguousarray(
        np.moveaxis(z, axis, -1))
    if last:
        dst, writeback = _common.destination(out, z, "out", [("scores", z)])
        if dst is z or _validation.same_buffer(dst, z):
            raise ValueError("out must not be scores: the softmax reads every row element "
                             "before it writes one")
    else:
        if out is not None:
            _validation.check_out(out, z, "out")
            _validation.check_no_overlap(out, [("scores", z)], "out")
        dst, writeback = np.empty(zm.shape, dtype=zm.dtype), None
    L = zm.shape[-1]
    if training and rate != 0.0:
        seed = resolve_seed(seed)
        thr, scale = _contract.threshold_and_scale(rate)
        probs = np.empty(zm.shape, dtype=zm.dtype)
    else:
        seed, offset, rate = None, None, 0.0
        thr, scale, probs = _contract.THRESHOLD_ONE, 1.0, None
    if zm.size:
        _modern.softmax_dropout(_common.flat(zm), _common.flat(dst),
                                None if probs is None else _common.flat(probs), L, seed or 0,
                                offset or 0, thr, scale, threads)
    if last:
        res = _common.finish(dst, writeback)
        if probs is None:
            probs = res if type(res) is np.ndarray and res.flags.c_contiguous else dst
        result = res if out is None else out
    else:
        if probs is None:
            probs = dst
        moved = np.moveaxis(dst, -1, axis)
        if out is None:
            result = np.ascontiguousarray(moved)
        else:
            np.copyto(out, moved)
            result = out
    return result, SoftmaxDropoutCache(probs, axis, rate, seed, offset)


def softmax_dropout_backward(dout, cache, *, n_threads=None):
    """Gradient of :func:`softmax_dropout` with respect to the scores.

    The mask is regenerated from the cache's seed; ``dz = P * (g - sum(g * P, axis))`` with
    ``g = dropout(dout)`` (the forward's mask and scale) and ``P`` the cached softmax. One
    kernel pass per row, no stored mask: ``gp = g * P`` in the scores' dtype, its sum in float64
    in the forward's eight lanes, and ``dz = dtype(gp - P * sum)`` computed in float64, so the
    bits are fixed on every ISA and thread count (:mod:`cydrop.testing.reference_modern`
    reproduces them).

    Parameters
    ----------
    dout : ndarray
        Upstream gradient of the forward output's shape and dtype.
    cache : SoftmaxDropoutCache
    n_threads : int or None, default=None

    Returns
    -------
    dscores : ndarray, same shape and dtype as the scores

    Raises
    ------
    TypeError, ValueError
        A cache of another type or in a state no forward call makes; a bad ``dout``.
    """
    st = _cache.check_cache(cache, (SoftmaxDropoutCache,), "cydrop.softmax_dropout")
    dout = _validation.check_dout(_validation.as_float_array(dout, "dout"), st.shape, st.dtype,
                                  of="forward output")
    p, axis = st.out, st.k
    g = np.ascontiguousarray(np.moveaxis(dout, axis, -1)) if axis != p.ndim - 1 else \
        _validation.aligned_contiguous(dout)
    if st.seed is not None:
        seed, offset, thr, scale = st.seed, st.offset, st.thr, st.scale
    else:
        seed, offset, thr, scale = 0, 0, _contract.THRESHOLD_ONE, 1.0
    dz = np.empty(g.shape, dtype=g.dtype)
    if g.size:
        _modern.softmax_dropout_backward(_common.flat(g), _common.flat(p), _common.flat(dz),
                                         p.shape[-1], seed, offset, thr, scale,
                                         effective_n_threads(n_threads))
    return dz if axis == p.ndim - 1 else np.ascontiguousarray(np.moveaxis(dz, -1, axis))
