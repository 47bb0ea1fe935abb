/*
 * fogpipe/partition.h — splitting a network into pipeline stages over a
 * cluster of small devices: per-layer profiles, cluster descriptions, a cost
 * model, the planning strategies, and plan files.
 *
 * Everything here except fp_profile_measure*() and the *_load/_save file
 * helpers is a pure function of its inputs (a graph of layer costs, per-layer
 * times, devices, links and codecs), so it is unit-tested without a network.
 *
 * The cost model (docs/plan-format.md has the details and every default):
 *   - layers 0..L-1 run in order; a plan cuts them into contiguous stages,
 *     each on one device (plus optional replicas);
 *   - stage compute on device d = Σ profile_time(layer) / speed(d); with
 *     replicas r the stage serves 1 / Σ_r (1/compute_r) seconds per frame;
 *   - the cut after layer k carries every tensor produced at or before k
 *     (the network input included) that a layer after k reads, plus every
 *     output nobody reads (detection heads), which travels on to the gateway;
 *   - a link's time per frame = latency + encoded bytes × 8 / bandwidth +
 *     codec CPU time; encoded bytes = the sum of the measured encoded bytes
 *     of the cut's tensors (a profile with codec measurements), else
 *     raw × ratio + channels × channel_bytes;
 *   - the gateway sends stage 0 the encoded image (input_bytes) and receives
 *     the head outputs from the last stage; both are links like any other;
 *   - throughput = 1 / max(every stage and link time); latency = their sum;
 *   - a stage fits a device when its weights + peak live activations +
 *     kernel scratch + receive/send buffers + a fixed runtime overhead fit
 *     the device's memory limit.
 *
 * Example (error handling elided):
 *     fp_part_graph *g;   fp_net_load_cfg(cfg, &net); fp_part_graph_from_net(net, &g);
 *     fp_profile *prof;   fp_profile_load("v1tf.profile.json", &prof);
 *     fp_cluster *c;      fp_cluster_uniform(3, 20e6, 0.001, 1.0, 0, 1, &c);
 *     fp_part_problem pb; fp_part_problem_init(&pb, g, c);
 *     for (int d = 0; d < c->n_devices; d++) pb.layer_s[d] = prof->layer_s;
 *     fp_plan plan;       fp_part_plan(&pb, FP_STRATEGY_OPTIMAL, NULL, 0, &plan);
 *     printf("%.0f images/min\n", plan.images_per_min);
 */
#ifndef FOGPIPE_PARTITION_H
#define FOGPIPE_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "fogpipe/net.h"
#include "fogpipe/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { FP_PART_MAX_DEVICES = 32 };      /* most devices in a cluster (and stages in a plan) */
enum { FP_PART_MAX_NAME = 64 };         /* device name/node buffer, NUL included */
enum { FP_PART_MAX_PATH = 1024 };       /* path buffers, NUL included */
enum { FP_PART_MAX_CUT_TENSORS = 64 };  /* most tensors one cut may carry */
enum { FP_PLAN_VERSION = 1 };           /* plan file version written and read */
enum { FP_CLUSTER_VERSION = 1 };        /* cluster file version read */
enum { FP_PROFILE_VERSION = 1 };        /* profile file version written and read */

/* ---------------------------------------------------------------- codecs */

/* X(NAME, "name", ratio, channel_bytes, cost_ns_per_byte): feature-map codecs
 * and their DEFAULT parameters. These are ASSUMPTIONS, used only when the
 * profile carries no measurements (fp_profile_measure_codecs; profiles
 * written before it) and the cluster file does not override them: fp16
 * halves the bytes, int8 quarters them and adds a float32 scale and zero
 * point per channel; lz4/zstd ratios are guesses for leaky-ReLU feature
 * maps. cost_ns_per_byte is encode + decode CPU time per raw float32 byte.
 * Append only. */
#define FP_CODEC_LIST(X)                                   \
    X(NONE, "none", 1.00, 0, 0.0)                          \
    X(NONE_LZ4, "none+lz4", 0.90, 0, 1.0)                  \
    X(NONE_ZSTD, "none+zstd", 0.80, 0, 4.0)                \
    X(FP16, "fp16", 0.50, 0, 0.25)                         \
    X(FP16_LZ4, "fp16+lz4", 0.45, 0, 0.75)                 \
    X(FP16_ZSTD, "fp16+zstd", 0.40, 0, 2.25)               \
    X(INT8, "int8", 0.25, 8, 0.5)                          \
    X(INT8_LZ4, "int8+lz4", 0.20, 8, 0.75)                 \
    X(INT8_ZSTD, "int8+zstd", 0.15, 8, 1.5)

