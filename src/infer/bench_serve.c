/* src/infer/bench_serve.c — `llmpi bench serve`: serving throughput and
 * latency per load-balancing policy, against a naive server, in one run.
 *
 * Why: continuous batching and the balancer are only worth their code if a
 * loaded server answers faster with them; this measures both on the same
 * request schedule, replicas and process (docs/performance.md, "Serving").
 *
 * What: a seeded schedule of N requests (Poisson arrivals at --rate, or all
 * at once; prompt lengths, output lengths and token ids drawn uniformly),
 * then one run of the whole schedule per --balance policy and one naive
 * run. The roles are those of `llmpi serve`: rank 0 is this file's own
 * coordinator loop, ranks 1..R are replicas running serve_replica_run (the
 * engine behind the wire format of serve_proto.h); a world of one uses one
 * in-process engine. The naive run is the same engine fed one request at a
 * time per replica (the coordinator holds the rest in a FIFO: exactly what
 * engine max_seqs 1 does), so nothing is batched. --concurrency C caps the
 * requests a client has out (closed loop: the next one goes when one ends).
 * --slow-replica R:S makes replica R sleep S seconds after every engine step
 * (serve_args.step_delay_s), to show what each policy does with it.
 *
 * Per request: TTFT = first token received - issue, TPOT = (last token -
 * first token) / (tokens - 1), where issue is the arrival, or under
 * --concurrency the later of the arrival and the moment a client slot
 * freed. Throughput = tokens generated / (last finish - first arrival).
 * Replicas decode no text (no tokenizer, no end-of-text id): every request
 * generates exactly its max_tokens, so every run does the same work.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "args.h"
#include "balancer.h"
#include "ckpt.h"
#include "comm.h"
#include "dist.h"
#include "err.h"
#include "model_flags.h"
#include "rng.h"
#include "serve.h"
#include "serve_mpi.h"
#include "subcommands.h"
#include "timer.h"

#define MAX_POLICIES 8
#define MAX_REPLICAS 64

static const char *bench_help =
    "usage: llmpi bench serve [options]        (under mpirun -np 1+R for R replicas)\n"
    "\n"
    "Serve a seeded schedule of requests (Poisson arrivals, mixed prompt and\n"
    "output lengths, random token ids) once per balancing policy and once through\n"
    "a naive server (one request at a time per replica, no batching), and report\n"
    "per run: generated tokens/s, time to first token and time per output token\n"
    "(p50, p99). Rank 0 is the coordinator, ranks 1..R are replicas running the\n"
    "continuous-batching engine of `llmpi serve`; alone, one in-process engine.\n"
    "\n"
    "model (random weights, or a checkpoint's):\n"
    "  --model PRESET       tiny, gpt2-mini, gpt2, gpt2-medium, gpt2-large,\n"
    "                       gpt2-xl (default gpt2-mini, vocabulary 50257)\n"
    "  --layers N --heads N --width N --context N --vocab N\n"
    "                       override the preset's shape\n"
    "  --ckpt FILE          a checkpoint's model instead of random weights\n"
    "schedule:\n"
    "  --requests N         requests per run (default 64)\n"
    "  --rate X             Poisson arrivals, X requests/s (default 4); inf: all\n"
    "                       at once\n"
    "  --concurrency C      at most C requests out at once (closed loop: the next\n"
    "                       goes when one ends; default 0: no limit)\n"
    "  --prompt-tokens A:B  prompt lengths, uniform in [A, B] (default 16:128)\n"
    "  --gen-tokens A:B     output lengths, uniform in [A, B] (default 16:128)\n"
    "  --seed S             schedule and sampling seed (default 1)\n"
    "runs:\n"
    "  --balance LIST       policies, comma-separated, or all: round-robin,\n"
    "                       random, weighted, least-outstanding (default: all with\n"
    "                       2+ replicas; least-outstanding alone with one, where\n"
    "                       every policy picks the same replica)\n"
    "  --weights W1,W2,...  per replica, for weighted (default all 1)\n"
    "  --no-baseline        skip the naive run\n"
    "  --slow-replica R:S   replica R (0-based) sleeps S seconds after each step\n"
    "replicas:\n"
    "  --kv-cache-mb X      KV cache pool per replica (default 256)\n"
    "  --max-batch-tokens N tokens per engine step (default: the decoder's chunk)\n"
    "  --threads N          CPU threads per rank (default: OMP_NUM_THREADS or all)\n"
    "  --device D           cpu, cuda or auto (default cpu)\n"
    "output:\n"
    "  --json               one JSON object on stdout instead of the table\n"
    "  --csv FILE           one CSV row per run\n";

struct bench_args {
    struct model_flags mf;
    const char *ckpt, *device, *balance, *weights, *csv;
    int requests, concurrency, p_lo, p_hi, g_lo, g_hi;
    double rate; /* requests/s; INFINITY: all at t = 0 */
    uint64_t seed;
    int baseline, slow_replica, threads, max_batch_tokens, json;
    double slow_s, kv_cache_mb;
    int n_pol;
    enum balance_policy pol[MAX_POLICIES];
};

