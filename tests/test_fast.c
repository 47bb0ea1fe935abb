/*
 * test_fast.c — every fast kernel (src/engine/fast/) against the reference
 * kernel of its op, over sweeps of shapes: 1x1, 3x3, 5x5, strides 1 and 2,
 * odd sizes, groups, depthwise (with and without a channel multiplier), tiny
 * and large channel counts, every activation, batch-norm folded, 1 and 2
 * threads. Each case runs the network once with the reference kernels
 * (FPI_FAST_OFF), then calls the fast hook directly on the same layer and
 * input, checking that it took the layer (so a silently declining hook
 * fails) and that every value is within TOL of the reference, relative to
 * the largest magnitude in the reference output. Three fast modes run: with
 * every library (FPI_FAST_AUTO), as if oneDNN were not installed
 * (FPI_FAST_NO_DNNL: OpenBLAS's GEMM path) and as if neither were
 * (FPI_FAST_NO_BLAS: the GEMM convolutions and connected layers must
 * decline, the direct kernels must still run). Convolutions with one group
 * also run through the oneDNN hook alone, which must take them whenever
 * oneDNN is available (built with FP_ONEDNN and libdnnl.so.2 installed),
 * once as a whole and once cut into as many pieces as the shape allows.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "engine/fast/fast.h"
#include "engine/net_impl.h"
#include "fogpipe/net.h"
#include "test.h"

#define TOL 1e-5

static const char *const act_names[] = {"linear", "leaky", "relu", "logistic"};

/* Deterministic input values in [-1, 1). */
static void fill_input(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) * (1.0 / 8388608.0)) - 1.f;
    }
}

typedef int (*fast_hook)(const fpi_layer *, const float *const *, float *, const fpi_exec *);

/* What a hook needs to take a layer. NEEDS_DNNL_MAY_DECLINE: oneDNN may
 * also leave the layer to the other kernels (padding at least as wide as the
 * kernel: some outputs see no input at all). */
enum { NEEDS_NOTHING = 0, NEEDS_BLAS = 1, NEEDS_DNNL = 2, NEEDS_DNNL_MAY_DECLINE = 3 };

/* Builds the one-layer network in `cfg`, runs the reference kernel, then the
 * fast hook in each mode, and compares. `needs`: the library the hook needs
 * (it must decline without it, and take the layer with it). Returns 1 if
 * all agree. */
static int check_layer(const char *cfg, const char *what, int threads, fast_hook hook, int needs, double tol)
{
    fp_net *net = NULL;
    fp_status st = fp_net_parse_cfg(cfg, "fast.cfg", &net);
    CHECK_MSG(st == FP_OK, "%s: parse: %s", what, fp_last_error());
    if (st) return 0;
    int ok = 1;
    float *fast = NULL;
    if ((st = fp_net_init_weights_random(net, 42)) || (st = fp_net_set_threads(net, threads)) ||
        (st = fp_net_setup(net))) {
        CHECK_MSG(0, "%s: %s", what, fp_last_error());
        fp_net_destroy(net);
        return 0;
    }
    const fpi_layer *l = &net->layers[0];
    size_t nin = fp_shape_count(fp_net_input_shape(net)), nout = fp_shape_count(l->out);
    fill_input(fp_net_input(net), nin, (uint32_t)nin * 7u + 3u);

    fpi_fast_set_mode(FPI_FAST_OFF);
    CHECK_OK(fp_net_run(net, 0, 0, NULL, NULL));
    const float *ref = fp_net_output(net, 0);
    double mag = 1e-30;
    for (size_t i = 0; i < nout; i++)
        if (fabs(ref[i]) > mag) mag = fabs(ref[i]);
    fast = malloc(nout * sizeof *fast);
    const float *src[1] = {fp_net_input(net)};
    fpi_exec x = {net->workspace, net->pool, 0, 0, 0, NULL}; /* no hand-offs: the hook writes plain C x H x W */
    static const fpi_fast_mode modes[] = {FPI_FAST_AUTO, FPI_FAST_NO_DNNL, FPI_FAST_NO_BLAS};
    static const char *const mode_names[] = {"auto", "no-dnnl", "no-blas"};
    for (int mi = 0; mi < 3 && fast; mi++) {
        fpi_fast_set_mode(modes[mi]);
        /* FP_NO_FAST=1 in the environment: every hook must decline */
        int expect = needs >= NEEDS_DNNL ? fpi_dnnl_available() && !l->conv_first /* conv_first.c has it */
                                         : fpi_fast_enabled() && !(needs == NEEDS_BLAS && !fpi_blas_get());
        for (size_t i = 0; i < nout; i++) fast[i] = NAN;
        int took = hook(l, src, fast, &x);
        if (needs == NEEDS_DNNL_MAY_DECLINE && !took) expect = 0;
        CHECK_MSG(took == expect, "%s threads=%d mode=%s: hook returned %d, expected %d%s", what, threads,
                  mode_names[mi], took, expect, needs >= NEEDS_DNNL && !took ? " (oneDNN declined the layer)" : "");
        if (!took) {
            ok &= took == expect;
            continue;
        }
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < nout; i++)
            if (!(fabs((double)fast[i] - ref[i]) <= tol * mag)) {
                if (!bad) first = i;
                bad++;
            }
        CHECK_MSG(bad == 0, "%s threads=%d mode=%s: %zu of %zu differ, first [%zu] fast %.9g ref %.9g (max |ref| %.4g)",
                  what, threads, mode_names[mi], bad, nout, first, (double)fast[first],
                  (double)ref[first], mag);
        if (bad) ok = 0;
    }
    CHECK(fast != NULL);
    fpi_fast_set_mode(FPI_FAST_AUTO);
    free(fast);
    fp_net_destroy(net);
    return ok;
}

/* ---- convolutional ----------------------------------------------------- */

static void test_conv(void)
{
    static const struct {
        int w, h, c;       /* input */
        int f, size, stride, pad, groups;
    } cases[] = {
        {7, 5, 4, 6, 1, 1, 0, 1},      /* 1x1/1: no im2col */
        {7, 5, 4, 6, 1, 2, 0, 1},      /* 1x1/2 */
        {9, 9, 4, 6, 1, 1, 1, 1},      /* 1x1 with padding */
        {7, 5, 4, 6, 3, 1, 1, 1},      /* odd sizes */
        {7, 5, 4, 6, 3, 2, 1, 1},      /* stride 2 */
        {13, 11, 5, 7, 5, 1, 2, 1},    /* 5x5 */
        {13, 11, 5, 7, 5, 2, 0, 1},    /* 5x5/2, no padding */
        {8, 8, 3, 3, 3, 1, 3, 1},      /* padding wider than half the kernel */
        {40, 33, 3, 16, 3, 1, 1, 1},   /* first layer: direct kernel */
        {41, 35, 3, 13, 3, 2, 1, 1},   /* direct, stride 2, filters not a multiple of 4 */
        {20, 17, 1, 5, 3, 1, 1, 1},    /* one input channel */
        {4, 6, 4, 6, 3, 1, 1, 2},      /* groups */
        {9, 7, 8, 12, 3, 2, 1, 4},     /* groups, stride 2 */
        {9, 7, 8, 8, 3, 1, 1, 8},      /* depthwise */
        {10, 9, 6, 12, 3, 2, 1, 6},    /* depthwise, multiplier 2, stride 2 */
        {16, 16, 8, 8, 5, 1, 2, 8},    /* depthwise 5x5 */
        {2, 1, 3, 4, 3, 1, 1, 1},      /* tiny map */
        {1, 1, 17, 9, 1, 1, 0, 1},     /* 1x1 map */
        {64, 48, 16, 32, 3, 1, 1, 1},  /* many columns: several tiles */
        {128, 96, 8, 16, 3, 1, 1, 1},  /* more tiles than threads */
        {7, 7, 256, 300, 3, 1, 1, 1},  /* deep and small: row split */
        {5, 3, 600, 48, 1, 1, 0, 1},   /* large k, 1x1 */
        {13, 13, 512, 64, 3, 1, 1, 1}, /* k = 4608 */
        {13, 11, 24, 96, 3, 1, 1, 1},  /* channel blocks: the Winograd kernel (AVX2) */
        {5, 4, 72, 32, 3, 1, 1, 1},    /* the 3x3 vector kernel: chunks of 4 + 4 + 1 blocks, a last tile of 2 */
        /* oneDNN's pieces: bands of rows and blocks of 16 output channels */
        {23, 19, 3, 16, 3, 1, 1, 1},   /* first layer, nchw input, bands */
        {33, 29, 3, 13, 3, 2, 1, 1},   /* first layer, stride 2, odd filters */
        {31, 27, 16, 35, 3, 2, 1, 1},  /* bands, stride 2, filters not a multiple of 16 */
        {9, 7, 96, 70, 3, 1, 1, 1},    /* channel blocks, a short last block */
        {11, 11, 40, 24, 5, 2, 2, 1},  /* 5x5/2 */
        {12, 10, 32, 48, 1, 2, 0, 1},  /* 1x1/2: columns left out */
        {6, 6, 64, 48, 3, 1, 0, 1},    /* valid 3x3 (face detector) */
        {14, 14, 8, 20, 5, 2, 0, 1},   /* 5x5/2 valid, last column dropped */
        {21, 17, 40, 40, 3, 1, 1, 40}, /* depthwise in blocks of channels (AVX2), a short last piece */
        /* the depthwise vector kernel (AVX2) in oneDNN's place, from C x H x W
         * input: column by column (test_dw3x3 takes its groups of 8 columns) */
        {50, 9, 16, 16, 3, 1, 1, 16},
        {10, 6, 24, 24, 3, 1, 1, 24},
        {9, 12, 16, 16, 3, 1, 1, 16},
        {13, 13, 8, 8, 3, 1, 1, 8},    /* one block of channels: oneDNN's own kernel */
        {16, 7, 16, 16, 3, 1, 1, 16},
        {19, 15, 48, 48, 3, 2, 1, 48}, /* depthwise in blocks of channels, stride 2 */
    };
    int n = 0;
    /* oneDNN at every size: once cut as finely as the shape allows, once whole */
    for (int sizes = 0; sizes < 2; sizes++) {
    fpi_dnnl_set_sizes(0, sizes ? 1e30 : 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int act = 0; act < FP_ACT_COUNT; act++)
            for (int bn = 0; bn < 2; bn++) {
                if ((act + bn + (int)i) % 2 && i > 2) continue; /* half the (act, bn) pairs beyond the first cases */
                char cfg[512], what[200];
                snprintf(cfg, sizeof cfg,
                         "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[convolutional]\nbatch_normalize=%d\n"
                         "filters=%d\nsize=%d\nstride=%d\npadding=%d\ngroups=%d\nactivation=%s\n",
                         cases[i].w, cases[i].h, cases[i].c, bn, cases[i].f, cases[i].size, cases[i].stride,
                         cases[i].pad, cases[i].groups, act_names[act]);
                snprintf(what, sizeof what, "conv in=%dx%dx%d f=%d %dx%d/%d pad=%d g=%d bn=%d %s", cases[i].w,
                         cases[i].h, cases[i].c, cases[i].f, cases[i].size, cases[i].size, cases[i].stride,
                         cases[i].pad, cases[i].groups, bn, act_names[act]);
                int cg = cases[i].c / cases[i].groups;
                int ow = (cases[i].w + 2 * cases[i].pad - cases[i].size) / cases[i].stride + 1;
                /* the kernel choice of fpi_conv_fast: depthwise and small first
                 * layers are direct, the rest need sgemm */
                int direct = cg == 1 || (cases[i].groups == 1 && cg * cases[i].size * cases[i].size <= 32 && ow >= 16);
                for (int t = 1; t <= 2; t++) {
                    if (!sizes) check_layer(cfg, what, t, fpi_conv_fast, direct ? NEEDS_NOTHING : NEEDS_BLAS, TOL);
                    /* oneDNN's pieces, and fogpipe's depthwise vector kernel (AVX2) in their place */
                    if (cases[i].groups == 1 || (cases[i].groups == cases[i].c && cases[i].f == cases[i].c))
                        check_layer(cfg, what, t, fpi_conv_dnnl,
                                    cases[i].pad >= cases[i].size ? NEEDS_DNNL_MAY_DECLINE : NEEDS_DNNL, TOL);
                    n++;
                }
            }
    }
    fpi_dnnl_set_sizes(2e6, 25e6);
    CHECK_MSG(n > 100, "only %d cases", n);
}

