/* bench_facedet.c — fogpipe's side of bench/facedet.sh: milliseconds per
 * image of face-api's tiny face detector, end to end on an already decoded
 * image (fp_detect_run: preparation and network; fp_detect_boxes), median of
 * LOOPS after two warm-up runs; and the network alone (fp_net_run on an
 * input fp_detect_prepare_input wrote) after every fourth of those runs,
 * median of those (at least 3).
 *
 *   bench_facedet MANIFEST IMAGE [SIZE=416] [LOOPS=20] [THREADS=1]
 *
 * Prints: fogpipe threads=T size=S median_ms=M min_ms=A max_ms=B net_ms=N faces=F
 *
 * With LOOPS `serve` it warms up, prints `ready faces=F`, then for each
 * line N (1..10000) on stdin times N runs end to end and prints
 * `median_ms=M min_ms=A`, until stdin ends: for bench/facedet.sh's paired
 * runs, where face-api's side answers the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "fogpipe/detect.h"
#include "fogpipe/image.h"
#include "fogpipe/net.h"

enum { FP_MAX_LOOPS = 10000 };

static int fp_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One detection pass; returns the number of faces or -1. */
static int fp_pass(fp_net *net, const fp_image *im)
{
    fp_detection *d = NULL;
    int n = -1;
    int last = fp_net_layer_count(net) - 1;
    if (fp_detect_run(net, im, last) || fp_detect_boxes(net, im->w, im->h, .5f, .4f, &d, &n)) n = -1;
    free(d);
    return n;
}

/* A timed pass: ms, or -1. */
static double fp_timed_pass(fp_net *net, const fp_image *im)
{
    double t0 = fpi_now();
    return fp_pass(net, im) < 0 ? -1 : (fpi_now() - t0) * 1e3;
}

/* The network alone on a prepared input: ms, or -1. */
static double fp_net_alone(fp_net *net, const fp_image *im)
{
    if (fp_detect_prepare_input(net, im)) return -1;
    double t0 = fpi_now();
    fp_status st = fp_net_run(net, 0, fp_net_layer_count(net) - 1, NULL, NULL);
    return st ? -1 : (fpi_now() - t0) * 1e3;
}

/* `serve`: N runs per line of stdin. */
static int fp_serve(fp_net *net, const fp_image *im, int faces, double *ms)
{
    printf("ready faces=%d\n", faces);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        char *end;
        long n = strtol(line, &end, 10);
        if (end == line || n < 1 || n > FP_MAX_LOOPS) {
            fprintf(stderr, "bench_facedet: expected a number of runs 1..%d, got: %s", FP_MAX_LOOPS, line);
            return 2;
        }
        for (long i = 0; i < n; i++)
            if ((ms[i] = fp_timed_pass(net, im)) < 0) {
                fprintf(stderr, "bench_facedet: %s\n", fp_last_error());
                return 1;
            }
        qsort(ms, (size_t)n, sizeof *ms, fp_cmp_double);
        printf("median_ms=%.3f min_ms=%.3f\n", ms[(n - 1) / 2], ms[0]);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_facedet MANIFEST IMAGE [SIZE=416] [LOOPS=20|serve] [THREADS=1]\n");
        return 2;
    }
    int serve = argc > 4 && !strcmp(argv[4], "serve");
    int size = argc > 3 ? atoi(argv[3]) : 416, loops = serve ? FP_MAX_LOOPS : argc > 4 ? atoi(argv[4]) : 20;
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    if (loops < 1 || loops > FP_MAX_LOOPS || threads < 1) {
        fprintf(stderr, "bench_facedet: LOOPS must be 1..%d or serve, THREADS >= 1\n", FP_MAX_LOOPS);
        return 2;
    }
    fp_net *net = NULL;
    fp_image im = {0};
    /* the network alone after every fourth pass (at least 3 times) */
    int nloops = (loops + 3) / 4 > 3 ? (loops + 3) / 4 : 3;
    double *ms = calloc((size_t)loops, sizeof *ms), *nms = calloc((size_t)nloops, sizeof *nms);
    int faces = -1;
    if (!ms || !nms || fp_net_load_tfjs(argv[1], size, &net) || fp_net_set_threads(net, threads) ||
        fp_net_setup(net) || fp_image_load(argv[2], &im)) {
        fprintf(stderr, "bench_facedet: %s\n", fp_last_error());
        return 1;
    }
    for (int i = 0; i < 2; i++) faces = fp_pass(net, &im);
    if (serve && faces >= 0) {
        int rc = fp_serve(net, &im, faces, ms);
        free(ms);
        free(nms);
        fp_image_free(&im);
        fp_net_destroy(net);
        return rc;
    }
    for (int i = 0, k = 0; (i < loops || k < nloops) && faces >= 0; i++) {
        if (i < loops && (ms[i] = fp_timed_pass(net, &im)) < 0) faces = -1;
        if ((i % 4 == 3 || i >= loops) && k < nloops && faces >= 0 && (nms[k++] = fp_net_alone(net, &im)) < 0)
            faces = -1;
    }
    if (faces < 0) {
        fprintf(stderr, "bench_facedet: %s\n", fp_last_error());
        return 1;
    }
    qsort(ms, (size_t)loops, sizeof *ms, fp_cmp_double);
    qsort(nms, (size_t)nloops, sizeof *nms, fp_cmp_double);
    printf("fogpipe threads=%d size=%d median_ms=%.3f min_ms=%.3f max_ms=%.3f net_ms=%.3f faces=%d\n", threads,
           size, ms[(loops - 1) / 2], ms[0], ms[loops - 1], nms[(nloops - 1) / 2], faces);
    free(ms);
    free(nms);
    fp_image_free(&im);
    fp_net_destroy(net);
    return 0;
}
