/* common.c — what the stage workers and the gateway share: endpoint lists,
 * loading a plan's model (whole, or one stage's layers), frame size bounds,
 * and the result JSON. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "pipeline/pipeline.h"

fp_status fpp_endpoints_parse(const char *list, const char *what, fpp_endpoints *out)
{
    memset(out, 0, sizeof *out);
    if (!list || !*list) return fpi_error(FP_EINVAL, "%s: no endpoint given", what);
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0) return fpi_error(FP_EINVAL, "%s: empty endpoint in \"%s\"", what, list);
        if (n >= FPP_MAX_ENDPOINT) return fpi_error(FP_EINVAL, "%s: endpoint longer than %d bytes", what, FPP_MAX_ENDPOINT - 1);
        if (out->n == FPP_MAX_PEERS) return fpi_error(FP_EINVAL, "%s: more than %d endpoints", what, FPP_MAX_PEERS);
        memcpy(out->ep[out->n], p, n);
        out->ep[out->n][n] = '\0';
        const char *e = out->ep[out->n];
        if (strncmp(e, "tcp://", 6) && strncmp(e, "ipc://", 6) && strncmp(e, "inproc://", 9))
            return fpi_error(FP_EINVAL, "%s: \"%s\" is not an endpoint (expected tcp://HOST:PORT, ipc://PATH or inproc://NAME)",
                             what, e);
        out->n++;
        p += n;
        if (*p == ',') p++;
    }
    return FP_OK;
}

/* Checks that `path` hashes to `want` ("" = not recorded). */
static fp_status fpi_check_hash(const char *path, const char *want, const char *what, const char *suffix)
{
    if (!want[0]) return FP_OK;
    char got[48];
    fp_status st = fp_part_hash_file(path, got, 32);
    if (st) return st;
    size_t n = strlen(got);
    snprintf(got + n, sizeof got - n, "%s", suffix);
    if (strcmp(got, want))
        return fpi_error(FP_EINVAL, "%s %s hashes to %s, but the plan was made for %s", what, path, got, want);
    return FP_OK;
}

fp_status fpp_load_plan_model(const fp_plan *plan, int stage, const fpp_model_paths *paths, int threads,
                              fp_net **out)
{
    *out = NULL;
    if (stage >= plan->n_stages)
        return fpi_error(FP_EINVAL, "the plan has %d stages (0..%d); there is no stage %d", plan->n_stages,
                         plan->n_stages - 1, stage);
    const char *cfg = paths && paths->cfg && *paths->cfg ? paths->cfg : plan->cfg;
    const char *weights = paths && paths->weights && *paths->weights ? paths->weights : plan->weights;
    const char *at = strchr(plan->cfg_hash, '@');
    fp_net *net = NULL;
    fp_status st;
    const char *from = stage >= 0 && paths && paths->weights_from && *paths->weights_from ? paths->weights_from : NULL;
    if (from && !plan->stages[stage].weights_sha256[0])
        return fpi_error(FP_EINVAL, "--weights-from: the plan records no weights hash for stage %d (make the plan with "
                         "this fogpipe's `plan` from a model with weights)", stage);
    if (at) { /* a TF.js manifest: its input size follows the hash */
        int size = atoi(at + 1);
        if ((st = fpi_check_hash(cfg, plan->cfg_hash, "model", at))) return st;
        /* with the weights from elsewhere, the shards are not needed */
        if ((st = from ? fp_net_load_tfjs_graph(cfg, size, &net) : fp_net_load_tfjs(cfg, size, &net))) return st;
    } else {
        if ((st = fpi_check_hash(cfg, plan->cfg_hash, "cfg", ""))) return st;
        if ((st = fp_net_load_cfg(cfg, &net))) return st;
    }
    if (fp_net_layer_count(net) != plan->n_layers) {
        st = fpi_error(FP_EINVAL, "%s has %d layers, the plan %d", cfg, fp_net_layer_count(net), plan->n_layers);
        goto fail;
    }
    if (stage < 0) {
        *out = net;
        return FP_OK;
    }
    if ((st = fp_net_set_range(net, plan->stages[stage].first, plan->stages[stage].last))) goto fail;
    if (from) {
        const fp_plan_stage *ps = &plan->stages[stage];
        size_t size = fp_net_stage_weights_size(net, ps->first, ps->last);
        void *blob = NULL;
        double t0 = fpi_now();
        if ((st = fpp_weights_fetch(from, ps->weights_sha256, size, paths->weights_timeout_s > 0 ? paths->weights_timeout_s : 300,
                                    paths->stop, &blob)))
            goto fail;
        st = fp_net_load_stage_weights(net, blob, size, from);
        free(blob);
        if (st) goto fail;
        fpi_log(FPI_LOG_INFO, "weights: layers %d..%d, %zu bytes from %s in %.2f s, SHA-256 as the plan says", ps->first,
                ps->last, size, from, fpi_now() - t0);
    } else if (!at) {
        if (weights[0]) {
            if ((st = fpi_check_hash(weights, plan->weights_hash, "weights", ""))) goto fail;
            st = fp_net_load_weights(net, weights);
        } else {
            st = fp_net_init_weights_random(net, 1);
        }
        if (st) goto fail;
    }
    if ((st = fp_net_set_threads(net, threads)) || (st = fp_net_setup(net))) goto fail;
    *out = net;
    return FP_OK;
fail:
    fp_net_destroy(net);
    return st;
}