/* ---- connected ---------------------------------------------------------- */

static void test_connected(void)
{
    static const struct { int w, h, c, out; } cases[] = {
        {1, 1, 1, 1}, {1, 1, 7, 3}, {3, 5, 5, 17}, {1, 1, 256, 100}, {7, 7, 64, 33}, {1, 1, 4096, 300},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int act = 0; act < FP_ACT_COUNT; act++)
            for (int bn = 0; bn < 2; bn++)
                for (int t = 1; t <= 2; t++) {
                    char cfg[256], what[128];
                    snprintf(cfg, sizeof cfg,
                             "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[connected]\noutput=%d\n"
                             "batch_normalize=%d\nactivation=%s\n",
                             cases[i].w, cases[i].h, cases[i].c, cases[i].out, bn, act_names[act]);
                    snprintf(what, sizeof what, "connected %dx%dx%d -> %d bn=%d %s", cases[i].w, cases[i].h,
                             cases[i].c, cases[i].out, bn, act_names[act]);
                    check_layer(cfg, what, t, fpi_connected_fast, 1, TOL);
                }
}

/* ---- maxpool ------------------------------------------------------------ */

static void test_maxpool(void)
{
    static const struct { int size, stride, padding, w, h, c; } cases[] = {
        {2, 2, -1, 8, 6, 3},  {2, 2, -1, 7, 5, 2},  {2, 2, 0, 7, 5, 2},   {2, 1, -1, 13, 13, 5},
        {3, 2, -1, 7, 5, 2},  {3, 2, 1, 7, 5, 2},   {3, 1, -1, 6, 4, 3},   {3, 2, 2, 8, 8, 1},
        {5, 1, -1, 5, 5, 1},  {1, 1, -1, 3, 2, 2},  {2, 2, -1, 416, 30, 4}, {3, 3, 4, 19, 17, 3},
        {6, 2, -1, 4, 4, 2},  {2, 2, -1, 1, 1, 2},  {2, 2, 2, 7, 5, 2},   {2, 1, 2, 6, 5, 2},
        {2, 2, 3, 9, 6, 2},   {2, 1, 0, 5, 4, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int t = 1; t <= 2; t++) {
            char cfg[256], what[128];
            int k = snprintf(cfg, sizeof cfg, "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[maxpool]\nsize=%d\nstride=%d\n",
                             cases[i].w, cases[i].h, cases[i].c, cases[i].size, cases[i].stride);
            if (cases[i].padding >= 0) snprintf(cfg + k, sizeof cfg - (size_t)k, "padding=%d\n", cases[i].padding);
            snprintf(what, sizeof what, "maxpool %dx%d/%d padding=%d in=%dx%dx%d", cases[i].size, cases[i].size,
                     cases[i].stride, cases[i].padding, cases[i].w, cases[i].h, cases[i].c);
            check_layer(cfg, what, t, fpi_maxpool_fast, 0, 0.0); /* same comparisons: exact */
        }
}

/* fpi_maxpool_vec (pools in oneDNN's layouts) against the windows taken
 * scalar in the reference's order (m = -FLT_MAX, then v > m ? v : m), bit
 * for bit, with +0/-0 and ties among the values: whole maps and bands of
 * rows, 8 lanes (the last block whole or not) and 16, into the blocked
 * layout or C x H x W. */
static void test_maxpool_vec(void)
{
    static const struct { int k, s, before, w, h; } cases[] = {
        {2, 1, 0, 13, 13}, {2, 2, 0, 13, 11}, {2, 2, 0, 12, 8},  {3, 1, 1, 9, 7}, {3, 2, 1, 10, 9},
        {2, 1, 0, 1, 1},   {2, 2, 1, 7, 6},   {3, 3, 0, 11, 5},  {1, 1, 0, 5, 3}, {2, 1, 0, 2, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int lanes = 8; lanes <= 16; lanes += 8)
            for (int chw = 0; chw <= 1; chw++)
                for (int last = lanes - 3; last <= lanes; last += 3) {
                    int k = cases[i].k, s = cases[i].s, b4 = cases[i].before, w = cases[i].w, h = cases[i].h;
                    int pw = (w + 2 * b4 - k) / s + 1, ph = (h + 2 * b4 - k) / s + 1, nb = 3;
                    if (k == 2 && s == 1 && b4 == 0) pw = w, ph = h; /* darknet's 2x2/1: padding 1 at the end */
                    size_t sx = (size_t)lanes, sy = (size_t)w * sx, sb = (size_t)h * sy, plane = (size_t)ph * pw;
                    /* the output blocked, or C x H x W (a lane per plane) */
                    size_t osl = chw ? plane : 1, osx = chw ? 1 : (size_t)lanes, osy = (size_t)pw * osx,
                           osb = (size_t)lanes * plane;
                    float *in = malloc(nb * sb * sizeof(float)), *out = calloc(nb * osb, sizeof(float));
                    if (!in || !out) {
                        free(in), free(out);
                        CHECK_MSG(0, "out of memory");
                        return;
                    }
                    for (size_t j = 0; j < nb * sb; j++) {
                        unsigned v = (unsigned)(j * 2654435761u) >> 27; /* 0..31: ties */
                        in[j] = v == 0 ? -0.0f : v == 1 ? 0.0f : (float)((int)v - 16) / 4;
                    }
                    /* two bands of rows, as fpi_dnnl_run pools a piece's rows */
                    int mid = ph / 2;
                    for (int band = 0; band < 2; band++) {
                        int py0 = band ? mid : 0, py1 = band ? ph : mid;
                        if (py0 >= py1) continue;
                        int r0 = py0 * s - b4 < 0 ? 0 : py0 * s - b4;
                        int r1 = (py1 - 1) * s - b4 + k > h ? h : (py1 - 1) * s - b4 + k;
                        fpi_vmap vi = {in + (size_t)r0 * sy, sb, sy, sx, 1};
                        fpi_vmap vo = {out + (size_t)py0 * osy, osb, osy, osx, osl};
                        fpi_maxpool_vec(&vi, &vo, nb, lanes, last, r0, r1, w, py0, py1, pw, k, s, b4);
                    }
                    size_t diff = 0;
                    for (int bk = 0; bk < nb; bk++)
                        for (int y = 0; y < ph; y++)
                            for (int x = 0; x < pw; x++)
                                for (int j = 0; j < (bk == nb - 1 ? last : lanes); j++) {
                                    float m = -FLT_MAX;
                                    for (int yy = y * s - b4; yy < y * s - b4 + k; yy++)
                                        for (int xx = x * s - b4; xx < x * s - b4 + k; xx++) {
                                            if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                                            float v = in[bk * sb + yy * sy + xx * sx + (size_t)j];
                                            m = v > m ? v : m;
                                        }
                                    diff += memcmp(&m, &out[bk * osb + y * osy + x * osx + j * osl], sizeof m) != 0;
                                }
                    CHECK_MSG(diff == 0, "maxpool_vec %dx%d/%d before %d, %dx%d, %d lanes (last %d), %s: %zu differ", k,
                              k, s, b4, w, h, lanes, last, chw ? "C x H x W" : "blocked", diff);
                    free(in), free(out);
                }
}

/* ---- modes and the library ---------------------------------------------- */

/* OpenBLAS is installed by scripts/setup.sh: it must load, with the kernel
 * family cpuid chose, and leave the environment as it was. */
static void test_blas_load(void)
{
    const fpi_cpu *cpu = fpi_cpu_get();
    CHECK(cpu->x86 || cpu->arm64 || (!cpu->avx2 && !cpu->avx512));
    const char *core = fpi_cpu_blas_coretype(cpu);
    /* what a user who set nothing gets (this test's own environment may pin
     * a kernel family; the library is loaded once, here) */
    unsetenv("OPENBLAS_CORETYPE");
    int had_threads = getenv("OPENBLAS_NUM_THREADS") != NULL;
    if (getenv("FP_NO_FAST") && strcmp(getenv("FP_NO_FAST"), "0") && *getenv("FP_NO_FAST")) {
        CHECK(!fpi_fast_enabled() && fpi_blas_get() == NULL);
        return;
    }
    const fpi_blas *b = fpi_blas_get();
    CHECK_MSG(b != NULL, "libopenblas.so.0 did not load (%s); run scripts/setup.sh", fpi_fast_describe());
    if (!b) return;
    CHECK(b->sgemm && b->sgemv);
    if (core) CHECK_MSG(strstr(b->desc, core) != NULL, "wanted %s kernels, got \"%s\"", core, b->desc);
    CHECK_MSG(getenv("OPENBLAS_CORETYPE") == NULL, "OPENBLAS_CORETYPE left set");
    CHECK_MSG((getenv("OPENBLAS_NUM_THREADS") != NULL) == had_threads, "OPENBLAS_NUM_THREADS changed");
    fpi_fast_set_mode(FPI_FAST_NO_BLAS);
    CHECK(fpi_blas_get() == NULL);
    CHECK(fpi_fast_enabled());
    fpi_fast_set_mode(FPI_FAST_OFF);
    CHECK(fpi_blas_get() == NULL);
    CHECK(!fpi_fast_enabled());
    CHECK(strstr(fpi_fast_describe(), "reference") != NULL);
    fpi_fast_set_mode(FPI_FAST_AUTO);
    CHECK(fpi_fast_enabled());
    printf("     %s\n", fpi_fast_describe());
}

/* ---- convolution + max pool fused (oneDNN) ------------------------------ */

static int no_op_cb(void *user, int i, const float *out, fp_shape shape)
{
    (void)user, (void)i, (void)out, (void)shape;
    return 0;
}

/* The one-layer convolution + max pool network in cfg: run with the
 * reference kernels, then at 1 and 2 threads one layer after the other and
 * fused (where prepared: `fuse` says whether it must be), which must agree
 * bit for bit, and with the reference within TOL. */
static void check_conv_pool(const char *cfg, const char *what, int fuse)
{
    float *ref = NULL;
    size_t n = 0;
    for (int t = 0; t <= 2; t++) { /* 0: reference kernels, then 1 and 2 threads */
        fpi_fast_set_mode(t ? FPI_FAST_AUTO : FPI_FAST_OFF);
        fp_net *net = NULL;
        CHECK_OK(fp_net_parse_cfg(cfg, "pool.cfg", &net));
        if (!net) continue;
        CHECK_OK(fp_net_init_weights_random(net, 11));
        CHECK_OK(fp_net_set_threads(net, t ? t : 1));
        CHECK_OK(fp_net_setup(net));
        /* fuse 2: unless oneDNN's kernel is a brgconv one (AVX-512, deep
         * 3x3 layers), which writes nhwc, where a short last block of
         * channels is not one the pool kernel reads */
        const char *impl = fpi_dnnl_layer_impl(&net->layers[0]);
        int want = fuse == 2 ? !(impl && strstr(impl, "brg")) : fuse;
        if (t) CHECK_MSG((fpi_fused_pool(&net->layers[0]) == 1) == want, "%s: fused %d, expected %d (%s)", what,
                         fpi_fused_pool(&net->layers[0]) == 1, want, impl ? impl : "no oneDNN");
        fill_input(fp_net_input(net), fp_shape_count(fp_net_input_shape(net)), 21);
        fp_layer_info li;
        CHECK_OK(fp_net_layer_info(net, 1, &li));
        n = fp_shape_count(li.out);
        float *one = malloc(n * sizeof *one);
        CHECK_OK(fp_net_run(net, 0, 1, no_op_cb, NULL)); /* one layer after the other */
        if (one) memcpy(one, fp_net_output(net, 1), n * sizeof *one);
        /* the arena may have reused the input's memory */
        fill_input(fp_net_input(net), fp_shape_count(fp_net_input_shape(net)), 21);
        /* the unfused run's output overwritten (unless it lies on the
         * input), so a value the fused run does not write shows */
        float *mut = fp_net_output_mut(net, 1), *in = fp_net_input(net);
        size_t in_n = fp_shape_count(fp_net_input_shape(net));
        if (mut && (mut + n <= in || in + in_n <= mut))
            for (size_t j = 0; j < n; j++) mut[j] = -12345.f;
        CHECK_OK(fp_net_run(net, 0, 1, NULL, NULL)); /* fused where prepared */
        const float *out = fp_net_output(net, 1);
        if (!t) {
            ref = one;
            one = NULL;
        } else if (one && ref) {
            CHECK_MSG(memcmp(one, out, n * sizeof *one) == 0, "%s threads=%d: fused differs from unfused", what, t);
            double mag = 1e-30;
            size_t bad = 0;
            for (size_t j = 0; j < n; j++)
                if (fabs(ref[j]) > mag) mag = fabs(ref[j]);
            for (size_t j = 0; j < n; j++) bad += !(fabs((double)out[j] - ref[j]) <= TOL * mag);
            CHECK_MSG(bad == 0, "%s threads=%d: %zu of %zu differ from the reference", what, t, bad, n);
        }
        free(one);
        fp_net_destroy(net);
    }
    free(ref);
    fpi_fast_set_mode(FPI_FAST_AUTO);
}

/* A convolution followed by a max pool that alone reads it: fp_net_run
 * without a callback runs the two fused (fpi_conv_pool_dnnl) where the pool
 * allows it; with a callback, one after the other. Both must give the same
 * pool output bit for bit, at 1 and 2 threads, close to the reference
 * kernels', and the fusion must be prepared exactly when it applies. */
static void test_conv_pool(void)
{
    static const struct {
        int w, h, c, f, size, stride, pad; /* input, convolution */
        int psize, pstride, ppad;          /* max pool (ppad < 0: darknet's default) */
        int fuse;                          /* fusion expected (2: check_conv_pool) */
    } cases[] = {
        {64, 48, 3, 16, 3, 1, 1, 2, 2, -1, 1},   /* first layer, bands */
        {33, 27, 16, 40, 3, 1, 1, 2, 2, -1, 1},  /* odd sizes: partial windows on the bottom/right */
        {13, 11, 96, 70, 3, 1, 1, 2, 2, -1, 2},  /* channel blocks, short last block */
        {40, 31, 8, 24, 3, 2, 1, 2, 2, -1, 1},   /* stride-2 convolution */
        {30, 29, 8, 16, 3, 1, 1, 3, 3, -1, 0},   /* 3x3/3: windows start at row -1, not fused */
        {26, 26, 32, 48, 1, 1, 0, 2, 2, -1, 1},  /* 1x1 convolution */
        {13, 13, 32, 64, 3, 1, 1, 2, 1, -1, 0},  /* 2x2/1 (yolov2-tiny): not fused */
        {16, 16, 16, 32, 3, 1, 1, 2, 2, 0, 0},   /* padding=0: not fused */
        {18, 14, 16, 32, 3, 1, 1, 3, 3, 4, 0},   /* window shifted by padding: not fused */
    };
    if (!fpi_dnnl_available()) {
        printf("     oneDNN not available: %s\n", fpi_dnnl_describe());
        return;
    }
    /* Winograd layers whose output is handed on take their tiles in parts */
    fpi_dnnl_set_wino_v_max(64 << 10);
    for (int sizes = 0; sizes < 2; sizes++) {
        fpi_dnnl_set_sizes(0, sizes ? 1e30 : 0);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char cfg[512], what[160];
            int k = snprintf(cfg, sizeof cfg,
                             "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[convolutional]\nbatch_normalize=1\nfilters=%d\n"
                             "size=%d\nstride=%d\npadding=%d\nactivation=%s\n[maxpool]\nsize=%d\nstride=%d\n",
                             cases[i].w, cases[i].h, cases[i].c, cases[i].f, cases[i].size, cases[i].stride, cases[i].pad,
                             i % 2 ? "leaky" : "relu", cases[i].psize, cases[i].pstride);
            if (cases[i].ppad >= 0) snprintf(cfg + k, sizeof cfg - (size_t)k, "padding=%d\n", cases[i].ppad);
            snprintf(what, sizeof what, "conv+pool case %zu (%s)", i, sizes ? "whole" : "pieces");
            check_conv_pool(cfg, what, cases[i].fuse);
        }
    }
    fpi_dnnl_set_sizes(2e6, 25e6);
    fpi_fast_set_mode(FPI_FAST_AUTO);
}

/* ---- first layers on AVX2 (conv_first.c) -------------------------------- */

/* Layer `layer`'s output of cfg (weights seed 11, input seed 21) in a new
 * array, with Winograd's sums in mode (fpi_conv_first_wino), fused (no
 * callback) or not. */
static float *first_run(const char *cfg, int mode, int layer, int fused, size_t *n)
{
    fpi_conv_first_wino(mode);
    fp_net *net = NULL;
    float *out = NULL;
    if (!fp_net_parse_cfg(cfg, "first.cfg", &net) && !fp_net_init_weights_random(net, 11) &&
        !fp_net_set_threads(net, 1) && !fp_net_setup(net)) {
        fill_input(fp_net_input(net), fp_shape_count(fp_net_input_shape(net)), 21);
        fp_layer_info li;
        if (!fp_net_run(net, 0, layer, fused ? NULL : no_op_cb, NULL) && !fp_net_layer_info(net, layer, &li)) {
            *n = fp_shape_count(li.out);
            out = malloc(*n * sizeof *out);
            if (out) memcpy(out, fp_net_output(net, layer), *n * sizeof *out);
        }
    }
    fp_net_destroy(net);
    fpi_conv_first_wino(1);
    return out;
}

/* Winograd's sums with AVX-512 and with AVX2 give the same bits: the
 * layer alone and fused with its pool, C x H x W (where the CPU has
 * AVX-512; elsewhere only the AVX2 path runs). */
static void test_first_wino512(void)
{
    if (!fpi_cpu_get()->avx512 || !fpi_cpu_get()->avx2 || !fpi_cpu_get()->fma) {
        printf("     no AVX-512 here: only the AVX2 path runs\n");
        return;
    }
    static const char *const cfgs[] = {
        "[net]\nwidth=70\nheight=37\nchannels=3\n[convolutional]\nfilters=16\nsize=3\nstride=1\npad=1\n"
        "activation=leaky\n[maxpool]\nsize=2\nstride=2\n",
        "[net]\nwidth=98\nheight=42\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\n"
        "pad=0\nactivation=relu\n[maxpool]\nsize=2\nstride=2\n",
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
        for (int q = 0; q < 2; q++) { /* the pool's output fused, the layer's alone */
            size_t na = 0, nb = 0;
            float *a = first_run(cfgs[i], 1, q ? 0 : 1, !q, &na), *b = first_run(cfgs[i], 2, q ? 0 : 1, !q, &nb);
            CHECK_MSG(a && b && na == nb && memcmp(a, b, na * sizeof *a) == 0,
                      "case %zu %s: AVX-512 and AVX2 Winograd sums differ", i, q ? "alone" : "pooled");
            free(a);
            free(b);
        }
}

/* The first-layer kernel, forced on where the CPU has AVX2 and FMA (on
 * AVX-512 CPUs it otherwise takes only an image's 16 filters, by Winograd's
 * sums; the other layers go to oneDNN): 3x3/1, padding 1 and 0,
 * 1-3 channels, widths that are and are not multiples of 16 (a last block of 8 columns
 * or fewer among them), odd heights
 * (a last lone row), every activation it takes; alone against the
 * reference, and fused with a 2x2/2 max pool against itself unfused. */
static void test_conv_first(void)
{
    static const struct { int w, h, c, f, pad; } cases[] = {
        {16, 16, 3, 4, 1},  {40, 33, 3, 16, 1}, {37, 20, 1, 8, 1}, {64, 48, 2, 32, 1},
        {18, 19, 3, 12, 0}, {50, 42, 3, 16, 0}, {19, 9, 2, 4, 0}, {38, 22, 3, 8, 1},
        {32, 10, 3, 8, 1},  {28, 12, 2, 4, 0}, /* a last block of 8 columns or fewer */
    };
    static const char *const acts[] = {"linear", "leaky", "relu"};
    if (!fpi_conv_first_cpu()) fpi_conv_first_force(1);
    if (!fpi_conv_first_cpu()) {
        printf("     no AVX2 + FMA here: the first-layer kernel does not run\n");
        return;
    }
    int n = 0, runs = 0;
    /* an image's 16 filters by Winograd's sums (1: AVX-512 where the CPU has
     * it, 2: AVX2), and directly (0) */
    for (int mode = 0; mode < 3; mode++)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int a = 0; a < 3; a++) {
            if (mode && !(cases[i].c == 3 && cases[i].f == 16)) continue;
            fpi_conv_first_wino(mode ? mode : 0);
            runs++;
            char cfg[512], what[160];
            snprintf(cfg, sizeof cfg,
                     "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[convolutional]\nbatch_normalize=%d\nfilters=%d\n"
                     "size=3\nstride=1\npadding=%d\nactivation=%s\n",
                     cases[i].w, cases[i].h, cases[i].c, a == 1, cases[i].f, cases[i].pad, acts[a]);
            snprintf(what, sizeof what, "first layer in=%dx%dx%d f=%d pad=%d %s", cases[i].w, cases[i].h, cases[i].c,
                     cases[i].f, cases[i].pad, acts[a]);
            fp_net *net = NULL;
            CHECK_OK(fp_net_parse_cfg(cfg, "first.cfg", &net));
            if (net) {
                CHECK_OK(fp_net_init_weights_random(net, 5));
                CHECK_OK(fp_net_setup(net));
                CHECK_MSG(net->layers[0].conv_first == 1, "%s: not taken by the first-layer kernel", what);
                CHECK_MSG((net->layers[0].first_wino != NULL) == (mode && cases[i].c == 3 && cases[i].f == 16),
                          "%s: Winograd's sums %d in mode %d", what, net->layers[0].first_wino != NULL, mode);
                fp_net_destroy(net);
            }
            for (int t = 1; t <= 2; t++) n += check_layer(cfg, what, t, fpi_conv_first, NEEDS_NOTHING, TOL);
            int ow = cases[i].w + 2 * cases[i].pad - 2, oh = cases[i].h + 2 * cases[i].pad - 2;
            size_t k = strlen(cfg);
            snprintf(cfg + k, sizeof cfg - k, "[maxpool]\nsize=2\nstride=2\n");
            snprintf(what + strlen(what), sizeof what - strlen(what), " + 2x2/2 max pool");
            check_conv_pool(cfg, what, ow % 2 == 0 && oh % 2 == 0);
        }
    CHECK_MSG(n == 2 * runs, "%d of %d cases agree", n, 2 * runs);
    fpi_conv_first_wino(1);
    fpi_conv_first_force(0);
}

/* ---- 3x3 convolutions over nChw8c maps (conv3x3.c) ----------------------- */

#if defined(__x86_64__)
/* A w x h x 256 -> 256 3x3 layer in a network (AVX2 without AVX-512, where
 * oneDNN cuts it by channels into pieces of 32 filters, each piece its own
 * weights, bias and output): runs the kernel whose name has `impl`, and
 * matches the reference kernel at 1 and 2 threads. */
static void check_deep3x3(int w, int h, const char *impl)
{
    if (!fpi_dnnl_available() || fpi_cpu_get()->avx512) return;
    char cfg[256], what[96];
    snprintf(cfg, sizeof cfg, "[net]\nwidth=%d\nheight=%d\nchannels=256\n[convolutional]\nbatch_normalize=1\n"
             "filters=256\nsize=3\nstride=1\npad=1\nactivation=leaky\n", w, h);
    snprintf(what, sizeof what, "conv %dx%dx256 -> 256 (%s)", w, h, impl);
    fp_net *net = NULL;
    CHECK_OK(fp_net_parse_cfg(cfg, "c3.cfg", &net));
    if (net) {
        CHECK_OK(fp_net_init_weights_random(net, 3));
        CHECK_OK(fp_net_setup(net));
        const char *got = fpi_dnnl_layer_impl(&net->layers[0]);
        CHECK_MSG(got && strstr(got, impl), "%s runs %s", what, got ? got : "no oneDNN");
        fp_net_destroy(net);
    }
    for (int t = 1; t <= 2; t++) check_layer(cfg, what, t, fpi_conv_dnnl, NEEDS_DNNL, TOL);
}

/* Output values of a 3x3 stride-1 layer (padding 1 across, pad_t above;
 * nChw8c input of rows_in rows, OIhw8i8o weights, rows x w dense nChw8c
 * output) farther than 1e-5 x (1 + the sum of the terms' magnitudes) from
 * act(sum + bias) in double: float sums of up to 9 x 264 terms, one term
 * more or less is about that sum / 2376. */
static size_t off_3x3(const float *in, int c, int rows_in, int w, int pad_t, const float *wt, const float *bias,
                      int oc, fp_activation act, int rows, const float *out)
{
    size_t plane = (size_t)rows_in * w, ob = (size_t)rows * w, bad = 0;
    int nbi = c / 8;
    for (int o = 0; o < oc; o++)
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < w; x++) {
                double sum = 0, mag = 0;
                for (int ch = 0; ch < c; ch++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = y - pad_t + ky, ix = x - 1 + kx;
                            if (iy < 0 || iy >= rows_in || ix < 0 || ix >= w) continue;
                            double v = (double)in[((size_t)(ch / 8) * plane + (size_t)iy * w + ix) * 8 + ch % 8] *
                                       wt[((((size_t)(o / 8) * nbi + ch / 8) * 9 + ky * 3 + kx) * 8 + ch % 8) * 8 + o % 8];
                            sum += v;
                            mag += fabs(v);
                        }
                sum += bias[o];
                if (act == FP_ACT_LEAKY && sum < 0) sum *= .1;
                if (act == FP_ACT_RELU && sum < 0) sum = 0;
                float got = out[((size_t)(o / 8) * ob + (size_t)y * w + x) * 8 + o % 8];
                bad += !(fabs(got - sum) <= 1e-5 * (1 + mag));
            }
    return bad;
}

