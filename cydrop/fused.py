"""Fused layer kernels: bias-add + ReLU + dropout in one pass over an activation, and back.

A dense layer followed by ReLU and dropout normally walks its (batch, units) activation three
times forward (add the bias, clamp, mask) and three times backward. These kernels do each
direction in one pass. The forward output is bit for bit
``cydrop.dropout(np.maximum(z + b, 0), rate, seed=seed, offset=offset)[0]``; the backward needs
no mask at all, because the output is positive exactly where a unit was both active and kept.
"""

import numpy as np

from cydrop import _contract, _kernels, _validation
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed

__all__ = ["FusedCache", "bias_relu_dropout", "bias_relu_dropout_backward"]


class FusedCache:
    """What :func:`bias_relu_dropout_backward` needs: the forward output and its scale.

    A plain Python object: it can be pickled (the state is validated again when it is loaded),
    and the backward validates its whole state before the kernel sees it, so a cache rebuilt or
    changed by hand is a ``TypeError``/``ValueError`` naming the field, never a crash or a
    silently wrong gradient.

    Attributes
    ----------
    out : ndarray, shape (rows, units)
        The forward output (kept by reference, not copied: do not modify it before backward).
    scale : float
        The dropout scale (1.0 when nothing was dropped).
    rate : float
    seed, offset : int or None
    """

    __slots__ = ("out", "scale", "rate", "seed", "offset")

    def __init__(self, out, scale, rate, seed, offset):
        self.out, self.scale, self.rate, self.seed, self.offset = out, scale, rate, seed, offset

    def __repr__(self):
        shape = getattr(self.out, "shape", None)
        dtype = getattr(self.out, "dtype", None)
        return (f"FusedCache(rate={self.rate!r}, seed={self.seed!r}, offset={self.offset!r}, "
                f"shape={shape}, dtype={dtype})")

    def __reduce__(self):
        # Rebuilt through _restore_fused_cache, which validates the state.
        return (_restore_fused_cache, (self.out, self.scale, self.rate, self.seed, self.offset))


def _restore_fused_cache(out, scale, rate, seed, offset):
    """Unpickle a :class:`FusedCache`, refusing any state a forward call could not have made."""
    cache = FusedCache(out, scale, rate, seed, offset)
    a, scale, rate, seed, offset = _cache_state(cache)
    return FusedCache(a, scale, rate, seed, offset)


def _cache_state(cache):
    """Validate a :class:`FusedCache` as strictly as a forward call validates its arguments.

    Returns ``(out, scale, rate, seed, offset)`` with ``out`` an aligned C-contiguous float
    array (a copy if the stored one is not) and the scalars normalised. Raises
    TypeError/ValueError naming the field.
    """
    if not isinstance(cache, FusedCache):
        raise TypeError(f"cache must be the FusedCache returned by bias_relu_dropout, got "
                        f"{type(cache).__name__}")
    a = cache.out
    if type(a) is not np.ndarray:
        raise TypeError(f"cache out must be a numpy.ndarray (the forward output), got "
                        f"{type(a).__name__}")
    _validation.check_native_float_dtype(a.dtype, "cache out's dtype")
    if a.ndim != 2:
        raise ValueError(f"cache out must be 2-D (rows, units), got shape {a.shape}")
    a = _validation.aligned_contiguous(a)
    rate = _validation.check_probability(cache.rate, "cache rate")
    scale = _validation.check_real(cache.scale, "cache scale", low=0.0)
    if cache.seed is None:
        if rate != 0.0 or cache.offset is not None or scale != 1.0:
            raise ValueError(f"a FusedCache without a seed (nothing dropped) must have rate=0, "
                             f"offset=None and scale=1.0, got rate={rate!r}, "
                             f"offset={_validation._short(cache.offset)}, scale={scale!r}")
        return a, 1.0, 0.0, None, None
    if rate == 0.0:
        raise ValueError("a FusedCache with a seed needs 0 < rate <= 1 (a forward call at rate 0 "
                         "keeps no seed), got cache rate=0.0")
    seed = _validation.check_uint64(cache.seed, "cache seed")
    offset = _validation.check_offset(cache.offset, a.size, "cache offset")
    _, expected = _contract.threshold_and_scale(rate)
    if scale != expected:
        raise ValueError(f"cache scale must follow from cache rate={rate!r} ({expected!r}), got "
                         f"{scale!r}")
    return a, scale, rate, seed, offset


def _matrix(a, name):
    a = _validation.as_float_array(a, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, units), got shape {a.shape}")
    return a


def _destination(out, like, name, reads):
    """Where the kernel writes: ``(dst, writeback)``, both plain ndarrays (``writeback`` None or
    a view of ``out`` to copy ``dst`` into afterwards). ``out`` (if given) is validated like the
    core's ``out=``: it may be ``like`` itself but must not otherwise overlap it, nor any of
    ``reads``, the other buffers the call reads ((name, array) pairs). An unaligned ``out`` gets
    an aligned temporary; an ndarray subclass is written through its base-class view."""
    if out is None:
        return np.empty(like.shape, dtype=like.dtype), None
    _validation.check_out(out, like, name)
    _validation.check_no_overlap(out, reads, name)
    plain = out if type(out) is np.ndarray else out.view(np.ndarray)
    if out.flags.aligned:
        return plain, None
    return np.empty(like.shape, dtype=like.dtype), plain