typedef enum fp_codec {
#define FP_CODEC_ENUM_(name, str, ratio, chb, cost) FP_CODEC_##name,
    FP_CODEC_LIST(FP_CODEC_ENUM_)
#undef FP_CODEC_ENUM_
    FP_CODEC_COUNT
} fp_codec;

/* Bit mask of codecs: bit c set = codec c allowed. */
#define FP_CODEC_BIT(c) (1u << (unsigned)(c))
#define FP_CODECS_ALL ((1u << FP_CODEC_COUNT) - 1u)
/* What a link allows when nothing says otherwise: none, fp16, int8 (the
 * compressed variants only when a cluster file lists them). */
#define FP_CODECS_DEFAULT \
    (FP_CODEC_BIT(FP_CODEC_NONE) | FP_CODEC_BIT(FP_CODEC_FP16) | FP_CODEC_BIT(FP_CODEC_INT8))

typedef struct fp_codec_params {
    double ratio;            /* encoded bytes / raw float32 bytes, in (0, 1] */
    double channel_bytes;    /* extra bytes per channel (int8: scale + zero point) */
    double cost_ns_per_byte; /* encode + decode CPU time per raw byte */
} fp_codec_params;

/* "fp16+lz4" for FP_CODEC_FP16_LZ4; "?" for a bad value. Never NULL. */
const char *fp_codec_name(fp_codec c);

/* Parses a codec name ("none", "fp16", "int8", each optionally "+lz4" or
 * "+zstd"). FP_EINVAL (with a message listing the names) if unknown. */
fp_status fp_codec_parse(const char *name, fp_codec *out);

struct fp_fmap_codec;
/* The feature-map codec (fogpipe/fmap.h) that stage workers use for, and
 * fogpipe profile measures as, planner codec c: the same name, except that
 * the planner's int8 is int8 with one scale per channel (FP_DTYPE_I8C).
 * FP_EINVAL for a bad c. */
fp_status fp_codec_fmap(fp_codec c, struct fp_fmap_codec *out);

/* Parses a codec restriction: "auto" (every codec a link offers) or a comma
 * separated list of codec names, into a mask. FP_EINVAL if malformed. */
fp_status fp_codec_mask_parse(const char *text, uint32_t *out);

/* Parses a link rate such as "20mbit", "1gbit", "500kbit", "100mbps" or a
 * plain number of bits per second, into bits per second (SI: k = 1000).
 * Accepts 1 kbit/s .. 10 Tbit/s. FP_EINVAL with a precise message otherwise. */
fp_status fp_rate_parse(const char *text, double *bits_per_s);

/* ---------------------------------------------------------------- graph */

/* One layer as the partitioner sees it. */
typedef struct fp_part_layer {
    fp_op op;                 /* layer type */
    int n_inputs;             /* inputs read */
    int inputs[FP_MAX_ROUTE]; /* producing layers (< own index); -1 = network input */
    uint64_t flops;           /* per frame */
    uint64_t weight_bytes;    /* parameters held in memory (once: folded in place) */
    uint64_t out_bytes;       /* float32 output tensor */
    uint64_t scratch_bytes;   /* kernel workspace while it runs */
    int out_channels;         /* channels of the output (int8 scales) */
} fp_part_layer;

/* A network's costs, independent of any device. */
typedef struct fp_part_graph {
    int n_layers;             /* 1..FP_MAX_LAYERS */
    fp_part_layer *layers;    /* n_layers entries, owned by the graph */
    fp_shape input;           /* network input shape */
    uint64_t input_bytes;     /* float32 input tensor bytes */
} fp_part_graph;

/* Allocates a graph of n zeroed layers (each reading the previous one, layer
 * 0 the input) for callers and tests that fill it by hand. *out is owned by
 * the caller (fp_part_graph_destroy). FP_EINVAL for n outside
 * 1..FP_MAX_LAYERS, FP_ENOMEM. */
fp_status fp_part_graph_create(int n_layers, fp_part_graph **out);

