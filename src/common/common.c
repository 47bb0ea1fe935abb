/* common.c — error recording, logging, allocation wrappers, file reading. */
#define _DEFAULT_SOURCE /* madvise */
#include "common/common.h"

#include <errno.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FPI_ERRBUF 512

static _Thread_local char fpi_errbuf[FPI_ERRBUF];

const char *fp_strerror(fp_status status)
{
    static const char *const desc[] = {
#define FP_STATUS_DESC_(name, d) d,
        FP_STATUS_LIST(FP_STATUS_DESC_)
#undef FP_STATUS_DESC_
    };
    if ((unsigned)status >= FP_STATUS_COUNT) return "unknown status";
    return desc[status];
}

const char *fp_status_name(fp_status status)
{
    static const char *const names[] = {
#define FP_STATUS_NAME_(name, d) "FP_" #name,
        FP_STATUS_LIST(FP_STATUS_NAME_)
#undef FP_STATUS_NAME_
    };
    if ((unsigned)status >= FP_STATUS_COUNT) return "FP_UNKNOWN";
    return names[status];
}

const char *fp_last_error(void) { return fpi_errbuf; }

fp_status fpi_error(fp_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fpi_errbuf, sizeof fpi_errbuf, fmt, ap);
    va_end(ap);
    return status;
}

fp_status fpi_error_context(fp_status status, const char *fmt, ...)
{
    char msg[FPI_ERRBUF];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) return status;
    size_t used = strlen(msg);
    const char *old = fpi_errbuf[0] ? fpi_errbuf : fp_strerror(status);
    if (used + 2 < sizeof msg) {
        memcpy(msg + used, ": ", 3);
        used += 2;
        size_t room = sizeof msg - 1 - used, len = strlen(old);
        if (len > room) len = room;
        memcpy(msg + used, old, len);
        msg[used + len] = '\0';
    }
    memcpy(fpi_errbuf, msg, sizeof fpi_errbuf);
    return status;
}

static int fpi_log_threshold(void)
{
    static int level = -1;
    if (level < 0) {
        const char *s = getenv("FP_LOG_LEVEL");
        level = FPI_LOG_WARN;
        if (s) {
            if (!strcmp(s, "error")) level = FPI_LOG_ERROR;
            else if (!strcmp(s, "info")) level = FPI_LOG_INFO;
            else if (!strcmp(s, "debug")) level = FPI_LOG_DEBUG;
        }
    }
    return level;
}

void fpi_log(int level, const char *fmt, ...)
{
    static const char *const tag[] = {"error", "warning", "info", "debug"};
    if (level > fpi_log_threshold()) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fogpipe: %s: ", tag[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static long fpi_fail_countdown = -1;

/* Returns 1 when the injected failure point is reached. */
static int fpi_should_fail(void)
{
    if (fpi_fail_countdown < 0) return 0;
    if (fpi_fail_countdown == 0) return 1;
    fpi_fail_countdown--;
    return 0;
}

void fpi_alloc_fail_after(long n) { fpi_fail_countdown = n; }

void *fpi_malloc(size_t size)
{
    if (fpi_should_fail()) return NULL;
    return malloc(size ? size : 1);
}

void *fpi_calloc(size_t n, size_t size)
{
    if (fpi_should_fail()) return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void fpi_free(void *p) { free(p); }

void *fpi_malloc_aligned(size_t size)
{
    if (fpi_should_fail()) return NULL;
    size_t rounded = (size + 63) & ~(size_t)63;
    if (rounded < size) return NULL;
    return aligned_alloc(64, rounded ? rounded : 64);
}

void fpi_free_aligned(void *p) { free(p); }

fp_status fpi_read_file(const char *path, size_t max_bytes, char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fpi_error(FP_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, len = 0;
    fp_status st = FP_OK;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > max_bytes + 1) ncap = max_bytes + 1;
            if (ncap <= cap) {
                st = fpi_error(FP_ETOOBIG, "%s: larger than the limit of %zu bytes", path, max_bytes);
                goto error;
            }
            char *nb = fpi_malloc(ncap + 1);
            if (!nb) {
                st = fpi_error(FP_ENOMEM, "%s: out of memory reading file", path);
                goto error;
            }
            if (len) memcpy(nb, buf, len);
            fpi_free(buf);
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                st = fpi_error(FP_EIO, "%s: read error: %s", path, strerror(errno));
                goto error;
            }
            break;
        }
        if (len > max_bytes) {
            st = fpi_error(FP_ETOOBIG, "%s: larger than the limit of %zu bytes", path, max_bytes);
            goto error;
        }
    }
    fclose(f);
    if (!buf) {
        buf = fpi_malloc(1);
        if (!buf) return fpi_error(FP_ENOMEM, "%s: out of memory", path);
    }
    buf[len] = '\0';
    *data = buf;
    *size = len;
    return FP_OK;
error:
    fclose(f);
    fpi_free(buf);
    return st;
}

size_t fpi_memory_limit(void)
{
    const char *env = getenv("FP_MEMORY_LIMIT_MB");
    if (env && *env) {
        char *end;
        unsigned long long mb = strtoull(env, &end, 10);
        if (*end == '\0' && mb > 0 && mb < (SIZE_MAX >> 20)) return (size_t)mb << 20;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return SIZE_MAX;
    return (size_t)pages * (size_t)page;
}

double fpi_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double fpi_process_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

size_t fpi_release_pages(void *p, size_t bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    if (!p || page <= 0) return 0;
    uintptr_t a = (uintptr_t)p, pg = (uintptr_t)page;
    uintptr_t lo = (a + pg - 1) / pg * pg, hi = (a + bytes) / pg * pg;
    if (hi <= lo || madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0) return 0;
    return hi - lo;
}

void *fpi_map_zeroed(size_t bytes)
{
    if (!bytes) bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void fpi_unmap(void *p, size_t bytes)
{
    if (p) munmap(p, bytes ? bytes : 1);
}
