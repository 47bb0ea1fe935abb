/* http.c — the embedded HTTP server behind http.h, on libmicrohttpd with
 * one thread per connection.
 *
 * libmicrohttpd calls the access handler several times per request: once
 * when the headers are in (*upload_data_size == 0), once per piece of body
 * (*upload_data_size > 0, which we must set to 0 to say we consumed it), and
 * a final time with *upload_data_size == 0, when a response may be queued.
 * Per-request state (fpi_http_req) is made by the URI-log callback, which
 * libmicrohttpd calls first and which sees the raw request target (the only
 * place the undecoded query string is available), and it is freed in the
 * request-completed callback, which runs however the request ends. */
#include "pipeline/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* How much of a chunked body we still read (and drop) after it passed
 * max_body, so the client can see the 413; past this the connection is
 * dropped, so an endless upload cannot hold a connection forever. */
enum { FPI_HTTP_DISCARD_MAX = 4 << 20 };
/* First body buffer when the size is unknown or large: growth by doubling
 * from here keeps a client that announces a large body but sends little
 * from pinning max_body bytes. */
enum { FPI_HTTP_FIRST_CAP = 64 << 10 };
/* Status codes by number: libmicrohttpd renamed its macro for 413 between
 * releases (PAYLOAD_TOO_LARGE is deprecated in 0.9.75). */
enum { FPI_HTTP_BAD_REQUEST = 400, FPI_HTTP_TOO_LARGE = 413, FPI_HTTP_INTERNAL_ERROR = 500 };

struct fpp_http {
    struct MHD_Daemon *daemon;
    fpp_http_handler handler;
    void *user;
    size_t max_body;
    int port; /* bound port */
};

/* One request in progress. */
typedef struct fpi_http_req {
    char *query;      /* owned raw query string, "" when none */
    uint8_t *body;    /* owned, cap bytes, len used (+ room for a NUL) */
    size_t len, cap;
    size_t discarded; /* body bytes dropped since `refuse` was set */
    int started;      /* the first access-handler call has been seen */
    unsigned refuse;  /* status to answer instead of calling the handler (413, 500), or 0 */
} fpi_http_req;

/* Makes the state for a request whose target is `uri` (NULL: unknown).
 * NULL when out of memory. */
static fpi_http_req *fpi_http_req_new(const char *uri)
{
    fpi_http_req *r = fpi_calloc(1, sizeof *r);
    if (!r) return NULL;
    const char *q = uri ? strchr(uri, '?') : NULL;
    q = q ? q + 1 : "";
    size_t n = strlen(q) + 1;
    r->query = fpi_malloc(n);
    if (!r->query) {
        fpi_free(r);
        return NULL;
    }
    memcpy(r->query, q, n);
    return r;
}

static void fpi_http_req_free(fpi_http_req *r)
{
    if (!r) return;
    fpi_free(r->query);
    fpi_free(r->body);
    fpi_free(r);
}

/* MHD_OPTION_URI_LOG_CALLBACK: its result becomes the request's *con_cls. */
static void *fpi_http_uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
    return fpi_http_req_new(uri);
}

/* MHD_OPTION_NOTIFY_COMPLETED: the request is over (answered, refused,
 * timed out or the daemon is stopping). */
static void fpi_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                               enum MHD_RequestTerminationCode why)
{
    fpi_http_req_free(*con_cls);
    *con_cls = NULL;
}

/* MHD_OPTION_EXTERNAL_LOGGER: libmicrohttpd's messages go to our log at
 * info level, since most are caused by clients (malformed requests) and a
 * server facing a network should not let them flood stderr. */
static void fpi_http_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    fpi_log(FPI_LOG_INFO, "http: %s", msg);
}

/* Queues a short text/plain answer; `close` asks the client to go away,
 * used when the rest of its request is not read. */
static enum MHD_Result fpi_http_queue_text(struct MHD_Connection *c, unsigned status, const char *text, int close)
{
    struct MHD_Response *mr = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!mr) return MHD_NO;
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (close) MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, status, mr);
    MHD_destroy_response(mr);
    return ret;
}

static enum MHD_Result fpi_http_queue_too_big(fpp_http *s, struct MHD_Connection *c)
{
    char text[96];
    snprintf(text, sizeof text, "request body too large (limit %zu bytes)\n", s->max_body);
    return fpi_http_queue_text(c, FPI_HTTP_TOO_LARGE, text, 1);
}

