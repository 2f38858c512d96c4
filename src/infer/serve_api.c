/* src/infer/serve_api.c — the coordinator's side of the HTTP API
 * (docs/api.md): what the coordinator does with the calls the HTTP threads
 * hand it (http_call.h), and what it keeps current for them.
 *
 * Everything here runs on the coordinator's thread, between two turns of
 * its loop, and never blocks: a generation is turned into a prompt (the
 * agent's template, or the plain chat layout for the bare model), encoded,
 * checked against the context and submitted like any other request; its
 * tokens flow back into the call as they arrive. Conversations opened over
 * HTTP are ordinary conversations of the agents file's scenarios, kept
 * open (conv_post feeds them) until closed, ended by their limits, or
 * dropped once finished and more than CONV_KEEP of them are held.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "conv_prompt.h"
#include "err.h"
#include "http_server.h"
#include "metrics.h"
#include "serve_coord.h"

/* Conversations held at most (open, or finished and still readable). */
#define CONV_KEEP 1024

struct serve_api {
    struct http_server *server;
    struct http_inbox inbox;
    struct http_health health;
    struct metrics *metrics;
    struct api_keys keys;
    int have_keys;
    const char **agent_names;
    FILE *log;
    int own_log;
    double published; /* when publish_state last ran */
};

static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }

int serve_api_stop_requested(void) { return stop_signal != 0; }

/* ---- generations ------------------------------------------------------- */

/* The chat as one prompt. For an agent: its template, with its persona
 * (plus any system messages), the earlier messages as {history}, and the
 * last message as the one to answer. For the bare model the same with the
 * default template, the system messages as the persona and "assistant" as
 * the speaker's name. Assistant messages are shown under the name of the
 * one that answers. */
static char *chat_prompt(const struct agent_def *agent, const struct api_gen_request *g) {
    const char *self = agent ? agent->name : "assistant";
    struct conv_buf persona = {0}, history = {0};
    int last = -1;
    for (int i = 0; i < g->n_messages; i++)
        if (strcmp(g->messages[i].role, "system") &&
            strcmp(g->messages[i].role, "developer"))
            last = i;
    int rc = agent && agent->persona ? conv_buf_str(&persona, agent->persona) : 0;
    for (int i = 0; i < g->n_messages && !rc; i++) {
        const struct api_message *m = &g->messages[i];
        if (!strcmp(m->role, "system") || !strcmp(m->role, "developer")) {
            if (persona.len) rc = conv_buf_add(&persona, "\n", 1);
            if (!rc) rc = conv_buf_str(&persona, m->content);
        } else if (i != last) {
            const char *who = !strcmp(m->role, "assistant") ? self
                              : m->name                     ? m->name
                                                            : m->role;
            rc = conv_buf_line(&history, who, m->content);
        }
    }
    char *out = NULL;
    if (!rc) {
        const struct api_message *m = last >= 0 ? &g->messages[last] : NULL;
        const char *speaker = !m                              ? "user"
                              : !strcmp(m->role, "assistant") ? self
                              : m->name                       ? m->name
                                                              : m->role;
        struct conv_prompt_vars v = {.persona = persona.s,
                                     .agent = self,
                                     .history = history.s,
                                     .speaker = speaker,
                                     .message = m ? m->content : "",
                                     .specialists = ""};
        out = conv_template_render(agent ? agent->tmpl : AGENT_DEFAULT_TEMPLATE, &v);
    }
    free(persona.s);
    free(history.s);
    return out;
}

/* The request's settings over the model's defaults: an agent's own, or for
 * the bare model temperature 1 and, for chat, a stop at the end of line
 * (the chat layout puts each message on a line). */
