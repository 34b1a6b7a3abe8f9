# cython: freethreading_compatible = False
"""Dropout kernels: the Cython boundary of the C kernels of src/cydrop_kernels.h.

Design
------
a) C kernels: src/cydrop_rng.h is the counter-based generator (the keep decision of an element
   is a pure function of (seed, global index): blocks of 4096 elements seeded from (seed, block
   index) by splitmix64 run eight xoshiro256++ lanes each) and the rate contract
   (``cydrop_threshold``, ``cydrop_scale``). src/cydrop_kernels_impl.h holds the chunk kernels
   (4096 local elements) in plain C, compiled once per ISA (baseline, AVX2, AVX-512) into one
   dispatch table per ISA; the best table the CPU supports is chosen at import (``set_isa``
   changes it for this module and cydrop._variants alike: ``active_kernels``).
b) Runner: cydrop/_parallel.pyx's ``run_tasks`` runs the tasks (chunks) of a call serially or
   on an OpenMP team, by its one policy ``use_threads``; the chunk a thread gets never changes
   what it computes. Each op below packs its arguments into a ctx struct and supplies a
   float32 and a float64 task function.
c) Wrappers: the Python-callable ``def`` functions (fused float/double memoryviews picking the
   task function), the cache, and the fast paths.

Callers (cydrop/_core.py) validate and allocate everything first: the functions here take
contiguous 1-D buffers and trusted scalars, and cannot fail once they have released the GIL.
"""

import os

cimport numpy as cnp
from cpython.long cimport PyLong_CheckExact
from cpython.float cimport PyFloat_CheckExact
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t, UINT64_MAX
from libc.stdlib cimport getenv

import numpy as np

from cydrop import _validation   # pure Python; imports nothing else of cydrop's
from cydrop import _contract   # pure Python: the rate contract's Python definition
from cydrop._seeds import fresh_seed as _fresh_seed   # imports _validation and _contract only

cnp.import_array()

from cydrop._kernels cimport (
    CYDROP_BLOCK, CYDROP_CHUNK, ChunkCtx, cydrop_isa_supported, cydrop_isas, cydrop_kernels, cydrop_mix64,
    cydrop_scale, cydrop_seed_key, cydrop_threshold,
)
from cydrop._openmp cimport effective_n_threads
from cydrop._parallel cimport PARALLEL_MIN_WORK, run_tasks

ctypedef fused floating:
    float
    double

BLOCK = CYDROP_BLOCK
CHUNK = CYDROP_CHUNK

cdef const cydrop_kernels *_active = NULL


cdef const cydrop_kernels *active_kernels() noexcept nogil:
    return _active


def _isa_table():
    cdef int count = 0
    cdef const cydrop_kernels * const *table
    # Assigned on its own line: Cython 3.0.x dropped the initialiser of a pointer-to-const-
    # pointer declaration, leaving `table` unset and the first kernel call crashing.
    table = cydrop_isas(&count)
    return [(table[i].name.decode("ascii"), bool(cydrop_isa_supported(table[i])))
            for i in range(count)]


def isas():
    """Names of the ISAs this CPU can run, best last (``'baseline'`` first)."""
    return [name for name, ok in _isa_table() if ok]


def current_isa():
    """Name of the ISA the kernels use now."""
    return _active.name.decode("ascii")


def set_isa(name=None):
    """Select the ISA by name; ``None`` picks the best one the CPU supports.

    All ISAs give bit-identical results; this exists for tests and debugging. The choice is
    process-wide and covers every kernel (the dropout variants' too). Returns the name of the
    ISA that was active before.

    Raises
    ------
    ValueError
        If ``name`` is not an ISA of this build, or the CPU cannot run it.
    """
    global _active
    cdef int count = 0, i
    cdef const cydrop_kernels * const *table
    table = cydrop_isas(&count)
    previous = None if _active == NULL else _active.name.decode("ascii")
    table_names = [n for n, _ in _isa_table()]
    if name is None:
        for i in range(count):
            if cydrop_isa_supported(table[i]):
                _active = table[i]
        return previous
    if name not in table_names:
        raise ValueError(
            f"isa must be one of {table_names} (or None for the best), got {name!r}")
    i = table_names.index(name)
    if not cydrop_isa_supported(table[i]):
        raise ValueError(
            f"isa {name!r} is not supported by this CPU; supported: {isas()}")
    _active = table[i]
    return previous


def _init_isa():
    pinned = os.environ.get("CYDROP_ISA", "").strip()
    if pinned:
        try:
            set_isa(pinned)
        except ValueError as exc:
            raise ImportError(f"CYDROP_ISA={pinned!r}: {exc}") from None
    else:
        set_isa(None)
    if _active == NULL:
        raise ImportError("cydrop._kernels: no ISA kernel table is active (this build of cydrop "
                          "is broken; rebuild it with Cython >= 3.1)")


_init_isa()


cdef inline uint8_t *_ptr_or_null(uint8_t[::1] a) noexcept:
    return NULL if a is None or a.shape[0] == 0 else &a[0]


def seed_key(uint64_t seed):
    """``cydrop_seed_key(seed)``: the splitmix64 key every block of ``seed`` derives from."""
    return cydrop_seed_key(seed)


