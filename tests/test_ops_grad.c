/*
 * tests/test_ops_grad.c — every op of kernels/ops.h checked through the
 * `struct ops` table only, so the same checks run on any backend.
 *
 * Backward ops are checked against central finite differences:
 *   - inputs are random with a fixed seed;
 *   - r is a random projection of the output and L = sum(out * r), so the
 *     gradient of L with respect to the output is r (passed as dout);
 *   - the analytic gradient comes from the backward op into zeroed buffers
 *     (backward ops accumulate);
 *   - the numeric gradient is (L(x+h) - L(x-h)) / (fl(x+h) - fl(x-h)),
 *     evaluated in double from the fp32 forward outputs, for every coordinate
 *     of every input (sizes are kept small), except for the elementwise ops
 *     and one wide embedding case, where every 3rd / 5th coordinate is
 *     differenced and all coordinates are also checked against the closed
 *     form.
 * Metric: err = max|analytic - numeric| / max(max|numeric|, 1e-3).
 *
 * Tolerances (see the TOL_* constants): fp32 forward outputs round at ~6e-8
 * relative, so the numeric gradient carries a noise of about
 * (#changed outputs)^(1/2) * 6e-8 * |out| / (2h) plus an O(h^2) truncation
 * term. For ops that are linear in the perturbed input (embedding, matmul,
 * residual, layernorm w/b) the truncation term vanishes and h = 1e-2 gives
 * 1e-7 .. 1.3e-5 (measured on the CPU backend); for the nonlinear ones
 * (layernorm inp, attention, gelu, xent) h = 1e-3 .. 3e-3 balances the two
 * and gives 2e-5 .. 4e-4. The tolerances below (1e-4 and 5e-3) leave a
 * margin of roughly 8-12x over that and are still far below the
 * O(1e-2 .. 1) error of a wrong formula.
 *
 * Forward ops are checked against naive double-precision references, the
 * optimizers against a double-precision replay of the formulas in ops.h.
 *
 * Set LLMPI_TEST_VERBOSE=1 to print every measured error.
 *
 * Suites: cpu::*, and cuda::* when built with LLMPI_HAVE_CUDA (skipped when
 * no device is usable). Another backend: instantiate OPS_TESTS (bottom).
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- tolerances ----------------------------------------------------------- */
#define FD_FLOOR 1e-3     /* floor of the denominator in the FD metric        */
#define TOL_FD_LINEAR 1e-4 /* FD of an op linear in the perturbed input      */
#define TOL_FD_NONLIN 5e-3 /* FD of a nonlinear op (attention, layernorm, ..) */
#define TOL_FWD 1e-5      /* fp32 forward vs double reference (floor 1)       */
#define TOL_REF_GRAD 1e-5 /* fp32 backward vs closed-form double reference    */
#define TOL_SAME 1e-6     /* two fp32 computations of the same quantity       */

/* ---- reporting ------------------------------------------------------------ */
static int verbose(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("LLMPI_TEST_VERBOSE");
        v = e && *e && strcmp(e, "0") != 0;
    }
    return v;
}

/* printf-style name into a static buffer (used immediately by the caller) */
static const char *nm(const char *fmt, ...)
{
    static char s[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    return s;
}

static void need(int rc, const char *what)
{
    cr_assert(rc == 0, "allocation failed: %s", what);
}

static double *dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    cr_assert(p != NULL, "host allocation failed");
    return p;
}

static double expect_close(const char *what, const float *a, const double *ref,
                           size_t n, double floor, double tol)
{
    size_t arg = 0;
    double e = rel_err_fd(a, ref, n, floor, &arg);
    if (verbose())
        fprintf(stderr, "  %-56s err %.3e  (tol %.1e)\n", what, e, tol);
    cr_expect(e <= tol,
              "%s: rel err %.3e > tol %.1e (worst at [%zu]: got %.9g, want %.9g)",
              what, e, tol, arg, n ? (double)a[arg] : 0.0, n ? ref[arg] : 0.0);
    return e;
}

static double expect_close_ff(const char *what, const float *a,
                              const float *ref, size_t n, double floor,
                              double tol)
{
    double *r = dalloc(n);
    for (size_t i = 0; i < n; i++)
        r[i] = ref[i];
    double e = expect_close(what, a, r, n, floor, tol);
    free(r);
    return e;
}

static void expect_all_zero(const char *what, const float *a, size_t n)
{
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
        if (a[i] != 0.0f)
            bad = i;
    cr_expect(bad == n, "%s: expected exact zeros, [%zu] = %.9g", what, bad,
              bad < n ? (double)a[bad] : 0.0);
}

/* Finite differences on every `stride`-th coordinate of x (1: all of them),
 * compared with the analytic gradient at those coordinates. Used where an
 * FD of every coordinate would mean many hundreds of forward calls (each a
 * separate, tiny, possibly multithreaded kernel launch). */
static double expect_fd(const char *what, const struct ops *o, scalar_fn f,
                        void *ctx, struct buf *x, double h,
                        const float *analytic, size_t stride, double tol)
{
    size_t m = (x->n + stride - 1) / stride;
    size_t *idx = malloc((m ? m : 1) * sizeof *idx);
    float *a = malloc((m ? m : 1) * sizeof *a);
    double *g = dalloc(x->n), *gs = dalloc(m);
    cr_assert(idx != NULL && a != NULL);
    for (size_t k = 0; k < m; k++)
        idx[k] = k * stride;
    fd_grad(o, f, ctx, x, h, g, idx, m);
    for (size_t k = 0; k < m; k++) {
        a[k] = analytic[idx[k]];
        gs[k] = g[idx[k]];
    }
    double e = expect_close(what, a, gs, m, FD_FLOOR, tol);
    free(idx);
    free(a);
    free(g);
    free(gs);
    return e;
}

/* a view into part of a buffer (never freed itself) */
static struct buf sub(const struct buf *b, size_t off, size_t n)
{
    struct buf s = {b->d + off, b->h + off, n};
    return s;
}

static void zero_buf(const struct ops *o, struct buf *b)
{
    memset(b->h, 0, b->n * sizeof(float));
    o->zero(b->d, b->n * sizeof(float));
}

/* =========================================================================
 * embedding
 * ========================================================================= */
struct emb_ctx {
    const struct ops *o;
    float *out;
    const int32_t *tok;
    const float *wte, *wpe;
    const float *r;
    int B, T, C, pos0, vs, V;
};

static double emb_L(void *p)
{
    struct emb_ctx *c = p;
    c->o->embedding_fwd(c->out, c->tok, c->wte, c->wpe, c->B, c->T, c->C,
                        c->pos0, c->vs, c->V);
    return dev_dot(c->o, c->out, c->r, (size_t)c->B * c->T * c->C);
}

#define EMB_GUARD_ROWS 2
#define EMB_GUARD_VAL 1.0e4f