def bias_relu_dropout(z, b, rate=0.5, *, training=True, seed=None, offset=0, out=None,
                      n_threads=None):
    """``dropout(relu(z + b), rate)`` in one pass.

    Parameters
    ----------
    z : ndarray of float32 or float64, shape (rows, units)
        Pre-activation, e.g. ``x @ W``. An ndarray subclass (``np.matrix``) is read as a plain
        ndarray.
    b : ndarray, shape (units,)
        Bias, same dtype as ``z``.
    rate : float, default=0.5
        Drop probability, ``0 <= rate <= 1``.
    training : bool, default=True
        ``False`` (or ``rate == 0``) computes ``relu(z + b)`` only.
    seed : int or None, default=None
        Mask seed; ``None`` draws a fresh one (kept in the cache).
    offset : int, default=0
        Global index of element ``[0, 0]``.
    out : ndarray or None, default=None
        C-contiguous output of ``z``'s shape and dtype; may be ``z`` itself (in place), must not
        otherwise overlap ``z``, nor ``b``. Returned as is.
    n_threads : int or None, default=None
        Threads for the kernel (see :func:`cydrop.effective_n_threads`): any nonzero int,
        capped at the usable cores. Never changes the result.

    Returns
    -------
    out : ndarray, shape (rows, units)
    cache : FusedCache
        For :func:`bias_relu_dropout_backward`.

    Raises
    ------
    TypeError, ValueError
        Bad ``z``, ``b``, ``rate``, ``seed``, ``offset`` or ``n_threads``; an ``out`` of the
        wrong shape or dtype, or overlapping ``b`` (or ``z`` without being ``z``).

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> z = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    >>> b = np.zeros(3, dtype=np.float32)
    >>> a, cache = cydrop.fused.bias_relu_dropout(z, b, 0.5, seed=1)
    >>> ref, _ = cydrop.dropout(np.maximum(z + b, 0), 0.5, seed=1)
    >>> bool(np.array_equal(a, ref))
    True
    """
    z = _matrix(z, "z")
    b = _validation.as_float_array(b, "b")
    if b.shape != (z.shape[1],):
        raise ValueError(f"b must have shape ({z.shape[1]},) to match z's units, got {b.shape}")
    if b.dtype != z.dtype:
        raise TypeError(f"b must have z's dtype {z.dtype}, got {b.dtype}")
    rate = _validation.check_probability(rate, "rate")
    training = _validation.check_bool(training, "training")
    offset = _validation.check_offset(offset, z.size)
    threads = effective_n_threads(n_threads)
    seed = None if seed is None else _validation.check_uint64(seed, "seed")
    dst, writeback = _destination(out, z, "out", [("b", b)])
    zc = _validation.aligned_contiguous(z)
    bc = _validation.aligned_contiguous(b)
    if not training or rate == 0.0:
        thr, scale, seed, offset = 65536, 1.0, None, None
        _kernels.bias_relu_dropout(zc, bc, dst, 0, 0, thr, scale, threads)
    else:
        seed = resolve_seed(seed)
        thr, scale = _contract.threshold_and_scale(rate)
        _kernels.bias_relu_dropout(zc, bc, dst, seed, offset, thr, scale, threads)
    if writeback is not None:
        np.copyto(writeback, dst)
        dst = writeback
    # The cache holds the plain-ndarray view of the result (out= may be a subclass, returned as
    # given): what its validation, and the kernel, expect.
    return (dst if out is None else out), FusedCache(
        dst, scale, rate if seed is not None else 0.0, seed, offset)


def bias_relu_dropout_backward(dout, cache, *, out=None):
    """Gradients of :func:`bias_relu_dropout` with respect to ``z`` and ``b``.

    Parameters
    ----------
    dout : ndarray, shape (rows, units)
        Upstream gradient, same dtype as the forward output.
    cache : FusedCache
        Its state is validated first (see :class:`FusedCache`).
    out : ndarray or None, default=None
        Where to put ``dz``; may be ``dout`` itself, must not otherwise overlap ``dout``, nor the
        forward output ``cache.out``, which the kernel reads.

    Returns
    -------
    dz : ndarray, shape (rows, units)
        ``dout * scale`` where the forward output is positive, ``+0.0`` elsewhere.
    db : ndarray, shape (units,)
        ``dz`` summed over rows.

    Raises
    ------
    TypeError, ValueError
        A cache of another type or in a state no forward call makes, a ``dout`` of the wrong
        shape or dtype, a bad ``out``.
    """
    a, scale, _, _, _ = _cache_state(cache)
    dout = _matrix(dout, "dout")
    if dout.shape != a.shape:
        raise ValueError(f"dout must have the forward output's shape {a.shape}, got {dout.shape}")
    if dout.dtype != a.dtype:
        raise TypeError(f"dout must have the forward output's dtype {a.dtype}, got {dout.dtype}")
    dst, writeback = _destination(out, dout, "out",
                                  [("the cache's forward output (cache.out)", cache.out)])
    db = np.empty(a.shape[1], dtype=a.dtype)
    _kernels.bias_relu_dropout_backward(_validation.aligned_contiguous(dout), a, dst, db, scale)
    if writeback is not None:
        np.copyto(writeback, dst)
    return (dst if out is None else out), db
