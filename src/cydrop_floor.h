/*
 * cydrop_floor.h -- the benchmarks' memory floors: STREAM-style scales, not cydrop ops.
 *
 * Must match the declarations in cydrop/_floor.pyx. Every floor handles chunk t (local elements
 * [t * CYDROP_CHUNK, min(n, (t + 1) * CYDROP_CHUNK)), the chunking of the dropout kernels) and
 * computes y := x * s (x and y do not overlap). Beside y it moves exactly the bytes of one
 * dropout mode, and does the least work that cannot be elided:
 *
 *   mode (cydrop)                floor                          bytes per float32 element
 *   forward / backward recompute y := x * s                      read 4, write 4
 *   forward, mask="bits"         + wbits  := sign bits of x      read 4, write 4 + 1/8
 *   forward, mask="bytes"        + wbytes := sign bits of x, 0/1 read 4, write 4 + 1
 *   backward from bits           + read rmask (n / 8 bytes)      read 4 + 1/8, write 4
 *   backward from bytes          + read rmask (n bytes)          read 4 + 1, write 4
 *
 * The written masks are the sign bits of x (one shift or movemask per vector, on data already
 * in registers): a real store of the right size and layout -- packed bits little-endian, bit i
 * % 8 of byte i / 8, or 0/1 bytes -- which the compiler must perform. A read mask is XOR-folded
 * 64 bits at a time into the chunk's return value (the XOR of its bytes), which the caller
 * returns, so the loads cannot be dropped either; one XOR per 8 mask bytes is less work than
 * any decode of the mask, so these floors are at most the cost of the traffic itself.
 *
 * They are kept out of the kernel table of cydrop_kernels.h, which holds production kernels
 * only. Each is compiled for the baseline ISA and, on x86-64 with GCC or clang, for AVX2 as
 * well: the forward's AVX2 build is judged against a floor of the same vector width, since at
 * sizes that fit in cache the floor is not memory-bound and its instruction count shows.
 */
#ifndef CYDROP_FLOOR_H
#define CYDROP_FLOOR_H

#include <stdint.h>
#include <string.h>

#include "cydrop_kernels.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(CYDROP_NO_INTRINSICS)
#define CYDROP_FLOOR_X86 1
#include <immintrin.h>
#endif

/* XOR of the bytes of p[0 .. len), 64 bits at a time. */
static inline uint8_t cydrop_floor_fold(const uint8_t *p, int64_t len)
{
    uint64_t acc = 0;
    int64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc ^= w;
    }
    acc ^= acc >> 32;
    acc ^= acc >> 16;
    acc ^= acc >> 8;
    uint8_t r = (uint8_t)acc;
    for (; i < len; i++)
        r ^= p[i];
    return r;
}

/* Elements [i, hi) one at a time: the chunk's tail (and the whole chunk without vectors). */
static inline void cydrop_floor_tail(const float *restrict x, float *restrict y, int64_t i,
                                     int64_t hi, float s, uint8_t *restrict wbits,
                                     uint8_t *restrict wbytes)
{
    for (; i < hi; i++) {
        uint32_t u;
        y[i] = x[i] * s;
        memcpy(&u, &x[i], 4);
        if (wbytes)
            wbytes[i] = (uint8_t)(u >> 31);
        if (wbits) {
            if (i % 8 == 0)
                wbits[i / 8] = 0;
            wbits[i / 8] |= (uint8_t)((u >> 31) << (i % 8));
        }
    }
}

/* The floors of one chunk: 32 elements per step, as the dropout kernels' steps. */
#define CYDROP_DEFINE_FLOOR(ISA, STEP)                                                         \
    static uint8_t cydrop_floor_f32_##ISA(const float *restrict x, float *restrict y,        \
                                          int64_t n, float s, uint8_t *restrict wbits,        \
                                          uint8_t *restrict wbytes, const uint8_t *rmask,     \
                                          int r_is_bits, int64_t t)                           \
    {                                                                                          \
        const int64_t lo = t * CYDROP_CHUNK;                                                   \
        const int64_t hi = n - lo < CYDROP_CHUNK ? n : lo + CYDROP_CHUNK;                      \
        int64_t i = lo;                                                                        \
        if (wbits && wbytes) {                                                                 \
            for (; i + 32 <= hi; i += 32) STEP(1, 1);                                          \
        } else if (wbits) {                                                                    \
            for (; i + 32 <= hi; i += 32) STEP(1, 0);                                          \
        } else if (wbytes) {                                                                   \
            for (; i + 32 <= hi; i += 32) STEP(0, 1);                                          \
        } else {                                                                               \
            for (; i + 32 <= hi; i += 32) STEP(0, 0);                                          \
        }                                                                                      \
        cydrop_floor_tail(x, y, i, hi, s, wbits, wbytes);                                      \
        if (!rmask)                                                                            \
            return 0;                                                                          \
        return r_is_bits ? cydrop_floor_fold(rmask + lo / 8, (hi - lo + 7) / 8)                \
                         : cydrop_floor_fold(rmask + lo, hi - lo);                             \
    }

