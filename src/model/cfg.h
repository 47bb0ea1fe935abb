/*
 * cfg.h — darknet .cfg text → sections of key=value options, with line
 * numbers, and validating option getters. Internal: not API.
 *
 * The parser works on a private copy of the text; every string a section
 * hands out points into that copy and lives as long as the fpi_cfg.
 */
#ifndef FP_MODEL_CFG_H
#define FP_MODEL_CFG_H

#include <stddef.h>

#include "fogpipe/status.h"

enum { FPI_CFG_MAX_BYTES = 4 << 20 };  /* largest cfg file accepted */
enum { FPI_CFG_MAX_OPTIONS = 128 };   /* options in one section */
enum { FPI_CFG_MAX_LINE = 4096 };     /* characters in one line */

typedef struct fpi_cfg_option {
    const char *key;   /* trimmed key, NUL-terminated */
    const char *value; /* trimmed value, NUL-terminated (may be "") */
    int line;          /* 1-based line number */
    int used;          /* set by the getters */
} fpi_cfg_option;

typedef struct fpi_cfg_section {
    const char *type;  /* name between the brackets, e.g. "convolutional" */
    int line;          /* line of the [header] */
    int n_options;     /* options in use */
    fpi_cfg_option options[FPI_CFG_MAX_OPTIONS]; /* in file order */
} fpi_cfg_section;

typedef struct fpi_cfg {
    const char *name;          /* file name for messages (not owned) */
    char *text;                /* owned copy of the text, split in place */
    int n_sections;            /* sections in use */
    fpi_cfg_section *sections; /* owned array of n_sections */
} fpi_cfg;

/* Parses `text` (not kept). On success *cfg owns its memory (fpi_cfg_free).
 * FP_ECORRUPT names the line for: an option before any section, a line with
 * no '=', an unterminated [header], a line over FPI_CFG_MAX_LINE, too many
 * options; FP_ETOOBIG beyond FP_MAX_LAYERS sections; FP_ENOMEM. */
fp_status fpi_cfg_parse(const char *text, const char *name, fpi_cfg *cfg);
void fpi_cfg_free(fpi_cfg *cfg);

/* Getters. Each looks up `key` in section `s` (the last occurrence wins, as
 * in darknet), marks it used, and validates it fully: the whole value must
 * be a number in [min, max]. Absent → *out = def and FP_OK. Errors are
 * FP_ECORRUPT with "<file>:<line>: [<section>] <key>: <reason> (got <value>)". */
fp_status fpi_cfg_int(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *key, int def,
                      int min, int max, int *out);
fp_status fpi_cfg_float(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *key, float def,
                        float min, float max, float *out);
/* Returns the raw value or NULL when absent. */
const char *fpi_cfg_str(const fpi_cfg_section *s, const char *key);
/* Comma-separated integers/floats: at most `cap` values, each in [min,max];
 * *n receives the count (0 when absent). */
fp_status fpi_cfg_int_list(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *key,
                           int *vals, int cap, int min, int max, int *n);
fp_status fpi_cfg_float_list(const fpi_cfg *cfg, const fpi_cfg_section *s, const char *key,
                             float *vals, int cap, int *n);

/* Records "<file>:<line>: [<section>] <message>" as the error and returns status. */
fp_status fpi_cfg_error(const fpi_cfg *cfg, const fpi_cfg_section *s, fp_status status,
                        const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif /* FP_MODEL_CFG_H */
