/* src/infer/decoder.c — GPT-2 forward for inference, one sequence, KV cache.
 *
 * For n new tokens at positions p0 = len .. len + n - 1 (x is [n, C]):
 *   x    = wte[tok] + wpe[p0 + t]
 *   per layer l, with K|V = the slot's [capacity, 2C] cache of layer l:
 *     h    = LN1(x)
 *     q    = h Wq^T + bq                       [n, C]   (rows 0..C-1 of W_qkv)
 *     K|V[p0 .. p0+n) = h Wkv^T + bkv          [n, 2C]  (rows C..3C-1 of W_qkv),
 *                                              written in place into the cache
 *     a    = attention(q; K|V[0 .. p0+n))      Tq = n, Tk = p0 + n: query i
 *                                              sees keys 0..p0+i (causal);
 *                                              ops->attention_paged_fwd with
 *                                              the slot's layer as one block
 *     x'   = x + a Wo^T + bo
 *     x    = x' + gelu(LN2(x') Wfc^T + bfc) Wp^T + bp
 *   logits = LN_f(x) wte^T                     (only the rows asked for)
 * Splitting W_qkv's rows into a q part and a k|v part is what lets the k|v
 * matmul write its [n, 2C] output directly as cache rows: the cache row
 * layout (k | v, stride 2C) equals the matmul's output layout.
 *
 * The residual stream ping-pongs between two buffers so no op is asked to
 * write over one of its inputs (ops.h does not promise that is allowed).
 *
 * The paged form (decoder_forward_paged) stacks the new tokens of several
 * sequences into one [R, C] stream (R = sum of n_i). Everything row-wise
 * (layernorms, q and k|v projections, attention output projection, MLP,
 * residuals, LM head) is one op call over the R rows; per sequence i:
 *   embedding at its own positions [len_i, len_i + n_i);
 *   its k|v rows copied from the step's [R, 2C] projection into its blocks.
 * Attention is one ops->attention_paged_fwd call per layer over all R rows:
 * sequence i's queries are rows [off_i, off_i + n_i) with Tk = len_i + n_i,
 * keys read in place through its block table. The descriptors
 * ({off_i, n_i, Tk_i} and the tables) are built on the host and uploaded
 * once per step, then serve every layer (the tables index blocks within a
 * layer; the op gets the layer's base).
 */
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "err.h"

/* LM-head rows per matmul when all logits are wanted: bounds the logits
 * scratch to LOGIT_ROWS x V (12.9 MB at V = 50257). */
#define LOGIT_ROWS 64
#define DEFAULT_CHUNK 256

static float *tensor(const struct decoder *d, int index) {
    return d->params + d->table.p[index].offset;
}
#define LW(d, l, k) tensor(d, PT_LAYER(l, k))

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static int setup(struct decoder *d, const struct gpt2_config *cfg, const struct ops *ops,
                 int chunk, const struct comm *tp) {
    memset(d, 0, sizeof *d);
    if (model_config_check(cfg)) return -1;
    d->cfg = *cfg;
    d->ops = ops;
    if (chunk < 0) return err_set("decoder: chunk %d is negative", chunk);
    if (chunk == 0) chunk = cfg->max_seq < DEFAULT_CHUNK ? cfg->max_seq : DEFAULT_CHUNK;
    if (chunk > cfg->max_seq) chunk = cfg->max_seq;
    d->chunk = chunk;
    if (tp && tp->size > 1) d->tp = tp; /* device buffers: NCCL (backend_attach_comm) */
    if (shard_table_build(cfg, d->tp ? tp->size : 1, d->tp ? tp->rank : 0, &d->shard))
        return -1;
    d->table = d->shard.local;
    d->kv_cfg = *cfg;
    d->kv_cfg.n_head = d->shard.heads_local;
    d->kv_cfg.n_embd = d->shard.heads_local * (cfg->n_embd / cfg->n_head);
    if (d->tp && !(d->host_logits = malloc((size_t)LOGIT_ROWS *
                                           (cfg->vocab_size + d->shard.vocab_local) *
                                           sizeof(float)))) {
        shard_table_free(&d->shard);
        return err_set("decoder: out of memory");
    }

    const size_t T = (size_t)chunk, C = (size_t)cfg->n_embd, V = (size_t)cfg->vocab_size;
    const size_t lrows = T < LOGIT_ROWS ? T : LOGIT_ROWS;
    size_t sizes[] = {T * C, T * C,     T * C,     T * C,     T * C,
                      T * C, 4 * T * C, 4 * T * C, lrows * V, T};
    float **slots[] = {&d->x,    &d->x2,  &d->ln,       &d->q,      &d->atty,
                       &d->proj, &d->fch, &d->fch_gelu, &d->logits, NULL};
    const int ns = (int)(sizeof sizes / sizeof sizes[0]);
    size_t total = 0;
    for (int i = 0; i < ns; i++)
        total += round16(sizes[i]);
    d->scratch = ops->alloc(total * sizeof(float));
    if (!d->scratch) {
        shard_table_free(&d->shard);
        free(d->host_logits);
        return err_set("decoder: out of memory for %.1f MiB of scratch (%d positions, %s "
                       "backend)",
                       total * 4.0 / 1048576.0, chunk, ops->name);
    }
    size_t off = 0;
    for (int i = 0; i < ns; i++) {
        if (slots[i])
            *slots[i] = d->scratch + off;
        else
            d->tokens = (int32_t *)(d->scratch + off); /* int32 fits a float slot */
        off += round16(sizes[i]);
    }
    return 0;
}

