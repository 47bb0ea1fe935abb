/* heads.h — helpers shared by the detection-head ops (internal). */
#ifndef FP_ENGINE_OPS_HEADS_H
#define FP_ENGINE_OPS_HEADS_H

#include "engine/net_impl.h"

/* Index of `entry` (0..coords+classes) of anchor n at cell loc, in a
 * region/yolo output laid out as n × (coords+1+classes) × h × w. */
static inline size_t fpi_head_entry(const fpi_layer *l, int n, int loc, int entry)
{
    const fpi_head_params *p = &l->p.head;
    size_t hw = (size_t)l->out.h * l->out.w;
    return (size_t)n * hw * (size_t)(p->coords + p->classes + 1) + (size_t)entry * hw + (size_t)loc;
}

/* Heads split over the pool: task t is anchor t / chunks, its cells in
 * chunk t % chunks (each cell computed on its own, so the values do not
 * depend on the split). */
typedef struct fpi_head_task {
    const fpi_layer *l;
    const float *in;  /* the layer's input */
    float *out;       /* its output */
    int chunks;       /* cell chunks per anchor */
} fpi_head_task;

/* A task for layer l, in -> out, and the number of tasks it splits into
 * (about 8, whole anchors' worth of chunks). */
static inline int fpi_head_task_init(fpi_head_task *t, const fpi_layer *l, const float *in, float *out)
{
    int num = l->p.head.num;
    *t = (fpi_head_task){l, in, out, (8 + num - 1) / num};
    return num * t->chunks;
}

/* Task i of t: its anchor and cells [*loc0, *loc1). */
static inline int fpi_head_task_cells(const fpi_head_task *t, int i, int *loc0, int *loc1)
{
    int k = i % t->chunks, hw = t->l->out.h * t->l->out.w;
    *loc0 = (int)((long long)hw * k / t->chunks);
    *loc1 = (int)((long long)hw * (k + 1) / t->chunks);
    return i / t->chunks;
}

/* Parses `anchors=` into p->biases (at most 2*FPI_MAX_ANCHORS values); the
 * rest keep darknet's default of 0.5. */
fp_status fpi_head_anchors(const fpi_cfg *cfg, const fpi_cfg_section *s, fpi_head_params *p, int need);

#endif
