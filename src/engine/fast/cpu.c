/* cpu.c — CPU feature detection for kernel choice: cpuid + xgetbv on x86-64
 * (a feature counts only if the OS saves its registers), the auxiliary
 * vector on arm64. Never a table of model names: a CPU the libraries do not
 * know still gets the kernels its features allow. */
#include <pthread.h>
#include <stdint.h>

#include "engine/fast/fast.h"

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

static fpi_cpu fpi_cpu_features;
static pthread_once_t fpi_cpu_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
/* XCR0: which register states the OS saves (valid only when OSXSAVE is set). */
static uint64_t fpi_xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

/* Fills fpi_cpu_features once. */
static void fpi_cpu_detect(void)
{
    fpi_cpu *c = &fpi_cpu_features;
#if defined(__x86_64__)
    unsigned a, b, cx, d;
    c->x86 = 1;
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return;
    int osxsave = (cx >> 27) & 1, avx = (cx >> 28) & 1, fma = (cx >> 12) & 1;
    uint64_t xcr0 = osxsave ? fpi_xgetbv0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;      /* XMM and YMM state */
    int os_avx512 = (xcr0 & 0xe6) == 0xe6; /* plus opmask, ZMM0-15 high, ZMM16-31 */
    if (!__get_cpuid_count(7, 0, &a, &b, &cx, &d)) return;
    c->avx2 = avx && os_avx && ((b >> 5) & 1);
    c->fma = avx && os_avx && fma;
    /* F (16), DQ (17), BW (30), VL (31) */
    c->avx512 = os_avx512 && ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);
#elif defined(__aarch64__)
    c->arm64 = 1;
#if defined(__linux__) && defined(AT_HWCAP)
    c->neon = (getauxval(AT_HWCAP) & (1ul << 1)) != 0; /* HWCAP_ASIMD */
#else
    c->neon = 1; /* Advanced SIMD is mandatory on AArch64 */
#endif
#endif
}

const fpi_cpu *fpi_cpu_get(void)
{
    pthread_once(&fpi_cpu_once, fpi_cpu_detect);
    return &fpi_cpu_features;
}

const char *fpi_cpu_blas_coretype(const fpi_cpu *cpu)
{
    if (cpu->avx512 && cpu->fma) return "SkylakeX";
    if (cpu->avx2 && cpu->fma) return "Haswell";
    return NULL;
}
