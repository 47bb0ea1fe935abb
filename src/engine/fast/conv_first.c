/* conv_first.c — a network's first convolution on x86-64 CPUs with AVX2
 * and FMA but no AVX-512 (with AVX-512, an image's 16 filters only: the
 * Winograd sums below): 3x3, stride 1, padding 1 or 0, up to 3 input channels
 * (an image), a multiple of 4 filters, linear / leaky / relu, at least 16
 * output columns; with the 2x2/2 max pool after it fused when that pool
 * alone reads it and the output's sides are even.
 *
 * Hand-written because the libraries do this shape badly on such CPUs:
 * on an AMD EPYC (Zen 3), oneDNN 2.6's AVX2 kernel for a few input channels
 * in nchw took 5.9 ms for a first layer of 416x416x3 -> 16 (0.15 GFLOP)
 * with its pool, in the engine's pieces, and this loop 3.5 ms (3.5 with
 * 24-column blocks where 16-column ones took 3.8, medians interleaved);
 * im2col + sgemm with k = 27 is no better. On AVX-512, oneDNN's kernel is
 * faster than the direct sums here, not than the Winograd ones.
 *
 * Per pair of output rows: each channel's four input rows are copied into
 * zero-padded rows (the padding becomes zeros, so the inner loop has no
 * bounds), then for each group of 4 filters and each 24 output columns, 12
 * accumulators (3 vectors x 4 filters) run over the taps in (c, ky, kx)
 * order: per tap 3 input loads and 4 broadcasts feed 12 FMAs. Bias and
 * activation follow in registers, as the reference computes them, then the
 * rows go to the output. With the pool fused, the copies split each row
 * into its even and its odd columns, and a block of 8 pooled columns and 4
 * filters computes both rows' even and odd output columns in separate
 * registers (8 accumulators; the same taps in the same order, so the same
 * sums): a pooling window's four sums are then in the same lane of four
 * registers, pooled with three maxima (the 2x2 max in the reference's
 * order, no shuffles) before the bias and the activation (x -> act(x + b)
 * never decreases) into the pool's output: fused and
 * unfused runs give the same bits. When the next layer is oneDNN's and reads its blocked
 * layout, the pooled map goes to it in that layout (fpi_dnnl_setup decides;
 * a 4 x 8 transpose per store), which saves that layer its reorder. An
 * image's 16 filters into that layout (the YOLO-tiny and face detector
 * first layers) go in groups of 6, 5 and 5 instead (12 and 10
 * accumulators, in assembly: fpi_first_pool16), with an 8 x 8 transpose
 * per block of 8 pooled columns and 8 filters, when the Winograd sums
 * below are off (fpi_conv_first_wino); by default an image's 16 filters
 * take those, fused or not, with AVX2 and with AVX-512 (where the direct
 * kernels leave first layers to oneDNN, this one takes them). Work:
 * bands of row pairs, handed out over the engine's pool, each task in its
 * own slot of the layer's workspace. */
#include <limits.h>
#include <string.h>

#include "engine/fast/fast.h"

const fpi_layer *fpi_fusable_pool(const fp_net *net, int i)
{
    const fpi_layer *l = &net->layers[i];
    if (i + 1 > net->last || l->act == FP_ACT_LOGISTIC) return NULL;
    const fpi_layer *pl = &net->layers[i + 1];
    const fpi_pool_params *pp = &pl->p.pool;
    if (pl->op != FP_OP_MAXPOOL || pl->n_src != 1 || pl->src[0] != i || pp->size != 2 || pp->stride != 2 ||
        pp->pad != 1)
        return NULL;
    return fpi_read_from(net, i, i + 2) ? NULL : pl;
}

int fpi_fused_pool(const fpi_layer *l)
{
    return l->conv_first_pool ? l->index + 1 : fpi_dnnl_fused_pool(l);
}

#if defined(__x86_64__)

#include <stdatomic.h>

#include "engine/fast/avx2.h"

/* Bands of row pairs a layer is cut into (for up to that many threads, and
 * the scratch slots the workspace holds for them). */
enum { FPI_FIRST_BANDS = 16 };

/* Output columns per block: 3 vectors x 4 filters = 12 accumulators. */
enum { FPI_FIRST_COLS = 24 };

/* Floats at the start of a pooled run's scratch that say which input row
 * each split row holds (ints; 4 per channel). */
enum { FPI_FIRST_HELD = 16 };

/* Tiles per pass: two vectors of 8 (or one of 16 with AVX-512); floats
 * of each of the two layouts of the transformed weights. */
enum { FPI_FW_TILES = 16, FPI_FW_U16 = 16 * 16 * 4 };

static int fpi_first_wino_off, fpi_first_wino_256;

void fpi_conv_first_wino(int on)
{
    fpi_first_wino_off = !on;
    fpi_first_wino_256 = on == 2;
}

/* Whether the Winograd sums run with AVX-512 (fpi_first_w16_pool). */
static int fpi_first_w512(void) { return fpi_cpu_get()->avx512 && !fpi_first_wino_256; }

/* Whether the layer's sums go by Winograd's transform: an image's 16 filters. */
static int fpi_first_wino_takes(const fpi_layer *l) { return l->in.c == 3 && l->p.conv.filters == 16; }

/* U = G g G' for each filter f and channel c (G's rows: (1, 0, 0),
 * (1, 1, 1) / 2, (1, -1, 1) / 2, (0, 0, 1)), in double: point p's weights
 * at u + (p * 16 + f) * 4 + c, channel 3 zero. */
static float *fpi_first_wino_setup(const fpi_layer *l)
{
    float *u = fpi_malloc(FPI_FW_U16 * 2 * sizeof *u);
    if (!u) return NULL;
    for (int f = 0; f < 16; f++)
        for (int c = 0; c < 4; c++) {
            double t[4][3] = {{0}};
            if (c < 3) {
                const float *g = l->kernel + (size_t)f * 27 + c * 9;
                for (int kx = 0; kx < 3; kx++) {
                    double g0 = g[kx], g1 = g[3 + kx], g2 = g[6 + kx];
                    t[0][kx] = g0, t[1][kx] = (g0 + g1 + g2) / 2, t[2][kx] = (g0 - g1 + g2) / 2, t[3][kx] = g2;
                }
            }
            for (int a = 0; a < 4; a++) {
                double v[4] = {t[a][0], (t[a][0] + t[a][1] + t[a][2]) / 2, (t[a][0] - t[a][1] + t[a][2]) / 2,
                               t[a][2]};
                for (int b = 0; b < 4; b++) {
                    u[((a * 4 + b) * 16 + f) * 4 + c] = (float)v[b];
                    if (c < 3) u[FPI_FW_U16 + ((a * 4 + b) * 3 + c) * 16 + f] = (float)v[b];
                }
            }
        }
    return u;
}

static int fpi_first_forced;

void fpi_conv_first_force(int on) { fpi_first_forced = on; }

int fpi_conv_first_cpu(void)
{
    const fpi_cpu *c = fpi_cpu_get();
    return c->avx2 && c->fma && (!c->avx512 || fpi_first_forced);
}

/* Whether the CPU runs the Winograd sums: AVX2 and FMA, with AVX-512 too,
 * where the direct kernels leave the layer to oneDNN (on an AMD EPYC
 * (Zen 5), one thread, the face detector's first layer with its pool,
 * `fogpipe profile`: oneDNN 2.6's AVX-512 kernel 1.51 ms, these sums in
 * AVX-512 0.74 ms). */
static int fpi_first_wino_cpu(void)
{
    const fpi_cpu *c = fpi_cpu_get();
    return c->avx2 && c->fma && !fpi_first_wino_off;
}

int fpi_conv_first_takes(const fpi_layer *l)
{
    if (l->op != FP_OP_CONVOLUTIONAL || !l->kernel || !l->bias) return 0;
    if (!fpi_conv_first_cpu() && !(fpi_first_wino_cpu() && fpi_first_wino_takes(l))) return 0;
    const fpi_conv_params *p = &l->p.conv;
    return p->groups == 1 && p->size == 3 && p->stride == 1 && (p->pad == 1 || p->pad == 0) && l->in.c >= 1 &&
           l->in.c <= 3 && p->filters % 4 == 0 && l->out.w >= 16 && l->out.w == l->in.w + 2 * p->pad - 2 &&
           l->out.h == l->in.h + 2 * p->pad - 2 &&
           (l->act == FP_ACT_LINEAR || l->act == FP_ACT_LEAKY || l->act == FP_ACT_RELU);
}

