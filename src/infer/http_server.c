/* src/infer/http_server.c — the HTTP front of `llmpi serve --http`
 * (http_server.h, docs/api.md): libmicrohttpd, a thread per connection.
 *
 * A request goes through answer() several times: first with its headers
 * (the route, the key and the Content-Length are looked at), then with each
 * piece of its body (kept up to max_body, the rest counted and dropped), and
 * last with nothing more to read, when it is answered. Every answer is
 * queued only then, after the whole body was read, even refusals: a client
 * still writing its body when the server answers and closes would see a
 * broken connection instead of the 413 or 401.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "api_json.h"
#include "err.h"
#include "http_route.h"
#include "http_server.h"
#include "http_stream.h"

struct http_server {
    struct http_server_config cfg;
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu; /* outstanding, next_id, connections */
    int outstanding;    /* generations handed to the coordinator and not done */
    int connections;    /* open connections (each holds a thread) */
    long long next_id;
};

/* One request's state across the calls of answer(). */
struct req {
    struct http_route route;
    char *body;
    size_t len, cap, dropped; /* dropped: bytes past max_body */
    double t0;
    int status;
    const struct api_key *key;
    int auth_error; /* 401 to answer */
    int crowded;    /* more connections than --http-max-connections: 429 */
    char addr[64];
    char method[8];
};

/* ---- answering -------------------------------------------------------- */

static enum MHD_Result send_body(struct MHD_Connection *conn, struct req *rq, int status,
                                 const char *type, char *body, const char *retry_after,
                                 const char *allow) {
    if (!body) { /* out of memory building it */
        static const char oom[] =
            "{\"error\":{\"message\":\"out of memory\","
            "\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        body = strdup(oom);
        status = 500;
        if (!body) return MHD_NO;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    if (allow) MHD_add_response_header(r, "Allow", allow);
    rq->status = status;
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, struct req *rq, int status,
                                 char *body) {
    return send_body(conn, rq, status, "application/json", body, NULL, NULL);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, struct req *rq,
                                  const struct api_error *e) {
    const char *retry = e->status == 429 || e->status == 503 ? "1" : NULL;
    return send_body(conn, rq, e->status, "application/json", api_error_json(e), retry,
                     NULL);
}

/* A refusal in one line: status, OpenAI error type, param ("" none), code. */
static enum MHD_Result refuse(struct MHD_Connection *conn, struct req *rq, int status,
                              const char *type, const char *param, const char *code,
                              const char *msg) {
    struct api_error e;
    api_error_set(&e, status, type, param, code, "%s", msg);
    return send_error(conn, rq, &e);
}

/* ---- generations -------------------------------------------------------- */

static void outstanding_add(struct http_server *s, int d) {
    pthread_mutex_lock(&s->mu);
    s->outstanding += d;
    pthread_mutex_unlock(&s->mu);
}

static int model_known(const struct http_server_config *cfg, const char *model) {
    if (!strcmp(model, cfg->model_name)) return 1;
    for (int i = 0; i < cfg->n_agents; i++)
        if (!strcmp(model, cfg->agents[i])) return 1;
    return 0;
}

/* Wait for a generation or conversation call to be done; 0 when it is,
 * -1 when the client left or the timeout passed (the call is cancelled). */
static int wait_done(struct MHD_Connection *conn, struct http_call *c, double deadline,
                     struct api_error *e) {
    for (;;) {
        pthread_mutex_lock(&c->mu);
        enum http_call_state st = c->state;
        size_t len = c->len;
        pthread_mutex_unlock(&c->mu);
        if (st == CALL_DONE) return 0;
        if (http_client_gone(conn)) {
            http_call_cancel(c);
            return api_error_set(e, 499, "invalid_request_error", "", "",
                                 "the client closed the connection");
        }
        if (http_now() > deadline) {
            http_call_cancel(c);
            return api_error_set(e, 504, "timeout_error", "", "timeout",
                                 "the request took longer than the server's timeout");
        }
        http_call_wait(c, st, len, 0.1);
    }
}

/* A stream is done with (sent, or the connection broke): its place in the
 * queue is free. */
static void stream_done(void *ctx) { outstanding_add(ctx, -1); }

/* Answer with a stream of server-sent events (http_stream.c), taking over
 * our reference to c and its place in the queue. */
static enum MHD_Result send_stream(struct http_server *s, struct MHD_Connection *conn,
                                   struct req *rq, struct http_call *c, const char *cid,
                                   long long created, double deadline) {
    struct MHD_Response *r = http_stream_response(c, conn, cid, created, deadline,
                                                  s->cfg.redactor, stream_done, s);
    if (!r) {
        http_call_cancel(c);
        http_call_release(c);
        outstanding_add(s, -1);
        return refuse(conn, rq, 500, "server_error", "", "", "out of memory");
    }
    rq->status = 200;
    enum MHD_Result res = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r); /* MHD holds it until sent; then stream_done */
    return res;
}

