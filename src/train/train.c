/* src/train/train.c — `llmpi train`: single-rank training loop.
 *
 * Flow: parse flags -> (resume: read the checkpoint, check it against the
 * flags) -> load data -> build model on the chosen backend -> for each step:
 * batch, forward, backward, clip, lr schedule, update, log, checkpoint.
 * Every input is validated before any output file is created; the metrics
 * file is written as FILE.partial (flushed per step, so it can be tailed)
 * and renamed to FILE only when the run completes, so a failed run never
 * leaves a file that looks finished.
 *
 * Resume (docs/checkpoints.md): the state that determines the next step is
 * the parameters, the optimizer moments and t, the step (the LR schedule),
 * the data cursor and the RNG; restoring all of it makes the resumed run log
 * bit-identical numbers. Settings the checkpoint records are taken from it
 * when their flag is left out, so `--resume` alone continues the same run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <sys/stat.h>

#include "args.h"
#include "backend.h"
#include "ckpt.h"
#include "data.h"
#include "err.h"
#include "gpt2.h"
#include "metrics_file.h"
#include "model_flags.h"
#include "optim.h"
#include "rng.h"
#include "schedule.h"
#include "subcommands.h"
#include "timer.h"
#include "train_ckpt.h"

/* The trainer's RNG stream is seeded from --seed xor this, so it does not
 * replay the parameter initialisation's draws. */
#define TRAIN_RNG_STREAM 0x6c6c6d7069747261ULL

struct train_args {
    struct model_flags model;
    const char *data, *metrics, *device;
    int steps, batch, seq, warmup, eval_every, eval_batches, log_every, threads;
    int seed;
    float lr, min_lr_frac, weight_decay, grad_clip, val_fraction;
    int weight_decay_set;
    struct optim_config opt;
    const char *ckpt_dir, *resume; /* resume: NULL no, "" bare --resume */
    int ckpt_every, keep;
    const char *given[64]; /* the flags on the command line, for resume */
    int ngiven;
};

static int given(const struct train_args *a, const char *flag) {
    for (int i = 0; i < a->ngiven; i++)
        if (!strcmp(a->given[i], flag)) return 1;
    return 0;
}

static const char *train_help =
    "usage: llmpi train --data PATH [options]\n"
    "\n"
    "Train a GPT-2 on one rank. --data is an `llmpi prep` output directory\n"
    "(train.bin + val.bin + its tokenizer), a single token shard (its last\n"
    "--val-fraction held out), or any other file, read as bytes (vocabulary 256).\n"
    "\n"
    "model:\n" MODEL_FLAGS_HELP /* */
    "run:\n"
    "  --data PATH          prep directory, shard or text file (required)\n"
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
    "  --metrics FILE       one JSON object per step (JSON lines)\n"
    "checkpoints (docs/checkpoints.md):\n"
    "  --ckpt-dir D         write D/ckpt_<step>.h5 checkpoints (at the last step,\n"
    "                       and every --ckpt-every steps)\n"
    "  --ckpt-every K       also every K steps (default 0: last step only)\n"
    "  --keep N             keep the newest N checkpoints (default 0: all)\n"
    "  --resume [PATH]      continue from PATH (a checkpoint, or a directory's\n"
    "                       newest); without PATH from --ckpt-dir's newest, or\n"
    "                       from scratch when it has none. Flags left out take\n"
    "                       the checkpoint's values\n";

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
        if (a->ngiven < (int)(sizeof a->given / sizeof a->given[0]))
            a->given[a->ngiven++] = f;
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
        else if (!strcmp(f, "--ckpt-dir")) { VALUE(); a->ckpt_dir = v; }
        else if (!strcmp(f, "--ckpt-every")) INT(&a->ckpt_every, 0, 1000000000);
        else if (!strcmp(f, "--keep")) INT(&a->keep, 0, 1000000000);
        else if (!strcmp(f, "--resume")) a->resume = i + 1 < argc && argv[i + 1][0] != '-' ? argv[++i] : "";
        else return err_set("unknown option '%s' (see llmpi train --help)", f);
#undef VALUE
#undef INT
#undef FLT
        /* clang-format on */
    }
    if (!a->data) return err_set("--data PATH is required (see llmpi train --help)");
    if (a->ckpt_every && !a->ckpt_dir) return err_set("--ckpt-every needs --ckpt-dir");
    if (a->resume && !a->resume[0] && !a->ckpt_dir)
        return err_set("--resume without a path needs --ckpt-dir");
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

/* Resume: settings the checkpoint records take its value when their flag is
 * left out; a flag that differs is used, with a note (the numbers then
 * differ from the interrupted run's). A different --optimizer is an error:
 * the moment buffers would not fit. */
