/* test_http.c — the Prometheus registry (values, quantiles, exact text
 * output, escaping, limits, concurrent updates) and the embedded HTTP
 * server, driven over real sockets by a tiny client (bodies intact, size
 * limits, malformed requests, clean stop with a handler in flight). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h" /* fpi_now, fpi_alloc_fail_after */
#include "pipeline/http.h"
#include "pipeline/metrics.h"
#include "test.h"

/* ---- metrics ---------------------------------------------------------- */

static void test_metrics_basic(void)
{
    fpp_metrics *m;
    CHECK_OK(fpp_metrics_create(&m));
    double b[] = {1, 2, 4};
    CHECK_OK(fpp_metrics_declare(m, "c_total", FPP_COUNTER, "a counter", "stage", NULL, 0));
    CHECK_OK(fpp_metrics_declare(m, "g", FPP_GAUGE, "a gauge", NULL, NULL, 0));
    CHECK_OK(fpp_metrics_declare(m, "h", FPP_HISTOGRAM, "a histogram", NULL, b, 3));

    fpp_metrics_add(m, "c_total", "x", 2);
    fpp_metrics_add(m, "c_total", "x", 0.5);
    fpp_metrics_add(m, "c_total", "x", -1);      /* counters never go down */
    fpp_metrics_add(m, "c_total", "x", NAN);     /* nor become NaN */
    fpp_metrics_set(m, "c_total", "x", 100);     /* set is for gauges */
    fpp_metrics_observe(m, "c_total", "x", 1);   /* observe is for histograms */
    CHECK(fpp_metrics_get(m, "c_total", "x") == 2.5);
    CHECK(fpp_metrics_get(m, "c_total", "y") == 0); /* absent series */
    CHECK(fpp_metrics_get(m, "c_total", NULL) == 0);
    fpp_metrics_add(m, "c_total", NULL, 3);      /* NULL is the value "" */
    CHECK(fpp_metrics_get(m, "c_total", "") == 3);
    fpp_metrics_raise(m, "c_total", "x", 7.25);  /* a total kept elsewhere */
    fpp_metrics_raise(m, "c_total", "x", 6);     /* never back */
    fpp_metrics_raise(m, "c_total", "x", NAN);
    CHECK(fpp_metrics_get(m, "c_total", "x") == 7.25);
    fpp_metrics_raise(m, "g", NULL, 50);         /* raise is for counters */
    CHECK(fpp_metrics_get(m, "g", NULL) == 0);
    fpp_metrics_raise(NULL, "c_total", "x", 9);

    fpp_metrics_set(m, "g", NULL, 5);
    fpp_metrics_add(m, "g", NULL, -7.5);
    CHECK(fpp_metrics_get(m, "g", NULL) == -2.5);
    CHECK(fpp_metrics_get(m, "g", "ignored") == -2.5); /* no label: value ignored */

    for (int i = 0; i < 3; i++) fpp_metrics_observe(m, "h", NULL, 1.5);
    fpp_metrics_observe(m, "h", NULL, NAN);
    fpp_metrics_add(m, "h", NULL, 1);
    CHECK(fpp_metrics_get(m, "h", NULL) == 3);

    /* Undeclared names and a NULL registry are silently ignored. */
    fpp_metrics_add(m, "nope", "x", 1);
    fpp_metrics_set(m, "nope", NULL, 1);
    fpp_metrics_observe(m, "nope", NULL, 1);
    fpp_metrics_add(m, NULL, NULL, 1);
    CHECK(fpp_metrics_get(m, "nope", "x") == 0);
    CHECK(isnan(fpp_metrics_quantile(m, "nope", NULL, 0.5)));
    fpp_metrics_add(NULL, "g", NULL, 1);
    CHECK(fpp_metrics_get(NULL, "g", NULL) == 0);
    fpp_metrics_destroy(m);
    fpp_metrics_destroy(NULL);
}

