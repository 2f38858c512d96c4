/* src/infer/api_json.c — request bodies in, response bodies out, in the
 * shapes of OpenAI's API (api_json.h).
 *
 * Parsing is two passes: the raw body is checked first (valid UTF-8, no NUL
 * bytes, no "\u0000" escape: cJSON would cut a string there and the field
 * would silently differ from what was sent), then cJSON builds the tree and
 * each field is looked up, type-checked and range-checked with the field's
 * path as `param`. A field sent as null counts as not sent, as OpenAI's
 * servers do (several clients send every optional field, null when unset).
 * Every refusal names what is accepted, never echoes the client's value
 * (a value could be megabytes, or cut mid-character in the 512-byte
 * message).
 *
 * Writing builds a cJSON tree and prints it unformatted: cJSON escapes
 * quotes, backslashes and control characters, so the output is one line
 * (as a server-sent event must be) and valid JSON whatever the text.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api_json.h"

#define INT_TOKENS_MAX (1 << 30)
#define TOP_K_MAX (1 << 20)
#define SEED_MAX 9007199254740992.0 /* 2^53: exact in a JSON number */
#define TURNS_MAX 1000000000.0
#define CONV_MAX 9007199254740992.0
#define NAME_MAX_LEN 64

/* ---- errors --------------------------------------------------------------- */

/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8
 * sequence (a message cut by snprintf must stay valid UTF-8). */
static size_t utf8_trim(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0) return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return back + 1 >= need ? n : i - 1;
}

static void copy_field(char *dst, size_t cap, const char *src) {
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) n = utf8_trim(src, cap - 1);
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

static int verror(struct api_error *e, int status, const char *type, const char *param,
                  const char *code, const char *fmt, va_list ap) {
    if (!e) return -1;
    e->status = status;
    copy_field(e->type, sizeof e->type, type);
    copy_field(e->param, sizeof e->param, param);
    copy_field(e->code, sizeof e->code, code);
    int n = vsnprintf(e->message, sizeof e->message, fmt, ap);
    if (n < 0) {
        e->message[0] = '\0';
    } else if ((size_t)n >= sizeof e->message) {
        size_t k = utf8_trim(e->message, sizeof e->message - 1);
        e->message[k] = '\0';
    }
    return -1;
}

int api_error_set(struct api_error *e, int status, const char *type, const char *param,
                  const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(e, status, type, param, code, fmt, ap);
    va_end(ap);
    return -1;
}

/* 400 invalid_request_error about `param`. */
static int bad(struct api_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(struct api_error *e, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(e, 400, "invalid_request_error", param, "", fmt, ap);
    va_end(ap);
    return -1;
}

static int unsupported(struct api_error *e, const char *param) {
    return api_error_set(e, 400, "invalid_request_error", param, "unsupported_parameter",
                         "%s is not supported by this server", param);
}

static int oom(struct api_error *e) {
    return api_error_set(e, 500, "server_error", "", "", "out of memory");
}

/* ---- input checks ---------------------------------------------------------- */

/* 1 when s[0..n) is valid UTF-8 (no overlong forms, surrogates or code
 * points past U+10FFFF) without NUL bytes. */
static int utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

/* 1 when body has a "\u0000" escape (a backslash preceded by an even run of
 * backslashes, then u0000). Outside strings a backslash is a syntax error
 * anyway, so this need not know where strings are. */
static int has_nul_escape(const char *b, size_t n) {
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != '\\') {
            run = 0;
            continue;
        }
        run++;
        if (run % 2 == 1 && n - i >= 6 && !memcmp(b + i + 1, "u0000", 5)) return 1;
    }
    return 0;
}