static void emb_case(const struct ops *o, int B, int T, int C, int V, int pos0,
                     int vs, const int32_t *tok_h, uint64_t seed)
{
    struct rng rg;
    rng_seed(&rg, seed);
    const int G = EMB_GUARD_ROWS;  /* guard rows around wte / dwte       */
    const int P = pos0 + T + 2;    /* wpe rows: some never used          */
    const size_t NT = (size_t)B * T, nout = NT * C;
    char cfg[96];
    snprintf(cfg, sizeof cfg, "embedding(B%d T%d C%d V%d pos0=%d vs=%d)", B,
             T, C, V, pos0, vs);

    struct buf wte_all, wpe, out, r, dwte_all, dwpe;
    need(buf_rand(o, &wte_all, (size_t)(V + 2 * G) * C, &rg, -1, 1), "wte");
    for (size_t i = 0; i < (size_t)G * C; i++) {
        wte_all.h[i] = EMB_GUARD_VAL;
        wte_all.h[(size_t)(G + V) * C + i] = EMB_GUARD_VAL;
    }
    buf_push(o, &wte_all);
    struct buf wte = sub(&wte_all, (size_t)G * C, (size_t)V * C);
    need(buf_rand(o, &wpe, (size_t)P * C, &rg, -1, 1), "wpe");
    need(buf_alloc(o, &out, nout), "out");
    need(buf_rand(o, &r, nout, &rg, -1, 1), "r");
    need(buf_zeros(o, &dwte_all, (size_t)(V + 2 * G) * C), "dwte");
    struct buf dwte = sub(&dwte_all, (size_t)G * C, (size_t)V * C);
    need(buf_zeros(o, &dwpe, (size_t)P * C), "dwpe");
    int32_t *tok = dev_i32(o, tok_h, NT);
    cr_assert(tok != NULL);

    /* forward, with and without wpe; out pre-filled with garbage so a kernel
     * that skips out-of-range rows is caught. Exact up to one fp32 add. */
    double *ref = dalloc(nout);
    for (int with_wpe = 1; with_wpe >= 0; with_wpe--) {
        for (size_t i = 0; i < nout; i++)
            out.h[i] = 777.0f;
        buf_push(o, &out);
        o->embedding_fwd(out.d, tok, wte.d, with_wpe ? wpe.d : NULL, B, T, C,
                         pos0, vs, V);
        buf_pull(o, &out);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                int id = tok_h[b * T + t];
                int in = id >= vs && id < vs + V;
                for (int c = 0; c < C; c++) {
                    float e = in ? wte.h[(size_t)(id - vs) * C + c] : 0.0f;
                    float p = with_wpe ? wpe.h[(size_t)(pos0 + t) * C + c] : 0.0f;
                    ref[((size_t)b * T + t) * C + c] = (double)(e + p);
                }
            }
        expect_close(nm("%s fwd %s", cfg, with_wpe ? "" : "wpe=NULL"), out.h,
                     ref, nout, 1.0, TOL_SAME);
    }

    /* backward */
    o->embedding_bwd(dwte.d, dwpe.d, r.d, tok, B, T, C, pos0, vs, V);
    buf_pull(o, &dwte_all);
    buf_pull(o, &dwpe);
    expect_all_zero(nm("%s dwte guard rows below", cfg), dwte_all.h,
                    (size_t)G * C);
    expect_all_zero(nm("%s dwte guard rows above", cfg),
                    dwte_all.h + (size_t)(G + V) * C, (size_t)G * C);

    struct emb_ctx ctx = {o, out.d, tok, wte.d, wpe.d, r.h, B, T, C, pos0, vs, V};
    const size_t stride = C > 16 ? 3 : 1;
    expect_fd(nm("%s dwte vs FD", cfg), o, emb_L, &ctx, &wte, 1e-2, dwte.h,
              stride, TOL_FD_LINEAR);
    expect_fd(nm("%s dwpe vs FD", cfg), o, emb_L, &ctx, &wpe, 1e-2, dwpe.h,
              stride, TOL_FD_LINEAR);
    /* and every coordinate against the scatter it must equal */
    double *g = dalloc((size_t)(V > P ? V : P) * C);
    memset(g, 0, wte.n * sizeof *g);
    for (size_t n = 0; n < NT; n++) {
        int row = tok_h[n] - vs;
        if (row >= 0 && row < V)
            for (int c = 0; c < C; c++)
                g[(size_t)row * C + c] += r.h[n * C + c];
    }
    expect_close(nm("%s dwte vs scatter", cfg), dwte.h, g, wte.n, FD_FLOOR,
                 TOL_SAME);
    memset(g, 0, wpe.n * sizeof *g);
    for (size_t n = 0; n < NT; n++)
        for (int c = 0; c < C; c++)
            g[(size_t)(pos0 + (int)(n % T)) * C + c] += r.h[n * C + c];
    expect_close(nm("%s dwpe vs scatter", cfg), dwpe.h, g, wpe.n, FD_FLOOR,
                 TOL_SAME);

    free(g);
    free(ref);
    o->free(tok);
    buf_free(o, &wte_all);
    buf_free(o, &wpe);
    buf_free(o, &out);
    buf_free(o, &r);
    buf_free(o, &dwte_all);
    buf_free(o, &dwpe);
}

static void test_embedding(const struct ops *o)
{
    /* whole vocabulary, pos0 = 0 */
    const int32_t tokA[] = {0, 6, 3, 3, 1, 5};
    emb_case(o, 2, 3, 5, 7, 0, 0, tokA, 11);
    /* vocab range [3, 7), pos0 = 2: tokens 2, 7, 9, 0 are outside (7 is the
     * first id past the range) and must contribute nothing; 6 repeats. */
    const int32_t tokB[] = {3, 2, 6, 7, 9, 6, 0, 4};
    emb_case(o, 2, 4, 5, 4, 2, 3, tokB, 12);
    /* same, wider rows (C not a multiple of 4, 8 or 16) */
    emb_case(o, 2, 4, 37, 4, 2, 3, tokB, 13);
}

/* =========================================================================
 * layernorm
 * ========================================================================= */
static void ref_layernorm(double *out, double *mean, double *rstd,
                          const float *inp, const float *w, const float *b,
                          int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++)
            m += x[c];
        m /= C;
        for (int c = 0; c < C; c++)
            v += (x[c] - m) * (x[c] - m);
        v /= C;
        double s = 1.0 / sqrt(v + 1e-5);
        mean[n] = m;
        rstd[n] = s;
        for (int c = 0; c < C; c++)
            out[(size_t)n * C + c] = (x[c] - m) * s * w[c] + b[c];
    }
}

struct ln_ctx {
    const struct ops *o;
    float *out, *mean, *rstd;
    const float *inp, *w, *b, *r;
    int N, C;
};

static double ln_L(void *p)
{
    struct ln_ctx *c = p;
    c->o->layernorm_fwd(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N,
                        c->C);
    return dev_dot(c->o, c->out, c->r, (size_t)c->N * c->C);
}

static void ln_case(const struct ops *o, int N, int C, uint64_t seed)
{
    struct rng rg;
    rng_seed(&rg, seed);
    const size_t NC = (size_t)N * C;
    char cfg[64];
    snprintf(cfg, sizeof cfg, "layernorm(N%d C%d)", N, C);

    struct buf inp, w, b, out, mean, rstd, r, dinp, dw, db, out2, sm, sr;
    need(buf_rand(o, &inp, NC, &rg, -1, 1), "inp");
    /* rows with different offsets and scales: mean subtraction matters */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            inp.h[(size_t)n * C + c] =
                inp.h[(size_t)n * C + c] * (0.5f + 0.5f * n) + 1.5f * (n - N / 2);
    buf_push(o, &inp);
    need(buf_rand(o, &w, C, &rg, 0.5f, 1.5f), "w");
    need(buf_rand(o, &b, C, &rg, -0.5f, 0.5f), "b");
    need(buf_alloc(o, &out, NC), "out");
    need(buf_alloc(o, &mean, N), "mean");
    need(buf_alloc(o, &rstd, N), "rstd");
    need(buf_rand(o, &r, NC, &rg, -1, 1), "r");
    need(buf_zeros(o, &dinp, NC), "dinp");
    need(buf_zeros(o, &dw, C), "dw");
    need(buf_zeros(o, &db, C), "db");
    need(buf_alloc(o, &out2, NC), "out2");
    need(buf_alloc(o, &sm, N), "scratch mean");
    need(buf_alloc(o, &sr, N), "scratch rstd");

    /* forward vs double reference */
    double *ro = dalloc(NC), *rm = dalloc(N), *rs = dalloc(N);
    ref_layernorm(ro, rm, rs, inp.h, w.h, b.h, N, C);
    o->layernorm_fwd(out.d, mean.d, rstd.d, inp.d, w.d, b.d, N, C);
    buf_pull(o, &out);
    buf_pull(o, &mean);
    buf_pull(o, &rstd);
    expect_close(nm("%s fwd out", cfg), out.h, ro, NC, 1.0, TOL_FWD);
    expect_close(nm("%s fwd mean", cfg), mean.h, rm, N, 1.0, TOL_FWD);
    expect_close(nm("%s fwd rstd", cfg), rstd.h, rs, N, 1.0, TOL_FWD);
    /* inference form: mean/rstd NULL, same output */
    o->layernorm_fwd(out2.d, NULL, NULL, inp.d, w.d, b.d, N, C);
    buf_pull(o, &out2);
    expect_close_ff(nm("%s fwd mean/rstd=NULL", cfg), out2.h, out.h, NC, 1.0,
                    TOL_SAME);

    /* backward vs FD */
    o->layernorm_bwd(dinp.d, dw.d, db.d, r.d, inp.d, w.d, mean.d, rstd.d, N, C);
    buf_pull(o, &dinp);
    buf_pull(o, &dw);
    buf_pull(o, &db);
    struct ln_ctx ctx = {o, out2.d, sm.d, sr.d, inp.d, w.d, b.d, r.h, N, C};
    double *g = dalloc(NC);
    fd_grad(o, ln_L, &ctx, &inp, 2e-3, g, NULL, 0);
    expect_close(nm("%s dinp vs FD", cfg), dinp.h, g, NC, FD_FLOOR,
                 TOL_FD_NONLIN);
    fd_grad(o, ln_L, &ctx, &w, 1e-2, g, NULL, 0);
    expect_close(nm("%s dw vs FD", cfg), dw.h, g, C, FD_FLOOR, TOL_FD_LINEAR);
    fd_grad(o, ln_L, &ctx, &b, 1e-2, g, NULL, 0);
    expect_close(nm("%s db vs FD", cfg), db.h, g, C, FD_FLOOR, TOL_FD_LINEAR);

    free(g);
    free(ro);
    free(rm);
    free(rs);
    struct buf *all[] = {&inp, &w, &b, &out, &mean, &rstd, &r,
                         &dinp, &dw, &db, &out2, &sm, &sr};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        buf_free(o, all[i]);
}

