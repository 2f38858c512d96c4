/* src/infer/serve_coord.c — the coordinator: conversations (or plain
 * prompts) -> requests -> load balancer -> replica groups -> events back.
 *
 * One thread, one loop:
 *   1. every conversation that wants a generation gets one: its prompt text
 *      is encoded here, a replica chosen by the balancer, the request sent
 *      (MPI_Isend) or, in a world of one, submitted to the in-process engine;
 *   2. events are drained (MPI_Iprobe, or one in-process engine step): the
 *      text of a request accumulates with its tokens, and a finished request
 *      is delivered to its conversation, which writes the transcript line;
 *   3. replicas with work that stayed silent past --replica-timeout are
 *      marked down, and their requests are sent again elsewhere (a late
 *      answer from the old replica is ignored: events are accepted only from
 *      the replica a request is assigned to).
 * A request that fails (refused by the engine, or no replica left) ends its
 * conversation with an error; the other conversations go on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "agents_config.h"
#include "balancer.h"
#include "bus.h"
#include "conversation.h"
#include "err.h"
#include "redact.h"
#include "serve.h"
#include "serve_coord.h"
#include "serve_mpi.h"
#include "utf8.h"
#include "transcript.h"

double coord_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The redaction filter of the transcript and the printed dialogue. */
static char *redact_filter(void *ctx, const char *text) {
    return redact(ctx, text, strlen(text), NULL);
}

char *coord_shown(struct coord *c, const char *text) {
    return c->have_red ? redact(&c->red, text, strlen(text), NULL) : strdup(text);
}

static struct pending *pending_new(struct coord *c) {
    for (int i = 0; i < c->n_pend; i++)
        if (!c->pend[i].live) return &c->pend[i];
    struct pending *p = realloc(c->pend, (size_t)(c->n_pend + 1) * sizeof *p);
    if (!p) return NULL;
    c->pend = p;
    memset(&p[c->n_pend], 0, sizeof *p);
    return &p[c->n_pend++];
}

static struct pending *pending_find(struct coord *c, int64_t id) {
    for (int i = 0; i < c->n_pend; i++)
        if (c->pend[i].live && c->pend[i].id == id) return &c->pend[i];
    return NULL;
}

static void pending_drop(struct pending *p) {
    if (p->call) { /* still waited for: the server is stopping */
        http_call_fail(p->call, 503, "server_error", NULL, "the server is shutting down");
        http_call_release(p->call);
    }
    free(p->text);
    serve_buf_free(&p->wire);
    memset(p, 0, sizeof *p);
}

/* Hand a packed request to replica r without waiting (a copy goes to the
 * outbox; the pending keeps its own for a resend). Local: submitted
 * directly by the caller. */
static int send_to(struct coord *c, int r, const struct serve_buf *wire, int tag) {
    if (!c->leader) return 0;
    return serve_outbox_send(&c->out, c->leader[r], tag, wire->p, wire->len);
}

static void handle_events(struct coord *c, int replica, const void *msg, size_t len);
static void complete(struct coord *c, struct pending *p, const char *msg, int finish);

/* Send p to the balancer's pick; with no replica up, fail it (it is then
 * assigned to none: the balancer counted it nowhere). */
static void dispatch(struct coord *c, struct pending *p) {
    int r = balancer_pick(&c->bal);
    double t = coord_now();
    if (r < 0 || send_to(c, r, &p->wire, SERVE_TAG_REQUEST)) {
        char why[512];
        snprintf(why, sizeof why, "%s", err_msg());
        p->replica = -1;
        complete(c, p, why, 0);
        return;
    }
    p->replica = r;
    p->t_submit = t;
    p->n_tokens = 0;
    p->len = 0;
    p->t_first = 0;
    balancer_started(&c->bal, r, t);
    if (r < 64) c->requests_per_replica[r]++;
    if (!c->leader) { /* in-process: submit now, refusals come back as events */
        struct serve_request rq;
        struct serve_buf ev = {0};
        if (!serve_unpack_request(p->wire.p, p->wire.len, &rq)) {
            serve_engine_submit(&c->local, &rq, &ev);
            serve_request_free(&rq);
        }
        if (ev.len) handle_events(c, r, ev.p, ev.len);
        serve_buf_free(&ev);
    }
}

