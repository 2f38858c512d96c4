/* src/infer/engine.c — continuous batching over a paged KV pool (engine.h).
 *
 * State: a FIFO queue of submitted requests (validated, prompt copied, no
 * KV blocks yet) and the running list in admission order (blocks reserved
 * for the worst case, sampler and stop matcher live). A running request is
 * in PREFILL until all prompt positions went through the model, then in
 * DECODE, where its last sampled token is its one input per step. The step
 * schedule is decodes first (each sequence's latency), then prefill chunks
 * in admission order, then admissions: a prompt never delays the decode of
 * the others by more than max_batch_tokens rows. Admission stops at the
 * first request that does not fit (no overtaking, so a long prompt cannot
 * starve behind a stream of short ones).
 *
 * Per-request loop after each forward that gave it logits, as gen_run:
 * sample (history = prompt + generated), EOT ends it, else its bytes go
 * through the stop matcher, then max_tokens, then a full context end it.
 * A finished request's blocks return to the pool in the same step; its
 * struct lives until the next step, so FINISH events can point at its ids.
 * Event texts are copied into a per-step arena.
 *
 * Sampling runs on the host, O(V) per request (~0.5 ms at V = 50257), and
 * the samplers share nothing, so a step samples its sequences in parallel
 * (OpenMP threads over requests; each draws from its own RNG, so the
 * result does not depend on the thread count). Serially it would be a
 * quarter of a 16-sequence gpt2-mini step on the CPU, and most of a step
 * on a GPU.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "err.h"
#include "kvpool.h"
#include "stopstr.h"
#include "timer.h"

enum rstate { R_QUEUED, R_PREFILL, R_DECODE };

#define SERR 256

struct req {
    uint64_t id;
    enum rstate state;
    int32_t *tokens; /* prompt, then generated ids: [n_prompt + max_tokens] */
    int n_prompt, n_tokens, n_generated, max_tokens;
    int32_t eot;
    int need; /* positions reserved at admission */
    struct sampler_params sp;
    struct sampler sampler;
    int has_sampler;
    struct stopstr stop;
    int has_stop;
    struct kvpool_seq kv;
    double t_submit, t_admit, t_first;
    int done;
    struct req *next; /* queue / cancelled / retired list */
};

struct engine {
    struct decoder *d;
    const struct tokenizer *tok;
    struct engine_config cfg;
    struct kvpool pool;
    int ctx, vocab_limit;
    struct req *qhead, *qtail;
    int n_queued;
    struct req **run; /* [max_seqs] admission order */
    int n_run;
    struct req *cancelled, *retired;
    /* step scratch */
    struct decoder_seq *seqs; /* [max_seqs] */
    struct req **seq_req;     /* [max_seqs] */
    float *logits;            /* host [max_seqs, V] */
    struct req **lreq;        /* [max_seqs] the sequences with logits, in order */
    int32_t *sampled;         /* [max_seqs] their sampled ids (-1: failed) */
    char *serr;               /* [max_seqs][SERR] a failed sample's message */
    struct engine_event *ev;
    size_t *ev_text, *ev_err; /* arena offsets, fixed up at the end of a step */
    int n_ev, cap_ev;
    char *arena;
    size_t n_arena, cap_arena;
    struct engine_stats st;
};

const char *engine_finish_name(enum engine_finish why) {
    static const char *names[] = {"max_tokens",  "end_of_text", "context_full",
                                  "stop_string", "cancelled",   "error"};
    return (unsigned)why < sizeof names / sizeof names[0] ? names[why] : "?";
}

static void req_free(struct req *r) {
    if (!r) return;
    if (r->has_sampler) sampler_free(&r->sampler);
    if (r->has_stop) stopstr_free(&r->stop);
    free(r->kv.blocks);
    free(r->tokens);
    free(r);
}

static void free_list(struct req *r) {
    while (r) {
        struct req *n = r->next;
        req_free(r);
        r = n;
    }
}

