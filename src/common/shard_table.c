/* src/common/shard_table.c — one TP rank's view of the parameter table.
 *
 * Everything is derived from the full table's tp / tp_blocks fields, so a
 * tensor added to model.c is sharded by its declaration alone; the only
 * special case is the vocabulary-parallel wte, whose split may be uneven
 * (see shard_table.h for why the vocabulary is not padded).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "shard_table.h"

int shard_check(const struct gpt2_config *cfg, int T) {
    if (T < 1) return err_set("tp: --tp must be at least 1 (got %d)", T);
    if (cfg->n_head % T != 0)
        return err_set("tp: --tp %d does not divide the heads (n_head = %d): every rank "
                       "must hold whole attention heads",
                       T, cfg->n_head);
    if ((4 * cfg->n_embd) % T != 0)
        return err_set("tp: --tp %d does not divide the MLP width (4 * n_embd = %d)", T,
                       4 * cfg->n_embd);
    if (cfg->vocab_size < T)
        return err_set(
            "tp: --tp %d is larger than the vocabulary (vocab_size = %d): every "
            "rank needs at least one vocabulary row",
            T, cfg->vocab_size);
    return 0;
}

static void set_slab(struct shard_slab *s, size_t r0, size_t c0, size_t nr, size_t nc,
                     size_t local_offset) {
    s->start[0] = r0;
    s->start[1] = c0;
    s->count[0] = nr;
    s->count[1] = nc;
    s->local_offset = local_offset;
}

/* Fill the local entry `l` (a copy of the full entry `f`, index i) and its
 * map for rank r of T. */
static int shard_one(const struct shard_table *st, int i, const struct param_info *f,
                     struct param_info *l, struct shard_map *m) {
    const int T = st->tp_size, r = st->tp_rank;
    const size_t rows = (size_t)f->shape[0], cols = (size_t)f->shape[1];
    m->tp_grad = SHARD_GRAD_LOCAL;
    m->norm_count = 1;
    switch (f->tp) {
    case TP_REPLICATED:
        m->nslabs = 1;
        set_slab(&m->slab[0], 0, 0, rows, cols, 0);
        m->tp_grad = SHARD_GRAD_TP_SYNC;
        m->norm_count = r == 0;
        return 0;
    case TP_AXIS0: {
        const int b = f->tp_blocks;
        if (b < 1 || b > SHARD_MAX_SLABS || rows % (size_t)b != 0)
            return err_set("tp: %s: %zu rows cannot form %d blocks", f->name, rows, b);
        const size_t blk = rows / (size_t)b;
        size_t start, n;
        if (i == PT_WTE) {
            start = (size_t)st->vocab_start;
            n = (size_t)st->vocab_local;
        } else {
            if (blk % (size_t)T != 0)
                return err_set("tp: %s: %zu rows per block are not divisible by --tp %d",
                               f->name, blk, T);
            n = blk / (size_t)T;
            start = (size_t)r * n;
        }
        m->nslabs = b;
        for (int k = 0; k < b; k++)
            set_slab(&m->slab[k], (size_t)k * blk + start, 0, n, cols,
                     (size_t)k * n * cols);
        l->shape[0] = (int)(n * (size_t)b);
        return 0;
    }
    case TP_AXIS1: {
        if (f->ndim != 2 || cols % (size_t)T != 0)
            return err_set("tp: %s: %zu columns are not divisible by --tp %d", f->name,
                           cols, T);
        const size_t n = cols / (size_t)T;
        m->nslabs = 1;
        set_slab(&m->slab[0], 0, (size_t)r * n, rows, n, 0);
        l->shape[1] = (int)n;
        return 0;
    }
    }
    return err_set("tp: %s: unknown split %d", f->name, (int)f->tp);
}

