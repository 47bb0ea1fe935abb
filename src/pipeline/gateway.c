/* gateway.c — the gateway's core: a bounded window of frames in flight, each
 * kept until its result comes back and sent again after a timeout; results
 * handed over once. One thread (the pump) owns the ZeroMQ sockets; callers on
 * other threads submit and wait through a mutex and condition variable, and
 * wake the pump through an eventfd that zmq_poll watches with the sockets. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "common/common.h"
#include "pipeline/curve.h"
#include "pipeline/pipeline.h"

enum { FPI_LAT_RING = 4096 }; /* latencies kept for percentiles */

typedef enum { FPI_FREE = 0, FPI_QUEUED, FPI_SENT, FPI_DONE } fpi_slot_state;

typedef struct fpi_slot {
    fpi_slot_state state;
    uint64_t id;
    uint8_t *frame; /* encoded frame (owned) while not DONE */
    size_t len;
    double submitted, sent;
    int forgotten;  /* the caller gave up: free on arrival */
    char *json;     /* DONE: the result (owned until taken) */
    size_t json_len;
} fpi_slot;

struct fpp_gateway {
    fpp_gateway_opts o;
    void *ctx, *push, *pull;
    fpp_curve_key key;         /* o.curve points here */
    fpp_zap *zap;              /* CURVE authenticator, NULL without a key */
    int wake;                  /* eventfd */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* a slot freed or a result arrived */
    int stop;
    fpi_slot *slots;           /* window + window (results awaiting their caller) */
    int n_slots;
    int in_flight;             /* QUEUED + SENT */
    uint64_t next_id;
    fpp_gateway_stats st;
    double t0;
    double lat[FPI_LAT_RING];
    uint64_t n_lat;
    double lat_avg;            /* running mean of send → result of the last attempt: the resend timeout */
};

static fp_status fpi_zerr(const char *what) { return fpi_error(FP_EIO, "%s: %s", what, zmq_strerror(zmq_errno())); }

/* Frames unanswered this long after their last send are sent again: the
 * configured minimum, or four times the mean send-to-result time when the
 * pipeline is slower than that. */
static double fpi_resend_after(const fpp_gateway *gw)
{
    double t = 4 * gw->lat_avg;
    return t > gw->o.resend_s ? t : gw->o.resend_s;
}

static fpi_slot *fpi_find(fpp_gateway *gw, uint64_t id)
{
    for (int i = 0; i < gw->n_slots; i++)
        if (gw->slots[i].state != FPI_FREE && gw->slots[i].id == id) return &gw->slots[i];
    return NULL;
}

static void fpi_slot_free(fpi_slot *s)
{
    free(s->frame);
    free(s->json);
    memset(s, 0, sizeof *s);
}

/* Takes a result message (pump thread, lock held). */
static void fpi_on_result(fpp_gateway *gw, const uint8_t *buf, size_t len, double now)
{
    fp_frame f;
    gw->st.bytes_in += len;
    if (fp_frame_decode(buf, len, gw->o.max_result_bytes, &f) || f.kind != FP_FRAME_RESULT) {
        gw->st.bad_results++;
        FPI_WARN("gateway: result refused: %s", f.kind != FP_FRAME_RESULT ? "not a result frame" : fp_last_error());
        return;
    }
    fpi_slot *s = fpi_find(gw, f.id);
    if (!s || s->state == FPI_DONE) {
        gw->st.duplicates++;
        return;
    }
    char *json = malloc(f.tensors[0].len + 1);
    if (!json) return; /* it will be sent again */
    memcpy(json, f.tensors[0].data, f.tensors[0].len);
    json[f.tensors[0].len] = '\0';
    /* The caller's latency counts from submission; the resend timeout
     * from the last send, or every loss would lengthen the next wait. */
    double lat = now - s->submitted, attempt = now - s->sent;
    gw->lat[gw->n_lat++ % FPI_LAT_RING] = lat;
    gw->lat_avg = gw->n_lat == 1 ? attempt : gw->lat_avg * 0.9 + attempt * 0.1;
    gw->in_flight--;
    gw->st.completed++;
    if (s->forgotten) {
        free(json);
        fpi_slot_free(s);
    } else {
        free(s->frame);
        s->frame = NULL;
        s->state = FPI_DONE;
        s->json = json;
        s->json_len = f.tensors[0].len;
    }
    pthread_cond_broadcast(&gw->cv);
}

