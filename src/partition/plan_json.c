/* plan_json.c — plan files (docs/plan-format.md): the writer and the
 * validating reader the stage workers will use. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "partition/partition_impl.h"

enum { FPI_PLAN_MAX_BYTES = 1 << 20 }; /* largest plan file read */

/* Milliseconds, rounded to 1 µs so files stay readable. */
static double fpi_ms(double s) { return isfinite(s) ? round(s * 1e6) / 1e3 : -1; }

fp_status fp_plan_to_json(const fp_plan *plan, char **text)
{
    if (!plan || !text) return fpi_error(FP_EINVAL, "fp_plan_to_json: NULL argument");
    cJSON *root = cJSON_CreateObject();
    if (!root) return fpi_error(FP_ENOMEM, "out of memory");
    cJSON_AddNumberToObject(root, "fogpipe_plan", FP_PLAN_VERSION);
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "cfg", plan->cfg);
    if (plan->cfg_hash[0]) cJSON_AddStringToObject(m, "cfg_hash", plan->cfg_hash);
    if (plan->weights[0]) {
        cJSON_AddStringToObject(m, "weights", plan->weights);
        if (plan->weights_hash[0]) cJSON_AddStringToObject(m, "weights_hash", plan->weights_hash);
    } else {
        cJSON_AddNullToObject(m, "weights");
        cJSON_AddNullToObject(m, "weights_hash");
    }
    cJSON_AddNumberToObject(m, "layers", plan->n_layers);
    cJSON *in = cJSON_AddObjectToObject(m, "input");
    cJSON_AddNumberToObject(in, "c", plan->input.c);
    cJSON_AddNumberToObject(in, "h", plan->input.h);
    cJSON_AddNumberToObject(in, "w", plan->input.w);
    cJSON_AddStringToObject(root, "strategy", fp_strategy_name(plan->strategy));
    cJSON_AddStringToObject(root, "objective", fp_objective_name(plan->objective));
    cJSON *inp = cJSON_AddObjectToObject(root, "input");
    cJSON_AddNumberToObject(inp, "bytes", round(plan->input_bytes));
    cJSON_AddNumberToObject(inp, "transfer_ms", fpi_ms(plan->input_s));
    cJSON *stages = cJSON_AddArrayToObject(root, "stages");
    for (int s = 0; stages && s < plan->n_stages; s++) {
        const fp_plan_stage *st = &plan->stages[s];
        const fp_plan_device *pd = &plan->devices[st->devices[0]];
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddItemToArray(stages, o);
        cJSON_AddNumberToObject(o, "index", s);
        cJSON *lr = cJSON_AddArrayToObject(o, "layers");
        cJSON_AddItemToArray(lr, cJSON_CreateNumber(st->first));
        cJSON_AddItemToArray(lr, cJSON_CreateNumber(st->last));
        cJSON_AddStringToObject(o, "device", pd->name);
        cJSON_AddStringToObject(o, "node", pd->node);
        cJSON_AddNumberToObject(o, "replicas", st->n_devices);
        cJSON *dv = cJSON_AddArrayToObject(o, "devices");
        for (int r = 0; dv && r < st->n_devices; r++)
            cJSON_AddItemToArray(dv, cJSON_CreateString(plan->devices[st->devices[r]].name));
        cJSON_AddNumberToObject(o, "threads", pd->threads);
        cJSON_AddNumberToObject(o, "compute_ms", fpi_ms(st->compute_s));
        cJSON_AddNumberToObject(o, "memory_bytes", (double)st->memory_bytes);
        cJSON_AddBoolToObject(o, "fits_memory", st->fits);
        if (st->weights_sha256[0]) cJSON_AddStringToObject(o, "weights_sha256", st->weights_sha256);
        cJSON *out = cJSON_AddObjectToObject(o, "out");
        cJSON_AddStringToObject(out, "to", s + 1 < plan->n_stages ? plan->devices[plan->stages[s + 1].devices[0]].name
                                                                 : "gateway");
        cJSON_AddStringToObject(out, "codec", fp_codec_name(st->out_codec));
        cJSON *tn = cJSON_AddArrayToObject(out, "tensors");
        for (int k = 0; tn && k < st->out.n_tensors; k++)
            cJSON_AddItemToArray(tn, cJSON_CreateNumber(st->out.tensors[k]));
        cJSON_AddNumberToObject(out, "raw_bytes", (double)st->out.raw_bytes);
        cJSON_AddNumberToObject(out, "bytes", round(st->out_bytes));
        cJSON_AddNumberToObject(out, "transfer_ms", fpi_ms(st->out_s));
    }
    cJSON *pr = cJSON_AddObjectToObject(root, "predicted");
    cJSON_AddNumberToObject(pr, "images_per_min", isfinite(plan->images_per_min) ? round(plan->images_per_min * 10) / 10 : -1);
    cJSON_AddNumberToObject(pr, "latency_ms", fpi_ms(plan->latency_s));
    cJSON_AddNumberToObject(pr, "bottleneck_ms", fpi_ms(plan->bottleneck_s));
    if (plan->bottleneck[0]) cJSON_AddStringToObject(pr, "bottleneck", plan->bottleneck);
    cJSON_AddBoolToObject(pr, "fits_memory", plan->feasible);
    fp_status st = fpi_json_print(root, text);
    cJSON_Delete(root);
    return st;
}