static void request_sampling(const struct agent_def *agent,
                             const struct api_gen_request *g, struct agent_sampling *s) {
    if (agent) {
        *s = agent->sampling;
    } else {
        memset(s, 0, sizeof *s);
        s->p = sampler_defaults();
        s->max_tokens =
            g->kind == API_CHAT ? 128 : 16; /* 16: OpenAI's completions default */
        if (g->kind == API_CHAT) {
            s->n_stop = 1;
            s->stop[0] = "\n";
        }
    }
    if (g->temperature >= 0) s->p.temperature = g->temperature;
    if (g->top_p >= 0) s->p.top_p = g->top_p;
    if (g->top_k >= 0) s->p.top_k = g->top_k;
    if (g->repetition_penalty >= 0) s->p.repetition_penalty = g->repetition_penalty;
    if (g->has_seed) s->p.seed = g->seed;
    if (g->max_tokens > 0) s->max_tokens = g->max_tokens;
    if (g->n_stop) {
        s->n_stop = g->n_stop;
        for (int i = 0; i < g->n_stop; i++)
            s->stop[i] = g->stop[i];
    }
}

static void start_generation(struct coord *c, struct http_call *call) {
    const struct api_gen_request *g = &call->gen;
    int ai = c->have_cfg ? agents_config_agent(&c->cfg, g->model) : -1;
    const struct agent_def *agent = ai >= 0 ? &c->cfg.agents[ai] : NULL;
    char *text = g->kind == API_CHAT ? chat_prompt(agent, g) : strdup(g->prompt);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!text || coord_encode(c, text, &ids, &n)) {
        http_call_fail(call, 500, "server_error", NULL, "%s",
                       text ? err_msg() : "out of memory");
        free(text);
        http_call_release(call);
        return;
    }
    free(text);
    int32_t eot = tokenizer_eot(c->m->tok);
    if (n == 0 && eot >= 0) { /* an empty completion prompt starts from <|endoftext|> */
        free(ids);
        ids = malloc(sizeof *ids);
        if (ids) ids[0] = eot;
        n = ids ? 1 : 0;
    }
    struct agent_sampling s;
    request_sampling(agent, g, &s);
    const int ctx = c->m->cfg.max_seq, np = (int)n;
    const char *what = g->kind == API_CHAT ? "messages" : "prompt";
    if (np == 0) {
        http_call_fail(call, 400, "invalid_request_error", what, "the prompt is empty");
    } else if (np >= ctx) {
        http_call_fail(
            call, 400, "invalid_request_error", what,
            "the prompt is %d tokens; this model's context is %d tokens, which "
            "must hold the prompt and at least one new token",
            np, ctx);
    } else if (np + s.max_tokens > ctx && g->max_tokens > 0) {
        http_call_fail(call, 400, "invalid_request_error", "max_tokens",
                       "the prompt is %d tokens and max_tokens is %d: together more than "
                       "this model's context of %d tokens",
                       np, g->max_tokens, ctx);
    } else {
        if (np + s.max_tokens > ctx) s.max_tokens = ctx - np; /* a default: shrink it */
        http_call_start(call, np);
        coord_submit_call(c, ids, np, &s, call); /* takes our reference */
        free(ids);
        return;
    }
    free(ids);
    http_call_release(call);
}

void serve_api_text(struct coord *c, struct pending *p, const char *text, size_t n,
                    int tokens) {
    (void)c; /* p's own counts and times are kept by the caller */
    http_call_append(p->call, text, n, tokens);
}

