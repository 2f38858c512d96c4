/* kernels/cpu/residual.c — residual connection.
 *   out = a + b;  backward: da += dout, db += dout
 */
#include "cpu_internal.h"

void cpu_residual_fwd(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void cpu_residual_bwd(float *da, float *db, const float *dout, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}
