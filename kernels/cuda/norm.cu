/* kernels/cuda/norm.cu — pieces of global-norm gradient clipping.
 *   sumsq(x) = sum_i x_i^2 in double;  scale: x *= s.
 *
 * Launch shapes:
 *   sumsq: stage 1, grid G = min(ceil(n/256), 1024) blocks of 256 threads,
 *          grid-stride; each thread accumulates (double)x^2, then a block
 *          reduction in double writes partial[block] to scratch. Stage 2, one
 *          block of 1024 threads adds the G partials in a fixed tree into
 *          partial[G]. That double is copied to the host (cudaMemcpyAsync on
 *          the backend stream + stream sync): sumsq is a synchronisation point.
 *          Deterministic for a given n. Returns NaN if the copy failed.
 *   scale: 1-D grid-stride, 256 threads.
 */
#include "cuda_internal.h"

#define SUMSQ_THREADS 256
#define SUMSQ_MAX_BLOCKS 1024

__global__ void sumsq_partial_kernel(double *partial, const float *x,
                                     size_t n) {
    __shared__ double sh[32];
    double s = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double v = (double)x[i];
        s += v * v;
    }
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sumsq_final_kernel(double *partial, int nblocks) {
    __shared__ double sh[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < nblocks; i += blockDim.x) s += partial[i];
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) partial[nblocks] = s;
}

__global__ void scale_kernel(float *x, size_t n, float s) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

extern "C" double cuda_sumsq(const float *x, size_t n) {
    if (n == 0) return 0.0;
    size_t g = (n + SUMSQ_THREADS - 1) / SUMSQ_THREADS;
    int G = g > SUMSQ_MAX_BLOCKS ? SUMSQ_MAX_BLOCKS : (int)g;
    double *partial = (double *)cuda_scratch((size_t)(G + 1) * sizeof(double));
    if (!partial) return NAN;
    sumsq_partial_kernel<<<G, SUMSQ_THREADS, 0, cuda_stream()>>>(partial, x, n);
    CUDA_CHECK_LAUNCH();
    sumsq_final_kernel<<<1, 1024, 0, cuda_stream()>>>(partial, G);
    CUDA_CHECK_LAUNCH();
    double result = NAN;
    cudaError_t e = cudaMemcpyAsync(&result, partial + G, sizeof(double),
                                    cudaMemcpyDeviceToHost, cuda_stream());
    if (e == cudaSuccess) e = cudaStreamSynchronize(cuda_stream());
    if (e != cudaSuccess) {
        cuda_record_error(cudaGetErrorString(e), "sumsq copy-back", __FILE__,
                          __LINE__);
        return NAN;
    }
    return result;
}

extern "C" void cuda_scale(float *x, size_t n, float s) {
    if (n == 0) return;
    scale_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream()>>>(x, n, s);
    CUDA_CHECK_LAUNCH();
}
