/* cost.c — the cost model: codec and rate names, the per-problem context
 * (prefix sums of layer times, cut bytes, liveness), stage and link times,
 * stage memory, and the evaluation of a plan that every strategy shares. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "partition/partition_impl.h"

static const char *const fpi_codec_names[FP_CODEC_COUNT] = {
#define FP_CODEC_NAME_(name, str, ratio, chb, cost) str,
    FP_CODEC_LIST(FP_CODEC_NAME_)
#undef FP_CODEC_NAME_
};

const char *fp_codec_name(fp_codec c)
{
    return (unsigned)c < FP_CODEC_COUNT ? fpi_codec_names[c] : "?";
}

fp_status fp_codec_parse(const char *name, fp_codec *out)
{
    for (int c = 0; name && c < FP_CODEC_COUNT; c++)
        if (!strcmp(name, fpi_codec_names[c])) {
            *out = (fp_codec)c;
            return FP_OK;
        }
    return fpi_error(FP_EINVAL,
                     "unknown codec \"%.32s\" (expected none, fp16 or int8, each optionally "
                     "followed by +lz4 or +zstd)",
                     name ? name : "");
}

fp_status fp_codec_mask_parse(const char *text, uint32_t *out)
{
    if (!text || !*text) return fpi_error(FP_EINVAL, "empty codec list (use auto or e.g. none,fp16)");
    if (!strcmp(text, "auto")) {
        *out = FP_CODECS_ALL;
        return FP_OK;
    }
    uint32_t mask = 0;
    const char *p = text;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char name[32];
        if (n == 0 || n >= sizeof name)
            return fpi_error(FP_EINVAL, "bad codec list \"%.64s\" (expected auto or names separated by commas)", text);
        memcpy(name, p, n);
        name[n] = '\0';
        fp_codec c = FP_CODEC_NONE;
        fp_status st = fp_codec_parse(name, &c);
        if (st) return st;
        mask |= FP_CODEC_BIT(c);
        p += n + (comma ? 1 : 0);
        if (comma && !*p) return fpi_error(FP_EINVAL, "bad codec list \"%.64s\" (trailing comma)", text);
    }
    *out = mask;
    return FP_OK;
}

fp_status fp_rate_parse(const char *text, double *bits_per_s)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"", 1},        {"bit", 1},     {"bps", 1},     {"kbit", 1e3}, {"kbps", 1e3},
                 {"mbit", 1e6},  {"mbps", 1e6},  {"gbit", 1e9},  {"gbps", 1e9}, {"tbit", 1e12},
                 {"tbps", 1e12}};
    if (!text) return fpi_error(FP_EINVAL, "missing link rate");
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno || !isfinite(v))
        return fpi_error(FP_EINVAL, "bad link rate \"%.32s\" (expected e.g. 20mbit, 1gbit, 500kbit)", text);
    char unit[8];
    size_t n = strlen(end);
    if (n >= sizeof unit)
        return fpi_error(FP_EINVAL, "bad link rate unit in \"%.32s\" (expected bit, kbit, mbit, gbit, tbit or *bps)", text);
    for (size_t i = 0; i < n && i + 1 < sizeof unit; i++) unit[i] = (char)tolower((unsigned char)end[i]);
    unit[n < sizeof unit ? n : sizeof unit - 1] = '\0';
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
        if (!strcmp(unit, units[u].unit)) {
            double bps = v * units[u].mult;
            if (!(bps >= 1e3 && bps <= 1e13))
                return fpi_error(FP_EINVAL, "link rate \"%.32s\" is outside 1kbit..10tbit", text);
            *bits_per_s = bps;
            return FP_OK;
        }
    return fpi_error(FP_EINVAL, "bad link rate unit in \"%.32s\" (expected bit, kbit, mbit, gbit, tbit or *bps; SI, bits per second)", text);
}

static const char *const fpi_strategy_names[FP_STRATEGY_COUNT] = {"by-type", "equal-flops", "optimal",
                                                                 "cuts"};
static const char *const fpi_objective_names[FP_OBJECTIVE_COUNT] = {"throughput", "latency"};

const char *fp_strategy_name(fp_strategy s)
{
    return (unsigned)s < FP_STRATEGY_COUNT ? fpi_strategy_names[s] : "?";
}

const char *fp_objective_name(fp_objective o)
{
    return (unsigned)o < FP_OBJECTIVE_COUNT ? fpi_objective_names[o] : "?";
}

fp_status fp_strategy_parse(const char *text, fp_strategy *out)
{
    for (int s = 0; text && s < FP_STRATEGY_COUNT; s++)
        if (!strcmp(text, fpi_strategy_names[s])) {
            *out = (fp_strategy)s;
            return FP_OK;
        }
    return fpi_error(FP_EINVAL, "unknown strategy \"%.32s\" (expected by-type, equal-flops, optimal or cuts)",
                     text ? text : "");
}

fp_status fp_objective_parse(const char *text, fp_objective *out)
{
    for (int s = 0; text && s < FP_OBJECTIVE_COUNT; s++)
        if (!strcmp(text, fpi_objective_names[s])) {
            *out = (fp_objective)s;
            return FP_OK;
        }
    return fpi_error(FP_EINVAL, "unknown objective \"%.32s\" (expected throughput or latency)",
                     text ? text : "");
}

void fp_part_problem_init(fp_part_problem *p, const fp_part_graph *g, const fp_cluster *c)
{
    memset(p, 0, sizeof *p);
    p->graph = g;
    p->cluster = c;
    p->objective = FP_OBJECTIVE_THROUGHPUT;
    p->replicas = 1;
    p->codecs = FP_CODECS_ALL;
    p->input_bytes = g ? FP_PART_JPEG_BYTES_PER_VALUE * (double)fp_shape_count(g->input) : 0;
}

void fpi_part_ctx_free(fpi_part_ctx *x)
{
    if (!x) return;
    fpi_free(x->prefix);
    fpi_free(x->cut_raw);
    fpi_free(x->cut_ch);
    fpi_free(x->cut_enc);
    fpi_free(x->wprefix);
    fpi_free(x->live);
    fpi_free(x->scratch);
    memset(x, 0, sizeof *x);
}

fp_status fpi_part_ctx_init(const fp_part_problem *p, fpi_part_ctx *x)
{
    memset(x, 0, sizeof *x);
    if (!p || !p->graph || !p->cluster) return fpi_error(FP_EINVAL, "partition: no graph or cluster");
    fp_status st = fp_part_graph_check(p->graph);
    if (st) return st;
    const fp_cluster *c = p->cluster;
    if (c->n_devices < 1 || c->n_devices > FP_PART_MAX_DEVICES)
        return fpi_error(FP_EINVAL, "partition: the cluster has %d devices (expected 1..%d)",
                         c->n_devices, FP_PART_MAX_DEVICES);
    if (!isfinite(p->input_bytes) || p->input_bytes < 0 || p->input_bytes > 1e12)
        return fpi_error(FP_EINVAL, "partition: input bytes must be in [0, 1e12] (got %g)", p->input_bytes);
    if (!isfinite(p->result_bytes) || p->result_bytes < 0 || p->result_bytes > 1e12)
        return fpi_error(FP_EINVAL, "partition: result bytes must be in [0, 1e12] (got %g)", p->result_bytes);
    if (!(p->codecs & FP_CODECS_ALL)) return fpi_error(FP_EINVAL, "partition: no codec allowed");
    int L = p->graph->n_layers, D = c->n_devices;
    if (p->measured && p->measured->n_layers != L)
        return fpi_error(FP_EINVAL, "partition: the codec measurements cover %d layers but the model has %d",
                         p->measured->n_layers, L);
    for (int d = 0; d < D; d++) {
        if (!p->layer_s[d])
            return fpi_error(FP_EINVAL, "partition: no layer times for device %s", c->devices[d].name);
        double sp = c->devices[d].speed;
        if (!isfinite(sp) || sp <= 0)
            return fpi_error(FP_EINVAL, "partition: device %s has speed %g (expected > 0)",
                             c->devices[d].name, sp);
        if (!isfinite(p->prepare_s[d]) || p->prepare_s[d] < 0 || !isfinite(p->finish_s[d]) || p->finish_s[d] < 0)
            return fpi_error(FP_EINVAL, "partition: device %s: per-frame times %g and %g are not finite "
                             "non-negative numbers", c->devices[d].name, p->prepare_s[d], p->finish_s[d]);
        if (!isfinite(p->wire_ns_per_byte[d]) || p->wire_ns_per_byte[d] < 0 || p->wire_ns_per_byte[d] > 1e6)
            return fpi_error(FP_EINVAL, "partition: device %s: wire cost %g ns per byte is not in [0, 1e6]",
                             c->devices[d].name, p->wire_ns_per_byte[d]);
        if (!isfinite(p->wire_recv_ns_per_byte[d]) || p->wire_recv_ns_per_byte[d] < 0 || p->wire_recv_ns_per_byte[d] > 1e6)
            return fpi_error(FP_EINVAL, "partition: device %s: wire cost %g ns per byte received is not in [0, 1e6]",
                             c->devices[d].name, p->wire_recv_ns_per_byte[d]);
        if (!isfinite(p->wire_ns_per_packet[d]) || p->wire_ns_per_packet[d] < 0 || p->wire_ns_per_packet[d] > 1e9)
            return fpi_error(FP_EINVAL, "partition: device %s: wire cost %g ns per packet is not in [0, 1e9]",
                             c->devices[d].name, p->wire_ns_per_packet[d]);
        for (int l = 0; l < L; l++)
            if (!isfinite(p->layer_s[d][l]) || p->layer_s[d][l] < 0)
                return fpi_error(FP_EINVAL, "partition: device %s: layer %d time %g is not a finite "
                                 "non-negative number", c->devices[d].name, l, p->layer_s[d][l]);
    }
    for (int a = 0; a <= D; a++)
        for (int b = 0; b <= D; b++) {
            const fp_link *k = &c->links[a][b];
            if (a == b) continue;
            if (!(k->bandwidth_bps > 0) || !isfinite(k->bandwidth_bps) || !(k->latency_s >= 0) ||
                !isfinite(k->latency_s))
                return fpi_error(FP_EINVAL, "partition: link %d->%d has bandwidth %g and latency %g",
                                 a, b, k->bandwidth_bps, k->latency_s);
        }
    x->p = p;
    x->g = p->graph;
    x->c = c;
    x->L = L;
    x->D = D;
    x->prefix = fpi_calloc((size_t)D * (size_t)(L + 1), sizeof *x->prefix);
    x->cut_raw = fpi_calloc((size_t)L, sizeof *x->cut_raw);
    x->cut_ch = fpi_calloc((size_t)L, sizeof *x->cut_ch);
    x->cut_enc = fpi_calloc((size_t)FP_CODEC_COUNT * (size_t)L, sizeof *x->cut_enc);
    x->wprefix = fpi_calloc((size_t)L + 1, sizeof *x->wprefix);
    x->live = fpi_calloc((size_t)L + 1, sizeof *x->live);
    x->scratch = fpi_calloc((size_t)L, sizeof *x->scratch);
    int *last = fpi_calloc((size_t)L + 1, sizeof *last);
    int64_t *diff = fpi_calloc((size_t)L + 1, sizeof *diff);
    if (!x->prefix || !x->cut_raw || !x->cut_ch || !x->cut_enc || !x->wprefix || !x->live || !x->scratch || !last ||
        !diff) {
        st = fpi_error(FP_ENOMEM, "out of memory preparing the partitioner");
        goto error;
    }
    for (int d = 0; d < D; d++) {
        double *pre = x->prefix + (size_t)d * (size_t)(L + 1), sp = c->devices[d].speed;
        /* Stage 0 always gets the encoded image (input_bytes) and decodes it;
         * the last stage always turns the heads into the result. */
        for (int l = 0; l < L; l++)
            pre[l + 1] = pre[l] + (p->layer_s[d][l] + (l == 0 ? p->prepare_s[d] : 0) +
                                   (l == L - 1 ? p->finish_s[d] : 0)) / sp;
    }
    /* A codec's measurements are used unless the cluster file sets its parameters. */
    const uint64_t *meas[FP_CODEC_COUNT];
    uint32_t on_links = 0;
    for (int a = 0; a <= D; a++)
        for (int b = 0; b <= D; b++)
            if (a != b) on_links |= c->links[a][b].codecs;
    for (int cd = 0; cd < FP_CODEC_COUNT; cd++) {
        const fp_profile_codec *pc = p->measured ? &p->measured->codecs[cd] : NULL;
        int use = pc && pc->measured && pc->bytes && !(c->codecs_set & FP_CODEC_BIT(cd));
        meas[cd] = use ? pc->bytes : NULL;
        double cost = use ? pc->cost_ns_per_byte : c->codecs[cd].cost_ns_per_byte;
        x->codec_enc[cd] = use ? pc->encode_ns_per_byte : cost / 2;
        x->codec_dec[cd] = cost - x->codec_enc[cd];
        if (p->codecs & on_links & FP_CODEC_BIT(cd)) x->codec_list[x->n_codecs++] = cd;
    }
    if (!x->n_codecs) x->codec_list[x->n_codecs++] = FP_CODEC_NONE; /* evaluate names the link */
    const fp_part_graph *g = p->graph;
    fpi_part_last_use(g, last);
    /* Cut bytes: a tensor p crosses every cut k with p <= k < last(p). */
    for (int t = -1; t < L; t++) {
        int from = t < 0 ? 0 : t, to = last[t + 1]; /* crosses cuts from..to-1 */
        if (to > L) to = L;
        uint64_t bytes = t < 0 ? g->input_bytes : g->layers[t].out_bytes;
        uint64_t ch = t < 0 ? (uint64_t)(g->input.c > 0 ? g->input.c : 0) : (uint64_t)g->layers[t].out_channels;
        for (int k = from; k < to; k++) {
            x->cut_raw[k] += bytes;
            x->cut_ch[k] += ch;
            for (int cd = 0; cd < FP_CODEC_COUNT; cd++)
                if (meas[cd]) x->cut_enc[(size_t)cd * (size_t)L + (size_t)k] += (double)meas[cd][t + 1];
        }
        /* Alive while layers max(t,0)..min(last, L-1) run. */
        if (last[t + 1] < 0 || last[t + 1] < from) continue;
        int end = last[t + 1] >= L ? L - 1 : last[t + 1];
        diff[from] += (int64_t)bytes;
        diff[end + 1] -= (int64_t)bytes;
    }
    for (int cd = 0; cd < FP_CODEC_COUNT; cd++)
        for (int k = 0; !meas[cd] && k < L; k++)
            x->cut_enc[(size_t)cd * (size_t)L + (size_t)k] =
                (double)x->cut_raw[k] * c->codecs[cd].ratio + (double)x->cut_ch[k] * c->codecs[cd].channel_bytes;
    int64_t run = 0;
    for (int l = 0; l < L; l++) {
        run += diff[l];
        x->live[l] = (uint64_t)run;
        x->wprefix[l + 1] = x->wprefix[l] + g->layers[l].weight_bytes;
        x->scratch[l] = g->layers[l].scratch_bytes;
    }
    x->in_buf = (uint64_t)ceil(p->input_bytes);
    for (int e = 0; e < D; e++) {
        /* a packet's time on the slowest link into e (links were checked above) */
        double slow = 0;
        for (int d = 0; d <= D; d++)
            if (d != e) {
                double t = FP_PART_PACKET_BYTES * FP_PART_LINK_FRAMING * 8.0 / c->links[d][e].bandwidth_bps;
                if (t > slow) slow = t;
            }
        /* a receiving cost measured over the link includes its wake-ups */
        double wake = p->wire_recv_ns_per_byte[e] > 0 ? 0 : p->wire_ns_per_packet[e] * 1e-9 / c->devices[e].speed;
        x->packet_s[e] = wake < slow ? wake : slow;
    }
    fpi_free(last);
    fpi_free(diff);
    return FP_OK;