/* The body as a JSON object: NULL + e when it is not one. */
static cJSON *parse_object(const char *body, size_t len, struct api_error *e) {
    if (!body || !len)
        return bad(e, "", "request body is empty: expected a JSON object"), NULL;
    if (!utf8_ok((const unsigned char *)body, len))
        return bad(e, "", "request body is not valid UTF-8 JSON"), NULL;
    if (has_nul_escape(body, len))
        return bad(e, "", "strings must not contain NUL characters (\\u0000)"), NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : len;
        return bad(e, "", "request body is not valid JSON (at byte %zu)", at), NULL;
    }
    for (const char *p = end; p && p < body + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return bad(e, "", "request body has data after the JSON value (at byte %zu)",
                       (size_t)(p - body)),
                   NULL;
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bad(e, "", "request body must be a JSON object"), NULL;
    }
    return root;
}

/* A field, NULL when absent or null. */
static const cJSON *opt(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int dup_str(const char *s, char **out, struct api_error *e) {
    size_t n = strlen(s);
    if (!(*out = malloc(n + 1))) return oom(e);
    memcpy(*out, s, n + 1);
    return 0;
}

/* A string field (param = key): *out a copy, or NULL when absent and not
 * required. */
static int str_field(const cJSON *obj, const char *key, int required, int nonempty,
                     char **out, struct api_error *e) {
    const cJSON *v = opt(obj, key);
    *out = NULL;
    if (!v) return required ? bad(e, key, "%s is required", key) : 0;
    if (!cJSON_IsString(v))
        return bad(e, key, "%s must be a %sstring", key, nonempty ? "non-empty " : "");
    if (nonempty && !*v->valuestring) return bad(e, key, "%s must not be empty", key);
    return dup_str(v->valuestring, out, e);
}

/* An integer field in [lo, hi]: 1 read, 0 absent, -1 refused. */
static int int_field(const cJSON *obj, const char *key, double lo, double hi, double *out,
                     struct api_error *e) {
    const cJSON *v = opt(obj, key);
    if (!v) return 0;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi)
        return bad(e, key, "%s must be an integer from %.0f to %.0f", key, lo, hi);
    *out = d;
    return 1;
}

/* A number field: 1 read (finite), 0 absent, -1 not a number (`want` says
 * what is accepted). The caller checks the range with the same words. */
