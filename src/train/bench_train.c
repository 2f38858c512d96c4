/* src/train/bench_train.c — `llmpi bench train`: training-step throughput,
 * alone or over DP x TP ranks under mpirun / srun (docs/performance.md).
 *
 * What a step is: the step of `llmpi train` (src/train/train.c) on random
 * tokens: forward, the global loss (one tiny allreduce over DP), backward
 * with the DP gradient buckets averaged as it goes (dp.h), clipping, AdamW,
 * and under --zero 1 the allgather of the updated shards. TP ranks run the
 * model split Megatron-style (gpt2_create_tp). A few warmup steps are not
 * timed; then every rank waits at a barrier and times --steps steps.
 *
 * Weak scaling: --batch is the batch of ONE data-parallel rank. Each DP rank
 * draws its own tokens (the ranks of a TP group share theirs), so DP2 does
 * twice the work of DP1 per step: global batch = DP x --batch.
 *
 * What is reported (rank 0 prints):
 *   ms/step           wall time of the timed steps / steps, max over ranks
 *   tokens/s          global: DP x batch x seq / (ms/step); and / ranks
 *   model GFLOP/s     global tokens/s x FLOPs per token of the whole model:
 *     6 N (forward 2N + backward 4N, N = parameters doing matmuls: all but
 *          wpe; the tied wte counts once, as the LM head)
 *   + 12 L T C (attention scores and weighted sum, forward + backward, full
 *          T x T as computed, without the causal half)
 *   MFU (CUDA)        model GFLOP/s per rank over one GPU's peak FLOP/s in
 *                     the matmuls' dtype (--dtype: fp32, or bf16's tensor-core
 *                     peak; peak_flops.h: NVIDIA's published dense figure,
 *                     else derived from SMs x clock); null on the CPU or for
 *                     an unknown GPU
 *   exposed communication, ms/step and share of the step: the time a rank
 *     spends blocked in communication that compute did not hide, for the
 *     rank where it is largest (with its TP / DP split), the sum of
 *       TP: every TP collective (gpt2.tp_comm_s; all on the critical path)
 *       DP: the loss allreduce, the wait for the gradient average after
 *           backward (dp.wait_s: the buckets backward did not hide; the
 *           reduce-scatter under ZeRO-1) and the ZeRO-1 allgather
 *     Time blocked also includes waiting for a slower rank (load imbalance).
 *     The two scalar allreduces of the gradient norm are not counted.
 *
 * Flags are checked on every rank and agreed (dist.h: one message, exit 1
 * on every rank); an error only one rank sees in the loop ends the job
 * (dist_fail). A plain process is a world of one and prints what the
 * single-process benchmark always printed (--json only gained fields).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "args.h"
#include "backend.h"
#include "comm.h"
#include "dist.h"
#include "dp.h"
#include "err.h"
#include "gpt2.h"
#include "model_flags.h"
#include "optim.h"
#include "rng.h"
#include "shard_table.h"
#include "subcommands.h"
#include "timer.h"
#include "topo.h"

static const char *bench_help =
    "usage: llmpi bench train [options]\n"
    "\n"
    "Time training steps (forward, backward, AdamW) on random tokens and print\n"
    "tokens/s and model GFLOP/s (on a GPU also MFU: model FLOP/s over the\n"
    "device's peak). The vocabulary defaults to 256 (byte-level,\n"
    "as `llmpi train` uses today); --vocab 50257 gives GPT-2's.\n"
    "Under mpirun -np N / srun the ranks form a DP x TP grid as in `llmpi train`,\n"
    "and the exposed communication (time blocked in TP collectives and in the\n"
    "DP gradient average that backward did not hide) is reported too.\n"
    "\n" MODEL_FLAGS_HELP
    "  --batch B            sequences per step of each data-parallel rank\n"
    "                       (default 8; weak scaling: the global batch is DP x B)\n"
    "  --seq T              tokens per sequence (default 256)\n"
    "  --steps N            timed steps (default 10)\n"
    "  --warmup-steps N     untimed steps first (default 2)\n"
    "  --threads N          CPU threads per rank (default: OMP_NUM_THREADS or all\n"
    "                       cores; under mpirun give each rank its share)\n"
    "  --device D           cpu, cuda or auto (default cpu)\n"
    "  --dtype D            fp32 or bf16 (default fp32): the matmuls' operands;\n"
    "                       MFU is taken against that dtype's peak\n"
    "  --tp T               tensor-parallel size (default 1); DP = ranks / T\n"
    "  --zero N             1: ZeRO-1 optimizer shards over the DP ranks (default 0)\n"
    "  --bucket-mb X        DP gradient allreduce bucket size in MiB (default 25)\n"
    "  --json               print one JSON object instead of text\n"
    "  --profile            also print the time of each op (per step, rank 0)\n";

struct bench_args {
    struct model_flags mf;
    int B, T, steps, warmup, threads, json, profile, tp, zero;
    float bucket_mb;
    const char *device;
    enum ops_dtype dtype; /* --dtype */
};

