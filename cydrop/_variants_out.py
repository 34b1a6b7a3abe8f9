"""``out=`` / ``inplace=`` for the variants: the core's rules (:func:`cydrop.dropout`), through
the :mod:`cydrop._common` steps, plus the variant kernels run into a given destination.

A variant forward (or backward) call validates its arguments, then :func:`inplace_flag`, then
either :func:`identity` (nothing dropped) or :func:`target` -> kernel into ``dst`` ->
:func:`result`. Every check runs before a kernel writes, so nothing is written on error.
"""

import numpy as np

from cydrop import _common, _validation
from cydrop import _variants as _v

__all__ = ["bcast_into", "identity", "inplace_flag", "kernel_into", "result", "target"]


def inplace_flag(given, converted, out, inplace, name):
    """``inplace`` validated as a bool; an in-place call must write into the caller's ``given``
    array (``converted`` is its validated form) and ``out`` must be None or ``given`` itself."""
    inplace = _validation.check_bool(inplace, "inplace")
    if inplace:
        _common.check_inplace_target(given, converted, name, out)
    return inplace


def identity(given, converted, out, inplace, name):
    """An identity call's result (``training=False``, ``rate == 0``), honouring ``out`` and
    ``inplace`` as :func:`cydrop.dropout` does: the same checks as a real call, then
    ``given`` (in place), ``out`` filled with the input, or the input itself."""
    if inplace:
        _common.prepare_output(converted, out, inplace, name, "out")
    elif out is not None:
        _validation.check_out(out, converted)
    return _common.identity_result(given if inplace else converted, out, inplace)


def target(given, converted, out, inplace, name, reads=()):
    """``(src, dst, writeback)`` of :func:`cydrop._common.prepare_output`; a converted copy's
    original (a non-native byte order ndarray, say) counts as a read buffer ``out`` must not
    overlap, as in the core."""
    reads = list(reads)
    if isinstance(given, np.ndarray) and given is not converted and not inplace:
        reads.append((name, given))
    return _common.prepare_output(converted, out, inplace, name, "out", reads)


def result(given, out, inplace, dst, writeback):
    """What the call returns: ``given`` in place, ``out`` as is when given, else the new array."""
    dst = _common.finish(dst, writeback)
    return given if inplace else (dst if out is None else out)


def kernel_into(kernel, src, dst, *args):
    """``kernel(src, dst, *args)`` over the flat elements (an element-wise variant kernel; ``dst``
    may be ``src``)."""
    kernel(_common.flat(src), _common.flat(dst), *args)
    return dst


def bcast_into(src, dst, keep, cshape, mstride, scale, threads):
    """The broadcast kernel of :func:`cydrop._common.broadcast`, writing into ``dst`` (which may
    be ``src``); 16-bit data as there."""
    fmt = _validation.half_format(src.dtype)
    if fmt is None:
        _v.bcast(_common.flat(src), _common.flat(dst), _common.flat(keep), cshape, mstride,
                 scale, threads)
    else:
        _v.bcast_half(_common.flat(src).view(np.uint16), _common.flat(dst).view(np.uint16),
                      _common.flat(keep), cshape, mstride, scale, threads, fmt == "bf16")
    return dst
