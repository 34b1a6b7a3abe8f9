/*
 * cydrop_kernels.h -- C entry points of every cydrop kernel: the dropout core, the fused layer
 * and the dropout variants, compiled once per ISA and reached through one dispatch table.
 *
 * Must match the declarations in cydrop/_kernels.pxd.
 *
 * Most kernels process one task t: the chunk of CYDROP_CHUNK local elements
 * [t * CYDROP_CHUNK, min(n, (t + 1) * CYDROP_CHUNK)), so a caller runs t over
 * [0, ceil(n / CYDROP_CHUNK)) serially or on OpenMP threads (cydrop/_parallel.pyx). The
 * broadcast apply, the exact-k row and the fused backward take rows instead. Arguments are
 * trusted: the Python layer has validated shapes, dtypes, contiguity and ranges before the GIL
 * was released. Nothing here allocates, blocks or fails.
 *   x, y      : input and output (y == x for in-place; no other overlap)
 *   n         : number of elements of the whole call
 *   key       : cydrop_seed_key(seed)
 *   offset    : global index of local element 0 (the mask of element i is that of offset + i)
 *   thr       : cydrop_threshold(keep probability)
 *   scale     : cydrop_scale(thr) = 65536 / thr, the inverse of the realised keep probability
 *   bits      : packed mask, bit i % 8 of byte i / 8 (NumPy bitorder='little'), or NULL
 *   bytes     : mask as 0/1 uint8, or NULL
 *
 * The dropout variants (cydrop/_variants.pyx; cydrop/reference_variants.py reimplements each
 * kernel in NumPy bit for bit) read the generator's 16-bit draw field draw(seed, p) at three
 * widths, little-endian views of the same lane outputs:
 *   u16 draw of element g : draw(seed, g)                   (keep masks, AlphaDropout)
 *   u32 word h            : draw(2h) | draw(2h + 1) << 16   (exact-k keys)
 *   u64 word h            : draw(4h) | ... | draw(4h + 3) << 48
 *                           = the h-th 64-bit xoshiro256++ lane output (GaussianDropout)
 * so the u64 word h is exactly lane (h % 8)'s output at step (h % 1024) / 8 of block h / 1024.
 * The variants' keep mask and plain inverted dropout are the core `mask` (bytes only) and
 * `forward` (no mask) kernels.
 */
#ifndef CYDROP_KERNELS_H
#define CYDROP_KERNELS_H

#include <stdint.h>

#include "cydrop_rng.h"

#define CYDROP_CHUNK 4096   /* local elements per task; a multiple of 8 and of CYDROP_PER_STEP */

/* ---- the dropout core */
typedef void (*cydrop_forward_f32_fn)(const float *x, float *y, int64_t n, uint64_t key,
                                      uint64_t offset, uint32_t thr, float scale, uint8_t *bits,
                                      uint8_t *bytes, int64_t t);
typedef void (*cydrop_forward_f64_fn)(const double *x, double *y, int64_t n, uint64_t key,
                                      uint64_t offset, uint32_t thr, double scale, uint8_t *bits,
                                      uint8_t *bytes, int64_t t);
typedef void (*cydrop_backward_f32_fn)(const float *dy, float *dx, int64_t n, const uint8_t *mask,
                                       int is_bits, float scale, int64_t t);
typedef void (*cydrop_backward_f64_fn)(const double *dy, double *dx, int64_t n,
                                       const uint8_t *mask, int is_bits, double scale, int64_t t);
typedef void (*cydrop_mask_fn)(int64_t n, uint64_t key, uint64_t offset, uint32_t thr,
                               uint8_t *bits, uint8_t *bytes, int64_t t);
/* d[i] := draw(key, g0 + i) for 0 <= i < count (any count; the generator itself) */
typedef void (*cydrop_fill_draws_fn)(uint64_t key, uint64_t g0, int64_t count, uint16_t *d);

/* ---- fused bias + ReLU + dropout for the trainer (see cydrop_kernels_impl.h) */
typedef void (*cydrop_bias_relu_dropout_f32_fn)(const float *z, const float *b, float *a,
                                                int64_t n, int64_t m, uint64_t key,
                                                uint64_t offset, uint32_t thr, float scale,
                                                int64_t t);
typedef void (*cydrop_bias_relu_dropout_f64_fn)(const double *z, const double *b, double *a,
                                                int64_t n, int64_t m, uint64_t key,
                                                uint64_t offset, uint32_t thr, double scale,
                                                int64_t t);
typedef void (*cydrop_bias_relu_dropout_backward_f32_fn)(const float *da, const float *a,
                                                         float *dz, float *db, int64_t r0,
                                                         int64_t r1, int64_t m, float scale);
typedef void (*cydrop_bias_relu_dropout_backward_f64_fn)(const double *da, const double *a,
                                                         double *dz, double *db, int64_t r0,
                                                         int64_t r1, int64_t m, double scale);

