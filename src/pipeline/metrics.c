/* metrics.c — the Prometheus registry behind metrics.h: fixed tables of
 * families and series under one mutex, and the text-format renderer. */
#include "pipeline/http.h"
#include "pipeline/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

typedef struct fpi_series {
    char *label;       /* owned label value ("" in a family without a label) */
    double value;      /* counter or gauge value */
    double sum;        /* histogram: sum of the observations */
    uint64_t count;    /* histogram: number of observations */
    uint64_t *buckets; /* histogram: owned, n_buckets + 1 per-bucket counts (not
                        * cumulative; the last is the +Inf bucket) */
} fpi_series;

typedef struct fpi_family {
    char *name;  /* owned */
    char *help;  /* owned, may be "" */
    char *label; /* owned label name, or NULL for none */
    int type;    /* FPP_COUNTER, FPP_GAUGE or FPP_HISTOGRAM */
    int n_buckets;
    double bounds[FPP_METRICS_MAX_BUCKETS]; /* strictly ascending, finite */
    int n_series;
    fpi_series series[FPP_METRICS_MAX_SERIES]; /* in first-use order */
} fpi_family;

struct fpp_metrics {
    pthread_mutex_t mu; /* guards everything below */
    int n_families;
    fpi_family *families[FPP_METRICS_MAX_FAMILIES]; /* in declaration order */
};

/* The label value that absorbs new values once a family is full. */
static const char fpi_other[] = "other";

/* malloc'ed copy of s, or NULL when out of memory. */
static char *fpi_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = fpi_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]* (the Prometheus data model). */
static int fpi_valid_metric_name(const char *s)
{
    if (!s || !*s) return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return 0;
    }
    return 1;
}

/* Label names: [a-zA-Z_][a-zA-Z0-9_]*, and "__" prefixes are reserved for
 * Prometheus' own labels. */
static int fpi_valid_label_name(const char *s)
{
    if (!s || !*s || !strncmp(s, "__", 2)) return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return 0;
    }
    return 1;
}

/* Frees a family and its series; NULL and partly built families are fine. */
static void fpi_family_free(fpi_family *f)
{
    if (!f) return;
    for (int i = 0; i < f->n_series; i++) {
        fpi_free(f->series[i].label);
        fpi_free(f->series[i].buckets);
    }
    fpi_free(f->name);
    fpi_free(f->help);
    fpi_free(f->label);
    fpi_free(f);
}

/* Fills the next series slot of f with label value `value`. Returns NULL
 * when out of memory (the family is left unchanged). */
static fpi_series *fpi_series_new(fpi_family *f, const char *value)
{
    fpi_series *s = &f->series[f->n_series];
    memset(s, 0, sizeof *s);
    s->label = fpi_strdup(value);
    if (!s->label) return NULL;
    if (f->type == FPP_HISTOGRAM) {
        s->buckets = fpi_calloc((size_t)f->n_buckets + 1, sizeof *s->buckets);
        if (!s->buckets) {
            fpi_free(s->label);
            s->label = NULL;
            return NULL;
        }
    }
    f->n_series++;
    return s;
}

/* Called with the lock held. */
static fpi_family *fpi_family_find(fpp_metrics *m, const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < m->n_families; i++)
        if (!strcmp(m->families[i]->name, name)) return m->families[i];
    return NULL;
}

/* The series of f for `value`; with `create`, makes it on first use and
 * folds new values into "other" once only the slot for "other" is left, so a
 * family never exceeds FPP_METRICS_MAX_SERIES. NULL when absent (without
 * create) or out of memory. Called with the lock held. */
static fpi_series *fpi_series_find(fpi_family *f, const char *value, int create)
{
    if (!f->label) return f->n_series ? &f->series[0] : NULL; /* made by declare */
    if (!value) value = "";
    for (int i = 0; i < f->n_series; i++)
        if (!strcmp(f->series[i].label, value)) return &f->series[i];
    if (!create) return NULL;
    if (f->n_series >= FPP_METRICS_MAX_SERIES - 1 && strcmp(value, fpi_other) != 0) {
        for (int i = 0; i < f->n_series; i++)
            if (!strcmp(f->series[i].label, fpi_other)) return &f->series[i];
        value = fpi_other;
    }
    /* Unreachable in practice: the last slot only ever goes to "other". */
    if (f->n_series >= FPP_METRICS_MAX_SERIES) return NULL;
    return fpi_series_new(f, value);
}

fp_status fpp_metrics_create(fpp_metrics **out)
{
    *out = NULL;
    fpp_metrics *m = fpi_calloc(1, sizeof *m);
    if (!m) return fpi_error(FP_ENOMEM, "fpp_metrics_create: out of memory");
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        fpi_free(m);
        return fpi_error(FP_ENOMEM, "fpp_metrics_create: cannot create a mutex");
    }
    *out = m;
    return FP_OK;
}

