/*
 * test_ops.c — every layer kernel against a direct formula written plainly
 * here (no im2col, no shared helpers with the engine): tiny networks are
 * built from cfg text in memory, given deterministic weights, run through
 * the public API, and compared element by element over sweeps of
 * parameters. Also: cfg errors name the right status and line.
 */
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "engine/net_impl.h"
#include "fogpipe/net.h"
#include "test.h"
#include "capture.h"

/* ---- helpers ---------------------------------------------------------- */

#define TOL 1e-5

/* Deterministic values in [-1, 1) from a 32-bit LCG. */
static float urand(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) * (1.0 / 8388608.0)) - 1.f;
}

static void fill(float *x, size_t n, uint32_t seed, float lo, float hi)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (urand(&s) + 1.f) * .5f;
}

static double act_ref(double x, fp_activation a)
{
    switch (a) {
    case FP_ACT_LEAKY: return x > 0 ? x : .1 * x;
    case FP_ACT_RELU: return x > 0 ? x : 0;
    case FP_ACT_LOGISTIC: return 1. / (1. + exp(-x));
    default: return x;
    }
}

static const char *const act_names[] = {"linear", "leaky", "relu", "logistic"};

/* Parses cfg text and fills random weights; NULL (and a failed check) on error. */
static fp_net *build(const char *cfg, uint64_t seed)
{
    fp_net *net = NULL;
    fp_status st = fp_net_parse_cfg(cfg, "test.cfg", &net);
    CHECK_MSG(st == FP_OK, "parse: %s: %s\n%s", fp_status_name(st), fp_last_error(), cfg);
    if (st) return NULL;
    st = fp_net_init_weights_random(net, seed);
    CHECK_MSG(st == FP_OK, "init: %s", fp_last_error());
    if (st) {
        fp_net_destroy(net);
        return NULL;
    }
    return net;
}

/* Sets up the network, writes `input`, runs every layer and captures each
 * output. Returns 0 on success. */
/* The parameters as loaded, copied by run_all before setup folds
 * batch-norm into them in place (layer_params reads them). */
static float *raw_params;

static int run_all(fp_net *net, const float *input, captured *cap)
{
    memset(cap, 0, sizeof *cap);
    free(raw_params);
    raw_params = malloc((net->n_params ? net->n_params : 1) * sizeof(float));
    if (raw_params) memcpy(raw_params, net->params, net->n_params * sizeof(float));
    CHECK(raw_params != NULL);
    fp_status st = raw_params ? fp_net_setup(net) : FP_ENOMEM;
    CHECK_MSG(st == FP_OK, "setup: %s", fp_last_error());
    if (st) return 1;
    memcpy(fp_net_input(net), input, fp_shape_count(fp_net_input_shape(net)) * sizeof(float));
    st = fp_net_run(net, 0, fp_net_layer_count(net) - 1, capture_cb, cap);
    CHECK_MSG(st == FP_OK, "run: %s", fp_last_error());
    return st != FP_OK;
}

/* Counts mismatches between got and want (|a-b| <= tol*max(1,|b|,mag[i]))
 * and describes the first one in `why`. `mag` (may be NULL) holds the
 * magnitude of the terms summed into each value, the scale of float
 * rounding error when the sum cancels. */
static int compare_mag(const float *got, const double *want, const double *mag, size_t n, double tol,
                       char *why, size_t wn)
{
    int bad = 0;
    why[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        double s = fabs(want[i]) > 1 ? fabs(want[i]) : 1;
        if (mag && mag[i] > s) s = mag[i];
        if (!(fabs((double)got[i] - want[i]) <= tol * s)) {
            if (!bad) snprintf(why, wn, "first at [%zu]: got %.9g want %.9g", i, (double)got[i], want[i]);
            bad++;
        }
    }
    return bad;
}

static int compare(const float *got, const double *want, size_t n, double tol, char *why, size_t wn)
{
    return compare_mag(got, want, NULL, n, tol, why, wn);
}

static int shape_eq(fp_shape a, fp_shape b) { return a.c == b.c && a.h == b.h && a.w == b.w; }

/* Layer info's output shape equals (c,h,w). */
static int out_shape_is(const fp_net *net, int i, int c, int h, int w)
{
    fp_layer_info info;
    if (fp_net_layer_info(net, i, &info) != FP_OK) return 0;
    return shape_eq(info.out, (fp_shape){c, h, w});
}

static const float *layer_params(const fp_net *net, int i) { return raw_params + net->layers[i].param_off; }

/* ---- convolutional ---------------------------------------------------- */