/* Builds the graph of a loaded network (no weights needed). The network is
 * not kept. FP_EINVAL for NULL, FP_ENOMEM. */
fp_status fp_part_graph_from_net(const fp_net *net, fp_part_graph **out);

/* Frees a graph. NULL is a no-op. */
void fp_part_graph_destroy(fp_part_graph *g);

/* Checks a hand-filled graph: input indices below the layer's own and
 * >= -1, counts in range. FP_EINVAL naming the first bad layer. */
fp_status fp_part_graph_check(const fp_part_graph *g);

/* What crosses the cut after layer k (k = n_layers-1: what the last stage
 * sends to the gateway, i.e. every output nobody reads). */
typedef struct fp_part_cut {
    int n_tensors;                          /* tensors carried */
    int tensors[FP_PART_MAX_CUT_TENSORS];   /* their producing layers (-1 = input) */
    uint64_t raw_bytes;                     /* float32 bytes of them all */
    uint64_t channels;                      /* channels of them all */
} fp_part_cut;

/* Fills *out for the cut after layer k, 0 <= k < n_layers. FP_EINVAL for a
 * bad k, FP_EUNSUPPORTED if more than FP_PART_MAX_CUT_TENSORS cross. */
fp_status fp_part_cut_info(const fp_part_graph *g, int k, fp_part_cut *out);

/* FNV-1a 64 of a file's bytes as "fnv1a64:<16 hex digits>" into buf
 * (at least 25 bytes). FP_EIO if unreadable. */
fp_status fp_part_hash_file(const char *path, char *buf, size_t size);

/* ---------------------------------------------------------------- profile */

/* A codec measured by `fogpipe profile` on the model's own feature maps. */
typedef struct fp_profile_codec {
    int measured;            /* 1 if the profile measured this codec (else the rest is 0/NULL) */
    double ratio;            /* Σ encoded / Σ raw float32 bytes over every tensor measured */
    double cost_ns_per_byte; /* encode + decode time per raw byte over every tensor (this machine) */
    double encode_ns_per_byte; /* the encoding's part of it (the sending stage's); the rest is the
                                  receiving stage's decoding (older profiles: half) */
    uint64_t *bytes;         /* n_layers + 1: encoded payload bytes of the network input, then of each
                                layer's output (owned) */
} fp_profile_codec;

/* Per-layer times of one model on one kind of device. */
typedef struct fp_profile {
    int n_layers;                    /* layers profiled */
    double *layer_s;                 /* seconds per layer: what it adds to the time of an uninterrupted
                                        run up to it (fp_profile_measure); they add up to total_s (owned) */
    double total_s;                  /* median seconds of a whole uninterrupted pass */
    double layer_scale;              /* 1; older profiles timed layer by layer and scaled the medians
                                        by this to add up to total_s */
    double prepare_s;                /* per frame on stage 0: decode the encoded image and prepare the
                                        input (median; 0 = not measured) */
    double finish_s;                 /* per frame on the last stage: boxes, NMS and the result JSON
                                        (median; 0 = not measured) */
    char cfg[FP_PART_MAX_PATH];      /* model the profile was measured on */
    char cfg_hash[32];               /* its hash ("fnv1a64:..."), "" if unknown */
    char cpu[128];                   /* machine: CPU model */
    char host[FP_PART_MAX_NAME];     /* machine: host name */
    char device[128];                /* what device kind it models (free text) */
    int cores;                       /* machine: online CPUs */
    int threads;                     /* kernel threads used while measuring */
    int iters;                       /* timed passes (median over them) */
    int warmup;                      /* untimed passes before */
    double speed;                    /* 1 if measured; else the factor applied to a measured profile */
    double result_bytes;             /* the result JSON the last stage sent for --image (with
                                        finish_s; 0 = not measured) */
    double wire_ns_per_packet;       /* CPU time a packet costs the receiving end when the link brings
                                        its packets one by one (a wake-up each; 0 = not measured) */
    double wire_ns_per_byte;         /* CPU time at one end of a link per byte it carries: framing,
                                        checksums, ZeroMQ and the kernel's TCP (0 = not measured) */
    double wire_send_ns_per_byte;    /* measured over a real link (`fogpipe link`): CPU per byte at
                                        the sending end, instead of wire_ns_per_byte (0 = not) */
    double wire_recv_ns_per_byte;    /* the same at the receiving end; it includes the per-packet
                                        wake-ups, so wire_ns_per_packet is then not charged */
    char codec_input[FP_PART_MAX_PATH]; /* what the codecs were measured on: "pseudo-random", an image
                                           path, or "" when no codec was measured (older profiles) */
    fp_profile_codec codecs[FP_CODEC_COUNT]; /* measured codecs (see codec_input) */
} fp_profile;

