/* conv_fast.c — fast [convolutional] kernels.
 *
 * GEMM path (input channels per group > 1): out = W (m x k) · col (k x n)
 * with sgemm, where col is the im2col matrix (or the input itself for a
 * 1x1/1 convolution without padding). Work is split over the engine's pool:
 *   - by output columns (n) into tiles whose im2col block stays in cache:
 *     each task unrolls its own columns, multiplies, then adds the bias and
 *     applies the activation while the tile is still hot;
 *   - by output rows (m) when the layer is deep and small (m > n, e.g. 13x13
 *     maps with 1024 filters): one shared im2col, each thread multiplies its
 *     share of the filters, so no thread repacks the whole weight matrix.
 * Direct path (one input channel per group: depthwise, with any channel
 * multiplier): a per-channel loop whose inner loop runs along output
 * columns, summing in the same order as the reference kernel.
 * Tiles use disjoint parts of the layer's workspace (k x n floats, the
 * reference kernel's size), so nothing is allocated per frame.
 * A layer oneDNN was prepared for (dnnl.c) goes there first. */
#include <string.h>

#include "engine/fast/fast.h"

/* Column tiles: (k + m) x nb floats (im2col block + output tile) of about
 * 512 KiB stay in L2 next to sgemm's packed panels; narrower than 256
 * columns, sgemm repacks the weights too often. */
enum { FPI_TILE_FLOATS = 1 << 17, FPI_TILE_MIN_COLS = 256 };

/* Work is cut into at least FPI_BLOCKS pieces (for up to that many threads)
 * of at least FPI_MIN_BLOCK rows or columns. */
enum { FPI_BLOCKS = 4, FPI_MIN_BLOCK = 64 };

/* Largest cg*size*size done by the direct kernel instead of sgemm. */
enum { FPI_DIRECT_MAX_K = 32 };

FPI_SIMD_CLONES void fpi_bias_act(float *o, size_t n, float b, fp_activation act)
{
    switch (act) {
    case FP_ACT_LEAKY:
        /* v > 0 ? v : .1f * v, value for value, as a multiply by one of two
         * constants: written as the reference writes it, the compiler keeps
         * a branch per value (it may not multiply speculatively under
         * -ftrapping-math), 1.2 ns a value on random signs (an AMD EPYC),
         * where this form vectorises */
        for (size_t i = 0; i < n; i++) {
            float v = o[i] + b;
            o[i] = v * (v > 0 ? 1.f : .1f);
        }
        break;
    case FP_ACT_RELU:
        for (size_t i = 0; i < n; i++) {
            float v = o[i] + b;
            o[i] = v > 0 ? v : 0;
        }
        break;
    default:
        for (size_t i = 0; i < n; i++) o[i] += b;
        fpi_activate(o, n, act);
        break;
    }
}

/* Geometry of one convolution group. */
typedef struct {
    const float *im;  /* cg x h x w input of the group */
    int cg, h, w;     /* its channels and size */
    int size, stride, pad; /* kernel */
    int ow;           /* output columns */
} fpi_im_geom;

/* Writes im2col rows [r0, r1) for output positions [j0, j1) to
 * col[r * ld + (j - j0)]; zero where the window is in the padding. */
static void fpi_im2col_block(const fpi_im_geom *g, int r0, int r1, int j0, int j1, float *col, size_t ld)
{
    int ss = g->size * g->size, s = g->stride;
    for (int r = r0; r < r1; r++) {
        int kx = r % g->size, ky = (r / g->size) % g->size, ch = r / ss;
        const float *plane = g->im + (size_t)ch * g->h * g->w;
        float *dst = col + (size_t)r * ld;
        /* output columns x whose input column x*s + kx - pad lies in [0, w) */
        int xlo = g->pad > kx ? (g->pad - kx + s - 1) / s : 0;
        int lim = g->w - 1 + g->pad - kx;
        int xhi = lim < 0 ? -1 : lim / s; /* inclusive */
        for (int j = j0; j < j1;) {
            int y = j / g->ow, x0 = j % g->ow;
            int x1 = x0 + (j1 - j) < g->ow ? x0 + (j1 - j) : g->ow;
            float *d = dst + (j - j0); /* d[x - x0] for x in [x0, x1) */
            int iy = y * s + ky - g->pad;
            if (iy < 0 || iy >= g->h) {
                memset(d, 0, (size_t)(x1 - x0) * sizeof(float));
            } else {
                const float *row = plane + (size_t)iy * g->w;
                int a = xlo > x0 ? xlo : x0, b = xhi + 1 < x1 ? xhi + 1 : x1;
                if (a > b) a = b = x1;
                for (int x = x0; x < a; x++) d[x - x0] = 0;
                int off = kx - g->pad;
                if (s == 1) {
                    if (b > a) memcpy(d + (a - x0), row + a + off, (size_t)(b - a) * sizeof(float));
                } else {
                    for (int x = a; x < b; x++) d[x - x0] = row[x * s + off];
                }
                for (int x = b; x < x1; x++) d[x - x0] = 0;
            }
            j += x1 - x0;
        }
    }
}

