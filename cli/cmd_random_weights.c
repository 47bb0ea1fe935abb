/* cmd_random_weights.c — `fogpipe random-weights`: a reproducible weights
 * file for a cfg, for tests and benchmarks when no trained weights exist. */
#include <stdio.h>

#include "commands.h"

static fp_flag fp_rw_flags[] = {
    {"cfg", 'c', "PATH", "darknet .cfg file", NULL},
    {"seed", 's', "N", "random seed (default 1)", NULL},
    {"output", 'o', "PATH", "weights file to write", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_rw_cmd = {
    "random-weights", "--cfg PATH [--seed N] -o PATH",
    "Writes a darknet-format weights file (version 0.2.0) whose values come from a\n"
    "fixed-seed generator, scaled so activations stay finite through deep networks.\n"
    "The same cfg and seed always give the same file. Boxes detected with such\n"
    "weights mean nothing; the file exists for tests and benchmarks.",
    NULL, fp_rw_flags, 0, 0};

int fp_cmd_random_weights(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_rw_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *cfg = fp_flag_get(&fp_rw_cmd, "cfg"), *out = fp_flag_get(&fp_rw_cmd, "output");
    uint64_t seed = 1;
    if (!cfg) return fp_args_require(&fp_rw_cmd, "cfg");
    if (!out) return fp_args_require(&fp_rw_cmd, "output");
    if ((rc = fp_flag_u64(&fp_rw_cmd, "seed", &seed))) return rc;
    fp_net *net = NULL;
    if (fp_net_load_cfg(cfg, &net) || fp_net_init_weights_random(net, seed) ||
        fp_net_save_weights(net, out)) {
        fp_net_destroy(net);
        return fp_cli_fail();
    }
    fprintf(stderr, "fogpipe: wrote %s (%.1f MB of random weights, seed %llu)\n", out,
            (double)fp_net_weight_bytes(net) / 1e6, (unsigned long long)seed);
    fp_net_destroy(net);
    return 0;
}
