/* conv1x1.c — 1x1 stride-1 convolutions over maps of 8-channel vectors
 * (oneDNN's nChw8c, its layout on AVX2, or any fpi_vmap), with bias,
 * linear / leaky / relu, and the 2x2/2 max pool after them fused in
 * registers; x86-64 with AVX2 and FMA.
 *
 * Hand-written for the wide, shallow 1x1 layers of depthwise-separable
 * networks (the tiny face detector's 208x208x16 -> 32, 104x104x32 -> 64),
 * which oneDNN 2.6's AVX2 kernel does slowly: it is called once per band of
 * rows, so a band handed on in nChw8c (whose rows are not one dense region
 * across channel blocks) must first be copied out, and its max pool runs as a
 * second pass over the band's output. Here the input is read where it lies,
 * through its strides, and a 2x2 window's four sums are pooled before
 * anything is stored.
 *
 * Per tile: 4 output pixels (a 2x2 pool window, or 4 columns of a row) x 2
 * blocks of 8 filters = 8 accumulators; per input channel 2 weight vectors
 * and 4 broadcasts feed 8 FMAs. Sums start from zero and run over the input
 * channels in order; the bias and the activation come last, after the pool:
 * x -> act(x + b) never decreases, so pooling first gives the same bits as
 * pooling the activated outputs, and a pooled and an unpooled run of a layer
 * agree bit for bit (the max in the reference pool's order). A window cut
 * by an odd side (darknet's 2x2/2 pool keeps it, over the cells inside)
 * takes its one column or row twice, which leaves its max as it is. */
#include <float.h>

#include "engine/fast/fast.h"

#if defined(__x86_64__)

#include "engine/fast/avx2.h"

#define FPI_AVX2 __attribute__((target("avx2,fma")))

/* The sums of 4 pixels (p0..p3) for two blocks of 8 filters (weights wa,
 * wb: [input channel][8]) over nbi blocks of 8 input channels (block stride
 * sb, lanes sl apart), into a[k][j]; the input channels in order. */
FPI_AVX2 static inline __attribute__((always_inline)) void
fpi_c1_tile4(const float *p0, const float *p1, const float *p2, const float *p3, const float *wa, const float *wb,
             int nbi, size_t sb, size_t sl, __m256 a[4][2])
{
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int ib = 0; ib < nbi; ib++, p0 += sb, p1 += sb, p2 += sb, p3 += sb, wa += 64, wb += 64) {
#define FPI_C1_PX(p, ii, a0, a1)                                                                       \
    x = _mm256_broadcast_ss((p) + (ii) * sl);                                                         \
    a0 = _mm256_fmadd_ps(x, va, a0);                                                                  \
    a1 = _mm256_fmadd_ps(x, vb, a1)
#define FPI_C1_STEP(ii)                                                                               \
    do {                                                                                              \
        __m256 va = _mm256_loadu_ps(wa + (ii) * 8), vb = _mm256_loadu_ps(wb + (ii) * 8), x;           \
        FPI_C1_PX(p0, ii, a00, a01);                                                                  \
        FPI_C1_PX(p1, ii, a10, a11);                                                                  \
        FPI_C1_PX(p2, ii, a20, a21);                                                                  \
        FPI_C1_PX(p3, ii, a30, a31);                                                                  \
    } while (0)
        FPI_C1_STEP(0); FPI_C1_STEP(1); FPI_C1_STEP(2); FPI_C1_STEP(3);
        FPI_C1_STEP(4); FPI_C1_STEP(5); FPI_C1_STEP(6); FPI_C1_STEP(7);
#undef FPI_C1_STEP
#undef FPI_C1_PX
    }
    a[0][0] = a00, a[0][1] = a01, a[1][0] = a10, a[1][1] = a11;
    a[2][0] = a20, a[2][1] = a21, a[3][0] = a30, a[3][1] = a31;
}

/* The same for one pixel. */
FPI_AVX2 static inline void fpi_c1_tile1(const float *p0, const float *wa, const float *wb, int nbi, size_t sb,
                                         size_t sl, __m256 a[2])
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (int ib = 0; ib < nbi; ib++, p0 += sb, wa += 64, wb += 64)
        for (int ii = 0; ii < 8; ii++) {
            __m256 x = _mm256_broadcast_ss(p0 + ii * sl);
            a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(wa + ii * 8), a0);
            a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(wb + ii * 8), a1);
        }
    a[0] = a0, a[1] = a1;
}

