/* tests/test_conversation.c — conversation patterns (src/infer/conversation.*).
 *
 * A fake generator stands in for the replicas: the reply to a request is
 * "agent:turn" (10 tokens) unless a test says otherwise, so the history,
 * the order of speakers and every prompt are known exactly. Checked: the
 * speaker order of each pattern, prompts built from template, persona and
 * history (exact strings), termination by max turns, stop phrase and token
 * budget (with max_tokens capped to the budget), routing by the router's
 * reply and by keywords, broadcast fan-out through the bus, several
 * conversations interleaved over one request queue, failures, and the
 * transcript lines a conversation writes. The shipped scenarios run to
 * their end as well.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents_config.h"
#include "bus.h"
#include "conv_route.h"
#include "conversation.h"
#include "err.h"
#include "transcript.h"

static const char *cfg_json =
    "{\"agents\": [\n"
    " {\"name\": \"a\", \"persona\": \"Persona-A\", \"sampling\": {\"seed\": 100}},\n"
    " {\"name\": \"b\", \"persona\": \"Persona-B\"},\n"
    " {\"name\": \"c\", \"persona\": \"Persona-C\"},\n"
    " {\"name\": \"desk\", \"persona\": \"Persona-desk\",\n"
    "  \"template\": \"{persona}|{specialists}|{history}|{message}|route:\"},\n"
    " {\"name\": \"billing\", \"persona\": \"Persona-billing\"},\n"
    " {\"name\": \"technical\", \"persona\": \"Persona-technical\"},\n"
    " {\"name\": \"escalation\", \"persona\": \"Persona-escalation\"},\n"
    " {\"name\": \"s1\", \"persona\": \"Persona-s1\", \"subscribe\": [\"news\"]},\n"
    " {\"name\": \"s2\", \"persona\": \"Persona-s2\", \"subscribe\": [\"news\"]},\n"
    " {\"name\": \"s3\", \"persona\": \"Persona-s3\", \"subscribe\": [\"news\", "
    "\"other\"]}],\n"
    " \"scenarios\": [\n"
    " {\"name\": \"duo\", \"pattern\": \"two-agent\", \"agents\": [\"a\", \"b\"],\n"
    "  \"opening\": \"hello\", \"max_turns\": 4},\n"
    " {\"name\": \"ring\", \"pattern\": \"round-robin\", \"agents\": [\"a\", \"b\", "
    "\"c\"],\n"
    "  \"opening\": \"start\", \"max_turns\": 7},\n"
    " {\"name\": \"stopper\", \"pattern\": \"two-agent\", \"agents\": [\"a\", \"b\"],\n"
    "  \"opening\": \"hi\", \"stop_phrase\": \"GOODBYE\", \"max_turns\": 50},\n"
    " {\"name\": \"budget\", \"pattern\": \"round-robin\", \"agents\": [\"a\", \"b\"],\n"
    "  \"opening\": \"go\", \"token_budget\": 35},\n"
    " {\"name\": \"windowed\", \"pattern\": \"two-agent\", \"agents\": [\"a\", \"b\"],\n"
    "  \"opening\": \"w\", \"max_turns\": 6, \"history_window\": 2},\n"
    " {\"name\": \"kw\", \"pattern\": \"router\", \"agents\": [\"billing\", "
    "\"technical\", \"escalation\"],\n"
    "  \"routes\": {\"billing\": [\"invoice\", \"refund\"], \"technical\": [\"error\", "
    "\"crash\", \"api\"],\n"
    "             \"escalation\": [\"lawyer\", \"manager\"]},\n"
    "  \"opening\": \"My invoice shows a refund that never came\", \"max_turns\": 10},\n"
    " {\"name\": \"desk\", \"pattern\": \"router\", \"router\": \"desk\",\n"
    "  \"agents\": [\"billing\", \"technical\", \"escalation\"],\n"
    "  \"routes\": {\"billing\": [\"invoice\", \"refund\"], \"technical\": [\"error\", "
    "\"crash\"]},\n"
    "  \"opening\": \"The API returns error 500\", \"max_turns\": 10},\n"
    " {\"name\": \"news\", \"pattern\": \"broadcast\", \"topic\": \"news\", \"opening\": "
    "\"Big news\",\n"
    "  \"max_turns\": 10}]}\n";

static struct agents_config cfg;

static void setup(void) {
    cr_assert_eq(agents_config_parse(cfg_json, strlen(cfg_json), "test.json", 0, &cfg), 0,
                 "%s", err_msg());
}

static void teardown(void) { agents_config_free(&cfg); }

TestSuite(conversation, .init = setup, .fini = teardown);

/* ---- the fake generator ----------------------------------------------------- */

