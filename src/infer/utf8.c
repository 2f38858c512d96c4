/* src/infer/utf8.c — UTF-8 validity of generated text (utf8.h). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

/* The sequence length a lead byte announces, 0 for a byte no sequence
 * starts with. */
static size_t lead_len(unsigned char b) {
    return b < 0x80                 ? 1
           : b >= 0xc2 && b <= 0xdf ? 2
           : b >= 0xe0 && b <= 0xef ? 3
           : b >= 0xf0 && b <= 0xf4 ? 4
                                    : 0;
}

/* 1 when p[1] may follow lead byte p[0] (the second byte carries the
 * overlong / surrogate / range limits of 3- and 4-byte forms). */
static int second_ok(unsigned char b, unsigned char c) {
    if ((c & 0xc0) != 0x80) return 0;
    return !((b == 0xe0 && c < 0xa0) || (b == 0xed && c >= 0xa0) ||
             (b == 0xf0 && c < 0x90) || (b == 0xf4 && c >= 0x90));
}

size_t utf8_len(const unsigned char *p, size_t n) {
    size_t k = lead_len(p[0]);
    if (k == 0 || k > n) return 0;
    if (k > 1 && !second_ok(p[0], p[1])) return 0;
    for (size_t j = 2; j < k; j++)
        if ((p[j] & 0xc0) != 0x80) return 0;
    return k;
}

int utf8_sanitize(char **s, size_t *len) {
    const unsigned char *p = (const unsigned char *)*s;
    size_t n = *len, bad = 0;
    for (size_t i = 0, k; i < n; i += k ? k : 1)
        bad += (k = p[i] ? utf8_len(p + i, n - i) : 0) == 0;
    if (!bad) return 0;
    char *o = malloc(n + 2 * bad + 1);
    if (!o) return err_set("out of memory");
    size_t w = 0;
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        k = p[i] ? utf8_len(p + i, n - i) : 0;
        memcpy(o + w, k ? (const char *)p + i : "\xef\xbf\xbd", k ? k : 3);
        w += k ? k : 3;
    }
    o[w] = '\0';
    free(*s);
    *s = o;
    *len = w;
    return 0;
}

size_t utf8_stream_cut(const unsigned char *p, size_t n) {
    /* Only the last 3 bytes can be the start of an unfinished sequence. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        size_t i = n - back;
        size_t k = lead_len(p[i]);
        if (k <= 1) {
            if ((p[i] & 0xc0) == 0x80) continue; /* a continuation: look further back */
            return n; /* ASCII or an invalid byte: cut nothing */
        }
        if (k <= back) return n; /* complete (or invalid): nothing held back */
        /* valid so far? then hold it back; else it can never complete */
        if (back >= 2 && !second_ok(p[i], p[i + 1])) return n;
        for (size_t j = i + 2; j < n; j++)
            if ((p[j] & 0xc0) != 0x80) return n;
        return i;
    }
    return n;
}
