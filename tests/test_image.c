/*
 * test_image.c — image module: darknet-exact resize/letterbox against a
 * literal transcription of darknet's loops, codec round trips, EXIF
 * orientation, strict refusal of truncated/garbage/oversized files, clipped
 * drawing, and an allocation-failure sweep.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <jpeglib.h>

#include "common/common.h"
#include "fogpipe/image.h"
#include "test.h"

/* ---- helpers ---------------------------------------------------------- */

/* A per-process scratch file name under /tmp for `name` (static buffer). */
static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ & 3];
    snprintf(p, sizeof buf[0], "/tmp/fp_test_image_%ld_%s", (long)getpid(), name);
    return p;
}

/* Image whose pixels are whole bytes/255 in a pattern that differs per channel. */
static fp_image pattern(int w, int h, int c)
{
    fp_image im = {0};
    if (fp_image_make(w, h, c, 0, &im)) return im;
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                im.data[(k * h + y) * w + x] = (float)(((x * 37 + y * 91 + k * 53) % 256) / 255.0);
    return im;
}

static float px(const fp_image *im, int x, int y, int k) { return im->data[((size_t)k * im->h + y) * im->w + x]; }

/* Reads a scratch file into memory (fpi_free the result). */
static uint8_t *slurp(const char *path, size_t *len)
{
    char *d = NULL;
    if (fpi_read_file(path, 1 << 26, &d, len) != FP_OK) return NULL;
    return (uint8_t *)d;
}

/* Saves im to a scratch file of the given name and returns its bytes. */
static uint8_t *encode(const fp_image *im, const char *name, size_t *len)
{
    const char *p = tpath(name);
    if (fp_image_save(im, p) != FP_OK) return NULL;
    uint8_t *d = slurp(p, len);
    remove(p);
    return d;
}

/* Writes bytes to a scratch file name, returns the path. */
static const char *spit(const char *name, const void *d, size_t n)
{
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    if (!f) return p;
    fwrite(d, 1, n, f);
    fclose(f);
    return p;
}

/* ---- darknet reference (literal transcription of resize_image) -------- */

static float ref_get(const fp_image *m, int x, int y, int c) { return m->data[c * m->h * m->w + y * m->w + x]; }
static void ref_set(fp_image *m, int x, int y, int c, float v) { m->data[c * m->h * m->w + y * m->w + x] = v; }
static void ref_add(fp_image *m, int x, int y, int c, float v) { m->data[c * m->h * m->w + y * m->w + x] += v; }

/* darknet's resize_image(), with the scale of a 1-pixel target side set to
 * 0 (darknet divides by zero there). */
static fp_image ref_resize(fp_image im, int w, int h)
{
    fp_image resized = {0}, part = {0};
    fp_image_make(w, h, im.c, 0, &resized);
    fp_image_make(w, im.h, im.c, 0, &part);
    int r, c, k;
    float w_scale = w == 1 ? 0 : (float)(im.w - 1) / (w - 1);
    float h_scale = h == 1 ? 0 : (float)(im.h - 1) / (h - 1);
    for (k = 0; k < im.c; ++k) {
        for (r = 0; r < im.h; ++r) {
            for (c = 0; c < w; ++c) {
                float val = 0;
                if (c == w - 1 || im.w == 1) {
                    val = ref_get(&im, im.w - 1, r, k);
                } else {
                    float sx = c * w_scale;
                    int ix = (int)sx;
                    float dx = sx - ix;
                    val = (1 - dx) * ref_get(&im, ix, r, k) + dx * ref_get(&im, ix + 1, r, k);
                }
                ref_set(&part, c, r, k, val);
            }
        }
    }
    for (k = 0; k < im.c; ++k) {
        for (r = 0; r < h; ++r) {
            float sy = r * h_scale;
            int iy = (int)sy;
            float dy = sy - iy;
            for (c = 0; c < w; ++c) {
                float val = (1 - dy) * ref_get(&part, c, iy, k);
                ref_set(&resized, c, r, k, val);
            }
            if (r == h - 1 || im.h == 1) continue;
            for (c = 0; c < w; ++c) {
                float val = dy * ref_get(&part, c, iy + 1, k);
                ref_add(&resized, c, r, k, val);
            }
        }
    }
    fp_image_free(&part);
    return resized;
}

/* ---- tests ------------------------------------------------------------- */

static void test_make_free(void)
{
    fp_image im = {0};
    CHECK_OK(fp_image_make(3, 2, 3, 0.25f, &im));
    CHECK(im.w == 3 && im.h == 2 && im.c == 3 && im.data);
    for (int i = 0; i < 18; i++) CHECK(im.data[i] == 0.25f);
    fp_image_free(&im);
    CHECK(im.data == NULL && im.w == 0);
    fp_image_free(&im); /* twice: no-op */
    fp_image_free(NULL);
    CHECK_ERR(fp_image_make(0, 2, 3, 0, &im), FP_EINVAL);
    CHECK_ERR(fp_image_make(2, -1, 3, 0, &im), FP_EINVAL);
    CHECK_ERR(fp_image_make(2, 2, 0, 0, &im), FP_EINVAL);
    CHECK_ERR(fp_image_make(2, 2, 5, 0, &im), FP_EINVAL);
    CHECK_ERR(fp_image_make(FP_IMAGE_MAX_SIDE + 1, 1, 3, 0, &im), FP_ETOOBIG);
    CHECK_ERR(fp_image_make(FP_IMAGE_MAX_SIDE, FP_IMAGE_MAX_SIDE, 3, 0, &im), FP_ETOOBIG);
    CHECK_ERR(fp_image_make(2, 2, 3, 0, NULL), FP_EINVAL);
    CHECK(im.data == NULL);
}