typedef void (*reply_fn)(const struct conv_request *rq, void *ctx, char *text, size_t n,
                         int *tokens);

static void echo(const struct conv_request *rq, void *ctx, char *text, size_t n,
                 int *tokens) {
    (void)ctx;
    snprintf(text, n, "%s:%d", rq->agent_name, rq->turn);
    *tokens = 10;
}

#define MAX_REQ 256

/* Every request the fake generator saw, in the order it was issued. */
struct log {
    int n;
    struct conv_request rq[MAX_REQ];
    char *prompt[MAX_REQ];
};

static void log_free(struct log *l) {
    for (int i = 0; i < l->n; i++)
        free(l->prompt[i]);
    l->n = 0;
}

static void log_add(struct log *l, const struct conv_request *rq) {
    cr_assert_lt(l->n, MAX_REQ);
    l->rq[l->n] = *rq;
    l->prompt[l->n] = strdup(rq->prompt);
    l->n++;
}

/* Drive one conversation: issue all it wants, deliver them oldest first,
 * until it is done or idle (nothing wanted, nothing in flight). */
static void run(struct conv *c, reply_fn fn, void *ctx, struct log *log) {
    struct conv_request q[16];
    int nq = 0;
    for (int guard = 0; guard < 1000; guard++) {
        while (nq < 16 && conv_next(c, &q[nq]) == 1) {
            if (log) log_add(log, &q[nq]);
            nq++;
        }
        if (!nq) return;
        char text[256];
        int tokens;
        fn(&q[0], ctx, text, sizeof text, &tokens);
        cr_assert_eq(conv_deliver(c, q[0].req_id, text, tokens, q[0].req_id % 2, 0.25), 0,
                     "%s", err_msg());
        memmove(q, q + 1, (size_t)--nq * sizeof *q);
    }
    cr_assert_fail("conversation did not settle");
}

/* "who,who,..." of the history. */
static const char *speakers(const struct conv *c) {
    static char s[2048];
    s[0] = '\0';
    for (int i = 0; i < conv_n_messages(c); i++) {
        if (i) strcat(s, ",");
        strcat(s, conv_message(c, i)->who);
    }
    return s;
}

static struct conv *make(const char *scenario, int id, const struct conv_opts *o) {
    struct conv *c = conv_create(&cfg, scenario, id, o);
    cr_assert_not_null(c, "%s", err_msg());
    return c;
}

/* ---- patterns ------------------------------------------------------------------ */

