/* src/common/tokenizer.c — the tokenizer object, encoding and decoding.
 *
 * Encoding: GPT-2 pre-tokenisation (tokenizer_pretok.c) cuts the text into
 * pieces; each piece starts as its byte tokens and merges are applied the way
 * Hugging Face `tokenizers` applies them (a min-heap of (rank, position):
 * lowest rank first, leftmost first among equals; a queued merge is dropped
 * when the pair at its position no longer produces the same token). That rule
 * is what makes our ids equal theirs for any vocabulary, including odd ones
 * whose merges are not in training order. Pieces up to CACHE_MAX_PIECE bytes
 * are cached: natural text repeats a small set of words, so most pieces are a
 * hash lookup instead of a BPE run.
 * Loading and saving GPT-2 files is in tokenizer_io.c, training in
 * tokenizer_train.c.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer_internal.h"
#include "tokenizer_pretok.h"

enum {
    CACHE_MAX_PIECE = 128,        /* longer pieces are rare and not cached */
    CACHE_MAX_WORDS = 1 << 20,    /* then the cache starts over */
    CACHE_MAX_IDS = 1 << 24,
};

struct heap_entry {
    int32_t rank, pos, result;
};

struct encode_state {
    struct bytes_map cache; /* piece -> offset in cache_ids ([n, id...]) */
    int32_t *cache_ids;
    size_t cache_len, cache_cap;
    /* BPE scratch, grown to the longest piece seen */
    size_t scratch_cap;
    int32_t *sym, *prev, *next;
    struct heap_entry *heap;
};

/* ---- construction ---------------------------------------------------------- */

static struct encode_state *encode_state_new(void) {
    struct encode_state *e = calloc(1, sizeof *e);
    if (!e || bytes_map_init(&e->cache, 1 << 14)) {
        free(e);
        err_set("out of memory for the tokenizer's word cache");
        return NULL;
    }
    return e;
}

static void encode_state_free(struct encode_state *e) {
    if (!e) return;
    bytes_map_free(&e->cache);
    free(e->cache_ids);
    free(e->sym);
    free(e->prev);
    free(e->next);
    free(e->heap);
    free(e);
}

struct tokenizer *tokenizer_bytes(void) {
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        err_set("out of memory");
        return NULL;
    }
    t->is_bytes = 1;
    t->vocab_size = 256;
    t->eot = -1;
    for (int i = 0; i < 256; i++) t->byte_token[i] = i;
    return t;
}

void tokenizer_tokens_free(struct tokenizer_token *tokens, int32_t n) {
    if (!tokens) return;
    for (int32_t i = 0; i < n; i++) {
        free(tokens[i].bytes);
        free(tokens[i].text);
    }
    free(tokens);
}

struct tokenizer *tokenizer_from_parts(struct tokenizer_token *tokens, int32_t vocab_size,
                                       struct tokenizer_merge *merges, int32_t nmerges,
                                       const char *source) {
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        tokenizer_tokens_free(tokens, vocab_size);
        free(merges);
        err_set("out of memory");
        return NULL;
    }
    t->tokens = tokens;
    t->vocab_size = vocab_size;
    t->merges = merges;
    t->nmerges = nmerges;
    t->eot = -1;
    for (int i = 0; i < 256; i++) t->byte_token[i] = -1;
    for (int32_t id = 0; id < vocab_size; id++) {
        const struct tokenizer_token *tok = &tokens[id];
        if (tok->mapped && tok->len == 1 && t->byte_token[(unsigned char)tok->bytes[0]] < 0)
            t->byte_token[(unsigned char)tok->bytes[0]] = id;
        if (t->eot < 0 && !strcmp(tok->text, "<|endoftext|>")) t->eot = id;
    }
    for (int b = 0; b < 256; b++) {
        if (t->byte_token[b] < 0) {
            err_set("%s: no token for byte 0x%02x (a byte-level vocabulary needs all 256 "
                    "so that any text can be encoded)",
                    source, b);
            tokenizer_free(t);
            return NULL;
        }
    }
    if (pair_map_init(&t->merge_rank, (size_t)nmerges)) {
        tokenizer_free(t);
        return NULL;
    }
    for (int32_t r = 0; r < nmerges; r++) {
        if (pair_map_set(&t->merge_rank, merges[r].left, merges[r].right, r)) {
            tokenizer_free(t);
            return NULL;
        }
    }
    t->pretok = pretok_new();
    t->enc = t->pretok ? encode_state_new() : NULL;
    if (!t->enc) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

