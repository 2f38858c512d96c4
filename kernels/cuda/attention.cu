/* kernels/cuda/attention.cu — causal multi-head self-attention (first version:
 * cuBLAS batched gemms + softmax kernels, probs materialised).
 *
 * Per batch b and head h (Q: Tq x HS, K, V: Tk x HS, off = Tk - Tq so query
 * row i sits at absolute position off + i):
 *   S = Q K^T / sqrt(HS);  P = softmax(S) with S[i,j] = -inf for j > off + i
 *   O = P V                                  (P saved in probs[B,NH,Tq,Tk])
 * Backward, given P:
 *   dP = dO V^T;  dV += P^T dO
 *   dS[i,j] = P[i,j] (dP[i,j] - sum_j' P[i,j'] dP[i,j']) / sqrt(HS)
 *   dQ += dS K;  dK += dS^T Q
 *
 * Layout: q row (b,i) of head h at q + (b*Tq+i)*q_stride + h*HS, k/v rows at
 * + (b*Tk+j)*kv_stride + h*HS, out/dout rows at + (b*Tq+i)*NH*HS + h*HS. The
 * offset of (b, h) is not one stride apart in b*NH+h, so the host loops over
 * the NH heads and each product is one cublasGemmStridedBatchedEx over the B
 * batch rows (fp32, CUBLAS_COMPUTE_32F), written column-major as transposes:
 *   S^T  (Tk x Tq) = K-view^T Q-view          gemm(T, N, Tk, Tq, HS), alpha 1/sqrt(HS)
 *   O^T  (HS x Tq) = V-view P-view            gemm(N, N, HS, Tq, Tk)
 *   dP^T (Tk x Tq) = V-view^T dO-view         gemm(T, N, Tk, Tq, HS)
 *   dV^T (HS x Tk) += dO-view P-view^T        gemm(N, T, HS, Tk, Tq)
 *   dQ^T (HS x Tq) += K-view dS-view          gemm(N, N, HS, Tq, Tk)
 *   dK^T (HS x Tk) += Q-view dS-view^T        gemm(N, T, HS, Tk, Tq)
 * The masked upper triangle is computed by the score gemm and then zeroed.
 *
 * Launch shapes:
 *   softmax fwd: one warp per row of P, all B*NH*Tq rows in one launch,
 *                8 warps per block; max / sum by warp shuffles.
 *   softmax bwd: one warp per row of dS (B*Tq rows of the current head,
 *                dS in a [B,Tq,Tk] scratch reused head after head).
 * dq/dk/dv may be NULL to skip that gradient (an extension of ops.h).
 */
#include "cuda_internal.h"

/* rows r = (b*NH + h)*Tq + i of P, in place: scaled scores -> probabilities */
__global__ void attn_softmax_fwd_kernel(float *P, long long rows, int Tq,
                                        int Tk) {
    long long r = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    int i = (int)(r % Tq);
    int last = Tk - Tq + i; /* keys 0..last are visible */
    float *row = P + r * Tk;
    float mx = -INFINITY;
    for (int j = lane; j <= last; j += 32) mx = fmaxf(mx, row[j]);
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int j = lane; j <= last; j += 32) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    float inv = 1.0f / warp_sum(sum);
    for (int j = lane; j < Tk; j += 32) row[j] = j <= last ? row[j] * inv : 0.0f;
}

/* dS rows (b, i) of one head h: dS = P (dP - <P, dP>) * scale, in place */
__global__ void attn_softmax_bwd_kernel(float *dS, const float *probs, int B,
                                        int Tq, int Tk, int NH, int h,
                                        float scale) {
    long long r = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= (long long)B * Tq) return;
    long long b = r / Tq, i = r % Tq;
    const float *p = probs + ((b * NH + h) * Tq + i) * Tk;
    float *d = dS + r * Tk;
    float dot = 0.0f;
    for (int j = lane; j < Tk; j += 32) dot += p[j] * d[j];
    dot = warp_sum(dot);
    for (int j = lane; j < Tk; j += 32) d[j] = p[j] * (d[j] - dot) * scale;
}

