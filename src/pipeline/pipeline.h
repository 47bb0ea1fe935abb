/*
 * pipeline.h — the distributed pipeline: stage workers and the gateway,
 * talking ZeroMQ (docs/pipeline.md). Internal: the commands `fogpipe stage`,
 * `fogpipe gateway` and `fogpipe run` are the interface.
 *
 * Topology (every arrow is a ZeroMQ PUSH → PULL link carrying one frame of
 * docs/wire-format.md per message):
 *
 *     gateway ──► stage 0 (R0 replicas) ──► stage 1 ──► … ──► last stage ──► gateway
 *
 * Every stage replica binds its own input (PULL); the sender connects one
 * PUSH socket to every replica of the next stage, which spreads frames over
 * them round robin and blocks when all are full (high-water marks: the
 * backpressure). The last stage decodes boxes and sends a result frame to
 * the gateway's result endpoint. The gateway keeps every frame until its
 * result arrives and sends it again after a timeout; the last stage answers
 * a frame id it has answered recently from a cache instead of running it
 * again; the gateway returns each result once.
 */
#ifndef FP_PIPELINE_H
#define FP_PIPELINE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "fogpipe/detect.h"
#include "fogpipe/frame.h"
#include "fogpipe/net.h"
#include "fogpipe/partition.h"

enum { FPP_MAX_PEERS = 32 };       /* endpoints one socket connects to */
enum { FPP_MAX_ENDPOINT = 256 };   /* bytes of one endpoint, NUL included */

/* Endpoints such as "tcp://10.0.0.2:5601", parsed from a comma list. */
typedef struct fpp_endpoints {
    int n;
    char ep[FPP_MAX_PEERS][FPP_MAX_ENDPOINT];
} fpp_endpoints;

/* Parses "tcp://a:1,tcp://b:2" (1..FPP_MAX_PEERS entries; each must start
 * with tcp://, ipc:// or inproc://). FP_EINVAL naming `what` otherwise. */
fp_status fpp_endpoints_parse(const char *list, const char *what, fpp_endpoints *out);

/* Where a stage or gateway finds the model when the plan's paths do not
 * hold on this machine (containers): NULL fields keep the plan's paths.
 * The files must hash as the plan says. */
typedef struct fpp_model_paths {
    const char *cfg;     /* darknet cfg, or TF.js manifest */
    const char *weights; /* darknet weights ("" or NULL: the plan's) */
    const char *weights_from;      /* a stage: fetch its weights blob from this http:// URL (NULL: files) */
    double weights_timeout_s;      /* ...retrying this long while the server is not up */
    volatile sig_atomic_t *stop;   /* ...giving up when this becomes non-zero (may be NULL) */
} fpp_model_paths;

/* Loads the plan's model. stage >= 0: restricted to that stage's layers
 * (fp_net_set_range), with weights, set up with `threads`; stage < 0: the
 * whole graph without running it (the gateway: input shape, preparation,
 * class names). Checks the cfg/manifest hash and the weights hash against
 * the plan. Random weights (a plan without weights) use seed 1, as
 * `fogpipe plan` and `fogpipe profile` do. */
fp_status fpp_load_plan_model(const fp_plan *plan, int stage, const fpp_model_paths *paths, int threads,
                              fp_net **out);

/* ------------------------------------------------- stage weights (weights.c) */

/* "sha256:" and the 64 lowercase hex digits of SHA-256(data). */
void fpp_sha256(const void *data, size_t len, char out[72]);

/* Sets every stage's weights_sha256 from net, which holds every layer's
 * weights (fp_net_stage_weights). */
fp_status fpp_plan_hash_stage_weights(fp_plan *plan, const fp_net *net);

/* Every stage's weights blob, as the gateway serves them. */
typedef struct fpp_stage_blobs {
    int n;                               /* stages */
    void *blob[FP_PART_MAX_DEVICES];     /* malloc'd */
    size_t len[FP_PART_MAX_DEVICES];
} fpp_stage_blobs;

/* Cuts net (every layer's weights) into the plan's stages and checks each
 * blob against the plan's hash. FP_EINVAL (no hash recorded, or another
 * model's weights), FP_ENOMEM. */
fp_status fpp_stage_blobs_make(const fp_plan *plan, const fp_net *net, fpp_stage_blobs *out);
void fpp_stage_blobs_free(fpp_stage_blobs *b);