error:
    fpi_free(last);
    fpi_free(diff);
    fpi_part_ctx_free(x);
    return st;
}

double fpi_part_stage_s(const fpi_part_ctx *x, int i, int j, int e)
{
    const double *pre = x->prefix + (size_t)e * (size_t)(x->L + 1);
    return pre[j + 1] - pre[i];
}

double fpi_part_stage_io_s(const fpi_part_ctx *x, int i, int j, int e, int a, int b)
{
    double w = x->p->wire_ns_per_byte[e], ns = 0, wr = x->p->wire_recv_ns_per_byte[e];
    double in = i == 0 ? x->p->input_bytes : x->cut_enc[(size_t)a * (size_t)x->L + (size_t)(i - 1)];
    ns += (wr > 0 ? wr : w) * in;
    if (i > 0) ns += x->codec_dec[a] * (double)x->cut_raw[i - 1];
    if (j < x->L - 1)
        ns += x->codec_enc[b] * (double)x->cut_raw[j] + w * x->cut_enc[(size_t)b * (size_t)x->L + (size_t)j];
    return fpi_part_stage_s(x, i, j, e) + ns * 1e-9 / x->c->devices[e].speed +
           in / FP_PART_PACKET_BYTES * x->packet_s[e];
}

uint64_t fpi_part_mem_of(const fpi_part_ctx *x, int i, int j, uint64_t live, uint64_t scratch)
{
    uint64_t in = i == 0 ? x->in_buf : x->cut_raw[i - 1];
    return x->wprefix[j + 1] - x->wprefix[i] + live + scratch + in + x->cut_raw[j] + x->c->overhead_bytes;
}

