/* image.c — image allocation, darknet's class palette, and encoding to files. */
#include "image/image_impl.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include <stb_image_write.h>

#include "common/common.h"

fp_status fpi_image_check_dims(int w, int h, int c, const char *what)
{
    if (w < 1 || h < 1)
        return fpi_error(FP_EINVAL, "%s: image size must be positive (got %dx%d)", what, w, h);
    if (c < 1 || c > FP_IMAGE_MAX_CHANNELS)
        return fpi_error(FP_EINVAL, "%s: channels must be 1..%d (got %d)", what,
                         FP_IMAGE_MAX_CHANNELS, c);
    if (w > FP_IMAGE_MAX_SIDE || h > FP_IMAGE_MAX_SIDE ||
        (long long)w * h > FP_IMAGE_MAX_PIXELS)
        return fpi_error(FP_ETOOBIG,
                         "%s: image of %dx%d pixels exceeds the limit (%d pixels per side, %d "
                         "pixels in all)",
                         what, w, h, FP_IMAGE_MAX_SIDE, FP_IMAGE_MAX_PIXELS);
    return FP_OK;
}

int fpi_image_valid(const fp_image *im)
{
    return im && im->data && im->w >= 1 && im->h >= 1 && im->c >= 1 &&
           im->c <= FP_IMAGE_MAX_CHANNELS && im->w <= FP_IMAGE_MAX_SIDE &&
           im->h <= FP_IMAGE_MAX_SIDE && (long long)im->w * im->h <= FP_IMAGE_MAX_PIXELS;
}

fp_status fpi_image_alloc(int w, int h, int c, fp_image *out)
{
    if (!out) return fpi_error(FP_EINVAL, "fp_image_make: out is NULL");
    fp_status st = fpi_image_check_dims(w, h, c, "fp_image_make");
    if (st) return st;
    size_t n = (size_t)w * (size_t)h * (size_t)c; /* bounded by the limits above */
    float *data = fpi_malloc_aligned(n * sizeof(float));
    if (!data)
        return fpi_error(FP_ENOMEM, "fp_image_make: out of memory for %dx%dx%d image", w, h, c);
    out->w = w;
    out->h = h;
    out->c = c;
    out->data = data;
    return FP_OK;
}

fp_status fp_image_make(int w, int h, int c, float value, fp_image *out)
{
    fp_status st = fpi_image_alloc(w, h, c, out);
    if (st) return st;
    size_t n = (size_t)w * (size_t)h * (size_t)c;
    for (size_t i = 0; i < n; i++) out->data[i] = value;
    return FP_OK;
}

void fp_image_free(fp_image *im)
{
    if (!im) return;
    fpi_free_aligned(im->data);
    memset(im, 0, sizeof *im);
}

/* Darknet's get_color(): channel c of palette position x out of max. */
static float fpi_palette(int c, int x, int max)
{
    static const float colors[6][3] = {{1, 0, 1}, {0, 0, 1}, {0, 1, 1},
                                       {0, 1, 0}, {1, 1, 0}, {1, 0, 0}};
    float ratio = ((float)x / max) * 5;
    int i = (int)floor(ratio);
    int j = (int)ceil(ratio);
    ratio -= i;
    return (1 - ratio) * colors[i][c] + ratio * colors[j][c];
}

void fp_image_class_color(int cls, int classes, float rgb[3])
{
    if (!rgb) return;
    if (classes <= 0) {
        rgb[0] = rgb[1] = rgb[2] = 1;
        return;
    }
    /* darknet: offset = class*123457 % classes (int; identical while it
     * does not overflow, i.e. for cls < 17395). Kept in [0, classes). */
    long long off = ((long long)cls * 123457) % classes;
    if (off < 0) off += classes;
    rgb[0] = fpi_palette(2, (int)off, classes);
    rgb[1] = fpi_palette(1, (int)off, classes);
    rgb[2] = fpi_palette(0, (int)off, classes);
}

/* Output file plus a sticky error flag for the stb write callback. */
typedef struct fpi_writer {
    FILE *f;    /* open output file */
    int failed; /* set once any fwrite came up short */
} fpi_writer;

