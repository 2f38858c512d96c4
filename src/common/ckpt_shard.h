/* src/common/ckpt_shard.h — checkpoints written and read per tensor-parallel
 * rank with parallel HDF5 (MPI-IO).
 *
 * The file is the one ckpt_save writes (docs/checkpoints.md): every tensor at
 * its full logical shape. Each TP rank writes and reads only its hyperslabs
 * of each dataset, as its shard table (shard_table.h) lists them, so a
 * checkpoint saved with one DP x TP layout loads with any other whose TP size
 * shard_check accepts (it divides the heads; the vocabulary needs no
 * divisibility). ckpt_load_model / ckpt_load_train / ckpt_is_complete /
 * h5dump read the files unchanged, and ckpt_load_shard reads ckpt_save's.
 * Design and atomicity: docs/checkpoints.md, "Parallel checkpoints".
 */
#ifndef LLMPI_CKPT_SHARD_H
#define LLMPI_CKPT_SHARD_H

#include <mpi.h>

#include "ckpt.h"
#include "shard_table.h"

/* Write a checkpoint of a model held in shards. Collective over comm: every
 * rank of comm calls it, and every rank returns the same 0 or -1 with the
 * same err_msg() (the lowest failing rank's; a failure on one rank never
 * leaves the others waiting).
 *   writer: 1 on the ranks whose shards go to the file, exactly one per TP
 *     rank (the DP-rank-0 replica); 0 on the others, which take part with
 *     empty selections (their buffers are not read and may be NULL).
 *     Replicated tensors are written by the writer of TP rank 0.
 *   cfg, st: the model and this rank's shard table (every rank the same
 *     cfg and TP size).
 *   local_params: st->local.total floats in st->local layout.
 *   tok: the tokenizer; rank 0's is written (others may pass NULL).
 *   train: NULL for a model-only file; otherwise as for ckpt_save, except
 *     that m_state / v_state are this rank's LOCAL buffers (st->local
 *     layout). Rank 0's scalars are written, and rank 0's v_state decides
 *     whether /optimizer/v exists (writers must then all have one).
 * Atomic like ckpt_save: rank 0 creates DIR/.NAME.tmp with all metadata,
 * every rank writes its slabs, rank 0 sets 'complete', fsyncs and renames.
 * Nothing is left behind on failure. MPI must be initialised. */
int ckpt_save_sharded(const char *path, MPI_Comm comm, int writer,
                      const struct gpt2_config *cfg, const struct shard_table *st,
                      const float *local_params, const struct tokenizer *tok,
                      const struct ckpt_train_state *train);

/* Read this rank's shard of a checkpoint (from either writer): the
 * parameters into local_params and, when non-NULL, the optimizer moments
 * (/optimizer/m into local_m, /optimizer/v into local_v), each
 * st->local.total floats. Not collective and needs no MPI: opens the file
 * read-only and reads only the hyperslabs of st. The file's config must be
 * the one st was built from; otherwise -1 with a message naming the file and
 * the field (or the TP size the file's model does not split into). */
int ckpt_load_shard(const char *path, const struct shard_table *st, float *local_params,
                    float *local_m, float *local_v);

/* What a sharded resume needs beside ckpt_load_shard, without reading any
 * full tensor: the config, the tokenizer (tok may be NULL to skip it; free
 * with tokenizer_free) and, when train is non-NULL, the training scalars
 * (-1 for a model-only file, as ckpt_load_train); train->m_state and v_state
 * stay NULL, since ckpt_load_shard reads this rank's moments. Not
 * collective. */
int ckpt_load_shard_meta(const char *path, struct gpt2_config *cfg,
                         struct tokenizer **tok, struct ckpt_train_state *train);

#endif
