/* src/infer/decoder.h — the GPT-2 inference forward pass over a KV cache.
 *
 * decoder_forward(tokens[0..n)) runs the n tokens of one sequence at
 * positions [len, len + n), where len is what the sequence's cache slot
 * already holds: prefill is one call with the prompt, a decode step a call
 * with n = 1. Each layer projects the new rows' k|v straight into the cache
 * and attends with Tq = n queries against Tk = len + n cached keys, so no
 * position is ever recomputed. The math is gpt2_forward's (same ops, same
 * parameter table), minus what only training needs (saved activations,
 * gradients, the loss); tests/test_generate.c checks that the logits agree.
 *
 * Inputs longer than the scratch chunk (set at create) are processed in
 * chunks of that size: the same result, bounded memory for long prompts.
 * Only ops-table calls touch backend memory: the same code runs on CUDA.
 *
 * decoder_forward_paged is the serving form: several sequences in one step,
 * each with its own block table in a paged pool (kvpool.h), sequence i
 * contributing n_i tokens (a prefill chunk or one decode token). The
 * projections and the MLP run as ONE matmul over the sum of the n_i rows
 * (weights are read once per step, not once per sequence: that is where
 * batching wins); embedding runs per sequence (own positions), attention is
 * one ops->attention_paged_fwd call per layer for every sequence of the
 * step (own Tk, keys read through its block table). decoder_forward calls
 * the same op with its slot as a single block, and the op's result does not
 * depend on the block layout, so the paged and contiguous caches give
 * bitwise the same attention output for the same keys and values.
 */
#ifndef LLMPI_DECODER_H
#define LLMPI_DECODER_H

#include <stdint.h>

#include "comm.h"
#include "kvcache.h"
#include "kvpool.h"
#include "model.h"
#include "ops.h"
#include "shard_table.h"

struct decoder {
    struct gpt2_config cfg;
    struct param_table table; /* this rank's parameters: shard.local */
    struct shard_table shard; /* TP layout (tp_size 1: the whole model) */
    const struct comm *tp;    /* the replica's TP group; NULL without TP */
    /* The configuration a KV pool for this decoder is made with: under TP a
     * rank caches k|v of its own heads only (width heads_local x head size). */
    struct gpt2_config kv_cfg;
    float *host_logits; /* TP: [LOGIT_ROWS, V] host scratch for the gather,
                           then [LOGIT_ROWS, vocab_local] for this rank's block */
    const struct ops *ops;
    float *params;   /* table layout, backend memory */
    int owns_params; /* 0: borrowed (e.g. from a struct gpt2) */
    int chunk;       /* most positions per internal forward */
    /* scratch, backend memory, sized for `chunk` positions */
    float *scratch;
    float *x, *x2;         /* [chunk, C] residual stream (ping-pong) */
    float *ln, *q, *atty;  /* [chunk, C] */
    float *proj;           /* [chunk, C] */
    float *fch, *fch_gelu; /* [chunk, 4C] */
    float *logits;         /* [chunk, V] */
    int32_t *tokens;       /* [chunk] */
    /* paged-forward scratch, allocated on its first use */
    float *pscratch;
    float *kvnew;    /* [chunk, 2C] the step's new k|v rows */
    float *lastrows; /* [chunk, C] rows whose logits are wanted */
    /* attention_paged_fwd's int32 descriptors, {qstart, nq, kvlen} per
     * sequence then the block tables: built on the host (host_desc) once
     * per step or chunk, uploaded once into desc (backend memory) and read
     * by every layer; both grown on demand to desc_cap entries */
    int32_t *desc, *host_desc;
    size_t desc_cap;
    /* statistics: positions run through the model (the prefix never is twice) */
    long long positions_processed;
    long long forward_calls;
};

/* Create a decoder owning a copy of host parameters (table.total floats in
 * table order). chunk: positions per internal forward (0 = the context).
 * -1 + err_set on a bad configuration or out of memory. */
int decoder_create(struct decoder *d, const struct gpt2_config *cfg,
                   const struct ops *ops, const float *host_params, int chunk);
/* The same over parameters already in backend memory (not copied, not freed):
 * e.g. a training model's m->params. */
int decoder_create_borrowed(struct decoder *d, const struct gpt2_config *cfg,
                            const struct ops *ops, float *backend_params, int chunk);
/* Tensor parallelism (Megatron-style, as the training model, gpt2.h): rank
 * tp->rank of a TP group of tp->size holds its shard of the parameters
 * (local_host_params: shard_table layout, table.total floats), its heads'
 * k|v in the KV pool, and its vocabulary slice of the LM head; each
 * row-parallel projection and the embedding end in an allreduce, and the
 * logits are allgathered so every rank of the group samples the same token.
 * Only the paged form runs under TP (decoder_forward refuses). tp NULL or of
 * size 1: decoder_create. Collective calls on tp in every forward: the group
 * runs the same steps in the same order. On the CUDA backend tp must have
 * NCCL attached (backend_attach_comm): the partial sums stay on the GPU. */
int decoder_create_tp(struct decoder *d, const struct gpt2_config *cfg,
                      const struct ops *ops, const float *local_host_params, int chunk,
                      const struct comm *tp);
void decoder_destroy(struct decoder *d);

/* Which logits decoder_forward returns. */
enum decoder_logits {
    DECODER_LOGITS_NONE, /* none (e.g. the first chunks of a long prompt) */
    DECODER_LOGITS_LAST, /* [V]: the prediction after the last token */
    DECODER_LOGITS_ALL,  /* [n, V]: one row per input token */
};

/* Run tokens[0..n) of the sequence in cache slot `slot` (positions len..len+n),
 * append their keys/values to the slot and write the requested logits to
 * host memory `logits_out` (may be NULL with DECODER_LOGITS_NONE).
 * -1 + err_set (nothing appended) when n < 1, a token is outside the
 * vocabulary, or the positions exceed the slot's capacity (or under TP). */
int decoder_forward(struct decoder *d, struct kv_cache *cache, int slot,
                    const int32_t *tokens, int n, enum decoder_logits which,
                    float *logits_out);

/* One sequence's part of a paged step: tokens[0..n) at positions
 * [kv->len, kv->len + n). */
struct decoder_seq {
    struct kvpool_seq *kv; /* its blocks; must own room for len + n positions */
    const int32_t *tokens; /* host */
    int n;                 /* >= 1 */
    int want_logits;       /* 1: return the logits after its last token */
};

/* Run seqs[0..n_seqs) as one step over pool p (no sequence twice), append
 * each one's keys/values to its blocks (kv->len += n) and write to host
 * logits_out one [V] row per sequence with want_logits, in order (may be
 * NULL when none wants any). The sum of the n must be <= d->chunk, except
 * for a single sequence, which is split into chunks of d->chunk (then
 * every op runs at decoder_forward's shapes on the same inputs, and
 * attention's result does not depend on the block layout, so the logits are
 * bitwise decoder_forward's). Attention reads every sequence
 * in place through its block table, scattered or not. -1 + err_set
 * (nothing appended) on a bad token, a sequence without room reserved, or a
 * batch over the chunk. */
int decoder_forward_paged(struct decoder *d, struct kvpool *p, struct decoder_seq *seqs,
                          int n_seqs, float *logits_out);

#endif
