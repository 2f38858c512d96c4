/* src/infer/redact.c — e-mail / phone / card / IP masking (see redact.h).
 *
 * Each kind has one or more PCRE2 patterns that find candidates; a C check
 * then accepts, narrows or rejects each candidate (Luhn, octet ranges,
 * inet_pton, digit counts, date shapes). Patterns run in byte mode and are
 * pure ASCII: a UTF-8 byte (>= 0x80) never belongs to a character class, so
 * it acts as a boundary and CJK text may touch a match on either side, and
 * invalid UTF-8 needs no special care. Lookbehinds keep a pattern from
 * starting inside a longer number or word ("x1.2.3.4", "98765-123-4567"),
 * and a rejected candidate is skipped whole, so its tail is never retried
 * as a shorter match.
 *
 * Matches of all patterns are collected, sorted, and overlapping ones are
 * merged into one masked span (masking more rather than leaking a piece);
 * the merged span takes the kind of its earliest, longest part.
 */
#include <arpa/inet.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "redact.h"

/* ---- candidate checks ----------------------------------------------------
 * Each gets the whole text and the candidate [*s, *e); it returns 1 to
 * accept (possibly after narrowing *s / *e), 0 to reject. */

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alnum_(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* What follows a number must not continue it: no letter, digit or '_', and
 * no ".5" / "-5" / ":30" / "/7" (decimals, longer ids, times, dates). */
static int clean_end(const char *t, size_t len, size_t e) {
    if (e >= len) return 1;
    if (is_alnum_(t[e])) return 0;
    if ((t[e] == '.' || t[e] == '-' || t[e] == ':' || t[e] == '/') && e + 1 < len &&
        is_digit(t[e + 1]))
        return 0;
    return 1;
}

/* Digit groups of t[s, e): starts and lengths; separators are single
 * non-digits (the patterns allow only ' ', '-', '.', '(' and ')'). */
#define MAX_GROUPS 32
struct groups {
    int n;
    size_t at[MAX_GROUPS], len[MAX_GROUPS];
};

static int split_groups(const char *t, size_t s, size_t e, struct groups *g) {
    g->n = 0;
    size_t i = s;
    while (i < e) {
        while (i < e && !is_digit(t[i])) i++;
        if (i >= e) break;
        if (g->n == MAX_GROUPS) return -1;
        g->at[g->n] = i;
        while (i < e && is_digit(t[i])) i++;
        g->len[g->n] = i - g->at[g->n];
        g->n++;
    }
    return 0;
}

static size_t digits_in(const struct groups *g, int from, int to) {
    size_t d = 0;
    for (int k = from; k <= to; k++) d += g->len[k];
    return d;
}

static int luhn_ok(const char *t, size_t s, size_t e) {
    int sum = 0, dbl = 0;
    for (size_t i = e; i-- > s;) {
        if (!is_digit(t[i])) continue;
        int d = t[i] - '0';
        if (dbl) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
        dbl = !dbl;
    }
    return sum % 10 == 0;
}

/* Groups from..to written the way card numbers are: one block of 13-19
 * digits; 4-4-4-... with a last group of 1-4 (13-19 digits); Amex 4-6-5 and
 * Diners 4-6-4. One separator character throughout. */
static int card_shape(const char *t, const struct groups *g, int from, int to) {
    int n = to - from + 1;
    size_t total = digits_in(g, from, to);
    if (total < 13 || total > 19) return 0;
    if (n == 1) return 1;
    char sep = t[g->at[from] + g->len[from]];
    for (int k = from; k < to; k++) {
        size_t end = g->at[k] + g->len[k];
        if (g->at[k + 1] != end + 1 || t[end] != sep) return 0;
    }
    if (n == 3 && g->len[from] == 4 && g->len[from + 1] == 6 &&
        (g->len[to] == 5 || g->len[to] == 4))
        return 1;
    if (n < 4) return 0;
    for (int k = from; k < to; k++)
        if (g->len[k] != 4) return 0;
    return g->len[to] >= 1 && g->len[to] <= 4;
}

/* A run of digit groups: the leftmost, then longest, window of whole groups
 * that is shaped like a card, starts with 2-6 (the major industry
 * identifiers of payment cards) and passes Luhn. */
static int check_card(const char *t, size_t len, size_t *s, size_t *e) {
    struct groups g;
    int truncated = split_groups(t, *s, *e, &g) != 0;
    for (int i = 0; i < g.n; i++) {
        if (t[g.at[i]] < '2' || t[g.at[i]] > '6') continue;
        for (int j = g.n - 1; j >= i; j--) {
            size_t we = g.at[j] + g.len[j];
            if (we == *e && !clean_end(t, len, we)) continue;
            if (card_shape(t, &g, i, j) && luhn_ok(t, g.at[i], we)) {
                *s = g.at[i];
                *e = we;
                return 1;
            }
        }
    }
    /* A run longer than MAX_GROUPS groups: go on from its last group seen
     * (find_all resumes at a narrowed end of a rejected candidate). */
    if (truncated) *e = g.at[g.n - 1];
    return 0;
}

static int check_ipv4(const char *t, size_t len, size_t *s, size_t *e) {
    (void)len;
    int v = 0;
    for (size_t i = *s; i <= *e; i++) {
        if (i == *e || t[i] == '.') {
            if (v > 255) return 0;
            v = 0;
        } else {
            v = v * 10 + (t[i] - '0');
        }
    }
    return 1;
}

/* Drop a sentence's full stop or a lone trailing ':' ("at fe80::1: ..."),
 * then let inet_pton decide. */
static int check_ipv6(const char *t, size_t len, size_t *s, size_t *e) {
    size_t b = *s, f = *e;
    while (f > b && t[f - 1] == '.') f--;
    if (f - b >= 2 && t[f - 1] == ':' && t[f - 2] != ':') f--;
    if (f == *e && f < len && is_alnum_(t[f])) return 0; /* "...:beefy" */
    char buf[INET6_ADDRSTRLEN];
    if (f - b >= sizeof buf) return 0;
    int hex = 0;
    for (size_t i = b; i < f; i++)
        if (t[i] != ':' && t[i] != '.') hex = 1;
    if (!hex) return 0; /* "::" alone is punctuation more often than an address */
    memcpy(buf, t + b, f - b);
    buf[f - b] = '\0';
    unsigned char addr[16];
    if (inet_pton(AF_INET6, buf, addr) != 1) return 0;
    *e = f;
    return 1;
}

/* "+CC ...": 8-15 digits in all (E.164 allows 15), extension excluded;
 * narrowed group by group from the right until the count fits, so a number
 * that follows the phone ("+1 555 123 4567 2024 ...") is not fatal. */
static int check_intl(const char *t, size_t len, size_t *s, size_t *e) {
    size_t main_end = *e;
    for (size_t i = *s + 1; i < *e; i++)
        if (t[i] == 'x' || t[i] == 'e') {
            main_end = i;
            break;
        }
    struct groups g;
    if (split_groups(t, *s, main_end, &g) || g.n == 0) return 0;
    for (int j = g.n - 1; j >= 0; j--) {
        size_t d = digits_in(&g, 0, j);
        if (d < 8) return 0;
        if (d > 15) continue;
        if (j == g.n - 1) return clean_end(t, len, *e);
        *e = g.at[j] + g.len[j];
        if (t[*e] == ')') (*e)++;
        return 1;
    }
    return 0;
}

/* North American 555-123-4567 / (555) 123-4567 / 1-800-555-0199. The
 * space-only form "555 123 4567" must also stand apart from other numbers,
 * or a list of token ids ("50256 464 318 2068 ...") would look like one. */
static int check_nanp(const char *t, size_t len, size_t *s, size_t *e) {
    int spaces_only = 1;
    for (size_t i = *s; i < *e; i++)
        if (t[i] == '-' || t[i] == '.' || t[i] == '(' || t[i] == 'x' || t[i] == 'e')
            spaces_only = 0;
    if (!spaces_only) return 1;
    if (*s >= 2 && t[*s - 1] == ' ' && is_digit(t[*s - 2])) return 0;
    if (*e + 1 < len && t[*e] == ' ' && is_digit(t[*e + 1])) return 0;
    return 1;
}

/* National numbers with a trunk 0 (020 7946 0958, 06 12 34 56 78,
 * 030 12345678): 9-12 digits, not a dd-mm-yyyy date; with the international
 * call prefix 00 instead of '+' (0044 20 7946 0958) up to 17. Narrowed from
 * the right like check_intl. */
static int check_trunk0(const char *t, size_t len, size_t *s, size_t *e) {
    struct groups g;
    if (split_groups(t, *s, *e, &g) || g.n < 2) return 0;
    if (g.n >= 3 && g.len[0] <= 2 && g.len[1] <= 2 && g.len[2] == 4) return 0;
    size_t most = t[*s + 1] == '0' ? 17 : 12;
    for (int j = g.n - 1; j >= 1; j--) {
        size_t d = digits_in(&g, 0, j);
        size_t we = g.at[j] + g.len[j];
        if (d < 9) return 0;
        if (d > most) continue;
        if (we == *e && !clean_end(t, len, we)) return 0;
        *e = we;
        return 1;
    }
    return 0;
}

/* Chinese mobile numbers: 1[3-9]x xxxx xxxx, 11 digits, also unseparated. */
static int check_cn_mobile(const char *t, size_t len, size_t *s, size_t *e) {
    (void)s;
    return clean_end(t, len, *e);
}

/* ---- the pattern table --------------------------------------------------- */

#define EXT "(?:[ ]?(?:x|ext\\.?)[ ]?[0-9]{1,6})?"

static const struct pattern_def {
    enum redact_kind kind;
    const char *re;
    int (*check)(const char *t, size_t len, size_t *s, size_t *e);
} defs[] = {
    {REDACT_EMAIL,
     "(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@"
     "[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
     "(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
     "\\.[A-Za-z]{2,63}(?![A-Za-z0-9_-])",
     NULL},
    /* Runs of digit groups; check_card picks the card inside, if any. */
    {REDACT_CARD, "(?<![0-9A-Za-z_.+])[0-9]+(?:[ -][0-9]+)*+", check_card},
    {REDACT_IP,
     "(?<![0-9A-Za-z_.])[0-9]{1,3}(?:\\.[0-9]{1,3}){3}"
     "(?![0-9A-Za-z_]|\\.[0-9])",
     check_ipv4},
    /* A run of hex digits, ':' and '.' holding at least two ':', not
     * starting inside a word or inside another such run. */
    {REDACT_IP,
     "(?<![0-9A-Za-z_.])(?<![0-9A-Fa-f:]:)"
     "(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]++",
     check_ipv6},
    {REDACT_PHONE,
     "(?<![0-9A-Za-z_+])(?:\\+[0-9]{1,3}|\\(\\+[0-9]{1,3}\\))"
     "(?:[ .-]?(?:\\([0-9]{1,5}\\)|[0-9]{1,5})){1,6}+" EXT,
     check_intl},
    {REDACT_PHONE,
     "(?<![0-9A-Za-z_+.-])(?:1[ .-]?)?"
     "(?:\\([0-9]{3}\\)[ .-]?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}" EXT
     "(?![0-9A-Za-z_]|[.:/-][0-9])",
     check_nanp},
    {REDACT_PHONE, "(?<![0-9A-Za-z_+.-])0[0-9]{1,4}(?:[ -][0-9]{2,8}){1,4}+",
     check_trunk0},
    {REDACT_PHONE, "(?<![0-9A-Za-z_+.-])1[3-9][0-9](?:([ -]?)[0-9]{4}\\1[0-9]{4})",
     check_cn_mobile},
};
#define NDEFS ((int)(sizeof defs / sizeof defs[0]))

struct redact_pattern {
    pcre2_code *code;
    enum redact_kind kind;
    int (*check)(const char *t, size_t len, size_t *s, size_t *e);
};

static const char *const tags[REDACT_KINDS] = {"[EMAIL]", "[PHONE]", "[CARD]", "[IP]"};

const char *redact_tag(enum redact_kind kind) {
    return kind >= 0 && kind < REDACT_KINDS ? tags[kind] : "[REDACTED]";
}

int redactor_init(struct redactor *r) {
    r->npat = 0;
    r->pat = calloc(NDEFS, sizeof *r->pat);
    if (!r->pat) return err_set("out of memory");
    for (int i = 0; i < NDEFS; i++) {
        int errcode;
        PCRE2_SIZE erroff;
        pcre2_code *code =
            pcre2_compile((PCRE2_SPTR)defs[i].re, PCRE2_ZERO_TERMINATED, PCRE2_NEVER_UTF,
                          &errcode, &erroff, NULL);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(errcode, msg, sizeof msg);
            redactor_free(r);
            return err_set("PCRE2 cannot compile redaction pattern %d at offset %zu: %s",
                           i, (size_t)erroff, (char *)msg);
        }
        /* JIT is a speed-up only: pcre2_match falls back to the interpreter. */
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        r->pat[i].code = code;
        r->pat[i].kind = defs[i].kind;
        r->pat[i].check = defs[i].check;
        r->npat = i + 1;
    }
    return 0;
}

