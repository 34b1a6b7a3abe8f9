"""What the variant kernels need, derived from validated arguments: the drop rule's constants
and the broadcast geometry.

Used by :mod:`cydrop.variants` when a forward call runs and by :mod:`cydrop._cache` when a
backward call re-derives its kernel parameters from a cache's validated ``rate`` and shapes
(a derived value is never read back from a cache). Thresholds come from :mod:`cydrop._contract`.
"""

import functools
import math
import numbers

import numpy as np

from cydrop import _contract, _validation

__all__ = ["ALPHA_PRIME", "alpha_constants", "channel_axes", "check_gauss_rate", "collapse",
           "collapse_cached", "exact_k_count", "exact_k_scale", "gaussian_sigma", "mask_shape",
           "normalize_axes"]

ALPHA_PRIME = -1.7580993408473766   # -lambda * alpha of SELU, PyTorch's alpha'


def alpha_constants(rate):
    """``(thr, a, b, c)`` of AlphaDropout at drop probability ``rate`` (validated).

    With ``q = thr / 65536`` the realised keep probability: ``a = (q + alpha'^2 q (1 - q))^-1/2``,
    ``b = -a (1 - q) alpha'`` and a dropped unit becomes ``c = a alpha' + b``; ``thr == 0`` gives
    ``a = b = c = 0``.

    Parameters
    ----------
    rate : float
        Drop probability, ``0 <= rate < 1``.
    """
    thr = _contract.threshold(1.0 - rate)
    if thr == 0:
        return 0, 0.0, 0.0, 0.0
    q = thr / float(_contract.THRESHOLD_ONE)
    a = (q + ALPHA_PRIME * ALPHA_PRIME * q * (1.0 - q)) ** -0.5
    b = -a * (1.0 - q) * ALPHA_PRIME
    return thr, a, b, a * ALPHA_PRIME + b


def check_gauss_rate(rate, name="rate"):
    """``rate`` as a float in [0, 1): Gaussian dropout's noise variance is infinite at 1."""
    rate = _validation.check_probability(rate, name)
    if rate == 1.0:
        raise ValueError(f"{name} must satisfy 0 <= {name} < 1 for Gaussian dropout (the noise "
                         f"variance rate / (1 - rate) is infinite at 1), got {rate!r}")
    return rate


def gaussian_sigma(rate):
    """The noise standard deviation ``sqrt(rate / (1 - rate))`` of a rate in [0, 1)."""
    return math.sqrt(rate / (1.0 - rate))


def exact_k_count(n, rate):
    """Units dropped per row of ``n``: ``k = floor(rate * n + 0.5)`` (halves round up).

    Parameters
    ----------
    n : int
        Units per row.
    rate : float
        Drop probability, ``0 <= rate <= 1``.
    """
    rate = _validation.check_probability(rate, "rate")
    return int(math.floor(rate * int(n) + 0.5))


def exact_k_scale(n, k):
    """``n / (n - k)``, the scale of the kept units of a row (0.0 when all ``n`` are dropped)."""
    return n / (n - k) if k < n else 0.0


def normalize_axes(axes, ndim, name):
    """``axes`` (an int or a sequence of ints, negatives counted from the end) as a sorted tuple
    of distinct non-negative axes of an ``ndim``-dimensional array."""
    if isinstance(axes, numbers.Integral) and not isinstance(axes, bool):
        axes = (axes,)
    try:
        axes = tuple(axes)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {axes!r}") from None
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError(f"{name} must be an int or a tuple of ints, got {axes!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{name} entries must satisfy -{ndim} <= axis < {ndim} for x of "
                             f"{ndim} dimensions, got {a}")
        a = int(a) % ndim
        if a in out:
            raise ValueError(f"{name} must not repeat an axis, got {axes!r}")
        out.append(a)
    return tuple(sorted(out))


def channel_axes(channel_axis, ndim, name="channel_axis"):
    """``(c, spatial)``: channel dropout's channel axis of an ``ndim``-dimensional (N, ...) array
    as a non-negative axis, and the axes its mask is shared along (all but 0 and ``c``).

    ``channel_axis`` is an int in ``[-ndim, ndim)`` other than the batch axis 0 (``-ndim``).
    """
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(channel_axis).__name__} "
                        f"{channel_axis!r}")
    if not -ndim <= channel_axis < ndim:
        raise ValueError(f"{name} must satisfy -{ndim} <= {name} < {ndim} for x of {ndim} "
                         f"dimensions, got {channel_axis}")
    c = int(channel_axis) % ndim
    if c == 0:
        raise ValueError(f"{name} must not be axis 0, the batch axis (one decision per sample "
                         f"and channel), got {channel_axis}")
    return c, tuple(d for d in range(1, ndim) if d != c)


def mask_shape(shape, noise_shape, broadcast_axes):
    """The reduced mask's shape for ``x`` of ``shape``: Keras's ``noise_shape`` or Flax's
    ``broadcast_axes`` (not both); neither is an element-wise mask of ``shape``."""
    if noise_shape is not None and broadcast_axes is not None:
        raise ValueError("give noise_shape or broadcast_axes, not both")
    if broadcast_axes is not None:
        axes = normalize_axes(broadcast_axes, len(shape), "broadcast_axes")
        return tuple(1 if d in axes else s for d, s in enumerate(shape))
    if noise_shape is None:
        return tuple(shape)
    try:
        ns = tuple(noise_shape)
    except TypeError:
        raise TypeError(f"noise_shape must be a tuple of ints (or None entries), got "
                        f"{noise_shape!r}") from None
    if len(ns) != len(shape):
        raise ValueError(f"noise_shape must have x.ndim={len(shape)} entries, got {ns!r}")
    out = []
    for d, (m, s) in enumerate(zip(ns, shape)):
        if m is None:
            m = s
        if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m not in (1, s):
            raise ValueError(f"noise_shape[{d}] must be 1 or x.shape[{d}]={s} (or None), "
                             f"got {m!r}")
        out.append(int(m))
    return tuple(out)


def collapse(shape, mask_shape):
    """Collapsed (shape, mask strides) for the broadcast kernel; axes of size 1 dropped."""
    mstr, acc = [0] * len(shape), 1
    for d in range(len(shape) - 1, -1, -1):
        mstr[d] = acc if mask_shape[d] != 1 else 0
        acc *= mask_shape[d]
    dims = [(s, m) for s, m in zip(shape, mstr) if s != 1]
    if not dims:
        return np.array([1], np.int64), np.array([0], np.int64)
    cs, cm = [dims[0][0]], [dims[0][1]]
    for s, m in dims[1:]:
        if (m == 0 and cm[-1] == 0) or (m != 0 and cm[-1] == m * s):
            cs[-1] *= s
            cm[-1] = m
        else:
            cs.append(s)
            cm.append(m)
    return np.array(cs, np.int64), np.array(cm, np.int64)


@functools.lru_cache(maxsize=256)
def collapse_cached(shape, mask_shape):
    """:func:`collapse` of two tuples of ints, memoised (backward calls repeat the same
    geometry every step); the arrays are read-only, since they are shared."""
    cs, cm = collapse(shape, mask_shape)
    cs.flags.writeable = cm.flags.writeable = False
    return cs, cm


def flat_geometry(size):
    """The broadcast kernel's geometry for an element-wise mask of ``size`` elements."""
    return np.array([size if size else 1], np.int64), np.ones(1, np.int64)
