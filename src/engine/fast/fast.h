/*
 * fast.h — optional fast kernels, picked at run time, each tested against the
 * reference kernel of its op (tests/test_fast.c). Internal: not API.
 *
 * The pieces:
 *   cpu.c   CPU features from cpuid (x86-64) or the auxiliary vector (arm64);
 *           no model-name tables.
 *   dnnl.c  convolutions (one group, depthwise) through oneDNN's JIT kernels
 *           on x86-64 when the build found oneDNN 2.x (FP_ONEDNN) and
 *           libdnnl.so.2 loads; prepared per layer at fp_net_setup, tried
 *           before the kernels below; with fp_net_run's hand-offs
 *           (fpi_exec.handoff), fused max pools and the blocked layout
 *           (nChw16c on AVX-512, nChw8c on AVX2) between layers.
 *   conv_first.c  first layers (3x3/1, 1-3 input channels) on x86-64 CPUs
 *           with AVX2 and FMA but no AVX-512, where it beats oneDNN's
 *           kernel: its own FMA loop, the 2x2/2 max pool after it fused
 *           (handed on in oneDNN's blocked layout where the next layer
 *           reads it).
 *   conv1x1.c  1x1 stride-1 convolutions over 8-channel vectors (AVX2 +
 *           FMA), the 2x2/2 max pool after them fused in registers; the
 *           pieces of such layers cut by rows run it in place of oneDNN's
 *           kernel when oneDNN works in nChw8c (dnnl.c), reading a
 *           handed-on input where it lies instead of copying its rows out.
 *   dw3x3.c  3x3 stride-1 depthwise convolutions over 8-channel vectors
 *           (AVX2 + FMA), for the depthwise layers oneDNN would cut by
 *           blocks of channels in nChw8c (dnnl.c); a depthwise layer handed
 *           on to a 1x1 layer of conv1x1.c is computed inside it, row by row.
 *   conv3x3.c  3x3 stride-1 convolutions over nChw8c maps (AVX2 + FMA), 3
 *           pixels x 32 filters a tile, the pixels any 3 in a row of the map;
 *           the pieces of such layers run it on the memories oneDNN's kernel
 *           would read and write (dnnl.c).
 *   wino.c  the same layers by Winograd's F(2x2, 3x3) on maps of 7 x 7
 *           and more (dnnl.c decides): the input transformed once per run,
 *           each piece's weights chunk by chunk as it goes; and the 3x3
 *           layers oneDNN would cut by rows, up to 64 input channels (their
 *           weights transformed once, at setup), the 2x2/2 max pool after
 *           them fused.
 *   avx2.h  helpers those five share (bias and activation on a vector).
 *   blas.c  OpenBLAS loaded with dlopen on first use, after steering its
 *           kernel choice (OPENBLAS_CORETYPE) from those features and pinning
 *           it to one thread (the engine's pool parallelises). Absent library:
 *           the GEMM-based kernels decline and the reference kernels run.
 *   *_fast.c the kernels: convolution as (tiled im2col +) sgemm with bias and
 *           activation fused into one pass, a direct depthwise loop,
 *           connected as sgemv, maxpool without per-element bounds checks,
 *           and over oneDNN's layouts a vector of channels at a time (the
 *           fused and handed-on pools of dnnl.c); the logistic and the
 *           region softmax in float (act_fast.c).
 *
 * Each fpi_*_fast() hook returns 1 when it computed the layer's output and 0
 * when it declined (fast kernels off, no library, unsupported shape); the
 * caller then runs its reference kernel. Results agree with the reference to
 * float rounding (the summation order differs), not bit for bit.
 *
 * FP_NO_FAST=1 in the environment turns every fast kernel off (the
 * reference kernels run); it is read once, on first use.
 */
#ifndef FP_ENGINE_FAST_H
#define FP_ENGINE_FAST_H

#include "common/common.h"
#include "engine/net_impl.h"