fp_status fp_plan_save(const fp_plan *plan, const char *path)
{
    char *text;
    fp_status st = fp_plan_to_json(plan, &text);
    if (st) return st;
    st = fpi_write_text(path, text);
    free(text);
    return st;
}

/* Index of device `name` in the plan's table, adding it (with node and
 * threads) if new. -1 when the table is full. */
static int fpi_plan_device(fp_plan *plan, const char *name, const char *node, int threads)
{
    for (int d = 0; d < plan->n_devices; d++)
        if (!strcmp(plan->devices[d].name, name)) return d;
    if (plan->n_devices == FP_PART_MAX_DEVICES) return -1;
    fp_plan_device *pd = &plan->devices[plan->n_devices];
    snprintf(pd->name, sizeof pd->name, "%s", name);
    snprintf(pd->node, sizeof pd->node, "%s", node && node[0] ? node : name);
    pd->threads = threads;
    return plan->n_devices++;
}

/* Reads a time in ms into seconds (>= 0; -1 written for "infinite"). */
static fp_status fpi_plan_ms(const cJSON *o, const char *key, int required, const char *name,
                             const char *where, double *out_s)
{
    double ms = 0;
    fp_status st = fpi_json_number(o, key, required, -1, 1e12, name, where, &ms);
    if (st) return st;
    *out_s = ms < 0 ? INFINITY : ms / 1e3;
    return FP_OK;
}