#endif

/* The kernel alone, wherever AVX2 and FMA exist (dnnl.c gives it layers only
 * where oneDNN works in nChw8c): against sums in double, over maps whose
 * pixels leave 0, 1 or 2 for a last tile, 1x1 and one-row maps, input
 * channel blocks fewer and more than a chunk, 4 and 8 filter blocks, every
 * activation it takes, and bands of rows (input rows above and below
 * given, or cut off as padding); output values past the band untouched. */
static void test_conv3x3(void)
{
#if defined(__x86_64__)
    static const struct { int rows, w, c, oc, pad_t, extra; } cases[] = {
        {13, 13, 64, 64, 1, 0}, {7, 7, 72, 32, 1, 0}, {5, 4, 40, 32, 1, 0}, {1, 1, 16, 32, 1, 0},
        {1, 5, 8, 32, 1, 0},    {3, 2, 24, 64, 1, 0}, {6, 11, 16, 32, 0, 2}, {4, 9, 32, 32, 1, 1},
        {12, 14, 96, 32, 1, 0},
    };
    if (!fpi_cpu_get()->avx2 || !fpi_cpu_get()->fma) {
        printf("     no AVX2 + FMA here: the 3x3 kernel does not run\n");
        return;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* output rows [0, rows) read input rows y - pad_t .. y - pad_t + 2 of rows_in */
        int rows = cases[i].rows, w = cases[i].w, c = cases[i].c, oc = cases[i].oc, pad_t = cases[i].pad_t;
        int rows_in = rows - pad_t + 1 + cases[i].extra / 2, nbi = c / 8, nbo = oc / 8;
        if (rows_in > rows + 2 - pad_t) rows_in = rows + 2 - pad_t;
        fp_activation act = i % 3 == 0 ? FP_ACT_LINEAR : i % 3 == 1 ? FP_ACT_LEAKY : FP_ACT_RELU;
        size_t plane = (size_t)rows_in * w, ob = (size_t)rows * w, nout = (size_t)oc * ob + 64;
        float *in = malloc((size_t)c * plane * sizeof(float)), *wt = malloc((size_t)oc * c * 9 * sizeof(float)),
              *bias = malloc(oc * sizeof(float)), *out = malloc(nout * sizeof(float));
        CHECK(in && wt && bias && out);
        if (in && wt && bias && out) {
            fill_input(in, (size_t)c * plane, 11 + (uint32_t)i);
            fill_input(wt, (size_t)oc * c * 9, 5 + (uint32_t)i); /* OIhw8i8o */
            fill_input(bias, oc, 3);
            for (size_t j = 0; j < nout; j++) out[j] = NAN;
            fpi_conv3x3_avx2(in, nbi, rows_in, w, pad_t, wt, bias, nbo, act, rows, w, out);
            size_t bad = off_3x3(in, c, rows_in, w, pad_t, wt, bias, oc, act, rows, out), untouched = 0;
            for (size_t j = (size_t)oc * ob; j < nout; j++) untouched += isnan(out[j]) != 0;
            CHECK_MSG(bad == 0, "3x3 %zu (%dx%d, %d -> %d, pad_t %d, %d input rows, %s): %zu values off", i, rows, w, c,
                      oc, pad_t, rows_in, act_names[act], bad);
            CHECK_MSG(untouched == 64, "3x3 %zu: wrote past its output", i);
        }
        free(in), free(wt), free(bias), free(out);
    }
    /* in a network, cut by channels into pieces of 32 filters (dnnl.c, the
     * usual piece sizes): each piece its own weights, bias and output; on a
     * map of fewer than 16 tiles (6x5: 9), where Winograd's is not taken */
    check_deep3x3(6, 5, "3x3 vector kernel");
#else
    printf("     not x86-64: no 3x3 vector kernel\n");
#endif
}

