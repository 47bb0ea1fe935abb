/* commands.h — the fogpipe subcommands and what they share. */
#ifndef FP_CLI_COMMANDS_H
#define FP_CLI_COMMANDS_H

#include <stddef.h>

#include "args.h"
#include "fogpipe/net.h"

int fp_cmd_inspect(int argc, char **argv);
int fp_cmd_random_weights(int argc, char **argv);
int fp_cmd_forward(int argc, char **argv);
int fp_cmd_detect(int argc, char **argv);
int fp_cmd_bench(int argc, char **argv);
int fp_cmd_profile(int argc, char **argv);
int fp_cmd_link(int argc, char **argv);
int fp_cmd_plan(int argc, char **argv);
int fp_cmd_stage(int argc, char **argv);
int fp_cmd_gateway(int argc, char **argv);
int fp_cmd_run(int argc, char **argv);
int fp_cmd_deploy(int argc, char **argv);
int fp_cmd_keys(int argc, char **argv);

/* Splits "HOST:PORT" at the last colon ("[::1]:80" too). 0, or -1 if malformed. */
int fp_cli_host_port(const char *text, char *host, size_t n, int *port);

/* Prints "fogpipe: <fp_last_error()>" and returns FP_EXIT_FAIL. */
int fp_cli_fail(void);

/* Loads cfg + weights (or random weights with seed when weights is NULL and
 * random_seed >= 0), sets threads and prepares the network for running.
 * On failure prints the error and returns FP_EXIT_FAIL with *out NULL. */
int fp_cli_load_net(const char *cfg, const char *weights, int threads, fp_net **out);

/* --curve-key of `cmd`: when set, loads the key file into *key and returns
 * key in *use; when unset, *use is NULL. 0, or FP_EXIT_USAGE after printing
 * "fogpipe <cmd>: --curve-key: <why>". */
struct fpp_curve_key;
int fp_cli_curve_key(const fp_command *cmd, struct fpp_curve_key *key, const struct fpp_curve_key **use);

/* Creates directory `dir` if it does not exist (one level). 0 or FP_EXIT_FAIL. */
int fp_cli_mkdir(const char *dir);

#endif
