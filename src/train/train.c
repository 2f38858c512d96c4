/* src/train/train.c — `llmpi train`: single-rank training loop.
 *
 * Flow: parse flags -> load data -> build model on the chosen backend ->
 * for each step: batch, forward, backward, clip, lr schedule, update, log.
 * Every input is validated before any output file is created; the metrics
 * file is written as FILE.partial (flushed per step, so it can be tailed)
 * and renamed to FILE only when the run completes, so a failed run never
 * leaves a file that looks finished.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "backend.h"
#include "data.h"
#include "err.h"
#include "gpt2.h"
#include "model_flags.h"
#include "optim.h"
#include "schedule.h"
#include "subcommands.h"
#include "timer.h"

struct train_args {
    struct model_flags model;
    const char *data, *metrics, *device;
    int steps, batch, seq, warmup, eval_every, eval_batches, log_every, threads;
    int seed;
    float lr, min_lr_frac, weight_decay, grad_clip, val_fraction;
    int weight_decay_set;
    struct optim_config opt;
};

static const char *train_help =
    "usage: llmpi train --data PATH [options]\n"
    "\n"
    "Train a GPT-2 on one rank. The data file is read as bytes (vocabulary 256)\n"
    "until the BPE tokenizer lands; its last --val-fraction is held out.\n"
    "\n"
    "model:\n" MODEL_FLAGS_HELP /* */
    "run:\n"
    "  --data PATH          training text (required)\n"
    "  --steps N            optimizer steps (default 100)\n"
    "  --batch B            sequences per step (default 8)\n"
    "  --seq T              tokens per sequence, <= context (default 256)\n"
    "  --seed S             initialisation seed (default 1337)\n"
    "  --device D           cpu, cuda or auto (default cpu)\n"
    "  --threads N          CPU threads (default: OMP_NUM_THREADS or all cores)\n"
    "optimizer:\n"
    "  --optimizer O        sgd, adam or adamw (default adamw)\n"
    "  --lr X               peak learning rate (default 6e-4)\n"
    "  --min-lr-frac F      cosine floor as a fraction of --lr (default 0.1)\n"
    "  --warmup N           linear warmup steps (default 10)\n"
    "  --weight-decay X     on matrices and embeddings only (default 0.1 for\n"
    "                       adamw, 0 otherwise)\n"
    "  --momentum X         SGD momentum (default 0.9)\n"
    "  --beta1 X --beta2 X --eps X   Adam moments (default 0.9, 0.95, 1e-8)\n"
    "  --grad-clip X        global-norm clip, 0 disables (default 1.0)\n"
    "evaluation and output:\n"
    "  --val-fraction F     held-out tail of the data (default 0.1)\n"
    "  --eval-every N       validation loss every N steps and at the end\n"
    "                       (default 0: at the end only)\n"
    "  --eval-batches N     batches per validation (default 4)\n"
    "  --log-every N        progress line every N steps (default 10)\n"
    "  --metrics FILE       one JSON object per step (JSON lines)\n";

