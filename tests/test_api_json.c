/* tests/test_api_json.c — the JSON of the HTTP API (src/infer/api_json.*).
 *
 * Request bodies: every field read, the "not given" values when absent,
 * content arrays, stop as a string or an array, and every refusal with the
 * field it names (param) and OpenAI's error type. Response bodies, stream
 * chunks, the models list and error bodies are parsed back with cJSON and
 * checked field by field against OpenAI's shapes, with text holding quotes,
 * backslashes, newlines, control characters and multi-byte UTF-8. Run under
 * ASan (leaks included) in CI.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api_json.h"

/* ---- helpers ------------------------------------------------------------- */

static int parse_gen(const char *body, enum api_kind kind, struct api_gen_request *r,
                     struct api_error *e) {
    return api_parse_gen_request(body, strlen(body), kind, r, e);
}

/* body must be refused with 400 invalid_request_error naming `param`; the
 * message must contain `words` (when not NULL). */
static void refuse_kind(enum api_kind kind, const char *body, const char *param,
                        const char *words) {
    struct api_gen_request r;
    struct api_error e;
    memset(&e, 0, sizeof e);
    cr_assert_eq(parse_gen(body, kind, &r, &e), -1, "accepted: %s", body);
    cr_expect_eq(e.status, 400, "%s", body);
    cr_expect_str_eq(e.type, "invalid_request_error", "%s", body);
    cr_expect_str_eq(e.param, param, "%s: param %s", body, e.param);
    cr_expect_gt(strlen(e.message), 0);
    if (words)
        cr_expect_not_null(strstr(e.message, words), "%s: message '%s' lacks '%s'", body,
                           e.message, words);
    /* Freeing a refused request is safe (nothing left to free). */
    api_gen_request_free(&r);
}

static void refuse_chat(const char *body, const char *param, const char *words) {
    refuse_kind(API_CHAT, body, param, words);
}

static void refuse_comp(const char *body, const char *param, const char *words) {
    refuse_kind(API_COMPLETION, body, param, words);
}

/* A chat body {"model":"m","messages":[{"role":"user","content":"hi"}], extra}. */
static char *chat_with(const char *extra) {
    static char buf[2048];
    snprintf(
        buf, sizeof buf,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]%s%s}",
        *extra ? "," : "", extra);
    return buf;
}

static char *comp_with(const char *extra) {
    static char buf[2048];
    snprintf(buf, sizeof buf, "{\"model\":\"m\",\"prompt\":\"hi\"%s%s}",
             *extra ? "," : "", extra);
    return buf;
}

static const cJSON *get(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert_not_null(v, "missing field %s", k);
    return v;
}

static const char *get_str(const cJSON *o, const char *k) {
    const cJSON *v = get(o, k);
    cr_assert(cJSON_IsString(v), "%s is not a string", k);
    return v->valuestring;
}

static double get_num(const cJSON *o, const char *k) {
    const cJSON *v = get(o, k);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", k);
    return v->valuedouble;
}

static void expect_null(const cJSON *o, const char *k) {
    cr_expect(cJSON_IsNull(get(o, k)), "%s is not null", k);
}

static int n_fields(const cJSON *o) { return cJSON_GetArraySize(o); }

/* ---- chat requests ----------------------------------------------------------- */

Test(api_parse_chat, all_fields) {
    const char *body =
        "{\"model\":\"innkeeper\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"developer\",\"content\":\"dev\"},"
        "{\"role\":\"user\",\"content\":\"Hello \\\"there\\\"\\n\",\"name\":\"bob\"},"
        "{\"role\":\"assistant\",\"content\":null},"
        "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"x\"}],"
        "\"max_tokens\":50,\"temperature\":0.7,\"top_p\":0.9,\"top_k\":40,"
        "\"repetition_penalty\":1.1,\"seed\":9007199254740992,\"stop\":[\"\\n\",\"User:"
        "\"],"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"user\":\"u-1\","
        "\"n\":1,\"logprobs\":false,\"presence_penalty\":0,\"frequency_penalty\":0.0,"
        "\"response_format\":{\"type\":\"text\"},\"tools\":[],\"unknown_field\":{\"x\":["
        "1]}}";
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(parse_gen(body, API_CHAT, &r, &e), 0, "%s (%s)", e.message, e.param);
    cr_expect_eq(r.kind, API_CHAT);
    cr_expect_str_eq(r.model, "innkeeper");
    cr_assert_eq(r.n_messages, 5);
    const char *roles[] = {"system", "developer", "user", "assistant", "tool"};
    const char *contents[] = {"Be brief.", "dev", "Hello \"there\"\n", "", "42"};
    for (int i = 0; i < 5; i++) {
        cr_expect_str_eq(r.messages[i].role, roles[i]);
        cr_expect_str_eq(r.messages[i].content, contents[i]);
    }
    cr_expect_str_eq(r.messages[2].name, "bob");
    cr_expect_null(r.messages[0].name);
    cr_expect_null(r.prompt);
    cr_expect_eq(r.max_tokens, 50);
    cr_expect_float_eq(r.temperature, 0.7f, 1e-6);
    cr_expect_float_eq(r.top_p, 0.9f, 1e-6);
    cr_expect_eq(r.top_k, 40);
    cr_expect_float_eq(r.repetition_penalty, 1.1f, 1e-6);
    cr_expect_eq(r.has_seed, 1);
    cr_expect_eq(r.seed, 9007199254740992ULL);
    cr_assert_eq(r.n_stop, 2);
    cr_expect_str_eq(r.stop[0], "\n");
    cr_expect_str_eq(r.stop[1], "User:");
    cr_expect_eq(r.stream, 1);
    cr_expect_eq(r.include_usage, 1);
    cr_expect_str_eq(r.user, "u-1");
    api_gen_request_free(&r);
    cr_expect_null(r.model);
    api_gen_request_free(&r); /* twice is harmless */
}

