/* src/common/tokenizer_io.c — GPT-2's files: vocab.json ({"token text": id})
 * and merges.txt ("#version" line, then "left right" per line, rank order).
 *
 * Loading checks what would otherwise make encoding silently wrong: ids form
 * 0..N-1 with no gaps or repeats, every merge's parts and result are in the
 * vocabulary, every byte has a token. Tokens whose text is not GPT-2
 * byte-mapped (added tokens such as "[CLS]") decode to their UTF-8 text.
 * Messages name the file (or "vocab.json"/"merges.txt" for in-memory texts)
 * and, for merges, the line.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "tokenizer_bytemap.h"
#include "tokenizer_internal.h"

enum { MAX_VOCAB = 1 << 24 };

/* ---- vocab.json -------------------------------------------------------------- */

static int token_from_text(struct tokenizer_token *tok, const char *text, size_t len) {
    tok->text = malloc(len + 1);
    tok->bytes = malloc(len ? len : 1);
    if (!tok->text || !tok->bytes) return err_set("out of memory");
    memcpy(tok->text, text, len);
    tok->text[len] = '\0';
    long n = gpt2_text_to_bytes(text, len, (unsigned char *)tok->bytes);
    tok->mapped = n >= 0 && len > 0;
    if (n < 0) { /* an added token: it decodes to its own text */
        memcpy(tok->bytes, text, len);
        n = (long)len;
    }
    tok->len = (uint32_t)n;
    return 0;
}

static int parse_vocab(const char *json, size_t len, const char *vname,
                       struct tokenizer_token **out, int32_t *out_n, struct bytes_map *by_text) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : 0;
        return err_set("%s: not valid JSON (near byte %zu)", vname, off);
    }
    int rc = -1;
    struct tokenizer_token *tokens = NULL;
    int32_t n = 0;
    if (!cJSON_IsObject(root)) {
        err_set("%s: expected a JSON object of \"token\": id", vname);
        goto out;
    }
    n = (int32_t)cJSON_GetArraySize(root);
    if (n <= 0 || n > MAX_VOCAB) {
        err_set("%s: %d entries (expected 1..%d)", vname, n, MAX_VOCAB);
        n = 0;
        goto out;
    }
    tokens = calloc((size_t)n, sizeof *tokens);
    if (!tokens) {
        err_set("out of memory");
        goto out;
    }
    for (cJSON *e = root->child; e; e = e->next) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1.0;
        if (!cJSON_IsNumber(e) || v < 0 || v != floor(v)) {
            err_set("%s: the id of \"%.64s\" is not a non-negative integer", vname, e->string);
            goto out;
        }
        if (v >= n) {
            err_set("%s: id %.0f of \"%.64s\" is out of range: %d tokens need ids 0..%d", vname,
                    v, e->string, n, n - 1);
            goto out;
        }
        int32_t id = (int32_t)v;
        if (tokens[id].text) {
            err_set("%s: id %d is used by both \"%.64s\" and \"%.64s\"", vname, id,
                    tokens[id].text, e->string);
            goto out;
        }
        size_t tlen = strlen(e->string);
        int inserted;
        if (!bytes_map_put(by_text, e->string, tlen, id, &inserted)) goto out;
        if (!inserted) {
            err_set("%s: \"%.64s\" appears twice", vname, e->string);
            goto out;
        }
        if (token_from_text(&tokens[id], e->string, tlen)) goto out;
    }
    *out = tokens;
    *out_n = n;
    tokens = NULL;
    rc = 0;
out:
    tokenizer_tokens_free(tokens, n);
    cJSON_Delete(root);
    return rc;
}

/* ---- merges.txt -------------------------------------------------------------- */

