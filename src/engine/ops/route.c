/* route.c — [route]: concatenates earlier layers' outputs along channels
 * (flat concatenation when their spatial sizes differ, as darknet does). */
#include <stdio.h>
#include <string.h>

#include "engine/net_impl.h"

fp_status fpi_route_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    int idx[FP_MAX_ROUTE], n = 0;
    fp_status st = fpi_cfg_int_list(b->cfg, s, "layers", idx, FP_MAX_ROUTE, -FP_MAX_LAYERS,
                                    FP_MAX_LAYERS, &n);
    if (st) return st;
    if (n == 0) return fpi_cfg_error(b->cfg, s, FP_ECORRUPT, "layers= is required");
    size_t total = 0;
    int same = 1;
    char *d = l->desc;
    size_t room = sizeof l->desc;
    for (int i = 0; i < n; i++) {
        int j = idx[i] < 0 ? b->n + idx[i] : idx[i];
        if (j < 0 || j >= b->n)
            return fpi_cfg_error(b->cfg, s, FP_ECORRUPT,
                                 "layers: %d refers to layer %d, outside 0..%d", idx[i], j, b->n - 1);
        l->src[i] = j;
        fp_shape sh = b->layers[j].out;
        fp_shape first = b->layers[l->src[0]].out;
        if (sh.h != first.h || sh.w != first.w) same = 0;
        total += fp_shape_count(sh);
        int w = snprintf(d, room, "%s%d", i ? "," : "", j);
        if (w > 0 && (size_t)w < room) { d += w; room -= (size_t)w; }
    }
    l->n_src = n;
    l->in = b->layers[l->src[0]].out;
    if (same) {
        fp_shape first = b->layers[l->src[0]].out;
        l->out = (fp_shape){(int)(total / ((size_t)first.h * first.w)), first.h, first.w};
    } else {
        if (total > (size_t)FP_MAX_DIM * FP_MAX_DIM)
            return fpi_cfg_error(b->cfg, s, FP_ETOOBIG, "route output too large");
        l->out = (fp_shape){(int)total, 1, 1};
    }
    return fpi_check_shape(b->cfg, s, l->out);
}

void fpi_route_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    size_t off = 0;
    for (int i = 0; i < l->n_src; i++) {
        size_t n = fp_shape_count(l->src_shape[i]);
        memcpy(out + off, src[i], n * sizeof(float));
        off += n;
    }
}
