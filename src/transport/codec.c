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

/* Symmetric int8: q = round(x / scale), scale = max|x| / 127 (1 if all zero). */
static float fpi_int8_scale(const float *x, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m > 0 ? m / 127.f : 1.f;
}

static void fpi_int8_quant(const float *x, size_t n, float scale, int8_t *q)
{
    float inv = 1.f / scale;
    for (size_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * inv);
        q[i] = (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v));
    }
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
    for (uint64_t i = 0; i < count; i++)
        if (!isfinite(x[i])) return fpi_error(FP_EINVAL, "fp_fmap_encode: layer %d value %llu is not finite", (int)layer, (unsigned long long)i);
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
    case FP_DTYPE_I8:
        t->scale = fpi_int8_scale(x, n);
        fpi_int8_quant(x, n, t->scale, (int8_t *)rawp);
        break;
    case FP_DTYPE_I8C: {
        /* Asymmetric per channel: leaky-ReLU maps are skewed (negatives
         * shrunk ten times), so spanning [min, max] with 256 levels keeps
         * about twice the resolution of a symmetric scale. */
        size_t ch = dims[0], per = n / ch;
        for (size_t k = 0; k < ch; k++) {
            const float *xc = x + k * per;
            float mn = xc[0], mx = xc[0];
            for (size_t i = 1; i < per; i++) {
                mn = fminf(mn, xc[i]);
                mx = fmaxf(mx, xc[i]);
            }
            float scale = (mx - mn) / 255.f, inv = scale > 0 ? 1.f / scale : 0.f;
            memcpy(rawp + 8 * k, &mn, 4);
            memcpy(rawp + 8 * k + 4, &scale, 4);
            int8_t *q = (int8_t *)(rawp + 8 * ch + k * per);
            for (size_t i = 0; i < per; i++) {
                float v = nearbyintf((xc[i] - mn) * inv);
                q[i] = (int8_t)((v > 255 ? 255 : (v < 0 ? 0 : v)) - 128);
            }
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
        for (size_t i = 0; i < count; i++) out[i] = (float)(int8_t)p[i] * t->scale;
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
            const int8_t *q = (const int8_t *)(p + 8 * ch + k * per);
            for (size_t i = 0; i < per; i++) out[k * per + i] = mn + (float)(q[i] + 128) * s;
        }
        break;
    }
    default:
        return fpi_error(FP_EINVAL, "layer %d: dtype %d is not a feature map", (int)t->layer, (int)t->dtype);
    }
    return FP_OK;
}
