"""``out=`` / ``inplace=`` for the variants: the core's rules (:func:`cydrop.dropout`), through
the :mod:`cydrop._common` steps, plus the variant kernels run into a given destination.

A variant forward (or backward) call validates its arguments, then :func:`inplace_flag`, then
either :func:`identity` (nothing dropped) or :func:`target` -> kernel into ``dst`` ->
:func:`result`. Every check runs before a kernel writes, so nothing is written on error.
:func:`forward` and :func:`backward` are that path, once: an op gives its own checks and kernel.
"""

import numpy as np

from cydrop import _common, _validation
from cydrop import _variants as _v
from cydrop._cache import VariantCache
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed

__all__ = ["backward", "bcast_into", "elementwise_plan", "forward", "identity", "inplace_flag",
           "kernel_into", "result", "target"]


def forward(kind, plan, run, x, rate, training, seed, offset, out, inplace, n_threads, *,
            rate_check=None, half=False):
    """One variant forward call with ``out=`` / ``inplace=``; returns ``(out, cache)``.

    The shared arguments are validated (:func:`cydrop._common.op_args`, then
    :func:`inplace_flag`), then ``plan(x, rate, offset)`` runs the op's own checks on the
    validated ``x`` and ``rate`` and returns ``(offset, params)``: the checked offset, and
    ``params`` a tuple, or None when the call drops nothing. ``training=False`` or no params is
    an identity call (:func:`identity`, an 'identity' cache). Otherwise the seed is resolved
    and ``run(src, dst, rate, seed, offset, threads, *params)`` writes the result into ``dst``
    and returns the cache's stored mask (or None); the cache is of ``kind``.
    """
    given = x
    x, rate, training, seed, threads = _common.op_args(x, rate, training, seed, n_threads,
                                                       rate_check=rate_check, half=half)
    inplace = inplace_flag(given, x, out, inplace, "x")
    offset, params = plan(x, rate, offset)
    if not training or params is None:
        return identity(given, x, out, inplace, "x"), _common.variant_identity(x)[1]
    src, dst, writeback = target(given, x, out, inplace, "x")
    seed = resolve_seed(seed)
    keep = run(src, dst, rate, seed, offset, threads, *params)
    return (result(given, out, inplace, dst, writeback),
            VariantCache(kind, rate, seed, offset, x.shape, x.dtype, keep))


def elementwise_plan(per):
    """The :func:`forward` ``plan`` of an op with one mask element per element of ``x``, each
    reading ``per`` draws: the offset checked for ``x.size`` elements, identity at ``rate == 0``."""
    def plan(x, rate, offset):
        return _validation.check_offset_units(offset, x.size, per), (None if rate == 0.0 else ())
    return plan


def backward(fn, kind, run, dout, cache, out, inplace, n_threads):
    """One variant backward call with ``out=`` / ``inplace=``; returns ``dx``.

    ``cache`` must come from ``cydrop.variants.<fn>`` and be of ``kind`` (or 'identity', which
    passes ``dout`` through as :func:`identity`); ``out`` must not overlap the cache's stored
    mask. ``run(src, dst, st, threads)`` writes the gradient into ``dst`` from the cache's
    validated state ``st``.
    """
    given = dout
    st, dout = _common.variant_backward_state(cache, fn, (kind, "identity"), dout)
    inplace = inplace_flag(given, dout, out, inplace, "dout")
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        return identity(given, dout, out, inplace, "dout")
    src, dst, writeback = target(given, dout, out, inplace, "dout",
                                 [("the cache's mask", st.keep)])
    run(src, dst, st, threads)
    return result(given, out, inplace, dst, writeback)


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
