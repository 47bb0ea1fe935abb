/* profile.c — per-layer time profiles: measuring them on this machine,
 * deriving other device kinds by a speed factor, and their JSON files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "fogpipe/fmap.h"
#include "partition/partition_impl.h"

enum { FPI_PROFILE_MAX_BYTES = 4 << 20 }; /* largest profile file read */
enum { FPI_CODEC_ROUNDS = 2 };             /* timed encode + decode rounds per tensor (the fastest counts) */

void fp_profile_destroy(fp_profile *p)
{
    if (!p) return;
    for (int c = 0; c < FP_CODEC_COUNT; c++) fpi_free(p->codecs[c].bytes);
    fpi_free(p->layer_s);
    fpi_free(p);
}

/* A zeroed profile of n layers. */
static fp_status fpi_profile_new(int n, fp_profile **out)
{
    if (n < 1 || n > FP_MAX_LAYERS)
        return fpi_error(FP_EINVAL, "profile: layer count must be in [1, %d] (got %d)", FP_MAX_LAYERS, n);
    fp_profile *p = fpi_calloc(1, sizeof *p);
    if (p) p->layer_s = fpi_calloc((size_t)n, sizeof *p->layer_s);
    if (!p || !p->layer_s) {
        fp_profile_destroy(p);
        return fpi_error(FP_ENOMEM, "out of memory for a profile");
    }
    p->n_layers = n;
    p->speed = 1;
    p->layer_scale = 1;
    *out = p;
    return FP_OK;
}

/* The deterministic input of the timed passes (values do not change times). */
static void fpi_pseudo_random_input(float *in, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++) in[i] = (float)((i * 2654435761u) % 1000) / 1000.f;
}

static int fpi_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

fp_status fp_profile_measure(fp_net *net, int iters, int warmup, fp_profile **out)
{
    if (!net || !out) return fpi_error(FP_EINVAL, "fp_profile_measure: NULL argument");
    if (iters < 1 || iters > 1000 || warmup < 0 || warmup > 100)
        return fpi_error(FP_EINVAL, "profile: iterations must be in [1, 1000] and warm-up in [0, 100] (got %d, %d)",
                         iters, warmup);
    float *in = fp_net_input(net);
    if (!in) return fpi_error(FP_ESTATE, "profile: the network is not set up");
    int n = fp_net_layer_count(net);
    fp_profile *p = NULL;
    fp_status st = fpi_profile_new(n, &p);
    if (st) return st;
    double *t = fpi_malloc((size_t)n * (size_t)iters * sizeof *t);
    if (!t) {
        st = fpi_error(FP_ENOMEM, "out of memory for %d x %d timings", n, iters);
        goto error;
    }
    fpi_pseudo_random_input(in, fp_shape_count(fp_net_input_shape(net)));
    for (int w = 0; w < warmup; w++)
        if ((st = fp_net_run(net, 0, n - 1, NULL, NULL))) goto error;
    /* A stage runs its layers uninterrupted: max pools fused into the
     * convolution before them, tensors handed on in the kernels' own
     * layouts; stopping after every layer to time it would turn that off
     * (and spread what it saves over every layer). So each prefix, layers
     * 0..k, is timed uninterrupted, the prefixes interleaved within a round
     * so that the machine's slow moments fall on all of them alike. A
     * prefix that stops between a convolution and the max pool fused into
     * it pays for writing the whole unpooled map, which the prefix one
     * layer longer does not; so the time up to layer k is the least median
     * of the prefixes that reach it (non-decreasing in k), layer k's time
     * its growth at k, and a stage's, the sum over its layers, the
     * difference of two such medians. */
    for (int it = 0; it < iters; it++)
        for (int k = 0; k < n; k++) {
            double t0 = fpi_now();
            if ((st = fp_net_run(net, 0, k, NULL, NULL))) goto error;
            t[(size_t)k * (size_t)iters + (size_t)it] = fpi_now() - t0;
        }
    for (int k = 0; k < n; k++) {
        double *row = t + (size_t)k * (size_t)iters;
        qsort(row, (size_t)iters, sizeof *row, fpi_cmp_double);
        p->layer_s[k] = row[iters / 2]; /* for now the prefix's median */
    }
    for (int k = n - 2; k >= 0; k--)
        if (p->layer_s[k + 1] < p->layer_s[k]) p->layer_s[k] = p->layer_s[k + 1];
    double upto = 0;
    for (int k = 0; k < n; k++) {
        double at = p->layer_s[k];
        p->layer_s[k] = at - upto;
        upto = at;
    }
    p->total_s = upto; /* the whole pass's median */
    p->layer_scale = 1;
    p->iters = iters;
    p->warmup = warmup;
    fpi_free(t);
    *out = p;
    return FP_OK;
error:
    fpi_free(t);
    fp_profile_destroy(p);
    return st;
}

