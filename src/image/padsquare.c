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
 * four columns are not. ahead: floats past src of the row to ask the cache
 * for as this one is read, or 0. */
__attribute__((target("avx2"))) static void fpi_pad_hrow_avx2(float *dst, const float *src, const int *x0,
                                                              const int *x1, const float *fx, int n,
                                                              const fpi_pad_groups *g, size_t ahead)
{
    int k = 0;
    for (; k + 2 <= g->ng; k += 2) {
        if (ahead) __builtin_prefetch(src + g->base[k] + ahead);
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
 * the last bit at times. fpi_pad_rows holds the column tables and, per
 * channel, the two interpolated source rows; whole images
 * (fpi_image_pad_square_into) and rows asked for one at a time
 * (fpi_pad_rows_row) go through the same fpi_pad_out_row. */
struct fpi_pad_rows {
    const fp_image *im;
    int size, m, inside;
    float ratio;
    int *x0, *x1;
    float *fcols;
    float *hrow;  /* per channel: two interpolated source rows, then an output row */
    int *held;    /* per channel: the source row in each of its two buffers */
#if defined(__x86_64__)
    fpi_pad_groups grp;
#endif
};

void fpi_pad_rows_free(fpi_pad_rows *p)
{
    if (!p) return;
    fpi_free(p->x0);
    fpi_free(p->fcols);
    fpi_free(p->hrow);
    fpi_free(p->held);
#if defined(__x86_64__)
    fpi_free(p->grp.base);
    fpi_free(p->grp.idx);
#endif
    fpi_free(p);
}

fp_status fpi_pad_rows_new(const fp_image *im, int size, fpi_pad_rows **out)
{
    fpi_pad_rows *p = fpi_calloc(1, sizeof *p);
    if (p) {
        p->x0 = fpi_malloc(2 * (size_t)size * sizeof *p->x0);
        p->fcols = fpi_malloc((size_t)size * sizeof *p->fcols);
        p->hrow = fpi_malloc(3 * (size_t)im->c * (size_t)size * sizeof *p->hrow);
        p->held = fpi_malloc(2 * (size_t)im->c * sizeof *p->held);
    }
    if (!p || !p->x0 || !p->fcols || !p->hrow || !p->held) {
        fpi_pad_rows_free(p);
        return fpi_error(FP_ENOMEM, "fp_image_pad_square: out of memory");
    }
    p->im = im;
    p->size = size;
    p->m = im->w > im->h ? im->w : im->h;
    p->x1 = p->x0 + size;
    p->ratio = (float)p->m / (float)size;
    for (int k = 0; k < 2 * im->c; k++) p->held[k] = -1;
    /* the neighbours only grow with the column: columns [0, inside) have
     * both in the image, the rest one or both in the padding */
    for (int c = 0; c < size; c++) {
        fpi_tf_source(c, p->ratio, p->m, &p->x0[c], &p->x1[c], &p->fcols[c]);
        if (p->x1[c] < im->w) p->inside = c + 1;
    }
#if defined(__x86_64__)
    /* the groups of four columns one load reaches (fpi_pad_groups) */
    if (__builtin_cpu_supports("avx2")) {
        p->grp.base = fpi_malloc(((size_t)size / 4 + 1) * sizeof *p->grp.base);
        p->grp.idx = fpi_malloc(((size_t)size / 4 + 1) * sizeof *p->grp.idx);
        if (!p->grp.base || !p->grp.idx) {
            fpi_pad_rows_free(p);
            return fpi_error(FP_ENOMEM, "fp_image_pad_square: out of memory");
        }
        for (int c = 0; c + 4 <= p->inside; c += 4) {
            int b = p->x0[c];
            if (b + 8 > im->w || p->x1[c + 3] - b > 7) break;
            p->grp.base[p->grp.ng] = b;
            for (int k = 0; k < 4; k++)
                p->grp.idx[p->grp.ng][k] = p->x0[c + k] - b, p->grp.idx[p->grp.ng][4 + k] = p->x1[c + k] - b;
            p->grp.ng++;
        }
    }
#endif
    *out = p;
    return FP_OK;
}

/* Output row r of channel k into o (size floats), streamed when `stream`
 * (fpi_pad_vrow_stream; the caller fences). */
static void fpi_pad_out_row(fpi_pad_rows *p, int k, int r, float *o, int stream)
{
    const fp_image *im = p->im;
    const int size = p->size;
    const float *plane = im->data + (size_t)k * (size_t)im->h * (size_t)im->w;
    int *held = p->held + 2 * k; /* the source row in each of hrow[] */
    float *hrow[2] = {p->hrow + 3 * (size_t)k * size, p->hrow + (3 * (size_t)k + 1) * size};
    int y[2];
    float fy;
    fpi_tf_source(r, p->ratio, p->m, &y[0], &y[1], &fy);
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
                /* the rows are read in order: the one two below asked
                 * for as this one is read (fpi_pad_hrow_avx2), a line at a
                 * time (the network run between two preparations leaves
                 * none of the image in cache; a whole row asked for at once
                 * stalls on the misses in flight: the face detector at 416,
                 * one thread, end to end, 1.02-1.03x over 2 x 400 paired
                 * runs, made whole or as the first layer reads the rows) */
                size_t ahead = y[j] + 2 < im->h ? 2 * (size_t)im->w : 0;
                if (p->grp.ng) {
                    fpi_pad_hrow_avx2(h, src, p->x0, p->x1, p->fcols, p->inside, &p->grp, ahead);
                } else {
                    if (ahead) fpi_prefetch(src + ahead, (size_t)im->w * sizeof(float));
#endif
                    fpi_pad_hrow(h, src, p->x0, p->x1, p->fcols, p->inside);
#if defined(__x86_64__)
                }
#endif
                for (c = p->inside; c < size && p->x0[c] < im->w; c++) {
                    float l = src[p->x0[c]];
                    h[c] = l + (0.0f - l) * p->fcols[c];
                }
            }
            for (; c < size; c++) h[c] = 0.0f;
            held[b] = y[j];
        }
        hr[j] = hrow[b];
    }
