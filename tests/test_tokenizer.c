/* tests/test_tokenizer.c — the BPE tokenizer against Hugging Face
 * `tokenizers` (fixtures from tests/golden/make_tokenizer_fixture.py): the
 * same ids for every line of a varied corpus, lossless round trips for any
 * bytes, training that reproduces HF's merges, and load errors that name the
 * file and line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "tokenizer.h"

#ifndef TOKENIZER_FIXTURE_DIR
#error "TOKENIZER_FIXTURE_DIR must be defined by the build"
#endif
#define FIXTURE(name) TOKENIZER_FIXTURE_DIR "/" name

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static struct tokenizer *fixture_tokenizer(void) {
    struct tokenizer *t = tokenizer_load_files(FIXTURE("vocab.json"), FIXTURE("merges.txt"));
    cr_assert(t, "load: %s", err_msg());
    return t;
}

/* Parse one line of space-separated ids. */
static size_t parse_ids(const char *line, size_t len, int32_t *out) {
    size_t n = 0;
    const char *p = line, *end = line + len;
    while (p < end) {
        char *q;
        long v = strtol(p, &q, 10);
        if (q == p) break;
        out[n++] = (int32_t)v;
        p = q;
    }
    return n;
}

static void round_trip(const struct tokenizer *t, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, dlen = 0;
    cr_assert_eq(tokenizer_encode(t, text, len, &ids, &n, &cap), 0, "%s", err_msg());
    char *back = tokenizer_decode(t, ids, n, &dlen);
    cr_assert(back, "%s", err_msg());
    cr_assert_eq(dlen, len, "decoded %zu bytes of %zu", dlen, len);
    cr_assert(len == 0 || memcmp(back, text, len) == 0, "round trip changed the bytes");
    for (size_t i = 0; i < n; i++)
        cr_assert(ids[i] >= 0 && ids[i] < tokenizer_vocab_size(t));
    free(back);
    free(ids);
}

Test(tokenizer, fixture_ids_match_hf_for_every_line) {
    struct tokenizer *t = fixture_tokenizer();
    cr_assert_eq(tokenizer_vocab_size(t), 2000);
    cr_assert_eq(tokenizer_eot(t), 0);
    size_t clen, ilen;
    char *corpus = slurp(FIXTURE("corpus.txt"), &clen);
    char *expect = slurp(FIXTURE("ids.txt"), &ilen);
    int32_t *want = malloc((clen + 1) * sizeof *want);
    int32_t *got = NULL;
    size_t cap = 0, lines = 0;
    const char *c = corpus, *e = expect;
    const char *cend = corpus + clen, *eend = expect + ilen;
    while (c < cend) {
        const char *nl = memchr(c, '\n', (size_t)(cend - c));
        size_t len = nl ? (size_t)(nl - c) + 1 : (size_t)(cend - c);
        const char *enl = memchr(e, '\n', (size_t)(eend - e));
        cr_assert(enl, "ids.txt has fewer lines than corpus.txt");
        size_t nwant = parse_ids(e, (size_t)(enl - e), want), n = 0;
        cr_assert_eq(tokenizer_encode(t, c, len, &got, &n, &cap), 0, "%s", err_msg());
        lines++;
        cr_assert_eq(n, nwant, "line %zu (%.*s): %zu ids, HF gives %zu", lines, (int)len, c, n,
                     nwant);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(got[i], want[i], "line %zu (%.*s): id %zu is %d, HF gives %d", lines,
                         (int)len, c, i, got[i], want[i]);
        round_trip(t, c, len);
        c += len;
        e = enl + 1;
    }
    /* last line of ids.txt: the whole corpus at once */
    const char *enl = memchr(e, '\n', (size_t)(eend - e));
    cr_assert(enl);
    int32_t *all = malloc((clen + 1) * sizeof *all);
    size_t nall = parse_ids(e, (size_t)(enl - e), all), n = 0;
    cr_assert_eq(tokenizer_encode(t, corpus, clen, &got, &n, &cap), 0);
    cr_assert_eq(n, nall, "whole corpus: %zu ids, HF gives %zu", n, nall);
    cr_assert_eq(memcmp(got, all, n * sizeof *got), 0, "whole corpus: ids differ from HF");
    cr_assert_gt(lines, 2000);
    free(all);
    free(got);
    free(want);
    free(corpus);
    free(expect);
    tokenizer_free(t);
}

