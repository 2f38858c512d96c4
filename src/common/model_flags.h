/* src/common/model_flags.h — the model-shape flags shared by `train`,
 * `bench train`, `bench generate` and `bench serve`: --model PRESET and its
 * overrides. */
#ifndef LLMPI_MODEL_FLAGS_H
#define LLMPI_MODEL_FLAGS_H

#include "model.h"

struct model_flags {
    const char *preset;
    int layers, heads, width, context, vocab; /* 0 = preset's value */
};

#define MODEL_FLAGS_HELP                                                                 \
    "  --model PRESET       tiny, gpt2-mini, gpt2, gpt2-medium, gpt2-large,\n"           \
    "                       gpt2-xl (default gpt2-mini)\n"                               \
    "  --layers N --heads N --width N --context N --vocab N\n"                           \
    "                       override the preset's shape\n"

/* If argv[*i] is a model flag, consume it (and its value): 1. Not a model
 * flag: 0. Bad value: -1 + err_set. */
int model_flags_parse(struct model_flags *f, int argc, char **argv, int *i);

/* The preset with overrides applied and checked. default_vocab replaces the
 * preset's vocabulary unless --vocab was given (byte-level data: 256). */
int model_flags_resolve(const struct model_flags *f, int default_vocab,
                        struct gpt2_config *cfg);

/* 1 when a shape override (--layers --heads --width --context --vocab) was
 * given: a checkpoint fixes the shape, so those cannot go with --ckpt. */
int model_flags_any_shape(const struct model_flags *f);

#endif
