/* src/infer/serve_coord.h — INTERNAL: the coordinator's state, shared by
 * serve_coord.c (the loop, requests, events, conversations from the agents
 * file) and serve_api.c (the same coordinator's HTTP side: calls from the
 * HTTP threads, conversations opened over HTTP, health and metrics).
 */
#ifndef LLMPI_SERVE_COORD_H
#define LLMPI_SERVE_COORD_H

#include <stdint.h>

#include "agents_config.h"
#include "balancer.h"
#include "bus.h"
#include "conversation.h"
#include "http_call.h"
#include "redact.h"
#include "serve.h"
#include "serve_mpi.h"
#include "transcript.h"

#define COORD_MAX_REPLICAS 64

/* A request in flight. Exactly one origin: a conversation (conv >= 0), a
 * --prompt (prompt >= 0) or an HTTP call (call != NULL). */
struct pending {
    int live;
    int64_t id;
    int conv, conv_req;     /* conversation slot and its req_id; -1: none */
    int prompt;             /* --prompt index; -1: none */
    struct http_call *call; /* the coordinator's reference to it */
    int replica;
    double t_submit, t_first;
    int n_prompt, n_tokens;
    char *text;
    size_t len, cap;
    struct serve_buf wire; /* the packed request, kept for a resend */
};

/* A finished --prompt request. */
struct prompt_result {
    int done, failed, replica, n_tokens;
    char *text, *finish;
};

struct serve_api; /* serve_api.c */

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
    /* conversations by slot; a slot of a finished HTTP conversation may be
     * freed (NULL) and reused, so a pending's slot stays valid */
    struct conv **convs;
    int n_convs, cap_convs;
    int n_scenario_convs; /* slots 0.. hold the --scenario conversations */
    int next_conv_id;
    struct prompt_result *results;
    struct pending *pend;
    int n_pend;
    int64_t next_id;
    struct serve_outbox out; /* requests, cancels and shutdowns in flight */
    long requests_per_replica[COORD_MAX_REPLICAS];
    int kv_used[COORD_MAX_REPLICAS], kv_total[COORD_MAX_REPLICAS]; /* last reported */
    struct serve_api *api; /* --http; NULL without */
};

double coord_now(void);
/* text as it may be shown: redacted with --redact (malloc'd either way). */
char *coord_shown(struct coord *c, const char *text);
/* The prompt's token ids (with --redact-prompts, of the redacted text). */
int coord_encode(struct coord *c, const char *text, int32_t **ids, size_t *n);
/* Send ids[0..n) with sampling s for an HTTP call (takes the coordinator's
 * reference to it). Failures are reported through the call. */
void coord_submit_call(struct coord *c, const int32_t *ids, int n,
                       const struct agent_sampling *s, struct http_call *call);
/* Stop p now (its client is gone): cancelled on its replica, dropped here. */
void coord_cancel(struct coord *c, struct pending *p);
/* Put cv into a free slot (the coordinator owns it then). -1 + err_set. */
int coord_add_conv(struct coord *c, struct conv *cv);
/* The slot of the conversation with this id, or -1. */
int coord_find_conv(struct coord *c, long long id);

/* serve_api.c: the HTTP side of the coordinator. */
int serve_api_start(struct coord *c);
/* Take the HTTP threads' calls, cancel what their clients left, publish
 * health and metrics. 1 when there was something to do. */
int serve_api_poll(struct coord *c);
/* Sleep up to `seconds`, waking early for a call. */
void serve_api_idle(struct coord *c, double seconds);
/* 1 once SIGINT or SIGTERM asked the server to stop. */
int serve_api_stop_requested(void);
void serve_api_stop(struct coord *c);
/* A request finished: metrics (every origin), and the HTTP call's answer. */
void serve_api_finished(struct coord *c, struct pending *p, const char *error,
                        int finish);
/* New text of an HTTP request. */
void serve_api_text(struct coord *c, struct pending *p, const char *text, size_t n,
                    int tokens);

#endif
