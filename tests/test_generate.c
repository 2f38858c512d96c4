/* tests/test_generate.c — KV-cache decoding, sampling and stop strings.
 *
 * Decoder: the inference path (src/infer/decoder.c: split q / k|v
 * projections, a KV cache, chunked prefill, one position per decode step)
 * must give the logits of the training forward (gpt2_forward on the whole
 * sequence so far, an independent code path) at every step: max|a - ref| /
 * max|ref| <= 1e-5 (fp32, differently shaped matmuls round differently at
 * ~1e-7). Weights are N(0, 0.02) scaled up so attention is far from uniform
 * and a cache bug would show. Counters prove the prefix is never recomputed.
 *
 * Sampler: greedy cases must be the argmax; sampled frequencies over many
 * draws (fixed seed) must match the exactly renormalised distribution within
 * 5 standard errors + 0.002, and never hit an id outside the kept set.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "decoder.h"
#include "err.h"
#include "gen.h"
#include "gpt2.h"
#include "kvcache.h"
#include "sampler.h"
#include "stopstr.h"
#include "model_fixture.h"

#define TOL 1e-5

static double rel_err(const float *a, const float *ref, size_t n) {
    double mx = 0.0, md = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)ref[i]), d = fabs((double)a[i] - (double)ref[i]);
        if (isnan(a[i])) return INFINITY;
        mx = r > mx ? r : mx;
        md = d > md ? d : md;
    }
    return md / (mx > 1e-6 ? mx : 1e-6);
}

static void random_tokens(int32_t *t, int n, int V, uint64_t seed) {
    struct rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)(rng_u64(&r) % (uint64_t)V);
}

/* Prefill `prompt` tokens of seq (all logits checked), then decode one token at a
 * time up to the context, checking each step against gpt2_forward. */
static void check_decoder_on(const struct ops *dops, double tol,
                             const struct gpt2_config *cfg, int chunk, int prompt,
                             int borrowed) {
    const struct ops *o = ops_cpu(); /* the reference always runs on the CPU */
    struct param_table t;
    float *host = random_params(cfg, &t, 11, 5.0f);
    struct gpt2 m;
    cr_assert_eq(gpt2_create(&m, cfg, o), 0, "%s", err_msg());
    gpt2_set_params(&m, host);
    struct decoder d;
    int rc = borrowed ? decoder_create_borrowed(&d, cfg, dops, m.params, chunk)
                      : decoder_create(&d, cfg, dops, host, chunk);
    cr_assert_eq(rc, 0, "%s", err_msg());
    struct kv_cache c;
    cr_assert_eq(kvcache_create(&c, dops, cfg, 2, 0), 0, "%s", err_msg());
    /* use the second slot so slot offsets are exercised */
    cr_assert_eq(kvcache_acquire(&c), 0);
    int slot = kvcache_acquire(&c);
    cr_assert_eq(slot, 1);

    const int S = cfg->max_seq, V = cfg->vocab_size;
    int32_t *seq = malloc((size_t)S * sizeof *seq);
    float *got = malloc((size_t)S * V * sizeof *got);
    float *ref = malloc((size_t)S * V * sizeof *ref);
    cr_assert(seq && got && ref);
    random_tokens(seq, S, V, 99 + (uint64_t)prompt);

    /* prefill: every row */
    cr_assert_eq(decoder_forward(&d, &c, slot, seq, prompt, DECODER_LOGITS_ALL, got), 0,
                 "%s", err_msg());
    cr_assert_eq(gpt2_forward(&m, seq, NULL, 1, prompt, NULL), 0, "%s", err_msg());
    o->download(ref, m.logits, (size_t)prompt * V * sizeof *ref);
    double e = rel_err(got, ref, (size_t)prompt * V);
    cr_assert(e <= tol, "prefill of %d (chunk %d): rel err %.3g", prompt, d.chunk, e);

    /* decode steps */
    for (int T = prompt + 1; T <= S; T++) {
        cr_assert_eq(
            decoder_forward(&d, &c, slot, &seq[T - 1], 1, DECODER_LOGITS_LAST, got), 0,
            "%s", err_msg());
        cr_assert_eq(gpt2_forward(&m, seq, NULL, 1, T, NULL), 0, "%s", err_msg());
        o->download(ref, m.logits + (size_t)(T - 1) * V, (size_t)V * sizeof *ref);
        e = rel_err(got, ref, (size_t)V);
        cr_assert(e <= tol, "decode at position %d (prompt %d): rel err %.3g", T - 1,
                  prompt, e);
    }
    /* no recomputation: every position went through the model exactly once */
    cr_assert_eq(d.positions_processed, S,
                 "processed %lld positions for a sequence of %d", d.positions_processed,
                 S);
    cr_assert_eq(d.forward_calls, 1 + S - prompt);
    cr_assert_eq(kvcache_len(&c, slot), S);
    cr_assert_eq(kvcache_len(&c, 0), 0);
    /* the context is full: one more position is an error naming the lengths */
    cr_assert_eq(decoder_forward(&d, &c, slot, seq, 1, DECODER_LOGITS_LAST, got), -1);
    cr_assert(strstr(err_msg(), "exceed the context"), "%s", err_msg());
    cr_assert_eq(d.positions_processed, S);

    kvcache_destroy(&c);
    decoder_destroy(&d);
    gpt2_destroy(&m);
    param_table_free(&t);
    free(host);
    free(seq);
    free(got);
    free(ref);
}