/* The refusals of a parsed generation request that need no model: an
 * unknown model (404), a key not allowed for it (403), max_tokens over the
 * server's limit (400). 0 when it may go on, else -1 with e filled. */
static int gen_refusal(const struct http_server_config *cfg, const struct api_key *key,
                       const struct api_gen_request *g, struct api_error *e) {
    if (!model_known(cfg, g->model))
        return api_error_set(
            e, 404, "invalid_request_error", "model", "model_not_found",
            "The model '%.200s' does not exist (GET /v1/models lists them)", g->model);
    if (key && !api_key_allows(key, g->model))
        return api_error_set(e, 403, "permission_error", "model", "",
                             "this API key may not use the model '%.200s'", g->model);
    if (g->max_tokens > cfg->max_tokens)
        return api_error_set(
            e, 400, "invalid_request_error", "max_tokens", "",
            "max_tokens is %d but this server allows at most %d tokens per "
            "request",
            g->max_tokens, cfg->max_tokens);
    return 0;
}

static enum MHD_Result generate(struct http_server *s, struct MHD_Connection *conn,
                                struct req *rq, enum api_kind kind) {
    const struct http_server_config *cfg = &s->cfg;
    struct api_error e;
    struct http_call *c = http_call_new(CALL_GENERATE);
    if (!c) return refuse(conn, rq, 500, "server_error", "", "", "out of memory");
    c->refs = 1; /* only ours until it is pushed */
    if (api_parse_gen_request(rq->body, rq->len, kind, &c->gen, &e) ||
        gen_refusal(cfg, rq->key, &c->gen, &e)) {
        http_call_release(c);
        return send_error(conn, rq, &e);
    }
    enum MHD_Result res;
    char msg[512];
    pthread_mutex_lock(&s->mu);
    int full = s->outstanding >= cfg->max_queue;
    if (!full) s->outstanding++;
    long long id = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    if (full) {
        http_call_release(c);
        snprintf(
            msg, sizeof msg,
            "the server is busy: %d requests are queued or running (the limit); retry "
            "later",
            cfg->max_queue);
        return refuse(conn, rq, 429, "rate_limit_error", "", "rate_limit_exceeded", msg);
    }
    c->key = rq->key;
    c->refs = 2;
    if (http_inbox_push(cfg->inbox, c)) {
        c->refs = 1;
        http_call_release(c);
        outstanding_add(s, -1);
        return refuse(conn, rq, 503, "server_error", "", "",
                      "the server is shutting down");
    }
    const double deadline = rq->t0 + cfg->timeout_s;
    const long long created = (long long)time(NULL);
    char cid[32];
    snprintf(cid, sizeof cid, "%s-%lld", kind == API_CHAT ? "chatcmpl" : "cmpl", id);

    /* Whether streamed or not, wait until the coordinator accepted it: a
     * prompt too long for the context is still a 400. */
    for (;;) {
        pthread_mutex_lock(&c->mu);
        enum http_call_state st = c->state;
        pthread_mutex_unlock(&c->mu);
        if (st != CALL_QUEUED || !c->gen.stream) break;
        if (http_client_gone(conn) || http_now() > deadline) {
            http_call_cancel(c);
            break;
        }
        http_call_wait(c, CALL_QUEUED, 0, 0.1);
    }
    pthread_mutex_lock(&c->mu);
    int go_stream = c->gen.stream && !c->cancelled && !c->failed;
    pthread_mutex_unlock(&c->mu);
    if (go_stream) return send_stream(s, conn, rq, c, cid, created, deadline);
    if (wait_done(conn, c, deadline, &e)) {
        res = send_error(conn, rq, &e);
    } else if (c->failed) {
        res = send_error(conn, rq, &c->err);
    } else {
        size_t n = 0;
        pthread_mutex_lock(&c->mu);
        char *text =
            http_outgoing_text(s->cfg.redactor, c->text ? c->text : "", c->len, &n);
        pthread_mutex_unlock(&c->mu);
        struct api_usage u = {c->n_prompt, c->n_tokens};
        char *body = NULL;
        if (text)
            body = api_response_json(kind, cid, created, c->gen.model, text, n,
                                     c->finish ? c->finish : "stop", &u);
        free(text);
        res = send_json(conn, rq, 200, body);
    }
    outstanding_add(s, -1);
    http_call_release(c);
    return res;
}