/* CPU features the kernels and the BLAS choice depend on. */
typedef struct fpi_cpu {
    int x86;      /* x86-64 */
    int arm64;    /* aarch64 */
    int avx2;     /* AVX2 usable (CPU and OS) */
    int fma;      /* FMA3 */
    int avx512;   /* AVX-512 F+BW+DQ+VL usable (CPU and OS) */
    int neon;     /* arm64 Advanced SIMD */
} fpi_cpu;

/* The features of the running CPU, detected once; never NULL. */
const fpi_cpu *fpi_cpu_get(void);

/* OpenBLAS kernel family (OPENBLAS_CORETYPE value) for these features, or
 * NULL to leave OpenBLAS's own choice: "SkylakeX" for AVX-512 F+BW+DQ+VL,
 * "Haswell" for AVX2+FMA. */
const char *fpi_cpu_blas_coretype(const fpi_cpu *cpu);

/* Row-major CBLAS constants (cblas.h values; the header is not needed). */
enum { FPI_CBLAS_ROW_MAJOR = 101, FPI_CBLAS_NO_TRANS = 111, FPI_CBLAS_TRANS = 112 };

/* The dlopen'd BLAS entry points. */
typedef struct fpi_blas {
    void (*sgemm)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc); /* cblas_sgemm */
    void (*sgemv)(int order, int ta, int m, int n, float alpha, const float *a, int lda,
                  const float *x, int incx, float beta, float *y, int incy); /* cblas_sgemv */
    char desc[80]; /* e.g. "OpenBLAS 0.3.21 SkylakeX (forced from cpuid)" */
} fpi_blas;

/* Which kernels run (tests force each path). */
typedef enum fpi_fast_mode {
    FPI_FAST_AUTO = 0, /* fast kernels unless FP_NO_FAST is set; BLAS if it loads */
    FPI_FAST_OFF,      /* reference kernels only */
    FPI_FAST_NO_BLAS,  /* fast direct kernels, but behave as if neither OpenBLAS nor oneDNN were installed */
    FPI_FAST_NO_DNNL,  /* as AUTO, but behave as if oneDNN were not installed */
} fpi_fast_mode;

/* Sets the mode for the whole process (tests); not thread-safe against
 * running networks. */
void fpi_fast_set_mode(fpi_fast_mode mode);

/* The mode last set (FPI_FAST_AUTO unless a test set another). */
fpi_fast_mode fpi_fast_get_mode(void);

/* Whether fast kernels run at all (mode, FP_NO_FAST). */
int fpi_fast_enabled(void);

/* The BLAS to use, loading it on the first call, or NULL when fast kernels
 * are off or no library could be loaded. Thread-safe. */
const fpi_blas *fpi_blas_get(void);

/* One line describing what runs, e.g. "fast: OpenBLAS ... SkylakeX; cpu:
 * avx512" or "reference kernels (FP_NO_FAST)". Static storage. */
const char *fpi_fast_describe(void);

/* Whether oneDNN can run: built with it, fast kernels and the mode allow
 * it, and libdnnl.so.2 loaded (on the first call; thread-safe). */
int fpi_dnnl_available(void);

/* "oneDNN 2.6.3", or why it does not run. Static storage. */
const char *fpi_dnnl_describe(void);

/* Prepares every [convolutional] layer of the network's range (but those
 * fpi_first_setup gave the first-layer kernel) with one
 * group or depthwise (one filter per channel) and at least 2 MFLOPs or 32K
 * outputs for oneDNN (l->dnnl: primitives, reordered weights, a 2x2/2 max
 * pool after it fused when only that pool reads its output, and hand-offs
 * in the blocked layout between adjacent prepared layers; l->workspace grows to what
 * its pieces need), after the weights are folded and before the arena is
 * planned. The library loads with the first such layer; nothing happens
 * when fpi_dnnl_available() is 0. A layer oneDNN declines keeps l->dnnl
 * NULL. Fails only with FP_ENOMEM; what was prepared stays with the layers
 * (fpi_dnnl_layer_destroy frees it). */