static int num_field(const cJSON *obj, const char *key, const char *want, double *out,
                     struct api_error *e) {
    const cJSON *v = opt(obj, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad(e, key, "%s must be %s", key, want);
    *out = v->valuedouble;
    return 1;
}

/* A boolean field: 1 true, 0 false or absent, -1 refused. */
static int bool_field(const cJSON *obj, const char *key, const char *param,
                      struct api_error *e) {
    const cJSON *v = opt(obj, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return bad(e, param, "%s must be true or false", param);
    return cJSON_IsTrue(v) ? 1 : 0;
}

/* ---- /v1/chat/completions and /v1/completions -------------------------------- */

static const char *const ROLES[] = {"system", "user", "assistant", "developer", "tool"};

/* Join the text parts of a content array with '\n' (as vLLM does). */
static int content_parts(const cJSON *arr, int mi, char **out, struct api_error *e) {
    char p[64];
    size_t total = 0;
    int j = 0;
    for (const cJSON *part = arr->child; part; part = part->next, j++) {
        snprintf(p, sizeof p, "messages[%d].content[%d]", mi, j);
        if (!cJSON_IsObject(part))
            return bad(e, p, "%s must be an object {\"type\": \"text\", \"text\": ...}",
                       p);
        const cJSON *type = opt(part, "type");
        snprintf(p, sizeof p, "messages[%d].content[%d].type", mi, j);
        if (!cJSON_IsString(type)) return bad(e, p, "%s must be a string", p);
        if (strcmp(type->valuestring, "text"))
            return api_error_set(e, 400, "invalid_request_error", p, "unsupported_value",
                                 "only text content is supported");
        const cJSON *text = opt(part, "text");
        snprintf(p, sizeof p, "messages[%d].content[%d].text", mi, j);
        if (!cJSON_IsString(text)) return bad(e, p, "%s must be a string", p);
        total += strlen(text->valuestring) + (j > 0);
    }
    char *s = malloc(total + 1);
    if (!s) return oom(e);
    size_t k = 0;
    j = 0;
    for (const cJSON *part = arr->child; part; part = part->next, j++) {
        const char *t = opt(part, "text")->valuestring;
        size_t n = strlen(t);
        if (j > 0) s[k++] = '\n';
        memcpy(s + k, t, n);
        k += n;
    }
    s[k] = '\0';
    *out = s;
    return 0;
}

static int parse_message(const cJSON *m, int i, struct api_message *out,
                         struct api_error *e) {
    char p[64];
    snprintf(p, sizeof p, "messages[%d]", i);
    if (!cJSON_IsObject(m)) return bad(e, p, "%s must be an object", p);
    const cJSON *role = opt(m, "role");
    snprintf(p, sizeof p, "messages[%d].role", i);
    if (!role) return bad(e, p, "%s is required", p);
    int known = 0;
    for (size_t r = 0; cJSON_IsString(role) && r < sizeof ROLES / sizeof *ROLES; r++)
        known |= !strcmp(role->valuestring, ROLES[r]);
    if (!known)
        return bad(e, p, "%s must be one of system, user, assistant, developer, tool", p);
    if (dup_str(role->valuestring, &out->role, e)) return -1;

    const cJSON *content = opt(m, "content");
    snprintf(p, sizeof p, "messages[%d].content", i);
    if (!content) {
        if (strcmp(out->role, "assistant")) return bad(e, p, "%s is required", p);
        if (dup_str("", &out->content, e)) return -1;
    } else if (cJSON_IsString(content)) {
        if (dup_str(content->valuestring, &out->content, e)) return -1;
    } else if (cJSON_IsArray(content)) {
        if (content_parts(content, i, &out->content, e)) return -1;
    } else {
        return bad(e, p, "%s must be a string or an array of content parts", p);
    }

    const cJSON *name = opt(m, "name");
    snprintf(p, sizeof p, "messages[%d].name", i);
    if (name && !cJSON_IsString(name)) return bad(e, p, "%s must be a string", p);
    if (name && dup_str(name->valuestring, &out->name, e)) return -1;
    return 0;
}

static int parse_messages(const cJSON *root, struct api_gen_request *r,
                          struct api_error *e) {
    const cJSON *msgs = opt(root, "messages");
    if (!msgs) return bad(e, "messages", "messages is required");
    if (!cJSON_IsArray(msgs) || !msgs->child)
        return bad(e, "messages", "messages must be a non-empty array of messages");
    int n = cJSON_GetArraySize(msgs);
    if (!(r->messages = calloc((size_t)n, sizeof *r->messages))) return oom(e);
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        r->n_messages = i + 1; /* so that free sees this one's partial copies */
        if (parse_message(m, i, &r->messages[i], e)) return -1;
    }
    return 0;
}

static int parse_prompt(const cJSON *root, struct api_gen_request *r,
                        struct api_error *e) {
    const cJSON *v = opt(root, "prompt");
    if (!v) return bad(e, "prompt", "prompt is required");
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 && cJSON_IsString(v->child))
        v = v->child;
    if (!cJSON_IsString(v))
        return bad(e, "prompt", "prompt must be a string or an array of one string");
    return dup_str(v->valuestring, &r->prompt, e);
}

static int parse_stop(const cJSON *root, struct api_gen_request *r, struct api_error *e) {
    const cJSON *v = opt(root, "stop");
    if (!v) return 0;
    const char *msg = "stop must be a non-empty string or an array of at most 4 "
                      "non-empty strings";
    if (cJSON_IsString(v)) {
        if (!*v->valuestring) return bad(e, "stop", "%s", msg);
        r->n_stop = 1;
        return dup_str(v->valuestring, &r->stop[0], e);
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > API_MAX_STOP)
        return bad(e, "stop", "%s", msg);
    for (const cJSON *s = v->child; s; s = s->next)
        if (!cJSON_IsString(s) || !*s->valuestring) return bad(e, "stop", "%s", msg);
    for (const cJSON *s = v->child; s; s = s->next)
        if (dup_str(s->valuestring, &r->stop[r->n_stop++], e)) return -1;
    return 0;
}

