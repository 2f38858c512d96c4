/* kernels/cpu/matmul.c — linear layer on OpenBLAS.
 *
 *   out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC]
 * Backward (accumulating):
 *   dinp[N,C]  += dout[N,OC] @ w[OC,C]
 *   dw[OC,C]   += dout^T[OC,N] @ inp[N,C]
 *   dbias[OC]  += sum_n dout[n,:]
 * One decode position (N = 1) is a matrix-vector product (sgemv).
 * The three products are single sgemm calls (OpenBLAS threads them); the
 * bias sum splits the OC columns across threads so no two write one value.
 */
#include <cblas.h>

#include "cpu_internal.h"

void cpu_matmul_fwd(float *out, const float *inp, const float *w, const float *bias,
                    int N, int C, int OC) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * OC;
            for (int j = 0; j < OC; j++)
                o[j] = bias[j];
        }
        beta = 1.0f;
    }
    if (N == 1) /* one decode position: gemv streams the weights ~2x faster */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, w, C, inp, 1, beta, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C,
                    beta, out, OC);
}

void cpu_matmul_bwd(float *dinp, float *dw, float *dbias, const float *dout,
                    const float *inp, const float *w, int N, int C, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC,
                    w, C, 1.0f, dinp, C);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC,
                    inp, C, 1.0f, dw, C);
    if (dbias) {
#pragma omp parallel for schedule(static)
        for (int j0 = 0; j0 < OC; j0 += 64) {
            int j1 = j0 + 64 < OC ? j0 + 64 : OC;
            for (int n = 0; n < N; n++) {
                const float *d = dout + (size_t)n * OC;
                for (int j = j0; j < j1; j++)
                    dbias[j] += d[j];
            }
        }
    }
}
