/*
 * cydrop_rng.h -- the counter-based mask generator of cydrop.
 *
 * Pure C99, no Python.h: builds and runs without Python (see tests/packaging/c/kernels_dump.c).
 * Must match cydrop/reference.py, which reimplements every line below in NumPy, and
 * cydrop/_contract.py, the Python definition of the rate contract (threshold, scale, mix64).
 *
 * The mask is a pure function of (seed, global element index g):
 *
 *   key        = mix64(seed + GOLDEN)                 first splitmix64 output of seed
 *   block      = g / CYDROP_BLOCK                      (CYDROP_BLOCK = 4096 elements)
 *   bkey       = mix64(key ^ (block * GOLDEN))
 *   w[i]       = mix64(bkey + (i + 1) * GOLDEN)       i = 0..31, a splitmix64 stream
 *   lane j     : xoshiro256++ with state (w[4j], w[4j+1], w[4j+2], w[4j+3]), j = 0..7
 *   e          = g % CYDROP_BLOCK;  step = e / 32;  r = e % 32
 *   u          = bits 16 (r % 4) .. 16 (r % 4) + 15 of lane (r / 4)'s output at its step-th
 *                call; i.e. a step's eight lane outputs, read as 32 little-endian uint16, are
 *                the draws of its 32 elements
 *   keep(g)    = u < threshold,  threshold = round(keep_probability * 65536) in [0, 65536]
 *
 * Eight lanes stored struct-of-arrays advance together, so the compiler turns a step into a few
 * vector instructions; 16 bits per element means one 64-bit output serves four elements.
 * Blocks are independent, so any thread can make any block: the mask does not depend on the
 * number of threads, on how the array is chunked, or on which ISA runs.
 */
#ifndef CYDROP_RNG_H
#define CYDROP_RNG_H

#include <stdint.h>
#include <string.h>

#define CYDROP_BLOCK 4096         /* elements per independently seeded block */
#define CYDROP_LANES 8            /* xoshiro256++ generators per block */
#define CYDROP_PER_STEP 32        /* elements per step: 8 lanes x 4 chunks of 16 bits */
#define CYDROP_GOLDEN 0x9e3779b97f4a7c15ULL

/* splitmix64's output function (Steele, Lea, Flood 2014): a bijection of uint64. */
static inline uint64_t cydrop_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t cydrop_seed_key(uint64_t seed)
{
    return cydrop_mix64(seed + CYDROP_GOLDEN);
}

static inline uint64_t cydrop_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

#if (defined(__GNUC__) || defined(__clang__)) && !defined(CYDROP_NO_VEC)
/* Lanes as generic vectors: portable C that any GCC or clang target vectorises. The width is
   set per ISA (cydrop_vnat) by whoever includes cydrop_kernels_impl.h. */
#define CYDROP_HAVE_VEC 1
#else
#define CYDROP_HAVE_VEC 0
#endif

/* Struct-of-arrays state of the eight xoshiro256++ lanes of one block. */
typedef struct {
    uint64_t s0[CYDROP_LANES], s1[CYDROP_LANES], s2[CYDROP_LANES], s3[CYDROP_LANES];
} cydrop_lanes;

static inline void cydrop_lanes_seed(cydrop_lanes *st, uint64_t key, uint64_t block)
{
    const uint64_t bkey = cydrop_mix64(key ^ (block * CYDROP_GOLDEN));
    for (int j = 0; j < CYDROP_LANES; j++) {
        const uint64_t base = bkey + (uint64_t)(4 * j) * CYDROP_GOLDEN;
        st->s0[j] = cydrop_mix64(base + 1 * CYDROP_GOLDEN);
        st->s1[j] = cydrop_mix64(base + 2 * CYDROP_GOLDEN);
        st->s2[j] = cydrop_mix64(base + 3 * CYDROP_GOLDEN);
        st->s3[j] = cydrop_mix64(base + 4 * CYDROP_GOLDEN);
    }
}

/* One xoshiro256++ step of every lane (Blackman and Vigna 2019); outputs go to out[8]. */
static inline void cydrop_lanes_next(cydrop_lanes *st, uint64_t *out)
{
    for (int j = 0; j < CYDROP_LANES; j++) {
        const uint64_t s0 = st->s0[j], s1 = st->s1[j], s2 = st->s2[j], s3 = st->s3[j];
        const uint64_t t = s1 << 17;
        out[j] = cydrop_rotl(s0 + s3, 23) + s0;
        const uint64_t n2 = s2 ^ s0, n3 = s3 ^ s1;
        st->s1[j] = s1 ^ n2;
        st->s0[j] = s0 ^ n3;
        st->s2[j] = n2 ^ t;
        st->s3[j] = cydrop_rotl(n3, 45);
    }
}

/* A little-endian uint64 load: identity on little-endian machines, a byte swap elsewhere. */
static inline uint64_t cydrop_le64(uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return __builtin_bswap64(v);
#else
    return v;
#endif
}

static inline uint64_t cydrop_bswap64(uint64_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_bswap64(v);
#else
    v = ((v & 0x00ff00ff00ff00ffULL) << 8) | ((v >> 8) & 0x00ff00ff00ff00ffULL);
    v = ((v & 0x0000ffff0000ffffULL) << 16) | ((v >> 16) & 0x0000ffff0000ffffULL);
    return (v << 32) | (v >> 32);
#endif
}

/* d[4j + k] := bits 16k .. 16k + 15 of out[j]: the 32 draws of one step. */
static inline void cydrop_store_draws(uint16_t *d, const uint64_t *out)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (int j = 0; j < CYDROP_LANES; j++)
        for (int k = 0; k < 4; k++)
            d[4 * j + k] = (uint16_t)(out[j] >> (16 * k));
#else
    memcpy(d, out, CYDROP_LANES * sizeof(uint64_t));
#endif
}

/* The rate contract (its Python twin is cydrop/_contract.py). */

/* The threshold that realises keep probability `keep` (0 <= keep <= 1) within 2^-16. */
static inline uint32_t cydrop_threshold(double keep)
{
    return (uint32_t)(keep * 65536.0 + 0.5);
}

/* The scale of kept elements: 65536 / thr, the exact inverse of the realised keep probability
 * thr / 65536; 0 when nothing is kept (thr == 0). */
static inline double cydrop_scale(uint32_t thr)
{
    return thr ? 65536.0 / (double)thr : 0.0;
}

#endif /* CYDROP_RNG_H */
