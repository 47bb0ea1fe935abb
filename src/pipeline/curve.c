/* curve.c — CURVE key files and the ZAP handler (curve.h, docs/security.md).
 * libzmq does the cryptography (libsodium); this file only manages keys and
 * answers ZeroMQ's authentication requests: without a ZAP handler a CURVE
 * server encrypts but admits any client key. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/common.h"
#include "pipeline/curve.h"

enum { FPI_KEY_FILE_MAX = 4096 };

static const char fpi_zap_endpoint[] = "inproc://zeromq.zap.01";
static const char fpi_zap_domain[] = "fogpipe";

fp_status fpp_curve_keygen(fpp_curve_key *k)
{
    memset(k, 0, sizeof *k);
    if (!zmq_has("curve")) return fpi_error(FP_EUNSUPPORTED, "this libzmq was built without CURVE (libsodium)");
    if (zmq_curve_keypair(k->public_key, k->secret_key))
        return fpi_error(FP_EIO, "zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
    return FP_OK;
}

fp_status fpp_curve_key_write(const char *path, const fpp_curve_key *k)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return fpi_error(FP_EIO, "%s: %s", path, strerror(errno));
    char text[512];
    int n = snprintf(text, sizeof text,
                     "# fogpipe CURVE key (ZeroMQ Z85). Whoever holds this file can join the pipeline:\n"
                     "# keep it secret (docs/security.md).\n"
                     "public-key = \"%s\"\n"
                     "secret-key = \"%s\"\n",
                     k->public_key, k->secret_key);
    int ok = n > 0 && (size_t)n < sizeof text && write(fd, text, (size_t)n) == n;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        unlink(path);
        return fpi_error(FP_EIO, "%s: cannot write the key", path);
    }
    return FP_OK;
}

/* Parses `name = "value"` (spaces around '=' optional, quotes optional);
 * 0 and the value in out, -1 when the line is not of that form. */
static int fpi_key_line(const char *line, size_t len, char *name, size_t name_cap, char *out, size_t out_cap)
{
    size_t i = 0, n = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '=') {
        if (n + 1 >= name_cap) return -1;
        name[n++] = line[i++];
    }
    name[n] = '\0';
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (n == 0 || i >= len || line[i] != '=') return -1;
    i++;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t end = len;
    while (end > i && (line[end - 1] == ' ' || line[end - 1] == '\t' || line[end - 1] == '\r')) end--;
    if (end - i >= 2 && line[i] == '"' && line[end - 1] == '"') {
        i++;
        end--;
    }
    if (end - i >= out_cap) return -1;
    memcpy(out, line + i, end - i);
    out[end - i] = '\0';
    return 0;
}

/* 1 when `z` is 40 characters of Z85 that decode to a key. */
static int fpi_z85_key(const char *z)
{
    uint8_t bin[32];
    return strlen(z) == FPP_Z85_KEY && zmq_z85_decode(bin, z) != NULL;
}

fp_status fpp_curve_key_load(const char *path, fpp_curve_key *k)
{
    memset(k, 0, sizeof *k);
    if (!zmq_has("curve")) return fpi_error(FP_EUNSUPPORTED, "this libzmq was built without CURVE (libsodium)");
    char *text = NULL;
    size_t size;
    fp_status st = fpi_read_file(path, FPI_KEY_FILE_MAX, &text, &size);
    if (st) return st == FP_ETOOBIG ? fpi_error(FP_EINVAL, "%s: not a key file (over %d bytes)", path, FPI_KEY_FILE_MAX)
                                   : st;
    if (strlen(text) != size) {
        fpi_free(text);
        return fpi_error(FP_EINVAL, "%s: not a key file (binary data)", path);
    }
    int line_no = 0;
    for (const char *p = text; *p && !st;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        line_no++;
        size_t lead = strspn(p, " \t\r");
        if (lead < len && p[lead] != '#') {
            char name[32], value[128];
            if (fpi_key_line(p, len, name, sizeof name, value, sizeof value))
                st = fpi_error(FP_EINVAL, "%s:%d: expected `public-key = \"...\"` or `secret-key = \"...\"`", path, line_no);
            else if (strcmp(name, "public-key") && strcmp(name, "secret-key"))
                st = fpi_error(FP_EINVAL, "%s:%d: unknown key \"%s\"", path, line_no, name);
            else if (!fpi_z85_key(value))
                st = fpi_error(FP_EINVAL, "%s:%d: %s is not a 40-character Z85 key", path, line_no, name);
            else
                memcpy(name[0] == 'p' ? k->public_key : k->secret_key, value, FPP_Z85_KEY + 1);
        }
        p += len + (eol ? 1 : 0);
    }
    fpi_free(text);
    if (!st && !k->secret_key[0]) st = fpi_error(FP_EINVAL, "%s: no secret-key line (make one with fogpipe keys)", path);
    if (!st && !k->public_key[0]) st = fpi_error(FP_EINVAL, "%s: no public-key line (make one with fogpipe keys)", path);
    char derived[FPP_Z85_KEY + 1];
    if (!st && (zmq_curve_public(derived, k->secret_key) || strcmp(derived, k->public_key)))
        st = fpi_error(FP_EINVAL, "%s: the public key is not the secret key's", path);
    struct stat sb;
    if (!st && stat(path, &sb) == 0 && (sb.st_mode & 007))
        fpi_log(FPI_LOG_WARN, "%s: the key file is readable by every user (mode %03o); chmod 600 it", path,
                (unsigned)(sb.st_mode & 0777));
    if (st) memset(k, 0, sizeof *k);
    return st;
}

