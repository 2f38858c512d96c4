/* src/common/tokenizer_corpus.h — reading a corpus as documents, for
 * tokenizer training and `llmpi prep`.
 *
 * A text file is one document, handed over in chunks of about 16 MB cut
 * where GPT-2's pre-tokenisation gives the same pieces as for the whole file
 * (pretok_safe_cut), so a large file is never held in memory at once and the
 * tokens do not depend on the chunking. A JSONL file is one document per
 * non-blank line: the string field `field` of the JSON object on that line.
 */
#ifndef LLMPI_TOKENIZER_CORPUS_H
#define LLMPI_TOKENIZER_CORPUS_H

#include <stddef.h>
#include <stdint.h>

struct corpus_visitor {
    /* A part of the current document (called one or more times). */
    int (*text)(const char *text, size_t len, void *ctx);
    /* The current document is complete. May be NULL. */
    int (*end_document)(void *ctx);
    /* Bytes of the current file read so far. May be NULL. */
    void (*progress)(uint64_t file_bytes_done, void *ctx);
    void *ctx;
};

/* Is this input read as JSONL (its name ends in .jsonl)? */
int corpus_is_jsonl(const char *path);

/* The regular files of the inputs: files as given, directories walked
 * recursively in sorted order (hidden entries skipped). *paths is a malloc'd
 * array of malloc'd strings (corpus_paths_free); *total_bytes their sizes.
 * -1 + err_set naming the input when one is missing or unreadable. */
int corpus_expand(const char *const *inputs, int ninputs, char ***paths, int *npaths,
                  uint64_t *total_bytes);
void corpus_paths_free(char **paths, int npaths);

/* Visit the documents of one file. A callback's non-zero return stops the
 * walk and is returned (its err_set message kept). JSONL errors name the file
 * and line: invalid JSON, not an object, no string field `field`. */
int corpus_read_file(const char *path, int jsonl, const char *field,
                     const struct corpus_visitor *v);

#endif