struct engine *engine_create(struct decoder *d, const struct tokenizer *tok,
                             const struct engine_config *cfg) {
    struct engine_config c = *cfg;
    if (c.max_batch_tokens == 0) c.max_batch_tokens = d->chunk;
    if (c.max_batch_tokens < 1 || c.max_batch_tokens > d->chunk) {
        err_set("engine: max batch tokens %d is outside [1, %d] (the decoder's chunk)",
                c.max_batch_tokens, d->chunk);
        return NULL;
    }
    if (c.max_seqs == 0) { /* prompts keep at least half of every step */
        c.max_seqs = c.max_batch_tokens / 2 < 64 ? c.max_batch_tokens / 2 : 64;
        if (c.max_seqs < 1) c.max_seqs = 1;
    }
    if (c.max_seqs < 1 || c.max_seqs > c.max_batch_tokens) {
        err_set("engine: max sequences %d is outside [1, %d] (max batch tokens: each "
                "running sequence decodes one token per step)",
                c.max_seqs, c.max_batch_tokens);
        return NULL;
    }
    if (c.max_queue < 0) {
        err_set("engine: max queue %d is negative", c.max_queue);
        return NULL;
    }
    struct engine *e = calloc(1, sizeof *e);
    if (!e) {
        err_set("engine: out of memory");
        return NULL;
    }
    e->d = d;
    e->tok = tok;
    e->cfg = c;
    e->ctx = d->cfg.max_seq;
    const int V = d->cfg.vocab_size;
    e->vocab_limit = V;
    if (tok && tokenizer_vocab_size(tok) < V) e->vocab_limit = tokenizer_vocab_size(tok);
    if (kvpool_create(&e->pool, d->ops, &d->kv_cfg, c.kv_cache_bytes, c.block_size)) {
        free(e);
        return NULL;
    }
    e->run = calloc((size_t)c.max_seqs, sizeof *e->run);
    e->seqs = calloc((size_t)c.max_seqs, sizeof *e->seqs);
    e->seq_req = calloc((size_t)c.max_seqs, sizeof *e->seq_req);
    e->logits = malloc((size_t)c.max_seqs * V * sizeof *e->logits);
    e->lreq = calloc((size_t)c.max_seqs, sizeof *e->lreq);
    e->sampled = calloc((size_t)c.max_seqs, sizeof *e->sampled);
    e->serr = calloc((size_t)c.max_seqs, SERR);
    if (!e->run || !e->seqs || !e->seq_req || !e->logits || !e->lreq || !e->sampled ||
        !e->serr) {
        engine_destroy(e);
        err_set("engine: out of memory for %d sequences", c.max_seqs);
        return NULL;
    }
    e->st.block_size = e->pool.block_size;
    e->st.block_bytes = kvpool_block_bytes(&d->kv_cfg, e->pool.block_size);
    return e;
}

void engine_destroy(struct engine *e) {
    if (!e) return;
    free_list(e->qhead);
    free_list(e->cancelled);
    free_list(e->retired);
    for (int i = 0; i < e->n_run; i++)
        req_free(e->run[i]);
    kvpool_destroy(&e->pool);
    free(e->run);
    free(e->seqs);
    free(e->seq_req);
    free(e->logits);
    free(e->lreq);
    free(e->sampled);
    free(e->serr);
    free(e->ev);
    free(e->ev_text);
    free(e->ev_err);
    free(e->arena);
    free(e);
}

struct engine_request engine_request_defaults(const struct engine *e) {
    struct engine_request r;
    memset(&r, 0, sizeof r);
    r.max_tokens = 128;
    r.sampling = sampler_defaults();
    r.eot = e->tok ? tokenizer_eot(e->tok) : -1;
    return r;
}

static struct req *find_live(const struct engine *e, uint64_t id) {
    for (struct req *r = e->qhead; r; r = r->next)
        if (r->id == id) return r;
    for (int i = 0; i < e->n_run; i++)
        if (e->run[i]->id == id) return e->run[i];
    return NULL;
}

