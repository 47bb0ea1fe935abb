/* darknet.c — builds a network from a darknet .cfg, and reads/writes darknet
 * .weights files. Both are untrusted: every count is bounded and every read
 * checked before it is used. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "engine/net_impl.h"
#include "model/cfg.h"

/* Section names darknet also accepts for our ops. */
static const struct { const char *alias; fp_op op; } fpi_op_aliases[] = {
    {"conv", FP_OP_CONVOLUTIONAL}, {"max", FP_OP_MAXPOOL}, {"avg", FP_OP_AVGPOOL},
    {"conn", FP_OP_CONNECTED},     {"soft", FP_OP_SOFTMAX},
};

/* Darknet layer types this engine knows of but does not run. */
static const char *const fpi_unsupported[] = {
    "local", "deconv", "deconvolutional", "crnn", "rnn", "gru", "lstm", "crop",
    "batchnorm", "activation", "logistic", "l2norm", "lrn", "normalization", "iseg",
};

/* Maps a section name to an op; -1 if unknown, -2 if known but unsupported. */
static int fpi_lookup_op(const char *type)
{
    for (int i = 0; i < FP_OP_COUNT; i++)
        if (strcmp(type, fpi_ops[i].name) == 0) return i;
    for (size_t i = 0; i < sizeof fpi_op_aliases / sizeof fpi_op_aliases[0]; i++)
        if (strcmp(type, fpi_op_aliases[i].alias) == 0) return (int)fpi_op_aliases[i].op;
    for (size_t i = 0; i < sizeof fpi_unsupported / sizeof fpi_unsupported[0]; i++)
        if (strcmp(type, fpi_unsupported[i]) == 0) return -2;
    return -1;
}

/* Lists the supported section names into buf (for error messages). */
static const char *fpi_supported_list(char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < FP_OP_COUNT && used < n; i++) {
        int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", fpi_ops[i].name);
        if (w < 0) break;
        used += (size_t)w;
    }
    return buf;
}

/* Reads the [net] section: input width/height/channels. */
static fp_status fpi_parse_net_section(const fpi_cfg *cfg, const fpi_cfg_section *s, fp_shape *in)
{
    if (strcmp(s->type, "net") != 0 && strcmp(s->type, "network") != 0)
        return fpi_cfg_error(cfg, s, FP_ECORRUPT, "the first section must be [net] or [network]");
    fp_status st;
    if ((st = fpi_cfg_int(cfg, s, "width", 0, 0, FP_MAX_DIM, &in->w)) ||
        (st = fpi_cfg_int(cfg, s, "height", 0, 0, FP_MAX_DIM, &in->h)) ||
        (st = fpi_cfg_int(cfg, s, "channels", 0, 0, FP_MAX_DIM, &in->c)))
        return st;
    if (in->w == 0 || in->h == 0 || in->c == 0)
        return fpi_cfg_error(cfg, s, FP_EUNSUPPORTED,
                             "width, height and channels must all be set (got %dx%dx%d); flat inputs are not supported",
                             in->w, in->h, in->c);
    return fpi_check_shape(cfg, s, *in);
}

