/* src/infer/api_keys.c — the API keys file and key lookup (see api_keys.h).
 *
 * The parser walks the text line by line and splits each line into fields
 * itself (no strtok, no sscanf): the text may hold NUL bytes, CRLF line
 * ends, or a key pasted in the wrong column, and every error must name the
 * line without quoting any field of it. A field may be a key even where a
 * name or a model list was expected (a line missing its NAME), so no
 * message quotes a name either; duplicates name the earlier line instead.
 *
 * Keys are secrets in memory too: buffers that held the file or a key are
 * overwritten before they are freed (through a volatile pointer, so the
 * stores are not optimised away as dead), which keeps them out of reused
 * heap blocks and core dumps of a long-running server.
 *
 * api_keys_find compares against every key, always all of them and each
 * over max(presented, key) bytes with the differences OR-ed together: the
 * time depends on the lengths only, never on how many leading bytes match
 * or on which key matched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_keys.h"
#include "err.h"

#define NAME_MAX_LEN 64
#define KEY_MIN_LEN 16
#define KEY_MAX_LEN 256
#define MODEL_MAX_LEN 256
#define FILE_MAX_BYTES (1 << 20) /* a keys file is a few KB; refuse a wrong path */

static void wipe(void *p, size_t n) {
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static void wipe_free(char *s) {
    if (!s) return;
    wipe(s, strlen(s));
    free(s);
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void key_free(struct api_key *k) {
    free(k->name);
    wipe_free(k->key);
    for (int i = 0; i < k->n_models; i++)
        free(k->models[i]);
    free(k->models);
    memset(k, 0, sizeof *k);
}

void api_keys_free(struct api_keys *k) {
    if (!k) return;
    for (int i = 0; i < k->n; i++)
        key_free(&k->keys[i]);
    free(k->keys);
    k->keys = NULL;
    k->n = 0;
}

/* ---- parsing ------------------------------------------------------------- */

static int id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

static int all_id_chars(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!id_char(s[i])) return 0;
    return 1;
}

static int is_sep(char c) { return c == ' ' || c == '\t' || c == '\r'; }

struct field {
    const char *p;
    size_t n;
};

/* The comma list of MODELS into k (models, n_models), or "*". */
static int parse_models(const struct field *f, const char *path, int line,
                        struct api_key *k) {
    if (f->n == 1 && f->p[0] == '*') {
        k->all_models = 1;
        return 0;
    }
    int n = 1;
    for (size_t i = 0; i < f->n; i++)
        n += f->p[i] == ',';
    if (!(k->models = calloc((size_t)n, sizeof *k->models)))
        return err_set("%s:%d: out of memory", path, line);
    const char *s = f->p, *end = f->p + f->n;
    while (k->n_models < n) {
        const char *e = memchr(s, ',', (size_t)(end - s));
        if (!e) e = end;
        size_t len = (size_t)(e - s);
        if (len == 0)
            return err_set("%s:%d: empty model name in the models list", path, line);
        if (len == 1 && *s == '*')
            return err_set("%s:%d: '*' (every model) must stand alone, not in a list",
                           path, line);
        if (len > MODEL_MAX_LEN)
            return err_set("%s:%d: a model name is longer than %d characters", path, line,
                           MODEL_MAX_LEN);
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c <= ' ' || c == 0x7f)
                return err_set("%s:%d: a model name has a control character", path, line);
        }
        if (!(k->models[k->n_models] = dup_n(s, len)))
            return err_set("%s:%d: out of memory", path, line);
        k->n_models++;
        s = e + 1;
    }
    return 0;
}

/* One line with three fields into k; lines[] are the earlier keys' lines. */
static int parse_line(const struct field *f, const char *path, int line,
                      const struct api_keys *prev, const int *lines, struct api_key *k) {
    if (f[0].n > NAME_MAX_LEN)
        return err_set("%s:%d: the name is longer than %d characters", path, line,
                       NAME_MAX_LEN);
    if (!all_id_chars(f[0].p, f[0].n))
        return err_set("%s:%d: the name may hold only letters, digits, '_', '.' and '-'",
                       path, line);
    if (f[1].n < KEY_MIN_LEN)
        return err_set("%s:%d: the key is shorter than %d characters", path, line,
                       KEY_MIN_LEN);
    if (f[1].n > KEY_MAX_LEN)
        return err_set("%s:%d: the key is longer than %d characters", path, line,
                       KEY_MAX_LEN);
    if (!all_id_chars(f[1].p, f[1].n))
        return err_set("%s:%d: the key may hold only letters, digits, '_', '.' and '-'",
                       path, line);
    for (int i = 0; i < prev->n; i++) {
        const struct api_key *o = &prev->keys[i];
        if (strlen(o->name) == f[0].n && !memcmp(o->name, f[0].p, f[0].n))
            return err_set("%s:%d: the name is already used on line %d", path, line,
                           lines[i]);
        if (strlen(o->key) == f[1].n && !memcmp(o->key, f[1].p, f[1].n))
            return err_set("%s:%d: the key is already used on line %d", path, line,
                           lines[i]);
    }
    if (!(k->name = dup_n(f[0].p, f[0].n)) || !(k->key = dup_n(f[1].p, f[1].n)))
        return err_set("%s:%d: out of memory", path, line);
    return parse_models(&f[2], path, line, k);
}

