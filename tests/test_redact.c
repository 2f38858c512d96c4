/* tests/test_redact.c — masking of e-mail, phone, card and IP in log text.
 *
 * Table-driven: each case is an input and the exact expected output, so a
 * true positive must be masked whole (no digits left over on either side)
 * and a false positive must come back byte for byte. Cases put matches in
 * sentences, several per line, at both ends of the string and next to
 * Chinese text (UTF-8 must pass through untouched). Counts per kind, empty
 * and invalid-UTF-8 input, and a long input round out the checks.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "redact.h"

struct rcase {
    const char *in, *want;
};

static struct redactor R;

static void setup(void) { cr_assert_eq(redactor_init(&R), 0, "%s", err_msg()); }
static void teardown(void) { redactor_free(&R); }

static void run_cases(const struct rcase *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *out = redact(&R, c[i].in, strlen(c[i].in), NULL);
        cr_assert_not_null(out, "%s", err_msg());
        cr_expect_str_eq(out, c[i].want, "input: \"%s\"\n  got: \"%s\"\n want: \"%s\"",
                         c[i].in, out, c[i].want);
        free(out);
    }
}

/* Inputs that must come back unchanged. */
static void run_unchanged(const char *const *in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        struct redact_counts k;
        char *out = redact(&R, in[i], strlen(in[i]), &k);
        cr_assert_not_null(out, "%s", err_msg());
        cr_expect_str_eq(out, in[i], "must stay: \"%s\"\n       got: \"%s\"", in[i], out);
        cr_expect_eq(k.email + k.phone + k.card + k.ip, 0, "no count for \"%s\"", in[i]);
        free(out);
    }
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

TestSuite(redact, .init = setup, .fini = teardown);

Test(redact, email) {
    static const struct rcase c[] = {
        {"Contact alice@example.com for details.", "Contact [EMAIL] for details."},
        {"alice@example.com", "[EMAIL]"},
        {"first.last+tag@sub.example.co.uk", "[EMAIL]"},
        {"Email: Bob_Smith-99@my-company.io.", "Email: [EMAIL]."},
        {"<alice@example.com>", "<[EMAIL]>"},
        {"mailto:alice@example.com?subject=hi", "mailto:[EMAIL]?subject=hi"},
        {"a@b.co,c.d@e-f.org;g@h.info", "[EMAIL],[EMAIL];[EMAIL]"},
        {"\"ALICE@EXAMPLE.COM\"", "\"[EMAIL]\""},
        {"请联系alice@example.com谢谢", "请联系[EMAIL]谢谢"},
        {"邮箱：zhang.wei@163.com。", "邮箱：[EMAIL]。"},
        {"(user%ops@mail.example.net)", "([EMAIL])"},
    };
    run_cases(c, N(c));
}

Test(redact, email_false_positives) {
    static const char *const in[] = {
        "@alice said hi",       "user@localhost", "foo@bar",
        "price @ 5.00 each",    "a @ b.com",      "git@ is a prefix",
        "see docs/@types/node", "x@y.z",          "email me at alice at example dot com",
    };
    run_unchanged(in, N(in));
}

