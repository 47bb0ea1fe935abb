/* conv3x3.c — 3x3 stride-1 convolutions (padding 1) over oneDNN's nChw8c
 * maps, with bias and linear / leaky / relu; x86-64 with AVX2 and FMA.
 *
 * Hand-written for the deep 3x3 layers on small maps (13x13 x 512 -> 1024,
 * 7x7 x 1024 -> 1024: the YOLO networks' heaviest) on CPUs without AVX-512,
 * where oneDNN 2.6's AVX2 kernel is called once per output row, block of 8
 * input channels and group of 32 filters, and ONNX Runtime's runs them 2-5%
 * faster. Measured in the networks (one thread, each layer's minimum over 6
 * alternating runs): 1-10% faster than oneDNN's on the 13x13 and 7x7 layers,
 * even on 26x26 x 128 -> 256, 2-7% slower on the wide shallow ones (208x208
 * x 16 -> 32), which stay with oneDNN (dnnl.c decides). On maps of 16
 * tiles of 2x2 pixels and more (7x7 and up) those layers now run
 * Winograd's F(2x2, 3x3) instead (wino.c, 1.2-1.5x faster); this kernel
 * keeps the smaller ones.
 *
 * A tile is 3 output pixels x 4 blocks of 8 filters = 12 accumulators; per
 * input channel 3 broadcasts and 4 weight vectors feed 12 FMAs (16 vector
 * registers in all). The 3 pixels are any 3 consecutive ones of the map, a
 * row's end and the next row's start alike, so a row's length leaves no
 * short tiles: each pixel reads its taps through its own pointer. A tile
 * whose 27 taps all lie in the map runs unrolled, every address a register
 * and a constant; one with taps outside (the map's border) reads a zero
 * vector for those (stride 0 across the input blocks). Tiles go in blocks
 * of FPI_C3_TILES, over which the input channels go in chunks of
 * FPI_C3_CHUNK blocks (36 KiB of weights for the 4 filter blocks): a tile's
 * sums go through the output between chunks, the bias and the activation
 * come after the last. */
#include <stddef.h>

#include "engine/fast/fast.h"

#if defined(__x86_64__)

#include "engine/fast/avx2.h"

#define FPI_AVX2 __attribute__((target("avx2,fma")))

/* Blocks of 8 input channels per pass over a block of tiles, and tiles in
 * a block (measured on 13x13 x 512 -> 1024, 26x26 x 128 -> 256 and 7x7 x
 * 1024 -> 1024 against 1, 2 and 8 blocks and 16, 32 and 128 tiles). */
enum { FPI_C3_CHUNK = 4, FPI_C3_TILES = 64 };

static const float fpi_c3_zero[8] __attribute__((aligned(32)));

/* A pixel of a tile: where its taps start in the map (floats from its
 * start; tap (ky, kx) is ky * cols + kx pixels on) and which of its 9 taps
 * lie in the map (bit ky * 3 + kx). */
typedef struct {
    ptrdiff_t at;
    unsigned in_map;
} fpi_c3_px;

static inline fpi_c3_px fpi_c3_px_of(int rows_in, int cols_in, int pad_t, int y, int x)
{
    unsigned cols = (x > 0) | 2u | (x + 1 < cols_in) << 2, m = 0;
    for (int ky = 0; ky < 3; ky++) {
        int iy = y - pad_t + ky;
        if (iy >= 0 && iy < rows_in) m |= cols << (3 * ky);
    }
    return (fpi_c3_px){((ptrdiff_t)(y - pad_t) * cols_in + (x - 1)) * 8, m};
}

/* A weight vector held in a register: without the barrier GCC folds the
 * load into each of its 3 FMAs (3 loads where 1 does) and spills. */
#define FPI_C3_W(v, at)                                                                                \
    v = _mm256_loadu_ps(at);                                                                           \
    __asm__("" : "+x"(v))

/* The 12 accumulators: pixel j, filter block b in ajb. */
#define FPI_C3_ACC __m256 a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23
/* Sums start from zero, or from the output (an earlier chunk's). */
#define FPI_C3_LOAD1(a, o) a##0 = _mm256_loadu_ps(o), a##1 = _mm256_loadu_ps(o + ob), \
                           a##2 = _mm256_loadu_ps(o + 2 * ob), a##3 = _mm256_loadu_ps(o + 3 * ob)
#define FPI_C3_BEGIN()                                                                                 \
    do {                                                                                               \
        if (first) {                                                                                   \
            a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = a20 = a21 = a22 = a23 = _mm256_setzero_ps(); \
        } else {                                                                                       \
            FPI_C3_LOAD1(a0, o0);                                                                      \
            FPI_C3_LOAD1(a1, o1);                                                                      \
            FPI_C3_LOAD1(a2, o2);                                                                      \
        }                                                                                              \
    } while (0)
/* Input channel ii of a tap: pixels' values at q0..q2, the 4 filter
 * blocks' weights at w0..w3 + t. */
