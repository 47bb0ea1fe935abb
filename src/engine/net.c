/* net.c — network lifecycle after parsing: weight preparation (batch-norm
 * folding), activation-arena planning from tensor lifetimes, and execution
 * of contiguous layer ranges. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "engine/fast/fast.h"
#include "engine/net_impl.h"

void fp_net_destroy(fp_net *net)
{
    if (!net) return;
    for (int i = 0; i < net->n && net->layers; i++) {
        fpi_dnnl_layer_destroy(net->layers[i].dnnl);
        fpi_free(net->layers[i].first_wino);
    }
    fpi_pool_destroy(net->pool);
    fpi_free_aligned(net->params);
    fpi_unmap(net->arena, net->arena_bytes);
    fpi_unmap(net->workspace, net->workspace_floats * sizeof(float));
    fpi_free(net->layers);
    fpi_free(net);
}

/* Sets each layer's kernel/bias pointers, folding batch-norm
 * (y = (x-mean)/(sqrt(var)+1e-6)*scale + bias, darknet's formula) into the
 * weights: w' = w*s, b' = bias - mean*s with s = scale/(sqrt(var)+1e-6).
 * In place: the parameters are held once, so after this they are no longer
 * the file's (fp_net_save_weights and fp_net_stage_weights refuse). */
static fp_status fpi_prepare_weights(fp_net *net)
{
    for (int i = net->first; i <= net->last; i++) {
        fpi_layer *l = &net->layers[i];
        if (l->op != FP_OP_CONVOLUTIONAL && l->op != FP_OP_CONNECTED) continue;
        float *p = fpi_layer_params(net, l);
        int conv = l->op == FP_OP_CONVOLUTIONAL;
        int n = conv ? l->p.conv.filters : l->p.fc.outputs;
        int bn = conv ? l->p.conv.bn : l->p.fc.bn;
        size_t per = conv ? (size_t)(l->in.c / l->p.conv.groups) * l->p.conv.size * l->p.conv.size
                          : fp_shape_count(l->in);
        float *w = conv ? p + (size_t)n * (bn ? 4 : 1) : p + n;
        l->bias = p;
        l->kernel = w;
        if (!bn) continue;
        const float *scales = conv ? p + n : w + (size_t)n * per;
        const float *mean = scales + n, *var = mean + n;
        for (int f = 0; f < n; f++) {
            float s = scales[f] / (sqrtf(var[f]) + .000001f);
            p[f] = p[f] - mean[f] * s;
            for (size_t k = 0; k < per; k++) w[(size_t)f * per + k] *= s;
        }
    }
    net->weights_prepared = 1;
    return FP_OK;
}

typedef struct {
    size_t size;  /* bytes, rounded to 64 */
    int first;    /* producing layer (-1: network input) */
    int last;     /* last layer reading it */
    int id;       /* layer index, or -1 for the input */
    size_t off;   /* planned offset */
} fpi_tensor_plan;

static int fpi_plan_by_size(const void *a, const void *b)
{
    const fpi_tensor_plan *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->first - y->first;
}

/* Greedy-by-size placement (largest first, lowest offset that does not
 * overlap any placed tensor whose lifetime intersects). */
static size_t fpi_plan_arena(fpi_tensor_plan *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, fpi_plan_by_size);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t off = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < i; j++) {
                if (t[j].last < t[i].first || t[i].last < t[j].first) continue;
                if (off < t[j].off + t[j].size && t[j].off < off + t[i].size) {
                    off = t[j].off + t[j].size;
                    moved = 1;
                }
            }
        }
        t[i].off = off;
        if (off + t[i].size > total) total = off + t[i].size;
    }
    return total;
}

/* Last reader of each tensor: last[j + 1] for tensor j (-1 = the input);
 * -1 when nobody reads it. */
static void fpi_last_readers(const fp_net *net, int *last)
{
    for (int j = 0; j <= net->n; j++) last[j] = -1;
    for (int i = 0; i < net->n; i++)
        for (int k = 0; k < net->layers[i].n_src; k++)
            if (last[net->layers[i].src[k] + 1] < i) last[net->layers[i].src[k] + 1] = i;
}

