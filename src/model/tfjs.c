/* tfjs.c — reads TensorFlow.js weight manifests and their binary shards into
 * named float32 tensors. Both files are untrusted: the JSON is bounded and
 * every field checked, shard sizes are compared with what the specs need
 * before anything is read, and every value must be finite. */
#include "model/tfjs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "fogpipe/net.h"

/* One group of the manifest: its shards and its tensors [first, first+n). */
typedef struct {
    const cJSON *paths; /* the "paths" array */
    int first;          /* index of its first tensor */
    int n;              /* its tensors */
    size_t bytes;       /* bytes its specs need */
} fpi_tfjs_group;

/* Bytes per stored value. */
static size_t fpi_tfjs_width(fpi_tfjs_storage s)
{
    return s == FPI_TFJS_U8 ? 1 : (s == FPI_TFJS_F32 ? 4 : 2);
}

/* 1-based line of byte `pos` of text (for JSON error messages). */
static int fpi_line_of(const char *text, size_t pos)
{
    int line = 1;
    for (size_t i = 0; i < pos; i++) line += text[i] == '\n';
    return line;
}

/* Parses one weight spec into t; the affine map (uint8/16) goes to scale and min. */
static fp_status fpi_tfjs_spec(const char *mpath, int g, int k, const cJSON *w, fpi_tfjs_tensor *t,
                               double *scale, double *min)
{
    if (!cJSON_IsObject(w))
        return fpi_error(FP_ECORRUPT, "%s: group %d, weight %d: not a JSON object", mpath, g, k);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(w, "name");
    if (!cJSON_IsString(name))
        return fpi_error(FP_ECORRUPT, "%s: group %d, weight %d: \"name\" missing or not a string", mpath, g, k);
    size_t len = strlen(name->valuestring);
    if (len == 0 || len >= FPI_TFJS_MAX_NAME)
        return fpi_error(FP_ECORRUPT, "%s: group %d, weight %d: name must be 1..%d bytes (got %zu)", mpath,
                         g, k, FPI_TFJS_MAX_NAME - 1, len);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name->valuestring[i] < 0x20 || name->valuestring[i] == 0x7f)
            return fpi_error(FP_ECORRUPT, "%s: group %d, weight %d: control character in the name", mpath, g, k);
    memcpy(t->name, name->valuestring, len + 1);

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(w, "shape");
    if (!cJSON_IsArray(shape))
        return fpi_error(FP_ECORRUPT, "%s: weight \"%s\": \"shape\" missing or not an array", mpath, t->name);
    int rank = cJSON_GetArraySize(shape);
    if (rank > FPI_TFJS_MAX_RANK)
        return fpi_error(FP_EUNSUPPORTED, "%s: weight \"%s\": rank %d (at most %d supported)", mpath,
                         t->name, rank, FPI_TFJS_MAX_RANK);
    t->rank = rank;
    t->count = 1;
    int d = 0;
    for (const cJSON *e = shape->child; e; e = e->next, d++) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(v >= 1 && v <= FP_MAX_DIM && v == floor(v)))
            return fpi_error(FP_ECORRUPT, "%s: weight \"%s\": dim %d must be an integer in [1, %d]", mpath,
                             t->name, d, FP_MAX_DIM);
        t->shape[d] = (int)v;
        t->count *= (size_t)v;
        if (t->count > ((size_t)1 << 28))
            return fpi_error(FP_ETOOBIG, "%s: weight \"%s\": more than 2^28 values", mpath, t->name);
    }

    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(w, "dtype");
    if (!cJSON_IsString(dtype))
        return fpi_error(FP_ECORRUPT, "%s: weight \"%s\": \"dtype\" missing or not a string", mpath, t->name);
    if (strcmp(dtype->valuestring, "float32") != 0)
        return fpi_error(FP_EUNSUPPORTED,
                         "%s: weight \"%s\": dtype \"%.32s\" not supported (float32 only, stored as float32, float16, uint8 or uint16)",
                         mpath, t->name, dtype->valuestring);
    t->storage = FPI_TFJS_F32;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(w, "quantization");
    if (!q) return FP_OK;
    const cJSON *qd = cJSON_GetObjectItemCaseSensitive(q, "dtype");
    if (!cJSON_IsObject(q) || !cJSON_IsString(qd))
        return fpi_error(FP_ECORRUPT, "%s: weight \"%s\": \"quantization\" must be an object with a \"dtype\"",
                         mpath, t->name);
    if (!strcmp(qd->valuestring, "float16")) {
        t->storage = FPI_TFJS_F16;
        return FP_OK;
    }
    if (strcmp(qd->valuestring, "uint8") != 0 && strcmp(qd->valuestring, "uint16") != 0)
        return fpi_error(FP_EUNSUPPORTED,
                         "%s: weight \"%s\": quantization dtype \"%.32s\" not supported (uint8, uint16, float16)",
                         mpath, t->name, qd->valuestring);
    t->storage = strcmp(qd->valuestring, "uint8") == 0 ? FPI_TFJS_U8 : FPI_TFJS_U16;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(q, "scale");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(q, "min");
    if (!cJSON_IsNumber(s) || !cJSON_IsNumber(m) || !isfinite(s->valuedouble) || !isfinite(m->valuedouble))
        return fpi_error(FP_ECORRUPT, "%s: weight \"%s\": %s quantization needs finite numbers \"scale\" and \"min\"",
                         mpath, t->name, qd->valuestring);
    *scale = s->valuedouble;
    *min = m->valuedouble;
    return FP_OK;
}

