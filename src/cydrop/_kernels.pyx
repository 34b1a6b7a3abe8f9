# cython: freethreading_compatible = False
"""Dropout kernels: OpenMP loops over the C chunk kernels of src/cydrop_kernels.h.

Design
------
a) src/cydrop_rng.h: the counter-based generator. The keep decision of an element is a pure
   function of (seed, global index): blocks of 4096 elements are seeded from (seed, block index)
   by splitmix64 and run eight xoshiro256++ lanes each.
b) src/cydrop_kernels_impl.h: chunk kernels (4096 local elements) in plain C, compiled once per
   ISA variant (baseline, AVX2, AVX-512); the best variant the CPU supports is chosen at import.
c) This module: loops over chunks, `prange(schedule='static')` with the GIL released, or a plain
   loop for one thread or few chunks. The chunk a thread gets never changes what it computes.

Callers (cydrop/_core.py) validate and allocate everything first: the functions here take
contiguous 1-D buffers and trusted scalars, and cannot fail once they have released the GIL.
"""

import os

from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from cydrop._kernels cimport (
    CYDROP_BLOCK, CYDROP_CHUNK, cydrop_kernels, cydrop_seed_key, cydrop_threshold,
    cydrop_variant_supported, cydrop_variants,
)

ctypedef fused floating:
    float
    double

# Below this many chunks a call runs on the calling thread: entering a parallel region costs
# microseconds, more than a few chunks take. The result is the same either way.
cdef int64_t PARALLEL_MIN_CHUNKS = 16

BLOCK = CYDROP_BLOCK
CHUNK = CYDROP_CHUNK

cdef const cydrop_kernels *_active = NULL


def _variant_table():
    cdef int count = 0
    cdef const cydrop_kernels * const *table = cydrop_variants(&count)
    return [(table[i].name.decode("ascii"), bool(cydrop_variant_supported(table[i])))
            for i in range(count)]


def variants():
    """Names of the ISA variants this CPU can run, best last (``'baseline'`` first)."""
    return [name for name, ok in _variant_table() if ok]


def current_variant():
    """Name of the ISA variant the kernels use now."""
    return _active.name.decode("ascii")


def set_variant(name=None):
    """Select the ISA variant by name; ``None`` picks the best one the CPU supports.

    All variants give bit-identical results; this exists for tests and debugging. The choice is
    process-wide. Returns the name of the variant that was active before.

    Raises
    ------
    ValueError
        If ``name`` is not a variant of this build, or the CPU cannot run it.
    """
    global _active
    cdef int count = 0, i
    cdef const cydrop_kernels * const *table = cydrop_variants(&count)
    previous = None if _active == NULL else _active.name.decode("ascii")
    table_names = [n for n, _ in _variant_table()]
    if name is None:
        for i in range(count):
            if cydrop_variant_supported(table[i]):
                _active = table[i]
        return previous
    if name not in table_names:
        raise ValueError(
            f"variant must be one of {table_names} (or None for the best), got {name!r}")
    i = table_names.index(name)
    if not cydrop_variant_supported(table[i]):
        raise ValueError(
            f"variant {name!r} is not supported by this CPU; supported: {variants()}")
    _active = table[i]
    return previous


def _init_variant():
    pinned = os.environ.get("CYDROP_ISA", "").strip()
    if pinned:
        try:
            set_variant(pinned)
        except ValueError as exc:
            raise ImportError(f"CYDROP_ISA={pinned!r}: {exc}") from None
    else:
        set_variant(None)


_init_variant()


cdef inline uint8_t *_ptr_or_null(uint8_t[::1] a) noexcept:
    return NULL if a is None or a.shape[0] == 0 else &a[0]


def seed_key(uint64_t seed):
    """``cydrop_seed_key(seed)``: the splitmix64 key every block of ``seed`` derives from."""
    return cydrop_seed_key(seed)


def threshold(double keep):
    """``cydrop_threshold(keep)`` = round(keep * 65536), the 16-bit keep threshold."""
    return cydrop_threshold(keep)


