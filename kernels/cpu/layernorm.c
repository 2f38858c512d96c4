/* kernels/cpu/layernorm.c — layer normalisation over the last axis.
 *
 * Forward, per row x of C values (eps = 1e-5):
 *   mean = sum(x)/C;  rstd = 1/sqrt(sum((x-mean)^2)/C + eps)
 *   xhat = (x - mean) * rstd;  out = xhat * w + b
 * Backward, with g = dout * w:
 *   db += dout;  dw += dout * xhat
 *   dx += rstd * (g - mean(g) - xhat * mean(g * xhat))
 * dw/db are sums over rows: each thread sums its rows into a private buffer
 * and the buffers are added at the end, so the result does not depend on
 * scheduling beyond the fixed thread partition.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "cpu_internal.h"

#define LN_EPS 1e-5f

void cpu_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++)
            m += x[c];
        m /= C;
        float var = 0.0f;
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            var += d * d;
        }
        float s = 1.0f / sqrtf(var / C + LN_EPS);
        for (int c = 0; c < C; c++)
            o[c] = (x[c] - m) * s * w[c] + b[c];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = s;
    }
}

void cpu_layernorm_bwd(float *dinp, float *dw, float *db, const float *dout,
                       const float *inp, const float *w, const float *mean,
                       const float *rstd, int N, int C) {
    int nthreads = omp_get_max_threads();
    float *partial = calloc((size_t)nthreads * 2 * C, sizeof(float));
#pragma omp parallel
    {
        int tid = omp_get_thread_num();
        float *pdw = partial + (size_t)tid * 2 * C;
        float *pdb = pdw + C;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *d = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            float mean_g = 0.0f, mean_gx = 0.0f;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s;
                float g = d[c] * w[c];
                mean_g += g;
                mean_gx += g * xhat;
                pdb[c] += d[c];
                pdw[c] += d[c] * xhat;
            }
            mean_g /= C;
            mean_gx /= C;
            if (dinp) {
                float *dx = dinp + (size_t)n * C;
                for (int c = 0; c < C; c++) {
                    float xhat = (x[c] - m) * s;
                    dx[c] += s * (d[c] * w[c] - mean_g - xhat * mean_gx);
                }
            }
        }
    }
    for (int t = 0; t < nthreads; t++) {
        const float *pdw = partial + (size_t)t * 2 * C;
        const float *pdb = pdw + C;
        for (int c = 0; c < C; c++) {
            if (dw) dw[c] += pdw[c];
            if (db) db[c] += pdb[c];
        }
    }
    free(partial);
}