static void test_metrics_quantile(void)
{
    fpp_metrics *m;
    CHECK_OK(fpp_metrics_create(&m));
    double b[] = {1, 2, 4}, neg[] = {-1, 0, 1};
    CHECK_OK(fpp_metrics_declare(m, "lat", FPP_HISTOGRAM, NULL, "op", b, 3));
    CHECK_OK(fpp_metrics_declare(m, "neg", FPP_HISTOGRAM, NULL, NULL, neg, 3));
    CHECK_OK(fpp_metrics_declare(m, "inf_only", FPP_HISTOGRAM, NULL, NULL, NULL, 0));
    CHECK_OK(fpp_metrics_declare(m, "g", FPP_GAUGE, NULL, NULL, NULL, 0));

    CHECK(isnan(fpp_metrics_quantile(m, "lat", "a", 0.5))); /* no series yet */
    fpp_metrics_observe(m, "lat", "a", 0.5);
    fpp_metrics_observe(m, "lat", "a", 0.5);
    fpp_metrics_observe(m, "lat", "a", 1.5);
    fpp_metrics_observe(m, "lat", "a", 1.5);
    /* cumulative counts 2, 4, 4, 4 */
    CHECK_NEAR(fpp_metrics_quantile(m, "lat", "a", 0.5), 1.0, 1e-12);  /* rank 2 in (0,1] */
    CHECK_NEAR(fpp_metrics_quantile(m, "lat", "a", 0.25), 0.5, 1e-12); /* rank 1: half way */
    CHECK_NEAR(fpp_metrics_quantile(m, "lat", "a", 0.75), 1.5, 1e-12); /* rank 3 in (1,2] */
    CHECK_NEAR(fpp_metrics_quantile(m, "lat", "a", 1.0), 2.0, 1e-12);
    CHECK_NEAR(fpp_metrics_quantile(m, "lat", "a", 0.0), 0.0, 1e-12);
    CHECK(isnan(fpp_metrics_quantile(m, "lat", "a", 1.5)));
    CHECK(isnan(fpp_metrics_quantile(m, "lat", "a", -0.1)));
    CHECK(isnan(fpp_metrics_quantile(m, "lat", "a", NAN)));
    /* A rank in the +Inf bucket gives the highest finite bound. */
    fpp_metrics_observe(m, "lat", "a", 100);
    CHECK_NEAR(fpp_metrics_quantile(m, "lat", "a", 1.0), 4.0, 1e-12);
    CHECK(fpp_metrics_get(m, "lat", "a") == 5);
    /* q = 0 with an empty first bucket: lower bound of the first non-empty one. */
    fpp_metrics_observe(m, "lat", "b", 3);
    CHECK_NEAR(fpp_metrics_quantile(m, "lat", "b", 0.0), 2.0, 1e-12);
    CHECK_NEAR(fpp_metrics_quantile(m, "lat", "b", 0.5), 3.0, 1e-12);
    /* A first bucket with an upper bound <= 0 answers its bound. */
    fpp_metrics_observe(m, "neg", NULL, -5);
    CHECK_NEAR(fpp_metrics_quantile(m, "neg", NULL, 0.5), -1.0, 1e-12);
    /* Only the +Inf bucket: nothing to interpolate. Not a histogram: NaN. */
    fpp_metrics_observe(m, "inf_only", NULL, 1);
    CHECK(isnan(fpp_metrics_quantile(m, "inf_only", NULL, 0.5)));
    fpp_metrics_set(m, "g", NULL, 1);
    CHECK(isnan(fpp_metrics_quantile(m, "g", NULL, 0.5)));
    fpp_metrics_destroy(m);
}

