/* src/infer/gen.h — one generation request: prefill, then sample/decode.
 *
 * The loop `llmpi generate` and `llmpi bench generate` share:
 *   logits = forward(prompt)                      (prefill, one call)
 *   repeat: tok = sample(logits, history)
 *           stop on <|endoftext|> (not emitted), else emit its bytes
 *           (through the stop-string matcher when there is one)
 *           stop at max_tokens, on a stop string, or when the context is full
 *           logits = forward(tok)                 (one position, KV cache)
 * A sampled token is forwarded only when another one will be sampled, so a
 * prompt that fills the context exactly still yields one token.
 * Serving runs the same steps per request, interleaved across requests.
 */
#ifndef LLMPI_GEN_H
#define LLMPI_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "decoder.h"
#include "kvcache.h"
#include "sampler.h"
#include "stopstr.h"
#include "tokenizer.h"

enum gen_stop {
    GEN_STOP_MAX_TOKENS,
    GEN_STOP_EOT,     /* the model produced <|endoftext|> */
    GEN_STOP_CONTEXT, /* the cache holds the model's whole context */
    GEN_STOP_STRING,  /* a stop string completed */
};
const char *gen_stop_name(enum gen_stop why);

/* Receives decoded output bytes as they become final. Non-zero aborts the
 * request (gen_run then returns -1 with err_set naming it). */
typedef int (*gen_emit_fn)(const char *bytes, size_t len, void *ctx);

struct gen_request {
    const int32_t *prompt;
    int n_prompt;    /* >= 1 */
    int max_tokens;  /* >= 1 */
    int32_t eot;     /* stop id, -1 for none */
    int vocab_limit; /* sample ids < this (tokenizer vocab); 0 = model's */
    struct sampler *sampler;
    struct stopstr *stop;        /* NULL for none */
    const struct tokenizer *tok; /* NULL: emit nothing (bench) */
};

struct gen_result {
    int n_generated;    /* tokens sampled (EOT included) */
    int n_decode_steps; /* single-position forwards after the prefill */
    enum gen_stop why;
    double prefill_s, decode_s, sample_s; /* wall time of each part */
    int32_t *tokens;                      /* malloc'd: prompt then generated ids */
    int n_tokens;
};
void gen_result_free(struct gen_result *r);

/* Run a request in cache slot `slot` (which must be empty). -1 + err_set
 * when the prompt does not fit the context (naming both lengths) or a step
 * fails; r->tokens is freed in that case. */
int gen_run(struct decoder *d, struct kv_cache *c, int slot,
            const struct gen_request *req, gen_emit_fn emit, void *ctx,
            struct gen_result *r);

#endif
