/* detect.c — image preparation per model, box decoding and NMS: darknet's
 * semantics per head type, and face-api's box mapping for TF.js models. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "engine/net_impl.h"
#include "engine/ops/heads.h"
#include "fogpipe/detect.h"
#include "image/image_impl.h"

typedef struct {
    float x, y, w, h;  /* centre and size, relative to the image */
    float objectness;  /* as darknet's detection.objectness */
    float *prob;       /* classes scores (points into one shared array) */
    int sort_class;    /* class NMS currently sorts by */
} fpi_det;

static int fpi_is_head(fp_op op)
{
    return op == FP_OP_DETECTION || op == FP_OP_REGION || op == FP_OP_YOLO;
}

fp_detect_prep fp_detect_input_prep(const fp_net *net)
{
    if (!net) return FP_DETECT_PREP_NONE;
    for (int i = net->n - 1; i >= 0; i--) {
        if (!fpi_is_head(net->layers[i].op)) continue;
        if (net->prep == FPI_PREP_PAD_SQUARE) return FP_DETECT_PREP_PAD_SQUARE;
        return net->layers[i].op == FP_OP_DETECTION ? FP_DETECT_PREP_STRETCH : FP_DETECT_PREP_LETTERBOX;
    }
    return FP_DETECT_PREP_NONE;
}

int fp_detect_letterbox(const fp_net *net)
{
    fp_detect_prep p = fp_detect_input_prep(net);
    return p == FP_DETECT_PREP_NONE ? -1 : p == FP_DETECT_PREP_LETTERBOX;
}

fp_status fp_detect_prepare(const fp_net *net, const fp_image *im, fp_image *out)
{
    switch (fp_detect_input_prep(net)) {
    case FP_DETECT_PREP_STRETCH: return fp_image_resize(im, net->input.w, net->input.h, out);
    case FP_DETECT_PREP_LETTERBOX: return fp_image_letterbox(im, net->input.w, net->input.h, out);
    case FP_DETECT_PREP_PAD_SQUARE: return fp_image_pad_square(im, net->input.w, out);
    case FP_DETECT_PREP_NONE: break;
    }
    return fpi_error(FP_EINVAL, "fp_detect_prepare: the network has no detection head");
}

fp_status fp_detect_prepare_input(fp_net *net, const fp_image *im)
{
    if (!net || !fpi_image_valid(im)) return fpi_error(FP_EINVAL, "fp_detect_prepare_input: invalid network or image");
    float *in = fp_net_input(net);
    if (!in) return fpi_error(FP_ESTATE, "fp_detect_prepare_input: the network is not set up");
    if (im->c != net->input.c)
        return fpi_error(FP_EUNSUPPORTED, "the network takes %d channels; the image has %d", net->input.c, im->c);
    /* TF.js models: written straight into the input */
    if (fp_detect_input_prep(net) == FP_DETECT_PREP_PAD_SQUARE && net->input.w == net->input.h)
        return fpi_image_pad_square_into(im, net->input.w, in);
    fp_image sized = {0};
    fp_status st = fp_detect_prepare(net, im, &sized);
    if (!st) memcpy(in, sized.data, fp_shape_count(net->input) * sizeof(float));
    fp_image_free(&sized);
    return st;
}

static const float *fpi_detect_pad_row(void *ctx, int c, int y) { return fpi_pad_rows_row(ctx, c, y); }

fp_status fp_detect_run(fp_net *net, const fp_image *im, int last)
{
    if (!net || !fpi_image_valid(im)) return fpi_error(FP_EINVAL, "fp_detect_run: invalid network or image");
    /* TF.js models whose first layer makes its rows as it goes: the
     * prepared rows made as it reads them, never written whole */
    if (fp_detect_input_prep(net) == FP_DETECT_PREP_PAD_SQUARE && net->input.w == net->input.h &&
        im->c == net->input.c && fpi_net_takes_rows(net, last)) {
        fpi_pad_rows *p;
        fp_status st = fpi_pad_rows_new(im, net->input.w, &p);
        if (st) return st;
        fpi_rows rows = {fpi_detect_pad_row, p};
        st = fpi_net_run_rows(net, last, &rows);
        fpi_pad_rows_free(p);
        return st;
    }
    fp_status st = fp_detect_prepare_input(net, im);
    return st ? st : fp_net_run(net, 0, last, NULL, NULL);
}

