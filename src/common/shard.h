/* src/common/shard.h — token shards: what `llmpi prep` writes and training
 * reads.
 *
 * Layout (little-endian): a 64-byte header
 *   0  char[8] magic "LLMPITOK"
 *   8  u32     version (1)
 *   12 u32     vocabulary size (every token is < this)
 *   16 u64     token count
 *   24 u32     dtype: bytes per token, 2 = uint16 (vocabularies up to 65536),
 *              4 = int32
 *   28 zeros up to byte 64
 * then the tokens. Writers write PATH.tmp and rename it to PATH on close, so a
 * shard that exists is complete; readers check the header, the file size and
 * every token against the vocabulary, naming the file and the field.
 */
#ifndef LLMPI_SHARD_H
#define LLMPI_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define SHARD_MAGIC "LLMPITOK"
#define SHARD_VERSION 1u
#define SHARD_HEADER_BYTES 64

struct shard_header {
    uint32_t version, vocab_size, dtype;
    uint64_t ntokens;
};

struct shard_writer;

/* Start PATH.tmp; dtype 2 when vocab_size <= 65536, else 4. */
struct shard_writer *shard_writer_open(const char *path, uint32_t vocab_size);
/* Append tokens; -1 when one is outside [0, vocab_size) or on a write error. */
int shard_writer_append(struct shard_writer *w, const int32_t *ids, size_t n);
uint64_t shard_writer_count(const struct shard_writer *w);
/* Move the last n tokens of `from` to the end of `to` (a train/validation
 * split after writing everything once). */
int shard_writer_move_tail(struct shard_writer *from, struct shard_writer *to, uint64_t n);
/* Write the header, close, rename PATH.tmp -> PATH. Frees w either way. */
int shard_writer_close(struct shard_writer *w);
/* Close and delete PATH.tmp (on an error elsewhere). NULL is fine. */
void shard_writer_abort(struct shard_writer *w);

/* Does the file start with the shard magic? (0 when it does not or cannot
 * be read.) */
int shard_is_shard(const char *path);
int shard_read_header(const char *path, struct shard_header *h);
/* Read a whole shard as int32 (malloc'd *tokens). */
int shard_read(const char *path, int32_t **tokens, size_t *n, struct shard_header *h);

#endif
