/* targets.c — one function per parser of outside bytes (see targets.h).
 * Kept free of libFuzzer so the gcc unit-test build replays the corpora
 * through exactly the same code (tests/test_fuzz_replay.c). */
#include "targets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "detect_out.h"
#include "fogpipe/fmap.h"
#include "fogpipe/frame.h"
#include "fogpipe/image.h"
#include "fogpipe/net.h"
#include "fogpipe/partition.h"
#include "pipeline/curve.h"
#include "pipeline/http.h"

/* ------------------------------------------------------------------ helpers */

/* A NUL-terminated copy of the input (parsers of text take C strings). */
static char *fpz_text(const uint8_t *data, size_t size)
{
    char *t = malloc(size + 1);
    if (!t) abort();
    if (size) memcpy(t, data, size);
    t[size] = '\0';
    return t;
}

/* A private temp folder, made once per process. */
static char fpz_dir[256];

static const char *fpz_tmpdir(void)
{
    if (!fpz_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(fpz_dir, sizeof fpz_dir, "%s/fpz.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(fpz_dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
    }
    return fpz_dir;
}

/* Writes n bytes to <tmpdir>/<name>, replacing the file; fills path. */
static void fpz_write(const char *name, const void *p, size_t n, char *path, size_t pathn)
{
    snprintf(path, pathn, "%s/%s", fpz_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) {
        perror("fuzz: writing a temp file");
        abort();
    }
}

static void fpz_quiet(void)
{
    /* Errors are the expected outcome; keep libFuzzer's output readable. */
    setenv("FP_LOG_LEVEL", "error", 0);
}

/* ---------------------------------------------------------------- cfg text */

int fpz_cfg(const uint8_t *data, size_t size)
{
    fpz_quiet();
    char *text = fpz_text(data, size);
    fp_net *net = NULL;
    if (fp_net_parse_cfg(text, "fuzz.cfg", &net) == FP_OK) {
        /* Walk what the parser built: shapes and cut points of every layer. */
        int n = fp_net_layer_count(net);
        for (int i = 0; i < n; i++) {
            fp_layer_info info;
            (void)fp_net_layer_info(net, i, &info);
            int cut[8];
            (void)fp_net_cut(net, i, cut, 8);
        }
        (void)fp_net_input_shape(net);
        fp_net_destroy(net);
    }
    free(text);
    return 0;
}

/* ----------------------------------------------------------- weights bytes */

#include "weights_cfg.h"

int fpz_weights(const uint8_t *data, size_t size)
{
    fpz_quiet();
    char path[512];
    fpz_write("w.weights", data, size, path, sizeof path);
    fp_net *net = NULL;
    if (fp_net_parse_cfg(fpz_weights_cfg, "fuzz-weights.cfg", &net) != FP_OK) {
        fprintf(stderr, "fuzz: the fixed weights cfg does not parse: %s\n", fp_last_error());
        abort();
    }
    (void)fp_net_load_weights(net, path);
    fp_net_destroy(net);
    return 0;
}

/* ---------------------------------------------------- stage weights blob */

/* Input: one byte choosing the range of the fixed weights cfg (low nibble:
 * the first layer, high nibble: how many more), then the blob. */
int fpz_stagew(const uint8_t *data, size_t size)
{
    fpz_quiet();
    if (size < 1) return 0;
    fp_net *net = NULL;
    if (fp_net_parse_cfg(fpz_weights_cfg, "fuzz-weights.cfg", &net) != FP_OK) abort();
    int n = fp_net_layer_count(net), first = (data[0] & 15) % n, last = first + (data[0] >> 4) % (n - first);
    if (fp_net_set_range(net, first, last) != FP_OK) abort();
    if (fp_net_load_stage_weights(net, data + 1, size - 1, "fuzz") == FP_OK) {
        /* a blob that loads runs */
        if (fp_net_setup(net) != FP_OK) abort();
    }
    fp_net_destroy(net);
    return 0;
}

/* ------------------------------------------------------- TF.js manifest+shard */

/* Input: manifest JSON, a NUL byte, then the bytes of the shard file
 * "shard1" (no NUL: the whole input is the manifest, no shard file). Loaded
 * at the smallest input size. */
int fpz_tfjs(const uint8_t *data, size_t size)
{
    fpz_quiet();
    const uint8_t *nul = memchr(data, 0, size);
    size_t mlen = nul ? (size_t)(nul - data) : size;
    char mpath[512], spath[512];
    fpz_write("model-weights_manifest.json", data, mlen, mpath, sizeof mpath);
    snprintf(spath, sizeof spath, "%s/shard1", fpz_tmpdir());
    if (nul) fpz_write("shard1", nul + 1, size - mlen - 1, spath, sizeof spath);
    else (void)unlink(spath);
    fp_net *net = NULL;
    if (fp_net_load_tfjs(mpath, FP_TFJS_MIN_INPUT, &net) == FP_OK) fp_net_destroy(net);
    return 0;
}

/* ------------------------------------------------------ plan / cluster JSON */

int fpz_plan(const uint8_t *data, size_t size)
{
    fpz_quiet();
    char *text = fpz_text(data, size);
    fp_plan *plan = malloc(sizeof *plan);
    if (!plan) abort();
    if (fp_plan_parse(text, "fuzz-plan.json", NULL, plan) == FP_OK) {
        /* A plan that loads must serialise again. */
        char *out = NULL;
        if (fp_plan_to_json(plan, &out) == FP_OK) free(out);
    }
    free(plan);
    free(text);
    return 0;
}

int fpz_cluster(const uint8_t *data, size_t size)
{
    fpz_quiet();
    char *text = fpz_text(data, size);
    fp_cluster *c = NULL;
    if (fp_cluster_parse(text, "fuzz-cluster.json", NULL, &c) == FP_OK) {
        (void)fp_cluster_find(c, "dev0");
        fp_cluster_destroy(c);
    }
    free(text);
    return 0;
}

/* ------------------------------------------------------------------ frames */

enum { FPZ_MAX_RAW = 1 << 20 };

static uint32_t fpz_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void fpz_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Patches the length field and every checksum of a would-be frame so the
 * fuzzer reaches the checks behind them (docs/wire-format.md layout). */
static void fpz_frame_fixup(uint8_t *b, size_t len)
{
    if (len < FP_FRAME_HEADER_BYTES) return;
    fpz_put32(b + 16, (uint32_t)len);
    size_t n = b[7] <= FP_FRAME_MAX_TENSORS ? b[7] : 0;
    size_t desc = n * FP_FRAME_TENSOR_BYTES;
    if (len < FP_FRAME_HEADER_BYTES + desc) return;
    size_t off = FP_FRAME_HEADER_BYTES + desc;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = b + FP_FRAME_HEADER_BYTES + i * FP_FRAME_TENSOR_BYTES;
        uint64_t wire = (uint64_t)fpz_get32(p + 40) | (uint64_t)fpz_get32(p + 44) << 32;
        if (wire > len - off) break;
        fpz_put32(p + 28, fp_crc32c(0, b + off, (size_t)wire));
        off += (size_t)wire;
    }
    uint32_t crc = fp_crc32c(0, b, 28);
    fpz_put32(b + 28, fp_crc32c(crc, b + FP_FRAME_HEADER_BYTES, desc));
}

