"""Dropout variants as kernel-level features: validation here, then the C kernels.

Every variant is deterministic by ``(seed, offset)``, gives the same bits for any
``n_threads``, keeps float32 as float32, and has a NumPy twin in
:mod:`cydrop.testing.reference_variants`. All read the counter-based draw field of the core
(``draw(seed, position)``, see :mod:`cydrop.testing.reference`):

============================  ================================  ===============================
variant                       element ``i`` reads               ``offset`` counts
============================  ================================  ===============================
:func:`dropout_nd`            ``draw(offset + j)``, ``j`` the   mask elements (16-bit draws)
(noise_shape, spatial,        C-order index in the REDUCED
locked)                       mask
:func:`dropconnect_forward`   ``draw(offset + j)``, ``j`` the   weights (16-bit draws)
                              C-order index in ``W``
:func:`exact_k_dropout`       u32 word ``offset + r n + j``     u32 words (2 draws each)
:func:`alpha_dropout`         ``draw(offset + i)``              elements (16-bit draws)
:func:`gaussian_dropout`      u64 word ``offset + i``           u64 words (4 draws each)
============================  ================================  ===============================

The drop probability is alwa  ys ``rate``. Functions return ``  (out, cache)``; pass the cache to
the matching ``*_backward`` or to :func:`backward`. Every backward validates the cache's state
(it is a plain, picklable Python object) before a kernel sees it. ``n_threads`` accepts any
nonzero int and is capped at the usable cores; inputs of any layout, alignment or ndarray
subclass are read through an aligned C-contiguous base-class array, and results are plain
ndarrays.
"""

import numpy as np

from cydrop import _cache, _contract, _validation
from cydrop import _variant_params as _p
from cydrop import _variants as _v
from cydrop._cache import VariantCache
from cydrop._common import broadcast as _broadcast
from cydrop._common import elementwise as _elementwise
from cydrop._common import op_args
from cydrop._common import variant_backward_state as _backward_state
from cydrop._common import variant_identity as _identity
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed
from cydrop._validation import aligned_contiguous as _contig
from cydrop._variant_params import ALPHA_PRIME, exact_k_count

__all__ = [
    "ALPHA_PRIME",
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
    "spatial_dropout",
]

_restore_variant_cache = _cache.restore_variant_v01     # pickles of cydrop 0.1

_MOVED_TO_NN = ("MCPrediction", "SequentialMC", "mc_predict", "mc_sample_seed")


def __getattr__(name):
    # Monte Carlo dropout runs models: it moved to cydrop.nn (the op layer never imports it)
    if name in _MOVED_TO_NN:
        raise AttributeError(f"cydrop.variants.{name} has moved to cydrop.nn.{name} (module "
                             f"cydrop.nn.mc): use `from cydrop.nn.mc import {name}`")
    raise AttributeError(f"module 'cydrop.variants' has no attribute {name!r}")


def dropout_nd(x, rate=0.5, *, noise_shape=None, broadcast_axes=None, training=True, seed=None,
               offset=0, n_threads=None):
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
    n_threads : int or None, default=None
        Threads (any nonzero int, capped at the usable cores); never changes the result.

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
    x, rate, training, seed, threads = op_args(x, rate, training, seed, n_threads, half=True)
    mshape = _p.mask_shape(x.shape, noise_shape, broadcast_axes)
    msize = int(np.prod(mshape, dtype=object))
    offset = _validation.check_offset(offset, msize)
    if not training or rate == 0.0:
        return _identity(x)
    seed = resolve_seed(seed)
    thr, scale = _contract.threshold_and_scale(rate)
    keep = np.empty(msize, dtype=np.uint8)
    _v.keep_mask(msize, seed, offset, thr, keep, threads)
    out = _broadcast(x, keep, *_p.collapse(x.shape, mshape), scale, threads)
    keep = keep.reshape(mshape)
    keep.flags.writeable = False
    return out, VariantCache("nd", rate, seed, offset, x.shape, x.dtype, keep)


