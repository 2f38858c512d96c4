/* kernels/cuda/attention_paged.cu — causal attention over a paged KV cache
 * (inference: every sequence of a serving step in one launch, keys/values
 * read through block tables; the contract is in ops.h).
 *
 * Math, per query row r of sequence s (query i = r - qstart sees keys
 * 0..last, last = kvlen - nq + i) and head h: s_j = <q, k_j> / sqrt(HS),
 * out = sum_j softmax(s)_j v_j, as an online softmax. Each warp keeps a
 * running max m, sum l and accumulator acc[HS] over its keys, a tile of 32
 * keys at a time:
 *   m' = max(m, max_tile s_j);  l = l e^(m-m') + sum_tile e^(s_j-m');
 *   acc = acc e^(m-m') + sum_tile e^(s_j-m') v_j
 * and the warps' partial results merge at the end with M = max_w m_w:
 *   out = sum_w e^(m_w-M) acc_w / sum_w e^(m_w-M) l_w
 * (a warp that saw no key has m_w = -inf and weight 0). Every exponent is
 * <= 0, so nothing overflows.
 *
 * Launch shape: grid (total_q_rows, NH), one block of PA_THREADS = 128
 * threads (4 warps) per (query row, head). The block first finds its row's
 * sequence (threads scan seqs in parallel; atomicMin keeps the lowest match,
 * as the CPU's first match); a row in no sequence returns at once. Warp w
 * takes the key tiles w, w + 4, w + 8, ... (tile = 32 consecutive
 * positions). Within a tile, lane t computes the block-table lookup of key
 * t once; for each key the lanes split the HS dimensions (lane + 32c,
 * coalesced row reads), reduce the dot product by warp shuffles, and lane t
 * keeps score t; after the tile max, lane t's weight e^(s_t - m') is
 * broadcast for the V pass. Prefill chunks (nq > 1) are rows like any
 * other, each with its own causal limit `last`; their K/V rows are re-read
 * per query row (from L2 in practice).
 *
 * Limits: HS <= PA_MAX_HS = 256 (8 dims per lane in registers); larger is
 * recorded as an error (cuda_last_error) and nothing is launched. No other
 * size has to be a multiple of anything (guards on HS, tiles, n_seqs).
 *
 * Shared memory (static): PA_WARPS x PA_MAX_HS floats for the warps'
 * accumulators (4 KiB) + 2 x PA_WARPS floats (m, l) + one int (the
 * sequence). One __syncthreads before the merge, two around the sequence
 * search; the early return is block-uniform (it depends on shared state
 * read after a barrier), so no thread skips a barrier the others reach.
 *
 * Determinism / layout independence: the order of every sum depends only on
 * the key positions (tiles by position, warps by tile index, lanes by
 * dimension), never on where the blocks lie, on nq or on other sequences,
 * so the same values through any block table give bitwise the same output
 * (ops.h promises it; backend_check tests it on the device). No atomics on
 * floats.
 */
#include <limits.h>
#include <stdio.h>

#include "cuda_internal.h"

#define PA_WARPS 4
#define PA_THREADS (PA_WARPS * 32)
#define PA_MAX_HS 256
#define PA_DPL (PA_MAX_HS / 32) /* head dimensions per lane */
#define PA_FULL 0xffffffffu

