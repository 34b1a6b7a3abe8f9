"""Broadcast-mask dropout: :func:`dropout_nd` and its spatial (channel) and locked forms.
Public as :mod:`cydrop.variants`; see its docstring for the draw layout.

Channels-first and channels-last channel dropout drop the same (sample, channel) pairs:

>>> import numpy as np
>>> from cydrop.variants import spatial_dropout
>>> x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
>>> a, _ = spatial_dropout(x, 0.5, seed=7)
>>> b, _ = spatial_dropout(x.transpose(0, 2, 3, 1).copy(), 0.5, channel_axis=-1, seed=7)
>>> bool((a.transpose(0, 2, 3, 1) == b).all())
True
"""

import numpy as np

from cydrop import _contract, _validation
from cydrop import _variant_params as _p
from cydrop import _variants as _v
from cydrop import _variants_out as _o

__all__ = ["dropout_nd", "dropout_nd_backward", "locked_dropout", "spatial_dropout"]


def dropout_nd(x, rate=0.5, *, noise_shape=None, broadcast_axes=None, training=True, seed=None,
               offset=0, out=None, inplace=False, n_threads=None):
    """Dropout whose mask is shared along chosen axes (Keras ``noise_shape``, Flax
    ``broadcast_dims``).

    Parameters
    ----------
    x : array_like of float32, float64, float16 or bfloat16 (16-bit: as cydrop.dropout), any shape
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
    out : ndarray or None, default=None
        Where to put the result, as in :func:`cydrop.dropout`: C-contiguous, writable, aligned,
        same shape and dtype as ``x``, not overlapping it (unless it is ``x``). Returned as is.
    inplace : bool, default=False
        Write the result into ``x`` (a writable ndarray of native byte order) and return it.
    n_threads : int or None, default=None
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
        For an identity call, ``x`` itself, or ``out`` filled with a copy of it.
    cache : VariantCache
        For :func:`dropout_nd_backward`; ``cache.keep`` is the reduced 0/1 mask.

    Raises
    ------
    TypeError, ValueError
        Bad ``x``, ``rate``, ``noise_shape`` / ``broadcast_axes``, ``seed``, ``offset``,
        ``out`` or ``inplace`` (nothing is written then).

    Notes
    -----
    The reduced mask (shape ``noise_shape``) is drawn exactly as :func:`cydrop.dropout_mask`
    draws a mask of that shape: mask element ``j`` in C order is kept when
    ``draw(seed, offset + j) < round((1 - rate) * 65536)``. So the mask is a pure function of
    (seed, offset, reduced-mask index), and with no broadcast axes the result equals
    :func:`cydrop.dropout`'s. The kernel then applies it with broadcasting (collapsed axes,
    one pass over ``x``).

    There is no ``channel_axis`` here: ``broadcast_axes`` already names every axis the mask is
    shared along, in any layout; :func:`spatial_dropout` takes ``channel_axis`` and passes
    the matching ``broadcast_axes``.

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.variants import dropout_nd
    >>> x = np.ones((2, 3, 4), dtype=np.float32)
    >>> y, cache = dropout_nd(x, 0.5, broadcast_axes=2, seed=0)
    >>> cache.keep.shape, bool((y == y[:, :, :1]).all())
    ((2, 3, 1), True)
    """
    def plan(x, rate, offset):
        mshape = _p.mask_shape(x.shape, noise_shape, broadcast_axes)
        msize = int(np.prod(mshape, dtype=object))
        offset = _validation.check_offset(offset, msize)
        return offset, (None if rate == 0.0 else (mshape, msize))

    return _o.forward("nd", plan, _nd_run, x, rate, training, seed, offset, out, inplace,
                      n_threads, half=True)


def _nd_run(src, dst, rate, seed, offset, threads, mshape, msize):
    """:func:`dropout_nd`'s reduced mask (returned, read-only, of ``mshape``) and kernel."""
    thr, scale = _contract.threshold_and_scale(rate)
    keep = np.empty(msize, dtype=np.uint8)
    _v.keep_mask(msize, seed, offset, thr, keep, threads)
    _o.bcast_into(src, dst, keep, *_p.collapse(src.shape, mshape), scale, threads)
    keep = keep.reshape(mshape)
    keep.flags.writeable = False
    return keep


