/* kernels/cpu/xent_shard.c — softmax cross-entropy over a vocabulary shard
 * (tensor parallelism: no rank holds a full row of logits).
 *
 * This rank holds z[n, v] for the ids [vocab_start, vocab_start + V). Over the
 * whole vocabulary, with M[n] = max_v z[n,v] and S[n] = sum_v exp(z[n,v] - M):
 *   loss[n] = log S[n] + M[n] - z[n, target[n]]
 *   dz[n,v] = dloss[n] * (exp(z[n,v] - M[n]) / S[n] - [v == target[n]])
 * From each shard's m_r = max over the shard and s_r = sum over the shard of
 * exp(z - m_r):  M = max_r m_r  and  S = sum_r s_r * exp(m_r - M).
 * The stages (the caller allreduces between them, per-row scalars only):
 *   stats    m_r, s_r, and z[n, target] if the target is in the shard (else 0)
 *   rescale  s_r *= exp(m_r - M)          (then allreduce-sum -> S)
 *   loss     log S + M - z_target
 *   bwd      dz of the shard, in place
 * target < 0: loss 0 and gradient 0. An empty shard (V == 0), or a row that
 * is all -inf, has m_r = -inf and s_r = 0; the rescale keeps it 0 instead of
 * forming exp(-inf - M) from -inf - -inf.
 * The loops mirror xent.c (same order, expf), so a single shard covering the
 * whole vocabulary reproduces xent_fwd / xent_bwd_inplace.
 */
#include <math.h>

#include "cpu_internal.h"

void cpu_xent_shard_stats(float *rowmax, float *rowsumexp, float *target_logit,
                          const float *logits, const int32_t *target, int N, int V,
                          int vocab_start) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * V;
        float mx = -INFINITY;
        for (int v = 0; v < V; v++)
            mx = z[v] > mx ? z[v] : mx;
        float sum = 0.0f;
        if (mx != -INFINITY)
            for (int v = 0; v < V; v++)
                sum += expf(z[v] - mx);
        rowmax[n] = mx;
        rowsumexp[n] = sum;
        /* in int64: vocab_start + V may not fit an int near INT_MAX */
        const int64_t t = (int64_t)target[n] - vocab_start;
        target_logit[n] = target[n] >= 0 && t >= 0 && t < V ? z[t] : 0.0f;
    }
}

void cpu_xent_shard_rescale(float *sumexp, const float *localmax, const float *globalmax,
                            int N) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        sumexp[n] = localmax[n] == -INFINITY
                        ? 0.0f
                        : sumexp[n] * expf(localmax[n] - globalmax[n]);
}

void cpu_xent_shard_loss(float *loss, const float *globalmax, const float *globalsumexp,
                         const float *target_logit, const int32_t *target, int N) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        loss[n] =
            target[n] < 0 ? 0.0f : logf(globalsumexp[n]) + globalmax[n] - target_logit[n];
}

void cpu_xent_shard_bwd_inplace(float *logits, const int32_t *target, const float *dloss,
                                const float *globalmax, const float *globalsumexp, int N,
                                int V, int vocab_start) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *z = logits + (size_t)n * V;
        if (target[n] < 0) {
            for (int v = 0; v < V; v++)
                z[v] = 0.0f;
            continue;
        }
        const float mx = globalmax[n];
        for (int v = 0; v < V; v++)
            z[v] = expf(z[v] - mx);
        const float s = dloss[n] / globalsumexp[n];
        for (int v = 0; v < V; v++)
            z[v] *= s;
        const int64_t t = (int64_t)target[n] - vocab_start;
        if (t >= 0 && t < V) z[t] -= dloss[n];
    }
}
