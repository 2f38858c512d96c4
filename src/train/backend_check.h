/* src/train/backend_check.h — one op backend checked against another.
 *
 * The checks of `ctest -L gpu` (tests/test_cuda_vs_cpu.c) and of
 * `llmpi selftest`, written once: every op of kernels/ops.h runs on both
 * backends from the same random inputs, at a regular shape and at odd ones
 * (sizes that are not multiples of any block or warp size), and each output
 * and accumulated gradient is compared as max|dut - ref| / max|ref|
 * against a tolerance (1e-4 for fp32 ops: both sides are fp32, only the
 * order of summation differs); then whole models: 20 AdamW steps of `tiny`
 * and `gpt2-mini` on each backend from the same weights and batches, the
 * losses within 1e-3 relative of each other at every step.
 *
 * The reference is the CPU backend; the device under test is normally
 * CUDA, but any op table works: tests/test_backend_check.c runs the CPU
 * against itself (every check passes) and against a copy with one op
 * deliberately off (exactly that op's checks fail), which is how the
 * harness itself is tested on machines without a GPU.
 */
#ifndef LLMPI_BACKEND_CHECK_H
#define LLMPI_BACKEND_CHECK_H

#include "ops.h"

struct check_result {
    char what[64];  /* e.g. "layernorm dw" */
    char shape[48]; /* e.g. "N=37 C=33" */
    double err;     /* the relative difference (or, for models, the largest
                       relative loss difference over the steps) */
    double tol;
    int pass;
};

struct check_report {
    struct check_result *r;
    int n, cap;
};
void check_report_free(struct check_report *rep);
int check_report_failures(const struct check_report *rep);

/* Every op at every shape; results appended to rep. -1 + err_set only when
 * the checks cannot run (out of memory). */
int backend_check_ops(const struct ops *ref, const struct ops *dut,
                      struct check_report *rep);

/* The loss curves of `tiny` (B=4, T=64) and, unless quick, `gpt2-mini`
 * (B=4, T=128) over `steps` AdamW steps. -1 + err_set when a model cannot
 * be built or a step fails. */
int backend_check_models(const struct ops *ref, const struct ops *dut, int steps,
                         int quick, struct check_report *rep);

/* bf16 matmul operands (ops.h, set_matmul_dtype): both backends switched to
 * OPS_BF16, the matmul checks of backend_check_ops ("bf16 matmul ...",
 * within 3e-4: the same bf16 operands on both sides, only the fp32
 * accumulation differs, while fp32 operands would be ~2e-3 off), then the
 * loss curve of `tiny` over `steps` AdamW steps ("bf16 tiny loss curve",
 * within 5e-3: each backend rounds its own, slightly different, fp32
 * activations); each backend's dtype is restored afterwards. -1 + err_set
 * when either backend cannot run bf16 matmuls, or a step fails. */
int backend_check_bf16(const struct ops *ref, const struct ops *dut, int steps,
                       struct check_report *rep);

#endif
