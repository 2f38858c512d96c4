/* src/common/tokenizer_train.h — training a byte-level BPE vocabulary.
 *
 * Feed text with bpe_trainer_add (each call pre-tokenised on its own, so cut
 * long texts only where pretok_safe_cut allows, as tokenizer_corpus.c does),
 * then bpe_trainer_finish builds the tokenizer. tokenizer_train (tokenizer.h)
 * is this over text files.
 */
#ifndef LLMPI_TOKENIZER_TRAIN_H
#define LLMPI_TOKENIZER_TRAIN_H

#include <stddef.h>

#include "tokenizer.h"

struct bpe_trainer;

struct bpe_trainer *bpe_trainer_new(void);
void bpe_trainer_free(struct bpe_trainer *tr);
int bpe_trainer_add(struct bpe_trainer *tr, const char *text, size_t len);
/* vocab_size >= 257: 256 byte tokens, then merges, then <|endoftext|> last.
 * Fewer merges when the text runs out of pairs. progress may be NULL. */
struct tokenizer *bpe_trainer_finish(struct bpe_trainer *tr, int vocab_size,
                                     void (*progress)(double fraction, void *ctx), void *ctx);

#endif
