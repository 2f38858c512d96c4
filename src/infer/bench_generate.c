/* src/infer/bench_generate.c — `llmpi bench generate`: batch-1 generation speed.
 *
 * A model with random weights (or a checkpoint's), a prompt of P random
 * tokens, then N decode steps through the same loop as `llmpi generate`
 * (src/infer/gen.c: KV cache, sampler at temperature 1, no early stop).
 * Reported: prefill tokens/s (P / prefill time) and decode tokens/s (N /
 * decode time, one position per step, sampling excluded and shown apart).
 * One short untimed run first warms threads, caches and allocations; the
 * timed numbers are the mean of --runs runs.
 * Decode FLOPs per token: 2 N (N = parameters doing matmuls: all but wpe,
 * the LM head counted once) + 4 L C t for attention over t cached positions,
 * t averaged over the timed steps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "backend.h"
#include "ckpt.h"
#include "decoder.h"
#include "err.h"
#include "gen.h"
#include "kvcache.h"
#include "model_flags.h"
#include "rng.h"
#include "sampler.h"
#include "subcommands.h"

static const char *bench_help =
    "usage: llmpi bench generate [options]\n"
    "\n"
    "Time batch-1 generation: prefill P random tokens, then N decode steps over a\n"
    "KV cache (the loop of `llmpi generate`), and print prefill and decode\n"
    "tokens/s. Random weights for --model, or a checkpoint's with --ckpt. The\n"
    "vocabulary defaults to 256 (byte-level, as `llmpi bench train`); --vocab\n"
    "50257 gives GPT-2's.\n"
    "\n" MODEL_FLAGS_HELP
    "  --ckpt FILE          a checkpoint's model instead of random weights\n"
    "  --prompt-tokens P    prompt length (default 64)\n"
    "  --tokens N           timed decode steps (default 64); P + N <= context\n"
    "  --runs R             timed runs, averaged (default 1)\n"
    "  --threads N          CPU threads (default: OMP_NUM_THREADS or all cores)\n"
    "  --device D           cpu, cuda or auto (default cpu)\n"
    "  --json               print one JSON object instead of text\n";

struct bench_args {
    struct model_flags mf;
    const char *ckpt, *device;
    int prompt, tokens, runs, threads, json;
};

static int parse(int argc, char **argv, struct bench_args *a) {
    memset(a, 0, sizeof *a);
    a->device = "cpu";
    a->prompt = 64;
    a->tokens = 64;
    a->runs = 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "--json")) {
            a->json = 1;
            continue;
        }
        int mf = model_flags_parse(&a->mf, argc, argv, &i);
        if (mf < 0) return -1;
        if (mf) continue;
        if (!(v = args_value(argc, argv, &i))) return -1;
        int *ip = NULL;
        if (!strcmp(f, "--ckpt"))
            a->ckpt = v;
        else if (!strcmp(f, "--device"))
            a->device = v;
        else if (!strcmp(f, "--prompt-tokens"))
            ip = &a->prompt;
        else if (!strcmp(f, "--tokens"))
            ip = &a->tokens;
        else if (!strcmp(f, "--runs"))
            ip = &a->runs;
        else if (!strcmp(f, "--threads"))
            ip = &a->threads;
        else
            return err_set("unknown option '%s' (see llmpi bench generate --help)", f);
        if (ip && args_int(f, v, 1, 1 << 20, ip)) return -1;
    }
    return 0;
}

/* Model config and host parameters: from the checkpoint or random. */
static int load_model(const struct bench_args *a, struct gpt2_config *cfg,
                      float **params) {
    if (a->ckpt) {
        if (model_flags_any_shape(&a->mf))
            return err_set(
                "--ckpt fixes the model's shape: drop --layers/--heads/--width/"
                "--context/--vocab");
        return ckpt_load_model(a->ckpt, cfg, params, NULL);
    }
    if (model_flags_resolve(&a->mf, 256, cfg)) return -1;
    struct param_table t;
    if (param_table_build(cfg, &t)) return -1;
    *params = malloc(t.total * sizeof **params);
    if (!*params) {
        param_table_free(&t);
        return err_set("out of memory for %zu parameters", t.total);
    }
    param_init(&t, cfg, *params, 1);
    param_table_free(&t);
    return 0;
}

