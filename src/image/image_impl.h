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

#endif /* FP_IMAGE_IMPL_H */
