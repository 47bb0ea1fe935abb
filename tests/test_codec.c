/* test_codec.c — feature-map codecs: exactness of f32, bounds of the fp16
 * and int8 errors, the vectorised int8 codecs against a scalar reference
 * bit for bit, compression round trips, and refusal of corrupt payloads. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fogpipe/fmap.h"
#include "test.h"

enum { C = 6, H = 9, W = 11, N = C * H * W };

/* A feature map with a different range per channel (as after a conv). */
static void fp_fill(float *x)
{
    uint64_t s = 99;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float u = (float)((s >> 40) & 0xffffff) / 16777216.f;
        int ch = i / (H * W);
        x[i] = (u - .3f) * (float)(1 << ch); /* channel k spans ~2^k */
        if (i % 7 == 0) x[i] = 0;            /* leaky/relu outputs have runs of zeros */
    }
}

/* Encodes, frames, decodes the frame, decodes the tensor: the full path. */
static void fp_trip(const char *name, const float *x, float *y)
{
    fp_fmap_codec c;
    CHECK_OK(fp_fmap_codec_parse(name, &c));
    fp_buffer buf = {0}, scratch = {0};
    fp_frame_tensor t;
    uint32_t dims[3] = {C, H, W};
    CHECK_OK(fp_fmap_encode(c, 5, x, dims, 3, &buf, &t));
    fp_frame f = {.kind = FP_FRAME_FEATURES, .id = 1, .n_tensors = 1, .tensors = {t}}, g;
    size_t cap = fp_frame_encoded_size(&f), used;
    uint8_t *wire = malloc(cap);
    CHECK_OK(fp_frame_encode(&f, wire, cap, &used));
    CHECK_OK(fp_frame_decode(wire, used, 1 << 20, &g));
    CHECK_OK(fp_fmap_decode(&g.tensors[0], y, N, &scratch));
    printf("  %-11s %6zu bytes on the wire (f32: %d)\n", name, t.len, N * 4);
    free(wire);
    fp_buffer_free(&buf);
    fp_buffer_free(&scratch);
}

