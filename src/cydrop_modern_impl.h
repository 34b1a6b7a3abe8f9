/*
 * cydrop_modern_impl.h -- the modern dropout kernels (dropout + residual add, stochastic depth,
 * softmax + dropout), compiled once per ISA.
 *
 * cydrop_kernels.c includes this file right after each ISA's cydrop_kernels_impl.h, under the
 * same `#pragma GCC target`, so the kernels below use that build's generator
 * (cydrop_fill_draws_<isa>) and enter that ISA's dispatch table through
 * cydrop_modern_fill_<isa>. cydrop/testing/reference_modern.py reimplements every kernel in
 * NumPy, bit for bit.
 *
 * Bits: only IEEE additions, multiplications and one division touch the data, each rounded on
 * its own (floating-point contraction is off in every build, see cydrop_kernels.c), so every ISA
 * gives the same bits. Drops are bit selects (NaN and inf drop to +0.0), as in the core.
 *
 * The softmax's exponential is cydrop's own (cydrop_exp_neg below): Cody-Waite reduction and a
 * degree-11 Taylor polynomial in Horner form, in double for both dtypes, with 2^n built from the
 * bits of the rounding constant. It is written so NumPy's float64 arithmetic reproduces it
 * exactly (libm's exp differs between libraries, and NumPy's own SIMD exp from libm's).
 */
#ifndef CYDROP_ISA
#error "cydrop_modern_impl.h is included by cydrop_kernels.c after cydrop_kernels_impl.h"
#endif

#define CYDROP_MCAT_(a, b) a##_##b
#define CYDROP_MCAT(a, b) CYDROP_MCAT_(a, b)
#define CYDROP_MFN(name) CYDROP_MCAT(name, CYDROP_ISA)

#ifndef CYDROP_MODERN_CONSTANTS
#define CYDROP_MODERN_CONSTANTS
#define CYDROP_EXP_MAGIC 6755399441055744.0          /* 0x1.8p52: adding it rounds to integer */
#define CYDROP_EXP_MAGIC_BITS 0x4338000000000000LL   /* its bit pattern */
#define CYDROP_EXP_LOG2E 1.4426950408889634
#define CYDROP_EXP_LN2_HI 0.693147180369123816490     /* ln 2, high 32 bits */
#define CYDROP_EXP_LN2_LO 1.90821492927058770002e-10  /* ln 2 - LN2_HI */
#define CYDROP_EXP_MIN (-708.0)                        /* below: the exponential is taken as 0 */
#endif

/* exp(x) for x <= 0 (x < -708, and NaN, give +0.0): n = round(x log2 e), r = x - n ln 2 in two
 * steps, p = sum r^k / k! (k <= 11, Horner), exp = p * 2^n. */
static inline double CYDROP_MFN(cydrop_exp_neg)(double x)
{
    const int ok = x >= CYDROP_EXP_MIN;
    uint64_t xb, cb, mk = -(uint64_t)ok;
    const double lo = CYDROP_EXP_MIN;
    memcpy(&xb, &x, 8);
    memcpy(&cb, &lo, 8);
    xb = (xb & mk) | (cb & ~mk);
    double xc;
    memcpy(&xc, &xb, 8);
    const double u = xc * CYDROP_EXP_LOG2E;
    const double t = u + CYDROP_EXP_MAGIC;
    const double n = t - CYDROP_EXP_MAGIC;
    const double h = n * CYDROP_EXP_LN2_HI;
    const double r1 = xc - h;
    const double l = n * CYDROP_EXP_LN2_LO;
    const double r = r1 - l;
    double p = 2.505210838544172e-08;            /* 1/11! */
    p = p * r; p = p + 2.755731922398589e-07;    /* 1/10! */
    p = p * r; p = p + 2.755731922398589e-06;    /* 1/9! */
    p = p * r; p = p + 2.48015873015873e-05;     /* 1/8! */
    p = p * r; p = p + 0.0001984126984126984;    /* 1/7! */
    p = p * r; p = p + 0.001388888888888889;     /* 1/6! */
    p = p * r; p = p + 0.008333333333333333;     /* 1/5! */
    p = p * r; p = p + 0.041666666666666664;     /* 1/4! */
    p = p * r; p = p + 0.16666666666666666;      /* 1/3! */
    p = p * r; p = p + 0.5;
    p = p * r; p = p + 1.0;
    p = p * r; p = p + 1.0;
    int64_t k;
    memcpy(&k, &t, 8);
    k -= CYDROP_EXP_MAGIC_BITS;                   /* n as an integer, -1022 <= n <= 0 */
    const uint64_t sb = (uint64_t)(k + 1023) << 52;
    double s;
    memcpy(&s, &sb, 8);
    const double e = p * s;
    uint64_t eb;
    memcpy(&eb, &e, 8);
    eb &= mk;
    double out;
    memcpy(&out, &eb, 8);
    return out;
}

