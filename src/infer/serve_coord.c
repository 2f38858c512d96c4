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
#include "serve_mpi.h"
#include "transcript.h"

/* A request in flight. */
struct pending {
    int live;
    int64_t id;
    int conv, conv_req; /* conversation index and its req_id; conv -1: a prompt */
    int prompt;         /* --prompt index */
    int replica;
    double t_submit, t_first;
    int n_tokens;
    char *text;
    size_t len, cap;
    struct serve_buf wire; /* the packed request, kept for a resend */
};

/* A finished --prompt request. */
struct prompt_result {
    int done, failed, replica, n_tokens;
    char *text, *finish;
};

struct coord {
    const struct serve_args *a;
    struct serve_model *m;
    int n_replicas;
    const int *leader;         /* world rank of each replica leader; NULL: local */
    struct serve_engine local; /* world of one */
    struct balancer bal;
    struct agents_config cfg;
    int have_cfg;
    struct bus *bus;
    struct transcript *tr;
    struct redactor red;
    int have_red;
    struct conv **convs;
    int n_convs;
    struct prompt_result *results;
    struct pending *pend;
    int n_pend;
    int64_t next_id;
    /* sends in flight */
    struct serve_outbox out; /* requests and shutdowns in flight */
    long requests_per_replica[64];
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The redaction filter of the transcript and the printed dialogue. */
static char *redact_filter(void *ctx, const char *text) {
    return redact(ctx, text, strlen(text), NULL);
}

/* text as it may be shown: redacted with --redact (malloc'd either way). */
static char *shown(struct coord *c, const char *text) {
    return c->have_red ? redact(&c->red, text, strlen(text), NULL) : strdup(text);
}

/* Length of the valid UTF-8 sequence at p[0..n), 0 when there is none
 * (a stray continuation byte, an overlong form, a surrogate, > U+10FFFF, or
 * a sequence cut by the end). */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned char b = p[0];
    size_t k = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3
                          : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (k == 0 || k > n) return 0;
    for (size_t j = 1; j < k; j++)
        if ((p[j] & 0xc0) != 0x80) return 0;
    if ((b == 0xe0 && p[1] < 0xa0) || (b == 0xed && p[1] >= 0xa0) ||
        (b == 0xf0 && p[1] < 0x90) || (b == 0xf4 && p[1] >= 0x90))
        return 0;
    return k;
}

/* Replace every byte that does not start a valid UTF-8 sequence with U+FFFD:
 * a byte-level model can emit any bytes, and transcripts and the JSON output
 * must stay valid UTF-8. *s is replaced only when something changes. -1
 * when out of memory. */
static int utf8_sanitize(char **s, size_t *len) {
    const unsigned char *p = (const unsigned char *)*s;
    size_t n = *len, bad = 0;
    for (size_t i = 0, k; i < n; i += k ? k : 1)
        bad += (k = utf8_len(p + i, n - i)) == 0;
    if (!bad) return 0;
    char *o = malloc(n + 2 * bad + 1);
    if (!o) return err_set("out of memory");
    size_t w = 0;
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        k = utf8_len(p + i, n - i);
        memcpy(o + w, k ? (const char *)p + i : "\xef\xbf\xbd", k ? k : 3);
        w += k ? k : 3;
    }
    o[w] = '\0';
    free(*s);
    *s = o;
    *len = w;
    return 0;
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
    double t = now_s();
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

/* Build and dispatch a request for `text` with `s`. */
static int submit(struct coord *c, const char *text, const struct agent_sampling *s,
                  int conv, int conv_req, int prompt) {
    const struct tokenizer *tok = c->m->tok;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    char *t = c->a->redact_prompts ? redact(&c->red, text, strlen(text), NULL) : NULL;
    const char *src = t ? t : text;
    int rc = tokenizer_encode(tok, src, strlen(src), &ids, &n, &cap);
    free(t);
    if (rc) return -1;
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
    struct pending *p = pending_new(c);
    if (!p) {
        free(ids);
        return err_set("out of memory");
    }
    p->live = 1;
    p->id = ++c->next_id;
    p->conv = conv;
    p->conv_req = conv_req;
    p->prompt = prompt;
    p->replica = -1;
    struct serve_request rq = {.id = p->id, .n_prompt = np, .prompt = (int32_t *)pr,
                               .max_tokens = s->max_tokens,
                               .temperature = s->p.temperature, .top_p = s->p.top_p,
                               .repetition_penalty = s->p.repetition_penalty,
                               .top_k = s->p.top_k, .seed = s->p.seed,
                               .n_stop = s->n_stop < SERVE_MAX_STOP ? s->n_stop
                                                                    : SERVE_MAX_STOP};
    for (int i = 0; i < rq.n_stop; i++)
        rq.stop[i] = s->stop[i];
    rc = serve_pack_request(&p->wire, &rq);
    free(ids);
    if (rc) {
        pending_drop(p);
        return -1;
    }
    dispatch(c, p);
    return 0;
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
    char *t = shown(c, text);
    printf("[%d] %s: %s\n", conv, who, t ? t : "(redaction failed)");
    fflush(stdout);
    free(t);
}