void serve_api_finished(struct coord *c, struct pending *p, const char *error,
                        int finish) {
    struct serve_api *api = c->api;
    const char *outcome[] = {"outcome", error ? "error" : "ok", NULL};
    metrics_counter_add(api->metrics, "llmpi_generations_total", outcome, 1);
    if (!error) {
        metrics_counter_add(api->metrics, "llmpi_prompt_tokens_total", NULL, p->n_prompt);
        metrics_counter_add(api->metrics, "llmpi_generated_tokens_total", NULL,
                            p->n_tokens);
        if (p->t_first > 0) {
            metrics_histogram_observe(api->metrics, "llmpi_time_to_first_token_seconds",
                                      NULL, p->t_first - p->t_submit);
            if (p->n_tokens > 1)
                metrics_histogram_observe(api->metrics,
                                          "llmpi_time_per_output_token_seconds", NULL,
                                          (coord_now() - p->t_first) / (p->n_tokens - 1));
        }
    }
    if (!p->call) return;
    if (error) {
        /* no replica up at dispatch: the service, not the request, is at fault */
        int status = p->replica < 0 ? 503 : 500;
        http_call_fail(p->call, status, "server_error", NULL, "%s", error);
    } else {
        enum engine_finish why = (enum engine_finish)finish;
        http_call_finish(p->call,
                         why == ENGINE_FINISH_MAX_TOKENS || why == ENGINE_FINISH_CONTEXT
                             ? "length"
                             : "stop");
    }
    http_call_release(p->call);
    p->call = NULL;
}

/* ---- conversations ------------------------------------------------------ */

/* 1 when the caller's key may use every agent of the scenario. */
static int key_allows_scenario(const struct coord *c, const struct api_key *key,
                               const struct scenario_def *sc) {
    if (!key) return 1;
    for (int i = 0; i < sc->n_agents; i++)
        if (!api_key_allows(key, c->cfg.agents[sc->agents[i]].name)) return 0;
    return 1;
}

static cJSON *conv_json(struct coord *c, struct conv *cv) {
    const struct scenario_def *sc = conv_scenario(cv);
    cJSON *o = cJSON_CreateObject(), *agents = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "id", conv_id(cv));
    cJSON_AddStringToObject(o, "object", "conversation");
    cJSON_AddStringToObject(o, "scenario", sc->name);
    cJSON_AddStringToObject(o, "pattern", conv_pattern_name(sc->pattern));
    for (int i = 0; i < sc->n_agents; i++)
        cJSON_AddItemToArray(agents,
                             cJSON_CreateString(c->cfg.agents[sc->agents[i]].name));
    cJSON_AddItemToObject(o, "agents", agents);
    if (sc->topic) cJSON_AddStringToObject(o, "topic", sc->topic);
    enum conv_end end = conv_end_reason(cv);
    cJSON_AddStringToObject(o, "status", end == CONV_END_NONE ? "open" : "ended");
    if (end != CONV_END_NONE)
        cJSON_AddStringToObject(o, "end_reason", conv_end_name(end));
    if (conv_error(cv)[0]) cJSON_AddStringToObject(o, "error", conv_error(cv));
    cJSON_AddNumberToObject(o, "messages", conv_n_messages(cv));
    return o;
}

static void answer_json(struct http_call *call, int status, cJSON *o) {
    char *body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!body)
        http_call_fail(call, 500, "server_error", NULL, "out of memory");
    else
        http_call_answer(call, status, body);
}

/* Make room for one more conversation: drop the oldest finished one over
 * HTTP when CONV_KEEP are held. 0, or -1 when all are still running. */
static int conv_room(struct coord *c) {
    int held = 0, oldest = -1;
    for (int i = c->n_scenario_convs; i < c->n_convs; i++) {
        if (!c->convs[i]) continue;
        held++;
        if (conv_done(c->convs[i]) &&
            (oldest < 0 || conv_id(c->convs[i]) < conv_id(c->convs[oldest])))
            oldest = i;
    }
    if (held < CONV_KEEP) return 0;
    if (oldest < 0) return -1;
    conv_free(c->convs[oldest]);
    c->convs[oldest] = NULL;
    return 0;
}

/* A new conversation of scenario sc, open for posts; its slot or -1 (the
 * call is answered then). */