uint64_t fpi_part_stage_mem(const fpi_part_ctx *x, int i, int j)
{
    uint64_t live = 0, scratch = 0;
    for (int t = i; t <= j; t++) {
        if (x->live[t] > live) live = x->live[t];
        if (x->scratch[t] > scratch) scratch = x->scratch[t];
    }
    return fpi_part_mem_of(x, i, j, live, scratch);
}

int fpi_part_fits(const fpi_part_ctx *x, uint64_t mem, int e)
{
    uint64_t lim = x->c->devices[e].memory_bytes;
    return lim == 0 || mem <= lim;
}

double fpi_part_link_s(const fpi_part_ctx *x, int k, int a, int b, fp_codec c, double *bytes)
{
    const fp_link *lk = &x->c->links[a][b];
    if (k < 0) { /* the encoded image: no feature-map codec */
        if (bytes) *bytes = x->p->input_bytes;
        return lk->latency_s + x->p->input_bytes * FP_PART_LINK_FRAMING * 8.0 / lk->bandwidth_bps;
    }
    if (!(lk->codecs & x->p->codecs & FP_CODEC_BIT(c))) return INFINITY;
    /* The last stage sends the result JSON, whatever the codec, when its size is known. */
    double enc = k == x->L - 1 && x->p->result_bytes > 0 ? x->p->result_bytes
                                                         : x->cut_enc[(size_t)c * (size_t)x->L + (size_t)k];
    if (bytes) *bytes = enc;
    return lk->latency_s + enc * FP_PART_LINK_FRAMING * 8.0 / lk->bandwidth_bps;
}