Test(tokenizer, endoftext_text_is_not_the_special_token) {
    struct tokenizer *t = fixture_tokenizer();
    const char *s = "a<|endoftext|>b";
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    cr_assert_eq(tokenizer_encode(t, s, strlen(s), &ids, &n, &cap), 0);
    for (size_t i = 0; i < n; i++) cr_assert_neq(ids[i], tokenizer_eot(t));
    size_t len;
    const char *b = tokenizer_token_bytes(t, tokenizer_eot(t), &len);
    cr_assert(b && len == 13 && !memcmp(b, "<|endoftext|>", 13));
    cr_assert_null(tokenizer_token_bytes(t, 2000, &len));
    cr_assert_null(tokenizer_token_bytes(t, -1, &len));
    int32_t bad = 5000;
    cr_assert_null(tokenizer_decode(t, &bad, 1, &len));
    cr_assert(strstr(err_msg(), "5000"), "%s", err_msg());
    free(ids);
    tokenizer_free(t);
}

static uint64_t rng_state = 0x1234567;
static uint32_t next_rand(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

/* Random byte strings: uniform bytes (mostly invalid UTF-8), and mixtures of
 * ASCII, whitespace, multi-byte characters and their truncated fragments. */
static size_t random_text(char *buf, size_t max) {
    static const char *frags[] = {"a", "e", " ", "  ", "\t", "\n", "\r\n", "'s", "'ll", "é",
                                  "中", "😀", "\xe4\xb8", "\xf0\x9f", "\x80", "\xff", "\xc3",
                                  "1", "23", "!?", " the", "\xc2\xa0", "\xe3\x80\x80", "\0"};
    size_t len = next_rand() % max;
    if (next_rand() % 3 == 0) {
        for (size_t i = 0; i < len; i++) buf[i] = (char)(next_rand() & 0xff);
        return len;
    }
    size_t n = 0;
    while (n < len) {
        const char *f = frags[next_rand() % (sizeof frags / sizeof *frags)];
        size_t fl = f[0] ? strlen(f) : 1;
        if (n + fl > max) break;
        memcpy(buf + n, f, fl);
        n += fl;
    }
    return n;
}

Test(tokenizer, random_bytes_round_trip_both_kinds) {
    struct tokenizer *bpe = fixture_tokenizer();
    struct tokenizer *bytes = tokenizer_bytes();
    cr_assert(bytes);
    cr_assert(tokenizer_is_bytes(bytes));
    cr_assert(!tokenizer_is_bytes(bpe));
    cr_assert_eq(tokenizer_vocab_size(bytes), 256);
    cr_assert_eq(tokenizer_eot(bytes), -1);
    char buf[600];
    for (int i = 0; i < 3000; i++) {
        size_t len = random_text(buf, sizeof buf);
        round_trip(bpe, buf, len);
        round_trip(bytes, buf, len);
    }
    /* every byte value alone, and a long piece with no pre-tokeniser break */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        round_trip(bpe, &c, 1);
    }
    size_t big = 200000;
    char *long_word = malloc(big);
    for (size_t i = 0; i < big; i++) long_word[i] = "abcdefgh"[next_rand() % 8];
    round_trip(bpe, long_word, big);
    free(long_word);
    tokenizer_free(bpe);
    tokenizer_free(bytes);
}