fp_status fp_codec_fmap(fp_codec c, fp_fmap_codec *out)
{
    fp_status st = fp_fmap_codec_parse(fp_codec_name(c), out);
    /* One scale per tensor loses too much where channels' ranges differ
     * (measured: the face detector's scores move by up to 0.12); one per
     * channel keeps them within 0.02 for c x 4 more bytes. */
    if (!st && out->dtype == FP_DTYPE_I8) out->dtype = FP_DTYPE_I8C;
    return st;
}

/* State of the codec measuring callback. */
typedef struct {
    fp_profile *p;          /* receives the bytes */
    fp_fmap_codec fc[FP_CODEC_COUNT];
    double raw;             /* Σ raw bytes measured (per codec: the same tensors) */
    double enc[FP_CODEC_COUNT]; /* Σ encoded bytes */
    double ns[FP_CODEC_COUNT];  /* Σ encode + decode nanoseconds */
    double ens[FP_CODEC_COUNT]; /* Σ encode nanoseconds (of the same rounds) */
    fp_buffer buf, scratch; /* encoder output, decoder scratch */
    float *back;            /* decoded floats (the largest tensor) */
    size_t back_n;          /* its capacity in floats */
    fp_status st;           /* first error */
} fpi_codec_meter;

/* Encodes and decodes tensor `t` (-1 = input, else a layer) with every codec. */
static fp_status fpi_meter_tensor(fpi_codec_meter *m, int t, const float *x, fp_shape shape)
{
    size_t n = fp_shape_count(shape);
    if (n == 0) return FP_OK;
    if (n > m->back_n) {
        float *b = fpi_malloc(n * sizeof *b);
        if (!b) return fpi_error(FP_ENOMEM, "out of memory measuring codecs");
        fpi_free(m->back);
        m->back = b;
        m->back_n = n;
    }
    uint32_t dims[3] = {(uint32_t)(shape.c > 0 ? shape.c : 1), (uint32_t)(shape.h > 0 ? shape.h : 1),
                        (uint32_t)(shape.w > 0 ? shape.w : 1)};
    for (int c = 0; c < FP_CODEC_COUNT; c++) {
        fp_frame_tensor ft;
        double dt = INFINITY, de = 0;
        /* One untimed round (buffers grown, pages touched), then the faster of two. */
        for (int r = 0; r < 1 + FPI_CODEC_ROUNDS; r++) {
            double t0 = fpi_now();
            fp_status st = fp_fmap_encode(m->fc[c], t, x, dims, 3, &m->buf, &ft);
            double t1 = fpi_now();
            if (!st) st = fp_fmap_decode(&ft, m->back, n, &m->scratch);
            double d = fpi_now() - t0;
            if (st) return fpi_error_context(st, "profile: codec %s on tensor %d", fp_codec_name((fp_codec)c), t);
            if (r > 0 && d < dt) dt = d, de = t1 - t0;
        }
        m->p->codecs[c].bytes[t + 1] = (uint64_t)ft.len;
        m->enc[c] += (double)ft.len;
        m->ns[c] += dt * 1e9;
        m->ens[c] += de * 1e9;
    }
    m->raw += (double)n * sizeof(float);
    return FP_OK;
}

