/* bench_sgemm.c — the machine's practical single-thread limit for the
 * engine: OpenBLAS sgemm on N x N x N matrices (default 2048), loaded the
 * way fogpipe's fast kernels load it (coretype from cpuid, one thread);
 * prints the median GFLOP/s of LOOPS runs after one warm-up run. bench/engine.sh
 * reports every engine's GFLOP/s as a share of it.
 *
 *   bench_sgemm [N=2048] [LOOPS=5]      ->  sgemm_gflops=X n=N threads=1 (...)
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/common.h"
#include "engine/fast/fast.h"

static int fp_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2048, loops = argc > 2 ? atoi(argv[2]) : 5;
    if (n < 64 || n > 8192 || loops < 1 || loops > 100) {
        fprintf(stderr, "usage: bench_sgemm [N in 64..8192] [LOOPS in 1..100]\n");
        return 2;
    }
    const fpi_blas *blas = fpi_blas_get();
    if (!blas) {
        fprintf(stderr, "bench_sgemm: no OpenBLAS here (%s)\n", fpi_fast_describe());
        return 1;
    }
    size_t count = (size_t)n * (size_t)n;
    float *a = fpi_malloc_aligned(count * sizeof(float)), *b = fpi_malloc_aligned(count * sizeof(float)),
          *c = fpi_malloc_aligned(count * sizeof(float));
    double *t = malloc((size_t)loops * sizeof *t);
    if (!a || !b || !c || !t) {
        fprintf(stderr, "bench_sgemm: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < count; i++) {
        a[i] = (float)((i * 7919u) % 1000) / 1000.f - .5f;
        b[i] = (float)((i * 104729u) % 1000) / 1000.f - .5f;
    }
    for (int r = -1; r < loops; r++) {
        double t0 = fpi_now();
        blas->sgemm(FPI_CBLAS_ROW_MAJOR, FPI_CBLAS_NO_TRANS, FPI_CBLAS_NO_TRANS, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        if (r >= 0) t[r] = fpi_now() - t0;
    }
    qsort(t, (size_t)loops, sizeof *t, fp_cmp_double);
    printf("sgemm_gflops=%.1f n=%d threads=1 (%s)\n", 2.0 * n * (double)n * n / t[loops / 2] / 1e9, n, blas->desc);
    fpi_free_aligned(a);
    fpi_free_aligned(b);
    fpi_free_aligned(c);
    free(t);
    return 0;
}
