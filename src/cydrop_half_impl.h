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

#if defined(__GNUC__) || defined(__clang__)
#define CYDROP_HINLINE static inline __attribute__((always_inline))
#else
#define CYDROP_HINLINE static inline
#endif

/* y[0..15] := v[0..15] where tile keep flag j is set, +0.0 elsewhere; the flags are the 16 low
 * bits of w (bits) or 16 bytes, any nonzero kept (bytes). With GCC / clang a tile is one
 * generic vector (the compiler splits it to the ISA's width); elsewhere a plain loop. */
#if CYDROP_HAVE_VEC
typedef uint16_t CYDROP_FN(cydrop_ht16) __attribute__((vector_size(32)));
typedef uint8_t CYDROP_FN(cydrop_ht8) __attribute__((vector_size(16)));

CYDROP_HINLINE void CYDROP_FN(cydrop_hstore)(uint16_t *y, const uint16_t *v,
                                             const CYDROP_FN(cydrop_ht16) *keep)
{
    CYDROP_FN(cydrop_ht16) vv;
    memcpy(&vv, v, sizeof vv);
    vv &= *keep;
    memcpy(y, &vv, sizeof vv);
}

CYDROP_HINLINE void CYDROP_FN(cydrop_hstore_bits)(uint16_t *y, const uint16_t *v, uint32_t w)
{
    const CYDROP_FN(cydrop_ht16) sel = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048,
                                        4096, 8192, 16384, 32768};
    const CYDROP_FN(cydrop_ht16) wv = (uint16_t)w - (CYDROP_FN(cydrop_ht16)){0};
    const CYDROP_FN(cydrop_ht16) keep = (CYDROP_FN(cydrop_ht16))((wv & sel) != 0);
    CYDROP_FN(cydrop_hstore)(y, v, &keep);
}

CYDROP_HINLINE void CYDROP_FN(cydrop_hstore_bytes)(uint16_t *y, const uint16_t *v,
                                                   const uint8_t *keep)
{
    CYDROP_FN(cydrop_ht8) kb;
    memcpy(&kb, keep, sizeof kb);
    const CYDROP_FN(cydrop_ht16) k =
        (CYDROP_FN(cydrop_ht16))(__builtin_convertvector(kb, CYDROP_FN(cydrop_ht16)) != 0);
    CYDROP_FN(cydrop_hstore)(y, v, &k);
}
#else
CYDROP_HINLINE void CYDROP_FN(cydrop_hstore_bits)(uint16_t *y, const uint16_t *v, uint32_t w)
{
    for (int j = 0; j < 16; j++)
        y[j] = (uint16_t)(v[j] & -(uint16_t)((w >> j) & 1u));
}

CYDROP_HINLINE void CYDROP_FN(cydrop_hstore_bytes)(uint16_t *y, const uint16_t *v,
                                                   const uint8_t *keep)
{
    for (int j = 0; j < 16; j++)
        y[j] = (uint16_t)(v[j] & -(uint16_t)(keep[j] != 0));
}
#endif

/* y[i] := T(float32(x[i]) * scale) for CYDROP_HTILE elements (y may be x). */
CYDROP_HINLINE void
CYDROP_FN(cydrop_scale_tile_f16)(const uint16_t *x, uint16_t *y, float scale)
{
#if CYDROP_HALF_F16C
    const __m256 sv = _mm256_set1_ps(scale);
    const __m256 a = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x)), sv);
    const __m256 b = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 8))),
                                   sv);
    /* one 32-byte store: the caller's 32-byte reload of the tile forwards from it */
    _mm256_storeu_si256((__m256i *)y,
                        _mm256_set_m128i(_mm256_cvtps_ph(b, _MM_FROUND_TO_NEAREST_INT),
                                         _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT)));
#else
    for (int i = 0; i < CYDROP_HTILE; i++)
        y[i] = CYDROP_FN(cydrop_f32_to_f16)(CYDROP_FN(cydrop_f16_to_f32)(x[i]) * scale);
#endif
}

