/* src/infer/serve.c — `llmpi serve`: flags, the roles of the ranks, start-up
 * and shutdown (docs/serving.md). The coordinator is serve_coord.c, the
 * replica leader serve_replica.c.
 *
 * Start-up is checked everywhere before anything runs: every rank parses
 * the flags and loads the checkpoint (each replica needs the model, the
 * coordinator its tokenizer and context), then all agree; one message from
 * the lowest failing rank and every rank exits 1. After that, a replica
 * that fails is the coordinator's business (it serves on with the others).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ckpt.h"
#include "ckpt_shard.h"
#include "dist.h"
#include "err.h"
#include "serve.h"
#include "subcommands.h"

static const char *serve_help =
    "usage: llmpi serve --ckpt FILE (--scenario NAME --agents FILE | --prompt TEXT... |\n"
    "                   --http HOST:PORT) [options]\n"
    "\n"
    "Serve a checkpoint to agents. Under mpirun -np 1+R*T, rank 0 is the\n"
    "coordinator and the other ranks form R replica groups of T ranks, each with\n"
    "a copy of the model and a continuous-batching engine; alone, the one\n"
    "process does both (docs/serving.md, docs/agents.md).\n"
    "\n"
    "what to run:\n"
    "  --ckpt FILE          the model (an llmpi checkpoint; required)\n"
    "  --agents FILE        agents and scenarios (JSON or YAML; docs/agents.md)\n"
    "  --scenario NAMES     run these scenarios to completion, printing the\n"
    "                       dialogue: a name, a comma list, or all\n"
    "  --turns N            end each conversation after N agent turns\n"
    "  --opening TEXT       replace the scenarios' opening line\n"
    "  --transcript FILE    every message as a JSON line (docs/agents.md)\n"
    "  --prompt TEXT        complete TEXT (repeatable, up to 64): one JSON line\n"
    "                       per prompt on stdout, in order\n"
    "sampling for --prompt (agents take theirs from the agents file):\n"
    "  --max-tokens N (64) --temperature X (1) --top-k K (0: off) --top-p P (1)\n"
    "  --repetition-penalty X (1) --seed S (0) --stop STR (repeatable, up to 4)\n"
    "replicas:\n"
    "  --tp T               ranks per replica group: each group holds the model\n"
    "                       split tensor-parallel over T ranks (default 1)\n"
    "  --balance POLICY     round-robin, random, weighted or least-outstanding\n"
    "                       (default least-outstanding)\n"
    "  --weights W1,W2,...  per replica group, for weighted (else the agents\n"
    "                       file's replicas.weights, else all 1)\n"
    "  --replica-timeout S  a group with work that stays silent S seconds is\n"
    "                       marked down and its requests go elsewhere (default 60)\n"
    "  --kv-cache-mb X      KV cache pool per replica (default 256)\n"
    "  --max-batch-tokens N tokens per engine step (default: the decoder's chunk)\n"
    "  --step-delay S       sleep S seconds after each engine step: a deliberately\n"
    "                       slow replica, to try time-outs and back-pressure\n"
    "  --exact              one forward per request: bitwise the tokens of\n"
    "                       llmpi generate (slower)\n"
    "  --device D           cpu, cuda or auto (default cpu)\n"
    "  --threads N          CPU threads per rank\n"
    "the HTTP API (docs/api.md; runs until SIGINT or SIGTERM):\n"
    "  --http HOST:PORT     serve OpenAI-style endpoints there (HOST defaults to\n"
    "                       127.0.0.1; port 0 picks a free one, printed at start)\n"
    "  --api-keys FILE      require 'Authorization: Bearer KEY' with keys from FILE,\n"
    "                       each limited to some models (format: docs/api.md)\n"
    "  --model-name NAME    the bare model's name in \"model\" (default llmpi);\n"
    "                       agent names (--agents) are models too\n"
    "  --http-max-queue N   generations queued or running before 429 (default 64)\n"
    "  --http-max-tokens N  the largest max_tokens a request may ask (default:\n"
    "                       the model's context)\n"
    "  --http-max-body-mb X request bodies over X MiB get 413 (default 1)\n"
    "  --http-timeout S     a request still unanswered after S seconds is\n"
    "                       cancelled with 504 (default 300)\n"
    "  --http-max-connections N  open connections before 429 (default 256)\n"
    "  --access-log FILE    a line per request (never a key or a text): a file,\n"
    "                       - for stderr (default), or off\n"
    "privacy:\n"
    "  --redact             mask e-mail addresses, phone and card numbers and IP\n"
    "                       addresses in the printed dialogue, the transcript and\n"
    "                       what the HTTP API sends out\n"
    "  --redact-prompts     also in what the model sees\n";

static int parse_args(int argc, char **argv, struct serve_args *a) {
    memset(a, 0, sizeof *a);
    a->device = "cpu";
    a->balance = "least-outstanding";
    a->tp = 1;
    a->kv_cache_mb = 256;
    a->replica_timeout = 60;
    a->sampling = sampler_defaults();
    a->max_tokens = 64;
    a->model_name = "llmpi";
    a->access_log = "-";
    a->http_max_body_mb = 1;
    a->http_timeout = 300;
    a->http_max_queue = 64;
    a->http_max_connections = 256;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        float x;
        /* clang-format off */
