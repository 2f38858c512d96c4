/* kernels/cpu/attention_paged.c — causal attention over a paged KV cache
 * (inference: many sequences per call, keys/values read through block
 * tables; the contract is in ops.h).
 *
 * Per query row r of sequence s (query i = r - qstart, keys 0..last with
 * last = kvlen - nq + i) and head h, an online softmax over the keys in
 * tiles of KT positions (tile t = keys t*KT .. t*KT + KT - 1):
 *   s_j   = <q, k_j> / sqrt(HS)                       for the tile's keys
 *   m'    = max(m, max_j s_j)
 *   l     = l e^(m - m') + sum_j e^(s_j - m')
 *   acc   = acc e^(m - m') + sum_j e^(s_j - m') v_j
 *   out   = acc / l                                   after the last tile
 * (m starts at -inf, l and acc at 0; e^(-inf) = 0, so the first tile needs
 * no special case). Every exponent is <= 0: no overflow whatever the scores.
 * The tile's e^(s_j - m') use fast_expf (fastmath.h, ~2 ulp, vectorised).
 *
 * Work items are (group of up to G consecutive query rows of one sequence,
 * head), taken by OpenMP threads dynamically (an item's cost grows with its
 * keys). Item (r, h) of the (row, head) grid does the work when r starts a
 * group (i % G == 0) and is empty otherwise. Within a group each key and
 * value row is loaded once for all G rows (a prefill chunk then reads its
 * K/V G times less often), but every row keeps its own m, l, acc and its
 * own causal limit, and runs exactly the operations it would run alone:
 * the order of every sum is fixed by the key positions and HS only, never
 * by the group, nq, where the blocks lie or the thread. That is what makes
 * the result independent of the block table (ops.h promises it; the
 * decoder relies on it for bitwise-equal paged and contiguous caches).
 *
 * Scratch: per thread G x (HS + KT) floats (accumulators and score tiles;
 * malloc: if that fails, the thread's rows are written as NaN rather than
 * left stale); on the stack the tile's KT key-row pointers, found by
 * walking the block table once per tile.
 */
#include <math.h>
#include <stdlib.h>

#include "cpu_internal.h"
#include "fastmath.h"

#define KT 64 /* keys per softmax tile */
#define G 4   /* query rows per work item */

/* <a, b> over n floats, 8 independent partial sums (vectorisable, and a
 * fixed order). */
static inline float dot(const float *a, const float *b, int n) {
    float p[8] = {0};
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int t = 0; t < 8; t++)
            p[t] += a[d + t] * b[d + t];
    float rest = 0.0f;
    for (; d < n; d++)
        rest += a[d] * b[d];
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7])) + rest;
}

/* The sequence whose query rows include r (the first one), or -1. */
static int seq_of_row(const int32_t *seqs, int n_seqs, int r) {
    for (int s = 0; s < n_seqs; s++)
        if (r >= seqs[3 * s] && r - seqs[3 * s] < seqs[3 * s + 1]) return s;
    return -1;
}

void cpu_attention_paged_fwd(float *out, const float *q, const float *kv,
                             const int32_t *seqs, const int32_t *tables, int n_seqs,
                             int total_q_rows, int max_blocks, int block_size, int NH,
                             int HS, int q_stride, int kv_stride, int v_offset) {
    if (n_seqs <= 0 || total_q_rows <= 0 || NH <= 0 || HS <= 0 || block_size <= 0) return;
    const float scale = 1.0f / sqrtf((float)HS);
    const long long items = (long long)total_q_rows * NH;
#pragma omp parallel
    {
        float *scratch = malloc((size_t)G * (HS + KT) * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (long long it = 0; it < items; it++) {
            const int r = (int)(it / NH), h = (int)(it % NH);
            const int s = seq_of_row(seqs, n_seqs, r);
            if (s < 0) continue;
            const int i = r - seqs[3 * s], nq = seqs[3 * s + 1], kvlen = seqs[3 * s + 2];
            if (i % G) continue; /* not the first row of a group */
            const int ng = nq - i < G ? nq - i : G;
            const int32_t *table = tables + (size_t)s * max_blocks;
            const float *qr[G];
            float *o[G], m[G], l[G];
            int last[G] = {0}, nt[G] = {0};
            const float *kp[KT];
            for (int g = 0; g < ng; g++) {
                qr[g] = q + (size_t)(r + g) * q_stride + (size_t)h * HS;
                o[g] = out + (size_t)(r + g) * NH * HS + (size_t)h * HS;
                last[g] = kvlen - nq + i + g; /* keys 0..last[g] */
                m[g] = -INFINITY;
                l[g] = 0.0f;
            }
            if (!scratch) {
                for (int g = 0; g < ng; g++)
                    for (int d = 0; d < HS; d++)
                        o[g][d] = NAN;
                continue;
            }
            float *acc = scratch, *sc = scratch + (size_t)G * HS; /* [G][HS], [G][KT] */
            for (int d = 0; d < ng * HS; d++)
                acc[d] = 0.0f;
            for (int j0 = 0; j0 <= last[ng - 1]; j0 += KT) {
                /* keys of this tile per row (the last row sees the most) */
                for (int g = 0; g < ng; g++) {
                    const int n = last[g] + 1 - j0;
                    nt[g] = n < 0 ? 0 : (n < KT ? n : KT);
                }
                /* the tile's key rows (head h), walking the block table */
                for (int t = 0, b = j0 / block_size, w = j0 % block_size; t < nt[ng - 1];
                     t++) {
                    kp[t] = kv + ((size_t)table[b] * block_size + w) * kv_stride +
                            (size_t)h * HS;
                    if (++w == block_size) {
                        w = 0;
                        b++;
                    }
                }
                for (int t = 0; t < nt[ng - 1]; t++)
                    for (int g = 0; g < ng; g++)
                        if (t < nt[g]) sc[g * KT + t] = dot(qr[g], kp[t], HS) * scale;
                for (int g = 0; g < ng; g++) {
                    if (nt[g] == 0) continue; /* row done */
                    float *sg = sc + g * KT, *ag = acc + (size_t)g * HS;
                    float tmax = -INFINITY;
                    for (int t = 0; t < nt[g]; t++)
                        tmax = sg[t] > tmax ? sg[t] : tmax;
                    const float mn = tmax > m[g] ? tmax : m[g];
                    const float alpha = expf(m[g] - mn);
#pragma omp simd
                    for (int t = 0; t < nt[g]; t++)
                        sg[t] = fast_expf(sg[t] - mn);
                    float sum = 0.0f;
                    for (int t = 0; t < nt[g]; t++)
                        sum += sg[t];
                    l[g] = l[g] * alpha + sum;
                    for (int d = 0; d < HS; d++)
                        ag[d] *= alpha;
                    m[g] = mn;
                }
                for (int t = 0; t < nt[ng - 1]; t++) {
                    const float *vr = kp[t] + v_offset;
                    for (int g = 0; g < ng; g++) {
                        if (t >= nt[g]) continue;
                        const float p = sc[g * KT + t];
                        float *ag = acc + (size_t)g * HS;
                        for (int d = 0; d < HS; d++)
                            ag[d] += p * vr[d];
                    }
                }
            }
            for (int g = 0; g < ng; g++) {
                /* no visible key (kvlen < nq breaks the contract): 0, not 0/0 */
                const float inv = l[g] > 0.0f ? 1.0f / l[g] : 0.0f;
                for (int d = 0; d < HS; d++)
                    o[g][d] = acc[(size_t)g * HS + d] * inv;
            }
        }
        free(scratch);
    }
}
