/* dnnl.c — [convolutional] through oneDNN's JIT kernels: one group, or
 * depthwise (one filter per channel); blocked (nChw16c on AVX-512, nChw8c
 * on AVX2: a vector of channels) layouts, bias and
 * relu/leaky fused. Optional twice over:
 *   - at build time: compiled only with FP_HAVE_DNNL (CMake FP_ONEDNN, on
 *     for x86-64 when oneDNN 2.x's dnnl.h is found); else the stubs at the end;
 *   - at run time: libdnnl.so.2 is loaded with dlopen (x86-64 only) for the
 *     first layer it may take, like OpenBLAS (blas.c); absent, the layer goes
 *     to the other fast kernels.
 *
 * Everything is prepared once per layer at fp_net_setup (fpi_dnnl_setup):
 * the primitives, the weights reordered into the layout oneDNN chose, and
 * where each piece's scratch lies in the network's workspace, so a frame
 * does no allocation.
 *
 * Pieces: the engine's pool runs a layer as up to FPI_DNNL_PIECES
 * independent convolutions, each single-threaded in oneDNN: bands of output
 * rows (wide shallow layers; input re-read at the band edges) or blocks of
 * 16k output channels (deep small layers; each block with its own share of
 * the weights, the input reordered once); depthwise layers of two blocks
 * of channels or more (fpi_dnnl.blk) in blocks of channels, each piece
 * reading and writing only its own: one dense region of the input and of
 * the output in nchw and in the blocked layout alike, so a handed-on
 * tensor is read and written in place. The cut depends on the layer's
 * shape only, never on --threads, so results do not depend on the thread
 * count. A task takes a slot of the workspace and runs pieces in it until
 * none are left (one thread: one slot, hot in cache). Debian builds oneDNN
 * with OpenMP: OMP_NUM_THREADS=1 is set while the library loads, and checked
 * again per thread, so no OpenMP team competes with the pool.
 *
 * Layouts: tensors in the arena are C x H x W (nchw). A piece copies its
 * rows into a dense block (oneDNN's reorders between its layouts and dense
 * nchw are its fast JIT ones; to or from strided views a generic one 2-5x
 * slower), reorders, convolves, and reorders and copies back. When
 * fp_net_run has no callback to show the outputs to (fpi_exec.handoff):
 *   - a convolution followed by a 2x2/2 max pool that alone reads it runs
 *     as one pass (fpi_conv_pool_dnnl): each piece pools its output while
 *     it is in cache and in oneDNN's layout, and only the pooled quarter is
 *     written; the convolution's own output is never written;
 *   - a layer whose result (its output, or its fused pool's) only the next
 *     layer reads, when that one is prepared here too and reads the blocked
 *     layout, hands it on in it (same bytes: C is whole blocks), so the
 *     reorders between them disappear; a piece then copies its rows of it.
 *     So does the first-layer kernel's fused pool (fast/conv_first.c).
 * Both give bit for bit what the layers give one after the other.
 * The wide 1x1 layers cut by rows (depthwise-separable networks) run a
 * kernel of fogpipe's own in their pieces on AVX2 (fast/conv1x1.c): it reads
 * a handed-on input in place, which oneDNN cannot (rows of nChw8c are not
 * one dense region), and pools in registers; the 3x3 depthwise layers
 * before them run another (fast/dw3x3.c), and when one hands its output on
 * to such a 1x1 layer it is computed inside that layer's pieces, two rows
 * at a time into their scratch (fpi_conv_dw_dnnl), its output never
 * written. The 3x3 layers cut by output
 * channels run another (fast/conv3x3.c) on the memories oneDNN's kernel
 * would read and write, oneDNN still preparing the pieces, their weights
 * and their hand-offs.
 * The logistic activation is applied after the reorder with fpi_activate,
 * as on every other path (such a layer hands nothing on). */
#include <limits.h>
#include <string.h>

#include "common/common.h"
#include "engine/fast/fast.h"

#if defined(FP_HAVE_DNNL)

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <oneapi/dnnl/dnnl.h>

#if DNNL_VERSION_MAJOR != 2
#error "src/engine/fast/dnnl.c uses oneDNN 2.x's C API (configure with -DFP_ONEDNN=OFF)"
#endif

/* Most pieces a layer is cut into by its work and output (8; more only
 * for a slot's size, below) and at all, the work below which a piece is not
 * worth its own primitive calls (about 0.1 ms at 200 GFLOP/s), the output
 * (floats) a piece keeps in cache for its reorders, pool and copies (256
 * KiB; memory-bound layers are cut by that), and the scratch a row piece
 * should fit in: a thread's slot is memory the process holds, and a first
 * layer (3 channels padded to 16 in oneDNN's layout, wide rows) needs
 * 3-4 MiB a slot in 8 pieces (measured: 32 pieces cost it nothing, while
 * cutting every layer finer is 5% slower at 2 threads). */
enum { FPI_DNNL_PIECES = 32, FPI_DNNL_PIECES_WORK = 8, FPI_DNNL_PIECE_OUT = 1 << 16, FPI_DNNL_SLOT = 1 << 20 };
#define FPI_DNNL_PIECE_FLOPS 25e6
/* Layers of at least this work are cut in two at least (measured: three
 * 1x1 convolutions of 44-89 MFLOP at 13x13, 0.77-0.91 ms at two threads as
 * one piece each, 0.48 in two; the same 0.87-0.99 ms at one thread). */
#define FPI_DNNL_TWO_FLOPS 8e6

/* Layers of less work stay with the other kernels: oneDNN's calls and
 * reorders cost about as much, and its scratch is larger. Tests lower both. */
static double fpi_dnnl_min_flops = 2e6, fpi_dnnl_piece_flops = FPI_DNNL_PIECE_FLOPS;

/* The entry points used, resolved from libdnnl.so.2 (type-checked against
 * the header by __typeof__). */
#define FPI_DNNL_FUNCS(X)                                                                          \
    X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_stream_destroy) X(dnnl_stream_wait)         \
    X(dnnl_memory_desc_init_by_tag) X(dnnl_memory_desc_init_by_strides) X(dnnl_memory_desc_equal)  \
    X(dnnl_memory_desc_get_size) X(dnnl_memory_create) X(dnnl_memory_destroy)                      \
    X(dnnl_memory_set_data_handle) X(dnnl_convolution_forward_desc_init)                           \
    X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_destroy) X(dnnl_primitive_attr_set_post_ops) \
    X(dnnl_primitive_attr_set_scratchpad_mode) X(dnnl_post_ops_create) X(dnnl_post_ops_destroy)    \
    X(dnnl_post_ops_append_eltwise) X(dnnl_primitive_desc_create) X(dnnl_primitive_desc_destroy)   \
    X(dnnl_primitive_desc_query) X(dnnl_primitive_desc_query_md) X(dnnl_primitive_create)          \
    X(dnnl_primitive_destroy) X(dnnl_primitive_execute) X(dnnl_reorder_primitive_desc_create)      \
    X(dnnl_memory_get_memory_desc) X(dnnl_memory_get_data_handle) X(dnnl_version)

static struct {
#define FPI_DNNL_PTR(name) __typeof__(name) *name;
    FPI_DNNL_FUNCS(FPI_DNNL_PTR)
#undef FPI_DNNL_PTR
    int (*omp_get_max_threads)(void);  /* libgomp's, through libdnnl's dependencies */
    void (*omp_set_num_threads)(int);
    dnnl_engine_t engine;              /* the CPU engine, for the life of the process */
    int blk;                           /* channels in a block of its blocked layout: 16 on AVX-512, else 8 */
    dnnl_format_tag_t blk_tag;         /* that layout: nChw16c or nChw8c */
} fpi_dnnl;
static int fpi_dnnl_ok;
static pthread_once_t fpi_dnnl_once = PTHREAD_ONCE_INIT;
static char fpi_dnnl_desc[64];

#define D(name) fpi_dnnl.name

/* Loads libdnnl.so.2 once; OMP_NUM_THREADS=1 while libgomp reads its
 * environment (the user's value, if any, is put back). */