/* ---- 3x3 convolutions by Winograd's F(2x2, 3x3) (wino.c) ----------------- */

#if defined(__x86_64__)
/* The kernel for layers cut by rows (fpi_wino_rows_avx2) on the map of a
 * case whose whole-map result `ref` (nChw8c) the other passed: the same
 * bits over the whole map from nChw8c into nChw8c; in two bands split at
 * an odd row from nchw into nchw; pooled (2x2/2, darknet's windows) in two
 * bands split at an even row against ref pooled; nothing written past its
 * output or its scratch. */
static void check_wino_rows(const float *in, int c, int rows, int w, const float *wt, const float *bias, int oc,
                            fp_activation act, const float *ref, size_t i)
{
    int nbi = c / 8, nbo = oc / 8, ph = rows / 2 + rows % 2, pw = w / 2 + w % 2;
    size_t plane = (size_t)rows * w, n = (size_t)oc * plane, nu = fpi_wino_u_floats(nbi, nbo),
           ns = fpi_wino_rows_scratch_floats(nbi) + 64;
    float *u = malloc(nu * sizeof(float)), *sc = malloc(ns * sizeof(float)), *o = malloc((n + 64) * sizeof(float)),
          *nchw = malloc((size_t)c * plane * sizeof(float));
    CHECK(u && sc && o && nchw);
    if (!u || !sc || !o || !nchw) goto done;
    fpi_wino_weights_avx2(wt, nbi, nbo, u);
    for (size_t j = 0; j < ns; j++) sc[j] = NAN;
    for (int ch = 0; ch < c; ch++)
        for (size_t q = 0; q < plane; q++) nchw[(size_t)ch * plane + q] = in[((size_t)(ch / 8) * plane + q) * 8 + ch % 8];
    fpi_vmap blk_in = {(float *)in, plane * 8, (size_t)w * 8, 8, 1}, nchw_in = {nchw, plane * 8, (size_t)w, 1, plane};
    size_t bad = 0, past = 0;
    /* whole map, nChw8c */
    for (size_t j = 0; j < n + 64; j++) o[j] = NAN;
    fpi_vmap out = {o, plane * 8, (size_t)w * 8, 8, 1};
    fpi_wino_rows_avx2(&blk_in, nbi, rows, w, u, bias, nbo, act, 0, rows, &out, 0, sc);
    for (size_t j = 0; j < n; j++) bad += memcmp(&o[j], &ref[j], sizeof(float)) != 0;
    for (size_t j = n; j < n + 64; j++) past += !isnan(o[j]);
    CHECK_MSG(bad == 0 && past == 0, "Winograd by rows %zu: %zu values differ from the whole-map kernel's, %zu past", i,
              bad, past);
    /* two bands split at an odd row, nchw in and out */
    int cut = rows > 2 ? (rows / 2) | 1 : rows;
    for (size_t j = 0; j < n + 64; j++) o[j] = NAN;
    for (int b = 0; b < 2; b++) {
        int y0 = b ? cut : 0, y1 = b ? rows : cut;
        if (y0 >= y1) continue;
        fpi_vmap ob = {o + (size_t)y0 * w, plane * 8, (size_t)w, 1, plane};
        fpi_wino_rows_avx2(&nchw_in, nbi, rows, w, u, bias, nbo, act, y0, y1, &ob, 0, sc);
    }
    bad = past = 0;
    for (int ch = 0; ch < oc; ch++)
        for (size_t q = 0; q < plane; q++)
            bad += memcmp(&o[(size_t)ch * plane + q], &ref[((size_t)(ch / 8) * plane + q) * 8 + ch % 8], sizeof(float)) != 0;
    for (size_t j = n; j < n + 64; j++) past += !isnan(o[j]);
    CHECK_MSG(bad == 0 && past == 0, "Winograd by rows %zu, nchw bands cut at %d: %zu values differ, %zu past", i, cut,
              bad, past);
    /* pooled, two bands split at an even row */
    size_t pn = (size_t)oc * ph * pw;
    cut = rows > 3 ? rows / 4 * 2 : rows;
    for (size_t j = 0; j < pn + 64; j++) o[j] = NAN;
    for (int b = 0; b < 2; b++) {
        int y0 = b ? cut : 0, y1 = b ? rows : cut;
        if (y0 >= y1) continue;
        fpi_vmap ob = {o + (size_t)(y0 / 2) * pw * 8, (size_t)ph * pw * 8, (size_t)pw * 8, 8, 1};
        fpi_wino_rows_avx2(&blk_in, nbi, rows, w, u, bias, nbo, act, y0, y1, &ob, 1, sc);
    }
    bad = past = 0;
    for (int ch = 0; ch < oc; ch++)
        for (int py = 0; py < ph; py++)
            for (int px = 0; px < pw; px++) {
                float m = -FLT_MAX;
                for (int k = 0; k < 4; k++) {
                    int y = 2 * py + k / 2, x = 2 * px + k % 2;
                    if (y >= rows || x >= w) continue;
                    float v = ref[((size_t)(ch / 8) * plane + (size_t)y * w + x) * 8 + ch % 8];
                    m = v > m ? v : m;
                }
                bad += memcmp(&m, &o[(((size_t)(ch / 8) * ph + py) * pw + px) * 8 + ch % 8], sizeof m) != 0;
            }
    for (size_t j = pn; j < pn + 64; j++) past += !isnan(o[j]);
    for (size_t j = ns - 64; j < ns; j++) past += !isnan(sc[j]);
    CHECK_MSG(bad == 0 && past == 0, "Winograd by rows %zu, pooled: %zu values differ, %zu past", i, bad, past);
done:
    free(u), free(sc), free(o), free(nchw);
}

