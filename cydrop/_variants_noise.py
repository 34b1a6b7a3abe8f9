"""AlphaDropout and GaussianDropout (and :func:`gaussian_noise`). Public as
:mod:`cydrop.variants`; see its docstring for the draw layout."""

import numpy as np

from cydrop import _validation
from cydrop import _variant_params as _p
from cydrop import _variants as _v
from cydrop import _variants_out as _o

__all__ = ["alpha_dropout", "alpha_dropout_backward", "gaussian_dropout",
           "gaussian_dropout_backward", "gaussian_noise"]


def alpha_dropout(x, rate=0.5, *, training=True, seed=None, offset=0, out=None, inplace=False,
                  n_threads=None):
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
    out : ndarray or None, default=None
        Where to put the result (same rules as in :func:`cydrop.dropout`); returned as is.
    inplace : bool, default=False
        Write the result into ``x`` and return it.
    n_threads : int or None, default=None
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    out : ndarray like ``x``
        ``a * x + b`` where kept (two roundings in ``x``'s precision, ``a`` and ``b`` rounded to
        it first), ``a alpha' + b`` where dropped. For an identity call, ``x`` (or ``out``
        filled with it).
    cache : VariantCache
    """
    return _o.forward("alpha", _o.elementwise_plan(1), _alpha_run, x, rate, training, seed,
                      offset, out, inplace, n_threads)


def _alpha_run(src, dst, rate, seed, offset, threads):
    """:func:`alpha_dropout`'s kernel, ``src`` into ``dst``."""
    thr, a, b, c = _p.alpha_constants(rate)
    _o.kernel_into(_v.alpha, src, dst, seed, offset, thr, a, b, c, threads)


def alpha_dropout_backward(dout, cache, *, out=None, inplace=False, n_threads=None):
    """Gradient of :func:`alpha_dropout`: ``a * dout`` where kept, ``+0.0`` where dropped.
    Parameters as :func:`backward`; ``out`` / ``inplace`` as :func:`dropout_nd_backward`."""
    return _o.backward("alpha_dropout", "alpha", _alpha_grad, dout, cache, out, inplace,
                       n_threads)


def _alpha_grad(src, dst, st, threads):
    """:func:`alpha_dropout_backward`'s kernel: the forward's mask, scaled by ``a``."""
    _o.kernel_into(_v.dropout, src, dst, st.seed, st.offset, st.thr, st.a, threads)


def gaussian_dropout(x, rate=0.5, *, training=True, seed=None, offset=0, out=None,
                     inplace=False, n_threads=None):
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
    out : ndarray or None, default=None
        Where to put the result (same rules as in :func:`cydrop.dropout`); returned as is.
    inplace : bool, default=False
        Write the result into ``x`` and return it.
    n_threads : int or None, default=None
        Threads (any nonzero int, capped at the usable cores); never changes the result.

    Returns
    -------
    out : ndarray like ``x``
        For an identity call, ``x`` (or ``out`` filled with it).
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
    return _o.forward("gaussian", _o.elementwise_plan(4), _gaussian_run, x, rate, training, seed,
                      offset, out, inplace, n_threads, rate_check=_p.check_gauss_rate)


def _gaussian_run(src, dst, rate, seed, offset, threads):
    """:func:`gaussian_dropout`'s kernel, ``src`` into ``dst``."""
    _o.kernel_into(_v.gauss, src, dst, seed, offset, _p.gaussian_sigma(rate), threads)


def gaussian_dropout_backward(dout, cache, *, out=None, inplace=False, n_threads=None):
    """Gradient of :func:`gaussian_dropout`: ``dout * eps`` with the same (regenerated) noise.
    Parameters as :func:`backward`; ``out`` / ``inplace`` as :func:`dropout_nd_backward`."""
    return _o.backward("gaussian_dropout", "gaussian", _gaussian_grad, dout, cache, out, inplace,
                       n_threads)


def _gaussian_grad(src, dst, st, threads):
    """:func:`gaussian_dropout_backward`'s kernel: the forward's (regenerated) noise."""
    _o.kernel_into(_v.gauss, src, dst, st.seed, st.offset, st.sigma, threads)


def gaussian_noise(shape, rate=0.5, *, seed, offset=0, dtype=np.float64, n_threads=None):
    """The factors ``eps`` :func:`gaussian_dropout` multiplies by, as an array of ``shape``.
    Parameters as :func:`gaussian_dropout` (``shape`` and ``dtype`` are the array's)."""
    dtype = _validation.check_float_dtype(dtype, "dtype")
    ones = np.ones(_validation.check_shape(shape), dtype=dtype)
    out, _ = gaussian_dropout(ones, rate, seed=seed, offset=offset, inplace=True,
                              n_threads=n_threads)
    return out
