/* cmd_link.c — `fogpipe link`: what a real link between two devices costs
 * each end's CPU per byte of feature frames, for the partitioner's profile. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "pipeline/pipeline.h"

static fp_flag fp_link_flags[] = {
    {"listen", 'l', "ENDPOINT", "receive here (e.g. tcp://*:5599 or tcp://10.0.0.2:5599); answer one sender, then exit", NULL},
    {"connect", 'c', "ENDPOINT", "send to a receiver started with --listen (e.g. tcp://10.0.0.2:5599)", NULL},
    {"mib", 'n', "N", "with --connect: MiB of frames to send (default 32; at 20 Mbit/s 4 MiB take about 2 s)", NULL},
    {"timeout", 0, "S", "seconds to wait for the peer (default 60)", NULL},
    {"json", 0, NULL, "print the result as one JSON object", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_link_cmd = {
    "link", "--listen ENDPOINT | --connect ENDPOINT [--mib N] [--json]",
    "Measures what carrying feature frames over one real link costs the CPU at\n"
    "each end, per byte. Start `fogpipe link --listen tcp://*:5599` on the\n"
    "receiving device, then `fogpipe link --connect tcp://RECEIVER:5599` on the\n"
    "sending one: it streams 1 MiB float32 frames (encoded and checksummed as a\n"
    "stage sends them) and prints both ends' CPU nanoseconds per byte, the\n"
    "bytes and the rate the link carried. Each end counts its whole process:\n"
    "ZeroMQ's I/O thread and the kernel's TCP/IP work it is charged for, which\n"
    "on a real interface is done per 1448-byte segment (loopback, which `fogpipe\n"
    "profile` measures, moves 64 KiB at a time), and on a link slower than the\n"
    "receiver includes a wake-up per packet.\n"
    "Put the figures in the devices' profile as wire_send_ns_per_byte and\n"
    "wire_recv_ns_per_byte (docs/plan-format.md): `fogpipe plan` then charges\n"
    "them instead of the loopback figures, and no separate per-packet wake-up.",
    "Measured CPU time is the device's own: divide by nothing. The receiver\n"
    "refuses a malformed frame and exits 1.",
    fp_link_flags, 0, 0};

static volatile sig_atomic_t fp_link_stop;
static void fp_link_on_signal(int sig)
{
    (void)sig;
    fp_link_stop = 1;
}

int fp_cmd_link(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_link_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *listen = fp_flag_get(&fp_link_cmd, "listen"), *connect = fp_flag_get(&fp_link_cmd, "connect");
    long mib = 32;
    double timeout = 60;
    if (!listen == !connect) {
        fprintf(stderr, "fogpipe link: give exactly one of --listen and --connect\n");
        return FP_EXIT_USAGE;
    }
    if (listen && fp_flag_get(&fp_link_cmd, "mib")) {
        fprintf(stderr, "fogpipe link: --mib goes with --connect (the sender decides how much)\n");
        return FP_EXIT_USAGE;
    }
    if ((rc = fp_flag_int(&fp_link_cmd, "mib", 1, 65536, &mib)) ||
        (rc = fp_flag_float(&fp_link_cmd, "timeout", 0.1, 86400, &timeout)))
        return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fp_link_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    fpp_link_cost c;
    fp_status st = listen ? fpp_link_listen(listen, timeout, &fp_link_stop, &c) : fpp_link_send(connect, (int)mib, timeout, &c);
    if (st) return fp_cli_fail();
    double mbit = c.seconds > 0 ? c.bytes * 8 / c.seconds / 1e6 : 0;
    if (fp_flag_get(&fp_link_cmd, "json")) {
        printf("{\"end\":\"%s\",\"bytes\":%.0f,\"seconds\":%.4f,\"mbit_per_s\":%.2f", listen ? "receive" : "send",
               c.bytes, c.seconds, mbit);
        if (connect) printf(",\"wire_send_ns_per_byte\":%.4f", c.send_ns_per_byte);
        printf(",\"wire_recv_ns_per_byte\":%.4f}\n", c.recv_ns_per_byte);
    } else {
        printf("%.1f MiB in %.2f s (%.1f Mbit/s of frames)\n", c.bytes / 1048576, c.seconds, mbit);
        if (connect) printf("sending end:   %.3f ns of CPU per byte\n", c.send_ns_per_byte);
        printf("receiving end: %.3f ns of CPU per byte\n", c.recv_ns_per_byte);
    }
    return 0;
}
