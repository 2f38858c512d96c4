/* tests/fuzz/fuzz_api_json.c — libFuzzer harness for the HTTP API's JSON
 * (src/infer/api_json.c) and routing (src/infer/http_route.c).
 *
 * Each input is parsed as a chat body, a completion body and both
 * conversation bodies. A parser must either succeed with every field in
 * its documented range (strings valid UTF-8 without NUL) or fail with a
 * 400 (500 only for out of memory) whose message is non-empty and whose
 * error body parses back. A request that parses is rendered again as a
 * response, a stream chunk and a models list, and each must parse back
 * with cJSON and give back the very strings that went in (model, text,
 * stop strings). The input split at its first NUL or newline is also a
 * method and a path for http_route_match, and both halves are query
 * values for http_param_int, checked against strtoll.
 *
 * The input is copied to the end of a buffer followed by an inaccessible
 * page, so that a read past the body's length faults even inside cJSON,
 * which comes from the system and is not instrumented by ASan.
 * Build and run: tests/fuzz/run.sh (see README.md there).
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api_json.h"
#include "http_route.h"

#define CHECK(c)                                                                         \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);        \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* ---- the guarded buffer ---------------------------------------------------- */

#define MAX_INPUT (1 << 20)
static char *guard_end; /* the first byte of the PROT_NONE page */

static const char *guarded_copy(const uint8_t *data, size_t size) {
    if (!guard_end) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t span = (MAX_INPUT + page - 1) / page * page;
        char *m = mmap(NULL, span + page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(m != MAP_FAILED);
        CHECK(mprotect(m + span, page, PROT_NONE) == 0);
        guard_end = m + span;
    }
    char *p = guard_end - size;
    if (size) memcpy(p, data, size);
    return p;
}

/* ---- checks ------------------------------------------------------------------- */

static int utf8_ok(const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s;
        size_t len = c < 0x80                 ? 1
                     : c >= 0xC2 && c <= 0xDF ? 2
                     : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4
                                              : 0;
        if (!len) return 0;
        unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        unsigned hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        if (len > 1 && (s[1] < lo || s[1] > hi)) return 0;
        for (size_t k = 2; k < len; k++)
            if ((s[k] & 0xC0) != 0x80) return 0;
        s += len;
    }
    return 1;
}

static void check_str(const char *s, int may_be_null, int nonempty) {
    if (!s) {
        CHECK(may_be_null);
        return;
    }
    CHECK(utf8_ok(s));
    if (nonempty) CHECK(*s);
}

static int name_ok(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n < 1 || n > max) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
            return 0;
    return 1;
}

static const cJSON *field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    CHECK(v);
    return v;
}

static void expect_str(const cJSON *o, const char *k, const char *want) {
    const cJSON *v = field(o, k);
    CHECK(cJSON_IsString(v));
    CHECK(!strcmp(v->valuestring, want));
}

/* An error: 400 (or 500: out of memory), a message, and a body that
 * parses back to the same message, type and param. */
static void check_error(const struct api_error *e) {
    CHECK(e->status == 400 || e->status == 500);
    CHECK(e->message[0]);
    CHECK(utf8_ok(e->message) && utf8_ok(e->param) && utf8_ok(e->type) &&
          utf8_ok(e->code));
    char *s = api_error_json(e);
    CHECK(s);
    cJSON *j = cJSON_Parse(s);
    CHECK(j);
    const cJSON *o = field(j, "error");
    expect_str(o, "message", e->message);
    expect_str(o, "type", e->type);
    if (e->param[0])
        expect_str(o, "param", e->param);
    else
        CHECK(cJSON_IsNull(field(o, "param")));
    cJSON_Delete(j);
    free(s);
}