typedef struct {
    const fpi_layer *l;     /* the layer */
    const fpi_blas *blas;   /* sgemm */
    fpi_im_geom g;          /* the group's input */
    const float *w;         /* m x k weights of the group */
    const float *bias;      /* m biases of the group */
    float *out;             /* m x n output of the group */
    float *ws;              /* workspace (k x n floats), NULL when im2col is not needed */
    int m, k, n;            /* GEMM sizes */
    int nb;                 /* columns per task (column split) */
    int mb;                 /* rows per task (row split, and im2col rows per task) */
    int tiles, tasks;       /* column split: tiles, and tasks sharing them round-robin */
} fpi_gemm_conv;

/* Column split: task t computes column tiles t, t + tasks, t + 2*tasks, ...
 * (tile i = output columns [i*nb, (i+1)*nb)), unrolling each into its own
 * k x nb slot of the workspace, so only tasks*k*nb floats are ever touched. */
static void fpi_conv_cols(int t, void *vctx)
{
    const fpi_gemm_conv *c = vctx;
    for (int tile = t; tile < c->tiles; tile += c->tasks) {
        int j0 = tile * c->nb, j1 = j0 + c->nb < c->n ? j0 + c->nb : c->n, nb = j1 - j0;
        const float *b = c->g.im + j0;
        int ldb = c->n;
        if (c->ws) {
            float *col = c->ws + (size_t)t * c->k * c->nb;
            fpi_im2col_block(&c->g, 0, c->k, j0, j1, col, (size_t)nb);
            b = col;
            ldb = nb;
        }
        c->blas->sgemm(FPI_CBLAS_ROW_MAJOR, FPI_CBLAS_NO_TRANS, FPI_CBLAS_NO_TRANS, c->m, nb, c->k,
                       1.f, c->w, c->k, b, ldb, 0.f, c->out + j0, c->n);
        for (int i = 0; i < c->m; i++)
            fpi_bias_act(c->out + (size_t)i * c->n + j0, (size_t)nb, c->bias[i], c->l->act);
    }
}

/* Row split, step 1: task t unrolls im2col rows [t*mb, (t+1)*mb). */
static void fpi_conv_im2col_rows(int t, void *vctx)
{
    const fpi_gemm_conv *c = vctx;
    int r0 = t * c->mb, r1 = r0 + c->mb < c->k ? r0 + c->mb : c->k;
    fpi_im2col_block(&c->g, r0, r1, 0, c->n, c->ws, (size_t)c->n);
}

/* Row split, step 2: task t computes filters [t*mb, (t+1)*mb). */
static void fpi_conv_rows_fast(int t, void *vctx)
{
    const fpi_gemm_conv *c = vctx;
    int i0 = t * c->mb, i1 = i0 + c->mb < c->m ? i0 + c->mb : c->m;
    const float *b = c->ws ? c->ws : c->g.im;
    c->blas->sgemm(FPI_CBLAS_ROW_MAJOR, FPI_CBLAS_NO_TRANS, FPI_CBLAS_NO_TRANS, i1 - i0, c->n, c->k,
                   1.f, c->w + (size_t)i0 * c->k, c->k, b, c->n, 0.f, c->out + (size_t)i0 * c->n, c->n);
    for (int i = i0; i < i1; i++)
        fpi_bias_act(c->out + (size_t)i * c->n, (size_t)c->n, c->bias[i], c->l->act);
}

/* One group through sgemm, split as described at the top of the file. The
 * split depends on the shape only, never on the thread count, so every
 * output value comes from the same sgemm call whatever the threads: results
 * do not depend on the thread count (OpenBLAS picks different inner kernels
 * for different block shapes). */
