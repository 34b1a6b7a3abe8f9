# cython: freethreading_compatible = False
"""Dropout-variant kernels: the Cython boundary of the variants' C kernels.

Design
------
a) C kernels: the variants' kernels (src/cydrop_variants_impl.h) are compiled per ISA with the
   core ones and sit in the same dispatch table (src/cydrop_kernels.h), reached here through
   ``cydrop._kernels.active_kernels()``: one ``set_isa`` switches every op. They read the one
   generator's 16-bit draw field at 16, 32 or 64 bits per element. The variants' keep mask and
   plain inverted dropout are the core ``mask`` and ``forward`` runs (cimported from _kernels).
b) Runner: cydrop/_parallel.pyx's ``run_tasks`` (one policy, ``use_threads``); a task is a chunk
   of 4096 elements, a group of rows, or one row, and which thread runs it never changes its
   result.
c) Wrappers: the Python-callable ``def`` functions below (fused float/double memoryviews).

Callers (cydrop/variants.py) validate and allocate everything first: the functions here take
contiguous 1-D buffers and trusted scalars and cannot fail once the GIL is released. They still
check, before releasing the GIL, that the buffers are as long as the kernels will index (a
ValueError, not an out-of-bounds access, for a direct call with wrong lengths). The thread count
itself is capped at the usable cores by ``effective_n_threads`` upstream; the runner never asks
OpenMP for more threads than there are tasks.
"""

import numpy as np

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from cydrop._kernels cimport (
    CYDROP_CHUNK, ChunkCtx, active_kernels, cydrop_kernels, cydrop_seed_key, cydrop_threshold,
    run_forward, run_mask,
)
from cydrop._parallel cimport run_tasks, task_fn, task_thread

ctypedef fused floating:
    float
    double

cdef enum:
    # Work weights for the runner's policy, in dropout-forward elements per element (see
    # cydrop/_parallel.pxd): a Gaussian element calls libm's log and cos, and an exact-k unit
    # makes a 32-bit key and takes part in a quickselect, each some tens of times the cost of a
    # forward element. Parallel from 4096 elements (two chunks or more), as these ops were.
    GAUSSIAN_WORK = 32
    EXACT_K_WORK = 32

CHUNK = CYDROP_CHUNK


cdef inline int _check_len(str name, Py_ssize_t got, int64_t need) except -1:
    if got < need:
        raise ValueError(f"{name} must have at least {need} elements, got {got}")
    return 0


cdef inline int64_t _nchunks(int64_t n) noexcept nogil:
    return (n + CYDROP_CHUNK - 1) // CYDROP_CHUNK


def threshold(double keep):
    """``cydrop_threshold(keep)`` = round(keep * 65536), the 16-bit keep threshold."""
    return cydrop_threshold(keep)


def draws(uint64_t seed, uint64_t p0, int64_t count):
    """The 16-bit draws of positions ``p0 .. p0 + count - 1`` as a uint16 array (test twin)."""
    out = np.empty(count, dtype=np.uint16)
    cdef uint16_t[::1] o = out        # OUT
    if count > 0:
        active_kernels().fill_draws(cydrop_seed_key(seed), p0, count, &o[0])
    return out


def normal(uint64_t w):
    """``cydrop_standard_normal(w)``: the Box-Muller normal of the 64-bit word ``w``
    (test twin)."""
    return active_kernels().standard_normal(w)


def keep_mask(int64_t n, uint64_t seed, uint64_t offset, uint32_t thr,
              uint8_t[::1] keep,         # OUT, 0/1
              int n_threads=1):
    """keep[i] := draw(offset + i) < thr."""
    if n <= 0:
        return
    _check_len("keep", keep.shape[0], n)
    with nogil:
        run_mask(n, seed, offset, thr, NULL, &keep[0], n_threads)


def dropout(const floating[::1] x,   # IN
            floating[::1] y,         # OUT (may be x)
            uint64_t seed, uint64_t offset, uint32_t thr, double scale, int n_threads=1):
    """y := where(draw(offset + i) < thr, x * scale, +0.0)."""
    cdef int64_t n = x.shape[0]
    if n == 0:
        return
    _check_len("y", y.shape[0], n)
    with nogil:
        run_forward(floating is float, &x[0], &y[0], n, seed, offset, thr, scale, NULL, NULL,
                    n_threads)


# ---------------------------------------------------------------- broadcast apply (row groups)

ctypedef struct BroadcastCtx:
    const cydrop_kernels *k
    const void *x
    void *y
    const uint8_t *keep
    int nd
    const int64_t *shape
    const int64_t *mstride
    double scale
    int64_t rows
    int64_t per           # rows per task


cdef void _broadcast_f32_task(void *ctx, int64_t t) noexcept nogil:
    cdef BroadcastCtx *c = <BroadcastCtx *>ctx
    cdef int64_t r0 = t * c.per
    c.k.broadcast_apply_f32(<const float *>c.x, <float *>c.y, c.keep, c.nd, c.shape, c.mstride,
                            <float>c.scale, r0, min(c.rows, r0 + c.per))


