/* kernels/cuda/optimizer.cu — SGD with momentum and Adam/AdamW updates.
 *
 * SGD (torch.optim.SGD semantics, dampening 0):
 *   g' = g + wd p;  m = momentum m + g';  p -= lr m
 * Adam (decoupled = 0, L2 folded into the gradient) / AdamW (decoupled != 0):
 *   AdamW: p *= 1 - lr wd;  g' = g        Adam: g' = g + wd p
 *   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
 *   p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * The bias corrections 1/(1 - b^t) are computed once on the host (float powf,
 * as the CPU reference does) and passed in.
 *
 * Launch shape: 1-D grid-stride, 256 threads, one element per thread-step.
 */
#include "cuda_internal.h"

__global__ void sgd_kernel(float *p, const float *g, float *m, size_t n,
                           float lr, float momentum, float wd) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float pi = p[i];
        float gi = g[i] + wd * pi;
        float mi = momentum * m[i] + gi;
        m[i] = mi;
        p[i] = pi - lr * mi;
    }
}

__global__ void adam_kernel(float *p, const float *g, float *m, float *v,
                            size_t n, float lr, float b1, float b2, float eps,
                            float c1, float c2, float decay, float l2) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float p0 = p[i];
        float gi = g[i] + l2 * p0;
        float pi = p0 * decay;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - lr * (mi * c1) / (sqrtf(vi * c2) + eps);
    }
}

extern "C" void cuda_sgd_update(float *p, const float *g, float *m, size_t n,
                                float lr, float momentum, float wd) {
    if (n == 0) return;
    sgd_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream()>>>(p, g, m, n, lr,
                                                                momentum, wd);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_adam_update(float *p, const float *g, float *m, float *v,
                                 size_t n, float lr, float b1, float b2,
                                 float eps, float wd, int t, int decoupled) {
    if (n == 0) return;
    const float c1 = 1.0f / (1.0f - powf(b1, (float)t));
    const float c2 = 1.0f / (1.0f - powf(b2, (float)t));
    const float decay = decoupled ? 1.0f - lr * wd : 1.0f;
    const float l2 = decoupled ? 0.0f : wd;
    adam_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream()>>>(
        p, g, m, v, n, lr, b1, b2, eps, c1, c2, decay, l2);
    CUDA_CHECK_LAUNCH();
}
