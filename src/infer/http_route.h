/* src/infer/http_route.h — which endpoint an HTTP request is for.
 *
 * Maps a method and a URL path to a route (docs/api.md lists them), with
 * the ids and names taken from the path, and reads the query parameters the
 * endpoints use. Pure and bounded: paths are untrusted, any bytes, any
 * length (fuzzed in tests/fuzz/fuzz_api_json.c).
 *
 *   GET  /health                          ROUTE_HEALTH
 *   GET  /metrics                         ROUTE_METRICS
 *   GET  /v1/models                       ROUTE_MODELS
 *   POST /v1/chat/completions             ROUTE_CHAT
 *   POST /v1/completions                  ROUTE_COMPLETIONS
 *   POST /v1/conversations                ROUTE_CONV_CREATE
 *   GET  /v1/conversations/{id}           ROUTE_CONV_GET      (id: decimal, 1..2^53)
 *   DELETE /v1/conversations/{id}         ROUTE_CONV_DELETE
 *   POST /v1/conversations/{id}/messages  ROUTE_CONV_POST
 *   GET  /v1/conversations/{id}/messages  ROUTE_CONV_MESSAGES
 *   POST /v1/topics/{topic}/messages      ROUTE_TOPIC_POST    (topic: [A-Za-z0-9_.-], 1..64)
 * A trailing '/' is accepted (one; an empty segment "//" is not). A known
 * path with another method is ROUTE_BAD_METHOD (405, with `allow` naming
 * the methods; conv and topic are still read from the path, for logs);
 * anything else ROUTE_NOT_FOUND, also an id with a sign, 0, past 2^53 or
 * not all digits (leading zeros are read: "007" is 7), and a NULL method or
 * path.
 */
#ifndef LLMPI_HTTP_ROUTE_H
#define LLMPI_HTTP_ROUTE_H

enum http_route_id {
    ROUTE_NOT_FOUND,
    ROUTE_BAD_METHOD,
    ROUTE_HEALTH,
    ROUTE_METRICS,
    ROUTE_MODELS,
    ROUTE_CHAT,
    ROUTE_COMPLETIONS,
    ROUTE_CONV_CREATE,
    ROUTE_CONV_GET,
    ROUTE_CONV_DELETE,
    ROUTE_CONV_POST,
    ROUTE_CONV_MESSAGES,
    ROUTE_TOPIC_POST,
};

struct http_route {
    enum http_route_id id;
    long long conv;  /* conversation routes; 0 otherwise */
    char topic[65];  /* ROUTE_TOPIC_POST; "" otherwise */
    const char *allow; /* ROUTE_BAD_METHOD: "GET", "POST", "GET, DELETE" or "GET, POST";
                          NULL otherwise */
    const char *name;  /* the endpoint's path pattern for metrics labels, e.g.
                          "/v1/conversations/{id}/messages"; "other" when not found */
};

/* method: "GET", "POST", "DELETE", ... (exact, upper case); path: without
 * the query string. */
void http_route_match(const char *method, const char *path, struct http_route *out);

/* A query parameter's value (as libmicrohttpd hands it over, already
 * percent-decoded; NULL when the parameter is absent) as a decimal integer
 * in [lo, hi]: 1 read (in *v), 0 absent, -1 present but not such an
 * integer (empty, signs other than a leading '-', trailing bytes,
 * overflow). */
int http_param_int(const char *value, long long lo, long long hi, long long *v);

#endif
