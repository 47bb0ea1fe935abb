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
 * Per tile: 4 output pixels (a 2x2 pool window, or 4 columns of a row) x 3
 * blocks of 8 filters = 12 accumulators where the input's lanes are one
 * float apart (fpi_c1_tile4x3, in assembly; per input channel 3 weight
 * vectors and 4 broadcasts feed 12 FMAs), else and for the last 2 blocks x 2
 * = 8 (fpi_c1_tile4: 2 weight vectors and 4 broadcasts feed 8 FMAs); both
 * give the same bits. Sums start from zero and run over the input
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

/* The sums of 4 pixels (p[0..4): lanes one float apart) for three blocks of
 * 8 filters (weights w, then w + ws and w + 2 ws floats on: [input
 * channel][8]) over nbi blocks of 8 input channels (sb floats apart), the
 * input channels in order as fpi_c1_tile4 takes them (the same bits), in
 * assembly: 12 accumulators (ymm0-11: pixel k, block j in 3k + j), three
 * weight vectors and a broadcast fill the 16 registers, and GCC's
 * allocation of the same in C left the kernel at 85% of the FMA peak where
 * this runs at 93% (12 accumulators hide the FMA's latency where fpi_c1_tile4's
 * 8 leave the pipes idle at times, and a broadcast feeds 3 FMAs, not 2).
 * With pool, the 4 pixels' 2x2 max in the reference's order (m = -FLT_MAX,
 * then MAXPS(v, m) = v > m ? v : m, pixels in order) goes to out[0..3), else
 * the sums to out[3k + j]. */
#define FPI_C1A_PX(k, a, b, c, ii)                                                                                     \
    "vbroadcastss 4*" FPI_ASM_S(ii) "(%[p" FPI_ASM_S(k) "]), %%ymm15\n\t"                                              \
    "vfmadd231ps %%ymm12, %%ymm15, %%ymm" FPI_ASM_S(a) "\n\t"                                                         \
    "vfmadd231ps %%ymm13, %%ymm15, %%ymm" FPI_ASM_S(b) "\n\t"                                                         \
    "vfmadd231ps %%ymm14, %%ymm15, %%ymm" FPI_ASM_S(c) "\n\t"
#define FPI_C1A_STEP(ii)                                                                                               \
    "vmovups 32*" FPI_ASM_S(ii) "(%[w]), %%ymm12\n\t"                                                                  \
    "vmovups 32*" FPI_ASM_S(ii) "(%[w],%[ws],1), %%ymm13\n\t"                                                          \
    "vmovups 32*" FPI_ASM_S(ii) "(%[w],%[ws],2), %%ymm14\n\t"                                                          \
    FPI_C1A_PX(0, 0, 1, 2, ii) FPI_C1A_PX(1, 3, 4, 5, ii) FPI_C1A_PX(2, 6, 7, 8, ii) FPI_C1A_PX(3, 9, 10, 11, ii)
#define FPI_C1A_LOOP                                                                                                   \
    FPI_ASM_ZERO12                                                                                                     \
    "1:\n\t" FPI_C1A_STEP(0) FPI_C1A_STEP(1) FPI_C1A_STEP(2) FPI_C1A_STEP(3) FPI_C1A_STEP(4) FPI_C1A_STEP(5)          \
        FPI_C1A_STEP(6) FPI_C1A_STEP(7)                                                                                \
    "add %[sb], %[p0]\n\tadd %[sb], %[p1]\n\tadd %[sb], %[p2]\n\tadd %[sb], %[p3]\n\t"                                 \
    "add $256, %[w]\n\t"                                                                                               \
    "dec %[n]\n\t"                                                                                                     \
    "jnz 1b\n\t"
#define FPI_C1A_MAX(j, k) "vmaxps %%ymm" FPI_ASM_S(j) ", %%ymm" FPI_ASM_S(k) ", %%ymm" FPI_ASM_S(j) "\n\t"
#define FPI_C1A_POOL(j, k1, k2, k3)                                                                                    \
    "vmaxps %%ymm12, %%ymm" FPI_ASM_S(j) ", %%ymm" FPI_ASM_S(j) "\n\t" FPI_C1A_MAX(j, k1) FPI_C1A_MAX(j, k2)             \
        FPI_C1A_MAX(j, k3) "vmovups %%ymm" FPI_ASM_S(j) ", 32*" FPI_ASM_S(j) "(%[out])\n\t"