/* A layer's geometry: row width rounded up to FPI_FIRST_COLS (wr), padded input row
 * (pw: the padding's zero if any, the row, zeros to past wr + 2), floats of
 * a slot. */
typedef struct {
    int wr, pw, pe, pairs, bands, per;
    size_t slot;
} fpi_first_geom;

static fpi_first_geom fpi_first_geometry(const fpi_layer *l)
{
    fpi_first_geom g;
    g.wr = (l->out.w + FPI_FIRST_COLS - 1) / FPI_FIRST_COLS * FPI_FIRST_COLS;
    g.pw = g.wr + 8;
    g.pairs = (l->out.h + 1) / 2;
    g.bands = g.pairs < FPI_FIRST_BANDS ? g.pairs : FPI_FIRST_BANDS;
    g.per = (g.pairs + g.bands - 1) / g.bands;
    g.bands = (g.pairs + g.per - 1) / g.per;
    /* pooled: each padded input row split into even and odd columns, pe
     * floats each (blocks of 8 pooled columns read 9) */
    g.pe = ((l->out.w / 2 + 7) / 8) * 8 + 8;
    if (l->first_wino) g.pe = (((l->out.w + 1) / 2 + FPI_FW_TILES - 1) / FPI_FW_TILES) * FPI_FW_TILES + 8;
    size_t pad = (size_t)l->in.c * 4 * g.pw, rows = (size_t)l->p.conv.filters * 2 * g.wr;
    if (pad < FPI_FIRST_HELD + (size_t)l->in.c * 4 * 2 * g.pe) pad = FPI_FIRST_HELD + (size_t)l->in.c * 4 * 2 * g.pe;
    g.slot = (pad + rows + 15) & ~(size_t)15;
    return g;
}

void fpi_first_setup(fp_net *net)
{
    for (int i = net->first; i <= net->last; i++) {
        fpi_layer *l = &net->layers[i];
        l->conv_first = l->conv_first_pool = 0;
        l->first_hand_to = l->first_chain = -1;
        if (!fpi_fast_enabled() || !fpi_conv_first_takes(l)) continue;
        l->conv_first = 1;
        l->conv_first_pool = fpi_fusable_pool(net, i) && l->out.h % 2 == 0 && l->out.w % 2 == 0;
        fpi_free(l->first_wino);
        l->first_wino = fpi_first_wino_cpu() && fpi_first_wino_takes(l) ? fpi_first_wino_setup(l) : NULL;
        if (!l->first_wino && !fpi_conv_first_cpu()) { /* AVX-512: the Winograd sums or oneDNN */
            l->conv_first = l->conv_first_pool = 0;
            continue;
        }
        fpi_first_geom g = fpi_first_geometry(l);
        size_t need = (size_t)g.bands * g.slot;
        if (need > l->workspace) l->workspace = need;
        FPI_INFO("layer %d (%s): first-layer kernel (AVX2)%s%s", i, l->desc,
                 l->first_wino ? ", Winograd F(2x2, 3x3)" : "", l->conv_first_pool ? ", max pool fused" : "");
    }
}

typedef struct {
    const fpi_layer *l;
    const float *in;
    const fpi_rows *rows; /* the input's rows as they are made (fpi_first_pooled_row), or NULL: in */
    float *out;    /* the layer's output, or NULL */
    float *pooled; /* the fused pool's output, or NULL */
    int blk;       /* pooled in oneDNN's blocked layout of this block (handed on), or 0: C x H x W */
    size_t psb;    /* pooled: floats between its blocks (blk) or planes */
    int py0;       /* pooled: the row at `pooled` */
    float *ws;
    fpi_first_geom g;
    atomic_int next;
} fpi_first_task;

/* act(v + b) with a scalar bias (avx2.h). */
__attribute__((target("avx2,fma"))) static inline __m256 fpi_first_act(__m256 v, float b, fp_activation act)
{
    return fpi_avx2_bias_act(v, _mm256_set1_ps(b), act);
}

/* 12 accumulators: output columns [x, x + 24) of filters f0..f0+3, output
 * row oy of the pair, then bias and activation, into o (filters fstride
 * apart). */
__attribute__((target("avx2,fma"))) static void fpi_first_block(const float *pad, const float *w, const float *bias,
                                                                fp_activation act, int c_in, int pw, int oy, float *o,
                                                                size_t fstride, int x)
{
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00, a21 = a00,
           a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    size_t ksz = (size_t)c_in * 9;
    for (int c = 0; c < c_in; c++)
        for (int ky = 0; ky < 3; ky++) {
            const float *row = pad + ((size_t)c * 4 + oy + ky) * pw + x;
            const float *wt = w + c * 9 + ky * 3;
            for (int kx = 0; kx < 3; kx++) {
                __m256 i0 = _mm256_loadu_ps(row + kx), i1 = _mm256_loadu_ps(row + kx + 8),
                       i2 = _mm256_loadu_ps(row + kx + 16);
                /* one broadcast live at a time: 12 accumulators, 3 inputs
                 * and it fill the 16 registers */
                __m256 b = _mm256_broadcast_ss(wt + kx);
                a00 = _mm256_fmadd_ps(i0, b, a00);
                a01 = _mm256_fmadd_ps(i1, b, a01);
                a02 = _mm256_fmadd_ps(i2, b, a02);
                b = _mm256_broadcast_ss(wt + ksz + kx);
                a10 = _mm256_fmadd_ps(i0, b, a10);
                a11 = _mm256_fmadd_ps(i1, b, a11);
                a12 = _mm256_fmadd_ps(i2, b, a12);
                b = _mm256_broadcast_ss(wt + 2 * ksz + kx);
                a20 = _mm256_fmadd_ps(i0, b, a20);
                a21 = _mm256_fmadd_ps(i1, b, a21);
                a22 = _mm256_fmadd_ps(i2, b, a22);
                b = _mm256_broadcast_ss(wt + 3 * ksz + kx);
                a30 = _mm256_fmadd_ps(i0, b, a30);
                a31 = _mm256_fmadd_ps(i1, b, a31);
                a32 = _mm256_fmadd_ps(i2, b, a32);
            }
        }
    _mm256_storeu_ps(o, fpi_first_act(a00, bias[0], act));
    _mm256_storeu_ps(o + 8, fpi_first_act(a01, bias[0], act));
    _mm256_storeu_ps(o + 16, fpi_first_act(a02, bias[0], act));
    _mm256_storeu_ps(o + fstride, fpi_first_act(a10, bias[1], act));
    _mm256_storeu_ps(o + fstride + 8, fpi_first_act(a11, bias[1], act));
    _mm256_storeu_ps(o + fstride + 16, fpi_first_act(a12, bias[1], act));
    _mm256_storeu_ps(o + 2 * fstride, fpi_first_act(a20, bias[2], act));
    _mm256_storeu_ps(o + 2 * fstride + 8, fpi_first_act(a21, bias[2], act));
    _mm256_storeu_ps(o + 2 * fstride + 16, fpi_first_act(a22, bias[2], act));
    _mm256_storeu_ps(o + 3 * fstride, fpi_first_act(a30, bias[3], act));
    _mm256_storeu_ps(o + 3 * fstride + 8, fpi_first_act(a31, bias[3], act));
    _mm256_storeu_ps(o + 3 * fstride + 16, fpi_first_act(a32, bias[3], act));
}

/* The same for columns [x, x + 8) only: 4 accumulators, for a row's last
 * 8 columns or fewer (a 24-column block there would compute up to 16
 * columns past the row's end). The same operations per value. */
