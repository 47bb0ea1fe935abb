/*
 * test_tfjs.c — the TF.js weights-manifest reader and the face detector
 * built from it, without the real model (tests/facedet_reference.sh compares
 * with face-api itself):
 *   - every storage (float32, float16, uint8, uint16), shards split across
 *     files and groups, decoded to the expected floats;
 *   - a corpus of malformed manifests and shards, each refused with the
 *     right status and a message naming the problem;
 *   - a synthetic tiny face detector (random weights, small channels) run
 *     through fogpipe and through a plain NHWC implementation of face-api's
 *     forward pass written here (mean subtraction, valid 3x3 conv, TF 'same'
 *     max pools, separable convs, 1x1 head), output by output;
 *   - the graph's shapes for input sizes 128..608, bad sizes, wrong tensors;
 *   - fp_image_pad_square against TF's resize written plainly (in float);
 *   - fp_detect_run (rows prepared as the first layer reads them) against
 *     fp_detect_prepare_input + fp_net_run, bit for bit;
 *   - an allocation-failure sweep over fp_net_load_tfjs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "engine/fast/fast.h"
#include "engine/net_impl.h"
#include "fogpipe/detect.h"
#include "fogpipe/image.h"
#include "fogpipe/net.h"
#include "model/tfjs.h"
#include "test.h"

/* ---- helpers ---------------------------------------------------------- */

static char tmpdir[256];

static void cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", tmpdir);
}