static int fpi_meter_layer(void *user, int layer, const float *out, fp_shape shape)
{
    fpi_codec_meter *m = user;
    m->st = fpi_meter_tensor(m, layer, out, shape);
    return m->st ? 1 : 0;
}

fp_status fp_profile_measure_codecs(fp_net *net, const float *input, const char *what, fp_profile *p)
{
    if (!net || !p || !what) return fpi_error(FP_EINVAL, "fp_profile_measure_codecs: NULL argument");
    float *in = fp_net_input(net);
    if (!in) return fpi_error(FP_ESTATE, "profile: the network is not set up");
    int n = fp_net_layer_count(net);
    if (n != p->n_layers)
        return fpi_error(FP_EINVAL, "profile: %d layers, but the network has %d", p->n_layers, n);
    fp_shape ish = fp_net_input_shape(net);
    size_t cnt = fp_shape_count(ish);
    if (input) memcpy(in, input, cnt * sizeof *in);
    else fpi_pseudo_random_input(in, cnt);
    fpi_codec_meter m;
    memset(&m, 0, sizeof m);
    m.p = p;
    fp_status st = FP_OK;
    for (int c = 0; c < FP_CODEC_COUNT; c++) {
        fpi_free(p->codecs[c].bytes);
        memset(&p->codecs[c], 0, sizeof p->codecs[c]);
    }
    p->codec_input[0] = '\0';
    for (int c = 0; c < FP_CODEC_COUNT && !st; c++) {
        st = fp_codec_fmap((fp_codec)c, &m.fc[c]);
        if (!st && !(p->codecs[c].bytes = fpi_calloc((size_t)n + 1, sizeof *p->codecs[c].bytes)))
            st = fpi_error(FP_ENOMEM, "out of memory measuring codecs");
    }
    if (!st) st = fpi_meter_tensor(&m, -1, in, ish);
    if (!st) {
        st = fp_net_run(net, 0, n - 1, fpi_meter_layer, &m);
        if (m.st) st = m.st;
    }
    if (!st && !(m.raw > 0)) st = fpi_error(FP_EINVAL, "profile: the network has no tensor to measure codecs on");
    if (!st) {
        for (int c = 0; c < FP_CODEC_COUNT; c++) {
            p->codecs[c].measured = 1;
            p->codecs[c].ratio = m.enc[c] / m.raw;
            p->codecs[c].cost_ns_per_byte = m.ns[c] / m.raw;
            p->codecs[c].encode_ns_per_byte = m.ens[c] / m.raw;
        }
        snprintf(p->codec_input, sizeof p->codec_input, "%s", what);
    } else {
        for (int c = 0; c < FP_CODEC_COUNT; c++) {
            fpi_free(p->codecs[c].bytes);
            memset(&p->codecs[c], 0, sizeof p->codecs[c]);
        }
    }
    fp_buffer_free(&m.buf);
    fp_buffer_free(&m.scratch);
    fpi_free(m.back);
    return st;
}

fp_status fp_profile_derive(const fp_profile *p, double speed, const char *device, fp_profile **out)
{
    if (!p || !out) return fpi_error(FP_EINVAL, "fp_profile_derive: NULL argument");
    if (!isfinite(speed) || speed <= 0 || speed > 1e6)
        return fpi_error(FP_EINVAL, "profile: speed must be in (0, 1e6] (got %g)", speed);
    fp_profile *q = NULL;
    fp_status st = fpi_profile_new(p->n_layers, &q);
    if (st) return st;
    double *t = q->layer_s;
    *q = *p;
    q->layer_s = t;
    /* Encoded bytes are the model's; codec CPU time scales like the layers'. */
    for (int c = 0; c < FP_CODEC_COUNT; c++) q->codecs[c].bytes = NULL;
    for (int c = 0; c < FP_CODEC_COUNT; c++) {
        if (!p->codecs[c].measured) continue;
        q->codecs[c].bytes = fpi_malloc(((size_t)p->n_layers + 1) * sizeof *q->codecs[c].bytes);
        if (!q->codecs[c].bytes) {
            fp_profile_destroy(q);
            return fpi_error(FP_ENOMEM, "out of memory for a profile");
        }
        memcpy(q->codecs[c].bytes, p->codecs[c].bytes, ((size_t)p->n_layers + 1) * sizeof *q->codecs[c].bytes);
        q->codecs[c].cost_ns_per_byte = p->codecs[c].cost_ns_per_byte / speed;
        q->codecs[c].encode_ns_per_byte = p->codecs[c].encode_ns_per_byte / speed;
    }
    for (int l = 0; l < p->n_layers; l++) t[l] = p->layer_s[l] / speed;
    q->total_s = p->total_s / speed;
    q->prepare_s = p->prepare_s / speed;
    q->finish_s = p->finish_s / speed;
    q->wire_ns_per_byte = p->wire_ns_per_byte / speed;
    q->wire_ns_per_packet = p->wire_ns_per_packet / speed;
    q->wire_send_ns_per_byte = p->wire_send_ns_per_byte / speed;
    q->wire_recv_ns_per_byte = p->wire_recv_ns_per_byte / speed;
    q->speed = p->speed * speed;
    if (device) snprintf(q->device, sizeof q->device, "%s", device);
    *out = q;
    return FP_OK;
}