/* Everything a run holds. */
struct bench {
    struct bench_args a;
    struct topo topo;
    struct gpt2_config cfg;
    const struct ops *ops;
    struct gpt2 model;
    struct dp dp;
    struct optim opt;
    int have_model, have_dp, have_opt;
    float *host, *local; /* full parameters (initialisation), this rank's shard */
    int32_t *tok;        /* B*T + 1 random tokens: inputs tok, targets tok + 1 */
    struct gpt2_profile prof;
};

/* Per-rank sums over the timed steps (seconds). */
struct step_times {
    double total, tp, dp;
};

/* The flags (besides the model's) that take a value. */
static int takes_value(const char *f) {
    static const char *const names[] = {"--batch",        "--seq",       "--steps",
                                        "--warmup-steps", "--threads",   "--tp",
                                        "--zero",         "--bucket-mb", "--device",
                                        "--dtype"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (!strcmp(f, names[k])) return 1;
    return 0;
}

static int parse_args(int argc, char **argv, struct bench_args *a) {
    *a = (struct bench_args){.B = 8,
                             .T = 256,
                             .steps = 10,
                             .warmup = 2,
                             .tp = 1,
                             .bucket_mb = 25.0f,
                             .device = "cpu"};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        int r = model_flags_parse(&a->mf, argc, argv, &i);
        if (r < 0) return -1;
        if (r > 0) continue;
        if (!strcmp(f, "--json")) {
            a->json = 1;
            continue;
        }
        if (!strcmp(f, "--profile")) {
            a->profile = 1;
            continue;
        }
        if (!takes_value(f))
            return err_set("unknown option '%s' (see llmpi bench train --help)", f);
        if (!(v = args_value(argc, argv, &i))) return -1;
        int rc = 0;
        if (!strcmp(f, "--batch"))
            rc = args_int(f, v, 1, 1 << 20, &a->B);
        else if (!strcmp(f, "--seq"))
            rc = args_int(f, v, 1, 1 << 20, &a->T);
        else if (!strcmp(f, "--steps"))
            rc = args_int(f, v, 1, 1 << 20, &a->steps);
        else if (!strcmp(f, "--warmup-steps"))
            rc = args_int(f, v, 0, 1 << 20, &a->warmup);
        else if (!strcmp(f, "--threads"))
            rc = args_int(f, v, 1, 4096, &a->threads);
        else if (!strcmp(f, "--tp"))
            rc = args_int(f, v, 1, 1 << 20, &a->tp);
        else if (!strcmp(f, "--zero"))
            rc = args_int(f, v, 0, 1, &a->zero);
        else if (!strcmp(f, "--bucket-mb"))
            rc = args_float(f, v, 1e-6, 1e6, &a->bucket_mb);
        else if (!strcmp(f, "--dtype"))
            rc = backend_dtype_parse(v, &a->dtype);
        else
            a->device = v;
        if (rc) return -1;
    }
    return 0;
}

