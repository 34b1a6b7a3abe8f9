"""Sharded masks: dropout of one block of a larger ("global") array, with the global array's bits.

cydrop's mask is a pure function of ``(seed, offset + g)``, where ``g`` is an element's index
in the C-order flattening of the WHOLE array. A block of a 2-D or 3-D array (a column block, a
tile) is not one contiguous range of ``g``: it is a set of "runs". If the block spans the full
extent of every axis after axis ``j`` (and ``j`` is the last axis where it does not), each
combination of its indices on axes ``0 .. j-1`` is one contiguous run of
``block.shape[j] * prod(global_shape[j+1:])`` global indices. A block's runs are computed with
NumPy (vectorised, :func:`run_starts`), and then :func:`fill`

* calls the kernel once per run (a Python loop over runs, never over elements), or
* when runs are short and close together, generates the mask of the range that covers them
  with one kernel call, reads the block's bytes out of it through a strided view, and applies
  them with the stored-mask kernel.

A block that is one run (row blocks, or any block contiguous in the global array) is just
``offset + ravel_multi_index(start, global_shape)`` with the ordinary kernel:
:func:`block_args` folds it into the offset, and the call is an ordinary one.

Both :func:`cydrop.dropout` / :func:`cydrop.dropout_mask` (``global_shape=``, ``start=``) and
the dask adapter (one task per chunk) run their blocks here.
"""

import math

import numpy as np

from cydrop import _cache, _common, _contract, _kernels, _validation
from cydrop._openmp import effective_n_threads

__all__ = ["Block", "SHORT_RUN", "ShardCache", "block_args", "check_block", "fill", "run_starts"]

# A block whose runs are at most this long may take the gather path (one mask over the covering
# range, then a strided read) when that range is not much larger than the block.
SHORT_RUN = 256
_short = _validation._short


def run_starts(location, shape):
    """Split a block into runs of consecutive C-order global indices.

    Parameters
    ----------
    location : sequence of (start, stop)
        The block's extent along each axis of the whole array.
    shape : tuple of int
        The whole array's shape.

    Returns
    -------
    starts : ndarray of int64, shape (n_runs,)
        Global C-order index of each run's first element (relative to the array's first
        element), in the block's own C order.
    run_length : int
        Elements per run; ``n_runs * run_length`` is the block's size.

    Examples
    --------
    >>> starts, n = run_starts([(1, 3), (2, 5)], (4, 6))
    >>> starts.tolist(), n
    ([8, 14], 3)
    >>> run_starts([(2, 4), (0, 6)], (4, 6))[0].tolist()   # full rows: one run
    [12]
    """
    ndim = len(shape)
    if ndim == 0:
        return np.zeros(1, dtype=np.int64), 1
    extent = [stop - start for start, stop in location]
    strides = [math.prod(shape[k + 1:]) for k in range(ndim)]
    j = ndim - 1
    while j > 0 and extent[j] == shape[j]:
        j -= 1
    run_length = extent[j] * strides[j]
    rel = np.full((), location[j][0] * strides[j], dtype=np.int64)
    for k in range(j):
        axis = (np.arange(location[k][0], location[k][1], dtype=np.int64) * strides[k])
        rel = np.add.outer(rel, axis) if k else rel + axis
    return np.asarray(rel, dtype=np.int64).reshape(-1), run_length


