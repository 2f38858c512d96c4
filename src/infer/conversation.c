/* src/infer/conversation.c — the four conversation patterns.
 *
 * State common to all patterns: the history (messages with owned text), the
 * requests in flight (each with its prompt and the message it answers), the
 * counters termination looks at, and the end reason. Per pattern:
 *  - two-agent / round-robin: the index of the next speaker; a request is
 *    issued whenever none is in flight, answering the last message;
 *  - router: an inbox of user messages; the head is routed (a router
 *    request, or keywords) and then answered by the chosen specialist;
 *  - broadcast: the bus holds the state: each idle participant pops its
 *    queue (this conversation's messages only), drops copies of the other
 *    agents' replies and answers the first outside message.
 * Router and broadcast end as answered when conv_next finds nothing to do
 * and nothing in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_prompt.h"
#include "conv_route.h"
#include "conversation.h"
#include "err.h"

enum kind { K_TURN, K_ROUTE, K_ANSWER };

struct msg {
    struct conv_message m;
    uint64_t seq; /* broadcast: the message's sequence number on the topic, 0 if none */
};

struct flight {
    int req_id, agent, answering; /* answering: message index, -1 for none */
    enum kind kind;
    char *prompt;
};

struct conv {
    const struct agents_config *cfg;
    const struct scenario_def *sc;
    int id, max_turns, keep_open;
    struct bus *bus;
    struct transcript *tr;
    struct msg *msgs;
    int n_msgs, cap_msgs;
    struct flight *fl;
    int n_fl, cap_fl;
    int next_req, agent_turns, speaker;
    long tokens;
    enum conv_end end;
    char error[256];
    int *inbox; /* router: user messages not answered yet (indices) */
    int n_inbox, cap_inbox;
    int routed; /* router: the specialist chosen for inbox[0], -1 = not yet */
    char *specialists;
    int tr_err; /* a transcript write failed since the last check */
};

const char *conv_end_name(enum conv_end why) {
    switch (why) {
    case CONV_END_NONE:
        return "none";
    case CONV_END_MAX_TURNS:
        return "max_turns";
    case CONV_END_STOP_PHRASE:
        return "stop_phrase";
    case CONV_END_TOKEN_BUDGET:
        return "token_budget";
    case CONV_END_ANSWERED:
        return "answered";
    case CONV_END_CLOSED:
        return "closed";
    case CONV_END_ERROR:
        return "error";
    }
    return "?";
}

static int grow(void **arr, int n, int *cap, size_t size) {
    if (n < *cap) return 0;
    int c = *cap ? 2 * *cap : 16;
    void *p = realloc(*arr, (size_t)c * size);
    if (!p) return err_set("conversation: out of memory");
    *arr = p;
    *cap = c;
    return 0;
}

/* Append a message (copies who and text) and write its transcript line.
 * Its index, or -1 on out of memory; a transcript write error sets tr_err
 * (the message is kept). */
static int add_msg(struct conv *c, const char *who, int agent, const char *text,
                   int n_tokens, int replica, double latency_s, int routing,
                   uint64_t seq) {
    if (grow((void **)&c->msgs, c->n_msgs, &c->cap_msgs, sizeof *c->msgs)) return -1;
    struct msg *m = &c->msgs[c->n_msgs];
    memset(m, 0, sizeof *m);
    char *w = strdup(who), *t = strdup(text);
    if (!w || !t) {
        free(w);
        free(t);
        return err_set("conversation: out of memory");
    }
    m->m = (struct conv_message){
        c->n_msgs, w, agent, t, n_tokens, replica, latency_s, transcript_now(), routing};
    m->seq = seq;
    int idx = c->n_msgs++;
    if (c->tr) {
        struct transcript_entry e = {c->id, c->sc->name, idx,     w,         agent < 0,
                                     t,     n_tokens,    replica, latency_s, m->m.when};
        if (transcript_write(c->tr, &e)) c->tr_err = 1;
    }
    return idx;
}

static int is_participant(const struct conv *c, const char *name) {
    for (int i = 0; i < c->sc->n_agents; i++)
        if (!strcmp(c->cfg->agents[c->sc->agents[i]].name, name)) return 1;
    return 0;
}

