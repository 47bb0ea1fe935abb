/* optimal.c — the exact dynamic program over (stage count, layer prefix,
 * device) that the "optimal" strategy is built on, and the exhaustive search
 * the tests check it against.
 *
 * dp[s][j][e]: the best way to run layers 0..j as s stages whose last stage
 * is on device e (devices used in increasing index order, any subset).
 *   dp[1][j][e]   = in(e) ⊕ C_e(0..j)                   if 0..j fits e
 *   arr[s][k][e]  = min_{d<e} dp[s-1][k][d] ⊕ link(k, d, e)
 *   dp[s][j][e]   = min_{i} arr[s][i-1][e] ⊕ C_e(i..j)  if i..j fits e
 *   final[s]      = min_e dp[s][L-1][e] ⊕ out(e)
 * where ⊕ adds a term: (max, sum) for the bottleneck objective, sum for the
 * latency objective. Both are monotone, so splitting the minimum over
 * (i, d) into arr then dp is exact. Terms above `cap` are forbidden. The
 * codec of each link is its fastest allowed one, which is optimal for both
 * objectives because a link's time enters them monotonically.
 * Cost: O(S·L·D²) for arr and O(S·L²·D) for dp, S = min(D, L). */
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "partition/partition_impl.h"

typedef struct {
    double m; /* bottleneck so far */
    double s; /* sum so far */
} fpi_val;

static const fpi_val fpi_inf = {INFINITY, INFINITY};

/* a better than b: bottleneck then sum, or sum then bottleneck. */
static int fpi_better(fpi_val a, fpi_val b, int latency)
{
    if (latency) return a.s < b.s || (a.s == b.s && a.m < b.m);
    return a.m < b.m || (a.m == b.m && a.s < b.s);
}

/* a ⊕ t, infeasible when t exceeds the cap. */
static fpi_val fpi_add(fpi_val a, double t, double cap)
{
    if (isinf(a.m) || !(t <= cap)) return fpi_inf;
    return (fpi_val){a.m > t ? a.m : t, a.s + t};
}

fp_status fpi_part_dp(const fpi_part_ctx *x, int latency, double cap, fp_plan *best)
{
    int L = x->L, D = x->D, S = D < L ? D : L;
    if ((double)S * L * L * D + (double)S * L * D * D > 4e9)
        return fpi_error(FP_ETOOBIG, "partition: %d layers on %d devices is too large for the exact search", L, D);
    size_t n = (size_t)S * (size_t)L * (size_t)D;
    fp_status st = FP_OK;
    fpi_val *dp = fpi_malloc(n * sizeof *dp), *arr = fpi_malloc(n * sizeof *arr);
    int *dpi = fpi_malloc(n * sizeof *dpi), *arrd = fpi_malloc(n * sizeof *arrd);
    double *lk = fpi_malloc((size_t)L * (size_t)D * (size_t)D * sizeof *lk);
    double *in = fpi_malloc((size_t)D * sizeof *in), *res = fpi_malloc((size_t)D * sizeof *res);
    if (!dp || !arr || !dpi || !arrd || !lk || !in || !res) {
        st = fpi_error(FP_ENOMEM, "out of memory for the partition search (%d layers, %d devices)", L, D);
        goto done;
    }
#define IDX(s, j, e) (((size_t)((s) - 1) * (size_t)L + (size_t)(j)) * (size_t)D + (size_t)(e))
#define LK(k, d, e) lk[((size_t)(k) * (size_t)D + (size_t)(d)) * (size_t)D + (size_t)(e)]
    for (size_t q = 0; q < n; q++) dp[q] = arr[q] = fpi_inf, dpi[q] = arrd[q] = -1;
    for (int k = 0; k + 1 < L; k++)
        for (int d = 0; d < D; d++)
            for (int e = 0; e < D; e++)
                LK(k, d, e) = d < e ? fpi_part_best_link(x, k, d, e, NULL) : INFINITY;
    for (int e = 0; e < D; e++) {
        in[e] = fpi_part_link_s(x, -1, D, e, FP_CODEC_NONE, NULL);
        res[e] = fpi_part_best_link(x, L - 1, e, D, NULL);
    }
    for (int s = 1; s <= S; s++) {
        if (s >= 2)
            for (int k = s - 2; k + 1 < L; k++)
                for (int e = s - 1; e < D; e++) {
                    fpi_val b = fpi_inf;
                    int bd = -1;
                    for (int d = s - 2; d < e; d++) {
                        fpi_val v = fpi_add(dp[IDX(s - 1, k, d)], LK(k, d, e), cap);
                        if (fpi_better(v, b, latency)) b = v, bd = d;
                    }
                    arr[IDX(s, k, e)] = b;
                    arrd[IDX(s, k, e)] = bd;
                }
        for (int j = s - 1; j < L; j++) {
            uint64_t live = 0, scr = 0;
            for (int i = j; i >= (s == 1 ? 0 : s - 1); i--) {
                if (x->live[i] > live) live = x->live[i];
                if (x->scratch[i] > scr) scr = x->scratch[i];
                if (s == 1 && i != 0) continue;
                uint64_t mem = fpi_part_mem_of(x, i, j, live, scr);
                for (int e = s - 1; e < D; e++) {
                    if (!fpi_part_fits(x, mem, e)) continue;
                    fpi_val prev = s == 1 ? fpi_add((fpi_val){0, 0}, in[e], cap) : arr[IDX(s, i - 1, e)];
                    fpi_val v = fpi_add(prev, fpi_part_stage_s(x, i, j, e), cap);
                    if (fpi_better(v, dp[IDX(s, j, e)], latency)) dp[IDX(s, j, e)] = v, dpi[IDX(s, j, e)] = i;
                }
            }
        }
        /* Best final device for s stages, then walk the choices back. */
        fpi_val b = fpi_inf;
        int be = -1;
        for (int e = s - 1; e < D; e++) {
            fpi_val v = fpi_add(dp[IDX(s, L - 1, e)], res[e], cap);
            if (fpi_better(v, b, latency)) b = v, be = e;
        }
        fp_plan *pl = &best[s - 1];
        fpi_part_plan_init(x, pl, FP_STRATEGY_OPTIMAL);
        pl->feasible = 0;
        if (be < 0) continue;
        pl->n_stages = s;
        for (int t = s, j = L - 1, e = be; t >= 1; t--) {
            int i = dpi[IDX(t, j, e)];
            pl->stages[t - 1].first = i;
            pl->stages[t - 1].last = j;
            pl->stages[t - 1].n_devices = 1;
            pl->stages[t - 1].devices[0] = e;
            if (t > 1) {
                e = arrd[IDX(t, i - 1, e)];
                j = i - 1;
            }
        }
        if ((st = fpi_part_evaluate(x, pl, NULL, NULL))) goto done;
    }
#undef IDX
#undef LK
done:
    fpi_free(dp);
    fpi_free(arr);
    fpi_free(dpi);
    fpi_free(arrd);
    fpi_free(lk);
    fpi_free(in);
    fpi_free(res);
    return st;
}

