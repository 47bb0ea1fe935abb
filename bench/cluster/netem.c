/* netem.c — link delay and loss for the emulated cluster on kernels without
 * the netem qdisc (CONFIG_NET_SCH_NETEM), from user space.
 *
 *   fp_netem --queue N [--delay 5ms] [--loss 0.1%] [--seed S] [--stats]
 *
 * Run inside a device's network namespace, behind iptables rules that hand
 * the packets of its link to netfilter queue N (bench/cluster/cluster adds
 * them: OUTPUT -o eth0 and INPUT -i eth0, with --queue-bypass so the link
 * stays up should this program die). Each packet is held for the delay,
 * then accepted; with --loss, each is dropped with that probability on
 * arrival. A dropped packet was already queued by the sender's stack, so
 * TCP sees a packet lost on the wire, as with netem. The delay is the same
 * for every packet, so packets leave in the order they came: one verdict
 * accepts every due packet at once (nfq_set_verdict_batch), which also
 * releases any packet whose notice the socket lost (ENOBUFS).
 *
 * Hand-written because no packaged tool delays packets without netem;
 * libnetfilter_queue does the netlink work. Only the packets' metadata is
 * copied to user space (NFQNL_COPY_META), and GSO packets come whole.
 * With --stats, packets accepted and dropped are printed to stderr at exit
 * (SIGTERM or SIGINT) and on SIGUSR1. Exit status: 0 after a signal, 1 on errors (no
 * CAP_NET_ADMIN, queue taken), 2 on bad usage. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Packets held at once (the kernel queue is as long: more are dropped,
 * as netem's `limit` drops them). */
enum { NE_MAX_HELD = 1 << 16 };

typedef struct {
    uint32_t id;  /* the kernel's packet id */
    int64_t due;  /* when to accept it (CLOCK_MONOTONIC ns) */
} ne_packet;

typedef struct {
    struct nfq_q_handle *qh;
    int64_t delay_ns;
    uint64_t loss;     /* drop when the next random value is below this (of 2^64) */
    uint64_t rng;      /* xorshift64* state */
    ne_packet *held;   /* ring of NE_MAX_HELD */
    size_t head, count;
    uint64_t accepted, dropped, overflow;
} ne_state;

static volatile sig_atomic_t ne_stop, ne_report;

static void ne_on_signal(int sig)
{
    if (sig == SIGUSR1) ne_report = 1;
    else ne_stop = 1;
}

static void ne_print_stats(const ne_state *s, long queue)
{
    fprintf(stderr, "fp_netem: queue %ld: %llu accepted, %llu dropped (loss), %llu dropped (queue full)\n", queue,
            (unsigned long long)s->accepted, (unsigned long long)s->dropped, (unsigned long long)s->overflow);
}

static int64_t ne_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static uint64_t ne_random(ne_state *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545F4914F6CDD1DULL;
}

/* A packet arrived: drop it now, or hold it until it is due. */
static int ne_on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data)
{
    (void)msg;
    ne_state *s = data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph) return 0;
    uint32_t id = ntohl(ph->packet_id);
    if (s->loss && ne_random(s) < s->loss) {
        s->dropped++;
        return nfq_set_verdict(qh, id, NF_DROP, 0, NULL) < 0 ? -1 : 0;
    }
    if (s->count == NE_MAX_HELD) { /* cannot hold it: dropped, as a full netem queue does */
        s->overflow++;
        return nfq_set_verdict(qh, id, NF_DROP, 0, NULL) < 0 ? -1 : 0;
    }
    s->held[(s->head + s->count++) % NE_MAX_HELD] = (ne_packet){id, ne_now() + s->delay_ns};
    return 0;
}

/* Accepts every held packet that is due (and every older one). */
static int ne_release(ne_state *s, int64_t now)
{
    size_t n = 0;
    while (n < s->count && s->held[(s->head + n) % NE_MAX_HELD].due <= now) n++;
    if (!n) return 0;
    uint32_t last = s->held[(s->head + n - 1) % NE_MAX_HELD].id;
    s->head = (s->head + n) % NE_MAX_HELD;
    s->count -= n;
    s->accepted += n;
    return nfq_set_verdict_batch(s->qh, last, NF_ACCEPT);
}

/* "5ms", "500us", "0.2s", "5" (ms) -> ns; -1 if malformed. */
static int64_t ne_parse_delay(const char *v)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || !(x >= 0) || x > 10e3) return -1;
    double scale = 1e6;
    if (!strcmp(end, "us")) scale = 1e3;
    else if (!strcmp(end, "s")) scale = 1e9;
    else if (*end && strcmp(end, "ms")) return -1;
    double ns = x * scale;
    return ns > 10e9 ? -1 : (int64_t)(ns + .5);
}

/* "0.1%" or "0.1" (percent) -> probability; -1 if malformed. */
static double ne_parse_loss(const char *v)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || (*end && strcmp(end, "%")) || !(x >= 0) || x > 100) return -1;
    return x / 100;
}

