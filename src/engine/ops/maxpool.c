/* maxpool.c — [maxpool] with darknet's padding rule: `padding` (default
 * size-1) extra cells in total, pad/2 of them before the first row/column,
 * so a 2x2/1 pool (yolov2-tiny) pads only on the bottom/right. */
#include <float.h>
#include <stdio.h>

#include "engine/fast/fast.h"
#include "engine/net_impl.h"

fp_status fpi_maxpool_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    fpi_pool_params *p = &l->p.pool;
    fp_status st;
    if ((st = fpi_cfg_int(b->cfg, s, "stride", 1, 1, 256, &p->stride)) ||
        (st = fpi_cfg_int(b->cfg, s, "size", p->stride, 1, 256, &p->size)) ||
        (st = fpi_cfg_int(b->cfg, s, "padding", p->size - 1, 0, 256, &p->pad)))
        return st;
    if (l->in.w + p->pad < p->size || l->in.h + p->pad < p->size)
        return fpi_cfg_error(b->cfg, s, FP_ECORRUPT, "window %d larger than the padded input %dx%d",
                             p->size, l->in.w + p->pad, l->in.h + p->pad);
    l->out = (fp_shape){l->in.c, (l->in.h + p->pad - p->size) / p->stride + 1,
                        (l->in.w + p->pad - p->size) / p->stride + 1};
    l->flops = (uint64_t)fp_shape_count(l->out) * (uint64_t)(p->size * p->size);
    snprintf(l->desc, sizeof l->desc, "%dx%d/%d", p->size, p->size, p->stride);
    return fpi_check_shape(b->cfg, s, l->out);
}

void fpi_maxpool_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    if (fpi_maxpool_fast(l, src, out, x)) return;
    const fpi_pool_params *p = &l->p.pool;
    int off = -p->pad / 2;
    for (int k = 0; k < l->out.c; k++) {
        const float *in = src[0] + (size_t)k * l->in.h * l->in.w;
        for (int i = 0; i < l->out.h; i++)
            for (int j = 0; j < l->out.w; j++) {
                float m = -FLT_MAX;
                for (int n = 0; n < p->size; n++) {
                    int y = off + i * p->stride + n;
                    if (y < 0 || y >= l->in.h) continue;
                    for (int mm = 0; mm < p->size; mm++) {
                        int xx = off + j * p->stride + mm;
                        if (xx < 0 || xx >= l->in.w) continue;
                        float v = in[(size_t)y * l->in.w + xx];
                        if (v > m) m = v;
                    }
                }
                out[((size_t)k * l->out.h + i) * l->out.w + j] = m;
            }
    }
}
