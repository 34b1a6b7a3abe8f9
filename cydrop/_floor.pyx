# cython: freethreading_compatible = False
"""The benchmarks' memory floor: a STREAM-style ``y := x * s``, not a cydrop op.

Design
------
a) C kernel: ``cydrop_stream_scale_f32`` (src/cydrop_floor.h), one chunk of CYDROP_CHUNK
   elements, outside the production kernel table.
b) Runner: cydrop/_parallel.pyx's ``run_tasks``, with the forward's tasks and work, so the floor
   is chunked and threaded exactly like ``cydrop._kernels.forward``.
c) Wrapper: ``stream_scale``, which checks its arguments (it is called directly by the bench).
"""

from libc.stdint cimport int64_t

from cydrop._parallel cimport run_tasks

cdef extern from "cydrop_floor.h" nogil:
    int CYDROP_CHUNK
    void cydrop_stream_scale_f32(const float *x, float *y, int64_t n, float s,
                                 int64_t t) noexcept


ctypedef struct ScaleCtx:
    const float *x
    float *y
    int64_t n
    float s


cdef void _stream_scale_task(void *ctx, int64_t t) noexcept nogil:
    cdef ScaleCtx *c = <ScaleCtx *>ctx
    cydrop_stream_scale_f32(c.x, c.y, c.n, c.s, t)


cdef inline bint _ranges_disjoint(const char *a0, Py_ssize_t na, const char *b0,
                                  Py_ssize_t nb) noexcept nogil:
    return a0 + na <= b0 or b0 + nb <= a0


def stream_scale(const float[::1] x,   # IN
                 float[::1] y,         # OUT, disjoint from x
                 float s, int n_threads=1):
    """y := x * s, chunked and threaded exactly like :func:`cydrop._kernels.forward`.

    A STREAM-style scale has the memory traffic of a dropout forward and no generator, so its
    time at 1 and at ``n_threads`` threads is what the memory system allows; the thread scaling
    of cydrop's forward is judged against this one's. Not part of the public API.
    """
    cdef int64_t n = x.shape[0]
    cdef ScaleCtx c
    if n != y.shape[0]:
        raise ValueError(f"y: must have x's {n} elements, got {y.shape[0]}")
    if n_threads < 1:
        raise ValueError(f"n_threads: must be >= 1, got {n_threads}")
    if n == 0:
        return
    if not _ranges_disjoint(<const char *>&x[0], n * sizeof(float), <const char *>&y[0],
                            n * sizeof(float)):
        raise ValueError("y: must not overlap x")
    c.x, c.y, c.n, c.s = &x[0], &y[0], n, s
    with nogil:
        run_tasks(_stream_scale_task, &c, (n + CYDROP_CHUNK - 1) // CYDROP_CHUNK, n, n_threads)