__attribute__((target("avx2,fma"))) static void fpi_first_block8(const float *pad, const float *w, const float *bias,
                                                                 fp_activation act, int c_in, int pw, int oy, float *o,
                                                                 size_t fstride, int x)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t ksz = (size_t)c_in * 9;
    for (int c = 0; c < c_in; c++)
        for (int ky = 0; ky < 3; ky++) {
            const float *row = pad + ((size_t)c * 4 + oy + ky) * pw + x;
            const float *wt = w + c * 9 + ky * 3;
            for (int kx = 0; kx < 3; kx++) {
                __m256 i0 = _mm256_loadu_ps(row + kx);
                a0 = _mm256_fmadd_ps(i0, _mm256_broadcast_ss(wt + kx), a0);
                a1 = _mm256_fmadd_ps(i0, _mm256_broadcast_ss(wt + ksz + kx), a1);
                a2 = _mm256_fmadd_ps(i0, _mm256_broadcast_ss(wt + 2 * ksz + kx), a2);
                a3 = _mm256_fmadd_ps(i0, _mm256_broadcast_ss(wt + 3 * ksz + kx), a3);
            }
        }
    __m256 v[4] = {a0, a1, a2, a3};
    for (int f = 0; f < 4; f++) _mm256_storeu_ps(o + (size_t)f * fstride, fpi_first_act(v[f], bias[f], act));
}

/* Stores the pooled columns of four filters (r: 8 columns per filter) into
 * a blocked layout: column j's four values at o + j * blk (o: the first
 * filter's lane in the first column), the first nv columns only. A 4 x 8
 * transpose in registers. */
__attribute__((target("avx2,fma"))) static void fpi_first_store_blk(const __m256 *r, float *o, int blk, int nv)
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    /* columns (0 | 4), (1 | 5), (2 | 6), (3 | 7) of the eight */
    __m256 u[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE), _mm256_shuffle_ps(t1, t3, 0x44),
                   _mm256_shuffle_ps(t1, t3, 0xEE)};
    for (int k = 0; k < 4; k++) {
        if (k < nv) _mm_storeu_ps(o + (size_t)k * blk, _mm256_castps256_ps128(u[k]));
        if (k + 4 < nv) _mm_storeu_ps(o + (size_t)(k + 4) * blk, _mm256_extractf128_ps(u[k], 1));
    }
}

/* With the 2x2/2 pool fused, the input rows are split into their even and
 * odd (padded) columns, so that the even and the odd output columns of a
 * row come out in separate registers and each pooling window's four sums
 * sit in the same lane of four of them: no shuffles. A row's padded columns
 * j: e[i] = j 2i, o[i] = j 2i + 1 (input column j - pad), n floats each,
 * zeros past the row. */
__attribute__((target("avx2"))) static void fpi_first_split(const float *src, int w, int p, float *e, float *o, int n)
{
    /* input columns 2i and 2i + 1 */
    float *ev = p ? o : e, *od = p ? e + 1 : o;
    int ne = (w + 1) / 2, no = w / 2, i = 0;
    if (p) e[0] = 0;
    for (; 2 * i + 16 <= w; i += 8) {
        __m256 a = _mm256_loadu_ps(src + 2 * i), b = _mm256_loadu_ps(src + 2 * i + 8);
        /* lanes 0 2 8 10 | 4 6 12 14, then in order */
        __m256 x = _mm256_shuffle_ps(a, b, 0x88), y = _mm256_shuffle_ps(a, b, 0xDD);
        _mm256_storeu_ps(ev + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(x), 0xD8)));
        _mm256_storeu_ps(od + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(y), 0xD8)));
    }
    for (int k = i; k < ne; k++) ev[k] = src[2 * k];
    for (int k = i; k < no; k++) od[k] = src[2 * k + 1];
    for (int k = ne; k < n - p; k++) ev[k] = 0.f;
    for (int k = no; k < n - p; k++) od[k] = 0.f;
    if (p) o[n - 1] = 0.f;
}

/* Sums of output row oy of the pair for filters f0..f0+3 (w: f0's weights,
 * filters ksz apart) at the even (ev) and odd (od) output columns 2i ..
 * 2i + 15, from the split rows (channel c's row r of the pair's four: even
 * columns at eo[c * 4 + r], odd ones pe after): taps in (c, ky, kx) order
 * as fpi_first_block, so the same sums bit for bit. 8 accumulators. */
__attribute__((target("avx2,fma"), always_inline)) static inline void fpi_first_eo(const float *const *eo, size_t pe, int c_in, int oy,
                                                                    const float *w, size_t ksz, int i, __m256 *ev,
                                                                    __m256 *od)
{
    __m256 e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
    for (int c = 0; c < c_in; c++)
        for (int ky = 0; ky < 3; ky++) {
            const float *re = eo[c * 4 + oy + ky] + i, *ro = re + pe;
            /* padded columns 2i' (xe), 2i' + 1 (xo), 2i' + 2 (xe1), 2i' + 3 (xo1) */
            __m256 xe = _mm256_loadu_ps(re), xo = _mm256_loadu_ps(ro), xe1 = _mm256_loadu_ps(re + 1),
                   xo1 = _mm256_loadu_ps(ro + 1);
            const float *wt = w + c * 9 + ky * 3;
#define FPI_EO_TAP(kx, xa, xb)                                                                                         \
    do {                                                                                                               \
        __m256 b = _mm256_broadcast_ss(wt + (kx));                                                                     \
        e0 = _mm256_fmadd_ps(xa, b, e0), o0 = _mm256_fmadd_ps(xb, b, o0);                                              \
        b = _mm256_broadcast_ss(wt + ksz + (kx));                                                                      \
        e1 = _mm256_fmadd_ps(xa, b, e1), o1 = _mm256_fmadd_ps(xb, b, o1);                                              \
        b = _mm256_broadcast_ss(wt + 2 * ksz + (kx));                                                                  \
        e2 = _mm256_fmadd_ps(xa, b, e2), o2 = _mm256_fmadd_ps(xb, b, o2);                                              \
        b = _mm256_broadcast_ss(wt + 3 * ksz + (kx));                                                                  \
        e3 = _mm256_fmadd_ps(xa, b, e3), o3 = _mm256_fmadd_ps(xb, b, o3);                                              \
    } while (0)
            FPI_EO_TAP(0, xe, xo);
            FPI_EO_TAP(1, xo, xe1);
            FPI_EO_TAP(2, xe1, xo1);
#undef FPI_EO_TAP
        }
    ev[0] = e0, ev[1] = e1, ev[2] = e2, ev[3] = e3;
    od[0] = o0, od[1] = o1, od[2] = o2, od[3] = o3;
}

/* The pooled sums of an image's first layer (3 input channels) for F = 5
 * or 6 filters at pooled columns [i, i + 8), in assembly: for each output
 * row of the pair, 2F accumulators (even columns in ymm0.., odd ones in
 * ymm6..) run over its 9 (c, ky) rows (rp[0..9) for the first row,
 * rp[9..18) for the second; even columns, the odd ones pe floats after) in
 * the taps' order of fpi_first_eo, so the same sums bit for bit; then the
 * 2x2 max in the reference's order into out[0..F) (before bias and
 * activation). Per row, 4 input vectors and 3F broadcast weights feed 6F
 * FMAs; every weight at a one-byte displacement from one of two pointers,
 * wa and wb, which move 3 floats a row. */
#define FPI_EOA_F(base, f, fb, od, kx, xa, xb)                                                                         \
    "vbroadcastss 4*(27*" FPI_ASM_S(fb) "+" FPI_ASM_S(kx) ")-108(%[" base "]), %%ymm12\n\t"                                     \
    "vfmadd231ps %%ymm12, %%ymm" FPI_ASM_S(xa) ", %%ymm" FPI_ASM_S(f) "\n\t"                                                   \
    "vfmadd231ps %%ymm12, %%ymm" FPI_ASM_S(xb) ", %%ymm" FPI_ASM_S(od) "\n\t"
#define FPI_EOA_TAP5(kx, xa, xb)                                                                                       \
    FPI_EOA_F("wa", 0, 0, 6, kx, xa, xb) FPI_EOA_F("wa", 1, 1, 7, kx, xa, xb) FPI_EOA_F("wa", 2, 2, 8, kx, xa, xb)     \
        FPI_EOA_F("wb", 3, 0, 9, kx, xa, xb) FPI_EOA_F("wb", 4, 1, 10, kx, xa, xb)
