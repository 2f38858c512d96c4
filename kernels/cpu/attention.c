/* kernels/cpu/attention.c — causal multi-head self-attention, saving only the
 * per-row log-sum-exp (no [Tq, Tk] probabilities kept between the passes).
 *
 * Per batch b and head h (Q: Tq x HS, K, V: Tk x HS, off = Tk - Tq so query
 * row i sits at absolute position off + i):
 *   S = Q K^T / sqrt(HS);  S[i,j] = -inf for j > off + i
 *   lse_i = log sum_j exp(S[i,j]);  P = exp(S - lse);  O = P V
 * Backward recomputes P from lse, block by block:
 *   D_i = <dO_i, O_i>;  dP = dO V^T;  dV += P^T dO
 *   dS = P (dP - D) / sqrt(HS);  dQ += dS K;  dK += dS^T Q
 * (D_i = sum_j P[i,j] dP[i,j], read off the saved output instead of a pass
 * over the row.)
 *
 * Each (b, h) pair is independent and touches its own slices of q/k/v and
 * their gradients, so threads take whole pairs; the products inside a pair
 * are sgemm calls on blocks of query rows, which OpenBLAS (OpenMP build) runs
 * single-threaded when called inside a parallel region.
 *
 * Memory: each thread owns one scratch of ROW_BLOCK x Tk floats. The forward
 * holds one block's scores/probabilities in it; the backward splits it in two
 * (P and dP of a block of ROW_BLOCK / 2 rows), so nothing of size Tq x Tk
 * exists at any time and the saved state is lse [B, NH, Tq].
 *
 * exp is fastmath.h's vectorisable fast_expf (~2 ulp): with libm's scalar
 * expf the softmax took as long as the forward's two sgemms together.
 *
 * Causal skipping: a block of query rows [i0, i1) sees only keys
 * [0, off + i1), so every product of the block is limited to those keys. For
 * Tq = Tk = 256 and 64-row blocks this computes 62.5% of the full T x T work
 * instead of 100% (the backward's 32-row blocks skip a little more).
 */
#include <math.h>
#include <stdlib.h>
#include <cblas.h>

#include "cpu_internal.h"
#include "fastmath.h"

#define ROW_BLOCK 64
#define BWD_ROWS (ROW_BLOCK / 2) /* P and dP of one block share the scratch */

/* Keys visible to the query rows [i0, i1): [0, kend). */
static int visible_keys(int off, int i1) { return off + i1; }

void cpu_attention_fwd(float *out, float *lse, const float *q, const float *k,
                       const float *v, int B, int Tq, int Tk, int NH, int HS,
                       int q_stride, int kv_stride) {
    if (B <= 0 || Tq <= 0 || Tk <= 0 || NH <= 0 || HS <= 0) return;
    const float scale = 1.0f / sqrtf((float)HS);
    const int off = Tk - Tq;
    const int out_stride = NH * HS;
    const int block = Tq < ROW_BLOCK ? Tq : ROW_BLOCK;
#pragma omp parallel
    {
        float *S = malloc((size_t)block * Tk * sizeof(float));
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                const float *qb = q + (size_t)b * Tq * q_stride + h * HS;
                const float *kb = k + (size_t)b * Tk * kv_stride + h * HS;
                const float *vb = v + (size_t)b * Tk * kv_stride + h * HS;
                float *ob = out + (size_t)b * Tq * out_stride + h * HS;
                float *lb = lse ? lse + ((size_t)b * NH + h) * Tq : NULL;
                for (int i0 = 0; i0 < Tq; i0 += ROW_BLOCK) {
                    int i1 = i0 + ROW_BLOCK < Tq ? i0 + ROW_BLOCK : Tq;
                    int kend = visible_keys(off, i1);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, i1 - i0, kend,
                                HS, scale, qb + (size_t)i0 * q_stride, q_stride, kb,
                                kv_stride, 0.0f, S, kend);
                    for (int i = i0; i < i1; i++) {
                        float *row = S + (size_t)(i - i0) * kend;
                        int last = off + i; /* keys 0..last are visible */
                        float mx = row[0];
                        for (int j = 1; j <= last; j++)
                            mx = row[j] > mx ? row[j] : mx;
                        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                        for (int j = 0; j <= last; j++) {
                            row[j] = fast_expf(row[j] - mx);
                            sum += row[j];
                        }
                        float inv = 1.0f / sum;
                        for (int j = 0; j <= last; j++)
                            row[j] *= inv;
                        for (int j = last + 1; j < kend; j++)
                            row[j] = 0.0f;
                        if (lb) lb[i] = mx + logf(sum);
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, i1 - i0, HS,
                                kend, 1.0f, S, kend, vb, kv_stride, 0.0f,
                                ob + (size_t)i0 * out_stride, out_stride);
                }
            }
        }
        free(S);
    }
}

void cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                       const float *out, const float *lse, const float *q, const float *k,
                       const float *v, int B, int Tq, int Tk, int NH, int HS,
                       int q_stride, int kv_stride) {
    if (B <= 0 || Tq <= 0 || Tk <= 0 || NH <= 0 || HS <= 0) return;
    if (!dq && !dk && !dv) return;
    const float scale = 1.0f / sqrtf((float)HS);
    const int off = Tk - Tq;
    const int out_stride = NH * HS;
    const int block = Tq < BWD_ROWS ? Tq : BWD_ROWS;
#pragma omp parallel
    {
        /* P then dP -> dS, each block x Tk: 2 * BWD_ROWS = ROW_BLOCK rows */
        float *P = malloc((size_t)2 * block * Tk * sizeof(float));
        float *dS = P + (size_t)block * Tk;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                size_t qo = (size_t)b * Tq * q_stride + h * HS;
                size_t ko = (size_t)b * Tk * kv_stride + h * HS;
                size_t oo = (size_t)b * Tq * out_stride + h * HS;
                const float *lb = lse + ((size_t)b * NH + h) * Tq;
                for (int i0 = 0; i0 < Tq; i0 += BWD_ROWS) {
                    int i1 = i0 + BWD_ROWS < Tq ? i0 + BWD_ROWS : Tq;
                    int rows = i1 - i0, kend = visible_keys(off, i1);
                    const float *dob_i = dout + oo + (size_t)i0 * out_stride;
                    const float *ob_i = out + oo + (size_t)i0 * out_stride;
                    const float *qb_i = q + qo + (size_t)i0 * q_stride;
                    /* P = exp(Q K^T / sqrt(HS) - lse), 0 where masked */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kend, HS,
                                scale, qb_i, q_stride, k + ko, kv_stride, 0.0f, P, kend);
                    for (int i = 0; i < rows; i++) {
                        float *p = P + (size_t)i * kend;
                        int last = off + i0 + i;
                        float l = lb[i0 + i];
#pragma omp simd
                        for (int j = 0; j <= last; j++)
                            p[j] = fast_expf(p[j] - l);
                        for (int j = last + 1; j < kend; j++)
                            p[j] = 0.0f;
                    }
                    /* dV += P^T dO */
                    if (dv)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kend, HS,
                                    rows, 1.0f, P, kend, dob_i, out_stride, 1.0f, dv + ko,
                                    kv_stride);
                    if (!dq && !dk) continue;
                    /* dP = dO V^T */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kend, HS,
                                1.0f, dob_i, out_stride, v + ko, kv_stride, 0.0f, dS,
                                kend);
                    /* dS = P (dP - D) / sqrt(HS), in place over dP */
                    for (int i = 0; i < rows; i++) {
                        const float *p = P + (size_t)i * kend;
                        const float *o_i = ob_i + (size_t)i * out_stride;
                        const float *do_i = dob_i + (size_t)i * out_stride;
                        float *d = dS + (size_t)i * kend;
                        float D = 0.0f;
                        for (int e = 0; e < HS; e++)
                            D += do_i[e] * o_i[e];
                        for (int j = 0; j < kend; j++)
                            d[j] = p[j] * (d[j] - D) * scale;
                    }
                    /* dQ += dS K;  dK += dS^T Q */
                    if (dq)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS,
                                    kend, 1.0f, dS, kend, k + ko, kv_stride, 1.0f,
                                    dq + qo + (size_t)i0 * q_stride, q_stride);
                    if (dk)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kend, HS,
                                    rows, 1.0f, dS, kend, qb_i, q_stride, 1.0f, dk + ko,
                                    kv_stride);
                }
            }
        }
        free(P);
    }
}
