/* src/common/data.h — training tokens and batches.
 *
 * data_load reads what `llmpi prep` writes (a directory with train.bin,
 * val.bin and the vocabulary, or one token shard) or, for anything else, a
 * text file as bytes: each byte is a token (vocabulary 256). For a single
 * shard or a text file the last val_fraction of the tokens is held out for
 * evaluation; a prep directory has its own validation shard.
 */
#ifndef LLMPI_DATA_H
#define LLMPI_DATA_H

#include <stddef.h>
#include <stdint.h>

struct tokenizer;

struct token_data {
    int32_t *tokens;
    size_t n;         /* total tokens */
    size_t train_end; /* [0, train_end) train, [train_end, n) validation */
    int vocab_size;
    /* The tokenizer the tokens came with (owned; freed by data_free): the
     * bytes tokenizer for text files, vocab.json + merges.txt beside the
     * shards otherwise. NULL only for a shard with no vocabulary files beside
     * it and a vocabulary other than 256. */
    struct tokenizer *tokenizer;
};

/* Load training data from `path`:
 *  - a directory written by `llmpi prep`: DIR/train.bin + DIR/val.bin
 *    (val_fraction is ignored) and DIR/vocab.json + DIR/merges.txt;
 *  - a token shard (starts with "LLMPITOK"): split by val_fraction, with the
 *    vocabulary files of its directory when present;
 *  - anything else: a text file read as bytes (data_load_bytes).
 * vocab_size is the shard's. -1 + err_set naming the file (and the header
 * field) on failure; *d is then empty. */
int data_load(const char *path, double val_fraction, struct token_data *d);
/* Read `path` as bytes. -1 + err_set naming the file when it is missing,
 * unreadable or empty. */
int data_load_bytes(const char *path, double val_fraction, struct token_data *d);
void data_free(struct token_data *d);

/* Check that the training part holds one batch of B sequences of T+1 tokens
 * and, when eval_batches > 0, that the validation part holds one sequence. */
int data_check_fits(const struct token_data *d, const char *path, int B, int T,
                    int eval_batches);

/* Next training batch: B rows of T inputs and their next-token targets, read
 * as consecutive windows from *cursor; the cursor advances by B*T and wraps
 * to 0 when the next batch would run past the training part. */
void data_train_batch(const struct token_data *d, size_t *cursor, int B, int T,
                      int32_t *inputs, int32_t *targets);

/* Validation batch k (deterministic; wraps around the validation part).
 * Returns the number of validation batches that fit without wrapping. */
size_t data_val_batches(const struct token_data *d, int B, int T);
void data_val_batch(const struct token_data *d, size_t k, int B, int T, int32_t *inputs,
                    int32_t *targets);

#endif