/* Parses one stage object into plan->stages[s]. */
static fp_status fpi_plan_stage(const cJSON *o, int s, const char *name, const fp_plan_expect *ex,
                                fp_plan *plan)
{
    static const char *const keys[] = {"index", "layers", "device", "node", "replicas", "devices", "threads",
                                       "compute_ms", "memory_bytes", "fits_memory", "weights_sha256", "out", NULL};
    static const char *const okeys[] = {"to", "codec", "tensors", "raw_bytes", "bytes", "transfer_ms", NULL};
    char where[32], owhere[40];
    snprintf(where, sizeof where, "stages[%d]", s);
    snprintf(owhere, sizeof owhere, "stages[%d].out", s);
    fp_plan_stage *st = &plan->stages[s];
    char dev[FP_PART_MAX_NAME] = "", node[FP_PART_MAX_NAME] = "", codec[32] = "";
    long index = -1, replicas = 1, threads = 0;
    double mem = 0, raw = 0;
    fp_status e;
    if (!cJSON_IsObject(o)) return fpi_error(FP_ECORRUPT, "%s: %s must be an object", name, where);
    if ((e = fpi_json_keys(o, keys, name, where)) ||
        (e = fpi_json_int(o, "index", 0, 0, FP_PART_MAX_DEVICES, name, where, &index)) ||
        (e = fpi_json_string(o, "device", 1, name, where, dev, sizeof dev)) ||
        (e = fpi_json_string(o, "node", 0, name, where, node, sizeof node)) ||
        (e = fpi_json_int(o, "replicas", 0, 1, FP_PART_MAX_DEVICES, name, where, &replicas)) ||
        (e = fpi_json_int(o, "threads", 0, 0, 256, name, where, &threads)) ||
        (e = fpi_plan_ms(o, "compute_ms", 0, name, where, &st->compute_s)) ||
        (e = fpi_json_number(o, "memory_bytes", 0, 0, 1e15, name, where, &mem)))
        return e;
    const cJSON *wh = cJSON_GetObjectItemCaseSensitive(o, "weights_sha256");
    if (wh && !cJSON_IsNull(wh)) {
        const char *v = cJSON_IsString(wh) ? wh->valuestring : "";
        int ok = strlen(v) == 71 && !strncmp(v, "sha256:", 7);
        for (int i = 7; ok && i < 71; i++) ok = (v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f');
        if (!ok)
            return fpi_error(FP_ECORRUPT, "%s: %s.weights_sha256 must be \"sha256:\" and 64 lowercase hex digits, or null",
                             name, where);
        memcpy(st->weights_sha256, v, 72);
    }
    if (index >= 0 && index != s)
        return fpi_error(FP_ECORRUPT, "%s: %s.index is %ld (expected %d)", name, where, index, s);
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(o, "layers");
    if (!cJSON_IsArray(lr) || cJSON_GetArraySize(lr) != 2 || !cJSON_IsNumber(lr->child) ||
        !cJSON_IsNumber(lr->child->next) || lr->child->valuedouble != floor(lr->child->valuedouble) ||
        lr->child->next->valuedouble != floor(lr->child->next->valuedouble) ||
        fabs(lr->child->valuedouble) > FP_MAX_LAYERS || fabs(lr->child->next->valuedouble) > FP_MAX_LAYERS)
        return fpi_error(FP_ECORRUPT, "%s: %s.layers must be [first, last], two layer indices", name, where);
    st->first = (int)lr->child->valuedouble;
    st->last = (int)lr->child->next->valuedouble;
    if (st->first < 0 || st->last < st->first || st->last >= plan->n_layers)
        return fpi_error(FP_ECORRUPT, "%s: %s.layers [%d, %d] is not a range within 0..%d", name, where, st->first,
                         st->last, plan->n_layers - 1);
    const cJSON *fm = cJSON_GetObjectItemCaseSensitive(o, "fits_memory");
    if (fm && !cJSON_IsBool(fm)) return fpi_error(FP_ECORRUPT, "%s: %s.fits_memory must be true or false", name, where);
    st->fits = !fm || cJSON_IsTrue(fm);
    st->memory_bytes = (uint64_t)mem;
    /* Devices: "devices" lists all replicas, the first being "device". */
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(o, "devices");
    const char *names[FP_PART_MAX_DEVICES];
    int nd = 0;
    if (dv) {
        if (!cJSON_IsArray(dv) || cJSON_GetArraySize(dv) < 1 || cJSON_GetArraySize(dv) > FP_PART_MAX_DEVICES)
            return fpi_error(FP_ECORRUPT, "%s: %s.devices must be a list of 1..%d device names", name, where,
                             FP_PART_MAX_DEVICES);
        for (const cJSON *it = dv->child; it; it = it->next) {
            if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) >= FP_PART_MAX_NAME)
                return fpi_error(FP_ECORRUPT, "%s: %s.devices[%d] must be a device name", name, where, nd);
            names[nd++] = it->valuestring;
        }
        if (strcmp(names[0], dev))
            return fpi_error(FP_ECORRUPT, "%s: %s.device is \"%s\" but devices[0] is \"%s\"", name, where, dev, names[0]);
        if (cJSON_GetObjectItemCaseSensitive(o, "replicas") && replicas != nd)
            return fpi_error(FP_ECORRUPT, "%s: %s.replicas is %ld but %d devices are listed", name, where, replicas, nd);
    } else {
        if (replicas != 1)
            return fpi_error(FP_ECORRUPT, "%s: %s.replicas is %ld but no \"devices\" list names them", name, where, replicas);
        names[nd++] = dev;
    }
    st->n_devices = nd;
    for (int r = 0; r < nd; r++) {
        if (!strcmp(names[r], "gateway"))
            return fpi_error(FP_ECORRUPT, "%s: %s: \"gateway\" cannot run a stage", name, where);
        if (ex && ex->cluster && fp_cluster_find(ex->cluster, names[r]) < 0) {
            char list[256];
            size_t k = 0;
            list[0] = '\0';
            for (int d = 0; d < ex->cluster->n_devices && k < sizeof list; d++)
                k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", d ? ", " : "", ex->cluster->devices[d].name);
            return fpi_error(FP_EINVAL, "%s: %s: device \"%s\" is not in the cluster (devices: %s)", name, where,
                             names[r], list);
        }
        int d = fpi_plan_device(plan, names[r], r == 0 ? node : NULL, r == 0 ? (int)threads : 0);
        if (d < 0) return fpi_error(FP_ECORRUPT, "%s: more than %d devices", name, FP_PART_MAX_DEVICES);
        st->devices[r] = d;
    }
    /* The outgoing cut. */
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(o, "out");
    if (!cJSON_IsObject(out)) return fpi_error(FP_ECORRUPT, "%s: %s: missing \"out\" object", name, where);
    if ((e = fpi_json_keys(out, okeys, name, owhere)) ||
        (e = fpi_json_string(out, "codec", 1, name, owhere, codec, sizeof codec)) ||
        (e = fpi_json_number(out, "raw_bytes", 0, 0, 1e15, name, owhere, &raw)) ||
        (e = fpi_json_number(out, "bytes", 0, 0, 1e15, name, owhere, &st->out_bytes)) ||
        (e = fpi_plan_ms(out, "transfer_ms", 0, name, owhere, &st->out_s)))
        return e;
    if (fp_codec_parse(codec, &st->out_codec)) return fpi_error_context(FP_ECORRUPT, "%s: %s.codec", name, owhere);
    st->out.raw_bytes = (uint64_t)raw;
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(out, "tensors");
    if (tn) {
        if (!cJSON_IsArray(tn) || cJSON_GetArraySize(tn) > FP_PART_MAX_CUT_TENSORS)
            return fpi_error(FP_ECORRUPT, "%s: %s.tensors must be a list of at most %d layer indices", name, owhere,
                             FP_PART_MAX_CUT_TENSORS);
        for (const cJSON *it = tn->child; it; it = it->next) {
            int k = st->out.n_tensors;
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < -1 ||
                it->valuedouble > st->last)
                return fpi_error(FP_ECORRUPT, "%s: %s.tensors[%d] must be a layer index in -1..%d (produced "
                                 "at or before the cut)", name, owhere, k, st->last);
            st->out.tensors[st->out.n_tensors++] = (int)it->valuedouble;
        }
    }
    return FP_OK;
}