/* ---- dropout variants (see cydrop_variants_impl.h) */
/* Broadcast mask apply over rows r0 .. r1 - 1 of a C-contiguous array of shape shape[0..nd-1]
 * (nd >= 1; each row shape[nd-1] long): y[idx] = keep[idx . mstride] ? x[idx] * scale : +0.0,
 * mstride[d] is 0 along broadcast axes. y may be x. */
typedef void (*cydrop_broadcast_apply_f32_fn)(const float *x, float *y, const uint8_t *keep,
                                              int nd, const int64_t *shape,
                                              const int64_t *mstride, float scale, int64_t r0,
                                              int64_t r1);
typedef void (*cydrop_broadcast_apply_f64_fn)(const double *x, double *y, const uint8_t *keep,
                                              int nd, const int64_t *shape,
                                              const int64_t *mstride, double scale, int64_t r0,
                                              int64_t r1);
/* Exact-k mask of one row of n units whose first u32 word is h0: unit j gets the 64-bit key
 * (u32word(h0 + j) << 32) | j, and the k units with the smallest keys are dropped:
 * keep[j] = key_j > (k-th smallest key), all kept if k == 0. scratch holds n uint64. */
typedef void (*cydrop_exact_k_row_fn)(int64_t n, int64_t k, uint64_t key, uint64_t h0,
                                      uint8_t *keep, uint64_t *scratch);
/* Chunk t of AlphaDropout: y[i] = draw(offset + i) < thr ? a * x[i] + b : c (two roundings). */
typedef void (*cydrop_alpha_dropout_f32_fn)(const float *x, float *y, int64_t n, uint64_t key,
                                            uint64_t offset, uint32_t thr, float a, float b,
                                            float c, int64_t t);
typedef void (*cydrop_alpha_dropout_f64_fn)(const double *x, double *y, int64_t n, uint64_t key,
                                            uint64_t offset, uint32_t thr, double a, double b,
                                            double c, int64_t t);
/* The standard normal of u64 word w (Box-Muller, cosine branch, in double):
 *   u1 = ((w >> 32) + 0.5) / 2^32,  u2 = (w & 0xffffffff) / 2^32,
 *   z  = sqrt(-2 log u1) * cos(2 pi u2)     (2 pi as the double 6.283185307179586) */
typedef double (*cydrop_standard_normal_fn)(uint64_t w);
/* Chunk t of GaussianDropout: eps = 1 + sigma * z(u64 word offset + i) in double, then
 * y[i] = x[i] * (T)eps. y may be x. Positions 4 offset .. 4 (offset + n) - 1 are read. */
typedef void (*cydrop_gaussian_dropout_f32_fn)(const float *x, float *y, int64_t n, uint64_t key,
                                               uint64_t offset, double sigma, int64_t t);
typedef void (*cydrop_gaussian_dropout_f64_fn)(const double *x, double *y, int64_t n,
                                               uint64_t key, uint64_t offset, double sigma,
                                               int64_t t);

/* ---- float16 and bfloat16 (see cydrop_half_impl.h): the data as uint16 bits, the arithmetic
 * in float32: kept y = T(float32(x) * scale) rounded to nearest even, dropped y = +0.0. The
 * fused kernel's bias stays float32 (the trainer's parameters are float32). */
typedef void (*cydrop_forward_h16_fn)(const uint16_t *x, uint16_t *y, int64_t n, uint64_t key,
                                      uint64_t offset, uint32_t thr, float scale, uint8_t *bits,
                                      uint8_t *bytes, int64_t t);
typedef void (*cydrop_backward_h16_fn)(const uint16_t *dy, uint16_t *dx, int64_t n,
                                       const uint8_t *mask, int is_bits, float scale, int64_t t);
typedef void (*cydrop_broadcast_apply_h16_fn)(const uint16_t *x, uint16_t *y,
                                              const uint8_t *keep, int nd, const int64_t *shape,
                                              const int64_t *mstride, float scale, int64_t r0,
                                              int64_t r1);
typedef void (*cydrop_bias_relu_dropout_h16_fn)(const uint16_t *z, const float *b, uint16_t *a,
                                                int64_t n, int64_t m, uint64_t key,
                                                uint64_t offset, uint32_t thr, float scale,
                                                int64_t t);
/* Rows r0 .. r1 - 1 of the fused kernel's backward: dz := where(a > 0, T(float32(da) * scale),
 * +0.0) (dz may be da), db[j] += float32(dz[r, j]) in row order (db float32, m long). */
typedef void (*cydrop_bias_relu_dropout_backward_h16_fn)(const uint16_t *da, const uint16_t *a,
                                                         uint16_t *dz, float *db, int64_t r0,
                                                         int64_t r1, int64_t m, float scale);

/* ---- modern dropout (see cydrop_modern_impl.h; cydrop/testing/reference_modern.py is the twin) */
/* Chunk t of y := res + where(keep, (x + bias[i % m]) * scale, +0.0) (res and bias may be NULL:
 * no add). keep of element i is draw(offset + i) < thr, or, when rowkeep is not NULL,
 * rowkeep[i / rowlen] != 0 (one decision per sample). y may be x or res. */
