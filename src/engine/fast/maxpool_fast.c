/* maxpool_fast.c — fast [maxpool]: channels split over the pool; each
 * output row takes the running maximum window row by window row, with the
 * inner loop along output columns free of bounds checks (columns whose
 * window crosses the border are done one by one). Comparisons run in the
 * reference kernel's order, so the result is identical. */
#include <float.h>

#include "engine/fast/fast.h"

typedef struct {
    const fpi_layer *l; /* the layer */
    const float *in;    /* input */
    float *out;         /* output */
} fpi_pool_fast_task;

/* Output channel c. */
FPI_SIMD_CLONES static void fpi_maxpool_channel(int c, void *vctx)
{
    const fpi_pool_fast_task *t = vctx;
    const fpi_layer *l = t->l;
    const fpi_pool_params *p = &l->p.pool;
    int h = l->in.h, w = l->in.w, oh = l->out.h, ow = l->out.w, k = p->size, s = p->stride;
    int off = -p->pad / 2;
    const float *plane = t->in + (size_t)c * h * w;
    float *o = t->out + (size_t)c * oh * ow;
    /* columns whose whole window lies inside: off + x*s >= 0, off + x*s + k - 1 < w */
    int xa = off < 0 ? (-off + s - 1) / s : 0;
    int lim = w - k - off;
    int xb = lim < 0 ? 0 : lim / s + 1;
    if (xb > ow) xb = ow;
    if (xa > xb) xa = xb;
    for (int y = 0; y < oh; y++) {
        float *restrict orow = o + (size_t)y * ow;
        for (int x = 0; x < ow; x++) orow[x] = -FLT_MAX;
        for (int ky = 0; ky < k; ky++) {
            int iy = off + y * s + ky;
            if (iy < 0 || iy >= h) continue;
            const float *restrict row = plane + (size_t)iy * w;
            for (int kx = 0; kx < k; kx++) {
                for (int x = 0; x < xa; x++) {
                    int ix = off + x * s + kx;
                    if (ix >= 0 && ix < w && row[ix] > orow[x]) orow[x] = row[ix];
                }
                int base = off + kx;
                if (s == 1) {
                    for (int x = xa; x < xb; x++) {
                        float v = row[x + base];
                        orow[x] = v > orow[x] ? v : orow[x];
                    }
                } else if (s == 2) {
                    for (int x = xa; x < xb; x++) {
                        float v = row[2 * x + base];
                        orow[x] = v > orow[x] ? v : orow[x];
                    }
                } else {
                    for (int x = xa; x < xb; x++) {
                        float v = row[x * s + base];
                        orow[x] = v > orow[x] ? v : orow[x];
                    }
                }
                for (int x = xb; x < ow; x++) {
                    int ix = off + x * s + kx;
                    if (ix >= 0 && ix < w && row[ix] > orow[x]) orow[x] = row[ix];
                }
            }
        }
    }
}

int fpi_maxpool_fast(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    if (!fpi_fast_enabled()) return 0;
    fpi_pool_fast_task t = {l, src[0], out};
    fpi_parallel_for(x->pool, l->out.c, fpi_maxpool_channel, &t);
    return 1;
}