#define FPI_C1A_OUT(k) "vmovups %%ymm" FPI_ASM_S(k) ", 32*" FPI_ASM_S(k) "(%[out])\n\t"
#define FPI_C1A_CLOBBERS                                                                                               \
    "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",   \
        "xmm12", "xmm13", "xmm14", "xmm15"

FPI_AVX2 static inline void fpi_c1_tile4x3(const float *const *p, const float *w, size_t ws, int nbi, size_t sb,
                                           int pool, float *out)
{
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
    long n = nbi;
    static const float lowest = -FLT_MAX;
    if (pool)
        __asm__ volatile(FPI_C1A_LOOP "vbroadcastss %[lo], %%ymm12\n\t" FPI_C1A_POOL(0, 3, 6, 9)
                             FPI_C1A_POOL(1, 4, 7, 10) FPI_C1A_POOL(2, 5, 8, 11)
                         : [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [p3] "+r"(p3), [w] "+r"(w), [n] "+r"(n)
                         : [ws] "r"(ws * sizeof(float)), [sb] "r"(sb * sizeof(float)), [out] "r"(out), [lo] "m"(lowest)
                         : FPI_C1A_CLOBBERS);
    else
        __asm__ volatile(FPI_C1A_LOOP FPI_C1A_OUT(0) FPI_C1A_OUT(1) FPI_C1A_OUT(2) FPI_C1A_OUT(3) FPI_C1A_OUT(4)
                             FPI_C1A_OUT(5) FPI_C1A_OUT(6) FPI_C1A_OUT(7) FPI_C1A_OUT(8) FPI_C1A_OUT(9)
                                 FPI_C1A_OUT(10) FPI_C1A_OUT(11)
                         : [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [p3] "+r"(p3), [w] "+r"(w), [n] "+r"(n)
                         : [ws] "r"(ws * sizeof(float)), [sb] "r"(sb * sizeof(float)), [out] "r"(out)
                         : FPI_C1A_CLOBBERS);
}
#undef FPI_C1A_CLOBBERS
#undef FPI_C1A_OUT
#undef FPI_C1A_POOL
#undef FPI_C1A_MAX
#undef FPI_C1A_LOOP
#undef FPI_C1A_STEP
#undef FPI_C1A_PX

/* Output row(s) of filter blocks ob .. ob + 2 (their weights w, ws floats
 * apart) from input rows r0 (and r1 below it, pooled), as fpi_c1_row does
 * for two blocks, with fpi_c1_tile4x3 (input lanes one float apart); the
 * last columns (fewer than 4, unpooled) by fpi_c1_tile1. */
FPI_AVX2 static void fpi_c1_row3(const fpi_vmap *in, int nbi, const float *w, size_t ws, const float *bias,
                                 fp_activation act, const float *r0, const float *r1, int wd, float *o,
                                 const fpi_vmap *out, int pool)
{
    size_t sx = in->sx, sb = in->sb;
    __m256 b[3] = {_mm256_loadu_ps(bias), _mm256_loadu_ps(bias + 8), _mm256_loadu_ps(bias + 16)};
    float acc[12 * 8] __attribute__((aligned(32)));
    if (pool) {
        for (int x = 0; x < wd; x += 2, o += out->sx) {
            int x1 = x + 1 < wd ? x + 1 : x; /* a last window of odd sides: its column twice */
            const float *p[4] = {r0 + x * sx, r0 + x1 * sx, r1 + x * sx, r1 + x1 * sx};
            fpi_c1_tile4x3(p, w, ws, nbi, sb, 1, acc);
            for (int j = 0; j < 3; j++)
                fpi_avx2_store_lanes(o + (size_t)j * out->sb, out->sl,
                                     fpi_avx2_bias_act(_mm256_load_ps(acc + 8 * j), b[j], act));
        }
        return;
    }
    int x = 0;
    for (; x + 4 <= wd; x += 4) {
        const float *p[4] = {r0 + x * sx, r0 + (x + 1) * sx, r0 + (x + 2) * sx, r0 + (x + 3) * sx};
        fpi_c1_tile4x3(p, w, ws, nbi, sb, 0, acc);
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 3; j++)
                fpi_avx2_store_lanes(o + (size_t)(x + k) * out->sx + (size_t)j * out->sb, out->sl,
                                     fpi_avx2_bias_act(_mm256_load_ps(acc + 8 * (3 * k + j)), b[j], act));
    }
    for (; x < wd; x++) {
        __m256 a[2], c[2];
        fpi_c1_tile1(r0 + x * sx, w, w + ws, nbi, sb, 1, a);
        fpi_c1_tile1(r0 + x * sx, w + 2 * ws, w + 2 * ws, nbi, sb, 1, c);
        __m256 v[3] = {a[0], a[1], c[0]};
        for (int j = 0; j < 3; j++)
            fpi_avx2_store_lanes(o + (size_t)x * out->sx + (size_t)j * out->sb, out->sl,
                                 fpi_avx2_bias_act(v[j], b[j], act));
    }
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
        for (int ob = 0, nb; ob < nbo; ob += nb) {
            /* blocks of filters three at a time (fpi_c1_row3) where the
             * input's lanes are one float apart, leaving 2 (or 1) for the
             * last group rather than 1: 4 -> 2 + 2, 8 -> 3 + 3 + 2 */
            nb = nbo - ob >= 5 || nbo - ob == 3 ? 3 : 2;
            if (nb == 3 && in->sl == 1 && nbi > 0) { /* (its loop runs at least once) */
                fpi_c1_row3(in, nbi, w + (size_t)ob * nbi * 64, (size_t)nbi * 64, bias + ob * 8, act, r0, r1, wd,
                            o + (size_t)ob * out->sb, out, pool);
                continue;
            }
            nb = 2;
            int two = ob + 1 < nbo;
            const float *w0 = w + (size_t)ob * nbi * 64, *w1 = two ? w0 + (size_t)nbi * 64 : w0;
            __m256 b0 = _mm256_loadu_ps(bias + ob * 8), b1 = two ? _mm256_loadu_ps(bias + ob * 8 + 8) : b0;
            float *ob_o = o + (size_t)ob * out->sb;
            if (in->sl == 1) fpi_c1_row(in, nbi, w0, w1, b0, b1, two, act, r0, r1, wd, ob_o, out, pool, 1);
            else fpi_c1_row(in, nbi, w0, w1, b0, b1, two, act, r0, r1, wd, ob_o, out, pool, in->sl);
        }
    }
}


