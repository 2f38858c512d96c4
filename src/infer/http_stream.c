/* src/infer/http_stream.c — a generation's text on its way out of the HTTP
 * server (http_stream.h): cleaned for the wire, and streamed as server-sent
 * events in OpenAI's chunk format.
 *
 * A stream is a small state machine driven by libmicrohttpd's content
 * reader, called from the connection's own thread whenever the socket can
 * take more: the role chunk (chat), then the text as the coordinator
 * appends it to the call (waiting on the call's condition variable in
 * between, and watching for the client leaving or the deadline passing),
 * the chunk with finish_reason, the usage chunk when asked, "[DONE]".
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "api_json.h"
#include "http_stream.h"
#include "utf8.h"

double http_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 1 when the client closed its end of the connection. A request waiting
 * for its generation is not reading or writing, so nothing else would
 * notice: peek at the socket (pipelined bytes are left in place). */
int http_client_gone(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLHUP | POLLERR)) return 1;
    char b;
    return recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

char *http_outgoing_text(const struct redactor *red, const char *p, size_t n,
                         size_t *out_n) {
    char *t = strndup(p, n);
    if (!t || utf8_sanitize(&t, &n)) {
        free(t);
        return NULL;
    }
    if (red) {
        char *r = redact(red, t, n, NULL);
        free(t);
        if (!r) return NULL;
        t = r;
        n = strlen(r);
    }
    *out_n = n;
    return t;
}

/* With --redact a stream goes out in whole lines: no pattern of redact.h
 * spans a newline, so masking each line alone masks what masking the whole
 * text would, and a match is never split between two events. The cut: just
 * past the last newline of p[0..n), 0 when there is none. */
static size_t line_cut(const char *p, size_t n) {
    while (n > 0 && p[n - 1] != '\n')
        n--;
    return n;
}

/* A streamed answer: server-sent events as the text grows. */
struct stream {
    struct http_call *call;
    const struct redactor *redactor;
    void (*done)(void *);
    void *done_ctx;
    struct MHD_Connection *conn;
    enum api_kind kind;
    char id[32];
    long long created;
    const char *model;
    size_t sent; /* bytes of call->text already sent */
    int stage;   /* what comes next: see next_event() */
    char *ev;    /* the event being written */
    size_t ev_len, ev_off;
    double deadline;
};
enum { ST_ROLE, ST_TEXT, ST_FINAL, ST_USAGE, ST_DONE_MARK, ST_END };

/* The next event of the stream into st->ev; waits for text. 0, or -1 when
 * the stream must end now (client gone, out of memory). */
static int next_event(struct stream *st) {
    struct http_call *c = st->call;
    struct api_usage u;
    for (;;) {
        switch (st->stage) {
        case ST_ROLE:
            st->stage = ST_TEXT;
            if (st->kind != API_CHAT) continue;
            st->ev = api_chunk_sse(st->kind, st->id, st->created, st->model, "assistant",
                                   "", 0, NULL, NULL, 0, &st->ev_len);
            return st->ev ? 0 : -1;
        case ST_TEXT: {
            pthread_mutex_lock(&c->mu);
            int done = c->state == CALL_DONE, failed = c->failed;
            size_t len = c->len, cut = st->sent, n = 0;
            char *piece = NULL;
            int oom = 0;
            if (len > st->sent) {
                const char *p = c->text + st->sent;
                cut = done ? len
                      : st->redactor
                          ? st->sent + line_cut(p, len - st->sent)
                          : st->sent +
                                utf8_stream_cut((const unsigned char *)p, len - st->sent);
                if (cut > st->sent)
                    oom = !(piece =
                                http_outgoing_text(st->redactor, p, cut - st->sent, &n));
            }
            struct api_error err = c->err;
            pthread_mutex_unlock(&c->mu);
            if (oom) return -1;
            if (piece) {
                st->sent = cut;
                st->ev = api_chunk_sse(st->kind, st->id, st->created, st->model, NULL,
                                       piece, n, NULL, NULL, 0, &st->ev_len);
                free(piece);
                return st->ev ? 0 : -1;
            }
            if (done && failed) { /* OpenAI's clients raise on an "error" event */
                char *j = api_error_json(&err);
                if (!j) return -1;
                size_t n = strlen(j) + 9;
                st->ev = malloc(n);
                if (st->ev) snprintf(st->ev, n, "data: %s\n\n", j);
                free(j);
                st->ev_len = st->ev ? strlen(st->ev) : 0;
                st->stage = ST_END;
                return st->ev ? 0 : -1;
            }
            if (done) {
                st->stage = ST_FINAL;
                continue;
            }
            if (http_client_gone(st->conn)) return -1;
            if (http_now() > st->deadline) {
                http_call_cancel(c);
                http_call_fail(c, 504, "timeout_error", NULL,
                               "the request took longer than the server's timeout");
                continue;
            }
            http_call_wait(c, CALL_RUNNING, len, 0.1);
            continue;
        }
        case ST_FINAL:
            st->stage = st->call->gen.include_usage ? ST_USAGE : ST_DONE_MARK;
            st->ev =
                api_chunk_sse(st->kind, st->id, st->created, st->model, NULL, NULL, 0,
                              c->finish ? c->finish : "stop", NULL, 0, &st->ev_len);
            return st->ev ? 0 : -1;
        case ST_USAGE:
            st->stage = ST_DONE_MARK;
            u = (struct api_usage){c->n_prompt, c->n_tokens};
            st->ev = api_chunk_sse(st->kind, st->id, st->created, st->model, NULL, NULL,
                                   0, NULL, &u, 1, &st->ev_len);
            return st->ev ? 0 : -1;
        case ST_DONE_MARK:
            st->stage = ST_END;
            st->ev = strdup(API_SSE_DONE);
            st->ev_len = strlen(API_SSE_DONE);
            return st->ev ? 0 : -1;
        default:
            return -1;
        }
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    struct stream *st = cls;
    while (!st->ev) {
        if (st->stage == ST_END) return MHD_CONTENT_READER_END_OF_STREAM;
        st->ev_off = 0;
        if (next_event(st)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->ev_len - st->ev_off;
    if (n > max) n = max;
    memcpy(buf, st->ev + st->ev_off, n);
    st->ev_off += n;
    if (st->ev_off == st->ev_len) {
        free(st->ev);
        st->ev = NULL;
    }
    return (ssize_t)n;
}

/* The response is done with (sent, or the connection broke): whatever is
 * still running is cancelled. */
static void stream_free(void *cls) {
    struct stream *st = cls;
    if (st->stage != ST_END) http_call_cancel(st->call);
    st->done(st->done_ctx);
    http_call_release(st->call);
    free(st->ev);
    free(st);
}

struct MHD_Response *http_stream_response(struct http_call *c,
                                          struct MHD_Connection *conn, const char *id,
                                          long long created, double deadline,
                                          const struct redactor *redactor,
                                          void (*done)(void *), void *done_ctx) {
    struct stream *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    *st = (struct stream){.call = c,
                          .redactor = redactor,
                          .done = done,
                          .done_ctx = done_ctx,
                          .conn = conn,
                          .kind = c->gen.kind,
                          .created = created,
                          .model = c->gen.model,
                          .deadline = deadline};
    snprintf(st->id, sizeof st->id, "%s", id);
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (!r) {
        free(st);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    return r;
}
