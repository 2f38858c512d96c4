/* src/common/ckpt.h — HDF5 checkpoints.
 *
 * One self-contained file per save: model config (attributes), tokenizer,
 * every parameter at its full logical shape under its table name, and, for
 * training checkpoints, the optimizer state, step, RNG state and data
 * position. Writes are atomic: DIR/.NAME.tmp, flush + fsync, rename, fsync
 * of the directory; a file is complete only when its "complete" attribute is
 * set, which is written last. Layout: docs/checkpoints.md.
 * Errors: -1 with err_set() naming the file and the field; nothing is
 * overwritten on failure. HDF5's own error printing is switched off.
 */
#ifndef LLMPI_CKPT_H
#define LLMPI_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "tokenizer.h"

/* The run settings that shape the numbers of a training run, recorded so a
 * resume can continue with them (and say when the command line differs). */
struct ckpt_hparams {
    double lr, min_lr_frac, weight_decay, momentum, beta1, beta2, eps, grad_clip;
    double val_fraction;
    int64_t warmup, batch, seq, eval_every, eval_batches;
};

/* Training state beside the parameters (absent in a model-only file). */
struct ckpt_train_state {
    int64_t step;               /* optimizer steps completed */
    int64_t total_steps;        /* the run's --steps (schedule length) */
    uint64_t seed;              /* the run's --seed */
    uint64_t rng[4];            /* the trainer's RNG state (struct rng) */
    uint64_t data_cursor;       /* token offset of the next training batch */
    uint64_t data_train_tokens; /* size of the training part it indexes */
    char optimizer[16];         /* "sgd", "adam", "adamw" */
    int64_t optim_t;            /* optimizer step count */
    struct ckpt_hparams hp;
    /* moment buffers in table layout (table.total floats each); m_state is
     * SGD's momentum or Adam's first moment, v_state Adam's second (NULL
     * for SGD). */
    float *m_state, *v_state;
};

/* Write a model (+ optional training state, train may be NULL) to `path`
 * atomically. params: table.total floats in table order (host memory). */
int ckpt_save(const char *path, const struct gpt2_config *cfg, const float *params,
              const struct tokenizer *tok, const struct ckpt_train_state *train);

/* Read a checkpoint's config only (cheap; checks that the file is a complete
 * llmpi checkpoint). */
int ckpt_read_config(const char *path, struct gpt2_config *cfg);

/* Read the model: *cfg, *params (malloc'd, table.total floats) and *tok
 * (may be NULL to skip; free with tokenizer_free). */
int ckpt_load_model(const char *path, struct gpt2_config *cfg, float **params,
                    struct tokenizer **tok);

/* Read the training state of a checkpoint whose config is *cfg (from
 * ckpt_read_config); m_state/v_state are malloc'd here. -1 with a clear
 * message when the file holds no training state. */
int ckpt_load_train(const char *path, const struct gpt2_config *cfg,
                    struct ckpt_train_state *train);
void ckpt_train_state_free(struct ckpt_train_state *train);

/* DIR/ckpt_<step, 8 digits>.h5 */
void ckpt_path_for_step(const char *dir, int64_t step, char *out, size_t outlen);
/* 1 when `path` opens as a complete llmpi checkpoint, 0 otherwise (a probe
 * for directory scans: the reason is not reported). */
int ckpt_is_complete(const char *path);
/* Newest complete checkpoint in dir into out: 0; 1 when there is none; -1 on
 * error (dir unreadable, out too small). Ignores temporary (.tmp) and
 * incomplete or unreadable files. */
int ckpt_find_latest(const char *dir, char *out, size_t outlen);
/* Keep the newest `keep` complete checkpoints in dir (keep <= 0: all), delete
 * older ones and temporary files left by interrupted saves of steps up to the
 * newest complete one. */
int ckpt_prune(const char *dir, int keep);

#endif