/* Sends queued frames (oldest first) until the socket is full; marks frames
 * past their timeout for resending. Lock held. */
static void fpi_pump_send(fpp_gateway *gw, double now)
{
    double after = fpi_resend_after(gw);
    for (int i = 0; i < gw->n_slots; i++) {
        fpi_slot *s = &gw->slots[i];
        if (s->state == FPI_SENT && now - s->sent > after) {
            s->state = FPI_QUEUED;
            gw->st.resent++;
            FPI_INFO("gateway: frame %llu unanswered after %.1f s: sending it again", (unsigned long long)s->id,
                     now - s->sent);
        }
    }
    for (;;) {
        fpi_slot *oldest = NULL;
        for (int i = 0; i < gw->n_slots; i++)
            if (gw->slots[i].state == FPI_QUEUED && (!oldest || gw->slots[i].id < oldest->id)) oldest = &gw->slots[i];
        if (!oldest) return;
        if (zmq_send(gw->push, oldest->frame, oldest->len, ZMQ_DONTWAIT) < 0) return; /* full: backpressure */
        oldest->state = FPI_SENT;
        oldest->sent = now;
        gw->st.bytes_out += oldest->len;
    }
}

static void *fpi_pump(void *arg)
{
    fpp_gateway *gw = arg;
    pthread_mutex_lock(&gw->mu);
    while (!gw->stop) {
        int queued = 0;
        for (int i = 0; i < gw->n_slots; i++) queued |= gw->slots[i].state == FPI_QUEUED;
        pthread_mutex_unlock(&gw->mu);
        zmq_pollitem_t it[3] = {{gw->pull, 0, ZMQ_POLLIN, 0}, {NULL, gw->wake, ZMQ_POLLIN, 0},
                                {gw->push, 0, ZMQ_POLLOUT, 0}};
        zmq_poll(it, queued ? 3 : 2, 50);
        if (it[1].revents & ZMQ_POLLIN) {
            uint64_t v;
            if (read(gw->wake, &v, sizeof v) < 0) { /* nothing to do: only a wake-up */ }
        }
        pthread_mutex_lock(&gw->mu);
        double now = fpi_now();
        for (int n = 0; n < 256; n++) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, gw->pull, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            fpi_on_result(gw, zmq_msg_data(&m), zmq_msg_size(&m), now);
            zmq_msg_close(&m);
        }
        fpi_pump_send(gw, now);
    }
    pthread_mutex_unlock(&gw->mu);
    return NULL;
}