def forward(const floating[::1] x,     # IN
            floating[::1] y,           # OUT (may be x itself)
            uint64_t seed, uint64_t offset, uint32_t thr, double scale,
            uint8_t[::1] bits=None,    # OUT, packed mask, or None
            uint8_t[::1] bytes_=None,  # OUT, 0/1 mask, or None
            int n_threads=1):
    """y := where(keep(offset + i), x * scale, +0.0); the mask also goes to bits / bytes_."""
    cdef int64_t n = x.shape[0], t
    cdef int64_t nchunks = (n + CYDROP_CHUNK - 1) // CYDROP_CHUNK
    cdef const cydrop_kernels *k = _active
    cdef uint64_t key = cydrop_seed_key(seed)
    cdef uint8_t *pbits = _ptr_or_null(bits)
    cdef uint8_t *pbytes = _ptr_or_null(bytes_)
    cdef floating s = <floating>scale
    if n == 0:
        return
    cdef const floating *px = &x[0]
    cdef floating *py = &y[0]
    with nogil:
        if n_threads <= 1 or nchunks < PARALLEL_MIN_CHUNKS:
            for t in range(nchunks):
                if floating is float:
                    k.forward_f32(px, py, n, key, offset, thr, s, pbits, pbytes, t)
                else:
                    k.forward_f64(px, py, n, key, offset, thr, s, pbits, pbytes, t)
        else:
            for t in prange(nchunks, schedule="static", num_threads=n_threads):
                if floating is float:
                    k.forward_f32(px, py, n, key, offset, thr, s, pbits, pbytes, t)
                else:
                    k.forward_f64(px, py, n, key, offset, thr, s, pbits, pbytes, t)


def backward(const floating[::1] dy,   # IN
             floating[::1] dx,         # OUT (may be dy itself)
             const uint8_t[::1] mask,  # IN, packed bits (is_bits) or 0/1 bytes
             bint is_bits, double scale, int n_threads=1):
    """dx := where(mask, dy * scale, +0.0) from a stored mask."""
    cdef int64_t n = dy.shape[0], t
    cdef int64_t nchunks = (n + CYDROP_CHUNK - 1) // CYDROP_CHUNK
    cdef const cydrop_kernels *k = _active
    cdef floating s = <floating>scale
    if n == 0:
        return
    cdef const floating *pdy = &dy[0]
    cdef floating *pdx = &dx[0]
    cdef const uint8_t *pm = &mask[0]
    with nogil:
        if n_threads <= 1 or nchunks < PARALLEL_MIN_CHUNKS:
            for t in range(nchunks):
                if floating is float:
                    k.backward_f32(pdy, pdx, n, pm, is_bits, s, t)
                else:
                    k.backward_f64(pdy, pdx, n, pm, is_bits, s, t)
        else:
            for t in prange(nchunks, schedule="static", num_threads=n_threads):
                if floating is float:
                    k.backward_f32(pdy, pdx, n, pm, is_bits, s, t)
                else:
                    k.backward_f64(pdy, pdx, n, pm, is_bits, s, t)


def mask(int64_t n, uint64_t seed, uint64_t offset, uint32_t thr,
         uint8_t[::1] bits=None,     # OUT, packed mask, or None
         uint8_t[::1] bytes_=None,   # OUT, 0/1 mask, or None
         int n_threads=1):
    """The keep mask of elements offset .. offset + n - 1, as packed bits and/or 0/1 bytes."""
    cdef int64_t t
    cdef int64_t nchunks = (n + CYDROP_CHUNK - 1) // CYDROP_CHUNK
    cdef const cydrop_kernels *k = _active
    cdef uint64_t key = cydrop_seed_key(seed)
    cdef uint8_t *pbits = _ptr_or_null(bits)
    cdef uint8_t *pbytes = _ptr_or_null(bytes_)
    with nogil:
        if n_threads <= 1 or nchunks < PARALLEL_MIN_CHUNKS:
            for t in range(nchunks):
                k.mask(n, key, offset, thr, pbits, pbytes, t)
        else:
            for t in prange(nchunks, schedule="static", num_threads=n_threads):
                k.mask(n, key, offset, thr, pbits, pbytes, t)