static void test_parse(void)
{
    fp_fmap_codec c;
    char b[32];
    const char *ok[] = {"none", "fp16", "int8", "int8c", "none+lz4", "fp16+zstd", "int8+lz4", "int8c+zstd"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        CHECK_OK(fp_fmap_codec_parse(ok[i], &c));
        CHECK(!strcmp(fp_fmap_codec_name(c, b, sizeof b), ok[i]));
    }
    const char *bad[] = {"", "fp32", "int8+", "+lz4", "int8+gzip", "int8+lz4+zstd", "none+lz4x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_ERR(fp_fmap_codec_parse(bad[i], &c), FP_EINVAL);
    CHECK_ERR(fp_fmap_codec_parse(NULL, &c), FP_EINVAL);
}

static void test_roundtrips(void)
{
    static float x[N], y[N];
    fp_fill(x);
    const char *lossless[] = {"none", "none+lz4", "none+zstd"};
    for (int i = 0; i < 3; i++) {
        fp_trip(lossless[i], x, y);
        CHECK_MSG(!memcmp(x, y, sizeof x), "%s not exact", lossless[i]);
    }
    const char *half[] = {"fp16", "fp16+lz4", "fp16+zstd"};
    for (int i = 0; i < 3; i++) {
        fp_trip(half[i], x, y);
        for (int k = 0; k < N; k++)
            CHECK_MSG(fabsf(x[k] - y[k]) <= fabsf(x[k]) * (1.f / 2048) + 1e-7f, "%s [%d] %g vs %g", half[i], k, x[k], y[k]);
    }
    /* int8 per tensor: error <= half a step of the global scale */
    float m = 0;
    for (int k = 0; k < N; k++) m = fmaxf(m, fabsf(x[k]));
    fp_trip("int8+zstd", x, y);
    for (int k = 0; k < N; k++) CHECK_MSG(fabsf(x[k] - y[k]) <= m / 127 * .5001f, "int8 [%d]", k);
    /* per channel: error bounded by half of each channel's own step,
     * (max - min) / 255 */
    fp_trip("int8c+lz4", x, y);
    for (int ch = 0; ch < C; ch++) {
        float lo = x[ch * H * W], hi = lo;
        for (int k = 0; k < H * W; k++) {
            lo = fminf(lo, x[ch * H * W + k]);
            hi = fmaxf(hi, x[ch * H * W + k]);
        }
        for (int k = 0; k < H * W; k++) {
            int i = ch * H * W + k;
            CHECK_MSG(fabsf(x[i] - y[i]) <= (hi - lo) / 255 * .5001f + 1e-6f, "int8c ch %d [%d]", ch, k);
        }
    }
    /* an all-zero tensor survives int8 (scale falls back to 1) */
    static float z[N];
    fp_trip("int8", z, y);
    for (int k = 0; k < N; k++) CHECK(y[k] == 0);
}

/* fp16 (vectorised where the CPU converts in hardware) rounds exactly as
 * the compiler's _Float16 does, for every length and across the range:
 * subnormal halves, large values, overflow to infinity. */
static void test_fp16_exact(void)
{
    enum { M = 1003 };
    static float x[M], y[M];
    fp_buffer buf = {0}, scratch = {0};
    fp_frame_tensor t;
    uint32_t s = 12345;
    for (int i = 0; i < M; i++) {
        s = s * 1664525u + 1013904223u;
        float e = ldexpf(1.f, (int)(s >> 27) - 26); /* 2^-26 .. 2^5 */
        x[i] = ((float)(s & 0xffff) / 65536.f - .5f) * e;
    }
    x[0] = 70000.f;  /* beyond half's range: infinity */
    x[1] = 65504.f;  /* its largest finite value */
    x[2] = 3e-8f;    /* a subnormal half */
    x[3] = -0.f;
    for (int n = 1; n <= M; n += n < 40 ? 1 : 97) {
        uint32_t d[3] = {(uint32_t)n, 1, 1};
        fp_fmap_codec c = {FP_DTYPE_F16, FP_COMPRESS_NONE};
        CHECK_OK(fp_fmap_encode(c, 0, x, d, 3, &buf, &t));
        int bad = 0;
        for (int i = 0; i < n; i++) {
            _Float16 h = (_Float16)x[i], got;
            memcpy(&got, t.data + 2 * i, 2);
            bad += memcmp(&h, &got, 2) != 0;
        }
        CHECK_MSG(bad == 0, "n=%d: %d values round differently from _Float16", n, bad);
        CHECK_OK(fp_fmap_decode(&t, y, (size_t)n, &scratch));
        bad = 0;
        for (int i = 0; i < n; i++) {
            _Float16 h;
            memcpy(&h, t.data + 2 * i, 2);
            float want = (float)h;
            bad += memcmp(&want, &y[i], 4) != 0;
        }
        CHECK_MSG(bad == 0, "n=%d: %d values decode differently from _Float16", n, bad);
    }
    CHECK(isinf(y[0]) && y[1] == 65504.f && y[2] > 0 && signbit(y[3]));
    fp_buffer_free(&buf);
    fp_buffer_free(&scratch);
}

/* The int8 codecs as they were before vectorising: nearbyintf per value,
 * fminf/fmaxf/fabsf reductions, the same clamps. One difference: a NaN
 * product (only when the scale is unusable: inv infinite, or a channel
 * range beyond FLT_MAX) went through an undefined float-to-int8 cast that
 * gave 0 on x86-64 and arm64; here it is 0 by definition. */
static float fp_ref_int8(const float *x, size_t n, int8_t *q)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    float scale = m > 0 ? m / 127.f : 1.f, inv = 1.f / scale;
    for (size_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * inv);
        q[i] = v != v ? 0 : (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v));
    }
    return scale;
}

