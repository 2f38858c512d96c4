/* tests/test_http_route.c — endpoints from method + path (src/infer/http_route.*).
 *
 * Every route with its method, with and without a trailing '/'; the other
 * methods of a known path (405 with the methods allowed); ids and topic
 * names at and past their limits; paths that only look like routes; and
 * the query-parameter integers of http_param_int at their edges.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_route.h"

static struct http_route match(const char *method, const char *path) {
    struct http_route r;
    memset(&r, 0x5a, sizeof r); /* garbage in: every field must be set */
    http_route_match(method, path, &r);
    return r;
}

static void expect_not_found(const char *method, const char *path) {
    struct http_route r = match(method, path);
    cr_expect_eq(r.id, ROUTE_NOT_FOUND, "%s %s: %d", method ? method : "(null)",
                 path ? path : "(null)", r.id);
    cr_expect_str_eq(r.name, "other");
    cr_expect_null(r.allow);
}

static const struct {
    const char *method, *path;
    enum http_route_id id;
    const char *name;
    long long conv;
    const char *topic;
} ROUTES[] = {
    {"GET", "/health", ROUTE_HEALTH, "/health", 0, ""},
    {"GET", "/metrics", ROUTE_METRICS, "/metrics", 0, ""},
    {"GET", "/v1/models", ROUTE_MODELS, "/v1/models", 0, ""},
    {"POST", "/v1/chat/completions", ROUTE_CHAT, "/v1/chat/completions", 0, ""},
    {"POST", "/v1/completions", ROUTE_COMPLETIONS, "/v1/completions", 0, ""},
    {"POST", "/v1/conversations", ROUTE_CONV_CREATE, "/v1/conversations", 0, ""},
    {"GET", "/v1/conversations/12", ROUTE_CONV_GET, "/v1/conversations/{id}", 12, ""},
    {"DELETE", "/v1/conversations/7", ROUTE_CONV_DELETE, "/v1/conversations/{id}", 7, ""},
    {"POST", "/v1/conversations/3/messages", ROUTE_CONV_POST,
     "/v1/conversations/{id}/messages", 3, ""},
    {"GET", "/v1/conversations/1/messages", ROUTE_CONV_MESSAGES,
     "/v1/conversations/{id}/messages", 1, ""},
    {"POST", "/v1/topics/news/messages", ROUTE_TOPIC_POST, "/v1/topics/{topic}/messages",
     0, "news"},
};
#define N_ROUTES (sizeof ROUTES / sizeof *ROUTES)

Test(http_route, every_route_with_and_without_trailing_slash) {
    for (size_t i = 0; i < N_ROUTES; i++) {
        char path[128];
        for (int slash = 0; slash < 2; slash++) {
            snprintf(path, sizeof path, "%s%s", ROUTES[i].path, slash ? "/" : "");
            struct http_route r = match(ROUTES[i].method, path);
            cr_expect_eq(r.id, ROUTES[i].id, "%s %s: %d", ROUTES[i].method, path, r.id);
            cr_expect_str_eq(r.name, ROUTES[i].name, "%s", path);
            cr_expect_eq(r.conv, ROUTES[i].conv, "%s", path);
            cr_expect_str_eq(r.topic, ROUTES[i].topic, "%s", path);
            cr_expect_null(r.allow, "%s", path);
        }
    }
}

