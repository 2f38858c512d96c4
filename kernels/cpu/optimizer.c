/* kernels/cpu/optimizer.c — SGD with momentum and Adam/AdamW updates.
 *
 * SGD (torch.optim.SGD semantics, dampening 0):
 *   g' = g + wd p;  m = momentum m + g';  p -= lr m
 * Adam (decoupled = 0, L2 folded into the gradient) / AdamW (decoupled = 1):
 *   AdamW: p *= 1 - lr wd;  g' = g        Adam: g' = g + wd p
 *   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
 *   p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 */
#include <math.h>

#include "cpu_internal.h"

void cpu_sgd_update(float *p, const float *g, float *m, size_t n, float lr,
                    float momentum, float wd) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        m[i] = momentum * m[i] + gi;
        p[i] -= lr * m[i];
    }
}

void cpu_adam_update(float *p, const float *g, float *m, float *v, size_t n, float lr,
                     float b1, float b2, float eps, float wd, int t, int decoupled) {
    const float c1 = 1.0f / (1.0f - powf(b1, (float)t));
    const float c2 = 1.0f / (1.0f - powf(b2, (float)t));
    const float decay = decoupled ? 1.0f - lr * wd : 1.0f;
    const float l2 = decoupled ? 0.0f : wd;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + l2 * p[i];
        float pi = p[i] * decay;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] = pi - lr * (m[i] * c1) / (sqrtf(v[i] * c2) + eps);
    }
}