/* fminf(m, v) / fmaxf(m, v), keeping m on a tie. Only -0 and +0 tie with
 * different bits; C leaves the pick open, and since GCC may swap fminf's
 * operands, the old loop's answer was that of glibc's x86-64 fminf (its
 * first argument) only as long as GCC kept the order. The codec now fixes
 * it that way. */
static float fp_ref_min(float m, float v) { return m == v ? m : fminf(m, v); }
static float fp_ref_max(float m, float v) { return m == v ? m : fmaxf(m, v); }

/* Per channel: ch (minimum, scale) float pairs, then ch * per values. */
static void fp_ref_int8c(const float *x, size_t ch, size_t per, uint8_t *out)
{
    for (size_t k = 0; k < ch; k++) {
        const float *xc = x + k * per;
        float mn = xc[0], mx = xc[0];
        for (size_t i = 1; i < per; i++) {
            mn = fp_ref_min(mn, xc[i]);
            mx = fp_ref_max(mx, xc[i]);
        }
        float scale = (mx - mn) / 255.f, inv = scale > 0 ? 1.f / scale : 0.f;
        memcpy(out + 8 * k, &mn, 4);
        memcpy(out + 8 * k + 4, &scale, 4);
        int8_t *q = (int8_t *)(out + 8 * ch + k * per);
        for (size_t i = 0; i < per; i++) {
            float v = nearbyintf((xc[i] - mn) * inv);
            q[i] = v != v ? 0 : (int8_t)((v > 255 ? 255 : (v < 0 ? 0 : v)) - 128);
        }
    }
}

/* Encodes x (ch channels of per values) with int8 and int8c and compares
 * bytes, scale and the decoded floats with the reference; what names the
 * case in failure messages. Decoding is skipped where the reference scale
 * is not finite (the decoder refuses it). */
static void fp_check_int8(const float *x, uint32_t ch, uint32_t per, const char *what)
{
    size_t n = (size_t)ch * per;
    uint8_t *ref = malloc(8 * (size_t)ch + n);
    float *y = malloc(n * sizeof *y), *want = malloc(n * sizeof *want);
    fp_buffer buf = {0}, scratch = {0};
    fp_frame_tensor t;
    uint32_t dims[2] = {ch, per};

    float scale = fp_ref_int8(x, n, (int8_t *)ref);
    CHECK_OK(fp_fmap_encode((fp_fmap_codec){FP_DTYPE_I8, FP_COMPRESS_NONE}, 3, x, dims, 2, &buf, &t));
    CHECK_MSG(t.len == n && memcmp(&t.scale, &scale, 4) == 0, "%s int8 (%ux%u): scale %a, reference %a", what, ch,
              per, (double)t.scale, (double)scale);
    size_t bad = 0, first = 0;
    for (size_t i = n; i-- > 0;)
        if (t.data[i] != ref[i]) bad++, first = i;
    CHECK_MSG(bad == 0, "%s int8 (%ux%u): %zu values differ, first [%zu] = %d, reference %d (x %a)", what, ch, per,
              bad, first, (int8_t)t.data[first], (int8_t)ref[first], (double)x[first]);
    CHECK_OK(fp_fmap_decode(&t, y, n, &scratch));
    for (size_t i = 0; i < n; i++) want[i] = (float)(int8_t)ref[i] * scale;
    CHECK_MSG(memcmp(y, want, n * sizeof *y) == 0, "%s int8 (%ux%u): decoded floats differ", what, ch, per);

    fp_ref_int8c(x, ch, per, ref);
    CHECK_OK(fp_fmap_encode((fp_fmap_codec){FP_DTYPE_I8C, FP_COMPRESS_NONE}, 3, x, dims, 2, &buf, &t));
    CHECK_MSG(t.len == 8 * (size_t)ch + n, "%s int8c (%ux%u): %zu bytes", what, ch, per, t.len);
    bad = 0;
    for (size_t i = 8 * (size_t)ch + n; i-- > 0;)
        if (t.data[i] != ref[i]) bad++, first = i;
    CHECK_MSG(bad == 0, "%s int8c (%ux%u): %zu bytes differ, first [%zu] = %#x, reference %#x (%s)", what, ch, per,
              bad, first, t.data[first], ref[first], first < 8 * (size_t)ch ? "channel minimum/scale" : "value");
    int finite = 1;
    for (size_t k = 0; k < ch; k++) {
        float s;
        memcpy(&s, ref + 8 * k + 4, 4);
        finite &= isfinite(s);
    }
    if (finite && bad == 0) {
        CHECK_OK(fp_fmap_decode(&t, y, n, &scratch));
        for (size_t k = 0; k < ch; k++) {
            float mn, s;
            memcpy(&mn, ref + 8 * k, 4);
            memcpy(&s, ref + 8 * k + 4, 4);
            const int8_t *q = (const int8_t *)(ref + 8 * ch + k * per);
            for (size_t i = 0; i < per; i++) want[k * per + i] = mn + (float)(q[i] + 128) * s;
        }
        CHECK_MSG(memcmp(y, want, n * sizeof *y) == 0, "%s int8c (%ux%u): decoded floats differ", what, ch, per);
    }
    fp_buffer_free(&buf);
    fp_buffer_free(&scratch);
    free(ref);
    free(y);
    free(want);
}