/* ---- conversations ------------------------------------------------------ */

static enum MHD_Result conversation(struct http_server *s, struct MHD_Connection *conn,
                                    struct req *rq) {
    const struct http_server_config *cfg = &s->cfg;
    struct api_error e;
    enum http_call_kind kind;
    switch (rq->route.id) {
    case ROUTE_CONV_CREATE:
        kind = CALL_CONV_CREATE;
        break;
    case ROUTE_CONV_POST:
        kind = CALL_CONV_POST;
        break;
    case ROUTE_TOPIC_POST:
        kind = CALL_TOPIC_POST;
        break;
    case ROUTE_CONV_DELETE:
        kind = CALL_CONV_CLOSE;
        break;
    default:
        kind = CALL_CONV_READ;
        break;
    }
    long long after = -1, wait = 0;
    if (kind == CALL_CONV_READ) {
        const char *a = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after");
        const char *w = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "wait");
        if (http_param_int(a, -1, 1LL << 40, &after) < 0)
            return refuse(conn, rq, 400, "invalid_request_error", "after", "",
                          "after must be a turn number (an integer >= -1)");
        if (http_param_int(w, 0, 60, &wait) < 0)
            return refuse(conn, rq, 400, "invalid_request_error", "wait", "",
                          "wait must be a whole number of seconds from 0 to 60");
    }
    const double deadline = http_now() + (double)wait;
    for (;;) {
        struct http_call *c = http_call_new(kind);
        if (!c) return refuse(conn, rq, 500, "server_error", "", "", "out of memory");
        c->refs = 1;
        c->key = rq->key;
        c->conv = rq->route.conv;
        c->after = after;
        snprintf(c->topic, sizeof c->topic, "%s", rq->route.topic);
        int bad = kind == CALL_CONV_CREATE
                      ? api_parse_conv_create(rq->body, rq->len, &c->create, &e)
                  : kind == CALL_CONV_POST || kind == CALL_TOPIC_POST
                      ? api_parse_conv_post(rq->body, rq->len, &c->post, &e)
                      : 0;
        if (bad) {
            http_call_release(c);
            return send_error(conn, rq, &e);
        }
        c->refs = 2;
        if (http_inbox_push(cfg->inbox, c)) {
            c->refs = 1;
            http_call_release(c);
            return refuse(conn, rq, 503, "server_error", "", "",
                          "the server is shutting down");
        }
        enum MHD_Result res;
        if (wait_done(conn, c, rq->t0 + cfg->timeout_s, &e)) {
            res = send_error(conn, rq, &e);
        } else if (c->failed) {
            res = send_error(conn, rq, &c->err);
        } else if (kind == CALL_CONV_READ && c->n_items == 0 && !c->ended &&
                   http_now() < deadline) {
            /* long poll: nothing new yet; ask again shortly */
            http_call_release(c);
            nanosleep(&(struct timespec){0, 50000000}, NULL);
            if (http_client_gone(conn)) return MHD_NO;
            continue;
        } else {
            char *body = c->body;
            c->body = NULL;
            res = send_json(conn, rq, c->status ? c->status : 200, body);
        }
        http_call_release(c);
        return res;
    }
}

/* ---- the other endpoints ----------------------------------------------- */

static enum MHD_Result models(struct http_server *s, struct MHD_Connection *conn,
                              struct req *rq) {
    const struct http_server_config *cfg = &s->cfg;
    const char **names = malloc((size_t)(cfg->n_agents + 1) * sizeof *names);
    if (!names) return refuse(conn, rq, 500, "server_error", "", "", "out of memory");
    int n = 0;
    if (!rq->key || api_key_allows(rq->key, cfg->model_name))
        names[n++] = cfg->model_name;
    for (int i = 0; i < cfg->n_agents; i++)
        if (!rq->key || api_key_allows(rq->key, cfg->agents[i]))
            names[n++] = cfg->agents[i];
    char *body = api_models_json(names, n, (long long)time(NULL));
    free(names);
    return send_json(conn, rq, 200, body);
}