fp_shape fpp_tensor_shape(const fp_net *net, int j)
{
    fp_layer_info info;
    if (j >= 0 && !fp_net_layer_info(net, j, &info)) return info.out;
    return fp_net_input_shape(net);
}

/* Raw bytes of tensor j (-1 = input) with per-channel int8 scales. */
static uint64_t fpi_tensor_bound(const fp_net *net, int j)
{
    fp_shape s = fpp_tensor_shape(net, j);
    return fp_shape_count(s) * 4 + (uint64_t)(s.c > 0 ? s.c : 0) * 8;
}

uint64_t fpp_stage_max_raw(const fp_plan *plan, const fp_net *net, int stage, uint64_t max_image_bytes)
{
    int cut[FP_PART_MAX_CUT_TENSORS];
    int n = fp_net_cut(net, plan->stages[stage].first - 1, cut, FP_PART_MAX_CUT_TENSORS);
    uint64_t total = 0;
    for (int i = 0; i < n && i < FP_PART_MAX_CUT_TENSORS; i++) total += fpi_tensor_bound(net, cut[i]);
    if (stage == 0 && total < max_image_bytes) total = max_image_bytes;
    return total;
}

fp_status fpp_result_json(int w, int h, const fp_detection *d, int n, char **out)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root && cJSON_AddNumberToObject(root, "width", w) && cJSON_AddNumberToObject(root, "height", h)
                     ? cJSON_AddArrayToObject(root, "detections")
                     : NULL;
    for (int i = 0; arr && i < n; i++) {
        cJSON *o = cJSON_CreateObject(), *b = NULL;
        if (!o || !cJSON_AddItemToArray(arr, o) || !cJSON_AddNumberToObject(o, "class", d[i].cls) ||
            !cJSON_AddNumberToObject(o, "score", d[i].score) || !(b = cJSON_AddObjectToObject(o, "box")) ||
            !cJSON_AddNumberToObject(b, "x", d[i].x) || !cJSON_AddNumberToObject(b, "y", d[i].y) ||
            !cJSON_AddNumberToObject(b, "w", d[i].w) || !cJSON_AddNumberToObject(b, "h", d[i].h))
            arr = NULL;
    }
    *out = arr ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return *out ? FP_OK : fpi_error(FP_ENOMEM, "out of memory writing a result");
}

fp_status fpp_error_json(const char *message, char **out)
{
    cJSON *root = cJSON_CreateObject();
    *out = root && cJSON_AddStringToObject(root, "error", message) ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return *out ? FP_OK : fpi_error(FP_ENOMEM, "out of memory writing a result");
}
