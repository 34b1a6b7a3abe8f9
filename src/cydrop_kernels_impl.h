/*
 * cydrop_kernels_impl.h -- the chunk kernels, compiled once per ISA.
 *
 * cydrop_kernels.c includes this file several times, each time with CYDROP_ISA set to an ISA
 * name and (for all but the baseline) a `#pragma GCC target` in force, so the same C becomes
 * baseline x86-64, AVX2 and AVX-512 code. Only integer operations and one rounding multiply per
 * element (never contracted into an FMA) touch the data, so every ISA gives the same bits. The
 * dropout variants' kernels (cydrop_variants_impl.h, included at the end) are part of each
 * ISA's build and table, on the same generator.
 *
 * Every kernel handles one chunk: local elements [t * CHUNK, min(n, (t + 1) * CHUNK)). Chunks
 * never share an output byte (CHUNK is a multiple of 8), so OpenMP threads may run any chunks
 * in any order. Nothing here allocates, blocks or fails.
 */
#ifndef CYDROP_ISA
#error "define CYDROP_ISA before including cydrop_kernels_impl.h"
#endif

#define CYDROP_CAT_(a, b) a##_##b
#define CYDROP_CAT(a, b) CYDROP_CAT_(a, b)
#define CYDROP_FN(name) CYDROP_CAT(name, CYDROP_ISA)

/* the forward's software prefetch: distance in bytes, and the smallest input it is used for
 * (see cydrop_forward_steps) */
#ifndef CYDROP_PF_AHEAD
#define CYDROP_PF_AHEAD 4096
#endif
#ifndef CYDROP_PF_MIN_BYTES
#define CYDROP_PF_MIN_BYTES (8 << 20)
#endif

#if CYDROP_HAVE_VEC
/* One xoshiro256++ step of the eight lanes held in the native vectors A, B, C, E (the state
 * words s0..s3); the outputs go to O. */
#define CYDROP_LANES_STEP()                                                   \
    do {                                                                      \
        for (int v_ = 0; v_ < CYDROP_NV; v_++) {                              \
            const cydrop_vnat sum_ = A[v_] + E[v_], t_ = B[v_] << 17;         \
            O[v_] = ((sum_ << 23) | (sum_ >> 41)) + A[v_];                    \
            C[v_] ^= A[v_];                                                   \
            E[v_] ^= B[v_];                                                   \
            B[v_] ^= C[v_];                                                   \
            A[v_] ^= E[v_];                                                   \
            C[v_] ^= t_;                                                      \
            E[v_] = (E[v_] << 45) | (E[v_] >> 19);                            \
        }                                                                     \
    } while (0)
#endif

/* d[i] := the 16-bit draw of global element g0 + i, for i < count (any count: it walks the
 * blocks). The one generator of every kernel, core and variants alike.
 * A step's eight 64-bit lane outputs, read as 32 little-endian uint16, are the draws of 32
 * consecutive elements (lane j feeds elements 4j .. 4j + 3 of the step). */
static void CYDROP_FN(cydrop_fill_draws)(uint64_t key, uint64_t g0, int64_t count,
                                         uint16_t *restrict d)
{
    uint16_t tmp[CYDROP_PER_STEP];
    cydrop_lanes st;
    while (count > 0) {
        const uint64_t block = g0 / CYDROP_BLOCK;
        const int64_t e0 = (int64_t)(g0 % CYDROP_BLOCK);
        const int64_t e1 = e0 + count < CYDROP_BLOCK ? e0 + count : CYDROP_BLOCK;
        const int64_t s0 = e0 / CYDROP_PER_STEP, s1 = (e1 + CYDROP_PER_STEP - 1) / CYDROP_PER_STEP;
        const int64_t full0 = (e0 + CYDROP_PER_STEP - 1) / CYDROP_PER_STEP;  /* first whole step */
        const int64_t full1 = e1 / CYDROP_PER_STEP;                           /* past last whole */
        cydrop_lanes_seed(&st, key, block);
#if CYDROP_HAVE_VEC
        /* The eight lanes as CYDROP_NV native vectors per state word (4 SSE2, 2 AVX2 or
           1 AVX-512 register), kept in registers across the steps. */
        cydrop_vnat A[CYDROP_NV], B[CYDROP_NV], C[CYDROP_NV], E[CYDROP_NV], O[CYDROP_NV];
        memcpy(A, st.s0, sizeof A);
        memcpy(B, st.s1, sizeof B);
        memcpy(C, st.s2, sizeof C);
        memcpy(E, st.s3, sizeof E);

        for (int64_t s = 0; s < s0; s++)
            CYDROP_LANES_STEP();
        for (int64_t s = full0 > s0 ? s0 : s1; s < full0 && s < s1; s++) { /* leading edge */
            const int64_t lo = s * CYDROP_PER_STEP;
            const int64_t hi = lo + CYDROP_PER_STEP < e1 ? lo + CYDROP_PER_STEP : e1;
            CYDROP_LANES_STEP();
            cydrop_store_draws(tmp, (const uint64_t *)O);
            for (int64_t x = e0; x < hi; x++)
                d[x - e0] = tmp[x - lo];
        }
        for (int64_t s = full0; s < full1; s++) {                          /* whole steps */
            CYDROP_LANES_STEP();
            cydrop_store_draws(d + (s * CYDROP_PER_STEP - e0), (const uint64_t *)O);
        }
        if (full1 < s1 && full1 >= full0) {                                 /* trailing edge */
            const int64_t lo = full1 * CYDROP_PER_STEP;
            CYDROP_LANES_STEP();
            cydrop_store_draws(tmp, (const uint64_t *)O);
            for (int64_t x = lo; x < e1; x++)
                d[x - e0] = tmp[x - lo];
        }
#else
        uint64_t out[CYDROP_LANES];
        for (int64_t s = 0; s < s0; s++)
            cydrop_lanes_next(&st, out);
        for (int64_t s = s0; s < s1; s++) {
            const int64_t lo = s * CYDROP_PER_STEP;
            cydrop_lanes_next(&st, out);
            if (s >= full0 && s < full1) {
                cydrop_store_draws(d + (lo - e0), out);
            } else {          /* an edge step: only part of it lies in [e0, e1) */
                const int64_t a = lo > e0 ? lo : e0;
                const int64_t b = lo + CYDROP_PER_STEP < e1 ? lo + CYDROP_PER_STEP : e1;
                cydrop_store_draws(tmp, out);
                for (int64_t x = a; x < b; x++)
                    d[x - e0] = tmp[x - lo];
            }
        }
#endif
        d += e1 - e0;
        count -= e1 - e0;
        g0 += (uint64_t)(e1 - e0);
    }
}