/* Whether tensor j (produced at or before k) crosses the cut after k. */
static int fpi_crosses(const int *last, int j, int k)
{
    return last[j + 1] > k || (j >= 0 && last[j + 1] < 0);
}

int fp_net_cut(const fp_net *net, int k, int *out, int max)
{
    if (!net || k < -1 || k >= net->n) return -1;
    int *last = fpi_malloc(((size_t)net->n + 1) * sizeof *last);
    if (!last) return -1;
    fpi_last_readers(net, last);
    int count = 0;
    for (int j = -1; j <= k; j++)
        if (fpi_crosses(last, j, k)) {
            if (count < max && out) out[count] = j;
            count++;
        }
    fpi_free(last);
    return count;
}

fp_status fp_net_set_range(fp_net *net, int first, int last)
{
    if (!net) return fpi_error(FP_EINVAL, "fp_net_set_range: NULL network");
    if (first < 0 || last >= net->n || first > last)
        return fpi_error(FP_EINVAL, "layer range %d..%d outside 0..%d", first, last, net->n - 1);
    if (net->ranged && (net->first != first || net->last != last))
        return fpi_error(FP_ESTATE, "the network is already restricted to layers %d..%d", net->first, net->last);
    if (net->arena || net->weights_prepared)
        return fpi_error(FP_ESTATE, "fp_net_set_range: call it before fp_net_setup");
    size_t base = net->layers[first].param_off;
    size_t end = net->layers[last].param_off + net->layers[last].n_params;
    if (net->params && (base != net->param_base || end - base != net->n_held)) {
        /* Weights already loaded whole (TF.js models): keep the range's block. */
        float *p = fpi_malloc_aligned((end - base ? end - base : 1) * sizeof(float));
        if (!p) return fpi_error(FP_ENOMEM, "out of memory keeping layers %d..%d's parameters", first, last);
        memcpy(p, net->params + (base - net->param_base), (end - base) * sizeof(float));
        fpi_free_aligned(net->params);
        net->params = p;
    }
    net->param_base = base;
    net->n_held = end - base;
    net->first = first;
    net->last = last;
    net->ranged = 1;
    return FP_OK;
}

