/* src/infer/api_json.h — the JSON of the HTTP API: parsing request bodies
 * and writing response bodies, in the shapes of OpenAI's API so that its
 * clients work unchanged (docs/api.md).
 *
 * Pure functions over bytes: no I/O, no model, no threads. Every parser
 * takes untrusted input (any bytes, any length, invalid UTF-8, deep nesting)
 * and either fills its struct or returns -1 with an api_error saying what
 * is wrong and which field ("param"): the HTTP layer sends that as a 400
 * error body. The fuzz harness tests/fuzz/fuzz_api_json.c feeds them.
 *
 * Output strings are always valid JSON: text is escaped by cJSON (cJSON is
 * the JSON library of the whole project), and bytes that are not valid
 * UTF-8, and NUL bytes, must have been replaced by the caller (utf8.h)
 * before they get here.
 */
#ifndef LLMPI_API_JSON_H
#define LLMPI_API_JSON_H

#include <stddef.h>
#include <stdint.h>

/* An error answer: HTTP status, message, OpenAI's error type ("invalid_
 * request_error", "authentication_error", "permission_error",
 * "not_found_error", "rate_limit_error", "server_error", "timeout_error")
 * and the offending field (param, "" when none) and code ("" when none). */
struct api_error {
    int status;
    char message[512];
    char type[32];
    char param[64];
    char code[48];
};
/* Fill e (printf-style message) and return -1. Strings too long for their
 * field are cut at a UTF-8 character boundary. */
int api_error_set(struct api_error *e, int status, const char *type, const char *param,
                  const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* {"error":{"message":...,"type":...,"param":...|null,"code":...|null}}
 * (malloc'd; NULL when out of memory). */
char *api_error_json(const struct api_error *e);

#define API_MAX_STOP 4

enum api_kind { API_CHAT, API_COMPLETION };

struct api_message {
    char *role;    /* "system", "user", "assistant", "developer" or "tool" */
    char *content; /* a string, or the text parts of a content array joined */
    char *name;    /* optional, NULL when absent */
};

/* A parsed /v1/chat/completions or /v1/completions body. Fields the client
 * did not send keep the "not given" values noted below, so the server can
 * apply the agent's defaults. */
struct api_gen_request {
    enum api_kind kind;
    char *model; /* required, non-empty */
    /* chat: messages (required, >= 1); completion: prompt (required: a
     * string, or an array of exactly one string) */
    struct api_message *messages;
    int n_messages;
    char *prompt;
    int max_tokens;     /* max_tokens, or chat's max_completion_tokens; -1 = not given;
                           else 1..2^30 */
    float temperature;  /* -1 = not given; else 0..2 */
    float top_p;        /* -1 = not given; else (0, 1] */
    int top_k;          /* extension; -1 = not given; else 0..2^20 */
    float repetition_penalty; /* extension; -1 = not given; else (0, 100] */
    int has_seed;
    uint64_t seed;      /* a JSON integer 0..2^53 */
    char *stop[API_MAX_STOP]; /* "stop": a string or an array of up to 4 non-empty strings */
    int n_stop;
    int stream;         /* "stream": true */
    int include_usage;  /* "stream_options": {"include_usage": true} */
    char *user;         /* optional */
};
/* Parse body[0..len) (need not be NUL-terminated) as `kind`. Refused with
 * 400 (param named): not valid UTF-8, a NUL byte or a "\u0000" escape;
 * not a JSON object (trailing bytes other than whitespace included); a
 * missing or mistyped required field; a value out of range; n != 1;
 * logprobs / top_logprobs / echo / tools / functions / logit_bias /
 * best_of / suffix / response_format other than text (not supported: the
 * message says so, code "unsupported_parameter"; their "off" values false,
 * 0, 1, "", [], {} are accepted); presence/frequency penalties other than
 * 0. An optional field sent as null counts as not sent. A content array's
 * text parts are joined with '\n'; chat's max_completion_tokens wins over
 * max_tokens when both are sent. Integers must be integral numbers (1e3
 * and 5.0 are). Unknown fields are ignored, as OpenAI's servers do. On
 * failure nothing is left to free (freeing is harmless). */
int api_parse_gen_request(const char *body, size_t len, enum api_kind kind,
                          struct api_gen_request *out, struct api_error *e);
void api_gen_request_free(struct api_gen_request *r);

/* Token counts of an answer (finish_reason, as OpenAI names the end of a
 * generation, is "stop" or "length"). */
struct api_usage {
    int prompt_tokens, completion_tokens;
};

/* A whole (non-streamed) answer. id e.g. "chatcmpl-12", created = Unix time.
 * chat: {"id","object":"chat.completion","created","model","choices":[{"index":0,
 *   "message":{"role":"assistant","content":text},"logprobs":null,"finish_reason"}],
 *   "usage":{...}}
 * completion: {"id","object":"text_completion","created","model","choices":[{"index":0,
 *   "text":text,"finish_reason","logprobs":null}],"usage":{...}}
 * usage has prompt_tokens, completion_tokens, total_tokens (usage NULL: no
 * "usage"; finish_reason NULL: null). text (NULL: "") [0..text_len)
 * is valid UTF-8 without NUL bytes (the caller's utf8 module sees to both).
 * malloc'd; NULL when out of memory. */
char *api_response_json(enum api_kind kind, const char *id, long long created,
                        const char *model, const char *text, size_t text_len,
                        const char *finish_reason, const struct api_usage *usage);

/* One server-sent event of a stream: "data: {json}\n\n" (malloc'd, *n its
 * length). chat: object "chat.completion.chunk", choices[0].delta =
 * {"role":"assistant"} when role is not NULL, {"content":text} when text is
 * not NULL (may be empty), {} when both are NULL; finish_reason null unless
 * given; "logprobs": null in every choice. completion: object
 * "text_completion", choices[0].text = text ("" when NULL), finish_reason.
 * usage (NULL: none) adds "usage"; with
 * usage_only, choices is [] (the final usage chunk of include_usage). */
char *api_chunk_sse(enum api_kind kind, const char *id, long long created,
                    const char *model, const char *role, const char *text,
                    size_t text_len, const char *finish_reason,
                    const struct api_usage *usage, int usage_only, size_t *n);
/* "data: [DONE]\n\n" is a constant: */
#define API_SSE_DONE "data: [DONE]\n\n"

/* GET /v1/models: {"object":"list","data":[{"id":name,"object":"model",
 * "created":created,"owned_by":"llmpi"}, ...]} over names[0..n). */
char *api_models_json(const char *const *names, int n, long long created);

/* Bodies of the conversation endpoints (docs/api.md). */
struct api_conv_create {
    char *scenario; /* required */
    char *opening;  /* optional (non-empty): replaces the scenario's opening */
    int turns;      /* optional, 0..1e9: > 0 ends after that many agent turns; 0 = the
                       scenario's */
};
int api_parse_conv_create(const char *body, size_t len, struct api_conv_create *out,
                          struct api_error *e);
void api_conv_create_free(struct api_conv_create *c);

/* POST .../messages: {"content": "...", "from": "name"}; from optional
 * (NULL = "user"), [A-Za-z0-9_.-] 1..64 characters; content non-empty.
 * conversation: optional integer id 1..2^53 (topics endpoint), -1 when absent. */
struct api_conv_post {
    char *content;
    char *from;
    long long conversation;
};
int api_parse_conv_post(const char *body, size_t len, struct api_conv_post *out,
                        struct api_error *e);
void api_conv_post_free(struct api_conv_post *p);

#endif
