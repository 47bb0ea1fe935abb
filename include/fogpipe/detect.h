/*
 * fogpipe/detect.h — turning a network's detection-head outputs into boxes,
 * with darknet's semantics for each head ([detection] YOLOv1, [region]
 * YOLOv2, [yolo] YOLOv3), and darknet's per-class non-maximum suppression.
 *
 * Preprocessing differs by head, as in darknet's own tools: YOLOv1 networks
 * see the image stretched to the input size (fp_image_resize), YOLOv2/v3
 * networks see it letterboxed (fp_image_letterbox). fp_detect_letterbox()
 * says which.
 *
 *     fp_detection *dets; int n;
 *     fp_detect_boxes(net, im.w, im.h, 0.5f, 0.45f, &dets, &n);
 *     for (int i = 0; i < n; i++) printf("%d %.2f\n", dets[i].cls, dets[i].score);
 *     free(dets);
 */
#ifndef FOGPIPE_DETECT_H
#define FOGPIPE_DETECT_H

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

/* 1 if the network's heads expect a letterboxed image ([region], [yolo]),
 * 0 for a stretched one ([detection]); -1 if it has no detection head. */
int fp_detect_letterbox(const fp_net *net);

/* Number of classes of the network's last detection head (0 if none). */
int fp_detect_classes(const fp_net *net);

/* Decodes every detection head of a network that has just run to its last
 * layer, applies NMS (skipped when nms <= 0), and returns one entry per
 * (box, class) whose score exceeds `thresh`, in darknet's order. img_w and
 * img_h are the original image's size. On success *dets is a new array
 * (free with free(); NULL when *n == 0). FP_EINVAL, FP_ESTATE (no head, or
 * not run), FP_ENOMEM. */
fp_status fp_detect_boxes(const fp_net *net, int img_w, int img_h, float thresh, float nms,
                          fp_detection **dets, int *n);

#ifdef __cplusplus
}
#endif
#endif /* FOGPIPE_DETECT_H */
