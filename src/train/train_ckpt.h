/* src/train/train_ckpt.h — the trainer's side of checkpoints: where a resume
 * reads from, whether a checkpoint's model matches the command line, and
 * moving parameters + optimizer state between the backend and a checkpoint.
 * The file format itself is src/common/ckpt.*.
 */
#ifndef LLMPI_TRAIN_CKPT_H
#define LLMPI_TRAIN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

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

/* Read this rank's shard of a checkpoint's parameters and optimizer
 * moments (ckpt_load_shard: only its hyperslabs, so any DP x TP layout
 * resumes any other) and upload them; a sharded optimizer (ZeRO-1) keeps its
 * range [o->lo, o->hi) of the moments. optim_t: the file's optimizer step
 * count. -1 + err_set. */
int train_ckpt_restore(const char *file, struct gpt2 *m, struct optim *o,
                       int64_t optim_t);

/* Who takes part in a save: every rank of comm calls train_ckpt_save. */
struct train_ckpt_io {
    MPI_Comm comm; /* the whole job */
    int writer;    /* 1: this rank's shard goes to the file (DP rank 0) */
    int leader;    /* 1 on the one rank that prunes old checkpoints */
};

/* Collective over io->comm: download parameters and optimizer state into
 * host buffers in this rank's (TP-local) layout (table.total floats each;
 * v_host unused for SGD), complete *st (whose step, cursor, RNG and
 * hyperparameters the caller filled; rank 0's are written) and save
 * DIR/ckpt_<step>.h5 with parallel HDF5, each writer its hyperslabs
 * (ckpt_save_sharded); then the leader keeps the newest `keep` (0: all).
 * A ZeRO-1 optimizer's state is not downloaded: the caller has gathered it
 * into m_host / v_host (dp_gather_state). The saved path goes to out. The
 * save's outcome is the same on every rank; a pruning failure is the
 * leader's alone. */
int train_ckpt_save(const char *dir, int keep, const struct train_ckpt_io *io,
                    const struct gpt2 *m, const struct optim *o,
                    const struct tokenizer *tok, float *params_host, float *m_host,
                    float *v_host, struct ckpt_train_state *st, char *out,
                    size_t outlen);

#endif