static void test_layernorm(const struct ops *o)
{
    ln_case(o, 4, 7, 21);
    ln_case(o, 3, 64, 22);
}

/* =========================================================================
 * matmul
 * ========================================================================= */
static void ref_matmul(double *out, const float *inp, const float *w,
                       const float *bias, int N, int C, int OC)
{
    for (int n = 0; n < N; n++)
        for (int oc = 0; oc < OC; oc++) {
            double s = bias ? bias[oc] : 0.0;
            for (int c = 0; c < C; c++)
                s += (double)inp[(size_t)n * C + c] * w[(size_t)oc * C + c];
            out[(size_t)n * OC + oc] = s;
        }
}

struct mm_ctx {
    const struct ops *o;
    float *out;
    const float *inp, *w, *bias, *r;
    int N, C, OC;
};

static double mm_L(void *p)
{
    struct mm_ctx *c = p;
    c->o->matmul_fwd(c->out, c->inp, c->w, c->bias, c->N, c->C, c->OC);
    return dev_dot(c->o, c->out, c->r, (size_t)c->N * c->OC);
}

/* small sizes: forward vs reference, backward vs FD, NULL-gradient forms */
static void mm_fd_case(const struct ops *o, int N, int C, int OC, int use_bias,
                       uint64_t seed)
{
    struct rng rg;
    rng_seed(&rg, seed);
    char cfg[64];
    snprintf(cfg, sizeof cfg, "matmul(N%d C%d OC%d%s)", N, C, OC,
             use_bias ? "" : " bias=NULL");
    const size_t nin = (size_t)N * C, nw = (size_t)OC * C, nout = (size_t)N * OC;

    struct buf inp, w, bias, out, r, dinp, dw, dbias, t1, t2, t3;
    need(buf_rand(o, &inp, nin, &rg, -1, 1), "inp");
    need(buf_rand(o, &w, nw, &rg, -1, 1), "w");
    need(buf_rand(o, &bias, OC, &rg, -1, 1), "bias");
    need(buf_alloc(o, &out, nout), "out");
    need(buf_rand(o, &r, nout, &rg, -1, 1), "r");
    need(buf_zeros(o, &dinp, nin), "dinp");
    need(buf_zeros(o, &dw, nw), "dw");
    need(buf_zeros(o, &dbias, OC), "dbias");
    need(buf_zeros(o, &t1, nin), "t1");
    need(buf_zeros(o, &t2, nw), "t2");
    need(buf_zeros(o, &t3, OC), "t3");
    const float *bd = use_bias ? bias.d : NULL;

    double *ref = dalloc(nout);
    ref_matmul(ref, inp.h, w.h, use_bias ? bias.h : NULL, N, C, OC);
    o->matmul_fwd(out.d, inp.d, w.d, bd, N, C, OC);
    buf_pull(o, &out);
    expect_close(nm("%s fwd", cfg), out.h, ref, nout, 1.0, TOL_FWD);

    o->matmul_bwd(dinp.d, dw.d, use_bias ? dbias.d : NULL, r.d, inp.d, w.d, N,
                  C, OC);
    buf_pull(o, &dinp);
    buf_pull(o, &dw);
    buf_pull(o, &dbias);
    if (!use_bias)
        expect_all_zero(nm("%s dbias untouched", cfg), dbias.h, OC);

    struct mm_ctx ctx = {o, out.d, inp.d, w.d, bd, r.h, N, C, OC};
    double *g = dalloc(nin > nw ? nin : nw);
    fd_grad(o, mm_L, &ctx, &inp, 1e-2, g, NULL, 0);
    expect_close(nm("%s dinp vs FD", cfg), dinp.h, g, nin, FD_FLOOR,
                 TOL_FD_LINEAR);
    fd_grad(o, mm_L, &ctx, &w, 1e-2, g, NULL, 0);
    expect_close(nm("%s dw vs FD", cfg), dw.h, g, nw, FD_FLOOR, TOL_FD_LINEAR);
    if (use_bias) {
        fd_grad(o, mm_L, &ctx, &bias, 1e-2, g, NULL, 0);
        expect_close(nm("%s dbias vs FD", cfg), dbias.h, g, OC, FD_FLOOR,
                     TOL_FD_LINEAR);
    }

    /* each gradient alone (the others NULL) gives the same result */
    o->matmul_bwd(t1.d, NULL, NULL, r.d, inp.d, w.d, N, C, OC);
    o->matmul_bwd(NULL, t2.d, NULL, r.d, inp.d, w.d, N, C, OC);
    o->matmul_bwd(NULL, NULL, t3.d, r.d, inp.d, w.d, N, C, OC);
    buf_pull(o, &t1);
    buf_pull(o, &t2);
    buf_pull(o, &t3);
    expect_close_ff(nm("%s dinp alone", cfg), t1.h, dinp.h, nin, FD_FLOOR,
                    TOL_SAME);
    expect_close_ff(nm("%s dw alone", cfg), t2.h, dw.h, nw, FD_FLOOR, TOL_SAME);
    if (use_bias)
        expect_close_ff(nm("%s dbias alone", cfg), t3.h, dbias.h, OC, FD_FLOOR,
                        TOL_SAME);

    free(g);
    free(ref);
    struct buf *all[] = {&inp, &w, &bias, &out, &r, &dinp,
                         &dw, &dbias, &t1, &t2, &t3};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        buf_free(o, all[i]);
}

/* larger, unaligned sizes: forward and backward vs closed-form references
 * (exercises any blocking / vector tails a kernel may have) */
static void mm_ref_case(const struct ops *o, int N, int C, int OC,
                        uint64_t seed)
{
    struct rng rg;
    rng_seed(&rg, seed);
    char cfg[64];
    snprintf(cfg, sizeof cfg, "matmul(N%d C%d OC%d)", N, C, OC);
    const size_t nin = (size_t)N * C, nw = (size_t)OC * C, nout = (size_t)N * OC;

    struct buf inp, w, bias, out, r, dinp, dw, dbias;
    need(buf_rand(o, &inp, nin, &rg, -1, 1), "inp");
    need(buf_rand(o, &w, nw, &rg, -1, 1), "w");
    need(buf_rand(o, &bias, OC, &rg, -1, 1), "bias");
    need(buf_alloc(o, &out, nout), "out");
    need(buf_rand(o, &r, nout, &rg, -1, 1), "r");
    need(buf_zeros(o, &dinp, nin), "dinp");
    need(buf_zeros(o, &dw, nw), "dw");
    need(buf_zeros(o, &dbias, OC), "dbias");

    double *ref = dalloc(nin > nw ? (nin > nout ? nin : nout)
                                  : (nw > nout ? nw : nout));
    ref_matmul(ref, inp.h, w.h, bias.h, N, C, OC);
    o->matmul_fwd(out.d, inp.d, w.d, bias.d, N, C, OC);
    buf_pull(o, &out);
    expect_close(nm("%s fwd", cfg), out.h, ref, nout, 1.0, TOL_FWD);
    ref_matmul(ref, inp.h, w.h, NULL, N, C, OC);
    o->matmul_fwd(out.d, inp.d, w.d, NULL, N, C, OC);
    buf_pull(o, &out);
    expect_close(nm("%s fwd bias=NULL", cfg), out.h, ref, nout, 1.0, TOL_FWD);

    o->matmul_bwd(dinp.d, dw.d, dbias.d, r.d, inp.d, w.d, N, C, OC);
    buf_pull(o, &dinp);
    buf_pull(o, &dw);
    buf_pull(o, &dbias);
    for (int n = 0; n < N; n++) /* dinp = dout @ w */
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int oc = 0; oc < OC; oc++)
                s += (double)r.h[(size_t)n * OC + oc] * w.h[(size_t)oc * C + c];
            ref[(size_t)n * C + c] = s;
        }
    expect_close(nm("%s dinp vs ref", cfg), dinp.h, ref, nin, 1.0,
                 TOL_REF_GRAD);
    for (int oc = 0; oc < OC; oc++) /* dw = dout^T @ inp */
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += (double)r.h[(size_t)n * OC + oc] * inp.h[(size_t)n * C + c];
            ref[(size_t)oc * C + c] = s;
        }
    expect_close(nm("%s dw vs ref", cfg), dw.h, ref, nw, 1.0, TOL_REF_GRAD);
    for (int oc = 0; oc < OC; oc++) {
        double s = 0.0;
        for (int n = 0; n < N; n++)
            s += r.h[(size_t)n * OC + oc];
        ref[oc] = s;
    }
    expect_close(nm("%s dbias vs ref", cfg), dbias.h, ref, OC, 1.0,
                 TOL_REF_GRAD);

    free(ref);
    struct buf *all[] = {&inp, &w, &bias, &out, &r, &dinp, &dw, &dbias};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        buf_free(o, all[i]);
}

static void test_matmul(const struct ops *o)
{
    mm_fd_case(o, 5, 7, 3, 1, 31);
    mm_fd_case(o, 5, 7, 3, 0, 32);
    mm_fd_case(o, 1, 16, 9, 1, 33);
    mm_ref_case(o, 67, 130, 71, 34);
    mm_ref_case(o, 64, 96, 128, 35);
}