static void test_resize_matches_darknet(void)
{
    static const int src[][2] = {{1, 1}, {1, 5}, {5, 1}, {2, 2}, {7, 5}, {13, 9}, {16, 16}};
    static const int dst[][2] = {{1, 1}, {1, 4}, {4, 1}, {3, 3}, {7, 5}, {2, 3}, {16, 16},
                                 {29, 17}, {100, 3}, {5, 64}, {416, 416}};
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        for (size_t j = 0; j < sizeof dst / sizeof dst[0]; j++) {
            fp_image im = pattern(src[i][0], src[i][1], 3), got = {0};
            fp_image want = ref_resize(im, dst[j][0], dst[j][1]);
            CHECK_OK(fp_image_resize(&im, dst[j][0], dst[j][1], &got));
            CHECK(got.w == dst[j][0] && got.h == dst[j][1] && got.c == 3);
            size_t n = (size_t)want.w * want.h * want.c, bad = 0;
            for (size_t e = 0; got.data && e < n; e++) bad += got.data[e] != want.data[e];
            CHECK_MSG(bad == 0, "%dx%d -> %dx%d: %zu floats differ", src[i][0], src[i][1],
                      dst[j][0], dst[j][1], bad);
            fp_image_free(&im);
            fp_image_free(&got);
            fp_image_free(&want);
        }
    }
}

static void test_resize_values(void)
{
    /* 2×2 [0 1; 1 0] upscaled to 3×3: bilinear centre 0.5, corners kept. */
    fp_image im = {0}, out = {0};
    CHECK_OK(fp_image_make(2, 2, 1, 0, &im));
    im.data[1] = im.data[2] = 1;
    CHECK_OK(fp_image_resize(&im, 3, 3, &out));
    const float want[9] = {0, 0.5f, 1, 0.5f, 0.5f, 0.5f, 1, 0.5f, 0};
    for (int i = 0; i < 9; i++) CHECK_NEAR(out.data[i], want[i], 1e-6);
    fp_image_free(&out);
    /* 1-pixel targets: darknet takes the last column; we take the first row. */
    CHECK_OK(fp_image_resize(&im, 1, 1, &out));
    CHECK(out.w == 1 && out.h == 1 && out.data[0] == 1);
    fp_image_free(&out);
    /* Same size is an exact copy. */
    fp_image p = pattern(9, 7, 3);
    CHECK_OK(fp_image_resize(&p, 9, 7, &out));
    CHECK(memcmp(out.data, p.data, 9 * 7 * 3 * sizeof(float)) == 0);
    fp_image_free(&out);
    CHECK_ERR(fp_image_resize(&p, 0, 7, &out), FP_EINVAL);
    CHECK_ERR(fp_image_resize(&p, 40000, 7, &out), FP_ETOOBIG);
    CHECK_ERR(fp_image_resize(NULL, 3, 3, &out), FP_EINVAL);
    CHECK_ERR(fp_image_resize(&p, 3, 3, &p), FP_EINVAL);
    CHECK(out.data == NULL);
    fp_image_free(&p);
    fp_image_free(&im);
}

/* Checks one letterbox against darknet's geometry and the reference resize. */
static void check_letterbox(int iw, int ih, int w, int h, int want_nw, int want_nh)
{
    fp_image im = pattern(iw, ih, 3), out = {0};
    CHECK_OK(fp_image_letterbox(&im, w, h, &out));
    CHECK(out.w == w && out.h == h && out.c == 3);
    fp_image sized = ref_resize(im, want_nw, want_nh);
    int dx = (w - want_nw) / 2, dy = (h - want_nh) / 2, bad = 0;
    for (int k = 0; k < 3 && out.data; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int in = x >= dx && x < dx + want_nw && y >= dy && y < dy + want_nh;
                float want = in ? px(&sized, x - dx, y - dy, k) : 0.5f;
                bad += px(&out, x, y, k) != want;
            }
    CHECK_MSG(bad == 0, "letterbox %dx%d into %dx%d: %d floats differ", iw, ih, w, h, bad);
    fp_image_free(&sized);
    fp_image_free(&out);
    fp_image_free(&im);
}

static void test_letterbox(void)
{
    check_letterbox(8, 4, 6, 6, 6, 3);       /* wide: bars top and bottom */
    check_letterbox(4, 8, 6, 6, 3, 6);       /* tall: bars left and right */
    check_letterbox(768, 576, 416, 416, 416, 312); /* dog.jpg into yolo input */
    check_letterbox(5, 5, 16, 16, 16, 16);   /* square: no bars */
    check_letterbox(7, 3, 5, 9, 5, 2);       /* (3*5)/7 = 2, integer division */
    check_letterbox(1000, 1, 4, 4, 4, 1);    /* would be 0 rows: kept at 1 */
    fp_image im = pattern(4, 4, 3), out = {0};
    CHECK_ERR(fp_image_letterbox(&im, 0, 4, &out), FP_EINVAL);
    CHECK_ERR(fp_image_letterbox(&im, 4, 4, NULL), FP_EINVAL);
    fp_image_free(&im);
}

