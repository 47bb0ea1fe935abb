/*
 * net_impl.h — the network's internal shape: layers, per-op parameters, the
 * op dispatch table and the execution context. Internal: not API.
 */
#ifndef FP_ENGINE_NET_IMPL_H
#define FP_ENGINE_NET_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "fogpipe/net.h"
#include "model/cfg.h"

enum { FPI_MAX_ANCHORS = 32 }; /* anchor pairs in a region/yolo head */

typedef struct fpi_conv_params {
    int filters; /* output channels */
    int size;    /* kernel side */
    int stride;  /* stride in both directions */
    int pad;     /* zero padding on each side */
    int groups;  /* channel groups (groups == in.c: depthwise) */
    int bn;      /* batch_normalize: scales/mean/variance in the weights file */
} fpi_conv_params;

typedef struct fpi_pool_params {
    int size;   /* window side */
    int stride; /* step */
    int pad;    /* darknet "padding": total, split as -pad/2 on the top/left */
} fpi_pool_params;

typedef struct fpi_connected_params {
    int outputs; /* output features */
    int bn;      /* batch_normalize */
} fpi_connected_params;

typedef struct fpi_softmax_params {
    int groups;        /* independent softmax groups over the flat input */
    float temperature; /* divides the logits */
} fpi_softmax_params;

typedef struct fpi_shortcut_params {
    float alpha; /* weight of the previous layer's output */
    float beta;  /* weight of the `from` layer's output */
} fpi_shortcut_params;

typedef struct fpi_upsample_params {
    int stride;  /* nearest-neighbour factor */
    float scale; /* multiplies every value */
} fpi_upsample_params;

typedef struct fpi_reorg_params {
    int stride;  /* block side */
    int reverse; /* darknet's reverse flag */
} fpi_reorg_params;

/* Parameters of the three detection heads; the decoder reads them too. */
typedef struct fpi_head_params {
    int classes;                      /* object classes */
    int coords;                       /* box coordinates (4) */
    int num;                          /* boxes per cell (yolo: masked anchors) */
    int side;                         /* detection: grid side */
    int softmax;                      /* detection/region: softmax over classes */
    int sqrt;                         /* detection: w,h predicted as square roots */
    int background;                   /* region: no objectness */
    int total;                        /* yolo: anchors listed */
    int mask[FPI_MAX_ANCHORS];        /* yolo: anchors used by this head */
    float biases[2 * FPI_MAX_ANCHORS];/* anchors (w,h pairs) */
} fpi_head_params;

typedef struct fpi_layer {
    fp_op op;                 /* layer type */
    int index;                /* position in the network */
    int line;                 /* cfg line of the section header */
    fp_activation act;        /* activation applied to the output */
    fp_shape in;              /* shape of input 0 */
    fp_shape out;             /* output shape */
    int n_src;                /* number of inputs */
    int src[FP_MAX_ROUTE];    /* producing layers; -1 = network input */
    fp_shape src_shape[FP_MAX_ROUTE]; /* shapes of those inputs (set after parse) */
    union {
        fpi_conv_params conv;
        fpi_pool_params pool;
        fpi_connected_params fc;
        fpi_softmax_params softmax;
        fpi_shortcut_params shortcut;
        fpi_upsample_params upsample;
        fpi_reorg_params reorg;
        fpi_head_params head;
    } p;                      /* per-op parameters (by op) */
    size_t n_params;          /* floats this layer reads from the weights file */
    size_t param_off;         /* offset (floats) of them in fp_net.params */
    const float *kernel;      /* weights used by the kernel (folded), or NULL */
    const float *bias;        /* bias used by the kernel (folded), or NULL */
    uint64_t flops;           /* per image */
    size_t workspace;         /* scratch floats the kernel needs */
    size_t out_off;           /* byte offset of the output in the arena; FPI_NO_TENSOR if none */
    int last_use;             /* last layer that reads the output */
    char desc[64];            /* short human description */
    struct fpi_dnnl_layer *dnnl; /* oneDNN's prepared convolution (fast/dnnl.c), or NULL */
    int kernel_released;      /* kernel's pages given back: oneDNN holds the weights (fpi_dnnl_restore) */
    int conv_first;           /* run by fast/conv_first.c (set at fp_net_setup) */
    int conv_first_pool;      /* ... fused with the max pool after it */
    int first_hand_to;        /* the oneDNN layer it hands the pooled map to in oneDNN's blocked
                               * layout (fpi_dnnl_setup; when both run in one fp_net_run without a
                               * callback), or -1 */
    int first_hand_blk;       /* ... that layout's block: 8 (nChw8c) or 16 (nChw16c) */
    int first_chain;          /* the 1x1 layer its pooled rows are made for as it goes, through
                               * the depthwise layer between (fpi_first_chain_dnnl), or -1 */
    float *first_wino;        /* the first-layer kernel's weights for Winograd's F(2x2, 3x3)
                               * (fpi_first_setup; owned), or NULL: it sums directly */
} fpi_layer;