/* =========================================================================
 * attention
 * ========================================================================= */
/* out [B*Tq, NH*HS]; lse [B,NH,Tq] = log of the softmax denominator of the
 * scaled scores (may be NULL) */
static void ref_attention(double *out, double *lse, const float *q,
                          const float *k, const float *v, int B, int Tq, int Tk,
                          int NH, int HS, int qs, int kvs)
{
    const int C = NH * HS;
    const double scale = 1.0 / sqrt((double)HS);
    double *s = malloc((size_t)Tk * sizeof *s);
    cr_assert(s != NULL);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < Tq; i++) {
                const float *qi = q + ((size_t)b * Tq + i) * qs + (size_t)h * HS;
                int last = Tk - Tq + i;
                double mx = -INFINITY, z = 0.0;
                for (int j = 0; j <= last; j++) {
                    const float *kj = k + ((size_t)b * Tk + j) * kvs + (size_t)h * HS;
                    double d = 0.0;
                    for (int e = 0; e < HS; e++)
                        d += (double)qi[e] * kj[e];
                    s[j] = d * scale;
                    if (s[j] > mx)
                        mx = s[j];
                }
                for (int j = 0; j <= last; j++) {
                    s[j] = exp(s[j] - mx);
                    z += s[j];
                }
                if (lse)
                    lse[((size_t)b * NH + h) * Tq + i] = mx + log(z);
                double *oi = out + ((size_t)b * Tq + i) * C + (size_t)h * HS;
                for (int e = 0; e < HS; e++)
                    oi[e] = 0.0;
                for (int j = 0; j <= last; j++) {
                    const float *vj = v + ((size_t)b * Tk + j) * kvs + (size_t)h * HS;
                    for (int e = 0; e < HS; e++)
                        oi[e] += s[j] / z * vj[e];
                }
            }
    free(s);
}

/* FD step: at 1e-3 the fp32 rounding noise of the wider heads (HS 40, 72)
 * reached 2e-3; 3e-3 keeps every attention case below 1e-3 on the CPU. */
#define ATT_H 3e-3

/* The FD forward saves nothing (lse = NULL: the inference form of the op). */
struct att_ctx {
    const struct ops *o;
    float *out;
    const float *q, *k, *v, *r;
    int B, Tq, Tk, NH, HS, qs, kvs;
};

static double att_L(void *p)
{
    struct att_ctx *c = p;
    c->o->attention_fwd(c->out, NULL, c->q, c->k, c->v, c->B, c->Tq, c->Tk,
                        c->NH, c->HS, c->qs, c->kvs);
    return dev_dot(c->o, c->out, c->r, (size_t)c->B * c->Tq * c->NH * c->HS);
}

/* Forward checks shared by both layouts: out and lse against the double
 * reference, and out again with lse = NULL (nothing saved, same result). */
static void att_check_fwd(const struct ops *o, const char *cfg, struct buf *out,
                          struct buf *lse, struct buf *sout, const double *ro,
                          const double *rl, const float *q, const float *k,
                          const float *v, int B, int Tq, int Tk, int NH, int HS,
                          int qs, int kvs)
{
    o->attention_fwd(out->d, lse->d, q, k, v, B, Tq, Tk, NH, HS, qs, kvs);
    buf_pull(o, out);
    buf_pull(o, lse);
    expect_close(nm("%s fwd out", cfg), out->h, ro, out->n, 1.0, TOL_FWD);
    expect_close(nm("%s fwd lse", cfg), lse->h, rl, lse->n, 1.0, TOL_FWD);
    o->attention_fwd(sout->d, NULL, q, k, v, B, Tq, Tk, NH, HS, qs, kvs);
    buf_pull(o, sout);
    expect_close_ff(nm("%s fwd out with lse=NULL", cfg), sout->h, out->h,
                    out->n, 1.0, TOL_SAME);
}

/* Training layout: Tq = Tk = T, q/k/v inside one [B,T,3C] buffer. */
static void att_train_case(const struct ops *o, int B, int T, int NH, int HS,
                           uint64_t seed)
{
    struct rng rg;
    rng_seed(&rg, seed);
    const int C = NH * HS;
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C;
    const size_t nl = (size_t)B * NH * T;
    char cfg[80];
    snprintf(cfg, sizeof cfg, "attention train(B%d T%d NH%d HS%d)", B, T, NH, HS);

    struct buf qkv, out, lse, r, dqkv, sout;
    need(buf_rand(o, &qkv, nqkv, &rg, -2, 2), "qkv");
    need(buf_alloc(o, &out, nout), "out");
    need(buf_alloc(o, &lse, nl), "lse");
    need(buf_rand(o, &r, nout, &rg, -1, 1), "r");
    need(buf_zeros(o, &dqkv, nqkv), "dqkv");
    need(buf_alloc(o, &sout, nout), "scratch out");
    const int S = 3 * C;

    double *ro = dalloc(nout), *rl = dalloc(nl);
    ref_attention(ro, rl, qkv.h, qkv.h + C, qkv.h + 2 * C, B, T, T, NH, HS, S, S);
    att_check_fwd(o, cfg, &out, &lse, &sout, ro, rl, qkv.d, qkv.d + C,
                  qkv.d + 2 * C, B, T, T, NH, HS, S, S);

    o->attention_bwd(dqkv.d, dqkv.d + C, dqkv.d + 2 * C, r.d, out.d, lse.d,
                     qkv.d, qkv.d + C, qkv.d + 2 * C, B, T, T, NH, HS, S, S);
    buf_pull(o, &dqkv);

    struct att_ctx ctx = {o, sout.d, qkv.d, qkv.d + C, qkv.d + 2 * C,
                          r.h, B, T, T, NH, HS, S, S};
    double *g = dalloc(nqkv);
    fd_grad(o, att_L, &ctx, &qkv, ATT_H, g, NULL, 0);
    /* split the report into the q, k and v columns of the packed buffer */
    const char *part[3] = {"dq", "dk", "dv"};
    float *a = malloc(nout * sizeof *a);
    double *nref = dalloc(nout);
    cr_assert(a != NULL);
    for (int p = 0; p < 3; p++) {
        for (size_t row = 0; row < (size_t)B * T; row++)
            for (int c = 0; c < C; c++) {
                a[row * C + c] = dqkv.h[row * S + (size_t)p * C + c];
                nref[row * C + c] = g[row * S + (size_t)p * C + c];
            }
        expect_close(nm("%s %s vs FD", cfg, part[p]), a, nref, nout, FD_FLOOR,
                     TOL_FD_NONLIN);
    }

    free(a);
    free(nref);
    free(g);
    free(ro);
    free(rl);
    struct buf *all[] = {&qkv, &out, &lse, &r, &dqkv, &sout};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        buf_free(o, all[i]);
}

/* Inference layout: Tq < Tk, queries are the last Tq positions; q in its own
 * [B,Tq,C] buffer (stride C), k and v in a [B,Tk,2C] buffer (stride 2C).
 * Also: a NULL gradient is skipped and leaves the others unchanged. */
