/* half_dump.c -- the float16/bfloat16 kernels without Python, for tests/core/test_half.py.
 *
 * Usage: half_dump ISA. For every 16-bit pattern, three times over (196,608 elements from
 * global offset 123, seed 12345, threshold 39322), writes to stdout: the float16 forward, its
 * packed mask, the float16 backward from that mask, then the same for bfloat16 (all
 * little-endian uint16 / bytes), so a build without intrinsics or without vectors can be
 * compared with the Python API's result bit for bit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cydrop_kernels.h"

#define N (3 * 65536)

int main(int argc, char **argv)
{
    int count = 0;
    const cydrop_kernels *const *isas = cydrop_isas(&count), *k = NULL;
    for (int i = 0; i < count; i++)
        if (argc > 1 && strcmp(isas[i]->name, argv[1]) == 0)
            k = isas[i];
    if (k == NULL || !cydrop_isa_supported(k))
        return 2;
    static uint16_t x[N], y[N], dx[N];
    static uint8_t bits[(N + 7) / 8];
    for (int64_t i = 0; i < N; i++)
        x[i] = (uint16_t)(i & 0xffff);
    const uint64_t key = cydrop_seed_key(12345);
    const uint32_t thr = 39322;
    const float scale = (float)cydrop_scale(thr);
    const int64_t tasks = (N + CYDROP_CHUNK - 1) / CYDROP_CHUNK;
    for (int bf = 0; bf < 2; bf++) {
        for (int64_t t = 0; t < tasks; t++)
            (bf ? k->forward_bf16 : k->forward_f16)(x, y, N, key, 123, thr, scale, bits, NULL, t);
        for (int64_t t = 0; t < tasks; t++)
            (bf ? k->backward_bf16 : k->backward_f16)(x, dx, N, bits, 1, scale, t);
        fwrite(y, sizeof y, 1, stdout);
        fwrite(bits, sizeof bits, 1, stdout);
        fwrite(dx, sizeof dx, 1, stdout);
    }
    return 0;
}