void tokenizer_free(struct tokenizer *t) {
    if (!t) return;
    tokenizer_tokens_free(t->tokens, t->vocab_size);
    free(t->merges);
    pair_map_free(&t->merge_rank);
    pretok_free(t->pretok);
    encode_state_free(t->enc);
    free(t);
}

int tokenizer_is_bytes(const struct tokenizer *t) { return t->is_bytes; }
int tokenizer_vocab_size(const struct tokenizer *t) { return t->vocab_size; }
int32_t tokenizer_eot(const struct tokenizer *t) { return t->eot; }

/* ---- BPE on one piece -------------------------------------------------------- */

static int scratch_reserve(struct encode_state *e, size_t n) {
    if (n <= e->scratch_cap) return 0;
    size_t cap = n < 256 ? 256 : n;
    int32_t *sym = realloc(e->sym, cap * sizeof *sym);
    if (sym) e->sym = sym;
    int32_t *prev = realloc(e->prev, cap * sizeof *prev);
    if (prev) e->prev = prev;
    int32_t *next = realloc(e->next, cap * sizeof *next);
    if (next) e->next = next;
    struct heap_entry *heap = realloc(e->heap, cap * 2 * sizeof *heap);
    if (heap) e->heap = heap;
    if (!sym || !prev || !next || !heap)
        return err_set("out of memory encoding a piece of %zu bytes", n);
    e->scratch_cap = cap;
    return 0;
}