#define FPI_C3_STEP(q0, q1, q2, t, ii)                                                                 \
    do {                                                                                               \
        __m256 b0 = _mm256_broadcast_ss((q0) + (ii)), b1 = _mm256_broadcast_ss((q1) + (ii)),           \
               b2 = _mm256_broadcast_ss((q2) + (ii)), v;                                               \
        FPI_C3_W(v, w0 + (t) + (ii) * 8);                                                              \
        a00 = _mm256_fmadd_ps(b0, v, a00), a10 = _mm256_fmadd_ps(b1, v, a10), a20 = _mm256_fmadd_ps(b2, v, a20); \
        FPI_C3_W(v, w1 + (t) + (ii) * 8);                                                              \
        a01 = _mm256_fmadd_ps(b0, v, a01), a11 = _mm256_fmadd_ps(b1, v, a11), a21 = _mm256_fmadd_ps(b2, v, a21); \
        FPI_C3_W(v, w2 + (t) + (ii) * 8);                                                              \
        a02 = _mm256_fmadd_ps(b0, v, a02), a12 = _mm256_fmadd_ps(b1, v, a12), a22 = _mm256_fmadd_ps(b2, v, a22); \
        FPI_C3_W(v, w3 + (t) + (ii) * 8);                                                              \
        a03 = _mm256_fmadd_ps(b0, v, a03), a13 = _mm256_fmadd_ps(b1, v, a13), a23 = _mm256_fmadd_ps(b2, v, a23); \
    } while (0)
