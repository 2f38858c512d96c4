/* src/common/tokenizer_train.c — byte-level BPE training.
 *
 * 1. Count the pre-tokenised pieces ("words") of the text.
 * 2. Repeatedly merge the most frequent adjacent pair of tokens, counted over
 *    all words weighted by word count, ties going to the pair with the
 *    smallest (left id, right id). Pair counts are updated incrementally: each
 *    pair remembers the words it occurs in, a merge rewrites only those words
 *    and adjusts the counts of the pairs around each occurrence; a max-heap
 *    whose stale entries are refreshed when they surface finds the next pair.
 *    Cost per merge is proportional to the occurrences it touches, not to the
 *    corpus, which is what makes tens of MB train in seconds.
 *
 * The ids follow Hugging Face `tokenizers` (BpeTrainer with ByteLevel's
 * alphabet) so that both vocabularies agree where they can: the 256 bytes in
 * the order of their GPT-2 code points (which is GPT-2's own order), merges
 * in the order made, counting every adjacent window (a word "aaa" holds the
 * pair (a, a) twice), a merge whose text already exists reusing that id.
 * Differences: <|endoftext|> comes last (GPT-2's place) instead of first, so
 * every other id is HF's minus one; a pair is never merged twice.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer_bytemap.h"
#include "tokenizer_corpus.h"
#include "tokenizer_internal.h"
#include "tokenizer_pretok.h"
#include "tokenizer_train.h"

struct bpe_trainer {
    struct pretok *pretok;
    struct bytes_map words; /* piece -> count */
};

struct bpe_trainer *bpe_trainer_new(void) {
    struct bpe_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) {
        err_set("out of memory");
        return NULL;
    }
    tr->pretok = pretok_new();
    if (!tr->pretok || bytes_map_init(&tr->words, 1 << 16)) {
        bpe_trainer_free(tr);
        return NULL;
    }
    return tr;
}

void bpe_trainer_free(struct bpe_trainer *tr) {
    if (!tr) return;
    pretok_free(tr->pretok);
    bytes_map_free(&tr->words);
    free(tr);
}

static int count_piece(const char *piece, size_t len, void *ctx) {
    struct bpe_trainer *tr = ctx;
    int64_t *count = bytes_map_put(&tr->words, piece, len, 0, NULL);
    if (!count) return -1;
    (*count)++;
    return 0;
}

int bpe_trainer_add(struct bpe_trainer *tr, const char *text, size_t len) {
    return pretok_split(tr->pretok, text, len, count_piece, tr);
}

/* ---- the merge loop's state ------------------------------------------------------ */

struct word_list {
    int32_t *w;
    int32_t n, cap;
};

struct heap_item {
    int64_t count;
    int32_t pair;
};

struct merge_state {
    /* words */
    int32_t nwords;
    int64_t *word_count;
    size_t *word_off;
    uint32_t *word_len;
    int32_t *syms;
    int32_t *word_stamp; /* last merge that rewrote the word */
    /* tokens */
    struct tokenizer_token *tokens;
    int32_t ntokens, tokens_cap;
    struct bytes_map token_ids; /* bytes -> id */
    /* pairs */
    struct pair_map pair_index;
    int32_t npairs, pairs_cap;
    int32_t *pair_left, *pair_right, *pair_stamp;
    int64_t *pair_count;
    struct word_list *pair_words;
    /* max-heap */
    struct heap_item *heap;
    size_t nheap, heap_cap;
};

static int grow(void **p, size_t elem, int32_t *cap, int32_t need) {
    if (need <= *cap) return 0;
    int32_t c = *cap ? *cap : 4; /* small: most pairs occur in few words */
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return err_set("out of memory while training the tokenizer");
    *p = q;
    *cap = c;
    return 0;
}

static int pairs_reserve(struct merge_state *s, int32_t need) {
    if (need <= s->pairs_cap) return 0;
    int32_t cap = s->pairs_cap;
    if (grow((void **)&s->pair_left, sizeof(int32_t), &cap, need)) return -1;
    cap = s->pairs_cap;
    if (grow((void **)&s->pair_right, sizeof(int32_t), &cap, need)) return -1;
    cap = s->pairs_cap;
    if (grow((void **)&s->pair_stamp, sizeof(int32_t), &cap, need)) return -1;
    cap = s->pairs_cap;
    if (grow((void **)&s->pair_count, sizeof(int64_t), &cap, need)) return -1;
    cap = s->pairs_cap;
    if (grow((void **)&s->pair_words, sizeof(struct word_list), &cap, need)) return -1;
    memset(s->pair_words + s->pairs_cap, 0, (size_t)(cap - s->pairs_cap) * sizeof *s->pair_words);
    s->pairs_cap = cap;
    return 0;
}

