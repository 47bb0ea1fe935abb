/* stage.c — a pipeline stage worker: receive a frame, validate it, run the
 * stage's layers, encode the outgoing cut with its codec (or, on the last
 * stage, decode boxes into a result), send; with health, readiness and
 * Prometheus metrics over HTTP, and a drain on SIGTERM. One thread runs the
 * loop; ZeroMQ's I/O thread moves the bytes meanwhile. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/common.h"
#include "fogpipe/fmap.h"
#include "pipeline/curve.h"
#include "pipeline/http.h"
#include "pipeline/metrics.h"
#include "pipeline/pipeline.h"

enum { FPI_RESULT_CACHE = 256 }; /* recent results the last stage can answer again */
enum { FPI_QUEUE_MAX = 64 };     /* frames taken from the socket, not yet run */

typedef struct {
    uint64_t id;
    char *json; /* owned; NULL = empty slot */
    size_t len;
} fpi_cached;

typedef struct fpi_stage {
    const fpp_stage_opts *o;
    volatile sig_atomic_t *stop;
    fp_plan plan;
    const fp_plan_stage *ps;
    fp_net *net;
    int index, last_stage;
    int in_cut[FP_FRAME_MAX_TENSORS], n_in;   /* tensors a features frame must carry */
    int out_cut[FP_FRAME_MAX_TENSORS], n_out; /* tensors sent on */
    fp_fmap_codec codec;                      /* of the outgoing cut */
    char codec_name[32];
    uint64_t max_raw;                         /* bound on an incoming frame's raw bytes */
    float thresh, nms;
    void *ctx, *in, *out, *mon;
    fpp_zap *zap;                              /* CURVE authenticator, NULL without a key */
    uint64_t denied_seen;                      /* its refusals already counted */
    struct {                                   /* next-hop connections by address */
        char addr[FPP_MAX_ENDPOINT];
        int up;                                /* handshake done, not disconnected */
    } hops[2 * FPP_MAX_PEERS];
    int n_hops;
    uint64_t handshake_failures;
    fpp_metrics *metrics;
    fpp_http *http;
    atomic_int peers;                          /* connected next-hop peers */
    atomic_int ready;
    zmq_msg_t queue[FPI_QUEUE_MAX];
    int q_head, q_len, q_cap;
    fp_buffer enc[FP_FRAME_MAX_TENSORS];       /* encoded tensors of the outgoing frame */
    fp_buffer frame;                           /* the outgoing frame */
    fp_buffer scratch;                         /* decompression */
    fpi_cached cache[FPI_RESULT_CACHE];
    int cache_next;
    double drain_deadline;                     /* 0 until stopping */
} fpi_stage;

