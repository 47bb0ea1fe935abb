/* test_frame.c — the stage-to-stage frame codec: round trips, and refusal of
 * truncated, oversized, corrupted and malformed frames (each field). */
#define _DEFAULT_SOURCE /* for MAP_ANONYMOUS */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fogpipe/frame.h"
#include "test.h"

static float fp_data_a[2 * 3 * 4];
static uint8_t fp_data_b[5 * 7];

/* A two-tensor feature frame (a DAG cut: layers 8 and 13). */
static fp_frame fp_sample(void)
{
    for (int i = 0; i < 24; i++) fp_data_a[i] = (float)i * .5f - 3;
    for (int i = 0; i < 35; i++) fp_data_b[i] = (uint8_t)(i * 7);
    fp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = FP_FRAME_FEATURES;
    f.id = 0x0102030405060708ull;
    f.n_tensors = 2;
    f.tensors[0] = (fp_frame_tensor){8, FP_DTYPE_F32, FP_COMPRESS_NONE, 3, {2, 3, 4, 1}, 0, 96,
                                     (const uint8_t *)fp_data_a, 96};
    f.tensors[1] = (fp_frame_tensor){13, FP_DTYPE_I8, FP_COMPRESS_NONE, 2, {5, 7, 1, 1}, .25f, 35,
                                     fp_data_b, 35};
    return f;
}

static uint8_t *fp_encode(const fp_frame *f, size_t *n)
{
    size_t cap = fp_frame_encoded_size(f);
    uint8_t *buf = malloc(cap);
    CHECK_OK(fp_frame_encode(f, buf, cap, n));
    CHECK(*n == cap);
    return buf;
}

static void test_crc32c_vectors(void)
{
    /* RFC 3720 B.4 test vectors */
    uint8_t zeros[32] = {0}, ones[32], inc[32];
    for (int i = 0; i < 32; i++) { ones[i] = 0xff; inc[i] = (uint8_t)i; }
    CHECK(fp_crc32c(0, zeros, 32) == 0x8A9136AAu);
    CHECK(fp_crc32c(0, ones, 32) == 0x62A8AB43u);
    CHECK(fp_crc32c(0, inc, 32) == 0x46DD794Eu);
    CHECK(fp_crc32c(0, "123456789", 9) == 0xE3069283u);
    /* incremental = one shot */
    CHECK(fp_crc32c(fp_crc32c(0, inc, 13), inc + 13, 19) == 0x46DD794Eu);
}

/* Bit by bit, the definition: the reference for the fast paths. */
static uint32_t fp_crc_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
}

/* The CPU's CRC instruction on three streams (buffers of 3 KiB and more),
 * one stream and the byte tail: every length around the block edges, every
 * alignment, split anywhere and continued. */
static void test_crc32c_fast_paths(void)
{
    size_t cap = 5 * 3 * 1024 + 64;
    uint8_t *buf = malloc(cap);
    uint32_t s = 12345;
    for (size_t i = 0; i < cap; i++) buf[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 24);
    size_t lens[] = {0, 1, 7, 8, 9, 63, 1023, 1024, 3071, 3072, 3073, 3079, 3080, 6143, 6144, 6151,
                     9216, 12289, 5 * 3 * 1024};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (size_t off = 0; off < 8; off++) {
            size_t n = lens[li];
            uint32_t want = fp_crc_bitwise(0, buf + off, n);
            CHECK(fp_crc32c(0, buf + off, n) == want);
            size_t cut = n / 3 + off;
            if (cut > n) cut = n;
            CHECK(fp_crc32c(fp_crc32c(0, buf + off, cut), buf + off + cut, n - cut) == want);
            CHECK(fp_crc32c(0x9e3779b9u, buf + off, n) == fp_crc_bitwise(0x9e3779b9u, buf + off, n));
        }
    free(buf);
}

static void test_roundtrip(void)
{
    fp_frame f = fp_sample(), g;
    size_t n;
    uint8_t *buf = fp_encode(&f, &n);
    CHECK(n == FP_FRAME_HEADER_BYTES + 2 * 48 + 96 + 35);
    CHECK_OK(fp_frame_decode(buf, n, 1 << 20, &g));
    CHECK(g.kind == FP_FRAME_FEATURES && g.id == f.id && g.n_tensors == 2);
    for (int i = 0; i < 2; i++) {
        CHECK(g.tensors[i].layer == f.tensors[i].layer);
        CHECK(g.tensors[i].dtype == f.tensors[i].dtype);
        CHECK(g.tensors[i].rank == f.tensors[i].rank);
        CHECK(!memcmp(g.tensors[i].dims, f.tensors[i].dims, sizeof g.tensors[i].dims));
        CHECK(g.tensors[i].len == f.tensors[i].len);
        CHECK(!memcmp(g.tensors[i].data, f.tensors[i].data, f.tensors[i].len));
        CHECK(g.tensors[i].data >= buf && g.tensors[i].data < buf + n); /* a view, no copy */
    }
    CHECK(g.tensors[1].scale == .25f);
    /* little-endian, field by field: the magic and the id sit where the spec says */
    CHECK(buf[0] == 'F' && buf[1] == 'P' && buf[2] == 'F' && buf[3] == '1');
    CHECK(buf[8] == 0x08 && buf[15] == 0x01);
    free(buf);

    /* image frame, empty feature frame */
    static const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xd9};
    fp_frame im = {FP_FRAME_IMAGE, 9, 1, {{-1, FP_DTYPE_U8, FP_COMPRESS_NONE, 1, {4, 1, 1, 1}, 0, 4, jpg, 4}}, 640, 480};
    buf = fp_encode(&im, &n);
    CHECK_OK(fp_frame_decode(buf, n, 100, &g));
    CHECK(g.kind == FP_FRAME_IMAGE && g.tensors[0].layer == -1 && g.image_w == 640 && g.image_h == 480);
    free(buf);
}

