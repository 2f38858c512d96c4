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
    return optim_create_range(o, cfg, model, 0, model->table.total);
}

int optim_create_range(struct optim *o, const struct optim_config *cfg,
                       const struct gpt2 *model, size_t lo, size_t hi) {
    memset(o, 0, sizeof *o);
    if (lo > hi || lo > model->table.total)
        return err_set("optimizer range [%zu, %zu) outside %zu parameters", lo, hi,
                       model->table.total);
    o->cfg = *cfg;
    o->ops = model->ops;
    o->lo = lo;
    o->hi = hi;
    size_t bytes = (hi - lo) * sizeof(float);
    if (bytes == 0) bytes = sizeof(float); /* an empty shard still gets a buffer */
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

/* The part of tensor p inside [lo, min(hi, total)): *a..*b (absolute). */
static int clip_range(const struct param_info *p, size_t lo, size_t hi, size_t *a,
                      size_t *b) {
    *a = p->offset > lo ? p->offset : lo;
    *b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
    return *a < *b;
}

double optim_grad_sumsq(const struct gpt2 *model, size_t lo, size_t hi) {
    double sumsq = 0.0;
    for (int i = 0; i < model->table.count; i++) {
        size_t a, b;
        if (!model->shard.map[i].norm_count) continue; /* a replicated copy */
        if (clip_range(&model->table.p[i], lo, hi, &a, &b))
            sumsq += model->ops->sumsq(model->grads + a, b - a);
    }
    return sumsq;
}

double optim_clip_grads(struct gpt2 *model, double clip) {
    const struct ops *ops = model->ops;
    double sumsq = 0.0;
    for (int i = 0; i < model->table.count; i++) {
        const struct param_info *p = &model->table.p[i];
        if (!model->shard.map[i].norm_count) continue; /* a replicated copy */
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
        size_t a, b; /* the piece of this tensor in the state's range */
        if (!clip_range(p, o->lo, o->hi, &a, &b)) continue;
        float wd = p->weight_decay ? c->weight_decay : 0.0f;
        float *w = model->params + a;
        const float *g = model->grads + a;
        float *m = o->m + (a - o->lo);
        if (c->kind == OPTIM_SGD)
            o->ops->sgd_update(w, g, m, b - a, lr, c->momentum, wd);
        else
            o->ops->adam_update(w, g, m, o->v + (a - o->lo), b - a, lr, c->beta1,
                                c->beta2, c->eps, wd, o->t, c->kind == OPTIM_ADAMW);
    }
}