static const double fpi_compute_buckets[] = {.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

static void fpi_declare_metrics(fpp_metrics *m)
{
    fpp_metrics_declare(m, "fogpipe_frames_in_total", FPP_COUNTER, "Frames received and accepted.", "kind", NULL, 0);
    fpp_metrics_declare(m, "fogpipe_frames_out_total", FPP_COUNTER, "Frames sent on.", "kind", NULL, 0);
    fpp_metrics_declare(m, "fogpipe_bytes_in_total", FPP_COUNTER, "Frame bytes received, by the codec of their tensors.",
                        "codec", NULL, 0);
    fpp_metrics_declare(m, "fogpipe_bytes_out_total", FPP_COUNTER, "Frame bytes sent, by the codec of their tensors.",
                        "codec", NULL, 0);
    fpp_metrics_declare(m, "fogpipe_compute_seconds", FPP_HISTOGRAM, "Time running the stage's layers per frame.", NULL,
                        fpi_compute_buckets, (int)(sizeof fpi_compute_buckets / sizeof fpi_compute_buckets[0]));
    fpp_metrics_declare(m, "fogpipe_codec_seconds_total", FPP_COUNTER, "Time decoding and encoding feature maps.", NULL,
                        NULL, 0);
    fpp_metrics_declare(m, "fogpipe_queue_depth", FPP_GAUGE, "Frames received and waiting to run.", NULL, NULL, 0);
    fpp_metrics_declare(m, "fogpipe_errors_total", FPP_COUNTER, "Frames refused or failed, by kind.", "kind", NULL, 0);
    fpp_metrics_declare(m, "fogpipe_duplicates_total", FPP_COUNTER,
                        "Frames the last stage had answered already (answered from its cache).", NULL, NULL, 0);
    fpp_metrics_declare(m, "fogpipe_peers_connected", FPP_GAUGE,
                        "Peers of the outgoing socket connected and through the handshake.", NULL, NULL, 0);
    fpp_metrics_declare(m, "fogpipe_handshake_failures_total", FPP_COUNTER,
                        "Handshakes with the next hop that failed (with CURVE: the peer does not hold the key).", NULL,
                        NULL, 0);
    fpp_metrics_declare(m, "fogpipe_auth_denied_total", FPP_COUNTER,
                        "Peers refused on the input because they do not hold the cluster's CURVE key.", NULL, NULL, 0);
    fpp_metrics_declare(m, "fogpipe_ready", FPP_GAUGE, "1 when weights are loaded and a peer is connected.", NULL, NULL, 0);
    fpp_metrics_declare(m, "fogpipe_weight_bytes", FPP_GAUGE, "Bytes of weights this stage holds.", NULL, NULL, 0);
    fpp_metrics_declare(m, "fogpipe_arena_bytes", FPP_GAUGE, "Bytes of activations and scratch this stage holds.", NULL,
                        NULL, 0);
    fpp_metrics_declare(m, "process_cpu_seconds_total", FPP_COUNTER,
                        "Total user and system CPU time spent in seconds (every thread of the stage).", NULL, NULL, 0);
}

static void fpi_http_handler(void *user, const fpp_http_request *req, fpp_http_response *resp)
{
    fpi_stage *s = user;
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        fpp_http_reply(resp, 405, "text/plain", "only GET\n");
    } else if (!strcmp(req->path, "/healthz")) {
        fpp_http_reply(resp, 200, "text/plain", "ok\n");
    } else if (!strcmp(req->path, "/readyz")) {
        int peers = atomic_load(&s->peers);
        if (atomic_load(&s->ready))
            fpp_http_reply(resp, 200, "text/plain", "ready: stage %d, layers %d..%d, %d peer(s) connected\n", s->index,
                           s->ps->first, s->ps->last, peers);
        else
            fpp_http_reply(resp, 503, "text/plain", "not ready: %s\n",
                           peers ? "stopping" : "no peer of the next hop is connected");
    } else if (!strcmp(req->path, "/metrics")) {
        fpp_metrics_raise(s->metrics, "process_cpu_seconds_total", NULL, fpi_process_cpu_s());
        fpp_metrics_reply(s->metrics, resp);
    } else {
        fpp_http_reply(resp, 404, "text/plain", "not found: try /healthz, /readyz or /metrics\n");
    }
}

/* Sets the usual options on a socket: the input (max_msg > 0) or the
 * output (max_msg == 0). */
static fp_status fpi_zmq_opts(void *sock, int hwm, int64_t max_msg)
{
    /* Heartbeats find a next hop that vanished without closing its
     * connection (a device that lost power) in seconds instead of TCP's
     * minutes. Only the output sends them (the stage before answers them
     * all the same, and sends its own): libzmq 4.3.4 aborts the process
     * when a connection whose reading stopped (the input queue full: the
     * next hop is slow or gone) is reset by its peer and then sends a
     * heartbeat (src/stream_engine_base.cpp:331, !_io_error; test_stage
     * upstream_gone_backed_up). */
    int linger = 0, ivl = 100, ivl_max = 1000, one = 1, hb = 1000, hb_timeout = 5000;
    if (zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm) || zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        (max_msg == 0 && zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb)) ||
        (max_msg == 0 && zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout)) ||
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) ||
        (max_msg > 0 && zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg)) ||
        (max_msg == 0 && zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof one)))
        return fpi_error(FP_EIO, "zmq_setsockopt: %s", zmq_strerror(zmq_errno()));
    return FP_OK;
}

/* Short name of the codec a frame's tensors use ("int8+lz4"), for metrics. */
static const char *fpi_frame_codec(const fp_frame *f, char *buf, size_t n)
{
    if (f->kind == FP_FRAME_IMAGE) return "image";
    if (f->kind == FP_FRAME_RESULT) return "result";
    if (f->n_tensors == 0) return "none";
    fp_fmap_codec c = {f->tensors[0].dtype, f->tensors[0].compress};
    if (c.dtype == FP_DTYPE_U8) return "u8";
    return fp_fmap_codec_name(c, buf, n);
}

