"""Dropout on the residual path: ``residual + dropout(x + bias)`` in one pass, and stochastic
depth (``drop_path``), one keep decision per sample.

A pre-norm transformer block ends each sub-layer with ``h + dropout(f(h) + b)``. Unfused that is
three passes over the activation (bias add, mask, residual add) and a stored mask; here it is one
kernel pass that reads ``x`` and ``residual`` and writes the output, and the backward regenerates
the mask from the seed. Keep decisions and scale are those of :func:`cydrop.dropout`:
``dropout_add(x, 0, rate, seed=s)[0]`` equals ``cydrop.dropout(x, rate, seed=s)[0]`` bit for bit.
"""

import math

import numpy as np

from cydrop import _cache, _common, _contract, _modern, _validation
from cydrop import _variants as _v
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed

__all__ = ["ResidualCache", "dropout_add", "dropout_add_backward", "drop_path",
           "drop_path_backward"]

_KINDS = ("elementwise", "per_sample", "identity")


class ResidualCache(_cache.Cache):
    """What :func:`dropout_add_backward` / :func:`drop_path_backward` need: scalars only (the
    mask is regenerated from ``seed`` and ``offset``); made only by cydrop.

    Attributes
    ----------
    kind : {'elementwise', 'per_sample', 'identity'}
        One decision per element, one per sample (row of axis 0), or nothing dropped.
    rate : float
    seed, offset : int or None
        ``offset`` counts elements (``'elementwise'``) or samples (``'per_sample'``).
    shape, dtype
        The forward input's.
    scale_by_keep : bool
        Whether kept values were scaled by ``1 / keep``.
    has_bias : bool
        Whether the forward added a bias (the backward then returns ``dbias``).
    mask_shape, nbytes
        ``shape`` (``(shape[0],)`` per sample) and 0: the cache keeps no array.
    """

    __slots__ = ("kind", "rate", "seed", "offset", "shape", "dtype", "scale_by_keep",
                 "has_bias")
    _FIELDS = __slots__

    def __init__(self, kind, rate, seed, offset, shape, dtype, scale_by_keep=True,
                 has_bias=False):
        self.kind, self.rate, self.seed, self.offset = kind, rate, seed, offset
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.scale_by_keep, self.has_bias = scale_by_keep, has_bias

    nbytes = property(lambda self: 0, doc="0: the cache keeps no array")

    @property
    def mask_shape(self):
        """Shape of :meth:`keep_mask`'s array: ``shape``, or ``(shape[0],)`` per sample."""
        return (self.shape[0],) if self.kind == "per_sample" else tuple(self.shape)

    def keep_mask(self):
        """The forward call's keep mask: uint8 0/1 of :attr:`mask_shape`, 1 = let through.

        Returns
        -------
        keep : ndarray of uint8
        """
        st = self._state()
        if st.kind == "identity":
            return np.ones(self.mask_shape, dtype=np.uint8)
        size = st.shape[0] if st.kind == "per_sample" else math.prod(st.shape)
        keep = np.empty(size, dtype=np.uint8)
        _v.keep_mask(size, st.seed, st.offset, st.thr, keep, effective_n_threads(None))
        return keep.reshape(self.mask_shape)

    def __repr__(self):
        return (f"ResidualCache(kind={self.kind!r}, rate={self.rate!r}, seed={self.seed!r}, "
                f"offset={self.offset!r}, shape={self.shape}, dtype={self.dtype})")

    def _state(self):
        if not isinstance(self.kind, str) or self.kind not in _KINDS:
            raise ValueError(f"cache kind must be one of {_KINDS}, got "
                             f"{_validation._short(self.kind)}")
        shape = _validation.check_shape(self.shape, "cache shape")
        dtype = _validation.check_native_float_dtype(self.dtype, "cache dtype")
        rate = _validation.check_probability(self.rate, "cache rate")
        scale_by_keep = _validation.check_bool(self.scale_by_keep, "cache scale_by_keep")
        has_bias = _validation.check_bool(self.has_bias, "cache has_bias")
        if self.kind == "per_sample" and len(shape) < 1:
            raise ValueError(f"a per-sample cache needs a shape of 1 or more axes, got {shape}")
        random = self.kind != "identity"
        size = shape[0] if self.kind == "per_sample" else math.prod(shape)
        seed, offset = _cache.check_randomness(f"a ResidualCache of kind {self.kind!r}", rate,
                                               self.seed, self.offset, size, random=random)
        thr, scale = (_contract.threshold_and_scale(rate) if random
                      else (_contract.THRESHOLD_ONE, 1.0))
        if not scale_by_keep:
            scale = 1.0
        return _cache.CacheState(kind=self.kind, rate=rate, seed=seed, offset=offset,
                                 shape=shape, dtype=np.dtype(dtype), thr=thr, scale=scale,
                                 k=has_bias)


