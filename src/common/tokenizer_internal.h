/* src/common/tokenizer_internal.h — the tokenizer's representation, shared by
 * tokenizer.c (encode/decode), tokenizer_io.c (GPT-2 files) and
 * tokenizer_train.c (training). Nothing outside those files includes it.
 */
#ifndef LLMPI_TOKENIZER_INTERNAL_H
#define LLMPI_TOKENIZER_INTERNAL_H

#include <stdint.h>

#include "tokenizer.h"
#include "tokenizer_map.h"

struct tokenizer_token {
    char *bytes;  /* what the token decodes to (malloc'd; len may be 0) */
    uint32_t len;
    char *text;   /* its vocab.json key, NUL-terminated (malloc'd) */
    int mapped;   /* text is GPT-2 byte-mapped (not an added token like "[CLS]") */
};

struct tokenizer_merge {
    int32_t left, right, result;
};

struct encode_state; /* word cache and scratch buffers (tokenizer.c) */

struct tokenizer {
    int is_bytes;
    int32_t vocab_size;
    struct tokenizer_token *tokens; /* [vocab_size]; NULL for "bytes" */
    int32_t byte_token[256];        /* id of each single-byte token */
    int32_t nmerges;
    struct tokenizer_merge *merges; /* in rank order */
    struct pair_map merge_rank;     /* (left, right) -> rank (the last one wins) */
    int32_t eot;
    struct pretok *pretok;
    struct encode_state *enc; /* mutable through a const tokenizer: encode is not
                                 thread-safe on one tokenizer */
};

/* A "bpe" tokenizer from its parts, which it takes over (also on failure).
 * Checks that every byte has a token and sets eot; `source` names the
 * vocabulary in error messages. */
struct tokenizer *tokenizer_from_parts(struct tokenizer_token *tokens, int32_t vocab_size,
                                       struct tokenizer_merge *merges, int32_t nmerges,
                                       const char *source);
void tokenizer_tokens_free(struct tokenizer_token *tokens, int32_t n);

#endif
