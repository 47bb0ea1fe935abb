/* cmd_bench.c — `fogpipe bench`: times a whole network in-process: median
 * milliseconds per image after warm-up passes, with the kernels in use and
 * the process's peak memory next to what the network holds. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "commands.h"
#include "common/common.h"
#include "engine/fast/fast.h"
#include "part_cli.h"

static fp_flag fp_bench_flags[] = {
    {"cfg", 'c', "PATH", "darknet .cfg file", NULL},
    {"weights", 'w', "PATH", "darknet .weights file (default: fixed-seed random weights)", NULL},
    {"model", 'm', "PATH", "TF.js weights manifest (instead of --cfg), e.g. the tiny face detector", NULL},
    {"input-size", 's', "S", "input side for --model (default 416)", NULL},
    {"threads", 't', "N", "kernel threads (default 1)", NULL},
    {"iters", 'n', "N", "timed passes (default 10)", NULL},
    {"warmup", 0, "N", "untimed passes first (default 2)", NULL},
    {"json", 0, NULL, "print one JSON object instead of a line", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_bench_cmd = {
    "bench", "(--cfg PATH [--weights PATH] | --model PATH [--input-size S]) [--threads N] [--iters N] [--json]",
    "Times a full forward pass of a network: the median, minimum and maximum milliseconds\n"
    "per image over --iters passes after --warmup passes, the mean (their wall time over\n"
    "--iters: the throughput, which the median does not show under a CPU quota),\n"
    "GFLOP/s at the median (operations counted as direct convolutions do them: with\n"
    "Winograd's layers it can read above the machine's peak), the kernels in use, and\n"
    "peak resident memory next to the weights, the activation arena and the memory\n"
    "budget (weights + the two largest live activations + 16 MB).",
    "The input is a fixed pattern; without --weights the weights are fixed-seed random\n"
    "values, which time the same as trained ones. FP_NO_FAST=1 times the reference kernels.",
    fp_bench_flags, 0, 0};

static int fp_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Peak resident set of this process in MiB (Linux reports KiB). */
static double fp_peak_rss_mib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

int fp_cmd_bench(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_bench_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    long threads = 1, iters = 10, warmup = 2;
    if ((rc = fp_flag_int(&fp_bench_cmd, "threads", 1, 256, &threads)) ||
        (rc = fp_flag_int(&fp_bench_cmd, "iters", 1, 100000, &iters)) ||
        (rc = fp_flag_int(&fp_bench_cmd, "warmup", 0, 100000, &warmup)))
        return rc;
    fp_cli_model m;
    fp_net *net = NULL;
    if ((rc = fp_cli_model_load(&fp_bench_cmd, 1, (int)threads, &m, &net))) return rc;
    const char *cfg = m.model ? m.model : m.cfg, *weights = m.model ? m.model : m.weights;
    int n = fp_net_layer_count(net);
    uint64_t flops = 0;
    for (int i = 0; i < n; i++) {
        fp_layer_info li;
        if (fp_net_layer_info(net, i, &li) == FP_OK) flops += li.flops;
    }
    float *in = fp_net_input(net);
    size_t nin = fp_shape_count(fp_net_input_shape(net));
    for (size_t i = 0; i < nin; i++) in[i] = (float)((i * 2654435761u) % 1000) / 1000.f;
    double *t = malloc((size_t)iters * sizeof *t);
    if (!t) {
        fp_net_destroy(net);
        fprintf(stderr, "fogpipe: out of memory\n");
        return FP_EXIT_FAIL;
    }
    double start = 0;
    for (long i = 0; i < warmup + iters; i++) {
        double t0 = fpi_now();
        if (i == warmup) start = t0;
        if (fp_net_run(net, 0, n - 1, NULL, NULL)) {
            free(t);
            fp_net_destroy(net);
            return fp_cli_fail();
        }
        if (i >= warmup) t[i - warmup] = (fpi_now() - t0) * 1e3;
    }
    /* Wall time over the timed passes: the throughput. Under a CPU quota
     * (a container, an emulated device) the median is a pass that ran
     * unthrottled; the mean counts the throttled waits too. */
    double mean = (fpi_now() - start) * 1e3 / (double)iters;
    qsort(t, (size_t)iters, sizeof *t, fp_cmp_double);
    double med = iters % 2 ? t[iters / 2] : (t[iters / 2 - 1] + t[iters / 2]) / 2;
    double gflops = med > 0 ? (double)flops / (med * 1e6) : 0;
    double rss = fp_peak_rss_mib(), wmib = (double)fp_net_weight_bytes(net) / (1 << 20),
           amib = (double)fp_net_arena_bytes(net) / (1 << 20);
    /* The budget: weights + the two largest live activations + 16 MB. */
    double budget = wmib + ((double)fp_net_live_pair_bytes(net) + 16e6) / (1 << 20);
    const char *kernels = fpi_fast_describe();
    if (fp_flag_get(&fp_bench_cmd, "json")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "cfg", cfg);
        cJSON_AddStringToObject(o, "weights", weights ? weights : "random");
        cJSON_AddNumberToObject(o, "threads", (double)threads);
        cJSON_AddNumberToObject(o, "iters", (double)iters);
        cJSON_AddNumberToObject(o, "median_ms", med);
        cJSON_AddNumberToObject(o, "mean_ms", mean);
        cJSON_AddNumberToObject(o, "min_ms", t[0]);
        cJSON_AddNumberToObject(o, "max_ms", t[iters - 1]);
        cJSON_AddNumberToObject(o, "gflops", (double)flops / 1e9);
        cJSON_AddNumberToObject(o, "gflop_per_s", gflops);
        cJSON_AddStringToObject(o, "kernels", kernels);
        cJSON_AddNumberToObject(o, "peak_rss_mib", rss);
        cJSON_AddNumberToObject(o, "weights_mib", wmib);
        cJSON_AddNumberToObject(o, "arena_mib", amib);
        cJSON_AddNumberToObject(o, "budget_mib", budget);
        char *s = cJSON_PrintUnformatted(o);
        if (s) puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("%s: threads=%ld iters=%ld median_ms=%.2f mean_ms=%.2f min_ms=%.2f max_ms=%.2f GFLOP/s=%.1f\n", cfg,
               threads, iters, med, mean, t[0], t[iters - 1], gflops);
        printf("kernels: %s\n", kernels);
        printf("memory: peak RSS %.1f MiB; weights %.1f MiB, activations + workspace %.1f MiB mapped (only pages a "
               "run writes are resident)\n", rss, wmib, amib);
        printf("memory budget (weights + two largest live activations + 16 MB): %.1f MiB, peak RSS %s it by %.1f MiB\n",
               budget, rss <= budget ? "under" : "over", fabs(budget - rss));
    }
    free(t);
    fp_net_destroy(net);
    return 0;
}
