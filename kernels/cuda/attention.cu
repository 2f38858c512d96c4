/* kernels/cuda/attention.cu — causal multi-head self-attention, flash-style:
 * fp32 on the CUDA cores, tiles staged in shared memory, no [Tq, Tk] matrix
 * in global memory (the forward saves lse [B,NH,Tq]; backward recomputes P).
 *
 * Per batch b and head h (Q: Tq x HS, K, V: Tk x HS, off = Tk - Tq so query
 * row i sits at absolute position off + i; key j is visible iff j <= off + i):
 *   S = Q K^T / sqrt(HS);  lse_i = log sum_j exp(S_ij);  O = exp(S - lse) V
 * Backward, recomputing P = exp(S - lse) tile by tile:
 *   D_i = <dO_i, O_i>;  dP = dO V^T;  dS = P (dP - D) / sqrt(HS)
 *   dQ += dS K;  dK += dS^T Q;  dV += P^T dO
 * Layout: q row (b,i) of head h at q + (b*Tq+i)*q_stride + h*HS, k/v rows at
 * + (b*Tk+j)*kv_stride + h*HS, out/dout rows at + (b*Tq+i)*NH*HS + h*HS.
 *
 * Tiling. Every kernel runs 256 threads as a 16 x 16 grid (ty = tid / 16,
 * tx = tid % 16). A "row" tile of R = 16*RM rows and a "column" tile of
 * 16*RN rows meet in an R x 16*RN score tile: thread (ty, tx) owns rows
 * ty + 16a (a < RM) and columns tx + 16c (c < RN), and of the head dimension
 * the entries tx + 16n (n < NC). HS is bucketed into NC = 2, 4, 8 (HS <= 32,
 * 64, 128; compile-time register arrays); HS > 128 is refused with an error
 * in the backend's record (cuda_last_error) and nothing is launched.
 *   forward       grid (ceil(Tq/BQ), NH, B), BQ = 64 query rows (RM = 4), or
 *                 16 (RM = 1) when Tq <= 32 (decode: fewer wasted rows);
 *                 loops over key tiles of BK = 64 (RN = 4) up to the block's
 *                 causal edge. Per key tile: K -> smem, S tile, online
 *                 softmax (running max m, sum l, accumulator rescaled by
 *                 exp(m_old - m_new); row max/sum over the 16 tx lanes by
 *                 shuffles), P -> smem, V -> the same smem, O += P V.
 *                 Query tiles run last-first (the longest loops start first).
 *   bwd D         one warp per row (b, h, i), 8 rows per block:
 *                 D = rowsum(dO * O) into the backend scratch [B,NH,Tq].
 *   bwd dK/dV     grid (ceil(Tk/64), NH, B): a block owns 64 keys (RM = 4,
 *                 kept in registers as dK/dV accumulators) and loops over the
 *                 query rows that see them, i >= j0 - off, 32 at a time
 *                 (RN = 2): S^T and dP^T tiles, P^T and dS^T -> smem, then
 *                 dV += P^T dO, dK += dS^T Q.
 *   bwd dQ        grid (ceil(Tq/64), NH, B): a block owns 64 query rows and
 *                 loops over key tiles of 32 up to its causal edge: S, dP,
 *                 dS -> smem, dQ += dS K.
 * Each gradient element is read-modified-written by exactly one thread, so
 * there are no atomics and results repeat bit for bit. Tiles past the causal
 * edge are never visited; inside a visited tile masked entries get P = 0.
 * Rows beyond Tq/Tk are zero-filled in smem and masked, never written.
 *
 * Shared memory (dynamic, floats). Head tiles are [rows][LD] with
 * LD = 16*NC + 1 (odd: the 16 tx lanes of a warp reading one column of 16
 * different rows hit 16 different banks; the entries HS..LD-1 are zero, so
 * inner loops need no HS bound). The P / dS tiles are [rows][cols + 16]
 * (row stride = 16 mod 32: a warp's two ty rows fall in disjoint bank halves
 * both when writing 16 columns and when reading one column).
 *                                               bytes at HS <= 64 / <= 128
 *   forward  (BQ + BK)*LD + BQ*(BK+16)           53,760 /  86,528 (BQ = 64)
 *   dK/dV    (2*64 + 2*32)*LD + 2*64*48 + 2*32   74,752 / 123,904
 *   dQ       (2*64 + 2*32)*LD + 64*48 + 2*64     62,720 / 111,872
 * Above 48 KB the kernel opts in (cudaFuncSetAttribute); sm_80 allows 163 KB
 * and sm_90 227 KB per block, a device that allows less gets an error.
 * Registers: at NC = 8 the dK/dV kernel holds 64 accumulators per thread.
 * dq/dk/dv may be NULL to skip that gradient; lse may be NULL in forward.
 */