typedef void (*cydrop_dropout_add_f32_fn)(const float *x, const float *res, const float *bias,
                                          int64_t m, const uint8_t *rowkeep, int64_t rowlen,
                                          float *y, int64_t n, uint64_t key, uint64_t offset,
                                          uint32_t thr, float scale, int64_t t);
typedef void (*cydrop_dropout_add_f64_fn)(const double *x, const double *res,
                                          const double *bias, int64_t m,
                                          const uint8_t *rowkeep, int64_t rowlen, double *y,
                                          int64_t n, uint64_t key, uint64_t offset, uint32_t thr,
                                          double scale, int64_t t);
/* Rows r0 .. r1 - 1 (each L long) of a stable softmax and dropout: p := softmax(z) row-wise
 * (p may be NULL), y := where(draw(offset + r L + j) < thr, p * scale, +0.0). */
typedef void (*cydrop_softmax_dropout_f32_fn)(const float *z, float *y, float *p, int64_t L,
                                              uint64_t key, uint64_t offset, uint32_t thr,
                                              float scale, int64_t r0, int64_t r1);
typedef void (*cydrop_softmax_dropout_f64_fn)(const double *z, double *y, double *p, int64_t L,
                                              uint64_t key, uint64_t offset, uint32_t thr,
                                              double scale, int64_t r0, int64_t r1);
/* Its backward over rows r0 .. r1 - 1 (dz may be dout): gp = where(draw < thr, dout * scale,
 * +0.0) * p in T, s = gp's row sum (the forward's eight lanes, in double), dz = T(gp - p s). */
typedef void (*cydrop_softmax_dropout_backward_f32_fn)(const float *dout, const float *p,
                                                       float *dz, int64_t L, uint64_t key,
                                                       uint64_t offset, uint32_t thr,
                                                       float scale, int64_t r0, int64_t r1);
typedef void (*cydrop_softmax_dropout_backward_f64_fn)(const double *dout, const double *p,
                                                       double *dz, int64_t L, uint64_t key,
                                                       uint64_t offset, uint32_t thr,
                                                       double scale, int64_t r0, int64_t r1);

/* Every kernel, compiled for one ISA. */
typedef struct {
    const char *name;
    cydrop_forward_f32_fn forward_f32;
    cydrop_forward_f64_fn forward_f64;
    cydrop_backward_f32_fn backward_f32;
    cydrop_backward_f64_fn backward_f64;
    cydrop_mask_fn mask;
    cydrop_fill_draws_fn fill_draws;
    cydrop_bias_relu_dropout_f32_fn bias_relu_dropout_f32;
    cydrop_bias_relu_dropout_f64_fn bias_relu_dropout_f64;
    cydrop_bias_relu_dropout_backward_f32_fn bias_relu_dropout_backward_f32;
    cydrop_bias_relu_dropout_backward_f64_fn bias_relu_dropout_backward_f64;
    cydrop_broadcast_apply_f32_fn broadcast_apply_f32;
    cydrop_broadcast_apply_f64_fn broadcast_apply_f64;
    cydrop_exact_k_row_fn exact_k_row;
    cydrop_alpha_dropout_f32_fn alpha_dropout_f32;
    cydrop_alpha_dropout_f64_fn alpha_dropout_f64;
    cydrop_standard_normal_fn standard_normal;
    cydrop_gaussian_dropout_f32_fn gaussian_dropout_f32;
    cydrop_gaussian_dropout_f64_fn gaussian_dropout_f64;
    /* ---- float16 / bfloat16 (cydrop_half_impl.h) */
    cydrop_forward_h16_fn forward_f16;
    cydrop_forward_h16_fn forward_bf16;
    cydrop_backward_h16_fn backward_f16;
    cydrop_backward_h16_fn backward_bf16;
    cydrop_broadcast_apply_h16_fn broadcast_apply_f16;
    cydrop_broadcast_apply_h16_fn broadcast_apply_bf16;
    cydrop_bias_relu_dropout_h16_fn bias_relu_dropout_f16;
    cydrop_bias_relu_dropout_h16_fn bias_relu_dropout_bf16;
    cydrop_bias_relu_dropout_backward_h16_fn bias_relu_dropout_backward_f16;
    cydrop_bias_relu_dropout_backward_h16_fn bias_relu_dropout_backward_bf16;
    /* ---- modern dropout (cydrop_modern_impl.h) */
    cydrop_dropout_add_f32_fn dropout_add_f32;
    cydrop_dropout_add_f64_fn dropout_add_f64;
    cydrop_softmax_dropout_f32_fn softmax_dropout_f32;
    cydrop_softmax_dropout_f64_fn softmax_dropout_f64;
    cydrop_softmax_dropout_backward_f32_fn softmax_dropout_backward_f32;
    cydrop_softmax_dropout_backward_f64_fn softmax_dropout_backward_f64;
} cydrop_kernels;

/* The ISAs this build contains, best last; *count receives their number. */
const cydrop_kernels *const *cydrop_isas(int *count);

/* Whether the running CPU can execute the ISA's kernels (the baseline always can). */
int cydrop_isa_supported(const cydrop_kernels *k);

#endif /* CYDROP_KERNELS_H */
