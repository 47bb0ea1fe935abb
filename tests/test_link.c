/* test_link.c — `fogpipe link`'s two ends (fpp_link_listen, fpp_link_send)
 * over loopback ZeroMQ in one process: a measured stream whose byte counts
 * agree at both ends, and a receiver that refuses what is not such a
 * stream (garbage, an end before any frame, an oversized message, silence,
 * a stop) with an error instead of hanging or crashing. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "fogpipe/status.h"
#include "pipeline/pipeline.h"
#include "free_port.h"
#include "test.h"

typedef struct {
    char ep[64];
    double timeout_s;
    volatile sig_atomic_t stop;
    fp_status st;
    char msg[256];
    fpp_link_cost cost;
} listener;

static void *listen_main(void *arg)
{
    listener *l = arg;
    l->st = fpp_link_listen(l->ep, l->timeout_s, &l->stop, &l->cost);
    snprintf(l->msg, sizeof l->msg, "%s", l->st ? fp_last_error() : "");
    return NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int start(listener *l, pthread_t *t, double timeout_s)
{
    memset(l, 0, sizeof *l);
    int port = fpt_free_port(0);
    CHECK(port > 0);
    snprintf(l->ep, sizeof l->ep, "tcp://127.0.0.1:%d", port);
    l->timeout_s = timeout_s;
    CHECK(pthread_create(t, NULL, listen_main, l) == 0);
    sleep_ms(100);
    return port > 0;
}

/* Sends raw messages to the listener from a plain PAIR socket. */
static void send_raw(const char *ep, const void *const *msgs, const size_t *lens, int n)
{
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PAIR);
    int linger = 1000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    CHECK(zmq_connect(s, ep) == 0);
    for (int i = 0; i < n; i++) CHECK(zmq_send(s, msgs[i], lens[i], 0) == (int)lens[i]);
    sleep_ms(200);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static void test_round_trip(void)
{
    listener l;
    pthread_t t;
    if (!start(&l, &t, 10)) return;
    fpp_link_cost c;
    CHECK_OK(fpp_link_send(l.ep, 3, 10, &c));
    pthread_join(t, NULL);
    CHECK_MSG(l.st == FP_OK, "listener: %s", l.msg);
    /* three 1 MiB feature frames with their headers, counted alike at both ends */
    CHECK(c.bytes > 3 * 1048576.0 && c.bytes < 3 * 1048576.0 + 4096);
    CHECK(l.cost.bytes == c.bytes);
    CHECK(c.send_ns_per_byte > 0 && c.send_ns_per_byte < 1e4);
    CHECK(c.recv_ns_per_byte > 0 && c.recv_ns_per_byte == l.cost.recv_ns_per_byte);
    CHECK(c.seconds > 0 && l.cost.seconds > 0);
}

static void test_garbage(void)
{
    listener l;
    pthread_t t;
    if (!start(&l, &t, 10)) return;
    static const char junk[100] = "not a fogpipe frame";
    const void *m[] = {junk};
    size_t n[] = {sizeof junk};
    send_raw(l.ep, m, n, 1);
    pthread_join(t, NULL);
    CHECK_MSG(l.st != FP_OK && l.st != FP_ETIMEDOUT, "garbage: %s (%s)", fp_status_name(l.st), l.msg);
}

static void test_end_first(void)
{
    listener l;
    pthread_t t;
    if (!start(&l, &t, 10)) return;
    const void *m[] = {"fogpipe-link-end"};
    size_t n[] = {16};
    send_raw(l.ep, m, n, 1);
    pthread_join(t, NULL);
    CHECK(l.st == FP_EPROTO);
    CHECK_MSG(strstr(l.msg, "without sending a frame") != NULL, "%s", l.msg);
}

static void test_oversize_and_silence(void)
{
    /* Larger than any frame: ZeroMQ drops the connection; nothing else comes. */
    listener l;
    pthread_t t;
    if (!start(&l, &t, 1)) return;
    static char big[1 << 21];
    const void *m[] = {big};
    size_t n[] = {sizeof big};
    send_raw(l.ep, m, n, 1);
    pthread_join(t, NULL);
    CHECK(l.st == FP_ETIMEDOUT);
    CHECK_MSG(strstr(l.msg, "no sender within 1 s") != NULL, "%s", l.msg);
}

static void test_stop(void)
{
    listener l;
    pthread_t t;
    if (!start(&l, &t, 60)) return;
    l.stop = 1;
    pthread_join(t, NULL);
    CHECK(l.st == FP_ETIMEDOUT);
    CHECK_MSG(strstr(l.msg, "stopped") != NULL, "%s", l.msg);
}

static void test_no_receiver(void)
{
    fpp_link_cost c;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", fpt_free_port(0));
    CHECK_ERR(fpp_link_send(ep, 1, 0.5, &c), FP_ETIMEDOUT);
    CHECK_ERR(fpp_link_send(ep, 0, 0.5, &c), FP_EINVAL);
}

TEST_LIST = {
    {"round_trip", test_round_trip},
    {"garbage", test_garbage},
    {"end_first", test_end_first},
    {"oversize_and_silence", test_oversize_and_silence},
    {"stop", test_stop},
    {"no_receiver", test_no_receiver},
    {NULL, NULL},
};