#define VALUE() do { if (!(v = args_value(argc, argv, &i))) return -1; } while (0)
#define INT(dst, lo, hi) do { VALUE(); if (args_int(f, v, lo, hi, dst)) return -1; } while (0)
#define FLT(dst, lo, hi) do { VALUE(); if (args_float(f, v, lo, hi, &x)) return -1; *(dst) = x; } while (0)
        if (!strcmp(f, "--exact")) a->exact = 1;
        else if (!strcmp(f, "--redact")) a->redact = 1;
        else if (!strcmp(f, "--redact-prompts")) a->redact_prompts = 1;
        else if (!strcmp(f, "--ckpt")) { VALUE(); a->ckpt = v; }
        else if (!strcmp(f, "--agents")) { VALUE(); a->agents = v; }
        else if (!strcmp(f, "--scenario")) { VALUE(); a->scenarios = v; }
        else if (!strcmp(f, "--opening")) { VALUE(); a->opening = v; }
        else if (!strcmp(f, "--transcript")) { VALUE(); a->transcript = v; }
        else if (!strcmp(f, "--device")) { VALUE(); a->device = v; }
        else if (!strcmp(f, "--balance")) { VALUE(); a->balance = v; }
        else if (!strcmp(f, "--weights")) { VALUE(); a->weights = v; }
        else if (!strcmp(f, "--http")) { VALUE(); a->http = v; }
        else if (!strcmp(f, "--api-keys")) { VALUE(); a->api_keys = v; }
        else if (!strcmp(f, "--model-name")) { VALUE(); a->model_name = v; }
        else if (!strcmp(f, "--access-log")) { VALUE(); a->access_log = v; }
        else if (!strcmp(f, "--http-max-queue")) INT(&a->http_max_queue, 1, 1 << 20);
        else if (!strcmp(f, "--http-max-tokens")) INT(&a->http_max_tokens, 1, 1 << 30);
        else if (!strcmp(f, "--http-max-connections")) INT(&a->http_max_connections, 1, 1 << 16);
        else if (!strcmp(f, "--http-max-body-mb")) FLT(&a->http_max_body_mb, 1e-6, 1024);
        else if (!strcmp(f, "--http-timeout")) FLT(&a->http_timeout, 0.001, 1e7);
        else if (!strcmp(f, "--step-delay")) FLT(&a->step_delay_s, 0.0, 10.0);
        else if (!strcmp(f, "--prompt")) {
            VALUE();
            if (a->n_prompts == SERVE_MAX_PROMPTS) return err_set("at most %d --prompt", SERVE_MAX_PROMPTS);
            a->prompts[a->n_prompts++] = v;
        }
        else if (!strcmp(f, "--stop")) {
            VALUE();
            if (a->n_stop == SERVE_MAX_STOP) return err_set("at most %d --stop", SERVE_MAX_STOP);
            if (!v[0]) return err_set("--stop: the string is empty");
            a->stop[a->n_stop++] = v;
        }
        else if (!strcmp(f, "--turns")) INT(&a->turns, 1, 1000000);
        else if (!strcmp(f, "--tp")) INT(&a->tp, 1, 4096);
        else if (!strcmp(f, "--threads")) INT(&a->threads, 1, 4096);
        else if (!strcmp(f, "--max-batch-tokens")) INT(&a->max_batch_tokens, 1, 1 << 20);
        else if (!strcmp(f, "--max-tokens")) INT(&a->max_tokens, 1, 1 << 20);
        else if (!strcmp(f, "--top-k")) INT(&a->sampling.top_k, 0, 1 << 20);
        else if (!strcmp(f, "--temperature")) FLT(&a->sampling.temperature, 0.0, 100.0);
        else if (!strcmp(f, "--top-p")) FLT(&a->sampling.top_p, 1e-6, 1.0);
        else if (!strcmp(f, "--repetition-penalty")) FLT(&a->sampling.repetition_penalty, 1e-3, 100.0);
        else if (!strcmp(f, "--kv-cache-mb")) FLT(&a->kv_cache_mb, 0.001, 1e7);
        else if (!strcmp(f, "--replica-timeout")) FLT(&a->replica_timeout, 0.001, 1e7);
        else if (!strcmp(f, "--seed")) { VALUE(); if (args_u64(f, v, &a->sampling.seed)) return -1; }
        else return err_set("unknown option '%s' (see llmpi serve --help)", f);
