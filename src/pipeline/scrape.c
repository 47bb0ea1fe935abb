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

int fpp_http_get(const char *host, int port, const char *path, double timeout_s, char *body, size_t n)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char portbuf[16];
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portbuf, sizeof portbuf, "%d", port);
    if (getaddrinfo(host, portbuf, &hints, &ai) || !ai) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), status = -1;
    double deadline = fpi_now() + timeout_s;
    size_t got = 0;
    char *buf = NULL;
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) goto done;
    char req[512];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
    if (len <= 0 || (size_t)len >= sizeof req || send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) goto done;
    size_t cap = n + 4096;
    if (!(buf = malloc(cap + 1))) goto done;
    for (;;) {
        int wait = (int)((deadline - fpi_now()) * 1000);
        struct pollfd p = {fd, POLLIN, 0};
        if (wait <= 0 || poll(&p, 1, wait) <= 0) goto done;
        ssize_t r = recv(fd, buf + got, cap - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) goto done;
        if (r == 0 || (got += (size_t)r) == cap) break;
    }
    buf[got] = '\0';
    if (sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1) {
        status = -1;
        goto done;
    }
    char *start = strstr(buf, "\r\n\r\n");
    if (body && n) {
        snprintf(body, n, "%s", start ? start + 4 : "");
    }
done:
    free(buf);
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
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