/* Times every layer of a set-up network: `warmup` untimed passes, then
 * `iters` rounds (1..1000), each running every prefix (layers 0..k) once
 * uninterrupted, as a stage runs (timing layer by layer would turn off
 * fusion). The time up to layer k is the least median of the prefixes
 * that reach it, a layer's time its growth there, the whole pass's the
 * longest prefix's median. Fills the
 * timing fields and n_layers; the caller fills the model/machine strings.
 * *out is owned by the caller (fp_profile_destroy). FP_EINVAL, FP_ESTATE
 * (network not set up), FP_ENOMEM. */
fp_status fp_profile_measure(fp_net *net, int iters, int warmup, fp_profile **out);

/* Measures every codec of FP_CODEC_LIST on the network's own feature maps:
 * runs one pass on `input` (fp_shape_count(fp_net_input_shape(net)) floats;
 * NULL = the deterministic pseudo-random input fp_profile_measure uses) and
 * encodes and decodes the input and every layer's output with each codec
 * (fp_fmap_encode / fp_fmap_decode; "int8" is fmap's per-tensor int8),
 * recording the encoded bytes of every tensor, the byte-weighted ratio and
 * the encode + decode time per raw byte. `what` ("pseudo-random" or the
 * image path) goes to p->codec_input. p must be a profile of this network.
 * FP_EINVAL, FP_ESTATE (not set up), FP_ENOMEM, and the codecs' errors. */
fp_status fp_profile_measure_codecs(fp_net *net, const float *input, const char *what, fp_profile *p);

/* A copy of `p` whose times are divided by `speed` (> 0): the profile of a
 * device `speed` times as fast. `device` describes it (may be NULL). */
fp_status fp_profile_derive(const fp_profile *p, double speed, const char *device, fp_profile **out);

/* Profile JSON (docs/plan-format.md). parse: `name` is used in messages,
 * the text is not kept; errors are FP_ECORRUPT with the field named,
 * FP_EUNSUPPORTED for another version, FP_ENOMEM. load adds FP_EIO and
 * FP_ETOOBIG (over 4 MiB). */
fp_status fp_profile_parse(const char *text, const char *name, fp_profile **out);
fp_status fp_profile_load(const char *path, fp_profile **out);
/* Writes a profile as JSON; *text is malloc'd, free it with free(). */
fp_status fp_profile_to_json(const fp_profile *p, char **text);
fp_status fp_profile_save(const fp_profile *p, const char *path);

/* Checks that a profile belongs to a model: same layer count and, when both
 * are known, the same cfg hash. FP_EINVAL naming both otherwise. */
fp_status fp_profile_check(const fp_profile *p, const char *name, int n_layers, const char *cfg_hash);

/* Frees a profile. NULL is a no-op. */
void fp_profile_destroy(fp_profile *p);

/* ---------------------------------------------------------------- cluster */

typedef struct fp_device {
    char name[FP_PART_MAX_NAME];     /* unique; [A-Za-z0-9._-]; not "gateway" */
    char node[FP_PART_MAX_NAME];     /* Kubernetes node label value (default: name) */
    char profile[FP_PART_MAX_PATH];  /* own profile file, "" = the base profile */
    double speed;                    /* compute time = profile time / speed (default 1) */
    int threads;                     /* kernel threads, 0 = as profiled */
    uint64_t memory_bytes;           /* memory limit, 0 = unlimited */
} fp_device;

typedef struct fp_link {
    double bandwidth_bps;            /* bits per second, > 0 */
    double latency_s;                /* per message, >= 0 */
    uint32_t codecs;                 /* allowed codecs (FP_CODEC_BIT mask), never 0 */
} fp_link;

/* Devices, the links between every pair (the gateway, which sends frames in
 * and receives results, is index n_devices), and codec parameters. */
