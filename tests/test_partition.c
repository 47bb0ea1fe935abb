/* test_partition.c — the partitioner: cut bytes on DAGs, the exact DP
 * against exhaustive search on random instances, the strategies, and the
 * cluster/profile/plan readers on good and malformed input. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fogpipe/partition.h"
#include "partition/partition_impl.h"
#include "test.h"

/* Wire bytes per payload byte (TCP/IPv4 over Ethernet): every link time has it. */
#define FR FP_PART_LINK_FRAMING

/* xorshift64*: reproducible random instances. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_u64(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static double rng_unit(void) { return (double)(rng_u64() >> 11) / 9007199254740992.0; }
static int rng_int(int lo, int hi) { return lo + (int)(rng_u64() % (uint64_t)(hi - lo + 1)); }

/* Checks that fp_last_error() contains `want`. */
#define CHECK_MSG_HAS(want)                                                               \
    CHECK_MSG(strstr(fp_last_error(), want) != NULL, "message \"%s\" lacks \"%s\"", fp_last_error(), want)

static void test_rates_and_codecs(void)
{
    double bps = 0;
    CHECK_OK(fp_rate_parse("20mbit", &bps));
    CHECK_NEAR(bps, 20e6, 1e-12);
    CHECK_OK(fp_rate_parse("1gbit", &bps));
    CHECK_NEAR(bps, 1e9, 1e-12);
    CHECK_OK(fp_rate_parse("500kbit", &bps));
    CHECK_NEAR(bps, 5e5, 1e-12);
    CHECK_OK(fp_rate_parse("2.5Gbps", &bps));
    CHECK_NEAR(bps, 2.5e9, 1e-12);
    CHECK_OK(fp_rate_parse("100000", &bps));
    CHECK_NEAR(bps, 1e5, 1e-12);
    CHECK_ERR(fp_rate_parse("20mb/s", &bps), FP_EINVAL);
    CHECK_MSG_HAS("unit");
    CHECK_ERR(fp_rate_parse("fast", &bps), FP_EINVAL);
    CHECK_ERR(fp_rate_parse("0mbit", &bps), FP_EINVAL);
    CHECK_ERR(fp_rate_parse("-5mbit", &bps), FP_EINVAL);
    CHECK_ERR(fp_rate_parse("20mbitxxxxxxxx", &bps), FP_EINVAL);

    fp_codec c;
    CHECK_OK(fp_codec_parse("int8+zstd", &c));
    CHECK(c == FP_CODEC_INT8_ZSTD);
    CHECK(!strcmp(fp_codec_name(FP_CODEC_FP16_LZ4), "fp16+lz4"));
    CHECK_ERR(fp_codec_parse("bf16", &c), FP_EINVAL);
    uint32_t m = 0;
    CHECK_OK(fp_codec_mask_parse("none,fp16", &m));
    CHECK(m == (FP_CODEC_BIT(FP_CODEC_NONE) | FP_CODEC_BIT(FP_CODEC_FP16)));
    CHECK_OK(fp_codec_mask_parse("auto", &m));
    CHECK(m == FP_CODECS_ALL);
    CHECK_ERR(fp_codec_mask_parse("fp16,", &m), FP_EINVAL);
    CHECK_ERR(fp_codec_mask_parse("", &m), FP_EINVAL);
}

/* A yolov3-tiny-like DAG in cfg text: a branch read after a head and a
 * route across it. */
static const char *dag_cfg =
    "[net]\nwidth=16\nheight=16\nchannels=3\n"
    "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"   /* 0 */
    "[maxpool]\nsize=2\nstride=2\n"                                             /* 1 */
    "[convolutional]\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n"   /* 2 */
    "[convolutional]\nfilters=12\nsize=1\nstride=1\npad=1\nactivation=linear\n"  /* 3 */
    "[yolo]\nmask=0,1\nanchors=1,1,2,2\nclasses=1\nnum=2\n"                     /* 4: head */
    "[route]\nlayers=-3\n"                                                      /* 5: reads 2 */
    "[upsample]\nstride=2\n"                                                    /* 6 */
    "[route]\nlayers=-1,0\n"                                                    /* 7: reads 6, 0 */
    "[convolutional]\nfilters=12\nsize=1\nstride=1\npad=1\nactivation=linear\n"  /* 8 */
    "[yolo]\nmask=0,1\nanchors=1,1,2,2\nclasses=1\nnum=2\n";                    /* 9: head */

static void test_cuts_on_a_dag(void)
{
    fp_net *net = NULL;
    fp_part_graph *g = NULL;
    CHECK_OK(fp_net_parse_cfg(dag_cfg, "dag.cfg", &net));
    if (!net) return;
    CHECK_OK(fp_part_graph_from_net(net, &g));
    if (!g) goto done;
    CHECK(g->n_layers == 10);
    CHECK_OK(fp_part_graph_check(g));
    fp_part_cut cut;
    /* After layer 0: layer 0 is read by 1 and by route 7. */
    CHECK_OK(fp_part_cut_info(g, 0, &cut));
    CHECK(cut.n_tensors == 1 && cut.tensors[0] == 0);
    CHECK(cut.raw_bytes == g->layers[0].out_bytes);
    /* After layer 3: 0 (route 7), 2 (route 5), 3 (the head 4). */
    CHECK_OK(fp_part_cut_info(g, 3, &cut));
    CHECK(cut.n_tensors == 3 && cut.tensors[0] == 0 && cut.tensors[1] == 2 && cut.tensors[2] == 3);
    CHECK(cut.raw_bytes == g->layers[0].out_bytes + g->layers[2].out_bytes + g->layers[3].out_bytes);
    /* After layer 4: the head output travels on to the gateway. */
    CHECK_OK(fp_part_cut_info(g, 4, &cut));
    CHECK(cut.n_tensors == 3 && cut.tensors[2] == 4);
    /* After layer 6: 0 (route 7), 4 (head), 6. */
    CHECK_OK(fp_part_cut_info(g, 6, &cut));
    CHECK(cut.n_tensors == 3 && cut.tensors[0] == 0 && cut.tensors[1] == 4 && cut.tensors[2] == 6);
    /* The last cut goes to the gateway: both heads. */
    CHECK_OK(fp_part_cut_info(g, 9, &cut));
    CHECK(cut.n_tensors == 2 && cut.tensors[0] == 4 && cut.tensors[1] == 9);
    CHECK_ERR(fp_part_cut_info(g, 10, &cut), FP_EINVAL);
    /* Weights: conv 0 has 4 biases + 4*3*9 weights (no batch-norm). */
    CHECK(g->layers[0].weight_bytes == (4 + 4 * 27) * 4);
    CHECK(g->layers[1].weight_bytes == 0);
done:
    fp_part_graph_destroy(g);
    fp_net_destroy(net);
}

/* A random instance: a chain with random extra reads (a DAG), random
 * per-device times, speeds, links, codecs and memory limits. */
typedef struct {
    fp_part_graph *g;
    fp_cluster *c;
    double *times;    /* D × L */
    fp_part_problem p;
} instance;

static void instance_free(instance *in)
{
    fp_part_graph_destroy(in->g);
    fp_cluster_destroy(in->c);
    free(in->times);
    memset(in, 0, sizeof *in);
}

