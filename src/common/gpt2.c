/* src/common/gpt2.c — GPT-2 forward and backward as a sequence of ops.
 *
 * Forward, per layer l (x is the residual stream, [B,T,C]):
 *   ln1 = LN(x); qkv = ln1 W_qkv^T + b; atty = attn(qkv); resid2 = x + atty W_o^T + b
 *   ln2 = LN(resid2); fch = ln2 W_fc^T + b; resid3 = resid2 + gelu(fch) W_p^T + b
 * then lnf = LN(x_L), logits = lnf wte^T, loss = xent(logits, targets).
 *
 * Backward keeps ONE buffer, dstream, for the gradient of the residual
 * stream. A residual add passes its gradient through unchanged, so walking
 * the layers in reverse, each branch reads dstream as its output gradient and
 * the layernorm at the branch's root adds its input gradient back into it:
 *   dstream = dL/dresid3 -> (MLP branch, LN2 adds) -> dL/dresid2
 *           -> (attention branch, LN1 adds) -> dL/dx_l
 * No per-layer gradient buffers are needed; scratch is reused by every layer.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gpt2.h"
#include "timer.h"

void gpt2_profile_add(struct gpt2_profile *p, const char *name, double seconds) {
    int i = 0;
    while (i < p->n && strcmp(p->name[i], name) != 0)
        i++;
    if (i == p->n) {
        if (p->n == GPT2_PROFILE_SLOTS) return;
        p->name[p->n++] = name;
    }
    p->seconds[i] += seconds;
    p->calls[i] += 1;
}

/* Run one op call, timing it under `label` when profiling. */
#define OP(m, label, call)                                                               \
    do {                                                                                 \
        if ((m)->profile) {                                                              \
            (m)->ops->sync();                                                            \
            double t0_ = timer_now();                                                    \
            call;                                                                        \
            (m)->ops->sync();                                                            \
            gpt2_profile_add((m)->profile, label, timer_now() - t0_);                    \
        } else {                                                                         \
            call;                                                                        \
        }                                                                                \
    } while (0)

#define param gpt2_tensor
#define LP(m, base, l, k) param(m, base, PT_LAYER(l, k))

int gpt2_create(struct gpt2 *m, const struct gpt2_config *cfg, const struct ops *ops) {
    return gpt2_create_tp(m, cfg, ops, NULL);
}

int gpt2_create_tp(struct gpt2 *m, const struct gpt2_config *cfg, const struct ops *ops,
                   const struct comm *tp) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->ops = ops;
    if (tp && tp->size > 1) m->tp = tp; /* device buffers: NCCL (backend_attach_comm) */
    if (shard_table_build(cfg, m->tp ? tp->size : 1, m->tp ? tp->rank : 0, &m->shard))
        return -1;
    m->table = m->shard.local;
    if (param_table_build(cfg, &m->full)) {
        shard_table_free(&m->shard);
        return -1;
    }
    size_t bytes = m->table.total * sizeof(float);
    m->params = ops->alloc(bytes);
    m->grads = ops->alloc(bytes);
    m->layers = calloc((size_t)cfg->n_layer, sizeof *m->layers);
    if (!m->params || !m->grads || !m->layers) {
        gpt2_destroy(m);
        return err_set("out of memory allocating %zu parameters (%s backend)",
                       m->table.total, ops->name);
    }
    ops->zero(m->grads, bytes);
    return 0;
}

static void free_acts(struct gpt2 *m) {
    const struct ops *o = m->ops;
    if (m->act_buf) o->free(m->act_buf);
    if (m->grad_buf) o->free(m->grad_buf);
    if (m->tokens) o->free(m->tokens);
    if (m->targets) o->free(m->targets);
    free(m->host_losses);
    m->act_buf = m->grad_buf = NULL;
    m->tokens = m->targets = NULL;
    m->host_losses = NULL;
    m->cap_BT = 0;
}

