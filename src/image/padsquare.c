/* padsquare.c — the input preparation of TF.js models such as face-api's
 * detectors: zero padding on the right or bottom to a square, then
 * TensorFlow's bilinear resize (align_corners=false, half_pixel_centers=false),
 * computed in double and rounded to float as TF.js's CPU kernel does. */
#include <math.h>

#include "common/common.h"
#include "image/image_impl.h"

/* Source row/column of output index i for TF's legacy bilinear resize of a
 * side `from` to `to`: the two neighbours and the weight of the second. */
static void fpi_tf_source(int i, double ratio, int from, int *lo, int *hi, double *frac)
{
    double f = ratio * i;
    double fl = floor(f);
    *lo = fl < 0 ? 0 : (int)fl;
    *frac = f - *lo;
    int c = (int)ceil(f);
    *hi = c > from - 1 ? from - 1 : c;
}

/* Columns [0, n) of a source row interpolated across (both neighbours in
 * the image), in double as TF's kernel computes them. */
FPI_SIMD_CLONES static void fpi_pad_hrow(double *dst, const float *src, const int *x0, const int *x1,
                                         const double *fx, int n)
{
    for (int c = 0; c < n; c++) {
        double l = src[x0[c]], r = src[x1[c]];
        dst[c] = l + (r - l) * fx[c];
    }
}

/* An output row from the interpolated source rows above and below it. */
FPI_SIMD_CLONES static void fpi_pad_vrow(float *dst, const double *top, const double *bottom, double fy, int n)
{
    for (int c = 0; c < n; c++) dst[c] = (float)(top[c] + (bottom[c] - top[c]) * fy);
}

/* Separable: each source row is interpolated across once (into one of two
 * row buffers, which consecutive output rows share), then each output row
 * down from two of them: the same operations, in the same order, as
 * interpolating every output pixel from its four neighbours. */
fp_status fpi_image_pad_square_into(const fp_image *im, int size, float *dst)
{
    const int m = im->w > im->h ? im->w : im->h;
    int *cols = fpi_malloc(2 * (size_t)size * sizeof *cols);
    double *buf = fpi_malloc(3 * (size_t)size * sizeof *buf); /* fcols, two interpolated rows */
    if (!cols || !buf) {
        fpi_free(cols);
        fpi_free(buf);
        return fpi_error(FP_ENOMEM, "fp_image_pad_square: out of memory");
    }
    int *x0 = cols, *x1 = cols + size;
    double *fcols = buf, *hrow[2] = {buf + size, buf + 2 * size};
    const double ratio = (double)m / size;
    /* the neighbours only grow with the column: columns [0, inside) have
     * both in the image, the rest one or both in the padding */
    int inside = 0;
    for (int c = 0; c < size; c++) {
        fpi_tf_source(c, ratio, m, &x0[c], &x1[c], &fcols[c]);
        if (x1[c] < im->w) inside = c + 1;
    }
    for (int k = 0; k < im->c; k++) {
        const float *plane = im->data + (size_t)k * (size_t)im->h * (size_t)im->w;
        int held[2] = {-1, -1}; /* the source row in each of hrow[] */
        for (int r = 0; r < size; r++) {
            int y[2];
            double fy;
            fpi_tf_source(r, ratio, m, &y[0], &y[1], &fy);
            const double *hr[2];
            for (int j = 0; j < 2; j++) {
                int b = held[0] == y[j] ? 0 : held[1] == y[j] ? 1 : -1;
                if (b < 0) {
                    /* not the buffer holding the pair's other row */
                    b = held[0] == y[1 - j] ? 1 : 0;
                    double *h = hrow[b];
                    int c = 0;
                    if (y[j] < im->h) {
                        /* a row of the image; rows past it are the zero padding */
                        const float *src = plane + (size_t)y[j] * (size_t)im->w;
                        fpi_pad_hrow(h, src, x0, x1, fcols, inside);
                        for (c = inside; c < size && x0[c] < im->w; c++) {
                            double l = src[x0[c]];
                            h[c] = l + (0.0 - l) * fcols[c];
                        }
                    }
                    for (; c < size; c++) h[c] = 0.0;
                    held[b] = y[j];
                }
                hr[j] = hrow[b];
            }
            fpi_pad_vrow(dst + ((size_t)k * (size_t)size + (size_t)r) * (size_t)size, hr[0], hr[1], fy, size);
        }
    }
    fpi_free(cols);
    fpi_free(buf);
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
