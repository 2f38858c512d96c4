/* kernels/cuda/matmul.cu — linear layer on cuBLAS.
 *
 *   out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC]
 * Backward (accumulating):
 *   dinp[N,C]  += dout[N,OC] @ w[OC,C]
 *   dw[OC,C]   += dout^T[OC,N] @ inp[N,C]
 *   dbias[OC]  += sum_n dout[n,:]
 *
 * cuBLAS is column-major; a row-major [R,K] matrix is the column-major
 * [K,R] matrix with ld K, so every product is computed as its transpose:
 *   out^T  (OC x N) = w^T-view^T * inp-view      gemm(T, N, OC, N, C)
 *   dinp^T (C x N)  = w-view * dout-view         gemm(N, N, C, N, OC), beta 1
 *   dw^T   (C x OC) = inp-view * dout-view^T     gemm(N, T, C, OC, N), beta 1
 * All gemms are cublasGemmEx, fp32 in/out, CUBLAS_COMPUTE_32F (no TF32).
 * The bias is written into out first by a kernel and the gemm runs with
 * beta = 1 (as the CPU reference does).
 *
 * Launch shapes:
 *   bias fill:  1-D grid-stride over N*OC, 256 threads.
 *   dbias:      deterministic two-stage column sum: grid (ceil(OC/32),
 *               ceil(N/MM_ROWS)), block (32, 8) writes per-chunk partials to
 *               scratch (fixed-order shared-memory combine), then one thread
 *               per column adds the chunks in order into dbias.
 */
#include "cuda_internal.h"

#define MM_ROWS 128 /* rows per dbias partial chunk */

__global__ void bias_fill_kernel(float *out, const float *bias, int N, int OC) {
    size_t total = (size_t)N * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = bias[i % OC];
}

__global__ void colsum_partial_kernel(float *partial, const float *x, int N,
                                      int C) {
    __shared__ float sh[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * MM_ROWS;
    int r1 = min(N, r0 + MM_ROWS);
    float acc = 0.0f;
    if (c < C)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) acc += x[(size_t)r * C + c];
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t = 0.0f;
        for (int y = 0; y < 8; y++) t += sh[y][threadIdx.x];
        partial[(size_t)blockIdx.y * C + c] = t;
    }
}

__global__ void colsum_final_kernel(float *out, const float *partial,
                                    int nchunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float t = 0.0f;
    for (int k = 0; k < nchunks; k++) t += partial[(size_t)k * C + c];
    out[c] += t;
}

static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                 int k, const float *A, int lda, const float *B, int ldb,
                 float beta, float *Cm, int ldc) {
    const float alpha = 1.0f;
    CUBLAS_CHECK(cublasGemmEx(cuda_cublas(), ta, tb, m, n, k, &alpha, A,
                              CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &beta, Cm,
                              CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
}

extern "C" void cuda_matmul_fwd(float *out, const float *inp, const float *w,
                                const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    float beta = 0.0f;
    if (bias) {
        bias_fill_kernel<<<cuda_grid_1d((size_t)N * OC, 256), 256, 0,
                           cuda_stream()>>>(out, bias, N, OC);
        CUDA_CHECK_LAUNCH();
        beta = 1.0f;
    }
    if (C <= 0) { /* empty product: out = bias (or 0) */
        if (!bias) CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)N * OC * sizeof(float),
                                              cuda_stream()));
        return;
    }
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, w, C, inp, C, beta, out, OC);
}

extern "C" void cuda_matmul_bwd(float *dinp, float *dw, float *dbias,
                                const float *dout, const float *inp,
                                const float *w, int N, int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    if (dinp) gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, w, C, dout, OC, 1.0f, dinp, C);
    if (dw) gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, inp, C, dout, OC, 1.0f, dw, C);
    if (dbias) {
        int nchunks = (N + MM_ROWS - 1) / MM_ROWS;
        float *partial = (float *)cuda_scratch((size_t)nchunks * OC * sizeof(float));
        if (!partial) return;
        dim3 grid((OC + 31) / 32, nchunks), block(32, 8);
        colsum_partial_kernel<<<grid, block, 0, cuda_stream()>>>(partial, dout, N, OC);
        CUDA_CHECK_LAUNCH();
        colsum_final_kernel<<<(OC + 255) / 256, 256, 0, cuda_stream()>>>(
            dbias, partial, nchunks, OC);
        CUDA_CHECK_LAUNCH();
    }
}
