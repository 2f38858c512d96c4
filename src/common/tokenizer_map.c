/* src/common/tokenizer_map.c — open-addressing hash maps for the tokenizer
 * (see tokenizer_map.h). The byte-string hash reads 8 bytes at a time and
 * mixes with multiplications: words are short, so hashing is a large share of
 * an encoder cache lookup. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer_map.h"

static uint64_t mix64(uint64_t x) {
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

uint64_t bytes_hash(const void *key, size_t len) {
    const unsigned char *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (len * 0xff51afd7ed558ccdULL);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0x9fb21c651e98df25ULL;
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < len; i++) tail |= (uint64_t)p[i] << (8 * i);
    h = mix64(h ^ tail ^ 0x2545f4914f6cdd1dULL);
    return h ? h : 1;
}

static size_t capacity_for(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    return cap;
}

int bytes_map_init(struct bytes_map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = capacity_for(expected);
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) return err_set("out of memory for a hash map of %zu entries", cap);
    m->mask = cap - 1;
    return 0;
}

void bytes_map_free(struct bytes_map *m) {
    free(m->slots);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

void bytes_map_clear(struct bytes_map *m) {
    memset(m->slots, 0, (m->mask + 1) * sizeof *m->slots);
    m->count = 0;
    m->arena_len = 0;
}

static struct bytes_map_slot *find_slot(const struct bytes_map *m, const void *key, size_t len,
                                        uint64_t h) {
    size_t i = (size_t)h & m->mask;
    for (;;) {
        struct bytes_map_slot *s = &m->slots[i];
        if (s->hash == 0) return s;
        if (s->hash == h && s->key_len == len && memcmp(m->arena + s->key_off, key, len) == 0)
            return s;
        i = (i + 1) & m->mask;
    }
}

int64_t *bytes_map_get(const struct bytes_map *m, const void *key, size_t len) {
    struct bytes_map_slot *s = find_slot(m, key, len, bytes_hash(key, len));
    return s->hash ? &s->value : NULL;
}

static int grow(struct bytes_map *m) {
    size_t cap = (m->mask + 1) * 2;
    struct bytes_map_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return err_set("out of memory for a hash map of %zu entries", cap);
    for (size_t i = 0; i <= m->mask; i++) {
        struct bytes_map_slot *s = &m->slots[i];
        if (!s->hash) continue;
        size_t j = (size_t)s->hash & (cap - 1);
        while (slots[j].hash) j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = cap - 1;
    return 0;
}

int64_t *bytes_map_put(struct bytes_map *m, const void *key, size_t len, int64_t value,
                       int *inserted) {
    uint64_t h = bytes_hash(key, len);
    struct bytes_map_slot *s = find_slot(m, key, len, h);
    if (s->hash) {
        if (inserted) *inserted = 0;
        return &s->value;
    }
    if (len > UINT32_MAX) {
        err_set("hash map key of %zu bytes is too long", len);
        return NULL;
    }
    /* allocate even for an empty key: arena + 0 on NULL would be undefined */
    if (!m->arena || m->arena_len + len > m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap : 4096;
        while (cap < m->arena_len + len) cap *= 2;
        char *a = realloc(m->arena, cap);
        if (!a) {
            err_set("out of memory for hash map keys (%zu bytes)", cap);
            return NULL;
        }
        m->arena = a;
        m->arena_cap = cap;
    }
    if ((m->count + 1) * 2 > m->mask + 1) {
        if (grow(m)) return NULL;
        s = find_slot(m, key, len, h);
    }
    if (len) memcpy(m->arena + m->arena_len, key, len);
    s->hash = h;
    s->key_off = m->arena_len;
    s->key_len = (uint32_t)len;
    s->value = value;
    m->arena_len += len;
    m->count++;
    if (inserted) *inserted = 1;
    return &s->value;
}

int pair_map_init(struct pair_map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = capacity_for(expected);
    m->keys = malloc(cap * sizeof *m->keys);
    m->values = malloc(cap * sizeof *m->values);
    if (!m->keys || !m->values) {
        pair_map_free(m);
        return err_set("out of memory for a pair map of %zu entries", cap);
    }
    memset(m->keys, 0xff, cap * sizeof *m->keys);
    m->mask = cap - 1;
    return 0;
}

void pair_map_free(struct pair_map *m) {
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static size_t pair_slot(const uint64_t *keys, size_t mask, uint64_t k) {
    size_t i = (size_t)mix64(k) & mask;
    while (keys[i] != UINT64_MAX && keys[i] != k) i = (i + 1) & mask;
    return i;
}

int32_t pair_map_get(const struct pair_map *m, int32_t left, int32_t right) {
    uint64_t k = pair_key(left, right);
    size_t i = pair_slot(m->keys, m->mask, k);
    return m->keys[i] == k ? m->values[i] : -1;
}

int pair_map_set(struct pair_map *m, int32_t left, int32_t right, int32_t value) {
    uint64_t k = pair_key(left, right);
    if ((m->count + 1) * 2 > m->mask + 1) {
        size_t cap = (m->mask + 1) * 2;
        uint64_t *keys = malloc(cap * sizeof *keys);
        int32_t *values = malloc(cap * sizeof *values);
        if (!keys || !values) {
            free(keys);
            free(values);
            return err_set("out of memory for a pair map of %zu entries", cap);
        }
        memset(keys, 0xff, cap * sizeof *keys);
        for (size_t i = 0; i <= m->mask; i++) {
            if (m->keys[i] == UINT64_MAX) continue;
            size_t j = pair_slot(keys, cap - 1, m->keys[i]);
            keys[j] = m->keys[i];
            values[j] = m->values[i];
        }
        free(m->keys);
        free(m->values);
        m->keys = keys;
        m->values = values;
        m->mask = cap - 1;
    }
    size_t i = pair_slot(m->keys, m->mask, k);
    if (m->keys[i] != k) {
        m->keys[i] = k;
        m->count++;
    }
    m->values[i] = value;
    return 0;
}
