"""Fused layer kernels: bias-add + ReLU + dropout in one pass over an activation, and back.

A dense layer followed by ReLU and dropout normally walks its (batch, units) activation three
times forward (add the bias, clamp, mask) and three times backward. These kernels do each
direction in one pass. The forward output is bit for bit
``cydrop.dropout(np.maximum(z + b, 0), rate, seed=seed, offset=offset)[0]``; the backward needs
no mask at all, because the output is positive exactly where a unit was both active and kept.
"""

import numpy as np

from cydrop import _cache, _common, _contract, _kernels, _validation
from cydrop._cache import FusedCache
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed

__all__ = ["FusedCache", "bias_relu_dropout", "bias_relu_dropout_backward"]


def _matrix(a, name, half=True):
    a = _validation.as_float_array(a, name, half=half)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, units), got shape {a.shape}")
    return a


_restore_fused_cache = _cache.restore_fused_v01     # pickles of cydrop 0.1


def bias_relu_dropout(z, b, rate=0.5, *, training=True, seed=None, offset=0, out=None,
                      n_threads=None):
    """``dropout(relu(z + b), rate)`` in one pass.

    Parameters
    ----------
    z : ndarray of float32, float64, float16 or bfloat16, shape (rows, units)
        Pre-activation, e.g. ``x @ W``. An ndarray subclass (``np.matrix``) is read as a plain
        ndarray. A 16-bit ``z`` is computed in float32: ``v = float32(z) + b``, then a kept
        element is ``dtype(max(v, 0) * scale)`` (rounded to nearest even; a NaN ``v`` gives 0,
        as in float32) and a dropped one ``+0.0`` (``cydrop.reference.bias_relu_dropout``).
    b : ndarray, shape (units,)
        Bias, same dtype as ``z``; for a 16-bit ``z`` float32 (the trainer's parameters) or
        ``z``'s dtype, read as float32.
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
    fmt = _validation.half_format(z.dtype)
    b = _validation.as_float_array(b, "b", half=fmt is not None)
    if b.shape != (z.shape[1],):
        raise ValueError(f"b must have shape ({z.shape[1]},) to match z's units, got {b.shape}")
    if fmt is not None:
        if b.dtype not in (z.dtype, np.dtype(np.float32)):
            raise TypeError(f"b must have z's dtype {z.dtype} or float32, got {b.dtype}")
    elif b.dtype != z.dtype:
        raise TypeError(f"b must have z's dtype {z.dtype}, got {b.dtype}")
    rate = _validation.check_probability(rate, "rate")
    training = _validation.check_bool(training, "training")
    offset = _validation.check_offset(offset, z.size)
    threads = effective_n_threads(n_threads)
    seed = None if seed is None else _validation.check_uint64(seed, "seed")
    dst, writeback = _common.destination(out, z, "out", [("b", b)])
    zc = _validation.aligned_contiguous(z)
    bc = _validation.aligned_contiguous(b)
    if fmt is not None:
        return _forward_half(zc, bc.astype(np.float32), dst, writeback, out, rate, training,
                             seed, offset, threads, fmt)
    if not training or rate == 0.0:
        thr, scale, seed, offset = _contract.THRESHOLD_ONE, 1.0, None, None
        _kernels.bias_relu_dropout(zc, bc, dst, 0, 0, thr, scale, threads)
    else:
        seed = resolve_seed(seed)
        thr, scale = _contract.threshold_and_scale(rate)
        _kernels.bias_relu_dropout(zc, bc, dst, seed, offset, thr, scale, threads)
    dst = _common.finish(dst, writeback)
    # The cache holds the plain-ndarray view of the result (out= may be a subclass, returned as
    # given): what its validation, and the kernel, expect.
    return (dst if out is None else out), FusedCache(
        dst, scale, rate if seed is not None else 0.0, seed, offset)


def _forward_half(zc, b32, dst, writeback, out, rate, training, seed, offset, threads, fmt):
    """bias_relu_dropout's 16-bit path (arguments validated), through the 16-bit kernel."""
    if not training or rate == 0.0:
        thr, scale, seed, offset = _contract.THRESHOLD_ONE, 1.0, None, None
    else:
        seed = resolve_seed(seed)
        thr, scale = _contract.threshold_and_scale(rate)
    _kernels.bias_relu_dropout_half(zc.view(np.uint16), b32, dst.view(np.uint16),
                                    0 if seed is None else seed, offset or 0, thr, scale,
                                    threads, fmt == "bf16")
    dst = _common.finish(dst, writeback)
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
        ``dout * scale`` where the forward output is positive, ``+0.0`` elsewhere; for 16-bit
        ``dout``, ``dtype(float32(dout) * scale)`` there.
    db : ndarray, shape (units,)
        ``dz`` summed over rows; float32 for a 16-bit ``dout`` (the bias is float32).

    Raises
    ------
    TypeError, ValueError
        A cache of another type or in a state no forward call makes, a ``dout`` of the wrong
        shape or dtype, a bad ``out``.
    """
    st = _cache.check_cache(cache, (FusedCache,), "cydrop.fused.bias_relu_dropout")
    a = st.out
    dout = _validation.check_dout(_matrix(dout, "dout"), a.shape, a.dtype, of="forward output")
    dst, writeback = _common.destination(out, dout, "out",
                                         [("the cache's forward output (cache.out)", cache.out)])
    if _validation.half_format(a.dtype) is not None:
        return _backward_half(_validation.aligned_contiguous(dout), a, dst, writeback, out,
                              st.scale)
    db = np.empty(a.shape[1], dtype=a.dtype)
    _kernels.bias_relu_dropout_backward(_validation.aligned_contiguous(dout), a, dst, db,
                                        st.scale)
    dst = _common.finish(dst, writeback)
    return (dst if out is None else out), db


def _backward_half(dout, a, dst, writeback, out, scale):
    """bias_relu_dropout_backward's 16-bit path: dz by the 16-bit rule, db in float32."""
    db = np.empty(a.shape[1], dtype=np.float32)
    _kernels.bias_relu_dropout_backward_half(dout.view(np.uint16), a.view(np.uint16),
                                             dst.view(np.uint16), db, scale,
                                             _validation.half_format(a.dtype) == "bf16")
    dst = _common.finish(dst, writeback)
    return (dst if out is None else out), db
