/* frame.c — encoding and validating decoding of stage-to-stage frames.
 * Layout in docs/wire-format.md; every multi-byte field little-endian,
 * written and read byte by byte (never a struct on the wire). */
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "fogpipe/frame.h"
#include "fogpipe/net.h"

#define FPI_FRAME_MAGIC 0x31465046u /* "FPF1" */
#define FPI_FRAME_MAX_COUNT ((uint64_t)1 << 40)

static void fpi_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void fpi_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void fpi_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t fpi_get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t fpi_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t fpi_get64(const uint8_t *p) { return (uint64_t)fpi_get32(p) | (uint64_t)fpi_get32(p + 4) << 32; }

static float fpi_f32_from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static uint32_t fpi_bits_from_f32(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

uint64_t fp_frame_tensor_count(const fp_frame_tensor *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->rank && i < FP_FRAME_MAX_RANK; i++) {
        if (t->dims[i] == 0 || n > FPI_FRAME_MAX_COUNT / t->dims[i]) return 0;
        n *= t->dims[i];
    }
    return n;
}

uint64_t fp_frame_tensor_raw_len(const fp_frame_tensor *t)
{
    uint64_t n = fp_frame_tensor_count(t);
    if (!n) return 0;
    switch (t->dtype) {
    case FP_DTYPE_F32: return n * 4;
    case FP_DTYPE_F16: return n * 2;
    case FP_DTYPE_I8:
    case FP_DTYPE_U8: return n;
    case FP_DTYPE_I8C: return n + (uint64_t)t->dims[0] * 8;
    }
    return 0;
}

/* Checks one tensor's fields (shared by encoder and decoder); `prev_layer`
 * enforces strictly ascending layers. */
static fp_status fpi_check_tensor(const fp_frame_tensor *t, int i, int32_t prev_layer,
                                  fp_frame_kind kind, uint64_t max_raw)
{
    if (t->dtype < FP_DTYPE_F32 || t->dtype > FP_DTYPE_U8)
        return fpi_error(FP_EPROTO, "frame tensor %d: unknown dtype %d", i, (int)t->dtype);
    if ((int)t->compress < FP_COMPRESS_NONE || t->compress > FP_COMPRESS_ZSTD)
        return fpi_error(FP_EPROTO, "frame tensor %d: unknown compression %d", i, (int)t->compress);
    if (t->rank < 1 || t->rank > FP_FRAME_MAX_RANK)
        return fpi_error(FP_EPROTO, "frame tensor %d: rank %d outside 1..%d", i, t->rank, FP_FRAME_MAX_RANK);
    for (int d = 0; d < FP_FRAME_MAX_RANK; d++) {
        uint32_t v = t->dims[d];
        if (d < t->rank ? (v < 1 || v > (1u << 30)) : v != 1)
            return fpi_error(FP_EPROTO, "frame tensor %d: dim %d is %u", i, d, v);
    }
    if (t->layer < -1 || t->layer >= FP_MAX_LAYERS || t->layer <= prev_layer)
        return fpi_error(FP_EPROTO, "frame tensor %d: layer %d (must be ascending, -1..%d)", i,
                         (int)t->layer, FP_MAX_LAYERS - 1);
    uint64_t raw = fp_frame_tensor_raw_len(t);
    if (!raw) return fpi_error(FP_EPROTO, "frame tensor %d: element count overflows", i);
    if (raw != t->raw_len)
        return fpi_error(FP_EPROTO, "frame tensor %d: raw length %llu, dims and dtype imply %llu", i,
                         (unsigned long long)t->raw_len, (unsigned long long)raw);
    if (raw > max_raw)
        return fpi_error(FP_ETOOBIG, "frame tensor %d: %llu bytes exceeds the limit of %llu", i,
                         (unsigned long long)raw, (unsigned long long)max_raw);
    if (t->dtype == FP_DTYPE_I8 ? !(isfinite(t->scale) && t->scale > 0) : t->scale != 0)
        return fpi_error(FP_EPROTO, "frame tensor %d: scale %g not valid for its dtype", i, (double)t->scale);
    if (t->compress == FP_COMPRESS_NONE && t->len != raw)
        return fpi_error(FP_EPROTO, "frame tensor %d: uncompressed payload of %zu bytes, expected %llu",
                         i, t->len, (unsigned long long)raw);
    if ((kind == FP_FRAME_IMAGE || kind == FP_FRAME_RESULT) && (t->dtype != FP_DTYPE_U8 || t->rank != 1))
        return fpi_error(FP_EPROTO, "frame tensor %d: image and result frames carry one rank-1 U8 tensor", i);
    return FP_OK;
}

