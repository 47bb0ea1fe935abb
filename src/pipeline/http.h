/*
 * http.h — a small embedded HTTP/1.1 server (libmicrohttpd) for stage
 * workers and the gateway: /metrics, health checks, and POSTed frames.
 * Internal: not API.
 *
 * One callback sees every request once its whole body has arrived:
 *
 *     static void serve(void *user, const fpp_http_request *req, fpp_http_response *resp)
 *     {
 *         if (!strcmp(req->path, "/healthz")) fpp_http_reply(resp, 200, "text/plain", "ok\n");
 *         else fpp_http_reply(resp, 404, "text/plain", "no %s here\n", req->path);
 *     }
 *     fpp_http *s;
 *     if (fpp_http_start("127.0.0.1", 0, 1 << 20, serve, NULL, &s) == FP_OK) {
 *         printf("port %d\n", fpp_http_port(s));
 *         ...
 *         fpp_http_stop(s);
 *     }
 *
 * Every connection gets its own thread, so a slow handler (a gateway
 * waiting on the pipeline) does not hold up /metrics. Handlers therefore
 * run concurrently and must be thread-safe.
 */
#ifndef FP_PIPELINE_HTTP_H
#define FP_PIPELINE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "fogpipe/status.h"

enum { FPP_HTTP_MAX_CONNECTIONS = 64 }; /* concurrent connections */
enum { FPP_HTTP_TIMEOUT_S = 30 };       /* idle seconds before a connection is closed */

typedef struct fpp_http fpp_http;

/* One request, valid only during the handler call. */
typedef struct fpp_http_request {
    const char *method;       /* "GET", "POST", ... as sent */
    const char *path;         /* percent-decoded by libmicrohttpd, without the query string */
    const char *query;        /* raw text after '?' (not decoded), or "" */
    const uint8_t *body;      /* body_len bytes, followed by a NUL that is not counted; never NULL */
    size_t body_len;
    const char *content_type; /* Content-Type header, or "" */
    const char *authorization;/* Authorization header, or "" */
} fpp_http_request;

/* What the handler answers. The server zeroes it before the call. */
typedef struct fpp_http_response {
    int status;               /* 200..599; anything else is answered as 500 */
    const char *content_type; /* must outlive the handler call (a literal); NULL: no header */
    char *body;               /* malloc'ed by the handler, freed by the server; NULL: empty */
    size_t body_len;
} fpp_http_response;

/* Called from a server thread once the whole request body has arrived. Must
 * fill resp (status, content_type, body). */
typedef void (*fpp_http_handler)(void *user, const fpp_http_request *req, fpp_http_response *resp);

/* Starts serving on host:port. host is a numeric IPv4 or IPv6 address
 * ("0.0.0.0", "127.0.0.1", "::1"); port 0..65535, 0 picks a free port
 * (see fpp_http_port). Requests whose method is not an HTTP token or whose
 * target does not start with '/' get 400 and never reach the handler.
 * Request bodies over max_body bytes get 413 and the
 * handler is not called: a Content-Length over the limit is refused before
 * the body is read; a chunked body that grows past it is read on (at most
 * a few MiB more, then the connection is dropped) so the 413 can be sent.
 * Bodies are buffered in memory up to max_body per connection, so memory
 * is bounded by FPP_HTTP_MAX_CONNECTIONS * max_body.
 * `user` is passed to h as is and must outlive the server.
 * On success *out is the running server (stop with fpp_http_stop).
 * FP_EINVAL (bad host, port or handler), FP_EIO (cannot bind or start;
 * the message names the address), FP_ENOMEM. */
fp_status fpp_http_start(const char *host, int port, size_t max_body, fpp_http_handler h, void *user,
                         fpp_http **out);

/* The port the server listens on (the chosen one when started with 0). */
int fpp_http_port(const fpp_http *s);

/* Stops listening, closes every connection, waits for handlers still
 * running, and frees s. NULL is a no-op. Must not be called from a handler. */
void fpp_http_stop(fpp_http *s);

/* Fills r with `status`, `content_type` (kept as a pointer: pass a literal)
 * and a malloc'ed body formatted printf-style. A body already in r is freed
 * first, so a handler may call it again to change its mind. If the body
 * cannot be allocated, r becomes an empty 500. */
void fpp_http_reply(fpp_http_response *r, int status, const char *content_type, const char *fmt, ...)
    FPI_PRINTF(4, 5);

#endif /* FP_PIPELINE_HTTP_H */