/* Sampling and length: ranges of api_json.h. */
static int parse_sampling(const cJSON *root, struct api_gen_request *r,
                          struct api_error *e) {
    double d;
    int rc;
    if ((rc = int_field(root, "max_tokens", 1, INT_TOKENS_MAX, &d, e)) < 0) return -1;
    if (rc) r->max_tokens = (int)d;
    if (r->kind == API_CHAT) {
        rc = int_field(root, "max_completion_tokens", 1, INT_TOKENS_MAX, &d, e);
        if (rc < 0) return -1;
        if (rc) r->max_tokens = (int)d; /* the newer name wins when both are sent */
    }
    static const char *temp = "a number from 0 to 2";
    if ((rc = num_field(root, "temperature", temp, &d, e)) < 0) return -1;
    if (rc && !(d >= 0 && d <= 2))
        return bad(e, "temperature", "temperature must be %s", temp);
    if (rc) r->temperature = (float)d;
    /* top_p and repetition_penalty are checked as the floats they become:
     * 1e-50 is > 0 as a double but 0 as a float. */
    static const char *topp = "a number greater than 0 and at most 1";
    if ((rc = num_field(root, "top_p", topp, &d, e)) < 0) return -1;
    if (rc && !((float)d > 0 && d <= 1)) return bad(e, "top_p", "top_p must be %s", topp);
    if (rc) r->top_p = (float)d;
    if ((rc = int_field(root, "top_k", 0, TOP_K_MAX, &d, e)) < 0) return -1;
    if (rc) r->top_k = (int)d;
    static const char *rep = "a number greater than 0 and at most 100";
    if ((rc = num_field(root, "repetition_penalty", rep, &d, e)) < 0) return -1;
    if (rc && !((float)d > 0 && d <= 100))
        return bad(e, "repetition_penalty", "repetition_penalty must be %s", rep);
    if (rc) r->repetition_penalty = (float)d;
    if ((rc = int_field(root, "seed", 0, SEED_MAX, &d, e)) < 0) return -1;
    if (rc) {
        r->has_seed = 1;
        r->seed = (uint64_t)d;
    }
    return 0;
}

/* Features this server does not have: refused rather than ignored, so a
 * client never gets an answer that silently lacks what it asked for. Their
 * "off" values (false, 0, 1, "", [], {}, {"type": "text"}) are accepted. */
static int parse_unsupported(const cJSON *root, struct api_error *e) {
    double d;
    int rc = int_field(root, "n", 1, 1, &d, e);
    if (rc < 0)
        return bad(e, "n", "n must be 1: this server returns one choice per request");

    const cJSON *v = opt(root, "logprobs");
    if (v && !cJSON_IsFalse(v)) return unsupported(e, "logprobs");
    v = opt(root, "top_logprobs");
    if (v && !(cJSON_IsNumber(v) && v->valuedouble == 0))
        return unsupported(e, "top_logprobs");
    if ((rc = bool_field(root, "echo", "echo", e)) < 0) return -1;
    if (rc) return unsupported(e, "echo");
    static const char *const lists[] = {"tools", "functions"};
    for (int i = 0; i < 2; i++) {
        v = opt(root, lists[i]);
        if (v && !(cJSON_IsArray(v) && !v->child)) return unsupported(e, lists[i]);
    }
    v = opt(root, "logit_bias");
    if (v && !(cJSON_IsObject(v) && !v->child)) return unsupported(e, "logit_bias");
    v = opt(root, "best_of");
    if (v && !(cJSON_IsNumber(v) && v->valuedouble == 1))
        return unsupported(e, "best_of");
    v = opt(root, "suffix");
    if (v && !(cJSON_IsString(v) && !*v->valuestring)) return unsupported(e, "suffix");
    v = opt(root, "response_format");
    if (v) {
        if (!cJSON_IsObject(v))
            return bad(e, "response_format", "response_format must be an object");
        const cJSON *t = opt(v, "type");
        if (!cJSON_IsString(t))
            return bad(e, "response_format.type",
                       "response_format.type must be a string");
        if (strcmp(t->valuestring, "text"))
            return api_error_set(e, 400, "invalid_request_error", "response_format",
                                 "unsupported_parameter",
                                 "response_format other than {\"type\": \"text\"} is not "
                                 "supported by this server");
    }
    static const char *const pens[] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++) {
        static const char *want = "a number from -2 to 2";
        if ((rc = num_field(root, pens[i], want, &d, e)) < 0) return -1;
        if (rc && !(d >= -2 && d <= 2))
            return bad(e, pens[i], "%s must be %s", pens[i], want);
        if (rc && d != 0)
            return api_error_set(e, 400, "invalid_request_error", pens[i],
                                 "unsupported_parameter",
                                 "%s is not supported by this server (only 0)", pens[i]);
    }
    return 0;
}