/* Checks the frame-level fields. */
static fp_status fpi_check_frame(fp_frame_kind kind, int n, uint32_t w, uint32_t h)
{
    if ((w == 0) != (h == 0) || w > FP_FRAME_MAX_IMAGE_SIDE || h > FP_FRAME_MAX_IMAGE_SIDE)
        return fpi_error(FP_EPROTO, "frame: image size %ux%u (both 0, or both in 1..%d)", (unsigned)w,
                         (unsigned)h, FP_FRAME_MAX_IMAGE_SIDE);
    if (kind < FP_FRAME_FEATURES || kind > FP_FRAME_RESULT)
        return fpi_error(FP_EPROTO, "frame: unknown kind %d", (int)kind);
    if (n < 0 || n > FP_FRAME_MAX_TENSORS)
        return fpi_error(FP_EPROTO, "frame: %d tensors (at most %d)", n, FP_FRAME_MAX_TENSORS);
    if (kind != FP_FRAME_FEATURES && n != 1)
        return fpi_error(FP_EPROTO, "frame: an image or result frame carries exactly one tensor (got %d)", n);
    return FP_OK;
}

size_t fp_frame_encoded_size(const fp_frame *f)
{
    size_t n = FP_FRAME_HEADER_BYTES + (size_t)f->n_tensors * FP_FRAME_TENSOR_BYTES;
    for (int i = 0; i < f->n_tensors && i < FP_FRAME_MAX_TENSORS; i++) n += f->tensors[i].len;
    return n;
}

fp_status fp_frame_encode(const fp_frame *f, uint8_t *buf, size_t cap, size_t *used)
{
    fp_status st = fpi_check_frame(f->kind, f->n_tensors, f->image_w, f->image_h);
    if (st) return fpi_error_context(FP_EINVAL, "fp_frame_encode");
    int32_t prev = -2;
    for (int i = 0; i < f->n_tensors; i++) {
        if ((st = fpi_check_tensor(&f->tensors[i], i, prev, f->kind, UINT64_MAX)))
            return fpi_error_context(FP_EINVAL, "fp_frame_encode");
        prev = f->tensors[i].layer;
    }
    size_t need = fp_frame_encoded_size(f);
    if (need > UINT32_MAX) return fpi_error(FP_ETOOBIG, "fp_frame_encode: frame of %zu bytes exceeds 4 GiB", need);
    if (need > cap) return fpi_error(FP_ETOOBIG, "fp_frame_encode: needs %zu bytes, buffer has %zu", need, cap);
    uint8_t *p = buf + FP_FRAME_HEADER_BYTES, *payload = p + (size_t)f->n_tensors * FP_FRAME_TENSOR_BYTES;
    for (int i = 0; i < f->n_tensors; i++) {
        const fp_frame_tensor *t = &f->tensors[i];
        fpi_put32(p, (uint32_t)t->layer);
        p[4] = (uint8_t)t->dtype;
        p[5] = (uint8_t)t->compress;
        p[6] = (uint8_t)t->rank;
        p[7] = 0;
        for (int d = 0; d < FP_FRAME_MAX_RANK; d++) fpi_put32(p + 8 + 4 * d, t->dims[d]);
        fpi_put32(p + 24, fpi_bits_from_f32(t->scale));
        fpi_put32(p + 28, fp_crc32c(0, t->data, t->len));
        fpi_put64(p + 32, t->raw_len);
        fpi_put64(p + 40, t->len);
        if (t->len) memcpy(payload, t->data, t->len);
        payload += t->len;
        p += FP_FRAME_TENSOR_BYTES;
    }
    fpi_put32(buf, FPI_FRAME_MAGIC);
    fpi_put16(buf + 4, FP_FRAME_VERSION);
    buf[6] = (uint8_t)f->kind;
    buf[7] = (uint8_t)f->n_tensors;
    fpi_put64(buf + 8, f->id);
    fpi_put32(buf + 16, (uint32_t)need);
    fpi_put32(buf + 20, f->image_w);
    fpi_put32(buf + 24, f->image_h);
    uint32_t crc = fp_crc32c(0, buf, 28);
    crc = fp_crc32c(crc, buf + FP_FRAME_HEADER_BYTES, (size_t)f->n_tensors * FP_FRAME_TENSOR_BYTES);
    fpi_put32(buf + 28, crc);
    *used = need;
    return FP_OK;
}