/* One generation of P prompt tokens + N decode steps in a fresh slot. */
static int one_run(struct decoder *d, struct kv_cache *c, const int32_t *prompt, int P,
                   int N, uint64_t seed, struct gen_result *r) {
    struct sampler s;
    struct sampler_params sp = sampler_defaults();
    sp.seed = seed;
    if (sampler_init(&s, &sp, d->cfg.vocab_size)) return -1;
    int slot = kvcache_acquire(c);
    struct gen_request req = {
        .prompt = prompt, .n_prompt = P, .max_tokens = N + 1, .eot = -1, .sampler = &s};
    int rc = slot < 0 ? -1 : gen_run(d, c, slot, &req, NULL, NULL, r);
    if (slot >= 0) kvcache_release(c, slot);
    sampler_free(&s);
    if (rc == 0) gen_result_free(r);
    return rc;
}

static int bench(const struct bench_args *a) {
    struct gpt2_config cfg;
    float *params = NULL;
    int32_t *prompt = NULL;
    struct decoder d = {0};
    struct kv_cache c = {0};
    int rc = -1;
    const struct ops *ops = backend_select(a->device);
    if (!ops) return -1;
    ops_cpu_set_threads(a->threads);
    if (load_model(a, &cfg, &params)) goto out;
    const int P = a->prompt, N = a->tokens;
    if (P + N > cfg.max_seq) {
        err_set("--prompt-tokens %d + --tokens %d exceed the model's context %d", P, N,
                cfg.max_seq);
        goto out;
    }
    if (decoder_create(&d, &cfg, ops, params, 0)) goto out;
    if (kvcache_create(&c, ops, &cfg, 1, 0)) goto out;
    prompt = malloc((size_t)P * sizeof *prompt);
    if (!prompt) {
        err_set("out of memory");
        goto out;
    }
    struct rng r;
    rng_seed(&r, 42);
    for (int i = 0; i < P; i++)
        prompt[i] = (int32_t)(rng_u64(&r) % (uint64_t)cfg.vocab_size);

    struct gen_result g;
    int wp = P < 8 ? P : 8, wn = N < 4 ? N : 4;
    if (one_run(&d, &c, prompt, wp, wn, 0, &g)) goto out; /* warm-up */
    double prefill = 0.0, decode = 0.0, sample = 0.0;
    for (int run = 0; run < a->runs; run++) {
        if (one_run(&d, &c, prompt, P, N, (uint64_t)run + 1, &g)) goto out;
        if (g.n_decode_steps != N) {
            err_set("internal: %d decode steps instead of %d", g.n_decode_steps, N);
            goto out;
        }
        prefill += g.prefill_s;
        decode += g.decode_s;
        sample += g.sample_s;
    }
    prefill /= a->runs;
    decode /= a->runs;
    sample /= a->runs;
    double prefill_tps = P / prefill, decode_tps = N / decode;
    double mean_t = P + (N + 1) / 2.0; /* mean positions attended per decode step */
    double flops = 2.0 * (double)model_num_flop_params(&d.table) +
                   4.0 * cfg.n_layer * (double)cfg.n_embd * mean_t;
    double gflops = flops * decode_tps / 1e9;
    if (a->json)
        printf("{\"bench\":\"generate\",\"device\":\"%s\",\"layers\":%d,\"width\":%d,"
               "\"heads\":%d,\"vocab\":%d,\"context\":%d,\"threads\":%d,\"params\":%zu,"
               "\"prompt_tokens\":%d,\"tokens\":%d,\"runs\":%d,"
               "\"prefill_tokens_per_s\":%.1f,\"decode_tokens_per_s\":%.2f,"
               "\"decode_ms_per_token\":%.3f,\"sample_ms_per_token\":%.3f,"
               "\"decode_gflops\":%.2f}\n",
               ops->name, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.vocab_size,
               cfg.max_seq, a->threads, d.table.total, P, N, a->runs, prefill_tps,
               decode_tps, decode * 1e3 / N, sample * 1e3 / (N + 1), gflops);
    else
        printf(
            "bench generate: %s, %d layers, width %d, vocab %d, %.2fM params, batch 1\n"
            "  prefill %d tokens: %.1f ms, %.0f tokens/s\n"
            "  decode %d tokens: %.2f ms/token, %.1f tokens/s, %.1f GFLOP/s (model "
            "FLOPs)\n"
            "  sampling: %.3f ms/token\n",
            ops->name, cfg.n_layer, cfg.n_embd, cfg.vocab_size, d.table.total / 1e6, P,
            prefill * 1e3, prefill_tps, N, decode * 1e3 / N, decode_tps, gflops,
            sample * 1e3 / (N + 1));
    rc = 0;
out:
    kvcache_destroy(&c);
    decoder_destroy(&d);
    free(prompt);
    free(params);
    return rc;
}

int bench_generate_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(bench_help, stdout);
            return 0;
        }
    }
    struct bench_args a;
    if (parse(argc, argv, &a) || bench(&a)) {
        fprintf(stderr, "llmpi bench generate: error: %s\n", err_msg());
        return 1;
    }
    return 0;
}