int coord_encode(struct coord *c, const char *text, int32_t **ids, size_t *n) {
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    char *t = c->a->redact_prompts ? redact(&c->red, text, strlen(text), NULL) : NULL;
    if (c->a->redact_prompts && !t) return -1;
    const char *src = t ? t : text;
    int rc = tokenizer_encode(c->m->tok, src, strlen(src), ids, n, &cap);
    free(t);
    return rc;
}

/* Pack and dispatch a request of prompt ids[0..np) with `s` for an origin
 * (conv slot / --prompt index / HTTP call). */
static int submit_ids(struct coord *c, const int32_t *pr, int np,
                      const struct agent_sampling *s, int conv, int conv_req, int prompt,
                      struct http_call *call) {
    struct pending *p = pending_new(c);
    if (!p) return err_set("out of memory");
    p->live = 1;
    p->id = ++c->next_id;
    p->conv = conv;
    p->conv_req = conv_req;
    p->prompt = prompt;
    p->call = call;
    p->replica = -1;
    p->n_prompt = np;
    struct serve_request rq = {.id = p->id, .n_prompt = np, .prompt = (int32_t *)pr,
                               .max_tokens = s->max_tokens,
                               .temperature = s->p.temperature, .top_p = s->p.top_p,
                               .repetition_penalty = s->p.repetition_penalty,
                               .top_k = s->p.top_k, .seed = s->p.seed,
                               .n_stop = s->n_stop < SERVE_MAX_STOP ? s->n_stop
                                                                    : SERVE_MAX_STOP};
    for (int i = 0; i < rq.n_stop; i++)
        rq.stop[i] = s->stop[i];
    if (serve_pack_request(&p->wire, &rq)) {
        p->call = NULL; /* the caller still holds it */
        pending_drop(p);
        return -1;
    }
    dispatch(c, p);
    return 0;
}

void coord_submit_call(struct coord *c, const int32_t *ids, int n,
                       const struct agent_sampling *s, struct http_call *call) {
    if (submit_ids(c, ids, n, s, -1, 0, -1, call)) {
        http_call_fail(call, 500, "server_error", NULL, "%s", err_msg());
        http_call_release(call);
    }
}

/* Build and dispatch a request for `text` with `s` (a conversation's or a
 * --prompt's). */
static int submit(struct coord *c, const char *text, const struct agent_sampling *s,
                  int conv, int conv_req, int prompt) {
    const struct tokenizer *tok = c->m->tok;
    int32_t *ids = NULL;
    size_t n = 0;
    if (coord_encode(c, text, &ids, &n)) return -1;
    /* keep the end of a long prompt: room for max_tokens in the context */
    int ctx = c->m->cfg.max_seq;
    int keep = ctx - s->max_tokens > 1 ? ctx - s->max_tokens : 1;
    int32_t eot = tokenizer_eot(tok);
    const int32_t *pr = ids;
    int np = (int)n;
    if (np > keep) {
        pr = ids + (np - keep);
        np = keep;
    }
    if (np == 0) {
        if (eot < 0) {
            free(ids);
            return err_set("an empty prompt and no <|endoftext|> to start from");
        }
        pr = &eot;
        np = 1;
    }
    int rc = submit_ids(c, pr, np, s, conv, conv_req, prompt, NULL);
    free(ids);
    return rc;
}

static int append(struct pending *p, const char *s, size_t n) {
    if (!n) return 0;
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->len + n + 1)
            cap *= 2;
        char *t = realloc(p->text, cap);
        if (!t) return err_set("out of memory");
        p->text = t;
        p->cap = cap;
    }
    memcpy(p->text + p->len, s, n);
    p->len += n;
    p->text[p->len] = '\0';
    return 0;
}

static void print_message(struct coord *c, int conv, const char *who, const char *text) {
    char *t = coord_shown(c, text);
    printf("[%d] %s: %s\n", conv, who, t ? t : "(redaction failed)");
    fflush(stdout);
    free(t);
}