/* Input: a mode byte, then the frame. Mode bit 0 set: fix the length and
 * checksums first (a random frame never passes CRC32C otherwise). Every
 * tensor of a frame that decodes goes through fp_fmap_decode. */
int fpz_frame(const uint8_t *data, size_t size)
{
    fpz_quiet();
    if (size < 1) return 0;
    int fix = data[0] & 1;
    size_t len = size - 1;
    /* An exact-size copy, so reads past the end are caught. */
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) abort();
    if (len) memcpy(buf, data + 1, len);
    if (fix) fpz_frame_fixup(buf, len);
    fp_frame f;
    if (fp_frame_decode(buf, len, FPZ_MAX_RAW, &f) == FP_OK) {
        fp_buffer scratch = {0};
        for (int i = 0; i < f.n_tensors; i++) {
            const fp_frame_tensor *t = &f.tensors[i];
            uint64_t count = fp_frame_tensor_count(t);
            if (count == 0 || count > FPZ_MAX_RAW) continue;
            float *out = malloc((size_t)count * sizeof *out);
            if (!out) abort();
            (void)fp_fmap_decode(t, out, (size_t)count, &scratch);
            /* A wrong count must be refused, not trusted. */
            (void)fp_fmap_decode(t, out, (size_t)count - 1, &scratch);
            free(out);
        }
        fp_buffer_free(&scratch);
    }
    free(buf);
    return 0;
}

/* ------------------------------------------------------------------ images */

