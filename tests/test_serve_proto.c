/* tests/test_serve_proto.c — the serving wire format (src/infer/serve_proto.h):
 * requests and step events survive a pack/unpack round trip bit for bit, and
 * every truncation of a message is an error, never an overread (run under
 * ASan in CI). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "serve_proto.h"

static struct serve_request sample_request(int32_t *prompt) {
    static char s0[] = "\n\n", s1[] = "User:";
    for (int i = 0; i < 7; i++)
        prompt[i] = 1000 * i - 3;
    struct serve_request r = {.id = -42, .n_prompt = 7, .prompt = prompt,
                              .max_tokens = 64, .temperature = 0.7f, .top_p = 0.9f,
                              .repetition_penalty = 1.1f, .top_k = 40,
                              .seed = 0xfedcba9876543210ULL, .n_stop = 2};
    r.stop[0] = s0;
    r.stop[1] = s1;
    return r;
}

Test(serve_proto, request_round_trip) {
    int32_t prompt[7];
    struct serve_request r = sample_request(prompt), u;
    struct serve_buf b = {0};
    cr_assert_eq(serve_pack_request(&b, &r), 0);
    cr_assert_eq(serve_unpack_request(b.p, b.len, &u), 0, "%s", err_msg());
    cr_assert_eq(u.id, r.id);
    cr_assert_eq(u.n_prompt, 7);
    cr_assert_arr_eq(u.prompt, prompt, sizeof prompt);
    cr_assert_eq(u.max_tokens, 64);
    cr_assert_eq(u.temperature, r.temperature);
    cr_assert_eq(u.top_p, r.top_p);
    cr_assert_eq(u.repetition_penalty, r.repetition_penalty);
    cr_assert_eq(u.top_k, 40);
    cr_assert_eq(u.seed, r.seed);
    cr_assert_eq(u.n_stop, 2);
    cr_assert_str_eq(u.stop[0], "\n\n");
    cr_assert_str_eq(u.stop[1], "User:");
    serve_request_free(&u);
    /* every strict prefix is malformed */
    for (size_t n = 0; n < b.len; n++) {
        unsigned char *cut = malloc(n ? n : 1);
        memcpy(cut, b.p, n);
        cr_assert_eq(serve_unpack_request(cut, n, &u), -1, "prefix of %zu bytes accepted", n);
        free(cut);
    }
    serve_buf_free(&b);
}

Test(serve_proto, events_round_trip) {
    struct serve_buf b = {0};
    struct serve_event in[3] = {
        {.id = 1, .kind = SERVE_EV_TOKEN, .value = 50256},
        {.id = 9, .kind = SERVE_EV_ERROR, .value = 0, .text = "no room", .text_len = 7},
        {.id = 1, .kind = SERVE_EV_DONE, .value = 2},
    };
    for (int i = 0; i < 3; i++)
        cr_assert_eq(serve_pack_event(&b, &in[i]), 0);
    size_t off = 0;
    struct serve_event e;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(serve_unpack_event(b.p, b.len, &off, &e), 1, "%s", err_msg());
        cr_assert_eq(e.id, in[i].id);
        cr_assert_eq(e.kind, in[i].kind);
        cr_assert_eq(e.value, in[i].value);
        cr_assert_eq(e.text_len, in[i].text_len);
        if (in[i].text) cr_assert_eq(memcmp(e.text, in[i].text, e.text_len), 0);
    }
    cr_assert_eq(serve_unpack_event(b.p, b.len, &off, &e), 0, "the end");
    /* a message cut inside its last event */
    off = 0;
    int got, n = 0;
    while ((got = serve_unpack_event(b.p, b.len - 3, &off, &e)) == 1)
        n++;
    cr_assert_eq(got, -1);
    cr_assert_eq(n, 2);
    serve_buf_free(&b);
}

/* The KV pool figures ride in events of their own kinds; a kind past the
 * last is refused. */
Test(serve_proto, pool_events_and_unknown_kinds) {
    struct serve_buf b = {0};
    struct serve_event used = {.id = SERVE_ID_POOL, .kind = SERVE_EV_POOL_USED, .value = 7};
    struct serve_event total = {.id = SERVE_ID_POOL, .kind = SERVE_EV_POOL_TOTAL, .value = 64};
    cr_assert_eq(serve_pack_event(&b, &used), 0);
    cr_assert_eq(serve_pack_event(&b, &total), 0);
    size_t off = 0;
    struct serve_event e;
    cr_assert_eq(serve_unpack_event(b.p, b.len, &off, &e), 1);
    cr_expect(e.id == SERVE_ID_POOL && e.kind == SERVE_EV_POOL_USED && e.value == 7);
    cr_assert_eq(serve_unpack_event(b.p, b.len, &off, &e), 1);
    cr_expect(e.kind == SERVE_EV_POOL_TOTAL && e.value == 64);
    b.len = 0;
    struct serve_event bad = {.id = 1, .kind = SERVE_EV_POOL_TOTAL + 1};
    cr_assert_eq(serve_pack_event(&b, &bad), 0);
    off = 0;
    cr_expect_eq(serve_unpack_event(b.p, b.len, &off, &e), -1);
    serve_buf_free(&b);
}

/* A cancel is exactly one id: shorter or longer messages are refused. */
Test(serve_proto, cancel_round_trip) {
    struct serve_buf b = {0};
    cr_assert_eq(serve_pack_cancel(&b, 123456789012345LL), 0);
    int64_t id = 0;
    cr_assert_eq(serve_unpack_cancel(b.p, b.len, &id), 0);
    cr_expect_eq(id, 123456789012345LL);
    cr_expect_eq(serve_unpack_cancel(b.p, b.len - 1, &id), -1);
    unsigned char longer[9] = {0};
    cr_expect_eq(serve_unpack_cancel(longer, 9, &id), -1);
    serve_buf_free(&b);
}