Test(api_parse_chat, defaults_when_absent) {
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(parse_gen(chat_with(""), API_CHAT, &r, &e), 0, "%s", e.message);
    cr_expect_eq(r.max_tokens, -1);
    cr_expect_eq(r.temperature, -1);
    cr_expect_eq(r.top_p, -1);
    cr_expect_eq(r.top_k, -1);
    cr_expect_eq(r.repetition_penalty, -1);
    cr_expect_eq(r.has_seed, 0);
    cr_expect_eq(r.n_stop, 0);
    cr_expect_eq(r.stream, 0);
    cr_expect_eq(r.include_usage, 0);
    cr_expect_null(r.user);
    cr_expect_null(r.prompt);
    cr_assert_eq(r.n_messages, 1);
    cr_expect_str_eq(r.messages[0].role, "user");
    cr_expect_str_eq(r.messages[0].content, "hi");
    api_gen_request_free(&r);
}

Test(api_parse_chat, null_means_not_given) {
    struct api_gen_request r;
    struct api_error e;
    const char *extra = "\"max_tokens\":null,\"temperature\":null,\"top_p\":null,"
                        "\"top_k\":null,\"repetition_penalty\":null,\"seed\":null,"
                        "\"stop\":null,\"stream\":null,\"stream_options\":null,"
                        "\"user\":null,\"n\":null,\"logprobs\":null,\"echo\":null,"
                        "\"tools\":null,\"best_of\":null,\"suffix\":null,"
                        "\"response_format\":null,\"presence_penalty\":null,"
                        "\"frequency_penalty\":null,\"logit_bias\":null,"
                        "\"top_logprobs\":null,\"max_completion_tokens\":null";
    cr_assert_eq(parse_gen(chat_with(extra), API_CHAT, &r, &e), 0, "%s (%s)", e.message,
                 e.param);
    cr_expect_eq(r.max_tokens, -1);
    cr_expect_eq(r.temperature, -1);
    cr_expect_eq(r.has_seed, 0);
    cr_expect_eq(r.n_stop, 0);
    cr_expect_eq(r.stream, 0);
    api_gen_request_free(&r);
}

Test(api_parse_chat, edges_of_ranges) {
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(parse_gen(chat_with("\"max_tokens\":1073741824,\"temperature\":0,"
                                     "\"top_p\":1,\"top_k\":0,\"repetition_penalty\":100,"
                                     "\"seed\":0"),
                           API_CHAT, &r, &e),
                 0, "%s", e.message);
    cr_expect_eq(r.max_tokens, 1073741824);
    cr_expect_eq(r.temperature, 0);
    cr_expect_eq(r.top_p, 1);
    cr_expect_eq(r.top_k, 0);
    cr_expect_eq(r.repetition_penalty, 100);
    cr_expect_eq(r.has_seed, 1);
    cr_expect_eq(r.seed, 0);
    api_gen_request_free(&r);
    /* integral values written as floats or exponents are integers */
    cr_assert_eq(parse_gen(chat_with("\"max_tokens\":1e3,\"temperature\":2,"
                                     "\"top_k\":1048576,\"seed\":5.0"),
                           API_CHAT, &r, &e),
                 0, "%s", e.message);
    cr_expect_eq(r.max_tokens, 1000);
    cr_expect_eq(r.temperature, 2);
    cr_expect_eq(r.top_k, 1 << 20);
    cr_expect_eq(r.seed, 5);
    api_gen_request_free(&r);
}

Test(api_parse_chat, max_completion_tokens) {
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(parse_gen(chat_with("\"max_completion_tokens\":7"), API_CHAT, &r, &e),
                 0);
    cr_expect_eq(r.max_tokens, 7);
    api_gen_request_free(&r);
    cr_assert_eq(parse_gen(chat_with("\"max_tokens\":9,\"max_completion_tokens\":7"),
                           API_CHAT, &r, &e),
                 0);
    cr_expect_eq(r.max_tokens, 7);
    api_gen_request_free(&r);
    refuse_chat(chat_with("\"max_completion_tokens\":0"), "max_completion_tokens",
                "max_completion_tokens must be an integer from 1 to 1073741824");
}

Test(api_parse_chat, content_arrays) {
    const char *body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"one\"},{\"type\":\"text\",\"text\":\"two\"}]},"
        "{\"role\":\"system\",\"content\":[]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"\\u00e9\\ud83d\\ude00\"}]}]}";
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(parse_gen(body, API_CHAT, &r, &e), 0, "%s (%s)", e.message, e.param);
    cr_assert_eq(r.n_messages, 3);
    cr_expect_str_eq(r.messages[0].content, "one\ntwo");
    cr_expect_str_eq(r.messages[1].content, "");
    cr_expect_str_eq(r.messages[2].content, "\xc3\xa9\xf0\x9f\x98\x80");
    api_gen_request_free(&r);
}

Test(api_parse_chat, stop_string_or_array) {
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(parse_gen(chat_with("\"stop\":\"END\""), API_CHAT, &r, &e), 0);
    cr_assert_eq(r.n_stop, 1);
    cr_expect_str_eq(r.stop[0], "END");
    api_gen_request_free(&r);
    cr_assert_eq(
        parse_gen(chat_with("\"stop\":[\"a\",\"b\",\"c\",\"d\"]"), API_CHAT, &r, &e), 0);
    cr_assert_eq(r.n_stop, 4);
    cr_expect_str_eq(r.stop[3], "d");
    api_gen_request_free(&r);
    cr_assert_eq(parse_gen(chat_with("\"stop\":[]"), API_CHAT, &r, &e), 0);
    cr_expect_eq(r.n_stop, 0);
    api_gen_request_free(&r);
}

Test(api_parse_chat, whitespace_and_unterminated_buffer) {
    /* The body need not be NUL-terminated: parse only the first len bytes. */
    char buf[256];
    const char *body = " \n{\"model\":\"m\",\"prompt\":\"p\"}\r\n ";
    size_t n = strlen(body);
    memcpy(buf, body, n);
    memset(buf + n, 'x', sizeof buf - n);
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(api_parse_gen_request(buf, n, API_COMPLETION, &r, &e), 0, "%s",
                 e.message);
    cr_expect_str_eq(r.prompt, "p");
    api_gen_request_free(&r);
    /* ...and the bytes after len are not read as part of it */
    cr_expect_eq(api_parse_gen_request(buf, n + 1, API_COMPLETION, &r, &e), -1);
    cr_expect_str_eq(e.param, "");
}

/* ---- completion requests ---------------------------------------------------- */

