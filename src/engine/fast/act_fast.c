/* act_fast.c — the logistic 1/(1+e^-x), and the softmax over the classes of
 * many cells at once, in float, in a form the compiler vectorises (one clone
 * per instruction set, FPI_SIMD_CLONES; NEON on arm64). The reference
 * evaluates e^x in double with libm's exp, element by element (as darknet
 * does), which made the YOLO heads cost 10-12 ns a value: 2 ms of
 * yolov3-tiny's 34. No library offers a vector exp that is both portable and
 * callable here (glibc's libmvec needs -ffast-math to be reached and has no
 * float logistic), so it is written out:
 *   e^t = 2^k * e^r,  k = round(t / ln 2),  r = t - k ln 2 in [-ln2/2, ln2/2]
 * with ln 2 split in two so r is exact to float precision, and e^r from its
 * Taylor series to degree 7 (the truncation error is under 8e-9 relative on
 * that interval, well below float's rounding). 2^k is built in the exponent
 * bits. The result is within a few float ulps of the reference (test_fast
 * checks it over the whole range), and the same on every thread count and
 * path, since every fast path uses these functions. The softmax vectorises
 * across cells (a region layer's classes lie a plane apart); NaN inputs give
 * NaN, as in the reference. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/fast/fast.h"

/* e^t for t in [-87, 88] (callers clamp): see the top of the file. */
static inline float fpi_exp_in_range(float t)
{
    /* k = round(t / ln 2) by the 1.5 * 2^23 trick (exact for |k| < 2^22) */
    float kf = t * 1.44269504f + 12582912.f;
    kf -= 12582912.f;
    float r = t - kf * 0.693359375f; /* ln 2 = 0.693359375 - 2.12194440e-4 */
    r = r + kf * 2.12194440e-4f;
    float p = 1.f / 5040.f;
    p = p * r + 1.f / 720.f;
    p = p * r + 1.f / 120.f;
    p = p * r + 1.f / 24.f;
    p = p * r + 1.f / 6.f;
    p = p * r + .5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    int32_t bits = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* c ? a : b by the bits: GCC turns a float ?: into vector blends only where
 * the comparison cannot trap or the target masks (AVX-512); elsewhere, with
 * the default -ftrapping-math, the loop stayed scalar (4-8 ns a value on AVX2). */
static inline float fpi_select(int c, float a, float b)
{
    uint32_t m = -(uint32_t)(c != 0), x, y;
    memcpy(&x, &a, sizeof x);
    memcpy(&y, &b, sizeof y);
    x = (x & m) | (y & ~m);
    memcpy(&a, &x, sizeof a);
    return a;
}

FPI_SIMD_CLONES void fpi_logistic_fast(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        /* e^-v, kept where 2^k is a normal float; beyond it the result is 0
         * or 1 to float precision anyway */
        float t = -v;
        t = fpi_select(t <= 88.f, t, 88.f); /* NaN: 88 (never converted to int) */
        t = fpi_select(t >= -87.f, t, -87.f);
        float y = 1.f / (1.f + fpi_exp_in_range(t));
        x[i] = fpi_select(v != v, v, y); /* NaN stays NaN, as in the reference */
    }
}

/* Cells per block: the running maxima and sums stay in registers or L1. */
enum { FPI_SOFTMAX_BLOCK = 64 };

FPI_SIMD_CLONES void fpi_softmax_cells_fast(const float *in, int n, size_t stride, size_t cells, float *out)
{
    float mx[FPI_SOFTMAX_BLOCK], sum[FPI_SOFTMAX_BLOCK];
    for (size_t c0 = 0; c0 < cells; c0 += FPI_SOFTMAX_BLOCK) {
        size_t b = cells - c0 < FPI_SOFTMAX_BLOCK ? cells - c0 : FPI_SOFTMAX_BLOCK;
        const float *ib = in + c0;
        float *ob = out + c0;
        for (size_t i = 0; i < b; i++) mx[i] = -INFINITY, sum[i] = 0;
        for (int e = 0; e < n; e++)
            for (size_t i = 0; i < b; i++) mx[i] = ib[e * stride + i] > mx[i] ? ib[e * stride + i] : mx[i];
        /* the reference's order: e^(x - max) for each entry, summed in turn */
        for (int e = 0; e < n; e++)
            for (size_t i = 0; i < b; i++) {
                float d = ib[e * stride + i] - mx[i];
                float v = fpi_exp_in_range(d >= -87.f ? d : -87.f);
                v = d != d ? d : v; /* NaN in, NaN out (and in the sum) */
                ob[e * stride + i] = v;
                sum[i] += v;
            }
        for (int e = 0; e < n; e++)
            for (size_t i = 0; i < b; i++) ob[e * stride + i] /= sum[i];
    }
}