void fpp_metrics_destroy(fpp_metrics *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_families; i++) fpi_family_free(m->families[i]);
    pthread_mutex_destroy(&m->mu);
    fpi_free(m);
}

/* Checks everything about a declaration that does not need the registry. */
static fp_status fpi_declare_check(const char *name, int type, const char *label, const double *buckets,
                                   int n_buckets)
{
    if (!fpi_valid_metric_name(name))
        return fpi_error(FP_EINVAL, "fpp_metrics_declare: bad metric name \"%.80s\" (expected [a-zA-Z_:][a-zA-Z0-9_:]*)",
                         name ? name : "(null)");
    if (type != FPP_COUNTER && type != FPP_GAUGE && type != FPP_HISTOGRAM)
        return fpi_error(FP_EINVAL, "fpp_metrics_declare: %s: bad type %d", name, type);
    if (label && !fpi_valid_label_name(label))
        return fpi_error(FP_EINVAL, "fpp_metrics_declare: %s: bad label name \"%.80s\"", name, label);
    if (type != FPP_HISTOGRAM) {
        if (n_buckets != 0)
            return fpi_error(FP_EINVAL, "fpp_metrics_declare: %s: buckets given for a non-histogram (got %d)", name,
                             n_buckets);
        return FP_OK;
    }
    /* "le" is the bucket label of histograms; a second one would clash. */
    if (label && !strcmp(label, "le"))
        return fpi_error(FP_EINVAL, "fpp_metrics_declare: %s: \"le\" is reserved in histograms", name);
    if (n_buckets < 0 || n_buckets > FPP_METRICS_MAX_BUCKETS || (n_buckets > 0 && !buckets))
        return fpi_error(FP_EINVAL, "fpp_metrics_declare: %s: bad bucket count %d (expected 0..%d)", name, n_buckets,
                         FPP_METRICS_MAX_BUCKETS);
    for (int i = 0; i < n_buckets; i++) {
        if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
            return fpi_error(FP_EINVAL, "fpp_metrics_declare: %s: bucket %d (%g) is not finite and above the previous",
                             name, i, buckets[i]);
    }
    return FP_OK;
}

fp_status fpp_metrics_declare(fpp_metrics *m, const char *name, int type, const char *help, const char *label,
                              const double *buckets, int n_buckets)
{
    if (!m) return fpi_error(FP_EINVAL, "fpp_metrics_declare: no registry");
    fp_status st = fpi_declare_check(name, type, label, buckets, n_buckets);
    if (st) return st;

    /* Build the family outside the lock: allocation need not block updates. */
    fpi_family *f = fpi_calloc(1, sizeof *f);
    if (!f) return fpi_error(FP_ENOMEM, "fpp_metrics_declare: %s: out of memory", name);
    f->type = type;
    f->n_buckets = type == FPP_HISTOGRAM ? n_buckets : 0;
    if (f->n_buckets) memcpy(f->bounds, buckets, (size_t)n_buckets * sizeof *buckets);
    f->name = fpi_strdup(name);
    f->help = fpi_strdup(help ? help : "");
    f->label = label ? fpi_strdup(label) : NULL;
    if (!f->name || !f->help || (label && !f->label) || (!label && !fpi_series_new(f, ""))) {
        fpi_family_free(f);
        return fpi_error(FP_ENOMEM, "fpp_metrics_declare: %s: out of memory", name);
    }

    pthread_mutex_lock(&m->mu);
    if (fpi_family_find(m, name)) {
        st = fpi_error(FP_EINVAL, "fpp_metrics_declare: %s is already declared", name);
    } else if (m->n_families >= FPP_METRICS_MAX_FAMILIES) {
        st = fpi_error(FP_EINVAL, "fpp_metrics_declare: %s: registry full (%d families)", name,
                       FPP_METRICS_MAX_FAMILIES);
    } else {
        m->families[m->n_families++] = f;
        f = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    fpi_family_free(f);
    return st;
}

void fpp_metrics_add(fpp_metrics *m, const char *name, const char *label_value, double v)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    fpi_family *f = fpi_family_find(m, name);
    /* Counters only go up: a negative or NaN increment would break rate(). */
    int ok = f && (f->type == FPP_GAUGE || (f->type == FPP_COUNTER && v >= 0));
    fpi_series *s = ok ? fpi_series_find(f, label_value, 1) : NULL;
    if (s) s->value += v;
    pthread_mutex_unlock(&m->mu);
}

void fpp_metrics_raise(fpp_metrics *m, const char *name, const char *label_value, double v)
{
    if (!m || isnan(v)) return;
    pthread_mutex_lock(&m->mu);
    fpi_family *f = fpi_family_find(m, name);
    fpi_series *s = f && f->type == FPP_COUNTER ? fpi_series_find(f, label_value, 1) : NULL;
    if (s && v > s->value) s->value = v;
    pthread_mutex_unlock(&m->mu);
}

