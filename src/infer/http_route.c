/* src/infer/http_route.c — method + path to an endpoint (http_route.h).
 *
 * The path is cut at '/' into at most four segments (the longest route has
 * four) and compared with a small table; nothing is copied except a topic
 * name, and the work is linear in the path's length. Ids are parsed by hand rather than
 * with strtoll, which would take signs, spaces and hexadecimal-looking prefixes that a
 * URL must not.
 */
#include <string.h>

#include "http_route.h"

#define MAX_SEGS 4
#define ID_MAX 9007199254740992LL /* 2^53: ids travel as JSON numbers */

struct seg {
    const char *p;
    size_t n;
};

static int seg_is(struct seg s, const char *lit) {
    size_t n = strlen(lit);
    return s.n == n && !memcmp(s.p, lit, n);
}

/* A conversation id: decimal digits only, 1..ID_MAX; -1 otherwise. */
static long long seg_id(struct seg s) {
    long long v = 0;
    if (s.n == 0) return -1;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return -1;
        int d = s.p[i] - '0';
        if (v > (ID_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    return v >= 1 ? v : -1;
}

/* A topic or agent name: [A-Za-z0-9_.-], 1..64 characters. */
static int seg_name(struct seg s) {
    if (s.n < 1 || s.n > 64) return 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Split path[0..len) (after its leading '/') into segments: their count,
 * or -1 when there are more than MAX_SEGS or one is empty ("//"). */
static int split(const char *path, size_t len, struct seg *segs) {
    int n = 0;
    size_t i = 1;
    for (;;) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        if (j == i || n == MAX_SEGS) return -1;
        segs[n++] = (struct seg){path + i, j - i};
        if (j == len) return n;
        i = j + 1;
    }
}

/* The route when `method` is one of the endpoint's (up to two), else
 * ROUTE_BAD_METHOD with `allow`. */
static void pick(struct http_route *out, const char *method, const char *name,
                 const char *allow, const char *m1, enum http_route_id r1, const char *m2,
                 enum http_route_id r2) {
    out->name = name;
    if (!strcmp(method, m1)) {
        out->id = r1;
    } else if (m2 && !strcmp(method, m2)) {
        out->id = r2;
    } else {
        out->id = ROUTE_BAD_METHOD;
        out->allow = allow;
    }
}

void http_route_match(const char *method, const char *path, struct http_route *out) {
    memset(out, 0, sizeof *out);
    out->id = ROUTE_NOT_FOUND;
    out->name = "other";
    if (!method || !path || path[0] != '/') return;
    size_t len = strlen(path);
    if (len > 1 && path[len - 1] == '/') len--;
    struct seg s[MAX_SEGS];
    int n = split(path, len, s);
    if (n < 1) return;

    if (n == 1 && seg_is(s[0], "health")) {
        pick(out, method, "/health", "GET", "GET", ROUTE_HEALTH, NULL, ROUTE_NOT_FOUND);
    } else if (n == 1 && seg_is(s[0], "metrics")) {
        pick(out, method, "/metrics", "GET", "GET", ROUTE_METRICS, NULL, ROUTE_NOT_FOUND);
    } else if (!seg_is(s[0], "v1") || n < 2) {
        return;
    } else if (n == 2 && seg_is(s[1], "models")) {
        pick(out, method, "/v1/models", "GET", "GET", ROUTE_MODELS, NULL,
             ROUTE_NOT_FOUND);
    } else if (n == 3 && seg_is(s[1], "chat") && seg_is(s[2], "completions")) {
        pick(out, method, "/v1/chat/completions", "POST", "POST", ROUTE_CHAT, NULL,
             ROUTE_NOT_FOUND);
    } else if (n == 2 && seg_is(s[1], "completions")) {
        pick(out, method, "/v1/completions", "POST", "POST", ROUTE_COMPLETIONS, NULL,
             ROUTE_NOT_FOUND);
    } else if (seg_is(s[1], "conversations")) {
        if (n == 2) {
            pick(out, method, "/v1/conversations", "POST", "POST", ROUTE_CONV_CREATE,
                 NULL, ROUTE_NOT_FOUND);
            return;
        }
        long long id = seg_id(s[2]);
        if (id < 1) return;
        if (n == 3) {
            pick(out, method, "/v1/conversations/{id}", "GET, DELETE", "GET",
                 ROUTE_CONV_GET, "DELETE", ROUTE_CONV_DELETE);
        } else if (seg_is(s[3], "messages")) {
            pick(out, method, "/v1/conversations/{id}/messages", "GET, POST", "POST",
                 ROUTE_CONV_POST, "GET", ROUTE_CONV_MESSAGES);
        } else {
            return;
        }
        out->conv = id;
    } else if (n == 4 && seg_is(s[1], "topics") && seg_is(s[3], "messages") &&
               seg_name(s[2])) {
        pick(out, method, "/v1/topics/{topic}/messages", "POST", "POST", ROUTE_TOPIC_POST,
             NULL, ROUTE_NOT_FOUND);
        memcpy(out->topic, s[2].p, s[2].n);
        out->topic[s[2].n] = '\0';
    }
}

int http_param_int(const char *value, long long lo, long long hi, long long *v) {
    if (!value) return 0;
    const char *p = value;
    int neg = *p == '-';
    p += neg;
    if (!*p) return -1;
    /* Accumulate as a negative number: its range includes LLONG_MIN. */
    long long x = 0;
    const long long min = -9223372036854775807LL - 1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        int d = *p - '0';
        if (x < (min + d) / 10) return -1;
        x = x * 10 - d;
    }
    if (!neg) {
        if (x == min) return -1;
        x = -x;
    }
    if (x < lo || x > hi) return -1;
    *v = x;
    return 1;
}
