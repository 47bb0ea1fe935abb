/* cmd_gateway.c — `fogpipe gateway`: the pipeline's front door over HTTP.
 * POST /v1/detect with an image body answers the object `fogpipe detect`
 * prints; GET /v1/stats gives throughput, latency percentiles and, with
 * --stage-http, each stage's own figures; /metrics and /healthz. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "common/common.h"
#include "gw_side.h"
#include "pipeline/curve.h"
#include "pipeline/http.h"
#include "pipeline/metrics.h"

static fp_flag fp_gw_flags[] = {
    {"plan", 'p', "PATH", "plan file (fogpipe plan -o)", NULL},
    {"first", 'f', "LIST", "stage 0's replicas, comma separated (default tcp://127.0.0.1:5601)", NULL},
    {"results", 'r', "ENDPOINT", "where the last stage sends results (default tcp://127.0.0.1:5600; tcp://0.0.0.0:5600 serves other hosts)", NULL},
    {"http", 0, "HOST:PORT", "the API (default 127.0.0.1:8080; 0.0.0.0:8080 serves other hosts)", NULL},
    {"stage-http", 0, "LIST", "the stages' HTTP servers (HOST:PORT, comma separated), for per-stage figures in /v1/stats",
     NULL},
    {"names", 'n', "PATH", "class names, one per line (default: the model's, \"face\", or \"class N\")", NULL},
    {"window", 'W', "N", "frames in flight at most (default 8)", NULL},
    {"resend-ms", 0, "MS", "send a frame again when its result has not come after this long (default 3000)", NULL},
    {"timeout", 0, "SECONDS", "answer 504 when a request's result takes longer (default 60)", NULL},
    {"max-body", 0, "BYTES", "largest request body (default 16777216)", NULL},
    {"input", 0, "MODE", "how images reach stage 0: auto (default), image, pixels", NULL},
    {"keep-jpeg", 0, NULL, "send JPEG files as they are (default: re-encoded losslessly with Huffman tables made "
                           "for each, when that is smaller; the pixels stage 0 decodes are the same)", NULL},
    {"cfg", 'c', "PATH", "the model's cfg or TF.js manifest, when not at the plan's path", NULL},
    {"weights", 'w', "PATH", "with --serve-weights: the darknet weights, when not at the plan's path", NULL},
    {"serve-weights", 0, NULL, "serve each stage its own layers' weights at GET /v1/weights/K (for fogpipe stage "
                               "--weights-from; checked against the plan's per-stage SHA-256; no token needed)", NULL},
    {"hwm", 0, "N", "frames queued per socket before the gateway blocks (default 2)", NULL},
    {"token-file", 0, "PATH", "require `Authorization: Bearer <the file's first line>` on /v1/* and /metrics (401 otherwise)",
     NULL},
    {"curve-key", 0, "PATH", "authenticate and encrypt the links to the stages with ZeroMQ CURVE using this key file "
                             "(fogpipe keys; the stages need the same file; docs/security.md)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_gw_cmd = {
    "gateway", "--plan PATH [--first LIST] [--results EP] [--http HOST:PORT] [--stage-http LIST]",
    "Serves a running pipeline (fogpipe stage workers) over HTTP:\n"
    "  POST /v1/detect[?name=N]  body: a JPEG/PNG/BMP/GIF/PNM image -> the JSON\n"
    "                            object fogpipe detect prints (\"image\": N)\n"
    "  GET  /v1/stats            throughput, latency percentiles, resends, per stage\n"
    "  GET  /metrics             Prometheus text;  GET /healthz\n"
    "  GET  /v1/weights/K        with --serve-weights: stage K's weights blob",
    "Frames go to stage 0 with a bounded window (requests wait for room: that\n"
    "is the backpressure; 503 after --timeout); each is kept until its result\n"
    "comes and sent again after --resend-ms. A body that is not an image gets\n"
    "400, one over --max-body 413, an image the pipeline could not process 422.\n"
    "With --token-file every request but /healthz and /v1/weights needs the\n"
    "bearer token (the weights blobs are checked by hash, not secret: keep the\n"
    "port inside the cluster when the model is).\n"
    "SIGTERM/SIGINT: stop accepting, finish the requests in flight, exit 0.",
    fp_gw_flags, 0, 0};

typedef struct {
    fpp_gateway *gw;
    fp_net *net;
    fp_names nm;
    fp_input_mode mode;
    int optimize_jpeg;     /* re-encode JPEGs losslessly when smaller (no --keep-jpeg) */
    double timeout;
    fpp_metrics *m;
    const fp_plan *plan;
    int n_stage_http;
    char token[256];         /* bearer token, "" = none */
    char stage_host[FPP_MAX_PEERS][256];
    int stage_port[FPP_MAX_PEERS];
    fpp_stage_blobs blobs;   /* --serve-weights; n = 0 otherwise */
} fp_gw_server;