Test(tokenizer, strings_and_files_round_trip) {
    struct tokenizer *t = fixture_tokenizer();
    char *v, *m;
    size_t vl, ml;
    cr_assert_eq(tokenizer_to_strings(t, &v, &vl, &m, &ml), 0);
    struct tokenizer *u = tokenizer_load_strings(v, vl, m, ml);
    cr_assert(u, "%s", err_msg());
    char dir[] = "/tmp/llmpi_tok_XXXXXX";
    cr_assert(mkdtemp(dir));
    cr_assert_eq(tokenizer_save_files(u, dir), 0, "%s", err_msg());
    char vp[256], mp[256];
    snprintf(vp, sizeof vp, "%s/vocab.json", dir);
    snprintf(mp, sizeof mp, "%s/merges.txt", dir);
    struct tokenizer *w = tokenizer_load_files(vp, mp);
    cr_assert(w, "%s", err_msg());
    size_t clen;
    char *corpus = slurp(FIXTURE("corpus.txt"), &clen);
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, ca = 0, cb = 0;
    cr_assert_eq(tokenizer_encode(t, corpus, clen, &a, &na, &ca), 0);
    cr_assert_eq(tokenizer_encode(w, corpus, clen, &b, &nb, &cb), 0);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(a, b, na * sizeof *a), 0);
    cr_assert_eq(tokenizer_eot(w), tokenizer_eot(t));
    /* the bytes kind has no files */
    struct tokenizer *bytes = tokenizer_bytes();
    char *bv, *bm;
    size_t bvl, bml;
    cr_assert_eq(tokenizer_to_strings(bytes, &bv, &bvl, &bm, &bml), 0);
    cr_assert(bv == NULL && bm == NULL && bvl == 0 && bml == 0);
    cr_assert_eq(tokenizer_save_files(bytes, dir), -1);
    unlink(vp);
    unlink(mp);
    rmdir(dir);
    free(a);
    free(b);
    free(v);
    free(m);
    free(corpus);
    tokenizer_free(bytes);
    tokenizer_free(t);
    tokenizer_free(u);
    tokenizer_free(w);
}

/* Train on the fixture corpus with the same vocabulary size as HF: the
 * merges must be HF's (same order), every id HF's minus one (<|endoftext|>
 * last instead of first). */
Test(tokenizer, training_reproduces_hf_merges) {
    const char *paths[] = {FIXTURE("corpus.txt")};
    struct tokenizer *t = tokenizer_train(paths, 1, 2000, NULL, NULL);
    cr_assert(t, "%s", err_msg());
    cr_assert_eq(tokenizer_vocab_size(t), 2000);
    cr_assert_eq(tokenizer_eot(t), 1999);
    char *v, *m;
    size_t vl, ml, hl;
    cr_assert_eq(tokenizer_to_strings(t, &v, &vl, &m, &ml), 0);
    char *hf = slurp(FIXTURE("merges.txt"), &hl);
    size_t same = 0, lines = 0;
    const char *a = m, *b = hf;
    while (*a && *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        if (!ea || !eb) break;
        lines++;
        if (ea - a == eb - b && !memcmp(a, b, (size_t)(ea - a))) same++;
        else if (same + 1 == lines) cr_log_info("first differing merge, line %zu: ours '%.*s', HF '%.*s'", lines, (int)(ea - a), a, (int)(eb - b), b);
        a = ea + 1;
        b = eb + 1;
    }
    cr_log_info("trained merges equal to HF's: %zu of %zu", same, lines);
    cr_assert_eq(same, lines, "only %zu of %zu merges equal HF's", same, lines);
    /* a trained tokenizer still round-trips anything */
    char buf[400];
    for (int i = 0; i < 500; i++) round_trip(t, buf, random_text(buf, sizeof buf));
    free(v);
    free(m);
    free(hf);
    tokenizer_free(t);
    cr_assert_null(tokenizer_train(paths, 1, 256, NULL, NULL));
    cr_assert(strstr(err_msg(), "256"), "%s", err_msg());
}

/* Load errors: the message names the file, and for merges.txt the line. */
static char tmpdir[64];
static char *write_tmp(const char *name, const char *text) {
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/llmpi_tokerr_XXXXXX");
        cr_assert(mkdtemp(tmpdir));
    }
    static char path[4][128];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 128, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* A minimal valid vocabulary: the 256 bytes, "ab" and "<|endoftext|>". */
