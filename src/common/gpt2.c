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
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->ops = ops;
    if (param_table_build(cfg, &m->table)) return -1;
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
    param_table_free(&m->table);
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
    const size_t C = m->cfg.n_embd, NH = m->cfg.n_head, V = m->cfg.vocab_size;
    const size_t BT = (size_t)B * T;
    m->encoded = take(a, BT * C);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        struct gpt2_layer_acts *la = &m->layers[l];
        la->ln1 = take(a, BT * C);
        la->ln1_mean = take(a, BT);
        la->ln1_rstd = take(a, BT);
        la->qkv = take(a, BT * 3 * C);
        la->probs = take(a, (size_t)B * NH * T * T);
        la->atty = take(a, BT * C);
        la->attproj = take(a, BT * C);
        la->resid2 = take(a, BT * C);
        la->ln2 = take(a, BT * C);
        la->ln2_mean = take(a, BT);
        la->ln2_rstd = take(a, BT);
        la->fch = take(a, BT * 4 * C);
        la->fch_gelu = take(a, BT * 4 * C);
        la->fcproj = take(a, BT * C);
        la->resid3 = take(a, BT * C);
    }
    m->lnf = take(a, BT * C);
    m->lnf_mean = take(a, BT);
    m->lnf_rstd = take(a, BT);
    m->logits = take(a, BT * V);
    m->losses = take(a, BT);
    m->dlosses = take(g, BT);
    m->dstream = take(g, BT * C);
    m->dln = take(g, BT * C);
    m->datty = take(g, BT * C);
    m->dqkv = take(g, BT * 3 * C);
    m->dfch = take(g, BT * 4 * C);
    m->dfch_gelu = take(g, BT * 4 * C);
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

    const int C = cfg->n_embd, NH = cfg->n_head, HS = C / NH, V = cfg->vocab_size;
    const int N = B * T;
    float *P = m->params;
    o->upload(m->tokens, tokens, (size_t)N * sizeof(int32_t));
    OP(m, "embedding fwd",
       o->embedding_fwd(m->encoded, m->tokens, param(m, P, PT_WTE), param(m, P, PT_WPE),
                        B, T, C, 0, 0, V));

    float *x = m->encoded;
    for (int l = 0; l < cfg->n_layer; l++) {
        struct gpt2_layer_acts *a = &m->layers[l];
        OP(m, "layernorm fwd",
           o->layernorm_fwd(a->ln1, a->ln1_mean, a->ln1_rstd, x, LP(m, P, l, LP_LN1_W),
                            LP(m, P, l, LP_LN1_B), N, C));
        OP(m, "matmul fwd (qkv)",
           o->matmul_fwd(a->qkv, a->ln1, LP(m, P, l, LP_QKV_W), LP(m, P, l, LP_QKV_B), N,
                         C, 3 * C));
        OP(m, "attention fwd",
           o->attention_fwd(a->atty, a->probs, a->qkv, a->qkv + C, a->qkv + 2 * C, B, T,
                            T, NH, HS, 3 * C, 3 * C));
        OP(m, "matmul fwd (attn proj)",
           o->matmul_fwd(a->attproj, a->atty, LP(m, P, l, LP_ATTPROJ_W),
                         LP(m, P, l, LP_ATTPROJ_B), N, C, C));
        OP(m, "residual fwd", o->residual_fwd(a->resid2, x, a->attproj, (size_t)N * C));
        OP(m, "layernorm fwd",
           o->layernorm_fwd(a->ln2, a->ln2_mean, a->ln2_rstd, a->resid2,
                            LP(m, P, l, LP_LN2_W), LP(m, P, l, LP_LN2_B), N, C));
        OP(m, "matmul fwd (mlp fc)",
           o->matmul_fwd(a->fch, a->ln2, LP(m, P, l, LP_FC_W), LP(m, P, l, LP_FC_B), N, C,
                         4 * C));
        OP(m, "gelu fwd", o->gelu_fwd(a->fch_gelu, a->fch, (size_t)N * 4 * C));
        OP(m, "matmul fwd (mlp proj)",
           o->matmul_fwd(a->fcproj, a->fch_gelu, LP(m, P, l, LP_FCPROJ_W),
                         LP(m, P, l, LP_FCPROJ_B), N, 4 * C, C));
        OP(m, "residual fwd",
           o->residual_fwd(a->resid3, a->resid2, a->fcproj, (size_t)N * C));
        x = a->resid3;
    }
    const int L = cfg->n_layer;
    OP(m, "layernorm fwd",
       o->layernorm_fwd(m->lnf, m->lnf_mean, m->lnf_rstd, x, param(m, P, PT_LNF_W(L)),
                        param(m, P, PT_LNF_B(L)), N, C));
    /* tied LM head: logits = lnf wte^T, no bias */
    OP(m, "matmul fwd (lm head)",
       o->matmul_fwd(m->logits, m->lnf, param(m, P, PT_WTE), NULL, N, C, V));

    m->have_targets = targets != NULL;
    if (!targets) return 0;
    o->upload(m->targets, targets, (size_t)N * sizeof(int32_t));
    OP(m, "softmax+xent fwd", o->xent_fwd(m->losses, m->logits, m->targets, N, V));
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

/* Tell the grads_ready hook that tensor `index`'s gradient is final. The
 * backend is synced first: the hook may hand the buffer to MPI. */
static void grads_ready(struct gpt2 *m, int index) {
    if (!m->grads_ready) return;
    m->ops->sync();
    const struct param_info *p = &m->table.p[index];
    m->grads_ready(m->grads_ready_ctx, p->offset, p->numel);
}

