/* codec.c — feature-map codecs: float16 (via the compiler's _Float16, which
 * rounds to nearest even, or the CPU's F16C conversions where it has them:
 * the same rounding, eight values per instruction), symmetric int8 per
 * tensor, asymmetric int8 per channel, and lz4 / zstd over the result. */
#if defined(__clang__) && __clang_major__ < 15 && (defined(__x86_64__) || defined(__i386__))
/* clang before 15 has no _Float16 on x86 (nor __builtin_cpu_supports("f16c")):
 * its storage-only __fp16, the same IEEE half converted with the same
 * round-to-nearest-even, stands in, without the F16C path (build-fuzz). */
typedef __fp16 fpi_half;
#else
typedef _Float16 fpi_half;
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FPI_HAVE_F16C 1
#endif
#endif
#include <lz4.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "common/common.h"
#include "fogpipe/fmap.h"

/* The scans and (de)quantisers below are loops GCC vectorises, built in
 * AVX2 and AVX-512 copies too (FPI_SIMD_CLONES, src/common/common.h); each
 * loop keeps the old operations in the old order (tests/test_codec.c
 * compares bit for bit). */

/* Adding then subtracting 1.5 * 2^23 rounds a float with |v| < 2^22 to an
 * integer, to nearest even, as nearbyintf does in the default rounding mode
 * (up to the sign of a zero, which the int conversion drops). */
#define FPI_ROUND_MAGIC 12582912.0f

void fp_buffer_free(fp_buffer *b)
{
    if (!b) return;
    fpi_free(b->data);
    memset(b, 0, sizeof *b);
}

/* Ensures cap >= n (contents are not kept). */
static fp_status fpi_buffer_reserve(fp_buffer *b, size_t n)
{
    if (b->cap >= n) return FP_OK;
    uint8_t *p = fpi_malloc(n);
    if (!p) return fpi_error(FP_ENOMEM, "out of memory for a %zu-byte buffer", n);
    fpi_free(b->data);
    b->data = p;
    b->cap = n;
    b->len = 0;
    return FP_OK;
}

static const struct { const char *name; fp_dtype dtype; } fpi_dtypes[] = {
    {"none", FP_DTYPE_F32}, {"fp16", FP_DTYPE_F16}, {"int8", FP_DTYPE_I8}, {"int8c", FP_DTYPE_I8C}};
static const char *const fpi_compress_names[] = {"", "lz4", "zstd"};

fp_status fp_fmap_codec_parse(const char *s, fp_fmap_codec *out)
{
    char base[16];
    const char *plus = s ? strchr(s, '+') : NULL;
    size_t n = s ? (plus ? (size_t)(plus - s) : strlen(s)) : 0;
    if (!s || n == 0 || n >= sizeof base) goto bad;
    memcpy(base, s, n);
    base[n] = '\0';
    fp_fmap_codec c = {0, FP_COMPRESS_NONE};
    size_t i;
    for (i = 0; i < sizeof fpi_dtypes / sizeof fpi_dtypes[0]; i++)
        if (!strcmp(base, fpi_dtypes[i].name)) break;
    if (i == sizeof fpi_dtypes / sizeof fpi_dtypes[0]) goto bad;
    c.dtype = fpi_dtypes[i].dtype;
    if (plus) {
        if (!strcmp(plus + 1, "lz4")) c.compress = FP_COMPRESS_LZ4;
        else if (!strcmp(plus + 1, "zstd")) c.compress = FP_COMPRESS_ZSTD;
        else goto bad;
    }
    *out = c;
    return FP_OK;
bad:
    return fpi_error(FP_EINVAL, "unknown codec \"%.40s\" (none, fp16, int8, int8c, optionally +lz4 or +zstd)",
                     s ? s : "(null)");
}