#define FPI_EOA_TAP6(kx, xa, xb) FPI_EOA_TAP5(kx, xa, xb) FPI_EOA_F("wb", 5, 2, 11, kx, xa, xb)
#define FPI_EOA_ROW(F, L)                                                                                              \
    "mov $9, %[n]\n\t" FPI_ASM_S(L) ":\n\t"                                                                                \
    "mov (%[rp]), %%rax\n\t"                                                                                           \
    "vmovups (%%rax,%[io]), %%ymm13\n\t"                                                                               \
    "vmovups (%%rax,%[po]), %%ymm14\n\t" FPI_EOA_TAP##F(0, 13, 14)                                                     \
    "vmovups 4(%%rax,%[io]), %%ymm15\n\t" FPI_EOA_TAP##F(1, 14, 15)                                                    \
    "vmovups 4(%%rax,%[po]), %%ymm13\n\t" FPI_EOA_TAP##F(2, 15, 13)                                                    \
    "add $8, %[rp]\n\t"                                                                                                \
    "add $12, %[wa]\n\t"                                                                                               \
    "add $12, %[wb]\n\t"                                                                                               \
    "dec %[n]\n\t"                                                                                                     \
    "jnz " FPI_ASM_S(L) "b\n\t"
#define FPI_EOA_MAX0(f, od) "vmaxps %%ymm" FPI_ASM_S(f) ", %%ymm" FPI_ASM_S(od) ", %%ymm" FPI_ASM_S(f) "\n\t" \
    "vmovups %%ymm" FPI_ASM_S(f) ", 32*" FPI_ASM_S(f) "(%[out])\n\t"
#define FPI_EOA_MAX1(f, od) "vmaxps 32*" FPI_ASM_S(f) "(%[out]), %%ymm" FPI_ASM_S(f) ", %%ymm" FPI_ASM_S(f) "\n\t" \
    "vmaxps %%ymm" FPI_ASM_S(f) ", %%ymm" FPI_ASM_S(od) ", %%ymm" FPI_ASM_S(f) "\n\t" \
    "vmovups %%ymm" FPI_ASM_S(f) ", 32*" FPI_ASM_S(f) "(%[out])\n\t"
#define FPI_EOA_MAXES5(M) M(0, 6) M(1, 7) M(2, 8) M(3, 9) M(4, 10)
#define FPI_EOA_MAXES6(M) FPI_EOA_MAXES5(M) M(5, 11)
#define FPI_EOA_KERNEL(F)                                                                                              \
    __attribute__((target("avx2,fma"), always_inline)) static inline void fpi_first_pool_image##F(                    \
        const float *const *rp, size_t pe, int i, const float *w, float *out)                                          \
    {                                                                                                                  \
        const float *wa = w + 27, *wb = w + 4 * 27;                                                                    \
        long n;                                                                                                        \
        __asm__ volatile(FPI_ASM_ZERO12 FPI_EOA_ROW(F, 1) FPI_EOA_MAXES##F(FPI_EOA_MAX0)                                 \
                         "sub $108, %[wa]\n\t"                                                                         \
                         "sub $108, %[wb]\n\t" FPI_ASM_ZERO12 FPI_EOA_ROW(F, 2) FPI_EOA_MAXES##F(FPI_EOA_MAX1)           \
                         : [rp] "+r"(rp), [wa] "+r"(wa), [wb] "+r"(wb), [n] "=&r"(n)                                   \
                         : [io] "r"((size_t)i * sizeof(float)), [po] "r"((pe + (size_t)i) * sizeof(float)),            \
                           [out] "r"(out)                                                                              \
                         : "rax", "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",      \
                           "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");                      \
    }
FPI_EOA_KERNEL(5)
FPI_EOA_KERNEL(6)
#undef FPI_EOA_KERNEL
#undef FPI_EOA_MAXES6
#undef FPI_EOA_MAXES5
#undef FPI_EOA_MAX1
#undef FPI_EOA_MAX0
#undef FPI_EOA_ROW
#undef FPI_EOA_TAP6
#undef FPI_EOA_TAP5
#undef FPI_EOA_F

/* An 8 x 8 transpose: r[f] holds filter f's 8 columns; column j's 8
 * filters go to o + j * 8, the first nv columns. */
__attribute__((target("avx2,fma"), always_inline)) static inline void fpi_first_store8x8(const __m256 *r, float *o,
                                                                                       int nv)
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    /* columns 0..3 in the low halves, 4..7 in the high ones */
    __m256 c[8] = {_mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                   _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                   _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                   _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
    if (nv == 8) {
        _mm256_storeu_ps(o, c[0]), _mm256_storeu_ps(o + 8, c[1]), _mm256_storeu_ps(o + 16, c[2]);
        _mm256_storeu_ps(o + 24, c[3]), _mm256_storeu_ps(o + 32, c[4]), _mm256_storeu_ps(o + 40, c[5]);
        _mm256_storeu_ps(o + 48, c[6]), _mm256_storeu_ps(o + 56, c[7]);
        return;
    }
    for (int j = 0; j < nv; j++) _mm256_storeu_ps(o + (size_t)j * 8, c[j]);
}

/* An image's 16 filters pooled into nChw8c (o0, o1: the two blocks' pooled
 * row) from the pair's split rows (eo as fpi_first_eo reads them): for each
 * 8 pooled columns, filters 0-5, 6-10 and 11-15 (12 and 10
 * accumulators, which hide the FMA's latency where 8 do not), then bias
 * and activation and two 8 x 8 transposes. The face detector's first layer
 * alone, one thread, in one process against groups of 4 in C (3 x 300
 * paired passes): 1.09-1.11x; end to end 1.033x (2 x 300 paired steps).
 * (The stores are written out: a loop over them became a rep movsq
 * memcpy, which cost more than the kernel saved.) */
__attribute__((target("avx2,fma"))) static void fpi_first_pool16(const float *const *eo, size_t pe,
                                                                 const fpi_layer *l, float *o0, float *o1, int pwo)
{
    const float *w = l->kernel, *rp[18]; /* the rows (c, ky) of each output row */
    for (int k = 0; k < 9; k++) rp[k] = eo[k / 3 * 4 + k % 3], rp[9 + k] = eo[k / 3 * 4 + 1 + k % 3];
    float m[16 * 8] __attribute__((aligned(32)));
    for (int i = 0; i < pwo; i += 8) {
        fpi_first_pool_image6(rp, pe, i, w, m);
        fpi_first_pool_image5(rp, pe, i, w + 6 * 27, m + 6 * 8);
        fpi_first_pool_image5(rp, pe, i, w + 11 * 27, m + 11 * 8);
        __m256 r[16];
        for (int f = 0; f < 16; f++) r[f] = fpi_first_act(_mm256_load_ps(m + 8 * f), l->bias[f], l->act);
        int nv = pwo - i < 8 ? pwo - i : 8;
        fpi_first_store8x8(r, o0 + (size_t)i * 8, nv);
        fpi_first_store8x8(r + 8, o1 + (size_t)i * 8, nv);
    }
}

/* ---- Winograd's F(2x2, 3x3) for an image's 16 filters ------------------
 *
 * A pair of output rows and two output columns (a tile) come from 4 x 4
 * padded input pixels: the pair's four rows, columns 2i .. 2i + 3 of tile
 * i, which are the split rows' e[i], o[i], e[i + 1], o[i + 1] (the same
 * loads as the direct sums'). Per tile and filter, Y = A' [U . V] A with
 * V = B' d B per channel (adds only) and U = G g G' (fpi_first_wino_setup):
 * 16 products per channel where the direct sums take 36 (wino.c for the
 * deeper layers; Lavin and Gray 2016). With 3 channels and 16 filters the
 * 16 points' products are small: per point, 3 broadcast weights per filter
 * feed 3 FMAs into each of two vectors of 8 tiles, which go to a scratch;
 * then per filter and 8 tiles the 16 points' sums give the tile's 4 outputs
 * with 24 adds, and the fused 2x2 max takes 3 (the pool's windows are the
 * tiles). The transforms only add, subtract and halve, so the sums differ
 * from the direct ones by rounding alone; fused and unfused runs, which
 * both take this path, give the same bits. */