Test(conversation, two_agent_order_and_prompts) {
    struct conv *c = make("duo", 1, NULL);
    struct log log = {0};
    run(c, echo, NULL, &log);
    cr_expect(conv_done(c));
    cr_expect_eq(conv_end_reason(c), CONV_END_MAX_TURNS);
    cr_expect_str_eq(speakers(c), "user,a,b,a,b");
    cr_expect_str_eq(conv_message(c, 2)->text, "b:2");
    cr_expect_eq(conv_agent_turns(c), 4);
    cr_expect_eq(conv_tokens(c), 40);
    cr_assert_eq(log.n, 4);
    cr_expect_str_eq(log.prompt[0], "Persona-A\n\nuser: hello\na:");
    cr_expect_str_eq(log.prompt[1], "Persona-B\n\nuser: hello\na: a:1\nb:");
    cr_expect_str_eq(log.prompt[3],
                     "Persona-B\n\nuser: hello\na: a:1\nb: b:2\na: a:3\nb:");
    /* request details: ids, turns, sampling (seed = agent seed + request id) */
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(log.rq[i].req_id, i);
        cr_expect_eq(log.rq[i].conv_id, 1);
        cr_expect_eq(log.rq[i].turn, i + 1);
        cr_expect_eq(log.rq[i].sampling.max_tokens, 128);
        cr_expect_str_eq(log.rq[i].sampling.stop[0], "\n");
    }
    cr_expect_eq(log.rq[0].sampling.p.seed, 100);
    cr_expect_eq(log.rq[2].sampling.p.seed, 102);
    cr_expect_eq(log.rq[1].sampling.p.seed, 1);
    cr_expect_eq(conv_next(c, &log.rq[0]), 0); /* ended: nothing more */
    conv_free(c);
    log_free(&log);
}

Test(conversation, round_robin_order_and_turns_override) {
    struct conv *c = make("ring", 2, NULL);
    struct log log = {0};
    run(c, echo, NULL, &log);
    cr_expect_str_eq(speakers(c), "user,a,b,c,a,b,c,a");
    cr_expect_eq(conv_end_reason(c), CONV_END_MAX_TURNS);
    /* the last prompt: persona of a, the whole history, a's line to complete */
    cr_expect_str_eq(log.prompt[6],
                     "Persona-A\n\nuser: start\na: a:1\nb: b:2\nc: c:3\na: a:4\n"
                     "b: b:5\nc: c:6\na:");
    conv_free(c);
    log_free(&log);
    /* --turns replaces max_turns */
    struct conv_opts o = {.max_turns = 2};
    c = make("ring", 3, &o);
    run(c, echo, NULL, NULL);
    cr_expect_str_eq(speakers(c), "user,a,b");
    cr_expect_eq(conv_end_reason(c), CONV_END_MAX_TURNS);
    conv_free(c);
}

static void say_goodbye(const struct conv_request *rq, void *ctx, char *text, size_t n,
                        int *tokens) {
    (void)ctx;
    snprintf(text, n, "%s:%d%s", rq->agent_name, rq->turn,
             rq->turn == 3 ? " GOODBYE then" : "");
    *tokens = 10;
}

Test(conversation, stop_phrase) {
    struct conv *c = make("stopper", 4, NULL);
    run(c, say_goodbye, NULL, NULL);
    cr_expect(conv_done(c));
    cr_expect_eq(conv_end_reason(c), CONV_END_STOP_PHRASE);
    cr_expect_str_eq(conv_end_name(conv_end_reason(c)), "stop_phrase");
    cr_expect_str_eq(speakers(c), "user,a,b,a");
    cr_expect_str_eq(conv_message(c, 3)->text, "a:3 GOODBYE then");
    cr_expect_eq(conv_post(c, NULL, "too late"), -1);
    cr_expect(strstr(err_msg(), "has ended (stop_phrase)"), "%s", err_msg());
    conv_free(c);
}

Test(conversation, token_budget_caps_and_ends) {
    struct conv *c = make("budget", 5, NULL);
    struct log log = {0};
    run(c, echo, NULL, &log);
    cr_expect_eq(conv_end_reason(c), CONV_END_TOKEN_BUDGET);
    cr_expect_str_eq(speakers(c), "user,a,b,a,b");
    cr_assert_eq(log.n, 4);
    int want[] = {35, 25, 15, 5}; /* max_tokens capped to what is left */
    for (int i = 0; i < 4; i++)
        cr_expect_eq(log.rq[i].sampling.max_tokens, want[i]);
    cr_expect_eq(conv_tokens(c), 40);
    conv_free(c);
    log_free(&log);
}

