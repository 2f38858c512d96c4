/*
 * kernels/ops.h — the one numeric interface of llmpi.
 *
 * Every op a GPT-2 forward, backward and optimizer step needs is declared here
 * once, as a function pointer in `struct ops`. A backend (kernels/cpu, later
 * kernels/cuda) fills the table; everything above kernels/ calls through it and
 * never knows which backend runs. All pointers passed to an op live in the
 * backend's memory (host memory for cpu, device memory for cuda); use the
 * backend's alloc/upload/download to move data.
 *
 * Conventions
 *  - fp32, row-major, C order. "N" is the number of rows (B*T tokens).
 *  - Linear weights are stored [OC, C] (out, in), like torch.nn.Linear:
 *    out[n, o] = sum_c inp[n, c] * w[o, c] + bias[o].
 *  - Backward ops ACCUMULATE (+=) into every gradient they produce (dinp,
 *    dweight, dbias). The caller zeroes gradients once per step. This makes
 *    residual branches and tied weights (wte used by embedding and LM head)
 *    need no extra buffers.
 *  - Tensor parallelism: ops see only the local shard. Matmuls take the local
 *    OC (column-parallel) or local C (row-parallel); attention takes the local
 *    number of heads; embedding and cross-entropy take a vocabulary range
 *    [vocab_start, vocab_start + V) so the vocabulary can be split across ranks
 *    (a token outside the range contributes nothing on that rank).
 *  - Inference: attention takes Tq query rows against Tk >= Tq key rows, the
 *    queries being the LAST Tq positions (a KV cache decode step is Tq = 1),
 *    with row strides so q/k/v may sit inside a packed qkv buffer or a cache.
 */
#ifndef LLMPI_OPS_H
#define LLMPI_OPS_H

#include <stddef.h>
#include <stdint.h>

/* A run of consecutive parameters with one weight decay (optimizer updates). */
struct ops_decay_run {
    size_t end; /* one past the run's last element */
    float wd;
};

/* The precision of the matmuls' operands (set_matmul_dtype below). */
enum ops_dtype { OPS_F32 = 0, OPS_BF16 = 1 };

struct ops {
    const char *name;