fp_status fpi_dnnl_setup(fp_net *net);

/* Test hook for the layers fpi_dnnl_setup prepares after the call: those of
 * at least min_flops (default 2e6; smaller ones stay with the other
 * kernels), cut into pieces of about piece_flops (default 25e6; 0: as many
 * pieces as the shape allows, up to 8; at least two from 8 MFLOP, scaled
 * with piece_flops). Not thread-safe. */
void fpi_dnnl_set_sizes(double min_flops, double piece_flops);

/* Test hook for the layers fpi_dnnl_setup prepares after the call: the
 * Winograd input transform held at once, at most (dnnl.c's FPI_WINO_V_MAX;
 * 0: that). Not thread-safe. */
void fpi_dnnl_set_wino_v_max(size_t bytes);

/* Writes the plain weights of every convolution whose plain copy setup gave
 * back (oneDNN holding them) from oneDNN's copy, for when other kernels
 * must run it (fp_net_run calls it when oneDNN may not run). FP_ENOMEM. */
fp_status fpi_dnnl_restore(fp_net *net);

/* Frees what fpi_dnnl_setup made for one layer; NULL is a no-op. */
void fpi_dnnl_layer_destroy(struct fpi_dnnl_layer *d);

/* The oneDNN implementation a prepared layer runs (e.g. "brgconv:avx512_core"),
 * or NULL when oneDNN does not run it. */
const char *fpi_dnnl_layer_impl(const fpi_layer *l);

/* The max pool layer prepared to run fused after convolution layer l
 * (fpi_conv_pool_dnnl), or -1. The arena keeps l's inputs alive until that
 * layer: they are read while its output is written. */
int fpi_dnnl_fused_pool(const fpi_layer *l);

/* The 1x1 layer depthwise layer l is fused into (fpi_conv_dw_dnnl), or -1.
 * The arena keeps l's inputs alive until that layer (or its fused pool). */
int fpi_dnnl_dw_into(const fpi_layer *l);

/* The layer l hands its result to in oneDNN's blocked layout (when both run in
 * one fp_net_run without a callback), or -1; for the first-layer kernel, the
 * layer after its fused pool. */
int fpi_dnnl_hands_to(const fpi_layer *l);

/* Convolution layer l and the max pool layer after it (the only reader of
 * l's output) in one pass: each piece pools its output while it is in cache
 * and in oneDNN's layout, so l's own output is never written. For
 * fp_net_run without a callback (the output of l is dead once the pool has
 * run). Returns 1 when it wrote the pool's output, 0 when l was not prepared
 * so (then run both layers as usual). */
int fpi_conv_pool_dnnl(const fpi_layer *l, const fpi_layer *pool, const float *const *src, float *pooled,
                       const fpi_exec *x);

/* A depthwise layer l fused into the 1x1 layer `next` after it (dnnl.c,
 * fpi_dnnl_setup: l's result handed on to next alone): when both run now
 * without a callback, runs next from l's input src, computing l's rows as
 * it goes, into out, or into `pooled` when next's max pool is fused and
 * runs now too. Returns the layers run (2, or 3 with the pool), else 0. */
int fpi_conv_dw_dnnl(const fpi_layer *l, const fpi_layer *next, const float *const *src, float *out, float *pooled,
                     const fpi_exec *x);

/* A first layer a whose pooled map goes to a depthwise layer fused into a
 * 1x1 layer, and on through such stages to a->first_chain (a trunk, set by
 * fpi_dnnl_setup): runs the stages that run now (without a callback, up
 * to x->last, on one thread) in one pass from a's input, making the rows of
 * the maps between as the next stage needs them (never a whole map), the last
 * stage's result (its 1x1 layer's output, or its fused pool's) into out.
 * Returns 1, or 0 when it does not run. fpi_first_chain_end: the layer whose
 * output that is, or -1 when the trunk does not run now. */
