# Must match the declarations in src/cydrop_kernels.h.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cdef extern from "cydrop_kernels.h" nogil:
    int CYDROP_CHUNK
    int CYDROP_BLOCK

    ctypedef void (*cydrop_forward_f32_fn)(const float *x, float *y, int64_t n, uint64_t key,
                                           uint64_t offset, uint32_t thr, float scale,
                                           uint8_t *bits, uint8_t *bytes, int64_t t) noexcept nogil
    ctypedef void (*cydrop_forward_f64_fn)(const double *x, double *y, int64_t n, uint64_t key,
                                           uint64_t offset, uint32_t thr, double scale,
                                           uint8_t *bits, uint8_t *bytes, int64_t t) noexcept nogil
    ctypedef void (*cydrop_backward_f32_fn)(const float *dy, float *dx, int64_t n,
                                            const uint8_t *mask, int is_bits, float scale,
                                            int64_t t) noexcept nogil
    ctypedef void (*cydrop_backward_f64_fn)(const double *dy, double *dx, int64_t n,
                                            const uint8_t *mask, int is_bits, double scale,
                                            int64_t t) noexcept nogil
    ctypedef void (*cydrop_mask_fn)(int64_t n, uint64_t key, uint64_t offset, uint32_t thr,
                                    uint8_t *bits, uint8_t *bytes, int64_t t) noexcept nogil

    ctypedef void (*cydrop_brd_f32_fn)(const float *z, const float *b, float *a, int64_t n,
                                       int64_t m, uint64_t key, uint64_t offset, uint32_t thr,
                                       float scale, int64_t t) noexcept nogil
    ctypedef void (*cydrop_brd_f64_fn)(const double *z, const double *b, double *a, int64_t n,
                                       int64_t m, uint64_t key, uint64_t offset, uint32_t thr,
                                       double scale, int64_t t) noexcept nogil
    ctypedef void (*cydrop_brd_bwd_f32_fn)(const float *da, const float *a, float *dz,
                                           float *db, int64_t r0, int64_t r1, int64_t m,
                                           float scale) noexcept nogil
    ctypedef void (*cydrop_brd_bwd_f64_fn)(const double *da, const double *a, double *dz,
                                           double *db, int64_t r0, int64_t r1, int64_t m,
                                           double scale) noexcept nogil

    ctypedef void (*cydrop_scale_f32_fn)(const float *x, float *y, int64_t n, float s,
                                         int64_t t) noexcept nogil

    ctypedef struct cydrop_kernels:
        const char *name
        cydrop_forward_f32_fn forward_f32
        cydrop_forward_f64_fn forward_f64
        cydrop_backward_f32_fn backward_f32
        cydrop_backward_f64_fn backward_f64
        cydrop_mask_fn mask
        cydrop_brd_f32_fn bias_relu_dropout_f32
        cydrop_brd_f64_fn bias_relu_dropout_f64
        cydrop_brd_bwd_f32_fn bias_relu_dropout_backward_f32
        cydrop_brd_bwd_f64_fn bias_relu_dropout_backward_f64
        cydrop_scale_f32_fn stream_scale_f32

    const cydrop_kernels * const *cydrop_variants(int *count) noexcept
    int cydrop_variant_supported(const cydrop_kernels *k) noexcept

cdef extern from "cydrop_rng.h" nogil:
    uint64_t cydrop_seed_key(uint64_t seed) noexcept
    uint32_t cydrop_threshold(double keep) noexcept