int engine_submit(struct engine *e, const struct engine_request *q) {
    const int V = e->d->cfg.vocab_size;
    const unsigned long long id = (unsigned long long)q->id;
    if (q->n_prompt < 1 || !q->prompt)
        return err_set("request %llu: the prompt is empty (need at least one token)", id);
    if (q->n_prompt > e->ctx)
        return err_set(
            "request %llu: the prompt is %d tokens but the model's context is %d", id,
            q->n_prompt, e->ctx);
    if (q->max_tokens < 1)
        return err_set("request %llu: max tokens %d (need >= 1)", id, q->max_tokens);
    for (int i = 0; i < q->n_prompt; i++)
        if (q->prompt[i] < 0 || q->prompt[i] >= V)
            return err_set("request %llu: prompt token %d at position %d is outside the "
                           "vocabulary [0, %d)",
                           id, q->prompt[i], i, V);
    if (sampler_params_check(&q->sampling)) return -1;
    if (find_live(e, q->id)) return err_set("request %llu: the id is already live", id);
    if (e->cfg.max_queue > 0 && e->n_queued >= e->cfg.max_queue)
        return err_set("request %llu: the queue is full (%d requests waiting)", id,
                       e->n_queued);
    long long worst = (long long)q->n_prompt + q->max_tokens - 1;
    int need = worst < e->ctx ? (int)worst : e->ctx;
    int blocks = kvpool_blocks_for(&e->pool, need);
    if (blocks > e->pool.n_blocks)
        return err_set("request %llu: %d prompt + %d max tokens need up to %d cached "
                       "positions = %d KV blocks of %d, but the whole KV pool holds %d "
                       "blocks (%.1f MiB); raise --kv-cache-mb or lower max tokens",
                       id, q->n_prompt, q->max_tokens, need, blocks, e->pool.block_size,
                       e->pool.n_blocks,
                       e->pool.n_blocks * (double)e->st.block_bytes / 1048576.0);

    struct req *r = calloc(1, sizeof *r);
    if (!r) return err_set("request %llu: out of memory", id);
    r->tokens = malloc(((size_t)q->n_prompt + (size_t)q->max_tokens) * sizeof *r->tokens);
    if (!r->tokens) {
        req_free(r);
        return err_set("request %llu: out of memory for %d tokens", id,
                       q->n_prompt + q->max_tokens);
    }
    if (q->n_stop > 0) {
        if (stopstr_init(&r->stop, q->stop, q->n_stop)) {
            req_free(r);
            return -1;
        }
        r->has_stop = 1;
    }
    memcpy(r->tokens, q->prompt, (size_t)q->n_prompt * sizeof *r->tokens);
    r->id = q->id;
    r->state = R_QUEUED;
    r->n_prompt = r->n_tokens = q->n_prompt;
    r->max_tokens = q->max_tokens;
    r->eot = q->eot;
    r->need = need;
    r->sp = q->sampling;
    r->t_submit = timer_now();
    if (e->qtail)
        e->qtail->next = r;
    else
        e->qhead = r;
    e->qtail = r;
    e->n_queued++;
    return 0;
}

int engine_cancel(struct engine *e, uint64_t id) {
    struct req *prev = NULL;
    for (struct req *r = e->qhead; r; prev = r, r = r->next) {
        if (r->id != id) continue;
        if (prev)
            prev->next = r->next;
        else
            e->qhead = r->next;
        if (e->qtail == r) e->qtail = prev;
        e->n_queued--;
        r->next = e->cancelled;
        e->cancelled = r;
        return 0;
    }
    for (int i = 0; i < e->n_run; i++) {
        struct req *r = e->run[i];
        if (r->id != id) continue;
        kvpool_seq_release(&e->pool, &r->kv);
        memmove(&e->run[i], &e->run[i + 1], (size_t)(e->n_run - i - 1) * sizeof *e->run);
        e->n_run--;
        r->next = e->cancelled;
        e->cancelled = r;
        return 0;
    }
    return err_set("no live request has id %llu", (unsigned long long)id);
}