static void fpi_count_error(fpi_stage *s, fp_status st, const char *kind, uint64_t id)
{
    const char *k = kind;
    if (!k) k = st == FP_ECORRUPT ? "corrupt" : st == FP_ETOOBIG ? "too_big" : "proto";
    fpp_metrics_add(s->metrics, "fogpipe_errors_total", k, 1);
    fpi_log(FPI_LOG_WARN, "stage %d%s%s: frame %llu dropped (%s): %s", s->index, s->o->name ? " " : "",
            s->o->name ? s->o->name : "", (unsigned long long)id, k, fp_last_error());
}

/* Marks the next-hop connection at `addr` up or down; the number up. */
static int fpi_hop_state(fpi_stage *s, const char *addr, int up)
{
    int i = 0;
    while (i < s->n_hops && strcmp(s->hops[i].addr, addr)) i++;
    if (i == s->n_hops) {
        if (!up) goto count;
        if (i == (int)(sizeof s->hops / sizeof s->hops[0])) { /* full: reuse a slot that is down */
            for (i = 0; i < s->n_hops && s->hops[i].up; i++) {}
            if (i == s->n_hops) goto count;
        } else {
            s->n_hops++;
        }
        snprintf(s->hops[i].addr, sizeof s->hops[i].addr, "%s", addr);
    }
    s->hops[i].up = up;
count:;
    int n = 0;
    for (i = 0; i < s->n_hops; i++) n += s->hops[i].up;
    return n;
}

/* Reads the outgoing socket's events: a peer counts as connected once its
 * handshake succeeded (with CURVE: it proved it holds the key), until it
 * disconnects. Failed handshakes are logged and counted. */
static void fpi_poll_monitor(fpi_stage *s)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, s->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2) memcpy(&event, zmq_msg_data(&ev), 2);
        zmq_msg_close(&ev);
        zmq_msg_init(&addr);
        zmq_msg_recv(&addr, s->mon, 0); /* the endpoint: second part, always follows */
        char where[FPP_MAX_ENDPOINT];
        size_t n = zmq_msg_size(&addr) < sizeof where - 1 ? zmq_msg_size(&addr) : sizeof where - 1;
        memcpy(where, zmq_msg_data(&addr), n);
        where[n] = '\0';
        zmq_msg_close(&addr);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) atomic_store(&s->peers, fpi_hop_state(s, where, 1));
        if (event == ZMQ_EVENT_DISCONNECTED) atomic_store(&s->peers, fpi_hop_state(s, where, 0));
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
            event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            fpp_metrics_add(s->metrics, "fogpipe_handshake_failures_total", NULL, 1);
            if (++s->handshake_failures <= 10 || s->handshake_failures % 1000 == 0)
                fpi_log(FPI_LOG_WARN, "stage %d: handshake with the next hop at %s failed%s (%llu so far)", s->index,
                        where, s->zap ? ": it does not hold the cluster's CURVE key, or runs without one" : "",
                        (unsigned long long)s->handshake_failures);
        }
    }
    uint64_t denied = fpp_zap_denied(s->zap);
    if (denied > s->denied_seen) {
        fpp_metrics_add(s->metrics, "fogpipe_auth_denied_total", NULL, (double)(denied - s->denied_seen));
        s->denied_seen = denied;
    }
    int peers = atomic_load(&s->peers);
    atomic_store(&s->ready, peers > 0 && s->drain_deadline == 0);
    fpp_metrics_set(s->metrics, "fogpipe_peers_connected", NULL, peers);
    fpp_metrics_set(s->metrics, "fogpipe_ready", NULL, atomic_load(&s->ready));
}

static double fpi_drain_deadline(const fpi_stage *s) { return fpi_now() + (s->o->drain_s > 0 ? s->o->drain_s : 10); }

/* Sends len bytes; waits while the next hop is full (the backpressure),
 * giving up only when draining past the deadline. */
