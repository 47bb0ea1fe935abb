/* crc32c.c — CRC32C (Castagnoli, reflected polynomial 0x82F63B78) of every
 * frame's header and tensors. Each end of a link checksums every byte it
 * carries, on devices with a fraction of a core, so this uses the CPU's
 * CRC32C instruction where there is one (SSE4.2 on x86-64, the CRC extension
 * on arm64; detected at run time), on three independent streams to hide its
 * latency, and a slicing-by-8 table loop elsewhere.
 * Written here because the library that does this (ISA-L's crc32_iscsi,
 * libisal-dev) is not multiarch-installable in Debian, so the arm64 cross
 * build could not link it beside the amd64 one; zlib's crc32 is another
 * polynomial. */
#include <pthread.h>
#include <string.h>

#include "fogpipe/frame.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#define FPI_CRC_X86 1
#elif defined(__aarch64__) && defined(__GNUC__)
#include <arm_acle.h>
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#define FPI_CRC_ARM 1
#endif

/* Bytes per stream in the three-stream loop; the streams are joined by
 * shifting a register over FPI_CRC_BLOCK zero bytes (fpi_crc_shift). */
#define FPI_CRC_BLOCK 1024

static uint32_t fpi_crc_table[8][256];
static uint32_t fpi_crc_shift_table[4][256]; /* by byte of the register */
static int fpi_crc_hw;                       /* the CPU has the instruction */
static pthread_once_t fpi_crc_once = PTHREAD_ONCE_INIT;

/* The register (not inverted) after n more bytes, with the tables. */
static uint32_t fpi_crc_sw(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        c = fpi_crc_table[7][lo & 0xff] ^ fpi_crc_table[6][(lo >> 8) & 0xff] ^
            fpi_crc_table[5][(lo >> 16) & 0xff] ^ fpi_crc_table[4][lo >> 24] ^
            fpi_crc_table[3][p[4]] ^ fpi_crc_table[2][p[5]] ^ fpi_crc_table[1][p[6]] ^
            fpi_crc_table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ fpi_crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

/* The register after FPI_CRC_BLOCK zero bytes: linear in the register, so
 * four table lookups. With it, crc(A‖B) = shift(crc(A)) ^ crc₀(B) for a
 * block B, which joins streams computed independently. */
static uint32_t fpi_crc_shift(uint32_t c)
{
    return fpi_crc_shift_table[0][c & 0xff] ^ fpi_crc_shift_table[1][(c >> 8) & 0xff] ^
           fpi_crc_shift_table[2][(c >> 16) & 0xff] ^ fpi_crc_shift_table[3][c >> 24];
}

static void fpi_crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        fpi_crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            fpi_crc_table[t][i] = (fpi_crc_table[t - 1][i] >> 8) ^ fpi_crc_table[0][fpi_crc_table[t - 1][i] & 0xff];
    static const uint8_t zeros[FPI_CRC_BLOCK];
    uint32_t basis[32];
    for (int b = 0; b < 32; b++) basis[b] = fpi_crc_sw(1u << b, zeros, sizeof zeros);
    for (int k = 0; k < 4; k++)
        for (int v = 0; v < 256; v++) {
            uint32_t r = 0;
            for (int b = 0; b < 8; b++)
                if (v >> b & 1) r ^= basis[8 * k + b];
            fpi_crc_shift_table[k][v] = r;
        }
#if defined(FPI_CRC_X86)
    fpi_crc_hw = __builtin_cpu_supports("sse4.2");
#elif defined(FPI_CRC_ARM)
    fpi_crc_hw = (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
#endif
}

/* The same loop for either instruction set: U64(c, v) and U8(c, b) are the
 * CPU's CRC32C steps. */
#define FPI_CRC_HW_BODY(U64, U8)                                                          \
    while (n >= 3 * FPI_CRC_BLOCK) {                                                      \
        uint32_t c0 = c, c1 = 0, c2 = 0;                                                  \
        for (size_t i = 0; i < FPI_CRC_BLOCK; i += 8) {                                   \
            uint64_t a, b, d;                                                             \
            memcpy(&a, p + i, 8);                                                         \
            memcpy(&b, p + FPI_CRC_BLOCK + i, 8);                                         \
            memcpy(&d, p + 2 * FPI_CRC_BLOCK + i, 8);                                     \
            c0 = U64(c0, a);                                                              \
            c1 = U64(c1, b);                                                              \
            c2 = U64(c2, d);                                                              \
        }                                                                                 \
        c = fpi_crc_shift(fpi_crc_shift(c0) ^ c1) ^ c2;                                   \
        p += 3 * FPI_CRC_BLOCK;                                                           \
        n -= 3 * FPI_CRC_BLOCK;                                                           \
    }                                                                                     \
    for (; n >= 8; n -= 8, p += 8) {                                                      \
        uint64_t a;                                                                       \
        memcpy(&a, p, 8);                                                                 \
        c = U64(c, a);                                                                    \
    }                                                                                     \
    for (; n; n--) c = U8(c, *p++);                                                       \
    return c;

#if defined(FPI_CRC_X86)
#define FPI_X86_U64(c, v) ((uint32_t)_mm_crc32_u64((c), (v)))
__attribute__((target("sse4.2"))) static uint32_t fpi_crc_hw_run(uint32_t c, const uint8_t *p, size_t n)
{
    FPI_CRC_HW_BODY(FPI_X86_U64, _mm_crc32_u8)
}
#elif defined(FPI_CRC_ARM)
__attribute__((target("+crc"))) static uint32_t fpi_crc_hw_run(uint32_t c, const uint8_t *p, size_t n)
{
    FPI_CRC_HW_BODY(__crc32cd, __crc32cb)
}
#endif

uint32_t fp_crc32c(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&fpi_crc_once, fpi_crc_init);
#if defined(FPI_CRC_X86) || defined(FPI_CRC_ARM)
    if (fpi_crc_hw) return ~fpi_crc_hw_run(~crc, data, n);
#endif
    return ~fpi_crc_sw(~crc, data, n);
}