class Block:
    """Where a block of ``shape`` sits in a C-order global array of ``global_shape``: its first
    element is the global element at multi-index ``start``. Trusted (validated) arguments.

    Attributes
    ----------
    global_shape, start, shape : tuple of int
    size : int
        Elements in the block.
    global_size : int
        Elements in the global array.
    first : int
        Global C-order index of the block's first element (``ravel_multi_index(start, ...)``).
    n_runs, run_length : int
        The block is ``n_runs`` runs of ``run_length`` consecutive global indices.
    span : int
        Length of the global index range that covers the block (0 for an empty block).
    """

    __slots__ = ("global_shape", "start", "shape", "strides", "size", "global_size", "first",
                 "n_runs", "run_length", "span")

    def __init__(self, global_shape, start, shape):
        self.global_shape, self.start, self.shape = tuple(global_shape), tuple(start), tuple(shape)
        ndim = len(self.shape)
        self.strides = tuple(math.prod(self.global_shape[k + 1:]) for k in range(ndim))
        self.size, self.global_size = math.prod(self.shape), math.prod(self.global_shape)
        self.first = sum(s * t for s, t in zip(self.start, self.strides))
        j = ndim - 1
        while j > 0 and self.shape[j] == self.global_shape[j]:
            j -= 1
        self.n_runs = math.prod(self.shape[:j]) if ndim else 1
        self.run_length = self.shape[j] * self.strides[j] if ndim else 1
        last = sum((s + n - 1) * t for s, n, t in zip(self.start, self.shape, self.strides))
        self.span = last + 1 - self.first if self.size else 0

    @property
    def contiguous(self):
        """Whether the block is one range of global indices (then it needs no runs)."""
        return self.n_runs <= 1 or self.size == 0

    def run_starts(self):
        """The runs' first global indices (int64, the block's C order), see :func:`run_starts`."""
        return run_starts([(s, s + n) for s, n in zip(self.start, self.shape)],
                          self.global_shape)[0]

    def gathers(self):
        """Whether :func:`fill` takes the gather path: many short runs close together."""
        return (self.n_runs > 1 and self.run_length <= SHORT_RUN
                and self.span <= max(4 * self.size, 1024 * self.n_runs))

    def read(self, span_mask):
        """The block's bytes out of the mask of its covering range (a strided view of it)."""
        return np.lib.stride_tricks.as_strided(span_mask, shape=self.shape,
                                               strides=self.strides, writeable=False)

    # The op layer's kernels, with the signatures of cydrop._kernels' (1-D C-contiguous buffers,
    # trusted scalars, global indices relative to ``offset``).

    def forward(self, src, dst, seed, offset, thr, scale, bits, bytes_, threads):
        """``_kernels.forward`` over the block: its elements get the bits of their global
        indices. ``bits`` (packed) or ``bytes_`` (0/1) receive the block's mask in its order."""
        keep = bytes_ if bits is None else np.empty(self.size, dtype=np.uint8)
        fill(self, src, dst, keep, scale, threads, _kernel_run(seed, offset, thr, scale, threads),
             _kernel_span(seed, offset, thr, threads))
        if bits is not None:
            bits[...] = np.packbits(keep, bitorder="little")

    def mask(self, n, seed, offset, thr, bits, bytes_, threads):
        """``_kernels.mask`` over the block (``n == size``; 0/1 ``bytes_`` only)."""
        fill(self, None, None, bytes_, 0.0, threads,
             _kernel_run(seed, offset, thr, 0.0, threads), _kernel_span(seed, offset, thr, threads))

    def cache(self, rate, seed, offset, thr, scale, shape, dtype, mask, stored):
        """The forward call's cache (``make_cache``'s signature): a :class:`ShardCache`."""
        return ShardCache(rate, seed, offset, shape, dtype, mask, self.global_shape, self.start,
                          stored)


def _kernel_run(seed, offset, thr, scale, threads):
    def run(src, dst, keep, g):
        if src is None:
            _kernels.mask(keep.shape[0], seed, offset + g, thr, None, keep, threads)
        else:
            _common.run_forward(src, dst, seed, offset + g, thr, scale, None, keep, threads)
    return run


def _kernel_span(seed, offset, thr, threads):
    def span_mask(n, g):
        out = np.empty(n, dtype=np.uint8)
        _kernels.mask(n, seed, offset + g, thr, None, out, threads)
        return out
    return span_mask


