/* tests/test_cuda_vs_cpu.c — every CUDA op against the CPU backend, and
 * the loss curves of whole models (ctest -L gpu). Skipped, with a message
 * saying so, where no GPU is present.
 *
 * The checks themselves live in src/train/backend_check.c, shared with
 * `llmpi selftest`: every op at a regular shape and at odd shapes, outputs
 * and gradients within 1e-4 relative (both fp32, only the order of
 * summation differs), then 20 AdamW steps of `tiny` and `gpt2-mini` whose
 * losses follow the CPU's to 1e-3; then the bf16 matmuls against the CPU's
 * bf16 emulation (backend_check_bf16). Here each check is one expectation,
 * so a failure names the op, the tensor and the shape. Last, the one
 * CUDA-only behaviour: attention refuses a head size above its limit.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "backend_check.h"
#include "ops_cuda.h"

static const struct ops *gpu;

static void setup(void) {
    gpu = ops_cuda();
    if (!gpu) cr_skip_test("no CUDA device: GPU tests skipped");
}

TestSuite(cuda, .init = setup);

static void expect_all(const struct check_report *rep) {
    cr_expect_gt(rep->n, 0, "no checks ran");
    for (int i = 0; i < rep->n; i++) {
        const struct check_result *x = &rep->r[i];
        cr_expect(x->pass, "%s (%s): relative difference %.3g > %.0e", x->what, x->shape,
                  x->err, x->tol);
    }
}

Test(cuda, every_op_at_regular_and_odd_shapes) {
    struct check_report rep = {0};
    cr_assert_eq(backend_check_ops(ops_cpu(), gpu, &rep), 0);
    expect_all(&rep);
    check_report_free(&rep);
}

Test(cuda, models_follow_the_cpu_loss_curve, .timeout = 900) {
    struct check_report rep = {0};
    cr_assert_eq(backend_check_models(ops_cpu(), gpu, 20, 0, &rep), 0);
    cr_expect_eq(rep.n, 2, "tiny and gpt2-mini");
    expect_all(&rep);
    check_report_free(&rep);
}

/* bf16 matmul operands: the CUDA gemms on bf16 operands against the CPU's
 * exact emulation, then tiny's loss curve with both in bf16. */
Test(cuda, bf16_matmuls_follow_the_cpu_emulation, .timeout = 300) {
    struct check_report rep = {0};
    cr_assert_eq(backend_check_bf16(ops_cpu(), gpu, 20, &rep), 0);
    expect_all(&rep);
    check_report_free(&rep);
    const char *e = cuda_last_error();
    cr_expect(e == NULL, "CUDA backend recorded an error: %s", e ? e : "");
}

/* The flash-style kernels keep a thread's share of a head row in registers,
 * sized at compile time up to HS = 128: a larger head must be refused with
 * an error naming it, not computed wrongly or launched out of bounds. */
Test(cuda, attention_refuses_a_head_size_above_128) {
    const int HS = 129, T = 3, S = 3 * HS;
    float *qkv = gpu->alloc((size_t)T * S * sizeof(float));
    float *out = gpu->alloc((size_t)T * HS * sizeof(float));
    float *lse = gpu->alloc((size_t)T * sizeof(float));
    cr_assert(qkv && out && lse);
    gpu->zero(qkv, (size_t)T * S * sizeof(float));
    cr_assert_null(cuda_last_error());
    gpu->attention_fwd(out, lse, qkv, qkv + HS, qkv + 2 * HS, 1, T, T, 1, HS, S, S);
    gpu->sync();
    const char *e = cuda_last_error();
    cr_expect(e && strstr(e, "HS=129"), "error: %s", e ? e : "(none)");
    gpu->free(qkv);
    gpu->free(out);
    gpu->free(lse);
}
