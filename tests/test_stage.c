/* test_stage.c — a real stage worker (fpp_stage_serve) run in a thread of
 * this process on a tiny DAG model, fed over real ZeroMQ sockets and
 * watched through its own HTTP endpoints: exact results against the whole
 * model, every kind of malformed frame counted once and survived, the
 * ZeroMQ message size limit, duplicate frame ids answered from the cache,
 * and the drain on stop (with the next hop up, and with it gone). */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/common.h" /* fpi_now */
#include "fogpipe/detect.h"
#include "free_port.h"
#include "fogpipe/fmap.h"
#include "fogpipe/frame.h"
#include "fogpipe/net.h"
#include "fogpipe/partition.h"
#include "pipeline/curve.h"
#include "pipeline/pipeline.h"
#include "test.h"

/* ---- the model, its plan and the reference results ------------------- */

/* A yolov3-tiny-like DAG at 32x32, cut after the first head (layer 6): the
 * cut carries three tensors, layer 2 (read by the route at 9), layer 4 (read
 * by the route at 7) and the head itself (read by nobody, it travels on to
 * the last stage's box decoding). */
static const char stage_cfg[] =
    "[net]\nwidth=32\nheight=32\nchannels=3\n"
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n" /* 0: 32x32 */
    "[maxpool]\nsize=2\nstride=2\n"                                                             /* 1: 16x16 */
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n" /* 2 */
    "[maxpool]\nsize=2\nstride=2\n"                                                             /* 3: 8x8 */
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n" /* 4 */
    "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=21\nactivation=linear\n"                 /* 5 */
    "[yolo]\nmask=3,4,5\nanchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319\nclasses=2\nnum=6\n" /* 6 */
    "[route]\nlayers=-3\n"                                                                      /* 7: 4 */
    "[upsample]\nstride=2\n"                                                                    /* 8: 16x16 */
    "[route]\nlayers=-1,2\n"                                                                    /* 9 */
    "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=21\nactivation=linear\n"                 /* 10 */
    "[yolo]\nmask=0,1,2\nanchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319\nclasses=2\nnum=6\n"; /* 11 */

enum { N_LAYERS = 12, CUT = 6, N_CUT = 3, N_REF = 3, IMG_W = 640, IMG_H = 480 };
static const int cut_layers[N_CUT] = {2, 4, 6};

static struct {
    int state; /* 0 not built yet, 1 ready, -1 failed */
    char dir[64], cfg[128], weights[128], plan[128];
    fp_net *net; /* the whole model: the reference */
    float thresh, nms;
    uint32_t dims[N_CUT][3];         /* c, h, w of each cut tensor */
    float *x[N_REF][N_CUT];          /* the cut tensors of each reference input */
    char *json[N_REF];               /* the result the last stage must send */
    int n_dets[N_REF];
    uint64_t max_raw;                /* stage 1's bound on a frame's raw bytes */
    fp_buffer enc[FP_FRAME_MAX_TENSORS]; /* payloads of the frame being built */
} fx;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

static void fx_cleanup(void)
{
    fp_net_destroy(fx.net);
    for (int r = 0; r < N_REF; r++) {
        for (int t = 0; t < N_CUT; t++) free(fx.x[r][t]);
        free(fx.json[r]);
    }
    for (int i = 0; i < FP_FRAME_MAX_TENSORS; i++) fp_buffer_free(&fx.enc[i]);
    if (fx.dir[0]) {
        unlink(fx.cfg);
        unlink(fx.weights);
        unlink(fx.plan);
        rmdir(fx.dir);
    }
}

/* Keeps the cut tensors as the full run produces them (the arena reuses
 * dead tensors, so they are copied when their layer finishes). */
static int capture_cut(void *user, int layer, const float *out, fp_shape shape)
{
    float **x = user;
    for (int t = 0; t < N_CUT; t++)
        if (cut_layers[t] == layer) {
            size_t n = fp_shape_count(shape);
            x[t] = malloc(n * sizeof(float));
            if (x[t]) memcpy(x[t], out, n * sizeof(float));
        }
    return 0;
}

/* Writes the cfg, random weights and a 2-stage plan cut after layer 6 to a
 * temp dir, and computes every reference input's cut tensors and result
 * with the whole model. Once per process; later calls return the state. */
static int fx_get(void)
{
    if (fx.state) return fx.state > 0;
    fx.state = -1;
    /* Every bad frame logs a warning: thousands of lines of noise here. */
    setenv("FP_LOG_LEVEL", "error", 0);
    atexit(fx_cleanup);
    snprintf(fx.dir, sizeof fx.dir, "/tmp/fp_test_stage_XXXXXX");
    if (!mkdtemp(fx.dir)) {
        fx.dir[0] = '\0';
        CHECK_MSG(0, "mkdtemp failed");
        return 0;
    }
    snprintf(fx.cfg, sizeof fx.cfg, "%s/tiny.cfg", fx.dir);
    snprintf(fx.weights, sizeof fx.weights, "%s/tiny.weights", fx.dir);
    snprintf(fx.plan, sizeof fx.plan, "%s/plan.json", fx.dir);
    CHECK(write_text(fx.cfg, stage_cfg));

    /* Weights go through the file both ways, so the worker and the
     * reference fold batch-norm from the same bytes. */
    fp_net *gen = NULL;
    fp_status st = fp_net_load_cfg(fx.cfg, &gen);
    if (!st) st = fp_net_init_weights_random(gen, 10);
    if (!st) st = fp_net_save_weights(gen, fx.weights);
    fp_net_destroy(gen);
    CHECK_OK(st);
    if (st) return 0;
    if ((st = fp_net_load_cfg(fx.cfg, &fx.net)) || (st = fp_net_load_weights(fx.net, fx.weights)) ||
        (st = fp_net_set_threads(fx.net, 1)) || (st = fp_net_setup(fx.net))) {
        CHECK_OK(st);
        return 0;
    }
    CHECK(fp_net_layer_count(fx.net) == N_LAYERS);
    int cut[FP_FRAME_MAX_TENSORS];
    CHECK(fp_net_cut(fx.net, CUT, cut, FP_FRAME_MAX_TENSORS) == N_CUT);
    for (int t = 0; t < N_CUT; t++) {
        CHECK(cut[t] == cut_layers[t]);
        fp_layer_info info;
        CHECK_OK(fp_net_layer_info(fx.net, cut_layers[t], &info));
        fx.dims[t][0] = (uint32_t)info.out.c;
        fx.dims[t][1] = (uint32_t)info.out.h;
        fx.dims[t][2] = (uint32_t)info.out.w;
    }

    /* The plan: the planner's own output for hand-given cuts, with made-up
     * layer times, and the model's paths and hashes filled in. */
    fp_part_graph *g = NULL;
    fp_cluster *c = NULL;
    fp_part_problem pb;
    fp_plan plan;
    double times[N_LAYERS];
    for (int l = 0; l < N_LAYERS; l++) times[l] = 1e-3 * (1 + l % 3);
    int cuts[1] = {CUT};
    st = fp_part_graph_from_net(fx.net, &g);
    if (!st) st = fp_cluster_uniform(2, 100e6, 1e-3, 1, 0, 1, &c);
    if (!st) {
        fp_part_problem_init(&pb, g, c);
        pb.layer_s[0] = pb.layer_s[1] = times;
        pb.codecs = FP_CODEC_BIT(FP_CODEC_NONE);
        st = fp_part_plan(&pb, FP_STRATEGY_CUTS, cuts, 1, &plan);
    }
    if (!st) {
        snprintf(plan.cfg, sizeof plan.cfg, "%s", fx.cfg);
        snprintf(plan.weights, sizeof plan.weights, "%s", fx.weights);
        st = fp_part_hash_file(fx.cfg, plan.cfg_hash, sizeof plan.cfg_hash);
        if (!st) st = fp_part_hash_file(fx.weights, plan.weights_hash, sizeof plan.weights_hash);
        if (!st) st = fp_plan_save(&plan, fx.plan);
    }
    fp_part_graph_destroy(g);
    fp_cluster_destroy(c);
    CHECK_OK(st);
    if (st) return 0;
    fx.max_raw = fpp_stage_max_raw(&plan, fx.net, 1, 0);

    /* Reference inputs: pseudo-random images, run whole. */
    fp_detect_defaults(fx.net, &fx.thresh, &fx.nms);
    fp_shape in = fp_net_input_shape(fx.net);
    for (int r = 0; r < N_REF; r++) {
        float *px = fp_net_input(fx.net);
        for (size_t i = 0; i < fp_shape_count(in); i++) px[i] = (float)(rnd() >> 40) / (float)(1 << 24);
        fp_detection *d = NULL;
        if ((st = fp_net_run(fx.net, 0, N_LAYERS - 1, capture_cut, fx.x[r])) ||
            (st = fp_detect_boxes(fx.net, IMG_W, IMG_H, fx.thresh, fx.nms, &d, &fx.n_dets[r])) ||
            (st = fpp_result_json(IMG_W, IMG_H, d, fx.n_dets[r], &fx.json[r]))) {
            free(d);
            CHECK_OK(st);
            return 0;
        }
        free(d);
        for (int t = 0; t < N_CUT; t++) CHECK(fx.x[r][t] != NULL);
    }
    fx.state = 1;
    return 1;
}

