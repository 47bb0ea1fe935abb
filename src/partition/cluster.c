/* cluster.c — cluster descriptions: the JSON reader with precise errors
 * (docs/cluster-format.md) and the homogeneous cluster built from flags. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "partition/partition_impl.h"

enum { FPI_CLUSTER_MAX_BYTES = 1 << 20 }; /* largest cluster file read */

/* Default codec parameters from FP_CODEC_LIST. */
static void fpi_codec_defaults(fp_codec_params *cp)
{
    int i = 0;
#define FP_CODEC_DEF_(name, str, r, chb, cost) cp[i++] = (fp_codec_params){r, chb, cost};
    FP_CODEC_LIST(FP_CODEC_DEF_)
#undef FP_CODEC_DEF_
}

void fp_cluster_destroy(fp_cluster *c) { fpi_free(c); }

int fp_cluster_find(const fp_cluster *c, const char *name)
{
    if (!c || !name) return -1;
    if (!strcmp(name, "gateway")) return c->n_devices;
    for (int d = 0; d < c->n_devices; d++)
        if (!strcmp(c->devices[d].name, name)) return d;
    return -1;
}

fp_status fp_cluster_uniform(int n, double bandwidth_bps, double latency_s, double speed,
                             uint64_t memory_bytes, int threads, fp_cluster **out)
{
    if (n < 1 || n > FP_PART_MAX_DEVICES)
        return fpi_error(FP_EINVAL, "--devices must be in [1, %d] (got %d)", FP_PART_MAX_DEVICES, n);
    if (!isfinite(bandwidth_bps) || bandwidth_bps < 1e3 || bandwidth_bps > 1e13)
        return fpi_error(FP_EINVAL, "link bandwidth must be in [1 kbit/s, 10 Tbit/s] (got %g bit/s)", bandwidth_bps);
    if (!isfinite(latency_s) || latency_s < 0 || latency_s > 1e3)
        return fpi_error(FP_EINVAL, "link latency must be in [0, 1000] s (got %g)", latency_s);
    if (!isfinite(speed) || speed <= 0 || speed > 1e6)
        return fpi_error(FP_EINVAL, "speed must be in (0, 1e6] (got %g)", speed);
    if (threads < 0 || threads > 256) return fpi_error(FP_EINVAL, "threads must be in [0, 256] (got %d)", threads);
    fp_cluster *c = fpi_calloc(1, sizeof *c);
    if (!c) return fpi_error(FP_ENOMEM, "out of memory");
    c->n_devices = n;
    for (int d = 0; d < n; d++) {
        snprintf(c->devices[d].name, sizeof c->devices[d].name, "dev%d", d);
        snprintf(c->devices[d].node, sizeof c->devices[d].node, "dev%d", d);
        c->devices[d].speed = speed;
        c->devices[d].threads = threads;
        c->devices[d].memory_bytes = memory_bytes;
    }
    for (int a = 0; a <= n; a++)
        for (int b = 0; b <= n; b++) c->links[a][b] = (fp_link){bandwidth_bps, latency_s, FP_CODECS_DEFAULT};
    fpi_codec_defaults(c->codecs);
    c->overhead_bytes = (uint64_t)FP_PART_DEFAULT_OVERHEAD_MB << 20;
    *out = c;
    return FP_OK;
}

/* Device names: [A-Za-z0-9._-]+, not "gateway". */
static fp_status fpi_check_name(const char *name, const char *file, const char *where)
{
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return fpi_error(FP_ECORRUPT, "%s: %s \"%s\" may only contain letters, digits, '.', '_' and '-'",
                             file, where, name);
    if (!strcmp(name, "gateway"))
        return fpi_error(FP_ECORRUPT, "%s: %s \"gateway\" is reserved for the gateway", file, where);
    return FP_OK;
}