static void fpi_dnnl_load(void)
{
    /* Elsewhere (arm64 without SVE) Debian's oneDNN has no JIT convolutions:
     * OpenBLAS does better there. */
    if (!fpi_cpu_get()->x86) {
        snprintf(fpi_dnnl_desc, sizeof fpi_dnnl_desc, "oneDNN not used on this CPU");
        return;
    }
    const char *old = getenv("OMP_NUM_THREADS");
    char *saved = old ? strdup(old) : NULL;
    if (old && !saved) return; /* out of memory: no oneDNN */
    setenv("OMP_NUM_THREADS", "1", 1);
    void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (saved) setenv("OMP_NUM_THREADS", saved, 1);
    else unsetenv("OMP_NUM_THREADS");
    free(saved);
    if (!h) {
        snprintf(fpi_dnnl_desc, sizeof fpi_dnnl_desc, "no libdnnl.so.2");
        return;
    }
    int missing = 0;
    /* POSIX's sanctioned way to turn dlsym's void * into a function pointer */
#define FPI_DNNL_SYM(name) missing |= !(*(void **)&fpi_dnnl.name = dlsym(h, #name));
    FPI_DNNL_FUNCS(FPI_DNNL_SYM)
#undef FPI_DNNL_SYM
    *(void **)&fpi_dnnl.omp_get_max_threads = dlsym(h, "omp_get_max_threads");
    *(void **)&fpi_dnnl.omp_set_num_threads = dlsym(h, "omp_set_num_threads");
    if (missing || D(dnnl_engine_create)(&fpi_dnnl.engine, dnnl_cpu, 0) != dnnl_success) {
        snprintf(fpi_dnnl_desc, sizeof fpi_dnnl_desc, "libdnnl.so.2 unusable");
        dlclose(h);
        return;
    }
    /* the block its direct kernels use: a vector of channels (checked where
     * it matters: a layout is handed on only when a primitive chose it) */
    fpi_dnnl.blk = fpi_cpu_get()->avx512 ? 16 : 8;
    fpi_dnnl.blk_tag = fpi_dnnl.blk == 16 ? dnnl_nChw16c : dnnl_nChw8c;
    const dnnl_version_t *v = D(dnnl_version)();
    snprintf(fpi_dnnl_desc, sizeof fpi_dnnl_desc, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
    fpi_dnnl_ok = 1; /* the handle stays open for the life of the process */
}

/* This thread's OpenMP teams have one thread (oneDNN then runs inline). */
static void fpi_dnnl_one_thread(void)
{
    if (fpi_dnnl.omp_get_max_threads && fpi_dnnl.omp_set_num_threads && fpi_dnnl.omp_get_max_threads() != 1)
        fpi_dnnl.omp_set_num_threads(1);
}

/* Whether the test mode lets oneDNN run (fpi_fast_set_mode). */
static int fpi_dnnl_mode_allows(void)
{
    fpi_fast_mode m = fpi_fast_get_mode();
    return m != FPI_FAST_NO_BLAS && m != FPI_FAST_NO_DNNL;
}

int fpi_dnnl_available(void)
{
    if (!fpi_fast_enabled() || !fpi_dnnl_mode_allows()) return 0;
    pthread_once(&fpi_dnnl_once, fpi_dnnl_load);
    return fpi_dnnl_ok;
}

const char *fpi_dnnl_describe(void)
{
    fpi_dnnl_available();
    return fpi_dnnl_desc[0] ? fpi_dnnl_desc : "oneDNN not loaded";
}

/* A c x rows x cols block of a C x h x w tensor (at floats from its start)
 * as a dense nchw memory: in place when the block is dense in the tensor,
 * else staged in the workspace and copied row by row (oneDNN's reorders
 * between its layouts and dense nchw are its fast JIT ones; to or from a
 * strided view they take a generic path 2-5x slower). */
typedef struct fpi_dnnl_block {
    dnnl_memory_t mem;
    size_t at;
    int c, rows, cols, h, w;
    int staged;
    size_t ws_at;                   /* bytes into the workspace when staged */
} fpi_dnnl_block;

/* One convolution of a layer: output rows [y0, y1) x channels [o0, o1). */
typedef struct fpi_dnnl_piece {
    int y0, y1, o0, o1;
    int pad_t, pad_b, rows_in;      /* its rows' padding above and below, input rows it reads */
    size_t row_in;                  /* first input row it reads */
    int same;                       /* piece whose primitives it runs (pieces of one shape share them) */
    dnnl_primitive_t conv;          /* the convolution */
    dnnl_primitive_t in, out;       /* reorders input block -> src, dst -> output block (NULL: none) */
    fpi_dnnl_block in_b;            /* its input rows (row split) */
    dnnl_memory_t src;              /* the convolution's input (row split; NULL: in_b) */
    dnnl_memory_t wei, bias, dst, pad; /* weights, bias, output (NULL: out_b), scratchpad */
    fpi_dnnl_block out_b;           /* its rows and channels of the layer output */
    dnnl_stream_t stream;
    size_t src_at, dst_at, pad_at;  /* bytes into its slot of the workspace */
    size_t ws_used;                 /* bytes of its slot it uses */
    float *weights;                 /* owned reordered weights, or NULL (shared with piece 0) */
    dnnl_memory_desc_t wei_md;      /* their layout (with weights) */
    int released;                   /* the plain share's pages given back once copied (fpi_dnnl_weights) */
} fpi_dnnl_piece;

struct fpi_dnnl_layer {
    int n;                          /* pieces */
    int by_rows;                    /* split by output rows, else by output channels */
    int dw;                         /* depthwise (groups = channels = filters) */
    int dw_blocks;                  /* depthwise split by blocks of channels: each piece reads and
                                     * writes only its own, one dense region of the layer's input
                                     * and output (nchw or blocked alike) */
    int is_pool;                    /* a [maxpool] layer (fpi_maxpool_dnnl): no pieces, no workspace */
    int lay_in, lay_out;            /* the pieces' input / output (pooled, when fused) layout: FPI_LAY_* */
    int dst_lay;                    /* with a fused pool: the layout the pieces' convolutions write
                                     * (FPI_LAY_BLK, FPI_LAY_NHWC), which the pool reads */
    dnnl_primitive_t in;            /* channel split: layer input -> src (NULL: none needed) */
    fpi_dnnl_block in_b;            /* channel split: the layer input */
    dnnl_memory_t src;              /* channel split: as the pieces read it (NULL: in_b) */
    dnnl_stream_t stream;
    size_t src_at;                  /* bytes into the workspace */
    size_t slot0, slot_bytes;       /* where the pieces' slots start, and their size */
    size_t ws_bytes;                /* workspace the layer uses: slot0 + n slots */
    int hand_in, hand_out;          /* its input comes / its result goes in this layout (FPI_LAY_*, 0: none) */
    int hand_from, hand_to;         /* the layers on the other side (fpi_dnnl_setup) */
    int hand_root;                  /* the first layer that must run for the input to come
                                     * handed on: hand_from, or before a max pool's, its own */
    char impl[48];                  /* piece 0's implementation, e.g. "brgconv:avx512_core" */
    int pool_layer;                 /* the max pool fused after it, or -1 (see fpi_conv_pool_dnnl) */
    int own1x1;                     /* a 1x1 layer by rows whose pieces run fpi_conv1x1_avx2 on
                                     * piece 0's weights instead of oneDNN's convolution */
    int own3x3;                     /* a 3x3 layer whose pieces run fpi_conv3x3_avx2 on their
                                     * input and output memories instead of oneDNN's convolution */
    int wino;                       /* such a layer by fpi_wino_conv_avx2 (wino.c) instead: the
                                     * input's transform at v_at, once per run (per part), each
                                     * piece's scratch at the start of its slot */
    size_t v_at;
    int wg_parts;                   /* the tiles in this many parts, one after the other, when the
                                     * output is handed on in place (FPI_WINO_V_MAX) */
    int wino_rows;                  /* a 3x3 layer cut by rows whose pieces run fpi_wino_rows_avx2
                                     * on the transformed weights wg_u (owned), their scratch
                                     * their whole slot */
    float *wg_u;
    int own_dw;                     /* a depthwise 3x3 layer whose pieces run fpi_dw3x3_avx2 on the
                                     * weights dw_w (owned, [block][ky][kx][8]) */
    float *dw_w;
    int dw_into, dw_from;           /* a depthwise layer fused into the 1x1 layer after it: that
                                     * one's index on the depthwise layer, its own on the 1x1
                                     * (else -1; fpi_conv_dw_dnnl) */
    fpi_dnnl_piece piece[FPI_DNNL_PIECES];
};

static void fpi_dnnl_prim_free(dnnl_primitive_t p)
{
    if (p) D(dnnl_primitive_destroy)(p);
}
static void fpi_dnnl_mem_free(dnnl_memory_t m)
{
    if (m) D(dnnl_memory_destroy)(m);
}

void fpi_dnnl_layer_destroy(struct fpi_dnnl_layer *d)
{
    if (!d) return;
    for (int i = 0; i < FPI_DNNL_PIECES; i++) {
        fpi_dnnl_piece *p = &d->piece[i];
        if (p->same == i) {
            fpi_dnnl_prim_free(p->conv);
            fpi_dnnl_prim_free(p->in);
            fpi_dnnl_prim_free(p->out);
        }
        fpi_dnnl_mem_free(p->in_b.mem);
        fpi_dnnl_mem_free(p->src);
        fpi_dnnl_mem_free(p->wei);
        fpi_dnnl_mem_free(p->bias);
        fpi_dnnl_mem_free(p->dst);
        fpi_dnnl_mem_free(p->out_b.mem);
        fpi_dnnl_mem_free(p->pad);
        if (p->stream) D(dnnl_stream_destroy)(p->stream);
        fpi_free_aligned(p->weights);
    }
    fpi_dnnl_prim_free(d->in);
    fpi_dnnl_mem_free(d->in_b.mem);
    fpi_dnnl_mem_free(d->src);
    if (d->stream) D(dnnl_stream_destroy)(d->stream);
    fpi_free_aligned(d->wg_u);
    fpi_free_aligned(d->dw_w);
    fpi_free(d);
}

/* Why a layer is not taken: a status for out of memory (passed up), or
 * declined (the other kernels run). */
typedef enum { FPI_DNNL_DONE, FPI_DNNL_DECLINE, FPI_DNNL_NOMEM } fpi_dnnl_res;

static fpi_dnnl_res fpi_dnnl_res_of(dnnl_status_t s)
{
    return s == dnnl_success ? FPI_DNNL_DONE : s == dnnl_out_of_memory ? FPI_DNNL_NOMEM : FPI_DNNL_DECLINE;
}

static size_t fpi_align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Sets up block b (see fpi_dnnl_block) and its md; a staged block's place
 * in the workspace is reserved at *ws. */
static dnnl_status_t fpi_dnnl_block_init(fpi_dnnl_block *b, dnnl_memory_desc_t *md, int c, int rows, int cols, int h,
                                         int w, size_t at, size_t *ws)
{
    dnnl_dims_t dims = {1, c, rows, cols};
    *b = (fpi_dnnl_block){NULL, at, c, rows, cols, h, w, !(cols == w && (rows == h || c == 1)), 0};
    if (b->staged) {
        b->ws_at = *ws;
        *ws += fpi_align64((size_t)c * rows * cols * sizeof(float));
    }
    dnnl_status_t st = D(dnnl_memory_desc_init_by_tag)(md, 4, dims, dnnl_f32, dnnl_nchw);
    if (st) return st;
    return D(dnnl_memory_create)(&b->mem, md, fpi_dnnl.engine, DNNL_MEMORY_NONE);
}

/* Copies c planes of rows x cols between strides (planes, rows). */
static void fpi_dnnl_copy(float *dst, size_t dplane, size_t drow, const float *src, size_t splane, size_t srow, int c,
                          int rows, int cols)
{
    for (int k = 0; k < c; k++, dst += dplane, src += splane) {
        if (drow == (size_t)cols && srow == (size_t)cols) {
            memcpy(dst, src, (size_t)rows * cols * sizeof(float));
            continue;
        }
        for (int r = 0; r < rows; r++) memcpy(dst + r * drow, src + r * srow, (size_t)cols * sizeof(float));
    }
}

/* Points b's memory at the tensor (in place) or the workspace (staged),
 * copying the block in first when `load`. */
static void fpi_dnnl_block_bind(const fpi_dnnl_block *b, const float *tensor, char *ws, int load)
{
    if (!b->staged) {
        D(dnnl_memory_set_data_handle)(b->mem, (void *)(tensor + b->at));
        return;
    }
    float *s = (float *)(ws + b->ws_at);
    if (load)
        fpi_dnnl_copy(s, (size_t)b->rows * b->cols, (size_t)b->cols, tensor + b->at, (size_t)b->h * b->w, (size_t)b->w,
                      b->c, b->rows, b->cols);
    D(dnnl_memory_set_data_handle)(b->mem, s);
}

/* Copies a staged block out of the workspace into the tensor. */
static void fpi_dnnl_block_store(const fpi_dnnl_block *b, float *tensor, const char *ws)
{
    if (b->staged)
        fpi_dnnl_copy(tensor + b->at, (size_t)b->h * b->w, (size_t)b->w, (const float *)(ws + b->ws_at),
                      (size_t)b->rows * b->cols, (size_t)b->cols, b->c, b->rows, b->cols);
}

/* A reorder primitive from md `from` to md `to`. */
static dnnl_status_t fpi_dnnl_reorder(dnnl_primitive_t *out, const dnnl_memory_desc_t *from,
                                      const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t pd;
    dnnl_status_t s = D(dnnl_reorder_primitive_desc_create)(&pd, from, fpi_dnnl.engine, to, fpi_dnnl.engine, NULL);
    if (s != dnnl_success) return s;
    s = D(dnnl_primitive_create)(out, pd);
    D(dnnl_primitive_desc_destroy)(pd);
    return s;
}

/* Layouts of tensors handed between layers (C a multiple of the block,
 * fpi_dnnl.blk): the arena's nchw, or one of oneDNN's, dense. FPI_LAY_BLK:
 * nChw16c on AVX-512, nChw8c on AVX2 and older. */
enum { FPI_LAY_NCHW = 0, FPI_LAY_BLK, FPI_LAY_NHWC, FPI_LAY_OTHER };

/* md's layout as FPI_LAY_BLK or FPI_LAY_NHWC (whole blocks of channels),
 * else FPI_LAY_OTHER. */
static int fpi_dnnl_lay_of(const dnnl_memory_desc_t *md)
{
    if (md->ndims != 4 || md->dims[1] % fpi_dnnl.blk) return FPI_LAY_OTHER;
    dnnl_memory_desc_t want;
    if (D(dnnl_memory_desc_init_by_tag)(&want, 4, md->dims, dnnl_f32, fpi_dnnl.blk_tag) == dnnl_success &&
        D(dnnl_memory_desc_equal)(&want, md))
        return FPI_LAY_BLK;
    if (D(dnnl_memory_desc_init_by_tag)(&want, 4, md->dims, dnnl_f32, dnnl_nhwc) == dnnl_success &&
        D(dnnl_memory_desc_equal)(&want, md))
        return FPI_LAY_NHWC;
    return FPI_LAY_OTHER;
}

/* The layout of md as a map of channel vectors the max pool kernel reads
 * (fpi_maxpool_vec): FPI_LAY_BLK (the last block may be padded),
 * FPI_LAY_NHWC (whole blocks of channels), else FPI_LAY_OTHER. */
static int fpi_dnnl_vec_lay(const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t want;
    if (md->ndims != 4) return FPI_LAY_OTHER;
    if (D(dnnl_memory_desc_init_by_tag)(&want, 4, md->dims, dnnl_f32, fpi_dnnl.blk_tag) == dnnl_success &&
        D(dnnl_memory_desc_equal)(&want, md))
        return FPI_LAY_BLK;
    return fpi_dnnl_lay_of(md) == FPI_LAY_NHWC ? FPI_LAY_NHWC : FPI_LAY_OTHER;
}

/* Channels from c0 (a multiple of the block), rows from r0 of a C x h x w
 * tensor t in layout lay (FPI_LAY_NCHW, FPI_LAY_BLK with C padded to whole
 * blocks, FPI_LAY_NHWC) as a map of vectors of fpi_dnnl.blk channels. */
static fpi_vmap fpi_dnnl_vmap(float *t, int lay, int c0, int r0, int C, int h, int w)
{
    size_t b = (size_t)fpi_dnnl.blk, hw = (size_t)h * w;
    if (lay == FPI_LAY_BLK) return (fpi_vmap){t + ((size_t)c0 * h + (size_t)r0 * b) * w, hw * b, w * b, b, 1};
    if (lay == FPI_LAY_NHWC) return (fpi_vmap){t + (size_t)r0 * w * C + c0, b, (size_t)w * C, (size_t)C, 1};
    return (fpi_vmap){t + (size_t)c0 * hw + (size_t)r0 * w, b * hw, (size_t)w, 1, hw};
}

/* A hand-off layout's name, for the log. */
static const char *fpi_dnnl_lay_name(int lay)
{
    return lay == FPI_LAY_NHWC ? "nhwc" : fpi_dnnl.blk == 16 ? "nChw16c" : "nChw8c";
}

/* A memory's descriptor. */
static const dnnl_memory_desc_t *fpi_dnnl_md(const_dnnl_memory_t m)
{
    const dnnl_memory_desc_t *md = NULL;
    D(dnnl_memory_get_memory_desc)(m, &md);
    return md;
}

/* Whether an implementation is one worth taking over the other fast kernels:
 * oneDNN's JIT ones, not its reference loops. */
static int fpi_dnnl_impl_ok(const char *impl)
{
    return impl && (strstr(impl, "jit") || strstr(impl, "brg") || strstr(impl, "avx")) && !strstr(impl, "ref");
}

/* Piece p's input rows: those its windows reach, clipped to the map, and the
 * padding the clipping leaves above and below. 0 when its windows lie
 * wholly in the padding. */
static int fpi_dnnl_piece_rows(const fpi_layer *l, fpi_dnnl_piece *p)
{
    const fpi_conv_params *cp = &l->p.conv;
    int top = p->y0 * cp->stride - cp->pad, bottom = (p->y1 - 1) * cp->stride - cp->pad + cp->size; /* [top, bottom) */
    int iy0 = top > 0 ? top : 0, iy1 = bottom < l->in.h ? bottom : l->in.h;
    p->pad_t = iy0 - top;
    p->pad_b = bottom - iy1;
    p->rows_in = iy1 - iy0;
    p->row_in = (size_t)iy0;
    return iy1 > iy0;
}

/* Input and output layouts asked of a convolution. */
typedef enum {
    FPI_DNNL_ANY,     /* oneDNN's choice (nhwc for its brgconv kernels) */
    FPI_DNNL_BLK,     /* nChw16c / nChw8c (fpi_dnnl.blk_tag) where the channels
                       * are whole blocks: to take a tensor handed on in it as it is */
    FPI_DNNL_PLAIN,   /* nchw input (first layers: oneDNN has a JIT kernel for
                       * few input channels in nchw), output oneDNN's choice */
} fpi_dnnl_layouts;

/* Creates the primitive descriptor of piece p's convolution. src_fix /
 * wei_fix: the layouts to use (those piece 0 chose, so the pieces can share
 * the input or the weights), or NULL to ask for `lay`. */
static fpi_dnnl_res fpi_dnnl_piece_pd(const fpi_layer *l, int dw, const fpi_dnnl_piece *p,
                                      const dnnl_memory_desc_t *src_fix, const dnnl_memory_desc_t *wei_fix,
                                      fpi_dnnl_layouts lay, dnnl_primitive_desc_t *pd_out)
{
    const fpi_conv_params *cp = &l->p.conv;
    int ow = l->out.w, po = p->o1 - p->o0;
    int c = dw ? po : l->in.c, w = l->in.w, k = cp->size, s = cp->stride, pad = cp->pad; /* depthwise: its channels */
    int plain_src = lay == FPI_DNNL_PLAIN;
    int blk = fpi_dnnl.blk;
    dnnl_format_tag_t src_tag = plain_src                             ? dnnl_nchw
                                : lay == FPI_DNNL_BLK && c % blk == 0 ? fpi_dnnl.blk_tag
                                                                      : dnnl_format_tag_any;
    /* the blocked output even for a short block of filters (padded): with
     * "any" oneDNN's AVX-512 kernels pick nhwc for such a piece, which the
     * fused pool does not read (a 2x2/2 pool after 40x31x8 -> 24, stride 2,
     * or a channel piece of 6 filters then ran as a layer of its own) */
    dnnl_format_tag_t dst_tag = lay == FPI_DNNL_BLK ? fpi_dnnl.blk_tag : dnnl_format_tag_any;
    /* columns: clipped on the right as the rows are (darknet's output size
     * may leave the last input columns out) */
    int right = (ow - 1) * s - pad + k, ix1 = right < w ? right : w;
    if (ix1 <= 0) return FPI_DNNL_DECLINE;
    dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md;
    dnnl_dims_t src_dims = {1, c, p->rows_in, ix1}, wei_dims = {po, c, k, k}, bias_dims = {po},
                dst_dims = {1, po, p->y1 - p->y0, ow}, dw_dims = {c, 1, 1, k, k};
    dnnl_dims_t strides = {s, s}, pad_l = {p->pad_t, pad}, pad_r = {p->pad_b, right - ix1};
    dnnl_status_t st;
    if (src_fix) src_md = *src_fix;
    else if ((st = D(dnnl_memory_desc_init_by_tag)(&src_md, 4, src_dims, dnnl_f32, src_tag)))
        return fpi_dnnl_res_of(st);
    if (wei_fix) wei_md = *wei_fix;
    else if ((st = dw ? D(dnnl_memory_desc_init_by_tag)(&wei_md, 5, dw_dims, dnnl_f32, dnnl_format_tag_any)
                      : D(dnnl_memory_desc_init_by_tag)(&wei_md, 4, wei_dims, dnnl_f32, dnnl_format_tag_any)))
        return fpi_dnnl_res_of(st);
    if ((st = D(dnnl_memory_desc_init_by_tag)(&bias_md, 1, bias_dims, dnnl_f32, dnnl_x)) ||
        (st = D(dnnl_memory_desc_init_by_tag)(&dst_md, 4, dst_dims, dnnl_f32, dst_tag)))
        return fpi_dnnl_res_of(st);
    dnnl_convolution_desc_t cd;
    if ((st = D(dnnl_convolution_forward_desc_init)(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md,
                                                     &wei_md, &bias_md, &dst_md, strides, pad_l, pad_r)))
        return fpi_dnnl_res_of(st);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    if ((st = D(dnnl_primitive_attr_create)(&attr)) ||
        (st = D(dnnl_primitive_attr_set_scratchpad_mode)(attr, dnnl_scratchpad_mode_user)))
        goto done;
    if (l->act == FP_ACT_LEAKY || l->act == FP_ACT_RELU) {
        /* darknet's leaky: v > 0 ? v : .1f * v, as eltwise_relu with alpha */
        if ((st = D(dnnl_post_ops_create)(&ops)) ||
            (st = D(dnnl_post_ops_append_eltwise)(ops, 1.f, dnnl_eltwise_relu, l->act == FP_ACT_LEAKY ? .1f : 0.f, 0.f)) ||
            (st = D(dnnl_primitive_attr_set_post_ops)(attr, ops)))
            goto done;
    }
    st = D(dnnl_primitive_desc_create)(pd_out, &cd, attr, fpi_dnnl.engine, NULL);
done:
    if (ops) D(dnnl_post_ops_destroy)(ops);
    if (attr) D(dnnl_primitive_attr_destroy)(attr);
    if (st != dnnl_success) return fpi_dnnl_res_of(st);
    const char *impl = NULL;
    if (D(dnnl_primitive_desc_query)(*pd_out, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
        !fpi_dnnl_impl_ok(impl) || (plain_src && strstr(impl, "gemm"))) {
        D(dnnl_primitive_desc_destroy)(*pd_out);
        *pd_out = NULL;
        return FPI_DNNL_DECLINE;
    }
    return FPI_DNNL_DONE;
}

/* Reorders piece p's share of the layer's plain weights into p->wei, or
 * back (when the plain copy was released: fpi_dnnl_restore). */
static dnnl_status_t fpi_dnnl_weights_move(const fpi_layer *l, int dw, fpi_dnnl_piece *p, int back)
{
    const fpi_conv_params *cp = &l->p.conv;
    size_t per = (size_t)(dw ? 1 : l->in.c) * cp->size * cp->size;
    dnnl_memory_desc_t plain;
    dnnl_dims_t dims = {p->o1 - p->o0, l->in.c, cp->size, cp->size}, dw_dims = {p->o1 - p->o0, 1, 1, cp->size, cp->size};
    dnnl_status_t st = dw ? D(dnnl_memory_desc_init_by_tag)(&plain, 5, dw_dims, dnnl_f32, dnnl_goihw)
                          : D(dnnl_memory_desc_init_by_tag)(&plain, 4, dims, dnnl_f32, dnnl_oihw);
    if (st) return st;
    dnnl_memory_t mem = NULL;
    dnnl_primitive_t r = NULL;
    if (!(st = D(dnnl_memory_create)(&mem, &plain, fpi_dnnl.engine, (void *)(l->kernel + (size_t)p->o0 * per))) &&
        !(st = back ? fpi_dnnl_reorder(&r, &p->wei_md, &plain) : fpi_dnnl_reorder(&r, &plain, &p->wei_md))) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, back ? p->wei : mem}, {DNNL_ARG_TO, back ? mem : p->wei}};
        if (!(st = D(dnnl_primitive_execute)(r, p->stream, 2, args))) st = D(dnnl_stream_wait)(p->stream);
    }
    fpi_dnnl_prim_free(r);
    fpi_dnnl_mem_free(mem);
    return st;
}