static int parse_merges(const char *text, size_t len, const char *mname,
                        const struct bytes_map *by_text, struct tokenizer_merge **out,
                        int32_t *out_n) {
    size_t cap = 1024, n = 0;
    struct tokenizer_merge *merges = malloc(cap * sizeof *merges);
    char *joined = NULL;
    size_t joined_cap = 0;
    if (!merges) return err_set("out of memory");
    size_t at = 0;
    long line_no = 0;
    while (at < len) {
        const char *line = text + at;
        const char *nl = memchr(line, '\n', len - at);
        size_t line_len = nl ? (size_t)(nl - line) : len - at;
        at += line_len + (nl ? 1 : 0);
        line_no++;
        if (line_len && line[line_len - 1] == '\r') line_len--;
        if (line_len == 0) continue;
        if (line_len >= 8 && !memcmp(line, "#version", 8)) continue;
        const char *space = memchr(line, ' ', line_len);
        size_t left_len = space ? (size_t)(space - line) : 0;
        const char *right = space ? space + 1 : NULL;
        size_t right_len = space ? line_len - left_len - 1 : 0;
        if (!space || left_len == 0 || right_len == 0 || memchr(right, ' ', right_len)) {
            err_set("%s line %ld: expected two tokens separated by one space", mname, line_no);
            goto fail;
        }
        const int64_t *l = bytes_map_get(by_text, line, left_len);
        const int64_t *r = bytes_map_get(by_text, right, right_len);
        if (!l || !r) {
            const char *missing = !l ? line : right;
            int missing_len = (int)(!l ? left_len : right_len);
            err_set("%s line %ld: \"%.*s\" is not in the vocabulary", mname, line_no,
                    missing_len > 64 ? 64 : missing_len, missing);
            goto fail;
        }
        if (left_len + right_len > joined_cap) {
            joined_cap = (left_len + right_len) * 2;
            char *j = realloc(joined, joined_cap);
            if (!j) {
                err_set("out of memory");
                goto fail;
            }
            joined = j;
        }
        memcpy(joined, line, left_len);
        memcpy(joined + left_len, right, right_len);
        const int64_t *result = bytes_map_get(by_text, joined, left_len + right_len);
        if (!result) {
            int jl = (int)(left_len + right_len);
            err_set("%s line %ld: the merge result \"%.*s\" is not in the vocabulary", mname,
                    line_no, jl > 64 ? 64 : jl, joined);
            goto fail;
        }
        if (n == cap) {
            cap *= 2;
            struct tokenizer_merge *m = realloc(merges, cap * sizeof *m);
            if (!m) {
                err_set("out of memory");
                goto fail;
            }
            merges = m;
        }
        if (n >= MAX_VOCAB) {
            err_set("%s: more than %d merges", mname, MAX_VOCAB);
            goto fail;
        }
        merges[n++] = (struct tokenizer_merge){(int32_t)*l, (int32_t)*r, (int32_t)*result};
    }
    free(joined);
    *out = merges;
    *out_n = (int32_t)n;
    return 0;
fail:
    free(joined);
    free(merges);
    return -1;
}

static struct tokenizer *load_named(const char *vocab_json, size_t vocab_len, const char *vname,
                                    const char *merges, size_t merges_len, const char *mname) {
    struct bytes_map by_text;
    if (bytes_map_init(&by_text, 1024)) return NULL;
    struct tokenizer_token *tokens = NULL;
    struct tokenizer_merge *m = NULL;
    int32_t ntok = 0, nmerges = 0;
    struct tokenizer *t = NULL;
    if (!parse_vocab(vocab_json, vocab_len, vname, &tokens, &ntok, &by_text) &&
        !parse_merges(merges, merges_len, mname, &by_text, &m, &nmerges)) {
        t = tokenizer_from_parts(tokens, ntok, m, nmerges, vname);
        tokens = NULL;
    }
    tokenizer_tokens_free(tokens, ntok);
    bytes_map_free(&by_text);
    return t;
}

struct tokenizer *tokenizer_load_strings(const char *vocab_json, size_t vocab_len,
                                         const char *merges, size_t merges_len) {
    return load_named(vocab_json, vocab_len, "vocab.json", merges, merges_len, "merges.txt");
}

