"""Dask adapter: cydrop's dropout over a ``dask.array``, bit-identical to the NumPy call.

Optional: needs ``dask[array]`` (``pip install cydrop[dask]``; add ``distributed`` for a
cluster). Import it as ``cydrop.dask`` (an alias of ``cydrop.interop.dask``).

Why the result does not depend on the chunking
----------------------------------------------
cydrop's mask is a pure function of ``(seed, offset + g)``, where ``g`` is an element's index in
the C-order flattening of the WHOLE array. A chunk of a 2-D or 3-D array is not one contiguous
range of ``g``: it is a set of "runs" of consecutive global indices. Each task hands its chunk's
location to ``cydrop._shard`` (the run logic :func:`cydrop.dropout` uses for
``global_shape=``/``start=``), which computes the runs' global start indices with NumPy
(vectorised) and then

* calls the kernel once per run (here: :func:`cydrop.dropout` with the run's global offset;
  a Python loop over runs, never over elements), or
* when runs are short and close together, builds the mask of the range that covers them with
  one call (:func:`cydrop.dropout_mask`) and reads the chunk's bits out of it.

Either way every element gets exactly the bits ``cydrop.dropout(np.asarray(arr), rate,
seed=seed, offset=offset)`` gives it, for any chunking, regular or not, on any scheduler. Tasks
only need the seed, the offset and their chunk's location, so arrays larger than one machine's
memory work on a ``dask.distributed`` cluster: nothing global is ever materialised.
"""

import math

import dask.array as da
import numpy as np

from cydrop import _cache, _contract, _shard, _validation
from cydrop._core import DropoutCache
from cydrop._core import dropout as _dropout
from cydrop._core import dropout_mask as _dropout_mask
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed
from cydrop._shard import run_starts as run_starts  # re-exported: maps a chunk to its runs

__all__ = ["DaskDropoutCache", "dropout", "dropout_backward"]


class DaskDropoutCache(_cache.Cache):
    """What :func:`dropout_backward` needs from a :func:`dropout` call: scalars, no mask; made
    only by cydrop.

    A cydrop cache (``cydrop._cache.Cache``): it can be pickled (the state is validated again
    when it is loaded), and :func:`dropout_backward` validates its whole state before building
    any task, so a cache rebuilt or changed by hand is a ``TypeError``/``ValueError`` naming the
    field, raised at the call rather than inside a task.

    Attributes
    ----------
    rate : float
        Drop probability (0 for an identity call).
    seed, offset : int or None
        The mask's seed and the global index of the array's first element (None for identity).
    shape : tuple of int
    dtype : numpy.dtype
    mask_mode : {'recompute', 'identity'}
    nbytes : int
        0: the cache keeps no array.
    """

    __slots__ = ("rate", "seed", "offset", "shape", "dtype", "mask_mode")
    _FIELDS = __slots__

    def __init__(self, *, rate, seed, offset, shape, dtype, mask_mode):
        self.rate, self.seed, self.offset = rate, seed, offset
        self.shape, self.dtype, self.mask_mode = shape, dtype, mask_mode

    nbytes = property(lambda self: 0, doc="0: the cache keeps no array")

    def keep_mask(self):
        """The keep mask of the whole array (uint8 0/1 of ``shape``), materialised in memory."""
        st = self._state()
        if st.kind == "identity":
            return np.ones(st.shape, dtype=np.uint8)
        return _dropout_mask(st.shape, st.rate, seed=st.seed, offset=st.offset)

    def __repr__(self):
        return (f"DaskDropoutCache(rate={self.rate!r}, seed={self.seed!r}, "
                f"offset={self.offset!r}, shape={self.shape!r}, dtype={self.dtype}, "
                f"mask_mode={self.mask_mode!r})")

    def _state(self):
        """Validate the state as strictly as :func:`dropout` validates its arguments."""
        mask_mode = self.mask_mode
        if not isinstance(mask_mode, str) or mask_mode not in ("recompute", "identity"):
            raise ValueError(f"cache mask_mode must be 'recompute' or 'identity', got "
                             f"{_validation._short(mask_mode)}")
        shape, size = _validation.check_dims(self.shape, "cache shape")
        dtype = _validation.check_native_float_dtype(self.dtype, "cache dtype")
        rate = _validation.check_probability(self.rate, "cache rate")
        seed, offset = _cache.check_randomness(f"a {mask_mode!r} cache", rate, self.seed,
                                               self.offset, size,
                                               random=mask_mode == "recompute")
        return _cache.CacheState(kind=mask_mode, rate=rate, seed=seed, offset=offset,
                                 shape=shape, dtype=dtype)

    def _restored(self, st):
        self.rate, self.seed, self.offset = st.rate, st.seed, st.offset
        self.shape, self.dtype, self.mask_mode = st.shape, st.dtype, st.kind


