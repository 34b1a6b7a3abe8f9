"""DropConnect and exact-k dropout. Public as :mod:`cydrop.variants`; see its docstring for
the draw layout."""

import numpy as np

from cydrop import _cache, _contract, _validation
from cydrop import _variant_params as _p
from cydrop import _variants as _v
from cydrop import _variants_out as _o
from cydrop._cache import VariantCache
from cydrop._common import elementwise as _elementwise
from cydrop._common import op_args
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed
from cydrop._validation import aligned_contiguous as _contig
from cydrop._variant_params import exact_k_count

__all__ = ["dropconnect_backward", "dropconnect_forward", "exact_k_dropout",
           "exact_k_dropout_backward"]


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

def exact_k_dropout(x, rate=0.5, *, training=True, seed=None, offset=0, out=None, inplace=False,
                    n_threads=None):
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
    out : ndarray or None, default=None
        Where to put the result (same rules as in :func:`cydrop.dropout`); returned as is.
    inplace : bool, default=False
        Write the result into ``x`` and return it.
    n_threads : int or None, default=None
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    out : ndarray like ``x``
        For an identity call (``k == 0``), ``x`` (or ``out`` filled with it).
    cache : VariantCache
        ``cache.keep`` holds the 0/1 mask (``x.size`` bytes).

    Notes
    -----
    Unit ``j`` of row ``r`` gets the 64-bit key ``(u32word(offset + r n + j) << 32) | j`` and
    the ``k`` smallest keys are dropped: a uniformly random k-subset (up to ties in 32 random
    bits, broken by index). The kernel finds them per row with a quickselect; NumPy reproduces
    it with ``np.partition`` (see :func:`cydrop.testing.reference_variants.exact_k_keep`).
    """
    return _o.forward("exact_k", _exact_k_plan, _exact_k_run, x, rate, training, seed, offset,
                      out, inplace, n_threads)


def _exact_k_plan(x, rate, offset):
    """:func:`exact_k_dropout`'s checks; ``(n, k)`` per row, an identity call when ``k == 0``."""
    if x.ndim < 1:
        raise ValueError(f"x must have at least 1 dimension (rows along the last axis), got "
                         f"shape {x.shape}")
    n = x.shape[-1]
    if n >= 2**32:
        raise ValueError(f"x.shape[-1] must be < 2**32 for exact-k dropout, got {n}")
    offset = _validation.check_offset_units(offset, x.size, 2)
    k = exact_k_count(n, rate)
    return offset, (None if k == 0 else (n, k))


def _exact_k_run(src, dst, rate, seed, offset, threads, n, k):
    """:func:`exact_k_dropout`'s mask (returned, read-only, ``src``'s shape) and kernel."""
    rows = src.size // n if n else 0
    keep = np.empty(src.size, dtype=np.uint8)
    scratch = np.empty(max(threads, 1) * max(n, 1), dtype=np.uint64)
    _v.exactk_mask(rows, n, k, seed, offset, keep, scratch, threads)
    _o.bcast_into(src, dst, keep, *_p.flat_geometry(src.size), _p.exact_k_scale(n, k), threads)
    keep = keep.reshape(src.shape)
    keep.flags.writeable = False
    return keep


def exact_k_dropout_backward(dout, cache, *, out=None, inplace=False, n_threads=None):
    """Gradient of :func:`exact_k_dropout`: ``dout`` under the same mask and scale.
    Parameters as :func:`backward`; ``out`` / ``inplace`` as :func:`dropout_nd_backward`."""
    return _o.backward("exact_k_dropout", "exact_k", _exact_k_grad, dout, cache, out, inplace,
                       n_threads)


def _exact_k_grad(src, dst, st, threads):
    """:func:`exact_k_dropout_backward`'s kernel: the stored mask, element-wise."""
    _o.bcast_into(src, dst, st.keep, *_p.flat_geometry(src.size), st.scale, threads)
