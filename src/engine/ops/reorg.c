/* reorg.c — [reorg]: darknet's space-to-depth. Darknet's kernel is not the
 * textbook space-to-depth: it walks the input as if it had c/stride² channels
 * of (w·stride)×(h·stride), so this reproduces its exact index arithmetic. */
#include <stdio.h>

#include "engine/net_impl.h"

fp_status fpi_reorg_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    fpi_reorg_params *p = &l->p.reorg;
    int flag;
    fp_status st;
    if ((st = fpi_cfg_int(b->cfg, s, "stride", 1, 1, 64, &p->stride)) ||
        (st = fpi_cfg_int(b->cfg, s, "reverse", 0, 0, 1, &p->reverse)))
        return st;
    if ((st = fpi_cfg_int(b->cfg, s, "flatten", 0, 0, 1, &flag))) return st;
    if (flag) return fpi_cfg_error(b->cfg, s, FP_EUNSUPPORTED, "flatten=1 is not supported");
    if ((st = fpi_cfg_int(b->cfg, s, "extra", 0, 0, 1 << 20, &flag))) return st;
    if (flag) return fpi_cfg_error(b->cfg, s, FP_EUNSUPPORTED, "extra= is not supported");
    int s2 = p->stride * p->stride;
    if (l->in.c % s2 || (!p->reverse && (l->in.w % p->stride || l->in.h % p->stride)))
        return fpi_cfg_error(b->cfg, s, FP_ECORRUPT,
                             "input %dx%dx%d cannot be reorganised with stride %d", l->in.w,
                             l->in.h, l->in.c, p->stride);
    if (p->reverse)
        l->out = (fp_shape){l->in.c / s2, l->in.h * p->stride, l->in.w * p->stride};
    else
        l->out = (fp_shape){l->in.c * s2, l->in.h / p->stride, l->in.w / p->stride};
    snprintf(l->desc, sizeof l->desc, "/%d%s", p->stride, p->reverse ? " reverse" : "");
    return fpi_check_shape(b->cfg, s, l->out);
}

void fpi_reorg_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    int st = l->p.reorg.stride, w = l->in.w, h = l->in.h, c = l->in.c;
    int oc = c / (st * st);
    for (int k = 0; k < c; k++)
        for (int j = 0; j < h; j++)
            for (int i = 0; i < w; i++) {
                size_t a = (size_t)i + (size_t)w * ((size_t)j + (size_t)h * k);
                int c2 = k % oc, off = k / oc;
                size_t w2 = (size_t)i * st + off % st, h2 = (size_t)j * st + off / st;
                size_t bidx = w2 + (size_t)w * st * (h2 + (size_t)h * st * c2);
                if (l->p.reorg.reverse)
                    out[bidx] = src[0][a];
                else
                    out[a] = src[0][bidx];
            }
}
