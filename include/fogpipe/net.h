/*
 * fogpipe/net.h — the inference graph: layers with shapes and costs, one
 * weight buffer and one activation arena per network, and execution of any
 * contiguous range of layers.
 *
 * Lifecycle (graph description is separate from execution):
 *   1. create:   fp_net_load_cfg() parses a darknet .cfg into a graph whose
 *                every layer has its input/output shape, FLOPs, parameter
 *                count and output bytes. No weights, no activations yet, so
 *                a partitioner can inspect and cut it cheaply.
 *   2. weights:  fp_net_load_weights() (darknet .weights file) or
 *                fp_net_init_weights_random().
 *   3. setup:    fp_net_setup() folds batch-norm into the weights in place,
 *                prepares the fast kernels (oneDNN takes its own copy of a
 *                convolution's weights, and the plain copy's memory goes
 *                back to the system) and plans the activation arena from
 *                tensor lifetimes (one allocation; none per frame).
 *   4. run:      fp_net_run(net, first, last, ...) executes layers
 *                first..last inclusive, any number of times.
 *
 * Example:
 *     fp_net *net = NULL;
 *     if (fp_net_load_cfg("yolov3-tiny.cfg", &net) ||
 *         fp_net_load_weights(net, "yolov3-tiny.weights") ||
 *         fp_net_setup(net)) { fprintf(stderr, "%s\n", fp_last_error()); ... }
 *     memcpy(fp_net_input(net), chw_pixels, fp_shape_count(fp_net_input_shape(net)) * 4);
 *     fp_net_run(net, 0, fp_net_layer_count(net) - 1, NULL, NULL);
 *     const float *out = fp_net_output(net, fp_net_layer_count(net) - 1);
 *     fp_net_destroy(net);
 *
 * Tensors are float32 in darknet's planar layout: channel-major, then rows,
 * then columns (C×H×W, batch 1). Fully connected outputs are C×1×1.
 */
#ifndef FOGPIPE_NET_H
#define FOGPIPE_NET_H

#include <stddef.h>
#include <stdint.h>

#include "fogpipe/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { FP_MAX_ROUTE = 8 };        /* most inputs a layer may have */
enum { FP_MAX_LAYERS = 4096 };    /* most layers in one network */
enum { FP_MAX_DIM = 1 << 16 };    /* largest width, height or channel count */

/* Layer types, generated from ops.def. */
typedef enum fp_op {
#define FP_OP(name, cfgname, prefix) FP_OP_##name,
#include "fogpipe/ops.def"
#undef FP_OP
    FP_OP_COUNT
} fp_op;

/* Activation functions (darknet names). */
typedef enum fp_activation {
    FP_ACT_LINEAR = 0,
    FP_ACT_LEAKY,    /* x > 0 ? x : 0.1x */
    FP_ACT_RELU,
    FP_ACT_LOGISTIC, /* 1 / (1 + e^-x) */
    FP_ACT_COUNT
} fp_activation;

/* A C×H×W shape (batch is always 1). */
typedef struct fp_shape {
    int c; /* channels (or features, for flat tensors) */
    int h; /* rows */
    int w; /* columns */
} fp_shape;

static inline size_t fp_shape_count(fp_shape s) { return (size_t)s.c * (size_t)s.h * (size_t)s.w; }

/* Everything known about a layer before any compute. */
typedef struct fp_layer_info {
    int index;                /* 0-based layer index, as darknet counts */
    fp_op op;                 /* layer type */
    const char *type;         /* cfg section name, e.g. "convolutional" */
    int cfg_line;             /* line of the section header in the cfg */
    fp_shape in;              /* shape of the (first) input */
    fp_shape out;             /* shape of the output */
    int n_inputs;             /* number of input tensors */
    int inputs[FP_MAX_ROUTE]; /* producing layer of each input; -1 = network input */
    uint64_t flops;           /* floating-point operations per image (multiply-add = 2) */
    uint64_t params;          /* parameters as stored in the weights file (floats) */
    uint64_t out_bytes;       /* bytes of the output tensor (float32) */
    char desc[64];            /* short description, e.g. "16 3x3/1 leaky" */
} fp_layer_info;

typedef struct fp_net fp_net;

