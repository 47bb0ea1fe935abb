/* cmd_inspect.c — `fogpipe inspect`: the layer table of a cfg. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"

static fp_flag fp_inspect_flags[] = {
    {"cfg", 'c', "PATH", "darknet .cfg file", NULL},
    {"model", 'm', "PATH", "or a TF.js weights manifest (face-api's tiny face detector; reads its weights)", NULL},
    {"input-size", 's', "S", "input side for --model: a multiple of 32 in [128, 608] (default 416)", NULL},
    {"json", 0, NULL, "print JSON instead of a table", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_inspect_cmd = {
    "inspect", "--cfg PATH | --model PATH [--input-size S] [--json]",
    "Shows every layer of a network: index, type, input and output shape (W x H x C),\n"
    "FLOPs, parameters and output bytes, and the totals. Needs no weights.",
    NULL, fp_inspect_flags, 0, 0};

static cJSON *fp_shape_json(fp_shape s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "c", s.c);
    cJSON_AddNumberToObject(o, "h", s.h);
    cJSON_AddNumberToObject(o, "w", s.w);
    return o;
}

int fp_cmd_inspect(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_inspect_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *cfg = fp_flag_get(&fp_inspect_cmd, "cfg"), *model = fp_flag_get(&fp_inspect_cmd, "model");
    long size = 416;
    if (!cfg && !model) return fp_args_require(&fp_inspect_cmd, "cfg");
    if (cfg && model) {
        fprintf(stderr, "fogpipe inspect: --cfg and --model exclude each other\n");
        return FP_EXIT_USAGE;
    }
    if ((rc = fp_flag_int(&fp_inspect_cmd, "input-size", FP_TFJS_MIN_INPUT, FP_TFJS_MAX_INPUT, &size))) return rc;
    fp_net *net;
    if (cfg ? fp_net_load_cfg(cfg, &net) : fp_net_load_tfjs(model, (int)size, &net)) return fp_cli_fail();
    if (!cfg) cfg = model;
    int n = fp_net_layer_count(net);
    uint64_t flops = 0, params = 0, bytes = 0;
    fp_shape in = fp_net_input_shape(net);
    if (fp_flag_get(&fp_inspect_cmd, "json")) {
        cJSON *root = cJSON_CreateObject(), *layers = cJSON_AddArrayToObject(root, "layers");
        cJSON_AddStringToObject(root, "cfg", cfg);
        cJSON_AddItemToObject(root, "input", fp_shape_json(in));
        for (int i = 0; i < n; i++) {
            fp_layer_info li;
            fp_net_layer_info(net, i, &li);
            cJSON *l = cJSON_CreateObject();
            cJSON_AddNumberToObject(l, "index", i);
            cJSON_AddStringToObject(l, "type", li.type);
            cJSON_AddNumberToObject(l, "cfg_line", li.cfg_line);
            cJSON_AddItemToObject(l, "input", fp_shape_json(li.in));
            cJSON_AddItemToObject(l, "output", fp_shape_json(li.out));
            cJSON *srcs = cJSON_AddArrayToObject(l, "inputs");
            for (int k = 0; k < li.n_inputs; k++) cJSON_AddItemToArray(srcs, cJSON_CreateNumber(li.inputs[k]));
            cJSON_AddNumberToObject(l, "flops", (double)li.flops);
            cJSON_AddNumberToObject(l, "params", (double)li.params);
            cJSON_AddNumberToObject(l, "output_bytes", (double)li.out_bytes);
            cJSON_AddStringToObject(l, "desc", li.desc);
            cJSON_AddItemToArray(layers, l);
            flops += li.flops;
            params += li.params;
            bytes += li.out_bytes;
        }
        cJSON *t = cJSON_AddObjectToObject(root, "total");
        cJSON_AddNumberToObject(t, "flops", (double)flops);
        cJSON_AddNumberToObject(t, "params", (double)params);
        cJSON_AddNumberToObject(t, "output_bytes", (double)bytes);
        char *s = cJSON_Print(root);
        if (s) puts(s);
        free(s);
        cJSON_Delete(root);
    } else {
        printf("%s: input %d x %d x %d, %d layers\n", cfg, in.w, in.h, in.c, n);
        printf("%5s  %-13s %-26s %16s -> %-16s %10s %11s %11s\n", "layer", "type", "params",
               "input", "output", "MFLOPs", "weights", "out bytes");
        for (int i = 0; i < n; i++) {
            fp_layer_info li;
            fp_net_layer_info(net, i, &li);
            char a[32], b[32];
            snprintf(a, sizeof a, "%d x %d x %d", li.in.w, li.in.h, li.in.c);
            snprintf(b, sizeof b, "%d x %d x %d", li.out.w, li.out.h, li.out.c);
            printf("%5d  %-13s %-26.26s %16s -> %-16s %10.1f %11llu %11llu\n", i, li.type, li.desc,
                   a, b, (double)li.flops / 1e6, (unsigned long long)li.params,
                   (unsigned long long)li.out_bytes);
            flops += li.flops;
            params += li.params;
            bytes += li.out_bytes;
        }
        printf("total: %.3f GFLOPs, %llu parameters (%.1f MB), %.1f MB of layer outputs\n",
               (double)flops / 1e9, (unsigned long long)params, (double)params * 4 / 1e6,
               (double)bytes / 1e6);
    }
    fp_net_destroy(net);
    return 0;
}