/* stb_image_write callback: appends `size` bytes to the file. */
static void fpi_write_cb(void *context, void *data, int size)
{
    fpi_writer *w = context;
    if (w->failed || size <= 0) return;
    if (fwrite(data, 1, (size_t)size, w->f) != (size_t)size) w->failed = 1;
}

/* Converts a float in [0,1] to a byte, rounding; NaN and negatives give 0. */
static unsigned char fpi_to_byte(float v)
{
    if (!(v > 0)) return 0;
    if (v >= 1) return 255;
    return (unsigned char)(int)(v * 255.0f + 0.5f);
}

/* Returns the extension of path (after the last '.' of the last component) or "". */
static const char *fpi_extension(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    return dot ? dot + 1 : "";
}

enum { FPI_FMT_PNG, FPI_FMT_JPG, FPI_FMT_BMP, FPI_FMT_PPM };

fp_status fp_image_save(const fp_image *im, const char *path)
{
    fp_status st = FP_OK;
    unsigned char *bytes = NULL;
    fpi_writer w = {NULL, 0};
    int ok = 0, fmt, created = 0;

    if (!path) return fpi_error(FP_EINVAL, "fp_image_save: path is NULL");
    if (!fpi_image_valid(im)) return fpi_error(FP_EINVAL, "%s: fp_image_save: invalid image", path);
    if (im->c != 1 && im->c != 3)
        return fpi_error(FP_EINVAL, "%s: can only save 1 or 3 channels (got %d)", path, im->c);
    const char *ext = fpi_extension(path);
    if (!strcasecmp(ext, "png")) fmt = FPI_FMT_PNG;
    else if (!strcasecmp(ext, "jpg") || !strcasecmp(ext, "jpeg")) fmt = FPI_FMT_JPG;
    else if (!strcasecmp(ext, "bmp")) fmt = FPI_FMT_BMP;
    else if (!strcasecmp(ext, "ppm")) fmt = FPI_FMT_PPM;
    else
        return fpi_error(FP_EINVAL, "%s: unknown image extension \"%.16s\" (want .png, .jpg, .bmp or .ppm)",
                         path, ext);

    size_t plane = (size_t)im->w * (size_t)im->h;
    bytes = fpi_malloc(plane * (size_t)im->c);
    if (!bytes) return fpi_error(FP_ENOMEM, "%s: out of memory encoding image", path);
    for (int k = 0; k < im->c; k++)
        for (size_t i = 0; i < plane; i++)
            bytes[i * (size_t)im->c + (size_t)k] = fpi_to_byte(im->data[(size_t)k * plane + i]);

    w.f = fopen(path, "wb");
    if (!w.f) {
        st = fpi_error(FP_EIO, "%s: cannot create: %s", path, strerror(errno));
        goto error;
    }
    created = 1;
    switch (fmt) {
    case FPI_FMT_PNG:
        ok = stbi_write_png_to_func(fpi_write_cb, &w, im->w, im->h, im->c, bytes, im->w * im->c);
        break;
    case FPI_FMT_JPG:
        ok = stbi_write_jpg_to_func(fpi_write_cb, &w, im->w, im->h, im->c, bytes, 90);
        break;
    case FPI_FMT_BMP:
        ok = stbi_write_bmp_to_func(fpi_write_cb, &w, im->w, im->h, im->c, bytes);
        break;
    default:
        ok = fprintf(w.f, "P%c\n%d %d\n255\n", im->c == 3 ? '6' : '5', im->w, im->h) > 0;
        if (ok) fpi_write_cb(&w, bytes, (int)(plane * (size_t)im->c));
        break;
    }
    if (!ok) {
        st = fpi_error(FP_ENOMEM, "%s: encoder failed (out of memory)", path);
        goto error;
    }
    if (w.failed || ferror(w.f)) {
        st = fpi_error(FP_EIO, "%s: write error: %s", path, strerror(errno));
        goto error;
    }
    FILE *f = w.f;
    w.f = NULL;
    if (fclose(f) != 0) {
        st = fpi_error(FP_EIO, "%s: write error: %s", path, strerror(errno));
        goto error;
    }
    fpi_free(bytes);
    return FP_OK;
error:
    if (w.f) fclose(w.f);
    if (created) remove(path); /* no half-written file left behind */
    fpi_free(bytes);
    return st;
}