#include <atomic>
#include <stdio.h>

#include "cuda_internal.h"

namespace {

constexpr int kThreads = 256; /* 16 x 16 */
constexpr int kMaxHS = 128;

/* rows [r0, r0 + R) of a head slice -> sm[R][LD]; zero past nrows and HS */
template <int R, int LD>
__device__ __forceinline__ void load_tile(float *sm, const float *g,
                                          size_t row_stride, int r0, int nrows,
                                          int HS) {
    for (int idx = threadIdx.x; idx < R * LD; idx += kThreads) {
        int r = idx / LD, e = idx - r * LD, row = r0 + r;
        sm[idx] = (row < nrows && e < HS) ? g[(size_t)row * row_stride + e]
                                          : 0.0f;
    }
}

/* s[a][c] = sum_{d < HS} A[ty + 16a][d] * Bt[tx + 16c][d] */
template <int RM, int RN, int LD>
__device__ __forceinline__ void tile_dot(float (&s)[RM][RN], const float *A,
                                         const float *Bt, int HS, int ty,
                                         int tx) {
#pragma unroll
    for (int a = 0; a < RM; a++)
#pragma unroll
        for (int c = 0; c < RN; c++) s[a][c] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < HS; d++) {
        float av[RM], bv[RN];
#pragma unroll
        for (int a = 0; a < RM; a++) av[a] = A[(ty + 16 * a) * LD + d];
#pragma unroll
        for (int c = 0; c < RN; c++) bv[c] = Bt[(tx + 16 * c) * LD + d];
#pragma unroll
        for (int a = 0; a < RM; a++)
#pragma unroll
            for (int c = 0; c < RN; c++) s[a][c] = fmaf(av[a], bv[c], s[a][c]);
    }
}

/* acc[a][n] += sum_{c < nc} W[ty + 16a][c] * X[c][tx + 16n] */
template <int RM, int NC, int LDW, int LD>
__device__ __forceinline__ void tile_acc(float (&acc)[RM][NC], const float *W,
                                         const float *X, int nc, int ty,
                                         int tx) {
#pragma unroll 2
    for (int c = 0; c < nc; c++) {
        float wv[RM], xv[NC];
#pragma unroll
        for (int a = 0; a < RM; a++) wv[a] = W[(ty + 16 * a) * LDW + c];
#pragma unroll
        for (int n = 0; n < NC; n++) xv[n] = X[c * LD + tx + 16 * n];
#pragma unroll
        for (int a = 0; a < RM; a++)
#pragma unroll
            for (int n = 0; n < NC; n++)
                acc[a][n] = fmaf(wv[a], xv[n], acc[a][n]);
    }
}