int decoder_create(struct decoder *d, const struct gpt2_config *cfg,
                   const struct ops *ops, const float *host_params, int chunk) {
    return decoder_create_tp(d, cfg, ops, host_params, chunk, NULL);
}

int decoder_create_tp(struct decoder *d, const struct gpt2_config *cfg,
                      const struct ops *ops, const float *host_params, int chunk,
                      const struct comm *tp) {
    if (setup(d, cfg, ops, chunk, tp)) return -1;
    size_t bytes = d->table.total * sizeof(float);
    d->params = ops->alloc(bytes);
    if (!d->params) {
        decoder_destroy(d);
        return err_set("decoder: out of memory for %zu parameters (%.1f MiB, %s backend)",
                       d->table.total, bytes / 1048576.0, ops->name);
    }
    d->owns_params = 1;
    ops->upload(d->params, host_params, bytes);
    return 0;
}

int decoder_create_borrowed(struct decoder *d, const struct gpt2_config *cfg,
                            const struct ops *ops, float *backend_params, int chunk) {
    if (setup(d, cfg, ops, chunk, NULL)) return -1;
    d->params = backend_params;
    d->owns_params = 0;
    return 0;
}

void decoder_destroy(struct decoder *d) {
    if (!d->ops) return;
    if (d->scratch) d->ops->free(d->scratch);
    if (d->pscratch) d->ops->free(d->pscratch);
    if (d->desc) d->ops->free(d->desc);
    free(d->host_desc);
    if (d->owns_params && d->params) d->ops->free(d->params);
    shard_table_free(&d->shard); /* owns table.p */
    free(d->host_logits);
    memset(d, 0, sizeof *d);
}

/* TP: complete a partial sum over the group (no-op without TP). */
static int tp_sum(struct decoder *d, float *buf, size_t n) {
    return d->tp ? comm_allreduce(d->tp, buf, n, COMM_F32, COMM_SUM) : 0;
}

/* TP: every rank's [r, V_k] logit columns (uneven vocabulary slices) into
 * host out[r, V] on every rank: the local block downloaded to the host (the
 * sampler wants the logits there anyway; on the CPU a copy), one
 * MPI_Allgatherv into rank-major blocks, then each block's columns into
 * place. */
