/*
 * cydrop_kernels.c -- builds every kernel once per ISA and says which ISAs the CPU can run.
 *
 * The baseline is plain C for any target (SSE2 on x86-64). On x86-64 with GCC or clang, AVX2 and
 * AVX-512 builds of the same source are compiled beside it with `#pragma GCC target` (both with
 * F16C, which every AVX2 CPU has: the float16 conversions of cydrop_half_impl.h), and the
 * Cython layer picks the best supported one once at import (CYDROP_ISA pins one).
 *
 * Floating-point contraction must stay off (setup.py passes -std=c99 -ffp-contract=off; clang
 * also honours the STDC pragma below): an AVX-512 target has FMA, and a fused multiply-add
 * would round differently from the baseline and from the NumPy reference twins.
 */
#include <string.h>

#include "cydrop_kernels.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(CYDROP_NO_INTRINSICS)
/* x86 intrinsics, each behind an #if on CYDROP_X86_INTRIN and the ISA's own target macro in
   cydrop_kernels_impl.h: SSE2 (part of baseline x86-64) in the baseline, AVX2 in the AVX2
   build. Other targets and widths use the portable generic-vector code beside them, which
   -DCYDROP_NO_INTRINSICS selects on x86 too (tests/packaging/test_build.py compares the two). */
#define CYDROP_X86_INTRIN 1
#include <immintrin.h>
#endif

#define CYDROP_STR_(a) #a
#define CYDROP_STR(a) CYDROP_STR_(a)

#if CYDROP_HAVE_VEC
typedef uint64_t cydrop_v16 __attribute__((vector_size(16)));
typedef uint64_t cydrop_v32 __attribute__((vector_size(32)));
typedef uint64_t cydrop_v64 __attribute__((vector_size(64)));
#endif

#define CYDROP_ISA baseline
#define cydrop_vnat cydrop_v16
#define CYDROP_NV 4
#include "cydrop_kernels_impl.h"
#undef CYDROP_ISA
#undef cydrop_vnat
#undef CYDROP_NV

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define CYDROP_X86_ISAS 1

#pragma GCC push_options
#pragma GCC target("avx2,f16c")
#define CYDROP_ISA avx2
#define cydrop_vnat cydrop_v32
#define CYDROP_NV 2
#include "cydrop_kernels_impl.h"
#undef CYDROP_ISA
#undef cydrop_vnat
#undef CYDROP_NV
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,f16c")
#define CYDROP_ISA avx512
#define cydrop_vnat cydrop_v64
#define CYDROP_NV 1
#include "cydrop_kernels_impl.h"
#undef CYDROP_ISA
#undef cydrop_vnat
#undef CYDROP_NV
#pragma GCC pop_options
#endif

static const cydrop_kernels *const cydrop_all[] = {
    &cydrop_table_baseline,
#ifdef CYDROP_X86_ISAS
    &cydrop_table_avx2,
    &cydrop_table_avx512,
#endif
};

const cydrop_kernels *const *cydrop_isas(int *count)
{
    *count = (int)(sizeof cydrop_all / sizeof cydrop_all[0]);
    return cydrop_all;
}

int cydrop_isa_supported(const cydrop_kernels *k)
{
#ifdef CYDROP_X86_ISAS
    __builtin_cpu_init();
    if (k == &cydrop_table_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    if (k == &cydrop_table_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("f16c");
#endif
    return k != NULL;
}