int engine_idle(const struct engine *e) {
    return !e->qhead && e->n_run == 0 && !e->cancelled;
}

void engine_get_stats(const struct engine *e, struct engine_stats *s) {
    *s = e->st;
    s->queued = e->n_queued;
    s->running = e->n_run;
    s->blocks_total = e->pool.n_blocks;
    s->blocks_free = kvpool_free_blocks(&e->pool);
}

/* ---- events --------------------------------------------------------------- */

static int arena_put(struct engine *e, const char *b, size_t n, size_t *off) {
    if (e->n_arena + n + 1 > e->cap_arena) {
        size_t cap = e->cap_arena ? e->cap_arena : 4096;
        while (cap < e->n_arena + n + 1)
            cap *= 2;
        char *a = realloc(e->arena, cap);
        if (!a) return err_set("engine: out of memory for the step's text");
        e->arena = a;
        e->cap_arena = cap;
    }
    *off = e->n_arena;
    if (n) memcpy(e->arena + e->n_arena, b, n);
    e->arena[e->n_arena + n] = '\0';
    e->n_arena += n + 1;
    return 0;
}

static int events_room(struct engine *e) {
    if (e->n_ev < e->cap_ev) return 0;
    int cap = e->cap_ev ? 2 * e->cap_ev : 64;
    struct engine_event *ev = realloc(e->ev, (size_t)cap * sizeof *ev);
    if (ev) e->ev = ev;
    size_t *t = ev ? realloc(e->ev_text, (size_t)cap * sizeof *t) : NULL;
    if (t) e->ev_text = t;
    size_t *x = t ? realloc(e->ev_err, (size_t)cap * sizeof *x) : NULL;
    if (!x) return err_set("engine: out of memory for the step's events");
    e->ev_err = x;
    e->cap_ev = cap;
    return 0;
}

/* A new event of r with text[0..len) copied; NULL + err_set on out of memory. */
static struct engine_event *event_new(struct engine *e, enum engine_event_kind kind,
                                      const struct req *r, const char *text, size_t len) {
    if (events_room(e)) return NULL;
    struct engine_event *ev = &e->ev[e->n_ev];
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    ev->id = r->id;
    ev->token = -1;
    ev->text_len = len;
    e->ev_err[e->n_ev] = (size_t)-1;
    if (arena_put(e, text, len, &e->ev_text[e->n_ev])) return NULL;
    e->n_ev++;
    return ev;
}

/* Finish r: release its blocks, report it, move it to the retired list.
 * The caller removes it from the running list. */
static int finish(struct engine *e, struct req *r, enum engine_finish why,
                  const char *error) {
    const char *tail = NULL;
    size_t tlen = 0;
    if (r->has_stop && why != ENGINE_FINISH_STOP_STRING &&
        why != ENGINE_FINISH_CANCELLED && why != ENGINE_FINISH_ERROR)
        stopstr_flush(&r->stop, &tail, &tlen);
    kvpool_seq_release(&e->pool, &r->kv);
    r->done = 1;
    r->next = e->retired;
    e->retired = r;
    struct engine_event *ev = event_new(e, ENGINE_EVENT_FINISH, r, tail, tlen);
    if (!ev) return -1;
    double now = timer_now();
    ev->why = why;
    ev->tokens = r->tokens + r->n_prompt;
    ev->n_prompt = r->n_prompt;
    ev->n_generated = r->n_generated;
    ev->queue_s = r->t_admit > 0 ? r->t_admit - r->t_submit : now - r->t_submit;
    ev->ttft_s = r->t_first > 0 ? r->t_first - r->t_submit : 0.0;
    ev->total_s = now - r->t_submit;
    if (error && arena_put(e, error, strlen(error), &e->ev_err[e->n_ev - 1])) return -1;
    e->st.finished++;
    return 0;
}