/* The index of pair (left, right), created with count 0 when new. */
static int32_t pair_get(struct merge_state *s, int32_t left, int32_t right) {
    int32_t i = pair_map_get(&s->pair_index, left, right);
    if (i >= 0) return i;
    if (pairs_reserve(s, s->npairs + 1)) return -1;
    i = s->npairs++;
    s->pair_left[i] = left;
    s->pair_right[i] = right;
    s->pair_count[i] = 0;
    s->pair_stamp[i] = -1;
    if (pair_map_set(&s->pair_index, left, right, i)) return -1;
    return i;
}

static int pair_add_word(struct merge_state *s, int32_t pair, int32_t word) {
    struct word_list *l = &s->pair_words[pair];
    if (l->n && l->w[l->n - 1] == word) return 0;
    if (grow((void **)&l->w, sizeof(int32_t), &l->cap, l->n + 1)) return -1;
    l->w[l->n++] = word;
    return 0;
}

static int heap_before(const struct merge_state *s, struct heap_item a, struct heap_item b) {
    if (a.count != b.count) return a.count > b.count;
    if (s->pair_left[a.pair] != s->pair_left[b.pair])
        return s->pair_left[a.pair] < s->pair_left[b.pair];
    return s->pair_right[a.pair] < s->pair_right[b.pair];
}

