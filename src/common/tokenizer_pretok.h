/* src/common/tokenizer_pretok.h — GPT-2's pre-tokenisation: split text into
 * the pieces BPE merges within, with GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * through PCRE2 (UTF + UCP, JIT when available). PCRE2_MATCH_INVALID_UTF lets
 * it run over any bytes: invalid UTF-8 is never inside a match, and each run
 * of bytes between matches becomes a piece of its own, so the pieces always
 * tile the input exactly (which is what makes encoding lossless).
 */
#ifndef LLMPI_TOKENIZER_PRETOK_H
#define LLMPI_TOKENIZER_PRETOK_H

#include <stddef.h>

struct pretok;

struct pretok *pretok_new(void);
void pretok_free(struct pretok *p);

/* Call piece(start, len, ctx) for each piece of text[0..len), in order; stops
 * and returns -1 when piece returns non-zero (or PCRE2 fails, with err_set).
 * Not safe to call concurrently on one pretok (it reuses match data). */
int pretok_split(struct pretok *p, const char *text, size_t len,
                 int (*piece)(const char *start, size_t len, void *ctx), void *ctx);

/* Where a long text may be cut into chunks that pre-tokenise exactly as the
 * whole would: the largest cut <= len that follows a newline preceded by a
 * printable ASCII byte and precedes one (no piece crosses such a
 * point and no lookahead sees past it). 0 when there is none. */
size_t pretok_safe_cut(const char *text, size_t len);

#endif