/* Ranks started with different flags would disagree about shapes and hang
 * in a collective: compare an FNV-1a hash of the command lines first.
 * Collective; 0 or -1 + err_set (the same on every rank). */
static int same_command_line(int argc, char **argv) {
    if (dist_size() == 1) return 0;
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < argc; i++)
        for (const char *p = argv[i];; p++) {
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
            if (!*p) break;
        }
    int64_t mm[2] = {(int64_t)(h >> 1), -(int64_t)(h >> 1)}; /* max of h and of -h */
    if (MPI_Allreduce(MPI_IN_PLACE, mm, 2, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD))
        dist_fail("comparing the command lines: MPI_Allreduce failed");
    if (mm[0] != -mm[1])
        return err_set("the ranks were started with different command lines "
                       "(compare the mpirun / srun arguments)");
    return 0;
}

/* The model, DP buckets, optimizer, parameters and this DP rank's tokens.
 * Rank-local checks only: -1 + err_set, and the caller agrees. */
static int setup(struct bench *b) {
    const struct bench_args *a = &b->a;
    if (model_flags_resolve(&a->mf, 256, &b->cfg)) return -1;
    if (a->T > b->cfg.max_seq)
        return err_set("--seq %d exceeds the model's context %d", a->T, b->cfg.max_seq);
    if (!(b->ops = backend_select_rank(a->device, b->topo.local_rank, NULL))) return -1;
    if (backend_set_dtype(b->ops, a->dtype)) return -1;
    ops_cpu_set_threads(a->threads);
    if (gpt2_create_tp(&b->model, &b->cfg, b->ops, &b->topo.tp_group)) return -1;
    b->have_model = 1;
    struct gpt2 *m = &b->model;
    if (dp_init(&b->dp, &b->topo.dp_group, m, a->zero, a->bucket_mb)) return -1;
    b->have_dp = 1;
    struct optim_config oc = {OPTIM_ADAMW, 0.1f, 0.0f, 0.9f, 0.95f, 1e-8f};
    if (optim_create_range(&b->opt, &oc, m, b->dp.lo, b->dp.hi)) return -1;
    b->have_opt = 1;
    size_t n = (size_t)a->B * a->T;
    b->host = malloc(m->full.total * sizeof(float));
    b->local = malloc(m->table.total * sizeof(float));
    b->tok = malloc((n + 1) * sizeof(int32_t));
    if (!b->host || !b->local || !b->tok) return err_set("out of memory");
    /* every TP rank draws the whole model and keeps its shard (train.c) */
    param_init(&m->full, &b->cfg, b->host, 1);
    if (shard_extract(&m->full, b->host, &m->shard, b->local)) return -1;
    gpt2_set_params(m, b->local);
    struct rng r; /* DP rank 0 draws what the single-process bench drew */
    rng_seed(&r, 42 + 1000003ULL * (uint64_t)b->topo.dp_rank);
    for (size_t i = 0; i <= n; i++)
        b->tok[i] = (int32_t)(rng_u64(&r) % (uint64_t)b->cfg.vocab_size);
    return 0;
}

static void bench_free(struct bench *b) {
    if (b->have_opt) optim_destroy(&b->opt);
    if (b->have_dp) dp_free(&b->dp, &b->model);
    if (b->have_model) gpt2_destroy(&b->model);
    free(b->host);
    free(b->local);
    free(b->tok);
    topo_free(&b->topo);
}

/* When profiling: the time since t0 into the profile slot `name`. */
static void profile_since(struct bench *b, const char *name, double t0) {
    if (!b->model.profile) return;
    b->ops->sync();
    gpt2_profile_add(&b->prof, name, timer_now() - t0);
}