int shard_table_build(const struct gpt2_config *cfg, int T, int r,
                      struct shard_table *st) {
    memset(st, 0, sizeof *st);
    if (model_config_check(cfg) || shard_check(cfg, T)) return -1;
    if (r < 0 || r >= T)
        return err_set("tp: tp_rank %d is outside 0..%d (--tp %d)", r, T - 1, T);
    struct param_table full;
    if (param_table_build(cfg, &full)) return -1;
    st->tp_size = T;
    st->tp_rank = r;
    const int V = cfg->vocab_size, base = V / T, rem = V % T;
    st->vocab_local = base + (r < rem);
    st->vocab_start = r * base + (r < rem ? r : rem);
    st->heads_local = cfg->n_head / T;
    st->head_start = r * st->heads_local;
    st->mlp_local = 4 * cfg->n_embd / T;
    st->mlp_start = r * st->mlp_local;

    st->local.p = calloc((size_t)full.count, sizeof *st->local.p);
    st->map = calloc((size_t)full.count, sizeof *st->map);
    if (!st->local.p || !st->map) {
        param_table_free(&full);
        shard_table_free(st);
        return err_set("out of memory building the shard table");
    }
    for (int i = 0; i < full.count; i++) {
        struct param_info *l = &st->local.p[i];
        *l = full.p[i];
        if (shard_one(st, i, &full.p[i], l, &st->map[i])) {
            param_table_free(&full);
            shard_table_free(st);
            return -1;
        }
        l->numel = (size_t)l->shape[0] * (size_t)l->shape[1];
        l->offset = st->local.total;
        st->local.total += l->numel;
        st->local.count++;
    }
    param_table_free(&full);
    return 0;
}

void shard_table_free(struct shard_table *st) {
    free(st->local.p);
    free(st->map);
    memset(st, 0, sizeof *st);
}

/* `full` must be the table `st` was built from: same entries, and every slab
 * inside its tensor. */
static int check_pair(const struct param_table *full, const struct shard_table *st) {
    if (full->count != st->local.count)
        return err_set("tp: the full table has %d tensors, the shard table %d",
                       full->count, st->local.count);
    for (int i = 0; i < full->count; i++) {
        const struct param_info *f = &full->p[i];
        if (strcmp(f->name, st->local.p[i].name) != 0)
            return err_set(
                "tp: tensor %d is '%s' in the full table, '%s' in the shard table", i,
                f->name, st->local.p[i].name);
        const struct shard_map *m = &st->map[i];
        for (int k = 0; k < m->nslabs; k++) {
            const struct shard_slab *s = &m->slab[k];
            if (s->start[0] + s->count[0] > (size_t)f->shape[0] ||
                s->start[1] + s->count[1] > (size_t)f->shape[1])
                return err_set("tp: %s: the shard table was built for another shape than "
                               "[%d, %d]",
                               f->name, f->shape[0], f->shape[1]);
        }
    }
    return 0;
}

/* Copy a dense [rows, cols] block between row strides. */
static void copy_rows(float *dst, size_t dst_stride, const float *src, size_t src_stride,
                      size_t rows, size_t cols) {
    for (size_t row = 0; row < rows; row++)
        memcpy(dst + row * dst_stride, src + row * src_stride, cols * sizeof(float));
}

/* Offset of slab k of tensor i in the full buffer. */
static size_t full_at(const struct param_table *full, int i, const struct shard_slab *s) {
    return full->p[i].offset + s->start[0] * (size_t)full->p[i].shape[1] + s->start[1];
}

int shard_extract(const struct param_table *full, const float *full_buf,
                  const struct shard_table *st, float *local_buf) {
    if (check_pair(full, st)) return -1;
    for (int i = 0; i < full->count; i++) {
        const struct shard_map *m = &st->map[i];
        for (int k = 0; k < m->nslabs; k++) {
            const struct shard_slab *s = &m->slab[k];
            copy_rows(local_buf + st->local.p[i].offset + s->local_offset, s->count[1],
                      full_buf + full_at(full, i, s), (size_t)full->p[i].shape[1],
                      s->count[0], s->count[1]);
        }
    }
    return 0;
}

int shard_insert(const struct param_table *full, float *full_buf,
                 const struct shard_table *st, const float *local_buf) {
    if (check_pair(full, st)) return -1;
    for (int i = 0; i < full->count; i++) {
        const struct shard_map *m = &st->map[i];
        for (int k = 0; k < m->nslabs; k++) {
            const struct shard_slab *s = &m->slab[k];
            copy_rows(full_buf + full_at(full, i, s), (size_t)full->p[i].shape[1],
                      local_buf + st->local.p[i].offset + s->local_offset, s->count[1],
                      s->count[0], s->count[1]);
        }
    }
    return 0;
}