Test(api_parse_completion, prompt_forms) {
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(parse_gen(comp_with("\"max_tokens\":3,\"echo\":false,\"suffix\":\"\","
                                     "\"best_of\":1,\"logprobs\":null"),
                           API_COMPLETION, &r, &e),
                 0, "%s", e.message);
    cr_expect_eq(r.kind, API_COMPLETION);
    cr_expect_str_eq(r.prompt, "hi");
    cr_expect_eq(r.n_messages, 0);
    cr_expect_null(r.messages);
    cr_expect_eq(r.max_tokens, 3);
    api_gen_request_free(&r);
    cr_assert_eq(
        parse_gen("{\"model\":\"m\",\"prompt\":[\"only one\"]}", API_COMPLETION, &r, &e),
        0);
    cr_expect_str_eq(r.prompt, "only one");
    api_gen_request_free(&r);
    cr_assert_eq(parse_gen("{\"model\":\"m\",\"prompt\":\"\"}", API_COMPLETION, &r, &e),
                 0);
    cr_expect_str_eq(r.prompt, "");
    api_gen_request_free(&r);
    /* messages are a chat field: ignored by /v1/completions, as unknown fields are */
    cr_assert_eq(parse_gen("{\"model\":\"m\",\"prompt\":\"x\",\"messages\":5}",
                           API_COMPLETION, &r, &e),
                 0);
    api_gen_request_free(&r);
}

Test(api_parse_completion, refusals) {
    refuse_comp("{\"model\":\"m\"}", "prompt", "prompt is required");
    refuse_comp("{\"model\":\"m\",\"prompt\":null}", "prompt", "prompt is required");
    const char *one = "prompt must be a string or an array of one string";
    refuse_comp("{\"model\":\"m\",\"prompt\":5}", "prompt", one);
    refuse_comp("{\"model\":\"m\",\"prompt\":[]}", "prompt", one);
    refuse_comp("{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", "prompt", one);
    refuse_comp("{\"model\":\"m\",\"prompt\":[1,2,3]}", "prompt", one);
    refuse_comp("{\"model\":\"m\",\"prompt\":[[1]]}", "prompt", one);
    refuse_comp("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                "prompt", NULL);
    refuse_comp(comp_with("\"echo\":true"), "echo",
                "echo is not supported by this server");
    refuse_comp(comp_with("\"echo\":1"), "echo", "echo must be true or false");
    refuse_comp(comp_with("\"suffix\":\"end\""), "suffix",
                "suffix is not supported by this server");
    refuse_comp(comp_with("\"best_of\":2"), "best_of",
                "best_of is not supported by this server");
    refuse_comp(comp_with("\"logprobs\":0"), "logprobs",
                "logprobs is not supported by this server");
    refuse_comp(comp_with("\"logprobs\":5"), "logprobs",
                "logprobs is not supported by this server");
    refuse_comp(comp_with("\"max_tokens\":0"), "max_tokens",
                "max_tokens must be an integer from 1 to 1073741824");
}

/* ---- refusals common to both ------------------------------------------------- */

Test(api_parse_chat, refuses_bad_bodies) {
    refuse_chat("", "", "request body is empty");
    refuse_chat("  ", "", "not valid JSON");
    refuse_chat("{", "", "not valid JSON");
    refuse_chat("{\"model\":\"m\",}", "", "not valid JSON");
    refuse_chat("[1,2]", "", "must be a JSON object");
    refuse_chat("\"str\"", "", "must be a JSON object");
    refuse_chat("null", "", "must be a JSON object");
    refuse_chat("{} {}", "", "after the JSON value");
    refuse_chat("{}x", "", "after the JSON value");
    refuse_chat("{\"model\":\"m\xff\"}", "", "UTF-8");
    refuse_chat("{\"model\":\"\xc0\xaf\"}", "", "UTF-8");         /* overlong '/' */
    refuse_chat("{\"model\":\"\xed\xa0\x80\"}", "", "UTF-8");     /* a surrogate */
    refuse_chat("{\"model\":\"\xf4\x90\x80\x80\"}", "", "UTF-8"); /* past U+10FFFF */
    refuse_chat("{\"model\":\"\xe2\x82\"}", "", "UTF-8");         /* cut short */
    refuse_chat("{\"model\":\"a\\u0000b\"}", "", "NUL");
    refuse_chat("{\"model\":\"\\ud800\"}", "", "not valid JSON"); /* lone surrogate */
    /* an escaped backslash before u0000 is text, not a NUL */
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(
        parse_gen("{\"model\":\"a\\\\u0000\",\"prompt\":\"p\"}", API_COMPLETION, &r, &e),
        0, "%s", e.message);
    cr_expect_str_eq(r.model, "a\\u0000");
    api_gen_request_free(&r);
    /* a NUL byte inside the body */
    const char nul[] = "{\"model\":\"m\0\",\"prompt\":\"p\"}";
    memset(&e, 0, sizeof e);
    cr_expect_eq(api_parse_gen_request(nul, sizeof nul - 1, API_COMPLETION, &r, &e), -1);
    cr_expect_eq(e.status, 400);
    /* deep nesting: refused by cJSON's nesting limit, not a stack overflow */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    size_t k = (size_t)sprintf(deep, "{\"model\":\"m\",\"x\":");
    for (size_t i = 0; i < depth; i++)
        deep[k++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    cr_expect_eq(api_parse_gen_request(deep, k, API_CHAT, &r, &e), -1);
    cr_expect_eq(e.status, 400);
    free(deep);
}

Test(api_parse_chat, refuses_model) {
    refuse_chat("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model",
                "model is required");
    refuse_chat("{\"model\":null}", "model", "model is required");
    refuse_chat("{\"model\":\"\"}", "model", "model must not be empty");
    refuse_chat("{\"model\":3}", "model", "model must be a non-empty string");
}

Test(api_parse_chat, refuses_messages) {
    refuse_chat("{\"model\":\"m\"}", "messages", "messages is required");
    refuse_chat("{\"model\":\"m\",\"messages\":[]}", "messages", "non-empty array");
    refuse_chat("{\"model\":\"m\",\"messages\":{}}", "messages", "non-empty array");
    refuse_chat("{\"model\":\"m\",\"messages\":\"hi\"}", "messages", "non-empty array");
    refuse_chat("{\"model\":\"m\",\"messages\":[\"hi\"]}", "messages[0]",
                "must be an object");
    const char *roles = "must be one of system, user, assistant, developer, tool";
    refuse_chat(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"user\",\"content\":\"b\"},{\"role\":\"wizard\",\"content\":\"c\"}]}",
        "messages[2].role", roles);
    refuse_chat(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}",
        "messages[0].role", roles);
    refuse_chat("{\"model\":\"m\",\"messages\":[{\"role\":\"User\",\"content\":\"x\"}]}",
                "messages[0].role", roles);
    refuse_chat("{\"model\":\"m\",\"messages\":[{\"role\":1,\"content\":\"x\"}]}",
                "messages[0].role", roles);
    refuse_chat("{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}",
                "messages[0].role", "messages[0].role is required");
    refuse_chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}",
                "messages[0].content", "messages[0].content is required");
    refuse_chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null}]}",
                "messages[0].content", "is required");
    refuse_chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
                "messages[0].content", "a string or an array of content parts");
    refuse_chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\","
                "\"name\":7}]}",
                "messages[0].name", "must be a string");
}

