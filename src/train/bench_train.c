/* src/train/bench_train.c — `llmpi bench train`: training-step throughput.
 *
 * Random tokens, AdamW, a few warmup steps that are not timed, then the
 * mean over the timed steps. Model FLOPs per token follow the usual count:
 *   6 N (forward 2N + backward 4N, N = parameters doing matmuls: all but wpe;
 *        the tied wte counts once, as the LM head)
 * + 12 L T C (attention scores and weighted sum, forward + backward, full
 *        T x T as computed, without the causal half).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "backend.h"
#include "err.h"
#include "gpt2.h"
#include "model_flags.h"
#include "optim.h"
#include "rng.h"
#include "subcommands.h"
#include "timer.h"

static const char *bench_help =
    "usage: llmpi bench train [options]\n"
    "\n"
    "Time training steps (forward, backward, AdamW) on random tokens and print\n"
    "tokens/s and model GFLOP/s. The vocabulary defaults to 256 (byte-level,\n"
    "as `llmpi train` uses today); --vocab 50257 gives GPT-2's.\n"
    "\n" MODEL_FLAGS_HELP "  --batch B            sequences per step (default 8)\n"
    "  --seq T              tokens per sequence (default 256)\n"
    "  --steps N            timed steps (default 10)\n"
    "  --warmup-steps N     untimed steps first (default 2)\n"
    "  --threads N          CPU threads (default: OMP_NUM_THREADS or all cores)\n"
    "  --device D           cpu, cuda or auto (default cpu)\n"
    "  --json               print one JSON object instead of text\n"
    "  --profile            also print the time of each op (per step)\n";

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
    fprintf(f, "%-26s %10s %7s %8s\n", "op", "ms/step", "share", "calls");
    for (int k = 0; k < p->n; k++) {
        int i = order[k];
        double ms = p->seconds[i] * 1e3 / steps;
        total += ms;
        fprintf(f, "%-26s %10.2f %6.1f%% %8ld\n", p->name[i], ms,
                100.0 * ms / (step_secs * 1e3), p->calls[i] / steps);
    }
    fprintf(f, "%-26s %10.2f %6.1f%%\n", "(sum of ops)", total,
            100.0 * total / (step_secs * 1e3));
}

static int bench_train(int argc, char **argv) {
    struct model_flags mf = {0};
    int B = 8, T = 256, steps = 10, warmup = 2, threads = 0, json = 0, profile = 0;
    const char *device = "cpu";
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        int r = model_flags_parse(&mf, argc, argv, &i);
        if (r < 0) return -1;
        if (r > 0) continue;
        if (!strcmp(f, "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(f, "--profile")) {
            profile = 1;
            continue;
        }
        if (!(v = args_value(argc, argv, &i))) return -1;
        if (!strcmp(f, "--batch")) {
            if (args_int(f, v, 1, 1 << 20, &B)) return -1;
        } else if (!strcmp(f, "--seq")) {
            if (args_int(f, v, 1, 1 << 20, &T)) return -1;
        } else if (!strcmp(f, "--steps")) {
            if (args_int(f, v, 1, 1 << 20, &steps)) return -1;
        } else if (!strcmp(f, "--warmup-steps")) {
            if (args_int(f, v, 0, 1 << 20, &warmup)) return -1;
        } else if (!strcmp(f, "--threads")) {
            if (args_int(f, v, 1, 4096, &threads)) return -1;
        } else if (!strcmp(f, "--device"))
            device = v;
        else
            return err_set("unknown option '%s' (see llmpi bench train --help)", f);
    }
    struct gpt2_config cfg;
    if (model_flags_resolve(&mf, 256, &cfg)) return -1;
    if (T > cfg.max_seq)
        return err_set("--seq %d exceeds the model's context %d", T, cfg.max_seq);
    const struct ops *ops = backend_select(device);
    if (!ops) return -1;
    ops_cpu_set_threads(threads);

    struct gpt2 model;
    if (gpt2_create(&model, &cfg, ops)) return -1;
    struct optim opt;
    struct optim_config oc = {OPTIM_ADAMW, 0.1f, 0.0f, 0.9f, 0.95f, 1e-8f};
    size_t n = (size_t)B * T;
    float *host = malloc(model.table.total * sizeof(float));
    int32_t *tok = malloc((n + 1) * sizeof(int32_t));
    int rc = -1;
    if (!host || !tok) {
        err_set("out of memory");
        goto out;
    }
    param_init(&model.table, &cfg, host, 1);
    gpt2_set_params(&model, host);
    if (optim_create(&opt, &oc, &model)) goto out;
    struct rng r;
    rng_seed(&r, 42);
    for (size_t i = 0; i <= n; i++)
        tok[i] = (int32_t)(rng_u64(&r) % (uint64_t)cfg.vocab_size);

    struct gpt2_profile prof = {0};
    double t0 = 0.0, loss = 0.0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            ops->sync();
            t0 = timer_now();
            if (profile) model.profile = &prof;
        }
        if (gpt2_forward(&model, tok, tok + 1, B, T, &loss) || gpt2_backward(&model)) {
            optim_destroy(&opt);
            goto out;
        }
        double t1 = timer_now();
        optim_clip_grads(&model, 1.0);
        if (model.profile) {
            ops->sync();
            gpt2_profile_add(&prof, "clip (grad norm)", timer_now() - t1);
        }
        t1 = timer_now();
        optim_step(&opt, &model, 3e-4f);
        if (model.profile) {
            ops->sync();
            gpt2_profile_add(&prof, "optimizer (adamw)", timer_now() - t1);
        }
    }
    ops->sync();
    double secs = (timer_now() - t0) / steps;
    double tps = (double)n / secs;
    double flops_per_token = 6.0 * (double)model_num_flop_params(&model.table) +
                             12.0 * cfg.n_layer * (double)T * cfg.n_embd;
    double gflops = flops_per_token * tps / 1e9;
    if (json)
        printf("{\"bench\":\"train\",\"device\":\"%s\",\"layers\":%d,\"width\":%d,"
               "\"heads\":%d,\"vocab\":%d,\"batch\":%d,\"seq\":%d,\"threads\":%d,"
               "\"params\":%zu,\"steps\":%d,\"ms_per_step\":%.3f,"
               "\"tokens_per_s\":%.1f,\"gflops\":%.6g,\"loss\":%.6f}\n",
               ops->name, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.vocab_size, B, T,
               threads, model.table.total, steps, secs * 1e3, tps, gflops, loss);
    else
        printf("bench train: %s, %d layers, width %d, %.2fM params, batch %d x %d\n"
               "  %.1f ms/step  %.0f tokens/s  %.1f GFLOP/s (model FLOPs)\n",
               ops->name, cfg.n_layer, cfg.n_embd, model.table.total / 1e6, B, T,
               secs * 1e3, tps, gflops);
    if (profile) print_profile(&prof, steps, secs, json ? stderr : stdout);
    optim_destroy(&opt);
    rc = 0;
out:
    free(host);
    free(tok);
    gpt2_destroy(&model);
    return rc;
}

int bench_train_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(bench_help, stdout);
            return 0;
        }
    }
    if (bench_train(argc, argv)) {
        fprintf(stderr, "llmpi bench train: error: %s\n", err_msg());
        return 1;
    }
    return 0;
}