void fpp_metrics_set(fpp_metrics *m, const char *name, const char *label_value, double v)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    fpi_family *f = fpi_family_find(m, name);
    fpi_series *s = f && f->type == FPP_GAUGE ? fpi_series_find(f, label_value, 1) : NULL;
    if (s) s->value = v;
    pthread_mutex_unlock(&m->mu);
}

void fpp_metrics_observe(fpp_metrics *m, const char *name, const char *label_value, double v)
{
    if (!m || isnan(v)) return;
    pthread_mutex_lock(&m->mu);
    fpi_family *f = fpi_family_find(m, name);
    fpi_series *s = f && f->type == FPP_HISTOGRAM ? fpi_series_find(f, label_value, 1) : NULL;
    if (s) {
        int b = 0;
        while (b < f->n_buckets && v > f->bounds[b]) b++; /* le: upper bounds are inclusive */
        s->buckets[b]++;
        s->count++;
        s->sum += v;
    }
    pthread_mutex_unlock(&m->mu);
}

double fpp_metrics_get(fpp_metrics *m, const char *name, const char *label_value)
{
    if (!m) return 0;
    double v = 0;
    pthread_mutex_lock(&m->mu);
    fpi_family *f = fpi_family_find(m, name);
    fpi_series *s = f ? fpi_series_find(f, label_value, 0) : NULL;
    if (s) v = f->type == FPP_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&m->mu);
    return v;
}

/* histogram_quantile() on one series (see metrics.h for the rules). */
static double fpi_bucket_quantile(const fpi_family *f, const fpi_series *s, double q)
{
    int nb = f->n_buckets;
    if (!(q >= 0 && q <= 1) || nb < 1 || s->count == 0) return NAN;
    double cum[FPP_METRICS_MAX_BUCKETS + 1];
    uint64_t run = 0;
    for (int i = 0; i <= nb; i++) {
        run += s->buckets[i];
        cum[i] = (double)run;
    }
    double rank = q * (double)s->count;
    /* cum > 0 only matters for rank 0, where Prometheus would divide 0/0 in
     * an empty first bucket; the first non-empty one gives its lower bound. */
    int b = 0;
    while (b < nb && !(cum[b] >= rank && cum[b] > 0)) b++;
    if (b == nb) return f->bounds[nb - 1];
    if (b == 0 && f->bounds[0] <= 0) return f->bounds[0];
    double start = b ? f->bounds[b - 1] : 0, end = f->bounds[b];
    double below = b ? cum[b - 1] : 0;
    return start + (end - start) * ((rank - below) / (cum[b] - below));
}

double fpp_metrics_quantile(fpp_metrics *m, const char *name, const char *label_value, double q)
{
    if (!m) return NAN;
    double v = NAN;
    pthread_mutex_lock(&m->mu);
    fpi_family *f = fpi_family_find(m, name);
    fpi_series *s = f && f->type == FPP_HISTOGRAM ? fpi_series_find(f, label_value, 0) : NULL;
    if (s) v = fpi_bucket_quantile(f, s, q);
    pthread_mutex_unlock(&m->mu);
    return v;
}

/* A growable output string; `oom` latches the first allocation failure so
 * the renderer can write straight through and check once at the end. */
typedef struct fpi_text {
    char *buf;
    size_t len, cap;
    int oom;
} fpi_text;

/* Makes room for n more bytes plus the NUL. Returns 0 when out of memory. */
static int fpi_text_reserve(fpi_text *t, size_t n)
{
    if (t->oom) return 0;
    size_t need;
    if (!fpi_add_size(t->len, n, &need) || !fpi_add_size(need, 1, &need)) goto fail;
    if (need <= t->cap) return 1;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < need) {
        if (!fpi_mul_size(cap, 2, &cap)) goto fail;
    }
    char *p = fpi_malloc(cap);
    if (!p) goto fail;
    if (t->len) memcpy(p, t->buf, t->len);
    fpi_free(t->buf);
    t->buf = p;
    t->cap = cap;
    return 1;
fail:
    t->oom = 1;
    return 0;
}

static void fpi_text_putn(fpi_text *t, const char *s, size_t n)
{
    if (!fpi_text_reserve(t, n)) return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void fpi_text_puts(fpi_text *t, const char *s) { fpi_text_putn(t, s, strlen(s)); }

/* Appends s with the given characters escaped: label values escape
 * backslash, double quote and newline; HELP text only backslash and
 * newline (text format 0.0.4). */
static void fpi_text_escaped(fpi_text *t, const char *s, int quote)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\') fpi_text_putn(t, "\\\\", 2);
        else if (*p == '\n') fpi_text_putn(t, "\\n", 2);
        else if (quote && *p == '"') fpi_text_putn(t, "\\\"", 2);
        else fpi_text_putn(t, p, 1);
    }
}