/* GET /v1/weights/K: stage K's weights blob. */
static void fp_gw_weights(fp_gw_server *g, const char *k, fpp_http_response *resp)
{
    char *end;
    long i = strtol(k, &end, 10);
    if (!g->blobs.n) {
        fpp_http_reply(resp, 404, "text/plain", "this gateway does not serve weights (fogpipe gateway --serve-weights)\n");
        return;
    }
    if (!*k || *end || i < 0 || i >= g->blobs.n || (k[0] == '0' && k[1])) {
        fpp_http_reply(resp, 404, "text/plain", "no stage \"%.32s\": the plan has stages 0..%d\n", k, g->blobs.n - 1);
        return;
    }
    if (!(resp->body = malloc(g->blobs.len[i] ? g->blobs.len[i] : 1))) {
        fpp_http_reply(resp, 503, "text/plain", "out of memory\n");
        return;
    }
    memcpy(resp->body, g->blobs.blob[i], g->blobs.len[i]);
    resp->body_len = g->blobs.len[i];
    resp->status = 200;
    resp->content_type = "application/octet-stream";
    fpp_metrics_add(g->m, "fogpipe_gateway_weights_served_total", NULL, 1);
}

static const double fp_lat_buckets[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30};

static void fp_gw_detect(fp_gw_server *g, const fpp_http_request *req, fpp_http_response *resp)
{
    char name[256] = "request";
    const char *q = strstr(req->query, "name=");
    if (q && (q == req->query || q[-1] == '&')) {
        size_t n = strcspn(q + 5, "&");
        snprintf(name, sizeof name, "%.*s", (int)(n < 255 ? n : 255), q + 5);
    }
    fp_gw_input in;
    if (fp_gw_input_make(g->net, g->mode, g->optimize_jpeg, req->body, req->body_len, name, &in)) {
        fpp_metrics_add(g->m, "fogpipe_gateway_requests_total", "400", 1);
        fpp_http_reply(resp, 400, "application/json", "{\"error\":\"%s\"}\n", "the body is not an image (expected JPEG, PNG, BMP, GIF or PNM bytes)");
        return;
    }
    uint64_t id;
    double t0 = fpi_now();
    fp_status st = fpp_gateway_submit(g->gw, &in.frame, g->timeout, &id);
    fp_gw_input_free(&in);
    if (st) {
        fpp_metrics_add(g->m, "fogpipe_gateway_requests_total", "503", 1);
        fpp_http_reply(resp, 503, "application/json", "{\"error\":\"the pipeline is busy: no room in %.0f s\"}\n", g->timeout);
        return;
    }
    char *json = NULL;
    size_t len;
    if (fpp_gateway_wait(g->gw, id, g->timeout - (fpi_now() - t0), &json, &len)) {
        fpp_gateway_forget(g->gw, id);
        fpp_metrics_add(g->m, "fogpipe_gateway_requests_total", "504", 1);
        fpp_http_reply(resp, 504, "application/json", "{\"error\":\"no result within %.0f s\"}\n", g->timeout);
        return;
    }
    fpp_metrics_observe(g->m, "fogpipe_gateway_latency_seconds", NULL, fpi_now() - t0);
    char err[512];
    fp_detection *d = NULL;
    int n, w, h;
    cJSON *obj = fp_gw_result(json, name, g->net, &g->nm, &d, &n, &w, &h, err, sizeof err);
    free(json);
    free(d);
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "error", err);
        text = cJSON_PrintUnformatted(e);
        cJSON_Delete(e);
        fpp_metrics_add(g->m, "fogpipe_gateway_requests_total", "422", 1);
        resp->status = 422;
    } else {
        fpp_metrics_add(g->m, "fogpipe_gateway_requests_total", "200", 1);
        resp->status = 200;
    }
    resp->content_type = "application/json";
    resp->body = text;
    resp->body_len = text ? strlen(text) : 0;
}

