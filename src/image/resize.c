/* resize.c — darknet's resize_image() and letterbox_image(), float for float. */

/* Bit-exactness with darknet needs a*b + c*d rounded after every operation:
 * no fused multiply-add. GCC already does this under -std=c11; these make it
 * hold under gnu modes, -march=native and clang too. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <string.h>

#include "common/common.h"
#include "image/image_impl.h"

/* Darknet's scale (float)(from-1)/(to-1); 0 when the target side is 1, where
 * darknet divides by zero (w == 1 then takes the last column, h == 1 the
 * first row). */
static float fpi_resize_scale(int from, int to)
{
    if (to == 1) return 0.0f;
    return (float)(from - 1) / (to - 1);
}

fp_status fp_image_resize(const fp_image *im, int w, int h, fp_image *out)
{
    fp_image part = {0}, res = {0};
    fp_status st;

    if (!out || !fpi_image_valid(im) || out == im)
        return fpi_error(FP_EINVAL, "fp_image_resize: invalid image or output");
    st = fpi_image_alloc(w, h, im->c, &res);
    if (st) return fpi_error_context(st, "fp_image_resize");
    st = fpi_image_alloc(w, im->h, im->c, &part);
    if (st) {
        st = fpi_error_context(st, "fp_image_resize");
        goto error;
    }

    const float w_scale = fpi_resize_scale(im->w, w);
    const float h_scale = fpi_resize_scale(im->h, h);
    const size_t iw = (size_t)im->w, ih = (size_t)im->h, ow = (size_t)w;

    /* Pass 1: horizontal interpolation of every source row into part (w × im->h). */
    for (int k = 0; k < im->c; k++) {
        for (int r = 0; r < im->h; r++) {
            const float *src = im->data + ((size_t)k * ih + (size_t)r) * iw;
            float *dst = part.data + ((size_t)k * ih + (size_t)r) * ow;
            for (int c = 0; c < w; c++) {
                float val;
                if (c == w - 1 || im->w == 1) {
                    val = src[im->w - 1];
                } else {
                    float sx = c * w_scale;
                    int ix = (int)sx;
                    float dx = sx - ix;
                    val = (1 - dx) * src[ix] + dx * src[ix + 1];
                }
                dst[c] = val;
            }
        }
    }

    /* Pass 2: vertical interpolation; darknet stores (1-dy)*a, then adds dy*b. */
    for (int k = 0; k < im->c; k++) {
        for (int r = 0; r < h; r++) {
            float sy = r * h_scale;
            int iy = (int)sy;
            float dy = sy - iy;
            const float *p0 = part.data + ((size_t)k * ih + (size_t)iy) * ow;
            float *dst = res.data + ((size_t)k * (size_t)h + (size_t)r) * ow;
            for (int c = 0; c < w; c++) dst[c] = (1 - dy) * p0[c];
            if (r == h - 1 || im->h == 1) continue;
            const float *p1 = p0 + ow;
            for (int c = 0; c < w; c++) dst[c] += dy * p1[c];
        }
    }

    fp_image_free(&part);
    *out = res;
    return FP_OK;
error:
    fp_image_free(&part);
    fp_image_free(&res);
    return st;
}

fp_status fp_image_letterbox(const fp_image *im, int w, int h, fp_image *out)
{
    fp_image sized = {0}, boxed = {0};
    fp_status st;

    if (!out || !fpi_image_valid(im) || out == im)
        return fpi_error(FP_EINVAL, "fp_image_letterbox: invalid image or output");
    st = fp_image_make(w, h, im->c, 0.5f, &boxed);
    if (st) return fpi_error_context(st, "fp_image_letterbox");

    /* darknet's integer arithmetic; sides are at most 32768 so the products
     * fit. A side that would round to 0 is kept at 1. Float rounding in the
     * comparison can make a side exceed the canvas by one; darknet then
     * crops when embedding, and so do we. */
    long long new_w, new_h;
    if ((float)w / im->w < (float)h / im->h) {
        new_w = w;
        new_h = ((long long)im->h * w) / im->w;
    } else {
        new_h = h;
        new_w = ((long long)im->w * h) / im->h;
    }
    if (new_w < 1) new_w = 1;
    if (new_h < 1) new_h = 1;

    st = fp_image_resize(im, (int)new_w, (int)new_h, &sized);
    if (st) {
        st = fpi_error_context(st, "fp_image_letterbox");
        goto error;
    }

    const long long dx = (w - new_w) / 2, dy = (h - new_h) / 2; /* C truncation, as darknet */
    const long long x0 = dx < 0 ? -dx : 0, y0 = dy < 0 ? -dy : 0;
    const long long cols = (new_w < w - dx ? new_w : w - dx) - x0;
    const long long rows = (new_h < h - dy ? new_h : h - dy);
    for (int k = 0; k < im->c && cols > 0; k++) {
        for (long long y = y0; y < rows; y++) {
            const float *src = sized.data + ((size_t)k * (size_t)new_h + (size_t)y) * (size_t)new_w + (size_t)x0;
            float *dst = boxed.data + ((size_t)k * (size_t)h + (size_t)(dy + y)) * (size_t)w + (size_t)(dx + x0);
            memcpy(dst, src, (size_t)cols * sizeof(float));
        }
    }
    fp_image_free(&sized);
    *out = boxed;
    return FP_OK;
error:
    fp_image_free(&sized);
    fp_image_free(&boxed);
    return st;
}