static void gemm_sb(cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, float alpha, const float *A, int lda, long long sA,
                    const float *Bm, int ldb, long long sB, float beta,
                    float *Cm, int ldc, long long sC, int batch) {
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        cuda_cublas(), ta, tb, m, n, k, &alpha, A, CUDA_R_32F, lda, sA, Bm,
        CUDA_R_32F, ldb, sB, &beta, Cm, CUDA_R_32F, ldc, sC, batch,
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

extern "C" void cuda_attention_fwd(float *out, float *probs, const float *q,
                                   const float *k, const float *v, int B,
                                   int Tq, int Tk, int NH, int HS, int q_stride,
                                   int kv_stride) {
    if (B <= 0 || Tq <= 0 || Tk <= 0 || NH <= 0 || HS <= 0) return;
    const float scale = 1.0f / sqrtf((float)HS);
    const int os = NH * HS; /* out row stride */
    const long long sP = (long long)NH * Tq * Tk;
    for (int h = 0; h < NH; h++)
        gemm_sb(CUBLAS_OP_T, CUBLAS_OP_N, Tk, Tq, HS, scale, k + h * HS,
                kv_stride, (long long)Tk * kv_stride, q + h * HS, q_stride,
                (long long)Tq * q_stride, 0.0f, probs + (size_t)h * Tq * Tk, Tk,
                sP, B);
    long long rows = (long long)B * NH * Tq;
    attn_softmax_fwd_kernel<<<(unsigned)((rows + 7) / 8), 256, 0,
                              cuda_stream()>>>(probs, rows, Tq, Tk);
    CUDA_CHECK_LAUNCH();
    for (int h = 0; h < NH; h++)
        gemm_sb(CUBLAS_OP_N, CUBLAS_OP_N, HS, Tq, Tk, 1.0f, v + h * HS,
                kv_stride, (long long)Tk * kv_stride, probs + (size_t)h * Tq * Tk,
                Tk, sP, 0.0f, out + h * HS, os, (long long)Tq * os, B);
}

extern "C" void cuda_attention_bwd(float *dq, float *dk, float *dv,
                                   const float *dout, const float *probs,
                                   const float *q, const float *k,
                                   const float *v, int B, int Tq, int Tk,
                                   int NH, int HS, int q_stride,
                                   int kv_stride) {
    if (B <= 0 || Tq <= 0 || Tk <= 0 || NH <= 0 || HS <= 0) return;
    const float scale = 1.0f / sqrtf((float)HS);
    const int os = NH * HS;
    const long long sP = (long long)NH * Tq * Tk;   /* probs, per batch */
    const long long sS = (long long)Tq * Tk;        /* dS scratch, per batch */
    const long long sQ = (long long)Tq * q_stride;
    const long long sK = (long long)Tk * kv_stride;
    const long long sO = (long long)Tq * os;
    float *dS = NULL;
    if (dq || dk) {
        dS = (float *)cuda_scratch((size_t)B * Tq * Tk * sizeof(float));
        if (!dS) return;
    }
    const long long rows = (long long)B * Tq;
    for (int h = 0; h < NH; h++) {
        const float *Ph = probs + (size_t)h * Tq * Tk;
        const float *dOh = dout + h * HS;
        /* dV += P^T dO */
        if (dv)
            gemm_sb(CUBLAS_OP_N, CUBLAS_OP_T, HS, Tk, Tq, 1.0f, dOh, os, sO, Ph,
                    Tk, sP, 1.0f, dv + h * HS, kv_stride, sK, B);
        if (!dS) continue;
        /* dP = dO V^T */
        gemm_sb(CUBLAS_OP_T, CUBLAS_OP_N, Tk, Tq, HS, 1.0f, v + h * HS,
                kv_stride, sK, dOh, os, sO, 0.0f, dS, Tk, sS, B);
        attn_softmax_bwd_kernel<<<(unsigned)((rows + 7) / 8), 256, 0,
                                  cuda_stream()>>>(dS, probs, B, Tq, Tk, NH, h,
                                                   scale);
        CUDA_CHECK_LAUNCH();
        /* dQ += dS K;  dK += dS^T Q */
        if (dq)
            gemm_sb(CUBLAS_OP_N, CUBLAS_OP_N, HS, Tq, Tk, 1.0f, k + h * HS,
                    kv_stride, sK, dS, Tk, sS, 1.0f, dq + h * HS, q_stride, sQ,
                    B);
        if (dk)
            gemm_sb(CUBLAS_OP_N, CUBLAS_OP_T, HS, Tk, Tq, 1.0f, q + h * HS,
                    q_stride, sQ, dS, Tk, sS, 1.0f, dk + h * HS, kv_stride, sK,
                    B);
    }
}