static void check_decoder(const struct gpt2_config *cfg, int chunk, int prompt,
                          int borrowed) {
    check_decoder_on(ops_cpu(), TOL, cfg, chunk, prompt, borrowed);
}

static const struct gpt2_config tiny = {256, 64, 2, 4, 32};
static const struct gpt2_config wide = {300, 40, 3, 6, 96};

Test(decoder, tiny_matches_training_forward) {
    check_decoder(&tiny, 0, 1, 1); /* prefill of one token */
    check_decoder(&tiny, 0, 13, 1);
    check_decoder(&tiny, 0, 64, 1); /* prompt ends exactly at the context */
}

Test(decoder, tiny_chunked_prefill) {
    check_decoder(&tiny, 5, 23, 0); /* 5 chunks: queries against a longer cache */
    check_decoder(&tiny, 7, 64, 0);
}

Test(decoder, wide_several_heads) {
    check_decoder(&wide, 0, 1, 0);
    check_decoder(&wide, 0, 17, 1);
    check_decoder(&wide, 16, 40, 0);
}

/* The same code over the CUDA backend (skipped where there is none): the
 * decoder and its cache live in device memory, the reference on the CPU.
 * 1e-4 as in test_cuda_vs_cpu (fp32 both, different summation orders). */
Test(decoder, cuda_matches_cpu_reference) {
    const struct ops *cuda = backend_select("cuda");
    if (!cuda) cr_skip_test("no CUDA backend here: %s", err_msg());
    check_decoder_on(cuda, 1e-4, &tiny, 0, 1, 0);
    check_decoder_on(cuda, 1e-4, &wide, 16, 40, 0);
    check_decoder_on(cuda, 1e-4, &wide, 0, 9, 0);
}

Test(decoder, rejects_bad_input) {
    const struct ops *o = ops_cpu();
    struct param_table t;
    float *host = random_params(&tiny, &t, 3, 1.0f);
    struct decoder d;
    cr_assert_eq(decoder_create(&d, &tiny, o, host, 0), 0, "%s", err_msg());
    struct kv_cache c;
    cr_assert_eq(kvcache_create(&c, o, &tiny, 1, 0), 0, "%s", err_msg());
    int slot = kvcache_acquire(&c);
    cr_assert_eq(kvcache_acquire(&c), -1, "a second slot from a pool of one");
    int32_t bad[2] = {5, 256};
    float *lg = malloc(256 * sizeof *lg);
    cr_assert_eq(decoder_forward(&d, &c, slot, bad, 2, DECODER_LOGITS_LAST, lg), -1);
    cr_assert(strstr(err_msg(), "outside the vocabulary"), "%s", err_msg());
    cr_assert_eq(kvcache_len(&c, slot), 0, "a failed call appended positions");
    int32_t *many = calloc(65, sizeof *many);
    cr_assert_eq(decoder_forward(&d, &c, slot, many, 65, DECODER_LOGITS_LAST, lg), -1);
    cr_assert(strstr(err_msg(), "0 cached + 65 new positions exceed the context of 64"),
              "%s", err_msg());
    struct kv_cache wrong;
    struct gpt2_config w2 = tiny;
    w2.n_layer = 3;
    cr_assert_eq(kvcache_create(&wrong, o, &w2, 1, 0), 0);
    cr_assert_eq(decoder_forward(&d, &wrong, kvcache_acquire(&wrong), many, 1,
                                 DECODER_LOGITS_LAST, lg),
                 -1);
    kvcache_destroy(&wrong);
    kvcache_destroy(&c);
    decoder_destroy(&d);
    param_table_free(&t);
    free(host);
    free(lg);
    free(many);
}

