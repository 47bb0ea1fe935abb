/* weights.c — each stage gets only its own layers' weights: the plan records
 * the SHA-256 of every stage's weights blob (fp_net_stage_weights), the
 * gateway, which holds the whole model, serves the blobs over HTTP, and a
 * stage started with --weights-from fetches its blob and refuses any whose
 * hash is not the plan's (docs/deploy.md). SHA-256 from libsodium: the blobs
 * travel over plain HTTP, so the check must hold against a forger, which
 * the FNV-1a file hashes of the plan's model do not. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "pipeline/pipeline.h"

void fpp_sha256(const void *data, size_t len, char out[72])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    /* idempotent; its failure (no entropy source) does not concern hashing */
    int ready = sodium_init() >= 0;
    (void)ready;
    crypto_hash_sha256(h, data, len);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < (int)sizeof h; i++) snprintf(out + 7 + 2 * i, 3, "%02x", h[i]);
}

fp_status fpp_plan_hash_stage_weights(fp_plan *plan, const fp_net *net)
{
    for (int k = 0; k < plan->n_stages; k++) {
        void *blob = NULL;
        size_t len = 0;
        fp_status st = fp_net_stage_weights(net, plan->stages[k].first, plan->stages[k].last, &blob, &len);
        if (st) return st;
        fpp_sha256(blob, len, plan->stages[k].weights_sha256);
        free(blob);
    }
    return FP_OK;
}

fp_status fpp_stage_blobs_make(const fp_plan *plan, const fp_net *net, fpp_stage_blobs *out)
{
    memset(out, 0, sizeof *out);
    for (int k = 0; k < plan->n_stages; k++) {
        const fp_plan_stage *ps = &plan->stages[k];
        if (!ps->weights_sha256[0]) {
            fpp_stage_blobs_free(out);
            return fpi_error(FP_EINVAL,
                             "the plan records no weights hash for stage %d (make it with this fogpipe's `plan`, from a "
                             "model with weights)", k);
        }
        fp_status st = fp_net_stage_weights(net, ps->first, ps->last, &out->blob[k], &out->len[k]);
        if (st) {
            fpp_stage_blobs_free(out);
            return st;
        }
        out->n = k + 1;
        char got[72];
        fpp_sha256(out->blob[k], out->len[k], got);
        if (strcmp(got, ps->weights_sha256)) {
            fpp_stage_blobs_free(out);
            return fpi_error(FP_EINVAL, "stage %d's weights (layers %d..%d) hash to %s, but the plan was made for %s: "
                             "another weights file?", k, ps->first, ps->last, got, ps->weights_sha256);
        }
    }
    return FP_OK;
}

void fpp_stage_blobs_free(fpp_stage_blobs *b)
{
    for (int k = 0; k < b->n; k++) free(b->blob[k]);
    memset(b, 0, sizeof *b);
}

fp_status fpp_url_parse(const char *url, char *host, size_t n, int *port, const char **path)
{
    if (strncmp(url, "http://", 7))
        return fpi_error(FP_EINVAL, "\"%s\": expected http://HOST[:PORT]/PATH (https is not supported)", url);
    const char *h = url + 7, *slash = strchr(h, '/'), *end = slash ? slash : h + strlen(h);
    const char *colon = NULL;
    if (*h == '[') { /* [v6]:port */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) return fpi_error(FP_EINVAL, "\"%s\": unclosed [ in the host", url);
        if (rb + 1 < end && rb[1] != ':') return fpi_error(FP_EINVAL, "\"%s\": expected :PORT after ]", url);
        colon = rb + 1 < end ? rb + 1 : NULL;
        if ((size_t)(rb - h - 1) >= n) return fpi_error(FP_EINVAL, "\"%s\": host too long", url);
        memcpy(host, h + 1, (size_t)(rb - h - 1));
        host[rb - h - 1] = '\0';
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        const char *he = colon ? colon : end;
        if ((size_t)(he - h) >= n) return fpi_error(FP_EINVAL, "\"%s\": host too long", url);
        memcpy(host, h, (size_t)(he - h));
        host[he - h] = '\0';
    }
    if (!host[0]) return fpi_error(FP_EINVAL, "\"%s\": no host", url);
    *port = 80;
    if (colon) {
        char *e;
        long p = strtol(colon + 1, &e, 10);
        if (e != end || e == colon + 1 || p < 1 || p > 65535)
            return fpi_error(FP_EINVAL, "\"%s\": the port must be 1..65535", url);
        *port = (int)p;
    }
    *path = slash ? slash : "/";
    if (strlen(*path) > 400) return fpi_error(FP_EINVAL, "\"%s\": path too long", url);
    for (const char *c = *path; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) return fpi_error(FP_EINVAL, "\"%s\": a space or control byte in the path", url);
    return FP_OK;
}

fp_status fpp_weights_fetch(const char *url, const char *want, size_t size, double timeout_s,
                            volatile sig_atomic_t *stop, void **blob)
{
    char host[256];
    int port;
    const char *path;
    fp_status st = fpp_url_parse(url, host, sizeof host, &port, &path);
    if (st) return st;
    double t0 = fpi_now(), wait = 0.25, last_log = -1e9;
    for (int attempt = 1;; attempt++) {
        uint8_t *b = NULL;
        size_t len = 0;
        double left = timeout_s - (fpi_now() - t0);
        int status = fpp_http_fetch(host, port, path, left < 30 ? (left > 1 ? left : 1) : 30, size, &b, &len);
        if (status == 200 && len == size) {
            char got[72];
            fpp_sha256(b, len, got);
            if (strcmp(got, want)) {
                free(b);
                return fpi_error(FP_ECORRUPT, "%s: the weights hash to %s, but the plan says %s: refused", url, got, want);
            }
            *blob = b;
            return FP_OK;
        }
        free(b);
        /* a wrong answer from a server that is up is final; retry while it is not */
        if (status == 200 || status == -2)
            return fpi_error(FP_ECORRUPT, "%s: %s bytes of weights, expected %zu (the plan's stage)", url,
                             status == -2 ? "more than the" : "another number of", size);
        if (status >= 400 && status < 500 && status != 404 && status != 408 && status != 429)
            return fpi_error(FP_EIO, "%s: HTTP %d", url, status);
        if (fpi_now() - t0 >= timeout_s)
            return fpi_error(FP_ETIMEDOUT, "%s: no weights after %.0f s (%d attempts; last: %s)", url, timeout_s, attempt,
                             status < 0 ? "unreachable" : "an HTTP error");
        if (stop && *stop) return fpi_error(FP_EIO, "%s: stopped while waiting for the weights", url);
        if (fpi_now() - last_log >= 10) {
            fpi_log(FPI_LOG_WARN, "weights: %s: %s; trying again (attempt %d)", url,
                    status < 0 ? "unreachable" : "not served yet", attempt);
            last_log = fpi_now();
        }
        struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
        if (wait < 2) wait *= 2;
    }
}
