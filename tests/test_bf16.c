/* tests/test_bf16.c — bf16 matmul operands (ops.h, set_matmul_dtype).
 *
 * The CPU backend's bf16 mode is an exact emulation (kernels/cpu/matmul.c,
 * kernels/cpu/bf16.h) and the reference the CUDA bf16 path is checked
 * against, so it is itself checked against independent references here:
 *
 *  - rounding: bf16_round against a reference that finds the two bf16
 *    neighbours of x (the truncation and the next value away from zero)
 *    and picks the nearer by exact double arithmetic, ties to the one with
 *    an even last mantissa bit, overflow past the largest finite bf16 to
 *    infinity (IEEE). Over random bit patterns (every binade, subnormals,
 *    inf, NaN), exact ties, values just off a tie, and the edges.
 *  - matmul forward and backward in bf16 mode against double-precision
 *    loops over operands rounded with that reference, with the bias and
 *    dbias fp32 (dbias sums the unrounded dout). Tolerance: the rigorous
 *    bound of an fp32 sum of K products, (K + 2) 2^-23 sum|terms| per
 *    element (twice the round-to-nearest bound, so that a truncating
 *    accumulator, as tensor cores have, also fits); the products of bf16
 *    values themselves are exact in fp32.
 *  - the mode is really on: the same results are at least 3e-4 of max|ref|
 *    away from the loops over the unrounded operands (rounding the operands
 *    moves them by about bf16's unit roundoff 2^-9 = 2e-3: 1.4e-3 .. 3.4e-3
 *    measured here; fp32 accumulation by ~1e-7); back in fp32 mode they
 *    match those loops within the fp32 bound.
 *  - set_matmul_dtype refuses a dtype it does not know and keeps the mode.
 *
 * Suites: cpu, and cuda when built with it (the matmul checks only;
 * skipped without a device): the CUDA bf16 gemms against the same
 * references.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/bf16.h"
#include "testutil.h"

/* ---- the reference rounding ----------------------------------------------- */
static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static float ref_bf16(float x) {
    if (isnan(x) || isinf(x)) return x;
    uint32_t u = bits_of(x), lo = u & 0xffff0000u;
    if (lo == u) return x;       /* already a bf16 value */
    uint32_t hi = lo + 0x10000u; /* next bf16 away from zero */
    /* past the largest finite bf16 the next "value" is 2^128 (the
     * exponent unbounded), which rounds to infinity */
    int hi_inf = (hi & 0x7fffffffu) == 0x7f800000u;
    double dlo = (double)float_of(lo);
    double dhi = hi_inf ? copysign(ldexp(1.0, 128), x) : (double)float_of(hi);
    double elo = fabs((double)x - dlo), ehi = fabs(dhi - (double)x);
    int up = ehi < elo || (ehi == elo && ((hi >> 16) & 1u) == 0);
    return up ? float_of(hi) : float_of(lo);
}

static int same_float(float a, float b) {
    return (isnan(a) && isnan(b)) || bits_of(a) == bits_of(b);
}

Test(bf16_round, matches_the_nearest_even_reference) {
    struct rng r;
    rng_seed(&r, 7);
    int bad = 0;
    for (int i = 0; i < 2000000 && bad < 10; i++) {
        uint32_t u = (uint32_t)rng_u64(&r);
        switch (i % 4) { /* low halves: anything, an exact tie, just off one */
        case 1:
            u = (u & 0xffff0000u) | 0x8000u;
            break;
        case 2:
            u = (u & 0xffff0000u) | 0x7fffu;
            break;
        case 3:
            u = (u & 0xffff0000u) | 0x8001u;
            break;
        }
        float x = float_of(u), got = bf16_round(x), want = ref_bf16(x);
        if (!same_float(got, want)) {
            bad++;
            cr_expect(0, "bf16_round(0x%08x) = 0x%08x, want 0x%08x", u, bits_of(got),
                      bits_of(want));
        }
    }
    cr_expect_eq(bad, 0);
}