/* A request finished (ok) or failed (msg != NULL). */
static void complete(struct coord *c, struct pending *p, const char *msg, int finish) {
    double latency = coord_now() - p->t_submit;
    if (p->replica >= 0) balancer_finished(&c->bal, p->replica, coord_now());
    if (p->text && utf8_sanitize(&p->text, &p->len)) msg = err_msg();
    const char *text = p->text ? p->text : "";
    if (c->api) serve_api_finished(c, p, msg, finish);
    if (p->conv >= 0) {
        struct conv *cv = c->convs[p->conv];
        if (msg) {
            fprintf(stderr, "llmpi serve: conversation %d: request failed: %s\n",
                    conv_id(cv), msg);
            conv_fail(cv, p->conv_req, msg);
        } else {
            if (conv_deliver(cv, p->conv_req, text, p->n_tokens, p->replica, latency))
                fprintf(stderr, "llmpi serve: conversation %d: %s\n", conv_id(cv),
                        err_msg());
            int k = conv_n_messages(cv) - 1;
            const struct conv_message *mm = conv_message(cv, k);
            if (mm && !mm->routing) print_message(c, conv_id(cv), mm->who, mm->text);
        }
    } else if (p->prompt >= 0) {
        struct prompt_result *r = &c->results[p->prompt];
        r->done = 1;
        r->failed = msg != NULL;
        r->replica = p->replica;
        r->n_tokens = p->n_tokens;
        r->text = strdup(msg ? msg : text);
        r->finish = strdup(msg ? "error" : engine_finish_name((enum engine_finish)finish));
    }
    pending_drop(p);
}

void coord_cancel(struct coord *c, struct pending *p) {
    if (p->replica >= 0) {
        if (!c->leader) {
            engine_cancel(c->local.eng, (uint64_t)p->id); /* its FINISH is ignored */
        } else {
            struct serve_buf b = {0};
            if (!serve_pack_cancel(&b, p->id))
                serve_outbox_take(&c->out, c->leader[p->replica], SERVE_TAG_CANCEL, &b);
            serve_buf_free(&b);
        }
        balancer_finished(&c->bal, p->replica, coord_now());
    }
    if (p->call) {
        http_call_release(p->call);
        p->call = NULL;
    }
    pending_drop(p);
}

/* A replica reported its own failure: down, and its requests elsewhere. */
static void replica_lost(struct coord *c, int r, const char *why) {
    fprintf(stderr, "llmpi serve: replica group %d is down: %s\n", r, why);
    balancer_mark_down(&c->bal, r);
    for (int i = 0; i < c->n_pend; i++) {
        struct pending *p = &c->pend[i];
        if (!p->live || p->replica != r) continue;
        balancer_finished(&c->bal, r, coord_now());
        dispatch(c, p);
    }
}

static void handle_events(struct coord *c, int replica, const void *msg, size_t len) {
    size_t off = 0;
    struct serve_event e;
    int got;
    if (replica >= 0) balancer_heard(&c->bal, replica, coord_now());
    while ((got = serve_unpack_event(msg, len, &off, &e)) == 1) {
        if (e.id == SERVE_ID_POOL) {
            if (replica >= 0 && replica < COORD_MAX_REPLICAS) {
                if (e.kind == SERVE_EV_POOL_USED) c->kv_used[replica] = e.value;
                if (e.kind == SERVE_EV_POOL_TOTAL) c->kv_total[replica] = e.value;
            }
            continue;
        }
        if (e.id == SERVE_ID_REPLICA) { /* the replica itself failed */
            char why[512];
            snprintf(why, sizeof why, "%.*s", (int)e.text_len, e.text ? e.text : "");
            replica_lost(c, replica, why);
            continue;
        }
        struct pending *p = pending_find(c, e.id);
        if (!p || p->replica != replica) continue; /* resent elsewhere meanwhile */
        if (e.kind == SERVE_EV_TOKEN) {
            if (!p->t_first) p->t_first = coord_now();
            p->n_tokens++;
        }
        if (p->call && e.kind != SERVE_EV_ERROR) {
            serve_api_text(c, p, e.text, e.text_len, e.kind == SERVE_EV_TOKEN);
        } else if (e.kind != SERVE_EV_ERROR && append(p, e.text, e.text_len)) {
            complete(c, p, err_msg(), 0);
            continue;
        }
        if (e.kind == SERVE_EV_DONE) {
            complete(c, p, NULL, e.value);
        } else if (e.kind == SERVE_EV_ERROR) {
            char why[1024];
            snprintf(why, sizeof why, "%.*s", (int)e.text_len, e.text ? e.text : "");
            complete(c, p, why, 0);
        }
    }
    if (got < 0)
        fprintf(stderr, "llmpi serve: from replica %d: %s\n", replica, err_msg());
}