static int parse_gen(const cJSON *root, struct api_gen_request *r, struct api_error *e) {
    if (str_field(root, "model", 1, 1, &r->model, e)) return -1;
    if (r->kind == API_CHAT ? parse_messages(root, r, e) : parse_prompt(root, r, e))
        return -1;
    if (parse_sampling(root, r, e) || parse_stop(root, r, e) ||
        parse_unsupported(root, e))
        return -1;
    int rc = bool_field(root, "stream", "stream", e);
    if (rc < 0) return -1;
    r->stream = rc;
    const cJSON *so = opt(root, "stream_options");
    if (so && !cJSON_IsObject(so))
        return bad(e, "stream_options", "stream_options must be an object");
    if (so &&
        (rc = bool_field(so, "include_usage", "stream_options.include_usage", e)) < 0)
        return -1;
    r->include_usage = so ? rc : 0;
    return str_field(root, "user", 0, 0, &r->user, e);
}

int api_parse_gen_request(const char *body, size_t len, enum api_kind kind,
                          struct api_gen_request *out, struct api_error *e) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->max_tokens = -1;
    out->temperature = -1;
    out->top_p = -1;
    out->top_k = -1;
    out->repetition_penalty = -1;
    cJSON *root = parse_object(body, len, e);
    if (!root) return -1;
    int rc = parse_gen(root, out, e);
    cJSON_Delete(root);
    if (rc) {
        api_gen_request_free(out);
        out->kind = kind;
    }
    return rc;
}

void api_gen_request_free(struct api_gen_request *r) {
    if (!r) return;
    free(r->model);
    for (int i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
        free(r->messages[i].name);
    }
    free(r->messages);
    free(r->prompt);
    for (int i = 0; i < r->n_stop && i < API_MAX_STOP; i++)
        free(r->stop[i]);
    free(r->user);
    memset(r, 0, sizeof *r);
}

/* ---- conversation endpoints ---------------------------------------------------- */

int api_parse_conv_create(const char *body, size_t len, struct api_conv_create *out,
                          struct api_error *e) {
    memset(out, 0, sizeof *out);
    cJSON *root = parse_object(body, len, e);
    if (!root) return -1;
    double d = 0;
    int rc = str_field(root, "scenario", 1, 1, &out->scenario, e) ||
                     str_field(root, "opening", 0, 1, &out->opening, e) ||
                     int_field(root, "turns", 0, TURNS_MAX, &d, e) < 0
                 ? -1
                 : 0;
    cJSON_Delete(root);
    out->turns = (int)d;
    if (rc) api_conv_create_free(out);
    return rc;
}

void api_conv_create_free(struct api_conv_create *c) {
    if (!c) return;
    free(c->scenario);
    free(c->opening);
    memset(c, 0, sizeof *c);
}