void fpi_part_plan_init(const fpi_part_ctx *x, fp_plan *plan, fp_strategy s)
{
    memset(plan, 0, sizeof *plan);
    plan->version = FP_PLAN_VERSION;
    plan->strategy = s;
    plan->objective = x->p->objective;
    plan->n_layers = x->L;
    plan->input = x->g->input;
    plan->n_devices = x->D;
    for (int d = 0; d < x->D; d++) {
        const fp_device *dv = &x->c->devices[d];
        memcpy(plan->devices[d].name, dv->name, sizeof dv->name);
        memcpy(plan->devices[d].node, dv->node, sizeof dv->node);
        plan->devices[d].threads = dv->threads;
    }
    plan->bottleneck_s = INFINITY;
    plan->latency_s = INFINITY;
}

/* Time of the cut after layer k from every device of `from` (n_from; NULL =
 * the gateway) to every device of `to` (NULL = gateway), with codec c: the
 * slowest pair, since a frame may take any of them. */
static double fpi_cut_s(const fpi_part_ctx *x, int k, const int *from, int n_from, const int *to,
                        int n_to, fp_codec c, double *bytes)
{
    int gw = x->D;
    double worst = 0;
    for (int a = 0; a < (from ? n_from : 1); a++)
        for (int b = 0; b < (to ? n_to : 1); b++) {
            double t = fpi_part_link_s(x, k, from ? from[a] : gw, to ? to[b] : gw, c, bytes);
            if (t > worst) worst = t;
        }
    return worst;
}