/* Joins the manifest's folder and a shard path after checking the path:
 * relative, no "..", at most FPI_TFJS_MAX_PATH bytes. */
static fp_status fpi_tfjs_shard_path(const char *mpath, int g, const cJSON *p, char *out, size_t n)
{
    if (!cJSON_IsString(p) || !p->valuestring[0] || strlen(p->valuestring) >= FPI_TFJS_MAX_PATH)
        return fpi_error(FP_ECORRUPT, "%s: group %d: each shard path must be a string of 1..%d bytes", mpath,
                         g, FPI_TFJS_MAX_PATH - 1);
    const char *s = p->valuestring;
    if (s[0] == '/')
        return fpi_error(FP_ECORRUPT, "%s: group %d: shard path \"%s\" is absolute (must be relative to the manifest)",
                         mpath, g, s);
    for (const char *c = s; *c;) {
        size_t seg = strcspn(c, "/");
        if (seg == 2 && c[0] == '.' && c[1] == '.')
            return fpi_error(FP_ECORRUPT, "%s: group %d: shard path \"%s\" leaves the manifest's folder", mpath, g, s);
        c += seg;
        if (*c) c++;
    }
    const char *slash = strrchr(mpath, '/');
    int dirlen = slash ? (int)(slash - mpath + 1) : 0;
    int w = snprintf(out, n, "%.*s%s", dirlen, mpath, s);
    if (w < 0 || (size_t)w >= n) return fpi_error(FP_ETOOBIG, "%s: shard path too long", mpath);
    return FP_OK;
}

/* Size of a file in bytes, or an FP_EIO naming the shard. */
static fp_status fpi_tfjs_file_size(const char *mpath, const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fpi_error(FP_EIO, "%s: cannot open shard listed in %s: %s", path, mpath, strerror(errno));
    long end = -1;
    if (fseek(f, 0, SEEK_END) == 0) end = ftell(f);
    fclose(f);
    if (end < 0) return fpi_error(FP_EIO, "%s: cannot seek: %s", path, strerror(errno));
    *size = (size_t)end;
    return FP_OK;
}

/* IEEE 754 half → float. */
static float fpi_half_to_float(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : (e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25));
    return (float)((h & 0x8000) ? -v : v);
}

