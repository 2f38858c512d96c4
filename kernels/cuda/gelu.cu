/* kernels/cuda/gelu.cu — GELU, tanh approximation (as GPT-2).
 *
 *   u = sqrt(2/pi) (x + 0.044715 x^3);  gelu(x) = 0.5 x (1 + tanh u)
 *   gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 0.044715 x^2)
 * Backward accumulates: dinp += dout * gelu'(inp).
 *
 * Launch shape: 1-D grid-stride, 256 threads, one element per thread-step.
 */
#include "cuda_internal.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

__global__ void gelu_fwd_kernel(float *out, const float *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_A * x * x * x)));
    }
}

__global__ void gelu_bwd_kernel(float *dinp, const float *dout,
                                const float *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        float th = tanhf(GELU_K * (x + GELU_A * x * x * x));
        float d = 0.5f * (1.0f + th) +
                  0.5f * x * (1.0f - th * th) * GELU_K *
                      (1.0f + 3.0f * GELU_A * x * x);
        dinp[i] += dout[i] * d;
    }
}

extern "C" void cuda_gelu_fwd(float *out, const float *inp, size_t n) {
    if (n == 0) return;
    gelu_fwd_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream()>>>(out, inp, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_gelu_bwd(float *dinp, const float *dout, const float *inp,
                              size_t n) {
    if (n == 0) return;
    gelu_bwd_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream()>>>(dinp, dout,
                                                                     inp, n);
    CUDA_CHECK_LAUNCH();
}
