/* tests/test_backend_check.c — the harness of `ctest -L gpu` and
 * `llmpi selftest` (src/train/backend_check.c), tested without a GPU.
 *
 * The CPU backend against itself: every check runs and passes with no
 * difference at all. Against a copy of itself with one op deliberately
 * off: exactly that op's checks fail (the harness can fail, and blames the
 * right op), everything else still passes.
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