/* Ask every conversation for work. */
static void issue(struct coord *c) {
    for (int i = 0; i < c->n_convs; i++) {
        struct conv_request rq;
        int r;
        if (!c->convs[i]) continue;
        while ((r = conv_next(c->convs[i], &rq)) == 1)
            if (submit(c, rq.prompt, &rq.sampling, i, rq.req_id, -1)) {
                fprintf(stderr, "llmpi serve: conversation %d: %s\n", rq.conv_id,
                        err_msg());
                conv_fail(c->convs[i], rq.req_id, err_msg());
            }
        if (r < 0) conv_close(c->convs[i]);
    }
}

/* Drain events: one local engine step, or every MPI message waiting.
 * Returns 1 when something arrived. */
static int poll_events(struct coord *c) {
    if (!c->leader) {
        if (engine_idle(c->local.eng)) return 0;
        struct serve_buf ev = {0};
        if (serve_engine_step(&c->local, &ev)) {
            char why[512];
            snprintf(why, sizeof why, "%s", err_msg());
            serve_buf_free(&ev);
            replica_lost(c, 0, why);
            return 1;
        }
        if (ev.len) handle_events(c, 0, ev.p, ev.len);
        serve_buf_free(&ev);
        serve_step_delay(c->a);
        return 1;
    }
    int any = 0, flag;
    MPI_Status st;
    while (MPI_Iprobe(MPI_ANY_SOURCE, SERVE_TAG_EVENTS, MPI_COMM_WORLD, &flag, &st),
           flag) {
        int len;
        unsigned char *msg = serve_recv_probed(&st, &len);
        if (!msg) return any;
        int r = -1;
        for (int k = 0; k < c->n_replicas; k++)
            if (c->leader[k] == st.MPI_SOURCE) r = k;
        if (r >= 0) handle_events(c, r, msg, (size_t)len);
        free(msg);
        any = 1;
    }
    serve_outbox_reap(&c->out, 0);
    return any;
}

static int all_done(struct coord *c) {
    for (int i = 0; i < c->n_convs; i++)
        if (c->convs[i] && !conv_done(c->convs[i])) return 0;
    for (int i = 0; i < c->a->n_prompts; i++)
        if (!c->results[i].done) return 0;
    return 1;
}

static int parse_weights(const char *s, int n, double *w) {
    for (int i = 0; i < n; i++) {
        char *end;
        w[i] = strtod(s, &end);
        if (end == s || w[i] < 0)
            return err_set("--weights '%s': expected %d non-negative numbers", s, n);
        s = *end == ',' ? end + 1 : end;
    }
    if (*s) return err_set("--weights: more than %d values (one per replica group)", n);
    return 0;
}

/* Conversations for --scenario (a comma list, or "all"). */
static int open_conversations(struct coord *c) {
    const struct serve_args *a = c->a;
    int total = 0;
    const char *s = a->scenarios;
    for (const char *q = s; *q; q++)
        total += *q == ',';
    total = !strcmp(s, "all") ? c->cfg.n_scenarios : total + 1;
    struct conv_opts o = {.max_turns = a->turns, .opening = a->opening, .bus = c->bus,
                          .transcript = c->tr};
    for (int i = 0; i < total; i++) {
        char name[256];
        if (!strcmp(s, "all")) {
            snprintf(name, sizeof name, "%s", c->cfg.scenarios[i].name);
        } else {
            const char *e = strchr(s, ',');
            size_t n = e ? (size_t)(e - s) : strlen(s);
            snprintf(name, sizeof name, "%.*s", (int)n, s);
            s = e ? e + 1 : s + n;
        }
        struct conv *cv = conv_create(&c->cfg, name, ++c->next_conv_id, &o);
        if (!cv) return -1;
        if (coord_add_conv(c, cv)) {
            conv_free(cv);
            return -1;
        }
        for (int k = 0; k < conv_n_messages(cv); k++) {
            const struct conv_message *mm = conv_message(cv, k);
            print_message(c, conv_id(cv), mm->who, mm->text);
        }
    }
    c->n_scenario_convs = c->n_convs;
    return 0;
}

