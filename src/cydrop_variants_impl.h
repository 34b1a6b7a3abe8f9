/*
 * cydrop_variants_impl.h -- the dropout variants' kernels, compiled once per ISA.
 *
 * Included by cydrop_kernels_impl.h (never on its own), inside each ISA's build: the kernels
 * take their draws from that build's cydrop_fill_draws, the one generator, and enter the ISA's
 * dispatch table (cydrop_kernels.h declares them and says what each computes). Their keep mask
 * and plain inverted dropout are the core `mask` and `forward` kernels.
 *
 * Baseline C written to vectorise: selects are done on bits (an all-ones/zero mask ANDed with
 * the value), never with `?:` on floats, which GCC will not vectorise under trapping math.
 * Floating-point contraction is off (see cydrop_kernels.c), and every multiply-add below is
 * also written as two statements, so `a * x + b` is two roundings on every ISA, exactly what
 * NumPy computes in cydrop/reference_variants.py. GaussianDropout calls libm's log, cos and
 * sqrt one element at a time: the same functions under every ISA (sqrt is exact; log and cos
 * are those of the platform's libm, which Python's math module also calls).
 */
#ifndef CYDROP_ISA
#error "cydrop_variants_impl.h is included by cydrop_kernels_impl.h"
#endif

#include <math.h>