fp_status fp_frame_decode(const uint8_t *buf, size_t len, uint64_t max_raw, fp_frame *out)
{
    if (!buf || len < FP_FRAME_HEADER_BYTES)
        return fpi_error(FP_EPROTO, "frame: %zu bytes, shorter than the %d-byte header", len, FP_FRAME_HEADER_BYTES);
    if (fpi_get32(buf) != FPI_FRAME_MAGIC)
        return fpi_error(FP_EPROTO, "frame: bad magic 0x%08x", fpi_get32(buf));
    if (fpi_get16(buf + 4) != FP_FRAME_VERSION)
        return fpi_error(FP_EPROTO, "frame: version %u, this build speaks %d", fpi_get16(buf + 4), FP_FRAME_VERSION);
    fp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = (fp_frame_kind)buf[6];
    f.n_tensors = buf[7];
    f.id = fpi_get64(buf + 8);
    f.image_w = fpi_get32(buf + 20);
    f.image_h = fpi_get32(buf + 24);
    fp_status st = fpi_check_frame(f.kind, f.n_tensors, f.image_w, f.image_h);
    if (st) return st;
    if (fpi_get32(buf + 16) != len)
        return fpi_error(FP_EPROTO, "frame: header says %u bytes, message has %zu", fpi_get32(buf + 16), len);
    size_t desc = (size_t)f.n_tensors * FP_FRAME_TENSOR_BYTES;
    if (len < FP_FRAME_HEADER_BYTES + desc)
        return fpi_error(FP_EPROTO, "frame: %zu bytes cannot hold %d tensor descriptors", len, f.n_tensors);
    uint32_t crc = fp_crc32c(0, buf, 28);
    crc = fp_crc32c(crc, buf + FP_FRAME_HEADER_BYTES, desc);
    if (crc != fpi_get32(buf + 28))
        return fpi_error(FP_ECORRUPT, "frame %llu: header checksum mismatch", (unsigned long long)f.id);
    const uint8_t *p = buf + FP_FRAME_HEADER_BYTES;
    size_t off = FP_FRAME_HEADER_BYTES + desc;
    uint64_t total_raw = 0;
    int32_t prev = -2;
    for (int i = 0; i < f.n_tensors; i++, p += FP_FRAME_TENSOR_BYTES) {
        fp_frame_tensor *t = &f.tensors[i];
        t->layer = (int32_t)fpi_get32(p);
        t->dtype = (fp_dtype)p[4];
        t->compress = (fp_compress)p[5];
        t->rank = p[6];
        if (p[7] != 0) return fpi_error(FP_EPROTO, "frame tensor %d: reserved byte is %u", i, p[7]);
        for (int d = 0; d < FP_FRAME_MAX_RANK; d++) t->dims[d] = fpi_get32(p + 8 + 4 * d);
        t->scale = fpi_f32_from_bits(fpi_get32(p + 24));
        uint32_t want_crc = fpi_get32(p + 28);
        t->raw_len = fpi_get64(p + 32);
        uint64_t wire = fpi_get64(p + 40);
        if (wire > len - off)
            return fpi_error(FP_EPROTO, "frame tensor %d: payload of %llu bytes runs past the end (%zu left)",
                             i, (unsigned long long)wire, len - off);
        t->len = (size_t)wire;
        t->data = buf + off;
        if ((st = fpi_check_tensor(t, i, prev, f.kind, max_raw))) return st;
        total_raw += t->raw_len;
        if (total_raw > max_raw)
            return fpi_error(FP_ETOOBIG, "frame: %llu bytes of tensors exceed the limit of %llu",
                             (unsigned long long)total_raw, (unsigned long long)max_raw);
        if (fp_crc32c(0, t->data, t->len) != want_crc)
            return fpi_error(FP_ECORRUPT, "frame %llu tensor %d: payload checksum mismatch",
                             (unsigned long long)f.id, i);
        off += t->len;
        prev = t->layer;
    }
    if (off != len)
        return fpi_error(FP_EPROTO, "frame: %zu trailing bytes after the last payload", len - off);
    *out = f;
    return FP_OK;
}
