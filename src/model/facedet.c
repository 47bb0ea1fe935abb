/* facedet.c — face-api's tiny face detector (a TF.js model) as an ordinary
 * fogpipe graph. The manifest's tensors are validated by name and shape, a
 * darknet cfg is written for the layer sequence and parsed like any cfg, and
 * the parameters are filled in darknet's order from the dequantised tensors.
 *
 * The model, as face-api's TinyFaceDetector runs it (TinyYolov2 with
 * separable convolutions, first layer a plain convolution):
 *   conv0   3×3 valid convolution + bias, leaky 0.1
 *   maxpool 2×2/2 'same'
 *   conv1..conv5: depthwise 3×3 (zero pad 1, no bias) → pointwise 1×1 + bias,
 *           leaky 0.1; each followed by maxpool 2×2/2 'same', the last by
 *           maxpool 2×2/1 'same'
 *   conv8   1×1 + bias, linear: 5 anchors × (x, y, w, h, score)
 * TF's 'same' 2×2 pooling pads only after (bottom/right), which is exactly
 * darknet's maxpool with its default padding of size-1, so the existing op
 * runs it. The input is (pixel - mean)/255 with face-api's mean RGB; since
 * conv0 has no padding, that is folded exactly into conv0's bias and the
 * network takes pixels/255 like every darknet network. The head is a darknet
 * [region] with one softmaxed class: conv8 gets a sixth, all-zero channel
 * per anchor whose softmax over one class is exactly 1, so region scores
 * equal face-api's sigmoid(score). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "engine/net_impl.h"
#include "model/tfjs.h"

/* face-api's constants for this model (tinyFaceDetector/const.ts). */
static const double fpi_face_mean[3] = {117.001, 114.697, 97.404};
static const char *const fpi_face_anchors = "1.603231,2.094468, 6.041143,7.080126, 2.882459,3.518061, "
                                            "4.266906,5.178857, 9.041765,10.66308";
static const char *const fpi_face_names[] = {"face"};
enum { FPI_FACE_ANCHORS = 5, FPI_FACE_BLOCKS = 5 };

/* Finds tensor `name` with `rank` dims equal to want[] (-1: any) and marks
 * it used. FP_ECORRUPT naming the tensor when it is missing or misshapen. */
static fp_status fpi_face_tensor(const char *path, fpi_tfjs *m, const char *name, int rank, const int *want,
                                 fpi_tfjs_tensor **out)
{
    fpi_tfjs_tensor *t = fpi_tfjs_find(m, name);
    if (!t)
        return fpi_error(FP_ECORRUPT,
                         "%s: weight \"%s\" missing (face-api's tiny face detector needs conv0/filters, conv0/bias, conv1..conv5/{depthwise_filter,pointwise_filter,bias}, conv8/filters, conv8/bias)",
                         path, name);
    int ok = t->rank == rank;
    for (int i = 0; ok && i < rank; i++) ok = want[i] < 0 || t->shape[i] == want[i];
    if (!ok) {
        char got[64] = "", exp[64] = "";
        size_t a = 0, b = 0;
        for (int i = 0; i < t->rank && a < sizeof got; i++)
            a += (size_t)snprintf(got + a, sizeof got - a, "%s%d", i ? "," : "", t->shape[i]);
        for (int i = 0; i < rank && b < sizeof exp; i++) {
            if (want[i] < 0) b += (size_t)snprintf(exp + b, sizeof exp - b, "%s*", i ? "," : "");
            else b += (size_t)snprintf(exp + b, sizeof exp - b, "%s%d", i ? "," : "", want[i]);
        }
        return fpi_error(FP_ECORRUPT, "%s: weight \"%s\" has shape [%s], expected [%s]", path, name, got, exp);
    }
    t->used = 1;
    *out = t;
    return FP_OK;
}

/* The tensors of the model, validated against each other. */
typedef struct {
    fpi_tfjs_tensor *conv0_w, *conv0_b;                 /* [3,3,3,F], [F] */
    fpi_tfjs_tensor *dw[FPI_FACE_BLOCKS];               /* [3,3,C,1] */
    fpi_tfjs_tensor *pw[FPI_FACE_BLOCKS];               /* [1,1,C,C'] */
    fpi_tfjs_tensor *pb[FPI_FACE_BLOCKS];               /* [C'] */
    fpi_tfjs_tensor *conv8_w, *conv8_b;                 /* [1,1,C,25], [25] */
    int ch[FPI_FACE_BLOCKS + 1];                        /* output channels of conv0..conv5 */
} fpi_face_tensors;

