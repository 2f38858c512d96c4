/* src/infer/http_call.c — the hand-off between HTTP threads and the
 * coordinator (http_call.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "http_call.h"

struct http_call *http_call_new(enum http_call_kind kind) {
    struct http_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->kind = kind;
    c->refs = 2;
    c->conv = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return c;
}

void http_call_release(struct http_call *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    int last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (!last) return;
    api_gen_request_free(&c->gen);
    api_conv_create_free(&c->create);
    api_conv_post_free(&c->post);
    free(c->body);
    free(c->text);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

int http_call_start(struct http_call *c, int n_prompt) {
    pthread_mutex_lock(&c->mu);
    c->state = CALL_RUNNING;
    c->n_prompt = n_prompt;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int http_call_append(struct http_call *c, const char *text, size_t n, int tokens) {
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *t = realloc(c->text, cap);
        if (t) {
            c->text = t;
            c->cap = cap;
        } else {
            rc = err_set("out of memory");
        }
    }
    if (!rc) {
        if (n) memcpy(c->text + c->len, text, n);
        c->len += n;
        c->text[c->len] = '\0';
        c->n_tokens += tokens;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void http_call_finish(struct http_call *c, const char *finish) {
    pthread_mutex_lock(&c->mu);
    c->finish = finish;
    c->state = CALL_DONE;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void http_call_fail(struct http_call *c, int status, const char *type, const char *param,
                    const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->mu);
    api_error_set(&c->err, status, type, param ? param : "", "", "%s", msg);
    c->failed = 1;
    c->state = CALL_DONE;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void http_call_answer(struct http_call *c, int status, char *body) {
    pthread_mutex_lock(&c->mu);
    free(c->body);
    c->body = body;
    c->status = status;
    c->state = CALL_DONE;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int http_call_cancelled(struct http_call *c) {
    pthread_mutex_lock(&c->mu);
    int x = c->cancelled;
    pthread_mutex_unlock(&c->mu);
    return x;
}

void http_call_cancel(struct http_call *c) {
    pthread_mutex_lock(&c->mu);
    c->cancelled = 1;
    pthread_mutex_unlock(&c->mu);
}

/* An absolute CLOCK_REALTIME deadline `seconds` from now (condition
 * variables time out against the realtime clock by default). */
static struct timespec deadline_in(double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = ts.tv_nsec + (long long)(seconds * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    return ts;
}

void http_call_wait(struct http_call *c, enum http_call_state seen_state, size_t seen_len,
                    double seconds) {
    struct timespec dl = deadline_in(seconds);
    pthread_mutex_lock(&c->mu);
    while (c->state == seen_state && c->len == seen_len)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT) break;
    pthread_mutex_unlock(&c->mu);
}

int http_inbox_init(struct http_inbox *q) {
    memset(q, 0, sizeof *q);
    if (pthread_mutex_init(&q->mu, NULL)) return err_set("pthread_mutex_init failed");
    if (pthread_cond_init(&q->cv, NULL)) {
        pthread_mutex_destroy(&q->mu);
        return err_set("pthread_cond_init failed");
    }
    return 0;
}

void http_inbox_destroy(struct http_inbox *q) {
    struct http_call *c;
    while ((c = http_inbox_pop(q))) {
        http_call_fail(c, 503, "server_error", NULL, "the server is shutting down");
        http_call_release(c);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

int http_inbox_push(struct http_inbox *q, struct http_call *c) {
    pthread_mutex_lock(&q->mu);
    int closed = q->closed;
    if (!closed) {
        c->next = NULL;
        if (q->tail)
            q->tail->next = c;
        else
            q->head = c;
        q->tail = c;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return closed ? err_set("the server is shutting down") : 0;
}

struct http_call *http_inbox_pop(struct http_inbox *q) {
    pthread_mutex_lock(&q->mu);
    struct http_call *c = q->head;
    if (c) {
        q->head = c->next;
        if (!q->head) q->tail = NULL;
        c->next = NULL;
    }
    pthread_mutex_unlock(&q->mu);
    return c;
}

void http_inbox_wait(struct http_inbox *q, double seconds) {
    struct timespec dl = deadline_in(seconds);
    pthread_mutex_lock(&q->mu);
    if (!q->head) pthread_cond_timedwait(&q->cv, &q->mu, &dl);
    pthread_mutex_unlock(&q->mu);
}

void http_inbox_close(struct http_inbox *q) {
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_mutex_unlock(&q->mu);
}