def fill(block, src, dst, keep, scale, threads, run, span_mask):
    """Dropout of a block, every element with the bits of its global index.

    Parameters
    ----------
    block : Block
    src, dst : 1-D C-contiguous float arrays of ``block.size``, or both None (mask only)
        ``dst := where(keep, src * scale, +0.0)``; ``dst`` may be ``src``.
    keep : 1-D C-contiguous uint8 array of ``block.size``, or None
        Receives the block's 0/1 mask in its C order (required when ``src`` is None).
    scale : float
    threads : int
        Resolved thread count for the apply step of the gather path.
    run : callable ``run(src_run, dst_run, keep_run, g)``
        The kernel over one run whose first element has global index ``g`` (relative to the
        offset, which the callable adds); ``src_run``/``dst_run`` None for a mask only,
        ``keep_run`` None when no mask is wanted.
    span_mask : callable ``span_mask(n, g)``
        The 0/1 uint8 mask of ``n`` consecutive global indices from ``g``.
    """
    if block.size == 0:
        return
    if block.gathers():
        view = block.read(span_mask(block.span, block.first))
        k = np.empty(block.size, dtype=np.uint8) if keep is None else keep
        np.copyto(k.reshape(block.shape), view)
        if src is not None:
            _common.run_backward(src, dst, k, False, scale, threads)
        return
    n = block.run_length
    for r, g in enumerate(block.run_starts().tolist()):
        part = slice(r * n, (r + 1) * n)
        run(None if src is None else src[part], None if dst is None else dst[part],
            None if keep is None else keep[part], g)


def _dims(value, name, ndim, shape_name):
    dims = _validation.check_shape(value, name)
    if len(dims) != ndim:
        raise ValueError(f"{name} must have one entry per axis of {shape_name} ({ndim}), got "
                         f"{_short(value)}")
    return dims


def check_block(global_shape, start, shape, offset, *, prefix="", shape_name="x.shape"):
    """Validate a block's ``global_shape``, ``start`` and ``offset`` against its ``shape``.

    Returns ``(block, offset)``. ``prefix`` (e.g. ``"cache "``) and ``shape_name`` word the
    messages. Rules: both have one entry per axis, ``start + shape <= global_shape`` on every
    axis, and ``offset + prod(global_shape) <= 2**64`` (global indices are 64-bit).
    """
    ndim = len(shape)
    g_name, s_name, o_name = f"{prefix}global_shape", f"{prefix}start", f"{prefix}offset"
    if global_shape is None or start is None:
        given, missing = (s_name, g_name) if global_shape is None else (g_name, s_name)
        raise TypeError(f"{g_name} and {s_name} must be given together (or neither): got "
                        f"{given}={_short(start if global_shape is None else global_shape)} "
                        f"with {missing}=None")
    dims = _dims(global_shape, g_name, ndim, shape_name)
    first = _dims(start, s_name, ndim, shape_name)
    for axis, (s, n, g) in enumerate(zip(first, shape, dims)):
        if s + n > g:
            raise ValueError(
                f"{s_name} + {shape_name} must be <= {g_name} on every axis (the block must lie "
                f"inside the global array), got {s_name}={first} + {shape_name}={tuple(shape)} "
                f"> {g_name}={dims} on axis {axis} ({s} + {n} > {g})")
    size = math.prod(dims)
    if size > _contract.INDEX_LIMIT:
        raise ValueError(f"{g_name} must have at most 2**64 elements (global indices are "
                         f"64-bit), got {dims} of {size} elements")
    offset = _validation.check_uint64(offset, o_name)
    if offset + size > _contract.INDEX_LIMIT:
        raise ValueError(f"{o_name} + the size of {g_name} must be <= 2**64 (global indices are "
                         f"64-bit), got {o_name}={offset} with {g_name}={dims} of {size} "
                         f"elements")
    return Block(dims, first, shape), offset


def block_args(global_shape, start, shape, offset, shape_name="x.shape"):
    """A call's validated ``(block, offset)``.

    ``block`` is None for an ordinary call (both None), and for a block that is one range of
    global indices: its offset then moves to that range's first index, and the call is an
    ordinary one (the C fast path, a plain :class:`cydrop.DropoutCache`).
    """
    if global_shape is None and start is None:
        return None, _validation.check_offset(offset, math.prod(shape))
    block, offset = check_block(global_shape, start, shape, offset, shape_name=shape_name)
    if block.contiguous:
        return None, offset + block.first
    return block, offset


