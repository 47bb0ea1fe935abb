/* optimal.c — the exact dynamic program over (stage count, layer prefix,
 * device, codec) that the "optimal" strategy is built on, and the
 * exhaustive search the tests check it against.
 *
 * dp[s][j][e][b]: the best way to run layers 0..j as s stages whose last
 * stage is on device e and sends its cut with codec b, that stage's term
 * included but not its link (devices used in increasing index order, any
 * subset). T_e(i..j, a, b) is a stage's compute plus the CPU of receiving
 * with codec a and sending with b (fpi_part_stage_io_s).
 *   dp[1][j][e][b]  = in(e) ⊕ T_e(0..j, -, b)                if 0..j fits e
 *   arr[s][k][e][a] = min_{d<e} dp[s-1][k][d][a] ⊕ link(k, d, e, a)
 *   dp[s][j][e][b]  = min_{i,a} arr[s][i-1][e][a] ⊕ T_e(i..j, a, b)   if i..j fits e
 *   final[s]        = min_{e,b} dp[s][L-1][e][b] ⊕ out(e, b)
 * where ⊕ adds a term: (max, sum) for the bottleneck objective, sum for the
 * latency objective. Both keep the order of values, so splitting the
 * minimum over (i, a, d) into arr then dp is exact. Terms above `cap` are
 * forbidden. A cut's codec is part of the state because it costs the
 * stages on both sides CPU as well as its link time.
 * Cost: O(S·L²·D·C²) for dp and O(S·L·D²·C) for arr, S = min(D, L), C the
 * codecs allowed. */
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "partition/partition_impl.h"

fp_status fpi_part_dp(const fpi_part_ctx *x, int latency, double cap, fp_plan *best)
{
    int L = x->L, D = x->D, S = D < L ? D : L, C = x->n_codecs;
    if ((double)S * L * L * D * C * C + (double)S * L * D * D * C > 4e9 || (double)S * L * D * C > 3e7)
        return fpi_error(FP_ETOOBIG, "partition: %d layers on %d devices with %d codecs is too large for the exact "
                         "search", L, D, C);
    size_t n = (size_t)S * (size_t)L * (size_t)D * (size_t)C;
    fp_status st = FP_OK;
    fpi_val *dp = fpi_malloc(n * sizeof *dp), *arr = fpi_malloc(n * sizeof *arr);
    int *dpi = fpi_malloc(n * sizeof *dpi), *arrd = fpi_malloc(n * sizeof *arrd);
    signed char *dpa = fpi_malloc(n);
    double *in = fpi_malloc((size_t)D * sizeof *in), *res = fpi_malloc((size_t)D * (size_t)C * sizeof *res);
    if (!dp || !arr || !dpi || !arrd || !dpa || !in || !res) {
        st = fpi_error(FP_ENOMEM, "out of memory for the partition search (%d layers, %d devices)", L, D);
        goto done;
    }
#define IDX(s, j, e, q) \
    ((((size_t)((s) - 1) * (size_t)L + (size_t)(j)) * (size_t)D + (size_t)(e)) * (size_t)C + (size_t)(q))
    for (size_t u = 0; u < n; u++) dp[u] = arr[u] = FPI_VAL_INF, dpi[u] = arrd[u] = -1, dpa[u] = -1;
    for (int e = 0; e < D; e++) {
        in[e] = fpi_part_link_s(x, -1, D, e, FP_CODEC_NONE, NULL);
        for (int q = 0; q < C; q++) res[e * C + q] = fpi_part_link_s(x, L - 1, e, D, (fp_codec)x->codec_list[q], NULL);
    }
    for (int s = 1; s <= S; s++) {
        if (s >= 2)
            for (int k = s - 2; k + 1 < L; k++)
                for (int e = s - 1; e < D; e++)
                    for (int q = 0; q < C; q++) {
                        fpi_val b = FPI_VAL_INF;
                        int bd = -1;
                        for (int d = s - 2; d < e; d++) {
                            double t = fpi_part_link_s(x, k, d, e, (fp_codec)x->codec_list[q], NULL);
                            fpi_val v = fpi_val_add(dp[IDX(s - 1, k, d, q)], t, t, cap);
                            if (fpi_val_better(v, b, latency)) b = v, bd = d;
                        }
                        arr[IDX(s, k, e, q)] = b;
                        arrd[IDX(s, k, e, q)] = bd;
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
                    for (int qb = 0; qb < C; qb++)
                        for (int qa = 0; qa < (s == 1 ? 1 : C); qa++) {
                            fpi_val prev = s == 1 ? fpi_val_add((fpi_val){0, 0}, in[e], in[e], cap)
                                                  : arr[IDX(s, i - 1, e, qa)];
                            double t = fpi_part_stage_io_s(x, i, j, e, x->codec_list[qa], x->codec_list[qb]);
                            fpi_val v = fpi_val_add(prev, t, t, cap);
                            size_t u = IDX(s, j, e, qb);
                            if (fpi_val_better(v, dp[u], latency)) dp[u] = v, dpi[u] = i, dpa[u] = (signed char)qa;
                        }
                }
            }
        }
        /* Best final device and result codec for s stages, then walk the choices back. */
        fpi_val b = FPI_VAL_INF;
        int be = -1, bq = -1;
        for (int e = s - 1; e < D; e++)
            for (int q = 0; q < C; q++) {
                fpi_val v = fpi_val_add(dp[IDX(s, L - 1, e, q)], res[e * C + q], res[e * C + q], cap);
                if (fpi_val_better(v, b, latency)) b = v, be = e, bq = q;
            }
        fp_plan *pl = &best[s - 1];
        fpi_part_plan_init(x, pl, FP_STRATEGY_OPTIMAL);
        pl->feasible = 0;
        if (be < 0) continue;
        pl->n_stages = s;
        for (int t = s, j = L - 1, e = be, q = bq; t >= 1; t--) {
            size_t u = IDX(t, j, e, q);
            int i = dpi[u];
            pl->stages[t - 1].first = i;
            pl->stages[t - 1].last = j;
            pl->stages[t - 1].n_devices = 1;
            pl->stages[t - 1].devices[0] = e;
            if (t > 1) {
                q = dpa[u];
                e = arrd[IDX(t, i - 1, e, q)];
                j = i - 1;
            }
        }
        /* Evaluating chooses the same codecs again (over the same terms). */
        if ((st = fpi_part_evaluate(x, pl, NULL, NULL))) goto done;
    }
#undef IDX
done:
    fpi_free(dp);
    fpi_free(arr);
    fpi_free(dpi);
    fpi_free(arrd);
    fpi_free(dpa);
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
