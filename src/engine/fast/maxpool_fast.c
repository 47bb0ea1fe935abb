/* maxpool_fast.c — fast [maxpool]: channels split over the pool; 2x2 windows
 * (every YOLO-tiny pool) are taken whole, output by output; otherwise each
 * output row takes the running maximum window row by window row, with the
 * inner loop along output columns free of bounds checks (columns whose
 * window crosses the border are done one by one). Comparisons run in the
 * reference kernel's order, so the result is identical. fpi_maxpool_vec
 * pools maps in oneDNN's layouts, a vector of channels at a time (fast/dnnl.c
 * runs it on a convolution's output while that is in cache). */
#include <float.h>
#include <string.h>

#include "engine/fast/fast.h"

typedef struct {
    const fpi_layer *l; /* the layer */
    const float *in;    /* input */
    float *out;         /* output */
    int per;            /* channels per task */
} fpi_pool_fast_task;

/* A 2x2 window over rows r and r + w whose columns start at ix0, some of
 * them outside [0, w): those are skipped, as the reference does. */
static inline float fpi_maxpool_2x2_edge(const float *r, int w, int ix0)
{
    float m = -FLT_MAX;
    for (int ky = 0; ky < 2; ky++)
        for (int ix = ix0; ix < ix0 + 2; ix++)
            if (ix >= 0 && ix < w && r[(size_t)ky * w + ix] > m) m = r[(size_t)ky * w + ix];
    return m;
}

/* Output row orow of a 2x2 pool with stride s (1 or 2) whose two input
 * rows start at r (w wide): columns [xa, xb) have their windows inside the
 * row; the others are checked one by one. */
static inline void fpi_maxpool_2x2_row(float *restrict orow, const float *restrict r, int w, int off, int s,
                                       int xa, int xb, int ow)
{
    const float *restrict r0 = r + off, *restrict r1 = r + off + w;
    if (s == 2) {
        for (int x = xa; x < xb; x++) {
            float m = -FLT_MAX, v;
            v = r0[2 * x], m = v > m ? v : m;
            v = r0[2 * x + 1], m = v > m ? v : m;
            v = r1[2 * x], m = v > m ? v : m;
            v = r1[2 * x + 1], m = v > m ? v : m;
            orow[x] = m;
        }
    } else {
        for (int x = xa; x < xb; x++) {
            float m = -FLT_MAX, v;
            v = r0[x], m = v > m ? v : m;
            v = r0[x + 1], m = v > m ? v : m;
            v = r1[x], m = v > m ? v : m;
            v = r1[x + 1], m = v > m ? v : m;
            orow[x] = m;
        }
    }
    for (int x = 0; x < xa; x++) orow[x] = fpi_maxpool_2x2_edge(r, w, off + x * s);
    for (int x = xb; x < ow; x++) orow[x] = fpi_maxpool_2x2_edge(r, w, off + x * s);
}

