/* cmd_profile.c — `fogpipe profile`: per-layer median times of a model on
 * this machine (or derived from another profile by a speed factor), written
 * as the JSON profile `fogpipe plan` reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common/common.h"
#include "fogpipe/detect.h"
#include "fogpipe/image.h"
#include "part_cli.h"
#include "pipeline/pipeline.h"

static fp_flag fp_prof_flags[] = {
    {"cfg", 'c', "PATH", "darknet .cfg file", NULL},
    {"weights", 'w', "PATH", "darknet .weights file (default: fixed-seed random weights; times do not depend on values)", NULL},
    {"model", 'm', "PATH", "TF.js weights manifest (instead of --cfg)", NULL},
    {"input-size", 's', "S", "input side for --model (default 416)", NULL},
    {"threads", 't', "N", "kernel threads (default 1)", NULL},
    {"iters", 'n', "N", "timed passes; each layer's median is kept (default 10, at most 1000)", NULL},
    {"warmup", 0, "N", "untimed passes first (default 2)", NULL},
    {"image", 'i', "PATH", "measure the codecs on this image's feature maps, and the per-frame image decode and result times (default: a fixed pseudo-random input, no per-frame times)", NULL},
    {"no-codecs", 0, NULL, "do not measure the codecs (the plan then assumes their ratios)", NULL},
    {"device", 'd', "TEXT", "what device kind the profile models (default: this machine's CPU and threads)", NULL},
    {"from", 0, "PATH", "derive from this profile instead of measuring (with --speed)", NULL},
    {"speed", 0, "X", "with --from: the new device is X times as fast (0.25 = four times slower)", NULL},
    {"output", 'o', "PATH", "profile file to write", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_prof_cmd = {
    "profile", "(--cfg PATH [--weights PATH] | --model PATH) [--threads T] [--iters N] -o PATH\n"
               "       fogpipe profile --from PATH --speed X [--device TEXT] -o PATH",
    "Measures every layer's time on this machine and writes it, with the machine's\n"
    "description, as a profile for `fogpipe plan`: after warm-up, N rounds run the\n"
    "layers up to each one uninterrupted, as a pipeline stage does, and a layer's time\n"
    "is what it adds to the median of those runs. It prints each layer's time, share\n"
    "and GFLOP/s (a max pool fused into the convolution before it adds no time; the\n"
    "convolution's rate includes it; operations are counted as the direct sum does\n"
    "them, so layers run by Winograd's F(2x2, 3x3), which needs fewer, can read above\n"
    "the machine's peak).\n"
    "First it measures the CPU time carrying a frame costs each end of a link, per\n"
    "byte (1 MiB frames through ZeroMQ over loopback TCP), and per packet when they\n"
    "come one by one (1448-byte messages). After the timed passes it\n"
    "runs one more and encodes the input and every layer's output with each\n"
    "feature-map codec, recording the encoded bytes and the encode and decode\n"
    "times, which `fogpipe plan` uses instead of assumed ratios. With --image it\n"
    "also times what a pipeline does per frame besides the layers: decoding and\n"
    "preparing that image (stage 0's work, with what the layers take more right\n"
    "after it, caches cold) and making the result (the last stage's); `fogpipe\n"
    "plan` adds them to those stages.\n"
    "With --from, writes the profile of a device X times as fast instead.",
    "Run it on each kind of device in the cluster (it needs no weights), or on one\n"
    "and describe the others by a speed factor. Keep the machine otherwise idle:\n"
    "times are wall-clock. Codec ratios depend on the values: give real weights\n"
    "(--weights, or a TF.js --model) and an --image for realistic ones.",
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

/* Measures the codecs on --image (prepared as detect does) or the
 * pseudo-random input. */
static int fp_profile_codecs(fp_net *net, const char *image, fp_profile *p)
{
    if (!image) return fp_profile_measure_codecs(net, NULL, "pseudo-random", p) ? fp_cli_fail() : 0;
    fp_image im = {0}, sized = {0};
    fp_shape ish = fp_net_input_shape(net);
    fp_status st = fp_image_load(image, &im);
    if (!st) st = fp_detect_prepare(net, &im, &sized);
    if (!st && (sized.c != ish.c || sized.h != ish.h || sized.w != ish.w)) {
        fprintf(stderr, "fogpipe profile: --image: prepared to %dx%dx%d, but the input is %dx%dx%d\n", sized.c,
                sized.h, sized.w, ish.c, ish.h, ish.w);
        fp_image_free(&sized);
        fp_image_free(&im);
        return FP_EXIT_FAIL;
    }
    if (!st) st = fp_profile_measure_codecs(net, sized.data, image, p);
    fp_image_free(&sized);
    fp_image_free(&im);
    return st ? fp_cli_fail() : 0;
}

