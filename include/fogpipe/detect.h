/*
 * fogpipe/detect.h — turning a network's detection-head outputs into boxes,
 * with darknet's semantics for each head ([detection] YOLOv1, [region]
 * YOLOv2, [yolo] YOLOv3), and darknet's per-class non-maximum suppression.
 *
 * Preprocessing differs by model, as in each model's own tools: darknet's
 * YOLOv1 networks see the image stretched to the input size
 * (fp_image_resize), YOLOv2/v3 networks see it letterboxed
 * (fp_image_letterbox), TF.js models (face-api's tiny face detector) see it
 * padded to a square (fp_image_pad_square). fp_detect_prepare() does the
 * right one; fp_detect_input_prep() says which.
 *
 *     fp_detection *dets; int n; float thresh, nms;
 *     fp_detect_run(net, &im, fp_net_layer_count(net) - 1);
 *     fp_detect_defaults(net, &thresh, &nms);
 *     fp_detect_boxes(net, im.w, im.h, thresh, nms, &dets, &n);
 *     for (int i = 0; i < n; i++) printf("%d %.2f\n", dets[i].cls, dets[i].score);
 *     free(dets);
 */
#ifndef FOGPIPE_DETECT_H
#define FOGPIPE_DETECT_H

#include "fogpipe/image.h"
#include "fogpipe/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fp_detection {
    float x, y;       /* top-left corner in image pixels (clamped to the image) */
    float w, h;       /* size in image pixels (clamped to the image) */
    float objectness; /* the box's objectness (YOLOv1: confidence) */
    int cls;          /* class index */
    float score;      /* objectness × class probability, > threshold */
} fp_detection;

/* How a network's input is made from an image. */
typedef enum fp_detect_prep {
    FP_DETECT_PREP_NONE = -1,      /* no detection head */
    FP_DETECT_PREP_STRETCH = 0,    /* darknet [detection] (YOLOv1): fp_image_resize */
    FP_DETECT_PREP_LETTERBOX = 1,  /* darknet [region], [yolo]: fp_image_letterbox */
    FP_DETECT_PREP_PAD_SQUARE = 2, /* TF.js models (fp_net_load_tfjs): fp_image_pad_square */
} fp_detect_prep;

/* Which preparation the network's model expects. */
fp_detect_prep fp_detect_input_prep(const fp_net *net);

/* 1 if the network expects a letterboxed image (darknet [region], [yolo]),
 * 0 for any other preparation (see fp_detect_input_prep); -1 if it has no
 * detection head. */
int fp_detect_letterbox(const fp_net *net);

/* Prepares `im` for the network's input as its model expects (see
 * fp_detect_prep): *out is a new image of the input's width and height
 * (fp_image_free). FP_EINVAL (no detection head, bad image), FP_ETOOBIG,
 * FP_ENOMEM. */
fp_status fp_detect_prepare(const fp_net *net, const fp_image *im, fp_image *out);

/* fp_detect_prepare straight into the network's input (fp_net_input; the
 * network set up): no image in between where the preparation allows it
 * (TF.js models). FP_EUNSUPPORTED when the image's channels are not the
 * input's, else as fp_detect_prepare, and FP_ESTATE before fp_net_setup. */
fp_status fp_detect_prepare_input(fp_net *net, const fp_image *im);

/* fp_detect_prepare_input, then fp_net_run of layers 0..last without a
 * callback: the network's input made from `im` and run. Where the first
 * layer makes its input rows as it goes (TF.js models, one thread, the fast
 * kernels), the prepared rows are made as it reads them, never written
 * whole: the input tensor (fp_net_input) is then not written (after any
 * run its contents are the arena's: later layers may reuse its memory).
 * The results are the same bits either way. Errors as those two. */
fp_status fp_detect_run(fp_net *net, const fp_image *im, int last);

/* The model's default score and NMS IoU thresholds: darknet's (YOLOv1
 * 0.2 / 0.4, YOLOv2/v3 0.5 / 0.45) or the TF.js model's (face-api: 0.5 /
 * 0.4). Either pointer may be NULL. */
void fp_detect_defaults(const fp_net *net, float *thresh, float *nms);

/* The model's own name for class `cls` ("face"), or NULL when the model
 * has none (darknet networks: names come from a .names file). The string is
 * static. */
const char *fp_detect_class_name(const fp_net *net, int cls);

/* Number of classes of the network's last detection head (0 if none). */
int fp_detect_classes(const fp_net *net);

/* Decodes every detection head of a network that has just run to its last
 * layer, applies NMS (skipped when nms <= 0), and returns one entry per
 * (box, class) whose score exceeds `thresh`, in darknet's order. img_w and
 * img_h are the original image's size. Boxes are mapped back through the
 * model's preparation (for TF.js models exactly as face-api does: relative
 * to the image scaled so its long side is the input size, rounded). On success *dets is a new array
 * (free with free(); NULL when *n == 0). FP_EINVAL, FP_ESTATE (no head, or
 * not run), FP_ENOMEM. */
fp_status fp_detect_boxes(const fp_net *net, int img_w, int img_h, float thresh, float nms,
                          fp_detection **dets, int *n);

#ifdef __cplusplus
}
#endif
#endif /* FOGPIPE_DETECT_H */