/* Render text (and model) in every shape of `kind`; each must parse back. */
static void render(enum api_kind kind, const char *model, const char *text) {
    struct api_usage u = {.prompt_tokens = 3, .completion_tokens = 4};
    char *s = api_response_json(kind, "chatcmpl-1", 1700000000, model, text, strlen(text),
                                "stop", &u);
    CHECK(s);
    cJSON *j = cJSON_Parse(s);
    CHECK(j);
    expect_str(j, "model", model);
    const cJSON *c0 = cJSON_GetArrayItem(field(j, "choices"), 0);
    CHECK(c0);
    if (kind == API_CHAT)
        expect_str(field(c0, "message"), "content", text);
    else
        expect_str(c0, "text", text);
    cJSON_Delete(j);
    free(s);

    size_t n = 0;
    s = api_chunk_sse(kind, "chatcmpl-1", 1700000000, model, "assistant", text,
                      strlen(text), NULL, NULL, 0, &n);
    CHECK(s && n == strlen(s) && n > 8 && !memcmp(s, "data: ", 6));
    CHECK(!memcmp(s + n - 2, "\n\n", 2) && !memchr(s, '\n', n - 2));
    j = cJSON_ParseWithLength(s + 6, n - 8);
    CHECK(j);
    expect_str(j, "model", model);
    c0 = cJSON_GetArrayItem(field(j, "choices"), 0);
    CHECK(c0);
    if (kind == API_CHAT)
        expect_str(field(c0, "delta"), "content", text);
    else
        expect_str(c0, "text", text);
    cJSON_Delete(j);
    free(s);

    s = api_chunk_sse(kind, "chatcmpl-1", 1700000000, model, NULL, NULL, 0, NULL, &u, 1,
                      &n);
    CHECK(s);
    j = cJSON_ParseWithLength(s + 6, n - 8);
    CHECK(j && cJSON_GetArraySize(field(j, "choices")) == 0);
    cJSON_Delete(j);
    free(s);
}

static void check_gen(const struct api_gen_request *r, enum api_kind kind) {
    CHECK(r->kind == kind);
    check_str(r->model, 0, 1);
    if (kind == API_CHAT) {
        CHECK(r->n_messages >= 1 && r->messages && !r->prompt);
        for (int i = 0; i < r->n_messages; i++) {
            const struct api_message *m = &r->messages[i];
            CHECK(m->role);
            CHECK(!strcmp(m->role, "system") || !strcmp(m->role, "user") ||
                  !strcmp(m->role, "assistant") || !strcmp(m->role, "developer") ||
                  !strcmp(m->role, "tool"));
            check_str(m->content, 0, 0);
            check_str(m->name, 1, 0);
        }
    } else {
        CHECK(r->n_messages == 0 && !r->messages);
        check_str(r->prompt, 0, 0);
    }
    CHECK(r->max_tokens == -1 || (r->max_tokens >= 1 && r->max_tokens <= (1 << 30)));
    CHECK(r->temperature == -1 || (r->temperature >= 0 && r->temperature <= 2));
    CHECK(r->top_p == -1 || (r->top_p > 0 && r->top_p <= 1));
    CHECK(r->top_k >= -1 && r->top_k <= (1 << 20));
    CHECK(r->repetition_penalty == -1 ||
          (r->repetition_penalty > 0 && r->repetition_penalty <= 100));
    CHECK(r->has_seed == 0 || r->has_seed == 1);
    CHECK(r->seed <= (1ULL << 53));
    CHECK(r->has_seed || r->seed == 0);
    CHECK(r->n_stop >= 0 && r->n_stop <= API_MAX_STOP);
    for (int i = 0; i < r->n_stop; i++)
        check_str(r->stop[i], 0, 1);
    CHECK(r->stream == 0 || r->stream == 1);
    CHECK(r->include_usage == 0 || r->include_usage == 1);
    check_str(r->user, 1, 0);

    const char *text =
        kind == API_CHAT ? r->messages[r->n_messages - 1].content : r->prompt;
    render(kind, r->model, text);
    const char *names[2 + API_MAX_STOP] = {r->model, r->user};
    int n = 2;
    for (int i = 0; i < r->n_stop; i++)
        names[n++] = r->stop[i];
    char *s = api_models_json(names, n, 1);
    CHECK(s);
    cJSON *j = cJSON_Parse(s);
    CHECK(j);
    const cJSON *data = field(j, "data");
    CHECK(cJSON_GetArraySize(data) == n - (r->user == NULL));
    expect_str(cJSON_GetArrayItem(data, 0), "id", r->model);
    cJSON_Delete(j);
    free(s);
}

/* http_param_int against strtoll on the strings it must accept. */
static void check_param(const char *v, long long lo, long long hi) {
    long long got = 0x5a5a;
    int rc = http_param_int(v, lo, hi, &got);
    CHECK(rc == 1 || rc == -1);
    const char *p = v + (*v == '-');
    int digits = *p != '\0';
    for (; *p; p++)
        digits &= *p >= '0' && *p <= '9';
    errno = 0;
    char *end;
    long long want = digits ? strtoll(v, &end, 10) : 0;
    int ok = digits && errno == 0 && want >= lo && want <= hi;
    CHECK(rc == (ok ? 1 : -1));
    if (ok)
        CHECK(got == want);
    else
        CHECK(got == 0x5a5a);
}

