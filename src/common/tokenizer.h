/* src/common/tokenizer.h — byte-level BPE, GPT-2 compatible.
 *
 * Two kinds:
 *  - "bytes": vocabulary 256, token id == byte value, no merges (what
 *    `llmpi train` reads a plain text file as);
 *  - "bpe": GPT-2's format (vocab.json + merges.txt, byte-to-unicode mapping,
 *    GPT-2's pre-tokenisation regex through PCRE2), loaded or trained.
 * Encoding then decoding gives back the input bytes exactly, for any bytes
 * (invalid UTF-8 included). Special tokens (e.g. <|endoftext|>) are never
 * produced by encode() from text; tokenizer_eot() gives the id to insert
 * between documents.
 * Every function returns 0 / a pointer on success and -1 / NULL with
 * err_set() (naming the file and what is wrong) on failure.
 */
#ifndef LLMPI_TOKENIZER_H
#define LLMPI_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct tokenizer;

struct tokenizer *tokenizer_bytes(void);
/* Load GPT-2 files. */
struct tokenizer *tokenizer_load_files(const char *vocab_json_path, const char *merges_path);
/* The same from in-memory texts (e.g. read back from a checkpoint). */
struct tokenizer *tokenizer_load_strings(const char *vocab_json, size_t vocab_len,
                                         const char *merges, size_t merges_len);
/* Train a BPE vocabulary of vocab_size tokens (>= 257: 256 bytes, merges,
 * <|endoftext|>) on the given files. progress (may be NULL) is called now
 * and then with a fraction in [0, 1]. */
struct tokenizer *tokenizer_train(const char *const *paths, int npaths, int vocab_size,
                                  void (*progress)(double fraction, void *ctx), void *ctx);
void tokenizer_free(struct tokenizer *t);

int tokenizer_is_bytes(const struct tokenizer *t);
int tokenizer_vocab_size(const struct tokenizer *t);
int32_t tokenizer_eot(const struct tokenizer *t); /* -1 if none */

/* GPT-2 texts of a "bpe" tokenizer (malloc'd; NULL + 0 lengths for "bytes"). */
int tokenizer_to_strings(const struct tokenizer *t, char **vocab_json, size_t *vocab_len,
                         char **merges, size_t *merges_len);
/* Write DIR/vocab.json and DIR/merges.txt. */
int tokenizer_save_files(const struct tokenizer *t, const char *dir);

/* Append the ids of text[0..len) to *ids (realloc'd; *n and *cap updated). */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int32_t **ids,
                     size_t *n, size_t *cap);
/* The bytes of one token (not NUL-terminated), or NULL for an unknown id. */
const char *tokenizer_token_bytes(const struct tokenizer *t, int32_t id, size_t *len);
/* Decode ids into a malloc'd buffer (NUL-terminated; *len excludes the NUL). */
char *tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, size_t *len);

#endif
