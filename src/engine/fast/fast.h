/*
 * fast.h — optional fast kernels, picked at run time, each tested against the
 * reference kernel of its op (tests/test_fast.c). Internal: not API.
 *
 * Three pieces:
 *   cpu.c   CPU features from cpuid (x86-64) or the auxiliary vector (arm64);
 *           no model-name tables.
 *   blas.c  OpenBLAS loaded with dlopen on first use, after steering its
 *           kernel choice (OPENBLAS_CORETYPE) from those features and pinning
 *           it to one thread (the engine's pool parallelises). Absent library:
 *           the GEMM-based kernels decline and the reference kernels run.
 *   *_fast.c the kernels: convolution as (tiled im2col +) sgemm with bias and
 *           activation fused into one pass, a direct depthwise loop,
 *           connected as sgemv, maxpool without per-element bounds checks.
 *
 * Each fpi_*_fast() hook returns 1 when it computed the layer's output and 0
 * when it declined (fast kernels off, no library, unsupported shape); the
 * caller then runs its reference kernel. Results agree with the reference to
 * float rounding (the summation order differs), not bit for bit.
 *
 * FP_NO_FAST=1 in the environment turns every fast kernel off (the
 * reference kernels run); it is read once, on first use.
 */
#ifndef FP_ENGINE_FAST_H
#define FP_ENGINE_FAST_H

#include "engine/net_impl.h"

/* Marks a kernel whose loops the compiler vectorises: on x86-64 GCC builds
 * AVX-512, AVX2 and baseline copies and the loader picks one from cpuid
 * (ifunc), so the build needs no -march; elsewhere (arm64: NEON is the
 * baseline) it is a plain function. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define FPI_SIMD_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define FPI_SIMD_CLONES
#endif

/* CPU features the kernels and the BLAS choice depend on. */
typedef struct fpi_cpu {
    int x86;      /* x86-64 */
    int arm64;    /* aarch64 */
    int avx2;     /* AVX2 usable (CPU and OS) */
    int fma;      /* FMA3 */
    int avx512;   /* AVX-512 F+BW+DQ+VL usable (CPU and OS) */
    int neon;     /* arm64 Advanced SIMD */
} fpi_cpu;

/* The features of the running CPU, detected once; never NULL. */
const fpi_cpu *fpi_cpu_get(void);

/* OpenBLAS kernel family (OPENBLAS_CORETYPE value) for these features, or
 * NULL to leave OpenBLAS's own choice: "SkylakeX" for AVX-512 F+BW+DQ+VL,
 * "Haswell" for AVX2+FMA. */
const char *fpi_cpu_blas_coretype(const fpi_cpu *cpu);

/* Row-major CBLAS constants (cblas.h values; the header is not needed). */
enum { FPI_CBLAS_ROW_MAJOR = 101, FPI_CBLAS_NO_TRANS = 111, FPI_CBLAS_TRANS = 112 };

/* The dlopen'd BLAS entry points. */
typedef struct fpi_blas {
    void (*sgemm)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc); /* cblas_sgemm */
    void (*sgemv)(int order, int ta, int m, int n, float alpha, const float *a, int lda,
                  const float *x, int incx, float beta, float *y, int incy); /* cblas_sgemv */
    char desc[80]; /* e.g. "OpenBLAS 0.3.21 SkylakeX (forced from cpuid)" */
} fpi_blas;

/* Which kernels run (tests force each path). */
typedef enum fpi_fast_mode {
    FPI_FAST_AUTO = 0, /* fast kernels unless FP_NO_FAST is set; BLAS if it loads */
    FPI_FAST_OFF,      /* reference kernels only */
    FPI_FAST_NO_BLAS,  /* fast direct kernels, but behave as if no BLAS were installed */
} fpi_fast_mode;

/* Sets the mode for the whole process (tests); not thread-safe against
 * running networks. */
void fpi_fast_set_mode(fpi_fast_mode mode);

/* Whether fast kernels run at all (mode, FP_NO_FAST). */
int fpi_fast_enabled(void);

/* The BLAS to use, loading it on the first call, or NULL when fast kernels
 * are off or no library could be loaded. Thread-safe. */
const fpi_blas *fpi_blas_get(void);

/* One line describing what runs, e.g. "fast: OpenBLAS ... SkylakeX; cpu:
 * avx512" or "reference kernels (FP_NO_FAST)". Static storage. */
const char *fpi_fast_describe(void);

/* The hooks (see the top of this file): 1 = output computed, 0 = declined. */
int fpi_conv_fast(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x);
int fpi_connected_fast(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x);
int fpi_maxpool_fast(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x);

/* out[j] = act(out[j] + bias) for j < n; the logistic goes through
 * fpi_activate so it rounds exactly as the reference does. */
void fpi_bias_act(float *out, size_t n, float bias, fp_activation act);

#endif /* FP_ENGINE_FAST_H */