static void test_metrics_render(void)
{
    fpp_metrics *m;
    CHECK_OK(fpp_metrics_create(&m));
    double b[] = {0.1, 0.5, 1};
    CHECK_OK(fpp_metrics_declare(m, "fp_frames_total", FPP_COUNTER, "Frames processed.", "stage", NULL, 0));
    CHECK_OK(fpp_metrics_declare(m, "fp_queue_depth", FPP_GAUGE, "Frames waiting.", NULL, NULL, 0));
    CHECK_OK(fpp_metrics_declare(m, "fp_latency_seconds", FPP_HISTOGRAM, "Stage latency.", NULL, b, 3));
    fpp_metrics_add(m, "fp_frames_total", "b", 2);
    fpp_metrics_add(m, "fp_frames_total", "a", 1);
    fpp_metrics_add(m, "fp_frames_total", "b", 1);
    fpp_metrics_set(m, "fp_queue_depth", NULL, 7);
    fpp_metrics_add(m, "fp_queue_depth", NULL, -2.5);
    /* binary-exact values, so the sum is exact */
    fpp_metrics_observe(m, "fp_latency_seconds", NULL, 0.0625);
    fpp_metrics_observe(m, "fp_latency_seconds", NULL, 0.25);
    fpp_metrics_observe(m, "fp_latency_seconds", NULL, 0.5); /* le is inclusive */
    fpp_metrics_observe(m, "fp_latency_seconds", NULL, 2);
    const char *want =
        "# HELP fp_frames_total Frames processed.\n"
        "# TYPE fp_frames_total counter\n"
        "fp_frames_total{stage=\"b\"} 3\n"
        "fp_frames_total{stage=\"a\"} 1\n"
        "# HELP fp_queue_depth Frames waiting.\n"
        "# TYPE fp_queue_depth gauge\n"
        "fp_queue_depth 4.5\n"
        "# HELP fp_latency_seconds Stage latency.\n"
        "# TYPE fp_latency_seconds histogram\n"
        "fp_latency_seconds_bucket{le=\"0.1\"} 1\n"
        "fp_latency_seconds_bucket{le=\"0.5\"} 3\n"
        "fp_latency_seconds_bucket{le=\"1\"} 3\n"
        "fp_latency_seconds_bucket{le=\"+Inf\"} 4\n"
        "fp_latency_seconds_sum 2.8125\n"
        "fp_latency_seconds_count 4\n";
    char *text = NULL;
    CHECK_OK(fpp_metrics_render(m, &text));
    CHECK_MSG(text && !strcmp(text, want), "got:\n%s", text ? text : "(null)");
    free(text);

    /* Declared unlabeled families render a 0 series at once; labeled ones
     * only their header; a histogram with a label puts le after it. */
    fpp_metrics *m2;
    CHECK_OK(fpp_metrics_create(&m2));
    CHECK_OK(fpp_metrics_render(m2, &text));
    CHECK(text && !strcmp(text, ""));
    free(text);
    double one[] = {1};
    CHECK_OK(fpp_metrics_declare(m2, "up", FPP_GAUGE, NULL, NULL, NULL, 0));
    CHECK_OK(fpp_metrics_declare(m2, "req_total", FPP_COUNTER, "", "code", NULL, 0));
    CHECK_OK(fpp_metrics_declare(m2, "size", FPP_HISTOGRAM, "Sizes.", "model", one, 1));
    CHECK_OK(fpp_metrics_render(m2, &text));
    CHECK_MSG(text && !strcmp(text, "# TYPE up gauge\nup 0\n# TYPE req_total counter\n"
                                    "# HELP size Sizes.\n# TYPE size histogram\n"),
              "got:\n%s", text ? text : "(null)");
    free(text);
    fpp_metrics_observe(m2, "size", "yolo", 3);
    fpp_metrics_set(m2, "up", NULL, 9007199254740992.0 * 4); /* 2^55 still prints as an integer */
    CHECK_OK(fpp_metrics_render(m2, &text));
    CHECK_MSG(text && strstr(text, "size_bucket{model=\"yolo\",le=\"1\"} 0\n"
                                   "size_bucket{model=\"yolo\",le=\"+Inf\"} 1\n"
                                   "size_sum{model=\"yolo\"} 3\n"
                                   "size_count{model=\"yolo\"} 1\n"),
              "got:\n%s", text ? text : "(null)");
    CHECK_MSG(text && strstr(text, "up 36028797018963968\n"), "got:\n%s", text ? text : "(null)");
    free(text);

    /* Number formatting: shortest exact text, Prometheus' spellings. */
    const struct { double v; const char *s; } nums[] = {
        {0.1, "0.1"}, {1e300, "1e+300"}, {-3, "-3"}, {1.0 / 3, "0.3333333333333333"}, {0.1 + 0.2, "0.30000000000000004"},
        {INFINITY, "+Inf"}, {-INFINITY, "-Inf"}, {NAN, "NaN"}, {123456789012.5, "123456789012.5"}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char want_line[64];
        fpp_metrics_set(m2, "up", NULL, nums[i].v);
        CHECK_OK(fpp_metrics_render(m2, &text));
        snprintf(want_line, sizeof want_line, "\nup %s\n", nums[i].s);
        CHECK_MSG(text && strstr(text, want_line), "%s not found in:\n%s", nums[i].s, text ? text : "(null)");
        free(text);
    }
    fpp_metrics_destroy(m2);
    fpp_metrics_destroy(m);
}

static void test_metrics_escape(void)
{
    fpp_metrics *m;
    CHECK_OK(fpp_metrics_create(&m));
    CHECK_OK(fpp_metrics_declare(m, "e_total", FPP_COUNTER, "back\\slash and\nnewline \"quoted\"", "path", NULL, 0));
    fpp_metrics_add(m, "e_total", "a\\b\"c\nd", 1);
    CHECK(fpp_metrics_get(m, "e_total", "a\\b\"c\nd") == 1);
    char *text = NULL;
    CHECK_OK(fpp_metrics_render(m, &text));
    /* HELP escapes backslash and newline only; label values also quotes. */
    const char *want = "# HELP e_total back\\\\slash and\\nnewline \"quoted\"\n"
                       "# TYPE e_total counter\n"
                       "e_total{path=\"a\\\\b\\\"c\\nd\"} 1\n";
    CHECK_MSG(text && !strcmp(text, want), "got:\n%s", text ? text : "(null)");
    free(text);
    fpp_metrics_destroy(m);
}

