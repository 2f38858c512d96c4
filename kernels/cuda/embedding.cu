/* kernels/cuda/embedding.cu — token + position embedding.
 *
 *   out[b,t,:] = wte[tok[b,t] - vocab_start, :] + wpe[pos0 + t, :]
 * (no wte term for a token outside [vocab_start, vocab_start + V); no wpe term
 * when wpe is NULL). Backward accumulates:
 *   dwte[tok - vocab_start] += dout[b,t];  dwpe[pos0 + t] += dout[b,t]
 *
 * Launch shapes:
 *   fwd:       grid N = B*T blocks (one per position), 256 threads over C.
 *   bwd dwpe:  1-D grid-stride over T*C, one thread per (t, c) summing the B
 *              batch rows in order b = 0..B-1.
 *   bwd dwte:  grid N blocks, 256 threads. Deterministic without atomics:
 *              block n returns unless n is the FIRST position holding its
 *              token (block-wide scan of tok[0..n) with __syncthreads_or);
 *              the first occurrence then walks positions n..N-1 in order
 *              (256 at a time, matches found by warp ballots) and adds each
 *              matching dout row into the wte row, threads splitting C (4
 *              columns per thread in registers per pass over the positions,
 *              i.e. ceil(C/1024) passes). The per-element addition order equals
 *              the CPU's (the wte value, then increasing position), so results
 *              match it bit for bit. Cost is about N^2/256 token loads in
 *              total plus the O(N*C) adds; a token repeated r times costs one
 *              block r serial row adds.
 */
#include "cuda_internal.h"

#define EMB_THREADS 256
#define EMB_ACC 4 /* columns per thread held in registers per pass */

__global__ void embedding_fwd_kernel(float *out, const int32_t *tok,
                                     const float *wte, const float *wpe, int T,
                                     int C, int pos0, int vocab_start, int V) {
    int n = blockIdx.x;
    int t = n % T;
    int row = tok[n] - vocab_start;
    const float *e = (row >= 0 && row < V) ? wte + (size_t)row * C : nullptr;
    const float *p = wpe ? wpe + (size_t)(pos0 + t) * C : nullptr;
    float *o = out + (size_t)n * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        o[c] = (e ? e[c] : 0.0f) + (p ? p[c] : 0.0f);
}

__global__ void embedding_bwd_wpe_kernel(float *dwpe, const float *dout, int B,
                                         int T, int C, int pos0) {
    size_t total = (size_t)T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / C, c = i % C;
        float *g = dwpe + (size_t)(pos0 + t) * C + c;
        float acc = *g;
        for (int b = 0; b < B; b++) acc += dout[((size_t)b * T + t) * C + c];
        *g = acc;
    }
}

__global__ void embedding_bwd_wte_kernel(float *dwte, const float *dout,
                                         const int32_t *tok, int N, int C,
                                         int vocab_start, int V) {
    __shared__ unsigned masks[EMB_THREADS / 32];
    const int n = blockIdx.x;
    const int32_t mytok = tok[n];
    const int row = mytok - vocab_start;
    if (row < 0 || row >= V) return; /* uniform across the block */

    /* is there an earlier position with the same token? */
    int dup = 0;
    for (int m = threadIdx.x; m < n; m += blockDim.x) dup |= (tok[m] == mytok);
    if (__syncthreads_or(dup)) return;

    float *g = dwte + (size_t)row * C;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int nw = blockDim.x >> 5;
    /* columns in tiles of EMB_ACC * blockDim.x held in registers; positions
     * re-scanned per tile (the scan is cheap next to the row adds) */
    for (int c0 = 0; c0 < C; c0 += EMB_ACC * blockDim.x) {
        float acc[EMB_ACC];
#pragma unroll
        for (int u = 0; u < EMB_ACC; u++) {
            int c = c0 + u * blockDim.x + threadIdx.x;
            acc[u] = c < C ? g[c] : 0.0f;
        }
        for (int base = n; base < N; base += blockDim.x) {
            int m = base + threadIdx.x;
            unsigned ballot =
                __ballot_sync(0xffffffffu, m < N && tok[m] == mytok);
            if (lane == 0) masks[wid] = ballot;
            __syncthreads();
            for (int w = 0; w < nw; w++) {
                unsigned bits = masks[w];
                while (bits) {
                    int j = __ffs(bits) - 1;
                    bits &= bits - 1;
                    const float *d = dout + (size_t)(base + w * 32 + j) * C;
#pragma unroll
                    for (int u = 0; u < EMB_ACC; u++) {
                        int c = c0 + u * blockDim.x + threadIdx.x;
                        if (c < C) acc[u] += d[c];
                    }
                }
            }
            __syncthreads(); /* masks reused next round */
        }
#pragma unroll
        for (int u = 0; u < EMB_ACC; u++) {
            int c = c0 + u * blockDim.x + threadIdx.x;
            if (c < C) g[c] = acc[u];
        }
    }
}

extern "C" void cuda_embedding_fwd(float *out, const int32_t *tok,
                                   const float *wte, const float *wpe, int B,
                                   int T, int C, int pos0, int vocab_start,
                                   int V) {
    int N = B * T;
    if (N <= 0 || C <= 0) return;
    embedding_fwd_kernel<<<N, EMB_THREADS, 0, cuda_stream()>>>(
        out, tok, wte, wpe, T, C, pos0, vocab_start, V);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_embedding_bwd(float *dwte, float *dwpe, const float *dout,
                                   const int32_t *tok, int B, int T, int C,
                                   int pos0, int vocab_start, int V) {
    int N = B * T;
    if (N <= 0 || C <= 0) return;
    if (dwte) {
        embedding_bwd_wte_kernel<<<N, EMB_THREADS, 0, cuda_stream()>>>(
            dwte, dout, tok, N, C, vocab_start, V);
        CUDA_CHECK_LAUNCH();
    }
    if (dwpe) {
        size_t total = (size_t)T * C;
        embedding_bwd_wpe_kernel<<<cuda_grid_1d(total, 256), 256, 0,
                                   cuda_stream()>>>(dwpe, dout, B, T, C, pos0);
        CUDA_CHECK_LAUNCH();
    }
}
