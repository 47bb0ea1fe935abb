/* wire.c — what carrying a frame costs the CPU at each end of a link, for
 * the partitioner: the frame's encoding and checksum, ZeroMQ's copy and the
 * kernel's TCP, over loopback (fogpipe profile) or over a real link
 * between two devices (fogpipe link). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/common.h"
#include "pipeline/pipeline.h"

enum { FPI_WIRE_FLOATS = 1 << 18 }; /* a 1 MiB feature map per frame */
enum { FPI_WIRE_FRAMES = 24 };      /* frames per timed round */
enum { FPI_WIRE_ROUNDS = 3 };       /* rounds; the least CPU counts */
enum { FPI_WIRE_PACKETS = 400 };    /* single-packet messages per timed round */

/* The frame both measurements carry: one 16x128x128 float32 feature map
 * (1 MiB) at x, filled with a fixed pattern when x is not NULL. */
static fp_frame fpi_wire_frame(float *x)
{
    for (int i = 0; x && i < FPI_WIRE_FLOATS; i++) x[i] = (float)((i * 2654435761u) >> 8) * 1e-6f;
    fp_frame f = {.kind = FP_FRAME_FEATURES, .id = 1, .n_tensors = 1, .image_w = 1, .image_h = 1};
    f.tensors[0] = (fp_frame_tensor){.layer = 0, .dtype = FP_DTYPE_F32, .compress = FP_COMPRESS_NONE, .rank = 3,
                                     .dims = {16, 128, 128, 1}, .raw_len = FPI_WIRE_FLOATS * 4,
                                     .data = (const uint8_t *)x, .len = FPI_WIRE_FLOATS * 4};
    return f;
}