fp_status fp_net_setup(fp_net *net)
{
    if (!net) return fpi_error(FP_EINVAL, "fp_net_setup: NULL network");
    if (net->arena) return FP_OK;
    if (!net->weights_loaded)
        return fpi_error(FP_ESTATE, "fp_net_setup: no weights loaded (load a weights file or use random weights)");
    fp_status st;
    if (!net->weights_prepared && (st = fpi_prepare_weights(net))) return st;
    fpi_first_setup(net); /* both may grow layers' workspace */
    if ((st = fpi_dnnl_setup(net))) return st;
    for (int i = net->first; i <= net->last; i++) net->kernels_released |= net->layers[i].kernel_released;

    /* Lifetimes: a tensor lives from its producer to its last reader; outputs
     * nobody reads (the last layer, detection heads) live to the end. In a
     * restricted network only the range's outputs and the tensors crossing
     * into it exist; those received live from the start, those read after
     * the range (sent on) to the end. */
    int *last = fpi_malloc(((size_t)net->n + 1) * sizeof *last);
    fpi_tensor_plan *plan = fpi_calloc((size_t)net->n + 1, sizeof *plan);
    if (!last || !plan) {
        fpi_free(last);
        fpi_free(plan);
        return fpi_error(FP_ENOMEM, "out of memory planning the arena");
    }
    fpi_last_readers(net, last);
    /* A convolution run fused with the max pool after it (fast/conv_first.c,
     * fast/dnnl.c) still reads its inputs while the pool's output is
     * written: they live on. */
    /* So does a depthwise layer computed inside the 1x1 layer after it
     * (fast/dnnl.c), while that one's output (or its pool's) is written, and
     * a first layer whose pooled rows are made as such a depthwise layer
     * needs them, until the last 1x1 layer of its trunk (or its pool). */
    for (int i = net->first; i < net->last; i++) {
        const fpi_layer *l = &net->layers[i];
        int end = fpi_fused_pool(l) == i + 1 ? i + 1 : -1, c = fpi_dnnl_dw_into(l);
        if (l->conv_first_pool && l->first_chain >= 0) c = l->first_chain;
        if (c > i) end = c < net->last && fpi_fused_pool(&net->layers[c]) == c + 1 ? c + 1 : c;
        for (int k = 0; k < l->n_src; k++)
            if (last[l->src[k] + 1] < end) last[l->src[k] + 1] = end;
    }
    size_t ws = 0;
    int n_plan = 0;
    net->input_off = FPI_NO_TENSOR;
    for (int j = -1; j < net->n; j++) {
        int in_range = j >= net->first && j <= net->last;
        if (j >= 0) net->layers[j].out_off = FPI_NO_TENSOR;
        if (!in_range && !(j < net->first && fpi_crosses(last, j, net->first - 1))) continue;
        int from = in_range ? j : net->first - 1;
        int to = last[j + 1] > net->last || last[j + 1] < 0 ? net->n : last[j + 1];
        size_t count = j < 0 ? fp_shape_count(net->input) : fp_shape_count(net->layers[j].out);
        plan[n_plan++] = (fpi_tensor_plan){(count * sizeof(float) + 63) & ~(size_t)63, from, to, j, 0};
        if (in_range) {
            net->layers[j].last_use = to > net->n - 1 ? net->n - 1 : to;
            if (net->layers[j].workspace > ws) ws = net->layers[j].workspace;
        }
    }
    fpi_free(last);
    /* The two largest tensors live at one layer, at the worst layer. */
    net->live_pair_bytes = 0;
    for (int i = net->first; i <= net->last; i++) {
        size_t a = 0, b = 0;
        for (int k = 0; k < n_plan; k++) {
            if (plan[k].first > i || plan[k].last < i) continue;
            if (plan[k].size > a) b = a, a = plan[k].size;
            else if (plan[k].size > b) b = plan[k].size;
        }
        if (a + b > net->live_pair_bytes) net->live_pair_bytes = a + b;
    }
    /* The output of a convolution fused with its max pool (or of a depthwise
     * layer fused into the 1x1 after it) is written only
     * when the two run apart (a callback, a run ending at the convolution):
     * it gets a region of its own after everything else, whose pages a
     * fused run never touches, instead of a place other tensors would
     * share and so bring into memory (the face detector's first
     * convolution, 11 MB of its 16 MB arena). The budget above still counts
     * it: it is the model's activation, however it is computed. */
    int n_shared = 0;
    for (int k = 0; k < n_plan; k++) { /* the shared ones first, the fused outputs after */
        int j = plan[k].id, fused = j >= net->first && j < net->last &&
                                    (fpi_fused_pool(&net->layers[j]) == j + 1 || fpi_dnnl_dw_into(&net->layers[j]) == j + 1);
        if (!fused) {
            fpi_tensor_plan t = plan[k];
            plan[k] = plan[n_shared];
            plan[n_shared++] = t;
        }
    }
    int n_sep = n_plan - n_shared;
    size_t total = fpi_plan_arena(plan, n_shared);
    for (int i = n_plan - n_sep; i < n_plan; i++) {
        plan[i].off = total;
        total += plan[i].size;
    }
    for (int i = 0; i < n_plan; i++) {
        if (plan[i].id < 0) net->input_off = plan[i].off;
        else net->layers[plan[i].id].out_off = plan[i].off;
    }
    fpi_free(plan);
    /* Refuse up front what cannot fit: a short cfg can ask for terabytes. */
    size_t ws_bytes = 0, need = 0;
    if (!fpi_mul_size(ws, sizeof(float), &ws_bytes) || !fpi_add_size(total, ws_bytes, &need) ||
        need > fpi_memory_limit())
        return fpi_error(FP_ENOMEM,
                         "the network needs %zu MiB of activations and %zu MiB of scratch, more than the %zu MiB this machine allows",
                         total >> 20, ws_bytes >> 20, fpi_memory_limit() >> 20);
    /* Mapped, not allocated: zero without a memset, and only the pages a
     * run writes take memory (a convolution fused with its max pool never
     * writes its own output; one thread uses one slot of a layer's scratch). */
    net->arena = fpi_map_zeroed(total);
    if (!net->arena) return fpi_error(FP_ENOMEM, "out of memory for a %zu MiB activation arena", total >> 20);
    net->workspace = ws ? fpi_map_zeroed(ws_bytes) : NULL;
    if (ws && !net->workspace) {
        fpi_unmap(net->arena, total);
        net->arena = NULL;
        return fpi_error(FP_ENOMEM, "out of memory for %zu MiB of convolution scratch", ws_bytes >> 20);
    }
    net->arena_bytes = total;
    net->workspace_floats = ws;
    return FP_OK;
}