/* "A:B" with lo <= A <= B <= hi. */
static int parse_range(const char *f, const char *v, int lo, int hi, int *a, int *b) {
    char *end;
    long x = strtol(v, &end, 10), y;
    if (end == v || *end != ':') return err_set("%s '%s': expected A:B", f, v);
    const char *s = end + 1;
    y = strtol(s, &end, 10);
    if (end == s || *end) return err_set("%s '%s': expected A:B", f, v);
    if (x < lo || y > hi || x > y)
        return err_set("%s '%s': need %d <= A <= B <= %d", f, v, lo, hi);
    *a = (int)x;
    *b = (int)y;
    return 0;
}

static int parse_policies(const char *s, struct bench_args *a) {
    if (!strcmp(s, "all")) s = "round-robin,random,weighted,least-outstanding";
    a->n_pol = 0;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)n, s);
        if (a->n_pol == MAX_POLICIES)
            return err_set("--balance: at most %d runs", MAX_POLICIES);
        if (balancer_parse_policy(name, &a->pol[a->n_pol])) return -1;
        a->n_pol++;
        s = e ? e + 1 : s + n;
    }
    if (!a->n_pol) return err_set("--balance: no policy named");
    return 0;
}

static int parse_slow(const char *v, struct bench_args *a) {
    char *end;
    long r = strtol(v, &end, 10);
    if (end == v || *end != ':' || r < 0 || r >= MAX_REPLICAS)
        return err_set("--slow-replica '%s': expected R:SECONDS (R a replica index)", v);
    const char *s = end + 1;
    double x = strtod(s, &end);
    if (end == s || *end || !(x >= 0 && x <= 60))
        return err_set("--slow-replica '%s': SECONDS must be in [0, 60]", v);
    a->slow_replica = (int)r;
    a->slow_s = x;
    return 0;
}

static int parse(int argc, char **argv, struct bench_args *a) {
    memset(a, 0, sizeof *a);
    a->device = "cpu";
    a->balance = NULL; /* default: see bench_help */
    a->requests = 64;
    a->rate = 4;
    a->p_lo = a->g_lo = 16;
    a->p_hi = a->g_hi = 128;
    a->seed = 1;
    a->baseline = 1;
    a->slow_replica = -1;
    a->kv_cache_mb = 256;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "--json")) {
            a->json = 1;
            continue;
        }
        if (!strcmp(f, "--no-baseline")) {
            a->baseline = 0;
            continue;
        }
        int mf = model_flags_parse(&a->mf, argc, argv, &i);
        if (mf < 0) return -1;
        if (mf) continue;
        static const char *const with_value[] = {
            "--ckpt",          "--device",     "--balance",
            "--weights",       "--csv",        "--requests",
            "--concurrency",   "--threads",    "--max-batch-tokens",
            "--seed",          "--rate",       "--kv-cache-mb",
            "--prompt-tokens", "--gen-tokens", "--slow-replica"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++)
            known |= !strcmp(f, with_value[k]);
        if (!known)
            return err_set("unknown option '%s' (see llmpi bench serve --help)", f);
        if (!(v = args_value(argc, argv, &i))) return -1;
        int *ip = NULL, lo = 1, hi = 1 << 20;
        float x;
        if (!strcmp(f, "--ckpt"))
            a->ckpt = v;
        else if (!strcmp(f, "--device"))
            a->device = v;
        else if (!strcmp(f, "--balance"))
            a->balance = v;
        else if (!strcmp(f, "--weights"))
            a->weights = v;
        else if (!strcmp(f, "--csv"))
            a->csv = v;
        else if (!strcmp(f, "--requests"))
            ip = &a->requests;
        else if (!strcmp(f, "--concurrency"))
            ip = &a->concurrency, lo = 0;
        else if (!strcmp(f, "--threads"))
            ip = &a->threads;
        else if (!strcmp(f, "--max-batch-tokens"))
            ip = &a->max_batch_tokens;
        else if (!strcmp(f, "--seed")) {
            if (args_u64(f, v, &a->seed)) return -1;
        } else if (!strcmp(f, "--rate")) {
            if (!strcmp(v, "inf"))
                a->rate = INFINITY;
            else if (args_float(f, v, 1e-6, 1e9, &x))
                return -1;
            else
                a->rate = x;
        } else if (!strcmp(f, "--kv-cache-mb")) {
            if (args_float(f, v, 0.001, 1e7, &x)) return -1;
            a->kv_cache_mb = x;
        } else if (!strcmp(f, "--prompt-tokens")) {
            if (parse_range(f, v, 1, 1 << 20, &a->p_lo, &a->p_hi)) return -1;
        } else if (!strcmp(f, "--gen-tokens")) {
            if (parse_range(f, v, 1, 1 << 20, &a->g_lo, &a->g_hi)) return -1;
        } else if (!strcmp(f, "--slow-replica")) {
            if (parse_slow(v, a)) return -1;
        }
        if (ip && args_int(f, v, lo, hi, ip)) return -1;
    }
    if (!a->balance) a->balance = dist_size() > 1 ? "all" : "least-outstanding";
    return parse_policies(a->balance, a);
}