Test(conversation, history_window) {
    struct conv *c = make("windowed", 6, NULL);
    struct log log = {0};
    run(c, echo, NULL, &log);
    cr_assert_eq(log.n, 6);
    /* turn 4 (b) answers message 3; {history} holds only messages 1 and 2 */
    cr_expect_str_eq(log.prompt[3], "Persona-B\n\na: a:1\nb: b:2\na: a:3\nb:");
    conv_free(c);
    log_free(&log);
}

Test(conversation, post_from_outside_is_answered_next) {
    struct conv_opts o = {.max_turns = 3};
    struct conv *c = make("duo", 7, &o);
    struct conv_request rq;
    cr_assert_eq(conv_next(c, &rq), 1);
    cr_expect_eq(conv_next(c, &rq), 0);                     /* one in flight at most */
    cr_assert_eq(conv_post(c, "carol", "wait, me too"), 0); /* arrives while a speaks */
    cr_assert_eq(conv_deliver(c, rq.req_id, "a-reply", 5, 0, 0.1), 0);
    struct log log = {0};
    run(c, echo, NULL, &log);
    cr_expect_str_eq(speakers(c), "user,carol,a,b,a");
    cr_expect_str_eq(log.prompt[0],
                     "Persona-B\n\nuser: hello\ncarol: wait, me too\na: a-reply\nb:");
    conv_free(c);
    log_free(&log);
}

/* ---- router ------------------------------------------------------------------ */

Test(conversation, route_helpers) {
    const struct scenario_def *kw = agents_config_scenario(&cfg, "kw");
    int billing = agents_config_agent(&cfg, "billing"),
        tech = agents_config_agent(&cfg, "technical"),
        esc = agents_config_agent(&cfg, "escalation");
    cr_expect_eq(conv_route_named(&cfg, kw, "send it to Technical, not billing"), tech);
    cr_expect_eq(conv_route_named(&cfg, kw, "BILLING."), billing);
    cr_expect_eq(conv_route_named(&cfg, kw, "the billings team"), -1); /* whole words */
    cr_expect_eq(conv_route_named(&cfg, kw, "nobody"), -1);
    cr_expect_eq(conv_route_keywords(kw, "An ERROR in my Invoice, API crash"),
                 tech); /* 3 > 1 */
    cr_expect_eq(conv_route_keywords(kw, "invoice error"),
                 billing); /* tie: first route */
    cr_expect_eq(conv_route_keywords(kw, "get me a manager"), esc);
    cr_expect_eq(conv_route_keywords(kw, "hello"), -1);
    cr_expect_eq(conv_route_pick(&cfg, kw, "escalation please", "invoice"), esc);
    cr_expect_eq(conv_route_pick(&cfg, kw, "hmm", "invoice"), billing);
    cr_expect_eq(conv_route_pick(&cfg, kw, NULL, "hello"),
                 billing); /* the first specialist */
}

Test(conversation, router_by_keywords) {
    struct conv_opts o = {.keep_open = 1};
    struct conv *c = make("kw", 8, &o);
    struct log log = {0};
    run(c, echo, NULL, &log);
    cr_expect_str_eq(speakers(c), "user,billing");
    cr_expect_not(conv_done(c)); /* kept open: waits for the next message */
    cr_assert_eq(conv_post(c, NULL, "the api throws an error"), 0);
    run(c, echo, NULL, &log);
    cr_assert_eq(conv_post(c, NULL, "I want a manager now"), 0);
    cr_assert_eq(conv_post(c, NULL, "hello?"), 0); /* queued behind it */
    run(c, echo, NULL, &log);
    cr_expect_str_eq(speakers(c),
                     "user,billing,user,technical,user,user,escalation,billing");
    cr_assert_eq(log.n, 4);
    cr_expect_str_eq(log.prompt[1],
                     "Persona-technical\n\nuser: My invoice shows a refund that "
                     "never came\nbilling: billing:1\nuser: the api throws an error\n"
                     "technical:");
    cr_expect(strstr(log.prompt[2], "user: I want a manager now\nescalation:"), "%s",
              log.prompt[2]);
    /* the earlier question's answer is history now, though it came after "hello?" */
    cr_expect(strstr(log.prompt[3],
                     "user: I want a manager now\nescalation: escalation:6\n"
                     "user: hello?\nbilling:"),
              "%s", log.prompt[3]);
    cr_expect_not(conv_done(c));
    conv_close(c);
    cr_expect(conv_done(c));
    cr_expect_eq(conv_end_reason(c), CONV_END_CLOSED);
    conv_free(c);
    log_free(&log);
    /* not kept open: answered, then done */
    c = make("kw", 9, NULL);
    run(c, echo, NULL, NULL);
    cr_expect(conv_done(c));
    cr_expect_eq(conv_end_reason(c), CONV_END_ANSWERED);
    cr_expect_str_eq(speakers(c), "user,billing");
    conv_free(c);
}