static fp_status fpi_send(fpi_stage *s, const void *data, size_t len, const char *codec, const char *kind)
{
    for (;;) {
        if (zmq_send(s->out, data, len, ZMQ_DONTWAIT) >= 0) break;
        if (zmq_errno() != EAGAIN && zmq_errno() != EINTR)
            return fpi_error(FP_EIO, "send: %s", zmq_strerror(zmq_errno()));
        /* Stopped while the next hop takes nothing (gone): the drain's
         * clock starts now, or a SIGTERM would wait for a peer forever. */
        if (s->drain_deadline == 0 && *s->stop) s->drain_deadline = fpi_drain_deadline(s);
        if (s->drain_deadline > 0 && fpi_now() > s->drain_deadline)
            return fpi_error(FP_ETIMEDOUT, "send: the next hop took nothing before the drain deadline");
        zmq_pollitem_t it = {s->out, 0, ZMQ_POLLOUT, 0};
        zmq_poll(&it, 1, 100);
        fpi_poll_monitor(s);
    }
    fpp_metrics_add(s->metrics, "fogpipe_frames_out_total", kind, 1);
    fpp_metrics_add(s->metrics, "fogpipe_bytes_out_total", codec, (double)len);
    return FP_OK;
}

/* Encodes f into s->frame, growing it as needed. */
static fp_status fpi_encode(fpi_stage *s, const fp_frame *f)
{
    size_t need = fp_frame_encoded_size(f);
    if (need > s->frame.cap) {
        uint8_t *p = realloc(s->frame.data, need);
        if (!p) return fpi_error(FP_ENOMEM, "out of memory for a %zu-byte frame", need);
        s->frame.data = p;
        s->frame.cap = need;
    }
    return fp_frame_encode(f, s->frame.data, s->frame.cap, &s->frame.len);
}

/* Encodes a result frame (JSON) into s->frame. */
static fp_status fpi_result_frame(fpi_stage *s, uint64_t id, const fp_frame *in, const char *json, size_t len)
{
    fp_frame f = {.kind = FP_FRAME_RESULT, .id = id, .n_tensors = 1, .image_w = in->image_w, .image_h = in->image_h};
    f.tensors[0] = (fp_frame_tensor){.layer = -1, .dtype = FP_DTYPE_U8, .compress = FP_COMPRESS_NONE, .rank = 1,
                                     .dims = {(uint32_t)len, 1, 1, 1}, .raw_len = len,
                                     .data = (const uint8_t *)json, .len = len};
    return fpi_encode(s, &f);
}

/* Answers frame `id` with an error result, so the gateway does not wait. */
static void fpi_send_error(fpi_stage *s, const fp_frame *in, const char *kind)
{
    char *json = NULL, msg[600];
    snprintf(msg, sizeof msg, "stage %d: %s", s->index, fp_last_error());
    fpi_count_error(s, FP_EINVAL, kind, in->id);
    if (fpp_error_json(msg, &json) || fpi_result_frame(s, in->id, in, json, strlen(json)) ||
        fpi_send(s, s->frame.data, s->frame.len, "result", "error"))
        fpi_log(FPI_LOG_ERROR, "stage %d: could not answer frame %llu: %s", s->index, (unsigned long long)in->id,
                fp_last_error());
    free(json);
}

static fpi_cached *fpi_cache_find(fpi_stage *s, uint64_t id)
{
    for (int i = 0; i < FPI_RESULT_CACHE; i++)
        if (s->cache[i].json && s->cache[i].id == id) return &s->cache[i];
    return NULL;
}

/* Puts the tensors of a features frame where the layers read them. */
static fp_status fpi_load_tensors(fpi_stage *s, const fp_frame *f)
{
    if (f->n_tensors != s->n_in)
        return fpi_error(FP_EPROTO, "frame %llu carries %d tensors; stage %d takes the %d of the cut after layer %d",
                         (unsigned long long)f->id, f->n_tensors, s->index, s->n_in, s->ps->first - 1);
    for (int i = 0; i < f->n_tensors; i++) {
        const fp_frame_tensor *t = &f->tensors[i];
        int j = s->in_cut[i];
        if (t->layer != j)
            return fpi_error(FP_EPROTO, "frame %llu: tensor %d comes from layer %d; stage %d expects layer %d",
                             (unsigned long long)f->id, i, t->layer, s->index, j);
        fp_shape want = fpp_tensor_shape(s->net, j);
        float *dst = j < 0 ? fp_net_input(s->net) : fp_net_output_mut(s->net, j);
        int dims_ok = dst && t->rank == 3 && t->dims[0] == (uint32_t)want.c && t->dims[1] == (uint32_t)want.h &&
                      t->dims[2] == (uint32_t)want.w;
        if (!dims_ok)
            return fpi_error(FP_EPROTO, "frame %llu: tensor of layer %d is not %dx%dx%d", (unsigned long long)f->id, j,
                             want.c, want.h, want.w);
        if (t->dtype == FP_DTYPE_U8) return fpi_error(FP_EPROTO, "frame %llu: a feature map of bytes", (unsigned long long)f->id);
        fp_status st = fp_fmap_decode(t, dst, fp_shape_count(want), &s->scratch);
        if (st) return st;
    }
    return FP_OK;
}