/* V = B' d B of one vector of tiles from tile i on (8 with AVX2, 16 with
 * AVX-512) of the pair (eo, pe as fpi_first_eo reads them) in channel c:
 * point p's vector at o + p * ps. One body for both: V the vector type, P
 * the intrinsics' prefix. */
#define FPI_FIRST_WINO_IN(NAME, TARGET, V, P)                                                                          \
    __attribute__((target(TARGET), always_inline)) static inline void NAME(const float *const *eo, size_t pe, int i,  \
                                                                           int c, float *o, size_t ps)                 \
    {                                                                                                                  \
        V d[4][4];                                                                                                     \
        for (int r = 0; r < 4; r++) {                                                                                  \
            const float *re = eo[c * 4 + r] + i, *ro = re + pe;                                                        \
            d[r][0] = P##_loadu_ps(re), d[r][1] = P##_loadu_ps(ro);                                                    \
            d[r][2] = P##_loadu_ps(re + 1), d[r][3] = P##_loadu_ps(ro + 1);                                            \
        }                                                                                                              \
        for (int a = 0; a < 4; a++, o += 4 * ps) {                                                                     \
            /* B' d: the rows' combinations, column by column; then B: the columns' */                                 \
            V s[4];                                                                                                    \
            for (int k = 0; k < 4; k++)                                                                                \
                s[k] = a == 0   ? P##_sub_ps(d[0][k], d[2][k])                                                         \
                       : a == 1 ? P##_add_ps(d[1][k], d[2][k])                                                         \
                       : a == 2 ? P##_sub_ps(d[2][k], d[1][k])                                                         \
                                : P##_sub_ps(d[1][k], d[3][k]);                                                        \
            P##_store_ps(o, P##_sub_ps(s[0], s[2]));                                                                   \
            P##_store_ps(o + ps, P##_add_ps(s[1], s[2]));                                                              \
            P##_store_ps(o + 2 * ps, P##_sub_ps(s[2], s[1]));                                                          \
            P##_store_ps(o + 3 * ps, P##_sub_ps(s[1], s[3]));                                                          \
        }                                                                                                              \
    }
FPI_FIRST_WINO_IN(fpi_first_wino_vin, "avx2,fma", __m256, _mm256)
FPI_FIRST_WINO_IN(fpi_first_w16_vin, "avx512f", __m512, _mm512)
#undef FPI_FIRST_WINO_IN

/* The same for tiles [i + 8t, i + 8t + 8) into fpi_first_wino_point's
 * scratch: point p, channel c, vector t at v + ((p * 3 + c) * 2 + t) * 8. */
__attribute__((target("avx2,fma"), always_inline)) static inline void fpi_first_wino_in(const float *const *eo,
                                                                                      size_t pe, int i, int c, int t,
                                                                                      float *v)
{
    fpi_first_wino_vin(eo, pe, i + 8 * t, c, v + (c * 2 + t) * 8, 3 * 2 * 8);
}

/* Point p's products for the 16 filters (u: fpi_first_wino_setup's): the
 * sums over the channels for filter f and vector t at
 * m + ((f * 16 + p) * 2 + t) * 8. */
__attribute__((target("avx2,fma"), always_inline)) static inline void fpi_first_wino_point(const float *v,
                                                                                         const float *u, int p,
                                                                                         float *m)
{
    const float *vp = v + p * 3 * 2 * 8;
    __m256 x00 = _mm256_load_ps(vp), x01 = _mm256_load_ps(vp + 8), x10 = _mm256_load_ps(vp + 16),
           x11 = _mm256_load_ps(vp + 24), x20 = _mm256_load_ps(vp + 32), x21 = _mm256_load_ps(vp + 40);
    const float *up = u + p * 16 * 4;
    for (int f = 0; f < 16; f++) {
        __m256 b = _mm256_broadcast_ss(up + f * 4);
        __m256 s0 = _mm256_mul_ps(x00, b), s1 = _mm256_mul_ps(x01, b);
        b = _mm256_broadcast_ss(up + f * 4 + 1);
        s0 = _mm256_fmadd_ps(x10, b, s0), s1 = _mm256_fmadd_ps(x11, b, s1);
        b = _mm256_broadcast_ss(up + f * 4 + 2);
        s0 = _mm256_fmadd_ps(x20, b, s0), s1 = _mm256_fmadd_ps(x21, b, s1);
        float *o = m + ((size_t)(f * 16 + p) * 2) * 8;
        _mm256_store_ps(o, s0), _mm256_store_ps(o + 8, s1);
    }
}

/* A' M A for the 8 tiles whose 16 points' sums are at m, 16 floats apart:
 * y[0], y[1] the pair's first row's even and odd columns, y[2], y[3] the
 * second's. */
__attribute__((target("avx2,fma"), always_inline)) static inline void fpi_first_wino_out(const float *m, __m256 *y)
{
    __m256 r0[4], r1[4];
    for (int b = 0; b < 4; b++) {
        __m256 m0 = _mm256_load_ps(m + b * 16), m1 = _mm256_load_ps(m + (4 + b) * 16),
               m2 = _mm256_load_ps(m + (8 + b) * 16), m3 = _mm256_load_ps(m + (12 + b) * 16);
        __m256 s = _mm256_sub_ps(m1, m2);
        r0[b] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
        r1[b] = _mm256_sub_ps(s, m3);
    }
    y[0] = _mm256_add_ps(_mm256_add_ps(r0[0], r0[1]), r0[2]);
    y[1] = _mm256_sub_ps(_mm256_sub_ps(r0[1], r0[2]), r0[3]);
    y[2] = _mm256_add_ps(_mm256_add_ps(r1[0], r1[1]), r1[2]);
    y[3] = _mm256_sub_ps(_mm256_sub_ps(r1[1], r1[2]), r1[3]);
}

/* Stores block k's pooled columns (r[t][f]: filter f's 8 tiles of vector t)
 * as fpi_first_wino_pool says. */
__attribute__((target("avx2,fma"), always_inline)) static inline void fpi_first_wino_store(__m256 r[2][16], float *o0,
                                                                                         size_t psb, int blk, int i,
                                                                                         int pwo)
{
    for (int t = 0; t < 2 && i + 8 * t < pwo; t++) {
        int i8 = i + 8 * t, nv = pwo - i8 < 8 ? pwo - i8 : 8;
        if (blk == 8) {
            fpi_first_store8x8(r[t], o0 + (size_t)i8 * 8, nv);
            fpi_first_store8x8(r[t] + 8, o0 + psb + (size_t)i8 * 8, nv);
        } else if (blk) {
            for (int f0 = 0; f0 < 16; f0 += 4)
                fpi_first_store_blk(r[t] + f0, o0 + (size_t)(f0 / blk) * psb + (size_t)i8 * blk + f0 % blk, blk, nv);
        } else {
            for (int f = 0; f < 16; f++) fpi_avx2_store_part(o0 + (size_t)f * psb + i8, r[t][f], nv);
        }
    }
}

/* The pair's pooled row of the 16 filters by the transform: nChw8c
 * (blk 8: o0, o1 the two blocks' row), or blocked by blk, or C x H x W
 * (blk 0: filter f's row at o0 + f * psb). Software-pipelined: while the
 * products of a block of 16 tiles are made (FMAs), the previous block's
 * outputs are (adds and maxima, which other pipes run), point by point,
 * one filter's per point. The face detector's pooled rows alone, one
 * thread, on an AMD EPYC (Zen 5): 1.12 ms with the two one after the
 * other, 0.96-0.97 pipelined, against 1.52-1.55 for the direct sums
 * (fpi_first_pool16) interleaved in the same process (2 x 300 passes:
 * 1.57x and 1.58x, medians of the pairs' ratios); with the input's
 * transform pipelined too, 1.43-1.52x. */