static void test_class_color(void)
{
    float rgb[3];
    fp_image_class_color(0, 80, rgb); /* palette start: magenta */
    CHECK(rgb[0] == 1 && rgb[1] == 0 && rgb[2] == 1);
    fp_image_class_color(1, 80, rgb); /* 123457 % 80 = 17: ratio 1.0625 */
    CHECK_NEAR(rgb[0], 1, 1e-6);
    CHECK_NEAR(rgb[1], 0.0625, 1e-6);
    CHECK_NEAR(rgb[2], 0, 1e-6);
    fp_image_class_color(16, 80, rgb); /* dog: 16*123457 % 80 = 32, ratio 2: yellow */
    CHECK_NEAR(rgb[0], 1, 1e-6);
    CHECK_NEAR(rgb[1], 1, 1e-6);
    CHECK_NEAR(rgb[2], 0, 1e-6);
    for (int c = -3; c < 100; c++) {
        fp_image_class_color(c, 80, rgb);
        CHECK(rgb[0] >= 0 && rgb[0] <= 1 && rgb[1] >= 0 && rgb[1] <= 1 && rgb[2] >= 0 && rgb[2] <= 1);
    }
    fp_image_class_color(3, 0, rgb); /* no classes: white, no division by zero */
    CHECK(rgb[0] == 1 && rgb[1] == 1 && rgb[2] == 1);
    fp_image_class_color(INT_MAX, 1, rgb);
}

/* Saves, loads back and compares; tol 0 means exact. */
static void roundtrip(const char *name, int c, double tol)
{
    fp_image im = pattern(37, 23, c), back = {0};
    if (tol > 0) { /* lossy JPEG: smooth content for a tight bound */
        for (int k = 0; k < c; k++)
            for (int y = 0; y < 23; y++)
                for (int x = 0; x < 37; x++)
                    im.data[(k * 23 + y) * 37 + x] = (float)((x * 2 + y * 3 + k * 40) / 255.0);
    }
    const char *p = tpath(name);
    CHECK_OK(fp_image_save(&im, p));
    CHECK_OK(fp_image_load(p, &back));
    remove(p);
    CHECK(back.w == 37 && back.h == 23 && back.c == 3);
    double worst = 0;
    for (int k = 0; back.data && k < 3; k++)
        for (int y = 0; y < 23; y++)
            for (int x = 0; x < 37; x++) {
                double d = fabs(px(&back, x, y, k) - px(&im, x, y, c == 3 ? k : 0));
                if (d > worst) worst = d;
            }
    CHECK_MSG(worst <= tol, "%s (c=%d): max error %g > %g", name, c, worst, tol);
    fp_image_free(&back);
    fp_image_free(&im);
}

static void test_roundtrip(void)
{
    roundtrip("a.png", 3, 0);
    roundtrip("a.bmp", 3, 0);
    roundtrip("a.ppm", 3, 0);
    roundtrip("g.png", 1, 0); /* grey expands to RGB */
    roundtrip("g.ppm", 1, 0);
    roundtrip("a.jpg", 3, 0.03);
    roundtrip("A.JPEG", 3, 0.03);
    roundtrip("g.jpg", 1, 0.03);

    /* Out-of-range values are clamped, NaN gives 0. */
    fp_image im = {0}, back = {0};
    CHECK_OK(fp_image_make(2, 1, 3, 0, &im));
    for (int k = 0; k < 3; k++) {
        im.data[k * 2] = 7.0f;
        im.data[k * 2 + 1] = k == 0 ? NAN : -1.0f;
    }
    const char *p = tpath("clamp.png");
    CHECK_OK(fp_image_save(&im, p));
    CHECK_OK(fp_image_load(p, &back));
    remove(p);
    CHECK(back.data && back.data[0] == 1 && back.data[1] == 0 && back.data[3] == 0);
    fp_image_free(&back);

    CHECK_ERR(fp_image_save(&im, tpath("x.gif")), FP_EINVAL);
    CHECK_ERR(fp_image_save(&im, tpath("noext")), FP_EINVAL);
    CHECK_ERR(fp_image_save(&im, "/nonexistent-dir/x.png"), FP_EIO);
    fp_image_free(&im);
}

