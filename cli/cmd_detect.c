/* cmd_detect.c — `fogpipe detect`: images in, JSON Lines of detections out,
 * optionally annotated copies of the images. */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "detect_out.h"
#include "common/common.h"
#include "fogpipe/detect.h"
#include "fogpipe/image.h"

/* Where scripts/setup.sh puts face-api's tiny face detector: the default
 * model of `fogpipe detect` (FP_DATA_DIR is the repository's data/). */
#ifndef FP_DATA_DIR
#define FP_DATA_DIR "data"
#endif
#define FP_DEFAULT_MODEL FP_DATA_DIR "/face-api/tiny_face_detector_model-weights_manifest.json"

static fp_flag fp_det_flags[] = {
    {"model", 'm', "PATH", "TF.js weights manifest of face-api's tiny face detector (default: " FP_DEFAULT_MODEL ", installed by scripts/setup.sh)", NULL},
    {"input-size", 's', "S", "input side for --model: a multiple of 32 in [128, 608] (default 416; a cfg fixes its own)", NULL},
    {"cfg", 'c', "PATH", "darknet .cfg file (instead of --model)", NULL},
    {"weights", 'w', "PATH", "darknet .weights file (with --cfg)", NULL},
    {"names", 'n', "PATH", "class names, one per line (default: the model's, \"face\", or \"class N\")", NULL},
    {"threshold", 0, "T", "score threshold, >= 0 (default: 0.5; 0.2 for YOLOv1 heads, as darknet; YOLOv1 scores are not bounded by 1)", NULL},
    {"nms", 0, "N", "NMS IoU threshold, 0 = off (default: 0.4 for the face detector and YOLOv1, 0.45 otherwise)", NULL},
    {"annotate", 'a', "DIR", "write a copy of each image with boxes and labels drawn into DIR", NULL},
    {"threads", 't', "N", "kernel threads (default 1)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_det_cmd = {
    "detect", "[--model PATH [--input-size S] | --cfg PATH --weights PATH] [--names PATH] [--threshold T] [--nms N] [--annotate DIR] IMAGE...",
    "Detects faces (face-api's tiny face detector, the default model) or, with\n"
    "--cfg, the objects of a darknet network in JPEG, PNG, BMP or PPM images.\n"
    "Prints one JSON object per image on stdout:\n"
    "  {\"image\": PATH, \"width\": W, \"height\": H, \"detections\": [{\"label\": L,\n"
    "   \"class\": I, \"score\": S, \"box\": {\"x\": X, \"y\": Y, \"w\": W, \"h\": H}}]}\n"
    "with boxes in the original image's pixels (x, y = top-left corner).",
    "Images are prepared as each model's own tools do: face-api pads to a square\n"
    "(black on the right or bottom) and resizes as TensorFlow does; darknet\n"
    "stretches to the network input for YOLOv1 ([detection]) networks and\n"
    "letterboxes for YOLOv2/v3 ([region], [yolo]).\n"
    "An image that cannot be read is reported on stderr and skipped; the exit\n"
    "status is then 1.",
    fp_det_flags, 1, 1 << 20};

static int fp_detect_one(fp_net *net, const char *path, float thresh, float nms,
                         const fp_names *nm, const char *annotate)
{
    fp_image im = {0};
    fp_detection *d = NULL;
    int n = 0, rc = 0;
    fp_shape in = fp_net_input_shape(net);
    if (fp_image_load(path, &im)) return fp_cli_fail();
    fp_status st = FP_OK;
    if (im.c != in.c)
        st = fpi_error(FP_EUNSUPPORTED, "%s: the network takes %d channels; images decode to %d (RGB)", path, in.c,
                       im.c);
    if (st || fp_detect_run(net, &im, fp_net_layer_count(net) - 1) ||
        fp_detect_boxes(net, im.w, im.h, thresh, nms, &d, &n)) {
        rc = fp_cli_fail();
        goto done;
    }
    fp_cli_print_detections(path, im.w, im.h, d, n, net, nm);
    if (annotate) {
        char out[4096];
        fp_annotated_path(annotate, path, out, sizeof out);
        fp_annotate(&im, d, n, net, nm);
        if (fp_image_save(&im, out)) rc = fp_cli_fail();
    }
done:
    free(d);
    fp_image_free(&im);
    return rc;
}

/* Loads face-api's tiny face detector from `model` (NULL: the default one),
 * ready to run. On failure prints one line and returns FP_EXIT_FAIL. */
static int fp_load_face_model(const char *model, int size, int threads, fp_net **out)
{
    fp_net *net = NULL;
    *out = NULL;
    if (!model) {
        FILE *f = fopen(FP_DEFAULT_MODEL, "rb");
        if (!f) {
            fprintf(stderr,
                    "fogpipe: no --model or --cfg given and the default face detector is not installed at %s: "
                    "run `bash scripts/setup.sh` (it fetches @vladmandic/face-api with npm)\n",
                    FP_DEFAULT_MODEL);
            return FP_EXIT_FAIL;
        }
        fclose(f);
        model = FP_DEFAULT_MODEL;
    }
    if (fp_net_load_tfjs(model, size, &net) || fp_net_set_threads(net, threads) || fp_net_setup(net)) {
        fp_net_destroy(net);
        return fp_cli_fail();
    }
    *out = net;
    return 0;
}

int fp_cmd_detect(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_det_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *cfg = fp_flag_get(&fp_det_cmd, "cfg"), *weights = fp_flag_get(&fp_det_cmd, "weights");
    const char *model = fp_flag_get(&fp_det_cmd, "model");
    const char *names = fp_flag_get(&fp_det_cmd, "names"), *annotate = fp_flag_get(&fp_det_cmd, "annotate");
    long threads = 1, size = 416;
    if (cfg && model) {
        fprintf(stderr, "fogpipe detect: --cfg and --model exclude each other (see fogpipe detect --help)\n");
        return FP_EXIT_USAGE;
    }
    if (cfg && !weights) return fp_args_require(&fp_det_cmd, "weights");
    if (!cfg && weights) return fp_args_require(&fp_det_cmd, "cfg");
    if ((rc = fp_flag_int(&fp_det_cmd, "threads", 1, 256, &threads)) ||
        (rc = fp_flag_int(&fp_det_cmd, "input-size", FP_TFJS_MIN_INPUT, FP_TFJS_MAX_INPUT, &size)))
        return rc;
    if (size % 32) {
        fprintf(stderr, "fogpipe detect: --input-size: expected a multiple of 32 in [%d, %d] (got %ld)\n",
                FP_TFJS_MIN_INPUT, FP_TFJS_MAX_INPUT, size);
        return FP_EXIT_USAGE;
    }
    fp_names nm = {0};
    fp_net *net = NULL;
    if (names && (rc = fp_names_load(names, &nm))) goto done;
    if (annotate && (rc = fp_cli_mkdir(annotate))) goto done;
    rc = cfg ? fp_cli_load_net(cfg, weights, (int)threads, &net)
             : fp_load_face_model(model, (int)size, (int)threads, &net);
    if (rc) goto done;
    if (fp_detect_input_prep(net) == FP_DETECT_PREP_NONE) {
        fprintf(stderr, "fogpipe: %s: the network has no detection head ([detection], [region] or [yolo])\n", cfg);
        rc = FP_EXIT_FAIL;
        goto done;
    }
    float t0, n0;
    fp_detect_defaults(net, &t0, &n0);
    double thresh = t0, nms = n0;
    if ((rc = fp_flag_float(&fp_det_cmd, "threshold", 0, 1e6, &thresh)) ||
        (rc = fp_flag_float(&fp_det_cmd, "nms", 0, 1, &nms)))
        goto done;
    if (nm.n && nm.n < fp_detect_classes(net))
        fprintf(stderr, "fogpipe: warning: %s has %d names for %d classes\n", names, nm.n,
                fp_detect_classes(net));
    for (int i = 0; i < npos; i++)
        if (fp_detect_one(net, pos[i], (float)thresh, (float)nms, &nm, annotate)) rc = FP_EXIT_FAIL;
done:
    fp_net_destroy(net);
    fp_names_free(&nm);
    return rc;
}