/* Reads one link object's fields over *lk (which holds the inherited values). */
static fp_status fpi_parse_link(const cJSON *o, const char *file, const char *where, int inherit, fp_link *lk)
{
    static const char *const keys[] = {"bandwidth", "latency_ms", "codecs", "between", NULL};
    fp_status st = fpi_json_keys(o, keys, file, where);
    if (st) return st;
    const cJSON *bw = cJSON_GetObjectItemCaseSensitive(o, "bandwidth");
    if (!bw && !inherit) return fpi_error(FP_ECORRUPT, "%s: %s: missing \"bandwidth\"", file, where);
    if (cJSON_IsString(bw)) {
        if (fp_rate_parse(bw->valuestring, &lk->bandwidth_bps))
            return fpi_error_context(FP_ECORRUPT, "%s: %s.bandwidth", file, where);
    } else if (cJSON_IsNumber(bw)) {
        if (!isfinite(bw->valuedouble) || bw->valuedouble < 1e3 || bw->valuedouble > 1e13)
            return fpi_error(FP_ECORRUPT, "%s: %s.bandwidth must be in [1e3, 1e13] bit/s (got %g)", file,
                             where, bw->valuedouble);
        lk->bandwidth_bps = bw->valuedouble;
    } else if (bw) {
        return fpi_error(FP_ECORRUPT, "%s: %s.bandwidth must be a rate such as \"20mbit\" or a number of bit/s", file, where);
    }
    double ms = lk->latency_s * 1e3;
    if ((st = fpi_json_number(o, "latency_ms", 0, 0, 1e6, file, where, &ms))) return st;
    lk->latency_s = ms / 1e3;
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(o, "codecs");
    if (cs) {
        if (!cJSON_IsArray(cs) || cJSON_GetArraySize(cs) < 1 || cJSON_GetArraySize(cs) > FP_CODEC_COUNT)
            return fpi_error(FP_ECORRUPT, "%s: %s.codecs must be a list of 1..%d codec names", file, where,
                             FP_CODEC_COUNT);
        uint32_t mask = 0;
        int i = 0;
        for (const cJSON *it = cs->child; it; it = it->next, i++) {
            fp_codec c;
            if (!cJSON_IsString(it) || fp_codec_parse(it->valuestring, &c))
                return fpi_error(FP_ECORRUPT, "%s: %s.codecs[%d]: unknown codec \"%.32s\" (expected none, "
                                 "fp16 or int8, each optionally +lz4 or +zstd)", file, where, i,
                                 cJSON_IsString(it) ? it->valuestring : "(not a string)");
            mask |= FP_CODEC_BIT(c);
        }
        lk->codecs = mask;
    }
    return FP_OK;
}

/* Parses devices[]. */
static fp_status fpi_parse_devices(const cJSON *arr, const char *file, const char *base_dir, fp_cluster *c)
{
    static const char *const keys[] = {"name", "node", "profile", "speed", "threads", "memory_mb", NULL};
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1 || cJSON_GetArraySize(arr) > FP_PART_MAX_DEVICES)
        return fpi_error(FP_ECORRUPT, "%s: \"devices\" must be a list of 1..%d devices", file, FP_PART_MAX_DEVICES);
    int d = 0;
    fp_status st;
    for (const cJSON *o = arr->child; o; o = o->next, d++) {
        char where[32];
        snprintf(where, sizeof where, "devices[%d]", d);
        if (!cJSON_IsObject(o)) return fpi_error(FP_ECORRUPT, "%s: %s must be an object", file, where);
        fp_device *dv = &c->devices[d];
        dv->speed = 1;
        double mb = 0, speed = 1;
        long threads = 0;
        char prof[FP_PART_MAX_PATH] = "";
        if ((st = fpi_json_keys(o, keys, file, where)) ||
            (st = fpi_json_string(o, "name", 1, file, where, dv->name, sizeof dv->name)) ||
            (st = fpi_check_name(dv->name, file, "device name")) ||
            (st = fpi_json_string(o, "node", 0, file, where, dv->node, sizeof dv->node)) ||
            (st = fpi_json_string(o, "profile", 0, file, where, prof, sizeof prof)) ||
            (st = fpi_json_number(o, "speed", 0, 1e-6, 1e6, file, where, &speed)) ||
            (st = fpi_json_int(o, "threads", 0, 1, 256, file, where, &threads)) ||
            (st = fpi_json_number(o, "memory_mb", 0, 1, 1 << 24, file, where, &mb)))
            return st;
        if (!dv->node[0]) memcpy(dv->node, dv->name, sizeof dv->node);
        dv->speed = speed;
        dv->threads = (int)threads;
        dv->memory_bytes = (uint64_t)(mb * 1048576.0);
        if (prof[0]) {
            int rel = prof[0] != '/' && base_dir && base_dir[0];
            int n = rel ? snprintf(dv->profile, sizeof dv->profile, "%s/%s", base_dir, prof)
                        : snprintf(dv->profile, sizeof dv->profile, "%s", prof);
            if (n < 0 || (size_t)n >= sizeof dv->profile)
                return fpi_error(FP_ECORRUPT, "%s: %s.profile: path too long", file, where);
        }
        for (int e = 0; e < d; e++)
            if (!strcmp(c->devices[e].name, dv->name))
                return fpi_error(FP_ECORRUPT, "%s: devices[%d] and devices[%d] are both named \"%s\"", file,
                                 e, d, dv->name);
    }
    c->n_devices = d;
    return FP_OK;
}