/* RFC 9110 token characters, the only ones a method may contain. */
static int fpi_http_is_token(const char *s)
{
    if (!s || !*s) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) continue;
        if (!strchr("!#$%&'*+-.^_`|~", *p)) return 0;
    }
    return 1;
}

/* The first call, headers in and no body yet. libmicrohttpd 0.9.75 takes
 * any bytes as a method and any text as the target, so refuse what no
 * handler should have to parse: a method that is not a token, or a target
 * that is not a path (absolute-form, "*"). Then refuse a declared body over
 * the limit before reading it (libmicrohttpd drops the body and closes the
 * connection after the answer). */
static enum MHD_Result fpi_http_first(fpp_http *s, struct MHD_Connection *c, const char *url, const char *method)
{
    if (!fpi_http_is_token(method) || !url || url[0] != '/')
        return fpi_http_queue_text(c, FPI_HTTP_BAD_REQUEST, "bad request line\n", 1);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        /* libmicrohttpd has already refused a malformed Content-Length with
         * 400; an overflowing one saturates and is refused here. */
        unsigned long long n = strtoull(cl, NULL, 10);
        if (n > s->max_body) return fpi_http_queue_too_big(s, c);
    }
    return MHD_YES;
}

/* Appends one piece of body. Once the body is over the limit (or memory
 * ran out) it is dropped and `refuse` remembers what to answer. Returns 0
 * to have the connection dropped. */
static int fpi_http_body(fpp_http *s, fpi_http_req *r, const char *data, size_t n)
{
    if (!r->refuse && n > s->max_body - r->len) r->refuse = FPI_HTTP_TOO_LARGE;
    if (!r->refuse && r->len + n + 1 > r->cap) {
        /* len + n <= max_body here, so the +1 for the NUL overflows only
         * when max_body is SIZE_MAX ("no limit") and the body is that
         * large, which no allocation could hold anyway. */
        size_t need = r->len + n + 1, cap = r->cap ? r->cap : FPI_HTTP_FIRST_CAP;
        size_t limit = s->max_body == SIZE_MAX ? SIZE_MAX : s->max_body + 1;
        if (need == 0) {
            r->refuse = FPI_HTTP_INTERNAL_ERROR;
        } else {
            while (cap < need && cap <= SIZE_MAX / 2) cap *= 2;
            if (cap < need) cap = need;
            if (cap > limit) cap = limit;
            uint8_t *p = fpi_malloc(cap);
            if (p) {
                if (r->len) memcpy(p, r->body, r->len);
                fpi_free(r->body);
                r->body = p;
                r->cap = cap;
            } else {
                r->refuse = FPI_HTTP_INTERNAL_ERROR;
            }
        }
    }
    if (r->refuse) {
        /* Release the partial body now rather than at the end of the request. */
        fpi_free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        r->discarded += n;
        if (r->discarded > FPI_HTTP_DISCARD_MAX) {
            fpi_log(FPI_LOG_INFO, "http: dropping a connection whose body went on past the limit");
            return 0;
        }
        return 1;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return 1;
}

/* The final call: the whole body is in; run the handler and queue its answer. */
static enum MHD_Result fpi_http_run(fpp_http *s, struct MHD_Connection *c, const char *url, const char *method,
                                    fpi_http_req *r)
{
    if (r->refuse == FPI_HTTP_TOO_LARGE) return fpi_http_queue_too_big(s, c);
    if (r->refuse) return fpi_http_queue_text(c, r->refuse, "out of memory\n", 1);
    if (r->body) r->body[r->len] = '\0'; /* cap > len always holds */
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    fpp_http_request req = {
        .method = method,
        .path = url,
        .query = r->query,
        .body = r->body ? r->body : (const uint8_t *)"",
        .body_len = r->len,
        .content_type = ctype ? ctype : "",
        .authorization = auth ? auth : "",
    };
    fpp_http_response resp = {0};
    s->handler(s->user, &req, &resp);

    if (resp.status < 200 || resp.status > 599) {
        fpi_log(FPI_LOG_WARN, "http: handler answered %s %s with status %d; sending 500", method, url, resp.status);
        free(resp.body);
        return fpi_http_queue_text(c, FPI_HTTP_INTERNAL_ERROR, "internal error\n", 0);
    }
    struct MHD_Response *mr;
    if (resp.body && resp.body_len) {
        /* MUST_FREE: libmicrohttpd calls free() on it when the answer is sent. */
        mr = MHD_create_response_from_buffer(resp.body_len, resp.body, MHD_RESPMEM_MUST_FREE);
    } else {
        free(resp.body);
        resp.body = NULL;
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!mr) {
        free(resp.body);
        return MHD_NO;
    }
    if (resp.content_type && resp.content_type[0] &&
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, resp.content_type) != MHD_YES)
        fpi_log(FPI_LOG_WARN, "http: handler gave an invalid content type for %s %s", method, url);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)resp.status, mr);
    MHD_destroy_response(mr);
    return ret;
}