static int instance_make(instance *in, int L, int D)
{
    memset(in, 0, sizeof *in);
    if (fp_part_graph_create(L, &in->g) || fp_cluster_uniform(D, 1e6, 0, 1, 0, 1, &in->c)) return 0;
    fp_part_graph *g = in->g;
    g->input = (fp_shape){3, 8, 8};
    g->input_bytes = (uint64_t)rng_int(100, 20000);
    for (int l = 0; l < L; l++) {
        fp_part_layer *pl = &g->layers[l];
        pl->op = rng_int(0, 5) == 0 ? FP_OP_CONNECTED : FP_OP_CONVOLUTIONAL;
        pl->flops = (uint64_t)rng_int(0, 1000000);
        pl->weight_bytes = (uint64_t)rng_int(0, 50000);
        pl->out_bytes = (uint64_t)rng_int(4, 40000);
        pl->scratch_bytes = (uint64_t)rng_int(0, 5000);
        pl->out_channels = rng_int(1, 64);
        pl->n_inputs = 1;
        pl->inputs[0] = l - 1;
        if (l >= 2 && rng_int(0, 3) == 0) pl->inputs[pl->n_inputs++] = rng_int(-1, l - 2);
    }
    in->times = malloc(sizeof(double) * (size_t)L * (size_t)D);
    if (!in->times) return 0;
    fp_cluster *c = in->c;
    int hetero = rng_int(0, 1);
    for (int d = 0; d < D; d++) {
        c->devices[d].speed = 0.25 + 2 * rng_unit();
        c->devices[d].memory_bytes = rng_int(0, 2) == 0 ? 0 : (uint64_t)rng_int(20000, 400000);
        for (int l = 0; l < L; l++)
            in->times[d * L + l] = hetero || d == 0 ? rng_unit() * 0.01 : in->times[l];
    }
    c->overhead_bytes = (uint64_t)rng_int(0, 1000);
    for (int a = 0; a <= D; a++)
        for (int b = 0; b <= D; b++) {
            fp_link *k = &c->links[a][b];
            k->bandwidth_bps = 1e5 * pow(10, 3 * rng_unit());
            k->latency_s = rng_int(0, 1) ? 0 : rng_unit() * 0.005;
            k->codecs = (uint32_t)rng_int(0, (int)FP_CODECS_ALL);
            if (rng_int(0, 2) == 0) k->codecs |= FP_CODEC_BIT(FP_CODEC_NONE);
            if (!k->codecs) k->codecs = FP_CODECS_DEFAULT;
        }
    for (int k = 0; k < FP_CODEC_COUNT; k++) {
        c->codecs[k].ratio = 0.1 + 0.9 * rng_unit();
        c->codecs[k].channel_bytes = rng_int(0, 8);
        c->codecs[k].cost_ns_per_byte = rng_unit() * 20;
    }
    fp_part_problem_init(&in->p, g, c);
    in->p.input_bytes = rng_int(0, 30000);
    in->p.codecs = rng_int(0, 3) ? FP_CODECS_ALL : (uint32_t)rng_int(1, (int)FP_CODECS_ALL);
    for (int d = 0; d < D; d++) {
        in->p.layer_s[d] = in->times + d * L;
        /* CPU per byte carried: the codec's choice then moves time between stages. */
        in->p.wire_ns_per_byte[d] = rng_int(0, 1) ? rng_unit() * 20 : 0;
        in->p.wire_ns_per_packet[d] = rng_int(0, 1) ? rng_unit() * 5e4 : 0;
        in->p.wire_recv_ns_per_byte[d] = rng_int(0, 3) ? 0 : rng_unit() * 30;
    }
    return 1;
}

/* The DP against exhaustive search on many random instances, for both
 * objectives; the reported numbers are re-evaluated and must agree. */
static void test_optimal_matches_exhaustive(void)
{
    int compared = 0, infeasible = 0, replicated = 0;
    for (int t = 0; t < 1500; t++) {
        instance in;
        int L = rng_int(1, 8), D = rng_int(1, 4);
        if (!instance_make(&in, L, D)) {
            CHECK(!"instance");
            break;
        }
        for (int obj = 0; obj < 2; obj++) {
            in.p.objective = (fp_objective)obj;
            in.p.replicas = 0;
            double eb = 0, el = 0;
            int found = 0;
            CHECK_OK(fpi_part_exhaustive(&in.p, &eb, &el, &found));
            fp_plan plan;
            fp_status st = fp_part_plan(&in.p, FP_STRATEGY_OPTIMAL, NULL, 0, &plan);
            if (!found) {
                CHECK_MSG(st == FP_ENOTFOUND, "instance %d: exhaustive found nothing but DP returned %s", t,
                          fp_status_name(st));
                infeasible++;
                continue;
            }
            CHECK_MSG(st == FP_OK, "instance %d (L=%d D=%d obj=%d): %s", t, L, D, obj, fp_last_error());
            if (st) continue;
            compared++;
            CHECK(plan.feasible);
            if (obj == 0) {
                CHECK_MSG(fabs(plan.bottleneck_s - eb) <= 1e-9 * eb,
                          "instance %d (L=%d D=%d): DP bottleneck %.12g, exhaustive %.12g", t, L, D,
                          plan.bottleneck_s, eb);
                CHECK_MSG(fabs(plan.latency_s - el) <= 1e-9 * el,
                          "instance %d (L=%d D=%d): DP latency %.12g, exhaustive %.12g (at the same bottleneck)",
                          t, L, D, plan.latency_s, el);
            } else {
                CHECK_MSG(fabs(plan.latency_s - el) <= 1e-9 * el,
                          "instance %d (L=%d D=%d): DP latency %.12g, exhaustive %.12g", t, L, D,
                          plan.latency_s, el);
            }
            /* The numbers in the plan are what the cost model says of it. */
            fp_plan again = plan;
            CHECK_OK(fp_part_evaluate(&in.p, &again));
            CHECK(again.bottleneck_s == plan.bottleneck_s && again.latency_s == plan.latency_s);
            if (obj == 0) {
                /* Replicas never make it worse; baselines never beat it. */
                in.p.replicas = 1;
                fp_plan rp;
                CHECK_OK(fp_part_plan(&in.p, FP_STRATEGY_OPTIMAL, NULL, 0, &rp));
                CHECK(rp.bottleneck_s <= plan.bottleneck_s * (1 + 1e-12));
                for (int s = 0; s < rp.n_stages; s++) replicated += rp.stages[s].n_devices > 1;
                fp_plan base;
                for (int sg = FP_STRATEGY_BY_TYPE; sg <= FP_STRATEGY_EQUAL_FLOPS; sg++)
                    if (fp_part_plan(&in.p, (fp_strategy)sg, NULL, 0, &base) == FP_OK && base.feasible)
                        CHECK_MSG(plan.bottleneck_s <= base.bottleneck_s * (1 + 1e-12),
                                  "instance %d: %s %.9g beats optimal %.9g", t, fp_strategy_name((fp_strategy)sg),
                                  base.bottleneck_s, plan.bottleneck_s);
            }
        }
        instance_free(&in);
    }
    printf("  %d instances compared, %d infeasible, %d replicated stages\n", compared, infeasible, replicated);
    CHECK(compared > 1000);
    CHECK(infeasible > 0);
    CHECK(replicated > 0);
}

/* A hand-checkable instance: 4 layers, 2 devices, uniform links. */
static void small_problem(fp_part_graph **g, fp_cluster **c, double *times, fp_part_problem *p, double bps)
{
    CHECK_OK(fp_part_graph_create(4, g));
    CHECK_OK(fp_cluster_uniform(2, bps, 0, 1, 0, 1, c));
    (*g)->input = (fp_shape){1, 10, 10};
    (*g)->input_bytes = 400;
    const uint64_t out[4] = {100000, 1000, 100, 10};
    const uint64_t flops[4] = {100, 100, 100, 1};
    for (int l = 0; l < 4; l++) {
        (*g)->layers[l].out_bytes = out[l];
        (*g)->layers[l].flops = flops[l];
        (*g)->layers[l].out_channels = 1;
        times[l] = l < 3 ? 1.0 : 0.001;
    }
    (*g)->layers[3].op = FP_OP_CONNECTED;
    fp_part_problem_init(p, *g, *c);
    p->input_bytes = 0;
    p->codecs = FP_CODEC_BIT(FP_CODEC_NONE);
    p->layer_s[0] = p->layer_s[1] = times;
}