static int tp_gather_logits(struct decoder *d, const float *local, int r, float *out) {
    const struct comm *c = d->tp;
    const int T = c->size, V = d->cfg.vocab_size, base = V / T, rem = V % T;
    int counts[64] = {0}, displs[64] = {0};
    if (T > 64) return err_set("decoder: at most 64 TP ranks");
    for (int k = 0, at = 0; k < T; k++) {
        counts[k] = r * (base + (k < rem));
        displs[k] = at;
        at += counts[k];
    }
    float *staged = d->host_logits + (size_t)LOGIT_ROWS * V; /* [LOGIT_ROWS, Vl] */
    d->ops->download(staged, local, (size_t)counts[c->rank] * sizeof(float));
    int rc = MPI_Allgatherv(staged, counts[c->rank], MPI_FLOAT, d->host_logits, counts,
                            displs, MPI_FLOAT, c->mpi);
    if (comm_mpi_error(c, rc, "allgather of the logits")) return -1;
    for (int k = 0, v0 = 0; k < T; k++) {
        const int vk = base + (k < rem);
        for (int i = 0; i < r; i++)
            memcpy(out + (size_t)i * V + v0, d->host_logits + displs[k] + (size_t)i * vk,
                   (size_t)vk * sizeof(float));
        v0 += vk;
    }
    return 0;
}

/* Final layernorm + tied LM head for `rows` rows of the stream x (backend),
 * downloaded to host out[rows, V] in groups of LOGIT_ROWS (under TP: this
 * rank's vocabulary columns, gathered from the group). */
static int lm_head(struct decoder *d, const float *x, int rows, float *out) {
    const struct ops *o = d->ops;
    const int C = d->cfg.n_embd, V = d->cfg.vocab_size, L = d->cfg.n_layer;
    const int Vl = d->shard.vocab_local;
    o->layernorm_fwd(d->ln, NULL, NULL, x, tensor(d, PT_LNF_W(L)), tensor(d, PT_LNF_B(L)),
                     rows, C);
    for (int r0 = 0; r0 < rows; r0 += LOGIT_ROWS) {
        int r = rows - r0 < LOGIT_ROWS ? rows - r0 : LOGIT_ROWS;
        o->matmul_fwd(d->logits, d->ln + (size_t)r0 * C, tensor(d, PT_WTE), NULL, r, C,
                      Vl);
        if (d->tp) {
            if (tp_gather_logits(d, d->logits, r, out + (size_t)r0 * V)) return -1;
        } else {
            o->download(out + (size_t)r0 * V, d->logits, (size_t)r * V * sizeof(float));
        }
    }
    return 0;
}

/* Room for n int32 entries in d->desc and d->host_desc. */
static int desc_reserve(struct decoder *d, size_t n) {
    if (n <= d->desc_cap) return 0;
    size_t cap = n < 256 ? 256 : n + n / 2;
    if (d->desc) {
        d->ops->sync(); /* queued attention calls may still read it */
        d->ops->free(d->desc);
    }
    free(d->host_desc);
    d->desc = d->ops->alloc(cap * sizeof(int32_t));
    d->host_desc = malloc(cap * sizeof(int32_t));
    d->desc_cap = d->desc && d->host_desc ? cap : 0;
    if (!d->desc_cap)
        return err_set(
            "decoder: out of memory for %zu attention descriptors (%s backend)", cap,
            d->ops->name);
    return 0;
}

/* One chunk of n <= d->chunk tokens at positions [p0, p0 + n). Returns the
 * buffer holding the final residual stream [n, C]. */
