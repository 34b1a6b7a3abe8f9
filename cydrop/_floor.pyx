# cython: freethreading_compatible = False
"""The benchmarks' memory floors: STREAM-style ``y := x * s`` with each dropout mode's traffic.

Design
------
a) C kernels: ``cydrop_floor_f32_baseline`` and ``cydrop_floor_f32_avx2`` (src/cydrop_floor.h),
   one chunk of CYDROP_CHUNK elements, outside the production kernel table. Beside ``y`` a floor
   may write a mask (packed bits or 0/1 bytes, from the sign bits of x) and read one (XOR-folded
   into the result), so every mode of the dropout forward and backward has a floor that moves
   the same bytes and does no generator or mask-decode work.
b) Runner: cydrop/_parallel.pyx's ``run_tasks``, with the forward's tasks and work, so a floor
   is chunked and threaded exactly like ``cydrop._kernels.forward``.
c) Wrapper: ``stream_scale``, which checks its arguments (it is called directly by the bench).
"""

from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc

from cydrop._parallel cimport run_tasks

cdef extern from "cydrop_floor.h" nogil:
    int CYDROP_CHUNK
    uint8_t cydrop_floor_f32_baseline(const float *x, float *y, int64_t n, float s,
                                      uint8_t *wbits, uint8_t *wbytes, const uint8_t *rmask,
                                      int r_is_bits, int64_t t) noexcept
    uint8_t cydrop_floor_f32_avx2(const float *x, float *y, int64_t n, float s,
                                  uint8_t *wbits, uint8_t *wbytes, const uint8_t *rmask,
                                  int r_is_bits, int64_t t) noexcept
    int cydrop_floor_have_avx2() noexcept
    void cydrop_floor_add_f32_baseline(const float *x, const float *r, float *y, int64_t n,
                                       int64_t t) noexcept
    void cydrop_floor_add_f32_avx2(const float *x, const float *r, float *y, int64_t n,
                                   int64_t t) noexcept


ctypedef uint8_t (*floor_fn)(const float *x, float *y, int64_t n, float s, uint8_t *wbits,
                             uint8_t *wbytes, const uint8_t *rmask, int r_is_bits,
                             int64_t t) noexcept nogil


ctypedef struct ScaleCtx:
    floor_fn fn
    const float *x
    float *y
    int64_t n
    float s
    uint8_t *wbits
    uint8_t *wbytes
    const uint8_t *rmask
    int r_is_bits
    uint8_t *fold       # one byte per task: the XOR of the chunk's read mask bytes


cdef void _stream_scale_task(void *ctx, int64_t t) noexcept nogil:
    cdef ScaleCtx *c = <ScaleCtx *>ctx
    cdef uint8_t r = c.fn(c.x, c.y, c.n, c.s, c.wbits, c.wbytes, c.rmask, c.r_is_bits, t)
    if c.fold != NULL:
        c.fold[t] = r


cdef inline bint _ranges_disjoint(const char *a0, Py_ssize_t na, const char *b0,
                                  Py_ssize_t nb) noexcept nogil:
    return a0 + na <= b0 or b0 + nb <= a0


_ISAS = ("baseline", "avx2") if cydrop_floor_have_avx2() else ("baseline",)


def isas():
    """The ISAs the floors are built for and this CPU runs: ``baseline`` and maybe ``avx2``."""
    return list(_ISAS)