/* Looks up and checks every tensor; any tensor left over is an error. */
static fp_status fpi_face_collect(const char *path, fpi_tfjs *m, fpi_face_tensors *ft)
{
    if (!fpi_tfjs_find(m, "conv0/filters") || !fpi_tfjs_find(m, "conv8/filters"))
        return fpi_error(FP_EUNSUPPORTED,
                         "%s: no conv0/filters or conv8/filters: not face-api's tiny face detector, the only TF.js model fogpipe builds",
                         path);
    fp_status st;
    char name[64];
    if ((st = fpi_face_tensor(path, m, "conv0/filters", 4, (int[]){3, 3, 3, -1}, &ft->conv0_w)) ||
        (st = fpi_face_tensor(path, m, "conv0/bias", 1, (int[]){ft->conv0_w->shape[3]}, &ft->conv0_b)))
        return st;
    ft->ch[0] = ft->conv0_w->shape[3];
    for (int k = 0; k < FPI_FACE_BLOCKS; k++) {
        int c = ft->ch[k];
        snprintf(name, sizeof name, "conv%d/depthwise_filter", k + 1);
        if ((st = fpi_face_tensor(path, m, name, 4, (int[]){3, 3, c, 1}, &ft->dw[k]))) return st;
        snprintf(name, sizeof name, "conv%d/pointwise_filter", k + 1);
        if ((st = fpi_face_tensor(path, m, name, 4, (int[]){1, 1, c, -1}, &ft->pw[k]))) return st;
        ft->ch[k + 1] = ft->pw[k]->shape[3];
        snprintf(name, sizeof name, "conv%d/bias", k + 1);
        if ((st = fpi_face_tensor(path, m, name, 1, (int[]){ft->ch[k + 1]}, &ft->pb[k]))) return st;
    }
    if ((st = fpi_face_tensor(path, m, "conv8/filters", 4, (int[]){1, 1, ft->ch[FPI_FACE_BLOCKS], 5 * FPI_FACE_ANCHORS},
                              &ft->conv8_w)) ||
        (st = fpi_face_tensor(path, m, "conv8/bias", 1, (int[]){5 * FPI_FACE_ANCHORS}, &ft->conv8_b)))
        return st;
    for (int i = 0; i < m->n; i++)
        if (!m->tensors[i].used)
            return fpi_error(FP_EUNSUPPORTED,
                             "%s: weight \"%s\" is not part of face-api's tiny face detector (another model?)", path,
                             m->tensors[i].name);
    return FP_OK;
}

/* Writes the darknet cfg of the layer sequence for input side s; returns
 * its length (>= n: it did not fit). */
static size_t fpi_face_cfg(const fpi_face_tensors *ft, int s, char *buf, size_t n)
{
    size_t k = 0;
#define FPI_PUT(...) (k += (size_t)snprintf(k < n ? buf + k : NULL, k < n ? n - k : 0, __VA_ARGS__))
    FPI_PUT("# face-api tiny face detector, generated from its TF.js manifest\n"
            "[net]\nwidth=%d\nheight=%d\nchannels=3\n\n", s, s);
    FPI_PUT("[convolutional]\nfilters=%d\nsize=3\nstride=1\npadding=0\nactivation=leaky\n\n"
            "[maxpool]\nsize=2\nstride=2\n\n", ft->ch[0]);
    for (int b = 0; b < FPI_FACE_BLOCKS; b++) {
        FPI_PUT("[convolutional]\nfilters=%d\ngroups=%d\nsize=3\nstride=1\npad=1\nactivation=linear\n\n", ft->ch[b],
                ft->ch[b]);
        FPI_PUT("[convolutional]\nfilters=%d\nsize=1\nstride=1\nactivation=leaky\n\n", ft->ch[b + 1]);
        FPI_PUT("[maxpool]\nsize=2\nstride=%d\n\n", b + 1 < FPI_FACE_BLOCKS ? 2 : 1);
    }
    FPI_PUT("[convolutional]\nfilters=%d\nsize=1\nstride=1\nactivation=linear\n\n", 6 * FPI_FACE_ANCHORS);
    FPI_PUT("[region]\nanchors=%s\nclasses=1\ncoords=4\nnum=%d\nsoftmax=1\n", fpi_face_anchors, FPI_FACE_ANCHORS);
#undef FPI_PUT
    return k;
}

/* Copies a TF HWIO filter (kh, kw, in, out) into darknet's (out, in, kh, kw)
 * order; a depthwise filter (kh, kw, c, 1) maps filter f to its channel f. */
static void fpi_face_filter(const fpi_tfjs_tensor *t, int depthwise, float *dst)
{
    int kh = t->shape[0], kw = t->shape[1], in = t->shape[2], out = t->shape[3];
    if (depthwise) {
        for (int f = 0; f < in; f++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++) dst[((size_t)f * kh + y) * kw + x] = t->data[((size_t)y * kw + x) * in + f];
        return;
    }
    for (int f = 0; f < out; f++)
        for (int c = 0; c < in; c++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++)
                    dst[(((size_t)f * in + c) * kh + y) * kw + x] = t->data[(((size_t)y * kw + x) * in + c) * out + f];
}