/* One training step, as `llmpi train` takes it. Adds this rank's blocked
 * communication to *t (TP collectives, DP waits); *loss: the global mean. */
static void train_step(struct bench *b, struct step_times *t, double *loss) {
    struct gpt2 *m = &b->model;
    const struct comm *dpc = &b->topo.dp_group;
    const int B = b->a.B, T = b->a.T;
    double tp0 = m->tp_comm_s, dp_s = 0.0, t0;
    if (gpt2_forward(m, b->tok, b->tok + 1, B, T, loss)) dist_fail("%s", err_msg());
    if (dpc->size > 1) { /* the global mean loss, as train.c */
        t0 = timer_now();
        double acc[2] = {*loss, 1.0};
        if (comm_allreduce(dpc, acc, 2, COMM_F64, COMM_SUM)) dist_fail("%s", err_msg());
        *loss = acc[0] / acc[1];
        dp_s += timer_now() - t0;
        profile_since(b, "dp loss allreduce", t0);
    }
    dp_begin_backward(&b->dp);
    if (gpt2_backward(m) || dp_finish_grads(&b->dp, m)) dist_fail("%s", err_msg());
    dp_s += b->dp.wait_s;
    if (m->profile && b->dp.wait_s > 0.0)
        gpt2_profile_add(&b->prof, "dp wait for gradient average", b->dp.wait_s);
    double norm;
    t0 = timer_now();
    if (dp_clip_grads(&b->dp, m, 1.0, &norm)) dist_fail("%s", err_msg());
    profile_since(b, "clip (grad norm)", t0);
    t0 = timer_now();
    optim_step(&b->opt, m, 3e-4f);
    profile_since(b, "optimizer (adamw)", t0);
    if (b->a.zero && dpc->size > 1) { /* (one DP rank: nothing to gather) */
        b->ops->sync();
        t0 = timer_now();
        if (dp_after_step(&b->dp, m)) dist_fail("%s", err_msg());
        dp_s += timer_now() - t0;
        profile_since(b, "dp zero-1 allgather", t0);
    }
    t->tp += m->tp_comm_s - tp0;
    t->dp += dp_s;
}

/* Warmup, a barrier, then the timed steps; returns this rank's sums. */
static struct step_times run_steps(struct bench *b, double *loss) {
    struct step_times t = {0};
    for (int s = 0; s < b->a.warmup; s++)
        train_step(b, &(struct step_times){0}, loss);
    b->ops->sync();
    if (MPI_Barrier(b->topo.world.mpi)) dist_fail("MPI_Barrier failed");
    if (b->a.profile) b->model.profile = &b->prof;
    double t0 = timer_now();
    for (int s = 0; s < b->a.steps; s++)
        train_step(b, &t, loss);
    b->ops->sync();
    t.total = timer_now() - t0;
    b->model.profile = NULL;
    return t;
}

/* The figures rank 0 prints. */
struct report {
    int ranks, dp, tp;
    double secs;               /* per step, the slowest rank */
    double tp_s, dp_s, comm_s; /* per step, the rank blocked longest */
    double tps, gflops, loss;  /* global */
    double peak;               /* one device's peak FLOP/s in the matmuls' dtype;
                                  0: unknown (CPU) */
    char device[256];          /* its name */
};

/* Collective: the slowest rank's step time, and the breakdown of the rank
 * that was blocked in communication longest (its TP + DP is the max). */
