/* fc_fast.c — fast [connected]: out = W·x as sgemv over four row blocks
 * (the layer is bound by reading W, so each thread streams its own share of
 * the weights once), then bias and activation. */
#include "engine/fast/fast.h"

typedef struct {
    const fpi_layer *l;   /* the layer */
    const fpi_blas *blas; /* sgemv */
    const float *in;      /* flattened input, k floats */
    float *out;           /* m outputs */
    int m, k;             /* outputs, inputs */
    int mb;               /* outputs per task */
} fpi_fc_fast_task;

/* Task t computes outputs [t*mb, (t+1)*mb). */
static void fpi_fc_block(int t, void *vctx)
{
    const fpi_fc_fast_task *c = vctx;
    int i0 = t * c->mb, i1 = i0 + c->mb < c->m ? i0 + c->mb : c->m;
    c->blas->sgemv(FPI_CBLAS_ROW_MAJOR, FPI_CBLAS_NO_TRANS, i1 - i0, c->k, 1.f,
                   c->l->kernel + (size_t)i0 * c->k, c->k, c->in, 1, 0.f, c->out + i0, 1);
    for (int i = i0; i < i1; i++) fpi_bias_act(c->out + i, 1, c->l->bias[i], c->l->act);
}

int fpi_connected_fast(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    const fpi_blas *blas = fpi_blas_get();
    if (!blas) return 0;
    int m = l->out.c;
    fpi_fc_fast_task t = {l, blas, src[0], out, m, (int)fp_shape_count(l->in), 0};
    /* four blocks whatever the thread count, so results do not depend on it */
    t.mb = ((m + 3) / 4 + 15) & ~15;
    fpi_parallel_for(x->pool, (m + t.mb - 1) / t.mb, fpi_fc_block, &t);
    return 1;
}
