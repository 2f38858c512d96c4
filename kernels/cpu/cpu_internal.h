/* kernels/cpu/cpu_internal.h — declarations shared by the CPU backend files
 * (one file per op; ops_cpu.c gathers them into the `struct ops` table). */
#ifndef LLMPI_CPU_INTERNAL_H
#define LLMPI_CPU_INTERNAL_H

#include "ops.h"

void *cpu_alloc(size_t bytes);
void cpu_free(void *p);
void cpu_zero(void *p, size_t bytes);
void cpu_copy(void *dst, const void *src, size_t bytes);
void cpu_sync(void);

void cpu_embedding_fwd(float *out, const int32_t *tok, const float *wte, const float *wpe,
                       int B, int T, int C, int pos0, int vocab_start, int V);
void cpu_embedding_bwd(float *dwte, float *dwpe, const float *dout, const int32_t *tok,
                       int B, int T, int C, int pos0, int vocab_start, int V);
void cpu_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C);
void cpu_layernorm_bwd(float *dinp, float *dw, float *db, const float *dout,
                       const float *inp, const float *w, const float *mean,
                       const float *rstd, int N, int C);
void cpu_matmul_fwd(float *out, const float *inp, const float *w, const float *bias,
                    int N, int C, int OC);
void cpu_matmul_bwd(float *dinp, float *dw, float *dbias, const float *dout,
                    const float *inp, const float *w, int N, int C, int OC);
int cpu_set_matmul_dtype(enum ops_dtype dt);
enum ops_dtype cpu_matmul_dtype(void);
void cpu_attention_fwd(float *out, float *lse, const float *q, const float *k,
                       const float *v, int B, int Tq, int Tk, int NH, int HS,
                       int q_stride, int kv_stride);
void cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                       const float *out, const float *lse, const float *q,
                       const float *k, const float *v, int B, int Tq, int Tk, int NH,
                       int HS, int q_stride, int kv_stride);
void cpu_attention_paged_fwd(float *out, const float *q, const float *kv,
                             const int32_t *seqs, const int32_t *tables, int n_seqs,
                             int total_q_rows, int max_blocks, int block_size, int NH,
                             int HS, int q_stride, int kv_stride, int v_offset);
void cpu_gelu_fwd(float *out, const float *inp, size_t n);
void cpu_gelu_bwd(float *dinp, const float *dout, const float *inp, size_t n);
void cpu_residual_fwd(float *out, const float *a, const float *b, size_t n);
void cpu_residual_bwd(float *da, float *db, const float *dout, size_t n);
void cpu_xent_fwd(float *loss, const float *logits, const int32_t *target, int N, int V);
void cpu_xent_bwd_inplace(float *logits, const int32_t *target, const float *dloss, int N,
                          int V);
void cpu_xent_shard_stats(float *rowmax, float *rowsumexp, float *target_logit,
                          const float *logits, const int32_t *target, int N, int V,
                          int vocab_start);
void cpu_xent_shard_rescale(float *sumexp, const float *localmax, const float *globalmax,
                            int N);
void cpu_xent_shard_loss(float *loss, const float *globalmax, const float *globalsumexp,
                         const float *target_logit, const int32_t *target, int N);
void cpu_xent_shard_bwd_inplace(float *logits, const int32_t *target, const float *dloss,
                                const float *globalmax, const float *globalsumexp, int N,
                                int V, int vocab_start);
void cpu_sgd_update(float *p, const float *g, float *m, size_t n,
                    const struct ops_decay_run *runs, int nruns, float lr,
                    float momentum);
void cpu_adam_update(float *p, const float *g, float *m, float *v, size_t n,
                     const struct ops_decay_run *runs, int nruns, float lr, float b1,
                     float b2, float eps, int t, int decoupled);
double cpu_sumsq(const float *x, size_t n);
void cpu_scale(float *x, size_t n, float s);

#endif