static int conv_open(struct coord *c, struct http_call *call,
                     const struct scenario_def *sc, const char *opening, int turns) {
    if (conv_room(c)) {
        http_call_fail(call, 429, "rate_limit_error", NULL,
                       "%d conversations are open (the limit): close some first",
                       CONV_KEEP);
        return -1;
    }
    struct conv_opts o = {.max_turns = turns,
                          .opening = opening,
                          .keep_open = 1,
                          .bus = c->bus,
                          .transcript = c->tr};
    struct conv *cv = conv_create(&c->cfg, sc->name, ++c->next_conv_id, &o);
    if (!cv || coord_add_conv(c, cv)) {
        http_call_fail(call, 500, "server_error", NULL, "%s", err_msg());
        if (cv) conv_free(cv);
        return -1;
    }
    return coord_find_conv(c, conv_id(cv));
}

/* The conversation a call names, checked against the caller's key; -1 when
 * it cannot be used (the call is answered then). */
static int conv_for_call(struct coord *c, struct http_call *call) {
    int slot = coord_find_conv(c, call->conv);
    if (slot < 0) {
        http_call_fail(call, 404, "not_found_error", "id", "no conversation %lld",
                       call->conv);
        return -1;
    }
    if (!key_allows_scenario(c, call->key, conv_scenario(c->convs[slot]))) {
        http_call_fail(call, 403, "permission_error", NULL,
                       "this API key may not use every agent of conversation %lld",
                       call->conv);
        return -1;
    }
    return slot;
}

static void post_message(struct coord *c, struct http_call *call, int slot) {
    struct conv *cv = c->convs[slot];
    if (conv_post(cv, call->post.from, call->post.content)) {
        http_call_fail(call, 409, "invalid_request_error", NULL, "conversation %d: %s",
                       conv_id(cv), err_msg());
        return;
    }
    cJSON *o = conv_json(c, cv);
    cJSON_AddNumberToObject(o, "turn", conv_n_messages(cv) - 1);
    answer_json(call, 200, o);
}

static void read_messages(struct coord *c, struct http_call *call, int slot) {
    struct conv *cv = c->convs[slot];
    cJSON *o = conv_json(c, cv), *data = cJSON_CreateArray();
    int n = 0;
    for (int k = 0; k < conv_n_messages(cv); k++) {
        const struct conv_message *m = conv_message(cv, k);
        if (m->turn <= call->after) continue;
        char *text = coord_shown(c, m->text);
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "turn", m->turn);
        cJSON_AddStringToObject(x, "from", m->who);
        cJSON_AddStringToObject(x, "content", text ? text : "");
        if (m->agent >= 0) {
            cJSON_AddNumberToObject(x, "tokens", m->n_tokens);
            cJSON_AddNumberToObject(x, "replica", m->replica);
        }
        if (m->routing) cJSON_AddBoolToObject(x, "routing", 1);
        cJSON_AddItemToArray(data, x);
        free(text);
        n++;
    }
    cJSON_AddItemToObject(o, "data", data);
    call->n_items = n;
    call->ended = conv_done(cv);
    answer_json(call, 200, o);
}