/* -1 when a transcript write failed since the last check (its error is set). */
static int tr_check(struct conv *c) {
    int rc = c->tr_err ? -1 : 0;
    c->tr_err = 0;
    return rc;
}

/* A user message: history, transcript, and the pattern's input. */
static int post(struct conv *c, const char *who, const char *text) {
    uint64_t seq = 0;
    if (c->sc->pattern == CONV_BROADCAST &&
        bus_publish(c->bus, c->sc->topic, who, text, c->id, &seq) < 0)
        return -1;
    int idx = add_msg(c, who, -1, text, 0, -1, -1.0, 0, seq);
    if (idx < 0) return -1;
    if (c->sc->pattern == CONV_ROUTER) {
        if (grow((void **)&c->inbox, c->n_inbox, &c->cap_inbox, sizeof *c->inbox))
            return -1;
        c->inbox[c->n_inbox++] = idx;
    }
    return tr_check(c);
}

struct conv *conv_create(const struct agents_config *cfg, const char *scenario, int id,
                         const struct conv_opts *opts) {
    static const struct conv_opts none = {0};
    if (!opts) opts = &none;
    const struct scenario_def *sc = agents_config_scenario(cfg, scenario);
    if (!sc) return NULL;
    if (sc->pattern == CONV_BROADCAST && !opts->bus) {
        err_set("scenario '%s': the broadcast pattern needs the message bus", sc->name);
        return NULL;
    }
    struct conv *c = calloc(1, sizeof *c);
    if (!c) {
        err_set("conversation: out of memory");
        return NULL;
    }
    c->cfg = cfg;
    c->sc = sc;
    c->id = id;
    c->max_turns = opts->max_turns > 0 ? opts->max_turns : sc->max_turns;
    c->keep_open = opts->keep_open;
    c->bus = sc->pattern == CONV_BROADCAST ? opts->bus : NULL;
    c->tr = opts->transcript;
    c->routed = -1;
    struct conv_buf names = {0};
    for (int i = 0; i < sc->n_agents; i++)
        if ((i && conv_buf_str(&names, ", ")) ||
            conv_buf_str(&names, cfg->agents[sc->agents[i]].name))
            goto fail;
    c->specialists = names.s;
    for (int i = 0; c->bus && i < sc->n_agents; i++)
        if (bus_subscribe(c->bus, cfg->agents[sc->agents[i]].name, sc->topic)) goto fail;
    const char *opening = opts->opening ? opts->opening : sc->opening;
    if (opening && post(c, AGENT_USER, opening)) goto fail;
    return c;
fail:
    conv_free(c);
    return NULL;
}

void conv_free(struct conv *c) {
    if (!c) return;
    /* this conversation's copies still waiting in the participants' queues */
    for (int i = 0; c->bus && i < c->sc->n_agents; i++) {
        struct bus_msg m;
        while (bus_pop(c->bus, c->cfg->agents[c->sc->agents[i]].name, c->id, &m) == 1)
            bus_msg_free(&m);
    }
    for (int i = 0; i < c->n_msgs; i++) {
        free((char *)c->msgs[i].m.who);
        free((char *)c->msgs[i].m.text);
    }
    for (int i = 0; i < c->n_fl; i++)
        free(c->fl[i].prompt);
    free(c->msgs);
    free(c->fl);
    free(c->inbox);
    free(c->specialists);
    free(c);
}

/* Shown in {history}: not a routing reply, not the message being answered. */
static int shown(const struct conv *c, int i, int answering) {
    return i != answering && !c->msgs[i].m.routing;
}

/* The prompt for `agent` answering message `answering` (-1: none). {history}
 * holds the messages so far but that one (broadcast: the messages before it,
 * so that concurrent answers to it are not shown as coming first), the last
 * history_window of them when the scenario sets one. */
