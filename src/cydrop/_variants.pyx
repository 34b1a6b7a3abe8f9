# cython: freethreading_compatible = False
"""Dropout-variant kernels: OpenMP loops over the C kernels of src/cydrop_variants.h.

Design
------
a) src/cydrop_rng.h: the counter-based 16-bit draw field, draw(seed, position), shared with
   the core dropout kernels.
b) src/cydrop_variants.c: plain C kernels, one task each (a chunk of 4096 elements, a row, or
   a group of rows), reading the field at 16, 32 or 64 bits per element.
c) This module: loops over tasks, ``prange(schedule='static')`` with the GIL released, or a
   plain loop for one thread or few tasks. Which thread runs a task never changes its result.

Callers (cydrop/variants.py) validate and allocate everything first: the functions here take
contiguous 1-D buffers and trusted scalars and cannot fail once the GIL is released. They still
check, before releasing the GIL, that the buffers are as long as the loops will index (a
ValueError, not an out-of-bounds access, for a direct call with wrong lengths), and they never
ask OpenMP for more threads than there are tasks (a team it cannot allocate aborts the process).
The thread count itself is capped at the usable cores by ``effective_n_threads`` upstream.
"""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from cydrop._variants cimport (
    CYDROP_VCHUNK, cydrop_seed_key, cydrop_threshold, cydrop_v_alpha_f32, cydrop_v_alpha_f64,
    cydrop_v_bcast_f32, cydrop_v_bcast_f64, cydrop_v_dropout_f32, cydrop_v_dropout_f64,
    cydrop_v_exactk_row, cydrop_v_fill_draws, cydrop_v_gauss_f32, cydrop_v_gauss_f64,
    cydrop_v_keep, cydrop_v_normal,
)

ctypedef fused floating:
    float
    double

# Below this many tasks a call runs on the calling thread (the result is the same either way).
cdef int64_t PARALLEL_MIN_TASKS = 4

CHUNK = CYDROP_VCHUNK


cdef inline int _team(int64_t ntasks, int n_threads) noexcept nogil:
    """Never ask OpenMP for more threads than there are tasks (chunks or rows): a team it cannot
    allocate aborts the process. Callers have already capped n_threads at the usable cores."""
    if ntasks < 1:
        return 1
    return <int>ntasks if ntasks < n_threads else n_threads


cdef inline int _check_len(str name, Py_ssize_t got, int64_t need) except -1:
    if got < need:
        raise ValueError(f"{name} must have at least {need} elements, got {got}")
    return 0


def threshold(double keep):
    """``cydrop_threshold(keep)`` = round(keep * 65536), the 16-bit keep threshold."""
    return cydrop_threshold(keep)


def draws(uint64_t seed, uint64_t p0, int64_t count):
    """The 16-bit draws of positions ``p0 .. p0 + count - 1`` as a uint16 array (test twin)."""
    out = np.empty(count, dtype=np.uint16)
    cdef uint16_t[::1] o = out
    if count > 0:
        cydrop_v_fill_draws(cydrop_seed_key(seed), p0, count, &o[0])
    return out


def normal(uint64_t w):
    """``cydrop_v_normal(w)``: the Box-Muller normal of the 64-bit word ``w`` (test twin)."""
    return cydrop_v_normal(w)


def keep_mask(int64_t n, uint64_t seed, uint64_t offset, uint32_t thr,
              uint8_t[::1] keep,         # OUT, 0/1
              int n_threads=1):
    """keep[i] := draw(offset + i) < thr."""
    cdef int64_t t, nchunks = (n + CYDROP_VCHUNK - 1) // CYDROP_VCHUNK
    cdef uint64_t key = cydrop_seed_key(seed)
    if n <= 0:
        return
    _check_len("keep", keep.shape[0], n)
    cdef uint8_t *pk = &keep[0]
    n_threads = _team(nchunks, n_threads)
    with nogil:
        if n_threads <= 1 or nchunks < PARALLEL_MIN_TASKS:
            for t in range(nchunks):
                cydrop_v_keep(n, key, offset, thr, pk, t)
        else:
            for t in prange(nchunks, schedule="static", num_threads=n_threads):
                cydrop_v_keep(n, key, offset, thr, pk, t)


