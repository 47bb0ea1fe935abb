/* cmd_plan.c — `fogpipe plan`: splits a model into pipeline stages for a
 * cluster (a file, or a homogeneous one from flags) with a strategy, prints
 * the table, and writes the plan file; also checks existing plans. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common/common.h"
#include "gw_side.h"
#include "part_cli.h"
#include "pipeline/pipeline.h"

static fp_flag fp_plan_flags[] = {
    {"cfg", 'c', "PATH", "darknet .cfg file", NULL},
    {"weights", 'w', "PATH", "darknet .weights file (hashed into the plan, whole and per stage; not needed to plan)", NULL},
    {"model", 'm', "PATH", "TF.js weights manifest (instead of --cfg)", NULL},
    {"input-size", 's', "S", "input side for --model (default 416)", NULL},
    {"profile", 'p', "PATH", "per-layer profile (fogpipe profile); overrides the cluster file's", NULL},
    {"cluster", 'C', "PATH", "cluster description (JSON, docs/cluster-format.md)", NULL},
    {"devices", 'n', "N", "instead of --cluster: N identical devices dev0..devN-1", NULL},
    {"link", 'l', "RATE", "with --devices: every link's rate, e.g. 20mbit, 1gbit, 500kbit", NULL},
    {"latency", 0, "MS", "with --devices: per-message link latency in ms (default 1)", NULL},
    {"speed", 0, "X", "with --devices: device speed relative to the profile (default 1)", NULL},
    {"memory", 0, "MB", "with --devices: memory limit per device in MiB (default: none)", NULL},
    {"threads", 't', "N", "with --devices: kernel threads per device (default: the profile's)", NULL},
    {"strategy", 'S', "S", "by-type, equal-flops, optimal (default) or all (compare them)", NULL},
    {"objective", 0, "O", "throughput (default: least bottleneck) or latency (least sum)", NULL},
    {"cuts", 0, "LIST", "evaluate this partition: cut after these layers, e.g. 5,9", NULL},
    {"codec", 0, "LIST", "codecs cuts may use: auto (default: all each link offers) or e.g. none,fp16", NULL},
    {"input-bytes", 0, "N", "bytes per frame from the gateway to stage 0 (default: a JPEG at 0.1 byte per value)", NULL},
    {"input-image", 0, "PATH", "instead of --input-bytes: the bytes the gateway sends for this image (a JPEG "
                               "re-encoded losslessly when that is smaller, as the gateway does)", NULL},
    {"no-replicas", 0, NULL, "optimal: do not replicate stages on spare devices", NULL},
    {"explain", 'e', NULL, "show the runners-up and why the chosen cuts beat them", NULL},
    {"json", 'j', NULL, "print the plan as JSON instead of the table", NULL},
    {"output", 'o', "PATH", "write the plan file", NULL},
    {"check", 0, "PATH", "validate a plan file against the model (and --cluster) and print it", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_plan_cmd = {
    "plan", "(--cfg PATH | --model PATH) --profile PATH (--cluster PATH | --devices N --link RATE)\n"
            "       [--strategy S] [--objective O] [--cuts LIST] [--codec LIST] [--explain] [--json] [-o PATH]",
    "Splits a network into pipeline stages over a cluster and predicts the\n"
    "throughput (images/min) and latency from measured per-layer times, link\n"
    "rates and codecs. Prints a table; writes the plan with -o (docs/plan-format.md).",
    "Strategies: by-type (the prototype's split: the layers before the first\n"
    "connected layer | the rest, on 2 devices), equal-flops (all devices, cuts\n"
    "balancing FLOPs / speed, ignoring links and memory), optimal (exact search\n"
    "over cuts, devices and codecs minimising the slowest stage or link, within\n"
    "each device's memory; uses fewer devices when links are slow and gives\n"
    "spare devices to the slowest stage as replicas), all (the three side by\n"
    "side; -o/--json then give the optimal plan). --cuts evaluates a partition\n"
    "by hand on the first devices. Compute time on a device = profile time /\n"
    "its speed. Codec bytes and costs come from the profile's measurements\n"
    "(fogpipe profile encodes the model's feature maps); a cluster file's\n"
    "\"codecs\" override them, and profiles without measurements fall back to\n"
    "assumed ratios (docs/plan-format.md).",
    fp_plan_flags, 0, 0};

/* Parses "5,9" into cuts (at most FP_PART_MAX_DEVICES - 1). */
static int fp_parse_cuts(const char *s, int *cuts, int *n)
{
    *n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v >= FP_MAX_LAYERS || (*end && *end != ',') || *n >= FP_PART_MAX_DEVICES - 1) {
            fprintf(stderr, "fogpipe plan: --cuts: expected layer indices separated by commas, e.g. 5,9 (got \"%s\")\n", s);
            return FP_EXIT_USAGE;
        }
        cuts[(*n)++] = (int)v;
        s = *end ? end + 1 : end;
    }
    if (!*n) {
        fprintf(stderr, "fogpipe plan: --cuts: empty list\n");
        return FP_EXIT_USAGE;
    }
    return 0;
}