static void test_metrics_refuse(void)
{
    fpp_metrics *m;
    CHECK_OK(fpp_metrics_create(&m));
    double b[] = {1, 2}, bad_order[] = {2, 1}, dup[] = {1, 1}, nan_b[] = {1, NAN}, inf_b[] = {1, INFINITY};
    double many[FPP_METRICS_MAX_BUCKETS + 1];
    for (int i = 0; i <= FPP_METRICS_MAX_BUCKETS; i++) many[i] = i;
    CHECK_OK(fpp_metrics_declare(m, "ok:name_1", FPP_COUNTER, NULL, NULL, NULL, 0));
    CHECK_ERR(fpp_metrics_declare(m, "ok:name_1", FPP_COUNTER, NULL, NULL, NULL, 0), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "ok:name_1", FPP_GAUGE, NULL, NULL, NULL, 0), FP_EINVAL);
    CHECK(strstr(fp_last_error(), "ok:name_1") != NULL);
    const char *bad_names[] = {"", "1abc", "a-b", "a b", "é", "x{y}"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        CHECK_ERR(fpp_metrics_declare(m, bad_names[i], FPP_GAUGE, NULL, NULL, NULL, 0), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, NULL, FPP_GAUGE, NULL, NULL, NULL, 0), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", 0, NULL, NULL, NULL, 0), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", 4, NULL, NULL, NULL, 0), FP_EINVAL);
    const char *bad_labels[] = {"", "1x", "a:b", "__name", "a-b"};
    for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++)
        CHECK_ERR(fpp_metrics_declare(m, "t", FPP_GAUGE, NULL, bad_labels[i], NULL, 0), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", FPP_HISTOGRAM, NULL, "le", b, 2), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", FPP_HISTOGRAM, NULL, NULL, bad_order, 2), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", FPP_HISTOGRAM, NULL, NULL, dup, 2), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", FPP_HISTOGRAM, NULL, NULL, nan_b, 2), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", FPP_HISTOGRAM, NULL, NULL, inf_b, 2), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", FPP_HISTOGRAM, NULL, NULL, many, FPP_METRICS_MAX_BUCKETS + 1), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", FPP_HISTOGRAM, NULL, NULL, NULL, 2), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", FPP_HISTOGRAM, NULL, NULL, b, -1), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(m, "t", FPP_COUNTER, NULL, NULL, b, 2), FP_EINVAL);
    CHECK_ERR(fpp_metrics_declare(NULL, "t", FPP_COUNTER, NULL, NULL, NULL, 0), FP_EINVAL);
    /* "t" was never declared by the failures above */
    CHECK_OK(fpp_metrics_declare(m, "t", FPP_HISTOGRAM, NULL, "le_not", many, FPP_METRICS_MAX_BUCKETS));
    /* The registry holds FPP_METRICS_MAX_FAMILIES families. */
    for (int i = 2; i < FPP_METRICS_MAX_FAMILIES; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%d", i);
        CHECK_OK(fpp_metrics_declare(m, name, FPP_GAUGE, NULL, NULL, NULL, 0));
    }
    CHECK_ERR(fpp_metrics_declare(m, "one_too_many", FPP_GAUGE, NULL, NULL, NULL, 0), FP_EINVAL);
    fpp_metrics_destroy(m);
}

static void test_metrics_overflow(void)
{
    fpp_metrics *m;
    CHECK_OK(fpp_metrics_create(&m));
    CHECK_OK(fpp_metrics_declare(m, "o_total", FPP_COUNTER, NULL, "v", NULL, 0));
    enum { VALUES = 70 };
    for (int i = 0; i < VALUES; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        fpp_metrics_add(m, "o_total", v, 1);
        fpp_metrics_add(m, "o_total", v, 1);
    }
    /* 63 own series, then everything new lands in "other" (the 64th). */
    CHECK(fpp_metrics_get(m, "o_total", "v0") == 2);
    CHECK(fpp_metrics_get(m, "o_total", "v62") == 2);
    CHECK(fpp_metrics_get(m, "o_total", "v63") == 0);
    CHECK(fpp_metrics_get(m, "o_total", "other") == 2 * (VALUES - (FPP_METRICS_MAX_SERIES - 1)));
    char *text = NULL;
    CHECK_OK(fpp_metrics_render(m, &text));
    int lines = 0;
    for (const char *p = text; p && (p = strstr(p, "\no_total{")); p++) lines++;
    CHECK_MSG(lines == FPP_METRICS_MAX_SERIES, "%d series lines", lines);
    CHECK(text && strstr(text, "o_total{v=\"other\"} 14\n"));
    free(text);
    fpp_metrics_destroy(m);
}

static void test_metrics_oom(void)
{
    /* Every allocation may fail: calls report FP_ENOMEM or quietly drop the
     * update, and nothing leaks (ASan build). */
    int saw_ok = 0;
    for (long k = 0; k < 40; k++) {
        fpp_metrics *m = NULL;
        double b[] = {1};
        fpi_alloc_fail_after(k);
        fp_status st = fpp_metrics_create(&m);
        if (st == FP_OK) {
            st = fpp_metrics_declare(m, "h", FPP_HISTOGRAM, "help", "l", b, 1);
            CHECK(st == FP_OK || st == FP_ENOMEM);
            st = fpp_metrics_declare(m, "g", FPP_GAUGE, NULL, NULL, NULL, 0);
            CHECK(st == FP_OK || st == FP_ENOMEM);
            fpp_metrics_observe(m, "h", "a", 1);
            fpp_metrics_set(m, "g", NULL, 2);
            char *text = NULL;
            st = fpp_metrics_render(m, &text);
            CHECK(st == FP_OK || (st == FP_ENOMEM && text == NULL));
            saw_ok |= st == FP_OK && text && strstr(text, "h_count{l=\"a\"} 1\n") && strstr(text, "\ng 2\n");
            free(text);
        } else {
            CHECK(st == FP_ENOMEM && m == NULL);
        }
        fpi_alloc_fail_after(-1);
        fpp_metrics_destroy(m);
    }
    CHECK(saw_ok); /* enough room in the end to do it all */
}

enum { THREADS = 4, ADDS = 100000 };