void fp_detect_defaults(const fp_net *net, float *thresh, float *nms)
{
    int v1 = fp_detect_input_prep(net) == FP_DETECT_PREP_STRETCH;
    if (thresh) *thresh = net && net->def_thresh > 0 ? net->def_thresh : (v1 ? .2f : .5f);
    if (nms) *nms = net && net->def_nms > 0 ? net->def_nms : (v1 ? .4f : .45f);
}

const char *fp_detect_class_name(const fp_net *net, int cls)
{
    if (!net || !net->names || cls < 0 || cls >= net->n_names) return NULL;
    return net->names[cls];
}

int fp_detect_classes(const fp_net *net)
{
    if (!net) return 0;
    for (int i = net->n - 1; i >= 0; i--)
        if (fpi_is_head(net->layers[i].op)) return net->layers[i].p.head.classes;
    return 0;
}

/* Darknet's correct_*_boxes: undo the letterbox, relative coordinates. */
static void fpi_correct_letterbox(fpi_det *d, int n, int w, int h, int netw, int neth)
{
    int new_w, new_h;
    if (((float)netw / w) < ((float)neth / h)) {
        new_w = netw;
        new_h = (h * netw) / w;
    } else {
        new_h = neth;
        new_w = (w * neth) / h;
    }
    for (int i = 0; i < n; i++) {
        d[i].x = (float)((d[i].x - (netw - new_w) / 2. / netw) / ((float)new_w / netw));
        d[i].y = (float)((d[i].y - (neth - new_h) / 2. / neth) / ((float)new_h / neth));
        d[i].w *= (float)netw / new_w;
        d[i].h *= (float)neth / new_h;
    }
}

/* face-api's mapping back from a padded square: coordinates relative to the
 * net input become relative to the image scaled so that its long side is the
 * input side (each side rounded, as face-api's computeReshapedDimensions). */
static void fpi_correct_pad_square(fpi_det *d, int n, int w, int h, int side)
{
    double scale = (double)side / (w > h ? w : h);
    double rw = floor(w * scale + .5), rh = floor(h * scale + .5);
    /* a side that rounds to 0 (an image over 2*side times longer than wide)
     * would divide by zero in face-api; keep it at 1 */
    double fx = side / (rw < 1 ? 1 : rw), fy = side / (rh < 1 ? 1 : rh);
    for (int i = 0; i < n; i++) {
        d[i].x = (float)(d[i].x * fx);
        d[i].w = (float)(d[i].w * fx);
        d[i].y = (float)(d[i].y * fy);
        d[i].h = (float)(d[i].h * fy);
    }
}

/* Appends the candidates of one head to d (room checked by the caller);
 * returns how many it added. */