/* keep[i] := d[i] < thr as 0/1 bytes. */
static void CYDROP_FN(cydrop_keep_bytes)(const uint16_t *restrict d, int64_t count, uint32_t thr,
                                         uint8_t *restrict keep)
{
    for (int64_t i = 0; i < count; i++)
        keep[i] = (uint8_t)((uint32_t)d[i] < thr);
}

/* bits[i / 8] bit (i % 8) := keep[i], for 0/1 bytes keep; count may end inside a byte. */
static void CYDROP_FN(cydrop_pack_bits)(const uint8_t *restrict keep, int64_t count,
                                        uint8_t *restrict bits)
{
    int64_t b = 0;
    for (; 8 * b + 8 <= count; b++) {
        uint64_t v;
        memcpy(&v, keep + 8 * b, 8);
        /* gathers the low bit of byte t into bit t of the top byte (little-endian load) */
        bits[b] = (uint8_t)((cydrop_le64(v) * 0x0102040810204080ULL) >> 56);
    }
    if (8 * b < count) {
        uint8_t v = 0;
        for (int t = 0; 8 * b + t < count; t++)
            v |= (uint8_t)(keep[8 * b + t] << t);
        bits[b] = v;
    }
}

/* keep[i] := bit i of the packed mask, as 0/1 bytes. */
static void CYDROP_FN(cydrop_unpack_bits)(const uint8_t *restrict bits, int64_t count,
                                          uint8_t *restrict keep)
{
    int64_t b = 0;
    for (; 8 * b + 8 <= count; b++) {
        /* spreads bit t of the byte to byte 7 - t, then the swap puts it at byte t */
        const uint64_t v = ((bits[b] * 0x8040201008040201ULL) & 0x8080808080808080ULL) >> 7;
        const uint64_t le = cydrop_le64(cydrop_bswap64(v));
        memcpy(keep + 8 * b, &le, 8);
    }
    for (int64_t i = 8 * b; i < count; i++)
        keep[i] = (uint8_t)((bits[i >> 3] >> (i & 7)) & 1u);
}

/* y := x * scale where d < thr, +0.0 elsewhere (a select on bits: NaN and inf drop to +0.0). */
static void CYDROP_FN(cydrop_apply_draws_f32)(const float *x, float *y, const uint16_t *restrict d,
                                              int64_t count, uint32_t thr, float scale)
{
    for (int64_t i = 0; i < count; i++) {
        const float v = x[i] * scale;
        uint32_t b;
        memcpy(&b, &v, sizeof b);
        b &= -(uint32_t)((uint32_t)d[i] < thr);
        memcpy(&y[i], &b, sizeof b);
    }
}

static void CYDROP_FN(cydrop_apply_draws_f64)(const double *x, double *y,
                                              const uint16_t *restrict d, int64_t count,
                                              uint32_t thr, double scale)
{
    for (int64_t i = 0; i < count; i++) {
        const double v = x[i] * scale;
        uint64_t b;
        memcpy(&b, &v, sizeof b);
        b &= -(uint64_t)((uint32_t)d[i] < thr);
        memcpy(&y[i], &b, sizeof b);
    }
}

/* y := x * scale where keep (0/1 bytes, any nonzero counts as kept), +0.0 elsewhere. */
static void CYDROP_FN(cydrop_apply_keep_f32)(const float *x, float *y,
                                             const uint8_t *restrict keep, int64_t count,
                                             float scale)
{
    for (int64_t i = 0; i < count; i++) {
        const float v = x[i] * scale;
        uint32_t b;
        memcpy(&b, &v, sizeof b);
        b &= -(uint32_t)(keep[i] != 0);
        memcpy(&y[i], &b, sizeof b);
    }
}

static void CYDROP_FN(cydrop_apply_keep_f64)(const double *x, double *y,
                                             const uint8_t *restrict keep, int64_t count,
                                             double scale)
{
    for (int64_t i = 0; i < count; i++) {
        const double v = x[i] * scale;
        uint64_t b;
        memcpy(&b, &v, sizeof b);
        b &= -(uint64_t)(keep[i] != 0);
        memcpy(&y[i], &b, sizeof b);
    }
}

static inline int64_t CYDROP_FN(cydrop_chunk_count)(int64_t n, int64_t t)
{
    const int64_t lo = t * CYDROP_CHUNK;
    return n - lo < CYDROP_CHUNK ? n - lo : CYDROP_CHUNK;
}

/* The chunk's mask, from its draws, into packed bits and/or 0/1 bytes (either may be NULL). */
static void CYDROP_FN(cydrop_store_mask)(const uint16_t *restrict d, int64_t cnt, uint32_t thr,
                                         int64_t lo, uint8_t *bits, uint8_t *bytes)
{
    uint8_t keep[CYDROP_CHUNK];
    uint8_t *k = bytes ? bytes + lo : keep;
    CYDROP_FN(cydrop_keep_bytes)(d, cnt, thr, k);
    if (bits)
        CYDROP_FN(cydrop_pack_bits)(k, cnt, bits + lo / 8);
}

/* Forward over the first cnt <= CYDROP_BLOCK elements of one whole block, generating each
 * step's 32 draws and applying them at once: the generator's arithmetic overlaps the loads and
 * stores instead of running in a separate pass. Same bits as fill_draws + apply_draws.
 *
 * The hot loop works on whole native vectors: a step's output vectors, read as uint16, are
 * compared with the threshold 16 bits at a time, and the 16-bit keep masks are widened to the
 * element width (one sign extension per output vector) to select the scaled values. */
