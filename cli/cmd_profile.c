/* cmd_profile.c — `fogpipe profile`: per-layer median times of a model on
 * this machine (or derived from another profile by a speed factor), written
 * as the JSON profile `fogpipe plan` reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "part_cli.h"

static fp_flag fp_prof_flags[] = {
    {"cfg", 'c', "PATH", "darknet .cfg file", NULL},
    {"weights", 'w', "PATH", "darknet .weights file (default: fixed-seed random weights; times do not depend on values)", NULL},
    {"model", 'm', "PATH", "TF.js weights manifest (instead of --cfg)", NULL},
    {"input-size", 's', "S", "input side for --model (default 416)", NULL},
    {"threads", 't', "N", "kernel threads (default 1)", NULL},
    {"iters", 'n', "N", "timed passes; each layer's median is kept (default 10, at most 1000)", NULL},
    {"warmup", 0, "N", "untimed passes first (default 2)", NULL},
    {"device", 'd', "TEXT", "what device kind the profile models (default: this machine's CPU and threads)", NULL},
    {"from", 0, "PATH", "derive from this profile instead of measuring (with --speed)", NULL},
    {"speed", 0, "X", "with --from: the new device is X times as fast (0.25 = four times slower)", NULL},
    {"output", 'o', "PATH", "profile file to write", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_prof_cmd = {
    "profile", "(--cfg PATH [--weights PATH] | --model PATH) [--threads T] [--iters N] -o PATH\n"
               "       fogpipe profile --from PATH --speed X [--device TEXT] -o PATH",
    "Measures every layer's time on this machine (median of N passes after warm-up)\n"
    "and writes it, with the machine's description, as a profile for `fogpipe plan`.\n"
    "With --from, writes the profile of a device X times as fast instead.",
    "Run it on each kind of device in the cluster (it needs no weights), or on one\n"
    "and describe the others by a speed factor. Keep the machine otherwise idle:\n"
    "times are wall-clock.",
    fp_prof_flags, 0, 0};

/* CPU model from /proc/cpuinfo ("model name" on x86, "Model"/"Hardware" on
 * ARM boards), or "unknown". */
static void fp_cpu_model(char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    int prio = 0; /* 3: model name, 2: Model, 1: Hardware */
    while (fgets(line, sizeof line, f)) {
        static const char *const keys[] = {"Hardware", "Model", "model name"};
        for (int k = 0; k < 3; k++) {
            size_t n = strlen(keys[k]);
            if (strncmp(line, keys[k], n) || (line[n] != ' ' && line[n] != '\t' && line[n] != ':')) continue;
            const char *v = strchr(line, ':');
            if (!v || k + 1 <= prio) continue;
            for (v++; *v == ' ' || *v == '\t'; v++) {}
            snprintf(buf, size, "%s", v);
            buf[strcspn(buf, "\r\n")] = '\0';
            prio = k + 1;
        }
    }
    fclose(f);
}

/* Prints the per-layer table of a profile (types when net is given). */
static void fp_print_profile(const fp_profile *p, fp_net *net)
{
    double sum = 0;
    for (int l = 0; l < p->n_layers; l++) sum += p->layer_s[l];
    printf("%s — %s\n", p->cfg, p->device);
    printf("%5s  %-13s %10s %7s\n", "layer", "type", "median ms", "share");
    for (int l = 0; l < p->n_layers; l++) {
        fp_layer_info li;
        const char *type = net && !fp_net_layer_info(net, l, &li) ? li.type : "";
        printf("%5d  %-13s %10.3f %6.1f%%\n", l, type, p->layer_s[l] * 1e3,
               sum > 0 ? 100 * p->layer_s[l] / sum : 0);
    }
    printf("sum of layer medians %.2f ms; median pass %.2f ms\n", sum * 1e3, p->total_s * 1e3);
}

int fp_cmd_profile(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_prof_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *out = fp_flag_get(&fp_prof_cmd, "output"), *from = fp_flag_get(&fp_prof_cmd, "from");
    const char *device = fp_flag_get(&fp_prof_cmd, "device");
    long threads = 1, iters = 10, warmup = 2;
    double speed = 0;
    if (!out) return fp_args_require(&fp_prof_cmd, "output");
    if ((rc = fp_flag_int(&fp_prof_cmd, "threads", 1, 256, &threads)) ||
        (rc = fp_flag_int(&fp_prof_cmd, "iters", 1, 1000, &iters)) ||
        (rc = fp_flag_int(&fp_prof_cmd, "warmup", 0, 100, &warmup)) ||
        (rc = fp_flag_float(&fp_prof_cmd, "speed", 1e-6, 1e6, &speed)))
        return rc;
    fp_profile *p = NULL;
    fp_net *net = NULL;
    if (from) {
        if (!speed) return fp_args_require(&fp_prof_cmd, "speed");
        if (fp_flag_get(&fp_prof_cmd, "cfg") || fp_flag_get(&fp_prof_cmd, "model")) {
            fprintf(stderr, "fogpipe profile: --from derives a profile; it takes no --cfg or --model\n");
            return FP_EXIT_USAGE;
        }
        fp_profile *base = NULL;
        char desc[256];
        if (fp_profile_load(from, &base)) return fp_cli_fail();
        snprintf(desc, sizeof desc, "%.40s, %g times as fast as %.60s", device ? device : "a device", speed,
                 base->device[0] ? base->device : base->cpu);
        fp_status st = fp_profile_derive(base, speed, desc, &p);
        fp_profile_destroy(base);
        if (st) return fp_cli_fail();
    } else {
        if (speed) {
            fprintf(stderr, "fogpipe profile: --speed goes with --from\n");
            return FP_EXIT_USAGE;
        }
        fp_cli_model m;
        if ((rc = fp_cli_model_load(&fp_prof_cmd, 1, (int)threads, &m, &net))) return rc;
        if (fp_profile_measure(net, (int)iters, (int)warmup, &p)) {
            fp_net_destroy(net);
            return fp_cli_fail();
        }
        snprintf(p->cfg, sizeof p->cfg, "%s", m.model ? m.model : m.cfg);
        snprintf(p->cfg_hash, sizeof p->cfg_hash, "%s", m.hash);
        fp_cpu_model(p->cpu, sizeof p->cpu);
        if (gethostname(p->host, sizeof p->host) != 0) p->host[0] = '\0';
        p->host[sizeof p->host - 1] = '\0';
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        p->cores = cores > 0 ? (int)cores : 0;
        p->threads = (int)threads;
        if (device) snprintf(p->device, sizeof p->device, "%s", device);
        else snprintf(p->device, sizeof p->device, "%.100s, %ld thread%s", p->cpu, threads, threads > 1 ? "s" : "");
    }
    fp_print_profile(p, net);
    fflush(stdout);
    rc = fp_profile_save(p, out) ? fp_cli_fail() : 0;
    if (!rc) fprintf(stderr, "fogpipe: wrote %s\n", out);
    fp_profile_destroy(p);
    fp_net_destroy(net);
    return rc;
}
