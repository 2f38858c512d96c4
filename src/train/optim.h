/* src/train/optim.h — optimizer state and step over the parameter table.
 *
 * The update math lives in the backend (ops->sgd_update / adam_update); this
 * module owns the state buffers, walks the table tensor by tensor (weight
 * decay only where the table says so: matrices and embeddings, not biases or
 * layernorms) and implements global-norm clipping.
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
    float *m, *v; /* first/second moments (SGD uses m as momentum) */
    int t;        /* steps taken */
};

/* Parse "sgd", "adam", "adamw"; -1 + err_set otherwise. */
int optim_kind_parse(const char *name, enum optim_kind *kind);
const char *optim_kind_name(enum optim_kind kind);

int optim_create(struct optim *o, const struct optim_config *cfg,
                 const struct gpt2 *model);
void optim_destroy(struct optim *o);

/* Global L2 norm of all gradients; when clip > 0 and the norm exceeds it,
 * scales every gradient by clip / norm. Returns the norm before clipping. */
double optim_clip_grads(struct gpt2 *model, double clip);

/* One update of every parameter with learning rate lr. */
void optim_step(struct optim *o, struct gpt2 *model, float lr);

#endif