int fpi_first_chain_end(const fp_net *net, const fpi_layer *a, const fpi_exec *x);
int fpi_first_chain_dnnl(const fp_net *net, const fpi_layer *a, const float *in, float *out, const fpi_exec *x);

/* A [maxpool] layer prepared by fpi_dnnl_setup (one the fusion leaves, fed
 * in oneDNN's layout by the layer before it): pools in that layout when
 * the input came so in this run; 0 otherwise (the other kernels run). */
int fpi_maxpool_dnnl(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x);

/* A map of channel vectors, as oneDNN's blocked (nChw8c, nChw16c) and nhwc
 * layouts hold them, or the arena's nchw: the value of lane j of block b
 * at row y, column x is p[b * sb + y * sy + x * sx + j * sl]. */
typedef struct {
    float *p;
    size_t sb, sy, sx, sl;
} fpi_vmap;

/* Max pool of blocks [0, nb) of `lanes` channels (8 or 16; in->sl == 1),
 * the last block storing only its first `last` lanes: output rows [py0,
 * py1) x columns [0, pw) into out (whose row 0 is row py0) from in, which
 * holds rows [r0, r1) of a map w wide (its row 0 is row r0). Window k,
 * stride s, `before` cells of padding above and to the left (darknet's
 * pad / 2); cells outside [r0, r1) x [0, w) are skipped, as the reference
 * kernel skips those outside the map, and compared in its order, so the
 * result is the same bit for bit (maxpool_fast.c). */
void fpi_maxpool_vec(const fpi_vmap *in, const fpi_vmap *out, int nb, int lanes, int last, int r0, int r1, int w,
                     int py0, int py1, int pw, int k, int s, int before);

/* A 1x1 stride-1 convolution over maps of 8-channel vectors (conv1x1.c;
 * x86-64 with AVX2 and FMA, which the caller checks): output rows [y0, y1)
 * (wd columns) of nbo blocks of 8 filters from in (nbi blocks of 8 input
 * channels; its row 0 is the map's), weights w in oneDNN's OIhw8i8o
 * ([block of filters][input channel][8 filters]), bias and act (linear,
 * leaky, relu) into out, whose row 0 is row y0; with pool (y0 even), the
 * 2x2/2 max pool of those rows instead, whose row 0 is y0 / 2, with
 * darknet's windows (an odd y1 or wd: a last window of the cells inside).
 * A pooled run gives the same bits as an unpooled one pooled after. */
void fpi_conv1x1_avx2(const fpi_vmap *in, int nbi, const float *w, const float *bias, int nbo, fp_activation act,
                      int y0, int y1, int wd, const fpi_vmap *out, int pool);

/* The same over maps of 16-channel vectors (nbi, nbo blocks of 16; weights
 * in oneDNN's OIhw16i16o) with AVX-512 (the caller checks). */
void fpi_conv1x1_avx512(const fpi_vmap *in, int nbi, const float *w, const float *bias, int nbo, fp_activation act,
                        int y0, int y1, int wd, const fpi_vmap *out, int pool);

/* A 3x3 stride-1 depthwise convolution with padding 1 over maps of 8-channel
 * vectors (dw3x3.c; x86-64 with AVX2 and FMA, which the caller checks):
 * output rows [y0, y1) of nb blocks of 8 channels of an h x wd map from in
 * (its row 0 is the map's), weights w [block][ky][kx][8], bias and act
 * (linear, leaky, relu) into out, whose row 0 is row y0. */
void fpi_dw3x3_avx2(const fpi_vmap *in, int h, int wd, const float *w, const float *bias, fp_activation act,
                    int nb, int y0, int y1, const fpi_vmap *out);

/* The same over maps of 16-channel vectors (nb blocks of 16; weights
 * [block][ky][kx][16]) with AVX-512 (the caller checks). */
void fpi_dw3x3_avx512(const fpi_vmap *in, int h, int wd, const float *w, const float *bias, fp_activation act,
                      int nb, int y0, int y1, const fpi_vmap *out);