static struct report summarise(const struct bench *b, struct step_times t, double loss) {
    const struct bench_args *a = &b->a;
    int n = b->topo.size;
    double mine[3] = {t.total, t.tp, t.dp}, *all = malloc((size_t)n * sizeof mine);
    if (!all) dist_fail("out of memory");
    if (MPI_Allgather(mine, 3, MPI_DOUBLE, all, 3, MPI_DOUBLE, b->topo.world.mpi))
        dist_fail("gathering the timings: MPI_Allgather failed");
    double total = 0.0, comm = -1.0, tp = 0.0, dp = 0.0;
    for (int k = 0; k < n; k++) {
        const double *v = all + 3 * k;
        if (v[0] > total) total = v[0];
        if (v[1] + v[2] > comm) comm = v[1] + v[2], tp = v[1], dp = v[2];
    }
    free(all);
    struct report r = {.ranks = b->topo.size, .dp = b->topo.dp, .tp = b->topo.tp};
    r.secs = total / a->steps;
    r.tp_s = tp / a->steps;
    r.dp_s = dp / a->steps;
    r.comm_s = r.tp_s + r.dp_s;
    r.tps = (double)r.dp * a->B * a->T / r.secs;
    double flops_per_token = 6.0 * (double)model_num_flop_params(&b->model.full) +
                             12.0 * b->cfg.n_layer * (double)a->T * b->cfg.n_embd;
    r.gflops = flops_per_token * r.tps / 1e9;
    r.loss = loss;
    /* MFU per rank: every rank drives one device, measured against the
     * peak of the dtype its matmuls run in (bf16: the tensor-core peak) */
    r.peak = backend_peak_flops(b->ops, a->dtype == OPS_BF16 ? PEAK_BF16 : PEAK_FP32,
                                r.device, sizeof r.device);
    return r;
}

static void print_json(const struct bench *b, const struct report *r) {
    const struct bench_args *a = &b->a;
    const struct gpt2_config *c = &b->cfg;
    printf("{\"bench\":\"train\",\"device\":\"%s\",\"layers\":%d,\"width\":%d,"
           "\"heads\":%d,\"vocab\":%d,\"batch\":%d,\"seq\":%d,\"threads\":%d,"
           "\"params\":%zu,\"steps\":%d,\"ms_per_step\":%.3f,"
           "\"tokens_per_s\":%.1f,\"gflops\":%.6g,\"loss\":%.6f,"
           "\"ranks\":%d,\"dp\":%d,\"tp\":%d,\"zero\":%d,\"bucket_mb\":%g,"
           "\"global_batch\":%d,\"tokens_per_s_per_rank\":%.1f,"
           "\"gflops_per_rank\":%.6g,\"comm_ms_per_step\":%.3f,\"comm_share\":%.6f,"
           "\"tp_comm_ms_per_step\":%.3f,\"dp_comm_ms_per_step\":%.3f,\"dtype\":\"%s\",",
           b->ops->name, c->n_layer, c->n_embd, c->n_head, c->vocab_size, a->B, a->T,
           a->threads, b->model.full.total, a->steps, r->secs * 1e3, r->tps, r->gflops,
           r->loss, r->ranks, r->dp, r->tp, a->zero, a->bucket_mb, r->dp * a->B,
           r->tps / r->ranks, r->gflops / r->ranks, r->comm_s * 1e3, r->comm_s / r->secs,
           r->tp_s * 1e3, r->dp_s * 1e3, backend_dtype_name(a->dtype));
    if (r->peak > 0) /* a device name has no quotes or backslashes to escape */
        printf("\"gpu\":\"%s\",\"peak_tflops\":%.6g,\"mfu\":%.6f}\n", r->device,
               r->peak / 1e12, r->gflops / r->ranks * 1e9 / r->peak);
    else
        printf("\"peak_tflops\":null,\"mfu\":null}\n");
}

