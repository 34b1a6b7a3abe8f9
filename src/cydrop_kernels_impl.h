/*
 * cydrop_kernels_impl.h -- the chunk kernels, compiled once per ISA variant.
 *
 * cydrop_kernels.c includes this file several times, each time with CYDROP_ISA set to a variant
 * name and (for all but the baseline) a `#pragma GCC target` in force, so the same C becomes
 * baseline x86-64, AVX2 and AVX-512 code. Only integer operations and one rounding multiply per
 * element (never contracted into an FMA) touch the data, so every variant gives the same bits.
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

/* m[i] := all ones if global element g0 + i is kept, else 0, for i < count <= CYDROP_CHUNK. */
static void CYDROP_FN(cydrop_fill_keep)(uint64_t key, uint64_t g0, int64_t count, uint32_t thr,
                                        uint32_t *restrict m)
{
    uint64_t out[CYDROP_LANES];
    uint32_t tmp[CYDROP_PER_STEP];
    cydrop_lanes st;
    while (count > 0) {
        const uint64_t block = g0 / CYDROP_BLOCK;
        const int64_t e0 = (int64_t)(g0 % CYDROP_BLOCK);
        const int64_t e1 = e0 + count < CYDROP_BLOCK ? e0 + count : CYDROP_BLOCK;
        const int64_t s0 = e0 / CYDROP_PER_STEP, s1 = (e1 + CYDROP_PER_STEP - 1) / CYDROP_PER_STEP;
        cydrop_lanes_seed(&st, key, block);
        for (int64_t s = 0; s < s0; s++)
            cydrop_lanes_next(&st, out);
        for (int64_t s = s0; s < s1; s++) {
            const int64_t lo = s * CYDROP_PER_STEP, hi = lo + CYDROP_PER_STEP;
            /* a whole step inside [e0, e1) is written in place, an edge step through tmp */
            uint32_t *dst = (lo >= e0 && hi <= e1) ? m + (lo - e0) : tmp;
            cydrop_lanes_next(&st, out);
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < CYDROP_LANES; j++)
                    dst[k * CYDROP_LANES + j] =
                        -(uint32_t)((uint32_t)((out[j] >> (16 * k)) & 0xffffu) < thr);
            if (dst == tmp) {
                const int64_t a = lo > e0 ? lo : e0, b = hi < e1 ? hi : e1;
                for (int64_t e = a; e < b; e++)
                    m[e - e0] = tmp[e - lo];
            }
        }
        m += e1 - e0;
        count -= e1 - e0;
        g0 += (uint64_t)(e1 - e0);
    }
}

/* bits[i / 8] bit (i % 8) := m[i] & 1, for a count that may end inside a byte. */
static void CYDROP_FN(cydrop_pack_bits)(const uint32_t *restrict m, int64_t count,
                                        uint8_t *restrict bits)
{
    const int64_t nbytes = (count + 7) / 8;
    for (int64_t b = 0; b < nbytes; b++) {
        uint8_t v = 0;
        for (int t = 0; t < 8 && 8 * b + t < count; t++)
            v |= (uint8_t)((m[8 * b + t] & 1u) << t);
        bits[b] = v;
    }
}

static void CYDROP_FN(cydrop_unpack_bits)(const uint8_t *restrict bits, int64_t count,
                                          uint32_t *restrict m)
{
    for (int64_t i = 0; i < count; i++)
        m[i] = -(uint32_t)((bits[i >> 3] >> (i & 7)) & 1u);
}

static void CYDROP_FN(cydrop_unpack_bytes)(const uint8_t *restrict bytes, int64_t count,
                                           uint32_t *restrict m)
{
    for (int64_t i = 0; i < count; i++)
        m[i] = -(uint32_t)(bytes[i] != 0);
}

/* y := x * scale where m is set, +0.0 elsewhere (a select on bits: NaN and inf drop to +0.0). */
static void CYDROP_FN(cydrop_apply_f32)(const float *x, float *y, const uint32_t *restrict m,
                                        int64_t count, float scale)
{
    for (int64_t i = 0; i < count; i++) {
        const float v = x[i] * scale;
        uint32_t b;
        memcpy(&b, &v, sizeof b);
        b &= m[i];
        memcpy(&y[i], &b, sizeof b);
    }
}

