/* plan.c — the strategies (by-type, equal-flops, optimal with replicas,
 * hand-given cuts) and --explain's runners-up, all evaluated with the one
 * cost model of cost.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "partition/partition_impl.h"

/* Plan a is better than plan b for the objective (ties within FPI_PART_TIE
 * go to the secondary measure). Infeasible plans are never better. */
static int fpi_plan_better(const fp_plan *a, const fp_plan *b, int latency)
{
    if (!a->feasible || isinf(a->bottleneck_s)) return 0;
    if (!b->feasible || isinf(b->bottleneck_s)) return 1;
    double pa = latency ? a->latency_s : a->bottleneck_s, pb = latency ? b->latency_s : b->bottleneck_s;
    double sa = latency ? a->bottleneck_s : a->latency_s, sb = latency ? b->bottleneck_s : b->latency_s;
    if (pa < pb * (1 - FPI_PART_TIE)) return 1;
    if (pa > pb * (1 + FPI_PART_TIE)) return 0;
    return sa < sb * (1 - FPI_PART_TIE);
}

/* Fills plan stages from cut positions on devices 0..n_cuts. */
static void fpi_plan_from_cuts(const fpi_part_ctx *x, fp_plan *plan, const int *cuts, int n_cuts)
{
    plan->n_stages = n_cuts + 1;
    for (int s = 0; s <= n_cuts; s++) {
        plan->stages[s].first = s ? cuts[s - 1] + 1 : 0;
        plan->stages[s].last = s < n_cuts ? cuts[s] : x->L - 1;
        plan->stages[s].n_devices = 1;
        plan->stages[s].devices[0] = s;
    }
}

/* The prototype's split: everything before the first connected layer on
 * device 0, the rest on device 1. */
static fp_status fpi_by_type(const fpi_part_ctx *x, fp_plan *plan)
{
    int f = -1;
    for (int l = 0; l < x->L && f < 0; l++)
        if (x->g->layers[l].op == FP_OP_CONNECTED) f = l;
    if (f < 0)
        return fpi_error(FP_EUNSUPPORTED, "by-type: the network has no connected layer (the "
                         "prototype split the convolutional layers from the fully connected ones)");
    if (f == 0)
        return fpi_error(FP_EUNSUPPORTED, "by-type: the network starts with a connected layer, "
                         "so there is nothing to split");
    if (x->D < 2) return fpi_error(FP_EINVAL, "by-type needs 2 devices (the cluster has 1)");
    int cut = f - 1;
    fpi_plan_from_cuts(x, plan, &cut, 1);
    return fpi_part_evaluate(x, plan, NULL, NULL);
}

/* Cuts over all devices (or all layers, if fewer) minimising the largest
 * FLOPs / speed of a stage, ignoring links and memory. */