/* Adds term t to the bottleneck tracking. */
static void fpi_note(fp_plan *plan, double t, int stage, int *bn_stage, const char *fmt, ...)
    FPI_PRINTF(5, 6);
static void fpi_note(fp_plan *plan, double t, int stage, int *bn_stage, const char *fmt, ...)
{
    if (!(t > plan->bottleneck_s) && plan->bottleneck[0]) return;
    plan->bottleneck_s = t;
    *bn_stage = stage;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(plan->bottleneck, sizeof plan->bottleneck, fmt, ap);
    va_end(ap);
}

/* Stage st's compute with codecs a in and b out: replicas share its frames
 * (their rates add); the slowest replica is its latency. */
static void fpi_stage_terms(const fpi_part_ctx *x, const fp_plan_stage *st, int a, int b, double *compute,
                            double *latency)
{
    double inv = 0, slowest = 0;
    for (int r = 0; r < st->n_devices; r++) {
        double t = fpi_part_stage_io_s(x, st->first, st->last, st->devices[r], a, b);
        inv += t > 0 ? 1.0 / t : INFINITY;
        if (t > slowest) slowest = t;
    }
    *compute = st->n_devices == 1 ? slowest : (isinf(inv) ? 0 : 1.0 / inv);
    *latency = slowest;
}

