/* src/common/gpt2.h — GPT-2 forward and backward over the op interface.
 *
 * Holds the parameters, their gradients and the activations for one batch
 * shape in the backend's memory, and strings the ops of kernels/ops.h into
 * the model's forward and backward pass. Training and (later) inference use
 * the same code; nothing here knows which backend runs.
 *
 * Tensor parallelism (Megatron-style, docs/distributed.md): created with a
 * TP group of T ranks, the model holds only this rank's shard of every
 * parameter (shard_table.h): whole attention heads of c_attn (column-
 * parallel) and the matching columns of attn.c_proj (row-parallel), a slice
 * of the MLP hidden width in c_fc (column) and mlp.c_proj (row), and a slice
 * of the vocabulary of wte, which is both the embedding and the LM head.
 * Layernorms, wpe and the row-parallel biases are replicated. The residual
 * stream [B,T,C] is whole and identical on every rank; each row-parallel
 * matmul leaves a partial sum that one allreduce completes (forward), and
 * each column-parallel matmul's input gradient is a partial sum completed the
 * same way (backward). The loss is a vocabulary-parallel cross-entropy:
 * ranks exchange per-row maxima and sums, never logits.
 */
#ifndef LLMPI_GPT2_H
#define LLMPI_GPT2_H

#include <stdint.h>

#include "comm.h"
#include "model.h"
#include "ops.h"
#include "shard_table.h"

/* Saved activations of one layer for a [B, T] batch (pointers into one
 * buffer). "resid" names are residual-stream values. */
struct gpt2_layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* [B,T,C], [B,T], [B,T] */
    float *qkv;                       /* [B,T,3C] */
    float *lse;                       /* [B,NH,T] attention log-sum-exp per row */
    float *atty;                      /* [B,T,C] attention output, pre-projection */
    float *attproj;                   /* [B,T,C] */
    float *resid2;                    /* [B,T,C] stream after attention */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu; /* [B,T,4C] */
    float *fcproj;         /* [B,T,C] */
    float *resid3;         /* [B,T,C] stream after the MLP */
};

/* Per-op wall time, filled when gpt2.profile is set (bench --profile).
 * Each op call is bracketed by backend syncs, so the numbers are honest on
 * asynchronous backends too, at the price of the overlap they remove. */
#define GPT2_PROFILE_SLOTS 48
struct gpt2_profile {
    int n;
    const char *name[GPT2_PROFILE_SLOTS];
    double seconds[GPT2_PROFILE_SLOTS];
    long calls[GPT2_PROFILE_SLOTS];
};
/* Add `seconds` to the slot called `name` (names are string literals). */
void gpt2_profile_add(struct gpt2_profile *p, const char *name, double seconds);

struct gpt2 {
    struct gpt2_config cfg;
    /* The parameters this rank holds: without TP the whole model, with TP its
     * shard (table is shard.local, owned by shard). Optimizer, clipping and
     * DP walk `table` and never need to know which. */
    struct param_table table;
    struct param_table full;  /* the logical (unsharded) table */
    struct shard_table shard; /* TP layout; tp_size 1: one shard of everything */
    const struct comm *tp;    /* the TP group; NULL without TP (not owned) */
    double tp_comm_s;         /* seconds in TP collectives, summed over calls */
    const struct ops *ops;
    float *params; /* table.total floats, backend memory */
    float *grads;  /* same layout */

    /* Activations for the current batch shape (re-allocated when B*T grows). */
    int B, T, cap_BT;
    float *act_buf, *grad_buf;
    float *encoded;                 /* [B,T,C] embedding output */
    struct gpt2_layer_acts *layers; /* [L] */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;           /* [B,T,V local]; overwritten by dlogits in backward */
    float *xent;             /* [4,B,T] vocab-parallel xent: local max, global
                                max, sum of exp, target logit (TP only) */
    float *losses, *dlosses; /* [B,T] */
    /* backward scratch, reused by every layer */
    float *dstream, *dln, *datty, *dqkv, *dfch, *dfch_gelu;
    int32_t *tokens, *targets; /* [B,T] backend copies */
    float *host_losses;        /* [B,T] host copy */
    int have_targets;
    struct gpt2_profile *profile; /* NULL: not profiling */

    /* Optional (NULL: off). gpt2_backward calls it once for every parameter
     * tensor, with the tensor's range of the flat buffer (table offset and
     * numel), as soon as that tensor's gradient is final: ln_f first, then
     * a layer's tensors right after the layer's backward (last layer first),
     * then wte and wpe at the end. (The flat buffer holds wte, wpe, the
     * layers, ln_f: its tail is ready first, its head last.) Every element is reported exactly once per backward.
     * Data parallelism uses it to start averaging gradient buckets while
     * backward goes on (src/train/dp.h). */
    void (*grads_ready)(void *ctx, size_t offset, size_t count);
    void *grads_ready_ctx;
};

/* Tensor `index` of the parameter table inside a buffer of table layout
 * (m->params, m->grads, optimizer state). */
static inline float *gpt2_tensor(const struct gpt2 *m, float *base, int index) {
    return base + m->table.p[index].offset;
}

/* Allocate parameters and gradients (uninitialised). -1 + err_set on error. */
int gpt2_create(struct gpt2 *m, const struct gpt2_config *cfg, const struct ops *ops);
/* The same for tensor-parallel rank tp->rank of tp->size (tp NULL or of size
 * 1: gpt2_create). Collective calls on tp happen in every forward and
 * backward, in the same order on every member; on the CUDA backend tp must
 * have NCCL attached (backend_attach_comm). -1 + err_set when cfg does not
 * split over tp->size ranks (shard_check). */
int gpt2_create_tp(struct gpt2 *m, const struct gpt2_config *cfg, const struct ops *ops,
                   const struct comm *tp);
void gpt2_destroy(struct gpt2 *m);

/* Copy parameters from / to a host buffer of table.total floats (this rank's
 * layout: the whole model without TP). */
void gpt2_set_params(struct gpt2 *m, const float *host);
void gpt2_get_params(const struct gpt2 *m, float *host);
void gpt2_get_grads(const struct gpt2 *m, float *host);

/* Forward pass on host token arrays [B*T]. With targets (may be NULL), the
 * per-position losses are computed and *mean_loss (if not NULL) receives
 * their mean over positions with target >= 0. Logits stay in m->logits.
 * -1 + err_set for a bad shape (T > context, token out of vocabulary). */
int gpt2_forward(struct gpt2 *m, const int32_t *tokens, const int32_t *targets, int B,
                 int T, double *mean_loss);

/* Backward pass of the last forward (which must have had targets): zeroes
 * the gradients, then fills them with d(mean loss)/d(params), calling
 * m->grads_ready (when set) as tensors become final. Under TP, a replicated
 * tensor's gradient (the same math on every rank) is broadcast from TP rank 0
 * before it is reported, so replicated parameters stay bit-identical. */
int gpt2_backward(struct gpt2 *m);

#endif