void gpt2_destroy(struct gpt2 *m) {
    if (!m->ops) return;
    free_acts(m);
    if (m->params) m->ops->free(m->params);
    if (m->grads) m->ops->free(m->grads);
    free(m->layers);
    shard_table_free(&m->shard); /* owns table.p */
    param_table_free(&m->full);
    memset(m, 0, sizeof *m);
}

void gpt2_set_params(struct gpt2 *m, const float *host) {
    m->ops->upload(m->params, host, m->table.total * sizeof(float));
}

void gpt2_get_params(const struct gpt2 *m, float *host) {
    m->ops->download(host, m->params, m->table.total * sizeof(float));
}

void gpt2_get_grads(const struct gpt2 *m, float *host) {
    m->ops->download(host, m->grads, m->table.total * sizeof(float));
}

/* Carve the activation buffer for a [B,T] batch. Layout is a plain sequence
 * of arrays; `take` hands out consecutive slices (count first, then assign). */
struct carver {
    float *base;
    size_t used;
};
static float *take(struct carver *c, size_t n) {
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (n + 15) & ~(size_t)15; /* keep every array 64-byte aligned */
    return p;
}

static void layout_acts(struct gpt2 *m, struct carver *a, struct carver *g, int B,
                        int T) {
    /* local widths: attention (whole heads), MLP hidden, vocabulary */
    const struct shard_table *st = &m->shard;
    const size_t C = m->cfg.n_embd, NH = st->heads_local;
    const size_t CA = NH * (C / m->cfg.n_head), F = st->mlp_local, V = st->vocab_local;
    const size_t BT = (size_t)B * T;
    m->encoded = take(a, BT * C);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        struct gpt2_layer_acts *la = &m->layers[l];
        la->ln1 = take(a, BT * C);
        la->ln1_mean = take(a, BT);
        la->ln1_rstd = take(a, BT);
        la->qkv = take(a, BT * 3 * CA);
        la->lse = take(a, (size_t)B * NH * T);
        la->atty = take(a, BT * CA);
        la->attproj = take(a, BT * C);
        la->resid2 = take(a, BT * C);
        la->ln2 = take(a, BT * C);
        la->ln2_mean = take(a, BT);
        la->ln2_rstd = take(a, BT);
        la->fch = take(a, BT * F);
        la->fch_gelu = take(a, BT * F);
        la->fcproj = take(a, BT * C);
        la->resid3 = take(a, BT * C);
    }
    m->lnf = take(a, BT * C);
    m->lnf_mean = take(a, BT);
    m->lnf_rstd = take(a, BT);
    m->logits = take(a, BT * V);
    m->losses = take(a, BT);
    m->xent = take(a, 4 * BT);
    m->dlosses = take(g, BT);
    m->dstream = take(g, BT * C);
    m->dln = take(g, BT * C);
    m->datty = take(g, BT * CA);
    m->dqkv = take(g, BT * 3 * CA);
    m->dfch = take(g, BT * F);
    m->dfch_gelu = take(g, BT * F);
}

static int ensure_acts(struct gpt2 *m, int B, int T) {
    if (m->act_buf && B == m->B && T == m->T) return 0;
    free_acts(m);
    struct carver a = {0}, g = {0};
    layout_acts(m, &a, &g, B, T); /* sizing pass */
    const struct ops *o = m->ops;
    size_t BT = (size_t)B * T;
    m->act_buf = o->alloc(a.used * sizeof(float));
    m->grad_buf = o->alloc(g.used * sizeof(float));
    m->tokens = o->alloc(BT * sizeof(int32_t));
    m->targets = o->alloc(BT * sizeof(int32_t));
    m->host_losses = malloc(BT * sizeof(float));
    if (!m->act_buf || !m->grad_buf || !m->tokens || !m->targets || !m->host_losses) {
        free_acts(m);
        return err_set("out of memory for activations of batch %d x %d "
                       "(%.1f MiB)",
                       B, T, (a.used + g.used) * 4.0 / (1 << 20));
    }
    struct carver a2 = {m->act_buf, 0}, g2 = {m->grad_buf, 0};
    layout_acts(m, &a2, &g2, B, T);
    m->B = B;
    m->T = T;
    m->cap_BT = (int)BT;
    return 0;
}

