/*
 * cydrop_variants.c -- kernels of cydrop's dropout variants (see cydrop_variants.h).
 *
 * Baseline C written to vectorise: selects are done on bits (an all-ones/zero mask ANDed with
 * the value), never with `?:` on floats, which GCC will not vectorise under trapping math.
 * The file is compiled with -std=c99 (no FP contraction), so `a * x + b` is two roundings,
 * exactly what NumPy computes in cydrop/reference_variants.py. GaussianDropout calls libm's
 * log, cos and sqrt, one element at a time (sqrt is exact; log and cos are those of the
 * platform's libm, which Python's math module also calls).
 */
#include <math.h>
#include <string.h>

#include "cydrop_variants.h"

#define CYDROP_MIN(a, b) ((a) < (b) ? (a) : (b))

void cydrop_v_fill_draws(uint64_t key, uint64_t p0, int64_t count, uint16_t *d)
{
    uint64_t out[CYDROP_LANES];
    uint16_t tmp[CYDROP_PER_STEP];
    cydrop_lanes st;
    while (count > 0) {
        const uint64_t block = p0 / CYDROP_BLOCK;
        const int64_t e0 = (int64_t)(p0 % CYDROP_BLOCK);
        const int64_t e1 = CYDROP_MIN(e0 + count, (int64_t)CYDROP_BLOCK);
        const int64_t s0 = e0 / CYDROP_PER_STEP, s1 = (e1 + CYDROP_PER_STEP - 1) / CYDROP_PER_STEP;
        cydrop_lanes_seed(&st, key, block);
        for (int64_t s = 0; s < s0; s++)
            cydrop_lanes_next(&st, out);
        for (int64_t s = s0; s < s1; s++) {
            const int64_t lo = s * CYDROP_PER_STEP;
            cydrop_lanes_next(&st, out);
            if (lo >= e0 && lo + CYDROP_PER_STEP <= e1) {
                cydrop_store_draws(d + (lo - e0), out);
            } else {
                const int64_t a = lo > e0 ? lo : e0;
                const int64_t b = CYDROP_MIN(lo + CYDROP_PER_STEP, e1);
                cydrop_store_draws(tmp, out);
                for (int64_t e = a; e < b; e++)
                    d[e - e0] = tmp[e - lo];
            }
        }
        d += e1 - e0;
        count -= e1 - e0;
        p0 += (uint64_t)(e1 - e0);
    }
}

static inline int64_t chunk_count(int64_t n, int64_t t)
{
    return CYDROP_MIN(n - t * CYDROP_VCHUNK, (int64_t)CYDROP_VCHUNK);
}

void cydrop_v_keep(int64_t n, uint64_t key, uint64_t offset, uint32_t thr, uint8_t *keep,
                   int64_t t)
{
    uint16_t d[CYDROP_VCHUNK];
    const int64_t lo = t * CYDROP_VCHUNK, cnt = chunk_count(n, t);
    cydrop_v_fill_draws(key, offset + (uint64_t)lo, cnt, d);
    for (int64_t i = 0; i < cnt; i++)
        keep[lo + i] = (uint8_t)((uint32_t)d[i] < thr);
}

