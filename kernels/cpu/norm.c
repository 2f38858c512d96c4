/* kernels/cpu/norm.c — pieces of global-norm gradient clipping.
 *   sumsq(x) = sum_i x_i^2, accumulated in double so that the norm of ~1e8
 *   values does not lose the small ones;  scale: x *= s.
 * The caller sums sumsq over tensors (and ranks), takes the root and, when it
 * exceeds the limit, scales every gradient by limit / norm.
 */
#include "cpu_internal.h"

double cpu_sumsq(const float *x, size_t n) {
    double s = 0.0;
#pragma omp parallel for simd reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

void cpu_scale(float *x, size_t n, float s) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}
