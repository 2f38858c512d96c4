/* kernels/cuda/cast.cu — fp32 -> bf16, the operand conversion of the bf16
 * matmuls (matmul.cu; ops.h, set_matmul_dtype).
 *
 *   dst[i] = bf16(src[i]), round to nearest, ties to even
 *            (__float2bfloat16_rn; the CPU emulation, kernels/cpu/bf16.h,
 *            rounds the same way)
 * Not an op of the table: an internal helper, queued on the backend stream.
 *
 * Launch shape: 1-D grid-stride, 256 threads, one element per thread-step
 * (coalesced 4-byte reads and 2-byte writes; bound by memory bandwidth).
 */
#include "cuda_internal.h"

__global__ void f32_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

void cuda_f32_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n) {
    if (n == 0) return;
    f32_to_bf16_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream()>>>(dst, src, n);
    CUDA_CHECK_LAUNCH();
}