fp_status fp_net_parse_cfg(const char *text, const char *name, fp_net **out)
{
    fpi_cfg cfg;
    fp_net *net = NULL;
    fp_status st = fpi_cfg_parse(text, name, &cfg);
    if (st) return st;

    net = fpi_calloc(1, sizeof *net);
    if (!net) {
        st = fpi_error(FP_ENOMEM, "%s: out of memory", cfg.name);
        goto error;
    }
    net->threads = 1;
    if ((st = fpi_parse_net_section(&cfg, &cfg.sections[0], &net->input))) goto error;
    net->n = cfg.n_sections - 1;
    if (net->n == 0) {
        st = fpi_error(FP_ECORRUPT, "%s: no layers after [net]", cfg.name);
        goto error;
    }
    net->layers = fpi_calloc((size_t)net->n, sizeof *net->layers);
    if (!net->layers) {
        st = fpi_error(FP_ENOMEM, "%s: out of memory for %d layers", cfg.name, net->n);
        goto error;
    }
    fpi_build b = {&cfg, net->input, net->layers, 0};
    size_t params = 0;
    for (int i = 0; i < net->n; i++) {
        const fpi_cfg_section *s = &cfg.sections[i + 1];
        fpi_layer *l = &net->layers[i];
        if (strcmp(s->type, "net") == 0 || strcmp(s->type, "network") == 0) {
            st = fpi_cfg_error(&cfg, s, FP_ECORRUPT, "[net] may only be the first section");
            goto error;
        }
        int op = fpi_lookup_op(s->type);
        if (op < 0) {
            char list[256];
            st = fpi_cfg_error(&cfg, s, FP_EUNSUPPORTED, "%s layer type (supported: %s)",
                               op == -2 ? "unsupported" : "unknown",
                               fpi_supported_list(list, sizeof list));
            goto error;
        }
        b.n = i;
        l->op = (fp_op)op;
        l->index = i;
        l->line = s->line;
        l->n_src = 1;
        l->src[0] = i - 1;
        l->in = fpi_build_shape(&b, i - 1);
        if ((st = fpi_ops[op].parse(l, s, &b))) goto error;
        for (int k = 0; k < l->n_src; k++) l->src_shape[k] = fpi_build_shape(&b, l->src[k]);
        l->param_off = params;
        if (!fpi_add_size(params, l->n_params, &params) || params > ((size_t)1 << 31)) {
            st = fpi_cfg_error(&cfg, s, FP_ETOOBIG, "the network has more than 2^31 parameters");
            goto error;
        }
    }
    net->n_params = params;
    net->n_held = params;
    net->first = 0;
    net->last = net->n - 1;
    fpi_cfg_free(&cfg);
    *out = net;
    return FP_OK;
error:
    fpi_cfg_free(&cfg);
    fp_net_destroy(net);
    return st;
}

fp_status fp_net_load_cfg(const char *path, fp_net **out)
{
    char *text;
    size_t len;
    fp_status st = fpi_read_file(path, FPI_CFG_MAX_BYTES, &text, &len);
    if (st) return st;
    if (strlen(text) != len) {
        fpi_free(text);
        return fpi_error(FP_ECORRUPT, "%s: NUL byte in cfg text: not a darknet cfg", path);
    }
    st = fp_net_parse_cfg(text, path, out);
    fpi_free(text);
    return st;
}

/* Allocates net->params once. */
static fp_status fpi_alloc_params(fp_net *net)
{
    if (net->params) return FP_OK;
    size_t bytes;
    if (!fpi_mul_size(net->n_held ? net->n_held : 1, sizeof(float), &bytes))
        return fpi_error(FP_ETOOBIG, "parameter buffer too large");
    net->params = fpi_malloc_aligned(bytes);
    if (!net->params)
        return fpi_error(FP_ENOMEM, "out of memory for %zu parameters (%zu MiB)", net->n_held,
                         bytes >> 20);
    return FP_OK;
}

/* Reads exactly n bytes or reports where the file ended. */
static fp_status fpi_read_exact(FILE *f, void *buf, size_t n, const char *path, const char *what)
{
    if (fread(buf, 1, n, f) != n)
        return fpi_error(FP_ECORRUPT, "%s: file ends inside %s", path,
                         what);
    return FP_OK;
}

/* Transposes a rows×cols matrix in place through a scratch copy. */
static fp_status fpi_transpose(float *a, size_t rows, size_t cols)
{
    float *t = fpi_malloc(rows * cols * sizeof(float));
    if (!t) return fpi_error(FP_ENOMEM, "out of memory transposing weights");
    for (size_t x = 0; x < rows; x++)
        for (size_t y = 0; y < cols; y++) t[y * rows + x] = a[x * cols + y];
    memcpy(a, t, rows * cols * sizeof(float));
    fpi_free(t);
    return FP_OK;
}

