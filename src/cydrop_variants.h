/*
 * cydrop_variants.h -- C entry points of cydrop's dropout variants.
 *
 * Must match the declarations in src/cydrop/_variants.pxd, and cydrop/reference_variants.py,
 * which reimplements every kernel in NumPy bit for bit.
 *
 * Pure C99 + libm, no Python.h. Every function here is handed trusted, validated, contiguous
 * buffers by the Python layer (cydrop/variants.py) and cannot fail: nothing allocates, blocks or
 * reports errors. Work is cut into independent tasks (a chunk of CYDROP_VCHUNK elements, or a
 * row, or a group of rows) so the Cython loops may run any task on any OpenMP thread: no result
 * depends on the number of threads.
 *
 * All randomness comes from the 16-bit draw field of cydrop_rng.h: draw(seed, p) for global
 * position p. The variants read it at three widths:
 *
 *   u16 draw of element g      : draw(seed, g)                  (mask variants, AlphaDropout)
 *   u32 word  h                : draw(2h) | draw(2h + 1) << 16  (exact-k keys)
 *   u64 word  h                : draw(4h) | ... | draw(4h + 3) << 48
 *                                = the h-th 64-bit xoshiro256++ lane output (GaussianDropout)
 *
 * i.e. little-endian views of the same lane outputs, so the u64 word h is exactly lane (h % 8)'s
 * output at step (h % 1024) / 8 of block h / 1024.
 */
#ifndef CYDROP_VARIANTS_H
#define CYDROP_VARIANTS_H

#include <stdint.h>

#include "cydrop_rng.h"

#define CYDROP_VCHUNK 4096   /* elements per chunk task of the element-wise kernels */

/* d[i] := draw(seed, p0 + i) for 0 <= i < count (key = cydrop_seed_key(seed)). */
void cydrop_v_fill_draws(uint64_t key, uint64_t p0, int64_t count, uint16_t *d);

/* Chunk t of the keep mask of positions offset .. offset + n - 1: keep[i] = draw < thr. */
void cydrop_v_keep(int64_t n, uint64_t key, uint64_t offset, uint32_t thr, uint8_t *keep,
                   int64_t t);

/* Chunk t of inverted dropout from draws: y[i] = draw(offset + i) < thr ? x[i] * scale : +0.0.
 * (A select on bits: NaN and inf drop to +0.0.) y may be x. */
void cydrop_v_dropout_f32(const float *x, float *y, int64_t n, uint64_t key, uint64_t offset,
                          uint32_t thr, float scale, int64_t t);
void cydrop_v_dropout_f64(const double *x, double *y, int64_t n, uint64_t key, uint64_t offset,
                          uint32_t thr, double scale, int64_t t);

/* Broadcast mask apply over rows r0 .. r1 - 1 of a C-contiguous array of shape shape[0..nd-1]
 * (nd >= 1; rows = the product of shape[0 .. nd-2], each row shape[nd-1] long):
 *   y[idx] = keep[sum_d idx_d * mstride[d]] ? x[idx] * scale : +0.0
 * mstride[d] is 0 along broadcast axes. y may be x. */
void cydrop_v_bcast_f32(const float *x, float *y, const uint8_t *keep, int nd,
                        const int64_t *shape, const int64_t *mstride, float scale, int64_t r0,
                        int64_t r1);
void cydrop_v_bcast_f64(const double *x, double *y, const uint8_t *keep, int nd,
                        const int64_t *shape, const int64_t *mstride, double scale, int64_t r0,
                        int64_t r1);

/* Exact-k mask of one row of n units whose first u32 word is h0: unit j gets the 64-bit key
 * (u32word(h0 + j) << 32) | j, and the k units with the smallest keys are dropped:
 * keep[j] = key_j > (k-th smallest key), all kept if k == 0. scratch holds n uint64. */
void cydrop_v_exactk_row(int64_t n, int64_t k, uint64_t key, uint64_t h0, uint8_t *keep,
                         uint64_t *scratch);

/* Chunk t of AlphaDropout: y[i] = draw(offset + i) < thr ? a * x[i] + b : c (no FMA). */
void cydrop_v_alpha_f32(const float *x, float *y, int64_t n, uint64_t key, uint64_t offset,
                        uint32_t thr, float a, float b, float c, int64_t t);
void cydrop_v_alpha_f64(const double *x, double *y, int64_t n, uint64_t key, uint64_t offset,
                        uint32_t thr, double a, double b, double c, int64_t t);

/* The standard normal of u64 word w (Box-Muller, cosine branch, in double):
 *   u1 = ((w >> 32) + 0.5) / 2^32,  u2 = (w & 0xffffffff) / 2^32,
 *   z  = sqrt(-2 log u1) * cos(2 pi u2)     (2 pi as the double 6.283185307179586) */
double cydrop_v_normal(uint64_t w);

/* Chunk t of GaussianDropout: eps = 1 + sigma * z(u64 word offset + i) in double, then
 * y[i] = x[i] * (T)eps. y may be x. Positions 4 offset .. 4 (offset + n) - 1 are read. */
void cydrop_v_gauss_f32(const float *x, float *y, int64_t n, uint64_t key, uint64_t offset,
                        double sigma, int64_t t);
void cydrop_v_gauss_f64(const double *x, double *y, int64_t n, uint64_t key, uint64_t offset,
                        double sigma, int64_t t);

#endif /* CYDROP_VARIANTS_H */
