/*
 * darknet_oracle — reference outputs from Debian's libdarknet (pjreddie
 * darknet 61c9d02e), plus the comparators the golden tests use. Test tooling
 * only: it links libdarknet.so and needs nothing beyond the C library.
 *
 * Modes:
 *   darknet_oracle forward CFG WEIGHTS IN.f32 OUTDIR
 *       Loads the network (batch 1), feeds exactly net->inputs float32 values
 *       from IN.f32, and writes each layer i's output (l.outputs floats) to
 *       OUTDIR/layer_%03d.f32. Layers without an output buffer, and [cost]
 *       layers (whose output is never computed at inference), are skipped
 *       with a note on stderr.
 *   darknet_oracle detect CFG WEIGHTS NAMES THRESH NMS IMAGE...
 *       One JSON line per image, in fogpipe's detect format. Preprocessing
 *       and box decoding as darknet's own tools: [detection] (YOLOv1) nets
 *       like examples/yolo.c test_yolo (resize_image, relative boxes);
 *       [region]/[yolo] nets like examples/detector.c test_detector
 *       (letterbox_image, hier .5, relative=1). do_nms_sort if NMS > 0.
 *   darknet_oracle pickthresh CFG WEIGHTS NMS MIN MAX MAXTHRESH IMAGE...
 *       Prints "THRESH COUNT": a detection threshold <= MAXTHRESH at which
 *       darknet reports between 1 and MAX detections in total over the
 *       images (MIN..MAX before NMS when there are enough scores; more than
 *       MAX only when no threshold <= MAXTHRESH allows fewer), placed in a
 *       gap between scores so that tiny float differences cannot flip a
 *       detection in or out. Exit 1 if there is no usable threshold.
 *   darknet_oracle randinput N SEED OUT.f32
 *       N float32 values uniform in [0,1) from a fixed generator.
 *   darknet_oracle randweights CFG SEED OUT.weights
 *       A darknet .weights file with random parameters (for testing the
 *       oracle itself; fogpipe has its own random-weights command).
 *   darknet_oracle compare A.f32 B.f32 TOL
 *       A is under test, B the reference: same size and
 *       max|a-b| <= TOL * max|b| (absolute TOL when max|b| == 0).
 *   darknet_oracle compare-layers ADIR BDIR TOL
 *       compare for every layer_NNN.f32 in BDIR (the reference) against the
 *       same name in ADIR; one line per layer, then a WORST summary line.
 *   darknet_oracle compare-detect A.jsonl B.jsonl [BOXTOL [SCORETOL]]
 *       Detect outputs: same images in the same order, same width/height,
 *       same number of detections per image; detections are paired by class
 *       with greedy best IoU, and every pair must agree within BOXTOL pixels
 *       (default 1.0) on x, y, w, h and within SCORETOL (default 1e-3).
 *
 * Exit status: 0 ok, 1 mismatch or error, 2 usage.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "darknet.h"

/* libdarknet leaks by design (parsed cfg lists, per-layer buffers that
 * free_network misses); in a sanitizer build of the tests, do not let
 * LeakSanitizer turn those into failures of the oracle. Unused otherwise. */
__attribute__((used, visibility("default"))) const char *__asan_default_options(void);
__attribute__((used, visibility("default"))) const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}

/* ------------------------------------------------------------------ util */

static void die(const char *fmt, const char *a)
{
    fprintf(stderr, "darknet_oracle: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(1);
}

static long file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISREG(st.st_mode)) return -1;
    return (long)st.st_size;
}

static float *read_f32(const char *path, long *count)
{
    long sz = file_size(path);
    if (sz < 0) die("cannot read %s", path);
    if (sz % 4) die("%s: size is not a multiple of 4 bytes", path);
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s", path);
    float *buf = malloc(sz ? (size_t)sz : 4);
    if (!buf) die("out of memory reading %s", path);
    if (sz && fread(buf, 1, (size_t)sz, f) != (size_t)sz) die("short read on %s", path);
    fclose(f);
    *count = sz / 4;
    return buf;
}

static void write_f32(const char *path, const float *data, long n)
{
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot create %s", path);
    if (n && fwrite(data, sizeof(float), (size_t)n, f) != (size_t)n) die("write failed on %s", path);
    if (fclose(f) != 0) die("write failed on %s", path);
}

static uint64_t rng_state;
static uint64_t splitmix64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [0,1): the top 24 bits, so every value is an exact float */
static float rand01(void) { return (float)(splitmix64() >> 40) * (1.0f / 16777216.0f); }