/* Called after each layer in fp_net_run(); `out` holds the layer's output
 * (valid only during the call). Return non-zero to stop the run (it then
 * returns FP_ESTATE). */
typedef int (*fp_layer_cb)(void *user, int layer, const float *out, fp_shape shape);

/* Parses a darknet .cfg file into a graph with shapes and costs.
 * On success *out owns a new network (free with fp_net_destroy); on failure
 * *out is untouched and fp_last_error() names the file, line, section and
 * reason. Errors: FP_EIO, FP_ETOOBIG (file over 4 MiB), FP_ECORRUPT (malformed),
 * FP_EUNSUPPORTED (valid darknet but not supported here), FP_ENOMEM. */
fp_status fp_net_load_cfg(const char *path, fp_net **out);

/* Same, from a NUL-terminated cfg text in memory; `name` is used in messages.
 * The text is not kept. */
fp_status fp_net_parse_cfg(const char *text, const char *name, fp_net **out);

enum { FP_TFJS_MIN_INPUT = 128, FP_TFJS_MAX_INPUT = 608 }; /* input sides of TF.js models */

/* Builds a network and its weights from a TensorFlow.js weights manifest
 * (model.json-style "…-weights_manifest.json" plus its binary shards,
 * float32/float16/uint8/uint16 dequantised at load). The architecture is
 * recognised from the tensor names; today that is face-api's tiny face
 * detector (@vladmandic/face-api, tiny_face_detector_model), built as
 * ordinary convolutional/maxpool layers and a one-class [region] head.
 * `input_size` is the square input side, a multiple of 32 in
 * [FP_TFJS_MIN_INPUT, FP_TFJS_MAX_INPUT] (face-api's default is 416).
 * Images for it are prepared with fp_detect_prepare() (padded to a square,
 * not letterboxed). The network comes with its weights: call
 * fp_net_set_threads / fp_net_setup next. On success *out owns a new
 * network (fp_net_destroy); on failure *out is untouched and
 * fp_last_error() names the manifest or shard and the reason. Errors:
 * FP_EINVAL (input size), FP_EIO (missing manifest or shard), FP_ECORRUPT
 * (bad JSON, a spec, shard sizes or a tensor shape not as the model needs),
 * FP_EUNSUPPORTED (dtype, or another model), FP_ETOOBIG, FP_ENOMEM. */
fp_status fp_net_load_tfjs(const char *manifest, int input_size, fp_net **out);

/* The same network from the manifest alone, without weights: no shard is
 * opened (a pipeline stage that gets its layers' parameters as stage
 * weights, fp_net_load_stage_weights). */
fp_status fp_net_load_tfjs_graph(const char *manifest, int input_size, fp_net **out);

/* Frees a network and everything it owns. NULL is a no-op. */
void fp_net_destroy(fp_net *net);

/* Reads a darknet .weights file (header versions 0.1 and 0.2+, "seen" as
 * int32 or size_t, transposed connected weights flag). The file must hold
 * exactly the parameters the cfg implies. Fails with FP_EIO, FP_ECORRUPT
 * (bad header, short or long file, non-finite values), FP_ENOMEM. */
fp_status fp_net_load_weights(fp_net *net, const char *path);

/* Fills every parameter with fixed-seed pseudo-random values scaled so that
 * activations stay in a sane range (fan-in scaling, positive variances). */
fp_status fp_net_init_weights_random(fp_net *net, uint64_t seed);

/* Writes the current parameters as a darknet .weights file (version 0.2.0,
 * 64-bit seen, unfolded batch-norm as loaded). FP_EIO on failure;
 * FP_ESTATE after fp_net_setup (the weights are folded then). */
fp_status fp_net_save_weights(const fp_net *net, const char *path);

/* Stage weights: the parameters of layers first..last as one blob (a small
 * header naming the range and the model's layer count, then the floats as
 * the network holds them), for a pipeline stage that should receive only
 * its own layers' weights. fp_net_stage_weights_size: the blob's bytes (0
 * for a bad range). fp_net_stage_weights: *out is a new blob of *len bytes
 * (free with free()); the network must hold weights for the range and
 * not be set up yet (setup folds them). FP_EINVAL, FP_ESTATE (no weights,
 * the range not held, set up), FP_ENOMEM. */