static void conversation_call(struct coord *c, struct http_call *call) {
    if (!c->have_cfg) {
        http_call_fail(call, 404, "not_found_error", NULL,
                       "this server has no agents file (--agents), so no scenarios");
        return;
    }
    int slot;
    const struct scenario_def *sc = NULL;
    switch (call->kind) {
    case CALL_CONV_CREATE:
        if (!(sc = agents_config_scenario(&c->cfg, call->create.scenario))) {
            http_call_fail(call, 404, "not_found_error", "scenario", "%s", err_msg());
        } else if (!key_allows_scenario(c, call->key, sc)) {
            http_call_fail(call, 403, "permission_error", "scenario",
                           "this API key may not use every agent of scenario '%s'",
                           sc->name);
        } else if ((slot = conv_open(c, call, sc, call->create.opening,
                                     call->create.turns)) >= 0) {
            answer_json(call, 200, conv_json(c, c->convs[slot]));
        }
        return;
    case CALL_TOPIC_POST:
        for (int i = 0; i < c->cfg.n_scenarios && !sc; i++)
            if (c->cfg.scenarios[i].topic &&
                !strcmp(c->cfg.scenarios[i].topic, call->topic))
                sc = &c->cfg.scenarios[i];
        if (!sc) {
            http_call_fail(call, 404, "not_found_error", "topic",
                           "no scenario of the agents file broadcasts on topic '%s'",
                           call->topic);
            return;
        }
        if (!key_allows_scenario(c, call->key, sc)) {
            http_call_fail(call, 403, "permission_error", "topic",
                           "this API key may not use every agent on topic '%s'",
                           call->topic);
            return;
        }
        if (call->post.conversation >= 0) {
            call->conv = call->post.conversation;
            if ((slot = conv_for_call(c, call)) < 0) return;
            if (conv_scenario(c->convs[slot]) != sc) {
                http_call_fail(call, 400, "invalid_request_error", "conversation",
                               "conversation %lld is not on topic '%s'", call->conv,
                               call->topic);
                return;
            }
        } else if ((slot = conv_open(c, call, sc, NULL, 0)) < 0) {
            return;
        }
        post_message(c, call, slot);
        return;
    case CALL_CONV_POST:
        if ((slot = conv_for_call(c, call)) >= 0) post_message(c, call, slot);
        return;
    case CALL_CONV_READ:
        if ((slot = conv_for_call(c, call)) >= 0) read_messages(c, call, slot);
        return;
    case CALL_CONV_CLOSE:
        if ((slot = conv_for_call(c, call)) >= 0) {
            conv_close(c->convs[slot]);
            answer_json(call, 200, conv_json(c, c->convs[slot]));
        }
        return;
    default:
        http_call_fail(call, 500, "server_error", NULL, "unknown call");
    }
}

/* ---- the loop's side ---------------------------------------------------- */

/* Health and the gauges, from the balancer and the replicas' pool reports. */
static void publish_state(struct coord *c) {
    struct serve_api *api = c->api;
    if (!c->leader && c->local.eng) {
        struct engine_stats st;
        engine_get_stats(c->local.eng, &st);
        c->kv_used[0] = st.blocks_total - st.blocks_free;
        c->kv_total[0] = st.blocks_total;
    }
    pthread_mutex_lock(&api->health.mu);
    for (int r = 0; r < c->n_replicas && r < HTTP_MAX_REPLICAS; r++) {
        struct http_replica_state *h = &api->health.r[r];
        h->up = c->bal.r[r].up;
        h->outstanding = c->bal.r[r].outstanding;
        h->kv_used = c->kv_used[r];
        h->kv_total = c->kv_total[r];
    }
    pthread_mutex_unlock(&api->health.mu);
    for (int r = 0; r < c->n_replicas && r < HTTP_MAX_REPLICAS; r++) {
        char id[16];
        snprintf(id, sizeof id, "%d", r);
        const char *l[] = {"replica", id, NULL};
        metrics_gauge_set(api->metrics, "llmpi_replica_up", l, c->bal.r[r].up);
        metrics_gauge_set(api->metrics, "llmpi_replica_outstanding", l,
                          c->bal.r[r].outstanding);
        metrics_gauge_set(api->metrics, "llmpi_kv_blocks_used", l, c->kv_used[r]);
        metrics_gauge_set(api->metrics, "llmpi_kv_blocks_total", l, c->kv_total[r]);
        metrics_gauge_set(api->metrics, "llmpi_kv_pool_usage_ratio", l,
                          c->kv_total[r] ? (double)c->kv_used[r] / c->kv_total[r] : 0);
    }
    int open = 0;
    for (int i = 0; i < c->n_convs; i++)
        open += c->convs[i] && conv_end_reason(c->convs[i]) == CONV_END_NONE;
    metrics_gauge_set(api->metrics, "llmpi_conversations_open", NULL, open);
}

