/* tests/test_backend_check.c — the harness of `ctest -L gpu` and
 * `llmpi selftest` (src/train/backend_check.c), tested without a GPU.
 *
 * The CPU backend against itself: every check runs and passes with no
 * difference at all. Against a copy of itself with one op deliberately
 * off: exactly that op's checks fail (the harness can fail, and blames the
 * right op), everything else still passes. The bf16 checks likewise: the
 * CPU's bf16 emulation against itself passes exactly, and a device whose
 * matmuls ignore the bf16 setting fails every product check.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "backend_check.h"

static struct ops off; /* ops_cpu() with one op perturbed */

/* GELU forward 0.1% too large */
static void gelu_fwd_off(float *out, const float *inp, size_t n) {
    ops_cpu()->gelu_fwd(out, inp, n);
    float *h = malloc(n * sizeof(float));
    ops_cpu()->download(h, out, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        h[i] *= 1.001f;
    ops_cpu()->upload(out, h, n * sizeof(float));
    free(h);
}

/* layernorm's dw gradient dropped for the last channel */
static void layernorm_bwd_off(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int N, int C) {
    float keep;
    ops_cpu()->download(&keep, dw + C - 1, sizeof keep);
    ops_cpu()->layernorm_bwd(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    ops_cpu()->upload(dw + C - 1, &keep, sizeof keep);
}

static int failures_named(const struct check_report *rep, const char *prefix,
                          int *others) {
    int n = 0;
    *others = 0;
    for (int i = 0; i < rep->n; i++) {
        if (rep->r[i].pass) continue;
        if (!strncmp(rep->r[i].what, prefix, strlen(prefix)))
            n++;
        else
            (*others)++;
    }
    return n;
}

Test(backend_check, cpu_against_itself_passes_exactly) {
    struct check_report rep = {0};
    cr_assert_eq(backend_check_ops(ops_cpu(), ops_cpu(), &rep), 0);
    cr_assert_gt(rep.n, 50, "%d checks", rep.n);
    for (int i = 0; i < rep.n; i++)
        cr_expect(rep.r[i].pass && rep.r[i].err == 0.0, "%s (%s): %.3g", rep.r[i].what,
                  rep.r[i].shape, rep.r[i].err);
    cr_expect_eq(check_report_failures(&rep), 0);
    check_report_free(&rep);
    cr_assert_eq(backend_check_models(ops_cpu(), ops_cpu(), 3, 1, &rep), 0);
    cr_expect(rep.n == 1 && rep.r[0].pass && rep.r[0].err == 0.0, "tiny: %.3g",
              rep.n ? rep.r[0].err : -1.0);
    check_report_free(&rep);
}

Test(backend_check, a_wrong_gelu_is_caught_and_named) {
    off = *ops_cpu();
    off.gelu_fwd = gelu_fwd_off;
    struct check_report rep = {0};
    cr_assert_eq(backend_check_ops(ops_cpu(), &off, &rep), 0);
    int others, n = failures_named(&rep, "gelu forward", &others);
    cr_expect_eq(n, 3, "gelu forward failed at %d of its 3 shapes", n);
    cr_expect_eq(others, 0, "%d other checks failed", others);
    check_report_free(&rep);
}

/* matmul forward 5% too large */
static void matmul_fwd_off(float *out, const float *inp, const float *w,
                           const float *bias, int N, int C, int OC) {
    ops_cpu()->matmul_fwd(out, inp, w, bias, N, C, OC);
    ops_cpu()->scale(out, (size_t)N * OC, 1.05f);
}

Test(backend_check, a_wrong_matmul_shows_in_the_loss_curve) {
    off = *ops_cpu();
    off.matmul_fwd = matmul_fwd_off;
    struct check_report rep = {0};
    cr_assert_eq(backend_check_models(ops_cpu(), &off, 3, 1, &rep), 0);
    cr_expect(rep.n == 1 && !rep.r[0].pass, "tiny's loss curve should differ: %.3g",
              rep.n ? rep.r[0].err : -1.0);
    check_report_free(&rep);
}

Test(backend_check, a_wrong_gradient_is_caught_and_named) {
    off = *ops_cpu();
    off.layernorm_bwd = layernorm_bwd_off;
    struct check_report rep = {0};
    cr_assert_eq(backend_check_ops(ops_cpu(), &off, &rep), 0);
    int others, n = failures_named(&rep, "layernorm dw", &others);
    cr_expect_eq(n, 3, "layernorm dw failed at %d of its 3 shapes", n);
    cr_expect_eq(others, 0, "%d other checks failed", others);
    check_report_free(&rep);
}

/* paged attention that reads only the first entry of each block table, as
 * if every key lay in the sequence's first block (the CPU backend's memory
 * is the host's, so the table can be rewritten here) */
static void attention_paged_off(float *out, const float *q, const float *kv,
                                const int32_t *seqs, const int32_t *tables, int n_seqs,
                                int total_q_rows, int max_blocks, int block_size, int NH,
                                int HS, int q_stride, int kv_stride, int v_offset) {
    int32_t *run = malloc((size_t)n_seqs * max_blocks * sizeof *run);
    cr_assert_not_null(run);
    for (int s = 0; s < n_seqs; s++)
        for (int b = 0; b < max_blocks; b++)
            run[s * max_blocks + b] = tables[s * max_blocks];
    ops_cpu()->attention_paged_fwd(out, q, kv, seqs, run, n_seqs, total_q_rows,
                                   max_blocks, block_size, NH, HS, q_stride, kv_stride,
                                   v_offset);
    free(run);
}

Test(backend_check, a_paged_attention_misreading_the_table_is_caught) {
    off = *ops_cpu();
    off.attention_paged_fwd = attention_paged_off;
    struct check_report rep = {0};
    cr_assert_eq(backend_check_ops(ops_cpu(), &off, &rep), 0);
    int others, n = failures_named(&rep, "attention paged", &others);
    /* against the CPU, and against itself with contiguous blocks, at 5 shapes */
    cr_expect_eq(n, 10, "paged attention failed %d of its 10 checks", n);
    cr_expect_eq(others, 0, "%d other checks failed", others);
    check_report_free(&rep);
}

Test(backend_check, cpu_bf16_against_itself_passes_exactly) {
    struct check_report rep = {0};
    cr_assert_eq(backend_check_bf16(ops_cpu(), ops_cpu(), 3, &rep), 0);
    /* 4 shapes x (no bias: 3 tensors, bias: 4), then the loss curve */
    cr_expect_eq(rep.n, 4 * (3 + 4) + 1, "%d checks", rep.n);
    for (int i = 0; i < rep.n; i++)
        cr_expect(rep.r[i].pass && rep.r[i].err == 0.0 &&
                      !strncmp(rep.r[i].what, "bf16 ", 5),
                  "%s (%s): %.3g", rep.r[i].what, rep.r[i].shape, rep.r[i].err);
    cr_expect_eq(ops_cpu()->matmul_dtype(), OPS_F32, "the dtype is restored");
    check_report_free(&rep);
}

/* A device that ignores the bf16 setting: its matmuls run on fp32 operands. */
static void matmul_fwd_fp32(float *out, const float *inp, const float *w,
                            const float *bias, int N, int C, int OC) {
    enum ops_dtype was = ops_cpu()->matmul_dtype();
    ops_cpu()->set_matmul_dtype(OPS_F32);
    ops_cpu()->matmul_fwd(out, inp, w, bias, N, C, OC);
    ops_cpu()->set_matmul_dtype(was);
}

static void matmul_bwd_fp32(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC) {
    enum ops_dtype was = ops_cpu()->matmul_dtype();
    ops_cpu()->set_matmul_dtype(OPS_F32);
    ops_cpu()->matmul_bwd(dinp, dw, dbias, dout, inp, w, N, C, OC);
    ops_cpu()->set_matmul_dtype(was);
}

Test(backend_check, fp32_matmuls_fail_the_bf16_checks) {
    off = *ops_cpu();
    off.matmul_fwd = matmul_fwd_fp32;
    off.matmul_bwd = matmul_bwd_fp32;
    struct check_report rep = {0};
    cr_assert_eq(backend_check_bf16(ops_cpu(), &off, 3, &rep), 0);
    int bad = 0;
    for (int i = 0; i < rep.n; i++) {
        const struct check_result *x = &rep.r[i];
        /* every product is off; the fp32 dbias is the same in both modes */
        if (strstr(x->what, "matmul") && !strstr(x->what, "dbias")) {
            bad += !x->pass;
            cr_expect(!x->pass, "%s (%s) should fail: %.3g", x->what, x->shape, x->err);
        } else {
            cr_expect(x->pass, "%s (%s) should pass: %.3g", x->what, x->shape, x->err);
        }
    }
    cr_expect_eq(bad, 4 * 2 * 3, "%d of the 24 product checks failed", bad);
    check_report_free(&rep);
}