/* Checks that need the world and the model. */
static int check(const struct bench_args *a, int n_replicas,
                 const struct gpt2_config *cfg, double *weights) {
    if (n_replicas > MAX_REPLICAS)
        return err_set("%d replicas: at most %d", n_replicas, MAX_REPLICAS);
    if (a->slow_replica >= n_replicas)
        return err_set("--slow-replica %d: there %s %d replica%s (0..%d)",
                       a->slow_replica, n_replicas == 1 ? "is" : "are", n_replicas,
                       n_replicas == 1 ? "" : "s", n_replicas - 1);
    if (a->p_hi + a->g_hi > cfg->max_seq)
        return err_set(
            "--prompt-tokens up to %d + --gen-tokens up to %d exceed the model's "
            "context %d",
            a->p_hi, a->g_hi, cfg->max_seq);
    for (int r = 0; r < n_replicas; r++)
        weights[r] = 1;
    if (a->weights) {
        const char *s = a->weights;
        for (int r = 0; r < n_replicas; r++) {
            char *end;
            weights[r] = strtod(s, &end);
            if (end == s || !(weights[r] >= 0 && weights[r] < 1e9))
                return err_set(
                    "--weights '%s': expected %d non-negative numbers (one per "
                    "replica)",
                    a->weights, n_replicas);
            s = *end == ',' && r + 1 < n_replicas ? end + 1 : end;
        }
        if (*s)
            return err_set("--weights '%s': more than %d values (one per replica)",
                           a->weights, n_replicas);
    }
    return 0;
}

/* The model: a checkpoint's, or the preset's shape with random weights.
 * with_params 0: the config only (the MPI coordinator needs no weights). */
static int load_model(const struct bench_args *a, int with_params,
                      struct serve_model *m) {
    memset(m, 0, sizeof *m);
    if (a->ckpt) {
        if (model_flags_any_shape(&a->mf))
            return err_set(
                "--ckpt fixes the model's shape: drop --layers/--heads/--width/"
                "--context/--vocab");
        return with_params ? ckpt_load_model(a->ckpt, &m->cfg, &m->params, NULL)
                           : ckpt_read_config(a->ckpt, &m->cfg);
    }
    struct gpt2_config *cfg = &m->cfg;
    /* the preset's vocabulary (GPT-2's 50257) unless --vocab */
    if (model_flags_resolve(&a->mf, 0, cfg)) return -1;
    if (!with_params) return 0;
    struct param_table t;
    if (param_table_build(cfg, &t)) return -1;
    m->params = malloc(t.total * sizeof *m->params);
    if (!m->params) {
        param_table_free(&t);
        return err_set("out of memory for %zu parameters", t.total);
    }
    param_init(&t, cfg, m->params, 1);
    param_table_free(&t);
    return 0;
}

/* ---- the schedule ---- */

struct schedule {
    int n;
    double *arrival; /* seconds from the start, non-decreasing */
    int *n_prompt, *n_gen;
    int32_t **prompt;
    long long tokens; /* sum of n_gen */
};

static void schedule_free(struct schedule *s) {
    for (int i = 0; s->prompt && i < s->n; i++)
        free(s->prompt[i]);
    free(s->prompt);
    free(s->arrival);
    free(s->n_prompt);
    free(s->n_gen);
    memset(s, 0, sizeof *s);
}

static int uniform_int(struct rng *r, int lo, int hi) {
    return lo + (int)(rng_u64(r) % (uint64_t)(hi - lo + 1));
}

/* n requests; rate INFINITY: all at t = 0. */
static int schedule_make(struct schedule *s, int n, double rate, int p_lo, int p_hi,
                         int g_lo, int g_hi, int vocab, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->n = n;
    s->arrival = calloc((size_t)n, sizeof *s->arrival);
    s->n_prompt = calloc((size_t)n, sizeof *s->n_prompt);
    s->n_gen = calloc((size_t)n, sizeof *s->n_gen);
    s->prompt = calloc((size_t)n, sizeof *s->prompt);
    if (!s->arrival || !s->n_prompt || !s->n_gen || !s->prompt) goto oom;
    struct rng r;
    rng_seed(&r, seed);
    double t = 0;
    for (int i = 0; i < n; i++) {
        if (isfinite(rate)) t += -log(1.0 - rng_uniform(&r)) / rate; /* exponential gap */
        s->arrival[i] = t;
        s->n_prompt[i] = uniform_int(&r, p_lo, p_hi);
        s->n_gen[i] = uniform_int(&r, g_lo, g_hi);
        s->tokens += s->n_gen[i];
        if (!(s->prompt[i] = malloc((size_t)s->n_prompt[i] * sizeof **s->prompt)))
            goto oom;
        for (int k = 0; k < s->n_prompt[i]; k++)
            s->prompt[i][k] = (int32_t)(rng_u64(&r) % (uint64_t)vocab);
    }
    return 0;
oom:
    schedule_free(s);
    return err_set("out of memory for a schedule of %d requests", n);
}