/* ---- tensor-parallel collectives ----------------------------------------
 * No-ops without TP. Each is timed into m->tp_comm_s (and the profile): all
 * TP communication is on the critical path (nothing overlaps it here). */

static int tp_collective(struct gpt2 *m, const char *label, float *buf, size_t n,
                         enum comm_op op, int bcast) {
    if (!m->tp) return 0;
    double t0 = timer_now();
    int rc = bcast ? comm_broadcast(m->tp, buf, n, COMM_F32, 0)
                   : comm_allreduce(m->tp, buf, n, COMM_F32, op);
    double dt = timer_now() - t0;
    m->tp_comm_s += dt;
    if (m->profile) gpt2_profile_add(m->profile, label, dt);
    return rc;
}

/* Complete a partial sum over the TP group: a row-parallel matmul's output
 * (forward) or a column-parallel matmul's input gradient (backward). */
static int tp_sum(struct gpt2 *m, float *buf, size_t n) {
    return tp_collective(m, "tp allreduce", buf, n, COMM_SUM, 0);
}

/* The bias of a row-parallel layer is added once, by TP rank 0, so that the
 * allreduce of the partial outputs counts it once. */
static const float *row_bias(const struct gpt2 *m, const float *bias) {
    return m->tp && m->tp->rank != 0 ? NULL : bias;
}

/* Per-position losses: the fused softmax + cross-entropy over the whole
 * vocabulary, or under TP the vocabulary-parallel one (ops.h, steps 1-5),
 * whose M and S stay in m->xent for backward. */
static int loss_fwd(struct gpt2 *m, int N) {
    const struct ops *o = m->ops;
    const int V = m->shard.vocab_local, v0 = m->shard.vocab_start;
    if (!m->tp) {
        OP(m, "softmax+xent fwd", o->xent_fwd(m->losses, m->logits, m->targets, N, V));
        return 0;
    }
    float *lmax = m->xent, *gmax = m->xent + N, *sum = m->xent + 2 * (size_t)N;
    float *zt = sum + N; /* sum and zt adjacent: one allreduce */
    OP(m, "softmax+xent fwd",
       o->xent_shard_stats(lmax, sum, zt, m->logits, m->targets, N, V, v0));
    o->copy(gmax, lmax, (size_t)N * sizeof(float));
    if (tp_collective(m, "tp allreduce", gmax, (size_t)N, COMM_MAX, 0)) return -1;
    OP(m, "softmax+xent fwd", o->xent_shard_rescale(sum, lmax, gmax, N));
    if (tp_sum(m, sum, 2 * (size_t)N)) return -1;
    OP(m, "softmax+xent fwd", o->xent_shard_loss(m->losses, gmax, sum, zt, m->targets, N));
    return 0;
}

static void loss_bwd(struct gpt2 *m, int N) {
    const struct ops *o = m->ops;
    const int V = m->shard.vocab_local, v0 = m->shard.vocab_start;
    if (!m->tp) {
        OP(m, "softmax+xent bwd",
           o->xent_bwd_inplace(m->logits, m->targets, m->dlosses, N, V));
        return;
    }
    OP(m, "softmax+xent bwd",
       o->xent_shard_bwd_inplace(m->logits, m->targets, m->dlosses, m->xent + N,
                                 m->xent + 2 * (size_t)N, N, V, v0));
}