/* max / sum over the 16 tx lanes of one ty row (lanes 0-15 or 16-31) */
__device__ __forceinline__ float max16(float x) {
    for (int o = 8; o > 0; o >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ __forceinline__ float sum16(float x) {
    for (int o = 8; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

template <int NC> __host__ __device__ constexpr int head_ld() {
    return 16 * NC + 1;
}

template <int NC, int RM> constexpr size_t fwd_smem() {
    return sizeof(float) *
           ((size_t)(16 * RM + 64) * head_ld<NC>() + (size_t)16 * RM * 80);
}
template <int NC> constexpr size_t dkdv_smem() {
    return sizeof(float) * ((size_t)192 * head_ld<NC>() + 2 * 64 * 48 + 2 * 32);
}
template <int NC> constexpr size_t dq_smem() {
    return sizeof(float) * ((size_t)192 * head_ld<NC>() + 64 * 48 + 2 * 64);
}

template <int NC, int RM>
__global__ void __launch_bounds__(kThreads)
    attn_fwd_kernel(float *out, float *lse, const float *q, const float *k,
                    const float *v, int Tq, int Tk, int NH, int HS,
                    int q_stride, int kv_stride, float scale) {
    constexpr int LD = head_ld<NC>(), BQ = 16 * RM, BK = 64, LDP = BK + 16;
    extern __shared__ float smem[];
    float *Qs = smem, *KVs = Qs + BQ * LD, *Ps = KVs + BK * LD;
    const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
    const int h = blockIdx.y, b = blockIdx.z;
    const int i0 = (int)(gridDim.x - 1 - blockIdx.x) * BQ;
    const int off = Tk - Tq;
    const float *kb = k + (size_t)b * Tk * kv_stride + (size_t)h * HS;
    const float *vb = v + (size_t)b * Tk * kv_stride + (size_t)h * HS;
    load_tile<BQ, LD>(Qs, q + (size_t)b * Tq * q_stride + (size_t)h * HS,
                      (size_t)q_stride, i0, Tq, HS);
    const int iend = min(i0 + BQ, Tq);
    const int kend = min(Tk, off + iend); /* keys any row of the tile sees */

    float m[RM], l[RM], acc[RM][NC];
#pragma unroll
    for (int a = 0; a < RM; a++) {
        m[a] = -INFINITY;
        l[a] = 0.0f;
#pragma unroll
        for (int n = 0; n < NC; n++) acc[a][n] = 0.0f;
    }
    for (int j0 = 0; j0 < kend; j0 += BK) {
        __syncthreads(); /* Qs written; the last tile's P V done with KVs, Ps */
        load_tile<BK, LD>(KVs, kb, (size_t)kv_stride, j0, Tk, HS);
        __syncthreads();
        float s[RM][4];
        tile_dot<RM, 4, LD>(s, Qs, KVs, HS, ty, tx);
#pragma unroll
        for (int a = 0; a < RM; a++) {
            const int last = off + i0 + ty + 16 * a; /* keys <= last visible */
            float mt = -INFINITY;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int j = j0 + tx + 16 * c;
                s[a][c] = (j <= last && j < Tk) ? s[a][c] * scale : -INFINITY;
                mt = fmaxf(mt, s[a][c]);
            }
            const float mnew = fmaxf(m[a], max16(mt));
            /* a row that has seen no visible key yet keeps m = -inf, l = 0
             * (cannot happen for key tile 0, but -inf - -inf must not be
             * evaluated) */
            const bool none = mnew == -INFINITY;
            const float alpha = none ? 1.0f : expf(m[a] - mnew);
            float rs = 0.0f;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                float p = none ? 0.0f : expf(s[a][c] - mnew);
                Ps[(ty + 16 * a) * LDP + tx + 16 * c] = p;
                rs += p;
            }
            l[a] = l[a] * alpha + sum16(rs);
            m[a] = mnew;
#pragma unroll
            for (int n = 0; n < NC; n++) acc[a][n] *= alpha;
        }
        __syncthreads(); /* everyone done with K; Ps complete */
        load_tile<BK, LD>(KVs, vb, (size_t)kv_stride, j0, Tk, HS);
        __syncthreads();
        /* keys >= kend are masked for every real row of the tile */
        tile_acc<RM, NC, LDP, LD>(acc, Ps, KVs, min(BK, kend - j0), ty, tx);
    }
    const size_t os = (size_t)NH * HS;
#pragma unroll
    for (int a = 0; a < RM; a++) {
        const int i = i0 + ty + 16 * a;
        if (i >= Tq) continue;
        const float inv = 1.0f / l[a]; /* l >= 1: the row max adds exp(0) */
        float *orow = out + ((size_t)b * Tq + i) * os + (size_t)h * HS;
#pragma unroll
        for (int n = 0; n < NC; n++) {
            int e = tx + 16 * n;
            if (e < HS) orow[e] = acc[a][n] * inv;
        }
        if (lse && tx == 0)
            lse[((size_t)b * NH + h) * Tq + i] = m[a] + logf(l[a]);
    }
}

/* D[(b*NH + h)*Tq + i] = <dout row, out row> of head h; one warp per row */
__global__ void attn_rowdot_kernel(float *D, const float *dout,
                                   const float *out, long long rows, int Tq,
                                   int NH, int HS) {
    long long r =
        (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return; /* whole warp leaves together */
    long long bh = r / Tq, i = r % Tq, b = bh / NH, h = bh % NH;
    size_t o = ((size_t)b * Tq + i) * NH * HS + (size_t)h * HS;
    float s = 0.0f;
    for (int e = lane; e < HS; e += 32) s += dout[o + e] * out[o + e];
    s = warp_sum(s);
    if (lane == 0) D[r] = s;
}

template <int NC>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dkdv_kernel(float *dk, float *dv, const float *dout,
                         const float *lse, const float *D, const float *q,
                         const float *k, const float *v, int Tq, int Tk, int NH,
                         int HS, int q_stride, int kv_stride, float scale) {
    constexpr int LD = head_ld<NC>(), BK = 64, BQ = 32, LDP = BQ + 16;
    extern __shared__ float smem[];
    float *Ks = smem, *Vs = Ks + BK * LD, *Qs = Vs + BK * LD;
    float *dOs = Qs + BQ * LD, *Ps = dOs + BQ * LD, *dSs = Ps + BK * LDP;
    float *Ls = dSs + BK * LDP, *Ds = Ls + BQ;
    const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
    const int h = blockIdx.y, b = blockIdx.z, j0 = blockIdx.x * BK;
    const int off = Tk - Tq;
    const size_t os = (size_t)NH * HS;
    const size_t bh = (size_t)b * NH + h;
    const float *qb = q + (size_t)b * Tq * q_stride + (size_t)h * HS;
    const float *ob = dout + (size_t)b * Tq * os + (size_t)h * HS;
    const size_t kvo = (size_t)b * Tk * kv_stride + (size_t)h * HS;
    load_tile<BK, LD>(Ks, k + kvo, (size_t)kv_stride, j0, Tk, HS);
    load_tile<BK, LD>(Vs, v + kvo, (size_t)kv_stride, j0, Tk, HS);

    float adk[4][NC], adv[4][NC];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int n = 0; n < NC; n++) adk[a][n] = adv[a][n] = 0.0f;
    /* the last query row sees every key, so this loop runs at least once */
    for (int iq0 = max(0, j0 - off); iq0 < Tq; iq0 += BQ) {
        __syncthreads(); /* K/V written; the last tile's products are done */
        load_tile<BQ, LD>(Qs, qb, (size_t)q_stride, iq0, Tq, HS);
        load_tile<BQ, LD>(dOs, ob, os, iq0, Tq, HS);
        if (threadIdx.x < BQ) {
            int i = iq0 + threadIdx.x;
            Ls[threadIdx.x] = i < Tq ? lse[bh * Tq + i] : 0.0f;
            Ds[threadIdx.x] = i < Tq ? D[bh * Tq + i] : 0.0f;
        }
        __syncthreads();
        float s[4][2], dp[4][2];
        tile_dot<4, 2, LD>(s, Ks, Qs, HS, ty, tx);   /* S^T: key x query */
        tile_dot<4, 2, LD>(dp, Vs, dOs, HS, ty, tx); /* dP^T */
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const int j = j0 + ty + 16 * a, ii = tx + 16 * c, i = iq0 + ii;
                const bool vis = i < Tq && j < Tk && j <= off + i;
                const float p = vis ? expf(s[a][c] * scale - Ls[ii]) : 0.0f;
                Ps[(ty + 16 * a) * LDP + ii] = p;
                dSs[(ty + 16 * a) * LDP + ii] = p * (dp[a][c] - Ds[ii]) * scale;
            }
        __syncthreads();
        const int nq = min(BQ, Tq - iq0);
        tile_acc<4, NC, LDP, LD>(adv, Ps, dOs, nq, ty, tx);
        tile_acc<4, NC, LDP, LD>(adk, dSs, Qs, nq, ty, tx);
    }
#pragma unroll
    for (int a = 0; a < 4; a++) {
        const int j = j0 + ty + 16 * a;
        if (j >= Tk) continue;
        const size_t row = kvo + (size_t)j * kv_stride;
#pragma unroll
        for (int n = 0; n < NC; n++) {
            int e = tx + 16 * n;
            if (e >= HS) continue;
            if (dk) dk[row + e] += adk[a][n];
            if (dv) dv[row + e] += adv[a][n];
        }
    }
}

template <int NC>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dq_kernel(float *dq, const float *dout, const float *lse,
                       const float *D, const float *q, const float *k,
                       const float *v, int Tq, int Tk, int NH, int HS,
                       int q_stride, int kv_stride, float scale) {
    constexpr int LD = head_ld<NC>(), BQ = 64, BK = 32, LDS = BK + 16;
    extern __shared__ float smem[];
    float *Qs = smem, *dOs = Qs + BQ * LD, *Ks = dOs + BQ * LD;
    float *Vs = Ks + BK * LD, *dSs = Vs + BK * LD, *Ls = dSs + BQ * LDS;
    float *Ds = Ls + BQ;
    const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
    const int h = blockIdx.y, b = blockIdx.z;
    const int i0 = (int)(gridDim.x - 1 - blockIdx.x) * BQ;
    const int off = Tk - Tq;
    const size_t os = (size_t)NH * HS;
    const size_t bh = (size_t)b * NH + h;
    const size_t qo = (size_t)b * Tq * q_stride + (size_t)h * HS;
    const float *kb = k + (size_t)b * Tk * kv_stride + (size_t)h * HS;
    const float *vb = v + (size_t)b * Tk * kv_stride + (size_t)h * HS;
    load_tile<BQ, LD>(Qs, q + qo, (size_t)q_stride, i0, Tq, HS);
    load_tile<BQ, LD>(dOs, dout + (size_t)b * Tq * os + (size_t)h * HS, os, i0,
                      Tq, HS);
    if (threadIdx.x < BQ) {
        int i = i0 + threadIdx.x;
        Ls[threadIdx.x] = i < Tq ? lse[bh * Tq + i] : 0.0f;
        Ds[threadIdx.x] = i < Tq ? D[bh * Tq + i] : 0.0f;
    }
    const int kend = min(Tk, off + min(i0 + BQ, Tq));

    float acc[4][NC];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int n = 0; n < NC; n++) acc[a][n] = 0.0f;
    for (int j0 = 0; j0 < kend; j0 += BK) {
        __syncthreads(); /* Q/dO/L/D written; the last tile's dS K is done */
        load_tile<BK, LD>(Ks, kb, (size_t)kv_stride, j0, Tk, HS);
        load_tile<BK, LD>(Vs, vb, (size_t)kv_stride, j0, Tk, HS);
        __syncthreads();
        float s[4][2], dp[4][2];
        tile_dot<4, 2, LD>(s, Qs, Ks, HS, ty, tx);
        tile_dot<4, 2, LD>(dp, dOs, Vs, HS, ty, tx);
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const int r = ty + 16 * a, i = i0 + r, j = j0 + tx + 16 * c;
                const bool vis = i < Tq && j < Tk && j <= off + i;
                const float p = vis ? expf(s[a][c] * scale - Ls[r]) : 0.0f;
                dSs[r * LDS + tx + 16 * c] = p * (dp[a][c] - Ds[r]) * scale;
            }
        __syncthreads();
        tile_acc<4, NC, LDS, LD>(acc, dSs, Ks, min(BK, kend - j0), ty, tx);
    }