/* A fresh temporary folder per process, removed at exit. */
static const char *dir(void)
{
    if (!tmpdir[0]) {
        atexit(cleanup);
        snprintf(tmpdir, sizeof tmpdir, "%s/test_tfjs.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return tmpdir;
}

/* dir()/name */
static const char *at(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir(), name);
    return buf[k];
}

static void write_file(const char *name, const void *data, size_t n)
{
    FILE *f = fopen(at(name), "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n)) {
        perror(name);
        exit(1);
    }
    fclose(f);
}

static void write_text(const char *name, const char *text) { write_file(name, text, strlen(text)); }

/* Loads manifest `name` expecting `want`; on failure the message must
 * contain `needle`. */
static void expect_load(const char *name, fp_status want, const char *needle)
{
    fpi_tfjs m;
    fp_status st = fpi_tfjs_load(at(name), &m);
    CHECK_MSG(st == want, "%s: got %s (%s), expected %s", name, fp_status_name(st), fp_last_error(),
              fp_status_name(want));
    if (st == FP_OK) fpi_tfjs_free(&m);
    else if (needle)
        CHECK_MSG(strstr(fp_last_error(), needle) != NULL, "%s: message \"%s\" lacks \"%s\"", name,
                  fp_last_error(), needle);
    CHECK(m.n == 0 && m.tensors == NULL && m.values == NULL);
}

static void put_f32(unsigned char *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(u >> (8 * i));
}

/* ---- storage formats -------------------------------------------------- */

static void test_storage(void)
{
    /* group 0: a (float32 [2]) | h (float16 [4]) | q (uint8 [3]) split over two shards;
     * group 1: w (uint16 [2, 1]) */
    unsigned char g0[8 + 8 + 3], g1[4];
    put_f32(g0, 1.5f);
    put_f32(g0 + 4, -2.25f);
    const uint16_t halves[4] = {0x3C00, 0xC000, 0x7BFF, 0x0001}; /* 1, -2, 65504, 2^-24 */
    for (int i = 0; i < 4; i++) {
        g0[8 + 2 * i] = (unsigned char)(halves[i] & 0xff);
        g0[8 + 2 * i + 1] = (unsigned char)(halves[i] >> 8);
    }
    g0[16] = 0;
    g0[17] = 1;
    g0[18] = 255;
    g1[0] = 0x34;
    g1[1] = 0x12; /* 0x1234 */
    g1[2] = 0xff;
    g1[3] = 0xff;
    write_file("s0a.bin", g0, 10); /* splits inside h */
    write_file("s0b.bin", g0 + 10, sizeof g0 - 10);
    write_file("s1.bin", g1, sizeof g1);
    write_text("storage.json",
               "[{\"paths\": [\"s0a.bin\", \"s0b.bin\"], \"weights\": [\n"
               " {\"name\": \"a\", \"shape\": [2], \"dtype\": \"float32\"},\n"
               " {\"name\": \"h\", \"shape\": [2, 2], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"float16\"}},\n"
               " {\"name\": \"q\", \"shape\": [3], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"uint8\", \"scale\": 0.5, \"min\": -1}}]},\n"
               " {\"paths\": [\"s1.bin\"], \"weights\": [\n"
               " {\"name\": \"w\", \"shape\": [2, 1], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"uint16\", \"scale\": 0.001, \"min\": 0.25}, \"extra\": 1}]}]");
    fpi_tfjs m;
    CHECK_OK(fpi_tfjs_load(at("storage.json"), &m));
    if (m.n != 4) {
        CHECK(m.n == 4);
        fpi_tfjs_free(&m);
        return;
    }
    fpi_tfjs_tensor *a = fpi_tfjs_find(&m, "a"), *h = fpi_tfjs_find(&m, "h"), *q = fpi_tfjs_find(&m, "q"),
                    *w = fpi_tfjs_find(&m, "w");
    CHECK(a && h && q && w && !fpi_tfjs_find(&m, "nope"));
    if (!(a && h && q && w)) {
        fpi_tfjs_free(&m);
        return;
    }
    CHECK(a->count == 2 && a->data[0] == 1.5f && a->data[1] == -2.25f && a->storage == FPI_TFJS_F32);
    CHECK(h->rank == 2 && h->shape[0] == 2 && h->shape[1] == 2 && h->storage == FPI_TFJS_F16);
    CHECK(h->data[0] == 1.f && h->data[1] == -2.f && h->data[2] == 65504.f && h->data[3] == ldexpf(1, -24));
    CHECK(q->data[0] == -1.f && q->data[1] == -.5f && q->data[2] == 126.5f && q->storage == FPI_TFJS_U8);
    CHECK(w->storage == FPI_TFJS_U16 && w->data[0] == (float)(0x1234 * 0.001 + 0.25) && w->data[1] == (float)(65535 * 0.001 + 0.25));
    CHECK(m.n_values == 11);
    fpi_tfjs_free(&m);
    fpi_tfjs_free(&m); /* zeroed: no-op */
    fpi_tfjs_free(NULL);
}

/* ---- malformed manifests ---------------------------------------------- */

static void test_malformed(void)
{
    unsigned char eight[8] = {0};
    write_file("eight.bin", eight, 8);
    write_file("seven.bin", eight, 7);
    unsigned char nan[4];
    put_f32(nan, NAN);
    write_file("nan.bin", nan, 4);
    const unsigned char inf16[2] = {0x00, 0x7C};
    write_file("inf16.bin", inf16, 2);
#define W1(extra) "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [2], \"dtype\": \"float32\"" extra "}]}]"
    static const struct {
        const char *file, *text;
        fp_status want;
        const char *needle;
    } cases[] = {
        {"ok.json", W1(""), FP_OK, NULL},
        {"badjson.json", "[{\"paths\": [\"eight.bin\"],\n \"weights\": [}", FP_ECORRUPT, "badjson.json:2: not valid JSON"},
        {"empty.json", "", FP_ECORRUPT, "not valid JSON"},
        {"object.json", "{\"paths\": []}", FP_ECORRUPT, "array of 1..64 groups"},
        {"nogroups.json", "[]", FP_ECORRUPT, "array of 1..64 groups"},
        {"nopaths.json", "[{\"weights\": []}]", FP_ECORRUPT, "\"paths\" array"},
        {"noweights.json", "[{\"paths\": [\"eight.bin\"], \"weights\": []}]", FP_ECORRUPT, "no weights"},
        {"missing.json", "[{\"paths\": [\"gone.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [2], \"dtype\": \"float32\"}]}]",
         FP_EIO, "gone.bin: cannot open shard"},
        {"truncated.json", "[{\"paths\": [\"seven.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [2], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "hold 7 bytes but its 1 weights need 8"},
        {"toolong.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [1], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "hold 8 bytes but its 1 weights need 4"},
        {"wrongshape.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [3], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "need 12"},
        {"baddtype.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [2], \"dtype\": \"int32\"}]}]",
         FP_EUNSUPPORTED, "dtype \"int32\" not supported"},
        {"nodtype.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [2]}]}]", FP_ECORRUPT,
         "\"dtype\" missing"},
        {"badquant.json", W1(", \"quantization\": {\"dtype\": \"int4\"}"), FP_EUNSUPPORTED, "quantization dtype \"int4\""},
        {"noscale.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [8], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"uint8\", \"min\": 0}}]}]",
         FP_ECORRUPT, "needs finite numbers \"scale\" and \"min\""},
        {"quantnotobj.json", W1(", \"quantization\": 3"), FP_ECORRUPT, "\"quantization\" must be an object"},
        {"noname.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"shape\": [2], \"dtype\": \"float32\"}]}]", FP_ECORRUPT,
         "\"name\" missing"},
        {"emptyname.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"\", \"shape\": [2], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "name must be 1..127 bytes"},
        {"ctrlname.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"a\\nb\", \"shape\": [2], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "control character"},
        {"dupname.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [1], \"dtype\": \"float32\"}, {\"name\": \"x\", \"shape\": [1], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "\"x\" is listed twice"},
        {"rank5.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [1,1,1,1,2], \"dtype\": \"float32\"}]}]",
         FP_EUNSUPPORTED, "rank 5"},
        {"dim0.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [0], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "dim 0 must be an integer"},
        {"dimfrac.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [2.5], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "must be an integer"},
        {"dimstr.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [\"2\"], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "must be an integer"},
        {"dimhuge.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [65536, 65536], \"dtype\": \"float32\"}]}]",
         FP_ETOOBIG, "more than 2^28 values"},
        {"abspath.json", "[{\"paths\": [\"/etc/passwd\"], \"weights\": [{\"name\": \"x\", \"shape\": [2], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "is absolute"},
        {"dotdot.json", "[{\"paths\": [\"a/../../eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [2], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "leaves the manifest's folder"},
        {"pathnum.json", "[{\"paths\": [7], \"weights\": [{\"name\": \"x\", \"shape\": [2], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "shard path must be a string"},
        {"nan.json", "[{\"paths\": [\"nan.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [1], \"dtype\": \"float32\"}]}]",
         FP_ECORRUPT, "value 0 is not finite"},
        {"inf16.json", "[{\"paths\": [\"inf16.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [1], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"float16\"}}]}]",
         FP_ECORRUPT, "not finite"},
        {"hugescale.json", "[{\"paths\": [\"eight.bin\"], \"weights\": [{\"name\": \"x\", \"shape\": [8], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"uint8\", \"scale\": 1, \"min\": 1e300}}]}]",
         FP_ECORRUPT, "not finite"},
    };
#undef W1
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(cases[i].file, cases[i].text);
        expect_load(cases[i].file, cases[i].want, cases[i].needle);
    }
    fpi_tfjs m;
    /* NUL byte, oversized manifest, missing manifest, NULL arguments */
    write_file("nul.json", "[\0]", 3);
    expect_load("nul.json", FP_ECORRUPT, "NUL byte");
    size_t big = FPI_TFJS_MAX_MANIFEST + 10;
    char *text = malloc(big);
    memset(text, ' ', big);
    text[0] = '[';
    text[big - 1] = ']';
    write_file("big.json", text, big);
    free(text);
    expect_load("big.json", FP_ETOOBIG, NULL);
    expect_load("nonexistent.json", FP_EIO, NULL);
    CHECK_ERR(fpi_tfjs_load(NULL, &m), FP_EINVAL);
    CHECK_ERR(fpi_tfjs_load(at("ok.json"), NULL), FP_EINVAL);
    /* too many tensors */
    size_t cap = 64 * 1100;
    char *many = malloc(cap), *p = many;
    p += sprintf(p, "[{\"paths\": [\"eight.bin\"], \"weights\": [");
    for (int i = 0; i < FPI_TFJS_MAX_TENSORS + 1; i++)
        p += sprintf(p, "%s{\"name\": \"t%d\", \"shape\": [1], \"dtype\": \"float32\"}", i ? "," : "", i);
    sprintf(p, "]}]");
    write_text("many.json", many);
    free(many);
    expect_load("many.json", FP_ETOOBIG, "more than 1024 weights");
}

/* ---- a synthetic tiny face detector ----------------------------------- */

enum { NBLK = 5 };
static const int ch_small[NBLK + 1] = {4, 6, 8, 8, 10, 12}; /* conv0..conv5 outputs (small) */
/* the real model's shape of channels (multiples of 8, doubling), smaller */
static const int ch_wide[NBLK + 1] = {16, 16, 32, 32, 64, 64};
static const int *ch = ch_small; /* the set written (write_face) */

typedef struct {
    const char *name;
    int rank, shape[4];
} spec;

/* The face detector's tensor list for the channels above. */
static int face_specs(spec *s)
{
    int n = 0;
    s[n++] = (spec){"conv0/filters", 4, {3, 3, 3, ch[0]}};
    s[n++] = (spec){"conv0/bias", 1, {ch[0]}};
    for (int k = 1; k <= NBLK; k++) {
        static char names[NBLK][3][32];
        snprintf(names[k - 1][0], 32, "conv%d/depthwise_filter", k);
        snprintf(names[k - 1][1], 32, "conv%d/pointwise_filter", k);
        snprintf(names[k - 1][2], 32, "conv%d/bias", k);
        s[n++] = (spec){names[k - 1][0], 4, {3, 3, ch[k - 1], 1}};
        s[n++] = (spec){names[k - 1][1], 4, {1, 1, ch[k - 1], ch[k]}};
        s[n++] = (spec){names[k - 1][2], 1, {ch[k]}};
    }
    s[n++] = (spec){"conv8/filters", 4, {1, 1, ch[NBLK], 25}};
    s[n++] = (spec){"conv8/bias", 1, {25}};
    return n;
}

static size_t spec_count(const spec *s)
{
    size_t c = 1;
    for (int i = 0; i < s->rank; i++) c *= (size_t)s->shape[i];
    return c;
}

/* Deterministic values in [-1, 1). */
static float urand(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) * (1.0 / 8388608.0)) - 1.f;
}

/* Writes manifest `name` (+ `name`.bin) with the specs, uint8-quantised.
 * `skip` drops one spec, `extra` adds a spec, `wrong` changes one's dim 0.
 * The values written are returned dequantised in vals (spec order). */
static void write_face(const char *name, const char *skip, const char *extra, const char *wrong, float **vals)
{
    spec s[32];
    int n = face_specs(s);
    if (extra) s[n++] = (spec){extra, 1, {2}};
    char *json = malloc(65536), *p = json, bin[256];
    snprintf(bin, sizeof bin, "%s.bin", name);
    p += sprintf(p, "[{\"paths\": [\"%s\"], \"weights\": [", bin);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += spec_count(&s[i]);
    unsigned char *bytes = malloc(2 * total); /* room for a `wrong` dim */
    uint32_t seed = 12345;
    size_t off = 0;
    int first = 1;
    for (int i = 0; i < n; i++) {
        size_t c = spec_count(&s[i]);
        /* scale keeps activations moderate; biases small */
        double scale = s[i].rank == 1 ? 0.002 : 0.006, min = -128 * scale;
        for (size_t k = 0; k < c; k++) {
            bytes[off + k] = (unsigned char)((urand(&seed) + 1.f) * 127.99f);
            if (vals) vals[i][k] = (float)(bytes[off + k] * scale + min);
        }
        if (skip && !strcmp(skip, s[i].name)) continue;
        off += c;
        p += sprintf(p, "%s{\"name\": \"%s\", \"shape\": [", first ? "" : ",", s[i].name);
        for (int d = 0; d < s[i].rank; d++)
            p += sprintf(p, "%s%d", d ? "," : "", wrong && !strcmp(wrong, s[i].name) && d == 0 ? s[i].shape[d] + 1 : s[i].shape[d]);
        p += sprintf(p, "], \"dtype\": \"float32\", \"quantization\": {\"dtype\": \"uint8\", \"scale\": %.17g, \"min\": %.17g}}",
                     scale, min);
        if (wrong && !strcmp(wrong, s[i].name)) off += c / (size_t)s[i].shape[0];
        first = 0;
    }
    sprintf(p, "]}]");
    write_text(name, json);
    write_file(bin, bytes, off);
    free(json);
    free(bytes);
}

/* face-api's TF 'same' 2x2 max pool (NHWC). */
static double *ref_pool(const double *in, int h, int w, int c, int stride, int *oh, int *ow)
{
    *oh = (h + stride - 1) / stride;
    *ow = (w + stride - 1) / stride;
    int ph = ((*oh - 1) * stride + 2 - h), pw = ((*ow - 1) * stride + 2 - w);
    ph = ph > 0 ? ph / 2 : 0;
    pw = pw > 0 ? pw / 2 : 0;
    double *out = malloc(sizeof(double) * (size_t)*oh * *ow * c);
    for (int y = 0; y < *oh; y++)
        for (int x = 0; x < *ow; x++)
            for (int k = 0; k < c; k++) {
                double m = -INFINITY;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int iy = y * stride - ph + dy, ix = x * stride - pw + dx;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                        double v = in[((size_t)iy * w + ix) * c + k];
                        if (v > m) m = v;
                    }
                out[((size_t)y * *ow + x) * c + k] = m;
            }
    return out;
}

static double leaky(double x) { return x > 0 ? x : 0.1 * x; }

/* face-api's forward pass, plainly, NHWC in double: returns conv8's output
 * (g×g×25) for an RGB input in [0,1] (CHW) of side s. */
static double *ref_forward(float **v, const float *img, int s, int *grid)
{
    static const double mean[3] = {117.001, 114.697, 97.404};
    int h = s, w = s, c = 3;
    double *x = malloc(sizeof(double) * (size_t)s * s * 3);
    for (int y = 0; y < s; y++)
        for (int xx = 0; xx < s; xx++)
            for (int k = 0; k < 3; k++)
                x[((size_t)y * s + xx) * 3 + k] = ((double)img[((size_t)k * s + y) * s + xx] * 255 - mean[k]) / 255;
    /* conv0: 3x3 valid */
    int oh = h - 2, ow = w - 2, f0 = ch[0];
    double *y0 = malloc(sizeof(double) * (size_t)oh * ow * f0);
    for (int y = 0; y < oh; y++)
        for (int xx = 0; xx < ow; xx++)
            for (int f = 0; f < f0; f++) {
                double acc = v[1][f];
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++)
                        for (int k = 0; k < 3; k++)
                            acc += v[0][((ky * 3 + kx) * 3 + k) * f0 + f] * x[((size_t)(y + ky) * w + xx + kx) * 3 + k];
                y0[((size_t)y * ow + xx) * f0 + f] = leaky(acc);
            }
    free(x);
    x = ref_pool(y0, oh, ow, f0, 2, &h, &w);
    free(y0);
    c = f0;
    for (int b = 0; b < NBLK; b++) {
        const float *dw = v[2 + 3 * b], *pw = v[3 + 3 * b], *pb = v[4 + 3 * b];
        int co = ch[b + 1];
        double *d = malloc(sizeof(double) * (size_t)h * w * c), *o = malloc(sizeof(double) * (size_t)h * w * co);
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++)
                for (int k = 0; k < c; k++) {
                    double acc = 0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = y + ky - 1, ix = xx + kx - 1;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            acc += dw[(ky * 3 + kx) * c + k] * x[((size_t)iy * w + ix) * c + k];
                        }
                    d[((size_t)y * w + xx) * c + k] = acc;
                }
        for (size_t i = 0; i < (size_t)h * w; i++)
            for (int f = 0; f < co; f++) {
                double acc = pb[f];
                for (int k = 0; k < c; k++) acc += pw[k * co + f] * d[i * c + k];
                o[i * co + f] = leaky(acc);
            }
        free(d);
        free(x);
        x = ref_pool(o, h, w, co, b + 1 < NBLK ? 2 : 1, &h, &w);
        free(o);
        c = co;
    }
    double *out = malloc(sizeof(double) * (size_t)h * w * 25);
    const float *w8 = v[2 + 3 * NBLK], *b8 = v[3 + 3 * NBLK];
    for (size_t i = 0; i < (size_t)h * w; i++)
        for (int f = 0; f < 25; f++) {
            double acc = b8[f];
            for (int k = 0; k < c; k++) acc += w8[k * 25 + f] * x[i * c + k];
            out[i * 25 + f] = acc;
        }
    free(x);
    *grid = h;
    return out;
}

typedef struct {
    int layer;   /* layer to capture */
    float *copy; /* its output */
} capture;

static int capture_cb(void *user, int layer, const float *out, fp_shape shape)
{
    capture *c = user;
    if (layer != c->layer) return 0;
    size_t n = fp_shape_count(shape);
    c->copy = malloc(n * sizeof(float));
    if (c->copy) memcpy(c->copy, out, n * sizeof(float));
    return 0;
}

static void test_face_forward(void)
{
    spec s[32];
    int n = face_specs(s);
    float *vals[32];
    for (int i = 0; i < n; i++) vals[i] = malloc(spec_count(&s[i]) * sizeof(float));
    write_face("face.json", NULL, NULL, NULL, vals);
    static const int sizes[] = {128, 160};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int size = sizes[si];
        fp_net *net = NULL;
        CHECK_OK(fp_net_load_tfjs(at("face.json"), size, &net));
        if (!net) continue;
        CHECK_OK(fp_net_setup(net));
        float *img = malloc(sizeof(float) * 3 * size * size);
        uint32_t seed = 7;
        for (int i = 0; i < 3 * size * size; i++) img[i] = (urand(&seed) + 1.f) * .5f;
        memcpy(fp_net_input(net), img, sizeof(float) * 3 * size * size);
        capture cap = {fp_net_layer_count(net) - 2, NULL};
        CHECK_OK(fp_net_run(net, 0, fp_net_layer_count(net) - 1, capture_cb, &cap));
        int g = 0;
        double *want = ref_forward(vals, img, size, &g);
        fp_layer_info li;
        CHECK_OK(fp_net_layer_info(net, cap.layer, &li));
        CHECK_MSG(g == size / 32 && li.out.h == g && li.out.w == g && li.out.c == 30,
                  "size %d: head input %dx%dx%d, face-api's grid %d", size, li.out.c, li.out.h, li.out.w, g);
        if (!(li.out.h == g && li.out.w == g && li.out.c == 30)) {
            free(cap.copy);
            cap.copy = NULL;
        }
        int bad = 0;
        double maxabs = 0, maxdiff = 0;
        for (int a = 0; a < 5 && cap.copy; a++)
            for (int e = 0; e < 6; e++)
                for (int i = 0; i < g * g; i++) {
                    double got = cap.copy[(size_t)(6 * a + e) * g * g + i];
                    double w = e < 5 ? want[(size_t)i * 25 + 5 * a + e] : 0;
                    if (fabs(w) > maxabs) maxabs = fabs(w);
                    if (fabs(got - w) > maxdiff) maxdiff = fabs(got - w);
                    if (e == 5 && got != 0) bad++;
                }
        CHECK_MSG(cap.copy && bad == 0 && maxdiff <= 1e-4 * (maxabs > 1 ? maxabs : 1),
                  "size %d: head differs from face-api's forward pass by %g (largest value %g), %d class entries not 0",
                  size, maxdiff, maxabs, bad);
        CHECK(maxabs > 0.05); /* not a vacuous comparison */
        /* the region head: sigmoid of the score, class probability exactly 1 */
        const float *r = fp_net_output(net, fp_net_layer_count(net) - 1);
        CHECK(r && cap.copy && fabs(r[4 * g * g] - 1 / (1 + exp(-want[4]))) < 1e-5 && r[5 * g * g] == 1.f);
        free(want);
        free(cap.copy);
        free(img);
        fp_net_destroy(net);
    }
    for (int i = 0; i < n; i++) free(vals[i]);
}

/* ---- graph shapes, sizes, wrong tensors ------------------------------- */

static void test_face_graph(void)
{
    write_face("face.json", NULL, NULL, NULL, NULL);
    for (int size = 128; size <= 608; size += 32) {
        fp_net *net = NULL;
        CHECK_OK(fp_net_load_tfjs(at("face.json"), size, &net));
        if (!net) continue;
        fp_layer_info li;
        int last = fp_net_layer_count(net) - 1;
        CHECK(last == 18);
        CHECK_OK(fp_net_layer_info(net, last, &li));
        CHECK_MSG(li.op == FP_OP_REGION && li.out.c == 30 && li.out.h == size / 32 && li.out.w == size / 32,
                  "size %d: head %s %dx%dx%d", size, li.type, li.out.c, li.out.h, li.out.w);
        CHECK_OK(fp_net_layer_info(net, 0, &li));
        CHECK(li.out.h == size - 2 && li.out.c == ch[0]);
        fp_shape in = fp_net_input_shape(net);
        CHECK(in.c == 3 && in.w == size && in.h == size);
        CHECK(fp_detect_input_prep(net) == FP_DETECT_PREP_PAD_SQUARE && fp_detect_letterbox(net) == 0);
        CHECK(fp_detect_classes(net) == 1 && !strcmp(fp_detect_class_name(net, 0), "face") &&
              fp_detect_class_name(net, 1) == NULL);
        float t, nms;
        fp_detect_defaults(net, &t, &nms);
        CHECK(t == .5f && nms == .4f);
        fp_net_destroy(net);
    }
    fp_net *net = (fp_net *)1;
    static const int bad_sizes[] = {0, 96, 100, 130, 640, -32};
    for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
        CHECK_ERR(fp_net_load_tfjs(at("face.json"), bad_sizes[i], &net), FP_EINVAL);
        CHECK(net == (fp_net *)1);
    }
    CHECK(strstr(fp_last_error(), "multiple of 32 in [128, 608]") != NULL);
    CHECK_ERR(fp_net_load_tfjs(NULL, 416, &net), FP_EINVAL);
    write_face("nobias.json", "conv3/bias", NULL, NULL, NULL);
    CHECK_ERR(fp_net_load_tfjs(at("nobias.json"), 416, &net), FP_ECORRUPT);
    CHECK(strstr(fp_last_error(), "weight \"conv3/bias\" missing") != NULL);
    write_face("wrongpw.json", NULL, NULL, "conv2/pointwise_filter", NULL);
    CHECK_ERR(fp_net_load_tfjs(at("wrongpw.json"), 416, &net), FP_ECORRUPT);
    CHECK(strstr(fp_last_error(), "\"conv2/pointwise_filter\" has shape [2,1,6,8], expected [1,1,6,*]") != NULL);
    write_face("extra.json", NULL, "conv6/bias", NULL, NULL);
    CHECK_ERR(fp_net_load_tfjs(at("extra.json"), 416, &net), FP_EUNSUPPORTED);
    CHECK(strstr(fp_last_error(), "\"conv6/bias\" is not part of") != NULL);
    write_face("noconv0.json", "conv0/filters", NULL, NULL, NULL);
    CHECK_ERR(fp_net_load_tfjs(at("noconv0.json"), 416, &net), FP_EUNSUPPORTED);
    CHECK(strstr(fp_last_error(), "not face-api's tiny face detector") != NULL);
    CHECK(net == (fp_net *)1);
}

/* fp_net_load_tfjs frees everything whichever allocation fails. */
static void test_face_oom(void)
{
    write_face("face.json", NULL, NULL, NULL, NULL);
    int ok = 0;
    for (long i = 0; i < 200 && !ok; i++) {
        fp_net *net = NULL;
        fpi_alloc_fail_after(i);
        fp_status st = fp_net_load_tfjs(at("face.json"), 128, &net);
        fpi_alloc_fail_after(-1);
        CHECK_MSG(st == FP_OK || st == FP_ENOMEM, "allocation %ld: %s (%s)", i, fp_status_name(st), fp_last_error());
        CHECK(st != FP_OK || net != NULL);
        ok = st == FP_OK;
        fp_net_destroy(net);
    }
    CHECK(ok);
}

/* ---- pad to square ---------------------------------------------------- */

static void test_pad_square(void)
{
    static const int dims[][3] = {{7, 5, 416}, {5, 9, 160}, {640, 480, 416}, {300, 800, 128}, {32, 32, 32}, {3, 3, 128}};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++) {
        int w = dims[t][0], h = dims[t][1], s = dims[t][2], m = w > h ? w : h;
        fp_image im = {0}, out = {0};
        CHECK_OK(fp_image_make(w, h, 3, 0, &im));
        uint32_t seed = 99;
        for (int i = 0; i < w * h * 3; i++) im.data[i] = (urand(&seed) + 1.f) * .5f;
        CHECK_OK(fp_image_pad_square(&im, s, &out));
        CHECK(out.w == s && out.h == s && out.c == 3);
        int bad = 0;
        for (int k = 0; k < 3 && out.data; k++)
            for (int r = 0; r < s; r++)
                for (int c = 0; c < s; c++) {
                    /* TF: src = dst * in/out, floor/ceil neighbours,
                     * clamped; in float (TF.js's WASM backend) */
                    float ratio = (float)m / (float)s, fy = (float)r * ratio, fx = (float)c * ratio;
                    int y0 = (int)floorf(fy), x0 = (int)floorf(fx);
                    int y1 = (int)ceilf(fy) < m ? (int)ceilf(fy) : m - 1, x1 = (int)ceilf(fx) < m ? (int)ceilf(fx) : m - 1;
#define PX(x, y) ((x) < w && (y) < h ? im.data[((size_t)k * h + (y)) * w + (x)] : 0.0f)
                    float top = PX(x0, y0) + (PX(x1, y0) - PX(x0, y0)) * (fx - (float)x0);
                    float bot = PX(x0, y1) + (PX(x1, y1) - PX(x0, y1)) * (fx - (float)x0);
#undef PX
                    float want = top + (bot - top) * (fy - (float)y0);
                    if (out.data[((size_t)k * s + r) * s + c] != want) bad++;
                }
        CHECK_MSG(bad == 0, "%dx%d -> %d: %d pixels differ", w, h, s, bad);
        if (w == s && h == s) CHECK(out.data && !memcmp(out.data, im.data, sizeof(float) * 3 * s * s));
        fp_image_free(&out);
        fp_image_free(&im);
    }
    fp_image none = {0}, out = {0};
    CHECK_ERR(fp_image_pad_square(&none, 128, &out), FP_EINVAL);
}

/* fp_detect_prepare_input writes what fp_detect_prepare makes straight into
 * the input: pad to square (TF.js model) and letterbox (a darknet [yolo]
 * network), bit for bit; a grey image for a colour network and a network
 * not set up are refused. */
static void test_prepare_input(void)
{
    static const char yolo_cfg[] = "[net]\nwidth=64\nheight=48\nchannels=3\n"
                                   "[convolutional]\nfilters=18\nsize=1\nstride=1\npad=0\nactivation=linear\n"
                                   "[yolo]\nmask=0,1,2\nanchors=10,14,23,27,37,58\nclasses=1\nnum=3\n";
    write_face("face.json", NULL, NULL, NULL, NULL);
    for (int which = 0; which < 2; which++) {
        fp_net *net = NULL;
        CHECK_OK(which ? fp_net_parse_cfg(yolo_cfg, "yolo.cfg", &net) : fp_net_load_tfjs(at("face.json"), 160, &net));
        if (!net) continue;
        if (which) CHECK_OK(fp_net_init_weights_random(net, 3));
        fp_image im = {0}, grey = {0}, want = {0};
        CHECK_OK(fp_image_make(211, 157, 3, 0, &im));
        CHECK_OK(fp_image_make(40, 30, 1, .5f, &grey));
        uint32_t seed = 5;
        for (int i = 0; im.data && i < 211 * 157 * 3; i++) im.data[i] = (urand(&seed) + 1.f) * .5f;
        CHECK_ERR(fp_detect_prepare_input(net, &im), FP_ESTATE);
        CHECK_OK(fp_net_setup(net));
        CHECK_OK(fp_detect_prepare(net, &im, &want));
        float *in = fp_net_input(net);
        size_t n = fp_shape_count(fp_net_input_shape(net));
        for (size_t i = 0; in && i < n; i++) in[i] = -1.f;
        CHECK_OK(fp_detect_prepare_input(net, &im));
        CHECK_MSG(in && want.data && !memcmp(in, want.data, n * sizeof(float)), "%s: the input differs from fp_detect_prepare's",
                  which ? "letterbox" : "pad to square");
        CHECK_ERR(fp_detect_prepare_input(net, &grey), FP_EUNSUPPORTED);
        CHECK_ERR(fp_detect_prepare_input(NULL, &im), FP_EINVAL);
        fp_image_free(&want);
        fp_image_free(&grey);
        fp_image_free(&im);
        fp_net_destroy(net);
    }
}

/* A source of the input's rows for fpi_net_run_rows: served from a
 * prepared input, the calls counted and their order kept. */
typedef struct {
    const float *prep;
    int w, h, calls, out_of_order, next[3], first_c1; /* first_c1: calls before channel 1's first row */
} test_rows;

static const float *test_row(void *ctx, int c, int y)
{
    test_rows *r = ctx;
    if (y != r->next[c]) r->out_of_order++;
    r->next[c] = y + 1;
    if (c == 1 && r->first_c1 < 0) r->first_c1 = r->calls;
    r->calls++;
    return r->prep + ((size_t)c * r->h + y) * r->w;
}

/* fp_detect_run gives the same bits as fp_detect_prepare_input then
 * fp_net_run, whole and up to a layer in the trunk, at 1 and 2 threads,
 * for images padded on the right or the bottom, shrunk or grown, whatever
 * the input tensor held before. fpi_net_run_rows asks for each row once,
 * each channel's in order, and gives the same bits: where the first layer
 * makes the input's rows as it reads them (one thread, the first-layer
 * kernel and oneDNN present) it asks for the channels' rows in turn, as
 * the layer reads them; elsewhere a channel's rows all come before the
 * next channel's (written into the input tensor first). */
static void test_detect_run(void)
{
    ch = ch_wide;
    write_face("wide.json", NULL, NULL, NULL, NULL);
    ch = ch_small;
    static const int sizes[] = {160, 224}, dims[][2] = {{211, 157}, {157, 211}, {500, 300}, {96, 96}};
    int trunk = fpi_conv_first_cpu() && fpi_dnnl_available() && fpi_fast_enabled();
    for (size_t si = 0; si < 2; si++)
        for (int threads = 1; threads <= 2; threads++) {
            fp_net *net = NULL;
            CHECK_OK(fp_net_load_tfjs(at("wide.json"), sizes[si], &net));
            if (!net) continue;
            CHECK_OK(fp_net_set_threads(net, threads));
            CHECK_OK(fp_net_setup(net));
            int n = fp_net_layer_count(net), lasts[2] = {n - 1, 6};
            size_t nin = fp_shape_count(fp_net_input_shape(net));
            float *in = fp_net_input(net);
            for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
                for (int li = 0; li < 2; li++) {
                    int last = lasts[li];
                    fp_image im = {0};
                    CHECK_OK(fp_image_make(dims[di][0], dims[di][1], 3, 0, &im));
                    uint32_t seed = 11 + (uint32_t)di;
                    for (size_t i = 0; im.data && i < (size_t)im.w * im.h * 3; i++) im.data[i] = (urand(&seed) + 1.f) * .5f;
                    fp_layer_info info;
                    CHECK_OK(fp_net_layer_info(net, last, &info));
                    size_t nout = fp_shape_count(info.out);
                    float *want = malloc(nout * sizeof *want), *prep = malloc(nin * sizeof *prep);
                    if (!want || !prep) abort();
                    CHECK_OK(fp_detect_prepare_input(net, &im));
                    memcpy(prep, in, nin * sizeof *prep);
                    CHECK_OK(fp_net_run(net, 0, last, NULL, NULL));
                    memcpy(want, fp_net_output(net, last), nout * sizeof *want);
                    int takes = fpi_net_takes_rows(net, last);
                    CHECK_MSG(takes == (trunk && threads == 1), "size %d, %d thread(s), up to layer %d: takes rows %d",
                              sizes[si], threads, last, takes);
                    for (size_t i = 0; i < nin; i++) in[i] = -7.f;
                    CHECK_OK(fp_detect_run(net, &im, last));
                    CHECK_MSG(!memcmp(fp_net_output(net, last), want, nout * sizeof *want),
                              "size %d, %d thread(s), %dx%d image, up to layer %d: fp_detect_run's output differs",
                              sizes[si], threads, im.w, im.h, last);
                    fp_shape is = fp_net_input_shape(net);
                    test_rows src = {prep, is.w, is.h, 0, 0, {0, 0, 0}, -1};
                    fpi_rows rows = {test_row, &src};
                    for (size_t i = 0; i < nin; i++) in[i] = -7.f;
                    CHECK_OK(fpi_net_run_rows(net, last, &rows));
                    CHECK_MSG(!memcmp(fp_net_output(net, last), want, nout * sizeof *want),
                              "size %d, %d thread(s), up to layer %d: fpi_net_run_rows's output differs", sizes[si],
                              threads, last);
                    CHECK_MSG(src.calls == is.c * is.h && src.out_of_order == 0 &&
                                  (src.first_c1 < is.h) == takes,
                              "size %d, %d thread(s), up to layer %d: %d rows asked for (%d out of order), channel 1's "
                              "first after %d (takes rows %d)",
                              sizes[si], threads, last, src.calls, src.out_of_order, src.first_c1, takes);
                    free(want);
                    free(prep);
                    fp_image_free(&im);
                }
            fp_net_destroy(net);
        }
    CHECK_ERR(fp_detect_run(NULL, NULL, 0), FP_EINVAL);
    /* every allocation of a run failing in turn: FP_ENOMEM and nothing
     * leaked (the asan build), or the same bits */
    fp_net *net = NULL;
    fp_image im = {0};
    CHECK_OK(fp_net_load_tfjs(at("wide.json"), 160, &net));
    CHECK_OK(fp_image_make(211, 157, 3, .25f, &im));
    if (net && !fp_net_setup(net) && im.data) {
        int last = fp_net_layer_count(net) - 1, ok = 0;
        fp_layer_info info;
        CHECK_OK(fp_net_layer_info(net, last, &info));
        size_t nout = fp_shape_count(info.out);
        float *want = malloc(nout * sizeof *want);
        CHECK_OK(fp_detect_run(net, &im, last));
        if (want) memcpy(want, fp_net_output(net, last), nout * sizeof *want);
        for (long i = 0; i < 20 && want && !ok; i++) {
            fpi_alloc_fail_after(i);
            fp_status st = fp_detect_run(net, &im, last);
            fpi_alloc_fail_after(-1);
            CHECK_MSG(st == FP_OK || st == FP_ENOMEM, "failing allocation %ld: %s", i, fp_status_name(st));
            ok = st == FP_OK;
            if (ok) CHECK(!memcmp(fp_net_output(net, last), want, nout * sizeof *want));
        }
        CHECK_MSG(ok, "fp_detect_run never succeeded with allocations failing");
        free(want);
    }
    fp_image_free(&im);
    fp_net_destroy(net);
}

TEST_LIST = {
    {"storage", test_storage},
    {"malformed", test_malformed},
    {"face_forward", test_face_forward},
    {"face_graph", test_face_graph},
    {"face_oom", test_face_oom},
    {"pad_square", test_pad_square},
    {"prepare_input", test_prepare_input},
    {"detect_run", test_detect_run},
    {NULL, NULL},
};