static int parse_args(int argc, char **argv, struct train_args *a) {
    memset(a, 0, sizeof *a);
    a->device = "cpu";
    a->steps = 100;
    a->batch = 8;
    a->seq = 256;
    a->warmup = 10;
    a->eval_batches = 4;
    a->log_every = 10;
    a->seed = 1337;
    a->lr = 6e-4f;
    a->min_lr_frac = 0.1f;
    a->grad_clip = 1.0f;
    a->val_fraction = 0.1f;
    a->opt = (struct optim_config){OPTIM_ADAMW, 0.0f, 0.9f, 0.9f, 0.95f, 1e-8f};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = NULL;
        int r = model_flags_parse(&a->model, argc, argv, &i);
        if (r < 0) return -1;
        if (r > 0) continue;
        /* one flag per line: the list reads best as a table */
        /* clang-format off */
#define VALUE() do { if (!(v = args_value(argc, argv, &i))) return -1; } while (0)
#define INT(dst, lo, hi) do { VALUE(); if (args_int(f, v, lo, hi, dst)) return -1; } while (0)
#define FLT(dst, lo, hi) do { VALUE(); if (args_float(f, v, lo, hi, dst)) return -1; } while (0)
        if (!strcmp(f, "--data")) { VALUE(); a->data = v; }
        else if (!strcmp(f, "--metrics")) { VALUE(); a->metrics = v; }
        else if (!strcmp(f, "--device")) { VALUE(); a->device = v; }
        else if (!strcmp(f, "--steps")) INT(&a->steps, 1, 1000000000);
        else if (!strcmp(f, "--batch")) INT(&a->batch, 1, 1 << 20);
        else if (!strcmp(f, "--seq")) INT(&a->seq, 1, 1 << 20);
        else if (!strcmp(f, "--warmup")) INT(&a->warmup, 0, 1000000000);
        else if (!strcmp(f, "--eval-every")) INT(&a->eval_every, 0, 1000000000);
        else if (!strcmp(f, "--eval-batches")) INT(&a->eval_batches, 0, 1 << 20);
        else if (!strcmp(f, "--log-every")) INT(&a->log_every, 1, 1000000000);
        else if (!strcmp(f, "--threads")) INT(&a->threads, 1, 4096);
        else if (!strcmp(f, "--seed")) INT(&a->seed, 0, 2147483647);
        else if (!strcmp(f, "--lr")) FLT(&a->lr, 0.0, 1e3);
        else if (!strcmp(f, "--min-lr-frac")) FLT(&a->min_lr_frac, 0.0, 1.0);
        else if (!strcmp(f, "--weight-decay")) { FLT(&a->opt.weight_decay, 0.0, 1e3); a->weight_decay_set = 1; }
        else if (!strcmp(f, "--momentum")) FLT(&a->opt.momentum, 0.0, 1.0);
        else if (!strcmp(f, "--beta1")) FLT(&a->opt.beta1, 0.0, 0.999999);
        else if (!strcmp(f, "--beta2")) FLT(&a->opt.beta2, 0.0, 0.999999);
        else if (!strcmp(f, "--eps")) FLT(&a->opt.eps, 0.0, 1.0);
        else if (!strcmp(f, "--grad-clip")) FLT(&a->grad_clip, 0.0, 1e9);
        else if (!strcmp(f, "--val-fraction")) FLT(&a->val_fraction, 0.0, 0.9);
        else if (!strcmp(f, "--optimizer")) { VALUE(); if (optim_kind_parse(v, &a->opt.kind)) return -1; }
        else return err_set("unknown option '%s' (see llmpi train --help)", f);
#undef VALUE
#undef INT
#undef FLT
        /* clang-format on */
    }
    if (!a->data) return err_set("--data PATH is required (see llmpi train --help)");
    if (!a->weight_decay_set)
        a->opt.weight_decay = a->opt.kind == OPTIM_ADAMW ? 0.1f : 0.0f;
    return 0;
}

/* Mean validation loss over eval_batches batches. */
static int evaluate(struct gpt2 *m, const struct token_data *d, int B, int T, int batches,
                    int32_t *in, int32_t *tg, double *out) {
    double sum = 0.0;
    for (int k = 0; k < batches; k++) {
        double loss;
        data_val_batch(d, (size_t)k, B, T, in, tg);
        if (gpt2_forward(m, in, tg, B, T, &loss)) return -1;
        sum += loss;
    }
    *out = sum / batches;
    return 0;
}