static void test_convolutional(void)
{
    static const int sizes[] = {1, 3, 5}, strides[] = {1, 2};
    /* padding mode: -1 = pad=1 (size/2); otherwise explicit padding=N */
    static const int pads[] = {-1, 0, 2};
    static const struct { int w, h; } dims[] = {{7, 5}, {4, 6}};
    static const struct { int c, f, g; } chans[] = {{4, 6, 1}, {4, 6, 2}, {4, 4, 4}, {3, 3, 3}};
    int cases = 0, failed = 0;
    for (size_t si = 0; si < 3; si++)
        for (size_t st = 0; st < 2; st++)
            for (size_t pi = 0; pi < 3; pi++)
                for (size_t di = 0; di < 2; di++)
                    for (size_t ci = 0; ci < 4; ci++)
                        for (int bn = 0; bn < 2; bn++)
                            for (int act = 0; act < FP_ACT_COUNT; act++) {
        int size = sizes[si], stride = strides[st], W = dims[di].w, H = dims[di].h;
        int C = chans[ci].c, F = chans[ci].f, G = chans[ci].g;
        int pad = pads[pi] < 0 ? size / 2 : pads[pi];
        char cfg[512], params[160];
        snprintf(params, sizeof params, "size=%d stride=%d %s%d in=%dx%dx%d filters=%d groups=%d bn=%d %s",
                 size, stride, pads[pi] < 0 ? "pad=1 -> " : "padding=", pad, W, H, C, F, G, bn,
                 act_names[act]);
        snprintf(cfg, sizeof cfg,
                 "[net]\nwidth=%d\nheight=%d\nchannels=%d\n\n[convolutional]\nbatch_normalize=%d\n"
                 "filters=%d\nsize=%d\nstride=%d\n%s=%d\ngroups=%d\nactivation=%s\n",
                 W, H, C, bn, F, size, stride, pads[pi] < 0 ? "pad" : "padding",
                 pads[pi] < 0 ? 1 : pads[pi], G, act_names[act]);
        if (W + 2 * pad < size || H + 2 * pad < size) {
            /* the kernel does not fit: a clean parse error */
            fp_net *net = NULL;
            fp_status s = fp_net_parse_cfg(cfg, "test.cfg", &net);
            CHECK_MSG(s == FP_ECORRUPT && net == NULL, "%s: %s", params, fp_status_name(s));
            fp_net_destroy(net);
            continue;
        }
        cases++;
        fp_net *net = build(cfg, 1000 + (uint64_t)cases);
        if (!net) { failed++; continue; }
        int OH = (H + 2 * pad - size) / stride + 1, OW = (W + 2 * pad - size) / stride + 1;
        CHECK_MSG(out_shape_is(net, 0, F, OH, OW), "%s: output shape", params);
        CHECK_MSG(net->layers[0].n_params == (size_t)F * (bn ? 4 : 1) + (size_t)F * (C / G) * size * size,
                  "%s: n_params %zu", params, net->layers[0].n_params);
        float *p = net->params + net->layers[0].param_off;
        /* tiny and zero variances, where darknet's sqrt(var) + 1e-6 differs
         * from sqrt(var + 1e-6); written before setup folds them */
        if (bn) {
            p[3 * F] = 1e-8f;
            p[3 * F + 1] = 0.f;
        }
        float in[7 * 6 * 4];
        fill(in, (size_t)C * H * W, 77u + (uint32_t)cases, -1.f, 1.f);
        captured cap;
        if (run_all(net, in, &cap)) { failed++; captured_free(&cap); fp_net_destroy(net); continue; }
        const float *r = layer_params(net, 0);
        const float *bias = r, *scale = r + F, *mean = r + 2 * F, *var = r + 3 * F;
        const float *wt = r + (size_t)F * (bn ? 4 : 1);
        size_t n = (size_t)F * OH * OW;
        double *want = malloc(n * sizeof *want), *mag = malloc(n * sizeof *mag);
        int cg = C / G, fg = F / G;
        for (int f = 0; f < F; f++) {
            int g = f / fg;
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double sum = 0, m = 0;
                    for (int c = 0; c < cg; c++)
                        for (int ky = 0; ky < size; ky++)
                            for (int kx = 0; kx < size; kx++) {
                                int iy = oy * stride + ky - pad, ix = ox * stride + kx - pad;
                                double v = (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                               ? 0.0
                                               : in[((size_t)(g * cg + c) * H + iy) * W + ix];
                                sum += v * wt[(((size_t)f * cg + c) * size + ky) * size + kx];
                                m += fabs(v * wt[(((size_t)f * cg + c) * size + ky) * size + kx]);
                            }
                    if (bn) {
                        double k = scale[f] / (sqrt(var[f]) + .000001);
                        sum = (sum - mean[f]) * k;
                        m = (m + fabs(mean[f])) * fabs(k);
                    }
                    sum += bias[f];
                    want[((size_t)f * OH + oy) * OW + ox] = act_ref(sum, (fp_activation)act);
                    mag[((size_t)f * OH + oy) * OW + ox] = m + fabs(bias[f]);
                }
        }
        char why[160];
        int bad = compare_mag(cap.out[0], want, mag, n, TOL, why, sizeof why);
        CHECK_MSG(bad == 0, "%s: %d of %zu differ, %s", params, bad, n, why);
        if (bad) failed++;
        free(want);
        free(mag);
        captured_free(&cap);
        fp_net_destroy(net);
    }
    CHECK_MSG(cases > 250, "only %d cases ran", cases);
    if (failed) fprintf(stderr, "  convolutional: %d of %d cases failed\n", failed, cases);
}

/* ---- maxpool ---------------------------------------------------------- */

