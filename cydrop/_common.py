"""The one path every op takes: validate -> seed/threads -> allocate or check ``out`` -> kernel
-> typed cache. These are its shared steps; the ops in :mod:`cydrop._core`, :mod:`cydrop.fused`
and :mod:`cydrop.variants` are their docstrings plus calls into here.
"""

import numpy as np

from cydrop import _kernels, _validation
from cydrop import _variants as _v
from cydrop._cache import VariantCache, check_cache
from cydrop._openmp import effective_n_threads

__all__ = ["broadcast", "check_inplace_target", "destination", "elementwise", "finish", "flat",
           "identity_result", "op_args", "prepare_output", "run_backward", "run_forward",
           "variant_backward_state", "variant_identity"]


def flat(a):
    """A 1-D view of a C-contiguous array (any shape, 0-d included)."""
    return a.reshape(-1)


def _bits16(a):
    """The flat uint16 view of a float16/bfloat16 array: how the 16-bit kernels take it."""
    return flat(a).view(np.uint16)


def run_forward(src, dst, seed, offset, thr, scale, bits, bytes_, threads):
    """The core forward kernel for ``src``'s dtype: float32/float64, or a 16-bit format (kept
    ``T(float32(x) * scale)``, rounded to nearest even). ``src``, ``dst``: aligned C-contiguous
    arrays of one dtype; ``bits`` / ``bytes_``: flat uint8 mask outputs or None."""
    fmt = _validation.half_format(src.dtype)
    if fmt is None:
        _kernels.forward(flat(src), flat(dst), seed, offset, thr, scale, bits, bytes_, threads)
    else:
        _kernels.forward_half(_bits16(src), _bits16(dst), seed, offset, thr, scale, bits,
                              bytes_, threads, fmt == "bf16")


def run_backward(src, dst, mask, is_bits, scale, threads):
    """The core backward kernel (from a stored flat uint8 mask) for ``src``'s dtype."""
    fmt = _validation.half_format(src.dtype)
    if fmt is None:
        _kernels.backward(flat(src), flat(dst), flat(mask), is_bits, scale, threads)
    else:
        _kernels.backward_half(_bits16(src), _bits16(dst), flat(mask), is_bits, scale, threads,
                               fmt == "bf16")


def op_args(x, rate, training, seed, n_threads, *, rate_check=None, half=False):
    """The arguments every dropout op shares, validated in one order.

    Returns ``(x, rate, training, seed, threads)``: ``x`` a native float32/float64 ndarray
    (float16/bfloat16 too with ``half``; otherwise they raise :func:`_validation.dtype_error`),
    ``rate`` a float (checked by ``rate_check``, by default a probability in [0, 1]),
    ``training`` a bool, ``seed`` an int in [0, 2**64) or None (drawn later, only if the call
    uses randomness), ``threads`` resolved by :func:`cydrop.effective_n_threads`.
    """
    x = _validation.as_float_array(x, "x", half=half)
    rate = (rate_check or _validation.check_probability)(rate, "rate")
    training = _validation.check_bool(training, "training")
    seed = None if seed is None else _validation.check_uint64(seed, "seed")
    return x, rate, training, seed, effective_n_threads(n_threads)


def destination(out, like, name, reads=()):
    """Where a kernel writes: ``(dst, writeback)``, both plain ndarrays (``writeback`` None or a
    view of ``out`` to copy ``dst`` into afterwards).

    ``out`` (if given) is validated as NumPy validates an output array: it may be ``like`` itself
    but must not otherwise overlap it, nor any of ``reads``, the other buffers the call reads
    ((name, array or None) pairs). An unaligned ``out`` gets an aligned temporary; an ndarray
    subclass is written through its base-class view.
    """
    if out is None:
        return np.empty(like.shape, dtype=like.dtype), None
    _validation.check_out(out, like, name)
    _validation.check_no_overlap(out, reads, name)
    plain = out if type(out) is np.ndarray else out.view(np.ndarray)
    if out.flags.aligned:
        return plain, None
    return np.empty(like.shape, dtype=like.dtype), plain