class ShardCache(_cache.Cache):
    """What :func:`cydrop.dropout_backward` needs from a :func:`cydrop.dropout` call on a block
    (``global_shape=``, ``start=``) that is not one range of global indices; made only by
    cydrop. A block that is one range gets an ordinary :class:`cydrop.DropoutCache`.

    Attributes
    ----------
    rate : float
    seed : int
    offset : int
        The call's ``offset``: the global index of the GLOBAL array's first element.
    shape : tuple of int
        The block's shape (the forward input's).
    dtype : numpy.dtype
    mask_mode : {'recompute', 'bits', 'bytes'}
    global_shape, start : tuple of int
        Where the block lies in the global array.
    stored_mask : ndarray or None
        The stored mask (read-only) in the block's C order: packed bits, 0/1 bytes of
        ``shape``, or None (regenerated from the seed and the block's global indices).
    """

    __slots__ = ("rate", "seed", "offset", "shape", "dtype", "mask_mode", "global_shape",
                 "start", "stored_mask")
    _FIELDS = __slots__

    def __init__(self, rate, seed, offset, shape, dtype, mask_mode, global_shape, start,
                 stored_mask):
        self.rate, self.seed, self.offset, self.shape = rate, seed, offset, shape
        self.dtype, self.mask_mode, self.stored_mask = dtype, mask_mode, stored_mask
        self.global_shape, self.start = global_shape, start

    @property
    def nbytes(self):
        return 0 if self.stored_mask is None else self.stored_mask.nbytes

    def keep_mask(self):
        st = self._state()
        if st.kind == "bytes":
            return st.stored.copy()
        if st.kind == "bits":
            return np.unpackbits(st.stored, count=st.block.size,
                                 bitorder="little").reshape(st.shape)
        out = np.empty(st.block.size, dtype=np.uint8)
        st.block.mask(out.size, st.seed, st.offset, st.thr, None, out,
                      effective_n_threads(None))
        return out.reshape(st.shape)

    def __repr__(self):
        return (f"ShardCache(rate={self.rate!r}, seed={self.seed!r}, offset={self.offset!r}, "
                f"shape={self.shape!r}, dtype={self.dtype}, mask_mode={self.mask_mode!r}, "
                f"global_shape={self.global_shape!r}, start={self.start!r})")

    def _state(self):
        mode = self.mask_mode
        if not isinstance(mode, str) or mode not in _validation.MASK_MODES:
            raise ValueError(f"cache mask_mode must be one of {_validation.MASK_MODES}, got "
                             f"{_short(mode)}")
        shape, size = _validation.check_dims(self.shape, "cache shape")
        dtype = _validation.check_native_float_dtype(self.dtype, "cache dtype", half=True)
        rate = _validation.check_probability(self.rate, "cache rate")
        if rate == 0.0:
            raise ValueError("cache rate must satisfy 0 < cache rate <= 1 (a forward call at "
                             "rate 0 keeps no seed), got 0.0")
        seed = _validation.check_uint64(self.seed, "cache seed")
        for name in ("global_shape", "start"):
            if not isinstance(getattr(self, name), tuple):
                raise TypeError(f"cache {name} must be a tuple of ints, got "
                                f"{_short(getattr(self, name))}")
        block, offset = check_block(self.global_shape, self.start, shape, self.offset,
                                    prefix="cache ", shape_name="cache shape")
        stored = self.stored_mask
        if mode == "recompute":
            if stored is not None:
                raise ValueError(f"a 'recompute' cache stores no mask (cache stored_mask must "
                                 f"be None), got {type(stored).__name__}")
        elif mode == "bits":
            stored = _validation.check_mask_array(stored, ((size + 7) // 8,),
                                                  "cache stored_mask", binary=False)
        else:
            stored = _validation.check_mask_array(stored, shape, "cache stored_mask")
        thr, scale = _contract.threshold_and_scale(rate)
        return _cache.CacheState(kind=mode, rate=rate, seed=seed, offset=offset, shape=shape,
                                 dtype=dtype, thr=thr, scale=scale, stored=stored, block=block)

    def _restored(self, st):
        stored = st.stored
        if stored is not None:
            stored = np.array(stored, dtype=np.uint8, order="C", copy=True)
            stored.flags.writeable = False
        self.rate, self.seed, self.offset, self.shape = st.rate, st.seed, st.offset, st.shape
        self.dtype, self.mask_mode, self.stored_mask = st.dtype, st.kind, stored
        self.global_shape, self.start = st.block.global_shape, st.block.start