static void test_bad_files(void)
{
    fp_image out = {0};
    static const uint8_t garbage[] = "GIF89a this is not an image we take";
    CHECK_ERR(fp_image_decode(garbage, sizeof garbage, "g", &out), FP_EUNSUPPORTED);
    CHECK(strstr(fp_last_error(), "not a JPEG, PNG, BMP or PPM image") != NULL);
    CHECK_ERR(fp_image_decode(garbage, 0, "empty", &out), FP_ECORRUPT);
    CHECK_ERR(fp_image_decode((const uint8_t *)"P3\n1 1\n255\n0 0 0\n", 17, "a.ppm", &out), FP_EUNSUPPORTED);
    CHECK_ERR(fp_image_decode((const uint8_t *)"\xFF\xD8\xFF", 3, "x.jpg", &out), FP_ECORRUPT);
    CHECK_ERR(fp_image_decode((const uint8_t *)"BM", 2, "x.bmp", &out), FP_ECORRUPT);
    CHECK_ERR(fp_image_decode((const uint8_t *)"P6 4", 4, "x.ppm", &out), FP_ECORRUPT);
    CHECK_ERR(fp_image_decode((const uint8_t *)"P6 1 1 0\n\0\0\0", 11, "x.ppm", &out), FP_ECORRUPT);
    CHECK_ERR(fp_image_load("/nonexistent/dog.jpg", &out), FP_EIO);
    const char *empty = spit("empty.jpg", "", 0);
    CHECK_ERR(fp_image_load(empty, &out), FP_ECORRUPT);
    remove(empty);
    CHECK(out.data == NULL);

    /* Truncations of real files: every prefix is refused, never decoded. */
    fp_image im = pattern(40, 30, 3);
    static const char *names[] = {"t.jpg", "t.png", "t.bmp", "t.ppm"};
    for (int f = 0; f < 4; f++) {
        size_t len = 0;
        uint8_t *d = encode(&im, names[f], &len);
        CHECK(d != NULL);
        if (!d) continue;
        CHECK_OK(fp_image_decode(d, len, names[f], &out));
        fp_image_free(&out);
        size_t cuts[] = {len - 1, len - 2, len * 3 / 4, len / 2, 20, 1};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            fp_status st = fp_image_decode(d, cuts[c], names[f], &out);
            CHECK_MSG(st == FP_ECORRUPT || (cuts[c] == 1 && st == FP_EUNSUPPORTED),
                      "%s cut to %zu of %zu bytes: %s (%s)", names[f], cuts[c], len,
                      fp_status_name(st), fp_last_error());
            fp_image_free(&out);
        }
        /* Corrupt entropy-coded data: no crash; OK or an error. */
        for (size_t i = len / 3; i < len - 2; i += 7) d[i] ^= 0x5A;
        if (fp_image_decode(d, len, names[f], &out) == FP_OK) CHECK(out.w == 40 && out.h == 30);
        fp_image_free(&out);
        fpi_free(d);
    }
    fp_image_free(&im);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static uint32_t crc32_png(const uint8_t *d, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void test_too_big(void)
{
    fp_image out = {0};
    /* PNG: signature + IHDR claiming 100000×100000 RGB8, valid CRC. */
    uint8_t png[8 + 25] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    put_be32(png + 8, 13);
    memcpy(png + 12, "IHDR", 4);
    put_be32(png + 16, 100000);
    put_be32(png + 20, 100000);
    png[24] = 8; /* bit depth */
    png[25] = 2; /* RGB */
    put_be32(png + 29, crc32_png(png + 12, 17));
    const char *p = spit("huge.png", png, sizeof png);
    CHECK_ERR(fp_image_load(p, &out), FP_ETOOBIG);
    CHECK(strstr(fp_last_error(), "100000x100000") && strstr(fp_last_error(), "huge.png"));
    remove(p);

    /* BMP: BITMAPINFOHEADER claiming 100000×100000 24-bit, no pixels. */
    uint8_t bmp[54] = {'B', 'M'};
    put_le32(bmp + 2, 54);
    put_le32(bmp + 10, 54);
    put_le32(bmp + 14, 40);
    put_le32(bmp + 18, 100000);
    put_le32(bmp + 22, 100000);
    bmp[26] = 1;
    bmp[28] = 24;
    CHECK_ERR(fp_image_decode(bmp, sizeof bmp, "huge.bmp", &out), FP_ETOOBIG);
    CHECK(strstr(fp_last_error(), "100000x100000") && strstr(fp_last_error(), "huge.bmp"));
    put_le32(bmp + 18, 40000); /* one side over, area under */
    put_le32(bmp + 22, (uint32_t)-2); /* top-down */
    CHECK_ERR(fp_image_decode(bmp, sizeof bmp, "wide.bmp", &out), FP_ETOOBIG);
    put_le32(bmp + 18, 4);
    put_le32(bmp + 22, 4);
    CHECK_ERR(fp_image_decode(bmp, sizeof bmp, "short.bmp", &out), FP_ECORRUPT); /* no pixels */
    bmp[30] = 1; /* RLE8 */
    CHECK_ERR(fp_image_decode(bmp, sizeof bmp, "rle.bmp", &out), FP_EUNSUPPORTED);

    const char *ppm = "P6\n# big\n100000 100000\n255\n";
    CHECK_ERR(fp_image_decode((const uint8_t *)ppm, strlen(ppm), "huge.ppm", &out), FP_ETOOBIG);
    const char *ppm2 = "P5 99999999999 1 255\n";
    CHECK_ERR(fp_image_decode((const uint8_t *)ppm2, strlen(ppm2), "long.ppm", &out), FP_ECORRUPT);

    /* JPEG: patch the SOF of a real file to 65000×65000. */
    fp_image im = pattern(16, 16, 3);
    size_t len = 0;
    uint8_t *d = encode(&im, "sof.jpg", &len);
    CHECK(d != NULL);
    int patched = 0;
    for (size_t i = 2; d && i + 9 < len; i++) {
        if (d[i] == 0xFF && (d[i + 1] == 0xC0 || d[i + 1] == 0xC2)) {
            d[i + 5] = 0xFD; d[i + 6] = 0xE8; /* height 65000 */
            d[i + 7] = 0xFD; d[i + 8] = 0xE8; /* width 65000 */
            patched = 1;
            break;
        }
    }
    CHECK(patched);
    if (d) CHECK_ERR(fp_image_decode(d, len, "huge.jpg", &out), FP_ETOOBIG);
    CHECK(strstr(fp_last_error(), "65000x65000") && strstr(fp_last_error(), "huge.jpg"));
    fpi_free(d);
    fp_image_free(&im);
    CHECK(out.data == NULL);
}

/* Inserts an APP1 EXIF segment with the given orientation after SOI. */
static uint8_t *with_orientation(const uint8_t *jpg, size_t len, int o, int big_endian, size_t *out_len)
{
    uint8_t app1[2 + 2 + 6 + 8 + 2 + 12 + 4] = {0xFF, 0xE1};
    size_t n = sizeof app1;
    app1[2] = (uint8_t)((n - 2) >> 8);
    app1[3] = (uint8_t)(n - 2);
    memcpy(app1 + 4, "Exif\0\0", 6);
    uint8_t *t = app1 + 10;
    if (big_endian) {
        memcpy(t, "MM\0\x2a\0\0\0\x08", 8);
        memcpy(t + 8, "\0\x01\x01\x12\0\x03\0\0\0\x01", 10);
        t[18] = 0; t[19] = (uint8_t)o;
    } else {
        memcpy(t, "II\x2a\0\x08\0\0\0", 8);
        memcpy(t + 8, "\x01\0\x12\x01\x03\0\x01\0\0\0", 10);
        t[18] = (uint8_t)o; t[19] = 0;
    }
    uint8_t *d = malloc(len + n);
    if (!d) return NULL;
    memcpy(d, jpg, 2);
    memcpy(d + 2, app1, n);
    memcpy(d + 2 + n, jpg + 2, len - 2);
    *out_len = len + n;
    return d;
}

static void test_exif_orientation(void)
{
    fp_image im = pattern(24, 16, 3), plain = {0};
    size_t len = 0;
    uint8_t *jpg = encode(&im, "exif.jpg", &len);
    CHECK(jpg != NULL);
    if (!jpg) return;
    CHECK_OK(fp_image_decode(jpg, len, "plain", &plain));
    const int w = 24, h = 16;
    for (int o = 1; o <= 9; o++) {
        size_t n = 0;
        uint8_t *d = with_orientation(jpg, len, o, o & 1, &n);
        fp_image got = {0};
        CHECK_OK(fp_image_decode(d, n, "exif", &got));
        int swap = o >= 5 && o <= 8;
        CHECK(got.w == (swap ? h : w) && got.h == (swap ? w : h));
        int bad = 0;
        for (int k = 0; got.data && k < 3; k++)
            for (int y = 0; y < got.h; y++)
                for (int x = 0; x < got.w; x++) {
                    int sx = x, sy = y; /* source pixel shown at (x, y), OpenCV's ExifTransform */
                    switch (o) {
                    case 2: sx = w - 1 - x; break;
                    case 3: sx = w - 1 - x; sy = h - 1 - y; break;
                    case 4: sy = h - 1 - y; break;
                    case 5: sx = y; sy = x; break;
                    case 6: sx = y; sy = h - 1 - x; break;
                    case 7: sx = w - 1 - y; sy = h - 1 - x; break;
                    case 8: sx = w - 1 - y; sy = x; break;
                    default: break;
                    }
                    bad += px(&got, x, y, k) != px(&plain, sx, sy, k);
                }
        CHECK_MSG(bad == 0, "orientation %d: %d floats differ", o, bad);
        fp_image_free(&got);
        free(d);
    }
    fp_image_free(&plain);
    fpi_free(jpg);
    fp_image_free(&im);
}

/* Encodes a JPEG with libjpeg (quality 100) whose every row is `row`
 * (w pixels of `comps` components in colour space cs). */
static uint8_t *libjpeg_encode(int w, int h, int comps, J_COLOR_SPACE cs, int progressive, const uint8_t *row,
                               size_t *len)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    unsigned char *buf = NULL;
    unsigned long n = 0;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &buf, &n);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = cs;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 100, TRUE);
    if (progressive) jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW r = (JSAMPROW)row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    *len = n;
    return buf;
}

