/* kernels/cpu/xent.c — fused softmax + cross-entropy over the vocabulary.
 *
 *   loss[n] = log(sum_v exp(z[n,v])) - z[n, target[n]]      (max-shifted)
 *   dz[n,v] = dloss[n] * (softmax(z[n,:])[v] - [v == target[n]])
 * The backward overwrites the logits with dz: the softmax is recomputed from
 * them (cheap) rather than stored (B*T*V floats).
 * target < 0: the position has no loss and no gradient.
 */
#include <math.h>

#include "cpu_internal.h"

void cpu_xent_fwd(float *loss, const float *logits, const int32_t *target, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * V;
        if (target[n] < 0) {
            loss[n] = 0.0f;
            continue;
        }
        float mx = z[0];
        for (int v = 1; v < V; v++)
            mx = z[v] > mx ? z[v] : mx;
        float sum = 0.0f;
        for (int v = 0; v < V; v++)
            sum += expf(z[v] - mx);
        loss[n] = logf(sum) + mx - z[target[n]];
    }
}

void cpu_xent_bwd_inplace(float *logits, const int32_t *target, const float *dloss, int N,
                          int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *z = logits + (size_t)n * V;
        if (target[n] < 0) {
            for (int v = 0; v < V; v++)
                z[v] = 0.0f;
            continue;
        }
        float mx = z[0];
        for (int v = 1; v < V; v++)
            mx = z[v] > mx ? z[v] : mx;
        float sum = 0.0f;
        for (int v = 0; v < V; v++) {
            z[v] = expf(z[v] - mx);
            sum += z[v];
        }
        float s = dloss[n] / sum;
        for (int v = 0; v < V; v++)
            z[v] *= s;
        z[target[n]] -= dloss[n];
    }
}