fp_status fpp_gateway_create(const fpp_gateway_opts *o, fpp_gateway **out)
{
    *out = NULL;
    if (o->window < 1 || o->window > 4096) return fpi_error(FP_EINVAL, "window must be in 1..4096 (got %d)", o->window);
    if (!o->first.n || !o->results) return fpi_error(FP_EINVAL, "the gateway needs stage 0's endpoints and a result endpoint");
    fpp_gateway *gw = calloc(1, sizeof *gw);
    if (!gw) return fpi_error(FP_ENOMEM, "out of memory");
    gw->o = *o;
    gw->wake = -1;
    gw->next_id = 1;
    gw->n_slots = 2 * o->window;
    pthread_mutex_init(&gw->mu, NULL);
    pthread_cond_init(&gw->cv, NULL);
    fp_status st = FP_OK;
    /* heartbeats on the frames' way out only: on the results' socket they
     * would risk libzmq 4.3.4's abort when its queue is full (stage.c,
     * fpi_zmq_opts) */
    int hwm = o->hwm > 0 ? o->hwm : 4, linger = 0, one = 1, ivl = 100, ivl_max = 1000, hb = 1000, hb_timeout = 5000;
    int64_t max_msg = (int64_t)o->max_result_bytes + 4096;
    if (!(gw->slots = calloc((size_t)gw->n_slots, sizeof *gw->slots))) {
        st = fpi_error(FP_ENOMEM, "out of memory");
        goto fail;
    }
    if ((gw->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        st = fpi_error(FP_EIO, "eventfd: %s", strerror(errno));
        goto fail;
    }
    if (!(gw->ctx = zmq_ctx_new()) || !(gw->push = zmq_socket(gw->ctx, ZMQ_PUSH)) ||
        !(gw->pull = zmq_socket(gw->ctx, ZMQ_PULL))) {
        st = fpi_zerr("zmq");
        goto fail;
    }
    if (zmq_setsockopt(gw->push, ZMQ_SNDHWM, &hwm, sizeof hwm) || zmq_setsockopt(gw->push, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(gw->push, ZMQ_IMMEDIATE, &one, sizeof one) ||
        zmq_setsockopt(gw->push, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) ||
        zmq_setsockopt(gw->push, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) ||
        zmq_setsockopt(gw->push, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) ||
        zmq_setsockopt(gw->push, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout) ||
        zmq_setsockopt(gw->pull, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(gw->pull, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg)) {
        st = fpi_zerr("zmq_setsockopt");
        goto fail;
    }
    if (o->curve) {
        gw->key = *o->curve;
        gw->o.curve = &gw->key;
        if ((st = fpp_zap_start(gw->ctx, &gw->key, &gw->zap)) || (st = fpp_curve_server(gw->pull, &gw->key)) ||
            (st = fpp_curve_client(gw->push, &gw->key)))
            goto fail;
    }
    if (zmq_bind(gw->pull, o->results)) {
        st = fpi_error(FP_EIO, "cannot bind %s: %s", o->results, zmq_strerror(zmq_errno()));
        goto fail;
    }
    for (int i = 0; i < o->first.n; i++)
        if (zmq_connect(gw->push, o->first.ep[i])) {
            st = fpi_error(FP_EIO, "cannot connect to %s: %s", o->first.ep[i], zmq_strerror(zmq_errno()));
            goto fail;
        }
    if (pthread_create(&gw->thread, NULL, fpi_pump, gw)) {
        st = fpi_error(FP_ENOMEM, "cannot start the gateway thread");
        goto fail;
    }
    gw->started = 1;
    *out = gw;
    return FP_OK;
fail:
    fpp_gateway_destroy(gw);
    return st;
}

static void fpi_wake(fpp_gateway *gw)
{
    uint64_t one = 1;
    if (write(gw->wake, &one, sizeof one) < 0) { /* the counter is full: the pump is awake anyway */ }
}

/* Waits on the condition until `deadline` (< 0: forever). 0 on timeout. */
static int fpi_cond_wait(fpp_gateway *gw, double deadline)
{
    if (deadline < 0) {
        pthread_cond_wait(&gw->cv, &gw->mu);
        return 1;
    }
    double now = fpi_now();
    if (now >= deadline) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double wait = deadline - now;
    if (wait > 0.2) wait = 0.2; /* re-check: CLOCK_REALTIME may jump */
    ts.tv_sec += (time_t)wait;
    ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&gw->cv, &gw->mu, &ts);
    return 1;
}

fp_status fpp_gateway_submit(fpp_gateway *gw, const fp_frame *f, double timeout_s, uint64_t *id)
{
    fp_frame g = *f;
    size_t n = fp_frame_encoded_size(&g);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return fpi_error(FP_ENOMEM, "out of memory for a %zu-byte frame", n);
    double deadline = timeout_s < 0 ? -1 : fpi_now() + timeout_s;
    pthread_mutex_lock(&gw->mu);
    fpi_slot *s = NULL;
    for (;;) {
        if (gw->in_flight < gw->o.window)
            for (int i = 0; i < gw->n_slots && !s; i++)
                if (gw->slots[i].state == FPI_FREE) s = &gw->slots[i];
        if (s || !fpi_cond_wait(gw, deadline)) break;
    }
    if (!s) {
        pthread_mutex_unlock(&gw->mu);
        free(buf);
        return fpi_error(FP_ETIMEDOUT, "the pipeline took no new frame within %.1f s (%d in flight)", timeout_s,
                         gw->in_flight);
    }
    g.id = gw->next_id++;
    size_t used;
    fp_status st = fp_frame_encode(&g, buf, n, &used);
    if (st) {
        pthread_mutex_unlock(&gw->mu);
        free(buf);
        return st;
    }
    double now = fpi_now();
    *s = (fpi_slot){.state = FPI_QUEUED, .id = g.id, .frame = buf, .len = used, .submitted = now};
    if (!gw->st.submitted) gw->t0 = now;
    gw->st.submitted++;
    gw->in_flight++;
    *id = g.id;
    pthread_mutex_unlock(&gw->mu);
    fpi_wake(gw);
    return FP_OK;
}

fp_status fpp_gateway_wait(fpp_gateway *gw, uint64_t id, double timeout_s, char **json, size_t *len)
{
    double deadline = timeout_s < 0 ? -1 : fpi_now() + timeout_s;
    pthread_mutex_lock(&gw->mu);
    fp_status st = FP_OK;
    for (;;) {
        fpi_slot *s = fpi_find(gw, id);
        if (!s || s->forgotten) {
            st = fpi_error(FP_ENOTFOUND, "no frame %llu awaits its result", (unsigned long long)id);
            break;
        }
        if (s->state == FPI_DONE) {
            *json = s->json;
            *len = s->json_len;
            s->json = NULL;
            fpi_slot_free(s);
            pthread_cond_broadcast(&gw->cv);
            break;
        }
        if (!fpi_cond_wait(gw, deadline)) {
            st = fpi_error(FP_ETIMEDOUT, "no result for frame %llu within %.1f s", (unsigned long long)id, timeout_s);
            break;
        }
    }
    pthread_mutex_unlock(&gw->mu);
    return st;
}

void fpp_gateway_forget(fpp_gateway *gw, uint64_t id)
{
    pthread_mutex_lock(&gw->mu);
    fpi_slot *s = fpi_find(gw, id);
    if (s && s->state == FPI_DONE) fpi_slot_free(s);
    else if (s) s->forgotten = 1;
    pthread_cond_broadcast(&gw->cv);
    pthread_mutex_unlock(&gw->mu);
}

static int fpi_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void fpp_gateway_stats_get(fpp_gateway *gw, fpp_gateway_stats *out)
{
    static double sorted[FPI_LAT_RING];
    static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&sort_mu);
    pthread_mutex_lock(&gw->mu);
    *out = gw->st;
    out->in_flight = gw->in_flight;
    out->auth_denied = fpp_zap_denied(gw->zap);
    out->elapsed_s = gw->st.submitted ? fpi_now() - gw->t0 : 0;
    int n = gw->n_lat < FPI_LAT_RING ? (int)gw->n_lat : FPI_LAT_RING;
    memcpy(sorted, gw->lat, (size_t)n * sizeof *sorted);
    pthread_mutex_unlock(&gw->mu);
    qsort(sorted, (size_t)n, sizeof *sorted, fpi_cmp_double);
    out->latency_p50_s = n ? sorted[(n - 1) / 2] : 0;
    out->latency_p99_s = n ? sorted[(int)((n - 1) * 0.99)] : 0;
    out->latency_max_s = n ? sorted[n - 1] : 0;
    pthread_mutex_unlock(&sort_mu);
}

void fpp_gateway_destroy(fpp_gateway *gw)
{
    if (!gw) return;
    if (gw->started) {
        pthread_mutex_lock(&gw->mu);
        gw->stop = 1;
        pthread_mutex_unlock(&gw->mu);
        fpi_wake(gw);
        pthread_join(gw->thread, NULL);
    }
    if (gw->push) zmq_close(gw->push);
    if (gw->pull) zmq_close(gw->pull);
    fpp_zap_stop(gw->zap);
    if (gw->ctx) zmq_ctx_term(gw->ctx);
    memset(&gw->key, 0, sizeof gw->key);
    if (gw->wake >= 0) close(gw->wake);
    for (int i = 0; gw->slots && i < gw->n_slots; i++) fpi_slot_free(&gw->slots[i]);
    free(gw->slots);
    pthread_cond_destroy(&gw->cv);
    pthread_mutex_destroy(&gw->mu);
    free(gw);
}
