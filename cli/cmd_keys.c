/* cmd_keys.c — `fogpipe keys`: makes (or checks) the CURVE key file that
 * authenticates and encrypts a pipeline's links (docs/security.md). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "pipeline/curve.h"

static fp_flag fp_keys_flags[] = {
    {"output", 'o', "PATH", "write a new key file here (mode 0600; an existing file is never overwritten)", NULL},
    {"check", 0, "PATH", "validate a key file and print its public key", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_keys_cmd = {
    "keys", "-o PATH | --check PATH",
    "Makes a ZeroMQ CURVE key pair for a pipeline. Give the same file to the\n"
    "gateway and to every stage (--curve-key, or FOGPIPE_CURVE_KEY; `fogpipe\n"
    "deploy --curve-key` puts it in a Kubernetes Secret): each link is then\n"
    "encrypted, and a peer without the file can neither send frames into the\n"
    "pipeline nor receive any.",
    "The file holds the secret key: whoever reads it can join the pipeline.\n"
    "To revoke a device, make a new key and redeploy every member with it.",
    fp_keys_flags, 0, 0};

int fp_cmd_keys(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_keys_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *out = fp_flag_get(&fp_keys_cmd, "output"), *check = fp_flag_get(&fp_keys_cmd, "check");
    if (!out == !check) {
        fprintf(stderr, "fogpipe keys: give exactly one of -o PATH or --check PATH\n");
        return FP_EXIT_USAGE;
    }
    fpp_curve_key k;
    fp_status st = check ? fpp_curve_key_load(check, &k) : fpp_curve_keygen(&k);
    if (!st && out) st = fpp_curve_key_write(out, &k);
    if (st) {
        memset(&k, 0, sizeof k);
        return fp_cli_fail();
    }
    if (out) fprintf(stderr, "fogpipe keys: wrote %s; public key:\n", out);
    printf("%s\n", k.public_key);
    memset(&k, 0, sizeof k);
    return 0;
}