const char *fp_fmap_codec_name(fp_fmap_codec c, char *buf, size_t n)
{
    const char *base = "?";
    for (size_t i = 0; i < sizeof fpi_dtypes / sizeof fpi_dtypes[0]; i++)
        if (fpi_dtypes[i].dtype == c.dtype) base = fpi_dtypes[i].name;
    if (c.compress > FP_COMPRESS_NONE && c.compress <= FP_COMPRESS_ZSTD)
        snprintf(buf, n, "%s+%s", base, fpi_compress_names[c.compress]);
    else
        snprintf(buf, n, "%s", base);
    return buf;
}

#ifdef FPI_HAVE_F16C
/* The compiler's _Float16 conversions are calls into libgcc without -mf16c
 * (4-5 ns per value); these run on any x86 CPU that reports F16C. */
__attribute__((target("avx,f16c"))) static void fpi_f16c_encode(const float *x, size_t n, uint8_t *out)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) {
        fpi_half h = (fpi_half)x[i];
        memcpy(out + 2 * i, &h, 2);
    }
}

__attribute__((target("avx,f16c"))) static void fpi_f16c_decode(const uint8_t *p, size_t n, float *out)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
    for (; i < n; i++) {
        fpi_half h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = (float)h;
    }
}

static int fpi_has_f16c(void)
{
    static int has = -1;
    if (has < 0) has = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
    return has;
}
#endif

/* Float bits with the sign cleared: for finite values they order like |x|,
 * and inf/NaN are the ones >= 0x7f800000. */
static inline int32_t fpi_f32_absbits(float v)
{
    int32_t k;
    memcpy(&k, &v, 4);
    return k & 0x7fffffff;
}

/* The largest fpi_f32_absbits over x[0..n): one branch-free pass, so it
 * vectorises (an early exit on the first inf/NaN would not). */
FPI_SIMD_CLONES static int32_t fpi_f32_absmax_bits(const float *x, size_t n)
{
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t k = fpi_f32_absbits(x[i]);
        m = k > m ? k : m;
    }
    return m;
}

/* Float bits as an int32 that orders like the float, -0 just below +0
 * (negatives get their magnitude bits flipped; >> is arithmetic in GCC and
 * clang); its own inverse. */
static inline int32_t fpi_f32_key(int32_t k) { return k ^ ((k >> 31) & 0x7fffffff); }

/* The smallest and largest fpi_f32_key over finite x[0..n), n >= 1. */
FPI_SIMD_CLONES static void fpi_f32_minmax_keys(const float *x, size_t n, int32_t *lo, int32_t *hi)
{
    int32_t mn = INT32_MAX, mx = INT32_MIN;
    for (size_t i = 0; i < n; i++) {
        int32_t k;
        memcpy(&k, x + i, 4);
        k = fpi_f32_key(k);
        mn = k < mn ? k : mn;
        mx = k > mx ? k : mx;
    }
    *lo = mn;
    *hi = mx;
}

/* Whether some x[i] has exactly these bits. */
FPI_SIMD_CLONES static int fpi_f32_has_bits(const float *x, size_t n, uint32_t bits)
{
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, 4);
        any |= u == bits;
    }
    return any;
}

static float fpi_f32_from_key(int32_t k)
{
    float v;
    k = fpi_f32_key(k);
    memcpy(&v, &k, 4);
    return v;
}

/* Symmetric int8: q = round(x / scale), scale = max|x| / 127 (1 if all
 * zero); absmax is fpi_f32_absmax_bits(x), whose float is max|x| exactly
 * (bit patterns of non-negative floats order like their values). */
static float fpi_int8_scale(int32_t absmax)
{
    float m;
    memcpy(&m, &absmax, 4);
    return m > 0 ? m / 127.f : 1.f;
}

/* q = nearbyintf(x * inv) clamped to +-127, with the clamp done on the
 * integer: the same values (the bounds are integers, rounding is
 * monotonic), and a float clamp before the magic add would split the loop
 * into branches GCC cannot if-convert under -ftrapping-math. The caller
 * takes the scalar path when inv is not finite; otherwise |x * inv| <=
 * 127.x, in the magic add's range. v is its own statement: -std=c11 keeps
 * GCC from fusing x * inv + magic into an FMA, and clang fuses only within
 * one expression (the near-tie cases in tests/test_codec.c would show it). */
