/* tests/test_api_keys.c — the API keys file and key lookup (src/infer/api_keys.*).
 *
 * Good files (comments, tabs, CRLF, '*', model lists, no final newline);
 * every kind of bad line answered with the exact "file:line: ..." message
 * and never with the key in it; duplicates, empty files, files that cannot
 * be read or are too big; lookup of right, wrong, truncated and extended
 * keys; Authorization header parsing; which models a key may use.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_keys.h"
#include "err.h"

#define KEY_OPS "sk-llmpi-2c1e7f0a9b8d4e6f8a1b3c5d"
#define KEY_GAME "sk-llmpi-77aa01bd9e3c4f21aa09be4c"
#define KEY_SOLO "sk.llmpi_0000000000000001"

static const char good[] = "# name    key                                 models\n"
                           "\n"
                           "ops\t" KEY_OPS "  *   # every model\n"
                           "   game   " KEY_GAME "\tinnkeeper,blacksmith\r\n"
                           "  \t  # indented comment\n"
                           "solo " KEY_SOLO " gpt2-mini"; /* no final newline */

static void parse_good(struct api_keys *k) {
    cr_assert_eq(api_keys_parse(good, strlen(good), "keys.txt", k), 0, "%s", err_msg());
}

Test(api_keys, parse_good) {
    struct api_keys k;
    parse_good(&k);
    cr_assert_eq(k.n, 3);
    cr_expect_str_eq(k.keys[0].name, "ops");
    cr_expect_str_eq(k.keys[0].key, KEY_OPS);
    cr_expect_eq(k.keys[0].all_models, 1);
    cr_expect_eq(k.keys[0].n_models, 0);
    cr_expect_str_eq(k.keys[1].name, "game");
    cr_expect_str_eq(k.keys[1].key, KEY_GAME);
    cr_expect_eq(k.keys[1].all_models, 0);
    cr_assert_eq(k.keys[1].n_models, 2);
    cr_expect_str_eq(k.keys[1].models[0], "innkeeper");
    cr_expect_str_eq(k.keys[1].models[1], "blacksmith");
    cr_expect_str_eq(k.keys[2].name, "solo");
    cr_expect_str_eq(k.keys[2].key, KEY_SOLO);
    cr_assert_eq(k.keys[2].n_models, 1);
    cr_expect_str_eq(k.keys[2].models[0], "gpt2-mini");
    api_keys_free(&k);
    cr_expect_eq(k.n, 0);
    api_keys_free(&k); /* twice is harmless */
}

/* Limits: a 64-character name, 16- and 256-character keys. */
Test(api_keys, parse_limits) {
    char text[1024], name[65], k16[17], k256[257];
    memset(name, 'n', 64);
    name[64] = '\0';
    memset(k16, 'a', 16);
    k16[16] = '\0';
    memset(k256, 'b', 256);
    k256[256] = '\0';
    snprintf(text, sizeof text, "%s %s *\nx %s m\n", name, k16, k256);
    struct api_keys k;
    cr_assert_eq(api_keys_parse(text, strlen(text), "keys.txt", &k), 0, "%s", err_msg());
    cr_expect_eq(k.n, 2);
    api_keys_free(&k);
}

struct bad {
    const char *text;
    const char *want; /* the whole message */
};

static void expect_bad(const char *text, size_t len, const char *want) {
    struct api_keys k = {(struct api_key *)1, 99};
    cr_expect_eq(api_keys_parse(text, len, "keys.txt", &k), -1, "accepted: %s", text);
    cr_expect_str_eq(err_msg(), want);
    cr_expect_null(k.keys);
    cr_expect_eq(k.n, 0);
    /* no key-like token of the input may appear in the message */
    const char *secrets[] = {KEY_OPS, KEY_GAME, "sk-short", "sk-llmpi-2c1e7f0a9b8d",
                             "$$$"};
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
        cr_expect_null(strstr(err_msg(), secrets[i]), "'%s' leaked: %s", secrets[i],
                       err_msg());
}