Test(api_parse_chat, refuses_content_parts) {
    const char *pre =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"},";
    char body[512];
    snprintf(body, sizeof body, "%s%s]}]}", pre,
             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x\"}}");
    refuse_chat(body, "messages[1].content[1].type", "only text content is supported");
    snprintf(body, sizeof body, "%s%s]}]}", pre, "{\"type\":\"input_audio\"}");
    refuse_chat(body, "messages[1].content[1].type", "only text content is supported");
    snprintf(body, sizeof body, "%s%s]}]}", pre, "{\"text\":\"no type\"}");
    refuse_chat(body, "messages[1].content[1].type", "must be a string");
    snprintf(body, sizeof body, "%s%s]}]}", pre, "{\"type\":\"text\"}");
    refuse_chat(body, "messages[1].content[1].text", "must be a string");
    snprintf(body, sizeof body, "%s%s]}]}", pre, "{\"type\":\"text\",\"text\":[\"x\"]}");
    refuse_chat(body, "messages[1].content[1].text", "must be a string");
    snprintf(body, sizeof body, "%s%s]}]}", pre, "\"bare string\"");
    refuse_chat(body, "messages[1].content[1]", "must be an object");
}

Test(api_parse_chat, refuses_out_of_range) {
    const char *mt = "max_tokens must be an integer from 1 to 1073741824";
    refuse_chat(chat_with("\"max_tokens\":0"), "max_tokens", mt);
    refuse_chat(chat_with("\"max_tokens\":-5"), "max_tokens", mt);
    refuse_chat(chat_with("\"max_tokens\":1073741825"), "max_tokens", mt);
    refuse_chat(chat_with("\"max_tokens\":1.5"), "max_tokens", mt);
    refuse_chat(chat_with("\"max_tokens\":\"10\""), "max_tokens", mt);
    refuse_chat(chat_with("\"max_tokens\":true"), "max_tokens", mt);
    refuse_chat(chat_with("\"max_tokens\":1e999"), "max_tokens", mt);
    refuse_chat(chat_with("\"max_tokens\":-1e999"), "max_tokens", mt);
    refuse_chat(chat_with("\"max_tokens\":1e300"), "max_tokens", mt);
    refuse_chat(chat_with("\"max_tokens\":"
                          "99999999999999999999999999999999999999999999999999999999"),
                "max_tokens", mt);
    const char *temp = "temperature must be a number from 0 to 2";
    refuse_chat(chat_with("\"temperature\":-0.1"), "temperature", temp);
    refuse_chat(chat_with("\"temperature\":2.01"), "temperature", temp);
    refuse_chat(chat_with("\"temperature\":\"hot\""), "temperature", temp);
    refuse_chat(chat_with("\"temperature\":1e999"), "temperature", temp);
    const char *topp = "top_p must be a number greater than 0 and at most 1";
    refuse_chat(chat_with("\"top_p\":0"), "top_p", topp);
    refuse_chat(chat_with("\"top_p\":1.0001"), "top_p", topp);
    refuse_chat(chat_with("\"top_p\":[]"), "top_p", topp);
    refuse_chat(chat_with("\"top_p\":1e-50"), "top_p", topp); /* 0 as a float */
    const char *topk = "top_k must be an integer from 0 to 1048576";
    refuse_chat(chat_with("\"top_k\":-1"), "top_k", topk);
    refuse_chat(chat_with("\"top_k\":1048577"), "top_k", topk);
    refuse_chat(chat_with("\"top_k\":2.5"), "top_k", topk);
    const char *rep =
        "repetition_penalty must be a number greater than 0 and at most 100";
    refuse_chat(chat_with("\"repetition_penalty\":0"), "repetition_penalty", rep);
    refuse_chat(chat_with("\"repetition_penalty\":-1"), "repetition_penalty", rep);
    refuse_chat(chat_with("\"repetition_penalty\":100.5"), "repetition_penalty", rep);
    refuse_chat(chat_with("\"repetition_penalty\":1e-60"), "repetition_penalty", rep);
    const char *seed = "seed must be an integer from 0 to 9007199254740992";
    refuse_chat(chat_with("\"seed\":-1"), "seed", seed);
    refuse_chat(chat_with("\"seed\":18014398509481984"), "seed", seed);
    refuse_chat(chat_with("\"seed\":0.5"), "seed", seed);
    refuse_chat(chat_with("\"seed\":\"1\""), "seed", seed);
    refuse_chat(chat_with("\"n\":2"), "n", "n must be 1");
    refuse_chat(chat_with("\"n\":0"), "n", "n must be 1");
    refuse_chat(chat_with("\"n\":\"1\""), "n", "n must be 1");
}