/* Decodes an image frame (stage 0) into *im, which must have the
 * network's channels. */
static fp_status fpi_load_image(const fpi_stage *s, fp_frame *f, fp_image *im)
{
    char name[64];
    snprintf(name, sizeof name, "frame %llu", (unsigned long long)f->id);
    const fp_frame_tensor *t = &f->tensors[0];
    fp_status st = fp_image_decode(t->data, t->len, name, im);
    int c = fp_net_input_shape(s->net).c;
    if (!st && im->c != c)
        st = fpi_error(FP_EUNSUPPORTED, "%s: the network takes %d channels; the image has %d", name, c, im->c);
    if (!st) {
        f->image_w = (uint32_t)im->w;
        f->image_h = (uint32_t)im->h;
    }
    return st;
}

/* Stage 0: the image prepared for the network and the stage's layers run
 * (fp_detect_run: where the first layer reads the input row by row, the
 * rows are prepared as it reads them). */
static fp_status fpi_run_image(fpi_stage *s, const fp_frame *f, const fp_image *im)
{
    fp_status st;
    if (s->ps->first == 0) {
        st = fp_detect_run(s->net, im, s->ps->last);
    } else if (!(st = fp_detect_prepare_input(s->net, im))) {
        st = fp_net_run(s->net, s->ps->first, s->ps->last, NULL, NULL);
    }
    return st ? fpi_error_context(st, "frame %llu", (unsigned long long)f->id) : FP_OK;
}

/* The last stage: boxes into a cached result frame. */
static fp_status fpi_make_result(fpi_stage *s, const fp_frame *f)
{
    if (!f->image_w || !f->image_h)
        return fpi_error(FP_EPROTO, "frame %llu does not say the image's size; boxes cannot be mapped",
                         (unsigned long long)f->id);
    fp_detection *d = NULL;
    int n = 0;
    char *json = NULL;
    fp_status st = fp_detect_boxes(s->net, (int)f->image_w, (int)f->image_h, s->thresh, s->nms, &d, &n);
    if (!st) st = fpp_result_json((int)f->image_w, (int)f->image_h, d, n, &json);
    free(d);
    if (!st) st = fpi_result_frame(s, f->id, f, json, strlen(json));
    if (st) {
        free(json);
        return st;
    }
    fpi_cached *c = &s->cache[s->cache_next];
    s->cache_next = (s->cache_next + 1) % FPI_RESULT_CACHE;
    free(c->json);
    *c = (fpi_cached){f->id, json, strlen(json)};
    return FP_OK;
}

/* Encodes the outgoing cut into s->frame. */
static fp_status fpi_features_frame(fpi_stage *s, const fp_frame *in)
{
    fp_frame f = {.kind = FP_FRAME_FEATURES, .id = in->id, .n_tensors = s->n_out, .image_w = in->image_w,
                  .image_h = in->image_h};
    for (int i = 0; i < s->n_out; i++) {
        int j = s->out_cut[i];
        fp_shape sh = fpp_tensor_shape(s->net, j);
        const float *x = j < 0 ? fp_net_input(s->net) : fp_net_output(s->net, j);
        uint32_t dims[3] = {(uint32_t)sh.c, (uint32_t)sh.h, (uint32_t)sh.w};
        fp_status st = x ? fp_fmap_encode(s->codec, j, x, dims, 3, &s->enc[i], &f.tensors[i])
                         : fpi_error(FP_ESTATE, "tensor %d is not held by stage %d", j, s->index);
        if (st) return st;
    }
    return fpi_encode(s, &f);
}