/* A constant 16×8 CMYK JPEG. */
static uint8_t *cmyk_jpeg(const uint8_t cmyk[4], size_t *len)
{
    uint8_t row[16 * 4];
    for (int i = 0; i < 16; i++) memcpy(row + 4 * i, cmyk, 4);
    return libjpeg_encode(16, 8, 4, JCS_CMYK, 0, row, len);
}

static void test_jpeg_cmyk(void)
{
    const uint8_t cmyk[4] = {200, 100, 30, 150};
    size_t len = 0;
    uint8_t *d = cmyk_jpeg(cmyk, &len);
    fp_image out = {0};
    CHECK_OK(fp_image_decode(d, len, "cmyk.jpg", &out));
    CHECK(out.w == 16 && out.h == 8 && out.c == 3);
    for (int k = 0; out.data && k < 3; k++) { /* OpenCV: v = K - (255-v)*K/256 */
        int want = cmyk[3] - ((255 - cmyk[k]) * cmyk[3] >> 8);
        CHECK_NEAR(px(&out, 5, 3, k) * 255, want, 2.0 / 255);
    }
    fp_image_free(&out);
    free(d);
}

/* Formats where OpenCV's imread (darknet's loader) has its own rules. */
static void test_opencv_compat(void)
{
    fp_image out = {0};
    /* PNM samples are not rescaled by maxval; 16-bit keeps the high byte. */
    CHECK_OK(fp_image_decode((const uint8_t *)"P5 2 1 15\n\x0f\x07", 12, "m15.pgm", &out));
    CHECK(out.data && out.data[0] == 15 / 255.0f && out.data[1] == 7 / 255.0f && out.data[2] == 15 / 255.0f);
    fp_image_free(&out);
    CHECK_OK(fp_image_decode((const uint8_t *)"P6 1 1 1000\n\x03\xe8\x01\x00\x00\xff", 18, "m.ppm", &out));
    CHECK(out.data && out.data[0] == 3 / 255.0f && out.data[1] == 1 / 255.0f && out.data[2] == 0);
    fp_image_free(&out);

    /* 16-bit BMP, 5-5-5, bottom-up: channels widen by a shift (0x1F -> 248). */
    uint8_t bmp[54 + 8] = {'B', 'M'};
    put_le32(bmp + 2, sizeof bmp);
    put_le32(bmp + 10, 54);
    put_le32(bmp + 14, 40);
    put_le32(bmp + 18, 2);
    put_le32(bmp + 22, 2);
    bmp[26] = 1;
    bmp[28] = 16;
    bmp[54] = 0x1F; /* bottom row: blue, then red */
    bmp[56] = 0x00; bmp[57] = 0x7C;
    bmp[58] = 0xE0; bmp[59] = 0x03; /* top row: green, then white */
    bmp[60] = 0xFF; bmp[61] = 0x7F;
    CHECK_OK(fp_image_decode(bmp, sizeof bmp, "555.bmp", &out));
    if (out.data) {
        const float v = 248 / 255.0f;
        CHECK(px(&out, 0, 0, 0) == 0 && px(&out, 0, 0, 1) == v && px(&out, 0, 0, 2) == 0);
        CHECK(px(&out, 1, 0, 0) == v && px(&out, 1, 0, 1) == v && px(&out, 1, 0, 2) == v);
        CHECK(px(&out, 0, 1, 0) == 0 && px(&out, 0, 1, 2) == v);
        CHECK(px(&out, 1, 1, 0) == v && px(&out, 1, 1, 2) == 0);
    }
    fp_image_free(&out);

    /* PNG eXIf orientation is applied (here after IDAT: rotate 90 cw). */
    fp_image im = pattern(6, 4, 3), plain = {0};
    size_t len = 0;
    uint8_t *png = encode(&im, "exif.png", &len);
    CHECK(png && len > 12 && !memcmp(png + len - 8, "IEND", 4));
    if (png) {
        static const uint8_t tiff[26] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 1, 0x12, 0, 3,
                                         0,   0,   0, 1,  0, 6, 0, 0, 0, 0, 0, 0};
        uint8_t *d = malloc(len + 12 + sizeof tiff);
        memcpy(d, png, len - 12);
        uint8_t *c = d + len - 12;
        put_be32(c, sizeof tiff);
        memcpy(c + 4, "eXIf", 4);
        memcpy(c + 8, tiff, sizeof tiff);
        put_be32(c + 8 + sizeof tiff, crc32_png(c + 4, 4 + sizeof tiff));
        memcpy(c + 12 + sizeof tiff, png + len - 12, 12);
        CHECK_OK(fp_image_decode(png, len, "plain.png", &plain));
        CHECK_OK(fp_image_decode(d, len + 12 + sizeof tiff, "exif.png", &out));
        CHECK(out.w == 4 && out.h == 6);
        for (int y = 0; out.data && plain.data && y < 6; y++)
            for (int x = 0; x < 4; x++) CHECK(px(&out, x, y, 1) == px(&plain, y, 3 - x, 1));
        fp_image_free(&out);
        fp_image_free(&plain);
        free(d);
    }
    fpi_free(png);
    fp_image_free(&im);
}

