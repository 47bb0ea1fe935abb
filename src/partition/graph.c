/* graph.c — the partitioner's view of a network: per-layer costs, the
 * tensors crossing each cut, and file hashing for plan/model matching. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "engine/net_impl.h"
#include "partition/partition_impl.h"

fp_status fp_part_graph_create(int n_layers, fp_part_graph **out)
{
    if (!out || n_layers < 1 || n_layers > FP_MAX_LAYERS)
        return fpi_error(FP_EINVAL, "fp_part_graph_create: layer count must be in [1, %d] (got %d)",
                         FP_MAX_LAYERS, n_layers);
    fp_part_graph *g = fpi_calloc(1, sizeof *g);
    if (!g) goto nomem;
    g->layers = fpi_calloc((size_t)n_layers, sizeof *g->layers);
    if (!g->layers) goto nomem;
    g->n_layers = n_layers;
    for (int i = 0; i < n_layers; i++) {
        g->layers[i].op = FP_OP_CONVOLUTIONAL;
        g->layers[i].n_inputs = 1;
        g->layers[i].inputs[0] = i - 1;
        g->layers[i].out_channels = 1;
    }
    *out = g;
    return FP_OK;
nomem:
    fp_part_graph_destroy(g);
    return fpi_error(FP_ENOMEM, "out of memory for a graph of %d layers", n_layers);
}

void fp_part_graph_destroy(fp_part_graph *g)
{
    if (!g) return;
    fpi_free(g->layers);
    fpi_free(g);
}

fp_status fp_part_graph_from_net(const fp_net *net, fp_part_graph **out)
{
    if (!net || !out) return fpi_error(FP_EINVAL, "fp_part_graph_from_net: NULL argument");
    fp_part_graph *g;
    fp_status st = fp_part_graph_create(net->n, &g);
    if (st) return st;
    g->input = net->input;
    g->input_bytes = fp_shape_count(net->input) * sizeof(float);
    for (int i = 0; i < net->n; i++) {
        const fpi_layer *l = &net->layers[i];
        fp_part_layer *pl = &g->layers[i];
        pl->op = l->op;
        pl->n_inputs = l->n_src;
        memcpy(pl->inputs, l->src, sizeof pl->inputs);
        pl->flops = l->flops;
        /* The parameters, held once (batch-norm folded in place; oneDNN's
         * copy of a convolution's replaces the plain one). */
        pl->weight_bytes = (uint64_t)l->n_params * sizeof(float);
        pl->out_bytes = fp_shape_count(l->out) * sizeof(float);
        pl->scratch_bytes = (uint64_t)l->workspace * sizeof(float);
        pl->out_channels = l->out.c;
    }
    *out = g;
    return FP_OK;
}

fp_status fp_part_graph_check(const fp_part_graph *g)
{
    if (!g || !g->layers || g->n_layers < 1 || g->n_layers > FP_MAX_LAYERS)
        return fpi_error(FP_EINVAL, "partition graph: layer count must be in [1, %d] (got %d)",
                         FP_MAX_LAYERS, g ? g->n_layers : 0);
    for (int i = 0; i < g->n_layers; i++) {
        const fp_part_layer *l = &g->layers[i];
        if (l->n_inputs < 0 || l->n_inputs > FP_MAX_ROUTE)
            return fpi_error(FP_EINVAL, "partition graph: layer %d has %d inputs (expected 0..%d)", i,
                             l->n_inputs, FP_MAX_ROUTE);
        for (int k = 0; k < l->n_inputs; k++)
            if (l->inputs[k] < -1 || l->inputs[k] >= i)
                return fpi_error(FP_EINVAL,
                                 "partition graph: layer %d reads layer %d (expected -1..%d)", i,
                                 l->inputs[k], i - 1);
        if (l->out_channels < 0)
            return fpi_error(FP_EINVAL, "partition graph: layer %d has %d output channels", i,
                             l->out_channels);
    }
    return FP_OK;
}

/* Last reader of every tensor: last[0] for the network input, last[p+1] for
 * layer p; an output nobody reads goes to the gateway (n_layers). */
void fpi_part_last_use(const fp_part_graph *g, int *last)
{
    int n = g->n_layers;
    for (int p = 0; p <= n; p++) last[p] = -2;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->layers[i].n_inputs; k++) {
            int s = g->layers[i].inputs[k];
            if (last[s + 1] < i) last[s + 1] = i;
        }
    for (int p = 1; p <= n; p++)
        if (last[p] == -2) last[p] = n;
    /* An input nobody reads is never sent. */
}

fp_status fp_part_cut_info(const fp_part_graph *g, int k, fp_part_cut *out)
{
    if (!g || !out || k < 0 || k >= g->n_layers)
        return fpi_error(FP_EINVAL, "fp_part_cut_info: no cut after layer %d (expected 0..%d)", k,
                         g ? g->n_layers - 1 : -1);
    int last[FP_MAX_LAYERS + 1];
    fpi_part_last_use(g, last);
    memset(out, 0, sizeof *out);
    for (int p = -1; p <= k; p++) {
        if (last[p + 1] <= k) continue;
        if (out->n_tensors == FP_PART_MAX_CUT_TENSORS)
            return fpi_error(FP_EUNSUPPORTED, "the cut after layer %d carries more than %d tensors", k,
                             FP_PART_MAX_CUT_TENSORS);
        out->tensors[out->n_tensors++] = p;
        out->raw_bytes += p < 0 ? g->input_bytes : g->layers[p].out_bytes;
        out->channels += p < 0 ? (uint64_t)(g->input.c > 0 ? g->input.c : 0)
                               : (uint64_t)g->layers[p].out_channels;
    }
    return FP_OK;
}

fp_status fp_part_hash_file(const char *path, char *buf, size_t size)
{
    if (!path || !buf || size < 25) return fpi_error(FP_EINVAL, "fp_part_hash_file: bad argument");
    FILE *f = fopen(path, "rb");
    if (!f) return fpi_error(FP_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint64_t h = 0xcbf29ce484222325ull;
    unsigned char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        for (size_t i = 0; i < n; i++) h = (h ^ chunk[i]) * 0x100000001b3ull;
    int bad = ferror(f);
    fclose(f);
    if (bad) return fpi_error(FP_EIO, "%s: read error", path);
    snprintf(buf, size, "fnv1a64:%016llx", (unsigned long long)h);
    return FP_OK;
}