/* ---- baseline: SSE2 on x86-64 (part of the baseline), plain C elsewhere */
#ifdef CYDROP_FLOOR_X86
#define CYDROP_FLOOR_STEP_SSE2(BITS, BYTES)                                                    \
    do {                                                                                       \
        const __m128 sv_ = _mm_set1_ps(s);                                                     \
        __m128i q_[8];                                                                         \
        for (int v_ = 0; v_ < 8; v_++) {                                                       \
            const __m128 xv_ = _mm_loadu_ps(x + i + 4 * v_);                                   \
            _mm_storeu_ps(y + i + 4 * v_, _mm_mul_ps(xv_, sv_));                               \
            q_[v_] = _mm_srai_epi32(_mm_castps_si128(xv_), 31);     /* sign: 0 or -1 */        \
        }                                                                                      \
        if (BITS || BYTES) {                                                                   \
            const __m128i b0_ = _mm_packs_epi16(_mm_packs_epi32(q_[0], q_[1]),                 \
                                                _mm_packs_epi32(q_[2], q_[3]));                \
            const __m128i b1_ = _mm_packs_epi16(_mm_packs_epi32(q_[4], q_[5]),                 \
                                                _mm_packs_epi32(q_[6], q_[7]));                \
            if (BYTES) {                                                                       \
                _mm_storeu_si128((__m128i *)(wbytes + i), _mm_sub_epi8(_mm_setzero_si128(), b0_)); \
                _mm_storeu_si128((__m128i *)(wbytes + i + 16),                                 \
                                 _mm_sub_epi8(_mm_setzero_si128(), b1_));                      \
            }                                                                                  \
            if (BITS) {                                                                        \
                const uint32_t m_ = (uint32_t)_mm_movemask_epi8(b0_) |                         \
                                    ((uint32_t)_mm_movemask_epi8(b1_) << 16);                  \
                memcpy(wbits + i / 8, &m_, 4);                                                 \
            }                                                                                  \
        }                                                                                      \
    } while (0)
CYDROP_DEFINE_FLOOR(baseline, CYDROP_FLOOR_STEP_SSE2)
#undef CYDROP_FLOOR_STEP_SSE2

#pragma GCC push_options
#pragma GCC target("avx2")
#define CYDROP_FLOOR_STEP_AVX2(BITS, BYTES)                                                    \
    do {                                                                                       \
        const __m256 sv_ = _mm256_set1_ps(s);                                                  \
        __m256i q_[4];                                                                         \
        for (int v_ = 0; v_ < 4; v_++) {                                                       \
            const __m256 xv_ = _mm256_loadu_ps(x + i + 8 * v_);                                \
            _mm256_storeu_ps(y + i + 8 * v_, _mm256_mul_ps(xv_, sv_));                         \
            q_[v_] = _mm256_srai_epi32(_mm256_castps_si256(xv_), 31);                          \
        }                                                                                      \
        if (BITS || BYTES) {                                                                   \
            /* the packs work per 128-bit lane: one dword permute restores element order */   \
            const __m256i b_ = _mm256_permutevar8x32_epi32(                                    \
                _mm256_packs_epi16(_mm256_packs_epi32(q_[0], q_[1]),                           \
                                   _mm256_packs_epi32(q_[2], q_[3])),                          \
                _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));                                    \
            if (BYTES)                                                                         \
                _mm256_storeu_si256((__m256i *)(wbytes + i),                                   \
                                    _mm256_sub_epi8(_mm256_setzero_si256(), b_));              \
            if (BITS) {                                                                        \
                const uint32_t m_ = (uint32_t)_mm256_movemask_epi8(b_);                        \
                memcpy(wbits + i / 8, &m_, 4);                                                 \
            }                                                                                  \
        }                                                                                      \
    } while (0)
CYDROP_DEFINE_FLOOR(avx2, CYDROP_FLOOR_STEP_AVX2)
#undef CYDROP_FLOOR_STEP_AVX2
#pragma GCC pop_options
#define CYDROP_FLOOR_HAVE_AVX2 1
#else
/* portable: a step is 32 elements of the tail loop (the compiler vectorises the scale) */
#define CYDROP_FLOOR_STEP_C(BITS, BYTES)                                                       \
    cydrop_floor_tail(x, y, i, i + 32, s, (BITS) ? wbits : NULL, (BYTES) ? wbytes : NULL)
CYDROP_DEFINE_FLOOR(baseline, CYDROP_FLOOR_STEP_C)
#undef CYDROP_FLOOR_STEP_C
#define CYDROP_FLOOR_HAVE_AVX2 0
/* never called: cydrop_floor_have_avx2() is 0 */
#define cydrop_floor_f32_avx2 cydrop_floor_f32_baseline
#endif
#undef CYDROP_DEFINE_FLOOR

static inline int cydrop_floor_have_avx2(void)
{
#if CYDROP_FLOOR_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

/* ---- the residual-add floor of cydrop.dropout_add: y := x + r over chunk t (read 8, write 4
 * bytes per float32 element; no generator). Plain C that the compiler vectorises, built for the
 * baseline and (on x86-64 with GCC or clang) AVX2, like the floors above. */
#define CYDROP_DEFINE_ADD_FLOOR(ISA)                                                           \
    static void cydrop_floor_add_f32_##ISA(const float *restrict x, const float *restrict r,  \
                                           float *restrict y, int64_t n, int64_t t)           \
    {                                                                                          \
        const int64_t lo = t * CYDROP_CHUNK;                                                   \
        const int64_t hi = n - lo < CYDROP_CHUNK ? n : lo + CYDROP_CHUNK;                      \
        for (int64_t i = lo; i < hi; i++)                                                      \
            y[i] = x[i] + r[i];                                                                \
    }
CYDROP_DEFINE_ADD_FLOOR(baseline)
#if CYDROP_FLOOR_HAVE_AVX2
#pragma GCC push_options
#pragma GCC target("avx2")
CYDROP_DEFINE_ADD_FLOOR(avx2)
#pragma GCC pop_options
#else
#define cydrop_floor_add_f32_avx2 cydrop_floor_add_f32_baseline
#endif
#undef CYDROP_DEFINE_ADD_FLOOR

#endif /* CYDROP_FLOOR_H */
