/* dw3x3.c — 3x3 stride-1 depthwise convolutions with padding 1 over maps
 * of 8-channel vectors (oneDNN's nChw8c, its layout on AVX2, or any
 * fpi_vmap), with bias and linear / leaky / relu; x86-64 with AVX2 and FMA.
 *
 * Hand-written so that a depthwise layer can be computed row by row inside
 * the 1x1 layer after it (conv1x1.c; depthwise-separable networks such as
 * the tiny face detector): its output then goes from registers to a few
 * rows of scratch in cache and on to the 1x1 sums, never through memory.
 * The layer run alone takes the same function, so fused and unfused runs
 * agree bit for bit. Alone it runs at about 60% of the FMA peak (an AMD
 * EPYC, Zen 3: the face detector's 208x208x16 layer in 0.21 ms at one
 * thread, its input in cache or not).
 *
 * Per output vector (8 channels of a pixel) the 9 taps in (ky, kx) order,
 * from zero, each an FMA with the tap's weight vector; taps outside the
 * map are skipped (the reference adds their zeros). Then bias and
 * activation. */
#include "engine/fast/fast.h"

#if defined(__x86_64__)

#include "engine/fast/avx2.h"

#define FPI_AVX2 __attribute__((target("avx2,fma")))

/* The taps of fpi_dw_in8 (P the intrinsics' prefix, L the lanes): input m
 * (column x - 1 + m) is tap 0 of output m, 1 of m - 1, 2 of m - 2. */
#define FPI_DW_F(P, aj, w) aj = P##_fmadd_ps(v, w, aj)
#define FPI_DW_V(P, L, m) v = P##_loadu_ps(p + L * (m))
#define FPI_DW_TAPS(P, L)                                                                                              \
    FPI_DW_V(P, L, 0), FPI_DW_F(P, a0, w0);                                                                            \
    FPI_DW_V(P, L, 1), FPI_DW_F(P, a1, w0), FPI_DW_F(P, a0, w1);                                                       \
    FPI_DW_V(P, L, 2), FPI_DW_F(P, a2, w0), FPI_DW_F(P, a1, w1), FPI_DW_F(P, a0, w2);                                  \
    FPI_DW_V(P, L, 3), FPI_DW_F(P, a3, w0), FPI_DW_F(P, a2, w1), FPI_DW_F(P, a1, w2);                                  \
    FPI_DW_V(P, L, 4), FPI_DW_F(P, a4, w0), FPI_DW_F(P, a3, w1), FPI_DW_F(P, a2, w2);                                  \
    FPI_DW_V(P, L, 5), FPI_DW_F(P, a5, w0), FPI_DW_F(P, a4, w1), FPI_DW_F(P, a3, w2);                                  \
    FPI_DW_V(P, L, 6), FPI_DW_F(P, a6, w0), FPI_DW_F(P, a5, w1), FPI_DW_F(P, a4, w2);                                  \
    FPI_DW_V(P, L, 7), FPI_DW_F(P, a7, w0), FPI_DW_F(P, a6, w1), FPI_DW_F(P, a5, w2);                                  \
    FPI_DW_V(P, L, 8), FPI_DW_F(P, a7, w1), FPI_DW_F(P, a6, w2);                                                       \
    FPI_DW_V(P, L, 9), FPI_DW_F(P, a7, w2);

/* Output columns [x, x + 8) of a row from its 3 input rows r[0..2]
 * (NULL: outside the map, the taps skipped), all taps inside the row
 * (0 < x, x + 8 < wd), nChw8c (columns 8 floats apart; L 16: nChw16c);
 * wk the block's weights. Eight accumulators, so that the FMAs of a tap
 * are independent and cover the FMA's latency; each input vector is loaded
 * once per row and feeds the up to 3 outputs it is a tap of, in each
 * output's tap order. Written out: arrays of vectors indexed in loops end
 * up on the stack. One body for AVX2 (fpi_dw_in8) and AVX-512
 * (fpi_dw16_in8): V the vector type. */
