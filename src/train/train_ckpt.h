/* src/train/train_ckpt.h — the trainer's side of checkpoints: where a resume
 * reads from, whether a checkpoint's model matches the command line, and
 * moving parameters + optimizer state between the backend and a checkpoint.
 * The file format itself is src/common/ckpt.*.
 */
#ifndef LLMPI_TRAIN_CKPT_H
#define LLMPI_TRAIN_CKPT_H

#include <stddef.h>

#include "ckpt.h"
#include "gpt2.h"
#include "optim.h"

/* The checkpoint a run resumes from, into path:
 *  - resume NULL (no --resume): 1 (start fresh); -1 when ckpt_dir already
 *    holds a complete checkpoint (a fresh run there would mix two runs);
 *  - resume "" (bare --resume): the newest complete checkpoint in ckpt_dir,
 *    or 1 (start fresh) when it is missing or holds none yet;
 *  - resume a directory: its newest complete checkpoint (-1 if none);
 *  - resume a file: that file (-1 if it does not exist).
 * 0 when path was filled. */
int train_ckpt_locate(const char *resume, const char *ckpt_dir, char *path, size_t len);

/* -1 + err_set naming the field and both values when the checkpoint's model
 * (ck) differs from the one the command line asks for (want). */
int train_ckpt_check_model(const char *file, const struct gpt2_config *ck,
                           const struct gpt2_config *want);

/* Upload a checkpoint's parameters and optimizer state (moments and t),
 * full buffers as the file holds them: the model takes its TP shard
 * (shard_table.h), a sharded optimizer (ZeRO-1) its range [o->lo, o->hi) of
 * that shard. -1 + err_set (out of memory). */
int train_ckpt_restore(struct gpt2 *m, struct optim *o, const float *params,
                        const struct ckpt_train_state *st);

/* Download parameters and optimizer state into host buffers (table.total
 * floats each; v_host unused for SGD), complete *st (whose step, cursor,
 * RNG and hyperparameters the caller filled) and save DIR/ckpt_<step>.h5,
 * A sharded optimizer's state is not downloaded: the caller has gathered
 * the full state into m_host / v_host (dp_gather_state). Call on one rank.
 * then keep the newest `keep` (0: all). The saved path goes to out. */
int train_ckpt_save(const char *dir, int keep, const struct gpt2 *m,
                    const struct optim *o, const struct tokenizer *tok,
                    float *params_host, float *m_host, float *v_host,
                    struct ckpt_train_state *st, char *out, size_t outlen);

#endif
