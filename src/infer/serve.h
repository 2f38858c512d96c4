/* src/infer/serve.h — INTERNAL to `llmpi serve` (serve.c, serve_coord.c,
 * serve_replica.c; docs/serving.md).
 *
 * Roles under `mpirun -np 1+R*T`: world rank 0 is the coordinator (agents,
 * conversations, load balancer, transcript); ranks 1.. form R replica groups
 * of T consecutive ranks, each running the continuous-batching engine
 * (engine.h) on a copy of the model. The group's first rank is its leader:
 * it receives requests from the coordinator and streams each step's events
 * back (serve_proto.h). A world of one serves from the coordinator's own
 * process through an in-process engine (the same request and event code).
 */
#ifndef LLMPI_SERVE_H
#define LLMPI_SERVE_H

#include "comm.h"
#include "engine.h"
#include "model.h"
#include "sampler.h"
#include "serve_proto.h"
#include "tokenizer.h"

#define SERVE_MAX_PROMPTS 64

struct serve_args {
    const char *ckpt, *agents, *transcript, *device, *balance, *weights;
    const char *scenarios; /* --scenario NAME[,NAME...] or "all" */
    const char *prompts[SERVE_MAX_PROMPTS]; /* --prompt TEXT: completions mode */
    int n_prompts;
    const char *opening; /* --opening TEXT: replaces the scenarios' openings */
    int turns, tp, threads, exact, redact, redact_prompts, max_batch_tokens;
    double kv_cache_mb, replica_timeout;
    /* --prompt mode sampling */
    struct sampler_params sampling;
    int max_tokens;
    const char *stop[SERVE_MAX_STOP];
    int n_stop;
    /* the HTTP API (docs/api.md); http NULL: none */
    const char *http;        /* --http HOST:PORT */
    const char *api_keys;    /* --api-keys FILE */
    const char *model_name;  /* --model-name NAME (default "llmpi") */
    const char *access_log;  /* --access-log FILE, "-" (stderr, the default) or "off" */
    double http_max_body_mb, http_timeout;
    int http_max_queue, http_max_tokens, http_max_connections;
    /* sleep this many seconds after each engine step (0: none): a
     * deliberately slow replica (--step-delay; `llmpi bench serve
     * --slow-replica`, docs/performance.md "Serving") */
    double step_delay_s;
};

/* What every rank loaded: the model and its tokenizer. */
struct serve_model {
    int local_rank; /* place among the replica ranks of its node: its GPU */
    struct gpt2_config cfg;
    float *params; /* host, this rank's shard (freed once a replica holds it);
                      NULL on an MPI coordinator, which needs no weights */
    struct tokenizer *tok;
};

/* A replica's engine over the model (decoder + KV pool). */
struct serve_engine {
    struct decoder *dec;
    struct engine *eng;
};
/* Over this rank's parameters (m->params, the shard table layout of tp; tp
 * NULL: the whole model). With tp, collective over the group: its ranks
 * agree that each has its device, then (CUDA) join tp to NCCL. */
int serve_engine_create(struct serve_engine *se, struct serve_model *m,
                        const struct serve_args *a, struct comm *tp);
void serve_engine_destroy(struct serve_engine *se);

/* Submit a wire request to an engine; on refusal (too long for the pool, a
 * bad setting) append an ERROR event for it to `out` instead, so the
 * coordinator learns why. -1 only when out of memory. */
int serve_engine_submit(struct serve_engine *se, const struct serve_request *r,
                        struct serve_buf *out);
/* One engine step; its events appended to `out` in wire form, then the
 * pool figures (serve_pack_pool). -1 + err_set when the engine failed (the
 * replica is then lost). */
int serve_engine_step(struct serve_engine *se, struct serve_buf *out);
/* Sleep after an engine step as --step-delay asks (serve_args.step_delay_s). */
void serve_step_delay(const struct serve_args *a);
/* The engine's KV pool figures as POOL_USED / POOL_TOTAL events. */
int serve_pack_pool(const struct serve_engine *se, struct serve_buf *out);

/* A replica group's loop (MPI), every rank of the group, until the
 * coordinator's shutdown; group rank 0 is the leader. */
int serve_replica_run(struct serve_model *m, const struct serve_args *a,
                      struct comm *group);

/* The coordinator's loop: n_replicas groups whose leaders are world ranks
 * leader[r], or (n_replicas 1, leader NULL) an in-process engine. Returns
 * 0 when every conversation / prompt finished (some may have failed: their
 * errors are reported), -1 + err_set for a setup error. */
int serve_coord_run(struct serve_model *m, const struct serve_args *a, int n_replicas,
                    const int *leader);

#endif