/* The sums into the output; after the last chunk act(sum + bias). */
#define FPI_C3_STORE1(a, o) _mm256_storeu_ps(o, a##0), _mm256_storeu_ps(o + ob, a##1), \
                            _mm256_storeu_ps(o + 2 * ob, a##2), _mm256_storeu_ps(o + 3 * ob, a##3)
#define FPI_C3_ACT1(a) a##0 = fpi_avx2_bias_act(a##0, b[0], act), a##1 = fpi_avx2_bias_act(a##1, b[1], act), \
                       a##2 = fpi_avx2_bias_act(a##2, b[2], act), a##3 = fpi_avx2_bias_act(a##3, b[3], act)
#define FPI_C3_END()                                                                                   \
    do {                                                                                               \
        if (last) {                                                                                    \
            __m256 b[4];                                                                               \
            for (int j = 0; j < 4; j++) b[j] = _mm256_loadu_ps(bias + 8 * j);                          \
            FPI_C3_ACT1(a0);                                                                           \
            FPI_C3_ACT1(a1);                                                                           \
            FPI_C3_ACT1(a2);                                                                           \
        }                                                                                              \
        FPI_C3_STORE1(a0, o0);                                                                         \
        FPI_C3_STORE1(a1, o1);                                                                         \
        FPI_C3_STORE1(a2, o2);                                                                         \
    } while (0)

/* Tile: pixels x0..x2 (a tap outside the map reads zeros), filter blocks
 * at w (block stride wob), input blocks [k0, k1); sums start from the
 * output at o0..o2 (filter block stride ob) or from zero when first, and end
 * there, as act(sum + bias) when last. */
FPI_AVX2 static __attribute__((noinline)) void
fpi_c3_tile(const float *in, size_t plane, int cols_in, fpi_c3_px x0, fpi_c3_px x1, fpi_c3_px x2, const float *w,
            size_t wob, int k0, int k1, float *o0, float *o1, float *o2, size_t ob, int first, int last,
            const float *bias, fp_activation act)
{
    FPI_C3_ACC;
    FPI_C3_BEGIN();
    for (int k = 0; k < 9; k++) {
        ptrdiff_t off = (ptrdiff_t)((k / 3) * cols_in + k % 3) * 8 + (ptrdiff_t)k0 * (ptrdiff_t)plane;
        int v0 = x0.in_map >> k & 1, v1 = x1.in_map >> k & 1, v2 = x2.in_map >> k & 1;
        size_t s0 = v0 ? plane : 0, s1 = v1 ? plane : 0, s2 = v2 ? plane : 0;
        const float *p0 = v0 ? in + x0.at + off : fpi_c3_zero, *p1 = v1 ? in + x1.at + off : fpi_c3_zero,
                    *p2 = v2 ? in + x2.at + off : fpi_c3_zero;
        const float *w0 = w + ((size_t)k0 * 9 + k) * 64, *w1 = w0 + wob, *w2 = w1 + wob, *w3 = w2 + wob;
        for (int ib = k0; ib < k1; ib++, p0 += s0, p1 += s1, p2 += s2, w0 += 576, w1 += 576, w2 += 576, w3 += 576) {
            FPI_C3_STEP(p0, p1, p2, 0, 0); FPI_C3_STEP(p0, p1, p2, 0, 1);
            FPI_C3_STEP(p0, p1, p2, 0, 2); FPI_C3_STEP(p0, p1, p2, 0, 3);
            FPI_C3_STEP(p0, p1, p2, 0, 4); FPI_C3_STEP(p0, p1, p2, 0, 5);
            FPI_C3_STEP(p0, p1, p2, 0, 6); FPI_C3_STEP(p0, p1, p2, 0, 7);
        }
    }
    FPI_C3_END();
}

/* The same for a tile whose 27 taps all lie in the map (most of them):
 * pixel j's taps start at pj, rows rs floats apart, so every address is a
 * register and a constant; the taps and the 8 input channels of a block
 * unrolled. */
FPI_AVX2 static __attribute__((noinline)) void
fpi_c3_tile_in(const float *p0, const float *p1, const float *p2, size_t rs, size_t plane, const float *w,
               size_t wob, int nk, float *o0, float *o1, float *o2, size_t ob, int first, int last,
               const float *bias, fp_activation act)
{
    FPI_C3_ACC;
    FPI_C3_BEGIN();
    for (int ib = 0; ib < nk; ib++, p0 += plane, p1 += plane, p2 += plane, w += 576) {
        const float *w0 = w, *w1 = w + wob, *w2 = w1 + wob, *w3 = w2 + wob;
#pragma GCC unroll 3
        for (int ky = 0; ky < 3; ky++) {
            const float *r0 = p0 + ky * rs, *r1 = p1 + ky * rs, *r2 = p2 + ky * rs;
#pragma GCC unroll 3
            for (int kx = 0; kx < 3; kx++) {
                int t = (ky * 3 + kx) * 64;
                FPI_C3_STEP(r0 + kx * 8, r1 + kx * 8, r2 + kx * 8, t, 0);
                FPI_C3_STEP(r0 + kx * 8, r1 + kx * 8, r2 + kx * 8, t, 1);
                FPI_C3_STEP(r0 + kx * 8, r1 + kx * 8, r2 + kx * 8, t, 2);
                FPI_C3_STEP(r0 + kx * 8, r1 + kx * 8, r2 + kx * 8, t, 3);
                FPI_C3_STEP(r0 + kx * 8, r1 + kx * 8, r2 + kx * 8, t, 4);
                FPI_C3_STEP(r0 + kx * 8, r1 + kx * 8, r2 + kx * 8, t, 5);
                FPI_C3_STEP(r0 + kx * 8, r1 + kx * 8, r2 + kx * 8, t, 6);
                FPI_C3_STEP(r0 + kx * 8, r1 + kx * 8, r2 + kx * 8, t, 7);
            }
        }
    }
    FPI_C3_END();
}

FPI_AVX2 void fpi_conv3x3_avx2(const float *in, int nbi, int rows_in, int cols_in, int pad_t, const float *w,
                               const float *bias, int nbo, fp_activation act, int rows, int ow, float *out)
{
    size_t plane = (size_t)rows_in * cols_in * 8, ob = (size_t)rows * ow * 8, wob = (size_t)nbi * 9 * 64;
    size_t rs = (size_t)cols_in * 8;
    int np = rows * ow;
    fpi_c3_px px[3 * FPI_C3_TILES];
    for (int g = 0; g + 4 <= nbo; g += 4) {
        const float *wg = w + (size_t)g * wob;
        float *og = out + (size_t)g * ob;
        for (int q0 = 0; q0 < np; q0 += 3 * FPI_C3_TILES) {
            /* a block of tiles; a last tile of 1 or 2 pixels takes its last
             * one again: the same sums, stored twice in the same place */
            int n = np - q0 < 3 * FPI_C3_TILES ? np - q0 : 3 * FPI_C3_TILES, nt = (n + 2) / 3;
            for (int j = 0; j < 3 * nt; j++) {
                int q = q0 + (j < n ? j : n - 1);
                px[j] = fpi_c3_px_of(rows_in, cols_in, pad_t, q / ow, q % ow);
            }
            for (int k0 = 0; k0 < nbi; k0 += FPI_C3_CHUNK) {
                int k1 = k0 + FPI_C3_CHUNK < nbi ? k0 + FPI_C3_CHUNK : nbi, first = k0 == 0, last = k1 == nbi;
                const float *ink = in + (size_t)k0 * plane, *wk = wg + (size_t)k0 * 576;
                for (int t = 0; t < nt; t++) {
                    const fpi_c3_px *x = px + 3 * t;
                    int j1 = 3 * t + 1 < n ? 3 * t + 1 : n - 1, j2 = 3 * t + 2 < n ? 3 * t + 2 : n - 1;
                    float *o0 = og + (size_t)(q0 + 3 * t) * 8, *o1 = og + (size_t)(q0 + j1) * 8,
                          *o2 = og + (size_t)(q0 + j2) * 8;
                    if ((x[0].in_map & x[1].in_map & x[2].in_map) == 0x1ff)
                        fpi_c3_tile_in(ink + x[0].at, ink + x[1].at, ink + x[2].at, rs, plane, wk, wob, k1 - k0, o0,
                                       o1, o2, ob, first, last, bias + g * 8, act);
                    else
                        fpi_c3_tile(in, plane, cols_in, x[0], x[1], x[2], wg, wob, k0, k1, o0, o1, o2, ob, first,
                                    last, bias + g * 8, act);
                }
            }
        }
    }
}

#endif
