/* kernels/cuda/residual.cu — residual connection.
 *   out = a + b;  backward: da += dout, db += dout
 * (da == db is allowed: the two updates are then both applied, as on the CPU.)
 *
 * Launch shape: 1-D grid-stride, 256 threads, one element per thread-step.
 */
#include "cuda_internal.h"

__global__ void residual_fwd_kernel(float *out, const float *a, const float *b,
                                    size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

__global__ void residual_bwd_kernel(float *da, float *db, const float *dout,
                                    size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float d = dout[i];
        da[i] += d;
        db[i] += d;
    }
}

extern "C" void cuda_residual_fwd(float *out, const float *a, const float *b,
                                  size_t n) {
    if (n == 0) return;
    residual_fwd_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream()>>>(out, a,
                                                                         b, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_residual_bwd(float *da, float *db, const float *dout,
                                  size_t n) {
    if (n == 0) return;
    residual_bwd_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream()>>>(da, db,
                                                                         dout, n);
    CUDA_CHECK_LAUNCH();
}