typedef struct fp_cluster {
    int n_devices;                                    /* 1..FP_PART_MAX_DEVICES */
    fp_device devices[FP_PART_MAX_DEVICES];           /* in pipeline order */
    fp_link links[FP_PART_MAX_DEVICES + 1][FP_PART_MAX_DEVICES + 1]; /* [from][to]; symmetric */
    fp_codec_params codecs[FP_CODEC_COUNT];           /* ratios and costs */
    uint32_t codecs_set;                              /* codecs the cluster file gave parameters for
                                                         (FP_CODEC_BIT mask): they beat a profile's
                                                         measurements */
    char profile[FP_PART_MAX_PATH];                   /* base profile, "" if none given */
    uint64_t overhead_bytes;                          /* runtime memory per device besides the model */
} fp_cluster;

/* Default runtime overhead counted against each device's memory limit. */
enum { FP_PART_DEFAULT_OVERHEAD_MB = 16 };

/* Parses a cluster description (JSON, docs/cluster-format.md). `name` is
 * used in messages; relative profile paths are resolved against `base_dir`
 * (may be NULL: kept as written). Unknown keys, duplicate or unknown device
 * names, out-of-range numbers and missing links are FP_ECORRUPT with the
 * path of the field, e.g. "c.json: devices[1].speed must be > 0 (got -2)".
 * FP_EUNSUPPORTED for another version, FP_ENOMEM. *out is owned by the
 * caller (fp_cluster_destroy). */
fp_status fp_cluster_parse(const char *text, const char *name, const char *base_dir, fp_cluster **out);

/* Reads and parses a cluster file (at most 1 MiB); adds FP_EIO, FP_ETOOBIG. */
fp_status fp_cluster_load(const char *path, fp_cluster **out);

/* A homogeneous cluster: n devices "dev0".."dev<n-1>", every link (gateway
 * included) `bandwidth_bps` with `latency_s`, default codecs and their
 * default parameters, memory limit `memory_bytes` (0 = unlimited).
 * FP_EINVAL for out-of-range values. */
fp_status fp_cluster_uniform(int n, double bandwidth_bps, double latency_s, double speed,
                             uint64_t memory_bytes, int threads, fp_cluster **out);

/* Index of a device by name, or -1 (n_devices for "gateway"). */
int fp_cluster_find(const fp_cluster *c, const char *name);

/* Frees a cluster. NULL is a no-op. */
void fp_cluster_destroy(fp_cluster *c);

/* ---------------------------------------------------------------- planning */

typedef enum fp_strategy {
    FP_STRATEGY_BY_TYPE = 0, /* the prototype's split: layers before the first connected one | the rest */
    FP_STRATEGY_EQUAL_FLOPS, /* all devices, cuts balancing FLOPs / speed; ignores links and memory */
    FP_STRATEGY_OPTIMAL,     /* exact DP over cuts, devices, codecs; memory-aware; replicas */
    FP_STRATEGY_CUTS,        /* hand-given cuts on the first devices */
    FP_STRATEGY_COUNT
} fp_strategy;

typedef enum fp_objective {
    FP_OBJECTIVE_THROUGHPUT = 0, /* minimise the slowest stage or link (then the latency) */
    FP_OBJECTIVE_LATENCY,        /* minimise the sum of all stage and link times */
    FP_OBJECTIVE_COUNT
} fp_objective;

/* "by-type", "equal-flops", "optimal", "cuts" / "throughput", "latency". */
const char *fp_strategy_name(fp_strategy s);
const char *fp_objective_name(fp_objective o);
fp_status fp_strategy_parse(const char *text, fp_strategy *out);
fp_status fp_objective_parse(const char *text, fp_objective *out);