static void print_text(const struct bench *b, const struct report *r) {
    const struct bench_args *a = &b->a;
    printf("bench train: %s, %s matmuls, %d layers, width %d, %.2fM params, batch %d x "
           "%d\n"
           "  %.1f ms/step  %.0f tokens/s  %.1f GFLOP/s (model FLOPs)\n",
           b->ops->name, backend_dtype_name(a->dtype), b->cfg.n_layer, b->cfg.n_embd,
           b->model.full.total / 1e6, a->B, a->T, r->secs * 1e3, r->tps, r->gflops);
    if (r->peak > 0)
        printf("  MFU %.1f%% of one %s's %s peak (%.1f TFLOP/s) per rank\n",
               100.0 * r->gflops / r->ranks * 1e9 / r->peak, r->device,
               backend_dtype_name(a->dtype), r->peak / 1e12);
    if (r->ranks == 1) return;
    char th[32] = "default threads";
    if (a->threads)
        snprintf(th, sizeof th, "%d thread%s", a->threads, a->threads > 1 ? "s" : "");
    printf("  %d ranks = DP %d x TP %d%s, %s per rank; batch %d x %d per DP rank "
           "(global %d x %d: weak scaling)\n"
           "  %.0f tokens/s per rank; exposed communication %.1f ms/step (%.1f%% of the "
           "step): TP %.1f + DP %.1f\n",
           r->ranks, r->dp, r->tp, a->zero ? " (ZeRO-1)" : "", th, a->B, a->T,
           r->dp * a->B, a->T, r->tps / r->ranks, r->comm_s * 1e3,
           100.0 * r->comm_s / r->secs, r->tp_s * 1e3, r->dp_s * 1e3);
}

/* The per-op table, slowest first, in ms per step and share of the step. */
static void print_profile(const struct gpt2_profile *p, int steps, double step_secs,
                          FILE *f) {
    int order[GPT2_PROFILE_SLOTS];
    for (int i = 0; i < p->n; i++)
        order[i] = i;
    for (int i = 1; i < p->n; i++) /* insertion sort by time, descending */
        for (int j = i; j > 0 && p->seconds[order[j]] > p->seconds[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double total = 0.0;
    fprintf(f, "%-28s %10s %7s %8s\n", "op", "ms/step", "share", "calls");
    for (int k = 0; k < p->n; k++) {
        int i = order[k];
        double ms = p->seconds[i] * 1e3 / steps;
        total += ms;
        fprintf(f, "%-28s %10.2f %6.1f%% %8ld\n", p->name[i], ms,
                100.0 * ms / (step_secs * 1e3), p->calls[i] / steps);
    }
    fprintf(f, "%-28s %10.2f %6.1f%%\n", "(sum of ops)", total,
            100.0 * total / (step_secs * 1e3));
}

int bench_train_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(bench_help, stdout);
            return 0;
        }
    }
    dist_set_prog("llmpi bench train");
    if (dist_init(&argc, &argv)) {
        fprintf(stderr, "llmpi bench train: error: %s\n", err_msg());
        return 1;
    }
    static struct bench B; /* the profile is large: off the stack */
    struct bench *b = &B;
    memset(b, 0, sizeof *b);
    dist_exit_if_any(parse_args(argc, argv, &b->a) != 0, err_msg());
    dist_exit_if_any(same_command_line(argc, argv) != 0, err_msg());
    int failed =
        topo_init(&b->topo, MPI_COMM_WORLD, &(struct topo_opts){.tp = b->a.tp}) != 0;
    dist_exit_if_any(failed, err_msg());
    failed = setup(b) != 0;
    int any = dist_any(failed);
    if (any < 0) dist_fail("agreeing on failure: %s", err_msg());
    if (any) dist_exit_if_any(failed, err_msg()); /* exits */
    if (backend_attach_comm(b->ops, &b->topo.tp_group) ||
        backend_attach_comm(b->ops, &b->topo.dp_group))
        dist_fail("%s", err_msg());
    double loss = 0.0;
    struct step_times t = run_steps(b, &loss);
    struct report r = summarise(b, t, loss);
    if (b->topo.rank == 0) {
        if (b->a.json)
            print_json(b, &r);
        else
            print_text(b, &r);
        if (b->a.profile)
            print_profile(&b->prof, b->a.steps, r.secs, b->a.json ? stderr : stdout);
        fflush(stdout);
    }
    bench_free(b);
    dist_finalize();
    return 0;
}
