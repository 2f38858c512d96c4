/* tests/cuda_emu/reductions.cu — a test kernel for the warp and block
 * reductions of kernels/cuda/cuda_internal.h, written as CUDA and run by the
 * emulation like the kernels/cuda files (tests/cuda_emu/README.md).
 *
 * Each block reduces two values per thread, x (first half of its inputs) and
 * y (second half), through the helpers called back to back on the same
 * shared scratch, as kernels do (xent.cu: block_max, then block_sum):
 *   k = 0..5: block_sum(x), block_max(x), block_sum(y), block_max(y),
 *             block_sum_d(x), block_sum_d(y)
 *   k = 6, 7: warp_sum(x), warp_max(y) of the thread's warp
 * Every thread writes what it got, res[(block * threads + thread) * 8 + k]
 * (as double): the helpers promise the result to every thread. A helper's
 * first barrier ("sh may still be read by a previous call") only matters
 * for a second call, which the kernels/cuda files do not make for every
 * helper; here each is called after another.
 *
 * Launch shape: `blocks` blocks of `threads` threads (a multiple of 32).
 */
#include "cuda_internal.h"

__global__ void reductions_kernel(double *res, const float *in) {
    __shared__ float sh[32];
    __shared__ double shd[32];
    const size_t base = (size_t)blockIdx.x * blockDim.x * 2;
    const float x = in[base + threadIdx.x], y = in[base + blockDim.x + threadIdx.x];
    double r[8];
    r[0] = block_sum(x, sh);
    r[1] = block_max(x, sh);
    r[2] = block_sum(y, sh);
    r[3] = block_max(y, sh);
    r[4] = block_sum_d(x, shd);
    r[5] = block_sum_d(y, shd);
    r[6] = warp_sum(x);
    r[7] = warp_max(y);
    double *o = res + ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    for (int k = 0; k < 8; k++)
        o[k] = r[k];
}

extern "C" void emu_test_reductions(double *res, const float *in, int blocks,
                                    int threads) {
    reductions_kernel<<<blocks, threads, 0, cuda_stream()>>>(res, in);
    CUDA_CHECK_LAUNCH();
}
