/* gw_side.c — frames for stage 0 and results back, for `run` and `gateway`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "gw_side.h"

int fp_input_mode_parse(const char *s)
{
    if (!strcmp(s, "auto")) return FP_INPUT_AUTO;
    if (!strcmp(s, "image")) return FP_INPUT_IMAGE;
    if (!strcmp(s, "pixels")) return FP_INPUT_PIXELS;
    return -1;
}

int fp_looks_like_image(const uint8_t *b, size_t n)
{
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return 1;          /* JPEG */
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return 1;                     /* PNG */
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return 1;                             /* BMP */
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return 1;  /* GIF */
    if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6') return 1;            /* PNM */
    return 0;
}

uint8_t *fp_gw_smaller_jpeg(const uint8_t *bytes, size_t len, const char *name, size_t *out_len)
{
    uint8_t *opt = NULL;
    /* Not re-encoded (progressive, CMYK, broken...): sent as it is; stage 0
     * answers what it cannot decode. */
    if (fp_image_jpeg_optimize(bytes, len, name, &opt, out_len) == FP_OK && *out_len < len) return opt;
    free(opt);
    *out_len = len;
    return NULL;
}

fp_status fp_gw_input_make(const fp_net *net, fp_input_mode mode, int optimize, const uint8_t *bytes, size_t len,
                           const char *name, fp_gw_input *in)
{
    memset(in, 0, sizeof *in);
    if (!fp_looks_like_image(bytes, len))
        return fpi_error(FP_EINVAL, "%s: not an image (expected JPEG, PNG, BMP, GIF or PNM bytes)", name);
    fp_shape s = fp_net_input_shape(net);
    uint64_t pixels = fp_shape_count(s) * 4;
    if (mode == FP_INPUT_IMAGE || (mode == FP_INPUT_AUTO && len < pixels)) {
        size_t n = 0;
        if (optimize && (in->jpeg = fp_gw_smaller_jpeg(bytes, len, name, &n))) {
            bytes = in->jpeg;
            len = n;
        }
        in->frame = (fp_frame){.kind = FP_FRAME_IMAGE, .n_tensors = 1};
        in->frame.tensors[0] = (fp_frame_tensor){.layer = -1, .dtype = FP_DTYPE_U8, .rank = 1,
                                                 .dims = {(uint32_t)len, 1, 1, 1}, .raw_len = len,
                                                 .data = bytes, .len = len};
        return FP_OK;
    }
    fp_image im = {0};
    fp_status st = fp_image_decode(bytes, len, name, &im);
    if (!st) st = fp_detect_prepare(net, &im, &in->sized);
    if (!st && in->sized.c != s.c)
        st = fpi_error(FP_EUNSUPPORTED, "%s: the network takes %d channels; the image has %d", name, s.c, in->sized.c);
    if (!st) {
        in->frame = (fp_frame){.kind = FP_FRAME_FEATURES, .n_tensors = 1, .image_w = (uint32_t)im.w,
                               .image_h = (uint32_t)im.h};
        in->frame.tensors[0] = (fp_frame_tensor){.layer = -1, .dtype = FP_DTYPE_F32, .rank = 3,
                                                 .dims = {(uint32_t)s.c, (uint32_t)s.h, (uint32_t)s.w, 1},
                                                 .raw_len = pixels, .data = (const uint8_t *)in->sized.data,
                                                 .len = pixels};
    }
    fp_image_free(&im);
    if (st) fp_gw_input_free(in);
    return st;
}

void fp_gw_input_free(fp_gw_input *in)
{
    fp_image_free(&in->sized);
    free(in->jpeg);
    memset(in, 0, sizeof *in);
}

cJSON *fp_gw_result(const char *json, const char *image, const fp_net *net, const fp_names *nm,
                    fp_detection **dets, int *n, int *w, int *h, char *err, size_t errn)
{
    *dets = NULL;
    *n = 0;
    cJSON *r = cJSON_Parse(json);
    const cJSON *jw = r ? cJSON_GetObjectItemCaseSensitive(r, "width") : NULL;
    const cJSON *jh = r ? cJSON_GetObjectItemCaseSensitive(r, "height") : NULL;
    *w = cJSON_IsNumber(jw) ? jw->valueint : 0;
    *h = cJSON_IsNumber(jh) ? jh->valueint : 0;
    cJSON_Delete(r);
    if (fp_result_parse(json, fp_detect_classes(net), dets, n, err, errn)) return NULL;
    cJSON *out = fp_detections_json(image, *w, *h, *dets, *n, net, nm);
    if (!out) snprintf(err, errn, "out of memory");
    return out;
}