int coord_add_conv(struct coord *c, struct conv *cv) {
    for (int i = 0; i < c->n_convs; i++)
        if (!c->convs[i]) {
            c->convs[i] = cv;
            return 0;
        }
    if (c->n_convs == c->cap_convs) {
        int cap = c->cap_convs ? 2 * c->cap_convs : 16;
        struct conv **v = realloc(c->convs, (size_t)cap * sizeof *v);
        if (!v) return err_set("out of memory");
        c->convs = v;
        c->cap_convs = cap;
    }
    c->convs[c->n_convs++] = cv;
    return 0;
}

int coord_find_conv(struct coord *c, long long id) {
    for (int i = 0; i < c->n_convs; i++)
        if (c->convs[i] && conv_id(c->convs[i]) == id) return i;
    return -1;
}

static int setup(struct coord *c) {
    const struct serve_args *a = c->a;
    double w[64];
    if (c->n_replicas > 64) return err_set("at most 64 replica groups");
    enum balance_policy pol;
    if (balancer_parse_policy(a->balance, &pol)) return -1;
    if (a->agents) {
        if (agents_config_load(a->agents, &c->cfg)) return -1;
        c->have_cfg = 1;
    }
    const double *weights = NULL;
    if (a->weights) {
        if (parse_weights(a->weights, c->n_replicas, w)) return -1;
        weights = w;
    } else if (pol == BALANCE_WEIGHTED && c->have_cfg && c->cfg.replica_weights) {
        if (c->cfg.n_replica_weights != c->n_replicas)
            return err_set("%s: replicas.weights has %d values but there are %d replica "
                           "groups",
                           a->agents, c->cfg.n_replica_weights, c->n_replicas);
        weights = c->cfg.replica_weights;
    }
    if (balancer_init(&c->bal, c->n_replicas, pol, weights, 1)) return -1;
    if (a->redact || a->redact_prompts) {
        if (redactor_init(&c->red)) return -1;
        c->have_red = 1;
    }
    if (a->transcript) {
        if (!(c->tr = transcript_open(a->transcript, 0))) return -1;
        if (c->have_red) transcript_set_filter(c->tr, redact_filter, &c->red);
    }
    if (!(c->bus = bus_create())) return -1;
    if (a->n_prompts) {
        c->results = calloc((size_t)a->n_prompts, sizeof *c->results);
        if (!c->results) return err_set("out of memory");
    }
    if (!c->leader && serve_engine_create(&c->local, c->m, a, NULL)) return -1;
    if (a->scenarios && open_conversations(c)) return -1;
    return 0;
}

static void print_prompt_results(struct coord *c) {
    for (int i = 0; i < c->a->n_prompts; i++) {
        struct prompt_result *r = &c->results[i];
        char *t = coord_shown(c, r->text ? r->text : "");
        /* JSON string escaping of the text */
        printf("{\"prompt\":%d,\"replica\":%d,\"tokens\":%d,\"finish\":\"%s\",\"text\":\"",
               i, r->replica, r->n_tokens, r->finish ? r->finish : "error");
        for (const unsigned char *q = (const unsigned char *)(t ? t : ""); *q; q++) {
            if (*q == '"' || *q == '\\')
                printf("\\%c", *q);
            else if (*q < 0x20)
                printf("\\u%04x", *q);
            else
                putchar(*q);
        }
        printf("\"}\n");
        free(t);
    }
    fflush(stdout);
}