/* Liveness and readiness: 200 while at least one replica group is up. */
static enum MHD_Result health(struct http_server *s, struct MHD_Connection *conn,
                              struct req *rq) {
    struct http_health *h = s->cfg.health;
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    int up = 0;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->n_replicas; i++) {
        const struct http_replica_state *r = &h->r[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "replica", i);
        cJSON_AddBoolToObject(x, "ready", r->up);
        cJSON_AddNumberToObject(x, "outstanding", r->outstanding);
        cJSON_AddNumberToObject(x, "kv_blocks_used", r->kv_used);
        cJSON_AddNumberToObject(x, "kv_blocks_total", r->kv_total);
        cJSON_AddItemToArray(arr, x);
        up += r->up;
    }
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_lock(&s->mu);
    int queued = s->outstanding;
    pthread_mutex_unlock(&s->mu);
    cJSON_AddStringToObject(o, "status", up ? "ok" : "unavailable");
    cJSON_AddNumberToObject(o, "replicas_ready", up);
    cJSON_AddNumberToObject(o, "queue_depth", queued);
    cJSON_AddItemToObject(o, "replicas", arr);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return send_json(conn, rq, up ? 200 : 503, body);
}

static enum MHD_Result metrics_page(struct http_server *s, struct MHD_Connection *conn,
                                    struct req *rq) {
    pthread_mutex_lock(&s->mu);
    double q = s->outstanding;
    pthread_mutex_unlock(&s->mu);
    metrics_gauge_set(s->cfg.metrics, "llmpi_http_queue_depth", NULL, q);
    char *text = metrics_render(s->cfg.metrics, NULL);
    return send_body(conn, rq, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                     NULL, NULL);
}

/* ---- the request cycle ------------------------------------------------- */

static int needs_key(enum http_route_id id) {
    return id != ROUTE_HEALTH && id != ROUTE_METRICS && id != ROUTE_NOT_FOUND &&
           id != ROUTE_BAD_METHOD;
}

static enum MHD_Result dispatch(struct http_server *s, struct MHD_Connection *conn,
                                struct req *rq) {
    if (rq->dropped) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body is %zu bytes; the limit is %zu",
                 rq->len + rq->dropped, s->cfg.max_body);
        return refuse(conn, rq, 413, "invalid_request_error", "", "request_too_large",
                      msg);
    }
    if (rq->crowded) {
        char msg[128];
        snprintf(
            msg, sizeof msg,
            "the server is busy: more than %d connections are open (the limit); retry "
            "later",
            s->cfg.max_connections);
        return refuse(conn, rq, 429, "rate_limit_error", "", "rate_limit_exceeded", msg);
    }
    if (rq->auth_error)
        return refuse(conn, rq, 401, "authentication_error", "", "invalid_api_key",
                      rq->auth_error == 1
                          ? "no API key: send it as 'Authorization: Bearer KEY'"
                          : "the API key is not valid");
    switch (rq->route.id) {
    case ROUTE_HEALTH:
        return health(s, conn, rq);
    case ROUTE_METRICS:
        return metrics_page(s, conn, rq);
    case ROUTE_MODELS:
        return models(s, conn, rq);
    case ROUTE_CHAT:
        return generate(s, conn, rq, API_CHAT);
    case ROUTE_COMPLETIONS:
        return generate(s, conn, rq, API_COMPLETION);
    case ROUTE_BAD_METHOD: {
        char msg[96];
        snprintf(msg, sizeof msg, "this endpoint takes %s", rq->route.allow);
        struct api_error e;
        api_error_set(&e, 405, "invalid_request_error", "", "method_not_allowed", "%s",
                      msg);
        return send_body(conn, rq, 405, "application/json", api_error_json(&e), NULL,
                         rq->route.allow);
    }
    case ROUTE_NOT_FOUND:
        return refuse(conn, rq, 404, "not_found_error", "", "",
                      "no such endpoint (docs/api.md lists them)");
    default:
        return conversation(s, conn, rq);
    }
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version,
                              const char *upload_data, size_t *upload_data_size,
                              void **con_cls) {
    (void)version;
    struct http_server *s = cls;
    struct req *rq = *con_cls;
    if (!rq) { /* the headers */
        if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
        *con_cls = rq;
        rq->t0 = http_now();
        snprintf(rq->method, sizeof rq->method, "%s", method);
        http_route_match(method, url, &rq->route);
        pthread_mutex_lock(&s->mu);
        rq->crowded = s->connections > s->cfg.max_connections && needs_key(rq->route.id);
        pthread_mutex_unlock(&s->mu);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            const void *a =
                sa->sa_family == AF_INET6
                    ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                    : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
            inet_ntop(sa->sa_family, a, rq->addr, sizeof rq->addr);
        }
        if (s->cfg.keys && needs_key(rq->route.id)) {
            const char *h =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
            const char *tok;
            size_t n;
            if (!h || api_bearer_token(h, &tok, &n))
                rq->auth_error = 1;
            else if (!(rq->key = api_keys_find(s->cfg.keys, tok, n)))
                rq->auth_error = 2;
        }
        return MHD_YES;
    }
    if (*upload_data_size) { /* a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->dropped || rq->len + n > s->cfg.max_body) {
            rq->dropped += n;
            return MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            while (cap < rq->len + n + 1)
                cap *= 2;
            char *b = realloc(rq->body, cap);
            if (!b) return MHD_NO;
            rq->body = b;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        rq->body[rq->len] = '\0';
        return MHD_YES;
    }
    return dispatch(s, conn, rq);
}

/* The request is over: count it, log it, free its state. */
static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    struct http_server *s = cls;
    struct req *rq = *con_cls;
    if (!rq) return;
    char code[8];
    snprintf(code, sizeof code, "%d", rq->status ? rq->status : 499);
    const char *labels[] = {"endpoint", rq->route.name ? rq->route.name : "other", "code",
                            code, NULL};
    metrics_counter_add(s->cfg.metrics, "llmpi_http_requests_total", labels, 1);
    if (s->cfg.access_log) {
        /* the route's pattern, not the raw URL: no query strings, nothing a
         * client typed into a path ends up in the log */
        fprintf(s->cfg.access_log, "llmpi serve: http %s \"%s %s\" %s %.3fs key=%s\n",
                rq->addr[0] ? rq->addr : "-", rq->method,
                rq->route.name ? rq->route.name : "other", code, http_now() - rq->t0,
                rq->key ? rq->key->name : "-");
        fflush(s->cfg.access_log);
    }
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

/* Count connections: past --http-max-connections a request is answered 429
 * at once (health and metrics excepted) instead of taking a slot in the
 * queue; libmicrohttpd's own, higher limit (http_server_start) is where
 * connections are closed unanswered. */
static void connection_event(void *cls, struct MHD_Connection *conn,
                             void **socket_context,
                             enum MHD_ConnectionNotificationCode what) {
    (void)conn;
    (void)socket_context;
    struct http_server *s = cls;
    pthread_mutex_lock(&s->mu);
    s->connections += what == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1;
    pthread_mutex_unlock(&s->mu);
}

int http_parse_listen(const char *spec, char *host, size_t cap, int *port) {
    const char *colon = strrchr(spec, ':');
    const char *p = colon ? colon + 1 : spec;
    size_t hn = colon ? (size_t)(colon - spec) : 0;
    const char *h = spec;
    if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']') { /* [v6]:port */
        h++;
        hn -= 2;
    }
    char *end;
    long v = strtol(p, &end, 10);
    if (!*p || *end || v < 0 || v > 65535)
        return err_set("--http '%s': expected HOST:PORT, :PORT or PORT (a port from 0 to "
                       "65535)",
                       spec);
    if (hn == 0) {
        h = "127.0.0.1";
        hn = strlen(h);
    }
    if (hn + 1 > cap) return err_set("--http '%s': the host is too long", spec);
    memcpy(host, h, hn);
    host[hn] = '\0';
    *port = (int)v;
    return 0;
}