static void test_maxpool(void)
{
    static const struct {
        int size, stride, padding; /* padding -1: darknet's default (size-1) */
        int w, h, c;
        int ow, oh;                /* expected output size, written out */
    } cases[] = {
        {2, 2, -1, 8, 6, 2, 4, 3},   /* even: plain halving */
        {2, 2, -1, 7, 5, 2, 4, 3},   /* odd: padded cell on the bottom/right */
        {2, 2, 0, 7, 5, 2, 3, 2},    /* odd with no padding: last column dropped */
        {2, 1, -1, 7, 5, 2, 7, 5},   /* yolov2-tiny's 2x2/1: same size */
        {2, 1, -1, 13, 13, 1, 13, 13},
        {3, 2, -1, 7, 5, 2, 4, 3},   /* 3x3/2, padding 2 (one each side) */
        {3, 2, 1, 7, 5, 2, 3, 2},    /* padding 1: only bottom/right */
        {3, 1, -1, 6, 4, 3, 6, 4},   /* 3x3/1 same */
        {3, 2, 2, 8, 8, 1, 4, 4},
        {5, 1, -1, 5, 5, 1, 5, 5},   /* padding 4: offset -2 */
        {1, 1, -1, 3, 2, 2, 3, 2},   /* 1x1: identity */
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++)
        for (int neg = 0; neg < 2; neg++) {
            int size = cases[t].size, stride = cases[t].stride, W = cases[t].w, H = cases[t].h,
                C = cases[t].c;
            int padding = cases[t].padding < 0 ? size - 1 : cases[t].padding;
            char cfg[256], params[128];
            snprintf(params, sizeof params, "%dx%d/%d padding=%d in=%dx%dx%d%s", size, size, stride,
                     padding, W, H, C, neg ? " (all negative)" : "");
            int k = snprintf(cfg, sizeof cfg, "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[maxpool]\nsize=%d\nstride=%d\n",
                             W, H, C, size, stride);
            if (cases[t].padding >= 0) snprintf(cfg + k, sizeof cfg - (size_t)k, "padding=%d\n", cases[t].padding);
            fp_net *net = build(cfg, 1);
            if (!net) continue;
            int OW = cases[t].ow, OH = cases[t].oh;
            fp_layer_info info;
            CHECK_OK(fp_net_layer_info(net, 0, &info));
            CHECK_MSG(shape_eq(info.out, (fp_shape){C, OH, OW}), "%s: out %dx%dx%d, want %dx%dx%d",
                      params, info.out.w, info.out.h, info.out.c, OW, OH, C);
            CHECK_MSG(shape_eq(info.in, (fp_shape){C, H, W}), "%s: in shape", params);
            if (!shape_eq(info.out, (fp_shape){C, OH, OW})) { fp_net_destroy(net); continue; }
            float in[13 * 13 * 3];
            fill(in, (size_t)C * H * W, 5u + (uint32_t)t, neg ? -3.f : -1.f, neg ? -1.f : 1.f);
            captured cap;
            if (!run_all(net, in, &cap)) {
                double want[13 * 13 * 3];
                int off = -padding / 2;
                for (int c = 0; c < C; c++)
                    for (int y = 0; y < OH; y++)
                        for (int x = 0; x < OW; x++) {
                            double m = -DBL_MAX;
                            for (int dy = 0; dy < size; dy++)
                                for (int dx = 0; dx < size; dx++) {
                                    int iy = off + y * stride + dy, ix = off + x * stride + dx;
                                    if (iy >= 0 && iy < H && ix >= 0 && ix < W &&
                                        in[(c * H + iy) * W + ix] > m)
                                        m = in[(c * H + iy) * W + ix];
                                }
                            want[(c * OH + y) * OW + x] = m;
                        }
                char why[160];
                int bad = compare(cap.out[0], want, (size_t)C * OH * OW, 0, why, sizeof why);
                CHECK_MSG(bad == 0, "%s: %d differ, %s", params, bad, why);
            }
            captured_free(&cap);
            fp_net_destroy(net);
        }
}

/* ---- avgpool, dropout ------------------------------------------------- */

static void test_avgpool(void)
{
    static const struct { int w, h, c; } cases[] = {{5, 3, 4}, {1, 1, 3}, {7, 7, 2}, {13, 1, 1}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int W = cases[t].w, H = cases[t].h, C = cases[t].c;
        char cfg[128];
        snprintf(cfg, sizeof cfg, "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[avgpool]\n", W, H, C);
        fp_net *net = build(cfg, 1);
        if (!net) continue;
        CHECK_MSG(out_shape_is(net, 0, C, 1, 1), "avgpool %dx%dx%d: shape", W, H, C);
        float in[7 * 7 * 4];
        fill(in, (size_t)W * H * C, 9u + (uint32_t)t, -2.f, 3.f);
        captured cap;
        if (!run_all(net, in, &cap)) {
            double want[4];
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int i = 0; i < W * H; i++) s += in[c * W * H + i];
                want[c] = s / (W * H);
            }
            char why[160];
            int bad = compare(cap.out[0], want, (size_t)C, TOL, why, sizeof why);
            CHECK_MSG(bad == 0, "avgpool %dx%dx%d: %s", W, H, C, why);
        }
        captured_free(&cap);
        fp_net_destroy(net);
    }
}

static void test_dropout(void)
{
    const char *cfg = "[net]\nwidth=5\nheight=3\nchannels=2\n[dropout]\nprobability=.3\n[dropout]\n";
    fp_net *net = build(cfg, 1);
    if (!net) return;
    CHECK(out_shape_is(net, 0, 2, 3, 5));
    CHECK(out_shape_is(net, 1, 2, 3, 5));
    float in[30];
    fill(in, 30, 3, -1.f, 1.f);
    captured cap;
    if (!run_all(net, in, &cap)) {
        CHECK(memcmp(cap.out[0], in, sizeof in) == 0);
        CHECK(memcmp(cap.out[1], in, sizeof in) == 0);
    }
    captured_free(&cap);
    fp_net_destroy(net);
}

/* ---- connected -------------------------------------------------------- */

static void test_connected(void)
{
    static const struct { int w, h, c, out; } dims[] = {{2, 3, 4, 5}, {1, 1, 7, 33}, {3, 1, 1, 1}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int bn = 0; bn < 2; bn++)
            for (int act = 0; act < FP_ACT_COUNT; act++) {
                int W = dims[d].w, H = dims[d].h, C = dims[d].c, O = dims[d].out, I = W * H * C;
                char cfg[256], params[96];
                snprintf(params, sizeof params, "connected %d -> %d bn=%d %s", I, O, bn, act_names[act]);
                snprintf(cfg, sizeof cfg,
                         "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[connected]\noutput=%d\nbatch_normalize=%d\nactivation=%s\n",
                         W, H, C, O, bn, act_names[act]);
                fp_net *net = build(cfg, 40 + (uint64_t)d * 8 + (uint64_t)bn * 4 + (uint64_t)act);
                if (!net) continue;
                CHECK_MSG(out_shape_is(net, 0, O, 1, 1), "%s: shape", params);
                CHECK_MSG(net->layers[0].n_params == (size_t)O * (1 + I + (bn ? 3 : 0)), "%s: n_params", params);
                /* darknet file order: biases[O], weights[O][I], then scales, mean, variance */
                float *p = net->params + net->layers[0].param_off;
                if (bn) p[O + (size_t)O * I + 2 * O] = 1e-8f; /* a tiny variance (see convolutional) */
                float in[24];
                fill(in, (size_t)I, 11u + (uint32_t)d, -1.f, 1.f);
                captured cap;
                if (!run_all(net, in, &cap)) {
                    const float *bias = layer_params(net, 0), *wt = bias + O, *scale = wt + (size_t)O * I,
                                *mean = scale + O, *var = mean + O;
                    double want[33], mag[33];
                    for (int o = 0; o < O; o++) {
                        double s = 0, m = 0;
                        for (int i = 0; i < I; i++) {
                            s += (double)wt[(size_t)o * I + i] * in[i];
                            m += fabs((double)wt[(size_t)o * I + i] * in[i]);
                        }
                        if (bn) {
                            double k = scale[o] / (sqrt(var[o]) + .000001);
                            s = (s - mean[o]) * k;
                            m = (m + fabs(mean[o])) * fabs(k);
                        }
                        want[o] = act_ref(s + bias[o], (fp_activation)act);
                        mag[o] = m + fabs(bias[o]);
                    }
                    char why[160];
                    int bad = compare_mag(cap.out[0], want, mag, (size_t)O, TOL, why, sizeof why);
                    CHECK_MSG(bad == 0, "%s: %d differ, %s", params, bad, why);
                }
                captured_free(&cap);
                fp_net_destroy(net);
            }
    /* darknet's default activation for [connected] is logistic */
    fp_net *net = build("[net]\nwidth=1\nheight=1\nchannels=3\n[connected]\noutput=2\n", 1);
    if (net) {
        CHECK(net->layers[0].act == FP_ACT_LOGISTIC);
        fp_net_destroy(net);
    }
}

