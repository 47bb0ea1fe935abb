/* bench_transport.c — the raw transport rate of the pipeline's links: MB/s
 * of feature-map payload (float32 bytes, 1 MB = 1e6 bytes) through two
 * ZeroMQ tcp://127.0.0.1 hops, against memcpy of the same bytes.
 *
 *     sender ──PUSH/PULL──► relay (a no-compute stage) ──PUSH/PULL──► sink
 *
 * Three threads of this process, each with its own ZeroMQ context (one I/O
 * thread each). The sender encodes every frame as a stage does
 * (fp_fmap_encode + fp_frame_encode) and sends it; the relay receives it,
 * validates it (fp_frame_decode), decodes the feature map into floats
 * (fp_fmap_decode), encodes it again with the same codec and sends it on;
 * the sink receives, validates and decodes into floats. The rate is the
 * sink's, from the end of the warm-up frames to the last frame. The "raw"
 * rows have the relay forward the message untouched (ZeroMQ alone). The
 * memcpy row copies each frame's float32 bytes twice (one copy per hop),
 * single-threaded. High-water mark 2 on every socket, as `fogpipe run`.
 *
 * Values are synthetic (a smooth field plus noise through a leaky ReLU, as
 * a convolution's output looks), so lz4's ratio is only indicative.
 *
 *   bench_transport [MIB_PER_RUN=128] [ROUNDS=3] [HWM=2]
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/common.h"
#include "fogpipe/fmap.h"
#include "fogpipe/frame.h"

enum { BT_WARMUP = 5 };

typedef struct {
    uint32_t dims[3];
    const char *codec; /* fmap codec name; "raw" = codec none, the relay forwards bytes */
    int frames;        /* timed frames (after BT_WARMUP) */
    int hwm;
    const float *x;    /* the feature map */
    /* rendezvous: endpoints the binding threads publish */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char sink_ep[128], relay_ep[128];
    /* results */
    double t0, t1;     /* sink: after the warm-up frames, after the last */
    size_t wire_bytes; /* bytes of one frame as sent (second hop) */
    int failed;
    char error[256];
} bt_run;

