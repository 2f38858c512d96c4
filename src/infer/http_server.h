/* src/infer/http_server.h — the HTTP API of `llmpi serve --http`
 * (docs/api.md).
 *
 * libmicrohttpd runs the sockets: one thread listens, and each connection
 * gets a thread of its own, so a request that waits for its generation (or
 * streams it) blocks only its own thread. Those threads never touch the
 * model, the conversations or MPI: they check the request (size, key, body,
 * model, limits), hand it to the coordinator through the inbox
 * (http_call.h), and wait for the answer or stream the text as it grows.
 * What they answer by themselves: /health and /metrics (from the snapshot
 * and the registry the coordinator keeps current), /v1/models, and every
 * refusal that needs no model: 400 bad body or max_tokens over the limit,
 * 401 no or wrong key, 403 key not allowed for that model, 404, 405, 413
 * body too large, 429 queue full (with Retry-After), 503 shutting down.
 * The coordinator answers 400 for a prompt too long for the context (it
 * holds the tokenizer), and 504 follows a request past its timeout.
 *
 * A client that disconnects (or a request past its timeout) marks its call
 * cancelled; the coordinator then cancels the generation on its replica,
 * which frees its KV blocks at once.
 */
#ifndef LLMPI_HTTP_SERVER_H
#define LLMPI_HTTP_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

#include "api_keys.h"
#include "http_call.h"
#include "metrics.h"
#include "redact.h"

#define HTTP_MAX_REPLICAS 64

/* What /health reports, kept current by the coordinator. */
struct http_replica_state {
    int up;
    int outstanding;       /* requests assigned and not finished */
    int kv_used, kv_total; /* KV blocks (0 / 0 until the replica reports) */
};
struct http_health {
    pthread_mutex_t mu;
    int n_replicas;
    struct http_replica_state r[HTTP_MAX_REPLICAS];
};

struct http_server_config {
    const char *host; /* address to bind (numeric IPv4 or IPv6) */
    int port;         /* 0: any free port (http_server_port says which) */
    size_t max_body;  /* request bodies over this get 413 */
    int max_queue;    /* generations queued or running; more get 429 */
    double timeout_s; /* per request; past it 504 (cancelled) */
    int max_connections;
    const struct api_keys *keys; /* NULL: no keys needed */
    const char *model_name;      /* the bare model's name in "model" */
    const char *const *agents;   /* agent names, also valid models */
    int n_agents;
    int max_tokens;   /* the largest max_tokens a request may ask for */
    FILE *access_log; /* a line per request (never a key or a text); NULL: none */
    const struct redactor *redactor; /* --redact: mask generated text going out */
    struct metrics *metrics;         /* llmpi_http_* series are added here */
    struct http_inbox *inbox;
    struct http_health *health;
};

struct http_server;

/* Bind and start serving. NULL + err_set (e.g. the address is in use, or
 * not an address). The config's pointers must outlive the server. */
struct http_server *http_server_start(const struct http_server_config *cfg);
int http_server_port(const struct http_server *s);
/* Stop accepting connections, wait for the connection threads, free. The
 * inbox must be closed and its calls answered first, or waiting threads
 * would only leave at their timeout. */
void http_server_stop(struct http_server *s);

/* Parse "HOST:PORT", ":PORT", "PORT" or "[V6]:PORT" (HOST defaults to
 * 127.0.0.1). host receives the address (cap bytes). 0 / -1 + err_set. */
int http_parse_listen(const char *spec, char *host, size_t cap, int *port);

#endif