/* The router agent answers from a script; specialists echo. */
static void scripted_router(const struct conv_request *rq, void *ctx, char *text,
                            size_t n, int *tokens) {
    int *k = ctx;
    static const char *script[] = {" technical", " I think Escalation.", " no idea"};
    if (!strcmp(rq->agent_name, "desk"))
        snprintf(text, n, "%s", script[(*k)++ % 3]);
    else
        snprintf(text, n, "%s:%d", rq->agent_name, rq->turn);
    *tokens = 3;
}

Test(conversation, router_agent_picks_specialist) {
    struct conv_opts o = {.keep_open = 1};
    struct conv *c = make("desk", 10, &o);
    struct log log = {0};
    int k = 0;
    run(c, scripted_router, &k, &log);
    cr_assert_eq(conv_post(c, NULL, "question about my invoice"), 0);
    run(c, scripted_router, &k, &log); /* the router's reply beats the keyword */
    cr_assert_eq(conv_post(c, NULL, "where is my refund"), 0);
    run(c, scripted_router, &k, &log); /* router names nobody: keywords */
    cr_expect_str_eq(speakers(c),
                     "user,desk,technical,user,desk,escalation,user,desk,billing");
    cr_expect(conv_message(c, 1)->routing);
    cr_expect_not(conv_message(c, 2)->routing);
    cr_assert_eq(log.n, 6);
    cr_expect_str_eq(
        log.prompt[0],
        "Persona-desk|billing, technical, escalation||The API returns error 500|route:");
    /* the specialist answers the user's message; routing replies stay out of {history} */
    cr_expect_str_eq(log.prompt[1],
                     "Persona-technical\n\nuser: The API returns error 500\ntechnical:");
    cr_expect_str_eq(log.prompt[3],
                     "Persona-escalation\n\nuser: The API returns error 500\n"
                     "technical: technical:2\nuser: question about my invoice\n"
                     "escalation:");
    for (int i = 0; i < log.n; i++)
        cr_expect_null(strstr(log.prompt[i], "desk:"), "%s", log.prompt[i]);
    cr_expect_eq(conv_agent_turns(c), 6); /* routing replies count as turns */
    conv_close(c);
    conv_free(c);
    log_free(&log);
}

/* ---- broadcast ------------------------------------------------------------------ */