/* Every strict prefix is refused, placed right before a PROT_NONE page so a
 * read past the end faults. */
static void test_truncated(void)
{
    fp_frame f = fp_sample(), g;
    size_t n;
    uint8_t *buf = fp_encode(&f, &n);
    long page = sysconf(_SC_PAGESIZE);
    size_t span = ((n + (size_t)page - 1) / (size_t)page + 1) * (size_t)page;
    uint8_t *map = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map == MAP_FAILED) { free(buf); return; }
    uint8_t *guard = map + span - (size_t)page;
    CHECK(mprotect(guard, (size_t)page, PROT_NONE) == 0);
    for (size_t k = 0; k < n; k++) {
        memcpy(guard - k, buf, k);
        fp_status st = fp_frame_decode(guard - k, k, 1 << 20, &g);
        CHECK_MSG(st == FP_EPROTO || st == FP_ECORRUPT, "prefix %zu accepted (%s)", k, fp_status_name(st));
    }
    memcpy(guard - n, buf, n);
    CHECK_OK(fp_frame_decode(guard - n, n, 1 << 20, &g));
    munmap(map, span);
    free(buf);
}

/* Flipping any single bit is caught (by a check or a checksum). */
static void test_bit_flips(void)
{
    fp_frame f = fp_sample(), g;
    size_t n;
    uint8_t *buf = fp_encode(&f, &n);
    int accepted = 0;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) {
            buf[i] ^= (uint8_t)(1 << b);
            if (fp_frame_decode(buf, n, 1 << 20, &g) == FP_OK) accepted++;
            buf[i] ^= (uint8_t)(1 << b);
        }
    CHECK_MSG(accepted == 0, "%d single-bit corruptions accepted", accepted);
    free(buf);
}

/* Re-encodes with one field changed by `mut` (bypassing the encoder's own
 * checks by patching bytes and fixing the header CRC), expects `want`. */
static void fp_patch_expect(size_t off, const void *bytes, size_t len, fp_status want, const char *what)
{
    fp_frame f = fp_sample(), g;
    size_t n;
    uint8_t *buf = fp_encode(&f, &n);
    memcpy(buf + off, bytes, len);
    uint32_t crc = fp_crc32c(0, buf, 28);
    size_t nd = (size_t)buf[7] * 48;
    crc = fp_crc32c(crc, buf + FP_FRAME_HEADER_BYTES, FP_FRAME_HEADER_BYTES + nd <= n ? nd : n - FP_FRAME_HEADER_BYTES);
    for (int i = 0; i < 4; i++) buf[28 + i] = (uint8_t)(crc >> (8 * i));
    fp_status st = fp_frame_decode(buf, n, 1 << 20, &g);
    CHECK_MSG(st == want, "%s: got %s, want %s (%s)", what, fp_status_name(st), fp_status_name(want), fp_last_error());
    free(buf);
}

enum { H = FP_FRAME_HEADER_BYTES };