def threshold(double keep):
    """``cydrop_threshold(keep)`` = round(keep * 65536), the 16-bit keep threshold."""
    return cydrop_threshold(keep)


def mix64(uint64_t z):
    """``cydrop_mix64(z)``: splitmix64's output function."""
    return cydrop_mix64(z)


def scale(uint32_t thr):
    """``cydrop_scale(thr)`` = 65536 / thr (0 if thr == 0), the scale of kept elements."""
    return cydrop_scale(thr)


# ------------------------------------------------ b) tasks and runners (trusted input, nogil)
#
# Each op fills a ChunkCtx (cydrop/_kernels.pxd); its task functions run one chunk t through the
# ISA table snapshotted when the call began.

cdef inline int64_t _nchunks(int64_t n) noexcept nogil:
    return (n + CYDROP_CHUNK - 1) // CYDROP_CHUNK


cdef inline void _init_ctx(ChunkCtx *c, const void *x, void *y, int64_t n, uint64_t seed,
                           uint64_t offset, uint32_t thr, double scale) noexcept nogil:
    c.k, c.x, c.b, c.y, c.n, c.m = _active, x, NULL, y, n, 0
    c.key, c.offset, c.thr, c.s[0] = cydrop_seed_key(seed), offset, thr, scale
    c.bits, c.bytes_, c.mask, c.is_bits = NULL, NULL, NULL, False


cdef void _forward_f32_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.forward_f32(<const float *>c.x, <float *>c.y, c.n, c.key, c.offset, c.thr,
                    <float>c.s[0], c.bits, c.bytes_, t)


cdef void _forward_f64_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.forward_f64(<const double *>c.x, <double *>c.y, c.n, c.key, c.offset, c.thr, c.s[0],
                    c.bits, c.bytes_, t)


cdef void run_forward(bint f32, const void *x, void *y, int64_t n, uint64_t seed,
                      uint64_t offset, uint32_t thr, double scale, uint8_t *bits,
                      uint8_t *bytes_, int n_threads) noexcept nogil:
    """y := where(keep(offset + i), x * scale, +0.0); the mask also goes to bits / bytes_."""
    cdef ChunkCtx c
    _init_ctx(&c, x, y, n, seed, offset, thr, scale)
    c.bits, c.bytes_ = bits, bytes_
    run_tasks(_forward_f32_task if f32 else _forward_f64_task, &c, _nchunks(n), n, n_threads)


cdef void _backward_f32_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.backward_f32(<const float *>c.x, <float *>c.y, c.n, c.mask, c.is_bits, <float>c.s[0], t)


cdef void _backward_f64_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.backward_f64(<const double *>c.x, <double *>c.y, c.n, c.mask, c.is_bits, c.s[0], t)


cdef void run_backward(bint f32, const void *dy, void *dx, int64_t n, const uint8_t *mask,
                       bint is_bits, double scale, int n_threads) noexcept nogil:
    """dx := where(mask, dy * scale, +0.0) from a stored mask (packed bits or 0/1 bytes)."""
    cdef ChunkCtx c
    _init_ctx(&c, dy, dx, n, 0, 0, 0, scale)
    c.mask, c.is_bits = mask, is_bits
    run_tasks(_backward_f32_task if f32 else _backward_f64_task, &c, _nchunks(n), n, n_threads)


cdef void _mask_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.mask(c.n, c.key, c.offset, c.thr, c.bits, c.bytes_, t)


cdef void run_mask(int64_t n, uint64_t seed, uint64_t offset, uint32_t thr, uint8_t *bits,
                   uint8_t *bytes_, int n_threads) noexcept nogil:
    """The keep mask of elements offset .. offset + n - 1, as packed bits and/or 0/1 bytes."""
    cdef ChunkCtx c
    _init_ctx(&c, NULL, NULL, n, seed, offset, thr, 0.0)
    c.bits, c.bytes_ = bits, bytes_
    run_tasks(_mask_task, &c, _nchunks(n), n, n_threads)


cdef void _bias_relu_dropout_f32_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.bias_relu_dropout_f32(<const float *>c.x, <const float *>c.b, <float *>c.y, c.n, c.m,
                              c.key, c.offset, c.thr, <float>c.s[0], t)


cdef void _bias_relu_dropout_f64_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.bias_relu_dropout_f64(<const double *>c.x, <const double *>c.b, <double *>c.y, c.n, c.m,
                              c.key, c.offset, c.thr, c.s[0], t)


cdef void run_bias_relu_dropout(bint f32, const void *z, const void *b, void *a, int64_t n,
                                int64_t m, uint64_t seed, uint64_t offset, uint32_t thr,
                                double scale, int n_threads) noexcept nogil:
    """a := dropout(relu(z + b)) over a row-major (n / m, m) activation."""
    cdef ChunkCtx c
    _init_ctx(&c, z, a, n, seed, offset, thr, scale)
    c.b, c.m = b, m
    run_tasks(_bias_relu_dropout_f32_task if f32 else _bias_relu_dropout_f64_task, &c,
              _nchunks(n), n, n_threads)


