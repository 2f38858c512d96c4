/* src/infer/conv_prompt.c — checking and rendering prompt templates. */
#include <stdlib.h>
#include <string.h>

#include "conv_prompt.h"
#include "err.h"

static const char *const names[] = {"persona", "agent",   "history",
                                    "speaker", "message", "specialists"};
#define N_NAMES (int)(sizeof names / sizeof names[0])

int conv_buf_add(struct conv_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return err_set("prompt: out of memory (%zu bytes)", cap);
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

int conv_buf_str(struct conv_buf *b, const char *s) {
    return conv_buf_add(b, s, strlen(s));
}

int conv_buf_line(struct conv_buf *b, const char *who, const char *text) {
    if (conv_buf_str(b, who) || conv_buf_add(b, ": ", 2) || conv_buf_str(b, text))
        return -1;
    return conv_buf_add(b, "\n", 1);
}

/* The placeholder at t (just after '{'): its index and length, or -1. */
static int placeholder(const char *t, size_t *len) {
    const char *close = strchr(t, '}');
    if (!close) return -1;
    for (int i = 0; i < N_NAMES; i++)
        if ((size_t)(close - t) == strlen(names[i]) &&
            !strncmp(t, names[i], strlen(names[i]))) {
            *len = strlen(names[i]) + 1;
            return i;
        }
    return -1;
}

static int bad_placeholder(const char *tmpl, const char *at) {
    const char *close = strchr(at + 1, '}');
    if (!close) return err_set("unclosed '{' at offset %td", at - tmpl);
    return err_set(
        "unknown placeholder {%.*s} (known: {persona} {agent} {history} {speaker} "
        "{message} {specialists}; '{{' for a literal brace)",
        (int)(close - at - 1), at + 1);
}

int conv_template_check(const char *tmpl) {
    for (const char *p = tmpl; *p; p++) {
        size_t len;
        if (*p != '{') continue;
        if (p[1] == '{') {
            p++;
            continue;
        }
        if (placeholder(p + 1, &len) < 0) return bad_placeholder(tmpl, p);
        p += len;
    }
    return 0;
}

char *conv_template_render(const char *tmpl, const struct conv_prompt_vars *v) {
    const char *vals[N_NAMES] = {v->persona, v->agent,   v->history,
                                 v->speaker, v->message, v->specialists};
    struct conv_buf b = {0};
    const char *p = tmpl;
    if (conv_buf_add(&b, "", 0)) return NULL;
    while (*p) {
        size_t run = strcspn(p, "{}"), len;
        if (conv_buf_add(&b, p, run)) goto fail;
        p += run;
        if (!*p) break;
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            if (conv_buf_add(&b, p, 1)) goto fail;
            p += 2;
        } else if (*p == '}') {
            if (conv_buf_add(&b, p, 1)) goto fail;
            p++;
        } else {
            int i = placeholder(p + 1, &len);
            if (i < 0) {
                bad_placeholder(tmpl, p);
                goto fail;
            }
            if (vals[i] && conv_buf_str(&b, vals[i])) goto fail;
            p += 1 + len;
        }
    }
    return b.s;
fail:
    free(b.s);
    return NULL;
}
