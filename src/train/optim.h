/* src/train/optim.h — optimizer state and step over the parameter table.
 *
 * The update math lives in the backend (ops->sgd_update / adam_update, one
 * fused call over the whole range); this module owns the state buffers, turns
 * the parameter table into weight-decay runs once (decay only where the
 * table says so: matrices and embeddings, not biases or layernorms) and
 * implements global-norm clipping.
 *
 * ZeRO-1 (src/train/dp.h): the state may cover only a range [lo, hi) of the
 * flat parameter buffer, a rank's shard. The runs intersect every tensor
 * with the range, so the per-tensor weight-decay rule holds even for a
 * tensor cut by a shard boundary. Unsharded: [0, table.total).
 */
#ifndef LLMPI_OPTIM_H
#define LLMPI_OPTIM_H

#include "gpt2.h"

enum optim_kind { OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW };

struct optim_config {
    enum optim_kind kind;
    float weight_decay;
    float momentum;          /* SGD */
    float beta1, beta2, eps; /* Adam, AdamW */
};

struct optim {
    struct optim_config cfg;
    const struct ops *ops;
    float *m, *v; /* first/second moments (SGD uses m as momentum), hi - lo
                     floats each: element i of the flat buffer is m[i - lo] */
    int t;        /* steps taken */
    size_t lo, hi; /* the range of the flat buffer this state updates; hi may
                      run past table.total (padding, never touched) */
    struct ops_decay_run *runs; /* host: weight decay of [lo, min(hi, total)),
                                   relative to lo (empty shard: nruns 0) */
    int nruns;
};

/* Parse "sgd", "adam", "adamw"; -1 + err_set otherwise. */
int optim_kind_parse(const char *name, enum optim_kind *kind);
const char *optim_kind_name(enum optim_kind kind);

int optim_create(struct optim *o, const struct optim_config *cfg,
                 const struct gpt2 *model);
/* State for the range [lo, hi) only (a ZeRO-1 shard); lo <= table.total. */
int optim_create_range(struct optim *o, const struct optim_config *cfg,
                       const struct gpt2 *model, size_t lo, size_t hi);
void optim_destroy(struct optim *o);

/* Sum of squares of the gradients in [lo, hi) of the flat buffer (hi is
 * clamped to table.total), in double.
 * Under TP, replicated tensors count on TP rank 0 only (shard_map's
 * norm_count), so the sum over the TP group counts each parameter once. */
double optim_grad_sumsq(const struct gpt2 *model, size_t lo, size_t hi);

/* Global L2 norm of all gradients (one rank, no TP); when clip > 0 and the norm exceeds it,
 * scales every gradient by clip / norm. Returns the norm before clipping. */
double optim_clip_grads(struct gpt2 *model, double clip);

/* One update of every parameter in the state's range with learning rate lr
 * (gradients read from model->grads at the same flat offsets). */
void optim_step(struct optim *o, struct gpt2 *model, float lr);

#endif