fp_status fp_plan_parse(const char *text, const char *name, const fp_plan_expect *ex, fp_plan *plan)
{
    static const char *const keys[] = {"fogpipe_plan", "model", "strategy", "objective", "input", "stages",
                                       "predicted", NULL};
    static const char *const mkeys[] = {"cfg", "cfg_hash", "weights", "weights_hash", "layers", "input", NULL};
    static const char *const pkeys[] = {"images_per_min", "latency_ms", "bottleneck_ms", "bottleneck",
                                        "fits_memory", NULL};
    if (!text || !plan) return fpi_error(FP_EINVAL, "fp_plan_parse: NULL argument");
    if (!name) name = "plan";
    memset(plan, 0, sizeof *plan);
    cJSON *root;
    fp_status st = fpi_json_parse(text, name, &root);
    if (st) return st;
    long version = 0, layers = 0, c = 0, h = 0, w = 0;
    char strat[32] = "", obj[32] = "";
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(root, "stages");
    const cJSON *inp = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(root, "predicted");
    if ((st = fpi_json_keys(root, keys, name, "top level")) ||
        (st = fpi_json_int(root, "fogpipe_plan", 1, 0, 1000000, name, "top level", &version)))
        goto done;
    if (version != FP_PLAN_VERSION) {
        st = fpi_error(FP_EUNSUPPORTED, "%s: plan version %ld (this build reads version %d)", name, version,
                       FP_PLAN_VERSION);
        goto done;
    }
    plan->version = (int)version;
    if (!cJSON_IsObject(m)) {
        st = fpi_error(FP_ECORRUPT, "%s: missing \"model\" object", name);
        goto done;
    }
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(m, "input");
    if ((st = fpi_json_keys(m, mkeys, name, "model")) ||
        (st = fpi_json_string(m, "cfg", 1, name, "model", plan->cfg, sizeof plan->cfg)) ||
        (st = fpi_json_string(m, "cfg_hash", 0, name, "model", plan->cfg_hash, sizeof plan->cfg_hash)) ||
        (st = fpi_json_int(m, "layers", 1, 1, FP_MAX_LAYERS, name, "model", &layers)))
        goto done;
    if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m, "weights")) &&
        ((st = fpi_json_string(m, "weights", 0, name, "model", plan->weights, sizeof plan->weights)) ||
         (st = fpi_json_string(m, "weights_hash", 0, name, "model", plan->weights_hash, sizeof plan->weights_hash))))
        goto done;
    if (mi && (!cJSON_IsObject(mi) || (st = fpi_json_int(mi, "c", 1, 1, FP_MAX_DIM, name, "model.input", &c)) ||
               (st = fpi_json_int(mi, "h", 1, 1, FP_MAX_DIM, name, "model.input", &h)) ||
               (st = fpi_json_int(mi, "w", 1, 1, FP_MAX_DIM, name, "model.input", &w)))) {
        if (!st) st = fpi_error(FP_ECORRUPT, "%s: model.input must be an object {c, h, w}", name);
        goto done;
    }
    plan->n_layers = (int)layers;
    plan->input = (fp_shape){(int)c, (int)h, (int)w};
    if (ex && ex->n_layers && ex->n_layers != plan->n_layers) {
        st = fpi_error(FP_EINVAL, "%s: the plan is for a model of %d layers, this one has %d", name, plan->n_layers,
                       ex->n_layers);
        goto done;
    }
    if (ex && ex->cfg_hash && ex->cfg_hash[0] && strcmp(ex->cfg_hash, plan->cfg_hash)) {
        st = fpi_error(FP_EINVAL, "%s: the plan is for model %s (cfg hash %s), but this cfg hashes to %s", name,
                       plan->cfg, plan->cfg_hash[0] ? plan->cfg_hash : "none", ex->cfg_hash);
        goto done;
    }
    if (ex && ex->weights_hash && ex->weights_hash[0] && strcmp(ex->weights_hash, plan->weights_hash)) {
        st = fpi_error(FP_EINVAL, "%s: the plan is for weights %s (hash %s), but these weights hash to %s", name,
                       plan->weights[0] ? plan->weights : "(random)", plan->weights_hash[0] ? plan->weights_hash : "none",
                       ex->weights_hash);
        goto done;
    }
    if ((st = fpi_json_string(root, "strategy", 0, name, "top level", strat, sizeof strat)) ||
        (st = fpi_json_string(root, "objective", 0, name, "top level", obj, sizeof obj)))
        goto done;
    plan->strategy = FP_STRATEGY_CUTS;
    if (strat[0] && fp_strategy_parse(strat, &plan->strategy)) {
        st = fpi_error_context(FP_ECORRUPT, "%s: strategy", name);
        goto done;
    }
    if (obj[0] && fp_objective_parse(obj, &plan->objective)) {
        st = fpi_error_context(FP_ECORRUPT, "%s: objective", name);
        goto done;
    }
    if (inp && (!cJSON_IsObject(inp) ||
                (st = fpi_json_number(inp, "bytes", 0, 0, 1e15, name, "input", &plan->input_bytes)) ||
                (st = fpi_plan_ms(inp, "transfer_ms", 0, name, "input", &plan->input_s)))) {
        if (!st) st = fpi_error(FP_ECORRUPT, "%s: \"input\" must be an object", name);
        goto done;
    }
    if (!cJSON_IsArray(stages) || cJSON_GetArraySize(stages) < 1 || cJSON_GetArraySize(stages) > FP_PART_MAX_DEVICES) {
        st = fpi_error(FP_ECORRUPT, "%s: \"stages\" must be a list of 1..%d stages", name, FP_PART_MAX_DEVICES);
        goto done;
    }
    int s = 0;
    for (const cJSON *o = stages->child; o; o = o->next, s++) {
        if ((st = fpi_plan_stage(o, s, name, ex, plan))) goto done;
        const fp_plan_stage *cur = &plan->stages[s];
        int want = s ? plan->stages[s - 1].last + 1 : 0;
        if (cur->first < want) {
            st = fpi_error(FP_ECORRUPT, "%s: stage %d starts at layer %d but stage %d ends at layer %d (layers %d..%d "
                           "overlap)", name, s, cur->first, s - 1, want - 1, cur->first, want - 1);
            goto done;
        }
        if (cur->first > want) {
            st = fpi_error(FP_ECORRUPT, "%s: layers %d..%d are in no stage (stage %d starts at layer %d)", name, want,
                           cur->first - 1, s, cur->first);
            goto done;
        }
        plan->n_stages = s + 1;
    }
    if (plan->stages[s - 1].last != plan->n_layers - 1) {
        st = fpi_error(FP_ECORRUPT, "%s: layers %d..%d are in no stage (the last stage ends at layer %d)", name,
                       plan->stages[s - 1].last + 1, plan->n_layers - 1, plan->stages[s - 1].last);
        goto done;
    }
    /* Each device runs one stage. */
    int owner[FP_PART_MAX_DEVICES];
    for (int d = 0; d < FP_PART_MAX_DEVICES; d++) owner[d] = -1;
    for (int k = 0; k < plan->n_stages; k++)
        for (int r = 0; r < plan->stages[k].n_devices; r++) {
            int d = plan->stages[k].devices[r];
            if (owner[d] >= 0) {
                st = fpi_error(FP_ECORRUPT, "%s: device \"%s\" is used by stage %d and stage %d", name,
                               plan->devices[d].name, owner[d], k);
                goto done;
            }
            owner[d] = k;
        }
    plan->feasible = 1;
    for (int k = 0; k < plan->n_stages; k++)
        if (!plan->stages[k].fits) plan->feasible = 0;
    if (pr) {
        double ipm = 0;
        if (!cJSON_IsObject(pr) || (st = fpi_json_keys(pr, pkeys, name, "predicted")) ||
            (st = fpi_json_number(pr, "images_per_min", 0, -1, 1e12, name, "predicted", &ipm)) ||
            (st = fpi_plan_ms(pr, "latency_ms", 0, name, "predicted", &plan->latency_s)) ||
            (st = fpi_plan_ms(pr, "bottleneck_ms", 0, name, "predicted", &plan->bottleneck_s)) ||
            (st = fpi_json_string(pr, "bottleneck", 0, name, "predicted", plan->bottleneck, sizeof plan->bottleneck))) {
            if (!st) st = fpi_error(FP_ECORRUPT, "%s: \"predicted\" must be an object", name);
            goto done;
        }
        plan->images_per_min = ipm < 0 ? INFINITY : ipm;
    }
done:
    cJSON_Delete(root);
    return st;
}

fp_status fp_plan_load(const char *path, const fp_plan_expect *expect, fp_plan *out)
{
    char *text = NULL;
    size_t len;
    fp_status st = fpi_read_file(path, FPI_PLAN_MAX_BYTES, &text, &len);
    if (st) return st;
    st = strlen(text) != len ? fpi_error(FP_ECORRUPT, "%s: contains a NUL byte", path)
                             : fp_plan_parse(text, path, expect, out);
    fpi_free(text);
    return st;
}