Test(conversation, broadcast_fan_out_through_the_bus) {
    struct bus *bus = bus_create();
    cr_assert_eq(bus_subscribe(bus, "watcher", "news"), 0); /* an outside client */
    struct conv_opts o = {.bus = bus};
    struct conv *c = make("news", 11, &o);
    struct conv_request rq[4];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(conv_next(c, &rq[i]), 1, "request %d", i);
    cr_expect_eq(conv_next(c, &rq[3]), 0);
    cr_expect_eq(conv_in_flight(c), 3);
    const char *who[] = {"s1", "s2", "s3"};
    for (int i = 0; i < 3; i++) {
        cr_expect_str_eq(rq[i].agent_name, who[i]);
        char want[64];
        snprintf(want, sizeof want, "Persona-%s\n\nuser: Big news\n%s:", who[i], who[i]);
        cr_expect_str_eq(rq[i].prompt, want);
    }
    for (int i = 2; i >= 0; i--) { /* replies come back in any order */
        char text[32];
        snprintf(text, sizeof text, "%s says hi", rq[i].agent_name);
        cr_assert_eq(conv_deliver(c, rq[i].req_id, text, 4, i, 0.5), 0, "%s", err_msg());
    }
    cr_expect_not(conv_done(c));
    cr_expect_eq(conv_next(c, &rq[0]), 0);
    cr_expect(conv_done(c));
    cr_expect_eq(conv_end_reason(c), CONV_END_ANSWERED);
    cr_expect_str_eq(speakers(c), "user,s3,s2,s1");
    /* the watcher saw the opening and every reply, in topic order */
    const char *seen[] = {"Big news", "s3 says hi", "s2 says hi", "s1 says hi"};
    struct bus_msg m;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(bus_pop(bus, "watcher", 11, &m), 1);
        cr_expect_str_eq(m.text, seen[i]);
        cr_expect_eq(m.seq, (uint64_t)i + 1);
        bus_msg_free(&m);
    }
    cr_expect_eq(bus_pending(bus, "watcher", BUS_ANY_CONV), 0);
    conv_free(c);
    /* the participants' queues hold nothing of this conversation any more */
    for (int i = 0; i < 3; i++)
        cr_expect_eq(bus_pending(bus, who[i], 11), 0);
    bus_free(bus);
}

Test(conversation, broadcast_outside_publish_and_max_turns) {
    struct bus *bus = bus_create();
    struct conv_opts o = {.bus = bus, .keep_open = 1, .max_turns = 5};
    struct conv *c = make("news", 12, &o);
    struct log log = {0};
    run(c, echo, NULL, &log);
    cr_expect_eq(conv_agent_turns(c), 3);
    cr_expect_not(conv_done(c));
    /* a client publishes straight to the topic for this conversation */
    cr_assert_eq(bus_publish(bus, "news", "client", "second question", 12, NULL), 3);
    run(c, echo, NULL, &log);
    cr_expect(conv_done(c));
    cr_expect_eq(conv_end_reason(c), CONV_END_MAX_TURNS);
    cr_expect_eq(conv_agent_turns(c), 5); /* only two of three answered */
    cr_expect_str_eq(speakers(c), "user,s1,s2,s3,client,s1,s2");
    cr_expect(strstr(log.prompt[3], "client: second question\ns1:"), "%s", log.prompt[3]);
    cr_expect(strstr(log.prompt[3], "s3: s3:1\n"), "%s", log.prompt[3]);
    conv_free(c);
    log_free(&log);
    cr_expect_eq(bus_pending(bus, "s3", BUS_ANY_CONV), 0);
    /* broadcast without a bus is refused */
    cr_expect_null(conv_create(&cfg, "news", 13, NULL));
    cr_expect(strstr(err_msg(), "needs the message bus"), "%s", err_msg());
    bus_free(bus);
}

/* ---- several at once -------------------------------------------------------------- */

struct pend {
    struct conv *c;
    struct conv_request rq;
};