/* Reorders piece p's share of the layer's weights into `md` (p->weights),
 * then gives the plain share's pages back, so that a layer's weights are
 * never held twice, not even while it is prepared (fpi_dnnl_unrelease
 * writes them back if the layer is then declined). */
static fpi_dnnl_res fpi_dnnl_weights(const fpi_layer *l, int dw, fpi_dnnl_piece *p, const dnnl_memory_desc_t *md)
{
    size_t bytes = D(dnnl_memory_desc_get_size)(md);
    p->weights = fpi_malloc_aligned(bytes ? bytes : 64);
    if (!p->weights) return FPI_DNNL_NOMEM;
    p->wei_md = *md;
    dnnl_status_t st = D(dnnl_memory_create)(&p->wei, md, fpi_dnnl.engine, p->weights);
    if (!st) st = fpi_dnnl_weights_move(l, dw, p, 0);
    if (!st) {
        size_t per = (size_t)(dw ? 1 : l->in.c) * l->p.conv.size * l->p.conv.size;
        fpi_release_pages((void *)(l->kernel + (size_t)p->o0 * per), (size_t)(p->o1 - p->o0) * per * sizeof(float));
        p->released = 1;
    }
    return fpi_dnnl_res_of(st);
}

/* A layer being declined after some pieces gave their plain share back:
 * writes those shares back from the pieces' copies. FPI_DNNL_NOMEM if
 * oneDNN cannot (the plain weights are then lost: setup fails). */
static fpi_dnnl_res fpi_dnnl_unrelease(const fpi_layer *l, struct fpi_dnnl_layer *d)
{
    fpi_dnnl_res r = FPI_DNNL_DONE;
    for (int i = 0; i < FPI_DNNL_PIECES; i++) {
        fpi_dnnl_piece *p = &d->piece[i];
        if (p->released && fpi_dnnl_weights_move(l, d->dw, p, 1) != dnnl_success) r = FPI_DNNL_NOMEM;
        p->released = 0;
    }
    return r;
}

/* Once oneDNN holds a convolution's weights in its own layout (every
 * filter in some piece's copy), the plain copy is not read again: its
 * pages go back to the system (each piece's inside pages already went,
 * fpi_dnnl_weights; now those across the pieces' edges), so the weights
 * are held once, not twice. fpi_dnnl_restore brings them back should
 * other kernels be asked to run. */
static void fpi_dnnl_release_plain(fpi_layer *l)
{
    const struct fpi_dnnl_layer *d = l->dnnl;
    int covered = 0;
    for (int i = 0; i < d->n; i++)
        if (d->piece[i].weights) covered += d->piece[i].o1 - d->piece[i].o0;
    if (covered != l->p.conv.filters) return;
    size_t per = (size_t)(d->dw ? 1 : l->in.c) * l->p.conv.size * l->p.conv.size;
    fpi_release_pages((void *)l->kernel, (size_t)l->p.conv.filters * per * sizeof(float));
    l->kernel_released = 1;
}

fp_status fpi_dnnl_restore(fp_net *net)
{
    for (int i = net->first; i <= net->last; i++) {
        fpi_layer *l = &net->layers[i];
        if (!l->kernel_released) continue;
        for (int k = 0; k < l->dnnl->n; k++) {
            fpi_dnnl_piece *p = &l->dnnl->piece[k];
            dnnl_status_t st = p->weights ? fpi_dnnl_weights_move(l, l->dnnl->dw, p, 1) : dnnl_success;
            if (st) return fpi_error(FP_ENOMEM, "layer %d: oneDNN could not give its weights back (status %d)", i, (int)st);
        }
        l->kernel_released = 0;
    }
    return FP_OK;
}

/* Places `md`'s bytes in the workspace at *at (returns where) and creates a
 * memory for it there (bound to the workspace at run time). */
static dnnl_status_t fpi_dnnl_scratch(dnnl_memory_t *m, const dnnl_memory_desc_t *md, size_t *at, size_t *place)
{
    *place = *at;
    *at += fpi_align64(D(dnnl_memory_desc_get_size)(md));
    return D(dnnl_memory_create)(m, md, fpi_dnnl.engine, DNNL_MEMORY_NONE);
}

/* The rest of piece i given its primitive descriptor: the convolution and
 * reorder primitives (its own, or those of the earlier piece of the same
 * shape, p->same), input view, weights (own, or piece 0's), bias, output and
 * its place in the layer output, scratch in the workspace. */