/* Adds a string field unless it is empty (readers refuse empty strings). */
static void fpi_add_string(cJSON *o, const char *key, const char *v)
{
    if (v && v[0]) cJSON_AddStringToObject(o, key, v);
}

fp_status fp_profile_to_json(const fp_profile *p, char **text)
{
    if (!p || !text) return fpi_error(FP_EINVAL, "fp_profile_to_json: NULL argument");
    cJSON *root = cJSON_CreateObject();
    if (!root) return fpi_error(FP_ENOMEM, "out of memory");
    cJSON_AddNumberToObject(root, "fogpipe_profile", FP_PROFILE_VERSION);
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    fpi_add_string(m, "cfg", p->cfg);
    fpi_add_string(m, "cfg_hash", p->cfg_hash);
    cJSON_AddNumberToObject(m, "layers", p->n_layers);
    cJSON *mc = cJSON_AddObjectToObject(root, "machine");
    fpi_add_string(mc, "cpu", p->cpu);
    fpi_add_string(mc, "host", p->host);
    cJSON_AddNumberToObject(mc, "cores", p->cores);
    cJSON_AddNumberToObject(mc, "threads", p->threads);
    fpi_add_string(root, "device", p->device);
    cJSON_AddNumberToObject(root, "speed", p->speed);
    cJSON_AddNumberToObject(root, "iters", p->iters);
    cJSON_AddNumberToObject(root, "warmup", p->warmup);
    cJSON_AddNumberToObject(root, "total_ms", round(p->total_s * 1e7) / 1e4);
    cJSON_AddNumberToObject(root, "layer_scale", round(p->layer_scale * 1e4) / 1e4);
    if (p->prepare_s > 0) cJSON_AddNumberToObject(root, "prepare_ms", round(p->prepare_s * 1e7) / 1e4);
    if (p->finish_s > 0) cJSON_AddNumberToObject(root, "finish_ms", round(p->finish_s * 1e7) / 1e4);
    if (p->result_bytes > 0) cJSON_AddNumberToObject(root, "result_bytes", p->result_bytes);
    if (p->wire_ns_per_byte > 0)
        cJSON_AddNumberToObject(root, "wire_ns_per_byte", round(p->wire_ns_per_byte * 1e4) / 1e4);
    if (p->wire_ns_per_packet > 0)
        cJSON_AddNumberToObject(root, "wire_ns_per_packet", round(p->wire_ns_per_packet));
    if (p->wire_send_ns_per_byte > 0)
        cJSON_AddNumberToObject(root, "wire_send_ns_per_byte", round(p->wire_send_ns_per_byte * 1e4) / 1e4);
    if (p->wire_recv_ns_per_byte > 0)
        cJSON_AddNumberToObject(root, "wire_recv_ns_per_byte", round(p->wire_recv_ns_per_byte * 1e4) / 1e4);
    cJSON *ls = cJSON_AddArrayToObject(root, "layers_ms");
    for (int l = 0; ls && l < p->n_layers; l++) cJSON_AddItemToArray(ls, cJSON_CreateNumber(round(p->layer_s[l] * 1e7) / 1e4));
    cJSON *cs = NULL;
    for (int c = 0; c < FP_CODEC_COUNT; c++) {
        const fp_profile_codec *pc = &p->codecs[c];
        if (!pc->measured || !pc->bytes) continue;
        if (!cs) {
            fpi_add_string(root, "codec_input", p->codec_input[0] ? p->codec_input : "unknown");
            cs = cJSON_AddObjectToObject(root, "codecs");
        }
        cJSON *o = cJSON_AddObjectToObject(cs, fp_codec_name((fp_codec)c));
        cJSON_AddNumberToObject(o, "ratio", round(pc->ratio * 1e6) / 1e6);
        cJSON_AddNumberToObject(o, "cost_ns_per_byte", round(pc->cost_ns_per_byte * 1e4) / 1e4);
        cJSON_AddNumberToObject(o, "encode_ns_per_byte", round(pc->encode_ns_per_byte * 1e4) / 1e4);
        cJSON *b = cJSON_AddArrayToObject(o, "bytes");
        for (int t = 0; b && t <= p->n_layers; t++) cJSON_AddItemToArray(b, cJSON_CreateNumber((double)pc->bytes[t]));
    }
    fp_status st = fpi_json_print(root, text);
    cJSON_Delete(root);
    return st;
}