static void fp_fmt_bytes(double b, char *buf, size_t n)
{
    if (b >= 1e6) snprintf(buf, n, "%.2f MB", b / 1e6);
    else if (b >= 1e3) snprintf(buf, n, "%.1f kB", b / 1e3);
    else snprintf(buf, n, "%.0f B", b);
}

/* The readable table of a plan. */
static void fp_print_plan(const fp_plan *p)
{
    char b[32];
    printf("plan: %s, objective %s, %s: %d stage%s\n", fp_strategy_name(p->strategy), fp_objective_name(p->objective),
           p->cfg, p->n_stages, p->n_stages > 1 ? "s" : "");
    printf("%-6s %-9s %-22s %7s %11s %10s  %-9s %10s %11s\n", "stage", "layers", "device (replicas)", "threads",
           "compute ms", "memory MB", "out codec", "out bytes", "transfer ms");
    fp_fmt_bytes(p->input_bytes, b, sizeof b);
    printf("%-6s %-9s %-22s %7s %11s %10s  %-9s %10s %11.2f\n", "input", "", "gateway (image)", "", "", "", "jpeg", b,
           p->input_s * 1e3);
    for (int s = 0; s < p->n_stages; s++) {
        const fp_plan_stage *st = &p->stages[s];
        char lr[24], dv[96];
        snprintf(lr, sizeof lr, "%d-%d", st->first, st->last);
        size_t k = (size_t)snprintf(dv, sizeof dv, "%s", p->devices[st->devices[0]].name);
        for (int r = 1; r < st->n_devices && k < sizeof dv; r++)
            k += (size_t)snprintf(dv + k, sizeof dv - k, "+%s", p->devices[st->devices[r]].name);
        fp_fmt_bytes(st->out_bytes, b, sizeof b);
        printf("%-6d %-9s %-22s %7d %11.2f %10.1f%s %-9s %10s %11.2f%s\n", s, lr, dv, p->devices[st->devices[0]].threads,
               st->compute_s * 1e3, (double)st->memory_bytes / 1048576.0, st->fits ? " " : "!",
               fp_codec_name(st->out_codec), b, st->out_s * 1e3, s + 1 == p->n_stages ? "  (to gateway)" : "");
    }
    printf("predicted: %.1f images/min, latency %.1f ms; bottleneck %.2f ms: %s\n", p->images_per_min,
           p->latency_s * 1e3, p->bottleneck_s * 1e3, p->bottleneck);
    if (!p->feasible) printf("warning: stages marked ! do not fit their devices' memory\n");
}