fp_status fpp_curve_server(void *sock, const fpp_curve_key *k)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, fpi_zap_domain, sizeof fpi_zap_domain - 1) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret_key, FPP_Z85_KEY))
        return fpi_error(FP_EIO, "CURVE server: %s", zmq_strerror(zmq_errno()));
    return FP_OK;
}

fp_status fpp_curve_client(void *sock, const fpp_curve_key *k)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->public_key, FPP_Z85_KEY) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->public_key, FPP_Z85_KEY) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret_key, FPP_Z85_KEY))
        return fpi_error(FP_EIO, "CURVE client: %s", zmq_strerror(zmq_errno()));
    return FP_OK;
}

/* ---------------------------------------------------------------- ZAP */

enum { FPI_ZAP_PARTS = 8 }; /* a CURVE request has 7 parts; more is refused */

struct fpp_zap {
    void *sock; /* REP, owned by the thread once it runs */
    uint8_t public_key[32];
    atomic_int stop;
    atomic_uint_least64_t denied;
    pthread_t thread;
};

/* Answers one request: parts[0..n) as received. */
static void fpi_zap_answer(fpp_zap *z, zmq_msg_t *parts, int n)
{
    /* version, request id, domain, address, routing id, mechanism, credentials */
    int ok = n == 7 && zmq_msg_size(&parts[0]) == 3 && !memcmp(zmq_msg_data(&parts[0]), "1.0", 3) &&
             zmq_msg_size(&parts[5]) == 5 && !memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) &&
             zmq_msg_size(&parts[6]) == 32 && !memcmp(zmq_msg_data(&parts[6]), z->public_key, 32);
    if (!ok) {
        uint64_t d = atomic_fetch_add(&z->denied, 1) + 1;
        char addr[64] = "?";
        if (n > 3) {
            size_t len = zmq_msg_size(&parts[3]) < sizeof addr - 1 ? zmq_msg_size(&parts[3]) : sizeof addr - 1;
            memcpy(addr, zmq_msg_data(&parts[3]), len);
            addr[len] = '\0';
            for (size_t i = 0; i < len; i++)
                if (addr[i] < 32 || addr[i] > 126) addr[i] = '?';
        }
        if (d <= 10 || d % 1000 == 0)
            fpi_log(FPI_LOG_WARN, "refused a peer from %s: it does not hold the cluster's CURVE key (%llu refused)",
                    addr, (unsigned long long)d);
    }
    const char *code = ok ? "200" : "400", *text = ok ? "OK" : "unknown key";
    size_t id_len = n > 1 ? zmq_msg_size(&parts[1]) : 0;
    const void *id = n > 1 ? zmq_msg_data(&parts[1]) : "";
    zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->sock, id, id_len, ZMQ_SNDMORE);
    zmq_send(z->sock, code, 3, ZMQ_SNDMORE);
    zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->sock, ok ? "fogpipe" : "", ok ? 7 : 0, ZMQ_SNDMORE);
    zmq_send(z->sock, "", 0, 0);
}

static void *fpi_zap_main(void *arg)
{
    fpp_zap *z = arg;
    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t it = {z->sock, 0, ZMQ_POLLIN, 0};
        int r = zmq_poll(&it, 1, 100);
        if (r < 0 && zmq_errno() == ETERM) break;
        if (r <= 0) continue;
        zmq_msg_t parts[FPI_ZAP_PARTS];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, z->sock, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            if (n < FPI_ZAP_PARTS) parts[n++] = m;
            else zmq_msg_close(&m);
        }
        /* 8 parts held: the request had at least that many, refused. */
        fpi_zap_answer(z, parts, n == FPI_ZAP_PARTS ? 0 : n);
        for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
    }
    zmq_close(z->sock);
    return NULL;
}

fp_status fpp_zap_start(void *ctx, const fpp_curve_key *k, fpp_zap **out)
{
    *out = NULL;
    fpp_zap *z = fpi_calloc(1, sizeof *z);
    if (!z) return fpi_error(FP_ENOMEM, "out of memory");
    if (!zmq_z85_decode(z->public_key, k->public_key)) {
        fpi_free(z);
        return fpi_error(FP_EINVAL, "the CURVE public key is not Z85");
    }
    int linger = 0;
    if (!(z->sock = zmq_socket(ctx, ZMQ_REP)) || zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(z->sock, fpi_zap_endpoint)) {
        fp_status st = fpi_error(FP_EIO, "ZAP handler: %s", zmq_strerror(zmq_errno()));
        if (z->sock) zmq_close(z->sock);
        fpi_free(z);
        return st;
    }
    if (pthread_create(&z->thread, NULL, fpi_zap_main, z)) {
        zmq_close(z->sock);
        fpi_free(z);
        return fpi_error(FP_ENOMEM, "cannot start the ZAP thread");
    }
    *out = z;
    return FP_OK;
}

uint64_t fpp_zap_denied(const fpp_zap *z) { return z ? atomic_load(&z->denied) : 0; }

void fpp_zap_stop(fpp_zap *z)
{
    if (!z) return;
    atomic_store(&z->stop, 1);
    pthread_join(z->thread, NULL);
    fpi_free(z);
}
