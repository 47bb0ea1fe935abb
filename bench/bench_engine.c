/* bench_engine.c — milliseconds per image for one network: loads a cfg and
 * weights (or random weights), runs warm-up passes, then times N passes and
 * prints the median, min and max, plus per-layer medians with --layers (the
 * partitioner's cost model reads those).
 *
 *   bench_engine CFG [WEIGHTS|-] [LOOPS] [THREADS] [--layers]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "fogpipe/net.h"

static int fp_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double *t;     /* loops × layers times */
    int layers;    /* layers in the network */
    int loop;      /* current loop */
    double last;   /* time of the previous callback */
} fp_layer_times;

static int fp_on_layer(void *user, int layer, const float *out, fp_shape shape)
{
    fp_layer_times *lt = user;
    double now = fpi_now();
    lt->t[(size_t)layer * 1000 + (size_t)lt->loop] = now - lt->last;
    lt->last = now;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(stderr, "usage: bench_engine CFG [WEIGHTS|-] [LOOPS=10] [THREADS=1] [--layers]\n"
                        "Prints the median/min/max milliseconds of a full forward pass.\n");
        return argc < 2 ? 2 : 0;
    }
    const char *cfg = argv[1], *weights = argc > 2 ? argv[2] : "-";
    int loops = argc > 3 ? atoi(argv[3]) : 10, threads = argc > 4 ? atoi(argv[4]) : 1;
    int per_layer = argc > 5 && !strcmp(argv[5], "--layers");
    if (loops < 1 || loops > 1000 || threads < 1) {
        fprintf(stderr, "bench_engine: LOOPS must be 1..1000 and THREADS >= 1\n");
        return 2;
    }
    fp_net *net = NULL;
    fp_status st = fp_net_load_cfg(cfg, &net);
    if (!st) st = strcmp(weights, "-") ? fp_net_load_weights(net, weights) : fp_net_init_weights_random(net, 1);
    if (!st) st = fp_net_set_threads(net, threads);
    if (!st) st = fp_net_setup(net);
    if (st) {
        fprintf(stderr, "bench_engine: %s\n", fp_last_error());
        fp_net_destroy(net);
        return 1;
    }
    int n = fp_net_layer_count(net);
    size_t in = fp_shape_count(fp_net_input_shape(net));
    float *x = fp_net_input(net);
    for (size_t i = 0; i < in; i++) x[i] = (float)((i * 2654435761u) % 1000) / 1000.f;
    for (int w = 0; w < 2; w++) fp_net_run(net, 0, n - 1, NULL, NULL);
    double *t = calloc((size_t)loops, sizeof *t);
    fp_layer_times lt = {per_layer ? calloc((size_t)n * 1000, sizeof(double)) : NULL, n, 0, 0};
    for (int i = 0; i < loops; i++) {
        lt.loop = i;
        double t0 = fpi_now();
        lt.last = t0;
        fp_net_run(net, 0, n - 1, per_layer ? fp_on_layer : NULL, &lt);
        t[i] = (fpi_now() - t0) * 1e3;
    }
    qsort(t, (size_t)loops, sizeof *t, fp_cmp_double);
    printf("%s threads=%d loops=%d median_ms=%.2f min_ms=%.2f max_ms=%.2f\n", cfg, threads, loops,
           t[loops / 2], t[0], t[loops - 1]);
    if (per_layer)
        for (int l = 0; l < n; l++) {
            double *row = lt.t + (size_t)l * 1000;
            qsort(row, (size_t)loops, sizeof *row, fp_cmp_double);
            fp_layer_info li;
            fp_net_layer_info(net, l, &li);
            printf("layer %3d %-13s %9.3f ms\n", l, li.type, row[loops / 2] * 1e3);
        }
    free(t);
    free(lt.t);
    fp_net_destroy(net);
    return 0;
}
