/*
 * avx2.h — small AVX2 helpers the hand-written kernels share (conv_first.c,
 * conv1x1.c). x86-64 only; callers compile their kernels for avx2,fma with
 * target attributes. Internal: not API.
 */
#ifndef FP_ENGINE_FAST_AVX2_H
#define FP_ENGINE_FAST_AVX2_H

#if defined(__x86_64__)

#include <immintrin.h>

#include "fogpipe/net.h"

/* act(v + b) for linear, leaky and relu, value for value as the reference
 * computes it (v > 0 ? v : .1f * v, or 0). */
__attribute__((target("avx2,fma"))) static inline __m256 fpi_avx2_bias_act(__m256 v, __m256 b, fp_activation act)
{
    v = _mm256_add_ps(v, b);
    if (act == FP_ACT_LINEAR) return v;
    __m256 pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ);
    __m256 neg = act == FP_ACT_LEAKY ? _mm256_mul_ps(v, _mm256_set1_ps(.1f)) : _mm256_setzero_ps();
    return _mm256_blendv_ps(neg, v, pos);
}

#endif
#endif /* FP_ENGINE_FAST_AVX2_H */