/* [A-Za-z0-9_.-], 1..64 characters. */
static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > NAME_MAX_LEN) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
            return 0;
    return 1;
}

static int parse_post(const cJSON *root, struct api_conv_post *p, struct api_error *e) {
    if (str_field(root, "content", 1, 1, &p->content, e)) return -1;
    const cJSON *from = opt(root, "from");
    if (from && !(cJSON_IsString(from) && name_ok(from->valuestring)))
        return bad(e, "from",
                   "from must be a name of 1 to 64 characters from A-Z a-z 0-9 _ . -");
    if (from && dup_str(from->valuestring, &p->from, e)) return -1;
    double d;
    int rc = int_field(root, "conversation", 1, CONV_MAX, &d, e);
    if (rc < 0) return -1;
    p->conversation = rc ? (long long)d : -1;
    return 0;
}

int api_parse_conv_post(const char *body, size_t len, struct api_conv_post *out,
                        struct api_error *e) {
    memset(out, 0, sizeof *out);
    out->conversation = -1;
    cJSON *root = parse_object(body, len, e);
    if (!root) return -1;
    int rc = parse_post(root, out, e);
    cJSON_Delete(root);
    if (rc) {
        api_conv_post_free(out);
        out->conversation = -1;
    }
    return rc;
}

void api_conv_post_free(struct api_conv_post *p) {
    if (!p) return;
    free(p->content);
    free(p->from);
    memset(p, 0, sizeof *p);
}

/* ---- writing ------------------------------------------------------------------- */

/* The tree printed without whitespace, as a malloc'd string with `prefix`
 * before it and `suffix` after (*n its length); the tree is deleted. NULL
 * when out of memory (also when `ok` says building the tree failed). */
static char *finish(cJSON *root, int ok, const char *prefix, const char *suffix,
                    size_t *n) {
    char *json = ok && root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) return NULL;
    size_t a = strlen(prefix), b = strlen(json), c = strlen(suffix);
    char *out = malloc(a + b + c + 1);
    if (out) {
        memcpy(out, prefix, a);
        memcpy(out + a, json, b);
        memcpy(out + a + b, suffix, c + 1);
        if (n) *n = a + b + c;
    }
    cJSON_free(json);
    return out;
}

/* text[0..len) as a JSON string (text NULL: ""). */
static cJSON *text_item(const char *text, size_t len) {
    if (!text) len = 0;
    if (len == SIZE_MAX) return NULL;
    char *s = malloc(len + 1);
    if (!s) return NULL;
    if (len) memcpy(s, text, len);
    s[len] = '\0';
    cJSON *v = cJSON_CreateString(s);
    free(s);
    return v;
}

/* cJSON_Add* return NULL on failure (and when the object is NULL): ok
 * collects them so that one check at the end covers every step. */
static int add_text(cJSON *obj, const char *key, const char *text, size_t len) {
    cJSON *v = text_item(text, len);
    if (!v) return 0;
    if (!obj || !cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        return 0;
    }
    return 1;
}

static int add_str_or_null(cJSON *obj, const char *key, const char *s) {
    return s && *s ? cJSON_AddStringToObject(obj, key, s) != NULL
                   : cJSON_AddNullToObject(obj, key) != NULL;
}

static int add_usage(cJSON *obj, const struct api_usage *u) {
    cJSON *o = cJSON_AddObjectToObject(obj, "usage");
    return cJSON_AddNumberToObject(o, "prompt_tokens", u->prompt_tokens) &&
           cJSON_AddNumberToObject(o, "completion_tokens", u->completion_tokens) &&
           cJSON_AddNumberToObject(o, "total_tokens",
                                   (double)u->prompt_tokens + u->completion_tokens);
}