def _residual(residual, x):
    """The residual as an aligned C-contiguous array of x's shape and dtype, or None for a
    scalar zero (nothing to add: the result is then the dropout alone, bit for bit)."""
    if np.ndim(residual) == 0:
        value = _validation.check_real(residual, "residual")
        if value == 0.0:
            return None
        return np.full(x.shape, value, dtype=x.dtype)
    r = _validation.as_float_array(residual, "residual")
    if r.dtype != x.dtype:
        raise TypeError(f"residual must have x's dtype {x.dtype}, got {r.dtype}")
    if r.shape != x.shape:
        try:
            r = np.broadcast_to(r, x.shape)
        except ValueError:
            raise ValueError(f"residual must broadcast to x's shape {x.shape}, got shape "
                             f"{r.shape}") from None
        return np.ascontiguousarray(r)
    return _validation.aligned_contiguous(r)


def _bias(bias, x):
    if bias is None:
        return None
    b = _validation.as_float_array(bias, "bias")
    if x.ndim == 0 or b.shape != (x.shape[-1],):
        raise ValueError(f"bias must have shape ({x.shape[-1] if x.ndim else '?'},), x's last "
                         f"axis, got shape {b.shape}")
    if b.dtype != x.dtype:
        raise TypeError(f"bias must have x's dtype {x.dtype}, got {b.dtype}")
    return _validation.aligned_contiguous(b)


def _row_keep(n_rows, seed, offset, thr, threads):
    keep = np.empty(n_rows, dtype=np.uint8)
    _v.keep_mask(n_rows, seed, offset, thr, keep, threads)
    return keep


def _run(x, residual, bias, rate, training, seed, offset, out, inplace, per_sample,
         scale_by_keep, n_threads):
    """The one path of dropout_add and drop_path: validate, seed, allocate, kernel, cache."""
    x, rate, training, seed, threads = _common.op_args(x, rate, training, seed, n_threads)
    given = x
    inplace = _validation.check_bool(inplace, "inplace")
    per_sample = _validation.check_bool(per_sample, "per_sample")
    if per_sample and x.ndim == 0:
        raise ValueError("per_sample=True needs x with a sample axis (ndim >= 1), got a 0-d x")
    res = _residual(residual, x)
    b = _bias(bias, x)
    size = x.shape[0] if per_sample else x.size
    offset = _validation.check_offset(offset, size)
    reads = [("bias", b)]
    out_is_res = (out is not None and res is not None and isinstance(out, np.ndarray)
                  and isinstance(residual, np.ndarray) and out is residual)
    if res is not None and not out_is_res:
        reads.append(("residual", res))
    if inplace:
        _common.check_inplace_target(given, x, "x", out)
    if out_is_res and not inplace:
        _validation.check_out(out, x, "out")
        src, dst, writeback = _validation.aligned_contiguous(x), res, None
        if res is not residual:
            dst, writeback = np.empty(x.shape, x.dtype), residual
    else:
        src, dst, writeback = _common.prepare_output(x, out, inplace, "x", "out", reads)
    random = training and rate != 0.0
    if random:
        seed = resolve_seed(seed)
        thr, scale = _contract.threshold_and_scale(rate)
        if not scale_by_keep:
            scale = 1.0
        kind = "per_sample" if per_sample else "elementwise"
    else:
        thr, scale, seed, offset, kind = _contract.THRESHOLD_ONE, 1.0, None, None, "identity"
    cache = ResidualCache(kind, rate if random else 0.0, seed, offset, x.shape, x.dtype,
                          bool(scale_by_keep), b is not None)
    if kind == "identity" and res is None and b is None:     # as cydrop.dropout: x itself
        return _common.identity_result(given if inplace else x, out, inplace), cache
    rowkeep = rowlen = None
    if kind == "per_sample":
        rowkeep = _row_keep(x.shape[0], seed, offset, thr, threads)
        rowlen = x.size // x.shape[0] if x.shape[0] else 1
    _modern.dropout_add(_common.flat(src), None if res is None else _common.flat(res),
                        b, rowkeep, rowlen or 1, _common.flat(dst), seed or 0,
                        offset if kind == "elementwise" else 0, thr, scale, threads)
    result = _common.finish(dst, writeback)
    if out is not None and not inplace:
        result = out
    elif inplace:
        result = given
    return result, cache