FPI_SIMD_CLONES static void fpi_int8_quant(const float *restrict x, size_t n, float inv, int8_t *restrict q)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i] * inv;
        int32_t r = (int32_t)((v + FPI_ROUND_MAGIC) - FPI_ROUND_MAGIC);
        r = r < 127 ? r : 127;
        q[i] = (int8_t)(r > -127 ? r : -127);
    }
}

/* The same, offset by the channel minimum and onto 0..255, stored minus 128
 * (|v| <= 255.x when scale and inv are finite). */
FPI_SIMD_CLONES static void fpi_int8c_quant(const float *restrict x, size_t n, float mn, float inv,
                                             int8_t *restrict q)
{
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] - mn) * inv;
        int32_t r = (int32_t)((v + FPI_ROUND_MAGIC) - FPI_ROUND_MAGIC);
        r = r < 255 ? r : 255;
        q[i] = (int8_t)((r > 0 ? r : 0) - 128);
    }
}

/* The old scalar quantisers, for tensors whose scale is not usable (inv
 * infinite once max|x| or a channel's range is below about 2^-120, or a
 * range beyond FLT_MAX): products are then +-inf or NaN; NaN became 0
 * (through an undefined float-to-int conversion, on x86-64 and arm64
 * alike), now spelled out. */
static void fpi_int8_quant_slow(const float *x, size_t n, float inv, int8_t *q)
{
    for (size_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * inv);
        q[i] = v != v ? 0 : (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v));
    }
}

static void fpi_int8c_quant_slow(const float *x, size_t n, float mn, float inv, int8_t *q)
{
    for (size_t i = 0; i < n; i++) {
        float v = nearbyintf((x[i] - mn) * inv);
        q[i] = v != v ? 0 : (int8_t)((v > 255 ? 255 : (v < 0 ? 0 : v)) - 128);
    }
}

/* Index of the first -0 or +0 in x[0..n) (n if none). */
static size_t fpi_f32_first_zero(const float *x, size_t n)
{
    size_t i = 0;
    while (i < n && fpi_f32_absbits(x[i]) != 0) i++;
    return i;
}

/* One channel's minimum and maximum, ties going to the earlier value as in
 * the old fminf(mn, x) / fmaxf(mx, x) loop with glibc on x86-64. Only -0
 * and +0 tie with different bits, and C leaves fminf's pick between them
 * open (arm64's fminnm takes -0; GCC treats fminf as commutative and may
 * swap its operands), so the rule is spelled out: a zero minimum, where
 * both zeros occur, is the first zero. (A zero maximum's sign never shows:
 * it only enters mx - mn, which is +0 for either when mn is that first
 * zero.) */
static void fpi_channel_range(const float *xc, size_t per, float *mn_out, float *mx_out)
{
    int32_t lo, hi;
    fpi_f32_minmax_keys(xc, per, &lo, &hi);
    *mn_out = fpi_f32_from_key(lo);
    *mx_out = fpi_f32_from_key(hi);
    /* key -1 is -0: is there a +0 as well? */
    if (lo == -1 && fpi_f32_has_bits(xc, per, 0)) *mn_out = xc[fpi_f32_first_zero(xc, per)];
}

/* Dequantisers (the decode side); s and mn come in by value so the stores
 * through out cannot alias them. */
FPI_SIMD_CLONES static void fpi_int8_dequant(const int8_t *restrict q, size_t n, float s, float *restrict out)
{
    for (size_t i = 0; i < n; i++) out[i] = (float)q[i] * s;
}

FPI_SIMD_CLONES static void fpi_int8c_dequant(const int8_t *restrict q, size_t n, float mn, float s,
                                               float *restrict out)
{
    for (size_t i = 0; i < n; i++) out[i] = mn + (float)(q[i] + 128) * s;
}

