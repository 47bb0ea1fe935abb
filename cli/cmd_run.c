/* cmd_run.c — `fogpipe run`: a plan's stages as local processes (a small
 * supervisor that can restart a dead one), the gateway in this process, and
 * images streamed through; JSON Lines out as `fogpipe detect` prints them. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "common/common.h"
#include "gw_side.h"
#include "pipeline/curve.h"

static fp_flag fp_run_flags[] = {
    {"plan", 'p', "PATH", "plan file (fogpipe plan -o)", NULL},
    {"respawn", 'r', NULL, "restart a stage process that dies (its frames are sent again)", NULL},
    {"threshold", 0, "T", "score threshold (default: the model's, as fogpipe detect)", NULL},
    {"nms", 0, "N", "NMS IoU threshold, 0 = off (default: the model's)", NULL},
    {"names", 'n', "PATH", "class names, one per line (default: the model's, \"face\", or \"class N\")", NULL},
    {"annotate", 'a', "DIR", "write a copy of each image with boxes and labels drawn into DIR", NULL},
    {"threads", 't', "N", "kernel threads per stage (default: the plan's per device, else 1)", NULL},
    {"window", 'W', "N", "frames in flight at most (default: 2 per stage process, at least 4)", NULL},
    {"resend-ms", 0, "MS", "send a frame again when its result has not come after this long (default 3000; "
                           "more when the pipeline's latency is higher)", NULL},
    {"timeout", 0, "SECONDS", "give up on an image after this long (default 300)", NULL},
    {"input", 0, "MODE", "how images reach stage 0: auto (default: the encoded file when smaller than the pixels), "
                         "image, pixels", NULL},
    {"keep-jpeg", 0, NULL, "send JPEG files as they are (default: re-encoded losslessly with Huffman tables made "
                           "for each, when that is smaller; the pixels stage 0 decodes are the same)", NULL},
    {"repeat", 0, "N", "stream the images N times (default 1; for benchmarks)", NULL},
    {"port-base", 0, "PORT", "first of the loopback ports to use (default: a free range)", NULL},
    {"hwm", 0, "N", "frames queued per socket before senders block (default 2)", NULL},
    {"cfg", 'c', "PATH", "the model's cfg or TF.js manifest, when not at the plan's path", NULL},
    {"weights", 'w', "PATH", "the weights, when not at the plan's path", NULL},
    {"quiet", 'q', NULL, "no JSON Lines (the summary only)", NULL},
    {"curve-key", 0, "PATH", "authenticate and encrypt every link with ZeroMQ CURVE using this key file (fogpipe keys)",
     NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_run_cmd = {
    "run", "--plan PATH [--respawn] [--threshold T] [--nms N] [--names PATH] [--annotate DIR] IMAGE...|DIR...",
    "Runs every stage of a plan as a local process (ZeroMQ over loopback;\n"
    "replicas as the plan says), streams the images through them with a\n"
    "bounded window, and prints one JSON object per image on stdout, in\n"
    "input order, exactly as `fogpipe detect` does. On stderr: a summary\n"
    "(images/min, latency p50/p99, per-stage busy %, bytes per frame per cut).",
    "A frame whose result does not come in time is sent again; every image\n"
    "gets exactly one result. Without --respawn a stage that dies stops the\n"
    "run (exit 1); with it, the stage is restarted and the run goes on.\n"
    "Directories are read for *.jpg, *.jpeg, *.png, *.bmp, *.ppm (sorted).\n"
    "Exit status 1 when an image could not be read or got an error result.",
    fp_run_flags, 1, 1 << 20};

typedef struct {
    int stage, replica;
    pid_t pid;
    int port, http_port;
    int restarts;
    char *argv[40];
    char args[24][FPP_MAX_ENDPOINT * 2];
} fp_child;

typedef struct {
    const char *path;
    uint64_t id;     /* 0 = not submitted (failed) */
    double t_submit;
} fp_pending;

static int fp_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    static const char *ok[] = {".jpg", ".jpeg", ".png", ".bmp", ".ppm"};
    for (size_t i = 0; dot && i < sizeof ok / sizeof ok[0]; i++)
        if (!strcasecmp(dot, ok[i])) return 1;
    return 0;
}