cdef void _forward_h16_run(int kind, const void *x, void *y, int64_t n, uint64_t seed,
                           uint64_t offset, uint32_t thr, double scale, uint8_t *bits,
                           uint8_t *bytes_, int n_threads) noexcept nogil:
    """run_forward for a 16-bit format (kind 1: float16, 2: bfloat16)."""
    cdef ChunkCtx c
    _init_ctx(&c, x, y, n, seed, offset, thr, scale)
    c.bits, c.bytes_, c.m = bits, bytes_, 1 if kind == 2 else 0
    run_tasks(_forward_h16_task, &c, _nchunks(n), n, n_threads)


cdef void _backward_h16_run(int kind, const void *dy, void *dx, int64_t n, const uint8_t *mask,
                            bint is_bits, double scale, int n_threads) noexcept nogil:
    """run_backward for a 16-bit format (kind 1: float16, 2: bfloat16)."""
    cdef ChunkCtx c
    _init_ctx(&c, dy, dx, n, 0, 0, 0, scale)
    c.mask, c.is_bits, c.m = mask, is_bits, 1 if kind == 2 else 0
    run_tasks(_backward_h16_task, &c, _nchunks(n), n, n_threads)


# ------------------------------------------------ c) Python-callable wrappers (buffers checked)

def forward(const floating[::1] x,     # IN
            floating[::1] y,           # OUT (may be x itself)
            uint64_t seed, uint64_t offset, uint32_t thr, double scale,
            uint8_t[::1] bits=None,    # OUT, packed mask, or None
            uint8_t[::1] bytes_=None,  # OUT, 0/1 mask, or None
            int n_threads=1):
    """y := where(keep(offset + i), x * scale, +0.0); the mask also goes to bits / bytes_."""
    cdef uint8_t *pbits = _ptr_or_null(bits)
    cdef uint8_t *pbytes = _ptr_or_null(bytes_)
    if x.shape[0] == 0:
        return
    with nogil:
        run_forward(floating is float, &x[0], &y[0], x.shape[0], seed, offset, thr, scale,
                    pbits, pbytes, n_threads)


def backward(const floating[::1] dy,   # IN
             floating[::1] dx,         # OUT (may be dy itself)
             const uint8_t[::1] mask,  # IN, packed bits (is_bits) or 0/1 bytes
             bint is_bits, double scale, int n_threads=1):
    """dx := where(mask, dy * scale, +0.0) from a stored mask."""
    if dy.shape[0] == 0:
        return
    with nogil:
        run_backward(floating is float, &dy[0], &dx[0], dy.shape[0], &mask[0], is_bits, scale,
                     n_threads)


def mask(int64_t n, uint64_t seed, uint64_t offset, uint32_t thr,
         uint8_t[::1] bits=None,     # OUT, packed mask, or None
         uint8_t[::1] bytes_=None,   # OUT, 0/1 mask, or None
         int n_threads=1):
    """The keep mask of elements offset .. offset + n - 1, as packed bits and/or 0/1 bytes."""
    cdef uint8_t *pbits = _ptr_or_null(bits)
    cdef uint8_t *pbytes = _ptr_or_null(bytes_)
    with nogil:
        run_mask(n, seed, offset, thr, pbits, pbytes, n_threads)


def bias_relu_dropout(const floating[:, ::1] z,   # IN  (rows, m)
                      const floating[::1] b,      # IN  (m,)
                      floating[:, ::1] a,         # OUT (rows, m), may be z itself
                      uint64_t seed, uint64_t offset, uint32_t thr, double scale,
                      int n_threads=1):
    """a := where(keep(offset + i), max(z + b, 0) * scale, +0.0); thr >= 65536 keeps all."""
    cdef int64_t n = z.shape[0] * z.shape[1]
    if n == 0:
        return
    with nogil:
        run_bias_relu_dropout(floating is float, &z[0, 0], &b[0], &a[0, 0], n, z.shape[1],
                              seed, offset, thr, scale, n_threads)


def bias_relu_dropout_backward(const floating[:, ::1] da,   # IN  (rows, m)
                               const floating[:, ::1] a,    # IN  forward output
                               floating[:, ::1] dz,         # OUT (rows, m), may be da itself
                               floating[::1] db,            # OUT (m,), overwritten
                               double scale):
    """dz := where(a > 0, da * scale, +0.0); db := dz summed over rows (in row order)."""
    cdef const cydrop_kernels *k = _active
    cdef int64_t rows = da.shape[0], m = da.shape[1], j
    for j in range(m):
        db[j] = 0
    if rows == 0 or m == 0:
        return
    with nogil:
        if floating is float:
            k.bias_relu_dropout_backward_f32(&da[0, 0], &a[0, 0], &dz[0, 0], &db[0], 0, rows, m,
                                             <float>scale)
        else:
            k.bias_relu_dropout_backward_f64(&da[0, 0], &a[0, 0], &dz[0, 0], &db[0], 0, rows, m,
                                             scale)


# --------------------------------------------- float16 / bfloat16 (src/cydrop_half_impl.h)
#
# The 16-bit formats travel as their uint16 bits (``x.view(np.uint16)``); ``bf16`` picks the
# format. The arithmetic is float32: kept y = T(float32(x) * float32(scale)), rounded to nearest
# even; dropped y = +0.0.