static int adopt_settings(struct train_args *a, const char *file,
                          const struct ckpt_train_state *st) {
    enum optim_kind kind;
    if (optim_kind_parse(st->optimizer, &kind)) return -1;
    if (given(a, "--optimizer") && kind != a->opt.kind)
        return err_set(
            "%s: the checkpoint's optimizer is %s but the command line asks for "
            "%s (--optimizer)",
            file, st->optimizer, optim_kind_name(a->opt.kind));
    a->opt.kind = kind;
    const struct ckpt_hparams *h = &st->hp;
    const struct {
        const char *flag;
        float *f;
        int *i;
        double ck, lo; /* lo: smallest valid recorded integer */
    } s[] = {
        {"--steps", NULL, &a->steps, (double)st->total_steps, 1},
        {"--seed", NULL, &a->seed, (double)st->seed, 0},
        {"--batch", NULL, &a->batch, (double)h->batch, 1},
        {"--seq", NULL, &a->seq, (double)h->seq, 1},
        {"--warmup", NULL, &a->warmup, (double)h->warmup, 0},
        {"--eval-every", NULL, &a->eval_every, (double)h->eval_every, 0},
        {"--eval-batches", NULL, &a->eval_batches, (double)h->eval_batches, 0},
        {"--lr", &a->lr, NULL, h->lr, 0},
        {"--min-lr-frac", &a->min_lr_frac, NULL, h->min_lr_frac, 0},
        {"--weight-decay", &a->opt.weight_decay, NULL, h->weight_decay, 0},
        {"--momentum", &a->opt.momentum, NULL, h->momentum, 0},
        {"--beta1", &a->opt.beta1, NULL, h->beta1, 0},
        {"--beta2", &a->opt.beta2, NULL, h->beta2, 0},
        {"--eps", &a->opt.eps, NULL, h->eps, 0},
        {"--grad-clip", &a->grad_clip, NULL, h->grad_clip, 0},
        {"--val-fraction", &a->val_fraction, NULL, h->val_fraction, 0},
    };
    for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
        double now = s[k].f ? (double)*s[k].f : (double)*s[k].i;
        double ck = s[k].f ? (double)(float)s[k].ck : s[k].ck;
        if (!given(a, s[k].flag)) {
            if (s[k].f)
                *s[k].f = (float)s[k].ck;
            else if (s[k].ck < s[k].lo || s[k].ck > 2147483647.0)
                return err_set("%s: recorded %s %.0f is out of range", file,
                               s[k].flag + 2, s[k].ck);
            else
                *s[k].i = (int)s[k].ck;
        } else if (now != ck) {
            fprintf(stderr,
                    "llmpi train: note: %s %g differs from the checkpoint's %g; "
                    "continuing with %g\n",
                    s[k].flag, now, ck, now);
        }
    }
    return 0;
}

/* mkdir D unless it exists as a directory. */
static int make_ckpt_dir(const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return err_set("--ckpt-dir '%s' is not a directory", dir);
        return 0;
    }
    if (mkdir(dir, 0777) != 0)
        return err_set("--ckpt-dir '%s': cannot create: %s", dir, strerror(errno));
    return 0;
}

