/* src/infer/http_call.h — work handed from an HTTP thread to the coordinator.
 *
 * The HTTP server runs a thread per connection (libmicrohttpd); the
 * coordinator is one thread that owns the conversations, the tokenizer and
 * every MPI call. They meet here: an HTTP thread fills a call with the
 * parsed request and pushes it into the inbox; the coordinator pops it
 * between two turns of its loop (never blocking on HTTP), does the work, and
 * writes the outcome back into the call, waking the waiting thread:
 *
 *   HTTP thread                          coordinator
 *   call = http_call_new(kind) ...
 *   http_inbox_push(inbox, call) ---->   http_inbox_pop -> submit to a replica
 *   wait on call->cv <----------------   http_call_append (each token's text)
 *   (stream the text as it grows)  <---  http_call_finish / http_call_fail
 *   client gone: call->cancelled = 1 ->  seen on its next turn: cancel on the
 *                                        replica, its KV blocks freed
 *   http_call_release                    http_call_release
 *
 * Both sides hold a reference; the last release frees the call. Everything
 * below `mu` is shared and read or written only under it; the inputs above
 * it are written before the push and read-only afterwards.
 */
#ifndef LLMPI_HTTP_CALL_H
#define LLMPI_HTTP_CALL_H

#include <pthread.h>
#include <stddef.h>

#include "api_json.h"
#include "api_keys.h"

enum http_call_kind {
    CALL_GENERATE,    /* a chat completion or completion */
    CALL_CONV_CREATE, /* open a conversation of a scenario */
    CALL_CONV_POST,   /* a message into a conversation */
    CALL_CONV_READ,   /* a conversation's messages after some turn */
    CALL_CONV_CLOSE,  /* end a conversation */
    CALL_TOPIC_POST,  /* a message to a topic (the broadcast scenario on it) */
};

enum http_call_state {
    CALL_QUEUED,  /* in the inbox, or being checked */
    CALL_RUNNING, /* a generation accepted: text may grow */
    CALL_DONE,    /* finished, failed or answered */
};

struct http_call {
    struct http_call *next; /* inbox link */
    enum http_call_kind kind;
    /* inputs */
    const struct api_key *key; /* the caller's key; NULL when the API is open */
    struct api_gen_request gen;
    struct api_conv_create create;
    struct api_conv_post post;
    long long conv;  /* conversation routes */
    long long after; /* CONV_READ: messages with turn > after */
    char topic[65];
    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum http_call_state state;
    int cancelled; /* set by the HTTP side: stop the work, nobody reads it */
    int failed;    /* DONE with err filled */
    struct api_error err;
    int status;  /* DONE conversation calls: the HTTP status of body */
    char *body;  /* DONE conversation calls: the JSON answer */
    int n_items; /* CONV_READ: messages in the answer */
    int ended;   /* CONV_READ: the conversation has ended */
    char *text;  /* GENERATE: the bytes generated so far (NUL-terminated) */
    size_t len, cap;
    int n_prompt, n_tokens;
    const char *finish; /* GENERATE done: "stop" or "length" */
    int refs;
};

/* A call with two references (the caller's and the coordinator's). NULL
 * when out of memory. */
struct http_call *http_call_new(enum http_call_kind kind);
/* Drop one reference; the last frees the call and its inputs. */
void http_call_release(struct http_call *c);

/* Coordinator side; each takes mu and wakes the waiting thread. */
int http_call_start(struct http_call *c, int n_prompt); /* QUEUED -> RUNNING */
int http_call_append(struct http_call *c, const char *text, size_t n, int tokens);
void http_call_finish(struct http_call *c, const char *finish);
/* Fail with status/type/message (e.g. 400 invalid_request_error). */
void http_call_fail(struct http_call *c, int status, const char *type, const char *param,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Answer a conversation call with a JSON body (taken over). */
void http_call_answer(struct http_call *c, int status, char *body);
int http_call_cancelled(struct http_call *c);

/* HTTP side: wait until the state changes from `seen_state` or the text
 * grows past seen_len, at most `seconds`. */
void http_call_wait(struct http_call *c, enum http_call_state seen_state, size_t seen_len,
                    double seconds);
void http_call_cancel(struct http_call *c);

/* The inbox: a FIFO of calls under one mutex. */
struct http_inbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct http_call *head, *tail;
    int closed;
};
int http_inbox_init(struct http_inbox *q);
void http_inbox_destroy(struct http_inbox *q); /* releases calls still queued */
/* -1 (nothing pushed) once closed: the server is shutting down. */
int http_inbox_push(struct http_inbox *q, struct http_call *c);
/* The oldest call, or NULL (never waits). */
struct http_call *http_inbox_pop(struct http_inbox *q);
/* Sleep until a call arrives or `seconds` pass. */
void http_inbox_wait(struct http_inbox *q, double seconds);
void http_inbox_close(struct http_inbox *q);

#endif
