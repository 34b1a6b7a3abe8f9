# Must match the declarations in src/cydrop_variants.h.
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from "cydrop_variants.h" nogil:
    int CYDROP_VCHUNK

    void cydrop_v_fill_draws(uint64_t key, uint64_t p0, int64_t count, uint16_t *d) noexcept
    void cydrop_v_keep(int64_t n, uint64_t key, uint64_t offset, uint32_t thr, uint8_t *keep,
                       int64_t t) noexcept
    void cydrop_v_dropout_f32(const float *x, float *y, int64_t n, uint64_t key,
                              uint64_t offset, uint32_t thr, float scale, int64_t t) noexcept
    void cydrop_v_dropout_f64(const double *x, double *y, int64_t n, uint64_t key,
                              uint64_t offset, uint32_t thr, double scale, int64_t t) noexcept
    void cydrop_v_bcast_f32(const float *x, float *y, const uint8_t *keep, int nd,
                            const int64_t *shape, const int64_t *mstride, float scale,
                            int64_t r0, int64_t r1) noexcept
    void cydrop_v_bcast_f64(const double *x, double *y, const uint8_t *keep, int nd,
                            const int64_t *shape, const int64_t *mstride, double scale,
                            int64_t r0, int64_t r1) noexcept
    void cydrop_v_exactk_row(int64_t n, int64_t k, uint64_t key, uint64_t h0, uint8_t *keep,
                             uint64_t *scratch) noexcept
    void cydrop_v_alpha_f32(const float *x, float *y, int64_t n, uint64_t key, uint64_t offset,
                            uint32_t thr, float a, float b, float c, int64_t t) noexcept
    void cydrop_v_alpha_f64(const double *x, double *y, int64_t n, uint64_t key,
                            uint64_t offset, uint32_t thr, double a, double b, double c,
                            int64_t t) noexcept
    double cydrop_v_normal(uint64_t w) noexcept
    void cydrop_v_gauss_f32(const float *x, float *y, int64_t n, uint64_t key, uint64_t offset,
                            double sigma, int64_t t) noexcept
    void cydrop_v_gauss_f64(const double *x, double *y, int64_t n, uint64_t key,
                            uint64_t offset, double sigma, int64_t t) noexcept

cdef extern from "cydrop_rng.h" nogil:
    uint64_t cydrop_seed_key(uint64_t seed) noexcept
    uint32_t cydrop_threshold(double keep) noexcept