static uint64_t fp_rng = 7;
static float fp_uniform(void) /* [0, 1) */
{
    fp_rng = fp_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(fp_rng >> 40) / 16777216.f;
}

/* Some x near base + (k + .5) / inv for which the float product
 * (x - base) * inv is exactly k + .5 but the exact one is not: a fused
 * multiply-add into the rounding step would round those the other way half
 * the time. Returns 0 if there is none within 64 ulps. */
static int fp_near_tie(float base, float inv, int k, float *out)
{
    float lo = base + ((float)k + .5f) / inv, hi = lo;
    for (int s = 0; s < 64; s++) {
        for (int side = 0; side < 2; side++) {
            float c = side ? hi : lo;
            double d = (double)(c - base) * (double)inv; /* exact: 24 x 24 bits */
            if ((float)d == (float)k + .5f && d != (double)k + .5) {
                *out = c;
                return 1;
            }
        }
        lo = nextafterf(lo, -INFINITY);
        hi = nextafterf(hi, INFINITY);
    }
    return 0;
}

/* The vectorised int8 / int8c encoders and decoders give exactly the
 * reference's bytes and floats: random maps of every size class (tails
 * shorter than any vector), exact ties after scaling (to even), near ties,
 * signed zeros where they decide a channel's minimum or maximum, all-zero,
 * subnormal and beyond-range tensors (the scalar fallbacks). */
