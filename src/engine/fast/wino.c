/* wino.c — 3x3 stride-1 convolutions (padding 1) over nChw8c maps by
 * Winograd's minimal filtering F(2x2, 3x3), with bias and linear / leaky /
 * relu; x86-64 with AVX2 and FMA.
 *
 * Each 2x2 block of output pixels (a tile) comes from the 4x4 input pixels
 * around it: Y = A' [(G g G') . (B' d B)] A, 16 multiplications per input
 * channel and filter where the direct sum takes 36 (Lavin and Gray, "Fast
 * Algorithms for Convolutional Neural Networks", 2016). With the 16 points
 * of a tile's transform apart, a layer is 16 matrix products
 * M[xi] = V[xi] U[xi] (tiles x input channels times input channels x
 * filters), done here as the direct kernel does its sums (conv3x3.c): 3
 * tiles x 4 blocks of 8 filters in 12 accumulators. The transforms only add
 * and halve, so the results differ from the direct sums by rounding alone
 * (the tests bound it).
 *
 * Why by hand: oneDNN 2.6 has Winograd kernels for AVX-512 only, and
 * neither OpenBLAS nor ONNX Runtime transform convolutions so.
 *
 * The input transform V is computed once per layer (fpi_wino_input); each
 * piece of the layer's filters then transforms its weights (oneDNN's
 * OIhw8i8o, as the direct kernel reads them) chunk by chunk of input
 * channels into a scratch it owns, so the transformed weights, 16/9 the
 * size of the plain ones, are never held whole. */
#include <float.h>
#include <stddef.h>

#include "engine/fast/fast.h"

/* Input channels per chunk of transformed weights: 16 x FPI_WG_CHUNK x 32
 * floats (256 KiB) per group of 32 filters, read 17 times per point on a
 * 13x13 map. */
enum { FPI_WG_CHUNK = 128 };

size_t fpi_wino_tiles(int rows, int ow) { return (size_t)((rows + 1) / 2) * ((ow + 1) / 2); }

/* The 16 points of a transform lie a matrix apart plus a cache line, so
 * that a tile's 16 values fall in 16 sets of the L1 cache (a matrix of
 * 16 KiB would put them all in one 8-way set: measured, the weights'
 * transform took 4x as long). */
static size_t fpi_wg_str(size_t floats) { return floats + 16; }

size_t fpi_wino_v_floats(int nbi, int nt) { return 16 * fpi_wg_str((size_t)nt * nbi * 8); }

size_t fpi_wino_scratch_floats(int nbi, int nt)
{
    int cc = nbi * 8 < FPI_WG_CHUNK ? nbi * 8 : FPI_WG_CHUNK;
    return 16 * fpi_wg_str((size_t)cc * 32) + 16 * fpi_wg_str((size_t)nt * 32);
}

size_t fpi_wino_u_floats(int nbi, int nbo) { return (size_t)(nbo / 4) * 16 * fpi_wg_str((size_t)nbi * 8 * 32); }

/* Tiles per block of a piece cut by rows: the block's transform (16 x
 * tiles x channels) about 96 KiB, whole groups of 3, 12 to 96. */
static int fpi_wg_block(int nbi)
{
    int tb = 1536 / (nbi * 8) / 3 * 3;
    return tb < 12 ? 12 : tb > 96 ? 96 : tb;
}

size_t fpi_wino_rows_scratch_floats(int nbi)
{
    size_t tb = (size_t)fpi_wg_block(nbi);
    return 16 * fpi_wg_str(tb * nbi * 8) + 16 * fpi_wg_str(tb * 32);
}

#if defined(__x86_64__)

#include "engine/fast/avx2.h"

#define FPI_AVX2 __attribute__((target("avx2,fma")))

/* Row r of B' d (t: its 4 columns) through B into the points 4r .. 4r + 3
 * at o, pt floats apart: t0 - t2, t1 + t2, t2 - t1, t1 - t3. */
#define FPI_WG_VROW(r, t)                                                                              \
    _mm256_storeu_ps(o + (4 * r) * pt, _mm256_sub_ps(t[0], t[2]));                                     \
    _mm256_storeu_ps(o + (4 * r + 1) * pt, _mm256_add_ps(t[1], t[2]));                                 \
    _mm256_storeu_ps(o + (4 * r + 2) * pt, _mm256_sub_ps(t[2], t[1]));                                 \
    _mm256_storeu_ps(o + (4 * r + 3) * pt, _mm256_sub_ps(t[1], t[3]))