/* MHD_AccessHandlerCallback: dispatches the calls of one request (see the
 * top of the file). */
static enum MHD_Result fpi_http_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                       const char *version, const char *upload_data, size_t *upload_data_size,
                                       void **con_cls)
{
    fpp_http *s = cls;
    fpi_http_req *r = *con_cls;
    if (!r) {
        /* The URI-log callback ran out of memory; try once more. */
        r = fpi_http_req_new(NULL);
        if (!r) return MHD_NO;
        *con_cls = r;
    }
    if (!r->started) {
        r->started = 1;
        return fpi_http_first(s, c, url, method);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return fpi_http_body(s, r, upload_data, n) ? MHD_YES : MHD_NO;
    }
    return fpi_http_run(s, c, url, method, r);
}

fp_status fpp_http_start(const char *host, int port, size_t max_body, fpp_http_handler h, void *user,
                         fpp_http **out)
{
    *out = NULL;
    if (!h) return fpi_error(FP_EINVAL, "fpp_http_start: no handler");
    if (port < 0 || port > 65535) return fpi_error(FP_EINVAL, "fpp_http_start: bad port %d (expected 0..65535)", port);
    union {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } addr;
    memset(&addr, 0, sizeof addr);
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                         MHD_USE_ERROR_LOG;
    int v6 = 0;
    if (host && inet_pton(AF_INET, host, &addr.v4.sin_addr) == 1) {
        addr.v4.sin_family = AF_INET;
        addr.v4.sin_port = htons((uint16_t)port);
    } else if (host && inet_pton(AF_INET6, host, &addr.v6.sin6_addr) == 1) {
        addr.v6.sin6_family = AF_INET6;
        addr.v6.sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
        v6 = 1;
    } else {
        return fpi_error(FP_EINVAL, "fpp_http_start: bad address \"%.80s\" (expected a numeric IPv4 or IPv6 address)",
                         host ? host : "(null)");
    }

    fpp_http *s = fpi_calloc(1, sizeof *s);
    if (!s) return fpi_error(FP_ENOMEM, "fpp_http_start: out of memory");
    s->handler = h;
    s->user = user;
    s->max_body = max_body;
    errno = 0;
    /* The logger goes first, or libmicrohttpd reports option errors to stderr. */
    s->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, fpi_http_access, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, fpi_http_log, s,
                                 MHD_OPTION_SOCK_ADDR, &addr.sa,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned int)FPP_HTTP_MAX_CONNECTIONS,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)FPP_HTTP_TIMEOUT_S,
                                 MHD_OPTION_URI_LOG_CALLBACK, fpi_http_uri_log, s,
                                 MHD_OPTION_NOTIFY_COMPLETED, fpi_http_completed, s,
                                 MHD_OPTION_END);
    if (!s->daemon) {
        /* libmicrohttpd does not say why; errno from its failed bind() or
         * listen() is the best hint there is. */
        int err = errno;
        fpi_free(s);
        return fpi_error(FP_EIO, "fpp_http_start: cannot listen on %s%s%s:%d%s%s", v6 ? "[" : "", host, v6 ? "]" : "",
                         port, err ? ": " : "", err ? strerror(err) : "");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info && info->port ? (int)info->port : port;
    *out = s;
    return FP_OK;
}

int fpp_http_port(const fpp_http *s) { return s ? s->port : 0; }

void fpp_http_stop(fpp_http *s)
{
    if (!s) return;
    /* With a thread per connection this joins every connection thread, so
     * handlers still running finish before we free what they use. */
    MHD_stop_daemon(s->daemon);
    fpi_free(s);
}

void fpp_http_reply(fpp_http_response *r, int status, const char *content_type, const char *fmt, ...)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    r->status = status;
    r->content_type = content_type;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *b = n >= 0 ? fpi_malloc((size_t)n + 1) : NULL;
    if (!b) {
        r->status = 500;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b, (size_t)n + 1, fmt, ap);
    va_end(ap);
    r->body = b;
    r->body_len = (size_t)n;
}