static void bt_fail(bt_run *r, const char *who, const char *what)
{
    pthread_mutex_lock(&r->mu);
    if (!r->failed) snprintf(r->error, sizeof r->error, "%s: %s", who, what);
    r->failed = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void bt_publish(bt_run *r, char *slot, void *sock)
{
    size_t n = 128;
    pthread_mutex_lock(&r->mu);
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, slot, &n);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits until *slot is set (or a thread failed); 0 when set. */
static int bt_wait(bt_run *r, const char *slot)
{
    pthread_mutex_lock(&r->mu);
    while (!slot[0] && !r->failed) pthread_cond_wait(&r->cv, &r->mu);
    int failed = !slot[0];
    pthread_mutex_unlock(&r->mu);
    return failed;
}

static void *bt_socket(void *ctx, int type, int hwm)
{
    void *s = zmq_socket(ctx, type);
    int linger = 2000, timeout = 20000; /* ms: a thread that failed does not hang the others */
    if (s) {
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    }
    return s;
}

static uint64_t bt_raw_bytes(const bt_run *r)
{
    return (uint64_t)r->dims[0] * r->dims[1] * r->dims[2] * sizeof(float);
}

static int bt_is_raw(const bt_run *r)
{
    return !strcmp(r->codec, "raw");
}

/* Encodes r->x as one features frame with id into out. */
static fp_status bt_encode(const bt_run *r, fp_fmap_codec c, const float *x, uint64_t id, fp_buffer *enc,
                           fp_buffer *out)
{
    fp_frame f = {.kind = FP_FRAME_FEATURES, .id = id, .n_tensors = 1, .image_w = 640, .image_h = 480};
    fp_status st = fp_fmap_encode(c, 7, x, r->dims, 3, enc, &f.tensors[0]);
    if (st) return st;
    size_t need = fp_frame_encoded_size(&f);
    if (need > out->cap) {
        uint8_t *p = realloc(out->data, need);
        if (!p) return FP_ENOMEM;
        out->data = p;
        out->cap = need;
    }
    return fp_frame_encode(&f, out->data, out->cap, &out->len);
}

/* Validates a frame and decodes its feature map into y. */
static fp_status bt_decode(const bt_run *r, const void *buf, size_t len, uint64_t want_id, float *y,
                           fp_buffer *scratch, uint64_t *id)
{
    fp_frame f;
    uint64_t raw = bt_raw_bytes(r);
    fp_status st = fp_frame_decode(buf, len, raw + raw / 4 + 4096, &f);
    if (st) return st;
    if (f.kind != FP_FRAME_FEATURES || f.n_tensors != 1 || f.id != want_id || f.tensors[0].rank != 3 ||
        memcmp(f.tensors[0].dims, r->dims, sizeof r->dims))
        return fpi_error(FP_EPROTO, "frame %llu is not the features frame %llu that was sent",
                         (unsigned long long)f.id, (unsigned long long)want_id);
    *id = f.id;
    return fp_fmap_decode(&f.tensors[0], y, raw / sizeof(float), scratch);
}

static void *bt_sender(void *arg)
{
    bt_run *r = arg;
    fp_fmap_codec c;
    fp_fmap_codec_parse(bt_is_raw(r) ? "none" : r->codec, &c);
    void *ctx = zmq_ctx_new(), *out = bt_socket(ctx, ZMQ_PUSH, r->hwm);
    fp_buffer enc = {0}, frame = {0};
    if (bt_wait(r, r->relay_ep)) goto done;
    if (zmq_connect(out, r->relay_ep)) {
        bt_fail(r, "sender", zmq_strerror(zmq_errno()));
        goto done;
    }
    for (int i = 0; i < BT_WARMUP + r->frames; i++) {
        if (bt_encode(r, c, r->x, (uint64_t)i, &enc, &frame)) {
            bt_fail(r, "sender", fp_last_error());
            break;
        }
        if (zmq_send(out, frame.data, frame.len, 0) < 0) {
            bt_fail(r, "sender", zmq_strerror(zmq_errno()));
            break;
        }
    }
done:
    zmq_close(out);
    zmq_ctx_term(ctx);
    fp_buffer_free(&enc);
    fp_buffer_free(&frame);
    return NULL;
}

static void *bt_relay(void *arg)
{
    bt_run *r = arg;
    fp_fmap_codec c;
    fp_fmap_codec_parse(bt_is_raw(r) ? "none" : r->codec, &c);
    void *ctx = zmq_ctx_new(), *in = bt_socket(ctx, ZMQ_PULL, r->hwm), *out = bt_socket(ctx, ZMQ_PUSH, r->hwm);
    fp_buffer enc = {0}, frame = {0}, scratch = {0};
    float *y = malloc(bt_raw_bytes(r));
    if (bt_wait(r, r->sink_ep)) goto done;
    if (!y || zmq_bind(in, "tcp://127.0.0.1:*") || zmq_connect(out, r->sink_ep)) {
        bt_fail(r, "relay", y ? zmq_strerror(zmq_errno()) : "out of memory");
        goto done;
    }
    bt_publish(r, r->relay_ep, in);
    for (int i = 0; i < BT_WARMUP + r->frames; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, in, 0) < 0) {
            zmq_msg_close(&m);
            bt_fail(r, "relay", zmq_strerror(zmq_errno()));
            break;
        }
        int rc;
        if (bt_is_raw(r)) {
            rc = zmq_msg_send(&m, out, 0) < 0; /* forwards the message, no copy */
            if (rc) zmq_msg_close(&m);
        } else {
            uint64_t id;
            fp_status st = bt_decode(r, zmq_msg_data(&m), zmq_msg_size(&m), (uint64_t)i, y, &scratch, &id);
            zmq_msg_close(&m);
            if (!st) st = bt_encode(r, c, y, id, &enc, &frame);
            if (st) {
                bt_fail(r, "relay", fp_last_error());
                break;
            }
            if (i == 0) r->wire_bytes = frame.len;
            rc = zmq_send(out, frame.data, frame.len, 0) < 0;
        }
        if (rc) {
            bt_fail(r, "relay", zmq_strerror(zmq_errno()));
            break;
        }
    }
done:
    zmq_close(in);
    zmq_close(out);
    zmq_ctx_term(ctx);
    fp_buffer_free(&enc);
    fp_buffer_free(&frame);
    fp_buffer_free(&scratch);
    free(y);
    return NULL;
}