/* ---- softmax ---------------------------------------------------------- */

static void test_softmax(void)
{
    static const struct { int w, h, c, groups; float temp; } cases[] = {
        {1, 1, 12, 1, 1.f}, {1, 1, 12, 3, 1.f}, {2, 2, 3, 4, 1.f}, {2, 2, 3, 2, .5f},
        {3, 1, 2, 1, 2.f},  {1, 1, 12, 12, 1.f}, {1, 1, 10, 5, 3.f},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int W = cases[t].w, H = cases[t].h, C = cases[t].c, G = cases[t].groups, N = W * H * C;
        float T = cases[t].temp;
        char cfg[256], params[96];
        snprintf(params, sizeof params, "softmax n=%d groups=%d temperature=%g", N, G, (double)T);
        snprintf(cfg, sizeof cfg, "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[softmax]\ngroups=%d\ntemperature=%g\n",
                 W, H, C, G, (double)T);
        fp_net *net = build(cfg, 1);
        if (!net) continue;
        CHECK_MSG(out_shape_is(net, 0, C, H, W), "%s: shape", params);
        float in[12];
        fill(in, (size_t)N, 21u + (uint32_t)t, -4.f, 4.f);
        captured cap;
        if (!run_all(net, in, &cap)) {
            double want[12];
            int n = N / G;
            for (int g = 0; g < G; g++) {
                double mx = -DBL_MAX, sum = 0;
                for (int i = 0; i < n; i++) mx = in[g * n + i] > mx ? in[g * n + i] : mx;
                for (int i = 0; i < n; i++) sum += exp((in[g * n + i] - mx) / T);
                for (int i = 0; i < n; i++) want[g * n + i] = exp((in[g * n + i] - mx) / T) / sum;
            }
            char why[160];
            int bad = compare(cap.out[0], want, (size_t)N, TOL, why, sizeof why);
            CHECK_MSG(bad == 0, "%s: %d differ, %s", params, bad, why);
        }
        captured_free(&cap);
        fp_net_destroy(net);
    }
}

/* ---- route ------------------------------------------------------------ */

static void test_route(void)
{
    /* layers 0..2: three 1x1 convolutions with 3, 2, 1 filters on 4x3;
     * 3: maxpool to 2x2 (different spatial size) */
    static const char base[] =
        "[net]\nwidth=4\nheight=3\nchannels=2\n"
        "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n"
        "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
        "[convolutional]\nfilters=1\nsize=1\nactivation=linear\n"
        "[maxpool]\nsize=2\nstride=2\n";
    static const struct {
        const char *layers;
        int n, src[3];
        int flat; /* sources differ in w,h: a flat C×1×1 concatenation */
    } cases[] = {
        {"-1,-3", 2, {3, 1}, 1},     /* maxpool(2x2) + conv B(4x3): flat */
        {"-2,-4", 2, {2, 0}, 0},
        {"0,1,2", 3, {0, 1, 2}, 0},
        {"2, -4 ,1", 3, {2, 0, 1}, 0},
        {"-3", 1, {1}, 0},           /* a single layer: a copy */
        {"1,-1", 2, {1, 3}, 1},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        char cfg[512];
        snprintf(cfg, sizeof cfg, "%s[route]\nlayers=%s\n", base, cases[t].layers);
        fp_net *net = build(cfg, 3 + t);
        if (!net) continue;
        fp_layer_info info;
        CHECK_OK(fp_net_layer_info(net, 4, &info));
        CHECK_MSG(info.n_inputs == cases[t].n, "layers=%s: %d inputs", cases[t].layers, info.n_inputs);
        size_t total = 0;
        int c = 0;
        for (int i = 0; i < cases[t].n; i++) {
            CHECK_MSG(info.inputs[i] == cases[t].src[i], "layers=%s: input %d is %d, want %d",
                      cases[t].layers, i, info.inputs[i], cases[t].src[i]);
            fp_shape s = net->layers[cases[t].src[i]].out;
            total += fp_shape_count(s);
            c += s.c;
        }
        fp_shape s0 = net->layers[cases[t].src[0]].out;
        fp_shape want_shape = cases[t].flat ? (fp_shape){(int)total, 1, 1} : (fp_shape){c, s0.h, s0.w};
        CHECK_MSG(shape_eq(info.out, want_shape), "layers=%s: out %dx%dx%d", cases[t].layers,
                  info.out.w, info.out.h, info.out.c);
        float in[24];
        fill(in, 24, 31u + (uint32_t)t, -1.f, 1.f);
        captured cap;
        if (!run_all(net, in, &cap)) {
            double want[128];
            size_t k = 0;
            for (int i = 0; i < cases[t].n; i++) {
                int j = cases[t].src[i];
                for (size_t e = 0; e < fp_shape_count(cap.shape[j]) && k < 128; e++) want[k++] = cap.out[j][e];
            }
            char why[160];
            CHECK(k == total);
            int bad = compare(cap.out[4], want, total, 0, why, sizeof why);
            CHECK_MSG(bad == 0, "layers=%s: %s", cases[t].layers, why);
        }
        captured_free(&cap);
        fp_net_destroy(net);
    }
}

