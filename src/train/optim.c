/* src/train/optim.c — optimizer state, the weight-decay runs of its range
 * and global-norm clipping. */
#include <math.h>
#include <stdlib.h>
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

/* The part of tensor p inside [lo, min(hi, total)): *a..*b (absolute). */
static int clip_range(const struct param_info *p, size_t lo, size_t hi, size_t *a,
                      size_t *b) {
    *a = p->offset > lo ? p->offset : lo;
    *b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
    return *a < *b;
}

/* The weight-decay runs of [lo, hi), relative to lo (ops.h's ops_decay_run):
 * consecutive tensors with the same decay merge, so one fused update covers
 * the whole range. Elements past table.total (ZeRO-1 padding) are never
 * updated: the last run ends at min(hi, total). */
static int build_runs(struct optim *o, const struct gpt2 *model) {
    o->runs = malloc(((size_t)model->table.count + 1) * sizeof *o->runs);
    if (!o->runs) return -1;
    o->nruns = 0;
    for (int i = 0; i < model->table.count; i++) {
        const struct param_info *p = &model->table.p[i];
        size_t a, b;
        if (!clip_range(p, o->lo, o->hi, &a, &b)) continue;
        float wd = p->weight_decay ? o->cfg.weight_decay : 0.0f;
        if (o->nruns > 0 && o->runs[o->nruns - 1].wd == wd)
            o->runs[o->nruns - 1].end = b - o->lo;
        else
            o->runs[o->nruns++] = (struct ops_decay_run){b - o->lo, wd};
    }
    return 0;
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
    if (build_runs(o, model)) {
        optim_destroy(o);
        return err_set("out of memory for the optimizer's weight-decay table");
    }
    return 0;
}

void optim_destroy(struct optim *o) {
    if (!o->ops) return;
    if (o->m) o->ops->free(o->m);
    if (o->v) o->ops->free(o->v);
    free(o->runs);
    memset(o, 0, sizeof *o);
}

/* Sum of squares of the counted gradients in [lo, hi): neighbouring counted
 * tensors are one range, so without TP this is a single backend call (each
 * is a reduction plus a copy to the host, i.e. a GPU sync point). */
double optim_grad_sumsq(const struct gpt2 *model, size_t lo, size_t hi) {
    double sumsq = 0.0;
    size_t run_a = 0, run_b = 0; /* the pending range of counted tensors */
    for (int i = 0; i < model->table.count; i++) {
        size_t a, b;
        if (!model->shard.map[i].norm_count) continue; /* a replicated copy */
        if (!clip_range(&model->table.p[i], lo, hi, &a, &b)) continue;
        if (a != run_b) {
            if (run_b > run_a) sumsq += model->ops->sumsq(model->grads + run_a, run_b - run_a);
            run_a = a;
        }
        run_b = b;
    }
    if (run_b > run_a) sumsq += model->ops->sumsq(model->grads + run_a, run_b - run_a);
    return sumsq;
}

double optim_clip_grads(struct gpt2 *model, double clip) {
    double norm = sqrt(optim_grad_sumsq(model, 0, model->table.total));
    if (clip > 0.0 && norm > clip)
        model->ops->scale(model->grads, model->table.total, (float)(clip / norm));
    return norm;
}

void optim_step(struct optim *o, struct gpt2 *model, float lr) {
    const struct optim_config *c = &o->cfg;
    o->t += 1;
    if (o->nruns == 0) return; /* an empty shard */
    size_t n = o->runs[o->nruns - 1].end;
    float *w = model->params + o->lo;
    const float *g = model->grads + o->lo;
    if (c->kind == OPTIM_SGD)
        o->ops->sgd_update(w, g, o->m, n, o->runs, o->nruns, lr, c->momentum);
    else
        o->ops->adam_update(w, g, o->m, o->v, n, o->runs, o->nruns, lr, c->beta1, c->beta2,
                            c->eps, o->t, c->kind == OPTIM_ADAMW);
}
