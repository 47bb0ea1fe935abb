/* cmd_forward.c — `fogpipe forward`: raw float32 in, raw float32 out; the
 * interface the correctness tests compare against darknet. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common/common.h"

static fp_flag fp_fwd_flags[] = {
    {"cfg", 'c', "PATH", "darknet .cfg file", NULL},
    {"weights", 'w', "PATH", "darknet .weights file", NULL},
    {"input-raw", 'i', "PATH", "input: C*H*W float32 values, little-endian, planar (darknet order)", NULL},
    {"output", 'o', "PATH", "where to write the last layer's output (float32)", NULL},
    {"dump-layers", 0, "DIR", "also write every layer's output to DIR/layer_NNN.f32", NULL},
    {"threads", 't', "N", "kernel threads (default 1)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_fwd_cmd = {
    "forward", "--cfg PATH --weights PATH --input-raw PATH --output PATH [--dump-layers DIR]",
    "Runs the whole network on one raw input and writes the last layer's output as\n"
    "raw float32 in darknet's order (channel, row, column).",
    NULL, fp_fwd_flags, 0, 0};

/* Writes n floats to path; 0 or FP_EXIT_FAIL. */
static int fp_write_f32(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof(float), n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "fogpipe: %s: cannot write: %s\n", path, strerror(errno));
        if (f) fclose(f);
        return FP_EXIT_FAIL;
    }
    return 0;
}

static int fp_dump_layer(void *user, int layer, const float *out, fp_shape shape)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/layer_%03d.f32", (const char *)user, layer);
    return fp_write_f32(path, out, fp_shape_count(shape));
}

int fp_cmd_forward(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_fwd_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *cfg = fp_flag_get(&fp_fwd_cmd, "cfg"), *weights = fp_flag_get(&fp_fwd_cmd, "weights");
    const char *in = fp_flag_get(&fp_fwd_cmd, "input-raw"), *out = fp_flag_get(&fp_fwd_cmd, "output");
    const char *dump = fp_flag_get(&fp_fwd_cmd, "dump-layers");
    long threads = 1;
    if (!cfg) return fp_args_require(&fp_fwd_cmd, "cfg");
    if (!weights) return fp_args_require(&fp_fwd_cmd, "weights");
    if (!in) return fp_args_require(&fp_fwd_cmd, "input-raw");
    if (!out) return fp_args_require(&fp_fwd_cmd, "output");
    if ((rc = fp_flag_int(&fp_fwd_cmd, "threads", 1, 256, &threads))) return rc;
    if (dump && (rc = fp_cli_mkdir(dump))) return rc;

    fp_net *net;
    if ((rc = fp_cli_load_net(cfg, weights, (int)threads, &net))) return rc;
    size_t want = fp_shape_count(fp_net_input_shape(net)) * sizeof(float);
    char *data = NULL;
    size_t len = 0;
    if (fpi_read_file(in, want, &data, &len)) {
        rc = fp_cli_fail();
        goto done;
    }
    if (len != want) {
        fp_shape s = fp_net_input_shape(net);
        fprintf(stderr, "fogpipe: %s: %zu bytes, but the network input %dx%dx%d needs %zu\n", in,
                len, s.c, s.h, s.w, want);
        rc = FP_EXIT_FAIL;
        goto done;
    }
    memcpy(fp_net_input(net), data, want);
    int last = fp_net_layer_count(net) - 1;
    if (fp_net_run(net, 0, last, dump ? fp_dump_layer : NULL, (void *)dump)) {
        rc = fp_cli_fail();
        goto done;
    }
    fp_layer_info li;
    fp_net_layer_info(net, last, &li);
    rc = fp_write_f32(out, fp_net_output(net, last), fp_shape_count(li.out));
done:
    fpi_free(data);
    fp_net_destroy(net);
    return rc;
}
