/*
 * image_impl.h — internal contracts of the image module (decode.c, resize.c,
 * draw.c, image.c). Internal: not API.
 */
#ifndef FP_IMAGE_IMPL_H
#define FP_IMAGE_IMPL_H

#include "fogpipe/image.h"

/* Checks w, h, c against the limits in fogpipe/image.h. Returns FP_OK,
 * FP_EINVAL (a side < 1, c outside 1..FP_IMAGE_MAX_CHANNELS) or FP_ETOOBIG,
 * with a message that starts with `what`. */
fp_status fpi_image_check_dims(int w, int h, int c, const char *what);

/* Returns 1 when im is a usable image (non-NULL, sides and channels within
 * the limits, pixels allocated), 0 otherwise. Records nothing. */
int fpi_image_valid(const fp_image *im);

/* As fp_image_make, but the pixels are left as they are: for an image its
 * caller writes whole. */
fp_status fpi_image_alloc(int w, int h, int c, fp_image *out);

/* fp_image_pad_square into dst (size x size x im->c floats, planes one
 * after the other) instead of a new image; im must be valid. */
fp_status fpi_image_pad_square_into(const fp_image *im, int size, float *dst);

/* The same rows one at a time, as a reader asks for them: fpi_pad_rows_new
 * (im valid, and alive until fpi_pad_rows_free), then fpi_pad_rows_row for
 * channel k's row r (0 <= r < size; size floats, the same bits as
 * fpi_image_pad_square_into's, valid until the next call for channel k).
 * Cheapest when each channel's rows come in order. */
typedef struct fpi_pad_rows fpi_pad_rows;
fp_status fpi_pad_rows_new(const fp_image *im, int size, fpi_pad_rows **out);
const float *fpi_pad_rows_row(fpi_pad_rows *p, int k, int r);
void fpi_pad_rows_free(fpi_pad_rows *p);

#endif /* FP_IMAGE_IMPL_H */