#pragma unroll
    for (int a = 0; a < 4; a++) {
        const int i = i0 + ty + 16 * a;
        if (i >= Tq) continue;
        float *row = dq + qo + (size_t)i * q_stride;
#pragma unroll
        for (int n = 0; n < NC; n++) {
            int e = tx + 16 * n;
            if (e < HS) row[e] += acc[a][n];
        }
    }
}

/* Dynamic shared memory beyond the default 48 KB needs an opt-in per kernel
 * (once per kernel and process, `done` belonging to the kernel: the
 * backend stays on one device); a device that cannot
 * give `bytes` gets a recorded error, and nothing is launched. */
template <typename Kernel>
bool smem_ready(Kernel *fn, size_t bytes, int HS, std::atomic<bool> &done) {
    if (bytes <= 48 * 1024 || done.load()) return true;
    int dev = 0, optin = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                               dev) != cudaSuccess) {
        (void)cudaGetLastError();
        optin = 0;
    }
    if ((size_t)optin < bytes) {
        char what[128];
        snprintf(what, sizeof what,
                 "attention HS=%d needs %zu bytes of shared memory per block, "
                 "the device allows %d",
                 HS, bytes, optin);
        cuda_record_error(what, "attention", __FILE__, __LINE__);
        return false;
    }
    cudaError_t e = cudaFuncSetAttribute(
        fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) {
        cuda_record_error(cudaGetErrorString(e),
                          "cudaFuncSetAttribute (attention)", __FILE__,
                          __LINE__);
        return false;
    }
    done.store(true);
    return true;
}