size_t fp_net_stage_weights_size(const fp_net *net, int first, int last);
fp_status fp_net_stage_weights(const fp_net *net, int first, int last, void **out, size_t *len);

/* Loads a stage-weights blob (untrusted bytes) into a network restricted
 * with fp_net_set_range to exactly the blob's range (or a whole network, for
 * a blob of every layer), before fp_net_setup. `name` is used in messages.
 * FP_ECORRUPT (bad header, another model or range, wrong size, non-finite
 * value), FP_EUNSUPPORTED (version), FP_ESTATE, FP_ENOMEM. */
fp_status fp_net_load_stage_weights(fp_net *net, const void *blob, size_t len, const char *name);

/* Restricts the network to layers first..last, as a pipeline stage runs
 * them. Call it before fp_net_setup(), before or after the weights: before,
 * fp_net_load_weights() reads only the range's parameters (the file is still
 * checked for its exact size); after, the other layers' parameters are
 * released. fp_net_setup() then plans only the tensors the range needs: its
 * layers' outputs and the tensors that cross into it (fp_net_cut(first-1)),
 * so a stage holds its layers' weights and live activations, not the whole
 * model's. fp_net_output() is NULL for any other tensor, fp_net_run() runs
 * sub-ranges only, and fp_net_save_weights() refuses. FP_EINVAL for a bad
 * range, FP_ESTATE after setup or for a second, different range. */
fp_status fp_net_set_range(fp_net *net, int first, int last);

/* The tensors that cross the cut after layer k (-1 <= k < layers): every
 * tensor produced at or before k (-1 = the network input) that a layer after
 * k reads, plus every layer output nobody reads (detection heads travel on
 * to the end). Writes up to max producing-layer indices, ascending, into
 * out and returns how many cross (which may exceed max); -1 for a bad k. */
int fp_net_cut(const fp_net *net, int k, int *out, int max);

/* Plans and allocates the activation arena. Idempotent. FP_ESTATE if no
 * weights were loaded; FP_ENOMEM. */
fp_status fp_net_setup(fp_net *net);

/* Runs layers first..last inclusive. Layers before `first` whose outputs are
 * used in the range must have been computed by an earlier run or written
 * through fp_net_output_mut(). `cb` may be NULL. FP_EINVAL for a bad range,
 * FP_ESTATE before fp_net_setup(). */
fp_status fp_net_run(fp_net *net, int first, int last, fp_layer_cb cb, void *user);

/* Number of layers (the [net] section is not a layer). */
int fp_net_layer_count(const fp_net *net);

/* Describes layer i. FP_EINVAL if i is out of range. */
fp_status fp_net_layer_info(const fp_net *net, int i, fp_layer_info *info);

/* Shape of the network input (from [net] width/height/channels). */
fp_shape fp_net_input_shape(const fp_net *net);

/* The network's input buffer (fp_shape_count(input shape) floats), owned by
 * the network; valid after fp_net_setup() until fp_net_destroy(). NULL
 * before setup and for a range that does not read the input. */
float *fp_net_input(fp_net *net);

/* Output of layer i, owned by the network. After a run it is valid for the
 * last layer of the run and for layers whose outputs are still needed later
 * (the arena reuses memory of dead tensors); NULL for a bad index. */
const float *fp_net_output(const fp_net *net, int i);

/* Writable view of layer i's output, to inject a tensor computed elsewhere
 * before running a later range. NULL for a bad index, before setup, or for
 * a tensor outside a restricted network's range (fp_net_set_range). */
float *fp_net_output_mut(fp_net *net, int i);

/* Bytes of activation arena and of weights the network holds. */
size_t fp_net_arena_bytes(const fp_net *net);
size_t fp_net_weight_bytes(const fp_net *net);
/* After setup: the bytes of the two largest activations live at once (at
 * the layer where those two are largest), the figure a memory budget of
 * weights + two live activations + overhead uses. */
size_t fp_net_live_pair_bytes(const fp_net *net);

/* Sets the number of worker threads kernels may use (1 = caller only). */
fp_status fp_net_set_threads(fp_net *net, int threads);

/* Name of an op ("convolutional") and of an activation ("leaky"). */
const char *fp_op_name(fp_op op);
const char *fp_activation_name(fp_activation act);

#ifdef __cplusplus
}
#endif
#endif /* FOGPIPE_NET_H */