/* Output channel c. */
FPI_SIMD_CLONES static void fpi_maxpool_channel(int c, const fpi_pool_fast_task *t)
{
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
        int iy0 = off + y * s;
        if (k == 2 && (s == 1 || s == 2) && iy0 >= 0 && iy0 + 1 < h) {
            /* 2x2 windows wholly inside two rows: each output in one pass,
             * in the same order (row by row, left to right) */
            fpi_maxpool_2x2_row(orow, plane + (size_t)iy0 * w, w, off, s, xa, xb, ow);
            continue;
        }
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

/* Channels [i*per, (i+1)*per). */
static void fpi_maxpool_channels(int i, void *vctx)
{
    const fpi_pool_fast_task *t = vctx;
    int c1 = (i + 1) * t->per < t->l->out.c ? (i + 1) * t->per : t->l->out.c;
    for (int c = i * t->per; c < c1; c++) fpi_maxpool_channel(c, t);
}

int fpi_maxpool_fast(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    if (!fpi_fast_enabled()) return 0;
    if (fpi_maxpool_dnnl(l, src, out, x)) return 1;
    /* tasks of at least 16K outputs (small maps: a task per channel is all
     * overhead), and up to 32 of them to balance the threads */
    size_t plane = (size_t)l->out.h * l->out.w;
    int per = (int)((16384 + plane - 1) / plane), tasks = (l->out.c + per - 1) / per;
    if (tasks > 32) per = (l->out.c + 31) / 32;
    fpi_pool_fast_task t = {l, src[0], out, per};
    fpi_parallel_for(x->pool, (l->out.c + per - 1) / per, fpi_maxpool_channels, &t);
    return 1;
}

/* Eight lanes as one vector (two or one per instruction, by the clone):
 * GCC's vector extension, so the same code builds for NEON; the maximum as
 * the reference takes it, v > m ? v : m (no NaN wins, ties keep m). */
typedef float fpi_v8f __attribute__((vector_size(32)));
typedef int fpi_v8i __attribute__((vector_size(32)));

/* m = max(m, the eight floats at p); a macro, as a function taking or
 * returning these vectors would change the ABI in the clone without AVX. */
#define FPI_V8_MAX(m, p)                                                                                   \
    do {                                                                                                   \
        fpi_v8f v_;                                                                                        \
        memcpy(&v_, (p), sizeof v_);                                                                       \
        fpi_v8i k_ = v_ > (m);                                                                             \
        (m) = (fpi_v8f)((k_ & (fpi_v8i)v_) | (~k_ & (fpi_v8i)(m)));                                        \
    } while (0)

/* One block of fpi_maxpool_vec, with L lanes (8 or 16: a constant once
 * inlined, so the lanes are one or two vectors held in registers). */
static inline void fpi_maxpool_vec_block(const float *restrict ib, float *restrict ob, const fpi_vmap *in,
                                         const fpi_vmap *out, int L, int n, int r0, int r1, int w, int py0, int py1,
                                         int pw, int k, int s, int before)
{
    const fpi_v8f lowest = {-FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX};
    for (int py = py0; py < py1; py++) {
        int ya = py * s - before, yb = ya + k;
        if (ya < r0) ya = r0;
        if (yb > r1) yb = r1;
        float *orow = ob + (size_t)(py - py0) * out->sy;
        const float *row0 = ib + (size_t)(ya - r0) * in->sy;
        for (int px = 0; px < pw; px++) {
            int xa = px * s - before, xb = xa + k;
            if (xa < 0) xa = 0;
            if (xb > w) xb = w;
            fpi_v8f m[2] = {lowest, lowest};
            if (k == 2 && yb - ya == 2 && xb - xa == 2) {
                /* the whole 2x2 window, in the reference's order */
                const float *a = row0 + (size_t)xa * in->sx, *b = a + in->sx, *c = a + in->sy, *d = c + in->sx;
                for (int j = 0; j < L / 8; j++) {
                    FPI_V8_MAX(m[j], a + 8 * j);
                    FPI_V8_MAX(m[j], b + 8 * j);
                    FPI_V8_MAX(m[j], c + 8 * j);
                    FPI_V8_MAX(m[j], d + 8 * j);
                }
            } else {
                for (int y = ya; y < yb; y++)
                    for (int x = xa; x < xb; x++) {
                        const float *v = ib + (size_t)(y - r0) * in->sy + (size_t)x * in->sx;
                        for (int j = 0; j < L / 8; j++) FPI_V8_MAX(m[j], v + 8 * j);
                    }
            }
            float *o = orow + (size_t)px * out->sx;
            if (out->sl == 1 && n == L) {
                memcpy(o, m, (size_t)L * sizeof(float));
            } else {
                float f[16];
                memcpy(f, m, sizeof f);
                for (int j = 0; j < n && j < L; j++) o[(size_t)j * out->sl] = f[j];
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

/* fpi_maxpool_vec_block for whole blocks of 8 (AVX2) or 16 (AVX-512)
 * lanes, one vector each (sl 1): each window's cells in the reference's
 * order (m = -FLT_MAX, then MAXPS(v, m): v > m ? v : m), 2x2 windows inside
 * the map with their four loads unrolled. The portable block, built for
 * AVX2 by its clone, took 5.5-6 ns per output vector on the face detector's
 * last pool (2x2/1 over 13x13x512 in cache, one thread, an AMD EPYC (Zen
 * 3): 0.06 ms): its maxima blended in integer vectors, its window bounds
 * and strides reloaded from memory for each; the AVX2 loop 3-3.5 ns. With
 * AVX-512 (nChw16c, Zen 5) the portable clone was 10% of the face
 * detector's time in `perf` (the pools fused into oneDNN's layers). One
 * body for both: V the vector type, P the intrinsics' prefix. */
#define FPI_MAXPOOL_VEC_KERNEL(L, V, P, TARGET)                                                                        \
    __attribute__((target(TARGET), always_inline)) static inline V fpi_maxpool_vec##L##_window(                       \
        const float *rows, size_t sx, size_t sy, int ya, int yb, int px, int w, int k, int s, int before)              \
    {                                                                                                                  \
        int xa = px * s - before, xb = xa + k;                                                                         \
        if (xa < 0) xa = 0;                                                                                            \
        if (xb > w) xb = w;                                                                                            \
        V m = P##_set1_ps(-FLT_MAX);                                                                                   \
        const float *r = rows + (size_t)xa * sx;                                                                       \
        for (int y = ya; y < yb; y++, r += sy)                                                                         \
            for (int x = 0; x < xb - xa; x++) m = P##_max_ps(P##_loadu_ps(r + (size_t)x * sx), m);                     \
        return m;                                                                                                      \
    }                                                                                                                  \
                                                                                                                       \
    __attribute__((target(TARGET))) static void fpi_maxpool_vec##L##_x86(const float *ib, float *ob, const fpi_vmap *in, \
                                                                         const fpi_vmap *out, int r0, int r1, int w,   \
                                                                         int py0, int py1, int pw, int k, int s,       \
                                                                         int before)                                   \
    {                                                                                                                  \
        const size_t sx = in->sx, sy = in->sy, osx = out->sx, osy = out->sy;                                           \
        /* output columns [pa, pb): windows inside the row */                                                          \
        int pa = (before + s - 1) / s, pb = w - k + before >= 0 ? (w - k + before) / s + 1 : 0;                       \
        if (pb > pw) pb = pw;                                                                                          \
        if (pa > pb) pa = pb;                                                                                          \
        for (int py = py0; py < py1; py++) {                                                                           \
            int ya = py * s - before, yb = ya + k;                                                                     \
            if (ya < r0) ya = r0;                                                                                      \
            if (yb > r1) yb = r1;                                                                                      \
            const float *rows = ib + (size_t)(ya - r0) * sy;                                                           \
            float *o = ob + (size_t)(py - py0) * osy;                                                                  \
            int px = 0;                                                                                                \
            for (; px < pa; px++)                                                                                      \
                P##_storeu_ps(o + (size_t)px * osx,                                                                    \
                              fpi_maxpool_vec##L##_window(rows, sx, sy, ya, yb, px, w, k, s, before));                 \
            if (k == 2 && yb - ya == 2 && px < pb) {                                                                   \
                const V lowest = P##_set1_ps(-FLT_MAX);                                                                \
                const float *r = rows + ((size_t)pa * s - before) * sx;                                                \
                for (; px < pb; px++, r += (size_t)s * sx) {                                                           \
                    V m = P##_max_ps(P##_loadu_ps(r), lowest);                                                         \
                    m = P##_max_ps(P##_loadu_ps(r + sx), m);                                                           \
                    m = P##_max_ps(P##_loadu_ps(r + sy), m);                                                           \
                    m = P##_max_ps(P##_loadu_ps(r + sy + sx), m);                                                      \
                    P##_storeu_ps(o + (size_t)px * osx, m);                                                            \
                }                                                                                                      \
            }                                                                                                          \
            for (; px < pw; px++)                                                                                      \
                P##_storeu_ps(o + (size_t)px * osx,                                                                    \
                              fpi_maxpool_vec##L##_window(rows, sx, sy, ya, yb, px, w, k, s, before));                 \
        }                                                                                                              \
    }
FPI_MAXPOOL_VEC_KERNEL(8, __m256, _mm256, "avx2")
FPI_MAXPOOL_VEC_KERNEL(16, __m512, _mm512, "avx512f")
#undef FPI_MAXPOOL_VEC_KERNEL
#endif

FPI_SIMD_CLONES void fpi_maxpool_vec(const fpi_vmap *in, const fpi_vmap *out, int nb, int lanes, int last, int r0,
                                     int r1, int w, int py0, int py1, int pw, int k, int s, int before)
{
#if defined(__x86_64__)
    const fpi_cpu *cpu = fpi_cpu_get();
    if ((lanes == 8 ? cpu->avx2 : lanes == 16 && cpu->avx512) && in->sl == 1 && out->sl == 1) {
        for (int b = 0; b < nb; b++) {
            const float *ib = in->p + (size_t)b * in->sb;
            float *ob = out->p + (size_t)b * out->sb;
            if (b < nb - 1 || last == lanes)
                (lanes == 8 ? fpi_maxpool_vec8_x86 : fpi_maxpool_vec16_x86)(ib, ob, in, out, r0, r1, w, py0, py1, pw,
                                                                            k, s, before);
            else
                fpi_maxpool_vec_block(ib, ob, in, out, lanes, last, r0, r1, w, py0, py1, pw, k, s, before);
        }
        return;
    }
#endif
    for (int b = 0; b < nb; b++) {
        const float *ib = in->p + (size_t)b * in->sb;
        float *ob = out->p + (size_t)b * out->sb;
        int n = b == nb - 1 ? last : lanes;
        if (lanes == 8)
            fpi_maxpool_vec_block(ib, ob, in, out, 8, n, r0, r1, w, py0, py1, pw, k, s, before);
        else
            fpi_maxpool_vec_block(ib, ob, in, out, 16, n, r0, r1, w, py0, py1, pw, k, s, before);
    }
}