/* Everything a plan depends on. All pointers are borrowed. */
typedef struct fp_part_problem {
    const fp_part_graph *graph;                  /* layer costs */
    const fp_cluster *cluster;                   /* devices and links */
    const double *layer_s[FP_PART_MAX_DEVICES];  /* per device: seconds per layer at speed 1 */
    double prepare_s[FP_PART_MAX_DEVICES];       /* per device: seconds per frame at speed 1 that
                                                    stage 0 adds (image decode + prepare; 0 = none) */
    double finish_s[FP_PART_MAX_DEVICES];        /* per device: seconds per frame at speed 1 that the
                                                    last stage adds (boxes + result; 0 = none) */
    double wire_ns_per_byte[FP_PART_MAX_DEVICES]; /* per device: CPU ns at speed 1 per byte it sends or
                                                    receives (fp_profile.wire_ns_per_byte; 0 = free) */
    double wire_ns_per_packet[FP_PART_MAX_DEVICES]; /* per device: CPU ns at speed 1 per packet it receives
                                                    one by one (fp_profile.wire_ns_per_packet; 0 = free):
                                                    see fpi_part_stage_io_s */
    double wire_recv_ns_per_byte[FP_PART_MAX_DEVICES]; /* per device: CPU ns at speed 1 per byte it
                                                    receives, measured over the link (0 = use
                                                    wire_ns_per_byte and wire_ns_per_packet instead);
                                                    wire_ns_per_byte is then the sending end's */
    double input_bytes;                          /* bytes gateway -> stage 0 per frame (encoded image) */
    double result_bytes;                         /* bytes last stage -> gateway per frame (the result
                                                    JSON; 0 = unknown: the heads' cut, encoded) */
    fp_objective objective;                      /* what "optimal" minimises */
    int replicas;                                /* optimal may replicate stages on spare devices */
    uint32_t codecs;                             /* codecs allowed on top of each link's own list */
    const fp_profile *measured;                  /* codec measurements (fp_profile.codecs) used
                                                    instead of the cluster's parameters for every
                                                    codec it measured and the cluster file does not
                                                    set; NULL = the cluster's parameters only */
} fp_part_problem;

/* Default input bytes: a JPEG of the input at 0.1 bytes per pixel and
 * channel (ASSUMED; override with --input-bytes). */
#define FP_PART_JPEG_BYTES_PER_VALUE 0.1

/* A link's bandwidth carries frames, not payload: TCP over IPv4 over
 * Ethernet at MTU 1500 (with TCP timestamps, Linux's default) puts 1448
 * payload bytes in each 1514-byte frame, so B bytes of a cut take
 * B × FP_PART_LINK_FRAMING × 8 / bandwidth. (tc's rates, and a link's
 * nominal rate, count the whole frame.) */
#define FP_PART_LINK_FRAMING (1514.0 / 1448.0)
#define FP_PART_PACKET_BYTES 1448.0 /* payload bytes per packet */

/* Sets defaults: objective throughput, replicas on, all codecs, input bytes
 * from FP_PART_JPEG_BYTES_PER_VALUE, layer_s all NULL (the caller sets
 * them). */
void fp_part_problem_init(fp_part_problem *p, const fp_part_graph *g, const fp_cluster *c);

typedef struct fp_plan_device {
    char name[FP_PART_MAX_NAME];     /* device name */
    char node[FP_PART_MAX_NAME];     /* node label value */
    int threads;                     /* kernel threads (0 = as profiled) */
} fp_plan_device;

typedef struct fp_plan_stage {
    int first, last;                          /* layer range, inclusive */
    int n_devices;                            /* replicas (>= 1) */
    int devices[FP_PART_MAX_DEVICES];         /* indices into fp_plan.devices; [0] is the primary */
    double compute_s;                         /* seconds per frame, replicas combined */
    double latency_s;                         /* seconds one frame spends (slowest replica) */
    uint64_t memory_bytes;                    /* predicted peak memory on each of its devices */
    int fits;                                 /* 1 if memory_bytes fits every device's limit */
    fp_codec out_codec;                       /* codec of the outgoing cut */
    fp_part_cut out;                          /* tensors of the outgoing cut (to the gateway for the last) */
    double out_bytes;                         /* encoded bytes per frame sent */
    double out_s;                             /* transfer time of the outgoing cut per frame */
    char weights_sha256[72];                  /* "sha256:<64 hex>" of its stage weights blob
                                               * (fp_net_stage_weights), or "" (none recorded) */
} fp_plan_stage;

