/*
 * args.h — table-driven flag parsing for the fogpipe subcommands. Every flag
 * has an environment-variable twin (FOGPIPE_<NAME>, upper case, '-' → '_');
 * a flag on the command line wins over the environment.
 */
#ifndef FP_CLI_ARGS_H
#define FP_CLI_ARGS_H

#include <stdint.h>

enum { FP_EXIT_OK = 0, FP_EXIT_FAIL = 1, FP_EXIT_USAGE = 2 };

typedef struct fp_flag {
    const char *name;   /* long name without "--" */
    char short_name;    /* single-letter alias or 0 */
    const char *arg;    /* metavariable ("PATH"), or NULL for a boolean switch */
    const char *help;   /* one line */
    const char *value;  /* result: the value ("1" for a set switch), or NULL */
} fp_flag;

typedef struct fp_command {
    const char *name;     /* subcommand */
    const char *usage;    /* "--cfg C [--json]" */
    const char *summary;  /* one line */
    const char *details;  /* extra paragraphs for --help, or NULL */
    fp_flag *flags;       /* terminated by a {NULL} entry */
    int min_pos, max_pos; /* positional argument count bounds */
} fp_command;

/* Parses argv (after the subcommand) into cmd->flags and the positional
 * arguments (*pos points into argv). Prints help and returns -1 for --help;
 * prints a one-line error and returns FP_EXIT_USAGE on bad usage; 0 otherwise. */
int fp_args_parse(fp_command *cmd, int argc, char **argv, char ***pos, int *npos);

/* Value of flag `name` (NULL if unset). */
const char *fp_flag_get(const fp_command *cmd, const char *name);

/* Typed getters: 0 on success (or unset: *out keeps its default), otherwise
 * print "fogpipe <cmd>: --name: ..." and return FP_EXIT_USAGE. */
int fp_flag_int(const fp_command *cmd, const char *name, long min, long max, long *out);
int fp_flag_float(const fp_command *cmd, const char *name, double min, double max, double *out);
int fp_flag_u64(const fp_command *cmd, const char *name, uint64_t *out);

/* Prints the command's --help text to stdout. */
void fp_args_help(const fp_command *cmd);

/* Reports a missing required flag; returns FP_EXIT_USAGE. */
int fp_args_require(const fp_command *cmd, const char *name);

#endif