cdef void _forward_h16_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    if c.m:
        c.k.forward_bf16(<const uint16_t *>c.x, <uint16_t *>c.y, c.n, c.key, c.offset, c.thr,
                         <float>c.s[0], c.bits, c.bytes_, t)
    else:
        c.k.forward_f16(<const uint16_t *>c.x, <uint16_t *>c.y, c.n, c.key, c.offset, c.thr,
                        <float>c.s[0], c.bits, c.bytes_, t)


cdef void _backward_h16_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    if c.m:
        c.k.backward_bf16(<const uint16_t *>c.x, <uint16_t *>c.y, c.n, c.mask, c.is_bits,
                          <float>c.s[0], t)
    else:
        c.k.backward_f16(<const uint16_t *>c.x, <uint16_t *>c.y, c.n, c.mask, c.is_bits,
                         <float>c.s[0], t)


cdef void _bias_relu_dropout_h16_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    cdef int64_t m = c.m if c.m > 0 else -c.m      # the sign of m carries the format
    if c.m < 0:
        c.k.bias_relu_dropout_bf16(<const uint16_t *>c.x, <const float *>c.b, <uint16_t *>c.y,
                                   c.n, m, c.key, c.offset, c.thr, <float>c.s[0], t)
    else:
        c.k.bias_relu_dropout_f16(<const uint16_t *>c.x, <const float *>c.b, <uint16_t *>c.y,
                                  c.n, m, c.key, c.offset, c.thr, <float>c.s[0], t)


cdef inline int _need(str name, Py_ssize_t got, Py_ssize_t want) except -1:
    if got < want:
        raise ValueError(f"{name} must have at least {want} elements, got {got}")
    return 0