Test(bf16_round, ties_go_to_even_and_edges_hold) {
    /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: the even one is 1;
     * 1 + 3 2^-8 halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even) */
    cr_expect_eq(bf16_round(1.0f + 0x1p-8f), 1.0f);
    cr_expect_eq(bf16_round(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);
    cr_expect_eq(bf16_round(-(1.0f + 3 * 0x1p-8f)), -(1.0f + 0x1p-6f));
    cr_expect_eq(bf16_round(1.0f + 0x1p-8f + 0x1p-23f), 1.0f + 0x1p-7f); /* past it */
    /* the largest finite bf16 is 0x7f7f0000; the fp32 max rounds to inf */
    cr_expect(isinf(bf16_round(3.4028234663852886e38f)));
    cr_expect_eq(bits_of(bf16_round(float_of(0x7f7f7fffu))), 0x7f7f0000u);
    cr_expect(isinf(bf16_round(INFINITY)) && bf16_round(-INFINITY) < 0);
    cr_expect(isnan(bf16_round(NAN)));
    cr_expect(isnan(bf16_round(float_of(0x7f800001u)))); /* a NaN with low bits only */
    /* subnormals round like everything else: 0x00008000 is a tie between 0
     * and 0x00010000 (odd), so it goes to 0; 0x00018000 to 0x00020000 */
    cr_expect_eq(bits_of(bf16_round(float_of(0x00008000u))), 0u);
    cr_expect_eq(bits_of(bf16_round(float_of(0x00018000u))), 0x00020000u);
    cr_expect_eq(bits_of(bf16_round(-0.0f)), 0x80000000u);
}

/* ---- matmuls against double loops ----------------------------------------- */
/* ref[n,o] = sum_c a(inp[n,c]) a(w[o,c]) + bias[o], with a = ref_bf16 or
 * identity, and bound[n,o] = (C + 2) 2^-23 (sum_c |products| + |bias|). */
struct mm {
    int N, C, OC;
    float *inp, *w, *bias, *dout, *dinp0, *dw0, *dbias0; /* host inputs */
};

static float *rnd(struct rng *r, size_t n, float scale) {
    float *x = malloc(n * sizeof *x);
    cr_assert(x != NULL);
    /* varied magnitudes, so operands span several binades */
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * (2.0 * rng_uniform(r) - 1.0) * exp2(rng_int(r, -3, 3)));
    return x;
}

static float rnd_or_round(float x, int round) { return round ? ref_bf16(x) : x; }

/* The largest |got - ref| / bound (pass: <= 1) and max|got - ref| / max|ref|. */
struct cmp {
    double worst_bound, rel;
};

static void cmp_add(struct cmp *c, double got, double ref, double bound, double *maxref,
                    double *maxdiff) {
    double d = fabs(got - ref);
    if (!(d <= c->worst_bound * bound)) c->worst_bound = bound > 0 ? d / bound : INFINITY;
    if (fabs(ref) > *maxref) *maxref = fabs(ref);
    if (d > *maxdiff) *maxdiff = d;
}

/* Runs fwd + bwd on `o` in its current mode and compares out, dinp, dw,
 * dbias with the double loops over operands rounded (round = 1) or not. */