/* Golden values of darknet's load_image_color() (OpenCV 4.6 imread) on
 * Debian's dog.jpg: checked when the file is there. */
/* Sum of all pixel bytes of dog.jpg as darknet's load_image_color() gives
 * them (measured with Debian's libdarknet + OpenCV 4.6; fogpipe matched it
 * float for float). */
#define FPT_DOG_SUM 169954419.0
static void test_dog_jpg(void)
{
    const char *path = "/usr/share/darknet/data/dog.jpg";
    if (access(path, R_OK) != 0) {
        printf("  (skipped: %s not found)\n", path);
        return;
    }
    fp_image im = {0};
    CHECK_OK(fp_image_load(path, &im));
    CHECK(im.w == 768 && im.h == 576 && im.c == 3);
    if (!im.data) return;
    double sum = 0;
    int exact = 1;
    for (size_t i = 0; i < (size_t)768 * 576 * 3; i++) {
        int b = (int)(im.data[i] * 255.0f + 0.5f);
        exact &= im.data[i] == (float)(b / 255.0); /* every value is byte/255 */
        sum += b;
    }
    CHECK(exact);
    CHECK_MSG(sum == FPT_DOG_SUM, "dog.jpg byte sum %.0f", sum);
    /* A few pixels, as bytes (darknet: load_image_color). */
    CHECK(px(&im, 100, 200, 0) == 201 / 255.0f && px(&im, 100, 200, 1) == 196 / 255.0f &&
          px(&im, 100, 200, 2) == 200 / 255.0f);
    fp_image_free(&im);
}

/* 1 if a and b decode to the same pixels (same size, float for float). */
static int same_pixels(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    fp_image x = {0}, y = {0};
    int same = fp_image_decode(a, na, "a", &x) == FP_OK && fp_image_decode(b, nb, "b", &y) == FP_OK &&
               x.w == y.w && x.h == y.h && x.c == y.c &&
               !memcmp(x.data, y.data, (size_t)x.w * (size_t)x.h * (size_t)x.c * sizeof(float));
    fp_image_free(&x);
    fp_image_free(&y);
    return same;
}