#undef VALUE
#undef INT
#undef FLT
        /* clang-format on */
    }
    if (!a->ckpt) return err_set("--ckpt FILE is required (see llmpi serve --help)");
    if (!a->scenarios && !a->n_prompts && !a->http)
        return err_set("nothing to serve: give --scenario NAME (with --agents FILE), "
                       "--prompt TEXT or --http HOST:PORT");
    if (a->api_keys && !a->http) return err_set("--api-keys needs --http HOST:PORT");
    if (a->scenarios && !a->agents)
        return err_set("--scenario needs --agents FILE (the scenarios are declared there)");
    return 0;
}

/* What this rank needs of the checkpoint: the config and tokenizer always;
 * with_params: its TP shard's parameters (tp_rank of tp), read as its own
 * hyperslabs of the file (ckpt_load_shard), so no rank reads the whole model
 * to keep a part of it. */
static int load_model(const struct serve_args *a, int with_params, int tp, int tp_rank,
                      struct serve_model *m) {
    memset(m, 0, sizeof *m);
    if (ckpt_load_shard_meta(a->ckpt, &m->cfg, &m->tok, NULL)) return -1;
    if (!m->tok) {
        if (m->cfg.vocab_size != 256)
            return err_set("%s: the checkpoint holds no tokenizer", a->ckpt);
        if (!(m->tok = tokenizer_bytes())) return -1;
    }
    if (!with_params) return 0;
    struct shard_table st;
    if (shard_table_build(&m->cfg, tp, tp_rank, &st)) return -1;
    int rc = -1;
    if (!(m->params = malloc(st.local.total * sizeof(float))))
        err_set("out of memory for %zu parameters", st.local.total);
    else
        rc = ckpt_load_shard(a->ckpt, &st, m->params, NULL, NULL);
    shard_table_free(&st);
    return rc;
}