static float *forward_chunk(struct decoder *d, struct kv_cache *c, int slot,
                            const int32_t *tokens, int n, int p0) {
    const struct ops *o = d->ops;
    const int C = d->cfg.n_embd, NH = d->cfg.n_head, HS = C / NH, V = d->cfg.vocab_size;
    const size_t nC = (size_t)n * C;
    o->upload(d->tokens, tokens, (size_t)n * sizeof(int32_t));
    /* attention: one sequence, rows 0..n-1, Tk = p0 + n, in one block (the
     * slot's layer) of capacity positions */
    const int32_t desc[4] = {0, n, p0 + n, 0};
    o->upload(d->desc, desc, sizeof desc);
    float *x = d->x, *y = d->x2;
    o->embedding_fwd(x, d->tokens, tensor(d, PT_WTE), tensor(d, PT_WPE), 1, n, C, p0, 0,
                     V);
    for (int l = 0; l < d->cfg.n_layer; l++) {
        float *kv = kvcache_layer(c, slot, l);
        const float *wqkv = LW(d, l, LP_QKV_W), *bqkv = LW(d, l, LP_QKV_B);
        o->layernorm_fwd(d->ln, NULL, NULL, x, LW(d, l, LP_LN1_W), LW(d, l, LP_LN1_B), n,
                         C);
        o->matmul_fwd(d->q, d->ln, wqkv, bqkv, n, C, C);
        o->matmul_fwd(kv + (size_t)p0 * 2 * C, d->ln, wqkv + (size_t)C * C, bqkv + C, n,
                      C, 2 * C);
        o->attention_paged_fwd(d->atty, d->q, kv, d->desc, d->desc + 3, 1, n, 1,
                               c->capacity, NH, HS, C, 2 * C, C);
        o->matmul_fwd(d->proj, d->atty, LW(d, l, LP_ATTPROJ_W), LW(d, l, LP_ATTPROJ_B), n,
                      C, C);
        o->residual_fwd(y, x, d->proj, nC);
        o->layernorm_fwd(d->ln, NULL, NULL, y, LW(d, l, LP_LN2_W), LW(d, l, LP_LN2_B), n,
                         C);
        o->matmul_fwd(d->fch, d->ln, LW(d, l, LP_FC_W), LW(d, l, LP_FC_B), n, C, 4 * C);
        o->gelu_fwd(d->fch_gelu, d->fch, 4 * nC);
        o->matmul_fwd(d->proj, d->fch_gelu, LW(d, l, LP_FCPROJ_W), LW(d, l, LP_FCPROJ_B),
                      n, 4 * C, C);
        o->residual_fwd(x, y, d->proj, nC);
    }
    return x;
}

int decoder_forward(struct decoder *d, struct kv_cache *c, int slot,
                    const int32_t *tokens, int n, enum decoder_logits which,
                    float *logits_out) {
    const int V = d->cfg.vocab_size;
    if (d->tp)
        return err_set("decoder: the slot cache path runs without tensor parallelism "
                       "(use decoder_forward_paged)");
    if (c->n_layer != d->cfg.n_layer || c->n_embd != d->cfg.n_embd)
        return err_set("decoder: the kv cache was made for %d layers x width %d, the "
                       "model has %d x %d",
                       c->n_layer, c->n_embd, d->cfg.n_layer, d->cfg.n_embd);
    if (which != DECODER_LOGITS_NONE && !logits_out)
        return err_set("decoder: logits requested without an output buffer");
    if (kvcache_reserve(c, slot, n) || desc_reserve(d, 4)) return -1;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return err_set("token %d at position %d is outside the vocabulary [0, %d)",
                           tokens[i], i, V);
    for (int i0 = 0; i0 < n; i0 += d->chunk) {
        int m = n - i0 < d->chunk ? n - i0 : d->chunk;
        int p0 = kvcache_len(c, slot);
        float *x = forward_chunk(d, c, slot, tokens + i0, m, p0);
        kvcache_commit(c, slot, m);
        d->positions_processed += m;
        if (which == DECODER_LOGITS_ALL)
            (void)lm_head(d, x, m, logits_out + (size_t)i0 * V);
        else if (which == DECODER_LOGITS_LAST && i0 + m == n)
            (void)lm_head(d, x + (size_t)(m - 1) * d->cfg.n_embd, 1, logits_out);
    }
    d->forward_calls++;
    return 0;
}

/* ---- paged, batched forward ---------------------------------------------- */

static int paged_scratch(struct decoder *d) {
    if (d->pscratch) return 0;
    const size_t T = (size_t)d->chunk, C = (size_t)d->cfg.n_embd;
    size_t nk = round16(T * 2 * C), nl = round16(T * C);
    d->pscratch = d->ops->alloc((nk + nl) * sizeof(float));
    if (!d->pscratch)
        return err_set(
            "decoder: out of memory for %.1f MiB of paged scratch (%s backend)",
            (nk + nl) * 4.0 / 1048576.0, d->ops->name);
    d->kvnew = d->pscratch;
    d->lastrows = d->kvnew + nk;
    return 0;
}

