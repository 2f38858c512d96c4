/* src/infer/kvpool.c — fixed-size KV blocks from one pool (see kvpool.h).
 *
 * The free list is a used-flag per block, scanned first fit: a reservation
 * of n blocks takes the lowest run of n free consecutive blocks (or extends
 * the sequence's last block when the blocks after it are free), and only
 * when the pool has no such run the lowest free blocks one by one. Runs make
 * kvpool_scatter one copy per run (attention reads any table in place); any
 * free blocks still serve, so a request never waits for memory that is free
 * but scattered. A scan costs
 * O(n_blocks) host work per reservation (thousands of flags), nothing next
 * to a forward step.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kvpool.h"

static size_t row_floats(const struct kvpool *p) { return 2 * (size_t)p->n_embd; }

size_t kvpool_block_bytes(const struct gpt2_config *cfg, int block_size) {
    return (size_t)cfg->n_layer * (size_t)block_size * 2 * (size_t)cfg->n_embd *
           sizeof(float);
}

int kvpool_create(struct kvpool *p, const struct ops *ops, const struct gpt2_config *cfg,
                  size_t budget_bytes, int block_size) {
    memset(p, 0, sizeof *p);
    if (model_config_check(cfg)) return -1;
    if (block_size == 0) block_size = KVPOOL_DEFAULT_BLOCK;
    if (block_size < 1 || block_size > cfg->max_seq)
        return err_set("kv pool: block size %d is outside [1, %d] (the model's context)",
                       block_size, cfg->max_seq);
    size_t bb = kvpool_block_bytes(cfg, block_size);
    size_t nb = budget_bytes / bb;
    if (nb < 1)
        return err_set(
            "kv pool: a budget of %.2f MiB holds no block: one block of %d "
            "positions takes %.2f MiB (%d layers x %d positions x 2 x %d floats)",
            budget_bytes / 1048576.0, block_size, bb / 1048576.0, cfg->n_layer,
            block_size, cfg->n_embd);
    if (nb > INT_MAX / 2) nb = INT_MAX / 2;
    p->ops = ops;
    p->n_layer = cfg->n_layer;
    p->n_embd = cfg->n_embd;
    p->max_seq = cfg->max_seq;
    p->block_size = block_size;
    p->n_blocks = (int)nb;
    p->n_free = (int)nb;
    p->buf = ops->alloc(nb * bb);
    p->used = calloc(nb, 1);
    if (!p->buf || !p->used) {
        kvpool_destroy(p);
        return err_set("kv pool: out of memory for %zu blocks (%.1f MiB, %s backend)", nb,
                       nb * bb / 1048576.0, ops->name);
    }
    return 0;
}

void kvpool_destroy(struct kvpool *p) {
    if (p->ops && p->buf) p->ops->free(p->buf);
    free(p->used);
    memset(p, 0, sizeof *p);
}

int kvpool_blocks_for(const struct kvpool *p, int positions) {
    if (positions <= 0) return 0;
    return (int)(((long long)positions + p->block_size - 1) / p->block_size);
}

int kvpool_free_blocks(const struct kvpool *p) { return p->n_free; }

int kvpool_check_fits(const struct kvpool *p, int positions) {
    int need = kvpool_blocks_for(p, positions);
    if (need > p->n_blocks)
        return err_set("needs %d KV blocks (%d positions, %d per block) but the whole KV "
                       "pool holds %d blocks (%d positions); raise --kv-cache-mb",
                       need, positions, p->block_size, p->n_blocks,
                       p->n_blocks * p->block_size);
    return 0;
}

void kvpool_seq_init(struct kvpool_seq *s) { memset(s, 0, sizeof *s); }

/* The lowest start of `n` consecutive free blocks, or -1. */
static int find_run(const struct kvpool *p, int n) {
    int run = 0;
    for (int b = 0; b < p->n_blocks; b++) {
        run = p->used[b] ? 0 : run + 1;
        if (run == n) return b - n + 1;
    }
    return -1;
}

static void take(struct kvpool *p, struct kvpool_seq *s, int b) {
    p->used[b] = 1;
    p->n_free--;
    s->blocks[s->n_blocks++] = b;
}

int kvpool_seq_reserve(struct kvpool *p, struct kvpool_seq *s, int positions) {
    if (positions > p->max_seq)
        return err_set("kv pool: %d positions exceed the context of %d", positions,
                       p->max_seq);
    int want = kvpool_blocks_for(p, positions);
    int need = want - s->n_blocks;
    if (need <= 0) return 0;
    if (need > p->n_free)
        return err_set("kv pool: %d more blocks needed, %d of %d free", need, p->n_free,
                       p->n_blocks);
    if (want > s->cap) {
        int *nb = realloc(s->blocks, (size_t)want * sizeof *nb);
        if (!nb) return err_set("kv pool: out of memory for a block table");
        s->blocks = nb;
        s->cap = want;
    }
    /* extend the last run, else the first free run, else any free blocks */
    int start = -1;
    if (s->n_blocks > 0) {
        int next = s->blocks[s->n_blocks - 1] + 1;
        int ok = next + need <= p->n_blocks;
        for (int i = 0; ok && i < need; i++)
            ok = !p->used[next + i];
        if (ok) start = next;
    }
    if (start < 0) start = find_run(p, need);
    if (start >= 0) {
        for (int i = 0; i < need; i++)
            take(p, s, start + i);
        return 0;
    }
    for (int b = 0; b < p->n_blocks && s->n_blocks < want; b++)
        if (!p->used[b]) take(p, s, b);
    return 0;
}

void kvpool_seq_release(struct kvpool *p, struct kvpool_seq *s) {
    for (int i = 0; i < s->n_blocks; i++) {
        int b = s->blocks[i];
        if (b >= 0 && b < p->n_blocks && p->used[b]) {
            p->used[b] = 0;
            p->n_free++;
        }
    }
    free(s->blocks);
    memset(s, 0, sizeof *s);
}

float *kvpool_row(const struct kvpool *p, const struct kvpool_seq *s, int layer,
                  int pos) {
    size_t block = (size_t)s->blocks[pos / p->block_size];
    size_t row = ((size_t)layer * p->n_blocks + block) * p->block_size +
                 (size_t)(pos % p->block_size);
    return p->buf + row * row_floats(p);
}

/* Rows from `pos` on (at most n) that are consecutive in memory: the rest of
 * pos's block, plus every following block whose id is one more. */
static int run_rows(const struct kvpool *p, const struct kvpool_seq *s, int pos, int n) {
    int bi = pos / p->block_size;
    int rows = p->block_size - pos % p->block_size;
    while (rows < n && bi + 1 < s->n_blocks && s->blocks[bi + 1] == s->blocks[bi] + 1) {
        rows += p->block_size;
        bi++;
    }
    return rows < n ? rows : n;
}

float *kvpool_layer(const struct kvpool *p, int layer) {
    return p->buf + (size_t)layer * p->n_blocks * p->block_size * row_floats(p);
}

void kvpool_scatter(const struct kvpool *p, const struct kvpool_seq *s, int layer,
                    int pos, int n, const float *src) {
    for (int i = 0; i < n;) {
        int r = run_rows(p, s, pos + i, n - i);
        p->ops->copy(kvpool_row(p, s, layer, pos + i), src + (size_t)i * row_floats(p),
                     (size_t)r * row_floats(p) * sizeof(float));
        i += r;
    }
}
