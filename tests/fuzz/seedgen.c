/* seedgen.c — writes the binary seed inputs of tests/fuzz/corpus/ with the
 * library's own encoders (so they are valid by construction): frames
 * (fp_fmap_encode + fp_frame_encode, every codec), small images
 * (fp_image_save: PNG, JPEG, BMP, PPM) and a weights file for the fixed cfg
 * of fpz_weights. Not built by CMake; tests/fuzz/make_seeds.sh compiles it
 * against a build's libfogpipe_core.a and runs it once:
 *     tests/fuzz/make_seeds.sh [BUILD_DIR]        (default build/)       */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fogpipe/fmap.h"
#include "fogpipe/frame.h"
#include "fogpipe/image.h"
#include "fogpipe/net.h"

static const char *out_dir;

static void put(const char *target, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        perror(path);
        exit(1);
    }
}

static void die(const char *what)
{
    fprintf(stderr, "seedgen: %s: %s\n", what, fp_last_error());
    exit(1);
}

/* mode byte (0: as is, 1: fix checksums) followed by the encoded frame. */
static void put_frame(const char *name, const fp_frame *f, int mode)
{
    size_t n = fp_frame_encoded_size(f), used = 0;
    uint8_t *b = malloc(n + 1);
    b[0] = (uint8_t)mode;
    if (fp_frame_encode(f, b + 1, n, &used)) die(name);
    put("frame", name, b, used + 1);
    free(b);
}

static void frames(void)
{
    static const char *codecs[] = {"none", "fp16", "int8", "int8c", "none+lz4", "fp16+zstd", "int8+lz4",
                                   "int8c+zstd"};
    float x[2 * 3 * 4];
    for (int i = 0; i < 24; i++) x[i] = (float)((i * 7) % 11) * 0.25f - 1.0f;
    uint32_t dims[3] = {2, 3, 4};
    for (size_t k = 0; k < sizeof codecs / sizeof *codecs; k++) {
        fp_fmap_codec c;
        if (fp_fmap_codec_parse(codecs[k], &c)) die(codecs[k]);
        fp_buffer b1 = {0}, b2 = {0};
        fp_frame f;
        memset(&f, 0, sizeof f);
        f.kind = FP_FRAME_FEATURES;
        f.id = 7 + k;
        f.n_tensors = 2;
        if (fp_fmap_encode(c, 3, x, dims, 3, &b1, &f.tensors[0])) die(codecs[k]);
        if (fp_fmap_encode(c, 9, x + 4, (uint32_t[]){20}, 1, &b2, &f.tensors[1])) die(codecs[k]);
        f.image_w = 640;
        f.image_h = 480;
        char name[64];
        snprintf(name, sizeof name, "features_%s", codecs[k]);
        for (char *p = name; *p; p++)
            if (*p == '+') *p = '_';
        put_frame(name, &f, (int)(k & 1));
        fp_buffer_free(&b1);
        fp_buffer_free(&b2);
    }
    /* an image frame and a result frame: one rank-1 U8 tensor each */
    static const char json[] = "{\"detections\":[]}";
    static const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xd9};
    fp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = FP_FRAME_RESULT;
    f.id = 1;
    f.n_tensors = 1;
    f.tensors[0] = (fp_frame_tensor){-1, FP_DTYPE_U8, FP_COMPRESS_NONE, 1, {sizeof json - 1, 1, 1, 1}, 0,
                                     sizeof json - 1, (const uint8_t *)json, sizeof json - 1};
    put_frame("result", &f, 0);
    f.kind = FP_FRAME_IMAGE;
    f.tensors[0] = (fp_frame_tensor){-1, FP_DTYPE_U8, FP_COMPRESS_NONE, 1, {4, 1, 1, 1}, 0, 4, jpg, 4};
    put_frame("image", &f, 1);
}

static void images(void)
{
    static const struct { const char *name; int w, h, c; } im[] = {
        {"rgb_8x6.png", 8, 6, 3}, {"grey_5x7.png", 5, 7, 1}, {"rgb_16x16.jpg", 16, 16, 3},
        {"grey_9x4.jpg", 9, 4, 1}, {"rgb_7x5.bmp", 7, 5, 3},   {"rgb_6x3.ppm", 6, 3, 3},
        {"grey_4x4.ppm", 4, 4, 1},
    };
    char path[1024];
    for (size_t k = 0; k < sizeof im / sizeof *im; k++) {
        fp_image a;
        if (fp_image_make(im[k].w, im[k].h, im[k].c, 0, &a)) die("fp_image_make");
        size_t n = (size_t)im[k].w * im[k].h * im[k].c;
        for (size_t i = 0; i < n; i++) a.data[i] = (float)((i * 37) % 256) / 255.0f;
        snprintf(path, sizeof path, "%s/image/%s", out_dir, im[k].name);
        if (fp_image_save(&a, path)) die(im[k].name);
        fp_image_free(&a);
    }
}

/* Must stay the same as fpz_weights_cfg in targets.c. */
#include "weights_cfg.h"

static void weights(void)
{
    fp_net *net;
    char path[1024];
    if (fp_net_parse_cfg(fpz_weights_cfg, "w.cfg", &net)) die("weights cfg");
    if (fp_net_init_weights_random(net, 1)) die("random weights");
    snprintf(path, sizeof path, "%s/weights/valid.weights", out_dir);
    if (fp_net_save_weights(net, path)) die("save weights");
    /* stage weights blobs of two ranges, each after the byte that picks it
     * (fpz_stagew: low nibble the first layer, high nibble how many more) */
    static const struct { int first, last; } ranges[] = {{0, 2}, {3, 5}};
    for (int r = 0; r < 2; r++) {
        void *blob;
        size_t len;
        if (fp_net_stage_weights(net, ranges[r].first, ranges[r].last, &blob, &len)) die("stage weights");
        snprintf(path, sizeof path, "%s/stagew/layers-%d-%d.bin", out_dir, ranges[r].first, ranges[r].last);
        FILE *f = fopen(path, "wb");
        unsigned char sel = (unsigned char)(ranges[r].first | (ranges[r].last - ranges[r].first) << 4);
        if (!f || fwrite(&sel, 1, 1, f) != 1 || fwrite(blob, 1, len, f) != len || fclose(f)) die(path);
        free(blob);
    }
    fp_net_destroy(net);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seedgen CORPUS_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    frames();
    images();
    weights();
    return 0;
}
