# Must match the declarations in src/cydrop_kernels.h and src/cydrop_rng.h.
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

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
    ctypedef void (*cydrop_fill_draws_fn)(uint64_t key, uint64_t g0, int64_t count,
                                          uint16_t *d) noexcept nogil

    ctypedef void (*cydrop_bias_relu_dropout_f32_fn)(
        const float *z, const float *b, float *a, int64_t n, int64_t m, uint64_t key,
        uint64_t offset, uint32_t thr, float scale, int64_t t) noexcept nogil
    ctypedef void (*cydrop_bias_relu_dropout_f64_fn)(
        const double *z, const double *b, double *a, int64_t n, int64_t m, uint64_t key,
        uint64_t offset, uint32_t thr, double scale, int64_t t) noexcept nogil
    ctypedef void (*cydrop_bias_relu_dropout_backward_f32_fn)(
        const float *da, const float *a, float *dz, float *db, int64_t r0, int64_t r1,
        int64_t m, float scale) noexcept nogil
    ctypedef void (*cydrop_bias_relu_dropout_backward_f64_fn)(
        const double *da, const double *a, double *dz, double *db, int64_t r0, int64_t r1,
        int64_t m, double scale) noexcept nogil

    ctypedef void (*cydrop_broadcast_apply_f32_fn)(
        const float *x, float *y, const uint8_t *keep, int nd, const int64_t *shape,
        const int64_t *mstride, float scale, int64_t r0, int64_t r1) noexcept nogil
    ctypedef void (*cydrop_broadcast_apply_f64_fn)(
        const double *x, double *y, const uint8_t *keep, int nd, const int64_t *shape,
        const int64_t *mstride, double scale, int64_t r0, int64_t r1) noexcept nogil
    ctypedef void (*cydrop_exact_k_row_fn)(int64_t n, int64_t k, uint64_t key, uint64_t h0,
                                           uint8_t *keep, uint64_t *scratch) noexcept nogil
    ctypedef void (*cydrop_alpha_dropout_f32_fn)(
        const float *x, float *y, int64_t n, uint64_t key, uint64_t offset, uint32_t thr,
        float a, float b, float c, int64_t t) noexcept nogil
    ctypedef void (*cydrop_alpha_dropout_f64_fn)(
        const double *x, double *y, int64_t n, uint64_t key, uint64_t offset, uint32_t thr,
        double a, double b, double c, int64_t t) noexcept nogil
    ctypedef double (*cydrop_standard_normal_fn)(uint64_t w) noexcept nogil
    ctypedef void (*cydrop_gaussian_dropout_f32_fn)(
        const float *x, float *y, int64_t n, uint64_t key, uint64_t offset, double sigma,
        int64_t t) noexcept nogil
    ctypedef void (*cydrop_gaussian_dropout_f64_fn)(
        const double *x, double *y, int64_t n, uint64_t key, uint64_t offset, double sigma,
        int64_t t) noexcept nogil

    ctypedef void (*cydrop_forward_h16_fn)(const uint16_t *x, uint16_t *y, int64_t n,
                                           uint64_t key, uint64_t offset, uint32_t thr,
                                           float scale, uint8_t *bits, uint8_t *bytes,
                                           int64_t t) noexcept nogil
    ctypedef void (*cydrop_backward_h16_fn)(const uint16_t *dy, uint16_t *dx, int64_t n,
                                            const uint8_t *mask, int is_bits, float scale,
                                            int64_t t) noexcept nogil
    ctypedef void (*cydrop_broadcast_apply_h16_fn)(
        const uint16_t *x, uint16_t *y, const uint8_t *keep, int nd, const int64_t *shape,
        const int64_t *mstride, float scale, int64_t r0, int64_t r1) noexcept nogil
    ctypedef void (*cydrop_bias_relu_dropout_h16_fn)(
        const uint16_t *z, const float *b, uint16_t *a, int64_t n, int64_t m, uint64_t key,
        uint64_t offset, uint32_t thr, float scale, int64_t t) noexcept nogil
    ctypedef void (*cydrop_bias_relu_dropout_backward_h16_fn)(
        const uint16_t *da, const uint16_t *a, uint16_t *dz, float *db, int64_t r0, int64_t r1,
        int64_t m, float scale) noexcept nogil

    ctypedef struct cydrop_kernels:
        const char *name
        cydrop_forward_f32_fn forward_f32
        cydrop_forward_f64_fn forward_f64
        cydrop_backward_f32_fn backward_f32
        cydrop_backward_f64_fn backward_f64
        cydrop_mask_fn mask
        cydrop_fill_draws_fn fill_draws
        cydrop_bias_relu_dropout_f32_fn bias_relu_dropout_f32
        cydrop_bias_relu_dropout_f64_fn bias_relu_dropout_f64
        cydrop_bias_relu_dropout_backward_f32_fn bias_relu_dropout_backward_f32
        cydrop_bias_relu_dropout_backward_f64_fn bias_relu_dropout_backward_f64
        cydrop_broadcast_apply_f32_fn broadcast_apply_f32
        cydrop_broadcast_apply_f64_fn broadcast_apply_f64
        cydrop_exact_k_row_fn exact_k_row
        cydrop_alpha_dropout_f32_fn alpha_dropout_f32
        cydrop_alpha_dropout_f64_fn alpha_dropout_f64
        cydrop_standard_normal_fn standard_normal
        cydrop_gaussian_dropout_f32_fn gaussian_dropout_f32
        cydrop_gaussian_dropout_f64_fn gaussian_dropout_f64
        # float16 / bfloat16 (one block, at the end)
        cydrop_forward_h16_fn forward_f16
        cydrop_forward_h16_fn forward_bf16
        cydrop_backward_h16_fn backward_f16
        cydrop_backward_h16_fn backward_bf16
        cydrop_broadcast_apply_h16_fn broadcast_apply_f16
        cydrop_broadcast_apply_h16_fn broadcast_apply_bf16
        cydrop_bias_relu_dropout_h16_fn bias_relu_dropout_f16
        cydrop_bias_relu_dropout_h16_fn bias_relu_dropout_bf16
        cydrop_bias_relu_dropout_backward_h16_fn bias_relu_dropout_backward_f16
        cydrop_bias_relu_dropout_backward_h16_fn bias_relu_dropout_backward_bf16

    const cydrop_kernels * const *cydrop_isas(int *count) noexcept
    int cydrop_isa_supported(const cydrop_kernels *k) noexcept

