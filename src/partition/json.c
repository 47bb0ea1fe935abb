/* json.c — small validating accessors over cJSON for the cluster, profile
 * and plan readers: every error names the file and the field's path. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "partition/partition_impl.h"

fp_status fpi_json_keys(const cJSON *obj, const char *const *allowed, const char *name,
                        const char *where)
{
    for (const cJSON *it = obj ? obj->child : NULL; it; it = it->next) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = it->string && !strcmp(it->string, *a);
        if (ok) continue;
        char list[512];
        size_t n = 0;
        list[0] = '\0';
        for (const char *const *a = allowed; *a && n < sizeof list; a++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", a == allowed ? "" : ", ", *a);
        return fpi_error(FP_ECORRUPT, "%s: %s: unknown key \"%.64s\" (expected %s)", name, where,
                         it->string ? it->string : "?", list);
    }
    return FP_OK;
}

fp_status fpi_json_number(const cJSON *obj, const char *key, int required, double min, double max,
                          const char *name, const char *where, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required) return fpi_error(FP_ECORRUPT, "%s: %s: missing \"%s\"", name, where, key);
        return FP_OK;
    }
    if (!cJSON_IsNumber(v))
        return fpi_error(FP_ECORRUPT, "%s: %s.%s must be a number", name, where, key);
    double d = v->valuedouble;
    if (!isfinite(d) || d < min || d > max)
        return fpi_error(FP_ECORRUPT, "%s: %s.%s must be in [%g, %g] (got %g)", name, where, key, min,
                         max, d);
    *out = d;
    return FP_OK;
}

fp_status fpi_json_int(const cJSON *obj, const char *key, int required, long min, long max,
                       const char *name, const char *where, long *out)
{
    double d = 0;
    int present = cJSON_GetObjectItemCaseSensitive(obj, key) != NULL;
    fp_status st = fpi_json_number(obj, key, required, (double)min, (double)max, name, where, &d);
    if (st || !present) return st;
    if (d != floor(d))
        return fpi_error(FP_ECORRUPT, "%s: %s.%s must be an integer (got %g)", name, where, key, d);
    *out = (long)d;
    return FP_OK;
}

fp_status fpi_json_string(const cJSON *obj, const char *key, int required, const char *name,
                          const char *where, char *buf, size_t size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required) return fpi_error(FP_ECORRUPT, "%s: %s: missing \"%s\"", name, where, key);
        return FP_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return fpi_error(FP_ECORRUPT, "%s: %s.%s must be a string", name, where, key);
    size_t n = strlen(v->valuestring);
    if (n == 0) return fpi_error(FP_ECORRUPT, "%s: %s.%s must not be empty", name, where, key);
    if (n >= size)
        return fpi_error(FP_ECORRUPT, "%s: %s.%s is too long (%zu bytes, at most %zu)", name, where,
                         key, n, size - 1);
    memcpy(buf, v->valuestring, n + 1);
    return FP_OK;
}

fp_status fpi_json_parse(const char *text, const char *name, cJSON **out)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        /* cJSON reports where it stopped; turn it into line:column. */
        const char *at = cJSON_GetErrorPtr();
        if (!at || at < text) at = text;
        int line = 1, col = 1;
        for (const char *p = text; p < at && *p; p++) {
            if (*p == '\n') line++, col = 1;
            else col++;
        }
        return fpi_error(FP_ECORRUPT, "%s:%d:%d: not valid JSON", name, line, col);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fpi_error(FP_ECORRUPT, "%s: the top level must be a JSON object", name);
    }
    *out = root;
    return FP_OK;
}

fp_status fpi_json_print(cJSON *root, char **text)
{
    char *s = root ? cJSON_Print(root) : NULL;
    if (!s) return fpi_error(FP_ENOMEM, "out of memory writing JSON");
    *text = s;
    return FP_OK;
}

fp_status fpi_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) return fpi_error(FP_EIO, "%s: cannot create: %s", path, strerror(errno));
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, f) != n || fputc('\n', f) == EOF;
    if (fclose(f) != 0) bad = 1;
    if (bad) return fpi_error(FP_EIO, "%s: write error: %s", path, strerror(errno));
    return FP_OK;
}
