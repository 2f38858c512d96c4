/* src/common/model_flags.c — --model and shape overrides. */
#include <string.h>

#include "args.h"
#include "err.h"
#include "model_flags.h"

int model_flags_parse(struct model_flags *f, int argc, char **argv, int *i) {
    const char *flag = argv[*i];
    int *target = NULL;
    if (strcmp(flag, "--model") == 0) {
        const char *v = args_value(argc, argv, i);
        if (!v) return -1;
        f->preset = v;
        return 1;
    }
    if (strcmp(flag, "--layers") == 0)
        target = &f->layers;
    else if (strcmp(flag, "--heads") == 0)
        target = &f->heads;
    else if (strcmp(flag, "--width") == 0)
        target = &f->width;
    else if (strcmp(flag, "--context") == 0)
        target = &f->context;
    else if (strcmp(flag, "--vocab") == 0)
        target = &f->vocab;
    else
        return 0;
    const char *v = args_value(argc, argv, i);
    if (!v || args_int(flag, v, 1, 1 << 20, target)) return -1;
    return 1;
}

int model_flags_any_shape(const struct model_flags *f) {
    return f->layers || f->heads || f->width || f->context || f->vocab;
}

int model_flags_resolve(const struct model_flags *f, int default_vocab,
                        struct gpt2_config *cfg) {
    if (model_preset(f->preset ? f->preset : "gpt2-mini", cfg)) return -1;
    if (default_vocab > 0) cfg->vocab_size = default_vocab;
    if (f->layers) cfg->n_layer = f->layers;
    if (f->heads) cfg->n_head = f->heads;
    if (f->width) cfg->n_embd = f->width;
    if (f->context) cfg->max_seq = f->context;
    if (f->vocab) cfg->vocab_size = f->vocab;
    return model_config_check(cfg);
}
