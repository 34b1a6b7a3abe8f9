/*
 * cydrop_half_impl.h -- float16 and bfloat16 dropout kernels, compiled once per ISA.
 *
 * Included by cydrop_kernels_impl.h (never on its own), inside each ISA's build, after the core
 * kernels: the keep decisions come from that build's cydrop_fill_draws, the one generator, so an
 * element's keep decision is float32's for the same (seed, offset + index).
 *
 * The rule (cydrop/testing/reference.py reimplements it in NumPy, bfloat16 through ml_dtypes):
 *   kept    : y = T(float32(x) * scale)    one float32 multiply, then round to nearest even
 *   dropped : y = +0.0                     a select on the 16 bits: NaN and inf drop too
 * float32(x) is exact for both formats (subnormals included). Overflow after scaling rounds to
 * inf; a NaN stays NaN (the float32 multiply quiets it, and both conversions keep it quiet):
 *   float16  : IEEE binary16 conversion, payload truncated (NumPy's npy_floatbits_to_halfbits
 *              and F16C's vcvtps2ph agree on every quiet NaN, and the multiply made it quiet)
 *   bfloat16 : rounding on the bits, (u + 0x7fff + ((u >> 16) & 1)) >> 16; a NaN becomes the
 *              canonical quiet NaN 0x7fc0 with its sign, as ml_dtypes gives. Subnormals are
 *              rounded like any other value (never flushed).
 *
 * The conversions are exact on every ISA, so every ISA gives the same bits:
 *   baseline : portable scalar C on the bits (float16) and integer rounding (bfloat16)
 *   AVX2     : F16C's vcvtph2ps / vcvtps2ph (imm _MM_FROUND_TO_NEAREST_INT: RNE, subnormals,
 *              inf and NaN handled) 8 at a time; bfloat16 as integer vectors
 *   AVX-512  : the same F16C 256-bit conversions and integer bfloat16 rounding. The AVX-512
 *              FP16 and BF16 instructions are not used: this machine cannot run them to verify
 *              them, and vcvtneps2bf16 treats denormals differently (it flushes them), so the
 *              integer rounding, which is exact, stays.
 * The draw buffer of one chunk (8 KiB) is the only scratch: no float32 copy of the data.
 */
#ifndef CYDROP_ISA
#error "cydrop_half_impl.h is included by cydrop_kernels_impl.h"
#endif

#if defined(CYDROP_X86_INTRIN) && defined(__F16C__) && defined(__AVX__)
#define CYDROP_HALF_F16C 1
#else
#define CYDROP_HALF_F16C 0
#endif

/* float16 bits -> float32, exact (subnormals normalised, inf and NaN payload kept). */
static inline float CYDROP_FN(cydrop_f16_to_f32)(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0x1fu) {
        u = sign | 0x7f800000u | (m << 13);
    } else if (e != 0) {
        u = sign | ((e + 112u) << 23) | (m << 13);
    } else if (m == 0) {
        u = sign;
    } else {                                   /* subnormal: m * 2^-24, normalised */
        e = 113u;
        while (!(m & 0x400u)) {
            m <<= 1;
            e--;
        }
        u = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* float32 -> float16 bits, round to nearest even (NumPy's npy_floatbits_to_halfbits). */
static inline uint16_t CYDROP_FN(cydrop_f32_to_f16)(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t e = u & 0x7f800000u;
    uint32_t m = u & 0x007fffffu;
    if (e == 0x7f800000u) {                    /* inf or NaN */
        if (m == 0)
            return (uint16_t)(sign | 0x7c00u);
        uint16_t r = (uint16_t)(0x7c00u + (m >> 13));
        if (r == 0x7c00u)
            r++;                               /* a NaN stays a NaN */
        return (uint16_t)(sign | r);
    }
    if (e >= 0x47800000u)                      /* |f| >= 65536: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0x38000000u) {                    /* |f| < 2^-14: subnormal or zero */
        if (e < 0x33000000u)                   /* |f| < 2^-25: rounds to zero */
            return sign;
        const uint32_t sh = e >> 23;           /* 102 .. 112 */
        m |= 0x00800000u;
        uint32_t hm = m >> (126u - sh);        /* 14 .. 24 bits dropped */
        const uint32_t rest = m & ((1u << (126u - sh)) - 1u);
        const uint32_t half = 1u << (125u - sh);
        if (rest > half || (rest == half && (hm & 1u)))
            hm++;
        return (uint16_t)(sign | hm);          /* a carry into the exponent is right */
    }
    uint32_t h = ((e - 0x38000000u) >> 13) | (m >> 13);
    const uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        h++;                                   /* a carry may make inf: right too */
    return (uint16_t)(sign | h);
}

/* bfloat16 bits <-> float32: widening is a shift; narrowing rounds to nearest even on the bits,
 * a NaN becoming the quiet NaN 0x7fc0 with its sign (ml_dtypes' result). Branch-free, so the
 * loops below vectorise. */
static inline float CYDROP_FN(cydrop_bf16_to_f32)(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t CYDROP_FN(cydrop_f32_to_bf16)(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = -(uint32_t)((u & 0x7fffffffu) > 0x7f800000u);
    return (uint16_t)((r & ~nan) | (((u >> 16) | 0x7fc0u) & 0xffc0u & nan));
}

#define CYDROP_HTILE 16      /* elements per conversion tile */

/* y[i] := T(float32(x[i]) * scale) for CYDROP_HTILE elements (y may be x). */
static inline __attribute__((always_inline)) void
CYDROP_FN(cydrop_scale_tile_f16)(const uint16_t *x, uint16_t *y, float scale)
{
#if CYDROP_HALF_F16C
    const __m256 sv = _mm256_set1_ps(scale);
    const __m256 a = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x)), sv);
    const __m256 b = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 8))),
                                   sv);
    _mm_storeu_si128((__m128i *)y, _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
    _mm_storeu_si128((__m128i *)(y + 8), _mm256_cvtps_ph(b, _MM_FROUND_TO_NEAREST_INT));
#else
    for (int i = 0; i < CYDROP_HTILE; i++)
        y[i] = CYDROP_FN(cydrop_f32_to_f16)(CYDROP_FN(cydrop_f16_to_f32)(x[i]) * scale);
#endif
}

