/* tests/test_shard_table.c — the tensor-parallel shard layout
 * (src/common/shard_table.c).
 *
 * The full buffer holds unique values (element index + 1, exact in float for
 * these sizes), so every local value names the full element it came from.
 * For every layout: extracting each rank's shard and inserting them all back
 * rebuilds the full buffer bit for bit; each element of a split tensor is
 * held by exactly one rank and each element of a replicated one by all;
 * c_attn shards hold whole heads of q, k and v in local q|k|v order, and the
 * row-parallel c_proj columns match them; the vocabulary split is balanced
 * and contiguous; totals add up; the grad-norm flags count every element of
 * the model exactly once; bad TP sizes fail naming the field.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"
#include "shard_table.h"

static const struct gpt2_config tiny = {
    .vocab_size = 256, .max_seq = 64, .n_layer = 2, .n_head = 4, .n_embd = 32};
/* 12 heads: tp 2, 3, 4 and 6 all split it; 257 splits unevenly for each. */
static const struct gpt2_config odd = {
    .vocab_size = 257, .max_seq = 16, .n_layer = 2, .n_head = 12, .n_embd = 48};

/* Full flat index that a local value came from. */
static size_t idx_of(float v) { return (size_t)v - 1; }

/* Extract every rank's shard of a unique-valued full buffer and check
 * everything that does not depend on the attention layout. */