fp_status fp_net_load_weights(fp_net *net, const char *path)
{
    if (!net || !path) return fpi_error(FP_EINVAL, "fp_net_load_weights: NULL argument");
    if (net->weights_prepared)
        return fpi_error(FP_ESTATE, "%s: weights already prepared; load them before fp_net_setup", path);
    FILE *f = fopen(path, "rb");
    if (!f) return fpi_error(FP_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return fpi_error(FP_EIO, "%s: not a regular file", path);
    }
    fp_status st;
    int32_t hdr[3];
    if ((st = fpi_read_exact(f, hdr, sizeof hdr, path, "the header"))) goto done;
    int32_t major = hdr[0], minor = hdr[1];
    if (major < 0 || minor < 0 || hdr[2] < 0) {
        st = fpi_error(FP_ECORRUPT, "%s: bad header version %d.%d.%d: not a darknet weights file",
                       path, major, minor, hdr[2]);
        goto done;
    }
    size_t seen_bytes = ((int64_t)major * 10 + minor >= 2 && major < 1000 && minor < 1000) ? 8 : 4;
    unsigned char seen[8];
    if ((st = fpi_read_exact(f, seen, seen_bytes, path, "the header"))) goto done;
    int transpose = major > 1000 || minor > 1000;
    long header = 12 + (long)seen_bytes;

    /* The file must hold exactly the cfg's parameters. */
    if (fseek(f, 0, SEEK_END) != 0) {
        st = fpi_error(FP_EIO, "%s: cannot seek: %s", path, strerror(errno));
        goto done;
    }
    long size = ftell(f);
    /* A restricted network (fp_net_set_range) reads only its layers' block. */
    if (size < 0 || fseek(f, header + (long)net->param_base * 4, SEEK_SET) != 0) {
        st = fpi_error(FP_EIO, "%s: cannot seek: %s", path, strerror(errno));
        goto done;
    }
    unsigned long long want = (unsigned long long)header + net->n_params * 4ull;
    if ((unsigned long long)size != want) {
        st = fpi_error(FP_ECORRUPT,
                       "%s: %ld bytes, but the cfg needs %llu (%zu parameters after a %ld-byte header, version %d.%d.%d): weights and cfg do not match",
                       path, size, want, net->n_params, header, major, minor, hdr[2]);
        goto done;
    }
    /* From here on a failure leaves partly overwritten parameters: the
     * network then counts as having no weights. */
    net->weights_loaded = 0;
    if ((st = fpi_alloc_params(net))) goto done;
    for (int i = net->first; i <= net->last; i++) {
        fpi_layer *l = &net->layers[i];
        if (!l->n_params) continue;
        float *p = fpi_layer_params(net, l);
        char what[64];
        snprintf(what, sizeof what, "layer %d (%s)", i, fp_op_name(l->op));
        if ((st = fpi_read_exact(f, p, l->n_params * sizeof(float), path, what))) goto done;
        for (size_t k = 0; k < l->n_params; k++)
            if (!isfinite(p[k])) {
                st = fpi_error(FP_ECORRUPT, "%s: layer %d (%s): parameter %zu is not finite", path,
                               i, fp_op_name(l->op), k);
                goto done;
            }
        if (l->op == FP_OP_CONNECTED && transpose &&
            (st = fpi_transpose(p + l->out.c, fp_shape_count(l->in), (size_t)l->out.c)))
            goto done;
    }
    net->weights_loaded = 1;
    st = FP_OK;
done:
    fclose(f);
    return st;
}

/* splitmix64: a tiny, well-known seeded generator (stable across platforms). */
static uint64_t fpi_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform float in [lo, hi). */
static float fpi_rng_uniform(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)((fpi_rng_next(s) >> 40) * (1.0 / 16777216.0));
}