static int fp_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Expands directories into their images (sorted); files stay as given. */
static int fp_collect(char **pos, int npos, char ***out, int *n)
{
    int cap = 64, count = 0;
    char **list = malloc((size_t)cap * sizeof *list);
    if (!list) return FP_EXIT_FAIL;
    for (int i = 0; i < npos; i++) {
        struct stat st;
        if (stat(pos[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(pos[i]);
            struct dirent *e;
            int first = count;
            while (d && (e = readdir(d))) {
                if (!fp_image_ext(e->d_name)) continue;
                if (count == cap && !(list = realloc(list, (size_t)(cap *= 2) * sizeof *list))) return FP_EXIT_FAIL;
                size_t len = strlen(pos[i]) + strlen(e->d_name) + 2;
                if (!(list[count] = malloc(len))) return FP_EXIT_FAIL;
                snprintf(list[count++], len, "%s/%s", pos[i], e->d_name);
            }
            if (d) closedir(d);
            qsort(list + first, (size_t)(count - first), sizeof *list, fp_cmp_str);
        } else {
            if (count == cap && !(list = realloc(list, (size_t)(cap *= 2) * sizeof *list))) return FP_EXIT_FAIL;
            if (!(list[count++] = strdup(pos[i]))) return FP_EXIT_FAIL;
        }
    }
    *out = list;
    *n = count;
    return 0;
}

/* 1 if TCP port p on 127.0.0.1 can be bound now. */
static int fp_port_free(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)p);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

/* A base port with `n` free ports after it. The stages bind them only after
 * this returns, so the range lies below the kernel's ephemeral ports
 * (ip_local_port_range), where connections and bind(0) of other programs
 * cannot take one in between; from 10000 up, or 20000-50000 when the
 * ephemeral range leaves too little below it. */
static int fp_pick_ports(int n)
{
    int lo = 10000, eph = 32768; /* the ephemeral range's low end */
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &eph) != 1) eph = 32768;
        fclose(f);
    }
    int span = eph - n - lo;
    if (span < 1000) lo = 20000, span = 30000;
    srand((unsigned)(time(NULL) ^ getpid()));
    for (int tries = 0; tries < 200; tries++) {
        int base = lo + rand() % span, ok = 1;
        for (int i = 0; i < n && ok; i++) ok = fp_port_free(base + i);
        if (ok) return base;
    }
    return -1;
}

static int fp_spawn(fp_child *c)
{
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fogpipe run: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* A stage must not outlive a run that is killed outright. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        execv("/proc/self/exe", c->argv);
        fprintf(stderr, "fogpipe run: exec: %s\n", strerror(errno));
        _exit(127);
    }
    c->pid = pid;
    return 0;
}

/* Fills c->argv for `fogpipe stage`. */
static void fp_child_args(fp_child *c, const char *plan, const char *next, const char *opt[][2], int nopt)
{
    int a = 0, s = 0;
#define FP_ARG(...) (snprintf(c->args[s], sizeof c->args[s], __VA_ARGS__), c->argv[a++] = c->args[s++])
    c->argv[a++] = "fogpipe";
    c->argv[a++] = "stage";
    c->argv[a++] = "--plan";
    c->argv[a++] = (char *)plan;
    FP_ARG("--stage=%d", c->stage);
    FP_ARG("--bind=tcp://127.0.0.1:%d", c->port);
    FP_ARG("--next=%s", next);
    FP_ARG("--http=127.0.0.1:%d", c->http_port);
    FP_ARG("--name=s%dr%d", c->stage, c->replica);
    for (int i = 0; i < nopt; i++)
        if (opt[i][1]) FP_ARG("--%s=%s", opt[i][0], opt[i][1]);
#undef FP_ARG
    c->argv[a] = NULL;
}

typedef struct {
    fp_child *kids;
    int n_kids;
    int respawn;
    int failed; /* a stage died without --respawn */
} fp_super;

/* Reaps dead stage processes; restarts them with --respawn. 0, or -1 when
 * the run must stop. */
