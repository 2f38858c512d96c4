/*
 * tests/test_xent_shard.c — cross-entropy over a vocabulary split across
 * tensor-parallel ranks (xent_shard_* in kernels/ops.h), through the
 * `struct ops` table only, for every backend.
 *
 * Each case takes random logits [N, V], cuts every row into shards of given
 * widths (each shard in its own backend buffer, as a rank would hold it) and
 * runs the stages per shard, combining on the host exactly as the ranks
 * would through allreduce:
 *   stats per shard -> M = max of the local maxima -> rescale per shard ->
 *   S = sum of the rescaled sums, z_target = sum of the target logits ->
 *   loss on every shard (must agree bit for bit) -> bwd per shard.
 * The loss and the concatenated dlogits are checked against the fused
 * xent_fwd / xent_bwd_inplace of the same backend on the full rows, and
 * against a double-precision reference; the per-shard stats against their
 * definitions (max and target logit exactly, sum-exp in double).
 *
 * Tolerances. Everything is fp32; the shard path sums exp over each shard and
 * then adds the rescaled shard sums, the fused op sums over the whole row, so
 * S differs by a few ulp (~1e-7 relative) and so do loss and dlogits.
 * Metric: max|a - ref| / max(max|ref|, floor), floor 1 for losses and sums
 * (each >= 1 here: a loss is ~1..30, a non-empty shard's sum-exp contains
 * its max term exp(0) = 1) and 1e-3 for gradients (|dz| reaches ~dloss ~ 1).
 * Measured on the CPU backend: loss and dlogits <= 1.8e-7 against the fused
 * ops and <= 1.2e-7 against double (LLMPI_TEST_VERBOSE=1 prints each);
 * TOL = 1e-6 leaves >5x margin and is far below the O(1e-2 .. 1) error of a
 * wrong rescale or a misplaced target. The sum-exp statistics themselves,
 * sums of up to 4000 fp32 terms, are held to the summation bound tol_sum()
 * instead (measured <= 1.2e-6 over 1500 terms).
 *
 * Suites: cpu::*, and cuda::* when built with LLMPI_HAVE_CUDA (skipped when
 * no device is usable).
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define TOL 1e-6        /* vs the fused ops and vs double, relative          */
#define GRAD_FLOOR 1e-3 /* floor of the denominator for gradients           */
#define MAX_SHARDS 8
#define GARBAGE 999.0f /* pre-filled outputs: an unwritten one shows        */

/* A sum of n positive fp32 terms, added one by one, is within (n-1) u of the
 * exact sum (u = 2^-24), plus ~1 ulp from each expf: the bound for the
 * sum-exp statistics themselves (the 1500-wide shards measure 1.2e-6). */
static double tol_sum(int n) { return TOL + (double)n * ldexp(1.0, -24); }

static int verbose(void) {
    const char *e = getenv("LLMPI_TEST_VERBOSE");
    return e && *e && strcmp(e, "0") != 0;
}

static void need(int rc, const char *what) {
    cr_assert(rc == 0, "allocation failed: %s", what);
}

static void expect_close_tol(const char *cfg, const char *what, const float *a,
                             const double *ref, size_t n, double floor, double tol) {
    size_t arg = 0;
    double e = rel_err_fd(a, ref, n, floor, &arg);
    if (verbose())
        fprintf(stderr, "  %-40s %-34s err %.3e (tol %.1e)\n", cfg, what, e, tol);
    cr_expect(e <= tol,
              "%s %s: rel err %.3e > %.1e (worst at [%zu]: got %.9g, want %.9g)", cfg,
              what, e, tol, arg, n ? (double)a[arg] : 0.0, n ? ref[arg] : 0.0);
}

static void expect_close(const char *cfg, const char *what, const float *a,
                         const double *ref, size_t n, double floor) {
    expect_close_tol(cfg, what, a, ref, n, floor, TOL);
}

static void expect_close_ff(const char *cfg, const char *what, const float *a,
                            const float *ref, size_t n, double floor) {
    double *r = calloc(n ? n : 1, sizeof *r);
    cr_assert(r != NULL);
    for (size_t i = 0; i < n; i++)
        r[i] = ref[i];
    expect_close(cfg, what, a, r, n, floor);
    free(r);
}

/* One rank's share: its logits [N, V] and its per-row scalars. */
struct rank {
    int vs, V;
    struct buf lg, m, s, zt; /* logits; local max, sum-exp, target logit */
    struct buf gm, gs, gzt;  /* the allreduced M, S, z_target (rank's copy) */
    struct buf loss, dloss;
};