static void *fp_adder(void *arg)
{
    fpp_metrics *m = arg;
    for (int i = 0; i < ADDS; i++) {
        fpp_metrics_add(m, "n_total", (i & 1) ? "odd" : "even", 1);
        fpp_metrics_add(m, "g", NULL, 0.5);
        fpp_metrics_observe(m, "h", NULL, (double)(i % 4));
    }
    return NULL;
}

static void test_metrics_threads(void)
{
    fpp_metrics *m;
    CHECK_OK(fpp_metrics_create(&m));
    double b[] = {0.5, 1.5};
    CHECK_OK(fpp_metrics_declare(m, "n_total", FPP_COUNTER, NULL, "parity", NULL, 0));
    CHECK_OK(fpp_metrics_declare(m, "g", FPP_GAUGE, NULL, NULL, NULL, 0));
    CHECK_OK(fpp_metrics_declare(m, "h", FPP_HISTOGRAM, NULL, NULL, b, 2));
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, fp_adder, m) == 0);
    /* Render concurrently too: it must see consistent state and not crash. */
    for (int i = 0; i < 20; i++) {
        char *text = NULL;
        CHECK_OK(fpp_metrics_render(m, &text));
        free(text);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK(fpp_metrics_get(m, "n_total", "odd") == THREADS * ADDS / 2);
    CHECK(fpp_metrics_get(m, "n_total", "even") == THREADS * ADDS / 2);
    CHECK(fpp_metrics_get(m, "g", NULL) == THREADS * ADDS * 0.5);
    CHECK(fpp_metrics_get(m, "h", NULL) == THREADS * ADDS);
    char *text = NULL;
    CHECK_OK(fpp_metrics_render(m, &text));
    /* values 0,1,2,3 equally often: sum = 1.5 per observation */
    CHECK_MSG(text && strstr(text, "h_bucket{le=\"0.5\"} 100000\nh_bucket{le=\"1.5\"} 200000\n"
                                   "h_bucket{le=\"+Inf\"} 400000\nh_sum 600000\nh_count 400000\n"),
              "got:\n%s", text ? text : "(null)");
    free(text);
    fpp_metrics_destroy(m);
}

/* ---- http: a tiny blocking client ------------------------------------- */

typedef struct fp_reply {
    int status;      /* 0 when no status line came back */
    char *raw;       /* whole response, NUL-terminated */
    size_t raw_len;
    const char *body; /* into raw */
    size_t body_len;
} fp_reply;

static void fp_reply_free(fp_reply *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}

static void fp_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sends head then body (either may be NULL/0) to 127.0.0.1:port and reads
 * until the server closes. Returns 0 if it could not connect. Send errors
 * (the server may refuse and close early) are not fatal: whatever came back
 * is the answer. */
static int fp_request(int port, const char *head, const void *body, size_t body_len, fp_reply *out)
{
    memset(out, 0, sizeof *out);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    const char *parts[2] = {head, body};
    size_t lens[2] = {head ? strlen(head) : 0, body ? body_len : 0};
    for (int k = 0; k < 2; k++) {
        for (size_t off = 0; off < lens[k];) {
            ssize_t n = send(fd, parts[k] + off, lens[k] - off, MSG_NOSIGNAL);
            if (n <= 0) goto read;
            off += (size_t)n;
        }
    }
read:;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    out->raw = buf;
    out->raw_len = len;
    if (len > 12 && !strncmp(buf, "HTTP/1.", 7)) out->status = atoi(buf + 9);
    const char *sep = strstr(buf, "\r\n\r\n");
    if (sep) {
        out->body = sep + 4;
        out->body_len = len - (size_t)(out->body - buf);
    }
    return 1;
}

/* Sends a GET and returns the status (0: no answer). */
static int fp_get(int port, const char *target, fp_reply *out)
{
    char head[512];
    snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", target);
    return fp_request(port, head, NULL, 0, out) ? out->status : 0;
}

static int fp_body_is(const fp_reply *r, const char *want)
{
    return r->body && r->body_len == strlen(want) && !memcmp(r->body, want, r->body_len);
}

/* ---- http: the server under test -------------------------------------- */

static atomic_int fp_calls, fp_slow_entered, fp_slow_done;
static fpp_metrics *fp_registry;

static void fp_handler(void *user, const fpp_http_request *req, fpp_http_response *resp)
{
    atomic_fetch_add(&fp_calls, 1);
    if (user != (void *)&fp_calls) {
        /* no CHECK here: the harness's failure count is not thread-safe */
        fpp_http_reply(resp, 598, "text/plain", "wrong user pointer\n");
    } else if (!strcmp(req->path, "/echo")) {
        char *b = malloc(req->body_len ? req->body_len : 1);
        memcpy(b, req->body, req->body_len);
        resp->status = 200;
        resp->content_type = "application/octet-stream";
        resp->body = b;
        resp->body_len = req->body_len;
        /* the server promises a NUL after the body */
        if (req->body[req->body_len] != '\0') resp->status = 599;
    } else if (!strcmp(req->path, "/status")) {
        int code = atoi(req->query + strlen("code="));
        fpp_http_reply(resp, 200, "text/plain", "first answer, replaced");
        fpp_http_reply(resp, code, "text/plain", "status %d\n", code);
    } else if (!strcmp(req->path, "/slow")) {
        atomic_store(&fp_slow_entered, 1);
        fp_sleep_ms(300);
        atomic_store(&fp_slow_done, 1);
        fpp_http_reply(resp, 200, "text/plain", "slow\n");
    } else if (!strcmp(req->path, "/metrics")) {
        char *text = NULL;
        if (fpp_metrics_render(fp_registry, &text) == FP_OK) {
            resp->status = 200;
            resp->content_type = "text/plain; version=0.0.4";
            resp->body = text;
            resp->body_len = strlen(text);
        } else {
            fpp_http_reply(resp, 500, "text/plain", "render failed\n");
        }
    } else if (!strcmp(req->path, "/empty")) {
        resp->status = 204;
    } else {
        fpp_http_reply(resp, 200, "text/plain", "%s %s q=%s ct=%s n=%zu", req->method, req->path, req->query,
                       req->content_type, req->body_len);
    }
}