static fpi_dnnl_res fpi_dnnl_piece_finish(const fpi_layer *l, struct fpi_dnnl_layer *d, int i,
                                          dnnl_primitive_desc_t pd, size_t *ws)
{
    fpi_dnnl_piece *p = &d->piece[i], *q = &d->piece[p->same];
    int c = l->in.c, h = l->in.h, w = l->in.w, oh = l->out.h, ow = l->out.w;
    const dnnl_memory_desc_t *src_md = D(dnnl_primitive_desc_query_md)(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *wei_md = D(dnnl_primitive_desc_query_md)(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *bias_md = D(dnnl_primitive_desc_query_md)(pd, dnnl_query_weights_md, 1);
    const dnnl_memory_desc_t *dst_md = D(dnnl_primitive_desc_query_md)(pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *pad_md = D(dnnl_primitive_desc_query_md)(pd, dnnl_query_scratchpad_md, 0);
    dnnl_status_t st;
    fpi_dnnl_res r;
    if (q == p && (st = D(dnnl_primitive_create)(&p->conv, pd))) return fpi_dnnl_res_of(st);
    p->conv = q->conv;
    if ((st = D(dnnl_stream_create)(&p->stream, fpi_dnnl.engine, dnnl_stream_default_flags)))
        return fpi_dnnl_res_of(st);
    dnnl_memory_desc_t view_md, out_md;
    if (d->by_rows || d->dw_blocks) {
        /* its input rows (depthwise by blocks: its channels, every row) */
        int pc = d->dw_blocks ? p->o1 - p->o0 : c;
        size_t at = (d->dw_blocks ? (size_t)p->o0 * h * w : 0) + p->row_in * w;
        if ((st = fpi_dnnl_block_init(&p->in_b, &view_md, pc, (int)src_md->dims[2], (int)src_md->dims[3], h, w, at,
                                      ws)))
            return fpi_dnnl_res_of(st);
        if (!D(dnnl_memory_desc_equal)(&view_md, src_md)) {
            if (q == p && (st = fpi_dnnl_reorder(&p->in, &view_md, src_md))) return fpi_dnnl_res_of(st);
            p->in = q->in;
            if ((st = fpi_dnnl_scratch(&p->src, src_md, ws, &p->src_at))) return fpi_dnnl_res_of(st);
        }
    }
    if (i == 0 || !d->by_rows) {
        if ((r = fpi_dnnl_weights(l, d->dw, p, wei_md))) return r;
    } else if ((st = D(dnnl_memory_create)(&p->wei, wei_md, fpi_dnnl.engine, d->piece[0].weights))) {
        return fpi_dnnl_res_of(st);
    }
    if ((st = D(dnnl_memory_create)(&p->bias, bias_md, fpi_dnnl.engine, (void *)(l->bias + p->o0))))
        return fpi_dnnl_res_of(st);
    /* its output rows and channels */
    if ((st = fpi_dnnl_block_init(&p->out_b, &out_md, p->o1 - p->o0, p->y1 - p->y0, ow, oh, ow,
                                  (size_t)p->o0 * oh * ow + (size_t)p->y0 * ow, ws)))
        return fpi_dnnl_res_of(st);
    if (!D(dnnl_memory_desc_equal)(&out_md, dst_md)) {
        if (q == p && (st = fpi_dnnl_reorder(&p->out, dst_md, &out_md))) return fpi_dnnl_res_of(st);
        p->out = q->out;
        if ((st = fpi_dnnl_scratch(&p->dst, dst_md, ws, &p->dst_at))) return fpi_dnnl_res_of(st);
    }
    if (D(dnnl_memory_desc_get_size)(pad_md) && (st = fpi_dnnl_scratch(&p->pad, pad_md, ws, &p->pad_at)))
        return fpi_dnnl_res_of(st);
    return FPI_DNNL_DONE;
}

/* Whether piece p holds its weights (o1 - o0 filters of c channels, k x k)
 * in oneDNN's OIhw8i8o (OIhw16i16o where it works in nChw16c), where
 * fogpipe's kernels read them as they are. */
static int fpi_dnnl_oihw_blocked(const fpi_dnnl_piece *p, int c, int k)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {p->o1 - p->o0, c, k, k};
    dnnl_format_tag_t tag = fpi_dnnl.blk == 16 ? dnnl_OIhw16i16o : dnnl_OIhw8i8o;
    return p->weights && !D(dnnl_memory_desc_init_by_tag)(&md, 4, dims, dnnl_f32, tag) &&
           D(dnnl_memory_desc_equal)(&md, &p->wei_md);
}

/* Whether the CPU runs fogpipe's own kernels in oneDNN's blocked layout:
 * AVX2 and FMA for nChw8c, AVX-512 for nChw16c (the 1x1 and depthwise
 * kernels have both; conv3x3.c and wino.c nChw8c only). */
static int fpi_dnnl_own_cpu(void)
{
    const fpi_cpu *cpu = fpi_cpu_get();
    return cpu->avx2 && cpu->fma && (fpi_dnnl.blk == 8 || (fpi_dnnl.blk == 16 && cpu->avx512));
}

/* What fogpipe's own kernels over the blocked layout (conv1x1.c,
 * conv3x3.c, wino.c) share: fpi_dnnl_own_cpu, a convolution of one group
 * with stride 1, whole blocks of input channels, linear / leaky / relu. */
static int fpi_dnnl_own_shape(const fpi_layer *l, const struct fpi_dnnl_layer *d)
{
    return fpi_dnnl_own_cpu() && !d->dw && l->p.conv.stride == 1 && l->in.c % fpi_dnnl.blk == 0 &&
           (l->act == FP_ACT_LINEAR || l->act == FP_ACT_LEAKY || l->act == FP_ACT_RELU);
}

/* The same for the nChw8c-only kernels (conv3x3.c, wino.c). */
static int fpi_dnnl_avx2_own(const fpi_layer *l, const struct fpi_dnnl_layer *d)
{
    return fpi_dnnl.blk == 8 && fpi_dnnl_own_shape(l, d);
}

/* Whether a prepared layer's pieces run fpi_conv1x1_avx2 (conv1x1.c; or
 * fpi_conv1x1_avx512 in nChw16c) rather than oneDNN's convolution: a 1x1
 * stride-1 layer of whole 8-channel blocks in and out, cut by rows, with
 * linear / leaky / relu, on a CPU with AVX2 and FMA whose oneDNN kernel
 * takes nChw8c and weights in OIhw8i8o (held once, by piece 0: the kernel
 * reads them there), or the same with 16 and AVX-512. Decided by the
 * layer's shape alone, as every kernel choice is (the same bits whichever
 * stage holds the layer): the kernel reads any layout of the input in
 * place and writes any layout of the output, pooled or not. */
static int fpi_dnnl_own1x1(const fpi_layer *l, const struct fpi_dnnl_layer *d)
{
    const fpi_conv_params *cp = &l->p.conv;
    if (!fpi_dnnl_own_shape(l, d) || !d->by_rows || cp->size != 1 || cp->pad != 0 || cp->filters % fpi_dnnl.blk)
        return 0;
    return fpi_dnnl_oihw_blocked(&d->piece[0], l->in.c, 1);
}

/* Whether a prepared layer's pieces run fpi_conv3x3_avx2 (conv3x3.c) in
 * place of oneDNN's convolution, on the memories oneDNN's would read and
 * write: a 3x3 stride-1 layer with padding 1 cut by output channels (deep
 * layers on small maps: those cut by rows run faster in oneDNN) into pieces
 * of whole groups of 32 filters, whole blocks of 8 input channels, linear /
 * leaky / relu, on a CPU with AVX2 and FMA whose oneDNN kernel takes
 * nChw8c in and out and weights in OIhw8i8o (each piece its own share, read
 * there as it is). Decided by the layer's shape alone. */
static int fpi_dnnl_own3x3(const fpi_layer *l, const struct fpi_dnnl_layer *d)
{
    const fpi_conv_params *cp = &l->p.conv;
    if (!fpi_dnnl_avx2_own(l, d) || d->by_rows || cp->size != 3 || cp->pad != 1 || l->out.w != l->in.w || !d->src ||
        fpi_dnnl_lay_of(fpi_dnnl_md(d->src)) != FPI_LAY_BLK || fpi_dnnl_md(d->src)->dims[3] != l->in.w)
        return 0;
    for (int i = 0; i < d->n; i++) {
        const fpi_dnnl_piece *p = &d->piece[i];
        if ((p->o1 - p->o0) % 32 || !p->dst || fpi_dnnl_lay_of(fpi_dnnl_md(p->dst)) != FPI_LAY_BLK ||
            !fpi_dnnl_oihw_blocked(p, l->in.c, 3))
            return 0;
    }
    return 1;
}

/* Whether a prepared depthwise layer's pieces run fpi_dw3x3_avx2 (dw3x3.c)
 * in place of oneDNN's convolution: 3x3, stride 1, padding 1, whole blocks
 * of 8 channels cut by blocks, no fused pool, linear / leaky / relu, on a
 * CPU with AVX2 and FMA whose oneDNN kernel works in nChw8c with weights in
 * Goihw8g (each piece its share, gathered into dw_w at setup). So the 1x1
 * layer after it can compute its rows itself (fpi_conv_dw_dnnl) with the
 * same bits. Decided by the layer's shape alone. */
static int fpi_dnnl_own_dw(const fpi_layer *l, const struct fpi_dnnl_layer *d)
{
    const fpi_conv_params *cp = &l->p.conv;
    int blk = fpi_dnnl.blk; /* 8: fpi_dw3x3_avx2; 16: fpi_dw3x3_avx512 */
    if (!fpi_dnnl_own_cpu() || !d->dw || !d->dw_blocks ||
        d->pool_layer >= 0 || cp->size != 3 || cp->stride != 1 || cp->pad != 1 || l->in.c % blk ||
        l->out.w != l->in.w || l->out.h != l->in.h ||
        !(l->act == FP_ACT_LINEAR || l->act == FP_ACT_LEAKY || l->act == FP_ACT_RELU))
        return 0;
    for (int i = 0; i < d->n; i++) {
        const fpi_dnnl_piece *p = &d->piece[i];
        dnnl_memory_desc_t md;
        dnnl_dims_t dims = {p->o1 - p->o0, 1, 1, 3, 3};
        if (!p->weights || p->o0 % blk || (p->o1 - p->o0) % blk || p->y0 != 0 || p->y1 != l->out.h ||
            D(dnnl_memory_desc_init_by_tag)(&md, 5, dims, dnnl_f32, blk == 16 ? dnnl_Goihw16g : dnnl_Goihw8g) ||
            !D(dnnl_memory_desc_equal)(&md, &p->wei_md))
            return 0;
    }
    return 1;
}

/* Whether a prepared layer's pieces run fpi_wino_rows_avx2 (wino.c) in
 * place of oneDNN's convolution: a 3x3 stride-1 layer with padding 1 cut by
 * rows, 8 to 64 input channels in whole blocks of 8 (their transformed
 * weights, 16/9 the plain ones, at most 512 KiB), filters in groups of 32,
 * linear / leaky / relu, on a CPU with AVX2 and FMA whose oneDNN kernel
 * takes nChw8c and weights in OIhw8i8o (piece 0's, transformed at setup).
 * Like the 1x1 kernel it reads the input in place in any layout and writes
 * any layout, pooled or not. Measured against oneDNN's pieces (one thread,
 * each layer with its 2x2/2 pool, minimum of 30 passes in yolov2-tiny):
 * 208x208 x 16 -> 32 5.1 -> 4.0 ms, 104x104 x 32 -> 64 4.8 -> 3.0, 52x52 x
 * 64 -> 128 4.7 -> 2.6. Deeper ones are cut by channels (the whole-map
 * kernel). Decided by the layer's shape alone. */
static int fpi_dnnl_wino_rows(const fpi_layer *l, const struct fpi_dnnl_layer *d)
{
    const fpi_conv_params *cp = &l->p.conv;
    if (!fpi_dnnl_avx2_own(l, d) || !d->by_rows || cp->size != 3 || cp->pad != 1 || l->in.c > 64 ||
        cp->filters % 32 || l->out.w != l->in.w || l->out.h != l->in.h)
        return 0;
    return fpi_dnnl_oihw_blocked(&d->piece[0], l->in.c, 3);
}

/* The input transform a Winograd layer cut by channels holds at once
 * (fpi_wino_v_floats), at most: it lies in the workspace beside the
 * layer's other scratch, all of which the memory budget (weights + the two
 * largest live activations + 16 MB) must hold. Over it, when the output is
 * handed on in place (each piece writes its part of the layer's output
 * where it lies, so a piece's tiles may come in parts), the tiles go in
 * parts, each transformed and multiplied in turn, its pieces' weights
 * transformed again. yolov3-tiny's 26x26 x 384 -> 256 took 4.0 MiB at once
 * and its peak RSS came within 0.5 MiB of the budget at two threads. */
enum { FPI_WINO_V_MAX = 7 << 19 };
static size_t fpi_wino_v_max = FPI_WINO_V_MAX; /* fpi_dnnl_set_wino_v_max */

/* Whether a layer the 3x3 kernel takes (fpi_dnnl_own3x3) runs Winograd's
 * F(2x2, 3x3) instead, and in how many parts of tiles (d->wg_parts): maps
 * of 16 tiles (7 x 7) and more; on fewer the weights' transform, done on
 * each run, costs more than it saves (measured one thread, each layer
 * alone: 13x13 x 512 -> 1024 19.3 -> 12.6 ms, 7x7 x 1024 -> 1024 13.0 ->
 * 10.6, 26x26 x 128 -> 256 4.6 -> 2.8, 6x6 x 512 -> 512 2.1 -> 1.6; 4x4 x
 * 512 -> 512 1.10 -> 1.15, 3x3 x 1024 -> 1024 4.6 -> 7.2). A fused pool
 * reads whole pieces from their slots: one part. */
static int fpi_dnnl_wino(const fpi_layer *l, struct fpi_dnnl_layer *d)
{
    int tiles = (int)fpi_wino_tiles(l->out.h, l->out.w);
    if (tiles < 16 || fpi_dnnl_md(d->src)->dims[2] != l->in.h || l->out.h != l->in.h) return 0;
    size_t vb = fpi_wino_v_floats(l->in.c / 8, tiles) * sizeof(float);
    d->wg_parts = d->pool_layer < 0 ? (int)((vb + fpi_wino_v_max - 1) / fpi_wino_v_max) : 1;
    if (d->wg_parts > tiles) d->wg_parts = tiles;
    return 1;
}

/* A Winograd layer's workspace (after its pieces are prepared): by rows,
 * a piece's scratch is its whole slot (nothing of oneDNN's is used there);
 * by channels, its scratch first, then its output (used when not handed
 * on), and the input's transform before the slots, where the pages other
 * layers use are. */
static void fpi_dnnl_wino_slots(const fpi_layer *l, struct fpi_dnnl_layer *d)
{
    int nbi = l->in.c / 8, tiles = (int)fpi_wino_tiles(l->out.h, l->out.w);
    if (d->wino_rows) {
        d->slot_bytes = fpi_align64(fpi_wino_rows_scratch_floats(nbi) * sizeof(float));
        return;
    }
    size_t sc = fpi_align64(fpi_wino_scratch_floats(nbi, tiles) * sizeof(float));
    d->slot_bytes = sc;
    for (int i = 0; i < d->n; i++) {
        fpi_dnnl_piece *p = &d->piece[i];
        p->dst_at = sc;
        size_t b = sc + fpi_align64(D(dnnl_memory_desc_get_size)(fpi_dnnl_md(p->dst)));
        if (b > d->slot_bytes) d->slot_bytes = b;
    }
    d->v_at = d->slot0;
    d->slot0 += fpi_align64(fpi_wino_v_floats(nbi, tiles) * sizeof(float));
}

/* Plans and creates a layer's pieces; on failure nothing is left. */
static fpi_dnnl_res fpi_dnnl_layer_create(const fpi_layer *l, const fpi_layer *pool, int blocked,
                                          struct fpi_dnnl_layer **out)
{
    const fpi_conv_params *cp = &l->p.conv;
    int c = l->in.c, h = l->in.h, w = l->in.w, oc = cp->filters, oh = l->out.h;
    struct fpi_dnnl_layer *d = fpi_calloc(1, sizeof *d);
    if (!d) return FPI_DNNL_NOMEM;
    /* Split so the pieces re-read the smaller of input and weights: rows when
     * the weights (oc*c*k*k) are smaller than the input (c*h*w), else output
     * channels in blocks of 16 (oneDNN's AVX-512 block, two of its AVX2 one). */
    int n = fpi_dnnl_piece_flops > 0 ? (int)((double)l->flops / fpi_dnnl_piece_flops) : FPI_DNNL_PIECES;
    if (fpi_dnnl_piece_flops > 0 && fpi_dnnl_piece_flops < 1e29 && fp_shape_count(l->out) / FPI_DNNL_PIECE_OUT > (size_t)n)
        n = (int)(fp_shape_count(l->out) / FPI_DNNL_PIECE_OUT);
    if (n > FPI_DNNL_PIECES_WORK) n = FPI_DNNL_PIECES_WORK;
    /* at least two when there is work for two threads: a layer of one
     * piece runs on one thread however many the pool has */
    if (n < 2 && fpi_dnnl_piece_flops > 0 && fpi_dnnl_piece_flops < 1e29 &&
        (double)l->flops >= FPI_DNNL_TWO_FLOPS * (fpi_dnnl_piece_flops / FPI_DNNL_PIECE_FLOPS))
        n = 2;
    d->dw = cp->groups > 1;
    /* a depthwise piece reads only its own channels: whole blocks of them
     * where there are two blocks or more (no copies in or out), else rows;
     * on AVX-512 one block of 16 too, which the depthwise kernel then takes
     * (fpi_dnnl_own_dw: the face detector's 208x208x16 layer, computed
     * inside the 1x1 layer after it) */
    int blk = fpi_dnnl.blk;
    d->dw_blocks = d->dw && c % blk == 0 && (c >= 2 * blk || blk == 16);
    d->by_rows = d->dw ? !d->dw_blocks : (double)oc * cp->size * cp->size <= (double)h * w;
    if (d->by_rows && fpi_dnnl_piece_flops > 0 && fpi_dnnl_piece_flops < 1e29) {
        /* its rows of input and output in 16-channel blocks */
        double slot = ((double)((c + 15) & ~15) * cp->stride * w + (double)((oc + 15) & ~15) * l->out.w) * oh * 4;
        if (slot / FPI_DNNL_SLOT > n) n = (int)(slot / FPI_DNNL_SLOT);
    }
    /* a multiple of 4 beyond 2, so 2 or 4 threads share them evenly */
    if (n > 2 && fpi_dnnl_piece_flops < 1e29) n = (n + 3) & ~3;
    if (n > FPI_DNNL_PIECES) n = FPI_DNNL_PIECES;
    if (n < 1) n = 1;
    int unit = d->dw_blocks ? blk : 16, units = d->by_rows ? oh : (oc + unit - 1) / unit;
    if (n > units) n = units;
    /* blocks of at least 256 filters of 1024 or more (measured on AVX-512:
     * 8% faster on 1024 -> 1024 at 7x7 than blocks of 128, the same on
     * smaller ones) */
    if (!d->by_rows && !d->dw && oc >= 1024 && n > units / 16 && fpi_dnnl.blk == 16) n = units / 16;
    /* On AVX2, a channel split of much work goes up to 16 pieces of 64
     * MFLOP and 32 filters at least: the two vCPUs of a shared VM can run
     * at speeds 30-50% apart (pieces of the same work measured at 5.0 and
     * 6.7-7.5 ms side by side), and in 4 or 8 pieces the faster thread
     * waits up to a piece for the slower one at the end of the layer.
     * Measured on 13x13x512 -> 1024 at two threads, median of 20 passes,
     * three runs each: that wait 0.5-1.7 ms in 4 pieces, 0.7-1.1 in 16 (the
     * layer 14.0-14.6 ms either way then: this VM's noise is larger); one
     * thread the same (19.7-20.2). Smaller pieces are slower at one thread
     * (26x26x384 -> 256 in 16 pieces of 16 filters: 17.9-18.1 ms against
     * 14.1-16.5 in 8; 13x13x256 -> 512 in 16 pieces of 25 MFLOP: 5.5
     * against 5.0). */
    if (!d->by_rows && !d->dw && fpi_dnnl.blk == 8 && fpi_dnnl_piece_flops > 0 && fpi_dnnl_piece_flops < 1e29) {
        double m = (double)l->flops / (fpi_dnnl_piece_flops * 64 / 25);
        if (m > oc / 32) m = oc / 32;
        if (m > n) n = m < 16 ? (int)m : 16;
    }
    int per = (units + n - 1) / n;
    /* on AVX2, channel pieces of whole 32-filter groups (oneDNN's AVX2
     * kernels block 4 x 8 filters; measured on 7x7x1024 -> 1024, one
     * thread: 13.8-14.7 ms in 11 pieces of 96 filters, 14.7-15.1 in 13 of 80) */
    if (!d->by_rows && !d->dw && fpi_dnnl.blk == 8 && per > 1 && per % 2) per++;
    if (pool && d->by_rows) per = (per + pool->p.pool.stride - 1) / pool->p.pool.stride * pool->p.pool.stride;
    n = (units + per - 1) / per;
    d->n = n;
    d->pool_layer = -1;
    fpi_dnnl_res r = FPI_DNNL_DONE;
    for (int i = 0; i < n; i++) {
        fpi_dnnl_piece *p = &d->piece[i];
        int u0 = i * per, u1 = u0 + per < units ? u0 + per : units;
        p->y0 = d->by_rows ? u0 : 0;
        p->y1 = d->by_rows ? u1 : oh;
        p->o0 = d->by_rows ? 0 : u0 * unit;
        p->o1 = d->by_rows ? oc : (u1 * unit < oc ? u1 * unit : oc);
        if (!fpi_dnnl_piece_rows(l, p)) r = FPI_DNNL_DECLINE; /* windows wholly in the padding */
        /* pieces of the same shape run the same primitives */
        p->same = i;
        for (int j = 0; j < i && p->same == i; j++) {
            const fpi_dnnl_piece *q = &d->piece[j];
            if (q->y1 - q->y0 == p->y1 - p->y0 && q->o1 - q->o0 == p->o1 - p->o0 && q->pad_t == p->pad_t &&
                q->pad_b == p->pad_b && q->rows_in == p->rows_in && (q->y1 == oh) == (p->y1 == oh))
                p->same = j;
        }
    }
    for (int i = n; i < FPI_DNNL_PIECES; i++) d->piece[i].same = i;
    if (r) goto fail;
    fpi_dnnl_one_thread();
    size_t ws = 0;
    dnnl_primitive_desc_t pds[FPI_DNNL_PIECES] = {NULL};
    /* piece 0 chooses the layouts (the first that gives a JIT kernel); the
     * others follow it */
    fpi_dnnl_layouts lay = c <= 4 && !d->dw ? FPI_DNNL_PLAIN : blocked ? FPI_DNNL_BLK : FPI_DNNL_ANY;
    r = fpi_dnnl_piece_pd(l, d->dw, &d->piece[0], NULL, NULL, lay, &pds[0]);
    if (!pds[0] && r != FPI_DNNL_NOMEM && lay != FPI_DNNL_ANY)
        r = fpi_dnnl_piece_pd(l, d->dw, &d->piece[0], NULL, NULL, lay = FPI_DNNL_ANY, &pds[0]);
    if (r) goto fail;
    dnnl_memory_desc_t src0 = *D(dnnl_primitive_desc_query_md)(pds[0], dnnl_query_src_md, 0);
    dnnl_memory_desc_t wei0 = *D(dnnl_primitive_desc_query_md)(pds[0], dnnl_query_weights_md, 0);
    const char *impl = NULL;
    D(dnnl_primitive_desc_query)(pds[0], dnnl_query_impl_info_str, 0, &impl);
    snprintf(d->impl, sizeof d->impl, "%s", impl ? impl : "?");
    if (!d->by_rows && !d->dw_blocks) {
        /* the whole input, reordered once into the layout every piece reads */
        dnnl_memory_desc_t view_md;
        dnnl_status_t st;
        if ((st = fpi_dnnl_block_init(&d->in_b, &view_md, c, (int)src0.dims[2], (int)src0.dims[3], h, w, 0, &ws)) ||
            (st = D(dnnl_stream_create)(&d->stream, fpi_dnnl.engine, dnnl_stream_default_flags))) {
            r = fpi_dnnl_res_of(st);
            goto fail_pds;
        }
        if (!D(dnnl_memory_desc_equal)(&view_md, &src0) &&
            ((st = fpi_dnnl_reorder(&d->in, &view_md, &src0)) || (st = fpi_dnnl_scratch(&d->src, &src0, &ws, &d->src_at)))) {
            r = fpi_dnnl_res_of(st);
            goto fail_pds;
        }
    }
    /* each piece's scratch lies in a slot of the workspace; a task takes one
     * slot and runs pieces in it until none are left (fpi_dnnl_run) */
    d->slot0 = ws;
    for (int i = 0; i < n; i++) {
        fpi_dnnl_piece *p = &d->piece[i];
        /* row split: the pieces share piece 0's weights; channel split: its input */
        if (p->same == i && i > 0 &&
            (r = fpi_dnnl_piece_pd(l, d->dw, p, d->by_rows || d->dw_blocks ? NULL : &src0, d->by_rows ? &wei0 : NULL,
                                   lay, &pds[i])))
            goto fail_pds;
        p->ws_used = 0;
        if ((r = fpi_dnnl_piece_finish(l, d, i, pds[p->same], &p->ws_used))) goto fail_pds;
    }
    if (pool) {
        /* fused when every piece writes its convolution's output to its
         * slot in one layout the pool kernel reads (fpi_maxpool_vec);
         * else the pool runs as a layer of its own */
        int lay_d = fpi_dnnl_vec_lay(D(dnnl_primitive_desc_query_md)(pds[0], dnnl_query_dst_md, 0)), ok = 1;
        for (int i = 0; i < n; i++)
            ok &= d->piece[i].dst && fpi_dnnl_vec_lay(fpi_dnnl_md(d->piece[i].dst)) == lay_d;
        if (ok && lay_d != FPI_LAY_OTHER) {
            d->pool_layer = pool->index;
            d->dst_lay = lay_d;
        }
    }
    /* whether the pieces read and write the blocked layout (so a tensor in it
     * can be handed between layers as it is: fpi_dnnl_setup) */
    d->lay_in = fpi_dnnl_lay_of(&src0);
    d->lay_out = fpi_dnnl_lay_of(D(dnnl_primitive_desc_query_md)(pds[0], dnnl_query_dst_md, 0));
    for (int i = 0; i < n; i++) {
        const fpi_dnnl_piece *p = &d->piece[i];
        if ((d->by_rows || d->dw_blocks) && p->src && fpi_dnnl_lay_of(fpi_dnnl_md(p->src)) != d->lay_in)
            d->lay_in = FPI_LAY_OTHER;
        if (fpi_dnnl_lay_of(fpi_dnnl_md(p->dst ? p->dst : p->out_b.mem)) != d->lay_out)
            d->lay_out = FPI_LAY_OTHER;
    }
    /* a hand-off needs the scratch a piece copies its part of such a tensor into */
    if (d->by_rows || d->dw_blocks ? !d->piece[0].src : !d->src) d->lay_in = FPI_LAY_OTHER;
    for (int i = 0; i < n; i++)
        if (!d->piece[i].dst) d->lay_out = FPI_LAY_OTHER;
    d->own1x1 = fpi_dnnl_own1x1(l, d);
    if (d->own1x1)
        snprintf(d->impl, sizeof d->impl, "%s", fpi_dnnl.blk == 16 ? "1x1 vector kernel (AVX-512)" : "1x1 vector kernel (AVX2)");
    d->own3x3 = !d->own1x1 && fpi_dnnl_own3x3(l, d);
    if (d->own3x3) snprintf(d->impl, sizeof d->impl, "%s", "3x3 vector kernel (AVX2)");
    d->wino = d->own3x3 && fpi_dnnl_wino(l, d);
    d->wino_rows = !d->own1x1 && !d->own3x3 && fpi_dnnl_wino_rows(l, d);
    if (d->wino_rows) {
        d->wg_u = fpi_malloc_aligned(fpi_wino_u_floats(c / 8, oc / 8) * sizeof(float));
        if (!d->wg_u) {
            r = FPI_DNNL_NOMEM;
            goto fail_pds;
        }
        fpi_wino_weights_avx2(d->piece[0].weights, c / 8, oc / 8, d->wg_u);
    }
    if (d->wino || d->wino_rows)
        snprintf(d->impl, sizeof d->impl, "3x3 Winograd F(2x2,3x3) kernel%s (AVX2)", d->wino_rows ? " by rows" : "");
    d->dw_into = d->dw_from = -1;
    d->own_dw = fpi_dnnl_own_dw(l, d);
    if (d->own_dw) {
        /* each piece's share of the weights, [block][ky][kx][8 or 16] as they are */
        d->dw_w = fpi_malloc_aligned((size_t)c * 9 * sizeof(float));
        if (!d->dw_w) {
            r = FPI_DNNL_NOMEM;
            goto fail_pds;
        }
        for (int i = 0; i < n; i++) {
            const fpi_dnnl_piece *p = &d->piece[i];
            memcpy(d->dw_w + (size_t)p->o0 * 9, p->weights, (size_t)(p->o1 - p->o0) * 9 * sizeof(float));
        }
        snprintf(d->impl, sizeof d->impl, "%s",
                 fpi_dnnl.blk == 16 ? "3x3 depthwise vector kernel (AVX-512)" : "3x3 depthwise vector kernel (AVX2)");
    }
    for (int i = 0; i < n; i++)
        if (pds[i]) D(dnnl_primitive_desc_destroy)(pds[i]);
    for (int i = 0; i < n; i++)
        if (d->piece[i].ws_used > d->slot_bytes) d->slot_bytes = d->piece[i].ws_used;
    if (d->wino || d->wino_rows) fpi_dnnl_wino_slots(l, d);
    d->ws_bytes = d->slot0 + (size_t)n * d->slot_bytes;
    *out = d;
    return FPI_DNNL_DONE;
fail_pds:
    for (int i = 0; i < n; i++)
        if (pds[i]) D(dnnl_primitive_desc_destroy)(pds[i]);
fail:
    if (d && fpi_dnnl_unrelease(l, d) != FPI_DNNL_DONE) r = FPI_DNNL_NOMEM;
    fpi_dnnl_layer_destroy(d);
    return r;
}

/* A [maxpool] layer that takes a tensor handed on in layout lay (one the
 * max pool fusion leaves: 2x2/1, or after a layer whose output has other
 * readers): pooled in that layout by fpi_maxpool_vec, which keeps darknet's
 * padding (pad/2 before, the rest after; padding never wins). */
static fpi_dnnl_res fpi_dnnl_pool_create(int lay, struct fpi_dnnl_layer **out)
{
    struct fpi_dnnl_layer *d = fpi_calloc(1, sizeof *d);
    if (!d) return FPI_DNNL_NOMEM;
    for (int i = 0; i < FPI_DNNL_PIECES; i++) d->piece[i].same = i;
    d->is_pool = 1;
    d->pool_layer = d->dw_into = d->dw_from = -1;
    d->lay_in = d->lay_out = lay;
    snprintf(d->impl, sizeof d->impl, "vector kernel in %s", fpi_dnnl_lay_name(lay));
    *out = d;
    return FPI_DNNL_DONE;
}

/* The prepared layer whose result (its output, or its fused pool's) only
 * layer i reads, right before it, or -1. */
static int fpi_dnnl_producer(const fp_net *net, int i)
{
    const fpi_layer *l = &net->layers[i];
    if (l->n_src != 1 || l->src[0] != i - 1 || i - 1 < net->first) return -1;
    int r = i - 1, p = r;
    if (!net->layers[r].dnnl) p = r - 1; /* a pool fused into the layer before it */
    if (p < net->first || !net->layers[p].dnnl ||
        (p != r && net->layers[p].dnnl->pool_layer != r) || (p == r && net->layers[p].dnnl->pool_layer >= 0))
        return -1;
    return fpi_read_from(net, r, i + 1) ? -1 : p;
}

/* Whether the first-layer kernel's fused pool (fast/conv_first.c), two
 * layers before convolution nx and read by it alone, may hand nx its result
 * in the blocked layout nx reads: if so, set up so. */
static int fpi_dnnl_first_hands(fp_net *net, int nx)
{
    fpi_layer *l = &net->layers[nx];
    int p = nx - 2;
    if (p < net->first || l->n_src != 1 || l->src[0] != nx - 1 || !net->layers[p].conv_first_pool ||
        l->dnnl->lay_in != FPI_LAY_BLK || l->in.c % fpi_dnnl.blk)
        return 0;
    if (fpi_read_from(net, nx - 1, nx + 1)) return 0;
    net->layers[p].first_hand_to = nx;
    net->layers[p].first_hand_blk = fpi_dnnl.blk;
    l->dnnl->hand_in = FPI_LAY_BLK;
    l->dnnl->hand_from = l->dnnl->hand_root = p;
    FPI_INFO("layer %d -> %d: handed on in %s", p, nx, fpi_dnnl_lay_name(FPI_LAY_BLK));
    return 1;
}

/* A first layer's trunk (fpi_first_chain_dnnl): its pooled map goes to a
 * depthwise layer computed inside a 1x1 layer (a stage), whose result goes
 * to the next stage's depthwise layer, and so on to the 1x1 layer
 * a->first_chain. Up to FPI_CHAIN_STAGES stages, in fpi_chain_slot floats
 * of scratch: the first layer's, then per stage a ring of 4 of its input
 * rows and 2 depthwise rows (nChw8c). */
enum { FPI_CHAIN_STAGES = 8 };

/* The depthwise layers of the trunk from first layer a whose stages run
 * now, up to layer `last` (each stage's 1x1 layer, and its pool, at most
 * last; INT_MAX: all), into dw[]; returns their number. */
static int fpi_chain_stages(const fp_net *net, const fpi_layer *a, int last, const fpi_layer **dw)
{
    int n = 0, d = a->first_hand_to;
    while (n < FPI_CHAIN_STAGES && d >= 0 && d <= net->last) {
        const fpi_layer *dl = &net->layers[d];
        int c = dl->dnnl ? dl->dnnl->dw_into : -1;
        if (c < 0 || c > last) break;
        const struct fpi_dnnl_layer *dc = net->layers[c].dnnl;
        if (dc->pool_layer == c + 1 && c + 1 > last) break; /* its pool not now: the stage is not whole */
        dw[n++] = dl;
        if (c == a->first_chain) break;
        d = dc->hand_out == FPI_LAY_BLK ? dc->hand_to : -1;
    }
    return n;
}

static size_t fpi_chain_slot(const fpi_layer *a, const fpi_layer *const *dw, int n)
{
    size_t f = fpi_first_row_floats(a);
    for (int k = 0; k < n; k++) f += 6 * (size_t)dw[k]->in.c * dw[k]->in.w;
    return (f + 15) & ~(size_t)15;
}

fp_status fpi_dnnl_setup(fp_net *net)
{
    double t0 = fpi_now();
    for (int i = net->first; i <= net->last; i++) {
        fpi_layer *l = &net->layers[i];
        if (l->op == FP_OP_MAXPOOL) {
            /* a max pool the fusion leaves, after a layer that can hand it
             * its input in oneDNN's layout */
            int from = fpi_dnnl_producer(net, i);
            int lay = from >= 0 ? net->layers[from].dnnl->lay_out : FPI_LAY_OTHER;
            if (l->dnnl || (lay != FPI_LAY_BLK && lay != FPI_LAY_NHWC)) continue;
            struct fpi_dnnl_layer *d = NULL;
            fpi_dnnl_res r = fpi_dnnl_pool_create(lay, &d);
            if (r == FPI_DNNL_NOMEM) return fpi_error(FP_ENOMEM, "out of memory preparing layer %d for oneDNN", i);
            if (r) continue;
            l->dnnl = d;
            FPI_INFO("layer %d (maxpool %s): %s", i, l->desc, d->impl);
            continue;
        }
        /* every convolution with one group or depthwise (one filter per
         * channel) with enough work (or output: memory-bound layers) */
        int g = l->op == FP_OP_CONVOLUTIONAL ? l->p.conv.groups : 0;
        if (l->op != FP_OP_CONVOLUTIONAL || l->dnnl || l->conv_first || !l->kernel ||
            !(g == 1 || (g == l->in.c && l->p.conv.filters == g)) ||
            ((double)l->flops < fpi_dnnl_min_flops && (double)fp_shape_count(l->out) < fpi_dnnl_min_flops / 64))
            continue;
        /* the library loads for the first layer it may take, not before */
        if (!fpi_dnnl_available()) return FP_OK;
        /* Shallow layers (up to 64 input channels), depthwise and 1x1 ones
         * take the blocked layout (on AVX-512 oneDNN's direct kernels are as
         * fast there as its brgconv ones, which want nhwc, measured here);
         * deeper 3x3 ones get brgconv. On AVX2 oneDNN has no brgconv and
         * picks the blocked layout for every layer itself. Decided by the
         * layer alone, never by its neighbours: a layer must get the same
         * kernel, and so the same bits, whichever pipeline stage holds it and
         * wherever that stage starts. */
        int blocked = l->in.c <= 64 || g > 1 || l->p.conv.size == 1;
        struct fpi_dnnl_layer *d = NULL;
        fpi_dnnl_res r = fpi_dnnl_layer_create(l, fpi_fusable_pool(net, i), blocked, &d);
        if (r == FPI_DNNL_NOMEM) return fpi_error(FP_ENOMEM, "out of memory preparing layer %d for oneDNN", i);
        if (r == FPI_DNNL_DECLINE) {
            FPI_INFO("layer %d (%s): oneDNN declined, other fast kernels run", i, l->desc);
            continue;
        }
        l->dnnl = d;
        fpi_dnnl_release_plain(l);
        FPI_INFO("layer %d (%s): %s%s, %d piece%s by %s%s, %zu KiB of workspace (%.1f ms)", i, l->desc,
                 d->own1x1 || d->own3x3 || d->wino_rows || d->own_dw ? "" : "oneDNN ", d->impl, d->n, d->n > 1 ? "s" : "", d->by_rows ? "rows" : "channels",
                 d->pool_layer >= 0 ? ", max pool fused" : "", d->ws_bytes >> 10, (fpi_now() - t0) * 1e3);
        size_t floats = (d->ws_bytes + sizeof(float) - 1) / sizeof(float);
        if (floats > l->workspace) l->workspace = floats;
    }
    /* Hand-offs: a layer's result (its output, or its fused pool's) whose
     * only reader is the next layer, also prepared here and reading
     * the blocked layout, may stay so in the arena (fpi_dnnl_run decides per run:
     * only when both run in one fp_net_run without a callback). */
    for (int nx = net->first; nx <= net->last; nx++) {
        struct fpi_dnnl_layer *dn = net->layers[nx].dnnl;
        if (dn && !dn->is_pool && fpi_dnnl_first_hands(net, nx)) continue;
        int i = dn ? fpi_dnnl_producer(net, nx) : -1;
        if (i < 0) continue;
        struct fpi_dnnl_layer *d = net->layers[i].dnnl;
        if (d->lay_out == FPI_LAY_OTHER || d->lay_out != dn->lay_in || net->layers[i].act == FP_ACT_LOGISTIC ||
            net->layers[nx].in.c % fpi_dnnl.blk || (d->is_pool && !d->hand_in))
            continue;
        d->hand_out = d->lay_out;
        d->hand_to = nx;
        dn->hand_in = d->lay_out;
        dn->hand_from = i;
        /* a max pool pools in oneDNN's layout only when its own input came so */
        dn->hand_root = d->is_pool ? d->hand_root : i;
        FPI_INFO("layer %d -> %d: handed on in %s", i, nx,
                 fpi_dnnl_lay_name(d->lay_out));
    }
    /* A depthwise layer handed on to a 1x1 layer of fogpipe's kernel is
     * fused into it (fpi_conv_dw_dnnl): each of the 1x1 layer's pieces
     * computes the depthwise rows it reads into 2 rows of scratch in its
     * slot, so the depthwise output never goes through memory. */
    for (int i = net->first; i < net->last; i++) {
        fpi_layer *l = &net->layers[i], *nl = &net->layers[i + 1];
        struct fpi_dnnl_layer *d = l->dnnl, *dn = nl->dnnl;
        if (!d || !d->own_dw || d->hand_out != FPI_LAY_BLK || d->hand_to != i + 1 || !dn || !dn->own1x1 ||
            dn->hand_from != i)
            continue;
        size_t need = 2 * (size_t)l->out.w * l->out.c * sizeof(float);
        if (need > dn->slot_bytes) dn->slot_bytes = fpi_align64(need);
        dn->ws_bytes = dn->slot0 + (size_t)dn->n * dn->slot_bytes;
        size_t floats = (dn->ws_bytes + sizeof(float) - 1) / sizeof(float);
        if (floats > nl->workspace) nl->workspace = floats;
        d->dw_into = i + 1;
        dn->dw_from = i;
        FPI_INFO("layer %d -> %d: depthwise computed row by row in the 1x1 layer", i, i + 1);
    }
    /* A first-layer kernel's pooled map handed on to such a depthwise layer
     * starts a trunk (fpi_first_chain_dnnl): the map's rows made as the
     * depthwise rows need them, and the 1x1 layer's (pooled) rows as the
     * next stage's depthwise rows need them, and so on, each into a ring
     * of 4 rows in the scratch, so none of the maps between is written
     * whole. Stages follow while the 1x1 layer's result is handed on to a
     * depthwise layer fused in turn. One thread runs it: with more, the
     * layers' own pieces share the work better (the face detector at two
     * threads, the trunk cut in two bands: 0.89x, 7 alternating rounds). */
    for (int i = net->first; i <= net->last; i++) {
        fpi_layer *a = &net->layers[i];
        if (!a->conv_first_pool || a->first_hand_to < 0 || a->first_hand_blk != 8) continue;
        const fpi_layer *dw[FPI_CHAIN_STAGES];
        int n = fpi_chain_stages(net, a, INT_MAX, dw); /* a->first_chain is -1: as far as it goes */
        a->first_chain = n ? dw[n - 1]->dnnl->dw_into : -1;
        if (!n) continue;
        size_t chain = fpi_chain_slot(a, dw, n);
        if (chain > a->workspace) a->workspace = chain;
        FPI_INFO("layers %d -> %d: a trunk of %d stage%s made row by row", i, a->first_chain, n, n > 1 ? "s" : "");
    }
    return FP_OK;
}

const char *fpi_dnnl_layer_impl(const fpi_layer *l) { return l->dnnl ? l->dnnl->impl : NULL; }

int fpi_dnnl_fused_pool(const fpi_layer *l) { return l->dnnl ? l->dnnl->pool_layer : -1; }

int fpi_dnnl_dw_into(const fpi_layer *l) { return l->dnnl ? l->dnnl->dw_into : -1; }

int fpi_dnnl_hands_to(const fpi_layer *l)
{
    if (l->conv_first_pool && l->first_hand_to >= 0) return l->first_hand_to;
    return l->dnnl && l->dnnl->hand_out ? l->dnnl->hand_to : -1;
}

void fpi_dnnl_set_sizes(double min_flops, double piece_flops)
{
    fpi_dnnl_min_flops = min_flops > 0 ? min_flops : 0;
    fpi_dnnl_piece_flops = piece_flops > 0 ? piece_flops : 0;
}

void fpi_dnnl_set_wino_v_max(size_t bytes) { fpi_wino_v_max = bytes ? bytes : FPI_WINO_V_MAX; }

/* Rows [r0, r0 + rows) x columns [0, cols) of channels [c0, c0 + c) of a
 * C x h x w tensor t in layout lay (FPI_LAY_BLK or FPI_LAY_NHWC, c0 and c
 * multiples of the block): where they start when they are one dense
 * c x rows x cols tensor of that layout in place, else NULL. */
static float *fpi_dnnl_region_at(float *t, int lay, int c0, int c, int r0, int rows, int cols, int C, int h, int w)
{
    int b = fpi_dnnl.blk;
    if (cols != w) return NULL;
    if (lay == FPI_LAY_BLK) return rows == h || c == b ? t + ((size_t)(c0 / b) * h + r0) * w * b : NULL;
    return c == C ? t + (size_t)r0 * w * C : NULL;
}

/* Copies that region between t and a dense buffer b of the same layout:
 * into b, or out of it into t when `out`. */
static void fpi_dnnl_region_copy(float *b, float *t, int lay, int c0, int c, int r0, int rows, int cols, int C, int h,
                                 int w, int out)
{
    if (lay == FPI_LAY_BLK) {
        int blk = fpi_dnnl.blk;
        size_t run = (size_t)cols * blk;
        for (int cb = 0; cb < c / blk; cb++)
            for (int r = 0; r < rows; r++) {
                float *tr = t + (((size_t)(c0 / blk + cb) * h + r0 + r) * w) * blk, *br = b + ((size_t)cb * rows + r) * run;
                memcpy(out ? tr : br, out ? br : tr, run * sizeof(float));
            }
        return;
    }
    for (int r = 0; r < rows; r++) {
        if (c == C) {
            float *tr = t + ((size_t)(r0 + r) * w) * C, *br = b + (size_t)r * cols * c;
            memcpy(out ? tr : br, out ? br : tr, (size_t)cols * c * sizeof(float));
            continue;
        }
        for (int x = 0; x < cols; x++) {
            float *tp = t + ((size_t)(r0 + r) * w + x) * C + c0, *bp = b + ((size_t)r * cols + x) * c;
            memcpy(out ? tp : bp, out ? bp : tp, (size_t)c * sizeof(float));
        }
    }
}

typedef struct {
    const fpi_layer *l;
    const float *in;     /* the layer's input */
    float *out;          /* the layer's output, or the fused pool's */
    int pooled;          /* out is the fused pool's output */
    int in_lay, out_lay; /* in / out layouts: FPI_LAY_NCHW, or a hand-off's */
    char *ws;            /* the workspace */
    atomic_int next;     /* next piece to run */
    int q0, nq;          /* Winograd (d->wino): the part of the tiles its pieces do now */
    const fpi_layer *dw; /* a depthwise layer fused before it (fpi_conv_dw_dnnl): in is that one's input */
} fpi_dnnl_task;

static void fpi_dnnl_set(dnnl_memory_t m, const void *at)
{
    if (m) D(dnnl_memory_set_data_handle)(m, (void *)at);
}

/* The 1x1 and depthwise kernels for blocks of blk lanes (8: AVX2, 16:
 * AVX-512; fpi_dnnl_own1x1 and fpi_dnnl_own_dw chose them). */
typedef void (*fpi_conv1x1_fn)(const fpi_vmap *, int, const float *, const float *, int, fp_activation, int, int,
                               int, const fpi_vmap *, int);
typedef void (*fpi_dw3x3_fn)(const fpi_vmap *, int, int, const float *, const float *, fp_activation, int, int, int,
                             const fpi_vmap *);
static fpi_conv1x1_fn fpi_conv1x1_for(int blk) { return blk == 16 ? fpi_conv1x1_avx512 : fpi_conv1x1_avx2; }
static fpi_dw3x3_fn fpi_dw3x3_for(int blk) { return blk == 16 ? fpi_dw3x3_avx512 : fpi_dw3x3_avx2; }

/* Piece p of a layer fpi_conv1x1_avx2 or fpi_wino_rows_avx2 runs (the
 * latter with its slot as scratch): its rows from the input where it lies
 * (handed on or C x H x W) straight into the output, or the fused pool's
 * (a row piece's band starts on a window: fpi_dnnl_layer_create). */
static void fpi_dnnl_own_rows_run(const fpi_dnnl_task *t, const fpi_dnnl_piece *p, char *slot)
{
    const fpi_layer *l = t->l;
    int c = l->in.c, oc = l->out.c, pooled = t->pooled;
    fpi_vmap in = fpi_dnnl_vmap((float *)t->in, t->in_lay, 0, 0, c, l->in.h, l->in.w);
    const fpi_layer *ol = pooled ? l + 1 : l; /* a fused pool layer follows */
    fpi_vmap out = fpi_dnnl_vmap(t->out, t->out_lay, 0, pooled ? p->y0 / 2 : p->y0, oc, ol->out.h, ol->out.w);
    if (l->dnnl->wino_rows) {
        fpi_wino_rows_avx2(&in, c / 8, l->in.h, l->in.w, l->dnnl->wg_u, l->bias, oc / 8, l->act, p->y0, p->y1, &out,
                           pooled, (float *)slot);
        return;
    }
    int blk = fpi_dnnl.blk;
    fpi_conv1x1_fn conv = fpi_conv1x1_for(blk);
    if (!t->dw) {
        conv(&in, c / blk, l->dnnl->piece[0].weights, l->bias, oc / blk, l->act, p->y0, p->y1, l->out.w, &out, pooled);
        return;
    }
    /* the depthwise layer fused before it: its rows (a pooled pair, or one)
     * into the slot, then the 1x1 over them */
    const fpi_layer *dl = t->dw;
    int h = dl->in.h, w = l->in.w;
    fpi_vmap sv = {(float *)slot, 2 * (size_t)w * blk, (size_t)w * blk, (size_t)blk, 1};
    for (int y = p->y0; y < p->y1; y += 1 + pooled) {
        int rows = pooled && y + 1 < p->y1 ? 2 : 1;
        fpi_dw3x3_for(blk)(&in, h, w, dl->dnnl->dw_w, dl->bias, dl->act, c / blk, y, y + rows, &sv);
        fpi_vmap ov = out;
        ov.p += (size_t)(y - p->y0) / (1 + pooled) * out.sy;
        conv(&sv, c / blk, l->dnnl->piece[0].weights, l->bias, oc / blk, l->act, 0, rows, w, &ov, pooled);
    }
}

/* Piece i in the workspace slot at `slot`: its input (in place, copied, or
 * reordered), the convolution, then the output (or the max pool and its
 * output) in place, copied or reordered into the layer's, and the logistic
 * when the layer has it. */
static void fpi_dnnl_piece_run(const fpi_dnnl_task *t, int i, char *slot)
{
    const fpi_layer *l = t->l;
    struct fpi_dnnl_layer *d = l->dnnl;
    fpi_dnnl_piece *p = &d->piece[i];
    int c = l->in.c, oh = l->out.h, ow = l->out.w, po = p->o1 - p->o0, rows = p->y1 - p->y0;
    if (d->own1x1 || d->wino_rows) {
        fpi_dnnl_own_rows_run(t, p, slot);
        return;
    }
    if (d->own_dw) {
        /* its blocks of channels, whole, from the input where it lies into the output where it goes */
        fpi_vmap in = fpi_dnnl_vmap((float *)t->in, t->in_lay, p->o0, 0, c, l->in.h, l->in.w);
        fpi_vmap out = fpi_dnnl_vmap(t->out, t->out_lay, p->o0, 0, l->out.c, oh, ow);
        fpi_dw3x3_for(fpi_dnnl.blk)(&in, l->in.h, l->in.w, d->dw_w + (size_t)p->o0 * 9, l->bias + p->o0, l->act,
                                    po / fpi_dnnl.blk, 0, oh, &out);
        return;
    }
    fpi_dnnl_set(p->src, slot + p->src_at);
    fpi_dnnl_set(p->pad, slot + p->pad_at);
    int own = d->by_rows || d->dw_blocks; /* the piece reads its own part of the input */
    dnnl_memory_t src = own ? (p->src ? p->src : p->in_b.mem) : (d->src ? d->src : d->in_b.mem);
    if (own && t->in_lay) {
        /* its rows (or channels) of the handed-on input: in place, or copied */
        float *in = (float *)t->in;
        int c0 = d->dw_blocks ? p->o0 : 0, pc = d->dw_blocks ? po : c;
        float *at = fpi_dnnl_region_at(in, t->in_lay, c0, pc, (int)p->row_in, p->rows_in, p->in_b.cols, c, l->in.h,
                                       l->in.w);
        if (at) fpi_dnnl_set(p->src, at);
        else fpi_dnnl_region_copy((float *)(slot + p->src_at), in, t->in_lay, c0, pc, (int)p->row_in, p->rows_in,
                                  p->in_b.cols, c, l->in.h, l->in.w, 0);
    } else if (own) {
        fpi_dnnl_block_bind(&p->in_b, t->in, slot, 1);
        if (p->in) {
            dnnl_exec_arg_t a[] = {{DNNL_ARG_FROM, p->in_b.mem}, {DNNL_ARG_TO, p->src}};
            D(dnnl_primitive_execute)(p->in, p->stream, 2, a);
        }
    }
    /* the convolution's output: in place in a handed-on output when it can
     * be, else in the slot */
    float *dst_at = NULL;
    if (t->out_lay && !t->pooled)
        dst_at = fpi_dnnl_region_at(t->out, t->out_lay, p->o0, po, p->y0, rows, ow, l->out.c, oh, ow);
    fpi_dnnl_set(p->dst, dst_at ? (char *)dst_at : slot + p->dst_at);
    if (!t->pooled && !t->out_lay) fpi_dnnl_block_bind(&p->out_b, t->out, slot, 0);
    if (d->own3x3) {
        /* the same memories, by fogpipe's kernel (fpi_dnnl_own3x3) */
        void *s = NULL, *o = NULL;
        D(dnnl_stream_wait)(p->stream); /* the input's reorder */
        D(dnnl_memory_get_data_handle)(src, &s);
        D(dnnl_memory_get_data_handle)(p->dst, &o);
        const dnnl_memory_desc_t *smd = fpi_dnnl_md(src);
        if (d->wino)
            fpi_wino_conv_avx2((const float *)(t->ws + d->v_at), c / 8, rows, ow, t->q0, t->nq, p->weights,
                               l->bias + p->o0, po / 8, l->act, o, (float *)slot);
        else
            fpi_conv3x3_avx2(s, c / 8, (int)smd->dims[2], (int)smd->dims[3], p->pad_t, p->weights, l->bias + p->o0,
                             po / 8, l->act, rows, ow, o);
    } else {
        dnnl_exec_arg_t a[] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, p->wei}, {DNNL_ARG_BIAS, p->bias},
                               {DNNL_ARG_DST, p->dst ? p->dst : p->out_b.mem}, {DNNL_ARG_SCRATCHPAD, p->pad}};
        D(dnnl_primitive_execute)(p->conv, p->stream, p->pad ? 5 : 4, a);
    }
    if (t->pooled) {
        /* the pool of its rows (whole windows: the row pieces' bands are
         * multiples of the stride) while they are in cache, straight into
         * the pool layer's output, handed on or nchw */
        const fpi_layer *pl = l + 1; /* the fused pool layer follows */
        int k = pl->p.pool.size, s = pl->p.pool.stride, ph = pl->out.h, pw = pl->out.w;
        int py0 = p->y0 / s, py1 = (p->y1 + s - 1) / s < ph ? (p->y1 + s - 1) / s : ph, blk = fpi_dnnl.blk;
        D(dnnl_stream_wait)(p->stream);
        fpi_vmap in = fpi_dnnl_vmap((float *)(slot + p->dst_at), d->dst_lay, 0, 0, po, rows, ow);
        fpi_vmap out = fpi_dnnl_vmap(t->out, t->out_lay, p->o0, py0, pl->out.c, ph, pw);
        fpi_maxpool_vec(&in, &out, (po + blk - 1) / blk, blk, po - (po - 1) / blk * blk, p->y0, p->y1, ow, py0, py1,
                        pw, k, s, 0);
        return;
    }
    if (t->out_lay) {
        D(dnnl_stream_wait)(p->stream);
        if (!dst_at)
            fpi_dnnl_region_copy((float *)(slot + p->dst_at), t->out, t->out_lay, p->o0, po, p->y0, rows, ow, l->out.c,
                                 oh, ow, 1);
        return;
    }
    if (p->out) {
        dnnl_exec_arg_t b[] = {{DNNL_ARG_FROM, p->dst}, {DNNL_ARG_TO, p->out_b.mem}};
        D(dnnl_primitive_execute)(p->out, p->stream, 2, b);
    }
    D(dnnl_stream_wait)(p->stream);
    fpi_dnnl_block_store(&p->out_b, t->out, slot);
    if (l->act != FP_ACT_LOGISTIC) return;
    size_t plane = (size_t)oh * ow;
    for (int ch = p->o0; ch < p->o1; ch++) fpi_activate(t->out + ch * plane + (size_t)p->y0 * ow, (size_t)rows * ow, l->act);
}

