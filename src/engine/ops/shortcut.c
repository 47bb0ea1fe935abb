/* shortcut.c — [shortcut]: out = alpha*prev + beta*from, then activation.
 * Like darknet, shapes may differ by an integer factor: the smaller side is
 * strided/sampled and only the common channels are added. */
#include <stdio.h>
#include <string.h>

#include "engine/net_impl.h"

fp_status fpi_shortcut_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    fpi_shortcut_params *p = &l->p.shortcut;
    int from;
    fp_status st;
    if (b->n == 0) return fpi_cfg_error(b->cfg, s, FP_ECORRUPT, "shortcut cannot be the first layer");
    if (!fpi_cfg_str(s, "from")) return fpi_cfg_error(b->cfg, s, FP_ECORRUPT, "from= is required");
    if ((st = fpi_cfg_int(b->cfg, s, "from", 0, -FP_MAX_LAYERS, FP_MAX_LAYERS, &from)) ||
        (st = fpi_parse_activation(b->cfg, s, "linear", &l->act)) ||
        (st = fpi_cfg_float(b->cfg, s, "alpha", 1.f, -1e6f, 1e6f, &p->alpha)) ||
        (st = fpi_cfg_float(b->cfg, s, "beta", 1.f, -1e6f, 1e6f, &p->beta)))
        return st;
    int j = from < 0 ? b->n + from : from;
    if (j < 0 || j >= b->n)
        return fpi_cfg_error(b->cfg, s, FP_ECORRUPT, "from=%d refers to layer %d, outside 0..%d",
                             from, j, b->n - 1);
    l->n_src = 2;
    l->src[1] = j;
    fp_shape a = b->layers[j].out, o = l->in;
    int stride = a.w / o.w, sample = o.w / a.w;
    if (stride != a.h / o.h || sample != o.h / a.h || (stride > 1 && a.w % o.w) ||
        (sample > 1 && o.w % a.w))
        return fpi_cfg_error(b->cfg, s, FP_ECORRUPT,
                             "from layer %d (%dx%dx%d) and the previous layer (%dx%dx%d) differ by a non-integer factor",
                             j, a.w, a.h, a.c, o.w, o.h, o.c);
    l->out = l->in;
    l->flops = 3 * fp_shape_count(l->out);
    snprintf(l->desc, sizeof l->desc, "from %d %s", j, fp_activation_name(l->act));
    return FP_OK;
}

void fpi_shortcut_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    const fpi_shortcut_params *p = &l->p.shortcut;
    fp_shape a = l->src_shape[1], o = l->out;
    memcpy(out, src[0], fp_shape_count(o) * sizeof(float));
    int stride = a.w / o.w, sample = o.w / a.w;
    if (stride < 1) stride = 1;
    if (sample < 1) sample = 1;
    int minw = a.w < o.w ? a.w : o.w, minh = a.h < o.h ? a.h : o.h, minc = a.c < o.c ? a.c : o.c;
    for (int k = 0; k < minc; k++)
        for (int j = 0; j < minh; j++)
            for (int i = 0; i < minw; i++) {
                size_t oi = (size_t)i * sample + (size_t)o.w * ((size_t)j * sample + (size_t)o.h * k);
                size_t ai = (size_t)i * stride + (size_t)a.w * ((size_t)j * stride + (size_t)a.h * k);
                out[oi] = p->alpha * out[oi] + p->beta * src[1][ai];
            }
    fpi_activate(out, fp_shape_count(o), l->act);
}