/* ---- the same with AVX-512: 16-channel vectors (nChw16c) --------------
 *
 * Where oneDNN works in nChw16c (AVX-512) the same layers go to this
 * kernel: a tile of 4 pixels x up to 4 blocks of 16 filters (16
 * accumulators of the 32 registers; per input channel up to 4 weight
 * vectors and 4 broadcasts feed 16 FMAs), weights in oneDNN's OIhw16i16o
 * ([block of filters][input channel][16 filters]), the sums over the
 * input channels in order from zero, the pool and then the bias and
 * activation as above (a pooled run gives the same bits as an unpooled one
 * pooled after). */

/* The sums of pixels p[0..4) for NB blocks of 16 filters (weights w, ws
 * floats apart) over nbi blocks of 16 input channels (sb floats apart,
 * lanes sl apart), into a[k][j]. */
__attribute__((target("avx512f"), always_inline)) static inline void fpi_c16_tile(const float *const *p, const float *w,
                                                                                size_t ws, int NB, int nbi, size_t sb,
                                                                                size_t sl, __m512 a[4][4])
{
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < NB; j++) a[k][j] = _mm512_setzero_ps();
    for (int ib = 0; ib < nbi; ib++, w += 256) {
        const float *q[4] = {p[0] + (size_t)ib * sb, p[1] + (size_t)ib * sb, p[2] + (size_t)ib * sb,
                             p[3] + (size_t)ib * sb};
        for (int ii = 0; ii < 16; ii++) {
            __m512 wv[4];
            for (int j = 0; j < NB; j++) wv[j] = _mm512_loadu_ps(w + (size_t)j * ws + ii * 16);
            for (int k = 0; k < 4; k++) {
                __m512 x = _mm512_set1_ps(q[k][ii * sl]);
                for (int j = 0; j < NB; j++) a[k][j] = _mm512_fmadd_ps(x, wv[j], a[k][j]);
            }
        }
    }
}