/* The bias of a row-parallel layer (and wpe) is added by TP rank 0 alone, so
 * the allreduce of the partial outputs counts it once. */
static const float *row_bias(const struct decoder *d, const float *b) {
    return d->tp && d->tp->rank != 0 ? NULL : b;
}

/* One step of sequences whose tokens sum to R <= d->chunk (checked). Under
 * TP the widths are this rank's: CA = its heads x head size (q, k|v rows,
 * attention output), F = its MLP hidden units, Vl = its vocabulary slice;
 * the stream [R, C] is whole on every rank. */
static int paged_step(struct decoder *d, struct kvpool *p, struct decoder_seq *seqs,
                      int n_seqs, int R, float *logits_out) {
    const struct ops *o = d->ops;
    const struct shard_table *st = &d->shard;
    const int C = d->cfg.n_embd, HS = C / d->cfg.n_head, NH = st->heads_local;
    const int CA = NH * HS, F = st->mlp_local, Vl = st->vocab_local;
    const size_t RC = (size_t)R * C;
    float *x = d->x, *y = d->x2;
    /* attention descriptors for every layer: {row offset, n, Tk} per
     * sequence, then its block table padded to the step's widest (ids past
     * a sequence's Tk are never read) */
    int max_blocks = 1;
    for (int i = 0; i < n_seqs; i++) {
        int b = kvpool_blocks_for(p, seqs[i].kv->len + seqs[i].n);
        max_blocks = b > max_blocks ? b : max_blocks;
    }
    const size_t nd = (size_t)n_seqs * (3 + (size_t)max_blocks);
    if (desc_reserve(d, nd)) return -1;
    int32_t *hd = d->host_desc, *ht = hd + 3 * (size_t)n_seqs;
    for (int i = 0, off = 0; i < n_seqs; off += seqs[i].n, i++) {
        const struct kvpool_seq *kv = seqs[i].kv;
        hd[3 * i] = off;
        hd[3 * i + 1] = seqs[i].n;
        hd[3 * i + 2] = kv->len + seqs[i].n;
        for (int b = 0; b < max_blocks; b++)
            ht[(size_t)i * max_blocks + b] = b < kv->n_blocks ? kv->blocks[b] : 0;
    }
    o->upload(d->desc, hd, nd * sizeof(int32_t));
    for (int i = 0, off = 0; i < n_seqs; off += seqs[i].n, i++) {
        o->upload(d->tokens + off, seqs[i].tokens, (size_t)seqs[i].n * sizeof(int32_t));
        o->embedding_fwd(x + (size_t)off * C, d->tokens + off, tensor(d, PT_WTE),
                         row_bias(d, tensor(d, PT_WPE)), 1, seqs[i].n, C, seqs[i].kv->len,
                         st->vocab_start, Vl);
    }
    if (tp_sum(d, x, RC)) return -1;
    for (int l = 0; l < d->cfg.n_layer; l++) {
        /* c_attn's local rows are q | k | v of this rank's heads, CA each */
        const float *wqkv = LW(d, l, LP_QKV_W), *bqkv = LW(d, l, LP_QKV_B);
        o->layernorm_fwd(d->ln, NULL, NULL, x, LW(d, l, LP_LN1_W), LW(d, l, LP_LN1_B), R,
                         C);
        o->matmul_fwd(d->q, d->ln, wqkv, bqkv, R, C, CA);
        o->matmul_fwd(d->kvnew, d->ln, wqkv + (size_t)CA * C, bqkv + CA, R, C, 2 * CA);
        for (int i = 0, off = 0; i < n_seqs; off += seqs[i].n, i++)
            kvpool_scatter(p, seqs[i].kv, l, seqs[i].kv->len, seqs[i].n,
                           d->kvnew + (size_t)off * 2 * CA);
        o->attention_paged_fwd(d->atty, d->q, kvpool_layer(p, l), d->desc,
                               d->desc + 3 * n_seqs, n_seqs, R, max_blocks, p->block_size,
                               NH, HS, CA, 2 * CA, CA);
        o->matmul_fwd(d->proj, d->atty, LW(d, l, LP_ATTPROJ_W),
                      row_bias(d, LW(d, l, LP_ATTPROJ_B)), R, CA, C);
        if (tp_sum(d, d->proj, RC)) return -1;
        o->residual_fwd(y, x, d->proj, RC);
        o->layernorm_fwd(d->ln, NULL, NULL, y, LW(d, l, LP_LN2_W), LW(d, l, LP_LN2_B), R,
                         C);
        o->matmul_fwd(d->fch, d->ln, LW(d, l, LP_FC_W), LW(d, l, LP_FC_B), R, C, F);
        o->gelu_fwd(d->fch_gelu, d->fch, (size_t)R * F);
        o->matmul_fwd(d->proj, d->fch_gelu, LW(d, l, LP_FCPROJ_W),
                      row_bias(d, LW(d, l, LP_FCPROJ_B)), R, F, C);
        if (tp_sum(d, d->proj, RC)) return -1;
        o->residual_fwd(x, y, d->proj, RC);
    }
    int k = 0;
    for (int i = 0, off = 0; i < n_seqs; off += seqs[i].n, i++) {
        if (seqs[i].want_logits)
            o->copy(d->lastrows + (size_t)k++ * C, x + (size_t)(off + seqs[i].n - 1) * C,
                    (size_t)C * sizeof(float));
        seqs[i].kv->len += seqs[i].n;
    }
    if (k > 0 && lm_head(d, d->lastrows, k, logits_out)) return -1;
    d->positions_processed += R;
    return 0;
}

