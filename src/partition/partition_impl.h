/*
 * partition_impl.h — the partitioner's internal cost-model context, shared by
 * the strategies, the exact dynamic program and the exhaustive checker the
 * tests compare it with. Internal: not API.
 */
#ifndef FP_PARTITION_IMPL_H
#define FP_PARTITION_IMPL_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>

#include "fogpipe/partition.h"

/* Precomputed per-layer and per-cut quantities of one problem. */
typedef struct fpi_part_ctx {
    const fp_part_problem *p;  /* the problem (borrowed) */
    const fp_part_graph *g;    /* its graph */
    const fp_cluster *c;       /* its cluster */
    int L;                     /* layers */
    int D;                     /* devices; D is also the gateway's link index */
    double *prefix;            /* D × (L+1): cumulative seconds of layers on each device */
    uint64_t *cut_raw;         /* L: raw bytes of the cut after k (k = L-1: to the gateway) */
    uint64_t *cut_ch;          /* L: channels of those tensors */
    double *cut_enc;           /* FP_CODEC_COUNT × L: encoded bytes of the cut after k with codec c
                                  (measured per tensor, or raw × ratio + channels × channel_bytes) */
    double codec_enc[FP_CODEC_COUNT]; /* ns per raw byte to encode with each codec at speed 1 (measured
                                         or half the cluster's cost_ns_per_byte) */
    double codec_dec[FP_CODEC_COUNT]; /* the same to decode */
    int codec_list[FP_CODEC_COUNT];   /* the codecs the problem and some link allow */
    int n_codecs;                     /* how many */
    uint64_t *wprefix;         /* L+1: cumulative weight bytes */
    uint64_t *live;            /* L: bytes of tensors alive while layer t runs */
    uint64_t *scratch;         /* L: kernel scratch of layer t */
    uint64_t in_buf;           /* receive buffer of stage 0 (the encoded image) */
    double packet_s[FP_PART_MAX_DEVICES]; /* per device: seconds its CPU spends per packet it receives
                                             (fpi_part_stage_io_s) */
} fpi_part_ctx;

/* Validates the problem and fills the context; free with fpi_part_ctx_free.
 * FP_EINVAL naming the first bad input, FP_ENOMEM, FP_EUNSUPPORTED. */
fp_status fpi_part_ctx_init(const fp_part_problem *p, fpi_part_ctx *x);
void fpi_part_ctx_free(fpi_part_ctx *x);

/* Compute seconds of layers i..j on device e (at its speed). */
double fpi_part_stage_s(const fpi_part_ctx *x, int i, int j, int e);

/* The same plus the CPU a stage spends on its cuts: receiving the cut
 * before layer i with codec a (i = 0: the encoded image, a ignored) and
 * sending the cut after j with codec b (j = L-1: the result, free): the
 * codec's decoding/encoding per raw byte, and the device's wire cost per
 * byte carried, at its speed; and per packet received (every 1448 bytes),
 * the wake-up it costs when the link brings packets more slowly than the
 * device handles one: min(wire_ns_per_packet / speed, one packet's time
 * on the slowest link into the device), since on a faster link the
 * packets pile up and a wake-up takes them together. Where the receiving
 * cost was measured over the link itself (wire_recv_ns_per_byte), that
 * per byte received instead, and no wake-ups apart. */
double fpi_part_stage_io_s(const fpi_part_ctx *x, int i, int j, int e, int a, int b);

/* Predicted peak memory of a stage running layers i..j. */
uint64_t fpi_part_stage_mem(const fpi_part_ctx *x, int i, int j);

/* The same from the peak live and scratch bytes over i..j (the DP keeps
 * running maxima): weights + live + scratch + receive and send buffers +
 * runtime overhead. */
uint64_t fpi_part_mem_of(const fpi_part_ctx *x, int i, int j, uint64_t live, uint64_t scratch);

/* 1 if `mem` bytes fit device e. */
int fpi_part_fits(const fpi_part_ctx *x, uint64_t mem, int e);

/* Time of the cut after layer k (k = -1: gateway's image to stage 0) on the
 * link from end a to b (D = gateway) with codec c: latency + bytes over the
 * bandwidth (the ends' CPU is the stages', fpi_part_stage_io_s); INFINITY
 * if c is not allowed. `bytes` (may be NULL) receives the encoded bytes. */
double fpi_part_link_s(const fpi_part_ctx *x, int k, int a, int b, fp_codec c, double *bytes);

/* Evaluates plan->stages (first, last, devices) with the cost model,
 * choosing the codec of every cut for the objective (a cut's codec moves
 * CPU between the stages on both sides and its link, so the choice is
 * made over the whole chain). forced[s] (may be NULL; -1 = automatic)
 * forces the codec of stage s's outgoing cut. *bottleneck_stage (may be NULL) gets the index of the stage
 * whose compute is the bottleneck, or -1 if a link is. FP_EINVAL for bad
 * stages, FP_ENOTFOUND when a cut has no allowed codec. */
