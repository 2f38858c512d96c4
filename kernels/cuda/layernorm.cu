/* kernels/cuda/layernorm.cu — layer normalisation over the last axis.
 *
 * Forward, per row x of C values (eps = 1e-5):
 *   mean = sum(x)/C;  rstd = 1/sqrt(sum((x-mean)^2)/C + eps)
 *   xhat = (x - mean) * rstd;  out = xhat * w + b
 * Backward, with g = dout * w:
 *   db += sum_rows dout;  dw += sum_rows dout * xhat
 *   dx += rstd * (g - mean(g) - xhat * mean(g * xhat))
 *
 * Launch shapes:
 *   fwd, bwd dx: one warp per row, 8 warps (256 threads) per block,
 *                grid ceil(N/8); lanes stride over C; warp-shuffle sums.
 *   bwd dw/db:   deterministic two-stage column reduction, no atomics.
 *                Stage 1: grid (ceil(C/32), ceil(N/LN_ROWS)), block (32, 8):
 *                block (cx, cy) owns 32 columns and rows
 *                [cy*LN_ROWS, (cy+1)*LN_ROWS); thread (tx, ty) sums rows
 *                ty, ty+8, ... of that chunk, then the 8 partials are added in
 *                fixed order through shared memory and written to a scratch
 *                partial[cy][c]. Stage 2: one thread per column adds the
 *                chunks' partials in order and accumulates into dw / db.
 */
#include "cuda_internal.h"

#define LN_EPS 1e-5f
#define LN_ROWS 128 /* rows per dw/db partial chunk */

__global__ void layernorm_fwd_kernel(float *out, float *mean, float *rstd,
                                     const float *inp, const float *w,
                                     const float *b, int N, int C) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= N) return; /* whole warp leaves together */
    const float *x = inp + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c];
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    float r = 1.0f / sqrtf(warp_sum(v) / C + LN_EPS);
    float *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = r;
    }
}

__global__ void layernorm_bwd_dx_kernel(float *dinp, const float *dout,
                                        const float *inp, const float *w,
                                        const float *mean, const float *rstd,
                                        int N, int C) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    const float *d = dout + (size_t)row * C;
    float m = mean[row], r = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float xhat = (x[c] - m) * r;
        float g = __fmul_rn(d[c], w[c]); /* no FMA contraction: the same g */
        sg += g;                            /* is rebuilt below */
        sgx += g * xhat;
    }
    float mean_g = warp_sum(sg) / C;
    float mean_gx = warp_sum(sgx) / C;
    float *dx = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float xhat = (x[c] - m) * r;
        dx[c] += r * (__fmul_rn(d[c], w[c]) - mean_g - xhat * mean_gx);
    }
}

/* stage 1: partial[chunk][c] (dw) and partial[nchunks + chunk][c] (db) */
__global__ void layernorm_bwd_dwdb_partial(float *partial, const float *dout,
                                           const float *inp, const float *mean,
                                           const float *rstd, int N, int C) {
    __shared__ float sdw[8][33], sdb[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * LN_ROWS;
    int r1 = min(N, r0 + LN_ROWS);
    float adw = 0.0f, adb = 0.0f;
    if (c < C) {
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            float d = dout[(size_t)r * C + c];
            float xhat = (inp[(size_t)r * C + c] - mean[r]) * rstd[r];
            adb += d;
            adw += d * xhat;
        }
    }
    sdw[threadIdx.y][threadIdx.x] = adw;
    sdb[threadIdx.y][threadIdx.x] = adb;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float tw = 0.0f, tb = 0.0f;
        for (int y = 0; y < 8; y++) {
            tw += sdw[y][threadIdx.x];
            tb += sdb[y][threadIdx.x];
        }
        partial[(size_t)blockIdx.y * C + c] = tw;
        partial[((size_t)gridDim.y + blockIdx.y) * C + c] = tb;
    }
}

/* stage 2: dw[c] += sum_chunks partial[chunk][c], db likewise */
__global__ void layernorm_bwd_dwdb_final(float *dw, float *db,
                                         const float *partial, int nchunks,
                                         int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float tw = 0.0f, tb = 0.0f;
    for (int k = 0; k < nchunks; k++) {
        tw += partial[(size_t)k * C + c];
        tb += partial[((size_t)nchunks + k) * C + c];
    }
    if (dw) dw[c] += tw;
    if (db) db[c] += tb;
}

extern "C" void cuda_layernorm_fwd(float *out, float *mean, float *rstd,
                                   const float *inp, const float *w,
                                   const float *b, int N, int C) {
    if (N <= 0 || C <= 0) return;
    layernorm_fwd_kernel<<<(N + 7) / 8, 256, 0, cuda_stream()>>>(
        out, mean, rstd, inp, w, b, N, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_layernorm_bwd(float *dinp, float *dw, float *db,
                                   const float *dout, const float *inp,
                                   const float *w, const float *mean,
                                   const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0) return;
    if (dinp) {
        layernorm_bwd_dx_kernel<<<(N + 7) / 8, 256, 0, cuda_stream()>>>(
            dinp, dout, inp, w, mean, rstd, N, C);
        CUDA_CHECK_LAUNCH();
    }
    if (dw || db) {
        int nchunks = (N + LN_ROWS - 1) / LN_ROWS;
        float *partial =
            (float *)cuda_scratch((size_t)2 * nchunks * C * sizeof(float));
        if (!partial) return;
        dim3 grid((C + 31) / 32, nchunks), block(32, 8);
        layernorm_bwd_dwdb_partial<<<grid, block, 0, cuda_stream()>>>(
            partial, dout, inp, mean, rstd, N, C);
        CUDA_CHECK_LAUNCH();
        layernorm_bwd_dwdb_final<<<(C + 255) / 256, 256, 0, cuda_stream()>>>(
            dw, db, partial, nchunks, C);
        CUDA_CHECK_LAUNCH();
    }
}