def _restore_cache(rate, seed, offset, shape, dtype, mask_mode):
    """Unpickle a DaskDropoutCache of cydrop 0.1, validated as :func:`cydrop._cache.restore`."""
    return _cache.restore(DaskDropoutCache, (rate, seed, offset, shape, dtype, mask_mode))


def _dropout_block(block, block_info=None, *, rate, seed, offset, n_threads):
    """One task: dropout of a chunk with the bits its global C-order positions carry."""
    info = block_info[0]
    where = _shard.Block(tuple(info["shape"]), [a for a, _ in info["array-location"]],
                         block.shape)
    src = _validation.aligned_contiguous(np.asarray(block))
    out = np.empty(block.shape, dtype=src.dtype)

    def run(s, d, keep, g):     # one run: the op layer's dropout at the run's global offset
        _dropout(s, rate, seed=seed, offset=offset + g, out=d, n_threads=n_threads)

    def span_mask(n, g):        # the gather path's mask of the covering range
        return _dropout_mask(n, rate, seed=seed, offset=offset + g, n_threads=n_threads)

    _shard.fill(where, src.reshape(-1), out.reshape(-1), None,
                _contract.threshold_and_scale(rate)[1], effective_n_threads(n_threads), run,
                span_mask)
    return out


def _check_dask_array(arr, name):
    if not isinstance(arr, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array, got {type(arr).__name__} "
                        f"(wrap NumPy arrays with dask.array.from_array)")
    _validation.check_float_dtype(arr.dtype, name)
    if any(math.isnan(c) for chunks in arr.chunks for c in chunks):
        raise ValueError(f"{name} must have known chunk sizes, got chunks={arr.chunks}; "
                         f"call {name}.compute_chunk_sizes() first")


def _map(arr, rate, seed, offset, n_threads):
    return arr.map_blocks(_dropout_block, dtype=arr.dtype,
                          meta=np.empty((0,) * arr.ndim, dtype=arr.dtype),
                          rate=rate, seed=seed, offset=offset, n_threads=n_threads)