static void test_bad_fields(void)
{
    uint8_t v;
    uint32_t u;
    uint64_t q;
    v = 1;  fp_patch_expect(4, &v, 1, FP_EPROTO, "version 1");
    v = 3;  fp_patch_expect(4, &v, 1, FP_EPROTO, "version 3");
    u = 640; fp_patch_expect(20, &u, 4, FP_EPROTO, "image width without a height");
    u = 70000; fp_patch_expect(24, &u, 4, FP_EPROTO, "image height without a width");
    {
        uint32_t wh[2] = {640, 480};
        fp_patch_expect(20, wh, 8, FP_OK, "image size 640x480");
        wh[0] = 65536;
        fp_patch_expect(20, wh, 8, FP_EPROTO, "image width 65536");
    }
    v = 9;  fp_patch_expect(6, &v, 1, FP_EPROTO, "kind 9");
    v = 17; fp_patch_expect(7, &v, 1, FP_EPROTO, "17 tensors");
    v = 1;  fp_patch_expect(7, &v, 1, FP_ECORRUPT, "fewer tensors than payloads: payloads shift, checksums fail");
    u = 1000; fp_patch_expect(16, &u, 4, FP_EPROTO, "total length");
    v = 9;  fp_patch_expect(H + 4, &v, 1, FP_EPROTO, "dtype 9");
    v = 7;  fp_patch_expect(H + 5, &v, 1, FP_EPROTO, "compression 7");
    v = 0;  fp_patch_expect(H + 6, &v, 1, FP_EPROTO, "rank 0");
    v = 5;  fp_patch_expect(H + 6, &v, 1, FP_EPROTO, "rank 5");
    v = 1;  fp_patch_expect(H + 7, &v, 1, FP_EPROTO, "reserved byte");
    u = 0;  fp_patch_expect(H + 8, &u, 4, FP_EPROTO, "zero dim");
    u = 0xffffffffu; fp_patch_expect(H + 12, &u, 4, FP_EPROTO, "absurd dim");
    u = 1u << 30; fp_patch_expect(H + 12, &u, 4, FP_EPROTO, "dims disagree with length");
    u = 2;  fp_patch_expect(H + 20, &u, 4, FP_EPROTO, "unused dim not 1");
    u = 13; fp_patch_expect(H, &u, 4, FP_EPROTO, "layers not ascending");
    u = 0xfffffff0u; fp_patch_expect(H, &u, 4, FP_EPROTO, "layer -16");
    q = 95; fp_patch_expect(H + 32, &q, 8, FP_EPROTO, "raw length off by one");
    q = 1ull << 40; fp_patch_expect(H + 40, &q, 8, FP_EPROTO, "wire length past the end");
    u = 0;  fp_patch_expect(H + 48 + 24, &u, 4, FP_EPROTO, "int8 scale 0");
    u = 0x7fc00000u; fp_patch_expect(H + 48 + 24, &u, 4, FP_EPROTO, "int8 scale NaN");
    u = 0x3f800000u; fp_patch_expect(H + 24, &u, 4, FP_EPROTO, "f32 tensor with a scale");
    u = 0;  fp_patch_expect(H + 28, &u, 4, FP_ECORRUPT, "payload CRC");
}

static void test_limits(void)
{
    fp_frame f = fp_sample(), g;
    size_t n;
    uint8_t *buf = fp_encode(&f, &n);
    CHECK_ERR(fp_frame_decode(buf, n, 95, &g), FP_ETOOBIG);  /* one tensor over */
    CHECK_ERR(fp_frame_decode(buf, n, 100, &g), FP_ETOOBIG); /* the sum over */
    CHECK_OK(fp_frame_decode(buf, n, 131, &g));
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, buf, n);
    longer[n] = 0;
    CHECK_ERR(fp_frame_decode(longer, n + 1, 1 << 20, &g), FP_EPROTO); /* trailing byte */
    CHECK_ERR(fp_frame_decode(NULL, 0, 1 << 20, &g), FP_EPROTO);
    free(longer);
    /* the encoder refuses what the decoder would */
    size_t used;
    CHECK_ERR(fp_frame_encode(&f, buf, n - 1, &used), FP_ETOOBIG);
    fp_frame bad = f;
    bad.tensors[1].layer = 8;
    CHECK_ERR(fp_frame_encode(&bad, buf, n, &used), FP_EINVAL);
    bad = f;
    bad.tensors[0].raw_len = 95;
    CHECK_ERR(fp_frame_encode(&bad, buf, n, &used), FP_EINVAL);
    bad = f;
    bad.kind = FP_FRAME_RESULT;
    CHECK_ERR(fp_frame_encode(&bad, buf, n, &used), FP_EINVAL);
    free(buf);
}

/* Random bytes and random mutations never crash and never pass silently
 * unless they are a valid frame. */
static void test_random_garbage(void)
{
    fp_frame f = fp_sample(), g;
    size_t n;
    uint8_t *buf = fp_encode(&f, &n);
    uint8_t *m = malloc(n);
    uint64_t s = 12345;
    int ok = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(m, buf, n);
        int flips = 1 + (int)(s % 8);
        for (int k = 0; k < flips; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            m[(s >> 33) % n] = (uint8_t)(s >> 17);
        }
        size_t len = (s >> 40) % 4 == 0 ? (size_t)((s >> 20) % (n + 1)) : n;
        if (fp_frame_decode(m, len, 1 << 20, &g) == FP_OK) ok++;
    }
    CHECK_MSG(ok == 0 || ok < 5, "%d mutated frames accepted", ok);
    free(m);
    free(buf);
}

TEST_LIST = {
    {"crc32c_vectors", test_crc32c_vectors},
    {"crc32c_fast_paths", test_crc32c_fast_paths},
    {"roundtrip", test_roundtrip},
    {"truncated", test_truncated},
    {"bit_flips", test_bit_flips},
    {"bad_fields", test_bad_fields},
    {"limits", test_limits},
    {"random_garbage", test_random_garbage},
    {NULL, NULL},
};
