"""cydrop's dropout API: validation and allocation here, then the kernels with the GIL released.

Two faces over one implementation:

* :func:`dropout` / :func:`dropout_backward` speak of ``rate``, the probability of DROPPING an
  element (PyTorch's and Keras's meaning).
* :func:`dropout_forward` / :func:`dropout_backward` are a drop-in for CS231n assignment 2, where
  ``dropout_param['p']`` is the probability of KEEPING an element. It is converted to ``rate``
  once, here, and never stored under the name ``p`` again.

:func:`dropout_forward` is also the one place of the core that reads NumPy's global random state:
an unseeded train-mode call draws its seed from it (see docs/courses.md, "Randomness at the
course boundary"); :func:`dropout` never does.
"""

import numpy as np

from cydrop import _contract, _kernels, _validation
from cydrop._kernels import DropoutCache, make_cache, with_dropout_param
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed

__all__ = ["DropoutCache", "dropout", "dropout_backward", "dropout_forward", "dropout_mask"]

_CS231N_KEYS = ("mode", "p", "seed", "offset", "mask", "n_threads")
_CS231N_MODES = ("train", "test")


def _flat(a):
    """A 1-D view of a C-contiguous array (any shape, 0-d included)."""
    return a.reshape(-1)


def _prepare_output(x, out, inplace, x_name, out_name, reads=()):
    """Decide where the result goes. Returns (src, dst, writeback).

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
    if out is None:
        return src, np.empty(x.shape, dtype=x.dtype), None
    _validation.check_out(out, x, out_name)
    _validation.check_no_overlap(out, reads, out_name)
    if out.flags.aligned:
        return src, out, None
    return src, np.empty(x.shape, dtype=x.dtype), out


def _check_inplace_target(given, converted, name, out=None):
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


def _identity(x, out, inplace):
    """The identity call's result: ``x`` for an in-place call (the caller's array, as passed),
    else ``out`` (filled with ``x`` unless it is ``x``'s memory) when given, as is, else ``x``."""
    if out is None or inplace:
        return x
    if not _validation.same_buffer(out, x):
        np.copyto(out, x)
    return out


def dropout(x, rate=0.5, *, training=True, seed=None, offset=0, out=None, inplace=False,
            mask="recompute", mask_out=None, n_threads=None):
    """Inverted dropout: zero each element with probability ``rate``, scale the rest.

    Parameters
    ----------
    x : array_like of float32 or float64, any shape
        Input. Its dtype is kept; other dtypes raise TypeError.
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
        on a read-only array.

    See Also
    --------
    dropout_backward : the gradient.
    dropout_forward : the CS231n form, where ``p`` is the KEEP probability.
    SeedStream : reproducible (seed, offset) pairs for successive calls.

    Notes
    -----
    An element is kept when 16 bits of a counter-based xoshiro256++ stream fall below
    ``round((1 - rate) * 65536)``; see ``cydrop.reference`` for the exact mapping. The mask is
    identical for any ``n_threads``, chunking, build (serial or OpenMP) and ISA variant.

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
    if training is True and (inplace is False or (inplace is True and out is None)):
        # valid common calls are recognised and run in C; anything else is validated below
        done = _kernels.fast_forward(x, rate, seed, offset, x if inplace is True else out,
                                     mask, n_threads, mask_out)
        if done is not None:
            return done
    x_in = x
    x = _validation.as_float_array(x, "x")
    rate = _validation.check_probability(rate, "rate")
    training = _validation.check_bool(training, "training")
    inplace = _validation.check_bool(inplace, "inplace")
    if inplace:
        _check_inplace_target(x_in, x, "x", out)
    mask = _validation.check_mask_mode(mask)
    seed = None if seed is None else _validation.check_uint64(seed, "seed")
    offset = _validation.check_offset(offset, x.size)
    threads = effective_n_threads(n_threads)
    if mask_out is not None:
        _validation.check_mask_out(mask_out, mask, x, [("x", x_in), ("x", x), ("out", out)])
    if not training or rate == 0.0:
        if inplace:
            _prepare_output(x, out, inplace, "x", "out")   # same checks as a real call
        elif out is not None:
            _validation.check_out(out, x)
        result = _identity(x_in if inplace else x, out, inplace)
        return result, make_cache(0.0, None, None, 65536, 1.0, x.shape, x.dtype, "identity",
                                  None)
    original = ([("x", x_in)] if isinstance(x_in, np.ndarray) and x_in is not x and not inplace
                else [])
    src, dst, writeback = _prepare_output(x, out, inplace, "x", "out", original)
    seed = resolve_seed(seed)
    thr, scale = _contract.threshold_and_scale(rate)
    bits = bytes_ = stored = None
    if mask == "bits":
        bits = np.empty((x.size + 7) // 8, dtype=np.uint8) if mask_out is None else mask_out
        stored = bits.view()
    elif mask == "bytes":
        bytes_ = np.empty(x.size, dtype=np.uint8) if mask_out is None else mask_out.reshape(-1)
        stored = bytes_.reshape(x.shape)
    _kernels.forward(_flat(src), _flat(dst), seed, offset, thr, scale, bits, bytes_, threads)
    if writeback is not None:
        np.copyto(writeback, dst)
        dst = writeback
    if stored is not None:
        stored.flags.writeable = False
    # in place: the caller's x, as passed; out=: returned as is
    result = x_in if inplace else (dst if out is None else out)
    return result, make_cache(rate, seed, offset, thr, scale, x.shape, x.dtype, mask, stored)


def dropout_backward(dout, cache, *, out=None, inplace=False, n_threads=None):
    """Gradient of dropout: ``dout`` masked and scaled exactly as the forward input was.

    Parameters
    ----------
    dout : ndarray of float32 or float64
        Upstream gradient, same shape and dtype as the forward input.
    cache : DropoutCache
        From :func:`dropout` or :func:`dropout_forward`.
    out : ndarray or None, default=None
        Where to put ``dx`` (same rules as in :func:`dropout`).
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
    if not isinstance(cache, DropoutCache):
        raise TypeError(
            f"cache must be the DropoutCache returned by cydrop.dropout or "
            f"cydrop.dropout_forward, got {type(cache).__name__}")
    dout_in = dout
    dout = _validation.as_float_array(dout, "dout")
    if dout.shape != cache.shape:
        raise ValueError(
            f"dout must have the forward input's shape {cache.shape}, got {dout.shape}")
    if dout.dtype != cache.dtype:
        raise TypeError(
            f"dout must have the forward input's dtype {cache.dtype}, got {dout.dtype}")
    inplace = _validation.check_bool(inplace, "inplace")
    if inplace:
        _check_inplace_target(dout_in, dout, "dout", out)
    threads = effective_n_threads(n_threads)
    if cache.mask_mode == "identity":
        if inplace:
            _prepare_output(dout, out, inplace, "dout", "out")
        elif out is not None:
            _validation.check_out(out, dout)
        return _identity(dout_in if inplace else dout, out, inplace)
    stored = cache.stored_mask if cache.mask_mode in ("bits", "bytes") else None
    reads = [("the cache's stored mask", stored)]
    if isinstance(dout_in, np.ndarray) and dout_in is not dout and not inplace:
        reads.append(("dout", dout_in))
    src, dst, writeback = _prepare_output(dout, out, inplace, "dout", "out", reads)
    if cache.mask_mode == "recompute":
        _kernels.forward(_flat(src), _flat(dst), cache.seed, cache.offset, cache.threshold,
                         cache.scale, None, None, threads)
    else:
        mask = cache.stored_mask
        need = (dout.size + 7) // 8 if cache.mask_mode == "bits" else dout.size
        if (not isinstance(mask, np.ndarray) or mask.dtype != np.uint8
                or not mask.flags.c_contiguous or mask.size != need):
            raise ValueError(
                f"cache's stored {cache.mask_mode} mask was changed after the forward call: "
                f"a {cache.shape} mask needs {need} contiguous uint8 bytes, got "
                f"{getattr(mask, 'size', None)} of dtype {getattr(mask, 'dtype', None)}")
        _kernels.backward(_flat(src), _flat(dst), _flat(mask),
                          cache.mask_mode == "bits", cache.scale, threads)
    if writeback is not None:
        np.copyto(writeback, dst)
        dst = writeback
    return dout_in if inplace else (dst if out is None else out)  # out= is returned as is


def dropout_mask(shape, rate=0.5, *, seed, offset=0, n_threads=None):
    """The keep mask :func:`dropout` uses for an array of ``shape``: uint8, 1 = kept.

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
    offset = _validation.check_offset(offset, size)
    threads = effective_n_threads(n_threads)
    thr, _ = _contract.threshold_and_scale(rate)
    out = np.empty(size, dtype=np.uint8)
    _kernels.mask(size, seed, offset, thr, None, out, threads)
    return out.reshape(shape)


def _split_cs231n_param(dropout_param):
    if not isinstance(dropout_param, dict):
        raise TypeError(f"dropout_param must be a dict, got {type(dropout_param).__name__}")
    unknown = sorted(set(dropout_param) - set(_CS231N_KEYS), key=str)
    if unknown:
        raise ValueError(f"dropout_param has unknown keys {unknown}; allowed keys are "
                         f"{list(_CS231N_KEYS)}")
    if "mode" not in dropout_param:
        raise ValueError("dropout_param must have a 'mode' key, 'train' or 'test'")
    mode = dropout_param["mode"]
    if not isinstance(mode, str) or mode not in _CS231N_MODES:
        raise ValueError(f"Invalid forward dropout mode {mode!r}; dropout_param['mode'] must "
                         f"be 'train' or 'test'")
    if mode == "train" and "p" not in dropout_param:
        raise ValueError("dropout_param must have a 'p' key (the KEEP probability) in "
                         "train mode")
    keep = (_validation.check_probability(dropout_param["p"], "dropout_param['p']")
            if "p" in dropout_param else 1.0)
    return mode, keep


def seed_from_numpy_global():
    """One 64-bit cydrop seed drawn from NumPy's global ``RandomState`` (``np.random``).

    The course boundary (:func:`dropout_forward` and :mod:`cydrop.compat`) uses this for calls
    without a seed, so ``np.random.seed(s)`` makes a course's run repeat. Exactly one draw
    (``np.random.randint`` over all of uint64); the global state is advanced, never reseeded.

    Returns
    -------
    seed : int
        ``0 <= seed < 2**64``.
    """
    return int(np.random.randint(0, 2**64, dtype=np.uint64))


def dropout_forward(x, dropout_param):
    """Forward pass for inverted dropout, in the form of CS231n assignment 2.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape
    dropout_param : dict
        - ``'mode'``: ``'train'`` or ``'test'``. In test mode ``x`` is returned unchanged.
        - ``'p'``: the probability of KEEPING each neuron output (required in train mode).
        - ``'seed'`` (optional): fixes the mask; the same seed gives the same mask, which the
          assignment's numerical gradient check relies on. Without it (or with None), a
          train-mode call draws its seed from NumPy's global random state, one draw, as the
          assignment's ``np.random.rand`` mask does, so ``np.random.seed`` makes runs repeat.
          Unlike the assignment, a given seed never reseeds NumPy's global state.
        - cydrop extensions (optional): ``'offset'``, ``'mask'`` and ``'n_threads'`` as in
          :func:`dropout`.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : DropoutCache
        For :func:`dropout_backward`. It unpacks as the assignment's cache does:
        ``dropout_param, mask = cache`` gives this very ``dropout_param`` and the mask (0 or
        ``1 / keep``, ``x``'s shape and dtype; None in test mode), built only when unpacked.

    Raises
    ------
    TypeError, ValueError
        Unknown keys or modes, ``p`` outside [0, 1], and everything :func:`dropout` rejects.

    Notes
    -----
    Here, and only here, ``p`` is a KEEP probability, because that is the assignment's contract.
    It is converted once into cydrop's drop ``rate = 1 - p``.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.random.default_rng(231).standard_normal((500, 500)) + 10
    >>> out, cache = cydrop.dropout_forward(x, {'mode': 'train', 'p': 0.7, 'seed': 1})
    >>> bool(abs(out.mean() - 10) < 0.05), bool(abs((out == 0).mean() - 0.3) < 0.005)
    (True, True)
    """
    mode, keep = _split_cs231n_param(dropout_param)
    seed = dropout_param.get("seed")
    if seed is None and mode == "train":
        x = _validation.as_float_array(x, "x")      # refuse bad input before drawing
        seed = seed_from_numpy_global()
    out, cache = dropout(x, 1.0 - keep, training=(mode == "train"), seed=seed,
                         offset=dropout_param.get("offset", 0),
                         mask=dropout_param.get("mask", "recompute"),
                         n_threads=dropout_param.get("n_threads"))
    return out, with_dropout_param(cache, dropout_param)