static void fpi_conv_gemm(fpi_gemm_conv *c, struct fpi_pool *pool)
{
    int threads = fpi_pool_threads(pool);
    if (c->m > c->n && c->m >= 2 * FPI_MIN_BLOCK) {
        int blocks = c->m / FPI_MIN_BLOCK < FPI_BLOCKS ? c->m / FPI_MIN_BLOCK : FPI_BLOCKS;
        if (c->ws) {
            c->mb = (c->k + FPI_BLOCKS - 1) / FPI_BLOCKS;
            fpi_parallel_for(pool, (c->k + c->mb - 1) / c->mb, fpi_conv_im2col_rows, c);
        }
        c->mb = ((c->m + blocks - 1) / blocks + 15) & ~15;
        fpi_parallel_for(pool, (c->m + c->mb - 1) / c->mb, fpi_conv_rows_fast, c);
        return;
    }
    /* column tiles: small enough that a tile's im2col block and output stay
     * in L2, wide enough for sgemm, and enough of them for a few threads */
    size_t want = ((size_t)(c->k + c->m) * (size_t)c->n + FPI_TILE_FLOATS - 1) / FPI_TILE_FLOATS;
    size_t most = (size_t)(c->n / FPI_TILE_MIN_COLS);
    if (want < FPI_BLOCKS) want = FPI_BLOCKS;
    if (most > (size_t)(c->n / FPI_MIN_BLOCK)) most = (size_t)(c->n / FPI_MIN_BLOCK);
    int tiles = (int)(want < most ? want : most);
    if (tiles < 1) tiles = 1;
    c->nb = (c->n + tiles - 1) / tiles;
    if (c->nb > 16) c->nb = (c->nb + 15) & ~15;
    c->tiles = (c->n + c->nb - 1) / c->nb;
    c->tasks = c->tiles < threads ? c->tiles : threads;
    fpi_parallel_for(pool, c->tasks, fpi_conv_cols, c);
}

typedef struct {
    const fpi_layer *l;   /* the layer */
    const float *in;      /* whole input */
    float *out;           /* whole output */
    int mult;             /* output channels per input channel */
} fpi_dw_task;

/* Depthwise: output channel f reads only input channel f / mult. */
FPI_SIMD_CLONES static void fpi_conv_depthwise_channel(int f, void *vctx)
{
    const fpi_dw_task *t = vctx;
    const fpi_layer *l = t->l;
    const fpi_conv_params *p = &l->p.conv;
    int h = l->in.h, w = l->in.w, oh = l->out.h, ow = l->out.w, k = p->size, s = p->stride;
    const float *plane = t->in + (size_t)(f / t->mult) * h * w;
    const float *wf = l->kernel + (size_t)f * k * k;
    float *o = t->out + (size_t)f * oh * ow;
    for (int y = 0; y < oh; y++) {
        float *restrict orow = o + (size_t)y * ow;
        for (int x = 0; x < ow; x++) orow[x] = 0;
        for (int ky = 0; ky < k; ky++) {
            int iy = y * s + ky - p->pad;
            if (iy < 0 || iy >= h) continue;
            const float *restrict row = plane + (size_t)iy * w;
            for (int kx = 0; kx < k; kx++) {
                float a = wf[ky * k + kx];
                int off = kx - p->pad;
                int x0 = -off > 0 ? (-off + s - 1) / s : 0;
                int lim = w - 1 - off;
                int x1 = lim < 0 ? 0 : lim / s + 1;
                if (x1 > ow) x1 = ow;
                if (s == 1)
                    for (int x = x0; x < x1; x++) orow[x] += a * row[x + off];
                else
                    for (int x = x0; x < x1; x++) orow[x] += a * row[x * s + off];
            }
        }
    }
    fpi_bias_act(o, (size_t)oh * ow, l->bias[f], l->act);
}

typedef struct {
    const fpi_layer *l;   /* the layer (groups == 1) */
    const float *in;      /* input */
    float *out;           /* output */
    int rows;             /* output rows per task */
} fpi_direct_task;

/* Accumulates filters f..f+nf-1 (nf is 4 or 1) of output row y: for each
 * tap, one pass along the row, so the input row and the nf output rows stay
 * in L1. Same summation order as the reference (taps in (c, ky, kx) order,
 * padding skipped: adding 0 changes nothing). */