#define FPI_DW_IN8(NAME, ATTR, V, P, L)                                                                                \
    ATTR static inline __attribute__((always_inline)) void NAME(const float *const *r, const float *wk, int x, V *a)    \
    {                                                                                                                  \
        V a0 = P##_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;                      \
        for (int ky = 0; ky < 3; ky++) {                                                                               \
            if (!r[ky]) continue;                                                                                      \
            const float *p = r[ky] + (size_t)(x - 1) * L;                                                              \
            V w0 = P##_loadu_ps(wk + 3 * L * ky), w1 = P##_loadu_ps(wk + 3 * L * ky + L),                            \
              w2 = P##_loadu_ps(wk + 3 * L * ky + 2 * L), v;                                                          \
            FPI_DW_TAPS(P, L)                                                                                          \
        }                                                                                                              \
        a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3, a[4] = a4, a[5] = a5, a[6] = a6, a[7] = a7;                        \
    }
FPI_DW_IN8(fpi_dw_in8, FPI_AVX2, __m256, _mm256, 8)

/* Output column x alone, any x: the taps inside the map. */
FPI_AVX2 static inline __m256 fpi_dw_one(const float *const *r, size_t sx, size_t sl, const float *wk, int x, int wd)
{
    __m256 a = _mm256_setzero_ps();
    for (int ky = 0; ky < 3; ky++) {
        if (!r[ky]) continue;
        for (int kx = 0; kx < 3; kx++) {
            int xx = x + kx - 1;
            if (xx < 0 || xx >= wd) continue;
            a = _mm256_fmadd_ps(fpi_avx2_load_lanes(r[ky] + (size_t)xx * sx, sl), _mm256_loadu_ps(wk + 8 * (3 * ky + kx)), a);
        }
    }
    return a;
}

/* One output row of a block: rows r[0..2] of the input, into o. */
FPI_AVX2 static inline __attribute__((always_inline)) void fpi_dw_row(const float *const *r, const fpi_vmap *in,
                                                                      const float *wk, __m256 b, fp_activation act,
                                                                      int wd, float *o, const fpi_vmap *out,
                                                                      size_t sl)
{
    size_t sx = in->sx, ox = out->sx, ol = out->sl;
    fpi_avx2_store_lanes(o, ol, fpi_avx2_bias_act(fpi_dw_one(r, sx, sl, wk, 0, wd), b, act));
    int x = 1;
    if (sl == 1 && sx == 8 && wd >= 10) {
        /* nChw8c: 8 columns at a time, the last 8 before the last column
         * overlapping the ones before them (the same values again) */
        for (int last = 0; !last; x += 8) {
            if (x + 9 > wd) x = wd - 9, last = 1;
            else last = x + 9 == wd;
            __m256 a[8];
            fpi_dw_in8(r, wk, x, a);
            for (int j = 0; j < 8; j++)
                fpi_avx2_store_lanes(o + (size_t)(x + j) * ox, ol, fpi_avx2_bias_act(a[j], b, act));
        }
        x = wd - 1;
    }
    for (; x < wd; x++)
        fpi_avx2_store_lanes(o + (size_t)x * ox, ol, fpi_avx2_bias_act(fpi_dw_one(r, sx, sl, wk, x, wd), b, act));
}

FPI_AVX2 void fpi_dw3x3_row_avx2(const float *const *r, const fpi_vmap *in, int wd, const float *w,
                                 const float *bias, fp_activation act, int nb, float *o, const fpi_vmap *out)
{
    for (int bk = 0; bk < nb; bk++) {
        size_t ib = (size_t)bk * in->sb;
        const float *rb[3] = {r[0] ? r[0] + ib : NULL, r[1] + ib, r[2] ? r[2] + ib : NULL};
        const float *wk = w + (size_t)bk * 72;
        __m256 b = _mm256_loadu_ps(bias + bk * 8);
        float *ob = o + (size_t)bk * out->sb;
        if (in->sl == 1) fpi_dw_row(rb, in, wk, b, act, wd, ob, out, 1);
        else fpi_dw_row(rb, in, wk, b, act, wd, ob, out, in->sl);
    }
}

FPI_AVX2 void fpi_dw3x3_avx2(const fpi_vmap *in, int h, int wd, const float *w, const float *bias, fp_activation act,
                             int nb, int y0, int y1, const fpi_vmap *out)
{
    for (int y = y0; y < y1; y++) {
        const float *r[3] = {y > 0 ? in->p + (size_t)(y - 1) * in->sy : NULL, in->p + (size_t)y * in->sy,
                             y + 1 < h ? in->p + (size_t)(y + 1) * in->sy : NULL};
        fpi_dw3x3_row_avx2(r, in, wd, w, bias, act, nb, out->p + (size_t)(y - y0) * out->sy, out);
    }
}