/* ---- shortcut --------------------------------------------------------- */

static void test_shortcut(void)
{
    static const struct { float alpha, beta; } ab[] = {{1, 1}, {.5f, -2}, {0, 1}, {1.5f, 0}};
    static const char *const froms[] = {"-2", "0"};
    /* fa: filters of the `from` layer (0), fb: filters of the previous one (1) */
    static const struct { int fa, fb; } chans[] = {{3, 3}, {2, 3}, {4, 3}};
    for (size_t a = 0; a < 4; a++)
        for (size_t f = 0; f < 2; f++)
            for (size_t ch = 0; ch < 3; ch++)
                for (int act = 0; act < FP_ACT_COUNT; act++) {
                    char cfg[512], params[128];
                    int fa = chans[ch].fa, fb = chans[ch].fb;
                    int explicit_ab = !(ab[a].alpha == 1 && ab[a].beta == 1);
                    snprintf(params, sizeof params, "shortcut from=%s alpha=%g beta=%g %d+%d ch %s",
                             froms[f], (double)ab[a].alpha, (double)ab[a].beta, fb, fa, act_names[act]);
                    int k = snprintf(cfg, sizeof cfg,
                                     "[net]\nwidth=3\nheight=3\nchannels=2\n"
                                     "[convolutional]\nfilters=%d\nsize=3\npad=1\nactivation=linear\n"
                                     "[convolutional]\nfilters=%d\nsize=1\nactivation=linear\n"
                                     "[shortcut]\nfrom=%s\nactivation=%s\n",
                                     fa, fb, froms[f], act_names[act]);
                    if (explicit_ab)
                        snprintf(cfg + k, sizeof cfg - (size_t)k, "alpha=%g\nbeta=%g\n", (double)ab[a].alpha,
                                 (double)ab[a].beta);
                    fp_net *net = build(cfg, 100 + a);
                    if (!net) continue;
                    fp_layer_info info;
                    CHECK_OK(fp_net_layer_info(net, 2, &info));
                    CHECK_MSG(info.n_inputs == 2 && info.inputs[0] == 1 && info.inputs[1] == 0, "%s: inputs", params);
                    CHECK_MSG(shape_eq(info.out, (fp_shape){fb, 3, 3}), "%s: shape", params);
                    float in[18];
                    fill(in, 18, 41u + (uint32_t)a, -1.f, 1.f);
                    captured cap;
                    if (!run_all(net, in, &cap)) {
                        double want[27];
                        int minc = fa < fb ? fa : fb;
                        for (int c = 0; c < fb; c++)
                            for (int i = 0; i < 9; i++) {
                                double v = cap.out[1][c * 9 + i];
                                if (c < minc) v = ab[a].alpha * v + ab[a].beta * cap.out[0][c * 9 + i];
                                want[c * 9 + i] = act_ref(v, (fp_activation)act);
                            }
                        char why[160];
                        int bad = compare(cap.out[2], want, (size_t)fb * 9, TOL, why, sizeof why);
                        CHECK_MSG(bad == 0, "%s: %d differ, %s", params, bad, why);
                    }
                    captured_free(&cap);
                    fp_net_destroy(net);
                }
}

/* ---- upsample --------------------------------------------------------- */

static void test_upsample(void)
{
    static const struct { int stride; float scale; } cases[] = {{2, 1}, {3, 1}, {2, .5f}, {3, -1.5f}, {1, 2}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int s = cases[t].stride, W = 3, H = 2, C = 2;
        char cfg[256];
        int k = snprintf(cfg, sizeof cfg, "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[upsample]\nstride=%d\n", W, H,
                         C, s);
        if (cases[t].scale != 1) snprintf(cfg + k, sizeof cfg - (size_t)k, "scale=%g\n", (double)cases[t].scale);
        fp_net *net = build(cfg, 1);
        if (!net) continue;
        CHECK_MSG(out_shape_is(net, 0, C, H * s, W * s), "upsample stride=%d: shape", s);
        float in[12];
        fill(in, 12, 51u + (uint32_t)t, -1.f, 1.f);
        captured cap;
        if (!run_all(net, in, &cap)) {
            double want[12 * 9];
            for (int c = 0; c < C; c++)
                for (int y = 0; y < H * s; y++)
                    for (int x = 0; x < W * s; x++)
                        want[(c * H * s + y) * W * s + x] = (double)cases[t].scale * in[(c * H + y / s) * W + x / s];
            char why[160];
            int bad = compare(cap.out[0], want, (size_t)C * H * W * s * s, TOL, why, sizeof why);
            CHECK_MSG(bad == 0, "upsample stride=%d scale=%g: %s", s, (double)cases[t].scale, why);
        }
        captured_free(&cap);
        fp_net_destroy(net);
    }
}

/* ---- reorg ------------------------------------------------------------ */