/*
 * N rows, shard widths w[0..R) (summing to V, a width may be 0), host targets
 * tg_h[N]. Rows are shaped so that the stages matter: row 1 is offset by +50
 * (max subtraction), row N-1 is peaked (x4), and, when there are several
 * shards, row 3 has its last shard raised by 6 (the global max away from the
 * first shard), row 4 its first shard lowered by 30 (a rescale factor near
 * exp(-30)) and row 5, unless its target lies there, its first shard set to
 * -inf (masked ids, e.g. vocabulary padding: m_r = -inf, s_r = 0).
 */
static void shard_case(const struct ops *o, int N, const int *w, int R,
                       const int32_t *tg_h, uint64_t seed) {
    cr_assert(R >= 1 && R <= MAX_SHARDS);
    int V = 0, off[MAX_SHARDS + 1];
    char cfg[128];
    int len = snprintf(cfg, sizeof cfg, "%s N%d shards", o->name, N);
    for (int r = 0; r < R; r++) {
        off[r] = V;
        V += w[r];
        len += snprintf(cfg + len, sizeof cfg - len, "%s%d", r ? "/" : " ", w[r]);
    }
    off[R] = V;
    const size_t NV = (size_t)N * V;
    struct rng rg;
    rng_seed(&rg, seed);

    /* ---- the full rows and the fused ops on them ---------------------------- */
    struct buf full, loss_f, dloss;
    need(buf_rand(o, &full, NV, &rg, -3, 3), "logits");
    for (int v = 0; v < V; v++) {
        if (N > 1) full.h[(size_t)1 * V + v] += 50.0f;
        full.h[(size_t)(N - 1) * V + v] *= 4.0f;
    }
    if (R > 1 && N > 4) {
        for (int v = off[R - 1]; v < V; v++)
            full.h[(size_t)3 * V + v] += 6.0f;
        for (int v = off[0]; v < off[1]; v++)
            full.h[(size_t)4 * V + v] -= 30.0f;
    }
    const int masked = R > 1 && N > 5 && !(tg_h[5] >= off[0] && tg_h[5] < off[1]);
    if (masked) /* row 5: the first shard masked out entirely (-inf logits) */
        for (int v = off[0]; v < off[1]; v++)
            full.h[(size_t)5 * V + v] = -INFINITY;
    buf_push(o, &full);
    need(buf_rand(o, &dloss, N, &rg, 0.5f, 1.5f), "dloss");
    need(buf_alloc(o, &loss_f, N), "fused loss");
    int32_t *tg = dev_i32(o, tg_h, N);
    cr_assert(tg != NULL);
    float *lg_h = malloc((NV ? NV : 1) * sizeof *lg_h);
    cr_assert(lg_h != NULL);
    memcpy(lg_h, full.h, NV * sizeof *lg_h); /* the logits, kept */
    o->xent_fwd(loss_f.d, full.d, tg, N, V);
    buf_pull(o, &loss_f);
    o->xent_bwd_inplace(full.d, tg, dloss.d, N, V);
    buf_pull(o, &full); /* full.h: the fused dlogits now */

    /* ---- double-precision reference ----------------------------------------- */
    double *ref_loss = calloc(N, sizeof *ref_loss);
    double *ref_grad = calloc(NV ? NV : 1, sizeof *ref_grad);
    cr_assert(ref_loss && ref_grad);
    for (int n = 0; n < N; n++) {
        const float *z = lg_h + (size_t)n * V;
        double mx = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++)
            mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < V; v++)
            sum += exp((double)z[v] - mx);
        const int t = tg_h[n];
        ref_loss[n] = t < 0 ? 0.0 : log(sum) + mx - z[t];
        for (int v = 0; v < V; v++)
            ref_grad[(size_t)n * V + v] =
                t < 0 ? 0.0 : dloss.h[n] * (exp((double)z[v] - mx) / sum - (v == t));
    }

    /* ---- stage 1: per-shard stats ------------------------------------------- */
    struct rank rk[MAX_SHARDS];
    for (int r = 0; r < R; r++) {
        struct rank *k = &rk[r];
        k->vs = off[r];
        k->V = w[r];
        need(buf_alloc(o, &k->lg, (size_t)N * k->V), "shard logits");
        for (int n = 0; n < N; n++)
            memcpy(k->lg.h + (size_t)n * k->V, lg_h + (size_t)n * V + k->vs,
                   (size_t)k->V * sizeof(float));
        buf_push(o, &k->lg);
        struct buf *sc[] = {&k->m, &k->s, &k->zt, &k->gm, &k->gs, &k->gzt, &k->loss};
        for (size_t i = 0; i < sizeof sc / sizeof *sc; i++) {
            need(buf_alloc(o, sc[i], N), "per-row scalars");
            for (int n = 0; n < N; n++)
                sc[i]->h[n] = GARBAGE;
            buf_push(o, sc[i]);
        }
        need(buf_from(o, &k->dloss, dloss.h, N), "shard dloss");

        o->xent_shard_stats(k->m.d, k->s.d, k->zt.d, k->lg.d, tg, N, k->V, k->vs);
        buf_pull(o, &k->m);
        buf_pull(o, &k->s);
        buf_pull(o, &k->zt);

        /* the stats against their definitions */
        double *ref_s = calloc(N, sizeof *ref_s);
        cr_assert(ref_s != NULL);
        for (int n = 0; n < N; n++) {
            const float *z = k->lg.h + (size_t)n * k->V;
            float mx = -INFINITY;
            for (int v = 0; v < k->V; v++)
                mx = z[v] > mx ? z[v] : mx;
            cr_expect(k->m.h[n] == mx, "%s shard %d row %d: max %.9g, want %.9g", cfg, r,
                      n, (double)k->m.h[n], (double)mx);
            for (int v = 0; v < k->V && mx != -INFINITY; v++)
                ref_s[n] += exp((double)z[v] - mx);
            const int t = tg_h[n] - k->vs;
            const float zt = tg_h[n] >= 0 && t >= 0 && t < k->V ? z[t] : 0.0f;
            cr_expect(k->zt.h[n] == zt,
                      "%s shard %d row %d: target logit %.9g, want %.9g", cfg, r, n,
                      (double)k->zt.h[n], (double)zt);
        }
        char what[48];
        snprintf(what, sizeof what, "shard %d local sum-exp", r);
        expect_close_tol(cfg, what, k->s.h, ref_s, N, 1.0, tol_sum(k->V));
        free(ref_s);
    }

    /* ---- stage 2: allreduce-max; 3: rescale; 4: allreduce-sum --------------- */
    float *M = malloc(N * sizeof *M), *S = calloc(N, sizeof *S),
          *ZT = calloc(N, sizeof *ZT);
    cr_assert(M && S && ZT);
    for (int n = 0; n < N; n++) {
        M[n] = -INFINITY;
        for (int r = 0; r < R; r++)
            M[n] = rk[r].m.h[n] > M[n] ? rk[r].m.h[n] : M[n];
    }
    for (int r = 0; r < R; r++) {
        struct rank *k = &rk[r];
        memcpy(k->gm.h, M, N * sizeof *M);
        buf_push(o, &k->gm);
        o->xent_shard_rescale(k->s.d, k->m.d, k->gm.d, N);
        buf_pull(o, &k->s);
        for (int n = 0; n < N; n++) {
            S[n] += k->s.h[n];
            ZT[n] += k->zt.h[n];
        }
    }
    /* S against double */
    double *ref_S = calloc(N, sizeof *ref_S);
    cr_assert(ref_S != NULL);
    for (int n = 0; n < N; n++)
        for (int v = 0; v < V; v++)
            ref_S[n] += exp((double)lg_h[(size_t)n * V + v] - M[n]);
    expect_close_tol(cfg, "combined sum-exp vs double", S, ref_S, N, 1.0, tol_sum(V));
    free(ref_S);

    /* ---- stage 5: loss on every rank; 6: bwd per shard ---------------------- */
    float *grad = malloc((NV ? NV : 1) * sizeof *grad);
    cr_assert(grad != NULL);
    for (int r = 0; r < R; r++) {
        struct rank *k = &rk[r];
        memcpy(k->gs.h, S, N * sizeof *S);
        memcpy(k->gzt.h, ZT, N * sizeof *ZT);
        buf_push(o, &k->gs);
        buf_push(o, &k->gzt);
        o->xent_shard_loss(k->loss.d, k->gm.d, k->gs.d, k->gzt.d, tg, N);
        buf_pull(o, &k->loss);
        for (int n = 0; n < N; n++)
            cr_expect(memcmp(&k->loss.h[n], &rk[0].loss.h[n], sizeof(float)) == 0,
                      "%s row %d: loss on shard %d (%.9g) differs from shard 0 (%.9g)",
                      cfg, n, r, (double)k->loss.h[n], (double)rk[0].loss.h[n]);
        o->xent_shard_bwd_inplace(k->lg.d, tg, k->dloss.d, k->gm.d, k->gs.d, N, k->V,
                                  k->vs);
        buf_pull(o, &k->lg);
        for (int n = 0; n < N; n++)
            memcpy(grad + (size_t)n * V + k->vs, k->lg.h + (size_t)n * k->V,
                   (size_t)k->V * sizeof(float));
    }
    expect_close_ff(cfg, "loss vs fused xent_fwd", rk[0].loss.h, loss_f.h, N, 1.0);
    expect_close(cfg, "loss vs double", rk[0].loss.h, ref_loss, N, 1.0);
    expect_close_ff(cfg, "dlogits vs fused xent_bwd_inplace", grad, full.h, NV,
                    GRAD_FLOOR);
    expect_close(cfg, "dlogits vs double", grad, ref_grad, NV, GRAD_FLOOR);
    for (int n = 0; n < N; n++) {
        if (tg_h[n] >= 0) continue;
        cr_expect(rk[0].loss.h[n] == 0.0f, "%s row %d (target -1): loss %.9g, want 0",
                  cfg, n, (double)rk[0].loss.h[n]);
        for (int v = 0; v < V; v++)
            cr_expect(grad[(size_t)n * V + v] == 0.0f,
                      "%s row %d (target -1): dlogits[%d] = %.9g, want 0", cfg, n, v,
                      (double)grad[(size_t)n * V + v]);
    }

    for (int r = 0; r < R; r++) {
        struct buf *all[] = {&rk[r].lg, &rk[r].m,   &rk[r].s,    &rk[r].zt,   &rk[r].gm,
                             &rk[r].gs, &rk[r].gzt, &rk[r].loss, &rk[r].dloss};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            buf_free(o, all[i]);
    }
    free(grad);
    free(M);
    free(S);
    free(ZT);
    free(ref_loss);
    free(ref_grad);
    free(lg_h);
    o->free(tg);
    buf_free(o, &full);
    buf_free(o, &loss_f);
    buf_free(o, &dloss);
}