fp_status fp_net_set_threads(fp_net *net, int threads)
{
    if (!net || threads < 1 || threads > 256)
        return fpi_error(FP_EINVAL, "threads must be in [1, 256] (got %d)", threads);
    if (threads == net->threads) return FP_OK;
    fpi_pool_destroy(net->pool);
    net->pool = NULL;
    net->threads = 1;
    if (threads > 1) {
        fp_status st = fpi_pool_create(threads, &net->pool);
        if (st) return st;
    }
    net->threads = threads;
    return FP_OK;
}

/* Address of layer j's output (j = -1: the network input). */
static float *fpi_tensor(const fp_net *net, int j)
{
    return (float *)(net->arena + (j < 0 ? net->input_off : net->layers[j].out_off));
}

/* Whether layer a, run with x, reads the network input row by row (x->in_rows):
 * the first layer of a trunk that runs now, and no other layer up to x->last
 * reads the input. */
static int fpi_reads_rows(const fp_net *net, const fpi_layer *a, const fpi_exec *x)
{
    if (a->index != 0 || x->first != 0 || !a->conv_first_pool || a->first_chain < 0 || a->n_src != 1 ||
        a->src[0] != -1 || fpi_first_chain_end(net, a, x) < 0)
        return 0;
    for (int i = 1; i <= x->last; i++)
        for (int k = 0; k < net->layers[i].n_src; k++)
            if (net->layers[i].src[k] == -1) return 0;
    return 1;
}

static fp_status fpi_run(fp_net *net, int first, int last, fp_layer_cb cb, void *user, const fpi_rows *rows);

int fpi_net_takes_rows(const fp_net *net, int last)
{
    if (!net || !net->arena || net->first != 0 || last < 0 || last > net->last || net->input_off == FPI_NO_TENSOR)
        return 0;
    fpi_exec x = {net->workspace, net->pool, 0, last, 1, NULL};
    return fpi_reads_rows(net, &net->layers[0], &x);
}

fp_status fpi_net_run_rows(fp_net *net, int last, const fpi_rows *rows)
{
    return fpi_run(net, 0, last, NULL, NULL, rows);
}

fp_status fp_net_run(fp_net *net, int first, int last, fp_layer_cb cb, void *user)
{
    return fpi_run(net, first, last, cb, user, NULL);
}

