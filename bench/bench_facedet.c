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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "fogpipe/detect.h"
#include "fogpipe/image.h"
#include "fogpipe/net.h"

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

/* The network alone on a prepared input: ms, or -1. */
static double fp_net_alone(fp_net *net, const fp_image *im)
{
    if (fp_detect_prepare_input(net, im)) return -1;
    double t0 = fpi_now();
    fp_status st = fp_net_run(net, 0, fp_net_layer_count(net) - 1, NULL, NULL);
    return st ? -1 : (fpi_now() - t0) * 1e3;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_facedet MANIFEST IMAGE [SIZE=416] [LOOPS=20] [THREADS=1]\n");
        return 2;
    }
    int size = argc > 3 ? atoi(argv[3]) : 416, loops = argc > 4 ? atoi(argv[4]) : 20;
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    if (loops < 1 || loops > 10000 || threads < 1) {
        fprintf(stderr, "bench_facedet: LOOPS must be 1..10000 and THREADS >= 1\n");
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
    for (int i = 0, k = 0; (i < loops || k < nloops) && faces >= 0; i++) {
        if (i < loops) {
            double t0 = fpi_now();
            faces = fp_pass(net, &im);
            ms[i] = (fpi_now() - t0) * 1e3;
        }
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