def forward_half(const uint16_t[::1] x,   # IN, float16 or bfloat16 bits
                 uint16_t[::1] y,         # OUT (may be x itself)
                 uint64_t seed, uint64_t offset, uint32_t thr, double scale,
                 uint8_t[::1] bits=None, uint8_t[::1] bytes_=None, int n_threads=1,
                 bint bf16=False):
    """y := where(keep(offset + i), T(float32(x) * scale), +0.0) for the 16-bit format T."""
    cdef ChunkCtx c
    cdef int64_t n = x.shape[0]
    if n == 0:
        return
    _need("y", y.shape[0], n)
    if bits is not None and bits.shape[0]:
        _need("bits", bits.shape[0], (n + 7) // 8)
    if bytes_ is not None and bytes_.shape[0]:
        _need("bytes_", bytes_.shape[0], n)
    _init_ctx(&c, &x[0], &y[0], n, seed, offset, thr, scale)
    c.bits, c.bytes_, c.m = _ptr_or_null(bits), _ptr_or_null(bytes_), 1 if bf16 else 0
    with nogil:
        run_tasks(_forward_h16_task, &c, _nchunks(n), n, n_threads)


def backward_half(const uint16_t[::1] dy,   # IN, float16 or bfloat16 bits
                  uint16_t[::1] dx,         # OUT (may be dy itself)
                  const uint8_t[::1] mask,  # IN, packed bits (is_bits) or 0/1 bytes
                  bint is_bits, double scale, int n_threads=1, bint bf16=False):
    """dx := where(mask, T(float32(dy) * scale), +0.0) from a stored mask."""
    cdef ChunkCtx c
    cdef int64_t n = dy.shape[0]
    if n == 0:
        return
    _need("dx", dx.shape[0], n)
    _need("mask", mask.shape[0], (n + 7) // 8 if is_bits else n)
    _init_ctx(&c, &dy[0], &dx[0], n, 0, 0, 0, scale)
    c.mask, c.is_bits, c.m = &mask[0], is_bits, 1 if bf16 else 0
    with nogil:
        run_tasks(_backward_h16_task, &c, _nchunks(n), n, n_threads)


def bias_relu_dropout_half(const uint16_t[:, ::1] z,   # IN  (rows, m), 16-bit bits
                           const float[::1] b,         # IN  (m,), float32
                           uint16_t[:, ::1] a,         # OUT (rows, m), may be z itself
                           uint64_t seed, uint64_t offset, uint32_t thr, double scale,
                           int n_threads=1, bint bf16=False):
    """a := where(keep(offset + i), T(max(float32(z) + b, 0) * scale), +0.0)."""
    cdef ChunkCtx c
    cdef int64_t n = z.shape[0] * z.shape[1], m = z.shape[1]
    if n == 0:
        return
    _need("b", b.shape[0], m)
    if a.shape[0] != z.shape[0] or a.shape[1] != m:
        raise ValueError(f"a must have shape {(z.shape[0], m)}, got {(a.shape[0], a.shape[1])}")
    _init_ctx(&c, &z[0, 0], &a[0, 0], n, seed, offset, thr, scale)
    c.b, c.m = &b[0], -m if bf16 else m
    with nogil:
        run_tasks(_bias_relu_dropout_h16_task, &c, _nchunks(n), n, n_threads)



def bias_relu_dropout_backward_half(const uint16_t[:, ::1] da,   # IN  (rows, m), 16-bit bits
                                    const uint16_t[:, ::1] a,    # IN  forward output
                                    uint16_t[:, ::1] dz,         # OUT (rows, m), may be da
                                    float[::1] db,               # OUT (m,), overwritten
                                    double scale, bint bf16=False):
    """dz := where(a > 0, T(float32(da) * scale), +0.0); db := float32(dz) summed over rows
    (in row order, from +0.0, as the float32 kernel)."""
    cdef const cydrop_kernels *k = _active
    cdef int64_t rows = da.shape[0], m = da.shape[1], j
    if a.shape[0] != rows or a.shape[1] != m or dz.shape[0] != rows or dz.shape[1] != m:
        raise ValueError(f"a, dz must have da's shape {(rows, m)}, got "
                         f"{(a.shape[0], a.shape[1])} and {(dz.shape[0], dz.shape[1])}")
    _need("db", db.shape[0], m)
    for j in range(m):
        db[j] = 0
    if rows == 0 or m == 0:
        return
    with nogil:
        if bf16:
            k.bias_relu_dropout_backward_bf16(&da[0, 0], &a[0, 0], &dz[0, 0], &db[0], 0, rows,
                                              m, <float>scale)
        else:
            k.bias_relu_dropout_backward_f16(&da[0, 0], &a[0, 0], &dz[0, 0], &db[0], 0, rows,
                                             m, <float>scale)


# ------------------------------------------------------------------------------ the cache

cdef class DropoutCache:
    """What :func:`cydrop.dropout_backward` needs from a forward call; made only by cydrop.

    Attributes
    ----------
    rate : float
        Drop probability of the forward call (0 for an identity call).
    seed, offset : int or None
        The mask's seed and the global index of element 0 (None for an identity call).
    threshold : int
        ``round((1 - rate) * 65536)``; an element is kept when its 16 random bits are below it.
    scale : float
        ``65536 / threshold``: kept elements are multiplied by it.
    shape : tuple of int
    dtype : numpy.dtype
    mask_mode : {'identity', 'recompute', 'bits', 'bytes'}
        How backward gets the mask: none needed, regenerated from (seed, offset), or stored.
    stored_mask : ndarray or None
        The stored mask (read-only): packed bits, 0/1 bytes of ``shape``, or None.
    dropout_param : dict or None
        The dict given to :func:`cydrop.dropout_forward` (the CS231n form), the very object;
        None for a cache of :func:`cydrop.dropout`.

    Notes
    -----
    A cache unpacks as CS231n documents its dropout cache: ``dropout_param, mask = cache``.
    ``mask`` is materialised only then (and by ``cache[1]``): an array of ``shape`` and
    ``dtype`` holding 0 where dropped and ``scale`` (``1 / keep``) where kept, or None for an
    identity call (test mode). The cache itself stays O(1) until asked. For a cache of
    :func:`cydrop.dropout`, ``dropout_param`` is rebuilt as ``{'mode': 'train', 'p': 1 - rate,
    'seed': seed}`` (``{'mode': 'test', 'p': 1.0}`` for an identity call).
    """

    cdef readonly double rate
    cdef readonly object seed
    cdef readonly object offset
    cdef readonly uint32_t threshold
    cdef readonly double scale
    cdef readonly tuple shape
    cdef readonly object dtype
    cdef readonly str mask_mode
    cdef readonly object stored_mask
    cdef readonly object dropout_param
    cdef uint64_t _seed, _offset

    def __init__(self, *args, **kwargs):
        raise TypeError("DropoutCache objects are made by cydrop.dropout and "
                        "cydrop.dropout_forward only")

    @property
    def nbytes(self):
        """Memory the cache holds for backward, in bytes (0 unless a mask is stored)."""
        return 0 if self.stored_mask is None else self.stored_mask.nbytes

    def keep_mask(self):
        """The forward call's keep mask as a uint8 0/1 array of ``shape`` (1 = kept)."""
        cdef int64_t size = 1
        for d in self.shape:
            size *= d
        if self.mask_mode == "identity":
            return np.ones(self.shape, dtype=np.uint8)
        if self.mask_mode == "bytes":
            return self.stored_mask.copy()
        if self.mask_mode == "bits":
            return np.unpackbits(self.stored_mask, count=size,
                                 bitorder="little").reshape(self.shape)
        out = np.empty(size, dtype=np.uint8)
        mask(size, self._seed, self._offset, self.threshold, None, out,
             effective_n_threads(None))
        return out.reshape(self.shape)

    def _param(self):
        if self.dropout_param is not None:
            return self.dropout_param
        if self.mask_mode == "identity":
            return {"mode": "test", "p": 1.0}
        return {"mode": "train", "p": 1.0 - self.rate, "seed": self.seed}

    def _scaled_mask(self):
        if self.mask_mode == "identity":
            return None
        m = self.keep_mask()
        return np.where(m.astype(bool), np.asarray(self.scale, dtype=self.dtype),
                        np.asarray(0, dtype=self.dtype))

    def __len__(self):
        return 2

    def __iter__(self):
        # CS231n's cache is the pair (dropout_param, mask); the mask is built only here
        yield self._param()
        yield self._scaled_mask()

    def __getitem__(self, index):
        if isinstance(index, (bool, np.bool_)) or not hasattr(index, "__index__"):
            raise TypeError(f"DropoutCache indices must be integers (0: dropout_param, "
                            f"1: mask), got {type(index).__name__}")
        i = index.__index__()
        if i in (0, -2):
            return self._param()
        if i in (1, -1):
            return self._scaled_mask()
        raise IndexError(f"DropoutCache index out of range: it unpacks as (dropout_param, "
                         f"mask), got index {i}")

    def __repr__(self):
        return (f"DropoutCache(rate={self.rate!r}, seed={self.seed!r}, offset={self.offset!r}, "
                f"shape={self.shape!r}, dtype={self.dtype}, mask_mode={self.mask_mode!r})")

    def __reduce__(self):
        # Rebuilt through restore_cache, which validates the state as strictly as a forward
        # call does: a pickle is data from outside, and backward's C path trusts its cache.
        args = (self.rate, self.seed, self.offset, self.threshold, self.scale,
                self.shape, self.dtype, self.mask_mode, self.stored_mask)
        if self.dropout_param is not None:
            args += (self.dropout_param,)
        return (restore_cache, args)


def with_dropout_param(DropoutCache cache, object dropout_param):
    """Record the CS231n ``dropout_param`` dict in ``cache`` (cydrop-internal); returns it."""
    if dropout_param is not None and not isinstance(dropout_param, dict):
        raise TypeError(f"dropout_param must be a dict, got {type(dropout_param).__name__}")
    cache.dropout_param = dropout_param
    return cache


def restore_cache(rate, seed, offset, threshold, scale, shape, dtype, mask_mode, stored_mask,
                  dropout_param=None):
    """Rebuild a pickled :class:`DropoutCache`, refusing any state a forward call could not
    have made (``TypeError``/``ValueError`` naming the field, the rule and the value).

    The stored mask is copied into a fresh C-contiguous, read-only uint8 array. A cache of
    :func:`cydrop.dropout_forward` also carries its ``dropout_param`` dict (optional: pickles
    made before it was recorded load too).
    """
    if dropout_param is not None:
        return with_dropout_param(
            restore_cache(rate, seed, offset, threshold, scale, shape, dtype, mask_mode,
                          stored_mask), dropout_param)
    V = _validation
    if not isinstance(mask_mode, str) or mask_mode not in ("identity",) + V.MASK_MODES:
        raise ValueError(f"cache mask_mode must be one of {('identity',) + V.MASK_MODES}, "
                         f"got {V._short(mask_mode)}")
    shape, size = V.check_dims(shape, "cache shape")
    dtype = V.check_native_float_dtype(dtype, "cache dtype", half=True)
    rate = V.check_probability(rate, "cache rate")
    if mask_mode == "identity":
        canonical = (0.0, None, None, 65536, 1.0)
        if (rate, seed, offset, threshold, scale) != canonical or stored_mask is not None:
            raise ValueError(f"an identity cache must have rate=0, seed=offset=None, "
                             f"threshold=65536, scale=1 and no mask, got rate={rate!r}, "
                             f"seed={seed!r}, offset={offset!r}, threshold={threshold!r}, "
                             f"scale={scale!r}")
        return make_cache(0.0, None, None, 65536, 1.0, shape, dtype, "identity", None)
    if rate == 0.0:
        raise ValueError(f"a {mask_mode!r} cache needs 0 < rate <= 1, got rate=0.0")
    seed = V.check_uint64(seed, "cache seed")
    offset = V.check_offset(offset, size, "cache offset")
    thr, expected_scale = _contract.threshold_and_scale(rate)
    if threshold != thr or scale != expected_scale:
        raise ValueError(f"cache threshold and scale must follow from rate={rate!r} "
                         f"(threshold={thr}, scale={expected_scale!r}), got "
                         f"threshold={threshold!r}, scale={scale!r}")
    if mask_mode == "recompute":
        if stored_mask is not None:
            raise ValueError(f"a 'recompute' cache stores no mask, got "
                             f"{type(stored_mask).__name__}")
        return make_cache(rate, seed, offset, thr, expected_scale, shape, dtype, mask_mode, None)
    want = ((size + 7) // 8,) if mask_mode == "bits" else shape
    stored_mask = V.check_mask_array(stored_mask, want, "cache stored_mask",
                                     binary=(mask_mode == "bytes"))
    mask_copy = np.array(stored_mask, dtype=np.uint8, order="C", copy=True)
    mask_copy.flags.writeable = False
    return make_cache(rate, seed, offset, thr, expected_scale, shape, dtype, mask_mode,
                      mask_copy)


cpdef DropoutCache make_cache(double rate, object seed, object offset, uint32_t threshold,
                              double scale, tuple shape, object dtype, str mask_mode,
                              object stored_mask):
    """Build a DropoutCache (cydrop-internal)."""
    cdef DropoutCache c = DropoutCache.__new__(DropoutCache)
    c.rate, c.seed, c.offset = rate, seed, offset
    c._seed = 0 if seed is None else seed
    c._offset = 0 if offset is None else offset
    c.threshold, c.scale = threshold, scale
    c.shape, c.dtype, c.mask_mode, c.stored_mask = shape, dtype, mask_mode, stored_mask
    c.dropout_param = None
    return c


# ------------------------------------------------------------------- fast paths (no fallibility)
#
# The common, fully valid calls are recognised with a few C-level checks and run without any
# Python-level validation. Anything unusual returns None and the caller (cydrop/_core.py) takes
# its general path, which performs the complete validation and raises the documented errors.

cdef int _bf16_type = -1     # ml_dtypes' bfloat16 type number, once an array of it was seen


cdef inline int _half_kind(cnp.ndarray arr) noexcept:
    """0: not 16-bit, 1: float16, 2: bfloat16 (recognised by _validation.half_format)."""
    global _bf16_type
    cdef int t = cnp.PyArray_TYPE(arr)
    if t == cnp.NPY_FLOAT16:
        return 1
    if t == _bf16_type:
        return 2
    if _bf16_type < 0 and t >= 256 and cnp.PyArray_ITEMSIZE(arr) == 2:
        if _validation.half_format(arr.dtype) == "bf16":
            _bf16_type = t
            return 2
    return 0


cdef inline bint _plain_float_array(object a) noexcept:
    cdef cnp.ndarray arr
    if type(a) is not cnp.ndarray:
        return False
    arr = <cnp.ndarray>a
    return ((cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT32 or cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT64
             or _half_kind(arr) != 0)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)
            and cnp.PyArray_ISNOTSWAPPED(arr))


cdef inline bint _same_dims(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef int i
    if cnp.PyArray_NDIM(a) != cnp.PyArray_NDIM(b):
        return False
    for i in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_DIM(a, i) != cnp.PyArray_DIM(b, i):
            return False
    return True


cdef inline bint _same_geometry(cnp.ndarray a, cnp.ndarray b) noexcept:
    return cnp.PyArray_TYPE(a) == cnp.PyArray_TYPE(b) and _same_dims(a, b)


cdef inline bint _ranges_disjoint(const char *a0, Py_ssize_t na, const char *b0,
                                  Py_ssize_t nb) noexcept nogil:
    """The byte ranges [a0, a0 + na) and [b0, b0 + nb) share no byte."""
    return a0 + na <= b0 or b0 + nb <= a0


cdef inline bint _disjoint(cnp.ndarray a, cnp.ndarray b) noexcept:
    return _ranges_disjoint(<char *>cnp.PyArray_DATA(a), cnp.PyArray_NBYTES(a),
                            <char *>cnp.PyArray_DATA(b), cnp.PyArray_NBYTES(b))


cdef inline bint _usable_out(object out, cnp.ndarray like) noexcept:
    """out is a C-contiguous writable array like `like`, and is `like` or disjoint from it."""
    cdef cnp.ndarray o
    if not _plain_float_array(out):
        return False
    o = <cnp.ndarray>out
    if not (_same_geometry(o, like) and cnp.PyArray_ISWRITEABLE(o)):
        return False
    return cnp.PyArray_DATA(o) == cnp.PyArray_DATA(like) or _disjoint(o, like)


cdef inline object _output_for(object out, cnp.ndarray like):
    """A new array like `like` when out is None, out when usable, else None (not fast)."""
    if out is None:
        return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(like), cnp.PyArray_DIMS(like),
                                 cnp.PyArray_TYPE(like), 0)
    return out if _usable_out(out, like) else None


cdef inline int _fast_threads(object n_threads, int64_t n) except -2:
    """1 for small calls (threads do not matter), else the resolved count; -1: not fast."""
    cdef const char *env
    if n_threads is not None and (not PyLong_CheckExact(n_threads) or n_threads == 0):
        return -1
    if n < PARALLEL_MIN_WORK:
        # use_threads(n, any count) is False: the call runs serially whatever n_threads says.
        # CYDROP_NUM_THREADS is validated by effective_n_threads, which a small call skips:
        # with it set, the general path decides (C getenv sees os.environ's changes: putenv).
        env = getenv("CYDROP_NUM_THREADS")
        if env != NULL and env[0] != 0:
            return -1
        return 1
    return effective_n_threads(n_threads)


cdef inline bint _uint64_value(object v, uint64_t *res) noexcept:
    if not PyLong_CheckExact(v) or v < 0 or v > UINT64_MAX:
        return False
    res[0] = <uint64_t>v
    return True


cdef inline bint _usable_mask_out(object buf, object mask, cnp.ndarray x, cnp.ndarray y,
                                  int64_t n) noexcept:
    """buf can take x's stored mask in mode `mask` (see check_mask_out), disjoint from x, y."""
    cdef cnp.ndarray m
    if type(buf) is not cnp.ndarray:
        return False
    m = <cnp.ndarray>buf
    if not (cnp.PyArray_TYPE(m) == cnp.NPY_UINT8 and cnp.PyArray_IS_C_CONTIGUOUS(m)
            and cnp.PyArray_ISWRITEABLE(m)):
        return False
    if mask == "bits":
        if cnp.PyArray_NDIM(m) != 1 or cnp.PyArray_DIM(m, 0) != (n + 7) // 8:
            return False
    elif mask == "bytes":
        if not _same_dims(m, x):
            return False
    else:
        return False
    return _disjoint(m, x) and _disjoint(m, y)


def fast_forward(x, rate, seed, offset, out, mask, n_threads, mask_out=None):
    """(out, cache) for a valid training call with rate in (0, 1], or None (not handled)."""
    cdef cnp.ndarray xa, ya, stored
    cdef double r, scale
    cdef uint64_t s, o
    cdef uint32_t thr
    cdef int64_t n
    cdef int threads, kind
    cdef uint8_t *pbits = NULL
    cdef uint8_t *pbytes = NULL
    cdef bint f32
    if not _plain_float_array(x) or not PyFloat_CheckExact(rate) or type(mask) is not str:
        return None
    xa = <cnp.ndarray>x
    r = rate
    if not (0.0 < r <= 1.0):
        return None
    n = cnp.PyArray_SIZE(xa)
    if n == 0 or not _uint64_value(offset, &o) or (o != 0 and <uint64_t>n - 1 > UINT64_MAX - o):
        return None
    if seed is None:
        seed = _fresh_seed()
    if not _uint64_value(seed, &s):
        return None
    threads = _fast_threads(n_threads, n)
    y = _output_for(out, xa) if threads > 0 else None
    if y is None:
        return None
    ya = <cnp.ndarray>y
    stored = None
    if mask_out is not None:
        if not _usable_mask_out(mask_out, mask, xa, ya, n):
            return None
        stored = mask_out.view()          # the caller's buffer; the cache's view is read-only
        if mask == "bits":
            pbits = <uint8_t *>cnp.PyArray_DATA(stored)
        else:
            pbytes = <uint8_t *>cnp.PyArray_DATA(stored)
    elif mask == "bits":
        stored = cnp.PyArray_EMPTY(1, [(n + 7) // 8], cnp.NPY_UINT8, 0)
        pbits = <uint8_t *>cnp.PyArray_DATA(stored)
    elif mask == "bytes":
        stored = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(xa), cnp.PyArray_DIMS(xa), cnp.NPY_UINT8, 0)
        pbytes = <uint8_t *>cnp.PyArray_DATA(stored)
    elif mask != "recompute":
        return None
    thr = cydrop_threshold(1.0 - r)
    scale = cydrop_scale(thr)
    f32 = cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT32
    kind = _half_kind(xa)
    with nogil:
        if kind:
            _forward_h16_run(kind, cnp.PyArray_DATA(xa), cnp.PyArray_DATA(ya), n, s, o, thr,
                             scale, pbits, pbytes, threads)
        else:
            run_forward(f32, cnp.PyArray_DATA(xa), cnp.PyArray_DATA(ya), n, s, o, thr, scale,
                        pbits, pbytes, threads)
    if stored is not None:
        cnp.PyArray_CLEARFLAGS(stored, cnp.NPY_ARRAY_WRITEABLE)
    return ya, make_cache(r, seed, offset, thr, scale, x.shape, x.dtype, mask, stored)


def fast_backward(dout, cache, out, n_threads):
    """dx for a valid backward call of a non-identity cache, or None (not handled)."""
    cdef cnp.ndarray da, dx, m
    cdef DropoutCache c
    cdef int64_t n
    cdef int threads, kind
    cdef bint f32, is_bits
    if type(cache) is not DropoutCache or not _plain_float_array(dout):
        return None
    c = <DropoutCache>cache
    da = <cnp.ndarray>dout
    if c.mask_mode == "identity" or c.dtype != dout.dtype or dout.shape != c.shape:
        return None
    n = cnp.PyArray_SIZE(da)
    if n == 0:
        return None
    threads = _fast_threads(n_threads, n)
    y = _output_for(out, da) if threads > 0 else None
    if y is None:
        return None
    dx = <cnp.ndarray>y
    f32 = cnp.PyArray_TYPE(da) == cnp.NPY_FLOAT32
    kind = _half_kind(da)
    if c.mask_mode == "recompute":
        with nogil:
            if kind:
                _forward_h16_run(kind, cnp.PyArray_DATA(da), cnp.PyArray_DATA(dx), n, c._seed,
                                 c._offset, c.threshold, c.scale, NULL, NULL, threads)
            else:
                run_forward(f32, cnp.PyArray_DATA(da), cnp.PyArray_DATA(dx), n, c._seed,
                            c._offset, c.threshold, c.scale, NULL, NULL, threads)
    else:
        if type(c.stored_mask) is not cnp.ndarray:
            return None        # the general path raises
        m = <cnp.ndarray>c.stored_mask
        is_bits = c.mask_mode == "bits"
        if (cnp.PyArray_TYPE(m) != cnp.NPY_UINT8 or not cnp.PyArray_IS_C_CONTIGUOUS(m)
                or cnp.PyArray_NBYTES(m) != ((n + 7) // 8 if is_bits else n)
                or not _disjoint(m, dx)):
            return None        # a reshaped mask, or out overlapping it: the general path raises
        with nogil:
            if kind:
                _backward_h16_run(kind, cnp.PyArray_DATA(da), cnp.PyArray_DATA(dx), n,
                                  <const uint8_t *>cnp.PyArray_DATA(m), is_bits, c.scale,
                                  threads)
            else:
                run_backward(f32, cnp.PyArray_DATA(da), cnp.PyArray_DATA(dx), n,
                             <const uint8_t *>cnp.PyArray_DATA(m), is_bits, c.scale, threads)
    return dx