cdef extern from "cydrop_rng.h" nogil:
    uint64_t cydrop_mix64(uint64_t z) noexcept
    uint64_t cydrop_seed_key(uint64_t seed) noexcept
    uint32_t cydrop_threshold(double keep) noexcept
    double cydrop_scale(uint32_t thr) noexcept


# The arguments of one chunked call, for its task functions: one struct serves every op that
# runs chunks of CYDROP_CHUNK elements (each op uses the fields it needs).
ctypedef struct ChunkCtx:
    const cydrop_kernels *k       # the ISA table in use when the call began
    const void *x                 # IN: x, dy, or the fused op's z
    const void *b                 # IN: the fused op's bias
    void *y                       # OUT: y, dx, or the fused op's a
    int64_t n                     # elements of the whole call
    int64_t m                     # the fused op's row length
    uint64_t key
    uint64_t offset
    uint32_t thr
    double s[3]                   # the op's scalars: scale; AlphaDropout's a, b, c; sigma
    uint8_t *bits                 # OUT: packed mask, or NULL
    uint8_t *bytes_               # OUT: 0/1 mask, or NULL
    const uint8_t *mask           # IN: backward's stored mask
    bint is_bits


# The ISA's kernel table in use (set_isa changes it): every op of every module dispatches
# through it, so one set_isa call switches the core and the dropout variants together.
cdef const cydrop_kernels *active_kernels() noexcept nogil

# The core forward over elements offset .. offset + n - 1 (the variants' plain dropout too).
cdef void run_forward(bint f32, const void *x, void *y, int64_t n, uint64_t seed,
                      uint64_t offset, uint32_t thr, double scale, uint8_t *bits,
                      uint8_t *bytes_, int n_threads) noexcept nogil
# The keep mask alone, as packed bits and/or 0/1 bytes (either may be NULL).
cdef void run_mask(int64_t n, uint64_t seed, uint64_t offset, uint32_t thr, uint8_t *bits,
                   uint8_t *bytes_, int n_threads) noexcept nogil
