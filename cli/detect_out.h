/* detect_out.h — what `fogpipe detect`, `fogpipe run` and `fogpipe gateway`
 * share when they report detections: names files, labels, the JSON object
 * printed per image, annotated copies, and reading a last stage's result. */
#ifndef FP_CLI_DETECT_OUT_H
#define FP_CLI_DETECT_OUT_H

#include <cjson/cJSON.h>

#include "fogpipe/detect.h"
#include "fogpipe/image.h"
#include "fogpipe/net.h"

typedef struct {
    char *text;   /* the names file (owned) */
    char **names; /* pointers into text */
    int n;        /* number of names */
} fp_names;

/* Reads a names file: one label per line, at most 100000 lines of 255
 * bytes. 0, or FP_EXIT_FAIL with a message printed. */
int fp_names_load(const char *path, fp_names *nm);
void fp_names_free(fp_names *nm);

/* Label of class j: from the names file, the model's own, or "class j". */
const char *fp_label(const fp_net *net, const fp_names *nm, int j, char *buf, size_t n);

/* Draws detections the way darknet does: box width h*0.006, class colour. */
void fp_annotate(fp_image *im, const fp_detection *d, int n, const fp_net *net, const fp_names *nm);

/* DIR/<name without extension>.<jpg|png> for an input path. */
void fp_annotated_path(const char *dir, const char *image, char *out, size_t n);

/* The object printed for one image:
 * {"image":P,"width":W,"height":H,"detections":[{"label","class","score","box"}]}.
 * NULL when out of memory. */
cJSON *fp_detections_json(const char *image, int w, int h, const fp_detection *d, int n, const fp_net *net,
                          const fp_names *nm);

/* Prints fp_detections_json() as one line on stdout and flushes. */
void fp_cli_print_detections(const char *image, int w, int h, const fp_detection *d, int n, const fp_net *net,
                             const fp_names *nm);

/* Reads a last stage's result ({"detections":[...]} or {"error":"..."}):
 * on success *d (malloc'd, NULL when none) and *n; on an error result or
 * malformed JSON returns -1 with the reason in err. Classes must be below
 * `classes`, numbers finite. */
int fp_result_parse(const char *json, int classes, fp_detection **d, int *n, char *err, size_t errn);

#endif
