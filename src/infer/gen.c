/* src/infer/gen.c — prefill + decode loop of one request (see gen.h). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gen.h"
#include "timer.h"

const char *gen_stop_name(enum gen_stop why) {
    switch (why) {
    case GEN_STOP_MAX_TOKENS:
        return "max_tokens";
    case GEN_STOP_EOT:
        return "end_of_text";
    case GEN_STOP_CONTEXT:
        return "context_full";
    case GEN_STOP_STRING:
        return "stop_string";
    }
    return "?";
}

void gen_result_free(struct gen_result *r) {
    free(r->tokens);
    r->tokens = NULL;
    r->n_tokens = 0;
}

static int emit_bytes(gen_emit_fn emit, void *ctx, const char *b, size_t n) {
    if (!emit || n == 0) return 0;
    if (emit(b, n, ctx)) return err_set("generation aborted: writing the output failed");
    return 0;
}

int gen_run(struct decoder *d, struct kv_cache *c, int slot,
            const struct gen_request *req, gen_emit_fn emit, void *ctx,
            struct gen_result *r) {
    memset(r, 0, sizeof *r);
    const int V = d->cfg.vocab_size;
    const int ctxlen = c->capacity;
    if (req->n_prompt < 1)
        return err_set("the prompt is empty (need at least one token)");
    if (req->max_tokens < 1) return err_set("max tokens %d (need >= 1)", req->max_tokens);
    if (kvcache_len(c, slot) != 0)
        return err_set("cache slot %d is not empty (%d positions)", slot,
                       kvcache_len(c, slot));
    if (req->n_prompt > ctxlen)
        return err_set("the prompt is %d tokens but the model's context is %d",
                       req->n_prompt, ctxlen);
    int nlim = req->vocab_limit > 0 && req->vocab_limit < V ? req->vocab_limit : V;

    int cap = req->n_prompt + req->max_tokens;
    float *logits = malloc((size_t)V * sizeof *logits);
    r->tokens = malloc((size_t)cap * sizeof *r->tokens);
    if (!logits || !r->tokens) {
        free(logits);
        gen_result_free(r);
        return err_set("out of memory");
    }
    memcpy(r->tokens, req->prompt, (size_t)req->n_prompt * sizeof *r->tokens);
    r->n_tokens = req->n_prompt;

    double t0 = timer_now();
    if (decoder_forward(d, c, slot, req->prompt, req->n_prompt, DECODER_LOGITS_LAST,
                        logits))
        goto fail;
    r->prefill_s = timer_now() - t0;

    for (;;) {
        double ts = timer_now();
        int32_t tok =
            sampler_sample(req->sampler, logits, nlim, r->tokens, (size_t)r->n_tokens);
        r->sample_s += timer_now() - ts;
        if (tok < 0) goto fail;
        r->tokens[r->n_tokens++] = tok;
        r->n_generated++;
        if (tok == req->eot) {
            r->why = GEN_STOP_EOT;
            break;
        }
        size_t blen = 0;
        const char *b = req->tok ? tokenizer_token_bytes(req->tok, tok, &blen) : NULL;
        if (req->stop) {
            const char *out;
            size_t olen;
            int hit = stopstr_feed(req->stop, b ? b : "", b ? blen : 0, &out, &olen);
            if (hit < 0 || emit_bytes(emit, ctx, out, olen)) goto fail;
            if (hit) {
                r->why = GEN_STOP_STRING;
                break;
            }
        } else if (b && emit_bytes(emit, ctx, b, blen)) {
            goto fail;
        }
        if (r->n_generated >= req->max_tokens) {
            r->why = GEN_STOP_MAX_TOKENS;
            break;
        }
        if (kvcache_len(c, slot) >= ctxlen) {
            r->why = GEN_STOP_CONTEXT;
            break;
        }
        double td = timer_now();
        if (decoder_forward(d, c, slot, &tok, 1, DECODER_LOGITS_LAST, logits)) goto fail;
        r->decode_s += timer_now() - td;
        r->n_decode_steps++;
    }
    if (req->stop && r->why != GEN_STOP_STRING) {
        const char *out;
        size_t olen;
        stopstr_flush(req->stop, &out, &olen);
        if (emit_bytes(emit, ctx, out, olen)) goto fail;
    }
    free(logits);
    return 0;
fail:
    free(logits);
    gen_result_free(r);
    return -1;
}