def dropout(arr, rate=0.5, *, seed=None, offset=0, training=True, n_threads=1):
    """Inverted dropout of a dask array, bit-identical to :func:`cydrop.dropout` on all of it.

    Parameters
    ----------
    arr : dask.array.Array of float32 or float64, any shape and chunking
        Chunk sizes must be known (not NaN).
    rate : float, default=0.5
        Probability of DROPPING an element, ``0 <= rate <= 1``.
    seed : int or None, default=None
        ``0 <= seed < 2**64``. ``None`` draws one from the operating system's entropy once, now
        (it is kept in the returned cache); NumPy's global RNG is never touched.
    offset : int, default=0
        Global index of ``arr``'s first element, as in :func:`cydrop.dropout`.
    training : bool, default=True
        ``False`` returns ``arr`` itself, as does ``rate == 0``.
    n_threads : int or None, default=1
        OpenMP threads per task. Dask already runs one task per worker thread, so 1 avoids
        oversubscription; ``None`` lets each task use :func:`cydrop.effective_n_threads`. Any
        nonzero int is accepted; on each worker it is capped at the usable cores. Never
        changes the result.

    Returns
    -------
    out : dask.array.Array
        Same shape, chunks and dtype as ``arr`` (lazy). ``out.compute()`` equals
        ``cydrop.dropout(arr.compute(), rate, seed=seed, offset=offset)[0]`` bit for bit.
    cache : DaskDropoutCache
        For :func:`dropout_backward` (a few scalars).

    Raises
    ------
    TypeError
        If ``arr`` is not a dask array of float32/float64, or an argument has the wrong type.
    ValueError
        If ``rate`` is outside [0, 1], ``seed``/``offset`` are out of range, or chunk sizes
        are unknown.

    See Also
    --------
    cydrop.dropout : the single-machine function this reproduces (its ``global_shape=`` /
        ``start=`` run one chunk; ``run_starts`` maps a chunk to its global indices).

    Examples
    --------
    >>> import numpy as np, dask.array as da, cydrop, cydrop.dask
    >>> x = np.arange(1.0, 61.0).reshape(6, 10)
    >>> out, cache = cydrop.dask.dropout(da.from_array(x, chunks=(4, 3)), 0.5, seed=7)
    >>> bool((out.compute() == cydrop.dropout(x, 0.5, seed=7)[0]).all())
    True
    """
    _check_dask_array(arr, "arr")
    rate = _validation.check_probability(rate, "rate")
    training = _validation.check_bool(training, "training")
    n_threads = _validation.check_n_threads(n_threads)
    seed = None if seed is None else _validation.check_uint64(seed, "seed")
    offset = _validation.check_offset(offset, arr.size)
    if not training or rate == 0.0:
        return arr, DaskDropoutCache(rate=0.0, seed=None, offset=None, shape=arr.shape,
                                     dtype=arr.dtype, mask_mode="identity")
    seed = resolve_seed(seed)
    return _map(arr, rate, seed, offset, n_threads), DaskDropoutCache(
        rate=rate, seed=seed, offset=offset, shape=arr.shape, dtype=arr.dtype,
        mask_mode="recompute")


def dropout_backward(dout, cache, *, n_threads=1):
    """Gradient of :func:`dropout`: ``dout`` masked and scaled as the forward input was.

    Parameters
    ----------
    dout : dask.array.Array of float32 or float64
        Upstream gradient, same shape and dtype as the forward input; any chunking (it need not
        match the forward input's).
    cache : DaskDropoutCache or cydrop.DropoutCache
        From :func:`dropout`, or from a NumPy :func:`cydrop.dropout` call over the same array
        (the mask is regenerated from its seed and offset, whatever it stored).
    n_threads : int or None, default=1
        OpenMP threads per task: any nonzero int, capped at the usable cores of the worker.

    Returns
    -------
    dx : dask.array.Array
        Equals ``cydrop.dropout_backward(dout.compute(), numpy_cache)`` bit for bit; ``dout``
        itself for an identity forward call.

    Raises
    ------
    TypeError
        If ``cache`` is of another type, or ``dout``'s dtype differs from the forward input's.
    ValueError
        If ``dout``'s shape differs from the forward input's, or the cache's state is one no
        forward call makes (a field out of range or inconsistent; the message names it).
    """
    st = _cache.check_cache(cache, (DaskDropoutCache, DropoutCache),
                            "cydrop.dask.dropout or cydrop.dropout")
    _check_dask_array(dout, "dout")
    if tuple(dout.shape) != st.shape:
        raise ValueError(f"dout must have the forward input's shape {st.shape}, "
                         f"got {tuple(dout.shape)}")
    if np.dtype(dout.dtype) != st.dtype:
        raise TypeError(f"dout must have the forward input's dtype {st.dtype}, "
                        f"got {np.dtype(dout.dtype)}")
    n_threads = _validation.check_n_threads(n_threads)
    if st.kind == "identity":
        return dout
    return _map(dout, st.rate, st.seed, st.offset, n_threads)
