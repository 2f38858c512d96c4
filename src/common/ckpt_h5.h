/* src/common/ckpt_h5.h — INTERNAL to the checkpoint module (ckpt_h5.c,
 * ckpt_write.c, ckpt_read.c, ckpt_shard_write.c, ckpt_shard_read.c). Nothing
 * outside those files includes it; the public interfaces are ckpt.h and ckpt_shard.h.
 *
 * What the writer and the reader share: the format's name and version, HDF5
 * error quieting and reporting, id closing, the file-access property list,
 * group create/open, and the list of known optimizers. Below those, the
 * stages of a save (ckpt_write.c) and the checked opens of the reader
 * (ckpt_read.c) that the parallel save and the per-rank load
 * (ckpt_shard_write.c, ckpt_shard_read.c) reuse. The names carry a ckpt_ prefix because they are no longer static
 * to one file.
 */
#ifndef LLMPI_CKPT_H5_H
#define LLMPI_CKPT_H5_H

#include <hdf5.h>

#include "ckpt.h"
#include "shard_table.h"

/* The root attributes 'format' and 'format_version' of every checkpoint. */
#define CKPT_FORMAT "llmpi-checkpoint"
#define CKPT_VERSION 1

/* Switch off HDF5's default printing of its error stack (we report errors
 * ourselves through err_set). */
void ckpt_h5_quiet(void);

/* The innermost message of the current HDF5 error stack ("" if none). */
const char *ckpt_h5_detail(char buf[200]);

/* err_set("FILE: WHAT (HDF5 detail)"); returns -1. */
int ckpt_h5_fail(const char *file, const char *what);

/* Close any HDF5 id by its type; ids < 0 are ignored. */
void ckpt_h5_close(hid_t id);

/* File access properties: default driver, no file locking (see ckpt_h5.c).
 * -1 on failure (callers then use H5P_DEFAULT). */
hid_t ckpt_h5_file_access(void);

/* Create / open group `name` under loc; -1 with err_set naming the file. */
hid_t ckpt_h5_group_new(const char *file, hid_t loc, const char *name);
hid_t ckpt_h5_group_open(const char *file, hid_t fid, const char *name);

/* 1 for the optimizer kinds a checkpoint may hold: sgd, adam, adamw. */
int ckpt_optimizer_known(const char *k);

/* ---- the stages of a save (ckpt_write.c) --------------------------------- */

/* The names a save of `path` uses: tmp = DIR/.NAME.tmp, dir = DIR ("." or
 * "/" where path has no directory part). -1 + err_set when path ends in '/'
 * or memory runs out. */
struct ckpt_names {
    char *tmp, *dir;
};
int ckpt_names_make(const char *path, struct ckpt_names *n);
void ckpt_names_free(struct ckpt_names *n);

/* The checks ckpt_save makes before touching the disk (config, tokenizer,
 * optimizer kind, moment buffers present): -1 + err_set naming path. */
int ckpt_save_check(const char *path, const struct gpt2_config *cfg,
                    const struct tokenizer *tok, const struct ckpt_train_state *train);

/* Create n->tmp (truncating) and write the whole layout: format, config,
 * tokenizer, /params, and with train /train, /optimizer, /optimizer/m and,
 * when train->v_state is set, /optimizer/v. Every tensor dataset is
 * contiguous with its storage allocated at creation and never filled
 * (H5D_ALLOC_TIME_EARLY, H5D_FILL_TIME_NEVER), so later hyperslab writes
 * change no metadata. data = 1: write params and the moments into them;
 * data = 0: leave them for ckpt_shard_write.c's parallel writes (params and the
 * moment pointers are then not read). complete = 1: write the root
 * 'complete' attribute last. Flushes and closes the file; on failure
 * removes it. -1 + err_set naming the file. */
int ckpt_write_tmp(const char *path, const struct ckpt_names *n,
                   const struct gpt2_config *cfg, const float *params,
                   const struct tokenizer *tok, const struct ckpt_train_state *train,
                   int data, int complete);

/* Open n->tmp (serially) and write the root 'complete' attribute; flush and
 * close. On failure removes the file. */
int ckpt_mark_complete(const struct ckpt_names *n);

/* fsync n->tmp, rename it to path, fsync n->dir. Removes n->tmp when the
 * rename did not happen. */
int ckpt_publish(const char *path, const struct ckpt_names *n);

/* ---- checked reading (ckpt_read.c) ------------------------------------- */

/* Open `path` read-only (serial driver) as a complete llmpi checkpoint, or
 * -1 + err_set with the reason (missing, corrupt, foreign, incomplete). */
hid_t ckpt_h5_open_complete(const char *path);

/* The /config group of an open checkpoint, validated (model_config_check). */
int ckpt_h5_read_config(const char *path, hid_t fid, struct gpt2_config *cfg);

/* The /tokenizer group: a new tokenizer, or NULL + err_set naming the file. */
struct tokenizer *ckpt_h5_read_tokenizer(const char *path, hid_t fid);

/* /train and /optimizer into *s (zeroed by the caller), checked; with t
 * non-NULL also the moments (malloc'd, t->total floats each), without them
 * m_state and v_state stay NULL. */
int ckpt_h5_read_train(const char *f, hid_t fid, const struct param_table *t,
                       struct ckpt_train_state *s);

/* Open dataset `name` (full path) and check that it is floating point of
 * table tensor p's full shape: the dataset id, or -1 + err_set naming the
 * file, the dataset and both shapes. */
hid_t ckpt_h5_tensor_open(const char *file, hid_t fid, const char *name,
                          const struct param_info *p);

/* The config fields in struct gpt2_config order (vocab_size, max_seq,
 * n_layer, n_head, n_embd), for messages about a config as an int[5]. */
extern const char *const ckpt_cfg_field[5];

/* Select shard map m's slabs (OR-ed) on the full-shape file space fs of an
 * ndim dataset; 0 when the selection has exactly numel (the local tensor's)
 * elements, -1 otherwise. */
int ckpt_h5_select_slabs(hid_t fs, const struct shard_map *m, int ndim, size_t numel);

/* 1 when shard tables a and b describe the same local layout of the same
 * tensors (names, local shapes and offsets, slabs); else 0 and *bad is the
 * first tensor that differs. */
int ckpt_shard_same(const struct shard_table *a, const struct shard_table *b, int *bad);

#endif
