/* padsquare.c — the input preparation of TF.js models such as face-api's
 * detectors: zero padding on the right or bottom to a square, then
 * TensorFlow's bilinear resize (align_corners=false, half_pixel_centers=false),
 * computed in float as TF.js's WASM kernel does. */
#include <math.h>
#include <stdint.h>

#include "common/common.h"
#include "image/image_impl.h"

/* Source row/column of output index i for TF's legacy bilinear resize of a
 * side `from` to `to` (ratio = from / to): the two neighbours and the
 * weight of the second, in float as TF.js's WASM kernel computes them. */
static void fpi_tf_source(int i, float ratio, int from, int *lo, int *hi, float *frac)
{
    float f = (float)i * ratio;
    float fl = floorf(f);
    *lo = fl < 0 ? 0 : (int)fl;
    *frac = f - (float)*lo;
    int c = (int)ceilf(f);
    *hi = c > from - 1 ? from - 1 : c;
}

/* Columns [0, n) of a source row interpolated across (both neighbours in
 * the image). */
FPI_SIMD_CLONES static void fpi_pad_hrow(float *dst, const float *src, const int *x0, const int *x1,
                                         const float *fx, int n)
{
    for (int c = 0; c < n; c++) {
        float l = src[x0[c]], r = src[x1[c]];
        dst[c] = l + (r - l) * fx[c];
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

/* Columns [4g, 4g + 4) of a row gathered by one 8-float load at base[g]
 * and one permute: lanes 0-3 take the left neighbours, 4-7 the right
 * (idx[g]); ng groups qualify (their neighbours within 8 floats of the
 * load, the load inside the row). */
typedef struct {
    int ng;
    int *base;
    int32_t (*idx)[8];
} fpi_pad_groups;

/* fpi_pad_hrow for the groups' columns with AVX2, two groups (8 columns)
 * per vector, the rest by fpi_pad_hrow: the same operations (no FMA: a fused
 * multiply-add rounds once where TF rounds twice). The compiler's
 * vectorisation of the plain loop assembles the neighbours one by one, and
 * AVX2's gathers are slower still on an AMD EPYC; a load and a permute per
 * four columns are not. */
__attribute__((target("avx2"))) static void fpi_pad_hrow_avx2(float *dst, const float *src, const int *x0,
                                                              const int *x1, const float *fx, int n,
                                                              const fpi_pad_groups *g)
{
    int k = 0;
    for (; k + 2 <= g->ng; k += 2) {
        __m256 a = _mm256_permutevar8x32_ps(_mm256_loadu_ps(src + g->base[k]),
                                            _mm256_loadu_si256((const __m256i *)g->idx[k]));
        __m256 b = _mm256_permutevar8x32_ps(_mm256_loadu_ps(src + g->base[k + 1]),
                                            _mm256_loadu_si256((const __m256i *)g->idx[k + 1]));
        __m256 l = _mm256_permute2f128_ps(a, b, 0x20), r = _mm256_permute2f128_ps(a, b, 0x31);
        _mm256_storeu_ps(dst + 4 * k, _mm256_add_ps(l, _mm256_mul_ps(_mm256_sub_ps(r, l), _mm256_loadu_ps(fx + 4 * k))));
    }
    fpi_pad_hrow(dst + 4 * k, src, x0 + 4 * k, x1 + 4 * k, fx + 4 * k, n - 4 * k);
}
#endif

/* An output row from the interpolated source rows above and below it. */
FPI_SIMD_CLONES static void fpi_pad_vrow(float *dst, const float *top, const float *bottom, float fy, int n)
{
    for (int c = 0; c < n; c++) dst[c] = top[c] + (bottom[c] - top[c]) * fy;
}

#if defined(__x86_64__)
/* The same with streaming stores, for a dst 32-byte aligned and n a
 * multiple of 8: the row goes to memory without being read into the cache
 * first (an output larger than the caches would be read from memory for
 * each line it writes, then written back). The face detector's 2 MB input
 * at 416, one thread, the network run between preparations: median 0.79-0.92
 * -> 0.63-0.71 ms (3 alternating runs of 300 on an AMD EPYC, Zen 3). The
 * caller fences. */
__attribute__((target("avx2"))) static void fpi_pad_vrow_stream(float *dst, const float *top, const float *bottom,
                                                               float fy, int n)
{
    __m256 f = _mm256_set1_ps(fy);
    for (int c = 0; c < n; c += 8) {
        __m256 t = _mm256_loadu_ps(top + c), b = _mm256_loadu_ps(bottom + c);
        _mm256_stream_ps(dst + c, _mm256_add_ps(t, _mm256_mul_ps(_mm256_sub_ps(b, t), f)));
    }
}
#endif

/* Separable: each source row is interpolated across once (into one of two
 * row buffers, which consecutive output rows share), then each output row
 * down from two of them: the same operations, in the same order, as
 * interpolating every output pixel from its four neighbours. In float, as
 * TF.js's WASM backend (face-api's fastest in Node) computes them; TF.js's
 * CPU backend computes in double and rounds the result, which differs in
 * the last bit at times. */
fp_status fpi_image_pad_square_into(const fp_image *im, int size, float *dst)
{
    const int m = im->w > im->h ? im->w : im->h;
    int *cols = fpi_malloc(2 * (size_t)size * sizeof *cols);
    float *buf = fpi_malloc(3 * (size_t)size * sizeof *buf); /* fcols, two interpolated rows */
    if (!cols || !buf) {
        fpi_free(cols);
        fpi_free(buf);
        return fpi_error(FP_ENOMEM, "fp_image_pad_square: out of memory");
    }
    int *x0 = cols, *x1 = cols + size;
    float *fcols = buf, *hrow[2] = {buf + size, buf + 2 * size};
    const float ratio = (float)m / (float)size;
    /* the neighbours only grow with the column: columns [0, inside) have
     * both in the image, the rest one or both in the padding */
    int inside = 0;
    for (int c = 0; c < size; c++) {
        fpi_tf_source(c, ratio, m, &x0[c], &x1[c], &fcols[c]);
        if (x1[c] < im->w) inside = c + 1;
    }
#if defined(__x86_64__)
    /* streaming stores for an output past 1 MiB (fpi_pad_vrow_stream) */
    int stream = __builtin_cpu_supports("avx2") && (size_t)im->c * size * size * sizeof(float) > (1u << 20) &&
                 size % 8 == 0 && ((uintptr_t)dst & 31) == 0;
    /* the groups of four columns one load reaches (fpi_pad_groups) */
    fpi_pad_groups grp = {0, NULL, NULL};
    if (__builtin_cpu_supports("avx2")) {
        grp.base = fpi_malloc(((size_t)size / 4 + 1) * sizeof *grp.base);
        grp.idx = fpi_malloc(((size_t)size / 4 + 1) * sizeof *grp.idx);
        if (!grp.base || !grp.idx) {
            fpi_free(cols), fpi_free(buf), fpi_free(grp.base), fpi_free(grp.idx);
            return fpi_error(FP_ENOMEM, "fp_image_pad_square: out of memory");
        }
        for (int c = 0; c + 4 <= inside; c += 4) {
            int b = x0[c];
            if (b + 8 > im->w || x1[c + 3] - b > 7) break;
            grp.base[grp.ng] = b;
            for (int k = 0; k < 4; k++) grp.idx[grp.ng][k] = x0[c + k] - b, grp.idx[grp.ng][4 + k] = x1[c + k] - b;
            grp.ng++;
        }
    }
#endif
    for (int k = 0; k < im->c; k++) {
        const float *plane = im->data + (size_t)k * (size_t)im->h * (size_t)im->w;
        int held[2] = {-1, -1}; /* the source row in each of hrow[] */
        for (int r = 0; r < size; r++) {
            int y[2];
            float fy;
            fpi_tf_source(r, ratio, m, &y[0], &y[1], &fy);
            const float *hr[2];
            for (int j = 0; j < 2; j++) {
                int b = held[0] == y[j] ? 0 : held[1] == y[j] ? 1 : -1;
                if (b < 0) {
                    /* not the buffer holding the pair's other row */
                    b = held[0] == y[1 - j] ? 1 : 0;
                    float *h = hrow[b];
                    int c = 0;
                    if (y[j] < im->h) {
                        /* a row of the image; rows past it are the zero padding */
                        const float *src = plane + (size_t)y[j] * (size_t)im->w;
#if defined(__x86_64__)
                        /* the rows are read in order: the one two below
                         * asked for now (the network run between two
                         * preparations leaves none of the image in cache;
                         * the face detector at 416, one thread: median
                         * 0.67-1.08 -> 0.64-0.79 ms, 4 alternating runs) */
                        if (y[j] + 2 < im->h) fpi_prefetch(src + 2 * (size_t)im->w, (size_t)im->w * sizeof(float));
                        if (grp.ng)
                            fpi_pad_hrow_avx2(h, src, x0, x1, fcols, inside, &grp);
                        else
#endif
                            fpi_pad_hrow(h, src, x0, x1, fcols, inside);
                        for (c = inside; c < size && x0[c] < im->w; c++) {
                            float l = src[x0[c]];
                            h[c] = l + (0.0f - l) * fcols[c];
                        }
                    }
                    for (; c < size; c++) h[c] = 0.0f;
                    held[b] = y[j];
                }
                hr[j] = hrow[b];
            }
            float *o = dst + ((size_t)k * (size_t)size + (size_t)r) * (size_t)size;
#if defined(__x86_64__)
            if (stream) {
                fpi_pad_vrow_stream(o, hr[0], hr[1], fy, size);
                continue;
            }
#endif
            fpi_pad_vrow(o, hr[0], hr[1], fy, size);
        }
    }
#if defined(__x86_64__)
    if (stream) _mm_sfence();
#endif
    fpi_free(cols);
    fpi_free(buf);
#if defined(__x86_64__)
    fpi_free(grp.base);
    fpi_free(grp.idx);
#endif
    return FP_OK;
}

fp_status fp_image_pad_square(const fp_image *im, int size, fp_image *out)
{
    fp_image res = {0};
    if (!out || !fpi_image_valid(im) || out == im)
        return fpi_error(FP_EINVAL, "fp_image_pad_square: invalid image or output");
    fp_status st = fpi_image_alloc(size, size, im->c, &res);
    if (st) return fpi_error_context(st, "fp_image_pad_square");
    if ((st = fpi_image_pad_square_into(im, size, res.data))) {
        fp_image_free(&res);
        return st;
    }
    *out = res;
    return FP_OK;
}
