/* kernels/cuda/optimizer.cu — SGD with momentum and Adam/AdamW, fused over
 * every tensor of a flat parameter buffer.
 *
 * SGD (torch.optim.SGD semantics, dampening 0):
 *   g' = g + wd p;  m = momentum m + g';  p -= lr m
 * Adam (decoupled = 0, L2 folded into the gradient) / AdamW (decoupled != 0):
 *   AdamW: p *= 1 - lr wd;  g' = g        Adam: g' = g + wd p
 *   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
 *   p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * The bias corrections 1/(1 - b^t) and each run's decay factor are computed
 * on the host in float, as the CPU reference does, and passed in.
 *
 * Fusion: tensors differ only in weight decay, so the whole buffer is one
 * grid-stride loop and the per-tensor rule travels as runs (ops.h): up to
 * RUNS_PER_LAUNCH runs by value in the kernel's parameters (2 KiB, under the
 * 4 KiB limit), copied into shared memory by each block. A thread finds the
 * run of its first element by binary search, then only walks forward (its
 * indices only grow). GPT-2 124M has ~100 runs: one launch per step instead
 * of ~150; deeper models take a launch per 128 runs.
 *
 * Launch shape: 1-D grid-stride over the chunk's elements, 256 threads.
 */
#include "cuda_internal.h"

#define RUNS_PER_LAUNCH 128

struct run_chunk {
    size_t begin;                 /* first element of run 0 */
    size_t end[RUNS_PER_LAUNCH];  /* one past each run's last element */
    float wd[RUNS_PER_LAUNCH];    /* SGD's wd, Adam's L2 term (0 for AdamW) */
    float decay[RUNS_PER_LAUNCH]; /* AdamW's p *= decay (1 otherwise) */
    int count;
};

struct run_cursor {
    const size_t *end;
    int count, r;
};

/* Load the chunk's table into shared memory (every thread of the block). */
__device__ void load_runs(const run_chunk &c, size_t *end, float *wd, float *decay) {
    for (int r = threadIdx.x; r < c.count; r += blockDim.x) {
        end[r] = c.end[r];
        wd[r] = c.wd[r];
        decay[r] = c.decay[r];
    }
    __syncthreads();
}

/* The run holding element i, at or after cursor->r (binary search the first
 * time, a forward walk after). */
__device__ __forceinline__ int run_of(run_cursor *cur, size_t i) {
    if (cur->r < 0) {
        int lo = 0, hi = cur->count - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (i < cur->end[mid]) hi = mid;
            else lo = mid + 1;
        }
        cur->r = lo;
    }
    while (i >= cur->end[cur->r]) cur->r++;
    return cur->r;
}

__global__ void sgd_kernel(float *p, const float *g, float *m, run_chunk c, float lr,
                           float momentum) {
    __shared__ size_t end[RUNS_PER_LAUNCH];
    __shared__ float wd[RUNS_PER_LAUNCH], decay[RUNS_PER_LAUNCH];
    load_runs(c, end, wd, decay);
    run_cursor cur = {end, c.count, -1};
    const size_t stop = end[c.count - 1];
    for (size_t i = c.begin + blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < stop;
         i += (size_t)gridDim.x * blockDim.x) {
        int r = run_of(&cur, i);
        float pi = p[i];
        float gi = g[i] + wd[r] * pi;
        float mi = momentum * m[i] + gi;
        m[i] = mi;
        p[i] = pi - lr * mi;
    }
}

__global__ void adam_kernel(float *p, const float *g, float *m, float *v, run_chunk c,
                            float lr, float b1, float b2, float eps, float c1, float c2) {
    __shared__ size_t end[RUNS_PER_LAUNCH];
    __shared__ float l2[RUNS_PER_LAUNCH], decay[RUNS_PER_LAUNCH];
    load_runs(c, end, l2, decay);
    run_cursor cur = {end, c.count, -1};
    const size_t stop = end[c.count - 1];
    for (size_t i = c.begin + blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < stop;
         i += (size_t)gridDim.x * blockDim.x) {
        int r = run_of(&cur, i);
        float p0 = p[i];
        float gi = g[i] + l2[r] * p0;
        float pi = p0 * decay[r];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - lr * (mi * c1) / (sqrtf(vi * c2) + eps);
    }
}

/* Cut runs[0..nruns) (clamped to n, empty runs dropped) into launch-sized
 * chunks; calls launch(chunk) for each. adam: wd becomes the L2 term and
 * decay the AdamW factor; sgd: wd as given, decay unused. */
template <typename Launch>
static void for_each_chunk(size_t n, const ops_decay_run *runs, int nruns, int adam,
                           int decoupled, float lr, Launch launch) {
    run_chunk c;
    c.begin = 0;
    c.count = 0;
    size_t a = 0;
    for (int r = 0; r < nruns && a < n; r++) {
        size_t b = runs[r].end < n ? runs[r].end : n;
        if (b <= a) continue;
        float wd = runs[r].wd;
        c.end[c.count] = b;
        c.wd[c.count] = adam && decoupled ? 0.0f : wd;
        c.decay[c.count] = adam && decoupled ? 1.0f - lr * wd : 1.0f;
        c.count++;
        a = b;
        if (c.count == RUNS_PER_LAUNCH) {
            launch(c, c.end[c.count - 1] - c.begin);
            c.begin = a;
            c.count = 0;
        }
    }
    if (c.count > 0) launch(c, c.end[c.count - 1] - c.begin);
}

extern "C" void cuda_sgd_update(float *p, const float *g, float *m, size_t n,
                                const ops_decay_run *runs, int nruns, float lr,
                                float momentum) {
    for_each_chunk(n, runs, nruns, 0, 0, lr, [&](const run_chunk &c, size_t len) {
        sgd_kernel<<<cuda_grid_1d(len, 256), 256, 0, cuda_stream()>>>(p, g, m, c, lr,
                                                                      momentum);
        CUDA_CHECK_LAUNCH();
    });
}

extern "C" void cuda_adam_update(float *p, const float *g, float *m, float *v, size_t n,
                                 const ops_decay_run *runs, int nruns, float lr, float b1,
                                 float b2, float eps, int t, int decoupled) {
    const float c1 = 1.0f / (1.0f - powf(b1, (float)t));
    const float c2 = 1.0f / (1.0f - powf(b2, (float)t));
    for_each_chunk(n, runs, nruns, 1, decoupled, lr, [&](const run_chunk &c, size_t len) {
        adam_kernel<<<cuda_grid_1d(len, 256), 256, 0, cuda_stream()>>>(
            p, g, m, v, c, lr, b1, b2, eps, c1, c2);
        CUDA_CHECK_LAUNCH();
    });
}
