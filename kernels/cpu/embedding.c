/* kernels/cpu/embedding.c — token + position embedding.
 *
 *   out[b,t,:] = wte[tok[b,t] - vocab_start, :] + wpe[pos0 + t, :]
 *
 * Backward scatters dout into the rows that were read:
 *   dwte[tok - vocab_start] += dout[b,t];  dwpe[pos0 + t] += dout[b,t]
 * A token outside [vocab_start, vocab_start + V) belongs to another TP rank's
 * shard of the vocabulary and contributes nothing here.
 */
#include "cpu_internal.h"

void cpu_embedding_fwd(float *out, const int32_t *tok, const float *wte, const float *wpe,
                       int B, int T, int C, int pos0, int vocab_start, int V) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            int row = tok[b * T + t] - vocab_start;
            const float *e = (row >= 0 && row < V) ? wte + (size_t)row * C : NULL;
            const float *p = wpe ? wpe + (size_t)(pos0 + t) * C : NULL;
            for (int c = 0; c < C; c++)
                o[c] = (e ? e[c] : 0.0f) + (p ? p[c] : 0.0f);
        }
    }
}

void cpu_embedding_bwd(float *dwte, float *dwpe, const float *dout, const int32_t *tok,
                       int B, int T, int C, int pos0, int vocab_start, int V) {
    /* Two tokens may share a wte row, so the wte scatter runs serially over
     * positions; threads split the channels instead (no two touch one float). */
    if (dwte) {
#pragma omp parallel for schedule(static)
        for (int c0 = 0; c0 < C; c0 += 16) {
            int c1 = c0 + 16 < C ? c0 + 16 : C;
            for (int n = 0; n < B * T; n++) {
                int row = tok[n] - vocab_start;
                if (row < 0 || row >= V) continue;
                const float *d = dout + (size_t)n * C;
                float *g = dwte + (size_t)row * C;
                for (int c = c0; c < c1; c++)
                    g[c] += d[c];
            }
        }
    }
    if (dwpe) {
#pragma omp parallel for schedule(static)
        for (int t = 0; t < T; t++) {
            float *g = dwpe + (size_t)(pos0 + t) * C;
            for (int b = 0; b < B; b++) {
                const float *d = dout + ((size_t)b * T + t) * C;
                for (int c = 0; c < C; c++)
                    g[c] += d[c];
            }
        }
    }
}