static void check_layout(const struct gpt2_config *cfg, int T) {
    struct param_table full;
    cr_assert_eq(param_table_build(cfg, &full), 0, "%s", err_msg());
    cr_assert_lt(full.total, (size_t)1 << 24, "values must stay exact in float");
    float *src = malloc(full.total * sizeof *src);
    float *back = malloc(full.total * sizeof *back);
    int *owners = calloc(full.total, sizeof *owners);
    cr_assert(src && back && owners);
    for (size_t j = 0; j < full.total; j++)
        src[j] = (float)(j + 1);
    for (size_t j = 0; j < full.total; j++)
        back[j] = -1.0f;

    size_t sum_local = 0, replicated = 0;
    double sumsq_counted = 0, sumsq_full = 0;
    int vocab_next = 0;
    for (int r = 0; r < T; r++) {
        struct shard_table st;
        cr_assert_eq(shard_table_build(cfg, T, r, &st), 0, "tp %d rank %d: %s", T, r,
                     err_msg());
        cr_assert_eq(st.local.count, full.count);
        float *loc = malloc(st.local.total * sizeof *loc);
        cr_assert(loc);
        cr_assert_eq(shard_extract(&full, src, &st, loc), 0, "%s", err_msg());
        cr_assert_eq(shard_insert(&full, back, &st, loc), 0, "%s", err_msg());

        /* Local table: contiguous offsets, metadata kept, usable by name. */
        size_t off = 0;
        for (int i = 0; i < st.local.count; i++) {
            const struct param_info *l = &st.local.p[i], *f = &full.p[i];
            cr_assert_eq(l->offset, off, "%s offset", l->name);
            cr_assert_eq(l->numel, (size_t)l->shape[0] * (size_t)l->shape[1]);
            cr_assert_str_eq(l->name, f->name);
            cr_assert_eq(l->init, f->init);
            cr_assert_eq(l->weight_decay, f->weight_decay);
            cr_assert_eq(l->tp, f->tp);
            cr_assert_eq(param_table_find(&st.local, f->name), i);
            off += l->numel;
            /* Slabs: dense blocks stacked in the local tensor. */
            const struct shard_map *m = &st.map[i];
            size_t in_slabs = 0;
            for (int k = 0; k < m->nslabs; k++) {
                cr_assert_eq(m->slab[k].local_offset, in_slabs, "%s slab %d", l->name, k);
                in_slabs += m->slab[k].count[0] * m->slab[k].count[1];
            }
            cr_assert_eq(in_slabs, l->numel, "%s: slabs cover the local tensor", l->name);
            /* Ownership, values, gradient policy, grad norm once. */
            const int rep = f->tp == TP_REPLICATED;
            cr_assert_eq(m->tp_grad, rep ? SHARD_GRAD_TP_SYNC : SHARD_GRAD_LOCAL, "%s",
                         l->name);
            cr_assert_eq(m->norm_count, rep ? (r == 0) : 1, "%s rank %d", l->name, r);
            if (rep) {
                cr_assert_eq(l->numel, f->numel);
                if (r == 0) replicated += f->numel;
            } else if (T > 1) {
                cr_assert_lt(l->numel, f->numel, "%s is split", l->name);
            }
            for (size_t j = 0; j < l->numel; j++) {
                const float v = loc[l->offset + j];
                const size_t g = idx_of(v);
                cr_assert(g >= f->offset && g < f->offset + f->numel,
                          "%s rank %d: local %zu came from another tensor", l->name, r,
                          j);
                owners[g]++;
                if (m->norm_count) sumsq_counted += (double)v * v;
            }
        }
        cr_assert_eq(off, st.local.total);
        sum_local += st.local.total;

        /* Vocabulary: balanced, contiguous, in rank order; wte's rows. */
        const int base = cfg->vocab_size / T;
        cr_assert(st.vocab_local == base || st.vocab_local == base + 1);
        cr_assert_eq(st.vocab_start, vocab_next);
        vocab_next += st.vocab_local;
        const struct param_info *wte = &st.local.p[PT_WTE];
        cr_assert_eq(wte->shape[0], st.vocab_local);
        cr_assert_eq(idx_of(loc[wte->offset]) / (size_t)cfg->n_embd,
                     (size_t)st.vocab_start);
        free(loc);
        shard_table_free(&st);
    }
    cr_assert_eq(vocab_next, cfg->vocab_size, "the vocabulary split covers V");

    cr_assert_eq(memcmp(src, back, full.total * sizeof *src), 0,
                 "tp %d: extract + insert of every rank is bit-identical", T);
    for (int i = 0; i < full.count; i++) {
        const struct param_info *f = &full.p[i];
        const int want = f->tp == TP_REPLICATED ? T : 1;
        for (size_t j = 0; j < f->numel; j++)
            cr_assert_eq(owners[f->offset + j], want,
                         "tp %d: %s element %zu held %d times", T, f->name, j,
                         owners[f->offset + j]);
    }
    cr_assert_eq(sum_local, full.total + (size_t)(T - 1) * replicated, "tp %d totals", T);
    for (size_t j = 0; j < full.total; j++)
        sumsq_full += (double)src[j] * src[j];
    cr_assert_eq(sumsq_counted, sumsq_full, "norm flags count each element once");
    free(owners);
    free(back);
    free(src);
    param_table_free(&full);
}

Test(shard_table, tiny_tp_1_2_4) {
    for (int T = 1; T <= 4; T *= 2)
        check_layout(&tiny, T);
}

Test(shard_table, odd_vocab_tp_1_2_3_4_6) {
    const int tps[] = {1, 2, 3, 4, 6};
    for (int k = 0; k < 5; k++)
        check_layout(&odd, tps[k]);
}

/* c_attn: whole heads of q, k and v, stacked q|k|v locally; attention and
 * MLP projections hold the matching input columns. */