__attribute__((target("avx2,fma"))) static void fpi_first_wino_pool(const float *const *eo, size_t pe,
                                                                    const fpi_layer *l, float *o0, size_t psb, int blk,
                                                                    int pwo)
{
    float v[16 * 3 * 2 * 8] __attribute__((aligned(32)));
    float m[2][16 * 16 * 2 * 8] __attribute__((aligned(32)));
    __m256 r[2][16];
    const float *u = l->first_wino;
    int nb = (pwo + FPI_FW_TILES - 1) / FPI_FW_TILES;
    for (int k = 0; k <= nb; k++) {
        float *mc = m[k & 1];
        const float *mp = m[(k + 1) & 1];
        if (k < nb)
            for (int c = 0; c < 3; c++)
                for (int t = 0; t < 2; t++) fpi_first_wino_in(eo, pe, k * FPI_FW_TILES, c, t, v);
        for (int p = 0; p < 16; p++) {
            if (k < nb) fpi_first_wino_point(v, u, p, mc);
            if (k == 0) continue;
            for (int t = 0; t < 2; t++) {
                /* filter p's pool: the 2x2 max in the direct kernel's order */
                __m256 y[4];
                fpi_first_wino_out(mp + ((size_t)p * 16 * 2 + t) * 8, y);
                __m256 x = _mm256_max_ps(y[1], y[0]);
                x = _mm256_max_ps(y[2], x);
                x = _mm256_max_ps(y[3], x);
                r[t][p] = fpi_first_act(x, l->bias[p], l->act);
            }
        }
        if (k > 0) fpi_first_wino_store(r, o0, psb, blk, (k - 1) * FPI_FW_TILES, pwo);
    }
}

/* The pair's output rows y (and y + 1 when nr is 2) of the 16 filters by
 * the transform, after bias and activation, into out (C x H x W). */
__attribute__((target("avx2,fma"))) static void fpi_first_wino_rows(const float *const *eo, size_t pe,
                                                                    const fpi_layer *l, float *out, int y, int nr)
{
    int oh = l->out.h, ow = l->out.w, tiles = (ow + 1) / 2;
    float v[16 * 3 * 2 * 8] __attribute__((aligned(32)));
    float m[16 * 16 * 2 * 8] __attribute__((aligned(32)));
    for (int i = 0; i < tiles; i += FPI_FW_TILES) {
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < 2; t++) fpi_first_wino_in(eo, pe, i, c, t, v);
        for (int p = 0; p < 16; p++) fpi_first_wino_point(v, l->first_wino, p, m);
        for (int t = 0; t < 2 && i + 8 * t < tiles; t++) {
            int x = 2 * (i + 8 * t);
            for (int f = 0; f < 16; f++) {
                __m256 yv[4], b = _mm256_set1_ps(l->bias[f]);
                fpi_first_wino_out(m + ((size_t)f * 16 * 2 + t) * 8, yv);
                for (int oy = 0; oy < nr; oy++) {
                    __m256 e = fpi_avx2_bias_act(yv[2 * oy], b, l->act), od = fpi_avx2_bias_act(yv[2 * oy + 1], b, l->act);
                    __m256 lo = _mm256_unpacklo_ps(e, od), hi = _mm256_unpackhi_ps(e, od);
                    float *row = out + ((size_t)f * oh + y + oy) * ow + x;
                    int n = ow - x;
                    fpi_avx2_store_part(row, _mm256_permute2f128_ps(lo, hi, 0x20), n);
                    if (n > 8) fpi_avx2_store_part(row + 8, _mm256_permute2f128_ps(lo, hi, 0x31), n - 8);
                }
            }
        }
    }
}

/* ---- the same sums with AVX-512: 16 filters to a vector ----------------
 *
 * Where the CPU has AVX-512 (oneDNN's kernels then run the other layers,
 * handed nChw16c), a vector holds the 16 filters of one tile, so the
 * pooled map comes out in nChw16c as it is made. The input's transform
 * goes as above, 16 tiles to a vector, into a scratch the products read a
 * tile at a time (each V scalar broadcast from memory into an FMA); per
 * point the three channels' transformed weights stay in registers. The
 * products and sums are those of the AVX2 path, in the same order: the
 * same bits. */

/* V of tiles [i, i + 16), channel c: point p's 16 tiles at v + (p * 3 + c) * 16. */
__attribute__((target("avx512f"), always_inline)) static inline void fpi_first_w16_in(const float *const *eo, size_t pe,
                                                                                    int i, int c, float *v)
{
    fpi_first_w16_vin(eo, pe, i, c, v + c * 16, 3 * 16);
}

/* Column b's weights: point (a, b)'s channel c at w[a][c] (u: the
 * weights, point p's channel c's 16 filters at u + (p * 3 + c) * 16). */
__attribute__((target("avx512f"), always_inline)) static inline void fpi_first_w16_weights(const float *u, int b,
                                                                                         __m512 w[4][3])
{
    for (int a = 0; a < 4; a++)
        for (int c = 0; c < 3; c++) w[a][c] = _mm512_loadu_ps(u + ((a * 4 + b) * 3 + c) * 16);
}

/* Column b's four points (a, b) of tile j: their products (v:
 * fpi_first_w16_in's), then at once A' of them, the output transform's
 * first half: its rows 0 and 1 into *r0, *r1. The same operations in the
 * same order as fpi_first_wino_out's. */
__attribute__((target("avx512f"), always_inline)) static inline void
fpi_first_w16_tile(const float *v, __m512 w[4][3], int b, int j, __m512 *r0, __m512 *r1)
{
    __m512 s[4];
    for (int a = 0; a < 4; a++) {
        const float *vp = v + (a * 4 + b) * 3 * 16 + j;
        s[a] = _mm512_mul_ps(_mm512_set1_ps(vp[0]), w[a][0]);
        s[a] = _mm512_fmadd_ps(_mm512_set1_ps(vp[16]), w[a][1], s[a]);
        s[a] = _mm512_fmadd_ps(_mm512_set1_ps(vp[32]), w[a][2], s[a]);
    }
    *r0 = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), s[2]);
    *r1 = _mm512_sub_ps(_mm512_sub_ps(s[1], s[2]), s[3]);
}

/* Column b of the 16 tiles (fpi_first_w16_tile): tile j's two sums at
 * m + (j * 4 + b) * 2 * 16. */
__attribute__((target("avx512f"), always_inline)) static inline void fpi_first_w16_col(const float *v,
                                                                                     const float *u, int b, float *m)
{
    __m512 w[4][3], r0, r1;
    fpi_first_w16_weights(u, b, w);
    for (int j = 0; j < 16; j++) {
        fpi_first_w16_tile(v, w, b, j, &r0, &r1);
        float *o = m + ((size_t)j * 4 + b) * 2 * 16;
        _mm512_store_ps(o, r0);
        _mm512_store_ps(o + 16, r1);
    }
}

/* The output transform's second half for one tile (r0[b], r1[b]: column b's
 * two sums): y as fpi_first_wino_out's. */
__attribute__((target("avx512f"), always_inline)) static inline void fpi_first_w16_out(const __m512 *r0,
                                                                                     const __m512 *r1, __m512 *y)
{
    y[0] = _mm512_add_ps(_mm512_add_ps(r0[0], r0[1]), r0[2]);
    y[1] = _mm512_sub_ps(_mm512_sub_ps(r0[1], r0[2]), r0[3]);
    y[2] = _mm512_add_ps(_mm512_add_ps(r1[0], r1[1]), r1[2]);
    y[3] = _mm512_sub_ps(_mm512_sub_ps(r1[1], r1[2]), r1[3]);
}

/* Columns 0 .. n - 1 of tile t's sums, as fpi_first_w16_col leaves them. */
__attribute__((target("avx512f"), always_inline)) static inline void fpi_first_w16_load(const float *t, int n,
                                                                                      __m512 *r0, __m512 *r1)
{
    for (int b = 0; b < n; b++) r0[b] = _mm512_load_ps(t + b * 32), r1[b] = _mm512_load_ps(t + b * 32 + 16);
}

