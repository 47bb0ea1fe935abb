/*
 * fogpipe/frame.h — the wire format between pipeline stages: one frame
 * carries a frame id and the tensors that cross one cut (for a DAG, every
 * tensor produced before the cut and read after it), or an encoded image,
 * or a result. Byte-level specification: docs/wire-format.md.
 *
 * Frames are explicit and bounded: little-endian, encoded field by field, a
 * CRC32C per payload and one over the header; fp_frame_decode() validates
 * every field (ranges, dims, products without overflow, lengths that match
 * dims and dtype, a caller-given size limit) before anything is allocated,
 * and returns a view into the caller's buffer (no copy).
 *
 *     fp_frame f = {.kind = FP_FRAME_FEATURES, .id = 42, .n_tensors = 1};
 *     f.tensors[0] = (fp_frame_tensor){.layer = 7, .dtype = FP_DTYPE_F32, .rank = 3,
 *                                      .dims = {c, h, w}, .data = ptr, .len = c*h*w*4};
 *     size_t n = fp_frame_encoded_size(&f);  ... buf = malloc(n);
 *     fp_frame_encode(&f, buf, n, &used);
 *     fp_frame g;
 *     if (fp_frame_decode(buf, used, 64 << 20, &g)) ... // refuse, count, keep serving
 */
#ifndef FOGPIPE_FRAME_H
#define FOGPIPE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "fogpipe/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { FP_FRAME_VERSION = 2 };
enum { FP_FRAME_MAX_TENSORS = 16 };   /* tensors in one frame */
enum { FP_FRAME_MAX_RANK = 4 };
enum { FP_FRAME_HEADER_BYTES = 32 };  /* fixed header */
enum { FP_FRAME_MAX_IMAGE_SIDE = 65535 }; /* image_w, image_h */
enum { FP_FRAME_TENSOR_BYTES = 48 };  /* one tensor descriptor */

typedef enum fp_frame_kind {
    FP_FRAME_FEATURES = 1, /* tensors crossing a cut */
    FP_FRAME_IMAGE = 2,    /* one U8 tensor holding an encoded image file (JPEG/PNG/...) */
    FP_FRAME_RESULT = 3,   /* one U8 tensor holding UTF-8 JSON (detections, or an error); stages
                              pass result frames on unchanged */
} fp_frame_kind;

typedef enum fp_dtype {
    FP_DTYPE_F32 = 1,  /* float32 */
    FP_DTYPE_F16 = 2,  /* IEEE half */
    FP_DTYPE_I8 = 3,   /* int8, value = q * scale (per tensor) */
    FP_DTYPE_I8C = 4,  /* int8 per channel: dims[0] (float32 minimum, float32 scale) pairs, then the
                          int8 values q: value = minimum + (q + 128) * scale */
    FP_DTYPE_U8 = 5,   /* raw bytes */
} fp_dtype;

typedef enum fp_compress {
    FP_COMPRESS_NONE = 0,
    FP_COMPRESS_LZ4 = 1,
    FP_COMPRESS_ZSTD = 2,
} fp_compress;

typedef struct fp_frame_tensor {
    int32_t layer;                    /* producing layer; -1 = network input */
    fp_dtype dtype;                   /* element type of the decompressed payload */
    fp_compress compress;             /* compression of the payload on the wire */
    int rank;                         /* 1..FP_FRAME_MAX_RANK */
    uint32_t dims[FP_FRAME_MAX_RANK]; /* each >= 1; unused ones 1 */
    float scale;                      /* FP_DTYPE_I8: dequantisation scale; else 0 */
    uint64_t raw_len;                 /* bytes after decompression */
    const uint8_t *data;              /* payload as on the wire (not owned) */
    size_t len;                       /* its length in bytes */
} fp_frame_tensor;

typedef struct fp_frame {
    fp_frame_kind kind;                          /* what the frame carries */
    uint64_t id;                                 /* frame id, assigned by the gateway */
    int n_tensors;                               /* 0..FP_FRAME_MAX_TENSORS */
    fp_frame_tensor tensors[FP_FRAME_MAX_TENSORS]; /* in ascending layer order */
    uint32_t image_w, image_h;                   /* the original image's size, which the last stage
                                                    maps boxes to; 0, 0 when unknown */
} fp_frame;

/* Bytes fp_frame_encode() will write for f. */
size_t fp_frame_encoded_size(const fp_frame *f);

/* Encodes f into buf (cap bytes). Checks f like the decoder would (so a
 * frame that encodes also decodes). *used receives the length. FP_EINVAL for
 * an invalid frame, FP_ETOOBIG when cap is too small. Keeps no pointers. */
fp_status fp_frame_encode(const fp_frame *f, uint8_t *buf, size_t cap, size_t *used);

/* Decodes and validates a whole frame of len bytes. Every tensor's raw_len
 * must be <= max_raw and the sum of raw lengths <= max_raw. On success *out
 * describes the frame; its data pointers point into buf, which the caller
 * keeps alive. Errors: FP_EPROTO (bad magic, version, kind, field range,
 * lengths that disagree), FP_ECORRUPT (CRC mismatch), FP_ETOOBIG (over
 * max_raw). *out is untouched on failure. */
fp_status fp_frame_decode(const uint8_t *buf, size_t len, uint64_t max_raw, fp_frame *out);

/* Element count of a tensor (product of dims) and the raw length its dtype
 * implies; 0 on overflow. */
uint64_t fp_frame_tensor_count(const fp_frame_tensor *t);
uint64_t fp_frame_tensor_raw_len(const fp_frame_tensor *t);

/* CRC32C (Castagnoli) of n bytes, continuing from crc (start with 0). */
uint32_t fp_crc32c(uint32_t crc, const void *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* FOGPIPE_FRAME_H */