static void check(const struct ops *o, const struct mm *m, int round, struct cmp res[4]) {
    const int N = m->N, C = m->C, OC = m->OC;
    struct buf inp, w, bias, out, dout, dinp, dw, dbias;
    cr_assert(!buf_from(o, &inp, m->inp, (size_t)N * C));
    cr_assert(!buf_from(o, &w, m->w, (size_t)OC * C));
    cr_assert(!buf_from(o, &bias, m->bias, (size_t)OC));
    cr_assert(!buf_zeros(o, &out, (size_t)N * OC));
    cr_assert(!buf_from(o, &dout, m->dout, (size_t)N * OC));
    cr_assert(!buf_from(o, &dinp, m->dinp0, (size_t)N * C));
    cr_assert(!buf_from(o, &dw, m->dw0, (size_t)OC * C));
    cr_assert(!buf_from(o, &dbias, m->dbias0, (size_t)OC));
    o->matmul_fwd(out.d, inp.d, w.d, bias.d, N, C, OC);
    o->matmul_bwd(dinp.d, dw.d, dbias.d, dout.d, inp.d, w.d, N, C, OC);
    buf_pull(o, &out);
    buf_pull(o, &dinp);
    buf_pull(o, &dw);
    buf_pull(o, &dbias);
    const double u2 = ldexp(1.0, -23);
    double mr[4] = {0}, md[4] = {0};
    memset(res, 0, 4 * sizeof *res);
    for (int n = 0; n < N; n++) /* out */
        for (int j = 0; j < OC; j++) {
            double s = m->bias[j], a = fabs(m->bias[j]);
            for (int c = 0; c < C; c++) {
                double p = (double)rnd_or_round(m->inp[(size_t)n * C + c], round) *
                           rnd_or_round(m->w[(size_t)j * C + c], round);
                s += p;
                a += fabs(p);
            }
            cmp_add(&res[0], out.h[(size_t)n * OC + j], s, (C + 2) * u2 * a, &mr[0],
                    &md[0]);
        }
    for (int n = 0; n < N; n++) /* dinp += dout @ w */
        for (int c = 0; c < C; c++) {
            double s = m->dinp0[(size_t)n * C + c], a = fabs(s);
            for (int j = 0; j < OC; j++) {
                double p = (double)rnd_or_round(m->dout[(size_t)n * OC + j], round) *
                           rnd_or_round(m->w[(size_t)j * C + c], round);
                s += p;
                a += fabs(p);
            }
            cmp_add(&res[1], dinp.h[(size_t)n * C + c], s, (OC + 2) * u2 * a, &mr[1],
                    &md[1]);
        }
    for (int j = 0; j < OC; j++) /* dw += dout^T @ inp */
        for (int c = 0; c < C; c++) {
            double s = m->dw0[(size_t)j * C + c], a = fabs(s);
            for (int n = 0; n < N; n++) {
                double p = (double)rnd_or_round(m->dout[(size_t)n * OC + j], round) *
                           rnd_or_round(m->inp[(size_t)n * C + c], round);
                s += p;
                a += fabs(p);
            }
            cmp_add(&res[2], dw.h[(size_t)j * C + c], s, (N + 2) * u2 * a, &mr[2],
                    &md[2]);
        }
    for (int j = 0; j < OC; j++) { /* dbias: fp32 sum of the unrounded dout */
        double s = m->dbias0[j], a = fabs(s);
        for (int n = 0; n < N; n++) {
            s += m->dout[(size_t)n * OC + j];
            a += fabs(m->dout[(size_t)n * OC + j]);
        }
        cmp_add(&res[3], dbias.h[j], s, (N + 2) * u2 * a, &mr[3], &md[3]);
    }
    for (int k = 0; k < 4; k++)
        res[k].rel = md[k] / (mr[k] > 0 ? mr[k] : 1.0);
    struct buf *all[] = {&inp, &w, &bias, &out, &dout, &dinp, &dw, &dbias};
    for (int k = 0; k < 8; k++)
        buf_free(o, all[k]);
}

static const char *const what[4] = {"out", "dinp", "dw", "dbias"};

