/*
 * test_net.c — the network as a whole: arena planning (no live tensors
 * overlap, memory is reused, any split of the layer range computes the same
 * outputs, including across two networks as pipeline stages do), argument
 * and state errors, darknet .weights round trips and malformed files,
 * thread-count independence, and an allocation-failure sweep.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "engine/net_impl.h"
#include "fogpipe/net.h"
#include "test.h"
#include "capture.h"

/* ---- helpers ---------------------------------------------------------- */

/* A yolov3-tiny-like DAG at 32x32: maxpool 2/2 and 2/1, shortcut, two yolo
 * heads, route back to an earlier layer, upsample, and a two-way route. */
static const char dag_cfg[] =
    "[net]\nwidth=32\nheight=32\nchannels=3\n"
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n" /* 0 */
    "[maxpool]\nsize=2\nstride=2\n"                                                             /* 1: 16x16 */
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n" /* 2 */
    "[maxpool]\nsize=2\nstride=2\n"                                                             /* 3: 8x8 */
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n" /* 4 */
    "[maxpool]\nsize=2\nstride=1\n"                                                             /* 5: 8x8 */
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=1\nstride=1\npad=1\nactivation=leaky\n" /* 6 */
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n" /* 7 */
    "[shortcut]\nfrom=-2\nactivation=linear\n"                                                  /* 8 */
    "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=21\nactivation=linear\n"                 /* 9 */
    "[yolo]\nmask=3,4,5\nanchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319\nclasses=2\nnum=6\n" /* 10 */
    "[route]\nlayers=-3\n"                                                                      /* 11 */
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=1\nstride=1\npad=1\nactivation=leaky\n" /* 12 */
    "[upsample]\nstride=2\n"                                                                    /* 13: 16x16 */
    "[route]\nlayers=-1,2\n"                                                                    /* 14 */
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n" /* 15 */
    "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=21\nactivation=linear\n"                 /* 16 */
    "[yolo]\nmask=0,1,2\nanchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319\nclasses=2\nnum=6\n"; /* 17 */

enum { DAG_LAYERS = 18, DAG_HEAD1 = 10, DAG_HEAD2 = 17 };

/* Convolutions (with and without BN), connected layers (with and without
 * BN) and a few weightless ops: what the weights file format covers. */
static const char fc_cfg[] =
    "[net]\nwidth=6\nheight=5\nchannels=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n" /* 0: 4x5x6 */
    "[maxpool]\nsize=2\nstride=2\n"                                                             /* 1: 4x3x3 */
    "[convolutional]\nfilters=3\nsize=1\nstride=1\nactivation=linear\n"                         /* 2: 3x3x3 */
    "[connected]\noutput=40\nbatch_normalize=1\nactivation=leaky\n"                             /* 3: 27 -> 40 */
    "[dropout]\nprobability=.5\n"                                                               /* 4 */
    "[connected]\noutput=37\nactivation=linear\n"                                               /* 5: 40 -> 37 */
    "[softmax]\n";                                                                              /* 6 */

static float urand(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) * (1.0 / 8388608.0)) - 1.f;
}

static void fill_input(fp_net *net, uint32_t seed)
{
    float *in = fp_net_input(net);
    size_t n = fp_shape_count(fp_net_input_shape(net));
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) in[i] = (urand(&s) + 1.f) * .5f;
}

/* Parses, randomises (seed) and sets up; NULL and a failed check on error. */
static fp_net *make_net(const char *cfg, uint64_t seed)
{
    fp_net *net = NULL;
    fp_status st = fp_net_parse_cfg(cfg, "test.cfg", &net);
    CHECK_MSG(st == FP_OK, "parse: %s", fp_last_error());
    if (st) return NULL;
    if ((st = fp_net_init_weights_random(net, seed)) || (st = fp_net_setup(net))) {
        CHECK_MSG(0, "init/setup: %s", fp_last_error());
        fp_net_destroy(net);
        return NULL;
    }
    return net;
}

/* Parses and randomises (seed), not set up: its weights are still the
 * file's (setup folds batch-norm into them); NULL and a failed check on error. */
static fp_net *make_raw(const char *cfg, uint64_t seed)
{
    fp_net *net = NULL;
    fp_status st = fp_net_parse_cfg(cfg, "test.cfg", &net);
    if (!st) st = fp_net_init_weights_random(net, seed);
    CHECK_MSG(st == FP_OK, "parse/init: %s", fp_last_error());
    if (st) {
        fp_net_destroy(net);
        return NULL;
    }
    return net;
}

/* Writes the input for `seed` and runs every layer, capturing outputs. */
static int run_capture(fp_net *net, uint32_t seed, captured *cap)
{
    memset(cap, 0, sizeof *cap);
    fill_input(net, seed);
    fp_status st = fp_net_run(net, 0, fp_net_layer_count(net) - 1, capture_cb, cap);
    CHECK_MSG(st == FP_OK, "run: %s", fp_last_error());
    return st != FP_OK;
}