static void att_cache_case(const struct ops *o, int B, int Tq, int Tk, int NH,
                           int HS, uint64_t seed)
{
    struct rng rg;
    rng_seed(&rg, seed);
    const int C = NH * HS;
    const size_t nq = (size_t)B * Tq * C, nkv = (size_t)B * Tk * 2 * C;
    const size_t nout = nq, nl = (size_t)B * NH * Tq;
    char cfg[80];
    snprintf(cfg, sizeof cfg, "attention cache(B%d Tq%d Tk%d NH%d HS%d)", B, Tq,
             Tk, NH, HS);

    struct buf q, kv, out, lse, r, dq, dkv, sout, dq1, dkv1;
    need(buf_rand(o, &q, nq, &rg, -2, 2), "q");
    need(buf_rand(o, &kv, nkv, &rg, -2, 2), "kv");
    need(buf_alloc(o, &out, nout), "out");
    need(buf_alloc(o, &lse, nl), "lse");
    need(buf_rand(o, &r, nout, &rg, -1, 1), "r");
    need(buf_zeros(o, &dq, nq), "dq");
    need(buf_zeros(o, &dkv, nkv), "dkv");
    need(buf_alloc(o, &sout, nout), "scratch out");
    need(buf_zeros(o, &dq1, nq), "dq alone");
    need(buf_zeros(o, &dkv1, nkv), "dk|dv alone");

    double *ro = dalloc(nout), *rl = dalloc(nl);
    ref_attention(ro, rl, q.h, kv.h, kv.h + C, B, Tq, Tk, NH, HS, C, 2 * C);
    att_check_fwd(o, cfg, &out, &lse, &sout, ro, rl, q.d, kv.d, kv.d + C, B, Tq,
                  Tk, NH, HS, C, 2 * C);

    o->attention_bwd(dq.d, dkv.d, dkv.d + C, r.d, out.d, lse.d, q.d, kv.d,
                     kv.d + C, B, Tq, Tk, NH, HS, C, 2 * C);
    buf_pull(o, &dq);
    buf_pull(o, &dkv);
    o->attention_bwd(dq1.d, NULL, NULL, r.d, out.d, lse.d, q.d, kv.d, kv.d + C,
                     B, Tq, Tk, NH, HS, C, 2 * C);
    o->attention_bwd(NULL, dkv1.d, dkv1.d + C, r.d, out.d, lse.d, q.d, kv.d,
                     kv.d + C, B, Tq, Tk, NH, HS, C, 2 * C);
    buf_pull(o, &dq1);
    buf_pull(o, &dkv1);
    expect_close_ff(nm("%s dq alone (dk = dv = NULL)", cfg), dq1.h, dq.h, nq,
                    FD_FLOOR, TOL_SAME);
    expect_close_ff(nm("%s dk|dv alone (dq = NULL)", cfg), dkv1.h, dkv.h, nkv,
                    FD_FLOOR, TOL_SAME);

    struct att_ctx ctx = {o, sout.d, q.d, kv.d, kv.d + C, r.h,
                          B, Tq, Tk, NH, HS, C, 2 * C};
    double *g = dalloc(nkv);
    fd_grad(o, att_L, &ctx, &q, ATT_H, g, NULL, 0);
    expect_close(nm("%s dq vs FD", cfg), dq.h, g, nq, FD_FLOOR, TOL_FD_NONLIN);
    fd_grad(o, att_L, &ctx, &kv, ATT_H, g, NULL, 0);
    /* k and v separately */
    const size_t nk = (size_t)B * Tk * C;
    float *a = malloc(nk * sizeof *a);
    double *nref = dalloc(nk);
    cr_assert(a != NULL);
    for (int p = 0; p < 2; p++) {
        for (size_t row = 0; row < (size_t)B * Tk; row++)
            for (int c = 0; c < C; c++) {
                a[row * C + c] = dkv.h[row * 2 * C + (size_t)p * C + c];
                nref[row * C + c] = g[row * 2 * C + (size_t)p * C + c];
            }
        expect_close(nm("%s %s vs FD", cfg, p ? "dv" : "dk"), a, nref, nk,
                     FD_FLOOR, TOL_FD_NONLIN);
    }

    free(a);
    free(nref);
    free(g);
    free(ro);
    free(rl);
    struct buf *all[] = {&q, &kv, &out, &lse, &r, &dq, &dkv, &sout, &dq1, &dkv1};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        buf_free(o, all[i]);
}

/* Decode consistency: the last Tq rows of a full causal forward equal a
 * forward with only those Tq queries against all T keys (KV cache), and so
 * do their lse values. */