/* ---- frames ------------------------------------------------------------ */

/* The features frame stage 0 would send for reference input `ref`, encoded
 * with codec c (payloads in fx.enc until the next call). */
static void features(fp_frame *f, int ref, uint64_t id, fp_fmap_codec c)
{
    memset(f, 0, sizeof *f);
    f->kind = FP_FRAME_FEATURES;
    f->id = id;
    f->n_tensors = N_CUT;
    f->image_w = IMG_W;
    f->image_h = IMG_H;
    for (int t = 0; t < N_CUT; t++)
        CHECK_OK(fp_fmap_encode(c, cut_layers[t], fx.x[ref][t], fx.dims[t], 3, &fx.enc[t], &f->tensors[t]));
}

static int encode(const fp_frame *f, fp_buffer *out)
{
    size_t need = fp_frame_encoded_size(f);
    if (need > out->cap) {
        uint8_t *p = realloc(out->data, need);
        if (!p) return 0;
        out->data = p;
        out->cap = need;
    }
    fp_status st = fp_frame_encode(f, out->data, out->cap, &out->len);
    CHECK_OK(st);
    return st == FP_OK;
}

static const fp_fmap_codec codec_none = {FP_DTYPE_F32, FP_COMPRESS_NONE};

/* The good frame with id `id`: reference input id % N_REF, uncompressed. */
static void good_frame(fp_buffer *out, uint64_t id)
{
    fp_frame f;
    features(&f, (int)(id % N_REF), id, codec_none);
    encode(&f, out);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

enum { H = FP_FRAME_HEADER_BYTES, D = FP_FRAME_TENSOR_BYTES };

/* After patching: the header CRC again (bytes 0..27, then the descriptors),
 * so the decoder looks past it at the patched field. */
static void fix_header_crc(fp_buffer *b)
{
    size_t nd = (size_t)b->data[7] * D;
    if (H + nd > b->len) nd = b->len - H;
    uint32_t crc = fp_crc32c(0, b->data, 28);
    crc = fp_crc32c(crc, b->data + H, nd);
    put_u32(b->data + 28, crc);
}

/* Offset of tensor t's payload in an encoded frame. */
static size_t payload_at(const fp_buffer *b, int t)
{
    size_t off = H + (size_t)b->data[7] * D;
    for (int i = 0; i < t; i++) off += (size_t)get_u64(b->data + H + (size_t)i * D + 40);
    return off;
}

/* ---- the worker and the test's sockets --------------------------------- */

typedef struct worker {
    fpp_stage_opts o;
    volatile sig_atomic_t stop;
    atomic_int done;
    fp_status st;
    char err[512];
    pthread_t th;
    int started;
    char bind[64];
    char results[64];  /* the test's PULL endpoint: the worker's next hop */
    void *ctx, *push, *pull;
    uint64_t next_id;  /* good frames get ids 0, 1, 2, ... */
    const fpp_curve_key *curve; /* the worker's key, and the test sockets' */
    fpp_zap *zap;      /* authenticates the worker on the test's result socket */
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    w->st = fpp_stage_serve(&w->o, &w->stop);
    snprintf(w->err, sizeof w->err, "%s", fp_last_error());
    atomic_store(&w->done, 1);
    return NULL;
}

/* Two different free TCP ports on 127.0.0.1 (free_port.h). The worker's
 * HTTP port cannot be read back when it picks one itself. */
static int free_ports(int *a, int *b)
{
    *a = fpt_free_port(0);
    *b = *a ? fpt_free_port(*a) : 0;
    return *a && *b;
}

static int http_get(worker *w, const char *path, char *body, size_t n)
{
    return fpp_http_get("127.0.0.1", w->o.http_port, path, 5, body, n);
}

/* A metric from the worker's /metrics (0 for a series not there yet). */
static double metric(worker *w, const char *name, const char *label)
{
    static char body[1 << 16];
    if (http_get(w, "/metrics", body, sizeof body) != 200) {
        CHECK_MSG(0, "GET /metrics failed");
        return NAN;
    }
    double v = fpp_prom_sum(body, name, label);
    return isnan(v) ? 0 : v;
}

/* The same, polled until it reads `want` (at most 2 s): for a series the
 * worker updates only after the result has left (frames out, queue depth)
 * or a moment after what the test waited on (ready, a frame taken). */
static double metric_settles(worker *w, const char *name, const char *label, double want)
{
    double v = metric(w, name, label), end = fpi_now() + 2;
    while (v != want && fpi_now() < end) {
        sleep_ms(5);
        v = metric(w, name, label);
    }
    return v;
}

static double errors(worker *w, const char *kind)
{
    char label[64];
    if (!kind) return metric(w, "fogpipe_errors_total", NULL);
    snprintf(label, sizeof label, "kind=\"%s\"", kind);
    return metric(w, "fogpipe_errors_total", label);
}

/* The test's result socket, bound where the worker's next hop points. */
static int open_results(worker *w, const char *endpoint)
{
    int linger = 0, timeout = 5000;
    w->pull = zmq_socket(w->ctx, ZMQ_PULL);
    if (!w->pull || zmq_setsockopt(w->pull, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(w->pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout))
        return 0;
    if (w->curve && (fpp_zap_start(w->ctx, w->curve, &w->zap) || fpp_curve_server(w->pull, w->curve))) return 0;
    if (zmq_bind(w->pull, endpoint)) return 0;
    size_t n = sizeof w->results;
    return !zmq_getsockopt(w->pull, ZMQ_LAST_ENDPOINT, w->results, &n);
}

static int open_push(worker *w)
{
    int linger = 0, timeout = 5000;
    w->push = zmq_socket(w->ctx, ZMQ_PUSH);
    return w->push && !zmq_setsockopt(w->push, ZMQ_LINGER, &linger, sizeof linger) &&
           !zmq_setsockopt(w->push, ZMQ_SNDTIMEO, &timeout, sizeof timeout) &&
           (!w->curve || !fpp_curve_client(w->push, w->curve)) && !zmq_connect(w->push, w->bind);
}

/* Waits until GET /readyz answers `status` (at most timeout_s). */
static int wait_ready(worker *w, int status, double timeout_s, char *body, size_t n)
{
    double end = fpi_now() + timeout_s;
    while (fpi_now() < end) {
        if (http_get(w, "/readyz", body, n) == status) return 1;
        if (atomic_load(&w->done)) return 0;
        sleep_ms(10);
    }
    return 0;
}

/* Starts stage 1 of the plan in a thread, serving on free ports, with
 * CURVE when `curve` is set; its next hop is `next`, or the test's PULL
 * socket when NULL. Returns without waiting for readiness. */
static int worker_begin(worker *w, int hwm, double drain_s, const fpp_curve_key *curve, const char *next)
{
    memset(w, 0, sizeof *w);
    if (!fx_get()) return 0;
    w->curve = curve;
    int zport, hport;
    CHECK(free_ports(&zport, &hport));
    snprintf(w->bind, sizeof w->bind, "tcp://127.0.0.1:%d", zport);
    w->ctx = zmq_ctx_new();
    CHECK(w->ctx != NULL);
    if (!w->ctx || !open_results(w, "tcp://127.0.0.1:*")) {
        CHECK_MSG(0, "result socket: %s", zmq_strerror(zmq_errno()));
        return 0;
    }
    w->o = (fpp_stage_opts){.plan = fx.plan, .stage = 1, .bind = w->bind, .http_host = "127.0.0.1",
                            .http_port = hport, .threads = 1, .thresh = -1, .nms = -1, .hwm = hwm,
                            .name = "t", .drain_s = drain_s, .curve = curve};
    CHECK_OK(fpp_endpoints_parse(next ? next : w->results, "next", &w->o.next));
    if (pthread_create(&w->th, NULL, worker_main, w)) {
        CHECK_MSG(0, "pthread_create failed");
        return 0;
    }
    w->started = 1;
    return 1;
}

/* worker_begin, then waits until /readyz says 200 and connects the test's
 * PUSH socket to the worker. */
static int worker_start_with(worker *w, int hwm, double drain_s, const fpp_curve_key *curve, const char *next)
{
    if (!worker_begin(w, hwm, drain_s, curve, next)) return 0;
    char body[256] = "";
    int ok = wait_ready(w, 200, 10, body, sizeof body);
    CHECK_MSG(ok, "the worker never became ready: %s", atomic_load(&w->done) ? w->err : body);
    CHECK_MSG(strstr(body, "stage 1, layers 7..11"), "readyz said: %s", body);
    if (ok) CHECK(open_push(w));
    return ok && w->push;
}

static int worker_start(worker *w, int hwm, double drain_s) { return worker_start_with(w, hwm, drain_s, NULL, NULL); }

/* Waits at most timeout_s for the worker's serve call to return. */
static int wait_done(worker *w, double timeout_s)
{
    double end = fpi_now() + timeout_s;
    while (!atomic_load(&w->done) && fpi_now() < end) sleep_ms(5);
    return atomic_load(&w->done);
}

/* Stops the worker (if still running), joins it, closes the sockets. */
static void worker_stop(worker *w)
{
    if (w->started) {
        w->stop = 1;
        if (!wait_done(w, 30)) {
            /* A stuck worker: leave it rather than hang the test run. */
            CHECK_MSG(0, "the worker did not stop within 30 s");
            pthread_detach(w->th);
        } else {
            pthread_join(w->th, NULL);
            CHECK_MSG(w->st == FP_OK, "serve returned %s: %s", fp_status_name(w->st), w->err);
        }
    }
    if (w->push) zmq_close(w->push);
    if (w->pull) zmq_close(w->pull);
    fpp_zap_stop(w->zap);
    if (w->ctx) zmq_ctx_term(w->ctx);
    memset(w, 0, sizeof *w);
}

static int send_msg(worker *w, const void *data, size_t len)
{
    int rc = zmq_send(w->push, data, len, 0);
    CHECK_MSG(rc == (int)len, "send of %zu bytes: %s", len, zmq_strerror(zmq_errno()));
    return rc == (int)len;
}

/* Receives one message into out; 0 on timeout. */
static int recv_msg(void *sock, fp_buffer *out)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = zmq_msg_recv(&m, sock, 0);
    if (rc >= 0) {
        size_t n = zmq_msg_size(&m);
        if (n > out->cap) {
            uint8_t *p = realloc(out->data, n ? n : 1);
            if (!p) rc = -1;
            else {
                out->data = p;
                out->cap = n;
            }
        }
        if (rc >= 0) {
            if (n) memcpy(out->data, zmq_msg_data(&m), n);
            out->len = n;
        }
    }
    zmq_msg_close(&m);
    return rc >= 0;
}

/* Checks a result frame: the id, and the JSON (exactly `want` when given;
 * else well-formed, with detections or an error). 0 and a reason in why. */
static int result_ok(const fp_buffer *m, uint64_t id, const char *want, char *why, size_t n)
{
    fp_frame f;
    if (fp_frame_decode(m->data, m->len, 1 << 24, &f))
        return snprintf(why, n, "an undecodable result: %s", fp_last_error()), 0;
    if (f.kind != FP_FRAME_RESULT || f.n_tensors != 1 || f.tensors[0].dtype != FP_DTYPE_U8)
        return snprintf(why, n, "not a result frame (kind %d)", f.kind), 0;
    if (f.id != id) return snprintf(why, n, "result for frame %llu, expected %llu", (unsigned long long)f.id,
                                    (unsigned long long)id), 0;
    const char *json = (const char *)f.tensors[0].data;
    size_t len = f.tensors[0].len;
    if (want) {
        if (len != strlen(want) || memcmp(json, want, len))
            return snprintf(why, n, "frame %llu: got %.*s, expected %.200s", (unsigned long long)id,
                            (int)(len < 200 ? len : 200), json, want), 0;
        return 1;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    int ok = root && (cJSON_IsArray(cJSON_GetObjectItem(root, "detections")) ||
                      cJSON_IsString(cJSON_GetObjectItem(root, "error")));
    cJSON_Delete(root);
    if (!ok) return snprintf(why, n, "frame %llu: malformed result %.*s", (unsigned long long)id,
                             (int)(len < 200 ? len : 200), json), 0;
    return 1;
}

/* Receives the result of good frame `id` and checks it is exact. */
static int expect_good(worker *w, uint64_t id, fp_buffer *m)
{
    char why[600];
    if (!recv_msg(w->pull, m)) {
        CHECK_MSG(0, "no result for frame %llu within 5 s", (unsigned long long)id);
        return 0;
    }
    int ok = result_ok(m, id, fx.json[id % N_REF], why, sizeof why);
    CHECK_MSG(ok, "%s", why);
    return ok;
}

/* One good frame through the worker and back, exact. */
static int good_round_trip(worker *w)
{
    fp_buffer b = {0}, m = {0};
    uint64_t id = w->next_id++;
    good_frame(&b, id);
    int ok = send_msg(w, b.data, b.len) && expect_good(w, id, &m);
    fp_buffer_free(&b);
    fp_buffer_free(&m);
    return ok;
}

/* ---- tests ------------------------------------------------------------- */

static void test_plan(void)
{
    if (!fx_get()) return;
    char cfg_hash[32], w_hash[32];
    CHECK_OK(fp_part_hash_file(fx.cfg, cfg_hash, sizeof cfg_hash));
    CHECK_OK(fp_part_hash_file(fx.weights, w_hash, sizeof w_hash));
    fp_plan_expect ex = {.n_layers = N_LAYERS, .cfg_hash = cfg_hash, .weights_hash = w_hash};
    fp_plan p;
    CHECK_OK(fp_plan_load(fx.plan, &ex, &p));
    CHECK(p.n_stages == 2);
    CHECK(p.stages[0].first == 0 && p.stages[0].last == CUT);
    CHECK(p.stages[1].first == CUT + 1 && p.stages[1].last == N_LAYERS - 1);
    CHECK(p.stages[0].out_codec == FP_CODEC_NONE);
    CHECK(p.stages[0].out.n_tensors == N_CUT);
    for (int t = 0; t < N_CUT && t < p.stages[0].out.n_tensors; t++) CHECK(p.stages[0].out.tensors[t] == cut_layers[t]);
    /* The exactness checks below mean more when the references have boxes,
     * and differ from one another. */
    int with_boxes = 0;
    for (int r = 0; r < N_REF; r++) with_boxes += fx.n_dets[r] > 0;
    CHECK_MSG(with_boxes >= 2, "only %d reference inputs give detections", with_boxes);
    CHECK(strcmp(fx.json[0], fx.json[1]) && strcmp(fx.json[1], fx.json[2]));
}

static void test_good_frames(void)
{
    worker w;
    fp_buffer b = {0}, m = {0};
    char why[600], body[1 << 12];
    if (!worker_start(&w, 16, 5)) goto done;
    CHECK(metric_settles(&w, "fogpipe_ready", NULL, 1) == 1);
    CHECK(metric_settles(&w, "fogpipe_peers_connected", NULL, 1) == 1);
    CHECK(http_get(&w, "/healthz", body, sizeof body) == 200);
    CHECK(http_get(&w, "/nope", body, sizeof body) == 404);

    /* Each reference twice, exact; each frame then sent again, which the
     * cache answers, as exactly. */
    for (int i = 0; i < 2 * N_REF; i++) {
        uint64_t id = w.next_id;
        if (!good_round_trip(&w)) break;
        good_frame(&b, id);
        if (!send_msg(&w, b.data, b.len) || !expect_good(&w, id, &m)) break;
    }
    fp_frame last;
    int decoded = m.len && !fp_frame_decode(m.data, m.len, 1 << 24, &last);
    CHECK(decoded);
    if (decoded) { /* width and height as sent */
        cJSON *root = cJSON_ParseWithLength((const char *)last.tensors[0].data, last.tensors[0].len);
        CHECK(root && cJSON_IsArray(cJSON_GetObjectItem(root, "detections")));
        CHECK(root && cJSON_GetNumberValue(cJSON_GetObjectItem(root, "width")) == IMG_W);
        CHECK(root && cJSON_GetNumberValue(cJSON_GetObjectItem(root, "height")) == IMG_H);
        cJSON_Delete(root);
    }
    CHECK(metric(&w, "fogpipe_frames_in_total", "kind=\"features\"") == 2 * N_REF);
    CHECK(metric_settles(&w, "fogpipe_frames_out_total", "kind=\"result\"", 4 * N_REF) == 4 * N_REF);
    CHECK(metric(&w, "fogpipe_duplicates_total", NULL) == 2 * N_REF);
    CHECK(metric(&w, "fogpipe_compute_seconds_count", NULL) == 2 * N_REF);
    CHECK(metric(&w, "fogpipe_bytes_in_total", "codec=\"none\"") == 4 * N_REF * (double)b.len);
    CHECK(errors(&w, NULL) == 0);

    /* Lossless compression on the wire: still exact. Lossy codecs: a
     * well-formed answer (the boxes may move). */
    static const fp_fmap_codec codecs[] = {{FP_DTYPE_F32, FP_COMPRESS_LZ4}, {FP_DTYPE_F32, FP_COMPRESS_ZSTD},
                                           {FP_DTYPE_F16, FP_COMPRESS_NONE}, {FP_DTYPE_I8, FP_COMPRESS_LZ4},
                                           {FP_DTYPE_I8C, FP_COMPRESS_ZSTD}};
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
        fp_frame f;
        uint64_t id = w.next_id++;
        int lossless = codecs[i].dtype == FP_DTYPE_F32;
        features(&f, (int)(id % N_REF), id, codecs[i]);
        if (!encode(&f, &b) || !send_msg(&w, b.data, b.len)) break;
        CHECK(recv_msg(w.pull, &m));
        CHECK_MSG(result_ok(&m, id, lossless ? fx.json[id % N_REF] : NULL, why, sizeof why), "codec %zu: %s", i, why);
    }

    /* A frame refused after decoding does not poison its id: the good frame
     * sent again under that id is run, not answered from the cache. */
    {
        uint64_t id = w.next_id++;
        good_frame(&b, id);
        put_u32(b.data + H, 1); /* tensor 0 from layer 1 instead of 2 */
        fix_header_crc(&b);
        send_msg(&w, b.data, b.len);
        good_frame(&b, id);
        send_msg(&w, b.data, b.len);
        expect_good(&w, id, &m);
        CHECK(errors(&w, "proto") == 1);
        CHECK(metric(&w, "fogpipe_duplicates_total", NULL) == 2 * N_REF);
    }

    /* A frame without the image size cannot have its boxes mapped: the
     * worker answers it with an error result (so a gateway stops waiting)
     * and counts it. */
    {
        fp_frame f;
        uint64_t id = w.next_id++;
        features(&f, 0, id, codec_none);
        f.image_w = f.image_h = 0;
        encode(&f, &b);
        send_msg(&w, b.data, b.len);
        CHECK(recv_msg(w.pull, &m));
        CHECK_MSG(result_ok(&m, id, NULL, why, sizeof why), "%s", why);
        fp_frame r;
        CHECK(!fp_frame_decode(m.data, m.len, 1 << 24, &r) && r.tensors[0].len > 9 &&
              !memcmp(r.tensors[0].data, "{\"error\":", 9));
        CHECK(errors(&w, "compute") == 1);
        CHECK(good_round_trip(&w));
    }

    /* A result frame (an earlier stage's error answer) is passed on as is. */
    {
        static const char json[] = "{\"error\":\"stage 0: broken\"}";
        fp_frame f = {.kind = FP_FRAME_RESULT, .id = 777777, .n_tensors = 1, .image_w = 3, .image_h = 4};
        f.tensors[0] = (fp_frame_tensor){.layer = -1, .dtype = FP_DTYPE_U8, .rank = 1, .dims = {sizeof json - 1, 1, 1, 1},
                                         .raw_len = sizeof json - 1, .data = (const uint8_t *)json, .len = sizeof json - 1};
        encode(&f, &b);
        send_msg(&w, b.data, b.len);
        CHECK(recv_msg(w.pull, &m));
        CHECK(m.len == b.len && !memcmp(m.data, b.data, b.len));
        CHECK(metric(&w, "fogpipe_frames_in_total", "kind=\"result\"") == 1);
    }

    /* Non-finite feature maps (fp_fmap_encode refuses them, a peer need
     * not): answered with a well-formed result, and the worker goes on. */
    for (int v = 0; v < 4; v++) {
        static const uint32_t bits[4] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x7f7fffffu}; /* NaN, ±Inf, max */
        float val;
        memcpy(&val, &bits[v], sizeof val);
        fp_frame f;
        uint64_t id = w.next_id++;
        features(&f, 0, id, codec_none);
        for (int t = 0; t < N_CUT; t++) {
            float *x = (float *)fx.enc[t].data; /* payload of an uncompressed f32 tensor: the floats */
            for (size_t i = 0; i < f.tensors[t].len / 4; i += 1 + (size_t)t) memcpy(&x[i], &val, sizeof val);
        }
        encode(&f, &b);
        send_msg(&w, b.data, b.len);
        CHECK(recv_msg(w.pull, &m));
        CHECK_MSG(result_ok(&m, id, NULL, why, sizeof why), "value %08x: %s", bits[v], why);
        CHECK(good_round_trip(&w));
    }
done:
    fp_buffer_free(&b);
    fp_buffer_free(&m);
    worker_stop(&w);
}