static void *bt_sink(void *arg)
{
    bt_run *r = arg;
    void *ctx = zmq_ctx_new(), *in = bt_socket(ctx, ZMQ_PULL, r->hwm);
    fp_buffer scratch = {0};
    size_t count = bt_raw_bytes(r) / sizeof(float);
    float *y = malloc(count * sizeof *y);
    if (!y || zmq_bind(in, "tcp://127.0.0.1:*")) {
        bt_fail(r, "sink", y ? zmq_strerror(zmq_errno()) : "out of memory");
        goto done;
    }
    bt_publish(r, r->sink_ep, in);
    for (int i = 0; i < BT_WARMUP + r->frames; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, in, 0) < 0) {
            zmq_msg_close(&m);
            bt_fail(r, "sink", zmq_strerror(zmq_errno()));
            break;
        }
        if (bt_is_raw(r) && i == 0) r->wire_bytes = zmq_msg_size(&m);
        uint64_t id;
        fp_status st = bt_decode(r, zmq_msg_data(&m), zmq_msg_size(&m), (uint64_t)i, y, &scratch, &id);
        zmq_msg_close(&m);
        if (st) {
            bt_fail(r, "sink", fp_last_error());
            break;
        }
        if (i == 0) { /* the first frame came through intact (exactly, for codec none) */
            /* float, as the values: a double fmax reduction over floats
             * crashes GCC 12's vectoriser for aarch64 (make cross) */
            float err = 0;
            for (size_t k = 0; k < count; k++) err = fmaxf(err, fabsf(y[k] - r->x[k]));
            int lossless = bt_is_raw(r) || !strncmp(r->codec, "none", 4);
            if (lossless ? err != 0 : err > 0.05) {
                char msg[96];
                snprintf(msg, sizeof msg, "decoded values differ from the sent ones by up to %g", err);
                bt_fail(r, "sink", msg);
                break;
            }
        }
        if (i == BT_WARMUP - 1) r->t0 = fpi_now();
    }
    r->t1 = fpi_now();
done:
    zmq_close(in);
    zmq_ctx_term(ctx);
    fp_buffer_free(&scratch);
    free(y);
    return NULL;
}

/* One measurement through the two hops: MB/s of float32 payload, or -1. */
static double bt_zmq(bt_run *r)
{
    pthread_t t[3];
    r->sink_ep[0] = r->relay_ep[0] = 0;
    r->failed = 0;
    r->wire_bytes = 0;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_create(&t[0], NULL, bt_sink, r);
    pthread_create(&t[1], NULL, bt_relay, r);
    pthread_create(&t[2], NULL, bt_sender, r);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    if (r->failed) {
        fprintf(stderr, "bench_transport: %s\n", r->error);
        return -1;
    }
    return (double)bt_raw_bytes(r) * r->frames / (r->t1 - r->t0) / 1e6;
}

/* memcpy of the same bytes, twice per frame (one per hop): MB/s. */
static double bt_memcpy(const float *x, size_t bytes, int frames)
{
    char *a = malloc(bytes), *b = malloc(bytes);
    volatile char sink = 0;
    for (int i = 0; i < BT_WARMUP; i++) {
        memcpy(a, x, bytes);
        memcpy(b, a, bytes);
    }
    double t0 = fpi_now();
    for (int i = 0; i < frames; i++) {
        memcpy(a, x, bytes);
        memcpy(b, a, bytes);
        sink ^= b[(size_t)i % bytes];
    }
    double t = fpi_now() - t0;
    (void)sink;
    free(a);
    free(b);
    return (double)bytes * frames / t / 1e6;
}

static int bt_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double bt_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bt_cmp);
    return v[n / 2];
}

