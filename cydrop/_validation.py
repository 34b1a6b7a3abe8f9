"""Checks at the Python boundary, in one place: every message names the argument, the rule and
the value.

Every op, cache validator, layer and adapter of cydrop validates through these functions; the
64-bit bounds come from :mod:`cydrop._contract`.
"""

import math
import numbers
import operator

import numpy as np

from cydrop._contract import INDEX_LIMIT, UINT64_MAX

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
MASK_MODES = ("recompute", "bits", "bytes")
# The ops that take float16 and bfloat16 (ml_dtypes.bfloat16) too: every other op and layer
# names them in its TypeError (see dtype_error).
HALF_OPS = ("dropout, dropout_backward, dropout_forward (CS231n), fused.bias_relu_dropout, "
            "variants.dropout_nd and its spatial/channel/locked forms, and the nn dropout layers")


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_probability(value, name="rate", *, what=None):
    """Return ``value`` as a float in [0, 1], or raise naming ``name``.

    A bool, a string or any other non-real is a TypeError; NaN, a number outside [0, 1] or one
    too large for a float (``10**400``) a ValueError. ``what`` (e.g. "dropout probability")
    words the ValueError as PyTorch does: "{what} has to be between 0 and 1, but got ...".
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind == "f":
            value = value.item()
        else:
            raise TypeError(
                f"{name} must be a real number with 0 <= {name} <= 1, got {_short(value)} "
                f"of type {type(value).__name__}")
    try:
        shown = as_float = float(value)
    except OverflowError:       # 10**400, Fraction(10**400, 3): far outside [0, 1] anyway
        as_float, shown = math.nan, _short(value)
    if math.isnan(as_float) or not 0.0 <= as_float <= 1.0:
        if what is not None:
            raise ValueError(f"{what} has to be between 0 and 1, but got {shown} ({name} must "
                             f"satisfy 0 <= {name} <= 1)")
        raise ValueError(f"{name} must satisfy 0 <= {name} <= 1, got {shown!s}")
    return as_float


def check_uint64(value, name):
    """Return ``value`` as a Python int in [0, 2**64), or raise naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int with 0 <= {name} < 2**64, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int with 0 <= {name} < 2**64, got {_short(value)} "
            f"of type {type(value).__name__}") from None
    if not 0 <= value <= UINT64_MAX:
        raise ValueError(f"{name} must satisfy 0 <= {name} < 2**64, got {value}")
    return value


def check_shape(shape, name="shape"):
    """Return ``shape`` (an int or a sequence of ints, bools refused) as a tuple of ints."""
    dims = shape if isinstance(shape, (tuple, list)) else (shape,)
    if isinstance(shape, np.ndarray):
        dims = shape.tolist() if shape.ndim == 1 else (shape,)
    try:
        return tuple(check_uint64(d, name) for d in dims)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {_short(shape)}") from None


def check_offset(offset, size, name="offset"):
    """Return ``offset`` as an int such that ``offset + size <= 2**64``."""
    offset = check_uint64(offset, name)
    if offset + size > INDEX_LIMIT:
        raise ValueError(
            f"{name} + size must be <= 2**64 (element indices are 64-bit), got {name}={offset} "
            f"with size={size}")
    return offset


def check_offset_units(offset, size, per, name="offset"):
    """``offset`` in units that each read ``per`` draws: needs ``per * (offset + size) <= 2**64``.

    ``per == 1`` is :func:`check_offset`.
    """
    if per == 1:
        return check_offset(offset, size, name)
    offset = check_uint64(offset, name)
    if per * (offset + size) > INDEX_LIMIT:
        raise ValueError(
            f"{name} + size must be <= 2**64 / {per} (this variant reads {per} draws per "
            f"element), got {name}={offset} with size={size}")
    return offset


def check_mask_mode(mask):
    """Return ``mask`` if it is one of 'recompute', 'bits', 'bytes'."""
    if not isinstance(mask, str) or mask not in MASK_MODES:
        raise ValueError(f"mask must be one of {MASK_MODES}, got {_short(mask)}")
    return str(mask)        # numpy.str_ and other str subclasses become a plain str