/* ---- malformed frames -------------------------------------------------- */

static fp_buffer base;  /* a good frame the bad ones are made from */
static uint64_t bad_id; /* ids of bad frames: far from the good ones */

static void base_frame(void)
{
    if (!base.data) {
        good_frame(&base, 1ull << 40);
        bad_id = (1ull << 40) + 1;
    }
}

static void copy_base(fp_buffer *out)
{
    base_frame();
    if (out->cap < base.len) {
        free(out->data);
        out->data = malloc(base.len);
        out->cap = out->data ? base.len : 0;
    }
    memcpy(out->data, base.data, base.len);
    out->len = base.len;
    put_u64(out->data + 8, bad_id++);
    fix_header_crc(out);
}

/* Every 7th prefix, and the frame less its last byte. */
static int n_truncated(void)
{
    base_frame();
    return (int)((base.len - 2) / 7) + 2;
}
static void mk_truncated(int i, fp_buffer *out)
{
    copy_base(out);
    size_t len = 1 + (size_t)i * 7;
    out->len = len < base.len ? len : base.len - 1;
}

/* One payload byte flipped, spread over all three payloads. */
static void mk_flipped(int i, fp_buffer *out)
{
    copy_base(out);
    size_t first = payload_at(out, 0);
    out->data[first + ((size_t)i * 997) % (out->len - first)] ^= (uint8_t)(1u << (i % 8));
}

