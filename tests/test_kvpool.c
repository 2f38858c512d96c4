/* tests/test_kvpool.c — the paged KV pool and the paged (batched) decoder.
 *
 * Pool: sizing from a byte budget, first-fit runs, fragmented tables when
 * the pool has no run, scattered rows read back where the table says,
 * every block returned.
 *
 * Paged decoder (src/infer/decoder.c, decoder_forward_paged):
 *  - one sequence at a time, whether its blocks are one run or scattered,
 *    gives logits bitwise equal to decoder_forward over a contiguous cache:
 *    the ops run at the same shapes on the same values, and the paged
 *    attention op's result does not depend on where the k|v rows live
 *    (ops.h; a contiguous slot is one block);
 *  - several sequences per step (prefill chunks and decode tokens mixed,
 *    different lengths) agree with decoder_forward per sequence within
 *    1e-5 relative: the matmuls then run over M = all rows, and BLAS rounds
 *    differently for different M (not bitwise, by design of sgemm).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "decoder.h"
#include "err.h"
#include "kvcache.h"
#include "kvpool.h"
#include "model.h"
#include "rng.h"
#include "model_fixture.h"

static const struct gpt2_config tiny = {256, 64, 2, 4, 32};
static const struct gpt2_config wide = {300, 40, 3, 6, 96};

/* ---- the pool ------------------------------------------------------------- */

/* Are the blocks holding s's first n positions one run (b, b+1, ...)? */
static int is_run(const struct kvpool *p, const struct kvpool_seq *s, int n) {
    int nb = kvpool_blocks_for(p, n);
    if (nb < 1 || nb > s->n_blocks) return 0;
    for (int i = 1; i < nb; i++)
        if (s->blocks[i] != s->blocks[0] + i) return 0;
    return 1;
}

Test(kvpool, sizes_from_budget) {
    const struct ops *o = ops_cpu();
    struct kvpool p;
    size_t bb = kvpool_block_bytes(&tiny, 16);
    cr_assert_eq(bb, (size_t)2 * 16 * 64 * 4);
    cr_assert_eq(kvpool_create(&p, o, &tiny, 8 * bb + bb - 1, 0), 0, "%s", err_msg());
    cr_assert_eq(p.n_blocks, 8);
    cr_assert_eq(p.block_size, 16);
    cr_assert_eq(kvpool_free_blocks(&p), 8);
    cr_assert_eq(kvpool_blocks_for(&p, 0), 0);
    cr_assert_eq(kvpool_blocks_for(&p, 1), 1);
    cr_assert_eq(kvpool_blocks_for(&p, 16), 1);
    cr_assert_eq(kvpool_blocks_for(&p, 17), 2);
    cr_assert_eq(kvpool_check_fits(&p, 128), 0);
    cr_assert_eq(kvpool_check_fits(&p, 129), -1);
    cr_assert(strstr(err_msg(), "needs 9 KV blocks") &&
                  strstr(err_msg(), "holds 8 blocks"),
              "%s", err_msg());
    kvpool_destroy(&p);

    cr_assert_eq(kvpool_create(&p, o, &tiny, bb - 1, 16), -1);
    cr_assert(strstr(err_msg(), "holds no block"), "%s", err_msg());
    cr_assert_eq(kvpool_create(&p, o, &tiny, 100 * bb, 65), -1);
    cr_assert(strstr(err_msg(), "block size 65"), "%s", err_msg());
}