Test(redact, phone) {
    static const struct rcase c[] = {
        {"Call (555) 123-4567 today", "Call [PHONE] today"},
        {"555-123-4567", "[PHONE]"},
        {"555.123.4567", "[PHONE]"},
        {"my number is 555 123 4567.", "my number is [PHONE]."},
        {"(555)123-4567", "[PHONE]"},
        {"1-800-555-0199", "[PHONE]"},
        {"+1 (555) 123-4567", "[PHONE]"},
        {"+1-555-123-4567", "[PHONE]"},
        {"tel:+15551234567", "tel:[PHONE]"},
        {"+44 20 7946 0958", "[PHONE]"},
        {"+44 (0)20 7946 0958", "[PHONE]"},
        {"+33 6 12 34 56 78", "[PHONE]"},
        {"+49 30 12345678", "[PHONE]"},
        {"+8613812345678", "[PHONE]"},
        {"+86 138 1234 5678", "[PHONE]"},
        {"London office: 020 7946 0958", "London office: [PHONE]"},
        {"Paris: 06 12 34 56 78!", "Paris: [PHONE]!"},
        {"Berlin 030 12345678", "Berlin [PHONE]"},
        {"电话：138-1234-5678。", "电话：[PHONE]。"},
        {"手机13812345678联系", "手机[PHONE]联系"},
        {"请拨打+86 138 1234 5678联系我", "请拨打[PHONE]联系我"},
        {"555-123-4567 x123 is the desk", "[PHONE] is the desk"},
        {"555-123-4567 ext. 42", "[PHONE]"},
        {"Call 555-123-4567, or 555-987-6543.", "Call [PHONE], or [PHONE]."},
        {"555-123-4567 555-987-6543", "[PHONE] [PHONE]"},
        {"+1 555 123 4567.", "[PHONE]."},
        {"+44 20 7946 0958 (24 hours)", "[PHONE] (24 hours)"},
        {"0044 20 7946 0958", "[PHONE]"},
        {"(+44) 20 7946 0958", "[PHONE]"},
        {"Tel +1 212-555-0100 Fax +1 212-555-0101", "Tel [PHONE] Fax [PHONE]"},
        {"freephone 0800 123 4567", "freephone [PHONE]"},
        {"+1.555.123.4567", "[PHONE]"},
    };
    run_cases(c, N(c));
}

Test(redact, phone_false_positives) {
    static const char *const in[] = {
        "2024-01-15",
        "on 2024-01-15 at 10:30",
        "2024-01-15T10:30:45Z",
        "2024-01-15T10:30:45.123+05:30",
        "10:30:45",
        "01/15/2024",
        "15.01.2024",
        "01-15-2024 10:30",
        "05 10 2024 14 30",
        "$1,234.56",
        "€1.234,56",
        "USD 1234567890",
        "price: 12.99, 1,299.00",
        "42",
        "12345",
        "3.14159265358979",
        "port 8080",
        "+5 points",
        "+100 XP",
        "page 1 of 3",
        "Python 3.11.4",
        "2024年1月15日",
        "Order #123-456-789",
        "1,234,567 and 1 234 567",
        "tokens: 50256 464 318 2068 7586 21831 318 257 1332 13",
        "step 1200/5000 loss 3.2154 lr 6.0e-04 2024 1015 3345",
        "build 20240115.1",
        "timestamp 1700000000",
        "2024-11-24 10:30:00,123 INFO rank 0 step 100 loss 2.345",
        "[2024-11-24T10:30:00.000Z] req_id=01HF3K2M tokens=1024 latency_ms=12.5",
        "elapsed 0:01:23",
        "06/12/2024 14:05",
        "kernel 5.15.0-91-generic",
        "lr=3e-4 beta2=0.999 eps=1e-8",
        "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
        "model gpt2-124M 124439808 params",
        "18 Nov 2024 10:30:00 +0000",
    };
    run_unchanged(in, N(in));
}

Test(redact, card) {
    static const struct rcase c[] = {
        {"4111 1111 1111 1111", "[CARD]"},
        {"4111-1111-1111-1111", "[CARD]"},
        {"card 4111111111111111 expires 12/25", "card [CARD] expires 12/25"},
        {"MasterCard 5555555555554444.", "MasterCard [CARD]."},
        {"Amex 378282246310005", "Amex [CARD]"},
        {"Amex 3782 822463 10005", "Amex [CARD]"},
        {"Discover 6011111111111117", "Discover [CARD]"},
        {"Diners 30569309025904", "Diners [CARD]"},
        {"old Visa 4222222222222", "old Visa [CARD]"},
        {"JCB 3530 1113 3330 0000", "JCB [CARD]"},
        {"4111111111111111,5555555555554444", "[CARD],[CARD]"},
        {"4111 1111 1111 1111 5555 5555 5555 4444", "[CARD] [CARD]"},
        {"qty 2 4111111111111111", "qty 2 [CARD]"},
        {"卡号4111 1111 1111 1111已冻结", "卡号[CARD]已冻结"},
        {"Paid with 4111111111111111", "Paid with [CARD]"},
    };
    run_cases(c, N(c));
}

