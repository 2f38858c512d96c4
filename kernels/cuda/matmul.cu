/* kernels/cuda/matmul.cu — linear layer on cuBLAS and cuBLASLt.
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
 *
 * Precision (ops.h, set_matmul_dtype): output, alpha/beta and accumulation
 * are always fp32 (CUBLAS_COMPUTE_32F; with fp32 operands that also means
 * no TF32). OPS_F32: the operands are the fp32 arguments. OPS_BF16: the two
 * operands of each product are first converted to bf16 (cast.cu, round to
 * nearest even) into the scratch buffer, and the gemm takes them as
 * CUDA_R_16BF (tensor cores), writing fp32. The bias, dbias and everything
 * outside the products stay fp32.
 *
 * Forward with a bias: one cuBLASLt matmul with the BIAS epilogue (fp32
 * bias added to the fp32 result in the gemm's own epilogue, beta = 0) when
 * every pointer is 16-byte aligned, every row a multiple of 16 bytes and
 * the heuristic offers an algorithm; otherwise (odd shapes, unaligned
 * views, or no cuBLASLt handle) the bias is written into out by a kernel
 * and a cublasGemmEx runs with beta = 1, as the CPU reference does. The
 * cuBLASLt workspace (LT_WORKSPACE) comes from the scratch buffer after the
 * bf16 copies: [w bf16 | inp bf16 | workspace], each part 256-byte aligned.
 * The descriptors are built and the heuristic asked on every call (host
 * work of some microseconds, overlapping the queued GPU work).
 * Forward without a bias, and backward: cublasGemmEx.
 *
 * Launch shapes:
 *   bias fill:  1-D grid-stride over N*OC, 256 threads.
 *   dbias:      deterministic two-stage column sum: grid (ceil(OC/32),
 *               ceil(N/MM_ROWS)), block (32, 8) writes per-chunk partials to
 *               scratch (fixed-order shared-memory combine), then one thread
 *               per column adds the chunks in order into dbias.
 *   bf16 conversion: cast.cu.
 */
#include <stdint.h>

#include <cublasLt.h>

#include "cuda_internal.h"

#define MM_ROWS 128 /* rows per dbias partial chunk */
/* cuBLASLt workspace (split-K and the like); NVIDIA's recommendation for
 * Hopper, more than earlier GPUs use */
#define LT_WORKSPACE ((size_t)32 << 20)

namespace {

enum ops_dtype g_dtype = OPS_F32; /* backend-wide (ops.h) */

size_t align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

/* The largest power of two (at most 256) dividing the address. */
uint32_t alignment(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t k = 1;
    while (k < 256 && (a & k) == 0) k <<= 1;
    return k;
}

/* One cuBLASLt handle for the process, created on first use (NULL if that
 * fails: the forward then takes the cublasGemmEx path). The stream is
 * passed to each cublasLtMatmul. */
cublasLtHandle_t lt_handle(void) {
    static const cublasLtHandle_t h = [] {
        cublasLtHandle_t x = nullptr;
        if (cublasLtCreate(&x) != CUBLAS_STATUS_SUCCESS) x = nullptr;
        return x;
    }();
    return h;
}

} // namespace

extern "C" int cuda_set_matmul_dtype(enum ops_dtype dt) {
    if (dt == OPS_BF16) {
        /* bf16 gemms (tensor cores) need compute capability 8.0 or newer */
        int dev = 0, major = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) !=
                cudaSuccess) {
            (void)cudaGetLastError(); /* a query, not an op error */
            return -1;
        }
        if (major < 8) return -1;
    } else if (dt != OPS_F32) {
        return -1;
    }
    g_dtype = dt;
    return 0;
}

extern "C" enum ops_dtype cuda_matmul_dtype(void) { return g_dtype; }

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

/* C (fp32) = op(A) op(B) + beta C, A and B of type ab (fp32 or bf16),
 * fp32 accumulation. */
