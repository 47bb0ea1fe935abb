/* darknet_time.c — the same measurement as bench_engine, for Debian's
 * darknet (libdarknet.so): median milliseconds of network_predict().
 *
 *   darknet_time CFG WEIGHTS [LOOPS]
 */
#include <darknet.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: darknet_time CFG WEIGHTS [LOOPS=10]\n");
        return 2;
    }
    int loops = argc > 3 ? atoi(argv[3]) : 10;
    if (loops < 1 || loops > 1000) return 2;
    network *net = load_network(argv[1], argv[2], 0);
    set_batch_network(net, 1);
    float *x = calloc(net->inputs, sizeof(float));
    for (int i = 0; i < net->inputs; i++) x[i] = (float)((i * 2654435761u) % 1000) / 1000.f;
    for (int w = 0; w < 2; w++) network_predict(net, x);
    double *t = calloc(loops, sizeof *t);
    for (int i = 0; i < loops; i++) {
        double t0 = now();
        network_predict(net, x);
        t[i] = (now() - t0) * 1e3;
    }
    qsort(t, loops, sizeof *t, cmp);
    printf("%s darknet loops=%d median_ms=%.2f min_ms=%.2f max_ms=%.2f\n", argv[1], loops,
           t[loops / 2], t[0], t[loops - 1]);
    return 0;
}