def dropout_add(x, residual, rate, *, bias=None, training=True, seed=None, offset=0, out=None,
                inplace=False, per_sample=False, n_threads=None):
    """``residual + dropout(x + bias, rate)`` in one pass.

    Parameters
    ----------
    x : array_like of float32 or float64, any shape
        The branch output (e.g. an attention or MLP sub-layer before its last bias).
    residual : array_like or scalar
        Added after the dropout: an array of ``x``'s dtype that broadcasts to ``x``'s shape
        (an array of another shape is broadcast into a new array first), or a real scalar. The
        scalar ``0`` adds nothing, so the result is exactly :func:`cydrop.dropout`'s.
    rate : float
        Probability of DROPPING an element, ``0 <= rate <= 1``, as in :func:`cydrop.dropout`.
    bias : array_like or None, default=None
        Shape ``(x.shape[-1],)``, ``x``'s dtype: added to ``x`` along the last axis before the
        dropout.
    training : bool, default=True
        ``False`` (or ``rate == 0``) computes ``residual + (x + bias)``.
    seed : int or None, default=None
        ``0 <= seed < 2**64``; ``None`` draws a fresh seed (kept in the cache).
    offset : int, default=0
        Global index of ``x``'s first element (of its first sample with ``per_sample=True``).
    out : ndarray or None, default=None
        C-contiguous output of ``x``'s shape and dtype; may be ``residual`` itself (the residual
        stream updated in place), must not otherwise overlap ``x``, ``residual`` or ``bias``.
    inplace : bool, default=False
        Write the result into ``x``.
    per_sample : bool, default=False
        One keep decision per sample (index along axis 0), shared by its whole row: stochastic
        depth fused into the residual add (see :func:`drop_path`). Sample ``r`` is kept when
        draw ``offset + r`` is.
    n_threads : int or None, default=None
        Threads for the kernel; never changes the result.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : ResidualCache
        Scalars only: for :func:`dropout_add_backward`.

    Raises
    ------
    TypeError, ValueError
        Bad ``x``, ``residual``, ``bias``, ``rate``, ``seed``, ``offset``, ``out``,
        ``inplace`` or ``n_threads``; each message names the argument, the rule and the value.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.arange(8, dtype=np.float32)
    >>> y, _ = cydrop.dropout_add(x, 0, 0.5, seed=3)
    >>> bool(np.array_equal(y, cydrop.dropout(x, 0.5, seed=3)[0]))
    True
    """
    return _run(x, residual, bias, rate, training, seed, offset, out, inplace, per_sample, True,
                n_threads)