def dropout(const floating[::1] x,   # IN
            floating[::1] y,         # OUT (may be x)
            uint64_t seed, uint64_t offset, uint32_t thr, double scale, int n_threads=1):
    """y := where(draw(offset + i) < thr, x * scale, +0.0)."""
    cdef int64_t n = x.shape[0], t, nchunks = (n + CYDROP_VCHUNK - 1) // CYDROP_VCHUNK
    cdef uint64_t key = cydrop_seed_key(seed)
    cdef floating s = <floating>scale
    if n == 0:
        return
    _check_len("y", y.shape[0], n)
    cdef const floating *px = &x[0]
    cdef floating *py = &y[0]
    n_threads = _team(nchunks, n_threads)
    with nogil:
        if n_threads <= 1 or nchunks < PARALLEL_MIN_TASKS:
            for t in range(nchunks):
                if floating is float:
                    cydrop_v_dropout_f32(px, py, n, key, offset, thr, s, t)
                else:
                    cydrop_v_dropout_f64(px, py, n, key, offset, thr, s, t)
        else:
            for t in prange(nchunks, schedule="static", num_threads=n_threads):
                if floating is float:
                    cydrop_v_dropout_f32(px, py, n, key, offset, thr, s, t)
                else:
                    cydrop_v_dropout_f64(px, py, n, key, offset, thr, s, t)