static const char *layer_type_name(LAYER_TYPE t)
{
    switch (t) {
    case CONVOLUTIONAL: return "convolutional";
    case DECONVOLUTIONAL: return "deconvolutional";
    case CONNECTED: return "connected";
    case MAXPOOL: return "maxpool";
    case SOFTMAX: return "softmax";
    case DETECTION: return "detection";
    case DROPOUT: return "dropout";
    case CROP: return "crop";
    case ROUTE: return "route";
    case COST: return "cost";
    case NORMALIZATION: return "normalization";
    case AVGPOOL: return "avgpool";
    case LOCAL: return "local";
    case SHORTCUT: return "shortcut";
    case ACTIVE: return "activation";
    case RNN: return "rnn";
    case GRU: return "gru";
    case LSTM: return "lstm";
    case CRNN: return "crnn";
    case BATCHNORM: return "batchnorm";
    case NETWORK: return "network";
    case XNOR: return "xnor";
    case REGION: return "region";
    case YOLO: return "yolo";
    case ISEG: return "iseg";
    case REORG: return "reorg";
    case UPSAMPLE: return "upsample";
    case LOGXENT: return "logxent";
    case L2NORM: return "l2norm";
    default: return "?";
    }
}

/* ------------------------------------------------------- network loading */

/* Bytes darknet's load_weights() would consume for this network, or -1 when
 * a layer type is present whose size we do not compute. darknet itself does
 * not check: a short file silently leaves its own random init in place. */
static long expected_weights_bytes(network *net, int header_seen_bytes)
{
    long total = 12 + header_seen_bytes;
    for (int i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        if (l.dontload) continue;
        long n = 0;
        switch (l.type) {
        case CONVOLUTIONAL:
        case DECONVOLUTIONAL: {
            long filters = l.numload ? l.numload : l.n;
            n = filters + (long)l.c / l.groups * filters * l.size * l.size;
            if (l.batch_normalize && !l.dontloadscales) n += 3 * filters;
            break;
        }
        case CONNECTED:
            n = (long)l.outputs + (long)l.outputs * l.inputs;
            if (l.batch_normalize && !l.dontloadscales) n += 3L * l.outputs;
            break;
        case BATCHNORM:
            n = 3L * l.c;
            break;
        case LOCAL:
            n = (long)l.outputs + (long)l.size * l.size * l.c * l.n * l.out_w * l.out_h;
            break;
        case RNN: case LSTM: case GRU: case CRNN:
            return -1;
        default:
            break;
        }
        total += 4 * n;
    }
    return total;
}

static network *load_checked(char *cfg, char *weights)
{
    if (file_size(cfg) < 0) die("cannot read cfg %s", cfg);
    long wsz = file_size(weights);
    if (wsz < 20) die("cannot read weights %s (missing or shorter than the header)", weights);
    int hdr[3];
    FILE *f = fopen(weights, "rb");
    if (!f || fread(hdr, sizeof(int), 3, f) != 3) die("cannot read weights header of %s", weights);
    fclose(f);
    int seen_bytes = ((hdr[0] * 10 + hdr[1]) >= 2 && hdr[0] < 1000 && hdr[1] < 1000) ? 8 : 4;

    network *net = load_network(cfg, weights, 0);
    if (!net) die("darknet could not load %s", cfg);
    set_batch_network(net, 1);

    long want = expected_weights_bytes(net, seen_bytes);
    if (want >= 0 && want != wsz) {
        fprintf(stderr, "darknet_oracle: %s has %ld bytes but darknet reads %ld for %s "
                        "(header %d.%d.%d)\n", weights, wsz, want, cfg, hdr[0], hdr[1], hdr[2]);
        exit(1);
    }
    if (want < 0) fprintf(stderr, "darknet_oracle: note: weights size of %s not checked\n", cfg);
    return net;
}

/* ---------------------------------------------------------------- forward */

static int cmd_forward(int argc, char **argv)
{
    if (argc != 6) return 2;
    char *cfg = argv[2], *weights = argv[3], *in = argv[4], *outdir = argv[5];
    network *net = load_checked(cfg, weights);
    long n = 0;
    float *x = read_f32(in, &n);
    if (n != net->inputs) {
        fprintf(stderr, "darknet_oracle: %s has %ld floats, the network takes %d (%dx%dx%d)\n",
                in, n, net->inputs, net->c, net->h, net->w);
        return 1;
    }
    mkdir(outdir, 0777);
    network_predict(net, x);
    char path[4096];
    for (int i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        if (!l.output) {
            fprintf(stderr, "darknet_oracle: skipped layer %d (%s): no output buffer\n", i,
                    layer_type_name(l.type));
            continue;
        }
        if (l.type == COST) {
            fprintf(stderr, "darknet_oracle: skipped layer %d (cost): no output at inference\n", i);
            continue;
        }
        snprintf(path, sizeof path, "%s/layer_%03d.f32", outdir, i);
        write_f32(path, l.output, l.outputs);
    }
    free(x);
    free_network(net);
    return 0;
}

/* ----------------------------------------------------------------- detect */

static char **read_names(const char *path, int *count)
{
    FILE *f = fopen(path, "r");
    if (!f) die("cannot read names file %s", path);
    int cap = 64, n = 0;
    char **names = malloc(sizeof(char *) * cap);
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (n == cap) names = realloc(names, sizeof(char *) * (cap *= 2));
        names[n++] = strdup(line);
    }
    fclose(f);
    /* darknet's get_labels keeps every line; a trailing empty line would only
     * matter past the class count */
    *count = n;
    return names;
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; ++p) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        default:
            if (*p < 0x20) fprintf(out, "\\u%04x", *p);
            else fputc(*p, out);
        }
    }
    fputc('"', out);
}