static fp_status fpi_run(fp_net *net, int first, int last, fp_layer_cb cb, void *user, const fpi_rows *rows)
{
    if (!net) return fpi_error(FP_EINVAL, "fp_net_run: NULL network");
    if (!net->arena) return fpi_error(FP_ESTATE, "fp_net_run: call fp_net_setup first");
    if (first < net->first || last > net->last || first > last)
        return fpi_error(FP_EINVAL, "fp_net_run: layer range %d..%d outside %d..%d", first, last,
                         net->first, net->last);
    /* Convolutions whose plain weights setup gave back to the system run
     * only in oneDNN; should other kernels be asked for (a test mode), the
     * plain weights are written back from oneDNN's copy first. */
    if (net->kernels_released && !fpi_dnnl_available()) {
        fp_status st = fpi_dnnl_restore(net);
        if (st) return st;
        net->kernels_released = 0;
    }
    fpi_exec x = {net->workspace, net->pool, first, last, cb == NULL, NULL};
    if (rows && fpi_reads_rows(net, &net->layers[0], &x)) {
        x.in_rows = rows; /* the trunk makes them as it reads them */
    } else if (rows && net->input_off != FPI_NO_TENSOR) {
        /* read from the input tensor: the rows go there first */
        float *in = fpi_tensor(net, -1);
        for (int c = 0; c < net->input.c; c++)
            for (int y = 0; y < net->input.h; y++)
                memcpy(in + ((size_t)c * net->input.h + y) * net->input.w, rows->row(rows->ctx, c, y),
                       (size_t)net->input.w * sizeof(float));
    }
    for (int i = first; i <= last; i++) {
        const fpi_layer *l = &net->layers[i];
        const float *src[FP_MAX_ROUTE];
        for (int k = 0; k < l->n_src; k++) src[k] = fpi_tensor(net, l->src[k]);
        float *out = fpi_tensor(net, i);
        /* a convolution and the max pool that alone reads it, in one pass
         * (fast/conv_first.c, fast/dnnl.c); only without a callback, which
         * would see l's output */
        if (!cb && l->conv_first_pool && l->first_chain >= 0) {
            /* a first layer and the depthwise-separable stages after it in
             * one pass, the maps between never whole (fast/dnnl.c) */
            int end = fpi_first_chain_end(net, l, &x);
            if (end >= 0 && fpi_first_chain_dnnl(net, l, src[0], fpi_tensor(net, end), &x)) {
                i = end;
                continue;
            }
        }
        if (!cb && i < last && l->dnnl) {
            /* a depthwise layer computed inside the 1x1 layer after it
             * (and that one's max pool) */
            int k = fpi_conv_dw_dnnl(l, &net->layers[i + 1], src, fpi_tensor(net, i + 1),
                                     i + 1 < last ? fpi_tensor(net, i + 2) : NULL, &x);
            if (k) {
                i += k - 1;
                continue;
            }
        }
        if (!cb && i < last && (l->conv_first_pool || l->dnnl) &&
            (fpi_conv_pool_first(l, &net->layers[i + 1], src, fpi_tensor(net, i + 1), &x) ||
             fpi_conv_pool_dnnl(l, &net->layers[i + 1], src, fpi_tensor(net, i + 1), &x))) {
            i++;
            continue;
        }
        fpi_ops[l->op].forward(l, src, out, &x);
        if (cb && cb(user, i, out, l->out))
            return fpi_error(FP_ESTATE, "fp_net_run: stopped by the callback after layer %d", i);
    }
    return FP_OK;
}

int fp_net_layer_count(const fp_net *net) { return net ? net->n : 0; }

fp_status fp_net_layer_info(const fp_net *net, int i, fp_layer_info *info)
{
    if (!net || !info || i < 0 || i >= net->n)
        return fpi_error(FP_EINVAL, "fp_net_layer_info: no layer %d", i);
    const fpi_layer *l = &net->layers[i];
    memset(info, 0, sizeof *info);
    info->index = i;
    info->op = l->op;
    info->type = fp_op_name(l->op);
    info->cfg_line = l->line;
    info->in = l->in;
    info->out = l->out;
    info->n_inputs = l->n_src;
    memcpy(info->inputs, l->src, sizeof l->src);
    info->flops = l->flops;
    info->params = l->n_params;
    info->out_bytes = fp_shape_count(l->out) * sizeof(float);
    memcpy(info->desc, l->desc, sizeof info->desc);
    return FP_OK;
}

fp_shape fp_net_input_shape(const fp_net *net) { return net ? net->input : (fp_shape){0, 0, 0}; }

float *fp_net_input(fp_net *net)
{
    return net && net->arena && net->input_off != FPI_NO_TENSOR ? fpi_tensor(net, -1) : NULL;
}

const float *fp_net_output(const fp_net *net, int i)
{
    if (!net || !net->arena || i < 0 || i >= net->n || net->layers[i].out_off == FPI_NO_TENSOR) return NULL;
    return fpi_tensor(net, i);
}

float *fp_net_output_mut(fp_net *net, int i)
{
    if (!net || !net->arena || i < 0 || i >= net->n || net->layers[i].out_off == FPI_NO_TENSOR) return NULL;
    return fpi_tensor(net, i);
}

size_t fp_net_live_pair_bytes(const fp_net *net) { return net ? net->live_pair_bytes : 0; }
size_t fp_net_arena_bytes(const fp_net *net) { return net ? net->arena_bytes + net->workspace_floats * sizeof(float) : 0; }

size_t fp_net_weight_bytes(const fp_net *net)
{
    return net ? net->n_held * sizeof(float) : 0;
}