struct fpi_pool;

/* The network input's rows made as a run reads them, instead of read from
 * the input tensor (fpi_net_run_rows): row(ctx, c, y) gives channel c's row
 * y (in.w floats), valid until the next call for channel c. */
typedef struct fpi_rows {
    const float *(*row)(void *ctx, int c, int y);
    void *ctx;
} fpi_rows;

/* What a kernel gets besides its inputs and output. */
typedef struct fpi_exec {
    float *workspace;         /* scratch of at least layer->workspace floats */
    struct fpi_pool *pool;    /* worker threads (may be NULL) */
    int first, last;          /* the layers fp_net_run runs */
    int handoff;              /* no callback sees the layers' outputs: adjacent oneDNN
                               * layers may hand tensors on in their own layout (fast/dnnl.c) */
    const fpi_rows *in_rows;  /* the network input's rows (fpi_net_run_rows): read by the layer
                               * that reads the input when it makes its rows as it goes (the
                               * trunk of fast/dnnl.c), or NULL: the input tensor holds them */
} fpi_exec;

/* Shape inference context while building from a cfg. */
typedef struct fpi_build {
    const fpi_cfg *cfg;       /* the parsed cfg */
    fp_shape input;           /* network input shape */
    fpi_layer *layers;        /* layers built so far (index < current) */
    int n;                    /* current layer index */
} fpi_build;

/* One op's hooks; the table is generated from ops.def. */
typedef struct fpi_op_vtable {
    const char *name;
    /* Reads options, fills l->p, l->out, l->src, l->n_params, l->flops,
     * l->workspace, l->desc. l->in is set to the previous output already. */
    fp_status (*parse)(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b);
    /* Reference kernel: inputs in src[0..n_src), output in out. */
    void (*forward)(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x);
} fpi_op_vtable;

extern const fpi_op_vtable fpi_ops[FP_OP_COUNT];

/* Per-op hooks, declared from ops.def so a missing one fails to link. */
#define FP_OP(name, cfgname, prefix)                                                        \
    fp_status fpi_##prefix##_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b);   \
    void fpi_##prefix##_forward(const fpi_layer *l, const float *const *src, float *out,    \
                                const fpi_exec *x);
#include "fogpipe/ops.def"
#undef FP_OP

/* Shape of layer j's output, j = -1 meaning the network input. */
fp_shape fpi_build_shape(const fpi_build *b, int j);

/* Parses `activation=` (default `def`) into l->act. */
fp_status fpi_parse_activation(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *def,
                               fp_activation *out);

/* Applies an activation in place to n values. */
void fpi_activate(float *x, size_t n, fp_activation act);

/* Numerically darknet's softmax over n values spaced `stride` apart. */
void fpi_softmax(const float *in, int n, float temp, int stride, float *out);

