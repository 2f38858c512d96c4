/* tests/cuda_emu/emu_selftest.cu — kernels for the emulator's own test
 * (test_cuda_emu.cpp, group "emulator"), written as CUDA and emulated like
 * the kernels/cuda files (tests/cuda_emu/README.md).
 *
 * Misuse the emulator has to report (each kernel is wrong on purpose):
 *   0  a barrier in divergent code (two different __syncthreads)
 *   1  a barrier after some threads have returned (a deadlock on a GPU)
 *   2  a full-mask shuffle after half of the warp has returned
 *   3  a shuffle reading a lane outside its mask
 *   4  a write past the dynamic shared memory (blockDim > smem / 4)
 *   5  a missing barrier: each thread writes its slot of shared memory and
 *      reads another thread's without __syncthreads between
 * and the values of the synchronising primitives (6), per thread t, lane l,
 * in out[t * 8 + k]:
 *   k = 0 __syncthreads_count(t % 3 == 0)   1 __syncthreads_or(t == 77)
 *       2 __syncthreads_and(t < 1000)       3 __ballot_sync(full, l & 1)
 *       4 __shfl_up_sync(l, 3, width 8)     5 __shfl_down_sync(l, 2, width 16)
 *       6 __shfl_sync(l, 5 + l, width 8)    7 __shfl_xor_sync(l, 4, width 4)
 * (7: the same after cudaFuncSetAttribute opted in to `smem` bytes.)
 * Launch shape: one block of `threads` threads, `smem` bytes of dynamic
 * shared memory.
 */
#include "cuda_internal.h"

__global__ void divergent_barrier_kernel(float *out) {
    if (threadIdx.x < 32)
        __syncthreads();
    else
        __syncthreads();
    out[threadIdx.x] = 1.0f;
}

__global__ void exit_then_barrier_kernel(float *out) {
    if (threadIdx.x >= 64) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

__global__ void shfl_after_exit_kernel(float *out) {
    if ((threadIdx.x & 31) >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void shfl_outside_mask_kernel(float *out) {
    const int lane = threadIdx.x & 31;
    if (lane < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, (float)lane, 20);
}

__global__ void smem_overflow_kernel(float *out) {
    extern __shared__ float dyn[];
    dyn[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = 2.0f;
}

__global__ void missing_barrier_kernel(float *out, const float *in) {
    extern __shared__ float dyn[];
    dyn[threadIdx.x] = in[threadIdx.x];
    out[threadIdx.x] = dyn[(threadIdx.x + 37) % blockDim.x];
}

__global__ void primitives_kernel(int *out) {
    const int t = threadIdx.x, l = t & 31;
    int r[8];
    r[0] = __syncthreads_count(t % 3 == 0);
    r[1] = __syncthreads_or(t == 77);
    r[2] = __syncthreads_and(t < 1000);
    r[3] = (int)__ballot_sync(0xffffffffu, l & 1);
    r[4] = __shfl_up_sync(0xffffffffu, l, 3, 8);
    r[5] = __shfl_down_sync(0xffffffffu, l, 2, 16);
    r[6] = __shfl_sync(0xffffffffu, l, 5 + l, 8);
    r[7] = __shfl_xor_sync(0xffffffffu, l, 4, 4);
    for (int k = 0; k < 8; k++)
        out[t * 8 + k] = r[k];
}

extern "C" void emu_selftest(int which, void *outp, const float *in, int threads,
                             size_t smem) {
    float *out = (float *)outp;
    switch (which) {
    case 0:
        divergent_barrier_kernel<<<1, threads, smem, cuda_stream()>>>(out);
        break;
    case 1:
        exit_then_barrier_kernel<<<1, threads, smem, cuda_stream()>>>(out);
        break;
    case 2:
        shfl_after_exit_kernel<<<1, threads, smem, cuda_stream()>>>(out);
        break;
    case 3:
        shfl_outside_mask_kernel<<<1, threads, smem, cuda_stream()>>>(out);
        break;
    case 4:
        smem_overflow_kernel<<<1, threads, smem, cuda_stream()>>>(out);
        break;
    case 5:
        missing_barrier_kernel<<<1, threads, smem, cuda_stream()>>>(out, in);
        break;
    case 6:
        primitives_kernel<<<1, threads, smem, cuda_stream()>>>((int *)outp);
        break;
    case 7: /* 6 with more than 48 KB of dynamic shared memory, opted in */
        CUDA_CHECK(cudaFuncSetAttribute(
            primitives_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        primitives_kernel<<<1, threads, smem, cuda_stream()>>>((int *)outp);
        break;
    }
    CUDA_CHECK_LAUNCH();
}