static fpp_http *fp_start(size_t max_body)
{
    fpp_http *s = NULL;
    CHECK_OK(fpp_http_start("127.0.0.1", 0, max_body, fp_handler, &fp_calls, &s));
    if (s) CHECK(fpp_http_port(s) > 0 && fpp_http_port(s) <= 65535);
    return s;
}

static void test_http_get(void)
{
    fpp_http *s = fp_start(1024);
    if (!s) return;
    int port = fpp_http_port(s);
    fp_reply r;
    CHECK(fp_get(port, "/hello", &r) == 200);
    CHECK_MSG(fp_body_is(&r, "GET /hello q= ct= n=0"), "%s", r.raw);
    CHECK(strstr(r.raw, "Content-Type: text/plain\r\n") != NULL);
    fp_reply_free(&r);
    /* query split from the path; path decoded, query left raw */
    CHECK(fp_get(port, "/a%20b/c?x=1&y=%20z", &r) == 200);
    CHECK_MSG(fp_body_is(&r, "GET /a b/c q=x=1&y=%20z ct= n=0"), "%s", r.raw);
    fp_reply_free(&r);
    CHECK(fp_get(port, "/q?", &r) == 200);
    CHECK_MSG(fp_body_is(&r, "GET /q q= ct= n=0"), "%s", r.raw);
    fp_reply_free(&r);
    /* the handler's status; a bad one becomes 500; an empty body is fine */
    CHECK(fp_get(port, "/status?code=418", &r) == 418);
    CHECK(fp_body_is(&r, "status 418\n"));
    fp_reply_free(&r);
    CHECK(fp_get(port, "/status?code=0", &r) == 500);
    fp_reply_free(&r);
    CHECK(fp_get(port, "/status?code=1000", &r) == 500);
    fp_reply_free(&r);
    CHECK(fp_get(port, "/empty", &r) == 204);
    CHECK(r.body && r.body_len == 0);
    fp_reply_free(&r);
    /* HEAD: the headers only */
    CHECK(fp_request(port, "HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, &r));
    CHECK(r.status == 200 && r.body && r.body_len == 0);
    fp_reply_free(&r);
    /* two requests on one kept-alive connection: per-request state resets */
    CHECK(fp_request(port, "GET /one?a HTTP/1.1\r\nHost: x\r\n\r\nGET /two?b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     NULL, 0, &r));
    CHECK_MSG(r.raw && strstr(r.raw, "GET /one q=a ct= n=0") && strstr(r.raw, "GET /two q=b ct= n=0"), "%s", r.raw);
    fp_reply_free(&r);
    fpp_http_stop(s);
}

static uint8_t *fp_pattern(size_t n)
{
    uint8_t *p = malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 24); /* all byte values, NULs included */
    }
    return p;
}

/* Sends body in chunked transfer encoding (chunks of `chunk` bytes). */
static int fp_post_chunked(int port, const char *path, const uint8_t *body, size_t n, size_t chunk, fp_reply *out)
{
    size_t cap = n + (n / chunk + 2) * 16 + 512, len = 0;
    char *msg = malloc(cap);
    len += (size_t)snprintf(msg, cap, "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                      "Transfer-Encoding: chunked\r\n\r\n", path);
    for (size_t off = 0; off < n; off += chunk) {
        size_t c = n - off < chunk ? n - off : chunk;
        len += (size_t)snprintf(msg + len, cap - len, "%zx\r\n", c);
        memcpy(msg + len, body + off, c);
        len += c;
        memcpy(msg + len, "\r\n", 2);
        len += 2;
    }
    memcpy(msg + len, "0\r\n\r\n", 5);
    len += 5;
    int ok = fp_request(port, NULL, msg, len, out);
    free(msg);
    return ok ? out->status : 0;
}

static void test_http_post(void)
{
    enum { N = 100 * 1000 };
    fpp_http *s = fp_start(200 * 1000);
    if (!s) return;
    int port = fpp_http_port(s);
    uint8_t *body = fp_pattern(N);
    char head[256];
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                "Content-Type: application/x-frame\r\nContent-Length: %d\r\n\r\n", N);
    fp_reply r;
    CHECK(fp_request(port, head, body, N, &r));
    CHECK_MSG(r.status == 200, "status %d", r.status);
    CHECK_MSG(r.body_len == N && !memcmp(r.body, body, N), "echoed %zu bytes", r.body_len);
    CHECK(strstr(r.raw, "Content-Type: application/octet-stream\r\n") != NULL);
    fp_reply_free(&r);
    CHECK(fp_post_chunked(port, "/echo", body, N, 7000, &r) == 200);
    CHECK_MSG(r.body_len == N && !memcmp(r.body, body, N), "echoed %zu bytes (chunked)", r.body_len);
    fp_reply_free(&r);
    /* the request's content type reaches the handler */
    CHECK(fp_request(port, "POST /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/csv\r\n"
                           "Content-Length: 3\r\n\r\nabc", NULL, 0, &r));
    CHECK_MSG(fp_body_is(&r, "POST /info q= ct=text/csv n=3"), "%s", r.raw);
    fp_reply_free(&r);
    free(body);
    fpp_http_stop(s);
}

static void test_http_too_big(void)
{
    enum { MAX = 200 * 1000 };
    fpp_http *s = fp_start(MAX);
    if (!s) return;
    int port = fpp_http_port(s);
    uint8_t *body = fp_pattern(MAX + 50 * 1000);
    char head[256];
    fp_reply r;
    /* exactly the limit is fine */
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n", MAX);
    CHECK(fp_request(port, head, body, MAX, &r));
    CHECK_MSG(r.status == 200 && r.body_len == MAX && !memcmp(r.body, body, MAX), "status %d, %zu bytes", r.status,
              r.body_len);
    fp_reply_free(&r);

    int before = atomic_load(&fp_calls);
    /* a declared length over the limit is refused before any body is sent */
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
             MAX + 1);
    CHECK(fp_request(port, head, NULL, 0, &r));
    CHECK_MSG(r.status == 413, "status %d: %s", r.status, r.raw);
    CHECK(r.raw && strstr(r.raw, "too large"));
    fp_reply_free(&r);
    /* even with Expect: 100-continue (no 100 is sent, the 413 comes at once) */
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n"
                                "Content-Length: 99999999999999\r\n\r\n");
    CHECK(fp_request(port, head, NULL, 0, &r));
    CHECK_MSG(r.status == 413, "status %d: %s", r.status, r.raw);
    fp_reply_free(&r);
    /* a chunked body that grows past the limit: read to the end, then 413 */
    CHECK(fp_post_chunked(port, "/echo", body, MAX + 50 * 1000, 16384, &r) == 413);
    fp_reply_free(&r);
    CHECK(atomic_load(&fp_calls) == before); /* the handler never saw them */

    /* the server still serves */
    CHECK(fp_get(port, "/after", &r) == 200);
    fp_reply_free(&r);
    free(body);
    fpp_http_stop(s);

    /* max_body 0: only empty bodies */
    s = fp_start(0);
    if (!s) return;
    port = fpp_http_port(s);
    CHECK(fp_request(port, "POST /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", NULL, 0, &r));
    CHECK(r.status == 200);
    fp_reply_free(&r);
    CHECK(fp_request(port, "POST /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", NULL, 0, &r));
    CHECK(r.status == 413);
    fp_reply_free(&r);
    fpp_http_stop(s);

    /* max_body SIZE_MAX: no limit, and no overflow in the buffer sizing */
    s = fp_start(SIZE_MAX);
    if (!s) return;
    CHECK(fp_request(fpp_http_port(s), "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                       "Content-Length: 3\r\n\r\nxyz", NULL, 0, &r));
    CHECK(r.status == 200 && fp_body_is(&r, "xyz"));
    fp_reply_free(&r);
    fpp_http_stop(s);
}

static void test_http_garbage(void)
{
    fpp_http *s = fp_start(1024);
    if (!s) return;
    int port = fpp_http_port(s);
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "\x01\x02\x03 nonsense HTTP/1.1\r\n\r\n",
        "GET /x HTTP/9.9\r\n\r\n", /* 505 version not supported */
        "GET /x HTTP/1.1\r\nContent-Length: banana\r\n\r\n",
        "GET /x HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET http://example.com/x HTTP/1.1\r\n\r\n", /* not a path */
        "G(T /x HTTP/1.1\r\n\r\n",                 /* not a token */
    };
    int before = atomic_load(&fp_calls);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fp_reply r;
        double t0 = fpi_now();
        CHECK(fp_request(port, bad[i], NULL, 0, &r));
        printf("  bad request %zu: status %d after %.2f s\n", i, r.status, fpi_now() - t0);
        /* either a 4xx or the connection was just closed */
        CHECK_MSG(r.status == 0 || (r.status >= 400 && r.status < 500) || r.status == 505, "request %zu: status %d", i,
                  r.status);
        fp_reply_free(&r);
        fp_reply good;
        CHECK_MSG(fp_get(port, "/still-alive", &good) == 200, "after request %zu", i);
        fp_reply_free(&good);
    }
    CHECK(atomic_load(&fp_calls) == before + (int)(sizeof bad / sizeof bad[0])); /* only the good requests */
    fpp_http_stop(s);
}

