/* dropout.c — [dropout]: the identity at inference. [cost] — a training
 * loss; at inference it passes its input through. */
#include <stdio.h>
#include <string.h>

#include "engine/net_impl.h"

fp_status fpi_dropout_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    float prob;
    fp_status st = fpi_cfg_float(b->cfg, s, "probability", .5f, 0.f, 1.f, &prob);
    if (st) return st;
    l->out = l->in;
    snprintf(l->desc, sizeof l->desc, "p=%.2f (identity)", (double)prob);
    return FP_OK;
}

void fpi_dropout_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    memcpy(out, src[0], fp_shape_count(l->out) * sizeof(float));
}

fp_status fpi_cost_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    l->out = l->in;
    snprintf(l->desc, sizeof l->desc, "(identity)");
    return FP_OK;
}

void fpi_cost_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    memcpy(out, src[0], fp_shape_count(l->out) * sizeof(float));
}
