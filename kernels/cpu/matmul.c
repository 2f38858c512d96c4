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
 *
 * bf16 operands (set_matmul_dtype(OPS_BF16), ops.h): an exact emulation,
 * the reference the CUDA bf16 path is checked against. The two operands of
 * each product are rounded to bf16 (bf16.h) into temporary fp32 copies and
 * the same sgemm runs on them: products of bf16 values are exact in fp32,
 * so only the fp32 accumulation rounds, as in a tensor-core gemm with fp32
 * accumulation. The bias and dbias stay fp32 (dbias sums the unrounded
 * dout). The op interface returns no errors: if a copy cannot be allocated
 * the outputs are set to NaN, which the training loop stops on.
 */
#include <math.h>
#include <stdlib.h>

#include <cblas.h>

#include "bf16.h"
#include "cpu_internal.h"

static enum ops_dtype g_dtype = OPS_F32; /* backend-wide (ops.h) */

int cpu_set_matmul_dtype(enum ops_dtype dt) {
    if (dt != OPS_F32 && dt != OPS_BF16) return -1;
    g_dtype = dt;
    return 0;
}

enum ops_dtype cpu_matmul_dtype(void) { return g_dtype; }

/* A bf16-rounded copy of x[0..n) (free it), NULL when out of memory. */
static float *rounded_copy(const float *x, size_t n) {
    float *r = malloc((n ? n : 1) * sizeof(float));
    if (!r) return NULL;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        r[i] = bf16_round(x[i]);
    return r;
}

/* No memory for the rounded copies: make the failure visible as NaN. */
static void poison(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
}

static void fwd(float *out, const float *inp, const float *w, const float *bias, int N,
                int C, int OC) {
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

void cpu_matmul_fwd(float *out, const float *inp, const float *w, const float *bias,
                    int N, int C, int OC) {
    if (g_dtype != OPS_BF16) {
        fwd(out, inp, w, bias, N, C, OC);
        return;
    }
    float *ri = rounded_copy(inp, (size_t)N * C), *rw = rounded_copy(w, (size_t)OC * C);
    if (ri && rw)
        fwd(out, ri, rw, bias, N, C, OC);
    else
        poison(out, (size_t)N * OC);
    free(ri);
    free(rw);
}

void cpu_matmul_bwd(float *dinp, float *dw, float *dbias, const float *dout,
                    const float *inp, const float *w, int N, int C, int OC) {
    /* the gemm operands: the arguments, or their bf16-rounded copies */
    const float *gd = dout, *gi = inp, *gw = w;
    float *rd = NULL, *ri = NULL, *rw = NULL;
    if (g_dtype == OPS_BF16 && (dinp || dw)) {
        int ok = (gd = rd = rounded_copy(dout, (size_t)N * OC)) != NULL;
        if (ok && dinp) ok = (gw = rw = rounded_copy(w, (size_t)OC * C)) != NULL;
        if (ok && dw) ok = (gi = ri = rounded_copy(inp, (size_t)N * C)) != NULL;
        if (!ok) {
            if (dinp) poison(dinp, (size_t)N * C);
            if (dw) poison(dw, (size_t)OC * C);
            dinp = dw = NULL; /* dbias below needs no copy */
        }
    }
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, gd, OC, gw,
                    C, 1.0f, dinp, C);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, gd, OC, gi,
                    C, 1.0f, dw, C);
    free(rd);
    free(ri);
    free(rw);
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