/* Formats v as Prometheus reads it: integers (below 1e17, i.e. at most
 * 17 digits, the precision of %.17g) without a fraction or exponent,
 * otherwise the shortest of %.15g..%.17g that parses back to exactly v, so
 * 0.1 stays "0.1" and nothing is lost. */
static void fpi_format_number(double v, char *buf, size_t n)
{
    if (isnan(v)) {
        snprintf(buf, n, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, n, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e17) { /* %.0f prints it exactly */
        snprintf(buf, n, "%.0f", v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, n, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
    }
}

/* Writes "name<suffix>{label="value",le="bound"} " (braces only when there is
 * a label or le). */
static void fpi_text_series_head(fpi_text *t, const fpi_family *f, const fpi_series *s, const char *suffix,
                                 const char *le)
{
    fpi_text_puts(t, f->name);
    fpi_text_puts(t, suffix);
    if (f->label || le) {
        fpi_text_putn(t, "{", 1);
        if (f->label) {
            fpi_text_puts(t, f->label);
            fpi_text_putn(t, "=\"", 2);
            fpi_text_escaped(t, s->label, 1);
            fpi_text_putn(t, "\"", 1);
        }
        if (le) {
            if (f->label) fpi_text_putn(t, ",", 1);
            fpi_text_putn(t, "le=\"", 4);
            fpi_text_puts(t, le);
            fpi_text_putn(t, "\"", 1);
        }
        fpi_text_putn(t, "}", 1);
    }
    fpi_text_putn(t, " ", 1);
}

static void fpi_render_family(fpi_text *t, const fpi_family *f)
{
    static const char *const type_names[] = {"", "counter", "gauge", "histogram"};
    char num[64];
    if (f->help[0]) {
        fpi_text_puts(t, "# HELP ");
        fpi_text_puts(t, f->name);
        fpi_text_putn(t, " ", 1);
        fpi_text_escaped(t, f->help, 0);
        fpi_text_putn(t, "\n", 1);
    }
    fpi_text_puts(t, "# TYPE ");
    fpi_text_puts(t, f->name);
    fpi_text_putn(t, " ", 1);
    fpi_text_puts(t, type_names[f->type]);
    fpi_text_putn(t, "\n", 1);
    for (int i = 0; i < f->n_series; i++) {
        const fpi_series *s = &f->series[i];
        if (f->type != FPP_HISTOGRAM) {
            fpi_text_series_head(t, f, s, "", NULL);
            fpi_format_number(s->value, num, sizeof num);
            fpi_text_puts(t, num);
            fpi_text_putn(t, "\n", 1);
            continue;
        }
        uint64_t cum = 0;
        for (int b = 0; b <= f->n_buckets; b++) {
            char le[64];
            if (b < f->n_buckets) fpi_format_number(f->bounds[b], le, sizeof le);
            else snprintf(le, sizeof le, "+Inf");
            cum += s->buckets[b];
            fpi_text_series_head(t, f, s, "_bucket", le);
            snprintf(num, sizeof num, "%llu\n", (unsigned long long)cum);
            fpi_text_puts(t, num);
        }
        fpi_text_series_head(t, f, s, "_sum", NULL);
        fpi_format_number(s->sum, num, sizeof num);
        fpi_text_puts(t, num);
        fpi_text_putn(t, "\n", 1);
        fpi_text_series_head(t, f, s, "_count", NULL);
        snprintf(num, sizeof num, "%llu\n", (unsigned long long)s->count);
        fpi_text_puts(t, num);
    }
}

fp_status fpp_metrics_render(fpp_metrics *m, char **out)
{
    *out = NULL;
    if (!m) return fpi_error(FP_EINVAL, "fpp_metrics_render: no registry");
    fpi_text t = {0};
    fpi_text_reserve(&t, 0); /* an empty registry still gives "" */
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_families && !t.oom; i++) fpi_render_family(&t, m->families[i]);
    pthread_mutex_unlock(&m->mu);
    if (t.oom) {
        fpi_free(t.buf);
        return fpi_error(FP_ENOMEM, "fpp_metrics_render: out of memory");
    }
    t.buf[t.len] = '\0';
    *out = t.buf;
    return FP_OK;
}

void fpp_metrics_reply(fpp_metrics *m, struct fpp_http_response *resp)
{
    char *text = NULL;
    if (fpp_metrics_render(m, &text)) {
        fpp_http_reply(resp, 500, "text/plain", "out of memory\n");
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4";
    resp->body = text;
    resp->body_len = strlen(text);
}