typedef struct fp_plan {
    int version;                              /* FP_PLAN_VERSION */
    fp_strategy strategy;                     /* how it was made */
    fp_objective objective;                   /* what it minimised */
    char cfg[FP_PART_MAX_PATH];               /* model: cfg path (set by the caller) */
    char cfg_hash[32];                        /* "fnv1a64:..." of the cfg, or "" */
    char weights[FP_PART_MAX_PATH];           /* weights path, "" = random weights */
    char weights_hash[32];                    /* hash of the weights, or "" */
    int n_layers;                             /* layers of the model */
    fp_shape input;                           /* network input shape */
    int n_devices;                            /* entries of devices[] */
    fp_plan_device devices[FP_PART_MAX_DEVICES]; /* device table (from the cluster) */
    int n_stages;                             /* stages */
    fp_plan_stage stages[FP_PART_MAX_DEVICES];/* in pipeline order */
    double input_bytes;                       /* bytes gateway -> stage 0 */
    double input_s;                           /* their transfer time */
    double bottleneck_s;                      /* slowest stage or link */
    double latency_s;                         /* sum of every stage and link time */
    double images_per_min;                    /* 60 / bottleneck_s */
    char bottleneck[96];                      /* what limits it, e.g. "stage 0 compute on dev0" */
    int feasible;                             /* every stage fits its devices' memory */
} fp_plan;

/* Makes a plan. `cuts`/`n_cuts` are used by FP_STRATEGY_CUTS only (cut after
 * layer cuts[i]; strictly increasing; stages run on devices 0..n_cuts). The
 * device table of the plan is the cluster's; model fields are left empty.
 * Baselines (by-type, equal-flops, cuts) are evaluated even when a stage
 * does not fit its device (plan->feasible = 0); optimal only returns plans
 * that fit. Errors: FP_EINVAL (bad cuts, missing layer times, too few
 * devices), FP_EUNSUPPORTED (by-type on a network without connected layers),
 * FP_ENOTFOUND (no plan fits the devices' memory / no allowed codec),
 * FP_ETOOBIG (instance too large), FP_ENOMEM. */
fp_status fp_part_plan(const fp_part_problem *p, fp_strategy strategy, const int *cuts, int n_cuts,
                       fp_plan *out);

/* Recomputes every predicted number of a plan whose stages (first, last,
 * devices) are set, choosing the fastest allowed codec per cut. FP_EINVAL
 * if the stages do not cover the layers in order or name bad devices;
 * FP_ENOTFOUND if a cut has no codec allowed on all its links. */
fp_status fp_part_evaluate(const fp_part_problem *p, fp_plan *plan);

/* One alternative shown by --explain. */
typedef struct fp_part_alt {
    char what[160];          /* e.g. "cut after 9 instead of 8", "best with 2 stages: cuts 8" */
    double bottleneck_s;     /* its bottleneck (INFINITY if it does not fit) */
    double latency_s;        /* its latency */
    char bottleneck[96];     /* what limits it */
    int feasible;            /* fits memory */
} fp_part_alt;

/* Runners-up of a plan: the best plan with each other stage count, every
 * cut moved one layer either way, and the next-best codec per cut. Fills up
 * to `max` entries of alts and *n. Same errors as fp_part_plan. */
fp_status fp_part_explain(const fp_part_problem *p, const fp_plan *plan, fp_part_alt *alts, int max,
                          int *n);

/* ---------------------------------------------------------------- plan files */

/* Serialises a plan as version-1 JSON (docs/plan-format.md); *text is
 * malloc'd, free it with free(). FP_ENOMEM. */
fp_status fp_plan_to_json(const fp_plan *plan, char **text);
fp_status fp_plan_save(const fp_plan *plan, const char *path);

/* What a loaded plan must match; zero/empty/NULL fields are not checked. */
typedef struct fp_plan_expect {
    int n_layers;                 /* layers of the model */
    const char *cfg_hash;         /* "fnv1a64:..." of the cfg */
    const char *weights_hash;     /* hash of the weights */
    const fp_cluster *cluster;    /* every device must be in it */
} fp_plan_expect;

/* Parses and validates a plan: version, model hashes, layer ranges that
 * cover 0..L-1 without gap or overlap, devices known and used once, codec
 * names, numbers in range. Errors name the field, e.g. "p.json: stage 1
 * starts at layer 7 but stage 0 ends at layer 8 (layers 7..8 overlap)".
 * FP_ECORRUPT (malformed), FP_EINVAL (does not match `expect`),
 * FP_EUNSUPPORTED (other version), FP_ENOMEM; load adds FP_EIO, FP_ETOOBIG.
 * `expect` may be NULL. */
fp_status fp_plan_parse(const char *text, const char *name, const fp_plan_expect *expect, fp_plan *out);
fp_status fp_plan_load(const char *path, const fp_plan_expect *expect, fp_plan *out);

#ifdef __cplusplus
}
#endif
#endif /* FOGPIPE_PARTITION_H */