/* Number of layers whose captured outputs differ bit for bit. */
static int captured_diff(const captured *a, const captured *b, int *first_bad)
{
    int bad = 0;
    *first_bad = -1;
    for (int i = 0; i < a->n || i < b->n; i++) {
        if (a->count[i] != b->count[i] || !a->out[i] || !b->out[i] ||
            memcmp(a->out[i], b->out[i], a->count[i] * sizeof(float)) != 0) {
            if (!bad) *first_bad = i;
            bad++;
        }
    }
    return bad;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* A scratch file under /tmp (mkstemp); its path is copied to `path`. */
static int temp_path(char *path, size_t n)
{
    snprintf(path, n, "/tmp/fp_test_net_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    char *d = NULL;
    if (fpi_read_file(path, 1 << 26, &d, len) != FP_OK) return NULL;
    return (unsigned char *)d;
}

static int spit(const char *path, const void *a, size_t na, const void *b, size_t nb)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(a, 1, na, f) == na && (nb == 0 || fwrite(b, 1, nb, f) == nb);
    return fclose(f) == 0 && ok;
}

/* Lifetime of tensor j (-1: network input) as [first, last]. */
static void lifetime(const fp_net *net, int j, int *first, int *last)
{
    if (j >= 0) {
        *first = j;
        *last = net->layers[j].last_use;
        return;
    }
    *first = -1;
    *last = -1;
    for (int i = 0; i < net->n; i++)
        for (int k = 0; k < net->layers[i].n_src; k++)
            if (net->layers[i].src[k] < 0) *last = i;
}

/* Every tensor fits in the arena, lives at least until its last reader,
 * and no two tensors alive at the same time share bytes. */
static void check_arena_plan(const fp_net *net, const char *what)
{
    int n = net->n;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < net->layers[i].n_src; k++) {
            int s = net->layers[i].src[k];
            if (s >= 0) CHECK_MSG(net->layers[s].last_use >= i, "%s: layer %d read by %d after its last use %d", what, s, i, net->layers[s].last_use);
        }
    for (int a = -1; a < n; a++) {
        size_t oa = a < 0 ? net->input_off : net->layers[a].out_off;
        size_t sa = fp_shape_count(a < 0 ? net->input : net->layers[a].out) * sizeof(float);
        CHECK_MSG(oa + sa <= net->arena_bytes, "%s: tensor %d [%zu,+%zu) beyond the %zu-byte arena", what, a, oa, sa,
                  net->arena_bytes);
        CHECK_MSG(oa % 64 == 0, "%s: tensor %d at unaligned offset %zu", what, a, oa);
        int fa, la;
        lifetime(net, a, &fa, &la);
        for (int b = a + 1; b < n; b++) {
            int fb, lb;
            lifetime(net, b, &fb, &lb);
            if (la < fb || lb < fa) continue;
            size_t ob = net->layers[b].out_off;
            size_t sb = fp_shape_count(net->layers[b].out) * sizeof(float);
            CHECK_MSG(oa + sa <= ob || ob + sb <= oa,
                      "%s: tensors %d [%zu,+%zu) life %d..%d and %d [%zu,+%zu) life %d..%d overlap", what, a,
                      oa, sa, fa, la, b, ob, sb, fb, lb);
        }
    }
}

/* ---- arena planning and range execution ------------------------------- */

static void test_arena_plan(void)
{
    fp_net *net = make_net(dag_cfg, 11);
    if (!net) return;
    CHECK(fp_net_layer_count(net) == DAG_LAYERS);
    check_arena_plan(net, "dag");
    /* shapes of the two heads */
    fp_layer_info info;
    CHECK_OK(fp_net_layer_info(net, DAG_HEAD1, &info));
    CHECK(info.out.c == 21 && info.out.h == 8 && info.out.w == 8);
    CHECK_OK(fp_net_layer_info(net, DAG_HEAD2, &info));
    CHECK(info.out.c == 21 && info.out.h == 16 && info.out.w == 16);
    CHECK_OK(fp_net_layer_info(net, 14, &info));
    CHECK(info.n_inputs == 2 && info.inputs[0] == 13 && info.inputs[1] == 2 && info.out.c == 24);
    fp_net_destroy(net);

    /* a long chain reuses memory: far less than the sum of all outputs */
    char chain[4096];
    int k = snprintf(chain, sizeof chain, "[net]\nwidth=16\nheight=16\nchannels=8\n");
    for (int i = 0; i < 24; i++)
        k += snprintf(chain + k, sizeof chain - (size_t)k,
                      "[convolutional]\nfilters=8\nsize=1\nstride=1\nactivation=leaky\n");
    net = make_net(chain, 3);
    if (!net) return;
    size_t sum = 0;
    for (int i = 0; i < fp_net_layer_count(net); i++) {
        CHECK_OK(fp_net_layer_info(net, i, &info));
        sum += info.out_bytes;
    }
    size_t arena = fp_net_arena_bytes(net);
    CHECK_MSG(arena < sum, "arena %zu bytes, sum of outputs %zu", arena, sum);
    CHECK_MSG(arena <= 3 * 8 * 16 * 16 * sizeof(float), "a chain needs about two live tensors, got %zu bytes", arena);
    check_arena_plan(net, "chain");
    captured cap;
    if (!run_capture(net, 1, &cap)) {
        CHECK(all_finite(cap.out[23], cap.count[23]));
        CHECK(memcmp(fp_net_output(net, 23), cap.out[23], cap.count[23] * sizeof(float)) == 0);
    }
    captured_free(&cap);
    fp_net_destroy(net);
}

/* Running 0..k then k+1..n-1 gives what one run of 0..n-1 gives, for
 * every k; with the arena poisoned before each split run so that nothing
 * can come from the previous run's leftovers. */
