/*
 * fogpipe/fmap.h — feature-map codecs for the links between stages:
 * float32 as is, float16, int8 with one scale per tensor or a minimum and
 * a scale per channel,
 * each optionally followed by lz4 or zstd (Debian's liblz4 / libzstd).
 * A codec turns a float tensor into an fp_frame_tensor payload and back.
 *
 *     fp_fmap_codec c = {FP_DTYPE_I8, FP_COMPRESS_LZ4};
 *     fp_buffer buf = {0};
 *     fp_frame_tensor t;
 *     fp_fmap_encode(c, 8, x, dims, 3, &buf, &t);   // t.data points into buf
 *     ... send ...
 *     fp_fmap_decode(&t, y, count, &scratch);        // y: count floats
 *     fp_buffer_free(&buf);
 */
#ifndef FOGPIPE_FMAP_H
#define FOGPIPE_FMAP_H

#include <stddef.h>
#include <stdint.h>

#include "fogpipe/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fp_fmap_codec {
    fp_dtype dtype;       /* FP_DTYPE_F32, F16, I8 (per tensor) or I8C (per channel) */
    fp_compress compress; /* FP_COMPRESS_NONE, LZ4 or ZSTD */
} fp_fmap_codec;

/* A growable byte buffer owned by the caller (free with fp_buffer_free). */
typedef struct fp_buffer {
    uint8_t *data; /* owned */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
} fp_buffer;

void fp_buffer_free(fp_buffer *b);

/* Parses "none", "fp16", "int8", "int8c", each optionally "+lz4" or "+zstd"
 * ("fp16+lz4"). FP_EINVAL with a message otherwise. */
fp_status fp_fmap_codec_parse(const char *s, fp_fmap_codec *out);

/* Writes the canonical name of a codec ("int8+zstd") into buf. */
const char *fp_fmap_codec_name(fp_fmap_codec c, char *buf, size_t n);

/* Encodes count = prod(dims) floats of tensor `layer` into buf (replacing
 * its contents) and describes the payload in *t (t->data points into buf:
 * valid until buf changes). Values must be finite. rank 1..4; I8C treats
 * dims[0] as the channel axis. FP_EINVAL, FP_ENOMEM. */
fp_status fp_fmap_encode(fp_fmap_codec c, int32_t layer, const float *x, const uint32_t *dims, int rank,
                          fp_buffer *buf, fp_frame_tensor *t);

/* Decodes a validated tensor (from fp_frame_decode) into `count` floats at
 * out; scratch holds the decompressed bytes when the payload is compressed.
 * FP_EINVAL if count differs from the tensor's; FP_ECORRUPT if the payload
 * does not decompress to exactly its raw length; FP_ENOMEM. */
fp_status fp_fmap_decode(const fp_frame_tensor *t, float *out, size_t count, fp_buffer *scratch);

#ifdef __cplusplus
}
#endif
#endif /* FOGPIPE_FMAP_H */