/* Output row(s) of filter blocks ob, ob + 1 (two: the second exists) from
 * input rows r0 (and r1 below it, pooled): pooled, one row of 2x2 windows. */
FPI_AVX2 static inline __attribute__((always_inline)) void
fpi_c1_row(const fpi_vmap *in, int nbi, const float *w0, const float *w1, __m256 b0, __m256 b1, int two,
           fp_activation act, const float *r0, const float *r1, int wd, float *o, const fpi_vmap *out, int pool,
           size_t sl)
{
    size_t sx = in->sx, sb = in->sb;
    __m256 acc[4][2];
    if (pool) {
        for (int x = 0; x < wd; x += 2, o += out->sx) {
            int x1 = x + 1 < wd ? x + 1 : x; /* a last window of odd sides: its column twice */
            fpi_c1_tile4(r0 + x * sx, r0 + x1 * sx, r1 + x * sx, r1 + x1 * sx, w0, w1, nbi, sb, sl, acc);
            /* the reference pool's order: m = -FLT_MAX, then v > m ? v : m */
            for (int j = 0; j < 1 + two; j++) {
                __m256 m = _mm256_set1_ps(-FLT_MAX);
                for (int k = 0; k < 4; k++) m = _mm256_max_ps(acc[k][j], m);
                fpi_avx2_store_lanes(o + (size_t)j * out->sb, out->sl, fpi_avx2_bias_act(m, j ? b1 : b0, act));
            }
        }
        return;
    }
    int x = 0;
    for (; x + 4 <= wd; x += 4) {
        fpi_c1_tile4(r0 + x * sx, r0 + (x + 1) * sx, r0 + (x + 2) * sx, r0 + (x + 3) * sx, w0, w1, nbi, sb, sl, acc);
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 1 + two; j++)
                fpi_avx2_store_lanes(o + (size_t)(x + k) * out->sx + (size_t)j * out->sb, out->sl,
                             fpi_avx2_bias_act(acc[k][j], j ? b1 : b0, act));
    }
    for (; x < wd; x++) {
        fpi_c1_tile1(r0 + x * sx, w0, w1, nbi, sb, sl, acc[0]);
        for (int j = 0; j < 1 + two; j++)
            fpi_avx2_store_lanes(o + (size_t)x * out->sx + (size_t)j * out->sb, out->sl,
                         fpi_avx2_bias_act(acc[0][j], j ? b1 : b0, act));
    }
}

FPI_AVX2 void fpi_conv1x1_avx2(const fpi_vmap *in, int nbi, const float *w, const float *bias, int nbo,
                               fp_activation act, int y0, int y1, int wd, const fpi_vmap *out, int pool)
{
    /* row by row (a pooled pair of rows: 2 x wd x 8 nbi floats, in L1 for
     * the face detector's layers), every block of filters over it */
    for (int y = y0; y < y1; y += 1 + pool) {
        const float *r0 = in->p + (size_t)y * in->sy, *r1 = y + 1 < y1 ? r0 + in->sy : r0;
        float *o = out->p + (size_t)(y - y0) / (1 + pool) * out->sy;
        for (int ob = 0; ob < nbo; ob += 2) {
            int two = ob + 1 < nbo;
            const float *w0 = w + (size_t)ob * nbi * 64, *w1 = two ? w0 + (size_t)nbi * 64 : w0;
            __m256 b0 = _mm256_loadu_ps(bias + ob * 8), b1 = two ? _mm256_loadu_ps(bias + ob * 8 + 8) : b0;
            float *ob_o = o + (size_t)ob * out->sb;
            if (in->sl == 1) fpi_c1_row(in, nbi, w0, w1, b0, b1, two, act, r0, r1, wd, ob_o, out, pool, 1);
            else fpi_c1_row(in, nbi, w0, w1, b0, b1, two, act, r0, r1, wd, ob_o, out, pool, in->sl);
        }
    }
}

#endif