Test(http_route, other_methods_are_405_with_allow) {
    static const struct {
        const char *method, *path, *allow, *name;
    } cases[] = {
        {"POST", "/health", "GET", "/health"},
        {"HEAD", "/health", "GET", "/health"},
        {"DELETE", "/metrics", "GET", "/metrics"},
        {"POST", "/v1/models/", "GET", "/v1/models"},
        {"GET", "/v1/chat/completions", "POST", "/v1/chat/completions"},
        {"PUT", "/v1/completions", "POST", "/v1/completions"},
        {"GET", "/v1/conversations", "POST", "/v1/conversations"},
        {"POST", "/v1/conversations/5", "GET, DELETE", "/v1/conversations/{id}"},
        {"PATCH", "/v1/conversations/5/", "GET, DELETE", "/v1/conversations/{id}"},
        {"DELETE", "/v1/conversations/5/messages", "GET, POST",
         "/v1/conversations/{id}/messages"},
        {"GET", "/v1/topics/news/messages", "POST", "/v1/topics/{topic}/messages"},
        /* methods are exact and upper case */
        {"get", "/health", "GET", "/health"},
        {"post", "/v1/chat/completions", "POST", "/v1/chat/completions"},
        {"", "/v1/models", "GET", "/v1/models"},
        {"GET ", "/v1/models", "GET", "/v1/models"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct http_route r = match(cases[i].method, cases[i].path);
        cr_expect_eq(r.id, ROUTE_BAD_METHOD, "%s %s: %d", cases[i].method, cases[i].path,
                     r.id);
        cr_assert_not_null(r.allow, "%s %s", cases[i].method, cases[i].path);
        cr_expect_str_eq(r.allow, cases[i].allow, "%s %s", cases[i].method,
                         cases[i].path);
        cr_expect_str_eq(r.name, cases[i].name);
    }
    /* the id is still read on a 405 (for logs) */
    cr_expect_eq(match("PUT", "/v1/conversations/42").conv, 42);
    cr_expect_str_eq(match("GET", "/v1/topics/news/messages").topic, "news");
    cr_expect_eq(match("GET", "/health").conv, 0);
}

Test(http_route, ids) {
    struct http_route r = match("GET", "/v1/conversations/9007199254740992");
    cr_expect_eq(r.id, ROUTE_CONV_GET);
    cr_expect_eq(r.conv, 9007199254740992LL);
    r = match("GET", "/v1/conversations/0042/messages");
    cr_expect_eq(r.id, ROUTE_CONV_MESSAGES);
    cr_expect_eq(r.conv, 42);
    const char *bad[] = {
        "/v1/conversations/0",
        "/v1/conversations/000",
        "/v1/conversations/-1",
        "/v1/conversations/+1",
        "/v1/conversations/ 1",
        "/v1/conversations/1 ",
        "/v1/conversations/1a",
        "/v1/conversations/0x10",
        "/v1/conversations/1.0",
        "/v1/conversations/1e3",
        "/v1/conversations/abc",
        "/v1/conversations/9007199254740993",
        "/v1/conversations/9223372036854775807",
        "/v1/conversations/9223372036854775808",
        "/v1/conversations/99999999999999999999999999999999999999",
        "/v1/conversations/0/messages",
        "/v1/conversations/-5/messages",
        "/v1/conversations/99999999999999999999/messages",
        "/v1/conversations/x/messages",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        expect_not_found("GET", bad[i]);
        expect_not_found("POST", bad[i]); /* not a 405: the path is unknown */
    }
}

Test(http_route, topics) {
    char name64[65], path[200];
    memset(name64, 'a', 64);
    name64[64] = '\0';
    name64[0] = 'Z';
    name64[1] = '9';
    name64[2] = '_';
    name64[3] = '.';
    name64[4] = '-';
    snprintf(path, sizeof path, "/v1/topics/%s/messages", name64);
    struct http_route r = match("POST", path);
    cr_expect_eq(r.id, ROUTE_TOPIC_POST);
    cr_expect_str_eq(r.topic, name64);
    cr_expect_eq(match("POST", "/v1/topics/x/messages/").id, ROUTE_TOPIC_POST);
    cr_expect_str_eq(match("POST", "/v1/topics/x/messages/").topic, "x");
    snprintf(path, sizeof path, "/v1/topics/%sa/messages", name64); /* 65 characters */
    expect_not_found("POST", path);
    const char *bad[] = {
        "/v1/topics//messages",       "/v1/topics/a b/messages",
        "/v1/topics/a%20b/messages",  "/v1/topics/caf\xc3\xa9/messages",
        "/v1/topics/a:b/messages",    "/v1/topics/news",
        "/v1/topics/news/",           "/v1/topics",
        "/v1/topics/news/messages/x", "/v1/topics/news/message",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_not_found("POST", bad[i]);
}

Test(http_route, unknown_paths) {
    const char *bad[] = {
        "",
        "/",
        "//",
        "health",
        "/health//",
        "//health",
        "/health/x",
        "/Health",
        "/healthz",
        "/v1",
        "/v1/",
        "/v2/models",
        "/v1/models/x",
        "/v1//models",
        "/v1/chat",
        "/v1/chat/completions/x",
        "/v1/chat//completions",
        "/v1/conversations//",
        "/v1/conversations/1/messages/2",
        "/v1/conversations/1/other",
        "/v1/conversations/1//messages",
        "/v1/models?x=1", /* the caller strips the query string */
        "/../health",
        "*",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        expect_not_found("GET", bad[i]);
        expect_not_found("POST", bad[i]);
    }
    expect_not_found(NULL, "/health");
    expect_not_found("GET", NULL);
    /* a long path costs nothing special and matches nothing */
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = i % 2 ? 'a' : '/';
    big[n] = '\0';
    expect_not_found("GET", big);
    memset(big, '/', n);
    expect_not_found("GET", big);
    free(big);
}

Test(http_param_int, reads_integers) {
    long long v = 0;
    cr_expect_eq(http_param_int(NULL, 0, 10, &v), 0);
    cr_expect_eq(http_param_int("7", 0, 10, &v), 1);
    cr_expect_eq(v, 7);
    cr_expect_eq(http_param_int("0", 0, 10, &v), 1);
    cr_expect_eq(v, 0);
    cr_expect_eq(http_param_int("10", 0, 10, &v), 1);
    cr_expect_eq(v, 10);
    cr_expect_eq(http_param_int("007", 0, 10, &v), 1);
    cr_expect_eq(v, 7);
    cr_expect_eq(http_param_int("-3", -5, 5, &v), 1);
    cr_expect_eq(v, -3);
    cr_expect_eq(http_param_int("-0", 0, 0, &v), 1);
    cr_expect_eq(v, 0);
    cr_expect_eq(http_param_int("9223372036854775807", LLONG_MIN, LLONG_MAX, &v), 1);
    cr_expect_eq(v, LLONG_MAX);
    cr_expect_eq(http_param_int("-9223372036854775808", LLONG_MIN, LLONG_MAX, &v), 1);
    cr_expect_eq(v, LLONG_MIN);
}

Test(http_param_int, refuses) {
    long long v = 12345;
    const char *bad[] = {
        "",
        "-",
        "+1",
        "--1",
        " 1",
        "1 ",
        "1a",
        "0x10",
        "1.0",
        "1e3",
        "1,000",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999",
        "\xef\xbc\x91", /* a full-width digit */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(http_param_int(bad[i], LLONG_MIN, LLONG_MAX, &v), -1, "'%s'",
                     bad[i]);
    /* out of [lo, hi] */
    cr_expect_eq(http_param_int("11", 0, 10, &v), -1);
    cr_expect_eq(http_param_int("-1", 0, 10, &v), -1);
    cr_expect_eq(http_param_int("5", 6, 4, &v), -1); /* empty range */
    cr_expect_eq(v, 12345);                          /* untouched when refused */
}
