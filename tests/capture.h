/* capture.h — copies of every layer's output taken by fp_net_run's
 * callback, shared by the engine tests. Include after test.h. */
#ifndef FP_TEST_CAPTURE_H
#define FP_TEST_CAPTURE_H

#include <stdlib.h>
#include <string.h>

#include "fogpipe/net.h"

typedef struct {
    int n;              /* 1 + highest layer captured */
    float *out[64];     /* owned copies, NULL where not captured */
    size_t count[64];   /* floats in out[i] */
    fp_shape shape[64]; /* shape of out[i] */
} captured;

/* fp_layer_cb that copies the layer's output into the captured struct. */
static int capture_cb(void *user, int layer, const float *out, fp_shape shape)
{
    captured *c = user;
    if (layer < 0 || layer >= 64) return 1;
    size_t n = fp_shape_count(shape);
    free(c->out[layer]);
    c->out[layer] = malloc(n * sizeof(float));
    if (!c->out[layer]) return 1;
    memcpy(c->out[layer], out, n * sizeof(float));
    c->count[layer] = n;
    c->shape[layer] = shape;
    if (layer + 1 > c->n) c->n = layer + 1;
    return 0;
}

/* Frees every copy and zeroes the struct. */
static void captured_free(captured *c)
{
    for (int i = 0; i < 64; i++) free(c->out[i]);
    memset(c, 0, sizeof *c);
}

#endif