/* ---- one run of the schedule ---- */

struct run_result {
    char name[40];
    int naive, completed, errors;
    long long tokens;
    double duration_s, tokens_per_s, requests_per_s, mean_in_flight;
    double ttft_p50, ttft_p99, tpot_p50, tpot_p99; /* seconds */
    long per_replica[MAX_REPLICAS];
};

struct coord {
    const struct bench_args *a;
    int n_replicas;
    struct serve_engine local; /* world of one */
    int have_local;
    int64_t next_id;
    /* sends in flight (MPI) */
    struct serve_outbox out; /* requests and shutdowns in flight */
};

/* Per request of a run. */
struct timing {
    double issue, first, finish;
    int replica, n_tokens, done;
};

struct run {
    struct coord *c;
    const struct schedule *s;
    struct balancer bal;
    struct timing *t;
    double *done_at; /* completion times in order (client slots under --concurrency) */
    int64_t id0;
    int n_done, n_errors;
    long per_replica[MAX_REPLICAS];
    char error[512]; /* the first failed request's message */
    int fatal;       /* a replica failed: the run stops */
    double t0;
};

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Replica r's leader is world rank 1 + r (groups of one rank). */
static int send_to(struct coord *c, int r, const void *p, size_t len, int tag) {
    return serve_outbox_send(&c->out, 1 + r, tag, p, len);
}

static double elapsed(const struct run *u) { return timer_now() - u->t0; }

static void handle_events(struct run *u, int replica, const void *msg, size_t len) {
    size_t off = 0;
    struct serve_event e;
    int got;
    double t = elapsed(u);
    balancer_heard(&u->bal, replica, u->t0 + t);
    while ((got = serve_unpack_event(msg, len, &off, &e)) == 1) {
        if (e.id == SERVE_ID_POOL) continue; /* pool figures: not measured here */
        if (e.id == SERVE_ID_REPLICA) { /* the replica itself failed */
            if (!u->fatal)
                snprintf(u->error, sizeof u->error, "replica %d failed: %.*s", replica,
                         (int)e.text_len, e.text ? e.text : "");
            u->fatal = 1;
            continue;
        }
        int64_t i = e.id - u->id0;
        if (i < 0 || i >= u->s->n || u->t[i].done || u->t[i].replica != replica) continue;
        struct timing *q = &u->t[i];
        if (e.kind == SERVE_EV_TOKEN) {
            if (!q->n_tokens) q->first = t;
            q->n_tokens++;
            q->finish = t;
            continue;
        }
        if (e.kind == SERVE_EV_ERROR) {
            if (!u->n_errors++)
                snprintf(u->error, sizeof u->error,
                         "request %lld of the schedule failed on replica %d: %.*s",
                         (long long)i, replica, (int)e.text_len, e.text ? e.text : "");
        } else if (q->n_tokens != u->s->n_gen[i] && !u->n_errors++) {
            snprintf(u->error, sizeof u->error,
                     "request %lld ended after %d of %d tokens (%s)", (long long)i,
                     q->n_tokens, u->s->n_gen[i],
                     engine_finish_name((enum engine_finish)e.value));
        }
        q->done = 1;
        q->finish = t;
        u->done_at[u->n_done++] = t;
        balancer_finished(&u->bal, replica, u->t0 + t);
    }
    if (got < 0 && !u->fatal) {
        snprintf(u->error, sizeof u->error, "from replica %d: %s", replica, err_msg());
        u->fatal = 1;
    }
}

/* Send request i to replica r (or submit it to the local engine). */
static int dispatch(struct run *u, int i, int r) {
    const struct schedule *s = u->s;
    struct serve_request rq = {.id = u->id0 + i,
                               .n_prompt = s->n_prompt[i],
                               .prompt = s->prompt[i],
                               .max_tokens = s->n_gen[i],
                               .temperature = 1.0f,
                               .top_p = 1.0f,
                               .repetition_penalty = 1.0f,
                               .top_k = 0,
                               .seed = u->c->a->seed + (uint64_t)i};
    struct serve_buf b = {0};
    if (serve_pack_request(&b, &rq)) return -1;
    u->t[i].replica = r;
    balancer_started(&u->bal, r, timer_now());
    u->per_replica[r]++;
    int rc = 0;
    if (u->c->have_local) {
        struct serve_request back;
        struct serve_buf ev = {0};
        rc = serve_unpack_request(b.p, b.len, &back);
        if (!rc) {
            rc = serve_engine_submit(&u->c->local, &back, &ev);
            serve_request_free(&back);
        }
        if (!rc && ev.len) handle_events(u, r, ev.p, ev.len);
        serve_buf_free(&ev);
    } else {
        rc = send_to(u->c, r, b.p, b.len, SERVE_TAG_REQUEST);
    }
    serve_buf_free(&b);
    return rc;
}