/* The version field, with a valid header CRC. */
static void mk_version(int i, fp_buffer *out)
{
    static const uint16_t v[] = {1, 3, 0xffff, 0};
    copy_base(out);
    out->data[4] = (uint8_t)v[i];
    out->data[5] = (uint8_t)(v[i] >> 8);
    fix_header_crc(out);
}

/* Absurd dims with a valid CRC: disagreeing with the lengths, or not. */
static void mk_dims(int i, fp_buffer *out)
{
    copy_base(out);
    uint8_t *d = out->data + H + (size_t)(i % N_CUT) * D;
    switch (i / N_CUT) {
    case 0: put_u32(d + 12, 1u << 30); break;                  /* h = 2^30 */
    case 1: put_u32(d + 8, 0xffffffffu); break;                /* c out of range */
    case 2: put_u32(d + 16, 0); break;                         /* w = 0 */
    default: put_u32(d + 20, 1u << 30); d[6] = 4; break;       /* a fourth dim of 2^30 */
    }
    fix_header_crc(out);
}
/* ...and with the raw length to match: over the worker's limit (checked
 * before the payload's own length). The last one: a compressed tensor
 * under the limit whose frame, with the others, is over it. */
static void mk_huge(int i, fp_buffer *out)
{
    int t = i % N_CUT;
    uint32_t h = 1u << 30;
    if (i < N_CUT) {
        copy_base(out);
    } else {
        fp_frame f;
        features(&f, 0, bad_id++, (fp_fmap_codec){FP_DTYPE_F32, FP_COMPRESS_LZ4});
        encode(&f, out);
        h = (uint32_t)(fx.max_raw / (4ull * fx.dims[t][0] * fx.dims[t][2]));
    }
    uint8_t *d = out->data + H + (size_t)t * D;
    put_u32(d + 12, h);
    put_u64(d + 32, 4ull * fx.dims[t][0] * fx.dims[t][2] * h);
    fix_header_crc(out);
}

