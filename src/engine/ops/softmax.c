/* softmax.c — [softmax]: softmax over the flattened input, in `groups`
 * equal contiguous groups. */
#include <stdio.h>

#include "engine/net_impl.h"

fp_status fpi_softmax_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    fpi_softmax_params *p = &l->p.softmax;
    fp_status st;
    if (fpi_cfg_str(s, "tree"))
        return fpi_cfg_error(b->cfg, s, FP_EUNSUPPORTED, "tree= (hierarchical softmax) is not supported");
    size_t n = fp_shape_count(l->in);
    if ((st = fpi_cfg_int(b->cfg, s, "groups", 1, 1, FP_MAX_DIM, &p->groups)) ||
        (st = fpi_cfg_float(b->cfg, s, "temperature", 1.f, 1e-6f, 1e6f, &p->temperature)))
        return st;
    if (n % (size_t)p->groups)
        return fpi_cfg_error(b->cfg, s, FP_ECORRUPT, "groups=%d does not divide the %zu inputs",
                             p->groups, n);
    l->out = l->in;
    l->flops = 3 * n;
    snprintf(l->desc, sizeof l->desc, "groups=%d", p->groups);
    return FP_OK;
}

void fpi_softmax_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    const fpi_softmax_params *p = &l->p.softmax;
    int n = (int)(fp_shape_count(l->in) / (size_t)p->groups);
    for (int g = 0; g < p->groups; g++)
        fpi_softmax(src[0] + (size_t)g * n, n, p->temperature, 1, out + (size_t)g * n);
}