/* Events waiting: one local engine step, or every MPI message. 1 when
 * something happened, -1 + err_set on a local engine failure. */
static int poll_events(struct run *u) {
    struct coord *c = u->c;
    if (c->have_local) {
        if (engine_idle(c->local.eng)) return 0;
        struct serve_buf ev = {0};
        int rc = serve_engine_step(&c->local, &ev);
        if (!rc && ev.len) handle_events(u, 0, ev.p, ev.len);
        serve_buf_free(&ev);
        if (c->a->slow_replica == 0) sleep_s(c->a->slow_s);
        return rc ? -1 : 1;
    }
    int any = 0, flag;
    MPI_Status st;
    while (MPI_Iprobe(MPI_ANY_SOURCE, SERVE_TAG_EVENTS, MPI_COMM_WORLD, &flag, &st),
           flag) {
        int len;
        unsigned char *msg = serve_recv_probed(&st, &len);
        if (!msg) return -1;
        int r = st.MPI_SOURCE - 1;
        if (r >= 0 && r < c->n_replicas) handle_events(u, r, msg, (size_t)len);
        free(msg);
        any = 1;
    }
    serve_outbox_reap(&c->out, 0);
    return any;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Percentile q (0..1) of v[0..n) (sorted here), linear between ranks. */
static double percentile(double *v, int n, double q) {
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double x = q * (n - 1);
    int k = (int)x;
    return k + 1 < n ? v[k] + (x - k) * (v[k + 1] - v[k]) : v[n - 1];
}

static void summarize(const struct run *u, struct run_result *res, double *scratch) {
    const struct schedule *s = u->s;
    double last = 0, busy = 0;
    int n = 0;
    res->completed = u->n_done - u->n_errors;
    res->errors = u->n_errors;
    for (int i = 0; i < s->n; i++) {
        const struct timing *q = &u->t[i];
        res->tokens += q->n_tokens;
        if (q->finish > last) last = q->finish;
        busy += q->finish - q->issue;
    }
    res->duration_s = last - s->arrival[0];
    if (res->duration_s <= 0) res->duration_s = 1e-9;
    res->tokens_per_s = (double)res->tokens / res->duration_s;
    res->requests_per_s = res->completed / res->duration_s;
    res->mean_in_flight = busy / res->duration_s;
    for (int i = 0; i < s->n; i++)
        if (u->t[i].n_tokens) scratch[n++] = u->t[i].first - u->t[i].issue;
    res->ttft_p50 = percentile(scratch, n, 0.50);
    res->ttft_p99 = percentile(scratch, n, 0.99);
    n = 0;
    for (int i = 0; i < s->n; i++)
        if (u->t[i].n_tokens > 1)
            scratch[n++] = (u->t[i].finish - u->t[i].first) / (u->t[i].n_tokens - 1);
    res->tpot_p50 = percentile(scratch, n, 0.50);
    res->tpot_p99 = percentile(scratch, n, 0.99);
    memcpy(res->per_replica, u->per_replica, sizeof res->per_replica);
}

/* Serve schedule s once: policy pol, or naive (one request in flight per
 * replica, least-outstanding over the idle ones). res may be NULL (warm-up).
 * -1 + err_set when a request or a replica failed. */
static int run_schedule(struct coord *c, const struct schedule *s,
                        enum balance_policy pol, const double *weights, int naive,
                        struct run_result *res) {
    struct run u = {.c = c, .s = s};
    int rc = -1;
    u.t = calloc((size_t)s->n, sizeof *u.t);
    u.done_at = calloc((size_t)s->n, sizeof *u.done_at);
    if (!u.t || !u.done_at) {
        err_set("out of memory");
        goto out;
    }
    if (balancer_init(&u.bal, c->n_replicas, naive ? BALANCE_LEAST_OUTSTANDING : pol,
                      weights, c->a->seed))
        goto out;
    u.id0 = c->next_id;
    c->next_id += s->n;
    const int C = c->a->concurrency;
    int n_arrived = 0, n_issued = 0, n_sent = 0;
    u.t0 = timer_now();
    while (u.n_done < s->n && !u.fatal) {
        double now = elapsed(&u);
        int acted = 0;
        while (n_arrived < s->n && s->arrival[n_arrived] <= now)
            n_arrived++;
        /* the client issues what arrived, up to C out at once */
        while (n_issued < n_arrived && (C == 0 || n_issued - u.n_done < C)) {
            double slot = C && n_issued >= C ? u.done_at[n_issued - C] : 0;
            double arr = s->arrival[n_issued];
            u.t[n_issued++].issue = arr > slot ? arr : slot;
        }
        /* the server dispatches what was issued: at once, or naive: to an
         * idle replica */
        while (n_sent < n_issued) {
            int r = balancer_pick(&u.bal);
            if (r < 0) goto out;
            if (naive && u.bal.r[r].outstanding > 0) break;
            if (dispatch(&u, n_sent++, r)) goto out;
            acted = 1;
        }
        int got = poll_events(&u);
        if (got < 0) goto out;
        if (got || acted) continue;
        /* nothing to do: wait for the next arrival, a message or a step */
        double wait = n_arrived < s->n ? s->arrival[n_arrived] - elapsed(&u) : 1.0;
        if (!c->have_local && wait > 2e-4) wait = 2e-4;
        sleep_s(wait);
    }
    if (u.fatal || u.n_errors) {
        err_set("%s", u.error);
        goto out;
    }
    if (res) {
        res->naive = naive;
        snprintf(res->name, sizeof res->name, "%s",
                 naive ? "naive" : balancer_policy_name(pol));
        summarize(&u, res, u.done_at);
    }
    rc = 0;
out:
    balancer_free(&u.bal);
    free(u.t);
    free(u.done_at);
    return rc;
}

/* ---- report ---- */

struct report {
    const struct bench_args *a;
    const struct gpt2_config *cfg;
    const char *device;
    size_t n_params;
    int n_replicas, threads;
    const struct schedule *s;
    const double *weights;
    struct run_result *runs;
    int n_runs;
};

static double speedup(const struct report *p, int k) {
    const struct run_result *b = &p->runs[p->n_runs - 1];
    return b->naive && b->tokens_per_s > 0 ? p->runs[k].tokens_per_s / b->tokens_per_s
                                           : 0;
}

static void print_table(const struct report *p) {
    const struct bench_args *a = p->a;
    printf("bench serve: %s, %d layers, width %d, vocab %d, %.1fM params; %d replica%s "
           "(%s), %d thread%s per rank\n",
           p->device, p->cfg->n_layer, p->cfg->n_embd, p->cfg->vocab_size,
           p->n_params / 1e6, p->n_replicas, p->n_replicas == 1 ? "" : "s",
           p->n_replicas == 1 && dist_size() == 1 ? "in-process engine" : "ranks 1..R",
           p->threads, p->threads == 1 ? "" : "s");
    if (a->slow_replica >= 0)
        printf("  replica %d sleeps %.1f ms after each engine step\n", a->slow_replica,
               a->slow_s * 1e3);
    char rate[64], conc[64];
    if (isfinite(a->rate))
        snprintf(rate, sizeof rate, "Poisson arrivals at %.2f req/s", a->rate);
    else
        snprintf(rate, sizeof rate, "all arriving at once");
    if (a->concurrency)
        snprintf(conc, sizeof conc, ", at most %d out at once", a->concurrency);
    else
        conc[0] = '\0';
    printf("  %d requests, %s%s, seed %llu; prompts %d..%d tokens, outputs %d..%d "
           "(%lld tokens per run)\n",
           p->s->n, rate, conc, (unsigned long long)a->seed, a->p_lo, a->p_hi, a->g_lo,
           a->g_hi, p->s->tokens);
    printf("%-18s %7s %9s %7s %9s %9s %9s %9s %9s %8s  %s\n", "policy", "done",
           "tokens/s", "req/s", "in flight", "TTFT p50", "TTFT p99", "TPOT p50",
           "TPOT p99", "vs naive", "requests per replica");
    for (int k = 0; k < p->n_runs; k++) {
        const struct run_result *r = &p->runs[k];
        char done[32], vs[32];
        snprintf(done, sizeof done, "%d/%d", r->completed, p->s->n);
        double x = speedup(p, k);
        if (x > 0)
            snprintf(vs, sizeof vs, "%.2fx", x);
        else
            snprintf(vs, sizeof vs, "-");
        printf("%-18s %7s %9.1f %7.2f %9.1f %6.0f ms %6.0f ms %6.1f ms %6.1f ms %8s  ",
               r->name, done, r->tokens_per_s, r->requests_per_s, r->mean_in_flight,
               r->ttft_p50 * 1e3, r->ttft_p99 * 1e3, r->tpot_p50 * 1e3, r->tpot_p99 * 1e3,
               vs);
        for (int i = 0; i < p->n_replicas; i++)
            printf("%s%ld", i ? " " : "", r->per_replica[i]);
        printf("\n");
    }
    printf(
        "  naive: one request at a time per replica (no batching); TTFT from issue, TPOT "
        "= (last - first token) / (tokens - 1)\n");
}

static void print_json(const struct report *p) {
    const struct bench_args *a = p->a;
    printf(
        "{\"bench\":\"serve\",\"device\":\"%s\",\"layers\":%d,\"width\":%d,\"heads\":%d,"
        "\"vocab\":%d,\"context\":%d,\"params\":%zu,\"replicas\":%d,\"threads\":%d,"
        "\"requests\":%d,",
        p->device, p->cfg->n_layer, p->cfg->n_embd, p->cfg->n_head, p->cfg->vocab_size,
        p->cfg->max_seq, p->n_params, p->n_replicas, p->threads, p->s->n);
    if (isfinite(a->rate))
        printf("\"rate\":%.6g,", a->rate);
    else
        printf("\"rate\":\"inf\",");
    printf(
        "\"concurrency\":%d,\"prompt_tokens\":[%d,%d],\"gen_tokens\":[%d,%d],"
        "\"seed\":%llu,\"tokens_per_run\":%lld,\"slow_replica\":%d,\"slow_step_s\":%.6g,"
        "\"weights\":[",
        a->concurrency, a->p_lo, a->p_hi, a->g_lo, a->g_hi, (unsigned long long)a->seed,
        p->s->tokens, a->slow_replica, a->slow_replica >= 0 ? a->slow_s : 0.0);
    for (int i = 0; i < p->n_replicas; i++)
        printf("%s%g", i ? "," : "", p->weights[i]);
    printf("],\"runs\":[");
    for (int k = 0; k < p->n_runs; k++) {
        const struct run_result *r = &p->runs[k];
        printf("%s{\"policy\":\"%s\",\"naive\":%s,\"completed\":%d,\"errors\":%d,"
               "\"tokens\":%lld,\"duration_s\":%.6f,\"tokens_per_s\":%.2f,"
               "\"requests_per_s\":%.3f,\"mean_in_flight\":%.2f,\"ttft_p50_ms\":%.3f,"
               "\"ttft_p99_ms\":%.3f,\"tpot_p50_ms\":%.3f,\"tpot_p99_ms\":%.3f,",
               k ? "," : "", r->name, r->naive ? "true" : "false", r->completed,
               r->errors, r->tokens, r->duration_s, r->tokens_per_s, r->requests_per_s,
               r->mean_in_flight, r->ttft_p50 * 1e3, r->ttft_p99 * 1e3, r->tpot_p50 * 1e3,
               r->tpot_p99 * 1e3);
        double x = speedup(p, k);
        if (x > 0)
            printf("\"speedup_vs_naive\":%.3f,", x);
        else
            printf("\"speedup_vs_naive\":null,");
        printf("\"per_replica\":[");
        for (int i = 0; i < p->n_replicas; i++)
            printf("%s%ld", i ? "," : "", r->per_replica[i]);
        printf("]}");
    }
    printf("]}\n");
}

static int write_csv(const struct report *p, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return err_set("%s: cannot write", path);
    fprintf(f,
            "policy,naive,completed,errors,tokens,duration_s,tokens_per_s,requests_per_s,"
            "mean_in_flight,ttft_p50_ms,ttft_p99_ms,tpot_p50_ms,tpot_p99_ms,"
            "speedup_vs_naive,replicas,requests,rate,concurrency,slow_replica,"
            "slow_step_s,per_replica\n");
    for (int k = 0; k < p->n_runs; k++) {
        const struct run_result *r = &p->runs[k];
        fprintf(f, "%s,%d,%d,%d,%lld,%.6f,%.2f,%.3f,%.2f,%.3f,%.3f,%.3f,%.3f,", r->name,
                r->naive, r->completed, r->errors, r->tokens, r->duration_s,
                r->tokens_per_s, r->requests_per_s, r->mean_in_flight, r->ttft_p50 * 1e3,
                r->ttft_p99 * 1e3, r->tpot_p50 * 1e3, r->tpot_p99 * 1e3);
        double x = speedup(p, k);
        if (x > 0) fprintf(f, "%.3f", x);
        fprintf(f, ",%d,%d,", p->n_replicas, p->s->n);
        if (isfinite(p->a->rate))
            fprintf(f, "%.6g", p->a->rate);
        else
            fprintf(f, "inf");
        fprintf(f, ",%d,%d,%.6g,", p->a->concurrency, p->a->slow_replica,
                p->a->slow_replica >= 0 ? p->a->slow_s : 0.0);
        for (int i = 0; i < p->n_replicas; i++)
            fprintf(f, "%s%ld", i ? " " : "", r->per_replica[i]);
        fprintf(f, "\n");
    }
    if (fclose(f)) return err_set("%s: write failed", path);
    return 0;
}

/* ---- the coordinator ---- */

static int coordinate(const struct bench_args *a, struct serve_model *m,
                      const struct serve_args *sa, int n_replicas,
                      const double *weights) {
    static struct coord C;
    struct coord *c = &C;
    memset(c, 0, sizeof *c);
    c->a = a;
    c->n_replicas = n_replicas;
    struct schedule s = {0}, warm = {0};
    struct run_result *runs = NULL;
    int n_runs = a->n_pol + a->baseline, rc = -1;
    size_t n_params = 0;
    struct param_table t;
    if (param_table_build(&m->cfg, &t)) goto out;
    n_params = t.total;
    param_table_free(&t);
    if (dist_size() == 1) {
        if (serve_engine_create(&c->local, m, sa, NULL)) goto out;
        c->have_local = 1;
        free(m->params);
        m->params = NULL;
    }
    if (!(runs = calloc((size_t)n_runs, sizeof *runs))) {
        err_set("out of memory");
        goto out;
    }
    if (schedule_make(&s, a->requests, a->rate, a->p_lo, a->p_hi, a->g_lo, a->g_hi,
                      m->cfg.vocab_size, a->seed))
        goto out;
    /* warm-up, not reported: two short requests per replica at once */
    int wp = a->p_lo < 16 ? a->p_lo : 16, wg = a->g_lo < 8 ? a->g_lo : 8;
    if (schedule_make(&warm, 2 * n_replicas, INFINITY, wp, wp, wg, wg, m->cfg.vocab_size,
                      a->seed + 1) ||
        run_schedule(c, &warm, BALANCE_ROUND_ROBIN, NULL, 0, NULL))
        goto out;
    for (int k = 0; k < n_runs; k++) {
        int naive = k == a->n_pol;
        struct engine_stats e0 = {0}, e1 = {0};
        if (c->have_local) engine_get_stats(c->local.eng, &e0);
        if (run_schedule(c, &s, naive ? BALANCE_LEAST_OUTSTANDING : a->pol[k], weights,
                         naive, &runs[k]))
            goto out;
        /* progress, and where a local engine's time went (stderr) */
        fprintf(stderr, "  %s: %.1f tokens/s", runs[k].name, runs[k].tokens_per_s);
        if (c->have_local) {
            engine_get_stats(c->local.eng, &e1);
            long long st = e1.steps - e0.steps;
            double d = st > 0 ? 1e3 / (double)st : 0;
            fprintf(stderr,
                    "; engine: %lld steps, %.1f tokens/step, forward %.1f ms/step, "
                    "sampling %.1f ms/step",
                    st,
                    st > 0 ? (double)(e1.generated_tokens - e0.generated_tokens) / st
                           : 0.0,
                    (e1.forward_s - e0.forward_s) * d, (e1.sample_s - e0.sample_s) * d);
        }
        fprintf(stderr, "\n");
        fflush(stderr);
    }
    struct report p = {.a = a,
                       .cfg = &m->cfg,
                       .device = sa->device,
                       .n_params = n_params,
                       .n_replicas = n_replicas,
                       .threads = sa->threads,
                       .s = &s,
                       .weights = weights,
                       .runs = runs,
                       .n_runs = n_runs};
    if (!p.threads) {
        const char *e = getenv("OMP_NUM_THREADS");
        p.threads = e && atoi(e) > 0 ? atoi(e) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (a->json)
        print_json(&p);
    else
        print_table(&p);
    fflush(stdout);
    if (a->csv && write_csv(&p, a->csv)) goto out;
    rc = 0;
out:
    /* shut the replicas down whatever happened: nobody may wait forever */
    for (int r = 0; !c->have_local && r < n_replicas; r++)
        if (send_to(c, r, NULL, 0, SERVE_TAG_SHUTDOWN)) rc = -1;
    serve_outbox_free(&c->out); /* waits for the shutdowns */
    if (c->have_local) serve_engine_destroy(&c->local);
    schedule_free(&s);
    schedule_free(&warm);
    free(runs);
    return rc;
}

int bench_serve_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(bench_help, stdout);
            return 0;
        }
    }
    dist_set_prog("llmpi bench serve");
    if (dist_init(&argc, &argv)) {
        fprintf(stderr, "llmpi bench serve: error: %s\n", err_msg());
        return 1;
    }
    static struct bench_args A;
    static double weights[MAX_REPLICAS];
    struct serve_model m = {0};
    const int rank = dist_rank(), size = dist_size();
    const int R = size > 1 ? size - 1 : 1;
    int failed = parse(argc, argv, &A) != 0;
    failed = failed || load_model(&A, rank > 0 || size == 1, &m) != 0;
    failed = failed || check(&A, R, &m.cfg, weights) != 0;
    dist_exit_if_any(failed, err_msg());

    struct serve_args sa;
    memset(&sa, 0, sizeof sa);
    sa.device = A.device;
    sa.tp = 1;
    sa.threads = A.threads;
    sa.kv_cache_mb = A.kv_cache_mb;
    sa.max_batch_tokens = A.max_batch_tokens;
    sa.step_delay_s = rank > 0 && rank - 1 == A.slow_replica ? A.slow_s : 0;
    int rc = 0;
    if (rank == 0) {
        rc = coordinate(&A, &m, &sa, R, weights);
        if (rc) {
            fflush(stdout);
            if (size > 1) dist_fail("%s", err_msg()); /* the replicas were shut down */
            fprintf(stderr, "llmpi bench serve: error: %s\n", err_msg());
        }
    } else {
        struct comm group;
        if (comm_dup(&group, MPI_COMM_SELF, "replica")) dist_fail("%s", err_msg());
        rc = serve_replica_run(&m, &sa, &group);
        comm_close(&group);
    }
    free(m.params);
    dist_finalize();
    return rc ? 1 : 0;
}