/* Chooses every cut's codec (index into x->codec_list) for the bottleneck
 * (latency = 0) or the latency (1), every term at most cap: a cut's codec
 * sets its link's time and the CPU of the stages on both sides, so over the
 * chain, by dynamic programming on the codec of the last cut so far (exact:
 * adding a term keeps the order of values). *value gets the best value;
 * FP_ENOTFOUND when a cut has no allowed codec (m = INFINITY when only the
 * cap excludes everything). */
static fp_status fpi_choose_codecs(const fpi_part_ctx *x, const fp_plan *plan, const int *forced, int latency,
                                   double cap, int *q_out, fpi_val *value)
{
    int S = plan->n_stages, nc = x->n_codecs;
    fpi_val v[FP_CODEC_COUNT], w[FP_CODEC_COUNT];
    signed char back[FP_PART_MAX_DEVICES][FP_CODEC_COUNT];
    for (int s = 0; s < S; s++) {
        const fp_plan_stage *st = &plan->stages[s], *nx = s + 1 < S ? &plan->stages[s + 1] : NULL;
        int any = 0;
        for (int q = 0; q < nc; q++) {
            int b = x->codec_list[q];
            w[q] = FPI_VAL_INF;
            back[s][q] = -1;
            if (forced && forced[s] >= 0 && forced[s] != b) continue;
            double lt = fpi_cut_s(x, st->last, st->devices, st->n_devices, nx ? nx->devices : NULL,
                                  nx ? nx->n_devices : 0, (fp_codec)b, NULL);
            if (isinf(lt)) continue;
            any = 1;
            for (int p = 0; p < (s ? nc : 1); p++) {
                if (s && back[s - 1][p] < 0) continue;
                fpi_val prev = s ? v[p] : (fpi_val){plan->input_s, plan->input_s};
                double cm, cl;
                fpi_stage_terms(x, st, s ? x->codec_list[p] : FP_CODEC_NONE, b, &cm, &cl);
                fpi_val t = fpi_val_add(fpi_val_add(prev, cm, cl, cap), lt, lt, cap);
                if (back[s][q] < 0 || fpi_val_better(t, w[q], latency)) w[q] = t, back[s][q] = (signed char)p;
            }
        }
        if (!any)
            return fpi_error(FP_ENOTFOUND, "plan: no allowed codec on every link from stage %d to %s", s,
                             nx ? "the next stage" : "the gateway");
        memcpy(v, w, sizeof v);
    }
    int best = -1;
    for (int q = 0; q < nc; q++)
        if (back[S - 1][q] >= 0 && (best < 0 || fpi_val_better(v[q], v[best], latency))) best = q;
    *value = v[best];
    for (int s = S - 1; s >= 0; s--) {
        q_out[s] = best;
        best = back[s][best];
    }
    return FP_OK;
}

