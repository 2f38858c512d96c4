/* kernels/cuda/xent.cu — fused softmax + cross-entropy over the vocabulary.
 *
 *   loss[n] = log(sum_v exp(z[n,v] - max)) + max - z[n, target[n]]
 *   dz[n,v] = dloss[n] * (softmax(z[n,:])[v] - [v == target[n]])
 * The backward overwrites the logits with dz (softmax recomputed, not stored).
 * target < 0: the position has no loss and no gradient (loss 0, dz 0).
 * target >= V is treated the same way (the CPU reference would read out of
 * bounds; ops.h does not define it).
 *
 * Launch shape: one block of 512 threads per row n (grid N); the threads
 * stride over V; max and sum by fixed-order block reductions (warp shuffles
 * then one warp over the 16 warp results), so results are deterministic.
 */
#include "cuda_internal.h"

#define XENT_THREADS 512

__global__ void xent_fwd_kernel(float *loss, const float *logits,
                                const int32_t *target, int V) {
    __shared__ float sh[32];
    const int n = blockIdx.x;
    const int t = target[n];
    if (t < 0 || t >= V) {
        if (threadIdx.x == 0) loss[n] = 0.0f;
        return;
    }
    const float *z = logits + (size_t)n * V;
    float mx = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, z[v]);
    mx = block_max(mx, sh);
    float s = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf(z[v] - mx);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) loss[n] = logf(s) + mx - z[t];
}

__global__ void xent_bwd_kernel(float *logits, const int32_t *target,
                                const float *dloss, int V) {
    __shared__ float sh[32];
    const int n = blockIdx.x;
    const int t = target[n];
    float *z = logits + (size_t)n * V;
    if (t < 0 || t >= V) {
        for (int v = threadIdx.x; v < V; v += blockDim.x) z[v] = 0.0f;
        return;
    }
    float mx = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, z[v]);
    mx = block_max(mx, sh);
    float s = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf(z[v] - mx);
    s = block_sum(s, sh);
    const float dl = dloss[n];
    const float k = dl / s;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float g = expf(z[v] - mx) * k;
        z[v] = v == t ? g - dl : g;
    }
}

extern "C" void cuda_xent_fwd(float *loss, const float *logits,
                              const int32_t *target, int N, int V) {
    if (N <= 0 || V <= 0) return;
    xent_fwd_kernel<<<N, XENT_THREADS, 0, cuda_stream()>>>(loss, logits, target, V);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_xent_bwd_inplace(float *logits, const int32_t *target,
                                      const float *dloss, int N, int V) {
    if (N <= 0 || V <= 0) return;
    xent_bwd_kernel<<<N, XENT_THREADS, 0, cuda_stream()>>>(logits, target, dloss, V);
    CUDA_CHECK_LAUNCH();
}