typedef struct {
    int is_v1;       /* last layer is [detection] */
    int classes;
    image im;        /* original, for width/height */
} run_ctx;

/* Runs the network on one image; leaves the outputs in the layers. */
static run_ctx run_image(network *net, char *path)
{
    run_ctx r;
    layer last = net->layers[net->n - 1];
    if (last.type != DETECTION && last.type != REGION && last.type != YOLO)
        die("%s: last layer is not detection/region/yolo", layer_type_name(last.type));
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot read image %s", path); /* darknet would give a 10x10 image */
    fclose(f);
    r.is_v1 = last.type == DETECTION;
    r.classes = last.classes;
    r.im = load_image_color(path, 0, 0);
    image sized = r.is_v1 ? resize_image(r.im, net->w, net->h) : letterbox_image(r.im, net->w, net->h);
    network_predict(net, sized.data);
    free_image(sized);
    return r;
}

static detection *boxes_for(network *net, run_ctx *r, float thresh, float nms, int *n)
{
    detection *dets;
    if (r->is_v1) dets = get_network_boxes(net, 1, 1, thresh, 0, 0, 0, n);
    else dets = get_network_boxes(net, r->im.w, r->im.h, thresh, .5, 0, 1, n);
    if (nms > 0) do_nms_sort(dets, *n, r->classes, nms);
    return dets;
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static int cmd_detect(int argc, char **argv)
{
    if (argc < 8) return 2;
    char *cfg = argv[2], *weights = argv[3], *namesf = argv[4];
    float thresh = (float)atof(argv[5]), nms = (float)atof(argv[6]);
    int nnames = 0;
    char **names = read_names(namesf, &nnames);
    network *net = load_checked(cfg, weights);
    int classes = net->layers[net->n - 1].classes;
    if (nnames < classes) {
        fprintf(stderr, "darknet_oracle: %s has %d names, the network has %d classes\n", namesf,
                nnames, classes);
        return 1;
    }
    for (int a = 7; a < argc; ++a) {
        run_ctx r = run_image(net, argv[a]);
        int n = 0;
        detection *dets = boxes_for(net, &r, thresh, nms, &n);
        double W = r.im.w, H = r.im.h;
        printf("{\"image\": ");
        json_string(stdout, argv[a]);
        printf(", \"width\": %d, \"height\": %d, \"detections\": [", r.im.w, r.im.h);
        int first = 1;
        for (int i = 0; i < n; ++i) {
            box b = dets[i].bbox;
            for (int j = 0; j < classes; ++j) {
                if (!(dets[i].prob[j] > thresh)) continue;
                double x0 = clampd((b.x - b.w / 2.) * W, 0, W), x1 = clampd((b.x + b.w / 2.) * W, 0, W);
                double y0 = clampd((b.y - b.h / 2.) * H, 0, H), y1 = clampd((b.y + b.h / 2.) * H, 0, H);
                printf("%s{\"label\": ", first ? "" : ", ");
                json_string(stdout, names[j]);
                printf(", \"class\": %d, \"score\": %.6f, \"box\": {\"x\": %.3f, \"y\": %.3f, "
                       "\"w\": %.3f, \"h\": %.3f}}",
                       j, dets[i].prob[j], x0, y0, x1 - x0, y1 - y0);
                first = 0;
            }
        }
        printf("]}\n");
        fflush(stdout);
        free_detections(dets, n);
        free_image(r.im);
    }
    free_network(net);
    return 0;
}

/* ------------------------------------------------------------- pickthresh */

static int desc_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

/* Counts (box, class) pairs darknet would print at `thresh` after NMS. */
static int count_dets(network *net, run_ctx *r, float thresh, float nms)
{
    int n = 0, c = 0;
    detection *dets = boxes_for(net, r, thresh, nms, &n);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < r->classes; ++j)
            if (dets[i].prob[j] > thresh) ++c;
    free_detections(dets, n);
    return c;
}

/* With random weights the scores bunch up (e.g. all near objectness/classes,
 * or all near 1 where the logistic saturates), so a fixed list of thresholds
 * either gives nothing or thousands. Instead: collect every positive
 * (box, class) score of every image before NMS, sort, and put the threshold
 * in the middle of the widest relative gap between the k-th and (k+1)-th
 * score, for k in [MIN, MAX] (k below MIN if there are fewer scores; if no
 * threshold <= MAXTHRESH admits MAX or fewer, the smallest k possible, up to
 * 5000). NMS only removes detections and never the best one, so darknet
 * prints at least one; the gap (at least MINGAP relative) keeps every score
 * away from the threshold, so small float differences cannot flip a
 * detection in or out. MAXTHRESH: the largest threshold the engine under
 * test accepts (YOLOv1 scores are raw linear outputs, not bounded by 1). */
enum { PICK_HARD_CAP = 5000 };
static const double kMinGap = 1e-4;

