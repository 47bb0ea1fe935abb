/* part_cli.c — model loading and hashing shared by `fogpipe profile` and
 * `fogpipe plan`. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "part_cli.h"

int fp_cli_model_load(const fp_command *cmd, int runnable, int threads, fp_cli_model *m, fp_net **out)
{
    memset(m, 0, sizeof *m);
    *out = NULL;
    m->cfg = fp_flag_get(cmd, "cfg");
    m->weights = fp_flag_get(cmd, "weights");
    m->model = fp_flag_get(cmd, "model");
    long size = 416;
    int rc;
    if (m->cfg && m->model) {
        fprintf(stderr, "fogpipe %s: --cfg and --model exclude each other (see fogpipe %s --help)\n", cmd->name,
                cmd->name);
        return FP_EXIT_USAGE;
    }
    if (!m->cfg && !m->model) return fp_args_require(cmd, "cfg");
    if (m->weights && !m->cfg) {
        fprintf(stderr, "fogpipe %s: --weights goes with --cfg (a TF.js manifest names its own shards)\n", cmd->name);
        return FP_EXIT_USAGE;
    }
    if (m->cfg && fp_flag_get(cmd, "input-size")) {
        fprintf(stderr, "fogpipe %s: --input-size applies to --model only (a cfg fixes its input size)\n", cmd->name);
        return FP_EXIT_USAGE;
    }
    if ((rc = fp_flag_int(cmd, "input-size", FP_TFJS_MIN_INPUT, FP_TFJS_MAX_INPUT, &size))) return rc;
    if (size % 32) {
        fprintf(stderr, "fogpipe %s: --input-size: expected a multiple of 32 in [%d, %d] (got %ld)\n", cmd->name,
                FP_TFJS_MIN_INPUT, FP_TFJS_MAX_INPUT, size);
        return FP_EXIT_USAGE;
    }
    fp_net *net = NULL;
    fp_status st;
    if (m->model) {
        st = fp_net_load_tfjs(m->model, (int)size, &net);
        if (!st) st = fp_part_hash_file(m->model, m->hash, sizeof m->hash);
        /* The input size changes every layer's cost: it is part of the model's identity. */
        size_t n = strlen(m->hash);
        if (!st) snprintf(m->hash + n, sizeof m->hash - n, "@%ld", size);
    } else {
        st = fp_net_load_cfg(m->cfg, &net);
        if (!st) st = fp_part_hash_file(m->cfg, m->hash, sizeof m->hash);
        if (!st && m->weights) st = fp_part_hash_file(m->weights, m->weights_hash, sizeof m->weights_hash);
        if (!st && runnable)
            st = m->weights ? fp_net_load_weights(net, m->weights) : fp_net_init_weights_random(net, 1);
    }
    if (!st && runnable) st = fp_net_set_threads(net, threads);
    if (!st && runnable) st = fp_net_setup(net);
    if (st) {
        fp_net_destroy(net);
        return fp_cli_fail();
    }
    *out = net;
    return 0;
}

void fp_cli_model_to_plan(const fp_cli_model *m, fp_plan *plan)
{
    snprintf(plan->cfg, sizeof plan->cfg, "%s", m->model ? m->model : m->cfg);
    snprintf(plan->cfg_hash, sizeof plan->cfg_hash, "%s", m->hash);
    snprintf(plan->weights, sizeof plan->weights, "%s", m->weights ? m->weights : "");
    snprintf(plan->weights_hash, sizeof plan->weights_hash, "%s", m->weights_hash);
}