    /* ---- memory ---------------------------------------------------------- */
    void *(*alloc)(size_t bytes); /* NULL on failure */
    void (*free)(void *p);
    void (*zero)(void *p, size_t bytes);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);
    void (*sync)(void); /* wait for queued work */

    /* ---- embedding --------------------------------------------------------
     * out[b,t,:] = wte[tok[b,t] - vocab_start, :] + wpe[pos0 + t, :]
     * wte holds rows [vocab_start, vocab_start + V); a token outside gets no
     * wte term. wpe may be NULL (no position term: e.g. on all but one TP rank).
     */
    void (*embedding_fwd)(float *out, const int32_t *tok, const float *wte,
                          const float *wpe, int B, int T, int C, int pos0,
                          int vocab_start, int V);
    void (*embedding_bwd)(float *dwte, float *dwpe, const float *dout, const int32_t *tok,
                          int B, int T, int C, int pos0, int vocab_start, int V);

    /* ---- layernorm --------------------------------------------------------
     * out = (x - mean) * rstd * w + b over the last axis (eps 1e-5).
     * mean/rstd [N] are saved for backward (may be NULL in inference).
     */
    void (*layernorm_fwd)(float *out, float *mean, float *rstd, const float *inp,
                          const float *w, const float *b, int N, int C);
    void (*layernorm_bwd)(float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const float *mean,
                          const float *rstd, int N, int C);

    /* ---- matmul with bias -------------------------------------------------
     * out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC]   (bias may be NULL)
     * backward: dinp += dout @ w; dw += dout^T @ inp; dbias += sum_n dout.
     * Any of dinp/dw/dbias may be NULL to skip it.
     */
    void (*matmul_fwd)(float *out, const float *inp, const float *w, const float *bias,
                       int N, int C, int OC);
    void (*matmul_bwd)(float *dinp, float *dw, float *dbias, const float *dout,
                       const float *inp, const float *w, int N, int C, int OC);

    /* ---- causal multi-head self-attention ---------------------------------
     * For batch b, head h, query row i (absolute position Tk - Tq + i):
     *   s[j]   = <q_i, k_j> / sqrt(HS)  for j <= Tk - Tq + i, masked otherwise
     *   lse_i  = log sum_{visible j} exp(s[j])     (natural log; saved in
     *                                               lse[B,NH,Tq] at
     *                                               (b*NH + h)*Tq + i)
     *   p[j]   = exp(s[j] - lse_i)                 (softmax; never stored)
     *   out_i  = sum_j p[j] v_j
     * q row (b,i) starts at q + (b*Tq + i)*q_stride + h*HS; k/v row (b,j) at
     * k + (b*Tk + j)*kv_stride + h*HS; out row at out + (b*Tq+i)*NH*HS + h*HS.
     * Training: Tq = Tk = T and q/k/v point into one [B,T,3C] qkv buffer
     * (q_stride = kv_stride = 3C). lse may be NULL (inference: nothing is
     * saved). No [Tq, Tk] matrix is ever kept: the saved state is O(B*NH*Tq).
     * Backward, given the forward's out and lse (out and dout share out's
     * layout), recomputes p from lse:
     *   D_i   = <dout_i, out_i>                   (= sum_j p[j] dp[j])
     *   dp[j] = <dout_i, v_j>
     *   ds[j] = p[j] (dp[j] - D_i) / sqrt(HS)
     *   dq_i += sum_j ds[j] k_j;  dk_j += ds[j] q_i;  dv_j += p[j] dout_i
     * dq, dk, dv accumulate with the same strides as q, k, v; any of them may
     * be NULL to skip it. A backend may bound HS (CUDA: HS <= 128) and
     * reports a larger one as an error (see the backend's error record).
     */
    void (*attention_fwd)(float *out, float *lse, const float *q, const float *k,
                          const float *v, int B, int Tq, int Tk, int NH, int HS,
                          int q_stride, int kv_stride);
    void (*attention_bwd)(float *dq, float *dk, float *dv, const float *dout,
                          const float *out, const float *lse, const float *q,
                          const float *k, const float *v, int B, int Tq, int Tk, int NH,
                          int HS, int q_stride, int kv_stride);

    /* ---- causal attention over a paged KV cache (inference) ---------------
     * n_seqs sequences in one call (continuous batching), NH heads of HS.
     * Sequence s is seqs[3s .. 3s+2] = {qstart, nq, kvlen}: its query rows
     * are rows qstart .. qstart+nq-1 of q and out, and they are its LAST nq
     * positions of kvlen (1 <= nq <= kvlen), so its query i (absolute
     * position kvlen - nq + i) sees keys j = 0 .. kvlen - nq + i:
     *   s[j]  = <q_i, k_j> / sqrt(HS)
     *   out_i = sum_j softmax(s)[j] v_j           (fp32, max-subtracted)
     * Key j of sequence s lies in block b = tables[s*max_blocks + j/block_size],
     * row j % block_size: head h of k_j at
     *   kv + (b*block_size + j % block_size)*kv_stride + h*HS,
     * of v_j at that + v_offset. q row r of head h at q + r*q_stride + h*HS,
     * out row r at out + r*NH*HS + h*HS (as attention_fwd). Rows of out in no
     * sequence's range are not written; every qstart + nq <= total_q_rows.
     * seqs ([n_seqs][3]) and tables ([n_seqs][max_blocks]) are int32 arrays in
     * backend memory (uploaded once per step, reused for every layer: kv is
     * the layer's base, block ids index within it). Nothing is saved: no
     * probabilities, no backward.
     * A row's result depends only on its q row and its keys/values in position
     * order: not on which blocks hold them, nor on nq or the other sequences.
     * So the same values through any block table (a contiguous cache is one
     * block with block_size >= kvlen) give bitwise the same output.
     * CUDA: HS <= 256 (larger is a recorded error, nothing written).
     */
    void (*attention_paged_fwd)(float *out, const float *q, const float *kv,
                                const int32_t *seqs, const int32_t *tables, int n_seqs,
                                int total_q_rows, int max_blocks, int block_size, int NH,
                                int HS, int q_stride, int kv_stride, int v_offset);

    /* ---- GELU, tanh form --------------------------------------------------
     * gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
     */
    void (*gelu_fwd)(float *out, const float *inp, size_t n);
    void (*gelu_bwd)(float *dinp, const float *dout, const float *inp, size_t n);

    /* ---- residual: out = a + b; backward da += dout, db += dout ----------- */
    void (*residual_fwd)(float *out, const float *a, const float *b, size_t n);
    void (*residual_bwd)(float *da, float *db, const float *dout, size_t n);

    /* ---- fused softmax + cross-entropy over the vocabulary ----------------
     * loss[n] = logsumexp(logits[n,:]) - logits[n, target[n]]
     * Backward overwrites logits in place with the gradient
     *   dlogits[n,v] = dloss[n] * (softmax(logits[n,:])[v] - [v == target[n]])
     * (the logits are the largest activation; reusing them halves the memory).
     * A target < 0 marks a position with no loss (loss 0, gradient 0).
     */
    void (*xent_fwd)(float *loss, const float *logits, const int32_t *target, int N,
                     int V);
    void (*xent_bwd_inplace)(float *logits, const int32_t *target, const float *dloss,
                             int N, int V);

    /* ---- cross-entropy over a vocabulary shard (tensor parallelism) -------
     * Each rank holds logits[N, V] for the ids [vocab_start, vocab_start + V)
     * only. Over the whole vocabulary, with M[n] = max_v z[n,v] and
     * S[n] = sum_v exp(z[n,v] - M[n]):
     *   loss[n]  = log S[n] + M[n] - z[n, target[n]]
     *   dz[n,v]  = dloss[n] * (exp(z[n,v] - M[n]) / S[n] - [v == target[n]])
     * M and S decompose over the shards r, from the local m_r = max of the
     * shard's row and s_r = sum over the shard exp(z - m_r):
     *   M = max_r m_r,   S = sum_r s_r * exp(m_r - M).
     * One step on every rank, exchanging only per-row scalars:
     *   1. xent_shard_stats(m, s, zt, ...)   local m_r, s_r; zt = z[n,target]
     *                                        if the target is in this shard,
     *                                        else 0 (also 0 for target < 0)
     *   2. caller: allreduce-max m -> M
     *   3. xent_shard_rescale(s, m, M, N)    s_r *= exp(m_r - M)
     *   4. caller: allreduce-sum s -> S and zt -> z[n, target[n]] (one rank
     *      contributes it, the others 0, so this sum is exact); keeping s and
     *      zt adjacent in one [2N] buffer makes it a single allreduce
     *   5. xent_shard_loss(loss, M, S, zt, target, N)   (same on every rank)
     *   6. xent_shard_bwd_inplace(logits, ..., M, S, ...) the shard's dz,
     *      written over its logits in place (no further communication)
     * target < 0: loss 0, gradient 0. A shard with V == 0 (or a row of -inf)
     * has m_r = -inf and s_r = 0, and the rescale keeps s_r = 0.
     * With a single shard (vocab_start 0, V the whole vocabulary) these follow
     * the fused ops' arithmetic, so they agree with xent_fwd/xent_bwd_inplace.
     */
    void (*xent_shard_stats)(float *rowmax, float *rowsumexp, float *target_logit,
                             const float *logits, const int32_t *target, int N, int V,
                             int vocab_start);
    void (*xent_shard_rescale)(float *sumexp, const float *localmax,
                               const float *globalmax, int N);
    void (*xent_shard_loss)(float *loss, const float *globalmax,
                            const float *globalsumexp, const float *target_logit,
                            const int32_t *target, int N);
    void (*xent_shard_bwd_inplace)(float *logits, const int32_t *target,
                                   const float *dloss, const float *globalmax,
                                   const float *globalsumexp, int N, int V,
                                   int vocab_start);

    /* ---- optimizer updates (fused over many tensors) ---------------------
     * One call updates the n elements p[0..n) of a flat parameter buffer
     * (every tensor of a model, or a ZeRO-1 shard of it), so a step is one
     * launch on a GPU rather than one per tensor. Tensors differ only in
     * their weight decay, given as runs: run r covers [runs[r-1].end,
     * runs[r].end) (run 0 starts at 0), runs[nruns-1].end == n, and its
     * elements use weight decay runs[r].wd. `runs` is HOST memory (a small
     * table, read when the update is queued).
     * sgd  : g' = g + wd*p; m = momentum*m + g'; p -= lr*m     (torch.optim.SGD)
     * adam : g' = g + wd*p (L2, when decoupled == 0); with decoupled != 0
     *        (AdamW) p *= 1 - lr*wd and g' = g. Then
     *        m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
     *        p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
     * t is the 1-based step count.
     */
    void (*sgd_update)(float *p, const float *g, float *m, size_t n,
                       const struct ops_decay_run *runs, int nruns, float lr,
                       float momentum);
    void (*adam_update)(float *p, const float *g, float *m, float *v, size_t n,
                        const struct ops_decay_run *runs, int nruns, float lr, float b1,
                        float b2, float eps, int t, int decoupled);

    /* ---- gradient norm and scaling (global-norm clipping) -----------------
     * sumsq returns sum x^2 in double precision (the caller adds tensors and,
     * under TP/DP, ranks); scale does x *= s.
     */
    double (*sumsq)(const float *x, size_t n);
    void (*scale)(float *x, size_t n, float s);

    /* ---- matmul operand precision (mixed precision, `--dtype bf16`) -------
     * Backend-wide, for every later matmul_fwd / matmul_bwd call until it is
     * set again (set it before a model runs, not while ops are queued from
     * another thread). OPS_F32 (the default, and the reference path): the
     * matmuls are fp32 throughout. OPS_BF16: each matmul rounds its two
     * operands to bf16 (round to nearest, ties to even) and multiplies with
     * fp32 accumulation into fp32 output:
     *   forward  out  = bf16(inp) @ bf16(w)^T + bias
     *   backward dinp += bf16(dout) @ bf16(w);  dw += bf16(dout)^T @ bf16(inp)
     * bias and dbias stay fp32 (dbias is the fp32 column sum of the unrounded
     * dout). Nothing else changes precision: every other op, the activations
     * stored between ops, the gradients, the master weights and the optimizer
     * state stay fp32. The operands are rounded into temporary copies on each
     * call, so bf16 saves matmul time (tensor cores) but no activation memory:
     * storing the activations in bf16 is not done.
     * Returns 0, or -1 (the setting unchanged) for a dtype this backend or
     * device cannot run (CUDA bf16 needs compute capability 8.0 or newer).
     */
    int (*set_matmul_dtype)(enum ops_dtype dt);
    enum ops_dtype (*matmul_dtype)(void);
};

/* The CPU reference backend (always present). */
const struct ops *ops_cpu(void);
/* Threads the CPU backend uses (OpenMP and OpenBLAS); n <= 0 keeps the
 * default (OMP_NUM_THREADS, else every core). */
void ops_cpu_set_threads(int n);

#endif
