/* tests/llfx.c — LLFX fixture reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llfx.h"

static int rd(FILE *fp, void *dst, size_t n) {
    return fread(dst, 1, n, fp) == n ? 0 : -1;
}

int llfx_load(const char *path, struct llfx *f) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "llfx: cannot open %s\n", path);
        return -1;
    }
    char magic[4];
    uint32_t version, count;
    if (rd(fp, magic, 4) || memcmp(magic, "LLFX", 4) || rd(fp, &version, 4) ||
        version != 1 || rd(fp, &count, 4) || count > 100000)
        goto bad;
    f->t = calloc(count, sizeof *f->t);
    if (!f->t) goto bad;
    for (uint32_t i = 0; i < count; i++) {
        struct llfx_tensor *t = &f->t[i];
        uint32_t len, dtype, ndim;
        if (rd(fp, &len, 4) || len > 4096) goto bad;
        t->name = calloc(len + 1, 1);
        f->count = (int)i + 1;
        if (!t->name || rd(fp, t->name, len) || rd(fp, &dtype, 4) || dtype > 1 ||
            rd(fp, &ndim, 4) || ndim > 4)
            goto bad;
        t->dtype = (int)dtype;
        t->ndim = (int)ndim;
        t->numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            if (rd(fp, &t->dims[d], 4)) goto bad;
            t->numel *= t->dims[d];
        }
        t->data = malloc(t->numel * 4 + 1);
        if (!t->data || rd(fp, t->data, t->numel * 4)) goto bad;
    }
    fclose(fp);
    return 0;
bad:
    fprintf(stderr, "llfx: %s is malformed or truncated\n", path);
    fclose(fp);
    llfx_free(f);
    return -1;
}

void llfx_free(struct llfx *f) {
    for (int i = 0; i < f->count; i++) {
        free(f->t[i].name);
        free(f->t[i].data);
    }
    free(f->t);
    memset(f, 0, sizeof *f);
}

const struct llfx_tensor *llfx_get(const struct llfx *f, const char *name) {
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}
