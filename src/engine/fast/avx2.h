/*
 * avx2.h — small AVX2 (and AVX-512) helpers the hand-written kernels share
 * (conv_first.c, conv1x1.c, conv3x3.c, wino.c). x86-64 only; callers compile their kernels
 * for avx2,fma with target attributes. Internal: not API.
 */
#ifndef FP_ENGINE_FAST_AVX2_H
#define FP_ENGINE_FAST_AVX2_H

#if defined(__x86_64__)

#include <immintrin.h>
#include <stddef.h>

#include "fogpipe/net.h"

/* For the kernels' inline assembly: a token as a string, and ymm0-11 set
 * to zero (their accumulators). */
#define FPI_ASM_S(x) #x
#define FPI_ASM_ZERO12                                                                                                 \
    "vxorps %%xmm0, %%xmm0, %%xmm0\n\tvxorps %%xmm1, %%xmm1, %%xmm1\n\tvxorps %%xmm2, %%xmm2, %%xmm2\n\t"              \
    "vxorps %%xmm3, %%xmm3, %%xmm3\n\tvxorps %%xmm4, %%xmm4, %%xmm4\n\tvxorps %%xmm5, %%xmm5, %%xmm5\n\t"              \
    "vxorps %%xmm6, %%xmm6, %%xmm6\n\tvxorps %%xmm7, %%xmm7, %%xmm7\n\tvxorps %%xmm8, %%xmm8, %%xmm8\n\t"              \
    "vxorps %%xmm9, %%xmm9, %%xmm9\n\tvxorps %%xmm10, %%xmm10, %%xmm10\n\tvxorps %%xmm11, %%xmm11, %%xmm11\n\t"

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

/* Stores vector v as lanes [0, 8) of a vmap at p, sl floats apart (1: one
 * store). */
__attribute__((target("avx2,fma"))) static inline void fpi_avx2_store_lanes(float *p, size_t sl, __m256 v)
{
    if (sl == 1) {
        _mm256_storeu_ps(p, v);
        return;
    }
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int j = 0; j < 8; j++) p[j * sl] = t[j];
}

/* Stores v's first n lanes at p (all 8 when n >= 8). */
__attribute__((target("avx2,fma"))) static inline void fpi_avx2_store_part(float *p, __m256 v, int n)
{
    if (n >= 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int j = 0; j < n; j++) p[j] = t[j];
}

/* Loads lanes [0, 8) of a vmap at p, sl floats apart. */
__attribute__((target("avx2,fma"))) static inline __m256 fpi_avx2_load_lanes(const float *p, size_t sl)
{
    if (sl == 1) return _mm256_loadu_ps(p);
    return _mm256_setr_ps(p[0], p[sl], p[2 * sl], p[3 * sl], p[4 * sl], p[5 * sl], p[6 * sl], p[7 * sl]);
}

/* With AVX-512 (16 lanes), for the kernels' nChw16c versions: act(v + b)
 * as fpi_avx2_bias_act computes it, and v to lanes [0, 16) of a vmap at p,
 * sl floats apart. */
__attribute__((target("avx512f"))) static inline __m512 fpi_avx512_bias_act(__m512 v, __m512 b, fp_activation act)
{
    v = _mm512_add_ps(v, b);
    if (act == FP_ACT_LINEAR) return v;
    __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
    __m512 neg = act == FP_ACT_LEAKY ? _mm512_mul_ps(v, _mm512_set1_ps(.1f)) : _mm512_setzero_ps();
    return _mm512_mask_blend_ps(pos, neg, v);
}

__attribute__((target("avx512f"))) static inline void fpi_avx512_store_lanes(float *p, size_t sl, __m512 v)
{
    if (sl == 1) {
        _mm512_storeu_ps(p, v);
        return;
    }
    float t[16];
    _mm512_storeu_ps(t, v);
    for (int j = 0; j < 16; j++) p[j * sl] = t[j];
}

#endif
#endif /* FP_ENGINE_FAST_AVX2_H */