static int run(const struct train_args *a) {
    struct token_data data;
    struct gpt2_config cfg;
    struct gpt2 model = {0};
    struct optim opt = {0};
    float *host = NULL;
    int32_t *in = NULL, *tg = NULL;
    FILE *metrics = NULL;
    char partial[4096] = "";
    int rc = -1;

    if (data_load_bytes(a->data, a->val_fraction, &data)) return -1;
    if (model_flags_resolve(&a->model, data.vocab_size, &cfg)) goto out;
    if (cfg.vocab_size < data.vocab_size) {
        err_set("--vocab %d is smaller than the data's vocabulary %d", cfg.vocab_size,
                data.vocab_size);
        goto out;
    }
    if (a->seq > cfg.max_seq) {
        err_set("--seq %d exceeds the model's context %d (raise --context)", a->seq,
                cfg.max_seq);
        goto out;
    }
    if (data_check_fits(&data, a->data, a->batch, a->seq, a->eval_batches)) goto out;
    const struct ops *ops = backend_select(a->device);
    if (!ops) goto out;
    ops_cpu_set_threads(a->threads);
    if (gpt2_create(&model, &cfg, ops)) goto out;
    host = malloc(model.table.total * sizeof(float));
    in = malloc((size_t)a->batch * a->seq * sizeof(int32_t));
    tg = malloc((size_t)a->batch * a->seq * sizeof(int32_t));
    if (!host || !in || !tg) {
        err_set("out of memory");
        goto out;
    }
    param_init(&model.table, &cfg, host, (unsigned long long)a->seed);
    gpt2_set_params(&model, host);
    if (optim_create(&opt, &a->opt, &model)) goto out;
    if (a->metrics) {
        snprintf(partial, sizeof partial, "%s.partial", a->metrics);
        metrics = fopen(partial, "w");
        if (!metrics) {
            err_set("--metrics '%s': cannot create '%s'", a->metrics, partial);
            partial[0] = '\0';
            goto out;
        }
    }

    fprintf(stderr,
            "llmpi train: %d layers, width %d, %d heads, context %d, vocab %d "
            "(%.2fM parameters) on %s\n"
            "  data %s: %zu train + %zu validation tokens; batch %d x %d, %d "
            "steps, %s lr %g\n",
            cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.max_seq, cfg.vocab_size,
            model.table.total / 1e6, ops->name, a->data, data.train_end,
            data.n - data.train_end, a->batch, a->seq, a->steps,
            optim_kind_name(a->opt.kind), a->lr);

    size_t cursor = 0;
    const double tokens_per_step = (double)a->batch * a->seq;
    for (int step = 0; step < a->steps; step++) {
        double t0 = timer_now(), loss;
        data_train_batch(&data, &cursor, a->batch, a->seq, in, tg);
        if (gpt2_forward(&model, in, tg, a->batch, a->seq, &loss)) goto out;
        if (!isfinite(loss)) {
            err_set("loss is %s at step %d (lower --lr or enable --grad-clip)",
                    isnan(loss) ? "NaN" : "infinite", step + 1);
            goto out;
        }
        if (gpt2_backward(&model)) goto out;
        double norm = optim_clip_grads(&model, a->grad_clip);
        float lr = lr_at(step, a->steps, a->warmup, a->lr, a->lr * a->min_lr_frac);
        optim_step(&opt, &model, lr);
        ops->sync();
        double ms = (timer_now() - t0) * 1e3;
        double tps = tokens_per_step / (ms / 1e3);

        int last = step + 1 == a->steps;
        double val = NAN;
        if (a->eval_batches > 0 &&
            (last || (a->eval_every > 0 && (step + 1) % a->eval_every == 0))) {
            if (evaluate(&model, &data, a->batch, a->seq, a->eval_batches, in, tg, &val))
                goto out;
        }
        if (step == 0 || last || (step + 1) % a->log_every == 0)
            fprintf(
                stderr,
                "step %6d/%d | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | %.1f ms\n",
                step + 1, a->steps, loss, lr, norm, tps, ms);
        if (!isnan(val)) fprintf(stderr, "eval step %d | val loss %.4f\n", step + 1, val);
        if (metrics) {
            fprintf(metrics,
                    "{\"step\":%d,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,"
                    "\"tokens_per_s\":%.1f,\"ms\":%.3f",
                    step + 1, loss, lr, norm, tps, ms);
            if (!isnan(val)) fprintf(metrics, ",\"val_loss\":%.9g", val);
            fprintf(metrics, "}\n");
            fflush(metrics);
        }
    }
    if (metrics) {
        if (fclose(metrics) != 0) {
            metrics = NULL;
            err_set("--metrics '%s': write failed", partial);
            goto out;
        }
        metrics = NULL;
        if (rename(partial, a->metrics) != 0) {
            err_set("--metrics: cannot rename '%s' to '%s'", partial, a->metrics);
            goto out;
        }
        partial[0] = '\0';
    }
    rc = 0;
out:
    if (metrics) fclose(metrics);
    if (partial[0]) remove(partial); /* failed run: leave no metrics file */
    optim_destroy(&opt);
    gpt2_destroy(&model);
    free(host);
    free(in);
    free(tg);
    data_free(&data);
    return rc;
}

int train_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(train_help, stdout);
            return 0;
        }
    }
    struct train_args a;
    if (parse_args(argc, argv, &a) || run(&a)) {
        fprintf(stderr, "llmpi train: error: %s\n", err_msg());
        return 1;
    }
    return 0;
}