/* Handles one received message. */
static void fpi_process(fpi_stage *s, const uint8_t *buf, size_t len)
{
    fp_frame f;
    char cbuf[32];
    fp_status st = fp_frame_decode(buf, len, s->max_raw, &f);
    if (st) {
        fpi_count_error(s, st, NULL, 0);
        return;
    }
    const char *in_codec = fpi_frame_codec(&f, cbuf, sizeof cbuf);
    fpp_metrics_add(s->metrics, "fogpipe_bytes_in_total", in_codec, (double)len);
    if (f.kind == FP_FRAME_RESULT) { /* an earlier stage's error answer: pass it on */
        fpp_metrics_add(s->metrics, "fogpipe_frames_in_total", "result", 1);
        fpi_send(s, buf, len, "result", "result");
        return;
    }
    fpi_cached *c = s->last_stage ? fpi_cache_find(s, f.id) : NULL;
    if (c) {
        fpp_metrics_add(s->metrics, "fogpipe_duplicates_total", NULL, 1);
        if (!fpi_result_frame(s, f.id, &f, c->json, c->len)) fpi_send(s, s->frame.data, s->frame.len, "result", "result");
        return;
    }
    double t0 = fpi_now();
    fp_image im = {0};
    if (f.kind == FP_FRAME_IMAGE) {
        if (s->index != 0) {
            fpi_error(FP_EPROTO, "an image frame reached stage %d (only stage 0 decodes images)", s->index);
            fpi_count_error(s, FP_EPROTO, "unexpected", f.id);
            return;
        }
        fpp_metrics_add(s->metrics, "fogpipe_frames_in_total", "image", 1);
        if ((st = fpi_load_image(s, &f, &im))) {
            fp_image_free(&im);
            fpi_send_error(s, &f, "image");
            return;
        }
    } else {
        if ((st = fpi_load_tensors(s, &f))) {
            fpi_count_error(s, st, NULL, f.id);
            return;
        }
        fpp_metrics_add(s->metrics, "fogpipe_frames_in_total", "features", 1);
    }
    double t1 = fpi_now();
    st = im.data ? fpi_run_image(s, &f, &im) : fp_net_run(s->net, s->ps->first, s->ps->last, NULL, NULL);
    fp_image_free(&im);
    double t2 = fpi_now();
    fpp_metrics_observe(s->metrics, "fogpipe_compute_seconds", NULL, t2 - t1);
    if (!st) st = s->last_stage ? fpi_make_result(s, &f) : fpi_features_frame(s, &f);
    if (st) {
        fpi_send_error(s, &f, "compute");
        return;
    }
    fpp_metrics_add(s->metrics, "fogpipe_codec_seconds_total", NULL, (t1 - t0) + (fpi_now() - t2));
    if (s->last_stage) {
        fpi_send(s, s->frame.data, s->frame.len, "result", "result");
    } else {
        fp_fmap_codec_name(s->codec, cbuf, sizeof cbuf);
        if ((st = fpi_send(s, s->frame.data, s->frame.len, cbuf, "features")))
            fpi_count_error(s, st, "send", f.id);
    }
}

