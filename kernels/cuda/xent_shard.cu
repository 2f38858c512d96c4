/* kernels/cuda/xent_shard.cu — softmax cross-entropy over a vocabulary shard
 * (tensor parallelism: no rank holds a full row of logits).
 *
 * This rank holds z[n, v] for the ids [vocab_start, vocab_start + V). Over the
 * whole vocabulary, with M[n] = max_v z[n,v] and S[n] = sum_v exp(z[n,v] - M):
 *   loss[n] = log S[n] + M[n] - z[n, target[n]]
 *   dz[n,v] = dloss[n] * (exp(z[n,v] - M[n]) / S[n] - [v == target[n]])
 * From each shard's m_r = max over the shard and s_r = sum over the shard of
 * exp(z - m_r):  M = max_r m_r  and  S = sum_r s_r * exp(m_r - M).
 * The stages (the caller allreduces between them, per-row scalars only):
 *   stats    m_r, s_r, and z[n, target] if the target is in the shard (else 0)
 *   rescale  s_r *= exp(m_r - M)          (then allreduce-sum -> S)
 *   loss     log S + M - z_target
 *   bwd      dz of the shard, in place
 * target < 0: loss 0 and gradient 0. An empty shard (V == 0), or a row that
 * is all -inf, has m_r = -inf and s_r = 0; the rescale keeps it 0 instead of
 * forming exp(-inf - M) from -inf - -inf.
 *
 * Launch shape: stats and bwd as xent.cu (one block of 512 threads per row,
 * threads striding over V; max and sum by the fixed-order block reductions,
 * so deterministic, and with one shard over the whole vocabulary the same
 * arithmetic as xent_fwd / xent_bwd_inplace); rescale and loss elementwise
 * over N, grid-stride, 256 threads.
 */
#include "cuda_internal.h"

#define XENT_SHARD_THREADS 512
#define XENT_SHARD_ELEM_THREADS 256

/* the target's column in this shard, or -1 when it lies outside (or < 0);
 * in 64 bits: vocab_start + V may not fit an int */
__device__ __forceinline__ long long shard_col(int target, int V, int vocab_start) {
    if (target < 0) return -1;
    long long t = (long long)target - vocab_start;
    return t >= 0 && t < V ? t : -1;
}

__global__ void xent_shard_stats_kernel(float *rowmax, float *rowsumexp,
                                        float *target_logit, const float *logits,
                                        const int32_t *target, int V, int vocab_start) {
    __shared__ float sh[32];
    const int n = blockIdx.x;
    const float *z = logits + (size_t)n * V;
    float mx = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x)
        mx = fmaxf(mx, z[v]);
    mx = block_max(mx, sh);
    float s = 0.0f;
    if (mx != -INFINITY) /* uniform across the block */
        for (int v = threadIdx.x; v < V; v += blockDim.x)
            s += expf(z[v] - mx);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) {
        const long long t = shard_col(target[n], V, vocab_start);
        rowmax[n] = mx;
        rowsumexp[n] = s;
        target_logit[n] = t >= 0 ? z[t] : 0.0f;
    }
}

__global__ void xent_shard_rescale_kernel(float *sumexp, const float *localmax,
                                          const float *globalmax, int N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)N;
         i += (size_t)gridDim.x * blockDim.x) {
        const float m = localmax[i];
        sumexp[i] = m == -INFINITY ? 0.0f : sumexp[i] * expf(m - globalmax[i]);
    }
}

__global__ void xent_shard_loss_kernel(float *loss, const float *globalmax,
                                       const float *globalsumexp,
                                       const float *target_logit, const int32_t *target,
                                       int N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)N;
         i += (size_t)gridDim.x * blockDim.x)
        loss[i] =
            target[i] < 0 ? 0.0f : logf(globalsumexp[i]) + globalmax[i] - target_logit[i];
}

__global__ void xent_shard_bwd_kernel(float *logits, const int32_t *target,
                                      const float *dloss, const float *globalmax,
                                      const float *globalsumexp, int V, int vocab_start) {
    const int n = blockIdx.x;
    float *z = logits + (size_t)n * V;
    if (target[n] < 0) {
        for (int v = threadIdx.x; v < V; v += blockDim.x)
            z[v] = 0.0f;
        return;
    }
    const long long t = shard_col(target[n], V, vocab_start);
    const float mx = globalmax[n];
    const float dl = dloss[n];
    const float k = dl / globalsumexp[n];
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float g = expf(z[v] - mx) * k;
        z[v] = v == t ? g - dl : g;
    }
}

extern "C" void cuda_xent_shard_stats(float *rowmax, float *rowsumexp,
                                      float *target_logit, const float *logits,
                                      const int32_t *target, int N, int V,
                                      int vocab_start) {
    if (N <= 0) return;
    if (V < 0) V = 0; /* an empty shard still writes -inf, 0, 0 */
    xent_shard_stats_kernel<<<N, XENT_SHARD_THREADS, 0, cuda_stream()>>>(
        rowmax, rowsumexp, target_logit, logits, target, V, vocab_start);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_xent_shard_rescale(float *sumexp, const float *localmax,
                                        const float *globalmax, int N) {
    if (N <= 0) return;
    xent_shard_rescale_kernel<<<cuda_grid_1d((size_t)N, XENT_SHARD_ELEM_THREADS),
                                XENT_SHARD_ELEM_THREADS, 0, cuda_stream()>>>(
        sumexp, localmax, globalmax, N);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_xent_shard_loss(float *loss, const float *globalmax,
                                     const float *globalsumexp, const float *target_logit,
                                     const int32_t *target, int N) {
    if (N <= 0) return;
    xent_shard_loss_kernel<<<cuda_grid_1d((size_t)N, XENT_SHARD_ELEM_THREADS),
                             XENT_SHARD_ELEM_THREADS, 0, cuda_stream()>>>(
        loss, globalmax, globalsumexp, target_logit, target, N);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_xent_shard_bwd_inplace(float *logits, const int32_t *target,
                                            const float *dloss, const float *globalmax,
                                            const float *globalsumexp, int N, int V,
                                            int vocab_start) {
    if (N <= 0 || V <= 0) return;
    xent_shard_bwd_kernel<<<N, XENT_SHARD_THREADS, 0, cuda_stream()>>>(
        logits, target, dloss, globalmax, globalsumexp, V, vocab_start);
    CUDA_CHECK_LAUNCH();
}