static void test_range_split(void)
{
    fp_net *net = make_net(dag_cfg, 21);
    if (!net) return;
    int n = fp_net_layer_count(net);
    size_t c1 = fp_shape_count(net->layers[DAG_HEAD1].out), c2 = fp_shape_count(net->layers[DAG_HEAD2].out);
    float *ref1 = malloc(c1 * sizeof(float)), *ref2 = malloc(c2 * sizeof(float));
    fill_input(net, 5);
    CHECK_OK(fp_net_run(net, 0, n - 1, NULL, NULL));
    memcpy(ref1, fp_net_output(net, DAG_HEAD1), c1 * sizeof(float));
    memcpy(ref2, fp_net_output(net, DAG_HEAD2), c2 * sizeof(float));
    CHECK(all_finite(ref1, c1) && all_finite(ref2, c2));
    /* yolo heads: x, y, objectness and classes are probabilities */
    CHECK(ref1[0] > 0 && ref1[0] < 1);

    for (int k = 0; k < n - 1; k++) {
        memset(net->arena, 0xff, net->arena_bytes); /* NaN everywhere */
        fill_input(net, 5);
        CHECK_OK(fp_net_run(net, 0, k, NULL, NULL));
        CHECK_OK(fp_net_run(net, k + 1, n - 1, NULL, NULL));
        CHECK_MSG(memcmp(fp_net_output(net, DAG_HEAD1), ref1, c1 * sizeof(float)) == 0, "split after %d: head 1 differs", k);
        CHECK_MSG(memcmp(fp_net_output(net, DAG_HEAD2), ref2, c2 * sizeof(float)) == 0, "split after %d: head 2 differs", k);
    }
    /* three ranges too */
    memset(net->arena, 0xff, net->arena_bytes);
    fill_input(net, 5);
    CHECK_OK(fp_net_run(net, 0, 4, NULL, NULL));
    CHECK_OK(fp_net_run(net, 5, 12, NULL, NULL));
    CHECK_OK(fp_net_run(net, 13, n - 1, NULL, NULL));
    CHECK(memcmp(fp_net_output(net, DAG_HEAD1), ref1, c1 * sizeof(float)) == 0);
    CHECK(memcmp(fp_net_output(net, DAG_HEAD2), ref2, c2 * sizeof(float)) == 0);
    free(ref1);
    free(ref2);
    fp_net_destroy(net);
}

/* Two networks as two pipeline stages: A runs 0..k, the tensors B needs
 * from A are injected with fp_net_output_mut, B runs k+1..n-1 on a
 * poisoned arena. */
static void test_pipeline_stages(void)
{
    fp_net *a = make_net(dag_cfg, 31), *b = make_net(dag_cfg, 31);
    if (!a || !b) {
        fp_net_destroy(a);
        fp_net_destroy(b);
        return;
    }
    int n = fp_net_layer_count(a);
    captured ref;
    if (run_capture(a, 7, &ref)) {
        captured_free(&ref);
        fp_net_destroy(a);
        fp_net_destroy(b);
        return;
    }
    for (int k = 0; k < n - 1; k++) {
        memset(a->arena, 0xff, a->arena_bytes);
        memset(b->arena, 0xff, b->arena_bytes);
        fill_input(a, 7);
        CHECK_OK(fp_net_run(a, 0, k, NULL, NULL));
        int injected = 0;
        for (int s = 0; s <= k; s++) {
            int needed = 0;
            for (int j = k + 1; j < n; j++)
                for (int q = 0; q < b->layers[j].n_src; q++)
                    if (b->layers[j].src[q] == s) needed = 1;
            if (!needed) continue;
            fp_layer_info info;
            CHECK_OK(fp_net_layer_info(a, s, &info));
            float *dst = fp_net_output_mut(b, s);
            CHECK(dst != NULL);
            if (dst) memcpy(dst, fp_net_output(a, s), info.out_bytes);
            injected++;
        }
        CHECK(injected >= 1);
        CHECK_OK(fp_net_run(b, k + 1, n - 1, NULL, NULL));
        const fp_net *h1 = k >= DAG_HEAD1 ? a : b;
        CHECK_MSG(memcmp(fp_net_output(h1, DAG_HEAD1), ref.out[DAG_HEAD1], ref.count[DAG_HEAD1] * sizeof(float)) == 0,
                  "cut after %d (%d tensors injected): head 1 differs", k, injected);
        CHECK_MSG(memcmp(fp_net_output(b, DAG_HEAD2), ref.out[DAG_HEAD2], ref.count[DAG_HEAD2] * sizeof(float)) == 0,
                  "cut after %d (%d tensors injected): head 2 differs", k, injected);
    }
    captured_free(&ref);
    fp_net_destroy(a);
    fp_net_destroy(b);
}

/* The whole network stage weights blobs are cut from (make_stage mode 3). */
static fp_net *blob_source;

/* A stage network (fp_net_set_range) of dag_cfg for layers first..last,
 * weights from seed 31 (mode 0: random before setting the range, so they
 * are trimmed; 1: range first, then random; 2: from the weights file; 3:
 * a stage weights blob of blob_source). */
static fp_net *make_stage(int first, int last, int mode, const char *weights)
{
    fp_net *net = NULL;
    if (fp_net_parse_cfg(dag_cfg, "dag.cfg", &net)) return NULL;
    fp_status st = mode == 0 ? fp_net_init_weights_random(net, 31) : FP_OK;
    if (!st) st = fp_net_set_range(net, first, last);
    if (!st && mode == 1) st = fp_net_init_weights_random(net, 31);
    if (!st && mode == 2) st = fp_net_load_weights(net, weights);
    if (!st && mode == 3) {
        void *blob = NULL;
        size_t len = 0;
        st = fp_net_stage_weights(blob_source, first, last, &blob, &len);
        CHECK(st || len == fp_net_stage_weights_size(blob_source, first, last));
        if (!st) st = fp_net_load_stage_weights(net, blob, len, "blob");
        free(blob);
    }
    if (!st) st = fp_net_setup(net);
    CHECK_MSG(st == FP_OK, "stage %d..%d mode %d: %s", first, last, mode, fp_last_error());
    if (st) {
        fp_net_destroy(net);
        return NULL;
    }
    return net;
}

/* Three restricted networks, one per stage, passing exactly the tensors of
 * fp_net_cut() from one to the next, give the whole network's heads bit for
 * bit, hold only their layers' weights, and hold no other tensors. */