#endif

/* The kernel alone against sums in double: odd and even sides (a last
 * tile's second row or column left out), maps of one tile, 1 to 33 blocks
 * of input channels (chunks of 16 blocks: one, a chunk and a bit, three),
 * a last group of 1 or 2 tiles, the input's transform in two calls of
 * blocks, the tiles in two parts one after the other; nothing written past
 * the output, the transform or the scratch.
 * Then a layer cut into 32-filter pieces in a network, at 1 and 2 threads,
 * against the reference kernel. */
static void test_wino(void)
{
#if defined(__x86_64__)
    static const struct { int rows, w, c, oc; } cases[] = {
        {13, 13, 64, 64}, {7, 7, 72, 32}, {5, 4, 40, 32}, {1, 1, 16, 32},  {1, 5, 8, 32},    {3, 2, 24, 64},
        {12, 14, 96, 32}, {6, 11, 136, 32}, {2, 9, 264, 64}, {4, 4, 8, 32}, {9, 2, 128, 96},
    };
    if (!fpi_cpu_get()->avx2 || !fpi_cpu_get()->fma) {
        printf("     no AVX2 + FMA here: the Winograd kernel does not run\n");
        return;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rows = cases[i].rows, w = cases[i].w, c = cases[i].c, oc = cases[i].oc, nbi = c / 8, nbo = oc / 8;
        fp_activation act = i % 3 == 0 ? FP_ACT_LINEAR : i % 3 == 1 ? FP_ACT_LEAKY : FP_ACT_RELU;
        /* the tiles in two parts (the first the larger, as dnnl.c cuts them) */
        int nt = (int)fpi_wino_tiles(rows, w), per = (nt + 1) / 2;
        size_t plane = (size_t)rows * w, nout = (size_t)oc * plane + 64, nv = fpi_wino_v_floats(nbi, per) + 64,
               ns = fpi_wino_scratch_floats(nbi, per) + 64;
        float *in = malloc((size_t)c * plane * sizeof(float)), *wt = malloc((size_t)oc * c * 9 * sizeof(float)),
              *bias = malloc(oc * sizeof(float)), *out = malloc(nout * sizeof(float)), *v = malloc(nv * sizeof(float)),
              *sc = malloc(ns * sizeof(float));
        CHECK(in && wt && bias && out && v && sc);
        if (in && wt && bias && out && v && sc) {
            fill_input(in, (size_t)c * plane, 17 + (uint32_t)i);
            fill_input(wt, (size_t)oc * c * 9, 7 + (uint32_t)i); /* OIhw8i8o */
            fill_input(bias, oc, 3);
            for (size_t j = 0; j < nout; j++) out[j] = NAN;
            for (size_t j = 0; j < nv; j++) v[j] = NAN;
            for (size_t j = 0; j < ns; j++) sc[j] = NAN;
            fpi_vmap vin = {in, plane * 8, (size_t)w * 8, 8, 1};
            for (int q0 = 0; q0 < nt; q0 += per) {
                int n = nt - q0 < per ? nt - q0 : per;
                fpi_wino_input_avx2(&vin, nbi, 0, nbi / 2, rows, w, q0, n, v);
                fpi_wino_input_avx2(&vin, nbi, nbi / 2, nbi, rows, w, q0, n, v);
                fpi_wino_conv_avx2(v, nbi, rows, w, q0, n, wt, bias, nbo, act, out, sc);
            }
            /* the transforms add up to 16 of a tile's values before and after the
             * products: a few roundings more than the direct sums, within the bound */
            size_t bad = off_3x3(in, c, rows, w, 1, wt, bias, oc, act, rows, out), past = 0;
            for (size_t j = (size_t)oc * plane; j < nout; j++) past += !isnan(out[j]);
            for (size_t j = nv - 64; j < nv; j++) past += !isnan(v[j]);
            for (size_t j = ns - 64; j < ns; j++) past += !isnan(sc[j]);
            CHECK_MSG(bad == 0, "Winograd %zu (%dx%d, %d -> %d, %s): %zu values off", i, rows, w, c, oc,
                      act_names[act], bad);
            CHECK_MSG(past == 0, "Winograd %zu: wrote past its output, transform or scratch", i);
            if (c <= 64) check_wino_rows(in, c, rows, w, wt, bias, oc, act, out, i);
        }
        free(in), free(wt), free(bias), free(out), free(v), free(sc);
    }
    /* in a network: a map of 42 tiles cut by channels into pieces of 32 filters */
    check_deep3x3(13, 11, "Winograd");
#else
    printf("     not x86-64: no Winograd kernel\n");
#endif
}

/* ---- 3x3 depthwise convolutions over 8- and 16-channel vectors (dw3x3.c) - */

/* The kernel alone, wherever AVX2 and FMA exist, and its 16-lane version
 * where AVX-512 does: against sums in double for
 * widths from 1 column to several groups of 8 (the first and last columns,
 * and a last group overlapping the one before), every activation it takes;
 * nChw8c input (groups of 8 columns) and C x H x W input (column by column)
 * give the same bits, and so do rows computed in two bands. */
static void test_dw3x3(void)
{
#if defined(__x86_64__)
    static const struct { int h, w, c; } cases[] = {{5, 1, 8},  {3, 2, 16}, {4, 7, 8},   {6, 8, 16}, {5, 9, 8},
                                                    {7, 10, 24}, {13, 13, 16}, {4, 16, 8}, {3, 17, 16}, {6, 26, 8},
                                                    {2, 50, 16}, {1, 12, 8}, {6, 26, 32}, {4, 11, 48}};
    if (!fpi_cpu_get()->avx2 || !fpi_cpu_get()->fma) {
        printf("     no AVX2 + FMA here: the depthwise kernel does not run\n");
        return;
    }
    /* 8 lanes (AVX2) and, where the CPU has AVX-512, 16 */
    for (int L = 8; L <= 16; L += 8)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (L == 16 && (!fpi_cpu_get()->avx512 || cases[i].c % 16)) continue;
        void (*dw)(const fpi_vmap *, int, int, const float *, const float *, fp_activation, int, int, int,
                   const fpi_vmap *) = L == 8 ? fpi_dw3x3_avx2 : fpi_dw3x3_avx512;
        fp_activation act = i % 3 == 0 ? FP_ACT_LINEAR : i % 3 == 1 ? FP_ACT_LEAKY : FP_ACT_RELU;
        int h = cases[i].h, w = cases[i].w, c = cases[i].c, nb = c / L;
        size_t sL = (size_t)L;
        size_t hw = (size_t)h * w, n = (size_t)c * hw;
        float *blk = malloc(n * sizeof(float)), *chw = malloc(n * sizeof(float)), *wt = malloc((size_t)c * 9 * sizeof(float)),
              *bias = malloc(c * sizeof(float)), *o1 = malloc(n * sizeof(float)), *o2 = malloc(n * sizeof(float)),
              *o3 = malloc(n * sizeof(float));
        CHECK(blk && chw && wt && bias && o1 && o2 && o3);
        if (blk && chw && wt && bias && o1 && o2 && o3) {
            fill_input(chw, n, 5 + (uint32_t)i);
            fill_input(wt, (size_t)c * 9, 11 + (uint32_t)i); /* [block][ky][kx][L] */
            fill_input(bias, c, 13);
            for (int ch = 0; ch < c; ch++)
                for (size_t q = 0; q < hw; q++) blk[(ch / L * hw + q) * L + ch % L] = chw[ch * hw + q];
            fpi_vmap in_b = {blk, hw * sL, (size_t)w * sL, sL, 1}, in_p = {chw, hw * sL, (size_t)w, 1, hw};
            fpi_vmap out_b = {o1, hw * sL, (size_t)w * sL, sL, 1}, out_b2 = {o2, hw * sL, (size_t)w * sL, sL, 1};
            dw(&in_b, h, w, wt, bias, act, nb, 0, h, &out_b);
            dw(&in_p, h, w, wt, bias, act, nb, 0, h, &out_b2);
            CHECK_MSG(memcmp(o1, o2, n * sizeof(float)) == 0, "dw3x3 %zu, %d lanes: C x H x W input gives other bits",
                      i, L);
            /* in two bands of rows, each written from its own row 0 */
            fpi_vmap top = {o3, hw * sL, (size_t)w * sL, sL, 1},
                     bottom = {o3 + (size_t)(h / 2) * w * sL, hw * sL, (size_t)w * sL, sL, 1};
            dw(&in_b, h, w, wt, bias, act, nb, 0, h / 2, &top);
            dw(&in_b, h, w, wt, bias, act, nb, h / 2, h, &bottom);
            CHECK_MSG(memcmp(o1, o3, n * sizeof(float)) == 0, "dw3x3 %zu, %d lanes: rows in two bands give other bits",
                      i, L);
            size_t bad = 0;
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++) {
                        double sum = bias[ch];
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int yy = y + ky - 1, xx = x + kx - 1;
                                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                                sum += (double)wt[((size_t)(ch / L) * 9 + ky * 3 + kx) * L + ch % L] *
                                       chw[(size_t)ch * hw + (size_t)yy * w + xx];
                            }
                        if (act == FP_ACT_LEAKY && sum < 0) sum *= .1;
                        if (act == FP_ACT_RELU && sum < 0) sum = 0;
                        float got = o1[(ch / L * hw + (size_t)y * w + x) * L + ch % L];
                        bad += !(fabs(got - sum) <= 1e-5 * (1 + fabs(sum)));
                    }
            CHECK_MSG(bad == 0, "dw3x3 %zu, %d lanes (%dx%dx%d, %s): %zu values off", i, L, h, w, c, act_names[act],
                      bad);
        }
        free(blk), free(chw), free(wt), free(bias), free(o1), free(o2), free(o3);
    }
