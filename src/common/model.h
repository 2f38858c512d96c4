/* src/common/model.h — the GPT-2 architecture and its parameter table.
 *
 * The table is the single description of the model's parameters: name,
 * logical (full, unsharded) shape, the axis tensor parallelism splits, the
 * initialisation rule and whether weight decay applies. Checkpoints,
 * sharding, the optimizer and the converter read it; nothing else hard-codes
 * a parameter name or shape.
 *
 * Architecture: learned token (wte) and position (wpe) embeddings, n_layer
 * pre-LN blocks (x += attn(ln_1(x)); x += mlp(ln_2(x))), a final ln_f and an
 * LM head tied to wte. Linear weights are [out, in].
 */
#ifndef LLMPI_MODEL_H
#define LLMPI_MODEL_H

#include <stddef.h>

struct gpt2_config {
    int vocab_size; /* V */
    int max_seq;    /* context length, rows of wpe */
    int n_layer;    /* L */
    int n_head;     /* NH */
    int n_embd;     /* C */
};

enum param_init {
    INIT_NORMAL,       /* N(0, 0.02) */
    INIT_NORMAL_RESID, /* N(0, 0.02 / sqrt(2 L)): projections into the residual */
    INIT_ZEROS,
    INIT_ONES,
};

/* How tensor parallelism splits a parameter across the TP group. */
enum tp_split {
    TP_REPLICATED, /* every TP rank holds all of it (layernorms, wpe, row-parallel biases)
                    */
    TP_AXIS0,      /* rows split: vocab-parallel wte, column-parallel weights/biases */
    TP_AXIS1,      /* columns split: row-parallel weights (their input is sharded) */
};

struct param_info {
    char name[48];
    int ndim;     /* 1 or 2 */
    int shape[2]; /* logical shape; shape[1] = 1 when ndim = 1 */
    enum tp_split tp;
    /* Column-parallel c_attn packs q|k|v along axis 0: each of the tp_blocks
     * blocks is split separately so a rank gets whole heads of q, k and v. */
    int tp_blocks;
    enum param_init init;
    int weight_decay; /* 1 for matrices and embeddings, 0 for biases and LN */
    size_t numel;
    size_t offset; /* in floats, into one contiguous parameter buffer */
};

/* Per-layer tensors, in table order. */
enum layer_param {
    LP_LN1_W,
    LP_LN1_B,
    LP_QKV_W,
    LP_QKV_B,
    LP_ATTPROJ_W,
    LP_ATTPROJ_B,
    LP_LN2_W,
    LP_LN2_B,
    LP_FC_W,
    LP_FC_B,
    LP_FCPROJ_W,
    LP_FCPROJ_B,
    LP_COUNT
};

struct param_table {
    int count;
    struct param_info *p;
    size_t total; /* floats */
};

/* Index of a tensor in the table. */
#define PT_WTE 0
#define PT_WPE 1
#define PT_LAYER(l, k) (2 + (l)*LP_COUNT + (k))
#define PT_LNF_W(L) (2 + (L)*LP_COUNT)
#define PT_LNF_B(L) (3 + (L)*LP_COUNT)

/* Fill *cfg with a named preset (tiny, gpt2-mini, gpt2, gpt2-medium,
 * gpt2-large, gpt2-xl). -1 with err_set() for an unknown name. */
int model_preset(const char *name, struct gpt2_config *cfg);
/* A comma-separated list of the preset names, for help and error messages. */
const char *model_preset_names(void);
/* Check that a configuration is usable (positive sizes, width divisible by
 * heads). -1 with err_set() naming the field otherwise. */
int model_config_check(const struct gpt2_config *cfg);

/* Build the table (allocates p; free with param_table_free). */
int param_table_build(const struct gpt2_config *cfg, struct param_table *t);
void param_table_free(struct param_table *t);
/* Index of a tensor by name, -1 if absent. */
int param_table_find(const struct param_table *t, const char *name);

/* Initialise parameters on the host buffer (t->total floats) following the
 * table's rules with a deterministic RNG. */
void param_init(const struct param_table *t, const struct gpt2_config *cfg,
                float *host_params, unsigned long long seed);

/* Parameter counts: all, and those that do FLOPs per token (all but wpe). */
size_t model_num_params(const struct param_table *t);
size_t model_num_flop_params(const struct param_table *t);

#endif