int gpt2_backward(struct gpt2 *m) {
    if (!m->act_buf || !m->have_targets)
        return err_set("backward needs a forward pass with targets first");
    const struct gpt2_config *cfg = &m->cfg;
    const struct ops *o = m->ops;
    const int B = m->B, T = m->T, N = B * T;
    const int C = cfg->n_embd, NH = cfg->n_head, HS = C / NH, V = cfg->vocab_size;
    const int L = cfg->n_layer;
    float *P = m->params, *G = m->grads;
    const size_t NC = (size_t)N * C;

    OP(m, "zero buffers", o->zero(G, m->table.total * sizeof(float)));
    OP(m, "zero buffers", o->zero(m->dstream, NC * sizeof(float)));

    /* loss -> logits (in place) -> LM head -> final layernorm */
    OP(m, "softmax+xent bwd",
       o->xent_bwd_inplace(m->logits, m->targets, m->dlosses, N, V));
    OP(m, "zero buffers", o->zero(m->dln, NC * sizeof(float)));
    OP(m, "matmul bwd (lm head)",
       o->matmul_bwd(m->dln, param(m, G, PT_WTE), NULL, m->logits, m->lnf,
                     param(m, P, PT_WTE), N, C, V));
    float *x_last = L > 0 ? m->layers[L - 1].resid3 : m->encoded;
    OP(m, "layernorm bwd",
       o->layernorm_bwd(m->dstream, param(m, G, PT_LNF_W(L)), param(m, G, PT_LNF_B(L)),
                        m->dln, x_last, param(m, P, PT_LNF_W(L)), m->lnf_mean,
                        m->lnf_rstd, N, C));

    for (int l = L - 1; l >= 0; l--) {
        struct gpt2_layer_acts *a = &m->layers[l];
        float *x = l > 0 ? m->layers[l - 1].resid3 : m->encoded;
        /* MLP branch: dstream is dL/dresid3 = dL/dfcproj */
        OP(m, "zero buffers", o->zero(m->dfch_gelu, NC * 4 * sizeof(float)));
        OP(m, "matmul bwd (mlp proj)",
           o->matmul_bwd(m->dfch_gelu, LP(m, G, l, LP_FCPROJ_W), LP(m, G, l, LP_FCPROJ_B),
                         m->dstream, a->fch_gelu, LP(m, P, l, LP_FCPROJ_W), N, 4 * C, C));
        OP(m, "zero buffers", o->zero(m->dfch, NC * 4 * sizeof(float)));
        OP(m, "gelu bwd", o->gelu_bwd(m->dfch, m->dfch_gelu, a->fch, NC * 4));
        OP(m, "zero buffers", o->zero(m->dln, NC * sizeof(float)));
        OP(m, "matmul bwd (mlp fc)",
           o->matmul_bwd(m->dln, LP(m, G, l, LP_FC_W), LP(m, G, l, LP_FC_B), m->dfch,
                         a->ln2, LP(m, P, l, LP_FC_W), N, C, 4 * C));
        OP(m, "layernorm bwd",
           o->layernorm_bwd(m->dstream, LP(m, G, l, LP_LN2_W), LP(m, G, l, LP_LN2_B),
                            m->dln, a->resid2, LP(m, P, l, LP_LN2_W), a->ln2_mean,
                            a->ln2_rstd, N, C));
        /* attention branch: dstream is now dL/dresid2 = dL/dattproj */
        OP(m, "zero buffers", o->zero(m->datty, NC * sizeof(float)));
        OP(m, "matmul bwd (attn proj)",
           o->matmul_bwd(m->datty, LP(m, G, l, LP_ATTPROJ_W), LP(m, G, l, LP_ATTPROJ_B),
                         m->dstream, a->atty, LP(m, P, l, LP_ATTPROJ_W), N, C, C));
        OP(m, "zero buffers", o->zero(m->dqkv, NC * 3 * sizeof(float)));
        OP(m, "attention bwd",
           o->attention_bwd(m->dqkv, m->dqkv + C, m->dqkv + 2 * C, m->datty, a->probs,
                            a->qkv, a->qkv + C, a->qkv + 2 * C, B, T, T, NH, HS, 3 * C,
                            3 * C));
        OP(m, "zero buffers", o->zero(m->dln, NC * sizeof(float)));
        OP(m, "matmul bwd (qkv)",
           o->matmul_bwd(m->dln, LP(m, G, l, LP_QKV_W), LP(m, G, l, LP_QKV_B), m->dqkv,
                         a->ln1, LP(m, P, l, LP_QKV_W), N, C, 3 * C));
        OP(m, "layernorm bwd",
           o->layernorm_bwd(m->dstream, LP(m, G, l, LP_LN1_W), LP(m, G, l, LP_LN1_B),
                            m->dln, x, LP(m, P, l, LP_LN1_W), a->ln1_mean, a->ln1_rstd, N,
                            C));
        for (int k = 0; k < LP_COUNT; k++)
            grads_ready(m, PT_LAYER(l, k));
    }
    OP(m, "embedding bwd",
       o->embedding_bwd(param(m, G, PT_WTE), param(m, G, PT_WPE), m->dstream, m->tokens,
                        B, T, C, 0, 0, V));
    grads_ready(m, PT_WTE);
    grads_ready(m, PT_WPE);
    grads_ready(m, PT_LNF_W(L));
    grads_ready(m, PT_LNF_B(L));
    m->have_targets = 0; /* logits now hold gradients */
    return 0;
}