fp_status fp_fmap_encode(fp_fmap_codec c, int32_t layer, const float *x, const uint32_t *dims, int rank,
                          fp_buffer *buf, fp_frame_tensor *t)
{
    memset(t, 0, sizeof *t);
    t->layer = layer;
    t->dtype = c.dtype;
    t->compress = c.compress;
    t->rank = rank;
    for (int i = 0; i < FP_FRAME_MAX_RANK; i++) t->dims[i] = i < rank ? dims[i] : 1;
    uint64_t count = fp_frame_tensor_count(t), raw = fp_frame_tensor_raw_len(t);
    if (rank < 1 || rank > FP_FRAME_MAX_RANK || !count || !raw || raw > SIZE_MAX / 2)
        return fpi_error(FP_EINVAL, "fp_fmap_encode: bad shape (rank %d)", rank);
    /* one vectorised pass finds whether any value is inf/NaN (and max|x| for
     * int8); only then a scalar one names the first */
    int32_t absmax = fpi_f32_absmax_bits(x, (size_t)count);
    if (absmax >= 0x7f800000)
        for (uint64_t i = 0; i < count; i++)
            if (!isfinite(x[i]))
                return fpi_error(FP_EINVAL, "fp_fmap_encode: layer %d value %llu is not finite", (int)layer,
                                 (unsigned long long)i);
    size_t bound = (size_t)raw;
    if (c.compress == FP_COMPRESS_LZ4) {
        if (raw > LZ4_MAX_INPUT_SIZE) return fpi_error(FP_EINVAL, "fp_fmap_encode: too large for lz4");
        bound = (size_t)LZ4_compressBound((int)raw);
    } else if (c.compress == FP_COMPRESS_ZSTD) {
        bound = ZSTD_compressBound((size_t)raw);
    }
    /* raw bytes first (in the second half when compressing), then compress to the front */
    int compress = c.compress != FP_COMPRESS_NONE;
    fp_status st = fpi_buffer_reserve(buf, compress ? bound + (size_t)raw : (size_t)raw);
    if (st) return st;
    uint8_t *rawp = compress ? buf->data + bound : buf->data;
    size_t n = (size_t)count;
    switch (c.dtype) {
    case FP_DTYPE_F32:
        memcpy(rawp, x, n * 4);
        break;
    case FP_DTYPE_F16:
#ifdef FPI_HAVE_F16C
        if (fpi_has_f16c()) {
            fpi_f16c_encode(x, n, rawp);
            break;
        }
#endif
        for (size_t i = 0; i < n; i++) {
            fpi_half h = (fpi_half)x[i];
            memcpy(rawp + 2 * i, &h, 2);
        }
        break;
    case FP_DTYPE_I8: {
        t->scale = fpi_int8_scale(absmax);
        float inv = 1.f / t->scale;
        if (isfinite(inv)) fpi_int8_quant(x, n, inv, (int8_t *)rawp);
        else fpi_int8_quant_slow(x, n, inv, (int8_t *)rawp);
        break;
    }
    case FP_DTYPE_I8C: {
        /* Asymmetric per channel: leaky-ReLU maps are skewed (negatives
         * shrunk ten times), so spanning [min, max] with 256 levels keeps
         * about twice the resolution of a symmetric scale. */
        size_t ch = dims[0], per = n / ch;
        for (size_t k = 0; k < ch; k++) {
            const float *xc = x + k * per;
            float mn, mx;
            fpi_channel_range(xc, per, &mn, &mx);
            float scale = (mx - mn) / 255.f, inv = scale > 0 ? 1.f / scale : 0.f;
            memcpy(rawp + 8 * k, &mn, 4);
            memcpy(rawp + 8 * k + 4, &scale, 4);
            int8_t *q = (int8_t *)(rawp + 8 * ch + k * per);
            if (isfinite(scale) && isfinite(inv)) fpi_int8c_quant(xc, per, mn, inv, q);
            else fpi_int8c_quant_slow(xc, per, mn, inv, q);
        }
        break;
    }
    case FP_DTYPE_U8:
    default:
        return fpi_error(FP_EINVAL, "fp_fmap_encode: dtype %d is not a feature-map codec", (int)c.dtype);
    }
    t->raw_len = raw;
    size_t len = (size_t)raw;
    if (c.compress == FP_COMPRESS_LZ4) {
        int w = LZ4_compress_default((const char *)rawp, (char *)buf->data, (int)raw, (int)bound);
        if (w <= 0) return fpi_error(FP_EINVAL, "fp_fmap_encode: lz4 failed");
        len = (size_t)w;
    } else if (c.compress == FP_COMPRESS_ZSTD) {
        size_t w = ZSTD_compress(buf->data, bound, rawp, (size_t)raw, 1);
        if (ZSTD_isError(w)) return fpi_error(FP_EINVAL, "fp_fmap_encode: zstd: %s", ZSTD_getErrorName(w));
        len = w;
    }
    buf->len = len;
    t->data = buf->data;
    t->len = len;
    return FP_OK;
}