/* A convolution's output, roughly: a smooth field plus noise, leaky ReLU. */
static float *bt_fmap(const uint32_t *d)
{
    size_t n = (size_t)d[0] * d[1] * d[2];
    float *x = malloc(n * sizeof *x);
    uint32_t s = 12345;
    for (uint32_t c = 0; c < d[0]; c++)
        for (uint32_t h = 0; h < d[1]; h++)
            for (uint32_t w = 0; w < d[2]; w++) {
                s = s * 1664525u + 1013904223u;
                float noise = ((float)(s >> 8) / 16777216.f - 0.5f) * 0.5f;
                float v = sinf(0.3f * (float)h + 0.7f * (float)c) * cosf(0.2f * (float)w) + noise;
                x[((size_t)c * d[1] + h) * d[2] + w] = v > 0 ? v : 0.1f * v;
            }
    return x;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: bench_transport [MIB_PER_RUN=128] [ROUNDS=3] [HWM=2]\n"
               "MB/s of float32 feature maps through sender -> relay (no-compute stage) -> sink over\n"
               "ZeroMQ tcp://127.0.0.1 (threads, one context each), per codec, against memcpy.\n");
        return 0;
    }
    double mib = argc > 1 ? atof(argv[1]) : 128;
    int rounds = argc > 2 ? atoi(argv[2]) : 3, hwm = argc > 3 ? atoi(argv[3]) : 2;
    if (mib <= 0 || rounds < 1 || rounds > 99 || hwm < 1) {
        fprintf(stderr, "bench_transport: MIB_PER_RUN must be > 0, ROUNDS 1..99, HWM >= 1\n");
        return 2;
    }
    static const uint32_t shapes[][3] = {{256, 13, 13}, {16, 104, 104}, {64, 104, 104}};
    static const char *codecs[] = {"raw", "none", "fp16", "int8", "int8+lz4"};
    enum { NS = sizeof shapes / sizeof shapes[0], NC = sizeof codecs / sizeof codecs[0] };
    printf("transport: sender -> relay -> sink, 3 threads of one process, one ZeroMQ context (1 I/O thread) each,\n"
           "tcp://127.0.0.1, HWM %d; %.0f MiB of float32 payload per run after %d warm-up frames; median of %d "
           "rounds\n",
           hwm, mib, BT_WARMUP, rounds);
    printf("%-13s %-9s %10s %9s %10s %10s %9s\n", "shape", "codec", "payload kB", "wire kB", "MB/s", "frames/s",
           "memcpy/x");
    int status = 0;
    for (int si = 0; si < NS; si++) {
        const uint32_t *d = shapes[si];
        float *x = bt_fmap(d);
        size_t bytes = (size_t)d[0] * d[1] * d[2] * sizeof(float);
        int frames = (int)(mib * 1048576.0 / (double)bytes);
        if (frames < 20) frames = 20;
        double mc[99], zr[NC][99];
        size_t wire[NC] = {0};
        for (int r = 0; r < rounds; r++) { /* interleaved: the machine is shared and noisy */
            mc[r] = bt_memcpy(x, bytes, frames);
            for (int ci = 0; ci < NC; ci++) {
                bt_run run = {.dims = {d[0], d[1], d[2]}, .codec = codecs[ci], .frames = frames, .hwm = hwm, .x = x};
                zr[ci][r] = bt_zmq(&run);
                wire[ci] = run.wire_bytes;
                if (zr[ci][r] < 0) status = 1;
            }
        }
        char shape[32];
        snprintf(shape, sizeof shape, "%ux%ux%u", d[0], d[1], d[2]);
        double m = bt_median(mc, rounds);
        printf("%-13s %-9s %10.1f %9s %10.0f %10.0f %9s\n", shape, "memcpy x2", bytes / 1e3, "-", m, m * 1e6 / bytes,
               "1.00");
        for (int ci = 0; ci < NC; ci++) {
            double z = bt_median(zr[ci], rounds);
            if (z < 0) {
                printf("%-13s %-9s %10.1f %9s %10s %10s %9s\n", shape, codecs[ci], bytes / 1e3, "-", "failed", "-", "-");
                continue;
            }
            printf("%-13s %-9s %10.1f %9.1f %10.0f %10.0f %9.2f\n", shape, codecs[ci], bytes / 1e3, wire[ci] / 1e3, z,
                   z * 1e6 / bytes, m / z);
        }
        free(x);
    }
    printf("(MB/s: float32 feature-map bytes delivered to the sink and decoded, per second, 1 MB = 1e6 bytes;\n"
           " wire kB: one frame as sent, header and CRCs included; memcpy/x: how many times faster two memcpy\n"
           " of the frame are; raw: the relay forwards the message without decoding it (ZeroMQ alone); the\n"
           " other rows: the relay validates and decodes the frame into floats and encodes it again, as a\n"
           " stage with no layers would; the sender encodes every frame, the sink validates and decodes.\n"
           " Synthetic values: lz4's ratio on real feature maps differs.)\n");
    return status;
}