fp_status fpi_part_evaluate(const fpi_part_ctx *x, fp_plan *plan, const int *forced,
                            int *bottleneck_stage);

/* Prepares an empty plan for the cluster (device table, shape, strategy). */
void fpi_part_plan_init(const fpi_part_ctx *x, fp_plan *plan, fp_strategy s);

/* The exact dynamic program behind "optimal", without replicas. For each
 * stage count s (1..min(D, L)) best[s-1] gets the best plan of exactly s
 * stages (bottleneck objective, or latency objective when `latency`), with
 * best[s-1].feasible = 0 and bottleneck INFINITY when none fits. `cap` (use
 * INFINITY for none) excludes any stage or link slower than it; with
 * latency = 1 and a cap this is the exact "least latency among plans whose
 * bottleneck is at most cap". `best` must hold min(D, L) plans.
 * FP_ENOMEM, FP_ETOOBIG. */
fp_status fpi_part_dp(const fpi_part_ctx *x, int latency, double cap, fp_plan *best);

/* Exhaustive search over every stage count, cut set and ordered device
 * subset (no replicas), for tests on small instances. Gives the best
 * bottleneck and, among the plans within 1e-12 of it, the least latency
 * (objective throughput), or the least latency (objective latency).
 * *found = 0 if nothing fits. */
fp_status fpi_part_exhaustive(const fp_part_problem *p, double *bottleneck_s, double *latency_s,
                              int *found);

/* Last reader of each tensor: last[0] for the network input, last[p+1] for
 * layer p; outputs nobody reads get n_layers (they go to the gateway).
 * `last` holds n_layers + 1 entries. */
void fpi_part_last_use(const fp_part_graph *g, int *last);

/* A partial plan's value: its bottleneck and its sum (latency) so far. */
typedef struct fpi_val {
    double m; /* largest term */
    double s; /* sum of terms */
} fpi_val;

#define FPI_VAL_INF ((fpi_val){INFINITY, INFINITY})

/* a better than b: bottleneck then sum (throughput), or sum then bottleneck
 * (latency). */
static inline int fpi_val_better(fpi_val a, fpi_val b, int latency)
{
    if (latency) return a.s < b.s || (a.s == b.s && a.m < b.m);
    return a.m < b.m || (a.m == b.m && a.s < b.s);
}

/* a ⊕ a term that counts tm in the bottleneck and ts in the sum (they
 * differ for replicated stages); infeasible when tm exceeds cap. Both
 * orders are kept by it, which makes the dynamic programs exact. */
static inline fpi_val fpi_val_add(fpi_val a, double tm, double ts, double cap)
{
    if (isinf(a.m) || !(tm <= cap)) return FPI_VAL_INF;
    return (fpi_val){a.m > tm ? a.m : tm, a.s + ts};
}

/* Relative tolerance used for ties between floating-point costs. */
#define FPI_PART_TIE 1e-12

/* JSON helpers shared by the cluster, profile and plan readers. */

/* FP_ECORRUPT naming the first key of `obj` not in the NULL-terminated
 * `allowed` list: "<name>: <where>: unknown key "x" (expected a, b, c)". */
fp_status fpi_json_keys(const cJSON *obj, const char *const *allowed, const char *name,
                        const char *where);

/* Reads a number field into *out, checking min <= v <= max; absent fields
 * keep *out when `required` is 0. FP_ECORRUPT with a precise message. */
fp_status fpi_json_number(const cJSON *obj, const char *key, int required, double min, double max,
                          const char *name, const char *where, double *out);

/* Same for an integer (the number must be integral). */
fp_status fpi_json_int(const cJSON *obj, const char *key, int required, long min, long max,
                       const char *name, const char *where, long *out);

/* Copies a string field into buf (size bytes); absent fields keep buf when
 * `required` is 0. FP_ECORRUPT for a non-string, empty or too long value. */
fp_status fpi_json_string(const cJSON *obj, const char *key, int required, const char *name,
                          const char *where, char *buf, size_t size);

/* Parses text with cJSON; FP_ECORRUPT naming the byte offset of the error. */
fp_status fpi_json_parse(const char *text, const char *name, cJSON **out);

/* Prints JSON to a fresh malloc'd string (free with free()); FP_ENOMEM. */
fp_status fpi_json_print(cJSON *root, char **text);

/* Writes text to path (replacing it). FP_EIO. */
fp_status fpi_write_text(const char *path, const char *text);

#endif /* FP_PARTITION_IMPL_H */
