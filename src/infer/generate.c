/* src/infer/generate.c — `llmpi generate`: sample text from a checkpoint.
 *
 * Load the checkpoint (config, parameters, tokenizer), encode the prompt,
 * prefill it once, then decode one token at a time over a KV cache
 * (src/infer/gen.c), streaming each token's bytes to stdout as it is
 * produced. stdout carries only the text; the reason for stopping and the
 * speeds go to stderr. All inputs are validated before the model is built.
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
#include "sampler.h"
#include "stopstr.h"
#include "subcommands.h"
#include "tokenizer.h"

static const char *generate_help =
    "usage: llmpi generate --ckpt FILE --prompt TEXT [options]\n"
    "\n"
    "Continue TEXT with a model from a checkpoint: the prompt is processed once,\n"
    "then one token per step over a key/value cache. The text streams to stdout\n"
    "as it is produced; why it stopped and the speed go to stderr. Generation\n"
    "stops at --max-tokens, at <|endoftext|>, at a --stop string or when the\n"
    "model's context is full.\n"
    "\n"
    "  --ckpt FILE          checkpoint (llmpi train --ckpt-dir, llmpi convert)\n"
    "  --prompt TEXT        the text to continue (\"\" starts from <|endoftext|>)\n"
    "  --max-tokens N       tokens to generate at most (default 128)\n"
    "  --temperature T      softmax temperature; 0 = greedy (default 1.0)\n"
    "  --top-k K            sample among the K most likely tokens; 0 = off (default 0)\n"
    "  --top-p P            nucleus: the fewest tokens with mass >= P; 1 = off (default "
    "1)\n"
    "  --repetition-penalty R  divide positive / multiply negative logits of tokens\n"
    "                       already in the text by R; 1 = off (default 1)\n"
    "  --stop STR           stop before STR (repeatable, at most 8)\n"
    "  --seed S             sampling seed: the same seed gives the same text (default "
    "1337)\n"
    "  --echo               print the prompt before the continuation\n"
    "  --quiet              no summary line on stderr\n"
    "  --device D           cpu, cuda or auto (default cpu)\n"
    "  --threads N          CPU threads (default: OMP_NUM_THREADS or all cores)\n";

struct gen_args {
    const char *ckpt, *prompt, *device;
    int max_tokens, top_k, threads, echo, quiet, nstop;
    float temperature, top_p, rep;
    uint64_t seed;
    const char *stop[STOPSTR_MAX];
};

static int parse_args(int argc, char **argv, struct gen_args *a) {
    memset(a, 0, sizeof *a);
    a->device = "cpu";
    a->max_tokens = 128;
    a->temperature = 1.0f;
    a->top_p = 1.0f;
    a->rep = 1.0f;
    a->seed = 1337;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "--echo")) {
            a->echo = 1;
            continue;
        }
        if (!strcmp(f, "--quiet")) {
            a->quiet = 1;
            continue;
        }
        if (strncmp(f, "--", 2) != 0)
            return err_set("unexpected argument '%s' (see llmpi generate --help)", f);
        if (!(v = args_value(argc, argv, &i))) return -1;
        if (!strcmp(f, "--ckpt"))
            a->ckpt = v;
        else if (!strcmp(f, "--prompt"))
            a->prompt = v;
        else if (!strcmp(f, "--device"))
            a->device = v;
        else if (!strcmp(f, "--max-tokens")) {
            if (args_int(f, v, 1, 1 << 30, &a->max_tokens)) return -1;
        } else if (!strcmp(f, "--top-k")) {
            if (args_int(f, v, 0, 1 << 30, &a->top_k)) return -1;
        } else if (!strcmp(f, "--threads")) {
            if (args_int(f, v, 1, 4096, &a->threads)) return -1;
        } else if (!strcmp(f, "--temperature")) {
            if (args_float(f, v, 0.0, 1e6, &a->temperature)) return -1;
        } else if (!strcmp(f, "--top-p")) {
            if (args_float(f, v, 0.0, 1.0, &a->top_p)) return -1;
            if (a->top_p <= 0.0f) return err_set("%s: must be > 0 (1 = off)", f);
        } else if (!strcmp(f, "--repetition-penalty")) {
            if (args_float(f, v, 1e-3, 1e3, &a->rep)) return -1;
        } else if (!strcmp(f, "--seed")) {
            if (args_u64(f, v, &a->seed)) return -1;
        } else if (!strcmp(f, "--stop")) {
            if (a->nstop == STOPSTR_MAX)
                return err_set("at most %d --stop strings", STOPSTR_MAX);
            if (!*v) return err_set("--stop: the string is empty");
            a->stop[a->nstop++] = v;
        } else
            return err_set("unknown option '%s' (see llmpi generate --help)", f);
    }
    if (!a->ckpt) return err_set("--ckpt FILE is required (see llmpi generate --help)");
    if (!a->prompt)
        return err_set("--prompt TEXT is required (see llmpi generate --help)");
    return 0;
}

static int write_stdout(const char *b, size_t n, void *ctx) {
    (void)ctx;
    if (fwrite(b, 1, n, stdout) != n) return -1;
    return fflush(stdout) ? -1 : 0;
}

static int run(const struct gen_args *a) {
    struct gpt2_config cfg;
    float *params = NULL;
    struct tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    struct decoder dec = {0};
    struct kv_cache cache = {0};
    struct sampler smp = {0};
    struct stopstr stop = {0};
    struct gen_result res = {0};
    int rc = -1;

    /* cheap checks first: sampling settings, device */
    struct sampler_params sp = {a->temperature, a->top_k, a->top_p, a->rep, a->seed};
    if (sampler_params_check(&sp)) return -1;
    const struct ops *ops = backend_select(a->device);
    if (!ops) return -1;
    ops_cpu_set_threads(a->threads);

    if (ckpt_load_model(a->ckpt, &cfg, &params, &tok)) goto out;
    if (!tok) {
        if (cfg.vocab_size != 256) {
            err_set("%s: the checkpoint holds no tokenizer", a->ckpt);
            goto out;
        }
        if (!(tok = tokenizer_bytes())) goto out;
    }
    int tvocab = tokenizer_vocab_size(tok);
    if (tvocab > cfg.vocab_size) {
        err_set("%s: the tokenizer has %d tokens but the model's vocabulary is %d",
                a->ckpt, tvocab, cfg.vocab_size);
        goto out;
    }
    int32_t eot = tokenizer_eot(tok);
    if (tokenizer_encode(tok, a->prompt, strlen(a->prompt), &ids, &n, &cap)) goto out;
    if (n == 0) {
        if (eot < 0) {
            err_set("the prompt is empty and the tokenizer has no <|endoftext|> to start "
                    "from");
            goto out;
        }
        int32_t *p = realloc(ids, sizeof *ids);
        if (!p) {
            err_set("out of memory");
            goto out;
        }
        ids = p;
        ids[0] = eot;
        n = 1;
    }
    if (n > (size_t)cfg.max_seq) {
        err_set("the prompt is %zu tokens but the model's context is %d tokens", n,
                cfg.max_seq);
        goto out;
    }

    if (decoder_create(&dec, &cfg, ops, params, 0)) goto out;
    free(params);
    params = NULL;
    if (kvcache_create(&cache, ops, &cfg, 1, 0)) goto out;
    int slot = kvcache_acquire(&cache);
    if (slot < 0) goto out;
    if (sampler_init(&smp, &sp, cfg.vocab_size)) goto out;
    if (stopstr_init(&stop, a->stop, a->nstop)) goto out;

    if (a->echo && write_stdout(a->prompt, strlen(a->prompt), NULL)) {
        err_set("writing to stdout failed");
        goto out;
    }
    struct gen_request req = {
        .prompt = ids,
        .n_prompt = (int)n,
        .max_tokens = a->max_tokens,
        .eot = eot,
        .vocab_limit = tvocab,
        .sampler = &smp,
        .stop = a->nstop ? &stop : NULL,
        .tok = tok,
    };
    if (gen_run(&dec, &cache, slot, &req, write_stdout, NULL, &res)) goto out;
    if (!a->quiet) {
        const char *why = res.why == GEN_STOP_MAX_TOKENS ? "reached --max-tokens"
                          : res.why == GEN_STOP_EOT ? "the model produced <|endoftext|>"
                          : res.why == GEN_STOP_STRING ? "a stop string"
                                                       : "the context is full";
        fprintf(stderr,
                "\n[llmpi generate: %zu prompt + %d generated tokens; stopped: %s", n,
                res.n_generated, why);
        if (res.why == GEN_STOP_CONTEXT)
            fprintf(stderr, " (%d tokens, the model's context length)", cfg.max_seq);
        fprintf(stderr, "; prefill %.1f tokens/s",
                n / (res.prefill_s > 0 ? res.prefill_s : 1e-9));
        if (res.n_decode_steps)
            fprintf(stderr, ", decode %.1f tokens/s",
                    res.n_decode_steps / (res.decode_s > 0 ? res.decode_s : 1e-9));
        fprintf(stderr, " on %s]\n", ops->name);
    }
    rc = 0;
out:
    gen_result_free(&res);
    stopstr_free(&stop);
    sampler_free(&smp);
    kvcache_destroy(&cache);
    decoder_destroy(&dec);
    free(ids);
    free(params);
    if (tok) tokenizer_free(tok);
    return rc;
}

int generate_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(generate_help, stdout);
            return 0;
        }
    }
    struct gen_args a;
    if (parse_args(argc, argv, &a) || run(&a)) {
        fflush(stdout);
        fprintf(stderr, "llmpi generate: error: %s\n", err_msg());
        return 1;
    }
    return 0;
}
