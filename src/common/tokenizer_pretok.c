/* src/common/tokenizer_pretok.c — GPT-2 pre-tokenisation through PCRE2 (see
 * tokenizer_pretok.h). JIT-compiled matching is several times faster than the
 * interpreter and is what keeps encoding near the BPE cache's speed; where
 * JIT is unavailable the interpreter gives the same pieces. */
#include <pcre2.h>
#include <stdlib.h>

#include "err.h"
#include "tokenizer_pretok.h"

static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct pretok {
    pcre2_code *code;
    pcre2_match_data *match;
    int jit;
};

struct pretok *pretok_new(void) {
    struct pretok *p = calloc(1, sizeof *p);
    if (!p) {
        err_set("out of memory");
        return NULL;
    }
    int errcode;
    PCRE2_SIZE erroff;
    p->code = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff,
                            NULL);
    if (!p->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        err_set("PCRE2 cannot compile GPT-2's pattern at offset %zu: %s", (size_t)erroff,
                (char *)msg);
        free(p);
        return NULL;
    }
    p->jit = pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE) == 0;
    p->match = pcre2_match_data_create_from_pattern(p->code, NULL);
    if (!p->match) {
        pcre2_code_free(p->code);
        free(p);
        err_set("out of memory for PCRE2 match data");
        return NULL;
    }
    return p;
}

void pretok_free(struct pretok *p) {
    if (!p) return;
    pcre2_match_data_free(p->match);
    pcre2_code_free(p->code);
    free(p);
}

int pretok_split(struct pretok *p, const char *text, size_t len,
                 int (*piece)(const char *start, size_t len, void *ctx), void *ctx) {
    size_t at = 0;
    while (at < len) {
        int rc = p->jit ? pcre2_jit_match(p->code, (PCRE2_SPTR)text, len, at, 0, p->match, NULL)
                        : pcre2_match(p->code, (PCRE2_SPTR)text, len, at, 0, p->match, NULL);
        size_t start = len, end = len;
        if (rc >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->match);
            start = ov[0];
            end = ov[1];
        } else if (rc != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return err_set("PCRE2 matching failed at byte %zu: %s", at, (char *)msg);
        }
        if (start > at && piece(text + at, start - at, ctx)) return -1; /* invalid UTF-8 */
        if (end > start && piece(text + start, end - start, ctx)) return -1;
        if (end <= at) return err_set("PCRE2 made no progress at byte %zu", at); /* cannot happen */
        at = end;
    }
    return 0;
}

static int is_printable_ascii(unsigned char c) { return c > ' ' && c < 0x7f; }

size_t pretok_safe_cut(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = len; i >= 2; i--) {
        if (i < len && s[i - 1] == '\n' && is_printable_ascii(s[i - 2]) &&
            is_printable_ascii(s[i]))
            return i;
    }
    return 0;
}