/* Task k: runs pieces in workspace slot k until none are left. */
static void fpi_dnnl_task_run(int k, void *vctx)
{
    fpi_dnnl_task *t = vctx;
    const struct fpi_dnnl_layer *d = t->l->dnnl;
    char *slot = t->ws + d->slot0 + (size_t)k * d->slot_bytes;
    fpi_dnnl_one_thread();
    for (int i; (i = atomic_fetch_add(&t->next, 1)) < d->n;) fpi_dnnl_piece_run(t, i, slot);
}

typedef struct {
    const fpi_layer *l;
    const float *in; /* the layer's input as its pieces read it (nChw8c) */
    float *v;        /* its transform */
    int per;         /* blocks of input channels per task */
    int q0, nq;      /* the tiles */
} fpi_dnnl_wino_task;

/* Task k of a Winograd layer's input transform: input blocks [k per, (k + 1) per). */
static void fpi_dnnl_wino_input(int k, void *vctx)
{
    const fpi_dnnl_wino_task *t = vctx;
    const fpi_layer *l = t->l;
    int nbi = l->in.c / 8, b0 = k * t->per, b1 = b0 + t->per < nbi ? b0 + t->per : nbi;
    fpi_vmap in = fpi_dnnl_vmap((float *)t->in, FPI_LAY_BLK, 0, 0, l->in.c, l->in.h, l->in.w);
    fpi_wino_input_avx2(&in, nbi, b0, b1, l->in.h, l->in.w, t->q0, t->nq, t->v);
}