#else
    printf("     not x86-64: no depthwise vector kernel\n");
#endif
}

/* ---- 1x1 convolutions over 8- and 16-channel vectors (conv1x1.c) ---------- */

/* The kernel alone, wherever AVX2 and FMA exist (dnnl.c gives it layers only
 * where oneDNN works in nChw8c), and its 16-lane version where AVX-512 does
 * (nChw16c; groups of 4, 3 + 2, 3 + 3, 4 + 3 blocks of filters): against
 * sums in double, over whole and partial column tiles, an odd number of
 * filter blocks and every activation it takes; the input in nChw8c / nChw16c and in C x H x W give the same bits, as do
 * an output in C x H x W, and a pooled run equals the unpooled output pooled
 * in the reference's order, windows cut by odd sides included. */
static void test_conv1x1(void)
{
#if defined(__x86_64__)
    static const struct { int h, w, c, oc; } cases[] = {{6, 10, 16, 32}, {4, 7, 8, 40}, {2, 2, 24, 8},
                                                        {8, 12, 64, 24}, {5, 9, 16, 16}, {1, 1, 8, 8},
                                                        /* 16-lane blocks of filters 5, 6, 7 (3 + 2, 3 + 3, 4 + 3) */
                                                        {3, 5, 32, 80}, {4, 6, 16, 96}, {3, 7, 48, 112}};
    if (!fpi_cpu_get()->avx2 || !fpi_cpu_get()->fma) {
        printf("     no AVX2 + FMA here: the 1x1 kernel does not run\n");
        return;
    }
    /* 8 lanes (AVX2) and, where the CPU has AVX-512, 16 */
    for (int L = 8; L <= 16; L += 8)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int a = 0; a < 3; a++) {
            if (L == 16 && (!fpi_cpu_get()->avx512 || cases[i].c % 16 || cases[i].oc % 16)) continue;
            void (*conv)(const fpi_vmap *, int, const float *, const float *, int, fp_activation, int, int, int,
                         const fpi_vmap *, int) = L == 8 ? fpi_conv1x1_avx2 : fpi_conv1x1_avx512;
            fp_activation act = a == 0 ? FP_ACT_LINEAR : a == 1 ? FP_ACT_LEAKY : FP_ACT_RELU;
            int h = cases[i].h, w = cases[i].w, c = cases[i].c, oc = cases[i].oc, nbi = c / L, nbo = oc / L;
            size_t hw = (size_t)h * w, nin = (size_t)c * hw, nout = (size_t)oc * hw;
            float *blk = malloc(nin * sizeof(float)), *chw = malloc(nin * sizeof(float)),
                  *wt = aligned_alloc(32, (size_t)c * oc * sizeof(float)), *bias = malloc(oc * sizeof(float)),
                  *o1 = malloc(nout * sizeof(float)), *o2 = malloc(nout * sizeof(float)),
                  *o3 = malloc(nout * sizeof(float)), *po = malloc(nout * sizeof(float));
            CHECK(blk && chw && wt && bias && o1 && o2 && o3 && po);
            if (blk && chw && wt && bias && o1 && o2 && o3 && po) {
                fill_input(chw, nin, 3 + (uint32_t)i);
                fill_input(wt, (size_t)c * oc, 7 + (uint32_t)i);
                fill_input(bias, oc, 9);
                for (int ch = 0; ch < c; ch++)
                    for (size_t q = 0; q < hw; q++) blk[(ch / L * hw + q) * L + ch % L] = chw[ch * hw + q];
                size_t sL = (size_t)L;
                fpi_vmap in_b = {blk, hw * sL, (size_t)w * sL, sL, 1}, in_p = {chw, hw * sL, (size_t)w, 1, hw};
                fpi_vmap out_b = {o1, hw * sL, (size_t)w * sL, sL, 1}, out_b2 = {o2, hw * sL, (size_t)w * sL, sL, 1};
                fpi_vmap out_p = {o3, hw * sL, (size_t)w, 1, hw};
                conv(&in_b, nbi, wt, bias, nbo, act, 0, h, w, &out_b, 0);
                conv(&in_p, nbi, wt, bias, nbo, act, 0, h, w, &out_b2, 0);
                /* the bottom rows alone, written from their own row 0 */
                fpi_vmap out_rows = {o3 + (size_t)(h / 2) * w, hw * sL, (size_t)w, 1, hw};
                conv(&in_b, nbi, wt, bias, nbo, act, 0, h / 2, w, &out_p, 0);
                conv(&in_b, nbi, wt, bias, nbo, act, h / 2, h, w, &out_rows, 0);
                CHECK_MSG(memcmp(o1, o2, nout * sizeof(float)) == 0, "1x1 %zu, %d lanes: C x H x W input gives other bits",
                          i, L);
                size_t bad = 0;
                double mag = 1e-30;
                for (int o = 0; o < oc; o++)
                    for (size_t q = 0; q < hw; q++) {
                        double sum = 0;
                        for (int ch = 0; ch < c; ch++)
                            sum += (double)wt[((size_t)(o / L) * c + ch) * L + o % L] * chw[ch * hw + q];
                        sum += bias[o];
                        if (act == FP_ACT_LEAKY && sum < 0) sum *= .1;
                        if (act == FP_ACT_RELU && sum < 0) sum = 0;
                        float got = o1[(o / L * hw + q) * L + o % L];
                        bad += !(fabs(got - sum) <= 1e-5 * (1 + fabs(sum)));
                        bad += memcmp(&got, &o3[o * hw + q], sizeof got) != 0;
                        if (fabs(sum) > mag) mag = fabs(sum);
                    }
                CHECK_MSG(bad == 0, "1x1 %zu, %d lanes (%s): %zu values off", i, L, act_names[a], bad);
                {
                    size_t pw = ((size_t)w + 1) / 2, ph = ((size_t)h + 1) / 2, phw = ph * pw;
                    fpi_vmap pooled = {po, phw * sL, pw * sL, sL, 1};
                    conv(&in_b, nbi, wt, bias, nbo, act, 0, h, w, &pooled, 1);
                    size_t diff = 0;
                    for (int b = 0; b < nbo; b++)
                        for (size_t y = 0; y < ph; y++)
                            for (size_t x = 0; x < pw; x++)
                                for (int j = 0; j < L; j++) {
                                    float m = -FLT_MAX;
                                    for (size_t dy = 0; dy < 2; dy++)
                                        for (size_t dx = 0; dx < 2; dx++) {
                                            if (2 * y + dy >= (size_t)h || 2 * x + dx >= (size_t)w) continue;
                                            float v = o1[(b * hw + (2 * y + dy) * w + 2 * x + dx) * L + j];
                                            m = v > m ? v : m;
                                        }
                                    diff += memcmp(&m, &po[((b * ph + y) * pw + x) * L + j], sizeof m) != 0;
                                }
                    CHECK_MSG(diff == 0, "1x1 %zu, %d lanes (%s): pooled run differs from the pooled output in %zu",
                              i, L, act_names[a], diff);
                }
            }
            free(blk), free(chw), free(wt), free(bias), free(o1), free(o2), free(o3), free(po);
        }
#else
    printf("     not x86-64: no 1x1 vector kernel\n");
#endif
}

/* ---- oneDNN layer chains (hand-offs in the blocked layout) --------------- */

static const char chain_yolo[] = /* YOLO-like: bands, fused pools, channel blocks */
    "[net]\nwidth=70\nheight=58\nchannels=3\n"
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=32\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=64\nsize=3\nstride=1\npad=1\nactivation=relu\n"
    "[convolutional]\nfilters=128\nsize=1\nstride=1\npad=0\nactivation=leaky\n"
    "[convolutional]\nfilters=256\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=40\nsize=1\nstride=1\npad=0\nactivation=linear\n";
static const char chain_face[] = /* face-detector-like: depthwise + pointwise, odd sizes, a 2x2/1 pool */
    "[net]\nwidth=63\nheight=61\nchannels=3\n"
    "[convolutional]\nfilters=16\nsize=3\nstride=1\npad=0\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=16\ngroups=16\nsize=3\nstride=1\npad=1\nactivation=linear\n"
    "[convolutional]\nfilters=32\nsize=1\nstride=1\npad=0\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=32\ngroups=32\nsize=3\nstride=1\npad=1\nactivation=linear\n"
    "[convolutional]\nfilters=64\nsize=1\nstride=1\npad=0\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=1\n"
    "[convolutional]\nfilters=30\nsize=1\nstride=1\npad=0\nactivation=linear\n";
static const char chain_face_even[] = /* even sides (pooled in registers), 5 blocks of filters, relu, linear */
    "[net]\nwidth=52\nheight=44\nchannels=3\n"
    "[convolutional]\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=16\ngroups=16\nsize=3\nstride=1\npad=1\nactivation=linear\n"
    "[convolutional]\nfilters=32\nsize=1\nstride=1\npad=0\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=32\ngroups=32\nsize=3\nstride=1\npad=1\nactivation=linear\n"
    "[convolutional]\nfilters=40\nsize=1\nstride=1\npad=0\nactivation=relu\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=24\nsize=1\nstride=1\npad=0\nactivation=linear\n";
static const char chain_odd[] = /* strides that leave input columns out, a 3x3/1 pool, a logistic */
    "[net]\nwidth=32\nheight=29\nchannels=16\n"
    "[convolutional]\nfilters=32\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=32\nsize=5\nstride=2\npad=0\nactivation=relu\n"
    "[convolutional]\nfilters=48\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=3\nstride=1\n"
    "[convolutional]\nfilters=64\nsize=3\nstride=1\npad=1\nactivation=logistic\n"
    "[convolutional]\nfilters=16\nsize=1\nstride=1\npad=0\nactivation=leaky\n";

/* Whole chains of oneDNN layers: fp_net_run without a callback (pools fused,
 * tensors handed on in the blocked layout) must give what it gives with one (every
 * layer's output written C x H x W), bit for bit, at 1 and 2 threads, close
 * to the reference kernels; and the hand-offs must be there. */
/* Runs cfg (weights seed 13, input seed 33) as two restricted networks,
 * layers 0..k and k+1..last, handing the cut's tensors over; returns how
 * many of the last layer's n values differ from want (-1: it did not run). */