static void test_restricted_stages(void)
{
    char path[64];
    if (!temp_path(path, sizeof path)) return;
    fp_net *full = make_net(dag_cfg, 31), *raw = make_raw(dag_cfg, 31);
    if (!full || !raw) {
        fp_net_destroy(full);
        fp_net_destroy(raw);
        return;
    }
    /* weights are cut and saved before setup, which folds them */
    CHECK_OK(fp_net_save_weights(raw, path));
    void *folded = NULL;
    size_t folded_len = 0;
    CHECK_ERR(fp_net_stage_weights(full, 0, 3, &folded, &folded_len), FP_ESTATE);
    CHECK_ERR(fp_net_save_weights(full, path), FP_ESTATE);
    CHECK(folded == NULL);
    int n = fp_net_layer_count(full);
    captured ref;
    blob_source = raw;
    if (run_capture(full, 9, &ref)) goto done;
    int cases = 0;
    for (int c1 = 0; c1 < n - 2; c1++)
        for (int c2 = c1 + 1; c2 < n - 1; c2++, cases++) {
            int mode = cases % 4, bounds[4] = {-1, c1, c2, n - 1};
            fp_net *st[3] = {0};
            size_t weights = 0;
            for (int k = 0; k < 3; k++) st[k] = make_stage(bounds[k] + 1, bounds[k + 1], mode, path);
            if (!st[0] || !st[1] || !st[2]) goto next;
            fill_input(st[0], 9);
            for (int k = 0; k < 3; k++) {
                weights += fp_net_weight_bytes(st[k]);
                if (k > 0) {
                    int cut[64], m = fp_net_cut(full, bounds[k], cut, 64);
                    CHECK(m >= 1 && m <= 64);
                    for (int q = 0; q < m; q++) {
                        const float *src = fp_net_output(st[k - 1], cut[q]);
                        float *dst = fp_net_output_mut(st[k], cut[q]);
                        CHECK_MSG(src && dst, "cut after %d: tensor %d missing", bounds[k], cut[q]);
                        if (src && dst) memcpy(dst, src, ref.count[cut[q]] * sizeof(float));
                    }
                    /* only the range's outputs and the incoming cut exist */
                    for (int j = 0; j < n; j++) {
                        int held = j > bounds[k] && j <= bounds[k + 1];
                        for (int q = 0; q < m; q++) held |= cut[q] == j;
                        CHECK_MSG((fp_net_output(st[k], j) != NULL) == held, "stage %d, layer %d", k, j);
                    }
                    CHECK(fp_net_input(st[k]) == NULL);
                }
                CHECK_OK(fp_net_run(st[k], bounds[k] + 1, bounds[k + 1], NULL, NULL));
            }
            CHECK(fp_net_run(st[1], 0, bounds[2], NULL, NULL) == FP_EINVAL);
            CHECK(weights == fp_net_weight_bytes(full));
            CHECK(fp_net_save_weights(st[1], path) == FP_ESTATE);
            for (int h = 0; h < 2; h++) {
                int layer = h ? DAG_HEAD2 : DAG_HEAD1;
                const float *o = fp_net_output(st[2], layer);
                CHECK_MSG(o && memcmp(o, ref.out[layer], ref.count[layer] * sizeof(float)) == 0,
                          "cuts %d,%d mode %d: head %d differs", c1, c2, mode, layer);
            }
        next:
            for (int k = 0; k < 3; k++) fp_net_destroy(st[k]);
        }
    CHECK(cases > 100);
done:
    captured_free(&ref);
    fp_net_destroy(full);
    fp_net_destroy(raw);
    remove(path);
}

/* Stage weights blobs are untrusted: every way of being wrong is refused
 * with its own status, and nothing is loaded. */
static void test_stage_weights_bad(void)
{
    fp_net *full = make_raw(dag_cfg, 31);
    if (!full) return;
    void *blob = NULL;
    size_t len = 0;
    CHECK_OK(fp_net_stage_weights(full, 3, 9, &blob, &len));
    CHECK(len > 32 && len == fp_net_stage_weights_size(full, 3, 9));
    CHECK(fp_net_stage_weights_size(full, 9, 3) == 0);
    CHECK_ERR(fp_net_stage_weights(full, 9, 3, &blob, &len), FP_EINVAL);
    unsigned char *b = blob, *c = malloc(len + 8);
    struct { const char *what; size_t at, cut; unsigned char byte; fp_status want; } cases[] = {
        {"magic", 0, 0, 'X', FP_ECORRUPT},       {"version", 8, 0, 9, FP_EUNSUPPORTED},
        {"first layer", 12, 0, 4, FP_ECORRUPT},   {"last layer", 16, 0, 8, FP_ECORRUPT},
        {"layer count", 20, 0, 99, FP_ECORRUPT},  {"parameter count", 24, 0, 1, FP_ECORRUPT},
        {"truncated", 0, 4, 0, FP_ECORRUPT},      {"header only", 0, len - 20, 0, FP_ECORRUPT},
        {"NaN", len - 1, 0, 0xff, FP_ECORRUPT},
    };
    for (size_t i = 0; c && i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(c, b, len);
        if (!cases[i].cut) c[cases[i].at] = cases[i].byte;
        if (cases[i].byte == 0xff) c[len - 2] = 0xff; /* the last float becomes a NaN */
        fp_net *net = NULL;
        CHECK_OK(fp_net_parse_cfg(dag_cfg, "dag.cfg", &net));
        if (!net) break;
        CHECK_OK(fp_net_set_range(net, 3, 9));
        fp_status st = fp_net_load_stage_weights(net, c, len - cases[i].cut, "bad");
        CHECK_MSG(st == cases[i].want, "%s: got %s, expected %s (%s)", cases[i].what, fp_status_name(st),
                  fp_status_name(cases[i].want), fp_last_error());
        CHECK_MSG(fp_net_setup(net) == FP_ESTATE, "%s: weights were loaded", cases[i].what);
        fp_net_destroy(net);
    }
    /* a longer blob, another range, the right blob */
    fp_net *net = NULL;
    CHECK_OK(fp_net_parse_cfg(dag_cfg, "dag.cfg", &net));
    if (net && c) {
        memcpy(c, b, len);
        memset(c + len, 0, 8);
        CHECK_OK(fp_net_set_range(net, 3, 9));
        CHECK_ERR(fp_net_load_stage_weights(net, c, len + 8, "long"), FP_ECORRUPT);
        CHECK_OK(fp_net_load_stage_weights(net, b, len, "good"));
        CHECK_OK(fp_net_setup(net));
        CHECK_ERR(fp_net_load_stage_weights(net, b, len, "again"), FP_ESTATE);
    }
    fp_net_destroy(net);
    net = NULL;
    CHECK_OK(fp_net_parse_cfg(dag_cfg, "dag.cfg", &net));
    if (net) {
        CHECK_OK(fp_net_set_range(net, 2, 9));
        CHECK_ERR(fp_net_load_stage_weights(net, b, len, "other range"), FP_ECORRUPT);
    }
    fp_net_destroy(net);
    free(c);
    free(blob);
    fp_net_destroy(full);
}

