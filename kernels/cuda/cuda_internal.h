/* kernels/cuda/cuda_internal.h — declarations shared by the CUDA backend files
 * (one .cu file per op; ops_cuda.cu gathers them into the `struct ops` table).
 *
 * Included only by .cu files (compiled as C++ by nvcc). The op entry points
 * have C linkage so the table holds plain C function pointers.
 */
#ifndef LLMPI_CUDA_INTERNAL_H
#define LLMPI_CUDA_INTERNAL_H

#include <math.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>

#include "ops.h"
#include "ops_cuda.h"

/* ---- backend state (ops_cuda.cu) ------------------------------------------ */
cudaStream_t cuda_stream(void);     /* the backend's one stream */
cublasHandle_t cuda_cublas(void);   /* the backend's one cuBLAS handle, on it */
/* Grow-only device scratch buffer, reused by ops that need temporaries
 * (partial sums, attention's D = rowsum(dO*O)). Valid until the next cuda_scratch call; safe
 * to reuse across ops because everything runs on one stream. NULL on failure
 * (the error is recorded). */
void *cuda_scratch(size_t bytes);
/* dst[i] = bf16(src[i]) rounded to nearest even, queued on the stream
 * (cast.cu; the operand conversion of the bf16 matmuls). */
void cuda_f32_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n);

/* ---- error recording (ops_cuda.cu) ----------------------------------------
 * Keeps the first error only; never exits. */
void cuda_record_error(const char *what, const char *expr, const char *file,
                       int line);
const char *cuda_cublas_status_string(cublasStatus_t s);

#define CUDA_CHECK(call)                                                       \
    do {                                                                       \
        cudaError_t cuda_check_err_ = (call);                                  \
        if (cuda_check_err_ != cudaSuccess)                                    \
            cuda_record_error(cudaGetErrorString(cuda_check_err_), #call,      \
                              __FILE__, __LINE__);                             \
    } while (0)

#define CUBLAS_CHECK(call)                                                     \
    do {                                                                       \
        cublasStatus_t cublas_check_st_ = (call);                              \
        if (cublas_check_st_ != CUBLAS_STATUS_SUCCESS)                         \
            cuda_record_error(cuda_cublas_status_string(cublas_check_st_),     \
                              #call, __FILE__, __LINE__);                      \
    } while (0)

/* after every kernel launch: catches bad launch configurations */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

/* ---- launch helpers ------------------------------------------------------- */
static inline unsigned cuda_grid_1d(size_t n, unsigned threads) {
    size_t blocks = (n + threads - 1) / threads;
    if (blocks < 1) blocks = 1;
    if (blocks > 65535u * 16u) blocks = 65535u * 16u; /* grid-stride covers the rest */
    return (unsigned)blocks;
}

/* ---- device helpers ------------------------------------------------------- */
#ifdef __CUDACC__
__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ __forceinline__ double warp_sum_d(double x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
/* Block-wide reductions; blockDim.x must be a multiple of 32 (<= 1024).
 * `sh` is shared scratch of >= 32 elements. Every thread gets the result.
 * Fixed reduction tree, so results are deterministic for a given blockDim. */
__device__ __forceinline__ float block_sum(float x, float *sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    int nw = blockDim.x >> 5;
    x = warp_sum(x);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[wid] = x;
    __syncthreads();
    x = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(x);
}
__device__ __forceinline__ float block_max(float x, float *sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    int nw = blockDim.x >> 5;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0) sh[wid] = x;
    __syncthreads();
    x = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(x);
}
__device__ __forceinline__ double block_sum_d(double x, double *sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    int nw = blockDim.x >> 5;
    x = warp_sum_d(x);
    __syncthreads();
    if (lane == 0) sh[wid] = x;
    __syncthreads();
    x = lane < nw ? sh[lane] : 0.0;
    return warp_sum_d(x);
}
#endif

/* ---- the ops (C linkage; signatures exactly as struct ops) ---------------- */
#ifdef __cplusplus
extern "C" {
#endif

void *cuda_alloc(size_t bytes);
void cuda_free(void *p);
void cuda_zero(void *p, size_t bytes);
void cuda_upload(void *dst, const void *host_src, size_t bytes);
void cuda_download(void *host_dst, const void *src, size_t bytes);
void cuda_copy(void *dst, const void *src, size_t bytes);
void cuda_sync(void);

void cuda_embedding_fwd(float *out, const int32_t *tok, const float *wte,
                        const float *wpe, int B, int T, int C, int pos0,
                        int vocab_start, int V);
void cuda_embedding_bwd(float *dwte, float *dwpe, const float *dout,
                        const int32_t *tok, int B, int T, int C, int pos0,
                        int vocab_start, int V);
void cuda_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                        const float *w, const float *b, int N, int C);
void cuda_layernorm_bwd(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean,
                        const float *rstd, int N, int C);
void cuda_matmul_fwd(float *out, const float *inp, const float *w,
                     const float *bias, int N, int C, int OC);
void cuda_matmul_bwd(float *dinp, float *dw, float *dbias, const float *dout,
                     const float *inp, const float *w, int N, int C, int OC);
int cuda_set_matmul_dtype(enum ops_dtype dt);
enum ops_dtype cuda_matmul_dtype(void);
void cuda_attention_fwd(float *out, float *lse, const float *q,
                        const float *k, const float *v, int B, int Tq, int Tk,
                        int NH, int HS, int q_stride, int kv_stride);
void cuda_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                        const float *out, const float *lse, const float *q,
                        const float *k, const float *v, int B, int Tq, int Tk,
                        int NH, int HS, int q_stride, int kv_stride);
void cuda_attention_paged_fwd(float *out, const float *q, const float *kv,
                              const int32_t *seqs, const int32_t *tables, int n_seqs,
                              int total_q_rows, int max_blocks, int block_size, int NH,
                              int HS, int q_stride, int kv_stride, int v_offset);
void cuda_gelu_fwd(float *out, const float *inp, size_t n);
void cuda_gelu_bwd(float *dinp, const float *dout, const float *inp, size_t n);
void cuda_residual_fwd(float *out, const float *a, const float *b, size_t n);
void cuda_residual_bwd(float *da, float *db, const float *dout, size_t n);
void cuda_xent_fwd(float *loss, const float *logits, const int32_t *target,
                   int N, int V);
void cuda_xent_bwd_inplace(float *logits, const int32_t *target,
                           const float *dloss, int N, int V);
void cuda_xent_shard_stats(float *rowmax, float *rowsumexp,
                           float *target_logit, const float *logits,
                           const int32_t *target, int N, int V,
                           int vocab_start);
void cuda_xent_shard_rescale(float *sumexp, const float *localmax,
                             const float *globalmax, int N);
void cuda_xent_shard_loss(float *loss, const float *globalmax,
                          const float *globalsumexp, const float *target_logit,
                          const int32_t *target, int N);
void cuda_xent_shard_bwd_inplace(float *logits, const int32_t *target,
                                 const float *dloss, const float *globalmax,
                                 const float *globalsumexp, int N, int V,
                                 int vocab_start);
void cuda_sgd_update(float *p, const float *g, float *m, size_t n,
                     const struct ops_decay_run *runs, int nruns, float lr,
                     float momentum);
void cuda_adam_update(float *p, const float *g, float *m, float *v, size_t n,
                      const struct ops_decay_run *runs, int nruns, float lr, float b1,
                      float b2, float eps, int t, int decoupled);
double cuda_sumsq(const float *x, size_t n);
void cuda_scale(float *x, size_t n, float s);

#ifdef __cplusplus
}
#endif

#endif
