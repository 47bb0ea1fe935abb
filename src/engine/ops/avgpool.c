/* avgpool.c — [avgpool]: global average over each channel (C×H×W → C×1×1). */
#include <stdio.h>

#include "engine/net_impl.h"

fp_status fpi_avgpool_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    l->out = (fp_shape){l->in.c, 1, 1};
    l->flops = fp_shape_count(l->in);
    snprintf(l->desc, sizeof l->desc, "global");
    return FP_OK;
}

void fpi_avgpool_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    size_t hw = (size_t)l->in.h * l->in.w;
    for (int k = 0; k < l->in.c; k++) {
        float sum = 0;
        for (size_t i = 0; i < hw; i++) sum += src[0][k * hw + i];
        out[k] = sum / (float)hw;
    }
}