typedef struct fp_slow_call {
    int port;
    fp_reply reply;
} fp_slow_call;

static void *fp_slow_client(void *arg)
{
    fp_slow_call *c = arg;
    fp_get(c->port, "/slow", &c->reply);
    return NULL;
}

static void test_http_stop(void)
{
    /* stop() with a handler in flight waits for it */
    fpp_http *s = fp_start(1024);
    if (!s) return;
    atomic_store(&fp_slow_entered, 0);
    atomic_store(&fp_slow_done, 0);
    fp_slow_call call = {fpp_http_port(s), {0}};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fp_slow_client, &call) == 0);
    for (int i = 0; i < 500 && !atomic_load(&fp_slow_entered); i++) fp_sleep_ms(10);
    CHECK(atomic_load(&fp_slow_entered));
    fpp_http_stop(s);
    CHECK(atomic_load(&fp_slow_done));
    pthread_join(t, NULL);
    /* the client got the answer or a closed connection, nothing else */
    CHECK_MSG(call.reply.status == 200 || call.reply.status == 0, "status %d", call.reply.status);
    fp_reply_free(&call.reply);
    /* start and stop at once; stop(NULL) */
    s = fp_start(1024);
    fpp_http_stop(s);
    fpp_http_stop(NULL);
    /* a connection left open (idle, half a request) does not block stop */
    s = fp_start(1024);
    if (!s) return;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)fpp_http_port(s));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    const char *half = "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nab";
    CHECK(send(fd, half, strlen(half), MSG_NOSIGNAL) == (ssize_t)strlen(half));
    fp_sleep_ms(50);
    double t0 = fpi_now();
    fpp_http_stop(s);
    CHECK_MSG(fpi_now() - t0 < 5, "stop took %.1f s", fpi_now() - t0);
    close(fd);
}