static void fp_gw_stats(fp_gw_server *g, fpp_http_response *resp)
{
    fpp_gateway_stats s;
    fpp_gateway_stats_get(g->gw, &s);
    cJSON *o = cJSON_CreateObject(), *lat, *arr;
    cJSON_AddNumberToObject(o, "submitted", (double)s.submitted);
    cJSON_AddNumberToObject(o, "completed", (double)s.completed);
    cJSON_AddNumberToObject(o, "in_flight", s.in_flight);
    cJSON_AddNumberToObject(o, "resent", (double)s.resent);
    cJSON_AddNumberToObject(o, "duplicates", (double)s.duplicates);
    cJSON_AddNumberToObject(o, "bad_results", (double)s.bad_results);
    cJSON_AddNumberToObject(o, "elapsed_s", s.elapsed_s);
    cJSON_AddNumberToObject(o, "images_per_min", s.elapsed_s > 0 ? s.completed * 60.0 / s.elapsed_s : 0);
    cJSON_AddNumberToObject(o, "bytes_per_frame_to_stage0",
                            s.submitted ? (double)s.bytes_out / (double)(s.submitted + s.resent) : 0);
    lat = cJSON_AddObjectToObject(o, "latency_ms");
    cJSON_AddNumberToObject(lat, "p50", s.latency_p50_s * 1e3);
    cJSON_AddNumberToObject(lat, "p99", s.latency_p99_s * 1e3);
    cJSON_AddNumberToObject(lat, "max", s.latency_max_s * 1e3);
    arr = cJSON_AddArrayToObject(o, "stages");
    char *text = malloc(1 << 20);
    for (int i = 0; text && i < g->n_stage_http; i++) {
        cJSON *st = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, st);
        char addr[300];
        snprintf(addr, sizeof addr, "%s:%d", g->stage_host[i], g->stage_port[i]);
        cJSON_AddStringToObject(st, "http", addr);
        if (fpp_http_get(g->stage_host[i], g->stage_port[i], "/metrics", 2, text, 1 << 20) != 200) {
            cJSON_AddStringToObject(st, "error", "unreachable");
            continue;
        }
        static const char *keys[][2] = {{"frames", "fogpipe_compute_seconds_count"},
                                        {"compute_s", "fogpipe_compute_seconds_sum"},
                                        {"frames_out", "fogpipe_frames_out_total"},
                                        {"bytes_in", "fogpipe_bytes_in_total"},
                                        {"bytes_out", "fogpipe_bytes_out_total"},
                                        {"errors", "fogpipe_errors_total"},
                                        {"queue_depth", "fogpipe_queue_depth"}};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            double v = fpp_prom_sum(text, keys[k][1], NULL);
            cJSON_AddNumberToObject(st, keys[k][0], v == v ? v : 0);
        }
    }
    free(text);
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = cJSON_PrintUnformatted(o);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    cJSON_Delete(o);
}