fp_status fpp_measure_wire(double *ns_per_byte, double *ns_per_packet)
{
    if (!ns_per_byte || !ns_per_packet) return fpi_error(FP_EINVAL, "fpp_measure_wire: NULL argument");
    fp_status st = FP_OK;
    void *ctx = zmq_ctx_new(), *in = NULL, *out = NULL;
    float *x = fpi_malloc(FPI_WIRE_FLOATS * sizeof *x);
    fp_frame f = fpi_wire_frame(x);
    size_t cap = fp_frame_encoded_size(&f), len = 0;
    uint8_t *buf = fpi_malloc(cap);
    char ep[FPP_MAX_ENDPOINT];
    size_t ep_len = sizeof ep;
    int zero = 0;
    if (!ctx || !x || !buf) {
        st = fpi_error(FP_ENOMEM, "out of memory measuring the links' CPU cost");
        goto done;
    }
    in = zmq_socket(ctx, ZMQ_PULL);
    out = zmq_socket(ctx, ZMQ_PUSH);
    if (!in || !out || zmq_setsockopt(in, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(out, ZMQ_LINGER, &zero, sizeof zero) || zmq_bind(in, "tcp://127.0.0.1:*") ||
        zmq_getsockopt(in, ZMQ_LAST_ENDPOINT, ep, &ep_len) || zmq_connect(out, ep)) {
        st = fpi_error(FP_EIO, "measuring the links' CPU cost: loopback TCP: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    double best = -1;
    for (int r = 0; r < 1 + FPI_WIRE_ROUNDS && !st; r++) { /* round 0 warms up */
        double t0 = fpi_process_cpu_s(), bytes = 0;
        for (int k = 0; k < FPI_WIRE_FRAMES && !st; k++) {
            f.id = (uint64_t)(r * FPI_WIRE_FRAMES + k + 1);
            zmq_msg_t m;
            fp_frame g;
            if ((st = fp_frame_encode(&f, buf, cap, &len))) break;
            if (zmq_send(out, buf, len, 0) < 0 || (zmq_msg_init(&m), zmq_msg_recv(&m, in, 0) < 0)) {
                st = fpi_error(FP_EIO, "measuring the links' CPU cost: %s", zmq_strerror(zmq_errno()));
                break;
            }
            st = fp_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), (uint64_t)cap, &g);
            zmq_msg_close(&m);
            bytes += (double)len;
        }
        double ns = (fpi_process_cpu_s() - t0) * 1e9 / (2 * bytes); /* two ends */
        if (!st && r > 0 && (best < 0 || ns < best)) best = ns;
    }
    if (!st) *ns_per_byte = best;
    /* one packet at a time: each wakes both ends */
    best = -1;
    for (int r = 0; r < 1 + FPI_WIRE_ROUNDS && !st; r++) {
        double t0 = fpi_process_cpu_s();
        for (int k = 0; k < FPI_WIRE_PACKETS; k++)
            if (zmq_send(out, buf, (size_t)FP_PART_PACKET_BYTES, 0) < 0 ||
                zmq_recv(in, buf, (size_t)FP_PART_PACKET_BYTES, 0) < 0) {
                st = fpi_error(FP_EIO, "measuring the links' CPU cost: %s", zmq_strerror(zmq_errno()));
                break;
            }
        double ns = (fpi_process_cpu_s() - t0) * 1e9 / (2.0 * FPI_WIRE_PACKETS);
        if (!st && r > 0 && (best < 0 || ns < best)) best = ns;
    }
    if (!st) *ns_per_packet = best;
done:
    if (in) zmq_close(in);
    if (out) zmq_close(out);
    if (ctx) zmq_ctx_term(ctx);
    fpi_free(buf);
    fpi_free(x);
    return st;
}

/* ---- one link measured over the link itself (`fogpipe link`) ----
 * The loopback figures above miss what a real link adds: a rate-limited or
 * real network interface carries each 1448-byte segment on its own through
 * the stack at both ends (loopback moves 64 KiB at a time), and a slow link
 * wakes the receiver per packet. Two processes, one per device, measure it
 * with the frames a stage sends: PAIR sockets, 1 MiB feature frames from the
 * sender, each acknowledged (an empty message) before the next goes, then an
 * end message; the receiver answers with its CPU time and the bytes it
 * checked. One frame in flight, as a stage sends a cut per pass: a sender
 * that kept the socket full would also be charged, in the CPU time of the
 * process running when it happens, for the kernel's work on the packets
 * of the frames queued behind (3 ns per byte instead of 1 here, over a
 * shaped 1 Gbit/s veth under a 0.25 CPU quota). */
static const char fpi_link_end[16] = "fogpipe-link-end";
enum { FPI_LINK_MAX_FRAMES = 65536 }; /* `fogpipe link --mib`'s bound */

static fp_status fpi_link_socket(void *ctx, void **s, int hwm, int64_t max_msg)
{
    int zero = 0;
    *s = zmq_socket(ctx, ZMQ_PAIR);
    if (!*s || zmq_setsockopt(*s, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(*s, ZMQ_SNDHWM, &hwm, sizeof hwm) || zmq_setsockopt(*s, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        (max_msg > 0 && zmq_setsockopt(*s, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg)))
        return fpi_error(FP_EIO, "link: zmq socket: %s", zmq_strerror(zmq_errno()));
    return FP_OK;
}

/* Waits up to timeout_s (checking *stop) for a message on s. */
static fp_status fpi_link_wait(void *s, double timeout_s, volatile sig_atomic_t *stop, const char *what)
{
    double until = fpi_now() + timeout_s;
    for (;;) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, 200);
        if (n > 0) return FP_OK;
        if (n < 0 && zmq_errno() != EINTR) return fpi_error(FP_EIO, "link: poll: %s", zmq_strerror(zmq_errno()));
        if (stop && *stop) return fpi_error(FP_ETIMEDOUT, "link: stopped while waiting for %s", what);
        if (fpi_now() > until) return fpi_error(FP_ETIMEDOUT, "link: no %s within %g s", what, timeout_s);
    }
}

static size_t fpi_link_frame_bytes(void)
{
    fp_frame f = fpi_wire_frame(NULL);
    return fp_frame_encoded_size(&f);
}

fp_status fpp_link_listen(const char *endpoint, double timeout_s, volatile sig_atomic_t *stop, fpp_link_cost *out)
{
    if (!endpoint || !out || !(timeout_s > 0)) return fpi_error(FP_EINVAL, "fpp_link_listen: bad argument");
    memset(out, 0, sizeof *out);
    size_t cap = fpi_link_frame_bytes();
    void *ctx = zmq_ctx_new(), *s = NULL;
    fp_status st = ctx ? fpi_link_socket(ctx, &s, 4, (int64_t)cap) : fpi_error(FP_ENOMEM, "link: zmq_ctx_new failed");
    if (!st && zmq_bind(s, endpoint))
        st = fpi_error(FP_EIO, "link: cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
    double bytes = 0, frames = 0, t0 = 0, w0 = 0;
    for (int first = 1; !st; first = 0) {
        /* the first frame may be a while coming: the peer starts when it likes */
        if ((st = fpi_link_wait(s, first ? timeout_s : 10, stop, first ? "sender" : "next frame"))) break;
        if (first) t0 = fpi_process_cpu_s(), w0 = fpi_now();
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            st = fpi_error(FP_EIO, "link: receive: %s", zmq_strerror(zmq_errno()));
            zmq_msg_close(&m);
            break;
        }
        size_t len = zmq_msg_size(&m);
        if (len == sizeof fpi_link_end && !memcmp(zmq_msg_data(&m), fpi_link_end, len)) {
            zmq_msg_close(&m);
            break;
        }
        fp_frame g;
        st = fp_frame_decode(zmq_msg_data(&m), len, (uint64_t)cap, &g);
        zmq_msg_close(&m);
        if (st) break;
        bytes += (double)len;
        if (++frames > FPI_LINK_MAX_FRAMES) {
            st = fpi_error(FP_ETOOBIG, "link: the sender sent more than %d frames", FPI_LINK_MAX_FRAMES);
            break;
        }
        if (zmq_send(s, "", 0, 0) < 0) st = fpi_error(FP_EIO, "link: acknowledge: %s", zmq_strerror(zmq_errno()));
    }
    if (!st && !frames) st = fpi_error(FP_EPROTO, "link: the sender ended without sending a frame");
    if (!st) {
        double cpu = fpi_process_cpu_s() - t0;
        char ans[96];
        int n = snprintf(ans, sizeof ans, "%.17g %.17g", cpu, bytes);
        out->bytes = bytes;
        out->seconds = fpi_now() - w0;
        out->recv_ns_per_byte = cpu * 1e9 / bytes;
        if (zmq_send(s, ans, (size_t)n, 0) < 0) st = fpi_error(FP_EIO, "link: answer: %s", zmq_strerror(zmq_errno()));
        /* let the answer leave before the socket closes */
        int linger = 2000;
        if (!st) zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    }
    if (s) zmq_close(s);
    if (ctx) zmq_ctx_term(ctx);
    return st;
}

fp_status fpp_link_send(const char *endpoint, int frames, double timeout_s, fpp_link_cost *out)
{
    if (!endpoint || !out || frames < 1 || !(timeout_s > 0)) return fpi_error(FP_EINVAL, "fpp_link_send: bad argument");
    memset(out, 0, sizeof *out);
    size_t cap = fpi_link_frame_bytes(), len = 0;
    float *x = fpi_malloc(FPI_WIRE_FLOATS * sizeof *x);
    uint8_t *buf = fpi_malloc(cap);
    void *ctx = zmq_ctx_new(), *s = NULL;
    fp_status st = ctx && x && buf ? fpi_link_socket(ctx, &s, 4, 4096) : fpi_error(FP_ENOMEM, "link: out of memory");
    if (!st && zmq_connect(s, endpoint))
        st = fpi_error(FP_EIO, "link: cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
    fp_frame f = fpi_wire_frame(x);
    double t0 = fpi_process_cpu_s(), w0 = fpi_now(), bytes = 0;
    for (int k = 0; !st && k < frames; k++) {
        f.id = (uint64_t)k + 1;
        if ((st = fp_frame_encode(&f, buf, cap, &len))) break;
        /* one frame in flight never fills the socket's queue: the wait for its acknowledgement bounds the send */
        if (zmq_send(s, buf, len, 0) < 0) st = fpi_error(FP_EIO, "link: send: %s", zmq_strerror(zmq_errno()));
        bytes += (double)len;
        /* one frame in flight, as a stage between passes: the next goes when this one has arrived */
        if (!st) st = fpi_link_wait(s, timeout_s, NULL, "acknowledgement from the receiver");
        if (!st && zmq_recv(s, buf, 1, 0) != 0)
            st = fpi_error(FP_EPROTO, "link: the receiver's acknowledgement is not an empty message");
    }
    if (!st && zmq_send(s, fpi_link_end, sizeof fpi_link_end, 0) < 0)
        st = fpi_error(FP_EIO, "link: send: %s", zmq_strerror(zmq_errno()));
    if (!st) st = fpi_link_wait(s, timeout_s, NULL, "answer from the receiver");
    if (!st) {
        double cpu = fpi_process_cpu_s() - t0, rcpu = -1, rbytes = -1;
        char ans[128];
        int n = zmq_recv(s, ans, sizeof ans - 1, 0);
        if (n < 0 || n >= (int)sizeof ans - 1) {
            st = fpi_error(FP_EPROTO, "link: the receiver's answer is missing or too long");
        } else {
            ans[n] = '\0';
            if (sscanf(ans, "%lf %lf", &rcpu, &rbytes) != 2 || !(rcpu >= 0 && rcpu < 1e6) || rbytes != bytes)
                st = fpi_error(FP_EPROTO, "link: the receiver's answer \"%.40s\" does not match the %.0f bytes sent", ans,
                               bytes);
        }
        out->bytes = bytes;
        out->seconds = fpi_now() - w0;
        out->send_ns_per_byte = cpu * 1e9 / bytes;
        out->recv_ns_per_byte = st ? 0 : rcpu * 1e9 / bytes;
    }
    if (s) zmq_close(s);
    if (ctx) zmq_ctx_term(ctx);
    fpi_free(buf);
    fpi_free(x);
    return st;
}