def dropout_nd_backward(dout, cache, *, n_threads=None):
    """Gradient of :func:`dropout_nd` (and :func:`spatial_dropout`, :func:`locked_dropout`).

    Parameters
    ----------
    dout : ndarray of float32, float64, float16 or bfloat16, the forward input's shape and dtype
    cache : VariantCache
    n_threads : int or None, default=None
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    dx : ndarray
        ``dout`` masked (broadcast) and scaled exactly as the forward input was.
    """
    st, dout = _backward_state(cache, "dropout_nd", ("nd", "identity"), dout)
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        return dout
    return _broadcast(dout, st.keep, st.cshape, st.mstride, st.scale, threads)


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
    x = _validation.as_float_array(x, "x", half=True)
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
    x = _validation.as_float_array(x, "x", half=True)
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
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    out : ndarray of shape (N, M)
        ``x @ W_eff + b`` with ``W_eff = where(keep, W * scale, 0)``, ``scale = 65536 / thr``.
    cache : VariantCache
        For :func:`dropconnect_backward`.
    """
    x, rate, training, seed, threads = op_args(x, rate, training, seed, n_threads)
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
    W_eff = _elementwise(_v.dropout, W, seed, offset, thr, scale, threads)
    return x2 @ W_eff + b, VariantCache("dropconnect", rate, seed, offset, x.shape, x.dtype,
                                        x=x, W_eff=W_eff)


def dropconnect_backward(dout, cache, *, n_threads=None):
    """Gradients of :func:`dropconnect_forward`. Parameters as :func:`backward`.

    Returns
    -------
    dx : ndarray of the forward ``x``'s shape
        ``dout @ W_eff.T``.
    dW : ndarray of shape (D, M)
        ``(x @ ... ).T @ dout`` masked and scaled by the same weight mask.
    db : ndarray of shape (M,)
    """
    st = _cache.check_cache(cache, (VariantCache,), "cydrop.variants.dropconnect_forward",
                            ("dropconnect",))
    x, W_eff = st.x, st.W_eff
    dout = _validation.check_dout(dout, (st.shape[0], W_eff.shape[1]), st.dtype,
                                  of="forward output")
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
        Threads (any nonzero int, capped at the usable cores); never changes the result.

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
    it with ``np.partition`` (see :func:`cydrop.testing.reference_variants.exact_k_keep`).
    """
    x, rate, training, seed, threads = op_args(x, rate, training, seed, n_threads)
    if x.ndim < 1:
        raise ValueError(f"x must have at least 1 dimension (rows along the last axis), got "
                         f"shape {x.shape}")
    n = x.shape[-1]
    if n >= 2**32:
        raise ValueError(f"x.shape[-1] must be < 2**32 for exact-k dropout, got {n}")
    offset = _validation.check_offset_units(offset, x.size, 2)
    k = exact_k_count(n, rate)
    if not training or k == 0:
        return _identity(x)
    seed = resolve_seed(seed)
    rows = x.size // n if n else 0
    keep = np.empty(x.size, dtype=np.uint8)
    scratch = np.empty(max(threads, 1) * max(n, 1), dtype=np.uint64)
    _v.exactk_mask(rows, n, k, seed, offset, keep, scratch, threads)
    out = _broadcast(x, keep, *_p.flat_geometry(x.size), _p.exact_k_scale(n, k), threads)
    keep = keep.reshape(x.shape)
    keep.flags.writeable = False
    return out, VariantCache("exact_k", rate, seed, offset, x.shape, x.dtype, keep)


def exact_k_dropout_backward(dout, cache, *, n_threads=None):
    """Gradient of :func:`exact_k_dropout`: ``dout`` under the same mask and scale.
    Parameters as :func:`backward`."""
    st, dout = _backward_state(cache, "exact_k_dropout", ("exact_k", "identity"), dout)
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        return dout
    return _broadcast(dout, st.keep, *_p.flat_geometry(dout.size), st.scale, threads)