def prepare_output(x, out, inplace, x_name, out_name, reads=()):
    """Where an element-wise op reads and writes. Returns ``(src, dst, writeback)``.

    ``src`` is an aligned C-contiguous array holding ``x``'s values, ``dst`` the aligned
    C-contiguous array the kernel writes, ``writeback`` the array to copy ``dst`` into afterwards
    (a non-contiguous or unaligned target) or None. ``out`` must not overlap ``x`` (unless it is
    ``x``) nor ``reads``, the other buffers the call reads: (name, array or None) pairs.
    """
    if inplace:
        if out is not None and not isinstance(out, np.ndarray):
            raise TypeError(f"{out_name} must be a numpy.ndarray, got {type(out).__name__}")
        if not isinstance(x, np.ndarray) or not x.flags.writeable:
            raise ValueError(f"inplace=True needs {x_name} to be a writable numpy.ndarray; "
                             f"{x_name} is read-only" if isinstance(x, np.ndarray) else
                             f"inplace=True needs {x_name} to be a writable numpy.ndarray, "
                             f"got {type(x).__name__}")
        if out is not None and not _validation.same_buffer(out, x):
            raise ValueError(f"inplace=True writes into {x_name}; {out_name} must be None or "
                             f"{x_name} itself")
        _validation.check_no_overlap(x, reads, x_name)
        src = _validation.aligned_contiguous(x)
        return src, src, (None if src is x else x)
    src = _validation.aligned_contiguous(x)
    dst, writeback = destination(out, x, out_name, reads)
    return src, dst, writeback


def finish(dst, writeback):
    """Copy the kernel's result into the caller's target if it went to a temporary; returns
    the array holding the result."""
    if writeback is None:
        return dst
    np.copyto(writeback, dst)
    return writeback


def check_inplace_target(given, converted, name, out=None):
    """inplace=True must write into the caller's array: refuse when conversion made a copy
    (a list, or an ndarray of non-native byte order), which would leave ``given`` untouched.
    An ndarray subclass is written through its base-class view. ``out``, if given, must be
    ``given`` itself (the call returns ``given``, so another view would not be returned as is)."""
    if out is not None and out is not given:
        raise ValueError(f"inplace=True writes into {name} and returns it; out must be None or "
                         f"{name} itself, got another {type(out).__name__}")
    if converted is not given and not (isinstance(given, np.ndarray)
                                       and _validation.same_buffer(converted, given)):
        what = (f"an ndarray of dtype {given.dtype.str!r} (non-native byte order)"
                if isinstance(given, np.ndarray) else type(given).__name__)
        raise ValueError(f"inplace=True needs {name} to be a writable numpy.ndarray of native "
                         f"byte order, got {what}")


def identity_result(x, out, inplace):
    """The identity call's result: ``x`` for an in-place call (the caller's array, as passed),
    else ``out`` (filled with ``x`` unless it is ``x``'s memory) when given, as is, else ``x``."""
    if out is None or inplace:
        return x
    if not _validation.same_buffer(out, x):
        np.copyto(out, x)
    return out


def elementwise(kernel, src, *args):
    """``kernel(src, out, *args)`` over the flat elements of ``src`` (read through an aligned
    C-contiguous array) into a new array of its shape and dtype, which is returned."""
    out = np.empty(src.shape, dtype=src.dtype)
    kernel(flat(_validation.aligned_contiguous(src)), flat(out), *args)
    return out


def broadcast(src, keep, cshape, mstride, scale, threads):
    """The variants' broadcast kernel: ``src`` masked by the 0/1 ``keep`` (collapsed geometry
    ``cshape``, ``mstride``) and scaled, into a new array (a 16-bit ``src``: kept elements
    ``T(float32(x) * scale)``, as :func:`run_forward`)."""
    fmt = _validation.half_format(src.dtype)
    if fmt is None:
        return elementwise(_v.bcast, src, flat(keep), cshape, mstride, scale, threads)
    out = np.empty(src.shape, dtype=src.dtype)
    _v.bcast_half(_bits16(_validation.aligned_contiguous(src)), _bits16(out), flat(keep),
                  cshape, mstride, scale, threads, fmt == "bf16")
    return out


def variant_identity(x):
    """A variant's result when nothing is dropped: ``x`` itself and an 'identity' cache."""
    return x, VariantCache("identity", 0.0, None, None, x.shape, x.dtype)


def variant_backward_state(cache, fn, kinds, dout):
    """A variant backward's cache state (validated, of one of ``kinds``) and its ``dout``
    checked against it; ``fn`` names the forward call in messages."""
    st = check_cache(cache, (VariantCache,), f"cydrop.variants.{fn}", kinds)
    return st, _validation.check_dout(dout, st.shape, st.dtype, of="forward output")