static void att_decode_case(const struct ops *o, int B, int T, int NH, int HS,
                            uint64_t seed)
{
    struct rng rg;
    rng_seed(&rg, seed);
    const int C = NH * HS, S = 3 * C;
    const size_t nqkv = (size_t)B * T * S, nout = (size_t)B * T * C;
    const size_t nl = (size_t)B * NH * T;
    char cfg[80];
    snprintf(cfg, sizeof cfg, "attention decode(B%d T%d NH%d HS%d)", B, T, NH, HS);

    struct buf qkv, full, lse, q, out, l2;
    need(buf_rand(o, &qkv, nqkv, &rg, -2, 2), "qkv");
    need(buf_alloc(o, &full, nout), "full");
    need(buf_alloc(o, &lse, nl), "lse");
    need(buf_alloc(o, &q, nout), "q");
    need(buf_alloc(o, &out, nout), "out");
    need(buf_alloc(o, &l2, nl), "lse2");
    o->attention_fwd(full.d, lse.d, qkv.d, qkv.d + C, qkv.d + 2 * C, B, T, T,
                     NH, HS, S, S);
    buf_pull(o, &full);
    buf_pull(o, &lse);

    float *want = malloc(nout * sizeof *want), *wantl = malloc(nl * sizeof *wantl);
    cr_assert(want != NULL && wantl != NULL);
    const int tqs[] = {1, 2, T - 1};
    for (size_t x = 0; x < sizeof tqs / sizeof *tqs; x++) {
        int Tq = tqs[x];
        /* gather the last Tq query rows of each batch into q [B,Tq,C] */
        for (int b = 0; b < B; b++)
            for (int i = 0; i < Tq; i++) {
                size_t src = ((size_t)b * T + (T - Tq + i)), dst = (size_t)b * Tq + i;
                memcpy(q.h + dst * C, qkv.h + src * S, (size_t)C * sizeof(float));
                memcpy(want + dst * C, full.h + src * C, (size_t)C * sizeof(float));
                for (int h = 0; h < NH; h++)
                    wantl[((size_t)b * NH + h) * Tq + i] =
                        lse.h[((size_t)b * NH + h) * T + T - Tq + i];
            }
        buf_push(o, &q);
        o->attention_fwd(out.d, l2.d, q.d, qkv.d + C, qkv.d + 2 * C, B, Tq, T, NH,
                         HS, C, S);
        buf_pull(o, &out);
        buf_pull(o, &l2);
        expect_close_ff(nm("%s Tq=%d == last rows of full", cfg, Tq), out.h,
                        want, (size_t)B * Tq * C, 1.0, TOL_SAME);
        expect_close_ff(nm("%s Tq=%d lse == last rows of full", cfg, Tq), l2.h,
                        wantl, (size_t)B * NH * Tq, 1.0, TOL_SAME);
    }
    /* Tq = 1 reading q straight out of the packed buffer: row b of the query
     * is qkv row (b, T-1), so q = qkv + (T-1)*3C with q_stride = T*3C. */
    for (int b = 0; b < B; b++)
        memcpy(want + (size_t)b * C, full.h + ((size_t)b * T + T - 1) * C,
               (size_t)C * sizeof(float));
    o->attention_fwd(out.d, NULL, qkv.d + (size_t)(T - 1) * S, qkv.d + C,
                     qkv.d + 2 * C, B, 1, T, NH, HS, T * S, S);
    buf_pull(o, &out);
    expect_close_ff(nm("%s Tq=1 strided q == last row of full", cfg), out.h,
                    want, (size_t)B * C, 1.0, TOL_SAME);

    free(want);
    free(wantl);
    struct buf *all[] = {&qkv, &full, &lse, &q, &out, &l2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        buf_free(o, all[i]);
}

static void test_attention(const struct ops *o)
{
    att_train_case(o, 2, 5, 2, 4, 41);
    att_train_case(o, 1, 7, 3, 3, 42);
    att_cache_case(o, 2, 3, 6, 2, 4, 43);
    att_cache_case(o, 2, 1, 5, 2, 3, 44);
    att_decode_case(o, 2, 6, 2, 4, 45);
    att_decode_case(o, 3, 9, 4, 8, 46);
    /* longer than the CPU kernel's 64-row causal blocks and the CUDA
     * kernels' 64-row tiles, with a partial last block, in both layouts (one
     * small head keeps FD over every input cheap) */
    att_train_case(o, 1, 150, 1, 4, 47);
    att_cache_case(o, 1, 70, 140, 1, 4, 48);
    /* head sizes off every warp multiple, in the CUDA kernels' middle and top
     * buckets (HS <= 64, <= 128), query tiles on both sides of its 32-row
     * switch, and a decode check across several key tiles */
    att_train_case(o, 1, 40, 1, 40, 49);
    att_cache_case(o, 1, 34, 40, 1, 72, 50);
    att_decode_case(o, 1, 130, 2, 100, 51);
}

/* =========================================================================
 * gelu
 * ========================================================================= */
#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */

static double ref_gelu(double x)
{
    return 0.5 * x * (1.0 + tanh(GELU_K * (x + 0.044715 * x * x * x)));
}

static double ref_dgelu(double x)
{
    double u = GELU_K * (x + 0.044715 * x * x * x);
    double t = tanh(u);
    return 0.5 * (1.0 + t) +
           0.5 * x * (1.0 - t * t) * GELU_K * (1.0 + 3.0 * 0.044715 * x * x);
}

struct ew_ctx {
    const struct ops *o;
    float *out;
    const float *a, *b, *r;
    size_t n;
};

static double gelu_L(void *p)
{
    struct ew_ctx *c = p;
    c->o->gelu_fwd(c->out, c->a, c->n);
    return dev_dot(c->o, c->out, c->r, c->n);
}

static void test_gelu(const struct ops *o)
{
    struct rng rg;
    rng_seed(&rg, 51);
    const size_t n = 301;
    struct buf x, out, r, dx;
    need(buf_rand(o, &x, n, &rg, -5, 5), "x");
    const float special[] = {0.0f, 1e-4f, -1e-4f, 1.0f, -1.0f, 3.0f, -3.0f, 8.0f, -8.0f};
    memcpy(x.h, special, sizeof special);
    buf_push(o, &x);
    need(buf_alloc(o, &out, n), "out");
    need(buf_rand(o, &r, n, &rg, -1, 1), "r");
    need(buf_zeros(o, &dx, n), "dx");

    double *ref = dalloc(n);
    for (size_t i = 0; i < n; i++)
        ref[i] = ref_gelu(x.h[i]);
    o->gelu_fwd(out.d, x.d, n);
    buf_pull(o, &out);
    expect_close("gelu fwd", out.h, ref, n, 1.0, TOL_FWD);

    o->gelu_bwd(dx.d, r.d, x.d, n);
    buf_pull(o, &dx);
    for (size_t i = 0; i < n; i++)
        ref[i] = r.h[i] * ref_dgelu(x.h[i]);
    expect_close("gelu bwd vs closed form", dx.h, ref, n, FD_FLOOR, TOL_REF_GRAD);
    struct ew_ctx ctx = {o, out.d, x.d, NULL, r.h, n};
    expect_fd("gelu bwd vs FD (every 3rd)", o, gelu_L, &ctx, &x, 1e-3, dx.h, 3,
              TOL_FD_NONLIN);

    free(ref);
    buf_free(o, &x);
    buf_free(o, &out);
    buf_free(o, &r);
    buf_free(o, &dx);
}

/* =========================================================================
 * residual
 * ========================================================================= */
static double res_L(void *p)
{
    struct ew_ctx *c = p;
    c->o->residual_fwd(c->out, c->a, c->b, c->n);
    return dev_dot(c->o, c->out, c->r, c->n);
}

static void test_residual(const struct ops *o)
{
    struct rng rg;
    rng_seed(&rg, 61);
    const size_t n = 203;
    struct buf a, b, out, r, da, db;
    need(buf_rand(o, &a, n, &rg, -1, 1), "a");
    need(buf_rand(o, &b, n, &rg, -1, 1), "b");
    need(buf_alloc(o, &out, n), "out");
    need(buf_rand(o, &r, n, &rg, -1, 1), "r");
    need(buf_zeros(o, &da, n), "da");
    need(buf_zeros(o, &db, n), "db");

    float *want = malloc(n * sizeof *want);
    cr_assert(want != NULL);
    for (size_t i = 0; i < n; i++)
        want[i] = a.h[i] + b.h[i];
    o->residual_fwd(out.d, a.d, b.d, n);
    buf_pull(o, &out);
    expect_close_ff("residual fwd", out.h, want, n, 1.0, 0.0); /* exact */

    o->residual_bwd(da.d, db.d, r.d, n);
    buf_pull(o, &da);
    buf_pull(o, &db);
    struct ew_ctx ctx = {o, out.d, a.d, b.d, r.h, n};
    expect_fd("residual da vs FD (every 5th)", o, res_L, &ctx, &a, 1e-2, da.h,
              5, TOL_FD_LINEAR);
    expect_fd("residual db vs FD (every 5th)", o, res_L, &ctx, &b, 1e-2, db.h,
              5, TOL_FD_LINEAR);
    expect_close_ff("residual da == dout", da.h, r.h, n, 1.0, 0.0);
    expect_close_ff("residual db == dout", db.h, r.h, n, 1.0, 0.0);
    free(want);
    struct buf *all[] = {&a, &b, &out, &r, &da, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        buf_free(o, all[i]);
}

/* =========================================================================
 * fused softmax cross-entropy
 * ========================================================================= */
struct xent_ctx {
    const struct ops *o;
    float *loss;
    const float *logits;
    const int32_t *target;
    const float *dloss; /* host: L = sum dloss * loss */
    int N, V;
};

static double xent_L(void *p)
{
    struct xent_ctx *c = p;
    c->o->xent_fwd(c->loss, c->logits, c->target, c->N, c->V);
    return dev_dot(c->o, c->loss, c->dloss, (size_t)c->N);
}

static void xent_case(const struct ops *o, int N, int V, int do_fd,
                      uint64_t seed)
{
    struct rng rg;
    rng_seed(&rg, seed);
    const size_t NV = (size_t)N * V;
    char cfg[64];
    snprintf(cfg, sizeof cfg, "xent(N%d V%d)", N, V);

    struct buf logits, lg2, loss, dloss;
    need(buf_rand(o, &logits, NV, &rg, -3, 3), "logits");
    /* row 1: large offset (needs max subtraction); row N-1: peaked */
    for (int v = 0; v < V; v++) {
        logits.h[(size_t)1 * V + v] += 50.0f;
        logits.h[(size_t)(N - 1) * V + v] *= 4.0f;
    }
    buf_push(o, &logits);
    need(buf_alloc(o, &lg2, NV), "logits copy");
    need(buf_alloc(o, &loss, N), "loss");
    need(buf_rand(o, &dloss, N, &rg, 0.5f, 1.5f), "dloss");
    int32_t *tg_h = malloc((size_t)N * sizeof *tg_h);
    cr_assert(tg_h != NULL);
    for (int n = 0; n < N; n++)
        tg_h[n] = rng_int(&rg, 0, V - 1);
    tg_h[0] = 0;
    tg_h[2] = -1; /* no loss at this position */
    tg_h[N - 1] = V - 1;
    int32_t *tg = dev_i32(o, tg_h, N);
    cr_assert(tg != NULL);

    /* forward vs double logsumexp; loss pre-filled with garbage */
    double *ref = dalloc(NV);
    for (int n = 0; n < N; n++) {
        const float *x = logits.h + (size_t)n * V;
        double mx = -INFINITY, z = 0.0;
        for (int v = 0; v < V; v++)
            mx = x[v] > mx ? x[v] : mx;
        for (int v = 0; v < V; v++)
            z += exp(x[v] - mx);
        ref[n] = tg_h[n] < 0 ? 0.0 : mx + log(z) - x[tg_h[n]];
    }
    for (int n = 0; n < N; n++)
        loss.h[n] = 999.0f;
    buf_push(o, &loss);
    o->xent_fwd(loss.d, logits.d, tg, N, V);
    buf_pull(o, &loss);
    expect_close(nm("%s fwd", cfg), loss.h, ref, N, 1.0, TOL_FWD);
    cr_expect(loss.h[2] == 0.0f, "%s: target -1 must give loss 0, got %.9g",
              cfg, (double)loss.h[2]);

    /* backward in place */
    memcpy(lg2.h, logits.h, NV * sizeof(float));
    buf_push(o, &lg2);
    o->xent_bwd_inplace(lg2.d, tg, dloss.d, N, V);
    buf_pull(o, &lg2);
    expect_all_zero(nm("%s grad row with target -1", cfg), lg2.h + (size_t)2 * V,
                    V);
    for (int n = 0; n < N; n++) { /* closed form */
        const float *x = logits.h + (size_t)n * V;
        double mx = -INFINITY, z = 0.0;
        for (int v = 0; v < V; v++)
            mx = x[v] > mx ? x[v] : mx;
        for (int v = 0; v < V; v++)
            z += exp(x[v] - mx);
        for (int v = 0; v < V; v++)
            ref[(size_t)n * V + v] =
                tg_h[n] < 0 ? 0.0
                            : dloss.h[n] * (exp(x[v] - mx) / z - (v == tg_h[n]));
    }
    expect_close(nm("%s bwd vs closed form", cfg), lg2.h, ref, NV, FD_FLOOR,
                 TOL_REF_GRAD);
    if (do_fd) {
        struct xent_ctx ctx = {o, loss.d, logits.d, tg, dloss.h, N, V};
        fd_grad(o, xent_L, &ctx, &logits, 3e-3, ref, NULL, 0);
        expect_close(nm("%s bwd vs FD", cfg), lg2.h, ref, NV, FD_FLOOR,
                     TOL_FD_NONLIN);
    }

    free(ref);
    free(tg_h);
    o->free(tg);
    buf_free(o, &logits);
    buf_free(o, &lg2);
    buf_free(o, &loss);
    buf_free(o, &dloss);
}

static void test_xent(const struct ops *o)
{
    xent_case(o, 5, 13, 1, 71);
    xent_case(o, 4, 1000, 0, 72);
}

/* =========================================================================
 * optimizers: 3 steps vs a double-precision replay of the formulas
 * ========================================================================= */
#define OPT_N 37

/* Three weight-decay runs over the OPT_N elements, the middle one without
 * decay (a bias among matrices): the fused update must switch per run. */
static void opt_runs(struct ops_decay_run runs[3], float wd)
{
    runs[0] = (struct ops_decay_run){12, wd};
    runs[1] = (struct ops_decay_run){13, 0.0f};
    runs[2] = (struct ops_decay_run){OPT_N, 0.5f * wd};
}

static double run_wd(const struct ops_decay_run runs[3], size_t i)
{
    return i < runs[0].end ? runs[0].wd : i < runs[1].end ? runs[1].wd : runs[2].wd;
}
#define OPT_STEPS 3

/* |p - p_ref| relative to the size of the total update |p_ref - p0| */
static void expect_params(const char *what, const float *p, const double *pref,
                          const float *p0, size_t n)
{
    double upd = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(pref[i] - p0[i]) > upd)
            upd = fabs(pref[i] - p0[i]);
    double *d = dalloc(n);
    float *a = malloc(n * sizeof *a);
    cr_assert(a != NULL);
    for (size_t i = 0; i < n; i++) { /* compare the updates, not the params */
        a[i] = (float)((double)p[i] - p0[i]);
        d[i] = pref[i] - p0[i];
    }
    /* the float subtraction above is exact enough: |p - p0| is small */
    expect_close(what, a, d, n, upd, 2e-4);
    free(a);
    free(d);
}

static void sgd_case(const struct ops *o, float lr, float mom, float wd,
                     uint64_t seed)
{
    struct rng rg;
    rng_seed(&rg, seed);
    const size_t n = OPT_N;
    char cfg[64];
    snprintf(cfg, sizeof cfg, "sgd(lr %g mom %g wd %g)", lr, mom, wd);
    struct buf p, g, m;
    need(buf_rand(o, &p, n, &rg, -1, 1), "p");
    need(buf_alloc(o, &g, n), "g");
    need(buf_zeros(o, &m, n), "m");
    float *p0 = malloc(n * sizeof *p0);
    double *rp = dalloc(n), *rm = dalloc(n);
    cr_assert(p0 != NULL);
    memcpy(p0, p.h, n * sizeof *p0);
    for (size_t i = 0; i < n; i++)
        rp[i] = p.h[i];
    for (int t = 1; t <= OPT_STEPS; t++) {
        fill_uniform(&rg, g.h, n, -1, 1);
        g.h[0] = 0.0f; /* pure weight decay on one element */
        buf_push(o, &g);
        struct ops_decay_run runs[3];
        opt_runs(runs, wd);
        o->sgd_update(p.d, g.d, m.d, n, runs, 3, lr, mom);
        for (size_t i = 0; i < n; i++) {
            double gg = (double)g.h[i] + run_wd(runs, i) * rp[i];
            rm[i] = (double)mom * rm[i] + gg;
            rp[i] -= (double)lr * rm[i];
        }
    }
    buf_pull(o, &p);
    buf_pull(o, &m);
    expect_params(nm("%s p after %d steps", cfg, OPT_STEPS), p.h, rp, p0, n);
    expect_close(nm("%s m after %d steps", cfg, OPT_STEPS), m.h, rm, n, 1e-3,
                 TOL_FWD);
    free(p0);
    free(rp);
    free(rm);
    buf_free(o, &p);
    buf_free(o, &g);
    buf_free(o, &m);
}

static void adam_case(const struct ops *o, float lr, float b1, float b2,
                      float eps, float wd, int decoupled, uint64_t seed)
{
    struct rng rg;
    rng_seed(&rg, seed);
    const size_t n = OPT_N;
    char cfg[96];
    snprintf(cfg, sizeof cfg, "adam(lr %g b1 %g b2 %g wd %g decoupled %d)", lr,
             b1, b2, wd, decoupled);
    struct buf p, g, m, v;
    need(buf_rand(o, &p, n, &rg, -1, 1), "p");
    need(buf_alloc(o, &g, n), "g");
    need(buf_zeros(o, &m, n), "m");
    need(buf_zeros(o, &v, n), "v");
    float *p0 = malloc(n * sizeof *p0);
    double *rp = dalloc(n), *rm = dalloc(n), *rv = dalloc(n);
    cr_assert(p0 != NULL);
    memcpy(p0, p.h, n * sizeof *p0);
    for (size_t i = 0; i < n; i++)
        rp[i] = p.h[i];
    const double L = lr, B1 = b1, B2 = b2, E = eps;
    struct ops_decay_run runs[3];
    opt_runs(runs, wd);
    for (int t = 1; t <= OPT_STEPS; t++) {
        fill_uniform(&rg, g.h, n, -1, 1);
        g.h[0] = 0.0f;                /* weight decay only */
        g.h[1] = 1e-3f * g.h[1];      /* small gradient    */
        buf_push(o, &g);
        o->adam_update(p.d, g.d, m.d, v.d, n, runs, 3, lr, b1, b2, eps, t, decoupled);
        for (size_t i = 0; i < n; i++) {
            double gg = g.h[i], W = run_wd(runs, i);
            if (decoupled)
                rp[i] *= 1.0 - L * W;
            else
                gg += W * rp[i];
            rm[i] = B1 * rm[i] + (1.0 - B1) * gg;
            rv[i] = B2 * rv[i] + (1.0 - B2) * gg * gg;
            double mh = rm[i] / (1.0 - pow(B1, t));
            double vh = rv[i] / (1.0 - pow(B2, t));
            rp[i] -= L * mh / (sqrt(vh) + E);
        }
    }
    buf_pull(o, &p);
    buf_pull(o, &m);
    buf_pull(o, &v);
    expect_params(nm("%s p after %d steps", cfg, OPT_STEPS), p.h, rp, p0, n);
    expect_close(nm("%s m after %d steps", cfg, OPT_STEPS), m.h, rm, n, 1e-6,
                 TOL_FWD);
    expect_close(nm("%s v after %d steps", cfg, OPT_STEPS), v.h, rv, n, 1e-6,
                 TOL_FWD);
    free(p0);
    free(rp);
    free(rm);
    free(rv);
    buf_free(o, &p);
    buf_free(o, &g);
    buf_free(o, &m);
    buf_free(o, &v);
}

static void test_sgd(const struct ops *o)
{
    sgd_case(o, 0.05f, 0.9f, 0.1f, 81);
    sgd_case(o, 0.1f, 0.0f, 0.0f, 82);
}

static void test_adam(const struct ops *o)
{
    adam_case(o, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 0, 91);
    adam_case(o, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 1, 92);
    adam_case(o, 3e-3f, 0.8f, 0.95f, 1e-6f, 0.5f, 1, 93);
    adam_case(o, 3e-3f, 0.8f, 0.95f, 1e-6f, 0.0f, 0, 94);
}

/* =========================================================================
 * sumsq / scale
 * ========================================================================= */
static void test_sumsq_scale(const struct ops *o)
{
    struct rng rg;
    rng_seed(&rg, 101);
    const size_t sizes[] = {0, 1, 7, 1000, 100003};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        struct buf x;
        need(buf_rand(o, &x, n, &rg, -1, 1), "x");
        double ref = 0.0;
        for (size_t i = 0; i < n; i++)
            ref += (double)x.h[i] * x.h[i];
        double got = o->sumsq(x.d, n);
        /* ops.h promises the sum in double: squaring and summing in double
         * gives ~1e-14 here; fp32 accumulation (even split over SIMD lanes
         * and threads) gives ~1e-6 at n = 1e5 and fails. */
        const double tol = 1e-8;
        double e = fabs(got - ref) / (ref > 1e-30 ? ref : 1.0);
        if (verbose())
            fprintf(stderr, "  %-56s err %.3e  (tol %.1e)\n",
                    nm("sumsq(n=%zu)", n), e, tol);
        cr_expect(e <= tol, "sumsq(n=%zu) = %.17g, want %.17g (rel %.3e)", n,
                  got, ref, e);

        if (n) {
            const float sc = 0.37f;
            float *want = malloc(n * sizeof *want);
            cr_assert(want != NULL);
            for (size_t i = 0; i < n; i++)
                want[i] = x.h[i] * sc;
            o->scale(x.d, n, sc);
            buf_pull(o, &x);
            expect_close_ff(nm("scale(n=%zu)", n), x.h, want, n, 1.0, 0.0);
            free(want);
        }
        buf_free(o, &x);
    }
}