static void test_strategies(void)
{
    fp_part_graph *g = NULL;
    fp_cluster *c = NULL;
    double times[4];
    fp_part_problem p;
    fp_plan plan;
    small_problem(&g, &c, times, &p, 8e6); /* 1 MB/s */
    if (!g || !c) goto done;
    p.replicas = 0;
    /* by-type: layers 0..2 | 3 (the connected layer). */
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_BY_TYPE, NULL, 0, &plan));
    CHECK(plan.n_stages == 2 && plan.stages[0].last == 2 && plan.stages[1].first == 3);
    CHECK_NEAR(plan.bottleneck_s, 3.0, 1e-12);
    /* equal-flops: 0..1 | 2..3 (200 vs 101). */
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_EQUAL_FLOPS, NULL, 0, &plan));
    CHECK(plan.n_stages == 2 && plan.stages[0].last == 1);
    CHECK_NEAR(plan.bottleneck_s, 2.0, 1e-12);
    CHECK(plan.stages[0].out.raw_bytes == 1000);
    CHECK_NEAR(plan.stages[0].out_s, 1000 * FR * 8 / 8e6, 1e-12);
    /* Cut after layer 0 costs 0.1 s of link, cheaper than a second of
     * compute: optimal still balances compute 2 | 1.001 or 1 | 2.001. */
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_OPTIMAL, NULL, 0, &plan));
    CHECK(plan.n_stages == 2);
    CHECK_NEAR(plan.bottleneck_s, 2.0, 1e-9);
    CHECK_NEAR(plan.images_per_min, 30.0, 1e-9);
    /* Hand-given cuts. */
    int cuts[1] = {0};
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK(plan.stages[0].last == 0 && plan.stages[1].first == 1);
    CHECK_NEAR(plan.stages[0].out_s, 0.1 * FR, 1e-12);
    CHECK_NEAR(plan.latency_s, 1 + 0.1 * FR + 2.001 + 10 * FR * 8 / 8e6, 1e-12);
    /* Per-frame work: stage 0 decodes the image, the last stage makes the
     * result; both scale with the device's speed like its layers. */
    p.prepare_s[0] = p.prepare_s[1] = 0.5;
    p.finish_s[0] = p.finish_s[1] = 0.25;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[0].compute_s, 1.5, 1e-12);
    CHECK_NEAR(plan.stages[1].compute_s, 2.251, 1e-12);
    c->devices[1].speed = 2;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[1].compute_s, 2.251 / 2, 1e-12);
    c->devices[1].speed = 1;
    p.finish_s[1] = -1;
    CHECK_ERR(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan), FP_EINVAL);
    CHECK_MSG_HAS("per-frame times");
    p.prepare_s[0] = p.prepare_s[1] = p.finish_s[0] = p.finish_s[1] = 0;
    int bad[2] = {1, 1};
    CHECK_ERR(fp_part_plan(&p, FP_STRATEGY_CUTS, bad, 1, &plan), FP_OK);
    CHECK_ERR(fp_part_plan(&p, FP_STRATEGY_CUTS, bad, 2, &plan), FP_EINVAL);
    CHECK_MSG_HAS("2 cuts make 3 stages");
    bad[0] = 3;
    CHECK_ERR(fp_part_plan(&p, FP_STRATEGY_CUTS, bad, 1, &plan), FP_EINVAL);
    CHECK_MSG_HAS("strictly increasing");
    /* A slow link: one device is best (fewer devices when links are slow). */
    c->links[0][1].latency_s = c->links[1][0].latency_s = 5;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_OPTIMAL, NULL, 0, &plan));
    CHECK(plan.n_stages == 1);
    /* With replicas, the spare device doubles the single stage's rate. */
    p.replicas = 1;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_OPTIMAL, NULL, 0, &plan));
    CHECK(plan.n_stages == 1 && plan.stages[0].n_devices == 2);
    CHECK_NEAR(plan.bottleneck_s, 3.001 / 2, 1e-9);
    /* Memory: a limit below any stage makes optimal fail precisely. */
    c->devices[0].memory_bytes = c->devices[1].memory_bytes = 1000;
    CHECK_ERR(fp_part_plan(&p, FP_STRATEGY_OPTIMAL, NULL, 0, &plan), FP_ENOTFOUND);
    CHECK_MSG_HAS("memory");
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_BY_TYPE, NULL, 0, &plan));
    CHECK(!plan.feasible && !plan.stages[0].fits);
    /* by-type needs a connected layer. */
    g->layers[3].op = FP_OP_CONVOLUTIONAL;
    CHECK_ERR(fp_part_plan(&p, FP_STRATEGY_BY_TYPE, NULL, 0, &plan), FP_EUNSUPPORTED);
    CHECK_MSG_HAS("no connected layer");
    /* Missing layer times. */
    p.layer_s[1] = NULL;
    CHECK_ERR(fp_part_plan(&p, FP_STRATEGY_OPTIMAL, NULL, 0, &plan), FP_EINVAL);
    CHECK_MSG_HAS("no layer times for device dev1");
done:
    fp_part_graph_destroy(g);
    fp_cluster_destroy(c);
}

/* Codec choice: fp16 halves a big cut; int8 adds per-channel bytes. A
 * codec's CPU (half encoding, half decoding, without measurements) goes to
 * the stages on both sides, at their speed; a link carries only bytes. */
