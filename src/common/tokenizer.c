/* src/common/tokenizer.c — PLACEHOLDER with the "bytes" kind only; the BPE
 * implementation (GPT-2 files, PCRE2 pre-tokenisation, training) replaces
 * this file. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer.h"

struct tokenizer {
    int kind; /* 0 bytes */
    char bytes[256];
};

struct tokenizer *tokenizer_bytes(void) {
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        err_set("out of memory");
        return NULL;
    }
    for (int i = 0; i < 256; i++) t->bytes[i] = (char)i;
    return t;
}

struct tokenizer *tokenizer_load_files(const char *vocab_json_path, const char *merges_path) {
    (void)merges_path;
    err_set("%s: BPE tokenizers are not implemented yet", vocab_json_path);
    return NULL;
}

struct tokenizer *tokenizer_load_strings(const char *vocab_json, size_t vocab_len,
                                         const char *merges, size_t merges_len) {
    (void)vocab_json, (void)vocab_len, (void)merges, (void)merges_len;
    err_set("BPE tokenizers are not implemented yet");
    return NULL;
}

struct tokenizer *tokenizer_train(const char *const *paths, int npaths, int vocab_size,
                                  void (*progress)(double fraction, void *ctx), void *ctx) {
    (void)paths, (void)npaths, (void)vocab_size, (void)progress, (void)ctx;
    err_set("tokenizer training is not implemented yet");
    return NULL;
}

void tokenizer_free(struct tokenizer *t) { free(t); }
int tokenizer_is_bytes(const struct tokenizer *t) { return t->kind == 0; }
int tokenizer_vocab_size(const struct tokenizer *t) { return t->kind == 0 ? 256 : 0; }
int32_t tokenizer_eot(const struct tokenizer *t) { (void)t; return -1; }

int tokenizer_to_strings(const struct tokenizer *t, char **vocab_json, size_t *vocab_len,
                         char **merges, size_t *merges_len) {
    (void)t;
    *vocab_json = *merges = NULL;
    *vocab_len = *merges_len = 0;
    return 0;
}

int tokenizer_save_files(const struct tokenizer *t, const char *dir) {
    (void)t;
    return err_set("%s: the bytes tokenizer has no files", dir);
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int32_t **ids,
                     size_t *n, size_t *cap) {
    (void)t;
    if (*n + len > *cap) {
        size_t c = (*n + len) * 2 + 16;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p) return err_set("out of memory");
        *ids = p;
        *cap = c;
    }
    for (size_t i = 0; i < len; i++) (*ids)[(*n)++] = (unsigned char)text[i];
    return 0;
}

const char *tokenizer_token_bytes(const struct tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id > 255) return NULL;
    *len = 1;
    return &t->bytes[id];
}

char *tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, size_t *len) {
    (void)t;
    char *out = malloc(n + 1);
    if (!out) {
        err_set("out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] > 255) {
            free(out);
            err_set("token id %d is outside the byte vocabulary", ids[i]);
            return NULL;
        }
        out[i] = (char)ids[i];
    }
    out[n] = '\0';
    *len = n;
    return out;
}