static int fpi_decode_head(const fp_net *net, const fpi_layer *l, const float *o, int img_w,
                           int img_h, float thresh, fpi_det *d, int classes)
{
    const fpi_head_params *p = &l->p.head;
    int count = 0;
    if (l->op == FP_OP_DETECTION) {
        int side = p->side, ss = side * side;
        for (int i = 0; i < ss; i++) {
            int row = i / side, col = i % side;
            for (int n = 0; n < p->num; n++, count++) {
                fpi_det *x = &d[count];
                float scale = o[ss * p->classes + i * p->num + n];
                const float *b = o + ss * (p->classes + p->num) + (i * p->num + n) * 4;
                x->x = (b[0] + col) / side;
                x->y = (b[1] + row) / side;
                x->w = (float)pow(b[2], p->sqrt ? 2 : 1);
                x->h = (float)pow(b[3], p->sqrt ? 2 : 1);
                x->objectness = scale;
                for (int j = 0; j < p->classes && j < classes; j++) {
                    float prob = scale * o[i * p->classes + j];
                    x->prob[j] = prob > thresh ? prob : 0;
                }
            }
        }
        return count;
    }
    int hw = l->out.h * l->out.w;
    for (int i = 0; i < hw; i++) {
        int row = i / l->out.w, col = i % l->out.w;
        for (int n = 0; n < p->num; n++) {
            float obj = o[fpi_head_entry(l, n, i, 4)];
            size_t bi = fpi_head_entry(l, n, i, 0);
            if (l->op == FP_OP_YOLO) {
                if (obj <= thresh) continue;
                fpi_det *x = &d[count++];
                int a = p->mask[n];
                x->x = (col + o[bi]) / l->out.w;
                x->y = (row + o[bi + hw]) / l->out.h;
                x->w = (float)(exp(o[bi + 2 * (size_t)hw]) * p->biases[2 * a] / net->input.w);
                x->h = (float)(exp(o[bi + 3 * (size_t)hw]) * p->biases[2 * a + 1] / net->input.h);
                x->objectness = obj;
                for (int j = 0; j < p->classes && j < classes; j++) {
                    float prob = obj * o[fpi_head_entry(l, n, i, 5 + j)];
                    x->prob[j] = prob > thresh ? prob : 0;
                }
            } else { /* region */
                fpi_det *x = &d[n * hw + i];
                float scale = p->background ? 1 : o[fpi_head_entry(l, n, i, p->coords)];
                x->x = (col + o[bi]) / l->out.w;
                x->y = (row + o[bi + hw]) / l->out.h;
                x->w = (float)(exp(o[bi + 2 * (size_t)hw]) * p->biases[2 * n] / l->out.w);
                x->h = (float)(exp(o[bi + 3 * (size_t)hw]) * p->biases[2 * n + 1] / l->out.h);
                x->objectness = scale > thresh ? scale : 0;
                for (int j = 0; j < classes; j++) x->prob[j] = 0;
                if (x->objectness)
                    for (int j = 0; j < p->classes && j < classes; j++) {
                        float prob = scale * o[fpi_head_entry(l, n, i, p->coords + 1 + j)];
                        x->prob[j] = prob > thresh ? prob : 0;
                    }
            }
        }
    }
    if (l->op == FP_OP_REGION) count = hw * p->num;
    if (net->prep == FPI_PREP_PAD_SQUARE) fpi_correct_pad_square(d, count, img_w, img_h, net->input.w);
    else fpi_correct_letterbox(d, count, img_w, img_h, net->input.w, net->input.h);
    return count;
}

static float fpi_overlap(float x1, float w1, float x2, float w2)
{
    float l1 = x1 - w1 / 2, l2 = x2 - w2 / 2;
    float left = l1 > l2 ? l1 : l2;
    float r1 = x1 + w1 / 2, r2 = x2 + w2 / 2;
    float right = r1 < r2 ? r1 : r2;
    return right - left;
}

static float fpi_iou(const fpi_det *a, const fpi_det *b)
{
    float w = fpi_overlap(a->x, a->w, b->x, b->w), h = fpi_overlap(a->y, a->h, b->y, b->h);
    float inter = (w < 0 || h < 0) ? 0 : w * h;
    float uni = a->w * a->h + b->w * b->h - inter;
    return inter / uni;
}

static int fpi_det_cmp(const void *pa, const void *pb)
{
    const fpi_det *a = pa, *b = pb;
    float diff = b->sort_class >= 0 ? a->prob[b->sort_class] - b->prob[b->sort_class]
                                    : a->objectness - b->objectness;
    return diff < 0 ? 1 : (diff > 0 ? -1 : 0);
}

/* Darknet's do_nms_sort: drop zero-objectness boxes to the end, then per
 * class sort by that class's score and suppress overlaps above `thresh`. */