/* Parses links{default, pairs} into the link matrix. */
static fp_status fpi_parse_links(const cJSON *links, const char *file, fp_cluster *c)
{
    static const char *const keys[] = {"default", "pairs", NULL};
    int n = c->n_devices;
    fp_status st;
    if (!cJSON_IsObject(links)) return fpi_error(FP_ECORRUPT, "%s: \"links\" must be an object", file);
    if ((st = fpi_json_keys(links, keys, file, "links"))) return st;
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(links, "default");
    fp_link base = {0, 0, FP_CODECS_DEFAULT};
    if (def) {
        if (!cJSON_IsObject(def)) return fpi_error(FP_ECORRUPT, "%s: links.default must be an object", file);
        if (cJSON_GetObjectItemCaseSensitive(def, "between"))
            return fpi_error(FP_ECORRUPT, "%s: links.default: \"between\" belongs in links.pairs", file);
        if ((st = fpi_parse_link(def, file, "links.default", 0, &base))) return st;
    }
    int set[FP_PART_MAX_DEVICES + 1][FP_PART_MAX_DEVICES + 1];
    memset(set, 0, sizeof set);
    for (int a = 0; a <= n; a++)
        for (int b = 0; b <= n; b++) c->links[a][b] = base;
    const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(links, "pairs");
    if (pairs && !cJSON_IsArray(pairs)) return fpi_error(FP_ECORRUPT, "%s: links.pairs must be a list", file);
    int i = 0;
    for (const cJSON *o = pairs ? pairs->child : NULL; o; o = o->next, i++) {
        char where[32];
        snprintf(where, sizeof where, "links.pairs[%d]", i);
        if (!cJSON_IsObject(o)) return fpi_error(FP_ECORRUPT, "%s: %s must be an object", file, where);
        const cJSON *bt = cJSON_GetObjectItemCaseSensitive(o, "between");
        if (!cJSON_IsArray(bt) || cJSON_GetArraySize(bt) != 2 || !cJSON_IsString(bt->child) ||
            !cJSON_IsString(bt->child->next))
            return fpi_error(FP_ECORRUPT, "%s: %s.between must be a list of two device names", file, where);
        int ab[2];
        for (int k = 0; k < 2; k++) {
            const char *nm = k ? bt->child->next->valuestring : bt->child->valuestring;
            ab[k] = fp_cluster_find(c, nm);
            if (ab[k] < 0)
                return fpi_error(FP_ECORRUPT, "%s: %s.between: unknown device \"%.64s\" (not in devices, "
                                 "and not \"gateway\")", file, where, nm);
        }
        if (ab[0] == ab[1])
            return fpi_error(FP_ECORRUPT, "%s: %s.between names \"%s\" twice", file, where, bt->child->valuestring);
        if (set[ab[0]][ab[1]])
            return fpi_error(FP_ECORRUPT, "%s: %s: a link between \"%s\" and \"%s\" is already given", file,
                             where, bt->child->valuestring, bt->child->next->valuestring);
        fp_link lk = base;
        if ((st = fpi_parse_link(o, file, where, def != NULL, &lk))) return st;
        c->links[ab[0]][ab[1]] = c->links[ab[1]][ab[0]] = lk;
        set[ab[0]][ab[1]] = set[ab[1]][ab[0]] = 1;
    }
    if (!def)
        for (int a = 0; a <= n; a++)
            for (int b = a + 1; b <= n; b++)
                if (!set[a][b])
                    return fpi_error(FP_ECORRUPT, "%s: links: no \"default\" link and no pair between \"%s\" and "
                                     "\"%s\"", file, c->devices[a].name, b == n ? "gateway" : c->devices[b].name);
    return FP_OK;
}