static int split_run(const char *cfg, int k, const float *want, size_t n)
{
    fp_net *a = NULL, *b = NULL;
    int bad = -1;
    if (fp_net_parse_cfg(cfg, "a.cfg", &a) || fp_net_parse_cfg(cfg, "b.cfg", &b)) goto done;
    int last = fp_net_layer_count(a) - 1, cut[16];
    int m = fp_net_cut(a, k, cut, 16);
    if (m < 1 || m > 16 || fp_net_init_weights_random(a, 13) || fp_net_init_weights_random(b, 13) ||
        fp_net_set_range(a, 0, k) || fp_net_set_range(b, k + 1, last) || fp_net_setup(a) || fp_net_setup(b))
        goto done;
    fill_input(fp_net_input(a), fp_shape_count(fp_net_input_shape(a)), 33);
    if (fp_net_run(a, 0, k, NULL, NULL)) goto done;
    for (int q = 0; q < m; q++) {
        fp_layer_info li;
        float *dst = fp_net_output_mut(b, cut[q]);
        const float *src = cut[q] < 0 ? NULL : fp_net_output(a, cut[q]);
        if (cut[q] < 0 || !dst || !src || fp_net_layer_info(a, cut[q], &li)) goto done;
        memcpy(dst, src, fp_shape_count(li.out) * sizeof(float));
    }
    if (fp_net_run(b, k + 1, last, NULL, NULL)) goto done;
    const float *out = fp_net_output(b, last);
    bad = 0;
    for (size_t j = 0; j < n; j++) bad += memcmp(&out[j], &want[j], sizeof(float)) != 0;
done:
    fp_net_destroy(a);
    fp_net_destroy(b);
    return bad;
}

static void test_dnnl_chains(void)
{
    /* at least these hand-offs (where the layouts oneDNN chose on both sides agree) */
    static const struct { const char *cfg, *name; int handoffs; } cases[] = {
        {chain_yolo, "yolo-like", 3}, {chain_face, "face-like", 3}, {chain_face_even, "face-like, even", 4},
        {chain_odd, "odd strides", 2}
    };
    if (!fpi_dnnl_available()) {
        printf("     oneDNN not available: %s\n", fpi_dnnl_describe());
        return;
    }
    /* Winograd layers whose output is handed on take their tiles in parts */
    fpi_dnnl_set_wino_v_max(64 << 10);
    for (int sizes = 0; sizes < 2; sizes++) {
        fpi_dnnl_set_sizes(0, sizes ? 1e30 : 0);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            float *ref = NULL;
            for (int t = 0; t <= 2; t++) { /* 0: reference kernels, then 1 and 2 threads */
                fpi_fast_set_mode(t ? FPI_FAST_AUTO : FPI_FAST_OFF);
                fp_net *net = NULL;
                CHECK_OK(fp_net_parse_cfg(cases[i].cfg, "chain.cfg", &net));
                if (!net) continue;
                CHECK_OK(fp_net_init_weights_random(net, 13));
                CHECK_OK(fp_net_set_threads(net, t ? t : 1));
                CHECK_OK(fp_net_setup(net));
                int last = fp_net_layer_count(net) - 1, hands = 0;
                for (int j = 0; j <= last; j++) hands += fpi_dnnl_hands_to(&net->layers[j]) >= 0;
                if (t) CHECK_MSG(hands >= cases[i].handoffs, "%s: %d hand-offs, expected at least %d", cases[i].name,
                                 hands, cases[i].handoffs);
                /* the first-layer kernel hands its pooled map on (AVX2 CPUs) */
                if (t && i == 0 && net->layers[0].conv_first)
                    CHECK_MSG(fpi_dnnl_hands_to(&net->layers[0]) == 2, "%s: the first layer hands on to %d, not 2",
                              cases[i].name, fpi_dnnl_hands_to(&net->layers[0]));
                /* the wide 1x1 layers go to the 1x1 vector kernel where oneDNN works in nChw8c */
                if (t && cases[i].cfg == chain_face_even && fpi_cpu_get()->avx2 && fpi_cpu_get()->fma &&
                    !fpi_cpu_get()->avx512)
                    for (int j = 3; j <= 6; j += 3) {
                        const char *impl = fpi_dnnl_layer_impl(&net->layers[j]);
                        CHECK_MSG(impl && strstr(impl, "1x1 vector kernel"), "%s: layer %d runs %s", cases[i].name, j,
                                  impl ? impl : "no oneDNN");
                        /* and the depthwise layers before them are computed inside them */
                        CHECK_MSG(fpi_dnnl_dw_into(&net->layers[j - 1]) == j, "%s: layer %d fused into %d, not %d",
                                  cases[i].name, j - 1, fpi_dnnl_dw_into(&net->layers[j - 1]), j);
                    }
                /* the first layer's pooled rows made as the first of them needs them, and
                 * that one's as the second needs them: a trunk of two stages (AVX2 CPUs
                 * without AVX-512, where the 1x1 vector kernel runs) */
                if (t && cases[i].cfg == chain_face_even && net->layers[0].conv_first && !fpi_cpu_get()->avx512)
                    CHECK_MSG(net->layers[0].first_chain == 6, "%s: the first layer's trunk ends at %d, not 6",
                              cases[i].name, net->layers[0].first_chain);
                /* the deep 3x3 layers cut by channels (17x14: 63 tiles) go to the Winograd
                 * kernel there too (in whole 32-filter groups: not when cut as finely as
                 * possible), and so does the shallow one cut by rows */
                if (t && sizes && cases[i].cfg == chain_yolo && fpi_cpu_get()->avx2 && fpi_cpu_get()->fma &&
                    !fpi_cpu_get()->avx512)
                    for (int j = 2; j <= 6; j += 2) {
                        /* layer 2 (35x29 x 16 -> 32, its pool fused) cut by rows */
                        const char *impl = fpi_dnnl_layer_impl(&net->layers[j]);
                        CHECK_MSG(impl && strstr(impl, "Winograd") && (j == 2) == (strstr(impl, "by rows") != NULL),
                                  "%s: layer %d runs %s", cases[i].name, j, impl ? impl : "no oneDNN");
                    }
                /* A convolution fused with its pool has arena memory no other tensor shares: a
                 * fused run never writes it, so its pages stay out of memory. */
                for (int j = 0; t && j < last; j++) {
                    if (fpi_fused_pool(&net->layers[j]) != j + 1) continue;
                    const char *c = (const char *)fp_net_output(net, j);
                    size_t cb = fp_shape_count(net->layers[j].out) * sizeof(float);
                    for (int q = -1; q <= last; q++) {
                        if (q == j) continue;
                        const char *o = q < 0 ? (const char *)fp_net_input(net) : (const char *)fp_net_output(net, q);
                        size_t ob = fp_shape_count(q < 0 ? fp_net_input_shape(net) : net->layers[q].out) * sizeof(float);
                        CHECK_MSG(!o || o + ob <= c || c + cb <= o, "%s: tensor %d shares the fused layer %d's memory",
                                  cases[i].name, q, j);
                    }
                }
                fp_layer_info li;
                CHECK_OK(fp_net_layer_info(net, last, &li));
                size_t n = fp_shape_count(li.out);
                float *one = malloc(n * sizeof *one);
                fill_input(fp_net_input(net), fp_shape_count(fp_net_input_shape(net)), 33);
                CHECK_OK(fp_net_run(net, 0, last, no_op_cb, NULL)); /* every output written as it is */
                if (one) memcpy(one, fp_net_output(net, last), n * sizeof *one);
                fill_input(fp_net_input(net), fp_shape_count(fp_net_input_shape(net)), 33);
                CHECK_OK(fp_net_run(net, 0, last, NULL, NULL)); /* fused, handed on */
                const float *out = fp_net_output(net, last);
                if (!t) {
                    ref = one;
                    one = NULL;
                } else if (one && ref) {
                    CHECK_MSG(memcmp(one, out, n * sizeof *one) == 0, "%s (%s) threads=%d: handed-on run differs",
                              cases[i].name, sizes ? "whole" : "pieces", t);
                    double mag = 1e-30;
                    size_t bad = 0;
                    for (size_t j = 0; j < n; j++)
                        if (fabs(ref[j]) > mag) mag = fabs(ref[j]);
                    for (size_t j = 0; j < n; j++) bad += !(fabs((double)out[j] - ref[j]) <= TOL * mag);
                    CHECK_MSG(bad == 0, "%s (%s) threads=%d: %zu of %zu differ from the reference", cases[i].name,
                              sizes ? "whole" : "pieces", t, bad, n);
                }
                /* a run split in two where a hand-off would be: plain tensors across */
                if (t && one) {
                    fill_input(fp_net_input(net), fp_shape_count(fp_net_input_shape(net)), 33);
                    CHECK_OK(fp_net_run(net, 0, 2, NULL, NULL));
                    CHECK_OK(fp_net_run(net, 3, last, NULL, NULL));
                    CHECK_MSG(memcmp(one, fp_net_output(net, last), n * sizeof *one) == 0,
                              "%s (%s) threads=%d: run in two parts differs", cases[i].name, sizes ? "whole" : "pieces", t);
                }
                /* as two pipeline stages (fp_net_set_range) cut after every layer: each
                 * layer's kernels must not depend on where the stage starts or ends */
                for (int k = 0; t == 1 && one && k < last; k++) {
                    int bad = split_run(cases[i].cfg, k, one, n);
                    CHECK_MSG(!bad, "%s (%s): stages cut after layer %d give another output (%d values differ)",
                              cases[i].name, sizes ? "whole" : "pieces", k, bad);
                }
                free(one);
                fp_net_destroy(net);
            }
            free(ref);
        }
    }
    fpi_dnnl_set_sizes(2e6, 25e6);
    fpi_dnnl_set_wino_v_max(0);
    fpi_fast_set_mode(FPI_FAST_AUTO);
}

/* oneDNN, when the build has it, loads on x86-64 (scripts/setup.sh installs
 * libdnnl2), leaves OMP_NUM_THREADS as it was, and follows the modes. */
static void test_dnnl_load(void)
{
    const char *why = fpi_dnnl_describe();
    if (strstr(why, "built without") || !fpi_cpu_get()->x86 || !fpi_fast_enabled()) {
        printf("     oneDNN not tested: %s\n", why);
        return;
    }
    const char *omp = getenv("OMP_NUM_THREADS");
    char before[32];
    snprintf(before, sizeof before, "%s", omp ? omp : "(unset)");
    CHECK_MSG(fpi_dnnl_available(), "oneDNN did not load (%s); run scripts/setup.sh", why);
    omp = getenv("OMP_NUM_THREADS");
    CHECK_MSG(strcmp(before, omp ? omp : "(unset)") == 0, "OMP_NUM_THREADS changed");
    CHECK(strstr(fpi_dnnl_describe(), "oneDNN 2.") != NULL);
    fpi_fast_set_mode(FPI_FAST_NO_DNNL);
    CHECK(!fpi_dnnl_available() && fpi_blas_get() != NULL);
    fpi_fast_set_mode(FPI_FAST_NO_BLAS);
    CHECK(!fpi_dnnl_available() && fpi_blas_get() == NULL);
    fpi_fast_set_mode(FPI_FAST_AUTO);
    CHECK(fpi_dnnl_available());
    printf("     %s\n", fpi_dnnl_describe());
}