static void CYDROP_FN(cydrop_apply_f64)(const double *x, double *y, const uint32_t *restrict m,
                                        int64_t count, double scale)
{
    for (int64_t i = 0; i < count; i++) {
        const double v = x[i] * scale;
        uint64_t b;
        memcpy(&b, &v, sizeof b);
        b &= (uint64_t)(int64_t)(int32_t)m[i];
        memcpy(&y[i], &b, sizeof b);
    }
}

static inline int64_t CYDROP_FN(cydrop_chunk_count)(int64_t n, int64_t t)
{
    const int64_t lo = t * CYDROP_CHUNK;
    return n - lo < CYDROP_CHUNK ? n - lo : CYDROP_CHUNK;
}

/* Forward (and recompute-backward) of chunk t; bits/bytes, when not NULL, receive the mask. */
#define CYDROP_DEFINE_FORWARD(T, SUF)                                                          \
    static void CYDROP_FN(cydrop_forward_##SUF)(const T *x, T *y, int64_t n, uint64_t key,   \
                                                 uint64_t offset, uint32_t thr, T scale,      \
                                                 uint8_t *bits, uint8_t *bytes, int64_t t)    \
    {                                                                                          \
        uint32_t m[CYDROP_CHUNK];                                                              \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        CYDROP_FN(cydrop_fill_keep)(key, offset + (uint64_t)lo, cnt, thr, m);                 \
        CYDROP_FN(cydrop_apply_##SUF)(x + lo, y + lo, m, cnt, scale);                          \
        if (bits)                                                                              \
            CYDROP_FN(cydrop_pack_bits)(m, cnt, bits + lo / 8);                                \
        if (bytes)                                                                             \
            for (int64_t i = 0; i < cnt; i++)                                                  \
                bytes[lo + i] = (uint8_t)(m[i] & 1u);                                          \
    }                                                                                          \
    /* Backward of chunk t from a stored mask: packed bits (is_bits) or 0/1 bytes. */          \
    static void CYDROP_FN(cydrop_backward_##SUF)(const T *dy, T *dx, int64_t n,               \
                                                  const uint8_t *mask, int is_bits, T scale,   \
                                                  int64_t t)                                   \
    {                                                                                          \
        uint32_t m[CYDROP_CHUNK];                                                              \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        if (is_bits)                                                                           \
            CYDROP_FN(cydrop_unpack_bits)(mask + lo / 8, cnt, m);                              \
        else                                                                                   \
            CYDROP_FN(cydrop_unpack_bytes)(mask + lo, cnt, m);                                 \
        CYDROP_FN(cydrop_apply_##SUF)(dy + lo, dx + lo, m, cnt, scale);                        \
    }

CYDROP_DEFINE_FORWARD(float, f32)
CYDROP_DEFINE_FORWARD(double, f64)

/* The keep mask alone, as packed bits and/or 0/1 bytes (either may be NULL). */
static void CYDROP_FN(cydrop_mask)(int64_t n, uint64_t key, uint64_t offset, uint32_t thr,
                                   uint8_t *bits, uint8_t *bytes, int64_t t)
{
    uint32_t m[CYDROP_CHUNK];
    const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);
    CYDROP_FN(cydrop_fill_keep)(key, offset + (uint64_t)lo, cnt, thr, m);
    if (bits)
        CYDROP_FN(cydrop_pack_bits)(m, cnt, bits + lo / 8);
    if (bytes)
        for (int64_t i = 0; i < cnt; i++)
            bytes[lo + i] = (uint8_t)(m[i] & 1u);
}

static const cydrop_kernels CYDROP_FN(cydrop_table) = {
    CYDROP_STR(CYDROP_ISA),
    CYDROP_FN(cydrop_forward_f32), CYDROP_FN(cydrop_forward_f64),
    CYDROP_FN(cydrop_backward_f32), CYDROP_FN(cydrop_backward_f64),
    CYDROP_FN(cydrop_mask),
};

#undef CYDROP_DEFINE_FORWARD
#undef CYDROP_FN
#undef CYDROP_CAT
#undef CYDROP_CAT_