/* Compares the Authorization header with "Bearer <token>" in time that does
 * not depend on where they differ. */
static int fp_gw_authorized(const fp_gw_server *g, const char *header)
{
    if (!g->token[0]) return 1;
    if (strncmp(header, "Bearer ", 7)) return 0;
    const char *a = header + 7, *b = g->token;
    size_t na = strlen(a), nb = strlen(b);
    unsigned diff = na != nb;
    for (size_t i = 0; i < nb; i++) diff |= (unsigned)(unsigned char)b[i] ^ (unsigned)(unsigned char)(i < na ? a[i] : 0);
    return diff == 0;
}

static void fp_gw_handler(void *user, const fpp_http_request *req, fpp_http_response *resp)
{
    fp_gw_server *g = user;
    int get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    if (get && !strncmp(req->path, "/v1/weights/", 12)) {
        fp_gw_weights(g, req->path + 12, resp);
    } else if (strcmp(req->path, "/healthz") && !fp_gw_authorized(g, req->authorization)) {
        fpp_metrics_add(g->m, "fogpipe_gateway_requests_total", "401", 1);
        fpp_http_reply(resp, 401, "application/json", "{\"error\":\"missing or wrong bearer token\"}\n");
    } else if (!strcmp(req->path, "/v1/detect")) {
        if (strcmp(req->method, "POST")) fpp_http_reply(resp, 405, "text/plain", "POST an image to /v1/detect\n");
        else fp_gw_detect(g, req, resp);
    } else if (get && !strcmp(req->path, "/v1/stats")) {
        fp_gw_stats(g, resp);
    } else if (get && !strcmp(req->path, "/healthz")) {
        fpp_http_reply(resp, 200, "text/plain", "ok\n");
    } else if (get && !strcmp(req->path, "/metrics")) {
        fpp_gateway_stats s;
        fpp_gateway_stats_get(g->gw, &s);
        fpp_metrics_set(g->m, "fogpipe_gateway_in_flight", NULL, s.in_flight);
        fpp_metrics_set(g->m, "fogpipe_gateway_resent_total", NULL, (double)s.resent);
        fpp_metrics_set(g->m, "fogpipe_gateway_duplicates_total", NULL, (double)s.duplicates);
        fpp_metrics_set(g->m, "fogpipe_auth_denied_total", NULL, (double)s.auth_denied);
        fpp_metrics_reply(g->m, resp);
    } else {
        fpp_http_reply(resp, 404, "text/plain", "not found: POST /v1/detect, GET /v1/stats, /metrics, /healthz\n");
    }
}

/* --serve-weights: every stage's blob, from the plan's weights (a TF.js
 * model came with them), each checked against the plan's SHA-256. */
static int fp_gw_load_blobs(fp_gw_server *g, const fp_plan *plan, const fpp_model_paths *paths)
{
    const char *w = paths->weights && *paths->weights ? paths->weights : plan->weights;
    if (!strchr(plan->cfg_hash, '@')) {
        if (!w[0]) {
            fprintf(stderr, "fogpipe gateway: --serve-weights: the plan is for random weights; there are none to serve\n");
            return FP_EXIT_USAGE;
        }
        char got[48];
        if (fp_part_hash_file(w, got, sizeof got)) return fp_cli_fail();
        if (plan->weights_hash[0] && strcmp(got, plan->weights_hash)) {
            fprintf(stderr, "fogpipe gateway: --serve-weights: %s hashes to %s, but the plan was made for %s\n", w, got,
                    plan->weights_hash);
            return FP_EXIT_FAIL;
        }
        if (fp_net_load_weights(g->net, w)) return fp_cli_fail();
    }
    if (fpp_stage_blobs_make(plan, g->net, &g->blobs)) {
        fprintf(stderr, "fogpipe gateway: --serve-weights: %s\n", fp_last_error());
        return FP_EXIT_FAIL;
    }
    size_t total = 0;
    for (int k = 0; k < g->blobs.n; k++) total += g->blobs.len[k];
    fprintf(stderr, "gateway: serving %d stages' weights (%.1f MiB) at /v1/weights/0..%d\n", g->blobs.n,
            total / 1048576.0, g->blobs.n - 1);
    return 0;
}

