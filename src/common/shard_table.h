/* src/common/shard_table.h — the tensor-parallel shard layout of the
 * parameter table.
 *
 * Why a module of its own: model.* describes the model (one logical table);
 * this file describes how one TP rank holds it. TP training, the optimizer on
 * a rank, single-writer checkpoints (gather) and parallel HDF5 checkpoints
 * (per-rank hyperslabs of the full-shape datasets) all need the same answer
 * to "which elements of the full tensor does this rank hold, and where in its
 * buffer": they get it from here, as a list of hyperslabs per tensor, so a
 * memory copy (shard_extract / shard_insert) and an HDF5 selection can never
 * disagree. (Not shard.h: that is token shards.)
 *
 * Layout (docs/distributed.md, "Tensor-parallel shards"), for tp_size T and
 * tp_rank r:
 *   - TP_REPLICATED: one slab, the whole tensor.
 *   - TP_AXIS0 with tp_blocks b (c_attn: b = 3, q|k|v): each of the b blocks
 *     of shape[0]/b rows is split evenly; the rank holds rows
 *     [r n, (r+1) n) of every block (n = shape[0]/b/T), so b slabs, stacked
 *     in block order in its buffer: local q|k|v with whole heads
 *     r*NH/T .. (r+1)*NH/T - 1.
 *   - TP_AXIS1 (row-parallel weights): columns [r n, (r+1) n), n = shape[1]/T.
 *   - wte (vocabulary-parallel): rows [vocab_start, vocab_start + vocab_local)
 *     of a balanced split of the TRUE vocabulary, no padding: the first
 *     V % T ranks hold one row more. The vocab-sharded cross-entropy and
 *     embedding ops take any (vocab_start, V) per rank, so there are no
 *     padding rows to initialise, mask out of the softmax or leave out of
 *     checkpoints.
 * In a rank's buffer a tensor's slabs follow each other, each a dense
 * row-major [count[0], count[1]] block: the local tensor is their
 * concatenation.
 */
#ifndef LLMPI_SHARD_TABLE_H
#define LLMPI_SHARD_TABLE_H

#include <stddef.h>

#include "model.h"

/* The most slabs a tensor is split into (c_attn's q|k|v). */
#define SHARD_MAX_SLABS 3

/* A dense 2-D block of the full tensor (1-D tensors: axis 1 has length 1):
 * rows start[0] .. start[0]+count[0]-1, columns start[1] .. start[1]+count[1]-1.
 * local_offset: where it begins inside the local tensor, in floats. These are
 * exactly HDF5's hyperslab start/count (stride 1, block 1) on the dataset of
 * the full logical shape. */
struct shard_slab {
    size_t start[2], count[2];
    size_t local_offset;
};

/* How a tensor's gradient is reconciled across the TP group after backward
 * (before or after the DP average; the two commute). */
enum shard_tp_grad {
    /* Sharded: each rank's gradient is the gradient of its own slice; no TP
     * communication. */
    SHARD_GRAD_LOCAL,
    /* Replicated: in this design (no sequence parallelism) every TP rank
     * already computes the same gradient, since the activation allreduces
     * make the replicated inputs identical. gpt2_backward broadcasts TP rank
     * 0's copy anyway (not an average: for a TP size that is not a power of
     * two, (g + g + g) / 3 need not round back to g), so the copies stay
     * bit-identical even where a reduction is not deterministic across
     * ranks. */
    SHARD_GRAD_TP_SYNC,
};

/* Per local tensor: its slabs and its gradient policy. */
struct shard_map {
    int nslabs;
    struct shard_slab slab[SHARD_MAX_SLABS];
    enum shard_tp_grad tp_grad;
    /* 1 when this rank adds the tensor's sum of squares to the global grad
     * norm (the sum over the TP group is then the full model's): every rank
     * for sharded tensors, only tp_rank 0 for replicated ones (counted once). */
    int norm_count;
};

struct shard_table {
    int tp_size, tp_rank;
    /* The local table: same entries, order, names, tp, tp_blocks, init and
     * weight_decay as the full table; shape/numel are the local ones, offset
     * is into one contiguous local buffer of local.total floats. Code that
     * walks a param_table (optimizer, clipping) walks this one unchanged. */
    struct param_table local;
    struct shard_map *map; /* [local.count] */
    /* Shorthands for the model code. */
    int vocab_start, vocab_local; /* wte rows held */
    int head_start, heads_local;  /* attention heads held */
    int mlp_start, mlp_local;     /* columns of the 4C MLP hidden layer held */
};

/* Check that `cfg` splits over tp_size ranks: tp_size >= 1, n_head divisible
 * by tp_size (whole heads per rank), 4 n_embd divisible by tp_size, and at
 * least one vocabulary row per rank (vocab_size >= tp_size; divisibility is
 * not needed). -1 with err_set() naming the field and both values. */
int shard_check(const struct gpt2_config *cfg, int tp_size);

/* Build rank tp_rank's table (allocates; free with shard_table_free). Runs
 * model_config_check and shard_check first; -1 with err_set() on failure. */
int shard_table_build(const struct gpt2_config *cfg, int tp_size, int tp_rank,
                      struct shard_table *st);
void shard_table_free(struct shard_table *st);

/* Copy this rank's elements of a full buffer (layout of `full`, full->total
 * floats) into its local buffer (st->local.total floats). -1 with err_set()
 * when `full` is not the table `st` was built from (entry count, names or
 * shapes differ). */
int shard_extract(const struct param_table *full, const float *full_buf,
                  const struct shard_table *st, float *local_buf);

/* The reverse: write this rank's local buffer into its elements of the full
 * buffer, leaving the other elements untouched. Inserting every rank's shard
 * rebuilds the full buffer (replicated tensors are written by each rank with
 * the same values). */
int shard_insert(const struct param_table *full, float *full_buf,
                 const struct shard_table *st, const float *local_buf);

#endif