static int cmd_pickthresh(int argc, char **argv)
{
    if (argc < 9) return 2;
    char *cfg = argv[2], *weights = argv[3];
    float nms = (float)atof(argv[4]);
    int lo = atoi(argv[5]), hi = atoi(argv[6]);
    double maxt = atof(argv[7]);
    if (lo < 1 || hi < lo || !(maxt > 0)) return 2;
    network *net = load_checked(cfg, weights);
    int first_img = 8, nimg = argc - first_img;
    long ns = 0, cap = 1024;
    float *scores = malloc(sizeof(float) * cap);
    float **saved = calloc((size_t)nimg * net->n, sizeof(float *));
    run_ctx *ctx = calloc(nimg, sizeof(run_ctx));
    for (int a = 0; a < nimg; ++a) {
        run_ctx r = ctx[a] = run_image(net, argv[first_img + a]);
        for (int i = 0; i < net->n; ++i) {
            layer l = net->layers[i];
            if (l.type != DETECTION && l.type != REGION && l.type != YOLO) continue;
            saved[(size_t)a * net->n + i] = malloc(sizeof(float) * l.outputs);
            memcpy(saved[(size_t)a * net->n + i], l.output, sizeof(float) * l.outputs);
        }
        int n = 0;
        detection *dets = boxes_for(net, &r, 0.f, 0.f, &n);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < r.classes; ++j)
                if (dets[i].prob[j] > 0) {
                    if (ns == cap) scores = realloc(scores, sizeof(float) * (cap *= 2));
                    scores[ns++] = dets[i].prob[j];
                }
        free_detections(dets, n);
    }
    qsort(scores, ns, sizeof(float), desc_float);
    /* k scores above the threshold: t between scores[k-1] and scores[k],
     * clipped to maxt */
    int best = -1;
    double best_gap = -1, best_t = 0;
    for (int pass = 0; pass < 3 && best < 0; ++pass) {
        long k0, k1;
        if (pass == 0) k0 = lo, k1 = hi;                  /* the wanted range */
        else if (pass == 1) k0 = 1, k1 = lo - 1;          /* fewer scores than MIN */
        else k0 = hi + 1, k1 = PICK_HARD_CAP;             /* too many above MAXTHRESH */
        if (k1 > ns) k1 = ns;
        for (long k = k0; k <= k1; ++k) {
            double below = k < ns ? scores[k] : 0;
            double above = scores[k - 1] < maxt ? scores[k - 1] : maxt;
            if (!(above > below) || above <= 0) continue;
            double gap = (above - below) / above;
            if (gap < kMinGap) continue;
            if (gap > best_gap) {
                best_gap = gap;
                best = (int)k;
                best_t = (above + below) / 2;
            }
            if (pass == 2) break; /* the smallest feasible count */
        }
    }
    if (best < 0) {
        fprintf(stderr, "darknet_oracle: no threshold <= %g with a %.3g%% gap between scores "
                        "(%ld positive scores, best %.9g)\n", maxt, kMinGap * 100, ns,
                ns ? scores[0] : 0.);
        free_network(net);
        return 1;
    }
    float t = (float)best_t;
    /* count what darknet will actually print (after NMS) at t, from each
     * image's saved detection-layer outputs */
    long total = 0;
    for (int a = 0; a < nimg; ++a) {
        for (int i = 0; i < net->n; ++i)
            if (saved[(size_t)a * net->n + i])
                memcpy(net->layers[i].output, saved[(size_t)a * net->n + i],
                       sizeof(float) * net->layers[i].outputs);
        total += count_dets(net, &ctx[a], t, nms);
    }
    fprintf(stderr, "darknet_oracle: threshold %.9g between scores %.9g and %.9g (gap %.2g%%): "
                    "%d before NMS, %ld after%s\n", t, scores[best - 1],
            best < ns ? scores[best] : 0., best_gap * 100, best, total,
            best > hi ? " (more than wanted: no higher threshold allowed)" : "");
    for (int a = 0; a < nimg; ++a) {
        free_image(ctx[a].im);
        for (int i = 0; i < net->n; ++i) free(saved[(size_t)a * net->n + i]);
    }
    free(saved);
    free(ctx);
    free(scores);
    free_network(net);
    if (total < 1) return 1;
    printf("%.9g %ld\n", t, total);
    return 0;
}

/* ------------------------------------------------------ random generators */

static int cmd_randinput(int argc, char **argv)
{
    if (argc != 5) return 2;
    long n = atol(argv[2]);
    if (n <= 0) die("bad count %s", argv[2]);
    rng_state = strtoull(argv[3], NULL, 10);
    float *x = malloc(sizeof(float) * n);
    if (!x) die("out of memory%s", "");
    for (long i = 0; i < n; ++i) x[i] = rand01();
    write_f32(argv[4], x, n);
    free(x);
    return 0;
}

static void fill(float *p, long n, float lo, float hi)
{
    for (long i = 0; i < n; ++i) p[i] = lo + (hi - lo) * rand01();
}