static int fp_cmp_ms(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Times, on --image, what a pipeline does per frame besides the layers:
 * stage 0 decodes the encoded file and prepares the input (as the gateway
 * sends it); the last stage turns the heads into boxes and the result JSON.
 * Medians of `iters` rounds into p->prepare_s and p->finish_s. Preparing
 * the image also pushes the layers' memory out of the caches, which the
 * uninterrupted runs the layers are timed by miss: each round runs the
 * layers right after the preparation and again, and the median of the
 * differences counts as stage 0's too (0.1-0.2 ms of the face detector's
 * 5 ms frame here; paired in each round, so the machine's drift cancels). */
static int fp_profile_frame_costs(fp_net *net, const char *image, int iters, fp_profile *p)
{
    char *bytes = NULL;
    size_t len = 0;
    double *t = calloc(3 * (size_t)iters, sizeof *t);
    fp_status st = t ? fpi_read_file(image, (size_t)1 << 30, &bytes, &len) : fpi_error(FP_ENOMEM, "out of memory");
    fp_image im = {0}, sized = {0};
    fp_detection *d = NULL;
    char *json = NULL;
    float thresh, nms;
    fp_detect_defaults(net, &thresh, &nms);
    int last = fp_net_layer_count(net) - 1;
    for (int i = 0; !st && i < iters; i++) {
        fp_image_free(&im);
        fp_image_free(&sized);
        double t0 = fpi_now();
        st = fp_image_decode((const uint8_t *)bytes, len, image, &im);
        if (!st) st = fp_detect_prepare(net, &im, &sized);
        if (!st) memcpy(fp_net_input(net), sized.data, fp_shape_count(fp_net_input_shape(net)) * sizeof(float));
        double t1 = fpi_now();
        t[i] = t1 - t0;
        /* the layers after the preparation, then again */
        if (!st) st = fp_net_run(net, 0, last, NULL, NULL);
        double t2 = fpi_now();
        if (!st) st = fp_net_run(net, 0, last, NULL, NULL);
        t[2 * iters + i] = (t2 - t1) - (fpi_now() - t2);
    }
    for (int i = 0; !st && i < iters; i++) {
        int n = 0;
        free(d);
        free(json);
        d = NULL;
        json = NULL;
        double t0 = fpi_now();
        st = fp_detect_boxes(net, im.w, im.h, thresh, nms, &d, &n);
        if (!st) st = fpp_result_json(im.w, im.h, d, n, &json);
        t[iters + i] = fpi_now() - t0;
    }
    if (!st) {
        for (int k = 0; k < 3; k++) qsort(t + k * iters, (size_t)iters, sizeof *t, fp_cmp_ms);
        double cold = t[2 * iters + iters / 2] > 0 ? t[2 * iters + iters / 2] : 0;
        p->prepare_s = t[iters / 2] + cold;
        p->finish_s = t[iters + iters / 2];
        p->result_bytes = json ? (double)strlen(json) : 0;
        printf("the layers right after preparing the image: %.2f ms more than uninterrupted (caches), counted "
               "with the preparation (%.2f ms) as stage 0's\n", cold * 1e3, t[iters / 2] * 1e3);
    }
    free(json);
    free(d);
    fp_image_free(&sized);
    fp_image_free(&im);
    free(bytes);
    free(t);
    return st ? fp_cli_fail() : 0;
}

/* Prints the measured codecs of a profile. */
static void fp_print_codecs(const fp_profile *p)
{
    if (p->wire_ns_per_byte > 0)
        printf("links: %.3f ns of CPU per byte at each end (framing, checksums, ZeroMQ, TCP), %.1f us per packet "
               "at the receiving end of a slow link\n", p->wire_ns_per_byte, p->wire_ns_per_packet * 1e-3);
    if (!p->codec_input[0]) return;
    printf("codecs measured on %s (every tensor, bytes-weighted; ns per raw float32 byte):\n", p->codec_input);
    printf("  %-10s %8s %10s %10s\n", "codec", "ratio", "encode ns", "decode ns");
    for (int c = 0; c < FP_CODEC_COUNT; c++)
        if (p->codecs[c].measured)
            printf("  %-10s %8.4f %10.3f %10.3f\n", fp_codec_name((fp_codec)c), p->codecs[c].ratio,
                   p->codecs[c].encode_ns_per_byte, p->codecs[c].cost_ns_per_byte - p->codecs[c].encode_ns_per_byte);
}

/* Prints the per-layer table of a profile (types when net is given). */
static void fp_print_profile(const fp_profile *p, fp_net *net)
{
    double sum = 0;
    for (int l = 0; l < p->n_layers; l++) sum += p->layer_s[l];
    printf("%s — %s\n", p->cfg, p->device);
    printf("%5s  %-13s %-24s %10s %7s %9s\n", "layer", "type", "", "ms", "share", "GFLOP/s");
    for (int l = 0; l < p->n_layers; l++) {
        fp_layer_info li;
        int known = net && !fp_net_layer_info(net, l, &li);
        char rate[16] = "-";
        /* a layer that adds no time (a max pool fused into the convolution
         * before it) has no rate of its own: the convolution's includes it */
        if (known && li.flops > 0 && p->layer_s[l] > 0)
            snprintf(rate, sizeof rate, "%.1f", (double)li.flops / p->layer_s[l] * 1e-9);
        printf("%5d  %-13s %-24s %10.3f %6.1f%% %9s\n", l, known ? li.type : "", known ? li.desc : "",
               p->layer_s[l] * 1e3, sum > 0 ? 100 * p->layer_s[l] / sum : 0, rate);
    }
    printf("median pass %.2f ms (uninterrupted); each layer's time is what it adds to the median of an\n"
           "uninterrupted run of the layers up to it\n", p->total_s * 1e3);
    if (p->prepare_s > 0 || p->finish_s > 0)
        printf("per frame besides the layers: stage 0 decodes and prepares the image %.2f ms, the last stage "
               "makes the result %.2f ms\n", p->prepare_s * 1e3, p->finish_s * 1e3);
}

int fp_cmd_profile(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_prof_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *out = fp_flag_get(&fp_prof_cmd, "output"), *from = fp_flag_get(&fp_prof_cmd, "from");
    const char *device = fp_flag_get(&fp_prof_cmd, "device"), *image = fp_flag_get(&fp_prof_cmd, "image");
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
        if (fp_flag_get(&fp_prof_cmd, "cfg") || fp_flag_get(&fp_prof_cmd, "model") || image ||
            fp_flag_get(&fp_prof_cmd, "no-codecs")) {
            fprintf(stderr, "fogpipe profile: --from derives a profile; it takes no --cfg, --model, --image or "
                            "--no-codecs\n");
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
        /* Before the network exists: its thread pools would count in the process's CPU time. */
        double wire = 0, packet = 0;
        if (fpp_measure_wire(&wire, &packet))
            fprintf(stderr, "fogpipe profile: warning: the links' CPU cost was not measured (%s); plans will "
                            "count it as free\n", fp_last_error());
        fp_cli_model m;
        if ((rc = fp_cli_model_load(&fp_prof_cmd, 1, (int)threads, &m, &net))) return rc;
        if (fp_profile_measure(net, (int)iters, (int)warmup, &p)) {
            fp_net_destroy(net);
            return fp_cli_fail();
        }
        if ((!fp_flag_get(&fp_prof_cmd, "no-codecs") && (rc = fp_profile_codecs(net, image, p))) ||
            (image && (rc = fp_profile_frame_costs(net, image, (int)iters, p)))) {
            fp_profile_destroy(p);
            fp_net_destroy(net);
            return rc;
        }
        p->wire_ns_per_byte = wire;
        p->wire_ns_per_packet = packet;
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
    fp_print_codecs(p);
    fflush(stdout);
    rc = fp_profile_save(p, out) ? fp_cli_fail() : 0;
    if (!rc) fprintf(stderr, "fogpipe: wrote %s\n", out);
    fp_profile_destroy(p);
    fp_net_destroy(net);
    return rc;
}