Test(conversation, interleaved_conversations) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/llmpi_test_conv_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    struct transcript *tr = transcript_open(path, 0);
    struct bus *bus = bus_create();
    struct conv_opts o = {.bus = bus, .transcript = tr};
    const char *names[] = {"duo", "ring", "kw", "news", "budget", "duo"};
    const char *want[] = {"user,a,b,a,b",  "user,a,b,c,a,b,c,a", "user,billing",
                          "user,s1,s2,s3", "user,a,b,a,b",       "user,a,b,a,b"};
    enum { N = 6 };
    struct conv *c[N];
    for (int i = 0; i < N; i++)
        c[i] = make(names[i], 100 + i, &o);
    struct pend q[64];
    int nq = 0;
    unsigned rng = 12345;
    for (int step = 0; step < 1000; step++) {
        for (int i = 0; i < N; i++)
            while (nq < 64 && conv_next(c[i], &q[nq].rq) == 1)
                q[nq++].c = c[i];
        for (int i = 0; i < N; i++)
            if (c[i] != c[3]) cr_assert_leq(conv_in_flight(c[i]), 1, "%s", names[i]);
        if (!nq) break;
        rng = rng * 1103515245u + 12345u; /* deliver a pseudo-random one */
        int k = (int)((rng >> 16) % (unsigned)nq);
        char text[64];
        snprintf(text, sizeof text, "%s:%d", q[k].rq.agent_name, q[k].rq.turn);
        cr_assert_eq(conv_deliver(q[k].c, q[k].rq.req_id, text, 10, k % 3, 0.01 * k), 0,
                     "%s", err_msg());
        q[k] = q[--nq];
    }
    int total = 0;
    for (int i = 0; i < N; i++) {
        cr_expect(conv_done(c[i]), "%s not done", names[i]);
        if (i != 3) cr_expect_str_eq(speakers(c[i]), want[i], "%s", names[i]);
        total += conv_n_messages(c[i]);
    }
    /* broadcast replies may come back in any order: the set is what matters */
    cr_expect_eq(conv_n_messages(c[3]), 4);
    for (int i = 1; i < 4; i++)
        cr_expect_eq(conv_message(c[3], i)->who[0], 's');
    /* the shared transcript: one JSON line per message, turns in order per conversation
     */
    cr_assert_eq(transcript_close(tr), 0);
    FILE *f = fopen(path, "r");
    char line[1024];
    int next_turn[N] = {0}, lines = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        cr_assert_not_null(j, "%s", line);
        int id = cJSON_GetObjectItem(j, "conv")->valueint - 100;
        cr_assert(id >= 0 && id < N);
        cr_expect_eq(cJSON_GetObjectItem(j, "turn")->valueint, next_turn[id]++);
        const struct conv_message *m =
            conv_message(c[id], cJSON_GetObjectItem(j, "turn")->valueint);
        cr_expect_str_eq(cJSON_GetObjectItem(j, "who")->valuestring, m->who);
        cr_expect_str_eq(cJSON_GetObjectItem(j, "text")->valuestring, m->text);
        cr_expect_str_eq(cJSON_GetObjectItem(j, "scenario")->valuestring, names[id]);
        cJSON_Delete(j);
        lines++;
    }
    fclose(f);
    unlink(path);
    cr_expect_eq(lines, total);
    for (int i = 0; i < N; i++)
        conv_free(c[i]);
    bus_free(bus);
}

/* ---- failures and the transcript ----------------------------------------------------
 */

Test(conversation, failures) {
    struct conv *c = make("duo", 14, NULL);
    struct conv_request rq;
    cr_assert_eq(conv_next(c, &rq), 1);
    cr_expect_eq(conv_deliver(c, rq.req_id + 7, "x", 1, 0, 0.1), -1);
    cr_expect(strstr(err_msg(), "no request 7 in flight"), "%s", err_msg());
    cr_assert_eq(conv_fail(c, rq.req_id, "replica 1 lost"), 0);
    cr_expect(conv_done(c));
    cr_expect_eq(conv_end_reason(c), CONV_END_ERROR);
    cr_expect(strstr(conv_error(c), "replica 1 lost"), "%s", conv_error(c));
    cr_expect_eq(conv_next(c, &rq), 0);
    conv_free(c);
    cr_expect_null(conv_create(&cfg, "nope", 15, NULL));
    cr_expect(strstr(err_msg(), "no scenario named 'nope'"), "%s", err_msg());
}

