"""Fused layer kernels: bias-add + ReLU + dropout in one pass over an activation, and back.

A dense layer followed by ReLU and dropout normally walks its (batch, units) activation three
times forward (add the bias, clamp, mask) and three times backward. These kernels do each
direction in one pass. The forward output is bit for bit
``cydrop.dropout(np.maximum(z + b, 0), rate, seed=seed, offset=offset)[0]``; the backward needs
no mask at all, because the output is positive exactly where a unit was both active and kept.
"""

import numpy as np

from cydrop import _kernels, _validation
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed

__all__ = ["FusedCache", "bias_relu_dropout", "bias_relu_dropout_backward"]


class FusedCache:
    """What :func:`bias_relu_dropout_backward` needs: the forward output and its scale.

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
        return (f"FusedCache(rate={self.rate!r}, seed={self.seed!r}, offset={self.offset!r}, "
                f"shape={self.out.shape}, dtype={self.out.dtype})")


def _matrix(a, name):
    a = _validation.as_float_array(a, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, units), got shape {a.shape}")
    return a


def bias_relu_dropout(z, b, rate=0.5, *, training=True, seed=None, offset=0, out=None,
                      n_threads=None):
    """``dropout(relu(z + b), rate)`` in one pass.

    Parameters
    ----------
    z : ndarray of float32 or float64, shape (rows, units)
        Pre-activation, e.g. ``x @ W``.
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
        C-contiguous output of ``z``'s shape and dtype; may be ``z`` itself (in place).
    n_threads : int or None, default=None

    Returns
    -------
    out : ndarray, shape (rows, units)
    cache : FusedCache
        For :func:`bias_relu_dropout_backward`.

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
    if out is None:
        out = np.empty(z.shape, dtype=z.dtype)
    else:
        _validation.check_out(out, z)
    zc = np.ascontiguousarray(z)
    bc = np.ascontiguousarray(b)
    if not training or rate == 0.0:
        thr, scale, seed, offset = 65536, 1.0, None, None
        _kernels.bias_relu_dropout(zc, bc, out, 0, 0, thr, scale, threads)
    else:
        seed = resolve_seed(seed)
        thr = _kernels.threshold(1.0 - rate)
        scale = 65536.0 / thr if thr else 0.0
        _kernels.bias_relu_dropout(zc, bc, out, seed, offset, thr, scale, threads)
    return out, FusedCache(out, scale, rate if seed is not None else 0.0, seed, offset)


def bias_relu_dropout_backward(dout, cache, *, out=None):
    """Gradients of :func:`bias_relu_dropout` with respect to ``z`` and ``b``.

    Parameters
    ----------
    dout : ndarray, shape (rows, units)
        Upstream gradient, same dtype as the forward output.
    cache : FusedCache
    out : ndarray or None, default=None
        Where to put ``dz``; may be ``dout`` itself.

    Returns
    -------
    dz : ndarray, shape (rows, units)
        ``dout * scale`` where the forward output is positive, ``+0.0`` elsewhere.
    db : ndarray, shape (units,)
        ``dz`` summed over rows.
    """
    if not isinstance(cache, FusedCache):
        raise TypeError(f"cache must be the FusedCache returned by bias_relu_dropout, got "
                        f"{type(cache).__name__}")
    dout = _matrix(dout, "dout")
    a = cache.out
    if dout.shape != a.shape:
        raise ValueError(f"dout must have the forward output's shape {a.shape}, got {dout.shape}")
    if dout.dtype != a.dtype:
        raise TypeError(f"dout must have the forward output's dtype {a.dtype}, got {dout.dtype}")
    if out is None:
        out = np.empty(dout.shape, dtype=dout.dtype)
    else:
        _validation.check_out(out, dout)
    db = np.empty(a.shape[1], dtype=a.dtype)
    _kernels.bias_relu_dropout_backward(np.ascontiguousarray(dout), a, out, db, cache.scale)
    return out, db
