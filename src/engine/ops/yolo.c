/* yolo.c — [yolo]: the YOLOv3 head. Per masked anchor: logistic on x, y,
 * objectness and every class. Layout n × (4+1+classes) × h × w. */
#include <stdio.h>
#include <string.h>

#include "engine/ops/heads.h"

fp_status fpi_yolo_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    fpi_head_params *p = &l->p.head;
    fp_status st;
    if (fpi_cfg_str(s, "map"))
        return fpi_cfg_error(b->cfg, s, FP_EUNSUPPORTED, "map= is not supported");
    int n_mask = 0;
    p->coords = 4;
    if ((st = fpi_cfg_int(b->cfg, s, "classes", 20, 1, 100000, &p->classes)) ||
        (st = fpi_cfg_int(b->cfg, s, "num", 1, 1, FPI_MAX_ANCHORS, &p->total)) ||
        (st = fpi_cfg_int_list(b->cfg, s, "mask", p->mask, FPI_MAX_ANCHORS, 0, p->total - 1, &n_mask)) ||
        (st = fpi_head_anchors(b->cfg, s, p, 2 * p->total)))
        return st;
    if (n_mask == 0) {
        n_mask = p->total;
        for (int i = 0; i < n_mask; i++) p->mask[i] = i;
    }
    p->num = n_mask;
    int c = p->num * (p->classes + 5);
    if (l->in.c != c)
        return fpi_cfg_error(b->cfg, s, FP_ECORRUPT,
                             "%d masked anchors, classes=%d need %d input channels, the previous layer gives %d",
                             p->num, p->classes, c, l->in.c);
    l->out = l->in;
    l->flops = 4 * fp_shape_count(l->out);
    snprintf(l->desc, sizeof l->desc, "%d anchors, %d classes", p->num, p->classes);
    return FP_OK;
}

/* One task of fpi_head_task (heads.h). */
static void fpi_yolo_chunk(int t, void *vctx)
{
    const fpi_head_task *c = vctx;
    const fpi_layer *l = c->l;
    int loc0, loc1, n = fpi_head_task_cells(c, t, &loc0, &loc1);
    for (int e = 0; e < 5 + l->p.head.classes; e++)
        if (e != 2 && e != 3) fpi_activate(c->out + fpi_head_entry(l, n, loc0, e), (size_t)(loc1 - loc0), FP_ACT_LOGISTIC);
}

void fpi_yolo_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    memcpy(out, src[0], fp_shape_count(l->out) * sizeof(float));
    /* logistic on x, y, objectness and classes, split over the pool */
    fpi_head_task t;
    fpi_parallel_for(x->pool, fpi_head_task_init(&t, l, src[0], out), fpi_yolo_chunk, &t);
}