static void test_matmuls(const struct ops *o) {
    /* odd sizes, a decode row (the CPU's gemv path), a larger regular one */
    static const int shapes[][3] = {{37, 45, 29}, {1, 64, 48}, {64, 128, 96}};
    struct rng r;
    rng_seed(&r, 2024);
    cr_assert_eq(o->matmul_dtype(), OPS_F32, "fp32 is the default");
    for (int s = 0; s < 3; s++) {
        struct mm m = {.N = shapes[s][0], .C = shapes[s][1], .OC = shapes[s][2]};
        m.inp = rnd(&r, (size_t)m.N * m.C, 1);
        m.w = rnd(&r, (size_t)m.OC * m.C, 1);
        m.bias = rnd(&r, m.OC, 1);
        m.dout = rnd(&r, (size_t)m.N * m.OC, 1);
        m.dinp0 = rnd(&r, (size_t)m.N * m.C, 1);
        m.dw0 = rnd(&r, (size_t)m.OC * m.C, 1);
        m.dbias0 = rnd(&r, m.OC, 1);
        struct cmp bf[4], off[4], f32[4];
        cr_assert_eq(o->set_matmul_dtype(OPS_BF16), 0);
        cr_assert_eq(o->matmul_dtype(), OPS_BF16);
        check(o, &m, 1, bf);  /* bf16 mode vs rounded operands */
        check(o, &m, 0, off); /* bf16 mode vs unrounded operands */
        cr_assert_eq(o->set_matmul_dtype(OPS_F32), 0);
        check(o, &m, 0, f32); /* fp32 mode vs unrounded */
        for (int k = 0; k < 4; k++) {
            cr_expect(bf[k].worst_bound <= 1.0,
                      "N=%d C=%d OC=%d bf16 %s: %.3g x the fp32 accumulation bound", m.N,
                      m.C, m.OC, what[k], bf[k].worst_bound);
            cr_expect(f32[k].worst_bound <= 1.0,
                      "N=%d C=%d OC=%d fp32 %s: %.3g x the fp32 accumulation bound", m.N,
                      m.C, m.OC, what[k], f32[k].worst_bound);
            if (k == 3) continue; /* dbias is fp32 in both modes */
            cr_expect(off[k].rel >= 3e-4,
                      "N=%d C=%d OC=%d bf16 %s is only %.3g from the unrounded result: "
                      "the operands were not rounded",
                      m.N, m.C, m.OC, what[k], off[k].rel);
            if (getenv("LLMPI_TEST_VERBOSE"))
                fprintf(stderr,
                        "N=%d C=%d OC=%d %-5s bf16: %.3f of the bound, %.3g from "
                        "unrounded; fp32: %.3f of the bound\n",
                        m.N, m.C, m.OC, what[k], bf[k].worst_bound, off[k].rel,
                        f32[k].worst_bound);
        }
        float *all[] = {m.inp, m.w, m.bias, m.dout, m.dinp0, m.dw0, m.dbias0};
        for (int k = 0; k < 7; k++)
            free(all[k]);
    }
}

static void test_set_dtype(const struct ops *o) {
    cr_assert_eq(o->set_matmul_dtype(OPS_BF16), 0);
    cr_expect_eq(o->set_matmul_dtype((enum ops_dtype)7), -1);
    cr_expect_eq(o->matmul_dtype(), OPS_BF16, "a refused dtype keeps the mode");
    cr_expect_eq(o->set_matmul_dtype(OPS_F32), 0);
    cr_expect_eq(o->matmul_dtype(), OPS_F32);
}

Test(cpu, bf16_matmuls_match_the_rounded_reference) { test_matmuls(ops_cpu()); }
Test(cpu, set_matmul_dtype) { test_set_dtype(ops_cpu()); }

#ifdef LLMPI_HAVE_CUDA
#include "ops_cuda.h"

static const struct ops *cuda_or_skip(void) {
    const struct ops *o = ops_cuda();
    if (!o) cr_skip_test("no usable CUDA device");
    return o;
}

Test(cuda, bf16_matmuls_match_the_rounded_reference) {
    test_matmuls(cuda_or_skip());
    const char *e = cuda_last_error();
    cr_expect(e == NULL, "CUDA backend recorded an error: %s", e ? e : "");
}
Test(cuda, set_matmul_dtype) { test_set_dtype(cuda_or_skip()); }
#endif