/* Sample the n sequences lreq[0..n) from logits rows 0..n-1, in parallel. */
static void sample_all(struct engine *e, int n) {
    const int V = e->d->cfg.vocab_size;
    double ts = timer_now();
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
    for (int k = 0; k < n; k++) {
        struct req *r = e->lreq[k];
        e->sampled[k] = sampler_sample(&r->sampler, e->logits + (size_t)k * V,
                                       e->vocab_limit, r->tokens, (size_t)r->n_tokens);
        if (e->sampled[k] < 0)
            snprintf(e->serr + (size_t)k * SERR, SERR, "%s", err_msg());
    }
    e->st.sample_s += timer_now() - ts;
}

/* Take r's sampled token k and apply the stop rules. */
static int after_sample(struct engine *e, struct req *r, int k) {
    int32_t tok = e->sampled[k];
    if (tok < 0) return finish(e, r, ENGINE_FINISH_ERROR, e->serr + (size_t)k * SERR);
    r->tokens[r->n_tokens++] = tok;
    r->n_generated++;
    e->st.generated_tokens++;
    if (r->n_generated == 1) r->t_first = timer_now();
    if (tok == r->eot) return finish(e, r, ENGINE_FINISH_EOT, NULL);
    size_t blen = 0;
    const char *b = e->tok ? tokenizer_token_bytes(e->tok, tok, &blen) : NULL;
    if (!b) blen = 0;
    int hit = 0;
    struct engine_event *ev;
    if (r->has_stop) {
        const char *out;
        size_t olen;
        hit = stopstr_feed(&r->stop, b ? b : "", blen, &out, &olen);
        if (hit < 0) return -1;
        ev = event_new(e, ENGINE_EVENT_TOKEN, r, out, olen);
    } else {
        ev = event_new(e, ENGINE_EVENT_TOKEN, r, b, blen);
    }
    if (!ev) return -1;
    ev->token = tok;
    if (hit) return finish(e, r, ENGINE_FINISH_STOP_STRING, NULL);
    if (r->n_generated >= r->max_tokens)
        return finish(e, r, ENGINE_FINISH_MAX_TOKENS, NULL);
    if (r->kv.len >= e->ctx) return finish(e, r, ENGINE_FINISH_CONTEXT, NULL);
    r->state = R_DECODE;
    return 0;
}

/* ---- one step ----------------------------------------------------------- */

/* Move the queue head into the running list: blocks, sampler. 1 when it
 * does not fit now, 0 when admitted, -1 on error. */
static int admit(struct engine *e) {
    struct req *r = e->qhead;
    if (e->n_run >= e->cfg.max_seqs ||
        kvpool_blocks_for(&e->pool, r->need) > kvpool_free_blocks(&e->pool))
        return 1;
    if (kvpool_seq_reserve(&e->pool, &r->kv, r->need)) return -1;
    if (sampler_init(&r->sampler, &r->sp, e->d->cfg.vocab_size)) {
        kvpool_seq_release(&e->pool, &r->kv);
        return -1;
    }
    r->has_sampler = 1;
    e->qhead = r->next;
    if (!e->qhead) e->qtail = NULL;
    r->next = NULL;
    e->n_queued--;
    r->state = R_PREFILL;
    r->t_admit = timer_now();
    e->run[e->n_run++] = r;
    return 0;
}

/* Schedule r's next prompt piece if the budget allows: 1 scheduled, 0 not.
 * *pieces counts the prefill pieces scheduled in this step. */
static int schedule_prefill(struct engine *e, struct req *r, int *ns, int *budget,
                            int *pieces) {
    int left = r->n_prompt - r->kv.len;
    int piece;
    if (e->cfg.exact) {
        /* decoder_forward's chunks, so the shapes are gen_run's; the first
         * piece of a step goes even over the budget, or decodes could
         * starve a prompt forever */
        piece = left < e->d->chunk ? left : e->d->chunk;
        if (*pieces > 0 && piece > *budget) return 0;
    } else {
        if (*budget < 1) return 0;
        piece = left < *budget ? left : *budget;
    }
    struct decoder_seq *s = &e->seqs[*ns];
    s->kv = &r->kv;
    s->tokens = r->tokens + r->kv.len;
    s->n = piece;
    s->want_logits = r->kv.len + piece == r->n_prompt;
    e->seq_req[(*ns)++] = r;
    *budget -= piece;
    (*pieces)++;
    return 1;
}