/* =========================================================================
 * accumulation: every backward op run twice into zeroed gradients gives 2x
 * ========================================================================= */
struct acc_ctx {
    const struct ops *o;
    int op;
    struct buf *in[4];  /* inputs, by op                          */
    struct buf *g[4];   /* gradients                               */
    int ng;
    const int32_t *tok;
};

static void acc_run(struct acc_ctx *c)
{
    const struct ops *o = c->o;
    struct buf **in = c->in, **g = c->g;
    switch (c->op) {
    case 0: /* embedding: B2 T4 C5, V4 from 3, pos0 2 */
        o->embedding_bwd(g[0]->d, g[1]->d, in[0]->d, c->tok, 2, 4, 5, 2, 3, 4);
        break;
    case 1: /* layernorm N3 C6: in = dout, inp, w, mean|rstd packed */
        o->layernorm_bwd(g[0]->d, g[1]->d, g[2]->d, in[0]->d, in[1]->d,
                         in[2]->d, in[3]->d, in[3]->d + 3, 3, 6);
        break;
    case 2: /* matmul N5 C7 OC3 */
        o->matmul_bwd(g[0]->d, g[1]->d, g[2]->d, in[0]->d, in[1]->d, in[2]->d,
                      5, 7, 3);
        break;
    case 3: { /* attention B2 T4 NH2 HS3, packed qkv; in = dout, lse, qkv, out */
        const int C = 6;
        o->attention_bwd(g[0]->d, g[0]->d + C, g[0]->d + 2 * C, in[0]->d,
                         in[3]->d, in[1]->d, in[2]->d, in[2]->d + C,
                         in[2]->d + 2 * C, 2, 4, 4, 2, 3, 3 * C, 3 * C);
        break;
    }
    case 4: /* gelu */
        o->gelu_bwd(g[0]->d, in[0]->d, in[1]->d, in[0]->n);
        break;
    case 5: /* residual */
        o->residual_bwd(g[0]->d, g[1]->d, in[0]->d, in[0]->n);
        break;
    default:
        cr_assert_fail("bad op");
    }
}

