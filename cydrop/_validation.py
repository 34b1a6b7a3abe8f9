"""Checks at the Python boundary: every message names the argument, the rule and the value."""

import math
import numbers
import operator

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
UINT64_MAX = 2**64 - 1
MASK_MODES = ("recompute", "bits", "bytes")


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_probability(value, name="rate"):
    """Return ``value`` as a float in [0, 1], or raise naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind == "f":
            value = value.item()
        else:
            raise TypeError(
                f"{name} must be a real number with 0 <= {name} <= 1, got {_short(value)} "
                f"of type {type(value).__name__}")
    try:
        as_float = float(value)
    except OverflowError:       # 10**400, Fraction(10**400, 3): far outside [0, 1] anyway
        raise ValueError(f"{name} must satisfy 0 <= {name} <= 1, got {_short(value)}") from None
    if math.isnan(as_float) or not 0.0 <= as_float <= 1.0:
        raise ValueError(f"{name} must satisfy 0 <= {name} <= 1, got {as_float!r}")
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
    if offset + size > UINT64_MAX + 1:
        raise ValueError(
            f"{name} + size must be <= 2**64 (element indices are 64-bit), got {name}={offset} "
            f"with size={size}")
    return offset


def check_mask_mode(mask):
    """Return ``mask`` if it is one of 'recompute', 'bits', 'bytes'."""
    if not isinstance(mask, str) or mask not in MASK_MODES:
        raise ValueError(f"mask must be one of {MASK_MODES}, got {_short(mask)}")
    return mask


def check_float_dtype(dtype, name):
    """Raise TypeError unless ``dtype`` is float32 or float64 (any byte order)."""
    dtype = np.dtype(dtype)
    if dtype.fields is not None or dtype.kind != "f" or dtype.itemsize not in (4, 8):
        hint = " (cast with .astype(np.float32) first)" if dtype == np.float16 else ""
        raise TypeError(
            f"{name} has dtype {dtype}; only float32 and float64 are supported{hint}")


def as_ndarray(x, name="x"):
    """``x`` as a base-class ndarray: subclasses (``np.matrix``, memmap, ...) become a view of
    their data, so results are plain ndarrays; masked arrays are refused, since viewing one would
    silently drop its mask."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{name} must not be a masked array (its mask would be ignored); pass "
                        f"{name}.filled(value) or {name}.data")
    return np.asarray(x)


def as_float_array(x, name="x"):
    """Return ``x`` as an ndarray of native float32 or float64, without copying when possible.

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
    check_float_dtype(x.dtype, name)
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
    except Exception:           # numpy.exceptions.TooHardError: decide conservatively
        return True


def same_buffer(a, b):
    """Whether two arrays view exactly the same elements in the same layout."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


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


def check_bool(value, name):
    """Return ``value`` if it is a bool (NumPy's included), else raise TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_short(value)}")
    return bool(value)