/* y[i] := bits of v if m else +0.0 (m all-ones or zero). */
#define CYDROP_DEFINE_ELEMENTWISE(T, U, SUF)                                                   \
    void cydrop_v_dropout_##SUF(const T *x, T *y, int64_t n, uint64_t key, uint64_t offset,    \
                                uint32_t thr, T scale, int64_t t)                              \
    {                                                                                          \
        uint16_t d[CYDROP_VCHUNK];                                                             \
        const int64_t lo = t * CYDROP_VCHUNK, cnt = chunk_count(n, t);                         \
        cydrop_v_fill_draws(key, offset + (uint64_t)lo, cnt, d);                              \
        x += lo;                                                                               \
        y += lo;                                                                               \
        for (int64_t i = 0; i < cnt; i++) {                                                    \
            const T v = x[i] * scale;                                                          \
            U b;                                                                               \
            memcpy(&b, &v, sizeof b);                                                          \
            b &= -(U)((uint32_t)d[i] < thr);                                                   \
            memcpy(&y[i], &b, sizeof b);                                                       \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void cydrop_v_alpha_##SUF(const T *x, T *y, int64_t n, uint64_t key, uint64_t offset,      \
                              uint32_t thr, T a, T b, T c, int64_t t)                          \
    {                                                                                          \
        uint16_t d[CYDROP_VCHUNK];                                                             \
        const int64_t lo = t * CYDROP_VCHUNK, cnt = chunk_count(n, t);                         \
        U cb;                                                                                  \
        memcpy(&cb, &c, sizeof cb);                                                            \
        cydrop_v_fill_draws(key, offset + (uint64_t)lo, cnt, d);                              \
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
    void cydrop_v_bcast_##SUF(const T *x, T *y, const uint8_t *keep, int nd,                   \
                              const int64_t *shape, const int64_t *mstride, T scale,           \
                              int64_t r0, int64_t r1)                                          \
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
    void cydrop_v_gauss_##SUF(const T *x, T *y, int64_t n, uint64_t key, uint64_t offset,      \
                              double sigma, int64_t t)                                         \
    {                                                                                          \
        uint16_t d[4 * 1024];                                                                  \
        const int64_t lo = t * CYDROP_VCHUNK, cnt = chunk_count(n, t);                         \
        for (int64_t s = 0; s < cnt; s += 1024) {                                              \
            const int64_t m = CYDROP_MIN(cnt - s, (int64_t)1024);                              \
            const uint64_t w0 = offset + (uint64_t)(lo + s);                                   \
            cydrop_v_fill_draws(key, 4 * w0, 4 * m, d);                                        \
            for (int64_t i = 0; i < m; i++) {                                                  \
                const uint64_t w = (uint64_t)d[4 * i] | (uint64_t)d[4 * i + 1] << 16 |         \
                                   (uint64_t)d[4 * i + 2] << 32 | (uint64_t)d[4 * i + 3] << 48; \
                const double eps = 1.0 + sigma * cydrop_v_normal(w);                           \
                y[lo + s + i] = x[lo + s + i] * (T)eps;                                        \
            }                                                                                  \
        }                                                                                      \
    }

CYDROP_DEFINE_ELEMENTWISE(float, uint32_t, f32)
CYDROP_DEFINE_ELEMENTWISE(double, uint64_t, f64)

double cydrop_v_normal(uint64_t w)
{
    const double u1 = ((double)(w >> 32) + 0.5) / 4294967296.0;
    const double u2 = (double)(w & 0xffffffffULL) / 4294967296.0;
    const double r = sqrt(-2.0 * log(u1));
    return r * cos(6.283185307179586 * u2);
}

/* Rearrange a[0 .. n) so that a[0 .. k) hold its k smallest values (Hoare quickselect,
 * median-of-three pivots, insertion sort below 16). Keys are distinct. */
static void select_smallest(uint64_t *a, int64_t n, int64_t k)
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

void cydrop_v_exactk_row(int64_t n, int64_t k, uint64_t key, uint64_t h0, uint8_t *keep,
                         uint64_t *scratch)
{
    uint16_t d[CYDROP_VCHUNK];
    memset(keep, 1, (size_t)n);
    if (k <= 0)
        return;
    if (k >= n) {
        memset(keep, 0, (size_t)n);
        return;
    }
    for (int64_t j0 = 0; j0 < n; j0 += CYDROP_VCHUNK / 2) {
        const int64_t m = CYDROP_MIN(n - j0, (int64_t)(CYDROP_VCHUNK / 2));
        cydrop_v_fill_draws(key, 2 * (h0 + (uint64_t)j0), 2 * m, d);
        for (int64_t i = 0; i < m; i++) {
            const uint64_t u = (uint64_t)d[2 * i] | (uint64_t)d[2 * i + 1] << 16;
            scratch[j0 + i] = u << 32 | (uint64_t)(j0 + i);
        }
    }
    select_smallest(scratch, n, k);
    for (int64_t i = 0; i < k; i++)
        keep[scratch[i] & 0xffffffffULL] = 0;
}