fp_status fp_fmap_decode(const fp_frame_tensor *t, float *out, size_t count, fp_buffer *scratch)
{
    uint64_t want = fp_frame_tensor_count(t), raw = fp_frame_tensor_raw_len(t);
    if (want != count || raw != t->raw_len)
        return fpi_error(FP_EINVAL, "fp_fmap_decode: layer %d holds %llu values, expected %zu",
                         (int)t->layer, (unsigned long long)want, count);
    const uint8_t *p = t->data;
    if (t->compress != FP_COMPRESS_NONE) {
        fp_status st = fpi_buffer_reserve(scratch, (size_t)raw);
        if (st) return st;
        if (t->compress == FP_COMPRESS_LZ4) {
            if (t->len > INT32_MAX || raw > INT32_MAX) return fpi_error(FP_ECORRUPT, "lz4 payload too large");
            int got = LZ4_decompress_safe((const char *)t->data, (char *)scratch->data, (int)t->len, (int)raw);
            if (got < 0 || (uint64_t)got != raw)
                return fpi_error(FP_ECORRUPT, "layer %d: lz4 payload does not decompress to %llu bytes",
                                 (int)t->layer, (unsigned long long)raw);
        } else if (t->compress == FP_COMPRESS_ZSTD) {
            size_t got = ZSTD_decompress(scratch->data, (size_t)raw, t->data, t->len);
            if (ZSTD_isError(got) || got != raw)
                return fpi_error(FP_ECORRUPT, "layer %d: zstd payload does not decompress to %llu bytes",
                                 (int)t->layer, (unsigned long long)raw);
        } else {
            return fpi_error(FP_EINVAL, "layer %d: unknown compression %d", (int)t->layer, (int)t->compress);
        }
        p = scratch->data;
    }
    switch (t->dtype) {
    case FP_DTYPE_F32:
        memcpy(out, p, count * 4);
        break;
    case FP_DTYPE_F16:
#ifdef FPI_HAVE_F16C
        if (fpi_has_f16c()) {
            fpi_f16c_decode(p, count, out);
            break;
        }
#endif
        for (size_t i = 0; i < count; i++) {
            fpi_half h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = (float)h;
        }
        break;
    case FP_DTYPE_I8:
        fpi_int8_dequant((const int8_t *)p, count, t->scale, out);
        break;
    case FP_DTYPE_I8C: {
        size_t ch = t->dims[0], per = count / ch;
        for (size_t k = 0; k < ch; k++) {
            float mn, s;
            memcpy(&mn, p + 8 * k, 4);
            memcpy(&s, p + 8 * k + 4, 4);
            if (!isfinite(mn) || !isfinite(s) || s < 0)
                return fpi_error(FP_ECORRUPT, "layer %d: channel %zu: minimum %g / scale %g not valid", (int)t->layer, k,
                                 (double)mn, (double)s);
            fpi_int8c_dequant((const int8_t *)(p + 8 * ch + k * per), per, mn, s, out + k * per);
        }
        break;
    }
    default:
        return fpi_error(FP_EINVAL, "layer %d: dtype %d is not a feature map", (int)t->layer, (int)t->dtype);
    }
    return FP_OK;
}