/* Decodes `t->count` stored values (little-endian) from b into t->data. */
static fp_status fpi_tfjs_decode(const char *mpath, fpi_tfjs_tensor *t, const unsigned char *b, double scale,
                                 double min)
{
    for (size_t i = 0; i < t->count; i++) {
        float v;
        uint32_t u;
        switch (t->storage) {
        case FPI_TFJS_U8:
            v = (float)(b[i] * scale + min);
            break;
        case FPI_TFJS_U16:
            v = (float)((b[2 * i] | b[2 * i + 1] << 8) * scale + min);
            break;
        case FPI_TFJS_F16:
            v = fpi_half_to_float((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
            break;
        default:
            u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                (uint32_t)b[4 * i + 3] << 24;
            memcpy(&v, &u, sizeof v);
            break;
        }
        if (!isfinite(v))
            return fpi_error(FP_ECORRUPT, "%s: weight \"%s\": value %zu is not finite", mpath, t->name, i);
        t->data[i] = v;
    }
    return FP_OK;
}

/* Reads group g's shards back to back into buf (exactly grp->bytes). */
static fp_status fpi_tfjs_read_group(const char *mpath, int g, const fpi_tfjs_group *grp, unsigned char *buf)
{
    size_t off = 0;
    char path[4096];
    for (const cJSON *p = grp->paths->child; p; p = p->next) {
        fp_status st = fpi_tfjs_shard_path(mpath, g, p, path, sizeof path);
        if (st) return st;
        FILE *f = fopen(path, "rb");
        if (!f) return fpi_error(FP_EIO, "%s: cannot open shard listed in %s: %s", path, mpath, strerror(errno));
        size_t got = fread(buf + off, 1, grp->bytes - off, f);
        int more = fgetc(f) != EOF && off + got == grp->bytes;
        fclose(f);
        off += got;
        if (more)
            return fpi_error(FP_ECORRUPT, "%s: longer than the weights of %s need (it changed while read?)", path,
                             mpath);
    }
    if (off != grp->bytes)
        return fpi_error(FP_ECORRUPT, "%s: group %d: shards ended after %zu of %zu bytes (changed while read?)",
                         mpath, g, off, grp->bytes);
    return FP_OK;
}

/* fpi_tfjs_load, or with values == 0 fpi_tfjs_load_specs. */
static fp_status fpi_tfjs_read(const char *mpath, int values, fpi_tfjs *out)
{
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    fpi_tfjs m = {0};
    fpi_tfjs_group groups[FPI_TFJS_MAX_GROUPS];
    double *affine = NULL; /* scale, min per tensor */
    unsigned char *buf = NULL;
    fp_status st;

    if (!out || !mpath) return fpi_error(FP_EINVAL, "fpi_tfjs_load: NULL argument");
    memset(out, 0, sizeof *out);
    if ((st = fpi_read_file(mpath, FPI_TFJS_MAX_MANIFEST, &text, &len))) return st;
    if (strlen(text) != len) {
        st = fpi_error(FP_ECORRUPT, "%s: NUL byte in the manifest: not a TF.js weights manifest", mpath);
        goto error;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t pos = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        st = fpi_error(FP_ECORRUPT, "%s:%d: not valid JSON (at byte %zu): not a TF.js weights manifest", mpath,
                       fpi_line_of(text, pos), pos);
        goto error;
    }
    if (!cJSON_IsArray(root) || cJSON_GetArraySize(root) < 1 || cJSON_GetArraySize(root) > FPI_TFJS_MAX_GROUPS) {
        st = fpi_error(FP_ECORRUPT, "%s: a TF.js weights manifest is an array of 1..%d groups", mpath,
                       FPI_TFJS_MAX_GROUPS);
        goto error;
    }

    /* Pass 1: shapes and sizes, before any allocation that depends on them. */
    int n_groups = 0, n_tensors = 0;
    for (const cJSON *g = root->child; g; g = g->next, n_groups++) {
        const cJSON *paths = cJSON_GetObjectItemCaseSensitive(g, "paths");
        const cJSON *weights = cJSON_GetObjectItemCaseSensitive(g, "weights");
        if (!cJSON_IsObject(g) || !cJSON_IsArray(paths) || !cJSON_IsArray(weights)) {
            st = fpi_error(FP_ECORRUPT, "%s: group %d: needs a \"paths\" array and a \"weights\" array", mpath,
                           n_groups);
            goto error;
        }
        int np = cJSON_GetArraySize(paths), nw = cJSON_GetArraySize(weights);
        if (np < 1 || np > FPI_TFJS_MAX_SHARDS) {
            st = fpi_error(FP_ECORRUPT, "%s: group %d: %d shard paths (expected 1..%d)", mpath, n_groups, np,
                           FPI_TFJS_MAX_SHARDS);
            goto error;
        }
        if (nw > FPI_TFJS_MAX_TENSORS - n_tensors) {
            st = fpi_error(FP_ETOOBIG, "%s: more than %d weights", mpath, FPI_TFJS_MAX_TENSORS);
            goto error;
        }
        groups[n_groups] = (fpi_tfjs_group){paths, n_tensors, nw, 0};
        n_tensors += nw;
    }
    if (n_tensors == 0) {
        st = fpi_error(FP_ECORRUPT, "%s: the manifest lists no weights", mpath);
        goto error;
    }
    m.tensors = fpi_calloc((size_t)n_tensors, sizeof *m.tensors);
    affine = fpi_calloc((size_t)n_tensors * 2, sizeof *affine);
    if (!m.tensors || !affine) {
        st = fpi_error(FP_ENOMEM, "%s: out of memory for %d weight specs", mpath, n_tensors);
        goto error;
    }
    m.n = n_tensors;
    size_t total_bytes = 0, max_group = 0;
    for (int g = 0; g < n_groups; g++) {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(root, g), "weights")->child;
        for (int k = 0; k < groups[g].n; k++, w = w->next) {
            int i = groups[g].first + k;
            fpi_tfjs_tensor *t = &m.tensors[i];
            if ((st = fpi_tfjs_spec(mpath, g, k, w, t, &affine[2 * i], &affine[2 * i + 1]))) goto error;
            for (int j = 0; j < i; j++)
                if (!strcmp(m.tensors[j].name, t->name)) {
                    st = fpi_error(FP_ECORRUPT, "%s: weight \"%s\" is listed twice", mpath, t->name);
                    goto error;
                }
            /* counts are < 2^28 and there are < 2^10 of them: no overflow */
            groups[g].bytes += t->count * fpi_tfjs_width(t->storage);
            m.n_values += t->count;
        }
        total_bytes += groups[g].bytes;
        if (total_bytes > FPI_TFJS_MAX_BYTES) {
            st = fpi_error(FP_ETOOBIG, "%s: the weights need more than %d MiB", mpath, FPI_TFJS_MAX_BYTES >> 20);
            goto error;
        }
        if (groups[g].bytes > max_group) max_group = groups[g].bytes;
        if (!values) continue;

        /* The shards must hold exactly what the specs need. */
        size_t have = 0;
        char path[4096];
        for (const cJSON *p = groups[g].paths->child; p; p = p->next) {
            size_t sz = 0;
            if ((st = fpi_tfjs_shard_path(mpath, g, p, path, sizeof path)) ||
                (st = fpi_tfjs_file_size(mpath, path, &sz)))
                goto error;
            if (sz > FPI_TFJS_MAX_BYTES || (have += sz) > FPI_TFJS_MAX_BYTES) {
                st = fpi_error(FP_ETOOBIG, "%s: shards of group %d hold more than %d MiB", mpath, g,
                               FPI_TFJS_MAX_BYTES >> 20);
                goto error;
            }
        }
        if (have != groups[g].bytes) {
            st = fpi_error(FP_ECORRUPT,
                           "%s: group %d: its %d shard(s) hold %zu bytes but its %d weights need %zu (a shard is truncated or another file, or a shape or dtype is wrong)",
                           mpath, g, cJSON_GetArraySize(groups[g].paths), have, groups[g].n, groups[g].bytes);
            goto error;
        }
    }

    if (!values) goto done;
    /* Pass 2: read and dequantise. */
    m.values = fpi_malloc_aligned((m.n_values ? m.n_values : 1) * sizeof(float));
    buf = fpi_malloc(max_group ? max_group : 1);
    if (!m.values || !buf) {
        st = fpi_error(FP_ENOMEM, "%s: out of memory for %zu weight values", mpath, m.n_values);
        goto error;
    }
    size_t next = 0;
    for (int g = 0; g < n_groups; g++) {
        if ((st = fpi_tfjs_read_group(mpath, g, &groups[g], buf))) goto error;
        size_t off = 0;
        for (int k = 0; k < groups[g].n; k++) {
            int i = groups[g].first + k;
            fpi_tfjs_tensor *t = &m.tensors[i];
            t->data = m.values + next;
            next += t->count;
            if ((st = fpi_tfjs_decode(mpath, t, buf + off, affine[2 * i], affine[2 * i + 1]))) goto error;
            off += t->count * fpi_tfjs_width(t->storage);
        }
    }
done:
    fpi_free(buf);
    fpi_free(affine);
    cJSON_Delete(root);
    fpi_free(text);
    *out = m;
    return FP_OK;
error:
    fpi_free(buf);
    fpi_free(affine);
    cJSON_Delete(root);
    fpi_free(text);
    fpi_tfjs_free(&m);
    return st;
}

fp_status fpi_tfjs_load(const char *mpath, fpi_tfjs *out) { return fpi_tfjs_read(mpath, 1, out); }

fp_status fpi_tfjs_load_specs(const char *mpath, fpi_tfjs *out) { return fpi_tfjs_read(mpath, 0, out); }

void fpi_tfjs_free(fpi_tfjs *m)
{
    if (!m) return;
    fpi_free(m->tensors);
    fpi_free_aligned(m->values);
    memset(m, 0, sizeof *m);
}

fpi_tfjs_tensor *fpi_tfjs_find(const fpi_tfjs *m, const char *name)
{
    for (int i = 0; m && i < m->n; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}