static fp_status fpi_equal_flops(const fpi_part_ctx *x, fp_plan *plan)
{
    int L = x->L, n = x->D < L ? x->D : L;
    double *pre = fpi_calloc((size_t)L + 1, sizeof *pre);
    double *f = fpi_malloc((size_t)n * (size_t)L * sizeof *f);
    int *arg = fpi_malloc((size_t)n * (size_t)L * sizeof *arg);
    fp_status st = FP_OK;
    if (!pre || !f || !arg) {
        st = fpi_error(FP_ENOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; l < L; l++) pre[l + 1] = pre[l] + (double)x->g->layers[l].flops;
    /* f[t][j]: least max cost of layers 0..j on stages 0..t; arg = start of stage t. */
    for (int t = 0; t < n; t++) {
        double sp = x->c->devices[t].speed;
        for (int j = 0; j < L; j++) {
            double b = INFINITY;
            int bi = -1;
            for (int i = t == 0 ? 0 : t; i <= j && (t > 0 || i == 0); i++) {
                double c = (pre[j + 1] - pre[i]) / sp;
                double prev = t == 0 ? 0 : f[(size_t)(t - 1) * L + (size_t)(i - 1)];
                double v = prev > c ? prev : c;
                if (v < b) b = v, bi = i;
            }
            f[(size_t)t * L + (size_t)j] = b;
            arg[(size_t)t * L + (size_t)j] = bi;
        }
    }
    int cuts[FP_PART_MAX_DEVICES];
    for (int t = n - 1, j = L - 1; t >= 1; t--) {
        int i = arg[(size_t)t * L + (size_t)j];
        cuts[t - 1] = i - 1;
        j = i - 1;
    }
    fpi_plan_from_cuts(x, plan, cuts, n - 1);
    st = fpi_part_evaluate(x, plan, NULL, NULL);
done:
    fpi_free(pre);
    fpi_free(f);
    fpi_free(arg);
    return st;
}

/* Greedily gives spare devices to the stage whose compute is the
 * bottleneck, while that strictly improves the bottleneck (PipeDream's
 * replication, over heterogeneous devices). */
static fp_status fpi_replicate(const fpi_part_ctx *x, fp_plan *plan)
{
    int used[FP_PART_MAX_DEVICES] = {0}, bn;
    for (int s = 0; s < plan->n_stages; s++)
        for (int r = 0; r < plan->stages[s].n_devices; r++) used[plan->stages[s].devices[r]] = 1;
    fp_plan *tmp = fpi_malloc(2 * sizeof *tmp);
    if (!tmp) return fpi_error(FP_ENOMEM, "out of memory");
    fp_status st = fpi_part_evaluate(x, plan, NULL, &bn);
    while (!st && bn >= 0) {
        int best_r = -1;
        for (int r = 0; r < x->D; r++) {
            if (used[r]) continue;
            tmp[0] = *plan;
            fp_plan_stage *sg = &tmp[0].stages[bn];
            sg->devices[sg->n_devices++] = r;
            if (fpi_part_evaluate(x, &tmp[0], NULL, NULL) || !tmp[0].feasible) continue;
            if (!(tmp[0].bottleneck_s < plan->bottleneck_s * (1 - FPI_PART_TIE))) continue;
            if (best_r < 0 || fpi_plan_better(&tmp[0], &tmp[1], 0)) best_r = r, tmp[1] = tmp[0];
        }
        if (best_r < 0) break;
        *plan = tmp[1];
        used[best_r] = 1;
        st = fpi_part_evaluate(x, plan, NULL, &bn);
    }
    fpi_free(tmp);
    return st;
}

/* The optimal strategy: the exact DP, then (throughput) the least latency
 * among the plans with the optimal bottleneck, then replicas on spare
 * devices for every stage count, keeping the best. */
static fp_status fpi_optimal(const fpi_part_ctx *x, fp_plan *plan)
{
    int S = x->D < x->L ? x->D : x->L, latency = x->p->objective == FP_OBJECTIVE_LATENCY;
    fp_plan *cand = fpi_malloc((size_t)(S + 1) * sizeof *cand);
    if (!cand) return fpi_error(FP_ENOMEM, "out of memory");
    fp_plan *rep = &cand[S];
    fp_status st = fpi_part_dp(x, latency, INFINITY, cand);
    if (st) goto done;
    int bs = -1;
    for (int s = 0; s < S; s++)
        if (cand[s].feasible && (bs < 0 || fpi_plan_better(&cand[s], &cand[bs], latency))) bs = s;
    if (bs < 0) {
        st = fpi_error(FP_ENOTFOUND, "optimal: no plan fits the devices' memory with the allowed codecs");
        goto done;
    }
    *plan = cand[bs];
    if (latency) goto done;
    /* Exact tie-break: least latency with every term <= the optimal bottleneck. */
    double cap = plan->bottleneck_s * (1 + FPI_PART_TIE);
    fp_plan *tie = fpi_malloc((size_t)S * sizeof *tie);
    if (!tie) {
        st = fpi_error(FP_ENOMEM, "out of memory");
        goto done;
    }
    st = fpi_part_dp(x, 1, cap, tie);
    for (int s = 0; !st && s < S; s++)
        if (tie[s].feasible && tie[s].latency_s < plan->latency_s) *plan = tie[s];
    fpi_free(tie);
    if (st || !x->p->replicas) goto done;
    for (int s = -1; s < S; s++) {
        if (s >= 0 && !cand[s].feasible) continue;
        *rep = s < 0 ? *plan : cand[s];
        if ((st = fpi_replicate(x, rep))) goto done;
        if (fpi_plan_better(rep, plan, 0)) *plan = *rep;
    }
done:
    fpi_free(cand);
    plan->strategy = FP_STRATEGY_OPTIMAL;
    return st;
}

fp_status fp_part_plan(const fp_part_problem *p, fp_strategy strategy, const int *cuts, int n_cuts,
                       fp_plan *out)
{
    if (!out) return fpi_error(FP_EINVAL, "fp_part_plan: NULL plan");
    fpi_part_ctx x;
    fp_status st = fpi_part_ctx_init(p, &x);
    if (st) return st;
    fpi_part_plan_init(&x, out, strategy);
    switch (strategy) {
    case FP_STRATEGY_BY_TYPE: st = fpi_by_type(&x, out); break;
    case FP_STRATEGY_EQUAL_FLOPS: st = fpi_equal_flops(&x, out); break;
    case FP_STRATEGY_OPTIMAL: st = fpi_optimal(&x, out); break;
    case FP_STRATEGY_CUTS:
        if (n_cuts < 0 || (n_cuts > 0 && !cuts) || n_cuts + 1 > x.D) {
            st = fpi_error(FP_EINVAL, "--cuts: %d cuts make %d stages, but the cluster has %d devices",
                           n_cuts, n_cuts + 1, x.D);
            break;
        }
        for (int i = 0; i < n_cuts && !st; i++)
            if (cuts[i] < 0 || cuts[i] > x.L - 2 || (i && cuts[i] <= cuts[i - 1]))
                st = fpi_error(FP_EINVAL, "--cuts: cut %d is after layer %d; cuts must be strictly "
                               "increasing layer indices in 0..%d", i + 1, cuts[i], x.L - 2);
        if (st) break;
        fpi_plan_from_cuts(&x, out, cuts, n_cuts);
        st = fpi_part_evaluate(&x, out, NULL, NULL);
        break;
    default: st = fpi_error(FP_EINVAL, "fp_part_plan: bad strategy %d", (int)strategy); break;
    }
    out->strategy = strategy;
    out->objective = p->objective;
    fpi_part_ctx_free(&x);
    return st;
}

/* Appends an alternative. */
static void fpi_alt(fp_part_alt *alts, int max, int *n, const fp_plan *pl, const char *what)
{
    if (*n >= max) return;
    fp_part_alt *a = &alts[(*n)++];
    snprintf(a->what, sizeof a->what, "%s", what);
    a->feasible = pl->feasible;
    a->bottleneck_s = pl->feasible ? pl->bottleneck_s : INFINITY;
    a->latency_s = pl->latency_s;
    snprintf(a->bottleneck, sizeof a->bottleneck, "%s", pl->feasible ? pl->bottleneck : "does not fit memory");
}

/* "after 8 on dev0|dev1" style description of a plan's cuts and devices. */
static void fpi_describe(const fpi_part_ctx *x, const fp_plan *pl, char *buf, size_t size)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, size, "%d stage%s:", pl->n_stages, pl->n_stages > 1 ? "s" : "");
    for (int s = 0; s < pl->n_stages && k < size; s++) {
        const fp_plan_stage *st = &pl->stages[s];
        k += (size_t)snprintf(buf + k, size - k, " %d-%d@%s", st->first, st->last,
                              x->c->devices[st->devices[0]].name);
        for (int r = 1; r < st->n_devices && k < size; r++)
            k += (size_t)snprintf(buf + k, size - k, "+%s", x->c->devices[st->devices[r]].name);
    }
}

