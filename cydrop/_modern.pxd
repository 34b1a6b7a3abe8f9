# The modern block of the kernel table (src/cydrop_kernels.h), as cydrop/_modern.pyx reads it.
# Must match the declarations in src/cydrop_kernels.h.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cdef extern from "cydrop_kernels.h" nogil:
    ctypedef void (*cydrop_dropout_add_f32_fn)(
        const float *x, const float *res, const float *bias, int64_t m, const uint8_t *rowkeep,
        int64_t rowlen, float *y, int64_t n, uint64_t key, uint64_t offset, uint32_t thr,
        float scale, int64_t t) noexcept nogil
    ctypedef void (*cydrop_dropout_add_f64_fn)(
        const double *x, const double *res, const double *bias, int64_t m,
        const uint8_t *rowkeep, int64_t rowlen, double *y, int64_t n, uint64_t key,
        uint64_t offset, uint32_t thr, double scale, int64_t t) noexcept nogil
    ctypedef void (*cydrop_softmax_dropout_f32_fn)(
        const float *z, float *y, float *p, int64_t L, uint64_t key, uint64_t offset,
        uint32_t thr, float scale, int64_t r0, int64_t r1) noexcept nogil
    ctypedef void (*cydrop_softmax_dropout_f64_fn)(
        const double *z, double *y, double *p, int64_t L, uint64_t key, uint64_t offset,
        uint32_t thr, double scale, int64_t r0, int64_t r1) noexcept nogil
    ctypedef void (*cydrop_softmax_dropout_backward_f32_fn)(
        const float *dout, const float *p, float *dz, int64_t L, uint64_t key, uint64_t offset,
        uint32_t thr, float scale, int64_t r0, int64_t r1) noexcept nogil
    ctypedef void (*cydrop_softmax_dropout_backward_f64_fn)(
        const double *dout, const double *p, double *dz, int64_t L, uint64_t key,
        uint64_t offset, uint32_t thr, double scale, int64_t r0, int64_t r1) noexcept nogil

    # the same C struct as cydrop._kernels' cydrop_kernels, seen through its modern block only
    ctypedef struct modern_table "cydrop_kernels":
        cydrop_dropout_add_f32_fn dropout_add_f32
        cydrop_dropout_add_f64_fn dropout_add_f64
        cydrop_softmax_dropout_f32_fn softmax_dropout_f32
        cydrop_softmax_dropout_f64_fn softmax_dropout_f64
        cydrop_softmax_dropout_backward_f32_fn softmax_dropout_backward_f32
        cydrop_softmax_dropout_backward_f64_fn softmax_dropout_backward_f64