/* One row (or column) of 3 through G: r0, (r0 + r1 + r2) / 2, (r0 - r1 + r2) / 2, r2. */
#define FPI_WG_G(a, b, c, o0, o1, o2, o3)                                                              \
    do {                                                                                               \
        __m256 e_ = _mm256_add_ps(a, c);                                                               \
        o0 = a, o1 = _mm256_mul_ps(h, _mm256_add_ps(e_, b)), o2 = _mm256_mul_ps(h, _mm256_sub_ps(e_, b)), o3 = c; \
    } while (0)
#define FPI_WG_L(k) _mm256_loadu_ps(w + (k) * 64)

/* G g G' of the 8 filters of block at w (OIhw8i8o, input channel i of its
 * 9 taps 64 floats apart) into u[xi * us]. Written out: arrays of vectors
 * indexed in loops end up on the stack. */
FPI_AVX2 static inline void fpi_wg_weights1(const float *w, float *u, size_t us)
{
    const __m256 h = _mm256_set1_ps(.5f);
    __m256 r00, r01, r02, r10, r11, r12, r20, r21, r22, r30, r31, r32;
    FPI_WG_G(FPI_WG_L(0), FPI_WG_L(3), FPI_WG_L(6), r00, r10, r20, r30);
    FPI_WG_G(FPI_WG_L(1), FPI_WG_L(4), FPI_WG_L(7), r01, r11, r21, r31);
    FPI_WG_G(FPI_WG_L(2), FPI_WG_L(5), FPI_WG_L(8), r02, r12, r22, r32);
    __m256 o0, o1, o2, o3;
#define FPI_WG_ROW(i, a, b, c)                                                                         \
    FPI_WG_G(a, b, c, o0, o1, o2, o3);                                                                 \
    _mm256_storeu_ps(u + (4 * i) * us, o0), _mm256_storeu_ps(u + (4 * i + 1) * us, o1);                \
    _mm256_storeu_ps(u + (4 * i + 2) * us, o2), _mm256_storeu_ps(u + (4 * i + 3) * us, o3)
    FPI_WG_ROW(0, r00, r01, r02);
    FPI_WG_ROW(1, r10, r11, r12);
    FPI_WG_ROW(2, r20, r21, r22);
    FPI_WG_ROW(3, r30, r31, r32);
#undef FPI_WG_ROW
}

#define FPI_WG_W(v, at)                                                                                \
    v = _mm256_loadu_ps(at);                                                                           \
    __asm__("" : "+x"(v))
#define FPI_WG_STEP(ii)                                                                                \
    do {                                                                                               \
        __m256 b0 = _mm256_broadcast_ss(v0 + (ii)), b1 = _mm256_broadcast_ss(v1 + (ii)),               \
               b2 = _mm256_broadcast_ss(v2 + (ii)), x;                                                 \
        FPI_WG_W(x, u + (ii) * 32);                                                                    \
        a00 = _mm256_fmadd_ps(b0, x, a00), a10 = _mm256_fmadd_ps(b1, x, a10), a20 = _mm256_fmadd_ps(b2, x, a20); \
        FPI_WG_W(x, u + (ii) * 32 + 8);                                                                \
        a01 = _mm256_fmadd_ps(b0, x, a01), a11 = _mm256_fmadd_ps(b1, x, a11), a21 = _mm256_fmadd_ps(b2, x, a21); \
        FPI_WG_W(x, u + (ii) * 32 + 16);                                                               \
        a02 = _mm256_fmadd_ps(b0, x, a02), a12 = _mm256_fmadd_ps(b1, x, a12), a22 = _mm256_fmadd_ps(b2, x, a22); \
        FPI_WG_W(x, u + (ii) * 32 + 24);                                                               \
        a03 = _mm256_fmadd_ps(b0, x, a03), a13 = _mm256_fmadd_ps(b1, x, a13), a23 = _mm256_fmadd_ps(b2, x, a23); \
    } while (0)
#define FPI_WG_LOAD1(a, m) a##0 = _mm256_loadu_ps(m), a##1 = _mm256_loadu_ps(m + 8), \
                           a##2 = _mm256_loadu_ps(m + 16), a##3 = _mm256_loadu_ps(m + 24)