fp_status fp_profile_save(const fp_profile *p, const char *path)
{
    char *text;
    fp_status st = fp_profile_to_json(p, &text);
    if (st) return st;
    st = fpi_write_text(path, text);
    free(text);
    return st;
}

/* Parses the optional "codecs" object: {name: {ratio, cost_ns_per_byte,
 * encode_ns_per_byte (optional), bytes[n_layers + 1]}}. */
static fp_status fpi_parse_profile_codecs(const cJSON *cs, const char *name, fp_profile *p)
{
    static const char *const keys[] = {"ratio", "cost_ns_per_byte", "encode_ns_per_byte", "bytes", NULL};
    if (!cJSON_IsObject(cs)) return fpi_error(FP_ECORRUPT, "%s: \"codecs\" must be an object", name);
    fp_status st;
    for (const cJSON *it = cs->child; it; it = it->next) {
        fp_codec k;
        if (fp_codec_parse(it->string, &k)) return fpi_error_context(FP_ECORRUPT, "%s: codecs", name);
        char where[48];
        snprintf(where, sizeof where, "codecs.%s", it->string);
        if (!cJSON_IsObject(it)) return fpi_error(FP_ECORRUPT, "%s: %s must be an object", name, where);
        fp_profile_codec *pc = &p->codecs[k];
        if (pc->measured) return fpi_error(FP_ECORRUPT, "%s: %s is given twice", name, where);
        if ((st = fpi_json_keys(it, keys, name, where)) ||
            (st = fpi_json_number(it, "ratio", 1, 0, 100, name, where, &pc->ratio)) ||
            (st = fpi_json_number(it, "cost_ns_per_byte", 1, 0, 1e6, name, where, &pc->cost_ns_per_byte)))
            return st;
        pc->encode_ns_per_byte = pc->cost_ns_per_byte / 2; /* older profiles did not split it */
        if ((st = fpi_json_number(it, "encode_ns_per_byte", 0, 0, pc->cost_ns_per_byte, name, where,
                                  &pc->encode_ns_per_byte)))
            return st;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(it, "bytes");
        if (!cJSON_IsArray(b) || cJSON_GetArraySize(b) != p->n_layers + 1)
            return fpi_error(FP_ECORRUPT, "%s: %s.bytes must be a list of %d numbers (the input, then every layer)",
                             name, where, p->n_layers + 1);
        if (!(pc->bytes = fpi_calloc((size_t)p->n_layers + 1, sizeof *pc->bytes)))
            return fpi_error(FP_ENOMEM, "out of memory for a profile");
        int t = 0;
        for (const cJSON *v = b->child; v; v = v->next, t++) {
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 1e15 ||
                v->valuedouble != floor(v->valuedouble))
                return fpi_error(FP_ECORRUPT, "%s: %s.bytes[%d] must be a whole number of bytes in [0, 1e15]", name,
                                 where, t);
            pc->bytes[t] = (uint64_t)v->valuedouble;
        }
        pc->measured = 1;
    }
    return FP_OK;
}