Test(kvpool, runs_fragments_and_release) {
    const struct ops *o = ops_cpu();
    struct kvpool p;
    cr_assert_eq(kvpool_create(&p, o, &tiny, 8 * kvpool_block_bytes(&tiny, 16), 16), 0);
    struct kvpool_seq s[4], e;
    for (int i = 0; i < 4; i++) {
        kvpool_seq_init(&s[i]);
        cr_assert_eq(kvpool_seq_reserve(&p, &s[i], 20), 0, "%s", err_msg());
        cr_assert_eq(s[i].n_blocks, 2);
        cr_assert_eq(s[i].blocks[0], 2 * i);
        cr_assert_eq(s[i].blocks[1], 2 * i + 1);
        cr_assert(is_run(&p, &s[i], 32));
    }
    cr_assert_eq(kvpool_free_blocks(&p), 0);
    kvpool_seq_init(&e);
    cr_assert_eq(kvpool_seq_reserve(&p, &e, 1), -1);
    cr_assert(strstr(err_msg(), "1 more blocks needed, 0 of 8 free"), "%s", err_msg());
    cr_assert_eq(e.n_blocks, 0);
    /* free 2-3 and 6-7: no run of 4, so e gets 2, 3, 6, 7 */
    kvpool_seq_release(&p, &s[1]);
    kvpool_seq_release(&p, &s[3]);
    cr_assert_eq(kvpool_free_blocks(&p), 4);
    cr_assert_eq(kvpool_seq_reserve(&p, &e, 64), 0, "%s", err_msg());
    int want[4] = {2, 3, 6, 7};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(e.blocks[i], want[i]);
    cr_assert(is_run(&p, &e, 32));
    cr_assert(!is_run(&p, &e, 33));
    cr_assert_eq(kvpool_seq_reserve(&p, &e, 65), -1); /* over the context */

    /* scatter 64 known rows into the fragmented table, read each back where
     * the table and the layout say it lives */
    const int C2 = 2 * tiny.n_embd;
    float *rows = malloc((size_t)64 * C2 * sizeof *rows);
    float *back = calloc((size_t)64 * C2, sizeof *back);
    for (int i = 0; i < 64 * C2; i++)
        rows[i] = (float)i;
    kvpool_scatter(&p, &e, 1, 0, 5, rows);
    kvpool_scatter(&p, &e, 1, 5, 59, rows + 5 * C2); /* crosses every block */
    for (int j = 0; j < 64; j++) {
        const float *at =
            kvpool_layer(&p, 1) + ((size_t)e.blocks[j / 16] * 16 + (size_t)(j % 16)) * C2;
        cr_assert_eq(at, kvpool_row(&p, &e, 1, j));
        o->download(back + (size_t)j * C2, at, (size_t)C2 * sizeof *back);
    }
    cr_assert_eq(memcmp(rows, back, (size_t)64 * C2 * sizeof *rows), 0);
    cr_assert_eq(kvpool_row(&p, &e, 1, 40)[3], rows[40 * C2 + 3]);
    free(rows);
    free(back);

    kvpool_seq_release(&p, &e);
    kvpool_seq_release(&p, &s[0]);
    kvpool_seq_release(&p, &s[2]);
    cr_assert_eq(kvpool_free_blocks(&p), 8);
    cr_assert_eq(e.n_blocks, 0);
    cr_assert_null(e.blocks);

    /* growing a table extends its run when the next blocks are free */
    kvpool_seq_init(&e);
    cr_assert_eq(kvpool_seq_reserve(&p, &e, 10), 0);
    cr_assert_eq(kvpool_seq_reserve(&p, &e, 16), 0);
    cr_assert_eq(e.n_blocks, 1);
    cr_assert_eq(kvpool_seq_reserve(&p, &e, 40), 0);
    cr_assert_eq(e.n_blocks, 3);
    cr_assert(is_run(&p, &e, 40));
    kvpool_seq_release(&p, &e);
    cr_assert_eq(kvpool_free_blocks(&p), 8);
    kvpool_destroy(&p);
}

/* ---- the paged decoder ------------------------------------------------------ */

static void random_tokens(int32_t *t, int n, int V, uint64_t seed) {
    struct rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)(rng_u64(&r) % (uint64_t)V);
}

static double rel_err(const float *a, const float *ref, size_t n) {
    double mx = 0.0, md = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i])) return INFINITY;
        double r = fabs((double)ref[i]), d = fabs((double)a[i] - (double)ref[i]);
        mx = r > mx ? r : mx;
        md = d > md ? d : md;
    }
    return md / (mx > 1e-6 ? mx : 1e-6);
}

/* A pool whose free blocks are every other one, so tables are scattered. */
static void fragment(struct kvpool *p, struct kvpool_seq *hold, int n_hold) {
    for (int i = 0; i < n_hold; i++) {
        kvpool_seq_init(&hold[i]);
        cr_assert_eq(kvpool_seq_reserve(p, &hold[i], p->block_size), 0);
    }
    for (int i = 0; i < n_hold; i += 2)
        kvpool_seq_release(p, &hold[i]);
}