/* The shapes every launch needs; false (with an error recorded where it is
 * one) when there is nothing to do or it cannot be done. */
bool shape_ok(int B, int Tq, int Tk, int NH, int HS) {
    if (B <= 0 || Tq <= 0 || Tk <= 0 || NH <= 0 || HS <= 0)
        return false;
    char what[128];
    if (HS > kMaxHS)
        snprintf(what, sizeof what, "head size HS=%d above the supported %d",
                 HS, kMaxHS);
    else if (Tq > Tk)
        snprintf(what, sizeof what, "Tq=%d query rows against Tk=%d < Tq keys",
                 Tq, Tk);
    else if (B > 65535 || NH > 65535)
        snprintf(what, sizeof what, "B=%d or NH=%d above the grid limit 65535",
                 B, NH);
    else
        return true;
    cuda_record_error(what, "attention", __FILE__, __LINE__);
    return false;
}

template <int NC, int RM>
void fwd_launch(float *out, float *lse, const float *q, const float *k,
                const float *v, int B, int Tq, int Tk, int NH, int HS,
                int q_stride, int kv_stride, float scale) {
    constexpr size_t smem = fwd_smem<NC, RM>();
    static std::atomic<bool> opted{false};
    if (!smem_ready(attn_fwd_kernel<NC, RM>, smem, HS, opted)) return;
    dim3 grid((unsigned)((Tq + 16 * RM - 1) / (16 * RM)), (unsigned)NH,
              (unsigned)B);
    attn_fwd_kernel<NC, RM><<<grid, kThreads, smem, cuda_stream()>>>(
        out, lse, q, k, v, Tq, Tk, NH, HS, q_stride, kv_stride, scale);
    CUDA_CHECK_LAUNCH();
}