static void test_codecs_in_plans(void)
{
    fp_part_graph *g = NULL;
    fp_cluster *c = NULL;
    double times[4];
    fp_part_problem p;
    fp_plan plan;
    small_problem(&g, &c, times, &p, 8e4); /* 10 kB/s: the 100 kB cut is the bottleneck */
    if (!g || !c) goto done;
    p.replicas = 0;
    int cuts[1] = {0};
    p.codecs = FP_CODEC_BIT(FP_CODEC_NONE) | FP_CODEC_BIT(FP_CODEC_FP16);
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK(plan.stages[0].out_codec == FP_CODEC_FP16);
    CHECK_NEAR(plan.stages[0].out_bytes, 50000, 1e-12);
    CHECK_NEAR(plan.stages[0].out_s, 50000 * FR * 8 / 8e4, 1e-12);
    CHECK_NEAR(plan.stages[0].compute_s, 1 + 100000 * 0.125e-9, 1e-15);
    CHECK_NEAR(plan.stages[1].compute_s, 2.001 + 100000 * 0.125e-9, 1e-15);
    /* ... at the device's speed. */
    c->devices[1].speed = 0.5;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[1].compute_s, (2.001 + 100000 * 0.125e-9) / 0.5, 1e-15);
    c->devices[1].speed = 1;
    p.codecs = FP_CODECS_DEFAULT;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK(plan.stages[0].out_codec == FP_CODEC_INT8);
    CHECK_NEAR(plan.stages[0].out_bytes, 25000 + 8, 1e-12);
    /* A fast link is not the bottleneck: sending raw costs the stages no codec CPU. */
    c->links[0][1].bandwidth_bps = 8e9;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK(plan.stages[0].out_codec == FP_CODEC_NONE);
    CHECK_NEAR(plan.bottleneck_s, 2.001, 1e-12);
    /* The wire's CPU per byte at each end, at each device's speed: with it,
     * int8's fewer bytes cost the receiving stage less than raw ones. */
    p.wire_ns_per_byte[0] = p.wire_ns_per_byte[1] = 1;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK(plan.stages[0].out_codec == FP_CODEC_INT8);
    CHECK_NEAR(plan.stages[1].compute_s, 2.001 + (100000 * 0.25 + 25008 * 1) * 1e-9, 1e-15);
    CHECK_NEAR(plan.stages[0].compute_s, 1 + (100000 * 0.25 + 25008 * 1) * 1e-9, 1e-15);
    /* Per packet received (1448 bytes), a wake-up: wire_ns_per_packet at
     * the device's speed while the slowest link into it brings packets
     * more slowly than that (the gateway's 80 kbit/s: 0.15 s a packet),
     * else one packet's time on that link. Stage 0 pays it for the image. */
    p.wire_ns_per_packet[0] = 1e4;
    p.wire_ns_per_packet[1] = 2e4;
    p.input_bytes = 2896;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK(plan.stages[0].out_codec == FP_CODEC_INT8);
    CHECK_NEAR(plan.stages[1].compute_s, 2.001 + (100000 * 0.25 + 25008 * 1) * 1e-9 + 25008 / 1448.0 * 2e-5, 1e-15);
    CHECK_NEAR(plan.stages[0].compute_s, 1 + (100000 * 0.25 + 25008 + 2896) * 1e-9 + 2 * 1e-5, 1e-15);
    c->devices[1].speed = 0.5;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[1].compute_s,
               (2.001 + (100000 * 0.25 + 25008 * 1) * 1e-9) / 0.5 + 25008 / 1448.0 * 4e-5, 1e-15);
    c->devices[1].speed = 1;
    c->links[2][1].bandwidth_bps = 8e9; /* every link into dev1 fast: 1.514 us a packet */
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[1].compute_s,
               2.001 + (100000 * 0.25 + 25008 * 1) * 1e-9 + 25008 / 1448.0 * (1514 * 8 / 8e9), 1e-15);
    c->links[2][1].bandwidth_bps = 8e4;
    /* Measured over the link (`fogpipe link`): the receiving end's cost per
     * byte includes its wake-ups, so no packet term; the sending end keeps
     * wire_ns_per_byte. */
    p.wire_recv_ns_per_byte[1] = 3;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK(plan.stages[0].out_codec == FP_CODEC_INT8);
    CHECK_NEAR(plan.stages[1].compute_s, 2.001 + (100000 * 0.25 + 25008 * 3) * 1e-9, 1e-15);
    CHECK_NEAR(plan.stages[0].compute_s, 1 + (100000 * 0.25 + 25008 + 2896) * 1e-9 + 2 * 1e-5, 1e-15);
    p.wire_recv_ns_per_byte[1] = 0;
    p.wire_ns_per_packet[0] = p.wire_ns_per_packet[1] = 0;
    p.input_bytes = 0;
    p.wire_ns_per_byte[0] = p.wire_ns_per_byte[1] = 0;
    c->links[0][1].bandwidth_bps = 8e4;
    /* A link offering only none overrides the restriction. */
    c->links[0][1].codecs = FP_CODEC_BIT(FP_CODEC_NONE);
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK(plan.stages[0].out_codec == FP_CODEC_NONE);
    p.codecs = FP_CODEC_BIT(FP_CODEC_INT8);
    CHECK_ERR(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan), FP_ENOTFOUND);
    CHECK_MSG_HAS("no allowed codec");
    /* --explain lists runners-up with their bottlenecks. */
    p.codecs = FP_CODECS_ALL;
    c->links[0][1].codecs = FP_CODECS_DEFAULT;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_OPTIMAL, NULL, 0, &plan));
    fp_part_alt alts[32];
    int n = 0;
    CHECK_OK(fp_part_explain(&p, &plan, alts, 32, &n));
    CHECK(n >= 2);
    int worse = 1;
    for (int i = 0; i < n; i++)
        if (alts[i].feasible && alts[i].bottleneck_s < plan.bottleneck_s * (1 - 1e-9)) worse = 0;
    CHECK_MSG(worse, "a runner-up beats the optimal plan");
done:
    fp_part_graph_destroy(g);
    fp_cluster_destroy(c);
}

static const char *good_cluster =
    "{\"fogpipe_cluster\": 1, \"profile\": \"p.json\", \"memory_overhead_mb\": 8,\n"
    " \"devices\": [\n"
    "  {\"name\": \"pi-1\", \"node\": \"node-a\", \"speed\": 0.25, \"threads\": 4, \"memory_mb\": 1024},\n"
    "  {\"name\": \"pi-2\", \"profile\": \"/abs/pi.json\"},\n"
    "  {\"name\": \"nano\", \"profile\": \"nano.json\", \"speed\": 2}],\n"
    " \"links\": {\"default\": {\"bandwidth\": \"20mbit\", \"latency_ms\": 2},\n"
    "   \"pairs\": [{\"between\": [\"pi-1\", \"pi-2\"], \"bandwidth\": \"1gbit\", \"codecs\": [\"none\", \"fp16+lz4\"]},\n"
    "             {\"between\": [\"gateway\", \"nano\"], \"bandwidth\": 5e6, \"latency_ms\": 0.5}]},\n"
    " \"codecs\": {\"fp16+lz4\": {\"ratio\": 0.3, \"cost_ns_per_byte\": 2}}}\n";

static void test_cluster_file(void)
{
    fp_cluster *c = NULL;
    CHECK_OK(fp_cluster_parse(good_cluster, "c.json", "dir", &c));
    if (!c) return;
    CHECK(c->n_devices == 3);
    CHECK(!strcmp(c->devices[0].node, "node-a") && !strcmp(c->devices[1].node, "pi-2"));
    CHECK(c->devices[0].speed == 0.25 && c->devices[0].threads == 4);
    CHECK(c->devices[0].memory_bytes == 1024ull << 20 && c->devices[1].memory_bytes == 0);
    CHECK(!strcmp(c->profile, "dir/p.json"));
    CHECK(!strcmp(c->devices[1].profile, "/abs/pi.json") && !strcmp(c->devices[2].profile, "dir/nano.json"));
    CHECK(c->overhead_bytes == 8u << 20);
    CHECK(c->links[0][1].bandwidth_bps == 1e9 && c->links[1][0].bandwidth_bps == 1e9);
    CHECK(c->links[0][1].latency_s == 0.002);
    CHECK(c->links[0][1].codecs == (FP_CODEC_BIT(FP_CODEC_NONE) | FP_CODEC_BIT(FP_CODEC_FP16_LZ4)));
    CHECK(c->links[0][2].bandwidth_bps == 20e6 && c->links[0][2].codecs == FP_CODECS_DEFAULT);
    CHECK(c->links[3][2].bandwidth_bps == 5e6 && c->links[2][3].latency_s == 0.0005);
    CHECK(c->codecs[FP_CODEC_FP16_LZ4].ratio == 0.3 && c->codecs[FP_CODEC_FP16_LZ4].channel_bytes == 0);
    CHECK(c->codecs[FP_CODEC_INT8].ratio == 0.25 && c->codecs[FP_CODEC_INT8].channel_bytes == 8);
    CHECK(fp_cluster_find(c, "nano") == 2 && fp_cluster_find(c, "gateway") == 3 && fp_cluster_find(c, "x") < 0);
    fp_cluster_destroy(c);
}

