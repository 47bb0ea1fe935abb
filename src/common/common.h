/*
 * common.h — internal helpers shared by every module: error recording,
 * logging, checked arithmetic and small allocation wrappers.
 * Internal: not API.
 */
#ifndef FP_COMMON_H
#define FP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fogpipe/status.h"

#if defined(__GNUC__)
#define FPI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FPI_PRINTF(a, b)
#endif

/* Marks a function whose loops the compiler vectorises: on x86-64 GCC builds
 * AVX-512, AVX2 and baseline copies and the loader picks one from cpuid
 * (ifunc), so the build needs no -march; elsewhere (clang; arm64, where NEON
 * is the baseline) it is a plain function. None of the copies may change a
 * result: the build is -std=c11 (no FP contraction in GCC) without
 * -ffast-math, so every copy does the same operations in the same order. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define FPI_SIMD_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define FPI_SIMD_CLONES
#endif

/* Records a formatted explanation for fp_last_error() and returns `status`,
 * so callers can write `return fpi_error(FP_ECORRUPT, "...", ...);`. */
fp_status fpi_error(fp_status status, const char *fmt, ...) FPI_PRINTF(2, 3);

/* Prepends "prefix: " to the thread's current explanation (adds context as an
 * error travels up) and returns `status` unchanged. */
fp_status fpi_error_context(fp_status status, const char *fmt, ...) FPI_PRINTF(2, 3);

/* Log levels; FP_LOG_LEVEL (env) selects the threshold, default warn. */
enum { FPI_LOG_ERROR = 0, FPI_LOG_WARN = 1, FPI_LOG_INFO = 2, FPI_LOG_DEBUG = 3 };
void fpi_log(int level, const char *fmt, ...) FPI_PRINTF(2, 3);
#define FPI_WARN(...) fpi_log(FPI_LOG_WARN, __VA_ARGS__)
#define FPI_INFO(...) fpi_log(FPI_LOG_INFO, __VA_ARGS__)

/* Overflow-checked size arithmetic: return 0 and leave *out untouched on
 * overflow, 1 on success. */
static inline int fpi_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}
static inline int fpi_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

/* Asks for the cache lines of [p, p + bytes) ahead of reading them (rows
 * read in order from memory the hardware's prefetcher does not see coming). */
static inline void fpi_prefetch(const void *p, size_t bytes)
{
    for (size_t q = 0; q < bytes; q += 64) __builtin_prefetch((const char *)p + q);
}

/* Allocation goes through these so tests can inject failures
 * (fpi_alloc_fail_after). They behave like malloc/calloc/free. */
void *fpi_malloc(size_t size);
void *fpi_calloc(size_t n, size_t size);
void fpi_free(void *p);
/* 64-byte aligned allocation for tensors and arenas; free with fpi_free_aligned. */
void *fpi_malloc_aligned(size_t size);
void fpi_free_aligned(void *p);

/* Zeroed, page-aligned memory straight from the system (anonymous mmap),
 * whose pages take memory only once written: for arenas whose parts some
 * runs never touch. NULL on failure; free with fpi_unmap(p, the same size). */
void *fpi_map_zeroed(size_t bytes);
void fpi_unmap(void *p, size_t bytes);

/* Gives the whole pages inside [p, p + bytes) back to the system; the
 * memory stays mapped and reads as zeros until written. For a part of an
 * allocation that is no longer read (free() takes whole blocks only).
 * Returns the bytes given back. */
size_t fpi_release_pages(void *p, size_t bytes);
/* Test hook: the allocation after `n` more successful ones fails (n < 0: never). */
void fpi_alloc_fail_after(long n);

/* Reads a whole file of at most `max_bytes` into a fresh NUL-terminated
 * buffer. On success *data (free with fpi_free) and *size are set. Fails with
 * FP_EIO (cannot open/read), FP_ETOOBIG (larger than max_bytes) or FP_ENOMEM. */
fp_status fpi_read_file(const char *path, size_t max_bytes, char **data, size_t *size);

/* The most bytes one network may ask for at once: physical memory, or
 * FP_MEMORY_LIMIT_MB from the environment when set (smaller or larger). */
size_t fpi_memory_limit(void);

/* Monotonic clock in seconds. */
double fpi_now(void);

/* CPU time the process has used, user and system, every thread, in seconds. */
double fpi_process_cpu_s(void);

#endif /* FP_COMMON_H */