static void test_int8_exact(void)
{
    enum { BIG = 3 * (1 << 18) + 5 };
    float *x = malloc(BIG * sizeof *x);
    const uint32_t sizes[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 255, 1000, 4099};
    char what[64];

    /* random leaky-ReLU-like and symmetric maps, 1..4 channels */
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (uint32_t ch = 1; ch <= 4; ch++)
            for (int kind = 0; kind < 3; kind++) {
                uint32_t per = sizes[si];
                float e = ldexpf(1.f, (int)(fp_uniform() * 40) - 20);
                for (size_t i = 0; i < (size_t)ch * per; i++) {
                    float v = (fp_uniform() - .4f) * e * (float)(1 + i / per);
                    if (kind == 0 && v < 0) v *= .1f;
                    if (kind == 2 && fp_uniform() < .3f) v = fp_uniform() < .5f ? 0.f : -0.f;
                    x[i] = v;
                }
                snprintf(what, sizeof what, "random kind %d", kind);
                fp_check_int8(x, ch, per, what);
            }

    /* one large tensor */
    for (size_t i = 0; i < BIG; i++) {
        float v = (fp_uniform() - .3f) * 6.f;
        x[i] = v < 0 ? v * .1f : v;
    }
    x[BIG / 3] = 0.f;
    x[BIG / 2] = -0.f;
    fp_check_int8(x, 1, BIG, "large");
    fp_check_int8(x, 5, BIG / 5, "large, 5 channels");

    /* exact ties: max|x| = 127 * 2^-3, so scale 2^-3 and x * inv = k + .5
     * exactly; per channel the range is 255 * 2^-3 from a minimum of -3 */
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        uint32_t per = sizes[si] < 2 ? 2 : sizes[si];
        for (uint32_t i = 0; i < per; i++) x[i] = ((float)((int)(i % 254) - 127) + .5f) / 8.f;
        x[per / 2] = 127.f / 8.f;
        fp_check_int8(x, 1, per, "int8 ties");
        for (uint32_t i = 0; i < per; i++) x[i] = -3.f + ((float)(i % 255) + .5f) / 8.f;
        x[0] = -3.f;
        x[per - 1] = -3.f + 255.f / 8.f;
        fp_check_int8(x, 1, per, "int8c ties");
    }

    /* near ties, for scales that are not powers of two */
    {
        uint32_t n = 0;
        float m = 10.f, inv = 1.f / (m / 127.f);
        x[n++] = m;
        for (int k = -127; k < 127; k++) n += fp_near_tie(0.f, inv, k, &x[n]);
        CHECK_MSG(n > 100, "only %u int8 near ties", n);
        fp_check_int8(x, 1, n, "int8 near ties");
        float mn = -1.f, mx = 9.f;
        inv = 1.f / ((mx - mn) / 255.f);
        n = 0;
        x[n++] = mn;
        x[n++] = mx;
        for (int k = 0; k < 255; k++) n += fp_near_tie(mn, inv, k, &x[n]);
        CHECK_MSG(n > 100, "only %u int8c near ties", n);
        fp_check_int8(x, 1, n, "int8c near ties");
    }

    /* signed zeros where a channel's minimum (positive values) or maximum
     * (negative values) is a zero: +0 only, -0 only, both with -0 last,
     * both with +0 last, -0 at index 1 among +0s; and zeros alone */
    for (size_t si = 0; si < 10; si++)
        for (int neg = 0; neg < 2; neg++)
            for (int zp = 0; zp < 5; zp++)
                for (int alone = 0; alone < 2; alone++) {
                    uint32_t per = sizes[si] + 2;
                    for (uint32_t i = 0; i < per; i++) {
                        float v = (fp_uniform() + .01f) * (neg ? -1.f : 1.f);
                        int zero = alone || i % 3 == 1 || i == per - 1;
                        int minus = zp == 1 || (zp == 2 && i == per - 1) || (zp == 3 && i != per - 1) ||
                                    (zp == 4 && i == 1);
                        x[i] = zero ? (minus ? -0.f : 0.f) : v;
                    }
                    snprintf(what, sizeof what, "signed zeros (%s, pattern %d%s)", neg ? "negative" : "positive", zp,
                             alone ? ", zeros only" : "");
                    fp_check_int8(x, 1, per, what);
                }
    for (uint32_t i = 0; i < 64; i++) x[i] = i % 16 == 5 ? 0.f : -0.f;
    fp_check_int8(x, 4, 16, "-0 with one +0 per channel");

    /* all zero: int8 scale falls back to 1, int8c to a zero range */
    memset(x, 0, 1000 * sizeof *x);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0] && sizes[si] <= 1000; si++)
        fp_check_int8(x, 1, sizes[si], "all zero");

    /* subnormal maps (inv overflows: the scalar fallbacks), and a channel
     * range beyond FLT_MAX (an infinite int8c scale) */
    for (uint32_t i = 0; i < 40; i++) x[i] = (float)((int)(i % 5) - 2) * 1e-44f;
    x[7] = -0.f;
    fp_check_int8(x, 1, 40, "subnormal");
    fp_check_int8(x, 4, 10, "subnormal, 4 channels");
    for (uint32_t i = 0; i < 40; i++) x[i] = (fp_uniform() - .5f) * FLT_MAX * 1.9f;
    x[3] = -FLT_MAX;
    x[30] = FLT_MAX;
    fp_check_int8(x, 1, 40, "beyond range");
    free(x);
}