/* Decodes fine; the layers are not the cut's. */
static void mk_layer(int i, fp_buffer *out)
{
    static const int t[] = {0, 0, 1, 2, 2};
    static const int32_t layer[] = {1, -1, 5, 5, 11};
    copy_base(out);
    put_u32(out->data + H + (size_t)t[i] * D, (uint32_t)layer[i]);
    fix_header_crc(out);
}

/* Decodes fine; too few or too many tensors. */
static void mk_count(int i, fp_buffer *out)
{
    fp_frame f;
    static const float one[1] = {1};
    features(&f, 0, bad_id++, codec_none);
    switch (i) {
    case 0: f.n_tensors = 2; break;                   /* the head missing */
    case 1: f.tensors[0] = f.tensors[1]; f.tensors[1] = f.tensors[2]; f.n_tensors = 2; break;
    case 2: f.n_tensors = 0; break;
    default:
        f.n_tensors = 4;
        f.tensors[3] = (fp_frame_tensor){.layer = 9, .dtype = FP_DTYPE_F32, .rank = 1, .dims = {1, 1, 1, 1},
                                         .raw_len = 4, .data = (const uint8_t *)one, .len = 4};
        break;
    }
    encode(&f, out);
}

/* Decodes fine; the right layers with the wrong shape or element type. */
static void mk_shape(int i, fp_buffer *out)
{
    fp_frame f;
    features(&f, 0, bad_id++, codec_none);
    fp_frame_tensor *t = &f.tensors[i % N_CUT];
    switch (i / N_CUT) {
    case 0: t->dims[0] *= 2; t->dims[1] /= 2; break;                          /* 2c x h/2 x w */
    case 1: t->rank = 2; t->dims[1] *= t->dims[2]; t->dims[2] = 1; break;    /* h*w flattened */
    default: /* the right dims, but bytes: the first c*h*w bytes of the floats */
        t->dtype = FP_DTYPE_U8;
        t->raw_len = t->len = (size_t)t->dims[0] * t->dims[1] * t->dims[2];
        break;
    }
    encode(&f, out);
}

/* An image frame: only stage 0 takes those. */
static void mk_image(int i, fp_buffer *out)
{
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    fp_frame f = {.kind = FP_FRAME_IMAGE, .id = bad_id++, .n_tensors = 1, .image_w = IMG_W, .image_h = IMG_H};
    f.tensors[0] = (fp_frame_tensor){.layer = -1, .dtype = FP_DTYPE_U8, .rank = 1, .dims = {sizeof png, 1, 1, 1},
                                     .raw_len = sizeof png, .data = png, .len = sizeof png};
    (void)i;
    encode(&f, out);
}

/* A compressed payload cut short, its CRCs valid: it cannot decompress to
 * its raw length. */
static void mk_short_stream(int i, fp_buffer *out)
{
    fp_frame f;
    fp_fmap_codec c = {FP_DTYPE_F32, i < N_CUT ? FP_COMPRESS_LZ4 : FP_COMPRESS_ZSTD};
    features(&f, 0, bad_id++, c);
    f.tensors[i % N_CUT].len -= 1 + (size_t)i;
    encode(&f, out);
}

/* Random bytes; a valid header prefix then random bytes; a good frame
 * with a few bytes changed; a good frame cut short with garbage after. */
static void mk_random(int i, fp_buffer *out)
{
    copy_base(out);
    switch (i % 4) {
    case 0:
        out->len = 1 + rnd() % 300;
        for (size_t k = 0; k < out->len; k++) out->data[k] = (uint8_t)rnd();
        break;
    case 1:
        out->len = 8 + rnd() % 600;
        for (size_t k = 8; k < out->len; k++) out->data[k] = (uint8_t)rnd();
        break;
    case 2: { /* 1..4 distinct bytes, each changed */
        size_t at = rnd() % out->len;
        for (int k = 1 + (int)(rnd() % 4); k > 0; k--)
            out->data[(at + (size_t)k * 331) % out->len] ^= (uint8_t)(1 + rnd() % 255);
        break;
    }
    default: { /* the tail replaced, at least its first byte changed */
        size_t keep = rnd() % out->len;
        uint8_t old = out->data[keep];
        for (size_t k = keep; k < out->len; k++) out->data[k] = (uint8_t)rnd();
        if (out->data[keep] == old) out->data[keep] ^= 0xff;
        break;
    }
    }
}

static void mk_empty(int i, fp_buffer *out)
{
    (void)i;
    out->len = 0;
}

enum { WINDOW = 32 }; /* good frames in flight: well under every high-water mark */

/* Sends n bad messages, a good frame after every `every`-th one and after
 * the last; checks that every good frame gets its exact result (nothing a
 * bad frame left behind changes the next answer), and that
 * fogpipe_errors_total (and its `kind` series, when given) rose by exactly
 * n. Frames travel one connection to one thread: in order. */
