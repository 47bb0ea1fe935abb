/* detect_out.c — reporting detections: names, labels, JSON, annotation. */
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "common/common.h"
#include "detect_out.h"

/* Reads a names file: one label per line, at most 100000 lines of 255 bytes. */
int fp_names_load(const char *path, fp_names *nm)
{
    size_t len;
    memset(nm, 0, sizeof *nm);
    if (fpi_read_file(path, 4 << 20, &nm->text, &len)) return fp_cli_fail();
    int lines = 1;
    for (size_t i = 0; i < len; i++) lines += nm->text[i] == '\n';
    if (lines > 100001 || strlen(nm->text) != len) {
        fprintf(stderr, "fogpipe: %s: not a names file (%s)\n", path,
                lines > 100001 ? "more than 100000 lines" : "binary data");
        return FP_EXIT_FAIL;
    }
    nm->names = calloc((size_t)lines, sizeof *nm->names);
    if (!nm->names) return FP_EXIT_FAIL;
    for (char *s = nm->text, *save = NULL, *t; (t = strtok_r(s, "\n", &save)); s = NULL) {
        size_t k = strlen(t);
        while (k && (t[k - 1] == '\r' || t[k - 1] == ' ')) t[--k] = '\0';
        if (k > 255) t[255] = '\0';
        nm->names[nm->n++] = t;
    }
    return 0;
}

void fp_names_free(fp_names *nm)
{
    fpi_free(nm->text);
    free(nm->names);
}

/* Label of class j: from the names file, the model's own, or "class j". */
const char *fp_label(const fp_net *net, const fp_names *nm, int j, char *buf, size_t n)
{
    if (j < nm->n) return nm->names[j];
    if (fp_detect_class_name(net, j)) return fp_detect_class_name(net, j);
    snprintf(buf, n, "class %d", j);
    return buf;
}

/* Draws detections the way darknet does: box width h*0.006, class colour. */
void fp_annotate(fp_image *im, const fp_detection *d, int n, const fp_net *net, const fp_names *nm)
{
    int classes = fp_detect_classes(net);
    int width = (int)(im->h * .006);
    if (width < 1) width = 1;
    for (int i = 0; i < n; i++) {
        float rgb[3];
        char buf[32], text[300];
        fp_image_class_color(d[i].cls, classes, rgb);
        int x0 = (int)d[i].x, y0 = (int)d[i].y, x1 = (int)(d[i].x + d[i].w), y1 = (int)(d[i].y + d[i].h);
        fp_image_draw_box(im, x0, y0, x1, y1, width, rgb);
        snprintf(text, sizeof text, "%s %.0f%%", fp_label(net, nm, d[i].cls, buf, sizeof buf),
                 (double)d[i].score * 100);
        int th = (int)(im->h * .03);
        fp_image_draw_label(im, x0, y0 - th - 2 > 0 ? y0 - th - 2 : y0, text, th < 10 ? 10 : th, rgb);
    }
}

/* DIR/<name without extension>.<jpg|png> for an input path. */
void fp_annotated_path(const char *dir, const char *image, char *out, size_t n)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", image);
    char *base = basename(copy);
    char *dot = strrchr(base, '.');
    int jpeg = dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
    if (dot) *dot = '\0';
    snprintf(out, n, "%s/%s.%s", dir, base, jpeg ? "jpg" : "png");
}

cJSON *fp_detections_json(const char *image, int w, int h, const fp_detection *d, int n, const fp_net *net,
                          const fp_names *nm)
{
    cJSON *root = cJSON_CreateObject(), *arr;
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "image", image);
    cJSON_AddNumberToObject(root, "width", w);
    cJSON_AddNumberToObject(root, "height", h);
    arr = cJSON_AddArrayToObject(root, "detections");
    for (int i = 0; arr && i < n; i++) {
        char buf[32];
        cJSON *o = cJSON_CreateObject(), *b;
        if (!o) break;
        cJSON_AddStringToObject(o, "label", fp_label(net, nm, d[i].cls, buf, sizeof buf));
        cJSON_AddNumberToObject(o, "class", d[i].cls);
        cJSON_AddNumberToObject(o, "score", d[i].score);
        b = cJSON_AddObjectToObject(o, "box");
        cJSON_AddNumberToObject(b, "x", d[i].x);
        cJSON_AddNumberToObject(b, "y", d[i].y);
        cJSON_AddNumberToObject(b, "w", d[i].w);
        cJSON_AddNumberToObject(b, "h", d[i].h);
        cJSON_AddItemToArray(arr, o);
    }
    return root;
}

void fp_cli_print_detections(const char *image, int w, int h, const fp_detection *d, int n, const fp_net *net,
                             const fp_names *nm)
{
    cJSON *root = fp_detections_json(image, w, h, d, n, net, nm);
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    if (s) {
        puts(s);
        fflush(stdout);
    } else {
        fprintf(stderr, "fogpipe: %s: out of memory writing detections\n", image);
    }
    free(s);
    cJSON_Delete(root);
}

/* A finite number member of o, or -1. */
static int fp_num(const cJSON *o, const char *key, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return -1;
    *v = x->valuedouble;
    return 0;
}

int fp_result_parse(const char *json, int classes, fp_detection **d, int *n, char *err, size_t errn)
{
    *d = NULL;
    *n = 0;
    cJSON *root = cJSON_Parse(json);
    const cJSON *e = root ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
    const cJSON *arr = root ? cJSON_GetObjectItemCaseSensitive(root, "detections") : NULL;
    int rc = -1;
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errn, "the result is not a JSON object");
    } else if (cJSON_IsString(e)) {
        snprintf(err, errn, "%s", e->valuestring);
    } else if (!cJSON_IsArray(arr)) {
        snprintf(err, errn, "the result has no detections array");
    } else {
        int count = cJSON_GetArraySize(arr);
        fp_detection *out = count ? calloc((size_t)count, sizeof *out) : NULL;
        int i = 0;
        const cJSON *o;
        if (count && !out) {
            snprintf(err, errn, "out of memory for %d detections", count);
            count = -1;
        }
        cJSON_ArrayForEach(o, arr)
        {
            if (count < 0) break;
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "box");
            double c, s, x, y, w, h;
            if (fp_num(o, "class", &c) || fp_num(o, "score", &s) || !cJSON_IsObject(b) || fp_num(b, "x", &x) ||
                fp_num(b, "y", &y) || fp_num(b, "w", &w) || fp_num(b, "h", &h) || c < 0 || c >= classes ||
                c != floor(c)) {
                snprintf(err, errn, "detection %d of the result is malformed", i);
                count = -1;
                break;
            }
            out[i++] = (fp_detection){(float)x, (float)y, (float)w, (float)h, 0, (int)c, (float)s};
        }
        if (count >= 0) {
            *d = out;
            *n = i;
            rc = 0;
        } else {
            free(out);
        }
    }
    cJSON_Delete(root);
    return rc;
}