static char *small_vocab(const char *extra) {
    static char buf[8192];
    int n = sprintf(buf, "{");
    for (int b = 0; b < 256; b++) {
        unsigned cp = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)
                          ? (unsigned)b
                          : 0;
        if (!cp) {
            int k = 0;
            for (int c = 0; c < b; c++)
                if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) k++;
            cp = 0x100 + (unsigned)k;
        }
        n += sprintf(buf + n, "\"\\u%04x\": %d, ", cp, b);
    }
    sprintf(buf + n, "\"ab\": 256, \"<|endoftext|>\": 257%s}", extra);
    return buf;
}

static void expect_load_error(const char *vocab, const char *merges, const char *want1,
                              const char *want2) {
    char *vp = write_tmp("vocab.json", vocab);
    char *mp = write_tmp("merges.txt", merges);
    struct tokenizer *t = tokenizer_load_files(vp, mp);
    cr_assert_null(t, "loaded a bad vocabulary");
    cr_assert(strstr(err_msg(), want1), "message '%s' lacks '%s'", err_msg(), want1);
    if (want2) cr_assert(strstr(err_msg(), want2), "message '%s' lacks '%s'", err_msg(), want2);
}

Test(tokenizer, load_errors_name_file_and_line) {
    /* the small vocabulary itself loads, encodes "ab" as one token */
    char *vp = write_tmp("vocab.json", small_vocab(""));
    char *mp = write_tmp("merges.txt", "#version: 0.2\na b\n");
    struct tokenizer *t = tokenizer_load_files(vp, mp);
    cr_assert(t, "%s", err_msg());
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    cr_assert_eq(tokenizer_encode(t, "abab ab", 7, &ids, &n, &cap), 0);
    cr_assert_eq(n, 4); /* "ab", "ab", " ", "ab" ("Ġab" is no token) */
    cr_assert_eq(ids[0], 256);
    cr_assert_eq(tokenizer_eot(t), 257);
    free(ids);
    tokenizer_free(t);

    /* an empty token text loads (found by the fuzzer: NULL + 0 in the hash map) */
    vp = write_tmp("vocab.json", small_vocab(", \"\": 258"));
    t = tokenizer_load_files(vp, mp);
    cr_assert(t, "%s", err_msg());
    cr_assert_eq(tokenizer_vocab_size(t), 259);
    tokenizer_free(t);
    vp = write_tmp("vocab.json", small_vocab(""));

    cr_assert_null(tokenizer_load_files("/nonexistent/vocab.json", mp));
    cr_assert(strstr(err_msg(), "/nonexistent/vocab.json"), "%s", err_msg());
    cr_assert_null(tokenizer_load_files(vp, "/nonexistent/merges.txt"));
    cr_assert(strstr(err_msg(), "/nonexistent/merges.txt"), "%s", err_msg());

    expect_load_error("{\"a\": 0,", "", "vocab.json", "not valid JSON");
    expect_load_error("[1, 2]", "", "vocab.json", "object");
    expect_load_error("{\"a\": \"x\"}", "", "vocab.json", "\"a\"");
    expect_load_error("{\"a\": 0, \"b\": 5}", "", "vocab.json", "out of range");
    expect_load_error("{\"a\": 0, \"b\": 0}", "", "vocab.json", "id 0");
    expect_load_error("{\"a\": 0, \"b\": 1}", "", "vocab.json", "byte 0x");
    expect_load_error(small_vocab(""), "#version: 0.2\na b\nx zz\n", "merges.txt line 3",
                      "\"zz\" is not in the vocabulary");
    expect_load_error(small_vocab(""), "a b\nb a\n", "merges.txt line 2",
                      "merge result \"ba\"");
    expect_load_error(small_vocab(""), "a b\nab\n", "merges.txt line 2", "two tokens");
    expect_load_error(small_vocab(""), "a  b\n", "merges.txt line 1", "two tokens");
    /* in-memory texts are named vocab.json / merges.txt */
    cr_assert_null(tokenizer_load_strings("{", 1, "", 0));
    cr_assert(strstr(err_msg(), "vocab.json"), "%s", err_msg());
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
}
