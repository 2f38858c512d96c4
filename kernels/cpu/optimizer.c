/* kernels/cpu/optimizer.c — SGD with momentum and Adam/AdamW updates over a
 * flat buffer of many tensors (weight decay per run, ops.h).
 *
 * SGD (torch.optim.SGD semantics, dampening 0):
 *   g' = g + wd p;  m = momentum m + g';  p -= lr m
 * Adam (decoupled = 0, L2 folded into the gradient) / AdamW (decoupled = 1):
 *   AdamW: p *= 1 - lr wd;  g' = g        Adam: g' = g + wd p
 *   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
 *   p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Each run is one vectorised parallel loop; on the CPU a loop per run costs
 * nothing next to the memory traffic (the GPU version fuses them).
 */
#include <math.h>

#include "cpu_internal.h"

static void sgd_run(float *p, const float *g, float *m, size_t a, size_t b, float lr,
                    float momentum, float wd) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = a; i < b; i++) {
        float gi = g[i] + wd * p[i];
        m[i] = momentum * m[i] + gi;
        p[i] -= lr * m[i];
    }
}

void cpu_sgd_update(float *p, const float *g, float *m, size_t n,
                    const struct ops_decay_run *runs, int nruns, float lr,
                    float momentum) {
    size_t a = 0;
    for (int r = 0; r < nruns; r++) {
        size_t b = runs[r].end < n ? runs[r].end : n;
        if (b > a) {
            sgd_run(p, g, m, a, b, lr, momentum, runs[r].wd);
            a = b;
        }
    }
}

static void adam_run(float *p, const float *g, float *m, float *v, size_t a, size_t b,
                     float lr, float b1, float b2, float eps, float c1, float c2,
                     float decay, float l2) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = a; i < b; i++) {
        float gi = g[i] + l2 * p[i];
        float pi = p[i] * decay;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] = pi - lr * (m[i] * c1) / (sqrtf(v[i] * c2) + eps);
    }
}

void cpu_adam_update(float *p, const float *g, float *m, float *v, size_t n,
                     const struct ops_decay_run *runs, int nruns, float lr, float b1,
                     float b2, float eps, int t, int decoupled) {
    const float c1 = 1.0f / (1.0f - powf(b1, (float)t));
    const float c2 = 1.0f / (1.0f - powf(b2, (float)t));
    size_t a = 0;
    for (int r = 0; r < nruns; r++) {
        size_t b = runs[r].end < n ? runs[r].end : n;
        float wd = runs[r].wd;
        float decay = decoupled ? 1.0f - lr * wd : 1.0f;
        float l2 = decoupled ? 0.0f : wd;
        if (b > a) {
            adam_run(p, g, m, v, a, b, lr, b1, b2, eps, c1, c2, decay, l2);
            a = b;
        }
    }
}