#define CYDROP_DEFINE_MODERN(T, U, SUF)                                                        \
    /* y[k] := (res ? res[k] : nothing) + select(d[k] < thr, (x[k] (+ b[k])) * scale) */       \
    static inline __attribute__((always_inline)) void CYDROP_MFN(cydrop_add_seg_##SUF)(        \
        const T *x, const T *res, const T *b, T *y, const uint16_t *restrict d, int64_t cnt,   \
        uint32_t thr, T scale, const int has_res, const int has_b)                             \
    {                                                                                          \
        for (int64_t k = 0; k < cnt; k++) {                                                    \
            T v = x[k];                                                                        \
            if (has_b)                                                                         \
                v = v + b[k];                                                                  \
            v = v * scale;                                                                     \
            U vb;                                                                              \
            memcpy(&vb, &v, sizeof vb);                                                        \
            vb &= -(U)((uint32_t)d[k] < thr);                                                  \
            memcpy(&v, &vb, sizeof vb);                                                        \
            if (has_res)                                                                       \
                v = res[k] + v;                                                                \
            y[k] = v;                                                                          \
        }                                                                                      \
    }                                                                                          \
    static void CYDROP_MFN(cydrop_add_run_##SUF)(const T *x, const T *res, const T *b, T *y,  \
                                                  const uint16_t *d, int64_t cnt,              \
                                                  uint32_t thr, T scale)                       \
    {                                                                                          \
        /* one specialisation per (residual, bias) pair: no test in the loop */                \
        if (res && b)                                                                          \
            CYDROP_MFN(cydrop_add_seg_##SUF)(x, res, b, y, d, cnt, thr, scale, 1, 1);          \
        else if (res)                                                                          \
            CYDROP_MFN(cydrop_add_seg_##SUF)(x, res, b, y, d, cnt, thr, scale, 1, 0);          \
        else if (b)                                                                            \
            CYDROP_MFN(cydrop_add_seg_##SUF)(x, res, b, y, d, cnt, thr, scale, 0, 1);          \
        else                                                                                   \
            CYDROP_MFN(cydrop_add_seg_##SUF)(x, res, b, y, d, cnt, thr, scale, 0, 0);          \
    }                                                                                          \
    static void CYDROP_MFN(cydrop_dropout_add_##SUF)(                                          \
        const T *x, const T *res, const T *bias, int64_t m, const uint8_t *rowkeep,            \
        int64_t rowlen, T *y, int64_t n, uint64_t key, uint64_t offset, uint32_t thr,          \
        T scale, int64_t t)                                                                    \
    {                                                                                          \
        uint16_t d[CYDROP_CHUNK];                                                              \
        const int64_t lo = t * CYDROP_CHUNK;                                                   \
        const int64_t cnt = n - lo < CYDROP_CHUNK ? n - lo : CYDROP_CHUNK;                     \
        if (rowkeep) {           /* one decision per sample: 0 keeps (0 < thr unless        \
                                    nothing is kept), 0xffff drops */                          \
            int64_t r = lo / rowlen, j = lo % rowlen;                                          \
            for (int64_t i = 0; i < cnt; i++) {                                                \
                d[i] = rowkeep[r] ? 0 : 0xffff;                                                \
                if (++j == rowlen) {                                                           \
                    j = 0;                                                                     \
                    r++;                                                                       \
                }                                                                              \
            }                                                                                  \
        } else if (thr > 65535u) {                                                             \
            memset(d, 0, (size_t)cnt * sizeof d[0]);                                           \
        } else {                                                                               \
            CYDROP_MFN(cydrop_fill_draws)(key, offset + (uint64_t)lo, cnt, d);                 \
        }                                                                                      \
        x += lo;                                                                               \
        y += lo;                                                                               \
        if (res)                                                                               \
            res += lo;                                                                         \
        if (!bias) {                                                                           \
            CYDROP_MFN(cydrop_add_run_##SUF)(x, res, NULL, y, d, cnt, thr, scale);             \
            return;                                                                            \
        }                                                                                      \
        for (int64_t i = 0, j = lo % m; i < cnt; j = 0) {     /* runs along the bias */       \
            const int64_t run = m - j < cnt - i ? m - j : cnt - i;                             \
            CYDROP_MFN(cydrop_add_run_##SUF)(x + i, res ? res + i : NULL, bias + j, y + i,     \
                                             d + i, run, thr, scale);                          \
            i += run;                                                                          \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    static void CYDROP_MFN(cydrop_softmax_dropout_##SUF)(                                      \
        const T *z, T *y, T *p, int64_t L, uint64_t key, uint64_t offset, uint32_t thr,        \
        T scale, int64_t r0, int64_t r1)                                                       \
    {                                                                                          \
        uint16_t d[CYDROP_CHUNK];                                                              \
        for (int64_t r = r0; r < r1; r++) {                                                    \
            const T *zr = z + r * L;                                                           \
            T *yr = y + r * L;                                                                 \
            T *pr = p ? p + r * L : NULL;                                                      \
            T mx = zr[0];                                                                      \
            for (int64_t j = 1; j < L; j++)                                                    \
                mx = zr[j] > mx ? zr[j] : mx;                                                  \
            const double md = (double)mx;                                                      \
            double sum = 0.0;                                                                  \
            for (int64_t j = 0; j < L; j++)       /* in order: the twin sums the same way */   \
                sum += CYDROP_MFN(cydrop_exp_neg)((double)zr[j] - md);                         \
            const double inv = 1.0 / sum;                                                      \
            for (int64_t j0 = 0; j0 < L; j0 += CYDROP_CHUNK) {                                 \
                const int64_t cnt = L - j0 < CYDROP_CHUNK ? L - j0 : CYDROP_CHUNK;             \
                if (thr > 65535u)                                                              \
                    memset(d, 0, (size_t)cnt * sizeof d[0]);                                   \
                else                                                                           \
                    CYDROP_MFN(cydrop_fill_draws)(key, offset + (uint64_t)(r * L + j0), cnt,   \
                                                  d);                                          \
                for (int64_t i = 0; i < cnt; i++) {                                            \
                    const double e = CYDROP_MFN(cydrop_exp_neg)((double)zr[j0 + i] - md);      \
                    const double q = e * inv;                                                  \
                    const T pv = (T)q;                                                         \
                    if (pr)                                                                    \
                        pr[j0 + i] = pv;                                                       \
                    T v = pv * scale;                                                          \
                    U vb;                                                                      \
                    memcpy(&vb, &v, sizeof vb);                                                \
                    vb &= -(U)((uint32_t)d[i] < thr);                                          \
                    memcpy(&yr[j0 + i], &vb, sizeof vb);                                       \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

CYDROP_DEFINE_MODERN(float, uint32_t, f32)
CYDROP_DEFINE_MODERN(double, uint64_t, f64)
#undef CYDROP_DEFINE_MODERN

/* The modern block of this ISA's table (cydrop_kernels.c copies the rest from
 * cydrop_kernels_impl.h's table). */
static void CYDROP_MFN(cydrop_modern_fill)(cydrop_kernels *k)
{
    k->dropout_add_f32 = CYDROP_MFN(cydrop_dropout_add_f32);
    k->dropout_add_f64 = CYDROP_MFN(cydrop_dropout_add_f64);
    k->softmax_dropout_f32 = CYDROP_MFN(cydrop_softmax_dropout_f32);
    k->softmax_dropout_f64 = CYDROP_MFN(cydrop_softmax_dropout_f64);
}

#undef CYDROP_MFN
#undef CYDROP_MCAT
#undef CYDROP_MCAT_
