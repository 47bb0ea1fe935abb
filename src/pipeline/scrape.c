/* scrape.c — reading other processes' HTTP endpoints: a minimal HTTP/1.0
 * GET client (loopback health checks and metrics scrapes by `fogpipe run`
 * and the gateway; no library in Debian offers a small blocking client
 * without pulling in TLS stacks) and a reader for Prometheus text. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "pipeline/pipeline.h"

int fpp_http_fetch(const char *host, int port, const char *path, double timeout_s, size_t max_body, uint8_t **body,
                   size_t *body_len)
{
    *body = NULL;
    *body_len = 0;
    struct addrinfo hints = {0}, *ai = NULL;
    char portbuf[16];
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portbuf, sizeof portbuf, "%d", port);
    if (getaddrinfo(host, portbuf, &hints, &ai) || !ai) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), status = -1;
    double deadline = fpi_now() + timeout_s;
    size_t got = 0, cap = max_body + 4096; /* the body and a header of up to 4 KiB */
    char *buf = NULL;
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) goto done;
    char req[512];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
    if (len <= 0 || (size_t)len >= sizeof req || send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) goto done;
    if (cap < max_body || !(buf = malloc(cap + 1))) goto done;
    for (;;) {
        int wait = (int)((deadline - fpi_now()) * 1000);
        struct pollfd p = {fd, POLLIN, 0};
        if (wait <= 0 || poll(&p, 1, wait) <= 0) goto done;
        if (got == cap) { /* more than the caller takes */
            status = -2;
            goto done;
        }
        ssize_t r = recv(fd, buf + got, cap - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) goto done;
        if (r == 0) break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    char *start = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1 || !start) {
        status = -1;
        goto done;
    }
    start += 4;
    size_t n = got - (size_t)(start - buf);
    if (n > max_body) {
        status = -2;
        goto done;
    }
    memmove(buf, start, n + 1);
    *body = (uint8_t *)buf;
    *body_len = n;
    buf = NULL;
done:
    free(buf);
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
    return status;
}

int fpp_http_get(const char *host, int port, const char *path, double timeout_s, char *body, size_t n)
{
    uint8_t *b = NULL;
    size_t len = 0;
    /* a longer body is cut to n - 1 bytes, as documented: fetch at most that much more */
    int status = fpp_http_fetch(host, port, path, timeout_s, n + (1 << 20), &b, &len);
    if (body && n) snprintf(body, n, "%s", b ? (const char *)b : "");
    free(b);
    return status;
}

double fpp_prom_sum(const char *text, const char *name, const char *label)
{
    size_t nl = strlen(name);
    double sum = NAN;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nl) || (p[nl] != ' ' && p[nl] != '{')) continue;
        const char *end = strchr(p, '\n');
        if (!end) end = p + strlen(p);
        if (label) {
            const char *l = strstr(p, label);
            if (!l || l > end) continue;
        }
        const char *v = p + nl;
        if (*v == '{') v = strchr(v, '}');
        if (!v || v > end) continue;
        double x = strtod(v + 1, NULL);
        sum = isnan(sum) ? x : sum + x;
    }
    return sum;
}