int gpt2_forward(struct gpt2 *m, const int32_t *tokens, const int32_t *targets, int B,
                 int T, double *mean_loss) {
    const struct gpt2_config *cfg = &m->cfg;
    const struct ops *o = m->ops;
    if (B < 1 || T < 1) return err_set("batch %d x %d is empty", B, T);
    if (T > cfg->max_seq)
        return err_set("sequence length %d exceeds the model's context %d", T,
                       cfg->max_seq);
    for (size_t i = 0; i < (size_t)B * T; i++) {
        if (tokens[i] < 0 || tokens[i] >= cfg->vocab_size)
            return err_set("token %d at position %zu is outside the vocabulary "
                           "[0, %d)",
                           tokens[i], i, cfg->vocab_size);
        if (targets && targets[i] >= cfg->vocab_size)
            return err_set("target %d at position %zu is outside the vocabulary "
                           "[0, %d)",
                           targets[i], i, cfg->vocab_size);
    }
    if (ensure_acts(m, B, T)) return -1;

    /* local widths (the whole model without TP) */
    const struct shard_table *st = &m->shard;
    const int C = cfg->n_embd, HS = C / cfg->n_head, NH = st->heads_local;
    const int CA = NH * HS, F = st->mlp_local, V = st->vocab_local;
    const int N = B * T;
    const size_t NC = (size_t)N * C;
    float *P = m->params;
    o->upload(m->tokens, tokens, (size_t)N * sizeof(int32_t));
    /* each TP rank embeds the tokens of its vocabulary slice (others get 0);
     * rank 0 adds the positions; the sum over the group is the embedding */
    const float *wpe = row_bias(m, param(m, P, PT_WPE));
    OP(m, "embedding fwd",
       o->embedding_fwd(m->encoded, m->tokens, param(m, P, PT_WTE), wpe, B, T, C, 0,
                        st->vocab_start, V));
    if (tp_sum(m, m->encoded, NC)) return -1;

    float *x = m->encoded;
    for (int l = 0; l < cfg->n_layer; l++) {
        struct gpt2_layer_acts *a = &m->layers[l];
        OP(m, "layernorm fwd",
           o->layernorm_fwd(a->ln1, a->ln1_mean, a->ln1_rstd, x, LP(m, P, l, LP_LN1_W),
                            LP(m, P, l, LP_LN1_B), N, C));
        OP(m, "matmul fwd (qkv)",
           o->matmul_fwd(a->qkv, a->ln1, LP(m, P, l, LP_QKV_W), LP(m, P, l, LP_QKV_B), N,
                         C, 3 * CA));
        OP(m, "attention fwd",
           o->attention_fwd(a->atty, a->lse, a->qkv, a->qkv + CA, a->qkv + 2 * CA, B, T,
                            T, NH, HS, 3 * CA, 3 * CA));
        OP(m, "matmul fwd (attn proj)",
           o->matmul_fwd(a->attproj, a->atty, LP(m, P, l, LP_ATTPROJ_W),
                         row_bias(m, LP(m, P, l, LP_ATTPROJ_B)), N, CA, C));
        if (tp_sum(m, a->attproj, NC)) return -1;
        OP(m, "residual fwd", o->residual_fwd(a->resid2, x, a->attproj, NC));
        OP(m, "layernorm fwd",
           o->layernorm_fwd(a->ln2, a->ln2_mean, a->ln2_rstd, a->resid2,
                            LP(m, P, l, LP_LN2_W), LP(m, P, l, LP_LN2_B), N, C));
        OP(m, "matmul fwd (mlp fc)",
           o->matmul_fwd(a->fch, a->ln2, LP(m, P, l, LP_FC_W), LP(m, P, l, LP_FC_B), N, C,
                         F));
        OP(m, "gelu fwd", o->gelu_fwd(a->fch_gelu, a->fch, (size_t)N * F));
        OP(m, "matmul fwd (mlp proj)",
           o->matmul_fwd(a->fcproj, a->fch_gelu, LP(m, P, l, LP_FCPROJ_W),
                         row_bias(m, LP(m, P, l, LP_FCPROJ_B)), N, F, C));
        if (tp_sum(m, a->fcproj, NC)) return -1;
        OP(m, "residual fwd", o->residual_fwd(a->resid3, a->resid2, a->fcproj, NC));
        x = a->resid3;
    }
    const int L = cfg->n_layer;
    OP(m, "layernorm fwd",
       o->layernorm_fwd(m->lnf, m->lnf_mean, m->lnf_rstd, x, param(m, P, PT_LNF_W(L)),
                        param(m, P, PT_LNF_B(L)), N, C));
    /* tied LM head: logits = lnf wte^T, no bias (under TP: this rank's
     * vocabulary columns only) */
    OP(m, "matmul fwd (lm head)",
       o->matmul_fwd(m->logits, m->lnf, param(m, P, PT_WTE), NULL, N, C, V));

    m->have_targets = targets != NULL;
    if (!targets) return 0;
    o->upload(m->targets, targets, (size_t)N * sizeof(int32_t));
    if (loss_fwd(m, N)) return -1;
    o->download(m->host_losses, m->losses, (size_t)N * sizeof(float));
    double sum = 0.0;
    int valid = 0;
    for (int i = 0; i < N; i++) {
        if (targets[i] < 0) continue;
        sum += m->host_losses[i];
        valid++;
    }
    /* dloss of the mean: 1/valid on every counted position */
    for (int i = 0; i < N; i++)
        m->host_losses[i] = (targets[i] >= 0 && valid) ? 1.0f / valid : 0.0f;
    o->upload(m->dlosses, m->host_losses, (size_t)N * sizeof(float));
    if (mean_loss) *mean_loss = valid ? sum / valid : 0.0;
    return 0;
}