def dropout_nd_backward(dout, cache, *, out=None, inplace=False, n_threads=None):
    """Gradient of :func:`dropout_nd` (and :func:`spatial_dropout`, :func:`locked_dropout`).

    Parameters
    ----------
    dout : ndarray of float32, float64, float16 or bfloat16, the forward input's shape and dtype
    cache : VariantCache
    out : ndarray or None, default=None
        Where to put ``dx`` (same rules as in :func:`cydrop.dropout`).
    inplace : bool, default=False
        Write ``dx`` into ``dout`` and return it.
    n_threads : int or None, default=None
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    dx : ndarray
        ``dout`` masked (broadcast) and scaled exactly as the forward input was. For an
        identity forward call, ``dout`` itself (or ``out`` filled with it).
    """
    return _o.backward("dropout_nd", "nd", _nd_grad, dout, cache, out, inplace, n_threads)


def _nd_grad(src, dst, st, threads):
    """:func:`dropout_nd_backward`'s kernel: the stored reduced mask, broadcast."""
    _o.bcast_into(src, dst, st.keep, st.cshape, st.mstride, st.scale, threads)


def spatial_dropout(x, rate=0.5, *, channel_axis=1, training=True, seed=None, offset=0,
                    out=None, inplace=False, n_threads=None):
    """Channel ("spatial") dropout: zero whole channels of (N, C, L), (N, C, H, W) or
    (N, C, D, H, W) inputs, like PyTorch's Dropout1d / Dropout2d / Dropout3d, or of
    channels-last (N, L, C), (N, H, W, C), (N, D, H, W, C) inputs with ``channel_axis=-1``
    (the Keras / MLX layout).

    Same as ``dropout_nd(x, rate, broadcast_axes=...)`` over every axis but 0 and the channel
    axis: one mask value per (sample, channel). Parameters, returns and ``out`` / ``inplace``
    as :func:`dropout_nd`, plus ``channel_axis``; the backward is :func:`dropout_nd_backward`.

    Parameters
    ----------
    x : array_like of float32, float64, float16 or bfloat16, 3, 4 or 5 dimensions
    rate : float, default=0.5
    channel_axis : int, default=1
        The channel axis: 1 for channels-first (N, C, ...), -1 (or ``x.ndim - 1``) for
        channels-last (N, ..., C); any axis but 0, the batch axis.
    training, seed, offset, out, inplace, n_threads
        As :func:`dropout_nd`.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : VariantCache

    Raises
    ------
    TypeError
        If ``channel_axis`` is not an int.
    ValueError
        If ``x`` does not have 3, 4 or 5 dimensions, or ``channel_axis`` is out of range or 0.

    Notes
    -----
    The mask contract: the (N, C) decision array is indexed the same way in every layout.
    Channel ``c`` of sample ``n`` is kept when ``draw(seed, offset + n * C + c) < round((1 -
    rate) * 65536)``, whatever ``channel_axis`` is, so one seed drops the same (n, c) channels
    channels-first and channels-last: ``spatial_dropout(x_nchw, ...)[0]`` moved to channels-last
    equals ``spatial_dropout(x_nhwc, channel_axis=-1, ...)[0]`` bit for bit. (In C order the
    reduced mask of shape (N, 1, ..., 1, C) or (N, C, 1, ..., 1) has element ``n * C + c``.)
    """
    x_c = _validation.as_float_array(x, "x", half=True)
    if x_c.ndim not in (3, 4, 5):
        raise ValueError(f"x must have 3, 4 or 5 dimensions (N, C, *spatial) for spatial "
                         f"dropout, got shape {x_c.shape}")
    _, axes = _p.channel_axes(channel_axis, x_c.ndim)
    return dropout_nd(x, rate, broadcast_axes=axes, training=training, seed=seed, offset=offset,
                      out=out, inplace=inplace, n_threads=n_threads)


def locked_dropout(x, rate=0.5, *, time_axis=0, training=True, seed=None, offset=0, out=None,
                   inplace=False, n_threads=None):
    """Locked (variational) dropout: the same mask at every time step of a sequence.

    For ``(T, N, F)`` inputs use ``time_axis=0``, for ``(N, T, F)`` ``time_axis=1`` (Gal and
    Ghahramani 2016; Merity et al.'s ``LockedDropout``). Same as
    ``dropout_nd(x, rate, broadcast_axes=time_axis)`` (``out`` / ``inplace`` too); backward is
    :func:`dropout_nd_backward`.

    Raises
    ------
    ValueError
        If ``x`` has fewer than 2 dimensions or ``time_axis`` is out of range.
    """
    x_c = _validation.as_float_array(x, "x", half=True)
    if x_c.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (time and features) for locked "
                         f"dropout, got shape {x_c.shape}")
    return dropout_nd(x, rate, broadcast_axes=time_axis, training=training, seed=seed,
                      offset=offset, out=out, inplace=inplace, n_threads=n_threads)