/* "8,14" style list of a plan's cuts, and its codecs. */
static void fp_plan_cuts(const fp_plan *p, char *cuts, size_t nc, char *codecs, size_t nk)
{
    size_t a = 0, k = 0;
    cuts[0] = codecs[0] = '\0';
    for (int s = 0; s + 1 < p->n_stages; s++) {
        a += (size_t)snprintf(cuts + a, a < nc ? nc - a : 0, "%s%d", s ? "," : "", p->stages[s].last);
        k += (size_t)snprintf(codecs + k, k < nk ? nk - k : 0, "%s%s", s ? "," : "", fp_codec_name(p->stages[s].out_codec));
    }
    if (!cuts[0]) snprintf(cuts, nc, "-");
    if (!codecs[0]) snprintf(codecs, nk, "-");
}

/* The bytes the gateway sends stage 0 for an image file (fp_gw_input_make). */
static int fp_sent_image_bytes(const char *path, double *bytes)
{
    char *d = NULL;
    size_t len = 0, n = 0;
    if (fpi_read_file(path, 256u << 20, &d, &len)) return fp_cli_fail();
    free(fp_gw_smaller_jpeg((const uint8_t *)d, len, path, &n));
    *bytes = (double)n;
    fpi_free(d);
    return 0;
}

/* Loads the profile of every device (its own, or the base one) into layer_s. */
static int fp_load_profiles(fp_cluster *c, const char *base_path, const fp_part_graph *g, const char *hash,
                            fp_profile **profs, int *n_profs, fp_part_problem *pb)
{
    const char *paths[FP_PART_MAX_DEVICES + 1];
    for (int d = 0; d < c->n_devices; d++) {
        const char *path = c->devices[d].profile[0] ? c->devices[d].profile : base_path;
        if (!path || !path[0]) {
            fprintf(stderr, "fogpipe plan: device %s has no profile: give --profile (measure one with "
                            "fogpipe profile) or name one in the cluster file\n", c->devices[d].name);
            return FP_EXIT_USAGE;
        }
        int k = 0;
        while (k < *n_profs && strcmp(paths[k], path)) k++;
        if (k == *n_profs) {
            if (fp_profile_load(path, &profs[k]) || fp_profile_check(profs[k], path, g->n_layers, hash)) {
                if (profs[k]) (*n_profs)++; /* so the caller frees it */
                return fp_cli_fail();
            }
            paths[k] = path;
            (*n_profs)++;
        }
        pb->layer_s[d] = profs[k]->layer_s;
        pb->prepare_s[d] = profs[k]->prepare_s;
        pb->finish_s[d] = profs[k]->finish_s;
        /* measured over a real link (`fogpipe link`): those, and no separate wake-ups */
        const fp_profile *pk = profs[k];
        pb->wire_ns_per_byte[d] = pk->wire_send_ns_per_byte > 0 ? pk->wire_send_ns_per_byte : pk->wire_ns_per_byte;
        pb->wire_recv_ns_per_byte[d] = pk->wire_recv_ns_per_byte;
        pb->wire_ns_per_packet[d] = pk->wire_ns_per_packet;
        if (!c->devices[d].threads) c->devices[d].threads = profs[k]->threads;
    }
    return 0;
}

/* Prints --explain's runners-up. */
static int fp_print_explain(const fp_part_problem *pb, const fp_plan *plan)
{
    fp_part_alt alts[96];
    int n = 0;
    if (fp_part_explain(pb, plan, alts, 96, &n)) return fp_cli_fail();
    int lat = pb->objective == FP_OBJECTIVE_LATENCY;
    printf("\nwhy this plan: it has %s %.2f ms; the runners-up (same cost model):\n",
           lat ? "latency" : "bottleneck", (lat ? plan->latency_s : plan->bottleneck_s) * 1e3);
    printf("  %-58s %12s %11s  %s\n", "alternative", lat ? "latency ms" : "bottleneck", "images/min", "limited by");
    for (int i = 0; i < n; i++) {
        const fp_part_alt *a = &alts[i];
        if (!a->feasible) {
            printf("  %-58.58s %12s %11s  %s\n", a->what, "-", "-", a->bottleneck);
            continue;
        }
        printf("  %-58.58s %12.2f %11.1f  %s\n", a->what, (lat ? a->latency_s : a->bottleneck_s) * 1e3,
               60.0 / a->bottleneck_s, a->bottleneck);
    }
    return 0;
}

