/* detection.c — [detection]: the YOLOv1 head. The input is a flat vector:
 * side²·classes class scores, side²·num confidences, side²·num·4 boxes. At
 * inference the layer only applies the optional per-cell class softmax;
 * boxes are decoded by src/detect. */
#include <stdio.h>
#include <string.h>

#include "engine/net_impl.h"

fp_status fpi_detection_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    fpi_head_params *p = &l->p.head;
    fp_status st;
    if ((st = fpi_cfg_int(b->cfg, s, "coords", 1, 1, 64, &p->coords)) ||
        (st = fpi_cfg_int(b->cfg, s, "classes", 1, 1, 100000, &p->classes)) ||
        (st = fpi_cfg_int(b->cfg, s, "num", 1, 1, 1024, &p->num)) ||
        (st = fpi_cfg_int(b->cfg, s, "side", 7, 1, 1024, &p->side)) ||
        (st = fpi_cfg_int(b->cfg, s, "softmax", 0, 0, 1, &p->softmax)) ||
        (st = fpi_cfg_int(b->cfg, s, "sqrt", 0, 0, 1, &p->sqrt)))
        return st;
    if (p->coords != 4)
        return fpi_cfg_error(b->cfg, s, FP_EUNSUPPORTED, "coords=%d: only 4 box coordinates are supported", p->coords);
    size_t need = (size_t)p->side * p->side * ((size_t)(1 + p->coords) * p->num + p->classes);
    if (need != fp_shape_count(l->in))
        return fpi_cfg_error(b->cfg, s, FP_ECORRUPT,
                             "side=%d, num=%d, classes=%d need %zu inputs, the previous layer gives %zu",
                             p->side, p->num, p->classes, need, fp_shape_count(l->in));
    l->out = l->in;
    snprintf(l->desc, sizeof l->desc, "%dx%d x%d, %d classes", p->side, p->side, p->num, p->classes);
    return FP_OK;
}

void fpi_detection_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    const fpi_head_params *p = &l->p.head;
    memcpy(out, src[0], fp_shape_count(l->out) * sizeof(float));
    if (!p->softmax) return;
    for (int i = 0; i < p->side * p->side; i++)
        fpi_softmax(out + (size_t)i * p->classes, p->classes, 1.f, 1, out + (size_t)i * p->classes);
}