def dropout_add_backward(dout, cache, *, out=None, n_threads=None):
    """Gradients of :func:`dropout_add` (and of :func:`drop_path`), from the seed.

    Parameters
    ----------
    dout : ndarray
        Upstream gradient of the forward output's shape and dtype.
    cache : ResidualCache
    out : ndarray or None, default=None
        Where to put ``dx``; may be ``dout`` itself only if the caller no longer needs
        ``dresidual`` (which is ``dout``).
    n_threads : int or None, default=None

    Returns
    -------
    dx : ndarray
        ``dout * scale`` where the forward kept, ``+0.0`` elsewhere.
    dresidual : ndarray
        ``dout`` itself (the residual passes straight through).
    dbias : ndarray or None
        ``dx`` summed over all leading axes, when the forward had a bias.

    Raises
    ------
    TypeError, ValueError
        A cache of another type or in a state no forward call makes; a bad ``dout`` or ``out``.
    """
    st = _cache.check_cache(cache, (ResidualCache,), "cydrop.dropout_add or cydrop.drop_path")
    dout = _validation.check_dout(_validation.as_float_array(dout, "dout"), st.shape, st.dtype,
                                  of="forward output")
    threads = effective_n_threads(n_threads)
    if out is not None and _validation.same_buffer(out, dout):
        src, dst, writeback = _common.prepare_output(dout, None, True, "dout", "out")
    else:
        src, dst, writeback = _common.prepare_output(dout, out, False, "dout", "out")
    rowkeep, rowlen = None, 1
    if st.kind == "per_sample":
        rowkeep = _row_keep(st.shape[0], st.seed, st.offset, st.thr, threads)
        rowlen = max(1, math.prod(st.shape) // st.shape[0]) if st.shape[0] else 1
    _modern.dropout_add(_common.flat(src), None, None, rowkeep, rowlen, _common.flat(dst),
                        st.seed or 0, st.offset if st.kind == "elementwise" else 0, st.thr,
                        st.scale, threads)
    dx = _common.finish(dst, writeback)
    dx = out if out is not None else dx
    dbias = None
    if st.k:
        dbias = dx.reshape(-1, st.shape[-1]).sum(axis=0) if dx.size else np.zeros(
            st.shape[-1], dtype=st.dtype)
    return dx, dout, dbias


def drop_path(x, rate, *, training, seed=None, offset=0, scale_by_keep=True, out=None,
              inplace=False, n_threads=None):
    """Stochastic depth: drop whole samples of a residual branch.

    Each sample (index along axis 0) is kept with probability ``1 - rate`` and then scaled by
    ``1 / keep`` (with ``scale_by_keep``), as timm's ``drop_path`` and torchvision's
    ``stochastic_depth(mode='row')``; dropped samples are ``+0.0``. Sample ``r`` is kept when
    the draw ``offset + r`` of ``seed`` is, the same decision :func:`dropout_add` makes with
    ``per_sample=True``, which fuses this into the residual add.

    Parameters
    ----------
    x : array_like of float32 or float64, shape (N, ...)
    rate : float
        Probability of dropping a sample, ``0 <= rate <= 1``.
    training : bool
        Keyword-only and required: timm's functional ``drop_path`` defaults to ``False`` and
        torchvision's ``stochastic_depth`` to ``True``, so cydrop asks.
    seed : int or None, default=None
    offset : int, default=0
        Global index of the first sample.
    scale_by_keep : bool, default=True
        Scale kept samples by ``1 / keep`` (the realised keep probability, as in
        :func:`cydrop.dropout`); ``False`` leaves them as they are.
    out : ndarray or None, default=None
    inplace : bool, default=False
    n_threads : int or None, default=None

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : ResidualCache
        For :func:`drop_path_backward`.

    Raises
    ------
    TypeError, ValueError
        Bad arguments; a 0-d ``x``.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> y, _ = cydrop.drop_path(np.ones((4, 3)), 0.5, training=True, seed=0)
    >>> sorted(set(y[:, 0].tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    """
    scale_by_keep = _validation.check_bool(scale_by_keep, "scale_by_keep")
    return _run(x, 0, None, rate, training, seed, offset, out, inplace, True, scale_by_keep,
                n_threads)


def drop_path_backward(dout, cache, *, out=None, n_threads=None):
    """Gradient of :func:`drop_path` with respect to ``x``, from the seed.

    Parameters
    ----------
    dout : ndarray
    cache : ResidualCache
    out : ndarray or None, default=None
    n_threads : int or None, default=None

    Returns
    -------
    dx : ndarray
        ``dout`` of kept samples times the scale, ``+0.0`` for dropped ones.
    """
    return dropout_add_backward(dout, cache, out=out, n_threads=n_threads)[0]