def bcast(const floating[::1] x,      # IN, C order, shape `shape`
          floating[::1] y,            # OUT (may be x)
          const uint8_t[::1] keep,    # IN, the reduced 0/1 mask
          const int64_t[::1] shape,   # IN, collapsed shape, 1 <= len <= 64
          const int64_t[::1] mstride, # IN, mask strides (0 on broadcast axes)
          double scale, int n_threads=1):
    """y[idx] := where(keep[idx . mstride], x[idx] * scale, +0.0)."""
    cdef int nd = shape.shape[0], d
    cdef int64_t n = x.shape[0], length, rows, per, ntasks, t, r0, r1
    cdef floating s = <floating>scale
    if n == 0:
        return
    # The C kernel walks `shape` with a 64-entry odometer and reads keep[idx . mstride]: check
    # the geometry (in Python ints, no overflow) so that it stays inside every buffer.
    if not 1 <= nd <= 64 or mstride.shape[0] != nd:
        raise ValueError(f"shape and mstride must have the same length, 1 to 64, got "
                         f"{nd} and {mstride.shape[0]}")
    cdef object total = 1, last = 0       # Python ints: no overflow while checking
    for d in range(nd):
        if shape[d] < 1 or mstride[d] < 0:
            raise ValueError(f"shape must be positive and mstride non-negative, got "
                             f"shape[{d}]={shape[d]}, mstride[{d}]={mstride[d]}")
        total *= <object>shape[d]
        last += (<object>shape[d] - 1) * <object>mstride[d]
    if total != n:
        raise ValueError(f"shape must describe x's {n} elements, got {total}")
    _check_len("y", y.shape[0], n)
    if keep.shape[0] <= last:
        raise ValueError(f"keep must have at least {last + 1} elements, got {keep.shape[0]}")
    length = shape[nd - 1]
    rows = n // length
    per = max(1, CYDROP_VCHUNK // length)        # rows per task: about a chunk of elements
    ntasks = (rows + per - 1) // per
    cdef const floating *px = &x[0]
    cdef floating *py = &y[0]
    cdef const uint8_t *pk = &keep[0]
    cdef const int64_t *psh = &shape[0]
    cdef const int64_t *pms = &mstride[0]
    n_threads = _team(ntasks, n_threads)
    with nogil:
        if n_threads <= 1 or ntasks < PARALLEL_MIN_TASKS:
            if floating is float:
                cydrop_v_bcast_f32(px, py, pk, nd, psh, pms, s, 0, rows)
            else:
                cydrop_v_bcast_f64(px, py, pk, nd, psh, pms, s, 0, rows)
        else:
            for t in prange(ntasks, schedule="static", num_threads=n_threads):
                r0 = t * per
                r1 = min(rows, r0 + per)
                if floating is float:
                    cydrop_v_bcast_f32(px, py, pk, nd, psh, pms, s, r0, r1)
                else:
                    cydrop_v_bcast_f64(px, py, pk, nd, psh, pms, s, r0, r1)


def exactk_mask(int64_t rows, int64_t n, int64_t k, uint64_t seed, uint64_t offset,
                uint8_t[::1] keep,        # OUT, rows * n 0/1
                uint64_t[::1] scratch,    # scratch, n_threads * n
                int n_threads=1):
    """Row r keeps all but the k units with the smallest keys (u32word(offset + r n + j), j)."""
    cdef uint64_t key = cydrop_seed_key(seed)
    cdef int64_t r
    if rows <= 0 or n <= 0:
        return
    if not 0 <= k <= n or n >= (<int64_t>1) << 32:
        raise ValueError(f"need 0 <= k <= n < 2**32, got k={k}, n={n}")
    n_threads = _team(rows, n_threads)
    _check_len("keep", keep.shape[0], rows * n)
    # each thread of the team uses its own n-long slice of scratch (threadid() < team size)
    _check_len("scratch", scratch.shape[0], (n_threads if n_threads > 1 else 1) * n)
    cdef uint8_t *pk = &keep[0]
    cdef uint64_t *ps = &scratch[0]
    with nogil:
        if n_threads <= 1 or rows < 2:
            for r in range(rows):
                cydrop_v_exactk_row(n, k, key, offset + <uint64_t>(r * n), pk + r * n, ps)
        else:
            for r in prange(rows, schedule="static", num_threads=n_threads):
                cydrop_v_exactk_row(n, k, key, offset + <uint64_t>(r * n), pk + r * n,
                                    ps + threadid() * n)


def alpha(const floating[::1] x,   # IN
          floating[::1] y,         # OUT (may be x)
          uint64_t seed, uint64_t offset, uint32_t thr, double a, double b, double c,
          int n_threads=1):
    """y := where(draw(offset + i) < thr, a * x + b, c), constants in x's precision."""
    cdef int64_t n = x.shape[0], t, nchunks = (n + CYDROP_VCHUNK - 1) // CYDROP_VCHUNK
    cdef uint64_t key = cydrop_seed_key(seed)
    cdef floating fa = <floating>a, fb = <floating>b, fc = <floating>c
    if n == 0:
        return
    _check_len("y", y.shape[0], n)
    cdef const floating *px = &x[0]
    cdef floating *py = &y[0]
    n_threads = _team(nchunks, n_threads)
    with nogil:
        if n_threads <= 1 or nchunks < PARALLEL_MIN_TASKS:
            for t in range(nchunks):
                if floating is float:
                    cydrop_v_alpha_f32(px, py, n, key, offset, thr, fa, fb, fc, t)
                else:
                    cydrop_v_alpha_f64(px, py, n, key, offset, thr, fa, fb, fc, t)
        else:
            for t in prange(nchunks, schedule="static", num_threads=n_threads):
                if floating is float:
                    cydrop_v_alpha_f32(px, py, n, key, offset, thr, fa, fb, fc, t)
                else:
                    cydrop_v_alpha_f64(px, py, n, key, offset, thr, fa, fb, fc, t)


def gauss(const floating[::1] x,   # IN
          floating[::1] y,         # OUT (may be x)
          uint64_t seed, uint64_t offset, double sigma, int n_threads=1):
    """y := x * (1 + sigma * z(u64 word offset + i)), the factor rounded to x's precision."""
    cdef int64_t n = x.shape[0], t, nchunks = (n + CYDROP_VCHUNK - 1) // CYDROP_VCHUNK
    cdef uint64_t key = cydrop_seed_key(seed)
    if n == 0:
        return
    _check_len("y", y.shape[0], n)
    cdef const floating *px = &x[0]
    cdef floating *py = &y[0]
    n_threads = _team(nchunks, n_threads)
    with nogil:
        if n_threads <= 1 or nchunks < 2:
            for t in range(nchunks):
                if floating is float:
                    cydrop_v_gauss_f32(px, py, n, key, offset, sigma, t)
                else:
                    cydrop_v_gauss_f64(px, py, n, key, offset, sigma, t)
        else:
            for t in prange(nchunks, schedule="static", num_threads=n_threads):
                if floating is float:
                    cydrop_v_gauss_f32(px, py, n, key, offset, sigma, t)
                else:
                    cydrop_v_gauss_f64(px, py, n, key, offset, sigma, t)