int fp_cmd_plan(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_plan_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const fp_command *cmd = &fp_plan_cmd;
    const char *cluster_path = fp_flag_get(cmd, "cluster"), *link = fp_flag_get(cmd, "link");
    const char *strategy = fp_flag_get(cmd, "strategy"), *out = fp_flag_get(cmd, "output");
    const char *cuts_s = fp_flag_get(cmd, "cuts"), *check = fp_flag_get(cmd, "check");
    long devices = 0, threads = 0;
    double latency_ms = 1, speed = 1, memory_mb = 0, input_bytes = -1;
    int cuts[FP_PART_MAX_DEVICES], n_cuts = 0, all = 0;
    fp_strategy strat = FP_STRATEGY_OPTIMAL;
    fp_objective obj = FP_OBJECTIVE_THROUGHPUT;
    uint32_t codecs = FP_CODECS_ALL;
    if ((rc = fp_flag_int(cmd, "devices", 1, FP_PART_MAX_DEVICES, &devices)) ||
        (rc = fp_flag_int(cmd, "threads", 1, 256, &threads)) ||
        (rc = fp_flag_float(cmd, "latency", 0, 1e6, &latency_ms)) ||
        (rc = fp_flag_float(cmd, "speed", 1e-6, 1e6, &speed)) ||
        (rc = fp_flag_float(cmd, "memory", 1, 1 << 24, &memory_mb)) ||
        (rc = fp_flag_float(cmd, "input-bytes", 0, 1e12, &input_bytes)))
        return rc;
    const char *input_image = fp_flag_get(cmd, "input-image");
    if (input_image && input_bytes >= 0) {
        fprintf(stderr, "fogpipe plan: --input-bytes and --input-image exclude each other\n");
        return FP_EXIT_USAGE;
    }
    if (input_image && (rc = fp_sent_image_bytes(input_image, &input_bytes))) return rc;
    if (cluster_path && (devices || link)) {
        fprintf(stderr, "fogpipe plan: --cluster and --devices/--link exclude each other\n");
        return FP_EXIT_USAGE;
    }
    if (!cluster_path && !check) {
        if (!devices) return fp_args_require(cmd, "cluster");
        if (!link) return fp_args_require(cmd, "link");
    }
    if (strategy && !strcmp(strategy, "all")) all = 1;
    else if (strategy && fp_strategy_parse(strategy, &strat)) {
        fprintf(stderr, "fogpipe plan: --strategy: %s\n", fp_last_error());
        return FP_EXIT_USAGE;
    }
    if (cuts_s) {
        if ((rc = fp_parse_cuts(cuts_s, cuts, &n_cuts))) return rc;
        if (strategy && !all && strat != FP_STRATEGY_CUTS) {
            fprintf(stderr, "fogpipe plan: --cuts evaluates a given partition; it does not go with --strategy %s\n", strategy);
            return FP_EXIT_USAGE;
        }
        if (!all) strat = FP_STRATEGY_CUTS;
    } else if (strat == FP_STRATEGY_CUTS) {
        return fp_args_require(cmd, "cuts");
    }
    if (fp_flag_get(cmd, "objective") && fp_objective_parse(fp_flag_get(cmd, "objective"), &obj)) {
        fprintf(stderr, "fogpipe plan: --objective: %s\n", fp_last_error());
        return FP_EXIT_USAGE;
    }
    if (fp_flag_get(cmd, "codec") && fp_codec_mask_parse(fp_flag_get(cmd, "codec"), &codecs)) {
        fprintf(stderr, "fogpipe plan: --codec: %s\n", fp_last_error());
        return FP_EXIT_USAGE;
    }

    fp_cli_model m;
    fp_net *net = NULL;
    fp_part_graph *g = NULL;
    fp_cluster *c = NULL;
    fp_profile *profs[FP_PART_MAX_DEVICES + 1] = {0};
    int n_profs = 0;
    fp_plan *plans = calloc(4, sizeof *plans);
    if (!plans) {
        fprintf(stderr, "fogpipe: out of memory\n");
        return FP_EXIT_FAIL;
    }
    if ((rc = fp_cli_model_load(cmd, 0, 1, &m, &net))) goto done;
    if (fp_part_graph_from_net(net, &g)) {
        rc = fp_cli_fail();
        goto done;
    }
    if (cluster_path) {
        if (fp_cluster_load(cluster_path, &c)) {
            rc = fp_cli_fail();
            goto done;
        }
    } else if (devices) {
        double bps = 0;
        if (fp_rate_parse(link, &bps)) {
            fprintf(stderr, "fogpipe plan: --link: %s\n", fp_last_error());
            rc = FP_EXIT_USAGE;
            goto done;
        }
        if (fp_cluster_uniform((int)devices, bps, latency_ms / 1e3, speed, (uint64_t)(memory_mb * 1048576.0),
                               (int)threads, &c)) {
            rc = fp_cli_fail();
            goto done;
        }
    }
    if (check) {
        fp_plan_expect ex = {g->n_layers, m.hash, m.weights ? m.weights_hash : NULL, c};
        if (fp_plan_load(check, &ex, &plans[0])) {
            rc = fp_cli_fail();
            goto done;
        }
        printf("%s: a valid plan for this model%s\n", check, c ? " and cluster" : "");
        fp_print_plan(&plans[0]);
        goto done;
    }
    const char *base = fp_flag_get(cmd, "profile");
    if (!base && c->profile[0]) base = c->profile;
    fp_part_problem pb;
    fp_part_problem_init(&pb, g, c);
    if ((rc = fp_load_profiles(c, base, g, m.hash, profs, &n_profs, &pb))) goto done;
    pb.objective = obj;
    pb.codecs = codecs;
    pb.replicas = !fp_flag_get(cmd, "no-replicas");
    if (input_bytes >= 0) pb.input_bytes = input_bytes;
    for (int i = 0; i < n_profs && !pb.measured; i++)
        if (profs[i]->codec_input[0]) pb.measured = profs[i];
    for (int i = 0; i < n_profs && !pb.result_bytes; i++) pb.result_bytes = profs[i]->result_bytes;
    if (!fp_flag_get(cmd, "json")) {
        if (pb.measured)
            printf("codecs: measured on %s by the profile of %s%s\n", pb.measured->codec_input,
                   pb.measured->device[0] ? pb.measured->device : pb.measured->cfg,
                   c->codecs_set ? " (the cluster file's codec parameters take precedence)" : "");
        else
            printf("codecs: %s (the profile has no codec measurements)\n",
                   c->codecs_set ? "the cluster file's parameters, else assumed defaults" : "assumed defaults");
        if (pb.prepare_s[0] > 0 || pb.finish_s[0] > 0)
            printf("per frame: stage 0 adds %.2f ms (image decode), the last stage %.2f ms (result), as profiled for %s "
                   "(divided by its speed)\n",
                   pb.prepare_s[0] * 1e3, pb.finish_s[0] * 1e3, c->devices[0].name);
        else
            printf("per frame: no image decode or result time (the profile was measured without --image)\n");
        if (pb.result_bytes > 0)
            printf("result: %.0f bytes of JSON per frame to the gateway, as profiled (--image)\n", pb.result_bytes);
        else
            printf("result: priced as the heads' tensors (the profile has no result size; profile with --image)\n");
        if (pb.wire_recv_ns_per_byte[0] > 0)
            printf("links: %.3f ns of CPU per byte sent and %.3f per byte received, measured over a link "
                   "(fogpipe link), as profiled for %s (divided by its speed)\n", pb.wire_ns_per_byte[0],
                   pb.wire_recv_ns_per_byte[0], c->devices[0].name);
        else if (pb.wire_ns_per_byte[0] > 0)
            printf("links: %.3f ns of CPU per byte at each end and %.1f us per packet a slow link brings, as "
                   "profiled for %s (divided by its speed)\n", pb.wire_ns_per_byte[0], pb.wire_ns_per_packet[0] * 1e-3,
                   c->devices[0].name);
        else
            printf("links: their ends' CPU is not counted (the profile did not measure it)\n");
    }

    if (all) {
        static const fp_strategy order[4] = {FP_STRATEGY_BY_TYPE, FP_STRATEGY_EQUAL_FLOPS, FP_STRATEGY_OPTIMAL,
                                             FP_STRATEGY_CUTS};
        int n = n_cuts ? 4 : 3, best = -1;
        printf("%s on %d device%s; %s\n", m.model ? m.model : m.cfg, c->n_devices, c->n_devices > 1 ? "s" : "",
               cluster_path ? cluster_path : "flags");
        printf("%-12s %6s %-14s %-16s %12s %11s %11s  %s\n", "strategy", "stages", "cuts after", "codecs",
               "bottleneck", "images/min", "latency ms", "limited by");
        for (int i = 0; i < n; i++) {
            fp_status st = fp_part_plan(&pb, order[i], cuts, n_cuts, &plans[i]);
            if (st) {
                printf("%-12s %s\n", fp_strategy_name(order[i]), fp_last_error());
                continue;
            }
            if (order[i] == FP_STRATEGY_OPTIMAL) best = i;
            char cs[128], ks[128];
            fp_plan_cuts(&plans[i], cs, sizeof cs, ks, sizeof ks);
            int rep = 0;
            for (int s = 0; s < plans[i].n_stages; s++) rep += plans[i].stages[s].n_devices - 1;
            char stages[16];
            snprintf(stages, sizeof stages, rep ? "%d+%dr" : "%d", plans[i].n_stages, rep);
            printf("%-12s %6s %-14s %-16s %9.1f ms %11.1f %11.1f  %s%s\n", fp_strategy_name(order[i]), stages, cs, ks,
                   plans[i].bottleneck_s * 1e3, plans[i].images_per_min, plans[i].latency_s * 1e3,
                   plans[i].bottleneck, plans[i].feasible ? "" : " (does not fit memory)");
        }
        if (best < 0) {
            rc = FP_EXIT_FAIL;
            goto done;
        }
        plans[0] = plans[best];
    } else if (fp_part_plan(&pb, strat, cuts, n_cuts, &plans[0])) {
        rc = fp_cli_fail();
        goto done;
    }
    fp_plan *plan = &plans[0];
    fp_cli_model_to_plan(&m, plan);
    /* each stage's weights blob hashed, so a stage can be sent only its own (--weights-from) */
    if ((m.weights || m.model) && ((m.weights && fp_net_load_weights(net, m.weights)) ||
                                   fpp_plan_hash_stage_weights(plan, net))) {
        rc = fp_cli_fail();
        goto done;
    }
    if (fp_flag_get(cmd, "json")) {
        char *text = NULL;
        if (fp_plan_to_json(plan, &text)) {
            rc = fp_cli_fail();
            goto done;
        }
        puts(text);
        free(text);
    } else if (!all) {
        fp_print_plan(plan);
    }
    if (fp_flag_get(cmd, "explain") && (rc = fp_print_explain(&pb, plan))) goto done;
    if (out) {
        if (fp_plan_save(plan, out)) {
            rc = fp_cli_fail();
            goto done;
        }
        fprintf(stderr, "fogpipe: wrote %s\n", out);
    }
done:
    for (int i = 0; i < n_profs; i++) fp_profile_destroy(profs[i]);
    fp_cluster_destroy(c);
    fp_part_graph_destroy(g);
    fp_net_destroy(net);
    free(plans);
    return rc;
}