/* State of the exhaustive enumeration. */
typedef struct {
    const fpi_part_ctx *x;  /* the problem */
    fp_plan plan;           /* plan being built */
    int pass;               /* 0: best bottleneck/latency; 1: least latency within the best bottleneck */
    double best_b;          /* best bottleneck found (pass 0) */
    double best_l;          /* least latency found */
    int found;              /* any plan fits */
} fpi_exh;

/* Evaluates the complete plan in h->plan and records it. */
static void fpi_exh_visit(fpi_exh *h)
{
    int latency = h->x->p->objective == FP_OBJECTIVE_LATENCY;
    if (fpi_part_evaluate(h->x, &h->plan, NULL, NULL) || !h->plan.feasible ||
        isinf(h->plan.bottleneck_s) || isinf(h->plan.latency_s))
        return;
    double b = h->plan.bottleneck_s, l = h->plan.latency_s;
    h->found = 1;
    if (latency) {
        if (l < h->best_l) h->best_l = l;
    } else if (h->pass == 0) {
        if (b < h->best_b) h->best_b = b;
    } else if (b <= h->best_b * (1 + FPI_PART_TIE) && l < h->best_l) {
        h->best_l = l;
    }
}

/* Chooses the device of stage s (> previous) and the end of stage s, then
 * recurses; stages s.. cover layers `first`..L-1. */
static void fpi_exh_rec(fpi_exh *h, int s, int first, int min_dev, int stages)
{
    const fpi_part_ctx *x = h->x;
    for (int d = min_dev; d <= x->D - (stages - s); d++) {
        fp_plan_stage *st = &h->plan.stages[s];
        st->first = first;
        st->n_devices = 1;
        st->devices[0] = d;
        if (s == stages - 1) {
            st->last = x->L - 1;
            fpi_exh_visit(h);
            continue;
        }
        for (int last = first; last <= x->L - 1 - (stages - 1 - s); last++) {
            st->last = last;
            fpi_exh_rec(h, s + 1, last + 1, d + 1, stages);
        }
    }
}

fp_status fpi_part_exhaustive(const fp_part_problem *p, double *bottleneck_s, double *latency_s,
                              int *found)
{
    fpi_exh *h = fpi_calloc(1, sizeof *h);
    if (!h) return fpi_error(FP_ENOMEM, "out of memory");
    fpi_part_ctx x;
    fp_status st = fpi_part_ctx_init(p, &x);
    if (st) {
        fpi_free(h);
        return st;
    }
    h->x = &x;
    h->best_b = h->best_l = INFINITY;
    int S = x.D < x.L ? x.D : x.L;
    for (h->pass = 0; h->pass < 2; h->pass++)
        for (int s = 1; s <= S; s++) {
            fpi_part_plan_init(&x, &h->plan, FP_STRATEGY_CUTS);
            h->plan.n_stages = s;
            fpi_exh_rec(h, 0, 0, 0, s);
        }
    *found = h->found;
    *bottleneck_s = h->best_b;
    *latency_s = h->best_l;
    fpi_part_ctx_free(&x);
    fpi_free(h);
    return FP_OK;
}