fp_status fp_profile_parse(const char *text, const char *name, fp_profile **out)
{
    static const char *const keys[] = {"fogpipe_profile", "model", "machine", "device", "speed", "iters",
                                       "warmup", "total_ms", "layer_scale", "prepare_ms", "finish_ms", "result_bytes", "wire_ns_per_byte", "wire_ns_per_packet",
                                       "wire_send_ns_per_byte", "wire_recv_ns_per_byte", "layers_ms",
                                       "codec_input", "codecs", NULL};
    static const char *const mkeys[] = {"cfg", "cfg_hash", "layers", NULL};
    static const char *const ckeys[] = {"cpu", "host", "cores", "threads", NULL};
    if (!text || !out) return fpi_error(FP_EINVAL, "fp_profile_parse: NULL argument");
    if (!name) name = "profile";
    cJSON *root;
    fp_profile *p = NULL;
    fp_status st = fpi_json_parse(text, name, &root);
    if (st) return st;
    long version = 0, layers = 0, cores = 0, threads = 0, iters = 0, warmup = 0;
    double speed = 1, total = 0, prepare = 0, finish = 0;
    if ((st = fpi_json_keys(root, keys, name, "top level")) ||
        (st = fpi_json_int(root, "fogpipe_profile", 1, 0, 1000000, name, "top level", &version)))
        goto error;
    if (version != FP_PROFILE_VERSION) {
        st = fpi_error(FP_EUNSUPPORTED, "%s: profile version %ld (this build reads version %d)", name, version,
                       FP_PROFILE_VERSION);
        goto error;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(root, "machine");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(root, "layers_ms");
    if (!cJSON_IsObject(m)) {
        st = fpi_error(FP_ECORRUPT, "%s: missing \"model\" object", name);
        goto error;
    }
    if ((st = fpi_json_keys(m, mkeys, name, "model")) ||
        (st = fpi_json_int(m, "layers", 1, 1, FP_MAX_LAYERS, name, "model", &layers)) ||
        (st = fpi_profile_new((int)layers, &p)) ||
        (st = fpi_json_string(m, "cfg", 0, name, "model", p->cfg, sizeof p->cfg)) ||
        (st = fpi_json_string(m, "cfg_hash", 0, name, "model", p->cfg_hash, sizeof p->cfg_hash)))
        goto error;
    if (mc && !cJSON_IsObject(mc)) {
        st = fpi_error(FP_ECORRUPT, "%s: \"machine\" must be an object", name);
        goto error;
    }
    if (mc && ((st = fpi_json_keys(mc, ckeys, name, "machine")) ||
               (st = fpi_json_string(mc, "cpu", 0, name, "machine", p->cpu, sizeof p->cpu)) ||
               (st = fpi_json_string(mc, "host", 0, name, "machine", p->host, sizeof p->host)) ||
               (st = fpi_json_int(mc, "cores", 0, 0, 1 << 20, name, "machine", &cores)) ||
               (st = fpi_json_int(mc, "threads", 0, 0, 256, name, "machine", &threads))))
        goto error;
    if ((st = fpi_json_string(root, "device", 0, name, "top level", p->device, sizeof p->device)) ||
        (st = fpi_json_number(root, "speed", 0, 1e-6, 1e6, name, "top level", &speed)) ||
        (st = fpi_json_int(root, "iters", 0, 0, 1000, name, "top level", &iters)) ||
        (st = fpi_json_int(root, "warmup", 0, 0, 100, name, "top level", &warmup)) ||
        (st = fpi_json_number(root, "total_ms", 0, 0, 1e9, name, "top level", &total)) ||
        (st = fpi_json_number(root, "layer_scale", 0, 1e-3, 1e3, name, "top level", &p->layer_scale)) ||
        (st = fpi_json_number(root, "prepare_ms", 0, 0, 1e9, name, "top level", &prepare)) ||
        (st = fpi_json_number(root, "finish_ms", 0, 0, 1e9, name, "top level", &finish)) ||
        (st = fpi_json_number(root, "wire_ns_per_byte", 0, 0, 1e6, name, "top level", &p->wire_ns_per_byte)) ||
        (st = fpi_json_number(root, "wire_ns_per_packet", 0, 0, 1e9, name, "top level", &p->wire_ns_per_packet)) ||
        (st = fpi_json_number(root, "wire_send_ns_per_byte", 0, 0, 1e6, name, "top level", &p->wire_send_ns_per_byte)) ||
        (st = fpi_json_number(root, "wire_recv_ns_per_byte", 0, 0, 1e6, name, "top level", &p->wire_recv_ns_per_byte)) ||
        (st = fpi_json_number(root, "result_bytes", 0, 0, 1e9, name, "top level", &p->result_bytes)))
        goto error;
    p->prepare_s = prepare / 1e3;
    p->finish_s = finish / 1e3;
    if (!cJSON_IsArray(ls) || cJSON_GetArraySize(ls) != layers) {
        st = fpi_error(FP_ECORRUPT, "%s: \"layers_ms\" must be a list of %ld numbers (model.layers)", name, layers);
        goto error;
    }
    int l = 0;
    for (const cJSON *it = ls->child; it; it = it->next, l++) {
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < 0 || it->valuedouble > 1e9) {
            st = fpi_error(FP_ECORRUPT, "%s: layers_ms[%d] must be a number of milliseconds in [0, 1e9]", name, l);
            goto error;
        }
        p->layer_s[l] = it->valuedouble / 1e3;
    }
    /* Codec measurements are optional: profiles written before them have none. */
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(root, "codecs");
    if ((st = fpi_json_string(root, "codec_input", 0, name, "top level", p->codec_input, sizeof p->codec_input)) ||
        (cs && (st = fpi_parse_profile_codecs(cs, name, p))))
        goto error;
    if (cs && !p->codec_input[0]) {
        st = fpi_error(FP_ECORRUPT, "%s: \"codecs\" needs \"codec_input\" (what they were measured on)", name);
        goto error;
    }
    p->cores = (int)cores;
    p->threads = (int)threads;
    p->iters = (int)iters;
    p->warmup = (int)warmup;
    p->speed = speed;
    p->total_s = total / 1e3;
    cJSON_Delete(root);
    *out = p;
    return FP_OK;
error:
    cJSON_Delete(root);
    fp_profile_destroy(p);
    return st;
}