/* id, object, created, model: the head of every answer and chunk. */
static cJSON *head(const char *id, const char *object, long long created,
                   const char *model, int *ok) {
    cJSON *root = cJSON_CreateObject();
    *ok = cJSON_AddStringToObject(root, "id", id ? id : "") &&
          cJSON_AddStringToObject(root, "object", object) &&
          cJSON_AddNumberToObject(root, "created", (double)created) &&
          cJSON_AddStringToObject(root, "model", model ? model : "");
    return root;
}

char *api_response_json(enum api_kind kind, const char *id, long long created,
                        const char *model, const char *text, size_t text_len,
                        const char *finish_reason, const struct api_usage *usage) {
    int ok;
    cJSON *root = head(id, kind == API_CHAT ? "chat.completion" : "text_completion",
                       created, model, &ok);
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *c = cJSON_CreateObject();
    if (!c || !choices || !cJSON_AddItemToArray(choices, c)) {
        cJSON_Delete(c);
        ok = 0;
    }
    ok = ok && cJSON_AddNumberToObject(c, "index", 0);
    if (kind == API_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        ok = ok && cJSON_AddStringToObject(m, "role", "assistant") &&
             add_text(m, "content", text, text_len);
    } else {
        ok = ok && add_text(c, "text", text, text_len);
    }
    ok = ok && cJSON_AddNullToObject(c, "logprobs") &&
         add_str_or_null(c, "finish_reason", finish_reason);
    if (usage) ok = ok && add_usage(root, usage);
    return finish(root, ok, "", "", NULL);
}

char *api_chunk_sse(enum api_kind kind, const char *id, long long created,
                    const char *model, const char *role, const char *text,
                    size_t text_len, const char *finish_reason,
                    const struct api_usage *usage, int usage_only, size_t *n) {
    int ok;
    cJSON *root = head(id, kind == API_CHAT ? "chat.completion.chunk" : "text_completion",
                       created, model, &ok);
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    ok = ok && choices;
    if (!usage_only && ok) {
        cJSON *c = cJSON_CreateObject();
        if (!c || !cJSON_AddItemToArray(choices, c)) {
            cJSON_Delete(c);
            ok = 0;
        }
        ok = ok && cJSON_AddNumberToObject(c, "index", 0);
        if (kind == API_CHAT) {
            cJSON *d = cJSON_AddObjectToObject(c, "delta");
            ok = ok && d;
            if (role) ok = ok && cJSON_AddStringToObject(d, "role", role);
            if (text) ok = ok && add_text(d, "content", text, text_len);
        } else {
            ok = ok && add_text(c, "text", text, text_len);
        }
        ok = ok && cJSON_AddNullToObject(c, "logprobs") &&
             add_str_or_null(c, "finish_reason", finish_reason);
    }
    if (usage) ok = ok && add_usage(root, usage);
    return finish(root, ok, "data: ", "\n\n", n);
}

char *api_models_json(const char *const *names, int n, long long created) {
    cJSON *root = cJSON_CreateObject();
    int ok = cJSON_AddStringToObject(root, "object", "list") != NULL;
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    ok = ok && data;
    for (int i = 0; ok && names && i < n; i++) {
        if (!names[i]) continue;
        cJSON *m = cJSON_CreateObject();
        if (!m || !cJSON_AddItemToArray(data, m)) {
            cJSON_Delete(m);
            ok = 0;
            break;
        }
        ok = cJSON_AddStringToObject(m, "id", names[i]) &&
             cJSON_AddStringToObject(m, "object", "model") &&
             cJSON_AddNumberToObject(m, "created", (double)created) &&
             cJSON_AddStringToObject(m, "owned_by", "llmpi");
    }
    return finish(root, ok, "", "", NULL);
}

char *api_error_json(const struct api_error *e) {
    if (!e) return NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(root, "error");
    int ok = o && cJSON_AddStringToObject(o, "message", e->message) &&
             cJSON_AddStringToObject(o, "type", e->type) &&
             add_str_or_null(o, "param", e->param) && add_str_or_null(o, "code", e->code);
    return finish(root, ok, "", "", NULL);
}
