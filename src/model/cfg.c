/* cfg.c — darknet .cfg parser: sections, options, validating getters. */
#include "model/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "fogpipe/net.h"

/* Trims ASCII white space at both ends of s in place; returns the new start. */
static char *fpi_trim(char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

fp_status fpi_cfg_error(const fpi_cfg *cfg, const fpi_cfg_section *s, fp_status status,
                        const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s)
        return fpi_error(status, "%s:%d: [%s] %s", cfg->name, s->line, s->type, msg);
    return fpi_error(status, "%s: %s", cfg->name, msg);
}

/* Reports an error at an option's own line. */
static fp_status fpi_opt_error(const fpi_cfg *cfg, const fpi_cfg_section *s,
                               const fpi_cfg_option *o, const char *reason)
{
    return fpi_error(FP_ECORRUPT, "%s:%d: [%s] %s: %s (got \"%.40s\")", cfg->name, o->line,
                     s->type, o->key, reason, o->value);
}

void fpi_cfg_free(fpi_cfg *cfg)
{
    if (!cfg) return;
    fpi_free(cfg->text);
    fpi_free(cfg->sections);
    memset(cfg, 0, sizeof *cfg);
}

fp_status fpi_cfg_parse(const char *text, const char *name, fpi_cfg *cfg)
{
    fp_status st = FP_OK;
    memset(cfg, 0, sizeof *cfg);
    cfg->name = name ? name : "<cfg>";
    size_t len = strlen(text);
    if (len > FPI_CFG_MAX_BYTES)
        return fpi_error(FP_ETOOBIG, "%s: cfg larger than %d bytes", cfg->name, FPI_CFG_MAX_BYTES);

    /* Count headers first so the section array is allocated once. */
    size_t cap = 0;
    for (const char *p = text; *p; p++) {
        const char *q = p;
        /* Skip what fpi_trim() skips ('\r' too), or a header behind it is
         * parsed below but not counted here: a write past the array. */
        while (*q != '\n' && isspace((unsigned char)*q)) q++;
        if (*q == '[') cap++;
        p = strchr(q, '\n');
        if (!p) break;
    }
    if (cap > (size_t)FP_MAX_LAYERS + 1)
        return fpi_error(FP_ETOOBIG, "%s: more than %d sections", cfg->name, FP_MAX_LAYERS + 1);

    cfg->text = fpi_malloc(len + 1);
    cfg->sections = fpi_calloc(cap ? cap : 1, sizeof *cfg->sections);
    if (!cfg->text || !cfg->sections) {
        st = fpi_error(FP_ENOMEM, "%s: out of memory parsing cfg", cfg->name);
        goto error;
    }
    memcpy(cfg->text, text, len + 1);

    fpi_cfg_section *cur = NULL;
    char *line = cfg->text;
    for (int lineno = 1; line; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (strlen(line) > FPI_CFG_MAX_LINE) {
            st = fpi_error(FP_ECORRUPT, "%s:%d: line longer than %d characters", cfg->name,
                           lineno, FPI_CFG_MAX_LINE);
            goto error;
        }
        for (char *c = line; *c; c++) {
            if (*c == '\0' || ((unsigned char)*c < 0x20 && *c != '\t' && *c != '\r')) {
                st = fpi_error(FP_ECORRUPT, "%s:%d: control character 0x%02x in cfg text",
                               cfg->name, lineno, (unsigned char)*c);
                goto error;
            }
        }
        char *s = fpi_trim(line);
        if (*s == '\0' || *s == '#' || *s == ';') {
            /* blank or comment */
        } else if (*s == '[') {
            char *end = strchr(s, ']');
            if (!end || end[1] != '\0') {
                st = fpi_error(FP_ECORRUPT, "%s:%d: malformed section header \"%.40s\"",
                               cfg->name, lineno, s);
                goto error;
            }
            *end = '\0';
            char *type = fpi_trim(s + 1);
            if (*type == '\0') {
                st = fpi_error(FP_ECORRUPT, "%s:%d: empty section name", cfg->name, lineno);
                goto error;
            }
            cur = &cfg->sections[cfg->n_sections++];
            cur->type = type;
            cur->line = lineno;
        } else {
            if (!cur) {
                st = fpi_error(FP_ECORRUPT, "%s:%d: option before the first [section]: \"%.40s\"",
                               cfg->name, lineno, s);
                goto error;
            }
            char *eq = strchr(s, '=');
            if (!eq) {
                st = fpi_error(FP_ECORRUPT, "%s:%d: [%s] expected key=value (got \"%.40s\")",
                               cfg->name, lineno, cur->type, s);
                goto error;
            }
            *eq = '\0';
            char *key = fpi_trim(s), *val = fpi_trim(eq + 1);
            if (*key == '\0') {
                st = fpi_error(FP_ECORRUPT, "%s:%d: [%s] empty option name", cfg->name, lineno,
                               cur->type);
                goto error;
            }
            if (cur->n_options == FPI_CFG_MAX_OPTIONS) {
                st = fpi_error(FP_ECORRUPT, "%s:%d: [%s] more than %d options in one section",
                               cfg->name, lineno, cur->type, FPI_CFG_MAX_OPTIONS);
                goto error;
            }
            fpi_cfg_option *o = &cur->options[cur->n_options++];
            o->key = key;
            o->value = val;
            o->line = lineno;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (cfg->n_sections == 0) {
        st = fpi_error(FP_ECORRUPT, "%s: no sections: not a darknet cfg", cfg->name);
        goto error;
    }
    return FP_OK;
error:
    fpi_cfg_free(cfg);
    return st;
}

/* Finds the last option named key (darknet's lookup keeps the last one). */
static fpi_cfg_option *fpi_cfg_find(const fpi_cfg_section *s, const char *key)
{
    for (int i = s->n_options - 1; i >= 0; i--)
        if (strcmp(s->options[i].key, key) == 0) {
            fpi_cfg_option *o = (fpi_cfg_option *)&s->options[i];
            o->used = 1;
            return o;
        }
    return NULL;
}

/* Parses a whole decimal integer (surrounding blanks allowed). */
static int fpi_parse_long(const char *v, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || errno == ERANGE) return 0;
    while (isspace((unsigned char)*end)) end++;
    if (*end) return 0;
    *out = x;
    return 1;
}

/* Parses a whole finite float (surrounding blanks allowed). */
static int fpi_parse_float(const char *v, float *out)
{
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (end == v || errno == ERANGE || !isfinite(x)) return 0;
    while (isspace((unsigned char)*end)) end++;
    if (*end) return 0;
    *out = x;
    return 1;
}

fp_status fpi_cfg_int(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *key, int def,
                      int min, int max, int *out)
{
    fpi_cfg_option *o = fpi_cfg_find(s, key);
    if (!o) {
        *out = def;
        return FP_OK;
    }
    long x;
    if (!fpi_parse_long(o->value, &x)) return fpi_opt_error(cfg, s, o, "not an integer");
    if (x < min || x > max) {
        char why[96];
        snprintf(why, sizeof why, "must be in [%d, %d]", min, max);
        return fpi_opt_error(cfg, s, o, why);
    }
    *out = (int)x;
    return FP_OK;
}

fp_status fpi_cfg_float(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *key, float def,
                        float min, float max, float *out)
{
    fpi_cfg_option *o = fpi_cfg_find(s, key);
    if (!o) {
        *out = def;
        return FP_OK;
    }
    float x;
    if (!fpi_parse_float(o->value, &x)) return fpi_opt_error(cfg, s, o, "not a finite number");
    if (x < min || x > max) {
        char why[96];
        snprintf(why, sizeof why, "must be in [%g, %g]", (double)min, (double)max);
        return fpi_opt_error(cfg, s, o, why);
    }
    *out = x;
    return FP_OK;
}

const char *fpi_cfg_str(const fpi_cfg_section *s, const char *key)
{
    fpi_cfg_option *o = fpi_cfg_find(s, key);
    return o ? o->value : NULL;
}

/* Splits a comma list and calls fn on each trimmed item; shared by the list getters. */
static fp_status fpi_cfg_list(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *key,
                              int cap, int *n, int (*fn)(const char *item, int i, void *ctx),
                              void *ctx, const char *what)
{
    *n = 0;
    fpi_cfg_option *o = fpi_cfg_find(s, key);
    if (!o) return FP_OK;
    char buf[FPI_CFG_MAX_LINE + 1];
    snprintf(buf, sizeof buf, "%s", o->value);
    int count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *t = fpi_trim(tok);
        if (*t == '\0') continue; /* darknet tolerates "1,2," */
        if (count == cap) {
            char why[64];
            snprintf(why, sizeof why, "more than %d values", cap);
            return fpi_opt_error(cfg, s, o, why);
        }
        if (!fn(t, count, ctx)) return fpi_opt_error(cfg, s, o, what);
        count++;
    }
    if (count == 0) return fpi_opt_error(cfg, s, o, "empty list");
    *n = count;
    return FP_OK;
}

typedef struct { int *vals; int min, max; } fpi_int_list_ctx;

static int fpi_int_item(const char *item, int i, void *vctx)
{
    fpi_int_list_ctx *c = vctx;
    long x;
    if (!fpi_parse_long(item, &x) || x < c->min || x > c->max) return 0;
    c->vals[i] = (int)x;
    return 1;
}

static int fpi_float_item(const char *item, int i, void *vctx)
{
    return fpi_parse_float(item, &((float *)vctx)[i]);
}

fp_status fpi_cfg_int_list(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *key,
                           int *vals, int cap, int min, int max, int *n)
{
    fpi_int_list_ctx c = {vals, min, max};
    char what[96];
    snprintf(what, sizeof what, "expected integers in [%d, %d]", min, max);
    return fpi_cfg_list(cfg, s, key, cap, n, fpi_int_item, &c, what);
}

fp_status fpi_cfg_float_list(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *key,
                             float *vals, int cap, int *n)
{
    return fpi_cfg_list(cfg, s, key, cap, n, fpi_float_item, vals, "expected finite numbers");
}