/* One sequence through the pool vs decoder_forward: bitwise equal logits. */
static void check_single(const struct gpt2_config *cfg, int chunk, int prompt, int block,
                         int scattered) {
    const struct ops *o = ops_cpu();
    struct param_table t;
    float *host = random_params(cfg, &t, 21, 4.0f);
    struct decoder d;
    cr_assert_eq(decoder_create(&d, cfg, o, host, chunk), 0, "%s", err_msg());
    struct kv_cache c;
    cr_assert_eq(kvcache_create(&c, o, cfg, 1, 0), 0);
    int slot = kvcache_acquire(&c);
    /* scattered: a pool of exactly 2x the blocks needed, every other one held */
    struct kvpool p;
    int need = (cfg->max_seq + block - 1) / block, n_hold = scattered ? 2 * need : 0;
    int n_blocks = scattered ? 2 * need : 64;
    cr_assert_eq(
        kvpool_create(&p, o, cfg, n_blocks * kvpool_block_bytes(cfg, block), block), 0);
    struct kvpool_seq hold[64], s;
    fragment(&p, hold, n_hold);
    kvpool_seq_init(&s);
    cr_assert_eq(kvpool_seq_reserve(&p, &s, cfg->max_seq), 0, "%s", err_msg());
    if (scattered) cr_assert(!is_run(&p, &s, cfg->max_seq));

    const int S = cfg->max_seq, V = cfg->vocab_size;
    int32_t *seq = malloc((size_t)S * sizeof *seq);
    float *a = malloc((size_t)V * sizeof *a), *b = malloc((size_t)V * sizeof *b);
    random_tokens(seq, S, V, 5 + (uint64_t)prompt);
    struct decoder_seq ds = {&s, seq, prompt, 1};
    cr_assert_eq(decoder_forward_paged(&d, &p, &ds, 1, a), 0, "%s", err_msg());
    cr_assert_eq(decoder_forward(&d, &c, slot, seq, prompt, DECODER_LOGITS_LAST, b), 0);
    cr_assert_eq(memcmp(a, b, (size_t)V * sizeof *a), 0, "prefill of %d differs", prompt);
    cr_assert_eq(s.len, prompt);
    for (int T = prompt; T < S; T++) {
        struct decoder_seq one = {&s, &seq[T], 1, 1};
        cr_assert_eq(decoder_forward_paged(&d, &p, &one, 1, a), 0, "%s", err_msg());
        cr_assert_eq(decoder_forward(&d, &c, slot, &seq[T], 1, DECODER_LOGITS_LAST, b),
                     0);
        cr_assert_eq(memcmp(a, b, (size_t)V * sizeof *a), 0, "decode at %d differs", T);
    }
    cr_assert_eq(s.len, S);
    struct decoder_seq over = {&s, seq, 1, 1};
    cr_assert_eq(decoder_forward_paged(&d, &p, &over, 1, a), -1);
    cr_assert(strstr(err_msg(), "exceed"), "%s", err_msg());

    kvpool_seq_release(&p, &s);
    for (int i = 1; i < n_hold; i += 2)
        kvpool_seq_release(&p, &hold[i]);
    cr_assert_eq(kvpool_free_blocks(&p), p.n_blocks);
    kvpool_destroy(&p);
    kvcache_destroy(&c);
    decoder_destroy(&d);
    param_table_free(&t);
    free(host);
    free(seq);
    free(a);
    free(b);
}

Test(paged_decoder, one_sequence_bitwise_decoder_forward) {
    check_single(&tiny, 0, 13, 16, 0);  /* one run */
    check_single(&tiny, 0, 13, 16, 1);  /* scattered */
    check_single(&tiny, 8, 30, 5, 1);   /* chunked prefill, odd block size */
    check_single(&wide, 16, 40, 16, 1); /* prompt = context */
    check_single(&wide, 0, 1, 3, 0);
}