static void attack(worker *w, const char *what, const char *kind, int n, int every, void (*make)(int, fp_buffer *))
{
    fp_buffer bad = {0}, good = {0}, m = {0};
    double e0 = errors(w, NULL), k0 = kind ? errors(w, kind) : 0;
    double in0 = metric(w, "fogpipe_frames_in_total", "kind=\"features\"");
    int wrong = 0, goods = 0;
    for (int i = 0; i < n && !wrong;) {
        int k = 0; /* good frames in this window */
        for (; i < n && k < WINDOW; i++) {
            make(i, &bad);
            if (!send_msg(w, bad.data, bad.len)) wrong++;
            if ((i + 1) % every && i + 1 < n) continue;
            good_frame(&good, w->next_id + (uint64_t)k++);
            if (!send_msg(w, good.data, good.len)) wrong++;
        }
        for (int j = 0; j < k && !wrong; j++)
            if (!expect_good(w, w->next_id + (uint64_t)j, &m)) {
                fprintf(stderr, "  %s: by bad message %d\n", what, i);
                wrong++;
            }
        w->next_id += (uint64_t)k;
        goods += k;
    }
    if (wrong) { /* take what is still coming, so the next attack starts in step */
        int timeout = 300;
        zmq_setsockopt(w->pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        while (recv_msg(w->pull, &m)) {}
        timeout = 5000;
        zmq_setsockopt(w->pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    }
    double e1 = errors(w, NULL), k1 = kind ? errors(w, kind) : 0;
    double in1 = metric(w, "fogpipe_frames_in_total", "kind=\"features\"");
    CHECK_MSG(e1 - e0 == n, "%s: fogpipe_errors_total rose by %g for %d bad frames", what, e1 - e0, n);
    if (kind) CHECK_MSG(k1 - k0 == n, "%s: fogpipe_errors_total{kind=\"%s\"} rose by %g for %d", what, kind, k1 - k0, n);
    CHECK_MSG(in1 - in0 == goods, "%s: %g good frames accepted of %d", what, in1 - in0, goods);
    fp_buffer_free(&bad);
    fp_buffer_free(&good);
    fp_buffer_free(&m);
}

static void test_malformed(void)
{
    worker w;
    if (!worker_start(&w, 16, 5)) goto done;
    base_frame();
    /* The bulk attacks get a good frame after every 8th bad one: a good
     * frame after each would take most of the test's time (mostly box
     * decoding), and a bad frame that spoiled the worker would still show. */
    attack(&w, "truncated", "proto", n_truncated(), 8, mk_truncated);
    attack(&w, "payload byte flipped", "corrupt", 64, 1, mk_flipped);
    attack(&w, "version", "proto", 4, 1, mk_version);
    attack(&w, "absurd dims", "proto", 4 * N_CUT, 1, mk_dims);
    attack(&w, "huge dims", "too_big", N_CUT + 1, 1, mk_huge);
    attack(&w, "wrong layer", "proto", 5, 1, mk_layer);
    attack(&w, "wrong tensor count", "proto", 4, 1, mk_count);
    attack(&w, "wrong shape or type", "proto", 3 * N_CUT, 1, mk_shape);
    attack(&w, "image frame", "unexpected", 3, 1, mk_image);
    attack(&w, "short compressed stream", "corrupt", 2 * N_CUT, 1, mk_short_stream);
    attack(&w, "random", NULL, 5000, 8, mk_random);
    attack(&w, "empty", "proto", 1, 1, mk_empty);
    CHECK(metric(&w, "fogpipe_duplicates_total", NULL) == 0);
    CHECK(metric_settles(&w, "fogpipe_queue_depth", NULL, 0) == 0);
done:
    fp_buffer_free(&base);
    worker_stop(&w);
}

/* Waits for one of `events` on a monitor socket (at most timeout_ms). */
static int wait_event(void *mon, int events, int timeout_ms)
{
    double end = fpi_now() + timeout_ms / 1000.0;
    while (fpi_now() < end) {
        zmq_pollitem_t it = {mon, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0) continue;
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        zmq_msg_init(&addr);
        uint16_t e = 0;
        if (zmq_msg_recv(&ev, mon, 0) >= 2) memcpy(&e, zmq_msg_data(&ev), 2);
        zmq_msg_recv(&addr, mon, 0);
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        if (e & events) return 1;
    }
    return 0;
}

/* A message over the worker's ZeroMQ size limit never reaches it: ZeroMQ
 * drops the connection. The sender's socket reconnects by itself and the
 * next good frame is answered; one just under the limit is refused as a
 * frame and counted. */
static void test_oversize(void)
{
    worker w;
    void *mon = NULL;
    uint8_t *big = NULL;
    if (!worker_start(&w, 16, 5)) goto done;
    /* stage.c's ZMQ_MAXMSGSIZE: the frame bound plus room for headers and
     * compression; 2x is over it whatever the slack. */
    size_t limit = (size_t)(fx.max_raw + fx.max_raw / 64 + 65536 + H + FP_FRAME_MAX_TENSORS * D);
    big = malloc(2 * limit);
    if (!big) goto done;
    for (size_t i = 0; i < 2 * limit; i++) big[i] = (uint8_t)rnd();
    CHECK(zmq_socket_monitor(w.push, "inproc://test-stage-push", ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) == 0);
    mon = zmq_socket(w.ctx, ZMQ_PAIR);
    CHECK(mon && !zmq_connect(mon, "inproc://test-stage-push"));
    CHECK(good_round_trip(&w));
    double e0 = errors(&w, NULL);

    /* Just over the frame bound, under ZeroMQ's: a frame error. */
    CHECK(send_msg(&w, big, (size_t)fx.max_raw + 4096));
    CHECK(good_round_trip(&w));
    CHECK(errors(&w, NULL) == e0 + 1);

    while (wait_event(mon, ~0, 100)) {} /* old events */
    for (int round = 0; round < 3; round++) {
        CHECK(send_msg(&w, big, 2 * limit));
        CHECK_MSG(wait_event(mon, ZMQ_EVENT_DISCONNECTED, 5000), "round %d: the worker kept the connection", round);
        CHECK_MSG(wait_event(mon, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 5000), "round %d: no reconnection", round);
        CHECK_MSG(good_round_trip(&w), "round %d: no answer after the reconnection", round);
    }
    CHECK(errors(&w, NULL) == e0 + 1);
    /* The dropped message is not sent again on the new connection. */
    CHECK(!wait_event(mon, ZMQ_EVENT_DISCONNECTED, 300));
done:
    free(big);
    if (w.push) zmq_socket_monitor(w.push, NULL, 0);
    if (mon) zmq_close(mon);
    worker_stop(&w);
}

/* The same frame id twice: two identical results, one counted duplicate. */
static void test_duplicates(void)
{
    worker w;
    fp_buffer b = {0}, m1 = {0}, m2 = {0};
    if (!worker_start(&w, 16, 5)) goto done;
    uint64_t id = 4242;
    good_frame(&b, id);
    CHECK(send_msg(&w, b.data, b.len) && send_msg(&w, b.data, b.len));
    CHECK(expect_good(&w, id, &m1) && expect_good(&w, id, &m2));
    CHECK(m1.len == m2.len && !memcmp(m1.data, m2.data, m1.len));
    CHECK(metric(&w, "fogpipe_duplicates_total", NULL) == 1);
    CHECK(metric(&w, "fogpipe_frames_in_total", "kind=\"features\"") == 1);
    CHECK(metric(&w, "fogpipe_compute_seconds_count", NULL) == 1);
    CHECK(metric_settles(&w, "fogpipe_frames_out_total", "kind=\"result\"", 2) == 2);
    CHECK(errors(&w, NULL) == 0);
done:
    fp_buffer_free(&b);
    fp_buffer_free(&m1);
    fp_buffer_free(&m2);
    worker_stop(&w);
}

/* Closes the test's result socket and waits until the worker sees its next
 * hop gone (/readyz 503): its sends then wait. */
static int next_hop_down(worker *w)
{
    char body[256] = "";
    zmq_close(w->pull);
    w->pull = NULL;
    int ok = wait_ready(w, 503, 5, body, sizeof body);
    CHECK_MSG(ok, "/readyz did not turn 503: %s", body);
    CHECK_MSG(strstr(body, "no peer"), "readyz said: %s", body);
    return ok;
}

/* Stop with frames queued: the worker holds its first frame (the next hop
 * is down), the rest wait in its socket; stop, bring the next hop back:
 * every frame sent before the stop is answered, in order, exactly, and
 * serve returns FP_OK. */
static void test_stop_drains(void)
{
    enum { N = 10 };
    worker w;
    fp_buffer b = {0}, m = {0};
    char ep[64];
    if (!worker_start(&w, 16, 5)) goto done;
    snprintf(ep, sizeof ep, "%s", w.results);
    if (!next_hop_down(&w)) goto done;
    for (int i = 0; i < N; i++) {
        good_frame(&b, w.next_id++);
        send_msg(&w, b.data, b.len);
    }
    sleep_ms(200); /* all of them into the worker's socket (hwm 16) */
    CHECK(metric_settles(&w, "fogpipe_frames_in_total", "kind=\"features\"", 1) == 1);
    w.stop = 1;
    double t0 = fpi_now();
    sleep_ms(100);
    CHECK(open_results(&w, ep));
    int done = wait_done(&w, 5 + 3);
    CHECK_MSG(done, "serve did not return within the drain time");
    if (done) {
        CHECK_MSG(fpi_now() - t0 < 5, "the drain took %.1f s", fpi_now() - t0);
        pthread_join(w.th, NULL);
        w.started = 0;
        CHECK_MSG(w.st == FP_OK, "serve returned %s: %s", fp_status_name(w.st), w.err);
    }
    int timeout = 1000;
    zmq_setsockopt(w.pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    for (uint64_t id = 0; id < N; id++)
        if (!expect_good(&w, id, &m)) break;
    CHECK_MSG(!recv_msg(w.pull, &m), "a result more than frames sent");
done:
    fp_buffer_free(&b);
    fp_buffer_free(&m);
    worker_stop(&w);
}

/* Stop while the next hop stays down: the worker cannot send what it holds,
 * and must still return within its drain time (not wait for a peer). */
static void test_stop_next_hop_gone(void)
{
    worker w;
    fp_buffer b = {0};
    char ep[64];
    const double drain = 1;
    if (!worker_start(&w, 16, drain)) goto done;
    snprintf(ep, sizeof ep, "%s", w.results);
    if (!next_hop_down(&w)) goto done;
    for (int i = 0; i < 3; i++) {
        good_frame(&b, w.next_id++);
        send_msg(&w, b.data, b.len);
    }
    sleep_ms(200);
    CHECK(metric_settles(&w, "fogpipe_frames_in_total", "kind=\"features\"", 1) == 1);
    double t0 = fpi_now();
    w.stop = 1;
    int done = wait_done(&w, drain + 3);
    CHECK_MSG(done, "serve still blocked %.1f s after the stop (drain %.1f s) with the next hop gone",
              fpi_now() - t0, drain);
    if (!done) {
        /* Unblock it so the test can end: bring the next hop back. */
        CHECK(open_results(&w, ep));
    } else {
        CHECK_MSG(fpi_now() - t0 < drain + 2, "the stop took %.1f s", fpi_now() - t0);
    }
done:
    fp_buffer_free(&b);
    worker_stop(&w);
}

/* ---- CURVE: authenticated, encrypted links ----------------------------- */

static void test_curve_key_files(void)
{
    if (!fx_get()) return;
    fpp_curve_key k, back, other;
    char path[160];
    CHECK_OK(fpp_curve_keygen(&k));
    CHECK_OK(fpp_curve_keygen(&other));
    CHECK(strlen(k.public_key) == FPP_Z85_KEY && strlen(k.secret_key) == FPP_Z85_KEY);
    CHECK(strcmp(k.public_key, other.public_key));
    snprintf(path, sizeof path, "%s/good.key", fx.dir);
    CHECK_OK(fpp_curve_key_write(path, &k));
    CHECK_ERR(fpp_curve_key_write(path, &other), FP_EIO); /* never overwritten */
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK_OK(fpp_curve_key_load(path, &back));
    CHECK(!strcmp(back.public_key, k.public_key) && !strcmp(back.secret_key, k.secret_key));

    /* Broken key files: each refused with its reason. */
    char text[6000];
    static const struct {
        const char *what, *fmt; /* %s: secret, then public (only as many as the format uses) */
        const char *reason;
    } bad[] = {
        {"empty", "", "no secret-key"},
        {"comments only", "# nothing\n\n", "no secret-key"},
        {"no public key", "secret-key = \"%s\"\n", "no public-key"},
        {"short key", "secret-key = \"%.39s\"\npublic-key = \"%s\"\n", "Z85"},
        {"unknown name", "secret = \"%s\"\n", "unknown key"},
        {"no '='", "secret-key \"%s\"\n", "expected"},
        {"not Z85", "secret-key = \"%s\"\npublic-key = \"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\"\n", "Z85"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s/bad%zu.key", fx.dir, i);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(text, sizeof text, bad[i].fmt, k.secret_key, k.public_key);
#pragma GCC diagnostic pop
        CHECK(write_text(path, text));
        CHECK_ERR(fpp_curve_key_load(path, &back), FP_EINVAL);
        CHECK_MSG(strstr(fp_last_error(), bad[i].reason), "%s: %s", bad[i].what, fp_last_error());
    }
    /* Another pair's public key with this secret key. */
    snprintf(path, sizeof path, "%s/mixed.key", fx.dir);
    snprintf(text, sizeof text, "public-key = \"%s\"\nsecret-key = \"%s\"\n", other.public_key, k.secret_key);
    CHECK(write_text(path, text));
    CHECK_ERR(fpp_curve_key_load(path, &back), FP_EINVAL);
    CHECK(strstr(fp_last_error(), "not the secret key's"));
    /* Too big, and binary. */
    snprintf(path, sizeof path, "%s/big.key", fx.dir);
    memset(text, '#', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    CHECK(write_text(path, text));
    CHECK_ERR(fpp_curve_key_load(path, &back), FP_EINVAL);
    snprintf(path, sizeof path, "%s/nul.key", fx.dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite("secret-key = \"\0\"\n", 1, 17, f) == 17);
    if (f) fclose(f);
    CHECK_ERR(fpp_curve_key_load(path, &back), FP_EINVAL);
    snprintf(path, sizeof path, "%s/absent.key", fx.dir);
    CHECK_ERR(fpp_curve_key_load(path, &back), FP_EIO);
}

/* Polls a metric until it reaches at least `want` (at most 5 s). */
static double metric_reaches(worker *w, const char *name, double want)
{
    double v = metric(w, name, NULL), end = fpi_now() + 5;
    while (v < want && fpi_now() < end) {
        sleep_ms(20);
        v = metric(w, name, NULL);
    }
    return v;
}

/* A PUSH socket in its own context that sends one good frame to the
 * worker, as a client with `as` (NULL: no CURVE) expecting server key
 * `server_pub`. */
static void *intruder_push(void *ctx, worker *w, const fpp_curve_key *as, const char *server_pub, uint64_t id)
{
    int linger = 0, timeout = 1000;
    void *s = zmq_socket(ctx, ZMQ_PUSH);
    CHECK(s != NULL);
    if (!s) return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    if (as) {
        CHECK(!zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, FPP_Z85_KEY));
        CHECK(!zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, as->public_key, FPP_Z85_KEY));
        CHECK(!zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, as->secret_key, FPP_Z85_KEY));
    }
    CHECK(!zmq_connect(s, w->bind));
    fp_buffer b = {0};
    good_frame(&b, id);
    zmq_send(s, b.data, b.len, 0); /* queued; never delivered */
    fp_buffer_free(&b);
    return s;
}

/* With the cluster key, frames go through exactly; peers without it can
 * neither inject frames (plain, or CURVE with their own key) nor receive
 * them (a next hop that cannot prove it holds the key gets nothing, and
 * the worker is not ready). */
static void test_curve_links(void)
{
    worker w;
    fpp_curve_key key, rogue;
    fp_buffer m = {0};
    char body[256];
    CHECK_OK(fpp_curve_keygen(&key));
    CHECK_OK(fpp_curve_keygen(&rogue));
    if (!worker_start_with(&w, 16, 5, &key, NULL)) goto done;
    for (int i = 0; i < N_REF; i++) CHECK(good_round_trip(&w));

    /* Injection: a plain client, a client with its own key pair that knows
     * the worker's public key, and one that holds the public key only (a
     * key pair needs the secret half: it uses a wrong one). */
    void *ictx = zmq_ctx_new();
    void *in[3] = {intruder_push(ictx, &w, NULL, NULL, 5000), intruder_push(ictx, &w, &rogue, key.public_key, 5001),
                   NULL};
    fpp_curve_key half = {{0}, {0}};
    memcpy(half.public_key, key.public_key, sizeof half.public_key);
    memcpy(half.secret_key, rogue.secret_key, sizeof half.secret_key);
    in[2] = intruder_push(ictx, &w, &half, key.public_key, 5002);
    /* The rogue key reaches the ZAP handler and is refused there; the
     * half key fails earlier, in the handshake (its vouch does not open). */
    CHECK_MSG(metric_reaches(&w, "fogpipe_auth_denied_total", 1) == 1, "the ZAP handler refused %g peers",
              metric(&w, "fogpipe_auth_denied_total", NULL));
    sleep_ms(300);
    CHECK(good_round_trip(&w)); /* the next result is this frame's: nothing else came in */
    CHECK(metric(&w, "fogpipe_frames_in_total", NULL) == N_REF + 1);
    CHECK(errors(&w, NULL) == 0);
    for (int i = 0; i < 3; i++)
        if (in[i]) zmq_close(in[i]);
    zmq_ctx_term(ictx);
    worker_stop(&w);

    /* Reading: the next hop is a socket without the key (plain, or CURVE
     * with another key). The frame waits; the reader gets nothing. */
    for (int mode = 0; mode < 2; mode++) {
        void *rctx = zmq_ctx_new(), *reader = zmq_socket(rctx, ZMQ_PULL);
        int linger = 0, timeout = 1500, one = 1;
        char ep[64];
        size_t n = sizeof ep;
        zmq_setsockopt(reader, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(reader, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        if (mode == 1) {
            zmq_setsockopt(reader, ZMQ_CURVE_SERVER, &one, sizeof one);
            zmq_setsockopt(reader, ZMQ_CURVE_SECRETKEY, rogue.secret_key, FPP_Z85_KEY);
        }
        CHECK(!zmq_bind(reader, "tcp://127.0.0.1:*") && !zmq_getsockopt(reader, ZMQ_LAST_ENDPOINT, ep, &n));
        if (worker_begin(&w, 16, 0.5, &key, ep) && wait_ready(&w, 503, 10, body, sizeof body)) {
            CHECK_MSG(metric_reaches(&w, "fogpipe_handshake_failures_total", 1) >= 1, "mode %d: no failed handshake",
                      mode);
            CHECK(http_get(&w, "/readyz", body, sizeof body) == 503);
            CHECK(open_push(&w));
            fp_buffer b = {0};
            good_frame(&b, 7);
            CHECK(send_msg(&w, b.data, b.len));
            fp_buffer_free(&b);
            CHECK(metric_reaches(&w, "fogpipe_frames_in_total", 1) == 1); /* run, then held */
            CHECK_MSG(!recv_msg(reader, &m), "mode %d: a reader without the key got %zu bytes", mode, m.len);
        }
        worker_stop(&w);
        zmq_close(reader);
        zmq_ctx_term(rctx);
    }
done:
    fp_buffer_free(&m);
    worker_stop(&w);
}

/* ---- an upstream that goes away while the worker is backed up ------------ */

/* A worker whose next hop takes nothing stops reading its input: its
 * receive queue fills and ZeroMQ stops reading that connection. The test's
 * PUSH (the stage before) then goes away, and the worker's next packet on
 * that connection is answered with a reset. libzmq 4.3.4 aborts on that
 * connection's next heartbeat ("Assertion failed: !_io_error
 * (src/stream_engine_base.cpp:331)": an engine whose input stopped marks
 * itself failed when the reset comes, and its heartbeat timer still writes)
 * when the worker's input socket sends heartbeats: a stage stopped for 10 s
 * in the emulated cluster died so. The worker must still be alive several
 * heartbeat intervals later, take frames from a new upstream once its next
 * hop is there, and stop when asked. */
static void test_upstream_gone_backed_up(void)
{
    worker w;
    char next[64], body[256];
    int nport = fpt_free_port(0);
    snprintf(next, sizeof next, "tcp://127.0.0.1:%d", nport);
    if (!nport || !worker_begin(&w, 2, 1, NULL, next)) {
        CHECK_MSG(0, "cannot start the worker");
        worker_stop(&w);
        return;
    }
    double end = fpi_now() + 10;
    while (http_get(&w, "/healthz", body, sizeof body) != 200 && fpi_now() < end && !atomic_load(&w.done))
        sleep_ms(10);
    fp_buffer f = {0};
    good_frame(&f, 0);
    int sent = 0;
    if (open_push(&w))
        for (; sent < 64; sent++)
            if (zmq_send(w.push, f.data, f.len, ZMQ_DONTWAIT) != (int)f.len) break;
    /* the worker takes one frame, cannot send its result and takes no more */
    CHECK_MSG(metric_settles(&w, "fogpipe_frames_in_total", NULL, 1) == 1, "the worker took %g frames",
              metric(&w, "fogpipe_frames_in_total", NULL));
    sleep_ms(500); /* the rest as far as the worker's receive queue */
    zmq_close(w.push);
    w.push = NULL;
    sleep_ms(3500); /* three heartbeat intervals and more */
    CHECK_MSG(!atomic_load(&w.done), "the worker stopped: %s", w.err);
    CHECK_MSG(http_get(&w, "/healthz", body, sizeof body) == 200, "the worker does not answer /healthz");
    /* its next hop comes, and a new stage before it: a new frame's result
     * arrives (after those of the frames it still held) */
    void *pull = zmq_socket(w.ctx, ZMQ_PULL);
    int linger = 0, timeout = 500, got = 0;
    fp_buffer m = {0};
    char why[600] = "no result at all";
    if (pull && !zmq_setsockopt(pull, ZMQ_LINGER, &linger, sizeof linger) &&
        !zmq_setsockopt(pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout) && !zmq_bind(pull, next) && open_push(&w)) {
        good_frame(&f, 1);
        CHECK(send_msg(&w, f.data, f.len));
        for (end = fpi_now() + 15; !got && fpi_now() < end;)
            got = recv_msg(pull, &m) && result_ok(&m, 1, fx.json[1 % N_REF], why, sizeof why);
    }
    CHECK_MSG(got, "after its upstream came back: %s", why);
    if (pull) zmq_close(pull);
    worker_stop(&w);
    fp_buffer_free(&f);
    fp_buffer_free(&m);
    CHECK_MSG(sent >= 8, "only %d frames were sent", sent);
}

/* ---- a TCP relay that records what crosses it -------------------------- */

typedef struct relay {
    int listen_fd, port;  /* where the worker connects */
    int target_port;      /* where the relay forwards (the test's PULL) */
    atomic_int stop;
    pthread_t th;
    uint8_t *seen;        /* bytes from the worker, up to cap */
    size_t len, cap;
} relay;

static void *relay_main(void *arg)
{
    relay *r = arg;
    int a = -1, b = -1;
    uint8_t buf[1 << 14];
    while (!atomic_load(&r->stop)) {
        if (a < 0) {
            struct pollfd p = {r->listen_fd, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) continue;
            a = accept(r->listen_fd, NULL, NULL);
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->target_port)};
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            b = socket(AF_INET, SOCK_STREAM, 0);
            if (a < 0 || b < 0 || connect(b, (struct sockaddr *)&sa, sizeof sa)) goto reset;
            continue;
        }
        struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        if (poll(p, 2, 50) <= 0) continue;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(i ? b : a, buf, sizeof buf);
            if (n <= 0 || write(i ? a : b, buf, (size_t)n) != n) goto reset;
            if (i == 0) {
                size_t k = (size_t)n < r->cap - r->len ? (size_t)n : r->cap - r->len;
                memcpy(r->seen + r->len, buf, k);
                r->len += k;
            }
        }
        continue;
    reset:
        if (a >= 0) close(a);
        if (b >= 0) close(b);
        a = b = -1;
    }
    if (a >= 0) close(a);
    if (b >= 0) close(b);
    return NULL;
}

/* 1 when needle occurs in hay (memmem is a GNU extension). */
static int contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, k)) return 1;
    return 0;
}

