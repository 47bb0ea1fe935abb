/* conv.c — [convolutional]: grouped 2-D convolution + bias + activation.
 * Reference kernel: im2col then a plain triple loop, split over output
 * channels across the thread pool. Batch-norm is folded into the weights at
 * setup, so the kernel only sees a kernel and a bias. */
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "engine/fast/fast.h"
#include "engine/net_impl.h"

fp_status fpi_conv_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    const fpi_cfg *cfg = b->cfg;
    fpi_conv_params *p = &l->p.conv;
    int pad_flag = 0, padding = 0;
    fp_status st;
    if ((st = fpi_cfg_int(cfg, s, "filters", 1, 1, FP_MAX_DIM, &p->filters)) ||
        (st = fpi_cfg_int(cfg, s, "size", 1, 1, 64, &p->size)) ||
        (st = fpi_cfg_int(cfg, s, "stride", 1, 1, 64, &p->stride)) ||
        (st = fpi_cfg_int(cfg, s, "pad", 0, 0, 1, &pad_flag)) ||
        (st = fpi_cfg_int(cfg, s, "padding", 0, 0, 64, &padding)) ||
        (st = fpi_cfg_int(cfg, s, "groups", 1, 1, FP_MAX_DIM, &p->groups)) ||
        (st = fpi_cfg_int(cfg, s, "batch_normalize", 0, 0, 1, &p->bn)) ||
        (st = fpi_parse_activation(cfg, s, "logistic", &l->act)))
        return st;
    int flag;
    if ((st = fpi_cfg_int(cfg, s, "binary", 0, 0, 1, &flag))) return st;
    if (flag) return fpi_cfg_error(cfg, s, FP_EUNSUPPORTED, "binary=1 (binarised weights) is not supported");
    if ((st = fpi_cfg_int(cfg, s, "xnor", 0, 0, 1, &flag))) return st;
    if (flag) return fpi_cfg_error(cfg, s, FP_EUNSUPPORTED, "xnor=1 is not supported");
    if ((st = fpi_cfg_int(cfg, s, "flipped", 0, 0, 1, &flag))) return st;
    if (flag) return fpi_cfg_error(cfg, s, FP_EUNSUPPORTED, "flipped=1 is not supported");
    p->pad = pad_flag ? p->size / 2 : padding;
    if (l->in.c % p->groups || p->filters % p->groups)
        return fpi_cfg_error(cfg, s, FP_ECORRUPT,
                             "groups=%d must divide the input channels (%d) and filters (%d)",
                             p->groups, l->in.c, p->filters);
    int oh = (l->in.h + 2 * p->pad - p->size) / p->stride + 1;
    int ow = (l->in.w + 2 * p->pad - p->size) / p->stride + 1;
    if (l->in.h + 2 * p->pad < p->size || l->in.w + 2 * p->pad < p->size)
        return fpi_cfg_error(cfg, s, FP_ECORRUPT, "kernel %d larger than the padded input %dx%d",
                             p->size, l->in.w + 2 * p->pad, l->in.h + 2 * p->pad);
    l->out = (fp_shape){p->filters, oh, ow};
    if ((st = fpi_check_shape(cfg, s, l->out))) return st;
    size_t cg = (size_t)(l->in.c / p->groups);
    size_t ksz = cg * (size_t)p->size * (size_t)p->size;
    l->n_params = (size_t)p->filters * (1 + (p->bn ? 3 : 0)) + (size_t)p->filters * ksz;
    l->flops = 2ull * p->filters * ksz * (uint64_t)oh * (uint64_t)ow;
    int direct = p->size == 1 && p->stride == 1 && p->pad == 0;
    l->workspace = direct ? 0 : ksz * (size_t)oh * (size_t)ow;
    snprintf(l->desc, sizeof l->desc, "%d %dx%d/%d%s%s %s", p->filters, p->size, p->size, p->stride,
             p->groups > 1 ? " g" : "", p->bn ? " bn" : "", fp_activation_name(l->act));
    if (p->groups > 1) {
        size_t n = strlen(l->desc);
        snprintf(l->desc + n, sizeof l->desc - n, " g=%d", p->groups);
    }
    return FP_OK;
}

/* Unrolls the (cg, h, w) input into a (cg*size*size) x (oh*ow) matrix, zero
 * where the window falls into the padding. */
static void fpi_im2col(const float *im, int cg, int h, int w, int size, int stride, int pad,
                       int oh, int ow, float *col)
{
    for (int c = 0; c < cg * size * size; c++) {
        int kx = c % size, ky = (c / size) % size, ch = c / (size * size);
        float *dst = col + (size_t)c * oh * ow;
        for (int y = 0; y < oh; y++) {
            int iy = y * stride + ky - pad;
            for (int x = 0; x < ow; x++) {
                int ix = x * stride + kx - pad;
                dst[y * ow + x] = (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                      ? 0.f
                                      : im[((size_t)ch * h + iy) * w + ix];
            }
        }
    }
}

typedef struct {
    const fpi_layer *l;
    const float *col; /* k x n matrix for the current group */
    float *out;       /* m x n output block for the current group */
    const float *w;   /* m x k weights for the current group */
    const float *bias;/* m biases */
    int m, k, n;      /* GEMM sizes */
    int chunk;        /* rows per task */
} fpi_conv_task;

/* Computes rows [i*chunk, (i+1)*chunk) of out = w * col + bias, activated. */
static void fpi_conv_rows(int t, void *vctx)
{
    const fpi_conv_task *c = vctx;
    int r0 = t * c->chunk, r1 = r0 + c->chunk < c->m ? r0 + c->chunk : c->m;
    for (int i = r0; i < r1; i++) {
        float *restrict o = c->out + (size_t)i * c->n;
        float bias = c->bias[i];
        for (int j = 0; j < c->n; j++) o[j] = 0;
        const float *wr = c->w + (size_t)i * c->k;
        for (int kk = 0; kk < c->k; kk++) {
            float a = wr[kk];
            const float *restrict br = c->col + (size_t)kk * c->n;
            for (int j = 0; j < c->n; j++) o[j] += a * br[j];
        }
        for (int j = 0; j < c->n; j++) o[j] += bias;
        fpi_activate(o, (size_t)c->n, c->l->act);
    }
}

void fpi_conv_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    if (fpi_conv_fast(l, src, out, x)) return;
    const fpi_conv_params *p = &l->p.conv;
    int cg = l->in.c / p->groups, m = p->filters / p->groups;
    int k = cg * p->size * p->size, n = l->out.h * l->out.w;
    for (int g = 0; g < p->groups; g++) {
        const float *im = src[0] + (size_t)g * cg * l->in.h * l->in.w;
        const float *col = im;
        if (l->workspace) {
            fpi_im2col(im, cg, l->in.h, l->in.w, p->size, p->stride, p->pad, l->out.h, l->out.w,
                       x->workspace);
            col = x->workspace;
        }
        fpi_conv_task task = {l, col, out + (size_t)g * m * n, l->kernel + (size_t)g * m * k,
                              l->bias + (size_t)g * m, m, k, n, 0};
        task.chunk = m >= 64 ? 8 : (m >= 8 ? 2 : 1);
        fpi_parallel_for(x->pool, (m + task.chunk - 1) / task.chunk, fpi_conv_rows, &task);
    }
}
