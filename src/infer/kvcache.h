/* src/infer/kvcache.h — the key/value cache of autoregressive decoding.
 *
 * Why: at position t, attention needs k_j and v_j of every earlier position
 * j < t in every layer. They depend only on tokens 0..j, so they are computed
 * once (when token j is processed) and kept here; a decode step then costs
 * O(params + L t C) instead of recomputing the whole prefix.
 *
 * Layout: a pool of `n_slots` sequence slots in ONE backend allocation. A slot
 * holds, per layer l, a [capacity, 2C] array whose row j is k_j | v_j (the k
 * and v thirds of the layer's qkv projection, heads side by side). The
 * decoder hands it to ops->attention_paged_fwd as a single block of
 * `capacity` rows (kv_stride = 2C, v at + C), and its k|v projection writes
 * its output rows straight into rows [len, len + n) (no copy).
 *
 * Per-sequence state is the slot's length (positions cached). Serving
 * (continuous batching) acquires a slot per request, releases it when the
 * request ends, and may truncate a slot (e.g. to reuse a shared prefix).
 * A block-paged cache would replace "slot = one contiguous capacity-row
 * range" with a block table per sequence; the slot/len API stays the same
 * (see docs/generation.md). Nothing here knows which backend runs.
 */
#ifndef LLMPI_KVCACHE_H
#define LLMPI_KVCACHE_H

#include <stddef.h>

#include "model.h"
#include "ops.h"

struct kv_cache {
    const struct ops *ops;
    int n_layer, n_embd; /* L, C */
    int capacity;        /* positions per slot (<= model context) */
    int n_slots;
    float *buf;          /* backend memory: [n_slots][L][capacity][2C] */
    int *len;            /* host: positions cached per slot */
    unsigned char *used; /* host: slot acquired */
};

/* Allocate a pool of n_slots sequences of up to `capacity` positions
 * (0 = the model's context) for a model of configuration cfg.
 * -1 + err_set on bad sizes or out of memory (naming the bytes). */
int kvcache_create(struct kv_cache *c, const struct ops *ops,
                   const struct gpt2_config *cfg, int n_slots, int capacity);
void kvcache_destroy(struct kv_cache *c);

/* Bytes one slot occupies (for sizing a pool). */
size_t kvcache_slot_bytes(const struct gpt2_config *cfg, int capacity);

/* A free slot, marked used and empty: its index, or -1 + err_set when the
 * pool is full. */
int kvcache_acquire(struct kv_cache *c);
/* Give a slot back (its contents are dropped). */
void kvcache_release(struct kv_cache *c, int slot);

/* Positions cached in a slot. */
int kvcache_len(const struct kv_cache *c, int slot);
/* Keep only the first n positions of a slot (n <= len): -1 + err_set otherwise. */
int kvcache_truncate(struct kv_cache *c, int slot, int n);

/* Layer l's [capacity, 2C] array of a slot (backend memory): row j is
 * k_j | v_j. */
float *kvcache_layer(const struct kv_cache *c, int slot, int layer);

/* Check that n more positions fit into a slot: 0, or -1 + err_set naming
 * the lengths. The decoder calls this before it writes rows; it then commits
 * them with kvcache_commit. */
int kvcache_reserve(const struct kv_cache *c, int slot, int n);
void kvcache_commit(struct kv_cache *c, int slot, int n);

#endif
