/* src/train/train.c — `llmpi train`: the training loop, on one rank or
 * data-parallel over the ranks of `mpirun -np N` (docs/distributed.md).
 *
 * Flow: MPI start-up and stop-signal handlers -> parse flags -> the DP x TP
 * grid (topo.h) -> (resume: read the checkpoint, check it against
 * the flags) -> load data -> build model on the chosen backend -> for each
 * step: batch (this rank's DP slice of the global batch; every rank of a TP
 * group runs the same slice on its shard of the model, gpt2.h), forward,
 * backward (gradient buckets averaged over the DP group as backward goes, dp.h),
 * clip, lr schedule, update, log, checkpoint, stop-signal agreement.
 *
 * Failures under MPI: every rank validates its inputs, then all agree at one
 * point (dist_exit_if_any: one message, from the lowest failing rank, every
 * rank exits 1). In the loop, an error only this rank can see (a failed
 * collective, a forward error) ends the job at once (dist_fail, MPI_Abort);
 * an error every rank sees alike (a NaN global loss, a checkpoint rank 0
 * could not write) goes through the agreement. In a world of one both print
 * "llmpi train: error: ..." and exit 1, as before MPI was here.
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
#include <signal.h>
#include <sys/stat.h>

#include "args.h"
#include "backend.h"
#include "ckpt.h"
#include "ckpt_shard.h"
#include "data.h"
#include "dist.h"
#include "dp.h"
#include "err.h"
#include "gpt2.h"
#include "metrics_file.h"
#include "model_flags.h"
#include "optim.h"
#include "rng.h"
#include "schedule.h"
#include "subcommands.h"
#include "timer.h"
#include "topo.h"
#include "train_ckpt.h"

/* Rank 0 alone prints progress and notes (every rank would repeat them). */
static int g_quiet;
#define NOTE(...)                                                                        \
    do {                                                                                 \
        if (!g_quiet) fprintf(stderr, __VA_ARGS__);                                      \
    } while (0)

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
    int tp, zero;     /* --tp, --zero (0 or 1) */
    float bucket_mb;  /* --bucket-mb */
    enum ops_dtype dtype; /* --dtype: the matmuls' operand precision */
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
    "Train a GPT-2 on one rank, or over DP x TP ranks under mpirun -np N / srun\n"
    "(docs/distributed.md). --data is an `llmpi prep` output directory\n"
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
    "  --dtype D            fp32 or bf16 (default fp32): bf16 rounds the matmuls'\n"
    "                       operands to bf16 (fp32 accumulation); weights, optimizer\n"
    "                       state, activations and checkpoints stay fp32\n"
    "  --threads N          CPU threads (default: OMP_NUM_THREADS or all cores)\n"
    "parallelism (under mpirun / srun):\n"
    "  --tp T               tensor-parallel size (default 1): each model is split\n"
    "                       over T consecutive ranks (T must divide the ranks, the\n"
    "                       heads and 4 x width; on GPUs the groups use NCCL)\n"
    "                       data parallelism uses the other ranks: DP = ranks / T;\n"
    "                       --batch is the global batch and DP must divide it\n"
    "  --bucket-mb X        gradient allreduce bucket size in MiB (default 25)\n"
    "  --zero N             1: shard the optimizer state over the DP ranks\n"
    "                       (ZeRO-1; default 0)\n"
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
    "                       the checkpoint's values\n"
    "On SIGUSR1 or SIGTERM every rank finishes the step, writes a checkpoint\n"
    "(with --ckpt-dir) and exits 75, for a batch script to requeue.\n";

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
    a->tp = 1;
    a->bucket_mb = 25.0f;
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
        else if (!strcmp(f, "--dtype")) { VALUE(); if (backend_dtype_parse(v, &a->dtype)) return -1; }
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
        else if (!strcmp(f, "--tp")) INT(&a->tp, 1, 1 << 20);
        else if (!strcmp(f, "--zero")) INT(&a->zero, 0, 1);
        else if (!strcmp(f, "--bucket-mb")) FLT(&a->bucket_mb, 1e-6, 1e6);
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