static void check_heads(const struct gpt2_config *cfg, int T) {
    struct param_table full;
    cr_assert_eq(param_table_build(cfg, &full), 0);
    float *src = malloc(full.total * sizeof *src);
    cr_assert(src);
    for (size_t j = 0; j < full.total; j++)
        src[j] = (float)(j + 1);
    const size_t C = (size_t)cfg->n_embd, hd = C / (size_t)cfg->n_head;
    for (int r = 0; r < T; r++) {
        struct shard_table st;
        cr_assert_eq(shard_table_build(cfg, T, r, &st), 0, "%s", err_msg());
        float *loc = malloc(st.local.total * sizeof *loc);
        cr_assert(loc);
        cr_assert_eq(shard_extract(&full, src, &st, loc), 0);
        const size_t Cl = (size_t)st.heads_local * hd;
        cr_assert_eq(st.heads_local * T, cfg->n_head);
        cr_assert_eq(st.head_start, r * st.heads_local);
        for (int l = 0; l < cfg->n_layer; l++) {
            const int iw = PT_LAYER(l, LP_QKV_W), ib = PT_LAYER(l, LP_QKV_B);
            const struct param_info *w = &st.local.p[iw], *b = &st.local.p[ib];
            cr_assert_eq(w->shape[0], (int)(3 * Cl));
            cr_assert_eq(w->shape[1], (int)C);
            cr_assert_eq(b->shape[0], (int)(3 * Cl));
            cr_assert_eq(st.map[iw].nslabs, 3);
            for (size_t row = 0; row < 3 * Cl; row++) {
                /* Local row: block (q, k, v), local head, dim within head. */
                const size_t blk = row / Cl, lh = (row % Cl) / hd, d = row % hd;
                const size_t want =
                    blk * C + ((size_t)st.head_start + lh) * hd + d; /* full row */
                for (size_t c = 0; c < C; c++)
                    cr_assert_eq(idx_of(loc[w->offset + row * C + c]),
                                 full.p[iw].offset + want * C + c,
                                 "tp %d rank %d layer %d c_attn row %zu", T, r, l, row);
                cr_assert_eq(idx_of(loc[b->offset + row]), full.p[ib].offset + want);
            }
            /* attn.c_proj: columns of the local heads' outputs. */
            const int ip = PT_LAYER(l, LP_ATTPROJ_W);
            const struct param_info *p = &st.local.p[ip];
            cr_assert_eq(p->shape[0], (int)C);
            cr_assert_eq(p->shape[1], (int)Cl);
            for (size_t o = 0; o < C; o++)
                for (size_t c = 0; c < Cl; c++)
                    cr_assert_eq(idx_of(loc[p->offset + o * Cl + c]),
                                 full.p[ip].offset + o * C + (size_t)st.head_start * hd +
                                     c);
            /* MLP: c_fc rows and mlp.c_proj columns are the same hidden units. */
            const int ifc = PT_LAYER(l, LP_FC_W), imp = PT_LAYER(l, LP_FCPROJ_W);
            const struct param_info *fc = &st.local.p[ifc], *mp = &st.local.p[imp];
            const size_t H = 4 * C, Hl = (size_t)st.mlp_local, h0 = (size_t)st.mlp_start;
            cr_assert_eq(fc->shape[0], (int)Hl);
            cr_assert_eq(mp->shape[1], (int)Hl);
            cr_assert_eq(idx_of(loc[fc->offset]), full.p[ifc].offset + h0 * C);
            for (size_t o = 0; o < C; o++)
                cr_assert_eq(idx_of(loc[mp->offset + o * Hl]),
                             full.p[imp].offset + o * H + h0);
        }
        free(loc);
        shard_table_free(&st);
    }
    free(src);
    param_table_free(&full);
}

Test(shard_table, c_attn_whole_heads) {
    for (int T = 1; T <= 4; T *= 2)
        check_heads(&tiny, T);
    const int tps[] = {1, 2, 3, 4, 6, 12};
    for (int k = 0; k < 6; k++)
        check_heads(&odd, tps[k]);
}