fp_status fpi_part_evaluate(const fpi_part_ctx *x, fp_plan *plan, const int *forced,
                            int *bottleneck_stage)
{
    int S = plan->n_stages, used[FP_PART_MAX_DEVICES] = {0}, bn = -1, q[FP_PART_MAX_DEVICES];
    if (S < 1 || S > FP_PART_MAX_DEVICES)
        return fpi_error(FP_EINVAL, "plan: %d stages (expected 1..%d)", S, FP_PART_MAX_DEVICES);
    for (int s = 0; s < S; s++) {
        const fp_plan_stage *st = &plan->stages[s];
        int want = s ? plan->stages[s - 1].last + 1 : 0;
        if (st->first != want || st->last < st->first || st->last >= x->L ||
            (s == S - 1 && st->last != x->L - 1))
            return fpi_error(FP_EINVAL, "plan: stage %d runs layers %d..%d (expected to start at %d%s)",
                             s, st->first, st->last, want, s == S - 1 ? " and end at the last layer" : "");
        if (st->n_devices < 1 || st->n_devices > x->D)
            return fpi_error(FP_EINVAL, "plan: stage %d has %d devices", s, st->n_devices);
        for (int r = 0; r < st->n_devices; r++) {
            int d = st->devices[r];
            if (d < 0 || d >= x->D) return fpi_error(FP_EINVAL, "plan: stage %d: no device %d", s, d);
            if (used[d]++)
                return fpi_error(FP_EINVAL, "plan: device %s is used twice", x->c->devices[d].name);
        }
    }
    const fp_plan_stage *s0 = &plan->stages[0];
    plan->input_s = fpi_cut_s(x, -1, NULL, 0, s0->devices, s0->n_devices, FP_CODEC_NONE, &plan->input_bytes);
    /* The codecs: for throughput, the least latency among the choices with
     * the least bottleneck (a second pass capped at it), like "optimal". */
    int latency = x->p->objective == FP_OBJECTIVE_LATENCY;
    fpi_val best;
    fp_status e = fpi_choose_codecs(x, plan, forced, latency, INFINITY, q, &best);
    if (!e && !latency && isfinite(best.m))
        e = fpi_choose_codecs(x, plan, forced, 1, best.m * (1 + FPI_PART_TIE), q, &best);
    if (e) return e;
    plan->bottleneck_s = 0;
    plan->bottleneck[0] = '\0';
    plan->feasible = 1;
    fpi_note(plan, plan->input_s, -1, &bn, "input link gateway->%s", x->c->devices[s0->devices[0]].name);
    double lat = plan->input_s;
    for (int s = 0; s < S; s++) {
        fp_plan_stage *st = &plan->stages[s];
        const fp_plan_stage *nx = s + 1 < S ? &plan->stages[s + 1] : NULL;
        int a = s ? x->codec_list[q[s - 1]] : FP_CODEC_NONE, b = x->codec_list[q[s]];
        fpi_stage_terms(x, st, a, b, &st->compute_s, &st->latency_s);
        st->memory_bytes = fpi_part_stage_mem(x, st->first, st->last);
        st->fits = 1;
        for (int r = 0; r < st->n_devices; r++)
            if (!fpi_part_fits(x, st->memory_bytes, st->devices[r])) st->fits = 0;
        if (!st->fits) plan->feasible = 0;
        const char *dn = x->c->devices[st->devices[0]].name;
        if (st->n_devices > 1)
            fpi_note(plan, st->compute_s, s, &bn, "stage %d compute on %s (+%d replicas)", s, dn,
                     st->n_devices - 1);
        else
            fpi_note(plan, st->compute_s, s, &bn, "stage %d compute on %s", s, dn);
        lat += st->latency_s;
        if ((e = fp_part_cut_info(x->g, st->last, &st->out))) return e;
        st->out_codec = (fp_codec)b;
        st->out_s = fpi_cut_s(x, st->last, st->devices, st->n_devices, nx ? nx->devices : NULL,
                              nx ? nx->n_devices : 0, (fp_codec)b, &st->out_bytes);
        if (nx)
            fpi_note(plan, st->out_s, -1, &bn, "link %s->%s (cut after layer %d, %s)", dn,
                     x->c->devices[nx->devices[0]].name, st->last, fp_codec_name((fp_codec)b));
        else
            fpi_note(plan, st->out_s, -1, &bn, "result link %s->gateway", dn);
        lat += st->out_s;
    }
    plan->latency_s = lat;
    plan->images_per_min = plan->bottleneck_s > 0 ? 60.0 / plan->bottleneck_s : INFINITY;
    if (bottleneck_stage) *bottleneck_stage = bn;
    return FP_OK;
}

fp_status fp_part_evaluate(const fp_part_problem *p, fp_plan *plan)
{
    if (!plan) return fpi_error(FP_EINVAL, "fp_part_evaluate: NULL plan");
    fpi_part_ctx x;
    fp_status st = fpi_part_ctx_init(p, &x);
    if (st) return st;
    st = fpi_part_evaluate(&x, plan, NULL, NULL);
    fpi_part_ctx_free(&x);
    return st;
}