static void check_route(const char *method, const char *path) {
    struct http_route r;
    memset(&r, 0xa5, sizeof r);
    http_route_match(method, path, &r);
    CHECK(r.name);
    CHECK((r.id == ROUTE_BAD_METHOD) == (r.allow != NULL));
    if (r.id == ROUTE_NOT_FOUND) CHECK(!strcmp(r.name, "other"));
    int conv = r.id == ROUTE_CONV_GET || r.id == ROUTE_CONV_DELETE ||
               r.id == ROUTE_CONV_POST || r.id == ROUTE_CONV_MESSAGES;
    if (conv) CHECK(r.conv >= 1 && r.conv <= (1LL << 53));
    /* a 405 keeps the id or topic of the path (for logs) */
    int bad = r.id == ROUTE_BAD_METHOD;
    if (bad && strstr(r.name, "{id}")) CHECK(r.conv >= 1 && r.conv <= (1LL << 53));
    if (!conv && !(bad && strstr(r.name, "{id}"))) CHECK(r.conv == 0);
    if (r.id == ROUTE_TOPIC_POST || (bad && strstr(r.name, "{topic}")))
        CHECK(name_ok(r.topic, 64));
    else
        CHECK(r.topic[0] == '\0');
    size_t n = strlen(path);
    if (r.id != ROUTE_NOT_FOUND && n && path[n - 1] != '/' && n < 4096) {
        /* the same path with a trailing '/' is the same route */
        char *slash = malloc(n + 2);
        CHECK(slash);
        memcpy(slash, path, n);
        memcpy(slash + n, "/", 2);
        struct http_route t;
        http_route_match(method, slash, &t);
        CHECK(t.id == r.id && t.conv == r.conv && !strcmp(t.topic, r.topic));
        CHECK(t.name == r.name && t.allow == r.allow);
        free(slash);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > MAX_INPUT) return 0;
    const char *body = guarded_copy(data, size);

    for (int k = 0; k < 2; k++) {
        enum api_kind kind = k ? API_COMPLETION : API_CHAT;
        struct api_gen_request r;
        struct api_error e = {0};
        if (api_parse_gen_request(body, size, kind, &r, &e) == 0)
            check_gen(&r, kind);
        else
            check_error(&e);
        api_gen_request_free(&r);
    }

    struct api_conv_create c;
    struct api_error e = {0};
    if (api_parse_conv_create(body, size, &c, &e) == 0) {
        check_str(c.scenario, 0, 1);
        check_str(c.opening, 1, 1);
        CHECK(c.turns >= 0);
        render(API_CHAT, c.scenario, c.opening ? c.opening : "");
    } else {
        check_error(&e);
    }
    api_conv_create_free(&c);

    struct api_conv_post p;
    memset(&e, 0, sizeof e);
    if (api_parse_conv_post(body, size, &p, &e) == 0) {
        check_str(p.content, 0, 1);
        if (p.from) CHECK(name_ok(p.from, 64));
        CHECK(p.conversation == -1 ||
              (p.conversation >= 1 && p.conversation <= (1LL << 53)));
        render(API_COMPLETION, p.from ? p.from : "user", p.content);
    } else {
        CHECK(p.conversation == -1);
        check_error(&e);
    }
    api_conv_post_free(&p);

    /* method and path: split at the first NUL or newline */
    size_t cut = 0;
    while (cut < size && data[cut] != '\0' && data[cut] != '\n')
        cut++;
    char *method = malloc(cut + 1);
    size_t rest = cut < size ? size - cut - 1 : 0;
    char *path = malloc(rest + 1);
    CHECK(method && path);
    memcpy(method, data, cut);
    method[cut] = '\0';
    if (rest) memcpy(path, data + cut + 1, rest);
    path[rest] = '\0'; /* a NUL inside the path ends it, as in a C string */
    check_route(method, path);
    check_route(path, method);
    long long lo = size ? (long long)(int8_t)data[0] * 1000 : 0;
    check_param(method, lo, lo + 100000);
    check_param(path, -9223372036854775807LL - 1, 9223372036854775807LL);
    check_param(path, 1, 1LL << 53);
    free(method);
    free(path);
    return 0;
}