Test(conversation, transcript_lines) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/llmpi_test_conv_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    struct transcript *tr = transcript_open(path, 0);
    struct conv_opts o = {.transcript = tr};
    struct conv *c = make("duo", 16, &o);
    run(c, echo, NULL, NULL);
    conv_free(c);
    cr_assert_eq(transcript_close(tr), 0);
    FILE *f = fopen(path, "r");
    char line[1024];
    int n = 0;
    const char *who[] = {"user", "a", "b", "a", "b"};
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        cr_assert_not_null(j, "%s", line);
        cr_assert_lt(n, 5);
        cr_expect_eq(cJSON_GetObjectItem(j, "conv")->valueint, 16);
        cr_expect_str_eq(cJSON_GetObjectItem(j, "scenario")->valuestring, "duo");
        cr_expect_eq(cJSON_GetObjectItem(j, "turn")->valueint, n);
        cr_expect_str_eq(cJSON_GetObjectItem(j, "who")->valuestring, who[n]);
        cr_expect_str_eq(cJSON_GetObjectItem(j, "role")->valuestring,
                         n ? "agent" : "user");
        cr_expect(cJSON_IsString(cJSON_GetObjectItem(j, "when")));
        cr_expect(cJSON_IsString(cJSON_GetObjectItem(j, "text")));
        cr_expect_eq(cJSON_GetObjectItem(j, "tokens")->valueint, n ? 10 : 0);
        if (n) {
            cr_expect_eq(cJSON_GetObjectItem(j, "replica")->valueint, (n - 1) % 2);
            cr_expect_float_eq(cJSON_GetObjectItem(j, "latency_ms")->valuedouble, 250.0,
                               1e-9);
        } else {
            cr_expect(cJSON_IsNull(cJSON_GetObjectItem(j, "replica")));
            cr_expect(cJSON_IsNull(cJSON_GetObjectItem(j, "latency_ms")));
        }
        cJSON_Delete(j);
        n++;
    }
    fclose(f);
    unlink(path);
    cr_expect_eq(n, 5);
}

/* ---- the shipped scenarios ----------------------------------------------------------
 */

static void shipped_reply(const struct conv_request *rq, void *ctx, char *text, size_t n,
                          int *tokens) {
    (void)ctx;
    if (!strcmp(rq->agent_name, "dispatcher"))
        snprintf(text, n, " billing");
    else
        snprintf(text, n, " %s speaking (turn %d)", rq->agent_name, rq->turn);
    *tokens = 12;
}

Test(conversation, shipped_scenarios_run_to_the_end) {
    struct agents_config shipped;
    cr_assert_eq(agents_config_load(AGENTS_FILE, &shipped), 0, "%s", err_msg());
    struct bus *bus = bus_create();
    struct conv_opts o = {.bus = bus};
    struct {
        const char *name, *speakers;
        enum conv_end end;
    } want[] = {
        {"customer-service", "user,dispatcher,billing", CONV_END_ANSWERED},
        {"game-npcs",
         "user,Brom,Elsa,Captain_Rhys,Brom,Elsa,Captain_Rhys,Brom,Elsa,Captain_Rhys",
         CONV_END_MAX_TURNS},
        {"assistant", "user,assistant", CONV_END_ANSWERED},
        {"debate", "user,Alex,Jo,Alex,Jo,Alex,Jo", CONV_END_MAX_TURNS},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct conv *c = conv_create(&shipped, want[i].name, (int)i, &o);
        cr_assert_not_null(c, "%s", err_msg());
        struct log log = {0};
        run(c, shipped_reply, NULL, &log);
        cr_expect(conv_done(c), "%s", want[i].name);
        cr_expect_eq(conv_end_reason(c), want[i].end, "%s: %s", want[i].name,
                     conv_end_name(conv_end_reason(c)));
        cr_expect_str_eq(speakers(c), want[i].speakers, "%s", want[i].name);
        for (int r = 0; r < log.n; r++) { /* every prompt carries the speaker's persona */
            const struct agent_def *a = &shipped.agents[log.rq[r].agent];
            cr_expect(strstr(log.prompt[r], a->persona), "%s: %s", want[i].name, a->name);
        }
        conv_free(c);
        log_free(&log);
    }
    bus_free(bus);
    agents_config_free(&shipped);
}