template <int NC>
void bwd_launch(float *dq, float *dk, float *dv, const float *dout,
                const float *lse, const float *D, const float *q,
                const float *k, const float *v, int B, int Tq, int Tk, int NH,
                int HS, int q_stride, int kv_stride, float scale) {
    if (dk || dv) {
        constexpr size_t smem = dkdv_smem<NC>();
        static std::atomic<bool> opted{false};
        if (!smem_ready(attn_bwd_dkdv_kernel<NC>, smem, HS, opted)) return;
        dim3 grid((unsigned)((Tk + 63) / 64), (unsigned)NH, (unsigned)B);
        attn_bwd_dkdv_kernel<NC><<<grid, kThreads, smem, cuda_stream()>>>(
            dk, dv, dout, lse, D, q, k, v, Tq, Tk, NH, HS, q_stride, kv_stride,
            scale);
        CUDA_CHECK_LAUNCH();
    }
    if (dq) {
        constexpr size_t smem = dq_smem<NC>();
        static std::atomic<bool> opted{false};
        if (!smem_ready(attn_bwd_dq_kernel<NC>, smem, HS, opted)) return;
        dim3 grid((unsigned)((Tq + 63) / 64), (unsigned)NH, (unsigned)B);
        attn_bwd_dq_kernel<NC><<<grid, kThreads, smem, cuda_stream()>>>(
            dq, dout, lse, D, q, k, v, Tq, Tk, NH, HS, q_stride, kv_stride,
            scale);
        CUDA_CHECK_LAUNCH();
    }
}

} // namespace