Test(api_keys, bad_lines) {
    static const struct bad c[] = {
        {"ops " KEY_OPS " *\n# c\nbad sk-short *\n",
         "keys.txt:3: the key is shorter than 16 characters"},
        {KEY_OPS "\n", "keys.txt:1: too few fields; expected NAME KEY MODELS"},
        {"ops " KEY_OPS "\n", "keys.txt:1: too few fields; expected NAME KEY MODELS"},
        {"ops " KEY_OPS " * extra\n",
         "keys.txt:1: too many fields; expected NAME KEY MODELS"},
        {"ops " KEY_OPS " a, b\n",
         "keys.txt:1: too many fields; expected NAME KEY MODELS"},
        {"o$$$ " KEY_OPS " *\n",
         "keys.txt:1: the name may hold only letters, digits, '_', '.' and '-'"},
        {"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn " KEY_OPS
         " *\n",
         "keys.txt:1: the name is longer than 64 characters"},
        {"ops sk-llmpi-2c1e7f0a9b8d+4e6f8a1b3c5d *\n",
         "keys.txt:1: the key may hold only letters, digits, '_', '.' and '-'"},
        {"ops sk-llmpi-2c1e7f0a9b8d/$$$ *\n",
         "keys.txt:1: the key may hold only letters, digits, '_', '.' and '-'"},
        {"ops " KEY_OPS " a,,b\n", "keys.txt:1: empty model name in the models list"},
        {"ops " KEY_OPS " a,\n", "keys.txt:1: empty model name in the models list"},
        {"ops " KEY_OPS " ,a\n", "keys.txt:1: empty model name in the models list"},
        {"ops " KEY_OPS " a,*\n",
         "keys.txt:1: '*' (every model) must stand alone, not in a list"},
        {"\n\nops " KEY_OPS " *\ngame " KEY_GAME " a\nops sk-llmpi-000000000000000 *\n",
         "keys.txt:5: the name is already used on line 3"},
        {"ops " KEY_OPS " *\r\ngame " KEY_GAME " a\r\nother " KEY_OPS " b\r\n",
         "keys.txt:3: the key is already used on line 1"},
        {"", "keys.txt: no API keys (every client would be refused)"},
        {"# only comments\n\n   \n\t# " KEY_OPS "\n",
         "keys.txt: no API keys (every client would be refused)"},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        expect_bad(c[i].text, strlen(c[i].text), c[i].want);

    char longkey[300] = "ops ";
    memset(longkey + 4, 'k', 257);
    strcpy(longkey + 4 + 257, " *\n");
    expect_bad(longkey, strlen(longkey),
               "keys.txt:1: the key is longer than 256 characters");

    /* NUL and control bytes are not separators */
    static const char nul_key[] = "ops sk-llmpi-2c1e7f0a\0b8d4e6f8a1b3c5d *\n";
    expect_bad(nul_key, sizeof nul_key - 1,
               "keys.txt:1: the key may hold only letters, digits, '_', '.' and '-'");
    static const char ctl_model[] = "ops " KEY_OPS " inn\001keeper\n";
    expect_bad(ctl_model, sizeof ctl_model - 1,
               "keys.txt:1: a model name has a control character");
}

static char *write_tmp(const char *text, size_t len) {
    char *path = strdup("/tmp/llmpi_keys_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    fclose(f);
    return path;
}

Test(api_keys, load) {
    char *path = write_tmp(good, strlen(good));
    struct api_keys k;
    cr_assert_eq(api_keys_load(path, &k), 0, "%s", err_msg());
    cr_expect_eq(k.n, 3);
    api_keys_free(&k);
    unlink(path);

    /* errors name the path */
    cr_expect_eq(api_keys_load(path, &k), -1);
    char want[256];
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    cr_expect_str_eq(err_msg(), want);
    free(path);

    path = write_tmp("\nops sk-short *\n", 16);
    cr_expect_eq(api_keys_load(path, &k), -1);
    snprintf(want, sizeof want, "%s:2: the key is shorter than 16 characters", path);
    cr_expect_str_eq(err_msg(), want);
    unlink(path);
    free(path);

    cr_expect_eq(api_keys_load("/tmp", &k), -1);
    cr_expect_str_eq(err_msg(), "/tmp: Is a directory");

    /* at the limit (1 MiB of comments and one key) it loads; past it, no */
    size_t big = 1 << 20;
    char *text = malloc(big + 1);
    cr_assert_not_null(text);
    memset(text, '#', big + 1);
    static const char line[] = "\nops " KEY_OPS " *\n";
    memcpy(text + big - strlen(line), line, strlen(line));
    path = write_tmp(text, big);
    cr_expect_eq(api_keys_load(path, &k), 0, "%s", err_msg());
    cr_expect_eq(k.n, 1);
    api_keys_free(&k);
    unlink(path);
    free(path);
    path = write_tmp(text, big + 1);
    cr_expect_eq(api_keys_load(path, &k), -1);
    snprintf(want, sizeof want, "%s: larger than 1 MiB; not an API keys file?", path);
    cr_expect_str_eq(err_msg(), want);
    unlink(path);
    free(path);
    free(text);
}

Test(api_keys, find) {
    struct api_keys k;
    parse_good(&k);
    const struct api_key *f = api_keys_find(&k, KEY_GAME, strlen(KEY_GAME));
    cr_assert_not_null(f);
    cr_expect_str_eq(f->name, "game");
    f = api_keys_find(&k, KEY_OPS, strlen(KEY_OPS));
    cr_assert_not_null(f);
    cr_expect_str_eq(f->name, "ops");
    f = api_keys_find(&k, KEY_SOLO, strlen(KEY_SOLO));
    cr_assert_not_null(f);
    cr_expect_str_eq(f->name, "solo");
    /* a key inside a longer buffer: only n bytes count */
    f = api_keys_find(&k, KEY_OPS "trailing", strlen(KEY_OPS));
    cr_assert_not_null(f);
    cr_expect_str_eq(f->name, "ops");

    cr_expect_null(api_keys_find(&k, "sk-llmpi-2c1e7f0a9b8d4e6f8a1b3c5e", 33)); /* last */
    cr_expect_null(
        api_keys_find(&k, "Sk-llmpi-2c1e7f0a9b8d4e6f8a1b3c5d", 33));      /* first */
    cr_expect_null(api_keys_find(&k, KEY_OPS, strlen(KEY_OPS) - 1));      /* prefix */
    cr_expect_null(api_keys_find(&k, KEY_OPS "x", strlen(KEY_OPS) + 1));  /* longer */
    cr_expect_null(api_keys_find(&k, KEY_OPS "\0", strlen(KEY_OPS) + 1)); /* + NUL */
    cr_expect_null(api_keys_find(&k, "", 0));
    cr_expect_null(api_keys_find(&k, NULL, 0));
    cr_expect_null(api_keys_find(&k, "ops", 3)); /* a name is not a key */
    api_keys_free(&k);
}

static void expect_token(const char *header, const char *want) {
    const char *tok = NULL;
    size_t n = 0;
    cr_assert_eq(api_bearer_token(header, &tok, &n), 0, "header '%s': %s", header,
                 err_msg());
    cr_expect_eq(n, strlen(want), "header '%s'", header);
    cr_expect_eq(strncmp(tok, want, n), 0, "header '%s'", header);
}

static void expect_no_token(const char *header) {
    const char *tok = NULL;
    size_t n = 0;
    cr_expect_eq(api_bearer_token(header, &tok, &n), -1, "header '%s' accepted",
                 header ? header : "(null)");
    if (header && strlen(header) > 8)
        cr_expect_null(strstr(err_msg(), header + 7), "echoed: %s", err_msg());
}

Test(api_keys, bearer) {
    expect_token("Bearer x", "x");
    expect_token("bearer   x  ", "x");
    expect_token("BEARER\t" KEY_OPS, KEY_OPS);
    expect_token("  Bearer abc\t", "abc");
    expect_token("beaRER a/b+c=", "a/b+c=");
    expect_no_token("Basic x");
    expect_no_token("Basic dXNlcjpwYXNzd29yZA==");
    expect_no_token("Bearer");
    expect_no_token("Bearer ");
    expect_no_token("Bearer \t ");
    expect_no_token("Bearerx");
    expect_no_token("Bearer:x");
    expect_no_token("Bear x");
    expect_no_token("Bearer a b");
    expect_no_token("Bearer sk-llmpi-secret other");
    expect_no_token("");
    expect_no_token(NULL);
}

Test(api_keys, allows) {
    struct api_keys k;
    parse_good(&k);
    const struct api_key *ops = &k.keys[0], *game = &k.keys[1], *solo = &k.keys[2];
    cr_expect_eq(api_key_allows(ops, "innkeeper"), 1);
    cr_expect_eq(api_key_allows(ops, "gpt2-mini"), 1);
    cr_expect_eq(api_key_allows(ops, "anything"), 1);
    cr_expect_eq(api_key_allows(game, "innkeeper"), 1);
    cr_expect_eq(api_key_allows(game, "blacksmith"), 1);
    cr_expect_eq(api_key_allows(game, "gpt2-mini"), 0);
    cr_expect_eq(api_key_allows(game, "inn"), 0);
    cr_expect_eq(api_key_allows(game, "innkeeperx"), 0);
    cr_expect_eq(api_key_allows(game, "Innkeeper"), 0);
    cr_expect_eq(api_key_allows(game, ""), 0);
    cr_expect_eq(api_key_allows(game, "*"), 0);
    cr_expect_eq(api_key_allows(game, NULL), 0);
    cr_expect_eq(api_key_allows(solo, "gpt2-mini"), 1);
    cr_expect_eq(api_key_allows(solo, "innkeeper"), 0);
    cr_expect_eq(api_key_allows(NULL, "innkeeper"), 0);
    api_keys_free(&k);
}