/* Parses codecs{name: {ratio, channel_bytes, cost_ns_per_byte}} overrides. */
static fp_status fpi_parse_codecs(const cJSON *o, const char *file, fp_cluster *c)
{
    static const char *const keys[] = {"ratio", "channel_bytes", "cost_ns_per_byte", NULL};
    if (!cJSON_IsObject(o)) return fpi_error(FP_ECORRUPT, "%s: \"codecs\" must be an object", file);
    fp_status st;
    for (const cJSON *it = o->child; it; it = it->next) {
        fp_codec k;
        if (fp_codec_parse(it->string, &k))
            return fpi_error_context(FP_ECORRUPT, "%s: codecs", file);
        char where[48];
        snprintf(where, sizeof where, "codecs.%s", it->string);
        if (!cJSON_IsObject(it)) return fpi_error(FP_ECORRUPT, "%s: %s must be an object", file, where);
        fp_codec_params *cp = &c->codecs[k];
        c->codecs_set |= FP_CODEC_BIT(k);
        if ((st = fpi_json_keys(it, keys, file, where)) ||
            (st = fpi_json_number(it, "ratio", 0, 1e-6, 1, file, where, &cp->ratio)) ||
            (st = fpi_json_number(it, "channel_bytes", 0, 0, 1e6, file, where, &cp->channel_bytes)) ||
            (st = fpi_json_number(it, "cost_ns_per_byte", 0, 0, 1e6, file, where, &cp->cost_ns_per_byte)))
            return st;
    }
    return FP_OK;
}

fp_status fp_cluster_parse(const char *text, const char *name, const char *base_dir, fp_cluster **out)
{
    static const char *const keys[] = {"fogpipe_cluster", "profile", "memory_overhead_mb", "devices",
                                       "links", "codecs", NULL};
    if (!text || !out) return fpi_error(FP_EINVAL, "fp_cluster_parse: NULL argument");
    if (!name) name = "cluster";
    cJSON *root = NULL;
    fp_cluster *c = NULL;
    fp_status st = fpi_json_parse(text, name, &root);
    if (st) return st;
    c = fpi_calloc(1, sizeof *c);
    if (!c) {
        st = fpi_error(FP_ENOMEM, "out of memory");
        goto error;
    }
    fpi_codec_defaults(c->codecs);
    long version = 0;
    double ovh = FP_PART_DEFAULT_OVERHEAD_MB;
    char prof[FP_PART_MAX_PATH] = "";
    if ((st = fpi_json_keys(root, keys, name, "top level")) ||
        (st = fpi_json_int(root, "fogpipe_cluster", 1, 0, 1000000, name, "top level", &version)))
        goto error;
    if (version != FP_CLUSTER_VERSION) {
        st = fpi_error(FP_EUNSUPPORTED, "%s: cluster format version %ld (this build reads version %d)", name,
                       version, FP_CLUSTER_VERSION);
        goto error;
    }
    if ((st = fpi_json_string(root, "profile", 0, name, "top level", prof, sizeof prof)) ||
        (st = fpi_json_number(root, "memory_overhead_mb", 0, 0, 1 << 20, name, "top level", &ovh)))
        goto error;
    c->overhead_bytes = (uint64_t)(ovh * 1048576.0);
    if (prof[0]) {
        int rel = prof[0] != '/' && base_dir && base_dir[0];
        int n = rel ? snprintf(c->profile, sizeof c->profile, "%s/%s", base_dir, prof)
                    : snprintf(c->profile, sizeof c->profile, "%s", prof);
        if (n < 0 || (size_t)n >= sizeof c->profile) {
            st = fpi_error(FP_ECORRUPT, "%s: profile: path too long", name);
            goto error;
        }
    }
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(root, "devices");
    const cJSON *links = cJSON_GetObjectItemCaseSensitive(root, "links");
    const cJSON *codecs = cJSON_GetObjectItemCaseSensitive(root, "codecs");
    if (!devs) {
        st = fpi_error(FP_ECORRUPT, "%s: missing \"devices\"", name);
        goto error;
    }
    if (!links) {
        st = fpi_error(FP_ECORRUPT, "%s: missing \"links\"", name);
        goto error;
    }
    if ((st = fpi_parse_devices(devs, name, base_dir, c)) || (st = fpi_parse_links(links, name, c)) ||
        (codecs && (st = fpi_parse_codecs(codecs, name, c))))
        goto error;
    cJSON_Delete(root);
    *out = c;
    return FP_OK;
error:
    cJSON_Delete(root);
    fp_cluster_destroy(c);
    return st;
}

fp_status fp_cluster_load(const char *path, fp_cluster **out)
{
    char *text = NULL, dir[FP_PART_MAX_PATH];
    size_t len;
    fp_status st = fpi_read_file(path, FPI_CLUSTER_MAX_BYTES, &text, &len);
    if (st) return st;
    if (strlen(text) != len) {
        fpi_free(text);
        return fpi_error(FP_ECORRUPT, "%s: contains a NUL byte", path);
    }
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= sizeof dir) n = sizeof dir - 1;
    memcpy(dir, path, n);
    dir[n] = '\0';
    st = fp_cluster_parse(text, path, slash ? (n ? dir : "/") : NULL, out);
    fpi_free(text);
    return st;
}