static int cmd_randweights(int argc, char **argv)
{
    if (argc != 5) return 2;
    rng_state = strtoull(argv[3], NULL, 10);
    network *net = parse_network_cfg(argv[2]);
    for (int i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        long nout, nw, fan_in;
        if (l.type == CONVOLUTIONAL || l.type == DECONVOLUTIONAL) {
            nout = l.n;
            nw = (long)l.c / l.groups * l.n * l.size * l.size;
            fan_in = (long)l.c / l.groups * l.size * l.size;
        } else if (l.type == CONNECTED) {
            nout = l.outputs;
            nw = (long)l.inputs * l.outputs;
            fan_in = l.inputs;
        } else {
            if (l.type == BATCHNORM || l.type == LOCAL || l.type == RNN || l.type == LSTM ||
                l.type == GRU || l.type == CRNN)
                die("randweights: layer type %s not supported", layer_type_name(l.type));
            continue;
        }
        float s = sqrtf(3.f / (float)fan_in);
        fill(l.weights, nw, -s, s);
        fill(l.biases, nout, -0.1f, 0.1f);
        if (l.batch_normalize) {
            fill(l.scales, nout, 0.5f, 1.5f);
            fill(l.rolling_mean, nout, -0.1f, 0.1f);
            fill(l.rolling_variance, nout, 0.5f, 1.5f);
        }
    }
    save_weights(net, argv[4]);
    free_network(net);
    return 0;
}

/* ------------------------------------------------------------ comparators */

typedef struct {
    long n;
    double max_abs_diff, max_ref;
    long worst_i;      /* index of the largest |a-b| */
    float worst_a, worst_b;
    long first_bad;    /* first index with |a-b| > tolerance, or -1 */
    float first_a, first_b;
    long nonfinite;    /* indices where either value is NaN/Inf */
    int size_mismatch; /* element counts differ */
    long na, nb;
} cmp_result;

static cmp_result compare_arrays(const float *a, long na, const float *b, long nb, double tol)
{
    cmp_result r;
    memset(&r, 0, sizeof r);
    r.na = na;
    r.nb = nb;
    r.first_bad = -1;
    r.worst_i = -1;
    if (na != nb) {
        r.size_mismatch = 1;
        return r;
    }
    r.n = na;
    for (long i = 0; i < nb; ++i)
        if (isfinite(b[i]) && fabs(b[i]) > r.max_ref) r.max_ref = fabs(b[i]);
    double lim = r.max_ref > 0 ? tol * r.max_ref : tol;
    for (long i = 0; i < na; ++i) {
        if (!isfinite(a[i]) || !isfinite(b[i])) {
            if (r.nonfinite++ == 0 && r.first_bad < 0) {
                r.first_bad = i;
                r.first_a = a[i];
                r.first_b = b[i];
            }
            continue;
        }
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > r.max_abs_diff || r.worst_i < 0) {
            r.max_abs_diff = d;
            r.worst_i = i;
            r.worst_a = a[i];
            r.worst_b = b[i];
        }
        if (d > lim && r.first_bad < 0) {
            r.first_bad = i;
            r.first_a = a[i];
            r.first_b = b[i];
        }
    }
    return r;
}

static double rel_err(const cmp_result *r)
{
    return r->max_ref > 0 ? r->max_abs_diff / r->max_ref : r->max_abs_diff;
}

static int cmp_ok(const cmp_result *r) { return !r->size_mismatch && r->first_bad < 0; }

static void print_cmp(const char *name, const cmp_result *r)
{
    if (r->size_mismatch) {
        printf("%s: SIZE MISMATCH %ld floats vs %ld in the reference\n", name, r->na, r->nb);
        return;
    }
    printf("%s: %s n=%ld max|ref|=%.6g max|diff|=%.3g rel=%.3g", name, cmp_ok(r) ? "ok" : "MISMATCH",
           r->n, r->max_ref, r->max_abs_diff, rel_err(r));
    if (r->worst_i >= 0) printf(" worst@%ld (%.9g vs %.9g)", r->worst_i, r->worst_a, r->worst_b);
    if (r->first_bad >= 0)
        printf(" first_bad@%ld (%.9g vs %.9g)", r->first_bad, r->first_a, r->first_b);
    if (r->nonfinite) printf(" nonfinite=%ld", r->nonfinite);
    printf("\n");
}

static int cmd_compare(int argc, char **argv)
{
    if (argc != 5) return 2;
    long na, nb;
    float *a = read_f32(argv[2], &na), *b = read_f32(argv[3], &nb);
    cmp_result r = compare_arrays(a, na, b, nb, atof(argv[4]));
    print_cmp(argv[3], &r);
    return cmp_ok(&r) ? 0 : 1;
}