static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                 int k, const void *A, int lda, const void *B, int ldb,
                 cudaDataType_t ab, float beta, float *Cm, int ldc) {
    const float alpha = 1.0f;
    CUBLAS_CHECK(cublasGemmEx(cuda_cublas(), ta, tb, m, n, k, &alpha, A, ab, lda,
                              B, ab, ldb, &beta, Cm, CUDA_R_32F, ldc,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* Whether the cuBLASLt bias path may be tried: 16-byte aligned pointers
 * and rows (what its bias epilogue kernels are known to need). The
 * operands are checked by the caller (bf16 copies are 256-byte aligned). */
static bool lt_fits(const float *out, const float *bias, int C, int OC,
                    size_t esize) {
    return alignment(out) >= 16 && alignment(bias) >= 16 &&
           (size_t)C * esize % 16 == 0 && (size_t)OC * sizeof(float) % 16 == 0;
}

/* out^T (OC x N) = A^T B + bias, A the w-view (C x OC, ld C), B the
 * inp-view (C x N, ld C), both of type ab; bias fp32 broadcast along the
 * columns (one column per token). Queues the matmul and returns true, or
 * returns false having queued nothing (no handle, descriptors not created,
 * or no algorithm for this shape and alignment): the caller falls back. */
static bool lt_matmul_bias(float *out, const void *A, const void *B,
                           cudaDataType_t ab, const float *bias, int N, int C,
                           int OC, void *ws, size_t ws_bytes) {
    cublasLtHandle_t h = lt_handle();
    if (!h) return false;
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    bool queued = false;
    const int32_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    /* the bias takes D's type (fp32) by default: not set explicitly, as some
     * cuBLASLt versions accept CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE only where
     * it differs (fp8) */
    const uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
    const void *bias_ptr = bias;
    const uint64_t ws_max = ws_bytes;
    const uint32_t al_a = alignment(A), al_b = alignment(B), al_d = alignment(out);
    cublasLtMatmulHeuristicResult_t res = {};
    int nres = 0;
    const float alpha = 1.0f, beta = 0.0f;
#define LT_OK(call) ((call) == CUBLAS_STATUS_SUCCESS)
    if (!LT_OK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F)) ||
        !LT_OK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta,
                                              sizeof ta)) ||
        !LT_OK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb,
                                              sizeof tb)) ||
        !LT_OK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                              sizeof epi)) ||
        !LT_OK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                              &bias_ptr, sizeof bias_ptr)) ||
        !LT_OK(cublasLtMatrixLayoutCreate(&la, ab, C, OC, C)) ||
        !LT_OK(cublasLtMatrixLayoutCreate(&lb, ab, C, N, C)) ||
        !LT_OK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, OC, N, OC)) ||
        !LT_OK(cublasLtMatmulPreferenceCreate(&pref)) ||
        !LT_OK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_max, sizeof ws_max)) ||
        !LT_OK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a)) ||
        !LT_OK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b)) ||
        !LT_OK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d)) ||
        !LT_OK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d)) ||
        !LT_OK(cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, ld, ld, pref, 1, &res,
                                              &nres)) ||
        nres < 1 || res.state != CUBLAS_STATUS_SUCCESS || res.workspaceSize > ws_bytes)
        goto done;
#undef LT_OK
    /* from here on a failure is an error, not a reason to fall back */
    CUBLAS_CHECK(cublasLtMatmul(h, desc, &alpha, A, la, B, lb, &beta, out, ld, out,
                                ld, &res.algo, ws, ws_bytes, cuda_stream()));
    queued = true;
done:
    /* host-side descriptors: free to go once the matmul is queued */
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (desc) cublasLtMatmulDescDestroy(desc);
    return queued;
}

