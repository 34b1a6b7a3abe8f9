/*
 * cydrop_floor.h -- the benchmarks' memory floor: a STREAM-style scale, not a cydrop op.
 *
 * Must match the declaration in cydrop/_floor.pyx. y := x * s over chunk t (x and y do not
 * overlap), with the forward's memory traffic and chunking (CYDROP_CHUNK) but no generator: the
 * floor cydrop's thread scaling is judged against. It is kept out of the kernel table of
 * cydrop_kernels.h, which holds production kernels only. Memory-bound, so it is built for the
 * baseline ISA alone.
 */
#ifndef CYDROP_FLOOR_H
#define CYDROP_FLOOR_H

#include <stdint.h>

#include "cydrop_kernels.h"

static inline void cydrop_stream_scale_f32(const float *restrict x, float *restrict y, int64_t n,
                                           float s, int64_t t)
{
    const int64_t lo = t * CYDROP_CHUNK;
    const int64_t hi = n - lo < CYDROP_CHUNK ? n : lo + CYDROP_CHUNK;
    for (int64_t i = lo; i < hi; i++)
        y[i] = x[i] * s;
}

#endif /* CYDROP_FLOOR_H */