/* fp_net_cut: the chain, the route that reaches back, the unread head. */
static void test_cut(void)
{
    fp_net *net = NULL;
    CHECK_OK(fp_net_parse_cfg(dag_cfg, "dag.cfg", &net));
    if (!net) return;
    int t[8];
    CHECK(fp_net_cut(net, -1, t, 8) == 1 && t[0] == -1);
    CHECK(fp_net_cut(net, 0, t, 8) == 1 && t[0] == 0);
    /* after 9: layer 8 (read by route 11), 9 (read by the head 10) and layer 2 (read by route 14) */
    CHECK(fp_net_cut(net, 9, t, 8) == 3 && t[0] == 2 && t[1] == 8 && t[2] == 9);
    /* after 10: the head is read by nobody and travels on */
    CHECK(fp_net_cut(net, 10, t, 8) == 3 && t[0] == 2 && t[1] == 8 && t[2] == 10);
    CHECK(fp_net_cut(net, DAG_LAYERS - 1, t, 8) == 2 && t[0] == DAG_HEAD1 && t[1] == DAG_HEAD2);
    CHECK(fp_net_cut(net, 9, t, 1) == 3 && t[0] == 2);
    CHECK(fp_net_cut(net, -2, t, 8) == -1 && fp_net_cut(net, DAG_LAYERS, t, 8) == -1);
    CHECK(fp_net_set_range(net, 5, 4) == FP_EINVAL && fp_net_set_range(net, 0, DAG_LAYERS) == FP_EINVAL);
    CHECK_OK(fp_net_set_range(net, 3, 9));
    CHECK(fp_net_set_range(net, 3, 10) == FP_ESTATE);
    CHECK_OK(fp_net_set_range(net, 3, 9));
    fp_net_destroy(net);
}

/* ---- argument and state errors ---------------------------------------- */

static int stop_at;
static int stop_cb(void *user, int layer, const float *out, fp_shape shape)
{
    int *calls = user;
    (*calls)++;
    return layer == stop_at;
}

static void test_run_errors(void)
{
    fp_net *net = NULL;
    CHECK_OK(fp_net_parse_cfg(fc_cfg, "fc.cfg", &net));
    if (!net) return;
    int n = fp_net_layer_count(net);
    CHECK(n == 7);
    /* before weights and setup */
    CHECK_ERR(fp_net_setup(net), FP_ESTATE);
    CHECK_ERR(fp_net_run(net, 0, n - 1, NULL, NULL), FP_ESTATE);
    CHECK(fp_net_input(net) == NULL);
    CHECK(fp_net_output(net, 0) == NULL);
    CHECK(fp_net_output_mut(net, 0) == NULL);
    CHECK_OK(fp_net_init_weights_random(net, 1));
    CHECK_ERR(fp_net_run(net, 0, n - 1, NULL, NULL), FP_ESTATE);
    CHECK_OK(fp_net_setup(net));
    unsigned char *arena = net->arena;
    CHECK_OK(fp_net_setup(net)); /* idempotent */
    CHECK(net->arena == arena);
    /* after setup the weights are fixed */
    CHECK_ERR(fp_net_init_weights_random(net, 2), FP_ESTATE);
    CHECK_ERR(fp_net_load_weights(net, "/nonexistent/x.weights"), FP_ESTATE);
    /* ranges */
    CHECK_ERR(fp_net_run(net, -1, 0, NULL, NULL), FP_EINVAL);
    CHECK_ERR(fp_net_run(net, 0, n, NULL, NULL), FP_EINVAL);
    CHECK_ERR(fp_net_run(net, 3, 2, NULL, NULL), FP_EINVAL);
    CHECK_ERR(fp_net_run(net, n, n, NULL, NULL), FP_EINVAL);
    CHECK_ERR(fp_net_run(net, -5, -1, NULL, NULL), FP_EINVAL);
    CHECK_ERR(fp_net_run(NULL, 0, 0, NULL, NULL), FP_EINVAL);
    fill_input(net, 1);
    CHECK_OK(fp_net_run(net, 0, 0, NULL, NULL));
    CHECK_OK(fp_net_run(net, n - 1, n - 1, NULL, NULL));
    CHECK_OK(fp_net_run(net, 0, n - 1, NULL, NULL));
    /* accessors */
    fp_layer_info info;
    CHECK_ERR(fp_net_layer_info(net, -1, &info), FP_EINVAL);
    CHECK_ERR(fp_net_layer_info(net, n, &info), FP_EINVAL);
    CHECK_ERR(fp_net_layer_info(NULL, 0, &info), FP_EINVAL);
    CHECK(fp_net_output(net, -1) == NULL && fp_net_output(net, n) == NULL);
    CHECK(fp_net_output_mut(net, n) == NULL);
    CHECK(fp_net_output(net, n - 1) != NULL && fp_net_input(net) != NULL);
    CHECK(fp_net_layer_count(NULL) == 0);
    CHECK_ERR(fp_net_set_threads(net, 0), FP_EINVAL);
    CHECK_ERR(fp_net_set_threads(net, 257), FP_EINVAL);
    CHECK_ERR(fp_net_set_threads(NULL, 2), FP_EINVAL);
    CHECK_ERR(fp_net_setup(NULL), FP_EINVAL);
    CHECK(fp_net_weight_bytes(net) >= net->n_params * sizeof(float));
    /* a callback stops the run */
    int calls = 0;
    stop_at = 2;
    CHECK_ERR(fp_net_run(net, 0, n - 1, stop_cb, &calls), FP_ESTATE);
    CHECK(calls == 3);
    calls = 0;
    stop_at = -1;
    CHECK_OK(fp_net_run(net, 1, n - 1, stop_cb, &calls));
    CHECK(calls == n - 1);
    fp_net_destroy(net);
    fp_net_destroy(NULL);
}