static int run(const struct train_args *args) {
    struct train_args A = *args, *a = &A; /* a resume may fill in settings */
    struct token_data data = {0};
    struct gpt2_config cfg;
    struct gpt2 model = {0};
    struct optim opt = {0};
    struct ckpt_train_state st = {0};
    struct tokenizer *tok = NULL;
    float *host = NULL, *ck_params = NULL, *m_host = NULL, *v_host = NULL;
    int32_t *in = NULL, *tg = NULL;
    FILE *metrics = NULL;
    char partial[4096] = "", ckpt_file[4096] = "";
    int rc = -1, resuming = 0;

    /* 1. the checkpoint to resume from, checked against the flags */
    int where = train_ckpt_locate(a->resume, a->ckpt_dir, ckpt_file, sizeof ckpt_file);
    if (where < 0) return -1;
    if (where == 0) {
        struct gpt2_config ck_cfg;
        resuming = 1;
        if (ckpt_read_config(ckpt_file, &ck_cfg) ||
            ckpt_load_train(ckpt_file, &ck_cfg, &st) || adopt_settings(a, ckpt_file, &st))
            goto out;
    } else if (a->resume) {
        fprintf(stderr, "llmpi train: no checkpoint in '%s' yet: starting from step 0\n",
                a->ckpt_dir);
    }

    /* 2. data and model shape */
    if (data_load(a->data, a->val_fraction, &data)) goto out;
    if (resuming) {
        struct gpt2_config ck_cfg;
        if (ckpt_load_model(ckpt_file, &ck_cfg, &ck_params, NULL)) goto out;
        cfg = ck_cfg;
        const struct model_flags *mf = &a->model;
        if (mf->preset || mf->layers || mf->heads || mf->width || mf->context ||
            mf->vocab) {
            if (model_flags_resolve(&a->model, data.vocab_size, &cfg) ||
                train_ckpt_check_model(ckpt_file, &ck_cfg, &cfg))
                goto out;
        }
        if (st.step >= a->steps) {
            err_set("%s: the checkpoint is at step %lld, the end of a --steps %d run: "
                    "nothing left to train (raise --steps to continue)",
                    ckpt_file, (long long)st.step, a->steps);
            goto out;
        }
        if (st.data_train_tokens != data.train_end)
            fprintf(
                stderr,
                "llmpi train: note: the checkpoint was trained on %llu training tokens, "
                "--data '%s' has %zu: the data cursor %llu points elsewhere now\n",
                (unsigned long long)st.data_train_tokens, a->data, data.train_end,
                (unsigned long long)st.data_cursor);
    } else if (model_flags_resolve(&a->model, data.vocab_size, &cfg)) {
        goto out;
    }
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
    if (optim_create(&opt, &a->opt, &model)) goto out;
    struct rng rng;
    size_t cursor = 0;
    int start = 0;
    if (resuming) {
        train_ckpt_restore(&model, &opt, ck_params, &st);
        memcpy(rng.s, st.rng, sizeof rng.s);
        cursor = (size_t)st.data_cursor;
        start = (int)st.step;
        free(ck_params);
        ck_params = NULL;
        ckpt_train_state_free(&st);
    } else {
        param_init(&model.table, &cfg, host, (unsigned long long)a->seed);
        gpt2_set_params(&model, host);
        rng_seed(&rng, (uint64_t)a->seed ^ TRAIN_RNG_STREAM);
    }
    if (a->ckpt_dir) {
        if (!data.tokenizer) {
            err_set("--data '%s': a shard without vocab.json/merges.txt beside it has no "
                    "tokenizer, and a checkpoint must carry one (use llmpi prep's output "
                    "directory)",
                    a->data);
            goto out;
        }
        tok = data.tokenizer; /* owned by data */
        m_host = malloc(model.table.total * sizeof(float));
        v_host = opt.v ? malloc(model.table.total * sizeof(float)) : NULL;
        if (!tok || !m_host || (opt.v && !v_host)) {
            err_set("out of memory");
            goto out;
        }
    }

    /* 3. outputs, now that every input has been checked */
    if (a->ckpt_dir && make_ckpt_dir(a->ckpt_dir)) goto out;
    if (a->metrics) {
        long carried;
        metrics = metrics_open(a->metrics, partial, sizeof partial, start, &carried);
        if (!metrics) goto out;
        if (resuming && carried == 0)
            fprintf(stderr,
                    "llmpi train: note: no complete record of steps 1..%d in '%s': the "
                    "metrics file starts at step %d\n",
                    start, a->metrics, start + 1);
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
    if (resuming) fprintf(stderr, "  resuming from %s at step %d\n", ckpt_file, start);

    const double tokens_per_step = (double)a->batch * a->seq;
    for (int step = start; step < a->steps; step++) {
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
        if (a->ckpt_dir &&
            (last || (a->ckpt_every > 0 && (step + 1) % a->ckpt_every == 0))) {
            double c0 = timer_now();
            struct ckpt_train_state s = {
                .step = step + 1,
                .total_steps = a->steps,
                .seed = (uint64_t)a->seed,
                .data_cursor = cursor,
                .data_train_tokens = data.train_end,
                .hp = {a->lr, a->min_lr_frac, a->opt.weight_decay, a->opt.momentum,
                       a->opt.beta1, a->opt.beta2, a->opt.eps, a->grad_clip,
                       a->val_fraction, a->warmup, a->batch, a->seq, a->eval_every,
                       a->eval_batches},
            };
            char saved[4096];
            memcpy(s.rng, rng.s, sizeof s.rng);
            if (train_ckpt_save(a->ckpt_dir, a->keep, &model, &opt, tok, host, m_host,
                                v_host, &s, saved, sizeof saved))
                goto out;
            fprintf(stderr, "checkpoint step %d | %s | %.1f ms\n", step + 1, saved,
                    (timer_now() - c0) * 1e3);
        }
    }
    if (metrics) {
        FILE *f = metrics;
        metrics = NULL;
        if (metrics_finish(f, partial, a->metrics)) goto out;
        partial[0] = '\0';
    }
    rc = 0;
out:
    if (metrics) fclose(metrics);
    if (partial[0]) remove(partial); /* failed run: leave no metrics file */
    optim_destroy(&opt);
    gpt2_destroy(&model);
    ckpt_train_state_free(&st);
    free(ck_params);
    free(m_host);
    free(v_host);
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