FPI_SIMD_CLONES static void fpi_conv_direct_row(const fpi_direct_task *t, int y, int f, int nf)
{
    const fpi_layer *l = t->l;
    const fpi_conv_params *p = &l->p.conv;
    int h = l->in.h, w = l->in.w, oh = l->out.h, ow = l->out.w, k = p->size, s = p->stride;
    size_t plane = (size_t)oh * ow, ksz = (size_t)l->in.c * k * k;
    float *restrict o0 = t->out + (size_t)f * plane + (size_t)y * ow;
    float *restrict o1 = o0 + (nf > 1 ? plane : 0);
    float *restrict o2 = o0 + (nf > 2 ? 2 * plane : 0);
    float *restrict o3 = o0 + (nf > 3 ? 3 * plane : 0);
    const float *wf = l->kernel + (size_t)f * ksz;
    for (int x = 0; x < ow; x++) o0[x] = 0;
    if (nf == 4)
        for (int x = 0; x < ow; x++) o1[x] = o2[x] = o3[x] = 0;
    for (int c = 0; c < l->in.c; c++)
        for (int ky = 0; ky < k; ky++) {
            int iy = y * s + ky - p->pad;
            if (iy < 0 || iy >= h) continue;
            const float *restrict row = t->in + ((size_t)c * h + iy) * w;
            for (int kx = 0; kx < k; kx++) {
                size_t tap = ((size_t)c * k + ky) * k + kx;
                int off = kx - p->pad;
                int x0 = -off > 0 ? (-off + s - 1) / s : 0;
                int lim = w - 1 - off;
                int x1 = lim < 0 ? 0 : lim / s + 1;
                if (x1 > ow) x1 = ow;
                float a0 = wf[tap];
                if (nf == 1) {
                    for (int x = x0; x < x1; x++) o0[x] += a0 * row[x * s + off];
                    continue;
                }
                float a1 = wf[ksz + tap], a2 = wf[2 * ksz + tap], a3 = wf[3 * ksz + tap];
                if (s == 1) {
                    for (int x = x0; x < x1; x++) {
                        float v = row[x + off];
                        o0[x] += a0 * v;
                        o1[x] += a1 * v;
                        o2[x] += a2 * v;
                        o3[x] += a3 * v;
                    }
                } else {
                    for (int x = x0; x < x1; x++) {
                        float v = row[x * s + off];
                        o0[x] += a0 * v;
                        o1[x] += a1 * v;
                        o2[x] += a2 * v;
                        o3[x] += a3 * v;
                    }
                }
            }
        }
    for (int i = 0; i < nf; i++) fpi_bias_act(o0 + (size_t)i * plane, (size_t)ow, l->bias[f + i], l->act);
}

/* Direct convolution, output rows [t*rows, (t+1)*rows), every filter. */
static void fpi_conv_direct_rows(int t, void *vctx)
{
    const fpi_direct_task *c = vctx;
    int y0 = t * c->rows, y1 = y0 + c->rows < c->l->out.h ? y0 + c->rows : c->l->out.h;
    int filters = c->l->p.conv.filters;
    for (int y = y0; y < y1; y++) {
        int f = 0;
        for (; f + 4 <= filters; f += 4) fpi_conv_direct_row(c, y, f, 4);
        for (; f < filters; f++) fpi_conv_direct_row(c, y, f, 1);
    }
}

int fpi_conv_fast(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    if (!fpi_fast_enabled()) return 0;
    if (fpi_conv_first(l, src, out, x) || fpi_conv_dnnl(l, src, out, x)) return 1;
    const fpi_conv_params *p = &l->p.conv;
    int cg = l->in.c / p->groups, m = p->filters / p->groups;
    if (cg == 1) {
        fpi_dw_task t = {l, src[0], out, m};
        fpi_parallel_for(x->pool, p->filters, fpi_conv_depthwise_channel, &t);
        return 1;
    }
    int k = cg * p->size * p->size, n = l->out.h * l->out.w;
    if (p->groups == 1 && k <= FPI_DIRECT_MAX_K && l->out.w >= 16) {
        fpi_direct_task t = {l, src[0], out, 0};
        int threads = fpi_pool_threads(x->pool);
        t.rows = (l->out.h + 4 * threads - 1) / (4 * threads);
        fpi_parallel_for(x->pool, (l->out.h + t.rows - 1) / t.rows, fpi_conv_direct_rows, &t);
        return 1;
    }
    const fpi_blas *blas = fpi_blas_get();
    if (!blas) return 0;
    for (int g = 0; g < p->groups; g++) {
        fpi_gemm_conv c = {l, blas,
                           {src[0] + (size_t)g * cg * l->in.h * l->in.w, cg, l->in.h, l->in.w,
                            p->size, p->stride, p->pad, l->out.w},
                           l->kernel + (size_t)g * m * k, l->bias + (size_t)g * m,
                           out + (size_t)g * m * n, l->workspace ? x->workspace : NULL, m, k, n, 0, 0, 0, 0};
        fpi_conv_gemm(&c, x->pool);
    }
    return 1;
}
