/* kernels/cpu/gelu.c — GELU, tanh approximation (as GPT-2).
 *
 *   u = sqrt(2/pi) (x + 0.044715 x^3);  gelu(x) = 0.5 x (1 + tanh u)
 *   gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 0.044715 x^2)
 * Backward accumulates: dinp += dout * gelu'(inp).
 * tanh comes from fastmath.h (vectorisable, ~1e-7 absolute error).
 */
#include "cpu_internal.h"
#include "fastmath.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

void cpu_gelu_fwd(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + fast_tanhf(GELU_K * (x + GELU_A * x * x * x)));
    }
}

void cpu_gelu_bwd(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float th = fast_tanhf(GELU_K * (x + GELU_A * x * x * x));
        float d = 0.5f * (1.0f + th) +
                  0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
        dinp[i] += dout[i] * d;
    }
}
