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

/* Parses `anchors=` into p->biases (at most 2*FPI_MAX_ANCHORS values); the
 * rest keep darknet's default of 0.5. */
fp_status fpi_head_anchors(const fpi_cfg *cfg, const fpi_cfg_section *s, fpi_head_params *p, int need);

#endif