static void acc_check(const char *name, struct acc_ctx *c)
{
    const struct ops *o = c->o;
    float *once[4] = {0};
    for (int i = 0; i < c->ng; i++)
        zero_buf(o, c->g[i]);
    acc_run(c);
    for (int i = 0; i < c->ng; i++) {
        buf_pull(o, c->g[i]);
        once[i] = malloc(c->g[i]->n * sizeof(float));
        cr_assert(once[i] != NULL);
        memcpy(once[i], c->g[i]->h, c->g[i]->n * sizeof(float));
        cr_expect(max_abs_f(once[i], c->g[i]->n) > 0.0,
                  "%s grad %d: all zero after one backward", name, i);
    }
    acc_run(c);
    for (int i = 0; i < c->ng; i++) {
        buf_pull(o, c->g[i]);
        for (size_t k = 0; k < c->g[i]->n; k++)
            once[i][k] *= 2.0f;
        expect_close_ff(nm("%s grad %d: twice == 2 x once", name, i),
                        c->g[i]->h, once[i], c->g[i]->n, 1e-6, TOL_SAME);
        free(once[i]);
    }
}

static void test_accumulate(const struct ops *o)
{
    struct rng rg;
    rng_seed(&rg, 111);
    struct buf b[8];
    memset(b, 0, sizeof b);
    struct acc_ctx c;

    /* embedding (tokens 6 repeated, some out of range) */
    const int32_t tok_h[] = {3, 2, 6, 7, 9, 6, 0, 4};
    int32_t *tok = dev_i32(o, tok_h, 8);
    cr_assert(tok != NULL);
    need(buf_rand(o, &b[0], 2 * 4 * 5, &rg, -1, 1), "dout");
    need(buf_alloc(o, &b[1], 4 * 5), "dwte");
    need(buf_alloc(o, &b[2], 8 * 5), "dwpe");
    c = (struct acc_ctx){o, 0, {&b[0]}, {&b[1], &b[2]}, 2, tok};
    acc_check("embedding", &c);
    for (int i = 0; i < 3; i++)
        buf_free(o, &b[i]);
    o->free(tok);

    /* layernorm: mean/rstd from a forward */
    need(buf_rand(o, &b[0], 18, &rg, -1, 1), "dout");
    need(buf_rand(o, &b[1], 18, &rg, -1, 1), "inp");
    need(buf_rand(o, &b[2], 6, &rg, 0.5f, 1.5f), "w");
    need(buf_rand(o, &b[3], 6, &rg, -1, 1), "b");
    need(buf_alloc(o, &b[4], 6), "mean|rstd");
    need(buf_alloc(o, &b[5], 18), "out / dinp");
    o->layernorm_fwd(b[5].d, b[4].d, b[4].d + 3, b[1].d, b[2].d, b[3].d, 3, 6);
    need(buf_alloc(o, &b[6], 6), "dw");
    need(buf_alloc(o, &b[7], 6), "db");
    c = (struct acc_ctx){o, 1, {&b[0], &b[1], &b[2], &b[4]},
                         {&b[5], &b[6], &b[7]}, 3, NULL};
    acc_check("layernorm", &c);
    for (int i = 0; i < 8; i++)
        buf_free(o, &b[i]);

    /* matmul */
    need(buf_rand(o, &b[0], 15, &rg, -1, 1), "dout");
    need(buf_rand(o, &b[1], 35, &rg, -1, 1), "inp");
    need(buf_rand(o, &b[2], 21, &rg, -1, 1), "w");
    need(buf_alloc(o, &b[3], 35), "dinp");
    need(buf_alloc(o, &b[4], 21), "dw");
    need(buf_alloc(o, &b[5], 3), "dbias");
    c = (struct acc_ctx){o, 2, {&b[0], &b[1], &b[2]}, {&b[3], &b[4], &b[5]}, 3,
                         NULL};
    acc_check("matmul", &c);
    for (int i = 0; i < 6; i++)
        buf_free(o, &b[i]);

    /* attention: out and lse from a forward */
    {
        const int B = 2, T = 4, NH = 2, HS = 3, C = NH * HS;
        need(buf_rand(o, &b[0], (size_t)B * T * C, &rg, -1, 1), "dout");
        need(buf_alloc(o, &b[1], (size_t)B * NH * T), "lse");
        need(buf_rand(o, &b[2], (size_t)B * T * 3 * C, &rg, -2, 2), "qkv");
        need(buf_alloc(o, &b[3], (size_t)B * T * C), "out");
        need(buf_alloc(o, &b[4], (size_t)B * T * 3 * C), "dqkv");
        o->attention_fwd(b[3].d, b[1].d, b[2].d, b[2].d + C, b[2].d + 2 * C, B,
                         T, T, NH, HS, 3 * C, 3 * C);
        c = (struct acc_ctx){o, 3, {&b[0], &b[1], &b[2], &b[3]}, {&b[4]}, 1, NULL};
        acc_check("attention", &c);
        for (int i = 0; i < 5; i++)
            buf_free(o, &b[i]);
    }

    /* gelu */
    need(buf_rand(o, &b[0], 33, &rg, -1, 1), "dout");
    need(buf_rand(o, &b[1], 33, &rg, -4, 4), "inp");
    need(buf_alloc(o, &b[2], 33), "dinp");
    c = (struct acc_ctx){o, 4, {&b[0], &b[1]}, {&b[2]}, 1, NULL};
    acc_check("gelu", &c);
    for (int i = 0; i < 3; i++)
        buf_free(o, &b[i]);

    /* residual */
    need(buf_rand(o, &b[0], 33, &rg, -1, 1), "dout");
    need(buf_alloc(o, &b[1], 33), "da");
    need(buf_alloc(o, &b[2], 33), "db");
    c = (struct acc_ctx){o, 5, {&b[0]}, {&b[1], &b[2]}, 2, NULL};
    acc_check("residual", &c);
    for (int i = 0; i < 3; i++)
        buf_free(o, &b[i]);
}

/* =========================================================================
 * test registration: one suite per backend
 * ========================================================================= */
/* get_ops() returns the backend's table (or skips the test); post() runs after
 * each test body for backend-specific checks (e.g. recorded async errors). */
#define OPS_TEST1(suite, name, fn, get_ops, post)                              \
    Test(suite, name)                                                          \
    {                                                                          \
        fn(get_ops());                                                         \
        post();                                                                \
    }
#define OPS_TESTS(suite, get_ops, post)                                        \
    OPS_TEST1(suite, embedding, test_embedding, get_ops, post)                 \
    OPS_TEST1(suite, layernorm, test_layernorm, get_ops, post)                 \
    OPS_TEST1(suite, matmul, test_matmul, get_ops, post)                       \
    OPS_TEST1(suite, attention, test_attention, get_ops, post)                 \
    OPS_TEST1(suite, gelu, test_gelu, get_ops, post)                           \
    OPS_TEST1(suite, residual, test_residual, get_ops, post)                   \
    OPS_TEST1(suite, xent, test_xent, get_ops, post)                           \
    OPS_TEST1(suite, sgd, test_sgd, get_ops, post)                             \
    OPS_TEST1(suite, adam, test_adam, get_ops, post)                           \
    OPS_TEST1(suite, sumsq_scale, test_sumsq_scale, get_ops, post)             \
    OPS_TEST1(suite, backward_accumulates, test_accumulate, get_ops, post)

static void cpu_post(void) {}
OPS_TESTS(cpu, ops_cpu, cpu_post)

#ifdef LLMPI_HAVE_CUDA
#include "ops_cuda.h"

/* Built with CUDA: the same checks on the CUDA backend, skipped when no
 * device is usable. Criterion forks each test, so every test creates its own
 * CUDA context in the child. */
static const struct ops *cuda_or_skip(void)
{
    const struct ops *o = ops_cuda();
    if (!o)
        cr_skip_test("no usable CUDA device");
    return o;
}

static void cuda_post(void)
{
    const char *e = cuda_last_error();
    cr_expect(e == NULL, "CUDA backend recorded an error: %s", e ? e : "");
}

OPS_TESTS(cuda, cuda_or_skip, cuda_post)
#endif
