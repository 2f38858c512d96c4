/* src/common/tokenizer_corpus.c — corpus files as documents (see
 * tokenizer_corpus.h). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "tokenizer_corpus.h"
#include "tokenizer_pretok.h"

enum { CHUNK_BYTES = 16 << 20 };

int corpus_is_jsonl(const char *path) {
    size_t n = strlen(path);
    return n >= 6 && !strcmp(path + n - 6, ".jsonl");
}

/* ---- input expansion ------------------------------------------------------------ */

struct path_list {
    char **p;
    int n, cap;
    uint64_t bytes;
};

static int list_add(struct path_list *l, const char *path, uint64_t size) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **p = realloc(l->p, (size_t)cap * sizeof *p);
        if (!p) return err_set("out of memory");
        l->p = p;
        l->cap = cap;
    }
    size_t len = strlen(path) + 1;
    l->p[l->n] = malloc(len);
    if (!l->p[l->n]) return err_set("out of memory");
    memcpy(l->p[l->n++], path, len);
    l->bytes += size;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(struct path_list *l, const char *path, int depth) {
    struct stat st;
    if (stat(path, &st) != 0) return err_set("input '%s': %s", path, strerror(errno));
    if (S_ISREG(st.st_mode)) return list_add(l, path, (uint64_t)st.st_size);
    if (!S_ISDIR(st.st_mode))
        return err_set("input '%s' is neither a regular file nor a directory", path);
    if (depth > 64) return err_set("input '%s': directories nested too deep", path);
    DIR *d = opendir(path);
    if (!d) return err_set("input '%s': %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ., .., hidden files */
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = err_set("out of memory");
                break;
            }
            names = p;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n]) {
            rc = err_set("out of memory");
            break;
        }
        snprintf(names[n++], len, "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (names) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            struct stat cs;
            /* inside directories: regular files and directories only */
            if (stat(names[i], &cs) == 0 && (S_ISREG(cs.st_mode) || S_ISDIR(cs.st_mode)))
                rc = walk(l, names[i], depth + 1);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int corpus_expand(const char *const *inputs, int ninputs, char ***paths, int *npaths,
                  uint64_t *total_bytes) {
    struct path_list l = {0};
    for (int i = 0; i < ninputs; i++) {
        if (walk(&l, inputs[i], 0)) {
            corpus_paths_free(l.p, l.n);
            return -1;
        }
    }
    *paths = l.p;
    *npaths = l.n;
    *total_bytes = l.bytes;
    return 0;
}

void corpus_paths_free(char **paths, int npaths) {
    for (int i = 0; i < npaths; i++) free(paths[i]);
    free(paths);
}

/* ---- text files ---------------------------------------------------------------- */

static int read_text(const char *path, FILE *f, const struct corpus_visitor *v) {
    size_t cap = CHUNK_BYTES, len = 0;
    uint64_t done = 0;
    char *buf = malloc(cap);
    if (!buf) return err_set("%s: out of memory", path);
    int rc = 0, eof = 0;
    while (rc == 0 && !eof) {
        len += fread(buf + len, 1, cap - len, f);
        if (ferror(f)) {
            rc = err_set("%s: read error", path);
            break;
        }
        eof = len < cap;
        size_t cut = eof ? len : pretok_safe_cut(buf, len);
        if (!eof && cut == 0) { /* no safe cut in a full buffer: read more first */
            char *p = realloc(buf, cap * 2);
            if (!p) {
                rc = err_set("%s: out of memory", path);
                break;
            }
            buf = p;
            cap *= 2;
            continue;
        }
        if (cut) rc = v->text(buf, cut, v->ctx); /* cut == 0 only for an empty file */
        done += cut;
        if (rc == 0 && v->progress) v->progress(done, v->ctx);
        memmove(buf, buf + cut, len - cut);
        len -= cut;
    }
    free(buf);
    if (rc == 0 && v->end_document) rc = v->end_document(v->ctx);
    return rc;
}

/* ---- JSONL ------------------------------------------------------------------------ */

static int read_jsonl(const char *path, FILE *f, const char *field,
                      const struct corpus_visitor *v) {
    char *line = NULL;
    size_t cap = 0;
    long line_no = 0;
    uint64_t done = 0;
    int rc = 0;
    for (;;) {
        errno = 0;
        ssize_t got = getline(&line, &cap, f);
        if (got < 0) {
            if (ferror(f)) rc = err_set("%s: read error: %s", path, strerror(errno));
            break;
        }
        line_no++;
        done += (uint64_t)got;
        size_t n = (size_t)got;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                     line[n - 1] == '\t'))
            n--;
        size_t s = 0;
        while (s < n && (line[s] == ' ' || line[s] == '\t')) s++;
        if (s == n) continue; /* blank line */
        cJSON *obj = cJSON_ParseWithLength(line + s, n - s);
        if (!obj) {
            rc = err_set("%s line %ld: invalid JSON", path, line_no);
            break;
        }
        const cJSON *val = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, field) : NULL;
        if (!cJSON_IsObject(obj)) {
            rc = err_set("%s line %ld: expected a JSON object", path, line_no);
        } else if (!val) {
            rc = err_set("%s line %ld: no field \"%s\"", path, line_no, field);
        } else if (!cJSON_IsString(val)) {
            rc = err_set("%s line %ld: field \"%s\" is not a string", path, line_no, field);
        } else {
            size_t tlen = strlen(val->valuestring);
            if (tlen) rc = v->text(val->valuestring, tlen, v->ctx);
            if (rc == 0 && v->end_document) rc = v->end_document(v->ctx);
            if (rc == 0 && v->progress) v->progress(done, v->ctx);
        }
        cJSON_Delete(obj);
        if (rc) break;
    }
    free(line);
    return rc;
}

int corpus_read_file(const char *path, int jsonl, const char *field,
                     const struct corpus_visitor *v) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set("input '%s': %s", path, strerror(errno));
    int rc = jsonl ? read_jsonl(path, f, field, v) : read_text(path, f, v);
    fclose(f);
    return rc;
}
