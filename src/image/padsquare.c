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

fp_status fp_image_pad_square(const fp_image *im, int size, fp_image *out)
{
    fp_image res = {0};
    int *cols = NULL;
    double *fcols = NULL;
    if (!out || !fpi_image_valid(im) || out == im)
        return fpi_error(FP_EINVAL, "fp_image_pad_square: invalid image or output");
    fp_status st = fp_image_make(size, size, im->c, 0.0f, &res);
    if (st) return fpi_error_context(st, "fp_image_pad_square");
    cols = fpi_malloc(2 * (size_t)size * sizeof *cols);
    fcols = fpi_malloc((size_t)size * sizeof *fcols);
    if (!cols || !fcols) {
        st = fpi_error(FP_ENOMEM, "fp_image_pad_square: out of memory");
        goto error;
    }
    const int m = im->w > im->h ? im->w : im->h;
    const double ratio = (double)m / size;
    for (int c = 0; c < size; c++) fpi_tf_source(c, ratio, m, &cols[2 * c], &cols[2 * c + 1], &fcols[c]);
    for (int k = 0; k < im->c; k++) {
        const float *plane = im->data + (size_t)k * (size_t)im->h * (size_t)im->w;
        for (int r = 0; r < size; r++) {
            int y0, y1;
            double fy;
            fpi_tf_source(r, ratio, m, &y0, &y1, &fy);
            /* rows past the image are the zero padding */
            const float *row0 = y0 < im->h ? plane + (size_t)y0 * (size_t)im->w : NULL;
            const float *row1 = y1 < im->h ? plane + (size_t)y1 * (size_t)im->w : NULL;
            float *dst = res.data + ((size_t)k * (size_t)size + (size_t)r) * (size_t)size;
            for (int c = 0; c < size; c++) {
                int x0 = cols[2 * c], x1 = cols[2 * c + 1];
                double tl = row0 && x0 < im->w ? row0[x0] : 0.0, tr = row0 && x1 < im->w ? row0[x1] : 0.0;
                double bl = row1 && x0 < im->w ? row1[x0] : 0.0, br = row1 && x1 < im->w ? row1[x1] : 0.0;
                double top = tl + (tr - tl) * fcols[c], bottom = bl + (br - bl) * fcols[c];
                dst[c] = (float)(top + (bottom - top) * fy);
            }
        }
    }
    fpi_free(cols);
    fpi_free(fcols);
    *out = res;
    return FP_OK;
error:
    fpi_free(cols);
    fpi_free(fcols);
    fp_image_free(&res);
    return st;
}