/* A small progressive grey JPEG. */
static uint8_t *progressive_jpeg(size_t *len)
{
    uint8_t row[32];
    for (int i = 0; i < 32; i++) row[i] = (uint8_t)(i * 7);
    return libjpeg_encode(32, 16, 1, JCS_GRAYSCALE, 1, row, len);
}

/* Lossless Huffman re-encoding: the same pixels, EXIF kept, smaller where
 * the file used the standard tables; what it does not handle is refused,
 * broken files are errors. */
static void test_jpeg_optimize(void)
{
    fp_image im = pattern(40, 24, 3);
    size_t len = 0, n = 0, on = 0;
    uint8_t *jpg = encode(&im, "opt.jpg", &len), *o = NULL;
    CHECK(jpg != NULL);
    uint8_t *ex = jpg ? with_orientation(jpg, len, 6, 0, &n) : NULL;
    if (ex) {
        CHECK_OK(fp_image_jpeg_optimize(ex, n, "exif.jpg", &o, &on));
        CHECK(o && on > 0 && same_pixels(ex, n, o, on));
        fp_image got = {0};
        CHECK_OK(fp_image_decode(o, on, "opt", &got));
        CHECK(got.w == 24 && got.h == 40); /* orientation 6 survived */
        fp_image_free(&got);
        /* Every prefix and single-byte damage: an error or a valid file, never a crash. */
        for (size_t k = 0; k < n; k += 13) {
            uint8_t *t = NULL;
            size_t tn = 0;
            CHECK(fp_image_jpeg_optimize(ex, k, "cut.jpg", &t, &tn) != FP_OK && !t && !tn);
        }
        uint8_t *bad = malloc(n);
        for (size_t k = 2; bad && k < n; k += 17) {
            memcpy(bad, ex, n);
            bad[k] ^= 0x5a;
            uint8_t *t = NULL;
            size_t tn = 0;
            if (fp_image_jpeg_optimize(bad, n, "flip.jpg", &t, &tn) == FP_OK) CHECK(t && tn);
            free(t);
        }
        free(bad);
        free(o);
        free(ex);
    }
    fpi_free(jpg);
    fp_image_free(&im);
    o = NULL;
    /* Refused: not a JPEG, CMYK, progressive. */
    CHECK_ERR(fp_image_jpeg_optimize((const uint8_t *)"\x89PNG\r\n\x1a\n", 8, "x.png", &o, &on), FP_EUNSUPPORTED);
    const uint8_t cmyk[4] = {1, 2, 3, 4};
    uint8_t *c = cmyk_jpeg(cmyk, &len);
    CHECK_ERR(fp_image_jpeg_optimize(c, len, "cmyk.jpg", &o, &on), FP_EUNSUPPORTED);
    free(c);
    c = progressive_jpeg(&len);
    CHECK_ERR(fp_image_jpeg_optimize(c, len, "prog.jpg", &o, &on), FP_EUNSUPPORTED);
    CHECK(strstr(fp_last_error(), "only sequential") != NULL);
    free(c);
    CHECK(o == NULL);
    /* Debian's darknet sample photos, when there: same pixels, and dog.jpg
     * (standard tables) 6% smaller. */
    static const char *const photos[] = {"dog", "eagle", "giraffe", "horses", "kite", "person", "scream"};
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/usr/share/darknet/data/%s.jpg", photos[i]);
        uint8_t *d = slurp(path, &len);
        if (!d) {
            printf("  (skipped: %s not found)\n", path);
            continue;
        }
        CHECK_OK(fp_image_jpeg_optimize(d, len, path, &o, &on));
        CHECK_MSG(o && same_pixels(d, len, o, on), "%s: pixels differ after re-encoding", path);
        if (i == 0) CHECK_MSG(on < len * 95 / 100, "dog.jpg: %zu -> %zu bytes", len, on);
        free(o);
        o = NULL;
        fpi_free(d);
    }
}

static void test_draw_clipped(void)
{
    const float red[3] = {1, 0, 0};
    fp_image im = {0};
    CHECK_OK(fp_image_make(10, 10, 3, 0, &im));
    fp_image_draw_box(&im, -5, -5, 5, 5, 2, red);
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 10; x++) {
            int on = (x <= 5 && y <= 5) && (x >= 4 || y >= 4);
            CHECK_MSG(px(&im, x, y, 0) == (on ? 1.0f : 0.0f), "pixel %d,%d", x, y);
            CHECK(px(&im, x, y, 1) == 0 && px(&im, x, y, 2) == 0);
        }
    /* Extremes: nothing may be written outside; ASan watches. */
    fp_image_draw_box(&im, INT_MIN, INT_MIN, INT_MAX, INT_MAX, INT_MAX, red);
    fp_image_draw_box(&im, 8, 8, 30, 30, 100, red);
    fp_image_draw_box(&im, 20, 20, 30, 30, 1, red);
    fp_image_draw_box(&im, 3, 3, 3, 3, 0, red);
    fp_image_draw_box(&im, 0, 0, 9, 9, -4, red);
    fp_image_draw_box(NULL, 0, 0, 9, 9, 1, red);
    fp_image_free(&im);

    /* A whole-image box leaves the interior alone. */
    CHECK_OK(fp_image_make(10, 10, 3, 0, &im));
    fp_image_draw_box(&im, 0, 0, 9, 9, 3, red);
    CHECK(px(&im, 2, 2, 0) == 1 && px(&im, 3, 3, 0) == 0 && px(&im, 6, 6, 0) == 0 && px(&im, 7, 7, 0) == 1);
    fp_image_free(&im);
}