/* Output row(s) of NB filter blocks (weights w, ws apart; bias b) from
 * input rows r0 (and r1 below it, pooled), as fpi_c1_row. */
__attribute__((target("avx512f"), always_inline)) static inline void
fpi_c16_row(const fpi_vmap *in, int nbi, const float *w, size_t ws, const float *bias, int NB, fp_activation act,
            const float *r0, const float *r1, int wd, float *o, const fpi_vmap *out, int pool)
{
    size_t sx = in->sx, sb = in->sb, sl = in->sl;
    __m512 b[4], a[4][4];
    for (int j = 0; j < NB; j++) b[j] = _mm512_loadu_ps(bias + 16 * j);
    if (pool) {
        for (int x = 0; x < wd; x += 2, o += out->sx) {
            int x1 = x + 1 < wd ? x + 1 : x; /* a last window of odd sides: its column twice */
            const float *p[4] = {r0 + x * sx, r0 + x1 * sx, r1 + x * sx, r1 + x1 * sx};
            fpi_c16_tile(p, w, ws, NB, nbi, sb, sl, a);
            /* the reference pool's order: m = -FLT_MAX, then v > m ? v : m */
            for (int j = 0; j < NB; j++) {
                __m512 m = _mm512_set1_ps(-FLT_MAX);
                for (int k = 0; k < 4; k++) m = _mm512_max_ps(a[k][j], m);
                fpi_avx512_store_lanes(o + (size_t)j * out->sb, out->sl, fpi_avx512_bias_act(m, b[j], act));
            }
        }
        return;
    }
    for (int x = 0; x < wd; x += 4) {
        int n = wd - x < 4 ? wd - x : 4; /* the last pixels: the tile's others repeat the last one */
        const float *p[4];
        for (int k = 0; k < 4; k++) p[k] = r0 + (size_t)(x + (k < n ? k : n - 1)) * sx;
        fpi_c16_tile(p, w, ws, NB, nbi, sb, sl, a);
        for (int k = 0; k < n; k++)
            for (int j = 0; j < NB; j++)
                fpi_avx512_store_lanes(o + (size_t)(x + k) * out->sx + (size_t)j * out->sb, out->sl,
                              fpi_avx512_bias_act(a[k][j], b[j], act));
    }
}

__attribute__((target("avx512f"))) void fpi_conv1x1_avx512(const fpi_vmap *in, int nbi, const float *w,
                                                           const float *bias, int nbo, fp_activation act, int y0,
                                                           int y1, int wd, const fpi_vmap *out, int pool)
{
    size_t ws = (size_t)nbi * 256;
    for (int y = y0; y < y1; y += 1 + pool) {
        const float *r0 = in->p + (size_t)y * in->sy, *r1 = y + 1 < y1 ? r0 + in->sy : r0;
        float *o = out->p + (size_t)(y - y0) / (1 + pool) * out->sy;
        for (int ob = 0, nb; ob < nbo; ob += nb) {
            /* blocks of filters four at a time; a last 5 or 6 as 3 + 2 or 3 + 3 */
            nb = nbo - ob;
            nb = nb == 5 || nb == 6 ? 3 : nb > 4 ? 4 : nb;
            const float *wo = w + (size_t)ob * ws;
            float *oo = o + (size_t)ob * out->sb;
            const float *bo = bias + ob * 16;
            switch (nb) {
            case 4: fpi_c16_row(in, nbi, wo, ws, bo, 4, act, r0, r1, wd, oo, out, pool); break;
            case 3: fpi_c16_row(in, nbi, wo, ws, bo, 3, act, r0, r1, wd, oo, out, pool); break;
            case 2: fpi_c16_row(in, nbi, wo, ws, bo, 2, act, r0, r1, wd, oo, out, pool); break;
            default: fpi_c16_row(in, nbi, wo, ws, bo, 1, act, r0, r1, wd, oo, out, pool); break;
            }
        }
    }
}

#endif
