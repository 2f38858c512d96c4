/* tests/test_utf8.c — keeping generated text valid UTF-8 (src/infer/utf8.*).
 *
 * utf8_sanitize against hand-worked cases (one U+FFFD per offending byte,
 * NUL replaced, valid text untouched), and utf8_stream_cut on every way to
 * split a stream: for random byte strings (valid text with stray bytes mixed
 * in), sending the pieces the cut allows, piece by piece with each piece
 * sanitized, and the rest at the end must give exactly the sanitized whole.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static char *sanitized(const char *s, size_t n, size_t *out_n) {
    char *t = malloc(n + 1);
    memcpy(t, s, n);
    t[n] = '\0';
    cr_assert_eq(utf8_sanitize(&t, &n), 0);
    *out_n = n;
    return t;
}

Test(utf8, sanitize_cases) {
    struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"plain ascii", 11, "plain ascii"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"a\x80z", 3, "a\xef\xbf\xbdz"},                 /* stray continuation */
        {"a\xe2\x82z", 4, "a\xef\xbf\xbd\xef\xbf\xbdz"}, /* cut 3-byte form: 2 bytes */
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},     /* overlong */
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"x\0y", 3, "x\xef\xbf\xbdy"},                     /* NUL */
        {"end\xf0\x9f", 5, "end\xef\xbf\xbd\xef\xbf\xbd"}, /* cut at the end */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n;
        char *t = sanitized(cases[i].in, cases[i].n, &n);
        cr_expect_eq(n, strlen(cases[i].want), "case %zu: length %zu", i, n);
        cr_expect_eq(memcmp(t, cases[i].want, n), 0, "case %zu", i);
        free(t);
    }
}

Test(utf8, stream_cut_holds_back_only_unfinished_sequences) {
    const unsigned char euro[] = {0xe2, 0x82, 0xac};
    cr_expect_eq(utf8_stream_cut(euro, 1), 0);
    cr_expect_eq(utf8_stream_cut(euro, 2), 0);
    cr_expect_eq(utf8_stream_cut(euro, 3), 3);
    const unsigned char bad[] = {'a', 0xe2, 'b'};
    cr_expect_eq(utf8_stream_cut(bad, 3), 3); /* can never complete: nothing held */
    const unsigned char tail[] = {'a', 'b', 0xf0, 0x9f, 0x98};
    cr_expect_eq(utf8_stream_cut(tail, 5), 2);
    const unsigned char wrong2[] = {'a', 0xe0, 0x80}; /* E0 needs A0..BF next */
    cr_expect_eq(utf8_stream_cut(wrong2, 3), 3);
    const unsigned char cont[] = {'a', 0x80, 0x80};
    cr_expect_eq(utf8_stream_cut(cont, 3), 3);
}

Test(utf8, streamed_pieces_equal_the_sanitized_whole) {
    static const char *const atoms[] = {
        "a",    " ",        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x80",
        "\xff", "\xe2\x82", "\0"};
    srand(7);
    for (int trial = 0; trial < 2000; trial++) {
        char buf[256];
        size_t n = 0;
        while (n < 200) {
            const char *a = atoms[rand() % 9];
            size_t k = a[0] ? strlen(a) : 1;
            memcpy(buf + n, a, k);
            n += k;
        }
        size_t want_n;
        char *want = sanitized(buf, n, &want_n);
        /* arrive in random pieces; send what the cut allows each time */
        char out[1024];
        size_t o = 0, sent = 0, have = 0;
        while (have < n) {
            have += 1 + (size_t)(rand() % 5);
            if (have > n) have = n;
            size_t cut = have == n
                             ? have
                             : sent + utf8_stream_cut((const unsigned char *)buf + sent,
                                                      have - sent);
            if (cut > sent) {
                size_t pn;
                char *p = sanitized(buf + sent, cut - sent, &pn);
                memcpy(out + o, p, pn);
                o += pn;
                free(p);
                sent = cut;
            }
        }
        cr_assert_eq(o, want_n, "trial %d: %zu bytes streamed, %zu whole", trial, o,
                     want_n);
        cr_assert_eq(memcmp(out, want, o), 0, "trial %d", trial);
        free(want);
    }
}