static volatile sig_atomic_t fp_gw_stop;
static void fp_gw_on_signal(int sig)
{
    (void)sig;
    fp_gw_stop = 1;
}

int fp_cmd_gateway(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_gw_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *plan_path = fp_flag_get(&fp_gw_cmd, "plan"), *v;
    if (!plan_path) return fp_args_require(&fp_gw_cmd, "plan");
    long window = 8, resend_ms = 3000, max_body = 16 << 20, hwm = 2;
    double timeout = 60;
    if ((rc = fp_flag_int(&fp_gw_cmd, "window", 1, 4096, &window)) ||
        (rc = fp_flag_int(&fp_gw_cmd, "resend-ms", 10, 3600000, &resend_ms)) ||
        (rc = fp_flag_int(&fp_gw_cmd, "max-body", 1024, 1L << 30, &max_body)) ||
        (rc = fp_flag_int(&fp_gw_cmd, "hwm", 1, 64, &hwm)) ||
        (rc = fp_flag_float(&fp_gw_cmd, "timeout", 0.1, 3600, &timeout)))
        return rc;
    fp_gw_server g = {.timeout = timeout};
    const char *mode_s = fp_flag_get(&fp_gw_cmd, "input");
    int mode = mode_s ? fp_input_mode_parse(mode_s) : FP_INPUT_AUTO;
    if (mode < 0) {
        fprintf(stderr, "fogpipe gateway: --input: expected auto, image or pixels (got \"%s\")\n", mode_s);
        return FP_EXIT_USAGE;
    }
    g.mode = (fp_input_mode)mode;
    g.optimize_jpeg = !fp_flag_get(&fp_gw_cmd, "keep-jpeg");
    fpp_gateway_opts go = {.window = (int)window, .resend_s = resend_ms / 1000.0, .hwm = (int)hwm,
                           .max_result_bytes = 64u << 20};
    go.results = (v = fp_flag_get(&fp_gw_cmd, "results")) ? v : "tcp://127.0.0.1:5600";
    char host[256];
    int port;
    const char *http = (v = fp_flag_get(&fp_gw_cmd, "http")) ? v : "127.0.0.1:8080";
    if (fpp_endpoints_parse((v = fp_flag_get(&fp_gw_cmd, "first")) ? v : "tcp://127.0.0.1:5601", "--first", &go.first)) {
        fprintf(stderr, "fogpipe gateway: %s\n", fp_last_error());
        return FP_EXIT_USAGE;
    }
    if (fp_cli_host_port(http, host, sizeof host, &port)) {
        fprintf(stderr, "fogpipe gateway: --http: expected HOST:PORT (got \"%s\")\n", http);
        return FP_EXIT_USAGE;
    }
    if ((v = fp_flag_get(&fp_gw_cmd, "stage-http"))) {
        for (const char *p = v; *p; p += *p == ',') {
            size_t n = strcspn(p, ",");
            char item[300];
            snprintf(item, sizeof item, "%.*s", (int)(n < 299 ? n : 299), p);
            int i = g.n_stage_http;
            if (i == FPP_MAX_PEERS || n >= sizeof item ||
                fp_cli_host_port(item, g.stage_host[i], sizeof g.stage_host[i], &g.stage_port[i])) {
                fprintf(stderr, "fogpipe gateway: --stage-http: expected at most %d HOST:PORT, comma separated (got \"%s\")\n",
                        FPP_MAX_PEERS, item);
                return FP_EXIT_USAGE;
            }
            g.n_stage_http++;
            p += n;
        }
    }
    if ((v = fp_flag_get(&fp_gw_cmd, "token-file"))) {
        char *text = NULL;
        size_t len;
        if (fpi_read_file(v, 4096, &text, &len)) return fp_cli_fail();
        size_t n = strcspn(text, "\r\n");
        if (n < 16 || n >= sizeof g.token) {
            fprintf(stderr, "fogpipe gateway: --token-file: %s: the token (first line) must be 16..%zu bytes\n", v,
                    sizeof g.token - 1);
            fpi_free(text);
            return FP_EXIT_USAGE;
        }
        memcpy(g.token, text, n);
        g.token[n] = '\0';
        fpi_free(text);
    }
    fpp_curve_key key;
    if ((rc = fp_cli_curve_key(&fp_gw_cmd, &key, &go.curve))) return rc;
    fp_plan plan;
    fpp_model_paths paths = {.cfg = fp_flag_get(&fp_gw_cmd, "cfg"), .weights = fp_flag_get(&fp_gw_cmd, "weights")};
    fpp_http *srv = NULL;
    const char *names = fp_flag_get(&fp_gw_cmd, "names");
    if (fp_plan_load(plan_path, NULL, &plan) || fpp_load_plan_model(&plan, -1, &paths, 1, &g.net)) {
        rc = fp_cli_fail();
        goto done;
    }
    g.plan = &plan;
    if (fp_flag_get(&fp_gw_cmd, "serve-weights") && (rc = fp_gw_load_blobs(&g, &plan, &paths))) goto done;
    if (names && (rc = fp_names_load(names, &g.nm))) goto done;
    if (fpp_metrics_create(&g.m) ||
        fpp_metrics_declare(g.m, "fogpipe_gateway_requests_total", FPP_COUNTER, "Detect requests by HTTP status.", "status",
                            NULL, 0) ||
        fpp_metrics_declare(g.m, "fogpipe_gateway_latency_seconds", FPP_HISTOGRAM, "Request to result.", NULL, fp_lat_buckets,
                            (int)(sizeof fp_lat_buckets / sizeof fp_lat_buckets[0])) ||
        fpp_metrics_declare(g.m, "fogpipe_gateway_in_flight", FPP_GAUGE, "Frames awaiting their result.", NULL, NULL, 0) ||
        fpp_metrics_declare(g.m, "fogpipe_gateway_resent_total", FPP_GAUGE, "Frames sent again after a timeout.", NULL, NULL,
                            0) ||
        fpp_metrics_declare(g.m, "fogpipe_gateway_duplicates_total", FPP_GAUGE, "Results that came twice.", NULL, NULL, 0) ||
        fpp_metrics_declare(g.m, "fogpipe_gateway_weights_served_total", FPP_COUNTER,
                            "Stage weights blobs served (GET /v1/weights/K).", NULL, NULL, 0) ||
        fpp_metrics_declare(g.m, "fogpipe_auth_denied_total", FPP_GAUGE,
                            "Peers refused on the result socket because they do not hold the CURVE key.", NULL, NULL, 0) ||
        fpp_gateway_create(&go, &g.gw) ||
        fpp_http_start(host, port, (size_t)max_body, fp_gw_handler, &g, &srv)) {
        rc = fp_cli_fail();
        goto done;
    }
    fprintf(stderr, "gateway: http://%s:%d/v1/detect; results on %s; stage 0 at %s%s%s\n", host, fpp_http_port(srv),
            go.results, go.first.ep[0], go.first.n > 1 ? " (and more)" : "", go.curve ? "; links CURVE-encrypted" : "");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fp_gw_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (!fp_gw_stop) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "gateway: stopping\n");
done:
    fpp_http_stop(srv); /* waits for the requests in flight */
    fpp_gateway_destroy(g.gw);
    fpp_metrics_destroy(g.m);
    fp_names_free(&g.nm);
    fpp_stage_blobs_free(&g.blobs);
    fp_net_destroy(g.net);
    memset(&key, 0, sizeof key);
    return rc;
}