extern "C" void cuda_matmul_fwd(float *out, const float *inp, const float *w,
                                const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (C <= 0) { /* empty product: out = bias (or 0) */
        if (bias) {
            bias_fill_kernel<<<cuda_grid_1d((size_t)N * OC, 256), 256, 0,
                               cuda_stream()>>>(out, bias, N, OC);
            CUDA_CHECK_LAUNCH();
        } else {
            CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)N * OC * sizeof(float),
                                       cuda_stream()));
        }
        return;
    }
    const bool bf16 = g_dtype == OPS_BF16;
    const cudaDataType_t ab = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    const size_t esize = bf16 ? sizeof(__nv_bfloat16) : sizeof(float);
    /* scratch: [w bf16 | inp bf16 | cuBLASLt workspace] */
    const size_t w_bytes = bf16 ? align256((size_t)OC * C * esize) : 0;
    const size_t i_bytes = bf16 ? align256((size_t)N * C * esize) : 0;
    const bool operands_aligned =
        bf16 || (alignment(w) >= 16 && alignment(inp) >= 16);
    const bool lt = bias && operands_aligned && lt_fits(out, bias, C, OC, esize);
    const size_t ws_bytes = lt ? LT_WORKSPACE : 0;
    char *s = nullptr;
    if (w_bytes + i_bytes + ws_bytes) {
        s = (char *)cuda_scratch(w_bytes + i_bytes + ws_bytes);
        if (!s) return; /* recorded */
    }
    const void *A = w, *B = inp;
    if (bf16) {
        cuda_f32_to_bf16((__nv_bfloat16 *)s, w, (size_t)OC * C);
        cuda_f32_to_bf16((__nv_bfloat16 *)(s + w_bytes), inp, (size_t)N * C);
        A = s;
        B = s + w_bytes;
    }
    if (lt && lt_matmul_bias(out, A, B, ab, bias, N, C, OC, s + w_bytes + i_bytes,
                             ws_bytes))
        return;
    float beta = 0.0f;
    if (bias) {
        bias_fill_kernel<<<cuda_grid_1d((size_t)N * OC, 256), 256, 0,
                           cuda_stream()>>>(out, bias, N, OC);
        CUDA_CHECK_LAUNCH();
        beta = 1.0f;
    }
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, A, C, B, C, ab, beta, out, OC);
}

extern "C" void cuda_matmul_bwd(float *dinp, float *dw, float *dbias,
                                const float *dout, const float *inp,
                                const float *w, int N, int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    const void *gd = dout, *gi = inp, *gw = w; /* the gemm operands */
    cudaDataType_t ab = CUDA_R_32F;
    if (g_dtype == OPS_BF16 && (dinp || dw)) {
        /* scratch: [dout bf16 | w bf16 (for dinp) | inp bf16 (for dw)] */
        const size_t esize = sizeof(__nv_bfloat16);
        const size_t d_bytes = align256((size_t)N * OC * esize);
        const size_t w_bytes = dinp ? align256((size_t)OC * C * esize) : 0;
        const size_t i_bytes = dw ? align256((size_t)N * C * esize) : 0;
        char *s = (char *)cuda_scratch(d_bytes + w_bytes + i_bytes);
        if (!s) return; /* recorded */
        cuda_f32_to_bf16((__nv_bfloat16 *)s, dout, (size_t)N * OC);
        gd = s;
        if (dinp) {
            cuda_f32_to_bf16((__nv_bfloat16 *)(s + d_bytes), w, (size_t)OC * C);
            gw = s + d_bytes;
        }
        if (dw) {
            cuda_f32_to_bf16((__nv_bfloat16 *)(s + d_bytes + w_bytes), inp,
                             (size_t)N * C);
            gi = s + d_bytes + w_bytes;
        }
        ab = CUDA_R_16BF;
    }
    if (dinp) gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, gw, C, gd, OC, ab, 1.0f, dinp, C);
    if (dw) gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, gi, C, gd, OC, ab, 1.0f, dw, C);
    if (dbias) {
        /* fp32 column sum of the unrounded dout. The scratch may be reused:
         * the gemms above are queued before on the one stream. */
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
