/*
 * fogpipe/image.h — decoding, darknet-exact resizing and letterboxing,
 * drawing of detections, and encoding.
 *
 * Images are float32 planar RGB in [0, 1] (C×H×W, channel 0 = red), the
 * layout darknet feeds its networks. Decoding is strict and bounded: a file
 * that is not a JPEG, PNG, BMP or PPM/PGM, is truncated, or declares more
 * than FP_IMAGE_MAX_PIXELS pixels is refused with FP_ECORRUPT,
 * FP_EUNSUPPORTED or FP_ETOOBIG and a message naming the file. Decoded
 * pixels, resizing and letterboxing reproduce darknet (with its OpenCV
 * loader) float for float.
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
enum { FP_IMAGE_MAX_CHANNELS = 4 };               /* c of any fp_image */

typedef struct fp_image {
    int w;       /* columns */
    int h;       /* rows */
    int c;       /* channels (3 for colour images) */
    float *data; /* c*h*w floats, planar; owned, free with fp_image_free */
} fp_image;

/* Allocates a w×h×c image filled with `value`. FP_EINVAL (a side < 1, c
 * outside 1..FP_IMAGE_MAX_CHANNELS), FP_ETOOBIG (past the limits above),
 * FP_ENOMEM.
 *
 * Ownership, for every function here that fills an `fp_image *out`: *out is
 * written only on success and then owns new pixels (free with
 * fp_image_free); on failure it is left untouched. `out` must not be the
 * input image. */
fp_status fp_image_make(int w, int h, int c, float value, fp_image *out);

/* Frees the pixels and zeroes the struct. NULL or an empty image is a no-op. */
void fp_image_free(fp_image *im);

/* Decodes a JPEG (libjpeg-turbo, the decoder darknet's OpenCV build uses),
 * PNG, BMP or PPM/PGM file into a 3-channel RGB image. Grey images are
 * expanded to RGB; alpha is dropped. On success *out owns the pixels.
 *
 * Pixels equal what darknet's load_image_color() gets from OpenCV's imread,
 * float for float: byte/255, CMYK JPEGs converted with OpenCV's formula,
 * EXIF orientation (JPEG APP1, PNG eXIf) applied, 16-bit PNG and PNM
 * samples cut to their high byte, PNM samples not rescaled by maxval, 16-bit
 * BMPs widened by a shift. Stricter than OpenCV: truncated files fail.
 * Only binary PNM (P5, P6); no RLE BMP; no GIF/TIFF/WebP.
 *
 * Returns FP_EIO (cannot read), FP_ECORRUPT (empty, truncated or damaged),
 * FP_EUNSUPPORTED (another format or variant), FP_ETOOBIG (file over
 * FP_IMAGE_MAX_FILE, or declared size over the limits — checked before
 * decoding), FP_ENOMEM; the message names the file. */
fp_status fp_image_load(const char *path, fp_image *out);

/* Same from memory; `name` (NULL: "<memory>") is used in messages. Does not
 * keep `bytes`. FP_EINVAL for NULL out, or NULL bytes with len > 0. */
fp_status fp_image_decode(const uint8_t *bytes, size_t len, const char *name, fp_image *out);

/* Re-encodes a JPEG losslessly with Huffman tables optimised for it (same
 * coefficients, tables and sampling; of the metadata only an EXIF
 * orientation that turns the image is kept): fp_image_decode gives the
 * same pixels for both. *out is malloc'd (free()), *out_len its size, which
 * may exceed len (callers keep the smaller). FP_EUNSUPPORTED for what it
 * does not re-encode (not a JPEG; progressive, arithmetic-coded, CMYK, YCCK
 * or RGB JPEGs), FP_ECORRUPT, FP_ETOOBIG, FP_ENOMEM. */
fp_status fp_image_jpeg_optimize(const uint8_t *bytes, size_t len, const char *name, uint8_t **out,
                                 size_t *out_len);

/* Bilinear resize exactly as darknet's resize_image() (same arithmetic, so
 * the same floats). *out is a new image. A target side of 1 (where darknet
 * divides by zero) takes the last column / the first row. FP_EINVAL (bad
 * image, side < 1), FP_ETOOBIG, FP_ENOMEM. */
fp_status fp_image_resize(const fp_image *im, int w, int h, fp_image *out);

/* Darknet's letterbox_image(): keep the aspect ratio, resize to fit w×h,
 * centre on a 0.5 grey canvas. *out is a new image (w×h, im->c channels).
 * A fitted side that darknet would make 0 is kept at 1. Errors as
 * fp_image_resize. */
fp_status fp_image_letterbox(const fp_image *im, int w, int h, fp_image *out);

/* The input preparation of TF.js models (face-api's NetInput without
 * centring): pad with 0 (black) on the right of a tall image or the bottom of
 * a wide one to a square of side max(w, h), then resize to size×size with
 * TensorFlow's bilinear resize (align_corners=false, half_pixel_centers=
 * false: source = destination × side/size, interpolating between the floor
 * and the next pixel, clamped), in float as TF.js's WASM kernel. The square
 * is never materialised. *out is new (size×size, im->c channels). Errors as
 * fp_image_resize. */
fp_status fp_image_pad_square(const fp_image *im, int size, fp_image *out);

/* Draws a rectangle outline between the inclusive corners (x0,y0) and
 * (x1,y1), `thickness` pixels wide (< 1 counts as 1) growing inwards like
 * darknet's draw_box_width, in colour rgb (each in [0,1]). Parts outside the
 * image are clipped away (darknet instead clamps them onto the border).
 * Colours go to the first min(c, 3) channels. Invalid arguments: no-op. */
void fp_image_draw_box(fp_image *im, int x0, int y0, int x1, int y1, int thickness, const float rgb[3]);

/* Draws `text` with its top-left corner at (x, y) on a filled background of
 * colour `bg`, in black, with pixel height about `height` per line ('\n'
 * starts a new line). Characters outside printable ASCII show as '?'.
 * Clipped; invalid arguments: no-op. */
void fp_image_draw_label(fp_image *im, int x, int y, const char *text, int height, const float bg[3]);

/* Darknet's class colour palette: colour of class `cls` out of `classes`
 * (rgb[0] red), as draw_detections() computes it; the same floats for
 * 0 <= cls < 17395. classes <= 0 gives white. */
void fp_image_class_color(int cls, int classes, float rgb[3]);

/* Encodes to a file; the format follows the extension (any case): .png,
 * .jpg/.jpeg (quality 90), .bmp, .ppm (P6, or P5 for 1 channel). Images of
 * 1 or 3 channels; values are clamped to [0,1] and rounded to bytes (NaN
 * gives 0), so PNG/BMP/PPM round-trip exactly through fp_image_load.
 * FP_EINVAL (unknown extension, other channel counts, bad image), FP_EIO
 * (cannot create or write; no partial file is left), FP_ENOMEM. */
fp_status fp_image_save(const fp_image *im, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* FOGPIPE_IMAGE_H */