fp_status fp_profile_load(const char *path, fp_profile **out)
{
    char *text = NULL;
    size_t len;
    fp_status st = fpi_read_file(path, FPI_PROFILE_MAX_BYTES, &text, &len);
    if (st) return st;
    st = strlen(text) != len ? fpi_error(FP_ECORRUPT, "%s: contains a NUL byte", path)
                             : fp_profile_parse(text, path, out);
    fpi_free(text);
    return st;
}

fp_status fp_profile_check(const fp_profile *p, const char *name, int n_layers, const char *cfg_hash)
{
    if (!p) return fpi_error(FP_EINVAL, "fp_profile_check: NULL profile");
    if (!name) name = "profile";
    if (p->n_layers != n_layers)
        return fpi_error(FP_EINVAL, "%s: the profile has %d layers but the model has %d (profile of %s)", name,
                         p->n_layers, n_layers, p->cfg[0] ? p->cfg : "an unknown model");
    if (cfg_hash && cfg_hash[0] && p->cfg_hash[0] && strcmp(cfg_hash, p->cfg_hash))
        return fpi_error(FP_EINVAL, "%s: the profile is for %s (%s), not for this model (%s)", name,
                         p->cfg[0] ? p->cfg : "another cfg", p->cfg_hash, cfg_hash);
    return FP_OK;
}