static inline __attribute__((always_inline)) void
CYDROP_FN(cydrop_scale_tile_bf16)(const uint16_t *x, uint16_t *y, float scale)
{
    uint16_t t[CYDROP_HTILE];
    for (int i = 0; i < CYDROP_HTILE; i++)
        t[i] = CYDROP_FN(cydrop_f32_to_bf16)(CYDROP_FN(cydrop_bf16_to_f32)(x[i]) * scale);
    memcpy(y, t, sizeof t);
}

/* Kernels of one 16-bit format SUF (f16, bf16); cydrop_kernels.h says what each computes. */
#define CYDROP_DEFINE_HALF(SUF)                                                                \
    /* y[i] := keep ? T(float32(x[i]) * scale) : +0.0, keep[i] = d[i] < thr */                 \
    static void CYDROP_FN(cydrop_apply_draws_##SUF)(const uint16_t *x, uint16_t *y,            \
                                                     const uint16_t *restrict d,               \
                                                     int64_t count, uint32_t thr, float scale) \
    {                                                                                          \
        int64_t i = 0;                                                                         \
        uint16_t t[CYDROP_HTILE];                                                              \
        for (; i + CYDROP_HTILE <= count; i += CYDROP_HTILE) {                                 \
            CYDROP_FN(cydrop_scale_tile_##SUF)(x + i, t, scale);                               \
            for (int j = 0; j < CYDROP_HTILE; j++)                                             \
                y[i + j] = (uint16_t)(t[j] & -(uint16_t)((uint32_t)d[i + j] < thr));           \
        }                                                                                      \
        for (; i < count; i++) {                                                               \
            const uint16_t v = CYDROP_FN(cydrop_f32_to_##SUF)(                                 \
                CYDROP_FN(cydrop_##SUF##_to_f32)(x[i]) * scale);                               \
            y[i] = (uint16_t)(v & -(uint16_t)((uint32_t)d[i] < thr));                          \
        }                                                                                      \
    }                                                                                          \
    /* y[i] := keep[i] != 0 ? T(float32(x[i]) * scale) : +0.0 */                               \
    static void CYDROP_FN(cydrop_apply_keep_##SUF)(const uint16_t *x, uint16_t *y,             \
                                                    const uint8_t *restrict keep,              \
                                                    int64_t count, float scale)                \
    {                                                                                          \
        int64_t i = 0;                                                                         \
        uint16_t t[CYDROP_HTILE];                                                              \
        for (; i + CYDROP_HTILE <= count; i += CYDROP_HTILE) {                                 \
            CYDROP_FN(cydrop_scale_tile_##SUF)(x + i, t, scale);                               \
            for (int j = 0; j < CYDROP_HTILE; j++)                                             \
                y[i + j] = (uint16_t)(t[j] & -(uint16_t)(keep[i + j] != 0));                   \
        }                                                                                      \
        for (; i < count; i++) {                                                               \
            const uint16_t v = CYDROP_FN(cydrop_f32_to_##SUF)(                                 \
                CYDROP_FN(cydrop_##SUF##_to_f32)(x[i]) * scale);                               \
            y[i] = (uint16_t)(v & -(uint16_t)(keep[i] != 0));                                  \
        }                                                                                      \
    }                                                                                          \
    /* Forward (and recompute-backward) of chunk t; bits/bytes, if not NULL, get the mask. */  \
    static void CYDROP_FN(cydrop_forward_##SUF)(const uint16_t *x, uint16_t *y, int64_t n,    \
                                                 uint64_t key, uint64_t offset, uint32_t thr,  \
                                                 float scale, uint8_t *bits, uint8_t *bytes,   \
                                                 int64_t t)                                    \
    {                                                                                          \
        uint16_t d[CYDROP_CHUNK];                                                              \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        CYDROP_FN(cydrop_fill_draws)(key, offset + (uint64_t)lo, cnt, d);                      \
        CYDROP_FN(cydrop_apply_draws_##SUF)(x + lo, y + lo, d, cnt, thr, scale);               \
        if (bits || bytes)                                                                     \
            CYDROP_FN(cydrop_store_mask)(d, cnt, thr, lo, bits, bytes);                        \
    }                                                                                          \
    /* Backward of chunk t from a stored mask: packed bits (is_bits) or 0/1 bytes. */          \
    static void CYDROP_FN(cydrop_backward_##SUF)(const uint16_t *dy, uint16_t *dx, int64_t n, \
                                                  const uint8_t *mask, int is_bits,            \
                                                  float scale, int64_t t)                      \
    {                                                                                          \
        uint8_t keep[CYDROP_CHUNK];                                                            \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        const uint8_t *k = mask + lo;                                                          \
        if (is_bits) {                                                                         \
            CYDROP_FN(cydrop_unpack_bits)(mask + lo / 8, cnt, keep);                           \
            k = keep;                                                                          \
        }                                                                                      \
        CYDROP_FN(cydrop_apply_keep_##SUF)(dy + lo, dx + lo, k, cnt, scale);                   \
    }                                                                                          \
    /* Broadcast mask apply over rows r0 .. r1 - 1 (see cydrop_broadcast_apply_f32). */         \
    static void CYDROP_FN(cydrop_broadcast_apply_##SUF)(const uint16_t *x, uint16_t *y,        \
                                                         const uint8_t *keep, int nd,          \
                                                         const int64_t *shape,                 \
                                                         const int64_t *mstride, float scale,  \
                                                         int64_t r0, int64_t r1)               \
    {                                                                                          \
        int64_t idx[64];                                                                       \
        uint8_t ones[CYDROP_HTILE];                                                            \
        const int64_t len = shape[nd - 1], ms = mstride[nd - 1];                               \
        int64_t mbase = 0, rem = r0;                                                           \
        memset(ones, 1, sizeof ones);                                                          \
        for (int dd = nd - 2; dd >= 0; dd--) {                                                 \
            idx[dd] = rem % shape[dd];                                                         \
            rem /= shape[dd];                                                                  \
            mbase += idx[dd] * mstride[dd];                                                    \
        }                                                                                      \
        for (int64_t r = r0; r < r1; r++) {                                                    \
            const uint16_t *xr = x + r * len;                                                  \
            uint16_t *yr = y + r * len;                                                        \
            if (ms == 0) {                                                                     \
                if (keep[mbase] != 0) {                                                        \
                    for (int64_t i = 0; i < len; i += CYDROP_HTILE) {                          \
                        const int64_t c = len - i < CYDROP_HTILE ? len - i : CYDROP_HTILE;     \
                        CYDROP_FN(cydrop_apply_keep_##SUF)(xr + i, yr + i, ones, c, scale);    \
                    }                                                                          \
                } else {                                                                       \
                    memset(yr, 0, (size_t)len * sizeof *yr);                                   \
                }                                                                              \
            } else {                                                                           \
                CYDROP_FN(cydrop_apply_keep_##SUF)(xr, yr, keep + mbase, len, scale);          \
            }                                                                                  \
            /* odometer step of the outer index */                                             \
            for (int dd = nd - 2; dd >= 0; dd--) {                                             \
                idx[dd]++;                                                                     \
                mbase += mstride[dd];                                                          \
                if (idx[dd] < shape[dd])                                                       \
                    break;                                                                     \
                mbase -= idx[dd] * mstride[dd];                                                \
                idx[dd] = 0;                                                                   \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    /* Fused bias + ReLU + dropout of chunk t (z, a 16-bit; b float32; see cydrop_kernels.h):  \
     * a := keep ? T(max(float32(z) + b[col], 0) * scale) : +0.0 */                            \
    static void CYDROP_FN(cydrop_bias_relu_dropout_##SUF)(                                     \
        const uint16_t *z, const float *b, uint16_t *a, int64_t n, int64_t m, uint64_t key,    \
        uint64_t offset, uint32_t thr, float scale, int64_t t)                                 \
    {                                                                                          \
        uint16_t d[CYDROP_CHUNK];                                                              \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        const int keep_all = thr >= 65536u;                                                    \
        if (!keep_all)                                                                         \
            CYDROP_FN(cydrop_fill_draws)(key, offset + (uint64_t)lo, cnt, d);                 \
        int64_t col = lo % m;                                                                  \
        for (int64_t i = 0; i < cnt; i++) {                                                    \
            const float v0 = CYDROP_FN(cydrop_##SUF##_to_f32)(z[lo + i]) + b[col];             \
            const float v = (v0 > 0.0f ? v0 : 0.0f) * scale;                                   \
            const uint16_t h = CYDROP_FN(cydrop_f32_to_##SUF)(v);                              \
            a[lo + i] = keep_all ? h : (uint16_t)(h & -(uint16_t)((uint32_t)d[i] < thr));      \
            if (++col == m)                                                                    \
                col = 0;                                                                       \
        }                                                                                      \
    }

CYDROP_DEFINE_HALF(f16)
CYDROP_DEFINE_HALF(bf16)
#undef CYDROP_DEFINE_HALF
#undef CYDROP_HALF_F16C
#undef CYDROP_HTILE