/* ---- the same with AVX-512: 16-channel vectors (nChw16c) --------------
 *
 * The same taps in the same order per output vector; weights
 * [block][ky][kx][16] (oneDNN's Goihw16g). */

#define FPI_AVX512 __attribute__((target("avx512f")))

/* fpi_dw_in8 over 16-channel vectors (columns 16 floats apart). */
FPI_DW_IN8(fpi_dw16_in8, FPI_AVX512, __m512, _mm512, 16)

/* Lanes [0, 16) of a map at p, sl floats apart. */
FPI_AVX512 static inline __m512 fpi_dw16_load(const float *p, size_t sl)
{
    if (sl == 1) return _mm512_loadu_ps(p);
    float t[16];
    for (int j = 0; j < 16; j++) t[j] = p[j * sl];
    return _mm512_loadu_ps(t);
}

/* fpi_dw_one over 16-channel vectors. */
FPI_AVX512 static inline __m512 fpi_dw16_one(const float *const *r, size_t sx, size_t sl, const float *wk, int x,
                                             int wd)
{
    __m512 a = _mm512_setzero_ps();
    for (int ky = 0; ky < 3; ky++) {
        if (!r[ky]) continue;
        for (int kx = 0; kx < 3; kx++) {
            int xx = x + kx - 1;
            if (xx < 0 || xx >= wd) continue;
            a = _mm512_fmadd_ps(fpi_dw16_load(r[ky] + (size_t)xx * sx, sl), _mm512_loadu_ps(wk + 16 * (3 * ky + kx)), a);
        }
    }
    return a;
}

/* fpi_dw_row over 16-channel vectors. */
FPI_AVX512 static void fpi_dw16_row(const float *const *r, const fpi_vmap *in, const float *wk, __m512 b,
                                    fp_activation act, int wd, float *o, const fpi_vmap *out)
{
    size_t sx = in->sx, sl = in->sl, ox = out->sx, ol = out->sl;
    fpi_avx512_store_lanes(o, ol, fpi_avx512_bias_act(fpi_dw16_one(r, sx, sl, wk, 0, wd), b, act));
    int x = 1;
    if (sl == 1 && sx == 16 && wd >= 10) {
        /* nChw16c: 8 columns at a time, the last 8 before the last column
         * overlapping the ones before them (the same values again) */
        for (int last = 0; !last; x += 8) {
            if (x + 9 > wd) x = wd - 9, last = 1;
            else last = x + 9 == wd;
            __m512 a[8];
            fpi_dw16_in8(r, wk, x, a);
            for (int j = 0; j < 8; j++)
                fpi_avx512_store_lanes(o + (size_t)(x + j) * ox, ol, fpi_avx512_bias_act(a[j], b, act));
        }
        x = wd - 1;
    }
    for (; x < wd; x++)
        fpi_avx512_store_lanes(o + (size_t)x * ox, ol,
                               fpi_avx512_bias_act(fpi_dw16_one(r, sx, sl, wk, x, wd), b, act));
}

FPI_AVX512 void fpi_dw3x3_avx512(const fpi_vmap *in, int h, int wd, const float *w, const float *bias,
                                 fp_activation act, int nb, int y0, int y1, const fpi_vmap *out)
{
    for (int y = y0; y < y1; y++) {
        const float *r[3] = {y > 0 ? in->p + (size_t)(y - 1) * in->sy : NULL, in->p + (size_t)y * in->sy,
                             y + 1 < h ? in->p + (size_t)(y + 1) * in->sy : NULL};
        float *o = out->p + (size_t)(y - y0) * out->sy;
        for (int bk = 0; bk < nb; bk++) {
            size_t ib = (size_t)bk * in->sb;
            const float *rb[3] = {r[0] ? r[0] + ib : NULL, r[1] + ib, r[2] ? r[2] + ib : NULL};
            fpi_dw16_row(rb, in, w + (size_t)bk * 144, _mm512_loadu_ps(bias + bk * 16), act, wd,
                         o + (size_t)bk * out->sb, out);
        }
    }
}

#endif