CYDROP_HINLINE void
CYDROP_FN(cydrop_scale_tile_bf16)(const uint16_t *x, uint16_t *y, float scale)
{
#if defined(CYDROP_X86_INTRIN) && defined(__AVX2__)
    /* cydrop_f32_to_bf16 on 16 lanes, with no shuffle: each 32-bit word of h holds an even
       element (low half) and an odd one (high half). Shifting the even one up, or masking the
       odd one in place, makes each the bits of its float32; multiply; round on the bits
       ((u + 0x7fff + lsb) >> 16 for the even ones, & 0xffff0000 in place for the odd ones);
       OR the halves back together. A NaN: the multiply returns the input NaN quieted (x86
       keeps the payload), whose low 16 bits are zero, so the rounding leaves it as h | 0x0040;
       clearing its mantissa bits below 0x40 gives the sign | 0x7fc0 of the rule. */
    const __m256 sv = _mm256_set1_ps(scale);
    const __m256i h = _mm256_loadu_si256((const __m256i *)x);
    const __m256i one = _mm256_set1_epi32(1), rb = _mm256_set1_epi32(0x7fff);
    const __m256i hi16 = _mm256_set1_epi32((int)0xffff0000u);
    const __m256i ue = _mm256_castps_si256(
        _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h, 16)), sv));
    const __m256i uo = _mm256_castps_si256(
        _mm256_mul_ps(_mm256_castsi256_ps(_mm256_and_si256(h, hi16)), sv));
    const __m256i re = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(ue, rb),
                         _mm256_and_si256(_mm256_srli_epi32(ue, 16), one)), 16);
    const __m256i ro = _mm256_and_si256(
        _mm256_add_epi32(_mm256_add_epi32(uo, rb),
                         _mm256_and_si256(_mm256_srli_epi32(uo, 16), one)), hi16);
    const __m256i t = _mm256_or_si256(re, ro);
    const __m256i nan = _mm256_cmpgt_epi16(_mm256_and_si256(h, _mm256_set1_epi16(0x7fff)),
                                           _mm256_set1_epi16(0x7f80));
    _mm256_storeu_si256((__m256i *)y,
                        _mm256_andnot_si256(_mm256_and_si256(nan, _mm256_set1_epi16(0x3f)), t));
#else
    uint16_t t[CYDROP_HTILE];
    for (int i = 0; i < CYDROP_HTILE; i++)
        t[i] = CYDROP_FN(cydrop_f32_to_bf16)(CYDROP_FN(cydrop_bf16_to_f32)(x[i]) * scale);
    memcpy(y, t, sizeof t);
#endif
}

/* +inf's bits, and float32(h[i]) for CYDROP_HTILE elements (exact; F16C with AVX2 for float16,
 * a shift for bfloat16). */
static inline uint16_t CYDROP_FN(cydrop_inf_bits_f16)(void) { return 0x7c00u; }
static inline uint16_t CYDROP_FN(cydrop_inf_bits_bf16)(void) { return 0x7f80u; }

CYDROP_HINLINE void CYDROP_FN(cydrop_widen_tile_f16)(const uint16_t *h, float *f)
{
#if CYDROP_HALF_F16C
    _mm256_storeu_ps(f, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
    _mm256_storeu_ps(f + 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 8))));
#else
    for (int i = 0; i < CYDROP_HTILE; i++)
        f[i] = CYDROP_FN(cydrop_f16_to_f32)(h[i]);
#endif
}

CYDROP_HINLINE void CYDROP_FN(cydrop_widen_tile_bf16)(const uint16_t *h, float *f)
{
    for (int i = 0; i < CYDROP_HTILE; i++)
        f[i] = CYDROP_FN(cydrop_bf16_to_f32)(h[i]);
}

#if CYDROP_HAVE_VEC
/* Forward over the first cnt <= CYDROP_BLOCK elements of one whole block (the float32 path's
 * cydrop_forward_block, for 16 bits): each step's 32 draws are compared with the threshold as
 * CYDROP_NV native vectors of uint16, and the drop masks select the converted 16-bit values
 * directly (one 16-bit lane per element: no widening). Same bits as fill_draws + apply_draws. */
