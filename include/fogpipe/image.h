/*
 * fogpipe/image.h — decoding, darknet-exact resizing and letterboxing,
 * drawing of detections, and encoding.
 *
 * Images are float32 planar RGB in [0, 1] (C×H×W, channel 0 = red), the
 * layout darknet feeds its networks. Decoding is strict and bounded: a file
 * that is not a JPEG, PNG, BMP or PPM/PGM, is truncated, or declares more
 * than FP_IMAGE_MAX_PIXELS pixels is refused with FP_ECORRUPT,
 * FP_EUNSUPPORTED or FP_ETOOBIG and a message naming the file.
 *
 * Example:
 *     fp_image im = {0}, sized = {0};
 *     if (fp_image_load("dog.jpg", &im)) { fprintf(stderr, "%s\n", fp_last_error()); ... }
 *     fp_image_letterbox(&im, 416, 416, &sized);
 *     ... run the network on sized.data ...
 *     fp_image_free(&sized); fp_image_free(&im);
 */
#ifndef FOGPIPE_IMAGE_H
#define FOGPIPE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "fogpipe/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { FP_IMAGE_MAX_PIXELS = 64 * 1024 * 1024 }; /* 64 Mpixel */
enum { FP_IMAGE_MAX_SIDE = 32768 };
enum { FP_IMAGE_MAX_FILE = 256 * 1024 * 1024 };   /* bytes */
enum { FP_IMAGE_MAX_CHANNELS = 4 };

typedef struct fp_image {
    int w;       /* columns */
    int h;       /* rows */
    int c;       /* channels (3 for colour images) */
    float *data; /* c*h*w floats, planar; owned, free with fp_image_free */
} fp_image;

/* Allocates a w×h×c image filled with `value`. FP_EINVAL, FP_ETOOBIG, FP_ENOMEM. */
fp_status fp_image_make(int w, int h, int c, float value, fp_image *out);

/* Frees the pixels and zeroes the struct. NULL or an empty image is a no-op. */
void fp_image_free(fp_image *im);

/* Decodes a JPEG (libjpeg-turbo, the decoder darknet's OpenCV build uses),
 * PNG, BMP or PPM/PGM file into a 3-channel RGB image. Grey images are
 * expanded to RGB; alpha is dropped. On success *out owns the pixels. */
fp_status fp_image_load(const char *path, fp_image *out);

/* Same from memory; `name` is used in messages. Does not keep `bytes`. */
fp_status fp_image_decode(const uint8_t *bytes, size_t len, const char *name, fp_image *out);

/* Bilinear resize exactly as darknet's resize_image() (same arithmetic, so
 * the same floats). *out is a new image. */
fp_status fp_image_resize(const fp_image *im, int w, int h, fp_image *out);

/* Darknet's letterbox_image(): keep the aspect ratio, resize to fit w×h,
 * centre on a 0.5 grey canvas. *out is a new image. */
fp_status fp_image_letterbox(const fp_image *im, int w, int h, fp_image *out);

/* Draws a rectangle outline (pixel coordinates, clipped) `thickness` pixels
 * wide in colour rgb (each in [0,1]). */
void fp_image_draw_box(fp_image *im, int x0, int y0, int x1, int y1, int thickness, const float rgb[3]);

/* Draws `text` with its top-left corner at (x, y) on a filled background of
 * colour `bg`, in black, with pixel height about `height`. Clipped. */
void fp_image_draw_label(fp_image *im, int x, int y, const char *text, int height, const float bg[3]);

/* Darknet's class colour palette: colour of class `cls` out of `classes`. */
void fp_image_class_color(int cls, int classes, float rgb[3]);

/* Encodes to a file; the format follows the extension: .png, .jpg/.jpeg
 * (quality 90), .bmp, .ppm. FP_EINVAL for an unknown extension, FP_EIO. */
fp_status fp_image_save(const fp_image *im, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* FOGPIPE_IMAGE_H */
