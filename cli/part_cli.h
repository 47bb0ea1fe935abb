/* part_cli.h — what `fogpipe profile` and `fogpipe plan` share: loading the
 * model given as --cfg [--weights] or --model [--input-size], with its hashes. */
#ifndef FP_CLI_PART_CLI_H
#define FP_CLI_PART_CLI_H

#include "args.h"
#include "fogpipe/net.h"
#include "fogpipe/partition.h"

/* Where a model came from and what its files hash to. */
typedef struct fp_cli_model {
    const char *cfg;       /* --cfg path, or NULL */
    const char *weights;   /* --weights path, or NULL (random weights) */
    const char *model;     /* --model TF.js manifest path, or NULL */
    char hash[32];         /* hash of the cfg, or of the manifest + "@<input size>" */
    char weights_hash[32]; /* hash of the weights file, "" without one */
} fp_cli_model;

/* Reads --cfg/--weights/--model/--input-size from `cmd` (which must define
 * those flags), checks their combination, loads the network and hashes the
 * files. With `runnable` the network gets weights (the file, or fixed-seed
 * random ones) and is set up with `threads`; otherwise only the graph is
 * needed (a TF.js model is loaded with its weights either way). Returns 0,
 * FP_EXIT_USAGE or FP_EXIT_FAIL (message printed); *out is NULL on failure. */
int fp_cli_model_load(const fp_command *cmd, int runnable, int threads, fp_cli_model *m, fp_net **out);

/* Fills a plan's model reference from m. */
void fp_cli_model_to_plan(const fp_cli_model *m, fp_plan *plan);

#endif