/* Runs layer l, and the fused pool into `pooled` when not NULL; with dw,
 * that depthwise layer first (fused: src is its input). */
static int fpi_dnnl_run(const fpi_layer *l, const float *const *src, float *out, float *pooled, const fpi_exec *x,
                        const fpi_layer *dw)
{
    struct fpi_dnnl_layer *d = l->dnnl;
    if (!d || !fpi_fast_enabled() || !fpi_dnnl_mode_allows() || !x->workspace) return 0;
    fpi_dnnl_task t = {l, src[0], pooled ? pooled : out, pooled != NULL, 0, 0, (char *)x->workspace, 0, 0, 1, dw};
    /* hand-offs between layers that both run now, unseen */
    const struct fpi_dnnl_layer *di = dw ? dw->dnnl : d; /* whose input is read */
    if (x->handoff && di->hand_in && di->hand_root >= x->first) t.in_lay = di->hand_in;
    if (x->handoff && d->hand_out && d->hand_to <= x->last && (pooled || d->pool_layer < 0)) t.out_lay = d->hand_out;
    if (!d->by_rows && !d->dw_blocks) {
        /* channel split: the whole input, once, in the layout every piece reads */
        int c = l->in.c, h = l->in.h, w = l->in.w;
        fpi_dnnl_set(d->src, t.ws + d->src_at);
        if (t.in_lay) {
            float *in = (float *)src[0], *at = fpi_dnnl_region_at(in, t.in_lay, 0, c, 0, h, d->in_b.cols, c, h, w);
            if (at) fpi_dnnl_set(d->src, at);
            else fpi_dnnl_region_copy((float *)(t.ws + d->src_at), in, t.in_lay, 0, c, 0, h, d->in_b.cols, c, h, w, 0);
        } else {
            fpi_dnnl_block_bind(&d->in_b, src[0], t.ws, 1);
            if (d->in) {
                fpi_dnnl_one_thread();
                dnnl_exec_arg_t a[] = {{DNNL_ARG_FROM, d->in_b.mem}, {DNNL_ARG_TO, d->src}};
                D(dnnl_primitive_execute)(d->in, d->stream, 2, a);
                D(dnnl_stream_wait)(d->stream);
            }
        }
    }
    int tasks = fpi_pool_threads(x->pool);
    int tiles = d->wino ? (int)fpi_wino_tiles(l->out.h, l->out.w) : 1;
    int parts = d->wino && t.out_lay == FPI_LAY_BLK && !t.pooled ? d->wg_parts : 1, per = (tiles + parts - 1) / parts;
    parts = (tiles + per - 1) / per; /* none empty */
    for (int k = 0; k < parts; k++) {
        t.q0 = k * per;
        t.nq = tiles - t.q0 < per ? tiles - t.q0 : per;
        atomic_store(&t.next, 0);
        if (d->wino) {
            /* the input's transform, which every piece reads, in tasks of
             * whole blocks of input channels */
            fpi_dnnl_wino_task w = {l, NULL, (float *)(t.ws + d->v_at), (l->in.c / 8 + 2 * tasks - 1) / (2 * tasks),
                                    t.q0, t.nq};
            void *s = NULL;
            D(dnnl_memory_get_data_handle)(d->src, &s); /* fpi_dnnl_own3x3: there is one */
            w.in = s;
            fpi_parallel_for(x->pool, (l->in.c / 8 + w.per - 1) / w.per, fpi_dnnl_wino_input, &w);
        }
        fpi_parallel_for(x->pool, tasks < d->n ? tasks : d->n, fpi_dnnl_task_run, &t);
    }
    return 1;
}

