/* cmd_stage.c — `fogpipe stage`: one pipeline stage worker (a container's
 * entry point; every flag has a FOGPIPE_* environment twin). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "pipeline/curve.h"
#include "pipeline/pipeline.h"

static fp_flag fp_stage_flags[] = {
    {"plan", 'p', "PATH", "plan file (fogpipe plan -o)", NULL},
    {"stage", 'k', "K", "which stage of the plan to run (0 = the first)", NULL},
    {"bind", 'b', "ENDPOINT", "where to receive frames (default tcp://127.0.0.1:<5601+K>: loopback; tcp://0.0.0.0:PORT serves other hosts)", NULL},
    {"next", 'n', "LIST", "the next stage's replicas, comma separated, or the gateway's result endpoint for the last "
                          "stage (default tcp://127.0.0.1:<5602+K>, the last stage tcp://127.0.0.1:5600)", NULL},
    {"http", 0, "HOST:PORT", "health, readiness and metrics server (default 127.0.0.1:<9601+K>; off = none; port 0 = any)", NULL},
    {"cfg", 'c', "PATH", "the model's cfg or TF.js manifest, when not at the plan's path (must hash as the plan says)", NULL},
    {"weights", 'w', "PATH", "the weights, when not at the plan's path (must hash as the plan says)", NULL},
    {"weights-from", 0, "URL", "fetch only this stage's weights from http://HOST:PORT/v1/weights/K (fogpipe gateway "
                               "--serve-weights); refused unless their SHA-256 is the plan's", NULL},
    {"weights-timeout", 0, "SECONDS", "with --weights-from: keep trying this long while the server is not up "
                                      "(default 300)", NULL},
    {"threads", 't', "N", "kernel threads (default: the plan's for this stage's device, else 1)", NULL},
    {"threshold", 0, "T", "last stage: score threshold (default: the model's)", NULL},
    {"nms", 0, "N", "last stage: NMS IoU threshold, 0 = off (default: the model's)", NULL},
    {"max-image-bytes", 0, "N", "stage 0: largest encoded image accepted (default 16777216)", NULL},
    {"hwm", 0, "N", "frames queued per socket before senders block (default 2)", NULL},
    {"drain", 0, "SECONDS", "on SIGTERM, time allowed to finish and send received frames (default 10)", NULL},
    {"name", 0, "TEXT", "replica name for logs (default: stage K)", NULL},
    {"curve-key", 0, "PATH", "authenticate and encrypt both links with ZeroMQ CURVE using this key file (fogpipe keys; "
                             "every member of the pipeline needs the same file; docs/security.md)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_stage_cmd = {
    "stage", "--plan PATH --stage K [--bind EP] [--next EP[,EP...]] [--http HOST:PORT] [--threads N]",
    "Runs one stage of a plan: receives frames (docs/wire-format.md) over\n"
    "ZeroMQ, runs the stage's layers, and sends the outgoing cut, encoded with\n"
    "the plan's codec, to the next stage's replicas (round robin; senders block\n"
    "when every replica is busy). Stage 0 also takes encoded images; the last\n"
    "stage decodes boxes and sends results to the gateway. Loads only its own\n"
    "layers' weights: from the weights file, or with --weights-from as a blob\n"
    "the gateway serves (then the model's weights files are not needed here).",
    "HTTP: GET /healthz (alive), /readyz (weights loaded and a peer of the next\n"
    "hop connected), /metrics (Prometheus: frames and bytes in/out by codec,\n"
    "compute-time histogram, queue depth, errors by kind). Malformed frames are\n"
    "dropped and counted; the worker keeps serving. SIGTERM or SIGINT: stop\n"
    "taking frames, finish and send those received, exit 0. Logs go to stderr\n"
    "(FP_LOG_LEVEL=info for more).",
    fp_stage_flags, 0, 0};

static volatile sig_atomic_t fp_stage_stop;

static void fp_stage_on_signal(int sig)
{
    (void)sig;
    fp_stage_stop = 1;
}

/* Splits "HOST:PORT" (the last colon) into host and port. */
int fp_cli_host_port(const char *text, char *host, size_t n, int *port)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= n) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535) return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1] */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    *port = (int)p;
    return 0;
}