#if CYDROP_HAVE_VEC
#define CYDROP_VB sizeof(cydrop_vnat)
typedef uint16_t CYDROP_FN(cydrop_vu16) __attribute__((vector_size(CYDROP_VB)));
typedef int16_t CYDROP_FN(cydrop_vi16) __attribute__((vector_size(CYDROP_VB)));
typedef int16_t CYDROP_FN(cydrop_vi16h) __attribute__((vector_size(CYDROP_VB / 2)));
typedef int16_t CYDROP_FN(cydrop_vi16q) __attribute__((vector_size(CYDROP_VB / 4)));
typedef int8_t CYDROP_FN(cydrop_vi8h) __attribute__((vector_size(CYDROP_VB / 2)));
typedef int32_t CYDROP_FN(cydrop_vi32) __attribute__((vector_size(CYDROP_VB)));
typedef int64_t CYDROP_FN(cydrop_vi64) __attribute__((vector_size(CYDROP_VB)));
typedef float CYDROP_FN(cydrop_vf32) __attribute__((vector_size(CYDROP_VB)));
typedef double CYDROP_FN(cydrop_vf64) __attribute__((vector_size(CYDROP_VB)));

/* drop[v] := -1 where draw >= thr, 0 elsewhere, for the step's CYDROP_NV output vectors O
 * (all_kept: 0 everywhere, whatever the draws: the threshold 65536). */
#define CYDROP_DROP16(drop, O, t16, all_kept)                                                  \
    for (int v_ = 0; v_ < CYDROP_NV; v_++) {                                                   \
        CYDROP_FN(cydrop_vu16) d_;                                                             \
        memcpy(&d_, &(O)[v_], CYDROP_VB);                                                      \
        (drop)[v_] = (all_kept) ? (CYDROP_FN(cydrop_vi16))(d_ != d_)                           \
                                : (CYDROP_FN(cydrop_vi16))(d_ >= (t16));                       \
    }

/* Widening of 16-bit masks (0 or -1) to the element width: part q of the vi16 mask m as a
 * vi32 (q = 0, 1) or vi64 (q = 0 .. 3). GCC 12 splits __builtin_convertvector into half-width
 * pieces, so the AVX2 build names the one sign extension that does it, and the 16-byte
 * baseline duplicates lanes (a mask lane is all zeros or all ones) with unpack shuffles: 16 to
 * 32 bits, then 32 to 64 bits (one four-fold shuffle compiles to lane-by-lane inserts). */
#if defined(CYDROP_X86_INTRIN) && defined(__AVX2__) && CYDROP_NV == 2
#define CYDROP_HALF128(m, q) ((q) ? _mm256_extracti128_si256((__m256i)(m), 1)                \
                                  : _mm256_castsi256_si128((__m256i)(m)))
#define CYDROP_WIDEN32(m, q)                                                                   \
    ((CYDROP_FN(cydrop_vi32))_mm256_cvtepi16_epi32(CYDROP_HALF128(m, q)))
#define CYDROP_WIDEN64(m, q)                                                                   \
    ((CYDROP_FN(cydrop_vi64))_mm256_cvtepi16_epi64(                                           \
        ((q) & 1) ? _mm_unpackhi_epi64(CYDROP_HALF128(m, (q) >> 1), CYDROP_HALF128(m, (q) >> 1)) \
                  : CYDROP_HALF128(m, (q) >> 1)))
#elif CYDROP_NV == 4 && defined(__clang__)
#define CYDROP_WIDEN32(m, q)                                                                   \
    ((CYDROP_FN(cydrop_vi32))__builtin_shufflevector((m), (m), 4 * (q), 4 * (q), 4 * (q) + 1, \
        4 * (q) + 1, 4 * (q) + 2, 4 * (q) + 2, 4 * (q) + 3, 4 * (q) + 3))
#define CYDROP_WIDEN64(m, q)                                                                   \
    ((CYDROP_FN(cydrop_vi64))__builtin_shufflevector(CYDROP_WIDEN32(m, (q) >> 1),             \
        CYDROP_WIDEN32(m, (q) >> 1), 2 * ((q) & 1), 2 * ((q) & 1), 2 * ((q) & 1) + 1,         \
        2 * ((q) & 1) + 1))
#elif CYDROP_NV == 4
#define CYDROP_WIDEN32(m, q)                                                                   \
    ((CYDROP_FN(cydrop_vi32))__builtin_shuffle((m), (CYDROP_FN(cydrop_vi16)){                 \
        4 * (q), 4 * (q), 4 * (q) + 1, 4 * (q) + 1, 4 * (q) + 2, 4 * (q) + 2, 4 * (q) + 3,     \
        4 * (q) + 3}))
#define CYDROP_WIDEN64(m, q)                                                                   \
    ((CYDROP_FN(cydrop_vi64))__builtin_shuffle(CYDROP_WIDEN32(m, (q) >> 1),                   \
        (CYDROP_FN(cydrop_vi32)){2 * ((q) & 1), 2 * ((q) & 1), 2 * ((q) & 1) + 1,             \
                                 2 * ((q) & 1) + 1}))
#else
/* other widths (the AVX-512 build): the portable conversion of the part's 16-bit lanes */
#define CYDROP_WIDEN32(m, q)                                                                   \
    __builtin_convertvector(CYDROP_FN(cydrop_part16h)(m, q), CYDROP_FN(cydrop_vi32))
#define CYDROP_WIDEN64(m, q)                                                                   \
    __builtin_convertvector(CYDROP_FN(cydrop_part16q)(m, q), CYDROP_FN(cydrop_vi64))