static char *build_prompt(const struct conv *c, int agent, int answering) {
    const struct agent_def *a = &c->cfg->agents[agent];
    struct conv_buf h = {0};
    int first = 0;
    int end = c->sc->pattern == CONV_BROADCAST && answering >= 0 ? answering : c->n_msgs;
    if (c->sc->history_window > 0)
        for (int n = 0, i = end; i > 0 && n < c->sc->history_window; i--)
            if (shown(c, i - 1, answering)) {
                n++;
                first = i - 1;
            }
    if (conv_buf_add(&h, "", 0)) return NULL;
    for (int i = first; i < end; i++)
        if (shown(c, i, answering) &&
            conv_buf_line(&h, c->msgs[i].m.who, c->msgs[i].m.text)) {
            free(h.s);
            return NULL;
        }
    const struct conv_message *m = answering >= 0 ? &c->msgs[answering].m : NULL;
    struct conv_prompt_vars v = {a->persona,      a->name,          h.s,
                                 m ? m->who : "", m ? m->text : "", c->specialists};
    char *p = conv_template_render(a->tmpl, &v);
    free(h.s);
    return p;
}

/* Issue a request: 1, or -1. */
static int issue(struct conv *c, int agent, int answering, enum kind kind,
                 struct conv_request *out) {
    if (grow((void **)&c->fl, c->n_fl, &c->cap_fl, sizeof *c->fl)) return -1;
    char *prompt = build_prompt(c, agent, answering);
    if (!prompt) return -1;
    const struct agent_def *a = &c->cfg->agents[agent];
    struct flight *f = &c->fl[c->n_fl++];
    *f = (struct flight){c->next_req++, agent, answering, kind, prompt};
    memset(out, 0, sizeof *out);
    out->req_id = f->req_id;
    out->conv_id = c->id;
    out->agent = agent;
    out->agent_name = a->name;
    out->prompt = prompt;
    out->turn = c->n_msgs;
    out->sampling = a->sampling;
    out->sampling.p.seed = a->sampling.p.seed + (uint64_t)f->req_id;
    if (c->sc->token_budget && c->sc->token_budget - c->tokens < out->sampling.max_tokens)
        out->sampling.max_tokens = (int)(c->sc->token_budget - c->tokens);
    return 1;
}

static int busy(const struct conv *c, int agent) {
    for (int i = 0; i < c->n_fl; i++)
        if (c->fl[i].agent == agent) return 1;
    return 0;
}

/* Room for one more agent message (max turns, token budget). */
static int room(const struct conv *c) {
    if (c->max_turns && c->agent_turns + c->n_fl >= c->max_turns) return 0;
    return !c->sc->token_budget || c->tokens < c->sc->token_budget;
}

static void answered(struct conv *c) {
    if (!c->end && !c->keep_open && !c->n_fl) c->end = CONV_END_ANSWERED;
}

static int next_router(struct conv *c, struct conv_request *out) {
    if (!c->n_inbox) {
        answered(c);
        return 0;
    }
    int m = c->inbox[0];
    if (c->routed < 0 && c->sc->router >= 0)
        return issue(c, c->sc->router, m, K_ROUTE, out);
    if (c->routed < 0)
        c->routed = conv_route_pick(c->cfg, c->sc, NULL, c->msgs[m].m.text);
    return issue(c, c->routed, m, K_ANSWER, out);
}

/* The history index of a message popped from the bus (an outside client's
 * message published straight to the topic is added to the history). */
static int bus_msg_index(struct conv *c, const struct bus_msg *bm) {
    for (int i = c->n_msgs - 1; i >= 0; i--)
        if (c->msgs[i].seq == bm->seq) return i;
    return add_msg(c, bm->from, -1, bm->text, 0, -1, -1.0, 0, bm->seq);
}

static int next_broadcast(struct conv *c, struct conv_request *out) {
    for (int i = 0; i < c->sc->n_agents && room(c); i++) {
        int agent = c->sc->agents[i];
        if (busy(c, agent)) continue;
        struct bus_msg bm;
        int got;
        while ((got = bus_pop(c->bus, c->cfg->agents[agent].name, c->id, &bm)) == 1) {
            if (is_participant(c, bm.from)) { /* another agent's reply: in the history */
                bus_msg_free(&bm);
                continue;
            }
            int idx = bus_msg_index(c, &bm);
            bus_msg_free(&bm);
            if (idx < 0) return -1;
            return issue(c, agent, idx, K_ANSWER, out);
        }
        if (got < 0) return -1;
    }
    if (room(c)) answered(c);
    return 0;
}

