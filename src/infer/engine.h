/* src/infer/engine.h — the replica engine: continuous batching of requests.
 *
 * One engine serves many generation requests over one decoder (the model)
 * and one paged KV pool (kvpool.h) sized by a byte budget (--kv-cache-mb).
 * It is single-threaded and passive: the caller submits requests at any
 * time and calls engine_step in a loop; each step
 *   1. schedules up to max_batch_tokens tokens: one decode token for every
 *      running sequence, the next prompt chunk of sequences still in
 *      prefill, then admits queued requests (FIFO) while max_seqs and the
 *      pool allow, giving them a first prompt chunk — prefill and decode
 *      share the step (chunked prefill);
 *   2. runs them as one batched forward (decoder_forward_paged);
 *   3. samples one token per sequence that reached the end of its input
 *      (its own sampler and RNG: temperature, top-k, top-p, repetition
 *      penalty, seed), streams its bytes through its stop-string matcher
 *      and finishes it at max_tokens, EOT, a stop string or a full context,
 *      returning its blocks to the pool at once.
 * New requests thus join the running batch at any step and finished ones
 * leave it; nothing waits for the slowest request.
 *
 * Memory: a request is admitted only when the pool has blocks for its
 * worst case (prompt + max_tokens - 1 positions, at most the context), so a
 * running request never runs out of cache and nothing is ever preempted; a
 * request that does not fit now waits in the queue; one that could not fit
 * even into the empty pool is refused at submit, naming both numbers.
 *
 * Determinism: each request's sampling uses only its own seed, settings
 * and logits. In `exact` mode every sequence gets its own forward calls
 * with the shapes `llmpi generate` uses (gen.h: prompt chunks of the
 * decoder's chunk, one decode token), so a request's tokens are bitwise
 * those of running it alone, whatever else shares the step; it trades the
 * batching speed-up for that (and a step's first prompt chunk may exceed
 * max_batch_tokens, so that decodes cannot starve a prompt). In the
 * default batched mode the matmuls see M = the step's total rows, and BLAS
 * rounds differently for different M (last bits of the logits); a token can
 * then differ from running alone only where two choices are within that
 * rounding (a greedy near-tie, or a draw at a probability boundary).
 *
 * Events: engine_step hands back the step's events: a TOKEN per sampled
 * token (its id and the output bytes that became final: stop strings hold
 * bytes back), then a FINISH per finished request (why, the held-back
 * bytes released at the end, every generated id, counts and timings).
 * The text of a request is the concatenation of its events' text. Every
 * submitted request gets exactly one FINISH event, cancelled ones too.
 */
#ifndef LLMPI_ENGINE_H
#define LLMPI_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "decoder.h"
#include "sampler.h"
#include "tokenizer.h"

struct engine; /* opaque */

struct engine_config {
    size_t kv_cache_bytes; /* KV pool budget in bytes (--kv-cache-mb * 2^20), > 0 */
    int block_size;        /* positions per KV block; 0 = 16 */
    int max_batch_tokens;  /* tokens per step (decode + prefill); 0 = the decoder's
                              chunk; at most that chunk */
    int max_seqs;          /* requests running at once; 0 = min(64, max_batch_tokens / 2),
                              so decodes leave prompts half of every step */
    int max_queue;         /* requests waiting at most; 0 = no limit */
    int exact;             /* 1: one forward per sequence (bitwise llmpi generate) */
};

/* Engine over decoder d (borrowed: it must outlive the engine; its chunk
 * bounds max_batch_tokens) and tokenizer tok (borrowed; NULL: no text, ids
 * only). Allocates the KV pool. NULL + err_set on bad settings or out of
 * memory. */
struct engine *engine_create(struct decoder *d, const struct tokenizer *tok,
                             const struct engine_config *cfg);
void engine_destroy(struct engine *e);

struct engine_request {
    uint64_t id;                    /* the caller's; unique among live requests */
    const int32_t *prompt;          /* copied at submit */
    int n_prompt;                   /* 1 .. the model's context */
    int max_tokens;                 /* >= 1 */
    struct sampler_params sampling; /* temperature, top-k, top-p, penalty, seed */
    const char *const *stop;        /* stop strings, copied; may be NULL */
    int n_stop;                     /* 0 .. STOPSTR_MAX */
    int32_t eot;                    /* id that ends the request; -1 none */
};
/* id 0, no prompt, max_tokens 128, sampler_defaults(), no stop strings,
 * eot = the tokenizer's <|endoftext|> (-1 when it has none). */
struct engine_request engine_request_defaults(const struct engine *e);

/* Queue a request (all inputs are copied). -1 + err_set (nothing queued):
 * bad settings, an empty prompt or one longer than the context (naming both
 * lengths), a token outside the vocabulary, an id already live, a full
 * queue, or a request that cannot fit into the whole KV pool (naming the
 * blocks it needs and the pool's). */
int engine_submit(struct engine *e, const struct engine_request *r);

/* Stop a queued or running request now: its blocks go back to the pool and
 * its FINISH event (ENGINE_FINISH_CANCELLED) comes with the next step.
 * -1 + err_set when no live request has this id. */
int engine_cancel(struct engine *e, uint64_t id);

enum engine_finish {
    ENGINE_FINISH_MAX_TOKENS,
    ENGINE_FINISH_EOT,         /* sampled the request's eot id (not emitted) */
    ENGINE_FINISH_CONTEXT,     /* the cache holds the model's whole context */
    ENGINE_FINISH_STOP_STRING, /* a stop string completed (not emitted) */
    ENGINE_FINISH_CANCELLED,
    ENGINE_FINISH_ERROR, /* e.g. NaN logits; `error` says what */
};
/* "max_tokens", "end_of_text", "context_full", "stop_string", "cancelled",
 * "error" (the first four as gen_stop_name). */
const char *engine_finish_name(enum engine_finish why);

enum engine_event_kind { ENGINE_EVENT_TOKEN, ENGINE_EVENT_FINISH };

/* Pointers stay valid until the next engine_step or engine_destroy. */
struct engine_event {
    enum engine_event_kind kind;
    uint64_t id;
    const char *text; /* output bytes now final (either kind; may be empty) */
    size_t text_len;
    /* TOKEN */
    int32_t token; /* the sampled id (-1 in FINISH events) */
    /* FINISH */
    enum engine_finish why;
    const char *error;     /* ERROR: the message; else NULL */
    const int32_t *tokens; /* every generated id, eot included */
    int n_prompt, n_generated;
    double queue_s; /* submitted -> admitted (blocks reserved) */
    double ttft_s;  /* submitted -> first token (0 when none) */
    double total_s; /* submitted -> finished */
};

/* Run one step (see the top of this file). *events / *n_events receive the
 * step's events (n 0 when idle). -1 + err_set when the forward fails (a bug
 * or out of memory; the engine should then be destroyed). */
int engine_step(struct engine *e, const struct engine_event **events, int *n_events);

/* 1 when nothing is queued, running or waiting to report. */
int engine_idle(const struct engine *e);

struct engine_stats {
    int queued, running;
    int blocks_total, blocks_free, block_size;
    size_t block_bytes;
    long long steps, forwards;               /* forwards: decoder calls */
    long long prefill_tokens, decode_tokens; /* positions run through the model */
    long long generated_tokens;              /* tokens sampled */
    long long finished;                      /* FINISH events, cancelled included */
    int max_step_tokens, max_running;        /* peaks */
    double forward_s, sample_s;              /* wall time in the model / the samplers */
};
void engine_get_stats(const struct engine *e, struct engine_stats *s);

#endif
