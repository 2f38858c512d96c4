/* src/infer/conversation.h — conversation patterns as state machines.
 *
 * A conversation runs one scenario of the agents file. It never generates
 * text itself: the coordinator asks it what to generate next (conv_next),
 * runs that on a replica group however it likes (asynchronously, batched,
 * interleaved with other conversations), and hands the text back
 * (conv_deliver). So the same code runs against the real replicas and
 * against a fake generator in the tests.
 *
 *   struct conv *c = conv_create(&cfg, "customer-service", id, &opts);
 *   while (!conv_done(c)) {
 *       struct conv_request rq;
 *       while (conv_next(c, &rq) == 1) submit(rq);  // copy what you keep
 *       ... when request rq.req_id finishes:
 *       conv_deliver(c, rq.req_id, text, n_tokens, replica, latency_s);
 *   }
 *
 * Patterns (docs/agents.md):
 *  - two-agent: agent 1 answers the opening, agent 2 answers agent 1, ...
 *  - round-robin: the agents speak in turn, each answering the last message;
 *  - router: for each user message the router agent's reply (or keyword
 *    routes) picks one specialist, who answers the user's message;
 *  - broadcast: a user message is published to the scenario's topic on the
 *    bus; every participating subscriber pops its copy and answers it (one
 *    request in flight per subscriber, the only pattern with several).
 * Every other pattern has at most one request in flight.
 *
 * Prompts: the agent's template with {persona}, {agent}, {speaker} and
 * {message} (the message it answers), {history} (every other message so
 * far, one "who: text" line each, the router's routing replies left out;
 * broadcast: only the messages before the one answered; the last
 * history_window of them when the scenario sets one) and {specialists}.
 *
 * Termination, checked after every agent message, in this order: the reply
 * contains the stop phrase; the generated tokens reach the token budget;
 * the agent messages reach max turns. No request is issued that would pass
 * max turns, and max_tokens is capped to what is left of the budget. Router
 * and broadcast conversations also end (CONV_END_ANSWERED) once every user
 * message is answered, unless opened with keep_open (then conv_post feeds
 * them and conv_close ends them).
 *
 * "Turn" is a message's index in the conversation: 0 is the opening (or the
 * first message), each later message (agent or user) the next number.
 * Not thread-safe: one thread (the coordinator) drives a conversation.
 */
#ifndef LLMPI_CONVERSATION_H
#define LLMPI_CONVERSATION_H

#include "agents_config.h"
#include "bus.h"
#include "transcript.h"

enum conv_end {
    CONV_END_NONE = 0,     /* still running */
    CONV_END_MAX_TURNS,    /* max_turns agent messages */
    CONV_END_STOP_PHRASE,  /* a reply contained the stop phrase */
    CONV_END_TOKEN_BUDGET, /* the generated tokens reached the budget */
    CONV_END_ANSWERED,     /* router/broadcast: every user message answered */
    CONV_END_CLOSED,       /* conv_close */
    CONV_END_ERROR,        /* conv_fail: a generation failed */
};
const char *conv_end_name(enum conv_end why); /* "max_turns", "stop_phrase", ... */

struct conv_opts {
    int max_turns;       /* > 0 replaces the scenario's (--turns) */
    const char *opening; /* replaces the scenario's opening; NULL keeps it */
    int keep_open;       /* router/broadcast: wait for conv_post when answered */
    struct bus *bus;     /* required for broadcast, unused otherwise */
    struct transcript *transcript; /* a line per message; NULL for none */
};

/* What to generate. Pointers stay valid until that request is delivered or
 * failed, or the conversation is freed. */
struct conv_request {
    int req_id; /* pass back to conv_deliver / conv_fail */
    int conv_id;
    int agent; /* index into cfg->agents */
    const char *agent_name;
    const char *prompt; /* the full prompt text: template, persona, history */
    int turn;           /* index the reply's message will have if delivered next */
    /* The agent's settings, with max_tokens capped by the token budget and
     * p.seed = the agent's seed + req_id (reproducible, different per turn).
     * stop[] points into the config. */
    struct agent_sampling sampling;
};

/* One message of the history. */
struct conv_message {
    int turn;
    const char *who; /* agent name or "user" (or conv_post's name) */
    int agent;       /* index into cfg->agents, -1 for a user */
    const char *text;
    int n_tokens;
    int replica;      /* -1 for a user */
    double latency_s; /* -1 for a user */
    double when;      /* seconds since the epoch */
    int routing;      /* the router's routing reply (not shown in {history}) */
};

struct conv;

/* A conversation of scenario `scenario` with id `id` (used in the bus and
 * the transcript). cfg must outlive it. The opening, if any, becomes turn 0
 * (and goes to the transcript and, for broadcast, the bus) now. NULL +
 * err_set on an unknown scenario, broadcast without a bus, out of memory, or
 * a transcript write error. */
struct conv *conv_create(const struct agents_config *cfg, const char *scenario, int id,
                         const struct conv_opts *opts);
void conv_free(struct conv *c);

/* 1: *out is a generation the conversation wants now (call again: broadcast
 * may want several); 0: nothing to do until a delivery or a post (or the
 * conversation has ended); -1 + err_set on out of memory. */
int conv_next(struct conv *c, struct conv_request *out);

/* The text generated for request req_id: appended to the history, written to
 * the transcript (broadcast: also published to the topic), termination
 * checked. 0, or -1 + err_set on an unknown req_id or a transcript error
 * (the message is kept in the history all the same). */
int conv_deliver(struct conv *c, int req_id, const char *text, int n_tokens, int replica,
                 double latency_s);
/* Request req_id failed (replica lost, ...): the conversation ends with
 * CONV_END_ERROR (other requests in flight may still be delivered). */
int conv_fail(struct conv *c, int req_id, const char *why);

/* A message from outside (who: NULL means "user") for the next turn: the
 * next speaker answers it (two-agent, round-robin), it is routed (router),
 * or published to the topic (broadcast). -1 + err_set once ended. */
int conv_post(struct conv *c, const char *who, const char *text);
/* End now (CONV_END_CLOSED) unless already ended; requests in flight may
 * still be delivered. */
void conv_close(struct conv *c);

/* 1 once ended and nothing is in flight. */
int conv_done(const struct conv *c);
enum conv_end conv_end_reason(const struct conv *c);
/* The failure message given to conv_fail ("" otherwise). */
const char *conv_error(const struct conv *c);
int conv_in_flight(const struct conv *c);

int conv_id(const struct conv *c);
const struct scenario_def *conv_scenario(const struct conv *c);
int conv_n_messages(const struct conv *c);
/* Message i (NULL out of range); valid until the conversation next changes
 * (a deliver, post or create call may move the history). */
const struct conv_message *conv_message(const struct conv *c, int i);
int conv_agent_turns(const struct conv *c); /* agent messages so far */
long conv_tokens(const struct conv *c);     /* generated tokens so far */

#endif
