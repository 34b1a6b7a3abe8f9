/*
 * kernels_dump.c -- runs the C kernels without Python and writes their outputs to stdout.
 *
 * Usage: kernels_dump ISA. Exit status 77 when this CPU cannot run ISA.
 * tests/packaging/test_build.py compiles src/cydrop_kernels.c with this driver in several configurations
 * (default, -DCYDROP_NO_INTRINSICS, -DCYDROP_NO_VEC) and holds every output, bit for bit, to
 * the others and to cydrop.dropout. For each offset in OFFSETS and threshold in THRESHOLDS it
 * writes, in order: the float32 forward (y, packed bits, 0/1 bytes), the float64 forward, and
 * the mask kernel's packed bits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cydrop_kernels.h"

#define N (3 * 4096 + 77)
#define SEED 12345u

static const uint64_t OFFSETS[] = {0, 5 * 4096, 123};
static const uint32_t THRESHOLDS[] = {0, 1, 100, 32768, 52429, 65535, 65536};

static void put(const void *p, size_t size)
{
    if (fwrite(p, 1, size, stdout) != size)
        exit(2);
}

int main(int argc, char **argv)
{
    static float x32[N], y32[N];
    static double x64[N], y64[N];
    static uint8_t bits[(N + 7) / 8], bytes[N], mbits[(N + 7) / 8];
    const cydrop_kernels *k = NULL;
    const int64_t nchunks = (N + CYDROP_CHUNK - 1) / CYDROP_CHUNK;
    int count = 0;
    const cydrop_kernels *const *table = cydrop_isas(&count);

    if (argc != 2)
        return 2;
    for (int i = 0; i < count; i++)
        if (strcmp(table[i]->name, argv[1]) == 0)
            k = table[i];
    if (k == NULL)
        return 2;
    if (!cydrop_isa_supported(k))
        return 77;
    for (int i = 0; i < N; i++) {
        x32[i] = (float)((i % 1000) - 500) * 0.25f;
        x64[i] = (double)x32[i] * 1.5;
    }
    x32[5] = x64[5] = NAN;
    x32[6] = x64[6] = -INFINITY;

    for (size_t o = 0; o < sizeof OFFSETS / sizeof OFFSETS[0]; o++)
        for (size_t h = 0; h < sizeof THRESHOLDS / sizeof THRESHOLDS[0]; h++) {
            const uint64_t key = cydrop_seed_key(SEED), off = OFFSETS[o];
            const uint32_t thr = THRESHOLDS[h];
            const double scale = cydrop_scale(thr);
            memset(bits, 0, sizeof bits);
            for (int64_t t = 0; t < nchunks; t++) {
                k->forward_f32(x32, y32, N, key, off, thr, (float)scale, bits, bytes, t);
                k->forward_f64(x64, y64, N, key, off, thr, scale, NULL, NULL, t);
                k->mask(N, key, off, thr, mbits, NULL, t);
            }
            put(y32, sizeof y32);
            put(bits, sizeof bits);
            put(bytes, sizeof bytes);
            put(y64, sizeof y64);
            put(mbits, sizeof mbits);
        }
    return 0;
}