static void test_draw_label(void)
{
    const float bg[3] = {1, 1, 0};
    fp_image im = {0};
    CHECK_OK(fp_image_make(80, 40, 3, 0.5f, &im));
    fp_image_draw_label(&im, 4, 5, "dog 0.98", 22, bg);
    /* Everything changed lies in the label box; inside there is background
     * (yellow) and text (black), and the box is about 22 pixels tall. */
    int ink = 0, back = 0, minx = 99, maxx = -1, miny = 99, maxy = -1;
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 80; x++) {
            float r = px(&im, x, y, 0), g = px(&im, x, y, 1), b = px(&im, x, y, 2);
            if (r == 0.5f && g == 0.5f && b == 0.5f) continue;
            if (x < minx) minx = x;
            if (x > maxx) maxx = x;
            if (y < miny) miny = y;
            if (y > maxy) maxy = y;
            if (r == 0 && g == 0 && b == 0) ink++;
            else if (r == 1 && g == 1 && b == 0) back++;
            else CHECK_MSG(0, "unexpected colour at %d,%d", x, y);
        }
    CHECK(minx == 4 && miny == 5);
    CHECK_MSG(maxy - miny + 1 == 22, "label height %d", maxy - miny + 1);
    CHECK(maxx > 40);
    CHECK(ink > 30 && back > ink);
    CHECK(px(&im, 5, 6, 0) == 1); /* padding corner is background */
    /* Clipped everywhere, odd characters, multi-line, huge sizes: no crash. */
    fp_image_draw_label(&im, -30, -10, "person 0.5", 30, bg);
    fp_image_draw_label(&im, 70, 35, "truck\n\xff\x01\x7f~", 16, bg);
    fp_image_draw_label(&im, INT_MAX, INT_MAX, "x", INT_MAX, bg);
    fp_image_draw_label(&im, INT_MIN, INT_MIN, "x", INT_MAX, bg);
    fp_image_draw_label(&im, 0, 0, "", 10, bg);
    fp_image_draw_label(&im, 0, 0, NULL, 10, bg);
    fp_image_draw_label(&im, 0, 0, "x", 0, bg);
    fp_image_free(&im);

    /* Grey images: drawing touches the one channel only. */
    CHECK_OK(fp_image_make(20, 20, 1, 0, &im));
    fp_image_draw_label(&im, 1, 1, "ab", 12, bg);
    fp_image_draw_box(&im, 0, 0, 19, 19, 1, bg);
    CHECK(px(&im, 0, 0, 0) == 1);
    fp_image_free(&im);
}

/* Every allocation fails once in turn: each call ends in FP_OK or
 * FP_ENOMEM and leaks nothing (LeakSanitizer in the asan build). */
static void test_alloc_failures(void)
{
    fp_image im = pattern(21, 13, 3);
    size_t jlen = 0, plen = 0;
    uint8_t *jpg = encode(&im, "oom.jpg", &jlen), *png = encode(&im, "oom.png", &plen);
    const char *path = spit("oom.ppm", "P6 2 1 255\n\1\2\3\4\5\6", 17);
    CHECK(jpg && png);
    for (int op = 0; jpg && png && op < 6; op++) {
        int ok = 0;
        for (long i = 0; i < 20 && !ok; i++) {
            fp_image out = {0};
            fpi_alloc_fail_after(i);
            fp_status st;
            switch (op) {
            case 0: st = fp_image_decode(jpg, jlen, "oom.jpg", &out); break;
            case 1: st = fp_image_decode(png, plen, "oom.png", &out); break;
            case 2: st = fp_image_resize(&im, 50, 30, &out); break;
            case 3: st = fp_image_letterbox(&im, 32, 32, &out); break;
            case 4: st = fp_image_pad_square(&im, 32, &out); break;
            default: st = fp_image_load(path, &out); break;
            }
            fpi_alloc_fail_after(-1);
            CHECK_MSG(st == FP_OK || st == FP_ENOMEM, "op %d, failing allocation %ld: %s", op, i,
                      fp_status_name(st));
            if (st != FP_OK) CHECK(out.data == NULL);
            ok = st == FP_OK;
            fp_image_free(&out);
        }
        CHECK_MSG(ok, "op %d never succeeded", op);
    }
    remove(path);
    fpi_free(jpg);
    fpi_free(png);
    fp_image_free(&im);
}

TEST_LIST = {
    {"make_free", test_make_free},
    {"resize_matches_darknet", test_resize_matches_darknet},
    {"resize_values", test_resize_values},
    {"letterbox", test_letterbox},
    {"class_color", test_class_color},
    {"roundtrip", test_roundtrip},
    {"bad_files", test_bad_files},
    {"too_big", test_too_big},
    {"exif_orientation", test_exif_orientation},
    {"jpeg_cmyk", test_jpeg_cmyk},
    {"opencv_compat", test_opencv_compat},
    {"dog_jpg", test_dog_jpg},
    {"jpeg_optimize", test_jpeg_optimize},
    {"draw_clipped", test_draw_clipped},
    {"draw_label", test_draw_label},
    {"alloc_failures", test_alloc_failures},
    {NULL, NULL},
};
