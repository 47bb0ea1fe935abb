/* connected.c — [connected]: fully connected layer over the flattened input
 * (out = W·x + b, W stored outputs×inputs), optional batch-norm folded at
 * setup. Reference kernel: one dot product per output, split across threads. */
#include <stdio.h>

#include "engine/fast/fast.h"
#include "engine/net_impl.h"

fp_status fpi_connected_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    fpi_connected_params *p = &l->p.fc;
    fp_status st;
    if ((st = fpi_cfg_int(b->cfg, s, "output", 1, 1, 1 << 24, &p->outputs)) ||
        (st = fpi_cfg_int(b->cfg, s, "batch_normalize", 0, 0, 1, &p->bn)) ||
        (st = fpi_parse_activation(b->cfg, s, "logistic", &l->act)))
        return st;
    size_t in = fp_shape_count(l->in);
    if ((double)in * (double)p->outputs > (double)(1u << 31))
        return fpi_cfg_error(b->cfg, s, FP_ETOOBIG, "%zu x %d weights is too many", in, p->outputs);
    l->out = (fp_shape){p->outputs, 1, 1};
    l->n_params = (size_t)p->outputs * (1 + in + (p->bn ? 3 : 0));
    l->flops = 2ull * in * (uint64_t)p->outputs;
    snprintf(l->desc, sizeof l->desc, "%zu -> %d%s %s", in, p->outputs, p->bn ? " bn" : "",
             fp_activation_name(l->act));
    return FP_OK;
}

typedef struct {
    const fpi_layer *l;
    const float *in;
    float *out;
    size_t k;
    int chunk;
} fpi_fc_task;

static void fpi_fc_rows(int t, void *vctx)
{
    const fpi_fc_task *c = vctx;
    int n = c->l->out.c;
    int r0 = t * c->chunk, r1 = r0 + c->chunk < n ? r0 + c->chunk : n;
    for (int i = r0; i < r1; i++) {
        const float *w = c->l->kernel + (size_t)i * c->k;
        float sum = 0;
        for (size_t j = 0; j < c->k; j++) sum += c->in[j] * w[j];
        c->out[i] = sum + c->l->bias[i];
    }
    fpi_activate(c->out + r0, (size_t)(r1 - r0), c->l->act);
}

void fpi_connected_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    if (fpi_connected_fast(l, src, out, x)) return;
    fpi_fc_task t = {l, src[0], out, fp_shape_count(l->in), 16};
    fpi_parallel_for(x->pool, (l->out.c + t.chunk - 1) / t.chunk, fpi_fc_rows, &t);
}