/* ---- weights files ---------------------------------------------------- */

/* Loads `path` into a fresh fc_cfg network; returns the status. On FP_OK
 * *out holds the (not yet set up) network. */
static char load_error[512]; /* fp_last_error() of the last failed load_fresh */

static fp_status load_fresh(const char *path, fp_net **out)
{
    fp_net *net = NULL;
    *out = NULL;
    fp_status st = fp_net_parse_cfg(fc_cfg, "fc.cfg", &net);
    if (st) return st;
    st = fp_net_load_weights(net, path);
    if (st) {
        snprintf(load_error, sizeof load_error, "%s", fp_last_error());
        /* a failed load leaves no weights behind */
        CHECK_MSG(fp_net_setup(net) == FP_ESTATE, "setup after a failed load must fail (%s)", path);
        fp_net_destroy(net);
        return st;
    }
    *out = net;
    return FP_OK;
}

/* Sets up `net`, runs it and compares every layer bit for bit with `ref`. */
static void check_same_outputs(fp_net *net, const captured *ref, const char *what)
{
    captured cap;
    CHECK_OK(fp_net_setup(net));
    if (!run_capture(net, 9, &cap)) {
        int first;
        int bad = captured_diff(&cap, ref, &first);
        CHECK_MSG(bad == 0, "%s: %d layers differ, first %d", what, bad, first);
    }
    captured_free(&cap);
}

static void test_weights_roundtrip(void)
{
    char path[64], bad[64];
    if (!temp_path(path, sizeof path) || !temp_path(bad, sizeof bad)) {
        CHECK_MSG(0, "cannot create temp files");
        return;
    }
    fp_net *ref = NULL;
    CHECK_OK(fp_net_parse_cfg(fc_cfg, "fc.cfg", &ref));
    if (!ref) return;
    CHECK_OK(fp_net_init_weights_random(ref, 77));
    CHECK_OK(fp_net_save_weights(ref, path));
    size_t np = ref->n_params;
    float *raw = malloc(np * sizeof(float));
    memcpy(raw, ref->params, np * sizeof(float));
    CHECK_OK(fp_net_setup(ref));
    captured want;
    size_t len = 0;
    unsigned char *file = NULL;
    if (run_capture(ref, 9, &want)) goto out;
    CHECK(all_finite(want.out[6], want.count[6]));

    /* the saved file: version 0.2.0, 64-bit seen, then the raw parameters */
    file = slurp(path, &len);
    CHECK(file != NULL && len == 20 + np * 4);
    if (!file || len != 20 + np * 4) goto out;
    int32_t hdr[3];
    memcpy(hdr, file, 12);
    CHECK(hdr[0] == 0 && hdr[1] == 2 && hdr[2] == 0);
    CHECK(memcmp(file + 20, raw, np * 4) == 0);

    /* round trip */
    fp_net *net = NULL;
    CHECK_OK(load_fresh(path, &net));
    if (net) {
        CHECK(memcmp(net->params, raw, np * 4) == 0);
        check_same_outputs(net, &want, "round trip");
        fp_net_destroy(net);
    }

    /* one byte short, one float too many, a header only, nothing */
    CHECK(spit(bad, file, len - 1, NULL, 0));
    CHECK_ERR(load_fresh(bad, &net), FP_ECORRUPT);
    float extra = 1.f;
    CHECK(spit(bad, file, len, &extra, 4));
    CHECK_ERR(load_fresh(bad, &net), FP_ECORRUPT);
    CHECK(spit(bad, file, 20, NULL, 0));
    CHECK_ERR(load_fresh(bad, &net), FP_ECORRUPT);
    CHECK(spit(bad, file, 0, NULL, 0));
    CHECK_ERR(load_fresh(bad, &net), FP_ECORRUPT);
    CHECK(spit(bad, file, 7, NULL, 0));
    CHECK_ERR(load_fresh(bad, &net), FP_ECORRUPT);
    CHECK_ERR(load_fresh("/nonexistent/dir/x.weights", &net), FP_EIO);

    /* a negative version */
    int32_t neg[3] = {-1, 2, 0};
    unsigned char *copy = malloc(len);
    memcpy(copy, file, len);
    memcpy(copy, neg, 12);
    CHECK(spit(bad, copy, len, NULL, 0));
    CHECK_ERR(load_fresh(bad, &net), FP_ECORRUPT);

    /* version 0.1.0: a 32-bit seen; same parameters */
    int32_t v01[4] = {0, 1, 0, 12345};
    CHECK(spit(bad, v01, 16, file + 20, np * 4));
    CHECK_OK(load_fresh(bad, &net));
    if (net) {
        check_same_outputs(net, &want, "version 0.1");
        fp_net_destroy(net);
    }
    /* 0.2 with a 32-bit seen is four bytes short */
    int32_t v02short[4] = {0, 2, 0, 0};
    CHECK(spit(bad, v02short, 16, file + 20, np * 4));
    CHECK_ERR(load_fresh(bad, &net), FP_ECORRUPT);
    /* 1.0 takes the 64-bit seen */
    int32_t v10[5] = {1, 0, 0, 0, 0};
    CHECK(spit(bad, v10, 20, file + 20, np * 4));
    CHECK_OK(load_fresh(bad, &net));
    if (net) {
        check_same_outputs(net, &want, "version 1.0");
        fp_net_destroy(net);
    }

    /* non-finite parameters: in the first conv layer, in connected weights,
     * and the very last float of the file */
    const struct { size_t at; uint32_t bits; } poison[] = {
        {5, 0x7fc00000u},                                  /* NaN */
        {ref->layers[3].param_off + 100, 0x7f800000u},     /* +Inf */
        {ref->layers[3].param_off, 0xff800000u},           /* -Inf */
        {np - 1, 0xffc00000u},                             /* -NaN */
    };
    for (size_t t = 0; t < sizeof poison / sizeof poison[0]; t++) {
        size_t at = poison[t].at;
        memcpy(copy, file, len);
        memcpy(copy + 20 + at * 4, &poison[t].bits, 4);
        CHECK(spit(bad, copy, len, NULL, 0));
        CHECK_ERR(load_fresh(bad, &net), FP_ECORRUPT);
        CHECK_MSG(strstr(load_error, "not finite") != NULL, "NaN message: %s", load_error);
    }
    /* a network that failed on a NaN loads a good file afterwards */
    net = NULL;
    CHECK_OK(fp_net_parse_cfg(fc_cfg, "fc.cfg", &net));
    if (net) {
        CHECK_ERR(fp_net_load_weights(net, bad), FP_ECORRUPT);
        CHECK_OK(fp_net_load_weights(net, path));
        check_same_outputs(net, &want, "reload after a NaN");
        fp_net_destroy(net);
    }

    /* transposed connected weights (major or minor > 1000, 32-bit seen):
     * the file holds each connected weight matrix as inputs×outputs */
    static const int32_t thdr[2][4] = {{1001, 0, 0, 0}, {0, 1001, 0, 0}};
    for (int v = 0; v < 2; v++) {
        float *tp = malloc(np * sizeof(float));
        memcpy(tp, raw, np * sizeof(float));
        for (int i = 0; i < ref->n; i++) {
            const fpi_layer *l = &ref->layers[i];
            if (l->op != FP_OP_CONNECTED) continue;
            size_t O = (size_t)l->out.c, I = fp_shape_count(l->in);
            const float *w = raw + l->param_off + O;
            float *t = tp + l->param_off + O;
            for (size_t o = 0; o < O; o++)
                for (size_t in = 0; in < I; in++) t[in * O + o] = w[o * I + in];
        }
        CHECK(memcmp(tp, raw, np * 4) != 0);
        CHECK(spit(bad, thdr[v], 16, tp, np * 4));
        CHECK_OK(load_fresh(bad, &net));
        if (net) {
            CHECK_MSG(memcmp(net->params, raw, np * 4) == 0, "transposed header %d.%d: parameters differ", thdr[v][0],
                      thdr[v][1]);
            check_same_outputs(net, &want, "transposed");
            fp_net_destroy(net);
        }
        /* the same bytes without the flag give a different network */
        int32_t plain[4] = {0, 1, 0, 0};
        CHECK(spit(bad, plain, 16, tp, np * 4));
        CHECK_OK(load_fresh(bad, &net));
        if (net) {
            CHECK(memcmp(net->params, raw, np * 4) != 0);
            fp_net_destroy(net);
        }
        free(tp);
    }
    free(copy);
out:
    captured_free(&want);
    free(file);
    free(raw);
    fp_net_destroy(ref);
    remove(path);
    remove(bad);
}