Test(redact, card_false_positives) {
    static const char *const in[] = {
        "Order 4111111111111112 shipped",     /* Luhn fails */
        "id 1234567890123456",                /* Luhn fails, leading 1 */
        "ISBN 978-3-16-148410-0",             /* 13 digits, leading 9 */
        "tracking 9400111899223344556677",    /* 22 digits */
        "ms since epoch 1700000000000",       /* leading 1 */
        "4111 1111 1111 1112",                /* grouped, Luhn fails */
        "hash 4111111111111111abcdef",        /* part of a hex word */
        "pi 3.4111111111111111",              /* decimals */
        "4111111111111",                      /* 13 digits, Luhn fails */
        "41111111111111111111",               /* 20 digits */
        "4111 111 111 111 1111",              /* not a card layout */
    };
    run_unchanged(in, N(in));
}

Test(redact, ipv4) {
    static const struct rcase c[] = {
        {"from 192.168.1.1 to 10.0.0.255", "from [IP] to [IP]"},
        {"IP:10.0.0.1", "IP:[IP]"},
        {"10.0.0.1:8080", "[IP]:8080"},
        {"route 10.0.0.0/8 via 172.16.0.1", "route [IP]/8 via [IP]"},
        {"Host 8.8.8.8.", "Host [IP]."},
        {"version 1.2.3.4", "version [IP]"}, /* a dotted quad of octets is an IP */
        {"服务器192.168.1.1宕机", "服务器[IP]宕机"},
        {"255.255.255.255", "[IP]"},
        {"0.0.0.0", "[IP]"},
        {"x=192.168.001.010;", "x=[IP];"},
    };
    run_cases(c, N(c));
}

Test(redact, ipv4_false_positives) {
    static const char *const in[] = {
        "999.1.1.1",   "256.256.256.256", "1.2.3",        "v1.2.3.4", "1.2.3.4.5",
        "version 1.2.3", "10.0.0",        "1.2.3.4567",   "a1.2.3.4", "192.168.1.300",
    };
    run_unchanged(in, N(in));
}

Test(redact, ipv6) {
    static const struct rcase c[] = {
        {"2001:db8::1", "[IP]"},
        {"addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up", "addr [IP] up"},
        {"localhost is ::1", "localhost is [IP]"},
        {"fe80::1%eth0", "[IP]%eth0"},
        {"[2001:db8::1]:443", "[[IP]]:443"},
        {"mapped ::ffff:192.168.1.1 here", "mapped [IP] here"},
        {"addr:fe80::1", "addr:[IP]"},
        {"IPv6 地址 2001:db8::8a2e:370:7334。", "IPv6 地址 [IP]。"},
        {"peer FE80::ABCD:1234.", "peer [IP]."},
        {"link fe80::1: down", "link [IP]: down"},
    };
    run_cases(c, N(c));
}

Test(redact, ipv6_false_positives) {
    static const char *const in[] = {
        "std::vector<int>",
        "Foo::Bar::baz()",
        "ratio 1:2:3",
        "MAC 00:1A:2B:3C:4D:5E",
        "12:34:56",
        "a :: b",
        "1:2:3:4:5:6:7:8:9",
        "dead:beef",
        "UUID 123e4567-e89b-12d3-a456-426614174000",
        "sha 4f2a9c0e8b7d6a5f4e3d2c1b0a9f8e7d",
    };
    run_unchanged(in, N(in));
}

Test(redact, mixed_and_counts) {
    const char *in =
        "Alice <alice@example.com>, +1 555 123 4567, card 4111 1111 1111 1111, "
        "ip 10.0.0.1 and bob@example.org / 2001:db8::2";
    struct redact_counts k;
    char *out = redact(&R, in, strlen(in), &k);
    cr_assert_not_null(out, "%s", err_msg());
    cr_expect_str_eq(out,
                     "Alice <[EMAIL]>, [PHONE], card [CARD], ip [IP] and [EMAIL] / [IP]");
    cr_expect_eq(k.email, 2);
    cr_expect_eq(k.phone, 1);
    cr_expect_eq(k.card, 1);
    cr_expect_eq(k.ip, 2);
    free(out);
    /* An IPv4 inside an IPv6 address is one match, counted once. */
    out = redact(&R, "::ffff:10.1.2.3", 15, &k);
    cr_assert_not_null(out);
    cr_expect_str_eq(out, "[IP]");
    cr_expect_eq(k.ip, 1);
    free(out);
}

