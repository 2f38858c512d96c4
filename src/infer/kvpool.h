/* src/infer/kvpool.h — a block-paged key/value cache for many sequences.
 *
 * Why: a serving replica holds the keys and values of every running request
 * at once. Contiguous per-request slots (kvcache.h) must be sized for the
 * whole context, or else fragment as requests of different lengths come and
 * go. Here memory is a pool of fixed-size blocks (block_size positions, every
 * layer) carved out of ONE backend allocation sized from a byte budget
 * (`--kv-cache-mb`). A sequence owns a block table: position j lives in block
 * blocks[j / block_size], row j % block_size. Any free block serves any
 * sequence, so memory never fragments: a request that needs B blocks can
 * start whenever B blocks are free, wherever they are.
 *
 * Layout: [L][n_blocks][block_size][2C] floats. Row j of a block is k_j | v_j
 * (heads side by side): kv_stride = 2C, v at + C. Per layer the blocks are
 * consecutive, so a layer's base (kvpool_layer) plus block id and row
 * locates any position.
 *
 * How attention reads it: ops->attention_paged_fwd takes the layer's base
 * and, per sequence, its block table and lengths, and reads every key and
 * value in place, whatever blocks the sequence holds (runs or scattered):
 * no copy of cached rows, one op call per layer for all sequences of a step
 * (decoder_forward_paged). The op's result does not depend on the block
 * layout, so where the allocator puts a sequence changes no output bit.
 * New k|v rows are copied from the step's projection output into their
 * blocks (kvpool_scatter: n_i rows per layer, one ops->copy per run of
 * consecutive blocks).
 *
 * Block tables and lengths live on the host (they shape every step and
 * change once per step); the decoder uploads them as the op's int32
 * descriptors once per step. Only ops-table calls touch the pool's memory.
 */
#ifndef LLMPI_KVPOOL_H
#define LLMPI_KVPOOL_H

#include <stddef.h>

#include "model.h"
#include "ops.h"

#define KVPOOL_DEFAULT_BLOCK 16

struct kvpool {
    const struct ops *ops;
    int n_layer, n_embd; /* L, C */
    int max_seq;         /* the model's context: no sequence is longer */
    int block_size;      /* positions per block */
    int n_blocks;
    int n_free;
    float *buf;          /* backend memory: [L][n_blocks][block_size][2C] */
    unsigned char *used; /* host: [n_blocks] */
};

/* One sequence's share of the pool. Zero-initialise it (or kvpool_seq_init)
 * before the first kvpool_seq_reserve. */
struct kvpool_seq {
    int *blocks;  /* host: block ids, in position order */
    int n_blocks; /* blocks owned: room for n_blocks * block_size positions */
    int cap;      /* entries allocated in `blocks` */
    int len;      /* positions cached (rows written) */
};

/* Bytes of one block (block_size positions, every layer). */
size_t kvpool_block_bytes(const struct gpt2_config *cfg, int block_size);

/* A pool of as many blocks as fit into budget_bytes (block_size 0 = 16).
 * -1 + err_set when not even one block fits (naming both sizes) or the
 * backend is out of memory. */
int kvpool_create(struct kvpool *p, const struct ops *ops, const struct gpt2_config *cfg,
                  size_t budget_bytes, int block_size);
void kvpool_destroy(struct kvpool *p);

/* Blocks that hold `positions` positions (rounded up). */
int kvpool_blocks_for(const struct kvpool *p, int positions);
int kvpool_free_blocks(const struct kvpool *p);

/* Could a sequence of `positions` positions ever fit, with the whole pool
 * free? 0, or -1 + err_set naming the blocks needed and the pool's size. */
int kvpool_check_fits(const struct kvpool *p, int positions);

void kvpool_seq_init(struct kvpool_seq *s);
/* Make s own blocks for at least `positions` positions (its existing blocks
 * are kept; new ones are a contiguous run where the pool has one). -1 +
 * err_set (nothing taken) when positions exceed the context or not enough
 * blocks are free now. */
int kvpool_seq_reserve(struct kvpool *p, struct kvpool_seq *s, int positions);
/* Give all of s's blocks back and free its table (s is then empty). */
void kvpool_seq_release(struct kvpool *p, struct kvpool_seq *s);

/* Row `pos` of layer l of sequence s (backend memory; pos < n_blocks *
 * block_size): k_pos | v_pos. */
float *kvpool_row(const struct kvpool *p, const struct kvpool_seq *s, int layer, int pos);
/* Layer l's base (backend memory): block b's row r of that layer is at
 * + (b * block_size + r) * 2C. */
float *kvpool_layer(const struct kvpool *p, int layer);
/* Copy rows src[0, n) ([n, 2C], backend memory) into layer l of s at
 * positions [pos, pos + n) (which s must own). */
void kvpool_scatter(const struct kvpool *p, const struct kvpool_seq *s, int layer,
                    int pos, int n, const float *src);

#endif