#define FPI_WG_STORE1(a, m) _mm256_storeu_ps(m, a##0), _mm256_storeu_ps(m + 8, a##1), \
                            _mm256_storeu_ps(m + 16, a##2), _mm256_storeu_ps(m + 24, a##3)

/* Tiles at v0..v2 (cn input channels, a multiple of 8) times u ([channel]
 * [32 filters]) into the sums at m0..m2 (32 floats each), from zero when
 * first. */
FPI_AVX2 static __attribute__((noinline)) void fpi_wg_tile(const float *v0, const float *v1, const float *v2,
                                                           const float *u, int cn, float *m0, float *m1, float *m2,
                                                           int first)
{
    __m256 a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23;
    if (first) {
        a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = a20 = a21 = a22 = a23 = _mm256_setzero_ps();
    } else {
        FPI_WG_LOAD1(a0, m0);
        FPI_WG_LOAD1(a1, m1);
        FPI_WG_LOAD1(a2, m2);
    }
    for (int c = 0; c < cn; c += 8, v0 += 8, v1 += 8, v2 += 8, u += 256) {
        FPI_WG_STEP(0); FPI_WG_STEP(1); FPI_WG_STEP(2); FPI_WG_STEP(3);
        FPI_WG_STEP(4); FPI_WG_STEP(5); FPI_WG_STEP(6); FPI_WG_STEP(7);
    }
    FPI_WG_STORE1(a0, m0);
    FPI_WG_STORE1(a1, m1);
    FPI_WG_STORE1(a2, m2);
}

/* A' m A for tile sums m (point xi at m + xi * ms): the tile's 2x2 output
 * pixels before bias and activation, y[row][column]. */
FPI_AVX2 static inline void fpi_wg_out(const float *m, size_t ms, __m256 y[2][2])
{
    __m256 s[2][4];
    for (int j = 0; j < 4; j++) {
        __m256 m0 = _mm256_loadu_ps(m + (size_t)j * ms), m1 = _mm256_loadu_ps(m + (size_t)(4 + j) * ms),
               m2 = _mm256_loadu_ps(m + (size_t)(8 + j) * ms), m3 = _mm256_loadu_ps(m + (size_t)(12 + j) * ms);
        __m256 e = _mm256_add_ps(m1, m2);
        s[0][j] = _mm256_add_ps(m0, e);
        s[1][j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
    }
    for (int r = 0; r < 2; r++) {
        y[r][0] = _mm256_add_ps(s[r][0], _mm256_add_ps(s[r][1], s[r][2]));
        y[r][1] = _mm256_sub_ps(_mm256_sub_ps(s[r][1], s[r][2]), s[r][3]);
    }
}

/* The same with bias and act into the 2x2 output pixels at o (row stride
 * rs; the second row / column only when there). */
FPI_AVX2 static inline void fpi_wg_out1(const float *m, size_t ms, __m256 b, fp_activation act, float *o, size_t rs,
                                        int two_rows, int two_cols)
{
    __m256 y[2][2];
    fpi_wg_out(m, ms, y);
    for (int r = 0; r < 1 + two_rows; r++)
        for (int x = 0; x < 1 + two_cols; x++) _mm256_storeu_ps(o + r * rs + x * 8, fpi_avx2_bias_act(y[r][x], b, act));
}

/* Filters [8 g, 8 g + 32) x input channels [c0, c0 + cn) of weights w
 * (OIhw8i8o, nbi input blocks) transformed into u[xi][channel - c0][32]
 * (xi stride us), each line of u written whole while in cache. */
FPI_AVX2 static void fpi_wg_weights(const float *w, int nbi, int g, int c0, int cn, float *u, size_t us)
{
    size_t wob = (size_t)nbi * 576;
    for (int ci = 0; ci < cn; ci++)
        for (int j = 0; j < 4; j++) {
            int ch = c0 + ci;
            fpi_wg_weights1(w + (size_t)(g + j) * wob + (size_t)(ch / 8) * 576 + ch % 8 * 8, u + (size_t)ci * 32 + j * 8,
                            us);
        }
}

/* Where the weights to come lie while products run: pf_len bytes from
 * each of 4 filter blocks (wob floats apart) at pf, `step` bytes more of
 * each per group of tiles. */
typedef struct {
    const char *pf;
    size_t wob, len, at, step;
} fpi_wg_prefetch;

/* The 16 products of tiles [0, n) (v: point xi at v + xi * vs, a tile's
 * channels c apart, cn of them from v) with u (point xi at u + xi * us)
 * into m (point xi at m + xi * ms), from zero when first; with pf, the
 * next weights prefetched along. */
FPI_AVX2 static void fpi_wg_products(const float *v, size_t vs, int c, const float *u, size_t us, int cn, int n,
                                     float *m, size_t ms, int first, fpi_wg_prefetch *pf)
{
    for (int xi = 0; xi < 16; xi++) {
        const float *vx = v + xi * vs, *ux = u + xi * us;
        float *mx = m + xi * ms;
        for (int t = 0; t < n; t += 3) {
            /* a last group of 1 or 2 tiles takes its last one again */
            int t1 = t + 1 < n ? t + 1 : n - 1, t2 = t + 2 < n ? t + 2 : n - 1;
            fpi_wg_tile(vx + (size_t)t * c, vx + (size_t)t1 * c, vx + (size_t)t2 * c, ux, cn, mx + (size_t)t * 32,
                        mx + (size_t)t1 * 32, mx + (size_t)t2 * 32, first);
            if (!pf) continue;
            for (size_t e = pf->at + pf->step; pf->at < e && pf->at < pf->len; pf->at += 64)
                for (int j = 0; j < 4; j++) _mm_prefetch(pf->pf + (size_t)j * pf->wob * 4 + pf->at, _MM_HINT_T1);
        }
    }
}

FPI_AVX2 void fpi_wino_conv_avx2(const float *v, int nbi, int rows, int ow, int q0, int nt, const float *w,
                                 const float *bias, int nbo, fp_activation act, float *out, float *scratch)
{
    int tw = (ow + 1) / 2, c = nbi * 8;
    int cc = c < FPI_WG_CHUNK ? c : FPI_WG_CHUNK;
    size_t pt = fpi_wg_str((size_t)nt * c), ms = fpi_wg_str((size_t)nt * 32), ob = (size_t)rows * ow * 8, wob = (size_t)nbi * 576;
    float *u = scratch, *m = scratch + 16 * fpi_wg_str((size_t)cc * 32);
    /* the next chunk's weights are prefetched while this one's products
     * run: read from memory in a phase of their own, they took a quarter of
     * the time of 7x7 x 1024 -> 1024 */
    int calls = 16 * ((nt + 2) / 3); /* tile groups per chunk */
    for (int g = 0; g + 4 <= nbo; g += 4) {
        for (int c0 = 0; c0 < c; c0 += cc) {
            int cn = c - c0 < cc ? c - c0 : cc;
            size_t us = fpi_wg_str((size_t)cn * 32);
            fpi_wg_weights(w, nbi, g, c0, cn, u, us); /* this chunk's */
            int ng = c0 + cc < c ? g : g + 4, nc0 = c0 + cc < c ? c0 + cc : 0;
            fpi_wg_prefetch pf = {(const char *)(w + (size_t)ng * wob + (size_t)(nc0 / 8) * 576), wob,
                                  ng + 4 <= nbo ? (size_t)((c - nc0 < cc ? c - nc0 : cc) / 8) * 576 * 4 : 0, 0, 0};
            pf.step = (pf.len / 64 + calls - 1) / calls * 64;
            fpi_wg_products(v + c0, pt, c, u, us, cn, nt, m, ms, c0 == 0, &pf);
        }
        /* the group's 4 filter blocks, out of the transform */
        for (int j = 0; j < 4; j++) {
            __m256 b = _mm256_loadu_ps(bias + (g + j) * 8);
            float *oj = out + (size_t)(g + j) * ob;
            for (int q = 0; q < nt; q++) {
                int ty = (q0 + q) / tw, tx = (q0 + q) % tw;
                fpi_wg_out1(m + (size_t)q * 32 + j * 8, ms, b, act, oj + ((size_t)2 * ty * ow + 2 * tx) * 8,
                            (size_t)ow * 8, 2 * ty + 1 < rows, 2 * tx + 1 < ow);
            }
        }
    }
}

/* The weights of nbo blocks of filters (a multiple of 4; OIhw8i8o), all
 * transformed: u[group of 32 filters][xi][input channel][32]. */
FPI_AVX2 void fpi_wino_weights_avx2(const float *w, int nbi, int nbo, float *u)
{
    size_t us = fpi_wg_str((size_t)nbi * 8 * 32);
    for (int g = 0; g + 4 <= nbo; g += 4) fpi_wg_weights(w, nbi, g, 0, nbi * 8, u + (size_t)(g / 4) * 16 * us, us);
}

/* Input blocks [b0, b1) of tiles [q0, q0 + n) of a map h x wd (tile q:
 * tile row ty0 + q / tw, column q % tw; pixels outside the map zero)
 * transformed into v[xi][tile][channel] (xi stride vs). */
FPI_AVX2 static void fpi_wg_input(const fpi_vmap *in, int nbi, int b0, int b1, int h, int wd, int ty0, int tw,
                                  int q0, int n, float *v, size_t vs)
{
    size_t c = (size_t)nbi * 8, pt = vs;
    for (int q = 0; q < n; q++) {
        int ty = ty0 + (q0 + q) / tw, tx = (q0 + q) % tw, y0 = 2 * ty - 1, x0 = 2 * tx - 1;
        for (int ib = b0; ib < b1; ib++) {
            const float *p = in->p + (size_t)ib * in->sb;
            /* B' d by columns as they come */
            __m256 t0[4], t1[4], t2[4], t3[4];
            for (int s = 0; s < 4; s++) {
                int ix = x0 + s, in_x = ix >= 0 && ix < wd;
#define FPI_WG_D(r)                                                                                    \
    (in_x && y0 + (r) >= 0 && y0 + (r) < h                                                             \
         ? fpi_avx2_load_lanes(p + (size_t)(y0 + (r)) * in->sy + (size_t)ix * in->sx, in->sl)          \
         : _mm256_setzero_ps())
                __m256 d0 = FPI_WG_D(0), d1 = FPI_WG_D(1), d2 = FPI_WG_D(2), d3 = FPI_WG_D(3);
#undef FPI_WG_D
                t0[s] = _mm256_sub_ps(d0, d2);
                t1[s] = _mm256_add_ps(d1, d2);
                t2[s] = _mm256_sub_ps(d2, d1);
                t3[s] = _mm256_sub_ps(d1, d3);
            }
            float *o = v + (size_t)q * c + ib * 8;
            FPI_WG_VROW(0, t0);
            FPI_WG_VROW(1, t1);
            FPI_WG_VROW(2, t2);
            FPI_WG_VROW(3, t3);
        }
    }
}

FPI_AVX2 void fpi_wino_input_avx2(const fpi_vmap *in, int nbi, int b0, int b1, int h, int wd, int q0, int nt,
                                  float *v)
{
    fpi_wg_input(in, nbi, b0, b1, h, wd, 0, (wd + 1) / 2, q0, nt, v, fpi_wg_str((size_t)nt * nbi * 8));
}

FPI_AVX2 void fpi_wino_rows_avx2(const fpi_vmap *in, int nbi, int h, int wd, const float *u, const float *bias,
                                 int nbo, fp_activation act, int y0, int y1, const fpi_vmap *out, int pool,
                                 float *scratch)
{
    int c = nbi * 8, tw = (wd + 1) / 2, ty0 = y0 / 2, nt = ((y1 + 1) / 2 - ty0) * tw, tb = fpi_wg_block(nbi);
    size_t vs = fpi_wg_str((size_t)tb * c), ms = fpi_wg_str((size_t)tb * 32), us = fpi_wg_str((size_t)c * 32);
    float *v = scratch, *m = scratch + 16 * vs;
    for (int q0 = 0; q0 < nt; q0 += tb) {
        int n = nt - q0 < tb ? nt - q0 : tb;
        fpi_wg_input(in, nbi, 0, nbi, h, wd, ty0, tw, q0, n, v, vs);
        for (int g = 0; g + 4 <= nbo; g += 4) {
            fpi_wg_products(v, vs, c, u + (size_t)(g / 4) * 16 * us, us, c, n, m, ms, 1, NULL);
            /* out of the transform: the 2x2 pixels of each tile, or their max */
            for (int q = 0; q < n; q++) {
                int ty = ty0 + (q0 + q) / tw, tx = (q0 + q) % tw, two_x = 2 * tx + 1 < wd;
                for (int j = 0; j < 4; j++) {
                    __m256 y[2][2], b = _mm256_loadu_ps(bias + (g + j) * 8);
                    fpi_wg_out(m + (size_t)q * 32 + j * 8, ms, y);
                    float *ob = out->p + (size_t)(g + j) * out->sb;
                    if (pool) {
                        /* the reference pool's order; a window cut by an odd side
                         * takes its one column or row twice */
                        int two_y = 2 * ty + 1 < y1;
                        __m256 mx = _mm256_set1_ps(-FLT_MAX);
                        mx = _mm256_max_ps(y[0][0], mx);
                        mx = _mm256_max_ps(y[0][two_x], mx);
                        mx = _mm256_max_ps(y[two_y][0], mx);
                        mx = _mm256_max_ps(y[two_y][two_x], mx);
                        fpi_avx2_store_lanes(ob + (size_t)(ty - ty0) * out->sy + (size_t)tx * out->sx, out->sl,
                                             fpi_avx2_bias_act(mx, b, act));
                        continue;
                    }
                    for (int r = 0; r < 2; r++) {
                        int yy = 2 * ty + r;
                        if (yy < y0 || yy >= y1) continue;
                        for (int k = 0; k < 1 + two_x; k++)
                            fpi_avx2_store_lanes(ob + (size_t)(yy - y0) * out->sy + (size_t)(2 * tx + k) * out->sx,
                                                 out->sl, fpi_avx2_bias_act(y[r][k], b, act));
                    }
                }
            }
        }
    }
}

#endif
