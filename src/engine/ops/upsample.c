/* upsample.c — [upsample]: nearest-neighbour upsampling by an integer
 * stride, times `scale`. */
#include <stdio.h>
#include <string.h>

#include "engine/net_impl.h"

fp_status fpi_upsample_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    fpi_upsample_params *p = &l->p.upsample;
    fp_status st;
    if ((st = fpi_cfg_int(b->cfg, s, "stride", 2, -64, 64, &p->stride)) ||
        (st = fpi_cfg_float(b->cfg, s, "scale", 1.f, -1e6f, 1e6f, &p->scale)))
        return st;
    if (p->stride < 1)
        return fpi_cfg_error(b->cfg, s, FP_EUNSUPPORTED, "stride=%d: only positive strides (upsampling) are supported", p->stride);
    l->out = (fp_shape){l->in.c, l->in.h * p->stride, l->in.w * p->stride};
    snprintf(l->desc, sizeof l->desc, "x%d", p->stride);
    return fpi_check_shape(b->cfg, s, l->out);
}

void fpi_upsample_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    (void)x;
    const fpi_upsample_params *p = &l->p.upsample;
    int w = l->in.w, h = l->in.h, st = p->stride;
    size_t ow = (size_t)w * st;
    /* each input row once into its first output row, which the next st - 1
     * rows copy (2 ns a value element by element: 0.17 ms of yolov3-tiny) */
    for (int k = 0; k < l->in.c; k++)
        for (int j = 0; j < h; j++) {
            const float *in = src[0] + ((size_t)k * h + j) * w;
            float *o = out + ((size_t)k * h + j) * st * ow;
            if (st == 2) {
                for (int i = 0; i < w; i++) o[2 * i] = o[2 * i + 1] = p->scale * in[i];
            } else {
                for (int i = 0; i < w; i++)
                    for (int s = 0; s < st; s++) o[(size_t)i * st + s] = p->scale * in[i];
            }
            for (int r = 1; r < st; r++) memcpy(o + r * ow, o, ow * sizeof *o);
        }
}