int fp_cmd_stage(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_stage_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    fpp_stage_opts o = {0};
    long stage = -1, threads = 0, hwm = 2, max_image = 16 << 20;
    double thresh = -1, nms = -1, drain = 10, wtimeout = 300;
    o.plan = fp_flag_get(&fp_stage_cmd, "plan");
    if (!o.plan) return fp_args_require(&fp_stage_cmd, "plan");
    if (!fp_flag_get(&fp_stage_cmd, "stage")) return fp_args_require(&fp_stage_cmd, "stage");
    if ((rc = fp_flag_int(&fp_stage_cmd, "stage", 0, FP_PART_MAX_DEVICES - 1, &stage)) ||
        (rc = fp_flag_int(&fp_stage_cmd, "threads", 1, 256, &threads)) ||
        (rc = fp_flag_int(&fp_stage_cmd, "hwm", 1, 64, &hwm)) ||
        (rc = fp_flag_int(&fp_stage_cmd, "max-image-bytes", 1024, 1L << 30, &max_image)) ||
        (rc = fp_flag_float(&fp_stage_cmd, "threshold", 0, 1e6, &thresh)) ||
        (rc = fp_flag_float(&fp_stage_cmd, "nms", 0, 1, &nms)) ||
        (rc = fp_flag_float(&fp_stage_cmd, "drain", 0, 3600, &drain)) ||
        (rc = fp_flag_float(&fp_stage_cmd, "weights-timeout", 1, 86400, &wtimeout)))
        return rc;
    fp_plan plan;
    if (fp_plan_load(o.plan, NULL, &plan)) return fp_cli_fail();
    if (stage >= plan.n_stages) {
        fprintf(stderr, "fogpipe stage: --stage: %s has %d stages (0..%d); got %ld\n", o.plan, plan.n_stages,
                plan.n_stages - 1, stage);
        return FP_EXIT_USAGE;
    }
    int last = stage == plan.n_stages - 1;
    char bind[FPP_MAX_ENDPOINT], next[FPP_MAX_ENDPOINT], http[300], host[256], name[64];
    snprintf(bind, sizeof bind, "tcp://127.0.0.1:%ld", 5601 + stage);
    snprintf(next, sizeof next, "tcp://127.0.0.1:%ld", last ? 5600 : 5602 + stage);
    snprintf(http, sizeof http, "127.0.0.1:%ld", 9601 + stage);
    snprintf(name, sizeof name, "stage %ld", stage);
    const char *v;
    o.bind = (v = fp_flag_get(&fp_stage_cmd, "bind")) ? v : bind;
    if (fpp_endpoints_parse((v = fp_flag_get(&fp_stage_cmd, "next")) ? v : next, "--next", &o.next) ||
        (strncmp(o.bind, "tcp://", 6) && strncmp(o.bind, "ipc://", 6) && strncmp(o.bind, "inproc://", 9))) {
        fprintf(stderr, "fogpipe stage: %s\n",
                strncmp(o.bind, "tcp://", 6) && strncmp(o.bind, "ipc://", 6) ? "--bind: expected tcp://HOST:PORT or ipc://PATH"
                                                                             : fp_last_error());
        return FP_EXIT_USAGE;
    }
    const char *h = (v = fp_flag_get(&fp_stage_cmd, "http")) ? v : http;
    if (strcmp(h, "off")) {
        if (fp_cli_host_port(h, host, sizeof host, &o.http_port)) {
            fprintf(stderr, "fogpipe stage: --http: expected HOST:PORT or off (got \"%s\")\n", h);
            return FP_EXIT_USAGE;
        }
        o.http_host = host;
    }
    o.stage = (int)stage;
    o.paths.cfg = fp_flag_get(&fp_stage_cmd, "cfg");
    o.paths.weights = fp_flag_get(&fp_stage_cmd, "weights");
    o.paths.weights_from = fp_flag_get(&fp_stage_cmd, "weights-from");
    o.paths.weights_timeout_s = wtimeout;
    o.paths.stop = &fp_stage_stop;
    if (o.paths.weights_from && o.paths.weights) {
        fprintf(stderr, "fogpipe stage: --weights and --weights-from exclude each other\n");
        return FP_EXIT_USAGE;
    }
    char uhost[256];
    int uport;
    const char *upath;
    if (o.paths.weights_from && fpp_url_parse(o.paths.weights_from, uhost, sizeof uhost, &uport, &upath)) {
        fprintf(stderr, "fogpipe stage: --weights-from: %s\n", fp_last_error());
        return FP_EXIT_USAGE;
    }
    if (!threads) {
        const fp_plan_device *d = &plan.devices[plan.stages[stage].devices[0]];
        threads = d->threads > 0 ? d->threads : 1;
    }
    o.threads = (int)threads;
    o.thresh = thresh;
    o.nms = nms;
    o.max_image_bytes = (uint64_t)max_image;
    o.hwm = (int)hwm;
    o.drain_s = drain;
    o.name = (v = fp_flag_get(&fp_stage_cmd, "name")) ? v : name;
    fpp_curve_key key;
    if ((rc = fp_cli_curve_key(&fp_stage_cmd, &key, &o.curve))) return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fp_stage_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    fp_status st = fpp_stage_serve(&o, &fp_stage_stop);
    memset(&key, 0, sizeof key);
    if (st) {
        fprintf(stderr, "fogpipe stage %ld: %s\n", stage, fp_last_error());
        return FP_EXIT_FAIL;
    }
    return 0;
}