/* Round trip for the DAG too (conv-only, many BN layers). */
static void test_weights_roundtrip_dag(void)
{
    char path[64];
    if (!temp_path(path, sizeof path)) return;
    fp_net *a = make_raw(dag_cfg, 5), *b = NULL;
    if (!a) return;
    CHECK_OK(fp_net_save_weights(a, path));
    CHECK_OK(fp_net_setup(a));
    CHECK_OK(fp_net_parse_cfg(dag_cfg, "dag.cfg", &b));
    if (b) {
        CHECK_OK(fp_net_load_weights(b, path));
        CHECK_OK(fp_net_setup(b));
        captured ca, cb;
        if (!run_capture(a, 3, &ca) && !run_capture(b, 3, &cb)) {
            int first;
            CHECK_MSG(captured_diff(&ca, &cb, &first) == 0, "layer %d differs", first);
        }
        captured_free(&ca);
        captured_free(&cb);
        /* a weights file for another cfg is refused */
        fp_net *c = NULL;
        CHECK_OK(fp_net_parse_cfg(fc_cfg, "fc.cfg", &c));
        if (c) CHECK_ERR(fp_net_load_weights(c, path), FP_ECORRUPT);
        fp_net_destroy(c);
    }
    fp_net_destroy(a);
    fp_net_destroy(b);
    remove(path);
}

/* A load that fails part-way must not leave a half-loaded network that
 * fp_net_setup accepts: a network that had weights either keeps exactly
 * its old parameters or has none (setup then fails with FP_ESTATE). */