cdef void _broadcast_f64_task(void *ctx, int64_t t) noexcept nogil:
    cdef BroadcastCtx *c = <BroadcastCtx *>ctx
    cdef int64_t r0 = t * c.per
    c.k.broadcast_apply_f64(<const double *>c.x, <double *>c.y, c.keep, c.nd, c.shape,
                            c.mstride, c.scale, r0, min(c.rows, r0 + c.per))


cdef int _broadcast(task_fn task, const void *x, void *y, int64_t n, Py_ssize_t ylen,
                    const uint8_t[::1] keep, const int64_t[::1] shape,
                    const int64_t[::1] mstride, double scale, int n_threads) except -1:
    """:func:`bcast` and :func:`bcast_half` for ``n`` > 0 elements of ``x`` (``ylen`` of ``y``):
    check the geometry against the buffers, then run ``task`` over row groups without the GIL."""
    cdef int nd = shape.shape[0], d
    cdef int64_t length
    cdef BroadcastCtx c
    cdef object total = 1, last = 0
    # The C kernel walks `shape` with a 64-entry odometer and reads keep[idx . mstride]: check
    # the geometry (in Python ints, no overflow) so that it stays inside every buffer.
    if not 1 <= nd <= 64 or mstride.shape[0] != nd:
        raise ValueError(f"shape and mstride must have the same length, 1 to 64, got "
                         f"{nd} and {mstride.shape[0]}")
    for d in range(nd):
        if shape[d] < 1 or mstride[d] < 0:
            raise ValueError(f"shape must be positive and mstride non-negative, got "
                             f"shape[{d}]={shape[d]}, mstride[{d}]={mstride[d]}")
        total *= <object>shape[d]
        last += (<object>shape[d] - 1) * <object>mstride[d]
    if total != n:
        raise ValueError(f"shape must describe x's {n} elements, got {total}")
    _check_len("y", ylen, n)
    if keep.shape[0] <= last:
        raise ValueError(f"keep must have at least {last + 1} elements, got {keep.shape[0]}")
    length = shape[nd - 1]
    c.k, c.x, c.y, c.keep = active_kernels(), x, y, &keep[0]
    c.nd, c.shape, c.mstride, c.scale = nd, &shape[0], &mstride[0], scale
    c.rows = n // length
    c.per = max(1, CYDROP_CHUNK // length)      # rows per task: about a chunk of elements
    with nogil:
        run_tasks(task, &c, (c.rows + c.per - 1) // c.per, n, n_threads)
    return 0


def bcast(const floating[::1] x,      # IN, C order, shape `shape`
          floating[::1] y,            # OUT (may be x)
          const uint8_t[::1] keep,    # IN, the reduced 0/1 mask
          const int64_t[::1] shape,   # IN, collapsed shape, 1 <= len <= 64
          const int64_t[::1] mstride, # IN, mask strides (0 on broadcast axes)
          double scale, int n_threads=1):
    """y[idx] := where(keep[idx . mstride], x[idx] * scale, +0.0)."""
    if x.shape[0]:
        _broadcast(_broadcast_f32_task if floating is float else _broadcast_f64_task, &x[0],
                   &y[0] if y.shape[0] else NULL, x.shape[0], y.shape[0], keep, shape, mstride,
                   scale, n_threads)


cdef void _broadcast_f16_task(void *ctx, int64_t t) noexcept nogil:
    cdef BroadcastCtx *c = <BroadcastCtx *>ctx
    cdef int64_t r0 = t * c.per
    c.k.broadcast_apply_f16(<const uint16_t *>c.x, <uint16_t *>c.y, c.keep, c.nd, c.shape,
                            c.mstride, <float>c.scale, r0, min(c.rows, r0 + c.per))


cdef void _broadcast_bf16_task(void *ctx, int64_t t) noexcept nogil:
    cdef BroadcastCtx *c = <BroadcastCtx *>ctx
    cdef int64_t r0 = t * c.per
    c.k.broadcast_apply_bf16(<const uint16_t *>c.x, <uint16_t *>c.y, c.keep, c.nd, c.shape,
                             c.mstride, <float>c.scale, r0, min(c.rows, r0 + c.per))


def bcast_half(const uint16_t[::1] x,      # IN, float16 or bfloat16 bits, C order
               uint16_t[::1] y,            # OUT (may be x)
               const uint8_t[::1] keep, const int64_t[::1] shape,
               const int64_t[::1] mstride, double scale, int n_threads=1, bint bf16=False):
    """:func:`bcast` for a 16-bit format: kept y = T(float32(x) * scale), dropped +0.0."""
    if x.shape[0]:
        _broadcast(_broadcast_bf16_task if bf16 else _broadcast_f16_task, &x[0],
                   &y[0] if y.shape[0] else NULL, x.shape[0], y.shape[0], keep, shape, mstride,
                   scale, n_threads)


# ---------------------------------------------------------------- exact-k masks (one row a task)

ctypedef struct ExactKCtx:
    const cydrop_kernels *k
    int64_t n
    int64_t units
    uint64_t key
    uint64_t offset
    uint8_t *keep
    uint64_t *scratch     # one n-long slice per thread of the team


cdef void _exact_k_task(void *ctx, int64_t r) noexcept nogil:
    cdef ExactKCtx *c = <ExactKCtx *>ctx
    c.k.exact_k_row(c.n, c.units, c.key, c.offset + <uint64_t>(r * c.n), c.keep + r * c.n,
                    c.scratch + task_thread() * c.n)


def exactk_mask(int64_t rows, int64_t n, int64_t k, uint64_t seed, uint64_t offset,
                uint8_t[::1] keep,        # OUT, rows * n 0/1
                uint64_t[::1] scratch,    # scratch, n_threads * n
                int n_threads=1):
    """Row r keeps all but the k units with the smallest keys (u32word(offset + r n + j), j)."""
    cdef ExactKCtx c
    if rows <= 0 or n <= 0:
        return
    if not 0 <= k <= n or n >= (<int64_t>1) << 32:
        raise ValueError(f"need 0 <= k <= n < 2**32, got k={k}, n={n}")
    if n_threads > rows:
        n_threads = <int>rows          # the runner's team is never larger
    _check_len("keep", keep.shape[0], rows * n)
    # each thread of the team uses its own n-long slice of scratch (task_thread() < team size)
    _check_len("scratch", scratch.shape[0], (n_threads if n_threads > 1 else 1) * n)
    c.k, c.n, c.units, c.key, c.offset = active_kernels(), n, k, cydrop_seed_key(seed), offset
    c.keep, c.scratch = &keep[0], &scratch[0]
    with nogil:
        run_tasks(_exact_k_task, &c, rows, rows * n * EXACT_K_WORK, n_threads)


# ---------------------------------------------------------------- AlphaDropout, GaussianDropout

cdef inline void _init_ctx(ChunkCtx *c, const void *x, void *y, int64_t n, uint64_t seed,
                           uint64_t offset, uint32_t thr, double s0, double s1,
                           double s2) noexcept:
    c.k, c.x, c.b, c.y, c.n, c.m = active_kernels(), x, NULL, y, n, 0
    c.key, c.offset, c.thr = cydrop_seed_key(seed), offset, thr
    c.s[0], c.s[1], c.s[2] = s0, s1, s2
    c.bits, c.bytes_, c.mask, c.is_bits = NULL, NULL, NULL, False


cdef void _alpha_f32_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.alpha_dropout_f32(<const float *>c.x, <float *>c.y, c.n, c.key, c.offset, c.thr,
                          <float>c.s[0], <float>c.s[1], <float>c.s[2], t)


cdef void _alpha_f64_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.alpha_dropout_f64(<const double *>c.x, <double *>c.y, c.n, c.key, c.offset, c.thr,
                          c.s[0], c.s[1], c.s[2], t)


def alpha(const floating[::1] x,   # IN
          floating[::1] y,         # OUT (may be x)
          uint64_t seed, uint64_t offset, uint32_t thr, double a, double b, double c,
          int n_threads=1):
    """y := where(draw(offset + i) < thr, a * x + b, c), constants in x's precision."""
    cdef int64_t n = x.shape[0]
    cdef ChunkCtx ctx
    if n == 0:
        return
    _check_len("y", y.shape[0], n)
    _init_ctx(&ctx, &x[0], &y[0], n, seed, offset, thr, a, b, c)
    with nogil:
        run_tasks(_alpha_f32_task if floating is float else _alpha_f64_task, &ctx, _nchunks(n),
                  n, n_threads)


cdef void _gaussian_f32_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.gaussian_dropout_f32(<const float *>c.x, <float *>c.y, c.n, c.key, c.offset, c.s[0], t)


cdef void _gaussian_f64_task(void *ctx, int64_t t) noexcept nogil:
    cdef ChunkCtx *c = <ChunkCtx *>ctx
    c.k.gaussian_dropout_f64(<const double *>c.x, <double *>c.y, c.n, c.key, c.offset, c.s[0],
                             t)


def gauss(const floating[::1] x,   # IN
          floating[::1] y,         # OUT (may be x)
          uint64_t seed, uint64_t offset, double sigma, int n_threads=1):
    """y := x * (1 + sigma * z(u64 word offset + i)), the factor rounded to x's precision."""
    cdef int64_t n = x.shape[0]
    cdef ChunkCtx c
    if n == 0:
        return
    _check_len("y", y.shape[0], n)
    _init_ctx(&c, &x[0], &y[0], n, seed, offset, 0, sigma, 0.0, 0.0)
    with nogil:
        run_tasks(_gaussian_f32_task if floating is float else _gaussian_f64_task, &c,
                  _nchunks(n), n * GAUSSIAN_WORK, n_threads)
