/* kernels/cpu/ops_cpu.c — the CPU backend's `struct ops` table. */
#include <omp.h>

#include "cpu_internal.h"

static const struct ops cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .layernorm_fwd = cpu_layernorm_fwd,
    .layernorm_bwd = cpu_layernorm_bwd,
    .matmul_fwd = cpu_matmul_fwd,
    .matmul_bwd = cpu_matmul_bwd,
    .attention_fwd = cpu_attention_fwd,
    .attention_bwd = cpu_attention_bwd,
    .attention_paged_fwd = cpu_attention_paged_fwd,
    .gelu_fwd = cpu_gelu_fwd,
    .gelu_bwd = cpu_gelu_bwd,
    .residual_fwd = cpu_residual_fwd,
    .residual_bwd = cpu_residual_bwd,
    .xent_fwd = cpu_xent_fwd,
    .xent_bwd_inplace = cpu_xent_bwd_inplace,
    .xent_shard_stats = cpu_xent_shard_stats,
    .xent_shard_rescale = cpu_xent_shard_rescale,
    .xent_shard_loss = cpu_xent_shard_loss,
    .xent_shard_bwd_inplace = cpu_xent_shard_bwd_inplace,
    .sgd_update = cpu_sgd_update,
    .adam_update = cpu_adam_update,
    .sumsq = cpu_sumsq,
    .scale = cpu_scale,
    .set_matmul_dtype = cpu_set_matmul_dtype,
    .matmul_dtype = cpu_matmul_dtype,
};

const struct ops *ops_cpu(void) { return &cpu_ops; }

/* OpenBLAS (OpenMP build) keeps its own thread count next to OpenMP's. */
void openblas_set_num_threads(int num_threads);

void ops_cpu_set_threads(int n) {
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}