def half_format(dtype):
    """``'f16'`` for float16, ``'bf16'`` for ml_dtypes' bfloat16 (either byte order), else None.

    bfloat16 is recognised by its dtype alone (name, size and defining module), so ml_dtypes is
    never imported here: only a caller that already holds such an array has loaded it.
    """
    if not isinstance(dtype, np.dtype) or dtype.fields is not None or dtype.itemsize != 2:
        return None
    if dtype.kind == "f":
        return "f16"
    if (dtype.name == "bfloat16"
            and getattr(dtype.type, "__module__", "").partition(".")[0] == "ml_dtypes"):
        return "bf16"
    return None


def dtype_error(dtype, name, half=False):
    """The one TypeError for an unsupported dtype: names ``name``, the dtype and the supported
    ones (``half``: whether the call takes float16 and bfloat16 too)."""
    if half:
        return TypeError(f"{name} has dtype {dtype}; only float32 and float64 are supported, "
                         f"and float16 and bfloat16 (ml_dtypes.bfloat16) by this op")
    if half_format(dtype) is not None:
        return TypeError(f"{name} has dtype {dtype}; only float32 and float64 are supported "
                         f"here (float16 and bfloat16 only by {HALF_OPS}; cast with "
                         f".astype(np.float32) first)")
    return TypeError(f"{name} has dtype {dtype}; only float32 and float64 are supported")


def check_float_dtype(dtype, name, *, half=False):
    """Return ``dtype`` as a NumPy dtype if it is float32 or float64 (any byte order), or with
    ``half`` float16 or bfloat16, else raise TypeError naming ``name`` (also for what
    ``np.dtype`` cannot read, None included)."""
    given = dtype
    try:
        dtype = None if given is None else np.dtype(given)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None:
        raise TypeError(f"{name} must be float32 or float64, got {_short(given)}")
    if half and half_format(dtype) is not None:
        return dtype
    if dtype.fields is not None or dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise dtype_error(dtype, name, half)
    return dtype


def as_ndarray(x, name="x"):
    """``x`` as a base-class ndarray: subclasses (``np.matrix``, memmap, ...) become a view of
    their data, so results are plain ndarrays; masked arrays are refused, since viewing one would
    silently drop its mask."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{name} must not be a masked array (its mask would be ignored); pass "
                        f"{name}.filled(value) or {name}.data")
    return np.asarray(x)


def as_float_array(x, name="x", *, half=False):
    """Return ``x`` as an ndarray of native float32 or float64 (with ``half``, float16 and
    bfloat16 too), without copying when possible.

    ndarray subclasses are viewed as plain ndarrays (see :func:`as_ndarray`).
    """
    if isinstance(x, np.ndarray):
        if type(x) is not np.ndarray:
            x = as_ndarray(x, name)
    else:
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be array-like of floats: {exc}") from None
    check_float_dtype(x.dtype, name, half=half)
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    return x


def aligned_contiguous(a):
    """``a`` if it is C-contiguous and aligned, else an aligned C-contiguous copy.

    (``np.ascontiguousarray`` does not realign: a contiguous but unaligned array would reach the
    kernels, whose typed loads and stores need aligned pointers.)
    """
    if a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.array(a, order="C", copy=True)


def bytes_overlap(a, b):
    """Whether the memory spans of two arrays share a byte: exact for contiguous arrays, and
    conservative (True when unsure) for any others: NumPy may give up on hard stride patterns
    (``TooHardError``), and then cydrop treats the arrays as overlapping."""
    if a.size == 0 or b.size == 0:
        return False
    if a.flags.c_contiguous and b.flags.c_contiguous:
        a0 = a.__array_interface__["data"][0]
        b0 = b.__array_interface__["data"][0]
        return a0 < b0 + b.nbytes and b0 < a0 + a.nbytes
    try:
        return bool(np.shares_memory(a, b, max_work=10**6))
    except np.exceptions.TooHardError:      # NumPy gave up: decide conservatively
        return True


def same_buffer(a, b):
    """Whether two arrays view exactly the same elements in the same layout (two C-contiguous
    arrays of one shape are the same layout whatever the strides of their length-1 axes)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.dtype == b.dtype
            and (a.strides == b.strides or (a.flags.c_contiguous and b.flags.c_contiguous)))


