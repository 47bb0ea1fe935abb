/* ops.c — the op table generated from ops.def, activations, softmax. */
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "engine/fast/fast.h"
#include "engine/net_impl.h"

const fpi_op_vtable fpi_ops[FP_OP_COUNT] = {
#define FP_OP(name, cfgname, prefix) [FP_OP_##name] = {cfgname, fpi_##prefix##_parse, fpi_##prefix##_forward},
#include "fogpipe/ops.def"
#undef FP_OP
};

_Static_assert(FP_OP_COUNT == 14, "ops.def changed: update docs/architecture.md and tests/test_ops.c");

const char *fp_op_name(fp_op op)
{
    if ((unsigned)op >= FP_OP_COUNT) return "unknown";
    return fpi_ops[op].name;
}

static const char *const fpi_act_names[FP_ACT_COUNT] = {
    [FP_ACT_LINEAR] = "linear", [FP_ACT_LEAKY] = "leaky", [FP_ACT_RELU] = "relu",
    [FP_ACT_LOGISTIC] = "logistic"};

const char *fp_activation_name(fp_activation act)
{
    if ((unsigned)act >= FP_ACT_COUNT) return "unknown";
    return fpi_act_names[act];
}

fp_status fpi_parse_activation(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *def,
                               fp_activation *out)
{
    const char *v = fpi_cfg_str(s, "activation");
    if (!v) v = def;
    for (int i = 0; i < FP_ACT_COUNT; i++)
        if (strcmp(v, fpi_act_names[i]) == 0) {
            *out = (fp_activation)i;
            return FP_OK;
        }
    return fpi_cfg_error(cfg, s, FP_EUNSUPPORTED,
                         "activation \"%.32s\" not supported (supported: linear, leaky, relu, logistic)", v);
}

void fpi_activate(float *x, size_t n, fp_activation act)
{
    switch (act) {
    case FP_ACT_LINEAR:
        break;
    case FP_ACT_LEAKY:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : .1f * x[i];
        break;
    case FP_ACT_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
        break;
    case FP_ACT_LOGISTIC:
        if (fpi_fast_enabled()) {
            fpi_logistic_fast(x, n);
            break;
        }
        /* darknet evaluates 1/(1+exp(-x)) in double and rounds to float */
        for (size_t i = 0; i < n; i++) x[i] = (float)(1. / (1. + exp(-x[i])));
        break;
    case FP_ACT_COUNT:
        break;
    }
}

void fpi_softmax(const float *in, int n, float temp, int stride, float *out)
{
    float largest = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        if (in[i * stride] > largest) largest = in[i * stride];
    for (int i = 0; i < n; i++) {
        float e = (float)exp(in[i * stride] / temp - largest / temp);
        sum += e;
        out[i * stride] = e;
    }
    for (int i = 0; i < n; i++) out[i * stride] /= sum;
}

void fpi_softmax_cells(const float *in, int n, float temp, size_t stride, size_t cells, float *out)
{
    if (temp == 1.f && fpi_fast_enabled()) {
        fpi_softmax_cells_fast(in, n, stride, cells, out);
        return;
    }
    for (size_t i = 0; i < cells; i++) fpi_softmax(in + i, n, temp, (int)stride, out + i);
}

fp_status fpi_check_shape(const fpi_cfg *cfg, const fpi_cfg_section *s, fp_shape sh)
{
    if (sh.c < 1 || sh.h < 1 || sh.w < 1)
        return fpi_cfg_error(cfg, s, FP_ECORRUPT, "output shape %dx%dx%d is empty", sh.c, sh.h, sh.w);
    if (sh.c > FP_MAX_DIM || sh.h > FP_MAX_DIM || sh.w > FP_MAX_DIM ||
        fp_shape_count(sh) > ((size_t)1 << 30))
        return fpi_cfg_error(cfg, s, FP_ETOOBIG, "output shape %dx%dx%d is too large", sh.c, sh.h, sh.w);
    return FP_OK;
}

fp_shape fpi_build_shape(const fpi_build *b, int j)
{
    return j < 0 ? b->input : b->layers[j].out;
}