static void test_weights_failed_load(void)
{
    char path[64];
    if (!temp_path(path, sizeof path)) return;
    fp_net *src = NULL;
    CHECK_OK(fp_net_parse_cfg(fc_cfg, "fc.cfg", &src));
    if (!src) return;
    CHECK_OK(fp_net_init_weights_random(src, 1));
    size_t np = src->n_params;
    float *old = malloc(np * sizeof(float));
    /* a NaN in the last layer's parameters, after every other layer's */
    static const uint32_t nan_bits = 0x7fc00000u;
    memcpy(&src->params[np - 1], &nan_bits, 4);
    CHECK_OK(fp_net_save_weights(src, path));
    for (int variant = 0; variant < 2; variant++) {
        fp_net *net = NULL;
        CHECK_OK(fp_net_parse_cfg(fc_cfg, "fc.cfg", &net));
        if (!net) break;
        CHECK_OK(fp_net_init_weights_random(net, 2));
        memcpy(old, net->params, np * sizeof(float));
        if (variant == 1) {
            /* the same through a transposed header (layers are transposed as read) */
            unsigned char *f;
            size_t len;
            if ((f = slurp(path, &len)) != NULL) {
                int32_t h[4] = {0, 1001, 0, 0};
                CHECK(spit(path, h, 16, f + 20, len - 20));
                free(f);
            }
        }
        CHECK_ERR(fp_net_load_weights(net, path), FP_ECORRUPT);
        fp_status st = fp_net_setup(net);
        CHECK_MSG(st == FP_ESTATE || (st == FP_OK && memcmp(net->params, old, np * sizeof(float)) == 0),
                  "variant %d: after a failed load, setup returned %s with %s parameters", variant,
                  fp_status_name(st), memcmp(net->params, old, np * sizeof(float)) ? "changed" : "the old");
        if (st == FP_OK) {
            fill_input(net, 1);
            CHECK_OK(fp_net_run(net, 0, fp_net_layer_count(net) - 1, NULL, NULL));
            const float *out = fp_net_output(net, fp_net_layer_count(net) - 1);
            CHECK(all_finite(out, 37));
        }
        fp_net_destroy(net);
    }
    free(old);
    fp_net_destroy(src);
    remove(path);
}

/* ---- threads ---------------------------------------------------------- */

static void test_threads(void)
{
    const char *cfgs[] = {dag_cfg, fc_cfg};
    for (int c = 0; c < 2; c++) {
        fp_net *one = make_net(cfgs[c], 123), *many = make_net(cfgs[c], 123);
        if (!one || !many) {
            fp_net_destroy(one);
            fp_net_destroy(many);
            continue;
        }
        captured r1, r2;
        if (!run_capture(one, 4, &r1)) {
            for (int t = 2; t <= 4; t++) {
                CHECK_OK(fp_net_set_threads(many, t));
                for (int rep = 0; rep < 2; rep++) {
                    if (run_capture(many, 4, &r2)) {
                        captured_free(&r2);
                        break;
                    }
                    int first;
                    int bad = captured_diff(&r1, &r2, &first);
                    CHECK_MSG(bad == 0, "cfg %d, %d threads, run %d: %d layers differ, first %d", c, t, rep, bad, first);
                    captured_free(&r2);
                }
            }
            CHECK_OK(fp_net_set_threads(many, 1));
            if (!run_capture(many, 4, &r2)) {
                int first;
                CHECK(captured_diff(&r1, &r2, &first) == 0);
            }
            captured_free(&r2);
        }
        captured_free(&r1);
        fp_net_destroy(one);
        fp_net_destroy(many);
    }
}

/* ---- allocation failures ---------------------------------------------- */

static void test_alloc_failures(void)
{
    int ok_at = -1, failures = 0;
    for (long i = 0; i < 1000; i++) {
        fp_net *net = NULL;
        fpi_alloc_fail_after(i);
        fp_status st = fp_net_parse_cfg(dag_cfg, "dag.cfg", &net);
        if (st == FP_OK) st = fp_net_init_weights_random(net, 1);
        if (st == FP_OK) st = fp_net_set_threads(net, 2);
        if (st == FP_OK) st = fp_net_setup(net);
        fpi_alloc_fail_after(-1);
        if (st != FP_OK) {
            CHECK_MSG(st == FP_ENOMEM, "failing allocation %ld: %s (%s)", i, fp_status_name(st), fp_last_error());
            failures++;
            fp_net_destroy(net);
            continue;
        }
        fill_input(net, 1);
        CHECK_OK(fp_net_run(net, 0, fp_net_layer_count(net) - 1, NULL, NULL));
        fp_net_destroy(net);
        ok_at = (int)i;
        break;
    }
    CHECK_MSG(ok_at > 0, "never succeeded (ok_at %d)", ok_at);
    CHECK_MSG(failures >= 6, "only %d allocation points", failures);

    /* loading a transposed weights file (a scratch allocation) */
    char path[64];
    if (!temp_path(path, sizeof path)) return;
    fp_net *src = make_net(fc_cfg, 2);
    if (!src) return;
    {
        int32_t h[4] = {1001, 0, 0, 0};
        CHECK(spit(path, h, 16, src->params, src->n_params * 4));
    }
    ok_at = -1;
    for (long i = 0; i < 100; i++) {
        fp_net *net = NULL;
        CHECK_OK(fp_net_parse_cfg(fc_cfg, "fc.cfg", &net));
        if (!net) break;
        fpi_alloc_fail_after(i);
        fp_status st = fp_net_load_weights(net, path);
        if (st == FP_OK) st = fp_net_setup(net);
        fpi_alloc_fail_after(-1);
        fp_net_destroy(net);
        if (st != FP_OK) {
            CHECK_MSG(st == FP_ENOMEM, "load, failing allocation %ld: %s (%s)", i, fp_status_name(st), fp_last_error());
            continue;
        }
        ok_at = (int)i;
        break;
    }
    CHECK_MSG(ok_at >= 3, "load sweep succeeded at %d", ok_at);
    fp_net_destroy(src);
    remove(path);
}

TEST_LIST = {
    {"arena_plan", test_arena_plan},
    {"range_split", test_range_split},
    {"pipeline_stages", test_pipeline_stages},
    {"restricted_stages", test_restricted_stages},
    {"stage_weights_bad", test_stage_weights_bad},
    {"cut", test_cut},
    {"run_errors", test_run_errors},
    {"weights_roundtrip", test_weights_roundtrip},
    {"weights_roundtrip_dag", test_weights_roundtrip_dag},
    {"weights_failed_load", test_weights_failed_load},
    {"threads", test_threads},
    {"alloc_failures", test_alloc_failures},
    {NULL, NULL},
};