static char *read_whole(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set("%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        err_set("%s: not a regular file", path);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        err_set("%s: out of memory for %lld bytes", path, (long long)st.st_size);
        return NULL;
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != (size_t)st.st_size) {
        free(buf);
        err_set("%s: read error", path);
        return NULL;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

struct tokenizer *tokenizer_load_files(const char *vocab_json_path, const char *merges_path) {
    size_t vlen = 0, mlen = 0;
    char *v = read_whole(vocab_json_path, &vlen);
    char *m = v ? read_whole(merges_path, &mlen) : NULL;
    struct tokenizer *t = NULL;
    if (v && m) t = load_named(v, vlen, vocab_json_path, m, mlen, merges_path);
    free(v);
    free(m);
    return t;
}

/* ---- writing ------------------------------------------------------------------ */

struct text_buf {
    char *p;
    size_t len, cap;
};

static int buf_put(struct text_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return err_set("out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_json_string(struct text_buf *b, const char *s) {
    if (buf_put(b, "\"", 1)) return -1;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            if (buf_put(b, esc, 2)) return -1;
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            if (buf_put(b, esc, 6)) return -1;
        } else if (buf_put(b, (const char *)c, 1)) {
            return -1;
        }
    }
    return buf_put(b, "\"", 1);
}

int tokenizer_to_strings(const struct tokenizer *t, char **vocab_json, size_t *vocab_len,
                         char **merges, size_t *merges_len) {
    *vocab_json = *merges = NULL;
    *vocab_len = *merges_len = 0;
    if (t->is_bytes) return 0;
    struct text_buf v = {0}, m = {0};
    char num[32];
    if (buf_put(&v, "{", 1)) goto fail;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        if (id && buf_put(&v, ",\n", 2)) goto fail;
        if (buf_json_string(&v, t->tokens[id].text)) goto fail;
        int k = snprintf(num, sizeof num, ": %d", id);
        if (buf_put(&v, num, (size_t)k)) goto fail;
    }
    if (buf_put(&v, "}\n", 2)) goto fail;
    if (buf_put(&m, "#version: 0.2\n", 14)) goto fail;
    for (int32_t r = 0; r < t->nmerges; r++) {
        const char *l = t->tokens[t->merges[r].left].text;
        const char *rt = t->tokens[t->merges[r].right].text;
        if (buf_put(&m, l, strlen(l)) || buf_put(&m, " ", 1) || buf_put(&m, rt, strlen(rt)) ||
            buf_put(&m, "\n", 1))
            goto fail;
    }
    *vocab_json = v.p;
    *vocab_len = v.len;
    *merges = m.p;
    *merges_len = m.len;
    return 0;
fail:
    free(v.p);
    free(m.p);
    return -1;
}

/* Write path through path.tmp + rename, so a reader never sees half a file. */
static int write_file_atomic(const char *path, const char *data, size_t len) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return err_set("%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return err_set("%s: cannot create: %s", tmp, strerror(errno));
    size_t put = fwrite(data, 1, len, f);
    int bad = fclose(f) != 0 || put != len;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return err_set("%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}

int tokenizer_save_files(const struct tokenizer *t, const char *dir) {
    if (t->is_bytes) return err_set("%s: the bytes tokenizer has no files", dir);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return err_set("%s: cannot create the directory: %s", dir, strerror(errno));
    char *v, *m;
    size_t vl, ml;
    if (tokenizer_to_strings(t, &v, &vl, &m, &ml)) return -1;
    char path[PATH_MAX];
    int rc = -1;
    if (snprintf(path, sizeof path, "%s/vocab.json", dir) >= (int)sizeof path) {
        err_set("%s: path too long", dir);
    } else if (!write_file_atomic(path, v, vl)) {
        snprintf(path, sizeof path, "%s/merges.txt", dir);
        rc = write_file_atomic(path, m, ml);
    }
    free(v);
    free(m);
    return rc;
}
