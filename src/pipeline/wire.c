/* wire.c — what carrying a frame costs the CPU at one end of a link, for the
 * partitioner: the frame's encoding and checksum, ZeroMQ's copy and the
 * kernel's TCP, on both sides of a loopback connection, per byte. */
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/common.h"
#include "pipeline/pipeline.h"

enum { FPI_WIRE_FLOATS = 1 << 18 }; /* a 1 MiB feature map per frame */
enum { FPI_WIRE_FRAMES = 24 };      /* frames per timed round */
enum { FPI_WIRE_ROUNDS = 3 };       /* rounds; the least CPU counts */
enum { FPI_WIRE_PACKETS = 400 };    /* single-packet messages per timed round */

fp_status fpp_measure_wire(double *ns_per_byte, double *ns_per_packet)
{
    if (!ns_per_byte || !ns_per_packet) return fpi_error(FP_EINVAL, "fpp_measure_wire: NULL argument");
    fp_status st = FP_OK;
    void *ctx = zmq_ctx_new(), *in = NULL, *out = NULL;
    float *x = fpi_malloc(FPI_WIRE_FLOATS * sizeof *x);
    fp_frame f = {.kind = FP_FRAME_FEATURES, .id = 1, .n_tensors = 1, .image_w = 1, .image_h = 1};
    f.tensors[0] = (fp_frame_tensor){.layer = 0, .dtype = FP_DTYPE_F32, .compress = FP_COMPRESS_NONE, .rank = 3,
                                     .dims = {16, 128, 128, 1}, .raw_len = FPI_WIRE_FLOATS * 4,
                                     .data = (const uint8_t *)x, .len = FPI_WIRE_FLOATS * 4};
    size_t cap = fp_frame_encoded_size(&f), len = 0;
    uint8_t *buf = fpi_malloc(cap);
    char ep[FPP_MAX_ENDPOINT];
    size_t ep_len = sizeof ep;
    int zero = 0;
    if (!ctx || !x || !buf) {
        st = fpi_error(FP_ENOMEM, "out of memory measuring the links' CPU cost");
        goto done;
    }
    for (int i = 0; i < FPI_WIRE_FLOATS; i++) x[i] = (float)((i * 2654435761u) >> 8) * 1e-6f;
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