/* One output row of it from its three input rows: r[k] lane 0 of block 0's
 * row (NULL: outside the map), the blocks in->sb apart, columns in->sx,
 * lanes in->sl (in->p and in->sy unused); into o (out: the strides). */
void fpi_dw3x3_row_avx2(const float *const *r, const fpi_vmap *in, int wd, const float *w, const float *bias,
                        fp_activation act, int nb, float *o, const fpi_vmap *out);


/* A 3x3 stride-1 convolution with padding 1 over nChw8c maps (conv3x3.c;
 * x86-64 with AVX2 and FMA, which the caller checks): `rows` output rows of
 * ow columns, nbo blocks of 8 filters (a multiple of 4), from in (nbi
 * blocks of 8 input channels, each rows_in x cols_in), where output row y
 * reads input rows y - pad_t .. y - pad_t + 2 and those outside [0,
 * rows_in) or columns outside [0, cols_in) are zero; weights in oneDNN's
 * OIhw8i8o, bias, act (linear, leaky, relu); out dense nChw8c. */
void fpi_conv3x3_avx2(const float *in, int nbi, int rows_in, int cols_in, int pad_t, const float *w,
                      const float *bias, int nbo, fp_activation act, int rows, int ow, float *out);

/* The same by Winograd's F(2x2, 3x3) (wino.c; x86-64 with AVX2 and FMA,
 * which the caller checks), padding 1 all round. A layer cut by output
 * channels: the tiles (2x2 output pixels, row by row) of an h x wd map;
 * the floats of the input's transform (v) and of a piece's scratch for up
 * to nt tiles; the transform of input blocks [b0, b1) of nbi (in: the
 * whole map) for tiles [q0, q0 + nt) into v; then from v a piece's nbo
 * blocks of filters (a multiple of 4; weights in OIhw8i8o, bias, act) for
 * those tiles into out (dense nChw8c, h x wd: only those tiles' pixels),
 * with its own scratch. A tile's values do not depend on the range. */
size_t fpi_wino_tiles(int h, int wd);
size_t fpi_wino_v_floats(int nbi, int nt);
size_t fpi_wino_scratch_floats(int nbi, int nt);
void fpi_wino_input_avx2(const fpi_vmap *in, int nbi, int b0, int b1, int h, int wd, int q0, int nt, float *v);
void fpi_wino_conv_avx2(const float *v, int nbi, int h, int wd, int q0, int nt, const float *w, const float *bias,
                        int nbo, fp_activation act, float *out, float *scratch);

/* A layer cut by rows (shallow, wide maps): the floats of all its weights
 * transformed (held by the layer) and of a piece's scratch; the weights'
 * transform (nbo a multiple of 4, OIhw8i8o); then output rows [y0, y1)
 * from in (the whole h x wd input map) into out (row 0: y0), as
 * fpi_conv1x1_avx2 takes them; with pool (y0 even) the 2x2/2 max pool of
 * those rows instead (row 0: y0 / 2; darknet's windows, a window cut by an
 * odd side over the cells inside), the same bits as pooling after. The
 * tiles are those of the whole map (rows 2k, 2k + 1), whatever the band. */
size_t fpi_wino_u_floats(int nbi, int nbo);
size_t fpi_wino_rows_scratch_floats(int nbi);
void fpi_wino_weights_avx2(const float *w, int nbi, int nbo, float *u);
void fpi_wino_rows_avx2(const fpi_vmap *in, int nbi, int h, int wd, const float *u, const float *bias, int nbo,
                        fp_activation act, int y0, int y1, const fpi_vmap *out, int pool, float *scratch);

/* First layers on AVX2 CPUs without AVX-512 (conv_first.c): whether the
 * CPU gets that kernel (AVX2 + FMA, no AVX-512, or forced), and whether a
 * layer is one it takes (3x3/1, padding 1 or 0, 1-3 input channels, filters
 * a multiple of 4, linear / leaky / relu, 16 output columns or more; on
 * other CPUs with AVX2 and FMA, AVX-512 ones, only an image's 16 filters,
 * which it sums by Winograd's transform). */