static void test_reorg(void)
{
    static const struct { int w, h, c, stride, reverse; } cases[] = {
        {4, 6, 8, 2, 0}, {4, 6, 8, 2, 1}, {2, 2, 4, 2, 0}, {6, 4, 4, 2, 0},
        {3, 6, 9, 3, 0}, {3, 5, 9, 3, 1}, {5, 3, 12, 2, 1},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int w = cases[t].w, h = cases[t].h, c = cases[t].c, s = cases[t].stride, rev = cases[t].reverse;
        char cfg[256];
        snprintf(cfg, sizeof cfg, "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[reorg]\nstride=%d\nreverse=%d\n", w, h,
                 c, s, rev);
        fp_net *net = build(cfg, 1);
        if (!net) continue;
        int ok = rev ? out_shape_is(net, 0, c / (s * s), h * s, w * s) : out_shape_is(net, 0, c * s * s, h / s, w / s);
        CHECK_MSG(ok, "reorg %dx%dx%d /%d reverse=%d: shape", w, h, c, s, rev);
        size_t n = (size_t)w * h * c;
        float in[5 * 6 * 12];
        fill(in, n, 61u + (uint32_t)t, -1.f, 1.f);
        captured cap;
        if (!run_all(net, in, &cap)) {
            double want[5 * 6 * 12];
            int out_c = c / (s * s);
            for (int k = 0; k < c; k++)
                for (int j = 0; j < h; j++)
                    for (int i = 0; i < w; i++) {
                        int in_index = i + w * (j + h * k);
                        int c2 = k % out_c, off = k / out_c;
                        int w2 = i * s + off % s, h2 = j * s + off / s;
                        int out_index = w2 + w * s * (h2 + h * s * c2);
                        if (!rev) want[in_index] = in[out_index];
                        else want[out_index] = in[in_index];
                    }
            char why[160];
            int bad = compare(cap.out[0], want, n, 0, why, sizeof why);
            CHECK_MSG(bad == 0, "reorg %dx%dx%d /%d reverse=%d: %d differ, %s", w, h, c, s, rev, bad, why);
        }
        captured_free(&cap);
        fp_net_destroy(net);
    }
    /* channels not divisible by stride²: refused */
    fp_net *net = NULL;
    CHECK_ERR(fp_net_parse_cfg("[net]\nwidth=4\nheight=4\nchannels=3\n[reorg]\nstride=2\n", "r.cfg", &net),
              FP_ECORRUPT);
    fp_net_destroy(net);
}

/* ---- detection heads -------------------------------------------------- */

static void test_detection(void)
{
    for (int sm = 0; sm < 2; sm++) {
        int side = 2, classes = 3, num = 2, N = side * side * (classes + 5 * num);
        char cfg[256];
        snprintf(cfg, sizeof cfg,
                 "[net]\nwidth=1\nheight=1\nchannels=%d\n[detection]\nclasses=%d\ncoords=4\nnum=%d\nside=%d\nsoftmax=%d\nsqrt=1\n",
                 N, classes, num, side, sm);
        fp_net *net = build(cfg, 1);
        if (!net) continue;
        CHECK(out_shape_is(net, 0, N, 1, 1));
        float in[52];
        fill(in, (size_t)N, 71, -3.f, 3.f);
        captured cap;
        if (!run_all(net, in, &cap)) {
            double want[52];
            for (int i = 0; i < N; i++) want[i] = in[i];
            if (sm)
                for (int cell = 0; cell < side * side; cell++) {
                    double mx = -DBL_MAX, sum = 0;
                    const float *x = in + cell * classes;
                    for (int k = 0; k < classes; k++) mx = x[k] > mx ? x[k] : mx;
                    for (int k = 0; k < classes; k++) sum += exp(x[k] - mx);
                    for (int k = 0; k < classes; k++) want[cell * classes + k] = exp(x[k] - mx) / sum;
                }
            char why[160];
            int bad = compare(cap.out[0], want, (size_t)N, TOL, why, sizeof why);
            CHECK_MSG(bad == 0, "detection softmax=%d: %s", sm, why);
        }
        captured_free(&cap);
        fp_net_destroy(net);
    }
}

static void test_region(void)
{
    static const struct { int softmax, background, classes, num, w, h; } cases[] = {
        {1, 0, 3, 2, 3, 2}, {0, 0, 3, 2, 3, 2}, {1, 0, 1, 1, 2, 2}, {1, 1, 3, 2, 2, 3}, {0, 1, 2, 3, 1, 1},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int sm = cases[t].softmax, bg = cases[t].background, K = cases[t].classes, num = cases[t].num;
        int W = cases[t].w, H = cases[t].h, hw = W * H, C = num * (K + 5), N = C * hw;
        char cfg[512], params[96];
        snprintf(params, sizeof params, "region softmax=%d background=%d classes=%d num=%d %dx%d", sm, bg, K, num, W, H);
        snprintf(cfg, sizeof cfg,
                 "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[region]\nanchors=1,2, 3,4, 5,6\nbias_match=1\n"
                 "classes=%d\ncoords=4\nnum=%d\nsoftmax=%d\nbackground=%d\njitter=.2\nrescore=1\n",
                 W, H, C, K, num, sm, bg);
        fp_net *net = build(cfg, 1);
        if (!net) continue;
        CHECK_MSG(out_shape_is(net, 0, C, H, W), "%s: shape", params);
        float in[256];
        fill(in, (size_t)N, 81u + (uint32_t)t, -3.f, 3.f);
        captured cap;
        if (!run_all(net, in, &cap)) {
            double want[256];
            for (int i = 0; i < N; i++) want[i] = in[i];
#define RIDX(n, e, loc) ((n) * hw * (K + 5) + (e) * hw + (loc))
            for (int n = 0; n < num; n++)
                for (int loc = 0; loc < hw; loc++) {
                    want[RIDX(n, 0, loc)] = act_ref(in[RIDX(n, 0, loc)], FP_ACT_LOGISTIC);
                    want[RIDX(n, 1, loc)] = act_ref(in[RIDX(n, 1, loc)], FP_ACT_LOGISTIC);
                    if (!bg) want[RIDX(n, 4, loc)] = act_ref(in[RIDX(n, 4, loc)], FP_ACT_LOGISTIC);
                    if (sm) {
                        /* softmax over classes (+ background) of this anchor at
                         * this cell, entries hw apart */
                        int e0 = bg ? 4 : 5, cnt = K + bg;
                        double mx = -DBL_MAX, sum = 0;
                        for (int k = 0; k < cnt; k++) mx = in[RIDX(n, e0 + k, loc)] > mx ? in[RIDX(n, e0 + k, loc)] : mx;
                        for (int k = 0; k < cnt; k++) sum += exp(in[RIDX(n, e0 + k, loc)] - mx);
                        for (int k = 0; k < cnt; k++) want[RIDX(n, e0 + k, loc)] = exp(in[RIDX(n, e0 + k, loc)] - mx) / sum;
                    } else {
                        for (int k = 0; k < K; k++) want[RIDX(n, 5 + k, loc)] = act_ref(in[RIDX(n, 5 + k, loc)], FP_ACT_LOGISTIC);
                    }
                }
#undef RIDX
            char why[160];
            int bad = compare(cap.out[0], want, (size_t)N, TOL, why, sizeof why);
            CHECK_MSG(bad == 0, "%s: %d differ, %s", params, bad, why);
        }
        captured_free(&cap);
        fp_net_destroy(net);
    }
}

