# cython: freethreading_compatible = False
"""Modern dropout kernels: the Cython boundary of src/cydrop_modern_impl.h.

Design
------
a) C kernels: dropout + residual add (with a bias over the last axis, and an optional per-sample
   decision for stochastic depth) and a row-wise stable softmax + dropout, compiled per ISA into
   the one dispatch table (the modern block at the end of ``cydrop_kernels``), reached here
   through ``cydrop._kernels.active_kernels()``: one ``set_isa`` switches them with the rest.
b) Runner: cydrop/_parallel.pyx's ``run_tasks``; a task is a chunk of 4096 elements or a group
   of rows, and which thread runs it never changes its result.
c) Wrappers: the ``def`` functions below (fused float/double memoryviews).

Callers (cydrop/residual.py, cydrop/attention.py) validate and allocate everything; the
functions here check only that the buffers are as long as the kernels will index.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from cydrop._kernels cimport CYDROP_CHUNK, active_kernels, cydrop_seed_key
from cydrop._modern cimport modern_table
from cydrop._parallel cimport run_tasks

ctypedef fused floating:
    float
    double

cdef enum:
    # Work weight of a softmax element in dropout-forward elements (two exponentials, a sum, a
    # division's share and the draw): for the runner's serial/parallel policy only.
    SOFTMAX_WORK = 8
    # ... and of an element of its backward (the draw, two multiplies, a sum's share and a
    # multiply-subtract: no exponential).
    SOFTMAX_BACKWARD_WORK = 3


ctypedef struct AddCtx:
    const modern_table *k
    const void *x
    const void *res
    const void *bias
    int64_t m
    const uint8_t *rowkeep
    int64_t rowlen
    void *y
    int64_t n
    uint64_t key
    uint64_t offset
    uint32_t thr
    double scale


cdef void _add_f32_task(void *ctx, int64_t t) noexcept nogil:
    cdef AddCtx *c = <AddCtx *>ctx
    c.k.dropout_add_f32(<const float *>c.x, <const float *>c.res, <const float *>c.bias, c.m,
                        c.rowkeep, c.rowlen, <float *>c.y, c.n, c.key, c.offset, c.thr,
                        <float>c.scale, t)


cdef void _add_f64_task(void *ctx, int64_t t) noexcept nogil:
    cdef AddCtx *c = <AddCtx *>ctx
    c.k.dropout_add_f64(<const double *>c.x, <const double *>c.res, <const double *>c.bias,
                        c.m, c.rowkeep, c.rowlen, <double *>c.y, c.n, c.key, c.offset, c.thr,
                        c.scale, t)


cdef inline int _check_len(str name, Py_ssize_t got, int64_t need) except -1:
    if got < need:
        raise ValueError(f"{name} must have at least {need} elements, got {got}")
    return 0


def dropout_add(const floating[::1] x,          # IN
                const floating[::1] res,        # IN, or None (no residual)
                const floating[::1] bias,       # IN, or None; x.size % len(bias) == 0
                const uint8_t[::1] rowkeep,     # IN, or None (per-element draws)
                int64_t rowlen,
                floating[::1] y,                # OUT (may be x or res)
                uint64_t seed, uint64_t offset, uint32_t thr, double scale,
                int n_threads=1):
    """y := res + where(keep, (x + bias[i % m]) * scale, +0.0).

    keep of element i is draw(offset + i) < thr, or rowkeep[i // rowlen] when rowkeep is given.
    """
    cdef int64_t n = x.shape[0], m = 0
    cdef AddCtx c
    if n == 0:
        return
    _check_len("y", y.shape[0], n)
    if res is not None:
        _check_len("res", res.shape[0], n)
    if bias is not None:
        m = bias.shape[0]
        if m == 0 or n % m:
            raise ValueError(f"bias must have a length dividing x's {n} elements, got {m}")
    if rowkeep is not None:
        if rowlen <= 0 or n % rowlen:
            raise ValueError(f"rowlen must divide x's {n} elements, got {rowlen}")
        _check_len("rowkeep", rowkeep.shape[0], n // rowlen)
    c.k = <const modern_table *>active_kernels()
    c.x, c.y, c.n = &x[0], &y[0], n
    c.res = &res[0] if res is not None else NULL
    c.bias = &bias[0] if bias is not None else NULL
    c.m = m
    c.rowkeep = &rowkeep[0] if rowkeep is not None else NULL
    c.rowlen = rowlen if rowkeep is not None else 1
    c.key, c.offset, c.thr, c.scale = cydrop_seed_key(seed), offset, thr, scale
    with nogil:
        run_tasks(_add_f32_task if floating is float else _add_f64_task, &c,
                  (n + CYDROP_CHUNK - 1) // CYDROP_CHUNK, n, n_threads)


ctypedef struct SoftmaxCtx:
    const modern_table *k
    const void *z
    void *y
    void *p
    int64_t L
    int64_t rows
    int64_t per
    uint64_t key
    uint64_t offset
    uint32_t thr
    double scale


cdef int _rows_ctx(SoftmaxCtx *c, str name, int64_t n, int64_t L, uint64_t seed,
                   uint64_t offset, uint32_t thr, double scale) except -1:
    """The row geometry, kernel table and draw parameters of a softmax call (forward or
    backward) over ``name``'s ``n`` elements in rows of ``L``; the data pointers are the
    caller's."""
    if L <= 0 or n % L:
        raise ValueError(f"L must divide {name}'s {n} elements, got {L}")
    c.k = <const modern_table *>active_kernels()
    c.L, c.rows = L, n // L
    c.per = max(1, CYDROP_CHUNK // L)
    c.key, c.offset, c.thr, c.scale = cydrop_seed_key(seed), offset, thr, scale
    return 0


cdef void _softmax_f32_task(void *ctx, int64_t t) noexcept nogil:
    cdef SoftmaxCtx *c = <SoftmaxCtx *>ctx
    cdef int64_t r0 = t * c.per
    c.k.softmax_dropout_f32(<const float *>c.z, <float *>c.y, <float *>c.p, c.L, c.key,
                            c.offset, c.thr, <float>c.scale, r0, min(c.rows, r0 + c.per))


cdef void _softmax_f64_task(void *ctx, int64_t t) noexcept nogil:
    cdef SoftmaxCtx *c = <SoftmaxCtx *>ctx
    cdef int64_t r0 = t * c.per
    c.k.softmax_dropout_f64(<const double *>c.z, <double *>c.y, <double *>c.p, c.L, c.key,
                            c.offset, c.thr, c.scale, r0, min(c.rows, r0 + c.per))


def softmax_dropout(const floating[::1] z,   # IN, rows * L, C order
                    floating[::1] y,         # OUT (may be z)
                    floating[::1] p,         # OUT softmax, or None; may not be z or y
                    int64_t L, uint64_t seed, uint64_t offset, uint32_t thr, double scale,
                    int n_threads=1):
    """p := softmax(z) along rows of L; y := where(draw(offset + i) < thr, p * scale, +0.0)."""
    cdef int64_t n = z.shape[0]
    cdef SoftmaxCtx c
    if n == 0:
        return
    _rows_ctx(&c, "z", n, L, seed, offset, thr, scale)
    _check_len("y", y.shape[0], n)
    if p is not None:
        _check_len("p", p.shape[0], n)
    c.z, c.y, c.p = &z[0], &y[0], (&p[0] if p is not None else NULL)
    with nogil:
        run_tasks(_softmax_f32_task if floating is float else _softmax_f64_task, &c,
                  (c.rows + c.per - 1) // c.per, n * SOFTMAX_WORK, n_threads)


cdef void _softmax_backward_f32_task(void *ctx, int64_t t) noexcept nogil:
    cdef SoftmaxCtx *c = <SoftmaxCtx *>ctx
    cdef int64_t r0 = t * c.per
    c.k.softmax_dropout_backward_f32(<const float *>c.z, <const float *>c.p, <float *>c.y, c.L,
                                     c.key, c.offset, c.thr, <float>c.scale, r0,
                                     min(c.rows, r0 + c.per))


cdef void _softmax_backward_f64_task(void *ctx, int64_t t) noexcept nogil:
    cdef SoftmaxCtx *c = <SoftmaxCtx *>ctx
    cdef int64_t r0 = t * c.per
    c.k.softmax_dropout_backward_f64(<const double *>c.z, <const double *>c.p, <double *>c.y,
                                     c.L, c.key, c.offset, c.thr, c.scale, r0,
                                     min(c.rows, r0 + c.per))


def softmax_dropout_backward(const floating[::1] dout,   # IN, rows * L, C order
                             const floating[::1] p,      # IN, the forward's softmax
                             floating[::1] dz,           # OUT (may be dout, not p)
                             int64_t L, uint64_t seed, uint64_t offset, uint32_t thr,
                             double scale, int n_threads=1):
    """gp := where(draw(offset + i) < thr, dout * scale, +0.0) * p; dz := gp - p * rowsum(gp)."""
    cdef int64_t n = dout.shape[0]
    cdef SoftmaxCtx c
    if n == 0:
        return
    _rows_ctx(&c, "dout", n, L, seed, offset, thr, scale)
    _check_len("p", p.shape[0], n)
    _check_len("dz", dz.shape[0], n)
    c.z, c.p, c.y = &dout[0], <void *>&p[0], &dz[0]
    with nogil:
        run_tasks(_softmax_backward_f32_task if floating is float
                  else _softmax_backward_f64_task, &c,
                  (c.rows + c.per - 1) // c.per, n * SOFTMAX_BACKWARD_WORK, n_threads)