static int heap_push(struct merge_state *s, struct heap_item x) {
    if (s->nheap == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 4096;
        struct heap_item *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return err_set("out of memory while training the tokenizer");
        s->heap = h;
        s->heap_cap = cap;
    }
    size_t i = s->nheap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(s, x, s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = x;
    return 0;
}

static struct heap_item heap_pop(struct merge_state *s) {
    struct heap_item *h = s->heap;
    struct heap_item top = h[0], last = h[--s->nheap];
    size_t i = 0, n = s->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(s, h[c + 1], h[c])) c++;
        if (!heap_before(s, h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

static int token_add(struct merge_state *s, const char *bytes, size_t len, int32_t *id) {
    int inserted;
    int64_t *v = bytes_map_put(&s->token_ids, bytes, len, s->ntokens, &inserted);
    if (!v) return -1;
    *id = (int32_t)*v;
    if (!inserted) return 0;
    if (grow((void **)&s->tokens, sizeof *s->tokens, &s->tokens_cap, s->ntokens + 1)) return -1;
    struct tokenizer_token *t = &s->tokens[s->ntokens];
    memset(t, 0, sizeof *t);
    t->bytes = malloc(len ? len : 1);
    t->text = malloc(2 * len + 1);
    if (!t->bytes || !t->text) {
        free(t->bytes);
        free(t->text);
        return err_set("out of memory while training the tokenizer");
    }
    memcpy(t->bytes, bytes, len);
    t->len = (uint32_t)len;
    t->text[gpt2_bytes_to_text((const unsigned char *)bytes, len, t->text)] = '\0';
    t->mapped = 1;
    s->ntokens++;
    return 0;
}

static void state_free(struct merge_state *s) {
    free(s->word_count);
    free(s->word_off);
    free(s->word_len);
    free(s->syms);
    free(s->word_stamp);
    tokenizer_tokens_free(s->tokens, s->ntokens);
    bytes_map_free(&s->token_ids);
    pair_map_free(&s->pair_index);
    for (int32_t i = 0; i < s->npairs; i++) free(s->pair_words[i].w);
    free(s->pair_left);
    free(s->pair_right);
    free(s->pair_stamp);
    free(s->pair_count);
    free(s->pair_words);
    free(s->heap);
}

/* Byte tokens in GPT-2 code point order, the words as byte-token sequences,
 * and the initial pair counts. */
static int state_init(struct merge_state *s, const struct bytes_map *words) {
    if (bytes_map_init(&s->token_ids, 1 << 12) || pair_map_init(&s->pair_index, 1 << 16))
        return -1;
    for (uint32_t cp = 0; cp < 0x144; cp++) {
        int b = gpt2_codepoint_to_byte(cp);
        char c = (char)b;
        int32_t id;
        if (b >= 0 && token_add(s, &c, 1, &id)) return -1;
    }
    int32_t byte_id[256];
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        byte_id[b] = (int32_t)*bytes_map_get(&s->token_ids, &c, 1);
    }
    if (words->count > INT32_MAX / 2) return err_set("too many distinct words to train on");
    s->nwords = (int32_t)words->count;
    size_t total = 0;
    for (size_t i = 0; i <= words->mask; i++)
        if (words->slots[i].hash) total += words->slots[i].key_len;
    s->word_count = malloc((size_t)s->nwords * sizeof *s->word_count + 1);
    s->word_off = malloc((size_t)s->nwords * sizeof *s->word_off + 1);
    s->word_len = malloc((size_t)s->nwords * sizeof *s->word_len + 1);
    s->word_stamp = malloc((size_t)s->nwords * sizeof *s->word_stamp + 1);
    s->syms = malloc(total * sizeof *s->syms + 1);
    if (!s->word_count || !s->word_off || !s->word_len || !s->word_stamp || !s->syms)
        return err_set("out of memory for %d words to train on", s->nwords);
    int32_t w = 0;
    size_t off = 0;
    for (size_t i = 0; i <= words->mask; i++) {
        const struct bytes_map_slot *slot = &words->slots[i];
        if (!slot->hash) continue;
        const unsigned char *key = (const unsigned char *)bytes_map_key(words, slot);
        s->word_count[w] = slot->value;
        s->word_off[w] = off;
        s->word_len[w] = slot->key_len;
        s->word_stamp[w] = -1;
        for (uint32_t k = 0; k < slot->key_len; k++) s->syms[off + k] = byte_id[key[k]];
        for (uint32_t k = 0; k + 1 < slot->key_len; k++) {
            int32_t p = pair_get(s, s->syms[off + k], s->syms[off + k + 1]);
            if (p < 0 || pair_add_word(s, p, w)) return -1;
            s->pair_count[p] += slot->value;
        }
        off += slot->key_len;
        w++;
    }
    for (int32_t p = 0; p < s->npairs; p++)
        if (heap_push(s, (struct heap_item){s->pair_count[p], p})) return -1;
    return 0;
}

/* Record a count change of pair (left, right) from word w at merge `stamp`;
 * pairs that gain are queued again once the merge is done. */
static int change(struct merge_state *s, int32_t left, int32_t right, int64_t delta, int32_t w,
                  int32_t stamp, int32_t **touched, int32_t *ntouched, int32_t *touched_cap) {
    int32_t p = pair_get(s, left, right);
    if (p < 0) return -1;
    s->pair_count[p] += delta;
    if (delta <= 0) return 0;
    if (pair_add_word(s, p, w)) return -1;
    if (s->pair_stamp[p] != stamp) {
        s->pair_stamp[p] = stamp;
        if (grow((void **)touched, sizeof(int32_t), touched_cap, *ntouched + 1)) return -1;
        (*touched)[(*ntouched)++] = p;
    }
    return 0;
}

/* Merge pair p (left, right -> result) in every word it occurs in. */
static int apply_merge(struct merge_state *s, int32_t p, int32_t result, int32_t stamp,
                       int32_t **touched, int32_t *ntouched, int32_t *touched_cap) {
    int32_t left = s->pair_left[p], right = s->pair_right[p];
    struct word_list *list = &s->pair_words[p];
    /* the list may grow while we walk it (a word gaining this pair again
     * cannot happen: the pair's count is zeroed), so walk a fixed length */
    int32_t nlist = list->n;
    for (int32_t k = 0; k < nlist; k++) {
        int32_t w = list->w[k];
        if (s->word_stamp[w] == stamp) continue;
        s->word_stamp[w] = stamp;
        int32_t *sym = s->syms + s->word_off[w];
        uint32_t n = s->word_len[w], o = 0, r = 0;
        int64_t wc = s->word_count[w];
        while (r < n) {
            if (r + 1 < n && sym[r] == left && sym[r + 1] == right) {
                if (o > 0) {
                    int32_t prev = sym[o - 1];
                    if (change(s, prev, left, -wc, w, stamp, touched, ntouched, touched_cap) ||
                        change(s, prev, result, wc, w, stamp, touched, ntouched, touched_cap))
                        return -1;
                }
                if (r + 2 < n) {
                    int32_t next = sym[r + 2];
                    if (change(s, right, next, -wc, w, stamp, touched, ntouched, touched_cap) ||
                        change(s, result, next, wc, w, stamp, touched, ntouched, touched_cap))
                        return -1;
                }
                sym[o++] = result;
                r += 2;
            } else {
                sym[o++] = sym[r++];
            }
        }
        s->word_len[w] = o;
        list = &s->pair_words[p]; /* change() may have moved pair_words */
    }
    s->pair_count[p] = 0;
    return 0;
}

struct tokenizer *bpe_trainer_finish(struct bpe_trainer *tr, int vocab_size,
                                     void (*progress)(double fraction, void *ctx), void *ctx) {
    if (vocab_size < 257) {
        err_set("vocabulary size %d is too small: 256 byte tokens + <|endoftext|> need 257",
                vocab_size);
        return NULL;
    }
    struct merge_state s = {0};
    struct tokenizer_merge *merges = NULL;
    int32_t nmerges = 0, merges_cap = 0, *touched = NULL, ntouched = 0, touched_cap = 0;
    struct tokenizer *t = NULL;
    char *joined = NULL;
    size_t joined_cap = 0;
    if (state_init(&s, &tr->words)) goto out;
    int target = vocab_size - 1; /* the last id is <|endoftext|> */
    int start = s.ntokens;
    while (s.ntokens < target && s.nheap) {
        struct heap_item top = heap_pop(&s);
        int64_t now = s.pair_count[top.pair];
        if (top.count != now) { /* stale: re-queue with the current count */
            if (now > 0 && heap_push(&s, (struct heap_item){now, top.pair})) goto out;
            continue;
        }
        if (now < 1) break;
        const struct tokenizer_token *l = &s.tokens[s.pair_left[top.pair]];
        const struct tokenizer_token *r = &s.tokens[s.pair_right[top.pair]];
        size_t jl = (size_t)l->len + r->len;
        if (jl > joined_cap) {
            joined_cap = jl * 2;
            char *p = realloc(joined, joined_cap);
            if (!p) {
                err_set("out of memory while training the tokenizer");
                goto out;
            }
            joined = p;
        }
        memcpy(joined, l->bytes, l->len);
        memcpy(joined + l->len, r->bytes, r->len);
        int32_t result;
        if (token_add(&s, joined, jl, &result)) goto out;
        if (grow((void **)&merges, sizeof *merges, &merges_cap, nmerges + 1)) goto out;
        merges[nmerges] = (struct tokenizer_merge){s.pair_left[top.pair], s.pair_right[top.pair],
                                                   result};
        ntouched = 0;
        if (apply_merge(&s, top.pair, result, nmerges, &touched, &ntouched, &touched_cap))
            goto out;
        nmerges++;
        for (int32_t i = 0; i < ntouched; i++) {
            int32_t p = touched[i];
            if (s.pair_count[p] > 0 && heap_push(&s, (struct heap_item){s.pair_count[p], p}))
                goto out;
        }
        if (progress && (nmerges & 63) == 0)
            progress((double)(s.ntokens - start) / (target - start > 0 ? target - start : 1), ctx);
    }
    int32_t eot;
    if (token_add(&s, "<|endoftext|>", 13, &eot)) goto out;
    t = tokenizer_from_parts(s.tokens, s.ntokens, merges, nmerges, "trained vocabulary");
    s.tokens = NULL;
    s.ntokens = 0;
    merges = NULL;
    if (progress) progress(1.0, ctx);
out:
    free(joined);
    free(touched);
    free(merges);
    state_free(&s);
    return t;
}

/* ---- tokenizer_train: the same over text files ------------------------------------ */

struct file_progress {
    struct bpe_trainer *tr;
    void (*progress)(double fraction, void *ctx);
    void *ctx;
    uint64_t done_before, file_done, total;
};

static int train_text(const char *text, size_t len, void *ctx) {
    struct file_progress *fp = ctx;
    return bpe_trainer_add(fp->tr, text, len);
}

static void train_file_progress(uint64_t done, void *ctx) {
    struct file_progress *fp = ctx;
    if (fp->progress && fp->total)
        fp->progress(0.5 * (double)(fp->done_before + done) / (double)fp->total, fp->ctx);
    fp->file_done = done;
}

static void train_merge_progress(double fraction, void *ctx) {
    struct file_progress *fp = ctx;
    if (fp->progress) fp->progress(0.5 + 0.5 * fraction, fp->ctx);
}

struct tokenizer *tokenizer_train(const char *const *paths, int npaths, int vocab_size,
                                  void (*progress)(double fraction, void *ctx), void *ctx) {
    if (vocab_size < 257) {
        err_set("vocabulary size %d is too small: 256 byte tokens + <|endoftext|> need 257",
                vocab_size);
        return NULL;
    }
    char **files;
    int nfiles;
    uint64_t total;
    if (corpus_expand(paths, npaths, &files, &nfiles, &total)) return NULL;
    struct bpe_trainer *tr = bpe_trainer_new();
    struct tokenizer *t = NULL;
    struct file_progress fp = {tr, progress, ctx, 0, 0, total};
    struct corpus_visitor v = {train_text, NULL, train_file_progress, &fp};
    int ok = tr != NULL;
    for (int i = 0; ok && i < nfiles; i++) {
        ok = corpus_read_file(files[i], 0, NULL, &v) == 0;
        fp.done_before += fp.file_done;
        fp.file_done = 0;
    }
    if (ok) t = bpe_trainer_finish(tr, vocab_size, train_merge_progress, &fp);
    bpe_trainer_free(tr);
    corpus_paths_free(files, nfiles);
    return t;
}