int serve_api_poll(struct coord *c) {
    struct serve_api *api = c->api;
    int any = 0;
    /* clients that left: their generations stop, their KV blocks return */
    for (int i = 0; i < c->n_pend; i++) {
        struct pending *p = &c->pend[i];
        if (p->live && p->call && http_call_cancelled(p->call)) {
            const char *l[] = {"outcome", "cancelled", NULL};
            metrics_counter_add(api->metrics, "llmpi_generations_total", l, 1);
            coord_cancel(c, p);
            any = 1;
        }
    }
    struct http_call *call;
    while ((call = http_inbox_pop(&api->inbox))) {
        any = 1;
        if (http_call_cancelled(call)) {
            http_call_release(call);
        } else if (call->kind == CALL_GENERATE) {
            start_generation(c, call);
        } else {
            conversation_call(c, call);
            http_call_release(call);
        }
    }
    /* the snapshot at most every 20 ms: the loop turns thousands of times a
     * second, and readers need no fresher figures */
    double now = coord_now();
    if (any || now - api->published > 0.02) {
        publish_state(c);
        api->published = now;
    }
    return any;
}

void serve_api_idle(struct coord *c, double seconds) {
    http_inbox_wait(&c->api->inbox, seconds);
}

static const double ttft_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                      0.5,   1,    2.5,   5,    10,  30};
static const double tpot_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,  0.1,    0.25,  0.5,  1};
#define N_OF(a) (int)(sizeof(a) / sizeof *(a))

/* The coordinator's metrics (the HTTP server adds llmpi_http_*). */
static const struct metric_def {
    const char *name;
    enum metric_type type;
    const char *help;
    const double *buckets;
    int n_buckets;
} metric_defs[] = {
    {"llmpi_generations_total", METRIC_COUNTER,
     "Generations finished, by outcome (ok, error, cancelled).", NULL, 0},
    {"llmpi_prompt_tokens_total", METRIC_COUNTER,
     "Prompt tokens of finished generations.", NULL, 0},
    {"llmpi_generated_tokens_total", METRIC_COUNTER,
     "Tokens generated by finished generations.", NULL, 0},
    {"llmpi_time_to_first_token_seconds", METRIC_HISTOGRAM,
     "From dispatch to a replica to the first token.", ttft_buckets, N_OF(ttft_buckets)},
    {"llmpi_time_per_output_token_seconds", METRIC_HISTOGRAM,
     "Mean time per token after the first, per generation.", tpot_buckets,
     N_OF(tpot_buckets)},
    {"llmpi_replica_up", METRIC_GAUGE, "1 while a replica group takes requests.", NULL,
     0},
    {"llmpi_replica_outstanding", METRIC_GAUGE, "Requests in flight on a replica group.",
     NULL, 0},
    {"llmpi_kv_blocks_used", METRIC_GAUGE, "KV cache blocks in use on a replica group.",
     NULL, 0},
    {"llmpi_kv_blocks_total", METRIC_GAUGE, "KV cache blocks of a replica group's pool.",
     NULL, 0},
    {"llmpi_kv_pool_usage_ratio", METRIC_GAUGE,
     "Fraction of a replica group's KV blocks in use.", NULL, 0},
    {"llmpi_conversations_open", METRIC_GAUGE, "Conversations still running.", NULL, 0},
};

static int declare_metrics(struct metrics *m) {
    for (int i = 0; i < N_OF(metric_defs); i++) {
        const struct metric_def *d = &metric_defs[i];
        if (metrics_declare(m, d->name, d->type, d->help, d->buckets, d->n_buckets))
            return -1;
    }
    return 0;
}