int decoder_forward_paged(struct decoder *d, struct kvpool *p, struct decoder_seq *seqs,
                          int n_seqs, float *logits_out) {
    const int V = d->cfg.vocab_size;
    if (p->n_layer != d->kv_cfg.n_layer || p->n_embd != d->kv_cfg.n_embd)
        return err_set("decoder: the kv pool was made for %d layers x width %d, the "
                       "model caches %d x %d (decoder.kv_cfg)",
                       p->n_layer, p->n_embd, d->kv_cfg.n_layer, d->kv_cfg.n_embd);
    if (n_seqs < 1) return err_set("decoder: a paged step of %d sequences", n_seqs);
    long long R = 0;
    int want = 0;
    for (int i = 0; i < n_seqs; i++) {
        const struct decoder_seq *s = &seqs[i];
        int room = s->kv->n_blocks * p->block_size;
        if (room > d->cfg.max_seq) room = d->cfg.max_seq;
        if (s->n < 1)
            return err_set("decoder: sequence %d of the step has %d tokens", i, s->n);
        if (s->n > room - s->kv->len)
            return err_set("sequence %d: %d cached + %d new positions exceed the %d "
                           "reserved for it",
                           i, s->kv->len, s->n, room);
        for (int t = 0; t < s->n; t++)
            if (s->tokens[t] < 0 || s->tokens[t] >= V)
                return err_set(
                    "token %d at position %d is outside the vocabulary [0, %d)",
                    s->tokens[t], t, V);
        R += s->n;
        want += s->want_logits != 0;
    }
    if (want > 0 && !logits_out)
        return err_set("decoder: logits requested without an output buffer");
    if (n_seqs > 1 && R > d->chunk)
        return err_set("decoder: a step of %lld tokens exceeds the %d positions per "
                       "forward (the decoder's chunk)",
                       R, d->chunk);
    if (paged_scratch(d)) return -1;
    if (n_seqs > 1) {
        if (paged_step(d, p, seqs, n_seqs, (int)R, logits_out)) return -1;
    } else { /* one sequence: chunks of d->chunk, as decoder_forward */
        struct decoder_seq whole = seqs[0];
        for (int i0 = 0; i0 < whole.n; i0 += d->chunk) {
            struct decoder_seq part = whole;
            part.tokens = whole.tokens + i0;
            part.n = whole.n - i0 < d->chunk ? whole.n - i0 : d->chunk;
            part.want_logits = whole.want_logits && i0 + part.n == whole.n;
            if (paged_step(d, p, &part, 1, part.n, logits_out)) return -1;
        }
    }
    d->forward_calls++;
    return 0;
}
