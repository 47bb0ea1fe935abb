/* gw_side.h — the gateway side shared by `fogpipe run` and `fogpipe
 * gateway`: turning an image file's bytes into a frame for stage 0, and a
 * last stage's result into the JSON object `fogpipe detect` prints. */
#ifndef FP_CLI_GW_SIDE_H
#define FP_CLI_GW_SIDE_H

#include "detect_out.h"
#include "pipeline/pipeline.h"

/* How images go to stage 0. */
typedef enum fp_input_mode {
    FP_INPUT_AUTO = 0, /* the encoded file when it is fewer bytes than the input's float32 pixels */
    FP_INPUT_IMAGE,    /* always the encoded file: stage 0 decodes and prepares it */
    FP_INPUT_PIXELS,   /* always prepared here: float32 pixels of the network input */
} fp_input_mode;

/* Parses "auto", "image" or "pixels"; -1 otherwise. */
int fp_input_mode_parse(const char *s);

/* What a frame for stage 0 needs kept alive until it is submitted. */
typedef struct fp_gw_input {
    fp_frame frame;   /* ready to submit */
    fp_image sized;   /* prepared pixels (FP_INPUT_PIXELS) */
    uint8_t *jpeg;    /* the JPEG re-encoded smaller (malloc), or NULL */
} fp_gw_input;

/* 1 if the bytes start like a JPEG, PNG, BMP, GIF or PNM file. */
int fp_looks_like_image(const uint8_t *b, size_t n);

/* The image file's JPEG re-encoded losslessly with optimised Huffman
 * tables (fp_image_jpeg_optimize) when that is smaller: a malloc'd buffer of
 * *out_len bytes; else NULL, with *out_len = len (send the file as it is). */
uint8_t *fp_gw_smaller_jpeg(const uint8_t *bytes, size_t len, const char *name, size_t *out_len);

/* Makes the frame for one image file's bytes (kept by the caller until
 * submitted). A JPEG sent as it is is first re-encoded losslessly with
 * optimised Huffman tables (fp_image_jpeg_optimize) when `optimize` is set
 * and that makes it smaller; stage 0 decodes the same pixels either way.
 * FP_EINVAL/FP_ECORRUPT for what is not an image. */
fp_status fp_gw_input_make(const fp_net *net, fp_input_mode mode, int optimize, const uint8_t *bytes, size_t len,
                           const char *name, fp_gw_input *in);
void fp_gw_input_free(fp_gw_input *in);

/* Turns a result into the printed object for `image`; NULL with err set on
 * an error result or malformed JSON. *dets and *n receive the boxes (free()). */
cJSON *fp_gw_result(const char *json, const char *image, const fp_net *net, const fp_names *nm,
                    fp_detection **dets, int *n, int *w, int *h, char *err, size_t errn);

#endif