/* Malformed cluster files and the message each must give. */
static void test_cluster_corpus(void)
{
    static const struct {
        const char *text;
        fp_status st;
        const char *msg;
    } bad[] = {
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"1gbit\"}}",
         FP_ECORRUPT, "c.json:1:"},
        {"[1]", FP_ECORRUPT, "top level must be a JSON object"},
        {"{\"devices\": [], \"links\": {}}", FP_ECORRUPT, "missing \"fogpipe_cluster\""},
        {"{\"fogpipe_cluster\": 2, \"devices\": [], \"links\": {}}", FP_EUNSUPPORTED, "version 2"},
        {"{\"fogpipe_cluster\": 1, \"links\": {}}", FP_ECORRUPT, "missing \"devices\""},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}]}", FP_ECORRUPT, "missing \"links\""},
        {"{\"fogpipe_cluster\": 1, \"devices\": [], \"links\": {}}", FP_ECORRUPT, "list of 1..32 devices"},
        {"{\"fogpipe_cluster\": 1, \"devcies\": []}", FP_ECORRUPT, "unknown key \"devcies\""},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\", \"sped\": 2}], \"links\": {}}", FP_ECORRUPT,
         "devices[0]: unknown key \"sped\" (expected name, node, profile, speed, threads, memory_mb)"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"node\": \"a\"}], \"links\": {}}", FP_ECORRUPT,
         "devices[0]: missing \"name\""},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a b\"}], \"links\": {}}", FP_ECORRUPT,
         "may only contain"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"gateway\"}], \"links\": {}}", FP_ECORRUPT, "reserved"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}, {\"name\": \"a\"}], \"links\": {}}", FP_ECORRUPT,
         "devices[0] and devices[1] are both named \"a\""},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\", \"speed\": -2}], \"links\": {}}", FP_ECORRUPT,
         "devices[0].speed must be in [1e-06, 1e+06] (got -2)"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\", \"threads\": 2.5}], \"links\": {}}", FP_ECORRUPT,
         "devices[0].threads must be an integer"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\", \"memory_mb\": \"1G\"}], \"links\": {}}",
         FP_ECORRUPT, "devices[0].memory_mb must be a number"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}, {\"name\": \"b\"}], \"links\": {}}", FP_ECORRUPT,
         "no \"default\" link and no pair between \"a\" and \"b\""},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"latency_ms\": 1}}}",
         FP_ECORRUPT, "links.default: missing \"bandwidth\""},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"20mb\"}}}",
         FP_ECORRUPT, "links.default.bandwidth: bad link rate unit"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"1gbit\", "
         "\"latency_ms\": -1}}}", FP_ECORRUPT, "links.default.latency_ms must be in [0, 1e+06] (got -1)"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"1gbit\", "
         "\"codecs\": [\"fp8\"]}}}", FP_ECORRUPT, "links.default.codecs[0]: unknown codec \"fp8\""},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"1gbit\", "
         "\"codecs\": []}}}", FP_ECORRUPT, "links.default.codecs must be a list of 1..9 codec names"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"1gbit\"}, "
         "\"pairs\": [{\"between\": [\"a\", \"z\"]}]}}", FP_ECORRUPT, "links.pairs[0].between: unknown device \"z\""},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"1gbit\"}, "
         "\"pairs\": [{\"between\": [\"a\", \"a\"]}]}}", FP_ECORRUPT, "names \"a\" twice"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"1gbit\"}, "
         "\"pairs\": [{\"between\": [\"a\", \"gateway\"]}, {\"between\": [\"gateway\", \"a\"]}]}}", FP_ECORRUPT,
         "links.pairs[1]: a link between \"gateway\" and \"a\" is already given"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"1gbit\"}, "
         "\"pairs\": [{\"between\": [\"a\"]}]}}", FP_ECORRUPT, "between must be a list of two device names"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"1gbit\"}}, "
         "\"codecs\": {\"int8\": {\"ratio\": 2}}}", FP_ECORRUPT, "codecs.int8.ratio must be in"},
        {"{\"fogpipe_cluster\": 1, \"devices\": [{\"name\": \"a\"}], \"links\": {\"default\": {\"bandwidth\": \"1gbit\"}}, "
         "\"codecs\": {\"brotli\": {\"ratio\": 0.5}}}", FP_ECORRUPT, "codecs: unknown codec \"brotli\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fp_cluster *c = NULL;
        fp_status st = fp_cluster_parse(bad[i].text, "c.json", NULL, &c);
        CHECK_MSG(st == bad[i].st, "case %zu: got %s (%s)", i, fp_status_name(st), fp_last_error());
        CHECK_MSG(strstr(fp_last_error(), bad[i].msg) != NULL, "case %zu: message \"%s\" lacks \"%s\"", i,
                  fp_last_error(), bad[i].msg);
        CHECK(c == NULL);
        fp_cluster_destroy(c);
    }
}