def stream_scale(const float[::1] x,   # IN
                 float[::1] y,         # OUT, disjoint from x
                 float s, int n_threads=1, *,
                 uint8_t[::1] mask_bits=None,          # OUT, (n + 7) // 8 bytes
                 uint8_t[::1] mask_bytes=None,         # OUT, n bytes
                 const uint8_t[::1] read_bits=None,    # IN, (n + 7) // 8 bytes
                 const uint8_t[::1] read_bytes=None,   # IN, n bytes
                 isa=None):
    """y := x * s, chunked and threaded exactly like :func:`cydrop._kernels.forward`.

    A STREAM-style scale has the memory traffic of a dropout forward and no generator, so its
    time at 1 and at ``n_threads`` threads is what the memory system allows. The keywords give
    it the traffic of the other modes: ``mask_bits`` / ``mask_bytes`` receive the sign bits of
    x (packed little-endian, or 0/1 bytes) as the forward's stored mask would be written;
    ``read_bits`` / ``read_bytes`` are read as the backward reads its mask. Returns the XOR of
    all bytes read from the read mask (0 without one). ``isa``: ``"baseline"`` or ``"avx2"``
    (default: ``"avx2"`` where available). Not part of the public API.
    """
    cdef int64_t n = x.shape[0]
    cdef int64_t nb = (n + 7) // 8
    cdef int64_t ntasks = (n + CYDROP_CHUNK - 1) // CYDROP_CHUNK
    cdef ScaleCtx c
    cdef uint8_t total = 0
    cdef int64_t t
    cdef uint8_t small[256]     # the fold bytes of calls up to 1M elements: no malloc
    if n != y.shape[0]:
        raise ValueError(f"y: must have x's {n} elements, got {y.shape[0]}")
    if n_threads < 1:
        raise ValueError(f"n_threads: must be >= 1, got {n_threads}")
    if mask_bits is not None and mask_bits.shape[0] != nb:
        raise ValueError(f"mask_bits: must have {nb} bytes, got {mask_bits.shape[0]}")
    if mask_bytes is not None and mask_bytes.shape[0] != n:
        raise ValueError(f"mask_bytes: must have {n} bytes, got {mask_bytes.shape[0]}")
    if read_bits is not None and read_bytes is not None:
        raise ValueError("read_bits, read_bytes: give at most one")
    if read_bits is not None and read_bits.shape[0] != nb:
        raise ValueError(f"read_bits: must have {nb} bytes, got {read_bits.shape[0]}")
    if read_bytes is not None and read_bytes.shape[0] != n:
        raise ValueError(f"read_bytes: must have {n} bytes, got {read_bytes.shape[0]}")
    if isa is None:
        isa = _ISAS[len(_ISAS) - 1]
    elif isa not in _ISAS:
        raise ValueError(f"isa: must be one of {list(_ISAS)}, got {isa!r}")
    if n == 0:
        return 0
    if not _ranges_disjoint(<const char *>&x[0], n * sizeof(float), <const char *>&y[0],
                            n * sizeof(float)):
        raise ValueError("y: must not overlap x")
    c.fn = cydrop_floor_f32_avx2 if isa == "avx2" else cydrop_floor_f32_baseline
    c.x, c.y, c.n, c.s = &x[0], &y[0], n, s
    c.wbits = &mask_bits[0] if mask_bits is not None else NULL
    c.wbytes = &mask_bytes[0] if mask_bytes is not None else NULL
    c.rmask, c.r_is_bits, c.fold = NULL, 0, NULL
    if read_bits is not None:
        c.rmask, c.r_is_bits = &read_bits[0], 1
    elif read_bytes is not None:
        c.rmask = &read_bytes[0]
    if c.rmask != NULL:
        c.fold = &small[0] if ntasks <= 256 else <uint8_t *>malloc(ntasks)
        if c.fold == NULL:
            raise MemoryError()
    try:
        with nogil:
            run_tasks(_stream_scale_task, &c, ntasks, n, n_threads)
        if c.fold != NULL:
            for t in range(ntasks):
                total ^= c.fold[t]
    finally:
        if c.fold != &small[0]:
            free(c.fold)
    return total


# ---------------------------------------------------------------- the residual-add floor

ctypedef void (*add_floor_fn)(const float *x, const float *r, float *y, int64_t n,
                              int64_t t) noexcept nogil


ctypedef struct AddCtx:
    add_floor_fn fn
    const float *x
    const float *r
    float *y
    int64_t n


cdef void _stream_add_task(void *ctx, int64_t t) noexcept nogil:
    cdef AddCtx *c = <AddCtx *>ctx
    c.fn(c.x, c.r, c.y, c.n, t)


def stream_add(const float[::1] x,   # IN
               const float[::1] r,   # IN
               float[::1] y,         # OUT, disjoint from x and r
               int n_threads=1, *, isa=None):
    """y := x + r, chunked and threaded like :func:`cydrop._modern.dropout_add`.

    The floor of ``cydrop.dropout_add``: it reads x and the residual and writes the output, the
    traffic of the fused op, with no generator. ``isa``: ``"baseline"`` or ``"avx2"`` (default:
    ``"avx2"`` where available). Not part of the public API.
    """
    cdef int64_t n = x.shape[0]
    cdef AddCtx c
    if n != y.shape[0] or n != r.shape[0]:
        raise ValueError(f"y, r: must have x's {n} elements, got {y.shape[0]} and {r.shape[0]}")
    if n_threads < 1:
        raise ValueError(f"n_threads: must be >= 1, got {n_threads}")
    if isa is None:
        isa = _ISAS[len(_ISAS) - 1]
    elif isa not in _ISAS:
        raise ValueError(f"isa: must be one of {list(_ISAS)}, got {isa!r}")
    if n == 0:
        return
    if not (_ranges_disjoint(<const char *>&x[0], n * sizeof(float), <const char *>&y[0],
                             n * sizeof(float))
            and _ranges_disjoint(<const char *>&r[0], n * sizeof(float), <const char *>&y[0],
                                 n * sizeof(float))):
        raise ValueError("y: must not overlap x or r")
    c.fn = cydrop_floor_add_f32_avx2 if isa == "avx2" else cydrop_floor_add_f32_baseline
    c.x, c.r, c.y, c.n = &x[0], &r[0], &y[0], n
    with nogil:
        run_tasks(_stream_add_task, &c, (n + CYDROP_CHUNK - 1) // CYDROP_CHUNK, n, n_threads)