extern "C" void cuda_attention_fwd(float *out, float *lse, const float *q,
                                   const float *k, const float *v, int B,
                                   int Tq, int Tk, int NH, int HS, int q_stride,
                                   int kv_stride) {
    if (!shape_ok(B, Tq, Tk, NH, HS)) return;
    const float scale = 1.0f / sqrtf((float)HS);
    const bool small = Tq <= 32; /* 16-row query tiles: decode, short chunks */
#define FWD(NC)                                                                \
    (small ? fwd_launch<NC, 1>(out, lse, q, k, v, B, Tq, Tk, NH, HS, q_stride, \
                               kv_stride, scale)                               \
           : fwd_launch<NC, 4>(out, lse, q, k, v, B, Tq, Tk, NH, HS, q_stride, \
                               kv_stride, scale))
    if (HS <= 32)
        FWD(2);
    else if (HS <= 64)
        FWD(4);
    else
        FWD(8);
#undef FWD
}

extern "C" void cuda_attention_bwd(float *dq, float *dk, float *dv,
                                   const float *dout, const float *out,
                                   const float *lse, const float *q,
                                   const float *k, const float *v, int B,
                                   int Tq, int Tk, int NH, int HS, int q_stride,
                                   int kv_stride) {
    if (!dq && !dk && !dv) return;
    if (!shape_ok(B, Tq, Tk, NH, HS)) return;
    const float scale = 1.0f / sqrtf((float)HS);
    const long long rows = (long long)B * NH * Tq;
    float *D = (float *)cuda_scratch((size_t)rows * sizeof(float));
    if (!D) return;
    attn_rowdot_kernel<<<(unsigned)((rows + 7) / 8), 256, 0, cuda_stream()>>>(
        D, dout, out, rows, Tq, NH, HS);
    CUDA_CHECK_LAUNCH();
    if (HS <= 32)
        bwd_launch<2>(dq, dk, dv, dout, lse, D, q, k, v, B, Tq, Tk, NH, HS,
                      q_stride, kv_stride, scale);
    else if (HS <= 64)
        bwd_launch<4>(dq, dk, dv, dout, lse, D, q, k, v, B, Tq, Tk, NH, HS,
                      q_stride, kv_stride, scale);
    else
        bwd_launch<8>(dq, dk, dv, dout, lse, D, q, k, v, B, Tq, Tk, NH, HS,
                      q_stride, kv_stride, scale);
}