Test(redact, edges) {
    struct redact_counts k = {9, 9, 9, 9};
    char *out = redact(&R, NULL, 0, &k);
    cr_assert_not_null(out);
    cr_expect_str_eq(out, "");
    cr_expect_eq(k.email + k.phone + k.card + k.ip, 0);
    free(out);
    /* Only len bytes are read: a match cut by len is not a match. */
    const char *s = "10.0.0.1 is up";
    out = redact(&R, s, 6, NULL);
    cr_assert_not_null(out);
    cr_expect_str_eq(out, "10.0.0");
    free(out);
    out = redact(&R, s, 8, NULL);
    cr_expect_str_eq(out, "[IP]");
    free(out);
    /* Invalid UTF-8 and control bytes pass through. */
    const char bad[] = "\xff\xfe alice@example.com \xc3\t\x01 10.0.0.1\xe4\xb8";
    out = redact(&R, bad, sizeof bad - 1, NULL);
    cr_assert_not_null(out);
    cr_expect_str_eq(out, "\xff\xfe [EMAIL] \xc3\t\x01 [IP]\xe4\xb8");
    free(out);
    /* Plain UTF-8 without matches is returned byte for byte. */
    const char *zh = "今天天气很好，我们去公园散步吧。価格は１２３円です。🙂";
    out = redact(&R, zh, strlen(zh), &k);
    cr_expect_str_eq(out, zh);
    free(out);
}

/* A long transcript: every match found, nothing else touched, and
 * pathological runs (long digit lists, colons) stay linear. */
Test(redact, long_input) {
    const char *unit = "用户 alice@example.com 从 192.168.1.1 下单, 卡 4111 1111 1111 1111, "
                       "电话 +44 20 7946 0958; tokens 464 2068 7586 21831\n";
    const char *unit_out = "用户 [EMAIL] 从 [IP] 下单, 卡 [CARD], "
                           "电话 [PHONE]; tokens 464 2068 7586 21831\n";
    size_t reps = 5000, ul = strlen(unit), uol = strlen(unit_out);
    char *in = malloc(reps * ul + 1), *want = malloc(reps * uol + 1);
    cr_assert(in && want);
    for (size_t i = 0; i < reps; i++) {
        memcpy(in + i * ul, unit, ul);
        memcpy(want + i * uol, unit_out, uol);
    }
    in[reps * ul] = want[reps * uol] = '\0';
    struct redact_counts k;
    char *out = redact(&R, in, reps * ul, &k);
    cr_assert_not_null(out, "%s", err_msg());
    cr_expect(strcmp(out, want) == 0);
    cr_expect_eq(k.email, reps);
    cr_expect_eq(k.ip, reps);
    cr_expect_eq(k.card, reps);
    cr_expect_eq(k.phone, reps);
    free(out);
    free(in);
    free(want);

    size_t n = 200000;
    char *junk = malloc(n + 1);
    cr_assert_not_null(junk);
    for (size_t i = 0; i < n; i++) junk[i] = (i % 2) ? ' ' : (char)('1' + i % 7);
    junk[n] = '\0';
    out = redact(&R, junk, n, &k);
    cr_assert_not_null(out);
    free(out);
    for (size_t i = 0; i < n; i++) junk[i] = (i % 3 == 2) ? ':' : 'a';
    out = redact(&R, junk, n, &k);
    cr_assert_not_null(out);
    cr_expect_str_eq(out, junk);
    free(out);
    free(junk);
}

Test(redact, tags) {
    cr_expect_str_eq(redact_tag(REDACT_EMAIL), "[EMAIL]");
    cr_expect_str_eq(redact_tag(REDACT_PHONE), "[PHONE]");
    cr_expect_str_eq(redact_tag(REDACT_CARD), "[CARD]");
    cr_expect_str_eq(redact_tag(REDACT_IP), "[IP]");
}
