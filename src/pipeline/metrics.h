/*
 * metrics.h — a small thread-safe Prometheus registry for stage workers and
 * the gateway: counters, gauges and histograms, each family with at most one
 * label, rendered in the text exposition format 0.0.4. Internal: not API.
 *
 *     fpp_metrics *m;
 *     fpp_metrics_create(&m);
 *     fpp_metrics_declare(m, "fp_frames_total", FPP_COUNTER, "Frames done.", "stage", NULL, 0);
 *     fpp_metrics_add(m, "fp_frames_total", "conv1", 1);
 *     char *text;
 *     if (fpp_metrics_render(m, &text) == FP_OK) { ...serve text...; free(text); }
 *     fpp_metrics_destroy(m);
 *
 * Update calls never fail loudly: a hot loop must not have to check a
 * status to count a frame, so calls on undeclared names, on the wrong kind
 * of family, or that run out of memory creating a series do nothing.
 */
#ifndef FP_PIPELINE_METRICS_H
#define FP_PIPELINE_METRICS_H

#include "fogpipe/status.h"

/* Family types. Start at 1 so a zeroed int is not a valid type. */
enum { FPP_COUNTER = 1, FPP_GAUGE = 2, FPP_HISTOGRAM = 3 };

enum { FPP_METRICS_MAX_FAMILIES = 64 }; /* families in one registry */
enum { FPP_METRICS_MAX_SERIES = 64 };   /* series in one family, "other" included */
enum { FPP_METRICS_MAX_BUCKETS = 32 };  /* finite bucket bounds of one histogram */

typedef struct fpp_metrics fpp_metrics;

/* Creates an empty registry in *out (free with fpp_metrics_destroy).
 * FP_ENOMEM. */
fp_status fpp_metrics_create(fpp_metrics **out);

/* Frees the registry and everything in it. NULL is a no-op. No other call
 * on `m` may be running or follow. */
void fpp_metrics_destroy(fpp_metrics *m);

/* Declares a metric family once.
 *   name:    [a-zA-Z_:][a-zA-Z0-9_:]*, unique in the registry.
 *   type:    FPP_COUNTER, FPP_GAUGE or FPP_HISTOGRAM.
 *   help:    one-line description (NULL or "": no # HELP line).
 *   label:   the one label name of its series ([a-zA-Z_][a-zA-Z0-9_]*, not
 *            starting with "__", not "le" for histograms), or NULL for none.
 *   buckets: histograms only: 0..FPP_METRICS_MAX_BUCKETS finite, strictly
 *            ascending upper bounds (+Inf is implicit); NULL/0 otherwise.
 * Every string and the bucket array are copied; nothing is kept.
 * A family without a label gets its single series (value 0) at once, so it
 * renders before its first update. FP_EINVAL for bad input, a duplicate
 * name or a full registry (FPP_METRICS_MAX_FAMILIES); FP_ENOMEM. */
fp_status fpp_metrics_declare(fpp_metrics *m, const char *name, int type, const char *help, const char *label,
                              const double *buckets, int n_buckets);

/* Series are created on first use of a label value (label_value is ignored
 * for families without a label; NULL means "" for those with one). A family
 * holds at most FPP_METRICS_MAX_SERIES series: once 63 distinct values exist,
 * updates for further new values go to the series "other". */

/* Adds v to a counter (v must be >= 0; otherwise ignored) or a gauge. */
void fpp_metrics_add(fpp_metrics *m, const char *name, const char *label_value, double v);

/* Raises a counter to v, a total kept elsewhere (a process's CPU time):
 * ignored when v is below its value (counters never go back), NaN, or the
 * family is not a counter. */
void fpp_metrics_raise(fpp_metrics *m, const char *name, const char *label_value, double v);

/* Sets a gauge to v (ignored for other types). */
void fpp_metrics_set(fpp_metrics *m, const char *name, const char *label_value, double v);

/* Records one observation in a histogram (ignored for other types, and for
 * NaN, which would poison _sum forever). */
void fpp_metrics_observe(fpp_metrics *m, const char *name, const char *label_value, double v);

/* Current value of a counter or gauge, or a histogram's observation count;
 * 0 when the family or the series does not exist (no series is created,
 * and a value folded into "other" is not found under its own name). */
double fpp_metrics_get(fpp_metrics *m, const char *name, const char *label_value);

/* The q-quantile (0 <= q <= 1) of a histogram series estimated from its
 * buckets as Prometheus' histogram_quantile() does: linear interpolation in
 * the bucket that holds rank q*count, lower bound 0 for the first bucket
 * (unless its upper bound is <= 0), and the highest finite bound when the
 * rank falls in the +Inf bucket. One difference: q = 0 interpolates in the
 * first non-empty bucket instead of returning NaN for an empty first one.
 * NAN when the series is absent or empty, the histogram has no finite
 * bucket, or q is outside [0, 1]. */
double fpp_metrics_quantile(fpp_metrics *m, const char *name, const char *label_value, double q);

/* Renders every family, in declaration order, with its series in first-use
 * order, as Prometheus text format 0.0.4: "# HELP" (when help is set),
 * "# TYPE", then one line per series; a histogram series gives cumulative
 * name_bucket{...,le="..."} lines ending with le="+Inf", then name_sum and
 * name_count. Numbers are the shortest "%.17g"-style text that reads back
 * exactly (integers below 1e17 as plain integers, "+Inf", "-Inf", "NaN";
 * the C locale's '.' decimal point is assumed). On success *out is a
 * NUL-terminated string the caller frees with free(); on failure *out is
 * NULL. FP_ENOMEM (FP_EINVAL for a NULL registry). */
fp_status fpp_metrics_render(fpp_metrics *m, char **out);

struct fpp_http_response;
/* Answers an HTTP request with the rendered registry (200, Prometheus text
 * format 0.0.4), or an empty 500 when out of memory. */
void fpp_metrics_reply(fpp_metrics *m, struct fpp_http_response *resp);

#endif /* FP_PIPELINE_METRICS_H */