#define CYDROP_HVB ((int)sizeof(cydrop_vnat))
#define CYDROP_DEFINE_HALF_BLOCK(SUF)                                                          \
    static void CYDROP_FN(cydrop_forward_block_##SUF)(const uint16_t *x, uint16_t *y,         \
                                                       int64_t cnt, uint64_t key,              \
                                                       uint64_t block, uint32_t thr,           \
                                                       float scale, uint8_t *bits,             \
                                                       uint8_t *bytes, int prefetch)           \
    {                                                                                          \
        cydrop_lanes st;                                                                       \
        cydrop_vnat A[CYDROP_NV], B[CYDROP_NV], C[CYDROP_NV], E[CYDROP_NV], O[CYDROP_NV];      \
        CYDROP_FN(cydrop_vi16) drop[CYDROP_NV];                                                \
        const int64_t nsteps = cnt / CYDROP_PER_STEP, done = nsteps * CYDROP_PER_STEP;         \
        const int all_kept = thr > 65535u;                                                     \
        const uint16_t t16s = all_kept ? 65535u : (uint16_t)thr;                               \
        const CYDROP_FN(cydrop_vu16) t16 = t16s - (CYDROP_FN(cydrop_vu16)){0};                 \
        cydrop_lanes_seed(&st, key, block);                                                    \
        memcpy(A, st.s0, sizeof A);                                                            \
        memcpy(B, st.s1, sizeof B);                                                            \
        memcpy(C, st.s2, sizeof C);                                                            \
        memcpy(E, st.s3, sizeof E);                                                            \
        for (int64_t s = 0; s < nsteps; s++) {                                                 \
            const int64_t base = s * CYDROP_PER_STEP;                                          \
            uint16_t v[CYDROP_PER_STEP];                                                       \
            if (prefetch) {           /* as the float32 forward: past the caches only */       \
                __builtin_prefetch(x + base + CYDROP_PF_AHEAD / 2, 0, 0);                      \
                __builtin_prefetch(y + base + CYDROP_PF_AHEAD / 2, 1, 0);                      \
            }                                                                                  \
            CYDROP_LANES_STEP();                                                               \
            CYDROP_FN(cydrop_scale_tile_##SUF)(x + base, v, scale);                            \
            CYDROP_FN(cydrop_scale_tile_##SUF)(x + base + CYDROP_HTILE, v + CYDROP_HTILE,      \
                                               scale);                                         \
            for (int q = 0; q < CYDROP_NV; q++) {                                              \
                CYDROP_FN(cydrop_vu16) d_, vv;                                                 \
                memcpy(&d_, &O[q], CYDROP_HVB);                                                \
                drop[q] = all_kept ? (CYDROP_FN(cydrop_vi16))(d_ != d_)                        \
                                   : (CYDROP_FN(cydrop_vi16))(d_ >= t16);                      \
                memcpy(&vv, v + q * (CYDROP_HVB / 2), CYDROP_HVB);                             \
                vv &= ~(CYDROP_FN(cydrop_vu16))drop[q];                                        \
                memcpy(y + base + q * (CYDROP_HVB / 2), &vv, CYDROP_HVB);                      \
            }                                                                                  \
            if (bits || bytes)                                                                 \
                CYDROP_FN(cydrop_store_keep16)(drop, bytes ? bytes + base : NULL,              \
                                               bits ? bits + base / 8 : NULL);                 \
        }                                                                                      \
        if (done < cnt) {                /* a last, partial step: through a draw buffer */     \
            uint64_t out[CYDROP_LANES];                                                        \
            uint16_t dd[CYDROP_PER_STEP];                                                      \
            memcpy(st.s0, A, sizeof A);                                                        \
            memcpy(st.s1, B, sizeof B);                                                        \
            memcpy(st.s2, C, sizeof C);                                                        \
            memcpy(st.s3, E, sizeof E);                                                        \
            cydrop_lanes_next(&st, out);                                                       \
            cydrop_store_draws(dd, out);                                                       \
            CYDROP_FN(cydrop_apply_draws_##SUF)(x + done, y + done, dd, cnt - done, thr,       \
                                                scale);                                        \
            if (bits || bytes)                                                                 \
                CYDROP_FN(cydrop_store_mask)(dd, cnt - done, thr, done, bits, bytes);          \
        }                                                                                      \
    }
#else
#define CYDROP_DEFINE_HALF_BLOCK(SUF)                                                          \
    static void CYDROP_FN(cydrop_forward_block_##SUF)(const uint16_t *x, uint16_t *y,         \
                                                       int64_t cnt, uint64_t key,              \
                                                       uint64_t block, uint32_t thr,           \
                                                       float scale, uint8_t *bits,             \
                                                       uint8_t *bytes, int prefetch)           \
    {                                                                                          \
        (void)prefetch;                                                                        \
        (void)x; (void)y; (void)cnt; (void)key; (void)block; (void)thr; (void)scale;           \
        (void)bits; (void)bytes;                                                               \
    }
#endif

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
            CYDROP_FN(cydrop_hstore_bytes)(y + i, t, keep + i);                                \
        }                                                                                      \
        for (; i < count; i++) {                                                               \
            const uint16_t v = CYDROP_FN(cydrop_f32_to_##SUF)(                                 \
                CYDROP_FN(cydrop_##SUF##_to_f32)(x[i]) * scale);                               \
            y[i] = (uint16_t)(v & -(uint16_t)(keep[i] != 0));                                  \
        }                                                                                      \
    }                                                                                          \
    CYDROP_DEFINE_HALF_BLOCK(SUF)                                                              \
    /* Forward (and recompute-backward) of chunk t; bits/bytes, if not NULL, get the mask. */  \
    static void CYDROP_FN(cydrop_forward_##SUF)(const uint16_t *x, uint16_t *y, int64_t n,    \
                                                 uint64_t key, uint64_t offset, uint32_t thr,  \
                                                 float scale, uint8_t *bits, uint8_t *bytes,   \
                                                 int64_t t)                                    \
    {                                                                                          \
        uint16_t d[CYDROP_CHUNK];                                                              \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        const uint64_t g0 = offset + (uint64_t)lo;                                             \
        if (CYDROP_HAVE_VEC && g0 % CYDROP_BLOCK == 0) {    /* one pass: draws meet the data */ \
            CYDROP_FN(cydrop_forward_block_##SUF)(x + lo, y + lo, cnt, key, g0 / CYDROP_BLOCK,  \
                                                   thr, scale, bits ? bits + lo / 8 : NULL,    \
                                                   bytes ? bytes + lo : NULL,                  \
                                                   n * 2 >= CYDROP_PF_MIN_BYTES);              \
            return;                                                                            \
        }                                                                                      \
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
        int64_t done = 0;                                                                      \
        if (is_bits) {                /* whole tiles straight from the bits */                 \
            const uint8_t *bb = mask + lo / 8;                                                 \
            for (; done + CYDROP_HTILE <= cnt; done += CYDROP_HTILE) {                         \
                uint16_t v[CYDROP_HTILE];                                                      \
                const uint32_t w = (uint32_t)bb[done / 8] | (uint32_t)bb[done / 8 + 1] << 8;   \
                CYDROP_FN(cydrop_scale_tile_##SUF)(dy + lo + done, v, scale);                  \
                CYDROP_FN(cydrop_hstore_bits)(dx + lo + done, v, w);                           \
            }                                                                                  \
            CYDROP_FN(cydrop_unpack_bits)(bb + done / 8, cnt - done, keep);                    \
            k = keep;                                                                          \
        }                                                                                      \
        CYDROP_FN(cydrop_apply_keep_##SUF)(dy + lo + done, dx + lo + done, k, cnt - done,      \
                                           scale);                 /* bytes: done is 0 */      \
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
    }                                                                                          \
    /* Its backward over rows r0 .. r1 - 1: dz := a > 0 ? T(float32(da) * scale) : +0.0 (a > 0 \
     * on the bits: 1 <= a <= +inf, so NaN and both zeros give +0.0), db += float32(dz) row by \
     * row. dz may be da: each element is read before it is written. */                        \
    static void CYDROP_FN(cydrop_bias_relu_dropout_backward_##SUF)(                            \
        const uint16_t *da, const uint16_t *a, uint16_t *dz, float *db, int64_t r0,            \
        int64_t r1, int64_t m, float scale)                                                    \
    {                                                                                          \
        const uint16_t pinf = CYDROP_FN(cydrop_inf_bits_##SUF)();                              \
        uint16_t t[CYDROP_HTILE];                                                              \
        float g[CYDROP_HTILE];                                                                 \
        for (int64_t r = r0; r < r1; r++) {                                                    \
            const uint16_t *dar = da + r * m, *ar = a + r * m;                                 \
            uint16_t *dzr = dz + r * m;                                                        \
            int64_t k = 0;                                                                     \
            for (; k + CYDROP_HTILE <= m; k += CYDROP_HTILE) {                                 \
                CYDROP_FN(cydrop_scale_tile_##SUF)(dar + k, t, scale);                         \
                for (int j = 0; j < CYDROP_HTILE; j++)                                         \
                    t[j] &= -(uint16_t)((uint16_t)(ar[k + j] - 1u) < pinf);                    \
                memcpy(dzr + k, t, sizeof t);                                                  \
                CYDROP_FN(cydrop_widen_tile_##SUF)(t, g);                                      \
                for (int j = 0; j < CYDROP_HTILE; j++)                                         \
                    db[k + j] += g[j];                                                         \
            }                                                                                  \
            for (; k < m; k++) {                                                               \
                const uint16_t h = CYDROP_FN(cydrop_f32_to_##SUF)(                             \
                    CYDROP_FN(cydrop_##SUF##_to_f32)(dar[k]) * scale);                         \
                const uint16_t v = (uint16_t)(h & -(uint16_t)((uint16_t)(ar[k] - 1u) < pinf)); \
                dzr[k] = v;                                                                    \
                db[k] += CYDROP_FN(cydrop_##SUF##_to_f32)(v);                                  \
            }                                                                                  \
        }                                                                                      \
    }

CYDROP_DEFINE_HALF(f16)
CYDROP_DEFINE_HALF(bf16)
#undef CYDROP_DEFINE_HALF
#undef CYDROP_DEFINE_HALF_BLOCK
#ifdef CYDROP_HVB
#undef CYDROP_HVB
#endif
#undef CYDROP_HALF_F16C
#undef CYDROP_HINLINE
#undef CYDROP_HTILE