static void test_http_start_errors(void)
{
    fpp_http *s = fp_start(16), *s2 = (fpp_http *)&s2;
    if (!s) return;
    int port = fpp_http_port(s);
    CHECK_ERR(fpp_http_start("127.0.0.1", port, 16, fp_handler, NULL, &s2), FP_EIO);
    CHECK(s2 == NULL);
    char want[32];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    CHECK_MSG(strstr(fp_last_error(), want) != NULL, "%s", fp_last_error());
    CHECK_ERR(fpp_http_start("localhost", 0, 16, fp_handler, NULL, &s2), FP_EINVAL);
    CHECK_ERR(fpp_http_start("1.2.3", 0, 16, fp_handler, NULL, &s2), FP_EINVAL);
    CHECK_ERR(fpp_http_start(NULL, 0, 16, fp_handler, NULL, &s2), FP_EINVAL);
    CHECK_ERR(fpp_http_start("127.0.0.1", -1, 16, fp_handler, NULL, &s2), FP_EINVAL);
    CHECK_ERR(fpp_http_start("127.0.0.1", 65536, 16, fp_handler, NULL, &s2), FP_EINVAL);
    CHECK_ERR(fpp_http_start("127.0.0.1", 0, 16, NULL, NULL, &s2), FP_EINVAL);
    fpp_http_stop(s);
}

static void test_http_metrics(void)
{
    /* the two together, as a worker uses them */
    CHECK_OK(fpp_metrics_create(&fp_registry));
    CHECK_OK(fpp_metrics_declare(fp_registry, "fp_requests_total", FPP_COUNTER, "Requests.", "path", NULL, 0));
    fpp_metrics_add(fp_registry, "fp_requests_total", "/metrics", 1);
    fpp_http *s = fp_start(1024);
    if (s) {
        fp_reply r;
        CHECK(fp_get(fpp_http_port(s), "/metrics", &r) == 200);
        CHECK_MSG(fp_body_is(&r, "# HELP fp_requests_total Requests.\n# TYPE fp_requests_total counter\n"
                                 "fp_requests_total{path=\"/metrics\"} 1\n"),
                  "%s", r.raw);
        CHECK(strstr(r.raw, "Content-Type: text/plain; version=0.0.4\r\n") != NULL);
        fp_reply_free(&r);
        fpp_http_stop(s);
    }
    fpp_metrics_destroy(fp_registry);
    fp_registry = NULL;
}

TEST_LIST = {
    {"metrics_basic", test_metrics_basic},
    {"metrics_quantile", test_metrics_quantile},
    {"metrics_render", test_metrics_render},
    {"metrics_escape", test_metrics_escape},
    {"metrics_refuse", test_metrics_refuse},
    {"metrics_overflow", test_metrics_overflow},
    {"metrics_oom", test_metrics_oom},
    {"metrics_threads", test_metrics_threads},
    {"http_get", test_http_get},
    {"http_post", test_http_post},
    {"http_too_big", test_http_too_big},
    {"http_garbage", test_http_garbage},
    {"http_stop", test_http_stop},
    {"http_start_errors", test_http_start_errors},
    {"http_metrics", test_http_metrics},
    {NULL, NULL},
};
