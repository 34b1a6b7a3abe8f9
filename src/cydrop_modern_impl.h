/*
 * cydrop_modern_impl.h -- the modern dropout kernels (dropout + residual add, stochastic depth,
 * softmax + dropout), compiled once per ISA.
 *
 * cydrop_kernels_impl.h includes this file before its table, once per ISA under that ISA's
 * `#pragma GCC target`, so the kernels below use that build's generator
 * (cydrop_fill_draws_<isa>) and enter the table as its last block. cydrop/testing/reference_modern.py reimplements every kernel in
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
#ifndef CYDROP_SM_SEG
#define CYDROP_SM_SEG 2048             /* softmax: row elements whose exponentials are kept */
#endif
#ifndef CYDROP_ADD_PF_AHEAD
#define CYDROP_ADD_PF_AHEAD 4096       /* dropout_add's software prefetch distance, bytes */
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


#if CYDROP_HAVE_VEC
/* The step-fused path of dropout_add for a chunk that starts a block (as the core forward's
 * cydrop_forward_block): each step of 32 elements advances the eight lanes held in native
 * vectors, compares its 32 draws with the threshold 16 bits at a time, and selects, adds the
 * bias and the residual at once, so the generator's arithmetic overlaps the loads and stores.
 * Same bits as fill_draws + the element loop below. The generator step is the core's
 * CYDROP_LANES_STEP (this header is included by cydrop_kernels_impl.h, where it is defined). */