/* Stores the 16 filters' values x of pooled column col: nChw16c / nChw8c
 * (blk 16 / 8), or C x H x W (blk 0), as fpi_first_wino_pool says. */
__attribute__((target("avx512f"), always_inline)) static inline void fpi_first_w16_store(float *o0, size_t psb, int blk,
                                                                                       int col, __m512 x)
{
    if (blk == 16) {
        _mm512_storeu_ps(o0 + (size_t)col * 16, x);
    } else if (blk == 8) {
        _mm256_storeu_ps(o0 + (size_t)col * 8, _mm512_castps512_ps256(x));
        _mm256_storeu_ps(o0 + psb + (size_t)col * 8, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    } else {
        float t[16];
        _mm512_storeu_ps(t, x);
        for (int f = 0; f < 16; f++) o0[(size_t)f * psb + col] = t[f];
    }
}

/* Column 3 of the 16 tiles (fpi_first_w16_tile), each tile then finished
 * at once (the other columns' sums from m), pooled, and stored (pooled
 * column col0 + j; those from pwo on are not): the output transform's adds
 * and the maxima run beside this column's FMAs. */
__attribute__((target("avx512f"), always_inline)) static inline void
fpi_first_w16_last(const float *v, const float *u, const float *m, int col0, int pwo, float *o0, size_t psb, int blk,
                   __m512 bias, fp_activation act)
{
    __m512 w[4][3];
    fpi_first_w16_weights(u, 3, w);
    for (int j = 0; j < 16 && col0 + j < pwo; j++) {
        __m512 r0[4], r1[4], y[4];
        fpi_first_w16_tile(v, w, 3, j, &r0[3], &r1[3]);
        fpi_first_w16_load(m + (size_t)j * 8 * 16, 3, r0, r1);
        fpi_first_w16_out(r0, r1, y);
        __m512 x = _mm512_max_ps(y[1], y[0]);
        x = _mm512_max_ps(y[2], x);
        x = _mm512_max_ps(y[3], x);
        fpi_first_w16_store(o0, psb, blk, col0 + j, fpi_avx512_bias_act(x, bias, act));
    }
}

/* fpi_first_wino_pool with AVX-512: per block of 16 tiles, the input's
 * transform, columns 0-2 (fpi_first_w16_col), then column 3 with each
 * tile finished (fpi_first_w16_last). */
__attribute__((target("avx512f"))) static void fpi_first_w16_pool(const float *const *eo, size_t pe,
                                                                  const fpi_layer *l, float *o0, size_t psb, int blk,
                                                                  int pwo)
{
    float v[16 * 3 * 16] __attribute__((aligned(64)));
    float m[16 * 8 * 16] __attribute__((aligned(64)));
    const float *u = l->first_wino + FPI_FW_U16;
    __m512 bias = _mm512_loadu_ps(l->bias);
    for (int i = 0; i < pwo; i += 16) {
        for (int c = 0; c < 3; c++) fpi_first_w16_in(eo, pe, i, c, v);
        for (int b = 0; b < 3; b++) fpi_first_w16_col(v, u, b, m);
        fpi_first_w16_last(v, u, m, i, pwo, o0, psb, blk, bias, l->act);
    }
}

/* fpi_first_wino_rows with AVX-512. */
__attribute__((target("avx512f"))) static void fpi_first_w16_rows(const float *const *eo, size_t pe,
                                                                  const fpi_layer *l, float *out, int y, int nr)
{
    int oh = l->out.h, ow = l->out.w, tiles = (ow + 1) / 2;
    float v[16 * 3 * 16] __attribute__((aligned(64)));
    float m[16 * 8 * 16] __attribute__((aligned(64)));
    const float *u = l->first_wino + FPI_FW_U16;
    __m512 bias = _mm512_loadu_ps(l->bias);
    for (int i = 0; i < tiles; i += 16) {
        for (int c = 0; c < 3; c++) fpi_first_w16_in(eo, pe, i, c, v);
        for (int b = 0; b < 4; b++) fpi_first_w16_col(v, u, b, m);
        for (int j = 0; j < 16 && i + j < tiles; j++) {
            __m512 r0[4], r1[4], yv[4];
            fpi_first_w16_load(m + (size_t)j * 8 * 16, 4, r0, r1);
            fpi_first_w16_out(r0, r1, yv);
            for (int q = 0; q < 2 * nr; q++) {
                int x = 2 * (i + j) + (q & 1);
                if (x >= ow) continue;
                float t[16];
                _mm512_storeu_ps(t, fpi_avx512_bias_act(yv[q], bias, l->act));
                for (int f = 0; f < 16; f++) out[((size_t)f * oh + y + (q >> 1)) * ow + x] = t[f];
            }
        }
    }
}

/* Filters f0..f0+3, pooled columns [i, i + 8) of the pair (nv of them
 * stored): both rows' sums, the 2x2 max in the reference's order ((0,0),
 * (0,1), (1,0), (1,1); MAXPS(v, m) is v > m ? v : m), then bias and
 * activation (x -> act(x + b) never decreases, so the values are those of
 * the unfused kernel pooled, bit for bit) into o + f * plane, or, when blk,
 * the blocked layout (fpi_first_store_blk). */
__attribute__((target("avx2,fma"))) static void fpi_first_block_pool(const float *const *eo, size_t pe, const float *w,
                                                                     size_t ksz, const float *bias,
                                                                     fp_activation act, int c_in, int i, float *o,
                                                                     size_t plane, int nv, int blk)
{
    __m256 e0[4], o0[4], e1[4], o1[4], r[4];
    if (c_in == 3) { /* an image: the taps' loop unrolled whole */
        fpi_first_eo(eo, pe, 3, 0, w, 27, i, e0, o0);
        fpi_first_eo(eo, pe, 3, 1, w, 27, i, e1, o1);
    } else {
        fpi_first_eo(eo, pe, c_in, 0, w, ksz, i, e0, o0);
        fpi_first_eo(eo, pe, c_in, 1, w, ksz, i, e1, o1);
    }
    for (int f = 0; f < 4; f++) {
        __m256 m = _mm256_max_ps(o0[f], e0[f]);
        m = _mm256_max_ps(e1[f], m);
        m = _mm256_max_ps(o1[f], m);
        r[f] = fpi_first_act(m, bias[f], act);
    }
    if (blk) {
        fpi_first_store_blk(r, o, blk, nv);
        return;
    }
    for (int f = 0; f < 4; f++) {
        float *of = o + (size_t)f * plane;
        if (nv >= 8) {
            _mm256_storeu_ps(of, r[f]);
        } else {
            float v[8];
            _mm256_storeu_ps(v, r[f]);
            memcpy(of, v, (size_t)nv * sizeof(float));
        }
    }
}

/* The pair's input rows (y - pad .. y - pad + 3 of each channel) split
 * (fpi_first_split) into eo (channel c's row r at eo[c * 4 + r], its odd
 * columns pe after), each split once for the two pairs that read it: a
 * slot of 4 per channel (row iy in slot iy mod 4; fpi_first_rows_reset). */
static void fpi_first_split_pair(const fpi_first_task *t, int y, float *pad, const float **eo)
{
    const fpi_layer *l = t->l;
    int c_in = l->in.c, h = l->in.h, w = l->in.w, p = l->p.conv.pad;
    size_t pe = (size_t)t->g.pe;
    int *held = (int *)pad;
    for (int c = 0; c < c_in; c++)
        for (int r = 0; r < 4; r++) {
            int iy = y - p + r, k = c * 4 + ((iy + 4) & 3);
            float *e = pad + FPI_FIRST_HELD + (size_t)k * 2 * pe;
            eo[c * 4 + r] = e;
            if (held[k] == iy) continue;
            held[k] = iy;
            if (iy < 0 || iy >= h) {
                memset(e, 0, 2 * pe * sizeof *e);
                continue;
            }
            fpi_first_split(t->rows ? t->rows->row(t->rows->ctx, c, iy) : t->in + ((size_t)c * h + iy) * w, w, p, e,
                            e + pe, (int)pe);
            /* the row the next pair splits asked for now: the input
             * comes from memory (the preparation streams it there);
             * the face detector end to end, one thread, median of
             * 12 alternating runs of 100: 1.012x, no run slower */
            if (!t->rows && iy + 2 < h) fpi_prefetch(t->in + ((size_t)c * h + iy + 2) * w, (size_t)w * sizeof(float));
        }
}

/* Output rows y and y + 1 (when there is one) of every filter. */
static void fpi_first_pair(const fpi_first_task *t, int y, float *pad, float *rows)
{
    const fpi_layer *l = t->l;
    int c_in = l->in.c, oh = l->out.h, ow = l->out.w, f_n = l->p.conv.filters;
    int pw = t->g.pw, wr = t->g.wr, nr = y + 1 < oh ? 2 : 1, p = l->p.conv.pad;
    size_t ksz = (size_t)c_in * 9, fstride = 2 * (size_t)wr, pe = (size_t)t->g.pe;
    const float *eo[12];
    if (l->first_wino) {
        fpi_first_split_pair(t, y, pad, eo);
        if (!t->pooled) {
            (fpi_first_w512() ? fpi_first_w16_rows : fpi_first_wino_rows)(eo, pe, l, t->out, y, nr);
            return;
        }
        int row = y / 2 - t->py0, pwo = ow / 2;
        (fpi_first_w512() ? fpi_first_w16_pool : fpi_first_wino_pool)(
            eo, pe, l, t->pooled + (size_t)row * pwo * (t->blk ? t->blk : 1), t->psb, t->blk, pwo);
        return;
    }
    if (t->pooled) {
        /* the rows split, then pooled block by block, straight into the
         * pool's output: C x H x W, or blocked (filters f0..f0+3 are
         * lanes f0 % blk.. of block f0 / blk) */
        fpi_first_split_pair(t, y, pad, eo);
        int ph = oh / 2, pwo = ow / 2, blk = t->blk;
        if (c_in == 3 && f_n == 16 && blk == 8) {
            float *o = t->pooled + (size_t)(y / 2 - t->py0) * pwo * blk;
            fpi_first_pool16(eo, pe, l, o, o + t->psb, pwo);
            return;
        }
        for (int f0 = 0; f0 < f_n; f0 += 4) {
            float *o = blk ? t->pooled + (size_t)(f0 / blk) * t->psb + (size_t)(y / 2 - t->py0) * pwo * blk + f0 % blk
                           : t->pooled + (size_t)f0 * t->psb + (size_t)(y / 2 - t->py0) * pwo;
            for (int i = 0; i < pwo; i += 8)
                fpi_first_block_pool(eo, pe, l->kernel + (size_t)f0 * ksz, ksz, l->bias + f0, l->act, c_in, i,
                                     o + (size_t)i * (blk ? blk : 1), (size_t)ph * pwo, pwo - i < 8 ? pwo - i : 8,
                                     blk);
        }
        return;
    }
    int h = l->in.h, w = l->in.w;
    for (int c = 0; c < c_in; c++)
        for (int r = 0; r < 4; r++) {
            float *d = pad + ((size_t)c * 4 + r) * pw;
            int iy = y - p + r;
            if (iy < 0 || iy >= h) {
                memset(d, 0, (size_t)pw * sizeof *d);
                continue;
            }
            if (p) d[0] = 0;
            memcpy(d + p, t->in + ((size_t)c * h + iy) * w, (size_t)w * sizeof *d);
            memset(d + p + w, 0, (size_t)(pw - p - w) * sizeof *d);
        }
    for (int f0 = 0; f0 < f_n; f0 += 4)
        for (int oy = 0; oy < nr; oy++)
            for (int x = 0; x < wr; x += FPI_FIRST_COLS)
                (ow - x <= 8 ? fpi_first_block8 : fpi_first_block)(pad, l->kernel + (size_t)f0 * ksz, l->bias + f0,
                                                                   l->act, c_in, pw, oy,
                                                                   rows + (size_t)f0 * fstride + (size_t)oy * wr + x,
                                                                   fstride, x);
    for (int f = 0; f < f_n; f++)
        for (int oy = 0; oy < nr; oy++)
            memcpy(t->out + ((size_t)f * oh + y + oy) * ow, rows + (size_t)f * fstride + (size_t)oy * wr,
                   (size_t)ow * sizeof(float));
}

/* Task k: bands of row pairs in workspace slot k until none are left. */
static void fpi_first_task_run(int k, void *vctx)
{
    fpi_first_task *t = vctx;
    float *pad = t->ws + (size_t)k * t->g.slot, *rows = pad + (size_t)t->l->in.c * 4 * t->g.pw;
    if (t->pooled || t->l->first_wino) fpi_first_rows_reset(t->l, pad);
    for (int b; (b = atomic_fetch_add(&t->next, 1)) < t->g.bands;) {
        int p1 = (b + 1) * t->g.per < t->g.pairs ? (b + 1) * t->g.per : t->g.pairs;
        for (int p = b * t->g.per; p < p1; p++) fpi_first_pair(t, 2 * p, pad, rows);
    }
}

static int fpi_first_run(const fpi_layer *l, const float *in, float *out, float *pooled, const fpi_exec *x)
{
    if (!l->conv_first || !fpi_fast_enabled() || !x->workspace) return 0;
    /* handed on when the layer it goes to runs now, unseen */
    int blk = pooled && x->handoff && l->first_hand_to >= 0 && l->first_hand_to <= x->last ? l->first_hand_blk : 0;
    size_t plane = (size_t)(l->out.h / 2) * (l->out.w / 2);
    fpi_first_task t = {l, in, NULL, out, pooled, blk, blk ? plane * blk : plane, 0, x->workspace,
                        fpi_first_geometry(l), 0};
    int tasks = fpi_pool_threads(x->pool);
    fpi_parallel_for(x->pool, tasks < t.g.bands ? tasks : t.g.bands, fpi_first_task_run, &t);
    return 1;
}

int fpi_conv_first(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    return fpi_first_run(l, src[0], out, NULL, x);
}

size_t fpi_first_row_floats(const fpi_layer *l)
{
    return FPI_FIRST_HELD + (size_t)l->in.c * 4 * 2 * fpi_first_geometry(l).pe;
}

void fpi_first_rows_reset(const fpi_layer *l, float *scratch)
{
    int *held = (int *)scratch;
    for (int k = 0; k < 4 * l->in.c; k++) held[k] = INT_MIN;
}

void fpi_first_pooled_row(const fpi_layer *l, const float *in, const fpi_rows *rows, int py, float *o, size_t osb,
                          float *scratch)
{
    fpi_first_task t = {l, in, rows, NULL, o, 8, osb, py, NULL, fpi_first_geometry(l), 0};
    fpi_first_pair(&t, 2 * py, scratch, NULL);
}

int fpi_conv_pool_first(const fpi_layer *l, const fpi_layer *pool, const float *const *src, float *pooled,
                        const fpi_exec *x)
{
    if (!l->conv_first_pool || pool->index != l->index + 1) return 0;
    return fpi_first_run(l, src[0], NULL, pooled, x);
}

#else /* elsewhere: the other kernels */

void fpi_conv_first_force(int on) { (void)on; }
void fpi_conv_first_wino(int on) { (void)on; }
int fpi_conv_first_cpu(void) { return 0; }
int fpi_conv_first_takes(const fpi_layer *l) { return 0; }
void fpi_first_setup(fp_net *net) { (void)net; }
int fpi_conv_first(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x) { return 0; }
size_t fpi_first_row_floats(const fpi_layer *l) { return 0; }
void fpi_first_rows_reset(const fpi_layer *l, float *scratch) { (void)l, (void)scratch; }
void fpi_first_pooled_row(const fpi_layer *l, const float *in, const fpi_rows *rows, int py, float *o, size_t osb,
                          float *scratch)
{
    (void)l, (void)in, (void)rows, (void)py, (void)o, (void)osb, (void)scratch;
}
int fpi_conv_pool_first(const fpi_layer *l, const fpi_layer *pool, const float *const *src, float *pooled,
                        const fpi_exec *x)
{
    return 0;
}

#endif
