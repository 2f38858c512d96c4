/* src/train/optim.c — optimizer state and the per-tensor update walk. */
#include <math.h>
#include <string.h>

#include "err.h"
#include "optim.h"

int optim_kind_parse(const char *name, enum optim_kind *kind) {
    if (strcmp(name, "sgd") == 0)
        *kind = OPTIM_SGD;
    else if (strcmp(name, "adam") == 0)
        *kind = OPTIM_ADAM;
    else if (strcmp(name, "adamw") == 0)
        *kind = OPTIM_ADAMW;
    else
        return err_set("--optimizer: unknown '%s' (sgd, adam or adamw)", name);
    return 0;
}

const char *optim_kind_name(enum optim_kind kind) {
    switch (kind) {
    case OPTIM_SGD:
        return "sgd";
    case OPTIM_ADAM:
        return "adam";
    case OPTIM_ADAMW:
        return "adamw";
    }
    return "?";
}

int optim_create(struct optim *o, const struct optim_config *cfg,
                 const struct gpt2 *model) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->ops = model->ops;
    size_t bytes = model->table.total * sizeof(float);
    o->m = o->ops->alloc(bytes);
    if (cfg->kind != OPTIM_SGD) o->v = o->ops->alloc(bytes);
    if (!o->m || (cfg->kind != OPTIM_SGD && !o->v)) {
        optim_destroy(o);
        return err_set("out of memory for optimizer state (%zu parameters)",
                       model->table.total);
    }
    o->ops->zero(o->m, bytes);
    if (o->v) o->ops->zero(o->v, bytes);
    return 0;
}

void optim_destroy(struct optim *o) {
    if (!o->ops) return;
    if (o->m) o->ops->free(o->m);
    if (o->v) o->ops->free(o->v);
    memset(o, 0, sizeof *o);
}

double optim_clip_grads(struct gpt2 *model, double clip) {
    const struct ops *ops = model->ops;
    double sumsq = 0.0;
    for (int i = 0; i < model->table.count; i++) {
        const struct param_info *p = &model->table.p[i];
        sumsq += ops->sumsq(model->grads + p->offset, p->numel);
    }
    double norm = sqrt(sumsq);
    if (clip > 0.0 && norm > clip)
        ops->scale(model->grads, model->table.total, (float)(clip / norm));
    return norm;
}

void optim_step(struct optim *o, struct gpt2 *model, float lr) {
    const struct optim_config *c = &o->cfg;
    o->t += 1;
    for (int i = 0; i < model->table.count; i++) {
        const struct param_info *p = &model->table.p[i];
        float wd = p->weight_decay ? c->weight_decay : 0.0f;
        float *w = model->params + p->offset;
        const float *g = model->grads + p->offset;
        float *m = o->m + p->offset;
        if (c->kind == OPTIM_SGD)
            o->ops->sgd_update(w, g, m, p->numel, lr, c->momentum, wd);
        else
            o->ops->adam_update(w, g, m, o->v + p->offset, p->numel, lr, c->beta1,
                                c->beta2, c->eps, wd, o->t, c->kind == OPTIM_ADAMW);
    }
}