/* N = 7, V = 37: targets on both edges of each shard of 10/10/17, and -1 */
static const int32_t edge_targets[7] = {0, 9, -1, 10, 19, 20, 36};

static void test_split_10_10_17(const struct ops *o) {
    const int w[] = {10, 10, 17};
    shard_case(o, 7, w, 3, edge_targets, 101);
}

/* the same rows cut differently: tiny shards, reversed widths, an empty
 * shard, and a single shard holding the whole vocabulary (TP = 1) */
static void test_other_splits(const struct ops *o) {
    const int a[] = {17, 10, 10}, b[] = {1, 35, 1}, c[] = {20, 0, 17}, d[] = {37};
    const int e[] = {3, 4, 5, 6, 7, 12};
    shard_case(o, 7, a, 3, edge_targets, 102);
    shard_case(o, 7, b, 3, edge_targets, 103);
    shard_case(o, 7, c, 3, edge_targets, 104);
    shard_case(o, 7, d, 1, edge_targets, 105);
    shard_case(o, 7, e, 6, edge_targets, 106);
}

/* wider shards (more than one block-stride of columns on CUDA), random
 * targets plus the edges of every shard */
static void test_wide(const struct ops *o) {
    const int w[] = {1500, 1501, 999};
    const int32_t tg[9] = {0, 1499, 1500, -1, 3000, 3001, 3999, 2222, 17};
    shard_case(o, 9, w, 3, tg, 107);
    const int w2[] = {333, 333, 334};
    struct rng rg;
    rng_seed(&rg, 108);
    int32_t tr[5];
    for (int n = 0; n < 5; n++)
        tr[n] = rng_int(&rg, 0, 999);
    tr[2] = -1;
    shard_case(o, 5, w2, 3, tr, 109);
}

/* =========================================================================
 * registration: one suite per backend (as in test_ops_grad.c)
 * ========================================================================= */
#define XS_TEST1(suite, name, fn, get_ops, post)                                         \
    Test(suite, name) {                                                                  \
        fn(get_ops());                                                                   \
        post();                                                                          \
    }
#define XS_TESTS(suite, get_ops, post)                                                   \
    XS_TEST1(suite, xent_shard_10_10_17, test_split_10_10_17, get_ops, post)             \
    XS_TEST1(suite, xent_shard_other_splits, test_other_splits, get_ops, post)           \
    XS_TEST1(suite, xent_shard_wide, test_wide, get_ops, post)

static void cpu_post(void) {}
XS_TESTS(cpu, ops_cpu, cpu_post)

#ifdef LLMPI_HAVE_CUDA
#include "ops_cuda.h"

static const struct ops *cuda_or_skip(void) {
    const struct ops *o = ops_cuda();
    if (!o) cr_skip_test("no usable CUDA device");
    return o;
}

static void cuda_post(void) {
    const char *e = cuda_last_error();
    cr_expect(e == NULL, "CUDA backend recorded an error: %s", e ? e : "");
}

XS_TESTS(cuda, cuda_or_skip, cuda_post)
#endif