static int name_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int cmd_compare_layers(int argc, char **argv)
{
    if (argc != 5) return 2;
    const char *adir = argv[2], *bdir = argv[3];
    double tol = atof(argv[4]);
    DIR *d = opendir(bdir);
    if (!d) die("cannot open directory %s", bdir);
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name), k;
        if (len < 13 || strncmp(e->d_name, "layer_", 6) || strcmp(e->d_name + len - 4, ".f32")) continue;
        for (k = 6; k < len - 4 && isdigit((unsigned char)e->d_name[k]); ++k) {}
        if (k != len - 4) continue;
        if (n == cap) names = realloc(names, sizeof(char *) * (cap = cap ? cap * 2 : 64));
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n == 0) die("no layer_NNN.f32 files in %s", bdir);
    qsort(names, n, sizeof(char *), name_cmp);
    int bad = 0;
    double worst = -1;
    char worst_name[256] = "";
    char pa[4096], pb[4096];
    for (int i = 0; i < n; ++i) {
        snprintf(pa, sizeof pa, "%s/%s", adir, names[i]);
        snprintf(pb, sizeof pb, "%s/%s", bdir, names[i]);
        if (file_size(pa) < 0) {
            printf("%s: MISSING from %s\n", names[i], adir);
            ++bad;
            continue;
        }
        long na, nb;
        float *a = read_f32(pa, &na), *b = read_f32(pb, &nb);
        cmp_result r = compare_arrays(a, na, b, nb, tol);
        print_cmp(names[i], &r);
        if (!cmp_ok(&r)) ++bad;
        double re = r.size_mismatch || r.nonfinite ? INFINITY : rel_err(&r);
        if (re > worst) {
            worst = re;
            snprintf(worst_name, sizeof worst_name, "%s", names[i]);
        }
        free(a);
        free(b);
        free(names[i]);
    }
    free(names);
    printf("WORST %s rel=%.3g layers=%d mismatched=%d\n", worst_name, worst, n, bad);
    return bad ? 1 : 0;
}

/* A minimal JSON reader, enough for detect output. */
typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jval {
    jtype t;
    double num;
    char *str;
    int n;            /* items (array) or members (object) */
    struct jval *items;
    char **keys;      /* object member names */
} jval;

typedef struct {
    const char *p;
    const char *err;
} jparser;

static void jws(jparser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r') ps->p++;
}

static int jparse(jparser *ps, jval *v, int depth);

static int jstring(jparser *ps, char **out)
{
    if (*ps->p != '"') return ps->err = "expected string", 0;
    ps->p++;
    size_t cap = 32, n = 0;
    char *s = malloc(cap);
    while (*ps->p != '"') {
        if (!*ps->p) return free(s), ps->err = "unterminated string", 0;
        char c = *ps->p++;
        if (c == '\\') {
            char e = *ps->p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned cp = 0;
                for (int k = 0; k < 4; ++k) {
                    if (!isxdigit((unsigned char)*ps->p)) return free(s), ps->err = "bad \\u", 0;
                    char h = *ps->p++;
                    cp = cp * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
                }
                c = cp < 0x80 ? (char)cp : '?'; /* labels are compared bytewise; good enough */
                break;
            }
            case 0: return free(s), ps->err = "bad escape", 0;
            default: c = e;
            }
        }
        if (n + 2 > cap) s = realloc(s, cap *= 2);
        s[n++] = c;
    }
    ps->p++;
    s[n] = 0;
    *out = s;
    return 1;
}

static int jparse(jparser *ps, jval *v, int depth)
{
    memset(v, 0, sizeof *v);
    if (depth > 32) return ps->err = "too deep", 0;
    jws(ps);
    char c = *ps->p;
    if (c == '{' || c == '[') {
        int obj = c == '{';
        v->t = obj ? J_OBJ : J_ARR;
        ps->p++;
        jws(ps);
        int cap = 0;
        if (*ps->p == (obj ? '}' : ']')) {
            ps->p++;
            return 1;
        }
        for (;;) {
            if (v->n == cap) {
                cap = cap ? cap * 2 : 8;
                v->items = realloc(v->items, sizeof(jval) * cap);
                if (obj) v->keys = realloc(v->keys, sizeof(char *) * cap);
            }
            jws(ps);
            if (obj) {
                if (!jstring(ps, &v->keys[v->n])) return 0;
                jws(ps);
                if (*ps->p != ':') return ps->err = "expected ':'", 0;
                ps->p++;
            }
            if (!jparse(ps, &v->items[v->n], depth + 1)) return 0;
            v->n++;
            jws(ps);
            if (*ps->p == ',') {
                ps->p++;
                continue;
            }
            if (*ps->p == (obj ? '}' : ']')) {
                ps->p++;
                return 1;
            }
            return ps->err = "expected ',' or end of container", 0;
        }
    }
    if (c == '"') {
        v->t = J_STR;
        return jstring(ps, &v->str);
    }
    if (!strncmp(ps->p, "true", 4) || !strncmp(ps->p, "false", 5)) {
        v->t = J_BOOL;
        v->num = ps->p[0] == 't';
        ps->p += v->num ? 4 : 5;
        return 1;
    }
    if (!strncmp(ps->p, "null", 4)) {
        v->t = J_NULL;
        ps->p += 4;
        return 1;
    }
    char *end;
    errno = 0;
    v->num = strtod(ps->p, &end);
    if (end == ps->p) return ps->err = "unexpected character", 0;
    v->t = J_NUM;
    ps->p = end;
    return 1;
}

static jval *jget(jval *o, const char *key)
{
    if (!o || o->t != J_OBJ) return NULL;
    for (int i = 0; i < o->n; ++i)
        if (!strcmp(o->keys[i], key)) return &o->items[i];
    return NULL;
}

typedef struct {
    int cls;
    double score, x, y, w, h;
    char *label;
} det;

typedef struct {
    char *image;
    int width, height;
    int n;
    det *dets;
} det_image;