void redactor_free(struct redactor *r) {
    if (!r) return;
    for (int i = 0; i < r->npat; i++) pcre2_code_free(r->pat[i].code);
    free(r->pat);
    r->pat = NULL;
    r->npat = 0;
}

/* ---- matching and rewriting --------------------------------------------- */

struct span {
    size_t s, e;
    enum redact_kind kind;
};

struct spans {
    struct span *v;
    size_t n, cap;
};

static int spans_push(struct spans *sp, size_t s, size_t e, enum redact_kind kind) {
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? 2 * sp->cap : 16;
        struct span *v = realloc(sp->v, cap * sizeof *v);
        if (!v) return err_set("out of memory");
        sp->v = v;
        sp->cap = cap;
    }
    sp->v[sp->n++] = (struct span){s, e, kind};
    return 0;
}

static int span_cmp(const void *a, const void *b) {
    const struct span *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    if (x->e != y->e) return x->e > y->e ? -1 : 1;
    return (int)x->kind - (int)y->kind;
}

static int find_all(const struct redact_pattern *p, const char *text, size_t len,
                    pcre2_match_data *md, struct spans *sp) {
    size_t at = 0;
    while (at < len) {
        int rc = pcre2_match(p->code, (PCRE2_SPTR)text, len, at, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return err_set("redaction: PCRE2 matching failed at byte %zu: %s", at,
                           (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], e = ov[1], cs = s, ce = e;
        if (e <= s) { /* no pattern matches empty text; be safe anyway */
            at = s + 1;
            continue;
        }
        if (!p->check || p->check(text, len, &cs, &ce)) {
            if (spans_push(sp, cs, ce, p->kind)) return -1;
            at = ce > s ? ce : e; /* the rest of a run may hold another match */
        } else {
            /* Skip the whole rejected candidate, or go on from where the
             * check stopped looking. */
            at = ce > s && ce < e ? ce : e;
        }
    }
    return 0;
}

char *redact(const struct redactor *r, const char *text, size_t len,
             struct redact_counts *counts) {
    if (counts) memset(counts, 0, sizeof *counts);
    if (!text) len = 0;
    struct spans sp = {0};
    pcre2_match_data *md = NULL;
    if (len > 0) {
        md = pcre2_match_data_create(8, NULL);
        if (!md) {
            err_set("out of memory for PCRE2 match data");
            return NULL;
        }
        for (int i = 0; i < r->npat; i++) {
            if (find_all(&r->pat[i], text, len, md, &sp)) {
                pcre2_match_data_free(md);
                free(sp.v);
                return NULL;
            }
        }
        pcre2_match_data_free(md);
    }
    if (sp.n > 1) qsort(sp.v, sp.n, sizeof *sp.v, span_cmp);
    /* Merge overlaps in place; count and size the output. */
    size_t m = 0, out_len = len;
    for (size_t i = 0; i < sp.n; i++) {
        if (m > 0 && sp.v[i].s < sp.v[m - 1].e) {
            if (sp.v[i].e > sp.v[m - 1].e) sp.v[m - 1].e = sp.v[i].e;
        } else {
            sp.v[m++] = sp.v[i];
        }
    }
    for (size_t i = 0; i < m; i++) {
        out_len -= sp.v[i].e - sp.v[i].s;
        out_len += strlen(tags[sp.v[i].kind]);
    }
    char *out = malloc(out_len + 1);
    if (!out) {
        free(sp.v);
        err_set("out of memory");
        return NULL;
    }
    size_t o = 0, at = 0;
    for (size_t i = 0; i < m; i++) {
        memcpy(out + o, text + at, sp.v[i].s - at);
        o += sp.v[i].s - at;
        const char *tag = tags[sp.v[i].kind];
        memcpy(out + o, tag, strlen(tag));
        o += strlen(tag);
        at = sp.v[i].e;
        if (counts) {
            switch (sp.v[i].kind) {
            case REDACT_EMAIL: counts->email++; break;
            case REDACT_PHONE: counts->phone++; break;
            case REDACT_CARD: counts->card++; break;
            default: counts->ip++; break;
            }
        }
    }
    if (len > at) memcpy(out + o, text + at, len - at);
    o += len - at;
    out[o] = '\0';
    free(sp.v);
    return out;
}