/* fpi_softmax for `cells` consecutive cells whose n entries lie `stride`
 * apart (a region layer's classes): the fast kernel when on and temp is 1. */
void fpi_softmax_cells(const float *in, int n, float temp, size_t stride, size_t cells, float *out);

/* Validates that a product of dims fits comfortably (< 2^31 elements). */
fp_status fpi_check_shape(const fpi_cfg *cfg, const fpi_cfg_section *s, fp_shape sh);

struct fp_net {
    fp_shape input;           /* network input shape */
    int n;                    /* number of layers */
    fpi_layer *layers;        /* n layers */
    float *params;            /* parameters as in the weights file (raw): the range's layers' */
    size_t n_params;          /* floats the whole network's weights file holds */
    size_t param_base;        /* params[0] is parameter number param_base of the file */
    size_t n_held;            /* floats in params (n_params unless the range is restricted) */
    int first, last;          /* layer range held and run (fp_net_set_range; else 0..n-1) */
    int ranged;               /* fp_net_set_range was called */
    int weights_loaded;       /* params hold real values */
    int weights_prepared;     /* kernel/bias pointers are set */
    int kernels_released;     /* some layer's plain kernel given back (fpi_layer.kernel_released) */
    unsigned char *arena;     /* activation arena (one allocation) */
    size_t arena_bytes;       /* its size */
    size_t live_pair_bytes;   /* the two largest tensors live at one layer, at the worst layer */
    size_t input_off;         /* byte offset of the network input */
    float *workspace;         /* scratch shared by kernels */
    size_t workspace_floats;  /* its size */
    int threads;              /* kernel threads */
    struct fpi_pool *pool;    /* worker pool when threads > 1 */
    /* What a model loader knows beyond the graph (zero for darknet cfgs): */
    int prep;                 /* FPI_PREP_*: how images become the input */
    const char *const *names; /* built-in class names (static strings), or NULL */
    int n_names;              /* entries in names */
    float def_thresh;         /* the model's default score threshold, or 0: the head's */
    float def_nms;            /* the model's default NMS IoU threshold, or 0: the head's */
};

/* fp_net_run of layers 0..last without a callback, the input's rows made by
 * `rows` as they are read (each channel's in order) instead of read from
 * the input tensor, when the layer that reads the input makes its rows as
 * it goes (fpi_net_takes_rows: the trunk of fast/dnnl.c); otherwise they
 * are written into the input tensor first. Either way the result is the
 * same bits as with those rows in the input tensor; in the first case the
 * input tensor is not written. */
int fpi_net_takes_rows(const fp_net *net, int last);
fp_status fpi_net_run_rows(fp_net *net, int last, const fpi_rows *rows);

/* out_off / input_off of a tensor a restricted network holds no space for. */
#define FPI_NO_TENSOR ((size_t)-1)

/* Raw parameters of layer l (in the range held). */
static inline float *fpi_layer_params(const fp_net *net, const fpi_layer *l)
{
    return net->params + (l->param_off - net->param_base);
}

/* How images are prepared for a network (fp_net.prep). */
enum {
    FPI_PREP_DARKNET = 0,    /* by head: stretched ([detection]) or letterboxed ([region], [yolo]) */
    FPI_PREP_PAD_SQUARE = 1, /* TF.js models: fp_image_pad_square */
};

/* Thread pool: runs fn(i, ctx) for i in [0, n) on the pool's threads and
 * the caller; returns when all are done. pool may be NULL (runs inline). */
typedef void (*fpi_task_fn)(int i, void *ctx);
void fpi_parallel_for(struct fpi_pool *pool, int n, fpi_task_fn fn, void *ctx);
fp_status fpi_pool_create(int threads, struct fpi_pool **out);
void fpi_pool_destroy(struct fpi_pool *pool);
/* Threads that run a job's tasks, the caller included (1 for a NULL pool). */
int fpi_pool_threads(const struct fpi_pool *pool);

#endif /* FP_ENGINE_NET_IMPL_H */