/* The bytes on the wire from the worker to its next hop: with CURVE they
 * hold nothing of the results (without, the same check finds them). */
static void test_curve_encrypts(void)
{
    fpp_curve_key key;
    CHECK_OK(fpp_curve_keygen(&key));
    for (int use = 0; use < 2; use++) {
        worker w;
        relay r = {.listen_fd = -1, .cap = 1 << 20};
        r.seen = malloc(r.cap);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t sl = sizeof sa;
        r.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(r.seen && r.listen_fd >= 0 && !bind(r.listen_fd, (struct sockaddr *)&sa, sizeof sa) &&
              !listen(r.listen_fd, 4) && !getsockname(r.listen_fd, (struct sockaddr *)&sa, &sl));
        r.port = ntohs(sa.sin_port);
        char next[64];
        snprintf(next, sizeof next, "tcp://127.0.0.1:%d", r.port);
        int started = 0;
        if (r.seen && worker_begin(&w, 16, 5, use ? &key : NULL, next)) {
            const char *colon = strrchr(w.results, ':');
            r.target_port = colon ? atoi(colon + 1) : 0;
            started = !pthread_create(&r.th, NULL, relay_main, &r);
            char body[256];
            CHECK(started && wait_ready(&w, 200, 10, body, sizeof body) && open_push(&w));
            for (int i = 0; i < 2 * N_REF && w.push; i++) CHECK(good_round_trip(&w));
        }
        worker_stop(&w);
        if (started) {
            atomic_store(&r.stop, 1);
            pthread_join(r.th, NULL);
        }
        static const char marker[] = "\"detections\"";
        int found = r.seen && contains(r.seen, r.len, marker);
        CHECK_MSG(r.len > 1000, "the relay saw %zu bytes", r.len);
        CHECK_MSG(found == !use, "%s: the results %s readable on the wire", use ? "CURVE" : "plain",
                  found ? "are" : "are not");
        if (r.listen_fd >= 0) close(r.listen_fd);
        free(r.seen);
    }
}

TEST_LIST = {
    {"plan", test_plan},
    {"good_frames", test_good_frames},
    {"malformed", test_malformed},
    {"oversize", test_oversize},
    {"duplicates", test_duplicates},
    {"stop_drains", test_stop_drains},
    {"stop_next_hop_gone", test_stop_next_hop_gone},
    {"upstream_gone_backed_up", test_upstream_gone_backed_up},
    {"curve_key_files", test_curve_key_files},
    {"curve_links", test_curve_links},
    {"curve_encrypts", test_curve_encrypts},
    {NULL, NULL},
};