/* A request finished (ok) or failed (msg != NULL). */
static void complete(struct coord *c, struct pending *p, const char *msg, int finish) {
    double latency = now_s() - p->t_submit;
    if (p->replica >= 0) balancer_finished(&c->bal, p->replica, now_s());
    if (p->text && utf8_sanitize(&p->text, &p->len)) msg = err_msg();
    const char *text = p->text ? p->text : "";
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
    } else {
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

/* A replica reported its own failure: down, and its requests elsewhere. */
static void replica_lost(struct coord *c, int r, const char *why) {
    fprintf(stderr, "llmpi serve: replica group %d is down: %s\n", r, why);
    balancer_mark_down(&c->bal, r);
    for (int i = 0; i < c->n_pend; i++) {
        struct pending *p = &c->pend[i];
        if (!p->live || p->replica != r) continue;
        balancer_finished(&c->bal, r, now_s());
        dispatch(c, p);
    }
}

static void handle_events(struct coord *c, int replica, const void *msg, size_t len) {
    size_t off = 0;
    struct serve_event e;
    int got;
    if (replica >= 0) balancer_heard(&c->bal, replica, now_s());
    while ((got = serve_unpack_event(msg, len, &off, &e)) == 1) {
        if (e.id == -1) { /* the replica itself failed */
            char why[512];
            snprintf(why, sizeof why, "%.*s", (int)e.text_len, e.text ? e.text : "");
            replica_lost(c, replica, why);
            continue;
        }
        struct pending *p = pending_find(c, e.id);
        if (!p || p->replica != replica) continue; /* resent elsewhere meanwhile */
        if (e.kind == SERVE_EV_TOKEN) {
            if (!p->t_first) p->t_first = now_s();
            p->n_tokens++;
        }
        if (e.kind != SERVE_EV_ERROR && append(p, e.text, e.text_len)) {
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
        if (!conv_done(c->convs[i])) return 0;
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
    c->convs = calloc((size_t)total, sizeof *c->convs);
    if (!c->convs) return err_set("out of memory");
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
        if (!(c->convs[i] = conv_create(&c->cfg, name, i + 1, &o))) return -1;
        c->n_convs++;
        for (int k = 0; k < conv_n_messages(c->convs[i]); k++) {
            const struct conv_message *mm = conv_message(c->convs[i], k);
            print_message(c, i + 1, mm->who, mm->text);
        }
    }
    return 0;
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
        char *t = shown(c, r->text ? r->text : "");
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
    for (int i = 0; i < c->n_convs; i++) {
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
    while (!rc && !all_done(c)) {
        issue(c);
        int busy = poll_events(c);
        int down[64];
        int nd = balancer_check_timeouts(&c->bal, now_s(), a->replica_timeout, down, 64);
        for (int k = 0; k < nd; k++)
            replica_lost(c, down[k], "no answer within --replica-timeout");
        if (!busy && c->leader) nanosleep(&(struct timespec){0, 200000}, NULL);
    }
    if (!rc) {
        if (a->n_prompts) print_prompt_results(c);
        summary(c);
        /* everything ran, but a failed request makes the exit status say so */
        int failed = 0;
        for (int i = 0; i < c->n_convs; i++)
            failed += conv_end_reason(c->convs[i]) == CONV_END_ERROR;
        for (int i = 0; i < a->n_prompts; i++)
            failed += c->results[i].failed;
        if (failed)
            rc = err_set("%d of %d %s failed (the reasons are above)", failed,
                         c->n_convs + a->n_prompts,
                         c->n_convs ? "conversations and prompts" : "prompts");
    }
    /* shut the replicas down whatever happened: nobody may wait forever */
    struct serve_buf none = {0};
    for (int r = 0; c->leader && r < n_replicas; r++)
        send_to(c, r, &none, SERVE_TAG_SHUTDOWN);
    for (int i = 0; i < c->n_convs; i++)
        conv_free(c->convs[i]);
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
