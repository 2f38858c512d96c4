/* src/infer/kvcache.c — a pool of per-sequence key/value caches.
 *
 * One backend allocation of n_slots * L * capacity * 2C floats; slot s,
 * layer l starts at ((s * L) + l) * capacity * 2C. Lengths and the used
 * flags live on the host: the decoder needs them to compute shapes and
 * they change once per step, so keeping them on the device would only add
 * transfers. See kvcache.h for why the rows are k | v.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kvcache.h"

size_t kvcache_slot_bytes(const struct gpt2_config *cfg, int capacity) {
    return (size_t)cfg->n_layer * (size_t)capacity * 2 * (size_t)cfg->n_embd *
           sizeof(float);
}

int kvcache_create(struct kv_cache *c, const struct ops *ops,
                   const struct gpt2_config *cfg, int n_slots, int capacity) {
    memset(c, 0, sizeof *c);
    if (model_config_check(cfg)) return -1;
    if (capacity == 0) capacity = cfg->max_seq;
    if (capacity < 1 || capacity > cfg->max_seq)
        return err_set("kv cache: capacity %d is outside [1, %d] (the model's context)",
                       capacity, cfg->max_seq);
    if (n_slots < 1) return err_set("kv cache: %d slots requested (need >= 1)", n_slots);
    size_t slot = kvcache_slot_bytes(cfg, capacity);
    if (slot > SIZE_MAX / (size_t)n_slots)
        return err_set("kv cache: %d slots of %zu bytes overflow", n_slots, slot);
    size_t bytes = slot * (size_t)n_slots;
    c->ops = ops;
    c->n_layer = cfg->n_layer;
    c->n_embd = cfg->n_embd;
    c->capacity = capacity;
    c->n_slots = n_slots;
    c->buf = ops->alloc(bytes);
    c->len = calloc((size_t)n_slots, sizeof *c->len);
    c->used = calloc((size_t)n_slots, 1);
    if (!c->buf || !c->len || !c->used) {
        kvcache_destroy(c);
        return err_set("kv cache: out of memory for %d slot(s) x %d positions (%.1f MiB, "
                       "%s backend)",
                       n_slots, capacity, bytes / 1048576.0, ops->name);
    }
    return 0;
}

void kvcache_destroy(struct kv_cache *c) {
    if (c->ops && c->buf) c->ops->free(c->buf);
    free(c->len);
    free(c->used);
    memset(c, 0, sizeof *c);
}

int kvcache_acquire(struct kv_cache *c) {
    for (int s = 0; s < c->n_slots; s++) {
        if (!c->used[s]) {
            c->used[s] = 1;
            c->len[s] = 0;
            return s;
        }
    }
    return err_set("kv cache: all %d slots are in use", c->n_slots);
}

void kvcache_release(struct kv_cache *c, int slot) {
    if (slot < 0 || slot >= c->n_slots) return;
    c->used[slot] = 0;
    c->len[slot] = 0;
}

int kvcache_len(const struct kv_cache *c, int slot) { return c->len[slot]; }

int kvcache_truncate(struct kv_cache *c, int slot, int n) {
    if (slot < 0 || slot >= c->n_slots || !c->used[slot])
        return err_set("kv cache: slot %d is not in use", slot);
    if (n < 0 || n > c->len[slot])
        return err_set("kv cache: cannot truncate slot %d of %d positions to %d", slot,
                       c->len[slot], n);
    c->len[slot] = n;
    return 0;
}

float *kvcache_layer(const struct kv_cache *c, int slot, int layer) {
    size_t per_layer = (size_t)c->capacity * 2 * (size_t)c->n_embd;
    return c->buf + ((size_t)slot * c->n_layer + layer) * per_layer;
}

int kvcache_reserve(const struct kv_cache *c, int slot, int n) {
    if (slot < 0 || slot >= c->n_slots || !c->used[slot])
        return err_set("kv cache: slot %d is not in use", slot);
    if (n < 1) return err_set("kv cache: %d new positions (need >= 1)", n);
    if (n > c->capacity - c->len[slot])
        return err_set("%d cached + %d new positions exceed the context of %d",
                       c->len[slot], n, c->capacity);
    return 0;
}

void kvcache_commit(struct kv_cache *c, int slot, int n) { c->len[slot] += n; }