#if defined(__x86_64__)
    if (stream) {
        fpi_pad_vrow_stream(o, hr[0], hr[1], fy, size);
        return;
    }
#endif
    (void)stream;
    fpi_pad_vrow(o, hr[0], hr[1], fy, size);
}

const float *fpi_pad_rows_row(fpi_pad_rows *p, int k, int r)
{
    float *o = p->hrow + (3 * (size_t)k + 2) * p->size;
    fpi_pad_out_row(p, k, r, o, 0);
    return o;
}

fp_status fpi_image_pad_square_into(const fp_image *im, int size, float *dst)
{
    fpi_pad_rows *p;
    fp_status st = fpi_pad_rows_new(im, size, &p);
    if (st) return st;
    /* streaming stores for an output past 1 MiB (fpi_pad_vrow_stream), on
     * CPUs without AVX-512: where they were measured (Zen 3). On a Zen 5
     * EPYC (AVX-512) plain stores are faster end to end, the network's
     * first layer then finding the input in cache: the face detector at
     * 416, one thread, bench_facedet, 3 alternating runs of 400: 2.48-2.51
     * -> 2.37-2.40 ms. */
    int stream = 0;
#if defined(__x86_64__)
    stream = __builtin_cpu_supports("avx2") && !__builtin_cpu_supports("avx512f") &&
             (size_t)im->c * size * size * sizeof(float) > (1u << 20) && size % 8 == 0 && ((uintptr_t)dst & 31) == 0;
#endif
    for (int k = 0; k < im->c; k++)
        for (int r = 0; r < size; r++) fpi_pad_out_row(p, k, r, dst + ((size_t)k * size + r) * size, stream);
#if defined(__x86_64__)
    if (stream) _mm_sfence();
#endif
    fpi_pad_rows_free(p);
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
