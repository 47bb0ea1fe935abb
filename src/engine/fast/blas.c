/* blas.c — the BLAS behind the GEMM-based fast kernels: OpenBLAS, loaded
 * with dlopen on first use so that fogpipe builds, links and runs without
 * it (the reference kernels then run).
 *
 * Debian's OpenBLAS (DYNAMIC_ARCH) picks its kernels from a CPU model table
 * and falls back to slow generic ones on CPUs it does not know (an AVX-512
 * EPYC gets SSE3 kernels, about 4x slower). OpenBLAS reads
 * OPENBLAS_CORETYPE in its load-time constructor, so before dlopen we set it
 * to the kernel family the cpuid features support — unless the user set it —
 * and OPENBLAS_NUM_THREADS=1 (the engine's own pool splits the work), then
 * remove what we set, so child processes see the environment unchanged. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "engine/fast/fast.h"

static atomic_int fpi_mode = FPI_FAST_AUTO;
static int fpi_env_off;            /* FP_NO_FAST is set (read once) */
static pthread_once_t fpi_env_once = PTHREAD_ONCE_INIT;
static fpi_blas fpi_blas_lib;      /* the loaded library */
static int fpi_blas_ok;            /* fpi_blas_lib is usable */
static pthread_once_t fpi_blas_once = PTHREAD_ONCE_INIT;
static char fpi_blas_why[96];      /* why it is not, for fpi_fast_describe */

static void fpi_read_env(void)
{
    const char *v = getenv("FP_NO_FAST");
    fpi_env_off = v && *v && strcmp(v, "0") != 0;
}

void fpi_fast_set_mode(fpi_fast_mode mode) { atomic_store(&fpi_mode, (int)mode); }

fpi_fast_mode fpi_fast_get_mode(void) { return (fpi_fast_mode)atomic_load(&fpi_mode); }

int fpi_fast_enabled(void)
{
    pthread_once(&fpi_env_once, fpi_read_env);
    return !fpi_env_off && atomic_load(&fpi_mode) != FPI_FAST_OFF;
}

/* Sets name=value unless already set; returns whether it did. */
static int fpi_setenv_default(const char *name, const char *value)
{
    if (getenv(name)) return 0;
    return setenv(name, value, 0) == 0;
}

/* Loads OpenBLAS once (see the top of this file). */
static void fpi_blas_load(void)
{
    const fpi_cpu *cpu = fpi_cpu_get();
    const char *core = fpi_cpu_blas_coretype(cpu);
    int set_core = core ? fpi_setenv_default("OPENBLAS_CORETYPE", core) : 0;
    int set_threads = fpi_setenv_default("OPENBLAS_NUM_THREADS", "1");
    static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (set_core) unsetenv("OPENBLAS_CORETYPE");
    if (set_threads) unsetenv("OPENBLAS_NUM_THREADS");
    if (!h) {
        snprintf(fpi_blas_why, sizeof fpi_blas_why, "no libopenblas.so.0");
        FPI_INFO("fast kernels: %s; GEMM layers use the reference kernels", fpi_blas_why);
        return;
    }
    /* POSIX's sanctioned way to turn dlsym's void * into a function pointer */
    *(void **)&fpi_blas_lib.sgemm = dlsym(h, "cblas_sgemm");
    *(void **)&fpi_blas_lib.sgemv = dlsym(h, "cblas_sgemv");
    void (*set_threads_fn)(int);
    char *(*corename)(void);
    *(void **)&set_threads_fn = dlsym(h, "openblas_set_num_threads");
    *(void **)&corename = dlsym(h, "openblas_get_corename");
    if (!fpi_blas_lib.sgemm || !fpi_blas_lib.sgemv) {
        snprintf(fpi_blas_why, sizeof fpi_blas_why, "libopenblas.so.0 lacks cblas_sgemm/cblas_sgemv");
        dlclose(h);
        return;
    }
    if (set_threads_fn) set_threads_fn(1);
    const char *got = corename ? corename() : "?";
    snprintf(fpi_blas_lib.desc, sizeof fpi_blas_lib.desc, "OpenBLAS %s%s", got ? got : "?",
             set_core ? " (coretype from cpuid)" : (core ? " (OPENBLAS_CORETYPE as set)" : ""));
    fpi_blas_ok = 1; /* the handle stays open for the life of the process */
}

const fpi_blas *fpi_blas_get(void)
{
    if (!fpi_fast_enabled() || atomic_load(&fpi_mode) == FPI_FAST_NO_BLAS) return NULL;
    pthread_once(&fpi_blas_once, fpi_blas_load);
    return fpi_blas_ok ? &fpi_blas_lib : NULL;
}

const char *fpi_fast_describe(void)
{
    static char buf[224];
    if (!fpi_fast_enabled()) return fpi_env_off ? "reference kernels (FP_NO_FAST)" : "reference kernels";
    const fpi_cpu *cpu = fpi_cpu_get();
    const char *isa = cpu->avx512 ? "avx512" : cpu->avx2 ? "avx2" : cpu->neon ? "neon" : "baseline";
    const fpi_blas *b = fpi_blas_get();
    snprintf(buf, sizeof buf, "fast kernels, %s; %s; cpu %s", b ? b->desc : (fpi_blas_why[0] ? fpi_blas_why : "no BLAS"),
             fpi_dnnl_describe(), isa);
    return buf;
}