static int load_jsonl(const char *path, det_image **out)
{
    FILE *f = fopen(path, "r");
    if (!f) die("cannot read %s", path);
    int n = 0, cap = 0;
    det_image *imgs = NULL;
    size_t lcap = 0;
    char *line = NULL;
    ssize_t len;
    int lineno = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        ++lineno;
        jparser ps = {line, NULL};
        jws(&ps);
        if (!*ps.p) continue;
        jval v;
        if (!jparse(&ps, &v, 0)) {
            fprintf(stderr, "darknet_oracle: %s:%d: bad JSON (%s) near \"%.20s\"\n", path, lineno,
                    ps.err, ps.p);
            exit(1);
        }
        jws(&ps);
        if (*ps.p) {
            fprintf(stderr, "darknet_oracle: %s:%d: trailing text after JSON\n", path, lineno);
            exit(1);
        }
        jval *im = jget(&v, "image"), *w = jget(&v, "width"), *h = jget(&v, "height");
        jval *ds = jget(&v, "detections");
        if (!im || im->t != J_STR || !w || w->t != J_NUM || !h || h->t != J_NUM || !ds ||
            ds->t != J_ARR) {
            fprintf(stderr, "darknet_oracle: %s:%d: missing image/width/height/detections\n", path,
                    lineno);
            exit(1);
        }
        if (n == cap) imgs = realloc(imgs, sizeof(det_image) * (cap = cap ? cap * 2 : 8));
        det_image *di = &imgs[n++];
        di->image = im->str;
        di->width = (int)w->num;
        di->height = (int)h->num;
        di->n = ds->n;
        di->dets = calloc(ds->n ? ds->n : 1, sizeof(det));
        for (int i = 0; i < ds->n; ++i) {
            jval *d = &ds->items[i];
            jval *cl = jget(d, "class"), *sc = jget(d, "score"), *lb = jget(d, "label"),
                 *bx = jget(d, "box");
            jval *x = jget(bx, "x"), *y = jget(bx, "y"), *bw = jget(bx, "w"), *bh = jget(bx, "h");
            if (!cl || cl->t != J_NUM || !sc || sc->t != J_NUM || !x || x->t != J_NUM || !y ||
                y->t != J_NUM || !bw || bw->t != J_NUM || !bh || bh->t != J_NUM) {
                fprintf(stderr, "darknet_oracle: %s:%d: detection %d lacks class/score/box\n",
                        path, lineno, i);
                exit(1);
            }
            det *o = &di->dets[i];
            o->cls = (int)cl->num;
            o->score = sc->num;
            o->x = x->num;
            o->y = y->num;
            o->w = bw->num;
            o->h = bh->num;
            o->label = lb && lb->t == J_STR ? lb->str : "";
        }
        /* the parsed tree is leaked on purpose: a test tool, a few KB */
    }
    free(line);
    fclose(f);
    *out = imgs;
    return n;
}

static double iou(const det *a, const det *b)
{
    double x0 = fmax(a->x, b->x), y0 = fmax(a->y, b->y);
    double x1 = fmin(a->x + a->w, b->x + b->w), y1 = fmin(a->y + a->h, b->y + b->h);
    double inter = (x1 > x0 && y1 > y0) ? (x1 - x0) * (y1 - y0) : 0;
    double uni = a->w * a->h + b->w * b->h - inter;
    return uni > 0 ? inter / uni : (inter > 0 ? 1 : 0);
}

typedef struct {
    int i, j;
    double iou;
} pair_t;

static int pair_cmp(const void *x, const void *y)
{
    const pair_t *a = x, *b = y;
    if (a->iou != b->iou) return a->iou < b->iou ? 1 : -1;
    if (a->i != b->i) return a->i - b->i;
    return a->j - b->j;
}

static void print_det(const char *who, const det *d)
{
    printf("    %s class %d (%s) score %.6f box x=%.3f y=%.3f w=%.3f h=%.3f\n", who, d->cls, d->label,
           d->score, d->x, d->y, d->w, d->h);
}