#define CYDROP_DEFINE_VARIANTS(T, U, SUF)                                                      \
    static void CYDROP_FN(cydrop_alpha_dropout_##SUF)(const T *x, T *y, int64_t n,            \
                                                       uint64_t key, uint64_t offset,          \
                                                       uint32_t thr, T a, T b, T c, int64_t t) \
    {                                                                                          \
        uint16_t d[CYDROP_CHUNK];                                                              \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        U cb;                                                                                  \
        memcpy(&cb, &c, sizeof cb);                                                            \
        CYDROP_FN(cydrop_fill_draws)(key, offset + (uint64_t)lo, cnt, d);                      \
        x += lo;                                                                               \
        y += lo;                                                                               \
        for (int64_t i = 0; i < cnt; i++) {                                                    \
            const T ax = a * x[i];                                                             \
            const T v = ax + b;                                                                \
            U vb;                                                                              \
            memcpy(&vb, &v, sizeof vb);                                                        \
            const U m = -(U)((uint32_t)d[i] < thr);                                            \
            vb = (vb & m) | (cb & ~m);                                                         \
            memcpy(&y[i], &vb, sizeof vb);                                                     \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    static void CYDROP_FN(cydrop_broadcast_apply_##SUF)(const T *x, T *y, const uint8_t *keep, \
                                                         int nd, const int64_t *shape,         \
                                                         const int64_t *mstride, T scale,      \
                                                         int64_t r0, int64_t r1)               \
    {                                                                                          \
        int64_t idx[64];                                                                       \
        const int64_t len = shape[nd - 1], ms = mstride[nd - 1];                               \
        int64_t mbase = 0, rem = r0;                                                           \
        for (int dd = nd - 2; dd >= 0; dd--) {                                                 \
            idx[dd] = rem % shape[dd];                                                         \
            rem /= shape[dd];                                                                  \
            mbase += idx[dd] * mstride[dd];                                                    \
        }                                                                                      \
        for (int64_t r = r0; r < r1; r++) {                                                    \
            const T *xr = x + r * len;                                                         \
            T *yr = y + r * len;                                                               \
            if (ms == 0) {                                                                     \
                const U m = -(U)(keep[mbase] != 0);                                            \
                for (int64_t i = 0; i < len; i++) {                                            \
                    const T v = xr[i] * scale;                                                 \
                    U vb;                                                                      \
                    memcpy(&vb, &v, sizeof vb);                                                \
                    vb &= m;                                                                   \
                    memcpy(&yr[i], &vb, sizeof vb);                                            \
                }                                                                              \
            } else {                                                                           \
                const uint8_t *kr = keep + mbase;                                              \
                for (int64_t i = 0; i < len; i++) {                                            \
                    const T v = xr[i] * scale;                                                 \
                    U vb;                                                                      \
                    memcpy(&vb, &v, sizeof vb);                                                \
                    vb &= -(U)(kr[i] != 0);                                                    \
                    memcpy(&yr[i], &vb, sizeof vb);                                            \
                }                                                                              \
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
                                                                                               \
    static void CYDROP_FN(cydrop_gaussian_dropout_##SUF)(const T *x, T *y, int64_t n,         \
                                                          uint64_t key, uint64_t offset,       \
                                                          double sigma, int64_t t)             \
    {                                                                                          \
        uint16_t d[4 * 1024];                                                                  \
        const int64_t lo = t * CYDROP_CHUNK, cnt = CYDROP_FN(cydrop_chunk_count)(n, t);        \
        for (int64_t s = 0; s < cnt; s += 1024) {                                              \
            const int64_t m = cnt - s < 1024 ? cnt - s : 1024;                                 \
            const uint64_t w0 = offset + (uint64_t)(lo + s);                                   \
            CYDROP_FN(cydrop_fill_draws)(key, 4 * w0, 4 * m, d);                               \
            for (int64_t i = 0; i < m; i++) {                                                  \
                const uint64_t w = (uint64_t)d[4 * i] | (uint64_t)d[4 * i + 1] << 16 |         \
                                   (uint64_t)d[4 * i + 2] << 32 | (uint64_t)d[4 * i + 3] << 48; \
                const double sz = sigma * CYDROP_FN(cydrop_standard_normal)(w);                \
                const double eps = 1.0 + sz;                                                   \
                y[lo + s + i] = x[lo + s + i] * (T)eps;                                        \
            }                                                                                  \
        }                                                                                      \
    }

static double CYDROP_FN(cydrop_standard_normal)(uint64_t w)
{
    const double u1 = ((double)(w >> 32) + 0.5) / 4294967296.0;
    const double u2 = (double)(w & 0xffffffffULL) / 4294967296.0;
    const double l = log(u1);
    const double r = sqrt(-2.0 * l);
    const double c = cos(6.283185307179586 * u2);
    return r * c;
}

CYDROP_DEFINE_VARIANTS(float, uint32_t, f32)
CYDROP_DEFINE_VARIANTS(double, uint64_t, f64)
#undef CYDROP_DEFINE_VARIANTS

/* Rearrange a[0 .. n) so that a[0 .. k) hold its k smallest values (Hoare quickselect,
 * median-of-three pivots, insertion sort below 16). Keys are distinct. */
static void CYDROP_FN(cydrop_select_smallest)(uint64_t *a, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    const int64_t target = k - 1;
    while (hi > lo) {
        if (hi - lo < 16) {
            for (int64_t i = lo + 1; i <= hi; i++) {
                const uint64_t v = a[i];
                int64_t j = i - 1;
                while (j >= lo && a[j] > v) {
                    a[j + 1] = a[j];
                    j--;
                }
                a[j + 1] = v;
            }
            return;
        }
        const int64_t mid = lo + (hi - lo) / 2;
        uint64_t p0 = a[lo], p1 = a[mid], p2 = a[hi], tmp;
        if (p0 > p1) { tmp = p0; p0 = p1; p1 = tmp; }
        if (p1 > p2) { tmp = p1; p1 = p2; p2 = tmp; }
        if (p0 > p1) { tmp = p0; p0 = p1; p1 = tmp; }
        const uint64_t pivot = p1;
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                tmp = a[i];
                a[i] = a[j];
                a[j] = tmp;
                i++;
                j--;
            }
        }
        if (target <= j)
            hi = j;
        else if (target >= i)
            lo = i;
        else
            return;
    }
}

static void CYDROP_FN(cydrop_exact_k_row)(int64_t n, int64_t k, uint64_t key, uint64_t h0,
                                          uint8_t *keep, uint64_t *scratch)
{
    uint16_t d[CYDROP_CHUNK];
    memset(keep, 1, (size_t)n);
    if (k <= 0)
        return;
    if (k >= n) {
        memset(keep, 0, (size_t)n);
        return;
    }
    for (int64_t j0 = 0; j0 < n; j0 += CYDROP_CHUNK / 2) {
        const int64_t m = n - j0 < CYDROP_CHUNK / 2 ? n - j0 : CYDROP_CHUNK / 2;
        CYDROP_FN(cydrop_fill_draws)(key, 2 * (h0 + (uint64_t)j0), 2 * m, d);
        for (int64_t i = 0; i < m; i++) {
            const uint64_t u = (uint64_t)d[2 * i] | (uint64_t)d[2 * i + 1] << 16;
            scratch[j0 + i] = u << 32 | (uint64_t)(j0 + i);
        }
    }
    CYDROP_FN(cydrop_select_smallest)(scratch, n, k);
    for (int64_t i = 0; i < k; i++)
        keep[scratch[i] & 0xffffffffULL] = 0;
}