/* What carrying frames costs the CPU at one end of a link, in ns, for
 * `fogpipe profile` (both ends run here, so the process's CPU time is
 * halved):
 *   - *ns_per_byte: encodes, sends, receives and checks 1 MiB frames over
 *     loopback TCP, per byte; the partitioner charges it to the stages on
 *     both sides of each cut;
 *   - *ns_per_packet: sends single 1448-byte messages (one TCP segment's
 *     payload at MTU 1500) over loopback TCP, each received before the
 *     next goes, per message: a wake-up of each end's threads per packet,
 *     which is what a link slower than the receiver pays for every packet
 *     it brings (the partitioner charges the receiving stage).
 * FP_EIO (no loopback), FP_ENOMEM. */
fp_status fpp_measure_wire(double *ns_per_byte, double *ns_per_packet);

/* What frames cost the CPU at each end of one real link (`fogpipe link`),
 * measured by a process on each device: the sender streams `frames`
 * feature frames of 1 MiB (encoded, checksummed, as a stage sends them)
 * to the receiver's ZeroMQ PAIR socket, then an end message; the receiver
 * checks each frame and answers with its CPU time. Per byte, each end's
 * whole process (its ZeroMQ thread, the kernel's work it is charged for;
 * on a link slower than the receiver, one wake-up per packet). */
typedef struct {
    double bytes;            /* frame bytes carried */
    double seconds;          /* wall time, first frame to the answer */
    double send_ns_per_byte; /* the sender's CPU ns per byte (0 at the receiver) */
    double recv_ns_per_byte; /* the receiver's */
} fpp_link_cost;

/* Receives one sender's frames on `endpoint` (bound), answers, returns.
 * Waits up to timeout_s for the first frame (10 s for each next one).
 * FP_ETIMEDOUT, FP_EIO, FP_EPROTO/FP_ECORRUPT (a bad frame: the stream
 * is refused), FP_ETOOBIG (more than 65536 frames). */
fp_status fpp_link_listen(const char *endpoint, double timeout_s, volatile sig_atomic_t *stop, fpp_link_cost *out);
/* Sends `frames` frames to `endpoint` (connected) and reads the answer. */
fp_status fpp_link_send(const char *endpoint, int frames, double timeout_s, fpp_link_cost *out);

/* Splits http://HOST[:PORT]/PATH ([v6] hosts too; default port 80). */
fp_status fpp_url_parse(const char *url, char *host, size_t n, int *port, const char **path);

/* GETs exactly `size` bytes from url whose SHA-256 is `want` into *blob
 * (malloc'd; free()), retrying with back-off while the server is unreachable
 * or answers 404/5xx, for up to timeout_s or until *stop. FP_ECORRUPT (wrong
 * size or hash: refused at once), FP_ETIMEDOUT, FP_EIO, FP_EINVAL (URL). */
fp_status fpp_weights_fetch(const char *url, const char *want, size_t size, double timeout_s,
                            volatile sig_atomic_t *stop, void **blob);

/* Shape of tensor j of a network: layer j's output, or the input for -1. */
fp_shape fpp_tensor_shape(const fp_net *net, int j);

/* The bytes a frame entering `stage` may carry: its incoming cut's float32
 * bytes with the per-channel int8 scales (stage 0: the network input), at
 * least max_image_bytes for stage 0. */
uint64_t fpp_stage_max_raw(const fp_plan *plan, const fp_net *net, int stage, uint64_t max_image_bytes);

/* ---------------------------------------------------------------- stage */

typedef struct fpp_stage_opts {
    const char *plan;          /* plan file */
    int stage;                 /* which stage */
    fpp_model_paths paths;     /* model path overrides */
    const char *bind;          /* input endpoint to bind ("tcp://0.0.0.0:5600") */
    fpp_endpoints next;        /* the next stage's replicas, or the gateway's result endpoint */
    const char *http_host;     /* health/metrics address; NULL = no HTTP */
    int http_port;             /* its port (0 = any) */
    int threads;               /* kernel threads */
    double thresh, nms;        /* last stage: score and NMS thresholds; < 0 = the model's */
    uint64_t max_image_bytes;  /* stage 0: largest encoded image accepted */
    int hwm;                   /* ZeroMQ high-water mark (messages) per socket */
    const char *name;          /* replica name for logs and metrics */
    double drain_s;            /* on SIGTERM: seconds to finish and send what was received */
    const struct fpp_curve_key *curve; /* CURVE on both sockets (curve.h); NULL = plain */
} fpp_stage_opts;

/* Runs a stage worker until *stop becomes non-zero (SIGTERM/SIGINT), then
 * drains: stops taking frames, finishes those received, sends them, exits.
 * Returns FP_OK after a clean drain; an error status if it could not start
 * (message in fp_last_error()). Frames that fail validation are dropped and
 * counted; the worker keeps serving. */