__global__ void __launch_bounds__(PA_THREADS)
    attn_paged_kernel(float *out, const float *q, const float *kv, const int32_t *seqs,
                      const int32_t *tables, int n_seqs, int max_blocks, int block_size,
                      int NH, int HS, int q_stride, int kv_stride, int v_offset,
                      float scale) {
    __shared__ int sh_seq;
    __shared__ float sh_m[PA_WARPS], sh_l[PA_WARPS];
    __shared__ float sh_acc[PA_WARPS][PA_MAX_HS];
    const int r = blockIdx.x, h = blockIdx.y;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;

    if (threadIdx.x == 0) sh_seq = INT_MAX;
    __syncthreads();
    for (int s = threadIdx.x; s < n_seqs; s += PA_THREADS) {
        const int qs = seqs[3 * s], nq = seqs[3 * s + 1];
        if (r >= qs && r - qs < nq) atomicMin(&sh_seq, s);
    }
    __syncthreads();
    const int s = sh_seq;
    if (s == INT_MAX) return; /* the same for every thread of the block */

    const int qs = seqs[3 * s], nq = seqs[3 * s + 1], kvlen = seqs[3 * s + 2];
    const int last = kvlen - nq + (r - qs); /* keys 0..last are visible */
    const int32_t *table = tables + (size_t)s * max_blocks;
    const size_t hoff = (size_t)h * HS;

    float qreg[PA_DPL], acc[PA_DPL];
    const float *qr = q + (size_t)r * q_stride + hoff;
#pragma unroll
    for (int c = 0; c < PA_DPL; c++) {
        const int d = lane + 32 * c;
        qreg[c] = d < HS ? qr[d] : 0.0f;
        acc[c] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j0 = w * 32; j0 <= last; j0 += PA_THREADS) {
        const int nt = min(32, last + 1 - j0); /* warp-uniform, >= 1 */
        /* lane t: offset (floats) of key j0 + t's row, head h, in kv */
        unsigned long long my_row = 0;
        if (lane < nt) {
            const int j = j0 + lane;
            my_row = ((unsigned long long)table[j / block_size] * block_size +
                      (unsigned long long)(j % block_size)) *
                         (unsigned long long)kv_stride +
                     hoff;
        }
        float my_s = -INFINITY; /* lane t: score of key j0 + t */
        for (int t = 0; t < nt; t++) {
            const float *kr = kv + __shfl_sync(PA_FULL, my_row, t);
            float part = 0.0f;
#pragma unroll
            for (int c = 0; c < PA_DPL; c++) {
                const int d = lane + 32 * c;
                if (d < HS) part += qreg[c] * kr[d];
            }
            part = warp_sum(part) * scale;
            if (lane == t) my_s = part;
        }
        const float mn = fmaxf(m, warp_max(my_s)); /* finite: lane 0 has a key */
        const float alpha = expf(m - mn);          /* 0 on the first tile */
        const float p = expf(my_s - mn);           /* 0 for lanes >= nt */
        l = l * alpha + warp_sum(p);
#pragma unroll
        for (int c = 0; c < PA_DPL; c++)
            acc[c] *= alpha;
        for (int t = 0; t < nt; t++) {
            const float *vr = kv + __shfl_sync(PA_FULL, my_row, t) + v_offset;
            const float pt = __shfl_sync(PA_FULL, p, t);
#pragma unroll
            for (int c = 0; c < PA_DPL; c++) {
                const int d = lane + 32 * c;
                if (d < HS) acc[c] += pt * vr[d];
            }
        }
        m = mn;
    }

#pragma unroll
    for (int c = 0; c < PA_DPL; c++) {
        const int d = lane + 32 * c;
        if (d < HS) sh_acc[w][d] = acc[c];
    }
    if (lane == 0) {
        sh_m[w] = m;
        sh_l[w] = l;
    }
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int k = 0; k < PA_WARPS; k++)
        M = fmaxf(M, sh_m[k]);
    float f[PA_WARPS], L = 0.0f;
#pragma unroll
    for (int k = 0; k < PA_WARPS; k++) {
        f[k] = sh_m[k] == -INFINITY ? 0.0f : expf(sh_m[k] - M);
        L += sh_l[k] * f[k];
    }
    /* no visible key (kvlen < nq breaks the contract): 0, as the CPU */
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    float *o = out + (size_t)r * NH * HS + hoff;
    for (int d = threadIdx.x; d < HS; d += PA_THREADS) {
        float x = 0.0f;
#pragma unroll
        for (int k = 0; k < PA_WARPS; k++)
            x += sh_acc[k][d] * f[k];
        o[d] = x * inv;
    }
}

extern "C" void cuda_attention_paged_fwd(float *out, const float *q, const float *kv,
                                         const int32_t *seqs, const int32_t *tables,
                                         int n_seqs, int total_q_rows, int max_blocks,
                                         int block_size, int NH, int HS, int q_stride,
                                         int kv_stride, int v_offset) {
    if (n_seqs <= 0 || total_q_rows <= 0 || NH <= 0 || HS <= 0) return;
    if (HS > PA_MAX_HS || block_size <= 0 || NH > 65535) {
        char what[160];
        snprintf(what, sizeof what,
                 "unsupported shape HS=%d (at most %d), block_size=%d, NH=%d (at most "
                 "65535)",
                 HS, PA_MAX_HS, block_size, NH);
        cuda_record_error(what, "cuda_attention_paged_fwd", __FILE__, __LINE__);
        return;
    }
    const dim3 grid((unsigned)total_q_rows, (unsigned)NH);
    attn_paged_kernel<<<grid, PA_THREADS, 0, cuda_stream()>>>(
        out, q, kv, seqs, tables, n_seqs, max_blocks, block_size, NH, HS, q_stride,
        kv_stride, v_offset, 1.0f / sqrtf((float)HS));
    CUDA_CHECK_LAUNCH();
}