static inline CYDROP_FN(cydrop_vi16h) CYDROP_FN(cydrop_part16h)(CYDROP_FN(cydrop_vi16) m, int q)
{
    CYDROP_FN(cydrop_vi16h) h[2];
    memcpy(h, &m, sizeof m);
    return h[q];
}
static inline CYDROP_FN(cydrop_vi16q) CYDROP_FN(cydrop_part16q)(CYDROP_FN(cydrop_vi16) m, int q)
{
    CYDROP_FN(cydrop_vi16q) h[4];
    memcpy(h, &m, sizeof m);
    return h[q];
}
#endif

/* One native vector of elements at x / y: y := drop ? +0.0 : x * scale, where m holds the
 * widened drop masks (a bit select: NaN and inf in x drop to +0.0 too). With a residual r (the
 * fused dropout_add; NULL everywhere else, folded away at compile time) y := r + that, added
 * in registers. */
#define CYDROP_DEFINE_SELECT1(T, SUF, BITS)                                                    \
    static inline __attribute__((always_inline)) void CYDROP_FN(cydrop_select1_##SUF)(         \
        const T *x, const T *r, T *y, CYDROP_FN(cydrop_vi##BITS) m,                            \
        CYDROP_FN(cydrop_v##SUF) sv)                                                           \
    {                                                                                          \
        CYDROP_FN(cydrop_v##SUF) xv, rv;                                                       \
        CYDROP_FN(cydrop_vi##BITS) u;                                                          \
        memcpy(&xv, x, CYDROP_VB);                                                             \
        xv *= sv;                                                                              \
        memcpy(&u, &xv, CYDROP_VB);                                                            \
        u &= ~m;                                                                               \
        if (r) {                                                                               \
            memcpy(&xv, &u, CYDROP_VB);                                                        \
            memcpy(&rv, r, CYDROP_VB);                                                         \
            xv = rv + xv;                                                                      \
            memcpy(y, &xv, CYDROP_VB);                                                         \
        } else {                                                                               \
            memcpy(y, &u, CYDROP_VB);                                                          \
        }                                                                                      \
    }
CYDROP_DEFINE_SELECT1(float, f32, 32)
CYDROP_DEFINE_SELECT1(double, f64, 64)
#undef CYDROP_DEFINE_SELECT1

/* A step's 32 elements at x / y (plus the residual r when not NULL), with its drop masks as
 * CYDROP_NV vi16 vectors. The parts are spelled out (not looped over) because the widening
 * takes constant part numbers. */
#define CYDROP_AT(p, k) ((p) ? (p) + (k) : NULL)
static inline __attribute__((always_inline)) void
CYDROP_FN(cydrop_select_f32)(const float *x, const float *r, float *y,
                             const CYDROP_FN(cydrop_vi16) *drop, CYDROP_FN(cydrop_vf32) sv)
{
    enum { W = CYDROP_VB / sizeof(float) };     /* floats per native vector */
    for (int v = 0; v < CYDROP_NV; v++) {
        CYDROP_FN(cydrop_select1_f32)(x + 2 * v * W, CYDROP_AT(r, 2 * v * W), y + 2 * v * W,
                                      CYDROP_WIDEN32(drop[v], 0), sv);
        CYDROP_FN(cydrop_select1_f32)(x + (2 * v + 1) * W, CYDROP_AT(r, (2 * v + 1) * W),
                                      y + (2 * v + 1) * W, CYDROP_WIDEN32(drop[v], 1), sv);
    }
}

static inline __attribute__((always_inline)) void
CYDROP_FN(cydrop_select_f64)(const double *x, const double *r, double *y,
                             const CYDROP_FN(cydrop_vi16) *drop, CYDROP_FN(cydrop_vf64) sv)
{
    enum { W = CYDROP_VB / sizeof(double) };
    for (int v = 0; v < CYDROP_NV; v++) {
        const int64_t o = 4 * v * W;
        double *yv = y + o;
        CYDROP_FN(cydrop_select1_f64)(x + o, CYDROP_AT(r, o), yv,
                                      CYDROP_WIDEN64(drop[v], 0), sv);
        CYDROP_FN(cydrop_select1_f64)(x + o + W, CYDROP_AT(r, o + W), yv + W,
                                      CYDROP_WIDEN64(drop[v], 1), sv);
        CYDROP_FN(cydrop_select1_f64)(x + o + 2 * W, CYDROP_AT(r, o + 2 * W), yv + 2 * W,
                                      CYDROP_WIDEN64(drop[v], 2), sv);
        CYDROP_FN(cydrop_select1_f64)(x + o + 3 * W, CYDROP_AT(r, o + 3 * W), yv + 3 * W,
                                      CYDROP_WIDEN64(drop[v], 3), sv);
    }
}
#undef CYDROP_AT

/* The 32 keep flags of a step, from its drop masks, into 0/1 bytes and/or packed bits (either
 * may be NULL). On x86 the masks are packed to bytes with saturation (-1 and 0 survive) and the
 * bits are their sign bits (movemask); elsewhere a portable narrowing and a multiply gather. */
static inline __attribute__((always_inline)) void
CYDROP_FN(cydrop_store_keep16)(const CYDROP_FN(cydrop_vi16) *drop, uint8_t *bytes, uint8_t *bits)
{
#if defined(CYDROP_X86_INTRIN) && defined(__AVX2__) && CYDROP_NV == 2
    /* packs works per 128-bit lane: the quadword permute restores element order */
    const __m256i packed = _mm256_permute4x64_epi64(
        _mm256_packs_epi16((__m256i)drop[0], (__m256i)drop[1]), 0xD8);
    if (bytes)
        _mm256_storeu_si256((__m256i *)bytes, _mm256_add_epi8(packed, _mm256_set1_epi8(1)));
    if (bits) {
        const uint32_t keep = ~(uint32_t)_mm256_movemask_epi8(packed);
        memcpy(bits, &keep, 4);                                   /* x86: little-endian */
    }
#elif defined(CYDROP_X86_INTRIN) && defined(__SSE2__) && CYDROP_NV == 4
    const __m128i lo = _mm_packs_epi16((__m128i)drop[0], (__m128i)drop[1]);
    const __m128i hi = _mm_packs_epi16((__m128i)drop[2], (__m128i)drop[3]);
    if (bytes) {
        _mm_storeu_si128((__m128i *)bytes, _mm_add_epi8(lo, _mm_set1_epi8(1)));
        _mm_storeu_si128((__m128i *)(bytes + 16), _mm_add_epi8(hi, _mm_set1_epi8(1)));
    }
    if (bits) {
        const uint32_t keep = ~((uint32_t)_mm_movemask_epi8(lo) |
                                ((uint32_t)_mm_movemask_epi8(hi) << 16));
        memcpy(bits, &keep, 4);
    }
#else
    uint8_t kb[CYDROP_PER_STEP];
    for (int v = 0; v < CYDROP_NV; v++) {
        const CYDROP_FN(cydrop_vi8h) b = __builtin_convertvector(drop[v], CYDROP_FN(cydrop_vi8h));
        const CYDROP_FN(cydrop_vi8h) one = b + 1;                /* -1, 0 -> 0, 1 */
        memcpy(kb + v * (CYDROP_VB / 2), &one, CYDROP_VB / 2);
    }
    if (bytes)
        memcpy(bytes, kb, CYDROP_PER_STEP);
    if (bits)
        for (int q = 0; q < CYDROP_PER_STEP / 8; q++) {
            uint64_t v;
            memcpy(&v, kb + 8 * q, 8);
            bits[q] = (uint8_t)((cydrop_le64(v) * 0x0102040810204080ULL) >> 56);
        }
#endif
}

/* Software prefetch in the forward's hot loop, for calls whose input is at least
 * CYDROP_PF_MIN_BYTES: each step asks for x's and y's lines CYDROP_PF_AHEAD bytes ahead (y for
 * writing, so the store's read-for-ownership starts early). Past the caches the generator's
 * arithmetic otherwise delays the loads and stores it waits on (one thread, 16M float32: 1.25x
 * the matched floor without, 0.93-1.0x with); inside them the four extra instructions per step
 * only cost (1M: about 1.1x slower), hence the threshold. Prefetches never fault and change no
 * result. */
/* (CYDROP_PF_AHEAD and CYDROP_PF_MIN_BYTES: defined at the top of this file) */

#define CYDROP_DEFINE_BLOCK_FORWARD(T, SUF, UT)                                                \
    static inline __attribute__((always_inline)) void CYDROP_FN(cydrop_forward_steps_##SUF)(   \
        const T *x, T *y, int64_t nsteps, cydrop_lanes *st, uint32_t thr, T scale,             \
        uint8_t *bits, uint8_t *bytes, const int all_kept, const int with_mask,                \
        const int prefetch)                                                                    \
    {                                                                                          \
        cydrop_vnat A[CYDROP_NV], B[CYDROP_NV], C[CYDROP_NV], E[CYDROP_NV], O[CYDROP_NV];      \
        CYDROP_FN(cydrop_vi16) drop[CYDROP_NV];                                                \
        const uint16_t t16s = thr > 65535u ? 65535u : (uint16_t)thr;                           \
        const CYDROP_FN(cydrop_vu16) t16 = t16s - (CYDROP_FN(cydrop_vu16)){0};                 \
        const CYDROP_FN(cydrop_v##SUF) sv = scale - (CYDROP_FN(cydrop_v##SUF)){0};           \
        memcpy(A, st->s0, sizeof A);                                                           \
        memcpy(B, st->s1, sizeof B);                                                           \
        memcpy(C, st->s2, sizeof C);                                                           \
        memcpy(E, st->s3, sizeof E);                                                           \
        for (int64_t s = 0; s < nsteps; s++) {                                                 \
            const int64_t base = s * CYDROP_PER_STEP;                                          \
            if (prefetch) {          /* 2 lines of x and y (a float32 step) ahead */ \
                __builtin_prefetch(x + base + CYDROP_PF_AHEAD / sizeof(T), 0, 0);             \
                __builtin_prefetch(x + base + CYDROP_PF_AHEAD / sizeof(T) + 64 / sizeof(T), 0, 0);\
                __builtin_prefetch(y + base + CYDROP_PF_AHEAD / sizeof(T), 1, 0);             \
                __builtin_prefetch(y + base + CYDROP_PF_AHEAD / sizeof(T) + 64 / sizeof(T), 1, 0);\
            }                                                                                  \
            CYDROP_LANES_STEP();                                                               \
            CYDROP_DROP16(drop, O, t16, all_kept);                                             \
            CYDROP_FN(cydrop_select_##SUF)(x + base, NULL, y + base, drop, sv);                \
            /* with_mask, a constant: 0 none, 1 bits, 2 bytes, 3 both, 4 whichever is given */ \
            if (with_mask == 4)                                                                \
                CYDROP_FN(cydrop_store_keep16)(drop, bytes ? bytes + base : NULL,              \
                                               bits ? bits + base / 8 : NULL);                 \
            else if (with_mask)                                                                \
                CYDROP_FN(cydrop_store_keep16)(drop, (with_mask & 2) ? bytes + base : NULL,    \
                                               (with_mask & 1) ? bits + base / 8 : NULL);      \
        }                                                                                      \
        memcpy(st->s0, A, sizeof A);                                                           \
        memcpy(st->s1, B, sizeof B);                                                           \
        memcpy(st->s2, C, sizeof C);                                                           \
        memcpy(st->s3, E, sizeof E);                                                           \
    }                                                                                          \
    static inline __attribute__((always_inline)) void CYDROP_FN(cydrop_forward_all_##SUF)(     \
        const T *x, T *y, int64_t nsteps, cydrop_lanes *st_, uint32_t thr, T scale,             \
        uint8_t *bits, uint8_t *bytes, const int pf)                                           \
    {                                                                                          \
        /* one specialisation per (threshold 65536, masks wanted) pair: no test in the loop; \
           the masks (bits 1, bytes 2) are spelled out so each call has constant arguments */ \
        const int masks_ = (bits ? 1 : 0) | (bytes ? 2 : 0);                                   \
        if (thr > 65535u) {                                                                    \
            if (masks_)                                                                        \
                CYDROP_FN(cydrop_forward_steps_##SUF)(x, y, nsteps, st_, thr, scale, bits,     \
                                                      bytes, 1, 4, pf);                        \
            else                                                                               \
                CYDROP_FN(cydrop_forward_steps_##SUF)(x, y, nsteps, st_, thr, scale, bits,     \
                                                      bytes, 1, 0, pf);                        \
        } else if (masks_ == 1) {                                                              \
            CYDROP_FN(cydrop_forward_steps_##SUF)(x, y, nsteps, st_, thr, scale, bits, bytes,  \
                                                  0, 1, pf);                                   \
        } else if (masks_ == 2) {                                                              \
            CYDROP_FN(cydrop_forward_steps_##SUF)(x, y, nsteps, st_, thr, scale, bits, bytes,  \
                                                  0, 2, pf);                                   \
        } else if (masks_ == 3) {                                                              \
            CYDROP_FN(cydrop_forward_steps_##SUF)(x, y, nsteps, st_, thr, scale, bits, bytes,  \
                                                  0, 3, pf);                                   \
        } else {                                                                               \
            CYDROP_FN(cydrop_forward_steps_##SUF)(x, y, nsteps, st_, thr, scale, bits, bytes,  \
                                                  0, 0, pf);                                   \
        }                                                                                      \
    }                                                                                          \
    static void CYDROP_FN(cydrop_forward_block_##SUF)(const T *x, T *y, int64_t cnt,           \
                                                       uint64_t key, uint64_t block,           \
                                                       uint32_t thr, T scale, uint8_t *bits,   \
                                                       uint8_t *bytes, int prefetch)           \
    {                                                                                          \
        cydrop_lanes st;                                                                       \
        const int64_t nsteps = cnt / CYDROP_PER_STEP, done = nsteps * CYDROP_PER_STEP;         \
        cydrop_lanes_seed(&st, key, block);                                                    \
        /* prefetching pays only past the caches (see CYDROP_PF_MIN_BYTES): a constant too */ \
        if (prefetch)                                                                          \
            CYDROP_FN(cydrop_forward_all_##SUF)(x, y, nsteps, &st, thr, scale, bits, bytes, 1);  \
        else                                                                                   \
            CYDROP_FN(cydrop_forward_all_##SUF)(x, y, nsteps, &st, thr, scale, bits, bytes, 0);  \
        if (done < cnt) {                /* a last, partial step: through a draw buffer */     \
            uint64_t out[CYDROP_LANES];                                                        \
            uint16_t dd[CYDROP_PER_STEP];                                                      \
            cydrop_lanes_next(&st, out);                                                       \
            cydrop_store_draws(dd, out);                                                       \
            CYDROP_FN(cydrop_apply_draws_##SUF)(x + done, y + done, dd, cnt - done, thr,       \
                                                scale);                                        \
            if (bits || bytes)                                                                 \
                CYDROP_FN(cydrop_store_mask)(dd, cnt - done, thr, done, bits, bytes);          \
        }                                                                                      \
    }
CYDROP_DEFINE_BLOCK_FORWARD(float, f32, uint32_t)
CYDROP_DEFINE_BLOCK_FORWARD(double, f64, uint64_t)
#undef CYDROP_DEFINE_BLOCK_FORWARD

/* Backward from packed bits over nsteps whole steps of 32 elements (bits holds their 4 * nsteps
 * bytes): y := bit set ? x * scale : +0.0, the same bit select as apply_keep after unpack_bits,
 * without the 0/1 byte buffer between them. Per native vector of W elements the step's 32-bit
 * word is shifted to its W bits and broadcast, each lane keeps its own bit (AND with 1 << lane),
 * and a compare with zero makes the select mask. */
#define CYDROP_DEFINE_BACKWARD_BITS(T, SUF, IT, IB)                                            \
    static void CYDROP_FN(cydrop_backward_bits_steps_##SUF)(const T *x, T *y,                  \
                                                            const uint8_t *bits,               \
                                                            int64_t nsteps, T scale)           \
    {                                                                                          \
        enum { W = CYDROP_VB / sizeof(T) };                                                    \
        CYDROP_FN(cydrop_vi##IB) sel;                                                          \
        const CYDROP_FN(cydrop_v##SUF) sv = scale - (CYDROP_FN(cydrop_v##SUF)){0};             \
        for (int j = 0; j < W; j++)                                                            \
            sel[j] = (IT)1 << j;                                                               \
        for (int64_t s = 0; s < nsteps; s++) {                                                 \
            const uint8_t *b = bits + 4 * s;                                                   \
            const uint32_t w = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |   \
                               (uint32_t)b[3] << 24;                                           \
            for (int v = 0; v < CYDROP_PER_STEP / W; v++) {                                    \
                const CYDROP_FN(cydrop_vi##IB) m =                                             \
                    ((IT)(w >> (v * W)) - (CYDROP_FN(cydrop_vi##IB)){0}) & sel;                \
                CYDROP_FN(cydrop_select1_##SUF)(x + s * CYDROP_PER_STEP + v * W, NULL,         \
                                                y + s * CYDROP_PER_STEP + v * W, m == 0, sv);  \
            }                                                                                  \
        }                                                                                      \
    }
CYDROP_DEFINE_BACKWARD_BITS(float, f32, int32_t, 32)
CYDROP_DEFINE_BACKWARD_BITS(double, f64, int64_t, 64)
#undef CYDROP_DEFINE_BACKWARD_BITS
#undef CYDROP_DROP16
#undef CYDROP_WIDEN32
#undef CYDROP_WIDEN64
#ifdef CYDROP_HALF128
#undef CYDROP_HALF128
#endif
#undef CYDROP_VB
#else
static void CYDROP_FN(cydrop_forward_block_f32)(const float *x, float *y, int64_t cnt,
                                                uint64_t key, uint64_t block, uint32_t thr,
                                                float scale, uint8_t *bits, uint8_t *bytes,
                                                int prefetch)
{
    (void)x; (void)y; (void)cnt; (void)key; (void)block; (void)thr; (void)scale;
    (void)bits; (void)bytes; (void)prefetch;
}
static void CYDROP_FN(cydrop_forward_block_f64)(const double *x, double *y, int64_t cnt,
                                                uint64_t key, uint64_t block, uint32_t thr,
                                                double scale, uint8_t *bits, uint8_t *bytes,
                                                int prefetch)
{
    (void)x; (void)y; (void)cnt; (void)key; (void)block; (void)thr; (void)scale;
    (void)bits; (void)bytes; (void)prefetch;
}
static void CYDROP_FN(cydrop_backward_bits_steps_f32)(const float *x, float *y,
                                                     const uint8_t *bits, int64_t nsteps,
                                                     float scale)
{
    (void)x; (void)y; (void)bits; (void)nsteps; (void)scale;
}
static void CYDROP_FN(cydrop_backward_bits_steps_f64)(const double *x, double *y,
                                                     const uint8_t *bits, int64_t nsteps,
                                                     double scale)
{
    (void)x; (void)y; (void)bits; (void)nsteps; (void)scale;
}
#endif

/* Forward (and recompute-backward) of chunk t; bits/bytes, when not NULL, receive the mask. */
#define CYDROP_DEFINE_KERNELS(T, SUF)                                                          \
    static void CYDROP_FN(cydrop_forward_##SUF)(const T *x, T *y, int64_t n, uint64_t key,   \
                                                 uint64_t offset, uint32_t thr, T scale,      \
                                                 uint8_t *bits, uint8_t *bytes, int64_t t)    \
    {                                                                                          \
        uint16_t d[CYDROP_CHUNK];                                                              \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        const uint64_t g0 = offset + (uint64_t)lo;                                             \
        if (CYDROP_HAVE_VEC && g0 % CYDROP_BLOCK == 0) {                                       \
            CYDROP_FN(cydrop_forward_block_##SUF)(x + lo, y + lo, cnt, key,                    \
                                                   g0 / CYDROP_BLOCK, thr, scale,              \
                                                   bits ? bits + lo / 8 : NULL,                \
                                                   bytes ? bytes + lo : NULL,                  \
                                                   n * (int64_t)sizeof(T) >= CYDROP_PF_MIN_BYTES); \
            return;                                                                            \
        }                                                                                      \
        CYDROP_FN(cydrop_fill_draws)(key, g0, cnt, d);                                         \
        CYDROP_FN(cydrop_apply_draws_##SUF)(x + lo, y + lo, d, cnt, thr, scale);               \
        if (bits || bytes)                                                                     \
            CYDROP_FN(cydrop_store_mask)(d, cnt, thr, lo, bits, bytes);                        \
    }                                                                                          \
    /* Backward of chunk t from a stored mask: packed bits (is_bits) or 0/1 bytes. */          \
    static void CYDROP_FN(cydrop_backward_##SUF)(const T *dy, T *dx, int64_t n,               \
                                                  const uint8_t *mask, int is_bits, T scale,   \
                                                  int64_t t)                                   \
    {                                                                                          \
        uint8_t keep[CYDROP_CHUNK];                                                            \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        const uint8_t *k = mask + lo;                                                          \
        int64_t done = 0;                                                                      \
        if (is_bits) {                                                                         \
            if (CYDROP_HAVE_VEC) {        /* whole steps straight from the bits */             \
                done = cnt / CYDROP_PER_STEP * CYDROP_PER_STEP;                                \
                CYDROP_FN(cydrop_backward_bits_steps_##SUF)(dy + lo, dx + lo, mask + lo / 8,   \
                                                            done / CYDROP_PER_STEP, scale);    \
            }                                                                                  \
            CYDROP_FN(cydrop_unpack_bits)(mask + (lo + done) / 8, cnt - done, keep);           \
            k = keep;                                                                          \
        }                                                                                      \
        CYDROP_FN(cydrop_apply_keep_##SUF)(dy + lo + done, dx + lo + done, k, cnt - done,      \
                                           scale);                 /* bytes: done is 0 */      \
    }

CYDROP_DEFINE_KERNELS(float, f32)
CYDROP_DEFINE_KERNELS(double, f64)

/* The keep mask alone, as packed bits and/or 0/1 bytes (either may be NULL). */
static void CYDROP_FN(cydrop_mask)(int64_t n, uint64_t key, uint64_t offset, uint32_t thr,
                                   uint8_t *bits, uint8_t *bytes, int64_t t)
{
    uint16_t d[CYDROP_CHUNK];
    const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);
    CYDROP_FN(cydrop_fill_draws)(key, offset + (uint64_t)lo, cnt, d);
    CYDROP_FN(cydrop_store_mask)(d, cnt, thr, lo, bits, bytes);
}

/* Fused layer kernels for the trainer, on a row-major (rows, m) activation.
 *   forward : a := keep(offset + i) ? max(z + b[col], 0) * scale : +0.0, chunk t of n elements
 *             (thr >= 65536 means "keep all": no draws are made, scale is 1 for plain ReLU)
 *   backward: dz := a > 0 ? da * scale : +0.0 -- a > 0 exactly where the unit was kept and
 *             active, so no mask is needed -- for rows [r0, r1); db[col] += dz over those rows,
 *             accumulated row by row (a fixed order, whatever the thread count). */
#define CYDROP_DEFINE_FUSED(T, SUF, UT)                                                        \
    static void CYDROP_FN(cydrop_bias_relu_dropout_##SUF)(                                     \
        const T *z, const T *b, T *a, int64_t n, int64_t m, uint64_t key, uint64_t offset,     \
        uint32_t thr, T scale, int64_t t)                                                      \
    {                                                                                          \
        uint16_t d[CYDROP_CHUNK];                                                              \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        const int keep_all = thr >= 65536u;                                                    \
        if (!keep_all)                                                                         \
            CYDROP_FN(cydrop_fill_draws)(key, offset + (uint64_t)lo, cnt, d);                 \
        int64_t i = 0, col = lo % m;                                                           \
        while (i < cnt) {                                                                      \
            const int64_t seg = cnt - i < m - col ? cnt - i : m - col;                         \
            const T *zs = z + lo + i, *bs = b + col;                                           \
            T *as = a + lo + i;                                                                \
            if (keep_all) {                                                                    \
                for (int64_t k = 0; k < seg; k++) {                                            \
                    const T v = zs[k] + bs[k];                                                 \
                    as[k] = (v > (T)0 ? v : (T)0) * scale;                                     \
                }                                                                              \
            } else {                                                                           \
                const uint16_t *ds = d + i;                                                    \
                for (int64_t k = 0; k < seg; k++) {                                            \
                    const T v0 = zs[k] + bs[k];                                                \
                    const T v = (v0 > (T)0 ? v0 : (T)0) * scale;                               \
                    UT u;                                                                      \
                    memcpy(&u, &v, sizeof u);                                                  \
                    u &= -(UT)((uint32_t)ds[k] < thr);                                         \
                    memcpy(&as[k], &u, sizeof u);                                              \
                }                                                                              \
            }                                                                                  \
            i += seg;                                                                          \
            col = 0;                                                                           \
        }                                                                                      \
    }                                                                                          \
    static void CYDROP_FN(cydrop_bias_relu_dropout_backward_##SUF)(                            \
        const T *da, const T *a, T *dz, T *db, int64_t r0, int64_t r1, int64_t m, T scale)    \
    {                                                                                          \
        /* through a tile in registers, so that the loops vectorise without branches although \
           dz may be da and the compiler cannot rule out that db aliases them */               \
        enum { TB = 16 };                                                                      \
        T g[TB];                                                                               \
        for (int64_t r = r0; r < r1; r++) {                                                    \
            const T *dar = da + r * m, *ar = a + r * m;                                        \
            T *dzr = dz + r * m;                                                               \
            int64_t k = 0;                                                                     \
            for (; k + TB <= m; k += TB) {                                                     \
                for (int j = 0; j < TB; j++) {    /* a select on the bits: no branch */        \
                    const T v = dar[k + j] * scale;                                            \
                    UT u;                                                                      \
                    memcpy(&u, &v, sizeof u);                                                  \
                    u &= -(UT)(ar[k + j] > (T)0);                                              \
                    memcpy(&g[j], &u, sizeof u);                                               \
                }                                                                              \
                memcpy(dzr + k, g, sizeof g);                                                  \
                for (int j = 0; j < TB; j++)                                                   \
                    db[k + j] += g[j];                                                         \
            }                                                                                  \
            for (; k < m; k++) {                                                               \
                const T gk = ar[k] > (T)0 ? dar[k] * scale : (T)0;                             \
                dzr[k] = gk;                                                                   \
                db[k] += gk;                                                                   \
            }                                                                                  \
        }                                                                                      \
    }

CYDROP_DEFINE_FUSED(float, f32, uint32_t)
CYDROP_DEFINE_FUSED(double, f64, uint64_t)
#undef CYDROP_DEFINE_FUSED

#include "cydrop_variants_impl.h"
#include "cydrop_half_impl.h"
#include "cydrop_modern_impl.h"

static const cydrop_kernels CYDROP_FN(cydrop_table) = {
    CYDROP_STR(CYDROP_ISA),
    CYDROP_FN(cydrop_forward_f32), CYDROP_FN(cydrop_forward_f64),
    CYDROP_FN(cydrop_backward_f32), CYDROP_FN(cydrop_backward_f64),
    CYDROP_FN(cydrop_mask),
    CYDROP_FN(cydrop_fill_draws),
    CYDROP_FN(cydrop_bias_relu_dropout_f32), CYDROP_FN(cydrop_bias_relu_dropout_f64),
    CYDROP_FN(cydrop_bias_relu_dropout_backward_f32),
    CYDROP_FN(cydrop_bias_relu_dropout_backward_f64),
    CYDROP_FN(cydrop_broadcast_apply_f32), CYDROP_FN(cydrop_broadcast_apply_f64),
    CYDROP_FN(cydrop_exact_k_row),
    CYDROP_FN(cydrop_alpha_dropout_f32), CYDROP_FN(cydrop_alpha_dropout_f64),
    CYDROP_FN(cydrop_standard_normal),
    CYDROP_FN(cydrop_gaussian_dropout_f32), CYDROP_FN(cydrop_gaussian_dropout_f64),
    /* ---- float16 / bfloat16 */
    CYDROP_FN(cydrop_forward_f16), CYDROP_FN(cydrop_forward_bf16),
    CYDROP_FN(cydrop_backward_f16), CYDROP_FN(cydrop_backward_bf16),
    CYDROP_FN(cydrop_broadcast_apply_f16), CYDROP_FN(cydrop_broadcast_apply_bf16),
    CYDROP_FN(cydrop_bias_relu_dropout_f16), CYDROP_FN(cydrop_bias_relu_dropout_bf16),
    CYDROP_FN(cydrop_bias_relu_dropout_backward_f16),
    CYDROP_FN(cydrop_bias_relu_dropout_backward_bf16),
    /* ---- modern dropout */
    CYDROP_FN(cydrop_dropout_add_f32), CYDROP_FN(cydrop_dropout_add_f64),
    CYDROP_FN(cydrop_softmax_dropout_f32), CYDROP_FN(cydrop_softmax_dropout_f64),
    CYDROP_FN(cydrop_softmax_dropout_backward_f32),
    CYDROP_FN(cydrop_softmax_dropout_backward_f64),
};

#undef CYDROP_DEFINE_KERNELS
#ifdef CYDROP_LANES_STEP
#undef CYDROP_LANES_STEP
#endif
#undef CYDROP_FN
#undef CYDROP_CAT
#undef CYDROP_CAT_