fp_status fp_net_init_weights_random(fp_net *net, uint64_t seed)
{
    if (!net) return fpi_error(FP_EINVAL, "fp_net_init_weights_random: NULL network");
    if (net->weights_prepared)
        return fpi_error(FP_ESTATE, "weights already prepared; initialise them before fp_net_setup");
    fp_status st = fpi_alloc_params(net);
    if (st) return st;
    uint64_t rng = seed;
    /* Layers before a restricted range draw their values into scratch, so
     * every layer gets the same values whatever range is held. */
    float *scratch = NULL;
    size_t scratch_n = 0;
    for (int i = 0; i < net->first; i++)
        if (net->layers[i].n_params > scratch_n) scratch_n = net->layers[i].n_params;
    if (scratch_n && !(scratch = fpi_malloc(scratch_n * sizeof(float))))
        return fpi_error(FP_ENOMEM, "out of memory drawing random weights");
    for (int i = 0; i <= net->last; i++) {
        fpi_layer *l = &net->layers[i];
        float *p = i < net->first ? scratch : fpi_layer_params(net, l);
        int n;
        size_t fan_in, nw;
        int bn;
        if (l->op == FP_OP_CONVOLUTIONAL) {
            n = l->p.conv.filters;
            bn = l->p.conv.bn;
            fan_in = (size_t)(l->in.c / l->p.conv.groups) * l->p.conv.size * l->p.conv.size;
            nw = (size_t)n * fan_in;
        } else if (l->op == FP_OP_CONNECTED) {
            n = l->p.fc.outputs;
            bn = l->p.fc.bn;
            fan_in = fp_shape_count(l->in);
            nw = (size_t)n * fan_in;
        } else {
            continue;
        }
        /* Uniform weights with variance 2/fan_in keep activations near unit
         * scale through leaky layers, so deep random networks stay finite. */
        float a = sqrtf(6.f / (float)fan_in);
        float *bias = p, *w, *scales = NULL, *mean = NULL, *var = NULL;
        if (l->op == FP_OP_CONVOLUTIONAL) {
            if (bn) { scales = p + n; mean = p + 2 * n; var = p + 3 * n; }
            w = p + (size_t)n * (bn ? 4 : 1);
        } else {
            w = p + n;
            if (bn) { scales = w + nw; mean = scales + n; var = mean + n; }
        }
        for (int k = 0; k < n; k++) bias[k] = fpi_rng_uniform(&rng, -.1f, .1f);
        for (size_t k = 0; k < nw; k++) w[k] = fpi_rng_uniform(&rng, -a, a);
        if (bn)
            for (int k = 0; k < n; k++) {
                scales[k] = fpi_rng_uniform(&rng, .5f, 1.5f);
                mean[k] = fpi_rng_uniform(&rng, -.1f, .1f);
                var[k] = fpi_rng_uniform(&rng, .5f, 1.5f);
            }
    }
    fpi_free(scratch);
    net->weights_loaded = 1;
    return FP_OK;
}

fp_status fp_net_save_weights(const fp_net *net, const char *path)
{
    if (!net || !path) return fpi_error(FP_EINVAL, "fp_net_save_weights: NULL argument");
    if (!net->weights_loaded) return fpi_error(FP_ESTATE, "no weights to save");
    if (net->weights_prepared)
        return fpi_error(FP_ESTATE, "%s: the network is set up (batch-norm folded into its weights); save before "
                                    "fp_net_setup", path);
    if (net->n_held != net->n_params)
        return fpi_error(FP_ESTATE, "%s: the network holds only layers %d..%d; cannot save its weights", path,
                         net->first, net->last);
    FILE *f = fopen(path, "wb");
    if (!f) return fpi_error(FP_EIO, "%s: cannot create: %s", path, strerror(errno));
    int32_t hdr[3] = {0, 2, 0};
    uint64_t seen = 0;
    int ok = fwrite(hdr, sizeof hdr, 1, f) == 1 && fwrite(&seen, sizeof seen, 1, f) == 1 &&
             (net->n_params == 0 || fwrite(net->params, sizeof(float), net->n_params, f) == net->n_params);
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        remove(path);
        return fpi_error(FP_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    return FP_OK;
}