/* Moves every message the socket has (without waiting) into the queue. */
static void fpi_fill_queue(fpi_stage *s)
{
    while (s->q_len < s->q_cap) {
        zmq_msg_t *m = &s->queue[(s->q_head + s->q_len) % FPI_QUEUE_MAX];
        zmq_msg_init(m);
        if (zmq_msg_recv(m, s->in, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(m);
            break;
        }
        s->q_len++;
    }
    fpp_metrics_set(s->metrics, "fogpipe_queue_depth", NULL, s->q_len);
}

static void fpi_run_one(fpi_stage *s)
{
    zmq_msg_t *m = &s->queue[s->q_head];
    fpi_process(s, zmq_msg_data(m), zmq_msg_size(m));
    zmq_msg_close(m);
    s->q_head = (s->q_head + 1) % FPI_QUEUE_MAX;
    s->q_len--;
    fpp_metrics_set(s->metrics, "fogpipe_queue_depth", NULL, s->q_len);
}

/* Loads the plan and the model, checks that they agree on the cuts. */
static fp_status fpi_stage_init(fpi_stage *s)
{
    const fpp_stage_opts *o = s->o;
    fp_status st = fp_plan_load(o->plan, NULL, &s->plan);
    if (st) return st;
    if (o->stage < 0 || o->stage >= s->plan.n_stages)
        return fpi_error(FP_EINVAL, "%s has %d stages (0..%d); there is no stage %d", o->plan, s->plan.n_stages,
                         s->plan.n_stages - 1, o->stage);
    s->index = o->stage;
    s->ps = &s->plan.stages[o->stage];
    s->last_stage = o->stage == s->plan.n_stages - 1;
    if ((st = fpp_load_plan_model(&s->plan, o->stage, &o->paths, o->threads, &s->net))) return st;
    if (s->last_stage && fp_detect_input_prep(s->net) == FP_DETECT_PREP_NONE)
        return fpi_error(FP_EUNSUPPORTED, "the model has no detection head: the last stage cannot make results");
    s->n_in = fp_net_cut(s->net, s->ps->first - 1, s->in_cut, FP_FRAME_MAX_TENSORS);
    s->n_out = s->last_stage ? 0 : fp_net_cut(s->net, s->ps->last, s->out_cut, FP_FRAME_MAX_TENSORS);
    if (s->n_in > FP_FRAME_MAX_TENSORS || s->n_out > FP_FRAME_MAX_TENSORS)
        return fpi_error(FP_EUNSUPPORTED, "a cut of stage %d carries more than %d tensors (the wire format's limit)",
                         s->index, FP_FRAME_MAX_TENSORS);
    const fp_part_cut *pc = &s->ps->out;
    int same = s->last_stage || pc->n_tensors == s->n_out;
    for (int i = 0; same && i < s->n_out; i++) same = pc->tensors[i] == s->out_cut[i];
    if (!same) return fpi_error(FP_EINVAL, "%s: stage %d's out.tensors disagree with the model's cut after layer %d",
                                o->plan, s->index, s->ps->last);
    if ((st = fp_codec_fmap(s->ps->out_codec, &s->codec))) return st;
    fp_fmap_codec_name(s->codec, s->codec_name, sizeof s->codec_name);
    s->max_raw = fpp_stage_max_raw(&s->plan, s->net, s->index, o->max_image_bytes);
    float t, n;
    fp_detect_defaults(s->net, &t, &n);
    s->thresh = o->thresh >= 0 ? (float)o->thresh : t;
    s->nms = o->nms >= 0 ? (float)o->nms : n;
    s->q_cap = o->hwm < 1 ? 1 : o->hwm > FPI_QUEUE_MAX ? FPI_QUEUE_MAX : o->hwm;
    return FP_OK;
}

static fp_status fpi_stage_sockets(fpi_stage *s)
{
    const fpp_stage_opts *o = s->o;
    char mon[64];
    s->ctx = zmq_ctx_new();
    if (!s->ctx) return fpi_error(FP_EIO, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    s->in = zmq_socket(s->ctx, ZMQ_PULL);
    s->out = zmq_socket(s->ctx, ZMQ_PUSH);
    if (!s->in || !s->out) return fpi_error(FP_EIO, "zmq_socket: %s", zmq_strerror(zmq_errno()));
    /* ZeroMQ closes a connection whose message exceeds this: the frame
     * bound plus headers and lz4/zstd's worst-case growth. */
    int64_t max_msg = (int64_t)(s->max_raw + s->max_raw / 64 + 65536 + FP_FRAME_HEADER_BYTES +
                                FP_FRAME_MAX_TENSORS * FP_FRAME_TENSOR_BYTES);
    fp_status st;
    if ((st = fpi_zmq_opts(s->in, o->hwm, max_msg)) || (st = fpi_zmq_opts(s->out, o->hwm, 0))) return st;
    if (o->curve && ((st = fpp_zap_start(s->ctx, o->curve, &s->zap)) || (st = fpp_curve_server(s->in, o->curve)) ||
                     (st = fpp_curve_client(s->out, o->curve))))
        return st;
    if (zmq_bind(s->in, o->bind))
        return fpi_error(FP_EIO, "cannot bind %s: %s", o->bind, zmq_strerror(zmq_errno()));
    snprintf(mon, sizeof mon, "inproc://fogpipe-monitor-%p", (void *)s);
    if (zmq_socket_monitor(s->out, mon, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL))
        return fpi_error(FP_EIO, "zmq_socket_monitor: %s", zmq_strerror(zmq_errno()));
    s->mon = zmq_socket(s->ctx, ZMQ_PAIR);
    if (!s->mon || zmq_connect(s->mon, mon)) return fpi_error(FP_EIO, "monitor: %s", zmq_strerror(zmq_errno()));
    for (int i = 0; i < o->next.n; i++)
        if (zmq_connect(s->out, o->next.ep[i]))
            return fpi_error(FP_EIO, "cannot connect to %s: %s", o->next.ep[i], zmq_strerror(zmq_errno()));
    return FP_OK;
}

static void fpi_stage_free(fpi_stage *s)
{
    fpp_http_stop(s->http);
    while (s->q_len) {
        zmq_msg_close(&s->queue[s->q_head]);
        s->q_head = (s->q_head + 1) % FPI_QUEUE_MAX;
        s->q_len--;
    }
    if (s->out) zmq_socket_monitor(s->out, NULL, 0);
    if (s->mon) zmq_close(s->mon);
    if (s->in) zmq_close(s->in);
    if (s->out) zmq_close(s->out);
    fpp_zap_stop(s->zap);
    if (s->ctx) zmq_ctx_term(s->ctx);
    fp_net_destroy(s->net);
    fpp_metrics_destroy(s->metrics);
    for (int i = 0; i < FP_FRAME_MAX_TENSORS; i++) fp_buffer_free(&s->enc[i]);
    fp_buffer_free(&s->frame);
    fp_buffer_free(&s->scratch);
    for (int i = 0; i < FPI_RESULT_CACHE; i++) free(s->cache[i].json);
    free(s);
}

fp_status fpp_stage_serve(const fpp_stage_opts *o, volatile sig_atomic_t *stop)
{
    fpi_stage *s = calloc(1, sizeof *s);
    if (!s) return fpi_error(FP_ENOMEM, "out of memory");
    s->o = o;
    s->stop = stop;
    fp_status st = fpp_metrics_create(&s->metrics);
    if (!st) {
        fpi_declare_metrics(s->metrics);
        st = fpi_stage_init(s);
    }
    if (!st && o->http_host) st = fpp_http_start(o->http_host, o->http_port, 0, fpi_http_handler, s, &s->http);
    if (!st) st = fpi_stage_sockets(s);
    if (st) {
        fpi_stage_free(s);
        return st;
    }
    fpp_metrics_set(s->metrics, "fogpipe_weight_bytes", NULL, (double)fp_net_weight_bytes(s->net));
    fpp_metrics_set(s->metrics, "fogpipe_arena_bytes", NULL, (double)fp_net_arena_bytes(s->net));
    fpi_log(FPI_LOG_INFO, "stage %d: layers %d..%d, %s in, %d tensor(s) out as %s, %.1f MiB weights, %.1f MiB arena",
            s->index, s->ps->first, s->ps->last, o->bind, s->n_out, s->last_stage ? "results" : s->codec_name,
            fp_net_weight_bytes(s->net) / 1048576.0, fp_net_arena_bytes(s->net) / 1048576.0);
    while (!*stop) {
        fpi_poll_monitor(s);
        fpi_fill_queue(s);
        if (s->q_len) {
            fpi_run_one(s);
            continue;
        }
        zmq_pollitem_t items[2] = {{s->in, 0, ZMQ_POLLIN, 0}, {s->mon, 0, ZMQ_POLLIN, 0}};
        zmq_poll(items, 2, 200);
    }
    /* Drain: take what the socket already holds, stop listening, finish
     * and send it all; frames still in the network are sent again by the
     * gateway after its timeout. */
    if (s->drain_deadline == 0) s->drain_deadline = fpi_drain_deadline(s);
    fpi_poll_monitor(s);
    s->q_cap = FPI_QUEUE_MAX;
    fpi_fill_queue(s);
    zmq_unbind(s->in, o->bind);
    int drained = s->q_len;
    while (s->q_len) fpi_run_one(s);
    int linger = (int)((s->drain_deadline - fpi_now()) * 1000);
    linger = linger < 0 ? 0 : linger;
    zmq_setsockopt(s->out, ZMQ_LINGER, &linger, sizeof linger);
    fpi_log(FPI_LOG_INFO, "stage %d: stopped after draining %d frame(s)", s->index, drained);
    fpi_stage_free(s);
    return FP_OK;
}