static int fp_supervise(fp_super *sv)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < sv->n_kids; i++) {
            fp_child *c = &sv->kids[i];
            if (c->pid != pid) continue;
            char how[64];
            if (WIFSIGNALED(status)) snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
            else snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
            c->pid = 0;
            if (!sv->respawn) {
                fprintf(stderr, "fogpipe run: stage %d replica %d (pid %d) %s; stopping (--respawn restarts stages)\n",
                        c->stage, c->replica, (int)pid, how);
                sv->failed = 1;
                return -1;
            }
            c->restarts++;
            fprintf(stderr, "fogpipe run: stage %d replica %d (pid %d) %s; restarting it (restart %d)\n", c->stage,
                    c->replica, (int)pid, how, c->restarts);
            if (c->restarts > 100 || fp_spawn(c)) {
                sv->failed = 1;
                return -1;
            }
        }
    }
    return 0;
}

/* Waits until every stage answers /readyz, or one dies. */
static int fp_wait_ready(fp_super *sv, double timeout_s)
{
    double deadline = fpi_now() + timeout_s;
    for (int i = 0; i < sv->n_kids; i++) {
        for (;;) {
            int save = sv->respawn;
            sv->respawn = 0; /* a stage that dies while starting will die again */
            int dead = fp_supervise(sv);
            sv->respawn = save;
            if (dead) return -1;
            if (fpp_http_get("127.0.0.1", sv->kids[i].http_port, "/readyz", 1, NULL, 0) == 200) break;
            if (fpi_now() > deadline) {
                fprintf(stderr, "fogpipe run: stage %d replica %d not ready after %.0f s\n", sv->kids[i].stage,
                        sv->kids[i].replica, timeout_s);
                return -1;
            }
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

static void fp_stop_children(fp_super *sv)
{
    for (int i = 0; i < sv->n_kids; i++)
        if (sv->kids[i].pid > 0) kill(sv->kids[i].pid, SIGTERM);
    double deadline = fpi_now() + 15;
    for (int i = 0; i < sv->n_kids; i++) {
        while (sv->kids[i].pid > 0) {
            int status;
            pid_t r = waitpid(sv->kids[i].pid, &status, WNOHANG);
            if (r == sv->kids[i].pid || r < 0) {
                sv->kids[i].pid = 0;
                break;
            }
            if (fpi_now() > deadline) kill(sv->kids[i].pid, SIGKILL);
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Prints the summary: throughput, latency, per-stage figures scraped from
 * each stage's /metrics. */
static void fp_summary(fp_super *sv, fpp_gateway *gw, const fp_plan *plan, int images, double elapsed)
{
    fpp_gateway_stats s;
    fpp_gateway_stats_get(gw, &s);
    fprintf(stderr, "run: %d images in %.2f s: %.1f images/min; latency p50 %.1f ms, p99 %.1f ms; %llu resent, "
                    "%llu duplicate results\n",
            images, elapsed, elapsed > 0 ? images * 60.0 / elapsed : 0, s.latency_p50_s * 1e3, s.latency_p99_s * 1e3,
            (unsigned long long)s.resent, (unsigned long long)s.duplicates);
    fprintf(stderr, "run: gateway -> stage 0: %.0f bytes per frame\n",
            s.submitted ? (double)s.bytes_out / (double)(s.submitted + s.resent) : 0);
    static char text[1 << 20];
    for (int i = 0; i < sv->n_kids; i++) {
        fp_child *c = &sv->kids[i];
        const fp_plan_stage *ps = &plan->stages[c->stage];
        if (fpp_http_get("127.0.0.1", c->http_port, "/metrics", 5, text, sizeof text) != 200) {
            fprintf(stderr, "run: stage %d replica %d: no metrics\n", c->stage, c->replica);
            continue;
        }
        double busy = fpp_prom_sum(text, "fogpipe_compute_seconds_sum", NULL);
        double frames = fpp_prom_sum(text, "fogpipe_compute_seconds_count", NULL);
        double out_frames = fpp_prom_sum(text, "fogpipe_frames_out_total", NULL);
        double out_bytes = fpp_prom_sum(text, "fogpipe_bytes_out_total", NULL);
        double errors = fpp_prom_sum(text, "fogpipe_errors_total", NULL);
        fprintf(stderr,
                "run: stage %d replica %d (layers %d..%d): %.0f frames, busy %.0f%%, %.1f ms per frame; out %s: %.0f "
                "bytes per frame; %.0f errors%s\n",
                c->stage, c->replica, ps->first, ps->last, isnan(frames) ? 0 : frames,
                isnan(busy) || elapsed <= 0 ? 0 : 100 * busy / elapsed,
                isnan(busy) || !(frames > 0) ? 0 : busy / frames * 1e3,
                c->stage == plan->n_stages - 1 ? "results" : fp_codec_name(ps->out_codec),
                !(out_frames > 0) || isnan(out_bytes) ? 0 : out_bytes / out_frames, isnan(errors) ? 0 : errors,
                c->restarts ? " (figures since its last restart)" : "");
    }
}

int fp_cmd_run(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_run_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *plan_path = fp_flag_get(&fp_run_cmd, "plan");
    if (!plan_path) return fp_args_require(&fp_run_cmd, "plan");
    const char *annotate = fp_flag_get(&fp_run_cmd, "annotate"), *names = fp_flag_get(&fp_run_cmd, "names");
    long window = 0, repeat = 1, port_base = 0, hwm = 2, resend_ms = 3000;
    double timeout = 300, thr = -1, nmsv = -1;
    if ((rc = fp_flag_int(&fp_run_cmd, "window", 1, 4096, &window)) ||
        (rc = fp_flag_int(&fp_run_cmd, "repeat", 1, 1000000, &repeat)) ||
        (rc = fp_flag_int(&fp_run_cmd, "port-base", 1024, 65000, &port_base)) ||
        (rc = fp_flag_int(&fp_run_cmd, "hwm", 1, 64, &hwm)) ||
        (rc = fp_flag_int(&fp_run_cmd, "resend-ms", 10, 3600000, &resend_ms)) ||
        (rc = fp_flag_float(&fp_run_cmd, "timeout", 0.1, 1e6, &timeout)) ||
        (rc = fp_flag_float(&fp_run_cmd, "threshold", 0, 1e6, &thr)) ||
        (rc = fp_flag_float(&fp_run_cmd, "nms", 0, 1, &nmsv)))
        return rc;
    long threads = 0;
    if ((rc = fp_flag_int(&fp_run_cmd, "threads", 1, 256, &threads))) return rc;
    const char *mode_s = fp_flag_get(&fp_run_cmd, "input");
    int mode = mode_s ? fp_input_mode_parse(mode_s) : FP_INPUT_AUTO;
    if (mode < 0) {
        fprintf(stderr, "fogpipe run: --input: expected auto, image or pixels (got \"%s\")\n", mode_s);
        return FP_EXIT_USAGE;
    }
    int quiet = fp_flag_get(&fp_run_cmd, "quiet") != NULL;

    fp_plan plan;
    fp_net *net = NULL;
    fp_names nm = {0};
    fp_super sv = {0};
    fpp_gateway *gw = NULL;
    char **images = NULL;
    int n_images = 0;
    fp_pending *pend = NULL;
    fpp_model_paths paths = {.cfg = fp_flag_get(&fp_run_cmd, "cfg"), .weights = fp_flag_get(&fp_run_cmd, "weights")};
    const char *key_path = fp_flag_get(&fp_run_cmd, "curve-key");
    fpp_curve_key key;
    const fpp_curve_key *curve;
    memset(&key, 0, sizeof key);
    if ((rc = fp_cli_curve_key(&fp_run_cmd, &key, &curve))) goto done;
    if (fp_plan_load(plan_path, NULL, &plan) || fpp_load_plan_model(&plan, -1, &paths, 1, &net)) {
        rc = fp_cli_fail();
        goto done;
    }
    if (fp_detect_input_prep(net) == FP_DETECT_PREP_NONE) {
        fprintf(stderr, "fogpipe run: %s: the model has no detection head\n", plan.cfg);
        rc = FP_EXIT_FAIL;
        goto done;
    }
    if ((names && (rc = fp_names_load(names, &nm))) || (annotate && (rc = fp_cli_mkdir(annotate))) ||
        (rc = fp_collect(pos, npos, &images, &n_images)))
        goto done;
    if (n_images == 0) {
        fprintf(stderr, "fogpipe run: no images found in the arguments\n");
        rc = FP_EXIT_FAIL;
        goto done;
    }

    /* Ports: gateway results, then one ZeroMQ and one HTTP port per replica. */
    for (int k = 0; k < plan.n_stages; k++) sv.n_kids += plan.stages[k].n_devices;
    if (!port_base && (port_base = fp_pick_ports(1 + 2 * sv.n_kids)) < 0) {
        fprintf(stderr, "fogpipe run: no free range of %d loopback ports found\n", 1 + 2 * sv.n_kids);
        rc = FP_EXIT_FAIL;
        goto done;
    }
    if (!(sv.kids = calloc((size_t)sv.n_kids, sizeof *sv.kids))) {
        rc = FP_EXIT_FAIL;
        goto done;
    }
    sv.respawn = fp_flag_get(&fp_run_cmd, "respawn") != NULL;
    int p = (int)port_base + 1;
    for (int k = 0, i = 0; k < plan.n_stages; k++)
        for (int r = 0; r < plan.stages[k].n_devices; r++, i++) {
            sv.kids[i] = (fp_child){.stage = k, .replica = r, .port = p, .http_port = p + 1};
            p += 2;
        }
    char tbuf[16], hbuf[16], thbuf[32], nmbuf[32];
    snprintf(hbuf, sizeof hbuf, "%ld", hwm);
    snprintf(tbuf, sizeof tbuf, "%ld", threads);
    snprintf(thbuf, sizeof thbuf, "%.9g", thr);
    snprintf(nmbuf, sizeof nmbuf, "%.9g", nmsv);
    const char *opt[][2] = {{"hwm", hbuf},
                            {"threads", threads ? tbuf : NULL},
                            {"threshold", thr >= 0 ? thbuf : NULL},
                            {"nms", nmsv >= 0 ? nmbuf : NULL},
                            {"cfg", paths.cfg},
                            {"weights", paths.weights},
                            {"curve-key", key_path}};
    for (int i = 0; i < sv.n_kids; i++) {
        char next[FPP_MAX_PEERS * 40] = "";
        int k = sv.kids[i].stage;
        if (k == plan.n_stages - 1) {
            snprintf(next, sizeof next, "tcp://127.0.0.1:%ld", port_base);
        } else {
            for (int j = 0; j < sv.n_kids; j++)
                if (sv.kids[j].stage == k + 1) {
                    size_t len = strlen(next);
                    snprintf(next + len, sizeof next - len, "%stcp://127.0.0.1:%d", len ? "," : "", sv.kids[j].port);
                }
        }
        fp_child_args(&sv.kids[i], plan_path, next, opt, (int)(sizeof opt / sizeof opt[0]));
    }
    fpp_gateway_opts go = {.window = window ? (int)window : (2 * sv.n_kids > 4 ? 2 * sv.n_kids : 4),
                           .resend_s = resend_ms / 1000.0,
                           .hwm = (int)hwm,
                           .max_result_bytes = 64u << 20,
                           .curve = curve};
    char results[64];
    snprintf(results, sizeof results, "tcp://127.0.0.1:%ld", port_base);
    go.results = results;
    for (int i = 0; i < sv.n_kids; i++)
        if (sv.kids[i].stage == 0) snprintf(go.first.ep[go.first.n++], FPP_MAX_ENDPOINT, "tcp://127.0.0.1:%d", sv.kids[i].port);
    signal(SIGPIPE, SIG_IGN);
    if (fpp_gateway_create(&go, &gw)) {
        rc = fp_cli_fail();
        goto done;
    }
    for (int i = 0; i < sv.n_kids; i++)
        if (fp_spawn(&sv.kids[i])) {
            rc = FP_EXIT_FAIL;
            goto done;
        }
    fprintf(stderr, "run: %d stage process(es) on ports %ld..%d; waiting for them to be ready\n", sv.n_kids, port_base,
            p - 1);
    if (fp_wait_ready(&sv, 120)) {
        rc = FP_EXIT_FAIL;
        goto done;
    }
    long total = (long)n_images * repeat;
    if (!(pend = calloc((size_t)total, sizeof *pend))) {
        rc = FP_EXIT_FAIL;
        goto done;
    }
    double t0 = fpi_now(), last_progress = t0;
    long submitted = 0, printed = 0, answered = 0;
    while (printed < total) {
        if (fp_supervise(&sv)) {
            rc = FP_EXIT_FAIL;
            break;
        }
        /* Submit while the window has room. */
        while (submitted < total) {
            fp_pending *e = &pend[submitted];
            e->path = images[submitted % n_images];
            char *bytes = NULL;
            size_t len = 0;
            fp_gw_input in;
            if (fpi_read_file(e->path, 256u << 20, &bytes, &len) ||
                fp_gw_input_make(net, (fp_input_mode)mode, !fp_flag_get(&fp_run_cmd, "keep-jpeg"), (const uint8_t *)bytes, len, e->path, &in)) {
                fprintf(stderr, "fogpipe: %s\n", fp_last_error());
                fpi_free(bytes);
                rc = FP_EXIT_FAIL;
                submitted++;
                continue;
            }
            fp_status st = fpp_gateway_submit(gw, &in.frame, 0.05, &e->id);
            fp_gw_input_free(&in);
            fpi_free(bytes);
            if (st == FP_ETIMEDOUT) break;
            if (st) {
                rc = fp_cli_fail();
                goto stop;
            }
            e->t_submit = fpi_now();
            submitted++;
        }
        /* Print, in input order, what has come. */
        while (printed < submitted) {
            fp_pending *e = &pend[printed];
            if (!e->id) {
                printed++;
                continue;
            }
            char *json = NULL;
            size_t len;
            fp_status st = fpp_gateway_wait(gw, e->id, submitted < total ? 0 : 0.05, &json, &len);
            if (st == FP_ETIMEDOUT) {
                if (fpi_now() - e->t_submit > timeout) {
                    fprintf(stderr, "fogpipe: %s: no result after %.0f s; giving up on it\n", e->path, timeout);
                    fpp_gateway_forget(gw, e->id);
                    rc = FP_EXIT_FAIL;
                    printed++;
                    continue;
                }
                break;
            }
            printed++;
            answered++;
            char err[512];
            fp_detection *d = NULL;
            int n = 0, w = 0, h = 0;
            cJSON *obj = st ? NULL : fp_gw_result(json, e->path, net, &nm, &d, &n, &w, &h, err, sizeof err);
            if (!obj) {
                fprintf(stderr, "fogpipe: %s: %s\n", e->path, st ? fp_last_error() : err);
                rc = FP_EXIT_FAIL;
            } else {
                char *line = quiet ? NULL : cJSON_PrintUnformatted(obj);
                if (line) {
                    puts(line);
                    fflush(stdout);
                }
                free(line);
                if (annotate) {
                    fp_image im;
                    char out[4096];
                    fp_annotated_path(annotate, e->path, out, sizeof out);
                    if (fp_image_load(e->path, &im) == FP_OK) {
                        fp_annotate(&im, d, n, net, &nm);
                        if (fp_image_save(&im, out)) rc = fp_cli_fail();
                        fp_image_free(&im);
                    }
                }
            }
            cJSON_Delete(obj);
            free(d);
            free(json);
        }
        double now = fpi_now();
        if (now - last_progress > 10 && total > 1) {
            fprintf(stderr, "run: %ld/%ld images answered, %.1f images/min\n", answered, total,
                    answered * 60.0 / (now - t0));
            last_progress = now;
        }
    }
    fp_summary(&sv, gw, &plan, (int)answered, fpi_now() - t0);
stop:
    ;
done:
    fpp_gateway_destroy(gw);
    fp_stop_children(&sv);
    free(sv.kids);
    free(pend);
    for (int i = 0; i < n_images; i++) free(images[i]);
    free(images);
    fp_names_free(&nm);
    fp_net_destroy(net);
    memset(&key, 0, sizeof key);
    return rc;
}