static void fpi_nms_sort(fpi_det *d, int total, int classes, float thresh)
{
    int k = total - 1;
    for (int i = 0; i <= k; i++)
        if (d[i].objectness == 0) {
            fpi_det t = d[i];
            d[i] = d[k];
            d[k] = t;
            k--;
            i--;
        }
    total = k + 1;
    for (k = 0; k < classes; k++) {
        for (int i = 0; i < total; i++) d[i].sort_class = k;
        qsort(d, (size_t)total, sizeof *d, fpi_det_cmp);
        for (int i = 0; i < total; i++) {
            if (d[i].prob[k] == 0) continue;
            for (int j = i + 1; j < total; j++)
                if (fpi_iou(&d[i], &d[j]) > thresh) d[j].prob[k] = 0;
        }
    }
}

static float fpi_clampf(double v, float hi)
{
    return v < 0 ? 0.f : (v > hi ? hi : (float)v);
}

fp_status fp_detect_boxes(const fp_net *net, int img_w, int img_h, float thresh, float nms,
                          fp_detection **dets, int *n)
{
    if (!net || !dets || !n || img_w < 1 || img_h < 1)
        return fpi_error(FP_EINVAL, "fp_detect_boxes: bad arguments");
    if (!net->arena) return fpi_error(FP_ESTATE, "fp_detect_boxes: the network has not run");
    int classes = fp_detect_classes(net);
    if (classes == 0) return fpi_error(FP_ESTATE, "the network has no detection head");
    size_t cap = 0;
    for (int i = 0; i < net->n; i++) {
        const fpi_layer *l = &net->layers[i];
        if (l->op == FP_OP_DETECTION) cap += (size_t)l->p.head.side * l->p.head.side * l->p.head.num;
        else if (fpi_is_head(l->op)) cap += (size_t)l->out.h * l->out.w * l->p.head.num;
    }
    fpi_det *d = fpi_calloc(cap, sizeof *d);
    float *probs = fpi_calloc(cap * (size_t)classes, sizeof *probs);
    fp_detection *res = NULL;
    fp_status st = FP_OK;
    if (!d || !probs) {
        st = fpi_error(FP_ENOMEM, "out of memory decoding %zu boxes", cap);
        goto done;
    }
    for (size_t i = 0; i < cap; i++) d[i].prob = probs + i * (size_t)classes;
    int total = 0;
    for (int i = 0; i < net->n; i++) {
        const fpi_layer *l = &net->layers[i];
        if (!fpi_is_head(l->op)) continue;
        if (l->out_off == FPI_NO_TENSOR) {
            st = fpi_error(FP_ESTATE, "fp_detect_boxes: layer %d's output is outside the network's range", i);
            goto done;
        }
        const float *o = (const float *)(net->arena + l->out_off);
        total += fpi_decode_head(net, l, o, img_w, img_h, thresh, d + total, classes);
    }
    if (nms > 0) fpi_nms_sort(d, total, classes, nms);
    int count = 0;
    for (int i = 0; i < total; i++)
        for (int j = 0; j < classes; j++)
            if (d[i].prob[j] > thresh) count++;
    if (count) {
        res = fpi_calloc((size_t)count, sizeof *res);
        if (!res) {
            st = fpi_error(FP_ENOMEM, "out of memory for %d detections", count);
            goto done;
        }
    }
    int k = 0;
    for (int i = 0; i < total; i++)
        for (int j = 0; j < classes; j++) {
            if (!(d[i].prob[j] > thresh)) continue;
            double x0 = (d[i].x - d[i].w / 2.) * img_w, x1 = (d[i].x + d[i].w / 2.) * img_w;
            double y0 = (d[i].y - d[i].h / 2.) * img_h, y1 = (d[i].y + d[i].h / 2.) * img_h;
            fp_detection *r = &res[k++];
            r->x = fpi_clampf(x0, (float)img_w);
            r->y = fpi_clampf(y0, (float)img_h);
            r->w = fpi_clampf(x1, (float)img_w) - r->x;
            r->h = fpi_clampf(y1, (float)img_h) - r->y;
            r->objectness = d[i].objectness;
            r->cls = j;
            r->score = d[i].prob[j];
        }
    *dets = res;
    *n = count;
    res = NULL;
done:
    fpi_free(d);
    fpi_free(probs);
    free(res);
    return st;
}