struct http_server *http_server_start(const struct http_server_config *cfg) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC;
    if (inet_pton(AF_INET, cfg->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)cfg->port);
    } else if (inet_pton(AF_INET6, cfg->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        return err_set("--http: '%s' is not a numeric IPv4 or IPv6 address", cfg->host),
               NULL;
    }
    struct http_server *s = calloc(1, sizeof *s);
    if (!s) return err_set("out of memory"), NULL;
    s->cfg = *cfg;
    pthread_mutex_init(&s->mu, NULL);
    if (metrics_declare(cfg->metrics, "llmpi_http_requests_total", METRIC_COUNTER,
                        "HTTP requests answered, by endpoint and status code.", NULL,
                        0) ||
        metrics_declare(cfg->metrics, "llmpi_http_queue_depth", METRIC_GAUGE,
                        "Generations received over HTTP and not finished (queued or "
                        "running).",
                        NULL, 0)) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    /* room above the soft limit for the threads that only answer 429 */
    const unsigned hard_limit =
        (unsigned)cfg->max_connections +
        (unsigned)(cfg->max_connections > 256 ? cfg->max_connections : 256);
    errno = 0;
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, answer, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_NOTIFY_CONNECTION,
        connection_event, s, MHD_OPTION_CONNECTION_LIMIT, hard_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->timeout_s + 30), MHD_OPTION_END);
    if (!s->d) {
        int en = errno;
        pthread_mutex_destroy(&s->mu);
        free(s);
        return err_set("--http %s:%d: cannot listen there%s%s", cfg->host, cfg->port,
                       en ? ": " : "", en ? strerror(en) : ""),
               NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    return s;
}

int http_server_port(const struct http_server *s) { return s->port; }

void http_server_stop(struct http_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