fp_status fpp_stage_serve(const fpp_stage_opts *o, volatile sig_atomic_t *stop);

/* ---------------------------------------------------------------- gateway */

typedef struct fpp_gateway fpp_gateway;

typedef struct fpp_gateway_opts {
    fpp_endpoints first;      /* stage 0's replicas */
    const char *results;      /* endpoint to bind for results ("tcp://0.0.0.0:5599") */
    int window;               /* frames in flight at most */
    double resend_s;          /* resend a frame whose result has not come after this long (at least) */
    int hwm;                  /* ZeroMQ high-water mark */
    uint64_t max_result_bytes;/* largest result frame accepted */
    const struct fpp_curve_key *curve; /* CURVE on both sockets (curve.h); NULL = plain */
} fpp_gateway_opts;

/* Figures of a gateway since it started. */
typedef struct fpp_gateway_stats {
    uint64_t submitted, completed;    /* frames */
    uint64_t resent;                  /* frames sent again after a timeout */
    uint64_t duplicates;              /* results that came for a frame already answered */
    uint64_t bad_results;             /* result frames refused (malformed, unknown id) */
    uint64_t bytes_out, bytes_in;     /* frame bytes sent (resends included) and received */
    double elapsed_s;                 /* since the first submission */
    double latency_p50_s, latency_p99_s, latency_max_s; /* submission → result, of the last 4096 */
    int in_flight;                    /* frames awaiting their result now */
    uint64_t auth_denied;             /* peers refused on the result socket (no CURVE key) */
} fpp_gateway_stats;

/* Binds the result endpoint, connects to stage 0 and starts the gateway's
 * thread. FP_EIO (cannot bind/connect), FP_EINVAL, FP_ENOMEM. */
fp_status fpp_gateway_create(const fpp_gateway_opts *o, fpp_gateway **out);

/* Submits a frame (its kind, tensors and image size; the gateway assigns and
 * returns the id and keeps a copy until the result comes). Blocks while the
 * window is full, at most timeout_s (< 0: forever): FP_ETIMEDOUT. */
fp_status fpp_gateway_submit(fpp_gateway *gw, const fp_frame *f, double timeout_s, uint64_t *id);

/* Waits for the result of frame `id`, at most timeout_s (< 0: forever), and
 * hands it over once: *json (malloc'd, NUL-terminated; free()) and *len.
 * FP_ETIMEDOUT, FP_ENOTFOUND (unknown id, or already taken). */
fp_status fpp_gateway_wait(fpp_gateway *gw, uint64_t id, double timeout_s, char **json, size_t *len);

/* Gives up on frame `id` (its result is dropped when it comes). */
void fpp_gateway_forget(fpp_gateway *gw, uint64_t id);

void fpp_gateway_stats_get(fpp_gateway *gw, fpp_gateway_stats *s);

/* Stops the thread, closes the sockets, frees everything. NULL is a no-op. */
void fpp_gateway_destroy(fpp_gateway *gw);

/* ---------------------------------------------------------------- helpers */

/* The JSON a last stage sends for detections (boxes in the image's pixels):
 * {"width":W,"height":H,"detections":[{"class":C,"score":S,"box":{"x":X,"y":Y,"w":W,"h":H}}]}.
 * *out is malloc'd. FP_ENOMEM. */
fp_status fpp_result_json(int w, int h, const fp_detection *d, int n, char **out);

/* {"error":"<message>"} (escaped). */
fp_status fpp_error_json(const char *message, char **out);

/* GET http://host:port/path (HTTP/1.0): returns the status code and copies
 * up to n-1 bytes of the body into body (may be NULL); -1 when the server
 * cannot be reached or does not answer within timeout_s. */
int fpp_http_get(const char *host, int port, const char *path, double timeout_s, char *body, size_t n);

/* The same for a binary body of at most max_body bytes: on a status >= 0
 * *body (malloc'd, NUL after the last byte; free()) holds *body_len bytes.
 * -1: unreachable, no answer in time, or not HTTP; -2: the body (or the
 * whole answer) is longer than max_body (+ 4 KiB of header). */
int fpp_http_fetch(const char *host, int port, const char *path, double timeout_s, size_t max_body, uint8_t **body,
                   size_t *body_len);

/* Sum of the values of metric `name` in Prometheus text (every series, or
 * those whose labels contain `label`, e.g. "kind=\"features\""); NAN if none. */
double fpp_prom_sum(const char *text, const char *name, const char *label);

#endif /* FP_PIPELINE_H */