int fpi_conv_first_cpu(void);
int fpi_conv_first_takes(const fpi_layer *l);

/* Test hook: lets the first-layer kernel run on AVX-512 CPUs too (set
 * before fp_net_setup). Not thread-safe. */
void fpi_conv_first_force(int on);

/* Test and benchmark hook: whether the first-layer kernel sums an image's
 * 16 filters by Winograd's F(2x2, 3x3) (on, the default) or directly (set
 * before fp_net_setup). Not thread-safe. */
void fpi_conv_first_wino(int on);

/* Marks the layers in the network's range the first-layer kernel runs
 * (l->conv_first; l->conv_first_pool where the 2x2/2 max pool after it
 * runs fused: fpi_fusable_pool, even output sides) and grows their
 * workspace; before fpi_dnnl_setup, which leaves those layers alone. */
void fpi_first_setup(fp_net *net);

/* Whether a layer from `from` on reads tensor t (the output of layer t). */
static inline int fpi_read_from(const fp_net *net, int t, int from)
{
    for (int j = from; j < net->n; j++)
        for (int k = 0; k < net->layers[j].n_src; k++)
            if (net->layers[j].src[k] == t) return 1;
    return 0;
}

/* The max pool layer after conv layer i that may run fused with it: the
 * only reader of its output, in the range held, 2x2/2 with darknet's default
 * padding (windows from the top-left corner, a partial one on the bottom /
 * right of odd sizes), and no logistic (which rounds after the pool could).
 * NULL if none. */
const fpi_layer *fpi_fusable_pool(const fp_net *net, int i);

/* The max pool layer prepared to run fused after convolution layer l (by
 * the first-layer kernel or oneDNN), or -1. */
int fpi_fused_pool(const fpi_layer *l);

/* The first-layer kernel: the convolution alone, or with its fused max pool
 * (pooled: the pool's output; 0 when l was not prepared so). */
int fpi_conv_first(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x);

/* Row py of a first layer's fused pool (l->conv_first_pool) from its input
 * in (C x H x W; or, when rows is not NULL, the network input's rows it
 * makes: fpi_rows, each channel's asked for in order), every filter, into
 * o in nChw8c (block b's row at o + b * osb), with scratch of fpi_first_row_floats(l) floats, which keeps
 * the input rows split for the next row (reset it first with
 * fpi_first_rows_reset): the same values as the layer's run. */
size_t fpi_first_row_floats(const fpi_layer *l);
void fpi_first_rows_reset(const fpi_layer *l, float *scratch); /* before a task's first row */
void fpi_first_pooled_row(const fpi_layer *l, const float *in, const fpi_rows *rows, int py, float *o, size_t osb,
                          float *scratch);
int fpi_conv_pool_first(const fpi_layer *l, const fpi_layer *pool, const float *const *src, float *pooled,
                        const fpi_exec *x);

/* The hooks (see the top of this file): 1 = output computed, 0 = declined. */
int fpi_conv_dnnl(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x);
int fpi_conv_fast(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x);
int fpi_connected_fast(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x);
int fpi_maxpool_fast(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x);

/* out[j] = act(out[j] + bias) for j < n; the logistic goes through
 * fpi_activate, as every logistic does. */
void fpi_bias_act(float *out, size_t n, float bias, fp_activation act);

/* x[j] = 1 / (1 + e^-x[j]) for j < n, in float (act_fast.c): within a few
 * ulps of the reference's double evaluation. fpi_activate calls it when the
 * fast kernels are on. */
void fpi_logistic_fast(float *x, size_t n);

/* For each of `cells` consecutive cells i: the softmax of in[e*stride + i],
 * e < n, into out (same places; in == out allowed), in float (act_fast.c).
 * fpi_softmax_cells calls it when the fast kernels are on. */
void fpi_softmax_cells_fast(const float *in, int n, size_t stride, size_t cells, float *out);

#endif /* FP_ENGINE_FAST_H */