int conv_next(struct conv *c, struct conv_request *out) {
    if (c->end || !room(c)) return 0;
    switch (c->sc->pattern) {
    case CONV_TWO_AGENT:
    case CONV_ROUND_ROBIN:
        if (c->n_fl) return 0;
        return issue(c, c->sc->agents[c->speaker], c->n_msgs - 1, K_TURN, out);
    case CONV_ROUTER:
        return c->n_fl ? 0 : next_router(c, out);
    case CONV_BROADCAST:
        return next_broadcast(c, out);
    }
    return 0;
}

static int find_flight(const struct conv *c, int req_id) {
    for (int i = 0; i < c->n_fl; i++)
        if (c->fl[i].req_id == req_id) return i;
    return err_set("conversation %d: no request %d in flight", c->id, req_id);
}

static void check_end(struct conv *c, const char *text) {
    if (c->end) return;
    if (c->sc->stop_phrase && strstr(text, c->sc->stop_phrase))
        c->end = CONV_END_STOP_PHRASE;
    else if (c->sc->token_budget && c->tokens >= c->sc->token_budget)
        c->end = CONV_END_TOKEN_BUDGET;
    else if (c->max_turns && c->agent_turns >= c->max_turns)
        c->end = CONV_END_MAX_TURNS;
}

int conv_deliver(struct conv *c, int req_id, const char *text, int n_tokens, int replica,
                 double latency_s) {
    int k = find_flight(c, req_id);
    if (k < 0) return -1;
    struct flight f = c->fl[k];
    const char *name = c->cfg->agents[f.agent].name;
    uint64_t seq = 0;
    int rc = 0;
    free(f.prompt);
    c->fl[k] = c->fl[--c->n_fl];
    if (n_tokens < 0) n_tokens = 0;
    if (c->bus && bus_publish(c->bus, c->sc->topic, name, text, c->id, &seq) < 0) rc = -1;
    if (add_msg(c, name, f.agent, text, n_tokens, replica, latency_s, f.kind == K_ROUTE,
                seq) < 0)
        return -1;
    if (tr_check(c)) rc = -1;
    c->agent_turns++;
    c->tokens += n_tokens;
    check_end(c, text);
    switch (f.kind) {
    case K_TURN:
        c->speaker = (c->speaker + 1) % c->sc->n_agents;
        break;
    case K_ROUTE:
        c->routed = conv_route_pick(c->cfg, c->sc, text, c->msgs[f.answering].m.text);
        break;
    case K_ANSWER:
        if (c->sc->pattern == CONV_ROUTER) {
            memmove(c->inbox, c->inbox + 1, (size_t)(--c->n_inbox) * sizeof *c->inbox);
            c->routed = -1;
        }
        break;
    }
    return rc;
}

int conv_fail(struct conv *c, int req_id, const char *why) {
    int k = find_flight(c, req_id);
    if (k < 0) return -1;
    struct flight f = c->fl[k];
    free(f.prompt);
    c->fl[k] = c->fl[--c->n_fl];
    if (!c->error[0])
        snprintf(c->error, sizeof c->error, "request %d (%s): %s", req_id,
                 c->cfg->agents[f.agent].name, why ? why : "failed");
    c->end = CONV_END_ERROR;
    return 0;
}

int conv_post(struct conv *c, const char *who, const char *text) {
    if (c->end)
        return err_set("conversation %d has ended (%s)", c->id, conv_end_name(c->end));
    return post(c, who ? who : AGENT_USER, text);
}

void conv_close(struct conv *c) {
    if (!c->end) c->end = CONV_END_CLOSED;
}

int conv_done(const struct conv *c) { return c->end != CONV_END_NONE && !c->n_fl; }
enum conv_end conv_end_reason(const struct conv *c) { return c->end; }
const char *conv_error(const struct conv *c) { return c->error; }
int conv_in_flight(const struct conv *c) { return c->n_fl; }
int conv_id(const struct conv *c) { return c->id; }
const struct scenario_def *conv_scenario(const struct conv *c) { return c->sc; }
int conv_n_messages(const struct conv *c) { return c->n_msgs; }
int conv_agent_turns(const struct conv *c) { return c->agent_turns; }
long conv_tokens(const struct conv *c) { return c->tokens; }

const struct conv_message *conv_message(const struct conv *c, int i) {
    return i >= 0 && i < c->n_msgs ? &c->msgs[i].m : NULL;
}