static int run_forward(struct engine *e, int ns, int rows) {
    const int V = e->d->cfg.vocab_size;
    double t0 = timer_now();
    if (!e->cfg.exact) {
        if (decoder_forward_paged(e->d, &e->pool, e->seqs, ns, e->logits)) return -1;
        e->st.forwards++;
    } else {
        for (int i = 0, k = 0; i < ns; i++) {
            if (decoder_forward_paged(e->d, &e->pool, &e->seqs[i], 1,
                                      e->logits + (size_t)k * V))
                return -1;
            k += e->seqs[i].want_logits != 0;
            e->st.forwards++;
        }
    }
    e->st.forward_s += timer_now() - t0;
    if (rows > e->st.max_step_tokens) e->st.max_step_tokens = rows;
    return 0;
}

int engine_step(struct engine *e, const struct engine_event **events, int *n_events) {
    *events = NULL;
    *n_events = 0;
    free_list(e->retired);
    e->retired = NULL;
    e->n_ev = 0;
    e->n_arena = 0;
    while (e->cancelled) {
        struct req *r = e->cancelled;
        e->cancelled = r->next;
        if (finish(e, r, ENGINE_FINISH_CANCELLED, NULL)) return -1;
    }

    /* schedule: decodes, prefill pieces, admissions */
    int ns = 0, budget = e->cfg.max_batch_tokens;
    for (int i = 0; i < e->n_run; i++) {
        struct req *r = e->run[i];
        if (r->state != R_DECODE) continue;
        struct decoder_seq *s = &e->seqs[ns];
        s->kv = &r->kv;
        s->tokens = &r->tokens[r->n_tokens - 1];
        s->n = 1;
        s->want_logits = 1;
        e->seq_req[ns++] = r;
        budget--;
    }
    int blocked = 0, pieces = 0;
    for (int i = 0; i < e->n_run && !blocked; i++)
        if (e->run[i]->state == R_PREFILL)
            blocked = !schedule_prefill(e, e->run[i], &ns, &budget, &pieces);
    while (!blocked && e->qhead && (budget > 0 || pieces == 0)) {
        int rc = admit(e);
        if (rc < 0) return -1;
        if (rc > 0) break;
        blocked = !schedule_prefill(e, e->run[e->n_run - 1], &ns, &budget, &pieces);
    }
    if (e->n_run > e->st.max_running) e->st.max_running = e->n_run;

    if (ns > 0) {
        int rows = 0;
        for (int i = 0; i < ns; i++) {
            rows += e->seqs[i].n;
            if (e->seq_req[i]->state == R_DECODE)
                e->st.decode_tokens += e->seqs[i].n;
            else
                e->st.prefill_tokens += e->seqs[i].n;
        }
        if (run_forward(e, ns, rows)) return -1;
        int nl = 0;
        for (int i = 0; i < ns; i++)
            if (e->seqs[i].want_logits) e->lreq[nl++] = e->seq_req[i];
        sample_all(e, nl);
        for (int k = 0; k < nl; k++)
            if (after_sample(e, e->lreq[k], k)) return -1;
        int w = 0; /* drop the finished, keep the order */
        for (int i = 0; i < e->n_run; i++)
            if (!e->run[i]->done) e->run[w++] = e->run[i];
        e->n_run = w;
    }
    e->st.steps++;
    for (int i = 0; i < e->n_ev; i++) {
        e->ev[i].text = e->arena + e->ev_text[i];
        e->ev[i].error = e->ev_err[i] == (size_t)-1 ? NULL : e->arena + e->ev_err[i];
    }
    *events = e->ev;
    *n_events = e->n_ev;
    return 0;
}