static void test_yolo(void)
{
    static const struct { const char *mask; int n_mask, classes, w, h; } cases[] = {
        {"0,1,2", 3, 2, 3, 2}, {"3,4,5", 3, 1, 2, 2}, {"1", 1, 4, 3, 3}, {NULL, 6, 1, 1, 2},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int K = cases[t].classes, num = cases[t].n_mask, W = cases[t].w, H = cases[t].h, hw = W * H;
        int C = num * (K + 5), N = C * hw;
        char cfg[512], mask[32] = "";
        if (cases[t].mask) snprintf(mask, sizeof mask, "mask=%s\n", cases[t].mask);
        snprintf(cfg, sizeof cfg,
                 "[net]\nwidth=%d\nheight=%d\nchannels=%d\n[yolo]\n%sanchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319\n"
                 "classes=%d\nnum=6\njitter=.3\nignore_thresh=.7\ntruth_thresh=1\nrandom=1\n",
                 W, H, C, mask, K);
        fp_net *net = build(cfg, 1);
        if (!net) continue;
        CHECK_MSG(out_shape_is(net, 0, C, H, W), "yolo case %zu: shape", t);
        CHECK(net->layers[0].p.head.num == num);
        float in[512];
        fill(in, (size_t)N, 91u + (uint32_t)t, -3.f, 3.f);
        captured cap;
        if (!run_all(net, in, &cap)) {
            double want[512];
            for (int n = 0; n < num; n++)
                for (int e = 0; e < K + 5; e++)
                    for (int loc = 0; loc < hw; loc++) {
                        int i = n * hw * (K + 5) + e * hw + loc;
                        /* x, y, objectness and classes: logistic; w, h: raw */
                        want[i] = (e == 2 || e == 3) ? in[i] : act_ref(in[i], FP_ACT_LOGISTIC);
                    }
            char why[160];
            int bad = compare(cap.out[0], want, (size_t)N, TOL, why, sizeof why);
            CHECK_MSG(bad == 0, "yolo case %zu (mask %s): %d differ, %s", t, cases[t].mask ? cases[t].mask : "-", bad, why);
        }
        captured_free(&cap);
        fp_net_destroy(net);
    }
}

/* ---- a small chain of several ops together ---------------------------- */

/* The ops compose: conv → maxpool → conv → avgpool → connected → softmax,
 * each layer fed with the previous capture, checked against the same
 * reference formulas as above, but only at the end (classifier style). */
static void test_classifier_chain(void)
{
    const char *cfg =
        "[net]\nwidth=6\nheight=6\nchannels=3\n"
        "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
        "[maxpool]\nsize=2\nstride=2\n"
        "[avgpool]\n"
        "[connected]\noutput=5\nactivation=linear\n"
        "[softmax]\n";
    fp_net *net = build(cfg, 5);
    if (!net) return;
    float in[108];
    fill(in, 108, 99, -1.f, 1.f);
    captured cap;
    if (!run_all(net, in, &cap)) {
        /* conv */
        const float *p = layer_params(net, 0);
        double conv[4 * 36], pool[4 * 9], avg[4], fc[5], sm[5];
        for (int f = 0; f < 4; f++)
            for (int y = 0; y < 6; y++)
                for (int x = 0; x < 6; x++) {
                    double s = 0;
                    for (int c = 0; c < 3; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int iy = y + ky - 1, ix = x + kx - 1;
                                if (iy < 0 || iy >= 6 || ix < 0 || ix >= 6) continue;
                                s += (double)in[(c * 6 + iy) * 6 + ix] * p[16 + ((f * 3 + c) * 3 + ky) * 3 + kx];
                            }
                    s = (s - p[8 + f]) / (sqrt(p[12 + f]) + .000001) * p[4 + f] + p[f];
                    conv[(f * 6 + y) * 6 + x] = act_ref(s, FP_ACT_LEAKY);
                }
        for (int f = 0; f < 4; f++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++) {
                    double m = -DBL_MAX;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            double v = conv[(f * 6 + 2 * y + dy) * 6 + 2 * x + dx];
                            if (v > m) m = v;
                        }
                    pool[(f * 3 + y) * 3 + x] = m;
                }
        for (int f = 0; f < 4; f++) {
            avg[f] = 0;
            for (int i = 0; i < 9; i++) avg[f] += pool[f * 9 + i] / 9;
        }
        const float *q = layer_params(net, 3);
        double mx = -DBL_MAX, sum = 0;
        for (int o = 0; o < 5; o++) {
            fc[o] = q[o];
            for (int i = 0; i < 4; i++) fc[o] += (double)q[5 + o * 4 + i] * avg[i];
            if (fc[o] > mx) mx = fc[o];
        }
        for (int o = 0; o < 5; o++) sum += exp(fc[o] - mx);
        for (int o = 0; o < 5; o++) sm[o] = exp(fc[o] - mx) / sum;
        char why[160];
        CHECK_MSG(compare(cap.out[0], conv, 144, TOL, why, sizeof why) == 0, "conv: %s", why);
        CHECK_MSG(compare(cap.out[1], pool, 36, TOL, why, sizeof why) == 0, "maxpool: %s", why);
        CHECK_MSG(compare(cap.out[2], avg, 4, TOL, why, sizeof why) == 0, "avgpool: %s", why);
        CHECK_MSG(compare(cap.out[3], fc, 5, TOL, why, sizeof why) == 0, "connected: %s", why);
        CHECK_MSG(compare(cap.out[4], sm, 5, TOL, why, sizeof why) == 0, "softmax: %s", why);
        /* the final output stays readable through the public accessor */
        CHECK(memcmp(fp_net_output(net, 4), cap.out[4], 5 * sizeof(float)) == 0);
    }
    captured_free(&cap);
    fp_net_destroy(net);
}