def check_out(out, like, name="out"):
    """Validate a caller's output array against ``like``, as NumPy's ``check_output`` does.

    Returns ``out`` itself. ``out`` may be ``like`` itself (in-place) but must not otherwise
    overlap it.
    """
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != like.shape:
        raise ValueError(f"{name} must have shape {like.shape}, got {out.shape}")
    if out.dtype != like.dtype:
        raise TypeError(f"{name} must have dtype {like.dtype}, got {out.dtype}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(
            f"{name} must be C-contiguous, writable memory; got "
            f"c_contiguous={out.flags.c_contiguous}, writeable={out.flags.writeable}")
    if not same_buffer(out, like) and bytes_overlap(out, like):
        raise ValueError(
            f"{name} overlaps the input without being the same array; pass the input itself "
            f"(in-place) or a separate array")
    return out


def check_no_overlap(out, reads, name="out"):
    """Refuse ``out`` when it shares memory with any buffer the kernel reads besides the
    element-wise input (a stored mask, say). ``reads`` are (name, array or None) pairs."""
    for what, other in reads:
        if isinstance(other, np.ndarray) and bytes_overlap(out, other):
            raise ValueError(f"{name} overlaps {what}, which the call reads; pass a separate "
                             f"array")


def check_mask_out(mask_out, mask, x, others):
    """Validate a caller's buffer for the stored mask of ``dropout(x, mask=mask)``.

    ``others`` are (name, array or None) pairs it must not overlap. Returns ``mask_out``.
    """
    if mask not in ("bits", "bytes"):
        raise ValueError(f"mask_out is only used with mask='bits' or mask='bytes', "
                         f"got mask={mask!r}")
    if not isinstance(mask_out, np.ndarray):
        raise TypeError(f"mask_out must be a numpy.ndarray, got {type(mask_out).__name__}")
    if mask_out.dtype != np.uint8:
        raise TypeError(f"mask_out must have dtype uint8, got {mask_out.dtype}")
    shape = ((x.size + 7) // 8,) if mask == "bits" else x.shape
    if mask_out.shape != shape:
        raise ValueError(f"mask_out must have shape {shape} for mask={mask!r} and x of shape "
                         f"{x.shape}, got {mask_out.shape}")
    if not (mask_out.flags.c_contiguous and mask_out.flags.writeable):
        raise ValueError(
            f"mask_out must be C-contiguous and writable; got "
            f"c_contiguous={mask_out.flags.c_contiguous}, writeable={mask_out.flags.writeable}")
    for name, other in others:
        if isinstance(other, np.ndarray) and bytes_overlap(mask_out, other):
            raise ValueError(f"mask_out overlaps {name}; pass a separate array")
    return mask_out


def check_dout(dout, shape, dtype, name="dout", of="forward input"):
    """``dout`` as a native float array of the forward call's ``shape`` and ``dtype``: a wrong
    shape is a ValueError, a wrong dtype a TypeError, both naming ``name`` and what they must
    match (``of``: "forward input" or "forward output"). A 16-bit ``dout`` is read, so that a
    forward of another dtype reports the mismatch."""
    dout = as_float_array(dout, name, half=True)
    if dout.shape != tuple(shape):
        raise ValueError(f"{name} must have the {of}'s shape {tuple(shape)}, got {dout.shape}")
    if dout.dtype != dtype:
        raise TypeError(f"{name} must have the {of}'s dtype {dtype}, got {dout.dtype}")
    return dout


def check_bool(value, name):
    """Return ``value`` if it is a bool (NumPy's included), else raise TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_short(value)}")
    return bool(value)


# ---------------------------------------------------------------- helpers for the adapters

_C_INT_MAX = 2**31 - 1


def check_n_threads(n_threads, name="n_threads"):
    """``None``, or ``n_threads`` as a Python int; refuses what :func:`cydrop.effective_n_threads`
    refuses (a bool or a non-int is a TypeError, 0 a ValueError) without resolving it.

    Any other int is accepted. It is clamped into ``[-(2**31 - 1), 2**31 - 1]``, which never
    changes its meaning (a count is capped at the usable cores when a kernel runs, and ``-k``
    means "all but k - 1", at least 1) but lets it cross a C ``int`` or travel in a task graph.
    Unlike :func:`cydrop.effective_n_threads` this has no side effect, so a layer or an adapter
    can check its argument when it is built.
    """
    if n_threads is None:
        return None
    if isinstance(n_threads, (bool, np.bool_)) or not hasattr(n_threads, "__index__"):
        raise TypeError(f"{name} must be an int or None, got {_short(n_threads)}")
    try:
        value = operator.index(n_threads)
    except TypeError:
        raise TypeError(f"{name} must be an int or None, got {_short(n_threads)}") from None
    if value == 0:
        raise ValueError(f"{name} must be a nonzero int or None, got 0")
    return max(-_C_INT_MAX, min(_C_INT_MAX, int(value)))


def check_real(value, name, *, low=None, low_inclusive=True, high=None, high_inclusive=True):
    """Return ``value`` as a finite float within the given bounds, or raise naming ``name``.

    A bool or a non-number is a TypeError; a number outside the bounds, NaN, an infinity, or one
    too large for a float (``10**400``, ``Fraction(10**400, 3)``) a ValueError.
    """
    lo = "" if low is None else f"{low} {'<=' if low_inclusive else '<'} "
    hi = "" if high is None else f" {'<=' if high_inclusive else '<'} {high}"
    rule = f"{lo}{name}{hi}" if (lo or hi) else f"{name} finite"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number with {rule}, got {_short(value)} of "
                            f"type {type(value).__name__}")
    try:
        as_float = float(value)
    except OverflowError:
        raise ValueError(f"{name} must satisfy {rule}, got {_short(value)}, which is too "
                         f"large for a float") from None
    ok = math.isfinite(as_float)
    if ok and low is not None:
        ok = as_float >= low if low_inclusive else as_float > low
    if ok and high is not None:
        ok = as_float <= high if high_inclusive else as_float < high
    if not ok:
        raise ValueError(f"{name} must satisfy {rule}, got {_short(value)}")
    return as_float


def check_native_float_dtype(dtype, name, *, half=False):
    """Return ``dtype`` (a NumPy dtype, or what ``np.dtype`` accepts, None refused) if it is native
    float32 or float64 (with ``half``, native float16 or bfloat16 too), else raise TypeError
    naming ``name``."""
    if dtype is None:
        raise TypeError(f"{name} must be float32 or float64, got None")
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be float32 or float64, got {_short(dtype)}") from None
    if half and half_format(dtype) is not None and dtype.isnative:
        return dtype
    if dtype not in FLOAT_DTYPES or not dtype.isnative or dtype.fields is not None:
        raise TypeError(f"{name} must be native float32 or float64, got {dtype}")
    return dtype


def check_dims(shape, name):
    """Return ``shape`` (a tuple of non-negative ints, bools refused) with its size, refusing
    sizes no array can have (``size >= 2**63``). Raises naming ``name``."""
    if not isinstance(shape, tuple):
        raise TypeError(f"{name} must be a tuple of ints, got {_short(shape)}")
    dims = tuple(check_uint64(d, name) for d in shape)
    size = math.prod(dims)
    if size >= 2**63 or any(d >= 2**63 for d in dims):
        raise ValueError(f"{name} must describe fewer than 2**63 elements, got {dims}")
    return dims, size


def check_mask_array(mask, shape, name, *, binary=True):
    """A stored uint8 mask, validated: exactly a ``numpy.ndarray`` (not a subclass, not a list)
    of dtype uint8 and shape ``shape``, holding only 0 and 1 when ``binary``. Returns a
    C-contiguous array with its values (``mask`` itself if it already is one)."""
    if type(mask) is not np.ndarray:
        raise TypeError(f"{name} must be a numpy.ndarray of uint8, got {type(mask).__name__}")
    if mask.dtype != np.uint8 or mask.shape != tuple(shape):
        raise ValueError(f"{name} must be uint8 of shape {tuple(shape)}, got {mask.dtype} of "
                         f"shape {mask.shape}")
    if not mask.flags.c_contiguous:
        mask = np.ascontiguousarray(mask)
    if binary and mask.size and mask.max() > 1:
        raise ValueError(f"{name} must hold only 0/1 bytes (a keep mask), got the value "
                         f"{int(mask.max())}")
    return mask