static int heap_before(const struct heap_entry *a, const struct heap_entry *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct heap_entry *h, size_t *n, struct heap_entry x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(&x, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = x;
}

static struct heap_entry heap_pop(struct heap_entry *h, size_t *n) {
    struct heap_entry top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_before(&h[c + 1], &h[c])) c++;
        if (!heap_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static void queue_pair(const struct tokenizer *t, struct heap_entry *heap, size_t *nheap,
                       int32_t pos, int32_t left, int32_t right) {
    int32_t rank = pair_map_get(&t->merge_rank, left, right);
    if (rank >= 0)
        heap_push(heap, nheap, (struct heap_entry){rank, pos, t->merges[rank].result});
}

/* The ids of one piece into out[] (room for len ids); returns how many. Each
 * symbol can be merged at most once with its right neighbour, so the heap
 * never holds more than 2 * len entries. */
static size_t bpe_piece(const struct tokenizer *t, const unsigned char *piece, size_t len,
                        int32_t *out) {
    struct encode_state *e = t->enc;
    int32_t *sym = e->sym, *prev = e->prev, *next = e->next;
    struct heap_entry *heap = e->heap;
    size_t nheap = 0;
    for (size_t i = 0; i < len; i++) {
        sym[i] = t->byte_token[piece[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < len ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < len; i++) queue_pair(t, heap, &nheap, (int32_t)i, sym[i], sym[i + 1]);
    while (nheap) {
        struct heap_entry top = heap_pop(heap, &nheap);
        int32_t p = top.pos;
        if (sym[p] < 0 || next[p] < 0) continue; /* merged away, or last symbol */
        int32_t q = next[p];
        int32_t rank = pair_map_get(&t->merge_rank, sym[p], sym[q]);
        if (rank < 0 || t->merges[rank].result != top.result) continue; /* stale */
        sym[p] = top.result;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        if (prev[p] >= 0) queue_pair(t, heap, &nheap, prev[p], sym[prev[p]], sym[p]);
        if (next[p] >= 0) queue_pair(t, heap, &nheap, p, sym[p], sym[next[p]]);
    }
    size_t n = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) out[n++] = sym[i];
    return n;
}

/* ---- encode ---------------------------------------------------------------- */

struct encode_job {
    const struct tokenizer *t;
    int32_t **ids;
    size_t *n, *cap;
};

static int ids_reserve(struct encode_job *j, size_t more) {
    if (*j->n + more <= *j->cap) return 0;
    size_t cap = *j->cap ? *j->cap : 1024;
    while (cap < *j->n + more) cap *= 2;
    int32_t *p = realloc(*j->ids, cap * sizeof *p);
    if (!p) return err_set("out of memory for %zu token ids", cap);
    *j->ids = p;
    *j->cap = cap;
    return 0;
}

static int cache_add(struct encode_state *e, const char *piece, size_t len, const int32_t *ids,
                     size_t n) {
    if (e->cache.count >= CACHE_MAX_WORDS || e->cache_len + n + 1 > CACHE_MAX_IDS) {
        bytes_map_clear(&e->cache);
        e->cache_len = 0;
    }
    if (e->cache_len + n + 1 > e->cache_cap) {
        size_t cap = e->cache_cap ? e->cache_cap * 2 : 1 << 14;
        int32_t *p = realloc(e->cache_ids, cap * sizeof *p);
        if (!p) return 0; /* caching is optional */
        e->cache_ids = p;
        e->cache_cap = cap;
    }
    int inserted;
    if (!bytes_map_put(&e->cache, piece, len, (int64_t)e->cache_len, &inserted)) return 0;
    e->cache_ids[e->cache_len] = (int32_t)n;
    memcpy(e->cache_ids + e->cache_len + 1, ids, n * sizeof *ids);
    e->cache_len += n + 1;
    return 0;
}

static int encode_piece(const char *piece, size_t len, void *ctx) {
    struct encode_job *j = ctx;
    const struct tokenizer *t = j->t;
    struct encode_state *e = t->enc;
    if (ids_reserve(j, len)) return -1;
    int32_t *out = *j->ids + *j->n;
    if (len == 1) {
        out[0] = t->byte_token[(unsigned char)piece[0]];
        *j->n += 1;
        return 0;
    }
    if (len <= CACHE_MAX_PIECE) {
        const int64_t *off = bytes_map_get(&e->cache, piece, len);
        if (off) {
            const int32_t *cached = e->cache_ids + *off;
            memcpy(out, cached + 1, (size_t)cached[0] * sizeof *out);
            *j->n += (size_t)cached[0];
            return 0;
        }
    }
    if (scratch_reserve(e, len)) return -1;
    size_t n = bpe_piece(t, (const unsigned char *)piece, len, out);
    *j->n += n;
    if (len <= CACHE_MAX_PIECE) return cache_add(e, piece, len, out, n);
    return 0;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int32_t **ids,
                     size_t *n, size_t *cap) {
    struct encode_job job = {t, ids, n, cap};
    if (t->is_bytes) {
        if (ids_reserve(&job, len)) return -1;
        for (size_t i = 0; i < len; i++) (*ids)[(*n)++] = (unsigned char)text[i];
        return 0;
    }
    return pretok_split(t->pretok, text, len, encode_piece, &job);
}

/* ---- decode ---------------------------------------------------------------- */

const char *tokenizer_token_bytes(const struct tokenizer *t, int32_t id, size_t *len) {
    static const unsigned char all_bytes[256] = {
#define B4(x) x, x + 1, x + 2, x + 3
#define B16(x) B4(x), B4(x + 4), B4(x + 8), B4(x + 12)
#define B64(x) B16(x), B16(x + 16), B16(x + 32), B16(x + 48)
        B64(0), B64(64), B64(128), B64(192)
#undef B64
#undef B16
#undef B4
    };
    if (id < 0 || id >= t->vocab_size) return NULL;
    if (t->is_bytes) {
        *len = 1;
        return (const char *)&all_bytes[id];
    }
    *len = t->tokens[id].len;
    return t->tokens[id].bytes;
}

char *tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, size_t *len) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        if (!tokenizer_token_bytes(t, ids[i], &l)) {
            err_set("cannot decode token id %d at position %zu: the vocabulary has ids 0..%d",
                    ids[i], i, t->vocab_size - 1);
            return NULL;
        }
        total += l;
    }
    char *out = malloc(total + 1);
    if (!out) {
        err_set("out of memory decoding %zu bytes", total);
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = 0;
        const char *b = tokenizer_token_bytes(t, ids[i], &l);
        if (l) memcpy(out + o, b, l);
        o += l;
    }
    out[o] = '\0';
    *len = o;
    return out;
}