/* A whole network (conv, maxpool, route, connected) gives the same output
 * through fp_net_run with fast kernels on and off, and with fast kernels
 * exactly the same at 1 and 2 threads (oneDNN's convolutions cut into
 * pieces: the cut depends on the shape only). */
static void test_whole_net(void)
{
    static const char cfg[] =
        "[net]\nwidth=64\nheight=48\nchannels=3\n"
        "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
        "[maxpool]\nsize=2\nstride=2\n"
        "[convolutional]\nbatch_normalize=1\nfilters=32\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
        "[convolutional]\ngroups=32\nfilters=32\nsize=3\nstride=2\npad=1\nactivation=relu\n"
        "[convolutional]\nfilters=24\nsize=1\nstride=1\npad=0\nactivation=linear\n"
        "[maxpool]\nsize=2\nstride=1\n"
        "[connected]\noutput=50\nactivation=logistic\n";
    float *want = NULL, *fast1 = NULL;
    size_t n = 0;
    fpi_dnnl_set_sizes(0, 0);
    for (int pass = 0; pass < 2; pass++)
        for (int t = 1; t <= 2; t++) {
            fpi_fast_set_mode(pass ? FPI_FAST_AUTO : FPI_FAST_OFF);
            fp_net *net = NULL;
            CHECK_OK(fp_net_parse_cfg(cfg, "whole.cfg", &net));
            if (!net) continue;
            CHECK_OK(fp_net_init_weights_random(net, 5));
            CHECK_OK(fp_net_set_threads(net, t));
            CHECK_OK(fp_net_setup(net));
            fill_input(fp_net_input(net), fp_shape_count(fp_net_input_shape(net)), 9);
            int last = fp_net_layer_count(net) - 1;
            CHECK_OK(fp_net_run(net, 0, last, NULL, NULL));
            fp_layer_info li;
            CHECK_OK(fp_net_layer_info(net, last, &li));
            n = fp_shape_count(li.out);
            const float *out = fp_net_output(net, last);
            if (!want) {
                want = malloc(n * sizeof *want);
                if (want) memcpy(want, out, n * sizeof *want);
            } else {
                for (size_t i = 0; i < n; i++)
                    CHECK_MSG(fabs(out[i] - want[i]) <= TOL, "pass %d threads %d [%zu]: %.9g vs %.9g", pass, t, i,
                              (double)out[i], (double)want[i]);
            }
            if (pass && fpi_dnnl_available()) {
                /* oneDNN holds the convolutions' weights; the plain copies
                 * went back to the system. Asked for the reference kernels,
                 * the network writes them back from oneDNN's copy: the
                 * reference result, bit for bit. */
                int released = 0;
                for (int i = 0; i <= last; i++) released += net->layers[i].kernel_released;
                CHECK_MSG(released > 0 && net->kernels_released, "threads %d: no plain kernel given back", t);
                fpi_fast_set_mode(FPI_FAST_OFF);
                float *again = malloc(n * sizeof *again);
                /* the arena may have reused the input's memory */
                fill_input(fp_net_input(net), fp_shape_count(fp_net_input_shape(net)), 9);
                CHECK_OK(fp_net_run(net, 0, last, NULL, NULL));
                if (again && want) memcpy(again, fp_net_output(net, last), n * sizeof *again);
                for (int i = 0; i <= last; i++) CHECK(!net->layers[i].kernel_released);
                fpi_fast_set_mode(FPI_FAST_AUTO);
                fill_input(fp_net_input(net), fp_shape_count(fp_net_input_shape(net)), 9);
                CHECK_OK(fp_net_run(net, 0, last, NULL, NULL)); /* oneDNN again, its copy untouched */
                if (again && want) {
                    for (size_t i = 0; i < n; i++)
                        CHECK_MSG(t == 1 ? again[i] == want[i] : fabs(again[i] - want[i]) <= TOL,
                                  "threads %d, weights written back: [%zu] %.9g vs %.9g", t, i, (double)again[i],
                                  (double)want[i]);
                }
                free(again);
                out = fp_net_output(net, last);
            }
            if (pass && t == 1) {
                fast1 = malloc(n * sizeof *fast1);
                if (fast1) memcpy(fast1, out, n * sizeof *fast1);
            } else if (pass && fast1) {
                CHECK_MSG(memcmp(out, fast1, n * sizeof *fast1) == 0, "fast kernels: 2 threads differ from 1");
            }
            fp_net_destroy(net);
        }
    fpi_dnnl_set_sizes(2e6, 25e6);
    fpi_fast_set_mode(FPI_FAST_AUTO);
    free(fast1);
    free(want);
}

/* The fast logistic (every fast path's) against darknet's double
 * evaluation: within 4 float ulps over [-120, 120] in steps of 2^-10 (below
 * 1e-37 absolute where the exact value is tinier), NaN kept, the infinities
 * at 1 and 0; and the same value whatever the array's length and offset
 * (the vector loop and its tail agree). */
static void test_logistic(void)
{
    size_t n = 240 * 1024 + 1;
    float *x = malloc(n * sizeof *x);
    CHECK(x != NULL);
    if (!x) return;
    for (size_t i = 0; i < n; i++) x[i] = -120.f + (float)i / 1024.f;
    float *y = malloc(n * sizeof *y);
    CHECK(y != NULL);
    if (!y) {
        free(x);
        return;
    }
    memcpy(y, x, n * sizeof *y);
    fpi_logistic_fast(y, n);
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double want = (double)(float)(1. / (1. + exp(-(double)x[i])));
        double err = fabs((double)y[i] - want), lim = 4 * FLT_EPSILON * want;
        if (lim < 1e-37) lim = 1e-37;
        if (err / want > worst && want > 1e-30) worst = err / want;
        if (!(err <= lim) || y[i] < 0 || y[i] > 1) {
            if (bad++ < 5) fprintf(stderr, "  logistic(%.9g) = %.9g, want %.9g\n", x[i], y[i], want);
        }
    }
    CHECK_MSG(bad == 0, "%zu of %zu logistic values off (worst relative error %.3g)", bad, n, worst);
    float sp[] = {NAN, INFINITY, -INFINITY, 0.f, -0.f, FLT_MAX, -FLT_MAX, 1e-30f, -1e-30f};
    fpi_logistic_fast(sp, sizeof sp / sizeof *sp);
    CHECK(isnan(sp[0]));
    CHECK(sp[1] == 1.f && sp[5] == 1.f);
    CHECK(sp[2] >= 0.f && sp[2] < 1e-37f && sp[6] >= 0.f && sp[6] < 1e-37f);
    CHECK(sp[3] == .5f && sp[4] == .5f && sp[7] == .5f && sp[8] == .5f);
    /* lengths 1-40 at offsets 0-3: each value as when computed alone */
    for (int len = 1; len <= 40; len++)
        for (int off = 0; off < 4; off++) {
            float a[48], one;
            for (int i = 0; i < len; i++) a[off + i] = (float)(i * 37 % 23) - 11.3f + .01f * (float)off;
            memcpy(y, a + off, (size_t)len * sizeof *y);
            fpi_logistic_fast(a + off, (size_t)len);
            for (int i = 0; i < len; i++) {
                one = y[i];
                fpi_logistic_fast(&one, 1);
                CHECK_MSG(memcmp(&one, &a[off + i], sizeof one) == 0, "length %d offset %d: value %d differs", len,
                          off, i);
            }
        }
    fprintf(stderr, "  logistic: worst relative error %.3g (FLT_EPSILON %.3g)\n", worst, (double)FLT_EPSILON);
    free(x);
    free(y);
}

/* The fast softmax over cells against darknet's (fpi_softmax with the
 * reference kernels) for 1, 2, 5, 80 and 81 entries a plane apart and 1 to
 * 130 cells (blocks of 64 and their tails): every value within 1e-6 + 8 ulps
 * relative, sums of 1; a cell with a NaN gives NaN everywhere, its
 * neighbours not. */
static void test_softmax_cells(void)
{
    static const int ns[] = {1, 2, 5, 80, 81};
    size_t stride = 131;
    float *in = malloc(81 * stride * sizeof *in), *got = malloc(81 * stride * sizeof *got),
          *want = malloc(81 * stride * sizeof *want);
    CHECK(in && got && want);
    if (!in || !got || !want) goto out;
    uint32_t seed = 11;
    double worst = 0;
    size_t bad = 0;
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++)
        for (size_t cells = 1; cells <= 130; cells += cells < 10 ? 1 : 13) {
            int n = ns[k];
            for (size_t i = 0; i < (size_t)n * stride; i++) {
                seed = seed * 1664525u + 1013904223u;
                /* spreads from tiny to beyond e^87 between classes */
                in[i] = ((float)(seed >> 8) / 16777216.f - .5f) * (k % 2 ? 40.f : 400.f);
            }
            fpi_fast_set_mode(FPI_FAST_OFF);
            fpi_softmax_cells(in, n, 1.f, stride, cells, want);
            fpi_fast_set_mode(FPI_FAST_AUTO);
            fpi_softmax_cells(in, n, 1.f, stride, cells, got);
            for (size_t c = 0; c < cells; c++) {
                double sum = 0;
                for (int e = 0; e < n; e++) {
                    double g = got[e * stride + c], w = want[e * stride + c], err = fabs(g - w);
                    sum += g;
                    if (w > 1e-6 && err / w > worst) worst = err / w;
                    if (!(err <= 1e-6 + 8 * FLT_EPSILON * w) && bad++ < 5)
                        fprintf(stderr, "  n=%d cells=%zu: [%d][%zu] = %.9g, want %.9g\n", n, cells, e, c, g, w);
                }
                if (!(fabs(sum - 1) < 1e-5) && bad++ < 5) fprintf(stderr, "  n=%d cell %zu sums to %.9g\n", n, c, sum);
            }
        }
    CHECK_MSG(bad == 0, "%zu softmax values off (worst relative error %.3g)", bad, worst);
    for (size_t i = 0; i < 80 * stride; i++) in[i] = (float)(i % 7);
    in[3 * stride + 5] = NAN;
    fpi_softmax_cells(in, 80, 1.f, stride, 9, got);
    for (int e = 0; e < 80; e++) {
        CHECK(isnan(got[e * stride + 5]));
        CHECK(!isnan(got[e * stride + 4]) && !isnan(got[e * stride + 6]));
    }
    fprintf(stderr, "  softmax: worst relative error %.3g\n", worst);
out:
    free(in);
    free(got);
    free(want);
}

TEST_LIST = {
    {"logistic", test_logistic},
    {"softmax_cells", test_softmax_cells},
    {"blas_load", test_blas_load},
    {"dnnl_load", test_dnnl_load},
    {"conv_pool", test_conv_pool},
    {"conv_first", test_conv_first},
    {"first_wino512", test_first_wino512},
    {"conv1x1", test_conv1x1},
    {"dw3x3", test_dw3x3},
    {"conv3x3", test_conv3x3},
    {"wino", test_wino},
    {"dnnl_chains", test_dnnl_chains},
    {"conv", test_conv},
    {"connected", test_connected},
    {"maxpool", test_maxpool},
    {"maxpool_vec", test_maxpool_vec},
    {"whole_net", test_whole_net},
    {NULL, NULL},
};