/* This rank's place among the replica ranks of its node, which picks its
 * GPU: the coordinator (world rank 0) holds no model, so on its node the
 * replica ranks count from the next one and the first replica takes GPU 0. */
static int node_rank(int *local_rank) {
    MPI_Comm node;
    int world, lowest;
    MPI_Comm_rank(MPI_COMM_WORLD, &world);
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) !=
        MPI_SUCCESS)
        return err_set("finding the ranks of this node failed");
    MPI_Comm_rank(node, local_rank); /* ordered by world rank (key 0) */
    MPI_Allreduce(&world, &lowest, 1, MPI_INT, MPI_MIN, node);
    if (lowest == 0 && world != 0) --*local_rank;
    MPI_Comm_free(&node);
    return 0;
}

int serve_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(serve_help, stdout);
            return 0;
        }
    }
    dist_set_prog("llmpi serve");
    if (dist_init(&argc, &argv)) {
        fprintf(stderr, "llmpi serve: error: %s\n", err_msg());
        return 1;
    }
    static struct serve_args A;
    struct serve_model m = {0};
    const int rank = dist_rank(), size = dist_size();
    int failed = parse_args(argc, argv, &A) != 0;
    if (!failed && size > 1 && (size - 1) % A.tp != 0)
        failed = err_set("%d ranks: the coordinator plus replica groups of --tp %d ranks "
                         "need 1 + R x %d ranks",
                         size, A.tp, A.tp) != 0;
    if (!failed && size == 1 && A.tp > 1)
        failed = err_set("--tp %d needs replica groups: run under mpirun -np 1+R*%d", A.tp,
                         A.tp) != 0;
    dist_exit_if_any(failed, err_msg());
    /* replica groups: ranks 1.. in consecutive blocks of --tp */
    const int in_group = rank > 0, tp_rank = in_group ? (rank - 1) % A.tp : 0;
    struct comm group = {0};
    MPI_Comm gc = MPI_COMM_NULL;
    if (size > 1 &&
        MPI_Comm_split(MPI_COMM_WORLD, in_group ? (rank - 1) / A.tp : MPI_UNDEFINED, rank,
                       &gc) != MPI_SUCCESS)
        dist_fail("splitting the replica groups failed");
    failed = gc != MPI_COMM_NULL && comm_adopt(&group, gc, "replica") != 0;
    int local_rank = 0; /* collective: every rank, failed or not */
    failed = node_rank(&local_rank) != 0 || failed;
    failed = failed || load_model(&A, rank > 0 || size == 1, A.tp, tp_rank, &m) != 0;
    m.local_rank = local_rank;
    dist_exit_if_any(failed, err_msg());

    int rc = 0;
    const int R = size > 1 ? (size - 1) / A.tp : 1;
    if (rank == 0) {
        int *leader = NULL;
        if (size > 1) {
            leader = malloc((size_t)R * sizeof *leader);
            for (int r = 0; leader && r < R; r++)
                leader[r] = 1 + r * A.tp;
        }
        if (size > 1 && !leader)
            rc = err_set("out of memory");
        else
            rc = serve_coord_run(&m, &A, R, leader);
        free(leader);
        if (rc) {
            fflush(stdout);
            /* the replicas were told to shut down; end the job with the reason */
            if (size > 1) dist_fail("%s", err_msg());
            fprintf(stderr, "llmpi serve: error: %s\n", err_msg());
        }
    } else {
        /* An HTTP server stops on SIGINT/SIGTERM: mpirun forwards the
         * signal to every rank, but only the coordinator may act on it (it
         * answers its clients, then shuts the replicas down in order). */
        if (A.http) {
            signal(SIGINT, SIG_IGN);
            signal(SIGTERM, SIG_IGN);
        }
        rc = serve_replica_run(&m, &A, &group);
    }
    comm_close(&group);
    free(m.params);
    if (m.tok) tokenizer_free(m.tok);
    dist_finalize();
    return rc ? 1 : 0;
}