static void test_profile_json(void)
{
    fp_net *net = NULL;
    fp_profile *p = NULL, *q = NULL, *d = NULL;
    CHECK_OK(fp_net_parse_cfg(dag_cfg, "dag.cfg", &net));
    if (!net) return;
    CHECK_OK(fp_net_init_weights_random(net, 1));
    CHECK_OK(fp_net_setup(net));
    CHECK_ERR(fp_profile_measure(net, 0, 1, &p), FP_EINVAL);
    CHECK_OK(fp_profile_measure(net, 3, 1, &p));
    if (!p) goto done;
    CHECK(p->n_layers == 10 && p->iters == 3 && p->warmup == 1);
    double sum = 0;
    for (int l = 0; l < 10; l++) {
        CHECK(p->layer_s[l] >= 0 && isfinite(p->layer_s[l]));
        sum += p->layer_s[l];
    }
    /* the layers' times (growth of the prefixes' medians) add up to the
     * uninterrupted pass */
    CHECK_MSG(p->layer_scale == 1 && fabs(sum - p->total_s) <= 1e-9 + 1e-6 * p->total_s, "sum %g, pass %g, scale %g",
              sum, p->total_s, p->layer_scale);
    CHECK(!p->codec_input[0] && !p->codecs[FP_CODEC_INT8].measured);
    CHECK_OK(fp_profile_measure_codecs(net, NULL, "pseudo-random", p));
    {
        /* Every tensor's encoded size: none is the raw bytes, fp16 half of
         * them; int8 (per channel) a quarter plus a minimum and a scale
         * per channel; ratios are bytes-weighted. */
        fp_part_graph *g = NULL;
        CHECK_OK(fp_part_graph_from_net(net, &g));
        for (int t = -1; g && t < 10; t++) {
            uint64_t raw = t < 0 ? g->input_bytes : g->layers[t].out_bytes;
            CHECK_MSG(p->codecs[FP_CODEC_NONE].bytes[t + 1] == raw, "tensor %d: none %llu, raw %llu", t,
                      (unsigned long long)p->codecs[FP_CODEC_NONE].bytes[t + 1], (unsigned long long)raw);
            CHECK(p->codecs[FP_CODEC_FP16].bytes[t + 1] == raw / 2);
            uint64_t ch = t < 0 ? (uint64_t)g->input.c : (uint64_t)g->layers[t].out_channels;
            CHECK(p->codecs[FP_CODEC_INT8].bytes[t + 1] == raw / 4 + 8 * ch);
        }
        fp_part_graph_destroy(g);
        CHECK_NEAR(p->codecs[FP_CODEC_NONE].ratio, 1, 1e-12);
        CHECK_NEAR(p->codecs[FP_CODEC_FP16].ratio, 0.5, 1e-12);
        for (int c = 0; c < FP_CODEC_COUNT; c++)
            CHECK(p->codecs[c].measured && p->codecs[c].ratio > 0 && p->codecs[c].cost_ns_per_byte >= 0 &&
                  p->codecs[c].encode_ns_per_byte >= 0 &&
                  p->codecs[c].encode_ns_per_byte <= p->codecs[c].cost_ns_per_byte);
    }
    snprintf(p->cfg, sizeof p->cfg, "dag.cfg");
    snprintf(p->cfg_hash, sizeof p->cfg_hash, "fnv1a64:0123456789abcdef");
    snprintf(p->cpu, sizeof p->cpu, "Test CPU");
    p->threads = 1;
    p->prepare_s = 0.0042;
    p->finish_s = 0.0013;
    p->wire_ns_per_byte = 0.3;
    p->wire_ns_per_packet = 27000;
    p->wire_send_ns_per_byte = 0.85;
    p->wire_recv_ns_per_byte = 5.875;
    p->result_bytes = 321;
    p->codecs[FP_CODEC_INT8].cost_ns_per_byte = 0.12;
    p->codecs[FP_CODEC_INT8].encode_ns_per_byte = 0.09;
    char *text = NULL;
    CHECK_OK(fp_profile_to_json(p, &text));
    if (text) {
        CHECK_OK(fp_profile_parse(text, "p.json", &q));
        free(text);
    }
    if (q) {
        CHECK(q->n_layers == 10 && !strcmp(q->cpu, "Test CPU") && !strcmp(q->cfg_hash, p->cfg_hash));
        for (int l = 0; l < 10; l++) CHECK_NEAR(q->layer_s[l], p->layer_s[l], 1e-7); /* 0.1 µs in the file */
        CHECK_OK(fp_profile_check(q, "p.json", 10, "fnv1a64:0123456789abcdef"));
        CHECK_ERR(fp_profile_check(q, "p.json", 11, NULL), FP_EINVAL);
        CHECK_MSG_HAS("the profile has 10 layers but the model has 11");
        CHECK_ERR(fp_profile_check(q, "p.json", 10, "fnv1a64:ffffffffffffffff"), FP_EINVAL);
        CHECK_MSG_HAS("not for this model");
        /* Codec measurements survive the file. */
        CHECK(!strcmp(q->codec_input, "pseudo-random"));
        for (int c = 0; c < FP_CODEC_COUNT; c++) {
            CHECK(q->codecs[c].measured && q->codecs[c].bytes);
            if (!q->codecs[c].bytes || !p->codecs[c].bytes) continue;
            CHECK_NEAR(q->codecs[c].ratio, p->codecs[c].ratio, 1e-6);
            for (int t = 0; t <= 10; t++) CHECK(q->codecs[c].bytes[t] == p->codecs[c].bytes[t]);
        }
        CHECK_NEAR(q->prepare_s, 0.0042, 1e-12);
        CHECK_NEAR(q->finish_s, 0.0013, 1e-12);
        CHECK_NEAR(q->wire_ns_per_byte, 0.3, 1e-12);
        CHECK_NEAR(q->wire_ns_per_packet, 27000, 1e-12);
        CHECK_NEAR(q->wire_send_ns_per_byte, 0.85, 1e-12);
        CHECK_NEAR(q->wire_recv_ns_per_byte, 5.875, 1e-12);
        CHECK_NEAR(q->result_bytes, 321, 1e-12);
        CHECK_NEAR(q->codecs[FP_CODEC_INT8].encode_ns_per_byte, 0.09, 1e-12);
        CHECK_OK(fp_profile_derive(q, 0.25, "a device 4x slower", &d));
        if (d) {
            CHECK_NEAR(d->layer_s[3], q->layer_s[3] * 4, 1e-12);
            CHECK_NEAR(d->prepare_s, 0.0168, 1e-12);
            CHECK_NEAR(d->finish_s, 0.0052, 1e-12);
            CHECK(d->speed == 0.25 && !strcmp(d->device, "a device 4x slower"));
            /* Bytes are the model's; CPU cost scales with the speed. */
            CHECK(d->codecs[FP_CODEC_INT8].measured && d->codecs[FP_CODEC_INT8].bytes &&
                  d->codecs[FP_CODEC_INT8].bytes != q->codecs[FP_CODEC_INT8].bytes &&
                  d->codecs[FP_CODEC_INT8].bytes[4] == q->codecs[FP_CODEC_INT8].bytes[4]);
            CHECK_NEAR(d->codecs[FP_CODEC_INT8].cost_ns_per_byte, q->codecs[FP_CODEC_INT8].cost_ns_per_byte * 4,
                       1e-9);
            CHECK_NEAR(d->codecs[FP_CODEC_INT8].encode_ns_per_byte, 0.36, 1e-9);
            CHECK_NEAR(d->wire_ns_per_byte, 1.2, 1e-12);
            CHECK_NEAR(d->wire_ns_per_packet, 108000, 1e-9);
            CHECK_NEAR(d->wire_send_ns_per_byte, 3.4, 1e-12);
            CHECK_NEAR(d->wire_recv_ns_per_byte, 23.5, 1e-12);
        }
    }
    fp_profile *bad = NULL;
    CHECK_ERR(fp_profile_parse("{\"fogpipe_profile\": 1, \"model\": {\"layers\": 2}, \"layers_ms\": [1]}", "b.json", &bad),
              FP_ECORRUPT);
    CHECK_MSG_HAS("list of 2 numbers");
    CHECK_ERR(fp_profile_parse("{\"fogpipe_profile\": 1, \"model\": {\"layers\": 2}, \"layers_ms\": [1, -3]}", "b.json", &bad),
              FP_ECORRUPT);
    CHECK_MSG_HAS("layers_ms[1]");
    CHECK_ERR(fp_profile_parse("{\"fogpipe_profile\": 7}", "b.json", &bad), FP_EUNSUPPORTED);
    CHECK(bad == NULL);
    /* Codec measurements: optional, but checked when present. */
    CHECK_OK(fp_profile_parse("{\"fogpipe_profile\": 1, \"model\": {\"layers\": 2}, \"layers_ms\": [1, 2]}", "old.json",
                              &bad));
    if (bad) CHECK(!bad->codec_input[0] && !bad->codecs[FP_CODEC_NONE].measured && !bad->codecs[FP_CODEC_NONE].bytes &&
                   bad->wire_ns_per_byte == 0);
    fp_profile_destroy(bad);
    bad = NULL;
    /* Profiles written before the encode/decode split: half each. */
    CHECK_OK(fp_profile_parse("{\"fogpipe_profile\": 1, \"model\": {\"layers\": 2}, \"layers_ms\": [1, 2], "
                              "\"codec_input\": \"x\", \"codecs\": {\"fp16\": {\"ratio\": 0.5, "
                              "\"cost_ns_per_byte\": 0.3, \"bytes\": [1, 2, 3]}}}", "old.json", &bad));
    if (bad) CHECK_NEAR(bad->codecs[FP_CODEC_FP16].encode_ns_per_byte, 0.15, 1e-12);
    fp_profile_destroy(bad);
    bad = NULL;
    static const char *const broken[][2] = {
        {"\"codec_input\": \"x\", \"codecs\": {\"int8\": {\"ratio\": 0.3, \"cost_ns_per_byte\": 1, \"bytes\": [1, 2]}}",
         "codecs.int8.bytes must be a list of 3 numbers"},
        {"\"codec_input\": \"x\", \"codecs\": {\"int9\": {}}", "unknown codec \"int9\""},
        {"\"codec_input\": \"x\", \"codecs\": {\"fp16\": {\"ratio\": 0.5, \"bytes\": [1, 2, 3]}}",
         "cost_ns_per_byte"},
        {"\"codec_input\": \"x\", \"codecs\": {\"fp16\": {\"ratio\": 0.5, \"cost_ns_per_byte\": 1, \"bytes\": [1, 2.5, 3]}}",
         "codecs.fp16.bytes[1]"},
        {"\"codecs\": {\"fp16\": {\"ratio\": 0.5, \"cost_ns_per_byte\": 1, \"bytes\": [1, 2, 3]}}", "needs \"codec_input\""},
        {"\"prepare_ms\": -1", "prepare_ms must be in"},
        {"\"finish_ms\": \"2\"", "finish_ms must be a number"},
        {"\"wire_ns_per_byte\": -0.5", "wire_ns_per_byte must be in"},
        {"\"wire_ns_per_packet\": 1e10", "wire_ns_per_packet must be in"},
        {"\"result_bytes\": -1", "result_bytes must be in"},
        {"\"codec_input\": \"x\", \"codecs\": {\"fp16\": {\"ratio\": 0.5, \"cost_ns_per_byte\": 1, "
         "\"encode_ns_per_byte\": 2, \"bytes\": [1, 2, 3]}}", "encode_ns_per_byte must be in"},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        char doc[512];
        snprintf(doc, sizeof doc, "{\"fogpipe_profile\": 1, \"model\": {\"layers\": 2}, \"layers_ms\": [1, 2], %s}",
                 broken[i][0]);
        CHECK_ERR(fp_profile_parse(doc, "b.json", &bad), FP_ECORRUPT);
        CHECK_MSG_HAS(broken[i][1]);
        CHECK(bad == NULL);
    }
done:
    fp_profile_destroy(p);
    fp_profile_destroy(q);
    fp_profile_destroy(d);
    fp_net_destroy(net);
}