/* ---- cfg errors ------------------------------------------------------- */

static void test_cfg_errors(void)
{
#define NET "[net]\nwidth=8\nheight=8\nchannels=3\n"           /* lines 1-4 */
#define CONV "[convolutional]\nfilters=4\nsize=3\npad=1\n"     /* 4 lines */
    static const struct {
        const char *what, *text;
        fp_status want;
        int line; /* line the message must name (0: none expected) */
    } cases[] = {
        {"unknown section type", NET "[bogus]\nfoo=1\n", FP_EUNSUPPORTED, 5},
        {"option before any section", "# comment\nwidth=3\n" NET, FP_ECORRUPT, 2},
        {"filters=abc", NET "[convolutional]\nsize=3\nfilters=abc\n", FP_ECORRUPT, 7},
        {"filters=0", NET "[convolutional]\nfilters=0\n", FP_ECORRUPT, 6},
        {"filters=-1", NET "[convolutional]\nfilters=-1\n", FP_ECORRUPT, 6},
        {"groups not dividing channels", NET "[convolutional]\nfilters=4\ngroups=2\n", FP_ECORRUPT, 5},
        {"groups not dividing filters", NET "\n[convolutional]\nfilters=4\ngroups=3\n", FP_ECORRUPT, 6},
        {"route to a future layer", NET CONV "[route]\nlayers=2\n" CONV, FP_ECORRUPT, 9},
        {"route to itself", NET CONV "[route]\nlayers=1\n", FP_ECORRUPT, 9},
        {"route out of range (negative)", NET CONV "[route]\nlayers=-3\n", FP_ECORRUPT, 9},
        {"route with no layers", NET CONV "[route]\n", FP_ECORRUPT, 9},
        {"route with garbage", NET CONV "[route]\nlayers=-1,x\n", FP_ECORRUPT, 10},
        {"shortcut from out of range", NET CONV "[shortcut]\nfrom=-5\n", FP_ECORRUPT, 9},
        {"shortcut from the future", NET CONV "[shortcut]\nfrom=1\n", FP_ECORRUPT, 9},
        {"shortcut without from", NET CONV "[shortcut]\nactivation=linear\n", FP_ECORRUPT, 9},
        {"region with wrong channel count", NET CONV "[region]\nclasses=20\nnum=5\n", FP_ECORRUPT, 9},
        {"yolo with wrong channel count", NET CONV "[yolo]\nclasses=1\nnum=1\n", FP_ECORRUPT, 9},
        {"missing [net]", CONV "[maxpool]\n", FP_ECORRUPT, 1},
        {"width=0", "[net]\nwidth=0\nheight=8\nchannels=3\n" CONV, FP_EUNSUPPORTED, 1},
        {"width=-4", "[net]\nheight=8\nchannels=3\nwidth=-4\n" CONV, FP_ECORRUPT, 4},
        {"unsupported [lstm]", NET CONV "[lstm]\noutput=4\n", FP_EUNSUPPORTED, 9},
        {"unsupported activation", NET "[convolutional]\nfilters=4\nactivation=mish\n", FP_EUNSUPPORTED, 5},
        {"second [net]", NET CONV NET, FP_ECORRUPT, 9},
        {"no layers", NET, FP_ECORRUPT, 0},
        {"line without =", NET "[maxpool]\nsize 2\n", FP_ECORRUPT, 6},
        {"unterminated header", NET "[maxpool\n", FP_ECORRUPT, 5},
        {"maxpool window larger than input", "[net]\nwidth=2\nheight=2\nchannels=1\n[maxpool]\nsize=5\nstride=1\npadding=0\n",
         FP_ECORRUPT, 5},
        {"empty text", "", FP_ECORRUPT, 0},
        {"only comments", "# nothing\n; here\n\n", FP_ECORRUPT, 0},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        fp_net *net = (fp_net *)(uintptr_t)1; /* must stay untouched on failure */
        fp_status st = fp_net_parse_cfg(cases[t].text, "bad.cfg", &net);
        CHECK_MSG(st == cases[t].want, "%s: got %s, want %s (%s)", cases[t].what, fp_status_name(st),
                  fp_status_name(cases[t].want), fp_last_error());
        CHECK_MSG(net == (fp_net *)(uintptr_t)1, "%s: *out was written on failure", cases[t].what);
        if (st == FP_OK && net != (fp_net *)(uintptr_t)1) fp_net_destroy(net);
        const char *msg = fp_last_error();
        CHECK_MSG(strstr(msg, "bad.cfg") != NULL, "%s: message does not name the file: %s", cases[t].what, msg);
        if (cases[t].line) {
            char at[32];
            snprintf(at, sizeof at, "bad.cfg:%d:", cases[t].line);
            CHECK_MSG(strstr(msg, at) != NULL, "%s: message does not name line %d: %s", cases[t].what,
                      cases[t].line, msg);
        }
    }
#undef NET
#undef CONV
    /* the good counterpart parses, so the errors above are the cases' own */
    fp_net *net = NULL;
    CHECK_OK(fp_net_parse_cfg("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=4\nsize=3\npad=1\n"
                              "[route]\nlayers=-1\n[shortcut]\nfrom=-2\n",
                              "good.cfg", &net));
    fp_net_destroy(net);
}

TEST_LIST = {
    {"convolutional", test_convolutional},
    {"maxpool", test_maxpool},
    {"avgpool", test_avgpool},
    {"dropout", test_dropout},
    {"connected", test_connected},
    {"softmax", test_softmax},
    {"route", test_route},
    {"shortcut", test_shortcut},
    {"upsample", test_upsample},
    {"reorg", test_reorg},
    {"detection", test_detection},
    {"region", test_region},
    {"yolo", test_yolo},
    {"classifier_chain", test_classifier_chain},
    {"cfg_errors", test_cfg_errors},
    {NULL, NULL},
};