int fpi_conv_dnnl(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    if (l->dnnl && l->dnnl->is_pool) return 0;
    return fpi_dnnl_run(l, src, out, NULL, x, NULL);
}

typedef struct {
    const fpi_layer *l;
    fpi_vmap in, out; /* the whole input and output */
    int per;          /* blocks of channels per task */
} fpi_dnnl_pool_task;

static void fpi_dnnl_pool_run(int i, void *vctx)
{
    const fpi_dnnl_pool_task *t = vctx;
    const fpi_layer *l = t->l;
    int blk = fpi_dnnl.blk, nb = l->out.c / blk, b0 = i * t->per, b1 = b0 + t->per < nb ? b0 + t->per : nb;
    fpi_vmap in = t->in, out = t->out;
    in.p += (size_t)b0 * in.sb;
    out.p += (size_t)b0 * out.sb;
    fpi_maxpool_vec(&in, &out, b1 - b0, blk, blk, 0, l->in.h, l->in.w, 0, l->out.h, l->out.w, l->p.pool.size,
                    l->p.pool.stride, l->p.pool.pad / 2);
}

int fpi_maxpool_dnnl(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    struct fpi_dnnl_layer *d = l->dnnl;
    if (!d || !d->is_pool || !fpi_fast_enabled() || !fpi_dnnl_mode_allows()) return 0;
    /* only a handed-on input; in C x H x W the other kernels pool as well */
    if (!(x->handoff && d->hand_in && d->hand_root >= x->first)) return 0;
    int out_lay = x->handoff && d->hand_out && d->hand_to <= x->last ? d->hand_out : FPI_LAY_NCHW;
    int c = l->out.c, nb = c / fpi_dnnl.blk;
    /* tasks of at least 16K outputs, up to 32 of them */
    size_t plane = (size_t)l->out.h * l->out.w * fpi_dnnl.blk;
    int per = (int)((16384 + plane - 1) / plane);
    if ((nb + per - 1) / per > 32) per = (nb + 31) / 32;
    fpi_dnnl_pool_task t = {l, fpi_dnnl_vmap((float *)src[0], d->hand_in, 0, 0, c, l->in.h, l->in.w),
                            fpi_dnnl_vmap(out, out_lay, 0, 0, c, l->out.h, l->out.w), per};
    fpi_parallel_for(x->pool, (nb + per - 1) / per, fpi_dnnl_pool_run, &t);
    return 1;
}