/* ---- the generation loop ------------------------------------------------ */

struct sink {
    char buf[4096];
    size_t n;
};
static int to_sink(const char *b, size_t n, void *ctx) {
    struct sink *s = ctx;
    cr_assert(s->n + n < sizeof s->buf);
    memcpy(s->buf + s->n, b, n);
    s->n += n;
    return 0;
}

static int run_gen(struct decoder *d, const int32_t *prompt, int n, int max_tokens,
                   struct sampler_params *sp, struct gen_result *r, struct sink *out) {
    struct kv_cache c;
    cr_assert_eq(kvcache_create(&c, d->ops, &d->cfg, 1, 0), 0, "%s", err_msg());
    int slot = kvcache_acquire(&c);
    struct sampler s;
    cr_assert_eq(sampler_init(&s, sp, d->cfg.vocab_size), 0, "%s", err_msg());
    struct gen_request req = {.prompt = prompt,
                              .n_prompt = n,
                              .max_tokens = max_tokens,
                              .eot = -1,
                              .sampler = &s,
                              .tok = NULL};
    memset(out, 0, sizeof *out);
    int rc = gen_run(d, &c, slot, &req, to_sink, out, r);
    sampler_free(&s);
    kvcache_destroy(&c);
    return rc;
}

Test(gen, stops_at_context_and_never_recomputes) {
    const struct ops *o = ops_cpu();
    struct param_table t;
    float *host = random_params(&tiny, &t, 5, 3.0f);
    struct decoder d;
    cr_assert_eq(decoder_create(&d, &tiny, o, host, 0), 0, "%s", err_msg());
    int32_t prompt[65];
    random_tokens(prompt, 65, 256, 1);
    struct sampler_params sp = sampler_defaults();
    sp.seed = 4;
    struct gen_result r;
    struct sink out;

    /* 10 prompt tokens, 20 generated: 19 single-position forwards */
    cr_assert_eq(run_gen(&d, prompt, 10, 20, &sp, &r, &out), 0, "%s", err_msg());
    cr_assert_eq(r.why, GEN_STOP_MAX_TOKENS);
    cr_assert_eq(r.n_generated, 20);
    cr_assert_eq(r.n_decode_steps, 19);
    cr_assert_eq(d.positions_processed, 10 + 19);
    int32_t first[30];
    memcpy(first, r.tokens, sizeof first);
    gen_result_free(&r);

    /* same seed: the same tokens; another seed: other tokens */
    cr_assert_eq(run_gen(&d, prompt, 10, 20, &sp, &r, &out), 0);
    cr_assert_eq(memcmp(first, r.tokens, sizeof first), 0, "same seed, different tokens");
    gen_result_free(&r);
    sp.seed = 5;
    cr_assert_eq(run_gen(&d, prompt, 10, 20, &sp, &r, &out), 0);
    cr_assert_neq(memcmp(first, r.tokens, sizeof first), 0, "another seed, same tokens");
    gen_result_free(&r);

    /* runs into the context: 60 + 5 = 65 > 64 */
    cr_assert_eq(run_gen(&d, prompt, 60, 100, &sp, &r, &out), 0, "%s", err_msg());
    cr_assert_eq(r.why, GEN_STOP_CONTEXT);
    cr_assert_eq(r.n_generated, 5, "expected 64 - 60 + 1 tokens, got %d", r.n_generated);
    gen_result_free(&r);
    /* a prompt of exactly the context still yields one token */
    cr_assert_eq(run_gen(&d, prompt, 64, 10, &sp, &r, &out), 0, "%s", err_msg());
    cr_assert_eq(r.why, GEN_STOP_CONTEXT);
    cr_assert_eq(r.n_generated, 1);
    cr_assert_eq(r.n_decode_steps, 0);
    gen_result_free(&r);
    /* longer than the context: an error naming both lengths */
    cr_assert_eq(run_gen(&d, prompt, 65, 10, &sp, &r, &out), -1);
    cr_assert(strstr(err_msg(), "65 tokens") && strstr(err_msg(), "context is 64"), "%s",
              err_msg());

    decoder_destroy(&d);
    param_table_free(&t);
    free(host);
}

