/* kernels/cpu/attention.c — causal multi-head self-attention.
 *
 * Per batch b and head h (Q: Tq x HS, K, V: Tk x HS, off = Tk - Tq so query
 * row i sits at absolute position off + i):
 *   S = Q K^T / sqrt(HS);  P = softmax(S) with S[i,j] = -inf for j > off + i
 *   O = P V
 * Backward, given P:
 *   dP = dO V^T;  dV += P^T dO
 *   dS[i,j] = P[i,j] (dP[i,j] - sum_j' P[i,j'] dP[i,j']) / sqrt(HS)
 *   dQ += dS K;  dK += dS^T Q
 * Each (b, h) pair is independent and touches its own slices of q/k/v and
 * their gradients, so threads take whole pairs; the products inside a pair
 * are sgemm calls, which OpenBLAS (OpenMP build) runs single-threaded when
 * called inside a parallel region. P is materialised (Tq x Tk per pair): on
 * the CPU that memory is cheap next to the weights.
 *
 * Causal skipping: query rows go in blocks of ROW_BLOCK; a block whose last
 * row sits at absolute position off + i1 - 1 sees only keys [0, off + i1),
 * so every product of the block is limited to those keys. For Tq = Tk = 256
 * this computes 62.5% of the full T x T work instead of 100%. Masked entries
 * of P are written as 0 for the whole row.
 */
#include <math.h>
#include <stdlib.h>
#include <cblas.h>

#include "cpu_internal.h"

#define ROW_BLOCK 64

/* Keys visible to the query rows [i0, i1): [0, kend). */
static int visible_keys(int off, int i1) { return off + i1; }

void cpu_attention_fwd(float *out, float *probs, const float *q, const float *k,
                       const float *v, int B, int Tq, int Tk, int NH, int HS,
                       int q_stride, int kv_stride) {
    const float scale = 1.0f / sqrtf((float)HS);
    const int off = Tk - Tq;
    const int out_stride = NH * HS;
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *qb = q + (size_t)b * Tq * q_stride + h * HS;
            const float *kb = k + (size_t)b * Tk * kv_stride + h * HS;
            const float *vb = v + (size_t)b * Tk * kv_stride + h * HS;
            float *P = probs + ((size_t)b * NH + h) * Tq * Tk;
            float *ob = out + (size_t)b * Tq * out_stride + h * HS;
            for (int i0 = 0; i0 < Tq; i0 += ROW_BLOCK) {
                int i1 = i0 + ROW_BLOCK < Tq ? i0 + ROW_BLOCK : Tq;
                int kend = visible_keys(off, i1);
                float *Pb = P + (size_t)i0 * Tk;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, i1 - i0, kend, HS,
                            scale, qb + (size_t)i0 * q_stride, q_stride, kb, kv_stride,
                            0.0f, Pb, Tk);
                for (int i = i0; i < i1; i++) {
                    float *row = P + (size_t)i * Tk;
                    int last = off + i; /* keys 0..last are visible */
                    float mx = row[0];
                    for (int j = 1; j <= last; j++)
                        mx = row[j] > mx ? row[j] : mx;
                    float sum = 0.0f;
                    for (int j = 0; j <= last; j++) {
                        row[j] = expf(row[j] - mx);
                        sum += row[j];
                    }
                    float inv = 1.0f / sum;
                    for (int j = 0; j <= last; j++)
                        row[j] *= inv;
                    for (int j = last + 1; j < Tk; j++)
                        row[j] = 0.0f;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, i1 - i0, HS, kend,
                            1.0f, Pb, Tk, vb, kv_stride, 0.0f,
                            ob + (size_t)i0 * out_stride, out_stride);
            }
        }
    }
}

void cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                       const float *probs, const float *q, const float *k, const float *v,
                       int B, int Tq, int Tk, int NH, int HS, int q_stride,
                       int kv_stride) {
    const float scale = 1.0f / sqrtf((float)HS);
    const int off = Tk - Tq;
    const int out_stride = NH * HS;
    const int block = Tq < ROW_BLOCK ? Tq : ROW_BLOCK;
#pragma omp parallel
    {
        float *dS = malloc((size_t)block * Tk * sizeof(float));
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                size_t qo = (size_t)b * Tq * q_stride + h * HS;
                size_t ko = (size_t)b * Tk * kv_stride + h * HS;
                const float *P = probs + ((size_t)b * NH + h) * Tq * Tk;
                const float *dob = dout + (size_t)b * Tq * out_stride + h * HS;
                for (int i0 = 0; i0 < Tq; i0 += ROW_BLOCK) {
                    int i1 = i0 + ROW_BLOCK < Tq ? i0 + ROW_BLOCK : Tq;
                    int rows = i1 - i0, kend = visible_keys(off, i1);
                    const float *Pb = P + (size_t)i0 * Tk;
                    const float *dob_i = dob + (size_t)i0 * out_stride;
                    const float *qb_i = q + qo + (size_t)i0 * q_stride;
                    /* dP = dO V^T */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kend, HS,
                                1.0f, dob_i, out_stride, v + ko, kv_stride, 0.0f, dS,
                                kend);
                    /* dV += P^T dO */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kend, HS, rows,
                                1.0f, Pb, Tk, dob_i, out_stride, 1.0f, dv + ko,
                                kv_stride);
                    /* softmax backward, in place: dS = P (dP - <P, dP>) * scale */
                    for (int i = 0; i < rows; i++) {
                        const float *p = Pb + (size_t)i * Tk;
                        float *d = dS + (size_t)i * kend;
                        float dot = 0.0f;
                        for (int j = 0; j < kend; j++)
                            dot += p[j] * d[j];
                        for (int j = 0; j < kend; j++)
                            d[j] = p[j] * (d[j] - dot) * scale;
                    }
                    /* dQ += dS K;  dK += dS^T Q */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, kend,
                                1.0f, dS, kend, k + ko, kv_stride, 1.0f,
                                dq + qo + (size_t)i0 * q_stride, q_stride);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kend, HS, rows,
                                1.0f, dS, kend, qb_i, q_stride, 1.0f, dk + ko, kv_stride);
                }
            }
        }
        free(dS);
    }
}