# ------------------------------------------------------------------------------------------
# AlphaDropout, GaussianDropout
# ------------------------------------------------------------------------------------------

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
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    out : ndarray like ``x``
        ``a * x + b`` where kept (two roundings in ``x``'s precision, ``a`` and ``b`` rounded to
        it first), ``a alpha' + b`` where dropped.
    cache : VariantCache
    """
    x, rate, training, seed, threads = op_args(x, rate, training, seed, n_threads)
    offset = _validation.check_offset(offset, x.size)
    if not training or rate == 0.0:
        return _identity(x)
    seed = resolve_seed(seed)
    thr, a, b, c = _p.alpha_constants(rate)
    out = _elementwise(_v.alpha, x, seed, offset, thr, a, b, c, threads)
    return out, VariantCache("alpha", rate, seed, offset, x.shape, x.dtype)


def alpha_dropout_backward(dout, cache, *, n_threads=None):
    """Gradient of :func:`alpha_dropout`: ``a * dout`` where kept, ``+0.0`` where dropped.
    Parameters as :func:`backward`."""
    st, dout = _backward_state(cache, "alpha_dropout", ("alpha", "identity"), dout)
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        return dout
    return _elementwise(_v.dropout, dout, st.seed, st.offset, st.thr, st.a, threads)


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
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    out : ndarray like ``x``
    cache : VariantCache

    Notes
    -----
    ``eps = 1 + sigma * z`` in double, rounded to ``x``'s dtype, with ``z`` from the
    word ``w`` by Box-Muller (cosine branch): ``u1 = ((w >> 32) + 0.5) / 2**32``,
    ``u2 = (w & 0xffffffff) / 2**32``, ``z = sqrt(-2 ln u1) cos(2 pi u2)``. The word is one
    whole xoshiro256++ lane output, so ``u1``, ``u2`` carry 32 bits each (``|z| <= 6.66``). Bits
    are identical for any thread count; across platforms they depend on libm's ``log`` and
    ``cos``.
    """
    x, rate, training, seed, threads = op_args(x, rate, training, seed, n_threads,
                                               rate_check=_p.check_gauss_rate)
    offset = _validation.check_offset_units(offset, x.size, 4)
    if not training or rate == 0.0:
        return _identity(x)
    seed = resolve_seed(seed)
    out = _elementwise(_v.gauss, x, seed, offset, _p.gaussian_sigma(rate), threads)
    return out, VariantCache("gaussian", rate, seed, offset, x.shape, x.dtype)


def gaussian_dropout_backward(dout, cache, *, n_threads=None):
    """Gradient of :func:`gaussian_dropout`: ``dout * eps`` with the same (regenerated) noise.
    Parameters as :func:`backward`."""
    st, dout = _backward_state(cache, "gaussian_dropout", ("gaussian", "identity"), dout)
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        return dout
    return _elementwise(_v.gauss, dout, st.seed, st.offset, st.sigma, threads)


def gaussian_noise(shape, rate=0.5, *, seed, offset=0, dtype=np.float64, n_threads=None):
    """The factors ``eps`` :func:`gaussian_dropout` multiplies by, as an array of ``shape``.
    Parameters as :func:`gaussian_dropout` (``shape`` and ``dtype`` are the array's)."""
    dtype = _validation.check_float_dtype(dtype, "dtype")
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

    The cache's state is validated first (a ``TypeError``/``ValueError`` naming the field).

    Parameters
    ----------
    dout : ndarray
    cache : VariantCache
        From the forward call; its ``kind`` picks the backward.
    n_threads : int or None, default=None
        Any nonzero int, capped at the usable cores; never changes the result.
    """
    cache = _cache.check_cache(cache, (VariantCache,), "a cydrop.variants function",
                               _cache.VARIANT_KINDS, validate=False)
    return _BACKWARD[cache.kind](dout, cache, n_threads=n_threads)
