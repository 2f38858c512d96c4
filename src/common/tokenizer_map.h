/* src/common/tokenizer_map.h — the two hash maps the tokenizer needs.
 *
 *  - bytes_map: byte string -> int64 (vocabulary lookup, the encoder's word
 *    cache, the trainer's word counts). Keys are copied into one growing
 *    arena, so a map is a handful of allocations however many keys it holds.
 *  - pair_map: (int32, int32) -> int32 (merge ranks, the trainer's pair
 *    table), keyed by the pair packed into 64 bits.
 * Open addressing with linear probing; tables double at 50% load. Neither map
 * removes single keys (nothing here needs it); *_clear empties a map and keeps
 * its memory.
 */
#ifndef LLMPI_TOKENIZER_MAP_H
#define LLMPI_TOKENIZER_MAP_H

#include <stddef.h>
#include <stdint.h>

struct bytes_map_slot {
    uint64_t hash;    /* 0 = empty (real hashes are forced non-zero) */
    uint64_t key_off; /* into arena */
    uint32_t key_len;
    int64_t value;
};

struct bytes_map {
    struct bytes_map_slot *slots;
    size_t mask; /* capacity - 1 (capacity a power of two) */
    size_t count;
    char *arena;
    size_t arena_len, arena_cap;
};

uint64_t bytes_hash(const void *key, size_t len);

int bytes_map_init(struct bytes_map *m, size_t expected);
void bytes_map_free(struct bytes_map *m);
void bytes_map_clear(struct bytes_map *m);
/* Pointer to the value of key, or NULL when absent. */
int64_t *bytes_map_get(const struct bytes_map *m, const void *key, size_t len);
/* Pointer to the value of key, inserting it with `value` when absent
 * (*inserted says which). NULL + err_set when out of memory. */
int64_t *bytes_map_put(struct bytes_map *m, const void *key, size_t len, int64_t value,
                       int *inserted);
/* The key stored in a slot (for iteration over slots[0..mask]). */
static inline const char *bytes_map_key(const struct bytes_map *m,
                                        const struct bytes_map_slot *s) {
    return m->arena + s->key_off;
}

struct pair_map {
    uint64_t *keys; /* UINT64_MAX = empty */
    int32_t *values;
    size_t mask, count;
};

static inline uint64_t pair_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

int pair_map_init(struct pair_map *m, size_t expected);
void pair_map_free(struct pair_map *m);
/* The value of (left, right), or -1 when absent (values stored are >= 0). */
int32_t pair_map_get(const struct pair_map *m, int32_t left, int32_t right);
/* Set (left, right) to value (>= 0), replacing an existing value. */
int pair_map_set(struct pair_map *m, int32_t left, int32_t right, int32_t value);

#endif
