/* tests/fuzz/fuzz_tokenizer.c — libFuzzer harness for the tokenizer.
 *
 * The input is split at its first two NUL bytes into vocab.json, merges.txt
 * and a text. Both loaders must either load or fail with a message (never
 * crash, leak or read out of bounds); when a vocabulary loads, encoding the
 * text and decoding it must give the text back, and saving the vocabulary and
 * loading it again must give the same ids. The text is also round-tripped
 * through the fixture's real GPT-2-style vocabulary and the bytes tokenizer,
 * so the encoder sees arbitrary bytes even when the fuzzed vocabulary is
 * broken. Build and run: tests/fuzz/run.sh (see README.md there).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "tests/golden/tokenizer"
#endif

static struct tokenizer *fixture, *bytes;

static void check_round_trip(const struct tokenizer *t, const char *text, size_t len,
                             int32_t **ids_out, size_t *n_out) {
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, dlen = 0;
    if (tokenizer_encode(t, text, len, &ids, &n, &cap)) abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tokenizer_vocab_size(t)) abort();
    char *back = tokenizer_decode(t, ids, n, &dlen);
    if (!back || dlen != len || (len && memcmp(back, text, len))) abort();
    free(back);
    if (ids_out) {
        *ids_out = ids;
        *n_out = n;
    } else {
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fixture) {
        fixture = tokenizer_load_files(FIXTURE_DIR "/vocab.json", FIXTURE_DIR "/merges.txt");
        bytes = tokenizer_bytes();
        if (!fixture || !bytes) {
            fprintf(stderr, "fuzz: cannot load the fixture: %s\n", err_msg());
            abort();
        }
    }
    const char *p = (const char *)data;
    const char *nul1 = memchr(p, 0, size);
    const char *nul2 = nul1 ? memchr(nul1 + 1, 0, size - (size_t)(nul1 + 1 - p)) : NULL;
    size_t vlen = nul1 ? (size_t)(nul1 - p) : size;
    const char *merges = nul1 ? nul1 + 1 : "";
    size_t mlen = nul1 ? (nul2 ? (size_t)(nul2 - merges) : size - vlen - 1) : 0;
    const char *text = nul2 ? nul2 + 1 : p;
    size_t tlen = nul2 ? size - (size_t)(text - p) : size;

    check_round_trip(fixture, text, tlen, NULL, NULL);
    check_round_trip(bytes, text, tlen, NULL, NULL);

    struct tokenizer *t = tokenizer_load_strings(p, vlen, merges, mlen);
    if (!t) {
        if (!err_msg()[0]) abort(); /* a failure must say why */
        return 0;
    }
    int32_t *a = NULL;
    size_t na = 0;
    check_round_trip(t, text, tlen, &a, &na);
    char *v2, *m2;
    size_t v2len, m2len;
    if (tokenizer_to_strings(t, &v2, &v2len, &m2, &m2len)) abort();
    struct tokenizer *u = tokenizer_load_strings(v2, v2len, m2, m2len);
    if (!u) {
        fprintf(stderr, "fuzz: saved vocabulary does not load back: %s\n", err_msg());
        abort();
    }
    int32_t *b = NULL;
    size_t nb = 0;
    check_round_trip(u, text, tlen, &b, &nb);
    if (na != nb || (na && memcmp(a, b, na * sizeof *a))) abort();
    free(a);
    free(b);
    free(v2);
    free(m2);
    tokenizer_free(u);
    tokenizer_free(t);
    return 0;
}