/* ---- sampler -------------------------------------------------------------- */

#define NV 40
static void test_logits(float *z, int n, uint64_t seed) {
    struct rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++)
        z[i] = (float)(2.0 * rng_normal(&r));
}

static int argmax(const float *z, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (z[i] > z[b]) b = i;
    return b;
}

Test(sampler, greedy_is_argmax) {
    float z[NV];
    struct sampler_params p0 = sampler_defaults(), p1 = sampler_defaults();
    p0.temperature = 0.0f;
    p1.top_k = 1;
    p1.temperature = 2.0f;
    struct sampler a, b;
    cr_assert_eq(sampler_init(&a, &p0, NV), 0);
    cr_assert_eq(sampler_init(&b, &p1, NV), 0);
    for (int trial = 0; trial < 200; trial++) {
        test_logits(z, NV, trial);
        cr_assert_eq(sampler_sample(&a, z, NV, NULL, 0), argmax(z, NV));
        cr_assert_eq(sampler_sample(&b, z, NV, NULL, 0), argmax(z, NV));
    }
    /* ties: the lowest id */
    float tie[4] = {1.0f, 3.0f, 3.0f, 0.0f};
    cr_assert_eq(sampler_sample(&a, tie, 4, NULL, 0), 1);
    sampler_free(&a);
    sampler_free(&b);
}

/* Draw N ids and compare frequencies with the expected distribution q. */
static void check_freq(struct sampler *s, const float *z, int n, const double *q, int N) {
    int *cnt = calloc((size_t)n, sizeof *cnt);
    for (int i = 0; i < N; i++) {
        int32_t id = sampler_sample(s, z, n, NULL, 0);
        cr_assert(id >= 0 && id < n, "%s", err_msg());
        cr_assert(q[id] > 0.0, "drew id %d which has probability 0", id);
        cnt[id]++;
    }
    for (int i = 0; i < n; i++) {
        double f = (double)cnt[i] / N;
        double tol = 5.0 * sqrt(q[i] * (1.0 - q[i]) / N) + 0.002;
        cr_assert(fabs(f - q[i]) <= tol, "id %d: frequency %.4f, expected %.4f (+-%.4f)",
                  i, f, q[i], tol);
    }
    free(cnt);
}

/* Exact distribution: softmax(z / T) over the kept set (mask), renormalised. */
static void softmax_masked(const float *z, int n, double T, const int *keep, double *q) {
    double mx = -INFINITY, s = 0.0;
    for (int i = 0; i < n; i++)
        if (keep[i] && z[i] > mx) mx = z[i];
    for (int i = 0; i < n; i++) {
        q[i] = keep[i] ? exp((z[i] - mx) / T) : 0.0;
        s += q[i];
    }
    for (int i = 0; i < n; i++)
        q[i] /= s;
}

Test(sampler, temperature_frequencies) {
    float z[NV];
    double q[NV];
    int keep[NV];
    test_logits(z, NV, 7);
    for (int i = 0; i < NV; i++)
        keep[i] = 1;
    struct sampler_params p = sampler_defaults();
    p.temperature = 0.7f;
    p.seed = 123;
    softmax_masked(z, NV, 0.7, keep, q);
    struct sampler s;
    cr_assert_eq(sampler_init(&s, &p, NV), 0);
    check_freq(&s, z, NV, q, 40000);
    sampler_free(&s);
}

