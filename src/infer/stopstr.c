/* src/infer/stopstr.c — stop-string matching with hold-back (see stopstr.h).
 *
 * After each feed, pending = the bytes not yet released. If a stop string
 * occurs in pending, the text before its earliest occurrence is released and
 * the match reported. Otherwise the longest suffix of pending that is a
 * proper prefix of some stop string is kept (it may still complete) and the
 * rest released. Any occurrence lies wholly in pending: a byte is released
 * only when no stop string can start at or before it and still complete.
 * Cost per fed byte is O(sum of stop-string lengths), fine for a few short
 * strings.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stopstr.h"

int stopstr_init(struct stopstr *m, const char *const *strings, int n) {
    memset(m, 0, sizeof *m);
    m->matched = -1;
    if (n < 0 || n > STOPSTR_MAX)
        return err_set("at most %d stop strings (got %d)", STOPSTR_MAX, n);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(strings[i]);
        if (len == 0) {
            stopstr_free(m);
            return err_set("stop string %d is empty", i + 1);
        }
        m->s[i] = malloc(len + 1);
        if (!m->s[i]) {
            stopstr_free(m);
            return err_set("out of memory");
        }
        memcpy(m->s[i], strings[i], len + 1);
        m->len[i] = len;
        m->n = i + 1;
    }
    return 0;
}

void stopstr_free(struct stopstr *m) {
    for (int i = 0; i < m->n; i++)
        free(m->s[i]);
    free(m->pending);
    free(m->emit);
    memset(m, 0, sizeof *m);
    m->matched = -1;
}

static int grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    char *p = realloc(*buf, c);
    if (!p) return err_set("out of memory");
    *buf = p;
    *cap = c;
    return 0;
}

/* Move the first k pending bytes to the emit buffer. */
static int release(struct stopstr *m, size_t k, const char **out, size_t *out_len) {
    if (grow(&m->emit, &m->ecap, k + 1)) return -1;
    if (k) memcpy(m->emit, m->pending, k);
    memmove(m->pending, m->pending + k, m->npending - k);
    m->npending -= k;
    *out = m->emit;
    *out_len = k;
    return 0;
}

int stopstr_feed(struct stopstr *m, const char *bytes, size_t len, const char **out,
                 size_t *out_len) {
    *out = "";
    *out_len = 0;
    if (grow(&m->pending, &m->cap, m->npending + len + 1)) return -1;
    if (len) memcpy(m->pending + m->npending, bytes, len);
    m->npending += len;
    if (m->n == 0) return release(m, m->npending, out, out_len);

    /* earliest complete occurrence of any stop string */
    size_t best = (size_t)-1;
    int which = -1;
    for (int i = 0; i < m->n; i++) {
        if (m->len[i] > m->npending) continue;
        for (size_t p = 0; p + m->len[i] <= m->npending && p < best; p++) {
            if (memcmp(m->pending + p, m->s[i], m->len[i]) == 0) {
                best = p;
                which = i;
                break;
            }
        }
    }
    if (which >= 0) {
        m->matched = which;
        if (release(m, best, out, out_len)) return -1;
        m->npending = 0; /* the stop string and anything after it are dropped */
        return 1;
    }

    /* longest suffix that is a proper prefix of a stop string */
    size_t hold = 0;
    for (int i = 0; i < m->n; i++) {
        size_t maxh = m->len[i] - 1 < m->npending ? m->len[i] - 1 : m->npending;
        for (size_t h = maxh; h > hold; h--) {
            if (memcmp(m->pending + m->npending - h, m->s[i], h) == 0) {
                hold = h;
                break;
            }
        }
    }
    return release(m, m->npending - hold, out, out_len);
}

void stopstr_flush(struct stopstr *m, const char **out, size_t *out_len) {
    *out = m->pending ? m->pending : "";
    *out_len = m->npending;
    m->npending = 0;
}