fp_status fp_part_explain(const fp_part_problem *p, const fp_plan *plan, fp_part_alt *alts, int max,
                          int *n)
{
    if (!plan || !alts || !n || max < 0) return fpi_error(FP_EINVAL, "fp_part_explain: bad argument");
    *n = 0;
    fpi_part_ctx x;
    fp_status st = fpi_part_ctx_init(p, &x);
    if (st) return st;
    int S = x.D < x.L ? x.D : x.L;
    fp_plan *buf = fpi_malloc((size_t)(S + 1) * sizeof *buf);
    if (!buf) {
        fpi_part_ctx_free(&x);
        return fpi_error(FP_ENOMEM, "out of memory");
    }
    fp_plan *tmp = &buf[S];
    char what[160], desc[128];
    /* The best plan of every other stage count. */
    st = fpi_part_dp(&x, p->objective == FP_OBJECTIVE_LATENCY, INFINITY, buf);
    for (int s = 0; !st && s < S; s++) {
        int replicated = 0;
        for (int k = 0; k < plan->n_stages; k++) replicated |= plan->stages[k].n_devices > 1;
        if (s + 1 == plan->n_stages && plan->strategy == FP_STRATEGY_OPTIMAL && !replicated) continue;
        if (!buf[s].feasible) {
            snprintf(what, sizeof what, "best with %d stage%s: none fits memory", s + 1, s ? "s" : "");
            fpi_alt(alts, max, n, &buf[s], what);
            continue;
        }
        fpi_describe(&x, &buf[s], desc, sizeof desc);
        snprintf(what, sizeof what, "best with %s%s", desc, p->replicas ? " (no replicas)" : "");
        fpi_alt(alts, max, n, &buf[s], what);
    }
    /* Every cut moved by one layer, devices and replicas kept. */
    for (int c = 0; !st && c + 1 < plan->n_stages; c++)
        for (int dir = -1; dir <= 1; dir += 2) {
            *tmp = *plan;
            int nl = tmp->stages[c].last + dir;
            if (nl < tmp->stages[c].first || nl + 1 > tmp->stages[c + 1].last) continue;
            tmp->stages[c].last = nl;
            tmp->stages[c + 1].first = nl + 1;
            if (fpi_part_evaluate(&x, tmp, NULL, NULL)) continue;
            snprintf(what, sizeof what, "cut %d after layer %d instead of %d", c + 1, nl, plan->stages[c].last);
            fpi_alt(alts, max, n, tmp, what);
        }
    /* The next-best codec of every cut. */
    for (int c = 0; !st && c < plan->n_stages; c++) {
        int forced[FP_PART_MAX_DEVICES], best_c = -1;
        double best = INFINITY;
        for (int k = 0; k < FP_CODEC_COUNT; k++) {
            if (k == (int)plan->stages[c].out_codec) continue;
            for (int s = 0; s < plan->n_stages; s++) forced[s] = (int)plan->stages[s].out_codec;
            forced[c] = k;
            *tmp = *plan;
            if (fpi_part_evaluate(&x, tmp, forced, NULL)) continue;
            double v = p->objective == FP_OBJECTIVE_LATENCY ? tmp->latency_s : tmp->bottleneck_s;
            if (v < best) best = v, best_c = k;
        }
        if (best_c < 0) continue;
        for (int s = 0; s < plan->n_stages; s++) forced[s] = (int)plan->stages[s].out_codec;
        forced[c] = best_c;
        *tmp = *plan;
        fpi_part_evaluate(&x, tmp, forced, NULL);
        if (c + 1 < plan->n_stages)
            snprintf(what, sizeof what, "cut after layer %d with %s instead of %s", plan->stages[c].last,
                     fp_codec_name((fp_codec)best_c), fp_codec_name(plan->stages[c].out_codec));
        else
            snprintf(what, sizeof what, "result link with %s instead of %s", fp_codec_name((fp_codec)best_c),
                     fp_codec_name(plan->stages[c].out_codec));
        fpi_alt(alts, max, n, tmp, what);
    }
    fpi_free(buf);
    fpi_part_ctx_free(&x);
    return st;
}