/* Several sequences per step vs each alone (decoder_forward), on backend o. */
static void check_batched_on(const struct ops *o, double tol) {
    const struct gpt2_config *cfg = &wide;
    struct param_table t;
    float *host = random_params(cfg, &t, 8, 4.0f);
    struct decoder d, ref;
    cr_assert_eq(decoder_create(&d, cfg, o, host, 24), 0, "%s", err_msg());
    cr_assert_eq(decoder_create(&ref, cfg, ops_cpu(), host, 0), 0, "%s", err_msg());
    enum { NS = 4 };
    const int S = cfg->max_seq, V = cfg->vocab_size;
    const int prompt[NS] = {9, 1, 14, 5};
    struct kv_cache c;
    cr_assert_eq(kvcache_create(&c, ops_cpu(), cfg, NS, 0), 0);
    /* 60 blocks of 4, the first 40 alternately held: sequences 0 and 1 get
     * runs (blocks 40-49, 50-59), 2 and 3 scattered blocks */
    struct kvpool p;
    cr_assert_eq(kvpool_create(&p, o, cfg, 60 * kvpool_block_bytes(cfg, 4), 4), 0);
    struct kvpool_seq hold[40], s[NS];
    fragment(&p, hold, 40);
    int32_t seq[NS][40];
    int slot[NS], done[NS] = {0};
    for (int i = 0; i < NS; i++) {
        random_tokens(seq[i], S, V, 100 + (uint64_t)i);
        slot[i] = kvcache_acquire(&c);
        kvpool_seq_init(&s[i]);
        cr_assert_eq(kvpool_seq_reserve(&p, &s[i], S), 0, "%s", err_msg());
        cr_assert_eq(is_run(&p, &s[i], S), i < 2);
    }
    float *got = malloc((size_t)NS * V * sizeof *got);
    float *want = malloc((size_t)V * sizeof *want);
    /* steps: prefill in pieces of up to 6 while the others decode */
    for (int step = 0; step < 200; step++) {
        struct decoder_seq ds[NS];
        int idx[NS], ns = 0, rows = 0;
        for (int i = 0; i < NS; i++) {
            int len = s[i].len;
            if (len >= S) continue;
            int n = len < prompt[i] ? prompt[i] - len : 1;
            if (n > 6) n = 6;
            if ((step + i) % 5 == 4) continue; /* sometimes a sequence sits out */
            ds[ns] = (struct decoder_seq){&s[i], &seq[i][len], n, len + n >= prompt[i]};
            idx[ns++] = i;
            rows += n;
        }
        if (ns == 0 && s[0].len + s[1].len + s[2].len + s[3].len == NS * S) break;
        if (ns == 0) continue;
        cr_assert(rows <= 24);
        cr_assert_eq(decoder_forward_paged(&d, &p, ds, ns, got), 0, "%s", err_msg());
        for (int k = 0, r = 0; k < ns; k++) {
            int i = idx[k];
            enum decoder_logits w =
                ds[k].want_logits ? DECODER_LOGITS_LAST : DECODER_LOGITS_NONE;
            cr_assert_eq(
                decoder_forward(&ref, &c, slot[i], ds[k].tokens, ds[k].n, w, want), 0,
                "%s", err_msg());
            if (!ds[k].want_logits) continue;
            double e = rel_err(got + (size_t)r++ * V, want, (size_t)V);
            cr_assert(e <= tol, "step %d seq %d at %d: rel err %.3g", step, i, s[i].len,
                      e);
            done[i]++;
        }
    }
    for (int i = 0; i < NS; i++) {
        cr_assert_eq(s[i].len, S);
        cr_assert_eq(done[i], S - prompt[i] + 1);
    }
    cr_assert_eq(d.positions_processed, (long long)NS * S);
    /* a batch over the chunk is refused, nothing appended */
    for (int i = 0; i < NS; i++)
        kvpool_seq_release(&p, &s[i]);
    kvpool_seq_init(&s[0]);
    kvpool_seq_init(&s[1]);
    cr_assert_eq(kvpool_seq_reserve(&p, &s[0], 20), 0);
    cr_assert_eq(kvpool_seq_reserve(&p, &s[1], 20), 0);
    struct decoder_seq big[2] = {{&s[0], seq[0], 20, 1}, {&s[1], seq[1], 5, 1}};
    cr_assert_eq(decoder_forward_paged(&d, &p, big, 2, got), -1);
    cr_assert(strstr(err_msg(), "25 tokens exceeds the 24"), "%s", err_msg());
    big[0].n = 3;
    big[1].n = 21; /* only 20 reserved */
    cr_assert_eq(decoder_forward_paged(&d, &p, big, 2, got), -1);
    cr_assert(strstr(err_msg(), "0 cached + 21 new positions exceed the 20"), "%s",
              err_msg());
    int32_t bad[2] = {1, 300};
    big[1] = (struct decoder_seq){&s[1], bad, 2, 1};
    cr_assert_eq(decoder_forward_paged(&d, &p, big, 2, got), -1);
    cr_assert(strstr(err_msg(), "outside the vocabulary"), "%s", err_msg());
    cr_assert_eq(s[0].len + s[1].len, 0);

    kvpool_seq_release(&p, &s[0]);
    kvpool_seq_release(&p, &s[1]);
    for (int i = 1; i < 40; i += 2)
        kvpool_seq_release(&p, &hold[i]);
    cr_assert_eq(kvpool_free_blocks(&p), p.n_blocks);
    kvpool_destroy(&p);
    kvcache_destroy(&c);
    decoder_destroy(&d);
    decoder_destroy(&ref);
    param_table_free(&t);
    free(host);
    free(got);
    free(want);
}

Test(paged_decoder, batched_steps_match_each_alone) { check_batched_on(ops_cpu(), 1e-5); }

/* The same over CUDA (skipped where there is none): pool and scratch in
 * device memory, the reference on the CPU; 1e-4 as test_generate. */
Test(paged_decoder, cuda_batched_matches_cpu) {
    const struct ops *cuda = backend_select("cuda");
    if (!cuda) cr_skip_test("no CUDA backend here: %s", err_msg());
    check_batched_on(cuda, 1e-4);
}