/* A plan written and read back, then a corpus of broken plans. */
static void test_plan_files(void)
{
    fp_part_graph *g = NULL;
    fp_cluster *c = NULL;
    double times[4];
    fp_part_problem p;
    fp_plan plan, back;
    small_problem(&g, &c, times, &p, 8e6);
    if (!g || !c) goto done;
    p.codecs = FP_CODECS_DEFAULT;
    int cuts[1] = {1};
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    snprintf(plan.cfg, sizeof plan.cfg, "m.cfg");
    snprintf(plan.cfg_hash, sizeof plan.cfg_hash, "fnv1a64:00000000000000aa");
    char *text = NULL;
    CHECK_OK(fp_plan_to_json(&plan, &text));
    if (!text) goto done;
    fp_plan_expect ex = {4, "fnv1a64:00000000000000aa", NULL, c};
    CHECK_OK(fp_plan_parse(text, "p.json", &ex, &back));
    CHECK(back.n_stages == 2 && back.stages[1].first == 2 && back.stages[1].last == 3);
    CHECK(!strcmp(back.devices[back.stages[1].devices[0]].name, "dev1"));
    CHECK(back.stages[0].out_codec == plan.stages[0].out_codec);
    CHECK(back.stages[0].out.n_tensors == 1 && back.stages[0].out.tensors[0] == 1);
    CHECK_NEAR(back.bottleneck_s, plan.bottleneck_s, 1e-6);
    CHECK_NEAR(back.images_per_min, plan.images_per_min, 1e-3);
    /* A different model. */
    fp_plan_expect other = {4, "fnv1a64:00000000000000bb", NULL, NULL};
    CHECK_ERR(fp_plan_parse(text, "p.json", &other, &back), FP_EINVAL);
    CHECK_MSG_HAS("the plan is for model m.cfg (cfg hash fnv1a64:00000000000000aa), but this cfg hashes to fnv1a64:00000000000000bb");
    fp_plan_expect more = {5, NULL, NULL, NULL};
    CHECK_ERR(fp_plan_parse(text, "p.json", &more, &back), FP_EINVAL);
    CHECK_MSG_HAS("4 layers, this one has 5");
    /* A cluster without dev1. */
    fp_cluster *one = NULL;
    CHECK_OK(fp_cluster_uniform(1, 1e6, 0, 1, 0, 0, &one));
    fp_plan_expect small = {0, NULL, NULL, one};
    CHECK_ERR(fp_plan_parse(text, "p.json", &small, &back), FP_EINVAL);
    CHECK_MSG_HAS("stages[1]: device \"dev1\" is not in the cluster (devices: dev0)");
    fp_cluster_destroy(one);
    free(text);

    static const char *head = "{\"fogpipe_plan\": 1, \"model\": {\"cfg\": \"m.cfg\", \"cfg_hash\": \"h\", \"layers\": 10}, ";
    static const struct {
        const char *stages;
        fp_status st;
        const char *msg;
    } bad[] = {
        {"\"stages\": [{\"layers\": [0, 4], \"device\": \"a\", \"out\": {\"codec\": \"none\"}}, "
         "{\"layers\": [3, 9], \"device\": \"b\", \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "stage 1 starts at layer 3 but stage 0 ends at layer 4 (layers 3..4 overlap)"},
        {"\"stages\": [{\"layers\": [0, 4], \"device\": \"a\", \"out\": {\"codec\": \"none\"}}, "
         "{\"layers\": [6, 9], \"device\": \"b\", \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "layers 5..5 are in no stage (stage 1 starts at layer 6)"},
        {"\"stages\": [{\"layers\": [0, 7], \"device\": \"a\", \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "layers 8..9 are in no stage (the last stage ends at layer 7)"},
        {"\"stages\": [{\"layers\": [1, 9], \"device\": \"a\", \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "layers 0..0 are in no stage"},
        {"\"stages\": [{\"layers\": [0, 12], \"device\": \"a\", \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "stages[0].layers [0, 12] is not a range within 0..9"},
        {"\"stages\": [{\"layers\": [0, 4], \"device\": \"a\", \"out\": {\"codec\": \"none\"}}, "
         "{\"layers\": [5, 9], \"device\": \"a\", \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "device \"a\" is used by stage 0 and stage 1"},
        {"\"stages\": [{\"layers\": [0, 9], \"device\": \"a\", \"out\": {\"codec\": \"fp8\"}}]}",
         FP_ECORRUPT, "stages[0].out.codec: unknown codec \"fp8\""},
        {"\"stages\": [{\"layers\": [0, 9], \"device\": \"a\"}]}", FP_ECORRUPT, "stages[0]: missing \"out\""},
        {"\"stages\": [{\"layers\": [0, 9], \"out\": {\"codec\": \"none\"}}]}", FP_ECORRUPT,
         "stages[0]: missing \"device\""},
        {"\"stages\": [{\"layers\": [0, 9], \"device\": \"a\", \"replicas\": 2, \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "replicas is 2 but no \"devices\" list"},
        {"\"stages\": [{\"layers\": [0, 9], \"device\": \"a\", \"devices\": [\"b\", \"a\"], \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "stages[0].device is \"a\" but devices[0] is \"b\""},
        {"\"stages\": [{\"layers\": [0, 9], \"device\": \"gateway\", \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "\"gateway\" cannot run a stage"},
        {"\"stages\": [{\"layers\": [0, 9], \"device\": \"a\", \"out\": {\"codec\": \"none\", \"tensors\": [12]}}]}",
         FP_ECORRUPT, "stages[0].out.tensors[0] must be a layer index in -1..9"},
        {"\"stages\": [{\"layers\": [0, 9], \"device\": \"a\", \"colour\": 1, \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "stages[0]: unknown key \"colour\""},
        {"\"stages\": [{\"layers\": \"0-9\", \"device\": \"a\", \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "stages[0].layers must be [first, last]"},
        {"\"stages\": []}", FP_ECORRUPT, "\"stages\" must be a list of 1..32 stages"},
        {"\"stages\": [{\"layers\": [0, 9], \"device\": \"a\", \"compute_ms\": \"fast\", \"out\": {\"codec\": \"none\"}}]}",
         FP_ECORRUPT, "stages[0].compute_ms must be a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s%s", head, bad[i].stages);
        fp_status st = fp_plan_parse(buf, "p.json", NULL, &back);
        CHECK_MSG(st == bad[i].st, "case %zu: got %s (%s)", i, fp_status_name(st), fp_last_error());
        CHECK_MSG(strstr(fp_last_error(), bad[i].msg) != NULL, "case %zu: message \"%s\" lacks \"%s\"", i,
                  fp_last_error(), bad[i].msg);
    }
    CHECK_ERR(fp_plan_parse("{\"fogpipe_plan\": 2}", "p.json", NULL, &back), FP_EUNSUPPORTED);
    CHECK_MSG_HAS("plan version 2 (this build reads version 1)");
    CHECK_ERR(fp_plan_parse("{\"fogpipe_plan\": 1, \"stages\": []}", "p.json", NULL, &back), FP_ECORRUPT);
    CHECK_MSG_HAS("missing \"model\"");
    CHECK_ERR(fp_plan_parse("{\"fogpipe_plan\": 1,", "p.json", NULL, &back), FP_ECORRUPT);
    CHECK_MSG_HAS("not valid JSON");
done:
    fp_part_graph_destroy(g);
    fp_cluster_destroy(c);
}

/* Memory accounting on a chain: weights + peak live + buffers + overhead. */
static void test_stage_memory(void)
{
    fp_part_graph *g = NULL;
    fp_cluster *c = NULL;
    double times[3] = {1, 1, 1};
    CHECK_OK(fp_part_graph_create(3, &g));
    CHECK_OK(fp_cluster_uniform(2, 1e9, 0, 1, 0, 1, &c));
    if (!g || !c) goto done;
    g->input_bytes = 1000;
    g->input.c = 1;
    const uint64_t out[3] = {200, 30, 4}, w[3] = {10000, 0, 500}, scr[3] = {7, 0, 0};
    for (int l = 0; l < 3; l++) {
        g->layers[l].out_bytes = out[l];
        g->layers[l].weight_bytes = w[l];
        g->layers[l].scratch_bytes = scr[l];
    }
    c->overhead_bytes = 1;
    fp_part_problem p;
    fp_part_problem_init(&p, g, c);
    p.input_bytes = 100;
    p.layer_s[0] = p.layer_s[1] = times;
    p.replicas = 0;
    fp_plan plan;
    int cuts[1] = {0};
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    /* Stage 0: weights 10000 + live (input 1000 + out0 200) + scratch 7 +
     * receive 100 (encoded image) + send 200 + overhead 1. */
    CHECK(plan.stages[0].memory_bytes == 10000 + 1200 + 7 + 100 + 200 + 1);
    /* Stage 1: weights 500 + live max(200+30, 30+4) + receive 200 + send 4 + 1. */
    CHECK(plan.stages[1].memory_bytes == 500 + 230 + 200 + 4 + 1);
    c->devices[0].memory_bytes = 11000;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK(!plan.feasible && !plan.stages[0].fits && plan.stages[1].fits);
    /* Optimal then puts the big stage on dev1. */
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_OPTIMAL, NULL, 0, &plan));
    CHECK(plan.feasible);
    for (int s = 0; s < plan.n_stages; s++)
        CHECK_MSG(plan.stages[s].first != 0 || plan.stages[s].devices[0] == 1 || plan.stages[s].n_devices > 1,
                  "stage %d: layers %d..%d on device %d (+%d)", s, plan.stages[s].first, plan.stages[s].last,
                  plan.stages[s].devices[0], plan.stages[s].n_devices - 1);
done:
    fp_part_graph_destroy(g);
    fp_cluster_destroy(c);
}

/* Measured codec bytes replace the assumed ratio, per tensor of each cut,
 * unless the cluster file sets the codec's parameters. */
static void test_measured_codecs(void)
{
    fp_part_graph *g = NULL;
    fp_cluster *c = NULL;
    fp_profile *prof = NULL;
    double times[4];
    fp_part_problem p;
    small_problem(&g, &c, times, &p, 1e6);
    CHECK_OK(fp_profile_parse("{\"fogpipe_profile\": 1, \"model\": {\"layers\": 4}, \"layers_ms\": [1, 1, 1, 0],"
                              " \"codec_input\": \"pseudo-random\", \"codecs\": {"
                              " \"int8\": {\"ratio\": 0.1, \"cost_ns_per_byte\": 2, \"bytes\": [40, 7000, 150, 30, 5]}}}",
                              "m.json", &prof));
    if (!g || !c || !prof) goto done;
    p.codecs = FP_CODEC_BIT(FP_CODEC_INT8);
    c->links[0][1].codecs = c->links[1][0].codecs = FP_CODECS_ALL;
    c->links[1][2].codecs = c->links[2][1].codecs = FP_CODECS_ALL;
    int cuts[1] = {0};
    fp_plan plan;
    /* Assumed: 100000 × 0.25 + 1 channel × 8 bytes. */
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[0].out_bytes, 100000 * 0.25 + 8, 1e-9);
    CHECK_NEAR(plan.stages[0].out_s, (100000 * 0.25 + 8) * FR * 8 / 1e6, 1e-12);
    CHECK_NEAR(plan.stages[0].compute_s, 1 + 100000 * 0.25e-9, 1e-15);
    /* Measured: layer 0's int8 payload is 7000 bytes, 2 ns per raw byte
     * (no split given: half each way). */
    p.measured = prof;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[0].out_bytes, 7000, 1e-9);
    CHECK_NEAR(plan.stages[0].out_s, 7000 * FR * 8 / 1e6, 1e-12);
    CHECK_NEAR(plan.stages[0].compute_s, 1 + 100000 * 1e-9, 1e-15);
    CHECK_NEAR(plan.stages[1].compute_s, 2.001 + 100000 * 1e-9, 1e-15);
    /* A measured split: 0.5 ns to encode, 1.5 to decode. */
    prof->codecs[FP_CODEC_INT8].encode_ns_per_byte = 0.5;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[0].compute_s, 1 + 100000 * 0.5e-9, 1e-15);
    CHECK_NEAR(plan.stages[1].compute_s, 2.001 + 100000 * 1.5e-9, 1e-15);
    CHECK_NEAR(plan.stages[1].out_bytes, 5, 1e-9); /* the head to the gateway */
    /* A profiled result size replaces it, whatever the codec. */
    p.result_bytes = 700;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[1].out_bytes, 700, 1e-9);
    CHECK_NEAR(plan.stages[1].out_s, 700 * FR * 8 / 1e6, 1e-12);
    p.result_bytes = -1;
    CHECK_ERR(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan), FP_EINVAL);
    CHECK_MSG_HAS("result bytes");
    p.result_bytes = 0;
    /* The cut after layer 1 carries only layer 1's output. */
    cuts[0] = 1;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[0].out_bytes, 150, 1e-9);
    /* A codec the profile did not measure keeps its assumed ratio. */
    p.codecs = FP_CODEC_BIT(FP_CODEC_FP16);
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[0].out_bytes, 1000 * 0.5, 1e-9);
    /* A cluster file's parameters beat the measurements. */
    p.codecs = FP_CODEC_BIT(FP_CODEC_INT8);
    c->codecs_set = FP_CODEC_BIT(FP_CODEC_INT8);
    c->codecs[FP_CODEC_INT8].ratio = 0.5;
    c->codecs[FP_CODEC_INT8].channel_bytes = 0;
    CHECK_OK(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan));
    CHECK_NEAR(plan.stages[0].out_bytes, 500, 1e-9);
    /* Measurements of another layer count are refused. */
    c->codecs_set = 0;
    prof->n_layers = 5;
    CHECK_ERR(fp_part_plan(&p, FP_STRATEGY_CUTS, cuts, 1, &plan), FP_EINVAL);
    CHECK_MSG_HAS("codec measurements cover 5 layers");
    prof->n_layers = 4;
done:
    fp_profile_destroy(prof);
    fp_part_graph_destroy(g);
    fp_cluster_destroy(c);
}

TEST_LIST = {
    {"rates_and_codecs", test_rates_and_codecs},
    {"cuts_on_a_dag", test_cuts_on_a_dag},
    {"optimal_matches_exhaustive", test_optimal_matches_exhaustive},
    {"strategies", test_strategies},
    {"codecs_in_plans", test_codecs_in_plans},
    {"cluster_file", test_cluster_file},
    {"cluster_corpus", test_cluster_corpus},
    {"profile_json", test_profile_json},
    {"plan_files", test_plan_files},
    {"stage_memory", test_stage_memory},
    {"measured_codecs", test_measured_codecs},
    {NULL, NULL},
};