Test(api_parse_chat, refuses_stop) {
    const char *msg = "stop must be a non-empty string or an array of at most 4";
    refuse_chat(chat_with("\"stop\":\"\""), "stop", msg);
    refuse_chat(chat_with("\"stop\":5"), "stop", msg);
    refuse_chat(chat_with("\"stop\":{}"), "stop", msg);
    refuse_chat(chat_with("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), "stop", msg);
    refuse_chat(chat_with("\"stop\":[\"a\",\"\"]"), "stop", msg);
    refuse_chat(chat_with("\"stop\":[\"a\",null]"), "stop", msg);
    refuse_chat(chat_with("\"stop\":[[\"a\"]]"), "stop", msg);
}

Test(api_parse_chat, refuses_other_types) {
    refuse_chat(chat_with("\"stream\":1"), "stream", "stream must be true or false");
    refuse_chat(chat_with("\"stream\":\"true\""), "stream",
                "stream must be true or false");
    refuse_chat(chat_with("\"stream_options\":true"), "stream_options",
                "stream_options must be an object");
    refuse_chat(chat_with("\"stream\":true,\"stream_options\":{\"include_usage\":1}"),
                "stream_options.include_usage",
                "stream_options.include_usage must be true or false");
    refuse_chat(chat_with("\"user\":5"), "user", "user must be a string");
}

Test(api_parse_chat, refuses_unsupported) {
    const char *ns = "is not supported by this server";
    refuse_chat(chat_with("\"logprobs\":true"), "logprobs", "logprobs is not supported");
    refuse_chat(chat_with("\"top_logprobs\":3"), "top_logprobs", ns);
    refuse_chat(
        chat_with("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"),
        "tools", "tools is not supported by this server");
    refuse_chat(chat_with("\"tools\":{}"), "tools", ns);
    refuse_chat(chat_with("\"functions\":[{\"name\":\"f\"}]"), "functions", ns);
    refuse_chat(chat_with("\"logit_bias\":{\"50256\":-100}"), "logit_bias", ns);
    refuse_chat(chat_with("\"response_format\":{\"type\":\"json_object\"}"),
                "response_format", ns);
    refuse_chat(
        chat_with("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}"),
        "response_format", ns);
    refuse_chat(chat_with("\"response_format\":\"text\""), "response_format",
                "response_format must be an object");
    refuse_chat(chat_with("\"response_format\":{}"), "response_format.type",
                "must be a string");
    refuse_chat(chat_with("\"presence_penalty\":0.5"), "presence_penalty",
                "presence_penalty is not supported by this server (only 0)");
    refuse_chat(chat_with("\"frequency_penalty\":-1"), "frequency_penalty",
                "frequency_penalty is not supported by this server (only 0)");
    refuse_chat(chat_with("\"presence_penalty\":3"), "presence_penalty",
                "presence_penalty must be a number from -2 to 2");
    refuse_chat(chat_with("\"frequency_penalty\":\"0\""), "frequency_penalty",
                "frequency_penalty must be a number from -2 to 2");
    /* unsupported features carry a code, as OpenAI's do */
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(parse_gen(chat_with("\"tools\":[1]"), API_CHAT, &r, &e), -1);
    cr_expect_str_eq(e.code, "unsupported_parameter");
}

/* ---- conversation bodies ---------------------------------------------------- */

Test(api_parse_conv, create) {
    struct api_conv_create c;
    struct api_error e;
    const char *b =
        "{\"scenario\":\"tavern\",\"opening\":\"Welcome \\u00e0 tous\",\"turns\":6}";
    cr_assert_eq(api_parse_conv_create(b, strlen(b), &c, &e), 0, "%s", e.message);
    cr_expect_str_eq(c.scenario, "tavern");
    cr_expect_str_eq(c.opening, "Welcome \xc3\xa0 tous");
    cr_expect_eq(c.turns, 6);
    api_conv_create_free(&c);
    b = "{\"scenario\":\"s\"}";
    cr_assert_eq(api_parse_conv_create(b, strlen(b), &c, &e), 0);
    cr_expect_null(c.opening);
    cr_expect_eq(c.turns, 0);
    api_conv_create_free(&c);
    b = "{\"scenario\":\"s\",\"turns\":0,\"opening\":null}";
    cr_assert_eq(api_parse_conv_create(b, strlen(b), &c, &e), 0);
    cr_expect_eq(c.turns, 0);
    api_conv_create_free(&c);

    struct {
        const char *body, *param, *words;
    } bad[] = {
        {"{}", "scenario", "scenario is required"},
        {"{\"scenario\":\"\"}", "scenario", "must not be empty"},
        {"{\"scenario\":1}", "scenario", "must be a non-empty string"},
        {"{\"scenario\":\"s\",\"opening\":3}", "opening", "must be a non-empty string"},
        {"{\"scenario\":\"s\",\"opening\":\"\"}", "opening", "must not be empty"},
        {"{\"scenario\":\"s\",\"turns\":-1}", "turns",
         "turns must be an integer from 0 to"},
        {"{\"scenario\":\"s\",\"turns\":2.5}", "turns", "integer"},
        {"{\"scenario\":\"s\",\"turns\":1e10}", "turns", "integer"},
        {"[]", "", "JSON object"},
        {"{\"scenario\":\"s\"", "", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&e, 0, sizeof e);
        cr_assert_eq(api_parse_conv_create(bad[i].body, strlen(bad[i].body), &c, &e), -1,
                     "%s", bad[i].body);
        cr_expect_eq(e.status, 400);
        cr_expect_str_eq(e.param, bad[i].param, "%s", bad[i].body);
        cr_expect_not_null(strstr(e.message, bad[i].words), "%s: %s", bad[i].body,
                           e.message);
        api_conv_create_free(&c);
    }
}

Test(api_parse_conv, post) {
    struct api_conv_post p;
    struct api_error e;
    const char *b = "{\"content\":\"Hello, \\\"innkeeper\\\"!\",\"from\":\"Bob_1.x-y\"}";
    cr_assert_eq(api_parse_conv_post(b, strlen(b), &p, &e), 0, "%s", e.message);
    cr_expect_str_eq(p.content, "Hello, \"innkeeper\"!");
    cr_expect_str_eq(p.from, "Bob_1.x-y");
    cr_expect_eq(p.conversation, -1);
    api_conv_post_free(&p);
    b = "{\"content\":\"x\",\"conversation\":12,\"from\":null}";
    cr_assert_eq(api_parse_conv_post(b, strlen(b), &p, &e), 0, "%s", e.message);
    cr_expect_null(p.from);
    cr_expect_eq(p.conversation, 12);
    api_conv_post_free(&p);
    char from64[100];
    snprintf(from64, sizeof from64, "{\"content\":\"x\",\"from\":\"%064d\"}", 0);
    cr_assert_eq(api_parse_conv_post(from64, strlen(from64), &p, &e), 0);
    cr_expect_eq(strlen(p.from), 64);
    api_conv_post_free(&p);

    char from65[100];
    snprintf(from65, sizeof from65, "{\"content\":\"x\",\"from\":\"%065d\"}", 0);
    struct {
        const char *body, *param, *words;
    } bad[] = {
        {"{}", "content", "content is required"},
        {"{\"content\":\"\"}", "content", "must not be empty"},
        {"{\"content\":[\"x\"]}", "content", "must be a non-empty string"},
        {"{\"content\":\"x\",\"from\":\"\"}", "from", "1 to 64 characters"},
        {"{\"content\":\"x\",\"from\":\"a b\"}", "from", "1 to 64 characters"},
        {"{\"content\":\"x\",\"from\":\"a/b\"}", "from", "1 to 64 characters"},
        {"{\"content\":\"x\",\"from\":\"\\u00e9\"}", "from", "1 to 64 characters"},
        {"{\"content\":\"x\",\"from\":5}", "from", "1 to 64 characters"},
        {from65, "from", "1 to 64 characters"},
        {"{\"content\":\"x\",\"conversation\":0}", "conversation",
         "conversation must be an integer from 1 to 9007199254740992"},
        {"{\"content\":\"x\",\"conversation\":-3}", "conversation", "integer"},
        {"{\"content\":\"x\",\"conversation\":\"3\"}", "conversation", "integer"},
        {"{\"content\":\"x\",\"conversation\":1e300}", "conversation", "integer"},
        {"", "", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&e, 0, sizeof e);
        cr_assert_eq(api_parse_conv_post(bad[i].body, strlen(bad[i].body), &p, &e), -1,
                     "%s", bad[i].body);
        cr_expect_eq(e.status, 400);
        cr_expect_str_eq(e.type, "invalid_request_error");
        cr_expect_str_eq(e.param, bad[i].param, "%s", bad[i].body);
        cr_expect_not_null(strstr(e.message, bad[i].words), "%s: %s", bad[i].body,
                           e.message);
        cr_expect_eq(p.conversation, -1);
        api_conv_post_free(&p);
    }
}

/* ---- writing ----------------------------------------------------------------- */

/* Quotes, backslash, newline, tab, a control character, 2/3/4-byte UTF-8. */
static const char TRICKY[] =
    "say \"hi\"\\ \n\tbell\x01 caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 "
    "\xf0\x9f\x98\x80 </script>";

Test(api_write, chat_response) {
    struct api_usage u = {.prompt_tokens = 12, .completion_tokens = 5};
    char *s = api_response_json(API_CHAT, "chatcmpl-12", 1700000000LL, "innkeeper",
                                TRICKY, strlen(TRICKY), "stop", &u);
    cr_assert_not_null(s);
    cr_expect_null(strchr(s, '\n'));
    cJSON *j = cJSON_Parse(s);
    cr_assert_not_null(j, "%s", s);
    cr_expect_str_eq(get_str(j, "id"), "chatcmpl-12");
    cr_expect_str_eq(get_str(j, "object"), "chat.completion");
    cr_expect_eq(get_num(j, "created"), 1700000000.0);
    cr_expect_str_eq(get_str(j, "model"), "innkeeper");
    const cJSON *ch = get(j, "choices");
    cr_assert(cJSON_IsArray(ch));
    cr_assert_eq(cJSON_GetArraySize(ch), 1);
    const cJSON *c0 = cJSON_GetArrayItem(ch, 0);
    cr_expect_eq(get_num(c0, "index"), 0);
    cr_expect_str_eq(get_str(c0, "finish_reason"), "stop");
    expect_null(c0, "logprobs");
    const cJSON *m = get(c0, "message");
    cr_expect_str_eq(get_str(m, "role"), "assistant");
    cr_expect_str_eq(get_str(m, "content"), TRICKY);
    const cJSON *us = get(j, "usage");
    cr_expect_eq(get_num(us, "prompt_tokens"), 12);
    cr_expect_eq(get_num(us, "completion_tokens"), 5);
    cr_expect_eq(get_num(us, "total_tokens"), 17);
    cr_expect_eq(n_fields(j), 6);
    cJSON_Delete(j);
    free(s);
}

Test(api_write, completion_response) {
    struct api_usage u = {.prompt_tokens = 3, .completion_tokens = 1};
    /* text_len counts: only the first 4 bytes are the text */
    char *s =
        api_response_json(API_COMPLETION, "cmpl-7", 5, "m", "abcdXYZ", 4, "length", &u);
    cr_assert_not_null(s);
    cJSON *j = cJSON_Parse(s);
    cr_assert_not_null(j, "%s", s);
    cr_expect_str_eq(get_str(j, "id"), "cmpl-7");
    cr_expect_str_eq(get_str(j, "object"), "text_completion");
    cr_expect_eq(get_num(j, "created"), 5);
    cr_expect_str_eq(get_str(j, "model"), "m");
    const cJSON *c0 = cJSON_GetArrayItem(get(j, "choices"), 0);
    cr_assert_not_null(c0);
    cr_expect_str_eq(get_str(c0, "text"), "abcd");
    cr_expect_eq(get_num(c0, "index"), 0);
    cr_expect_str_eq(get_str(c0, "finish_reason"), "length");
    expect_null(c0, "logprobs");
    cr_expect_eq(get_num(get(j, "usage"), "total_tokens"), 4);
    cJSON_Delete(j);
    free(s);
    /* empty text, no finish reason, no usage */
    s = api_response_json(API_COMPLETION, "cmpl-8", 5, "m", NULL, 0, NULL, NULL);
    cr_assert_not_null(s);
    j = cJSON_Parse(s);
    cr_assert_not_null(j);
    c0 = cJSON_GetArrayItem(get(j, "choices"), 0);
    cr_expect_str_eq(get_str(c0, "text"), "");
    expect_null(c0, "finish_reason");
    cr_expect_null(cJSON_GetObjectItem(j, "usage"));
    cJSON_Delete(j);
    free(s);
}

/* The JSON of one "data: {...}\n\n" event. */
static cJSON *sse_json(const char *s, size_t n) {
    cr_assert_not_null(s);
    cr_assert_eq(n, strlen(s));
    cr_assert(n > 8 && !strncmp(s, "data: ", 6), "%s", s);
    cr_assert(!strcmp(s + n - 2, "\n\n"), "%s", s);
    cr_assert_null(memchr(s, '\n', n - 2), "a newline inside the event: %s", s);
    cJSON *j = cJSON_ParseWithLength(s + 6, n - 8);
    cr_assert_not_null(j, "%s", s);
    return j;
}

static const cJSON *chunk_choice(const cJSON *j, const char *object) {
    cr_expect_str_eq(get_str(j, "id"), "chatcmpl-1");
    cr_expect_str_eq(get_str(j, "object"), object);
    cr_expect_eq(get_num(j, "created"), 1700000001.0);
    cr_expect_str_eq(get_str(j, "model"), "npc");
    const cJSON *ch = get(j, "choices");
    cr_assert(cJSON_IsArray(ch));
    cr_assert_eq(cJSON_GetArraySize(ch), 1);
    const cJSON *c0 = cJSON_GetArrayItem(ch, 0);
    cr_expect_eq(get_num(c0, "index"), 0);
    expect_null(c0, "logprobs");
    return c0;
}

Test(api_write, chat_chunks) {
    size_t n;
    /* first chunk: the role */
    char *s = api_chunk_sse(API_CHAT, "chatcmpl-1", 1700000001LL, "npc", "assistant",
                            NULL, 0, NULL, NULL, 0, &n);
    cJSON *j = sse_json(s, n);
    const cJSON *c0 = chunk_choice(j, "chat.completion.chunk");
    const cJSON *d = get(c0, "delta");
    cr_expect_str_eq(get_str(d, "role"), "assistant");
    cr_expect_null(cJSON_GetObjectItem(d, "content"));
    expect_null(c0, "finish_reason");
    cr_expect_null(cJSON_GetObjectItem(j, "usage"));
    cJSON_Delete(j);
    free(s);
    /* content chunks, the tricky text and an empty one */
    s = api_chunk_sse(API_CHAT, "chatcmpl-1", 1700000001LL, "npc", NULL, TRICKY,
                      strlen(TRICKY), NULL, NULL, 0, &n);
    j = sse_json(s, n);
    d = get(chunk_choice(j, "chat.completion.chunk"), "delta");
    cr_expect_str_eq(get_str(d, "content"), TRICKY);
    cr_expect_null(cJSON_GetObjectItem(d, "role"));
    cr_expect_eq(n_fields(d), 1);
    cJSON_Delete(j);
    free(s);
    s = api_chunk_sse(API_CHAT, "chatcmpl-1", 1700000001LL, "npc", NULL, "", 0, NULL,
                      NULL, 0, &n);
    j = sse_json(s, n);
    cr_expect_str_eq(
        get_str(get(chunk_choice(j, "chat.completion.chunk"), "delta"), "content"), "");
    cJSON_Delete(j);
    free(s);
    /* last chunk: empty delta, finish_reason, usage */
    struct api_usage u = {.prompt_tokens = 4, .completion_tokens = 9};
    s = api_chunk_sse(API_CHAT, "chatcmpl-1", 1700000001LL, "npc", NULL, NULL, 0,
                      "length", &u, 0, &n);
    j = sse_json(s, n);
    c0 = chunk_choice(j, "chat.completion.chunk");
    d = get(c0, "delta");
    cr_expect(cJSON_IsObject(d));
    cr_expect_eq(n_fields(d), 0);
    cr_expect_str_eq(get_str(c0, "finish_reason"), "length");
    cr_expect_eq(get_num(get(j, "usage"), "total_tokens"), 13);
    cJSON_Delete(j);
    free(s);
    /* include_usage's final chunk: choices [] and usage */
    s = api_chunk_sse(API_CHAT, "chatcmpl-1", 1700000001LL, "npc", NULL, NULL, 0, NULL,
                      &u, 1, &n);
    j = sse_json(s, n);
    cr_expect_str_eq(get_str(j, "object"), "chat.completion.chunk");
    cr_expect(cJSON_IsArray(get(j, "choices")));
    cr_expect_eq(cJSON_GetArraySize(get(j, "choices")), 0);
    const cJSON *us = get(j, "usage");
    cr_expect_eq(get_num(us, "prompt_tokens"), 4);
    cr_expect_eq(get_num(us, "completion_tokens"), 9);
    cr_expect_eq(get_num(us, "total_tokens"), 13);
    cJSON_Delete(j);
    free(s);
    cr_expect_str_eq(API_SSE_DONE, "data: [DONE]\n\n");
}

Test(api_write, completion_chunks) {
    size_t n;
    char *s = api_chunk_sse(API_COMPLETION, "chatcmpl-1", 1700000001LL, "npc", NULL,
                            TRICKY, strlen(TRICKY), NULL, NULL, 0, &n);
    cJSON *j = sse_json(s, n);
    const cJSON *c0 = chunk_choice(j, "text_completion");
    cr_expect_str_eq(get_str(c0, "text"), TRICKY);
    expect_null(c0, "finish_reason");
    cr_expect_null(cJSON_GetObjectItem(c0, "delta"));
    cJSON_Delete(j);
    free(s);
    struct api_usage u = {.prompt_tokens = 1, .completion_tokens = 2};
    s = api_chunk_sse(API_COMPLETION, "chatcmpl-1", 1700000001LL, "npc", NULL, NULL, 0,
                      "stop", &u, 0, &n);
    j = sse_json(s, n);
    c0 = chunk_choice(j, "text_completion");
    cr_expect_str_eq(get_str(c0, "text"), "");
    cr_expect_str_eq(get_str(c0, "finish_reason"), "stop");
    cr_expect_eq(get_num(get(j, "usage"), "total_tokens"), 3);
    cJSON_Delete(j);
    free(s);
    s = api_chunk_sse(API_COMPLETION, "chatcmpl-1", 1700000001LL, "npc", NULL, NULL, 0,
                      NULL, &u, 1, &n);
    j = sse_json(s, n);
    cr_expect_eq(cJSON_GetArraySize(get(j, "choices")), 0);
    cr_expect_eq(get_num(get(j, "usage"), "prompt_tokens"), 1);
    cJSON_Delete(j);
    free(s);
}

Test(api_write, models) {
    const char *names[] = {"innkeeper", "black\"smith", "\xe5\xb0\x8f"};
    char *s = api_models_json(names, 3, 1700000002LL);
    cr_assert_not_null(s);
    cJSON *j = cJSON_Parse(s);
    cr_assert_not_null(j, "%s", s);
    cr_expect_str_eq(get_str(j, "object"), "list");
    const cJSON *data = get(j, "data");
    cr_assert(cJSON_IsArray(data));
    cr_assert_eq(cJSON_GetArraySize(data), 3);
    for (int i = 0; i < 3; i++) {
        const cJSON *m = cJSON_GetArrayItem(data, i);
        cr_expect_str_eq(get_str(m, "id"), names[i]);
        cr_expect_str_eq(get_str(m, "object"), "model");
        cr_expect_eq(get_num(m, "created"), 1700000002.0);
        cr_expect_str_eq(get_str(m, "owned_by"), "llmpi");
        cr_expect_eq(n_fields(m), 4);
    }
    cJSON_Delete(j);
    free(s);
    s = api_models_json(NULL, 0, 0);
    cr_assert_not_null(s);
    cr_expect_str_eq(s, "{\"object\":\"list\",\"data\":[]}");
    free(s);
}

Test(api_write, errors) {
    struct api_error e;
    cr_expect_eq(api_error_set(&e, 400, "invalid_request_error", "messages[2].role", "",
                               "bad \"%s\"\n%d \xc3\xa9", "role", 2),
                 -1);
    char *s = api_error_json(&e);
    cr_assert_not_null(s);
    cJSON *j = cJSON_Parse(s);
    cr_assert_not_null(j, "%s", s);
    cr_expect_eq(n_fields(j), 1);
    const cJSON *o = get(j, "error");
    cr_expect_str_eq(get_str(o, "message"), "bad \"role\"\n2 \xc3\xa9");
    cr_expect_str_eq(get_str(o, "type"), "invalid_request_error");
    cr_expect_str_eq(get_str(o, "param"), "messages[2].role");
    expect_null(o, "code");
    cr_expect_eq(n_fields(o), 4);
    cJSON_Delete(j);
    free(s);

    api_error_set(&e, 401, "authentication_error", "", "invalid_api_key",
                  "Incorrect API key");
    cr_expect_eq(e.status, 401);
    s = api_error_json(&e);
    j = cJSON_Parse(s);
    cr_assert_not_null(j);
    o = get(j, "error");
    expect_null(o, "param");
    cr_expect_str_eq(get_str(o, "code"), "invalid_api_key");
    cr_expect_str_eq(get_str(o, "type"), "authentication_error");
    cJSON_Delete(j);
    free(s);

    /* A refused request's error renders too. */
    struct api_gen_request r;
    cr_assert_eq(parse_gen(chat_with("\"max_tokens\":0"), API_CHAT, &r, &e), -1);
    s = api_error_json(&e);
    j = cJSON_Parse(s);
    cr_assert_not_null(j);
    cr_expect_str_eq(get_str(get(j, "error"), "param"), "max_tokens");
    cJSON_Delete(j);
    free(s);
}

Test(api_write, long_error_message_is_cut_on_a_character) {
    struct api_error e;
    char big[2000];
    /* 'a' then 2-byte characters: every cut point past the first byte falls
     * either between or inside a character */
    for (int shift = 0; shift < 4; shift++) {
        size_t k = 0;
        for (int i = 0; i < shift; i++)
            big[k++] = 'a';
        while (k + 4 < sizeof big) {
            memcpy(big + k, "\xe4\xb8\xad", 3); /* 3-byte character */
            k += 3;
        }
        big[k] = '\0';
        api_error_set(&e, 400, big, big, big, "%s", big);
        cr_expect_lt(strlen(e.message), sizeof e.message);
        size_t m = strlen(e.message) - (size_t)shift;
        cr_expect_eq(m % 3, 0, "cut inside a character (shift %d)", shift);
        cr_expect_eq((strlen(e.param) - (size_t)shift) % 3, 0);
        cr_expect_eq((strlen(e.type) - (size_t)shift) % 3, 0);
        cr_expect_eq((strlen(e.code) - (size_t)shift) % 3, 0);
        char *s = api_error_json(&e);
        cJSON *j = cJSON_Parse(s);
        cr_assert_not_null(j);
        cJSON_Delete(j);
        free(s);
    }
}

/* A parsed request's fields rendered back: what a client sent comes back
 * unchanged in the model field and (here) the text. */
Test(api_write, round_trip_through_parse) {
    const char *body =
        "{\"model\":\"\\u4e2d\\\"q\\\"\\n\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"\\t\\\\ \\ud83d\\ude00 \\\"x\\\"\\r\\n\\u0001\"}]}";
    struct api_gen_request r;
    struct api_error e;
    cr_assert_eq(parse_gen(body, API_CHAT, &r, &e), 0, "%s", e.message);
    cr_expect_str_eq(r.model, "\xe4\xb8\xad\"q\"\n");
    cr_expect_str_eq(r.messages[0].content, "\t\\ \xf0\x9f\x98\x80 \"x\"\r\n\x01");
    struct api_usage u = {1, 1};
    char *s = api_response_json(API_CHAT, "chatcmpl-1", 1, r.model, r.messages[0].content,
                                strlen(r.messages[0].content), "stop", &u);
    cJSON *j = cJSON_Parse(s);
    cr_assert_not_null(j, "%s", s);
    cr_expect_str_eq(get_str(j, "model"), r.model);
    cr_expect_str_eq(
        get_str(get(cJSON_GetArrayItem(get(j, "choices"), 0), "message"), "content"),
        r.messages[0].content);
    cJSON_Delete(j);
    free(s);
    api_gen_request_free(&r);
}
