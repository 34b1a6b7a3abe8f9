"""cydrop's dropout API: validation and allocation here, then the kernels with the GIL released.

:func:`dropout` / :func:`dropout_backward` speak of ``rate``, the probability of DROPPING an
element (PyTorch's and Keras's meaning). Valid common calls are recognised and run in C
(``_kernels.fast_forward`` / ``fast_backward``); every other call takes the op path of
:mod:`cydrop._common`. The CS231n form, whose ``p`` is a KEEP probability, is
:mod:`cydrop._cs231n`.
"""

import numpy as np

from cydrop import _cache, _common, _contract, _kernels, _shard, _validation
from cydrop._kernels import DropoutCache, make_cache
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed

__all__ = ["DropoutCache", "dropout", "dropout_backward", "dropout_mask"]


def dropout(x, rate=0.5, *, training=True, seed=None, offset=0, out=None, inplace=False,
            mask="recompute", mask_out=None, n_threads=None, global_shape=None, start=None):
    """Inverted dropout: zero each element with probability ``rate``, scale the rest.

    Parameters
    ----------
    x : array_like of float32, float64, float16 or bfloat16, any shape
        Input. Its dtype is kept; other dtypes raise TypeError. float16 and bfloat16
        (``ml_dtypes.bfloat16``) are computed in float32: a kept element is
        ``dtype(float32(x) * scale)`` with the float32 scale, rounded to nearest even (a NaN
        stays NaN, inf stays inf, overflow gives inf), with the same keep decisions as float32.
    rate : float, default=0.5
        Probability of DROPPING an element, ``0 <= rate <= 1``. Kept elements are multiplied
        by ``1 / keep``, where ``keep`` is the realised keep probability (within 2**-16 of
        ``1 - rate``), so the expected output equals the input.
    training : bool, default=True
        ``False`` returns ``x`` unchanged (inference), as does ``rate == 0``.
    seed : int or None, default=None
        ``0 <= seed < 2**64``. The mask is a pure function of (seed, offset + element index in
        C order). ``None`` draws a fresh seed from the OS (it is kept in the cache).
    offset : int, default=0
        Global index of ``x``'s first element: ``dropout(x[a:b], offset=a)`` equals
        ``dropout(x)[a:b]`` for the same seed.
    out : ndarray or None, default=None
        Where to put the result: C-contiguous, writable, same shape and dtype as ``x``, not
        overlapping it (unless it is ``x``). Returned as is.
    inplace : bool, default=False
        Write the result into ``x`` (which must be a writable ndarray).
    mask : {'recompute', 'bits', 'bytes'}, default='recompute'
        What the cache keeps for backward: nothing (the mask is regenerated from the seed),
        the mask packed 1 bit per element, or a uint8 0/1 array. All give identical gradients.
    mask_out : ndarray of uint8 or None, default=None
        Where to put the stored mask instead of a new array (``mask='bits'`` or ``'bytes'``
        only): shape ``((x.size + 7) // 8,)`` for bits, ``x.shape`` for bytes, C-contiguous,
        writable, not overlapping ``x`` or ``out``. A training loop can pass the same buffer
        every step and skip allocating (and page-faulting) a fresh mask. The cache keeps a
        read-only view of it, so writing to ``mask_out`` before :func:`dropout_backward`
        changes that gradient.
    n_threads : int or None, default=None
        Threads to use; see :func:`cydrop.effective_n_threads`. Never changes the result.
    global_shape, start : tuple of int or None, default=None
        Sharded masks: ``x`` is the block of a global array of shape ``global_shape`` whose
        first element is the global element at multi-index ``start``, and ``x[i]`` gets the bits
        of global element ``start + i`` (C-order index ``ravel_multi_index(start + i,
        global_shape)``, plus ``offset``). Given together, with one entry per axis of ``x`` and
        ``start + x.shape <= global_shape``. Blocks of one global array called with one seed
        reproduce ``dropout`` of the whole array bit for bit; see :doc:`/sharding`.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
        ``x * scale`` where kept, ``+0.0`` where dropped (even where ``x`` is NaN or inf: a
        select, not a multiply). For an identity call (``training=False`` or ``rate == 0``),
        ``x`` itself, or ``out`` filled with a copy of it.
    cache : DropoutCache
        Pass to :func:`dropout_backward`.

    Raises
    ------
    TypeError
        Non-float input, wrong argument types, ``out`` of another dtype.
    ValueError
        ``rate`` outside [0, 1] or NaN, bad ``seed``/``offset``/``mask``, bad ``out``, in-place
        on a read-only array, a block outside ``global_shape``.

    See Also
    --------
    dropout_backward : the gradient.
    dropout_forward : the CS231n form, where ``p`` is the KEEP probability.
    SeedStream : reproducible (seed, offset) pairs for successive calls.

    Notes
    -----
    An element is kept when 16 bits of a counter-based xoshiro256++ stream fall below
    ``round((1 - rate) * 65536)``; see ``cydrop.reference`` for the exact mapping. The mask is
    identical for any ``n_threads``, chunking, build (serial or OpenMP) and ISA.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.ones((2, 4), dtype=np.float32)
    >>> y, cache = cydrop.dropout(x, 0.5, seed=0)
    >>> y.dtype, sorted(set(y.ravel().tolist()) - {0.0, 2.0})
    (dtype('float32'), [])
    >>> dx = cydrop.dropout_backward(np.ones_like(x), cache)
    >>> bool((dx == y).all())
    True
    """
    sharded = global_shape is not None or start is not None
    if training is True and not sharded and (inplace is False or (inplace is True and out is None)):
        # valid common calls are recognised and run in C; anything else is validated below
        done = _kernels.fast_forward(x, rate, seed, offset, x if inplace is True else out,
                                     mask, n_threads, mask_out)
        if done is not None:
            return done
    x_in = x
    x = _validation.as_float_array(x, "x", half=True)
    rate = _validation.check_probability(rate, "rate")
    training = _validation.check_bool(training, "training")
    inplace = _validation.check_bool(inplace, "inplace")
    if inplace:
        _common.check_inplace_target(x_in, x, "x", out)
    mask = _validation.check_mask_mode(mask)
    seed = None if seed is None else _validation.check_uint64(seed, "seed")
    block, offset = _shard.block_args(global_shape, start, x.shape, offset)   # None: one run
    threads = effective_n_threads(n_threads)
    if mask_out is not None:
        _validation.check_mask_out(mask_out, mask, x, [("x", x_in), ("x", x), ("out", out)])
    if not training or rate == 0.0:
        if inplace:
            _common.prepare_output(x, out, inplace, "x", "out")   # same checks as a real call
        elif out is not None:
            _validation.check_out(out, x)
        result = _common.identity_result(x_in if inplace else x, out, inplace)
        return result, make_cache(0.0, None, None, _contract.THRESHOLD_ONE, 1.0, x.shape, x.dtype,
                                  "identity", None)
    original = ([("x", x_in)] if isinstance(x_in, np.ndarray) and x_in is not x and not inplace
                else [])
    src, dst, writeback = _common.prepare_output(x, out, inplace, "x", "out", original)
    seed = resolve_seed(seed)
    thr, scale = _contract.threshold_and_scale(rate)
    bits = bytes_ = stored = None
    if mask == "bits":
        bits = np.empty((x.size + 7) // 8, dtype=np.uint8) if mask_out is None else mask_out
        stored = bits.view()
    elif mask == "bytes":
        bytes_ = np.empty(x.size, dtype=np.uint8) if mask_out is None else mask_out.reshape(-1)
        stored = bytes_.reshape(x.shape)
    if block is None:
        _common.run_forward(src, dst, seed, offset, thr, scale, bits, bytes_, threads)
    else:
        block.forward(_common.flat(src), _common.flat(dst), seed, offset, thr, scale, bits,
                      bytes_, threads)
    dst = _common.finish(dst, writeback)
    if stored is not None:
        stored.flags.writeable = False
    # in place: the caller's x, as passed; out=: returned as is
    result = x_in if inplace else (dst if out is None else out)
    new_cache = make_cache if block is None else block.cache
    return result, new_cache(rate, seed, offset, thr, scale, x.shape, x.dtype, mask, stored)


def dropout_backward(dout, cache, *, out=None, inplace=False, n_threads=None):
    """Gradient of dropout: ``dout`` masked and scaled exactly as the forward input was.

    Parameters
    ----------
    dout : ndarray of float32, float64, float16 or bfloat16
        Upstream gradient, same shape and dtype as the forward input (16-bit: kept elements
        are ``dtype(float32(dout) * scale)``, as in :func:`dropout`).
    cache : DropoutCache
        From :func:`~cydrop.dropout` or :func:`~cydrop.dropout_forward` (a sharded call's
        cache knows its block: the mask is regenerated for the same global indices).
    out : ndarray or None, default=None
        Where to put ``dx`` (same rules as in :func:`~cydrop.dropout`).
    inplace : bool, default=False
        Write ``dx`` into ``dout``.
    n_threads : int or None, default=None
        Threads to use; never changes the result.

    Returns
    -------
    dx : ndarray, same shape and dtype as ``dout``
        For an identity forward call, ``dout`` itself (or ``out`` filled with it).

    Raises
    ------
    TypeError
        If ``cache`` did not come from cydrop, or ``dout``'s dtype differs from the forward
        input's.
    ValueError
        If ``dout``'s shape differs from the forward input's, or ``out`` is invalid.
    """
    if inplace is False or (inplace is True and out is None):
        done = _kernels.fast_backward(dout, cache, dout if inplace is True else out, n_threads)
        if done is not None:
            return done
    if isinstance(cache, _shard.ShardCache):
        st = _cache.check_cache(cache, (_shard.ShardCache,), "cydrop.dropout")
    else:
        st = _cache.check_cache(cache, (DropoutCache,), "cydrop.dropout or cydrop.dropout_forward")
    dout_in = dout
    dout = _validation.check_dout(dout, st.shape, st.dtype)
    inplace = _validation.check_bool(inplace, "inplace")
    if inplace:
        _common.check_inplace_target(dout_in, dout, "dout", out)
    threads = effective_n_threads(n_threads)
    if st.kind == "identity":
        if inplace:
            _common.prepare_output(dout, out, inplace, "dout", "out")
        elif out is not None:
            _validation.check_out(out, dout)
        return _common.identity_result(dout_in if inplace else dout, out, inplace)
    stored = st.stored if st.kind in ("bits", "bytes") else None
    reads = [("the cache's stored mask", stored)]
    if isinstance(dout_in, np.ndarray) and dout_in is not dout and not inplace:
        reads.append(("dout", dout_in))
    src, dst, writeback = _common.prepare_output(dout, out, inplace, "dout", "out", reads)
    if st.kind == "recompute":
        if st.block is None:
            _common.run_forward(src, dst, st.seed, st.offset, st.thr, st.scale, None, None,
                                threads)
        else:
            st.block.forward(_common.flat(src), _common.flat(dst), st.seed, st.offset, st.thr,
                             st.scale, None, None, threads)
    else:
        mask = st.stored
        need = (dout.size + 7) // 8 if st.kind == "bits" else dout.size
        if (not isinstance(mask, np.ndarray) or mask.dtype != np.uint8
                or not mask.flags.c_contiguous or mask.size != need):
            raise ValueError(
                f"cache's stored {st.kind} mask was changed after the forward call: "
                f"a {st.shape} mask needs {need} contiguous uint8 bytes, got "
                f"{getattr(mask, 'size', None)} of dtype {getattr(mask, 'dtype', None)}")
        _common.run_backward(src, dst, mask, st.kind == "bits", st.scale, threads)
    dst = _common.finish(dst, writeback)
    return dout_in if inplace else (dst if out is None else out)  # out= is returned as is


def dropout_mask(shape, rate=0.5, *, seed, offset=0, n_threads=None, global_shape=None,
                 start=None):
    """The keep mask :func:`~cydrop.dropout` uses for an array of ``shape``: uint8, 1 = kept.

    Parameters
    ----------
    shape : int or tuple of int
    rate : float, default=0.5
        Drop probability.
    seed : int
        ``0 <= seed < 2**64`` (required: a mask from a fresh seed could not be reproduced).
    offset : int, default=0
        Global index of the first element.
    n_threads : int or None, default=None
    global_shape, start : tuple of int or None, default=None
        The mask of the block of ``shape`` at ``start`` in a global array of ``global_shape``,
        as in :func:`~cydrop.dropout`.

    Returns
    -------
    mask : ndarray of uint8, shape ``shape``

    Examples
    --------
    >>> import cydrop
    >>> m = cydrop.dropout_mask(8, 0.25, seed=1)
    >>> m.dtype, m.shape, bool(set(m.tolist()) <= {0, 1})
    (dtype('uint8'), (8,), True)
    """
    shape = _validation.check_shape(shape)
    rate = _validation.check_probability(rate, "rate")
    seed = _validation.check_uint64(seed, "seed")
    size = int(np.prod(shape, dtype=object))
    block, offset = _shard.block_args(global_shape, start, shape, offset, "shape")
    threads = effective_n_threads(n_threads)
    thr, _ = _contract.threshold_and_scale(rate)
    out = np.empty(size, dtype=np.uint8)
    (_kernels.mask if block is None else block.mask)(size, seed, offset, thr, None, out, threads)
    return out.reshape(shape)