int fpi_conv_pool_dnnl(const fpi_layer *l, const fpi_layer *pool, const float *const *src, float *pooled,
                       const fpi_exec *x)
{
    if (!l->dnnl || l->dnnl->pool_layer < 0 || l->dnnl->pool_layer != pool->index) return 0;
    return fpi_dnnl_run(l, src, NULL, pooled, x, NULL);
}

int fpi_conv_dw_dnnl(const fpi_layer *l, const fpi_layer *next, const float *const *src, float *out, float *pooled,
                     const fpi_exec *x)
{
    const struct fpi_dnnl_layer *d = l->dnnl;
    if (!d || d->dw_into < 0 || d->dw_into != next->index || !x->handoff || next->index > x->last) return 0;
    int pool = pooled && next->dnnl->pool_layer == next->index + 1 && next->index + 1 <= x->last;
    if (!fpi_dnnl_run(next, src, pool ? NULL : out, pool ? pooled : NULL, x, l)) return 0;
    return 2 + pool;
}

/* A stage of a trunk: its depthwise layer d, computed inside its 1x1 layer
 * c (pooled when c's pool is fused), and its rows. */
typedef struct {
    const fpi_layer *d, *c;
    int pooled;
    float *ring;  /* d's input rows: row y at y % 4 */
    float *dws;   /* d's output rows, 2 */
    int next;     /* the next input row to make */
} fpi_chain_stage;

/* What the trunk's first stage reads from. */
typedef struct {
    const fpi_layer *a;          /* the first layer */
    const float *in;             /* its input */
    const fpi_rows *rows;        /* or the network input's rows as they are made (fpi_exec.in_rows) */
    float *scratch;              /* its scratch (fpi_first_pooled_row) */
} fpi_chain_task;

/* Row r of stage s's result (its 1x1 layer's output, or its pool's) into o
 * (where that row goes): the input rows it needs made first, into the
 * stage's ring (by the first layer, or the stage before), then its
 * depthwise rows, then the 1x1 over them. */
static void fpi_chain_row(const fpi_chain_task *t, fpi_chain_stage *st, int s, int r, const fpi_vmap *o)
{
    fpi_chain_stage *g = &st[s];
    const fpi_layer *d = g->d, *c = g->c;
    int h = d->in.h, w = d->in.w, nb = d->in.c / 8, y = r * (1 + g->pooled);
    int rows = g->pooled && y + 1 < h ? 2 : 1, need = y + rows < h ? y + rows : h - 1;
    size_t row = (size_t)nb * w * 8;
    for (; g->next <= need; g->next++) {
        float *at = g->ring + (size_t)(g->next % 4) * row;
        if (s == 0) {
            fpi_first_pooled_row(t->a, t->in, t->rows, g->next, at, (size_t)w * 8, t->scratch);
        } else {
            fpi_vmap ro = {at, (size_t)w * 8, 0, 8, 1};
            fpi_chain_row(t, st, s - 1, g->next, &ro);
        }
    }
    fpi_vmap rv = {NULL, (size_t)w * 8, 0, 8, 1}, sv = {g->dws, 2 * (size_t)w * 8, (size_t)w * 8, 8, 1};
    for (int k = 0; k < rows; k++) {
        int yy = y + k;
        const float *rr[3] = {yy > 0 ? g->ring + (size_t)((yy - 1) % 4) * row : NULL, g->ring + (size_t)(yy % 4) * row,
                              yy + 1 < h ? g->ring + (size_t)((yy + 1) % 4) * row : NULL};
        fpi_dw3x3_row_avx2(rr, &rv, w, d->dnnl->dw_w, d->bias, d->act, nb, g->dws + (size_t)k * w * 8, &sv);
    }
    fpi_conv1x1_avx2(&sv, nb, c->dnnl->piece[0].weights, c->bias, c->out.c / 8, c->act, 0, rows, w, o, g->pooled);
}

/* The stages of a's trunk that run now (into dw[]), or 0 when it does not
 * run: a callback, more than one thread, fast kernels or oneDNN off. */
static int fpi_chain_now(const fp_net *net, const fpi_layer *a, const fpi_exec *x, const fpi_layer **dw)
{
    if (a->first_chain < 0 || !x->handoff || !x->workspace || fpi_pool_threads(x->pool) != 1 ||
        !fpi_fast_enabled() || !fpi_dnnl_mode_allows())
        return 0;
    return fpi_chain_stages(net, a, x->last, dw);
}

int fpi_first_chain_end(const fp_net *net, const fpi_layer *a, const fpi_exec *x)
{
    const fpi_layer *dw[FPI_CHAIN_STAGES];
    int n = fpi_chain_now(net, a, x, dw);
    if (!n) return -1;
    int c = dw[n - 1]->dnnl->dw_into;
    return net->layers[c].dnnl->pool_layer == c + 1 ? c + 1 : c;
}

int fpi_first_chain_dnnl(const fp_net *net, const fpi_layer *a, const float *in, float *out, const fpi_exec *x)
{
    const fpi_layer *dw[FPI_CHAIN_STAGES];
    int n = fpi_chain_now(net, a, x, dw);
    if (!n) return 0;
    fpi_chain_task t = {a, in, a->src[0] == -1 ? x->in_rows : NULL, x->workspace};
    fpi_chain_stage st[FPI_CHAIN_STAGES];
    float *at = x->workspace + fpi_first_row_floats(a);
    for (int s = 0; s < n; s++) {
        const fpi_layer *d = dw[s], *c = &net->layers[d->dnnl->dw_into];
        size_t row = (size_t)d->in.c * d->in.w;
        st[s] = (fpi_chain_stage){d, c, c->dnnl->pool_layer == c->index + 1, at, at + 4 * row, 0};
        at += 6 * row;
    }
    /* the last stage's result as fpi_dnnl_run would write it */
    const fpi_layer *c = st[n - 1].c, *ol = st[n - 1].pooled ? c + 1 : c;
    const struct fpi_dnnl_layer *dc = c->dnnl;
    int out_lay = dc->hand_out && dc->hand_to <= x->last ? dc->hand_out : 0;
    fpi_vmap o = fpi_dnnl_vmap(out, out_lay, 0, 0, c->out.c, ol->out.h, ol->out.w);
    fpi_first_rows_reset(a, t.scratch);
    for (int r = 0; r < ol->out.h; r++, o.p += o.sy) fpi_chain_row(&t, st, n - 1, r, &o);
    return 1;
}

#else /* !FP_HAVE_DNNL: built without oneDNN */

int fpi_dnnl_available(void) { return 0; }
const char *fpi_dnnl_describe(void) { return "built without oneDNN"; }
fp_status fpi_dnnl_setup(fp_net *net) { return FP_OK; }
fp_status fpi_dnnl_restore(fp_net *net) { return FP_OK; }
void fpi_dnnl_layer_destroy(struct fpi_dnnl_layer *d) { (void)d; }
const char *fpi_dnnl_layer_impl(const fpi_layer *l) { return NULL; }
void fpi_dnnl_set_sizes(double min_flops, double piece_flops) { (void)min_flops, (void)piece_flops; }
void fpi_dnnl_set_wino_v_max(size_t bytes) { (void)bytes; }
int fpi_dnnl_fused_pool(const fpi_layer *l) { return -1; }
int fpi_dnnl_dw_into(const fpi_layer *l) { return -1; }
int fpi_dnnl_hands_to(const fpi_layer *l) { return -1; }
int fpi_conv_dnnl(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x) { return 0; }
int fpi_maxpool_dnnl(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x) { return 0; }
int fpi_conv_pool_dnnl(const fpi_layer *l, const fpi_layer *pool, const float *const *src, float *pooled,
                       const fpi_exec *x)
{
    return 0;
}
int fpi_conv_dw_dnnl(const fpi_layer *l, const fpi_layer *next, const float *const *src, float *out, float *pooled,
                     const fpi_exec *x)
{
    return 0;
}
int fpi_first_chain_end(const fp_net *net, const fpi_layer *a, const fpi_exec *x) { return -1; }
int fpi_first_chain_dnnl(const fp_net *net, const fpi_layer *a, const float *in, float *out, const fpi_exec *x)
{
    return 0;
}

#endif