int api_keys_parse(const char *text, size_t len, const char *path, struct api_keys *out) {
    if (!path) path = "api keys";
    out->keys = NULL;
    out->n = 0;
    struct api_keys k = {NULL, 0};
    int *lines = NULL, cap = 0, rc = 0, line = 0;
    size_t pos = 0;
    while (pos < len && !rc) {
        line++;
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + 1;
        const char *hash = memchr(s, '#', n);
        if (hash) n = (size_t)(hash - s);

        struct field f[4];
        int nf = 0;
        for (size_t i = 0; i < n;) {
            while (i < n && is_sep(s[i]))
                i++;
            if (i == n) break;
            size_t b = i;
            while (i < n && !is_sep(s[i]))
                i++;
            if (nf < 4) f[nf] = (struct field){s + b, i - b};
            nf++;
        }
        if (nf == 0) continue;
        if (nf != 3) {
            rc = err_set("%s:%d: %s fields; expected NAME KEY MODELS", path, line,
                         nf < 3 ? "too few" : "too many");
            break;
        }
        if (k.n == cap) {
            int c = cap ? 2 * cap : 8;
            struct api_key *p = realloc(k.keys, (size_t)c * sizeof *p);
            if (p) k.keys = p;
            int *l = p ? realloc(lines, (size_t)c * sizeof *l) : NULL;
            if (l) lines = l;
            if (!p || !l) {
                rc = err_set("%s:%d: out of memory", path, line);
                break;
            }
            cap = c;
        }
        struct api_key *nk = &k.keys[k.n];
        memset(nk, 0, sizeof *nk);
        lines[k.n] = line;
        k.n++; /* freed with the rest should the line fail */
        rc = parse_line(f, path, line, &(struct api_keys){k.keys, k.n - 1}, lines, nk);
    }
    if (!rc && k.n == 0)
        rc = err_set("%s: no API keys (every client would be refused)", path);
    free(lines);
    if (rc) {
        api_keys_free(&k);
        return -1;
    }
    *out = k;
    return 0;
}

int api_keys_load(const char *path, struct api_keys *out) {
    out->keys = NULL;
    out->n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set("%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : err_set("%s: out of memory", path);
    while (!rc) {
        if (n > FILE_MAX_BYTES) {
            rc = err_set("%s: larger than 1 MiB; not an API keys file?", path);
            break;
        }
        if (n == cap) {
            char *p = malloc(cap * 2); /* not realloc: the old block is wiped */
            if (!p) {
                rc = err_set("%s: out of memory", path);
                break;
            }
            memcpy(p, buf, n);
            wipe(buf, n);
            free(buf);
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) rc = err_set("%s: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!rc) rc = api_keys_parse(buf, n, path, out);
    if (buf) wipe(buf, n);
    free(buf);
    return rc;
}

/* ---- lookup -------------------------------------------------------------- */

/* 1 when a[0..na) == b[0..nb), in time that depends on max(na, nb) only. */
static int ct_equal(const char *a, size_t na, const char *b, size_t nb) {
    size_t n = na > nb ? na : nb;
    unsigned diff = na != nb;
    for (size_t i = 0; i < n; i++) {
        /* out-of-range bytes read as 0 through a mask, not a branch */
        size_t ia = i < na ? i : 0, ib = i < nb ? i : 0;
        unsigned char ma = (unsigned char)-(i < na), mb = (unsigned char)-(i < nb);
        unsigned char ca = na ? (unsigned char)a[ia] & ma : 0;
        unsigned char cb = nb ? (unsigned char)b[ib] & mb : 0;
        diff |= (unsigned)(ca ^ cb);
    }
    return diff == 0;
}

const struct api_key *api_keys_find(const struct api_keys *k, const char *presented,
                                    size_t n) {
    if (!k || (!presented && n)) return NULL;
    const struct api_key *found = NULL;
    for (int i = 0; i < k->n; i++) {
        int eq = ct_equal(k->keys[i].key, strlen(k->keys[i].key), presented, n);
        if (eq) found = &k->keys[i]; /* no break: every key costs the same */
    }
    return found;
}

/* ---- the Authorization header -------------------------------------------- */

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }
static int is_space(char c) { return c == ' ' || c == '\t'; }

int api_bearer_token(const char *header, const char **tok, size_t *n) {
    static const char scheme[] = "bearer";
    if (!header) return err_set("no Authorization header");
    const char *p = header;
    while (is_space(*p))
        p++;
    for (size_t i = 0; i < sizeof scheme - 1; i++, p++)
        if (lower(*p) != scheme[i])
            return err_set("the Authorization header is not a Bearer credential");
    if (!is_space(*p))
        return err_set("the Authorization header is not a Bearer credential");
    while (is_space(*p))
        p++;
    const char *t = p;
    while (*p && !is_space(*p))
        p++;
    size_t len = (size_t)(p - t);
    while (is_space(*p))
        p++;
    if (len == 0) return err_set("the Bearer credential has no token");
    if (*p) return err_set("the Bearer token holds a space");
    *tok = t;
    *n = len;
    return 0;
}

int api_key_allows(const struct api_key *key, const char *model) {
    if (!key || !model) return 0;
    if (key->all_models) return 1;
    for (int i = 0; i < key->n_models; i++)
        if (!strcmp(key->models[i], model)) return 1;
    return 0;
}