static int cmd_compare_detect(int argc, char **argv)
{
    if (argc < 4 || argc > 6) return 2;
    double boxtol = argc > 4 ? atof(argv[4]) : 1.0, scoretol = argc > 5 ? atof(argv[5]) : 1e-3;
    det_image *A, *B;
    int na = load_jsonl(argv[2], &A), nb = load_jsonl(argv[3], &B);
    int bad = 0;
    if (na != nb) {
        printf("image count differs: %d vs %d in the reference\n", na, nb);
        return 1;
    }
    long total = 0;
    double worst_box = 0, worst_score = 0;
    for (int k = 0; k < na; ++k) {
        det_image *a = &A[k], *b = &B[k];
        int img_bad = 0;
        if (strcmp(a->image, b->image)) {
            printf("%s: image %d is %s in the reference\n", a->image, k, b->image);
            ++bad;
            continue;
        }
        if (a->width != b->width || a->height != b->height) {
            printf("%s: size %dx%d vs %dx%d in the reference\n", a->image, a->width, a->height,
                   b->width, b->height);
            ++img_bad;
        }
        if (a->n != b->n) {
            printf("%s: %d detections vs %d in the reference\n", a->image, a->n, b->n);
            ++img_bad;
        }
        /* greedy best-IoU pairing within each class */
        pair_t *pairs = malloc(sizeof(pair_t) * ((size_t)a->n * b->n + 1));
        int np = 0;
        for (int i = 0; i < a->n; ++i)
            for (int j = 0; j < b->n; ++j)
                if (a->dets[i].cls == b->dets[j].cls)
                    pairs[np++] = (pair_t){i, j, iou(&a->dets[i], &b->dets[j])};
        qsort(pairs, np, sizeof(pair_t), pair_cmp);
        int *ma = malloc(sizeof(int) * (a->n + 1)), *mb = malloc(sizeof(int) * (b->n + 1));
        for (int i = 0; i < a->n; ++i) ma[i] = -1;
        for (int j = 0; j < b->n; ++j) mb[j] = -1;
        for (int p = 0; p < np; ++p) {
            if (ma[pairs[p].i] >= 0 || mb[pairs[p].j] >= 0) continue;
            ma[pairs[p].i] = pairs[p].j;
            mb[pairs[p].j] = pairs[p].i;
        }
        for (int j = 0; j < b->n; ++j) {
            det *db = &b->dets[j];
            if (mb[j] < 0) {
                printf("%s: reference detection %d has no partner\n", a->image, j);
                print_det("ref ", db);
                ++img_bad;
                continue;
            }
            det *da = &a->dets[mb[j]];
            double dbox = fmax(fmax(fabs(da->x - db->x), fabs(da->y - db->y)),
                               fmax(fabs(da->w - db->w), fabs(da->h - db->h)));
            double dscore = fabs(da->score - db->score);
            if (dbox > worst_box) worst_box = dbox;
            if (dscore > worst_score) worst_score = dscore;
            if (dbox > boxtol || dscore > scoretol || strcmp(da->label, db->label)) {
                printf("%s: detection differs (box %.3g px, score %.3g%s)\n", a->image, dbox, dscore,
                       strcmp(da->label, db->label) ? ", label" : "");
                print_det("test", da);
                print_det("ref ", db);
                ++img_bad;
            }
        }
        for (int i = 0; i < a->n; ++i)
            if (ma[i] < 0) {
                printf("%s: extra detection %d not in the reference\n", a->image, i);
                print_det("test", &a->dets[i]);
                ++img_bad;
            }
        total += b->n;
        free(pairs);
        free(ma);
        free(mb);
        if (img_bad) ++bad;
    }
    printf("DETECT images=%d detections=%ld worst_box=%.3g px worst_score=%.3g %s\n", na, total,
           worst_box, worst_score, bad ? "MISMATCH" : "ok");
    return bad ? 1 : 0;
}

/* ----------------------------------------------------------------- shapes */

/* Prints "index out_w out_h out_c outputs" for every layer darknet builds
 * from a cfg (no weights), for checking fogpipe's shape inference. */
static int cmd_shapes(int argc, char **argv)
{
    if (argc != 3) return 2;
    network *net = parse_network_cfg(argv[2]);
    if (!net) return 1;
    for (int i = 0; i < net->n; i++) {
        layer l = net->layers[i];
        printf("%d %d %d %d %d\n", i, l.out_w, l.out_h, l.out_c, l.outputs);
    }
    return 0;
}

/* ------------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: darknet_oracle forward CFG WEIGHTS IN.f32 OUTDIR\n"
            "       darknet_oracle detect CFG WEIGHTS NAMES THRESH NMS IMAGE...\n"
            "       darknet_oracle pickthresh CFG WEIGHTS NMS MIN MAX MAXTHRESH IMAGE...\n"
            "       darknet_oracle shapes CFG\n"
            "       darknet_oracle randinput N SEED OUT.f32\n"
            "       darknet_oracle randweights CFG SEED OUT.weights\n"
            "       darknet_oracle compare A.f32 REF.f32 TOL\n"
            "       darknet_oracle compare-layers ADIR REFDIR TOL\n"
            "       darknet_oracle compare-detect A.jsonl REF.jsonl [BOXTOL [SCORETOL]]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *m = argv[1];
    int rc;
    if (!strcmp(m, "forward")) rc = cmd_forward(argc, argv);
    else if (!strcmp(m, "detect")) rc = cmd_detect(argc, argv);
    else if (!strcmp(m, "pickthresh")) rc = cmd_pickthresh(argc, argv);
    else if (!strcmp(m, "shapes")) rc = cmd_shapes(argc, argv);
    else if (!strcmp(m, "randinput")) rc = cmd_randinput(argc, argv);
    else if (!strcmp(m, "randweights")) rc = cmd_randweights(argc, argv);
    else if (!strcmp(m, "compare")) rc = cmd_compare(argc, argv);
    else if (!strcmp(m, "compare-layers")) rc = cmd_compare_layers(argc, argv);
    else if (!strcmp(m, "compare-detect")) rc = cmd_compare_detect(argc, argv);
    else rc = 2;
    if (rc == 2) usage();
    return rc;
}