/* Any inf or NaN is refused by every codec with the same message as before
 * the vectorised scan, naming the first bad index. */
static void test_nonfinite(void)
{
    static float x[4099];
    const uint32_t sizes[] = {1, 7, 15, 16, 17, 33, 64, 4099};
    const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    const fp_dtype dt[] = {FP_DTYPE_F32, FP_DTYPE_F16, FP_DTYPE_I8, FP_DTYPE_I8C};
    fp_buffer buf = {0};
    fp_frame_tensor t;
    char want[128];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        uint32_t n = sizes[si], dims[1] = {n};
        for (uint32_t i = 0; i < n; i++) x[i] = (float)i * .25f - 3.f;
        const uint32_t at[3] = {0, n / 2, n - 1};
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 4; b++)
                for (int d = 0; d < 4; d++) {
                    x[at[a]] = bad[b];
                    if (a == 0 && n > 2) x[n - 1] = bad[(b + 1) % 4]; /* a later one is not the one named */
                    fp_fmap_codec c = {dt[d], d & 1 ? FP_COMPRESS_LZ4 : FP_COMPRESS_NONE};
                    CHECK_ERR(fp_fmap_encode(c, 4, x, dims, 1, &buf, &t), FP_EINVAL);
                    snprintf(want, sizeof want, "fp_fmap_encode: layer 4 value %u is not finite", at[a]);
                    CHECK_MSG(!strcmp(fp_last_error(), want), "n=%u dtype %d: \"%s\", expected \"%s\"", n, (int)dt[d],
                              fp_last_error(), want);
                    x[at[a]] = 1.f;
                    x[n - 1] = 1.f;
                }
        /* the largest finite values are accepted */
        x[0] = FLT_MAX;
        x[n - 1] = -FLT_MAX;
        CHECK_OK(fp_fmap_encode((fp_fmap_codec){FP_DTYPE_I8, FP_COMPRESS_NONE}, 4, x, dims, 1, &buf, &t));
    }
    fp_buffer_free(&buf);
}

static void test_refusals(void)
{
    static float x[N], y[N];
    fp_fill(x);
    fp_fmap_codec c = {FP_DTYPE_F16, FP_COMPRESS_LZ4};
    fp_buffer buf = {0}, scratch = {0};
    fp_frame_tensor t;
    uint32_t dims[3] = {C, H, W};
    CHECK_OK(fp_fmap_encode(c, 0, x, dims, 3, &buf, &t));
    CHECK_ERR(fp_fmap_decode(&t, y, N - 1, &scratch), FP_EINVAL);
    /* a compressed payload that is cut short or altered never decodes to garbage silently */
    fp_frame_tensor cut = t;
    cut.len = t.len / 2;
    CHECK_ERR(fp_fmap_decode(&cut, y, N, &scratch), FP_ECORRUPT);
    c.compress = FP_COMPRESS_ZSTD;
    CHECK_OK(fp_fmap_encode(c, 0, x, dims, 3, &buf, &t));
    cut = t;
    cut.len = t.len - 3;
    CHECK_ERR(fp_fmap_decode(&cut, y, N, &scratch), FP_ECORRUPT);
    /* non-finite input is refused, not encoded */
    x[17] = NAN;
    CHECK_ERR(fp_fmap_encode(c, 0, x, dims, 3, &buf, &t), FP_EINVAL);
    x[17] = INFINITY;
    CHECK_ERR(fp_fmap_encode(c, 0, x, dims, 3, &buf, &t), FP_EINVAL);
    fp_buffer_free(&buf);
    fp_buffer_free(&scratch);
}

TEST_LIST = {
    {"parse", test_parse},
    {"roundtrips", test_roundtrips},
    {"fp16_exact", test_fp16_exact},
    {"int8_exact", test_int8_exact},
    {"nonfinite", test_nonfinite},
    {"refusals", test_refusals},
    {NULL, NULL},
};