/* Fills net->params (darknet order: biases then weights per convolution). */
static void fpi_face_params(fp_net *net, const fpi_face_tensors *ft)
{
    int conv = 0;
    for (int i = 0; i < net->n; i++) {
        const fpi_layer *l = &net->layers[i];
        if (l->op != FP_OP_CONVOLUTIONAL) continue;
        float *bias = fpi_layer_params(net, l), *w = bias + l->p.conv.filters;
        int f = l->p.conv.filters;
        if (conv == 0) {
            fpi_face_filter(ft->conv0_w, 0, w);
            /* fold (x*255 - mean)/255 = x - mean/255 into the bias */
            for (int o = 0; o < f; o++) {
                double b = ft->conv0_b->data[o];
                for (int c = 0; c < 3; c++)
                    for (int k = 0; k < 9; k++) b -= (double)w[((size_t)o * 3 + c) * 9 + k] * fpi_face_mean[c] / 255.0;
                bias[o] = (float)b;
            }
        } else if (conv <= 2 * FPI_FACE_BLOCKS) {
            int b = (conv - 1) / 2;
            if (conv % 2) { /* depthwise: no bias in the model */
                for (int o = 0; o < f; o++) bias[o] = 0;
                fpi_face_filter(ft->dw[b], 1, w);
            } else {
                memcpy(bias, ft->pb[b]->data, (size_t)f * sizeof(float));
                fpi_face_filter(ft->pw[b], 0, w);
            }
        } else { /* conv8: anchor a's entries e go to channel 6a+e; 6a+5 is the constant class */
            int in = ft->conv8_w->shape[2];
            for (int a = 0; a < FPI_FACE_ANCHORS; a++)
                for (int e = 0; e < 6; e++) {
                    int o = 6 * a + e, src = 5 * a + e;
                    bias[o] = e < 5 ? ft->conv8_b->data[src] : 0.f;
                    for (int c = 0; c < in; c++)
                        w[(size_t)o * in + c] = e < 5 ? ft->conv8_w->data[(size_t)c * 5 * FPI_FACE_ANCHORS + src] : 0.f;
                }
        }
        conv++;
    }
}

/* fp_net_load_tfjs, or with values == 0 fp_net_load_tfjs_graph. */
static fp_status fpi_face_load(const char *path, int input_size, int values, fp_net **out)
{
    if (!path || !out) return fpi_error(FP_EINVAL, "fp_net_load_tfjs: NULL argument");
    if (input_size < FP_TFJS_MIN_INPUT || input_size > FP_TFJS_MAX_INPUT || input_size % 32)
        return fpi_error(FP_EINVAL, "input size must be a multiple of 32 in [%d, %d] (got %d)", FP_TFJS_MIN_INPUT,
                         FP_TFJS_MAX_INPUT, input_size);
    fpi_tfjs m = {0};
    fpi_face_tensors ft = {0};
    fp_net *net = NULL;
    fp_status st;
    if ((st = values ? fpi_tfjs_load(path, &m) : fpi_tfjs_load_specs(path, &m)) ||
        (st = fpi_face_collect(path, &m, &ft)))
        goto error;

    char cfg[4096], name[512];
    if (fpi_face_cfg(&ft, input_size, cfg, sizeof cfg) >= sizeof cfg) {
        st = fpi_error(FP_ETOOBIG, "%s: the generated cfg does not fit %zu bytes", path, sizeof cfg);
        goto error;
    }
    snprintf(name, sizeof name, "%s (generated cfg)", path);
    if ((st = fp_net_parse_cfg(cfg, name, &net))) goto error;
    if (values) {
        size_t bytes;
        if (!fpi_mul_size(net->n_params, sizeof(float), &bytes) || !(net->params = fpi_malloc_aligned(bytes))) {
            st = fpi_error(FP_ENOMEM, "%s: out of memory for %zu parameters", path, net->n_params);
            goto error;
        }
        fpi_face_params(net, &ft);
        net->weights_loaded = 1;
    }
    net->prep = FPI_PREP_PAD_SQUARE;
    net->names = fpi_face_names;
    net->n_names = 1;
    net->def_thresh = .5f; /* face-api's TinyYolov2Options default */
    net->def_nms = .4f;    /* face-api's IOU_THRESHOLD */
    fpi_tfjs_free(&m);
    *out = net;
    return FP_OK;
error:
    fpi_tfjs_free(&m);
    fp_net_destroy(net);
    return st;
}

fp_status fp_net_load_tfjs(const char *path, int input_size, fp_net **out)
{
    return fpi_face_load(path, input_size, 1, out);
}

fp_status fp_net_load_tfjs_graph(const char *path, int input_size, fp_net **out)
{
    return fpi_face_load(path, input_size, 0, out);
}
