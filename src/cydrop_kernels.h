/*
 * cydrop_kernels.h -- C entry points of cydrop's dropout kernels.
 *
 * Must match the declarations in src/cydrop/_kernels.pxd.
 *
 * Each kernel processes one chunk t of CYDROP_CHUNK local elements, so a caller loops (or runs
 * an OpenMP prange) over t in [0, ceil(n / CYDROP_CHUNK)). Arguments are trusted: the Python
 * layer has validated shapes, dtypes, contiguity and ranges before the GIL was released.
 *   x, y      : input and output (y == x for in-place; no other overlap)
 *   n         : number of elements of the whole call
 *   key       : cydrop_seed_key(seed)
 *   offset    : global index of local element 0 (the mask of element i is that of offset + i)
 *   thr       : cydrop_threshold(keep probability)
 *   scale     : 65536 / thr, the inverse of the realised keep probability
 *   bits      : packed mask, bit i % 8 of byte i / 8 (NumPy bitorder='little'), or NULL
 *   bytes     : mask as 0/1 uint8, or NULL
 */
#ifndef CYDROP_KERNELS_H
#define CYDROP_KERNELS_H

#include <stdint.h>

#include "cydrop_rng.h"

#define CYDROP_CHUNK 4096   /* local elements per task; a multiple of 8 and of CYDROP_PER_STEP */

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

typedef void (*cydrop_brd_f32_fn)(const float *z, const float *b, float *a, int64_t n, int64_t m,
                                  uint64_t key, uint64_t offset, uint32_t thr, float scale,
                                  int64_t t);
typedef void (*cydrop_brd_f64_fn)(const double *z, const double *b, double *a, int64_t n,
                                  int64_t m, uint64_t key, uint64_t offset, uint32_t thr,
                                  double scale, int64_t t);
typedef void (*cydrop_brd_bwd_f32_fn)(const float *da, const float *a, float *dz, float *db,
                                      int64_t r0, int64_t r1, int64_t m, float scale);
typedef void (*cydrop_scale_f32_fn)(const float *x, float *y, int64_t n, float s, int64_t t);
typedef void (*cydrop_brd_bwd_f64_fn)(const double *da, const double *a, double *dz, double *db,
                                      int64_t r0, int64_t r1, int64_t m, double scale);

/* One ISA variant of every kernel. */
typedef struct {
    const char *name;
    cydrop_forward_f32_fn forward_f32;
    cydrop_forward_f64_fn forward_f64;
    cydrop_backward_f32_fn backward_f32;
    cydrop_backward_f64_fn backward_f64;
    cydrop_mask_fn mask;
    /* fused bias + ReLU + dropout for the trainer (see cydrop_kernels_impl.h) */
    cydrop_brd_f32_fn bias_relu_dropout_f32;
    cydrop_brd_f64_fn bias_relu_dropout_f64;
    cydrop_brd_bwd_f32_fn bias_relu_dropout_backward_f32;
    cydrop_brd_bwd_f64_fn bias_relu_dropout_backward_f64;
    /* y := x * s, the benchmarks' memory floor (no generator) */
    cydrop_scale_f32_fn stream_scale_f32;
} cydrop_kernels;

/* Variants this build contains, best last; *count receives their number. */
const cydrop_kernels *const *cydrop_variants(int *count);

/* Whether the running CPU can execute the variant (the baseline always can). */
int cydrop_variant_supported(const cydrop_kernels *k);

#endif /* CYDROP_KERNELS_H */
