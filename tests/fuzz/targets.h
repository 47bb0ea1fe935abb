/* targets.h — the fuzz targets' bodies, callable with or without libFuzzer.
 * Each fpz_<name>() feeds `size` untrusted bytes to one parser and returns 0;
 * a bug shows up as a sanitizer report, a crash or a hang, never as a
 * return value. tests/fuzz/fuzz_main.c wraps one of them as
 * LLVMFuzzerTestOneInput; tests/test_fuzz_replay.c replays the corpora. */
#ifndef FP_TESTS_FUZZ_TARGETS_H
#define FP_TESTS_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

int fpz_cfg(const uint8_t *data, size_t size);     /* darknet cfg text: fp_net_parse_cfg */
int fpz_weights(const uint8_t *data, size_t size); /* .weights bytes for a fixed small cfg */
int fpz_tfjs(const uint8_t *data, size_t size);    /* manifest JSON, NUL, shard bytes */
int fpz_plan(const uint8_t *data, size_t size);    /* plan JSON: fp_plan_parse */
int fpz_cluster(const uint8_t *data, size_t size); /* cluster JSON: fp_cluster_parse */
int fpz_frame(const uint8_t *data, size_t size);   /* mode byte, then a frame: decode + fmap */
int fpz_image(const uint8_t *data, size_t size);   /* image file bytes: fp_image_decode */
int fpz_result(const uint8_t *data, size_t size);  /* gateway result JSON: fp_result_parse */
int fpz_http(const uint8_t *data, size_t size);    /* raw bytes of one HTTP connection */
int fpz_key(const uint8_t *data, size_t size);     /* CURVE key file: fpp_curve_key_load */
int fpz_stagew(const uint8_t *data, size_t size);  /* range byte + stage weights blob: fp_net_load_stage_weights */

typedef struct fpz_target {
    const char *name;
    int (*fn)(const uint8_t *data, size_t size);
} fpz_target;

/* Every target, ending with {NULL, NULL}. */
extern const fpz_target fpz_targets[];

/* Stops the HTTP server fpz_http started (if any) and removes temp files. */
void fpz_cleanup(void);

#endif