static void summary(struct coord *c) {
    for (int i = 0; i < c->n_scenario_convs; i++) {
        struct conv *cv = c->convs[i];
        fprintf(stderr, "llmpi serve: conversation %d (%s): %d agent turns, %ld tokens, "
                        "ended: %s%s%s\n",
                conv_id(cv), conv_scenario(cv)->name, conv_agent_turns(cv),
                conv_tokens(cv), conv_end_name(conv_end_reason(cv)),
                conv_error(cv)[0] ? ": " : "", conv_error(cv));
    }
    fprintf(stderr, "llmpi serve: requests per replica group (%s):",
            balancer_policy_name(c->bal.policy));
    for (int r = 0; r < c->n_replicas && r < 64; r++)
        fprintf(stderr, " %ld", c->requests_per_replica[r]);
    fprintf(stderr, "\n");
}

int serve_coord_run(struct serve_model *m, const struct serve_args *a, int n_replicas,
                    const int *leader) {
    static struct coord C;
    struct coord *c = &C;
    memset(c, 0, sizeof *c);
    c->a = a;
    c->m = m;
    c->n_replicas = n_replicas;
    c->leader = leader;
    int rc = setup(c);
    for (int i = 0; i < a->n_prompts && !rc; i++) {
        struct agent_sampling s = {.p = a->sampling, .max_tokens = a->max_tokens,
                                   .n_stop = a->n_stop};
        for (int k = 0; k < a->n_stop; k++)
            s.stop[k] = (char *)a->stop[k];
        if (submit(c, a->prompts[i], &s, -1, 0, i)) rc = -1;
    }
    if (!rc && a->http && serve_api_start(c)) rc = -1;
    /* without --http the work is done when every conversation and prompt
     * is; an HTTP server runs until SIGINT or SIGTERM */
    long idle_us = 0;
    while (!rc && (c->api ? !serve_api_stop_requested() : !all_done(c))) {
        int busy = c->api ? serve_api_poll(c) : 0;
        issue(c);
        busy |= poll_events(c);
        int down[64];
        int nd = balancer_check_timeouts(&c->bal, coord_now(), a->replica_timeout, down, 64);
        for (int k = 0; k < nd; k++)
            replica_lost(c, down[k], "no answer within --replica-timeout");
        /* idle: sleep, a little longer each idle turn (50 us doubling to
         * 1 ms), instead of spinning on MPI_Iprobe; an HTTP call wakes it */
        idle_us = busy ? 0 : idle_us ? (idle_us * 2 > 1000 ? 1000 : idle_us * 2) : 50;
        if (!busy && c->api)
            serve_api_idle(c, c->leader ? idle_us * 1e-6 : 0.05);
        else if (!busy && c->leader)
            nanosleep(&(struct timespec){0, idle_us * 1000}, NULL);
    }
    if (c->api) serve_api_stop(c); /* every HTTP client answered, the server closed */
    if (!rc) {
        if (a->n_prompts) print_prompt_results(c);
        summary(c);
        /* everything ran, but a failed request makes the exit status say so */
        int failed = 0;
        for (int i = 0; i < c->n_scenario_convs; i++)
            failed += conv_end_reason(c->convs[i]) == CONV_END_ERROR;
        for (int i = 0; i < a->n_prompts; i++)
            failed += c->results[i].failed;
        if (failed)
            rc = err_set("%d of %d %s failed (the reasons are above)", failed,
                         c->n_scenario_convs + a->n_prompts,
                         c->n_scenario_convs ? "conversations and prompts" : "prompts");
    }
    /* shut the replicas down whatever happened: nobody may wait forever */
    struct serve_buf none = {0};
    for (int r = 0; c->leader && r < n_replicas; r++)
        send_to(c, r, &none, SERVE_TAG_SHUTDOWN);
    for (int i = 0; i < c->n_convs; i++)
        if (c->convs[i]) conv_free(c->convs[i]);
    free(c->convs);
    for (int i = 0; i < c->n_pend; i++)
        pending_drop(&c->pend[i]);
    free(c->pend);
    for (int i = 0; i < a->n_prompts && c->results; i++) {
        free(c->results[i].text);
        free(c->results[i].finish);
    }
    free(c->results);
    serve_outbox_free(&c->out);
    if (c->tr && transcript_close(c->tr) && !rc) rc = -1;
    if (c->bus) bus_free(c->bus);
    if (c->have_red) redactor_free(&c->red);
    if (c->have_cfg) agents_config_free(&c->cfg);
    balancer_free(&c->bal);
    if (!leader) serve_engine_destroy(&c->local);
    return rc;
}