static int ne_usage(FILE *f, int rc)
{
    fprintf(f, "usage: fp_netem --queue N [--delay 5ms] [--loss 0.1%%] [--seed S] [--stats]\n"
               "Delays (and with --loss drops) the packets iptables hands to netfilter queue N\n"
               "(0-65535), for kernels without the netem qdisc; see bench/cluster/cluster.\n"
               "  --delay D   hold every packet D (us, ms or s; default ms; at most 10 s)\n"
               "  --loss P    drop each packet with probability P percent (0-100)\n"
               "  --seed S    seed of the loss draws (default 1)\n"
               "  --stats     print packets accepted and dropped to stderr at exit and on SIGUSR1\n"
               "Runs until SIGTERM or SIGINT. Needs CAP_NET_ADMIN.\n");
    return rc;
}

int main(int argc, char **argv)
{
    long queue = -1;
    int stats = 0;
    ne_state s = {0};
    s.rng = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return ne_usage(stdout, 0);
        if (!strcmp(a, "--stats")) {
            stats = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "fp_netem: %s needs a value\n", a);
            return ne_usage(stderr, 2);
        }
        i++;
        if (!strcmp(a, "--queue")) {
            queue = strtol(v, &end, 10);
            if (*end || end == v || queue < 0 || queue > 65535) {
                fprintf(stderr, "fp_netem: bad queue number '%s' (0-65535)\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--delay")) {
            if ((s.delay_ns = ne_parse_delay(v)) < 0) {
                fprintf(stderr, "fp_netem: bad delay '%s' (e.g. 5ms, 500us; at most 10 s)\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--loss")) {
            double p = ne_parse_loss(v);
            if (p < 0) {
                fprintf(stderr, "fp_netem: bad loss '%s' (a percentage, e.g. 0.1%%)\n", v);
                return 2;
            }
            s.loss = p >= 1 ? UINT64_MAX : (uint64_t)(p * 18446744073709551616.0);
        } else if (!strcmp(a, "--seed")) {
            unsigned long long seed = strtoull(v, &end, 10);
            if (*end || end == v) {
                fprintf(stderr, "fp_netem: bad seed '%s'\n", v);
                return 2;
            }
            s.rng = seed ? seed : 1;
        } else {
            fprintf(stderr, "fp_netem: unknown option '%s'\n", a);
            return ne_usage(stderr, 2);
        }
    }
    if (queue < 0) {
        fprintf(stderr, "fp_netem: --queue is required\n");
        return ne_usage(stderr, 2);
    }
    s.held = malloc(NE_MAX_HELD * sizeof *s.held);
    struct nfq_handle *h = nfq_open();
    if (!s.held || !h) {
        fprintf(stderr, "fp_netem: cannot open a netfilter queue socket: %s\n", strerror(errno));
        return 1;
    }
    s.qh = nfq_create_queue(h, (uint16_t)queue, ne_on_packet, &s);
    if (!s.qh) {
        fprintf(stderr, "fp_netem: cannot bind queue %ld (taken, or no CAP_NET_ADMIN): %s\n", queue,
                strerror(errno));
        nfq_close(h);
        return 1;
    }
    if (nfq_set_mode(s.qh, NFQNL_COPY_META, 0) < 0 || nfq_set_queue_maxlen(s.qh, NE_MAX_HELD) < 0) {
        fprintf(stderr, "fp_netem: cannot configure queue %ld: %s\n", queue, strerror(errno));
        nfq_destroy_queue(s.qh);
        nfq_close(h);
        return 1;
    }
    nfq_set_queue_flags(s.qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO); /* older kernels: segments come one by one */
    nfnl_rcvbufsiz(nfq_nfnlh(h), 8u << 20);
    struct sigaction sa = {0};
    sa.sa_handler = ne_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (stats) sigaction(SIGUSR1, &sa, NULL);

    int fd = nfq_fd(h), rc = 0;
    static char buf[1 << 16];
    while (!ne_stop) {
        if (ne_report) {
            ne_report = 0;
            ne_print_stats(&s, queue);
        }
        int64_t now = ne_now();
        if (ne_release(&s, now) < 0) {
            fprintf(stderr, "fp_netem: verdict failed: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        struct timespec wait = {1, 0};
        if (s.count) {
            int64_t d = s.held[s.head].due - now;
            if (d < 0) d = 0;
            wait.tv_sec = d / 1000000000, wait.tv_nsec = d % 1000000000;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int r = ppoll(&p, 1, &wait, NULL);
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "fp_netem: poll: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        if (r <= 0) continue;
        /* take what is there (a bounded batch), then release what fell due */
        for (int k = 0; k < 256; k++) {
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == ENOBUFS) continue; /* notices lost; their packets go with the next batch */
                break;
            }
            nfq_handle_packet(h, buf, (int)n);
        }
    }
    /* hand back what is still held rather than leave it queued */
    ne_release(&s, INT64_MAX);
    if (stats) ne_print_stats(&s, queue);
    nfq_destroy_queue(s.qh);
    nfq_close(h);
    free(s.held);
    return rc;
}
