/* main.c — the `fogpipe` command: dispatch to subcommands. */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "fogpipe/status.h"
#include "pipeline/curve.h"

#define FP_VERSION "0.1.0"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} fp_commands[] = {
    {"inspect", fp_cmd_inspect, "show a network's layers, shapes, FLOPs, parameters and output bytes"},
    {"detect", fp_cmd_detect, "detect objects in images (JSON Lines; annotated copies with --annotate)"},
    {"forward", fp_cmd_forward, "run a network on a raw float32 input; dump every layer's output"},
    {"random-weights", fp_cmd_random_weights, "write a darknet weights file of fixed-seed random values"},
    {"bench", fp_cmd_bench, "time a whole network: median ms per image, GFLOP/s, kernels, peak memory"},
    {"profile", fp_cmd_profile, "measure each layer's time on this machine (the partitioner's cost model)"},
    {"link", fp_cmd_link, "measure what a real link costs each end's CPU per byte (for the profile)"},
    {"plan", fp_cmd_plan, "split a network into pipeline stages over a cluster; predict images/min"},
    {"stage", fp_cmd_stage, "run one stage of a plan: a networked worker (ZeroMQ in and out, HTTP metrics)"},
    {"gateway", fp_cmd_gateway, "serve a pipeline over HTTP: POST /v1/detect, GET /v1/stats, /metrics"},
    {"run", fp_cmd_run, "run a plan's stages as local processes and stream images through them"},
    {"deploy", fp_cmd_deploy, "write Kubernetes manifests (and a podman variant) that run a plan in containers"},
    {"keys", fp_cmd_keys, "make the CURVE key file that authenticates and encrypts a pipeline's links"},
};

static void fp_usage(FILE *to)
{
    fprintf(to, "usage: fogpipe COMMAND [OPTIONS]\n\n"
                "Runs darknet YOLO-family networks on small devices.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof fp_commands / sizeof fp_commands[0]; i++)
        fprintf(to, "  %-16s %s\n", fp_commands[i].name, fp_commands[i].summary);
    fprintf(to, "\n'fogpipe COMMAND --help' describes a command's options.\n"
                "Exit status: 0 success, 1 failure (bad input, I/O), 2 bad usage.\n");
}

int fp_cli_fail(void)
{
    fprintf(stderr, "fogpipe: %s\n", fp_last_error());
    return FP_EXIT_FAIL;
}

int fp_cli_load_net(const char *cfg, const char *weights, int threads, fp_net **out)
{
    fp_net *net = NULL;
    *out = NULL;
    if (fp_net_load_cfg(cfg, &net) || fp_net_load_weights(net, weights) ||
        fp_net_set_threads(net, threads) || fp_net_setup(net)) {
        fp_net_destroy(net);
        return fp_cli_fail();
    }
    *out = net;
    return 0;
}

int fp_cli_curve_key(const fp_command *cmd, struct fpp_curve_key *key, const struct fpp_curve_key **use)
{
    const char *path = fp_flag_get(cmd, "curve-key");
    *use = NULL;
    if (!path) return 0;
    if (fpp_curve_key_load(path, key)) {
        fprintf(stderr, "fogpipe %s: --curve-key: %s\n", cmd->name, fp_last_error());
        return FP_EXIT_USAGE;
    }
    *use = key;
    return 0;
}

int fp_cli_mkdir(const char *dir)
{
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    }
    fprintf(stderr, "fogpipe: %s: cannot create directory: %s\n", dir,
            errno == EEXIST ? "a file of that name exists" : strerror(errno));
    return FP_EXIT_FAIL;
}

/* Every command handles images and tensors of the same few sizes again
 * and again (a stage: the decoded image, its resized copies, the frames).
 * glibc hands such blocks (over 128 KiB) back to the kernel when they are
 * freed, so each frame faulted its megabytes in afresh: measured here, a
 * one-stage pipeline of yolov1-tiny-tf spent 40% of its CPU time in page
 * faults and fp_image_make's first touch, and fell from 1,100 to 770
 * images/min once glibc's adaptive threshold settled. Keep blocks up to
 * glibc's 32 MiB limit in the heap, and the heap's top, for reuse. */
static void fp_keep_freed_memory(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

int main(int argc, char **argv)
{
    fp_keep_freed_memory();
    if (argc < 2) {
        fp_usage(stderr);
        return FP_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        if (argc > 2 && !strcmp(cmd, "help")) {
            char help[] = "--help";
            char *args[] = {help, NULL};
            for (size_t i = 0; i < sizeof fp_commands / sizeof fp_commands[0]; i++)
                if (!strcmp(argv[2], fp_commands[i].name)) return fp_commands[i].fn(1, args);
        }
        fp_usage(stdout);
        return FP_EXIT_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("fogpipe %s\n", FP_VERSION);
        return FP_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof fp_commands / sizeof fp_commands[0]; i++)
        if (!strcmp(cmd, fp_commands[i].name)) return fp_commands[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "fogpipe: unknown command \"%s\"\n\n", cmd);
    fp_usage(stderr);
    return FP_EXIT_USAGE;
}