int serve_api_start(struct coord *c) {
    const struct serve_args *a = c->a;
    struct serve_api *api = calloc(1, sizeof *api);
    if (!api) return err_set("out of memory");
    if (http_inbox_init(&api->inbox)) {
        free(api);
        return -1;
    }
    pthread_mutex_init(&api->health.mu, NULL);
    c->api = api; /* from here on, serve_api_stop frees whatever was set up */
    api->health.n_replicas =
        c->n_replicas < HTTP_MAX_REPLICAS ? c->n_replicas : HTTP_MAX_REPLICAS;
    if (!(api->metrics = metrics_create()) || declare_metrics(api->metrics)) return -1;
    if (a->api_keys) {
        if (api_keys_load(a->api_keys, &api->keys)) return -1;
        api->have_keys = 1;
    }
    int n_agents = c->have_cfg ? c->cfg.n_agents : 0;
    api->agent_names = calloc((size_t)n_agents + 1, sizeof *api->agent_names);
    if (!api->agent_names) return err_set("out of memory");
    for (int i = 0; i < n_agents; i++) {
        api->agent_names[i] = c->cfg.agents[i].name;
        if (!strcmp(c->cfg.agents[i].name, a->model_name))
            return err_set(
                "--model-name '%s' is also an agent's name in %s: choose another",
                a->model_name, a->agents);
    }
    if (!strcmp(a->access_log, "-")) {
        api->log = stderr;
    } else if (strcmp(a->access_log, "off")) {
        if (!(api->log = fopen(a->access_log, "a")))
            return err_set("--access-log %s: cannot open it", a->access_log);
        api->own_log = 1;
    }
    char host[256];
    struct http_server_config hc = {
        .host = host,
        .max_body = (size_t)(a->http_max_body_mb * 1048576.0),
        .max_queue = a->http_max_queue,
        .timeout_s = a->http_timeout,
        .max_connections = a->http_max_connections,
        .keys = api->have_keys ? &api->keys : NULL,
        .model_name = a->model_name,
        .agents = api->agent_names,
        .n_agents = n_agents,
        .max_tokens = a->http_max_tokens ? a->http_max_tokens : c->m->cfg.max_seq,
        .access_log = api->log,
        .redactor = c->a->redact ? &c->red : NULL,
        .metrics = api->metrics,
        .inbox = &api->inbox,
        .health = &api->health,
    };
    if (http_parse_listen(a->http, host, sizeof host, &hc.port)) return -1;
    publish_state(c);
    if (!(api->server = http_server_start(&hc))) return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(
        stderr,
        "llmpi serve: listening on http://%s%s%s:%d (model %s%s%s; %d replica group%s; "
        "%s; pid %ld)\n",
        strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
        http_server_port(api->server), a->model_name, n_agents ? ", agents from " : "",
        n_agents ? a->agents : "", c->n_replicas, c->n_replicas == 1 ? "" : "s",
        api->have_keys ? "API keys required" : "no API keys", (long)getpid());
    return 0;
}

void serve_api_stop(struct coord *c) {
    struct serve_api *api = c->api;
    if (!api) return;
    if (stop_signal)
        fprintf(stderr, "llmpi serve: %s: stopping the HTTP server\n",
                stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
    /* no new calls; the waiting ones are answered 503 so that their threads
     * leave, then the server stops */
    http_inbox_close(&api->inbox);
    struct http_call *call;
    while ((call = http_inbox_pop(&api->inbox))) {
        http_call_fail(call, 503, "server_error", NULL, "the server is shutting down");
        http_call_release(call);
    }
    for (int i = 0; i < c->n_pend; i++) {
        struct pending *p = &c->pend[i];
        if (p->live && p->call) {
            http_call_fail(p->call, 503, "server_error", NULL,
                           "the server is shutting down");
            coord_cancel(c, p);
        }
    }
    if (api->server) http_server_stop(api->server);
    http_inbox_destroy(&api->inbox);
    pthread_mutex_destroy(&api->health.mu);
    if (api->metrics) metrics_free(api->metrics);
    if (api->have_keys) api_keys_free(&api->keys);
    free(api->agent_names);
    if (api->own_log) fclose(api->log);
    free(api);
    c->api = NULL;
}