/* This rank's part of a batch: rows [row0, row0 + rows) of the global
 * batch of B sequences (DP rank r of D has rows r*B/D .. (r+1)*B/D). */
struct slice {
    int row0, rows;
};

/* Mean validation loss over eval_batches global batches of B x T: each rank
 * runs its slice of every batch and the DP group sums (every batch has the
 * same number of positions, so the mean of all equals the mean of the batch
 * means). gin/gtg hold a global batch. */
static int evaluate(struct gpt2 *m, const struct token_data *d, int B, int T,
                    int batches, struct slice sl, const struct comm *dpc, int32_t *gin,
                    int32_t *gtg, double *out) {
    double sum = 0.0;
    for (int k = 0; k < batches; k++) {
        double loss;
        data_val_batch(d, (size_t)k, B, T, gin, gtg);
        size_t at = (size_t)sl.row0 * T;
        if (gpt2_forward(m, gin + at, gtg + at, sl.rows, T, &loss)) return -1;
        sum += loss;
    }
    if (dpc->size == 1) {
        *out = sum / batches;
        return 0;
    }
    double acc[2] = {sum * sl.rows, (double)sl.rows * batches}; /* rows x T cancels */
    if (comm_allreduce(dpc, acc, 2, COMM_F64, COMM_SUM)) return -1;
    *out = acc[0] / acc[1];
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
            NOTE("llmpi train: note: %s %g differs from the checkpoint's %g; "
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

/* Everything a run holds, so that every exit path can free or finish it. */
struct run {
    struct train_args A;
    struct topo topo;
    struct token_data data;
    struct gpt2_config cfg;
    struct gpt2 model;
    struct optim opt;
    struct dp dp;
    struct ckpt_train_state st;
    struct tokenizer *tok;
    const struct ops *ops;
    float *host;  /* full parameters (model.full.total floats): initialisation */
    float *local; /* this rank's shard (model.table.total floats): checkpoints */
    float *m_host, *v_host; /* optimizer state (local layout): checkpoints */
    int32_t *gin, *gtg; /* one global batch */
    struct slice sl;
    struct rng rng;
    size_t cursor;
    int start, resuming;
    FILE *metrics;
    char partial[4096], ckpt_file[4096];
};

static void run_free(struct run *r) {
    if (r->metrics) fclose(r->metrics);
    r->metrics = NULL;
    dp_free(&r->dp, &r->model);
    optim_destroy(&r->opt);
    gpt2_destroy(&r->model);
    ckpt_train_state_free(&r->st);
    free(r->m_host);
    free(r->v_host);
    free(r->host);
    free(r->local);
    free(r->gin);
    free(r->gtg);
    data_free(&r->data);
    topo_free(&r->topo);
    memset(r, 0, sizeof *r);
}

/* A failed run leaves no metrics file (rank 0 holds it). */
static void drop_metrics(struct run *r) {
    if (r->metrics) fclose(r->metrics);
    r->metrics = NULL;
    if (r->partial[0]) remove(r->partial);
    r->partial[0] = '\0';
}

/* An error every rank reached together (failed may differ by rank): when
 * any rank failed, the lowest failing rank prints and every rank exits 1. */
static void agree(struct run *r, int failed) {
    int any = dist_any(failed);
    if (any < 0) dist_fail("agreeing on failure: %s", err_msg());
    if (!any) return;
    drop_metrics(r);
    dist_exit_if_any(failed, err_msg()); /* exits */
}

/* An error only this rank sees: end the whole job now. */
static _Noreturn void die(struct run *r) {
    drop_metrics(r);
    dist_fail("%s", err_msg());
}

/* Steps 1-2: every input checked, model and optimizer built. Rank-local:
 * -1 + err_set; the caller agrees. */
static int setup(struct run *r) {
    struct train_args *a = &r->A;
    const struct comm *dpc = &r->topo.dp_group;

    /* 1. the checkpoint to resume from, checked against the flags */
    int where =
        train_ckpt_locate(a->resume, a->ckpt_dir, r->ckpt_file, sizeof r->ckpt_file);
    if (where < 0) return -1;
    if (where == 0) {
        struct gpt2_config ck_cfg;
        r->resuming = 1;
        /* the scalars only: each rank reads its shard of the tensors later */
        if (ckpt_load_shard_meta(r->ckpt_file, &ck_cfg, NULL, &r->st) ||
            adopt_settings(a, r->ckpt_file, &r->st))
            return -1;
    } else if (a->resume) {
        NOTE("llmpi train: no checkpoint in '%s' yet: starting from step 0\n",
             a->ckpt_dir);
    }
    if (a->batch % dpc->size != 0)
        return err_set("--batch %d (the global batch) does not divide among the %d "
                       "data-parallel ranks (%d ranks / --tp %d): use a multiple of %d",
                       a->batch, dpc->size, r->topo.size, r->topo.tp, dpc->size);
    r->sl.rows = a->batch / dpc->size;
    r->sl.row0 = dpc->rank * r->sl.rows;

    /* 2. data and model shape */
    if (data_load(a->data, a->val_fraction, &r->data)) return -1;
    struct token_data *data = &r->data;
    if (r->resuming) {
        struct gpt2_config ck_cfg;
        if (ckpt_read_config(r->ckpt_file, &ck_cfg)) return -1;
        r->cfg = ck_cfg;
        const struct model_flags *mf = &a->model;
        if (mf->preset || mf->layers || mf->heads || mf->width || mf->context ||
            mf->vocab) {
            if (model_flags_resolve(&a->model, data->vocab_size, &r->cfg) ||
                train_ckpt_check_model(r->ckpt_file, &ck_cfg, &r->cfg))
                return -1;
        }
        if (r->st.step >= a->steps)
            return err_set(
                "%s: the checkpoint is at step %lld, the end of a --steps %d run: "
                "nothing left to train (raise --steps to continue)",
                r->ckpt_file, (long long)r->st.step, a->steps);
        if (r->st.data_train_tokens != data->train_end)
            NOTE("llmpi train: note: the checkpoint was trained on %llu training "
                 "tokens, --data '%s' has %zu: the data cursor %llu points elsewhere "
                 "now\n",
                 (unsigned long long)r->st.data_train_tokens, a->data, data->train_end,
                 (unsigned long long)r->st.data_cursor);
    } else if (model_flags_resolve(&a->model, data->vocab_size, &r->cfg)) {
        return -1;
    }
    const struct gpt2_config *cfg = &r->cfg;
    if (cfg->vocab_size < data->vocab_size)
        return err_set("--vocab %d is smaller than the data's vocabulary %d",
                       cfg->vocab_size, data->vocab_size);
    if (a->seq > cfg->max_seq)
        return err_set("--seq %d exceeds the model's context %d (raise --context)",
                       a->seq, cfg->max_seq);
    if (data_check_fits(data, a->data, a->batch, a->seq, a->eval_batches)) return -1;
    r->ops = backend_select_rank(a->device, r->topo.local_rank, NULL);
    if (!r->ops) return -1;
    if (backend_set_dtype(r->ops, a->dtype)) return -1;
    ops_cpu_set_threads(a->threads);
    if (gpt2_create_tp(&r->model, cfg, r->ops, &r->topo.tp_group)) return -1;
    struct gpt2 *model = &r->model;
    r->host = malloc(model->full.total * sizeof(float));
    r->local = malloc(model->table.total * sizeof(float));
    r->gin = malloc((size_t)a->batch * a->seq * sizeof(int32_t));
    r->gtg = malloc((size_t)a->batch * a->seq * sizeof(int32_t));
    if (!r->host || !r->local || !r->gin || !r->gtg) return err_set("out of memory");
    if (dp_init(&r->dp, dpc, model, a->zero, a->bucket_mb)) return -1;
    if (optim_create_range(&r->opt, &a->opt, model, r->dp.lo, r->dp.hi)) return -1;
    if (r->resuming) {
        /* each rank reads its own hyperslabs: any DP x TP layout resumes */
        if (train_ckpt_restore(r->ckpt_file, model, &r->opt, r->st.optim_t)) return -1;
        memcpy(r->rng.s, r->st.rng, sizeof r->rng.s);
        r->cursor = (size_t)r->st.data_cursor;
        r->start = (int)r->st.step;
        ckpt_train_state_free(&r->st);
    } else {
        /* every TP rank draws the whole model and keeps its shard: the same
         * initial parameters for every layout */
        param_init(&model->full, cfg, r->host, (unsigned long long)a->seed);
        if (shard_extract(&model->full, r->host, &model->shard, r->local)) return -1;
        gpt2_set_params(model, r->local);
        rng_seed(&r->rng, (uint64_t)a->seed ^ TRAIN_RNG_STREAM);
    }
    if (a->ckpt_dir) {
        if (!data->tokenizer)
            return err_set(
                "--data '%s': a shard without vocab.json/merges.txt beside it has no "
                "tokenizer, and a checkpoint must carry one (use llmpi prep's output "
                "directory)",
                a->data);
        r->tok = data->tokenizer; /* owned by data */
        r->m_host = malloc(model->table.total * sizeof(float));
        r->v_host = r->opt.v ? malloc(model->table.total * sizeof(float)) : NULL;
        if (!r->m_host || (r->opt.v && !r->v_host)) return err_set("out of memory");
    }
    return 0;
}

/* Step 3, rank 0: the outputs, now that every input has been checked. */
static int open_outputs(struct run *r) {
    struct train_args *a = &r->A;
    if (a->ckpt_dir && make_ckpt_dir(a->ckpt_dir)) return -1;
    if (a->metrics) {
        long carried;
        r->metrics = metrics_open(a->metrics, r->partial, sizeof r->partial, r->start,
                                  &carried);
        if (!r->metrics) return -1;
        if (r->resuming && carried == 0)
            NOTE("llmpi train: note: no complete record of steps 1..%d in '%s': the "
                 "metrics file starts at step %d\n",
                 r->start, a->metrics, r->start + 1);
    }
    return 0;
}

/* Collective: gather a ZeRO-1 optimizer state over the DP group, then every
 * rank takes part in the parallel write (the DP-rank-0 replica's TP ranks
 * write their shards), all agree on the outcome. */
static void save_ckpt(struct run *r, int step) {
    struct train_args *a = &r->A;
    double c0 = timer_now();
    if (dp_gather_state(&r->dp, &r->opt, r->m_host, r->v_host)) die(r);
    char saved[4096] = "";
    {
        struct ckpt_train_state s = {
            .step = step,
            .total_steps = a->steps,
            .seed = (uint64_t)a->seed,
            .data_cursor = r->cursor,
            .data_train_tokens = r->data.train_end,
            .hp = {a->lr, a->min_lr_frac, a->opt.weight_decay, a->opt.momentum,
                   a->opt.beta1, a->opt.beta2, a->opt.eps, a->grad_clip,
                   a->val_fraction, a->warmup, a->batch, a->seq, a->eval_every,
                   a->eval_batches},
        };
        memcpy(s.rng, r->rng.s, sizeof s.rng);
        struct train_ckpt_io io = {r->topo.world.mpi, r->topo.dp_rank == 0,
                                   r->topo.rank == 0};
        /* failures come back alike on every rank, except pruning (rank 0) */
        agree(r, train_ckpt_save(a->ckpt_dir, a->keep, &io, &r->model, &r->opt, r->tok,
                                 r->local, r->m_host, r->v_host, &s, saved,
                                 sizeof saved) != 0);
    }
    NOTE("checkpoint step %d | %s | %.1f ms\n", step, saved, (timer_now() - c0) * 1e3);
}

/* The loop. Returns 0 when done, DIST_EXIT_REQUEUE after a stop signal;
 * failures exit from inside (die / agree). */
static int train_loop(struct run *r) {
    struct train_args *a = &r->A;
    struct gpt2 *model = &r->model;
    const struct comm *dpc = &r->topo.dp_group;
    const struct gpt2_config *cfg = &r->cfg;
    const struct ops *ops = r->ops;

    NOTE("llmpi train: %d layers, width %d, %d heads, context %d, vocab %d "
         "(%.2fM parameters) on %s\n"
         "  data %s: %zu train + %zu validation tokens; batch %d x %d, %d "
         "steps, %s lr %g\n",
         cfg->n_layer, cfg->n_embd, cfg->n_head, cfg->max_seq, cfg->vocab_size,
         model->full.total / 1e6, ops->name, a->data, r->data.train_end,
         r->data.n - r->data.train_end, a->batch, a->seq, a->steps,
         optim_kind_name(a->opt.kind), a->lr);
    if (dpc->size > 1)
        NOTE("  data parallel: %d ranks x %d sequences each%s, %d gradient bucket%s\n",
             dpc->size, r->sl.rows, a->zero ? ", ZeRO-1 optimizer shards" : "",
             r->dp.nbuckets, r->dp.nbuckets == 1 ? "" : "s");
    if (r->topo.tp > 1)
        NOTE("  tensor parallel: %d ranks per model, %d heads and %d-%d vocabulary "
             "rows each\n",
             r->topo.tp, model->shard.heads_local, cfg->vocab_size / r->topo.tp,
             (cfg->vocab_size + r->topo.tp - 1) / r->topo.tp);
    if (r->resuming)
        NOTE("  resuming from %s at step %d\n", r->ckpt_file, r->start);
    if (a->dtype == OPS_BF16)
        NOTE("  mixed precision: bf16 matmul operands; fp32 accumulation, weights, "
             "optimizer state and activations\n");

    const double tokens_per_step = (double)a->batch * a->seq;
    const size_t at = (size_t)r->sl.row0 * a->seq;
    for (int step = r->start; step < a->steps; step++) {
        double t0 = timer_now(), loss, tp0 = model->tp_comm_s;
        data_train_batch(&r->data, &r->cursor, a->batch, a->seq, r->gin, r->gtg);
        if (gpt2_forward(model, r->gin + at, r->gtg + at, r->sl.rows, a->seq, &loss))
            die(r);
        if (dpc->size > 1) { /* the global mean: sum of losses / positions */
            double n = (double)r->sl.rows * a->seq, acc[2] = {loss * n, n};
            if (comm_allreduce(dpc, acc, 2, COMM_F64, COMM_SUM)) die(r);
            loss = acc[0] / acc[1];
        }
        if (!isfinite(loss)) { /* the global loss: every rank stops here */
            err_set("loss is %s at step %d (lower --lr or enable --grad-clip)",
                    isnan(loss) ? "NaN" : "infinite", step + 1);
            agree(r, 1);
        }
        dp_begin_backward(&r->dp);
        if (gpt2_backward(model) || dp_finish_grads(&r->dp, model)) die(r);
        double norm;
        if (dp_clip_grads(&r->dp, model, a->grad_clip, &norm)) die(r);
        float lr = lr_at(step, a->steps, a->warmup, a->lr, a->lr * a->min_lr_frac);
        optim_step(&r->opt, model, lr);
        ops->sync();
        if (dp_after_step(&r->dp, model)) die(r);
        double ms = (timer_now() - t0) * 1e3;
        double tps = tokens_per_step / (ms / 1e3);
        /* communication the step waited for: TP collectives (all on the
         * critical path) and the part of the DP average backward did not hide */
        double comm_ms = (model->tp_comm_s - tp0 + r->dp.wait_s) * 1e3;

        /* stop signals: every rank agrees once per step, after the update */
        int stop = dist_stop_requested();
        if (stop < 0) die(r);
        int last = step + 1 == a->steps;
        stop = stop && !last; /* at the last step the run simply completes */
        double val = NAN;
        if (a->eval_batches > 0 &&
            (last || (a->eval_every > 0 && (step + 1) % a->eval_every == 0))) {
            if (evaluate(model, &r->data, a->batch, a->seq, a->eval_batches, r->sl, dpc,
                         r->gin, r->gtg, &val))
                die(r);
        }
        if (step == 0 || last || (step + 1) % a->log_every == 0) {
            char comm[32] = "";
            if (r->topo.size > 1) snprintf(comm, sizeof comm, " | comm %.0f%%", 100 * comm_ms / ms);
            NOTE("step %6d/%d | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | %.1f ms%s\n",
                 step + 1, a->steps, loss, lr, norm, tps, ms, comm);
        }
        if (!isnan(val)) NOTE("eval step %d | val loss %.4f\n", step + 1, val);
        if (r->metrics) {
            fprintf(r->metrics,
                    "{\"step\":%d,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,"
                    "\"tokens_per_s\":%.1f,\"ms\":%.3f,\"comm_ms\":%.3f",
                    step + 1, loss, lr, norm, tps, ms, comm_ms);
            if (!isnan(val)) fprintf(r->metrics, ",\"val_loss\":%.9g", val);
            fprintf(r->metrics, "}\n");
            fflush(r->metrics);
        }
        if (a->ckpt_dir &&
            (last || stop || (a->ckpt_every > 0 && (step + 1) % a->ckpt_every == 0)))
            save_ckpt(r, step + 1);
        if (stop) {
            int sig = dist_stop_signal();
            NOTE("llmpi train: stop signal%s%s: stopped after step %d%s; exit %d "
                 "(requeue, then --resume)\n",
                 sig ? " " : "", sig == SIGTERM ? "SIGTERM" : sig ? "SIGUSR1" : "",
                 step + 1, a->ckpt_dir ? " with a checkpoint" : " (no --ckpt-dir: "
                                                             "nothing saved)",
                 DIST_EXIT_REQUEUE);
            /* the metrics stay FILE.partial: the run is not complete, and a
             * resume carries its lines */
            if (r->metrics) fclose(r->metrics);
            r->metrics = NULL;
            r->partial[0] = '\0';
            return DIST_EXIT_REQUEUE;
        }
    }
    int failed = 0; /* rank 0 finishes the metrics file; all agree */
    if (r->metrics) {
        FILE *f = r->metrics;
        r->metrics = NULL;
        failed = metrics_finish(f, r->partial, a->metrics) != 0;
        if (!failed) r->partial[0] = '\0';
    }
    agree(r, failed);
    return 0;
}

/* FNV-1a over the command line: ranks started with different flags would
 * disagree about shapes and hang in a collective; compare first. */
static uint64_t args_hash(int argc, char **argv) {
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < argc; i++)
        for (const char *p = argv[i];; p++) {
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
            if (!*p) break;
        }
    return h;
}

int train_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(train_help, stdout);
            return 0;
        }
    }
    dist_set_prog("llmpi train");
    if (dist_init(&argc, &argv)) {
        fprintf(stderr, "llmpi train: error: %s\n", err_msg());
        return 1;
    }
    g_quiet = dist_rank() != 0;
    static struct run R; /* large; static keeps it off the stack */
    struct run *r = &R;
    memset(r, 0, sizeof *r);
    int failed = dist_catch_stop_signals() != 0;
    failed = failed || parse_args(argc, argv, &r->A);
    dist_exit_if_any(failed, err_msg());
    /* the same command line on every rank: max(h) == min(h), as max of h, -h */
    int64_t h[2] = {(int64_t)(args_hash(argc, argv) >> 1), 0}; /* >= 0: -h fits */
    h[1] = -h[0];
    failed = 0;
    if (dist_size() > 1) {
        if (MPI_Allreduce(MPI_IN_PLACE, h, 2, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD))
            dist_fail("comparing the command lines: MPI_Allreduce failed");
        if (h[0] != -h[1])
            failed = err_set("the ranks were started with different command lines "
                             "(compare the mpirun / srun arguments)") != 0;
    }
    dist_exit_if_any(failed, err_msg());
    /* the grid (topo checks --tp against the world on every rank alike) */
    failed = topo_init(&r->topo, MPI_COMM_WORLD, &(struct topo_opts){.tp = r->A.tp}) != 0;
    dist_exit_if_any(failed, err_msg());

    agree(r, setup(r) != 0);
    /* collective, once every rank has its device: NCCL for the groups' GPU
     * buffers (a no-op on the CPU); a failure here ends the job at once */
    if (backend_attach_comm(r->ops, &r->topo.tp_group) ||
        backend_attach_comm(r->ops, &r->topo.dp_group))
        die(r);
    agree(r, r->topo.rank == 0 && open_outputs(r) != 0);
    int rc = train_loop(r);
    run_free(r);
    dist_finalize();
    return rc;
}