/* Tensor `index`'s gradient is final: under TP make a replicated tensor's
 * copies identical (rank 0's), then tell the grads_ready hook. The backend
 * is synced first: the hook may hand the buffer to MPI. */
static int grads_ready(struct gpt2 *m, int index) {
    const struct param_info *p = &m->table.p[index];
    if (m->tp && m->shard.map[index].tp_grad == SHARD_GRAD_TP_SYNC &&
        tp_collective(m, "tp broadcast", m->grads + p->offset, p->numel, COMM_SUM, 1))
        return -1;
    if (!m->grads_ready) return 0;
    m->ops->sync();
    m->grads_ready(m->grads_ready_ctx, p->offset, p->numel);
    return 0;
}

int gpt2_backward(struct gpt2 *m) {
    if (!m->act_buf || !m->have_targets)
        return err_set("backward needs a forward pass with targets first");
    const struct gpt2_config *cfg = &m->cfg;
    const struct ops *o = m->ops;
    const struct shard_table *st = &m->shard;
    const int B = m->B, T = m->T, N = B * T;
    const int C = cfg->n_embd, HS = C / cfg->n_head, NH = st->heads_local;
    const int CA = NH * HS, F = st->mlp_local, V = st->vocab_local;
    const int L = cfg->n_layer;
    float *P = m->params, *G = m->grads;
    const size_t NC = (size_t)N * C;

    OP(m, "zero buffers", o->zero(G, m->table.total * sizeof(float)));
    OP(m, "zero buffers", o->zero(m->dstream, NC * sizeof(float)));

    /* loss -> logits (in place) -> LM head -> final layernorm. Under TP the
     * LM head's input gradient is a partial sum over the vocabulary slices. */
    loss_bwd(m, N);
    OP(m, "zero buffers", o->zero(m->dln, NC * sizeof(float)));
    OP(m, "matmul bwd (lm head)",
       o->matmul_bwd(m->dln, param(m, G, PT_WTE), NULL, m->logits, m->lnf,
                     param(m, P, PT_WTE), N, C, V));
    if (tp_sum(m, m->dln, NC)) return -1;
    float *x_last = L > 0 ? m->layers[L - 1].resid3 : m->encoded;
    OP(m, "layernorm bwd",
       o->layernorm_bwd(m->dstream, param(m, G, PT_LNF_W(L)), param(m, G, PT_LNF_B(L)),
                        m->dln, x_last, param(m, P, PT_LNF_W(L)), m->lnf_mean,
                        m->lnf_rstd, N, C));
    /* ln_f's gradient is final already: report it now, so the DP bucket at
     * the end of the flat buffer (ln_f and the last layers) can start while
     * the layers below are still in backward */
    if (grads_ready(m, PT_LNF_W(L)) || grads_ready(m, PT_LNF_B(L))) return -1;

    for (int l = L - 1; l >= 0; l--) {
        struct gpt2_layer_acts *a = &m->layers[l];
        float *x = l > 0 ? m->layers[l - 1].resid3 : m->encoded;
        /* MLP branch: dstream is dL/dresid3 = dL/dfcproj. The row-parallel
         * projection needs no communication backward (its input is sharded,
         * its bias gradient the same on every rank); the column-parallel
         * c_fc's input gradient is a partial sum. */
        OP(m, "zero buffers", o->zero(m->dfch_gelu, (size_t)N * F * sizeof(float)));
        OP(m, "matmul bwd (mlp proj)",
           o->matmul_bwd(m->dfch_gelu, LP(m, G, l, LP_FCPROJ_W), LP(m, G, l, LP_FCPROJ_B),
                         m->dstream, a->fch_gelu, LP(m, P, l, LP_FCPROJ_W), N, F, C));
        OP(m, "zero buffers", o->zero(m->dfch, (size_t)N * F * sizeof(float)));
        OP(m, "gelu bwd", o->gelu_bwd(m->dfch, m->dfch_gelu, a->fch, (size_t)N * F));
        OP(m, "zero buffers", o->zero(m->dln, NC * sizeof(float)));
        OP(m, "matmul bwd (mlp fc)",
           o->matmul_bwd(m->dln, LP(m, G, l, LP_FC_W), LP(m, G, l, LP_FC_B), m->dfch,
                         a->ln2, LP(m, P, l, LP_FC_W), N, C, F));
        if (tp_sum(m, m->dln, NC)) return -1;
        OP(m, "layernorm bwd",
           o->layernorm_bwd(m->dstream, LP(m, G, l, LP_LN2_W), LP(m, G, l, LP_LN2_B),
                            m->dln, a->resid2, LP(m, P, l, LP_LN2_W), a->ln2_mean,
                            a->ln2_rstd, N, C));
        /* attention branch: dstream is now dL/dresid2 = dL/dattproj */
        OP(m, "zero buffers", o->zero(m->datty, (size_t)N * CA * sizeof(float)));
        OP(m, "matmul bwd (attn proj)",
           o->matmul_bwd(m->datty, LP(m, G, l, LP_ATTPROJ_W), LP(m, G, l, LP_ATTPROJ_B),
                         m->dstream, a->atty, LP(m, P, l, LP_ATTPROJ_W), N, CA, C));
        OP(m, "zero buffers", o->zero(m->dqkv, (size_t)N * 3 * CA * sizeof(float)));
        OP(m, "attention bwd",
           o->attention_bwd(m->dqkv, m->dqkv + CA, m->dqkv + 2 * CA, m->datty, a->atty,
                            a->lse, a->qkv, a->qkv + CA, a->qkv + 2 * CA, B, T, T, NH, HS,
                            3 * CA, 3 * CA));
        OP(m, "zero buffers", o->zero(m->dln, NC * sizeof(float)));
        OP(m, "matmul bwd (qkv)",
           o->matmul_bwd(m->dln, LP(m, G, l, LP_QKV_W), LP(m, G, l, LP_QKV_B), m->dqkv,
                         a->ln1, LP(m, P, l, LP_QKV_W), N, C, 3 * CA));
        if (tp_sum(m, m->dln, NC)) return -1;
        OP(m, "layernorm bwd",
           o->layernorm_bwd(m->dstream, LP(m, G, l, LP_LN1_W), LP(m, G, l, LP_LN1_B),
                            m->dln, x, LP(m, P, l, LP_LN1_W), a->ln1_mean, a->ln1_rstd, N,
                            C));
        for (int k = 0; k < LP_COUNT; k++)
            if (grads_ready(m, PT_LAYER(l, k))) return -1;
    }
    /* wte's embedding gradient on this rank's vocabulary rows; wpe's on every
     * rank (dstream is whole everywhere), synced like any replicated tensor */
    OP(m, "embedding bwd",
       o->embedding_bwd(param(m, G, PT_WTE), param(m, G, PT_WPE), m->dstream, m->tokens,
                        B, T, C, 0, st->vocab_start, V));
    int rc = grads_ready(m, PT_WTE) || grads_ready(m, PT_WPE);
    m->have_targets = 0; /* logits now hold gradients */
    return rc ? -1 : 0;
}
