/* region.c — [region]: the YOLOv2 head. Per anchor: logistic on x, y and
 * objectness; classes get a softmax (softmax=1) or a logistic. Layout
 * n × (coords+1+classes) × h × w. */
#include <stdio.h>
#include <string.h>

#include "engine/ops/heads.h"

fp_status fpi_head_anchors(const fpi_cfg *cfg, const fpi_cfg_section *s, fpi_head_params *p, int need)
{
    for (int i = 0; i < 2 * FPI_MAX_ANCHORS; i++) p->biases[i] = .5f;
    int n = 0;
    fp_status st = fpi_cfg_float_list(cfg, s, "anchors", p->biases, 2 * FPI_MAX_ANCHORS, &n);
    if (st) return st;
    if (n && n < need)
        return fpi_cfg_error(cfg, s, FP_ECORRUPT, "anchors: %d values given, %d needed", n, need);
    return FP_OK;
}

fp_status fpi_region_parse(fpi_layer *l, const fpi_cfg_section *s, fpi_build *b)
{
    fpi_head_params *p = &l->p.head;
    fp_status st;
    if (fpi_cfg_str(s, "tree") || fpi_cfg_str(s, "map"))
        return fpi_cfg_error(b->cfg, s, FP_EUNSUPPORTED, "tree=/map= (YOLO9000 hierarchy) is not supported");
    if ((st = fpi_cfg_int(b->cfg, s, "coords", 4, 4, 4, &p->coords)) ||
        (st = fpi_cfg_int(b->cfg, s, "classes", 20, 1, 100000, &p->classes)) ||
        (st = fpi_cfg_int(b->cfg, s, "num", 1, 1, FPI_MAX_ANCHORS, &p->num)) ||
        (st = fpi_cfg_int(b->cfg, s, "softmax", 0, 0, 1, &p->softmax)) ||
        (st = fpi_cfg_int(b->cfg, s, "background", 0, 0, 1, &p->background)) ||
        (st = fpi_head_anchors(b->cfg, s, p, 2 * p->num)))
        return st;
    int c = p->num * (p->classes + p->coords + 1);
    if (l->in.c != c)
        return fpi_cfg_error(b->cfg, s, FP_ECORRUPT,
                             "num=%d, classes=%d need %d input channels, the previous layer gives %d",
                             p->num, p->classes, c, l->in.c);
    l->out = l->in;
    l->flops = 4 * fp_shape_count(l->out);
    snprintf(l->desc, sizeof l->desc, "%d anchors, %d classes", p->num, p->classes);
    return FP_OK;
}

/* One task of fpi_head_task (heads.h). */
static void fpi_region_chunk(int t, void *vctx)
{
    const fpi_head_task *c = vctx;
    const fpi_layer *l = c->l;
    const fpi_head_params *p = &l->p.head;
    int loc0, loc1, n = fpi_head_task_cells(c, t, &loc0, &loc1), hw = l->out.h * l->out.w;
    size_t len = (size_t)(loc1 - loc0);
    fpi_activate(c->out + fpi_head_entry(l, n, loc0, 0), len, FP_ACT_LOGISTIC);
    fpi_activate(c->out + fpi_head_entry(l, n, loc0, 1), len, FP_ACT_LOGISTIC);
    if (!p->background) fpi_activate(c->out + fpi_head_entry(l, n, loc0, p->coords), len, FP_ACT_LOGISTIC);
    if (!p->softmax) {
        for (int e = 0; e < p->classes; e++)
            fpi_activate(c->out + fpi_head_entry(l, n, loc0, p->coords + 1 + e), len, FP_ACT_LOGISTIC);
        return;
    }
    size_t i = fpi_head_entry(l, n, loc0, p->coords + !p->background);
    /* darknet reads the raw input here; those entries are unchanged copies */
    fpi_softmax_cells(c->in + i, p->classes + p->background, 1.f, (size_t)hw, len, c->out + i);
}

void fpi_region_forward(const fpi_layer *l, const float *const *src, float *out, const fpi_exec *x)
{
    memcpy(out, src[0], fp_shape_count(l->out) * sizeof(float));
    /* logistic (and softmax over the classes), split over the pool */
    fpi_head_task t;
    fpi_parallel_for(x->pool, fpi_head_task_init(&t, l, src[0], out), fpi_region_chunk, &t);
}