int fpz_image(const uint8_t *data, size_t size)
{
    fpz_quiet();
    uint8_t *buf = malloc(size ? size : 1); /* exact size: see fpz_frame */
    if (!buf) abort();
    if (size) memcpy(buf, data, size);
    fp_image im = {0}, im2 = {0};
    fp_status st = fp_image_decode(buf, size, "fuzz-image", &im);
    /* the gateway's lossless JPEG re-encoding: where both decode, the same pixels */
    uint8_t *opt = NULL;
    size_t n = 0;
    if (fp_image_jpeg_optimize(buf, size, "fuzz-image", &opt, &n) == FP_OK && st == FP_OK &&
        fp_image_decode(opt, n, "fuzz-image-opt", &im2) == FP_OK) {
        if (im.w != im2.w || im.h != im2.h || im.c != im2.c ||
            memcmp(im.data, im2.data, (size_t)im.w * (size_t)im.h * (size_t)im.c * sizeof(float)))
            abort();
        fp_image_free(&im2);
    }
    free(opt);
    if (st == FP_OK) fp_image_free(&im);
    free(buf);
    return 0;
}

/* --------------------------------------------------------- gateway results */

int fpz_result(const uint8_t *data, size_t size)
{
    fpz_quiet();
    char *text = fpz_text(data, size);
    fp_detection *d = NULL;
    int n = 0;
    char err[256];
    if (fp_result_parse(text, 80, &d, &n, err, sizeof err) == 0) free(d);
    free(text);
    return 0;
}

/* -------------------------------------------------------------------- HTTP */

static fpp_http *fpz_server;
static int fpz_port;
static pthread_mutex_t fpz_http_lock = PTHREAD_MUTEX_INITIALIZER;

static void fpz_serve(void *user, const fpp_http_request *req, fpp_http_response *resp)
{
    /* Touch every field, so a bad pointer or length shows up here. */
    size_t sum = 0;
    for (size_t i = 0; i < req->body_len; i++) sum += req->body[i];
    if (req->body[req->body_len] != '\0') abort();
    fpp_http_reply(resp, 200, "text/plain", "%s %s ?%s %zu %zu %s\n", req->method, req->path, req->query,
                   req->body_len, sum, req->content_type);
}

static void fpz_http_once(void)
{
    if (fpz_server) return;
    signal(SIGPIPE, SIG_IGN);
    if (fpp_http_start("127.0.0.1", 0, 4096, fpz_serve, NULL, &fpz_server) != FP_OK) {
        fprintf(stderr, "fuzz: cannot start the HTTP server: %s\n", fp_last_error());
        abort();
    }
    fpz_port = fpp_http_port(fpz_server);
}

/* One connection per input: connect, send every byte, half-close, read the
 * answer until the server closes (2 s at most). */
int fpz_http(const uint8_t *data, size_t size)
{
    fpz_quiet();
    pthread_mutex_lock(&fpz_http_lock);
    fpz_http_once();
    pthread_mutex_unlock(&fpz_http_lock);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) abort();
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)fpz_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("fuzz: connect");
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may answer (413, 400) and close early */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char buf[4096];
    while (recv(fd, buf, sizeof buf, 0) > 0) {
    }
    close(fd);
    return 0;
}

/* ------------------------------------------------------------------- table */

/* ---------------------------------------------------------- CURVE key file */

int fpz_key(const uint8_t *data, size_t size)
{
    fpz_quiet();
    char path[512];
    fpz_write("fuzz.key", data, size, path, sizeof path);
    fpp_curve_key k;
    if (fpp_curve_key_load(path, &k) == FP_OK &&
        (strlen(k.public_key) != FPP_Z85_KEY || strlen(k.secret_key) != FPP_Z85_KEY))
        abort(); /* a key that loads is two whole keys */
    return 0;
}

const fpz_target fpz_targets[] = {
    {"cfg", fpz_cfg},         {"weights", fpz_weights}, {"tfjs", fpz_tfjs},
    {"plan", fpz_plan},       {"cluster", fpz_cluster}, {"frame", fpz_frame},
    {"image", fpz_image},     {"result", fpz_result},   {"http", fpz_http},
    {"key", fpz_key},         {"stagew", fpz_stagew},   {NULL, NULL},
};

static void fpz_rm(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", fpz_dir, name);
    (void)unlink(p);
}

void fpz_cleanup(void)
{
    if (fpz_server) {
        fpp_http_stop(fpz_server);
        fpz_server = NULL;
    }
    if (fpz_dir[0]) {
        fpz_rm("w.weights");
        fpz_rm("model-weights_manifest.json");
        fpz_rm("shard1");
        fpz_rm("fuzz.key");
        (void)rmdir(fpz_dir);
        fpz_dir[0] = '\0';
    }
}

/* detect_out.c calls this on a names-file error, which the targets never
 * reach; cli/main.c (not linked here) has the real one. */
int fp_cli_fail(void);
int fp_cli_fail(void)
{
    return 1;
}