Test(sampler, top_k_restricts_to_k_largest) {
    float z[NV];
    double q[NV];
    int keep[NV], order[NV];
    test_logits(z, NV, 8);
    for (int i = 0; i < NV; i++)
        order[i] = i;
    for (int i = 0; i < NV; i++) /* selection sort, descending */
        for (int j = i + 1; j < NV; j++)
            if (z[order[j]] > z[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    const int k = 6;
    memset(keep, 0, sizeof keep);
    for (int i = 0; i < k; i++)
        keep[order[i]] = 1;
    struct sampler_params p = sampler_defaults();
    p.top_k = k;
    p.temperature = 1.5f;
    p.seed = 9;
    softmax_masked(z, NV, 1.5, keep, q);
    struct sampler s;
    cr_assert_eq(sampler_init(&s, &p, NV), 0);
    check_freq(&s, z, NV, q, 40000);
    sampler_free(&s);
}

Test(sampler, top_p_keeps_smallest_set_with_mass_p) {
    /* probabilities 0.4, 0.25, 0.15, 0.1, then 0.1 spread over 36 ids */
    float z[NV];
    double pr[NV], q[NV];
    int keep[NV];
    pr[0] = 0.4;
    pr[1] = 0.25;
    pr[2] = 0.15;
    pr[3] = 0.1;
    for (int i = 4; i < NV; i++)
        pr[i] = 0.1 / (NV - 4);
    /* shuffle the ids so the nucleus is not a prefix of the ids */
    int perm[NV];
    for (int i = 0; i < NV; i++)
        perm[i] = (i * 17 + 5) % NV;
    for (int i = 0; i < NV; i++)
        z[perm[i]] = (float)log(pr[i]);
    struct {
        double p;
        int size;
    } cases[] = {{0.3, 1}, {0.6, 2}, {0.75, 3}, {0.85, 4}, {0.94, 19}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        /* p = 0.94: 0.9 + 15 of the 36 tail ids of 0.1/36 each */
        int size = cases[c].size;
        memset(keep, 0, sizeof keep);
        for (int i = 0; i < size; i++)
            keep[perm[i]] = 1;
        if (size > 4) { /* the tail ids are tied: lower ids win the tie */
            memset(keep, 0, sizeof keep);
            for (int i = 0; i < 4; i++)
                keep[perm[i]] = 1;
            int need = size - 4;
            for (int id = 0; id < NV && need > 0; id++) {
                int rank = -1;
                for (int i = 0; i < NV; i++)
                    if (perm[i] == id) rank = i;
                if (rank >= 4) {
                    keep[id] = 1;
                    need--;
                }
            }
        }
        struct sampler_params p = sampler_defaults();
        p.top_p = (float)cases[c].p;
        p.seed = 77 + c;
        softmax_masked(z, NV, 1.0, keep, q);
        struct sampler s;
        cr_assert_eq(sampler_init(&s, &p, NV), 0);
        check_freq(&s, z, NV, q, 30000);
        sampler_free(&s);
    }
}

Test(sampler, top_k_and_top_p_together) {
    float z[NV];
    double q[NV];
    int keep[NV];
    test_logits(z, NV, 21);
    /* top-k 10 then top-p 0.5 over the renormalised top 10: compute exactly */
    int order[NV];
    for (int i = 0; i < NV; i++)
        order[i] = i;
    for (int i = 0; i < NV; i++)
        for (int j = i + 1; j < NV; j++)
            if (z[order[j]] > z[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    double w[10], tot = 0.0;
    for (int i = 0; i < 10; i++)
        tot += (w[i] = exp((double)z[order[i]] - z[order[0]]));
    memset(keep, 0, sizeof keep);
    double cum = 0.0;
    for (int i = 0; i < 10; i++) {
        keep[order[i]] = 1;
        cum += w[i] / tot;
        if (cum >= 0.5) break;
    }
    struct sampler_params p = sampler_defaults();
    p.top_k = 10;
    p.top_p = 0.5f;
    p.seed = 3;
    softmax_masked(z, NV, 1.0, keep, q);
    struct sampler s;
    cr_assert_eq(sampler_init(&s, &p, NV), 0);
    check_freq(&s, z, NV, q, 30000);
    sampler_free(&s);
}

static void draw_seq(uint64_t seed, int32_t *out, int n) {
    float z[NV];
    struct sampler_params p = sampler_defaults();
    p.seed = seed;
    p.top_p = 0.9f;
    p.top_k = 20;
    struct sampler s;
    cr_assert_eq(sampler_init(&s, &p, NV), 0);
    for (int i = 0; i < n; i++) {
        test_logits(z, NV, (uint64_t)i);
        out[i] = sampler_sample(&s, z, NV, out, (size_t)i);
    }
    sampler_free(&s);
}

Test(sampler, seed_determines_sequence) {
    int32_t a[200], b[200], c[200];
    draw_seq(42, a, 200);
    draw_seq(42, b, 200);
    draw_seq(43, c, 200);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "same seed, different sequences");
    cr_assert_neq(memcmp(a, c, sizeof a), 0, "different seeds, same sequence");
}

Test(sampler, repetition_penalty) {
    struct sampler_params p = sampler_defaults();
    p.temperature = 0.0f;
    p.repetition_penalty = 1.2f;
    struct sampler s;
    cr_assert_eq(sampler_init(&s, &p, 4), 0);
    float pos[4] = {2.0f, 1.9f, 0.0f, -5.0f};
    int32_t hist[3] = {0, 0, 3}; /* repeated ids are penalised once */
    cr_assert_eq(sampler_sample(&s, pos, 4, NULL, 0), 0);
    cr_assert_eq(sampler_sample(&s, pos, 4, hist, 3), 1); /* 2.0 / 1.2 < 1.9 */
    float neg[4] = {-1.0f, -1.1f, -3.0f, -4.0f};
    cr_assert_eq(sampler_sample(&s, neg, 4, hist, 3), 1); /* -1.0 * 1.2 < -1.1 */
    cr_assert_eq(pos[0], 2.0f, "the logits were modified");
    sampler_free(&s);
}

Test(sampler, rejects_bad_settings_and_nan) {
    struct sampler_params p = sampler_defaults();
    struct sampler s;
    p.temperature = -1.0f;
    cr_assert_eq(sampler_init(&s, &p, 4), -1);
    cr_assert(strstr(err_msg(), "temperature"), "%s", err_msg());
    p = sampler_defaults();
    p.top_p = 0.0f;
    cr_assert_eq(sampler_init(&s, &p, 4), -1);
    cr_assert(strstr(err_msg(), "top-p"), "%s", err_msg());
    p = sampler_defaults();
    cr_assert_eq(sampler_init(&s, &p, 4), 0);
    float z[4] = {0.0f, NAN, 1.0f, 2.0f};
    cr_assert_eq(sampler_sample(&s, z, 4, NULL, 0), -1);
    cr_assert(strstr(err_msg(), "NaN"), "%s", err_msg());
    cr_assert_eq(sampler_sample(&s, z, 5, NULL, 0), -1);
    sampler_free(&s);
}

/* ---- stop strings ------------------------------------------------------- */

Test(stopstr, holds_back_partial_matches) {
    const char *stops[] = {"User:", "abc"};
    struct stopstr m;
    cr_assert_eq(stopstr_init(&m, stops, 2), 0);
    const char *out;
    size_t n;
    char got[256] = "";
    const char *feed[] = {"Hello wor", "ld. Us", "ex ab", "d ", "x Us", "er: more"};
    int hit = 0;
    for (size_t i = 0; i < sizeof feed / sizeof feed[0] && !hit; i++) {
        hit = stopstr_feed(&m, feed[i], strlen(feed[i]), &out, &n);
        cr_assert(hit >= 0);
        strncat(got, out, n);
        /* nothing released may end in a prefix of a stop string */
        cr_assert(!strstr(got, "User:"));
    }
    cr_assert_eq(hit, 1);
    cr_assert_eq(m.matched, 0);
    cr_assert_str_eq(got, "Hello world. Usex abd x ");
    stopstr_free(&m);

    cr_assert_eq(stopstr_init(&m, stops, 2), 0);
    strcpy(got, "");
    cr_assert_eq(stopstr_feed(&m, "xab", 3, &out, &n), 0);
    strncat(got, out, n);
    cr_assert_str_eq(got, "x");
    stopstr_flush(&m, &out, &n);
    strncat(got, out, n);
    cr_assert_str_eq(got, "xab");
    stopstr_free(&m);

    const char *empty[] = {""};
    cr_assert_eq(stopstr_init(&m, empty, 1), -1);
}
