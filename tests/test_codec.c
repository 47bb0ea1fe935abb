/* test_codec.c — feature-map codecs: exactness of f32, bounds of the fp16
 * and int8 errors, compression round trips, and refusal of corrupt payloads. */
#include <math.h>
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
    {"refusals", test_refusals},
    {NULL, NULL},
};
