/* src/common/model.c — GPT-2 presets and the parameter table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"
#include "rng.h"

struct preset {
    const char *name;
    struct gpt2_config cfg;
};

/* vocab 50257 is GPT-2's BPE; byte-level training overrides it with 256. */
static const struct preset presets[] = {
    {"tiny", {256, 64, 2, 4, 32}},
    {"gpt2-mini", {50257, 1024, 6, 6, 384}},
    {"gpt2", {50257, 1024, 12, 12, 768}},
    {"gpt2-medium", {50257, 1024, 24, 16, 1024}},
    {"gpt2-large", {50257, 1024, 36, 20, 1280}},
    {"gpt2-xl", {50257, 1024, 48, 25, 1600}},
};
#define NPRESETS (int)(sizeof presets / sizeof presets[0])

const char *model_preset_names(void) {
    return "tiny, gpt2-mini, gpt2, gpt2-medium, gpt2-large, gpt2-xl";
}

int model_preset(const char *name, struct gpt2_config *cfg) {
    for (int i = 0; i < NPRESETS; i++) {
        if (strcmp(presets[i].name, name) == 0) {
            *cfg = presets[i].cfg;
            return 0;
        }
    }
    return err_set("unknown model preset '%s' (known: %s)", name, model_preset_names());
}

int model_config_check(const struct gpt2_config *c) {
    if (c->vocab_size < 1)
        return err_set("model: vocab size must be >= 1 (got %d)", c->vocab_size);
    if (c->max_seq < 1)
        return err_set("model: context length must be >= 1 (got %d)", c->max_seq);
    if (c->n_layer < 1) return err_set("model: layers must be >= 1 (got %d)", c->n_layer);
    if (c->n_head < 1) return err_set("model: heads must be >= 1 (got %d)", c->n_head);
    if (c->n_embd < 1) return err_set("model: width must be >= 1 (got %d)", c->n_embd);
    if (c->n_embd % c->n_head != 0)
        return err_set("model: width %d is not divisible by heads %d", c->n_embd,
                       c->n_head);
    return 0;
}

static void add(struct param_table *t, const char *name, int d0, int d1, enum tp_split tp,
                int tp_blocks, enum param_init init) {
    struct param_info *p = &t->p[t->count++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = d1 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1 ? d1 : 1;
    p->tp = tp;
    p->tp_blocks = tp_blocks;
    p->init = init;
    p->weight_decay = d1 ? 1 : 0;
    p->numel = (size_t)d0 * (d1 ? d1 : 1);
    p->offset = t->total;
    t->total += p->numel;
}

int param_table_build(const struct gpt2_config *c, struct param_table *t) {
    if (model_config_check(c)) return -1;
    const int C = c->n_embd, L = c->n_layer;
    memset(t, 0, sizeof *t);
    t->p = calloc((size_t)(4 + L * LP_COUNT), sizeof *t->p);
    if (!t->p) return err_set("out of memory building the parameter table");
    add(t, "wte", c->vocab_size, C, TP_AXIS0, 1, INIT_NORMAL);
    add(t, "wpe", c->max_seq, C, TP_REPLICATED, 1, INIT_NORMAL);
    for (int l = 0; l < L; l++) {
        char n[48];
#define NAME(s) (snprintf(n, sizeof n, "h.%d.%s", l, s), n)
        add(t, NAME("ln_1.weight"), C, 0, TP_REPLICATED, 1, INIT_ONES);
        add(t, NAME("ln_1.bias"), C, 0, TP_REPLICATED, 1, INIT_ZEROS);
        add(t, NAME("attn.c_attn.weight"), 3 * C, C, TP_AXIS0, 3, INIT_NORMAL);
        add(t, NAME("attn.c_attn.bias"), 3 * C, 0, TP_AXIS0, 3, INIT_ZEROS);
        add(t, NAME("attn.c_proj.weight"), C, C, TP_AXIS1, 1, INIT_NORMAL_RESID);
        add(t, NAME("attn.c_proj.bias"), C, 0, TP_REPLICATED, 1, INIT_ZEROS);
        add(t, NAME("ln_2.weight"), C, 0, TP_REPLICATED, 1, INIT_ONES);
        add(t, NAME("ln_2.bias"), C, 0, TP_REPLICATED, 1, INIT_ZEROS);
        add(t, NAME("mlp.c_fc.weight"), 4 * C, C, TP_AXIS0, 1, INIT_NORMAL);
        add(t, NAME("mlp.c_fc.bias"), 4 * C, 0, TP_AXIS0, 1, INIT_ZEROS);
        add(t, NAME("mlp.c_proj.weight"), C, 4 * C, TP_AXIS1, 1, INIT_NORMAL_RESID);
        add(t, NAME("mlp.c_proj.bias"), C, 0, TP_REPLICATED, 1, INIT_ZEROS);
#undef NAME
    }
    add(t, "ln_f.weight", C, 0, TP_REPLICATED, 1, INIT_ONES);
    add(t, "ln_f.bias", C, 0, TP_REPLICATED, 1, INIT_ZEROS);
    return 0;
}

void param_table_free(struct param_table *t) {
    free(t->p);
    memset(t, 0, sizeof *t);
}

int param_table_find(const struct param_table *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->p[i].name, name) == 0) return i;
    return -1;
}

void param_init(const struct param_table *t, const struct gpt2_config *cfg, float *w,
                unsigned long long seed) {
    struct rng r;
    rng_seed(&r, seed);
    const double std = 0.02;
    const double std_resid = 0.02 / sqrt(2.0 * cfg->n_layer);
    for (int i = 0; i < t->count; i++) {
        const struct param_info *p = &t->p[i];
        float *x = w + p->offset;
        for (size_t j = 0; j < p->numel; j++) {
            switch (p->init) {
            case INIT_NORMAL:
                x[j] = (float)(std * rng_normal(&r));
                break;
            case INIT_NORMAL_RESID:
                x[j] = (float)(std_resid * rng_normal(&r));
                break;
            case INIT_ZEROS:
                x[j] = 0.0f;
                break;
            case INIT_ONES:
                x[j] = 1.0f;
                break;
            }
        }
    }
}

size_t model_num_params(const struct param_table *t) { return t->total; }

size_t model_num_flop_params(const struct param_table *t) {
    return t->total - t->p[PT_WPE].numel;
}