/* GPT-2's vocabulary (50257 = 29 * 1733) shards without padding. */
Test(shard_table, gpt2_presets) {
    struct gpt2_config cfg;
    cr_assert_eq(model_preset("gpt2", &cfg), 0);
    struct param_table full;
    cr_assert_eq(param_table_build(&cfg, &full), 0);
    for (int T = 1; T <= 4; T *= 2) {
        size_t sum = 0, rep = 0;
        for (int r = 0; r < T; r++) {
            struct shard_table st;
            cr_assert_eq(shard_table_build(&cfg, T, r, &st), 0, "%s", err_msg());
            sum += st.local.total;
            cr_assert_eq(st.local.p[PT_WTE].shape[0], st.vocab_local);
            shard_table_free(&st);
        }
        for (int i = 0; i < full.count; i++)
            if (full.p[i].tp == TP_REPLICATED) rep += full.p[i].numel;
        cr_assert_eq(sum, full.total + (size_t)(T - 1) * rep);
    }
    param_table_free(&full);
}

static void expect_error(const struct gpt2_config *cfg, int T, int r, const char *a,
                         const char *b) {
    struct shard_table st;
    cr_assert_eq(shard_table_build(cfg, T, r, &st), -1, "tp %d rank %d must fail", T, r);
    cr_assert_not_null(strstr(err_msg(), a), "'%s' lacks '%s'", err_msg(), a);
    cr_assert_not_null(strstr(err_msg(), b), "'%s' lacks '%s'", err_msg(), b);
    cr_assert_null(st.local.p);
    cr_assert_null(st.map);
}

Test(shard_table, bad_tp_sizes) {
    expect_error(&tiny, 0, 0, "--tp must be at least 1", "got 0");
    expect_error(&tiny, -2, 0, "--tp must be at least 1", "got -2");
    expect_error(&tiny, 3, 0, "--tp 3 does not divide the heads", "n_head = 4");
    expect_error(&tiny, 8, 0, "--tp 8 does not divide the heads", "n_head = 4");
    const struct gpt2_config small_vocab = {
        .vocab_size = 3, .max_seq = 8, .n_layer = 1, .n_head = 4, .n_embd = 8};
    expect_error(&small_vocab, 4, 0, "--tp 4 is larger than the vocabulary",
                 "vocab_size = 3");
    expect_error(&tiny, 2, 2, "tp_rank 2 is outside 0..1", "--tp 2");
    expect_error(&tiny, 2, -1, "tp_rank -1 is outside", "--tp 2");
    const struct gpt2_config bad_width = {
        .vocab_size = 8, .max_seq = 8, .n_layer = 1, .n_head = 3, .n_embd = 8};
    expect_error(&bad_width, 1, 0, "width 8 is not divisible by heads 3", "model");
    cr_assert_eq(shard_check(&tiny, 4), 0);
    struct gpt2_config xl;
    cr_assert_eq(model_preset("gpt2-xl", &xl), 0);
    cr_assert_eq(shard_check(&xl, 2), -1);
    cr_assert_not_null(strstr(err_msg(), "n_head = 25"), "%s", err_msg());
}

/* A full table of another model is refused, naming what differs. */
Test(shard_table, mismatched_full_table) {
    struct shard_table st;
    cr_assert_eq(shard_table_build(&tiny, 2, 0, &st), 0);
    float *loc = calloc(st.local.total, sizeof *loc);
    struct param_table other;
    struct gpt2_config deeper = tiny;
    deeper.n_layer = 3;
    cr_assert_eq(param_table_build(&deeper, &other), 0);
    float *buf = calloc(other.total, sizeof *buf);
    cr_assert(loc && buf);
    cr_assert_eq(shard_extract(&other, buf, &st, loc), -1);
    cr_assert_not_null(strstr(err_msg(), "tensors"), "%s", err_msg());
    param_table_free(&other);
    struct gpt2_config narrow = tiny;
    narrow.vocab_size = 100;
    cr_assert_eq(param_table_build(&narrow, &other), 0);
    cr_assert_eq(shard_insert(&other, buf, &st, loc), -1);
    cr_assert_not_null(strstr(err_msg(), "wte"), "%s", err_msg());
    param_table_free(&other);
    free(buf);
    free(loc);
    shard_table_free(&st);
}
