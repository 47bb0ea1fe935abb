/* args.c — flag parsing with environment twins. */
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FOGPIPE_<NAME> for a flag name. */
static void fp_env_name(const char *flag, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "FOGPIPE_");
    for (const char *p = flag; *p && k + 1 < n; p++)
        buf[k++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[k] = '\0';
}

void fp_args_help(const fp_command *cmd)
{
    printf("usage: fogpipe %s %s\n\n%s\n\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->details) printf("%s\n\n", cmd->details);
    printf("options (each also read from the environment variable shown):\n");
    for (const fp_flag *f = cmd->flags; f->name; f++) {
        char left[64], env[64];
        snprintf(left, sizeof left, "%s%c%s--%s%s%s", f->short_name ? "-" : "",
                 f->short_name ? f->short_name : ' ', f->short_name ? ", " : "  ", f->name,
                 f->arg ? " " : "", f->arg ? f->arg : "");
        fp_env_name(f->name, env, sizeof env);
        printf("  %-28s %s [%s]\n", f->short_name ? left : left + 2, f->help, env);
    }
    printf("  %-28s %s\n", "-h, --help", "show this help and exit");
}

static fp_flag *fp_find_flag(fp_command *cmd, const char *name, size_t len, char short_name)
{
    for (fp_flag *f = cmd->flags; f->name; f++) {
        if (short_name && f->short_name == short_name) return f;
        if (!short_name && strlen(f->name) == len && strncmp(f->name, name, len) == 0) return f;
    }
    return NULL;
}

int fp_args_parse(fp_command *cmd, int argc, char **argv, char ***pos, int *npos)
{
    /* Environment first, so the command line overrides it. */
    for (fp_flag *f = cmd->flags; f->name; f++) {
        char env[64];
        fp_env_name(f->name, env, sizeof env);
        const char *v = getenv(env);
        if (v && *v) f->value = f->arg ? v : (strcmp(v, "0") ? "1" : NULL);
    }
    int n = 0, only_pos = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            argv[n++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fp_args_help(cmd);
            return -1;
        }
        fp_flag *f;
        const char *val = NULL;
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            f = fp_find_flag(cmd, name, eq ? (size_t)(eq - name) : strlen(name), 0);
            if (eq) val = eq + 1;
        } else {
            f = a[2] == '\0' ? fp_find_flag(cmd, NULL, 0, a[1]) : NULL;
        }
        if (!f) {
            fprintf(stderr, "fogpipe %s: unknown option %s (see fogpipe %s --help)\n", cmd->name, a,
                    cmd->name);
            return FP_EXIT_USAGE;
        }
        if (!f->arg) {
            if (val) {
                fprintf(stderr, "fogpipe %s: --%s takes no value\n", cmd->name, f->name);
                return FP_EXIT_USAGE;
            }
            f->value = "1";
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "fogpipe %s: --%s needs a value (%s)\n", cmd->name, f->name, f->arg);
                return FP_EXIT_USAGE;
            }
            val = argv[++i];
        }
        f->value = val;
    }
    if (n < cmd->min_pos || n > cmd->max_pos) {
        if (cmd->max_pos == 0)
            fprintf(stderr, "fogpipe %s: unexpected argument \"%s\" (see fogpipe %s --help)\n",
                    cmd->name, argv[0], cmd->name);
        else
            fprintf(stderr, "fogpipe %s: expected %s (see fogpipe %s --help)\n", cmd->name,
                    cmd->usage, cmd->name);
        return FP_EXIT_USAGE;
    }
    *pos = argv;
    *npos = n;
    return 0;
}

const char *fp_flag_get(const fp_command *cmd, const char *name)
{
    for (const fp_flag *f = cmd->flags; f->name; f++)
        if (strcmp(f->name, name) == 0) return f->value;
    return NULL;
}

int fp_flag_int(const fp_command *cmd, const char *name, long min, long max, long *out)
{
    const char *v = fp_flag_get(cmd, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < min || x > max) {
        fprintf(stderr, "fogpipe %s: --%s: expected an integer in [%ld, %ld] (got \"%s\")\n",
                cmd->name, name, min, max, v);
        return FP_EXIT_USAGE;
    }
    *out = x;
    return 0;
}

int fp_flag_float(const fp_command *cmd, const char *name, double min, double max, double *out)
{
    const char *v = fp_flag_get(cmd, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x) || x < min || x > max) {
        fprintf(stderr, "fogpipe %s: --%s: expected a number in [%g, %g] (got \"%s\")\n",
                cmd->name, name, min, max, v);
        return FP_EXIT_USAGE;
    }
    *out = x;
    return 0;
}

int fp_flag_u64(const fp_command *cmd, const char *name, uint64_t *out)
{
    const char *v = fp_flag_get(cmd, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno || v[0] == '-') {
        fprintf(stderr, "fogpipe %s: --%s: expected a non-negative integer (got \"%s\")\n",
                cmd->name, name, v);
        return FP_EXIT_USAGE;
    }
    *out = x;
    return 0;
}

int fp_args_require(const fp_command *cmd, const char *name)
{
    char env[64];
    fp_env_name(name, env, sizeof env);
    fprintf(stderr, "fogpipe %s: --%s is required (or set %s); see fogpipe %s --help\n", cmd->name,
            name, env, cmd->name);
    return FP_EXIT_USAGE;
}