#define CYDROP_DEFINE_ADD_STEPS(T, SUF)                                                        \
    static inline __attribute__((always_inline)) void CYDROP_MFN(cydrop_add_steps_##SUF)(      \
        const T *x, const T *res, const T *b, int64_t m, int64_t j, T *y, int64_t nsteps,     \
        cydrop_lanes *st, uint32_t thr, T scale, const int has_res, const int has_b,           \
        const int all_kept, const int prefetch)                                                \
    {                                                                                          \
        enum { VB = sizeof(cydrop_vnat) };                                                     \
        cydrop_vnat A[CYDROP_NV], B[CYDROP_NV], C[CYDROP_NV], E[CYDROP_NV], O[CYDROP_NV];      \
        CYDROP_MFN(cydrop_vi16) drop[CYDROP_NV];                                               \
        T xin[CYDROP_PER_STEP];                                          \
        const uint16_t t16s = thr > 65535u ? 65535u : (uint16_t)thr;                           \
        const CYDROP_MFN(cydrop_vu16) t16 = t16s - (CYDROP_MFN(cydrop_vu16)){0};               \
        const CYDROP_MFN(cydrop_v##SUF) sv = scale - (CYDROP_MFN(cydrop_v##SUF)){0};           \
        memcpy(A, st->s0, sizeof A);                                                           \
        memcpy(B, st->s1, sizeof B);                                                           \
        memcpy(C, st->s2, sizeof C);                                                           \
        memcpy(E, st->s3, sizeof E);                                                           \
        for (int64_t s = 0; s < nsteps; s++) {                                                 \
            const int64_t base = s * CYDROP_PER_STEP;                                          \
            if (prefetch) {                                                                    \
                __builtin_prefetch(x + base + CYDROP_ADD_PF_AHEAD / sizeof(T), 0, 0);                         \
                __builtin_prefetch(x + base + CYDROP_ADD_PF_AHEAD / sizeof(T) + 64 / sizeof(T), 0, 0);        \
                if (has_res) {                                                                 \
                    __builtin_prefetch(res + base + CYDROP_ADD_PF_AHEAD / sizeof(T), 0, 0);                   \
                    __builtin_prefetch(res + base + CYDROP_ADD_PF_AHEAD / sizeof(T) + 64 / sizeof(T), 0, 0);  \
                }                                                                              \
                __builtin_prefetch(y + base + CYDROP_ADD_PF_AHEAD / sizeof(T), 1, 0);                         \
                __builtin_prefetch(y + base + CYDROP_ADD_PF_AHEAD / sizeof(T) + 64 / sizeof(T), 1, 0);        \
            }                                                                                  \
            CYDROP_LANES_STEP();                                                               \
            for (int v_ = 0; v_ < CYDROP_NV; v_++) {                                           \
                CYDROP_MFN(cydrop_vu16) d_;                                                    \
                memcpy(&d_, &O[v_], VB);                                                       \
                drop[v_] = all_kept ? (CYDROP_MFN(cydrop_vi16))(d_ != d_)                      \
                                    : (CYDROP_MFN(cydrop_vi16))(d_ >= t16);                    \
            }                                                                                  \
            const T *src = x + base;                                                           \
            if (has_b) {                                                                       \
                if (j + CYDROP_PER_STEP <= m) {                                                \
                    for (int k = 0; k < CYDROP_PER_STEP; k++)                                  \
                        xin[k] = src[k] + b[j + k];                                            \
                    j += CYDROP_PER_STEP;                                                      \
                    if (j == m)                                                                \
                        j = 0;                                                                 \
                } else {                                                                       \
                    for (int k = 0; k < CYDROP_PER_STEP; k++) {                                \
                        xin[k] = src[k] + b[j];                                                \
                        if (++j == m)                                                          \
                            j = 0;                                                             \
                    }                                                                          \
                }                                                                              \
                src = xin;                                                                     \
            }                                                                                  \
            /* the residual is added in registers (r + the selected element, as the  \
               element loop below) */                                                          \
            CYDROP_MFN(cydrop_select_##SUF)(src, has_res ? res + base : NULL, y + base, drop,  \
                                            sv);                                               \
        }                                                                                      \
        memcpy(st->s0, A, sizeof A);                                                           \
        memcpy(st->s1, B, sizeof B);                                                           \
        memcpy(st->s2, C, sizeof C);                                                           \
        memcpy(st->s3, E, sizeof E);                                                           \
    }                                                                                          \
    /* whole steps of a block-start chunk; returns the elements done (a multiple of 32) */    \
    static int64_t CYDROP_MFN(cydrop_add_block_##SUF)(                                         \
        const T *x, const T *res, const T *b, int64_t m, int64_t j, T *y, int64_t cnt,        \
        uint64_t key, uint64_t block, uint32_t thr, T scale, int prefetch)                     \
    {                                                                                          \
        cydrop_lanes st;                                                                       \
        const int64_t nsteps = cnt / CYDROP_PER_STEP;                                          \
        cydrop_lanes_seed(&st, key, block);                                                    \
        /* one specialisation per (residual, bias, prefetch): constants in the loop (the   \
           caller never comes here with thr >= 65536, which needs no draws) */                 \
        (void)thr;                                                                             \
        if (res && b) {                                                                        \
            if (prefetch)                                                                      \
                CYDROP_MFN(cydrop_add_steps_##SUF)(x, res, b, m, j, y, nsteps, &st, thr,       \
                                                   scale, 1, 1, 0, 1);                         \
            else                                                                               \
                CYDROP_MFN(cydrop_add_steps_##SUF)(x, res, b, m, j, y, nsteps, &st, thr,       \
                                                   scale, 1, 1, 0, 0);                         \
        } else if (res) {                                                                      \
            if (prefetch)                                                                      \
                CYDROP_MFN(cydrop_add_steps_##SUF)(x, res, b, m, j, y, nsteps, &st, thr,       \
                                                   scale, 1, 0, 0, 1);                         \
            else                                                                               \
                CYDROP_MFN(cydrop_add_steps_##SUF)(x, res, b, m, j, y, nsteps, &st, thr,       \
                                                   scale, 1, 0, 0, 0);                         \
        } else if (b) {                                                                        \
            CYDROP_MFN(cydrop_add_steps_##SUF)(x, res, b, m, j, y, nsteps, &st, thr, scale,   \
                                               0, 1, 0, prefetch);                             \
        } else {                                                                               \
            CYDROP_MFN(cydrop_add_steps_##SUF)(x, res, b, m, j, y, nsteps, &st, thr, scale,   \
                                               0, 0, 0, prefetch);                             \
        }                                                                                      \
        return nsteps * CYDROP_PER_STEP;                                                       \
    }
CYDROP_DEFINE_ADD_STEPS(float, f32)
CYDROP_DEFINE_ADD_STEPS(double, f64)
#undef CYDROP_DEFINE_ADD_STEPS
#define CYDROP_M_BLOCK_PATH 1
#else
#define CYDROP_M_BLOCK_PATH 0
#endif

/* The four (residual, bias) specialisations of cydrop_add_seg, inside a function whose
 * arguments are x, res, b, y, cnt, thr and scale; HAS_D (a constant) says whether the keep
 * decisions are the draws D or the constant mask CMASK. */
#define CYDROP_ADD_SEG(SUF, D, HAS_D, CMASK, R, B)                                             \
    CYDROP_MFN(cydrop_add_seg_##SUF)(x, res, b, y, D, cnt, thr, scale, R, B, HAS_D, CMASK)
#define CYDROP_ADD_SPECIALISE(SUF, D, HAS_D, CMASK)                                            \
    do {                                                                                       \
        if (res && b)                                                                          \
            CYDROP_ADD_SEG(SUF, D, HAS_D, CMASK, 1, 1);                                        \
        else if (res)                                                                          \
            CYDROP_ADD_SEG(SUF, D, HAS_D, CMASK, 1, 0);                                        \
        else if (b)                                                                            \
            CYDROP_ADD_SEG(SUF, D, HAS_D, CMASK, 0, 1);                                        \
        else                                                                                   \
            CYDROP_ADD_SEG(SUF, D, HAS_D, CMASK, 0, 0);                                        \
    } while (0)

#define CYDROP_DEFINE_MODERN(T, U, SUF)                                                        \
    /* y[k] := (res ? res[k] : nothing) + select(d[k] < thr, (x[k] (+ b[k])) * scale); with  \
     * has_d 0 (a constant at every call) the select is by the all-ones or zero mask cmask */   \
    static inline __attribute__((always_inline)) void CYDROP_MFN(cydrop_add_seg_##SUF)(        \
        const T *x, const T *res, const T *b, T *y, const uint16_t *restrict d, int64_t cnt,   \
        uint32_t thr, T scale, const int has_res, const int has_b, const int has_d, U cmask)   \
    {                                                                                          \
        for (int64_t k = 0; k < cnt; k++) {                                                    \
            T v = x[k];                                                                        \
            if (has_b)                                                                         \
                v = v + b[k];                                                                  \
            v = v * scale;                                                                     \
            U vb;                                                                              \
            memcpy(&vb, &v, sizeof vb);                                                        \
            vb &= has_d ? -(U)((uint32_t)d[k] < thr) : cmask;                                  \
            memcpy(&v, &vb, sizeof vb);                                                        \
            if (has_res)                                                                       \
                v = res[k] + v;                                                                \
            y[k] = v;                                                                          \
        }                                                                                      \
    }                                                                                          \
    /* one specialisation per (residual, bias) pair and per draws / constant mask: no test in  \
       the loop */                                                                             \
    static void CYDROP_MFN(cydrop_add_run_##SUF)(const T *x, const T *res, const T *b, T *y,  \
                                                  const uint16_t *d, int64_t cnt,              \
                                                  uint32_t thr, T scale)                       \
    {                                                                                          \
        CYDROP_ADD_SPECIALISE(SUF, d, 1, 0);                                                      \
    }                                                                                          \
    static void CYDROP_MFN(cydrop_add_runc_##SUF)(const T *x, const T *res, const T *b, T *y, \
                                                   int64_t cnt, U cmask, T scale)              \
    {                                                                                          \
        const uint32_t thr = 0;                                                                \
        CYDROP_ADD_SPECIALISE(SUF, NULL, 0, cmask);                                               \
    }                                                                                          \
    /* cnt elements starting at element i0 of the call, all kept (cmask all ones) or all        \
       dropped (0): the runs along the bias, as for the draws below */                         \
    static void CYDROP_MFN(cydrop_add_const_##SUF)(const T *x, const T *res, const T *bias,    \
                                                    int64_t m, int64_t i0, T *y, int64_t cnt,  \
                                                    U cmask, T scale)                          \
    {                                                                                          \
        if (!bias) {                                                                           \
            CYDROP_MFN(cydrop_add_runc_##SUF)(x, res, NULL, y, cnt, cmask, scale);             \
            return;                                                                            \
        }                                                                                      \
        for (int64_t i = 0, j = i0 % m; i < cnt; j = 0) {                                      \
            const int64_t run = m - j < cnt - i ? m - j : cnt - i;                             \
            CYDROP_MFN(cydrop_add_runc_##SUF)(x + i, res ? res + i : NULL, bias + j, y + i,    \
                                              run, cmask, scale);                              \
            i += run;                                                                          \
        }                                                                                      \
    }                                                                                          \
    static void CYDROP_MFN(cydrop_dropout_add_##SUF)(                                          \
        const T *x, const T *res, const T *bias, int64_t m, const uint8_t *rowkeep,            \
        int64_t rowlen, T *y, int64_t n, uint64_t key, uint64_t offset, uint32_t thr,          \
        T scale, int64_t t)                                                                    \
    {                                                                                          \
        uint16_t d[CYDROP_CHUNK];                                                              \
        const int64_t lo = t * CYDROP_CHUNK;                                                   \
        const int64_t cnt = n - lo < CYDROP_CHUNK ? n - lo : CYDROP_CHUNK;                     \
        if (rowkeep) {           /* one decision per sample: each sample's run of the chunk  \
                                    is all kept or all dropped */                              \
            for (int64_t i = 0, r = lo / rowlen, j = lo % rowlen; i < cnt; r++, j = 0) {       \
                const int64_t len = rowlen - j < cnt - i ? rowlen - j : cnt - i;               \
                CYDROP_MFN(cydrop_add_const_##SUF)(x + lo + i, res ? res + lo + i : NULL,      \
                                                   bias, m, lo + i, y + lo + i, len,           \
                                                   rowkeep[r] ? ~(U)0 : (U)0, scale);          \
                i += len;                                                                      \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        if (thr > 65535u) {                                                                    \
            memset(d, 0, (size_t)cnt * sizeof d[0]);                                           \
        } else if (CYDROP_M_BLOCK_PATH && (offset + (uint64_t)lo) % CYDROP_BLOCK == 0) {       \
            const int64_t done = CYDROP_MFN(cydrop_add_block_##SUF)(                          \
                x + lo, res ? res + lo : NULL, bias, m, bias ? lo % m : 0, y + lo, cnt, key,   \
                (offset + (uint64_t)lo) / CYDROP_BLOCK, thr, scale,                            \
                n * (int64_t)sizeof(T) >= ((int64_t)8 << 20));                                 \
            if (done == cnt)                                                                   \
                return;                                                                        \
            /* the partial last step: its draws through the buffer, then the loop below */  \
            CYDROP_MFN(cydrop_fill_draws)(key, offset + (uint64_t)(lo + done), cnt - done, d); \
            const int64_t lo2 = lo + done;                                                     \
            x += lo2;                                                                          \
            y += lo2;                                                                          \
            if (res)                                                                           \
                res += lo2;                                                                    \
            if (!bias) {                                                                       \
                CYDROP_MFN(cydrop_add_run_##SUF)(x, res, NULL, y, d, cnt - done, thr, scale);  \
                return;                                                                        \
            }                                                                                  \
            for (int64_t i = 0, j = lo2 % m; i < cnt - done; j = 0) {                          \
                const int64_t run = m - j < cnt - done - i ? m - j : cnt - done - i;           \
                CYDROP_MFN(cydrop_add_run_##SUF)(x + i, res ? res + i : NULL, bias + j, y + i, \
                                                 d + i, run, thr, scale);                      \
                i += run;                                                                      \
            }                                                                                  \
            return;                                                                            \
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
    /* e[i] := exp((double)z[i] - m) for i < cnt */                                           \
    static void CYDROP_MFN(cydrop_sm_exp_##SUF)(const T *restrict z, double m,                 \
                                                double *restrict e, int64_t cnt)               \
    {                                                                                          \
        for (int64_t i = 0; i < cnt; i++)                                                      \
            e[i] = CYDROP_MFN(cydrop_exp_neg)((double)z[i] - m);                               \
    }                                                                                          \
    /* p[i] := (T)(e[i] * inv), y[i] := d[i] < thr ? p[i] * scale : +0.0 (p may be NULL) */   \
    static void CYDROP_MFN(cydrop_sm_apply_##SUF)(const double *restrict e, double inv,        \
                                                  const uint16_t *restrict d, T *restrict p,   \
                                                  T *restrict y, int64_t cnt, uint32_t thr,    \
                                                  T scale)                                     \
    {                                                                                          \
        for (int64_t i = 0; i < cnt; i++) {                                                    \
            const double q = e[i] * inv;                                                       \
            const T pv = (T)q;                                                                 \
            if (p)                                                                             \
                p[i] = pv;                                                                     \
            T v = pv * scale;                                                                  \
            U vb;                                                                              \
            memcpy(&vb, &v, sizeof vb);                                                        \
            vb &= -(U)((uint32_t)d[i] < thr);                                                  \
            memcpy(&y[i], &vb, sizeof vb);                                                     \
        }                                                                                      \
    }                                                                                          \
    /* Rows r0 .. r1 - 1: m = max of the row; e = exp(z - m) in double; sum = the row's e in  \
     * eight lanes (lane k adds e[j], j % 8 == k, in order of j), combined as                 \
     * ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)); p = (T)(e * (1 / sum)). Rows longer \
     * than CYDROP_SM_SEG make e twice (the same bits). */                                     \
    static void CYDROP_MFN(cydrop_softmax_dropout_##SUF)(                                      \
        const T *z, T *y, T *p, int64_t L, uint64_t key, uint64_t offset, uint32_t thr,        \
        T scale, int64_t r0, int64_t r1)                                                       \
    {                                                                                          \
        uint16_t d[CYDROP_SM_SEG];                                                             \
        double e[CYDROP_SM_SEG + 8];                                                           \
        for (int64_t r = r0; r < r1; r++) {                                                    \
            const T *zr = z + r * L;                                                           \
            T *yr = y + r * L;                                                                 \
            T mx = zr[0];                                                                      \
            for (int64_t j = 1; j < L; j++)                                                    \
                mx = zr[j] > mx ? zr[j] : mx;                                                  \
            const double md = (double)mx;                                                      \
            double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                          \
            for (int64_t j0 = 0; j0 < L; j0 += CYDROP_SM_SEG) {                                \
                const int64_t cnt = L - j0 < CYDROP_SM_SEG ? L - j0 : CYDROP_SM_SEG;           \
                CYDROP_MFN(cydrop_sm_exp_##SUF)(zr + j0, md, e, cnt);                          \
                for (int64_t i = cnt; i % 8; i++)                                              \
                    e[i] = 0.0;                   /* +0.0 pads the last group of eight */      \
                for (int64_t i = 0; i < cnt; i += 8)                                           \
                    for (int k = 0; k < 8; k++)                                                \
                        acc[k] += e[i + k];                                                    \
            }                                                                                  \
            const double sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +                      \
                               ((acc[4] + acc[5]) + (acc[6] + acc[7]));                        \
            const double inv = 1.0 / sum;                                                      \
            for (int64_t j0 = 0; j0 < L; j0 += CYDROP_SM_SEG) {                                \
                const int64_t cnt = L - j0 < CYDROP_SM_SEG ? L - j0 : CYDROP_SM_SEG;           \
                if (L > CYDROP_SM_SEG)                                                         \
                    CYDROP_MFN(cydrop_sm_exp_##SUF)(zr + j0, md, e, cnt);                      \
                if (thr > 65535u)                                                              \
                    memset(d, 0, (size_t)cnt * sizeof d[0]);                                   \
                else                                                                           \
                    CYDROP_MFN(cydrop_fill_draws)(key, offset + (uint64_t)(r * L + j0), cnt,   \
                                                  d);                                          \
                CYDROP_MFN(cydrop_sm_apply_##SUF)(e, inv, d, p ? p + r * L + j0 : NULL,        \
                                                  yr + j0, cnt, thr, scale);                   \
            }                                                                                  \
        }                                                                                      \
    } \
    /* e[i] := (double)(g[i] * p[i]), g[i] = d[i] < thr ? dout[i] * scale : +0.0 (in T) */     \
    static void CYDROP_MFN(cydrop_sm_gp_##SUF)(const T *dout, const T *restrict p,             \
                                               const uint16_t *restrict d, double *restrict e, \
                                               int64_t cnt, uint32_t thr, T scale)             \
    {                                                                                          \
        for (int64_t i = 0; i < cnt; i++) {                                                    \
            T v = dout[i] * scale;                                                             \
            U vb;                                                                              \
            memcpy(&vb, &v, sizeof vb);                                                        \
            vb &= -(U)((uint32_t)d[i] < thr);                                                  \
            memcpy(&v, &vb, sizeof vb);                                                        \
            e[i] = (double)(v * p[i]);                                                         \
        }                                                                                      \
    }                                                                                          \
    /* The backward of rows r0 .. r1 - 1 (dz may be dout): gp = g * p as above; s = gp's row  \
     * sum in double, in the forward's eight lanes and combination; dz = (T)(gp - p * s) in   \
     * double. thr > 65535 draws nothing (all kept). Rows longer than CYDROP_SM_SEG make the  \
     * draws and gp twice (the same bits), reading each dout segment before writing it. */    \
    static void CYDROP_MFN(cydrop_softmax_dropout_backward_##SUF)(                             \
        const T *dout, const T *p, T *dz, int64_t L, uint64_t key, uint64_t offset,            \
        uint32_t thr, T scale, int64_t r0, int64_t r1)                                         \
    {                                                                                          \
        uint16_t d[CYDROP_SM_SEG];                                                             \
        double e[CYDROP_SM_SEG + 8];                                                           \
        for (int64_t r = r0; r < r1; r++) {                                                    \
            const T *gr = dout + r * L, *pr = p + r * L;                                       \
            T *dzr = dz + r * L;                                                               \
            double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                          \
            for (int pass = 0; pass < 2; pass++) {                                             \
                const double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +                    \
                                 ((acc[4] + acc[5]) + (acc[6] + acc[7]));                      \
                for (int64_t j0 = 0; j0 < L; j0 += CYDROP_SM_SEG) {                            \
                    const int64_t cnt = L - j0 < CYDROP_SM_SEG ? L - j0 : CYDROP_SM_SEG;       \
                    if (pass == 0 || L > CYDROP_SM_SEG) {                                      \
                        if (thr > 65535u)                                                      \
                            memset(d, 0, (size_t)cnt * sizeof d[0]);                           \
                        else                                                                   \
                            CYDROP_MFN(cydrop_fill_draws)(key, offset + (uint64_t)(r * L + j0), \
                                                          cnt, d);                             \
                        CYDROP_MFN(cydrop_sm_gp_##SUF)(gr + j0, pr + j0, d, e, cnt, thr,       \
                                                       scale);                                 \
                    }                                                                          \
                    if (pass == 0) {                                                           \
                        for (int64_t i = cnt; i % 8; i++)                                      \
                            e[i] = 0.0;           /* +0.0 pads the last group of eight */      \
                        for (int64_t i = 0; i < cnt; i += 8)                                   \
                            for (int k = 0; k < 8; k++)                                        \
                                acc[k] += e[i + k];                                            \
                    } else {                                                                   \
                        for (int64_t i = 0; i < cnt; i++)                                      \
                            dzr[j0 + i] = (T)(e[i] - (double)pr[j0 + i] * s);                  \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

CYDROP_DEFINE_MODERN(float, uint32_t, f32)
CYDROP_DEFINE_MODERN(double, uint64_t, f64)
#undef CYDROP_DEFINE_MODERN
#undef CYDROP_ADD_SPECIALISE
#undef CYDROP_ADD_SEG

#undef CYDROP_MFN
#undef CYDROP_MCAT
#undef CYDROP_MCAT_
